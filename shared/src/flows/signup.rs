//! Signing up: one account per email address, enumeration-safe answers, and fixing a
//! mistyped address before it is verified.

use anyhow::Context;
use http::StatusCode;
use serde::Deserialize;

use crate::app::App;
use crate::credentials::password::Verdict;
use crate::flows::email_verification;
use crate::http::{ApiRequest, ApiResponse, FieldError, Problem};
use crate::mail::Delivery;
use crate::mail::messages::Message;
use crate::protections::backoff::{Claim, Counter};
use crate::protections::rate_limit::RateLimit;
use crate::records::{self, AccountType, User, attr, keys};
use crate::store::{Change, Cond, EXPIRES_AT, Item, TransactError, Write};
use crate::values::email::EmailAddress;
use crate::values::full_name::FullName;
use crate::values::new_password::NewPassword;
use crate::values::secret::Secret;
use crate::values::username::Username;

/// The least time between two "you already have an account" emails to one address.
const NOTICE_COOLDOWN_SECONDS: i64 = 60;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SignupRequest {
    email: String,
    password: Secret,
    account_type: String,
    username: Option<String>,
    full_name: Option<String>,
}

/// A signup whose every field is valid.
struct NewAccount {
    email: EmailAddress,
    password: NewPassword,
    account_type: AccountType,
    username: Option<Username>,
    full_name: Option<FullName>,
}

#[derive(Debug, thiserror::Error)]
pub enum SignupError {
    #[error("the signup is invalid")]
    Invalid(Vec<FieldError>),
    #[error("the username is taken")]
    UsernameTaken,
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<SignupError> for Problem {
    fn from(error: SignupError) -> Problem {
        match error {
            SignupError::Invalid(errors) => Problem::validation(errors),
            SignupError::UsernameTaken => Problem::new(
                StatusCode::CONFLICT,
                "username_taken",
                "That username is taken. Please choose another.",
            ),
            SignupError::Unexpected(e) => Problem::from(e),
        }
    }
}

fn signup_limit(app: &App) -> RateLimit {
    RateLimit::per_hour("signup", app.config.limits.signups_per_ip_per_hour)
}

/// `POST /v1/signup`
pub async fn signup(app: &App, request: &ApiRequest) -> Result<ApiResponse, Problem> {
    let body: SignupRequest = request.json()?;
    let account = parse_signup(body).map_err(SignupError::Invalid)?;
    signup_limit(app).check_ip(app, &request.client).await?;
    app.with_floor(create_account(app, account)).await?;
    Ok(verification_sent())
}

fn verification_sent() -> ApiResponse {
    crate::http::status(StatusCode::ACCEPTED, "verification_sent")
}

fn parse_signup(body: SignupRequest) -> Result<NewAccount, Vec<FieldError>> {
    let mut errors = Vec::new();
    let email = EmailAddress::parse_for_account(&body.email)
        .map_err(|_| errors.push(FieldError::new("email", "invalid")))
        .ok();
    let username = match body.username.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(text) => Username::parse(text)
            .map_err(|_| errors.push(FieldError::new("username", "invalid")))
            .ok(),
    };
    let password = NewPassword::parse(&body.password, email.as_ref(), username.as_ref())
        .map_err(|weaknesses| {
            errors.extend(
                weaknesses
                    .iter()
                    .map(|w| FieldError::new("password", w.code())),
            );
        })
        .ok();
    let account_type = AccountType::parse(&body.account_type);
    if account_type.is_none() {
        errors.push(FieldError::new("account_type", "invalid"));
    }
    let full_name = match body.full_name.as_deref().map(FullName::parse) {
        None => None,
        Some(Ok(name)) => name,
        Some(Err(_)) => {
            errors.push(FieldError::new("full_name", "invalid"));
            None
        }
    };
    match (email, password, account_type) {
        (Some(email), Some(password), Some(account_type)) if errors.is_empty() => Ok(NewAccount {
            email,
            password,
            account_type,
            username,
            full_name,
        }),
        _ => Err(errors),
    }
}

