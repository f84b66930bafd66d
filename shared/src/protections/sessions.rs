//! Sessions: created at login, carried by a rotating refresh token and short-lived
//! access tokens, checked on every authenticated call so that ending one takes effect
//! at once. (The routes that rotate and end refresh tokens are `flows::tokens`.)
//!
//! Ending sessions in bulk is one write on the account, whatever their number: a session
//! is valid only while the account's session epoch admits it ([`SessionEpoch`]), so a
//! password change or reset, or "sign out other devices", moves the epoch on in the same
//! transaction as the change itself. A login checks the epoch it read in its own
//! transaction, so a login racing such a change does not survive it.

use http::StatusCode;
use http::header::AUTHORIZATION;
use serde::Serialize;

use crate::app::App;
use crate::app::config::SessionLimits;
use crate::http::{ApiRequest, ApiResponse, Client, Problem};
use crate::records::{SessionEpoch, User, attr, keys};
use crate::store::{Cond, EXPIRES_AT, Item, Key, Query, Write, schema};
use crate::values::secret::{Secret, Token};

/// Spent refresh tokens remembered per session (by digest, in slots by generation): a
/// token that was really issued and is presented again within this many rotations ends
/// its session.
pub const SPENT_TOKENS_REMEMBERED: i64 = 8;

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
    /// The account's session epoch when the session began.
    pub epoch: i64,
    /// How the login's second step was passed (`password` when there was none).
    pub second_factor: String,
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
            epoch: item.n(attr::EPOCH).unwrap_or(0),
            second_factor: item.s(attr::SECOND_FACTOR).unwrap_or("password").to_owned(),
        })
    }

    /// Whether the session is usable at `now` for an account whose sessions are
    /// `sessions`: alive (the same rule as [`alive`]) and admitted by the epoch.
    pub fn is_valid(&self, sessions: &SessionEpoch, limits: &SessionLimits, now: i64) -> bool {
        now < self.expires_at
            && (!self.remember_me || self.last_seen_at > now - limits.remember_me_idle)
            && sessions.admits(&self.id, self.epoch)
    }

    pub fn key(&self) -> Key {
        keys::session(&self.user_id, &self.id)
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

/// A new session's id: a UUID whose first bits are its creation time (v7), so that the
/// account's sessions list newest first by their sort keys. The sub-second part comes
/// from the machine, as the clock counts whole seconds.
fn new_session_id(now: i64) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    let seconds = u64::try_from(now).unwrap_or_default();
    let at = uuid::Timestamp::from_unix(uuid::NoContext, seconds, nanos);
    uuid::Uuid::new_v7(at).to_string()
}

/// A session about to be created, with its first refresh token.
pub struct NewSession {
    pub session: Session,
    refresh: Token,
}

impl NewSession {
    /// A session for `user` whose second step (if any) was passed with `second_factor`.
    pub fn start(
        app: &App,
        user: &User,
        client: &Client,
        remember_me: bool,
        second_factor: &str,
    ) -> anyhow::Result<NewSession> {
        let now = app.now();
        let limits = &app.config.sessions;
        let lifetime = if remember_me {
            limits.remember_me
        } else {
            limits.session
        };
        let session = Session {
            id: new_session_id(now),
            user_id: user.id.clone(),
            created_at: now,
            last_seen_at: now,
            ip: client.ip.to_string(),
            user_agent: client.user_agent.clone(),
            remember_me,
            expires_at: now + lifetime,
            epoch: user.sessions.epoch,
            second_factor: second_factor.to_owned(),
        };
        let refresh = SessionRef::of(&session).refresh_token(0)?;
        Ok(NewSession { session, refresh })
    }

    /// The write that stores the session.
    pub fn write(&self) -> Write {
        let s = &self.session;
        Write::put(schema::index_expiry(
            Item::new(&s.key())
                .with(attr::SESSION_ID, s.id.as_str())
                .with(attr::USER_ID, s.user_id.as_str())
                .with(attr::CREATED_AT, s.created_at)
                .with(attr::LAST_SEEN_AT, s.last_seen_at)
                .with(attr::IP, s.ip.as_str())
                .with(attr::USER_AGENT, s.user_agent.as_str())
                .with(attr::REMEMBER_ME, s.remember_me)
                .with(attr::EPOCH, s.epoch)
                .with(attr::SECOND_FACTOR, s.second_factor.as_str())
                .with(attr::REFRESH_HASH, self.refresh.digest())
                .with(attr::REFRESH_GENERATION, 0)
                .with(EXPIRES_AT, s.expires_at),
        ))
        .when(Cond::ItemAbsent)
    }

    /// The condition the new session's transaction puts on the account: its epoch is
    /// still the one this session was started in.
    pub fn account_cond(&self, user: &User) -> Cond {
        user.sessions.unchanged_cond()
    }

    /// The tokens for the client, once the session is stored.
    pub fn tokens(&self, app: &App) -> anyhow::Result<TokenPair> {
        issue(
            app,
            &self.session.user_id,
            &self.session.id,
            self.session.expires_at,
            &self.refresh,
        )
    }
}

