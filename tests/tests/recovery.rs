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

use api_tests::assert::{json_status, ok_tokens, problem, rate_limited};
use api_tests::{
    BASE_URL, Mail, PASSWORD, TestApp, Tokens, WRONG_PASSWORD, body, header, on_both_backends,
    on_both_backends_with, unique_email, unique_username,
};
use reqwest::header::USER_AGENT;
use serde_json::{Value, json};

const MINUTE: i64 = 60;
const HOUR: i64 = 3_600;
/// The password a reset or a change sets.
const NEW_PASSWORD: &str = "juniper-obsidian-41";
/// An answer that meets the rules and repeats nothing.
const ANSWER: &str = "Whiskers the Third";
const QUESTION: &str = "first-pet";
const OTHER_QUESTION: &str = "childhood-street";
/// The answer the question resets here set, to [`OTHER_QUESTION`].
const OTHER_ANSWER: &str = "Maple Avenue";

const RESET_PAGE: &str = "/reset-password";
const QUESTION_PAGE: &str = "/reset-security-question";

// ---------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------

/// Asserts a `400` validation problem naming exactly this field and code.
async fn field_problem(response: reqwest::Response, code: &str, field: &str, reason: &str) {
    let body = problem(response, 400, code).await;
    assert_eq!(
        body["errors"],
        json!([{ "field": field, "code": reason }]),
        "{body}"
    );
}

/// Asserts that `password` logs in to `login`.
async fn logs_in(app: &TestApp, login: &str, password: &str) -> Tokens {
    ok_tokens(app.try_log_in(login, password).await).await
}

