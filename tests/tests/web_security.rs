//! The web pages' security properties at the HTTP level (docs/web-pages.md, "Sessions,
//! CSRF, redirects and headers"), against servers made for a browser
//! ([`TestApp::spawn_for_browser`]), with a small cookie-keeping client that posts forms
//! as a browser does: a form post without the CSRF token, with a wrong one, or from
//! another site is refused and changes nothing; the cookies are `__Host-` (Secure,
//! HttpOnly, SameSite=Lax, Path=/, no Domain); `return_to` never leaves the site; every
//! page carries the security headers; pages with a token in their URL send no referrer
//! and load nothing from elsewhere; and no token reaches a log line.

use std::collections::BTreeMap;

use api_tests::{
    Backend, PASSWORD, TestApp, WRONG_PASSWORD, assert as api_assert, email_verified,
    on_both_backends_in_browser, unique_email,
};
use reqwest::header::{CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};

/// The policy docs/web-pages.md gives every page.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   form-action 'self'; frame-ancestors 'none'; base-uri 'none'";
const SETTINGS: &str = "/account/security";
const NEW_PASSWORD: &str = "violet-harbour-4471";

// ---------------------------------------------------------------------------------
// A browser's requests, by hand
// ---------------------------------------------------------------------------------

/// Where a form post says it comes from.
#[derive(Clone, Copy, Debug)]
enum Via {
    /// A page of the site: `Origin` is the site's, `Sec-Fetch-Site: same-origin`.
    OwnPage,
    /// A page of the site as Chromium posts it under `Referrer-Policy: no-referrer`:
    /// `Origin: null`, `Sec-Fetch-Site: same-origin`.
    OwnPageWithoutReferrer,
    /// No `Origin` and no `Sec-Fetch-Site` (not a browser).
    NoHeaders,
    /// A page of another site: its `Origin`, `Sec-Fetch-Site: cross-site`.
    OtherSite,
    /// The site's own `Origin`, but `Sec-Fetch-Site: cross-site`.
    CrossSiteFetch,
}

/// One answer: status, headers and body text.
struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    }

    fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all(SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(str::to_owned)
            .collect()
    }

    /// Whether the answer sets the cookie `name` to a value (not a removal).
    fn sets(&self, name: &str) -> bool {
        self.set_cookies().iter().any(|line| {
            let (pair, attributes) = line.split_once(';').unwrap_or((line, ""));
            pair.split_once('=')
                .is_some_and(|(n, v)| n.trim() == name && !v.trim().is_empty())
                && !attributes.to_ascii_lowercase().contains("max-age=0")
        })
    }

    /// `Location`, as a path of the site when it names the site.
    fn location(&self, app: &TestApp) -> Option<String> {
        self.header(LOCATION.as_str()).map(|l| {
            l.strip_prefix(&app.base_url)
                .map(str::to_owned)
                .unwrap_or(l)
        })
    }
}

/// A client that keeps the site's cookies, as a browser's jar does.
struct Web<'a> {
    app: &'a TestApp,
    http: reqwest::Client,
    jar: BTreeMap<String, String>,
}

