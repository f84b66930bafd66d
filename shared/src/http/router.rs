//! The route table: every route of the API, the function (Lambda) that owns it, and
//! the dispatch from a request to its handler.

use http::Method;

use super::{ApiRequest, ApiResponse, Problem};
use crate::app::App;

/// The deployable functions, one per route group.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Function {
    Signup,
    Verify,
    Login,
    Reset,
    Account,
    TwoFactor,
}

impl Function {
    pub const ALL: &'static [Function] = &[
        Function::Signup,
        Function::Verify,
        Function::Login,
        Function::Reset,
        Function::Account,
        Function::TwoFactor,
    ];

    /// Whether the function signs or checks access tokens, and so needs the shared
    /// signing key (the others never see it: least privilege).
    pub fn verifies_access_tokens(self) -> bool {
        matches!(
            self,
            Function::Login | Function::Account | Function::TwoFactor
        )
    }

    /// Whether the function checks second factors, and so needs the key that decrypts
    /// TOTP secrets.
    pub fn decrypts_totp_secrets(self) -> bool {
        matches!(
            self,
            Function::Login | Function::Reset | Function::TwoFactor
        )
    }

    /// The shared keys the function cannot start without.
    pub fn keys_needed(self) -> KeysNeeded {
        KeysNeeded {
            signing_key: self.verifies_access_tokens(),
            totp_key: self.decrypts_totp_secrets(),
        }
    }

    /// The function's binary (and directory) name.
    pub fn name(self) -> &'static str {
        match self {
            Function::Signup => "signup",
            Function::Verify => "verify",
            Function::Login => "login",
            Function::Reset => "reset",
            Function::Account => "account",
            Function::TwoFactor => "two-factor",
        }
    }
}

/// The shared keys a function needs from configuration to start.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KeysNeeded {
    pub signing_key: bool,
    pub totp_key: bool,
}

/// Every endpoint of the API.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Endpoint {
    Signup,
    CorrectEmail,
    VerifyEmail,
    ResendVerification,
    Health,
    Login,
    RefreshToken,
    Logout,
    Jwks,
    Account,
    Sessions,
    RevokeSession,
    RevokeOtherSessions,
    LoginHistory,
    ForgotPassword,
    ResetPassword,
    ChangePassword,
    SecurityQuestions,
    SetSecurityQuestion,
    ForgotSecurityAnswer,
    ResetSecurityQuestion,
    LoginMfa,
    TotpSetup,
    TotpConfirm,
    TotpDisable,
    BackupCodes,
}

/// One route: method, path pattern (`{name}` matches one segment) and endpoint.
#[derive(Clone, Debug)]
pub struct Route {
    pub method: Method,
    pub path: &'static str,
    pub endpoint: Endpoint,
}

const fn route(method: Method, path: &'static str, endpoint: Endpoint) -> Route {
    Route {
        method,
        path,
        endpoint,
    }
}

