//! Protecting a signed-in account: changing the password (signing out other devices by
//! default) and setting the security question.

use http::StatusCode;
use serde::Deserialize;

use crate::app::App;
use crate::credentials::emailed_link::Purpose;
use crate::credentials::security_answer::{answer_changes, hash_answer, parse_answer};
use crate::http::{ApiRequest, ApiResponse, Problem};
use crate::protections::reauthentication::{self, Reauthenticated};
use crate::protections::security_notices::{self, PasswordReplaced};
use crate::protections::sessions::{SignedIn, signed_in};
use crate::records::{SessionEpoch, User, attr, keys};
use crate::store::{Change, Cond, Write};
use crate::values::new_password::NewPassword;
use crate::values::secret::Secret;

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

/// `POST /v1/account/password`: the new hash, the end of the other sessions (when asked:
/// the account's epoch moves on and only the caller's session is kept) and of every
/// recovery link, and the cleared re-authentication claim, in one transaction.
pub async fn change_password(app: &App, request: &ApiRequest) -> Result<ApiResponse, Problem> {
    let SignedIn {
        principal, user, ..
    } = signed_in(app, request, None).await?;
    let body: ChangePasswordRequest = request.json()?;
    // Checked before the current password: a weak choice should not cost a try.
    let password =
        NewPassword::for_account(&body.new_password, &user.email, user.username.as_deref())?;
    let proven =
        reauthentication::check_password(app, request, &user, &body.current_password).await?;
    let keep = body
        .sign_out_other_devices
        .then_some(principal.session_id.as_str());
    let outcome = replace_password(app, &user, &password, &proven, keep).await;
    proven.finish(app, outcome).await?;
    security_notices::password_replaced(app, &user, &request.client, PasswordReplaced::Changed)
        .await;
    Ok(crate::http::status(StatusCode::OK, "password_changed"))
}

/// Stores the new password's hash in one transaction with the end of the other sessions
/// (when `keep` names the caller's), of every recovery link, and of the password check's
/// claim.
async fn replace_password(
    app: &App,
    user: &User,
    password: &NewPassword,
    proven: &Reauthenticated,
    keep: Option<&str>,
) -> Result<(), Problem> {
    let hash = app.passwords.hash(password).await?;
    let mut changes = vec![Change::set(attr::PASSWORD_HASH, hash.0)];
    if let Some(session_id) = keep {
        changes.extend(SessionEpoch::end_all(Some(session_id)));
    }
    let mut writes = vec![
        // Another change since the read (a reset, say) wins; this one must not undo it.
        Write::update(keys::user(&user.id), changes)
            .when(Cond::eq(attr::PASSWORD_HASH, user.password_hash.0.as_str())),
        proven.succeeded(),
    ];
    writes.extend(Purpose::kill_all(&user.id));
    app.store.transact(writes).await.map_err(|e| match e {
        e if e.failed_at(0).is_some() => Problem::new(
            StatusCode::CONFLICT,
            "conflict",
            "The password was changed by another request. Please try again.",
        ),
        e => Problem::from(anyhow::Error::from(e).context("changing a password")),
    })
}

/// `GET /v1/security-questions` (public)
pub fn security_questions() -> ApiResponse {
    crate::http::json(
        StatusCode::OK,
        &crate::credentials::security_answer::QUESTIONS,
    )
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
    let SignedIn { user, .. } = signed_in(app, request, None).await?;
    let body: SetSecurityQuestionRequest = request.json()?;
    // Checked before the password: a bad answer should not cost a try.
    let answer = parse_answer(
        &body.question_id,
        &body.answer,
        &body.current_password,
        &user,
    )?;
    let proven =
        reauthentication::check_password(app, request, &user, &body.current_password).await?;
    let set = async {
        let stored = hash_answer(&app.passwords, &body.question_id, &answer).await?;
        let answer_set =
            Write::update(keys::user(&user.id), answer_changes(&stored)).when(Cond::ItemExists);
        app.store
            .transact(vec![answer_set, proven.succeeded()])
            .await
            .map_err(|e| {
                Problem::from(anyhow::Error::from(e).context("setting a security question"))
            })
    };
    let outcome = set.await;
    proven.finish(app, outcome).await?;
    security_notices::question_changed(app, &user, &request.client).await;
    Ok(crate::http::status(StatusCode::OK, "security_question_set"))
}
