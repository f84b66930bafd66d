//! The Lambda entry path: real API Gateway HTTP API (payload v2) events, parsed as the
//! runtime parses them, answered by `handle_event` for one function, or by the `web`
//! function's service, whose answers are serialised as the runtime sends them back.

use std::sync::Arc;

use accounts::app::App;
use accounts::mail::outbox::Outbox;
use accounts::routes::{Function, RouteGroup, SignupRoute, VerifyRoute};
use accounts::store::memory::MemoryStore;
use api_tests::{Mail, PASSWORD, email_verified, test_config};
use http::HeaderMap;
use serde_json::{Value, json};

/// The address in the signup fixtures' body.
const FIXTURE_EMAIL: &str = "lambda.fixture@example.com";
/// The `requestContext.http.sourceIp` of the signup fixtures.
const FIXTURE_SOURCE_IP: &str = "203.0.113.7";
/// The client-supplied `X-Forwarded-For` of the signup fixtures.
const FIXTURE_FORWARDED_FOR: &str = "6.6.6.6";

/// One function's state as a cold start builds it, over the embedded store and outbox.
struct Lambda {
    app: App,
    outbox: Arc<Outbox>,
}

impl Lambda {
    fn new(overrides: &[(&str, &str)]) -> Lambda {
        let config = test_config("accounts-lambda-test", overrides);
        let clock = api_tests::test_clock();
        let store = Arc::new(MemoryStore::new(clock.clone()));
        let outbox = Arc::new(Outbox::new(clock.clone()));
        let app = App::new(config, store, outbox.clone(), clock).expect("build the app");
        Lambda { app, outbox }
    }

    /// Hands one event (JSON as API Gateway sends it) to the function serving `G`.
    async fn call<G: RouteGroup>(&self, event: &Value) -> Answer {
        let request =
            lambda_http::request::from_str(&event.to_string()).expect("an API Gateway v2 event");
        let response = accounts::routes::lambda::handle_event::<G>(&self.app, request).await;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes: &[u8] = response.body();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(bytes).expect("a JSON body")
        };
        Answer {
            status,
            headers,
            body,
        }
    }

    /// Hands one event to the `web` function's service, through `lambda_http`'s own
    /// adapter (what `lambda_http::run` wraps it in), and returns the response as the
    /// runtime serialises it for API Gateway.
    async fn call_web(&self, event: &Value) -> WebAnswer {
        use lambda_http::Service;
        let payload: lambda_http::request::LambdaRequest =
            serde_json::from_value(event.clone()).expect("an API Gateway v2 event");
        let service = accounts::routes::lambda::web_service(Arc::new(self.app.clone()));
        let mut adapter = lambda_http::Adapter::from(service);
        std::future::poll_fn(|cx| adapter.poll_ready(cx))
            .await
            .expect("the service is ready");
        let response = adapter
            .call(lambda_http::LambdaEvent::new(payload, Default::default()))
            .await
            .expect("the web service answers");
        let serialised = serde_json::to_value(&response).expect("a serialisable response");
        WebAnswer { serialised }
    }

    fn mail_to(&self, address: &str) -> Vec<Mail> {
        self.outbox
            .to(address)
            .into_iter()
            .map(Mail::from)
            .collect()
    }

    async fn is_verified(&self, email: &str) -> Option<bool> {
        email_verified(&self.app, email).await
    }
}

#[derive(Debug)]
struct Answer {
    status: u16,
    headers: HeaderMap,
    body: Value,
}

impl Answer {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    fn assert_problem(&self, status: u16, code: &str) {
        assert_eq!(self.status, status, "{self:?}");
        assert_eq!(self.header("content-type"), "application/problem+json");
        assert_eq!(self.body["code"], code, "{self:?}");
        assert_eq!(self.body["status"], status, "{self:?}");
        assert_eq!(self.header("cache-control"), "no-store");
    }
}

/// The `web` function's response as API Gateway receives it (payload v2 response JSON).
#[derive(Debug)]
struct WebAnswer {
    serialised: Value,
}

impl WebAnswer {
    fn status(&self) -> u64 {
        self.serialised["statusCode"]
            .as_u64()
            .expect("a statusCode")
    }

    fn header(&self, name: &str) -> &str {
        self.serialised["headers"][name]
            .as_str()
            .unwrap_or_default()
    }

