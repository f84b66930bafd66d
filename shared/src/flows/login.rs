//! Logging in by email or username: one argon2 verification and at most three
//! sequential store round trips, the same answer and the same work for unknown logins
//! and wrong passwords, and the per-account and per-IP back-off.

use anyhow::Context;
use http::StatusCode;
use serde::Deserialize;

use crate::app::App;
use crate::credentials::password::LoginVerdict;
use crate::http::{ApiRequest, ApiResponse, Client, Problem};
use crate::protections::backoff::{self, Claim, Counter};
use crate::protections::login_history::{self, Outcome};
use crate::protections::rate_limit::RateLimit;
use crate::protections::second_factors::{self, Challenge, Factor, PresentedChallenge};
use crate::protections::sessions::{self, NewSession};
use crate::records::PasswordHash;
use crate::records::{SessionEpoch, User, attr, keys};
use crate::store::{Change, Cond, Item, Key, MAX_TRANSACTION_WRITES, Write};
use crate::values::login_id::LoginId;
use crate::values::secret::Secret;

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
                "This email address is not confirmed for this password yet. Check your inbox: we sent the address an email that says what to do next.",
            ),
            LoginError::RateLimited(seconds) => Problem::rate_limited(seconds),
            LoginError::Unexpected(e) => Problem::from(e),
        }
    }
}

fn failures_per_ip(app: &App) -> RateLimit {
    RateLimit::per_hour(
        "login-failures",
        app.config.limits.login_failures_per_ip_per_hour,
    )
}

/// The back-off counter of a login. A known email has the account's address counter; a
/// username has its own, so a public username cannot be locked to probe which email
/// belongs to it; an unknown login has its own too, and locks exactly like a known one.
/// None of them is the counter of second factors or signed-in password checks.
fn counter_key(login: Option<&LoginId>, user_id: Option<&str>, typed: &str) -> Key {
    match (login, user_id) {
        (Some(LoginId::Email(_)), Some(user_id)) => Counter::Address { user_id }.key(),
        (Some(login), _) => Counter::Login {
            canonical: login.canonical(),
        }
        .key(),
        (None, _) => {
            let canonical: String = typed.trim().to_lowercase().chars().take(320).collect();
            Counter::Login {
                canonical: &canonical,
            }
            .key()
        }
    }
}

