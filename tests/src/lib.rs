//! The black-box test harness: [`TestApp`] starts the local server in-process on a free
//! port, over either backend (embedded store + outbox, or DynamoDB Local + the SES
//! emulator), with a clock the test moves, and offers one helper per API route, plus
//! the accounts, emails and DynamoDB call counts the tests build on. [`assert`] holds the
//! checks of whole answers (problem documents, token pairs, ...).

pub mod assert;
pub mod browser;
pub mod captured_logs;
pub mod contract;
pub mod fault_relay;
pub mod oidc;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use accounts::app::App;
use accounts::app::config::Config;
use accounts::clock::{Clock, ManualClock};
use accounts::mail::Mailer;
use accounts::mail::outbox::{Outbox, SentMail};
use accounts::mail::ses::SesMailer;
use accounts::store::Store;
use accounts::store::dynamo::{CallCounter, DynamoStore, client_with_counter_at};
use accounts::store::memory::MemoryStore;
use accounts::values::email::EmailAddress;
use reqwest::Method;
use reqwest::header::CONTENT_TYPE;
use serde::Deserialize;
use serde_json::{Value, json};

/// Runs each test body once per backend, as `<test>::on_memory` and `<test>::on_dynamodb`:
/// [`on_both_backends_with!`] without configuration overrides.
#[macro_export]
macro_rules! on_both_backends {
    ($(async fn $name:ident($app:ident) $body:block)*) => {
        $crate::on_both_backends_with! { &[]; $(async fn $name($app) $body)* }
    };
}

/// Runs each test body once per backend, as `<test>::on_memory` and `<test>::on_dynamodb`,
/// on a server whose configuration has `overrides` on top of the test defaults:
/// `on_both_backends_with! { &[("NAME", "value")]; async fn name(app) { ... } }`.
#[macro_export]
macro_rules! on_both_backends_with {
    ($overrides:expr; $(async fn $name:ident($app:ident) $body:block)*) => {$(
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn on_memory() {
                let $app =
                    $crate::TestApp::spawn_with($crate::Backend::Memory, $overrides).await;
                $body
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn on_dynamodb() {
                let $app =
                    $crate::TestApp::spawn_with($crate::Backend::DynamoDb, $overrides).await;
                $body
            }
        }
    )*};
}

/// Runs each test body once per backend, as `<test>::on_memory` and `<test>::on_dynamodb`,
/// on a server made for a browser ([`TestApp::spawn_for_browser_with`]: its pages' origin
/// and its emails' links are `http://localhost:<port>`), with `overrides` on top of the
/// test defaults: `on_both_backends_in_browser! { &[]; async fn name(app) { ... } }`.
#[macro_export]
macro_rules! on_both_backends_in_browser {
    ($overrides:expr; $(async fn $name:ident($app:ident) $body:block)*) => {$(
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn on_memory() {
                let $app = $crate::TestApp::spawn_for_browser_with(
                    $crate::Backend::Memory,
                    $overrides,
                )
                .await;
                $body
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn on_dynamodb() {
                let $app = $crate::TestApp::spawn_for_browser_with(
                    $crate::Backend::DynamoDb,
                    $overrides,
                )
                .await;
                $body
            }
        }
    )*};
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// The embedded store and the outbox mailer.
    Memory,
    /// DynamoDB Local and the SES v2 emulator (from the environment).
    DynamoDb,
}

/// One email as a test reads it back, from the outbox or from the SES emulator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mail {
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
}

impl Mail {
    /// The token of the first `APP_BASE_URL<path>?token=` link in the text body (links to
    /// [`BASE_URL`], the test servers' default).
    pub fn link_token(&self, path: &str) -> Option<String> {
        self.link_token_at(BASE_URL, path)
    }

    /// The token of the first `<base_url><path>?token=` link in the text body.
    pub fn link_token_at(&self, base_url: &str, path: &str) -> Option<String> {
        let marker = format!("{base_url}{path}?token=");
        let start = self.text.find(&marker)? + marker.len();
        let token: String = self.text[start..]
            .chars()
            .take_while(|c| !c.is_whitespace())
            .collect();
        Some(token)
    }

    /// The first run of exactly six digits on a line of its own.
    pub fn code(&self) -> Option<String> {
        self.text
            .lines()
            .map(str::trim)
            .find(|line| line.len() == 6 && line.bytes().all(|b| b.is_ascii_digit()))
            .map(str::to_owned)
    }
}

