//! The attacks of the December 2026 review on second factors, sessions and recovery,
//! each tried as the attacker would, black-box, on both backends. Each test names the
//! promise it proves; the review's defect number is in its comment.

use std::collections::BTreeSet;

use api_tests::assert::{ok_json, problem, rate_limited};
use api_tests::{
    Backend, Enrolled, PASSWORD, TestApp, Tokens, WRONG_PASSWORD, body, codes_of, header,
    mfa_token, on_both_backends, on_both_backends_with,
};
use reqwest::Method;
use serde_json::{Value, json};

const NEW_PASSWORD: &str = "violet-harbour-4471";
const QUESTION_ID: &str = "first-pet";
const ANSWER: &str = "Rex the Dog";
const ATTACKER_ANSWER: &str = "attacker knows this";

async fn set_question(app: &TestApp, access_token: &str) {
    let response = app
        .set_security_question(
            access_token,
            &json!({ "current_password": PASSWORD, "question_id": QUESTION_ID, "answer": ANSWER }),
        )
        .await;
    assert_eq!(ok_json(response).await["status"], "security_question_set");
}

/// An enrolled account with a security question too.
async fn fully_protected(app: &TestApp) -> Enrolled {
    let user = app.enrolled().await;
    set_question(app, &user.tokens.access_token).await;
    user
}

async fn question_reset_token(app: &TestApp, email: &str) -> String {
    assert_eq!(app.forgot_security_answer(email).await.status(), 202);
    app.newest_link_token(email, "/reset-security-question")
        .await
}

async fn password_reset_token(app: &TestApp, email: &str) -> String {
    assert_eq!(app.forgot_password(email).await.status(), 202);
    app.newest_link_token(email, "/reset-password").await
}

fn question_reset(token: &str, mfa: Option<Value>) -> Value {
    let mut body = json!({
        "token": token, "password": PASSWORD, "question_id": "childhood-street",
        "answer": ATTACKER_ANSWER,
    });
    if let Some(mfa) = mfa {
        body["mfa"] = mfa;
    }
    body
}

fn password_reset(token: &str, mfa: Option<Value>) -> Value {
    let mut body = json!({ "token": token, "new_password": NEW_PASSWORD });
    if let Some(mfa) = mfa {
        body["mfa"] = mfa;
    }
    body
}

async fn login_with_question(app: &TestApp, email: &str, answer: &str) -> reqwest::Response {
    let token = mfa_token(&app.challenge(email).await);
    app.login_mfa(&token, "security_question", answer).await
}

/// The statuses and problem codes of concurrent answers.
fn codes(results: &[(u16, Value)]) -> Vec<(u16, String)> {
    results
        .iter()
        .map(|(status, body)| (*status, body["code"].as_str().unwrap_or("ok").to_owned()))
        .collect()
}

fn count(results: &[(u16, String)], status: u16, code: &str) -> usize {
    results
        .iter()
        .filter(|(s, c)| *s == status && c == code)
        .count()
}

// ---------------------------------------------------------------------------------
// 1. The security question never replaces or authorises a second factor
// ---------------------------------------------------------------------------------

