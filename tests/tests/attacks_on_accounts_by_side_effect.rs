//! The attacks of the December 2026 review that probe for accounts through side effects,
//! squat addresses with look-alikes, or slip odd input past the parsers: each tried as
//! the attacker would, black-box, on both backends. Timing properties are measured as the
//! enumeration floor's are: interleaved samples, medians, a round re-measured when other
//! processes disturb it.

use std::time::{Duration, Instant};

use api_tests::assert::{complete_problem, ok_json, problem, rate_limited};
use api_tests::{
    Backend, PASSWORD, TestApp, WRONG_PASSWORD, body, median, on_both_backends,
    on_both_backends_with, unique_email, unique_username,
};
use reqwest::Method;
use serde_json::{Value, json};

/// Timing tests measure one at a time (the two cores are shared with the other tests).
static CPU: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

const SIGNUP_PASSWORD: &str = "marmalade-sextant-41";

fn signup(email: &str, password: &str, username: Option<&str>) -> Value {
    let mut body = json!({ "email": email, "password": password, "account_type": "freelancer" });
    if let Some(username) = username {
        body["username"] = json!(username);
    }
    body
}

/// Status and body of an answer.
async fn answer(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    (status, body(response).await)
}

/// Runs `measure` on two cases, interleaved, until the medians are within 20% in a round
/// (five rounds at most; a real difference fails every round).
async fn assert_same_time<F, Fut>(what: &str, samples: usize, mut measure: F)
where
    F: FnMut(bool) -> Fut,
    Fut: std::future::Future<Output = Duration>,
{
    let _alone = CPU.write().await;
    let mut rounds = Vec::new();
    for _ in 0..5 {
        let (mut first, mut second) = (Vec::new(), Vec::new());
        for i in 0..samples {
            for case in [i % 2 == 0, i % 2 == 1] {
                let took = measure(case).await;
                if case {
                    first.push(took)
                } else {
                    second.push(took)
                }
            }
        }
        let (a, b) = (median(first), median(second));
        let apart = a.abs_diff(b).as_secs_f64() / a.max(b).as_secs_f64();
        rounds.push(format!("{a:?} vs {b:?} ({:.0}% apart)", apart * 100.0));
        if apart <= 0.2 {
            return;
        }
    }
    panic!("{what} take different times: {rounds:?}");
}

// ---------------------------------------------------------------------------------
// 1. A signup followed by a login tells nothing about the address
// ---------------------------------------------------------------------------------

on_both_backends_with! { &[("LOGIN_FAILURES_PER_IP_PER_HOUR", "1000"), ("SIGNUPS_PER_IP_PER_HOUR", "1000")];
    async fn a_login_after_a_signup_answers_alike_for_a_taken_and_a_free_address(app) {
        let taken = app.verified_account().await;
        let free = unique_email();
        for email in [&taken, &free] {
            let (status, _) = answer(app.signup(&signup(email, SIGNUP_PASSWORD, None)).await).await;
            assert_eq!(status, 202);
        }
        let (taken_answer, free_answer) = (
            answer(app.try_log_in(&taken, SIGNUP_PASSWORD).await).await,
            answer(app.try_log_in(&free, SIGNUP_PASSWORD).await).await,
        );
        assert_eq!(taken_answer, free_answer);
        assert_eq!(taken_answer.0, 403);
        assert_eq!(taken_answer.1["code"], "email_not_verified");
        // The real owner still logs in with the real password.
        assert_eq!(app.try_log_in(&taken, PASSWORD).await.status(), 200);
        // Wrong passwords are wrong in both cases, and count alike.
        let wrong = (
            answer(app.try_log_in(&taken, WRONG_PASSWORD).await).await,
            answer(app.try_log_in(&free, WRONG_PASSWORD).await).await,
        );
        assert_eq!(wrong.0, wrong.1);
        assert_eq!(wrong.0.0, 401);
        // And the time is the same: one argon2 computation in both.
        let (taken, free) = (taken.clone(), free.clone());
        assert_same_time("logins after a signup on a taken and a free address", 12, |on_taken| {
            let email = if on_taken { taken.clone() } else { free.clone() };
            let app = &app;
            async move {
                let started = Instant::now();
                let response = app.try_log_in(&email, SIGNUP_PASSWORD).await;
                let took = started.elapsed();
                assert_eq!(response.status(), 403);
                took
            }
        })
        .await;
    }

    async fn a_signup_password_held_on_a_taken_address_never_logs_anyone_in(app) {
        let user = app.enrolled().await;
        assert_eq!(app.signup(&signup(&user.email, SIGNUP_PASSWORD, None)).await.status(), 202);
        for _ in 0..3 {
            problem(app.try_log_in(&user.email, SIGNUP_PASSWORD).await, 403, "email_not_verified")
                .await;
        }
        // The owner's login is untouched: still a two-step challenge, and the owner was
        // told of the signup.
        assert_eq!(app.challenge(&user.email).await["mfa_required"], true);
        assert!(!app.mails_with_subject(&user.email, "You already have an account").await.is_empty());
        // It ends when a new account's verification would have: after that, it is just
        // a wrong password.
        app.clock.advance(7 * 24 * 3_600 + 1);
        problem(app.try_log_in(&user.email, SIGNUP_PASSWORD).await, 401, "invalid_credentials").await;
    }
}

