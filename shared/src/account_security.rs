//! Protecting a signed-in account: changing the password (signing out other devices by
//! default) and setting the security question.

use http::StatusCode;
use serde::Deserialize;

use crate::account::end_sessions;
use crate::app::App;
use crate::http::{ApiRequest, ApiResponse, Problem};
use crate::lockout;
use crate::mail::messages::Message;
use crate::notify::Occurrence;
use crate::password::NewPassword;
use crate::records::{attr, keys};
use crate::recovery::{
    check_password, hash_answer, notify_question_changed, parse_answer, set_answer_write,
};
use crate::secret::Secret;
use crate::session;
use crate::store::{Change, Cond, MAX_TRANSACTION_WRITES, Write};

fn default_true() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChangePasswordRequest {
    current_password: Secret,
    new_password: Secret,
    #[serde(default = "default_true")]
    sign_out_other_devices: bool,
}

/// `POST /v1/account/password`
pub async fn change_password(app: &App, request: &ApiRequest) -> Result<ApiResponse, Problem> {
    let body: ChangePasswordRequest = request.json()?;
    let (principal, user, _) = session::signed_in(app, request, None).await?;
    check_password(app, request, &user, &body.current_password).await?;
    let password = NewPassword::for_account(&body.new_password, &user)?;
    let hash = app.passwords.hash(&password).await?;
    let mut writes = vec![
        // Another change since the read (a reset, say) wins; this one must not undo it.
        Write::update(
            keys::user(&user.id),
            vec![Change::set(attr::PASSWORD_HASH, hash.0)],
        )
        .when(Cond::eq(attr::PASSWORD_HASH, user.password_hash.0.as_str())),
        lockout::clear(keys::account_lockout(&user.id)),
    ];
    let mut others = if body.sign_out_other_devices {
        session::end_all_writes(app, &user.id, Some(&principal.session_id)).await?
    } else {
        Vec::new()
    };
    let room = MAX_TRANSACTION_WRITES - writes.len();
    writes.extend(others.drain(..room.min(others.len())));
    app.store.transact(writes).await.map_err(|e| match e {
        e if e.failed_at(0).is_some() => Problem::new(
            StatusCode::CONFLICT,
            "conflict",
            "The password was changed by another request. Please try again.",
        ),
        e => Problem::from(anyhow::Error::from(e).context("changing a password")),
    })?;
    end_sessions(app, others).await?;
    let seen = Occurrence::of(app, &request.client);
    app.send_quietly(
        &user.email,
        Message::PasswordChanged {
            when: seen.when,
            ip: seen.ip,
            device: seen.device,
            reset_url: app.config.app_base_url.page("/forgot-password"),
        },
    )
    .await;
    Ok(crate::http::status(StatusCode::OK, "password_changed"))
}

/// `GET /v1/security-questions` (public)
pub fn security_questions() -> ApiResponse {
    crate::http::json(StatusCode::OK, &crate::security_question::QUESTIONS)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetSecurityQuestionRequest {
    current_password: Secret,
    question_id: String,
    answer: Secret,
}

/// `PUT /v1/account/security-question`
pub async fn set_security_question(
    app: &App,
    request: &ApiRequest,
) -> Result<ApiResponse, Problem> {
    let body: SetSecurityQuestionRequest = request.json()?;
    let (_, user, _) = session::signed_in(app, request, None).await?;
    check_password(app, request, &user, &body.current_password).await?;
    let answer = parse_answer(
        &body.question_id,
        &body.answer,
        &body.current_password,
        &user,
    )?;
    let stored = hash_answer(app, &body.question_id, &answer).await?;
    app.store
        .transact(vec![
            set_answer_write(&user.id, &stored),
            lockout::clear(keys::account_lockout(&user.id)),
        ])
        .await
        .map_err(|e| anyhow::Error::from(e).context("setting a security question"))?;
    notify_question_changed(app, request, &user).await;
    Ok(crate::http::status(StatusCode::OK, "security_question_set"))
}
