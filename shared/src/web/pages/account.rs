//! The security settings of a signed-in person and what they do: the password (signing
//! every other device out by default), the security question, two-step verification
//! (the authenticator's setup, backup codes, turning it off), signed-in devices and the
//! login history.

use askama::Template;
use http::{Method, StatusCode};
use serde_json::{Value, json};

use super::recovery::question_choices;
use super::{notice, signup::PASSWORD_RULES, unless_stopped};
use crate::web::api::{Answer as ApiAnswer, Call};
use crate::web::form::{ErrorLink, Field, Form, message_for, summary};
use crate::web::page::Answer;
use crate::web::session::{SignedIn, signed_in};
use crate::web::{Visit, percent_encode};

/// How many logins the history shows at a time.
const HISTORY_PAGE: u32 = 20;

/// One signed-in device.
struct Device {
    name: String,
    ip: String,
    started: String,
    started_at: String,
    last_seen: String,
    last_seen_at: String,
    remembered: bool,
    current: bool,
    sign_out: Option<Form>,
}

/// One login of the history.
struct HistoryEntry {
    at: String,
    when: String,
    outcome: &'static str,
    device: String,
    ip: String,
}

#[derive(Template)]
#[template(path = "web/settings.html")]
struct Settings {
    h1: String,
    notice: Option<String>,
    errors: Vec<ErrorLink>,
    /// What went wrong when no field is to blame (a device already signed out).
    problem: Option<String>,
    email: String,
    email_state: &'static str,
    delivery_problem: Option<&'static str>,
    password_form: Form,
    question_state: &'static str,
    question_form: Form,
    two_step_state: String,
    two_step_forms: Vec<Form>,
    devices: Vec<Device>,
    sign_out_others: Option<Form>,
    history: Vec<HistoryEntry>,
    history_paged: bool,
    history_next: Option<String>,
    log_out: Form,
}

/// A field in error on the settings page: the form's name, the field's and the words.
struct Mistake {
    form: &'static str,
    field: &'static str,
    message: String,
}

impl Mistake {
    fn new(form: &'static str, field: &'static str, message: impl Into<String>) -> Mistake {
        Mistake {
            form,
            field,
            message: message.into(),
        }
    }
}

/// Builds a settings form's field (its id prefixed with the form's name), with the
/// mistake's words when it is this field's.
fn field(form: &'static str, field: Field, mistake: Option<&Mistake>) -> Field {
    let error = mistake
        .filter(|m| m.form == form && m.field == field.name)
        .map(|m| m.message.clone());
    field.in_form(form).with_error(error)
}

/// When, in words a person reads (`2026-12-02 16:40 UTC`), from RFC 3339.
fn when(rfc3339: &str) -> String {
    match (rfc3339.get(..10), rfc3339.get(11..16)) {
        (Some(day), Some(time)) => format!("{day} {time} UTC"),
        _ => rfc3339.to_owned(),
    }
}

/// A device's name from its user agent: the browser and the system (`Chrome on
/// Windows`), or the user agent itself when neither is known.
fn device_name(user_agent: &str) -> String {
    let browser = [
        ("Edg/", "Edge"),
        ("OPR/", "Opera"),
        ("Firefox/", "Firefox"),
        ("Chrome/", "Chrome"),
        ("Safari/", "Safari"),
    ]
    .into_iter()
    .find(|(mark, _)| user_agent.contains(mark))
    .map(|(_, name)| name);
    let system = [
        ("Android", "Android"),
        ("iPhone", "iPhone"),
        ("iPad", "iPad"),
        ("Windows", "Windows"),
        ("Mac OS X", "macOS"),
        ("CrOS", "ChromeOS"),
        ("Linux", "Linux"),
    ]
    .into_iter()
    .find(|(mark, _)| user_agent.contains(mark))
    .map(|(_, name)| name);
    match (browser, system) {
        (Some(browser), Some(system)) => format!("{browser} on {system}"),
        (Some(browser), None) => browser.to_owned(),
        (None, Some(system)) => system.to_owned(),
        (None, None) if user_agent.is_empty() => "Unknown device".to_owned(),
        (None, None) => user_agent.chars().take(60).collect(),
    }
}

