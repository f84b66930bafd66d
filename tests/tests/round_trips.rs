//! DynamoDB round trips per flow, counted against DynamoDB Local by the SDK interceptor
//! (`TestApp::calls`), each against its budget: the goals (signup is one
//! transaction beside its rate-limit update, a login at most three sequential calls,
//! refresh, logout and the session check one each) and the README's round-trip table
//! for the rest. Prints the table; with `ROUND_TRIPS_OUT=<file>` also writes it as JSON
//! for `bench/run.sh`. Fails when a flow exceeds its budget.
//!
//! Sequential steps (calls that wait for one another, as opposed to calls sent in
//! parallel) are counted on the wire: the app talks to DynamoDB Local through a small
//! TCP relay that notes when each request leaves and when its answer comes back; calls
//! whose times overlap are one step.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use api_tests::{Backend, PASSWORD, TestApp, Tokens, body, unique_email};
use serde_json::{Value, json};

/// A second password that meets the policy.
const NEW_PASSWORD: &str = "marmalade-orbit-4417";
const THIRD_PASSWORD: &str = "juniper-lantern-9031";

struct Budget {
    /// At most this many calls in all.
    most: usize,
    /// At most this many sequential steps, when that is the goal.
    steps: Option<usize>,
    /// When set, exactly these calls by operation.
    exactly: Option<&'static [(&'static str, usize)]>,
    text: &'static str,
}

const fn at_most(most: usize, text: &'static str) -> Budget {
    Budget {
        most,
        steps: None,
        exactly: None,
        text,
    }
}

/// At most `steps` sequential steps, however many calls run in parallel within one.
const fn steps(steps: usize, text: &'static str) -> Budget {
    Budget {
        most: usize::MAX,
        steps: Some(steps),
        exactly: None,
        text,
    }
}

struct Measured {
    flow: &'static str,
    calls: BTreeMap<String, usize>,
    steps: usize,
    budget: Budget,
}

impl Measured {
    fn total(&self) -> usize {
        self.calls.values().sum()
    }

    fn ok(&self) -> bool {
        let exact = self.budget.exactly.is_none_or(|pairs| {
            let wanted: BTreeMap<String, usize> =
                pairs.iter().map(|(op, n)| ((*op).to_owned(), *n)).collect();
            wanted == self.calls
        });
        self.total() <= self.budget.most
            && self.budget.steps.is_none_or(|most| self.steps <= most)
            && exact
    }
}

/// Added to every answer by the relay, like the network between Lambda and DynamoDB: a
/// local answer can come back before the app has even sent the call it made in parallel
/// (whose connection would then be reused, making it look sequential).
const LATENCY: Duration = Duration::from_millis(15);

/// When each request went out and its answer came back, on every relayed connection.
#[derive(Default)]
struct Wire {
    calls: Mutex<Vec<(Instant, Instant)>>,
}

impl Wire {
    fn clear(&self) {
        self.calls.lock().expect("the wire log").clear();
    }

    /// Calls whose intervals overlap run in parallel: one step.
    fn steps(&self) -> usize {
        let mut calls = self.calls.lock().expect("the wire log").clone();
        calls.sort();
        let mut steps = 0;
        let mut step_end: Option<Instant> = None;
        for (start, end) in calls {
            match step_end {
                Some(until) if start < until => step_end = Some(until.max(end)),
                _ => {
                    steps += 1;
                    step_end = Some(end);
                }
            }
        }
        steps
    }
}

/// A TCP relay to `upstream` on 127.0.0.1 that logs request and answer times and
/// delays each answer by [`LATENCY`]. A connection carries one request at a time
/// (HTTP/1.1): a new connection or bytes from the client on an idle one start a call,
/// the first bytes back end it.
fn relay(upstream: &str) -> (String, Arc<Wire>) {
    let upstream = upstream
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind the relay");
    let address = format!(
        "http://{}",
        listener.local_addr().expect("the relay address")
    );
    let wire = Arc::new(Wire::default());
    let log = wire.clone();
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let (Ok(client), Ok(server)) = (client, TcpStream::connect(&upstream)) else {
                continue;
            };
            // A connection is opened for a call: its first call starts at the accept.
            let started = Arc::new(Mutex::new(Some(Instant::now())));
            let (mut from_client, mut to_server) = (
                client.try_clone().expect("clone a socket"),
                server.try_clone().expect("clone a socket"),
            );
            let (mut from_server, mut to_client) = (server, client);
            let request_started = started.clone();
            std::thread::spawn(move || {
                let mut buffer = [0u8; 16 * 1024];
                while let Ok(n @ 1..) = from_client.read(&mut buffer) {
                    request_started
                        .lock()
                        .expect("the call start")
                        .get_or_insert_with(Instant::now);
                    if to_server.write_all(&buffer[..n]).is_err() {
                        break;
                    }
                }
                let _ = to_server.shutdown(Shutdown::Write);
            });
            let log = log.clone();
            std::thread::spawn(move || {
                let mut buffer = [0u8; 16 * 1024];
                while let Ok(n @ 1..) = from_server.read(&mut buffer) {
                    let start = started.lock().expect("the call start").take();
                    if let Some(start) = start {
                        std::thread::sleep(LATENCY);
                        log.calls
                            .lock()
                            .expect("the wire log")
                            .push((start, Instant::now()));
                    }
                    if to_client.write_all(&buffer[..n]).is_err() {
                        break;
                    }
                }
                let _ = to_client.shutdown(Shutdown::Write);
            });
        }
    });
    (address, wire)
}

