//! Mail that is delivered, or known undeliverable: SES's bounce, complaint, delay and
//! reject events (the records AWS documents, in EventBridge's envelope) handed to the
//! `mail-events` function, and what the product then sends and says, on both backends.

use accounts::flows::mail_events::Report;
use api_tests::{PASSWORD, TestApp, body, on_both_backends, unique_email};
use serde_json::json;

const RESET_PAGE: &str = "/reset-password";

/// What `GET /v1/account` says about the address of `email` (a verified account).
async fn email_delivery(app: &TestApp, email: &str) -> String {
    let tokens = app.log_in(email, false).await;
    let account = body(app.account(&tokens.access_token).await).await;
    account["email_delivery"]
        .as_str()
        .unwrap_or_else(|| panic!("no email_delivery in {account}"))
        .to_owned()
}

fn marked(count: usize) -> Report {
    Report {
        marked: count,
        unmatched: 0,
    }
}

on_both_backends! {
    async fn a_hard_bounce_stops_resends_until_the_address_is_corrected(app) {
        let mistyped = unique_email();
        assert_eq!(app.sign_up(&mistyped).await.status(), 202);
        assert_eq!(app.mail_to(&mistyped).await.len(), 1);
        assert_eq!(app.ses_event("bounce-permanent", &mistyped).await, marked(1));

        // A resend after the cooldown answers as always, and sends nothing.
        app.clock.advance(120);
        let resend = app.resend_verification(&json!({ "email": mistyped })).await;
        assert_eq!(resend.status(), 202);
        assert_eq!(app.mail_to(&mistyped).await.len(), 1, "a bounced address was mailed again");

        // The fix: correct-email moves the account, and the new address gets its mail.
        let corrected = unique_email();
        let correction = app
            .correct_email(&json!({ "email": mistyped, "password": PASSWORD, "new_email": corrected }))
            .await;
        assert_eq!(correction.status(), 202);
        assert_eq!(app.mail_to(&corrected).await.len(), 1);
        // A late bounce of the old address marks nobody.
        assert_eq!(
            app.ses_event("bounce-permanent", &mistyped).await,
            Report { marked: 0, unmatched: 1 }
        );
        let token = app.verification_token(&corrected).await;
        assert_eq!(app.verify_email(&json!({ "token": token })).await.status(), 200);
        assert_eq!(email_delivery(&app, &corrected).await, "deliverable");
    }

    async fn a_verified_account_whose_address_bounces_says_so_and_gets_no_mail(app) {
        let email = app.verified_account().await;
        assert_eq!(email_delivery(&app, &email).await, "deliverable");
        assert_eq!(app.ses_event("bounce-permanent", &email).await, marked(1));
        assert_eq!(email_delivery(&app, &email).await, "bounced");

        // "Forgot password" answers as always; nothing goes to the dead address.
        let before = app.mail_to(&email).await.len();
        assert_eq!(app.forgot_password(&email).await.status(), 202);
        assert_eq!(app.mail_to(&email).await.len(), before);
    }

    async fn after_a_complaint_only_mail_the_person_asks_for_is_sent(app) {
        let email = app.verified_account().await;
        assert_eq!(app.ses_event("complaint", &email).await, marked(1));
        assert_eq!(email_delivery(&app, &email).await, "complained");

        // A notice (the password changed) is not sent...
        let tokens = app.log_in(&email, false).await;
        let before = app.mail_to(&email).await.len();
        let change = app
            .change_password(
                &tokens.access_token,
                &json!({ "current_password": PASSWORD, "new_password": "walnut-harbour-73" }),
            )
            .await;
        assert_eq!(change.status(), 200);
        // ...nor the "you already have an account" notice of a signup on the address...
        assert_eq!(app.sign_up(&email).await.status(), 202);
        assert_eq!(app.mail_to(&email).await.len(), before);

        // ...but a reset link the person asks for is.
        assert_eq!(app.forgot_password(&email).await.status(), 202);
        assert_eq!(app.mails_with_link(&email, RESET_PAGE).await.len(), 1);
    }

    async fn a_complaint_never_turns_a_bounce_back_into_a_complaint(app) {
        let email = app.verified_account().await;
        assert_eq!(app.ses_event("bounce-permanent", &email).await, marked(1));
        assert_eq!(
            app.ses_event("complaint", &email).await,
            Report { marked: 0, unmatched: 1 }
        );
        assert_eq!(email_delivery(&app, &email).await, "bounced");
    }

    async fn transient_bounces_delays_and_rejections_mark_nothing(app) {
        let email = app.verified_account().await;
        for fixture in ["bounce-transient", "delivery-delay", "reject"] {
            assert_eq!(app.ses_event(fixture, &email).await, Report::default(), "{fixture}");
        }
        assert_eq!(email_delivery(&app, &email).await, "deliverable");
        let before = app.mail_to(&email).await.len();
        assert_eq!(app.forgot_password(&email).await.status(), 202);
        assert_eq!(app.mail_to(&email).await.len(), before + 1);
    }

    async fn an_event_for_an_address_no_account_has_changes_nothing(app) {
        let nobody = unique_email();
        for fixture in ["bounce-permanent", "complaint"] {
            assert_eq!(
                app.ses_event(fixture, &nobody).await,
                Report { marked: 0, unmatched: 1 },
                "{fixture}"
            );
        }
        // The address is free as ever: a signup on it gets its verification mail.
        assert_eq!(app.sign_up(&nobody).await.status(), 202);
        assert_eq!(app.mail_to(&nobody).await.len(), 1);
    }

    async fn a_malformed_event_is_an_error_so_that_eventbridge_retries_it(app) {
        for event in [json!({}), json!({ "detail": { "eventType": "Bounce", "mail": { "messageId": "m" } } })] {
            let handled = accounts::flows::mail_events::handle_event(&app.app, &event).await;
            assert!(handled.is_err(), "{event} was accepted");
        }
    }
}