fn outcome_in_words(outcome: &str) -> &'static str {
    match outcome {
        "success" => "Logged in",
        "bad_password" => "Wrong password",
        "bad_code" => "Wrong two-step code",
        "rate_limited" => "Refused: too many attempts",
        _ => "Other",
    }
}

async fn settings_page(
    visit: &Visit<'_>,
    session: &SignedIn,
    mistake: Option<Mistake>,
    status: StatusCode,
) -> Answer {
    let token = session.access_token.as_str();
    let history_after = visit.query("history_after");
    let history_query = match &history_after {
        Some(cursor) => format!("limit={HISTORY_PAGE}&cursor={}", percent_encode(cursor)),
        None => format!("limit={HISTORY_PAGE}"),
    };
    let (sessions, history, questions) = tokio::join!(
        visit.call(Call::get("/v1/account/sessions").signed_in(token)),
        visit.call(
            Call::get("/v1/account/login-history")
                .with_query(history_query)
                .signed_in(token)
        ),
        question_choices(visit),
    );
    for answer in [&sessions, &history] {
        if let Some(stopped) = unless_stopped(answer) {
            return stopped;
        }
    }
    let account = &session.account;
    let mistake = mistake.as_ref();
    let csrf = visit.csrf.as_str();

    let password_form = Form::new("/account/security/password", csrf, "Change my password")
        .field(field(
            "password",
            Field::password("current_password", "Current password", "current-password"),
            mistake,
        ))
        .field(field(
            "password",
            Field::password("new_password", "New password", "new-password")
                .with_hint(PASSWORD_RULES),
            mistake,
        ))
        .field(field(
            "password",
            Field::password("confirm_password", "New password again", "new-password"),
            mistake,
        ))
        .field(field(
            "password",
            Field::checkbox(
                "sign_out_other_devices",
                "Require all devices to sign in with the new password",
                true,
            ),
            mistake,
        ));

    let has_question = account["two_step"]["security_question"] == true;
    let question_form = Form::new(
        "/account/security/question",
        csrf,
        if has_question {
            "Change my question"
        } else {
            "Save my question"
        },
    )
    .field(field(
        "question",
        Field::password("current_password", "Current password", "current-password"),
        mistake,
    ))
    .field(field(
        "question",
        Field::select("question_id", "Question", questions),
        mistake,
    ))
    .field(field(
        "question",
        Field::text("answer", "Answer", "off").with_hint(
            "At least 3 characters. Capital letters and spaces at either end do not matter.",
        ),
        mistake,
    ));

    let totp_on = account["two_step"]["totp"] == true;
    let remaining = account["two_step"]["backup_codes_remaining"]
        .as_u64()
        .unwrap_or(0);
    let (two_step_state, two_step_forms) = if totp_on {
        (
            format!(
                "On: logging in asks for a code from your authenticator app. You have {remaining} unused backup codes."
            ),
            vec![
                Form::new(
                    "/account/security/backup-codes",
                    csrf,
                    "Make new backup codes",
                )
                .heading("Backup codes")
                .intro("New codes replace the old ones, which stop working.")
                .field(field(
                    "codes",
                    Field::password("current_password", "Current password", "current-password"),
                    mistake,
                ))
                .styled("secondary"),
                Form::new(
                    "/account/security/totp/disable",
                    csrf,
                    "Turn off two-step verification",
                )
                .heading("Turn it off")
                .field(field(
                    "off",
                    Field::password("current_password", "Current password", "current-password"),
                    mistake,
                ))
                .field(field(
                    "off",
                    Field::code("code", "Code from your authenticator app or a backup code"),
                    mistake,
                ))
                .styled("danger"),
            ],
        )
    } else {
        (
            "Off: logging in only needs your password. Turn it on to protect your account even if someone learns your password.".to_owned(),
            vec![
                Form::new("/account/security/totp/setup", csrf, "Set up an authenticator app")
                    .field(field("totp", Field::password("current_password", "Current password", "current-password"), mistake)),
            ],
        )
    };

    let devices: Vec<Device> = sessions
        .body
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| {
            let text = |name: &str| s[name].as_str().unwrap_or_default().to_owned();
            let current = s["current"] == true;
            Device {
                name: device_name(&text("user_agent")),
                ip: text("ip"),
                started: when(&text("created_at")),
                started_at: text("created_at"),
                last_seen: when(&text("last_seen_at")),
                last_seen_at: text("last_seen_at"),
                remembered: s["remember_me"] == true,
                current,
                sign_out: (!current).then(|| {
                    Form::new(
                        "/account/security/sessions/revoke",
                        csrf,
                        "Sign out this device",
                    )
                    .field(Field::hidden("session_id", &text("id")))
                    .styled("secondary")
                }),
            }
        })
        .collect();
    let sign_out_others = (devices.len() > 1).then(|| {
        Form::new(
            "/account/security/sessions/revoke-others",
            csrf,
            "Sign out all other devices",
        )
        .styled("danger")
    });

    let history_entries = history
        .body
        .as_array()
        .into_iter()
        .flatten()
        .map(|entry| {
            let text = |name: &str| entry[name].as_str().unwrap_or_default().to_owned();
            HistoryEntry {
                when: when(&text("at")),
                at: text("at"),
                outcome: outcome_in_words(&text("outcome")),
                device: device_name(&text("user_agent")),
                ip: text("ip"),
            }
        })
        .collect();

    let verified = account["email_verified"] == true;
    let delivery_problem = match account["email_delivery"].as_str() {
        Some("bounced") => Some(
            "We could not deliver email to this address. Check it is right: until it changes, we send nothing to it.",
        ),
        Some("complained") => Some(
            "This address marked one of our emails as spam, so we only send the emails you ask for.",
        ),
        _ => None,
    };
    let mut page = Settings {
        h1: "Security settings".to_owned(),
        notice: notice(visit),
        errors: Vec::new(),
        problem: None,
        email: account["email"].as_str().unwrap_or_default().to_owned(),
        email_state: if verified {
            "confirmed"
        } else {
            "not confirmed yet"
        },
        delivery_problem,
        password_form,
        question_state: if has_question {
            "Set. It is one way to prove it is you when you log in with two-step verification."
        } else {
            "Not set. A security question is one more way to prove it is you."
        },
        question_form,
        two_step_state,
        two_step_forms,
        devices,
        sign_out_others,
        history: history_entries,
        history_paged: history_after.is_some(),
        history_next: history.next_cursor.map(|cursor| {
            format!(
                "/account/security?history_after={}#history",
                percent_encode(&cursor)
            )
        }),
        log_out: Form::new("/logout", csrf, "Log out").styled("secondary"),
    };
    let mut forms: Vec<Form> = vec![page.password_form.clone(), page.question_form.clone()];
    forms.extend(page.two_step_forms.iter().cloned());
    page.errors = summary(&forms);
    if page.errors.is_empty() {
        page.problem = mistake.map(|m| m.message.clone());
    }
    Answer::page(status, &page).with_cookies(session.cookies.clone())
}

