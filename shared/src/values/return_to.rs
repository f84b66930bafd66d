//! Where a login may send the browser afterwards (the web pages' `return_to` and a
//! sign-in with Google or Apple's): a path of this site, or a URL whose origin is in the
//! configured allow-list; never an open redirect.

/// `input` as a place to go back to, or `None` (another site, `//host`, `/\\host`, a
/// scheme, control characters), and the caller uses its default.
pub fn check(input: &str, own_origin: &str, allowed_origins: &[String]) -> Option<String> {
    if input.is_empty() || input.len() > 1_024 || input.chars().any(char::is_control) {
        return None;
    }
    if input.starts_with('/') {
        // `//host` and `/\host` are other sites to a browser.
        let second = input.as_bytes().get(1).copied();
        if matches!(second, Some(b'/' | b'\\')) {
            return None;
        }
        return Some(input.to_owned());
    }
    let url = url::Url::parse(input).ok()?;
    let origin = url.origin().ascii_serialization();
    let allowed = origin == own_origin || allowed_origins.contains(&origin);
    (allowed && url.username().is_empty() && url.password().is_none()).then(|| url.into())
}
