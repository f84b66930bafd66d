//! Recovery and account protection, black-box on both backends: "forgot password" and
//! the reset link (enumeration parity, host-header poisoning, expiry, single use, older
//! links dying, sessions ending), changing the password while signed in, the security
//! question (setting it, forgetting it, resetting it), the notification emails, and
//! the local server's pages that the emailed links open.
//!
//! The security question as a second factor at login comes with two-step verification
//! and is tested there.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use api_tests::{
    BASE_URL, Backend, Mail, PASSWORD, TestApp, Tokens, body, on_both_backends,
    on_both_backends_with, unique_email, unique_username,
};
use reqwest::header::{CONTENT_TYPE, RETRY_AFTER, USER_AGENT};
use serde_json::{Value, json};

const MINUTE: i64 = 60;
const HOUR: i64 = 3_600;
/// A password that is never anyone's.
const WRONG: &str = "wrong-password-123";
/// The password a reset or a change sets.
const NEW_PASSWORD: &str = "juniper-obsidian-41";
/// An answer that meets the rules and repeats nothing.
const ANSWER: &str = "Whiskers the Third";
const QUESTION: &str = "first-pet";
const OTHER_QUESTION: &str = "childhood-street";

const RESET_PAGE: &str = "/reset-password";
const QUESTION_PAGE: &str = "/reset-security-question";

// ---------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------

fn header(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// Asserts a problem document with this status and code, and returns its body.
async fn problem(response: reqwest::Response, status: u16, code: &str) -> Value {
    let actual = response.status();
    let content_type = header(&response, CONTENT_TYPE.as_str());
    let body = body(response).await;
    assert_eq!(actual, status, "{body}");
    assert_eq!(
        content_type.as_deref(),
        Some("application/problem+json"),
        "{body}"
    );
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["status"], status, "{body}");
    body
}

/// Asserts a `400` validation problem naming exactly this field and code.
async fn field_problem(response: reqwest::Response, code: &str, field: &str, reason: &str) {
    let body = problem(response, 400, code).await;
    assert_eq!(
        body["errors"],
        json!([{ "field": field, "code": reason }]),
        "{body}"
    );
}

/// Asserts `status` with exactly `{"status": word}` as a JSON body.
async fn expect_status(response: reqwest::Response, status: u16, word: &str) {
    let actual = response.status();
    let content_type = header(&response, CONTENT_TYPE.as_str());
    let body = body(response).await;
    assert_eq!(actual, status, "{body}");
    assert_eq!(content_type.as_deref(), Some("application/json"), "{body}");
    assert_eq!(body, json!({ "status": word }));
}

/// Asserts `429 rate_limited` and returns its `Retry-After` seconds.
async fn rate_limited(response: reqwest::Response) -> u64 {
    let seconds = header(&response, RETRY_AFTER.as_str())
        .and_then(|v| v.parse::<u64>().ok())
        .expect("a numeric Retry-After header");
    problem(response, 429, "rate_limited").await;
    assert!(seconds >= 1, "Retry-After {seconds}");
    seconds
}

/// `POST /v1/login` with a password.
async fn attempt(app: &TestApp, login: &str, password: &str) -> reqwest::Response {
    app.login(&json!({ "login": login, "password": password }))
        .await
}

/// Asserts that `password` logs in to `login`.
async fn logs_in(app: &TestApp, login: &str, password: &str) -> Tokens {
    let response = attempt(app, login, password).await;
    let status = response.status();
    let body = body(response).await;
    assert_eq!(status, 200, "{login} with {password}: {body}");
    serde_json::from_value(body).expect("a token pair")
}

/// Asserts that `password` does not log in to `login`.
async fn does_not_log_in(app: &TestApp, login: &str, password: &str) {
    problem(
        attempt(app, login, password).await,
        401,
        "invalid_credentials",
    )
    .await;
}

/// A verified account's email.
async fn verified_account(app: &TestApp) -> String {
    let email = unique_email();
    app.sign_up_verified(&email).await;
    email
}

/// Signs up and verifies an account with a username; returns (email, username).
async fn account_with_username(app: &TestApp) -> (String, String) {
    let (email, username) = (unique_email(), unique_username());
    let response = app
        .signup(&json!({
            "email": email,
            "password": PASSWORD,
            "account_type": "client",
            "username": username,
        }))
        .await;
    assert_eq!(response.status(), 202);
    let token = app
        .last_mail_to(&email)
        .await
        .and_then(|m| m.link_token("/verify-email"))
        .expect("a verification link");
    assert_eq!(
        app.verify_email(&json!({ "token": token })).await.status(),
        200
    );
    (email, username)
}

/// Signs up `Mixed.Case-<id>@Example.com` and verifies it. Returns the address as the
/// owner types it later (all lowercase) and as stored on the account.
async fn mixed_case_account(app: &TestApp) -> (String, String) {
    let id = &uuid::Uuid::new_v4().simple().to_string()[..12];
    let typed = format!("Mixed.Case-{id}@Example.com");
    app.sign_up_verified(&typed).await;
    let lowercase = typed.to_lowercase();
    let tokens = app.log_in(&lowercase, false).await;
    let stored = account_view(app, &tokens.access_token).await["email"]
        .as_str()
        .expect("an email")
        .to_owned();
    assert!(stored.starts_with("Mixed.Case-"), "{stored}");
    assert_ne!(stored, lowercase);
    (lowercase, stored)
}

/// `GET /v1/account`, asserted `200`.
async fn account_view(app: &TestApp, access_token: &str) -> Value {
    let response = app.account(access_token).await;
    let status = response.status();
    let body = body(response).await;
    assert_eq!(status, 200, "{body}");
    body
}

/// Asserts that an access token is refused on `GET /v1/account`.
async fn assert_access_refused(app: &TestApp, access_token: &str) {
    problem(app.account(access_token).await, 401, "unauthorized").await;
}

/// Asserts that an access token works on `GET /v1/account`.
async fn assert_access_accepted(app: &TestApp, access_token: &str) {
    account_view(app, access_token).await;
}

async fn assert_refresh_refused(app: &TestApp, refresh_token: &str) {
    problem(app.refresh(refresh_token).await, 401, "invalid_token").await;
}

