//! Email verification: a 24-hour link and 6-digit code per account (only the newest
//! pair works), redeeming either, and resending with per-address cooldowns.

use anyhow::Context;
use http::StatusCode;
use serde::Deserialize;

use crate::app::App;
use crate::http::{ApiRequest, ApiResponse, FieldError, Problem};
use crate::mail::Delivery;
use crate::mail::messages::Message;
use crate::protections::rate_limit::RateLimit;
use crate::records::{User, attr, keys};
use crate::store::{Change, Cond, EXPIRES_AT, Item, Key, Write, WriteError, schema};
use crate::values::email::EmailAddress;
use crate::values::secret::{self, Secret, Token};

/// How long a verification link and code work.
pub const VALID_HOURS: i64 = 24;
/// Wrong codes allowed before a code dies.
pub const MAX_CODE_ATTEMPTS: i64 = 5;
/// The least time between two verification emails to one address.
pub const RESEND_COOLDOWN_SECONDS: i64 = 60;
/// At most this many verification emails per address per hour.
pub const MAX_SENDS_PER_HOUR: i64 = 5;
const HOUR: i64 = 3_600;

/// A freshly issued verification: the token and code exist in clear only here, on
/// their way into one email.
pub struct Pending {
    user_id: String,
    token: Token,
    code: Secret,
    issued_at: i64,
}

fn code_digest(user_id: &str, code: &str) -> String {
    secret::sha256_hex(&format!("{user_id}:{code}"))
}

impl Pending {
    pub fn issue(user_id: &str, now: i64) -> anyhow::Result<Pending> {
        let code = format!("{:06}", secret::random_below(1_000_000)?);
        Ok(Pending {
            user_id: user_id.to_owned(),
            token: Token::generate(user_id)?,
            code: Secret::new(code),
            issued_at: now,
        })
    }

    /// The verification item. `previous` is the verification it replaces, whose
    /// hourly send window it continues.
    pub fn to_item(&self, previous: Option<&Item>) -> Item {
        let now = self.issued_at;
        let (window_start, window_sends) = match previous {
            Some(p) => match (p.n(attr::WINDOW_START), p.n(attr::WINDOW_SENDS)) {
                (Some(start), Some(sends)) if now - start < HOUR => (start, sends + 1),
                _ => (now, 1),
            },
            None => (now, 1),
        };
        Item::new(&keys::verification(&self.user_id))
            .with(attr::USER_ID, self.user_id.as_str())
            .with(attr::TOKEN_HASH, self.token.digest())
            .with(
                attr::CODE_HASH,
                code_digest(&self.user_id, self.code.expose()),
            )
            .with(attr::CODE_ATTEMPTS, 0)
            .with(attr::SENT_AT, now)
            .with(attr::WINDOW_START, window_start)
            .with(attr::WINDOW_SENDS, window_sends)
            .with(EXPIRES_AT, now + VALID_HOURS * HOUR)
    }

    pub fn message(&self, app: &App) -> Message {
        Message::VerifyEmail {
            link: app
                .config
                .app_base_url
                .link("/verify-email", &self.token.expose()),
            code: self.code.expose().to_owned(),
            valid_hours: VALID_HOURS,
        }
    }
}

