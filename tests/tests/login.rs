//! Logging in and staying logged in: `POST /v1/login`, `POST /v1/token/refresh`,
//! `POST /v1/logout`, the access tokens they hand out (forged ones refused) and
//! `GET /.well-known/jwks.json`.

use std::sync::LazyLock;
use std::time::{Duration, Instant};

use accounts::clock::Clock;
use accounts::credentials::access_token::generate_ed25519_pem;
use api_tests::assert::{problem, rate_limited, token_pair};
use api_tests::{
    Backend, PASSWORD, TestApp, WRONG_PASSWORD, body, expected_calls, header, median,
    on_both_backends, on_both_backends_with, unique_email, unique_username,
};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::header::{AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, RETRY_AFTER};
use serde_json::{Value, json};

const MINUTE: i64 = 60;
const HOUR: i64 = 3_600;
const DAY: i64 = 24 * HOUR;
/// The audience of access tokens when `JWT_AUDIENCE` is not set.
const AUDIENCE: &str = "accounts-api";

/// The server's signing key in the forged-token tests, so the tests can sign too.
static SIGNING_KEY: LazyLock<String> =
    LazyLock::new(|| generate_ed25519_pem().expect("an Ed25519 key"));
/// The key used before a rotation.
static PREVIOUS_KEY: LazyLock<String> =
    LazyLock::new(|| generate_ed25519_pem().expect("an Ed25519 key"));

/// The timing test measures alone: every other test of this file holds a read guard
/// while it runs, the timing test the write guard.
static CPU: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

/// [`on_both_backends_with!`], holding a read guard on [`CPU`].
macro_rules! tests_with {
    ($overrides:expr; $(async fn $name:ident($app:ident) $body:block)*) => {
        on_both_backends_with! {
            $overrides;
            $(async fn $name($app) { let _cpu = CPU.read().await; $body })*
        }
    };
}

/// [`on_both_backends!`], holding a read guard on [`CPU`]: [`tests_with!`] without
/// configuration overrides.
macro_rules! tests {
    ($(async fn $name:ident($app:ident) $body:block)*) => {
        tests_with! { &[]; $(async fn $name($app) $body)* }
    };
}

// ---------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------

/// The `Retry-After` seconds of a response (panics without one).
fn retry_after(response: &reqwest::Response) -> u64 {
    header(response, RETRY_AFTER.as_str())
        .and_then(|v| v.parse().ok())
        .expect("a numeric Retry-After header")
}

// JWT forging ------------------------------------------------------------------------

fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The JSON of one dot-separated part of a JWT.
fn jwt_part(token: &str, index: usize) -> Value {
    let part = token.split('.').nth(index).expect("a JWT part");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).expect("base64url")).expect("JSON")
}

/// A JWT assembled by hand from a header, claims and signature text.
fn assemble(header: &Value, claims: &Value, signature: &str) -> String {
    format!(
        "{}.{}.{signature}",
        b64(header.to_string()),
        b64(claims.to_string())
    )
}

/// The DER inside a PKCS#8 PEM.
fn pem_der(pem: &str) -> Vec<u8> {
    let body: String = pem
        .lines()
        .filter(|line| !line.starts_with("-----"))
        .collect();
    STANDARD.decode(body).expect("a base64 PEM body")
}

/// An EdDSA token with any claims, signed by `pem` under `kid`.
fn sign_ed25519(pem: &str, kid: &str, claims: &Value) -> String {
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_ed_der(&pem_der(pem)))
        .expect("signing works")
}

/// An HS256 token keyed with `secret`.
fn sign_hs256(secret: &[u8], kid: &str, claims: &Value) -> String {
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_secret(secret)).expect("signing")
}

/// The published keys.
async fn jwks_keys(app: &TestApp) -> Vec<Value> {
    let response = app.jwks().await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        header(&response, CONTENT_TYPE.as_str()).as_deref(),
        Some("application/json")
    );
    body(response).await["keys"]
        .as_array()
        .expect("a keys array")
        .clone()
}

/// The kid that signed an access token.
fn kid_of(access_token: &str) -> String {
    jwt_part(access_token, 0)["kid"]
        .as_str()
        .expect("a kid")
        .to_owned()
}

/// A JSON object with one member changed (or removed when `value` is null).
fn with(claims: &Value, name: &str, value: Value) -> Value {
    let mut claims = claims.clone();
    let object = claims.as_object_mut().expect("an object");
    if value.is_null() {
        object.remove(name);
    } else {
        object.insert(name.to_owned(), value);
    }
    claims
}

// ---------------------------------------------------------------------------------
// Logging in
// ---------------------------------------------------------------------------------