    /// The `cookies` array: every `Set-Cookie`, one entry each.
    fn cookies(&self) -> Vec<&str> {
        self.serialised["cookies"]
            .as_array()
            .expect("a cookies array")
            .iter()
            .map(|cookie| cookie.as_str().expect("a cookie"))
            .collect()
    }

    /// The cookie `name` sets, as `name=value` (without its attributes).
    fn cookie(&self, name: &str) -> Option<String> {
        self.cookies()
            .into_iter()
            .find(|cookie| cookie.starts_with(&format!("{name}=")))
            .and_then(|cookie| cookie.split(';').next())
            .map(str::to_owned)
    }

    fn body(&self) -> &str {
        assert_eq!(self.serialised["isBase64Encoded"], false, "{self:?}");
        self.serialised["body"].as_str().unwrap_or_default()
    }

    /// `Set-Cookie` never stays among the headers: API Gateway would send only one.
    fn assert_no_set_cookie_header(&self) {
        let headers = self.serialised["headers"]
            .as_object()
            .expect("a headers object");
        assert!(
            !headers
                .keys()
                .any(|name| name.eq_ignore_ascii_case("set-cookie")),
            "{self:?}"
        );
        let multi = &self.serialised["multiValueHeaders"];
        assert!(
            multi.is_null() || multi.as_object().is_some_and(|m| m.is_empty()),
            "{self:?}"
        );
    }
}

