//! Page weight: every web page as a first visit with an empty cache fetches it from the
//! release `dev-server` (the same pages the `web` function serves): the page's HTML, and
//! every subresource it names (the style sheet and the script), each counted with its
//! response head, uncompressed and gzipped (`gzip -6`, what a CDN's compression is
//! close to). A request to another origin fails the run, as does a page whose
//! `Content-Security-Policy` would allow one.
//!
//! The journey is a person's: sign up, the check-email page, the emailed link's page, log
//! in, the security settings, an authenticator set up (its QR code page and the backup
//! codes), log out, the two-step page, and the pages anyone can open.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use anyhow::{Context, bail};
use serde_json::{Value, json};

use crate::http::{self, Exchange};
use crate::throughput::start_server;

pub struct Options {
    pub server: PathBuf,
    pub work_dir: PathBuf,
    pub core: usize,
}

/// The budget of one page, its subresources included (issue 15).
pub const BUDGET_BYTES: u64 = 30 * 1024;

const EMAIL: &str = "page.weight@example.com";
const PASSWORD: &str = "quartz-tangerine-bench-2024";

/// A browser's cookie jar for one site.
#[derive(Default)]
struct Browser {
    address: Option<SocketAddr>,
    cookies: BTreeMap<String, String>,
}

impl Browser {
    fn address(&self) -> SocketAddr {
        self.address.unwrap_or_else(|| ([127, 0, 0, 1], 0).into())
    }

