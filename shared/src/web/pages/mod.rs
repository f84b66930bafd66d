//! The pages, by journey, and the table from a request to its page.

mod account;
mod assets;
mod email;
mod login;
mod recovery;
mod signup;

use http::{Method, StatusCode};

use super::Visit;
use super::api::Answer as ApiAnswer;
use super::page::{self, Answer};

/// The page for the visit's method and path (the 404 page for anything else).
pub async fn answer(visit: &Visit<'_>) -> Answer {
    let path = visit.request.path.as_str();
    let path = if path.len() > 1 {
        path.trim_end_matches('/')
    } else {
        path
    };
    match (&visit.request.method, path) {
        (&Method::GET, "/") => Answer::redirect("/login"),
        (&Method::GET, "/signup") => signup::show(visit),
        (&Method::POST, "/signup") => signup::submit(visit).await,
        (&Method::GET, "/check-email") => email::check_email(visit),
        (&Method::POST, "/check-email") => email::check_email_action(visit).await,
        (&Method::GET, "/verify-email") => email::confirm(visit),
        (&Method::POST, "/verify-email") => email::confirm_submit(visit).await,
        (&Method::GET, "/login") => login::show(visit),
        (&Method::POST, "/login") => login::submit(visit).await,
        (&Method::GET, "/login/two-step") => login::two_step(visit),
        (&Method::POST, "/login/two-step") => login::two_step_submit(visit).await,
        (&Method::POST, "/logout") => login::log_out(visit).await,
        (&Method::GET, "/forgot-password") => recovery::forgot_password(visit),
        (&Method::POST, "/forgot-password") => recovery::forgot_password_submit(visit).await,
        (&Method::GET, "/forgot-password/sent") => recovery::forgot_password_sent(),
        (&Method::GET, "/forgot-security-answer") => recovery::forgot_answer(visit),
        (&Method::POST, "/forgot-security-answer") => recovery::forgot_answer_submit(visit).await,
        (&Method::GET, "/forgot-security-answer/sent") => recovery::forgot_answer_sent(),
        (&Method::GET, "/reset-password") => recovery::reset_password(visit),
        (&Method::POST, "/reset-password") => recovery::reset_password_submit(visit).await,
        (&Method::GET, "/reset-security-question") => recovery::reset_question(visit).await,
        (&Method::POST, "/reset-security-question") => recovery::reset_question_submit(visit).await,
        (&Method::GET, "/account/security") => account::settings(visit).await,
        (&Method::POST, "/account/security/password") => account::change_password(visit).await,
        (&Method::POST, "/account/security/question") => account::change_question(visit).await,
        (&Method::POST, "/account/security/totp/setup") => account::totp_setup(visit).await,
        (&Method::POST, "/account/security/totp/confirm") => account::totp_confirm(visit).await,
        (&Method::POST, "/account/security/totp/disable") => account::totp_disable(visit).await,
        (&Method::POST, "/account/security/backup-codes") => account::backup_codes(visit).await,
        (&Method::POST, "/account/security/sessions/revoke") => {
            account::revoke_session(visit).await
        }
        (&Method::POST, "/account/security/sessions/revoke-others") => {
            account::revoke_others(visit).await
        }
        (&Method::GET, "/assets/app.css") => assets::style_sheet(),
        (&Method::GET, "/assets/app.js") => assets::script(),
        _ => page::not_found(),
    }
}

/// The page for an answer no form can fix: too many attempts (429), or a failure on our
/// side (5xx). `None` for every other answer.
fn unless_stopped(answer: &ApiAnswer) -> Option<Answer> {
    if answer.status == StatusCode::TOO_MANY_REQUESTS {
        return Some(page::too_many_attempts(answer.retry_after));
    }
    if answer.status.is_server_error() {
        return Some(page::broken(answer.status, answer.retry_after));
    }
    None
}

/// The page of an emailed link opened without its token (cut short by a mail program, or
/// typed by hand): no form, since there is nothing to send.
fn incomplete_link(again: &str) -> Answer {
    page::Page::new("This link is incomplete")
        .line("The link has no token: your email program may have cut it short. Open it again from the email, or copy the whole link into the address bar.")
        .link(again, "Email me a new link")
        .link("/login", "Log in")
        .answer(StatusCode::OK)
}

/// The token of an emailed link's page, or `None` when the link came without one.
fn link_token(visit: &Visit<'_>) -> Option<String> {
    visit
        .query("token")
        .filter(|token| !token.trim().is_empty())
}

/// The words of a `?notice=` after a redirect (unknown notices show nothing).
fn notice(visit: &Visit<'_>) -> Option<String> {
    let text = match visit.query("notice")?.as_str() {
        "verified" => "Your email address is confirmed. You can log in now.",
        "password_reset" => "Your password was changed. Log in with your new password.",
        "question_reset" => "Your security question was changed. You can log in now.",
        "logged_out" => "You are logged out.",
        "challenge_expired" => "That sign-in took too long. Log in again.",
        "resent" => "We sent a new email. Earlier links and codes no longer work.",
        "corrected" => "If the password was right, we sent a new email to the corrected address.",
        "password_changed" => "Your password was changed.",
        "password_changed_everywhere" => {
            "Your password was changed, and every other device was signed out."
        }
        "question_changed" => "Your security question was changed.",
        "two_step_off" => "Two-step verification is off.",
        "signed_out_device" => "That device was signed out.",
        "signed_out_others" => "Every other device was signed out.",
        _ => return None,
    };
    Some(text.to_owned())
}
