//! Recovery by email: "forgot password" and "forgot security answer" links, and
//! redeeming them. Asking always answers `202` after the same time; redeeming a
//! password reset ends every session, and needs the second factor when the account
//! has two-step verification.

use anyhow::Context;
use http::StatusCode;
use serde::Deserialize;

use crate::app::App;
use crate::credentials::emailed_link::{self, Presented, Purpose};
use crate::credentials::security_answer::{self};
use crate::http::{ApiRequest, ApiResponse, Problem};
use crate::protections::backoff::{self, Counter};
use crate::protections::rate_limit::RateLimit;
use crate::protections::reauthentication;
use crate::protections::second_factors::{self, FactorProof};
use crate::protections::security_notices::{self, PasswordReplaced};
use crate::records::{SessionEpoch, User, attr, keys};
use crate::store::{Change, Cond, Key, Write, WriteError, schema};
use crate::values::login_id::LoginId;
use crate::values::new_password::NewPassword;
use crate::values::secret::Secret;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ForgotRequest {
    login: String,
}

/// `POST /v1/password/forgot`
pub async fn forgot_password(app: &App, request: &ApiRequest) -> Result<ApiResponse, Problem> {
    forgot(app, request, Purpose::PasswordReset).await
}

/// `POST /v1/security-question/forgot`
pub async fn forgot_security_answer(
    app: &App,
    request: &ApiRequest,
) -> Result<ApiResponse, Problem> {
    forgot(app, request, Purpose::SecurityQuestionReset).await
}

/// Mails a recovery link to the account a login names. The answer and its timing are
/// the same whether or not there is such an account: the work happens inside the
/// enumeration floor, and the response says nothing.
async fn forgot(app: &App, request: &ApiRequest, purpose: Purpose) -> Result<ApiResponse, Problem> {
    let body: ForgotRequest = request.json()?;
    let limit = RateLimit::per_hour("forgot", app.config.limits.recoveries_per_ip_per_hour);
    limit.check_ip(app, &request.client).await?;
    let login = LoginId::parse(&body.login);
    app.with_floor(async {
        let Some(login) = login else {
            return Ok(());
        };
        let user = crate::records::lookup::find_by_login(app.store.as_ref(), &login).await?;
        match user {
            // "Forgot your answer" only makes sense for an account that has one.
            Some(user) if purpose == Purpose::PasswordReset || user.security_question.is_some() => {
                send_link(app, &user, purpose).await
            }
            _ => Ok(()),
        }
    })
    .await
    .map_err(Problem::from)?;
    Ok(crate::http::status(StatusCode::ACCEPTED, "email_sent"))
}

/// Issues a fresh link for the account and mails it to the stored address, unless one
/// went out less than a minute ago. A new link replaces the old one, which stops
/// working.
async fn send_link(app: &App, user: &User, purpose: Purpose) -> anyhow::Result<()> {
    let (token, stored) = emailed_link::issue(&user.id, purpose, app.now())?;
    match app.store.write(stored).await {
        Ok(_) => {
            let link = app
                .config
                .app_base_url
                .link(purpose.page(), &token.expose());
            app.send_quietly(&user.email, user.mail_delivery, purpose.message(link))
                .await;
            Ok(())
        }
        Err(WriteError::ConditionFailed { .. }) => Ok(()),
        Err(WriteError::Unexpected(e)) => Err(e.context("storing a recovery link")),
    }
}

/// A presented link with everything needed to judge it, read in one round trip: the
/// account and the link record.
struct Redemption {
    presented: Presented,
    user: User,
}