tests! {
    async fn a_verified_account_logs_in_by_email_in_any_case(app) {
        let email = app.verified_account().await;
        for typed in [email.clone(), email.to_uppercase(), format!("  {}  ", email.replacen('u', "U", 1))] {
            let tokens = token_pair(
                app.login(&json!({ "login": typed, "password": PASSWORD })).await,
            )
            .await;
            assert_eq!(tokens.expires_in, 900);
            assert!(!tokens.access_token.is_empty() && !tokens.refresh_token.is_empty());
            assert!(uuid::Uuid::parse_str(&tokens.session_id).is_ok(), "{}", tokens.session_id);
            let account = app.account(&tokens.access_token).await;
            assert_eq!(account.status(), 200);
            assert_eq!(body(account).await["email"], email.as_str());
        }
    }

    async fn a_verified_account_logs_in_by_username_in_any_case(app) {
        let (email, username) = app.verified_account_with_username().await;
        for typed in [username.clone(), username.to_uppercase()] {
            let tokens = token_pair(
                app.login(&json!({ "login": typed, "password": PASSWORD, "remember_me": false }))
                    .await,
            )
            .await;
            assert_eq!(tokens.expires_in, 900);
            let account = body(app.account(&tokens.access_token).await).await;
            assert_eq!(account["email"], email.as_str());
            assert_eq!(account["username"], username.as_str());
            assert_eq!(account["account_type"], "client");
        }
    }

    async fn each_login_starts_its_own_session(app) {
        let email = app.verified_account().await;
        let first = app.log_in(&email, false).await;
        let second = app.log_in(&email, false).await;
        assert_ne!(first.session_id, second.session_id);
        assert_ne!(first.refresh_token, second.refresh_token);
    }

    async fn an_unverified_account_with_the_right_password_is_told_to_verify(app) {
        let email = unique_email();
        assert_eq!(app.sign_up(&email).await.status(), 202);
        let body = problem(app.try_log_in(&email, PASSWORD).await, 403, "email_not_verified").await;
        assert!(body.get("access_token").is_none());
    }

    async fn a_wrong_password_and_an_unknown_login_get_byte_identical_answers(app) {
        let verified = app.verified_account().await;
        let unverified = unique_email();
        assert_eq!(app.sign_up(&unverified).await.status(), 202);
        let (_, username) = app.verified_account_with_username().await;

        let reference = app.try_log_in(&unique_email(), WRONG_PASSWORD).await;
        let reference_headers = (
            reference.status(),
            header(&reference, CONTENT_TYPE.as_str()),
            header(&reference, CACHE_CONTROL.as_str()),
        );
        let reference_body = reference.bytes().await.expect("a body");
        let reference_json: Value = serde_json::from_slice(&reference_body).expect("JSON");
        assert_eq!(reference_headers.0, 401);
        assert_eq!(reference_json["code"], "invalid_credentials");
        assert_eq!(reference_headers.1.as_deref(), Some("application/problem+json"));

        let cases: Vec<(&str, Value)> = vec![
            ("wrong password", json!({ "login": verified, "password": WRONG_PASSWORD })),
            ("wrong password by username", json!({ "login": username, "password": WRONG_PASSWORD })),
            ("wrong password, unverified", json!({ "login": unverified, "password": WRONG_PASSWORD })),
            ("empty password", json!({ "login": verified, "password": "" })),
            ("unknown email", json!({ "login": unique_email(), "password": PASSWORD })),
            ("unknown username", json!({ "login": unique_username(), "password": PASSWORD })),
            ("not an email or a username", json!({ "login": "no such thing!", "password": PASSWORD })),
            ("empty login", json!({ "login": "", "password": PASSWORD })),
        ];
        for (case, request) in cases {
            let response = app.login(&request).await;
            let headers = (
                response.status(),
                header(&response, CONTENT_TYPE.as_str()),
                header(&response, CACHE_CONTROL.as_str()),
            );
            let body = response.bytes().await.expect("a body");
            assert_eq!(headers, reference_headers, "{case}");
            assert_eq!(body, reference_body, "{case}");
        }
    }

    async fn a_login_body_with_unknown_fields_is_refused(app) {
        let email = app.verified_account().await;
        let response = app
            .login(&json!({ "login": email, "password": PASSWORD, "admin": true }))
            .await;
        problem(response, 400, "invalid_request").await;
    }
}

/// Medians of `samples` alternating unknown-login and wrong-password attempts.
async fn login_timings(app: &TestApp, accounts: &[String], samples: usize) -> (Duration, Duration) {
    let (mut unknown, mut wrong) = (Vec::new(), Vec::new());
    for i in 0..samples {
        let account = &accounts[i % accounts.len()];
        // Alternate which goes first, so that a drift in load hits both alike.
        for unknown_first in [i % 2 == 0, i % 2 == 1] {
            let (login, times) = if unknown_first {
                (unique_email(), &mut unknown)
            } else {
                (account.clone(), &mut wrong)
            };
            let started = Instant::now();
            let response = app.try_log_in(&login, WRONG_PASSWORD).await;
            times.push(started.elapsed());
            assert_eq!(response.status(), 401);
        }
    }
    // Clear the accounts' failure counts for the next round.
    for account in accounts {
        token_pair(app.try_log_in(account, PASSWORD).await).await;
    }
    (median(unknown), median(wrong))
}

on_both_backends_with! {
    &[("LOGIN_FAILURES_PER_IP_PER_HOUR", "1000")];
    async fn an_unknown_login_takes_as_long_as_a_wrong_password(app) {
        // Spread the wrong passwords over accounts so that no account backs off.
        let mut accounts = Vec::new();
        for _ in 0..4 {
            accounts.push(app.verified_account().await);
        }
        let _alone = CPU.write().await;
        // Warm up both paths (the dummy hash is made on first use).
        problem(app.try_log_in(&unique_email(), WRONG_PASSWORD).await, 401, "invalid_credentials").await;
        problem(app.try_log_in(&accounts[3], WRONG_PASSWORD).await, 401, "invalid_credentials").await;

        // Other processes may share the two cores: a round disturbed by them is measured
        // again, but a real difference between the paths fails every round.
        let mut rounds = Vec::new();
        for _ in 0..5 {
            let (unknown, wrong) = login_timings(&app, &accounts, 15).await;
            let difference = unknown.abs_diff(wrong).as_secs_f64() / wrong.as_secs_f64();
            println!("median unknown login {unknown:?}, wrong password {wrong:?}");
            rounds.push(format!("{unknown:?} vs {wrong:?} ({:.0}% apart)", difference * 100.0));
            if difference <= 0.2 {
                return;
            }
        }
        panic!("an unknown login and a wrong password take different times: {rounds:?}");
    }
}

