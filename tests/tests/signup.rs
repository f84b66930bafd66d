//! Signing up: `POST /v1/signup` and `POST /v1/signup/correct-email`.

use std::time::{Duration, Instant};

use accounts::clock::Clock;
use accounts::records::{attr, keys, unverified_day};
use accounts::store::schema::UNVERIFIED_BY_DAY;
use accounts::store::{Item, Query};
use api_tests::assert::{complete_problem, json_status};
use api_tests::{
    BASE_URL, Mail, PASSWORD, TestApp, body, median, on_both_backends, on_both_backends_with,
    signup_body, unique_email, unique_username,
};
use reqwest::header::{CACHE_CONTROL, CONTENT_TYPE, RETRY_AFTER};
use serde_json::{Value, json};

/// The subject of the verification email.
const VERIFY_SUBJECT: &str = "Confirm your email address";
/// The subject of the "you already have an account" email.
const EXISTS_SUBJECT: &str = "You already have an account";
/// For tests that sign up more often than the default per-IP limit would allow.
const MANY_SIGNUPS: &[(&str, &str)] = &[("SIGNUPS_PER_IP_PER_HOUR", "1000")];

fn verification_sent() -> Value {
    json!({ "status": "verification_sent" })
}

/// Asserts a `202 {"status": "verification_sent"}` answer.
async fn assert_verification_sent(response: reqwest::Response) {
    json_status(response, 202, "verification_sent").await;
}

