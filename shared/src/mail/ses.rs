//! The production [`Mailer`]: Amazon SES v2 `SendEmail` with simple content (subject,
//! plain-text and HTML parts, all UTF-8), so SES builds the MIME message itself.

use anyhow::Context;
use async_trait::async_trait;
use aws_sdk_sesv2::error::DisplayErrorContext;
use aws_sdk_sesv2::types::{Body, Content, Destination, EmailContent, Message};

use super::{Email, Mailer};

/// Subjects and bodies contain non-ASCII text (names, "…"); SES assumes 7-bit ASCII
/// unless told otherwise.
const CHARSET: &str = "UTF-8";

/// Sends mail through SES v2 from one verified identity.
#[derive(Clone, Debug)]
pub struct SesMailer {
    client: aws_sdk_sesv2::Client,
    from: String,
    configuration_set: Option<String>,
}

impl SesMailer {
    /// `from` is the sender (`no-reply@example.com` or `Name <no-reply@example.com>`),
    /// which must be a verified SES identity; `configuration_set` routes bounce and
    /// complaint events when given.
    pub fn new(
        client: aws_sdk_sesv2::Client,
        from: String,
        configuration_set: Option<String>,
    ) -> Self {
        Self {
            client,
            from,
            configuration_set,
        }
    }
}

fn content(data: String) -> anyhow::Result<Content> {
    Content::builder()
        .data(data)
        .charset(CHARSET)
        .build()
        .context("building SES email content")
}

#[async_trait]
impl Mailer for SesMailer {
    async fn send(&self, email: Email) -> anyhow::Result<()> {
        let message = Message::builder()
            .subject(content(email.subject)?)
            .body(
                Body::builder()
                    .text(content(email.text)?)
                    .html(content(email.html)?)
                    .build(),
            )
            .build();
        let output = self
            .client
            .send_email()
            .from_email_address(&self.from)
            .destination(Destination::builder().to_addresses(email.to).build())
            .content(EmailContent::builder().simple(message).build())
            .set_configuration_set_name(self.configuration_set.clone())
            .send()
            .await
            // The SDK error's own Display is only "service error"; the context form
            // carries SES's code and message (e.g. MessageRejected: address not verified),
            // which can name the recipient: only its domain is kept.
            .map_err(|err| {
                anyhow::anyhow!(
                    "{}",
                    crate::redact::addresses(&DisplayErrorContext(err).to_string())
                )
            })
            .context("sending an email with SES SendEmail")?;
        // The message id ties our logs to SES's delivery, bounce and complaint events;
        // the address is left out of logs on purpose.
        tracing::info!(
            message_id = output.message_id().unwrap_or("-"),
            "email sent"
        );
        Ok(())
    }
}
