//! Signing in with Google or Apple (OpenID Connect, authorization code flow with PKCE):
//! the start, the callback, and the last steps of a first sign-in.
//!
//! A known identity (provider + `sub`) logs in with the account's usual rules. An unknown
//! identity whose provider-verified address belongs to a verified account is never linked
//! silently: the person proves the account first (its password), and only then is the
//! identity linked. A verified address held by an *unverified* account (someone's signup
//! that never proved the address) is taken back from it: that account is deleted with
//! its password when the new one is made, so a pre-registered address gives its squatter
//! nothing. Otherwise a new account is made once the person picks its type.

use std::collections::BTreeSet;

use anyhow::Context;
use http::StatusCode;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};
use serde::{Deserialize, Serialize};

use crate::app::App;
use crate::credentials::oidc::{
    Provider, ProviderError, ProviderIdentity, ProviderName, RequestSecrets,
};
use crate::credentials::password::Verdict;
use crate::flows::email_verification;
use crate::http::{ApiRequest, ApiResponse, FieldError, Problem};
use crate::protections::backoff::{Claim, Counter};
use crate::protections::login_history::{self, Outcome};
use crate::protections::second_factors::{self, Challenge};
use crate::protections::sessions::{self, NewSession, SignedIn};
use crate::records::{self, AccountType, User, attr, keys};
use crate::store::{Cond, EXPIRES_AT, Item, MAX_TRANSACTION_WRITES, Query, TransactError, Write};
use crate::values::email::EmailAddress;
use crate::values::full_name::FullName;
use crate::values::secret::{Secret, Token, digests_match, random_bytes, sha256_hex};
use crate::values::username::Username;

/// How long the browser has between the start and the callback.
const STATE_SECONDS: i64 = 600;
/// How long a first sign-in waits for its account type or its proof.
const PENDING_SECONDS: i64 = 900;

/// Why a sign-in with a provider is refused.
#[derive(Debug, thiserror::Error)]
pub enum OauthError {
    #[error("the provider is not configured")]
    UnknownProvider,
    #[error("the sign-in's state is missing, spent or from another browser")]
    StateInvalid,
    #[error("the provider's answer was refused")]
    ProviderRefused,
    #[error("the provider gave no usable email address")]
    NoEmail,
    #[error("the sign-in's token is not valid")]
    PendingInvalid,
    #[error("the address was taken meanwhile")]
    Restart,
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<OauthError> for Problem {
    fn from(error: OauthError) -> Problem {
        match error {
            OauthError::UnknownProvider => Problem::not_found(),
            OauthError::StateInvalid => Problem::new(
                StatusCode::BAD_REQUEST,
                "oauth_state_invalid",
                "This sign-in has expired or was started in another browser. Please start again.",
            ),
            OauthError::ProviderRefused => Problem::new(
                StatusCode::UNAUTHORIZED,
                "oauth_failed",
                "The sign-in with the provider did not work. Please start again.",
            ),
            OauthError::NoEmail => Problem::new(
                StatusCode::BAD_REQUEST,
                "oauth_email_missing",
                "The provider did not share an email address. Allow it to, or sign up with your email.",
            ),
            OauthError::PendingInvalid => Problem::new(
                StatusCode::BAD_REQUEST,
                "oauth_token_invalid",
                "This sign-in has expired or was already finished. Please start again.",
            ),
            OauthError::Restart => Problem::new(
                StatusCode::CONFLICT,
                "oauth_restart",
                "Something changed while you were signing in. Please start again.",
            ),
            OauthError::Unexpected(e) => Problem::from(e),
        }
    }
}

fn provider<'a>(app: &'a App, name: &str) -> Result<&'a Provider, OauthError> {
    ProviderName::parse(name)
        .and_then(|name| app.providers.get(name))
        .ok_or(OauthError::UnknownProvider)
}

/// The cookie that binds a sign-in to its browser. Apple's callback is a cross-site POST
/// (`form_post`), which a `SameSite=Lax` cookie would not go with.
fn cookie_name(provider: ProviderName) -> String {
    format!("__Host-oauth-{}", provider.as_str())
}

fn state_cookie(provider: ProviderName, value: &str, max_age: i64) -> String {
    let same_site = match provider {
        ProviderName::Google => "Lax",
        ProviderName::Apple => "None",
    };
    format!(
        "{}={value}; Path=/; Secure; HttpOnly; SameSite={same_site}; Max-Age={max_age}",
        cookie_name(provider)
    )
}

fn cookie_value(request: &ApiRequest, name: &str) -> Option<String> {
    request
        .headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|header| header.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.to_owned())
}

