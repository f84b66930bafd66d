//! Logging in by email or username: one argon2 verification and at most three
//! sequential store round trips, the same answer and the same work for unknown logins
//! and wrong passwords, and the per-account and per-IP back-off.

use http::StatusCode;
use serde::Deserialize;

use crate::app::App;
use crate::email::EmailAddress;
use crate::history::{self, Outcome};
use crate::http::{ApiRequest, ApiResponse, Client, Problem};
use crate::lockout;
use crate::password::{PasswordHash, Verdict};
use crate::rate_limit::RateLimit;
use crate::records::{User, attr, keys};
use crate::secret::Secret;
use crate::session::NewSession;
use crate::store::{Change, Cond, Item, Key, Write, WriteError};
use crate::two_step::{self, Challenge, Factor, PresentedChallenge};
use crate::username::Username;

/// What a person typed as their login, in the form that identifies an account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LoginId {
    Email(EmailAddress),
    Username(Username),
}

impl LoginId {
    /// An email when it contains `@` (usernames cannot), a username otherwise.
    pub fn parse(text: &str) -> Option<LoginId> {
        if text.contains('@') {
            EmailAddress::parse(text).ok().map(LoginId::Email)
        } else {
            Username::parse(text).ok().map(LoginId::Username)
        }
    }

    /// The item that maps this login to its account.
    pub fn claim_key(&self) -> Key {
        match self {
            LoginId::Email(email) => keys::email_claim(email.canonical()),
            LoginId::Username(name) => keys::username_claim(name.canonical()),
        }
    }