/// Asserts that `password` does not log in to `login`.
async fn does_not_log_in(app: &TestApp, login: &str, password: &str) {
    problem(
        app.try_log_in(login, password).await,
        401,
        "invalid_credentials",
    )
    .await;
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

/// `GET /v1/account`, asserted `200`; returns the account.
async fn account_view(app: &TestApp, access_token: &str) -> Value {
    let response = app.account(access_token).await;
    let status = response.status();
    let body = body(response).await;
    assert_eq!(status, 200, "{body}");
    body
}

/// Asks for a reset link for `login` and returns the token mailed to `address`.
async fn ask_for_reset(app: &TestApp, login: &str, address: &str) -> String {
    json_status(app.forgot_password(login).await, 202, "email_sent").await;
    app.newest_link_token(address, RESET_PAGE).await
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

/// Headers a hostile client sends to make links point at its own host. (A foreign `Host`
/// itself is refused by the local server before any handler runs; that the handlers never
/// read it is shown through the Lambda entry, in `tests/tests/lambda_events.rs`.)
const POISONED: &[(&str, &str)] = &[
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

/// The upper of the middle two of an even number of timing samples (the middle one of
/// an odd number).
fn upper_median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
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

/// Sets the security question [`QUESTION`] with [`ANSWER`] (and the test password);
/// asserts `200 security_question_set`.
async fn set_the_question(app: &TestApp, access_token: &str) {
    let response = set_question(app, access_token, PASSWORD, QUESTION, ANSWER).await;
    json_status(response, 200, "security_question_set").await;
}

/// A verified account with a security question; returns (email, access token).
async fn account_with_question(app: &TestApp) -> (String, Tokens) {
    let email = app.verified_account().await;
    let tokens = app.log_in(&email, false).await;
    set_the_question(app, &tokens.access_token).await;
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

/// [`reset_question`] to [`OTHER_QUESTION`] and [`OTHER_ANSWER`], with the test password.
async fn reset_to_other_question(app: &TestApp, token: &str) -> reqwest::Response {
    reset_question(app, token, PASSWORD, OTHER_QUESTION, OTHER_ANSWER).await
}

/// Asserts that `token` resets the question ([`reset_to_other_question`]).
async fn assert_question_reset(app: &TestApp, token: &str) {
    let response = reset_to_other_question(app, token).await;
    json_status(response, 200, "security_question_reset").await;
}

/// Asks for a security-question reset link and returns the token mailed to `email`.
async fn ask_for_question_reset(app: &TestApp, email: &str) -> String {
    json_status(app.forgot_security_answer(email).await, 202, "email_sent").await;
    app.newest_link_token(email, QUESTION_PAGE).await
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
            json_status(app.forgot_password(login).await, 202, "email_sent").await;
            let mails = app.mails_with_link(&lowercase, RESET_PAGE).await;
            assert_eq!(mails.len(), i + 1, "{login}");
            assert_eq!(mails[0].to, stored, "{login}");
            assert_eq!(mails[0].subject, "Reset your password");
            assert_link_from_config(&mails[0], RESET_PAGE);
        }
        assert_all_mail_went_to(&app, &lowercase, &stored).await;
    }

    async fn forgot_by_username_mails_the_accounts_address(app) {
        let (email, username) = app.verified_account_with_username().await;
        json_status(app.forgot_password(&username.to_uppercase()).await, 202, "email_sent").await;
        let mails = app.mails_with_link(&email, RESET_PAGE).await;
        assert_eq!(mails.len(), 1);
        assert_eq!(mails[0].to, email);
        let token = mails[0].link_token(RESET_PAGE).expect("a link");
        json_status(reset(&app, &token, NEW_PASSWORD).await, 200, "password_reset").await;
        logs_in(&app, &username, NEW_PASSWORD).await;
    }

    async fn host_headers_do_not_change_the_link_in_the_reset_email(app) {
        let email = app.verified_account().await;
        let response = post_with_headers(
            &app, "/v1/password/forgot", POISONED, &json!({ "login": email }),
        )
        .await;
        json_status(response, 202, "email_sent").await;
        let mails = app.mails_with_link(&email, RESET_PAGE).await;
        assert_eq!(mails.len(), 1);
        assert_link_from_config(&mails[0], RESET_PAGE);
        // The link is the real one.
        let token = mails[0].link_token(RESET_PAGE).expect("a link");
        json_status(reset(&app, &token, NEW_PASSWORD).await, 200, "password_reset").await;
    }

    async fn forgot_for_an_unknown_login_answers_the_same_and_mails_nobody(app) {
        let email = app.verified_account().await;
        let (_, username) = app.verified_account_with_username().await;
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
        let email = app.verified_account().await;
        let first = ask_for_reset(&app, &email, &email).await;
        app.clock.advance(MINUTE - 1);
        json_status(app.forgot_password(&email).await, 202, "email_sent").await;
        assert_eq!(app.mails_with_link(&email, RESET_PAGE).await.len(), 1);
        app.clock.advance(2);
        json_status(app.forgot_password(&email).await, 202, "email_sent").await;
        let mails = app.mails_with_link(&email, RESET_PAGE).await;
        assert_eq!(mails.len(), 2);
        assert_ne!(mails[0].link_token(RESET_PAGE).as_deref(), Some(first.as_str()));
    }

    async fn a_forgot_refused_by_the_cooldown_leaves_the_first_link_working(app) {
        let email = app.verified_account().await;
        let first = ask_for_reset(&app, &email, &email).await;
        app.clock.advance(30);
        json_status(app.forgot_password(&email).await, 202, "email_sent").await;
        json_status(reset(&app, &first, NEW_PASSWORD).await, 200, "password_reset").await;
    }
}

/// Medians of `samples` forgot requests for a known account (each really mailing a
/// link) and for unknown logins, interleaved.
async fn forgot_timings(app: &TestApp, email: &str, samples: usize) -> (Duration, Duration) {
    let (mut known, mut unknown) = (Vec::new(), Vec::new());
    for _ in 0..samples {
        // Past the per-account cooldown, so that a link really goes out.
        app.clock.advance(MINUTE + 1);
        let sent = app.mails_with_link(email, RESET_PAGE).await.len();
        let started = Instant::now();
        let response = app.forgot_password(email).await;
        known.push(started.elapsed());
        json_status(response, 202, "email_sent").await;
        assert_eq!(app.mails_with_link(email, RESET_PAGE).await.len(), sent + 1);

        let login = unique_email();
        let started = Instant::now();
        let response = app.forgot_password(&login).await;
        unknown.push(started.elapsed());
        json_status(response, 202, "email_sent").await;
    }
    (upper_median(known), upper_median(unknown))
}

on_both_backends_with! {
    &[("ENUMERATION_FLOOR_MS", "300"), ("RECOVERIES_PER_IP_PER_HOUR", "1000")];
    async fn forgot_takes_as_long_for_an_unknown_login_as_for_a_known_one(app) {
        let email = app.verified_account().await;
        // Warm up both paths.
        json_status(app.forgot_password(&unique_email()).await, 202, "email_sent").await;
        json_status(app.forgot_password(&email).await, 202, "email_sent").await;
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
        let email = app.verified_account().await;
        json_status(app.forgot_password(&email).await, 202, "email_sent").await;
        json_status(app.forgot_password(&unique_email()).await, 202, "email_sent").await;
        app.clock.advance(MINUTE + 1);
        let seconds = rate_limited(app.forgot_password(&email).await).await;
        assert!(seconds <= 3_600, "Retry-After {seconds}");
        // Refused for an unknown login alike, and no mail went out.
        rate_limited(app.forgot_password(&unique_email()).await).await;
        assert_eq!(app.mails_with_link(&email, RESET_PAGE).await.len(), 1);
        // The next window accepts again.
        app.clock.advance(i64::try_from(seconds).expect("small") + 1);
        json_status(app.forgot_password(&email).await, 202, "email_sent").await;
        assert_eq!(app.mails_with_link(&email, RESET_PAGE).await.len(), 2);
    }
}

// ---------------------------------------------------------------------------------
// Reset password
// ---------------------------------------------------------------------------------

on_both_backends! {
    async fn a_reset_sets_the_new_password_and_ends_every_session(app) {
        let email = app.verified_account().await;
        let first = app.log_in(&email, false).await;
        let second = app.log_in(&email, true).await;
        let token = ask_for_reset(&app, &email, &email).await;

        let response = reset(&app, &token, NEW_PASSWORD).await;
        // No tokens: the user logs in again.
        json_status(response, 200, "password_reset").await;

        for tokens in [&first, &second] {
            app.assert_refresh_refused(&tokens.refresh_token).await;
            app.assert_access_refused(&tokens.access_token, "a token of a session the reset ended").await;
        }
        does_not_log_in(&app, &email, PASSWORD).await;
        let tokens = logs_in(&app, &email, NEW_PASSWORD).await;
        app.assert_access_accepted(&tokens.access_token).await;
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
        json_status(response, 200, "password_reset").await;
        let notices = app.mails_with_subject(&lowercase, "Your password was reset").await;
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
        let email = app.verified_account().await;
        let token = ask_for_reset(&app, &email, &email).await;
        field_problem(reset(&app, &token, "Qx7-zp").await, "weak_password", "new_password", "too_short").await;
        let body = problem(reset(&app, &token, "password123").await, 400, "weak_password").await;
        let errors = body["errors"].as_array().expect("errors");
        assert!(!errors.is_empty());
        assert!(errors.iter().all(|e| e["field"] == "new_password"), "{body}");
        // Nothing changed, and the link still works.
        logs_in(&app, &email, PASSWORD).await;
        json_status(reset(&app, &token, NEW_PASSWORD).await, 200, "password_reset").await;
        logs_in(&app, &email, NEW_PASSWORD).await;
    }

    async fn a_used_link_is_invalid(app) {
        let email = app.verified_account().await;
        let token = ask_for_reset(&app, &email, &email).await;
        json_status(reset(&app, &token, NEW_PASSWORD).await, 200, "password_reset").await;
        problem(reset(&app, &token, "another-fine-password-7").await, 400, "invalid_token").await;
        logs_in(&app, &email, NEW_PASSWORD).await;
    }

    async fn a_garbage_or_forged_token_is_invalid(app) {
        let email = app.verified_account().await;
        let token = ask_for_reset(&app, &email, &email).await;
        let (selector, _) = token.split_once('.').expect("a selector and a verifier");
        let forged = format!("{selector}.{}", "A".repeat(43));
        let other_account = format!("{}.{}", uuid::Uuid::new_v4(), token.split_once('.').expect("two parts").1);
        for garbage in ["", "garbage", "a.b", forged.as_str(), other_account.as_str(), &token[..token.len() - 1]] {
            problem(reset(&app, garbage, NEW_PASSWORD).await, 400, "invalid_token").await;
        }
        json_status(reset(&app, &token, NEW_PASSWORD).await, 200, "password_reset").await;
    }

    async fn a_reset_body_with_unknown_fields_is_refused(app) {
        let email = app.verified_account().await;
        let token = ask_for_reset(&app, &email, &email).await;
        let response = app
            .reset_password(&json!({ "token": token, "new_password": NEW_PASSWORD, "email_verified": true }))
            .await;
        problem(response, 400, "invalid_request").await;
        json_status(reset(&app, &token, NEW_PASSWORD).await, 200, "password_reset").await;
    }

    async fn a_link_works_for_an_hour_and_no_longer(app) {
        let email = app.verified_account().await;
        let token = ask_for_reset(&app, &email, &email).await;
        app.clock.advance(HOUR - 1);
        json_status(reset(&app, &token, NEW_PASSWORD).await, 200, "password_reset").await;

        let other = app.verified_account().await;
        let token = ask_for_reset(&app, &other, &other).await;
        app.clock.advance(HOUR + 1);
        problem(reset(&app, &token, NEW_PASSWORD).await, 400, "token_expired").await;
        logs_in(&app, &other, PASSWORD).await;
    }

    async fn a_newer_link_makes_the_older_one_stop_working(app) {
        let email = app.verified_account().await;
        let older = ask_for_reset(&app, &email, &email).await;
        app.clock.advance(MINUTE + 1);
        let newer = ask_for_reset(&app, &email, &email).await;
        assert_ne!(older, newer);
        problem(reset(&app, &older, NEW_PASSWORD).await, 400, "invalid_token").await;
        json_status(reset(&app, &newer, NEW_PASSWORD).await, 200, "password_reset").await;
        logs_in(&app, &email, NEW_PASSWORD).await;
    }

    async fn twenty_concurrent_resets_with_one_link_succeed_once(app) {
        let email = app.verified_account().await;
        let token = ask_for_reset(&app, &email, &email).await;
        let bodies = (0..20)
            .map(|_| json!({ "token": token, "new_password": NEW_PASSWORD }))
            .collect();
        let answers = app.post_concurrently("/v1/password/reset", bodies).await;
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
        assert_eq!(app.mails_with_subject(&email, "Your password was reset").await.len(), 1);
    }

    async fn a_locked_account_can_reset_and_log_in_at_once(app) {
        let email = app.verified_account().await;
        for _ in 0..5 {
            does_not_log_in(&app, &email, WRONG_PASSWORD).await;
        }
        rate_limited(app.try_log_in(&email, PASSWORD).await).await;
        let token = ask_for_reset(&app, &email, &email).await;
        json_status(reset(&app, &token, NEW_PASSWORD).await, 200, "password_reset").await;
        // The reset cleared the back-off: no waiting.
        logs_in(&app, &email, NEW_PASSWORD).await;
    }

    async fn a_reset_verifies_an_unverified_account(app) {
        let email = unique_email();
        assert_eq!(app.sign_up(&email).await.status(), 202);
        problem(app.try_log_in(&email, PASSWORD).await, 403, "email_not_verified").await;
        let token = ask_for_reset(&app, &email, &email).await;
        json_status(reset(&app, &token, NEW_PASSWORD).await, 200, "password_reset").await;
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
        let email = app.verified_account().await;
        let caller = app.log_in(&email, false).await;
        let others = [app.log_in(&email, false).await, app.log_in(&email, true).await];

        json_status(change(&app, &caller.access_token, PASSWORD, NEW_PASSWORD).await, 200, "password_changed").await;

        for other in &others {
            app.assert_access_refused(&other.access_token, "a token of a session the change ended").await;
            app.assert_refresh_refused(&other.refresh_token).await;
        }
        app.assert_access_accepted(&caller.access_token).await;
        let rotated = ok_tokens(app.refresh(&caller.refresh_token).await).await;
        app.assert_access_accepted(&rotated.access_token).await;
        assert_eq!(rotated.session_id, caller.session_id);

        does_not_log_in(&app, &email, PASSWORD).await;
        logs_in(&app, &email, NEW_PASSWORD).await;
    }

    async fn a_change_can_leave_other_sessions_signed_in(app) {
        let email = app.verified_account().await;
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
        json_status(response, 200, "password_changed").await;
        app.assert_access_accepted(&other.access_token).await;
        ok_tokens(app.refresh(&other.refresh_token).await).await;
        app.assert_access_accepted(&caller.access_token).await;
        logs_in(&app, &email, NEW_PASSWORD).await;
    }

    async fn a_wrong_current_password_changes_nothing(app) {
        let email = app.verified_account().await;
        let caller = app.log_in(&email, false).await;
        let other = app.log_in(&email, false).await;
        problem(change(&app, &caller.access_token, WRONG_PASSWORD, NEW_PASSWORD).await, 401, "invalid_credentials").await;
        app.assert_access_accepted(&caller.access_token).await;
        app.assert_access_accepted(&other.access_token).await;
        does_not_log_in(&app, &email, NEW_PASSWORD).await;
        logs_in(&app, &email, PASSWORD).await;
        assert!(app.mails_with_subject(&email, "Your password was changed").await.is_empty());
    }

    async fn five_wrong_current_passwords_lock_signed_in_password_checks_but_not_the_login(app) {
        let email = app.verified_account().await;
        let caller = app.log_in(&email, false).await;
        for _ in 0..5 {
            problem(change(&app, &caller.access_token, WRONG_PASSWORD, NEW_PASSWORD).await, 401, "invalid_credentials").await;
        }
        let seconds = rate_limited(change(&app, &caller.access_token, PASSWORD, NEW_PASSWORD).await).await;
        assert!((29..=30).contains(&seconds), "Retry-After {seconds}");
        // Re-authentication has a counter of its own: the login is not locked by it.
        logs_in(&app, &email, PASSWORD).await;
        // Nothing changed, and the check works again after the back-off.
        app.clock.advance(31);
        json_status(change(&app, &caller.access_token, PASSWORD, NEW_PASSWORD).await, 200, "password_changed").await;
    }

    async fn a_weak_new_password_is_refused_on_change(app) {
        let email = app.verified_account().await;
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
        json_status(change(&app, &caller.access_token, PASSWORD, NEW_PASSWORD).await, 200, "password_changed").await;
        let notices = app.mails_with_subject(&lowercase, "Your password was changed").await;
        assert_eq!(notices.len(), 1);
        assert_eq!(notices[0].to, stored);
        assert!(notices[0].text.contains("127.0.0.1"), "{}", notices[0].text);
        assert_all_mail_went_to(&app, &lowercase, &stored).await;
    }

    async fn a_change_needs_a_valid_access_token(app) {
        let email = app.verified_account().await;
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
        let email = app.verified_account().await;
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
        let email = app.verified_account().await;
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
        json_status(
            set_question(&app, &tokens.access_token, PASSWORD, OTHER_QUESTION, OTHER_ANSWER).await,
            200,
            "security_question_set",
        )
        .await;
        assert!(has_question(&app, &email).await);
    }

    async fn setting_a_question_needs_the_current_password(app) {
        let email = app.verified_account().await;
        let tokens = app.log_in(&email, false).await;
        problem(set_question(&app, &tokens.access_token, WRONG_PASSWORD, QUESTION, ANSWER).await, 401, "invalid_credentials").await;
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
        assert!(app.mails_with_subject(&email, "Your security question was changed").await.is_empty());
    }

    async fn an_unknown_question_or_field_is_refused(app) {
        let email = app.verified_account().await;
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
        let (email, username) = app.verified_account_with_username().await;
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
        set_the_question(&app, &tokens.access_token).await;
        let notices = app.mails_with_subject(&lowercase, "Your security question was changed").await;
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
        let without_question = app.verified_account().await;
        let unknown = unique_email();

        let reference = snapshot(app.forgot_security_answer(&with_question.to_uppercase()).await).await;
        assert_eq!(reference.0, 202);
        assert_eq!(serde_json::from_slice::<Value>(&reference.2).expect("JSON"), json!({ "status": "email_sent" }));
        let mails = app.mails_with_link(&with_question, QUESTION_PAGE).await;
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
        json_status(response, 202, "email_sent").await;
        let mails = app.mails_with_link(&email, QUESTION_PAGE).await;
        assert_eq!(mails.len(), 1);
        assert_link_from_config(&mails[0], QUESTION_PAGE);
    }

    async fn the_link_and_the_password_reset_the_question(app) {
        let (email, tokens) = account_with_question(&app).await;
        let token = ask_for_question_reset(&app, &email).await;
        assert_question_reset(&app, &token).await;
        assert!(has_question(&app, &email).await);
        // The password and the sessions are untouched.
        app.assert_access_accepted(&tokens.access_token).await;
        logs_in(&app, &email, PASSWORD).await;
        let notices = app.mails_with_subject(&email, "Your security question was changed").await;
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
        set_the_question(&app, &tokens.access_token).await;
        json_status(app.forgot_security_answer(&lowercase.to_uppercase()).await, 202, "email_sent").await;
        let links = app.mails_with_link(&lowercase, QUESTION_PAGE).await;
        assert_eq!(links.len(), 1);
        assert_eq!(links[0].to, stored);
        let token = links[0].link_token(QUESTION_PAGE).expect("a link");
        assert_question_reset(&app, &token).await;
        let notices = app.mails_with_subject(&lowercase, "Your security question was changed").await;
        assert_eq!(notices.len(), 2);
        assert!(notices[0].text.contains("127.0.0.1"), "{}", notices[0].text);
        assert_all_mail_went_to(&app, &lowercase, &stored).await;
    }

    async fn a_wrong_password_on_a_question_reset_leaves_the_link_working(app) {
        let (email, _) = account_with_question(&app).await;
        let token = ask_for_question_reset(&app, &email).await;
        problem(
            reset_question(&app, &token, WRONG_PASSWORD, OTHER_QUESTION, OTHER_ANSWER).await,
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
        assert_question_reset(&app, &token).await;
    }

    async fn a_question_link_expires_after_an_hour(app) {
        let (email, _) = account_with_question(&app).await;
        let token = ask_for_question_reset(&app, &email).await;
        app.clock.advance(HOUR + 1);
        problem(
            reset_to_other_question(&app, &token).await,
            400,
            "token_expired",
        )
        .await;
        problem(
            reset_to_other_question(&app, "garbage").await,
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
            reset_to_other_question(&app, &password_token).await,
            400,
            "invalid_token",
        )
        .await;
        // Both still work for their own purpose.
        assert_question_reset(&app, &question_token).await;
        json_status(reset(&app, &password_token, NEW_PASSWORD).await, 200, "password_reset").await;
    }
}

// ---------------------------------------------------------------------------------
// The pages the links open (docs/web-pages.md), as a browser sends their forms
// ---------------------------------------------------------------------------------

on_both_backends! {
    async fn the_reset_page_spends_nothing_when_opened_and_its_form_works_once(app) {
        let email = app.verified_account().await;
        let token = ask_for_reset(&app, &email, &email).await;
        let page = format!("{RESET_PAGE}?token={token}");
        // A mail scanner may fetch the link any number of times.
        for _ in 0..2 {
            let opened = app.get(&page).await;
            assert_eq!(opened.status(), 200);
            let html = opened.text().await.expect("a page");
            assert!(html.contains(&format!("name=\"token\" value=\"{token}\"")), "{html}");
        }
        logs_in(&app, &email, PASSWORD).await;
        let pairs = [
            ("token", token.as_str()),
            ("new_password", NEW_PASSWORD),
            ("confirm_password", NEW_PASSWORD),
        ];
        let done = app.post_form(&page, &pairs).await;
        assert_eq!(done.status(), 303);
        assert_eq!(header(&done, "location").as_deref(), Some("/login?notice=password_reset"));
        logs_in(&app, &email, NEW_PASSWORD).await;
        // The form cannot be sent twice.
        let again = app.post_form(&page, &pairs).await;
        assert_eq!(again.status(), 400);
        let html = again.text().await.expect("a page");
        assert!(html.contains("This link no longer works"), "{html}");
        assert_eq!(app.mails_with_subject(&email, "Your password was reset").await.len(), 1);
    }

    async fn a_link_page_opened_without_its_token_says_so_and_offers_no_form(app) {
        for (page, again) in [
            ("/verify-email", "/check-email"),
            (RESET_PAGE, "/forgot-password"),
            (QUESTION_PAGE, "/forgot-security-answer"),
        ] {
            let opened = app.get(page).await;
            assert_eq!(opened.status(), 200, "{page}");
            let html = opened.text().await.expect("a page");
            assert!(html.contains("This link is incomplete"), "{page}: {html}");
            assert!(!html.contains("<form"), "{page}: {html}");
            assert!(html.contains(&format!("href=\"{again}\"")), "{page}: {html}");
        }
    }

    async fn the_question_reset_page_lists_every_question_and_its_form_resets(app) {
        let (email, _) = account_with_question(&app).await;
        let token = ask_for_question_reset(&app, &email).await;
        let page = format!("{QUESTION_PAGE}?token={token}");
        let html = app.get(&page).await.text().await.expect("a page");
        for question in body(app.security_questions().await).await.as_array().expect("a list") {
            let id = question["id"].as_str().expect("an id");
            assert!(html.contains(&format!("<option value=\"{id}\"")), "{id} missing");
            assert!(html.contains(question["text"].as_str().expect("a text")));
        }
        let done = app
            .post_form(&page, &[
                ("token", &token),
                ("password", PASSWORD),
                ("question_id", OTHER_QUESTION),
                ("answer", OTHER_ANSWER),
            ])
            .await;
        assert_eq!(done.status(), 303);
        assert_eq!(header(&done, "location").as_deref(), Some("/login?notice=question_reset"));
        problem(
            reset_question(&app, &token, PASSWORD, QUESTION, "Another Answer").await,
            400,
            "invalid_token",
        )
        .await;
    }
}
