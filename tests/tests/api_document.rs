//! The API document (`docs/openapi.yaml`): served as it is, and a checker that refuses
//! what the document does not allow (every other test's answers go through it).

use api_tests::contract::contract;
use api_tests::{Backend, TestApp, body, header, on_both_backends};
use http::{HeaderMap, HeaderValue, Method};
use serde_json::{Value, json};

on_both_backends! {
    async fn the_served_document_is_the_one_in_the_repository(app) {
        let response = app.get("/v1/openapi.json").await;
        assert_eq!(response.status(), 200);
        assert_eq!(header(&response, "content-type").as_deref(), Some("application/json"));
        assert_eq!(
            header(&response, "cache-control").as_deref(),
            Some("public, max-age=300")
        );
        let served = body(response).await;
        assert_eq!(&served, contract().document());
        assert_eq!(served["openapi"], "3.1.0");
    }
}

fn json_headers(content_type: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert("content-type", HeaderValue::from_str(content_type).unwrap());
    headers.insert("cache-control", HeaderValue::from_static("no-store"));
    headers
}

fn bytes(value: &Value) -> Vec<u8> {
    serde_json::to_vec(value).unwrap()
}

fn problem(status: u16, code: &str) -> Vec<u8> {
    bytes(&json!({
        "type": "about:blank", "title": "Error", "status": status, "code": code,
        "detail": "A sentence.",
    }))
}

#[test]
fn a_documented_answer_conforms() {
    let headers = json_headers("application/json");
    let accepted = bytes(&json!({ "status": "verification_sent" }));
    contract()
        .check(&Method::POST, "/v1/signup", 202, &headers, &accepted)
        .unwrap();
}

#[test]
fn a_body_outside_its_schema_is_refused() {
    let headers = json_headers("application/json");
    let wrong = bytes(&json!({ "status": "verification_sent", "user_id": "u-1" }));
    let error = contract()
        .check(&Method::POST, "/v1/signup", 202, &headers, &wrong)
        .unwrap_err();
    assert!(error.contains("outside its schema"), "{error}");
}

#[test]
fn an_undocumented_status_is_refused() {
    let headers = json_headers("application/problem+json");
    let error = contract()
        .check(
            &Method::GET,
            "/v1/account",
            403,
            &headers,
            &problem(403, "forbidden"),
        )
        .unwrap_err();
    assert!(error.contains("does not list"), "{error}");
}

#[test]
fn an_error_code_the_operation_does_not_list_is_refused() {
    let headers = json_headers("application/problem+json");
    let error = contract()
        .check(
            &Method::POST,
            "/v1/signup",
            400,
            &headers,
            &problem(400, "invalid_token"),
        )
        .unwrap_err();
    assert!(error.contains("outside its schema"), "{error}");
}

#[test]
fn a_rate_limited_answer_without_retry_after_is_refused() {
    let headers = json_headers("application/problem+json");
    let error = contract()
        .check(
            &Method::POST,
            "/v1/login",
            429,
            &headers,
            &problem(429, "rate_limited"),
        )
        .unwrap_err();
    assert!(error.contains("Retry-After"), "{error}");
}

#[test]
fn an_answer_that_can_be_cached_is_refused_where_the_document_says_no_store() {
    let mut headers = json_headers("application/json");
    headers.insert("cache-control", HeaderValue::from_static("max-age=60"));
    let error = contract()
        .check(
            &Method::POST,
            "/v1/email/verify",
            200,
            &headers,
            &bytes(&json!({ "status": "verified" })),
        )
        .unwrap_err();
    assert!(error.contains("Cache-Control"), "{error}");
}

#[test]
fn an_undocumented_content_type_is_refused() {
    let headers = json_headers("text/html");
    let error = contract()
        .check(&Method::GET, "/v1/health", 200, &headers, b"<p>ok</p>")
        .unwrap_err();
    assert!(error.contains("text/html"), "{error}");
}

#[test]
fn unknown_paths_must_answer_a_not_found_problem() {
    let headers = json_headers("application/problem+json");
    contract()
        .check(
            &Method::GET,
            "/v1/nothing",
            404,
            &headers,
            &problem(404, "not_found"),
        )
        .unwrap();
    let error = contract()
        .check(&Method::GET, "/v1/nothing", 200, &headers, b"{}")
        .unwrap_err();
    assert!(error.contains("not 404"), "{error}");
}

#[test]
fn path_parameters_match_one_segment() {
    let headers = json_headers("application/problem+json");
    contract()
        .check(
            &Method::DELETE,
            "/v1/account/sessions/abc",
            404,
            &headers,
            &problem(404, "not_found"),
        )
        .unwrap();
}

#[tokio::test]
async fn a_test_whose_server_answered_outside_the_document_fails() {
    let app = TestApp::spawn(Backend::Memory).await;
    assert_eq!(app.get("/v1/health").await.status(), 200);
    app.violations()
        .record("GET /v1/health answered 200 with a body outside its schema".into());
    let dropped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(app)));
    let message = dropped.expect_err("the violation fails the test");
    let text = message
        .downcast_ref::<String>()
        .cloned()
        .unwrap_or_default();
    assert!(text.contains("outside docs/openapi.yaml"), "{text}");
}