/// The account a login attempt is about, the counter it claimed, and the account's
/// sessions (for the cap on them).
struct Attempt {
    user: Option<User>,
    claim: Claim,
    sessions: Vec<Item>,
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
            Some(login) => app.store.get(&keys::claim_of(login)).await,
            None => Ok(None),
        }
    };
    let (claim, ip_count) = tokio::join!(
        claim_read,
        app.store
            .write(ip_limit.count_write(ip_window.clone(), now))
    );
    let claim = claim?;
    let user_id = claim
        .as_ref()
        .and_then(|claim| claim.s(attr::USER_ID))
        .map(str::to_owned);
    let pending = PendingCheck::of(claim.as_ref(), now);
    let counter = counter_key(login.as_ref(), user_id.as_deref(), &body.login);
    let ip_count = ip_count.map_err(anyhow::Error::from)?;
    if let Some(retry_after) = ip_limit.over_limit(ip_count.as_ref(), now) {
        record_refusal(app, client, user_id.as_deref(), &counter).await?;
        return Err(LoginError::RateLimited(retry_after).into());
    }

    // Step 2: the account and its sessions, and a claim on the login's back-off counter.
    let attempt = match start_attempt(app, counter.clone(), user_id.as_deref()).await? {
        Ok(attempt) => attempt,
        Err(retry_after) => {
            record_refusal(app, client, user_id.as_deref(), &counter).await?;
            return Err(LoginError::RateLimited(retry_after).into());
        }
    };

    // One argon2 computation, against the account's hash and a pending signup's.
    let stored_hash = attempt.user.as_ref().map(|u| &u.password_hash);
    let verdict = app
        .passwords
        .verify_login(&body.password, stored_hash, pending.hash.as_ref())
        .await?;
    let (user, needs_rehash) = match (attempt.user, pending.judge(verdict)) {
        (Some(user), LoginVerdict::Account { needs_rehash }) => (user, needs_rehash),
        // The password of a signup made on a taken address: answered as the owner of a
        // new, unverified account is, with the same writes.
        (Some(_), LoginVerdict::PendingSignup) => {
            let writes = vec![
                ip_limit.uncount_write(ip_window),
                attempt.claim.released(app.now()),
            ];
            app.store
                .transact(writes)
                .await
                .map_err(|e| anyhow::Error::from(e).context("ending a login attempt"))?;
            return Err(LoginError::EmailNotVerified.into());
        }
        (user, _) => {
            let user_id = user.as_ref().map(|user| user.id.as_str());
            login_history::count_wrong_password(
                app.store.as_ref(),
                &attempt.claim,
                user_id,
                &request.client,
                app.now(),
            )
            .await?;
            return Err(LoginError::InvalidCredentials.into());
        }
    };
    // Step 3: every other outcome ends the claim and takes the IP's count back.
    let mut writes = vec![ip_limit.uncount_write(ip_window)];
    if !user.email_verified {
        writes.push(attempt.claim.released(app.now()));
        app.store
            .transact(writes)
            .await
            .map_err(|e| anyhow::Error::from(e).context("ending a login attempt"))?;
        return Err(LoginError::EmailNotVerified.into());
    }
    // The password checked must still be the account's: a reset or change meanwhile
    // fails this transaction rather than let the attempt through.
    let same_password = Cond::eq(attr::PASSWORD_HASH, user.password_hash.0.as_str());

    // With two-step verification: a challenge instead of a session. The back-off is
    // cleared only when the second factor passes too.
    if !second_factors::methods(&user).is_empty() {
        let challenge = Challenge::start(app, &user, body.remember_me)?;
        writes.push(challenge.write());
        writes.push(attempt.claim.released(app.now()));
        if needs_rehash {
            writes.push(rehash(app, &user, &body.password, same_password).await?);
        }
        app.store
            .transact(writes)
            .await
            .map_err(|e| anyhow::Error::from(e).context("starting a two-step challenge"))?;
        return Ok(challenge.response(&user));
    }

    // The session, the history entry and the cleared back-off in one transaction, under
    // the condition that the account's password and session epoch are still the ones
    // read: a session started as the password changes does not outlive the change.
    let session = NewSession::start(
        app,
        &user,
        client,
        body.remember_me,
        login_history::PASSWORD,
    )?;
    let account_cond = same_password.and(session.account_cond(&user));
    const ACCOUNT: usize = 1;
    writes.push(if needs_rehash {
        rehash(app, &user, &body.password, account_cond).await?
    } else {
        Write::check(keys::user(&user.id), account_cond)
    });
    writes.extend([
        session.write(),
        login_history::entry(
            &user.id,
            client,
            app.now(),
            Outcome::Success,
            login_history::PASSWORD,
        ),
        attempt.claim.succeeded(),
    ]);
    let room = MAX_TRANSACTION_WRITES.saturating_sub(writes.len());
    writes.extend(sessions::make_room(app, &user, &attempt.sessions, room));
    match app.store.transact(writes).await {
        Ok(()) => Ok(session.tokens(app)?.response()),
        Err(e) if e.failed_at(ACCOUNT).is_some() => {
            attempt.claim.release(app.store.as_ref(), app.now()).await;
            Err(LoginError::InvalidCredentials.into())
        }
        Err(e) => Err(anyhow::Error::from(e).context("starting a session").into()),
    }
}

/// A refused attempt on an existing account is recorded in its history; one on a login
/// with no account is noted on its counter instead: one write either way, so a refusal
/// takes as long for a known login as for an unknown one.
async fn record_refusal(
    app: &App,
    client: &Client,
    user_id: Option<&str>,
    counter: &Key,
) -> anyhow::Result<()> {
    let now = app.now();
    let write = match user_id {
        Some(user_id) => login_history::entry(
            user_id,
            client,
            now,
            Outcome::RateLimited,
            login_history::PASSWORD,
        ),
        None => backoff::note_refusal(counter.clone(), now),
    };
    app.store.write(write).await?;
    Ok(())
}

