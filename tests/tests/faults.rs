//! Faults between the functions and DynamoDB: a relay in front of DynamoDB Local answers
//! chosen requests with a 500, throttling, exhausted throughput, a transaction conflict,
//! a dropped connection, an effect whose answer is lost, or seconds of latency. Every
//! step of an account's life either succeeds or answers `503 unavailable` with
//! `Retry-After`; after a 503 the same request succeeds once the faults stop; and at the
//! end no claim, session or link points at an account that is not there.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use api_tests::fault_relay::{Fault, FaultRelay};
use api_tests::{PASSWORD, TestApp, body, header, required_env, unique_email};
use reqwest::Response;
use serde_json::{Value, json};

/// How many times the SDK sends one call (its standard retry mode): this many faults in a
/// row defeat the SDK's retries and reach the route.
const SDK_ATTEMPTS: usize = 3;

fn answer(status: u16, error_type: &'static str) -> Fault {
    Fault::Answer { status, error_type }
}

/// The faults, each with the requests it is for and how many in a row.
fn faults() -> Vec<(&'static str, Option<&'static str>, Fault, usize)> {
    vec![
        (
            "a 500",
            None,
            answer(500, "com.amazonaws.dynamodb.v20120810#InternalServerError"),
            SDK_ATTEMPTS,
        ),
        (
            "throttling",
            None,
            answer(400, "com.amazonaws.dynamodb.v20120810#ThrottlingException"),
            SDK_ATTEMPTS,
        ),
        (
            "exhausted throughput",
            None,
            answer(
                400,
                "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
            ),
            SDK_ATTEMPTS,
        ),
        ("a refused connection", None, Fault::Reset, SDK_ATTEMPTS),
        (
            "a transaction conflict",
            Some("TransactWriteItems"),
            Fault::TransactionConflict,
            8,
        ),
        (
            "a lost answer",
            Some("TransactWriteItems"),
            Fault::ForwardThenReset,
            1,
        ),
        (
            "one throttled call",
            None,
            answer(400, "com.amazonaws.dynamodb.v20120810#ThrottlingException"),
            1,
        ),
        (
            "seconds of latency",
            None,
            Fault::Delay(Duration::from_millis(1500)),
            1,
        ),
    ]
}

/// Sends `call` with the fault injected first. The answer is `expected`, or `503
/// unavailable` with `Retry-After`, after which the same call without faults answers
/// `expected`. Returns the body of the answer that succeeded.
async fn survives<F, Fut>(
    relay: &FaultRelay,
    (name, target, fault, count): &(&'static str, Option<&'static str>, Fault, usize),
    step: &str,
    expected: u16,
    call: F,
) -> Value
where
    F: Fn() -> Fut,
    Fut: Future<Output = Response>,
{
    relay.clear();
    relay.inject(*target, fault.clone(), *count);
    let first = call().await;
    relay.clear();
    let status = first.status().as_u16();
    if status == expected {
        return json_of(first).await;
    }
    assert_eq!(
        status, 503,
        "{step} under {name}: neither {expected} nor 503"
    );
    let retry_after = header(&first, "retry-after")
        .and_then(|value| value.parse::<u64>().ok())
        .unwrap_or_else(|| panic!("{step} under {name}: a 503 without Retry-After"));
    assert!(retry_after >= 1);
    assert_eq!(
        body(first).await["code"],
        "unavailable",
        "{step} under {name}"
    );
    let again = call().await;
    assert_eq!(
        again.status().as_u16(),
        expected,
        "{step} under {name}: the retry"
    );
    json_of(again).await
}

/// A body as JSON; an empty one (a `204`) as `null`.
async fn json_of(response: Response) -> Value {
    let bytes = response.bytes().await.expect("a body");
    if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).expect("a JSON body")
    }
}

/// One account's life, every step under `fault`.
async fn an_account_lives_through(
    app: &TestApp,
    relay: &FaultRelay,
    fault: &(&'static str, Option<&'static str>, Fault, usize),
) {
    let email = unique_email();
    survives(relay, fault, "signup", 202, || app.sign_up(&email)).await;
    let token = app.verification_token(&email).await;
    let verify = json!({ "token": token });
    survives(relay, fault, "verify", 200, || app.verify_email(&verify)).await;
    let login = json!({ "login": email, "password": PASSWORD, "remember_me": false });
    let tokens = survives(relay, fault, "login", 200, || app.login(&login)).await;
    let refresh = tokens["refresh_token"]
        .as_str()
        .expect("a refresh token")
        .to_owned();
    let rotated = survives(relay, fault, "refresh", 200, || app.refresh(&refresh)).await;
    let access = rotated["access_token"]
        .as_str()
        .expect("an access token")
        .to_owned();
    survives(relay, fault, "account", 200, || app.account(&access)).await;
    let new_password = "juniper-lantern-52";
    let change = json!({ "current_password": PASSWORD, "new_password": new_password });
    survives(relay, fault, "password change", 200, || {
        app.change_password(&access, &change)
    })
    .await;
    let refresh = rotated["refresh_token"]
        .as_str()
        .expect("a refresh token")
        .to_owned();
    survives(relay, fault, "logout", 204, || app.logout(&refresh)).await;
    // The change happened exactly once: the new password logs in, the old one does not.
    let login = json!({ "login": email, "password": new_password, "remember_me": false });
    assert_eq!(
        app.login(&login).await.status(),
        200,
        "{}: the new password",
        fault.0
    );
    assert_eq!(
        app.try_log_in(&email, PASSWORD).await.status(),
        401,
        "{}: the old one",
        fault.0
    );
}