/// The tokens of a session: a new access token, and `refresh` (the session's current
/// refresh token).
pub fn issue(
    app: &App,
    user_id: &str,
    session_id: &str,
    session_ends_at: i64,
    refresh: &Token,
) -> anyhow::Result<TokenPair> {
    let now = app.now();
    // An access token never outlives its session.
    let expires_at = (now + app.config.sessions.access_token).min(session_ends_at);
    Ok(TokenPair {
        access_token: app.tokens()?.issue(user_id, session_id, now, expires_at)?,
        token_type: "Bearer",
        expires_in: expires_at - now,
        refresh_token: refresh.expose(),
        session_id: session_id.to_owned(),
    })
}

/// What a refresh token says about its session.
pub struct SessionRef<'a> {
    pub user_id: &'a str,
    pub session_id: &'a str,
    pub epoch: i64,
    pub ends_at: i64,
}

impl<'a> SessionRef<'a> {
    fn of(session: &'a Session) -> SessionRef<'a> {
        SessionRef {
            user_id: &session.user_id,
            session_id: &session.id,
            epoch: session.epoch,
            ends_at: session.expires_at,
        }
    }

    /// The refresh token of the session's `generation`. Its public parts name the
    /// session, the generation (the slot its digest goes to once spent), the session's
    /// epoch and its end, so that a refresh is one transaction with no read; the digest
    /// covers them all, so none can be altered without the token failing.
    pub fn refresh_token(&self, generation: i64) -> anyhow::Result<Token> {
        Token::for_parts(&[
            self.user_id,
            self.session_id,
            &generation.to_string(),
            &self.epoch.to_string(),
            &self.ends_at.to_string(),
        ])
    }
}

/// The attribute that remembers the digest of a spent token of `generation`.
pub fn spent_slot(generation: i64) -> String {
    format!(
        "spent_refresh_{}",
        generation.rem_euclid(SPENT_TOKENS_REMEMBERED)
    )
}

/// A presented refresh token: the session it names and what its parts say. Nothing here
/// is trusted until its digest matches one the session stores.
pub struct PresentedRefresh {
    pub digest: String,
    pub user_id: String,
    pub session_id: String,
    pub generation: i64,
    pub epoch: i64,
    pub ends_at: i64,
}

impl PresentedRefresh {
    pub fn parse(text: &Secret) -> Option<PresentedRefresh> {
        let token = Token::parse(text.expose())?;
        let [user_id, session_id, generation, epoch, ends_at] = token.parts()[..] else {
            return None;
        };
        Some(PresentedRefresh {
            user_id: user_id.to_owned(),
            session_id: session_id.to_owned(),
            generation: generation.parse().ok()?,
            epoch: epoch.parse().ok()?,
            ends_at: ends_at.parse().ok()?,
            digest: token.digest(),
        })
    }

    pub fn key(&self) -> Key {
        keys::session(&self.user_id, &self.session_id)
    }

    /// Whether the session item records this token as spent (issued, then rotated).
    pub fn was_spent_in(&self, item: &Item) -> bool {
        item.s(&spent_slot(self.generation))
            .is_some_and(|spent| crate::values::secret::digests_match(spent, &self.digest))
    }

