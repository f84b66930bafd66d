//! Protecting a signed-in account: changing the password (signing out other devices by
//! default) and setting the security question.

use http::StatusCode;
use serde::Deserialize;

use crate::account::end_sessions;
use crate::app::App;
use crate::http::{ApiRequest, ApiResponse, Problem};
use crate::notify::{self, PasswordReplaced};
use crate::password::NewPassword;
use crate::records::{User, attr, keys};
use crate::recovery::{
    HeldClaim, check_password_holding_claim, hash_answer, notify_question_changed, parse_answer,
    set_answer_write,
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
    // Checked before the current password: a weak choice should not cost a try.
    let password = NewPassword::for_account(&body.new_password, &user)?;
    // The other sessions are read while the password is checked: one step, not two.
    let (held, others) = tokio::join!(
        check_password_holding_claim(app, request, &user, &body.current_password),
        async {
            if body.sign_out_other_devices {
                session::end_all_writes(app, &user.id, Some(&principal.session_id)).await
            } else {
                Ok(Vec::new())
            }
        }
    );
    let held = held?;
    let replaced = replace_password(app, &user, &password, &held, others).await;
    let others = held.finish(app, replaced).await?;
    end_sessions(app, others).await?;
    notify::password_replaced(app, &user.email, &request.client, PasswordReplaced::Changed).await;
    Ok(crate::http::status(StatusCode::OK, "password_changed"))
}

/// Stores the new password's hash, ends the claim of the password check and (if asked)
/// the other sessions, in one transaction. Returns the session ends that did not fit.
async fn replace_password(
    app: &App,
    user: &User,
    password: &NewPassword,
    held: &HeldClaim,
    others: anyhow::Result<Vec<Write>>,
) -> Result<Vec<Write>, Problem> {
    let mut others = others?;
    let hash = app.passwords.hash(password).await?;
    let mut writes = vec![
        // Another change since the read (a reset, say) wins; this one must not undo it.
        Write::update(
            keys::user(&user.id),
            vec![Change::set(attr::PASSWORD_HASH, hash.0)],
        )
        .when(Cond::eq(attr::PASSWORD_HASH, user.password_hash.0.as_str())),
        held.clear(),
    ];
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
    Ok(others)
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
    let held = check_password_holding_claim(app, request, &user, &body.current_password).await?;
    let set = async {
        let answer = parse_answer(
            &body.question_id,
            &body.answer,
            &body.current_password,
            &user,
        )?;
        let stored = hash_answer(app, &body.question_id, &answer).await?;
        app.store
            .transact(vec![set_answer_write(&user.id, &stored), held.clear()])
            .await
            .map_err(|e| {
                Problem::from(anyhow::Error::from(e).context("setting a security question"))
            })
    };
    held.finish(app, set.await).await?;
    notify_question_changed(app, request, &user).await;
    Ok(crate::http::status(StatusCode::OK, "security_question_set"))
}
