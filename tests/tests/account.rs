//! The signed-in account's own views: `GET /v1/account`, its sessions (listing and
//! ending them) and its login history.

use accounts::clock::Clock;
use api_tests::assert::{ok_json, ok_tokens, problem};
use api_tests::{
    Backend, PASSWORD, TestApp, Tokens, WRONG_PASSWORD, expected_calls, header, on_both_backends,
    sorted_keys, unique_email, unique_username,
};
use reqwest::header::{LINK, USER_AGENT};
use serde_json::{Value, json};

const DAY: i64 = 24 * 3_600;
/// How long login history is kept.
const HISTORY_DAYS: i64 = 90;

// ---------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------

/// `POST /v1/login` from a named user agent.
async fn login_from(
    app: &TestApp,
    login: &str,
    password: &str,
    remember_me: bool,
    agent: &str,
) -> reqwest::Response {
    app.http
        .post(format!("{}/v1/login", app.address))
        .header(USER_AGENT, agent)
        .json(&json!({ "login": login, "password": password, "remember_me": remember_me }))
        .send()
        .await
        .expect("the request is sent")
}

/// Logs in with the right password from a named user agent.
async fn log_in_as(app: &TestApp, login: &str, remember_me: bool, agent: &str) -> Tokens {
    let response = login_from(app, login, PASSWORD, remember_me, agent).await;
    assert_eq!(response.status(), 200, "login of {login} failed");
    response.json().await.expect("a token pair")
}

/// Every key in a JSON document, at any depth.
fn all_keys(value: &Value, into: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, value) in map {
                into.push(key.clone());
                all_keys(value, into);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| all_keys(v, into)),
        _ => {}
    }
}

fn is_rfc3339(text: &Value) -> bool {
    text.as_str().is_some_and(|t| {
        time_parse(t).is_some() && t.ends_with('Z') && t.contains('T') && t.len() >= 20
    })
}

/// The Unix time of an RFC 3339 `YYYY-MM-DDTHH:MM:SSZ` text.
fn time_parse(text: &str) -> Option<i64> {
    let (date, clock) = text.strip_suffix('Z')?.split_once('T')?;
    let mut d = date.split('-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let mut c = clock.split(':').map(|p| p.parse::<i64>().ok());
    let (h, min, s) = (c.next()??, c.next()??, c.next()??);
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + h * 3_600 + min * 60 + s)
}

fn seconds_of(value: &Value) -> i64 {
    value
        .as_str()
        .and_then(time_parse)
        .unwrap_or_else(|| panic!("an RFC 3339 time, not {value}"))
}

async fn sessions(app: &TestApp, access_token: &str) -> Vec<Value> {
    ok_json(app.sessions(access_token).await)
        .await
        .as_array()
        .expect("a list of sessions")
        .clone()
}

async fn history(app: &TestApp, access_token: &str, query: &str) -> Vec<Value> {
    ok_json(app.login_history(access_token, query).await)
        .await
        .as_array()
        .expect("a list of entries")
        .clone()
}

fn outcomes(entries: &[Value]) -> Vec<&str> {
    entries
        .iter()
        .map(|e| e["outcome"].as_str().expect("an outcome"))
        .collect()
}

/// The target of a `Link: <...>; rel="next"` header.
fn next_link(response: &reqwest::Response) -> Option<String> {
    let link = header(response, LINK.as_str())?;
    assert!(link.ends_with("rel=\"next\""), "{link}");
    let start = link.find('<')? + 1;
    let end = link.find('>')?;
    Some(link[start..end].to_owned())
}

// ---------------------------------------------------------------------------------
// GET /v1/account
// ---------------------------------------------------------------------------------

