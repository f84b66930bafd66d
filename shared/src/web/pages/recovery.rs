//! Getting back in: "forgot password" and "forgot your answer" (the same page whatever
//! the account), and the pages the emailed links open, which ask for the second factor
//! when the account has two-step verification.

use http::StatusCode;
use serde_json::{Map, Value, json};

use super::{incomplete_link, link_token, signup::PASSWORD_RULES, unless_stopped};
use crate::web::Visit;
use crate::web::api::Call;
use crate::web::form::{Choice, Field, Form, message_for};
use crate::web::page::{Answer, Page};

fn forgot_page(visit: &Visit<'_>, h1: &str, action: &str, line: &str) -> Answer {
    Page::new(h1)
        .line(line)
        .form(
            Form::new(action, &visit.csrf, "Email me a link").field(Field::text(
                "login",
                "Email address or username",
                "username",
            )),
        )
        .link("/login", "Back to log in")
        .answer(StatusCode::OK)
}

pub fn forgot_password(visit: &Visit<'_>) -> Answer {
    forgot_page(
        visit,
        "Forgot your password?",
        "/forgot-password",
        "Enter your email address or username. We will email you a link to choose a new password.",
    )
}

pub fn forgot_answer(visit: &Visit<'_>) -> Answer {
    forgot_page(
        visit,
        "Forgot your security answer?",
        "/forgot-security-answer",
        "Enter your email address or username. We will email you a link to choose a new security question and answer.",
    )
}

/// Sends the link (the API answers `202` whatever the account) and shows the same page
/// for every login.
async fn forgot_submit(visit: &Visit<'_>, api_path: &str, sent: &str) -> Answer {
    let answer = visit
        .call(Call::post(
            api_path,
            json!({ "login": visit.posted.trimmed("login") }),
        ))
        .await;
    if let Some(stopped) = unless_stopped(&answer) {
        return stopped;
    }
    Answer::redirect(sent)
}

pub async fn forgot_password_submit(visit: &Visit<'_>) -> Answer {
    forgot_submit(visit, "/v1/password/forgot", "/forgot-password/sent").await
}

pub async fn forgot_answer_submit(visit: &Visit<'_>) -> Answer {
    forgot_submit(
        visit,
        "/v1/security-question/forgot",
        "/forgot-security-answer/sent",
    )
    .await
}

fn sent_page(what: &str) -> Answer {
    Page::new("Check your email")
        .line(format!(
            "If an account matches what you entered, we emailed it a link to {what}. The link works once, for one hour."
        ))
        .line("Nothing arrived? Check your spam folder, or ask again in a minute.")
        .link("/login", "Back to log in")
        .answer(StatusCode::OK)
}

pub fn forgot_password_sent() -> Answer {
    sent_page("choose a new password")
}

pub fn forgot_answer_sent() -> Answer {
    sent_page("choose a new security question")
}

/// The second-factor fields of a reset, for an account with two-step verification.
fn second_factor(visit: &Visit<'_>, error: Option<String>) -> [Field; 2] {
    let methods = [
        ("totp", "A code from my authenticator app"),
        ("backup_code", "A backup code"),
    ]
    .map(|(value, label)| Choice {
        value: value.to_owned(),
        label: label.to_owned(),
    })
    .to_vec();
    [
        Field::select(
            "mfa_method",
            "Second step (only if two-step verification is on)",
            methods,
        )
        .with_value(visit.posted.value("mfa_method")),
        Field::code("mfa_code", "Code")
            .optional()
            .with_hint("Leave it empty if you never turned on two-step verification.")
            .with_error(error),
    ]
}

/// The `mfa` member of a reset request, when a code was typed.
fn mfa_of(visit: &Visit<'_>) -> Option<Value> {
    let code = visit.posted.trimmed("mfa_code");
    if code.is_empty() {
        return None;
    }
    let method = match visit.posted.value("mfa_method") {
        "backup_code" => "backup_code",
        _ => "totp",
    };
    Some(json!({ "method": method, "code": code }))
}

/// The words for a reset's second factor that is missing or wrong, if `code` says so.
fn second_factor_error(code: &str) -> Option<String> {
    let words = match code {
        "mfa_required" => {
            "Your account has two-step verification: enter a code from your authenticator app or a backup code."
        }
        "invalid_code" => "That code is not right.",
        _ => return None,
    };
    Some(words.to_owned())
}

/// The page of a link that no longer works.
fn dead_link(again: &str) -> Answer {
    Page::new("This link no longer works")
        .line("Links like this work once, for one hour, and a newer link replaces older ones. Ask for a new one.")
        .link(again, "Email me a new link")
        .link("/login", "Back to log in")
        .answer(StatusCode::BAD_REQUEST)
}

#[derive(Default)]
struct ResetErrors {
    new_password: Option<String>,
    confirm_password: Option<String>,
    mfa_code: Option<String>,
}

fn reset_password_page(visit: &Visit<'_>, token: &str, errors: ResetErrors) -> Page {
    let [method, code] = second_factor(visit, errors.mfa_code);
    Page::new("Choose a new password")
        .line("Choosing a new password signs you out on every device.")
        .form(
            Form::new("/reset-password", &visit.csrf, "Change my password")
                .field(Field::hidden("token", token))
                .field(
                    Field::password("new_password", "New password", "new-password")
                        .with_hint(PASSWORD_RULES)
                        .with_error(errors.new_password),
                )
                .field(
                    Field::password("confirm_password", "New password again", "new-password")
                        .with_error(errors.confirm_password),
                )
                .field(method)
                .field(code),
        )
}