on_both_backends! {
    async fn resetting_the_question_of_a_two_step_account_needs_a_factor_other_than_the_question(app) {
        let user = fully_protected(&app).await;
        let token = question_reset_token(&app, &user.email).await;
        // The link and the password alone: refused, and the factors it wants exclude the
        // question itself.
        let refused = problem(
            app.reset_security_question(&question_reset(&token, None)).await,
            403,
            "mfa_required",
        )
        .await;
        assert_eq!(refused["methods"], json!(["totp", "backup_code"]), "{refused}");
        let with_question = json!({ "method": "security_question", "code": ANSWER });
        problem(
            app.reset_security_question(&question_reset(&token, Some(with_question))).await,
            400,
            "invalid_request",
        )
        .await;
        let wrong = json!({ "method": "totp", "code": app.wrong_code(&user.secret) });
        problem(
            app.reset_security_question(&question_reset(&token, Some(wrong))).await,
            401,
            "invalid_code",
        )
        .await;
        // Nothing changed: the real answer still passes, the attacker's does not.
        problem(login_with_question(&app, &user.email, ATTACKER_ANSWER).await, 401, "invalid_code")
            .await;
        ok_json(login_with_question(&app, &user.email, ANSWER).await).await;
        // With the authenticator code, the owner can reset it.
        let code = json!({ "method": "totp", "code": app.fresh_code(&user.secret) });
        let reset = app.reset_security_question(&question_reset(&token, Some(code))).await;
        assert_eq!(ok_json(reset).await["status"], "security_question_reset");
        ok_json(login_with_question(&app, &user.email, ATTACKER_ANSWER).await).await;
    }

    async fn a_session_opened_with_the_security_question_cannot_mint_backup_codes(app) {
        let user = fully_protected(&app).await;
        let by_question = ok_json(login_with_question(&app, &user.email, ANSWER).await).await;
        let access = by_question["access_token"].as_str().expect("an access token");
        problem(
            app.regenerate_backup_codes(access, PASSWORD).await,
            403,
            "stronger_factor_required",
        )
        .await;
        // The old codes still work: nothing was replaced.
        let token = mfa_token(&app.challenge(&user.email).await);
        ok_json(app.login_mfa(&token, "backup_code", &user.backup_codes[0]).await).await;
        // A session opened with the authenticator app may.
        let token = mfa_token(&app.challenge(&user.email).await);
        let by_app = ok_json(app.login_mfa(&token, "totp", &app.fresh_code(&user.secret)).await)
            .await;
        let access = by_app["access_token"].as_str().expect("an access token");
        let fresh = ok_json(app.regenerate_backup_codes(access, PASSWORD).await).await;
        assert_eq!(codes_of(&fresh).len(), 10);
    }
}

// ---------------------------------------------------------------------------------
// 2. Parallel bursts get no more guesses at second factors than patient attackers
// ---------------------------------------------------------------------------------

/// Fires bursts of 12 concurrent requests (built by `attempt`) until one is refused
/// entirely; returns how many guesses were judged wrong in all.
async fn guesses_judged_in_bursts(app: &TestApp, path: &str, attempt: impl Fn() -> Value) -> usize {
    let mut judged = 0;
    for _ in 0..8 {
        let results = codes(
            &app.post_concurrently(path, (0..12).map(|_| attempt()).collect())
                .await,
        );
        for (status, code) in &results {
            // Refused while another guess holds the counter, or once it is locked; a
            // reset link also dies at its fifth wrong factor.
            assert!(
                [
                    (401, "invalid_code"),
                    (429, "rate_limited"),
                    (400, "invalid_token")
                ]
                .contains(&(*status, code.as_str())),
                "{results:?}"
            );
        }
        let wrong = count(&results, 401, "invalid_code");
        judged += wrong;
        if wrong == 0 {
            return judged;
        }
    }
    panic!("the bursts were never refused entirely: {judged} guesses judged");
}

on_both_backends! {
    async fn bursts_of_wrong_codes_across_many_challenges_get_five_guesses_in_all(app) {
        let user = app.enrolled().await;
        let mut tokens = Vec::new();
        for _ in 0..12 {
            tokens.push(mfa_token(&app.challenge(&user.email).await));
        }
        let wrong = app.wrong_code(&user.secret);
        let next = std::sync::atomic::AtomicUsize::new(0);
        let judged = guesses_judged_in_bursts(&app, "/v1/login/mfa", || {
            let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst) % tokens.len();
            json!({ "mfa_token": tokens[i], "method": "totp", "code": wrong })
        })
        .await;
        assert_eq!(judged, 5, "five guesses, however they are sent");
        // The back-off holds for every challenge, even a right code.
        let code = app.totp_code(&user.secret, 1);
        rate_limited(app.login_mfa(&tokens[0], "totp", &code).await).await;
    }

    async fn bursts_of_wrong_factors_on_reset_requests_get_five_guesses_in_all(app) {
        let user = app.enrolled().await;
        let token = password_reset_token(&app, &user.email).await;
        let wrong = app.wrong_code(&user.secret);
        let judged = guesses_judged_in_bursts(&app, "/v1/password/reset", || {
            password_reset(&token, Some(json!({ "method": "totp", "code": wrong })))
        })
        .await;
        assert_eq!(judged, 5);
        // The link took its five wrong factors: even the right code cannot use it now.
        let code = json!({ "method": "totp", "code": app.totp_code(&user.secret, 1) });
        problem(app.reset_password(&password_reset(&token, Some(code))).await, 400, "invalid_token")
            .await;
    }

    async fn a_reset_link_stops_working_after_five_wrong_factors(app) {
        let user = app.enrolled().await;
        let token = password_reset_token(&app, &user.email).await;
        for _ in 0..5 {
            let wrong = json!({ "method": "backup_code", "code": "aaaaa-bbbbb" });
            problem(app.reset_password(&password_reset(&token, Some(wrong))).await, 401, "invalid_code")
                .await;
        }
        app.clock.advance(31);
        let right = json!({ "method": "backup_code", "code": user.backup_codes[0] });
        problem(app.reset_password(&password_reset(&token, Some(right.clone()))).await, 400, "invalid_token")
            .await;
        // A new link works (after the back-off), with the factor that was never spent.
        app.clock.advance(60);
        let fresh = password_reset_token(&app, &user.email).await;
        let done = app.reset_password(&password_reset(&fresh, Some(right))).await;
        assert_eq!(ok_json(done).await["status"], "password_reset");
    }
}