// ---------------------------------------------------------------------------------
// 2. A username given at signup is held whether or not the address was taken
// ---------------------------------------------------------------------------------

on_both_backends! {
    async fn the_fresh_username_probe_learns_nothing(app) {
        let taken = app.verified_account().await;
        let free = unique_email();
        let mut answers = Vec::new();
        for email in [&taken, &free] {
            let username = unique_username();
            assert_eq!(app.signup(&signup(email, SIGNUP_PASSWORD, Some(&username))).await.status(), 202);
            // The probe: a second signup with that username.
            let again = app.signup(&signup(&unique_email(), SIGNUP_PASSWORD, Some(&username))).await;
            let (status, body) = answer(again).await;
            answers.push((status, body["code"].clone()));
            // A login by that username answers as the new account's would.
            let by_name = answer(app.try_log_in(&username, SIGNUP_PASSWORD).await).await;
            answers.push((by_name.0, by_name.1["code"].clone()));
        }
        assert_eq!(answers[0], answers[2], "{answers:?}");
        assert_eq!(answers[1], answers[3], "{answers:?}");
        assert_eq!(answers[0], (409, json!("username_taken")));
        assert_eq!(answers[1], (403, json!("email_not_verified")));
    }

    async fn a_username_held_for_a_taken_address_is_no_way_into_its_account(app) {
        let taken = app.verified_account().await;
        let username = unique_username();
        assert_eq!(app.signup(&signup(&taken, SIGNUP_PASSWORD, Some(&username))).await.status(), 202);
        // The account's own password does not work through the held username.
        problem(app.try_log_in(&username, PASSWORD).await, 401, "invalid_credentials").await;
    }
}

// ---------------------------------------------------------------------------------
// 3. correct-email is no password oracle
// ---------------------------------------------------------------------------------

on_both_backends_with! { &[("SIGNUPS_PER_IP_PER_HOUR", "1000")];
    async fn correct_email_guesses_count_like_logins_and_a_locked_account_moves_nowhere(app) {
        let victim = unique_email();
        assert_eq!(app.signup(&signup(&victim, SIGNUP_PASSWORD, None)).await.status(), 202);
        let attacker = unique_email();
        let guess = |password: &str| json!({ "email": victim, "password": password, "new_email": attacker });
        for _ in 0..5 {
            let (status, _) = answer(app.correct_email(&guess(WRONG_PASSWORD)).await).await;
            assert_eq!(status, 202);
        }
        // Locked: even the right password moves nothing, and the answer is the same.
        let (status, _) = answer(app.correct_email(&guess(SIGNUP_PASSWORD)).await).await;
        assert_eq!(status, 202);
        assert!(app.mail_to(&attacker).await.is_empty(), "the account moved while locked");
        // The lock is the address's login lock too: the same counter as a login.
        rate_limited(app.try_log_in(&victim, SIGNUP_PASSWORD).await).await;
        app.clock.advance(31);
        assert_eq!(app.correct_email(&guess(SIGNUP_PASSWORD)).await.status(), 202);
        assert_eq!(app.mail_to(&attacker).await.len(), 1, "the owner can move it");
    }

    async fn correcting_onto_a_taken_address_tells_nothing_either(app) {
        let taken = app.verified_account().await;
        let free = unique_email();
        let mut seen = Vec::new();
        for target in [&taken, &free] {
            let typo = unique_email();
            assert_eq!(app.signup(&signup(&typo, SIGNUP_PASSWORD, None)).await.status(), 202);
            let corrected = app
                .correct_email(&json!({ "email": typo, "password": SIGNUP_PASSWORD, "new_email": target }))
                .await;
            assert_eq!(corrected.status(), 202);
            let at_typo = answer(app.try_log_in(&typo, SIGNUP_PASSWORD).await).await;
            let at_target = answer(app.try_log_in(target, SIGNUP_PASSWORD).await).await;
            seen.push((at_typo.0, at_typo.1["code"].clone(), at_target.0, at_target.1["code"].clone()));
        }
        assert_eq!(seen[0], seen[1], "{seen:?}");
        assert_eq!(
            seen[0],
            (401, json!("invalid_credentials"), 403, json!("email_not_verified"))
        );
    }
}