/// Creates the account and sends its verification, or tells the owner of an existing
/// account about the attempt. Both branches hash a password and send one email, and
/// both leave the signup's username claimed and its password answerable at login as
/// "not verified yet" (see [`hold_pending_signup`]).
async fn create_account(app: &App, account: NewAccount) -> Result<(), SignupError> {
    let password_hash = app.passwords.hash(&account.password).await?;
    let now = app.now();
    let user = User {
        id: records::new_user_id(),
        email: account.email.address().to_owned(),
        email_canonical: account.email.canonical().to_owned(),
        username: account.username.as_ref().map(|u| u.as_str().to_owned()),
        username_canonical: account.username.as_ref().map(|u| u.canonical().to_owned()),
        full_name: account.full_name.clone().map(FullName::into_string),
        account_type: account.account_type,
        email_verified: false,
        created_at: now,
        password_hash,
        security_question: None,
        totp: None,
        backup_codes: Default::default(),
        sessions: Default::default(),
        mail_delivery: Default::default(),
    };
    let pending = email_verification::Pending::issue(&user.id, now)?;
    const EMAIL_CLAIM: usize = 0;
    const USERNAME_CLAIM: usize = 3;
    let mut writes = vec![
        Write::put(records::email_claim_item(&account.email, &user.id)).when(Cond::ItemAbsent),
        Write::put(user.to_item()).when(Cond::ItemAbsent),
        Write::put(pending.to_item(None)),
    ];
    if let Some(username) = &user.username_canonical {
        writes.push(
            Write::put(records::username_claim_item(username, &user.id)).when(Cond::ItemAbsent),
        );
    }
    match app.store.transact(writes).await {
        Ok(()) => {
            app.send_quietly(&user.email, user.mail_delivery, pending.message(app))
                .await;
            Ok(())
        }
        // A taken username is public knowledge; it must win over "email exists", or a
        // known-taken username would reveal whether an address has an account.
        Err(e) if e.failed_at(USERNAME_CLAIM).is_some() => Err(SignupError::UsernameTaken),
        Err(e) if e.failed_at(EMAIL_CLAIM).is_some() => {
            let claim = e
                .failed_at(EMAIL_CLAIM)
                .and_then(|failed| failed.current.clone());
            let Some(claim) = claim else {
                return Err(anyhow::anyhow!("an email claim vanished while signing up").into());
            };
            hold_pending_signup(app, &account, &claim).await?;
            if let Some(address) = claim.s(attr::EMAIL) {
                notify_existing_owner(
                    app,
                    account.email.canonical(),
                    address,
                    claim_delivery(&claim),
                )
                .await?;
            }
            Ok(())
        }
        Err(TransactError::ConditionFailed { .. }) => {
            Err(anyhow::anyhow!("a new account's id collided with an existing one").into())
        }
        Err(TransactError::Unexpected(e)) => Err(e.context("creating an account").into()),
    }
}

/// A signup on an address that already has an account leaves what a new account would
/// have left, so that nothing afterwards tells the two apart: its username is claimed
/// (until the unverified-account cleanup would have freed it), and its password is held
/// on the address's claim as a *pending signup* until then. The owner of the address has
/// the "you already have an account" email.
async fn hold_pending_signup(
    app: &App,
    account: &NewAccount,
    email_claim: &Item,
) -> Result<(), SignupError> {
    let Some(pending) =
        PendingSignup::for_claim(app, email_claim, account.password.as_secret()).await?
    else {
        return Ok(());
    };
    let mut writes = vec![pending.email_claim_write(account.email.canonical())];
    if let Some(username) = &account.username {
        writes
            .push(Write::put(pending.username_claim(username.canonical())).when(Cond::ItemAbsent));
    }
    match app.store.transact(writes).await {
        Ok(()) => Ok(()),
        Err(e) if e.failed_at(1).is_some() => Err(SignupError::UsernameTaken),
        // The account changed hands meanwhile (deleted by the cleanup): nothing to hold.
        Err(TransactError::ConditionFailed { .. }) => Ok(()),
        Err(TransactError::Unexpected(e)) => Err(e.context("holding a pending signup").into()),
    }
}

/// The password of a signup (or of an email correction) made on an address that already
/// has an account, hashed with that account's own salt and parameters, so that a login
/// checks both with one argon2 computation: a login with it is answered
/// `403 email_not_verified` with the same work as the owner of a genuinely new account
/// gets, and it never logs anyone in. It is held until the unverified-account cleanup
/// would have deleted a new account.
struct PendingSignup {
    owner_id: String,
    hash: crate::records::PasswordHash,
    until: i64,
}

impl PendingSignup {
    /// The pending signup of `password` on the address `email_claim` holds; `None` when
    /// its account is being deleted (by the cleanup job).
    async fn for_claim(
        app: &App,
        email_claim: &Item,
        password: &Secret,
    ) -> anyhow::Result<Option<PendingSignup>> {
        let Some(owner_id) = email_claim.s(attr::USER_ID) else {
            anyhow::bail!("an email claim has no account");
        };
        let Some(owner) = crate::records::lookup::find_by_id(app.store.as_ref(), owner_id).await?
        else {
            return Ok(None);
        };
        Ok(Some(PendingSignup {
            owner_id: owner_id.to_owned(),
            hash: app
                .passwords
                .hash_like(password, &owner.password_hash)
                .await?,
            until: app.now() + app.config.unverified_account_max_age_days * 86_400,
        }))
    }

