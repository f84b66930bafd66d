//! The end-user web pages (docs/web-pages.md): server-rendered, working without
//! JavaScript, served by the `web` function and by the local server from this code. A
//! page calls the flows in-process ([`api`]), posts back to itself and redirects after a
//! success; the web session is a pair of `__Host-` cookies ([`session`]); every form
//! carries a CSRF token and a post from another site is refused before anything else.

pub mod api;
pub mod cookies;
pub mod form;
pub mod guard;
pub mod headers;
pub mod page;
mod pages;
pub mod session;

use http::Method;

use crate::app::App;
use crate::http::{ApiRequest, ApiResponse};
use form::Posted;
use page::Answer;

/// One page route: what the `web` function serves (and the template routes to it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PageRoute {
    pub method: Method,
    pub path: &'static str,
}

const fn get(path: &'static str) -> PageRoute {
    PageRoute {
        method: Method::GET,
        path,
    }
}

const fn post(path: &'static str) -> PageRoute {
    PageRoute {
        method: Method::POST,
        path,
    }
}

/// Every page route.
pub const PAGE_ROUTES: &[PageRoute] = &[
    get("/"),
    get("/signup"),
    post("/signup"),
    get("/check-email"),
    post("/check-email"),
    get("/verify-email"),
    post("/verify-email"),
    get("/login"),
    post("/login"),
    get("/login/two-step"),
    post("/login/two-step"),
    post("/logout"),
    get("/forgot-password"),
    post("/forgot-password"),
    get("/forgot-password/sent"),
    get("/forgot-security-answer"),
    post("/forgot-security-answer"),
    get("/forgot-security-answer/sent"),
    get("/reset-password"),
    post("/reset-password"),
    get("/reset-security-question"),
    post("/reset-security-question"),
    get("/account/security"),
    post("/account/security/password"),
    post("/account/security/question"),
    post("/account/security/totp/setup"),
    post("/account/security/totp/confirm"),
    post("/account/security/totp/disable"),
    post("/account/security/backup-codes"),
    post("/account/security/sessions/revoke"),
    post("/account/security/sessions/revoke-others"),
    get("/assets/app.css"),
    get("/assets/app.js"),
];

/// Whether `path` belongs to the API (problem+json) rather than to the pages.
pub fn is_api_path(path: &str) -> bool {
    path.starts_with("/v1/") || path == "/v1" || path.starts_with("/.well-known/")
}

/// One visit to a page: the request, the CSRF token its forms carry (the browser's, or
/// a new one whose cookie the answer sets), and the form it posted.
pub struct Visit<'a> {
    pub app: &'a App,
    pub request: &'a ApiRequest,
    pub csrf: String,
    new_csrf: bool,
    pub posted: Posted,
}

impl Visit<'_> {
    /// A query parameter.
    pub fn query(&self, name: &str) -> Option<String> {
        self.request.query_param(name)
    }

    /// The path and query of the page, for a `return_to`.
    pub fn path_and_query(&self) -> String {
        match &self.request.query {
            Some(query) if !query.is_empty() => format!("{}?{query}", self.request.path),
            _ => self.request.path.clone(),
        }
    }

    /// The origin every page is served from (`APP_BASE_URL`'s).
    pub fn own_origin(&self) -> String {
        guard::origin_of(&self.app.config.app_base_url)
    }

    /// Sends an API call on behalf of the visitor.
    pub async fn call(&self, call: api::Call<'_>) -> api::Answer {
        call.send(self.app, self.request).await
    }
}

/// Answers a request for a page (any path outside the API's); an API path that reached
/// here matched no API route and answers as the API does (`404` or `405`, problem+json).
pub async fn answer(app: &App, request: &ApiRequest) -> ApiResponse {
    if is_api_path(&request.path) {
        return crate::routes::no_endpoint(request);
    }
    let existing = cookies::get(&request.headers, cookies::CSRF)
        .filter(|token| !token.is_empty() && cookies::is_cookie_safe(token))
        .map(str::to_owned);
    let is_post = request.method == Method::POST;
    let posted = if is_post {
        Posted::of(request)
    } else {
        Posted::default()
    };
    if is_post {
        let own = guard::origin_of(&app.config.app_base_url);
        let allowed = guard::same_origin_post(&request.headers, &own)
            && guard::csrf_matches(existing.as_deref(), posted.get("csrf"));
        if !allowed {
            return page::refused().into_response();
        }
    }
    let (csrf, new_csrf) = match existing {
        Some(token) => (token, false),
        None => match guard::new_csrf_token() {
            Ok(token) => (token, true),
            Err(error) => {
                tracing::error!(error = format!("{error:#}"), "no CSRF token");
                return page::broken(http::StatusCode::INTERNAL_SERVER_ERROR, None).into_response();
            }
        },
    };
    let visit = Visit {
        app,
        request,
        csrf,
        new_csrf,
        posted,
    };
    let answer = pages::answer(&visit).await;
    let answer = if visit.new_csrf {
        answer.with_cookies([cookies::set(
            cookies::CSRF,
            &visit.csrf,
            cookies::Lifetime::Browser,
        )])
    } else {
        answer
    };
    answer.into_response()
}

/// `text` percent-encoded for a query parameter.
pub fn percent_encode(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

impl From<Answer> for ApiResponse {
    fn from(answer: Answer) -> ApiResponse {
        answer.into_response()
    }
}