/// The field errors of a problem, sorted, as `(field, code)` pairs.
fn field_errors(problem: &Value) -> Vec<(String, String)> {
    let mut errors: Vec<(String, String)> = problem["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("no errors in {problem}"))
        .iter()
        .map(|e| {
            (
                e["field"].as_str().unwrap_or_default().to_owned(),
                e["code"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    errors.sort();
    errors
}

fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> = expected
        .iter()
        .map(|(f, c)| ((*f).to_owned(), (*c).to_owned()))
        .collect();
    pairs.sort();
    pairs
}

/// [`signup_body`] for a new address, with `field` set to `value`.
fn new_signup_with(field: &str, value: Value) -> Value {
    let mut signup = signup_body(&unique_email());
    signup[field] = value;
    signup
}

/// Asserts that `signup` is refused with `400 code` and exactly the field errors
/// `expected`, and that nothing was created for or mailed to its address.
async fn assert_refused(app: &TestApp, signup: &Value, code: &str, expected: &[(&str, &str)]) {
    let email = signup["email"].as_str().expect("an email in the signup");
    let problem = complete_problem(app.signup(signup).await, 400, code).await;
    assert_eq!(field_errors(&problem), pairs(expected), "{signup}");
    assert_untouched(app, email).await;
}

/// The claim on an email address (in its canonical form), if any.
async fn claim(app: &TestApp, canonical: &str) -> Option<Item> {
    app.app
        .store
        .get(&keys::email_claim(canonical))
        .await
        .expect("the store answers")
}

/// The id of the account that claims an address (in its canonical form).
async fn claimant(app: &TestApp, canonical: &str) -> String {
    claim(app, canonical)
        .await
        .unwrap_or_else(|| panic!("no claim on {canonical}"))
        .s(attr::USER_ID)
        .expect("a claim names its account")
        .to_owned()
}

/// The stored account that claims an address (in its canonical form).
async fn account(app: &TestApp, canonical: &str) -> Item {
    let id = claimant(app, canonical).await;
    app.app
        .store
        .get(&keys::user(&id))
        .await
        .expect("the store answers")
        .expect("the claimed account exists")
}

/// Every unverified account in this test's store (its own table or memory store).
async fn unverified_accounts(app: &TestApp) -> Vec<Item> {
    let now = app.clock.now();
    let mut days = vec![unverified_day(now - 2 * 3_600), unverified_day(now)];
    days.dedup();
    let mut accounts = Vec::new();
    for day in days {
        let page = app
            .app
            .store
            .query(
                &Query::partition(day)
                    .on_index(UNVERIFIED_BY_DAY.name)
                    .limit(1_000),
            )
            .await
            .expect("the store answers");
        accounts.extend(page.items);
    }
    accounts
}

/// Nothing was created for `email` (given exactly as the tests generate it: already
/// canonical) and nothing was mailed to it.
async fn assert_untouched(app: &TestApp, email: &str) {
    assert!(app.mail_to(email).await.is_empty(), "mail went to {email}");
    assert!(claim(app, email).await.is_none(), "{email} was claimed");
}

fn count(mails: &[Mail], subject: &str) -> usize {
    mails.iter().filter(|m| m.subject == subject).count()
}

async fn post_raw(
    app: &TestApp,
    path: &str,
    content_type: Option<&str>,
    raw: impl Into<reqwest::Body>,
) -> reqwest::Response {
    let mut request = app.http.post(format!("{}{path}", app.address)).body(raw);
    if let Some(content_type) = content_type {
        request = request.header(CONTENT_TYPE, content_type);
    }
    request.send().await.expect("the request is sent")
}

/// Every URL in a text.
fn urls(text: &str) -> Vec<&str> {
    text.split_whitespace()
        .filter_map(|word| word.find("http").map(|at| &word[at..]))
        .collect()
}

/// Each ASCII character of `text` as its full-width form (NFKC folds them back).
fn full_width(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '!'..='~' => char::from_u32(c as u32 + 0xFEE0).unwrap_or(c),
            _ => c,
        })
        .collect()
}

on_both_backends! {
    async fn a_new_address_gets_an_account_and_a_verification_email(app) {
        let email = unique_email();
        let response = app.sign_up(&email).await;
        assert_eq!(response.status(), 202);
        assert_eq!(body(response).await, json!({"status": "verification_sent"}));
        let mail = app.last_mail_to(&email).await.expect("a verification email");
        assert!(mail.link_token("/verify-email").is_some(), "{}", mail.text);
        assert!(mail.code().is_some(), "{}", mail.text);
    }

    async fn a_signup_answers_202_json_that_is_not_cached(app) {
        let response = app.sign_up(&unique_email()).await;
        assert_eq!(response.status(), 202);
        assert_eq!(response.headers()[CONTENT_TYPE], "application/json");
        assert_eq!(response.headers()[CACHE_CONTROL], "no-store");
        assert_eq!(body(response).await, verification_sent());
    }

    async fn a_signup_with_a_username_and_full_name_keeps_both(app) {
        let email = unique_email();
        let username = format!("Ada_{}", &unique_username()[5..]);
        let response = app
            .signup(&json!({
                "email": email,
                "password": PASSWORD,
                "account_type": "client",
                "username": username,
                "full_name": "  Ada Lovelace  ",
            }))
            .await;
        assert_verification_sent(response).await;
        let user = account(&app, &email).await;
        assert_eq!(user.s(attr::EMAIL), Some(email.as_str()));
        assert_eq!(user.s(attr::USERNAME), Some(username.as_str()));
        assert_eq!(
            user.s(attr::USERNAME_CANONICAL),
            Some(username.to_lowercase().as_str())
        );
        assert_eq!(user.s(attr::FULL_NAME), Some("Ada Lovelace"));
        assert_eq!(user.s(attr::ACCOUNT_TYPE), Some("client"));
        assert_eq!(user.bool(attr::EMAIL_VERIFIED), Some(false));
        let username_claim = app
            .app
            .store
            .get(&keys::username_claim(&username.to_lowercase()))
            .await
            .expect("the store answers")
            .expect("the username is claimed");
        assert_eq!(username_claim.s(attr::USER_ID), user.s(attr::USER_ID));
        let mail = app.last_mail_to(&email).await.expect("a verification email");
        assert_eq!(mail.subject, VERIFY_SUBJECT);
    }

    async fn every_account_type_is_accepted(app) {
        for account_type in ["freelancer", "client", "agency"] {
            let email = unique_email();
            let response = app
                .signup(&json!({
                    "email": email,
                    "password": PASSWORD,
                    "account_type": account_type,
                }))
                .await;
            assert_verification_sent(response).await;
            let user = account(&app, &email).await;
            assert_eq!(user.s(attr::ACCOUNT_TYPE), Some(account_type));
        }
    }

    async fn an_unknown_account_type_is_an_invalid_request(app) {
        for account_type in ["admin", "", "staff"] {
            let signup = new_signup_with("account_type", json!(account_type));
            assert_refused(&app, &signup, "invalid_request", &[("account_type", "invalid")]).await;
        }
        assert!(unverified_accounts(&app).await.is_empty());
    }

    async fn a_full_name_over_100_characters_is_an_invalid_request(app) {
        let mut signup = new_signup_with("full_name", json!("é".repeat(101)));
        assert_refused(&app, &signup, "invalid_request", &[("full_name", "invalid")]).await;
        signup["full_name"] = json!("é".repeat(100));
        assert_verification_sent(app.signup(&signup).await).await;
    }

    async fn a_duplicate_signup_answers_like_a_new_one_and_creates_no_second_account(app) {
        let email = unique_email();
        let first = app.sign_up(&email).await;
        let first_status = first.status();
        let first_type = first.headers()[CONTENT_TYPE].clone();
        let first_body = body(first).await;
        let user_before = account(&app, &email).await;

        // Another password and account type change nothing either.
        let second = app
            .signup(&json!({
                "email": email,
                "password": "another-Secret-pass-42",
                "account_type": "agency",
            }))
            .await;
        assert_eq!(second.status(), first_status);
        assert_eq!(second.headers()[CONTENT_TYPE], first_type);
        assert_eq!(body(second).await, first_body);
        assert_eq!(first_body, verification_sent());

        assert_eq!(account(&app, &email).await, user_before);
        let accounts = unverified_accounts(&app).await;
        assert_eq!(accounts.len(), 1);
        assert_eq!(accounts[0].s(attr::USER_ID), user_before.s(attr::USER_ID));
        let mails = app.mail_to(&email).await;
        assert_eq!(mails.len(), 2, "{mails:#?}");
        assert_eq!(mails[0].subject, EXISTS_SUBJECT);
        assert_eq!(mails[1].subject, VERIFY_SUBJECT);
        assert_ne!(mails[0].subject, mails[1].subject);
        assert_eq!(mails[0].to, email);
        assert!(mails[0].link_token("/verify-email").is_none(), "{}", mails[0].text);
        assert!(mails[0].code().is_none(), "{}", mails[0].text);
    }

    async fn a_duplicate_signup_for_a_verified_account_only_notifies_its_owner(app) {
        let email = unique_email();
        app.sign_up_verified(&email).await;
        let user_before = account(&app, &email).await;
        assert_verification_sent(app.sign_up(&email).await).await;
        assert_eq!(account(&app, &email).await, user_before);
        assert!(unverified_accounts(&app).await.is_empty());
        let mails = app.mail_to(&email).await;
        assert_eq!(mails.len(), 2, "{mails:#?}");
        assert_eq!(mails[0].subject, EXISTS_SUBJECT);
    }

    async fn case_and_unicode_variants_of_an_address_are_the_same_account(app) {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let stored = format!("Ada.Lovelace-{id}@example.com");
        let canonical = stored.to_lowercase();
        assert_verification_sent(app.sign_up(&format!("Ada.Lovelace-{id}@Example.COM")).await)
            .await;
        let owner = claimant(&app, &canonical).await;
        assert_eq!(account(&app, &canonical).await.s(attr::EMAIL), Some(stored.as_str()));
        let variants = [
            format!("ada.lovelace-{id}@example.com"),
            format!("ADA.LOVELACE-{id}@EXAMPLE.COM"),
            format!("  Ada.Lovelace-{id}@example.com\n"),
        ];
        for (sent, variant) in variants.iter().enumerate() {
            app.clock.advance(61);
            assert_verification_sent(app.sign_up(variant).await).await;
            assert_eq!(claimant(&app, &canonical).await, owner, "{variant:?}");
            let mails = app.mail_to(&stored).await;
            assert_eq!(mails.len(), sent + 2, "{variant:?}: {mails:#?}");
            // The notice goes to the address on the account, not to the one typed.
            assert_eq!(mails[0].subject, EXISTS_SUBJECT, "{variant:?}");
            assert_eq!(mails[0].to, stored, "{variant:?}");
        }
        assert_eq!(unverified_accounts(&app).await.len(), 1);
        assert_eq!(count(&app.mail_to(&stored).await, VERIFY_SUBJECT), 1);
        // Full-width letters would fold onto the same account too, and are refused
        // rather than stored as a look-alike.
        let lookalike = format!("{}.Lovelace-{id}@example.com", full_width("ADA"));
        let problem = complete_problem(app.sign_up(&lookalike).await, 400, "invalid_email").await;
        assert_eq!(field_errors(&problem), pairs(&[("email", "invalid")]));
    }

    async fn a_decomposed_accent_is_the_same_address_as_a_composed_one(app) {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let composed = format!("jos\u{e9}-{id}@example.com");
        assert_verification_sent(app.sign_up(&composed).await).await;
        let owner = claimant(&app, &composed).await;
        let decomposed = format!("JOSE\u{301}-{id}@example.com");
        assert_verification_sent(app.sign_up(&decomposed).await).await;
        assert_eq!(claimant(&app, &composed).await, owner);
        assert_eq!(unverified_accounts(&app).await.len(), 1);
        let mails = app.mail_to(&composed).await;
        assert_eq!(mails.len(), 2, "{mails:#?}");
        assert_eq!(mails[0].subject, EXISTS_SUBJECT);
        assert_eq!(mails[0].to, composed);
        assert_eq!(mails[1].subject, VERIFY_SUBJECT);
    }

    async fn the_account_exists_notice_is_sent_at_most_once_a_minute(app) {
        let email = unique_email();
        assert_verification_sent(app.sign_up(&email).await).await;
        assert_verification_sent(app.sign_up(&email).await).await;
        assert_eq!(count(&app.mail_to(&email).await, EXISTS_SUBJECT), 1);

        app.clock.advance(30);
        assert_verification_sent(app.sign_up(&email).await).await;
        assert_verification_sent(app.sign_up(&email).await).await;
        assert_eq!(count(&app.mail_to(&email).await, EXISTS_SUBJECT), 1);

        app.clock.advance(31);
        assert_verification_sent(app.sign_up(&email).await).await;
        let mails = app.mail_to(&email).await;
        assert_eq!(count(&mails, EXISTS_SUBJECT), 2);
        assert_eq!(count(&mails, VERIFY_SUBJECT), 1);
        assert_eq!(mails.len(), 3);
    }

    async fn a_username_taken_in_any_case_is_a_conflict(app) {
        let first = unique_email();
        let username = unique_username();
        let mut signup = signup_body(&first);
        signup["username"] = json!(username);
        assert_verification_sent(app.signup(&signup).await).await;

        let second = unique_email();
        let mut signup = signup_body(&second);
        signup["username"] = json!(username.to_uppercase());
        complete_problem(app.signup(&signup).await, 409, "username_taken").await;
        assert_untouched(&app, &second).await;
        assert_eq!(unverified_accounts(&app).await.len(), 1);
    }

    async fn a_taken_username_with_an_existing_email_is_a_conflict_too(app) {
        // Account A holds the username; account B only an address.
        let (a, b) = (unique_email(), unique_email());
        let username = unique_username();
        let mut signup = signup_body(&a);
        signup["username"] = json!(username);
        assert_verification_sent(app.signup(&signup).await).await;
        app.sign_up_verified(&b).await;

        let mut answers = Vec::new();
        for email in [unique_email(), b.clone(), a.clone()] {
            let mut signup = signup_body(&email);
            signup["username"] = json!(username);
            let response = app.signup(&signup).await;
            answers.push(complete_problem(response, 409, "username_taken").await);
        }
        assert_eq!(answers[0], answers[1]);
        assert_eq!(answers[0], answers[2]);
        assert_eq!(account(&app, &b).await.s(attr::USERNAME), None);
        assert_eq!(unverified_accounts(&app).await.len(), 1);
    }

    async fn an_invalid_email_is_refused(app) {
        for email in [
            "",
            "plainaddress",
            "@example.com",
            "user@",
            "user@localhost",
            "us..er@example.com",
            "user@@example.com",
            "us er@example.com",
            "\"quoted\"@example.com",
            "user@127.0.0.1",
        ] {
            let response = app.signup(&signup_body(email)).await;
            let problem = complete_problem(response, 400, "invalid_email").await;
            assert_eq!(field_errors(&problem), pairs(&[("email", "invalid")]), "{email:?}");
        }
        assert!(unverified_accounts(&app).await.is_empty());
    }

    async fn a_password_of_seven_characters_is_too_short_and_eight_are_enough(app) {
        for password in ["Tq8#zLm", "\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}"] {
            let signup = new_signup_with("password", json!(password));
            assert_refused(&app, &signup, "weak_password", &[("password", "too_short")]).await;
        }
        let mut signup = signup_body(&unique_email());
        signup["password"] = json!("Tq8#zLmw");
        assert_verification_sent(app.signup(&signup).await).await;
    }

    async fn a_password_of_129_characters_is_too_long(app) {
        let signup = new_signup_with("password", json!(format!("{}x", "Zq7-".repeat(32))));
        assert_refused(&app, &signup, "weak_password", &[("password", "too_long")]).await;
        assert!(unverified_accounts(&app).await.is_empty());
    }

    async fn a_password_of_128_multibyte_characters_is_accepted(app) {
        let email = unique_email();
        let mut signup = signup_body(&email);
        // 128 characters, 256 bytes: length counts characters.
        signup["password"] = json!("\u{e9}".repeat(128));
        assert_verification_sent(app.signup(&signup).await).await;
        assert!(claim(&app, &email).await.is_some());

        let signup = new_signup_with("password", json!("\u{e9}".repeat(129)));
        assert_refused(&app, &signup, "weak_password", &[("password", "too_long")]).await;
    }

    async fn a_common_password_is_refused(app) {
        for password in ["password123", "PASSWORD123"] {
            let signup = new_signup_with("password", json!(password));
            assert_refused(&app, &signup, "weak_password", &[("password", "common")]).await;
        }
        assert!(unverified_accounts(&app).await.is_empty());
    }

    async fn a_password_containing_the_email_local_part_is_refused(app) {
        let email = unique_email();
        let local = email.split('@').next().unwrap_or_default().to_uppercase();
        let mut signup = signup_body(&email);
        signup["password"] = json!(format!("My-{local}-pw"));
        assert_refused(&app, &signup, "weak_password", &[("password", "contains_email")]).await;
        assert!(unverified_accounts(&app).await.is_empty());
    }

    async fn a_password_containing_the_username_is_refused(app) {
        let email = unique_email();
        let username = unique_username();
        let mut signup = signup_body(&email);
        signup["username"] = json!(username);
        signup["password"] = json!(format!("Zz-{}-9", username.to_uppercase()));
        assert_refused(&app, &signup, "weak_password", &[("password", "contains_username")]).await;
        let username_claim = app
            .app
            .store
            .get(&keys::username_claim(&username))
            .await
            .expect("the store answers");
        assert!(username_claim.is_none());
    }

    async fn a_password_with_several_weaknesses_lists_each_of_them(app) {
        let email = unique_email();
        let username = unique_username();
        let local = email.split('@').next().unwrap_or_default().to_owned();
        let mut password = format!("{local}{username}");
        while password.chars().count() < 129 {
            password.push('q');
        }
        let mut signup = signup_body(&email);
        signup["username"] = json!(username);
        signup["password"] = json!(password);
        let weaknesses = [
            ("password", "too_long"),
            ("password", "contains_email"),
            ("password", "contains_username"),
        ];
        assert_refused(&app, &signup, "weak_password", &weaknesses).await;
    }

    async fn an_invalid_username_is_refused(app) {
        for username in ["ab", "a b c", "_abc", "abc-", "a@b.c", "\u{fc}n\u{ef}code"] {
            let signup = new_signup_with("username", json!(username));
            assert_refused(&app, &signup, "invalid_username", &[("username", "invalid")]).await;
        }
        assert!(unverified_accounts(&app).await.is_empty());
    }

    async fn an_unknown_field_is_an_invalid_request_and_creates_nothing(app) {
        for (field, value) in [
            ("email_verified", json!(true)),
            ("id", json!("00000000-0000-0000-0000-000000000000")),
            ("roles", json!(["admin"])),
        ] {
            let email = unique_email();
            let mut signup = signup_body(&email);
            signup[field] = value;
            complete_problem(app.signup(&signup).await, 400, "invalid_request").await;
            assert_untouched(&app, &email).await;
        }
        assert!(unverified_accounts(&app).await.is_empty());
    }

    async fn malformed_json_is_an_invalid_request(app) {
        let email = unique_email();
        for raw in [
            format!("{{\"email\": \"{email}\", "),
            "not json".to_owned(),
            String::new(),
            "[]".to_owned(),
            "null".to_owned(),
            format!("{{\"email\": \"{email}\", \"password\": 12345678, \"account_type\": \"client\"}}"),
            format!("{{\"email\": \"{email}\", \"account_type\": \"client\"}}"),
        ] {
            let response = post_raw(&app, "/v1/signup", Some("application/json"), raw.clone()).await;
            complete_problem(response, 400, "invalid_request").await;
            assert_untouched(&app, &email).await;
        }
    }

    async fn a_body_that_is_not_json_is_an_unsupported_media_type(app) {
        let email = unique_email();
        let raw = signup_body(&email).to_string();
        for content_type in [Some("text/plain"), Some("application/x-www-form-urlencoded"), None] {
            let response = post_raw(&app, "/v1/signup", content_type, raw.clone()).await;
            complete_problem(response, 415, "unsupported_media_type").await;
            assert_untouched(&app, &email).await;
        }
    }

    async fn a_body_over_16_kib_is_payload_too_large(app) {
        let email = unique_email();
        let mut signup = signup_body(&email);
        signup["full_name"] = json!(format!("Ada{}", " ".repeat(17 * 1024)));
        let response =
            post_raw(&app, "/v1/signup", Some("application/json"), signup.to_string()).await;
        complete_problem(response, 413, "payload_too_large").await;
        assert_untouched(&app, &email).await;

        // One byte over is already too much.
        signup["full_name"] = json!("Ada");
        let padding = 16 * 1024 + 1 - signup.to_string().len();
        signup["full_name"] = json!(format!("Ada{}", " ".repeat(padding)));
        let raw = signup.to_string();
        assert_eq!(raw.len(), 16 * 1024 + 1);
        let response = post_raw(&app, "/v1/signup", Some("application/json"), raw).await;
        complete_problem(response, 413, "payload_too_large").await;
        assert_untouched(&app, &email).await;
    }

    async fn a_body_of_exactly_16_kib_is_accepted(app) {
        let email = unique_email();
        let mut signup = signup_body(&email);
        signup["full_name"] = json!("Ada");
        let padding = 16 * 1024 - signup.to_string().len();
        signup["full_name"] = json!(format!("Ada{}", " ".repeat(padding)));
        let raw = signup.to_string();
        assert_eq!(raw.len(), 16 * 1024);
        let response = post_raw(&app, "/v1/signup", Some("application/json"), raw).await;
        assert_verification_sent(response).await;
        assert_eq!(account(&app, &email).await.s(attr::FULL_NAME), Some("Ada"));
    }

    async fn get_on_signup_is_method_not_allowed(app) {
        complete_problem(app.get("/v1/signup").await, 405, "method_not_allowed").await;
        complete_problem(app.get("/v1/signup/correct-email").await, 405, "method_not_allowed").await;
    }

    async fn an_unknown_path_is_a_not_found_problem(app) {
        complete_problem(app.get("/v1/nope").await, 404, "not_found").await;
        let response = app.post("/v1/signup/nope", &signup_body(&unique_email())).await;
        complete_problem(response, 404, "not_found").await;
    }

    async fn links_in_emails_come_from_configuration_not_request_headers(app) {
        let email = unique_email();
        for _ in 0..2 {
            let response = app
                .http
                .post(format!("{}/v1/signup", app.address))
                // A foreign Host is refused by the local server itself (see
                // tests/tests/local_server.rs); the Lambda entry's test sends one.
                .header("X-Forwarded-Host", "evil.example")
                .header("X-Forwarded-Proto", "http")
                .header("X-Forwarded-For", "6.6.6.6")
                .header("Forwarded", "host=evil.example;for=6.6.6.6")
                .json(&signup_body(&email))
                .send()
                .await
                .expect("the request is sent");
            assert_verification_sent(response).await;
        }
        let mails = app.mail_to(&email).await;
        assert_eq!(mails.len(), 2, "{mails:#?}");
        let verification = mails
            .iter()
            .find(|m| m.subject == VERIFY_SUBJECT)
            .expect("a verification email");
        assert!(
            verification.link_token("/verify-email").is_some(),
            "{}",
            verification.text
        );
        for mail in &mails {
            assert!(!mail.text.contains("evil.example"), "{}", mail.text);
            assert!(!mail.html.contains("evil.example"), "{}", mail.html);
            assert!(!mail.text.contains("6.6.6.6"), "{}", mail.text);
            let links = urls(&mail.text);
            assert!(!links.is_empty(), "{}", mail.text);
            for link in links {
                assert!(link.starts_with(&format!("{BASE_URL}/")), "{link}");
            }
        }
    }

    async fn the_health_check_answers_ok(app) {
        let response = app.health().await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()[CONTENT_TYPE], "application/json");
        assert_eq!(body(response).await, json!({"status": "ok"}));
    }

    async fn correcting_an_unverified_address_moves_the_account_to_the_new_one(app) {
        let (old, new) = (unique_email(), unique_email());
        assert_verification_sent(app.sign_up(&old).await).await;
        let owner = claimant(&app, &old).await;
        let old_token = app.verification_token(&old).await;

        let response = app
            .correct_email(&json!({"email": old, "password": PASSWORD, "new_email": new}))
            .await;
        assert_verification_sent(response).await;

        let mails = app.mail_to(&new).await;
        assert_eq!(mails.len(), 1, "{mails:#?}");
        assert_eq!(mails[0].subject, VERIFY_SUBJECT);
        assert_eq!(mails[0].to, new);
        let new_token = mails[0].link_token("/verify-email").expect("a link");
        assert_eq!(app.mail_to(&old).await.len(), 1);
        assert!(claim(&app, &old).await.is_none(), "the old claim is freed");
        assert_eq!(claimant(&app, &new).await, owner);
        assert_eq!(account(&app, &new).await.s(attr::EMAIL), Some(new.as_str()));

        let response = app.verify_email(&json!({"token": old_token})).await;
        complete_problem(response, 400, "invalid_token").await;
        let response = app.verify_email(&json!({"token": new_token})).await;
        assert_eq!(response.status(), 200);
        assert_eq!(body(response).await, json!({"status": "verified"}));
        assert_eq!(account(&app, &new).await.bool(attr::EMAIL_VERIFIED), Some(true));

        // The old address is free again: signing up with it makes a new account.
        assert_verification_sent(app.sign_up(&old).await).await;
        let mails = app.mail_to(&old).await;
        assert_eq!(mails.len(), 2, "{mails:#?}");
        assert_eq!(mails[0].subject, VERIFY_SUBJECT);
        assert_ne!(claimant(&app, &old).await, owner);
        assert_eq!(unverified_accounts(&app).await.len(), 1);
    }

    async fn correcting_with_a_wrong_password_changes_nothing(app) {
        let (old, new) = (unique_email(), unique_email());
        assert_verification_sent(app.sign_up(&old).await).await;
        let before = account(&app, &old).await;
        let response = app
            .correct_email(&json!({"email": old, "password": "not-the-password-1", "new_email": new}))
            .await;
        assert_verification_sent(response).await;
        assert_untouched(&app, &new).await;
        assert_eq!(account(&app, &old).await, before);
        assert_eq!(app.mail_to(&old).await.len(), 1);
        // The original link still works.
        let token = app.verification_token(&old).await;
        let response = app.verify_email(&json!({"token": token})).await;
        assert_eq!(response.status(), 200);
    }

    async fn correcting_an_unknown_address_sends_nothing(app) {
        let (old, new) = (unique_email(), unique_email());
        let response = app
            .correct_email(&json!({"email": old, "password": PASSWORD, "new_email": new}))
            .await;
        assert_verification_sent(response).await;
        assert_untouched(&app, &old).await;
        assert_untouched(&app, &new).await;
        assert!(unverified_accounts(&app).await.is_empty());
    }

    async fn correcting_a_verified_account_changes_nothing(app) {
        let (old, new) = (unique_email(), unique_email());
        app.sign_up_verified(&old).await;
        let before = account(&app, &old).await;
        let response = app
            .correct_email(&json!({"email": old, "password": PASSWORD, "new_email": new}))
            .await;
        assert_verification_sent(response).await;
        assert_untouched(&app, &new).await;
        assert_eq!(account(&app, &old).await, before);
        assert_eq!(app.mail_to(&old).await.len(), 1);
    }

    async fn correcting_to_an_address_of_another_account_ends_as_if_the_account_had_moved(app) {
        let (old, other) = (unique_email(), unique_email());
        // Its own password: the other account has the test password.
        let own = "distinct-signup-pass-31";
        let signup = json!({ "email": old, "password": own, "account_type": "client" });
        assert_verification_sent(app.signup(&signup).await).await;
        app.sign_up_verified(&other).await;
        let other_owner = claimant(&app, &other).await;
        let old_link = app.verification_token(&old).await;

        let response = app
            .correct_email(&json!({
                "email": old,
                "password": own,
                "new_email": other.to_uppercase(),
            }))
            .await;
        assert_verification_sent(response).await;

        // The other account is untouched and its owner told; the unverified account
        // left its old address, as a move would, and is now only a pending signup on
        // the other address (so nothing tells that the address was taken).
        assert_eq!(claimant(&app, &other).await, other_owner);
        assert!(claim(&app, &old).await.is_none());
        let mails = app.mail_to(&other).await;
        assert_eq!(mails.len(), 2, "{mails:#?}");
        assert_eq!(mails[0].subject, EXISTS_SUBJECT);
        assert_eq!(mails[0].to, other);
        complete_problem(app.try_log_in(&old, own).await, 401, "invalid_credentials").await;
        complete_problem(app.try_log_in(&other, own).await, 403, "email_not_verified").await;
        // The other account's own password still logs its owner in.
        assert_eq!(app.try_log_in(&other, PASSWORD).await.status(), 200);
        // The retired account's links work no more.
        let stale = app.verify_email(&json!({"token": old_link})).await;
        complete_problem(stale, 400, "invalid_token").await;
    }

    async fn correcting_to_an_invalid_address_is_invalid_email(app) {
        let old = unique_email();
        assert_verification_sent(app.sign_up(&old).await).await;
        let before = account(&app, &old).await;
        for new_email in ["plainaddress", "user@localhost", ""] {
            let response = app
                .correct_email(&json!({"email": old, "password": PASSWORD, "new_email": new_email}))
                .await;
            let problem = complete_problem(response, 400, "invalid_email").await;
            assert_eq!(field_errors(&problem), pairs(&[("new_email", "invalid")]), "{new_email:?}");
        }
        let response = app
            .correct_email(&json!({"email": "nope", "password": PASSWORD, "new_email": unique_email()}))
            .await;
        let problem = complete_problem(response, 400, "invalid_email").await;
        assert_eq!(field_errors(&problem), pairs(&[("email", "invalid")]));
        assert_eq!(account(&app, &old).await, before);
        assert_eq!(app.mail_to(&old).await.len(), 1);
    }

    async fn correcting_with_an_unknown_field_is_an_invalid_request(app) {
        let (old, new) = (unique_email(), unique_email());
        assert_verification_sent(app.sign_up(&old).await).await;
        let response = app
            .correct_email(&json!({
                "email": old,
                "password": PASSWORD,
                "new_email": new,
                "email_verified": true,
            }))
            .await;
        complete_problem(response, 400, "invalid_request").await;
        assert_untouched(&app, &new).await;
    }
}

on_both_backends_with! {
    MANY_SIGNUPS;

    async fn twenty_concurrent_signups_for_one_address_create_one_account(app) {
        let email = unique_email();
        let signups = vec![signup_body(&email); 20];
        for answer in app.post_concurrently("/v1/signup", signups).await {
            assert_eq!(answer, (202, verification_sent()));
        }
        let mails = app.mail_to(&email).await;
        let (verifications, notices) = (count(&mails, VERIFY_SUBJECT), count(&mails, EXISTS_SUBJECT));
        assert_eq!(verifications, 1, "{mails:#?}");
        assert!(notices <= 1, "{mails:#?}");
        assert_eq!(mails.len(), verifications + notices, "{mails:#?}");
        let accounts = unverified_accounts(&app).await;
        assert_eq!(accounts.len(), 1);
        assert_eq!(
            Some(claimant(&app, &email).await.as_str()),
            accounts[0].s(attr::USER_ID)
        );
    }
}

on_both_backends_with! {
    &[("SIGNUPS_PER_IP_PER_HOUR", "3")];

    async fn the_fourth_signup_from_one_ip_in_an_hour_is_rate_limited(app) {
        for _ in 0..3 {
            assert_verification_sent(app.sign_up(&unique_email()).await).await;
        }
        for forwarded_for in [None, Some("6.6.6.6"), Some("10.0.0.7")] {
            let email = unique_email();
            let mut request = app
                .http
                .post(format!("{}/v1/signup", app.address))
                .json(&signup_body(&email));
            if let Some(ip) = forwarded_for {
                request = request.header("X-Forwarded-For", ip);
            }
            let response = request.send().await.expect("the request is sent");
            let retry_after: u64 = response
                .headers()
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok())
                .expect("an integer Retry-After header");
            assert!((1..=3_600).contains(&retry_after), "{retry_after}");
            complete_problem(response, 429, "rate_limited").await;
            assert_untouched(&app, &email).await;
        }
        assert_eq!(unverified_accounts(&app).await.len(), 3);

        app.clock.advance(3_600);
        assert_verification_sent(app.sign_up(&unique_email()).await).await;
    }
}