on_both_backends! {
    async fn the_account_view_shows_the_profile_and_never_a_secret(app) {
        let (email, username) = (unique_email(), unique_username());
        app.sign_up_verified_with(&json!({
            "email": email,
            "password": PASSWORD,
            "account_type": "agency",
            "username": username,
            "full_name": "Ada Lovelace",
        }))
        .await;
        let tokens = log_in_as(&app, &username.to_uppercase(), false, "agent").await;

        let account = ok_json(app.account(&tokens.access_token).await).await;
        assert_eq!(
            sorted_keys(&account),
            [
                "account_type", "created_at", "email", "email_delivery", "email_verified",
                "full_name", "id", "two_step", "username",
            ]
        );
        assert!(uuid::Uuid::parse_str(account["id"].as_str().expect("an id")).is_ok());
        assert_eq!(account["email"], email.as_str());
        assert_eq!(account["username"], username.as_str());
        assert_eq!(account["full_name"], "Ada Lovelace");
        assert_eq!(account["account_type"], "agency");
        assert_eq!(account["email_verified"], true);
        assert_eq!(account["email_delivery"], "deliverable");
        assert!(is_rfc3339(&account["created_at"]), "{account}");
        assert!((seconds_of(&account["created_at"]) - app.clock.now()).abs() <= 1);
        assert_eq!(
            account["two_step"],
            json!({ "totp": false, "security_question": false, "backup_codes_remaining": 0 })
        );
        let mut keys = Vec::new();
        all_keys(&account, &mut keys);
        for key in keys {
            let key = key.to_lowercase();
            assert!(
                !key.contains("hash") && !key.contains("password") && !key.contains("secret"),
                "{key} in {account}"
            );
        }
        assert!(!account.to_string().contains("argon2"), "{account}");
    }

    async fn the_account_view_without_a_username_says_null(app) {
        let email = app.verified_account().await;
        let tokens = app.log_in(&email, false).await;
        let account = ok_json(app.account(&tokens.access_token).await).await;
        assert_eq!(account["username"], Value::Null);
        assert_eq!(account["account_type"], "freelancer");
    }

    async fn account_routes_need_a_valid_access_token(app) {
        let url = |path: &str| format!("{}{path}", app.address);
        for response in [
            app.http.get(url("/v1/account")).send().await.expect("sent"),
            app.http.get(url("/v1/account/sessions")).send().await.expect("sent"),
            app.http.get(url("/v1/account/login-history")).send().await.expect("sent"),
            app.http
                .post(url("/v1/account/sessions/revoke-others"))
                .send()
                .await
                .expect("sent"),
            app.http
                .delete(url(&format!("/v1/account/sessions/{}", uuid::Uuid::new_v4())))
                .send()
                .await
                .expect("sent"),
            app.account("not-a-token").await,
            app.sessions("a.b.c").await,
        ] {
            problem(response, 401, "unauthorized").await;
        }
    }
}

// ---------------------------------------------------------------------------------
// Sessions
// ---------------------------------------------------------------------------------