    fn origin(&self) -> String {
        format!("http://{}", self.address())
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(name, value)| format!("{name}={value}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// Keeps (or, with an empty value, forgets) what the answer's `Set-Cookie`s say.
    fn remember(&mut self, answer: &Exchange) {
        for cookie in answer.all("set-cookie") {
            let pair = cookie.split(';').next().unwrap_or_default();
            if let Some((name, value)) = pair.split_once('=') {
                if value.is_empty() {
                    self.cookies.remove(name.trim());
                } else {
                    self.cookies
                        .insert(name.trim().to_owned(), value.trim().to_owned());
                }
            }
        }
    }

    fn get(&mut self, path: &str) -> anyhow::Result<Exchange> {
        let cookies = self.cookie_header();
        let mut headers = vec![("Accept", "text/html")];
        if !cookies.is_empty() {
            headers.push(("Cookie", cookies.as_str()));
        }
        let answer = http::send(self.address(), "GET", path, &headers, b"")?;
        self.remember(&answer);
        Ok(answer)
    }

    /// Posts a form as the browser does, with the page's CSRF token.
    fn post(&mut self, path: &str, form: &[(&str, &str)]) -> anyhow::Result<Exchange> {
        let csrf = self
            .cookies
            .get("__Host-csrf")
            .cloned()
            .context("no CSRF cookie yet: visit a page first")?;
        let body = std::iter::once(("csrf", csrf.as_str()))
            .chain(form.iter().copied())
            .map(|(name, value)| format!("{name}={}", accounts::web::percent_encode(value)))
            .collect::<Vec<_>>()
            .join("&");
        let cookies = self.cookie_header();
        let origin = self.origin();
        let headers = [
            ("Accept", "text/html"),
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("Origin", origin.as_str()),
            ("Sec-Fetch-Site", "same-origin"),
            ("Cookie", cookies.as_str()),
        ];
        let answer = http::send(self.address(), "POST", path, &headers, body.as_bytes())?;
        self.remember(&answer);
        Ok(answer)
    }
}

fn expect(answer: &Exchange, status: u16, what: &str) -> anyhow::Result<()> {
    if answer.status != status {
        bail!(
            "{what}: expected {status}, got {}: {}",
            answer.status,
            String::from_utf8_lossy(&answer.body)
        );
    }
    Ok(())
}

fn expect_redirect(answer: &Exchange, to: &str, what: &str) -> anyhow::Result<()> {
    expect(answer, 303, what)?;
    let location = answer.header("location").unwrap_or_default();
    if !location.starts_with(to) {
        bail!("{what}: redirected to {location:?}, not {to}");
    }
    Ok(())
}

/// The bytes `gzip -6` makes of `bytes`.
fn gzipped_size(bytes: &[u8]) -> anyhow::Result<u64> {
    let mut child = Command::new("gzip")
        .args(["-6", "-c", "-n"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .context("running gzip")?;
    child
        .stdin
        .take()
        .context("gzip's stdin")?
        .write_all(bytes)?;
    let output = child.wait_with_output()?;
    if !output.status.success() {
        bail!("gzip failed");
    }
    Ok(output.stdout.len() as u64)
}

/// `(tag name, attributes)` of every start tag of an HTML document (attribute values
/// in double quotes, as the templates write them).
fn start_tags(html: &str) -> Vec<(String, BTreeMap<String, String>)> {
    let mut tags = Vec::new();
    let mut rest = html;
    while let Some(open) = rest.find('<') {
        rest = &rest[open + 1..];
        let Some(close) = rest.find('>') else { break };
        let inside = &rest[..close];
        rest = &rest[close + 1..];
        if inside.starts_with(['/', '!', '?']) {
            continue;
        }
        let name: String = inside
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect::<String>()
            .to_ascii_lowercase();
        let mut attributes = BTreeMap::new();
        let mut text = &inside[name.len()..];
        while let Some(eq) = text.find("=\"") {
            let key = text[..eq]
                .rsplit(|c: char| c.is_whitespace())
                .next()
                .unwrap_or_default()
                .to_ascii_lowercase();
            let after = &text[eq + 2..];
            let end = after.find('"').unwrap_or(after.len());
            attributes.insert(key, after[..end].to_owned());
            text = &after[(end + 1).min(after.len())..];
        }
        tags.push((name, attributes));
    }
    tags
}

/// The URLs a browser fetches to render the page: style sheets, scripts, images, frames
/// and the like (links and form targets are not fetched).
fn subresources(html: &str) -> Vec<String> {
    let mut found = Vec::new();
    for (name, attributes) in start_tags(html) {
        let url = match name.as_str() {
            "link" => {
                let rel = attributes.get("rel").cloned().unwrap_or_default();
                let fetched = rel.split_whitespace().any(|r| {
                    matches!(
                        r,
                        "stylesheet" | "icon" | "preload" | "modulepreload" | "manifest"
                    )
                });
                fetched.then(|| attributes.get("href").cloned()).flatten()
            }
            "script" | "img" | "iframe" | "source" | "audio" | "video" | "embed" | "track"
            | "input" => attributes.get("src").cloned(),
            "object" => attributes.get("data").cloned(),
            _ => None,
        };
        if let Some(url) = url {
            found.push(url);
        }
    }
    found
}

/// Whether `url`, as written in a page of `origin`, is fetched from that origin (or
/// needs no fetch at all).
fn is_same_origin(url: &str, origin: &str) -> bool {
    if url.starts_with("data:") {
        return true;
    }
    if url.starts_with("//") || url.starts_with("/\\") {
        return false;
    }
    if url.contains("://") {
        return url == origin || url.starts_with(&format!("{origin}/"));
    }
    // A path or a relative reference (no scheme before a `/`, `?` or `#`): resolved
    // against the page, same origin.
    match url.find(':') {
        None => true,
        Some(colon) => url[..colon].contains(['/', '?', '#']),
    }
}

/// Every `url(...)` and `@import` of a style sheet.
fn css_references(css: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = css;
    while let Some(at) = rest.find("url(") {
        rest = &rest[at + 4..];
        let end = rest.find(')').unwrap_or(rest.len());
        found.push(rest[..end].trim().trim_matches(['"', '\'']).to_owned());
    }
    let mut rest = css;
    while let Some(at) = rest.find("@import") {
        rest = &rest[at + 7..];
        let end = rest.find(';').unwrap_or(rest.len());
        found.push(rest[..end].trim().trim_matches(['"', '\'']).to_owned());
    }
    found
}

/// What a page's CSP allows to be fetched from elsewhere: every source of its fetch
/// directives that is neither a keyword nor `data:`.
fn csp_foreign_sources(csp: &str) -> Vec<String> {
    csp.split(';')
        .flat_map(|directive| {
            let mut words = directive.split_whitespace();
            let name = words.next().unwrap_or_default().to_owned();
            let fetches = name.ends_with("-src");
            words
                .filter(move |_| fetches)
                .filter(|source| !source.starts_with('\'') && *source != "data:")
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// One fetched response, weighed.
fn weigh(answer: &Exchange) -> anyhow::Result<Value> {
    Ok(json!({
        "head_bytes": answer.head.len(),
        "body_bytes": answer.body.len(),
        "body_gzip_bytes": gzipped_size(&answer.body)?,
    }))
}

/// Weighs the page `answer` is (already fetched by `browser`): the page, then each of its
/// subresources fetched as a first visit would.
fn page(browser: &mut Browser, label: &str, answer: &Exchange) -> anyhow::Result<Value> {
    let html = String::from_utf8_lossy(&answer.body).into_owned();
    let origin = browser.origin();
    let csp = answer
        .header("content-security-policy")
        .with_context(|| format!("{label}: no Content-Security-Policy"))?;
    let foreign = csp_foreign_sources(csp);
    if !foreign.is_empty() {
        bail!("{label}: the CSP allows fetches from {foreign:?}");
    }
    let mut assets = Vec::new();
    let mut urls = subresources(&html);
    urls.sort();
    urls.dedup();
    for url in &urls {
        if !is_same_origin(url, &origin) {
            bail!("{label}: a request to another origin: {url}");
        }
        if url.starts_with("data:") {
            continue;
        }
        let path = url.strip_prefix(&origin).unwrap_or(url);
        let asset = browser.get(path)?;
        expect(&asset, 200, &format!("{label}: {path}"))?;
        if path.ends_with(".css") {
            for reference in css_references(&String::from_utf8_lossy(&asset.body)) {
                if !is_same_origin(&reference, &origin) {
                    bail!("{label}: {path} refers to another origin: {reference}");
                }
                if !reference.starts_with("data:") {
                    bail!(
                        "{label}: {path} fetches {reference}, which this benchmark does not weigh yet"
                    );
                }
            }
        }
        let mut weighed = weigh(&asset)?;
        weighed["path"] = json!(path);
        assets.push(weighed);
    }
    let html_weight = weigh(answer)?;
    let sum = |key: &str| -> u64 {
        html_weight[key].as_u64().unwrap_or(0)
            + assets
                .iter()
                .map(|a| a[key].as_u64().unwrap_or(0))
                .sum::<u64>()
    };
    let total = sum("head_bytes") + sum("body_bytes");
    let total_gzip = sum("head_bytes") + sum("body_gzip_bytes");
    eprintln!("bench: {label}: {total} bytes ({total_gzip} gzipped)");
    Ok(json!({
        "page": label,
        "status": answer.status,
        "html": html_weight,
        "assets": assets,
        "requests": 1 + assets.len(),
        "foreign_requests": 0,
        "total_bytes": total,
        "total_gzip_bytes": total_gzip,
        "within_budget": total <= BUDGET_BYTES,
    }))
}

/// The link to `page` in a mail to `to` (the journey mails each kind once), as a path
/// and query.
fn mailed_link(address: SocketAddr, to: &str, page: &str) -> anyhow::Result<String> {
    let mails = http::request(address, "GET", "/dev/mail.json", None)?.json()?;
    let marker = format!("{page}?token=");
    mails
        .as_array()
        .into_iter()
        .flatten()
        .filter(|mail| mail["to"].as_str().is_some_and(|t| t.contains(to)))
        .filter_map(|mail| {
            let text = mail["text"].as_str()?;
            let start = text.find(&marker)?;
            Some(
                text[start..]
                    .chars()
                    .take_while(|c| !c.is_whitespace())
                    .collect::<String>(),
            )
        })
        .next()
        .with_context(|| format!("no {page} link for {to} in /dev/mail.json"))
}

/// The text of the element whose `id` is `id` (its first text, up to the next tag).
fn text_of(html: &str, id: &str) -> Option<String> {
    let start = html.find(&format!("id=\"{id}\""))?;
    let after = &html[start..];
    let open = after.find('>')? + 1;
    let end = after[open..].find('<')?;
    Some(after[open..open + end].trim().to_owned())
}

/// Bytes of a base32 text (RFC 4648; spaces and padding ignored).
fn base32_bytes(text: &str) -> anyhow::Result<Vec<u8>> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut bits: u64 = 0;
    let mut count = 0;
    let mut bytes = Vec::new();
    for c in text
        .bytes()
        .filter(|c| !c.is_ascii_whitespace() && *c != b'=')
    {
        let value = ALPHABET
            .iter()
            .position(|&a| a == c.to_ascii_uppercase())
            .with_context(|| format!("{text:?} is not base32"))?;
        bits = (bits << 5) | value as u64;
        count += 5;
        if count >= 8 {
            count -= 8;
            bytes.push((bits >> count) as u8);
        }
    }
    Ok(bytes)
}

fn totp_code(secret_base32: &str) -> anyhow::Result<String> {
    let secret =
        accounts::credentials::totp::TotpSecret::from_bytes(&base32_bytes(secret_base32)?)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs() as i64;
    Ok(accounts::credentials::totp::code_at(&secret, now)?
        .expose()
        .to_owned())
}

/// Walks the journey and weighs every page on the way.
pub fn run(options: &Options) -> anyhow::Result<Value> {
    std::fs::create_dir_all(&options.work_dir)?;
    let server = start_server(&options.server, &options.work_dir, options.core)?;
    let mut browser = Browser {
        address: Some(server.address),
        ..Browser::default()
    };
    let mut pages = Vec::new();

    // Signing up, and the check-email page it leads to.
    let signup = browser.get("/signup")?;
    expect(&signup, 200, "GET /signup")?;
    pages.push(page(&mut browser, "/signup", &signup)?);
    let created = browser.post(
        "/signup",
        &[
            ("full_name", "Page Weight"),
            ("email", EMAIL),
            ("password", PASSWORD),
            ("account_type", "freelancer"),
            ("username", ""),
        ],
    )?;
    expect_redirect(&created, "/check-email", "POST /signup")?;
    let check = browser.get("/check-email")?;
    expect(&check, 200, "GET /check-email")?;
    pages.push(page(&mut browser, "/check-email (after a signup)", &check)?);

    // The emailed link's page, and confirming.
    let link = mailed_link(server.address, EMAIL, "/verify-email")?;
    let confirm = browser.get(&link)?;
    expect(&confirm, 200, "GET /verify-email")?;
    pages.push(page(&mut browser, "/verify-email?token=...", &confirm)?);
    let token = link.split("token=").nth(1).unwrap_or_default().to_owned();
    let confirmed = browser.post("/verify-email", &[("token", &token)])?;
    expect(&confirmed, 200, "POST /verify-email")?;
    pages.push(page(
        &mut browser,
        "POST /verify-email (confirmed)",
        &confirmed,
    )?);

    // Logging in, and the security settings.
    let login = browser.get("/login")?;
    expect(&login, 200, "GET /login")?;
    pages.push(page(&mut browser, "/login", &login)?);
    let signed_in = browser.post("/login", &[("login", EMAIL), ("password", PASSWORD)])?;
    expect_redirect(&signed_in, "/account/security", "POST /login")?;
    let security = browser.get("/account/security")?;
    expect(&security, 200, "GET /account/security")?;
    pages.push(page(
        &mut browser,
        "/account/security (signed in)",
        &security,
    )?);

    // An authenticator: its set-up page (QR code and key), then the backup codes.
    let setup = browser.post(
        "/account/security/totp/setup",
        &[("current_password", PASSWORD)],
    )?;
    expect(&setup, 200, "POST /account/security/totp/setup")?;
    pages.push(page(
        &mut browser,
        "POST /account/security/totp/setup",
        &setup,
    )?);
    let secret = text_of(&String::from_utf8_lossy(&setup.body), "totp-secret")
        .context("no #totp-secret on the set-up page")?;
    let codes = browser.post(
        "/account/security/totp/confirm",
        &[("code", &totp_code(&secret)?)],
    )?;
    expect(&codes, 200, "POST /account/security/totp/confirm")?;
    pages.push(page(
        &mut browser,
        "POST /account/security/totp/confirm (backup codes)",
        &codes,
    )?);
    let security = browser.get("/account/security")?;
    expect(&security, 200, "GET /account/security with two-step")?;
    pages.push(page(
        &mut browser,
        "/account/security (signed in, two-step on)",
        &security,
    )?);

    // Logging out, then in again: the two-step page.
    let out = browser.post("/logout", &[])?;
    expect_redirect(&out, "/login", "POST /logout")?;
    let challenged = browser.post("/login", &[("login", EMAIL), ("password", PASSWORD)])?;
    expect_redirect(&challenged, "/login/two-step", "POST /login with two-step")?;
    let two_step = browser.get("/login/two-step")?;
    expect(&two_step, 200, "GET /login/two-step")?;
    pages.push(page(&mut browser, "/login/two-step", &two_step)?);

    // The pages anyone can open.
    for (path, status) in [
        ("/forgot-password", 200),
        ("/forgot-password/sent", 200),
        ("/forgot-security-answer", 200),
        ("/reset-password?token=x", 200),
        ("/reset-security-question?token=x", 200),
        ("/no-such-page", 404),
    ] {
        let answer = browser.get(path)?;
        expect(&answer, status, &format!("GET {path}"))?;
        let label = if status == 404 {
            format!("{path} (the 404 page)")
        } else {
            path.to_owned()
        };
        pages.push(page(&mut browser, &label, &answer)?);
    }
    drop(server);
    Ok(json!({
        "budget_bytes": BUDGET_BYTES,
        "server": options.server.display().to_string(),
        "pages": pages,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subresources_are_what_a_browser_fetches() {
        let html = r#"<link rel="stylesheet" href="/assets/app.css"><a href="https://x.test/">
            <script src="/assets/app.js" defer></script><img alt="" src="data:image/svg+xml,x">
            <link rel="canonical" href="https://elsewhere.test/">"#;
        assert_eq!(
            subresources(html),
            ["/assets/app.css", "/assets/app.js", "data:image/svg+xml,x"]
        );
    }

    #[test]
    fn only_own_paths_and_data_are_same_origin() {
        let origin = "http://127.0.0.1:3000";
        for url in [
            "/assets/app.css",
            "data:image/png;base64,AA",
            "http://127.0.0.1:3000/a",
        ] {
            assert!(is_same_origin(url, origin), "{url}");
        }
        for url in [
            "//cdn.test/x.js",
            "https://cdn.test/x.js",
            "http://127.0.0.1:3001/a",
            "javascript:alert(1)",
        ] {
            assert!(!is_same_origin(url, origin), "{url}");
        }
    }

    #[test]
    fn a_csp_allowing_another_host_is_seen() {
        let own = "default-src 'none'; script-src 'self'; img-src 'self' data:";
        assert!(csp_foreign_sources(own).is_empty());
        let foreign = "default-src 'none'; script-src 'self' https://cdn.test";
        assert_eq!(csp_foreign_sources(foreign), ["https://cdn.test"]);
    }
}