// ---------------------------------------------------------------------------------
// Back-off
// ---------------------------------------------------------------------------------

tests! {
    async fn five_failures_lock_an_account_for_thirty_seconds_even_with_the_right_password(app) {
        let email = app.verified_account().await;
        for _ in 0..5 {
            problem(app.try_log_in(&email, WRONG_PASSWORD).await, 401, "invalid_credentials").await;
        }
        let seconds = rate_limited(app.try_log_in(&email, PASSWORD).await).await;
        assert!((29..=30).contains(&seconds), "Retry-After {seconds}");
        // Still locked a little later, with less to wait.
        app.clock.advance(10);
        let seconds = rate_limited(app.try_log_in(&email, PASSWORD).await).await;
        assert!((19..=20).contains(&seconds), "Retry-After {seconds}");
    }

    async fn a_success_after_the_back_off_resets_the_count(app) {
        let email = app.verified_account().await;
        for _ in 0..5 {
            problem(app.try_log_in(&email, WRONG_PASSWORD).await, 401, "invalid_credentials").await;
        }
        rate_limited(app.try_log_in(&email, PASSWORD).await).await;
        app.clock.advance(31);
        token_pair(app.try_log_in(&email, PASSWORD).await).await;
        // Five fresh failures are allowed again, then the first back-off (not a doubled one).
        for _ in 0..5 {
            problem(app.try_log_in(&email, WRONG_PASSWORD).await, 401, "invalid_credentials").await;
        }
        let seconds = rate_limited(app.try_log_in(&email, PASSWORD).await).await;
        assert!((29..=30).contains(&seconds), "Retry-After {seconds}");
    }

    async fn each_failure_after_the_back_off_doubles_it_up_to_fifteen_minutes(app) {
        let email = app.verified_account().await;
        for _ in 0..5 {
            problem(app.try_log_in(&email, WRONG_PASSWORD).await, 401, "invalid_credentials").await;
        }
        let mut wait = rate_limited(app.try_log_in(&email, WRONG_PASSWORD).await).await;
        assert!((29..=30).contains(&wait), "Retry-After {wait}");
        for expected in [60, 120, 240, 480, 900, 900] {
            app.clock.advance(i64::try_from(wait).expect("small") + 1);
            problem(app.try_log_in(&email, WRONG_PASSWORD).await, 401, "invalid_credentials").await;
            wait = rate_limited(app.try_log_in(&email, PASSWORD).await).await;
            assert!(
                (expected - 1..=expected).contains(&wait),
                "Retry-After {wait}, expected {expected}"
            );
        }
    }

    async fn case_variants_of_an_email_share_one_counter_and_of_a_username_another(app) {
        let (email, username) = app.verified_account_with_username().await;
        let email_variants = [
            email.to_uppercase(),
            email.replacen("user", "USER", 1),
            email.to_uppercase(),
            email.replacen("user", "USER", 1),
            email.clone(),
        ];
        for login in &email_variants {
            problem(app.try_log_in(login, WRONG_PASSWORD).await, 401, "invalid_credentials").await;
        }
        let seconds = rate_limited(app.try_log_in(&email, PASSWORD).await).await;
        assert!((29..=30).contains(&seconds), "Retry-After {seconds}");
        // The username has a counter of its own: a public username locked by strangers
        // must not reveal which address belongs to it (and vice versa).
        app.log_in(&username, false).await;
        for login in [username.to_uppercase(), username.clone()].iter().cycle().take(5) {
            problem(app.try_log_in(login, WRONG_PASSWORD).await, 401, "invalid_credentials").await;
        }
        rate_limited(app.try_log_in(&username.to_uppercase(), PASSWORD).await).await;
    }

    async fn unicode_variants_of_an_email_share_one_counter(app) {
        let id = &uuid::Uuid::new_v4().simple().to_string()[..12];
        let email = format!("jos\u{e9}-{id}@example.com");
        assert_eq!(app.sign_up(&email).await.status(), 202);
        let variants = [
            format!("jose\u{301}-{id}@example.com"),
            format!("JOS\u{c9}-{}@EXAMPLE.COM", id.to_uppercase()),
            format!("JOSE\u{301}-{id}@Example.Com"),
            format!("  JOSE\u{301}-{}@example.com  ", id.to_uppercase()),
            format!("jos\u{e9}-{id}@example.com"),
        ];
        let mut failures = 0;
        for login in &variants {
            let response = app.try_log_in(login, WRONG_PASSWORD).await;
            if response.status() == 401 {
                failures += 1;
            }
            problem(response, 401, "invalid_credentials").await;
        }
        assert_eq!(failures, 5);
        // Locked: the right password (of the unverified account) is refused for now.
        rate_limited(app.try_log_in(&email, PASSWORD).await).await;
    }

    async fn unknown_logins_lock_exactly_like_known_ones(app) {
        let known = app.verified_account().await;
        let unknown = unique_email();
        for _ in 0..5 {
            let a = app.try_log_in(&known, WRONG_PASSWORD).await;
            let b = app.try_log_in(&unknown.to_uppercase(), WRONG_PASSWORD).await;
            assert_eq!(a.status(), b.status());
            assert_eq!(a.bytes().await.expect("body"), b.bytes().await.expect("body"));
        }
        let known_locked = app.try_log_in(&known, PASSWORD).await;
        let unknown_locked = app.try_log_in(&unknown, PASSWORD).await;
        assert_eq!(retry_after(&known_locked), retry_after(&unknown_locked));
        let seconds = rate_limited(known_locked).await;
        assert!((29..=30).contains(&seconds), "Retry-After {seconds}");
        rate_limited(unknown_locked).await;
        app.clock.advance(31);
        problem(app.try_log_in(&unknown, WRONG_PASSWORD).await, 401, "invalid_credentials").await;
        let doubled = rate_limited(app.try_log_in(&unknown, WRONG_PASSWORD).await).await;
        assert!((59..=60).contains(&doubled), "Retry-After {doubled}");
    }

    async fn one_account_backing_off_does_not_lock_another(app) {
        let locked = app.verified_account().await;
        let other = app.verified_account().await;
        for _ in 0..5 {
            problem(app.try_log_in(&locked, WRONG_PASSWORD).await, 401, "invalid_credentials").await;
        }
        rate_limited(app.try_log_in(&locked, PASSWORD).await).await;
        token_pair(app.try_log_in(&other, PASSWORD).await).await;
    }
}