on_both_backends! {
    async fn the_session_list_shows_every_session_and_marks_the_callers(app) {
        let email = app.verified_account().await;
        let laptop = log_in_as(&app, &email, false, "Laptop/1.0").await;
        app.clock.advance(10);
        let phone = log_in_as(&app, &email, true, "Phone/2.0").await;
        let phone_login_at = app.clock.now();
        app.clock.advance(50);
        // A refresh moves the phone's last_seen_at.
        let phone = ok_tokens(app.refresh(&phone.refresh_token).await).await;

        let list = sessions(&app, &laptop.access_token).await;
        assert_eq!(list.len(), 2, "{list:?}");
        for session in &list {
            assert_eq!(
                sorted_keys(session),
                ["created_at", "current", "id", "ip", "last_seen_at", "remember_me", "user_agent"]
            );
            assert_eq!(session["ip"], "127.0.0.1");
            assert!(is_rfc3339(&session["created_at"]) && is_rfc3339(&session["last_seen_at"]));
        }
        // Newest first.
        let (newest, oldest) = (&list[0], &list[1]);
        assert_eq!(newest["id"], phone.session_id.as_str());
        assert_eq!(newest["user_agent"], "Phone/2.0");
        assert_eq!(newest["remember_me"], true);
        assert_eq!(newest["current"], false);
        assert_eq!(seconds_of(&newest["created_at"]), phone_login_at);
        assert_eq!(seconds_of(&newest["last_seen_at"]), phone_login_at + 50);
        assert_eq!(oldest["id"], laptop.session_id.as_str());
        assert_eq!(oldest["user_agent"], "Laptop/1.0");
        assert_eq!(oldest["remember_me"], false);
        assert_eq!(oldest["current"], true);
        assert_eq!(oldest["created_at"], oldest["last_seen_at"]);

        // Seen from the phone, the phone is the current one.
        let list = sessions(&app, &phone.access_token).await;
        let current: Vec<&Value> = list.iter().filter(|s| s["current"] == true).collect();
        assert_eq!(current.len(), 1);
        assert_eq!(current[0]["id"], phone.session_id.as_str());
    }

    async fn another_accounts_sessions_are_not_listed(app) {
        let mine = app.verified_account().await;
        let theirs = app.verified_account().await;
        let tokens = log_in_as(&app, &mine, false, "mine").await;
        log_in_as(&app, &theirs, false, "theirs").await;
        let list = sessions(&app, &tokens.access_token).await;
        assert_eq!(list.len(), 1);
        assert_eq!(list[0]["id"], tokens.session_id.as_str());
    }

    async fn ending_another_session_stops_its_tokens_at_once(app) {
        let email = app.verified_account().await;
        let mine = log_in_as(&app, &email, false, "mine").await;
        let other = log_in_as(&app, &email, false, "other").await;
        app.assert_access_accepted(&other.access_token).await;

        let response = app.revoke_session(&mine.access_token, &other.session_id).await;
        assert_eq!(response.status(), 204);
        assert!(response.bytes().await.expect("a body").is_empty());
        app.assert_access_refused(&other.access_token, "an ended session's token").await;
        problem(app.refresh(&other.refresh_token).await, 401, "invalid_token").await;
        let list = sessions(&app, &mine.access_token).await;
        assert_eq!(list.len(), 1);
        assert_eq!(list[0]["id"], mine.session_id.as_str());
        // Ending it again: it no longer exists.
        problem(app.revoke_session(&mine.access_token, &other.session_id).await, 404, "not_found")
            .await;
    }

    async fn ending_an_unknown_session_is_not_found(app) {
        let email = app.verified_account().await;
        let mine = app.log_in(&email, false).await;
        let unknown = uuid::Uuid::new_v4().to_string();
        problem(app.revoke_session(&mine.access_token, &unknown).await, 404, "not_found").await;
        app.assert_access_accepted(&mine.access_token).await;
    }

    async fn another_accounts_session_cannot_be_ended(app) {
        let mine = app.verified_account().await;
        let theirs = app.verified_account().await;
        let mine = app.log_in(&mine, false).await;
        let theirs = app.log_in(&theirs, false).await;
        problem(app.revoke_session(&mine.access_token, &theirs.session_id).await, 404, "not_found")
            .await;
        app.assert_access_accepted(&theirs.access_token).await;
    }

    async fn an_ended_session_cannot_end_others(app) {
        let email = app.verified_account().await;
        let first = app.log_in(&email, false).await;
        let second = app.log_in(&email, false).await;
        assert_eq!(app.revoke_session(&first.access_token, &second.session_id).await.status(), 204);
        // The ended session's still-unexpired access token cannot strike back.
        problem(app.revoke_session(&second.access_token, &first.session_id).await, 401, "unauthorized")
            .await;
        problem(app.revoke_other_sessions(&second.access_token).await, 401, "unauthorized").await;
        problem(app.sessions(&second.access_token).await, 401, "unauthorized").await;
        app.assert_access_accepted(&first.access_token).await;
    }

    async fn ending_the_callers_own_session_signs_it_out(app) {
        let email = app.verified_account().await;
        let mine = app.log_in(&email, false).await;
        assert_eq!(app.revoke_session(&mine.access_token, &mine.session_id).await.status(), 204);
        app.assert_access_refused(&mine.access_token, "the token of a session that ended itself").await;
        problem(app.refresh(&mine.refresh_token).await, 401, "invalid_token").await;
    }

    async fn revoking_other_sessions_leaves_only_the_caller(app) {
        let email = app.verified_account().await;
        let mine = log_in_as(&app, &email, false, "mine").await;
        let others = [
            log_in_as(&app, &email, false, "second").await,
            log_in_as(&app, &email, true, "third").await,
        ];
        let someone_else = app.verified_account().await;
        let someone_else = app.log_in(&someone_else, false).await;
        assert_eq!(sessions(&app, &mine.access_token).await.len(), 3);

        let response = app.revoke_other_sessions(&mine.access_token).await;
        assert_eq!(response.status(), 204);

        let list = sessions(&app, &mine.access_token).await;
        assert_eq!(list.len(), 1, "{list:?}");
        assert_eq!(list[0]["id"], mine.session_id.as_str());
        assert_eq!(list[0]["current"], true);
        for other in &others {
            app.assert_access_refused(&other.access_token, "the token of a revoked session").await;
            problem(app.refresh(&other.refresh_token).await, 401, "invalid_token").await;
        }
        app.assert_access_accepted(&mine.access_token).await;
        let mine = ok_tokens(app.refresh(&mine.refresh_token).await).await;
        // Another account's sessions are untouched.
        app.assert_access_accepted(&someone_else.access_token).await;
        // With no other session left, it is still 204.
        assert_eq!(app.revoke_other_sessions(&mine.access_token).await.status(), 204);
    }

    async fn ended_and_expired_sessions_are_not_listed(app) {
        let email = app.verified_account().await;
        let short = app.log_in(&email, false).await;
        let logged_out = app.log_in(&email, false).await;
        assert_eq!(app.logout(&logged_out.refresh_token).await.status(), 204);
        let remembered = app.log_in(&email, true).await;
        assert_eq!(sessions(&app, &remembered.access_token).await.len(), 2);
        app.clock.advance(12 * 3_600 + 1);
        let remembered = ok_tokens(app.refresh(&remembered.refresh_token).await).await;
        let list = sessions(&app, &remembered.access_token).await;
        assert_eq!(list.len(), 1, "{list:?}");
        assert_eq!(list[0]["id"], remembered.session_id.as_str());
        assert_ne!(list[0]["id"], short.session_id.as_str());
    }
}