fn fixture(name: &str) -> Value {
    let path = format!("{}/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn signup_event() -> Value {
    fixture("apigw-v2-signup.json")
}

/// `event` with another plain-text body.
fn with_body(mut event: Value, body: &str) -> Value {
    event["body"] = Value::String(body.to_owned());
    event["isBase64Encoded"] = Value::Bool(false);
    event["headers"]["content-length"] = Value::String(body.len().to_string());
    event
}

/// The signup event for another address.
fn signup_of(email: &str) -> Value {
    let body = json!({ "email": email, "password": PASSWORD, "account_type": "client" });
    with_body(signup_event(), &body.to_string())
}

/// `event` as API Gateway sends it for a request from `ip`.
fn from_ip(mut event: Value, ip: &str) -> Value {
    event["requestContext"]["http"]["sourceIp"] = Value::String(ip.to_owned());
    event
}

/// `event` retargeted to another route.
fn to_route(mut event: Value, method: &str, path: &str) -> Value {
    let route_key = format!("{method} {path}");
    event["routeKey"] = Value::String(route_key.clone());
    event["requestContext"]["routeKey"] = Value::String(route_key);
    event["rawPath"] = Value::String(path.to_owned());
    event["requestContext"]["http"]["method"] = Value::String(method.to_owned());
    event["requestContext"]["http"]["path"] = Value::String(path.to_owned());
    event
}

fn assert_verification_sent(answer: &Answer) {
    assert_eq!(answer.status, 202, "{answer:?}");
    assert_eq!(answer.body, json!({"status": "verification_sent"}));
    assert_eq!(answer.header("content-type"), "application/json");
    assert_eq!(answer.header("cache-control"), "no-store");
}

#[test]
fn the_fixtures_are_api_gateway_http_api_v2_events() {
    for name in [
        "apigw-v2-signup.json",
        "apigw-v2-signup-base64.json",
        "apigw-v2-health.json",
    ] {
        let request = lambda_http::request::from_str(&fixture(name).to_string())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        use lambda_http::RequestExt;
        match request.request_context_ref() {
            Some(lambda_http::request::RequestContext::ApiGatewayV2(context)) => {
                assert!(context.http.source_ip.is_some(), "{name}");
            }
            other => panic!("{name}: not an HTTP API v2 event: {other:?}"),
        }
    }
    let plain = signup_event();
    assert_eq!(plain["headers"]["x-forwarded-for"], FIXTURE_FORWARDED_FOR);
    assert_eq!(
        plain["requestContext"]["http"]["sourceIp"],
        FIXTURE_SOURCE_IP
    );
}

#[tokio::test]
async fn a_signup_event_creates_an_account_and_mails_a_verification() {
    let lambda = Lambda::new(&[]);
    let answer = lambda.call::<SignupRoute>(&signup_event()).await;
    assert_verification_sent(&answer);

    assert_eq!(lambda.is_verified(FIXTURE_EMAIL).await, Some(false));
    let mails = lambda.mail_to(FIXTURE_EMAIL);
    assert_eq!(mails.len(), 1);
    // The link comes from APP_BASE_URL, not from Host or X-Forwarded-Host.
    assert!(
        mails[0].link_token("/verify-email").is_some(),
        "{}",
        mails[0].text
    );
    assert!(!mails[0].text.contains("evil.example.test"));
    assert!(!mails[0].text.contains("execute-api"));
}

#[tokio::test]
async fn a_base64_encoded_signup_event_works_the_same() {
    let lambda = Lambda::new(&[]);
    let event = fixture("apigw-v2-signup-base64.json");
    assert_eq!(event["isBase64Encoded"], true);
    let answer = lambda.call::<SignupRoute>(&event).await;
    assert_verification_sent(&answer);
    assert_eq!(lambda.is_verified(FIXTURE_EMAIL).await, Some(false));
    assert_eq!(lambda.mail_to(FIXTURE_EMAIL).len(), 1);
}

/// Signs the fixture's account up through the signup function's event and returns the
/// event that verifies it with the mailed token.
async fn signed_up_with_verify_event(lambda: &Lambda) -> Value {
    assert_verification_sent(&lambda.call::<SignupRoute>(&signup_event()).await);
    let token = lambda.mail_to(FIXTURE_EMAIL)[0]
        .link_token("/verify-email")
        .expect("a verification link");
    with_body(
        to_route(signup_event(), "POST", "/v1/email/verify"),
        &json!({ "token": token }).to_string(),
    )
}

#[tokio::test]
async fn a_route_of_another_function_is_not_found() {
    let lambda = Lambda::new(&[]);
    let verify = signed_up_with_verify_event(&lambda).await;

    lambda
        .call::<SignupRoute>(&verify)
        .await
        .assert_problem(404, "not_found");
    assert_eq!(lambda.is_verified(FIXTURE_EMAIL).await, Some(false));

    // Its own function serves it, and the token was not spent by the refused call.
    let answer = lambda.call::<VerifyRoute>(&verify).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(answer.body, json!({"status": "verified"}));
    assert_eq!(answer.header("cache-control"), "no-store");
    assert_eq!(lambda.is_verified(FIXTURE_EMAIL).await, Some(true));

    // And the verify function does not serve signup.
    lambda
        .call::<VerifyRoute>(&signup_of("other@example.com"))
        .await
        .assert_problem(404, "not_found");
    assert_eq!(lambda.is_verified("other@example.com").await, None);
}

#[tokio::test]
async fn unknown_paths_and_methods_are_refused() {
    let lambda = Lambda::new(&[]);
    lambda
        .call::<SignupRoute>(&to_route(signup_event(), "POST", "/v1/nothing-here"))
        .await
        .assert_problem(404, "not_found");
    lambda
        .call::<SignupRoute>(&to_route(
            fixture("apigw-v2-health.json"),
            "GET",
            "/v1/signup",
        ))
        .await
        .assert_problem(405, "method_not_allowed");
}

#[tokio::test]
async fn the_health_event_answers_ok() {
    let lambda = Lambda::new(&[]);
    let answer = lambda
        .call::<SignupRoute>(&fixture("apigw-v2-health.json"))
        .await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(answer.body, json!({"status": "ok"}));
    assert_eq!(answer.header("content-type"), "application/json");
    assert_eq!(answer.header("cache-control"), "no-store");
}

#[tokio::test]
async fn the_rate_limiter_sees_the_source_ip_not_x_forwarded_for() {
    let lambda = Lambda::new(&[("SIGNUPS_PER_IP_PER_HOUR", "1")]);
    let first = signup_of("first@example.com");
    assert_eq!(first["headers"]["x-forwarded-for"], FIXTURE_FORWARDED_FOR);
    assert_verification_sent(&lambda.call::<SignupRoute>(&first).await);

    // Same source IP, and a different X-Forwarded-For does not help.
    let mut second = signup_of("second@example.com");
    second["headers"]["x-forwarded-for"] = Value::String("192.0.2.99".to_owned());
    let limited = lambda.call::<SignupRoute>(&second).await;
    limited.assert_problem(429, "rate_limited");
    let retry_after: u64 = limited
        .header("retry-after")
        .parse()
        .expect("Retry-After in whole seconds");
    assert!((1..=3_600).contains(&retry_after), "{retry_after}");
    assert_eq!(lambda.is_verified("second@example.com").await, None);

    // Another source IP with the same X-Forwarded-For as the first is its own client.
    let third = from_ip(signup_of("third@example.com"), "198.51.100.23");
    assert_eq!(third["headers"]["x-forwarded-for"], FIXTURE_FORWARDED_FOR);
    assert_verification_sent(&lambda.call::<SignupRoute>(&third).await);
    assert_eq!(lambda.is_verified("third@example.com").await, Some(false));
}

#[tokio::test]
async fn a_body_over_16_kib_is_too_large() {
    let lambda = Lambda::new(&[]);
    let padding = |total: usize| {
        let empty = json!({ "email": "big@example.com", "password": "", "account_type": "client" })
            .to_string();
        let body = json!({
            "email": "big@example.com",
            "password": "x".repeat(total - empty.len()),
            "account_type": "client",
        })
        .to_string();
        assert_eq!(body.len(), total);
        body
    };

    let too_large = with_body(signup_event(), &padding(16 * 1024 + 1));
    lambda
        .call::<SignupRoute>(&too_large)
        .await
        .assert_problem(413, "payload_too_large");

    // Exactly 16 KiB is read (and refused for what it says, not for its size).
    let at_limit = with_body(signup_event(), &padding(16 * 1024));
    lambda
        .call::<SignupRoute>(&at_limit)
        .await
        .assert_problem(400, "weak_password");
    assert_eq!(lambda.is_verified("big@example.com").await, None);
}

#[tokio::test]
async fn a_base64_encoded_body_over_16_kib_is_too_large() {
    let lambda = Lambda::new(&[]);
    // "eHh4" is base64 for "xxx": 6,000 of them decode to 18,000 bytes.
    let mut event = fixture("apigw-v2-signup-base64.json");
    event["body"] = Value::String("eHh4".repeat(6_000));
    lambda
        .call::<SignupRoute>(&event)
        .await
        .assert_problem(413, "payload_too_large");
}

/// The health fixture re-aimed at `method path`, as the `$default` route delivers a
/// request no other route matched.
fn no_route_event(method: &str, path: &str) -> Value {
    let mut event = fixture("apigw-v2-health.json");
    event["routeKey"] = json!("$default");
    event["rawPath"] = json!(path);
    event["requestContext"]["routeKey"] = json!("$default");
    event["requestContext"]["http"]["method"] = json!(method);
    event["requestContext"]["http"]["path"] = json!(path);
    event
}

#[tokio::test]
async fn the_default_route_answers_an_unknown_api_path_with_the_apis_own_404() {
    let lambda = Lambda::new(&[]);
    assert_eq!(accounts::routes::NO_ROUTE_FUNCTION, Function::Web);
    for path in [
        "/v1/nope",
        "/v1",
        "/v1/account/sessions/x/y",
        "/.well-known/nope",
    ] {
        let answer = lambda.call_web(&no_route_event("GET", path)).await;
        assert_eq!(answer.status(), 404, "{path}: {answer:?}");
        assert_eq!(answer.header("content-type"), "application/problem+json");
        assert_eq!(answer.header("cache-control"), "no-store");
        let problem: Value = serde_json::from_str(answer.body()).expect("a problem document");
        assert_eq!(problem["code"], "not_found", "{path}");
        assert_eq!(problem["status"], 404, "{path}");
        // The API's answer sets no page cookie.
        assert!(answer.cookies().is_empty(), "{path}: {answer:?}");
    }
}

#[tokio::test]
async fn the_default_route_answers_an_unknown_page_path_with_the_html_404_page() {
    let lambda = Lambda::new(&[]);
    for path in [
        "/wp-login.php",
        "/nope",
        "/account/nope",
        "/assets/nope.css",
    ] {
        let answer = lambda.call_web(&no_route_event("GET", path)).await;
        assert_eq!(answer.status(), 404, "{path}: {answer:?}");
        assert!(
            answer.header("content-type").starts_with("text/html"),
            "{path}: {answer:?}"
        );
        assert!(answer.body().contains("Page not found"), "{path}");
        assert_eq!(answer.header("x-frame-options"), "DENY", "{path}");
        assert!(
            answer
                .header("content-security-policy")
                .contains("default-src 'none'"),
            "{path}"
        );
        assert_eq!(answer.header("cache-control"), "no-store", "{path}");
    }
}

#[tokio::test]
async fn the_default_route_answers_a_known_path_with_another_method_with_405() {
    let lambda = Lambda::new(&[]);
    // A known path of another function too: API Gateway sends it to $default when no
    // route has its method.
    for (method, path) in [
        ("GET", "/v1/signup"),
        ("PUT", "/v1/login"),
        ("DELETE", "/v1/account"),
    ] {
        let answer = lambda.call_web(&no_route_event(method, path)).await;
        assert_eq!(answer.status(), 405, "{method} {path}: {answer:?}");
        assert_eq!(answer.header("content-type"), "application/problem+json");
        let problem: Value = serde_json::from_str(answer.body()).expect("a problem document");
        assert_eq!(problem["code"], "method_not_allowed");
    }
}

/// The health fixture re-aimed at a page route, as API Gateway delivers it.
fn page_event(method: &str, path: &str) -> Value {
    let mut event = to_route(fixture("apigw-v2-health.json"), method, path);
    event["headers"]["accept"] = json!("text/html");
    event
}

/// A form post as a browser sends it through API Gateway: the body base64-encoded (as
/// HTTP APIs pass form bodies), the cookies in the event's `cookies` array, and the
/// page's own origin.
fn form_post(path: &str, form: &[(&str, &str)], cookies: &[String]) -> Value {
    use base64::Engine;
    let body = form
        .iter()
        .map(|(name, value)| format!("{name}={}", accounts::web::percent_encode(value)))
        .collect::<Vec<_>>()
        .join("&");
    let mut event = page_event("POST", path);
    event["headers"]["content-type"] = json!("application/x-www-form-urlencoded");
    event["headers"]["origin"] = json!(api_tests::BASE_URL);
    event["headers"]["sec-fetch-site"] = json!("same-origin");
    event["headers"]["content-length"] = json!(body.len().to_string());
    event["body"] = json!(base64::engine::general_purpose::STANDARD.encode(&body));
    event["isBase64Encoded"] = json!(true);
    event["cookies"] = json!(cookies);
    event
}

#[tokio::test]
async fn a_log_in_page_event_sets_its_csrf_cookie_in_the_cookies_array() {
    let lambda = Lambda::new(&[]);
    let answer = lambda.call_web(&page_event("GET", "/login")).await;
    assert_eq!(answer.status(), 200, "{answer:?}");
    assert!(answer.header("content-type").starts_with("text/html"));
    assert_eq!(answer.header("cache-control"), "no-store");
    assert!(answer.body().contains(r#"name="password""#), "{answer:?}");
    let csrf = answer.cookie("__Host-csrf").expect("a CSRF cookie");
    let token = csrf.trim_start_matches("__Host-csrf=");
    assert!(token.len() >= 22, "{csrf}");
    // The form carries the same token.
    assert!(answer.body().contains(token), "the form's csrf field");
    let set = answer.cookies();
    assert_eq!(set.len(), 1, "{set:?}");
    for attribute in ["HttpOnly", "Secure", "SameSite=Lax", "Path=/"] {
        assert!(set[0].contains(attribute), "{attribute}: {set:?}");
    }
    answer.assert_no_set_cookie_header();
}

#[tokio::test]
async fn a_log_in_form_post_event_sets_both_session_cookies_in_the_cookies_array() {
    let lambda = Lambda::new(&[]);
    // An account, signed up and verified through its own functions' events.
    let verify = signed_up_with_verify_event(&lambda).await;
    assert_eq!(lambda.call::<VerifyRoute>(&verify).await.status, 200);

    let page = lambda.call_web(&page_event("GET", "/login")).await;
    let csrf_cookie = page.cookie("__Host-csrf").expect("a CSRF cookie");
    let csrf = csrf_cookie.trim_start_matches("__Host-csrf=").to_owned();

    // Without the CSRF cookie the post is refused, and signs nobody in.
    let refused = lambda
        .call_web(&form_post(
            "/login",
            &[
                ("csrf", &csrf),
                ("login", FIXTURE_EMAIL),
                ("password", PASSWORD),
            ],
            &[],
        ))
        .await;
    assert_eq!(refused.status(), 403, "{refused:?}");
    assert!(refused.cookie("__Host-access").is_none(), "{refused:?}");

    let answer = lambda
        .call_web(&form_post(
            "/login",
            &[
                ("csrf", &csrf),
                ("login", FIXTURE_EMAIL),
                ("password", PASSWORD),
            ],
            &[csrf_cookie, "unrelated=1".to_owned()],
        ))
        .await;
    assert_eq!(answer.status(), 303, "{answer:?}");
    assert_eq!(answer.header("location"), "/account/security");
    let access = answer.cookie("__Host-access").expect("the access cookie");
    let refresh = answer.cookie("__Host-refresh").expect("the refresh cookie");
    assert!(access.len() > "__Host-access=".len() + 20, "{access}");
    assert!(refresh.len() > "__Host-refresh=".len() + 20, "{refresh}");
    for cookie in answer.cookies() {
        assert!(
            cookie.contains("HttpOnly") && cookie.contains("Secure"),
            "{cookie}"
        );
    }
    answer.assert_no_set_cookie_header();

    // The browser sends both back (again through the cookies array): signed in.
    let mut signed_in = page_event("GET", "/account/security");
    signed_in["cookies"] = json!([access, refresh]);
    let security = lambda.call_web(&signed_in).await;
    assert_eq!(security.status(), 200, "{security:?}");
    assert!(security.body().contains(FIXTURE_EMAIL), "{security:?}");
}

/// The secret CloudFront adds as `X-Origin-Verify` in the tests below.
const ORIGIN_SECRET: &str = "c0ffee00-origin-verify-of-the-test";

/// `event` as CloudFront forwards it: the origin header, and the viewer's address.
fn through_cloudfront(mut event: Value, viewer: &str) -> Value {
    event["headers"]["x-origin-verify"] = json!(ORIGIN_SECRET);
    event["headers"]["cloudfront-viewer-address"] = json!(viewer);
    // API Gateway's source IP is then a CloudFront edge, the same for many viewers.
    event["requestContext"]["http"]["sourceIp"] = json!("130.176.0.1");
    event
}

#[tokio::test]
async fn behind_cloudfront_a_request_without_the_origin_header_is_refused_and_changes_nothing() {
    let lambda = Lambda::new(&[("ORIGIN_VERIFY_SECRET", ORIGIN_SECRET)]);
    let direct = signup_of("direct@example.com");
    let mut forged = signup_of("forged@example.com");
    forged["headers"]["x-origin-verify"] = json!("a-guess");
    for (event, email) in [
        (direct, "direct@example.com"),
        (forged, "forged@example.com"),
    ] {
        let answer = lambda.call::<SignupRoute>(&event).await;
        answer.assert_problem(403, "forbidden");
        assert_eq!(
            lambda.is_verified(email).await,
            None,
            "{email} was signed up"
        );
        assert!(lambda.mail_to(email).is_empty());
    }
}

#[tokio::test]
async fn behind_cloudfront_the_rate_limiter_sees_the_viewer_not_the_edge() {
    let lambda = Lambda::new(&[
        ("ORIGIN_VERIFY_SECRET", ORIGIN_SECRET),
        ("SIGNUPS_PER_IP_PER_HOUR", "1"),
    ]);
    let first = through_cloudfront(signup_of("viewer.one@example.com"), "203.0.113.50:46532");
    assert_verification_sent(&lambda.call::<SignupRoute>(&first).await);
    // Another viewer through the same edge is its own client.
    let other = through_cloudfront(signup_of("viewer.two@example.com"), "2001:db8::7:443");
    assert_verification_sent(&lambda.call::<SignupRoute>(&other).await);
    // The first viewer again, through another edge: limited.
    let mut again = through_cloudfront(signup_of("viewer.three@example.com"), "203.0.113.50:50001");
    again["requestContext"]["http"]["sourceIp"] = json!("130.176.0.99");
    lambda
        .call::<SignupRoute>(&again)
        .await
        .assert_problem(429, "rate_limited");
}