impl From<SentMail> for Mail {
    fn from(sent: SentMail) -> Mail {
        Mail {
            to: sent.to,
            subject: sent.subject,
            text: sent.text,
            html: sent.html,
        }
    }
}

/// The base URL links in emails must use, whatever a request's headers say.
pub const BASE_URL: &str = "https://app.example.test";

/// A password that meets the policy.
pub const PASSWORD: &str = "tangerine-quartz-88";

/// A password that meets the policy and is never anyone's.
pub const WRONG_PASSWORD: &str = "wrong-password-123";

/// A running server and the handles a test needs around it.
pub struct TestApp {
    /// `http://127.0.0.1:<port>`, for the HTTP client.
    pub address: String,
    /// The server's `APP_BASE_URL`: [`BASE_URL`], or `http://localhost:<port>` on a server
    /// made for a browser ([`TestApp::spawn_for_browser`]).
    pub base_url: String,
    pub http: reqwest::Client,
    pub clock: Arc<ManualClock>,
    pub backend: Backend,
    pub app: App,
    outbox: Option<Arc<Outbox>>,
    ses_url: Option<String>,
    /// DynamoDB round trips, on the DynamoDB backend.
    pub calls: Option<Arc<CallCounter>>,
    /// When the app started, in epoch seconds (for the SES emulator's `since`).
    started_at: u64,
    /// Answers of the server that `docs/openapi.yaml` does not allow.
    violations: contract::Violations,
}

/// A test fails when any answer it received departs from the API document (unless it
/// already failed for another reason).
impl Drop for TestApp {
    fn drop(&mut self) {
        let violations = self.violations.take();
        if !violations.is_empty() && !std::thread::panicking() {
            panic!(
                "the server answered outside docs/openapi.yaml:\n  - {}",
                violations.join("\n  - ")
            );
        }
    }
}

/// A manual clock at the present, or at the next full hour when the present is in an
/// hour's last ten minutes: rate limits count in fixed hourly windows, and a test that
/// began just before one rolls over would see its counts reset halfway.
pub fn test_clock() -> Arc<ManualClock> {
    let clock = ManualClock::starting_now();
    let into_hour = clock.now().rem_euclid(3_600);
    if into_hour >= 3_600 - 600 {
        clock.advance(3_600 - into_hour);
    }
    clock
}

/// A variable the emulator-backed tests cannot run without. A missing one fails the test:
/// a test that silently skipped would pass in CI.
pub fn required_env(name: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| {
            panic!(
                "{name} is not set: this test needs DynamoDB Local and the SES v2 emulator. \
                 Run scripts/test.sh, which starts both and sets the environment (or \
                 `scripts/emulators.sh start <dir>` and source `<dir>/env`)."
            )
        })
}

fn epoch_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// A unique email address for one test.
pub fn unique_email() -> String {
    format!("user-{}@example.com", uuid::Uuid::new_v4().simple())
}

/// A unique, valid username.
pub fn unique_username() -> String {
    format!("user_{}", &uuid::Uuid::new_v4().simple().to_string()[..12])
}

/// The `POST /v1/signup` body of a freelancer with the test password.
pub fn signup_body(email: &str) -> Value {
    json!({ "email": email, "password": PASSWORD, "account_type": "freelancer" })
}

