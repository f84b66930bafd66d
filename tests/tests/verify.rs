//! Verifying an email address: `POST /v1/email/verify` (link token or 6-digit code),
//! `POST /v1/email/verify/resend`, and the local server's verify page and mail viewer.

use std::time::{Duration, Instant};

use accounts::clock::Clock;
use api_tests::assert::problem;
use api_tests::{
    Backend, Mail, TestApp, body, email_verified, median, on_both_backends, on_both_backends_with,
    sorted_keys, unique_email,
};
use serde_json::{Value, json};

/// How long a verification link and code work.
const DAY: i64 = 24 * 3_600;

/// Signs `email` up and returns its verification email.
async fn signed_up(app: &TestApp, email: &str) -> Mail {
    assert_eq!(app.sign_up(email).await.status(), 202);
    app.last_mail_to(email)
        .await
        .expect("a verification email after signup")
}

/// A new address, signed up, with its verification email.
async fn new_account(app: &TestApp) -> (String, Mail) {
    let email = unique_email();
    let mail = signed_up(app, &email).await;
    (email, mail)
}

fn token(mail: &Mail) -> String {
    mail.link_token("/verify-email")
        .unwrap_or_else(|| panic!("a verification link in:\n{}", mail.text))
}

fn code(mail: &Mail) -> String {
    mail.code()
        .unwrap_or_else(|| panic!("a 6-digit code in:\n{}", mail.text))
}

/// A 6-digit code that is not `right`.
fn wrong_code(right: &str, offset: u32) -> String {
    let right: u32 = right.parse().expect("a numeric code");
    format!("{:06}", (right + offset) % 1_000_000)
}

async fn expect_verified(response: reqwest::Response) {
    assert_eq!(response.status(), 200);
    assert_eq!(body(response).await, json!({"status": "verified"}));
}

async fn verify_token(app: &TestApp, token: &str) -> reqwest::Response {
    app.verify_email(&json!({ "token": token })).await
}

async fn verify_code(app: &TestApp, email: &str, code: &str) -> reqwest::Response {
    app.verify_email(&json!({ "email": email, "code": code }))
        .await
}

async fn resend(app: &TestApp, email: &str) -> reqwest::Response {
    app.resend_verification(&json!({ "email": email })).await
}

/// Whether the store has the account of `email` as verified.
async fn is_verified(app: &TestApp, email: &str) -> bool {
    email_verified(&app.app, email)
        .await
        .expect("the account exists")
}

/// Submits the verify page's form, as the browser does.
async fn post_verify_form(app: &TestApp, token: &str) -> reqwest::Response {
    app.post_form("/verify-email", &[("token", token)]).await
}

/// Sends `count` different wrong codes for `email`, each refused as `invalid_code`.
async fn guess_wrong(app: &TestApp, email: &str, right: &str, count: u32) {
    for offset in 1..=count {
        let wrong = wrong_code(right, offset);
        problem(verify_code(app, email, &wrong).await, 400, "invalid_code").await;
    }
}

/// Sends `count` different wrong codes for `email` all at once; asserts that each is
/// refused as `invalid_code`.
async fn guess_wrong_concurrently(app: &TestApp, email: &str, right: &str, count: u32) {
    let guesses = (1..=count)
        .map(|offset| json!({ "email": email, "code": wrong_code(right, offset) }))
        .collect();
    for (status, problem) in app.post_concurrently("/v1/email/verify", guesses).await {
        assert_eq!(status, 400, "{problem}");
        assert_eq!(problem["code"], "invalid_code", "{problem}");
    }
}