    /// Holds the pending password on the address's claim, while it still names the owner.
    fn email_claim_write(&self, canonical_email: &str) -> Write {
        Write::update(
            keys::email_claim(canonical_email),
            vec![
                Change::set(attr::PENDING_HASH, self.hash.0.as_str()),
                Change::set(attr::PENDING_UNTIL, self.until),
            ],
        )
        .when(Cond::eq(attr::USER_ID, self.owner_id.as_str()))
    }

    /// A claim of `canonical_username` that holds the pending password and logs no one in
    /// (it expires when a new account's unverified username would have been freed).
    fn username_claim(&self, canonical_username: &str) -> Item {
        records::username_claim_item(canonical_username, &self.owner_id)
            .with(attr::PENDING_HASH, self.hash.0.as_str())
            .with(EXPIRES_AT, self.until)
    }
}

/// What SES reported about a claimed address (`mail-events` marks the claim too).
fn claim_delivery(claim: &Item) -> Delivery {
    Delivery::parse(claim.s(attr::MAIL_DELIVERY))
}

/// Tells the owner of an existing account that someone tried to sign up with their
/// address, at most once a minute.
pub(crate) async fn notify_existing_owner(
    app: &App,
    canonical_email: &str,
    stored_address: &str,
    delivery: Delivery,
) -> anyhow::Result<()> {
    let now = app.now();
    let cooled_down = Cond::attr_absent(attr::NOTICE_SENT_AT).or(Cond::le(
        attr::NOTICE_SENT_AT,
        now - NOTICE_COOLDOWN_SECONDS,
    ));
    let claimed = app
        .store
        .write(
            Write::update(
                keys::email_claim(canonical_email),
                vec![Change::set(attr::NOTICE_SENT_AT, now)],
            )
            .when(Cond::ItemExists.and(cooled_down)),
        )
        .await;
    match claimed {
        Ok(_) => {
            let message = Message::AccountExists {
                login_url: app.config.app_base_url.page("/login"),
                reset_url: app.config.app_base_url.page("/forgot-password"),
            };
            app.send_quietly(stored_address, delivery, message).await;
            Ok(())
        }
        Err(crate::store::WriteError::ConditionFailed { .. }) => Ok(()),
        Err(crate::store::WriteError::Unexpected(e)) => {
            Err(e.context("recording an account-exists notice"))
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CorrectEmailRequest {
    email: String,
    password: Secret,
    new_email: String,
}

/// `POST /v1/signup/correct-email`: moves a not-yet-verified account to the address
/// its owner meant to type. Answers like signup whatever happens, so it cannot be
/// used to test passwords or addresses.
pub async fn correct_email(app: &App, request: &ApiRequest) -> Result<ApiResponse, Problem> {
    let body: CorrectEmailRequest = request.json()?;
    let mut errors = Vec::new();
    let old = EmailAddress::parse(&body.email)
        .map_err(|_| errors.push(FieldError::new("email", "invalid")))
        .ok();
    let new = EmailAddress::parse_for_account(&body.new_email)
        .map_err(|_| errors.push(FieldError::new("new_email", "invalid")))
        .ok();
    let (Some(old), Some(new)) = (old, new) else {
        return Err(SignupError::Invalid(errors).into());
    };
    signup_limit(app).check_ip(app, &request.client).await?;
    app.with_floor(move_unverified_account(app, &old, &body.password, &new))
        .await?;
    Ok(verification_sent())
}

/// Checks the password of the account at `old` like a login does (claiming the
/// address's back-off counter first, one argon2 computation whether or not there is an
/// account), and moves it to `new` when it is right and the account is not verified.
async fn move_unverified_account(
    app: &App,
    old: &EmailAddress,
    password: &Secret,
    new: &EmailAddress,
) -> Result<(), SignupError> {
    let user = crate::records::lookup::find_by_email(app.store.as_ref(), old).await?;
    let counter = match &user {
        Some(user) => Counter::Address { user_id: &user.id },
        None => Counter::Login {
            canonical: old.canonical(),
        },
    };
    let claim = match Claim::take(app.store.as_ref(), counter, app.now()).await? {
        Ok(claim) => claim,
        // Locked: the account moves nowhere, and the answer is the usual one.
        Err(_) => return Ok(()),
    };
    let verdict = app
        .passwords
        .verify(password, user.as_ref().map(|u| &u.password_hash))
        .await?;
    let Some(user) = user.filter(|_| verdict != Verdict::Wrong) else {
        app.store
            .write(claim.failed(app.now()))
            .await
            .map_err(|e| anyhow::Error::from(e).context("counting a wrong password"))?;
        return Ok(());
    };
    let moved = match user.email_verified {
        true => Ok(()),
        false => move_account(app, &user, password, new).await,
    };
    app.store
        .write(claim.succeeded())
        .await
        .map_err(|e| anyhow::Error::from(e).context("clearing a password check"))?;
    moved
}

async fn move_account(
    app: &App,
    user: &User,
    password: &Secret,
    new: &EmailAddress,
) -> Result<(), SignupError> {
    if new.canonical() == user.email_canonical {
        // Same address: behave like a resend.
        let previous = app
            .store
            .get(&keys::verification(&user.id))
            .await
            .context("reading a verification")?;
        return Ok(email_verification::resend_to(app, user, previous.as_ref()).await?);
    }
    let now = app.now();
    let pending = email_verification::Pending::issue(&user.id, now)?;
    let moved = User {
        email: new.address().to_owned(),
        email_canonical: new.canonical().to_owned(),
        // What SES said about the old address says nothing about the new one.
        mail_delivery: Delivery::Deliverable,
        ..user.clone()
    };
    const NEW_CLAIM: usize = 1;
    let writes = vec![
        Write::delete(keys::email_claim(&user.email_canonical))
            .when(Cond::eq(attr::USER_ID, user.id.as_str())),
        Write::put(records::email_claim_item(new, &user.id)).when(Cond::ItemAbsent),
        Write::put(moved.to_item()).when(still_unverified_at(user)),
        // Replaces the old verification: links sent to the mistyped address die.
        Write::put(pending.to_item(None)),
    ];
    match app.store.transact(writes).await {
        Ok(()) => {
            app.send_quietly(&moved.email, moved.mail_delivery, pending.message(app))
                .await;
            Ok(())
        }
        Err(e) if e.failed_at(NEW_CLAIM).is_some() => {
            let claim = e.failed_at(NEW_CLAIM).and_then(|f| f.current.clone());
            let Some(claim) = claim else {
                return Ok(());
            };
            retire_into_pending(app, user, password, new, &claim).await?;
            if let Some(address) = claim.s(attr::EMAIL) {
                notify_existing_owner(app, new.canonical(), address, claim_delivery(&claim))
                    .await?;
            }
            Ok(())
        }
        // Verified or moved meanwhile by a concurrent request: nothing to do.
        Err(TransactError::ConditionFailed { .. }) => Ok(()),
        Err(TransactError::Unexpected(e)) => Err(e.context("moving an account's email").into()),
    }
}

/// The condition that an account is still unverified at the address it was read with.
fn still_unverified_at(user: &User) -> Cond {
    Cond::eq(attr::EMAIL_CANONICAL, user.email_canonical.as_str())
        .and(Cond::eq(attr::EMAIL_VERIFIED, false))
}

/// A correction onto an address that already has an account ends as if the account had
/// moved there: the old address is freed, and the account becomes a pending signup on
/// the new one (its password and username held as a signup's would be). So nothing
/// afterwards (a login at either address or by the username, a signup, a resend) tells
/// whether the new address was taken. The unverified account itself goes: it could
/// never be verified at an address it does not hold.
async fn retire_into_pending(
    app: &App,
    user: &User,
    password: &Secret,
    new: &EmailAddress,
    new_claim: &Item,
) -> Result<(), SignupError> {
    let Some(pending) = PendingSignup::for_claim(app, new_claim, password).await? else {
        return Ok(());
    };
    let mut writes = vec![
        Write::delete(keys::email_claim(&user.email_canonical))
            .when(Cond::eq(attr::USER_ID, user.id.as_str())),
        Write::delete(keys::user(&user.id)).when(still_unverified_at(user)),
        Write::delete(keys::verification(&user.id)),
        pending.email_claim_write(new.canonical()),
    ];
    if let Some(username) = &user.username_canonical {
        writes.push(
            Write::put(pending.username_claim(username))
                .when(Cond::eq(attr::USER_ID, user.id.as_str())),
        );
    }
    match app.store.transact(writes).await {
        // Verified, moved or deleted meanwhile by a concurrent request: nothing to do.
        Ok(()) | Err(TransactError::ConditionFailed { .. }) => Ok(()),
        Err(TransactError::Unexpected(e)) => Err(e
            .context("retiring an account into a pending signup")
            .into()),
    }
}
