//! The token routes: rotating a refresh token, logging out with one, and publishing the
//! public keys that verify access tokens.

use http::StatusCode;
use serde::Deserialize;

use crate::app::App;
use crate::http::{ApiRequest, ApiResponse, Problem};
use crate::protections::sessions::{PresentedRefresh, SessionRef, alive, issue, spent_slot};
use crate::records::{SessionEpoch, attr, keys};
use crate::store::{Change, Cond, Key, Write, WriteError};
use crate::values::secret::Secret;

fn invalid_token() -> Problem {
    Problem::new(
        StatusCode::UNAUTHORIZED,
        "invalid_token",
        "This refresh token is not valid. Please log in again.",
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RefreshRequest {
    refresh_token: Secret,
}

/// `POST /v1/token/refresh`: rotates the refresh token in one transaction, which also
/// checks that the account's epoch still admits the session. A spent token presented
/// again ends the whole session (someone holds a copy); a token that was never issued
/// (forged, altered, or too old to be remembered) is refused and ends nothing.
pub async fn refresh(app: &App, request: &ApiRequest) -> Result<ApiResponse, Problem> {
    let body: RefreshRequest = request.json()?;
    let presented = PresentedRefresh::parse(&body.refresh_token).ok_or_else(invalid_token)?;
    let next_generation = presented
        .generation
        .checked_add(1)
        .ok_or_else(invalid_token)?;
    let session = SessionRef {
        user_id: &presented.user_id,
        session_id: &presented.session_id,
        epoch: presented.epoch,
        ends_at: presented.ends_at,
    };
    let next = session.refresh_token(next_generation)?;
    let now = app.now();
    let key = presented.key();
    let rotated = app
        .store
        .transact(vec![
            Write::update(
                key.clone(),
                vec![
                    Change::set(attr::REFRESH_HASH, next.digest()),
                    Change::set(attr::REFRESH_GENERATION, next_generation),
                    Change::set(&spent_slot(presented.generation), presented.digest.as_str()),
                    Change::set(attr::LAST_SEEN_AT, now),
                ],
            )
            .when(
                alive(&app.config.sessions, now)
                    .and(Cond::eq(attr::REFRESH_HASH, presented.digest.as_str())),
            ),
            Write::check(
                keys::user(&presented.user_id),
                SessionEpoch::admits_cond(&presented.session_id, presented.epoch),
            ),
        ])
        .await;
    match rotated {
        Ok(()) => {
            let tokens = issue(
                app,
                session.user_id,
                session.session_id,
                session.ends_at,
                &next,
            )?;
            Ok(tokens.response())
        }
        Err(e @ crate::store::TransactError::ConditionFailed { .. }) => {
            let reused = e
                .failed_at(0)
                .and_then(|failed| failed.current.as_ref())
                .is_some_and(|item| !item.is_expired(now) && presented.was_spent_in(item));
            let ended_by_epoch = e.failed_at(0).is_none() && e.failed_at(1).is_some();
            if reused {
                tracing::warn!("a spent refresh token was presented; ending its session");
            }
            if reused || ended_by_epoch {
                end_session(app, key).await?;
            }
            Err(invalid_token())
        }
        Err(crate::store::TransactError::Unexpected(e)) => {
            Err(e.context("rotating a refresh token").into())
        }
    }
}

async fn end_session(app: &App, key: Key) -> anyhow::Result<()> {
    app.store
        .write(Write::delete(key))
        .await
        .map(|_| ())
        .map_err(|e| anyhow::Error::from(e).context("ending a session"))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LogoutRequest {
    refresh_token: Secret,
}

/// `POST /v1/logout`: ends the session the refresh token belongs to (its current token,
/// or a remembered spent one, which would end it anyway). Always `204`: logging out
/// twice is not an error.
pub async fn logout(app: &App, request: &ApiRequest) -> Result<ApiResponse, Problem> {
    let body: LogoutRequest = request.json()?;
    if let Some(presented) = PresentedRefresh::parse(&body.refresh_token) {
        match app
            .store
            .write(Write::delete(presented.key()).when(presented.owns_cond()))
            .await
        {
            Ok(_) | Err(WriteError::ConditionFailed { .. }) => {}
            Err(WriteError::Unexpected(e)) => return Err(e.context("logging out").into()),
        }
    }
    Ok(crate::http::no_content())
}

/// `GET /.well-known/jwks.json`: prepared at cold start; public keys may be cached.
pub fn jwks(app: &App) -> ApiResponse {
    let Ok(tokens) = app.tokens() else {
        return crate::http::problem(&Problem::internal(&anyhow::anyhow!("no access-token keys")));
    };
    let mut response = http::Response::new(tokens.jwks());
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    headers.insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("public, max-age=300"),
    );
    response
}