fn with_no_store(mut response: ApiResponse) -> ApiResponse {
    response
        .headers_mut()
        .insert(CACHE_CONTROL, http::HeaderValue::from_static("no-store"));
    response
}

#[derive(Serialize)]
struct StartView {
    authorization_url: String,
}

/// `GET /v1/oauth/{provider}/start?return_to=...`: `302` to the provider, with the
/// browser's handle in a `__Host-` cookie and only its digest stored.
pub async fn start(app: &App, request: &ApiRequest, name: &str) -> Result<ApiResponse, Problem> {
    let provider = provider(app, name)?;
    let own_origin = origin_of(app);
    let return_to = match request.query_param("return_to") {
        None => "/".to_owned(),
        Some(text) => crate::values::return_to::check(
            &text,
            &own_origin,
            &app.config.web_return_to_origins,
        )
        .ok_or_else(|| Problem::validation(vec![FieldError::new("return_to", "not_allowed")]))?,
    };
    let handle = Secret::new(base64_url(&random_bytes::<32>()?));
    let secrets = RequestSecrets::of(&handle);
    let name = provider.settings.name;
    let redirect_uri = app.config.oauth.redirect_uri(name);
    let url = app
        .providers
        .authorization_url(provider, &secrets, &redirect_uri)
        .await?;
    let now = app.now();
    let item = Item::new(&keys::oauth_state(&sha256_hex(handle.expose())))
        .with(attr::PROVIDER, name.as_str())
        .with(attr::RETURN_TO, return_to.as_str())
        .with(attr::CREATED_AT, now)
        .with(EXPIRES_AT, now + STATE_SECONDS);
    app.store
        .write(Write::put(item).when(Cond::ItemAbsent))
        .await
        .map_err(|e| anyhow::Error::from(e).context("storing a sign-in's state"))?;
    let body = serde_json::to_vec(&StartView {
        authorization_url: url.clone(),
    })
    .context("writing a start answer")?;
    let response = http::Response::builder()
        .status(StatusCode::FOUND)
        .header(LOCATION, url)
        .header(CONTENT_TYPE, "application/json")
        .header(
            SET_COOKIE,
            state_cookie(name, handle.expose(), STATE_SECONDS),
        )
        .body(body.into())
        .context("building a redirect")?;
    Ok(with_no_store(response))
}

