//! The headers every page carries: a strict Content-Security-Policy (our own script and
//! style only, nothing from another origin, no framing), no referrer (some pages carry a
//! token in their URL), no sniffing, and no caching of anything but the static assets.

use http::HeaderMap;
use http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, HeaderValue, REFERRER_POLICY,
    X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};

/// The policy of every page: the QR code is inline SVG markup (no `data:` script), and
/// the download of backup codes is a `data:` link.
pub const CONTENT_SECURITY_POLICY_VALUE: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; \
     base-uri 'none'";

/// Whether the answer may be cached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Caching {
    /// A page: it may show a secret, a token or the person's own data.
    NoStore,
    /// A static asset (style sheet, script).
    Asset,
}

/// Adds the page headers to `headers`, with `content_type`.
pub fn apply(headers: &mut HeaderMap, content_type: &'static str, caching: Caching) {
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY_VALUE),
    );
    headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    let cache = match caching {
        Caching::NoStore => "no-store",
        Caching::Asset => "public, max-age=3600",
    };
    headers.insert(CACHE_CONTROL, HeaderValue::from_static(cache));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_page_forbids_framing_foreign_code_referrers_and_caching() {
        let mut headers = HeaderMap::new();
        apply(&mut headers, "text/html; charset=utf-8", Caching::NoStore);
        let csp = headers[CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap_or_default();
        assert!(csp.contains("frame-ancestors 'none'"));
        assert!(csp.contains("default-src 'none'"));
        assert!(!csp.contains("unsafe-inline") && !csp.contains("http"));
        assert_eq!(headers[REFERRER_POLICY], "no-referrer");
        assert_eq!(headers[CACHE_CONTROL], "no-store");
        assert_eq!(headers[X_FRAME_OPTIONS], "DENY");
    }
}
