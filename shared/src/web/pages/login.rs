//! Log in (by email or username, with "Remember me"), the two-step page with "try
//! another method", and log out.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{email, notice, unless_stopped};
use crate::web::api::{Answer as ApiAnswer, Call};
use crate::web::cookies::{self, Lifetime};
use crate::web::form::{Field, Form};
use crate::web::page::{Answer, Page};
use crate::web::session::{self, Tokens};
use crate::web::{Visit, guard, percent_encode};

/// Where a login lands when it was not sent from a page.
const DEFAULT_LANDING: &str = "/account/security";
/// How long the two-step challenge lives: the `mfa_token`'s lifetime.
const CHALLENGE_SECONDS: i64 = 300;

/// The `return_to` of the visit, if it is allowed (never another site).
fn return_to(visit: &Visit<'_>, candidate: Option<&str>) -> Option<String> {
    let allowed = &visit.app.config.web_return_to_origins;
    guard::return_to(candidate?, &visit.own_origin(), allowed)
}

/// The form's action: this page, with its allowed `return_to`.
fn login_action(visit: &Visit<'_>) -> String {
    match return_to(visit, visit.query("return_to").as_deref()) {
        Some(to) => format!("/login?return_to={}", percent_encode(&to)),
        None => "/login".to_owned(),
    }
}

#[derive(Default)]
struct Errors {
    login: Option<String>,
    password: Option<String>,
}

fn login_page(visit: &Visit<'_>, errors: Errors, extra: Option<(String, String)>) -> Page {
    let form = Form::new(login_action(visit), &visit.csrf, "Log in")
        .field(
            Field::text("login", "Email address or username", "username")
                .with_value(visit.posted.trimmed("login"))
                .with_error(errors.login),
        )
        .field(Field::password("password", "Password", "current-password").with_error(errors.password))
        .field(
            Field {
                checked: visit.posted.ticked("remember_me"),
                ..Field::checkbox("remember_me", "Remember me", false)
            }
            .with_hint("Stay signed in on this device for 30 days. Leave it unticked on a shared computer."),
        );
    let mut page = Page::new("Log in").notice(notice(visit)).form(form);
    if let Some((href, text)) = extra {
        page = page.link(href, &text);
    }
    page.link("/forgot-password", "Forgot password?")
        .link("/signup", "New here? Create an account")
}

pub fn show(visit: &Visit<'_>) -> Answer {
    login_page(visit, Errors::default(), None).answer(StatusCode::OK)
}

/// The pending two-step challenge, carried in `__Host-mfa` between the password and the
/// second factor (base64url JSON; only the `mfa_token` is a secret, and it is the
/// server's to check).
#[derive(Serialize, Deserialize)]
struct Challenge {
    mfa_token: String,
    remember_me: bool,
    methods: Vec<String>,
    question: Option<String>,
    return_to: Option<String>,
}

impl Challenge {
    fn cookie(&self) -> Vec<String> {
        let json = serde_json::to_vec(self).unwrap_or_default();
        let value = URL_SAFE_NO_PAD.encode(json);
        vec![cookies::set(
            cookies::MFA,
            &value,
            Lifetime::Seconds(CHALLENGE_SECONDS),
        )]
    }

    fn of(visit: &Visit<'_>) -> Option<Challenge> {
        let value = cookies::get(&visit.request.headers, cookies::MFA)?;
        let json = URL_SAFE_NO_PAD.decode(value).ok()?;
        serde_json::from_slice(&json).ok()
    }
}

/// Signs the browser in with the tokens of `answer` and sends it on.
fn signed_in(
    visit: &Visit<'_>,
    answer: &ApiAnswer,
    remember_me: bool,
    to: Option<String>,
) -> Answer {
    let Some(tokens) = Tokens::from_answer(answer, remember_me) else {
        return crate::web::page::broken(StatusCode::INTERNAL_SERVER_ERROR, None);
    };
    let landing = return_to(visit, to.as_deref()).unwrap_or_else(|| DEFAULT_LANDING.to_owned());
    Answer::redirect(&landing)
        .with_cookies(tokens.cookies())
        .with_cookies([cookies::clear(cookies::MFA)])
}