    /// Whether this token is the session's current one, or one of its remembered spent
    /// ones: either way, its holder holds the session.
    pub fn owns_cond(&self) -> Cond {
        Cond::eq(attr::REFRESH_HASH, self.digest.as_str())
            .or(Cond::eq(&spent_slot(self.generation), self.digest.as_str()))
    }
}

/// The most session items a login reads to enforce the cap (one page).
const SESSIONS_READ_AT_LOGIN: usize = 100;

/// The query a login sends (beside its other reads) for the account's sessions.
pub fn sessions_query(user_id: &str) -> Query {
    Query::partition(keys::user_partition(user_id))
        .prefix(keys::SESSION_PREFIX)
        .limit(SESSIONS_READ_AT_LOGIN)
}

/// The deletes a login adds to its transaction so that, with its new session, the
/// account keeps at most `max` valid sessions: the least recently used ones go. When the
/// partition holds many session items, the ones that already ended (by epoch) go too,
/// as far as `room` allows.
pub fn make_room(app: &App, user: &User, stored: &[Item], room: usize) -> Vec<Write> {
    let max = app.config.sessions.max_per_account;
    let now = app.now();
    let sessions: Vec<Session> = stored.iter().filter_map(Session::from_item).collect();
    let (mut valid, ended): (Vec<&Session>, Vec<&Session>) = sessions
        .iter()
        .partition(|s| s.is_valid(&user.sessions, &app.config.sessions, now));
    // Least recently used first.
    valid.sort_by_key(|s| (s.last_seen_at, s.created_at));
    let over = (valid.len() + 1).saturating_sub(max);
    let mut deletes: Vec<Write> = valid
        .iter()
        .take(over)
        .map(|s| Write::delete(s.key()))
        .collect();
    if sessions.len() >= max {
        deletes.extend(ended.iter().map(|s| Write::delete(s.key())));
    }
    deletes.truncate(room);
    deletes
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
        .tokens()?
        .verify(token.trim(), app.now())
        .map_err(|_| unauthorized())?;
    Ok(Principal {
        user_id: claims.sub,
        session_id: claims.sid,
    })
}

/// A caller whose access token and session checked out, with their account.
pub struct SignedIn {
    pub principal: Principal,
    pub session: Session,
    pub user: User,
    /// The extra item asked for, if it exists.
    pub extra: Option<Item>,
}

/// Authenticates a request: the access token is valid, its session exists, is alive and
/// is admitted by the account's epoch. The session and the account are read in one round
/// trip, with one more item of the account when `extra` names one (a pending setup):
/// `extra(user_id)` builds its key. Every authenticated route starts here, before it
/// looks at the request's body.
pub async fn signed_in(
    app: &App,
    request: &ApiRequest,
    extra: Option<fn(&str) -> Key>,
) -> Result<SignedIn, Problem> {
    let principal = bearer(app, request)?;
    let (session_key, user_key) = (principal.session_key(), keys::user(&principal.user_id));
    let extra_key = extra.map(|key_of| key_of(&principal.user_id));
    let mut wanted = vec![session_key.clone(), user_key.clone()];
    wanted.extend(extra_key.clone());
    let items = app
        .store
        .get_many(&wanted)
        .await
        .map_err(|e| Problem::from(e.context("checking a session")))?;
    let find = |key: &Key| items.iter().find(|i| i.key().as_ref() == Some(key));
    let session = find(&session_key)
        .and_then(Session::from_item)
        .ok_or_else(unauthorized)?;
    let user = find(&user_key)
        .map(User::from_item)
        .transpose()?
        .ok_or_else(unauthorized)?;
    if !session.is_valid(&user.sessions, &app.config.sessions, app.now()) {
        return Err(unauthorized());
    }
    let extra = extra_key.as_ref().and_then(|key| find(key).cloned());
    Ok(SignedIn {
        principal,
        session,
        user,
        extra,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn session(id: &str, epoch: i64) -> Session {
        Session {
            id: id.into(),
            user_id: "u".into(),
            created_at: 0,
            last_seen_at: 0,
            ip: String::new(),
            user_agent: String::new(),
            remember_me: false,
            expires_at: 1_000,
            epoch,
            second_factor: "password".into(),
        }
    }

    fn limits() -> SessionLimits {
        SessionLimits {
            access_token: 900,
            session: 3_600,
            remember_me: 86_400,
            remember_me_idle: 3_600,
            max_per_account: 50,
        }
    }

    #[test]
    fn an_epoch_change_ends_every_earlier_session_but_the_kept_one() {
        let after = SessionEpoch {
            epoch: 3,
            kept_session: Some("kept".into()),
        };
        assert!(session("new", 3).is_valid(&after, &limits(), 10));
        assert!(session("kept", 1).is_valid(&after, &limits(), 10));
        assert!(!session("other", 2).is_valid(&after, &limits(), 10));
        assert!(!session("new", 3).is_valid(&after, &limits(), 1_000));
    }

    #[test]
    fn a_refresh_token_names_its_session_and_binds_its_parts() {
        let s = session("4c9c", 2);
        let token = SessionRef::of(&s).refresh_token(7).unwrap();
        let presented = PresentedRefresh::parse(&Secret::new(token.expose())).unwrap();
        assert_eq!(
            (presented.generation, presented.epoch, presented.ends_at),
            (7, 2, 1_000)
        );
        assert_eq!(presented.digest, token.digest());
        let altered = token.expose().replacen("_7_", "_6_", 1);
        let forged = PresentedRefresh::parse(&Secret::new(altered)).unwrap();
        assert_ne!(forged.digest, token.digest());
    }

    #[test]
    fn spent_tokens_are_remembered_in_slots_by_generation() {
        assert_eq!(spent_slot(0), "spent_refresh_0");
        assert_eq!(spent_slot(9), "spent_refresh_1");
        assert_ne!(spent_slot(3), spent_slot(4));
    }

    #[test]
    fn a_stored_session_counts_against_the_cap_only_while_valid() {
        let ended_by_epoch = session("old", 0);
        let sessions = SessionEpoch {
            epoch: 1,
            kept_session: None,
        };
        assert!(!ended_by_epoch.is_valid(&sessions, &limits(), 10));
        let mut idle = session("idle", 1);
        idle.remember_me = true;
        idle.last_seen_at = 0;
        idle.expires_at = 10_000;
        assert!(!idle.is_valid(&sessions, &limits(), 3_601));
        assert!(idle.is_valid(&sessions, &limits(), 3_599));
    }

    #[test]
    fn session_ids_sort_by_creation_time() {
        let (a, b) = (new_session_id(1_000), new_session_id(2_000));
        assert!(a < b, "{a} {b}");
    }
}