/// The signed-in visitor, or the answer that sends the browser to log in (and back to
/// the settings).
async fn require_session(visit: &Visit<'_>) -> Result<SignedIn, Answer> {
    let back = if visit.request.method == Method::GET {
        visit.path_and_query()
    } else {
        "/account/security".to_owned()
    };
    signed_in(visit.app, visit.request, &back).await
}

pub async fn settings(visit: &Visit<'_>) -> Answer {
    match require_session(visit).await {
        Ok(session) => settings_page(visit, &session, None, StatusCode::OK).await,
        Err(answer) => answer,
    }
}

/// Sends `call` on behalf of the signed-in visitor. `Err` is the answer that ends the
/// step there: the login page without a session, the 429 or 5xx page.
async fn signed_in_call(
    visit: &Visit<'_>,
    call: Call<'_>,
) -> Result<(SignedIn, ApiAnswer), Answer> {
    let session = require_session(visit).await?;
    let answer = visit.call(call.signed_in(&session.access_token)).await;
    if let Some(stopped) = unless_stopped(&answer) {
        return Err(stopped);
    }
    Ok((session, answer))
}

/// Runs a settings action: the call, then a redirect with `notice` on success, the page
/// with the mistake `refused` names otherwise.
async fn act(
    visit: &Visit<'_>,
    call: Call<'_>,
    notice: &str,
    refused: impl FnOnce(&ApiAnswer) -> Mistake,
) -> Answer {
    let (session, answer) = match signed_in_call(visit, call).await {
        Ok(done) => done,
        Err(stopped) => return stopped,
    };
    if answer.is_success() {
        return Answer::redirect(&format!("/account/security?notice={notice}"))
            .with_cookies(session.cookies);
    }
    let mistake = refused(&answer);
    settings_page(visit, &session, Some(mistake), answer.status).await
}

