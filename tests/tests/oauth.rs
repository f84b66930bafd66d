//! Signing in with Google and Apple (issue 16), against the local OpenID providers (npm
//! `oidc-provider`, started by `scripts/emulators.sh`), on both backends: each branch
//! (a known identity, a new account, an existing account's address), the state, code and
//! ID-token attacks, `return_to`, unlinking, and concurrent callbacks.

use api_tests::assert::{problem, token_pair};
use api_tests::oidc::{Authorization, Person, overrides};
use api_tests::{PASSWORD, TestApp, WRONG_PASSWORD, on_both_backends_with};
use serde_json::Value;

/// A person's first sign-in, finished as a freelancer: the token pair's body.
async fn new_account(app: &TestApp, provider: &str, person: &Person) -> Value {
    let (status, pending) = app.sign_in_with(provider, person).await;
    assert_eq!(status, 200, "{pending}");
    assert_eq!(pending["status"], "account_type_required", "{pending}");
    let created = app
        .oauth_signup(pending["token"].as_str().expect("a token"), "freelancer")
        .await;
    assert_eq!(created.status(), 201);
    created.json().await.expect("a JSON answer")
}

async fn identities(app: &TestApp, access_token: &str) -> Value {
    let answer = app
        .send_authed(
            reqwest::Method::GET,
            "/v1/account/identities",
            access_token,
            None,
        )
        .await;
    assert_eq!(answer.status(), 200);
    answer.json().await.expect("a JSON answer")
}

/// Signs in and expects the refusal `status`/`code`, with nothing made: the person is
/// still unknown afterwards.
async fn assert_refused(app: &TestApp, auth: &Authorization, person: &Person, code: &str) {
    let answer = app.oauth_callback(auth).await;
    problem(answer, 401, code).await;
    let (status, again) = app.sign_in_with(&auth.provider, person).await;
    assert_eq!(status, 200);
    assert_eq!(
        again["status"], "account_type_required",
        "nothing was linked: {again}"
    );
}