struct Counter<'a> {
    app: &'a TestApp,
    wire: Arc<Wire>,
    measured: Vec<Measured>,
}

impl Counter<'_> {
    fn start(&self) {
        self.app.reset_calls();
        self.wire.clear();
    }

    fn record(&mut self, flow: &'static str, budget: Budget) {
        let calls = self
            .app
            .calls
            .as_ref()
            .expect("the DynamoDB backend counts calls")
            .snapshot();
        let steps = self.wire.steps();
        self.measured.push(Measured {
            flow,
            calls,
            steps,
            budget,
        });
    }
}

async fn status_and_body(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let value = response.json().await.unwrap_or(Value::Null);
    (status, value)
}

async fn tokens(response: reqwest::Response) -> Tokens {
    let status = response.status();
    let text = response.text().await.expect("a body");
    assert_eq!(status, 200, "{text}");
    serde_json::from_str(&text).expect("a token pair")
}

fn table(measured: &[Measured]) -> String {
    let mut out =
        String::from("| flow | calls | sequential steps | by operation | budget | within |\n");
    out.push_str("| --- | --- | --- | --- | --- | --- |\n");
    for m in measured {
        let ops: Vec<String> = m.calls.iter().map(|(op, n)| format!("{op} {n}")).collect();
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} |\n",
            m.flow,
            m.total(),
            m.steps,
            ops.join(", "),
            m.budget.text,
            if m.ok() { "yes" } else { "NO" }
        ));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_flow_stays_within_its_dynamodb_round_trip_budget() {
    // The app reaches DynamoDB Local through the relay. This is the only test of this
    // binary, and the variable is set before anything reads it.
    let upstream = std::env::var("AWS_ENDPOINT_URL_DYNAMODB").unwrap_or_default();
    assert!(
        !upstream.is_empty(),
        "AWS_ENDPOINT_URL_DYNAMODB is not set: run scripts/test.sh (or bench/run.sh)"
    );
    let (relayed, wire) = relay(&upstream);
    // SAFETY: no other thread of this test binary reads or writes the environment now.
    unsafe { std::env::set_var("AWS_ENDPOINT_URL_DYNAMODB", &relayed) };
    let app = TestApp::spawn(Backend::DynamoDb).await;
    let mut counter = Counter {
        app: &app,
        wire,
        measured: Vec::new(),
    };

    // ---- signup and verification by link ----
    let email = unique_email();
    counter.start();
    assert_eq!(app.sign_up(&email).await.status(), 202);
    counter.record(
        "signup",
        Budget {
            most: 2,
            steps: None,
            exactly: Some(&[("TransactWriteItems", 1), ("UpdateItem", 1)]),
            text: "exactly 1 TransactWriteItems + 1 rate-limit UpdateItem",
        },
    );
    let link = app
        .last_mail_to(&email)
        .await
        .and_then(|m| m.link_token("/verify-email"))
        .expect("a verification link");
    counter.start();
    let (status, answer) = status_and_body(app.verify_email(&json!({ "token": link })).await).await;
    assert_eq!(status, 200, "{answer}");
    counter.record("verify by link", at_most(1, "1 (transaction)"));

    // ---- verification by code (another account) ----
    let by_code = unique_email();
    assert_eq!(app.sign_up(&by_code).await.status(), 202);
    let code = app
        .last_mail_to(&by_code)
        .await
        .and_then(|m| m.code())
        .expect("a verification code");
    counter.start();
    let (status, answer) = status_and_body(
        app.verify_email(&json!({ "email": by_code, "code": code }))
            .await,
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    counter.record(
        "verify by code",
        Budget {
            most: 5,
            steps: Some(3),
            exactly: None,
            text: "5 in 3 steps (the claim read beside the address's daily count and the IP's; the counted attempt, the same write for every address; the transaction)",
        },
    );

    // ---- login, refresh, authenticated read, change password, logout ----
    counter.start();
    let first = app.log_in(&email, false).await;
    counter.record("login", steps(3, "at most 3 sequential steps"));

    counter.start();
    let second = tokens(app.refresh(&first.refresh_token).await).await;
    counter.record("refresh", at_most(1, "1"));

    counter.start();
    let (status, answer) = status_and_body(app.account(&second.access_token).await).await;
    assert_eq!(status, 200, "{answer}");
    counter.record("authenticated read (GET /v1/account)", at_most(1, "1"));

    counter.start();
    let (status, answer) = status_and_body(
        app.change_password(
            &second.access_token,
            &json!({ "current_password": PASSWORD, "new_password": NEW_PASSWORD }),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    counter.record(
        "change password",
        Budget {
            most: 3,
            steps: Some(3),
            exactly: None,
            text: "3 in 3 steps (session check; re-authentication claim; transaction that also ends the other sessions by the account's epoch)",
        },
    );

    counter.start();
    assert_eq!(app.logout(&second.refresh_token).await.status(), 204);
    counter.record("logout", at_most(1, "1"));

    // ---- forgot and reset ----
    counter.start();
    assert_eq!(app.forgot_password(&email).await.status(), 202);
    counter.record(
        "forgot password",
        at_most(4, "4 (rate limit, claim, account, conditional put)"),
    );
    let reset = app
        .last_mail_to(&email)
        .await
        .and_then(|m| m.link_token("/reset-password"))
        .expect("a reset link");
    counter.start();
    let (status, answer) = status_and_body(
        app.reset_password(&json!({ "token": reset, "new_password": THIRD_PASSWORD }))
            .await,
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    counter.record(
        "reset password",
        at_most(
            2,
            "2 (batch read, transaction that also ends every session by the account's epoch; a second factor adds its claim)",
        ),
    );

    // ---- two-step login and the MFA step (another account) ----
    let two_step = unique_email();
    app.sign_up_verified(&two_step).await;
    let session = app.log_in(&two_step, false).await;
    let setup = body(app.totp_setup(&session.access_token).await).await;
    let secret = setup["secret"].as_str().expect("a TOTP secret").to_owned();
    let code = app.totp_code(&secret, 0);
    let (status, answer) =
        status_and_body(app.totp_confirm(&session.access_token, &code).await).await;
    assert_eq!(status, 200, "{answer}");
    // The confirming code's time step is spent: log in with the next one.
    app.clock.advance(30);
    counter.start();
    let (status, challenge) = status_and_body(
        app.login(&json!({ "login": two_step, "password": PASSWORD }))
            .await,
    )
    .await;
    assert_eq!(status, 200, "{challenge}");
    assert_eq!(challenge["mfa_required"], true, "{challenge}");
    counter.record(
        "login with two-step (challenge)",
        steps(3, "at most 3 sequential steps"),
    );
    let mfa_token = challenge["mfa_token"].as_str().expect("an mfa_token");
    let code = app.totp_code(&secret, 0);
    counter.start();
    tokens(app.login_mfa(mfa_token, "totp", &code).await).await;
    counter.record(
        "MFA step (TOTP)",
        Budget {
            most: 4,
            steps: Some(2),
            exactly: None,
            text: "4 in 2 steps (batch read, sessions query and the second-factor claim in parallel; transaction)",
        },
    );

    let rendered = table(&counter.measured);
    println!("\nDynamoDB round trips per flow (DynamoDB Local):\n\n{rendered}");
    if let Some(path) = std::env::var_os("ROUND_TRIPS_OUT") {
        let flows: Vec<Value> = counter
            .measured
            .iter()
            .map(|m| {
                json!({
                    "flow": m.flow,
                    "calls": m.calls,
                    "total": m.total(),
                    "steps": m.steps,
                    "budget": m.budget.text,
                    "budget_max": m.budget.most,
                    "ok": m.ok(),
                })
            })
            .collect();
        let text = serde_json::to_string_pretty(&json!({ "flows": flows })).expect("JSON");
        std::fs::write(&path, text).expect("writing ROUND_TRIPS_OUT");
    }
    let over: Vec<&str> = counter
        .measured
        .iter()
        .filter(|m| !m.ok())
        .map(|m| m.flow)
        .collect();
    assert!(over.is_empty(), "over budget: {over:?}\n{rendered}");
}
