//! Signing up: `POST /v1/signup` and `POST /v1/signup/correct-email`.

use api_tests::{PASSWORD, TestApp, body, on_both_backends, unique_email};
use serde_json::json;

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
}

#[tokio::test]
async fn the_harness_serves_health() {
    let app = TestApp::spawn(api_tests::Backend::Memory).await;
    assert_eq!(app.health().await.status(), 200);
    let _ = PASSWORD;
}