on_both_backends_with! { overrides();
    async fn a_new_google_person_picks_an_account_type_and_gets_a_verified_account_and_session(app) {
        let person = Person::gmail();
        let (status, pending) = app.sign_in_with("google", &person).await;
        assert_eq!(status, 200);
        assert_eq!(pending["email"], person.email.as_str());
        assert_eq!(pending["email_verified"], true);
        assert_eq!(pending["full_name"], "Ada Lovelace");
        assert_eq!(pending["return_to"], "/jobs");
        let created = app
            .oauth_signup(pending["token"].as_str().unwrap(), "agency")
            .await;
        assert_eq!(created.status(), 201);
        let tokens: Value = created.json().await.unwrap();
        let access = tokens["access_token"].as_str().unwrap();
        let account: Value = app.account(access).await.json().await.unwrap();
        assert_eq!(account["email_verified"], true);
        assert_eq!(account["account_type"], "agency");
        let linked = identities(&app, access).await;
        assert_eq!(linked["identities"][0]["provider"], "google");
        assert_eq!(linked["password"], false, "no password anyone knows");
        // The token was single use.
        let again = app.oauth_signup(pending["token"].as_str().unwrap(), "client").await;
        problem(again, 400, "oauth_token_invalid").await;
    }

    async fn a_known_identity_logs_in_again_and_the_history_says_google(app) {
        let person = Person::gmail();
        new_account(&app, "google", &person).await;
        let (status, tokens) = app.sign_in_with("google", &person).await;
        assert_eq!(status, 200, "{tokens}");
        assert!(tokens["refresh_token"].is_string(), "{tokens}");
        let access = tokens["access_token"].as_str().unwrap();
        let history: Value = app.login_history(access, "").await.json().await.unwrap();
        let methods: Vec<&str> = history
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|e| e["method"].as_str())
            .collect();
        assert_eq!(methods, ["google", "google"], "{history}");
        // The session's refresh works as any other's.
        let refreshed = app.refresh(tokens["refresh_token"].as_str().unwrap()).await;
        token_pair(refreshed).await;
    }

    async fn apple_sends_the_name_once_and_a_private_relay_address_is_the_accounts_address(app) {
        let mut person = Person::with_email(&format!(
            "{}@privaterelay.appleid.com",
            &person_id()
        ));
        person.is_private_email = true;
        let auth = app.authorize("apple", &person).await;
        assert!(auth.user.is_some(), "Apple's user parameter on the first authorization");
        let pending: Value = app.oauth_callback(&auth).await.json().await.unwrap();
        assert_eq!(pending["status"], "account_type_required", "{pending}");
        assert_eq!(pending["full_name"], "Ada Lovelace");
        assert_eq!(pending["email_verified"], true, "Apple's string \"true\"");
        let created = app.oauth_signup(pending["token"].as_str().unwrap(), "client").await;
        let tokens: Value = created.json().await.unwrap();
        let account: Value = app
            .account(tokens["access_token"].as_str().unwrap())
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(account["email"], person.email.as_str());
        assert_eq!(account["full_name"], "Ada Lovelace");
        let second = app.authorize("apple", &person).await;
        assert_eq!(second.user, None, "the name comes only the first time");
        let (status, _) = (app.oauth_callback(&second).await.status(), ());
        assert_eq!(status, 200);
    }

    async fn a_verified_accounts_address_is_never_linked_without_its_password(app) {
        let email = format!("{}@gmail.com", person_id());
        app.sign_up_verified(&email).await;
        let person = Person::with_email(&email);
        let (status, pending) = app.sign_in_with("google", &person).await;
        assert_eq!(status, 200);
        assert_eq!(pending["status"], "link_required", "{pending}");
        assert!(pending.get("access_token").is_none());
        let token = pending["token"].as_str().unwrap();
        problem(app.oauth_link(token, WRONG_PASSWORD).await, 401, "invalid_credentials").await;
        let linked = app.oauth_link(token, PASSWORD).await;
        assert_eq!(linked.status(), 200);
        let tokens: Value = linked.json().await.unwrap();
        assert!(tokens["access_token"].is_string(), "{tokens}");
        let notices = app.mails_with_subject(&email, "Google was linked to your account").await;
        assert_eq!(notices.len(), 1, "the security notice");
        // From now on Google logs in straight away.
        let (status, again) = app.sign_in_with("google", &person).await;
        assert_eq!(status, 200);
        assert!(again["access_token"].is_string(), "{again}");
    }

    async fn a_pre_registered_unverified_account_gives_its_creator_nothing(app) {
        let email = format!("{}@gmail.com", person_id());
        // Someone else signed the address up, never verified it.
        assert_eq!(app.sign_up(&email).await.status(), 202);
        let person = Person::with_email(&email);
        let tokens = new_account(&app, "google", &person).await;
        assert!(tokens["access_token"].is_string());
        // The squatter's password is gone with their account.
        let squatter = app.try_log_in(&email, PASSWORD).await;
        problem(squatter, 401, "invalid_credentials").await;
    }

    async fn an_address_google_does_not_vouch_for_gets_the_signup_answer_and_an_unverified_account(app) {
        // Verified at Google, but Google is not authoritative for outlook addresses.
        let mut person = Person::with_email(&format!("{}@outlook.example", person_id()));
        person.email_verified = true;
        let (_, pending) = app.sign_in_with("google", &person).await;
        assert_eq!(pending["email_verified"], false, "{pending}");
        let made = app.oauth_signup(pending["token"].as_str().unwrap(), "client").await;
        assert_eq!(made.status(), 202);
        // The account exists but is not verified: the identity is refused like a password.
        let again = app.authorize("google", &person).await;
        problem(app.oauth_callback(&again).await, 403, "email_not_verified").await;
    }

    async fn an_unverified_provider_address_of_an_existing_account_is_answered_as_a_new_one(app) {
        let email = format!("{}@gmail.com", person_id());
        app.sign_up_verified(&email).await;
        let mut person = Person::with_email(&email);
        person.email_verified = false;
        let (_, pending) = app.sign_in_with("google", &person).await;
        assert_eq!(pending["status"], "account_type_required", "nothing said: {pending}");
        let made = app.oauth_signup(pending["token"].as_str().unwrap(), "client").await;
        assert_eq!(made.status(), 202, "the same answer as for a new address");
        // The owner still logs in with the password; nothing was linked.
        let owner = app.try_log_in(&email, PASSWORD).await;
        token_pair(owner).await;
    }

    async fn an_account_with_two_step_still_asks_for_its_second_factor(app) {
        let enrolled = app.enrolled().await;
        let domain = enrolled.email.rsplit_once('@').unwrap().1.to_owned();
        let mut person = Person::with_email(&enrolled.email);
        person.hd = Some(domain);
        let (_, pending) = app.sign_in_with("google", &person).await;
        assert_eq!(pending["status"], "link_required", "{pending}");
        let linked = app.oauth_link(pending["token"].as_str().unwrap(), PASSWORD).await;
        let challenge: Value = linked.json().await.unwrap();
        assert_eq!(challenge["mfa_required"], true, "{challenge}");
        let (_, again) = app.sign_in_with("google", &person).await;
        assert_eq!(again["mfa_required"], true, "{again}");
        let code = app.fresh_code(&enrolled.secret);
        let done = app
            .login_mfa(again["mfa_token"].as_str().unwrap(), "totp", &code)
            .await;
        assert_eq!(done.status(), 200);
    }

    async fn a_state_missing_reused_or_from_another_browser_is_refused(app) {
        let person = Person::gmail();
        let auth = app.authorize("google", &person).await;
        problem(app.oauth_callback_with(&auth, None).await, 400, "oauth_state_invalid").await;
        let other = app.authorize("google", &Person::gmail()).await;
        let foreign = app.oauth_callback_with(&auth, Some(&other.cookie)).await;
        problem(foreign, 400, "oauth_state_invalid").await;
        assert_eq!(app.oauth_callback(&auth).await.status(), 200);
        problem(app.oauth_callback(&auth).await, 400, "oauth_state_invalid").await;
    }

    async fn a_replayed_code_is_refused_by_the_provider(app) {
        let person = Person::gmail();
        let first = app.authorize("google", &person).await;
        assert_eq!(app.oauth_callback(&first).await.status(), 200);
        let mut second = app.authorize("google", &person).await;
        second.code = first.code.clone();
        problem(app.oauth_callback(&second).await, 401, "oauth_failed").await;
    }

    async fn id_tokens_for_another_audience_issuer_time_nonce_or_algorithm_are_refused(app) {
        for mode in ["audience", "issuer", "expired", "nonce", "none", "hs256"] {
            let person = Person::gmail();
            let auth = app.authorize("google", &person).await;
            app.tamper_with(&auth, mode).await;
            assert_refused(&app, &auth, &person, "oauth_failed").await;
        }
    }

    async fn a_key_the_cached_jwks_lacks_is_fetched_once_and_accepted(app) {
        let person = Person::gmail();
        // Caches the JWKS.
        app.sign_in_with("apple", &person).await;
        app.clock.advance(60);
        let auth = app.authorize("apple", &Person::gmail()).await;
        app.tamper_with(&auth, "rotated").await;
        let answer = app.oauth_callback(&auth).await;
        assert_eq!(answer.status(), 200, "{:?}", answer.text().await);
    }

    async fn return_to_on_a_foreign_origin_is_refused_and_an_allowed_one_kept(app) {
        let foreign = app.oauth_start("google", "https://evil.example/steal").await;
        let refused = problem(foreign, 400, "invalid_request").await;
        assert_eq!(refused["errors"][0]["field"], "return_to");
        let protocol_relative = app.oauth_start("google", "//evil.example").await;
        assert_eq!(protocol_relative.status(), 400);
        let allowed = app.oauth_start("google", "https://market.example.test/jobs").await;
        assert_eq!(allowed.status(), 302);
    }

    async fn the_last_way_in_cannot_be_unlinked(app) {
        let tokens = new_account(&app, "google", &Person::gmail()).await;
        let access = tokens["access_token"].as_str().unwrap();
        let refused = app
            .send_authed(reqwest::Method::DELETE, "/v1/account/identities/google", access, None)
            .await;
        problem(refused, 409, "last_way_in").await;
        assert_eq!(identities(&app, access).await["identities"].as_array().unwrap().len(), 1);
    }

    async fn an_identity_unlinks_while_the_password_remains(app) {
        let email = format!("{}@gmail.com", person_id());
        app.sign_up_verified(&email).await;
        let person = Person::with_email(&email);
        let (_, pending) = app.sign_in_with("google", &person).await;
        let tokens: Value = app
            .oauth_link(pending["token"].as_str().unwrap(), PASSWORD)
            .await
            .json()
            .await
            .unwrap();
        let access = tokens["access_token"].as_str().unwrap();
        let unlinked = app
            .send_authed(reqwest::Method::DELETE, "/v1/account/identities/google", access, None)
            .await;
        assert_eq!(unlinked.status(), 204);
        let notices = app.mails_with_subject(&email, "Google was unlinked from your account").await;
        assert_eq!(notices.len(), 1);
        let (_, again) = app.sign_in_with("google", &person).await;
        assert_eq!(again["status"], "link_required", "{again}");
    }

    async fn twenty_concurrent_callbacks_with_one_code_make_one_account_and_one_session(app) {
        let person = Person::gmail();
        new_account(&app, "google", &person).await;
        let auth = app.authorize("google", &person).await;
        let mut calls = tokio::task::JoinSet::new();
        for _ in 0..20 {
            let (http, address, auth) = (app.http.clone(), app.address.clone(), auth.clone());
            calls.spawn(async move {
                http.get(format!("{address}/v1/oauth/google/callback"))
                    .query(&[("code", &auth.code), ("state", &auth.state)])
                    .header(reqwest::header::COOKIE, &auth.cookie)
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
            });
        }
        let mut statuses = Vec::new();
        while let Some(done) = calls.join_next().await {
            statuses.push(done.unwrap().unwrap());
        }
        assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 1, "{statuses:?}");
        assert!(statuses.iter().all(|s| *s == 200 || *s == 400), "{statuses:?}");
        // Two sessions in all: the first sign-in's and the one callback's.
        let (_, tokens) = app.sign_in_with("google", &person).await;
        let sessions: Value = app
            .sessions(tokens["access_token"].as_str().unwrap())
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(sessions.as_array().unwrap().len(), 3, "{sessions}");
    }

    async fn twenty_concurrent_signups_with_one_token_make_one_account(app) {
        let person = Person::gmail();
        let (_, pending) = app.sign_in_with("google", &person).await;
        let body = serde_json::json!({ "token": pending["token"], "account_type": "client" });
        let answers = app
            .post_concurrently("/v1/oauth/signup", vec![body; 20])
            .await;
        let created = answers.iter().filter(|(s, _)| *s == 201).count();
        assert_eq!(created, 1, "{answers:?}");
    }
}

fn person_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..16].to_owned()
}
