//! The route table: every route of the API, the function (Lambda) that owns it, the
//! flow that answers it, and the dispatch from a request to its handler.

pub mod lambda;

use http::Method;

use crate::app::App;
use crate::http::{ApiRequest, ApiResponse, Problem};

/// The function that answers API Gateway's `$default` route (a request no route matches):
/// the `web` function, which serves the pages, so an unknown page path gets the HTML 404
/// page; a path of the API's (`/v1/...`, `/.well-known/...`) still gets the API's own
/// `404 not_found`, or `405 method_not_allowed` for a known path with another method, as
/// problem+json ([`no_endpoint`]).
pub const NO_ROUTE_FUNCTION: Function = Function::Web;

/// The deployable HTTP functions: one per route group, and the web pages'.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Function {
    Signup,
    Verify,
    Login,
    Reset,
    Account,
    TwoFactor,
    /// The end-user web pages (`crate::web`): no API route of its own, every flow called
    /// in-process, so it needs what the API's functions need together.
    Web,
}

impl Function {
    pub const ALL: &'static [Function] = &[
        Function::Signup,
        Function::Verify,
        Function::Login,
        Function::Reset,
        Function::Account,
        Function::TwoFactor,
        Function::Web,
    ];

    /// Whether the function issues access tokens, and so holds the private signing key:
    /// `login`, and `web`, whose log-in pages sign in through the login flow in-process
    /// (least privilege: no other function holds it).
    pub fn signs_access_tokens(self) -> bool {
        matches!(self, Function::Login | Function::Web)
    }

    /// Whether the function checks access tokens it did not issue, and so needs the
    /// public verification keys (never the private key). A function that signs verifies
    /// with its own key's public half (and the previous key's), so needs none.
    pub fn verifies_access_tokens(self) -> bool {
        matches!(self, Function::Account | Function::TwoFactor)
    }

    /// Whether the function checks second factors, and so needs the key that decrypts
    /// TOTP secrets.
    pub fn decrypts_totp_secrets(self) -> bool {
        matches!(
            self,
            Function::Login | Function::Reset | Function::TwoFactor | Function::Web
        )
    }

    /// The shared keys the function cannot start without.
    pub fn keys_needed(self) -> KeysNeeded {
        KeysNeeded {
            signing_key: self.signs_access_tokens(),
            verification_keys: self.verifies_access_tokens(),
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
            Function::Web => "web",
        }
    }
}

/// The shared keys a function needs from configuration to start.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KeysNeeded {
    /// The private key that signs access tokens (an SSM SecureString).
    pub signing_key: bool,
    /// The public keys that verify access tokens (a plain SSM parameter).
    pub verification_keys: bool,
    /// The key that encrypts TOTP secrets (an SSM SecureString).
    pub totp_key: bool,
}

/// Every endpoint of the API, grouped by the function (Lambda) that serves it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Endpoint {
    Signup(SignupRoute),
    Verify(VerifyRoute),
    Login(LoginRoute),
    Reset(ResetRoute),
    Account(AccountRoute),
    TwoFactor(TwoFactorRoute),
}

/// The endpoints of the `signup` function.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SignupRoute {
    Signup,
    CorrectEmail,
    Health,
    OpenApi,
}

/// The endpoints of the `verify` function.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum VerifyRoute {
    VerifyEmail,
    ResendVerification,
}

/// The endpoints of the `login` function.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LoginRoute {
    Login,
    LoginMfa,
    RefreshToken,
    Logout,
    Jwks,
    OauthStart,
    OauthCallback,
    OauthCallbackPost,
    OauthSignup,
    OauthLink,
}

/// The endpoints of the `reset` function.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ResetRoute {
    ForgotPassword,
    ResetPassword,
    ForgotSecurityAnswer,
    ResetSecurityQuestion,
}

/// The endpoints of the `account` function.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AccountRoute {
    Account,
    Sessions,
    RevokeSession,
    RevokeOtherSessions,
    LoginHistory,
    ChangePassword,
    SecurityQuestions,
    SetSecurityQuestion,
    Identities,
    Unlink,
}