fn password_mistake(form: &'static str, answer: &ApiAnswer) -> Mistake {
    match answer.code() {
        "invalid_credentials" => {
            Mistake::new(form, "current_password", "That password is not right.")
        }
        "invalid_code" => Mistake::new(form, "code", "That code is not right."),
        "stronger_factor_required" => Mistake::new(
            form,
            "current_password",
            "This needs a stronger second step than the security question: log out, then log in again with your authenticator app or a backup code.",
        ),
        _ => Mistake::new(form, "current_password", "Check this field."),
    }
}

pub async fn change_password(visit: &Visit<'_>) -> Answer {
    let posted = &visit.posted;
    if posted.value("new_password") != posted.value("confirm_password") {
        return match require_session(visit).await {
            Ok(session) => {
                let mistake = Mistake::new(
                    "password",
                    "confirm_password",
                    "The two passwords are not the same.",
                );
                settings_page(visit, &session, Some(mistake), StatusCode::BAD_REQUEST).await
            }
            Err(answer) => answer,
        };
    }
    let body = json!({
        "current_password": posted.value("current_password"),
        "new_password": posted.value("new_password"),
        "sign_out_other_devices": posted.ticked("sign_out_other_devices"),
    });
    act(
        visit,
        Call::post("/v1/account/password", body),
        "password_changed",
        |answer| match answer.field_errors().first() {
            Some((field, code)) => {
                Mistake::new("password", "new_password", message_for(field, code))
            }
            None => password_mistake("password", answer),
        },
    )
    .await
}

pub async fn change_question(visit: &Visit<'_>) -> Answer {
    let posted = &visit.posted;
    let body = json!({
        "current_password": posted.value("current_password"),
        "question_id": posted.value("question_id"),
        "answer": posted.value("answer"),
    });
    act(
        visit,
        Call::post("/v1/account/security-question", body).with_method(Method::PUT),
        "question_changed",
        |answer| match answer.code() {
            "invalid_credentials" => password_mistake("question", answer),
            _ => Mistake::new("question", "answer", message_for("answer", answer.code())),
        },
    )
    .await
}

pub async fn totp_disable(visit: &Visit<'_>) -> Answer {
    let posted = &visit.posted;
    let body = json!({
        "current_password": posted.value("current_password"),
        "code": posted.trimmed("code"),
    });
    act(
        visit,
        Call::post("/v1/2fa/totp", body).with_method(Method::DELETE),
        "two_step_off",
        |answer| password_mistake("off", answer),
    )
    .await
}

pub async fn revoke_session(visit: &Visit<'_>) -> Answer {
    let id = visit.posted.value("session_id");
    let path = format!("/v1/account/sessions/{}", percent_encode(id));
    act(
        visit,
        Call::get(path).with_method(Method::DELETE),
        "signed_out_device",
        |answer| {
            let words = if answer.code() == "not_found" {
                "That device was already signed out."
            } else {
                "That device could not be signed out."
            };
            Mistake::new("devices", "session_id", words)
        },
    )
    .await
}

pub async fn revoke_others(visit: &Visit<'_>) -> Answer {
    act(
        visit,
        Call::post("/v1/account/sessions/revoke-others", Value::Null),
        "signed_out_others",
        |_| {
            Mistake::new(
                "devices",
                "session_id",
                "The other devices could not be signed out.",
            )
        },
    )
    .await
}

#[derive(Template)]
#[template(path = "web/totp_setup.html")]
struct TotpSetup {
    h1: String,
    errors: Vec<ErrorLink>,
    qr_svg: Option<String>,
    secret_grouped: String,
    confirm: Form,
}

fn totp_confirm_form(visit: &Visit<'_>, error: Option<String>) -> Form {
    Form::new(
        "/account/security/totp/confirm",
        &visit.csrf,
        "Turn on two-step verification",
    )
    .field(Field::code("code", "6-digit code from the app").with_error(error))
}