// ---------------------------------------------------------------------------------
// 4. Refused logins do the same work for known and unknown logins
// ---------------------------------------------------------------------------------

on_both_backends_with! { &[("LOGIN_FAILURES_PER_IP_PER_HOUR", "1")];
    async fn a_login_refused_by_the_ip_cap_does_the_same_work_known_or_not(app) {
        let known = app.verified_account().await;
        problem(app.try_log_in(&unique_email(), WRONG_PASSWORD).await, 401, "invalid_credentials").await;
        let mut calls = Vec::new();
        for login in [known.clone(), unique_email()] {
            app.reset_calls();
            rate_limited(app.try_log_in(&login, PASSWORD).await).await;
            if app.backend == Backend::DynamoDb {
                calls.push(app.dynamodb_calls().values().sum::<usize>());
            }
        }
        if app.backend == Backend::DynamoDb {
            assert!(calls.windows(2).all(|w| w[0] == w[1]), "{calls:?}");
        }
    }
}

on_both_backends! {
    async fn a_login_refused_by_the_backoff_does_the_same_work_known_or_not(app) {
        let known = app.verified_account().await;
        let unknown = unique_email();
        for login in [&known, &unknown] {
            for _ in 0..5 {
                problem(app.try_log_in(login, WRONG_PASSWORD).await, 401, "invalid_credentials").await;
            }
        }
        let mut calls = Vec::new();
        for login in [&known, &unknown] {
            app.reset_calls();
            rate_limited(app.try_log_in(login, PASSWORD).await).await;
            if app.backend == Backend::DynamoDb {
                let snapshot = app.dynamodb_calls();
                // The same reads (an unknown login reads a stand-in account and its
                // sessions), and one write after the refusal either way: the history
                // entry of a known account, the note on an unknown login's counter.
                let writes = snapshot.get("PutItem").copied().unwrap_or(0)
                    + snapshot.get("UpdateItem").copied().unwrap_or(0);
                let reads = (snapshot.get("GetItem").copied(), snapshot.get("Query").copied());
                calls.push((writes, reads));
            }
        }
        if app.backend == Backend::DynamoDb {
            assert_eq!(calls[0], calls[1], "{calls:?}");
        }
        let (known, unknown) = (known.clone(), unknown.clone());
        assert_same_time("refusals of a known and an unknown login", 10, |on_known| {
            let login = if on_known { known.clone() } else { unknown.clone() };
            let app = &app;
            async move {
                let started = Instant::now();
                let response = app.try_log_in(&login, PASSWORD).await;
                let took = started.elapsed();
                assert_eq!(response.status(), 429);
                took
            }
        })
        .await;
    }
}

// ---------------------------------------------------------------------------------
// 5. Verify by code: no account revealed, limited per IP and per day
// ---------------------------------------------------------------------------------

/// An address in each state a verification code can meet.
async fn addresses_in_every_state(app: &TestApp) -> Vec<String> {
    let verified = app.verified_account().await;
    let pending = unique_email();
    assert_eq!(app.sign_up(&pending).await.status(), 202);
    let expired = unique_email();
    assert_eq!(app.sign_up(&expired).await.status(), 202);
    vec![unique_email(), verified, pending, expired]
}