// ---------------------------------------------------------------------------------
// 3. Wrong passwords through the address never lock the owner out of recovery
// ---------------------------------------------------------------------------------

/// Five wrong passwords through the address, as anyone who knows it can send: the
/// password login is locked afterwards.
async fn lock_the_address(app: &TestApp, email: &str) {
    for _ in 0..5 {
        problem(
            app.try_log_in(email, WRONG_PASSWORD).await,
            401,
            "invalid_credentials",
        )
        .await;
    }
    rate_limited(app.try_log_in(email, PASSWORD).await).await;
}

on_both_backends! {
    async fn wrong_passwords_through_the_address_do_not_block_the_second_step(app) {
        let user = app.enrolled().await;
        let token = mfa_token(&app.challenge(&user.email).await);
        lock_the_address(&app, &user.email).await;
        // The next step's code (accepted as drift), so no time passes: the address is
        // still locked.
        let code = app.totp_code(&user.secret, 1);
        ok_json(app.login_mfa(&token, "totp", &code).await).await;
        rate_limited(app.try_log_in(&user.email, PASSWORD).await).await;
    }

    async fn wrong_passwords_through_the_address_do_not_block_a_reset_by_link(app) {
        let user = app.enrolled().await;
        let token = password_reset_token(&app, &user.email).await;
        lock_the_address(&app, &user.email).await;
        let code = json!({ "method": "totp", "code": app.totp_code(&user.secret, 1) });
        let reset = app.reset_password(&password_reset(&token, Some(code))).await;
        assert_eq!(ok_json(reset).await["status"], "password_reset");
        // The reset cleared the address's back-off: the new password logs in at once.
        app.challenge_with(&user.email, NEW_PASSWORD, false).await;
    }

    async fn wrong_passwords_through_the_address_do_not_block_signed_in_password_checks(app) {
        let email = app.verified_account().await;
        let tokens = app.log_in(&email, false).await;
        lock_the_address(&app, &email).await;
        let changed = app
            .change_password(
                &tokens.access_token,
                &json!({ "current_password": PASSWORD, "new_password": NEW_PASSWORD }),
            )
            .await;
        assert_eq!(ok_json(changed).await["status"], "password_changed");
        let set = app
            .set_security_question(
                &tokens.access_token,
                &json!({ "current_password": NEW_PASSWORD, "question_id": QUESTION_ID, "answer": ANSWER }),
            )
            .await;
        ok_json(set).await;
    }
}

// ---------------------------------------------------------------------------------
// 4. A login racing a password change or reset does not keep its session
// ---------------------------------------------------------------------------------

/// Runs a login with `old` and `change` at the same moment; returns the login's answer
/// (its status and body).
async fn login_racing(
    app: &TestApp,
    email: &str,
    old: &str,
    change: impl std::future::Future<Output = u16>,
) -> (u16, Value) {
    let barrier = tokio::sync::Barrier::new(2);
    let login = async {
        barrier.wait().await;
        let response = app.try_log_in(email, old).await;
        let status = response.status().as_u16();
        (status, body(response).await)
    };
    let change = async {
        barrier.wait().await;
        change.await
    };
    let (login, changed) = tokio::join!(login, change);
    assert_eq!(changed, 200, "the change itself succeeds");
    login
}

