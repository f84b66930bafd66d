//! Sessions: created at login, carried by a rotating refresh token and short-lived
//! access tokens, checked on every authenticated call so that ending one takes effect
//! at once.

use http::StatusCode;
use http::header::AUTHORIZATION;
use serde::{Deserialize, Serialize};

use crate::app::App;
use crate::config::SessionLimits;
use crate::http::{ApiRequest, ApiResponse, Client, Problem};
use crate::records::{attr, keys};
use crate::secret::{Secret, Token};
use crate::store::{Change, Cond, EXPIRES_AT, Item, Key, Write, WriteError, schema};

/// A session as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    pub id: String,
    pub user_id: String,
    pub created_at: i64,
    pub last_seen_at: i64,
    pub ip: String,
    pub user_agent: String,
    pub remember_me: bool,
    /// The absolute end (the item's TTL).
    pub expires_at: i64,
}

/// The condition that a session is still usable at `now`: it exists (its absolute
/// end is the item's TTL, which the store checks) and a "remember me" session has
/// not been idle too long.
pub fn alive(limits: &SessionLimits, now: i64) -> Cond {
    Cond::ItemExists.and(
        Cond::eq(attr::REMEMBER_ME, false)
            .or(Cond::gt(attr::LAST_SEEN_AT, now - limits.remember_me_idle)),
    )
}

impl Session {
    pub fn from_item(item: &Item) -> Option<Session> {
        Some(Session {
            id: item.s(attr::SESSION_ID)?.to_owned(),
            user_id: item.s(attr::USER_ID)?.to_owned(),
            created_at: item.n(attr::CREATED_AT)?,
            last_seen_at: item.n(attr::LAST_SEEN_AT)?,
            ip: item.s(attr::IP).unwrap_or_default().to_owned(),
            user_agent: item.s(attr::USER_AGENT).unwrap_or_default().to_owned(),
            remember_me: item.bool(attr::REMEMBER_ME).unwrap_or(false),
            expires_at: item.n(EXPIRES_AT)?,
        })
    }

    /// Whether the session is usable at `now` (the same rule as [`alive`]).
    pub fn is_alive(&self, limits: &SessionLimits, now: i64) -> bool {
        now < self.expires_at
            && (!self.remember_me || self.last_seen_at > now - limits.remember_me_idle)
    }
}

/// The tokens a successful login or refresh hands out.
#[derive(Debug, Serialize)]
pub struct TokenPair {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: i64,
    pub refresh_token: String,
    pub session_id: String,
}

impl TokenPair {
    pub fn response(&self) -> ApiResponse {
        crate::http::json(StatusCode::OK, self)
    }
}

/// A session about to be created, with its first refresh token.
pub struct NewSession {
    pub session: Session,
    refresh: Token,
}

impl NewSession {
    pub fn start(
        app: &App,
        user_id: &str,
        client: &Client,
        remember_me: bool,
    ) -> anyhow::Result<NewSession> {
        let now = app.now();
        let limits = &app.config.sessions;
        let id = uuid::Uuid::new_v4().to_string();
        let lifetime = if remember_me {
            limits.remember_me
        } else {
            limits.session
        };
        let refresh = refresh_token(user_id, &id, 0)?;
        Ok(NewSession {
            session: Session {
                id,
                user_id: user_id.to_owned(),
                created_at: now,
                last_seen_at: now,
                ip: client.ip.to_string(),
                user_agent: client.user_agent.clone(),
                remember_me,
                expires_at: now + lifetime,
            },
            refresh,
        })
    }

    /// The write that stores the session.
    pub fn write(&self) -> Write {
        let s = &self.session;
        Write::put(schema::index_expiry(
            Item::new(&keys::session(&s.user_id, &s.id))
                .with(attr::SESSION_ID, s.id.as_str())
                .with(attr::USER_ID, s.user_id.as_str())
                .with(attr::CREATED_AT, s.created_at)
                .with(attr::LAST_SEEN_AT, s.last_seen_at)
                .with(attr::IP, s.ip.as_str())
                .with(attr::USER_AGENT, s.user_agent.as_str())
                .with(attr::REMEMBER_ME, s.remember_me)
                .with(attr::REFRESH_HASH, self.refresh.digest())
                .with(attr::REFRESH_GENERATION, 0)
                .with(EXPIRES_AT, s.expires_at),
        ))
        .when(Cond::ItemAbsent)
    }