async fn load_redemption(
    app: &App,
    token: &Secret,
    purpose: Purpose,
) -> Result<Redemption, Problem> {
    let presented = Presented::parse(token.expose())?;
    let (user_key, link_key) = (
        keys::user(&presented.user_id),
        purpose.key(&presented.user_id),
    );
    let items = app
        .store
        .get_many(&[user_key.clone(), link_key.clone()])
        .await
        .context("reading a recovery link")?;
    let find = |key: &Key| items.iter().find(|i| i.key().as_ref() == Some(key));
    presented.check(find(&link_key), app.now())?;
    let user = find(&user_key)
        .map(User::from_item)
        .transpose()?
        .ok_or(emailed_link::LinkError::Invalid)?;
    Ok(Redemption { presented, user })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResetRequest {
    token: Secret,
    new_password: Secret,
    mfa: Option<FactorProof>,
}

/// `POST /v1/password/reset`: the emailed link (and, with two-step verification on, a
/// second factor) sets a new password. One transaction spends the link and the factor,
/// stores the hash, ends every session (the account's epoch moves on), kills every other
/// recovery link and clears the password back-off. Password failures never block it:
/// the factor has a counter of its own.
pub async fn reset_password(app: &App, request: &ApiRequest) -> Result<ApiResponse, Problem> {
    let body: ResetRequest = request.json()?;
    let purpose = Purpose::PasswordReset;
    let Redemption { presented, user } = load_redemption(app, &body.token, purpose).await?;
    let password =
        NewPassword::for_account(&body.new_password, &user.email, user.username.as_deref())?;
    // A mailbox alone must not take over an account with two-step verification.
    let mut factor = second_factors::require_factor(
        app,
        request,
        &user,
        &second_factors::methods(&user),
        body.mfa,
        presented.count_wrong_factor(purpose),
    )
    .await?;
    let spend = std::mem::take(&mut factor.spend);
    let reset = async {
        let hash = app.passwords.hash(&password).await?;
        let index = schema::UNVERIFIED_BY_DAY;
        let mut changes = vec![
            Change::set(attr::PASSWORD_HASH, hash.0),
            // An account made through Google or Apple has a password from now on.
            Change::remove(attr::PASSWORD_UNUSABLE),
            // The link proved the address: an unverified account is verified now.
            Change::set(attr::EMAIL_VERIFIED, true),
            Change::remove(index.pk),
            Change::remove(index.sk),
        ];
        changes.extend(SessionEpoch::end_all(None));
        let [_, question_link] = Purpose::kill_all(&user.id);
        let mut writes = vec![
            presented.spend(purpose, app.now()),
            spend.account_write(&user.id, changes, Cond::ItemExists),
            question_link,
            Write::delete(keys::verification(&user.id)),
            backoff::clear(Counter::Address { user_id: &user.id }),
        ];
        if let Some(username) = &user.username_canonical {
            writes.push(backoff::clear(Counter::Login {
                canonical: username,
            }));
        }
        writes.extend(factor.succeeded());
        app.store.transact(writes).await.map_err(|e| match e {
            e if e.failed_at(0).is_some() => Problem::from(emailed_link::LinkError::Invalid),
            // The second factor was spent by a concurrent request (a replayed code).
            e if e.failed_at(1).is_some() => second_factors::invalid_code(),
            e => Problem::from(anyhow::Error::from(e).context("resetting a password")),
        })
    };
    let outcome = reset.await;
    factor.finish(app, outcome).await?;
    security_notices::password_replaced(app, &user, &request.client, PasswordReplaced::Reset).await;
    Ok(crate::http::status(StatusCode::OK, "password_reset"))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResetSecurityQuestionRequest {
    token: Secret,
    password: Secret,
    question_id: String,
    answer: Secret,
    mfa: Option<FactorProof>,
}

/// `POST /v1/security-question/reset`: the emailed link and the account password
/// together set a new question and answer; on an account with two-step verification, a
/// second factor other than the question itself is needed too, so that the link and the
/// password never replace a factor.
pub async fn reset_security_question(
    app: &App,
    request: &ApiRequest,
) -> Result<ApiResponse, Problem> {
    let body: ResetSecurityQuestionRequest = request.json()?;
    let purpose = Purpose::SecurityQuestionReset;
    let Redemption { presented, user } = load_redemption(app, &body.token, purpose).await?;
    let answer =
        security_answer::parse_answer(&body.question_id, &body.answer, &body.password, &user)?;
    let proven = reauthentication::check_password(app, request, &user, &body.password).await?;
    let reset = async {
        let mut factor = second_factors::require_factor(
            app,
            request,
            &user,
            &second_factors::possession_methods(&user),
            body.mfa,
            presented.count_wrong_factor(purpose),
        )
        .await?;
        let spend = std::mem::take(&mut factor.spend);
        let replaced = async {
            let stored =
                security_answer::hash_answer(&app.passwords, &body.question_id, &answer).await?;
            let mut writes = vec![
                presented.spend(purpose, app.now()),
                spend.account_write(
                    &user.id,
                    security_answer::answer_changes(&stored),
                    Cond::ItemExists,
                ),
                proven.succeeded(),
            ];
            writes.extend(factor.succeeded());
            app.store.transact(writes).await.map_err(|e| match e {
                e if e.failed_at(0).is_some() => Problem::from(emailed_link::LinkError::Invalid),
                e if e.failed_at(1).is_some() => second_factors::invalid_code(),
                e => Problem::from(anyhow::Error::from(e).context("resetting a security question")),
            })
        };
        let outcome = replaced.await;
        factor.finish(app, outcome).await
    };
    let outcome = reset.await;
    proven.finish(app, outcome).await?;
    security_notices::question_changed(app, &user, &request.client).await;
    Ok(crate::http::status(
        StatusCode::OK,
        "security_question_reset",
    ))
}
