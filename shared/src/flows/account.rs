//! The signed-in account's own views: its profile, its sessions (and ending them),
//! and its login history.

use http::StatusCode;
use http::header::{HeaderValue, LINK};
use serde::Serialize;

use crate::app::App;
use crate::http::{ApiRequest, ApiResponse, Problem};
use crate::protections::login_history::{self, Entry};
use crate::protections::sessions::{self, Session, SignedIn, signed_in};
use crate::records::{SessionEpoch, User, attr, keys};
use crate::store::{Cond, Key, Query, Write};

#[derive(Serialize)]
struct TwoStep {
    totp: bool,
    security_question: bool,
    backup_codes_remaining: usize,
}

#[derive(Serialize)]
struct AccountView {
    id: String,
    email: String,
    username: Option<String>,
    full_name: Option<String>,
    account_type: &'static str,
    email_verified: bool,
    /// `deliverable`, or what SES reported about the address: `bounced` (mail to it
    /// cannot be delivered: the person should fix the address) or `complained` (a
    /// message was marked as spam: only mail they ask for is sent).
    email_delivery: &'static str,
    created_at: String,
    two_step: TwoStep,
}

/// `GET /v1/account`: the session check and the account read share one round trip.
pub async fn get_account(app: &App, request: &ApiRequest) -> Result<ApiResponse, Problem> {
    let SignedIn { user, .. } = signed_in(app, request, None).await?;
    let view = AccountView {
        id: user.id,
        email: user.email,
        username: user.username,
        full_name: user.full_name,
        account_type: user.account_type.as_str(),
        email_verified: user.email_verified,
        email_delivery: user.mail_delivery.as_str(),
        created_at: crate::clock::rfc3339(user.created_at),
        two_step: TwoStep {
            totp: user.totp.is_some(),
            security_question: user.security_question.is_some(),
            backup_codes_remaining: user.backup_codes.len(),
        },
    };
    Ok(crate::http::json(StatusCode::OK, &view))
}

const DEFAULT_PAGE: usize = 50;
const MAX_PAGE: usize = 200;

/// One page of a list: how many entries, and after which sort key (from `cursor`).
struct PageRequest {
    limit: usize,
    after: Option<String>,
}

/// Reads `limit` (1 to 200, 50 by default) and `cursor` (opaque; only a sort key with
/// `prefix` is one of ours) from the query string.
fn page_request(request: &ApiRequest, prefix: &str) -> Result<PageRequest, Problem> {
    let limit = match request.query_param("limit") {
        None => DEFAULT_PAGE,
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_PAGE).contains(n))
            .ok_or_else(|| Problem::invalid_request("limit must be a number from 1 to 200."))?,
    };
    let after = match request.query_param("cursor") {
        None => None,
        Some(cursor) => Some(
            login_history::sort_key_of(&cursor, prefix)
                .ok_or_else(|| Problem::invalid_request("cursor is not valid."))?,
        ),
    };
    Ok(PageRequest { limit, after })
}

/// A JSON list with a `Link` header to the next page when there is one.
fn paged(path: &str, limit: usize, entries: &impl Serialize, next: Option<Key>) -> ApiResponse {
    let mut response = crate::http::json(StatusCode::OK, entries);
    if let Some(next) = next {
        let link = format!(
            "<{path}?limit={limit}&cursor={}>; rel=\"next\"",
            login_history::cursor_of(&next)
        );
        if let Ok(value) = HeaderValue::from_str(&link) {
            response.headers_mut().insert(LINK, value);
        }
    }
    response
}

#[derive(Serialize)]
struct SessionView {
    id: String,
    created_at: String,
    last_seen_at: String,
    ip: String,
    user_agent: String,
    remember_me: bool,
    current: bool,
}