/// A pending signup the login's claim holds (see `flows::signup::PendingSignup`), if any.
struct PendingCheck {
    hash: Option<PasswordHash>,
    /// The claim is a username held only for a pending signup: the account it names
    /// cannot be logged into through it.
    only: bool,
}

impl PendingCheck {
    fn of(claim: Option<&Item>, now: i64) -> PendingCheck {
        let hash = claim.and_then(|claim| claim.s(attr::PENDING_HASH));
        // A username claim of a pending signup expires by its TTL; an address's pending
        // signup by its own time, as the address's claim itself stays.
        let until = claim.and_then(|claim| claim.n(attr::PENDING_UNTIL));
        let alive = until.is_none_or(|until| now < until);
        PendingCheck {
            hash: hash.filter(|_| alive).map(|h| PasswordHash(h.to_owned())),
            only: hash.is_some() && until.is_none(),
        }
    }

    /// What a verdict means for this login.
    fn judge(&self, verdict: LoginVerdict) -> LoginVerdict {
        match verdict {
            LoginVerdict::Account { .. } if self.only => LoginVerdict::Wrong,
            verdict => verdict,
        }
    }
}

/// Reads the account and its sessions and claims the login's back-off counter, in
/// parallel. `Err` is the wait when the login is locked.
async fn start_attempt(
    app: &App,
    counter: Key,
    user_id: Option<&str>,
) -> anyhow::Result<Result<Attempt, u64>> {
    // A login that names no account reads a stand-in account (an id no account has,
    // never a UUID) and its sessions: the same three calls in parallel as for a known
    // login, so a refusal or a failure takes as long either way. The stand-in is
    // derived from the login so that a flood of unknown logins spreads over partitions.
    let stand_in = format!("none:{}", counter.pk);
    let read_id = user_id.unwrap_or(&stand_in);
    let user_read = crate::records::lookup::find_by_id(app.store.as_ref(), read_id);
    let sessions_query = sessions::sessions_query(read_id);
    let sessions_read = app.store.query(&sessions_query);
    let now = app.now();
    let (user, sessions, claimed) = tokio::join!(
        user_read,
        sessions_read,
        app.store.write(backoff::claim_write(counter.clone(), now))
    );
    let claim = match Claim::judge(counter, now, claimed)? {
        Ok(claim) => claim,
        Err(wait) => return Ok(Err(wait)),
    };
    let (user, sessions) = match user_id {
        Some(_) => (
            user?,
            sessions.context("reading an account's sessions")?.items,
        ),
        None => (None, Vec::new()),
    };
    Ok(Ok(Attempt {
        user,
        claim,
        sessions,
    }))
}

