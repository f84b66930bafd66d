//! Two-step verification, end to end: enrolling an authenticator app
//! (`POST /v1/2fa/totp/setup` and `/confirm`), logging in with each second factor
//! (`POST /v1/login` then `POST /v1/login/mfa`), single use of codes and challenges
//! (also under concurrency), clock drift, backup codes (exhaustion and regeneration),
//! the challenge's lifetime and five-strike limit, a password reset that demands a
//! factor, and turning two-step verification off.

use std::collections::BTreeSet;

use api_tests::assert::{ok_json, problem, rate_limited};
use api_tests::{
    Mail, PASSWORD, TestApp, Tokens, WRONG_PASSWORD, codes_of, mfa_token, on_both_backends,
    sorted_keys,
};
use serde_json::{Value, json};

/// Seconds in a TOTP time step.
const STEP: i64 = 30;
/// A new password that meets the policy.
const NEW_PASSWORD: &str = "violet-harbour-4471";
/// The security question used here, and its answer.
const QUESTION_ID: &str = "first-pet";
const QUESTION_TEXT: &str = "What was the name of your first pet?";
const ANSWER: &str = "Rex the Dog";

const TURNED_ON: &str = "Two-step verification was turned on";
const TURNED_OFF: &str = "Two-step verification was turned off";
const REGENERATED: &str = "New backup codes were created";

// ---------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------

/// Asserts a successful second step: a token pair plus the backup-code count (and the
/// low-codes warning when `remaining` is two or fewer). Returns the tokens.
async fn mfa_tokens(response: reqwest::Response, remaining: usize) -> Tokens {
    let body = ok_json(response).await;
    let mut expected = vec![
        "access_token",
        "backup_codes_remaining",
        "expires_in",
        "refresh_token",
        "session_id",
        "token_type",
    ];
    if remaining <= 2 {
        expected.push("warning");
        expected.sort_unstable();
        assert_eq!(body["warning"], "backup_codes_low", "{body}");
    }
    assert_eq!(sorted_keys(&body), expected, "{body}");
    assert_eq!(body["backup_codes_remaining"], remaining, "{body}");
    assert_eq!(body["token_type"], "Bearer", "{body}");
    serde_json::from_value(body).expect("a token pair")
}

/// A verified, signed-in account.
struct Account {
    email: String,
    tokens: Tokens,
}

async fn signed_in(app: &TestApp) -> Account {
    let email = app.verified_account().await;
    let tokens = app.log_in(&email, false).await;
    Account { email, tokens }
}

/// Logs in and passes the second step with the authenticator app (at a fresh step).
async fn log_in_with_totp(app: &TestApp, email: &str, secret: &str, remaining: usize) -> Tokens {
    let token = mfa_token(&app.challenge(email).await);
    let code = app.fresh_code(secret);
    mfa_tokens(app.login_mfa(&token, "totp", &code).await, remaining).await
}

async fn two_step_of(app: &TestApp, access_token: &str) -> Value {
    ok_json(app.account(access_token).await).await["two_step"].clone()
}

/// Every email to `address` with this subject, newest first; each must go to the
/// stored address.
async fn mails_titled(app: &TestApp, address: &str, subject: &str) -> Vec<Mail> {
    let mails = app.mails_with_subject(address, subject).await;
    for mail in &mails {
        assert_eq!(mail.to, address);
    }
    mails
}

async fn set_question(app: &TestApp, access_token: &str) {
    let response = app
        .set_security_question(
            access_token,
            &json!({
                "current_password": PASSWORD,
                "question_id": QUESTION_ID,
                "answer": ANSWER,
            }),
        )
        .await;
    assert_eq!(ok_json(response).await["status"], "security_question_set");
}

/// Runs `POST /v1/login/mfa` once per token, all at the same time, with the same
/// method and code; returns each status with its `code` (problem) or `"ok"`.
async fn concurrent_mfa(
    app: &TestApp,
    tokens: Vec<String>,
    method: &str,
    code: &str,
) -> Vec<(u16, String)> {
    let attempts = tokens
        .into_iter()
        .map(|token| json!({ "mfa_token": token, "method": method, "code": code }))
        .collect();
    app.post_concurrently("/v1/login/mfa", attempts)
        .await
        .into_iter()
        .map(|(status, body)| (status, body["code"].as_str().unwrap_or("ok").to_owned()))
        .collect()
}

/// Asserts that exactly one of [`concurrent_mfa`]'s attempts passed, and that the others
/// were refused as wrong codes (which may back the account off).
fn assert_accepted_once(results: &[(u16, String)]) {
    let passed = results.iter().filter(|(s, _)| *s == 200).count();
    assert_eq!(passed, 1, "{results:?}");
    for (status, code) in results.iter().filter(|(s, _)| *s != 200) {
        assert!(
            [(401, "invalid_code"), (429, "rate_limited")].contains(&(*status, code.as_str())),
            "{results:?}"
        );
    }
}

/// `POST /v1/password/reset` with the new password and, if given, a second factor.
async fn reset_with(app: &TestApp, token: &str, mfa: Option<Value>) -> reqwest::Response {
    let mut payload = json!({ "token": token, "new_password": NEW_PASSWORD });
    if let Some(mfa) = mfa {
        payload["mfa"] = mfa;
    }
    app.reset_password(&payload).await
}

/// `DELETE /v1/2fa/totp` with a password and a code.
async fn disable(
    app: &TestApp,
    access_token: &str,
    password: &str,
    code: String,
) -> reqwest::Response {
    app.totp_disable(
        access_token,
        &json!({ "current_password": password, "code": code }),
    )
    .await
}

