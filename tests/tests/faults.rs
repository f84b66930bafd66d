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
    survives(relay, fault, "health", 200, || app.health()).await;
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
    the_password_changed_once(app, &email, new_password, fault.0).await;
}

/// The rest of the routes that touch the table, under `fault`: a correction and a resend
/// before the verification, two-step verification from setup to login to turning it
/// off, the security question, the devices and the history, and both recoveries.
async fn a_protected_account_lives_through(
    app: &TestApp,
    relay: &FaultRelay,
    fault: &(&'static str, Option<&'static str>, Fault, usize),
) {
    let mistyped = unique_email();
    assert_eq!(app.sign_up(&mistyped).await.status(), 202);
    let email = unique_email();
    let correction = json!({ "email": mistyped, "password": PASSWORD, "new_email": email });
    survives(relay, fault, "correct-email", 202, || {
        app.correct_email(&correction)
    })
    .await;
    app.clock.advance(61);
    let resend = json!({ "email": email });
    survives(relay, fault, "resend", 202, || {
        app.resend_verification(&resend)
    })
    .await;
    let code = app
        .last_mail_to(&email)
        .await
        .and_then(|mail| mail.code())
        .expect("a verification code");
    let verify = json!({ "email": email, "code": code });
    survives(relay, fault, "verify by code", 200, || {
        app.verify_email(&verify)
    })
    .await;

    let tokens = app.log_in(&email, false).await;
    let access = tokens.access_token.clone();
    let setup = survives(relay, fault, "totp setup", 200, || app.totp_setup(&access)).await;
    let secret = setup["secret"].as_str().expect("a secret").to_owned();
    let code = app.fresh_code(&secret);
    survives(relay, fault, "totp confirm", 200, || {
        app.totp_confirm(&access, &code)
    })
    .await;
    survives(relay, fault, "backup codes", 200, || {
        app.regenerate_backup_codes(&access, PASSWORD)
    })
    .await;
    let question = json!({ "current_password": PASSWORD, "question_id": "first-pet", "answer": "Rex the Dog" });
    survives(relay, fault, "security question", 200, || {
        app.set_security_question(&access, &question)
    })
    .await;

    let login = json!({ "login": email, "password": PASSWORD, "remember_me": true });
    let challenge = survives(relay, fault, "login (challenged)", 200, || {
        app.login(&login)
    })
    .await;
    let mfa_token = challenge["mfa_token"]
        .as_str()
        .expect("an mfa token")
        .to_owned();
    let code = app.fresh_code(&secret);
    let second = survives(relay, fault, "login mfa", 200, || {
        app.login_mfa(&mfa_token, "totp", &code)
    })
    .await;
    let second_access = second["access_token"]
        .as_str()
        .expect("an access token")
        .to_owned();
    let sessions = survives(relay, fault, "sessions", 200, || {
        app.sessions(&second_access)
    })
    .await;
    let other = sessions
        .as_array()
        .and_then(|all| all.iter().find(|s| s["current"] == false))
        .and_then(|s| s["id"].as_str())
        .expect("the first login's session")
        .to_owned();
    survives(relay, fault, "login history", 200, || {
        app.login_history(&second_access, "")
    })
    .await;
    survives(relay, fault, "revoke a session", 204, || {
        app.revoke_session(&second_access, &other)
    })
    .await;
    survives(relay, fault, "revoke other sessions", 204, || {
        app.revoke_other_sessions(&second_access)
    })
    .await;
    let code = app.fresh_code(&secret);
    let disable = json!({ "current_password": PASSWORD, "code": code });
    survives(relay, fault, "totp off", 200, || {
        app.totp_disable(&second_access, &disable)
    })
    .await;

    app.clock.advance(61);
    survives(relay, fault, "forgot password", 202, || {
        app.forgot_password(&email)
    })
    .await;
    let token = app.newest_link_token(&email, "/reset-password").await;
    let new_password = "juniper-lantern-52";
    let reset = json!({ "token": token, "new_password": new_password });
    survives(relay, fault, "reset password", 200, || {
        app.reset_password(&reset)
    })
    .await;
    app.clock.advance(61);
    survives(relay, fault, "forgot answer", 202, || {
        app.forgot_security_answer(&email)
    })
    .await;
    let token = app
        .newest_link_token(&email, "/reset-security-question")
        .await;
    let question_reset = json!({
        "token": token, "password": new_password, "question_id": "first-pet", "answer": "Fido the Cat",
    });
    survives(relay, fault, "reset question", 200, || {
        app.reset_security_question(&question_reset)
    })
    .await;
    the_password_changed_once(app, &email, new_password, fault.0).await;
}

/// The change happened exactly once: the new password logs in, the old one does not.
async fn the_password_changed_once(app: &TestApp, email: &str, new_password: &str, fault: &str) {
    let login = json!({ "login": email, "password": new_password, "remember_me": false });
    assert_eq!(
        app.login(&login).await.status(),
        200,
        "{fault}: the new password"
    );
    let old = app.try_log_in(email, PASSWORD).await.status();
    assert_eq!(old, 401, "{fault}: the old password");
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

/// One account's life (the plain one, or the `protected` one with two-step verification
/// and both recoveries) under the fault `faults()[index]`, then the invariants: every
/// claim and every session belongs to the one account that exists.
async fn an_account_survives_fault(index: usize, protected: bool) {
    let upstream = required_env("AWS_ENDPOINT_URL_DYNAMODB");
    let relay = FaultRelay::start(&upstream, Vec::new()).await;
    let app = TestApp::spawn_storing_through(&relay.url).await;
    let fault = faults().swap_remove(index);
    if protected {
        a_protected_account_lives_through(&app, &relay, &fault).await;
    } else {
        an_account_lives_through(&app, &relay, &fault).await;
    }

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
            // The two journeys, each with its own relay and table, side by side (the
            // time goes in the SDK's back-off between attempts).
            tokio::join!(
                an_account_survives_fault($index, false),
                an_account_survives_fault($index, true),
            );
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