/// Whether another verification email may go to an address whose last one is
/// `previous`: one a minute and five an hour.
pub fn may_resend(previous: Option<&Item>, now: i64) -> bool {
    let Some(previous) = previous else {
        return true;
    };
    let sent_at = previous.n(attr::SENT_AT).unwrap_or(i64::MIN);
    let window_start = previous.n(attr::WINDOW_START).unwrap_or(i64::MIN);
    let window_sends = previous.n(attr::WINDOW_SENDS).unwrap_or(0);
    now - sent_at >= RESEND_COOLDOWN_SECONDS
        && (now - window_start >= HOUR || window_sends < MAX_SENDS_PER_HOUR)
}

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("the verification link is unknown or used")]
    InvalidToken,
    #[error("the verification link or code has expired")]
    TokenExpired,
    #[error("the verification code is wrong")]
    InvalidCode,
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<VerifyError> for Problem {
    fn from(error: VerifyError) -> Problem {
        match error {
            VerifyError::InvalidToken => Problem::bad_request(
                "invalid_token",
                "This link is not valid or was already used. Ask for a new one.",
            ),
            VerifyError::TokenExpired => Problem::bad_request(
                "token_expired",
                "This link or code has expired. Ask for a new one.",
            ),
            VerifyError::InvalidCode => {
                Problem::bad_request("invalid_code", "That code is not right.")
            }
            VerifyError::Unexpected(e) => Problem::from(e),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VerifyRequest {
    token: Option<Secret>,
    email: Option<String>,
    code: Option<Secret>,
}

/// `POST /v1/email/verify`
pub async fn verify(app: &App, request: &ApiRequest) -> Result<ApiResponse, Problem> {
    let body: VerifyRequest = request.json()?;
    match (body.token, body.email, body.code) {
        (Some(token), None, None) => verify_by_token(app, &token).await?,
        (None, Some(email), Some(code)) => {
            let email = EmailAddress::parse(&email)
                .map_err(|_| Problem::validation(vec![FieldError::new("email", "invalid")]))?;
            verify_by_code(app, request, &email, &code).await?
        }
        _ => {
            return Err(Problem::invalid_request(
                "Send either {\"token\"} or {\"email\", \"code\"}.",
            ));
        }
    }
    Ok(crate::http::status(StatusCode::OK, "verified"))
}

/// Marks the account verified, in the same transaction that spends the verification
/// (whose condition is given).
fn redeem(user_id: &str, spend: Cond) -> Vec<Write> {
    let index = schema::UNVERIFIED_BY_DAY;
    vec![
        Write::delete(keys::verification(user_id)).when(spend),
        Write::update(
            keys::user(user_id),
            vec![
                Change::set(attr::EMAIL_VERIFIED, true),
                Change::remove(index.pk),
                Change::remove(index.sk),
            ],
        )
        .when(Cond::ItemExists),
    ]
}

async fn verify_by_token(app: &App, text: &Secret) -> Result<(), VerifyError> {
    let token = Token::parse(text.expose()).ok_or(VerifyError::InvalidToken)?;
    let digest = token.digest();
    let spend = Cond::eq(attr::TOKEN_HASH, digest.as_str());
    match app.store.transact(redeem(token.selector(), spend)).await {
        Ok(()) => Ok(()),
        Err(e @ crate::store::TransactError::ConditionFailed { .. }) => {
            let expired = e
                .failed_at(0)
                .and_then(|f| f.current.as_ref())
                .is_some_and(|item| {
                    item.s(attr::TOKEN_HASH)
                        .is_some_and(|stored| secret::digests_match(stored, &digest))
                        && item.is_expired(app.now())
                });
            Err(if expired {
                VerifyError::TokenExpired
            } else {
                VerifyError::InvalidToken
            })
        }
        Err(crate::store::TransactError::Unexpected(e)) => {
            Err(e.context("redeeming a verification link").into())
        }
    }
}

/// The id used in place of an account's for an address with no account, so that a code
/// for it costs the same conditional write as one for a real account: no account has
/// it (ids are UUIDs), so the write always finds nothing.
const NO_ACCOUNT: &str = "no-account";

/// Wrong codes (in fact all code attempts) an address takes in a day, across resends.
pub const CODE_ATTEMPTS_PER_DAY: i64 = 10;

/// The counter of an address's code attempts on one day (UTC), kept for that day.
fn daily_attempts_write(email: &EmailAddress, now: i64) -> Write {
    let day = now.div_euclid(86_400);
    Write::update(
        Key::new(format!("VERIFYCODE#{}", email.canonical()), day.to_string()),
        vec![
            Change::add(attr::COUNT, 1),
            Change::set(EXPIRES_AT, (day + 1) * 86_400),
        ],
    )
    .when(Cond::attr_absent(attr::COUNT).or(Cond::lt(attr::COUNT, CODE_ATTEMPTS_PER_DAY)))
}

/// `{"email", "code"}`: the same answer (`invalid_code`) and the same work for an
/// unknown, verified, pending or expired address: (1) the address's claim read, its
/// daily attempt counter and the caller's IP counter, in parallel; (2) one conditional
/// write counting the attempt on the account's pending verification (five per code;
/// for no account, on an id no account has); (3) only for the right code, the
/// transaction that redeems it.
async fn verify_by_code(
    app: &App,
    request: &ApiRequest,
    email: &EmailAddress,
    code: &Secret,
) -> Result<(), Problem> {
    let code = code.expose().trim();
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(VerifyError::InvalidCode.into());
    }
    let now = app.now();
    let limit = RateLimit::per_hour("verify", app.config.limits.verify_attempts_per_ip_per_hour);
    let claim_key = keys::email_claim(email.canonical());
    let (claim, daily, per_ip) = tokio::join!(
        app.store.get(&claim_key),
        app.store.write(daily_attempts_write(email, now)),
        limit.check_ip(app, &request.client),
    );
    per_ip?;
    let claim = claim.context("reading an email claim")?;
    let within_today = match daily {
        Ok(_) => true,
        Err(WriteError::ConditionFailed { .. }) => false,
        Err(WriteError::Unexpected(e)) => {
            return Err(e.context("counting a verification code attempt").into());
        }
    };
    let user_id = claim
        .as_ref()
        .and_then(|c| c.s(attr::USER_ID))
        .unwrap_or(NO_ACCOUNT)
        .to_owned();
    // Count the attempt before judging it, so a burst of parallel guesses still gets
    // only five tries between them.
    let attempt = app
        .store
        .write(
            Write::update(
                keys::verification(&user_id),
                vec![Change::add(attr::CODE_ATTEMPTS, 1)],
            )
            .when(Cond::ItemExists.and(Cond::lt(attr::CODE_ATTEMPTS, MAX_CODE_ATTEMPTS))),
        )
        .await;
    let pending = match attempt {
        Ok(Some(item)) => item,
        Ok(None) | Err(WriteError::ConditionFailed { .. }) => {
            return Err(VerifyError::InvalidCode.into());
        }
        Err(WriteError::Unexpected(e)) => {
            return Err(e.context("counting a verification code attempt").into());
        }
    };
    let digest = code_digest(&user_id, code);
    let right = pending
        .s(attr::CODE_HASH)
        .is_some_and(|stored| secret::digests_match(stored, &digest));
    if !right || !within_today {
        return Err(VerifyError::InvalidCode.into());
    }
    let spend = Cond::eq(attr::CODE_HASH, digest.as_str());
    match app.store.transact(redeem(&user_id, spend)).await {
        Ok(()) => Ok(()),
        // A resend or another redemption got there first.
        Err(crate::store::TransactError::ConditionFailed { .. }) => {
            Err(VerifyError::InvalidCode.into())
        }
        Err(crate::store::TransactError::Unexpected(e)) => {
            Err(e.context("redeeming a verification code").into())
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResendRequest {
    email: String,
}

/// `POST /v1/email/verify/resend`: always `202`; mails a fresh link and code to an
/// unverified account within the cooldowns, and nothing otherwise.
pub async fn resend(app: &App, request: &ApiRequest) -> Result<ApiResponse, Problem> {
    let body: ResendRequest = request.json()?;
    let email = EmailAddress::parse(&body.email)
        .map_err(|_| Problem::validation(vec![FieldError::new("email", "invalid")]))?;
    let limit = RateLimit::per_hour("resend", app.config.limits.resends_per_ip_per_hour);
    limit.check_ip(app, &request.client).await?;
    app.with_floor(resend_for_address(app, &email)).await?;
    Ok(crate::http::status(
        StatusCode::ACCEPTED,
        "verification_sent",
    ))
}

async fn resend_for_address(app: &App, email: &EmailAddress) -> anyhow::Result<()> {
    let claim = app
        .store
        .get(&keys::email_claim(email.canonical()))
        .await
        .context("reading an email claim")?;
    let Some(user_id) = claim.as_ref().and_then(|c| c.s(attr::USER_ID)) else {
        return Ok(());
    };
    let (user_key, verification_key) = (keys::user(user_id), keys::verification(user_id));
    let items = app
        .store
        .get_many(&[user_key.clone(), verification_key.clone()])
        .await
        .context("reading an account and its verification")?;
    let find = |key: &crate::store::Key| items.iter().find(|i| i.key().as_ref() == Some(key));
    let Some(user) = find(&user_key).map(User::from_item).transpose()? else {
        return Ok(());
    };
    resend_to(app, &user, find(&verification_key)).await
}

/// Replaces an unverified account's verification with a fresh one and mails it, if
/// the cooldowns allow; a concurrent resend that wins makes this one a no-op.
pub async fn resend_to(app: &App, user: &User, previous: Option<&Item>) -> anyhow::Result<()> {
    let now = app.now();
    // A hard-bounced address is not tried again: the person is told to fix it instead.
    if user.email_verified || user.mail_delivery == Delivery::Bounced || !may_resend(previous, now)
    {
        return Ok(());
    }
    let pending = Pending::issue(&user.id, now)?;
    let unchanged = match previous.and_then(|p| p.n(attr::SENT_AT)) {
        Some(sent_at) => Cond::eq(attr::SENT_AT, sent_at),
        None => Cond::ItemAbsent,
    };
    match app
        .store
        .write(Write::put(pending.to_item(previous)).when(unchanged))
        .await
    {
        Ok(_) => {
            app.send_quietly(&user.email, user.mail_delivery, pending.message(app))
                .await;
            Ok(())
        }
        Err(WriteError::ConditionFailed { .. }) => Ok(()),
        Err(WriteError::Unexpected(e)) => Err(e.context("storing a new verification")),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn sent(sent_at: i64, window_start: i64, window_sends: i64) -> Item {
        Item::default()
            .with(attr::SENT_AT, sent_at)
            .with(attr::WINDOW_START, window_start)
            .with(attr::WINDOW_SENDS, window_sends)
    }

    #[test]
    fn a_resend_waits_a_minute_after_the_last_email() {
        assert!(!may_resend(Some(&sent(1_000, 1_000, 1)), 1_059));
        assert!(may_resend(Some(&sent(1_000, 1_000, 1)), 1_060));
    }

    #[test]
    fn at_most_five_emails_go_out_in_an_hour() {
        assert!(!may_resend(Some(&sent(2_000, 1_000, 5)), 2_100));
        assert!(may_resend(Some(&sent(2_000, 1_000, 5)), 1_000 + HOUR));
    }

    #[test]
    fn the_hourly_window_carries_over_to_the_next_verification() {
        let first = Pending {
            user_id: "u".into(),
            token: Token::parse("u.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA").unwrap(),
            code: Secret::new("123456"),
            issued_at: 1_000,
        };
        let item = first.to_item(Some(&sent(900, 800, 3)));
        assert_eq!(item.n(attr::WINDOW_START), Some(800));
        assert_eq!(item.n(attr::WINDOW_SENDS), Some(4));
        assert_eq!(item.n(EXPIRES_AT), Some(1_000 + 24 * HOUR));
    }
}