    /// The canonical text, shared by every case and Unicode variant of the login.
    pub fn canonical(&self) -> &str {
        match self {
            LoginId::Email(email) => email.canonical(),
            LoginId::Username(name) => name.canonical(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginRequest {
    login: String,
    password: Secret,
    #[serde(default)]
    remember_me: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    #[error("the login or password is wrong")]
    InvalidCredentials,
    #[error("the email address is not verified")]
    EmailNotVerified,
    #[error("too many failed attempts")]
    RateLimited(u64),
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<LoginError> for Problem {
    fn from(error: LoginError) -> Problem {
        match error {
            LoginError::InvalidCredentials => Problem::new(
                StatusCode::UNAUTHORIZED,
                "invalid_credentials",
                "The login or password is not right.",
            ),
            LoginError::EmailNotVerified => Problem::new(
                StatusCode::FORBIDDEN,
                "email_not_verified",
                "Confirm your email address first: we sent you a link.",
            ),
            LoginError::RateLimited(seconds) => Problem::rate_limited(seconds),
            LoginError::Unexpected(e) => Problem::internal(&e),
        }
    }
}

fn failures_per_ip(app: &App) -> RateLimit {
    RateLimit::per_hour(
        "login-failures",
        app.config.limits.login_failures_per_ip_per_hour,
    )
}

/// The account a login attempt is about, and the back-off counter it claimed.
struct Attempt {
    user: Option<User>,
    lockout_key: Key,
    /// The counter as the claim left it (its failures so far).
    lockout: Option<Item>,
}

/// `POST /v1/login`
pub async fn login(app: &App, request: &ApiRequest) -> Result<ApiResponse, Problem> {
    let body: LoginRequest = request.json()?;
    let client = &request.client;
    let login = LoginId::parse(&body.login);
    let ip_limit = failures_per_ip(app);
    let now = app.now();
    let ip_window = ip_limit.window_key(&client.ip.to_string(), now);

    // Step 1, two calls in parallel: the login's claim, and this IP's attempt counter
    // (counted before the attempt, so parallel attempts cannot slip under the cap; a
    // success takes its count back).
    let claim_read = async {
        match &login {
            Some(login) => app.store.get(&login.claim_key()).await,
            None => Ok(None),
        }
    };
    let (claim, ip_count) = tokio::join!(
        claim_read,
        app.store
            .write(ip_limit.count_write(ip_window.clone(), now))
    );
    let user_id = claim?
        .as_ref()
        .and_then(|claim| claim.s(attr::USER_ID))
        .map(str::to_owned);
    let ip_count = ip_count.map_err(anyhow::Error::from)?;
    if let Some(retry_after) = ip_limit.over_limit(ip_count.as_ref(), now) {
        record_refusal(app, client, user_id.as_deref()).await?;
        return Err(LoginError::RateLimited(retry_after).into());
    }

    // Step 2: the account, and a claim on the login's back-off counter.
    let attempt = match start_attempt(app, login.as_ref(), user_id.as_deref(), &body.login).await? {
        Ok(attempt) => attempt,
        Err(retry_after) => {
            record_refusal(app, client, user_id.as_deref()).await?;
            return Err(LoginError::RateLimited(retry_after).into());
        }
    };

    let stored_hash = attempt.user.as_ref().map(|u| &u.password_hash);
    let verdict = app.passwords.verify(&body.password, stored_hash).await?;
    let (user, needs_rehash) = match (attempt.user, verdict) {
        (Some(user), Verdict::Right { needs_rehash }) => (user, needs_rehash),
        (user, _) => {
            let failures = lockout::failures(attempt.lockout.as_ref());
            record_failure(app, request, user.as_ref(), attempt.lockout_key, failures).await?;
            return Err(LoginError::InvalidCredentials.into());
        }
    };
    // Step 3: every other outcome ends the claim and takes the IP's count back.
    let mut writes = vec![ip_limit.uncount_write(ip_window)];
    if !user.email_verified {
        writes.push(lockout::release(attempt.lockout_key, app.now()));
        app.store
            .transact(writes)
            .await
            .map_err(|e| anyhow::Error::from(e).context("ending a login attempt"))?;
        return Err(LoginError::EmailNotVerified.into());
    }
    if needs_rehash {
        writes.push(rehash(app, &user, &body.password).await?);
    }

    // With two-step verification: a challenge instead of a session. The back-off is
    // cleared only when the second factor passes too.
    if !two_step::methods(&user).is_empty() {
        let challenge = Challenge::start(app, &user, body.remember_me)?;
        writes.push(challenge.write());
        writes.push(lockout::release(attempt.lockout_key, app.now()));
        app.store
            .transact(writes)
            .await
            .map_err(|e| anyhow::Error::from(e).context("starting a two-step challenge"))?;
        return Ok(challenge.response(&user));
    }

    // The session, the history entry and the cleared back-off in one transaction.
    let session = NewSession::start(app, &user.id, client, body.remember_me)?;
    writes.extend([
        session.write(),
        history::entry(&user.id, client, app.now(), Outcome::Success, "password"),
        lockout::clear(attempt.lockout_key),
    ]);
    app.store
        .transact(writes)
        .await
        .map_err(|e| anyhow::Error::from(e).context("starting a session"))?;
    Ok(session.tokens(app)?.response())
}

/// A refused attempt on an existing account is recorded in its history.
async fn record_refusal(app: &App, client: &Client, user_id: Option<&str>) -> anyhow::Result<()> {
    if let Some(user_id) = user_id {
        let entry = history::entry(user_id, client, app.now(), Outcome::RateLimited, "password");
        app.store.write(entry).await?;
    }
    Ok(())
}

/// The back-off counter of a login. A known email shares the account's counter (with
/// wrong codes and signed-in password checks); a username has its own, so a public
/// username cannot be locked to probe which email belongs to it; an unknown login has
/// its own too, and locks exactly like a known one.
fn lockout_key(login: Option<&LoginId>, user_id: Option<&str>, typed: &str) -> Key {
    match (login, user_id) {
        (Some(LoginId::Email(_)), Some(user_id)) => keys::account_lockout(user_id),
        (Some(login), _) => keys::login_lockout(login.canonical()),
        (None, _) => keys::login_lockout(
            &typed
                .trim()
                .to_lowercase()
                .chars()
                .take(320)
                .collect::<String>(),
        ),
    }
}

/// Reads the account and claims the login's back-off counter, in parallel. `Err` is
/// the wait when the login is locked.
async fn start_attempt(
    app: &App,
    login: Option<&LoginId>,
    user_id: Option<&str>,
    typed: &str,
) -> anyhow::Result<Result<Attempt, u64>> {
    let lockout_key = lockout_key(login, user_id, typed);
    let user_read = async {
        match user_id {
            Some(user_id) => crate::accounts::find_by_id(app, user_id).await,
            None => Ok(None),
        }
    };
    let now = app.now();
    let (user, claimed) = tokio::join!(
        user_read,
        app.store.write(lockout::claim(lockout_key.clone(), now))
    );
    let lockout = match claimed {
        Ok(item) => item,
        // Locked after failures: wait out the back-off. Held by an attempt in flight:
        // its outcome is a moment away.
        Err(WriteError::ConditionFailed { current }) => {
            return Ok(Err(lockout::refusal_wait(current.as_ref(), now)));
        }
        Err(WriteError::Unexpected(e)) => return Err(e.context("claiming a login attempt")),
    };
    Ok(Ok(Attempt {
        user: user?,
        lockout_key,
        lockout,
    }))
}

/// Counts a failed attempt against the login and records it in the account's history,
/// in parallel: one sequential step.
async fn record_failure(
    app: &App,
    request: &ApiRequest,
    user: Option<&User>,
    lockout_key: Key,
    failures_before: i64,
) -> anyhow::Result<()> {
    let now = app.now();
    let history = async {
        match user {
            Some(user) => {
                let entry = history::entry(
                    &user.id,
                    &request.client,
                    now,
                    Outcome::BadPassword,
                    "password",
                );
                app.store.write(entry).await.map(|_| ())
            }
            None => Ok(()),
        }
    };
    let (lockout, history) = tokio::join!(
        app.store
            .write(lockout::record_failure(lockout_key, failures_before, now)),
        history,
    );
    lockout.map_err(anyhow::Error::from)?;
    history.map_err(anyhow::Error::from)?;
    Ok(())
}

/// Re-hashes a password whose stored hash is weaker than the configured cost.
async fn rehash(app: &App, user: &User, password: &Secret) -> anyhow::Result<Write> {
    let hash: PasswordHash = app.passwords.rehash(password).await?;
    Ok(Write::update(
        keys::user(&user.id),
        vec![Change::set(attr::PASSWORD_HASH, hash.0)],
    )
    .when(Cond::eq(attr::PASSWORD_HASH, user.password_hash.0.as_str())))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MfaRequest {
    mfa_token: Secret,
    method: String,
    code: Secret,
}

/// `POST /v1/login/mfa`: the second step of a login with two-step verification. One
/// read (account, challenge, back-off), then one transaction that spends the
/// challenge and the factor and starts the session.
pub async fn login_mfa(app: &App, request: &ApiRequest) -> Result<ApiResponse, Problem> {
    let body: MfaRequest = request.json()?;
    let presented = PresentedChallenge::parse(&body.mfa_token)?;
    let (user_key, lockout_key) = (
        keys::user(&presented.user_id),
        keys::account_lockout(&presented.user_id),
    );
    let challenge_key = presented.key();
    let items = app
        .store
        .get_many(&[user_key.clone(), challenge_key.clone(), lockout_key.clone()])
        .await?;
    let find = |key: &Key| items.iter().find(|i| i.key().as_ref() == Some(key));
    let challenge = find(&challenge_key);
    let user = find(&user_key)
        .map(User::from_item)
        .transpose()?
        .ok_or_else(two_step::challenge_expired)?;
    if !presented.usable(challenge, &user) {
        return Err(two_step::challenge_expired());
    }
    let client = &request.client;
    if let Some(seconds) = lockout::retry_after(find(&lockout_key), app.now()) {
        let entry = history::entry(
            &user.id,
            client,
            app.now(),
            Outcome::RateLimited,
            &body.method,
        );
        app.store.write(entry).await.map_err(anyhow::Error::from)?;
        return Err(LoginError::RateLimited(seconds).into());
    }
    let factor = Factor::parse(&body.method)
        .filter(|f| two_step::methods(&user).contains(f))
        .ok_or_else(|| {
            Problem::invalid_request("method must be one of the methods offered at login.")
        })?;
    let Some(spend) = two_step::verify_factor(app, &user, factor, &body.code).await? else {
        let (attempt, wrong) = tokio::join!(
            app.store.write(presented.count_attempt()),
            two_step::record_wrong_factor(app, client, &user.id, factor, find(&lockout_key)),
        );
        // A challenge that vanished meanwhile is no error here: the code was wrong.
        if let Err(crate::store::WriteError::Unexpected(e)) = attempt {
            return Err(e.context("counting a wrong code").into());
        }
        wrong?;
        return Err(two_step::invalid_code());
    };
    let remember_me = challenge
        .and_then(|c| c.bool(attr::REMEMBER_ME))
        .unwrap_or(false);
    let session = NewSession::start(app, &user.id, client, remember_me)?;
    let mut writes = vec![presented.spend()];
    let spent_code = factor == Factor::BackupCode;
    // The password must still be the one the challenge was started with.
    let same_password = Cond::eq(attr::PASSWORD_HASH, user.password_hash.0.as_str());
    writes.push(
        spend
            .account_update(&user.id, Vec::new(), same_password.clone())
            .unwrap_or_else(|| Write::check(keys::user(&user.id), same_password)),
    );
    writes.extend([
        session.write(),
        history::entry(&user.id, client, app.now(), Outcome::Success, factor.name()),
        lockout::clear(lockout_key),
    ]);
    app.store.transact(writes).await.map_err(|e| match e {
        e if e.failed_at(0).is_some() => two_step::challenge_expired(),
        // The password changed meanwhile, or the factor was spent by a concurrent
        // request (a replay).
        e if e.failed_at(1).is_some() => {
            let changed = e
                .failed_at(1)
                .and_then(|f| f.current.as_ref())
                .is_none_or(|item| {
                    item.s(attr::PASSWORD_HASH) != Some(user.password_hash.0.as_str())
                });
            match changed {
                true => two_step::challenge_expired(),
                false => two_step::invalid_code(),
            }
        }
        e => Problem::from(anyhow::Error::from(e).context("completing a two-step login")),
    })?;
    let remaining = user.backup_codes.len() - usize::from(spent_code);
    let mut tokens = serde_json::to_value(session.tokens(app)?)
        .map_err(|e| Problem::from(anyhow::Error::from(e)))?;
    tokens["backup_codes_remaining"] = remaining.into();
    if remaining <= two_step::LOW_BACKUP_CODES {
        tokens["warning"] = "backup_codes_low".into();
    }
    Ok(crate::http::json(StatusCode::OK, &tokens))
}