impl<'a> Web<'a> {
    fn new(app: &'a TestApp) -> Web<'a> {
        Web {
            app,
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("an HTTP client"),
            jar: BTreeMap::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.jar
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn send(&mut self, request: reqwest::RequestBuilder) -> Answer {
        let request = if self.jar.is_empty() {
            request
        } else {
            request.header(COOKIE, self.cookie_header())
        };
        let response = request.send().await.expect("the request is sent");
        let answer = Answer {
            status: response.status().as_u16(),
            headers: response.headers().clone(),
            body: response.text().await.unwrap_or_default(),
        };
        for line in answer.set_cookies() {
            let (pair, attributes) = line.split_once(';').unwrap_or((&line, ""));
            let Some((name, value)) = pair.split_once('=') else {
                continue;
            };
            let removed =
                value.trim().is_empty() || attributes.to_ascii_lowercase().contains("max-age=0");
            if removed {
                self.jar.remove(name.trim());
            } else {
                self.jar
                    .insert(name.trim().to_owned(), value.trim().to_owned());
            }
        }
        answer
    }

    async fn get(&mut self, path: &str) -> Answer {
        let request = self
            .http
            .get(format!("{}{path}", self.app.address))
            .header("sec-fetch-site", "none");
        self.send(request).await
    }

    /// POSTs `pairs` to `path` as a form, from `from`.
    async fn post(&mut self, path: &str, pairs: &[(&str, &str)], from: Via) -> Answer {
        let body = form_urlencoded(pairs);
        let mut request = self
            .http
            .post(format!("{}{path}", self.app.address))
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(body);
        request = match from {
            Via::OwnPage => request
                .header("origin", &self.app.base_url)
                .header("sec-fetch-site", "same-origin"),
            Via::OwnPageWithoutReferrer => request
                .header("origin", "null")
                .header("sec-fetch-site", "same-origin"),
            Via::NoHeaders => request,
            Via::OtherSite => request
                .header("origin", "https://evil.example")
                .header("sec-fetch-site", "cross-site"),
            Via::CrossSiteFetch => request
                .header("origin", &self.app.base_url)
                .header("sec-fetch-site", "cross-site"),
        };
        self.send(request).await
    }

    /// Opens `page`, fills the form holding the field `field` with `fields` on top of its
    /// hidden ones (the CSRF token among them), and sends it to its `action` from `from`.
    async fn submit(
        &mut self,
        page: &str,
        field: &str,
        fields: &[(&str, &str)],
        from: Via,
    ) -> Answer {
        let opened = self.get(page).await;
        assert_eq!(opened.status, 200, "GET {page}: {}", opened.body);
        let form = Form::holding(&opened.body, field)
            .unwrap_or_else(|| panic!("no form with {field} on {page}:\n{}", opened.body));
        let action = form.action.clone().unwrap_or_else(|| page.to_owned());
        let action = action
            .strip_prefix(&self.app.base_url)
            .map(str::to_owned)
            .unwrap_or(action);
        let mut pairs: Vec<(&str, &str)> = form
            .hidden
            .iter()
            .filter(|(name, _)| !fields.iter().any(|(n, _)| n == name))
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        pairs.extend_from_slice(fields);
        self.post(&action, &pairs, from).await
    }

    /// Logs in through `/login` (with the CSRF token); asserts the landing.
    async fn log_in(&mut self, login: &str, remember_me: bool) -> Answer {
        let mut fields = vec![("login", login), ("password", PASSWORD)];
        if remember_me {
            fields.push(("remember_me", "on"));
        }
        let answer = self.submit("/login", "login", &fields, Via::OwnPage).await;
        assert_eq!(answer.status, 303, "the login: {}", answer.body);
        assert_eq!(answer.location(self.app).as_deref(), Some(SETTINGS));
        answer
    }

    fn csrf(&self) -> String {
        self.jar
            .get("__Host-csrf")
            .cloned()
            .expect("a __Host-csrf cookie")
    }
}

/// A form of a page: its `action` and hidden fields.
struct Form {
    action: Option<String>,
    hidden: Vec<(String, String)>,
}

impl Form {
    /// The first form of `html` that holds a field named `field`.
    fn holding(html: &str, field: &str) -> Option<Form> {
        let mut rest = html;
        while let Some(start) = rest.find("<form") {
            let after = &rest[start..];
            let end = after.find("</form>").unwrap_or(after.len());
            let markup = &after[..end];
            rest = &after[end..];
            let tags = tags(markup);
            let holds = tags.iter().any(|(tag, attributes)| {
                matches!(tag.as_str(), "input" | "select" | "textarea" | "button")
                    && attributes.get("name").map(String::as_str) == Some(field)
            });
            if !holds {
                continue;
            }
            let action = tags
                .iter()
                .find(|(tag, _)| tag == "form")
                .and_then(|(_, attributes)| attributes.get("action").cloned())
                .filter(|a| !a.is_empty());
            let hidden = tags
                .iter()
                .filter(|(tag, a)| {
                    tag == "input" && a.get("type").map(String::as_str) == Some("hidden")
                })
                .filter_map(|(_, a)| {
                    Some((
                        a.get("name")?.clone(),
                        a.get("value").cloned().unwrap_or_default(),
                    ))
                })
                .collect();
            return Some(Form { action, hidden });
        }
        None
    }
}

/// Every start tag of `markup`: its name and attributes (values unescaped).
fn tags(markup: &str) -> Vec<(String, BTreeMap<String, String>)> {
    let mut found = Vec::new();
    let mut rest = markup;
    while let Some(open) = rest.find('<') {
        rest = &rest[open + 1..];
        let Some(close) = rest.find('>') else { break };
        let inside = &rest[..close];
        rest = &rest[close + 1..];
        if inside.starts_with('/') || inside.starts_with('!') {
            continue;
        }
        let name_end = inside
            .find(|c: char| c.is_whitespace() || c == '/')
            .unwrap_or(inside.len());
        let name = inside[..name_end].to_ascii_lowercase();
        found.push((name, attributes(&inside[name_end..])));
    }
    found
}

fn attributes(text: &str) -> BTreeMap<String, String> {
    let mut map = BTreeMap::new();
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        while i < chars.len() && (chars[i].is_whitespace() || chars[i] == '/') {
            i += 1;
        }
        let start = i;
        while i < chars.len() && !chars[i].is_whitespace() && chars[i] != '=' && chars[i] != '/' {
            i += 1;
        }
        let name: String = chars[start..i]
            .iter()
            .collect::<String>()
            .to_ascii_lowercase();
        if name.is_empty() {
            i += 1;
            continue;
        }
        let mut value = String::new();
        if i < chars.len() && chars[i] == '=' {
            i += 1;
            if i < chars.len() && (chars[i] == '"' || chars[i] == '\'') {
                let quote = chars[i];
                i += 1;
                let start = i;
                while i < chars.len() && chars[i] != quote {
                    i += 1;
                }
                value = chars[start..i].iter().collect();
                i += 1;
            } else {
                let start = i;
                while i < chars.len() && !chars[i].is_whitespace() {
                    i += 1;
                }
                value = chars[start..i].iter().collect();
            }
        }
        map.insert(name, unescape(&value));
    }
    map
}

/// HTML character references of attribute values (the few escaping produces).
fn unescape(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        let Some(semi) = rest.find(';') else { break };
        let entity = &rest[1..semi];
        let decoded = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => entity
                .strip_prefix("#x")
                .or_else(|| entity.strip_prefix("#X"))
                .and_then(|hex| u32::from_str_radix(hex, 16).ok())
                .or_else(|| entity.strip_prefix('#').and_then(|d| d.parse().ok()))
                .and_then(char::from_u32),
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &rest[semi + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// `application/x-www-form-urlencoded` text of `pairs`.
fn form_urlencoded(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(n, v)| format!("{}={}", encode(n), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Percent-encodes everything but unreserved characters.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Asserts the API still takes `password` for `email` (nothing changed it).
async fn assert_password_is(app: &TestApp, email: &str, password: &str) {
    let response = app.try_log_in(email, password).await;
    assert_eq!(
        response.status(),
        200,
        "{email} no longer logs in with its password"
    );
}

// ---------------------------------------------------------------------------------
// CSRF and Origin
// ---------------------------------------------------------------------------------

on_both_backends_in_browser! {
    &[];
    async fn a_form_post_without_the_csrf_token_or_with_a_wrong_one_is_refused_and_changes_nothing(app) {
        let email = app.verified_account().await;
        let mut web = Web::new(&app);
        let login = [("login", email.as_str()), ("password", PASSWORD)];

        let answer = web.submit("/login", "login", &[], Via::OwnPage).await;
        assert_ne!(answer.status, 403, "the form as sent is accepted (as a failed login)");
        for csrf in [None, Some("wrong-token-0123456789a"), Some("")] {
            let mut fields = login.to_vec();
            if let Some(csrf) = csrf {
                fields.push(("csrf", csrf));
            }
            let answer = web.post("/login", &fields, Via::OwnPage).await;
            assert_eq!(answer.status, 403, "csrf {csrf:?}: {}", answer.body);
            assert!(!answer.sets("__Host-access") && !answer.sets("__Host-refresh"),
                "a refused login signed in (csrf {csrf:?})");
        }
        // The right token in the form but no cookie (another browser's token).
        let token = web.csrf();
        let mut stranger = Web::new(&app);
        let mut fields = login.to_vec();
        fields.push(("csrf", &token));
        let answer = stranger.post("/login", &fields, Via::OwnPage).await;
        assert_eq!(answer.status, 403, "a token without its cookie: {}", answer.body);

        // A signed-in action: the password stays.
        web.log_in(&email, false).await;
        let change = [
            ("current_password", PASSWORD),
            ("new_password", NEW_PASSWORD),
            ("confirm_password", NEW_PASSWORD),
            ("sign_out_other_devices", "on"),
        ];
        for csrf in [None, Some("wrong-token-0123456789a")] {
            let mut fields = change.to_vec();
            if let Some(csrf) = csrf {
                fields.push(("csrf", csrf));
            }
            let answer = web.post("/account/security/password", &fields, Via::OwnPage).await;
            assert_eq!(answer.status, 403, "csrf {csrf:?}: {}", answer.body);
        }
        assert_password_is(&app, &email, PASSWORD).await;

        // A signup: no account.
        let newcomer = unique_email();
        let answer = web
            .post("/signup", &[
                ("full_name", "Ada Lovelace"),
                ("email", &newcomer),
                ("password", PASSWORD),
                ("account_type", "freelancer"),
            ], Via::OwnPage)
            .await;
        assert_eq!(answer.status, 403, "{}", answer.body);
        assert_eq!(email_verified(&app.app, &newcomer).await, None, "a refused signup made an account");
        assert!(app.mail_to(&newcomer).await.is_empty());
    }

    async fn a_form_post_from_another_site_is_refused_before_anything_else(app) {
        let email = app.verified_account().await;
        let mut web = Web::new(&app);
        // More wrong passwords than the back-off allows: none of them counts.
        for _ in 0..6 {
            for from in [Via::OtherSite, Via::CrossSiteFetch] {
                let answer = web
                    .submit("/login", "login", &[("login", &email), ("password", WRONG_PASSWORD)], from)
                    .await;
                assert_eq!(answer.status, 403, "{from:?}: {}", answer.body);
            }
        }
        let answer = web
            .submit("/login", "login", &[("login", &email), ("password", PASSWORD)], Via::OtherSite)
            .await;
        assert_eq!(answer.status, 403, "{}", answer.body);
        assert!(!answer.sets("__Host-access"));
        // The account was never backed off.
        web.log_in(&email, false).await;

        let change = [
            ("current_password", PASSWORD),
            ("new_password", NEW_PASSWORD),
            ("confirm_password", NEW_PASSWORD),
        ];
        let answer = web.submit(SETTINGS, "new_password", &change, Via::OtherSite).await;
        assert_eq!(answer.status, 403, "{}", answer.body);
        assert_password_is(&app, &email, PASSWORD).await;
        let answer = web.post("/logout", &[("csrf", &web.csrf())], Via::OtherSite).await;
        assert_eq!(answer.status, 403, "{}", answer.body);
        let page = web.get(SETTINGS).await;
        assert_eq!(page.status, 200, "still signed in after a refused logout");
    }

    async fn a_form_post_as_chromium_sends_it_from_a_no_referrer_page_is_accepted(app) {
        // Under `Referrer-Policy: no-referrer` (every page), Chromium sends `Origin: null`
        // with a same-origin form post, and `Sec-Fetch-Site: same-origin`.
        let email = app.verified_account().await;
        let mut web = Web::new(&app);
        let answer = web
            .submit(
                "/login",
                "login",
                &[("login", &email), ("password", PASSWORD)],
                Via::OwnPageWithoutReferrer,
            )
            .await;
        assert_eq!(answer.status, 303, "{}", answer.body);
        assert_eq!(answer.location(&app).as_deref(), Some(SETTINGS));
    }

    async fn a_form_post_without_origin_headers_still_needs_the_csrf_token(app) {
        let email = app.verified_account().await;
        let mut web = Web::new(&app);
        let answer = web
            .submit("/login", "login", &[("login", &email), ("password", PASSWORD)], Via::NoHeaders)
            .await;
        assert_eq!(answer.status, 303, "{}", answer.body);
        let answer = web
            .post("/login", &[("login", &email), ("password", PASSWORD)], Via::NoHeaders)
            .await;
        assert_eq!(answer.status, 403, "{}", answer.body);
    }
}

// ---------------------------------------------------------------------------------
// Cookies
// ---------------------------------------------------------------------------------

/// Asserts a `Set-Cookie` line is a `__Host-` cookie with the attributes of
/// docs/web-pages.md.
fn assert_host_cookie(line: &str) {
    let mut parts = line.split(';').map(str::trim);
    let pair = parts.next().unwrap_or_default();
    let name = pair.split_once('=').map(|(n, _)| n).unwrap_or(pair);
    assert!(
        name.starts_with("__Host-"),
        "a cookie without the __Host- prefix: {line}"
    );
    let attributes: Vec<String> = parts.map(|p| p.to_ascii_lowercase()).collect();
    let has = |want: &str| attributes.iter().any(|a| a == want);
    assert!(has("secure"), "not Secure: {line}");
    assert!(has("httponly"), "not HttpOnly: {line}");
    assert!(has("samesite=lax"), "not SameSite=Lax: {line}");
    assert!(has("path=/"), "not Path=/: {line}");
    assert!(
        !attributes.iter().any(|a| a.starts_with("domain")),
        "a Domain: {line}"
    );
}

/// The `Set-Cookie` line of `name` in `answer`.
fn cookie_line(answer: &Answer, name: &str) -> String {
    answer
        .set_cookies()
        .into_iter()
        .find(|l| l.starts_with(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name} cookie in {:?}", answer.set_cookies()))
}

fn max_age(line: &str) -> Option<i64> {
    line.split(';')
        .map(str::trim)
        .find_map(|a| {
            a.to_ascii_lowercase()
                .strip_prefix("max-age=")
                .map(str::to_owned)
        })
        .and_then(|v| v.parse().ok())
}

fn expires(line: &str) -> bool {
    line.split(';')
        .any(|a| a.trim().to_ascii_lowercase().starts_with("expires="))
}

on_both_backends_in_browser! {
    &[];
    async fn every_cookie_is_host_only_secure_http_only_lax_and_the_remembered_ones_last_thirty_days(app) {
        let mut lines = Vec::new();
        let email = app.verified_account().await;

        // The CSRF cookie comes with the first page.
        let mut web = Web::new(&app);
        let first = web.get("/login").await;
        lines.push(cookie_line(&first, "__Host-csrf"));

        // A session without "Remember me": the cookies end with the browser.
        let answer = web.log_in(&email, false).await;
        for name in ["__Host-access", "__Host-refresh"] {
            let line = cookie_line(&answer, name);
            assert!(max_age(&line).is_none() && !expires(&line), "{line}");
            lines.push(line);
        }
        // Logging out removes them, with the same attributes (or the browser ignores it).
        let out = web.post("/logout", &[("csrf", &web.csrf())], Via::OwnPage).await;
        assert_eq!(out.status, 303, "{}", out.body);
        for name in ["__Host-access", "__Host-refresh"] {
            lines.push(cookie_line(&out, name));
        }

        // With "Remember me": 30 days.
        let mut remembered = Web::new(&app);
        let answer = remembered.log_in(&email, true).await;
        for name in ["__Host-access", "__Host-refresh"] {
            let line = cookie_line(&answer, name);
            assert_eq!(max_age(&line), Some(30 * 86_400), "{line}");
            lines.push(line);
        }

        // The pending address of the check-email page.
        let mut newcomer = Web::new(&app);
        let answer = newcomer
            .submit("/signup", "email", &[
                ("full_name", "Ada Lovelace"),
                ("email", &unique_email()),
                ("password", PASSWORD),
                ("account_type", "freelancer"),
            ], Via::OwnPage)
            .await;
        assert_eq!(answer.status, 303, "{}", answer.body);
        assert_eq!(answer.location(&app).as_deref(), Some("/check-email"));
        lines.push(cookie_line(&answer, "__Host-pending-email"));

        // The two-step challenge: 5 minutes.
        let enrolled = app.enrolled().await;
        let mut two_step = Web::new(&app);
        let answer = two_step
            .submit("/login", "login", &[("login", &enrolled.email), ("password", PASSWORD)], Via::OwnPage)
            .await;
        assert_eq!(answer.status, 303, "{}", answer.body);
        assert_eq!(answer.location(&app).as_deref(), Some("/login/two-step"));
        let line = cookie_line(&answer, "__Host-mfa");
        assert!(max_age(&line).is_some_and(|s| (1..=300).contains(&s)), "{line}");
        lines.push(line);

        for line in &lines {
            assert_host_cookie(line);
        }
    }
}

// ---------------------------------------------------------------------------------
// return_to
// ---------------------------------------------------------------------------------

on_both_backends_in_browser! {
    &[("WEB_RETURN_TO_ORIGINS", "https://marketplace.example")];
    async fn return_to_never_leaves_for_a_site_not_allowed(app) {
        let email = app.verified_account().await;
        for (return_to, expected) in [
            ("https://evil.example", SETTINGS),
            ("https://evil.example/account/security", SETTINGS),
            ("//evil.example", SETTINGS),
            ("/\\evil.example", SETTINGS),
            ("\\/evil.example", SETTINGS),
            ("javascript:alert(1)", SETTINGS),
            ("https://marketplace.example.evil.example/", SETTINGS),
            ("https://marketplace.example/jobs", "https://marketplace.example/jobs"),
            ("/account/security?history_after=x", "/account/security?history_after=x"),
        ] {
            let mut web = Web::new(&app);
            let page = format!("/login?return_to={}", encode(return_to));
            let answer = web
                .submit(&page, "login", &[("login", &email), ("password", PASSWORD)], Via::OwnPage)
                .await;
            assert_eq!(answer.status, 303, "return_to={return_to}: {}", answer.body);
            assert_eq!(
                answer.location(&app).as_deref(),
                Some(expected),
                "return_to={return_to}"
            );
        }
    }

    async fn a_page_that_needs_a_session_sends_to_login_with_its_path(app) {
        let mut web = Web::new(&app);
        let answer = web.get(SETTINGS).await;
        assert_eq!(answer.status, 303, "{}", answer.body);
        assert_eq!(
            answer.location(&app).as_deref(),
            Some("/login?return_to=%2Faccount%2Fsecurity")
        );
    }
}

// ---------------------------------------------------------------------------------
// Headers
// ---------------------------------------------------------------------------------

/// Asserts the headers docs/web-pages.md gives every page.
fn assert_page_headers(what: &str, answer: &Answer) {
    let content_type = answer.header("content-type").unwrap_or_default();
    assert!(
        content_type.starts_with("text/html"),
        "{what}: Content-Type {content_type}"
    );
    let csp = answer.header("content-security-policy").unwrap_or_default();
    let normalise = |policy: &str| {
        policy
            .split(';')
            .map(|d| d.split_whitespace().collect::<Vec<_>>().join(" "))
            .filter(|d| !d.is_empty())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        normalise(&csp),
        normalise(CSP),
        "{what}: Content-Security-Policy"
    );
    assert_eq!(
        answer.header("x-frame-options").as_deref(),
        Some("DENY"),
        "{what}"
    );
    assert_eq!(
        answer.header("x-content-type-options").as_deref(),
        Some("nosniff"),
        "{what}"
    );
    assert_eq!(
        answer.header("referrer-policy").as_deref(),
        Some("no-referrer"),
        "{what}"
    );
    assert_eq!(
        answer.header("cache-control").as_deref(),
        Some("no-store"),
        "{what}"
    );
}

on_both_backends_in_browser! {
    &[];
    async fn every_page_carries_the_security_headers(app) {
        let mut web = Web::new(&app);
        for path in [
            "/signup",
            "/check-email",
            "/verify-email?token=not-a-token",
            "/login",
            "/login?notice=verified",
            "/forgot-password",
            "/forgot-password/sent",
            "/forgot-security-answer",
            "/forgot-security-answer/sent",
            "/reset-password?token=not-a-token",
            "/reset-security-question?token=not-a-token",
            "/no-such-page",
        ] {
            let answer = web.get(path).await;
            assert!(
                matches!(answer.status, 200 | 303 | 400 | 404),
                "GET {path}: {}", answer.status
            );
            // A redirect is no page (the check-email page without a pending address).
            if answer.status != 303 {
                assert_page_headers(&format!("GET {path}"), &answer);
            }
        }
        assert_eq!(web.get("/no-such-page").await.status, 404);

        // The check-email page after a signup.
        let answer = web
            .submit("/signup", "email", &[
                ("full_name", "Ada Lovelace"),
                ("email", &unique_email()),
                ("password", PASSWORD),
                ("account_type", "freelancer"),
            ], Via::OwnPage)
            .await;
        assert_eq!(answer.location(&app).as_deref(), Some("/check-email"), "{}", answer.body);
        let check_email = web.get("/check-email").await;
        assert_eq!(check_email.status, 200);
        assert_page_headers("GET /check-email after a signup", &check_email);

        // Signed in: the settings, and the answers that show a secret.
        let email = app.verified_account().await;
        web.log_in(&email, false).await;
        let settings = web.get(SETTINGS).await;
        assert_eq!(settings.status, 200);
        assert_page_headers("GET /account/security", &settings);
        let setup = web
            .post(
                "/account/security/totp/setup",
                &[("current_password", PASSWORD), ("csrf", &web.csrf())],
                Via::OwnPage,
            )
            .await;
        assert_eq!(setup.status, 200, "{}", setup.body);
        assert!(setup.body.contains("totp-secret"), "{}", setup.body);
        assert_page_headers("POST /account/security/totp/setup", &setup);

        // A refused form, and the 429 page.
        let refused = web.post("/login", &[("login", &email)], Via::OtherSite).await;
        assert_eq!(refused.status, 403);
        assert_page_headers("a refused POST", &refused);
        let mut stranger = Web::new(&app);
        let mut last = None;
        for _ in 0..6 {
            last = Some(
                stranger
                    .submit("/login", "login", &[("login", &email), ("password", WRONG_PASSWORD)], Via::OwnPage)
                    .await,
            );
        }
        let limited = last.expect("an answer");
        assert_eq!(limited.status, 429, "{}", limited.body);
        let retry_after = limited.header("retry-after").and_then(|v| v.parse::<u64>().ok());
        assert!(retry_after.is_some_and(|s| s >= 1), "Retry-After {retry_after:?}");
        assert_page_headers("the 429 page", &limited);

        // The static assets: cacheable, typed, not sniffed.
        for (path, kind) in [("/assets/app.css", "text/css"), ("/assets/app.js", "javascript")] {
            let asset = web.get(path).await;
            assert_eq!(asset.status, 200, "GET {path}");
            let content_type = asset.header("content-type").unwrap_or_default();
            assert!(content_type.contains(kind), "{path}: {content_type}");
            assert_eq!(asset.header("x-content-type-options").as_deref(), Some("nosniff"), "{path}");
            assert_ne!(asset.header("cache-control").as_deref(), Some("no-store"), "{path}");
        }

        // The API's paths stay the API's.
        let api = web.get("/v1/no-such-route").await;
        assert_eq!(api.status, 404);
        assert_eq!(api.header("content-type").as_deref(), Some("application/problem+json"));
    }
}

// ---------------------------------------------------------------------------------
// Tokens: no referrer, nothing from elsewhere, no log line
// ---------------------------------------------------------------------------------

/// Asserts a page loads nothing from another origin and links nowhere else with a URL
/// that could carry its own.
fn assert_nothing_from_elsewhere(what: &str, app: &TestApp, html: &str) {
    for (tag, attributes) in tags(html) {
        for name in ["src", "href", "action", "srcset", "data", "poster"] {
            let Some(value) = attributes.get(name) else {
                continue;
            };
            let value = value.trim();
            let elsewhere = (value.starts_with("//")
                || value.starts_with("http:")
                || value.starts_with("https:"))
                && !value.starts_with(&app.base_url);
            assert!(
                !elsewhere,
                "{what}: <{tag} {name}=\"{value}\"> points to another site"
            );
        }
    }
}

on_both_backends_in_browser! {
    &[];
    async fn pages_with_a_token_in_their_url_send_no_referrer_and_load_nothing_from_elsewhere(app) {
        let email = app.verified_account().await;
        let mut web = Web::new(&app);

        // A verification link (a fresh account's).
        let newcomer = unique_email();
        assert_eq!(app.sign_up(&newcomer).await.status(), 202);
        let token = app.verification_token(&newcomer).await;
        // Reset links: password and security question.
        assert_eq!(app.forgot_password(&email).await.status(), 202);
        let reset = app.newest_link_token(&email, "/reset-password").await;
        let tokens = app.log_in(&email, false).await;
        let set = app
            .set_security_question(&tokens.access_token, &serde_json::json!({
                "current_password": PASSWORD, "question_id": "first-pet", "answer": "Rex the Dog",
            }))
            .await;
        assert_eq!(set.status(), 200);
        assert_eq!(app.forgot_security_answer(&email).await.status(), 202);
        let question = app.newest_link_token(&email, "/reset-security-question").await;

        for path in [
            format!("/verify-email?token={token}"),
            format!("/reset-password?token={reset}"),
            format!("/reset-security-question?token={question}"),
        ] {
            let answer = web.get(&path).await;
            assert_eq!(answer.status, 200, "GET {path}");
            assert_eq!(answer.header("referrer-policy").as_deref(), Some("no-referrer"), "{path}");
            assert_eq!(answer.header("cache-control").as_deref(), Some("no-store"), "{path}");
            assert_nothing_from_elsewhere(&path, &app, &answer.body);
        }
        // The answer of the POST that spends the token, too.
        let confirmed = web.submit(&format!("/verify-email?token={token}"), "token", &[], Via::OwnPage).await;
        assert_eq!(confirmed.status, 200, "{}", confirmed.body);
        assert_eq!(confirmed.header("referrer-policy").as_deref(), Some("no-referrer"));
        assert_nothing_from_elsewhere("the confirmed page", &app, &confirmed.body);
        assert_eq!(email_verified(&app.app, &newcomer).await, Some(true));
    }
}

/// The journeys that carry tokens, through the pages; every token they saw, and the
/// password, must be absent from every log line.
async fn check_that_tokens_reach_no_log_line(backend: Backend) {
    api_tests::captured_logs::captured();
    let app = TestApp::spawn_for_browser(backend).await;
    let mut secrets: Vec<String> = vec![PASSWORD.to_owned(), NEW_PASSWORD.to_owned()];
    let email = format!(
        "very.private.person.{}@example.com",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );

    // Sign up and confirm by the link, through the pages.
    let mut web = Web::new(&app);
    let answer = web
        .submit(
            "/signup",
            "email",
            &[
                ("full_name", "Ada Lovelace"),
                ("email", &email),
                ("password", PASSWORD),
                ("account_type", "freelancer"),
            ],
            Via::OwnPage,
        )
        .await;
    assert_eq!(answer.status, 303, "{}", answer.body);
    let code = app
        .last_mail_to(&email)
        .await
        .and_then(|m| m.code())
        .expect("a code");
    let token = app.verification_token(&email).await;
    secrets.extend([token.clone(), code]);
    let link = format!("/verify-email?token={token}");
    let confirmed = web.submit(&link, "token", &[], Via::OwnPage).await;
    assert_eq!(confirmed.status, 200, "{}", confirmed.body);
    // Spent: the same link again, and an unknown one.
    web.submit(&link, "token", &[], Via::OwnPage).await;
    web.get("/verify-email?token=unknown-token-of-the-test-42")
        .await;
    secrets.push("unknown-token-of-the-test-42".to_owned());

    // Log in: the session's tokens and the CSRF token.
    web.log_in(&email, false).await;
    secrets.extend(web.jar.values().cloned());

    // Forgot and reset the password through the pages.
    let mut other = Web::new(&app);
    let answer = other
        .submit(
            "/forgot-password",
            "login",
            &[("login", &email)],
            Via::OwnPage,
        )
        .await;
    assert_eq!(answer.status, 303, "{}", answer.body);
    let reset = app.newest_link_token(&email, "/reset-password").await;
    secrets.push(reset.clone());
    let answer = other
        .submit(
            &format!("/reset-password?token={reset}"),
            "new_password",
            &[
                ("new_password", NEW_PASSWORD),
                ("confirm_password", NEW_PASSWORD),
            ],
            Via::OwnPage,
        )
        .await;
    assert_eq!(answer.status, 303, "{}", answer.body);
    assert_eq!(
        answer.location(&app).as_deref(),
        Some("/login?notice=password_reset")
    );
    secrets.extend(other.jar.values().cloned());
    // A refused post with a token in it.
    other
        .post(
            "/reset-password",
            &[("token", &reset), ("new_password", NEW_PASSWORD)],
            Via::OtherSite,
        )
        .await;

    let text = api_tests::captured_logs::captured().text();
    for secret in secrets.iter().filter(|s| s.len() >= 6) {
        assert!(
            !text.contains(secret.as_str()),
            "a log line holds {secret:?}:\n{text}"
        );
    }
    assert!(
        !text.contains("very.private.person"),
        "a log line holds the address:\n{text}"
    );
    api_assert::problem(
        app.try_log_in(&email, PASSWORD).await,
        401,
        "invalid_credentials",
    )
    .await;
}

mod tokens_reach_no_log_line {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn on_memory() {
        check_that_tokens_reach_no_log_line(Backend::Memory).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn on_dynamodb() {
        check_that_tokens_reach_no_log_line(Backend::DynamoDb).await;
    }
}

#[test]
fn the_form_reader_finds_the_action_and_hidden_fields_of_the_form_holding_a_field() {
    let html = "<form method=\"post\" action=\"/logout\"><input type=hidden name=csrf value=x>\
                <button>Log out</button></form>\
                <form method='post' action='/login?return_to=%2Fa&amp;b=1'>\
                <input type=\"hidden\" name=\"csrf\" value=\"a&#x2F;b&quot;c\">\
                <input name=\"login\" autocomplete=\"username\"><input type=\"checkbox\" \
                name=\"remember_me\" value=\"on\" checked></form>";
    let form = Form::holding(html, "login").expect("the login form");
    assert_eq!(form.action.as_deref(), Some("/login?return_to=%2Fa&b=1"));
    assert_eq!(form.hidden, vec![("csrf".to_owned(), "a/b\"c".to_owned())]);
    assert!(Form::holding(html, "password").is_none());
}

// ---------------------------------------------------------------------------------
// Settings actions that cannot be done
// ---------------------------------------------------------------------------------

/// The `sid` claim of a signed-in client's access token.
fn session_id_of(web: &Web<'_>) -> String {
    use base64::Engine as _;
    let token = web.jar.get("__Host-access").expect("signed in");
    let payload = token.split('.').nth(1).expect("a JWT");
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .expect("base64url"),
    )
    .expect("JSON claims");
    claims["sid"].as_str().expect("a sid").to_owned()
}

on_both_backends_in_browser! {
    &[];
    async fn signing_out_a_device_that_already_left_says_so_in_words(app) {
        let email = app.verified_account().await;
        let mut laptop = Web::new(&app);
        let mut phone = Web::new(&app);
        laptop.log_in(&email, false).await;
        phone.log_in(&email, false).await;
        let gone = session_id_of(&phone);
        let out = phone.post("/logout", &[("csrf", &phone.csrf())], Via::OwnPage).await;
        assert_eq!(out.status, 303);

        let answer = laptop
            .post(
                "/account/security/sessions/revoke",
                &[("session_id", &gone), ("csrf", &laptop.csrf())],
                Via::OwnPage,
            )
            .await;
        assert_eq!(answer.status, 404, "{}", answer.body);
        assert!(answer.body.contains("That device was already signed out."), "{}", answer.body);
        assert!(answer.body.contains("role=\"alert\""), "{}", answer.body);
        // The laptop is still signed in.
        assert_eq!(laptop.get(SETTINGS).await.status, 200);
    }
}