on_both_backends! {
    async fn the_emailed_link_verifies_the_address_once(app) {
        let (email, mail) = new_account(&app).await;
        assert!(!is_verified(&app, &email).await);

        expect_verified(verify_token(&app, &token(&mail)).await).await;
        assert!(is_verified(&app, &email).await);

        problem(verify_token(&app, &token(&mail)).await, 400, "invalid_token").await;
        // The code of the same email died with the link.
        problem(verify_code(&app, &email, &code(&mail)).await, 400, "invalid_code").await;
        // A verified account gets no further verification email.
        app.clock.advance(61);
        assert_eq!(resend(&app, &email).await.status(), 202);
        assert_eq!(app.mail_to(&email).await.len(), 1);
    }

    async fn the_emailed_code_verifies_the_address_once(app) {
        let (email, mail) = new_account(&app).await;

        expect_verified(verify_code(&app, &email, &code(&mail)).await).await;
        assert!(is_verified(&app, &email).await);

        problem(verify_code(&app, &email, &code(&mail)).await, 400, "invalid_code").await;
        problem(verify_token(&app, &token(&mail)).await, 400, "invalid_token").await;
    }

    async fn the_code_verifies_whatever_the_case_of_the_typed_address(app) {
        let (email, mail) = new_account(&app).await;
        let shouted = email.to_uppercase();
        assert_ne!(shouted, email);

        expect_verified(verify_code(&app, &shouted, &code(&mail)).await).await;
        assert!(is_verified(&app, &email).await);
    }

    async fn the_link_and_the_code_work_until_just_before_24_hours(app) {
        let (by_link, link_mail) = new_account(&app).await;
        let (by_code, code_mail) = new_account(&app).await;

        app.clock.advance(DAY - 60);
        expect_verified(verify_token(&app, &token(&link_mail)).await).await;
        expect_verified(verify_code(&app, &by_code, &code(&code_mail)).await).await;
        assert!(is_verified(&app, &by_link).await);
        assert!(is_verified(&app, &by_code).await);
    }

    async fn the_link_and_the_code_expire_after_24_hours(app) {
        let (by_link, link_mail) = new_account(&app).await;
        let (by_code, code_mail) = new_account(&app).await;

        app.clock.advance(DAY);
        problem(verify_token(&app, &token(&link_mail)).await, 400, "token_expired").await;
        // A code names an address, so its answers never tell an expired verification
        // from an unknown address: `invalid_code` for both.
        problem(
            verify_code(&app, &by_code, &code(&code_mail)).await,
            400,
            "invalid_code",
        )
        .await;
        assert!(!is_verified(&app, &by_link).await);
        assert!(!is_verified(&app, &by_code).await);
    }

    async fn five_wrong_codes_kill_the_code_until_a_resend(app) {
        let (email, mail) = new_account(&app).await;
        let right = code(&mail);
        guess_wrong(&app, &email, &right, 5).await;
        problem(verify_code(&app, &email, &right).await, 400, "invalid_code").await;
        assert!(!is_verified(&app, &email).await);

        app.clock.advance(61);
        assert_eq!(resend(&app, &email).await.status(), 202);
        let mails = app.mail_to(&email).await;
        assert_eq!(mails.len(), 2);
        let fresh = code(&mails[0]);
        expect_verified(verify_code(&app, &email, &fresh).await).await;
        assert!(is_verified(&app, &email).await);
    }

    async fn four_wrong_codes_leave_the_right_code_working(app) {
        let (email, mail) = new_account(&app).await;
        let right = code(&mail);
        guess_wrong(&app, &email, &right, 4).await;
        expect_verified(verify_code(&app, &email, &right).await).await;
    }

    async fn concurrent_wrong_codes_count_at_most_five_attempts_in_total(app) {
        let (email, mail) = new_account(&app).await;
        let right = code(&mail);
        guess_wrong_concurrently(&app, &email, &right, 10).await;
        // Ten guesses used up the five attempts: the right code no longer works.
        problem(verify_code(&app, &email, &right).await, 400, "invalid_code").await;
        assert!(!is_verified(&app, &email).await);
    }

    async fn four_concurrent_wrong_codes_leave_the_right_code_working(app) {
        let (email, mail) = new_account(&app).await;
        let right = code(&mail);
        guess_wrong_concurrently(&app, &email, &right, 4).await;
        expect_verified(verify_code(&app, &email, &right).await).await;
    }

    async fn a_garbage_token_is_invalid(app) {
        let (email, mail) = new_account(&app).await;
        let real = token(&mail);
        let mut tampered = real.clone();
        let last = tampered.pop().expect("a non-empty token");
        tampered.push(if last == 'A' { 'B' } else { 'A' });
        let selector_only = format!("{}.", real.split('.').next().expect("a selector"));
        for garbage in ["abc", "x.y", "", ".", tampered.as_str(), selector_only.as_str()] {
            let problem = problem(verify_token(&app, garbage).await, 400, "invalid_token").await;
            assert_eq!(problem["type"], "about:blank");
        }
        assert!(!is_verified(&app, &email).await);
        // None of it harmed the real link.
        expect_verified(verify_token(&app, &real).await).await;
    }

    async fn a_malformed_code_is_invalid(app) {
        let (email, mail) = new_account(&app).await;
        for malformed in ["12345", "abcdef", "1234567", "", "12 345"] {
            problem(verify_code(&app, &email, malformed).await, 400, "invalid_code").await;
        }
        // Malformed codes are not counted against the five attempts.
        expect_verified(verify_code(&app, &email, &code(&mail)).await).await;
    }

    async fn an_unknown_address_with_a_code_looks_like_a_wrong_code(app) {
        let (email, mail) = new_account(&app).await;
        let wrong = wrong_code(&code(&mail), 1);
        let known = problem(verify_code(&app, &email, &wrong).await, 400, "invalid_code").await;
        let unknown = problem(
            verify_code(&app, &unique_email(), &wrong).await,
            400,
            "invalid_code",
        )
        .await;
        assert_eq!(known, unknown);
    }

    async fn a_verify_body_must_be_a_token_or_an_email_and_a_code(app) {
        let (email, mail) = new_account(&app).await;
        let (token, code) = (token(&mail), code(&mail));
        let invalid = [
            json!({ "token": token, "email": email, "code": code }),
            json!({ "token": token, "code": code }),
            json!({ "token": token, "email": email }),
            json!({}),
            json!({ "email": email }),
            json!({ "code": code }),
            json!({ "token": token, "email_verified": true }),
            json!({ "email": email, "code": code, "id": "someone-else" }),
        ];
        for request in invalid {
            problem(app.verify_email(&request).await, 400, "invalid_request").await;
        }
        assert!(!is_verified(&app, &email).await);
        expect_verified(verify_token(&app, &token).await).await;
    }

    async fn only_the_newest_verification_works(app) {
        let (email, first) = new_account(&app).await;
        app.clock.advance(61);
        assert_eq!(resend(&app, &email).await.status(), 202);
        let mails = app.mail_to(&email).await;
        assert_eq!(mails.len(), 2);
        let newest = &mails[0];
        assert_ne!(token(newest), token(&first));

        problem(verify_token(&app, &token(&first)).await, 400, "invalid_token").await;
        if code(&first) != code(newest) {
            problem(verify_code(&app, &email, &code(&first)).await, 400, "invalid_code")
                .await;
        }
        assert!(!is_verified(&app, &email).await);
        expect_verified(verify_code(&app, &email, &code(newest)).await).await;
        // The newest link was spent with its code.
        problem(verify_token(&app, &token(newest)).await, 400, "invalid_token").await;
    }

    async fn the_newest_link_works_after_a_resend(app) {
        let (email, _first) = new_account(&app).await;
        app.clock.advance(61);
        assert_eq!(resend(&app, &email).await.status(), 202);
        let newest = app.last_mail_to(&email).await.expect("a second email");
        expect_verified(verify_token(&app, &token(&newest)).await).await;
        assert!(is_verified(&app, &email).await);
    }

    async fn a_link_redeemed_twenty_times_at_once_works_exactly_once(app) {
        let (email, mail) = new_account(&app).await;
        let request = json!({ "token": token(&mail) });
        let answers =
            app.post_concurrently("/v1/email/verify", vec![request; 20]).await;
        let verified = answers.iter().filter(|(status, _)| *status == 200).count();
        assert_eq!(verified, 1, "{answers:?}");
        for (status, answer) in answers {
            if status == 200 {
                assert_eq!(answer, json!({"status": "verified"}));
            } else {
                assert_eq!(status, 400, "{answer}");
                assert_eq!(answer["code"], "invalid_token", "{answer}");
            }
        }
        assert!(is_verified(&app, &email).await);
    }

    async fn a_code_redeemed_ten_times_at_once_works_exactly_once(app) {
        let (email, mail) = new_account(&app).await;
        let request = json!({ "email": email, "code": code(&mail) });
        let answers = app.post_concurrently("/v1/email/verify", vec![request; 10]).await;
        let verified = answers.iter().filter(|(status, _)| *status == 200).count();
        assert_eq!(verified, 1, "{answers:?}");
        for (status, answer) in answers.iter().filter(|(status, _)| *status != 200) {
            assert_eq!(*status, 400, "{answer}");
            assert_eq!(answer["code"], "invalid_code", "{answer}");
        }
        assert!(is_verified(&app, &email).await);
    }

    async fn concurrent_resends_send_one_email(app) {
        let (email, _) = new_account(&app).await;
        app.clock.advance(61);
        let requests = vec![json!({ "email": email }); 10];
        for (status, answer) in app.post_concurrently("/v1/email/verify/resend", requests).await {
            assert_eq!(status, 202, "{answer}");
            assert_eq!(answer, json!({"status": "verification_sent"}));
        }
        let mails = app.mail_to(&email).await;
        assert_eq!(mails.len(), 2);
        // The one email sent carries the verification that is stored.
        expect_verified(verify_token(&app, &token(&mails[0])).await).await;
    }

    async fn resend_answers_the_same_for_every_address(app) {
        let (unverified, _) = new_account(&app).await;
        let verified = unique_email();
        app.sign_up_verified(&verified).await;
        app.clock.advance(61);

        let mut answers = Vec::new();
        for address in [unique_email(), verified.clone(), unverified.clone()] {
            let response = resend(&app, &address).await;
            let status = response.status().as_u16();
            let content_type = response.headers().get("content-type").cloned();
            let text = response.text().await.expect("a body");
            answers.push((status, content_type, text));
        }
        assert_eq!(answers[0].0, 202);
        assert_eq!(
            serde_json::from_str::<Value>(&answers[0].2).expect("JSON"),
            json!({"status": "verification_sent"})
        );
        assert_eq!(answers[0], answers[1]);
        assert_eq!(answers[0], answers[2]);
        // Only the unverified account got mail.
        assert_eq!(app.mail_to(&unverified).await.len(), 2);
        assert_eq!(app.mail_to(&verified).await.len(), 1);
    }

    async fn a_resend_within_a_minute_of_the_last_email_sends_nothing(app) {
        let (email, _) = new_account(&app).await;
        app.clock.advance(59);
        assert_eq!(resend(&app, &email).await.status(), 202);
        assert_eq!(app.mail_to(&email).await.len(), 1);

        app.clock.advance(2);
        assert_eq!(resend(&app, &email).await.status(), 202);
        assert_eq!(app.mail_to(&email).await.len(), 2);

        // The minute starts again from the resent email.
        app.clock.advance(30);
        assert_eq!(resend(&app, &email).await.status(), 202);
        assert_eq!(app.mail_to(&email).await.len(), 2);
    }

    async fn at_most_five_verification_emails_go_to_an_address_per_hour(app) {
        let (email, _) = new_account(&app).await;
        // The signup email is the first of the hour.
        for sent in 2..=5 {
            app.clock.advance(61);
            let response = resend(&app, &email).await;
            assert_eq!(response.status(), 202);
            assert_eq!(body(response).await, json!({"status": "verification_sent"}));
            assert_eq!(app.mail_to(&email).await.len(), sent);
        }
        app.clock.advance(61);
        let response = resend(&app, &email).await;
        assert_eq!(response.status(), 202);
        assert_eq!(body(response).await, json!({"status": "verification_sent"}));
        assert_eq!(app.mail_to(&email).await.len(), 5, "a sixth email within the hour");

        // An hour after the first email, a new hour's allowance begins.
        app.clock.advance(3_600 - 5 * 61);
        assert_eq!(resend(&app, &email).await.status(), 202);
        let mails = app.mail_to(&email).await;
        assert_eq!(mails.len(), 6);
        expect_verified(verify_token(&app, &token(&mails[0])).await).await;
    }

    async fn a_verified_account_gets_no_verification_email(app) {
        let email = unique_email();
        app.sign_up_verified(&email).await;
        for _ in 0..2 {
            app.clock.advance(3_601);
            assert_eq!(resend(&app, &email).await.status(), 202);
        }
        assert_eq!(app.mail_to(&email).await.len(), 1);
    }

    async fn an_unknown_address_gets_no_email_from_a_resend(app) {
        let email = unique_email();
        assert_eq!(resend(&app, &email).await.status(), 202);
        assert!(app.mail_to(&email).await.is_empty());
    }

    async fn a_resend_with_an_unknown_field_is_an_invalid_request(app) {
        let (email, _) = new_account(&app).await;
        app.clock.advance(61);
        let response = app
            .resend_verification(&json!({ "email": email, "force": true }))
            .await;
        problem(response, 400, "invalid_request").await;
        assert_eq!(app.mail_to(&email).await.len(), 1);
    }

    async fn the_verify_page_shows_a_form_and_does_not_spend_the_link(app) {
        let (email, mail) = new_account(&app).await;
        let token = token(&mail);
        let page = app.get(&format!("/verify-email?token={token}")).await;
        assert_eq!(page.status(), 200);
        let content_type = page.headers()["content-type"].to_str().expect("ASCII").to_owned();
        assert!(content_type.starts_with("text/html"), "{content_type}");
        let html = page.text().await.expect("an HTML page");
        assert!(html.contains("<form method=\"post\" action=\"/verify-email\""), "{html}");
        assert!(
            html.contains(&format!("<input type=\"hidden\" name=\"token\" value=\"{token}\">")),
            "{html}"
        );
        // Opening the page twice (as a mail scanner might) spends nothing either.
        assert_eq!(app.get(&format!("/verify-email?token={token}")).await.status(), 200);
        assert!(!is_verified(&app, &email).await);

        expect_verified(verify_token(&app, &token).await).await;
    }

    async fn posting_the_verify_page_form_verifies_the_address(app) {
        let (email, mail) = new_account(&app).await;
        let token = token(&mail);
        let page = post_verify_form(&app, &token).await;
        assert_eq!(page.status(), 200);
        let html = page.text().await.expect("an HTML page");
        assert!(html.contains("Your email address is confirmed"), "{html}");
        assert!(is_verified(&app, &email).await);

        // The link is spent: the form now reports it.
        let again = post_verify_form(&app, &token).await;
        assert_eq!(again.status(), 400);
        let html = again.text().await.expect("an HTML page");
        assert!(html.contains("This link was already used"), "{html}");
        problem(verify_token(&app, &token).await, 400, "invalid_token").await;
    }
}

