//! The `mail-events` function: what SES reports after a send (bounces, complaints,
//! delivery delays, rejections; the configuration set publishes them to EventBridge),
//! marked on the account whose address it names, so that the product stops mailing an
//! address that cannot take mail and tells its owner to fix it.
//!
//! The event is EventBridge's envelope around SES's event record; the record has the
//! shape SES documents for event publishing ("Contents of event data that Amazon SES
//! publishes"). Only the fields used here are read, so a record with more fields (SES
//! adds some over time) still parses.

use anyhow::Context;
use serde::Deserialize;

use crate::app::App;
use crate::mail::Delivery;
use crate::records::{attr, keys};
use crate::store::{Change, Cond, TransactError, Write};
use crate::telemetry::metrics;
use crate::values::email::EmailAddress;

/// EventBridge's envelope: `detail` is SES's event record.
#[derive(Debug, Deserialize)]
struct EventBridgeEvent {
    detail: SesEvent,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SesEvent {
    event_type: String,
    #[serde(default)]
    bounce: Option<Bounce>,
    #[serde(default)]
    complaint: Option<Complaint>,
    #[serde(default)]
    delivery_delay: Option<DeliveryDelay>,
    #[serde(default)]
    reject: Option<Reject>,
    mail: Mail,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Bounce {
    /// `Permanent`, `Transient` or `Undetermined`.
    bounce_type: String,
    #[serde(default)]
    bounce_sub_type: String,
    bounced_recipients: Vec<Recipient>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Complaint {
    complained_recipients: Vec<Recipient>,
    #[serde(default)]
    complaint_feedback_type: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DeliveryDelay {
    #[serde(default)]
    delay_type: String,
    delayed_recipients: Vec<Recipient>,
}

#[derive(Debug, Deserialize)]
struct Reject {
    #[serde(default)]
    reason: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Recipient {
    email_address: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Mail {
    /// Ties the event to the `SendEmail` that `mail::ses` logged.
    message_id: String,
}

/// What one event changed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Accounts whose address is now marked bounced or complained.
    pub marked: usize,
    /// Recipients the event named that are nobody's address any more (the account moved
    /// or was deleted), or an address already marked bounced that a complaint left so.
    pub unmatched: usize,
}

/// Handles one event from the configuration set's EventBridge rule. An event this
/// function does not act on (a transient bounce, a delay, a rejection) is counted and
/// logged; only a malformed event or a storage failure is an error (EventBridge then
/// retries it).
pub async fn handle_event(app: &App, event: &serde_json::Value) -> anyhow::Result<Report> {
    let event = EventBridgeEvent::deserialize(event).context("reading an SES event")?;
    let record = event.detail;
    let message_id = record.mail.message_id.as_str();
    let (delivery, recipients) = match record.event_type.as_str() {
        "Bounce" => {
            let bounce = record.bounce.context("a Bounce event without its bounce")?;
            if bounce.bounce_type != "Permanent" {
                // SES retried a soft bounce for hours already; the address may work later.
                metrics::count("MailBouncedTransient", &bounce.bounce_sub_type);
                tracing::info!(
                    message_id,
                    bounce_type = bounce.bounce_type,
                    sub_type = bounce.bounce_sub_type,
                    "a transient bounce: the address stays deliverable"
                );
                return Ok(Report::default());
            }
            metrics::count("MailBounced", &bounce.bounce_sub_type);
            (Delivery::Bounced, bounce.bounced_recipients)
        }
        "Complaint" => {
            let complaint = record
                .complaint
                .context("a Complaint event without its complaint")?;
            let feedback = complaint.complaint_feedback_type.unwrap_or_default();
            metrics::count("MailComplained", &feedback);
            (Delivery::Complained, complaint.complained_recipients)
        }
        "DeliveryDelay" => {
            let delay = record.delivery_delay;
            let (delay_type, recipients) = delay
                .map(|d| (d.delay_type, d.delayed_recipients.len()))
                .unwrap_or_default();
            metrics::count("MailDelayed", &delay_type);
            tracing::warn!(message_id, delay_type, recipients, "SES delays a delivery");
            return Ok(Report::default());
        }
        "Reject" => {
            let reason = record.reject.map(|r| r.reason).unwrap_or_default();
            metrics::count("MailRejected", &reason);
            tracing::error!(message_id, reason, "SES rejected a message");
            return Ok(Report::default());
        }
        other => {
            tracing::info!(message_id, event_type = other, "an SES event not acted on");
            return Ok(Report::default());
        }
    };
    let mut report = Report::default();
    for recipient in recipients {
        let Ok(address) = EmailAddress::parse(&recipient.email_address) else {
            tracing::warn!(
                message_id,
                "an SES event names a recipient that is no address"
            );
            report.unmatched += 1;
            continue;
        };
        if mark(app, &address, delivery).await? {
            report.marked += 1;
        } else {
            report.unmatched += 1;
        }
    }
    tracing::info!(
        message_id,
        delivery = delivery.as_str(),
        marked = report.marked,
        unmatched = report.unmatched,
        "SES reported on a message"
    );
    Ok(report)
}

/// Marks `address` on its claim and on the account it belongs to, in one transaction
/// that holds only while the account still has that address (a bounce of a mistyped
/// address arriving after the correction marks nothing). A complaint never overwrites a
/// bounce. Whether anything was marked.
async fn mark(app: &App, address: &EmailAddress, delivery: Delivery) -> anyhow::Result<bool> {
    let canonical = address.canonical();
    let claim = app
        .store
        .get(&keys::email_claim(canonical))
        .await
        .context("reading an email claim")?;
    let Some(user_id) = claim.as_ref().and_then(|c| c.s(attr::USER_ID)) else {
        return Ok(false);
    };
    let changes = || {
        vec![
            Change::set(attr::MAIL_DELIVERY, delivery.as_str()),
            Change::set(attr::MAIL_DELIVERY_AT, app.now()),
        ]
    };
    let not_downgraded = match delivery {
        Delivery::Complained => Cond::attr_absent(attr::MAIL_DELIVERY)
            .or(Cond::eq(attr::MAIL_DELIVERY, Delivery::Complained.as_str())),
        _ => Cond::ItemExists,
    };
    let writes = vec![
        Write::update(keys::email_claim(canonical), changes())
            .when(Cond::eq(attr::USER_ID, user_id).and(not_downgraded.clone())),
        Write::update(keys::user(user_id), changes())
            .when(Cond::eq(attr::EMAIL_CANONICAL, canonical).and(not_downgraded)),
    ];
    match app.store.transact(writes).await {
        Ok(()) => Ok(true),
        Err(TransactError::ConditionFailed { .. }) => Ok(false),
        Err(e) => Err(anyhow::Error::from(e).context("marking an address's delivery")),
    }
}