    /// The tokens for the client, once the session is stored.
    pub fn tokens(&self, app: &App) -> anyhow::Result<TokenPair> {
        issue(app, &self.session, &self.refresh)
    }
}

fn issue(app: &App, session: &Session, refresh: &Token) -> anyhow::Result<TokenPair> {
    let now = app.now();
    // An access token never outlives its session.
    let expires_at = (now + app.config.sessions.access_token).min(session.expires_at);
    Ok(TokenPair {
        access_token: app
            .tokens
            .issue(&session.user_id, &session.id, now, expires_at)?,
        token_type: "Bearer",
        expires_in: expires_at - now,
        refresh_token: refresh.expose(),
        session_id: session.id.clone(),
    })
}

/// A refresh token of a session's `generation`: each rotation issues the next one, so
/// a token of an earlier generation is one that was already spent.
fn refresh_token(user_id: &str, session_id: &str, generation: i64) -> anyhow::Result<Token> {
    Token::for_parts(&[user_id, session_id, &generation.to_string()])
}

/// A presented refresh token: the session it names and its generation.
struct PresentedRefresh {
    digest: String,
    user_id: String,
    session_id: String,
    generation: i64,
}

impl PresentedRefresh {
    fn parse(text: &Secret) -> Option<PresentedRefresh> {
        let token = Token::parse(text.expose())?;
        let [user_id, session_id, generation] = token.parts()[..] else {
            return None;
        };
        Some(PresentedRefresh {
            user_id: user_id.to_owned(),
            session_id: session_id.to_owned(),
            generation: generation.parse().ok()?,
            digest: token.digest(),
        })
    }

    fn key(&self) -> Key {
        keys::session(&self.user_id, &self.session_id)
    }
}

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

/// `POST /v1/token/refresh`: rotates the refresh token in one conditional write. A
/// spent token (of any earlier generation) presented again ends the whole session:
/// someone holds a copy.
pub async fn refresh(app: &App, request: &ApiRequest) -> Result<ApiResponse, Problem> {
    let body: RefreshRequest = request.json()?;
    let presented = PresentedRefresh::parse(&body.refresh_token).ok_or_else(invalid_token)?;
    let next = refresh_token(
        &presented.user_id,
        &presented.session_id,
        presented.generation + 1,
    )?;
    let now = app.now();
    let key = presented.key();
    let rotated = app
        .store
        .write(
            Write::update(
                key.clone(),
                vec![
                    Change::set(attr::REFRESH_HASH, next.digest()),
                    Change::set(attr::REFRESH_GENERATION, presented.generation + 1),
                    Change::set(attr::LAST_SEEN_AT, now),
                ],
            )
            .when(
                alive(&app.config.sessions, now)
                    .and(Cond::eq(attr::REFRESH_HASH, presented.digest.as_str()))
                    .and(Cond::eq(attr::REFRESH_GENERATION, presented.generation)),
            ),
        )
        .await;
    match rotated {
        Ok(Some(item)) => {
            let session = Session::from_item(&item)
                .ok_or_else(|| anyhow::anyhow!("a session item is incomplete"))?;
            Ok(issue(app, &session, &next)?.response())
        }
        Ok(None) => Err(invalid_token()),
        Err(WriteError::ConditionFailed { current }) => {
            let reused = current.is_some_and(|item| {
                !item.is_expired(now)
                    && item
                        .n(attr::REFRESH_GENERATION)
                        .is_some_and(|current| current > presented.generation)
            });
            if reused {
                tracing::warn!(session = %presented.session_id, "a spent refresh token was presented; ending the session");
                end_session(app, key).await?;
            }
            Err(invalid_token())
        }
        Err(WriteError::Unexpected(e)) => Err(e.context("rotating a refresh token").into()),
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
/// or a spent one, which would end it anyway). Always `204`: logging out twice is not
/// an error.
pub async fn logout(app: &App, request: &ApiRequest) -> Result<ApiResponse, Problem> {
    let body: LogoutRequest = request.json()?;
    if let Some(presented) = PresentedRefresh::parse(&body.refresh_token) {
        let owns = Cond::eq(attr::REFRESH_HASH, presented.digest.as_str())
            .or(Cond::gt(attr::REFRESH_GENERATION, presented.generation));
        match app
            .store
            .write(Write::delete(presented.key()).when(owns))
            .await
        {
            Ok(_) | Err(WriteError::ConditionFailed { .. }) => {}
            Err(WriteError::Unexpected(e)) => return Err(e.context("logging out").into()),
        }
    }
    Ok(crate::http::no_content())
}

/// Every live session item of an account (one query per 100 sessions).
pub async fn stored(app: &App, user_id: &str) -> anyhow::Result<Vec<Item>> {
    let mut items = Vec::new();
    let mut next = None;
    loop {
        let query = crate::store::Query::partition(keys::user_partition(user_id))
            .prefix(keys::SESSION_PREFIX)
            .limit(100)
            .after(next);
        let page = app.store.query(&query).await?;
        items.extend(page.items);
        next = page.next;
        if next.is_none() {
            return Ok(items);
        }
    }
}

/// Deletes of every stored session of an account but `keep`.
pub async fn end_all_writes(
    app: &App,
    user_id: &str,
    keep: Option<&str>,
) -> anyhow::Result<Vec<Write>> {
    let kept = keep.map(|id| keys::session(user_id, id));
    Ok(stored(app, user_id)
        .await?
        .iter()
        .filter_map(Item::key)
        .filter(|key| Some(key) != kept.as_ref())
        .map(Write::delete)
        .collect())
}

/// Who is calling an authenticated route.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    pub user_id: String,
    pub session_id: String,
}

impl Principal {
    pub fn session_key(&self) -> Key {
        keys::session(&self.user_id, &self.session_id)
    }
}

pub fn unauthorized() -> Problem {
    Problem::new(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "Log in to do this: the access token is missing, expired or revoked.",
    )
}

/// Checks the bearer token without I/O: signature, claims, expiry.
pub fn bearer(app: &App, request: &ApiRequest) -> Result<Principal, Problem> {
    let header = request
        .headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(unauthorized)?;
    let (scheme, token) = header.trim().split_once(' ').ok_or_else(unauthorized)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(unauthorized());
    }
    let claims = app
        .tokens
        .verify(token.trim(), app.now())
        .map_err(|_| unauthorized())?;
    Ok(Principal {
        user_id: claims.sub,
        session_id: claims.sid,
    })
}