// ---------------------------------------------------------------------------------
// Login history
// ---------------------------------------------------------------------------------

/// Five wrong passwords (one second apart), one attempt refused by the back-off, then a
/// success 31 s later; returns the tokens of the success.
async fn a_history_of_seven_attempts(app: &TestApp, email: &str) -> Tokens {
    for i in 0..5 {
        let response = login_from(app, email, WRONG_PASSWORD, false, &format!("Bad/{i}")).await;
        assert_eq!(response.status(), 401);
        app.clock.advance(1);
    }
    let response = login_from(app, email, PASSWORD, false, "Limited/1").await;
    assert_eq!(response.status(), 429);
    app.clock.advance(31);
    log_in_as(app, email, false, "Good/1").await
}

on_both_backends! {
    async fn the_login_history_lists_attempts_newest_first(app) {
        let email = app.verified_account().await;
        let started = app.clock.now();
        let tokens = a_history_of_seven_attempts(&app, &email).await;
        let entries = history(&app, &tokens.access_token, "").await;
        assert_eq!(
            outcomes(&entries),
            ["success", "rate_limited", "bad_password", "bad_password", "bad_password",
             "bad_password", "bad_password"]
        );
        let agents: Vec<&str> = entries.iter().map(|e| e["user_agent"].as_str().expect("ua")).collect();
        assert_eq!(agents, ["Good/1", "Limited/1", "Bad/4", "Bad/3", "Bad/2", "Bad/1", "Bad/0"]);
        for entry in &entries {
            assert_eq!(sorted_keys(entry), ["at", "ip", "method", "outcome", "user_agent"]);
            assert_eq!(entry["ip"], "127.0.0.1");
            assert_eq!(entry["method"], "password");
            assert!(is_rfc3339(&entry["at"]), "{entry}");
        }
        let times: Vec<i64> = entries.iter().map(|e| seconds_of(&e["at"])).collect();
        assert_eq!(
            times,
            [36, 5, 4, 3, 2, 1, 0].map(|offset| started + offset)
        );
    }

    async fn the_login_history_pages_through_a_next_link(app) {
        let email = app.verified_account().await;
        let tokens = a_history_of_seven_attempts(&app, &email).await;
        let everything = history(&app, &tokens.access_token, "").await;
        assert_eq!(everything.len(), 7);

        let first = app.login_history(&tokens.access_token, "limit=2").await;
        let mut next = next_link(&first);
        let mut paged = ok_json(first).await.as_array().expect("a list").clone();
        assert_eq!(paged, everything[..2]);
        let mut pages = 1;
        while let Some(path) = next {
            assert!(path.starts_with("/v1/account/login-history?"), "{path}");
            assert!(path.contains("limit=2") && path.contains("cursor="), "{path}");
            let response = app
                .send_authed(reqwest::Method::GET, &path, &tokens.access_token, None)
                .await;
            next = next_link(&response);
            let page = ok_json(response).await.as_array().expect("a list").clone();
            assert!(page.len() <= 2);
            paged.extend(page);
            pages += 1;
            assert!(pages <= 5, "too many pages");
        }
        assert_eq!(pages, 4);
        assert_eq!(paged, everything);
    }

    async fn a_history_page_size_outside_one_to_two_hundred_is_refused(app) {
        let email = app.verified_account().await;
        let tokens = app.log_in(&email, false).await;
        for query in ["limit=0", "limit=201", "limit=-1", "limit=ten", "cursor=not-a-cursor"] {
            problem(app.login_history(&tokens.access_token, query).await, 400, "invalid_request")
                .await;
        }
        assert_eq!(history(&app, &tokens.access_token, "limit=200").await.len(), 1);
        assert_eq!(history(&app, &tokens.access_token, "limit=1").await.len(), 1);
    }

    async fn unknown_logins_are_not_recorded_anywhere(app) {
        // Attempts on an address before it has an account leave nothing behind for
        // whoever signs it up later, nor in anyone else's history.
        let bystander = app.verified_account().await;
        let email = unique_email();
        for _ in 0..3 {
            assert_eq!(login_from(&app, &email, WRONG_PASSWORD, false, "Prober/1").await.status(), 401);
            assert_eq!(login_from(&app, &unique_username(), WRONG_PASSWORD, false, "Prober/1").await.status(), 401);
        }
        app.sign_up_verified(&email).await;
        let tokens = log_in_as(&app, &email, false, "Owner/1").await;
        let entries = history(&app, &tokens.access_token, "").await;
        assert_eq!(outcomes(&entries), ["success"]);
        assert_eq!(entries[0]["user_agent"], "Owner/1");
        let bystander = log_in_as(&app, &bystander, false, "Bystander/1").await;
        assert_eq!(outcomes(&history(&app, &bystander.access_token, "").await), ["success"]);
    }

    async fn failures_on_an_unverified_account_are_recorded(app) {
        let email = unique_email();
        assert_eq!(app.sign_up(&email).await.status(), 202);
        assert_eq!(login_from(&app, &email, WRONG_PASSWORD, false, "Early/1").await.status(), 401);
        app.clock.advance(1);
        let token = app.verification_token(&email).await;
        assert_eq!(app.verify_email(&json!({ "token": token })).await.status(), 200);
        let tokens = log_in_as(&app, &email, false, "Later/1").await;
        let entries = history(&app, &tokens.access_token, "").await;
        assert_eq!(outcomes(&entries), ["success", "bad_password"]);
    }

    async fn history_entries_are_kept_ninety_days(app) {
        let email = app.verified_account().await;
        assert_eq!(login_from(&app, &email, WRONG_PASSWORD, false, "Old/1").await.status(), 401);
        app.clock.advance(1);
        log_in_as(&app, &email, false, "Old/2").await;
        app.clock.advance(HISTORY_DAYS * DAY - 2);
        let tokens = log_in_as(&app, &email, false, "New/1").await;
        assert_eq!(
            outcomes(&history(&app, &tokens.access_token, "").await),
            ["success", "success", "bad_password"]
        );
        // Both old entries are now 90 days and a second old (or more).
        app.clock.advance(3);
        let entries = history(&app, &tokens.access_token, "").await;
        assert_eq!(outcomes(&entries), ["success"], "{entries:?}");
        assert_eq!(entries[0]["user_agent"], "New/1");
    }
}