/// The endpoints of the `two-factor` function.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TwoFactorRoute {
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
    route(
        Method::POST,
        "/v1/signup",
        Endpoint::Signup(SignupRoute::Signup),
    ),
    route(
        Method::POST,
        "/v1/signup/correct-email",
        Endpoint::Signup(SignupRoute::CorrectEmail),
    ),
    route(
        Method::GET,
        "/v1/health",
        Endpoint::Signup(SignupRoute::Health),
    ),
    route(
        Method::GET,
        "/v1/openapi.json",
        Endpoint::Signup(SignupRoute::OpenApi),
    ),
    route(
        Method::POST,
        "/v1/email/verify",
        Endpoint::Verify(VerifyRoute::VerifyEmail),
    ),
    route(
        Method::POST,
        "/v1/email/verify/resend",
        Endpoint::Verify(VerifyRoute::ResendVerification),
    ),
    route(
        Method::POST,
        "/v1/login",
        Endpoint::Login(LoginRoute::Login),
    ),
    route(
        Method::POST,
        "/v1/token/refresh",
        Endpoint::Login(LoginRoute::RefreshToken),
    ),
    route(
        Method::POST,
        "/v1/logout",
        Endpoint::Login(LoginRoute::Logout),
    ),
    route(
        Method::GET,
        "/.well-known/jwks.json",
        Endpoint::Login(LoginRoute::Jwks),
    ),
    route(
        Method::GET,
        "/v1/oauth/{provider}/start",
        Endpoint::Login(LoginRoute::OauthStart),
    ),
    route(
        Method::GET,
        "/v1/oauth/{provider}/callback",
        Endpoint::Login(LoginRoute::OauthCallback),
    ),
    route(
        Method::POST,
        "/v1/oauth/{provider}/callback",
        Endpoint::Login(LoginRoute::OauthCallbackPost),
    ),
    route(
        Method::POST,
        "/v1/oauth/signup",
        Endpoint::Login(LoginRoute::OauthSignup),
    ),
    route(
        Method::POST,
        "/v1/oauth/link",
        Endpoint::Login(LoginRoute::OauthLink),
    ),
    route(
        Method::GET,
        "/v1/account",
        Endpoint::Account(AccountRoute::Account),
    ),
    route(
        Method::GET,
        "/v1/account/identities",
        Endpoint::Account(AccountRoute::Identities),
    ),
    route(
        Method::DELETE,
        "/v1/account/identities/{provider}",
        Endpoint::Account(AccountRoute::Unlink),
    ),
    route(
        Method::GET,
        "/v1/account/sessions",
        Endpoint::Account(AccountRoute::Sessions),
    ),
    route(
        Method::DELETE,
        "/v1/account/sessions/{id}",
        Endpoint::Account(AccountRoute::RevokeSession),
    ),
    route(
        Method::POST,
        "/v1/account/sessions/revoke-others",
        Endpoint::Account(AccountRoute::RevokeOtherSessions),
    ),
    route(
        Method::GET,
        "/v1/account/login-history",
        Endpoint::Account(AccountRoute::LoginHistory),
    ),
    route(
        Method::POST,
        "/v1/password/forgot",
        Endpoint::Reset(ResetRoute::ForgotPassword),
    ),
    route(
        Method::POST,
        "/v1/password/reset",
        Endpoint::Reset(ResetRoute::ResetPassword),
    ),
    route(
        Method::POST,
        "/v1/account/password",
        Endpoint::Account(AccountRoute::ChangePassword),
    ),
    route(
        Method::GET,
        "/v1/security-questions",
        Endpoint::Account(AccountRoute::SecurityQuestions),
    ),
    route(
        Method::PUT,
        "/v1/account/security-question",
        Endpoint::Account(AccountRoute::SetSecurityQuestion),
    ),
    route(
        Method::POST,
        "/v1/security-question/forgot",
        Endpoint::Reset(ResetRoute::ForgotSecurityAnswer),
    ),
    route(
        Method::POST,
        "/v1/security-question/reset",
        Endpoint::Reset(ResetRoute::ResetSecurityQuestion),
    ),
    route(
        Method::POST,
        "/v1/login/mfa",
        Endpoint::Login(LoginRoute::LoginMfa),
    ),
    route(
        Method::POST,
        "/v1/2fa/totp/setup",
        Endpoint::TwoFactor(TwoFactorRoute::TotpSetup),
    ),
    route(
        Method::POST,
        "/v1/2fa/totp/confirm",
        Endpoint::TwoFactor(TwoFactorRoute::TotpConfirm),
    ),
    route(
        Method::DELETE,
        "/v1/2fa/totp",
        Endpoint::TwoFactor(TwoFactorRoute::TotpDisable),
    ),
    route(
        Method::POST,
        "/v1/2fa/backup-codes",
        Endpoint::TwoFactor(TwoFactorRoute::BackupCodes),
    ),
];

