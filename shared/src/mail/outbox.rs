//! An in-process [`Mailer`] for the local server and tests: nothing leaves the machine,
//! every "sent" email is kept in memory so `/dev/mail` and tests can read it back.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use serde::{Serialize, Serializer};

use super::{Email, Mailer};
use crate::clock::{Clock, UnixTime, rfc3339};

/// How many emails an [`Outbox`] keeps by default; older ones are dropped so a local
/// server left running for days does not grow without bound.
pub const DEFAULT_CAPACITY: usize = 1_000;

/// One email as the outbox recorded it. Serializes as
/// `{"to", "subject", "text", "html", "sent_at"}` with `sent_at` in RFC 3339.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SentMail {
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
    #[serde(serialize_with = "as_rfc3339")]
    pub sent_at: UnixTime,
}

fn as_rfc3339<S: Serializer>(at: &UnixTime, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&rfc3339(*at))
}

/// Keeps the newest [`DEFAULT_CAPACITY`] (or the chosen capacity) emails in memory.
pub struct Outbox {
    clock: Arc<dyn Clock>,
    capacity: usize,
    /// Newest first.
    sent: Mutex<VecDeque<SentMail>>,
}

impl Outbox {
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self::with_capacity(clock, DEFAULT_CAPACITY)
    }

    /// An outbox keeping at most `capacity` emails (at least one).
    pub fn with_capacity(clock: Arc<dyn Clock>, capacity: usize) -> Self {
        Self {
            clock,
            capacity: capacity.max(1),
            sent: Mutex::new(VecDeque::new()),
        }
    }

    /// Every kept email, newest first.
    pub fn all(&self) -> Vec<SentMail> {
        self.lock().iter().cloned().collect()
    }

    /// The kept emails sent to `address`, newest first. Addresses compare
    /// case-insensitively, as the product compares them.
    pub fn to(&self, address: &str) -> Vec<SentMail> {
        let wanted = address.trim().to_lowercase();
        self.lock()
            .iter()
            .filter(|mail| mail.to.to_lowercase() == wanted)
            .cloned()
            .collect()
    }

    fn lock(&self) -> MutexGuard<'_, VecDeque<SentMail>> {
        // A panic while holding the lock cannot leave the queue half-updated (every
        // change is a single push or pop), so a poisoned lock is still safe to use.
        self.sent.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait]
impl Mailer for Outbox {
    async fn send(&self, email: Email) -> anyhow::Result<()> {
        let mail = SentMail {
            to: email.to,
            subject: email.subject,
            text: email.text,
            html: email.html,
            sent_at: self.clock.now(),
        };
        tracing::debug!(subject = %mail.subject, "email kept in the local outbox");
        let mut sent = self.lock();
        sent.push_front(mail);
        sent.truncate(self.capacity);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    fn email(to: &str, subject: &str) -> Email {
        Email {
            to: to.to_owned(),
            subject: subject.to_owned(),
            text: format!("text of {subject}"),
            html: format!("<p>html of {subject}</p>"),
        }
    }

    #[tokio::test]
    async fn sent_mail_is_listed_newest_first_with_its_time() -> anyhow::Result<()> {
        let clock = ManualClock::starting_now();
        let outbox = Outbox::new(clock.clone());
        let start = clock.now();
        outbox.send(email("a@example.com", "first")).await?;
        clock.advance(5);
        outbox.send(email("b@example.com", "second")).await?;

        let all = outbox.all();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].subject, "second");
        assert_eq!(all[0].sent_at, start + 5);
        assert_eq!(all[1].subject, "first");
        assert_eq!(all[1].sent_at, start);
        assert_eq!(all[1].text, "text of first");
        assert_eq!(all[1].html, "<p>html of first</p>");
        Ok(())
    }

    #[tokio::test]
    async fn mail_to_one_address_is_found_regardless_of_case() -> anyhow::Result<()> {
        let outbox = Outbox::new(ManualClock::starting_now());
        outbox.send(email("ann@example.com", "one")).await?;
        outbox.send(email("bob@example.com", "other")).await?;
        outbox.send(email("Ann@Example.com", "two")).await?;

        let subjects: Vec<_> = outbox
            .to("ANN@example.com")
            .into_iter()
            .map(|m| m.subject)
            .collect();
        assert_eq!(subjects, ["two", "one"]);
        assert!(outbox.to("nobody@example.com").is_empty());
        Ok(())
    }

    #[tokio::test]
    async fn only_the_newest_mail_is_kept() -> anyhow::Result<()> {
        let outbox = Outbox::with_capacity(ManualClock::starting_now(), 3);
        for n in 0..5 {
            outbox
                .send(email("a@example.com", &format!("mail {n}")))
                .await?;
        }
        let subjects: Vec<_> = outbox.all().into_iter().map(|m| m.subject).collect();
        assert_eq!(subjects, ["mail 4", "mail 3", "mail 2"]);
        Ok(())
    }

    #[tokio::test]
    async fn the_default_outbox_keeps_a_thousand_emails() -> anyhow::Result<()> {
        let outbox = Outbox::new(ManualClock::starting_now());
        for n in 0..DEFAULT_CAPACITY + 10 {
            outbox
                .send(email("a@example.com", &format!("mail {n}")))
                .await?;
        }
        let all = outbox.all();
        assert_eq!(all.len(), DEFAULT_CAPACITY);
        assert_eq!(all[0].subject, format!("mail {}", DEFAULT_CAPACITY + 9));
        Ok(())
    }

    #[test]
    fn sent_mail_serializes_with_an_rfc3339_time() -> anyhow::Result<()> {
        let mail = SentMail {
            to: "a@example.com".to_owned(),
            subject: "s".to_owned(),
            text: "t".to_owned(),
            html: "<p>h</p>".to_owned(),
            sent_at: 0,
        };
        let json = serde_json::to_value(&mail)?;
        assert_eq!(
            json,
            serde_json::json!({
                "to": "a@example.com",
                "subject": "s",
                "text": "t",
                "html": "<p>h</p>",
                "sent_at": "1970-01-01T00:00:00Z",
            })
        );
        Ok(())
    }
}