// Entries written within one second keep their order (a sub-second tie-breaker).
on_both_backends! {
    async fn attempts_within_one_second_are_still_listed_newest_first(app) {
        let email = app.verified_account().await;
        for i in 0..3 {
            let agent = format!("Bad/{i}");
            assert_eq!(login_from(&app, &email, WRONG_PASSWORD, false, &agent).await.status(), 401);
        }
        let tokens = log_in_as(&app, &email, false, "Good/1").await;
        let entries = history(&app, &tokens.access_token, "").await;
        let agents: Vec<&str> =
            entries.iter().map(|e| e["user_agent"].as_str().expect("ua")).collect();
        assert_eq!(agents, ["Good/1", "Bad/2", "Bad/1", "Bad/0"]);
    }
}

// ---------------------------------------------------------------------------------
// DynamoDB round trips
// ---------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_authenticated_read_is_one_dynamodb_round_trip() {
    let app = TestApp::spawn(Backend::DynamoDb).await;
    let email = app.verified_account().await;
    let tokens = app.log_in(&email, false).await;
    let other = app.log_in(&email, false).await;

    app.reset_calls();
    ok_json(app.account(&tokens.access_token).await).await;
    assert_eq!(app.dynamodb_calls(), expected_calls(&[("BatchGetItem", 1)]));

    // The session check and the page of sessions, in parallel.
    app.reset_calls();
    assert_eq!(sessions(&app, &tokens.access_token).await.len(), 2);
    assert_eq!(
        app.dynamodb_calls(),
        expected_calls(&[("BatchGetItem", 1), ("Query", 1)])
    );

    app.reset_calls();
    assert_eq!(
        history(&app, &tokens.access_token, "limit=5").await.len(),
        2
    );
    // The session check, then the history query.
    assert_eq!(
        app.dynamodb_calls(),
        expected_calls(&[("BatchGetItem", 1), ("Query", 1)])
    );

    app.reset_calls();
    assert_eq!(
        app.revoke_session(&tokens.access_token, &other.session_id)
            .await
            .status(),
        204
    );
    // The session check (with the account's epoch, which decides whether the target is
    // still a session), then one conditional delete.
    assert_eq!(
        app.dynamodb_calls(),
        expected_calls(&[("BatchGetItem", 1), ("DeleteItem", 1)])
    );

    // A refused token costs nothing.
    app.reset_calls();
    app.assert_access_refused("not-a-token", "a malformed token")
        .await;
    assert_eq!(app.dynamodb_calls().values().sum::<usize>(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_other_sessions_is_one_read_and_one_write_whatever_their_number() {
    let app = TestApp::spawn(Backend::DynamoDb).await;
    let email = app.verified_account().await;
    let tokens = app.log_in(&email, false).await;
    for _ in 0..12 {
        app.log_in(&email, false).await;
    }
    app.reset_calls();
    assert_eq!(
        app.revoke_other_sessions(&tokens.access_token)
            .await
            .status(),
        204
    );
    // The session check, then one write on the account: its session epoch moves on.
    assert_eq!(
        app.dynamodb_calls(),
        expected_calls(&[("BatchGetItem", 1), ("UpdateItem", 1)])
    );
    assert_eq!(sessions(&app, &tokens.access_token).await.len(), 1);
}