on_both_backends_with! { &[("VERIFY_ATTEMPTS_PER_IP_PER_HOUR", "1000")];
    async fn a_code_answers_alike_for_unknown_verified_pending_and_expired_addresses(app) {
        let addresses = addresses_in_every_state(&app).await;
        let expired = addresses[3].clone();
        let code = app.last_mail_to(&expired).await.and_then(|m| m.code()).expect("a code");
        // The verification of `expired` (and of `pending`) ends; TTL deletes lazily.
        app.clock.advance(24 * 3_600 + 1);
        let pending = addresses[2].clone();
        app.clock.advance(61);
        assert_eq!(app.resend_verification(&json!({ "email": pending })).await.status(), 202);
        let mut seen = Vec::new();
        for email in &addresses {
            app.reset_calls();
            let attempt = app.verify_email(&json!({ "email": email, "code": code })).await;
            let calls = (app.backend == Backend::DynamoDb).then(|| app.dynamodb_calls());
            seen.push((answer(attempt).await, calls));
        }
        for (state, got) in ["unknown", "verified", "pending", "expired"].iter().zip(&seen) {
            assert_eq!(got.0.0, 400, "{state}: {got:?}");
            assert_eq!(got.0.1["code"], "invalid_code", "{state}: {got:?}");
            assert_eq!(got, &seen[0], "{state} answers otherwise than an unknown address");
        }
        let (unknown, pending) = (addresses[0].clone(), addresses[2].clone());
        assert_same_time("codes for an unknown and a pending address", 10, |on_unknown| {
            let email = if on_unknown { unknown.clone() } else { pending.clone() };
            let app = &app;
            async move {
                let started = Instant::now();
                let response = app.verify_email(&json!({ "email": email, "code": "000000" })).await;
                let took = started.elapsed();
                assert_eq!(response.status(), 400);
                took
            }
        })
        .await;
    }
}

on_both_backends_with! { &[("VERIFY_ATTEMPTS_PER_IP_PER_HOUR", "4")];
    async fn codes_are_limited_per_source_ip(app) {
        for _ in 0..4 {
            let guess = app.verify_email(&json!({ "email": unique_email(), "code": "123456" })).await;
            problem(guess, 400, "invalid_code").await;
        }
        let refused = app.verify_email(&json!({ "email": unique_email(), "code": "123456" })).await;
        rate_limited(refused).await;
    }
}

on_both_backends_with! { &[("VERIFY_ATTEMPTS_PER_IP_PER_HOUR", "1000")];
    async fn wrong_codes_are_limited_per_account_across_resends(app) {
        let email = unique_email();
        assert_eq!(app.sign_up(&email).await.status(), 202);
        // Five wrong codes, a resend, five more: ten in the day.
        for round in 0..2 {
            for _ in 0..5 {
                let guess = app.verify_email(&json!({ "email": email, "code": "000001" })).await;
                problem(guess, 400, "invalid_code").await;
            }
            if round == 0 {
                app.clock.advance(61);
                assert_eq!(app.resend_verification(&json!({ "email": email })).await.status(), 202);
            }
        }
        app.clock.advance(61);
        assert_eq!(app.resend_verification(&json!({ "email": email })).await.status(), 202);
        let code = app.last_mail_to(&email).await.and_then(|m| m.code()).expect("a code");
        // The day's attempts are spent: even the fresh, right code is refused...
        problem(app.verify_email(&json!({ "email": email, "code": code })).await, 400, "invalid_code")
            .await;
        // ...while the emailed link still works.
        let token = app.verification_token(&email).await;
        assert_eq!(app.verify_email(&json!({ "token": token })).await.status(), 200);
    }
}

// ---------------------------------------------------------------------------------
// 6, 7. Identities that cannot collide; names that cannot rewrite a page
// ---------------------------------------------------------------------------------

