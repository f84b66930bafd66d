//! What the logs hold when calls fail: the error lines of failing store and mail calls,
//! captured as the functions write them (JSON), carry no address but its domain, no
//! typed login, username or password, and no IP address of a rate limit.

use std::io::Write as _;
use std::sync::Arc;

use accounts::app::App;
use accounts::clock::ManualClock;
use accounts::http::ApiRequest;
use accounts::mail::Mailer;
use accounts::mail::ses::SesMailer;
use accounts::store::Store;
use accounts::store::dynamo::DynamoStore;
use accounts::store::memory::MemoryStore;
use api_tests::{Backend, captured_logs, required_env, test_config};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method};
use lambda_http::RequestExt as _;
use serde_json::json;

/// An app whose calls fail: on DynamoDB every store call (a table that does not exist);
/// on the embedded store (which cannot fail) every mail, sent through the SES client to a
/// port where nothing listens.
async fn failing_app(backend: Backend) -> App {
    let sdk = {
        required_env("AWS_ENDPOINT_URL_DYNAMODB");
        required_env("AWS_ENDPOINT_URL_SESV2");
        accounts::aws::sdk_config_from_process_environment().expect("the SDK settings")
    };
    let clock = ManualClock::starting_now();
    let config = test_config("no-such-table", &[]);
    let store: Arc<dyn Store> = match backend {
        Backend::DynamoDb => Arc::new(DynamoStore::new(
            aws_sdk_dynamodb::Client::new(&sdk),
            format!("missing-{}", uuid::Uuid::new_v4().simple()),
            clock.clone(),
        )),
        Backend::Memory => Arc::new(MemoryStore::new(clock.clone())),
    };
    let ses = match backend {
        Backend::DynamoDb => aws_sdk_sesv2::Client::new(&sdk),
        Backend::Memory => aws_sdk_sesv2::Client::from_conf(
            aws_sdk_sesv2::config::Builder::from(&sdk)
                .endpoint_url("http://127.0.0.1:9")
                .build(),
        ),
    };
    let mailer: Arc<dyn Mailer> = Arc::new(SesMailer::new(ses, config.mail_from.clone(), None));
    App::new(config, store, mailer, clock).expect("an app")
}

async fn call(app: &App, path: &str, body: serde_json::Value) -> u16 {
    let mut headers = HeaderMap::new();
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    let request = ApiRequest::new(
        Method::POST,
        path,
        None,
        headers,
        Bytes::from(body.to_string()),
        "203.0.113.77".parse().expect("an IP"),
    );
    accounts::routes::dispatch(app, None, request)
        .await
        .status()
        .as_u16()
}

/// The personal data a test sends, none of which may reach a log line.
const SECRETS: &[&str] = &[
    "very.private.person",
    "quiet-wombat-7731",
    "typed password here",
    "private_username",
    "203.0.113.77",
    "jöhn.doe",
];

fn assert_clean(text: &str) {
    assert!(!text.is_empty(), "nothing was logged");
    for secret in SECRETS {
        assert!(!text.contains(secret), "the logs hold {secret:?}:\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_store_calls_log_no_personal_data() {
    let captured = captured_logs::captured();
    let app = failing_app(Backend::DynamoDb).await;
    let statuses = [
        call(&app, "/v1/login", json!({ "login": "very.private.person@example.com", "password": "quiet-wombat-7731" })).await,
        // A password typed into the login field, and a username.
        call(&app, "/v1/login", json!({ "login": "typed password here", "password": "x" })).await,
        call(&app, "/v1/login", json!({ "login": "private_username", "password": "quiet-wombat-7731" })).await,
        call(&app, "/v1/signup", json!({ "email": "very.private.person@example.com", "password": "quiet-wombat-7731", "account_type": "client", "username": "private_username" })).await,
        call(&app, "/v1/email/verify", json!({ "email": "very.private.person@example.com", "code": "123456" })).await,
        call(&app, "/v1/password/forgot", json!({ "login": "very.private.person@example.com" })).await,
    ];
    assert!(
        statuses.iter().all(|s| *s == 500),
        "every call fails: {statuses:?}"
    );
    std::io::stdout().flush().ok();
    let text = captured.text();
    assert_clean(&text);
    // What is kept: the kind of item and the domain, so the line still says what failed.
    assert!(text.contains("EMAIL#…@example.com"), "{text}");
    assert!(text.contains("USERNAME#<redacted>"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_mail_sends_log_no_address() {
    let captured = captured_logs::captured();
    let app = failing_app(Backend::Memory).await;
    // The send fails (SES itself would name a refused recipient in its message; that
    // text is cut to the domain, see `accounts::redact`): the signup still answers 202.
    let status = call(
        &app,
        "/v1/signup",
        json!({ "email": "jöhn.doe@example.com", "password": "quiet-wombat-7731", "account_type": "client" }),
    )
    .await;
    assert_eq!(status, 202);
    let text = captured.text();
    assert!(text.contains("an email could not be sent"), "{text}");
    assert_clean(&text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_line_logged_in_an_invocation_has_its_message_on_top_and_both_request_ids() {
    let captured = captured_logs::captured();
    let app = failing_app(Backend::DynamoDb).await;
    let path = format!(
        "{}/fixtures/apigw-v2-signup.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).expect("the signup fixture");
    let mut context = lambda_http::Context::default();
    context.request_id = "lambda-request-of-the-log-test".to_owned();
    let event = lambda_http::request::from_str(&text)
        .expect("an API Gateway v2 event")
        .with_lambda_context(context);

    let invocation = accounts::routes::lambda::invocation_of(&event);
    let response = invocation
        .scope(accounts::routes::lambda::handle_event::<
            accounts::routes::SignupRoute,
        >(&app, event))
        .await;

    assert_eq!(response.status(), 500, "the table does not exist");
    let lines: Vec<serde_json::Value> = captured
        .text()
        .lines()
        .filter(|line| line.contains("lambda-request-of-the-log-test"))
        .map(|line| serde_json::from_str(line).expect("a JSON line"))
        .collect();
    assert!(!lines.is_empty(), "no line of the invocation was logged");
    for line in lines {
        assert_eq!(
            line["requestId"], "lambda-request-of-the-log-test",
            "{line}"
        );
        // The fixture's requestContext.requestId: what the access log holds.
        assert_eq!(line["apiRequestId"], "Rv1aBgHtjoEEMKw=", "{line}");
        assert!(
            line["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{line}"
        );
        assert!(
            line["level"].is_string() && line["timestamp"].is_string(),
            "{line}"
        );
        assert!(line["cold_start"].is_boolean(), "{line}");
        assert!(line.get("fields").is_none(), "fields are flattened: {line}");
    }
}
