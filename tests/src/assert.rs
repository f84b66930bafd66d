//! Checks of whole HTTP answers: each asserts what one kind of answer must look like
//! (status, content type, body), panics with the body when it does not, and returns
//! what the test needs next.

use reqwest::Response;
use reqwest::header::{CACHE_CONTROL, CONTENT_TYPE, RETRY_AFTER};
use serde_json::{Value, json};

use crate::{Tokens, body, header, sorted_keys};

/// Asserts a problem document (`application/problem+json`) with this status and code,
/// and returns its body.
pub async fn problem(response: Response, status: u16, code: &str) -> Value {
    let actual = response.status();
    let content_type = header(&response, CONTENT_TYPE.as_str());
    let body = body(response).await;
    assert_eq!(actual, status, "{body}");
    assert_eq!(
        content_type.as_deref(),
        Some("application/problem+json"),
        "{body}"
    );
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["status"], status, "{body}");
    body
}

/// Asserts a [`problem`] that has every RFC 9457 member besides: `type` `about:blank`,
/// and a `title` and a `detail` that are not empty. Returns its body.
pub async fn complete_problem(response: Response, status: u16, code: &str) -> Value {
    let body = problem(response, status, code).await;
    for key in ["type", "title", "status", "code", "detail"] {
        assert!(body.get(key).is_some(), "no {key} in {body}");
    }
    assert_eq!(body["type"], "about:blank", "{body}");
    for key in ["title", "detail"] {
        assert!(
            body[key].as_str().is_some_and(|text| !text.is_empty()),
            "{body}"
        );
    }
    body
}

/// Asserts `429 rate_limited` with a `Retry-After` of at least one whole second, and
/// returns those seconds.
pub async fn rate_limited(response: Response) -> u64 {
    let seconds = header(&response, RETRY_AFTER.as_str())
        .and_then(|v| v.parse::<u64>().ok())
        .expect("a numeric Retry-After header");
    problem(response, 429, "rate_limited").await;
    assert!(seconds >= 1, "Retry-After {seconds}");
    seconds
}

/// Asserts `200` with an uncacheable (`no-store`) `application/json` body, and returns
/// the body.
pub async fn ok_json(response: Response) -> Value {
    let status = response.status();
    let content_type = header(&response, CONTENT_TYPE.as_str());
    let cache_control = header(&response, CACHE_CONTROL.as_str());
    let body = body(response).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(content_type.as_deref(), Some("application/json"), "{body}");
    assert_eq!(cache_control.as_deref(), Some("no-store"), "{body}");
    body
}

/// Asserts `status` with exactly `{"status": word}` as an `application/json` body, as
/// the API answers an accepted request that returns nothing else.
pub async fn json_status(response: Response, status: u16, word: &str) {
    let actual = response.status();
    let content_type = header(&response, CONTENT_TYPE.as_str());
    let body = body(response).await;
    assert_eq!(actual, status, "{body}");
    assert_eq!(content_type.as_deref(), Some("application/json"), "{body}");
    assert_eq!(body, json!({ "status": word }));
}

/// Asserts a complete token response (a login or a refresh): [`ok_json`] with exactly
/// the members of [`Tokens`] and a `Bearer` type. Returns the tokens.
pub async fn token_pair(response: Response) -> Tokens {
    let body = ok_json(response).await;
    assert_eq!(
        sorted_keys(&body),
        [
            "access_token",
            "expires_in",
            "refresh_token",
            "session_id",
            "token_type"
        ]
    );
    assert_eq!(body["token_type"], "Bearer");
    serde_json::from_value(body).expect("a token pair")
}

/// Asserts `200` and reads the token pair of the body, checking nothing else (see
/// [`token_pair`] for the full check).
pub async fn ok_tokens(response: Response) -> Tokens {
    let status = response.status();
    let body = body(response).await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_value(body).expect("a token pair")
}