on_both_backends! {
    async fn a_login_racing_a_password_change_does_not_survive_it(app) {
        let email = app.verified_account().await;
        let caller = app.log_in(&email, false).await;
        let passwords = [PASSWORD, NEW_PASSWORD];
        for round in 0..8 {
            let (old, new) = (passwords[round % 2], passwords[(round + 1) % 2]);
            let change = async {
                app.change_password(
                    &caller.access_token,
                    &json!({ "current_password": old, "new_password": new }),
                )
                .await
                .status()
                .as_u16()
            };
            let (status, answer) = login_racing(&app, &email, old, change).await;
            if status == 200 {
                // The login won the race: the change ended its session all the same.
                let access = answer["access_token"].as_str().expect("an access token");
                app.assert_access_refused(access, "a login racing a change").await;
                let refresh = answer["refresh_token"].as_str().expect("a refresh token");
                app.assert_refresh_refused(refresh).await;
            } else {
                assert_eq!((status, answer["code"].clone()), (401, json!("invalid_credentials")));
            }
            app.assert_access_accepted(&caller.access_token).await;
        }
    }

    async fn a_login_racing_a_password_reset_does_not_survive_it(app) {
        let email = app.verified_account().await;
        let passwords = [PASSWORD, NEW_PASSWORD];
        for round in 0..6 {
            let (old, new) = (passwords[round % 2], passwords[(round + 1) % 2]);
            app.clock.advance(61);
            let token = password_reset_token(&app, &email).await;
            let reset = async {
                app.reset_password(&json!({ "token": token, "new_password": new }))
                    .await
                    .status()
                    .as_u16()
            };
            let (status, answer) = login_racing(&app, &email, old, reset).await;
            if status == 200 {
                let access = answer["access_token"].as_str().expect("an access token");
                app.assert_access_refused(access, "a login racing a reset").await;
            } else {
                assert_eq!(status, 401, "{answer}");
            }
        }
    }
}

// ---------------------------------------------------------------------------------
// 5. Sessions are capped, end in one write, and list in pages
// ---------------------------------------------------------------------------------

on_both_backends_with! { &[("MAX_SESSIONS_PER_ACCOUNT", "3")];
    async fn a_login_beyond_the_cap_ends_the_least_recently_used_session(app) {
        let email = app.verified_account().await;
        let first = app.log_in(&email, false).await;
        app.clock.advance(1);
        let second = app.log_in(&email, false).await;
        app.clock.advance(1);
        let third = app.log_in(&email, false).await;
        app.clock.advance(1);
        // The first session is used again: the second is now the least recently used.
        let first = api_tests::assert::token_pair(app.refresh(&first.refresh_token).await).await;
        app.clock.advance(1);
        let fourth = app.log_in(&email, false).await;
        app.assert_access_refused(&second.access_token, "the least recently used session").await;
        app.assert_refresh_refused(&second.refresh_token).await;
        for alive in [&first, &third, &fourth] {
            app.assert_access_accepted(&alive.access_token).await;
        }
        let listed = ok_json(app.sessions(&fourth.access_token).await).await;
        assert_eq!(listed.as_array().map(Vec::len), Some(3), "{listed}");
    }
}