on_both_backends_with! {
    &[("ENUMERATION_FLOOR_MS", "300")];

    async fn resend_takes_as_long_for_unknown_and_unverified_addresses(app) {
        let (known, _) = new_account(&app).await;
        let unknown = unique_email();
        // Warm the connection and both paths up.
        resend(&app, &unknown).await;
        app.clock.advance(3_601);
        resend(&app, &known).await;

        let (mut unknown_times, mut known_times) = (Vec::new(), Vec::new());
        for _ in 0..8 {
            let started = Instant::now();
            assert_eq!(resend(&app, &unknown).await.status(), 202);
            unknown_times.push(started.elapsed());

            // Past the minute and the hourly cap, so this resend really sends an email.
            app.clock.advance(3_601);
            let started = Instant::now();
            assert_eq!(resend(&app, &known).await.status(), 202);
            known_times.push(started.elapsed());
        }
        assert_eq!(app.mail_to(&known).await.len(), 1 + 1 + 8);
        let (unknown_median, known_median) = (median(unknown_times), median(known_times));
        assert!(unknown_median >= Duration::from_millis(300), "{unknown_median:?}");
        assert!(known_median >= Duration::from_millis(300), "{known_median:?}");
        let ratio = known_median.as_secs_f64() / unknown_median.as_secs_f64();
        assert!(
            (1.0 / 1.2..=1.2).contains(&ratio),
            "unknown {unknown_median:?} vs known {known_median:?}"
        );
    }
}