/// `GET /v1/account/sessions?limit=50&cursor=...`: the valid sessions, newest first (a
/// session id begins with its creation time), in pages. The caller's check and the page
/// are read in parallel.
pub async fn list_sessions(app: &App, request: &ApiRequest) -> Result<ApiResponse, Problem> {
    let principal = sessions::bearer(app, request)?;
    let page = match page_request(request, keys::SESSION_PREFIX) {
        Ok(page) => page,
        Err(problem) => {
            // A revoked session is told so before anything about its request.
            signed_in(app, request, None).await?;
            return Err(problem);
        }
    };
    let partition = keys::user_partition(&principal.user_id);
    let query = Query::partition(partition.clone())
        .prefix(keys::SESSION_PREFIX)
        .descending()
        .limit(page.limit)
        .after(page.after.map(|sk| Key::new(partition, sk)));
    let (caller, stored) = tokio::join!(signed_in(app, request, None), app.store.query(&query));
    let SignedIn {
        principal, user, ..
    } = caller?;
    let stored = stored?;
    let now = app.now();
    let views: Vec<SessionView> = stored
        .items
        .iter()
        .filter_map(Session::from_item)
        .filter(|s| s.is_valid(&user.sessions, &app.config.sessions, now))
        .map(|s| SessionView {
            current: s.id == principal.session_id,
            created_at: crate::clock::rfc3339(s.created_at),
            last_seen_at: crate::clock::rfc3339(s.last_seen_at),
            id: s.id,
            ip: s.ip,
            user_agent: s.user_agent,
            remember_me: s.remember_me,
        })
        .collect();
    Ok(paged(
        "/v1/account/sessions",
        page.limit,
        &views,
        stored.next,
    ))
}

/// Whether `id` can be a session id of ours (a UUID in its hyphenated form): anything
/// else names no session and is never used in a key.
fn is_session_id(id: &str) -> bool {
    id.len() == 36 && uuid::Uuid::try_parse(id).is_ok()
}

fn no_such_session() -> Problem {
    Problem::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "There is no such session.",
    )
}

/// `DELETE /v1/account/sessions/{id}`: ends one session of the caller's account, which
/// must be valid (a session already ended by the account's epoch is not found).
pub async fn revoke_session(
    app: &App,
    request: &ApiRequest,
    target: &str,
) -> Result<ApiResponse, Problem> {
    let SignedIn { user, .. } = signed_in(app, request, None).await?;
    if !is_session_id(target) {
        return Err(no_such_session());
    }
    let admitted = if user.sessions.kept_session.as_deref() == Some(target) {
        Cond::ItemExists
    } else {
        Cond::ItemExists.and(Cond::ge(attr::EPOCH, user.sessions.epoch))
    };
    let key = keys::session(&user.id, target);
    match app.store.write(Write::delete(key).when(admitted)).await {
        Ok(_) => Ok(crate::http::no_content()),
        Err(crate::store::WriteError::ConditionFailed { .. }) => Err(no_such_session()),
        Err(crate::store::WriteError::Unexpected(e)) => Err(e.context("ending a session").into()),
    }
}

/// `POST /v1/account/sessions/revoke-others`: ends every session but the caller's, in
/// one write on the account whatever their number.
pub async fn revoke_other_sessions(
    app: &App,
    request: &ApiRequest,
) -> Result<ApiResponse, Problem> {
    let SignedIn {
        user, principal, ..
    } = signed_in(app, request, None).await?;
    app.store
        .write(end_other_sessions(&user, &principal.session_id))
        .await
        .map_err(|e| anyhow::Error::from(e).context("ending the other sessions"))?;
    Ok(crate::http::no_content())
}

/// The write that ends every session of `user` but `keep`.
fn end_other_sessions(user: &User, keep: &str) -> Write {
    Write::update(keys::user(&user.id), SessionEpoch::end_all(Some(keep))).when(Cond::ItemExists)
}

/// `GET /v1/account/login-history?limit=50&cursor=...`: newest first; a `Link` header
/// with `rel="next"` points at the next page when there is one.
pub async fn login_history(app: &App, request: &ApiRequest) -> Result<ApiResponse, Problem> {
    let SignedIn { principal, .. } = signed_in(app, request, None).await?;
    let page = page_request(request, keys::HISTORY_PREFIX)?;
    let partition = keys::user_partition(&principal.user_id);
    let query = Query::partition(partition.clone())
        .prefix(keys::HISTORY_PREFIX)
        .descending()
        .limit(page.limit)
        .after(page.after.map(|sk| Key::new(partition, sk)));
    let stored = app.store.query(&query).await?;
    let entries: Vec<Entry> = stored.items.iter().map(Entry::from_item).collect();
    Ok(paged(
        "/v1/account/login-history",
        page.limit,
        &entries,
        stored.next,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_hyphenated_uuids_are_session_ids() {
        assert!(is_session_id("01939d2e-8a4b-7cc1-9d5e-3f6a7b8c9d0e"));
        for other in [
            "",
            "abc",
            "01939d2e8a4b7cc19d5e3f6a7b8c9d0e",
            "{01939d2e-8a4b-7cc1-9d5e-3f6a7b8c9d0e}",
            &"a".repeat(2_000),
        ] {
            assert!(!is_session_id(other), "{other}");
        }
    }
}