tests_with! {
    &[("LOGIN_FAILURES_PER_IP_PER_HOUR", "3")];
    async fn an_ip_over_its_hourly_failure_cap_is_refused_for_every_login(app) {
        let first = app.verified_account().await;
        let second = app.verified_account().await;
        problem(app.try_log_in(&unique_email(), WRONG_PASSWORD).await, 401, "invalid_credentials").await;
        problem(app.try_log_in(&first, WRONG_PASSWORD).await, 401, "invalid_credentials").await;
        problem(app.try_log_in(&unique_username(), WRONG_PASSWORD).await, 401, "invalid_credentials").await;
        // The fourth attempt from this IP, on an account without any failure.
        let seconds = rate_limited(app.try_log_in(&second, PASSWORD).await).await;
        assert!((1..=3_600).contains(&seconds), "Retry-After {seconds}");
        rate_limited(app.try_log_in(&unique_email(), WRONG_PASSWORD).await).await;
        // The cap is per hour.
        app.clock.advance(i64::try_from(seconds).expect("small") + 1);
        token_pair(app.try_log_in(&second, PASSWORD).await).await;
    }
}

// ---------------------------------------------------------------------------------
// Session and access token lifetimes
// ---------------------------------------------------------------------------------

tests! {
    async fn an_access_token_lives_fifteen_minutes(app) {
        let email = app.verified_account().await;
        let tokens = app.log_in(&email, false).await;
        assert_eq!(tokens.expires_in, 15 * MINUTE);
        app.clock.advance(15 * MINUTE - 1);
        app.assert_access_accepted(&tokens.access_token).await;
        app.clock.advance(2);
        app.assert_access_refused(&tokens.access_token, "an expired access token").await;
        // The session itself lives on: a refresh gets a fresh access token.
        let next = token_pair(app.refresh(&tokens.refresh_token).await).await;
        assert_eq!(next.expires_in, 15 * MINUTE);
        app.assert_access_accepted(&next.access_token).await;
    }

    async fn a_session_without_remember_me_ends_after_twelve_hours(app) {
        let email = app.verified_account().await;
        let tokens = app.log_in(&email, false).await;
        app.clock.advance(12 * HOUR - 100);
        let late = token_pair(app.refresh(&tokens.refresh_token).await).await;
        // An access token never outlives its session.
        assert_eq!(late.expires_in, 100);
        app.assert_access_accepted(&late.access_token).await;
        app.clock.advance(101);
        app.assert_refresh_refused(&late.refresh_token).await;
        app.assert_access_refused(&late.access_token, "a token of an ended session").await;
    }

    async fn a_session_without_remember_me_ends_at_twelve_hours_even_unrefreshed(app) {
        let email = app.verified_account().await;
        let tokens = app.log_in(&email, false).await;
        app.clock.advance(12 * HOUR + 1);
        app.assert_refresh_refused(&tokens.refresh_token).await;
    }

    async fn a_remember_me_session_outlives_twelve_hours(app) {
        let email = app.verified_account().await;
        let tokens = app.log_in(&email, true).await;
        assert_eq!(tokens.expires_in, 15 * MINUTE);
        app.clock.advance(12 * HOUR + 1);
        let next = token_pair(app.refresh(&tokens.refresh_token).await).await;
        assert_eq!(next.expires_in, 15 * MINUTE);
        app.assert_access_accepted(&next.access_token).await;
    }

    async fn a_remember_me_session_ends_after_seven_idle_days(app) {
        let email = app.verified_account().await;
        let tokens = app.log_in(&email, true).await;
        app.clock.advance(7 * DAY - 1);
        let next = token_pair(app.refresh(&tokens.refresh_token).await).await;
        app.clock.advance(7 * DAY + 1);
        app.assert_refresh_refused(&next.refresh_token).await;
    }

    async fn refreshing_every_six_days_keeps_a_remember_me_session_for_thirty_days(app) {
        let email = app.verified_account().await;
        let mut tokens = app.log_in(&email, true).await;
        for _ in 0..4 {
            app.clock.advance(6 * DAY);
            tokens = token_pair(app.refresh(&tokens.refresh_token).await).await;
            assert_eq!(tokens.expires_in, 15 * MINUTE);
        }
        // Day 30 less a second: still alive, but only for one more second.
        app.clock.advance(6 * DAY - 1);
        tokens = token_pair(app.refresh(&tokens.refresh_token).await).await;
        assert_eq!(tokens.expires_in, 1);
        app.assert_access_accepted(&tokens.access_token).await;
        app.clock.advance(2);
        app.assert_refresh_refused(&tokens.refresh_token).await;
        app.assert_access_refused(&tokens.access_token, "a token of an ended session").await;
    }
}