/// The configuration of a test server: the test defaults (links to [`BASE_URL`], a short
/// enumeration floor) with `overrides` on top, over the table `table`.
pub fn test_config(table: &str, overrides: &[(&str, &str)]) -> Config {
    let defaults = [
        ("APP_BASE_URL", BASE_URL),
        ("TABLE_NAME", table),
        ("MAIL_FROM", "Account Security <no-reply@accounts.test>"),
        ("ENUMERATION_FLOOR_MS", "20"),
    ];
    Config::from_lookup(|name| {
        overrides
            .iter()
            .chain(defaults.iter())
            .find(|(key, _)| *key == name)
            .map(|(_, value)| (*value).to_owned())
    })
    .expect("the test configuration is valid")
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> TestApp {
        TestApp::spawn_with(backend, &[]).await
    }

    /// Starts a server whose configuration has `overrides` on top of the test defaults.
    pub async fn spawn_with(backend: Backend, overrides: &[(&str, &str)]) -> TestApp {
        TestApp::spawn_full(backend, overrides, None, None, false).await
    }

    /// A server for a browser: its `APP_BASE_URL` is `http://localhost:<its port>`, so the
    /// pages' own origin is the one a browser sends (their POSTs' `Origin` is checked
    /// against it), emailed links open on it, and its `__Host-` cookies (Secure) are kept
    /// by Chromium, which counts `http://localhost` as secure.
    pub async fn spawn_for_browser(backend: Backend) -> TestApp {
        TestApp::spawn_for_browser_with(backend, &[]).await
    }

    /// [`spawn_for_browser`](Self::spawn_for_browser) with `overrides` on top of the test
    /// defaults.
    pub async fn spawn_for_browser_with(backend: Backend, overrides: &[(&str, &str)]) -> TestApp {
        TestApp::spawn_full(backend, overrides, None, None, true).await
    }

    /// A DynamoDB-backed server whose DynamoDB client talks to `dynamodb_endpoint` (a
    /// fault relay in front of DynamoDB Local).
    pub async fn spawn_storing_through(dynamodb_endpoint: &str) -> TestApp {
        TestApp::spawn_full(Backend::DynamoDb, &[], None, Some(dynamodb_endpoint), false).await
    }

    /// A DynamoDB-backed server whose SES client talks to `ses_endpoint` (a fault relay in
    /// front of the emulator) instead of the emulator itself.
    pub async fn spawn_mailing_through(ses_endpoint: &str) -> TestApp {
        TestApp::spawn_full(Backend::DynamoDb, &[], Some(ses_endpoint), None, false).await
    }

    /// Starts a server; with `for_browser`, its `APP_BASE_URL` is
    /// `http://localhost:<port>` (the port is bound first), else [`BASE_URL`].
    async fn spawn_full(
        backend: Backend,
        overrides: &[(&str, &str)],
        ses_endpoint: Option<&str>,
        dynamodb_endpoint: Option<&str>,
        for_browser: bool,
    ) -> TestApp {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a free port");
        let port = listener.local_addr().expect("local address").port();
        let address = format!("http://127.0.0.1:{port}");
        let base_url = if for_browser {
            format!("http://localhost:{port}")
        } else {
            BASE_URL.to_owned()
        };
        let mut overrides = overrides.to_vec();
        if for_browser {
            overrides.insert(0, ("APP_BASE_URL", base_url.as_str()));
        }
        let table = format!("test-{}", uuid::Uuid::new_v4().simple());
        let config = test_config(&table, &overrides);
        let clock = test_clock();
        let started_at = epoch_seconds();
        #[allow(clippy::type_complexity)]
        let (store, mailer, outbox, ses_url, calls): (
            Arc<dyn Store>,
            Arc<dyn Mailer>,
            Option<Arc<Outbox>>,
            Option<String>,
            Option<Arc<CallCounter>>,
        ) = match backend {
            Backend::Memory => {
                let outbox = Arc::new(Outbox::new(clock.clone()));
                (
                    Arc::new(MemoryStore::new(clock.clone())),
                    outbox.clone(),
                    Some(outbox),
                    None,
                    None,
                )
            }
            Backend::DynamoDb => {
                // The clients find the emulators through the endpoint variables, as the
                // functions do; without them they would reach real AWS.
                required_env("AWS_ENDPOINT_URL_DYNAMODB");
                required_env("AWS_ENDPOINT_URL_SESV2");
                let ses_url = required_env("SES_EMULATOR_URL");
                let sdk = accounts::aws::sdk_config_from_process_environment()
                    .expect("the SDK settings from the environment");
                let (client, calls) = client_with_counter_at(&sdk, dynamodb_endpoint);
                let store = DynamoStore::new(client, table.clone(), clock.clone());
                store
                    .create_table_if_missing()
                    .await
                    .expect("create the test table");
                let mut ses = aws_sdk_sesv2::config::Builder::from(&sdk);
                if let Some(endpoint) = ses_endpoint {
                    ses = ses.endpoint_url(endpoint);
                }
                let mailer = SesMailer::new(
                    aws_sdk_sesv2::Client::from_conf(ses.build()),
                    config.mail_from.clone(),
                    None,
                );
                calls.reset();
                (
                    Arc::new(store),
                    Arc::new(mailer),
                    None,
                    Some(ses_url.trim_end_matches('/').to_owned()),
                    Some(calls),
                )
            }
        };
        let app = App::new(config, store, mailer, clock.clone()).expect("build the app");
        let violations = contract::Violations::default();
        let recorder = violations.clone();
        let server = dev_server::Server {
            app: app.clone(),
            outbox: outbox.clone(),
            observer: Some(Arc::new(move |request, response| {
                let checked = contract::contract().check(
                    &request.method,
                    &request.path,
                    response.status().as_u16(),
                    response.headers(),
                    response.body(),
                );
                if let Err(violation) = checked {
                    recorder.record(violation);
                }
            })),
            read_timeout: dev_server::READ_TIMEOUT,
        };
        tokio::spawn(dev_server::serve(listener, server));
        TestApp {
            address,
            base_url,
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("an HTTP client"),
            clock,
            backend,
            app,
            outbox,
            ses_url,
            calls,
            started_at,
            violations,
        }
    }

    /// What the server answered outside `docs/openapi.yaml` so far (the test fails on
    /// any, when the app is dropped).
    pub fn violations(&self) -> &contract::Violations {
        &self.violations
    }

    /// POSTs a JSON body to an API path.
    pub async fn post(&self, path: &str, body: &Value) -> reqwest::Response {
        self.http
            .post(format!("{}{path}", self.address))
            .json(body)
            .send()
            .await
            .expect("the request is sent")
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.address))
            .send()
            .await
            .expect("the request is sent")
    }

    /// POSTs `pairs` as an `application/x-www-form-urlencoded` form, as a browser submits
    /// a page of the product: with the CSRF token of a page it opened first (the
    /// `__Host-csrf` cookie, and the same token as the form's `csrf` field) and the site's
    /// own `Origin`.
    pub async fn post_form(&self, path: &str, pairs: &[(&str, &str)]) -> reqwest::Response {
        let opened = self.get(path).await;
        let csrf = opened
            .headers()
            .get_all(reqwest::header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|line| line.strip_prefix("__Host-csrf="))
            .and_then(|rest| rest.split(';').next())
            .map(str::to_owned)
            .expect("the page sets a __Host-csrf cookie");
        let mut pairs = pairs.to_vec();
        pairs.push(("csrf", &csrf));
        let origin = url::Url::parse(&self.base_url)
            .map(|url| url.origin().ascii_serialization())
            .unwrap_or_default();
        self.http
            .post(format!("{}{path}", self.address))
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(reqwest::header::COOKIE, format!("__Host-csrf={csrf}"))
            .header("origin", origin)
            .header("sec-fetch-site", "same-origin")
            .body(form_urlencoded(&pairs))
            .send()
            .await
            .expect("the form is sent")
    }

    /// POSTs every body to `path` at once: each request waits until all are ready, then
    /// all go out together. Returns each answer's status and JSON body, in the order the
    /// answers came.
    pub async fn post_concurrently(&self, path: &str, bodies: Vec<Value>) -> Vec<(u16, Value)> {
        let barrier = Arc::new(tokio::sync::Barrier::new(bodies.len()));
        let mut requests = tokio::task::JoinSet::new();
        for request_body in bodies {
            let (http, url, barrier) = (
                self.http.clone(),
                format!("{}{path}", self.address),
                barrier.clone(),
            );
            requests.spawn(async move {
                barrier.wait().await;
                let response = http
                    .post(url)
                    .json(&request_body)
                    .send()
                    .await
                    .expect("the request is sent");
                let status = response.status().as_u16();
                (status, body(response).await)
            });
        }
        requests.join_all().await
    }

    pub async fn signup(&self, body: &Value) -> reqwest::Response {
        self.post("/v1/signup", body).await
    }

    pub async fn correct_email(&self, body: &Value) -> reqwest::Response {
        self.post("/v1/signup/correct-email", body).await
    }

    pub async fn verify_email(&self, body: &Value) -> reqwest::Response {
        self.post("/v1/email/verify", body).await
    }

    pub async fn resend_verification(&self, body: &Value) -> reqwest::Response {
        self.post("/v1/email/verify/resend", body).await
    }

    pub async fn health(&self) -> reqwest::Response {
        self.get("/v1/health").await
    }
}