impl Endpoint {
    /// The function that serves this endpoint in AWS.
    pub fn function(self) -> Function {
        match self {
            Endpoint::Signup(_) => SignupRoute::FUNCTION,
            Endpoint::Verify(_) => VerifyRoute::FUNCTION,
            Endpoint::Login(_) => LoginRoute::FUNCTION,
            Endpoint::Reset(_) => ResetRoute::FUNCTION,
            Endpoint::Account(_) => AccountRoute::FUNCTION,
            Endpoint::TwoFactor(_) => TwoFactorRoute::FUNCTION,
        }
    }

    async fn handle(
        self,
        app: &App,
        params: &PathParams,
        request: &ApiRequest,
    ) -> Result<ApiResponse, Problem> {
        match self {
            Endpoint::Signup(route) => route.handle(app, params, request).await,
            Endpoint::Verify(route) => route.handle(app, params, request).await,
            Endpoint::Login(route) => route.handle(app, params, request).await,
            Endpoint::Reset(route) => route.handle(app, params, request).await,
            Endpoint::Account(route) => route.handle(app, params, request).await,
            Endpoint::TwoFactor(route) => route.handle(app, params, request).await,
        }
    }
}

/// One function's endpoints as a type. A Lambda binary is generic over its group, so
/// it links only its own handlers (and what they use), not the whole API.
pub trait RouteGroup: Copy + Send + Sync + 'static {
    const FUNCTION: Function;

    /// The endpoint, if it is one of this group's.
    fn of(endpoint: Endpoint) -> Option<Self>;

    fn handle<'a>(
        self,
        app: &'a App,
        params: &'a PathParams,
        request: &'a ApiRequest,
    ) -> impl Future<Output = Result<ApiResponse, Problem>> + Send + 'a;
}

/// Implements [`RouteGroup`] for one function's endpoint enum: `$function` serves it, and
/// `$handle` (a `match` on `$route`) answers each of its endpoints.
macro_rules! route_group {
    (
        $group:ident served by $function:ident,
        |$route:ident, $app:ident, $params:pat, $request:ident| $handle:expr
    ) => {
        impl RouteGroup for $group {
            const FUNCTION: Function = Function::$function;

            fn of(endpoint: Endpoint) -> Option<Self> {
                match endpoint {
                    Endpoint::$function(route) => Some(route),
                    _ => None,
                }
            }

            async fn handle(
                self,
                $app: &App,
                $params: &PathParams,
                $request: &ApiRequest,
            ) -> Result<ApiResponse, Problem> {
                let $route = self;
                $handle
            }
        }
    };
}

route_group!(SignupRoute served by Signup, |route, app, _, request| match route {
    SignupRoute::Signup => crate::flows::signup::signup(app, request).await,
    SignupRoute::CorrectEmail => crate::flows::signup::correct_email(app, request).await,
    SignupRoute::Health => crate::flows::service::health(app).await,
    SignupRoute::OpenApi => Ok(crate::flows::api_document::openapi()),
});