/// Every item of the table, read past the relay.
async fn every_item(table: &str) -> Vec<BTreeMap<String, Value>> {
    required_env("AWS_ENDPOINT_URL_DYNAMODB");
    let sdk = accounts::aws::sdk_config_from_process_environment().expect("the SDK settings");
    let client = aws_sdk_dynamodb::Client::new(&sdk);
    let mut items = Vec::new();
    let mut start = None;
    loop {
        let page = client
            .scan()
            .table_name(table)
            .set_exclusive_start_key(start)
            .send()
            .await
            .expect("a scan of the table");
        for item in page.items() {
            let text = |value: &aws_sdk_dynamodb::types::AttributeValue| match value {
                aws_sdk_dynamodb::types::AttributeValue::S(s) => Value::String(s.clone()),
                aws_sdk_dynamodb::types::AttributeValue::N(n) => Value::String(n.clone()),
                _ => Value::Null,
            };
            items.push(item.iter().map(|(k, v)| (k.clone(), text(v))).collect());
        }
        match page.last_evaluated_key() {
            Some(key) => start = Some(key.clone()),
            None => return items,
        }
    }
}

/// One account's life under the fault `faults()[index]`, then the invariants: every
/// claim and every session belongs to an account that exists.
async fn an_account_survives_fault(index: usize) {
    let upstream = required_env("AWS_ENDPOINT_URL_DYNAMODB");
    let relay = FaultRelay::start(&upstream, Vec::new()).await;
    let app = TestApp::spawn_storing_through(&relay.url).await;
    let fault = faults().swap_remove(index);
    an_account_lives_through(&app, &relay, &fault).await;

    let items = every_item(&app.app.config.table_name).await;
    let field = |item: &BTreeMap<String, Value>, name: &str| {
        item.get(name)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let accounts: BTreeSet<String> = items
        .iter()
        .filter(|item| field(item, "sk") == "PROFILE")
        .map(|item| field(item, "user_id"))
        .collect();
    assert_eq!(
        accounts.len(),
        1,
        "{}: one account, no more, no fewer",
        fault.0
    );
    for item in &items {
        let (pk, sk) = (field(item, "pk"), field(item, "sk"));
        if sk == "CLAIM" || sk.starts_with("SESSION#") {
            let owner = field(item, "user_id");
            let owner = if owner.is_empty() {
                pk.trim_start_matches("USER#").to_owned()
            } else {
                owner
            };
            assert!(
                accounts.contains(&owner),
                "{}: {pk} {sk} belongs to no account",
                fault.0
            );
        }
    }
}

macro_rules! under_each_fault {
    ($($name:ident = $index:expr;)*) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            an_account_survives_fault($index).await;
        }
    )*};
}

under_each_fault! {
    an_account_lives_through_dynamodb_500s = 0;
    an_account_lives_through_throttling = 1;
    an_account_lives_through_exhausted_throughput = 2;
    an_account_lives_through_refused_connections = 3;
    an_account_lives_through_transaction_conflicts = 4;
    an_account_lives_through_transactions_whose_answer_is_lost = 5;
    an_account_lives_through_one_throttled_call_per_step = 6;
    an_account_lives_through_seconds_of_latency = 7;
}

#[test]
fn every_fault_has_its_test() {
    assert_eq!(faults().len(), 8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_whose_answer_is_lost_is_applied_once_and_reported_done() {
    use accounts::store::{Cond, Item, Key, Store, Write};
    let upstream = required_env("AWS_ENDPOINT_URL_DYNAMODB");
    let relay = FaultRelay::start(&upstream, Vec::new()).await;
    let sdk = accounts::aws::sdk_config_from_process_environment().expect("the SDK settings");
    let (client, _) = accounts::store::dynamo::client_with_counter_at(&sdk, Some(&relay.url));
    let clock = api_tests::test_clock();
    let table = format!("faults-{}", uuid::Uuid::new_v4().simple());
    let store = accounts::store::dynamo::DynamoStore::new(client, table, clock);
    store.create_table_if_missing().await.expect("a table");

    relay.inject(Some("TransactWriteItems"), Fault::ForwardThenReset, 1);
    let seen = relay.requests_seen();
    let claim = Item::new(&Key::new("EMAIL#lost@example.com", "CLAIM")).with("user_id", "u1");
    let written = store
        .transact(vec![
            Write::put(claim).when(Cond::ItemAbsent),
            Write::put(Item::new(&Key::new("USER#u1", "PROFILE")).with("user_id", "u1"))
                .when(Cond::ItemAbsent),
        ])
        .await;

    assert_eq!(relay.faults_left(), 0, "the answer was lost");
    assert!(
        relay.requests_seen() >= seen + 2,
        "the SDK sent the transaction again"
    );
    // The second send carries the first one's ClientRequestToken (the SDK fills it once
    // per call), so DynamoDB answers it as done instead of failing its own conditions.
    assert!(written.is_ok(), "{written:?}");
}