/// Events the functions that serve no route receive.
impl TestApp {
    /// Hands the `mail-events` function an SES event of `tests/fixtures/ses-events/`
    /// (`bounce-permanent`, `complaint`...) naming `recipient`, as its EventBridge rule
    /// delivers it; returns what it marked.
    pub async fn ses_event(
        &self,
        fixture: &str,
        recipient: &str,
    ) -> accounts::flows::mail_events::Report {
        let path = format!(
            "{}/fixtures/ses-events/{fixture}.json",
            env!("CARGO_MANIFEST_DIR")
        );
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let event: Value = serde_json::from_str(&text.replace("RECIPIENT", recipient))
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        accounts::flows::mail_events::handle_event(&self.app, &event)
            .await
            .expect("the mail-events function handles the event")
    }
}

/// Accounts to test with.
impl TestApp {
    /// Signs up `email` with the test password as a freelancer ([`signup_body`]).
    pub async fn sign_up(&self, email: &str) -> reqwest::Response {
        self.signup(&signup_body(email)).await
    }

    /// Signs up and verifies `email` as [`sign_up`](Self::sign_up) does; returns nothing
    /// but panics if either step fails.
    pub async fn sign_up_verified(&self, email: &str) {
        self.sign_up_verified_with(&signup_body(email)).await;
    }

