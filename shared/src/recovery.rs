//! Recovery by email: "forgot password" and "forgot security answer" links, and
//! redeeming them. Asking always answers `202` after the same time; redeeming a
//! password reset ends every session, and needs the second factor when the account
//! has two-step verification.

use anyhow::Context;
use http::StatusCode;
use serde::Deserialize;

use crate::account::end_sessions;
use crate::app::App;
use crate::history;
use crate::http::{ApiRequest, ApiResponse, FieldError, Problem};
use crate::lockout;
use crate::login::LoginId;
use crate::mail::messages::Message;
use crate::notify::{self, Occurrence, PasswordReplaced};
use crate::password::{NewPassword, Verdict};
use crate::rate_limit::RateLimit;
use crate::records::{SecurityAnswer, User, attr, keys};
use crate::recovery_link::{self, Presented, Purpose};
use crate::secret::Secret;
use crate::security_question::{self, NewAnswer};
use crate::session;
use crate::store::{Change, Cond, Item, Key, MAX_TRANSACTION_WRITES, Write, WriteError, schema};
use crate::two_step::{self, FactorProof};

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
        let user = crate::accounts::find_by_login(app, &login).await?;
        match user {
            // "Forgot your answer" only makes sense for an account that has one.
            Some(user) if purpose == Purpose::PasswordReset || user.security_question.is_some() => {
                recovery_link::issue_and_send(app, &user, purpose).await
            }
            _ => Ok(()),
        }
    })
    .await
    .map_err(Problem::from)?;
    Ok(crate::http::status(StatusCode::ACCEPTED, "email_sent"))
}

/// A presented link with everything needed to judge it, read in one round trip: the
/// account, the link record and the account's back-off.
struct Redemption {
    presented: Presented,
    user: User,
    lockout: Option<Item>,
}

