//! Finding accounts by the identifiers people type.

use anyhow::Context;

use crate::app::App;
use crate::records::{User, attr, keys};
use crate::values::email::EmailAddress;

/// The account that owns an email address, if any (two reads: claim, then account).
pub async fn find_by_email(app: &App, email: &EmailAddress) -> anyhow::Result<Option<User>> {
    find_by_login(app, &crate::flows::login::LoginId::Email(email.clone())).await
}

/// The account with this id, if it exists.
pub async fn find_by_id(app: &App, user_id: &str) -> anyhow::Result<Option<User>> {
    app.store
        .get(&keys::user(user_id))
        .await
        .context("reading an account")?
        .map(|item| User::from_item(&item))
        .transpose()
}

/// The account a login (email or username) names, if any (two reads).
pub async fn find_by_login(
    app: &App,
    login: &crate::flows::login::LoginId,
) -> anyhow::Result<Option<User>> {
    let claim = app
        .store
        .get(&login.claim_key())
        .await
        .context("reading a login claim")?;
    match claim.as_ref().and_then(|c| c.s(attr::USER_ID)) {
        Some(user_id) => find_by_id(app, user_id).await,
        None => Ok(None),
    }
}