on_both_backends_with! {
    &[("ENUMERATION_FLOOR_MS", "300"), ("SIGNUPS_PER_IP_PER_HOUR", "1000")];

    async fn an_existing_address_and_a_new_one_take_the_same_time(app) {
        let existing = unique_email();
        app.sign_up_verified(&existing).await;
        let floor = Duration::from_millis(300);
        let (mut known, mut unknown) = (Vec::new(), Vec::new());
        for _ in 0..8 {
            let started = Instant::now();
            assert_verification_sent(app.sign_up(&existing).await).await;
            known.push(started.elapsed());
            let started = Instant::now();
            assert_verification_sent(app.sign_up(&unique_email()).await).await;
            unknown.push(started.elapsed());
        }
        let (known, unknown) = (median(known), median(unknown));
        assert!(known >= floor, "existing: {known:?}");
        assert!(unknown >= floor, "new: {unknown:?}");
        let (low, high) = if known < unknown { (known, unknown) } else { (unknown, known) };
        assert!(
            high.as_secs_f64() <= low.as_secs_f64() * 1.2,
            "existing {known:?} vs new {unknown:?}"
        );
    }
}

#[tokio::test]
async fn the_harness_serves_health() {
    let app = TestApp::spawn(api_tests::Backend::Memory).await;
    assert_eq!(app.health().await.status(), 200);
    let _ = PASSWORD;
}