on_both_backends_with! {
    &[("RESENDS_PER_IP_PER_HOUR", "2")];

    async fn resends_from_one_ip_are_limited_per_hour(app) {
        for _ in 0..2 {
            assert_eq!(resend(&app, &unique_email()).await.status(), 202);
        }
        let limited = resend(&app, &unique_email()).await;
        let retry_after: u64 = limited
            .headers()
            .get("retry-after")
            .expect("a Retry-After header")
            .to_str()
            .expect("ASCII")
            .parse()
            .expect("whole seconds");
        assert!((1..=3_600).contains(&retry_after), "{retry_after}");
        problem(limited, 429, "rate_limited").await;

        // The next hour's window lets resends through again.
        app.clock.advance(3_600);
        assert_eq!(resend(&app, &unique_email()).await.status(), 202);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_mail_viewer_lists_sent_mail_newest_first() {
    let app = TestApp::spawn(Backend::Memory).await;
    let (first, first_mail) = new_account(&app).await;
    let first_sent_at = accounts::clock::rfc3339(app.clock.now());
    app.clock.advance(5);
    let (second, _) = new_account(&app).await;
    let second_sent_at = accounts::clock::rfc3339(app.clock.now());

    let response = app.get("/dev/mail.json").await;
    assert_eq!(response.status(), 200);
    let mails = body(response).await;
    let mails = mails.as_array().expect("a JSON array");
    assert_eq!(mails.len(), 2, "{mails:?}");
    for mail in mails {
        assert_eq!(
            sorted_keys(mail),
            ["html", "sent_at", "subject", "text", "to"]
        );
    }
    assert_eq!(mails[0]["to"], second.as_str());
    assert_eq!(mails[0]["sent_at"], second_sent_at.as_str());
    assert_eq!(mails[1]["to"], first.as_str());
    assert_eq!(mails[1]["sent_at"], first_sent_at.as_str());
    assert_eq!(mails[1]["subject"], first_mail.subject.as_str());
    assert_eq!(mails[1]["text"], first_mail.text.as_str());
    assert_eq!(mails[1]["html"], first_mail.html.as_str());
    assert!(
        mails[1]["html"]
            .as_str()
            .is_some_and(|html| html.contains(&token(&first_mail))),
        "the HTML body carries the link"
    );

    let page = app.get("/dev/mail").await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.expect("an HTML page");
    assert!(html.contains("2 emails, newest first."), "{html}");
    assert!(html.contains(&format!("To: {second}")), "{html}");
    assert!(html.contains(&format!("To: {first}")), "{html}");
    assert!(html.contains(&first_mail.subject), "{html}");
    assert!(
        html.find(&format!("To: {second}")) < html.find(&format!("To: {first}")),
        "newest first"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_mail_viewer_is_empty_before_any_mail() {
    let app = TestApp::spawn(Backend::Memory).await;
    let response = app.get("/dev/mail.json").await;
    assert_eq!(response.status(), 200);
    assert_eq!(body(response).await, json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_verify_page_escapes_whatever_token_it_is_given() {
    let app = TestApp::spawn(Backend::Memory).await;
    let page = app
        .get("/verify-email?token=%22%3E%3Cscript%3Ealert(1)%3C%2Fscript%3E")
        .await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.expect("an HTML page");
    assert!(!html.contains("<script>"), "{html}");
    // askama's HTML escaping (the product's one) writes `<` and `>` as `&#60;` and `&#62;`.
    assert!(html.contains("&#60;script&#62;"), "{html}");

    let empty = app.get("/verify-email").await;
    assert_eq!(empty.status(), 200);
    let html = empty.text().await.expect("an HTML page");
    assert!(!html.contains("<form"), "{html}");
}