/// Requests a reset link for `email` and returns its token.
async fn reset_token(app: &TestApp, email: &str) -> String {
    assert_eq!(app.forgot_password(email).await.status(), 202);
    app.newest_link_token(email, "/reset-password").await
}

async fn history(app: &TestApp, access_token: &str) -> Vec<(String, String)> {
    let entries = ok_json(app.login_history(access_token, "").await).await;
    entries
        .as_array()
        .expect("a list")
        .iter()
        .map(|e| {
            (
                e["outcome"].as_str().expect("an outcome").to_owned(),
                e["method"].as_str().expect("a method").to_owned(),
            )
        })
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect()
}

// ---------------------------------------------------------------------------------
// Enrolment
// ---------------------------------------------------------------------------------

on_both_backends! {
    async fn setup_returns_a_base32_secret_an_otpauth_url_and_a_qr_code(app) {
        let Account { email, tokens } = signed_in(&app).await;
        assert_eq!(
            two_step_of(&app, &tokens.access_token).await,
            json!({ "totp": false, "security_question": false, "backup_codes_remaining": 0 })
        );
        let setup = ok_json(app.totp_setup(&tokens.access_token).await).await;
        let secret = setup["secret"].as_str().expect("a secret");
        // 160 bits, RFC 4648 base32 without padding.
        assert_eq!(secret.len(), 32, "{setup}");
        assert!(
            secret.bytes().all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b)),
            "{setup}"
        );
        let url = setup["otpauth_url"].as_str().expect("an otpauth URL");
        let label = format!("otpauth://totp/Account%20Security:{}?", email.replace('@', "%40"));
        assert!(url.starts_with(&label), "{url}");
        let query: BTreeSet<&str> = url[label.len()..].split('&').collect();
        let secret_param = format!("secret={secret}");
        for param in [
            secret_param.as_str(),
            "issuer=Account%20Security",
            "algorithm=SHA1",
            "digits=6",
            "period=30",
        ] {
            assert!(query.contains(param), "{param} missing from {url}");
        }
        let svg = setup["qr_svg"].as_str().expect("an SVG");
        assert!(svg.starts_with("<svg"), "{svg}");
        assert!(svg.trim_end().ends_with("</svg>"));
        // Pending only: two-step verification is not on yet.
        assert_eq!(two_step_of(&app, &tokens.access_token).await["totp"], false);
        let plain = ok_json(
            app.login(&json!({ "login": email, "password": PASSWORD })).await,
        )
        .await;
        assert!(plain["access_token"].is_string(), "{plain}");
    }

    async fn confirming_with_a_valid_code_turns_two_step_on_and_returns_ten_backup_codes(app) {
        let Account { email, tokens } = signed_in(&app).await;
        let setup = ok_json(app.totp_setup(&tokens.access_token).await).await;
        let secret = setup["secret"].as_str().expect("a secret").to_owned();

        let wrong = app.wrong_code(&secret);
        problem(app.totp_confirm(&tokens.access_token, &wrong).await, 400, "invalid_code").await;

        let confirmed = ok_json(
            app.totp_confirm(&tokens.access_token, &app.totp_code(&secret, 0)).await,
        )
        .await;
        assert_eq!(sorted_keys(&confirmed), ["backup_codes"]);
        let codes = codes_of(&confirmed);
        assert_eq!(codes.len(), 10, "{confirmed}");
        assert_eq!(codes.iter().collect::<BTreeSet<_>>().len(), 10, "{confirmed}");
        for code in &codes {
            // xxxxx-xxxxx in Crockford's base32: 50 bits each.
            let bare = code.replace('-', "");
            assert_eq!((code.len(), bare.len()), (11, 10), "{code}");
            assert!(bare.bytes().all(|b| b"0123456789abcdefghjkmnpqrstvwxyz".contains(&b)));
        }
        assert_eq!(
            two_step_of(&app, &tokens.access_token).await,
            json!({ "totp": true, "security_question": false, "backup_codes_remaining": 10 })
        );
        let mails = mails_titled(&app, &email, TURNED_ON).await;
        assert_eq!(mails.len(), 1);
        // The codes are shown once: never in the email.
        for code in &codes {
            assert!(!mails[0].text.contains(code.as_str()) && !mails[0].html.contains(code.as_str()));
        }
        // The account response never shows a secret.
        let account = ok_json(app.account(&tokens.access_token).await).await.to_string();
        assert!(!account.contains(&secret) && !account.contains(&codes[0]));
    }

    async fn setup_and_confirm_while_two_step_is_on_are_conflicts(app) {
        let user = app.enrolled().await;
        problem(app.totp_setup(&user.tokens.access_token).await, 409, "totp_already_enabled").await;
        let code = app.fresh_code(&user.secret);
        problem(
            app.totp_confirm(&user.tokens.access_token, &code).await,
            409,
            "totp_already_enabled",
        )
        .await;
        // Still the first secret: its codes log in.
        log_in_with_totp(&app, &user.email, &user.secret, 10).await;
    }

    async fn confirming_without_a_pending_setup_is_refused(app) {
        let Account { tokens, .. } = signed_in(&app).await;
        problem(app.totp_confirm(&tokens.access_token, "123456").await, 400, "totp_setup_expired")
            .await;
    }

    async fn a_pending_setup_lives_ten_minutes(app) {
        let Account { email, tokens } = signed_in(&app).await;
        let setup = ok_json(app.totp_setup(&tokens.access_token).await).await;
        let secret = setup["secret"].as_str().expect("a secret").to_owned();
        app.clock.advance(601);
        problem(
            app.totp_confirm(&tokens.access_token, &app.totp_code(&secret, 0)).await,
            400,
            "totp_setup_expired",
        )
        .await;
        assert_eq!(two_step_of(&app, &tokens.access_token).await["totp"], false);

        let tokens = app.log_in(&email, false).await;
        let setup = ok_json(app.totp_setup(&tokens.access_token).await).await;
        let secret = setup["secret"].as_str().expect("a secret").to_owned();
        app.clock.advance(590);
        ok_json(app.totp_confirm(&tokens.access_token, &app.totp_code(&secret, 0)).await).await;
        assert_eq!(two_step_of(&app, &tokens.access_token).await["totp"], true);
    }

    async fn five_wrong_confirm_codes_end_the_setup(app) {
        let Account { tokens, .. } = signed_in(&app).await;
        let setup = ok_json(app.totp_setup(&tokens.access_token).await).await;
        let secret = setup["secret"].as_str().expect("a secret").to_owned();
        let wrong = app.wrong_code(&secret);
        for _ in 0..5 {
            problem(app.totp_confirm(&tokens.access_token, &wrong).await, 400, "invalid_code")
                .await;
        }
        problem(
            app.totp_confirm(&tokens.access_token, &app.totp_code(&secret, 0)).await,
            400,
            "totp_setup_expired",
        )
        .await;
        // A new setup starts over.
        let setup = ok_json(app.totp_setup(&tokens.access_token).await).await;
        let secret = setup["secret"].as_str().expect("a secret").to_owned();
        ok_json(app.totp_confirm(&tokens.access_token, &app.totp_code(&secret, 0)).await).await;
    }

    async fn a_new_setup_replaces_the_pending_secret(app) {
        let Account { tokens, .. } = signed_in(&app).await;
        let first = ok_json(app.totp_setup(&tokens.access_token).await).await;
        let second = ok_json(app.totp_setup(&tokens.access_token).await).await;
        let (first, second) = (
            first["secret"].as_str().expect("a secret").to_owned(),
            second["secret"].as_str().expect("a secret").to_owned(),
        );
        assert_ne!(first, second);
        problem(
            app.totp_confirm(&tokens.access_token, &app.totp_code(&first, 0)).await,
            400,
            "invalid_code",
        )
        .await;
        ok_json(app.totp_confirm(&tokens.access_token, &app.totp_code(&second, 0)).await).await;
    }

    async fn two_factor_routes_need_a_signed_in_caller(app) {
        let anonymous = |method: reqwest::Method, path: &str| {
            app.http.request(method, format!("{}{path}", app.address))
        };
        for (method, path, payload) in [
            (reqwest::Method::POST, "/v1/2fa/totp/setup", json!({})),
            (reqwest::Method::POST, "/v1/2fa/totp/confirm", json!({ "code": "123456" })),
            (
                reqwest::Method::DELETE,
                "/v1/2fa/totp",
                json!({ "current_password": PASSWORD, "code": "123456" }),
            ),
            (
                reqwest::Method::POST,
                "/v1/2fa/backup-codes",
                json!({ "current_password": PASSWORD }),
            ),
        ] {
            let response = anonymous(method, path).json(&payload).send().await.expect("sent");
            problem(response, 401, "unauthorized").await;
        }
    }
}