    /// Signs up with `signup` (a `POST /v1/signup` body) and follows the link of the
    /// verification email; panics unless the signup answers `202` and the link `200`.
    pub async fn sign_up_verified_with(&self, signup: &Value) {
        let email = signup["email"].as_str().expect("an email in the signup");
        assert_eq!(self.signup(signup).await.status(), 202);
        let token = self.verification_token(email).await;
        let response = self.verify_email(&json!({ "token": token })).await;
        assert_eq!(response.status(), 200);
    }

    /// A new, verified account (a freelancer, with the test password); returns its email.
    pub async fn verified_account(&self) -> String {
        let email = unique_email();
        self.sign_up_verified(&email).await;
        email
    }

    /// A new, verified client account with a username (and the test password); returns
    /// `(email, username)`.
    pub async fn verified_account_with_username(&self) -> (String, String) {
        let (email, username) = (unique_email(), unique_username());
        self.sign_up_verified_with(&json!({
            "email": email,
            "password": PASSWORD,
            "account_type": "client",
            "username": username,
        }))
        .await;
        (email, username)
    }

    /// The token of the `/verify-email` link in the newest email to `email` (panics when
    /// that email has none).
    pub async fn verification_token(&self, email: &str) -> String {
        self.last_mail_to(email)
            .await
            .and_then(|m| m.link_token_at(&self.base_url, "/verify-email"))
            .expect("a verification link")
    }
}

/// Emails, as the outbox or the SES emulator recorded them.
impl TestApp {
    /// Every email sent to `address` since the app started, newest first.
    pub async fn mail_to(&self, address: &str) -> Vec<Mail> {
        if let Some(outbox) = &self.outbox {
            return outbox.to(address).into_iter().map(Mail::from).collect();
        }
        let url = self.ses_url.as_ref().expect("an SES emulator URL");
        let store: EmulatorStore = self
            .http
            .get(format!(
                "{url}/store?since={}",
                self.started_at.saturating_sub(1)
            ))
            .send()
            .await
            .expect("the SES emulator answers")
            .json()
            .await
            .expect("the SES emulator's store is JSON");
        let mut mails: Vec<(u64, usize, Mail)> = store
            .emails
            .into_iter()
            .enumerate()
            .filter(|(_, e)| {
                e.destination
                    .to
                    .iter()
                    .any(|to| to.eq_ignore_ascii_case(address))
            })
            .map(|(order, e)| {
                (
                    e.at,
                    order,
                    Mail {
                        to: e.destination.to.join(", "),
                        subject: e.subject,
                        text: e.body.text,
                        html: e.body.html,
                    },
                )
            })
            .collect();
        mails.sort_by_key(|(at, order, _)| std::cmp::Reverse((*at, *order)));
        mails.into_iter().map(|(_, _, mail)| mail).collect()
    }

    pub async fn last_mail_to(&self, address: &str) -> Option<Mail> {
        self.mail_to(address).await.into_iter().next()
    }

    /// Every email to `address` with this subject, newest first.
    pub async fn mails_with_subject(&self, address: &str, subject: &str) -> Vec<Mail> {
        self.mail_to(address)
            .await
            .into_iter()
            .filter(|m| m.subject == subject)
            .collect()
    }

    /// Every email to `address` with a `path?token=` link, newest first.
    pub async fn mails_with_link(&self, address: &str, path: &str) -> Vec<Mail> {
        self.mail_to(address)
            .await
            .into_iter()
            .filter(|m| m.link_token_at(&self.base_url, path).is_some())
            .collect()
    }

    /// The token of the newest `path?token=` link mailed to `address` (panics without one).
    pub async fn newest_link_token(&self, address: &str, path: &str) -> String {
        self.mail_to(address)
            .await
            .iter()
            .find_map(|m| m.link_token_at(&self.base_url, path))
            .unwrap_or_else(|| panic!("no {path} link was mailed to {address}"))
    }
}

/// DynamoDB calls, counted on the DynamoDB backend.
impl TestApp {
    /// Starts counting DynamoDB calls from zero (DynamoDB backend only; else nothing).
    pub fn reset_calls(&self) {
        if let Some(calls) = &self.calls {
            calls.reset();
        }
    }

