//! Managing two-step verification on a signed-in account: enrolling an authenticator
//! app (setup, then confirm with a first code), turning it off, and regenerating the
//! backup codes.

use http::StatusCode;
use serde::{Deserialize, Serialize};

use crate::app::App;
use crate::backup_codes::BackupCodeSet;
use crate::http::{ApiRequest, ApiResponse, Client, Problem};
use crate::mail::messages::Message;
use crate::notify::Occurrence;
use crate::records::{User, attr, keys};
use crate::recovery::check_password;
use crate::secret::Secret;
use crate::session::signed_in;
use crate::store::{Change, Cond, EXPIRES_AT, Item, Value, Write, WriteError};
use crate::totp::{self, TotpSecret};
use crate::two_step::{self, Factor};

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

/// `POST /v1/2fa/totp/setup`: a pending secret, valid 10 minutes until confirmed.
pub async fn setup(app: &App, request: &ApiRequest) -> Result<ApiResponse, Problem> {
    let (_, user, _) = signed_in(app, request, None).await?;
    if user.totp.is_some() {
        return Err(already_enabled());
    }
    let secret = TotpSecret::generate()?;
    let encrypted = app.totp_keys.encrypt(&secret, &user.id)?;
    let pending = Item::new(&keys::totp_pending(&user.id))
        .with(attr::TOTP_SECRET, encrypted)
        .with(attr::ATTEMPTS, 0)
        .with(EXPIRES_AT, app.now() + SETUP_SECONDS);
    app.store
        .write(Write::put(pending))
        .await
        .map_err(anyhow::Error::from)?;
    let otpauth_url = totp::otpauth_url(&secret, &app.config.totp_issuer, &user.email);
    let view = SetupView {
        secret: secret.base32().expose().to_owned(),
        qr_svg: totp::qr_svg(&otpauth_url)?,
        otpauth_url,
        expires_in: SETUP_SECONDS,
    };
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
    let body: ConfirmRequest = request.json()?;
    let (_, user, pending) = signed_in(app, request, Some(keys::totp_pending)).await?;
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

/// The signed-in owner of an account with two-step verification, once their password
/// checked out (under the login back-off).
async fn two_step_owner(
    app: &App,
    request: &ApiRequest,
    password: &Secret,
) -> Result<(User, Option<Item>), Problem> {
    let (_, user, _) = signed_in(app, request, None).await?;
    if user.totp.is_none() {
        return Err(not_enabled());
    }
    let counter = check_password(app, request, &user, password).await?;
    Ok((user, counter))
}

/// `DELETE /v1/2fa/totp`: the password and a valid code turn two-step verification off
/// (the backup codes go with it).
pub async fn disable(app: &App, request: &ApiRequest) -> Result<ApiResponse, Problem> {
    let body: DisableRequest = request.json()?;
    let (user, lockout) = two_step_owner(app, request, &body.current_password).await?;
    let factor = factor_of(&body.code);
    let Some(spend) = two_step::verify_factor(app, &user, factor, &body.code).await? else {
        two_step::record_wrong_factor(app, &request.client, &user.id, factor, lockout.as_ref())
            .await?;
        return Err(two_step::invalid_code());
    };
    // The spend's changes touch attributes removed here; only its condition matters.
    let mut cond = Cond::attr_exists(attr::TOTP_SECRET);
    if let Some(spent) = spend.cond {
        cond = cond.and(spent);
    }
    app.store
        .write(
            Write::update(
                keys::user(&user.id),
                vec![
                    Change::remove(attr::TOTP_SECRET),
                    Change::remove(attr::TOTP_LAST_STEP),
                    Change::remove(attr::TOTP_ENABLED_AT),
                    Change::remove(attr::BACKUP_CODES),
                ],
            )
            .when(cond),
        )
        .await
        .map_err(|e| match e {
            WriteError::ConditionFailed { .. } => two_step::invalid_code(),
            WriteError::Unexpected(e) => e.context("turning two-step verification off").into(),
        })?;
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RegenerateRequest {
    current_password: Secret,
}

/// `POST /v1/2fa/backup-codes`: a new set of ten; the old set stops working.
pub async fn regenerate_backup_codes(
    app: &App,
    request: &ApiRequest,
) -> Result<ApiResponse, Problem> {
    let body: RegenerateRequest = request.json()?;
    let (user, _) = two_step_owner(app, request, &body.current_password).await?;
    let codes = BackupCodeSet::generate()?;
    app.store
        .write(
            Write::update(
                keys::user(&user.id),
                vec![Change::set(
                    attr::BACKUP_CODES,
                    Value::Ss(codes.digests(&user.id)),
                )],
            )
            .when(Cond::attr_exists(attr::TOTP_SECRET)),
        )
        .await
        .map_err(|e| match e {
            WriteError::ConditionFailed { .. } => not_enabled(),
            WriteError::Unexpected(e) => e.context("replacing backup codes").into(),
        })?;
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
    app.send_quietly(&user.email, message(seen, reset_url))
        .await;
}
