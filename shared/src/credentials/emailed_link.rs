//! Emailed one-hour recovery links (password reset, security-question reset) as
//! credentials: issuing one per account at most once a minute, checking a presented
//! token, and spending it in the same transaction as the change it authorises.

use http::StatusCode;

use crate::http::Problem;
use crate::mail::messages::Message;
use crate::records::{attr, keys};
use crate::store::{Change, Cond, EXPIRES_AT, Item, Key, Write};
use crate::values::secret::{self, Token};

/// How long a link works.
pub const VALID_SECONDS: i64 = 3_600;
/// The least time between two links to one account.
pub const COOLDOWN_SECONDS: i64 = 60;
/// Wrong second factors a link survives (a reset of a two-step account needs one).
pub const FACTOR_ATTEMPTS: i64 = 5;
/// The record outlives its link by a day so that an expired link can be told apart
/// from an unknown one; DynamoDB's TTL removes it after that.
const KEPT_AFTER_EXPIRY_SECONDS: i64 = 24 * 3_600;

/// What a link recovers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    PasswordReset,
    SecurityQuestionReset,
}

impl Purpose {
    pub fn key(self, user_id: &str) -> Key {
        match self {
            Purpose::PasswordReset => keys::password_reset(user_id),
            Purpose::SecurityQuestionReset => keys::security_question_reset(user_id),
        }
    }

    /// The deletes that kill every outstanding recovery link of an account (a password
    /// change or reset makes them all stop working).
    pub fn kill_all(user_id: &str) -> [Write; 2] {
        [
            Write::delete(Purpose::PasswordReset.key(user_id)),
            Write::delete(Purpose::SecurityQuestionReset.key(user_id)),
        ]
    }

    /// The front-end page the link opens.
    pub fn page(self) -> &'static str {
        match self {
            Purpose::PasswordReset => "/reset-password",
            Purpose::SecurityQuestionReset => "/reset-security-question",
        }
    }

    /// The email that carries a link.
    pub fn message(self, link: String) -> Message {
        let valid_minutes = VALID_SECONDS / 60;
        match self {
            Purpose::PasswordReset => Message::PasswordResetLink {
                link,
                valid_minutes,
            },
            Purpose::SecurityQuestionReset => Message::SecurityQuestionResetLink {
                link,
                valid_minutes,
            },
        }
    }
}

/// A fresh link for an account: its token (for the email only) and the conditional put
/// that stores its digest, replacing (so ending) the account's previous link unless that
/// one went out less than a minute ago.
pub fn issue(user_id: &str, purpose: Purpose, now: i64) -> anyhow::Result<(Token, Write)> {
    let token = Token::generate(user_id)?;
    let item = Item::new(&purpose.key(user_id))
        .with(attr::USER_ID, user_id)
        .with(attr::TOKEN_HASH, token.digest())
        .with(attr::SENT_AT, now)
        .with(attr::ATTEMPTS, 0)
        .with(attr::VALID_UNTIL, now + VALID_SECONDS)
        .with(EXPIRES_AT, now + VALID_SECONDS + KEPT_AFTER_EXPIRY_SECONDS);
    let cooled_down = Cond::ItemAbsent.or(Cond::le(attr::SENT_AT, now - COOLDOWN_SECONDS));
    Ok((token, Write::put(item).when(cooled_down)))
}

/// Why a presented link does not work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    #[error("the link is unknown or used")]
    Invalid,
    #[error("the link has expired")]
    Expired,
}

impl From<LinkError> for Problem {
    fn from(error: LinkError) -> Problem {
        match error {
            LinkError::Invalid => Problem::new(
                StatusCode::BAD_REQUEST,
                "invalid_token",
                "This link is not valid or was already used. Ask for a new one.",
            ),
            LinkError::Expired => Problem::new(
                StatusCode::BAD_REQUEST,
                "token_expired",
                "This link has expired. Ask for a new one.",
            ),
        }
    }
}

/// A presented token, parsed: the account it names and its digest.
pub struct Presented {
    pub user_id: String,
    digest: String,
}

impl Presented {
    pub fn parse(text: &str) -> Result<Presented, LinkError> {
        let token = Token::parse(text).ok_or(LinkError::Invalid)?;
        Ok(Presented {
            user_id: token.selector().to_owned(),
            digest: token.digest(),
        })
    }

    /// Checks the token against the account's pending link record (as read).
    pub fn check(&self, record: Option<&Item>, now: i64) -> Result<(), LinkError> {
        let record = record.ok_or(LinkError::Invalid)?;
        let matches = record
            .s(attr::TOKEN_HASH)
            .is_some_and(|stored| secret::digests_match(stored, &self.digest));
        let worn_out = record.n(attr::ATTEMPTS).unwrap_or(0) >= FACTOR_ATTEMPTS;
        if !matches || worn_out {
            return Err(LinkError::Invalid);
        }
        if record.n(attr::VALID_UNTIL).is_none_or(|until| until <= now) {
            return Err(LinkError::Expired);
        }
        Ok(())
    }

    /// The write that spends the link: it succeeds once, and only while the link is
    /// still the account's newest, unexpired, and has not taken five wrong factors.
    pub fn spend(&self, purpose: Purpose, now: i64) -> Write {
        Write::delete(purpose.key(&self.user_id)).when(
            Cond::eq(attr::TOKEN_HASH, self.digest.as_str())
                .and(Cond::gt(attr::VALID_UNTIL, now))
                .and(
                    Cond::attr_absent(attr::ATTEMPTS).or(Cond::lt(attr::ATTEMPTS, FACTOR_ATTEMPTS)),
                ),
        )
    }

    /// Counts a wrong second factor against the link: after five, it stops working.
    pub fn count_wrong_factor(&self, purpose: Purpose) -> Write {
        Write::update(
            purpose.key(&self.user_id),
            vec![Change::add(attr::ATTEMPTS, 1)],
        )
        .when(Cond::eq(attr::TOKEN_HASH, self.digest.as_str()))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn record(token: &Token, attempts: i64) -> Item {
        Item::new(&keys::password_reset("u"))
            .with(attr::TOKEN_HASH, token.digest())
            .with(attr::ATTEMPTS, attempts)
            .with(attr::VALID_UNTIL, 1_000 + VALID_SECONDS)
    }

    #[test]
    fn a_link_works_until_it_expires_or_takes_five_wrong_factors() {
        let token = Token::generate("u").unwrap();
        let presented = Presented::parse(&token.expose()).unwrap();
        assert_eq!(presented.check(Some(&record(&token, 0)), 1_000), Ok(()));
        assert_eq!(presented.check(Some(&record(&token, 4)), 1_000), Ok(()));
        assert_eq!(
            presented.check(Some(&record(&token, FACTOR_ATTEMPTS)), 1_000),
            Err(LinkError::Invalid)
        );
        assert_eq!(
            presented.check(Some(&record(&token, 0)), 1_000 + VALID_SECONDS),
            Err(LinkError::Expired)
        );
        let other = Token::generate("u").unwrap();
        assert_eq!(
            presented.check(Some(&record(&other, 0)), 1_000),
            Err(LinkError::Invalid)
        );
    }

    #[test]
    fn spending_a_link_requires_it_to_be_unworn() {
        let token = Token::generate("u").unwrap();
        let presented = Presented::parse(&token.expose()).unwrap();
        let spend = presented.spend(Purpose::PasswordReset, 1_000);
        let cond = spend.cond().unwrap();
        assert!(cond.holds_for(Some(&record(&token, 4))));
        assert!(!cond.holds_for(Some(&record(&token, FACTOR_ATTEMPTS))));
    }
}
