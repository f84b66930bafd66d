//! The web session's cookies: read from a request's `Cookie` header, written as
//! `__Host-` cookies (Secure, no Domain, Path=/), which a subdomain or a plain-http page
//! cannot set or overwrite, and which scripts cannot read (HttpOnly).

use http::HeaderMap;
use http::header::COOKIE;

/// The access token of the web session.
pub const ACCESS: &str = "__Host-access";
/// The refresh token of the web session (prefixed `1.` when "remember me" was asked for).
pub const REFRESH: &str = "__Host-refresh";
/// The CSRF token every form repeats.
pub const CSRF: &str = "__Host-csrf";
/// The pending two-step challenge.
pub const MFA: &str = "__Host-mfa";
/// The address the check-email page speaks of.
pub const PENDING_EMAIL: &str = "__Host-pending-email";

/// The value of the cookie `name` in the request, if it is there once. A name sent twice
/// is ignored: only a browser's own jar is trusted, and it never holds two `__Host-`
/// cookies of one name for one path.
pub fn get<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    let mut found = headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|line| line.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(|(key, _)| *key == name)
        .map(|(_, value)| value.trim());
    let first = found.next()?;
    found.next().is_none().then_some(first)
}

/// How long a cookie lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lifetime {
    /// Until the browser ends its session.
    Browser,
    /// This many seconds.
    Seconds(i64),
}

/// A `Set-Cookie` value for a `__Host-` cookie: HttpOnly, Secure, SameSite=Lax, Path=/.
/// Lax, not Strict: the emailed links and a return from another site land signed in.
/// `value` must be cookie-safe (the callers pass base64url text or tokens).
pub fn set(name: &str, value: &str, lifetime: Lifetime) -> String {
    debug_assert!(name.starts_with("__Host-"));
    let mut cookie = format!("{name}={value}; Path=/; Secure; HttpOnly; SameSite=Lax");
    if let Lifetime::Seconds(seconds) = lifetime {
        cookie.push_str(&format!("; Max-Age={}", seconds.max(0)));
    }
    cookie
}

/// A `Set-Cookie` value that removes the cookie.
pub fn clear(name: &str) -> String {
    set(name, "", Lifetime::Seconds(0))
}

/// Whether `value` may be a cookie's value as written here (RFC 6265 `cookie-octet`s).
pub fn is_cookie_safe(value: &str) -> bool {
    value
        .bytes()
        .all(|b| b.is_ascii_graphic() && !matches!(b, b'"' | b',' | b';' | b'\\'))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(lines: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for line in lines {
            headers.append(COOKIE, HeaderValue::from_str(line).unwrap());
        }
        headers
    }

    #[test]
    fn a_cookie_is_found_among_others_in_any_cookie_header() {
        let headers = headers(&["a=1; __Host-csrf=abc", "b=2"]);
        assert_eq!(get(&headers, CSRF), Some("abc"));
        assert_eq!(get(&headers, "b"), Some("2"));
        assert_eq!(get(&headers, ACCESS), None);
    }

    #[test]
    fn a_cookie_sent_twice_is_not_trusted() {
        let headers = headers(&["__Host-csrf=abc; __Host-csrf=def"]);
        assert_eq!(get(&headers, CSRF), None);
    }

    #[test]
    fn cookies_are_host_only_secure_http_only_and_lax() {
        let cookie = set(ACCESS, "token", Lifetime::Browser);
        assert_eq!(
            cookie,
            "__Host-access=token; Path=/; Secure; HttpOnly; SameSite=Lax"
        );
        assert!(!cookie.contains("Domain"));
        assert!(set(REFRESH, "t", Lifetime::Seconds(60)).ends_with("; Max-Age=60"));
        assert!(clear(MFA).ends_with("; Max-Age=0"));
    }

    #[test]
    fn only_cookie_octets_are_cookie_safe() {
        assert!(is_cookie_safe("abc-_.~1"));
        for unsafe_value in ["a b", "a;b", "a,b", "a\"b", "a\\b", "é"] {
            assert!(!is_cookie_safe(unsafe_value), "{unsafe_value}");
        }
    }
}