pub const ROUTES: &[Route] = &[
    route(Method::POST, "/v1/signup", Endpoint::Signup),
    route(
        Method::POST,
        "/v1/signup/correct-email",
        Endpoint::CorrectEmail,
    ),
    route(Method::GET, "/v1/health", Endpoint::Health),
    route(Method::POST, "/v1/email/verify", Endpoint::VerifyEmail),
    route(
        Method::POST,
        "/v1/email/verify/resend",
        Endpoint::ResendVerification,
    ),
    route(Method::POST, "/v1/login", Endpoint::Login),
    route(Method::POST, "/v1/token/refresh", Endpoint::RefreshToken),
    route(Method::POST, "/v1/logout", Endpoint::Logout),
    route(Method::GET, "/.well-known/jwks.json", Endpoint::Jwks),
    route(Method::GET, "/v1/account", Endpoint::Account),
    route(Method::GET, "/v1/account/sessions", Endpoint::Sessions),
    route(
        Method::DELETE,
        "/v1/account/sessions/{id}",
        Endpoint::RevokeSession,
    ),
    route(
        Method::POST,
        "/v1/account/sessions/revoke-others",
        Endpoint::RevokeOtherSessions,
    ),
    route(
        Method::GET,
        "/v1/account/login-history",
        Endpoint::LoginHistory,
    ),
    route(
        Method::POST,
        "/v1/password/forgot",
        Endpoint::ForgotPassword,
    ),
    route(Method::POST, "/v1/password/reset", Endpoint::ResetPassword),
    route(
        Method::POST,
        "/v1/account/password",
        Endpoint::ChangePassword,
    ),
    route(
        Method::GET,
        "/v1/security-questions",
        Endpoint::SecurityQuestions,
    ),
    route(
        Method::PUT,
        "/v1/account/security-question",
        Endpoint::SetSecurityQuestion,
    ),
    route(
        Method::POST,
        "/v1/security-question/forgot",
        Endpoint::ForgotSecurityAnswer,
    ),
    route(
        Method::POST,
        "/v1/security-question/reset",
        Endpoint::ResetSecurityQuestion,
    ),
    route(Method::POST, "/v1/login/mfa", Endpoint::LoginMfa),
    route(Method::POST, "/v1/2fa/totp/setup", Endpoint::TotpSetup),
    route(Method::POST, "/v1/2fa/totp/confirm", Endpoint::TotpConfirm),
    route(Method::DELETE, "/v1/2fa/totp", Endpoint::TotpDisable),
    route(Method::POST, "/v1/2fa/backup-codes", Endpoint::BackupCodes),
];

impl Endpoint {
    /// The function that serves this endpoint in AWS.
    pub fn function(self) -> Function {
        match self {
            Endpoint::Signup | Endpoint::CorrectEmail | Endpoint::Health => Function::Signup,
            Endpoint::VerifyEmail | Endpoint::ResendVerification => Function::Verify,
            Endpoint::Login
            | Endpoint::LoginMfa
            | Endpoint::RefreshToken
            | Endpoint::Logout
            | Endpoint::Jwks => Function::Login,
            Endpoint::TotpSetup
            | Endpoint::TotpConfirm
            | Endpoint::TotpDisable
            | Endpoint::BackupCodes => Function::TwoFactor,
            Endpoint::Account
            | Endpoint::Sessions
            | Endpoint::RevokeSession
            | Endpoint::RevokeOtherSessions
            | Endpoint::LoginHistory
            | Endpoint::ChangePassword
            | Endpoint::SecurityQuestions
            | Endpoint::SetSecurityQuestion => Function::Account,
            Endpoint::ForgotPassword
            | Endpoint::ResetPassword
            | Endpoint::ForgotSecurityAnswer
            | Endpoint::ResetSecurityQuestion => Function::Reset,
        }
    }
}

/// The path parameters a pattern captured, in order.
pub type PathParams = Vec<String>;

fn matches(pattern: &str, path: &str) -> Option<PathParams> {
    let mut params = Vec::new();
    let mut pattern_segments = pattern.split('/');
    let mut path_segments = path.split('/');
    loop {
        match (pattern_segments.next(), path_segments.next()) {
            (None, None) => return Some(params),
            (Some(p), Some(s)) if p.starts_with('{') && p.ends_with('}') && !s.is_empty() => {
                params.push(s.to_owned());
            }
            (Some(p), Some(s)) if p == s => {}
            _ => return None,
        }
    }
}

/// Finds the route for a request; `Err` is the problem to answer with.
pub fn resolve(method: &Method, path: &str) -> Result<(Endpoint, PathParams), Problem> {
    let path = if path.len() > 1 {
        path.trim_end_matches('/')
    } else {
        path
    };
    let mut path_known = false;
    for route in ROUTES {
        if let Some(params) = matches(route.path, path) {
            if route.method == *method {
                return Ok((route.endpoint, params));
            }
            path_known = true;
        }
    }
    Err(if path_known {
        Problem::method_not_allowed()
    } else {
        Problem::not_found()
    })
}

