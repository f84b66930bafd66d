//! Sign up: name, email, password (its rules shown before it is sent), account type and
//! an optional username; then the check-email page.

use http::StatusCode;
use serde_json::{Map, Value, json};

use super::{email, unless_stopped};
use crate::web::Visit;
use crate::web::api::Call;
use crate::web::form::{Choice, Field, Form, message_for};
use crate::web::page::{Answer, Page};

/// What the password policy asks, said before the password is typed.
pub const PASSWORD_RULES: &str =
    "At least 8 characters. Not a common password, and not your email address or username.";

pub fn show(visit: &Visit<'_>) -> Answer {
    page(visit, Errors::default()).answer(StatusCode::OK)
}

/// The errors of a refused signup, by field.
#[derive(Default)]
struct Errors {
    full_name: Option<String>,
    email: Option<String>,
    password: Option<String>,
    account_type: Option<String>,
    username: Option<String>,
}

fn page(visit: &Visit<'_>, errors: Errors) -> Page {
    let posted = &visit.posted;
    let account_types = [
        ("freelancer", "Freelancer: I want to find work"),
        ("client", "Client: I want to hire"),
        ("agency", "Agency: we are a team that finds work"),
    ]
    .map(|(value, label)| Choice {
        value: value.to_owned(),
        label: label.to_owned(),
    })
    .to_vec();
    let form = Form::new("/signup", &visit.csrf, "Create my account")
        .field(
            Field::text("full_name", "Full name", "name")
                .with_value(posted.value("full_name"))
                .with_error(errors.full_name),
        )
        .field(
            Field::email("email", "Email address")
                .with_value(posted.trimmed("email"))
                .with_hint("We will send a link and a code to confirm it.")
                .with_error(errors.email),
        )
        .field(
            Field::password("password", "Password", "new-password")
                .with_hint(PASSWORD_RULES)
                .with_error(errors.password),
        )
        .field(
            Field::radio("account_type", "I am joining as", account_types)
                .with_value(posted.value("account_type"))
                .with_error(errors.account_type),
        )
        .field(
            Field::text("username", "Username", "username")
                .optional()
                .with_value(posted.trimmed("username"))
                .with_hint(
                    "3 to 30 letters, digits, dots, dashes or underscores. You can log in with it.",
                )
                .with_error(errors.username),
        );
    Page::new("Create your account")
        .form(form)
        .link("/login", "Already have an account? Log in")
}

pub async fn submit(visit: &Visit<'_>) -> Answer {
    let posted = &visit.posted;
    if !matches!(
        posted.value("account_type"),
        "freelancer" | "client" | "agency"
    ) {
        let errors = Errors {
            account_type: Some(message_for("account_type", "missing")),
            ..Errors::default()
        };
        return page(visit, errors).answer(StatusCode::BAD_REQUEST);
    }
    let email = posted.trimmed("email");
    let mut body = Map::new();
    body.insert("email".into(), json!(email));
    body.insert("password".into(), json!(posted.value("password")));
    body.insert("account_type".into(), json!(posted.value("account_type")));
    for optional in ["full_name", "username"] {
        let value = posted.trimmed(optional);
        if !value.is_empty() {
            body.insert(optional.into(), json!(value));
        }
    }
    let answer = visit
        .call(Call::post("/v1/signup", Value::Object(body)))
        .await;
    if answer.is_success() {
        return Answer::redirect("/check-email").with_cookies(email::pending_cookie(email));
    }
    if let Some(stopped) = unless_stopped(&answer) {
        return stopped;
    }
    let mut errors = Errors::default();
    if answer.code() == "username_taken" {
        errors.username = Some(message_for("username", "taken"));
    }
    for (field, code) in answer.field_errors() {
        let message = Some(message_for(&field, &code));
        match field.as_str() {
            "full_name" => errors.full_name = errors.full_name.or(message),
            "email" => errors.email = errors.email.or(message),
            "password" => errors.password = errors.password.or(message),
            "account_type" => errors.account_type = errors.account_type.or(message),
            "username" => errors.username = errors.username.or(message),
            _ => {}
        }
    }
    let nothing_named = errors.full_name.is_none()
        && errors.email.is_none()
        && errors.password.is_none()
        && errors.account_type.is_none()
        && errors.username.is_none();
    if nothing_named {
        // A refusal without a field (a body the API could not read): the email field is
        // where a person starts over.
        errors.email = Some("Check the form and try again.".to_owned());
    }
    page(visit, errors).answer(answer.status)
}