    /// The DynamoDB calls by operation since the last [`reset_calls`](Self::reset_calls)
    /// (panics on the memory backend).
    pub fn dynamodb_calls(&self) -> BTreeMap<String, usize> {
        self.calls.as_ref().expect("a call counter").snapshot()
    }
}

/// `(operation, count)` pairs as [`TestApp::dynamodb_calls`] reports them.
pub fn expected_calls(pairs: &[(&str, usize)]) -> BTreeMap<String, usize> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
}

#[derive(Deserialize)]
struct EmulatorStore {
    emails: Vec<EmulatorMail>,
}

#[derive(Deserialize)]
struct EmulatorMail {
    destination: EmulatorDestination,
    subject: String,
    body: EmulatorBody,
    #[serde(default)]
    at: u64,
}

#[derive(Deserialize)]
struct EmulatorDestination {
    to: Vec<String>,
}

#[derive(Deserialize)]
struct EmulatorBody {
    #[serde(default)]
    text: String,
    #[serde(default)]
    html: String,
}

/// The JSON body of a response (panics if it is not JSON).
pub async fn body(response: reqwest::Response) -> Value {
    response.json().await.expect("a JSON body")
}

/// The value of a response header, if it is there and is text.
pub fn header(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// The member names of a JSON object, sorted (panics if `value` is not an object).
pub fn sorted_keys(value: &Value) -> Vec<String> {
    let mut keys: Vec<String> = value
        .as_object()
        .expect("an object")
        .keys()
        .cloned()
        .collect();
    keys.sort_unstable();
    keys
}

/// Whether the stored account of `email` is verified; `None` when there is no account.
pub async fn email_verified(app: &App, email: &str) -> Option<bool> {
    let address = EmailAddress::parse(email).expect("a valid address");
    accounts::records::lookup::find_by_email(app.store.as_ref(), &address)
        .await
        .expect("the store answers")
        .map(|user| user.email_verified)
}

/// The median of timing samples (the mean of the middle two for an even count).
pub fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    let mid = samples.len() / 2;
    if samples.len().is_multiple_of(2) {
        (samples[mid - 1] + samples[mid]) / 2
    } else {
        samples[mid]
    }
}