on_both_backends! {
    async fn signing_out_every_other_device_is_one_write_whatever_their_number(app) {
        let email = app.verified_account().await;
        let caller = app.log_in(&email, false).await;
        let mut others: Vec<Tokens> = Vec::new();
        for _ in 0..40 {
            others.push(app.log_in(&email, false).await);
        }
        app.reset_calls();
        assert_eq!(app.revoke_other_sessions(&caller.access_token).await.status(), 204);
        if app.backend == Backend::DynamoDb {
            assert_eq!(
                app.dynamodb_calls(),
                api_tests::expected_calls(&[("BatchGetItem", 1), ("UpdateItem", 1)])
            );
        }
        for other in &others {
            app.assert_access_refused(&other.access_token, "another device").await;
        }
        app.assert_refresh_refused(&others[0].refresh_token).await;
        app.assert_access_accepted(&caller.access_token).await;
        let listed = ok_json(app.sessions(&caller.access_token).await).await;
        assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
        // The caller's session keeps working, through its refreshes too.
        let next = api_tests::assert::token_pair(app.refresh(&caller.refresh_token).await).await;
        app.assert_access_accepted(&next.access_token).await;
    }

    async fn the_sessions_list_pages_newest_first(app) {
        let email = app.verified_account().await;
        let mut ids = Vec::new();
        let mut last = None;
        for _ in 0..5 {
            let tokens = app.log_in(&email, false).await;
            ids.push(tokens.session_id.clone());
            last = Some(tokens);
            app.clock.advance(1);
        }
        let access = last.expect("a session").access_token;
        let mut seen = Vec::new();
        let mut path = "/v1/account/sessions?limit=2".to_owned();
        loop {
            let response = app.send_authed(Method::GET, &path, &access, None).await;
            let link = header(&response, "link");
            let page = ok_json(response).await;
            let page = page.as_array().expect("a list").clone();
            assert!(page.len() <= 2);
            seen.extend(page.iter().map(|s| s["id"].as_str().expect("an id").to_owned()));
            match link {
                Some(link) => {
                    let start = link.find('<').expect("a link") + 1;
                    let end = link.find('>').expect("a link");
                    path = link[start..end].to_owned();
                }
                None => break,
            }
        }
        ids.reverse();
        assert_eq!(seen, ids, "every session once, newest first");
        problem(
            app.send_authed(Method::GET, "/v1/account/sessions?cursor=bm90LW91cnM", &access, None).await,
            400,
            "invalid_request",
        )
        .await;
    }
}

// ---------------------------------------------------------------------------------
// 6. Enrolling an authenticator needs the password, not just an access token
// ---------------------------------------------------------------------------------

on_both_backends! {
    async fn a_stolen_access_token_alone_cannot_enrol_an_authenticator(app) {
        let email = app.verified_account().await;
        let stolen = app.log_in(&email, false).await.access_token;
        problem(app.totp_setup_with(&stolen, &json!({})).await, 400, "invalid_request").await;
        for _ in 0..5 {
            problem(
                app.totp_setup_with(&stolen, &json!({ "current_password": WRONG_PASSWORD })).await,
                401,
                "invalid_credentials",
            )
            .await;
        }
        rate_limited(app.totp_setup(&stolen).await).await;
        app.clock.advance(31);
        let setup = ok_json(app.totp_setup(&stolen).await).await;
        assert!(setup["secret"].is_string());
    }
}

// ---------------------------------------------------------------------------------
// 7. Only refresh tokens that were really issued count as spent
// ---------------------------------------------------------------------------------

/// A token with the same public parts as `issued` but generation `generation` and a
/// verifier of its own: what anyone who has seen an access token could write.
fn forged(issued: &str, generation: &str) -> String {
    let (selector, _) = issued.split_once('.').expect("a refresh token");
    let mut parts: Vec<&str> = selector.split('_').collect();
    parts[2] = generation;
    format!("{}.{}", parts.join("_"), "A".repeat(43))
}

on_both_backends! {
    async fn a_forged_refresh_token_ends_nothing(app) {
        let email = app.verified_account().await;
        let tokens = app.log_in(&email, false).await;
        for generation in ["-1", "0", "1", "9223372036854775807", "x"] {
            app.assert_refresh_refused(&forged(&tokens.refresh_token, generation)).await;
        }
        app.assert_access_accepted(&tokens.access_token).await;
        let next = api_tests::assert::token_pair(app.refresh(&tokens.refresh_token).await).await;
        app.assert_access_accepted(&next.access_token).await;
    }

    async fn a_spent_refresh_token_presented_again_ends_its_session(app) {
        let email = app.verified_account().await;
        let first = app.log_in(&email, false).await;
        let second = api_tests::assert::token_pair(app.refresh(&first.refresh_token).await).await;
        let third = api_tests::assert::token_pair(app.refresh(&second.refresh_token).await).await;
        // The first token, really issued and spent two rotations ago: a copy exists.
        app.assert_refresh_refused(&first.refresh_token).await;
        app.assert_access_refused(&third.access_token, "the session of a reused token").await;
        app.assert_refresh_refused(&third.refresh_token).await;
    }
}

// ---------------------------------------------------------------------------------
// 8. A password change or reset kills every outstanding recovery link
// ---------------------------------------------------------------------------------