// ---------------------------------------------------------------------------------
// Logging in with a second factor
// ---------------------------------------------------------------------------------

on_both_backends! {
    async fn login_asks_for_a_second_factor_and_gives_no_tokens(app) {
        let user = app.enrolled().await;
        let asked = app.challenge(&user.email).await;
        assert_eq!(
            sorted_keys(&asked),
            ["backup_codes_remaining", "methods", "mfa_required", "mfa_token"],
            "{asked}"
        );
        assert_eq!(asked["methods"], json!(["totp", "backup_code"]));
        assert_eq!(asked["backup_codes_remaining"], 10);
        assert!(asked.get("access_token").is_none() && asked.get("refresh_token").is_none());
    }

    async fn a_half_finished_login_opens_nothing(app) {
        let user = app.enrolled().await;
        let token = mfa_token(&app.challenge(&user.email).await);
        problem(app.account(&token).await, 401, "unauthorized").await;
        problem(app.totp_setup(&token).await, 401, "unauthorized").await;
        problem(app.login_history(&token, "").await, 401, "unauthorized").await;
        problem(app.refresh(&token).await, 401, "invalid_token").await;
        // The challenge itself is unharmed.
        let code = app.fresh_code(&user.secret);
        mfa_tokens(app.login_mfa(&token, "totp", &code).await, 10).await;
    }

    async fn login_with_an_authenticator_code_gives_tokens(app) {
        let user = app.enrolled().await;
        let token = mfa_token(&app.challenge_with(&user.email, PASSWORD, true).await);
        let code = app.fresh_code(&user.secret);
        let tokens = mfa_tokens(app.login_mfa(&token, "totp", &code).await, 10).await;
        let account = ok_json(app.account(&tokens.access_token).await).await;
        assert_eq!(account["email"], user.email.as_str());
        // remember_me travels through the challenge.
        let sessions = ok_json(app.sessions(&tokens.access_token).await).await;
        let current = sessions
            .as_array()
            .expect("a list")
            .iter()
            .find(|s| s["current"] == true)
            .expect("the current session")
            .clone();
        assert_eq!(current["remember_me"], true, "{sessions}");
        // A real session: its refresh token works.
        let refreshed = ok_json(app.refresh(&tokens.refresh_token).await).await;
        assert!(refreshed["access_token"].is_string());
        // Spaces as authenticator apps show them ("123 456") are fine.
        let token = mfa_token(&app.challenge(&user.email).await);
        let code = app.fresh_code(&user.secret);
        let spaced = format!("{} {}", &code[..3], &code[3..]);
        mfa_tokens(app.login_mfa(&token, "totp", &spaced).await, 10).await;
    }

    async fn login_with_a_backup_code_spends_it(app) {
        let user = app.enrolled().await;
        let token = mfa_token(&app.challenge(&user.email).await);
        // Typed forgivingly: upper case, no dash.
        let typed = user.backup_codes[0].replace('-', "").to_uppercase();
        let tokens = mfa_tokens(app.login_mfa(&token, "backup_code", &typed).await, 9).await;
        assert_eq!(two_step_of(&app, &tokens.access_token).await["backup_codes_remaining"], 9);
        assert_eq!(app.challenge(&user.email).await["backup_codes_remaining"], 9);
    }

    async fn login_with_the_security_question(app) {
        let user = app.enrolled().await;
        set_question(&app, &user.tokens.access_token).await;
        assert_eq!(
            two_step_of(&app, &user.tokens.access_token).await,
            json!({ "totp": true, "security_question": true, "backup_codes_remaining": 10 })
        );
        let asked = app.challenge(&user.email).await;
        assert_eq!(asked["methods"], json!(["totp", "backup_code", "security_question"]));
        assert_eq!(asked["security_question"], QUESTION_TEXT);
        let token = mfa_token(&asked);
        problem(app.login_mfa(&token, "security_question", "Rex the Cat").await, 401, "invalid_code")
            .await;
        // Case and surrounding spaces do not matter.
        let tokens = mfa_tokens(
            app.login_mfa(&token, "security_question", "  rEX THE dog ").await,
            10,
        )
        .await;
        assert_eq!(two_step_of(&app, &tokens.access_token).await["totp"], true);
    }

    async fn a_method_the_account_does_not_offer_is_a_bad_request(app) {
        let user = app.enrolled().await;
        let token = mfa_token(&app.challenge(&user.email).await);
        problem(app.login_mfa(&token, "security_question", ANSWER).await, 400, "invalid_request")
            .await;
        problem(app.login_mfa(&token, "sms", "123456").await, 400, "invalid_request").await;
        let code = app.fresh_code(&user.secret);
        mfa_tokens(app.login_mfa(&token, "totp", &code).await, 10).await;
    }

    async fn a_security_question_alone_does_not_turn_two_step_on(app) {
        let Account { email, tokens } = signed_in(&app).await;
        set_question(&app, &tokens.access_token).await;
        let response = ok_json(app.login(&json!({ "login": email, "password": PASSWORD })).await)
            .await;
        assert!(response["access_token"].is_string(), "{response}");
        assert!(response.get("mfa_required").is_none(), "{response}");
    }

    async fn the_login_history_records_second_factors(app) {
        let user = app.enrolled().await;
        app.clock.advance(1);
        let token = mfa_token(&app.challenge(&user.email).await);
        let wrong = app.wrong_code(&user.secret);
        problem(app.login_mfa(&token, "totp", &wrong).await, 401, "invalid_code").await;
        app.clock.advance(STEP);
        let code = app.totp_code(&user.secret, 0);
        mfa_tokens(app.login_mfa(&token, "totp", &code).await, 10).await;
        app.clock.advance(1);
        let token = mfa_token(&app.challenge(&user.email).await);
        problem(app.login_mfa(&token, "backup_code", "aaaaa-bbbbb").await, 401, "invalid_code")
            .await;
        app.clock.advance(1);
        let tokens =
            mfa_tokens(app.login_mfa(&token, "backup_code", &user.backup_codes[3]).await, 9).await;
        assert_eq!(
            history(&app, &tokens.access_token).await,
            pairs(&[
                ("success", "backup_code"),
                ("bad_code", "backup_code"),
                ("success", "totp"),
                ("bad_code", "totp"),
                ("success", "password"),
            ])
        );
    }
}

