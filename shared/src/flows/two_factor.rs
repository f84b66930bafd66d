//! Managing two-step verification on a signed-in account: enrolling an authenticator
//! app (setup, then confirm with a first code), turning it off, and regenerating the
//! backup codes.

use http::StatusCode;
use serde::{Deserialize, Serialize};

use crate::app::App;
use crate::credentials::backup_codes::BackupCodeSet;
use crate::credentials::totp::{self, TotpSecret};
use crate::http::{ApiRequest, ApiResponse, Client, Problem};
use crate::mail::messages::Message;
use crate::protections::backoff::Claim;
use crate::protections::reauthentication;
use crate::protections::second_factors::{self, Factor};
use crate::protections::security_notices::Occurrence;
use crate::protections::sessions::{Session, SignedIn, signed_in};
use crate::records::{User, attr, keys};
use crate::store::{Change, Cond, EXPIRES_AT, Item, Value, Write, WriteError};
use crate::values::secret::Secret;

/// How long a set-up secret waits for its first code.
pub const SETUP_SECONDS: i64 = 600;
/// Wrong first codes a setup survives.
const SETUP_ATTEMPTS: i64 = 5;

fn conflict(code: &'static str, detail: &'static str) -> Problem {
    Problem::new(StatusCode::CONFLICT, code, detail)
}

fn already_enabled() -> Problem {
    conflict(
        "totp_already_enabled",
        "An authenticator app is already set up. Turn it off first to replace it.",
    )
}

fn not_enabled() -> Problem {
    conflict(
        "totp_not_enabled",
        "Two-step verification is not on for this account.",
    )
}

