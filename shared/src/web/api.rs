//! The pages' way into the product: an API request built in-process (a JSON body, the
//! visitor's IP and user agent, the web session's access token) and answered by the same
//! route table and flows as the API itself, never over HTTP. The answer comes back as
//! what a page needs of it: the status, the JSON body, the problem's code and fields,
//! `Retry-After`, and the next page's cursor.

use std::borrow::Cow;

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue, LINK, RETRY_AFTER};
use http::{HeaderMap, Method, StatusCode};
use serde_json::Value;

use crate::app::App;
use crate::http::ApiRequest;

/// One API answer, as a page reads it.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    /// The JSON body (`Null` for an empty one).
    pub body: Value,
    /// `Retry-After`, in seconds.
    pub retry_after: Option<u64>,
    /// The `cursor` of the `Link: <...>; rel="next"` header, if there is a next page.
    pub next_cursor: Option<String>,
}

impl Answer {
    pub fn is_success(&self) -> bool {
        self.status.is_success()
    }

    /// The problem's `code` (empty for a success).
    pub fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or_default()
    }

    /// The problem's field errors, as `(field, code)`.
    pub fn field_errors(&self) -> Vec<(String, String)> {
        self.body["errors"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|error| {
                Some((
                    error["field"].as_str()?.to_owned(),
                    error["code"].as_str()?.to_owned(),
                ))
            })
            .collect()
    }

    /// A string member of the body.
    pub fn text(&self, name: &str) -> Option<String> {
        self.body[name].as_str().map(str::to_owned)
    }
}

/// An API request for the route `method path?query`, sent on behalf of the visitor
/// whose request `from` is: same IP and user agent, `access_token` as its bearer token.
pub struct Call<'a> {
    pub method: Method,
    pub path: Cow<'a, str>,
    pub query: Option<String>,
    pub body: Option<Value>,
    pub access_token: Option<&'a str>,
}

impl<'a> Call<'a> {
    /// A POST of `body` (`Null`: no body).
    pub fn post(path: impl Into<Cow<'a, str>>, body: Value) -> Call<'a> {
        Call {
            method: Method::POST,
            path: path.into(),
            query: None,
            body: (!body.is_null()).then_some(body),
            access_token: None,
        }
    }

    pub fn get(path: impl Into<Cow<'a, str>>) -> Call<'a> {
        Call {
            method: Method::GET,
            path: path.into(),
            query: None,
            body: None,
            access_token: None,
        }
    }

    pub fn with_method(mut self, method: Method) -> Call<'a> {
        self.method = method;
        self
    }

    pub fn with_query(mut self, query: String) -> Call<'a> {
        self.query = Some(query);
        self
    }

    /// The call with the web session's access token as its bearer token.
    pub fn signed_in<'b>(self, access_token: &'b str) -> Call<'b>
    where
        'a: 'b,
    {
        Call {
            access_token: Some(access_token),
            ..self
        }
    }

    /// Sends the request through the route table, in-process.
    pub async fn send(self, app: &App, from: &ApiRequest) -> Answer {
        let mut headers = HeaderMap::new();
        if let Some(user_agent) = from.headers.get(http::header::USER_AGENT) {
            headers.insert(http::header::USER_AGENT, user_agent.clone());
        }
        let body = match &self.body {
            Some(body) => {
                headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                Bytes::from(serde_json::to_vec(body).unwrap_or_default())
            }
            None => Bytes::new(),
        };
        if let Some(token) = self.access_token
            && let Ok(value) = HeaderValue::from_str(&format!("Bearer {token}"))
        {
            headers.insert(AUTHORIZATION, value);
        }
        let mut request = ApiRequest::new(
            self.method,
            self.path.into_owned(),
            self.query,
            headers,
            body,
            from.client.ip,
        );
        // The user agent as the outer request had it (already cleaned and bounded).
        request.client = from.client.clone();
        let response = crate::routes::dispatch(app, None, request).await;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        let next_cursor = response
            .headers()
            .get(LINK)
            .and_then(|v| v.to_str().ok())
            .and_then(next_cursor_of);
        let body = if response.body().is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(response.body()).unwrap_or(Value::Null)
        };
        Answer {
            status,
            body,
            retry_after,
            next_cursor,
        }
    }
}

/// The `cursor` query parameter of a `Link: <url>; rel="next"` value.
fn next_cursor_of(link: &str) -> Option<String> {
    let (target, params) = link.split_once(';')?;
    if !params.contains("rel=\"next\"") {
        return None;
    }
    let target = target.trim().trim_start_matches('<').trim_end_matches('>');
    let query = target.split_once('?')?.1;
    crate::http::form_param(query, "cursor")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_pages_cursor_is_read_from_the_link_header() {
        assert_eq!(
            next_cursor_of("</v1/account/login-history?limit=20&cursor=abc%3D>; rel=\"next\"")
                .as_deref(),
            Some("abc=")
        );
        assert_eq!(next_cursor_of("</x?cursor=a>; rel=\"prev\""), None);
    }
}