// ---------------------------------------------------------------------------------
// Single use and drift
// ---------------------------------------------------------------------------------

on_both_backends! {
    async fn the_confirming_code_cannot_log_in(app) {
        let user = app.enrolled().await;
        let token = mfa_token(&app.challenge(&user.email).await);
        let confirming = app.totp_code(&user.secret, 0);
        problem(app.login_mfa(&token, "totp", &confirming).await, 401, "invalid_code").await;
        // The challenge survives a wrong code: the next step's code passes.
        let code = app.fresh_code(&user.secret);
        mfa_tokens(app.login_mfa(&token, "totp", &code).await, 10).await;
    }

    async fn a_code_is_accepted_once(app) {
        let user = app.enrolled().await;
        let first = mfa_token(&app.challenge(&user.email).await);
        let second = mfa_token(&app.challenge(&user.email).await);
        let code = app.fresh_code(&user.secret);
        mfa_tokens(app.login_mfa(&first, "totp", &code).await, 10).await;
        problem(app.login_mfa(&second, "totp", &code).await, 401, "invalid_code").await;
    }

    async fn a_code_replayed_concurrently_is_accepted_once(app) {
        let user = app.enrolled().await;
        let mut tokens = Vec::new();
        for _ in 0..10 {
            tokens.push(mfa_token(&app.challenge(&user.email).await));
        }
        let code = app.fresh_code(&user.secret);
        let results = concurrent_mfa(&app, tokens, "totp", &code).await;
        assert_accepted_once(&results);
    }

    async fn a_backup_code_used_concurrently_is_accepted_once(app) {
        let user = app.enrolled().await;
        let mut tokens = Vec::new();
        for _ in 0..6 {
            tokens.push(mfa_token(&app.challenge(&user.email).await));
        }
        let results = concurrent_mfa(&app, tokens, "backup_code", &user.backup_codes[0]).await;
        assert_accepted_once(&results);
        assert_eq!(
            two_step_of(&app, &user.tokens.access_token).await["backup_codes_remaining"],
            9
        );
    }

    async fn a_backup_code_is_accepted_once(app) {
        let user = app.enrolled().await;
        let token = mfa_token(&app.challenge(&user.email).await);
        mfa_tokens(app.login_mfa(&token, "backup_code", &user.backup_codes[5]).await, 9).await;
        let token = mfa_token(&app.challenge(&user.email).await);
        problem(app.login_mfa(&token, "backup_code", &user.backup_codes[5]).await, 401, "invalid_code")
            .await;
        mfa_tokens(app.login_mfa(&token, "backup_code", &user.backup_codes[6]).await, 8).await;
    }

    async fn one_step_of_drift_is_accepted_and_two_are_refused(app) {
        let user = app.enrolled().await;
        // Well past the confirming step, so that earlier steps are still unused.
        app.clock.advance(10 * STEP);
        let token = mfa_token(&app.challenge(&user.email).await);
        for offset in [-2, 2] {
            let code = app.totp_code(&user.secret, offset);
            problem(app.login_mfa(&token, "totp", &code).await, 401, "invalid_code").await;
        }
        let behind = app.totp_code(&user.secret, -1);
        mfa_tokens(app.login_mfa(&token, "totp", &behind).await, 10).await;

        let token = mfa_token(&app.challenge(&user.email).await);
        let ahead = app.totp_code(&user.secret, 1);
        mfa_tokens(app.login_mfa(&token, "totp", &ahead).await, 10).await;

        // An accepted step blocks itself and every earlier step.
        let token = mfa_token(&app.challenge(&user.email).await);
        for offset in [0, 1] {
            let code = app.totp_code(&user.secret, offset);
            problem(app.login_mfa(&token, "totp", &code).await, 401, "invalid_code").await;
        }
        app.clock.advance(2 * STEP);
        let code = app.totp_code(&user.secret, 0);
        mfa_tokens(app.login_mfa(&token, "totp", &code).await, 10).await;
    }
}

