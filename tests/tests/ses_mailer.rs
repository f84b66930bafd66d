//! `SesMailer` against the SES v2 emulator (`aws-ses-v2-local`): a rendered message goes
//! out through the real SDK and is read back from the emulator's `/store`.
//!
//! Needs `AWS_ENDPOINT_URL_SESV2` and `SES_EMULATOR_URL` (both the emulator's base URL)
//! plus dummy credentials; `scripts/emulators.sh start <dir>` prints them. Without them
//! the tests fail loudly rather than pass without having sent anything.

use std::time::{SystemTime, UNIX_EPOCH};

use accounts::mail::Mailer;
use accounts::mail::messages::Message;
use accounts::mail::ses::SesMailer;
use anyhow::Context;
use api_tests::fault_relay::{Fault, FaultRelay};
use api_tests::required_env;
use serde::Deserialize;

const FROM: &str = "Account security <no-reply@accounts.test>";

/// The emulator's base URL, and an `SesMailer` whose SDK client talks to it.
async fn mailer() -> (String, SesMailer) {
    mailer_at(&required_env("AWS_ENDPOINT_URL_SESV2")).await
}

/// The emulator's base URL, and an `SesMailer` whose SDK client talks to `endpoint` (the
/// emulator, or a relay in front of it).
async fn mailer_at(endpoint: &str) -> (String, SesMailer) {
    let emulator = required_env("SES_EMULATOR_URL");
    let shared = accounts::aws::sdk_config_from_process_environment()
        .expect("the SDK settings from the environment");
    // Set the endpoint explicitly too, so the test cannot reach real SES even if the
    // SDK were told to ignore endpoint variables.
    let config = aws_sdk_sesv2::config::Builder::from(&shared)
        .endpoint_url(endpoint)
        .build();
    let client = aws_sdk_sesv2::Client::from_conf(config);
    let mailer = SesMailer::new(client, FROM.to_owned(), None);
    (emulator.trim_end_matches('/').to_owned(), mailer)
}

/// Unique per run and per call, so parallel runs against one emulator do not collide.
fn unique() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("{}-{nanos}", std::process::id())
}

fn epoch_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

#[derive(Debug, Deserialize)]
struct Store {
    emails: Vec<StoredEmail>,
}

#[derive(Debug, Deserialize)]
struct StoredEmail {
    from: String,
    destination: StoredDestination,
    subject: String,
    body: StoredBody,
}