route_group!(VerifyRoute served by Verify, |route, app, _, request| match route {
    VerifyRoute::VerifyEmail => crate::flows::email_verification::verify(app, request).await,
    VerifyRoute::ResendVerification => crate::flows::email_verification::resend(app, request).await,
});

route_group!(LoginRoute served by Login, |route, app, params, request| {
    use crate::flows::oauth;
    let provider = params.first().map(String::as_str).unwrap_or_default();
    match route {
        LoginRoute::Login => crate::flows::login::login(app, request).await,
        LoginRoute::LoginMfa => crate::flows::login::login_mfa(app, request).await,
        LoginRoute::RefreshToken => crate::flows::tokens::refresh(app, request).await,
        LoginRoute::Logout => crate::flows::tokens::logout(app, request).await,
        LoginRoute::Jwks => Ok(crate::flows::tokens::jwks(app)),
        LoginRoute::OauthStart => oauth::start(app, request, provider).await,
        LoginRoute::OauthCallback | LoginRoute::OauthCallbackPost => {
            oauth::callback(app, request, provider).await
        }
        LoginRoute::OauthSignup => oauth::signup(app, request).await,
        LoginRoute::OauthLink => oauth::link_with_password(app, request).await,
    }
});

route_group!(ResetRoute served by Reset, |route, app, _, request| {
    use crate::flows::recovery;
    match route {
        ResetRoute::ForgotPassword => recovery::forgot_password(app, request).await,
        ResetRoute::ResetPassword => recovery::reset_password(app, request).await,
        ResetRoute::ForgotSecurityAnswer => recovery::forgot_security_answer(app, request).await,
        ResetRoute::ResetSecurityQuestion => {
            recovery::reset_security_question(app, request).await
        }
    }
});

route_group!(AccountRoute served by Account, |route, app, params, request| {
    use crate::{flows::account, flows::account_security};
    match route {
        AccountRoute::Account => account::get_account(app, request).await,
        AccountRoute::Sessions => account::list_sessions(app, request).await,
        AccountRoute::RevokeSession => {
            let id = params.first().map(String::as_str).unwrap_or_default();
            account::revoke_session(app, request, id).await
        }
        AccountRoute::RevokeOtherSessions => account::revoke_other_sessions(app, request).await,
        AccountRoute::LoginHistory => account::login_history(app, request).await,
        AccountRoute::ChangePassword => account_security::change_password(app, request).await,
        AccountRoute::SecurityQuestions => Ok(account_security::security_questions()),
        AccountRoute::SetSecurityQuestion => {
            account_security::set_security_question(app, request).await
        }
        AccountRoute::Identities => crate::flows::oauth::identities(app, request).await,
        AccountRoute::Unlink => {
            let provider = params.first().map(String::as_str).unwrap_or_default();
            crate::flows::oauth::unlink(app, request, provider).await
        }
    }
});

route_group!(TwoFactorRoute served by TwoFactor, |route, app, _, request| {
    use crate::flows::two_factor;
    match route {
        TwoFactorRoute::TotpSetup => two_factor::setup(app, request).await,
        TwoFactorRoute::TotpConfirm => two_factor::confirm(app, request).await,
        TwoFactorRoute::TotpDisable => two_factor::disable(app, request).await,
        TwoFactorRoute::BackupCodes => two_factor::regenerate_backup_codes(app, request).await,
    }
});

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

