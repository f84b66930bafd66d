//! What stands between a page and a request from somewhere else: the CSRF token every
//! form repeats (double submit against a `__Host-` cookie, which no other site and no
//! subdomain can set), the `Origin` a browser sends with a form post, and the
//! `return_to` a login goes back to (never an open redirect).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::HeaderMap;
use subtle::ConstantTimeEq;

use crate::app::config::BaseUrl;

/// A fresh CSRF token: 128 bits from the OS, base64url (cookie- and form-safe).
pub fn new_csrf_token() -> anyhow::Result<String> {
    let bytes = crate::values::secret::random_bytes::<16>()?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// Whether a form's `csrf` field repeats the cookie's token (compared in constant time;
/// an empty or missing token never matches).
pub fn csrf_matches(cookie: Option<&str>, field: Option<&str>) -> bool {
    match (cookie, field) {
        (Some(cookie), Some(field)) if !cookie.is_empty() => {
            bool::from(cookie.as_bytes().ct_eq(field.as_bytes()))
        }
        _ => false,
    }
}

/// The origin (`scheme://host[:port]`) of the configured base URL, which every page is
/// served from.
pub fn origin_of(base: &BaseUrl) -> String {
    match url::Url::parse(&base.to_string()) {
        Ok(url) => url.origin().ascii_serialization(),
        Err(_) => String::new(),
    }
}

/// Whether a POST may come from one of our own pages: a browser sends `Origin` with every
/// form post and `Sec-Fetch-Site` with every request, and both name the other site for a
/// form on another site. A missing header is not proof of anything (the CSRF token is
/// what is required); a foreign one is proof enough to refuse.
///
/// `Origin: null` is what Chromium sends for a same-origin form post from a page served
/// with `Referrer-Policy: no-referrer` (every page here); it is taken only together with
/// `Sec-Fetch-Site: same-origin`, which the browser itself sets and no page can forge. A
/// `null` from a sandboxed frame or a `data:` page comes with `cross-site` and is refused.
pub fn same_origin_post(headers: &HeaderMap, own_origin: &str) -> bool {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let site = header("sec-fetch-site");
    let origin_ok = header("origin").is_none_or(|origin| {
        origin == own_origin || (origin == "null" && site == Some("same-origin"))
    });
    let site_ok = site.is_none_or(|site| matches!(site, "same-origin" | "none"));
    origin_ok && site_ok
}

/// Where a login may send the browser afterwards: a path of this site, or a URL whose
/// origin is in the configured allow-list. Anything else (another site, `//host`,
/// `/\host`, a scheme, control characters) is `None`, and the caller uses its default.
/// The rule is `values::return_to`'s, which a sign-in with Google or Apple shares.
pub fn return_to(input: &str, own_origin: &str, allowed_origins: &[String]) -> Option<String> {
    crate::values::return_to::check(input, own_origin, allowed_origins)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use http::HeaderValue;

    const OWN: &str = "https://app.example.test";

    #[test]
    fn a_csrf_token_matches_only_its_cookie() {
        let token = new_csrf_token().unwrap();
        assert_eq!(token.len(), 22);
        assert!(csrf_matches(Some(&token), Some(&token)));
        assert!(!csrf_matches(Some(&token), Some("other")));
        assert!(!csrf_matches(Some(&token), None));
        assert!(!csrf_matches(None, Some(&token)));
        assert!(!csrf_matches(Some(""), Some("")));
        assert_ne!(token, new_csrf_token().unwrap());
    }

    #[test]
    fn the_own_origin_is_the_base_urls_without_its_path() {
        let base = BaseUrl::parse("https://app.example.test/accounts").unwrap();
        assert_eq!(origin_of(&base), OWN);
        let local = BaseUrl::parse("http://localhost:3000").unwrap();
        assert_eq!(origin_of(&local), "http://localhost:3000");
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        headers
    }

    #[test]
    fn a_post_from_another_site_is_refused() {
        assert!(same_origin_post(&headers(&[("origin", OWN)]), OWN));
        assert!(same_origin_post(&headers(&[]), OWN));
        assert!(!same_origin_post(
            &headers(&[("origin", "https://evil.example")]),
            OWN
        ));
        assert!(!same_origin_post(&headers(&[("origin", "null")]), OWN));
        assert!(!same_origin_post(
            &headers(&[("origin", "null"), ("sec-fetch-site", "cross-site")]),
            OWN
        ));
        assert!(!same_origin_post(
            &headers(&[("origin", OWN), ("sec-fetch-site", "cross-site")]),
            OWN
        ));
        assert!(!same_origin_post(
            &headers(&[("sec-fetch-site", "same-site")]),
            OWN
        ));
    }

    #[test]
    fn a_post_chromium_sends_from_a_no_referrer_page_of_the_site_is_accepted() {
        assert!(same_origin_post(
            &headers(&[("origin", "null"), ("sec-fetch-site", "same-origin")]),
            OWN
        ));
    }

    #[test]
    fn return_to_never_leaves_for_a_site_not_allowed() {
        let allowed = vec!["https://marketplace.example".to_owned()];
        assert_eq!(
            return_to("/account/security?x=1", OWN, &allowed).as_deref(),
            Some("/account/security?x=1")
        );
        assert_eq!(
            return_to("https://marketplace.example/jobs", OWN, &allowed).as_deref(),
            Some("https://marketplace.example/jobs")
        );
        for refused in [
            "https://evil.example/",
            "//evil.example",
            "/\\evil.example",
            "javascript:alert(1)",
            "https://marketplace.example.evil.example/",
            "https://user@marketplace.example/",
            "/ok\nLocation: x",
            "",
        ] {
            assert_eq!(return_to(refused, OWN, &allowed), None, "{refused}");
        }
    }
}