/// `application/x-www-form-urlencoded` text of `pairs`.
fn form_urlencoded(pairs: &[(&str, &str)]) -> String {
    let encode = |text: &str| {
        text.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                    char::from(b).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect::<String>()
    };
    pairs
        .iter()
        .map(|(name, value)| format!("{}={}", encode(name), encode(value)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Tokens from a successful login or refresh.
#[derive(Clone, Debug, Deserialize)]
pub struct Tokens {
    pub access_token: String,
    pub token_type: String,
    pub expires_in: i64,
    pub refresh_token: String,
    pub session_id: String,
}

/// Routes that need a login.
impl TestApp {
    pub async fn login(&self, body: &Value) -> reqwest::Response {
        self.post("/v1/login", body).await
    }

    /// `POST /v1/login` with this login and password (and no `remember_me`), whatever
    /// the answer.
    pub async fn try_log_in(&self, login: &str, password: &str) -> reqwest::Response {
        self.login(&json!({ "login": login, "password": password }))
            .await
    }

    pub async fn refresh(&self, refresh_token: &str) -> reqwest::Response {
        self.post(
            "/v1/token/refresh",
            &json!({ "refresh_token": refresh_token }),
        )
        .await
    }

    pub async fn logout(&self, refresh_token: &str) -> reqwest::Response {
        self.post("/v1/logout", &json!({ "refresh_token": refresh_token }))
            .await
    }

    pub async fn jwks(&self) -> reqwest::Response {
        self.get("/.well-known/jwks.json").await
    }

    /// A request with `Authorization: Bearer <access_token>`.
    pub fn authed(
        &self,
        method: reqwest::Method,
        path: &str,
        access_token: &str,
    ) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.address))
            .bearer_auth(access_token)
    }

    /// Sends an [`authed`](Self::authed) request, with `body` as JSON if given.
    pub async fn send_authed(
        &self,
        method: reqwest::Method,
        path: &str,
        access_token: &str,
        body: Option<&Value>,
    ) -> reqwest::Response {
        let mut request = self.authed(method, path, access_token);
        if let Some(body) = body {
            request = request.json(body);
        }
        request.send().await.expect("the request is sent")
    }

    pub async fn account(&self, access_token: &str) -> reqwest::Response {
        self.send_authed(Method::GET, "/v1/account", access_token, None)
            .await
    }

    pub async fn sessions(&self, access_token: &str) -> reqwest::Response {
        self.send_authed(Method::GET, "/v1/account/sessions", access_token, None)
            .await
    }

    pub async fn revoke_session(&self, access_token: &str, session_id: &str) -> reqwest::Response {
        let path = format!("/v1/account/sessions/{session_id}");
        self.send_authed(Method::DELETE, &path, access_token, None)
            .await
    }

    pub async fn revoke_other_sessions(&self, access_token: &str) -> reqwest::Response {
        let path = "/v1/account/sessions/revoke-others";
        self.send_authed(Method::POST, path, access_token, None)
            .await
    }

    /// `GET /v1/account/login-history` with an optional query string (`limit=5&...`).
    pub async fn login_history(&self, access_token: &str, query: &str) -> reqwest::Response {
        let path = if query.is_empty() {
            "/v1/account/login-history".to_owned()
        } else {
            format!("/v1/account/login-history?{query}")
        };
        self.send_authed(Method::GET, &path, access_token, None)
            .await
    }

    /// Logs in with the test password; panics unless it succeeds.
    pub async fn log_in(&self, login: &str, remember_me: bool) -> Tokens {
        let response = self
            .login(&json!({
                "login": login,
                "password": PASSWORD,
                "remember_me": remember_me,
            }))
            .await;
        assert_eq!(response.status(), 200, "login of {login} failed");
        response.json().await.expect("a token pair")
    }

    /// Asserts that an access token works on `GET /v1/account`.
    pub async fn assert_access_accepted(&self, access_token: &str) {
        let response = self.account(access_token).await;
        let status = response.status();
        let body = body(response).await;
        assert_eq!(status, 200, "{body}");
    }

    /// Asserts that an access token is refused on `GET /v1/account` with
    /// `401 unauthorized`; `case` says which token it is.
    pub async fn assert_access_refused(&self, access_token: &str, case: &str) {
        let response = self.account(access_token).await;
        assert_eq!(response.status(), 401, "{case} was accepted");
        assert::problem(response, 401, "unauthorized").await;
    }

    /// Asserts that a refresh token is refused with `401 invalid_token`.
    pub async fn assert_refresh_refused(&self, refresh_token: &str) {
        assert::problem(self.refresh(refresh_token).await, 401, "invalid_token").await;
    }
}

/// Recovery and account-protection routes.
impl TestApp {
    pub async fn forgot_password(&self, login: &str) -> reqwest::Response {
        self.post("/v1/password/forgot", &json!({ "login": login }))
            .await
    }

    pub async fn reset_password(&self, body: &Value) -> reqwest::Response {
        self.post("/v1/password/reset", body).await
    }

    pub async fn change_password(&self, access_token: &str, body: &Value) -> reqwest::Response {
        self.send_authed(
            Method::POST,
            "/v1/account/password",
            access_token,
            Some(body),
        )
        .await
    }

    pub async fn security_questions(&self) -> reqwest::Response {
        self.get("/v1/security-questions").await
    }

    pub async fn set_security_question(
        &self,
        access_token: &str,
        body: &Value,
    ) -> reqwest::Response {
        let path = "/v1/account/security-question";
        self.send_authed(Method::PUT, path, access_token, Some(body))
            .await
    }

    pub async fn forgot_security_answer(&self, login: &str) -> reqwest::Response {
        self.post("/v1/security-question/forgot", &json!({ "login": login }))
            .await
    }

    pub async fn reset_security_question(&self, body: &Value) -> reqwest::Response {
        self.post("/v1/security-question/reset", body).await
    }
}

/// Two-step verification routes.
impl TestApp {
    pub async fn login_mfa(&self, mfa_token: &str, method: &str, code: &str) -> reqwest::Response {
        self.post(
            "/v1/login/mfa",
            &json!({ "mfa_token": mfa_token, "method": method, "code": code }),
        )
        .await
    }

    /// `POST /v1/2fa/totp/setup` with the test password.
    pub async fn totp_setup(&self, access_token: &str) -> reqwest::Response {
        self.totp_setup_with(access_token, &json!({ "current_password": PASSWORD }))
            .await
    }

    pub async fn totp_setup_with(&self, access_token: &str, body: &Value) -> reqwest::Response {
        self.send_authed(Method::POST, "/v1/2fa/totp/setup", access_token, Some(body))
            .await
    }

    pub async fn totp_confirm(&self, access_token: &str, code: &str) -> reqwest::Response {
        let body = json!({ "code": code });
        self.send_authed(
            Method::POST,
            "/v1/2fa/totp/confirm",
            access_token,
            Some(&body),
        )
        .await
    }

