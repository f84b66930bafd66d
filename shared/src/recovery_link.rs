//! Emailed one-hour recovery links (password reset, security-question reset): issuing
//! one per account at most once a minute, checking a presented token, and spending it
//! in the same transaction as the change it authorises.

use http::StatusCode;

use crate::app::App;
use crate::http::Problem;
use crate::mail::messages::Message;
use crate::records::{User, attr, keys};
use crate::secret::{self, Token};
use crate::store::{Cond, EXPIRES_AT, Item, Key, Write, WriteError};

/// How long a link works.
pub const VALID_SECONDS: i64 = 3_600;
/// The least time between two links to one account.
pub const COOLDOWN_SECONDS: i64 = 60;
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

    /// The front-end page the link opens.
    pub fn page(self) -> &'static str {
        match self {
            Purpose::PasswordReset => "/reset-password",
            Purpose::SecurityQuestionReset => "/reset-security-question",
        }
    }

    fn message(self, link: String) -> Message {
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

/// Issues a fresh link for the account and mails it to the stored address, unless one
/// went out less than a minute ago. A new link replaces the old one, which stops
/// working.
pub async fn issue_and_send(app: &App, user: &User, purpose: Purpose) -> anyhow::Result<()> {
    let now = app.now();
    let token = Token::generate(&user.id)?;
    let item = Item::new(&purpose.key(&user.id))
        .with(attr::USER_ID, user.id.as_str())
        .with(attr::TOKEN_HASH, token.digest())
        .with(attr::SENT_AT, now)
        .with(attr::VALID_UNTIL, now + VALID_SECONDS)
        .with(EXPIRES_AT, now + VALID_SECONDS + KEPT_AFTER_EXPIRY_SECONDS);
    let cooled_down = Cond::ItemAbsent.or(Cond::le(attr::SENT_AT, now - COOLDOWN_SECONDS));
    match app.store.write(Write::put(item).when(cooled_down)).await {
        Ok(_) => {
            let link = app
                .config
                .app_base_url
                .link(purpose.page(), &token.expose());
            app.send_quietly(&user.email, purpose.message(link)).await;
            Ok(())
        }
        Err(WriteError::ConditionFailed { .. }) => Ok(()),
        Err(WriteError::Unexpected(e)) => Err(e.context("storing a recovery link")),
    }
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
        if !matches {
            return Err(LinkError::Invalid);
        }
        if record.n(attr::VALID_UNTIL).is_none_or(|until| until <= now) {
            return Err(LinkError::Expired);
        }
        Ok(())
    }

    /// The write that spends the link: it succeeds once, and only while the link is
    /// still the account's newest and unexpired.
    pub fn spend(&self, purpose: Purpose, now: i64) -> Write {
        Write::delete(purpose.key(&self.user_id)).when(
            Cond::eq(attr::TOKEN_HASH, self.digest.as_str()).and(Cond::gt(attr::VALID_UNTIL, now)),
        )
    }
}
