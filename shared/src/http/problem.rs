//! Errors as RFC 9457 problem documents, each with a stable machine `code`.

use http::StatusCode;
use serde::Serialize;
use serde_json::Value;

/// One field's problem inside a validation error.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: &'static str,
    pub code: &'static str,
}

impl FieldError {
    pub fn new(field: &'static str, code: &'static str) -> FieldError {
        FieldError { field, code }
    }
}

/// An error response: `application/problem+json` with a stable `code`.
#[derive(Clone, Debug, PartialEq)]
pub struct Problem {
    pub status: StatusCode,
    pub code: &'static str,
    pub detail: String,
    pub errors: Vec<FieldError>,
    /// Extra top-level members (e.g. `methods` on `mfa_required`).
    pub extra: serde_json::Map<String, Value>,
    /// Seconds for a `Retry-After` header.
    pub retry_after: Option<u64>,
}

impl Problem {
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Problem {
        Problem {
            status,
            code,
            detail: detail.into(),
            errors: Vec::new(),
            extra: serde_json::Map::new(),
            retry_after: None,
        }
    }

    pub fn bad_request(code: &'static str, detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::BAD_REQUEST, code, detail)
    }

    pub fn invalid_request(detail: impl Into<String>) -> Problem {
        Problem::bad_request("invalid_request", detail)
    }

    /// A validation error listing every field problem; its code names the first
    /// field's kind (`invalid_email`, `invalid_username`, `weak_password`, or
    /// `invalid_request` for anything else).
    pub fn validation(errors: Vec<FieldError>) -> Problem {
        let (code, detail) = match errors.first().map(|e| e.field) {
            Some("email" | "new_email") => ("invalid_email", "That is not a valid email address."),
            Some("username") => (
                "invalid_username",
                "Usernames are 3 to 30 letters, digits, dots, dashes or underscores.",
            ),
            Some("password" | "new_password") => (
                "weak_password",
                "Choose a password of 8 to 128 characters that is not common and does not contain your email or username.",
            ),
            Some("answer") => (
                "invalid_answer",
                "Answers need at least 3 characters and must not repeat your password, email or username.",
            ),
            _ => ("invalid_request", "Some fields are not valid."),
        };
        Problem::bad_request(code, detail).with_errors(errors)
    }

    pub fn not_found() -> Problem {
        Problem::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "There is nothing at this address.",
        )
    }

    pub fn method_not_allowed() -> Problem {
        Problem::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "This address does not accept that method.",
        )
    }

    pub fn rate_limited(retry_after_seconds: u64) -> Problem {
        let mut problem = Problem::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "Too many attempts. Please wait before trying again.",
        );
        problem.retry_after = Some(retry_after_seconds.max(1));
        problem
    }

    /// A failure that is ours, not the client's. The cause is logged here, once,
    /// and never sent to the client.
    pub fn internal(error: &anyhow::Error) -> Problem {
        tracing::error!(error = format!("{error:#}"), "request failed unexpectedly");
        Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "Something went wrong on our side. Please try again.",
        )
    }

    /// A transient failure of the database that outlasted the SDK's retries: the client
    /// may try again in a second, and nothing was left half done.
    pub fn unavailable(error: &anyhow::Error) -> Problem {
        tracing::warn!(
            error = format!("{error:#}"),
            "the database failed for a moment"
        );
        let mut problem = Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "The service is briefly unavailable. Please try again in a moment.",
        );
        problem.retry_after = Some(1);
        problem
    }

    pub fn with_errors(mut self, errors: Vec<FieldError>) -> Problem {
        self.errors = errors;
        self
    }

    pub fn with_extra(mut self, name: &str, value: Value) -> Problem {
        self.extra.insert(name.to_owned(), value);
        self
    }

    /// The standard reason phrase serves as the title: short and the same for every
    /// occurrence of a status, as RFC 9457 asks.
    pub fn title(&self) -> &'static str {
        self.status.canonical_reason().unwrap_or("Error")
    }

    /// The JSON body.
    pub fn body(&self) -> Value {
        let mut body = serde_json::Map::new();
        body.insert("type".into(), "about:blank".into());
        body.insert("title".into(), self.title().into());
        body.insert("status".into(), self.status.as_u16().into());
        body.insert("code".into(), self.code.into());
        body.insert("detail".into(), self.detail.clone().into());
        if !self.errors.is_empty() {
            body.insert(
                "errors".into(),
                serde_json::to_value(&self.errors).unwrap_or_default(),
            );
        }
        for (name, value) in &self.extra {
            body.insert(name.clone(), value.clone());
        }
        Value::Object(body)
    }
}

/// Every operation's error turns into a problem document.
impl From<anyhow::Error> for Problem {
    fn from(error: anyhow::Error) -> Problem {
        if crate::store::is_transient(&error) {
            Problem::unavailable(&error)
        } else {
            Problem::internal(&error)
        }
    }
}