pub async fn submit(visit: &Visit<'_>) -> Answer {
    let posted = &visit.posted;
    let login = posted.trimmed("login");
    let remember_me = posted.ticked("remember_me");
    let to = visit.query("return_to");
    let answer = visit
        .call(Call::post(
            "/v1/login",
            json!({
                "login": login,
                "password": posted.value("password"),
                "remember_me": remember_me,
            }),
        ))
        .await;
    if answer.is_success() {
        if answer.body["mfa_required"] == true {
            let challenge = Challenge {
                mfa_token: answer.text("mfa_token").unwrap_or_default(),
                remember_me,
                methods: answer.body["methods"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|m| m.as_str().map(str::to_owned))
                    .collect(),
                question: answer.text("security_question"),
                return_to: return_to(visit, to.as_deref()),
            };
            return Answer::redirect("/login/two-step").with_cookies(challenge.cookie());
        }
        return signed_in(visit, &answer, remember_me, to);
    }
    if let Some(stopped) = unless_stopped(&answer) {
        return stopped;
    }
    match answer.code() {
        "email_not_verified" => {
            let errors = Errors {
                login: Some("Your email address is not confirmed yet. Open the link we emailed you, or enter its code.".to_owned()),
                ..Errors::default()
            };
            // The check-email page can resend to an address (a username names none).
            if login.contains('@') {
                login_page(
                    visit,
                    errors,
                    Some((
                        "/check-email".to_owned(),
                        "Confirm your address or get a new email".to_owned(),
                    )),
                )
                .answer(StatusCode::FORBIDDEN)
                .with_cookies(email::pending_cookie(login))
            } else {
                login_page(visit, errors, None).answer(StatusCode::FORBIDDEN)
            }
        }
        _ => {
            let errors = Errors {
                password: Some("The email address, username or password is not right.".to_owned()),
                ..Errors::default()
            };
            login_page(visit, errors, None).answer(answer.status)
        }
    }
}

/// A method's name, in words, for "try another method".
fn method_name(method: &str) -> Option<&'static str> {
    Some(match method {
        "totp" => "Use your authenticator app",
        "backup_code" => "Use a backup code",
        "security_question" => "Answer your security question",
        "sms" => "Get a code by text message",
        _ => return None,
    })
}

fn two_step_page(visit: &Visit<'_>, challenge: &Challenge, error: Option<String>) -> Page {
    let asked = visit.query("method");
    let method = asked
        .filter(|m| challenge.methods.contains(m))
        .or_else(|| {
            ["totp", "sms", "backup_code", "security_question"]
                .into_iter()
                .find(|m| challenge.methods.iter().any(|known| known == m))
                .map(str::to_owned)
        })
        .unwrap_or_else(|| "totp".to_owned());
    let (line, field) = match method.as_str() {
        "backup_code" => (
            "Enter one of the backup codes you saved when you turned on two-step verification. Each code works once.".to_owned(),
            Field::code("code", "Backup code"),
        ),
        "security_question" => (
            "Answer the security question you chose.".to_owned(),
            Field::text(
                "code",
                challenge.question.as_deref().unwrap_or("Your answer"),
                "off",
            )
            .with_hint("Capital letters and spaces at either end do not matter."),
        ),
        _ => (
            "Open your authenticator app and enter the 6-digit code it shows for this account.".to_owned(),
            Field::code("code", "6-digit code"),
        ),
    };
    let action = format!("/login/two-step?method={method}");
    let mut page = Page::new("Two-step verification")
        .line(line)
        .form(Form::new(action, &visit.csrf, "Continue").field(field.with_error(error)));
    if method == "security_question" {
        page = page.link("/forgot-security-answer", "Forgot your answer?");
    }
    for other in &challenge.methods {
        if *other != method
            && let Some(name) = method_name(other)
        {
            page = page.link(
                format!("/login/two-step?method={other}"),
                &format!("Try another method: {}", name.to_lowercase()),
            );
        }
    }
    page.link("/login", "Start again")
}

pub fn two_step(visit: &Visit<'_>) -> Answer {
    match Challenge::of(visit) {
        Some(challenge) => two_step_page(visit, &challenge, None).answer(StatusCode::OK),
        None => Answer::redirect("/login?notice=challenge_expired"),
    }
}

pub async fn two_step_submit(visit: &Visit<'_>) -> Answer {
    let Some(challenge) = Challenge::of(visit) else {
        return Answer::redirect("/login?notice=challenge_expired");
    };
    let method = visit
        .query("method")
        .filter(|m| challenge.methods.contains(m))
        .unwrap_or_else(|| "totp".to_owned());
    let code = visit.posted.value("code");
    let code = if method == "security_question" {
        code
    } else {
        code.trim()
    };
    let answer = visit
        .call(Call::post(
            "/v1/login/mfa",
            json!({ "mfa_token": challenge.mfa_token, "method": method, "code": code }),
        ))
        .await;
    if answer.is_success() {
        return signed_in(visit, &answer, challenge.remember_me, challenge.return_to);
    }
    if let Some(stopped) = unless_stopped(&answer) {
        return stopped;
    }
    if answer.code() == "mfa_token_expired" {
        return Answer::redirect("/login?notice=challenge_expired")
            .with_cookies([cookies::clear(cookies::MFA)]);
    }
    let error = match method.as_str() {
        "security_question" => "That answer is not right.",
        "backup_code" => "That backup code is not right, or it was used already.",
        _ => "That code is not right. Enter the code your app shows now.",
    };
    two_step_page(visit, &challenge, Some(error.to_owned())).answer(answer.status)
}

pub async fn log_out(visit: &Visit<'_>) -> Answer {
    if let Some((refresh, _)) = session::refresh_token(visit.request) {
        let answer = visit
            .call(Call::post(
                "/v1/logout",
                json!({ "refresh_token": refresh }),
            ))
            .await;
        if answer.status.is_server_error() {
            return crate::web::page::broken(answer.status, answer.retry_after);
        }
    }
    Answer::redirect("/login?notice=logged_out").with_cookies(session::cleared())
}