// ---------------------------------------------------------------------------------
// Backup codes
// ---------------------------------------------------------------------------------

on_both_backends! {
    async fn backup_codes_run_out_with_a_warning(app) {
        let user = app.enrolled().await;
        let mut tokens = None;
        for (used, code) in user.backup_codes.iter().enumerate() {
            let asked = app.challenge(&user.email).await;
            let remaining = 10 - used;
            assert_eq!(asked["backup_codes_remaining"], remaining);
            assert_eq!(asked["methods"], json!(["totp", "backup_code"]));
            let token = mfa_token(&asked);
            // mfa_tokens checks the warning: present from two left on.
            tokens = Some(mfa_tokens(app.login_mfa(&token, "backup_code", code).await, remaining - 1).await);
        }
        let tokens = tokens.expect("tokens");
        assert_eq!(
            two_step_of(&app, &tokens.access_token).await,
            json!({ "totp": true, "security_question": false, "backup_codes_remaining": 0 })
        );
        let asked = app.challenge(&user.email).await;
        assert_eq!(asked["methods"], json!(["totp"]));
        assert_eq!(asked["backup_codes_remaining"], 0);
        let token = mfa_token(&asked);
        problem(
            app.login_mfa(&token, "backup_code", &user.backup_codes[0]).await,
            400,
            "invalid_request",
        )
        .await;
        // The authenticator app still works, and says no codes are left.
        let code = app.fresh_code(&user.secret);
        mfa_tokens(app.login_mfa(&token, "totp", &code).await, 0).await;

        // A new set brings the method back.
        let fresh = ok_json(app.regenerate_backup_codes(&tokens.access_token, PASSWORD).await).await;
        assert_eq!(codes_of(&fresh).len(), 10);
        let asked = app.challenge(&user.email).await;
        assert_eq!(asked["methods"], json!(["totp", "backup_code"]));
        assert_eq!(asked["backup_codes_remaining"], 10);
    }

    async fn regenerating_backup_codes_replaces_the_old_set(app) {
        let user = app.enrolled().await;
        let access = &user.tokens.access_token;
        problem(
            app.regenerate_backup_codes(access, WRONG_PASSWORD).await,
            401,
            "invalid_credentials",
        )
        .await;
        assert!(mails_titled(&app, &user.email, REGENERATED).await.is_empty());

        let fresh = ok_json(app.regenerate_backup_codes(access, PASSWORD).await).await;
        assert_eq!(sorted_keys(&fresh), ["backup_codes"]);
        let new_codes = codes_of(&fresh);
        assert_eq!(new_codes.iter().collect::<BTreeSet<_>>().len(), 10);
        assert!(new_codes.iter().all(|c| !user.backup_codes.contains(c)));
        assert_eq!(two_step_of(&app, access).await["backup_codes_remaining"], 10);
        assert_eq!(mails_titled(&app, &user.email, REGENERATED).await.len(), 1);

        let token = mfa_token(&app.challenge(&user.email).await);
        problem(app.login_mfa(&token, "backup_code", &user.backup_codes[0]).await, 401, "invalid_code")
            .await;
        mfa_tokens(app.login_mfa(&token, "backup_code", &new_codes[0]).await, 9).await;
    }
}