tests_with! {
    &[
        ("ACCESS_TOKEN_MINUTES", "5"),
        ("SESSION_HOURS", "1"),
        ("REMEMBER_ME_DAYS", "2"),
        ("REMEMBER_ME_IDLE_DAYS", "1"),
    ];
    async fn session_and_token_lifetimes_are_configurable(app) {
        let email = app.verified_account().await;

        let short = app.log_in(&email, false).await;
        assert_eq!(short.expires_in, 5 * MINUTE);
        let remembered = app.log_in(&email, true).await;
        let idle = app.log_in(&email, true).await;
        assert_eq!(remembered.expires_in, 5 * MINUTE);

        app.clock.advance(5 * MINUTE + 1);
        app.assert_access_refused(&short.access_token, "a 5-minute token after 5 minutes").await;
        app.clock.advance(HOUR - 5 * MINUTE - 11);
        // 10 s before the 1-hour session ends.
        let short = token_pair(app.refresh(&short.refresh_token).await).await;
        assert_eq!(short.expires_in, 10);
        app.clock.advance(11);
        app.assert_refresh_refused(&short.refresh_token).await;

        // Remember me: refreshed daily, it lasts two days; idle one day, it ends.
        let remembered = token_pair(app.refresh(&remembered.refresh_token).await).await;
        app.clock.advance(DAY - HOUR);
        let remembered = token_pair(app.refresh(&remembered.refresh_token).await).await;
        app.assert_refresh_refused(&idle.refresh_token).await;
        app.clock.advance(DAY - 11);
        let remembered = token_pair(app.refresh(&remembered.refresh_token).await).await;
        assert_eq!(remembered.expires_in, 10);
        app.clock.advance(11);
        app.assert_refresh_refused(&remembered.refresh_token).await;
    }
}

tests_with! {
    &[("ACCESS_TOKEN_MINUTES", "2880"), ("REMEMBER_ME_IDLE_DAYS", "1")];
    async fn an_idle_remember_me_session_refuses_its_unexpired_access_token(app) {
        let email = app.verified_account().await;
        let tokens = app.log_in(&email, true).await;
        assert_eq!(tokens.expires_in, 2 * DAY);
        app.clock.advance(DAY - 1);
        app.assert_access_accepted(&tokens.access_token).await;
        app.clock.advance(2);
        app.assert_access_refused(&tokens.access_token, "the token of an idle session").await;
        app.assert_refresh_refused(&tokens.refresh_token).await;
    }
}

// ---------------------------------------------------------------------------------
// Refresh and logout
// ---------------------------------------------------------------------------------

tests! {
    async fn a_refresh_rotates_the_pair_and_keeps_the_session(app) {
        let email = app.verified_account().await;
        let first = app.log_in(&email, false).await;
        app.clock.advance(5);
        let second = token_pair(app.refresh(&first.refresh_token).await).await;
        assert_ne!(second.refresh_token, first.refresh_token);
        assert_ne!(second.access_token, first.access_token);
        assert_eq!(second.session_id, first.session_id);
        assert_eq!(second.expires_in, 900);
        app.assert_access_accepted(&second.access_token).await;
        let third = token_pair(app.refresh(&second.refresh_token).await).await;
        app.assert_access_accepted(&third.access_token).await;
    }

    async fn a_spent_refresh_token_presented_again_ends_the_session(app) {
        let email = app.verified_account().await;
        let first = app.log_in(&email, false).await;
        app.clock.advance(5);
        let second = token_pair(app.refresh(&first.refresh_token).await).await;
        app.assert_refresh_refused(&first.refresh_token).await;
        // Reuse detected: the thief's and the owner's tokens all stop working.
        app.assert_refresh_refused(&second.refresh_token).await;
        app.assert_access_refused(&second.access_token, "the access token of a reused session").await;
        app.assert_access_refused(&first.access_token, "the first access token").await;
    }

    async fn a_reuse_of_a_spent_token_does_not_touch_other_sessions(app) {
        let email = app.verified_account().await;
        let stolen = app.log_in(&email, false).await;
        let other = app.log_in(&email, false).await;
        token_pair(app.refresh(&stolen.refresh_token).await).await;
        app.assert_refresh_refused(&stolen.refresh_token).await;
        app.assert_access_accepted(&other.access_token).await;
        token_pair(app.refresh(&other.refresh_token).await).await;
    }

    async fn a_garbage_or_tampered_refresh_token_is_refused_without_ending_the_session(app) {
        let email = app.verified_account().await;
        let tokens = app.log_in(&email, false).await;
        let (selector, _) = tokens.refresh_token.split_once('.').expect("selector.verifier");
        let tampered = format!("{selector}.{}", "A".repeat(43));
        for garbage in [
            "garbage",
            "",
            "a.b",
            tampered.as_str(),
            tokens.access_token.as_str(),
            &format!("{}x", tokens.refresh_token),
        ] {
            app.assert_refresh_refused(garbage).await;
        }
        // None of these was the spent token: the session lives on.
        app.assert_access_accepted(&tokens.access_token).await;
        token_pair(app.refresh(&tokens.refresh_token).await).await;
    }

    async fn twenty_concurrent_refreshes_with_one_token_yield_exactly_one_pair(app) {
        let email = app.verified_account().await;
        let tokens = app.log_in(&email, false).await;
        let refreshes = vec![json!({ "refresh_token": tokens.refresh_token }); 20];
        let mut pairs = 0;
        let mut refused = 0;
        for (status, body) in app.post_concurrently("/v1/token/refresh", refreshes).await {
            match status {
                200 => {
                    assert!(body["refresh_token"].is_string(), "{body}");
                    pairs += 1;
                }
                401 => {
                    assert_eq!(body["code"], "invalid_token", "{body}");
                    refused += 1;
                }
                other => panic!("unexpected status {other}: {body}"),
            }
        }
        assert_eq!((pairs, refused), (1, 19));
    }

    async fn logout_ends_the_session_and_its_unexpired_access_token(app) {
        let email = app.verified_account().await;
        let tokens = app.log_in(&email, false).await;
        let other = app.log_in(&email, false).await;
        app.assert_access_accepted(&tokens.access_token).await;
        let response = app.logout(&tokens.refresh_token).await;
        assert_eq!(response.status(), 204);
        assert!(response.bytes().await.expect("a body").is_empty());
        app.assert_refresh_refused(&tokens.refresh_token).await;
        app.assert_access_refused(&tokens.access_token, "a logged-out access token").await;
        // Logging out twice is fine; the other session is untouched.
        assert_eq!(app.logout(&tokens.refresh_token).await.status(), 204);
        app.assert_access_accepted(&other.access_token).await;
    }

    async fn logout_with_a_garbage_token_is_a_no_op(app) {
        let email = app.verified_account().await;
        let tokens = app.log_in(&email, false).await;
        assert_eq!(app.logout("garbage").await.status(), 204);
        let (selector, _) = tokens.refresh_token.split_once('.').expect("selector.verifier");
        let forged = format!("{selector}.{}", "A".repeat(43));
        assert_eq!(app.logout(&forged).await.status(), 204);
        // Knowing a session's selector is not enough to end it.
        app.assert_access_accepted(&tokens.access_token).await;
    }
}

