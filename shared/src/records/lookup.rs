//! Finding accounts by the identifiers people type, in the store.

use anyhow::Context;

use crate::records::{User, attr, keys};
use crate::store::Store;
use crate::values::email::EmailAddress;
use crate::values::login_id::LoginId;

/// The account that owns an email address, if any (two reads: claim, then account).
pub async fn find_by_email(
    store: &dyn Store,
    email: &EmailAddress,
) -> anyhow::Result<Option<User>> {
    find_by_login(store, &LoginId::Email(email.clone())).await
}

/// The account with this id, if it exists.
pub async fn find_by_id(store: &dyn Store, user_id: &str) -> anyhow::Result<Option<User>> {
    store
        .get(&keys::user(user_id))
        .await
        .context("reading an account")?
        .map(|item| User::from_item(&item))
        .transpose()
}

/// The account a login (email or username) names, if any (two reads).
pub async fn find_by_login(store: &dyn Store, login: &LoginId) -> anyhow::Result<Option<User>> {
    let claim = store
        .get(&keys::claim_of(login))
        .await
        .context("reading a login claim")?;
    match claim.as_ref().and_then(|c| c.s(attr::USER_ID)) {
        Some(user_id) => find_by_id(store, user_id).await,
        None => Ok(None),
    }
}