/// Authenticates a request and reads `extra` items of the account in the same round
/// trip as the session check. Returns the caller and the extra items found.
pub async fn authenticate_with(
    app: &App,
    request: &ApiRequest,
    extra: &[Key],
) -> Result<(Principal, Vec<Item>), Problem> {
    let principal = bearer(app, request)?;
    let session_key = principal.session_key();
    let mut wanted = vec![session_key.clone()];
    wanted.extend_from_slice(extra);
    let mut items = app
        .store
        .get_many(&wanted)
        .await
        .map_err(|e| Problem::internal(&e.context("checking a session")))?;
    let position = items
        .iter()
        .position(|item| item.key().as_ref() == Some(&session_key))
        .ok_or_else(unauthorized)?;
    let session = Session::from_item(&items.remove(position)).ok_or_else(unauthorized)?;
    if !session.is_alive(&app.config.sessions, app.now()) {
        return Err(unauthorized());
    }
    Ok((principal, items))
}

/// The caller and their account, read with the session check in one round trip, plus
/// one more item of the account when `extra` names one (its back-off, a pending
/// setup): `extra(user_id)` builds its key.
pub async fn signed_in(
    app: &App,
    request: &ApiRequest,
    extra: Option<fn(&str) -> Key>,
) -> Result<(Principal, crate::records::User, Option<Item>), Problem> {
    let principal = bearer(app, request)?;
    let user_key = keys::user(&principal.user_id);
    let extra_key = extra.map(|key_of| key_of(&principal.user_id));
    let mut wanted = vec![user_key.clone()];
    wanted.extend(extra_key.clone());
    let (principal, items) = authenticate_with(app, request, &wanted).await?;
    let find = |key: &Key| items.iter().find(|i| i.key().as_ref() == Some(key));
    let user = find(&user_key)
        .map(crate::records::User::from_item)
        .transpose()?
        .ok_or_else(unauthorized)?;
    let extra_item = extra_key.as_ref().and_then(|key| find(key).cloned());
    Ok((principal, user, extra_item))
}

/// Authenticates a request: the token is valid and its session still exists.
pub async fn authenticate(app: &App, request: &ApiRequest) -> Result<Principal, Problem> {
    authenticate_with(app, request, &[]).await.map(|(p, _)| p)
}