pub fn reset_password(visit: &Visit<'_>) -> Answer {
    let Some(token) = link_token(visit) else {
        return incomplete_link("/forgot-password");
    };
    reset_password_page(visit, &token, ResetErrors::default()).answer(StatusCode::OK)
}

pub async fn reset_password_submit(visit: &Visit<'_>) -> Answer {
    let posted = &visit.posted;
    let token = posted.value("token");
    if posted.value("new_password") != posted.value("confirm_password") {
        let errors = ResetErrors {
            confirm_password: Some("The two passwords are not the same.".to_owned()),
            ..ResetErrors::default()
        };
        return reset_password_page(visit, token, errors).answer(StatusCode::BAD_REQUEST);
    }
    let mut body = Map::new();
    body.insert("token".into(), json!(token));
    body.insert("new_password".into(), json!(posted.value("new_password")));
    if let Some(mfa) = mfa_of(visit) {
        body.insert("mfa".into(), mfa);
    }
    let answer = visit
        .call(Call::post("/v1/password/reset", Value::Object(body)))
        .await;
    if answer.is_success() {
        return Answer::redirect("/login?notice=password_reset");
    }
    if let Some(stopped) = unless_stopped(&answer) {
        return stopped;
    }
    let errors = match answer.code() {
        "invalid_token" | "token_expired" => return dead_link("/forgot-password"),
        code if second_factor_error(code).is_some() => ResetErrors {
            mfa_code: second_factor_error(code),
            ..ResetErrors::default()
        },
        _ => ResetErrors {
            new_password: Some(
                answer
                    .field_errors()
                    .first()
                    .map(|(field, code)| message_for(field, code))
                    .unwrap_or_else(|| PASSWORD_RULES.to_owned()),
            ),
            ..ResetErrors::default()
        },
    };
    reset_password_page(visit, token, errors).answer(answer.status)
}

/// The curated security questions, for a list.
pub async fn question_choices(visit: &Visit<'_>) -> Vec<Choice> {
    let answer = visit.call(Call::get("/v1/security-questions")).await;
    answer
        .body
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|q| {
            Some(Choice {
                value: q["id"].as_str()?.to_owned(),
                label: q["text"].as_str()?.to_owned(),
            })
        })
        .collect()
}

#[derive(Default)]
struct QuestionErrors {
    password: Option<String>,
    answer: Option<String>,
    mfa_code: Option<String>,
}

async fn reset_question_page(visit: &Visit<'_>, token: &str, errors: QuestionErrors) -> Page {
    let [method, code] = second_factor(visit, errors.mfa_code);
    let questions = question_choices(visit).await;
    Page::new("Choose a new security question")
        .form(
            Form::new("/reset-security-question", &visit.csrf, "Save my new question")
                .field(Field::hidden("token", token))
                .field(
                    Field::password("password", "Your password", "current-password")
                        .with_error(errors.password),
                )
                .field(
                    Field::select("question_id", "Question", questions)
                        .with_value(visit.posted.value("question_id")),
                )
                .field(
                    Field::text("answer", "Answer", "off")
                        .with_hint("At least 3 characters. Capital letters and spaces at either end do not matter.")
                        .with_error(errors.answer),
                )
                .field(method)
                .field(code),
        )
}

pub async fn reset_question(visit: &Visit<'_>) -> Answer {
    let Some(token) = link_token(visit) else {
        return incomplete_link("/forgot-security-answer");
    };
    reset_question_page(visit, &token, QuestionErrors::default())
        .await
        .answer(StatusCode::OK)
}

pub async fn reset_question_submit(visit: &Visit<'_>) -> Answer {
    let posted = &visit.posted;
    let token = posted.value("token");
    let mut body = Map::new();
    body.insert("token".into(), json!(token));
    body.insert("password".into(), json!(posted.value("password")));
    body.insert("question_id".into(), json!(posted.value("question_id")));
    body.insert("answer".into(), json!(posted.value("answer")));
    if let Some(mfa) = mfa_of(visit) {
        body.insert("mfa".into(), mfa);
    }
    let answer = visit
        .call(Call::post(
            "/v1/security-question/reset",
            Value::Object(body),
        ))
        .await;
    if answer.is_success() {
        return Answer::redirect("/login?notice=question_reset");
    }
    if let Some(stopped) = unless_stopped(&answer) {
        return stopped;
    }
    let errors = match answer.code() {
        "invalid_token" | "token_expired" => return dead_link("/forgot-security-answer"),
        code if second_factor_error(code).is_some() => QuestionErrors {
            mfa_code: second_factor_error(code),
            ..QuestionErrors::default()
        },
        "invalid_credentials" => QuestionErrors {
            password: Some("That password is not right.".to_owned()),
            ..QuestionErrors::default()
        },
        _ => QuestionErrors {
            answer: Some(message_for("answer", "invalid")),
            ..QuestionErrors::default()
        },
    };
    reset_question_page(visit, token, errors)
        .await
        .answer(answer.status)
}