// ---------------------------------------------------------------------------------
// Access tokens: JWKS and forgeries
// ---------------------------------------------------------------------------------

tests! {
    async fn the_jwks_publishes_the_key_that_signs_access_tokens(app) {
        let keys = jwks_keys(&app).await;
        assert_eq!(keys.len(), 1, "{keys:?}");
        let key = &keys[0];
        assert_eq!(key["kty"], "OKP");
        assert_eq!(key["crv"], "Ed25519");
        assert_eq!(key["alg"], "EdDSA");
        assert!(key["x"].as_str().is_some_and(|x| URL_SAFE_NO_PAD.decode(x).is_ok_and(|b| b.len() == 32)));
        assert!(key.get("d").is_none(), "the private key is published: {key}");
        let email = app.verified_account().await;
        let tokens = app.log_in(&email, false).await;
        assert_eq!(key["kid"].as_str(), Some(kid_of(&tokens.access_token).as_str()));
        let header = jwt_part(&tokens.access_token, 0);
        assert_eq!(header["alg"], "EdDSA");
        let claims = jwt_part(&tokens.access_token, 1);
        assert_eq!(claims["typ"], "access");
        assert_eq!(claims["aud"], AUDIENCE);
        assert_eq!(claims["sid"], tokens.session_id.as_str());
        let exp = claims["exp"].as_i64().expect("a numeric exp");
        let iat = claims["iat"].as_i64().expect("a numeric iat");
        assert_eq!(exp - iat, 900);
        assert_eq!(iat, app.clock.now());
    }

    async fn a_missing_or_malformed_authorization_header_is_refused(app) {
        let email = app.verified_account().await;
        let tokens = app.log_in(&email, false).await;
        let url = format!("{}/v1/account", app.address);
        problem(app.http.get(&url).send().await.expect("sent"), 401, "unauthorized").await;
        for value in [
            "Bearer".to_owned(),
            "Bearer ".to_owned(),
            format!("Basic {}", tokens.access_token),
            tokens.access_token.clone(),
            "Bearer not.a.jwt".to_owned(),
        ] {
            let response = app
                .http
                .get(&url)
                .header(AUTHORIZATION, value)
                .send()
                .await
                .expect("sent");
            problem(response, 401, "unauthorized").await;
        }
    }
}