// ---------------------------------------------------------------------------------
// The login challenge
// ---------------------------------------------------------------------------------

on_both_backends! {
    async fn a_challenge_lives_five_minutes(app) {
        let user = app.enrolled().await;
        let token = mfa_token(&app.challenge(&user.email).await);
        app.clock.advance(299);
        let code = app.totp_code(&user.secret, 0);
        mfa_tokens(app.login_mfa(&token, "totp", &code).await, 10).await;

        let token = mfa_token(&app.challenge(&user.email).await);
        app.clock.advance(301);
        let code = app.totp_code(&user.secret, 0);
        problem(app.login_mfa(&token, "totp", &code).await, 401, "mfa_token_expired").await;
        // The code was not spent by the refused attempt.
        let token = mfa_token(&app.challenge(&user.email).await);
        mfa_tokens(app.login_mfa(&token, "totp", &code).await, 10).await;
    }

    async fn a_challenge_is_single_use(app) {
        let user = app.enrolled().await;
        let token = mfa_token(&app.challenge(&user.email).await);
        let code = app.fresh_code(&user.secret);
        mfa_tokens(app.login_mfa(&token, "totp", &code).await, 10).await;
        let code = app.fresh_code(&user.secret);
        problem(app.login_mfa(&token, "totp", &code).await, 401, "mfa_token_expired").await;
        problem(
            app.login_mfa(&token, "backup_code", &user.backup_codes[0]).await,
            401,
            "mfa_token_expired",
        )
        .await;
    }

    async fn five_wrong_codes_end_the_challenge_and_back_the_account_off(app) {
        let user = app.enrolled().await;
        let token = mfa_token(&app.challenge(&user.email).await);
        app.clock.advance(STEP);
        let wrong = app.wrong_code(&user.secret);
        for _ in 0..5 {
            problem(app.login_mfa(&token, "totp", &wrong).await, 401, "invalid_code").await;
        }
        let right = app.totp_code(&user.secret, 0);
        problem(app.login_mfa(&token, "totp", &right).await, 401, "mfa_token_expired").await;
        // The wrong codes count against the account's second-factor back-off: a new
        // challenge waits it out, even with a right code; the password step does not.
        let next = mfa_token(&app.challenge(&user.email).await);
        rate_limited(app.login_mfa(&next, "totp", &right).await).await;
        app.clock.advance(31);
        let tokens = log_in_with_totp(&app, &user.email, &user.secret, 10).await;
        let entries = history(&app, &tokens.access_token).await;
        let bad_codes = entries
            .iter()
            .filter(|(o, m)| o == "bad_code" && m == "totp")
            .count();
        assert_eq!(bad_codes, 5, "{entries:?}");
        assert_eq!(entries[0], ("success".to_owned(), "totp".to_owned()), "{entries:?}");
    }

    async fn concurrent_wrong_codes_get_no_more_guesses_than_sequential_ones(app) {
        let user = app.enrolled().await;
        let token = mfa_token(&app.challenge(&user.email).await);
        let wrong = app.wrong_code(&user.secret);
        let results = concurrent_mfa(&app, vec![token.clone(); 8], "totp", &wrong).await;
        for (status, code) in &results {
            assert!(
                [(401, "invalid_code"), (401, "mfa_token_expired"), (429, "rate_limited")]
                    .contains(&(*status, code.as_str())),
                "{results:?}"
            );
        }
        // Each guess that was judged first claimed the second-factor counter, which the
        // others found held.
        let judged = results.iter().filter(|(_, code)| code == "invalid_code").count();
        assert!((1..=5).contains(&judged), "{results:?}");
        // Five more in a row end the challenge, counting those already judged.
        for _ in judged..5 {
            problem(app.login_mfa(&token, "totp", &wrong).await, 401, "invalid_code").await;
        }
        let right = app.totp_code(&user.secret, 0);
        problem(app.login_mfa(&token, "totp", &right).await, 401, "mfa_token_expired").await;
    }

    async fn wrong_codes_on_different_challenges_add_up(app) {
        let user = app.enrolled().await;
        let open = mfa_token(&app.challenge(&user.email).await);
        let wrong = app.wrong_code(&user.secret);
        for _ in 0..3 {
            let token = mfa_token(&app.challenge(&user.email).await);
            problem(app.login_mfa(&token, "totp", &wrong).await, 401, "invalid_code").await;
        }
        let token = mfa_token(&app.challenge(&user.email).await);
        for _ in 0..2 {
            problem(app.login_mfa(&token, "backup_code", "aaaaa-bbbbb").await, 401, "invalid_code")
                .await;
        }
        // The password step is not locked by wrong codes (anyone who knows the address
        // could lock it); the second step is, on every challenge.
        app.challenge(&user.email).await;
        // An open challenge waits out the back-off too, even with a right code (of the
        // next step: the current one was spent by the confirmation).
        let code = app.totp_code(&user.secret, 1);
        rate_limited(app.login_mfa(&open, "totp", &code).await).await;
        app.clock.advance(31);
        let code = app.totp_code(&user.secret, 0);
        mfa_tokens(app.login_mfa(&open, "totp", &code).await, 10).await;
    }

    async fn a_challenge_is_bound_to_the_login_that_made_it(app) {
        let alice = app.enrolled().await;
        let bob = app.enrolled().await;
        let token = mfa_token(&app.challenge(&alice.email).await);
        // Bob's factors do not pass Alice's challenge.
        let bobs = app.fresh_code(&bob.secret);
        let alices = app.totp_code(&alice.secret, 0);
        if bobs != alices {
            problem(app.login_mfa(&token, "totp", &bobs).await, 401, "invalid_code").await;
        }
        problem(app.login_mfa(&token, "backup_code", &bob.backup_codes[0]).await, 401, "invalid_code")
            .await;
        // Unknown and altered tokens are no challenge.
        for forged in [
            "nonsense".to_owned(),
            String::new(),
            format!("{token}x"),
            token.chars().rev().collect::<String>(),
        ] {
            problem(app.login_mfa(&forged, "totp", &alices).await, 401, "mfa_token_expired").await;
        }
        // Alice's own code passes, and the session is hers.
        let tokens = mfa_tokens(app.login_mfa(&token, "totp", &alices).await, 10).await;
        let account = ok_json(app.account(&tokens.access_token).await).await;
        assert_eq!(account["email"], alice.email.as_str());
    }
}