/// The secret in groups of four, easier to type.
fn grouped(secret: &str) -> String {
    secret
        .as_bytes()
        .chunks(4)
        .map(|chunk| String::from_utf8_lossy(chunk).into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

pub async fn totp_setup(visit: &Visit<'_>) -> Answer {
    let call = Call::post(
        "/v1/2fa/totp/setup",
        json!({ "current_password": visit.posted.value("current_password") }),
    );
    let (session, answer) = match signed_in_call(visit, call).await {
        Ok(done) => done,
        Err(stopped) => return stopped,
    };
    if !answer.is_success() {
        let mistake = password_mistake("totp", &answer);
        return settings_page(visit, &session, Some(mistake), answer.status).await;
    }
    let page = TotpSetup {
        h1: "Set up your authenticator app".to_owned(),
        errors: Vec::new(),
        qr_svg: answer.text("qr_svg"),
        secret_grouped: grouped(&answer.text("secret").unwrap_or_default()),
        confirm: totp_confirm_form(visit, None),
    };
    Answer::page(StatusCode::OK, &page).with_cookies(session.cookies)
}

#[derive(Template)]
#[template(path = "web/backup_codes.html")]
struct BackupCodes {
    h1: String,
    notice: Option<String>,
    codes: Vec<String>,
    download: String,
}

fn backup_codes_page(answer: &ApiAnswer, h1: &str, notice: &str) -> BackupCodes {
    let codes: Vec<String> = answer.body["backup_codes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c.as_str().map(str::to_owned))
        .collect();
    let text = format!("Backup codes (each works once)\n\n{}\n", codes.join("\n"));
    BackupCodes {
        h1: h1.to_owned(),
        notice: Some(notice.to_owned()),
        download: format!(
            "data:text/plain;charset=utf-8,{}",
            percent_encode(&text).replace('+', "%20")
        ),
        codes,
    }
}

pub async fn totp_confirm(visit: &Visit<'_>) -> Answer {
    let call = Call::post(
        "/v1/2fa/totp/confirm",
        json!({ "code": visit.posted.trimmed("code") }),
    );
    let (session, answer) = match signed_in_call(visit, call).await {
        Ok(done) => done,
        Err(stopped) => return stopped,
    };
    if !answer.is_success() {
        let confirm = totp_confirm_form(
            visit,
            Some("That code is not right. Enter the code the app shows now; if the setup is older than 10 minutes, start again.".to_owned()),
        );
        let page = TotpSetup {
            h1: "Set up your authenticator app".to_owned(),
            errors: summary(std::slice::from_ref(&confirm)),
            qr_svg: None,
            secret_grouped: String::new(),
            confirm,
        };
        return Answer::page(answer.status, &page).with_cookies(session.cookies);
    }
    let page = backup_codes_page(
        &answer,
        "Save your backup codes",
        "Two-step verification is on.",
    );
    Answer::page(StatusCode::OK, &page).with_cookies(session.cookies)
}

pub async fn backup_codes(visit: &Visit<'_>) -> Answer {
    let call = Call::post(
        "/v1/2fa/backup-codes",
        json!({ "current_password": visit.posted.value("current_password") }),
    );
    let (session, answer) = match signed_in_call(visit, call).await {
        Ok(done) => done,
        Err(stopped) => return stopped,
    };
    if !answer.is_success() {
        let mistake = password_mistake("codes", &answer);
        return settings_page(visit, &session, Some(mistake), answer.status).await;
    }
    let page = backup_codes_page(
        &answer,
        "Your new backup codes",
        "Your old backup codes no longer work.",
    );
    Answer::page(StatusCode::OK, &page).with_cookies(session.cookies)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_are_named_by_browser_and_system() {
        let chrome = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36";
        assert_eq!(device_name(chrome), "Chrome on Linux");
        let iphone = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 Version/17.0 Mobile/15E148 Safari/604.1";
        assert_eq!(device_name(iphone), "Safari on iPhone");
        assert_eq!(device_name(""), "Unknown device");
        assert_eq!(device_name("curl/8.0"), "curl/8.0");
    }

    #[test]
    fn times_read_as_day_and_minute_in_utc() {
        assert_eq!(when("2026-12-02T16:40:12Z"), "2026-12-02 16:40 UTC");
    }
}