tests_with! {
    &[("JWT_SIGNING_KEY", SIGNING_KEY.as_str())];
    async fn tokens_not_signed_by_the_server_key_are_refused(app) {
        let email = app.verified_account().await;
        let tokens = app.log_in(&email, false).await;
        let kid = jwks_keys(&app).await[0]["kid"].as_str().expect("a kid").to_owned();
        assert_eq!(kid, kid_of(&tokens.access_token));
        let claims = jwt_part(&tokens.access_token, 1);
        let signature = tokens.access_token.rsplit('.').next().expect("a signature");
        let x = jwks_keys(&app).await[0]["x"].as_str().expect("x").to_owned();
        let x_bytes = URL_SAFE_NO_PAD.decode(&x).expect("base64url x");
        let other_key = generate_ed25519_pem().expect("a key");

        // The forging works: the same claims signed with the server's key pass.
        app.assert_access_accepted(&sign_ed25519(&SIGNING_KEY, &kid, &claims)).await;

        let cases: Vec<(&str, String)> = vec![
            ("alg none", assemble(&json!({ "alg": "none", "typ": "JWT", "kid": kid }), &claims, "")),
            ("alg none, no kid", assemble(&json!({ "alg": "none", "typ": "JWT" }), &claims, "")),
            (
                "alg none with the genuine signature",
                assemble(&json!({ "alg": "none", "typ": "JWT", "kid": kid }), &claims, signature),
            ),
            ("HS256 keyed with the JWK's x text", sign_hs256(x.as_bytes(), &kid, &claims)),
            ("HS256 keyed with the public key bytes", sign_hs256(&x_bytes, &kid, &claims)),
            ("another Ed25519 key under the same kid", sign_ed25519(&other_key, &kid, &claims)),
            ("an unknown kid", sign_ed25519(&other_key, "someone-elses-key", &claims)),
            (
                "no kid",
                assemble(&json!({ "alg": "EdDSA", "typ": "JWT" }), &claims, signature),
            ),
            (
                "claims changed under the genuine signature",
                assemble(
                    &jwt_part(&tokens.access_token, 0),
                    &with(&claims, "exp", json!(app.clock.now() + 365 * DAY)),
                    signature,
                ),
            ),
            ("no signature", {
                let mut parts = tokens.access_token.rsplitn(2, '.');
                parts.next();
                format!("{}.", parts.next().expect("header.payload"))
            }),
        ];
        for (case, token) in cases {
            app.assert_access_refused(&token, case).await;
        }
        // The genuine token still works.
        app.assert_access_accepted(&tokens.access_token).await;
    }

    async fn validly_signed_tokens_with_wrong_claims_are_refused(app) {
        let email = app.verified_account().await;
        let tokens = app.log_in(&email, false).await;
        let other_session = app.log_in(&email, false).await;
        assert_eq!(app.logout(&other_session.refresh_token).await.status(), 204);
        let someone_else = app.verified_account().await;
        let someone_else = app.log_in(&someone_else, false).await;

        let kid = kid_of(&tokens.access_token);
        let claims = jwt_part(&tokens.access_token, 1);
        let now = app.clock.now();
        let exp = claims["exp"].as_i64().expect("exp");
        let sign = |claims: Value| sign_ed25519(&SIGNING_KEY, &kid, &claims);
        app.assert_access_accepted(&sign(claims.clone())).await;

        let cases: Vec<(&str, Value)> = vec![
            ("string exp", with(&claims, "exp", json!(exp.to_string()))),
            ("missing exp", with(&claims, "exp", Value::Null)),
            ("wrong aud", with(&claims, "aud", json!("another-api"))),
            ("aud as a list with another audience", with(&claims, "aud", json!(["another-api"]))),
            ("missing aud", with(&claims, "aud", Value::Null)),
            ("wrong iss", with(&claims, "iss", json!("https://evil.example"))),
            ("missing iss", with(&claims, "iss", Value::Null)),
            ("typ refresh", with(&claims, "typ", json!("refresh"))),
            ("typ missing", with(&claims, "typ", Value::Null)),
            ("expired", with(&with(&claims, "iat", json!(now - 1_000)), "exp", json!(now - 1))),
            ("expiring now", with(&claims, "exp", json!(now))),
            ("issued in the future", with(&claims, "iat", json!(now + 3_600))),
            ("a logged-out session", with(&claims, "sid", json!(other_session.session_id))),
            ("another account's session", with(&claims, "sid", json!(someone_else.session_id))),
            ("a made-up session", with(&claims, "sid", json!(uuid::Uuid::new_v4().to_string()))),
            ("missing sid", with(&claims, "sid", Value::Null)),
            ("missing sub", with(&claims, "sub", Value::Null)),
        ];
        for (case, claims) in cases {
            app.assert_access_refused(&sign(claims), case).await;
        }
        // The other account's token names its own account: swapping the sub is refused.
        let theirs = jwt_part(&someone_else.access_token, 1);
        app.assert_access_refused(
            &sign(with(&claims, "sub", theirs["sub"].clone())),
            "our session under their account",
        )
        .await;
    }
}

tests_with! {
    &[
        ("JWT_SIGNING_KEY", SIGNING_KEY.as_str()),
        ("JWT_PREVIOUS_SIGNING_KEY", PREVIOUS_KEY.as_str()),
    ];
    async fn during_a_key_rotation_both_keys_are_published_and_accepted(app) {
        let keys = jwks_keys(&app).await;
        assert_eq!(keys.len(), 2, "{keys:?}");
        for key in &keys {
            assert_eq!(key["kty"], "OKP");
            assert_eq!(key["crv"], "Ed25519");
            assert_eq!(key["alg"], "EdDSA");
            assert!(key.get("d").is_none());
        }
        let email = app.verified_account().await;
        let tokens = app.log_in(&email, false).await;
        let current = kid_of(&tokens.access_token);
        let previous = keys
            .iter()
            .filter_map(|k| k["kid"].as_str())
            .find(|kid| *kid != current)
            .expect("the previous key's kid")
            .to_owned();
        let claims = jwt_part(&tokens.access_token, 1);
        // A token signed before the rotation still works...
        app.assert_access_accepted(&sign_ed25519(&PREVIOUS_KEY, &previous, &claims)).await;
        // ...but only with the key its kid names.
        app.assert_access_refused(&sign_ed25519(&PREVIOUS_KEY, &current, &claims), "previous key, current kid").await;
        app.assert_access_refused(&sign_ed25519(&SIGNING_KEY, &previous, &claims), "current key, previous kid").await;
    }
}