#[derive(Debug, Deserialize)]
struct StoredDestination {
    to: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct StoredBody {
    html: Option<String>,
    text: Option<String>,
}

/// Emails the emulator received for `to` since `since` (epoch seconds).
async fn received(emulator: &str, since: u64, to: &str) -> anyhow::Result<Vec<StoredEmail>> {
    let store: Store = reqwest::get(format!("{emulator}/store?since={since}"))
        .await
        .context("reading the emulator's /store")?
        .error_for_status()
        .context("the emulator's /store answered with an error")?
        .json()
        .await
        .context("parsing the emulator's /store")?;
    Ok(store
        .emails
        .into_iter()
        .filter(|email| email.destination.to.iter().any(|addr| addr == to))
        .collect())
}

#[tokio::test]
async fn a_verification_email_sent_through_ses_arrives_with_its_subject_code_and_link()
-> anyhow::Result<()> {
    let (emulator, mailer) = mailer().await;
    let id = unique();
    let to = format!("verify-{id}@example.com");
    let link = format!("http://localhost:3000/verify-email?token=tok-{id}&source=email");
    let email = Message::VerifyEmail {
        link: link.clone(),
        code: "428193".to_owned(),
        valid_hours: 24,
    }
    .render(&to)?;
    // The emulator stamps mail in whole seconds; a second of slack covers the boundary.
    let since = epoch_seconds().saturating_sub(1);

    mailer.send(email.clone()).await?;

    let found = received(&emulator, since, &to).await?;
    assert_eq!(found.len(), 1, "exactly one email to {to}: {found:#?}");
    let stored = &found[0];
    assert_eq!(stored.from, FROM);
    assert_eq!(stored.destination.to, [to.as_str()]);
    assert_eq!(stored.subject, "Confirm your email address");
    let text = stored.body.text.as_deref().unwrap_or_default();
    let html = stored.body.html.as_deref().unwrap_or_default();
    assert!(text.contains("428193"), "text lacks the code:\n{text}");
    assert!(text.contains(&link), "text lacks the raw link:\n{text}");
    // The templates' escaping (askama's) writes `&` as the numeric reference `&#38;`.
    let escaped = link.replace('&', "&#38;");
    assert!(
        html.contains(&format!("href=\"{escaped}\"")),
        "html lacks the escaped link:\n{html}"
    );
    assert!(
        !html.contains(&link),
        "html has the link unescaped:\n{html}"
    );
    assert_eq!(text, email.text, "the text part arrives unchanged");
    assert_eq!(html, email.html, "the html part arrives unchanged");
    Ok(())
}

#[tokio::test]
async fn a_rejected_send_is_reported_as_an_error() {
    let (emulator, mailer) = mailer().await;
    let to = format!("rejected-{}@example.com", unique());
    let since = epoch_seconds().saturating_sub(1);
    // The emulator, like SES, refuses a message without a subject.
    let email = accounts::mail::Email {
        to: to.clone(),
        subject: String::new(),
        text: "text".to_owned(),
        html: "<p>html</p>".to_owned(),
    };

    let result = mailer.send(email).await;

    let err = result.err().map(|e| format!("{e:#}"));
    assert!(
        err.as_deref().is_some_and(|e| e.contains("SES SendEmail")),
        "expected a SendEmail error, got {err:?}"
    );
    let found = received(&emulator, since, &to).await;
    assert!(found.is_ok_and(|found| found.is_empty()));
}

fn a_message_to(to: &str) -> accounts::mail::Email {
    Message::VerifyEmail {
        link: "https://app.example.com/verify-email?token=t".to_owned(),
        code: "123456".to_owned(),
        valid_hours: 24,
    }
    .render(to)
    .expect("a rendered message")
}

/// What one send through a relay injecting `faults` came to: its result, how many
/// requests reached the relay, and how many messages the emulator received.
struct Sent {
    result: anyhow::Result<()>,
    requests: usize,
    arrived: usize,
}

async fn send_through(faults: Vec<Fault>, what: &str) -> Sent {
    let upstream = required_env("AWS_ENDPOINT_URL_SESV2");
    let relay = FaultRelay::start(&upstream, faults).await;
    let (emulator, mailer) = mailer_at(&relay.url).await;
    let to = format!("{what}-{}@example.com", unique());
    let since = epoch_seconds().saturating_sub(1);
    let result = mailer.send(a_message_to(&to)).await;
    let arrived = received(&emulator, since, &to)
        .await
        .expect("the emulator's store")
        .len();
    Sent {
        result,
        requests: relay.requests_seen(),
        arrived,
    }
}

fn answer(status: u16, error_type: &'static str) -> Fault {
    Fault::Answer { status, error_type }
}

#[tokio::test]
async fn a_send_that_meets_server_errors_throttling_and_a_reset_is_retried_and_arrives_once() {
    let sent = send_through(
        vec![answer(500, "InternalFailure"), Fault::Reset],
        "retried",
    )
    .await;
    assert!(sent.result.is_ok(), "{:?}", sent.result);
    assert_eq!(sent.requests, 3, "two failures, then the send");
    assert_eq!(sent.arrived, 1, "sent exactly once");
}

#[tokio::test]
async fn a_send_throttled_by_ses_is_retried() {
    let sent = send_through(vec![answer(429, "TooManyRequestsException")], "throttled").await;
    assert!(sent.result.is_ok(), "{:?}", sent.result);
    assert_eq!(sent.requests, 2);
    assert_eq!(sent.arrived, 1);
}

#[tokio::test]
async fn a_send_that_keeps_failing_gives_up_after_three_attempts() {
    let sent = send_through(vec![answer(503, "ServiceUnavailable"); 10], "never-sent").await;
    assert!(sent.result.is_err());
    assert_eq!(sent.requests, 3, "three attempts, no more");
    assert_eq!(sent.arrived, 0);
}

#[tokio::test]
async fn a_message_refused_for_its_content_is_not_retried() {
    let sent = send_through(vec![answer(400, "MessageRejected"); 3], "rejected").await;
    assert!(sent.result.is_err());
    assert_eq!(sent.requests, 1, "a refusal is final");
    assert_eq!(sent.arrived, 0);
}

#[tokio::test]
async fn a_signup_whose_mail_cannot_be_sent_still_answers_202_and_counts_the_failure() {
    let upstream = required_env("AWS_ENDPOINT_URL_SESV2");
    let relay = FaultRelay::start(&upstream, vec![answer(503, "ServiceUnavailable"); 3]).await;
    let app = api_tests::TestApp::spawn_mailing_through(&relay.url).await;
    let failures_before = accounts::telemetry::metrics::recorded("MailSendFailed");

    let response = app.sign_up(&api_tests::unique_email()).await;

    assert_eq!(
        response.status(),
        202,
        "the contract's answer, whatever the mail did"
    );
    assert_eq!(
        relay.requests_seen(),
        3,
        "tried three times within the request"
    );
    assert!(accounts::telemetry::metrics::recorded("MailSendFailed") > failures_before);
}