/// Asserts that a refresh token works, and returns the new pair.
async fn assert_refresh_accepted(app: &TestApp, refresh_token: &str) -> Tokens {
    let response = app.refresh(refresh_token).await;
    let status = response.status();
    let body = body(response).await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_value(body).expect("a token pair")
}

/// Every email to `address` (any case) with a `path?token=` link, newest first.
async fn link_mails(app: &TestApp, address: &str, path: &str) -> Vec<Mail> {
    app.mail_to(address)
        .await
        .into_iter()
        .filter(|m| m.link_token(path).is_some())
        .collect()
}

/// The token of the newest `path?token=` link mailed to `address`.
async fn newest_link(app: &TestApp, address: &str, path: &str) -> String {
    link_mails(app, address, path)
        .await
        .first()
        .and_then(|m| m.link_token(path))
        .unwrap_or_else(|| panic!("no {path} link was mailed to {address}"))
}

/// Every email to `address` (any case) with this subject, newest first.
async fn mails_with_subject(app: &TestApp, address: &str, subject: &str) -> Vec<Mail> {
    app.mail_to(address)
        .await
        .into_iter()
        .filter(|m| m.subject == subject)
        .collect()
}

/// Asks for a reset link for `login` and returns the token mailed to `address`.
async fn ask_for_reset(app: &TestApp, login: &str, address: &str) -> String {
    expect_status(app.forgot_password(login).await, 202, "email_sent").await;
    newest_link(app, address, RESET_PAGE).await
}

/// `POST /v1/password/reset` with a token and a new password.
async fn reset(app: &TestApp, token: &str, new_password: &str) -> reqwest::Response {
    app.reset_password(&json!({ "token": token, "new_password": new_password }))
        .await
}

/// Asserts every email that ever went to `address` (in any case) went to `stored`.
async fn assert_all_mail_went_to(app: &TestApp, address: &str, stored: &str) {
    let mails = app.mail_to(address).await;
    assert!(!mails.is_empty());
    for mail in mails {
        assert_eq!(mail.to, stored, "{:?} went elsewhere", mail.subject);
    }
}

/// `POST` a JSON body with extra request headers.
async fn post_with_headers(
    app: &TestApp,
    path: &str,
    headers: &[(&str, &str)],
    json_body: &Value,
) -> reqwest::Response {
    let mut request = app.http.post(format!("{}{path}", app.address));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request
        .json(json_body)
        .send()
        .await
        .expect("the request is sent")
}

/// Headers a hostile client sends to make links point at its own host.
const POISONED: &[(&str, &str)] = &[
    ("host", "evil.example"),
    ("x-forwarded-host", "evil.example"),
    ("x-forwarded-proto", "http"),
    ("forwarded", "host=evil.example;proto=http"),
    ("x-forwarded-for", "203.0.113.7"),
];

/// Asserts a mail's link points at `APP_BASE_URL` and nowhere else.
fn assert_link_from_config(mail: &Mail, path: &str) {
    let token = mail.link_token(path).expect("a link");
    let link = format!("{BASE_URL}{path}?token={token}");
    assert!(mail.text.contains(&link), "{}", mail.text);
    assert!(mail.html.contains(&link), "{}", mail.html);
    for part in [&mail.text, &mail.html, &mail.subject] {
        assert!(!part.contains("evil.example"), "{part}");
        assert!(!part.contains("127.0.0.1:"), "{part}");
    }
}