// ---------------------------------------------------------------------------------
// DynamoDB round trips
// ---------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_successful_login_is_three_sequential_dynamodb_steps() {
    let _cpu = CPU.read().await;
    let app = TestApp::spawn(Backend::DynamoDb).await;
    let email = app.verified_account().await;
    app.reset_calls();
    app.log_in(&email, false).await;
    // Step 1: the login claim and the IP counter in parallel; step 2: the account, its
    // sessions (for the cap) and the back-off claim in parallel; step 3: one transaction.
    assert_eq!(
        app.dynamodb_calls(),
        expected_calls(&[
            ("GetItem", 2),
            ("Query", 1),
            ("UpdateItem", 2),
            ("TransactWriteItems", 1)
        ])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_login_stays_within_seven_dynamodb_calls_in_three_steps() {
    let _cpu = CPU.read().await;
    let app = TestApp::spawn(Backend::DynamoDb).await;
    let email = app.verified_account().await;
    for (case, login) in [
        ("wrong password", email.clone()),
        ("unknown login", unique_email()),
    ] {
        app.reset_calls();
        let response = app.try_log_in(&login, WRONG_PASSWORD).await;
        assert_eq!(response.status(), 401);
        let snapshot = app.dynamodb_calls();
        let total: usize = snapshot.values().sum();
        println!("{case}: {snapshot:?}");
        assert!(total <= 7, "{case}: {total} calls {snapshot:?}");
    }
    // The locked-out answer: the first two steps (with the sessions query) and the
    // history entry.
    for _ in 0..4 {
        app.try_log_in(&email, WRONG_PASSWORD).await;
    }
    app.reset_calls();
    assert_eq!(app.try_log_in(&email, PASSWORD).await.status(), 429);
    let snapshot = app.dynamodb_calls();
    println!("rate limited: {snapshot:?}");
    assert!(snapshot.values().sum::<usize>() <= 6, "{snapshot:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_and_a_logout_are_one_dynamodb_round_trip_each() {
    let _cpu = CPU.read().await;
    let app = TestApp::spawn(Backend::DynamoDb).await;
    let email = app.verified_account().await;
    let tokens = app.log_in(&email, false).await;
    app.reset_calls();
    // The rotation and the check of the account's session epoch, in one transaction.
    let next = token_pair(app.refresh(&tokens.refresh_token).await).await;
    assert_eq!(
        app.dynamodb_calls(),
        expected_calls(&[("TransactWriteItems", 1)])
    );
    app.reset_calls();
    assert_eq!(app.logout(&next.refresh_token).await.status(), 204);
    assert_eq!(app.dynamodb_calls(), expected_calls(&[("DeleteItem", 1)]));
}

// Every spent generation of a refresh token ends its session; a burst of wrong
// passwords gets no more tries than a patient attacker.
tests! {
    async fn an_older_spent_refresh_token_presented_again_ends_the_session(app) {
        let email = app.verified_account().await;
        let first = app.log_in(&email, false).await;
        let second = token_pair(app.refresh(&first.refresh_token).await).await;
        let third = token_pair(app.refresh(&second.refresh_token).await).await;
        app.assert_refresh_refused(&first.refresh_token).await;
        app.assert_refresh_refused(&third.refresh_token).await;
        app.assert_access_refused(&third.access_token, "the access token of a reused session").await;
    }

    async fn concurrent_wrong_passwords_get_no_more_than_five_tries(app) {
        let email = app.verified_account().await;
        let attempts = (0..20)
            .map(|i| json!({ "login": email, "password": format!("{WRONG_PASSWORD}-{i}") }))
            .collect();
        let answers = app.post_concurrently("/v1/login", attempts).await;
        let statuses: Vec<u16> = answers.iter().map(|(status, _)| *status).collect();
        let checked = statuses.iter().filter(|s| **s == 401).count();
        let limited = statuses.iter().filter(|s| **s == 429).count();
        // Each attempt claims the login until its outcome is written, so a burst is
        // judged one attempt at a time: never more than the five free guesses.
        assert!((1..=5).contains(&checked), "{statuses:?}");
        assert_eq!(checked + limited, 20, "{statuses:?}");
    }
}

/// The stored password hash of the account with this (canonical) email.
async fn stored_hash(app: &TestApp, email: &str) -> String {
    let email = accounts::values::email::EmailAddress::parse(email).expect("an email");
    accounts::records::lookup::find_by_email(app.app.store.as_ref(), &email)
        .await
        .expect("the store answers")
        .expect("the account exists")
        .password_hash
        .0
}

on_both_backends! {
    async fn a_login_upgrades_a_hash_made_with_weaker_parameters(app) {
        let email = app.verified_account().await;
        // Replace the stored hash with one of the same password at a lower cost, as if
        // the account predated a raise of ARGON2_MEMORY_KIB.
        let weak = accounts::credentials::password::PasswordHasher::new(accounts::credentials::password::HashParams {
            memory_kib: 8_192,
            iterations: 1,
            parallelism: 1,
        })
        .expect("a hasher");
        let password = accounts::values::new_password::NewPassword::parse(
            &accounts::values::secret::Secret::new(PASSWORD),
            None,
            None,
        )
        .unwrap_or_else(|_| panic!("the test password meets the policy"));
        let weak_hash = weak.hash(&password).await.expect("a weak hash");
        let parsed = accounts::values::email::EmailAddress::parse(&email).expect("an email");
        let user = accounts::records::lookup::find_by_email(app.app.store.as_ref(), &parsed)
            .await
            .expect("the store answers")
            .expect("the account exists");
        app.app
            .store
            .write(accounts::store::Write::update(
                accounts::records::keys::user(&user.id),
                vec![accounts::store::Change::set(
                    accounts::records::attr::PASSWORD_HASH,
                    weak_hash.0.as_str(),
                )],
            ))
            .await
            .expect("the hash is replaced");
        assert!(stored_hash(&app, &email).await.contains("m=8192,t=1,p=1"));

        app.log_in(&email, false).await;

        let upgraded = stored_hash(&app, &email).await;
        assert!(upgraded.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{upgraded}");
        app.log_in(&email, false).await;
    }
}