on_both_backends! {
    async fn a_lookalike_address_cannot_squat_a_real_one(app) {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let real = format!("alice-{id}@example.com");
        for lookalike in [
            format!("\u{ff41}lice-{id}@example.com"),
            format!("alice-{id}@\u{ff45}xample.com"),
            format!("\u{1d41a}lice-{id}@example.com"),
        ] {
            let refused = app.signup(&signup(&lookalike, SIGNUP_PASSWORD, None)).await;
            complete_problem(refused, 400, "invalid_email").await;
            let typo = unique_email();
            assert_eq!(app.signup(&signup(&typo, SIGNUP_PASSWORD, None)).await.status(), 202);
            let moved = app
                .correct_email(&json!({ "email": typo, "password": SIGNUP_PASSWORD, "new_email": lookalike }))
                .await;
            complete_problem(moved, 400, "invalid_email").await;
        }
        // A login still folds what is typed: the full-width form finds the real account.
        app.sign_up_verified(&real).await;
        let typed = format!("\u{ff41}lice-{id}@example.com");
        ok_json(app.try_log_in(&typed, PASSWORD).await).await;
    }

    async fn a_full_name_with_control_format_or_bidi_characters_is_refused(app) {
        for name in ["Eve\u{202e}gnp.exe", "Bob\u{2066}x\u{2069}", "Zero\u{200b}Width", "Tab\tName", &"n".repeat(101)] {
            let mut body = signup(&unique_email(), SIGNUP_PASSWORD, None);
            body["full_name"] = json!(name);
            let refused = complete_problem(app.signup(&body).await, 400, "invalid_request").await;
            assert_eq!(refused["errors"], json!([{ "field": "full_name", "code": "invalid" }]), "{name:?}");
        }
        let email = unique_email();
        let mut body = signup(&email, SIGNUP_PASSWORD, None);
        body["full_name"] = json!("  Zoe\u{308} Dupont  ");
        app.sign_up_verified_with(&body).await;
        let tokens: api_tests::Tokens = ok_json(app.try_log_in(&email, SIGNUP_PASSWORD).await)
            .await
            .pipe(|v| serde_json::from_value(v).expect("tokens"));
        let account = ok_json(app.account(&tokens.access_token).await).await;
        assert_eq!(account["full_name"], "Zoë Dupont");
    }
}

/// `value.pipe(f)` is `f(value)`.
trait Pipe: Sized {
    fn pipe<T>(self, f: impl FnOnce(Self) -> T) -> T {
        f(self)
    }
}
impl<T> Pipe for T {}

// ---------------------------------------------------------------------------------
// 9, 10. Ids and cursors that cannot be ours, and odd escapes, are refused alike
// ---------------------------------------------------------------------------------

on_both_backends! {
    async fn an_overlong_or_foreign_id_or_cursor_is_refused_never_a_server_error(app) {
        let email = app.verified_account().await;
        let tokens = app.log_in(&email, false).await;
        let long = "a".repeat(2_000);
        for id in [long.as_str(), "not-a-session", "01939d2e8a4b7cc19d5e3f6a7b8c9d0e"] {
            let path = format!("/v1/account/sessions/{id}");
            problem(app.send_authed(Method::DELETE, &path, &tokens.access_token, None).await, 404, "not_found")
                .await;
        }
        let long_cursor = format!("SElTVE9SWSM{}", "A".repeat(3_000));
        for list in ["/v1/account/login-history", "/v1/account/sessions"] {
            for cursor in [long_cursor.as_str(), "%+1", "%00", "SEVBTFRI"] {
                let path = format!("{list}?cursor={cursor}");
                problem(app.send_authed(Method::GET, &path, &tokens.access_token, None).await, 400, "invalid_request")
                    .await;
            }
            let path = format!("{list}?limit=%+1");
            problem(app.send_authed(Method::GET, &path, &tokens.access_token, None).await, 400, "invalid_request")
                .await;
        }
    }
}

// ---------------------------------------------------------------------------------
// 11. Every rate-limit window expires, even one re-created by a late take-back
// ---------------------------------------------------------------------------------

on_both_backends! {
    async fn a_window_taken_back_after_its_hour_still_expires(app) {
        use accounts::clock::Clock;
        use accounts::protections::rate_limit::RateLimit;
        let store = app.app.store.clone();
        let limit = RateLimit::per_hour("login-failures", 100);
        let now = app.clock.now();
        let window = limit.window_key("203.0.113.9", now);
        store.write(limit.count_write(window.clone(), now)).await.expect("counted");
        // The attempt outlives its window (its success is written in the next hour).
        app.clock.advance(3_600);
        store.write(limit.uncount_write(window.clone())).await.expect("taken back");
        assert_eq!(store.get(&window).await.expect("read"), None, "a window outlived its hour");
    }
}
