//! The web session: an API session's token pair in two `__Host-` cookies. A signed-in
//! page checks the access token against the store on every request (so every way a
//! session ends, ends the web session at once), refreshes it with the refresh token when
//! it has expired (rotating both cookies), and otherwise sends the browser to log in.

use serde_json::{Value, json};

use super::api::{Answer as ApiAnswer, Call};
use super::cookies::{self, Lifetime};
use super::page::{Answer, broken};
use crate::app::App;
use crate::http::ApiRequest;

/// How long "Remember me" keeps the cookies: the remembered session's own limit.
const REMEMBERED_SECONDS: i64 = 30 * 86_400;
/// The mark a remembered session's refresh cookie starts with, so that a refresh keeps
/// the cookies' lifetime.
const REMEMBERED_MARK: &str = "1.";

/// The token pair of a web session.
pub struct Tokens {
    pub access: String,
    pub refresh: String,
    pub remembered: bool,
}

impl Tokens {
    /// The pair a login or a refresh answered with.
    pub fn from_answer(answer: &ApiAnswer, remembered: bool) -> Option<Tokens> {
        Some(Tokens {
            access: answer.text("access_token")?,
            refresh: answer.text("refresh_token")?,
            remembered,
        })
    }

    /// The cookies that hold the pair (ending with the browser, or in 30 days).
    pub fn cookies(&self) -> Vec<String> {
        let lifetime = if self.remembered {
            Lifetime::Seconds(REMEMBERED_SECONDS)
        } else {
            Lifetime::Browser
        };
        let mark = if self.remembered { REMEMBERED_MARK } else { "" };
        let refresh = format!("{mark}{}", self.refresh);
        if !cookies::is_cookie_safe(&self.access) || !cookies::is_cookie_safe(&refresh) {
            // Tokens are base64url and dots: this is a bug, and no cookie is better
            // than a broken one.
            tracing::error!("a token is not cookie-safe; the session cookies were not set");
            return Vec::new();
        }
        vec![
            cookies::set(cookies::ACCESS, &self.access, lifetime),
            cookies::set(cookies::REFRESH, &refresh, lifetime),
        ]
    }
}

/// The cookies that end the web session in the browser.
pub fn cleared() -> Vec<String> {
    vec![
        cookies::clear(cookies::ACCESS),
        cookies::clear(cookies::REFRESH),
    ]
}

/// The refresh token of the request's session, and whether it was remembered.
pub fn refresh_token(request: &ApiRequest) -> Option<(String, bool)> {
    let value = cookies::get(&request.headers, cookies::REFRESH)?;
    Some(match value.strip_prefix(REMEMBERED_MARK) {
        Some(token) => (token.to_owned(), true),
        None => (value.to_owned(), false),
    })
}

/// A signed-in visitor: the access token that works now, the account as
/// `GET /v1/account` answers it, and the cookies to set if the tokens were refreshed.
pub struct SignedIn {
    pub access_token: String,
    pub account: Value,
    pub cookies: Vec<String>,
}

/// The signed-in visitor of `request`, or the answer that sends the browser to log in
/// (and back to `path_and_query` afterwards).
pub async fn signed_in(
    app: &App,
    request: &ApiRequest,
    path_and_query: &str,
) -> Result<SignedIn, Answer> {
    if let Some(access) = cookies::get(&request.headers, cookies::ACCESS) {
        let account = Call::get("/v1/account")
            .signed_in(access)
            .send(app, request)
            .await;
        if account.is_success() {
            return Ok(SignedIn {
                access_token: access.to_owned(),
                account: account.body,
                cookies: Vec::new(),
            });
        }
        if account.status.is_server_error() {
            return Err(broken(account.status, account.retry_after));
        }
    }
    // The access token expired (or is missing): the refresh token may renew the pair; a
    // session that ended (logout, revoked, password changed) refuses it.
    if let Some((refresh, remembered)) = refresh_token(request) {
        let renewed = Call::post("/v1/token/refresh", json!({ "refresh_token": refresh }))
            .send(app, request)
            .await;
        if renewed.status.is_server_error() {
            return Err(broken(renewed.status, renewed.retry_after));
        }
        if let Some(tokens) = Tokens::from_answer(&renewed, remembered) {
            let account = Call::get("/v1/account")
                .signed_in(&tokens.access)
                .send(app, request)
                .await;
            if account.is_success() {
                return Ok(SignedIn {
                    cookies: tokens.cookies(),
                    access_token: tokens.access,
                    account: account.body,
                });
            }
        }
    }
    let login = format!("/login?return_to={}", super::percent_encode(path_and_query));
    Err(Answer::redirect(&login).with_cookies(cleared()))
}