// ---------------------------------------------------------------------------------
// Password reset with two-step verification
// ---------------------------------------------------------------------------------

on_both_backends! {
    async fn a_reset_demands_a_second_factor(app) {
        let user = app.enrolled().await;
        let token = reset_token(&app, &user.email).await;
        let reset = |mfa: Option<Value>| reset_with(&app, &token, mfa);
        let refused = problem(reset(None).await, 403, "mfa_required").await;
        assert_eq!(refused["methods"], json!(["totp", "backup_code"]), "{refused}");

        let wrong = app.wrong_code(&user.secret);
        problem(
            reset(Some(json!({ "method": "totp", "code": wrong }))).await,
            401,
            "invalid_code",
        )
        .await;
        // The confirming code is spent for resets too.
        let confirming = app.totp_code(&user.secret, 0);
        problem(
            reset(Some(json!({ "method": "totp", "code": confirming }))).await,
            401,
            "invalid_code",
        )
        .await;
        problem(
            reset(Some(json!({ "method": "security_question", "code": ANSWER }))).await,
            400,
            "invalid_request",
        )
        .await;
        // The password is unchanged so far, and the link still works.
        app.challenge(&user.email).await;
        let code = app.fresh_code(&user.secret);
        let done = ok_json(reset(Some(json!({ "method": "totp", "code": code }))).await).await;
        assert_eq!(done, json!({ "status": "password_reset" }));
        assert!(done.get("access_token").is_none());
        problem(reset(Some(json!({ "method": "totp", "code": code }))).await, 400, "invalid_token")
            .await;
        problem(app.account(&user.tokens.access_token).await, 401, "unauthorized").await;

        // The account is usable with the new password, and still asks for a factor.
        let asked = app.challenge_with(&user.email, NEW_PASSWORD, false).await;
        assert_eq!(asked["methods"], json!(["totp", "backup_code"]));
        let token = mfa_token(&asked);
        // The code the reset used is spent.
        problem(app.login_mfa(&token, "totp", &code).await, 401, "invalid_code").await;
        let code = app.fresh_code(&user.secret);
        let tokens = mfa_tokens(app.login_mfa(&token, "totp", &code).await, 10).await;
        assert_eq!(two_step_of(&app, &tokens.access_token).await["totp"], true);
    }

    async fn a_reset_accepts_a_backup_code_and_spends_it(app) {
        let user = app.enrolled().await;
        let token = reset_token(&app, &user.email).await;
        let response = app
            .reset_password(&json!({
                "token": token,
                "new_password": NEW_PASSWORD,
                "mfa": { "method": "backup_code", "code": user.backup_codes[2] },
            }))
            .await;
        assert_eq!(ok_json(response).await["status"], "password_reset");
        let asked = app.challenge_with(&user.email, NEW_PASSWORD, false).await;
        assert_eq!(asked["backup_codes_remaining"], 9);
        let token = mfa_token(&asked);
        problem(app.login_mfa(&token, "backup_code", &user.backup_codes[2]).await, 401, "invalid_code")
            .await;
        mfa_tokens(app.login_mfa(&token, "backup_code", &user.backup_codes[3]).await, 8).await;
    }

    async fn a_reset_accepts_the_security_question(app) {
        let user = app.enrolled().await;
        set_question(&app, &user.tokens.access_token).await;
        let token = reset_token(&app, &user.email).await;
        let refused = problem(
            app.reset_password(&json!({ "token": token, "new_password": NEW_PASSWORD })).await,
            403,
            "mfa_required",
        )
        .await;
        assert_eq!(refused["methods"], json!(["totp", "backup_code", "security_question"]));
        let response = app
            .reset_password(&json!({
                "token": token,
                "new_password": NEW_PASSWORD,
                "mfa": { "method": "security_question", "code": " rex the dog" },
            }))
            .await;
        assert_eq!(ok_json(response).await["status"], "password_reset");
        app.challenge_with(&user.email, NEW_PASSWORD, false).await;
    }

    async fn a_reset_without_two_step_needs_no_factor(app) {
        let Account { email, .. } = signed_in(&app).await;
        let token = reset_token(&app, &email).await;
        let response = app
            .reset_password(&json!({ "token": token, "new_password": NEW_PASSWORD }))
            .await;
        assert_eq!(ok_json(response).await["status"], "password_reset");
        let tokens = ok_json(
            app.login(&json!({ "login": email, "password": NEW_PASSWORD })).await,
        )
        .await;
        assert!(tokens["access_token"].is_string(), "{tokens}");
    }
}

// ---------------------------------------------------------------------------------
// Turning two-step verification off
// ---------------------------------------------------------------------------------

