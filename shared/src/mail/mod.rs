//! Outgoing mail: the messages the product sends, rendered from template files, and
//! the two ways of sending them (SES v2 in AWS, an in-process outbox locally).

pub mod messages;
pub mod outbox;
pub mod ses;
pub mod templates;

use async_trait::async_trait;

/// One rendered email, ready to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Email {
    /// The account's stored address (never one typed into a request).
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// Sends rendered mail.
#[async_trait]
pub trait Mailer: Send + Sync {
    async fn send(&self, email: Email) -> anyhow::Result<()>;
}
