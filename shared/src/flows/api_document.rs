//! The API's own contract as a route: `GET /v1/openapi.json` serves `docs/openapi.yaml`,
//! converted to JSON when the crate is built (`shared/build.rs`).

use bytes::Bytes;
use http::HeaderValue;
use http::header::{CACHE_CONTROL, CONTENT_TYPE};

use crate::http::ApiResponse;

/// The OpenAPI 3.1 document, as compact JSON.
pub const OPENAPI_JSON: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/openapi.json"));

/// `GET /v1/openapi.json`: public and the same for everyone, so it may be cached.
pub fn openapi() -> ApiResponse {
    let mut response = http::Response::new(Bytes::from_static(OPENAPI_JSON));
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(
        CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    response
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_document_is_openapi_3_1_json() {
        let document: serde_json::Value = serde_json::from_slice(OPENAPI_JSON).unwrap();
        assert_eq!(document["openapi"], "3.1.0");
        assert!(document["paths"]["/v1/signup"]["post"].is_object());
    }
}
