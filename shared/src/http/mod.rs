//! HTTP plumbing shared by the Lambda functions and the local server: the request as
//! the handlers see it, JSON in and out, and problem documents.

pub mod problem;

use std::net::IpAddr;

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use problem::{FieldError, Problem};

/// The largest request body accepted.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// Who sent a request, as far as we can trust it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Client {
    /// The source IP API Gateway saw (or the local server's socket peer); never taken
    /// from `X-Forwarded-For`.
    pub ip: IpAddr,
    /// The `User-Agent` header, as data only (bounded in length).
    pub user_agent: String,
}

/// A request as every handler sees it, whichever server received it.
#[derive(Clone, Debug)]
pub struct ApiRequest {
    pub method: Method,
    pub path: String,
    pub query: Option<String>,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub client: Client,
}

/// The longest user agent we keep.
const MAX_USER_AGENT_CHARS: usize = 256;

impl ApiRequest {
    pub fn new(
        method: Method,
        path: impl Into<String>,
        query: Option<String>,
        headers: HeaderMap,
        body: Bytes,
        ip: IpAddr,
    ) -> ApiRequest {
        let user_agent = headers
            .get(http::header::USER_AGENT)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .unwrap_or_default()
            .chars()
            .filter(|c| !c.is_control())
            .take(MAX_USER_AGENT_CHARS)
            .collect();
        ApiRequest {
            method,
            path: path.into(),
            query,
            headers,
            body,
            client: Client { ip, user_agent },
        }
    }

    /// Parses the JSON body into `T` (whose fields are all known: unknown ones are
    /// refused by `#[serde(deny_unknown_fields)]` on `T`).
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, Problem> {
        if self.body.len() > MAX_BODY_BYTES {
            return Err(payload_too_large());
        }
        let content_type = self
            .headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let is_json = content_type
            .split(';')
            .next()
            .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/json"));
        if !is_json {
            return Err(Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "Send the body as application/json.",
            ));
        }
        serde_json::from_slice(&self.body).map_err(|e| {
            // serde's message names the offending field or position, never a value.
            Problem::invalid_request(format!("The request body is not valid: {e}."))
        })
    }

    /// A query-string parameter, percent-decoded.
    pub fn query_param(&self, name: &str) -> Option<String> {
        form_param(self.query.as_deref()?, name)
    }
}

/// A parameter of `application/x-www-form-urlencoded` text (a query string or an
/// HTML form's body), decoded by the WHATWG rules (`+` is a space, `%XX` a byte, and
/// anything else as written).
pub fn form_param(encoded: &str, name: &str) -> Option<String> {
    form_urlencoded::parse(encoded.as_bytes())
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
}

pub fn payload_too_large() -> Problem {
    Problem::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        "The request body is larger than 16 KiB.",
    )
}

/// A response as the handlers build it.
pub type ApiResponse = http::Response<Bytes>;

/// Every API response is personal or carries secrets: none may be cached.
fn base(status: StatusCode, content_type: &'static str, body: Bytes) -> ApiResponse {
    let mut response = http::Response::new(body);
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

pub fn json(status: StatusCode, body: &impl Serialize) -> ApiResponse {
    match serde_json::to_vec(body) {
        Ok(bytes) => base(status, "application/json", bytes.into()),
        Err(e) => problem(&Problem::internal(&e.into())),
    }
}

pub fn no_content() -> ApiResponse {
    let mut response = base(StatusCode::NO_CONTENT, "application/json", Bytes::new());
    response.headers_mut().remove(CONTENT_TYPE);
    response
}

pub fn problem(problem: &Problem) -> ApiResponse {
    let body = serde_json::to_vec(&problem.body()).unwrap_or_default();
    let mut response = base(problem.status, "application/problem+json", body.into());
    if let Some(seconds) = problem.retry_after {
        response
            .headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}

/// `{"status": "<word>"}`, the body of most successful writes.
pub fn status(code: StatusCode, word: &str) -> ApiResponse {
    json(code, &serde_json::json!({ "status": word }))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn request(content_type: &str, body: &str) -> ApiRequest {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_str(content_type).unwrap());
        ApiRequest::new(
            Method::POST,
            "/v1/x",
            None,
            headers,
            Bytes::from(body.to_owned()),
            "127.0.0.1".parse().unwrap(),
        )
    }

    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        email: String,
    }

    #[test]
    fn a_json_body_with_a_charset_is_accepted() {
        let req = request("application/json; charset=utf-8", r#"{"email":"a"}"#);
        assert!(req.json::<Body>().is_ok());
    }

    #[test]
    fn unknown_fields_are_an_invalid_request() {
        let req = request("application/json", r#"{"email":"a","email_verified":true}"#);
        assert_eq!(req.json::<Body>().unwrap_err().code, "invalid_request");
    }

    #[test]
    fn another_content_type_is_refused() {
        let req = request("text/plain", r#"{"email":"a"}"#);
        assert_eq!(req.json::<Body>().unwrap_err().status, 415);
    }

    #[test]
    fn a_body_over_16_kib_is_too_large() {
        let big = format!(r#"{{"email":"{}"}}"#, "a".repeat(MAX_BODY_BYTES));
        let req = request("application/json", &big);
        assert_eq!(req.json::<Body>().unwrap_err().code, "payload_too_large");
    }

    #[test]
    fn query_parameters_are_percent_decoded() {
        let mut req = request("application/json", "");
        req.query = Some("limit=5&token=a%2Eb%2bc+d".into());
        assert_eq!(req.query_param("token").unwrap(), "a.b+c d");
        assert_eq!(req.query_param("limit").unwrap(), "5");
        assert!(req.query_param("missing").is_none());
    }

    #[test]
    fn a_percent_sign_that_is_no_escape_stays_as_written() {
        // `u8::from_str_radix` accepts a sign: "%+1" once decoded to byte 0x01.
        let mut req = request("application/json", "");
        req.query = Some("cursor=%+1&x=%zz&y=100%".into());
        assert_eq!(req.query_param("cursor").unwrap(), "% 1");
        assert_eq!(req.query_param("x").unwrap(), "%zz");
        assert_eq!(req.query_param("y").unwrap(), "100%");
    }

    #[test]
    fn a_rate_limited_problem_carries_retry_after() {
        let response = problem(&Problem::rate_limited(30));
        assert_eq!(response.headers()[RETRY_AFTER], "30");
        assert_eq!(response.headers()[CONTENT_TYPE], "application/problem+json");
    }
}