/// Counts what a request came to, as CloudWatch metrics (EMF lines): `RateLimited` by
/// route for every 429, and for the journeys an operator watches, their outcome (`ok` or
/// the problem's code): `Signups`, `EmailVerifications`, `Logins` (with `mfa_required`
/// for a password that passed on a two-step account), `SecondFactorLogins` (also by
/// `Method`), `PasswordResets`.
fn count_outcome(endpoint: Endpoint, request: &ApiRequest, outcome: &Result<ApiResponse, Problem>) {
    use crate::telemetry::metrics::count_by;
    let code = match outcome {
        Ok(_) => "ok",
        Err(problem) => problem.code,
    };
    if code == "rate_limited" {
        let route = ROUTES
            .iter()
            .find(|route| route.endpoint == endpoint)
            .map_or("", |route| route.path);
        count_by("RateLimited", &[("Route", route)]);
    }
    match endpoint {
        Endpoint::Signup(SignupRoute::Signup) => count_by("Signups", &[("Outcome", code)]),
        Endpoint::Verify(VerifyRoute::VerifyEmail) => {
            count_by("EmailVerifications", &[("Outcome", code)])
        }
        Endpoint::Login(LoginRoute::Login) => {
            let challenged = matches!(outcome, Ok(response)
                if response.body().starts_with(br#"{"mfa_required":true"#));
            let outcome = if challenged { "mfa_required" } else { code };
            count_by("Logins", &[("Outcome", outcome), ("Method", "password")]);
        }
        Endpoint::Login(LoginRoute::LoginMfa) => {
            #[derive(serde::Deserialize)]
            struct Method {
                method: String,
            }
            let method = request.json::<Method>().map(|m| m.method).ok();
            // Only the known methods become series; anything typed there is `other`.
            let method = method
                .as_deref()
                .filter(|m| matches!(*m, "totp" | "backup_code" | "security_question"))
                .unwrap_or("other");
            count_by(
                "SecondFactorLogins",
                &[("Outcome", code), ("Method", method)],
            );
        }
        Endpoint::Reset(ResetRoute::ResetPassword) => {
            count_by("PasswordResets", &[("Outcome", code)])
        }
        _ => {}
    }
}

/// Answers one request. `serving` limits the endpoints to one function's, as in AWS;
/// the local server passes `None` and serves them all.
pub async fn dispatch(app: &App, serving: Option<Function>, request: ApiRequest) -> ApiResponse {
    match serving {
        None => {
            let outcome = match resolve(&request.method, &request.path) {
                Ok((endpoint, params)) => {
                    let outcome = endpoint.handle(app, &params, &request).await;
                    count_outcome(endpoint, &request, &outcome);
                    outcome
                }
                Err(problem) => Err(problem),
            };
            outcome.unwrap_or_else(|problem| crate::http::problem(&problem))
        }
        Some(Function::Signup) => dispatch_to::<SignupRoute>(app, request).await,
        Some(Function::Verify) => dispatch_to::<VerifyRoute>(app, request).await,
        Some(Function::Login) => dispatch_to::<LoginRoute>(app, request).await,
        Some(Function::Reset) => dispatch_to::<ResetRoute>(app, request).await,
        Some(Function::Account) => dispatch_to::<AccountRoute>(app, request).await,
        Some(Function::TwoFactor) => dispatch_to::<TwoFactorRoute>(app, request).await,
        // The web function serves no API endpoint: API Gateway sends it only the page
        // routes and `$default`, and it answers an API path as the API would.
        Some(Function::Web) => no_endpoint(&request),
    }
}

/// The answer to an API request no endpoint of the function serves: `405
/// method_not_allowed` for a known path with another method, else `404 not_found`
/// (problem+json). The web function's answer to every API path that reaches it.
pub fn no_endpoint(request: &ApiRequest) -> ApiResponse {
    let problem = match resolve(&request.method, &request.path) {
        Ok(_) => Problem::not_found(),
        Err(problem) => problem,
    };
    crate::http::problem(&problem)
}

/// Answers one request with one function's endpoints (another function's are not
/// found here, as API Gateway would not send them).
pub async fn dispatch_to<G: RouteGroup>(app: &App, request: ApiRequest) -> ApiResponse {
    let outcome = match resolve(&request.method, &request.path) {
        Ok((endpoint, params)) => match G::of(endpoint) {
            Some(route) => {
                let outcome = route.handle(app, &params, &request).await;
                count_outcome(endpoint, &request, &outcome);
                outcome
            }
            None => Err(Problem::not_found()),
        },
        Err(problem) => Err(problem),
    };
    outcome.unwrap_or_else(|problem| crate::http::problem(&problem))
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