on_both_backends! {
    async fn disabling_needs_the_password_and_a_valid_code(app) {
        let user = app.enrolled().await;
        let access = &user.tokens.access_token;
        let attempt = |password: &'static str, code: String| disable(&app, access, password, code);
        let code = app.fresh_code(&user.secret);
        problem(attempt(WRONG_PASSWORD, code.clone()).await, 401, "invalid_credentials").await;
        let wrong = app.wrong_code(&user.secret);
        problem(attempt(PASSWORD, wrong).await, 401, "invalid_code").await;
        // The confirming code is spent.
        let confirming = app.totp_code(&user.secret, -1);
        problem(attempt(PASSWORD, confirming).await, 401, "invalid_code").await;
        assert_eq!(two_step_of(&app, access).await["totp"], true);
        assert!(mails_titled(&app, &user.email, TURNED_OFF).await.is_empty());

        let done = ok_json(attempt(PASSWORD, code).await).await;
        assert_eq!(done, json!({ "status": "two_step_disabled" }));
        assert_eq!(
            two_step_of(&app, access).await,
            json!({ "totp": false, "security_question": false, "backup_codes_remaining": 0 })
        );
        assert_eq!(mails_titled(&app, &user.email, TURNED_OFF).await.len(), 1);
        let tokens = ok_json(app.login(&json!({ "login": user.email, "password": PASSWORD })).await)
            .await;
        assert!(tokens["access_token"].is_string(), "{tokens}");
        assert!(tokens.get("mfa_required").is_none(), "{tokens}");

        problem(attempt(PASSWORD, app.fresh_code(&user.secret)).await, 409, "totp_not_enabled")
            .await;
        problem(app.regenerate_backup_codes(access, PASSWORD).await, 409, "totp_not_enabled")
            .await;

        // Turning it on again makes a new secret and a new set of codes.
        let setup = ok_json(app.totp_setup(access).await).await;
        let secret = setup["secret"].as_str().expect("a secret").to_owned();
        assert_ne!(secret, user.secret);
        let confirmed = ok_json(app.totp_confirm(access, &app.totp_code(&secret, 0)).await).await;
        assert!(codes_of(&confirmed).iter().all(|c| !user.backup_codes.contains(c)));
        let token = mfa_token(&app.challenge(&user.email).await);
        problem(app.login_mfa(&token, "backup_code", &user.backup_codes[0]).await, 401, "invalid_code")
            .await;
    }

    async fn disabling_accepts_an_unused_backup_code(app) {
        let user = app.enrolled().await;
        let token = mfa_token(&app.challenge(&user.email).await);
        let tokens =
            mfa_tokens(app.login_mfa(&token, "backup_code", &user.backup_codes[0]).await, 9).await;
        let access = &tokens.access_token;
        problem(disable(&app, access, PASSWORD, user.backup_codes[0].clone()).await, 401, "invalid_code")
            .await;
        let done = ok_json(disable(&app, access, PASSWORD, user.backup_codes[1].clone()).await).await;
        assert_eq!(done, json!({ "status": "two_step_disabled" }));
        assert_eq!(two_step_of(&app, &tokens.access_token).await["totp"], false);
        assert_eq!(mails_titled(&app, &user.email, TURNED_OFF).await.len(), 1);
    }

    async fn every_two_step_email_goes_to_the_stored_address(app) {
        let user = app.enrolled().await;
        let access = &user.tokens.access_token;
        ok_json(app.regenerate_backup_codes(access, PASSWORD).await).await;
        let code = app.fresh_code(&user.secret);
        ok_json(
            app.totp_disable(access, &json!({ "current_password": PASSWORD, "code": code }))
                .await,
        )
        .await;
        let subjects: Vec<String> = app
            .mail_to(&user.email)
            .await
            .into_iter()
            .map(|m| {
                assert_eq!(m.to, user.email);
                m.subject
            })
            .filter(|s| [TURNED_ON, TURNED_OFF, REGENERATED].contains(&s.as_str()))
            .collect();
        let mut sorted = subjects.clone();
        sorted.sort_unstable();
        let mut expected = vec![REGENERATED, TURNED_OFF, TURNED_ON];
        expected.sort_unstable();
        assert_eq!(sorted, expected, "{subjects:?}");
    }
}

// A challenge is bound to the password that started it: a reset or a change ends it.
on_both_backends! {
    async fn a_password_reset_ends_open_challenges(app) {
        let user = app.enrolled().await;
        let open = mfa_token(&app.challenge(&user.email).await);
        let token = reset_token(&app, &user.email).await;
        let code = app.fresh_code(&user.secret);
        let mfa = json!({ "method": "totp", "code": code });
        ok_json(reset_with(&app, &token, Some(mfa)).await).await;
        let code = app.fresh_code(&user.secret);
        problem(app.login_mfa(&open, "totp", &code).await, 401, "mfa_token_expired").await;
    }

    async fn a_password_change_ends_open_challenges(app) {
        let user = app.enrolled().await;
        let open = mfa_token(&app.challenge(&user.email).await);
        let tokens = log_in_with_totp(&app, &user.email, &user.secret, 10).await;
        let changed = app
            .change_password(
                &tokens.access_token,
                &json!({ "current_password": PASSWORD, "new_password": NEW_PASSWORD }),
            )
            .await;
        assert_eq!(changed.status(), 200);
        let code = app.fresh_code(&user.secret);
        problem(app.login_mfa(&open, "totp", &code).await, 401, "mfa_token_expired").await;
    }
}
