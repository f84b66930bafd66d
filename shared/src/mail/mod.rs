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

/// What SES has reported about mail to an address (`mail-events` records it): whether
/// the product may still send there, and what.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Delivery {
    /// Nothing reported: mail goes out.
    #[default]
    Deliverable,
    /// A permanent bounce: the address does not take mail, so nothing is sent to it
    /// (every send would bounce again and count against the sender's reputation).
    Bounced,
    /// The person marked a message as spam: only mail they ask for by an action of
    /// theirs (a verification, a reset link) is sent; notices are not.
    Complained,
}

impl Delivery {
    /// The value stored in `mail_delivery` and shown by `GET /v1/account`.
    pub fn as_str(self) -> &'static str {
        match self {
            Delivery::Deliverable => "deliverable",
            Delivery::Bounced => "bounced",
            Delivery::Complained => "complained",
        }
    }

    /// The stored value; anything unknown (or nothing) is deliverable.
    pub fn parse(stored: Option<&str>) -> Delivery {
        match stored {
            Some("bounced") => Delivery::Bounced,
            Some("complained") => Delivery::Complained,
            _ => Delivery::Deliverable,
        }
    }

    /// Whether `message` may be sent to an address in this state.
    pub fn allows(self, message: &messages::Message) -> bool {
        match self {
            Delivery::Deliverable => true,
            Delivery::Bounced => false,
            Delivery::Complained => message.is_requested(),
        }
    }
}