#[derive(Serialize)]
struct SetupView {
    secret: String,
    otpauth_url: String,
    qr_svg: String,
    expires_in: i64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PasswordRequest {
    current_password: Secret,
}

/// A session whose login's second step was the security question may use the account,
/// but not change what proves it: an answer is often public or guessable, and must not
/// lead to a new authenticator or fresh backup codes.
fn require_strong_session(session: &Session) -> Result<(), Problem> {
    if session.second_factor == Factor::SecurityQuestion.name() {
        return Err(Problem::new(
            StatusCode::FORBIDDEN,
            "stronger_factor_required",
            "Log in with your authenticator app or a backup code to change how you sign in.",
        ));
    }
    Ok(())
}

/// `POST /v1/2fa/totp/setup`: a pending secret, valid 10 minutes until confirmed. The
/// account password is checked first, so a stolen access token alone cannot enrol the
/// thief's authenticator.
pub async fn setup(app: &App, request: &ApiRequest) -> Result<ApiResponse, Problem> {
    let SignedIn { user, session, .. } = signed_in(app, request, None).await?;
    let body: PasswordRequest = request.json()?;
    if user.totp.is_some() {
        return Err(already_enabled());
    }
    require_strong_session(&session)?;
    let proven =
        reauthentication::check_password(app, request, &user, &body.current_password).await?;
    let started = async {
        let secret = TotpSecret::generate()?;
        let encrypted = app.totp_keys.encrypt(&secret, &user.id)?;
        let pending = Item::new(&keys::totp_pending(&user.id))
            .with(attr::TOTP_SECRET, encrypted)
            .with(attr::ATTEMPTS, 0)
            .with(EXPIRES_AT, app.now() + SETUP_SECONDS);
        app.store
            .transact(vec![Write::put(pending), proven.succeeded()])
            .await
            .map_err(|e| anyhow::Error::from(e).context("storing an authenticator setup"))?;
        let otpauth_url = totp::otpauth_url(&secret, &app.config.totp_issuer, &user.email);
        Ok(SetupView {
            secret: secret.base32().expose().to_owned(),
            qr_svg: totp::qr_svg(&otpauth_url)?,
            otpauth_url,
            expires_in: SETUP_SECONDS,
        })
    };
    let outcome = started.await;
    let view = proven.finish(app, outcome).await?;
    Ok(crate::http::json(StatusCode::OK, &view))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfirmRequest {
    code: Secret,
}

#[derive(Serialize)]
struct BackupCodesView {
    backup_codes: Vec<String>,
}

/// `POST /v1/2fa/totp/confirm`: the first code turns the app on and returns ten
/// backup codes, shown this once. The confirming code's time step is marked used.
pub async fn confirm(app: &App, request: &ApiRequest) -> Result<ApiResponse, Problem> {
    let SignedIn {
        user,
        extra: pending,
        ..
    } = signed_in(app, request, Some(keys::totp_pending)).await?;
    let body: ConfirmRequest = request.json()?;
    let (user_key, pending_key) = (keys::user(&user.id), keys::totp_pending(&user.id));
    if user.totp.is_some() {
        return Err(already_enabled());
    }
    let setup_expired = || {
        Problem::bad_request(
            "totp_setup_expired",
            "No authenticator setup is waiting: start again.",
        )
    };
    let pending = pending
        .filter(|p| p.n(attr::ATTEMPTS).unwrap_or(0) < SETUP_ATTEMPTS)
        .ok_or_else(setup_expired)?;
    let encrypted = pending.s(attr::TOTP_SECRET).ok_or_else(setup_expired)?;
    let secret = app.totp_keys.decrypt(encrypted, &user.id)?;
    let Some(step) = totp::matching_step(&secret, body.code.expose(), app.now(), None) else {
        let counted =
            Write::update(pending_key, vec![Change::add(attr::ATTEMPTS, 1)]).when(Cond::ItemExists);
        match app.store.write(counted).await {
            Ok(_) | Err(WriteError::ConditionFailed { .. }) => {}
            Err(WriteError::Unexpected(e)) => return Err(e.into()),
        }
        return Err(Problem::bad_request(
            "invalid_code",
            "That code is not right.",
        ));
    };
    let codes = BackupCodeSet::generate()?;
    app.store
        .transact(vec![
            Write::update(
                user_key,
                vec![
                    Change::set(attr::TOTP_SECRET, encrypted),
                    Change::set(attr::TOTP_LAST_STEP, step),
                    Change::set(attr::TOTP_ENABLED_AT, app.now()),
                    Change::set(attr::BACKUP_CODES, Value::Ss(codes.digests(&user.id))),
                ],
            )
            .when(Cond::ItemExists.and(Cond::attr_absent(attr::TOTP_SECRET))),
            Write::delete(pending_key).when(Cond::eq(attr::TOTP_SECRET, encrypted)),
        ])
        .await
        .map_err(|e| match e {
            e if e.failed_at(0).is_some() => already_enabled(),
            e if e.failed_at(1).is_some() => setup_expired(),
            e => Problem::from(anyhow::Error::from(e).context("turning two-step verification on")),
        })?;
    let seen = Occurrence::of(app, &request.client);
    app.send_quietly(
        &user.email,
        user.mail_delivery,
        Message::TwoStepEnabled {
            when: seen.when,
            ip: seen.ip,
            device: seen.device,
        },
    )
    .await;
    Ok(crate::http::json(
        StatusCode::OK,
        &BackupCodesView {
            backup_codes: codes.display(),
        },
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DisableRequest {
    current_password: Secret,
    code: Secret,
}

/// A person's code for turning off or managing two-step verification: an
/// authenticator code, or a backup code for someone who lost their phone.
fn factor_of(code: &Secret) -> Factor {
    let digits = code.expose().chars().filter(|c| !c.is_whitespace()).count();
    if digits == totp::DIGITS {
        Factor::Totp
    } else {
        Factor::BackupCode
    }
}

/// `DELETE /v1/2fa/totp`: the password and a valid code turn two-step verification off
/// (the backup codes go with it). The password is checked under the re-authentication
/// counter, the code under the second-factor counter, each claimed before its check.
pub async fn disable(app: &App, request: &ApiRequest) -> Result<ApiResponse, Problem> {
    let SignedIn { user, .. } = signed_in(app, request, None).await?;
    let body: DisableRequest = request.json()?;
    if user.totp.is_none() {
        return Err(not_enabled());
    }
    let proven =
        reauthentication::check_password(app, request, &user, &body.current_password).await?;
    let turned_off = async {
        let factor = factor_of(&body.code);
        let claim = match Claim::take(
            app.store.as_ref(),
            second_factors::counter(&user.id),
            app.now(),
        )
        .await?
        {
            Ok(claim) => claim,
            Err(wait) => return Err(Problem::rate_limited(wait)),
        };
        let Some(spend) = second_factors::verify_factor(app, &user, factor, &body.code).await?
        else {
            second_factors::record_wrong_factor(app, request, &user.id, factor, &claim, None)
                .await?;
            return Err(second_factors::invalid_code());
        };
        // The spend's changes touch attributes removed here; only its condition matters.
        let mut cond = Cond::attr_exists(attr::TOTP_SECRET);
        if let Some(spent) = spend.cond {
            cond = cond.and(spent);
        }
        let off = Write::update(
            keys::user(&user.id),
            vec![
                Change::remove(attr::TOTP_SECRET),
                Change::remove(attr::TOTP_LAST_STEP),
                Change::remove(attr::TOTP_ENABLED_AT),
                Change::remove(attr::BACKUP_CODES),
            ],
        )
        .when(cond);
        let committed = app
            .store
            .transact(vec![off, proven.succeeded(), claim.succeeded()])
            .await
            .map_err(|e| match e {
                e if e.failed_at(0).is_some() => second_factors::invalid_code(),
                e => Problem::from(
                    anyhow::Error::from(e).context("turning two-step verification off"),
                ),
            });
        if committed.is_err() {
            claim.release(app.store.as_ref(), app.now()).await;
        }
        committed
    };
    let outcome = turned_off.await;
    proven.finish(app, outcome).await?;
    notify(app, &request.client, &user, |seen, reset_url| {
        Message::TwoStepDisabled {
            when: seen.when,
            ip: seen.ip,
            device: seen.device,
            reset_url,
        }
    })
    .await;
    Ok(crate::http::status(StatusCode::OK, "two_step_disabled"))
}

/// `POST /v1/2fa/backup-codes`: a new set of ten; the old set stops working.
pub async fn regenerate_backup_codes(
    app: &App,
    request: &ApiRequest,
) -> Result<ApiResponse, Problem> {
    let SignedIn { user, session, .. } = signed_in(app, request, None).await?;
    let body: PasswordRequest = request.json()?;
    if user.totp.is_none() {
        return Err(not_enabled());
    }
    require_strong_session(&session)?;
    let proven =
        reauthentication::check_password(app, request, &user, &body.current_password).await?;
    let codes = BackupCodeSet::generate()?;
    let replaced = Write::update(
        keys::user(&user.id),
        vec![Change::set(
            attr::BACKUP_CODES,
            Value::Ss(codes.digests(&user.id)),
        )],
    )
    .when(Cond::attr_exists(attr::TOTP_SECRET));
    let outcome = app
        .store
        .transact(vec![replaced, proven.succeeded()])
        .await
        .map_err(|e| match e {
            e if e.failed_at(0).is_some() => not_enabled(),
            e => Problem::from(anyhow::Error::from(e).context("replacing backup codes")),
        });
    proven.finish(app, outcome).await?;
    notify(app, &request.client, &user, |seen, reset_url| {
        Message::BackupCodesRegenerated {
            when: seen.when,
            ip: seen.ip,
            device: seen.device,
            reset_url,
        }
    })
    .await;
    Ok(crate::http::json(
        StatusCode::OK,
        &BackupCodesView {
            backup_codes: codes.display(),
        },
    ))
}

async fn notify(
    app: &App,
    client: &Client,
    user: &User,
    message: impl FnOnce(Occurrence, String) -> Message,
) {
    let seen = Occurrence::of(app, client);
    let reset_url = app.config.app_base_url.page("/forgot-password");
    app.send_quietly(&user.email, user.mail_delivery, message(seen, reset_url))
        .await;
}
