//! What the operator's metrics count (CloudWatch embedded metric format lines; read back
//! here from the process's record of them): signups, verifications, logins by outcome and
//! method, lockouts, 429s by route and second factors, on both backends.
//!
//! The counts are the process's, so the tests of this binary take turns.

use accounts::telemetry::metrics::recorded;
use api_tests::{PASSWORD, WRONG_PASSWORD, on_both_backends_with, unique_email};
use serde_json::json;

static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// How much each of `keys` grows while `work` runs.
async fn growth<F: Future<Output = ()>>(keys: &[&str], work: F) -> Vec<u64> {
    let before: Vec<u64> = keys.iter().map(|key| recorded(key)).collect();
    work.await;
    keys.iter()
        .zip(before)
        .map(|(key, before)| recorded(key) - before)
        .collect()
}

on_both_backends_with! { &[("LOGIN_FAILURES_PER_IP_PER_HOUR", "1000")];
    async fn signups_verifications_and_logins_are_counted_by_outcome(app) {
        let _turn = ONE_AT_A_TIME.lock().await;
        let email = unique_email();
        let counted = growth(
            &["Signups/Outcome=ok", "EmailVerifications/Outcome=ok", "Logins/Outcome=ok", "Logins/Method=password"],
            async {
                app.sign_up_verified(&email).await;
                app.log_in(&email, false).await;
            },
        )
        .await;
        assert_eq!(counted, [1, 1, 1, 1]);

        let counted = growth(
            &["Logins/Outcome=invalid_credentials", "Lockouts/Counter=address", "Logins/Outcome=rate_limited", "RateLimited/Route=/v1/login"],
            async {
                for _ in 0..5 {
                    assert_eq!(app.try_log_in(&email, WRONG_PASSWORD).await.status(), 401);
                }
                assert_eq!(app.try_log_in(&email, PASSWORD).await.status(), 429);
            },
        )
        .await;
        assert_eq!(counted, [5, 1, 1, 1], "five failures, the lockout they start, the refusal");
    }

    async fn a_two_step_login_is_counted_as_challenged_then_by_its_second_factor(app) {
        let _turn = ONE_AT_A_TIME.lock().await;
        let user = app.enrolled().await;
        let counted = growth(
            &["Logins/Outcome=mfa_required", "SecondFactorLogins/Outcome=ok", "SecondFactorLogins/Method=totp", "SecondFactorLogins/Outcome=invalid_code"],
            async {
                let challenge = app.challenge(&user.email).await;
                let token = challenge["mfa_token"].as_str().expect("an mfa token");
                let wrong = app.wrong_code(&user.secret);
                assert_eq!(app.login_mfa(token, "totp", &wrong).await.status(), 401);
                let code = app.fresh_code(&user.secret);
                assert_eq!(app.login_mfa(token, "totp", &code).await.status(), 200);
            },
        )
        .await;
        assert_eq!(counted, [1, 1, 2, 1]);
    }

    async fn a_signup_refused_for_its_input_is_counted_with_its_code(app) {
        let _turn = ONE_AT_A_TIME.lock().await;
        let counted = growth(&["Signups/Outcome=invalid_email", "Signups"], async {
            let response = app
                .signup(&json!({ "email": "not an address", "password": PASSWORD, "account_type": "client" }))
                .await;
            assert_eq!(response.status(), 400);
        })
        .await;
        assert_eq!(counted, [1, 1]);
    }
}
