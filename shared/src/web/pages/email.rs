//! The address's pages: "check your email" (the code, a resend, a fix for a mistyped
//! address) and the emailed link's page, whose button spends the token by POST so that a
//! mail scanner opening the link spends nothing.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::StatusCode;
use serde_json::json;

use super::{incomplete_link, link_token, notice, unless_stopped};
use crate::web::Visit;
use crate::web::api::Call;
use crate::web::cookies::{self, Lifetime};
use crate::web::form::{Field, Form, message_for};
use crate::web::page::{Answer, Page};

/// How long the check-email page remembers the address: the verification's lifetime.
const PENDING_SECONDS: i64 = 24 * 3_600;

/// The cookie that tells the check-email page which address it speaks of (base64url: an
/// address may hold characters a cookie may not).
pub fn pending_cookie(email: &str) -> Vec<String> {
    let value = URL_SAFE_NO_PAD.encode(email.as_bytes());
    vec![cookies::set(
        cookies::PENDING_EMAIL,
        &value,
        Lifetime::Seconds(PENDING_SECONDS),
    )]
}

/// The address the check-email page speaks of.
fn pending_email(visit: &Visit<'_>) -> Option<String> {
    let value = cookies::get(&visit.request.headers, cookies::PENDING_EMAIL)?;
    let bytes = URL_SAFE_NO_PAD.decode(value).ok()?;
    String::from_utf8(bytes).ok().filter(|e| !e.is_empty())
}

#[derive(Default)]
struct Errors {
    code: Option<String>,
    new_email: Option<String>,
}

fn check_email_page(visit: &Visit<'_>, email: &str, errors: Errors) -> Page {
    let code = Form::new("/check-email", &visit.csrf, "Confirm")
        .heading("Enter the code")
        .field(
            Field::code("code", "6-digit code from the email")
                .with_hint("The code works for 24 hours.")
                .with_error(errors.code),
        )
        .action_button("action", "verify");
    let resend = Form::new("/check-email", &visit.csrf, "Send a new email")
        .heading("Nothing arrived?")
        .intro("Check your spam folder first. You can ask for a new email once a minute; it replaces the earlier link and code.")
        .action_button("action", "resend")
        .styled("secondary");
    let correct = Form::new("/check-email", &visit.csrf, "Fix my address")
        .heading("Wrong address? Fix it")
        .field(
            Field::email("new_email", "The right email address")
                .with_value(visit.posted.trimmed("new_email"))
                .with_error(errors.new_email),
        )
        .field(
            Field::password("password", "Your password", "current-password")
                .with_hint("The one you chose when you signed up."),
        )
        .action_button("action", "correct")
        .styled("secondary");
    Page::new("Check your email")
        .notice(notice(visit))
        .line(format!(
            "We sent a link and a code to {email}. Open the link, or enter the code below, to confirm the address."
        ))
        .form(code)
        .form(resend)
        .form(correct)
        .link("/login", "Already confirmed? Log in")
}

pub fn check_email(visit: &Visit<'_>) -> Answer {
    match pending_email(visit) {
        Some(email) => check_email_page(visit, &email, Errors::default()).answer(StatusCode::OK),
        None => Answer::redirect("/signup"),
    }
}

pub async fn check_email_action(visit: &Visit<'_>) -> Answer {
    let posted = &visit.posted;
    // The expired link's page sends the address in the form; the check-email page has
    // it in its cookie.
    let typed = posted.trimmed("email");
    let email = if typed.is_empty() {
        match pending_email(visit) {
            Some(email) => email,
            None => return Answer::redirect("/signup"),
        }
    } else {
        typed.to_owned()
    };
    match posted.value("action") {
        "verify" => {
            let answer = visit
                .call(Call::post(
                    "/v1/email/verify",
                    json!({ "email": email, "code": posted.trimmed("code") }),
                ))
                .await;
            if answer.is_success() {
                return Answer::redirect("/login?notice=verified")
                    .with_cookies([cookies::clear(cookies::PENDING_EMAIL)]);
            }
            if let Some(stopped) = unless_stopped(&answer) {
                return stopped;
            }
            let errors = Errors {
                code: Some(
                    "That code is not right, or it has expired. Use the code in the newest email, or ask for a new one."
                        .to_owned(),
                ),
                ..Errors::default()
            };
            check_email_page(visit, &email, errors).answer(answer.status)
        }
        "correct" => {
            let new_email = posted.trimmed("new_email");
            let answer = visit
                .call(Call::post(
                    "/v1/signup/correct-email",
                    json!({
                        "email": email,
                        "password": posted.value("password"),
                        "new_email": new_email,
                    }),
                ))
                .await;
            if answer.is_success() {
                return Answer::redirect("/check-email?notice=corrected")
                    .with_cookies(pending_cookie(new_email));
            }
            if let Some(stopped) = unless_stopped(&answer) {
                return stopped;
            }
            let errors = Errors {
                new_email: Some(message_for("new_email", answer.code())),
                ..Errors::default()
            };
            check_email_page(visit, &email, errors).answer(answer.status)
        }
        _ => {
            let answer = visit
                .call(Call::post(
                    "/v1/email/verify/resend",
                    json!({ "email": email }),
                ))
                .await;
            if let Some(stopped) = unless_stopped(&answer) {
                return stopped;
            }
            if !answer.is_success() && typed.is_empty() {
                return check_email_page(visit, &email, Errors::default()).answer(answer.status);
            }
            if !answer.is_success() {
                return expired_page(visit, Some(message_for("email", answer.code())))
                    .answer(answer.status);
            }
            Answer::redirect("/check-email?notice=resent").with_cookies(pending_cookie(&email))
        }
    }
}

/// The emailed link's page: one button, which spends the token.
pub fn confirm(visit: &Visit<'_>) -> Answer {
    let Some(token) = link_token(visit) else {
        return incomplete_link("/check-email");
    };
    Page::new("Confirm your email address")
        .line("Press the button to confirm that this address is yours.")
        .form(
            Form::new("/verify-email", &visit.csrf, "Confirm my email address")
                .field(Field::hidden("token", &token)),
        )
        .answer(StatusCode::OK)
}

fn expired_page(visit: &Visit<'_>, error: Option<String>) -> Page {
    Page::new("This link has expired")
        .line("Links to confirm an address work for 24 hours. Enter your address and we will send a new link and code.")
        .form(
            Form::new("/check-email", &visit.csrf, "Send a new link")
                .field(Field::email("email", "Email address").with_error(error))
                .field(Field::hidden("action", "resend")),
        )
}

pub async fn confirm_submit(visit: &Visit<'_>) -> Answer {
    let token = visit.posted.value("token");
    let answer = visit
        .call(Call::post("/v1/email/verify", json!({ "token": token })))
        .await;
    if answer.is_success() {
        return Page::new("Your email address is confirmed")
            .line("Thank you. Your account is ready: log in to start.")
            .link("/login?notice=verified", "Log in")
            .answer(StatusCode::OK)
            .with_cookies([cookies::clear(cookies::PENDING_EMAIL)]);
    }
    if let Some(stopped) = unless_stopped(&answer) {
        return stopped;
    }
    if answer.code() == "token_expired" {
        return expired_page(visit, None).answer(answer.status);
    }
    Page::new("This link was already used")
        .line("This link has already been used, or it is not a link we sent. If you confirmed your address already, you can log in.")
        .link("/login", "Log in")
        .link("/signup", "Create an account")
        .answer(answer.status)
}