fn base64_url(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn origin_of(app: &App) -> String {
    match url::Url::parse(&app.config.app_base_url.to_string()) {
        Ok(url) => url.origin().ascii_serialization(),
        Err(_) => String::new(),
    }
}

/// What the provider sent back to the callback.
struct CallbackParams {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    /// Apple's `user` (JSON), on the first authorization only.
    user: Option<String>,
}

impl CallbackParams {
    fn of(request: &ApiRequest, provider: ProviderName) -> Result<CallbackParams, Problem> {
        let encoded = match provider {
            ProviderName::Google => request.query.clone().unwrap_or_default(),
            ProviderName::Apple => {
                if request.body.len() > crate::http::MAX_BODY_BYTES {
                    return Err(crate::http::payload_too_large());
                }
                String::from_utf8_lossy(&request.body).into_owned()
            }
        };
        let param = |name: &str| crate::http::form_param(&encoded, name);
        Ok(CallbackParams {
            code: param("code"),
            state: param("state"),
            error: param("error"),
            user: param("user"),
        })
    }
}

#[derive(Deserialize)]
struct AppleUser {
    name: Option<AppleName>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AppleName {
    first_name: Option<String>,
    last_name: Option<String>,
}

/// `GET` (Google) or `POST` with `response_mode=form_post` (Apple)
/// `/v1/oauth/{provider}/callback`.
pub async fn callback(app: &App, request: &ApiRequest, name: &str) -> Result<ApiResponse, Problem> {
    let provider = provider(app, name)?;
    let name = provider.settings.name;
    let expected_method = match name {
        ProviderName::Google => http::Method::GET,
        ProviderName::Apple => http::Method::POST,
    };
    if request.method != expected_method {
        return Err(Problem::method_not_allowed());
    }
    let params = CallbackParams::of(request, name)?;
    let return_to = spend_state(app, request, name, params.state.as_deref()).await?;
    let secrets = {
        let handle = cookie_value(request, &cookie_name(name)).unwrap_or_default();
        RequestSecrets::of(&Secret::new(handle))
    };
    if params.error.is_some() {
        return Err(OauthError::ProviderRefused.into());
    }
    let code = params.code.ok_or(OauthError::ProviderRefused)?;
    let redirect_uri = app.config.oauth.redirect_uri(name);
    let mut identity = match app
        .providers
        .exchange(provider, &code, &secrets, &redirect_uri, app.now())
        .await
    {
        Ok(identity) => identity,
        Err(ProviderError::CodeRefused(why)) => {
            tracing::warn!(provider = name.as_str(), why, "a provider refused a code");
            return Err(OauthError::ProviderRefused.into());
        }
        Err(ProviderError::TokenRefused(why)) => {
            tracing::warn!(provider = name.as_str(), why, "an ID token was refused");
            return Err(OauthError::ProviderRefused.into());
        }
        Err(ProviderError::Unexpected(e)) => return Err(OauthError::Unexpected(e).into()),
    };
    if let Some(user) = params.user.as_deref() {
        identity.full_name = identity.full_name.or_else(|| apple_name(user));
    }
    let outcome = after_identity(app, request, &identity, &return_to).await?;
    let mut response = outcome;
    response.headers_mut().append(
        SET_COOKIE,
        http::HeaderValue::from_str(&state_cookie(name, "", 0)).context("a cookie header")?,
    );
    Ok(response)
}

/// The name in Apple's `user` parameter.
fn apple_name(user: &str) -> Option<String> {
    let user: AppleUser = serde_json::from_str(user).ok()?;
    let name = user.name?;
    let full = [name.first_name, name.last_name]
        .into_iter()
        .flatten()
        .filter(|part| !part.trim().is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    (!full.is_empty()).then_some(full)
}

/// Checks the callback's `state` against the browser's handle and spends the stored
/// state (one conditional delete: a second callback with the same state fails here).
/// Answers the `return_to` it held.
async fn spend_state(
    app: &App,
    request: &ApiRequest,
    provider: ProviderName,
    state: Option<&str>,
) -> Result<String, OauthError> {
    let handle = cookie_value(request, &cookie_name(provider))
        .filter(|h| !h.is_empty() && h.len() <= 128)
        .ok_or(OauthError::StateInvalid)?;
    let secrets = RequestSecrets::of(&Secret::new(handle.clone()));
    let state = state.ok_or(OauthError::StateInvalid)?;
    if !digests_match(&sha256_hex(state), &sha256_hex(&secrets.state)) {
        return Err(OauthError::StateInvalid);
    }
    let key = keys::oauth_state(&sha256_hex(&handle));
    let now = app.now();
    let item = app
        .store
        .get(&key)
        .await
        .context("reading a sign-in's state")?
        .filter(|item| !item.is_expired(now))
        .ok_or(OauthError::StateInvalid)?;
    let spend = Write::delete(key)
        .when(Cond::eq(attr::PROVIDER, provider.as_str()).and(Cond::gt(EXPIRES_AT, now)));
    match app.store.write(spend).await {
        Ok(_) => Ok(item.s(attr::RETURN_TO).unwrap_or("/").to_owned()),
        Err(crate::store::WriteError::ConditionFailed { .. }) => Err(OauthError::StateInvalid),
        Err(crate::store::WriteError::Unexpected(e)) => {
            Err(e.context("spending a sign-in's state").into())
        }
    }
}

/// The three branches of a verified identity.
async fn after_identity(
    app: &App,
    request: &ApiRequest,
    identity: &ProviderIdentity,
    return_to: &str,
) -> Result<ApiResponse, Problem> {
    let link = app
        .store
        .get(&keys::identity(
            identity.provider.as_str(),
            &identity.subject,
        ))
        .await
        .context("reading an identity")?;
    if let Some(user_id) = link.as_ref().and_then(|l| l.s(attr::USER_ID)) {
        let user = records::lookup::find_by_id(app.store.as_ref(), user_id)
            .await?
            .ok_or(OauthError::Restart)?;
        return log_in(
            app,
            request,
            &user,
            identity.provider,
            Vec::new(),
            None,
            return_to,
        )
        .await;
    }
    let email = identity
        .email
        .as_deref()
        .and_then(|email| EmailAddress::parse_for_account(email).ok())
        .ok_or(OauthError::NoEmail)?;
    // Only an address the provider vouches for may say anything about existing accounts;
    // an unverified one goes the way of a signup, which tells nothing.
    let owner = match identity.email_verified {
        true => records::lookup::find_by_email(app.store.as_ref(), &email).await?,
        false => None,
    };
    let (step, user_id, replaces) = match &owner {
        Some(owner) if owner.email_verified => (Step::Link, Some(owner.id.as_str()), None),
        Some(squatter) => (Step::Signup, None, Some(squatter.id.as_str())),
        None => (Step::Signup, None, None),
    };
    let pending = Pending::issue(app, identity, &email, step, user_id, replaces, return_to)?;
    app.store
        .write(Write::put(pending.item.clone()).when(Cond::ItemAbsent))
        .await
        .map_err(|e| anyhow::Error::from(e).context("storing a pending sign-in"))?;
    let view = PendingView {
        status: match step {
            Step::Signup => "account_type_required",
            Step::Link => "link_required",
        },
        token: pending.token.expose(),
        provider: identity.provider.as_str(),
        email: email.address().to_owned(),
        email_verified: identity.email_verified,
        full_name: pending.item.s(attr::FULL_NAME).map(str::to_owned),
        methods: match step {
            Step::Signup => Vec::new(),
            Step::Link => vec!["password"],
        },
        return_to: return_to.to_owned(),
    };
    Ok(crate::http::json(StatusCode::OK, &view))
}

#[derive(Serialize)]
struct PendingView {
    status: &'static str,
    token: String,
    provider: &'static str,
    email: String,
    email_verified: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    full_name: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    methods: Vec<&'static str>,
    return_to: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    Signup,
    Link,
}

impl Step {
    fn as_str(self) -> &'static str {
        match self {
            Step::Signup => "signup",
            Step::Link => "link",
        }
    }
}

/// A first sign-in waiting for its last step; only its token's digest is stored.
struct Pending {
    token: Token,
    item: Item,
}

impl Pending {
    fn issue(
        app: &App,
        identity: &ProviderIdentity,
        email: &EmailAddress,
        step: Step,
        user_id: Option<&str>,
        replaces: Option<&str>,
        return_to: &str,
    ) -> anyhow::Result<Pending> {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let token = Token::generate(&id)?;
        let full_name = identity
            .full_name
            .as_deref()
            .and_then(|name| FullName::parse(name).ok().flatten())
            .map(FullName::into_string);
        let mut item = Item::new(&keys::oauth_pending(&id))
            .with(attr::TOKEN_HASH, token.digest())
            .with(attr::STEP, step.as_str())
            .with(attr::PROVIDER, identity.provider.as_str())
            .with(attr::SUBJECT, identity.subject.as_str())
            .with(attr::EMAIL, email.address())
            .with(attr::EMAIL_VERIFIED, identity.email_verified)
            .with(attr::PRIVATE_EMAIL, identity.private_email)
            .with(attr::RETURN_TO, return_to)
            .with(EXPIRES_AT, app.now() + PENDING_SECONDS);
        item.set_opt(attr::FULL_NAME, full_name)
            .set_opt(attr::USER_ID, user_id.map(str::to_owned))
            .set_opt(attr::REPLACES, replaces.map(str::to_owned));
        Ok(Pending { token, item })
    }
}

/// A presented pending sign-in: its stored item, checked.
struct PresentedPending {
    token: Token,
    item: Item,
    provider: ProviderName,
    subject: String,
}

impl PresentedPending {
    async fn read(app: &App, text: &Secret, step: Step) -> Result<PresentedPending, OauthError> {
        let token = Token::parse(text.expose()).ok_or(OauthError::PendingInvalid)?;
        let item = app
            .store
            .get(&keys::oauth_pending(token.selector()))
            .await
            .context("reading a pending sign-in")?
            .filter(|item| !item.is_expired(app.now()))
            .filter(|item| {
                item.s(attr::TOKEN_HASH)
                    .is_some_and(|hash| digests_match(hash, &token.digest()))
            })
            .filter(|item| item.s(attr::STEP) == Some(step.as_str()))
            .ok_or(OauthError::PendingInvalid)?;
        let provider = item
            .s(attr::PROVIDER)
            .and_then(ProviderName::parse)
            .ok_or(OauthError::PendingInvalid)?;
        let subject = item
            .s(attr::SUBJECT)
            .ok_or(OauthError::PendingInvalid)?
            .to_owned();
        Ok(PresentedPending {
            token,
            item,
            provider,
            subject,
        })
    }

    /// Spends it: single use, by a conditional delete in the step's transaction.
    fn spend(&self, now: i64) -> Write {
        Write::delete(keys::oauth_pending(self.token.selector()))
            .when(Cond::eq(attr::TOKEN_HASH, self.token.digest()).and(Cond::gt(EXPIRES_AT, now)))
    }

    /// The identity's two items, written only where none is yet.
    fn link_writes(&self, user_id: &str, now: i64) -> [Write; 2] {
        let provider = self.provider.as_str();
        let email = self.item.s(attr::EMAIL).unwrap_or_default();
        [
            Write::put(
                Item::new(&keys::identity(provider, &self.subject))
                    .with(attr::USER_ID, user_id)
                    .with(attr::LINKED_AT, now),
            )
            .when(Cond::ItemAbsent),
            Write::put(
                Item::new(&keys::account_identity(user_id, provider))
                    .with(attr::PROVIDER, provider)
                    .with(attr::SUBJECT, self.subject.as_str())
                    .with(attr::EMAIL, email)
                    .with(attr::LINKED_AT, now),
            )
            .when(Cond::ItemAbsent),
        ]
    }
}

/// Logs `user` in through `provider`: the account's usual rules (verified address, the
/// address's back-off, two-step verification), then a session exactly like a password
/// login's, in one transaction with `more` (a link being made) and, on the account,
/// `account_cond` too (the password the link was proven with).
async fn log_in(
    app: &App,
    request: &ApiRequest,
    user: &User,
    provider: ProviderName,
    more: Vec<Write>,
    account_cond: Option<Cond>,
    return_to: &str,
) -> Result<ApiResponse, Problem> {
    if !user.email_verified {
        return Err(crate::flows::login::LoginError::EmailNotVerified.into());
    }
    let now = app.now();
    let claim = match Claim::take(
        app.store.as_ref(),
        Counter::Address { user_id: &user.id },
        now,
    )
    .await?
    {
        Ok(claim) => claim,
        Err(wait) => {
            let entry = login_history::entry(
                &user.id,
                &request.client,
                now,
                Outcome::RateLimited,
                provider.as_str(),
            );
            app.store.write(entry).await.map_err(anyhow::Error::from)?;
            return Err(crate::flows::login::LoginError::RateLimited(wait).into());
        }
    };
    let extra = more.len();
    let mut writes = more;
    if !second_factors::methods(user).is_empty() {
        let challenge = Challenge::start(app, user, false)?;
        writes.push(challenge.write());
        if let Some(cond) = account_cond {
            writes.push(Write::check(keys::user(&user.id), cond));
        }
        writes.push(claim.released(now));
        let committed = app.store.transact(writes).await;
        return match committed {
            Ok(()) => Ok(with_return_to(challenge.response(user), return_to)),
            Err(e) => {
                claim.release(app.store.as_ref(), now).await;
                Err(transaction_problem(e, extra))
            }
        };
    }
    let session = NewSession::start(app, user, &request.client, false, provider.as_str())?;
    let cond = match account_cond {
        Some(cond) => cond.and(session.account_cond(user)),
        None => session.account_cond(user),
    };
    writes.extend([
        Write::check(keys::user(&user.id), cond),
        session.write(),
        login_history::entry(
            &user.id,
            &request.client,
            now,
            Outcome::Success,
            provider.as_str(),
        ),
        // The password's back-off is the password's: a provider's login ends its claim
        // without clearing the failures.
        claim.released(now),
    ]);
    let stored = app
        .store
        .query(&sessions::sessions_query(&user.id))
        .await
        .context("reading an account's sessions")?
        .items;
    let room = MAX_TRANSACTION_WRITES.saturating_sub(writes.len());
    writes.extend(sessions::make_room(app, user, &stored, room));
    match app.store.transact(writes).await {
        Ok(()) => {
            let tokens = session.tokens(app)?.response();
            Ok(with_return_to(tokens, return_to))
        }
        Err(e) => {
            claim.release(app.store.as_ref(), now).await;
            Err(transaction_problem(e, extra))
        }
    }
}

/// A failed transaction whose first `extra` writes are the step's own (the pending
/// sign-in's spend, then the identity's items).
fn transaction_problem(e: TransactError, extra: usize) -> Problem {
    match e {
        e if extra > 0 && e.failed_at(0).is_some() => OauthError::PendingInvalid.into(),
        e if (1..extra).any(|i| e.failed_at(i).is_some()) => OauthError::Restart.into(),
        TransactError::ConditionFailed { .. } => OauthError::Restart.into(),
        TransactError::Unexpected(e) => {
            Problem::from(e.context("starting a session through a provider"))
        }
    }
}

/// Adds `return_to` to a JSON object answer.
fn with_return_to(response: ApiResponse, return_to: &str) -> ApiResponse {
    let status = response.status();
    match serde_json::from_slice::<serde_json::Value>(response.body()) {
        Ok(mut body) if body.is_object() => {
            body["return_to"] = return_to.into();
            crate::http::json(status, &body)
        }
        _ => response,
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SignupRequest {
    token: Secret,
    account_type: String,
    username: Option<String>,
}

/// `POST /v1/oauth/signup`: the account type (and a username) of a first sign-in, which
/// makes the account. A provider-verified address gives a verified account and a session;
/// any other gets the signup's answer (`202 verification_sent`) and its email, whether or
/// not the address had an account.
pub async fn signup(app: &App, request: &ApiRequest) -> Result<ApiResponse, Problem> {
    let body: SignupRequest = request.json()?;
    let mut errors = Vec::new();
    let account_type = AccountType::parse(&body.account_type);
    if account_type.is_none() {
        errors.push(FieldError::new("account_type", "invalid"));
    }
    let username = match body.username.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(text) => Username::parse(text)
            .map_err(|_| errors.push(FieldError::new("username", "invalid")))
            .ok(),
    };
    let Some(account_type) = account_type.filter(|_| errors.is_empty()) else {
        return Err(Problem::validation(errors));
    };
    let pending = PresentedPending::read(app, &body.token, Step::Signup).await?;
    let item = &pending.item;
    let email = item
        .s(attr::EMAIL)
        .and_then(|e| EmailAddress::parse_for_account(e).ok())
        .ok_or(OauthError::PendingInvalid)?;
    let verified = item.bool(attr::EMAIL_VERIFIED).unwrap_or(false);
    let replaces = match item.s(attr::REPLACES) {
        Some(id) => records::lookup::find_by_id(app.store.as_ref(), id)
            .await?
            .filter(|u| !u.email_verified && u.email_canonical == email.canonical()),
        None => None,
    };
    if item.s(attr::REPLACES).is_some() && replaces.is_none() {
        // Verified, deleted or moved meanwhile: the person starts again and is told what
        // the address is now.
        return Err(OauthError::Restart.into());
    }
    let now = app.now();
    let user = User {
        id: records::new_user_id(),
        email: email.address().to_owned(),
        email_canonical: email.canonical().to_owned(),
        username: username.as_ref().map(|u| u.as_str().to_owned()),
        username_canonical: username.as_ref().map(|u| u.canonical().to_owned()),
        full_name: item.s(attr::FULL_NAME).map(str::to_owned),
        account_type,
        email_verified: verified,
        created_at: now,
        // A password nobody knows, hashed like any other: a login with a password
        // takes the usual path and time, and "forgot password" can set a real one.
        password_hash: app
            .passwords
            .rehash(&Secret::new(base64_url(&random_bytes::<32>()?)))
            .await?,
        security_question: None,
        totp: None,
        backup_codes: BTreeSet::new(),
        sessions: Default::default(),
        mail_delivery: Default::default(),
    };
    const EMAIL_CLAIM: usize = 1;
    const USERNAME_CLAIM: usize = 5;
    let claim = records::email_claim_item(&email, &user.id);
    let [identity, account_identity] = pending.link_writes(&user.id, now);
    let mut writes = vec![
        pending.spend(now),
        match &replaces {
            Some(squatter) => Write::put(claim).when(Cond::eq(attr::USER_ID, squatter.id.as_str())),
            None => Write::put(claim).when(Cond::ItemAbsent),
        },
        Write::put(user.to_item().with(attr::PASSWORD_UNUSABLE, true)).when(Cond::ItemAbsent),
        identity,
        account_identity,
    ];
    // Without a username, the squatter's deletes below take this index, which is then
    // never judged as the username's.
    if let Some(name) = &user.username_canonical {
        writes
            .push(Write::put(records::username_claim_item(name, &user.id)).when(Cond::ItemAbsent));
    }
    if let Some(squatter) = &replaces {
        writes.push(Write::delete(keys::user(&squatter.id)).when(
            Cond::eq(attr::EMAIL_VERIFIED, false).and(Cond::eq(
                attr::EMAIL_CANONICAL,
                squatter.email_canonical.as_str(),
            )),
        ));
        writes.push(Write::delete(keys::verification(&squatter.id)));
        for purpose in crate::credentials::emailed_link::Purpose::kill_all(&squatter.id) {
            writes.push(purpose);
        }
        if let Some(name) = &squatter.username_canonical {
            writes.push(
                Write::delete(keys::username_claim(name))
                    .when(Cond::eq(attr::USER_ID, squatter.id.as_str())),
            );
        }
    }
    let verification = match verified {
        true => None,
        false => {
            let pending = email_verification::Pending::issue(&user.id, now)?;
            writes.push(Write::put(pending.to_item(None)));
            Some(pending)
        }
    };
    let session = match verified {
        true => {
            let session = NewSession::start(
                app,
                &user,
                &request.client,
                false,
                pending.provider.as_str(),
            )?;
            writes.push(session.write());
            writes.push(login_history::entry(
                &user.id,
                &request.client,
                now,
                Outcome::Success,
                pending.provider.as_str(),
            ));
            Some(session)
        }
        false => None,
    };
    let return_to = item.s(attr::RETURN_TO).unwrap_or("/").to_owned();
    match app.store.transact(writes).await {
        Ok(()) => {}
        Err(e) if e.failed_at(0).is_some() => return Err(OauthError::PendingInvalid.into()),
        Err(e) if e.failed_at(USERNAME_CLAIM).is_some() && user.username.is_some() => {
            return Err(crate::flows::signup::SignupError::UsernameTaken.into());
        }
        Err(e) if e.failed_at(EMAIL_CLAIM).is_some() && !verified => {
            // An address the provider does not vouch for, with an account: answered as a
            // new account is, and its owner is told (as a signup on it would).
            let claim = e.failed_at(EMAIL_CLAIM).and_then(|f| f.current.clone());
            if let Some(address) = claim.as_ref().and_then(|c| c.s(attr::EMAIL)) {
                let delivery = crate::mail::Delivery::parse(
                    claim.as_ref().and_then(|c| c.s(attr::MAIL_DELIVERY)),
                );
                crate::flows::signup::notify_existing_owner(
                    app,
                    email.canonical(),
                    address,
                    delivery,
                )
                .await?;
            }
            let _ = app.store.write(pending.spend(now)).await;
            return Ok(crate::http::status(
                StatusCode::ACCEPTED,
                "verification_sent",
            ));
        }
        Err(TransactError::ConditionFailed { .. }) => return Err(OauthError::Restart.into()),
        Err(TransactError::Unexpected(e)) => {
            return Err(Problem::from(
                e.context("creating an account through a provider"),
            ));
        }
    }
    if let Some(verification) = verification {
        app.send_quietly(&user.email, user.mail_delivery, verification.message(app))
            .await;
        return Ok(crate::http::status(
            StatusCode::ACCEPTED,
            "verification_sent",
        ));
    }
    match session {
        Some(session) => {
            let tokens = session.tokens(app)?.response();
            let mut response = with_return_to(tokens, &return_to);
            *response.status_mut() = StatusCode::CREATED;
            Ok(response)
        }
        None => Err(Problem::from(anyhow::anyhow!(
            "a verified account without a session"
        ))),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LinkRequest {
    token: Secret,
    password: Secret,
}

/// `POST /v1/oauth/link`: the password of the account that holds the provider's verified
/// address proves the account; then the identity is linked and the login goes on as a
/// password login does (two-step verification asks for its second factor).
pub async fn link_with_password(app: &App, request: &ApiRequest) -> Result<ApiResponse, Problem> {
    let body: LinkRequest = request.json()?;
    let pending = PresentedPending::read(app, &body.token, Step::Link).await?;
    let user_id = pending
        .item
        .s(attr::USER_ID)
        .ok_or(OauthError::PendingInvalid)?;
    let user = records::lookup::find_by_id(app.store.as_ref(), user_id)
        .await?
        .ok_or(OauthError::Restart)?;
    let now = app.now();
    let claim = match Claim::take(
        app.store.as_ref(),
        Counter::Address { user_id: &user.id },
        now,
    )
    .await?
    {
        Ok(claim) => claim,
        Err(wait) => return Err(crate::flows::login::LoginError::RateLimited(wait).into()),
    };
    let verdict = app
        .passwords
        .verify(&body.password, Some(&user.password_hash))
        .await?;
    if verdict == Verdict::Wrong {
        login_history::count_wrong_password(
            app.store.as_ref(),
            &claim,
            Some(&user.id),
            &request.client,
            app.now(),
        )
        .await?;
        return Err(crate::flows::login::LoginError::InvalidCredentials.into());
    }
    // The claim is taken again by the login below: this one ends here.
    claim.release(app.store.as_ref(), now).await;
    let [identity, account_identity] = pending.link_writes(&user.id, now);
    let more = vec![pending.spend(now), identity, account_identity];
    let same_password = Cond::eq(attr::PASSWORD_HASH, user.password_hash.0.as_str());
    let return_to = pending.item.s(attr::RETURN_TO).unwrap_or("/").to_owned();
    let answer = log_in(
        app,
        request,
        &user,
        pending.provider,
        more,
        Some(same_password),
        &return_to,
    )
    .await?;
    crate::protections::security_notices::identity_changed(
        app,
        &user,
        &request.client,
        pending.provider.display(),
        true,
    )
    .await;
    Ok(answer)
}

#[derive(Serialize)]
struct IdentityView {
    provider: String,
    email: Option<String>,
    linked_at: String,
}

fn identities_query(user_id: &str) -> Query {
    Query::partition(keys::user_partition(user_id)).prefix(keys::IDENTITY_PREFIX)
}

/// `GET /v1/account/identities`: the account's linked providers.
pub async fn identities(app: &App, request: &ApiRequest) -> Result<ApiResponse, Problem> {
    let SignedIn { user, .. } = sessions::signed_in(app, request, None).await?;
    let items = app
        .store
        .query(&identities_query(&user.id))
        .await
        .context("reading an account's identities")?
        .items;
    let identities: Vec<IdentityView> = items
        .iter()
        .map(|item| IdentityView {
            provider: item.s(attr::PROVIDER).unwrap_or_default().to_owned(),
            email: item.s(attr::EMAIL).map(str::to_owned),
            linked_at: crate::clock::rfc3339(item.n(attr::LINKED_AT).unwrap_or(0)),
        })
        .collect();
    let password = app
        .store
        .get(&keys::user(&user.id))
        .await
        .context("reading an account")?
        .is_some_and(|item| item.bool(attr::PASSWORD_UNUSABLE) != Some(true));
    Ok(crate::http::json(
        StatusCode::OK,
        &serde_json::json!({ "identities": identities, "password": password }),
    ))
}

/// `DELETE /v1/account/identities/{provider}`: unlinks, while another way to log in
/// stays (a password, or another identity), under conditions that it still does.
pub async fn unlink(app: &App, request: &ApiRequest, name: &str) -> Result<ApiResponse, Problem> {
    let SignedIn { user, .. } = sessions::signed_in(app, request, None).await?;
    let provider = ProviderName::parse(name).ok_or_else(Problem::not_found)?;
    let items = app
        .store
        .query(&identities_query(&user.id))
        .await
        .context("reading an account's identities")?
        .items;
    let this = items
        .iter()
        .find(|item| item.s(attr::PROVIDER) == Some(provider.as_str()))
        .ok_or_else(Problem::not_found)?;
    let subject = this.s(attr::SUBJECT).unwrap_or_default();
    let account = app
        .store
        .get(&keys::user(&user.id))
        .await
        .context("reading an account")?
        .ok_or_else(sessions::unauthorized)?;
    let has_password = account.bool(attr::PASSWORD_UNUSABLE) != Some(true);
    let other = items
        .iter()
        .find(|item| item.s(attr::PROVIDER) != Some(provider.as_str()));
    // The other way in must still be there when the identity goes.
    let remaining = match (has_password, other) {
        (true, _) => Write::check(
            keys::user(&user.id),
            Cond::attr_absent(attr::PASSWORD_UNUSABLE),
        ),
        (false, Some(other)) => Write::check(
            other.key().context("an identity item without a key")?,
            Cond::ItemExists,
        ),
        (false, None) => {
            return Err(Problem::new(
                StatusCode::CONFLICT,
                "last_way_in",
                "This is the only way to log in to this account. Set a password first (through \"Forgot password\"), or link another provider.",
            ));
        }
    };
    let writes = vec![
        Write::delete(keys::identity(provider.as_str(), subject))
            .when(Cond::eq(attr::USER_ID, user.id.as_str())),
        Write::delete(keys::account_identity(&user.id, provider.as_str())).when(Cond::ItemExists),
        remaining,
    ];
    match app.store.transact(writes).await {
        Ok(()) => {}
        Err(TransactError::ConditionFailed { .. }) => {
            return Err(OauthError::Restart.into());
        }
        Err(TransactError::Unexpected(e)) => {
            return Err(Problem::from(e.context("unlinking an identity")));
        }
    }
    crate::protections::security_notices::identity_changed(
        app,
        &user,
        &request.client,
        provider.display(),
        false,
    )
    .await;
    Ok(crate::http::no_content())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn apples_user_parameter_gives_the_name() {
        let user = r#"{"name":{"firstName":"Ada","lastName":"Lovelace"},"email":"a@b.c"}"#;
        assert_eq!(apple_name(user).as_deref(), Some("Ada Lovelace"));
        assert_eq!(apple_name("not json"), None);
    }
}