async fn load_redemption(
    app: &App,
    token: &Secret,
    purpose: Purpose,
) -> Result<Redemption, Problem> {
    let presented = Presented::parse(token.expose())?;
    let (user_key, link_key, lockout_key) = (
        keys::user(&presented.user_id),
        purpose.key(&presented.user_id),
        keys::account_lockout(&presented.user_id),
    );
    let items = app
        .store
        .get_many(&[user_key.clone(), link_key.clone(), lockout_key.clone()])
        .await
        .context("reading a recovery link")?;
    let find = |key: &Key| items.iter().find(|i| i.key().as_ref() == Some(key));
    presented.check(find(&link_key), app.now())?;
    let user = find(&user_key)
        .map(User::from_item)
        .transpose()?
        .ok_or(recovery_link::LinkError::Invalid)?;
    Ok(Redemption {
        presented,
        user,
        lockout: find(&lockout_key).cloned(),
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResetRequest {
    token: Secret,
    new_password: Secret,
    mfa: Option<FactorProof>,
}

/// `POST /v1/password/reset`
pub async fn reset_password(app: &App, request: &ApiRequest) -> Result<ApiResponse, Problem> {
    let body: ResetRequest = request.json()?;
    let Redemption {
        presented,
        user,
        lockout,
    } = load_redemption(app, &body.token, Purpose::PasswordReset).await?;
    let password = NewPassword::for_account(&body.new_password, &user)?;
    // A mailbox alone must not take over an account with two-step verification.
    let factor =
        two_step::require_for_reset(app, request, &user, lockout.as_ref(), body.mfa).await?;
    let hash = app.passwords.hash(&password).await?;
    let now = app.now();
    let index = schema::UNVERIFIED_BY_DAY;
    let account_update = factor.account_update(
        &user.id,
        vec![
            Change::set(attr::PASSWORD_HASH, hash.0),
            // The link proved the address: an unverified account is verified now.
            Change::set(attr::EMAIL_VERIFIED, true),
            Change::remove(index.pk),
            Change::remove(index.sk),
        ],
        Cond::ItemExists,
    );
    let mut writes = vec![presented.spend(Purpose::PasswordReset, now)];
    writes.extend(account_update);
    writes.extend([
        Write::delete(keys::verification(&user.id)),
        lockout::clear(keys::account_lockout(&user.id)),
    ]);
    if let Some(username) = &user.username_canonical {
        writes.push(lockout::clear(keys::login_lockout(username)));
    }
    let mut sessions = session::end_all_writes(app, &user.id, None).await?;
    let room = MAX_TRANSACTION_WRITES.saturating_sub(writes.len());
    writes.extend(sessions.drain(..room.min(sessions.len())));
    app.store.transact(writes).await.map_err(|e| match e {
        e if e.failed_at(0).is_some() => Problem::from(recovery_link::LinkError::Invalid),
        // The second factor was spent by a concurrent request (a replayed code).
        e if e.failed_at(1).is_some() => two_step::invalid_code(),
        e => Problem::from(anyhow::Error::from(e).context("resetting a password")),
    })?;
    end_sessions(app, sessions).await?;
    notify::password_replaced(app, &user.email, &request.client, PasswordReplaced::Reset).await;
    Ok(crate::http::status(StatusCode::OK, "password_reset"))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResetSecurityQuestionRequest {
    token: Secret,
    password: Secret,
    question_id: String,
    answer: Secret,
}

/// `POST /v1/security-question/reset`: the emailed link and the account password
/// together set a new question and answer.
pub async fn reset_security_question(
    app: &App,
    request: &ApiRequest,
) -> Result<ApiResponse, Problem> {
    let body: ResetSecurityQuestionRequest = request.json()?;
    let Redemption {
        presented, user, ..
    } = load_redemption(app, &body.token, Purpose::SecurityQuestionReset).await?;
    let held = check_password_holding_claim(app, request, &user, &body.password).await?;
    let reset = async {
        let answer = parse_answer(&body.question_id, &body.answer, &body.password, &user)?;
        let stored = hash_answer(app, &body.question_id, &answer).await?;
        let writes = vec![
            presented.spend(Purpose::SecurityQuestionReset, app.now()),
            set_answer_write(&user.id, &stored),
            held.clear(),
        ];
        app.store.transact(writes).await.map_err(|e| match e {
            e if e.failed_at(0).is_some() => Problem::from(recovery_link::LinkError::Invalid),
            e => Problem::from(anyhow::Error::from(e).context("resetting a security question")),
        })
    };
    held.finish(app, reset.await).await?;
    notify_question_changed(app, request, &user).await;
    Ok(crate::http::status(
        StatusCode::OK,
        "security_question_reset",
    ))
}

/// Checks the account password of a signed-in or link-holding person under the login
/// back-off: like a login, the check first claims the account's counter (refused while
/// locked, so parallel guesses get no extra tries), and a wrong password counts as a
/// failure. Returns the counter as the claim found it, the claim released.
pub async fn check_password(
    app: &App,
    request: &ApiRequest,
    user: &User,
    password: &Secret,
) -> Result<Option<Item>, Problem> {
    let held = check_password_holding_claim(app, request, user, password).await?;
    held.release(app).await?;
    Ok(held.counter)
}

/// A right password whose back-off claim is still held, for a caller that ends with one
/// transaction: [`HeldClaim::clear`] goes into it (a success clears the failures anyway),
/// which saves the separate release; a caller that stops before must
/// [`HeldClaim::release`] it, or the account waits out the lease.
pub struct HeldClaim {
    key: Key,
    /// The counter as the claim found it.
    pub counter: Option<Item>,
}

impl HeldClaim {
    /// The write that ends the claim and the run of failures, for the final transaction.
    pub fn clear(&self) -> Write {
        lockout::clear(self.key.clone())
    }

    /// Hands back what the caller's last step (its transaction, with [`HeldClaim::clear`])
    /// answered; when that failed, nothing was committed, so the claim is released now
    /// rather than left to its lease (a failure to release is less news than the one
    /// being answered).
    pub async fn finish<T>(&self, app: &App, outcome: Result<T, Problem>) -> Result<T, Problem> {
        if outcome.is_err() {
            let _ = self.release(app).await;
        }
        outcome
    }

    /// Ends the claim on its own, the failures kept.
    pub async fn release(&self, app: &App) -> anyhow::Result<()> {
        app.store
            .write(lockout::release(self.key.clone(), app.now()))
            .await
            .map(drop)
            .map_err(|e| anyhow::Error::from(e).context("releasing a password check"))
    }
}

/// [`check_password`] without the release: see [`HeldClaim`].
pub async fn check_password_holding_claim(
    app: &App,
    request: &ApiRequest,
    user: &User,
    password: &Secret,
) -> Result<HeldClaim, Problem> {
    let key = keys::account_lockout(&user.id);
    let now = app.now();
    let counter = match app.store.write(lockout::claim(key.clone(), now)).await {
        Ok(counter) => counter,
        Err(WriteError::ConditionFailed { current }) => {
            return Err(Problem::rate_limited(lockout::refusal_wait(
                current.as_ref(),
                now,
            )));
        }
        Err(WriteError::Unexpected(e)) => {
            return Err(e.context("claiming a password check").into());
        }
    };
    match app
        .passwords
        .verify(password, Some(&user.password_hash))
        .await?
    {
        Verdict::Right { .. } => Ok(HeldClaim { key, counter }),
        Verdict::Wrong => {
            let now = app.now();
            let (failure, entry) = tokio::join!(
                app.store.write(lockout::record_failure(
                    key,
                    lockout::failures(counter.as_ref()),
                    now
                )),
                app.store.write(history::entry(
                    &user.id,
                    &request.client,
                    now,
                    history::Outcome::BadPassword,
                    "password",
                )),
            );
            failure.map_err(anyhow::Error::from)?;
            entry.map_err(anyhow::Error::from)?;
            Err(Problem::new(
                StatusCode::UNAUTHORIZED,
                "invalid_credentials",
                "The password is not right.",
            ))
        }
    }
}

/// Validates a new question and answer for an account.
pub fn parse_answer(
    question_id: &str,
    answer: &Secret,
    password: &Secret,
    user: &User,
) -> Result<NewAnswer, Problem> {
    if security_question::question(question_id).is_none() {
        return Err(Problem::validation(vec![FieldError::new(
            "question_id",
            "unknown",
        )]));
    }
    NewAnswer::parse(answer, password, &user.email, user.username.as_deref())
        .map_err(|problem| Problem::validation(vec![FieldError::new("answer", problem.code())]))
}

pub async fn hash_answer(
    app: &App,
    question_id: &str,
    answer: &NewAnswer,
) -> anyhow::Result<SecurityAnswer> {
    Ok(SecurityAnswer {
        question_id: question_id.to_owned(),
        answer_hash: app.passwords.hash_secret(answer.secret()).await?,
    })
}

pub fn set_answer_write(user_id: &str, answer: &SecurityAnswer) -> Write {
    Write::update(
        keys::user(user_id),
        vec![
            Change::set(attr::QUESTION_ID, answer.question_id.as_str()),
            Change::set(attr::ANSWER_HASH, answer.answer_hash.0.as_str()),
        ],
    )
    .when(Cond::ItemExists)
}

pub async fn notify_question_changed(app: &App, request: &ApiRequest, user: &User) {
    let seen = Occurrence::of(app, &request.client);
    app.send_quietly(
        &user.email,
        Message::SecurityQuestionChanged {
            when: seen.when,
            ip: seen.ip,
            device: seen.device,
            reset_url: app.config.app_base_url.page("/forgot-password"),
        },
    )
    .await;
}