/// Answers one request. `serving` limits the endpoints to one function's (in AWS);
/// the local server passes `None` and serves them all.
pub async fn dispatch(app: &App, serving: Option<Function>, request: ApiRequest) -> ApiResponse {
    let outcome = match resolve(&request.method, &request.path) {
        Ok((endpoint, _)) if serving.is_some_and(|f| f != endpoint.function()) => {
            Err(Problem::not_found())
        }
        Ok((endpoint, params)) => handle(app, endpoint, &params, &request).await,
        Err(problem) => Err(problem),
    };
    outcome.unwrap_or_else(|problem| super::problem(&problem))
}

async fn handle(
    app: &App,
    endpoint: Endpoint,
    params: &PathParams,
    request: &ApiRequest,
) -> Result<ApiResponse, Problem> {
    let param = |i: usize| params.get(i).map(String::as_str).unwrap_or_default();
    match endpoint {
        Endpoint::Signup => crate::signup::signup(app, request).await,
        Endpoint::CorrectEmail => crate::signup::correct_email(app, request).await,
        Endpoint::VerifyEmail => crate::verification::verify(app, request).await,
        Endpoint::ResendVerification => crate::verification::resend(app, request).await,
        Endpoint::Health => crate::health::health(app).await,
        Endpoint::Login => crate::login::login(app, request).await,
        Endpoint::RefreshToken => crate::session::refresh(app, request).await,
        Endpoint::Logout => crate::session::logout(app, request).await,
        Endpoint::Jwks => Ok(jwks(app)),
        Endpoint::Account => crate::account::get_account(app, request).await,
        Endpoint::Sessions => crate::account::list_sessions(app, request).await,
        Endpoint::RevokeSession => crate::account::revoke_session(app, request, param(0)).await,
        Endpoint::RevokeOtherSessions => crate::account::revoke_other_sessions(app, request).await,
        Endpoint::LoginHistory => crate::account::login_history(app, request).await,
        Endpoint::ForgotPassword => crate::recovery::forgot_password(app, request).await,
        Endpoint::ResetPassword => crate::recovery::reset_password(app, request).await,
        Endpoint::ChangePassword => crate::account_security::change_password(app, request).await,
        Endpoint::SecurityQuestions => Ok(crate::account_security::security_questions()),
        Endpoint::SetSecurityQuestion => {
            crate::account_security::set_security_question(app, request).await
        }
        Endpoint::ForgotSecurityAnswer => {
            crate::recovery::forgot_security_answer(app, request).await
        }
        Endpoint::ResetSecurityQuestion => {
            crate::recovery::reset_security_question(app, request).await
        }
        Endpoint::LoginMfa => crate::login::login_mfa(app, request).await,
        Endpoint::TotpSetup => crate::two_factor::setup(app, request).await,
        Endpoint::TotpConfirm => crate::two_factor::confirm(app, request).await,
        Endpoint::TotpDisable => crate::two_factor::disable(app, request).await,
        Endpoint::BackupCodes => crate::two_factor::regenerate_backup_codes(app, request).await,
    }
}

/// `GET /.well-known/jwks.json`: prepared at cold start; public keys may be cached.
fn jwks(app: &App) -> ApiResponse {
    let mut response = http::Response::new(app.tokens.jwks());
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_known_path_with_another_method_is_not_allowed() {
        let problem = resolve(&Method::GET, "/v1/signup").unwrap_err();
        assert_eq!(problem.code, "method_not_allowed");
    }

    #[test]
    fn an_unknown_path_is_not_found() {
        assert_eq!(
            resolve(&Method::GET, "/v1/nope").unwrap_err().code,
            "not_found"
        );
    }

    #[test]
    fn patterns_capture_path_parameters() {
        assert_eq!(
            matches("/v1/account/sessions/{id}", "/v1/account/sessions/abc"),
            Some(vec!["abc".to_owned()])
        );
        assert_eq!(
            matches("/v1/account/sessions/{id}", "/v1/account/sessions/"),
            None
        );
    }

    #[test]
    fn every_route_is_unique() {
        for (i, a) in ROUTES.iter().enumerate() {
            for b in &ROUTES[i + 1..] {
                assert!(!(a.method == b.method && a.path == b.path), "{}", a.path);
            }
        }
    }
}