on_both_backends! {
    async fn a_password_change_kills_outstanding_reset_links(app) {
        let email = app.verified_account().await;
        let tokens = app.log_in(&email, false).await;
        set_question(&app, &tokens.access_token).await;
        let reset = password_reset_token(&app, &email).await;
        let question = question_reset_token(&app, &email).await;
        let changed = app
            .change_password(
                &tokens.access_token,
                &json!({ "current_password": PASSWORD, "new_password": NEW_PASSWORD, "sign_out_other_devices": false }),
            )
            .await;
        ok_json(changed).await;
        problem(app.reset_password(&password_reset(&reset, None)).await, 400, "invalid_token").await;
        let mut body = question_reset(&question, None);
        body["password"] = json!(NEW_PASSWORD);
        problem(app.reset_security_question(&body).await, 400, "invalid_token").await;
    }

    async fn a_password_reset_kills_the_outstanding_question_link(app) {
        let email = app.verified_account().await;
        let tokens = app.log_in(&email, false).await;
        set_question(&app, &tokens.access_token).await;
        let question = question_reset_token(&app, &email).await;
        let reset = password_reset_token(&app, &email).await;
        ok_json(app.reset_password(&password_reset(&reset, None)).await).await;
        let mut body = question_reset(&question, None);
        body["password"] = json!(NEW_PASSWORD);
        problem(app.reset_security_question(&body).await, 400, "invalid_token").await;
    }
}

// ---------------------------------------------------------------------------------
// 9. Authentication comes before the body
// ---------------------------------------------------------------------------------

on_both_backends! {
    async fn an_authenticated_route_checks_the_token_before_the_body(app) {
        let email = app.verified_account().await;
        let tokens = app.log_in(&email, false).await;
        assert_eq!(app.logout(&tokens.refresh_token).await.status(), 204);
        let malformed = [
            (Method::PUT, "/v1/account/security-question", json!({ "question_id": 7 })),
            (Method::POST, "/v1/account/password", json!({ "unknown": true })),
            (Method::POST, "/v1/2fa/totp/setup", json!([])),
            (Method::POST, "/v1/2fa/totp/confirm", json!({ "code": 123456 })),
            (Method::DELETE, "/v1/2fa/totp", json!("text")),
            (Method::POST, "/v1/2fa/backup-codes", json!({})),
        ];
        for (method, path, payload) in malformed {
            // No token at all, and a token whose session has ended.
            let anonymous = app
                .http
                .request(method.clone(), format!("{}{path}", app.address))
                .json(&payload)
                .send()
                .await
                .expect("sent");
            problem(anonymous, 401, "unauthorized").await;
            let revoked = app.send_authed(method, path, &tokens.access_token, Some(&payload)).await;
            problem(revoked, 401, "unauthorized").await;
        }
        let bad_cursor = "/v1/account/login-history?cursor=%%%";
        problem(app.send_authed(Method::GET, bad_cursor, &tokens.access_token, None).await, 401, "unauthorized")
            .await;
    }
}

// ---------------------------------------------------------------------------------
// Second factors and the history: only known method names are recorded
// ---------------------------------------------------------------------------------

on_both_backends! {
    async fn an_unknown_method_is_refused_before_anything_is_recorded(app) {
        let user = app.enrolled().await;
        let token = mfa_token(&app.challenge(&user.email).await);
        let wrong = app.wrong_code(&user.secret);
        for _ in 0..5 {
            problem(app.login_mfa(&token, "totp", &wrong).await, 401, "invalid_code").await;
        }
        // Refused for the method, even while the back-off would refuse the attempt (and
        // record it), so no text from the request reaches the owner's history.
        let junk = "<script>".repeat(500);
        let fresh = mfa_token(&app.challenge(&user.email).await);
        let response = app
            .post("/v1/login/mfa", &json!({ "mfa_token": fresh, "method": junk, "code": "123456" }))
            .await;
        problem(response, 400, "invalid_request").await;
        rate_limited(app.login_mfa(&fresh, "totp", &wrong).await).await;
        let entries = ok_json(app.login_history(&user.tokens.access_token, "").await).await;
        let methods: BTreeSet<&str> = entries
            .as_array()
            .expect("a list")
            .iter()
            .filter_map(|e| e["method"].as_str())
            .collect();
        assert_eq!(methods, BTreeSet::from(["password", "totp"]), "{entries}");
    }
}
