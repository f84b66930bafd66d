//! The signed-in account's own views: its profile, its sessions (and ending them),
//! and its login history.

use http::StatusCode;
use http::header::{HeaderValue, LINK};
use serde::Serialize;

use crate::app::App;
use crate::history::{self, Entry};
use crate::http::{ApiRequest, ApiResponse, Problem};
use crate::records::keys;
use crate::session::{self, Principal, Session, authenticate, unauthorized};
use crate::store::{Cond, MAX_TRANSACTION_WRITES, Query, Write};

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
    created_at: String,
    two_step: TwoStep,
}

/// `GET /v1/account`: the session check and the account read share one round trip.
pub async fn get_account(app: &App, request: &ApiRequest) -> Result<ApiResponse, Problem> {
    let (_, user, _) = session::signed_in(app, request, None).await?;
    let view = AccountView {
        id: user.id,
        email: user.email,
        username: user.username,
        full_name: user.full_name,
        account_type: user.account_type.as_str(),
        email_verified: user.email_verified,
        created_at: crate::clock::rfc3339(user.created_at),
        two_step: TwoStep {
            totp: user.totp.is_some(),
            security_question: user.security_question.is_some(),
            backup_codes_remaining: user.backup_codes.len(),
        },
    };
    Ok(crate::http::json(StatusCode::OK, &view))
}

/// Every live session of the account, in one query that also proves the caller's own
/// session is still live (so no separate session check is needed).
async fn live_sessions(
    app: &App,
    request: &ApiRequest,
) -> Result<(Principal, Vec<Session>), Problem> {
    let principal = session::bearer(app, request)?;
    let now = app.now();
    let sessions: Vec<Session> = session::stored(app, &principal.user_id)
        .await?
        .iter()
        .filter_map(Session::from_item)
        .filter(|s| s.is_alive(&app.config.sessions, now))
        .collect();
    if !sessions.iter().any(|s| s.id == principal.session_id) {
        return Err(unauthorized());
    }
    Ok((principal, sessions))
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

/// `GET /v1/account/sessions`: newest first.
pub async fn list_sessions(app: &App, request: &ApiRequest) -> Result<ApiResponse, Problem> {
    let (principal, mut sessions) = live_sessions(app, request).await?;
    sessions.sort_by_key(|s| std::cmp::Reverse(s.created_at));
    let views: Vec<SessionView> = sessions
        .into_iter()
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
    Ok(crate::http::json(StatusCode::OK, &views))
}

/// `DELETE /v1/account/sessions/{id}`: one transaction checks the caller's session and
/// deletes the target, which must exist.
pub async fn revoke_session(
    app: &App,
    request: &ApiRequest,
    target: &str,
) -> Result<ApiResponse, Problem> {
    let principal = session::bearer(app, request)?;
    let caller = principal.session_key();
    let target_key = keys::session(&principal.user_id, target);
    let mut writes = vec![Write::delete(target_key.clone()).when(Cond::ItemExists)];
    if target_key != caller {
        writes.push(Write::check(
            caller,
            session::alive(&app.config.sessions, app.now()),
        ));
    }
    match app.store.transact(writes).await {
        Ok(()) => Ok(crate::http::no_content()),
        Err(e) if e.failed_at(1).is_some() => Err(unauthorized()),
        Err(e) if e.failed_at(0).is_some() => Err(Problem::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "There is no such session.",
        )),
        Err(e) => Err(anyhow::Error::from(e).context("ending a session").into()),
    }
}

/// `POST /v1/account/sessions/revoke-others`: ends every session but the caller's.
pub async fn revoke_other_sessions(
    app: &App,
    request: &ApiRequest,
) -> Result<ApiResponse, Problem> {
    let (principal, sessions) = live_sessions(app, request).await?;
    let others: Vec<Write> = sessions
        .iter()
        .filter(|s| s.id != principal.session_id)
        .map(|s| Write::delete(keys::session(&s.user_id, &s.id)))
        .collect();
    end_sessions(app, others).await?;
    Ok(crate::http::no_content())
}

/// Deletes sessions in as few transactions as the store allows.
pub async fn end_sessions(app: &App, deletes: Vec<Write>) -> anyhow::Result<()> {
    for chunk in deletes.chunks(MAX_TRANSACTION_WRITES) {
        app.store
            .transact(chunk.to_vec())
            .await
            .map_err(|e| anyhow::Error::from(e).context("ending sessions"))?;
    }
    Ok(())
}

const DEFAULT_HISTORY_PAGE: usize = 50;
const MAX_HISTORY_PAGE: usize = 200;

/// `GET /v1/account/login-history?limit=50&cursor=...`: newest first; a `Link` header
/// with `rel="next"` points at the next page when there is one.
pub async fn login_history(app: &App, request: &ApiRequest) -> Result<ApiResponse, Problem> {
    let limit = match request.query_param("limit") {
        None => DEFAULT_HISTORY_PAGE,
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_HISTORY_PAGE).contains(n))
            .ok_or_else(|| Problem::invalid_request("limit must be a number from 1 to 200."))?,
    };
    let after = match request.query_param("cursor") {
        None => None,
        Some(cursor) => Some(
            history::sort_key_of(&cursor)
                .ok_or_else(|| Problem::invalid_request("cursor is not valid."))?,
        ),
    };
    let principal = authenticate(app, request).await?;
    let partition = keys::user_partition(&principal.user_id);
    let query = Query::partition(partition.clone())
        .prefix(keys::HISTORY_PREFIX)
        .descending()
        .limit(limit)
        .after(after.map(|sk| crate::store::Key::new(partition.clone(), sk)));
    let page = app.store.query(&query).await?;
    let entries: Vec<Entry> = page.items.iter().map(Entry::from_item).collect();
    let mut response = crate::http::json(StatusCode::OK, &entries);
    if let Some(next) = page.next {
        let link = format!(
            "</v1/account/login-history?limit={limit}&cursor={}>; rel=\"next\"",
            history::cursor_of(&next)
        );
        if let Ok(value) = HeaderValue::from_str(&link) {
            response.headers_mut().insert(LINK, value);
        }
    }
    Ok(response)
}