/// Re-hashes a password whose stored hash is weaker than the configured cost, under
/// `cond` (which must include that the stored hash is still the one verified).
async fn rehash(app: &App, user: &User, password: &Secret, cond: Cond) -> anyhow::Result<Write> {
    let hash: PasswordHash = app.passwords.rehash(password).await?;
    Ok(Write::update(
        keys::user(&user.id),
        vec![Change::set(attr::PASSWORD_HASH, hash.0)],
    )
    .when(cond))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MfaRequest {
    mfa_token: Secret,
    method: Factor,
    code: Secret,
}

/// `POST /v1/login/mfa`: the second step of a login with two-step verification. One
/// step reads the account, the challenge and the account's sessions and claims the
/// account's second-factor counter, in parallel (so a burst across several challenges
/// gets no more guesses than a patient attacker); then one transaction spends the
/// challenge and the factor and starts the session, or the failure is recorded.
pub async fn login_mfa(app: &App, request: &ApiRequest) -> Result<ApiResponse, Problem> {
    let body: MfaRequest = request.json()?;
    let presented = PresentedChallenge::parse(&body.mfa_token)?;
    let user_id = presented.user_id.clone();
    let (user_key, challenge_key) = (keys::user(&user_id), presented.key());
    let counter = second_factors::counter(&user_id).key();
    let now = app.now();
    let wanted = [user_key.clone(), challenge_key.clone()];
    let sessions_query = sessions::sessions_query(&user_id);
    let (items, sessions, claimed) = tokio::join!(
        app.store.get_many(&wanted),
        app.store.query(&sessions_query),
        app.store.write(backoff::claim_write(counter.clone(), now)),
    );
    let claimed = Claim::judge(counter, now, claimed)?;
    let items = items?;
    let find = |key: &Key| items.iter().find(|i| i.key().as_ref() == Some(key));
    let challenge = find(&challenge_key);
    let user = find(&user_key).map(User::from_item).transpose()?;
    let client = &request.client;
    let (user, claim) = match (user, claimed) {
        (Some(user), claimed) if presented.usable(challenge, &user) => match claimed {
            Ok(claim) => (user, claim),
            Err(wait) => {
                let entry = login_history::entry(
                    &user.id,
                    client,
                    now,
                    Outcome::RateLimited,
                    body.method.name(),
                );
                app.store.write(entry).await.map_err(anyhow::Error::from)?;
                return Err(LoginError::RateLimited(wait).into());
            }
        },
        (_, claimed) => {
            if let Ok(claim) = claimed {
                claim.release(app.store.as_ref(), now).await;
            }
            return Err(second_factors::challenge_expired());
        }
    };
    let factor = body.method;
    if !second_factors::methods(&user).contains(&factor) {
        claim.release(app.store.as_ref(), now).await;
        return Err(Problem::invalid_request(
            "method must be one of the methods offered at login.",
        ));
    }
    let spend = match second_factors::verify_factor(app, &user, factor, &body.code).await {
        Ok(Some(spend)) => spend,
        Ok(None) => {
            let counted = Some(presented.count_attempt());
            second_factors::record_wrong_factor(app, request, &user.id, factor, &claim, counted)
                .await?;
            return Err(second_factors::invalid_code());
        }
        Err(e) => {
            claim.release(app.store.as_ref(), now).await;
            return Err(e.into());
        }
    };
    let remember_me = challenge
        .and_then(|c| c.bool(attr::REMEMBER_ME))
        .unwrap_or(false);
    let session = NewSession::start(app, &user, client, remember_me, factor.name())?;
    // The password must still be the one the challenge was started with, and the
    // sessions' epoch the one read.
    let same_password = Cond::eq(attr::PASSWORD_HASH, user.password_hash.0.as_str());
    let account_cond = same_password.and(session.account_cond(&user));
    let mut writes = vec![
        presented.spend(),
        spend.account_write(&user.id, Vec::new(), account_cond),
        session.write(),
        login_history::entry(&user.id, client, app.now(), Outcome::Success, factor.name()),
        claim.succeeded(),
    ];
    let room = MAX_TRANSACTION_WRITES.saturating_sub(writes.len());
    let stored_sessions = sessions.context("reading an account's sessions")?.items;
    writes.extend(sessions::make_room(app, &user, &stored_sessions, room));
    let committed = app.store.transact(writes).await.map_err(|e| match e {
        e if e.failed_at(0).is_some() => second_factors::challenge_expired(),
        // The password or the sessions changed meanwhile, or the factor was spent by a
        // concurrent request (a replay).
        e if e.failed_at(1).is_some() => {
            let changed = e
                .failed_at(1)
                .and_then(|f| f.current.as_ref())
                .is_none_or(|item| {
                    item.s(attr::PASSWORD_HASH) != Some(user.password_hash.0.as_str())
                        || SessionEpoch::from_item(item) != user.sessions
                });
            match changed {
                true => second_factors::challenge_expired(),
                false => second_factors::invalid_code(),
            }
        }
        e => Problem::from(anyhow::Error::from(e).context("completing a two-step login")),
    });
    if let Err(problem) = committed {
        claim.release(app.store.as_ref(), app.now()).await;
        return Err(problem);
    }
    let spent_code = factor == Factor::BackupCode;
    let remaining = user.backup_codes.len() - usize::from(spent_code);
    let mut tokens = serde_json::to_value(session.tokens(app)?)
        .map_err(|e| Problem::from(anyhow::Error::from(e)))?;
    tokens["backup_codes_remaining"] = remaining.into();
    if remaining <= second_factors::LOW_BACKUP_CODES {
        tokens["warning"] = "backup_codes_low".into();
    }
    Ok(crate::http::json(StatusCode::OK, &tokens))
}