    pub async fn totp_disable(&self, access_token: &str, body: &Value) -> reqwest::Response {
        self.send_authed(Method::DELETE, "/v1/2fa/totp", access_token, Some(body))
            .await
    }

    pub async fn regenerate_backup_codes(
        &self,
        access_token: &str,
        password: &str,
    ) -> reqwest::Response {
        let body = json!({ "current_password": password });
        self.send_authed(
            Method::POST,
            "/v1/2fa/backup-codes",
            access_token,
            Some(&body),
        )
        .await
    }

    /// The current code of a base32 TOTP secret at the app's clock (an independent
    /// path: the RFC 6238 computation in `accounts::credentials::totp` is checked against pyotp).
    pub fn totp_code(&self, base32_secret: &str, offset_steps: i64) -> String {
        use accounts::clock::Clock;
        let bytes = base32_decode(base32_secret).expect("a base32 secret");
        let secret =
            accounts::credentials::totp::TotpSecret::from_bytes(&bytes).expect("a TOTP secret");
        let at = self.clock.now() + offset_steps * accounts::credentials::totp::STEP_SECONDS;
        accounts::credentials::totp::code_at(&secret, at)
            .expect("a code")
            .expose()
            .to_owned()
    }
}

/// RFC 4648 base32 (no padding), as authenticator apps read it.
fn base32_decode(text: &str) -> Option<Vec<u8>> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut bits: u64 = 0;
    let mut count = 0;
    let mut out = Vec::new();
    for c in text.trim_end_matches('=').bytes() {
        let value = ALPHABET.iter().position(|&a| a == c.to_ascii_uppercase())? as u64;
        bits = (bits << 5) | value;
        count += 5;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
            bits &= (1 << count) - 1;
        }
    }
    Some(out)
}

/// An account with a confirmed authenticator app ([`TestApp::enrolled`]). The clock is
/// still in the step of the confirming code.
pub struct Enrolled {
    pub email: String,
    pub tokens: Tokens,
    pub secret: String,
    pub backup_codes: Vec<String>,
}

/// The `backup_codes` of a response body.
pub fn codes_of(body: &Value) -> Vec<String> {
    body["backup_codes"]
        .as_array()
        .expect("a list of backup codes")
        .iter()
        .map(|c| c.as_str().expect("a code").to_owned())
        .collect()
}

/// The `mfa_token` of a two-step challenge.
pub fn mfa_token(asked: &Value) -> String {
    asked["mfa_token"]
        .as_str()
        .expect("an mfa_token")
        .to_owned()
}

/// Accounts with two-step verification, and their codes.
impl TestApp {
    /// A verified, signed-in account with a confirmed authenticator app.
    pub async fn enrolled(&self) -> Enrolled {
        let email = self.verified_account().await;
        let tokens = self.log_in(&email, false).await;
        let setup = assert::ok_json(self.totp_setup(&tokens.access_token).await).await;
        let secret = setup["secret"].as_str().expect("a secret").to_owned();
        let confirmed = assert::ok_json(
            self.totp_confirm(&tokens.access_token, &self.totp_code(&secret, 0))
                .await,
        )
        .await;
        Enrolled {
            email,
            tokens,
            secret,
            backup_codes: codes_of(&confirmed),
        }
    }

    /// Moves to the next time step and returns its code: a code never used before.
    pub fn fresh_code(&self, secret: &str) -> String {
        self.clock
            .advance(accounts::credentials::totp::STEP_SECONDS);
        self.totp_code(secret, 0)
    }

    /// Six digits that are the code of none of the steps accepted now.
    pub fn wrong_code(&self, secret: &str) -> String {
        let accepted: Vec<String> = (-1..=1).map(|o| self.totp_code(secret, o)).collect();
        (0..10)
            .map(|d| d.to_string().repeat(6))
            .find(|c| !accepted.contains(c))
            .expect("a wrong code")
    }

    /// Logs in with the test password and asserts a two-step challenge; returns its body.
    pub async fn challenge(&self, login: &str) -> Value {
        self.challenge_with(login, PASSWORD, false).await
    }

    pub async fn challenge_with(&self, login: &str, password: &str, remember_me: bool) -> Value {
        let response = self
            .login(&json!({ "login": login, "password": password, "remember_me": remember_me }))
            .await;
        let body = assert::ok_json(response).await;
        assert_eq!(body["mfa_required"], true, "{body}");
        body
    }
}