/// A response's status, its headers but `date`, and its body bytes.
async fn snapshot(response: reqwest::Response) -> (u16, BTreeMap<String, String>, Vec<u8>) {
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .filter(|(name, _)| name.as_str() != "date")
        .map(|(name, value)| {
            (
                name.as_str().to_owned(),
                value.to_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let bytes = response.bytes().await.expect("a body").to_vec();
    (status, headers, bytes)
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// Posts `bodies` to `path` all at once; returns each (status, JSON body).
async fn post_concurrently(app: &TestApp, path: &str, bodies: Vec<Value>) -> Vec<(u16, Value)> {
    let mut requests = tokio::task::JoinSet::new();
    for request_body in bodies {
        let http = app.http.clone();
        let url = format!("{}{path}", app.address);
        requests.spawn(async move {
            let response = http
                .post(url)
                .json(&request_body)
                .send()
                .await
                .expect("the request is sent");
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.expect("a JSON body"))
        });
    }
    requests.join_all().await
}

/// `PUT /v1/account/security-question`.
async fn set_question(
    app: &TestApp,
    access_token: &str,
    password: &str,
    question_id: &str,
    answer: &str,
) -> reqwest::Response {
    app.set_security_question(
        access_token,
        &json!({ "current_password": password, "question_id": question_id, "answer": answer }),
    )
    .await
}

/// A verified account with a security question; returns (email, access token).
async fn account_with_question(app: &TestApp) -> (String, Tokens) {
    let email = verified_account(app).await;
    let tokens = app.log_in(&email, false).await;
    expect_status(
        set_question(app, &tokens.access_token, PASSWORD, QUESTION, ANSWER).await,
        200,
        "security_question_set",
    )
    .await;
    (email, tokens)
}

/// `POST /v1/security-question/reset`.
async fn reset_question(
    app: &TestApp,
    token: &str,
    password: &str,
    question_id: &str,
    answer: &str,
) -> reqwest::Response {
    app.reset_security_question(&json!({
        "token": token,
        "password": password,
        "question_id": question_id,
        "answer": answer,
    }))
    .await
}

/// Asks for a security-question reset link and returns the token mailed to `email`.
async fn ask_for_question_reset(app: &TestApp, email: &str) -> String {
    expect_status(app.forgot_security_answer(email).await, 202, "email_sent").await;
    newest_link(app, email, QUESTION_PAGE).await
}

/// Whether the account view says a security question is set.
async fn has_question(app: &TestApp, email: &str) -> bool {
    let tokens = app.log_in(email, false).await;
    account_view(app, &tokens.access_token).await["two_step"]["security_question"]
        .as_bool()
        .expect("a boolean")
}

// ---------------------------------------------------------------------------------
// Forgot password
// ---------------------------------------------------------------------------------

on_both_backends! {
    async fn forgot_by_email_in_any_case_mails_the_stored_address(app) {
        let (lowercase, stored) = mixed_case_account(&app).await;
        let typed = [lowercase.clone(), lowercase.to_uppercase(), format!("  {stored}  ")];
        for (i, login) in typed.iter().enumerate() {
            app.clock.advance(MINUTE + 1);
            expect_status(app.forgot_password(login).await, 202, "email_sent").await;
            let mails = link_mails(&app, &lowercase, RESET_PAGE).await;
            assert_eq!(mails.len(), i + 1, "{login}");
            assert_eq!(mails[0].to, stored, "{login}");
            assert_eq!(mails[0].subject, "Reset your password");
            assert_link_from_config(&mails[0], RESET_PAGE);
        }
        assert_all_mail_went_to(&app, &lowercase, &stored).await;
    }

    async fn forgot_by_username_mails_the_accounts_address(app) {
        let (email, username) = account_with_username(&app).await;
        expect_status(app.forgot_password(&username.to_uppercase()).await, 202, "email_sent").await;
        let mails = link_mails(&app, &email, RESET_PAGE).await;
        assert_eq!(mails.len(), 1);
        assert_eq!(mails[0].to, email);
        let token = mails[0].link_token(RESET_PAGE).expect("a link");
        expect_status(reset(&app, &token, NEW_PASSWORD).await, 200, "password_reset").await;
        logs_in(&app, &username, NEW_PASSWORD).await;
    }

    async fn host_headers_do_not_change_the_link_in_the_reset_email(app) {
        let email = verified_account(&app).await;
        let response = post_with_headers(
            &app, "/v1/password/forgot", POISONED, &json!({ "login": email }),
        )
        .await;
        expect_status(response, 202, "email_sent").await;
        let mails = link_mails(&app, &email, RESET_PAGE).await;
        assert_eq!(mails.len(), 1);
        assert_link_from_config(&mails[0], RESET_PAGE);
        // The link is the real one.
        let token = mails[0].link_token(RESET_PAGE).expect("a link");
        expect_status(reset(&app, &token, NEW_PASSWORD).await, 200, "password_reset").await;
    }

    async fn forgot_for_an_unknown_login_answers_the_same_and_mails_nobody(app) {
        let email = verified_account(&app).await;
        let (_, username) = account_with_username(&app).await;
        let unverified = unique_email();
        assert_eq!(app.sign_up(&unverified).await.status(), 202);
        let unknown = unique_email();

        let reference = snapshot(app.forgot_password(&email).await).await;
        assert_eq!(reference.0, 202);
        assert_eq!(serde_json::from_slice::<Value>(&reference.2).expect("JSON"), json!({ "status": "email_sent" }));
        let cases = [
            ("known username", username.clone()),
            ("unverified account", unverified.clone()),
            ("unknown email", unknown.clone()),
            ("unknown username", unique_username()),
            ("neither an email nor a username", "no such thing!".to_owned()),
            ("empty", String::new()),
        ];
        for (case, login) in cases {
            let answer = snapshot(app.forgot_password(&login).await).await;
            assert_eq!(answer, reference, "{case}");
        }
        assert!(app.mail_to(&unknown).await.is_empty());
        // A malformed body is refused whoever it names.
        for login in [&email, &unknown] {
            let response = app
                .post("/v1/password/forgot", &json!({ "login": login, "email": login }))
                .await;
            problem(response, 400, "invalid_request").await;
        }
    }

    async fn a_second_forgot_within_a_minute_mails_nothing_and_after_it_mails_again(app) {
        let email = verified_account(&app).await;
        let first = ask_for_reset(&app, &email, &email).await;
        app.clock.advance(MINUTE - 1);
        expect_status(app.forgot_password(&email).await, 202, "email_sent").await;
        assert_eq!(link_mails(&app, &email, RESET_PAGE).await.len(), 1);
        app.clock.advance(2);
        expect_status(app.forgot_password(&email).await, 202, "email_sent").await;
        let mails = link_mails(&app, &email, RESET_PAGE).await;
        assert_eq!(mails.len(), 2);
        assert_ne!(mails[0].link_token(RESET_PAGE).as_deref(), Some(first.as_str()));
    }

    async fn a_forgot_refused_by_the_cooldown_leaves_the_first_link_working(app) {
        let email = verified_account(&app).await;
        let first = ask_for_reset(&app, &email, &email).await;
        app.clock.advance(30);
        expect_status(app.forgot_password(&email).await, 202, "email_sent").await;
        expect_status(reset(&app, &first, NEW_PASSWORD).await, 200, "password_reset").await;
    }
}

/// Medians of `samples` forgot requests for a known account (each really mailing a
/// link) and for unknown logins, interleaved.
async fn forgot_timings(app: &TestApp, email: &str, samples: usize) -> (Duration, Duration) {
    let (mut known, mut unknown) = (Vec::new(), Vec::new());
    for _ in 0..samples {
        // Past the per-account cooldown, so that a link really goes out.
        app.clock.advance(MINUTE + 1);
        let sent = link_mails(app, email, RESET_PAGE).await.len();
        let started = Instant::now();
        let response = app.forgot_password(email).await;
        known.push(started.elapsed());
        expect_status(response, 202, "email_sent").await;
        assert_eq!(link_mails(app, email, RESET_PAGE).await.len(), sent + 1);

        let login = unique_email();
        let started = Instant::now();
        let response = app.forgot_password(&login).await;
        unknown.push(started.elapsed());
        expect_status(response, 202, "email_sent").await;
    }
    (median(known), median(unknown))
}

on_both_backends_with! {
    &[("ENUMERATION_FLOOR_MS", "300"), ("RECOVERIES_PER_IP_PER_HOUR", "1000")];
    async fn forgot_takes_as_long_for_an_unknown_login_as_for_a_known_one(app) {
        let email = verified_account(&app).await;
        // Warm up both paths.
        expect_status(app.forgot_password(&unique_email()).await, 202, "email_sent").await;
        expect_status(app.forgot_password(&email).await, 202, "email_sent").await;
        // Other tests share the two cores: a disturbed round is measured again, but a
        // real difference between the paths fails every round.
        let mut rounds = Vec::new();
        for _ in 0..3 {
            let (known, unknown) = forgot_timings(&app, &email, 8).await;
            println!("median forgot: known {known:?}, unknown {unknown:?}");
            assert!(known >= Duration::from_millis(300), "{known:?}");
            assert!(unknown >= Duration::from_millis(300), "{unknown:?}");
            let difference = known.abs_diff(unknown).as_secs_f64() / known.as_secs_f64();
            rounds.push(format!("{known:?} vs {unknown:?} ({:.0}% apart)", difference * 100.0));
            if difference <= 0.2 {
                return;
            }
        }
        panic!("forgot takes different times for known and unknown logins: {rounds:?}");
    }
}

on_both_backends_with! {
    &[("RECOVERIES_PER_IP_PER_HOUR", "2")];
    async fn a_third_forgot_from_one_ip_in_an_hour_is_rate_limited(app) {
        let email = verified_account(&app).await;
        expect_status(app.forgot_password(&email).await, 202, "email_sent").await;
        expect_status(app.forgot_password(&unique_email()).await, 202, "email_sent").await;
        app.clock.advance(MINUTE + 1);
        let seconds = rate_limited(app.forgot_password(&email).await).await;
        assert!(seconds <= 3_600, "Retry-After {seconds}");
        // Refused for an unknown login alike, and no mail went out.
        rate_limited(app.forgot_password(&unique_email()).await).await;
        assert_eq!(link_mails(&app, &email, RESET_PAGE).await.len(), 1);
        // The next window accepts again.
        app.clock.advance(i64::try_from(seconds).expect("small") + 1);
        expect_status(app.forgot_password(&email).await, 202, "email_sent").await;
        assert_eq!(link_mails(&app, &email, RESET_PAGE).await.len(), 2);
    }
}

// ---------------------------------------------------------------------------------
// Reset password
// ---------------------------------------------------------------------------------

on_both_backends! {
    async fn a_reset_sets_the_new_password_and_ends_every_session(app) {
        let email = verified_account(&app).await;
        let first = app.log_in(&email, false).await;
        let second = app.log_in(&email, true).await;
        let token = ask_for_reset(&app, &email, &email).await;

        let response = reset(&app, &token, NEW_PASSWORD).await;
        // No tokens: the user logs in again.
        expect_status(response, 200, "password_reset").await;

        for tokens in [&first, &second] {
            assert_refresh_refused(&app, &tokens.refresh_token).await;
            assert_access_refused(&app, &tokens.access_token).await;
        }
        does_not_log_in(&app, &email, PASSWORD).await;
        let tokens = logs_in(&app, &email, NEW_PASSWORD).await;
        assert_access_accepted(&app, &tokens.access_token).await;
    }

    async fn a_reset_emails_the_stored_address_with_the_callers_ip(app) {
        let (lowercase, stored) = mixed_case_account(&app).await;
        let token = ask_for_reset(&app, &lowercase, &lowercase).await;
        let response = post_with_headers(
            &app,
            "/v1/password/reset",
            &[("x-forwarded-for", "203.0.113.7"), (USER_AGENT.as_str(), "RecoveryTest/1.0")],
            &json!({ "token": token, "new_password": NEW_PASSWORD }),
        )
        .await;
        expect_status(response, 200, "password_reset").await;
        let notices = mails_with_subject(&app, &lowercase, "Your password was reset").await;
        assert_eq!(notices.len(), 1);
        let notice = &notices[0];
        assert_eq!(notice.to, stored);
        assert!(notice.text.contains("127.0.0.1"), "{}", notice.text);
        assert!(!notice.text.contains("203.0.113.7"), "{}", notice.text);
        assert!(notice.text.contains("RecoveryTest/1.0"), "{}", notice.text);
        assert!(notice.text.contains(&format!("{BASE_URL}/")), "{}", notice.text);
        assert_all_mail_went_to(&app, &lowercase, &stored).await;
    }

    async fn a_weak_new_password_is_refused_and_the_link_still_works(app) {
        let email = verified_account(&app).await;
        let token = ask_for_reset(&app, &email, &email).await;
        field_problem(reset(&app, &token, "Qx7-zp").await, "weak_password", "new_password", "too_short").await;
        let body = problem(reset(&app, &token, "password123").await, 400, "weak_password").await;
        let errors = body["errors"].as_array().expect("errors");
        assert!(!errors.is_empty());
        assert!(errors.iter().all(|e| e["field"] == "new_password"), "{body}");
        // Nothing changed, and the link still works.
        logs_in(&app, &email, PASSWORD).await;
        expect_status(reset(&app, &token, NEW_PASSWORD).await, 200, "password_reset").await;
        logs_in(&app, &email, NEW_PASSWORD).await;
    }

    async fn a_used_link_is_invalid(app) {
        let email = verified_account(&app).await;
        let token = ask_for_reset(&app, &email, &email).await;
        expect_status(reset(&app, &token, NEW_PASSWORD).await, 200, "password_reset").await;
        problem(reset(&app, &token, "another-fine-password-7").await, 400, "invalid_token").await;
        logs_in(&app, &email, NEW_PASSWORD).await;
    }

    async fn a_garbage_or_forged_token_is_invalid(app) {
        let email = verified_account(&app).await;
        let token = ask_for_reset(&app, &email, &email).await;
        let (selector, _) = token.split_once('.').expect("a selector and a verifier");
        let forged = format!("{selector}.{}", "A".repeat(43));
        let other_account = format!("{}.{}", uuid::Uuid::new_v4(), token.split_once('.').expect("two parts").1);
        for garbage in ["", "garbage", "a.b", forged.as_str(), other_account.as_str(), &token[..token.len() - 1]] {
            problem(reset(&app, garbage, NEW_PASSWORD).await, 400, "invalid_token").await;
        }
        expect_status(reset(&app, &token, NEW_PASSWORD).await, 200, "password_reset").await;
    }

    async fn a_reset_body_with_unknown_fields_is_refused(app) {
        let email = verified_account(&app).await;
        let token = ask_for_reset(&app, &email, &email).await;
        let response = app
            .reset_password(&json!({ "token": token, "new_password": NEW_PASSWORD, "email_verified": true }))
            .await;
        problem(response, 400, "invalid_request").await;
        expect_status(reset(&app, &token, NEW_PASSWORD).await, 200, "password_reset").await;
    }

    async fn a_link_works_for_an_hour_and_no_longer(app) {
        let email = verified_account(&app).await;
        let token = ask_for_reset(&app, &email, &email).await;
        app.clock.advance(HOUR - 1);
        expect_status(reset(&app, &token, NEW_PASSWORD).await, 200, "password_reset").await;

        let other = verified_account(&app).await;
        let token = ask_for_reset(&app, &other, &other).await;
        app.clock.advance(HOUR + 1);
        problem(reset(&app, &token, NEW_PASSWORD).await, 400, "token_expired").await;
        logs_in(&app, &other, PASSWORD).await;
    }

    async fn a_newer_link_makes_the_older_one_stop_working(app) {
        let email = verified_account(&app).await;
        let older = ask_for_reset(&app, &email, &email).await;
        app.clock.advance(MINUTE + 1);
        let newer = ask_for_reset(&app, &email, &email).await;
        assert_ne!(older, newer);
        problem(reset(&app, &older, NEW_PASSWORD).await, 400, "invalid_token").await;
        expect_status(reset(&app, &newer, NEW_PASSWORD).await, 200, "password_reset").await;
        logs_in(&app, &email, NEW_PASSWORD).await;
    }

    async fn twenty_concurrent_resets_with_one_link_succeed_once(app) {
        let email = verified_account(&app).await;
        let token = ask_for_reset(&app, &email, &email).await;
        let bodies = (0..20)
            .map(|_| json!({ "token": token, "new_password": NEW_PASSWORD }))
            .collect();
        let answers = post_concurrently(&app, "/v1/password/reset", bodies).await;
        let winners: Vec<&Value> = answers
            .iter()
            .filter(|(status, _)| *status == 200)
            .map(|(_, body)| body)
            .collect();
        assert_eq!(winners.len(), 1, "{answers:?}");
        assert_eq!(winners[0], &json!({ "status": "password_reset" }));
        for (status, body) in answers.iter().filter(|(status, _)| *status != 200) {
            assert_eq!(*status, 400, "{body}");
            assert_eq!(body["code"], "invalid_token", "{body}");
        }
        does_not_log_in(&app, &email, PASSWORD).await;
        logs_in(&app, &email, NEW_PASSWORD).await;
        assert_eq!(mails_with_subject(&app, &email, "Your password was reset").await.len(), 1);
    }

    async fn a_locked_account_can_reset_and_log_in_at_once(app) {
        let email = verified_account(&app).await;
        for _ in 0..5 {
            does_not_log_in(&app, &email, WRONG).await;
        }
        rate_limited(attempt(&app, &email, PASSWORD).await).await;
        let token = ask_for_reset(&app, &email, &email).await;
        expect_status(reset(&app, &token, NEW_PASSWORD).await, 200, "password_reset").await;
        // The reset cleared the back-off: no waiting.
        logs_in(&app, &email, NEW_PASSWORD).await;
    }

    async fn a_reset_verifies_an_unverified_account(app) {
        let email = unique_email();
        assert_eq!(app.sign_up(&email).await.status(), 202);
        problem(attempt(&app, &email, PASSWORD).await, 403, "email_not_verified").await;
        let token = ask_for_reset(&app, &email, &email).await;
        expect_status(reset(&app, &token, NEW_PASSWORD).await, 200, "password_reset").await;
        let tokens = logs_in(&app, &email, NEW_PASSWORD).await;
        assert_eq!(account_view(&app, &tokens.access_token).await["email_verified"], true);
    }
}

// ---------------------------------------------------------------------------------
// Change password
// ---------------------------------------------------------------------------------

async fn change(app: &TestApp, access_token: &str, current: &str, new: &str) -> reqwest::Response {
    app.change_password(
        access_token,
        &json!({ "current_password": current, "new_password": new }),
    )
    .await
}

on_both_backends! {
    async fn a_change_ends_other_sessions_and_keeps_the_caller_signed_in(app) {
        let email = verified_account(&app).await;
        let caller = app.log_in(&email, false).await;
        let others = [app.log_in(&email, false).await, app.log_in(&email, true).await];

        expect_status(change(&app, &caller.access_token, PASSWORD, NEW_PASSWORD).await, 200, "password_changed").await;

        for other in &others {
            assert_access_refused(&app, &other.access_token).await;
            assert_refresh_refused(&app, &other.refresh_token).await;
        }
        assert_access_accepted(&app, &caller.access_token).await;
        let rotated = assert_refresh_accepted(&app, &caller.refresh_token).await;
        assert_access_accepted(&app, &rotated.access_token).await;
        assert_eq!(rotated.session_id, caller.session_id);

        does_not_log_in(&app, &email, PASSWORD).await;
        logs_in(&app, &email, NEW_PASSWORD).await;
    }

    async fn a_change_can_leave_other_sessions_signed_in(app) {
        let email = verified_account(&app).await;
        let caller = app.log_in(&email, false).await;
        let other = app.log_in(&email, false).await;
        let response = app
            .change_password(
                &caller.access_token,
                &json!({
                    "current_password": PASSWORD,
                    "new_password": NEW_PASSWORD,
                    "sign_out_other_devices": false,
                }),
            )
            .await;
        expect_status(response, 200, "password_changed").await;
        assert_access_accepted(&app, &other.access_token).await;
        assert_refresh_accepted(&app, &other.refresh_token).await;
        assert_access_accepted(&app, &caller.access_token).await;
        logs_in(&app, &email, NEW_PASSWORD).await;
    }

    async fn a_wrong_current_password_changes_nothing(app) {
        let email = verified_account(&app).await;
        let caller = app.log_in(&email, false).await;
        let other = app.log_in(&email, false).await;
        problem(change(&app, &caller.access_token, WRONG, NEW_PASSWORD).await, 401, "invalid_credentials").await;
        assert_access_accepted(&app, &caller.access_token).await;
        assert_access_accepted(&app, &other.access_token).await;
        does_not_log_in(&app, &email, NEW_PASSWORD).await;
        logs_in(&app, &email, PASSWORD).await;
        assert!(mails_with_subject(&app, &email, "Your password was changed").await.is_empty());
    }

    async fn five_wrong_current_passwords_lock_the_account(app) {
        let email = verified_account(&app).await;
        let caller = app.log_in(&email, false).await;
        for _ in 0..5 {
            problem(change(&app, &caller.access_token, WRONG, NEW_PASSWORD).await, 401, "invalid_credentials").await;
        }
        let seconds = rate_limited(change(&app, &caller.access_token, PASSWORD, NEW_PASSWORD).await).await;
        assert!((29..=30).contains(&seconds), "Retry-After {seconds}");
        rate_limited(attempt(&app, &email, PASSWORD).await).await;
        // Nothing changed.
        app.clock.advance(31);
        logs_in(&app, &email, PASSWORD).await;
    }

    async fn a_weak_new_password_is_refused_on_change(app) {
        let email = verified_account(&app).await;
        let caller = app.log_in(&email, false).await;
        field_problem(
            change(&app, &caller.access_token, PASSWORD, "Qx7-zp").await,
            "weak_password",
            "new_password",
            "too_short",
        )
        .await;
        logs_in(&app, &email, PASSWORD).await;
    }

    async fn a_change_emails_the_stored_address(app) {
        let (lowercase, stored) = mixed_case_account(&app).await;
        let caller = app.log_in(&lowercase, false).await;
        expect_status(change(&app, &caller.access_token, PASSWORD, NEW_PASSWORD).await, 200, "password_changed").await;
        let notices = mails_with_subject(&app, &lowercase, "Your password was changed").await;
        assert_eq!(notices.len(), 1);
        assert_eq!(notices[0].to, stored);
        assert!(notices[0].text.contains("127.0.0.1"), "{}", notices[0].text);
        assert_all_mail_went_to(&app, &lowercase, &stored).await;
    }

    async fn a_change_needs_a_valid_access_token(app) {
        let email = verified_account(&app).await;
        let request = json!({ "current_password": PASSWORD, "new_password": NEW_PASSWORD });
        let anonymous = app
            .http
            .post(format!("{}/v1/account/password", app.address))
            .json(&request)
            .send()
            .await
            .expect("the request is sent");
        problem(anonymous, 401, "unauthorized").await;
        problem(app.change_password("not-a-jwt", &request).await, 401, "unauthorized").await;
        // A signed-out session's access token is refused too.
        let tokens = app.log_in(&email, false).await;
        assert_eq!(app.logout(&tokens.refresh_token).await.status(), 204);
        problem(app.change_password(&tokens.access_token, &request).await, 401, "unauthorized").await;
        logs_in(&app, &email, PASSWORD).await;
    }

    async fn a_change_body_with_unknown_fields_is_refused(app) {
        let email = verified_account(&app).await;
        let caller = app.log_in(&email, false).await;
        let response = app
            .change_password(
                &caller.access_token,
                &json!({ "current_password": PASSWORD, "new_password": NEW_PASSWORD, "email": "x@example.com" }),
            )
            .await;
        problem(response, 400, "invalid_request").await;
        logs_in(&app, &email, PASSWORD).await;
    }
}

// ---------------------------------------------------------------------------------
// Security question
// ---------------------------------------------------------------------------------

on_both_backends! {
    async fn the_question_list_is_public(app) {
        let response = app.security_questions().await;
        let status = response.status();
        let list = body(response).await;
        assert_eq!(status, 200, "{list}");
        let items = list.as_array().expect("a list");
        assert!(items.len() >= 8, "{list}");
        let mut ids = Vec::new();
        for item in items {
            let object = item.as_object().expect("an object");
            assert_eq!(object.len(), 2, "{item}");
            let id = item["id"].as_str().expect("an id");
            let text = item["text"].as_str().expect("a text");
            assert!(!id.is_empty() && text.ends_with('?'), "{item}");
            ids.push(id.to_owned());
        }
        let count = ids.len();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), count, "duplicate ids: {list}");
        assert!(ids.iter().any(|id| id == QUESTION) && ids.iter().any(|id| id == OTHER_QUESTION));
    }

    async fn setting_a_question_shows_on_the_account_and_never_reveals_the_answer(app) {
        let email = verified_account(&app).await;
        let tokens = app.log_in(&email, false).await;
        let before = account_view(&app, &tokens.access_token).await;
        assert_eq!(before["two_step"]["security_question"], false);

        let response = set_question(&app, &tokens.access_token, PASSWORD, QUESTION, ANSWER).await;
        let set_text = response.text().await.expect("a body");
        assert_eq!(serde_json::from_str::<Value>(&set_text).expect("JSON"), json!({ "status": "security_question_set" }));

        let after = account_view(&app, &tokens.access_token).await;
        assert_eq!(after["two_step"]["security_question"], true);
        assert_eq!(after["two_step"]["totp"], false);
        let sessions = app.sessions(&tokens.access_token).await.text().await.expect("a body");
        let history = app.login_history(&tokens.access_token, "").await.text().await.expect("a body");
        let list = app.security_questions().await.text().await.expect("a body");
        let everything = [set_text, after.to_string(), sessions, history, list].join("\n");
        for secret in [ANSWER, &ANSWER.to_lowercase(), "argon2", "answer_hash"] {
            assert!(!everything.contains(secret), "{secret} appears in a response");
        }
        // Setting it again replaces it.
        expect_status(
            set_question(&app, &tokens.access_token, PASSWORD, OTHER_QUESTION, "Maple Avenue").await,
            200,
            "security_question_set",
        )
        .await;
        assert!(has_question(&app, &email).await);
    }

    async fn setting_a_question_needs_the_current_password(app) {
        let email = verified_account(&app).await;
        let tokens = app.log_in(&email, false).await;
        problem(set_question(&app, &tokens.access_token, WRONG, QUESTION, ANSWER).await, 401, "invalid_credentials").await;
        assert!(!has_question(&app, &email).await);
        // Anonymous callers are refused.
        let anonymous = app
            .http
            .put(format!("{}/v1/account/security-question", app.address))
            .json(&json!({ "current_password": PASSWORD, "question_id": QUESTION, "answer": ANSWER }))
            .send()
            .await
            .expect("the request is sent");
        problem(anonymous, 401, "unauthorized").await;
        assert!(mails_with_subject(&app, &email, "Your security question was changed").await.is_empty());
    }

    async fn an_unknown_question_or_field_is_refused(app) {
        let email = verified_account(&app).await;
        let tokens = app.log_in(&email, false).await;
        let body = problem(
            set_question(&app, &tokens.access_token, PASSWORD, "favourite-password", ANSWER).await,
            400,
            "invalid_request",
        )
        .await;
        assert_eq!(body["errors"][0]["field"], "question_id", "{body}");
        let response = app
            .set_security_question(
                &tokens.access_token,
                &json!({ "current_password": PASSWORD, "question_id": QUESTION, "answer": ANSWER, "answer_hash": "x" }),
            )
            .await;
        problem(response, 400, "invalid_request").await;
        assert!(!has_question(&app, &email).await);
    }

    async fn short_answers_and_answers_that_repeat_a_credential_are_refused(app) {
        let (email, username) = account_with_username(&app).await;
        let tokens = app.log_in(&email, false).await;
        let local_part = email.split('@').next().expect("a local part").to_uppercase();
        let (shouted_email, spaced_username) =
            (email.to_uppercase(), format!(" {} ", username.to_uppercase()));
        let cases = [
            ("  ab ", "too_short"),
            ("   ", "too_short"),
            ("  TANGERINE-Quartz-88 ", "equals_password"),
            (shouted_email.as_str(), "equals_email"),
            (local_part.as_str(), "equals_email"),
            (spaced_username.as_str(), "equals_username"),
        ];
        for (answer, reason) in cases {
            field_problem(
                set_question(&app, &tokens.access_token, PASSWORD, QUESTION, answer).await,
                "invalid_answer",
                "answer",
                reason,
            )
            .await;
        }
        assert!(!has_question(&app, &email).await);
    }

    async fn setting_a_question_emails_the_stored_address(app) {
        let (lowercase, stored) = mixed_case_account(&app).await;
        let tokens = app.log_in(&lowercase, false).await;
        expect_status(
            set_question(&app, &tokens.access_token, PASSWORD, QUESTION, ANSWER).await,
            200,
            "security_question_set",
        )
        .await;
        let notices = mails_with_subject(&app, &lowercase, "Your security question was changed").await;
        assert_eq!(notices.len(), 1);
        assert_eq!(notices[0].to, stored);
        assert!(notices[0].text.contains("127.0.0.1"), "{}", notices[0].text);
        assert!(!notices[0].text.to_lowercase().contains(&ANSWER.to_lowercase()));
        assert_all_mail_went_to(&app, &lowercase, &stored).await;
    }
}

// ---------------------------------------------------------------------------------
// Forgot and reset the security question
// ---------------------------------------------------------------------------------

on_both_backends! {
    async fn forgot_answer_mails_a_link_only_to_an_account_with_a_question(app) {
        let (with_question, _) = account_with_question(&app).await;
        let without_question = verified_account(&app).await;
        let unknown = unique_email();

        let reference = snapshot(app.forgot_security_answer(&with_question.to_uppercase()).await).await;
        assert_eq!(reference.0, 202);
        assert_eq!(serde_json::from_slice::<Value>(&reference.2).expect("JSON"), json!({ "status": "email_sent" }));
        let mails = link_mails(&app, &with_question, QUESTION_PAGE).await;
        assert_eq!(mails.len(), 1);
        assert_eq!(mails[0].to, with_question);
        assert_eq!(mails[0].subject, "Reset your security question");
        assert_link_from_config(&mails[0], QUESTION_PAGE);

        let mails_before = app.mail_to(&without_question).await.len();
        for login in [&without_question, &unknown] {
            let answer = snapshot(app.forgot_security_answer(login).await).await;
            assert_eq!(answer, reference, "{login}");
        }
        assert_eq!(app.mail_to(&without_question).await.len(), mails_before);
        assert!(app.mail_to(&unknown).await.is_empty());
    }

    async fn host_headers_do_not_change_the_link_in_the_question_email(app) {
        let (email, _) = account_with_question(&app).await;
        let response = post_with_headers(
            &app, "/v1/security-question/forgot", POISONED, &json!({ "login": email }),
        )
        .await;
        expect_status(response, 202, "email_sent").await;
        let mails = link_mails(&app, &email, QUESTION_PAGE).await;
        assert_eq!(mails.len(), 1);
        assert_link_from_config(&mails[0], QUESTION_PAGE);
    }

    async fn the_link_and_the_password_reset_the_question(app) {
        let (email, tokens) = account_with_question(&app).await;
        let token = ask_for_question_reset(&app, &email).await;
        expect_status(
            reset_question(&app, &token, PASSWORD, OTHER_QUESTION, "Maple Avenue").await,
            200,
            "security_question_reset",
        )
        .await;
        assert!(has_question(&app, &email).await);
        // The password and the sessions are untouched.
        assert_access_accepted(&app, &tokens.access_token).await;
        logs_in(&app, &email, PASSWORD).await;
        let notices = mails_with_subject(&app, &email, "Your security question was changed").await;
        assert_eq!(notices.len(), 2, "one for setting, one for resetting");
        assert!(notices.iter().all(|m| m.to == email));
        // Used once only.
        problem(
            reset_question(&app, &token, PASSWORD, QUESTION, "Another Answer").await,
            400,
            "invalid_token",
        )
        .await;
    }

    async fn question_mails_go_to_the_stored_address(app) {
        let (lowercase, stored) = mixed_case_account(&app).await;
        let tokens = app.log_in(&lowercase, false).await;
        expect_status(
            set_question(&app, &tokens.access_token, PASSWORD, QUESTION, ANSWER).await,
            200,
            "security_question_set",
        )
        .await;
        expect_status(app.forgot_security_answer(&lowercase.to_uppercase()).await, 202, "email_sent").await;
        let links = link_mails(&app, &lowercase, QUESTION_PAGE).await;
        assert_eq!(links.len(), 1);
        assert_eq!(links[0].to, stored);
        let token = links[0].link_token(QUESTION_PAGE).expect("a link");
        expect_status(
            reset_question(&app, &token, PASSWORD, OTHER_QUESTION, "Maple Avenue").await,
            200,
            "security_question_reset",
        )
        .await;
        let notices = mails_with_subject(&app, &lowercase, "Your security question was changed").await;
        assert_eq!(notices.len(), 2);
        assert!(notices[0].text.contains("127.0.0.1"), "{}", notices[0].text);
        assert_all_mail_went_to(&app, &lowercase, &stored).await;
    }

    async fn a_wrong_password_on_a_question_reset_leaves_the_link_working(app) {
        let (email, _) = account_with_question(&app).await;
        let token = ask_for_question_reset(&app, &email).await;
        problem(
            reset_question(&app, &token, WRONG, OTHER_QUESTION, "Maple Avenue").await,
            401,
            "invalid_credentials",
        )
        .await;
        field_problem(
            reset_question(&app, &token, PASSWORD, OTHER_QUESTION, " ab ").await,
            "invalid_answer",
            "answer",
            "too_short",
        )
        .await;
        field_problem(
            reset_question(&app, &token, PASSWORD, OTHER_QUESTION, &PASSWORD.to_uppercase()).await,
            "invalid_answer",
            "answer",
            "equals_password",
        )
        .await;
        expect_status(
            reset_question(&app, &token, PASSWORD, OTHER_QUESTION, "Maple Avenue").await,
            200,
            "security_question_reset",
        )
        .await;
    }

    async fn a_question_link_expires_after_an_hour(app) {
        let (email, _) = account_with_question(&app).await;
        let token = ask_for_question_reset(&app, &email).await;
        app.clock.advance(HOUR + 1);
        problem(
            reset_question(&app, &token, PASSWORD, OTHER_QUESTION, "Maple Avenue").await,
            400,
            "token_expired",
        )
        .await;
        problem(
            reset_question(&app, "garbage", PASSWORD, OTHER_QUESTION, "Maple Avenue").await,
            400,
            "invalid_token",
        )
        .await;
    }

    async fn a_link_for_one_purpose_does_not_work_for_the_other(app) {
        let (email, _) = account_with_question(&app).await;
        let question_token = ask_for_question_reset(&app, &email).await;
        let password_token = ask_for_reset(&app, &email, &email).await;
        problem(reset(&app, &question_token, NEW_PASSWORD).await, 400, "invalid_token").await;
        problem(
            reset_question(&app, &password_token, PASSWORD, OTHER_QUESTION, "Maple Avenue").await,
            400,
            "invalid_token",
        )
        .await;
        // Both still work for their own purpose.
        expect_status(
            reset_question(&app, &question_token, PASSWORD, OTHER_QUESTION, "Maple Avenue").await,
            200,
            "security_question_reset",
        )
        .await;
        expect_status(reset(&app, &password_token, NEW_PASSWORD).await, 200, "password_reset").await;
    }
}

// ---------------------------------------------------------------------------------
// The local server's pages (memory backend)
// ---------------------------------------------------------------------------------

/// `application/x-www-form-urlencoded` text of `pairs`.
fn form(pairs: &[(&str, &str)]) -> String {
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

async fn post_form(app: &TestApp, path: &str, pairs: &[(&str, &str)]) -> reqwest::Response {
    app.http
        .post(format!("{}{path}", app.address))
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(form(pairs))
        .send()
        .await
        .expect("the form is sent")
}

/// Asserts an HTML page with this status and returns its text.
async fn html_page(response: reqwest::Response, status: u16) -> String {
    let actual = response.status();
    let content_type = header(&response, CONTENT_TYPE.as_str()).unwrap_or_default();
    let text = response.text().await.expect("a page");
    assert_eq!(actual, status, "{text}");
    assert!(content_type.starts_with("text/html"), "{content_type}");
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reset_page_shows_a_form_and_only_its_post_spends_the_link() {
    let app = TestApp::spawn(Backend::Memory).await;
    let email = verified_account(&app).await;
    let token = ask_for_reset(&app, &email, &email).await;
    // A mail scanner may fetch the link any number of times.
    for _ in 0..2 {
        let page = html_page(app.get(&format!("{RESET_PAGE}?token={token}")).await, 200).await;
        assert!(
            page.contains("<form method=\"post\" action=\"/reset-password\">"),
            "{page}"
        );
        assert!(page.contains(&format!("value=\"{token}\"")), "{page}");
        assert!(page.contains("name=\"new_password\""), "{page}");
    }
    let page = html_page(
        post_form(
            &app,
            RESET_PAGE,
            &[("token", &token), ("new_password", NEW_PASSWORD)],
        )
        .await,
        200,
    )
    .await;
    assert!(page.contains("class=\"ok\""), "{page}");
    logs_in(&app, &email, NEW_PASSWORD).await;
    // The button cannot be pressed twice.
    let page = html_page(
        post_form(
            &app,
            RESET_PAGE,
            &[("token", &token), ("new_password", "yet-another-pass-9")],
        )
        .await,
        400,
    )
    .await;
    assert!(page.contains("invalid_token"), "{page}");
    assert_eq!(
        mails_with_subject(&app, &email, "Your password was reset")
            .await
            .len(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reset_page_without_a_token_says_so() {
    let app = TestApp::spawn(Backend::Memory).await;
    let page = html_page(app.get(RESET_PAGE).await, 200).await;
    assert!(!page.contains("<form"), "{page}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_question_reset_page_lists_the_questions_and_its_post_resets() {
    let app = TestApp::spawn(Backend::Memory).await;
    let (email, _) = account_with_question(&app).await;
    let token = ask_for_question_reset(&app, &email).await;
    let page = html_page(
        app.get(&format!("{QUESTION_PAGE}?token={token}")).await,
        200,
    )
    .await;
    assert!(page.contains(&format!("value=\"{token}\"")), "{page}");
    let questions = body(app.security_questions().await).await;
    for question in questions.as_array().expect("a list") {
        let id = question["id"].as_str().expect("an id");
        assert!(
            page.contains(&format!("<option value=\"{id}\">")),
            "{id} missing"
        );
        let text = question["text"].as_str().expect("a text");
        assert!(page.contains(text), "{text} missing");
    }
    let page = html_page(
        post_form(
            &app,
            QUESTION_PAGE,
            &[
                ("token", &token),
                ("password", PASSWORD),
                ("question_id", OTHER_QUESTION),
                ("answer", "Maple Avenue"),
            ],
        )
        .await,
        200,
    )
    .await;
    assert!(page.contains("class=\"ok\""), "{page}");
    problem(
        reset_question(&app, &token, PASSWORD, QUESTION, "Another Answer").await,
        400,
        "invalid_token",
    )
    .await;
}
