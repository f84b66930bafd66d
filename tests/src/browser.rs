//! Real Chromium for the end-to-end tests of the web pages (docs/web-pages.md), driven over
//! WebDriver: Debian's `chromium` and its matching `chromedriver` (`CHROMIUM`,
//! `CHROMEDRIVER`, by default `/usr/bin/chromium` and `/usr/bin/chromedriver`; the test
//! script installs both), and axe-core (`AXE_CORE_JS`, by default
//! `<workspace>/node_modules/axe-core/axe.min.js`, from `npm ci`).
//!
//! [`Browser::open`] starts a chromedriver of its own on a free port and a headless
//! Chromium session (a fresh profile: its own cookie jar); [`Browser::another`] opens a
//! second browser on the same chromedriver (a second device of the same person). Every
//! helper waits generously for what it needs (a two-core machine running other tests is
//! slow), and never sleeps a fixed time. Anything missing (a binary, axe-core) fails the
//! test with what to install: a skipped test would pass in CI.
//!
//! After every page a journey reaches, [`Browser::review`] runs axe-core on it (a violation
//! of serious or critical impact fails the test) and writes its screenshots, at desktop
//! (1280x900) and phone (375x800) widths, to `<workspace>/target/screenshots/<name>-desktop.png`
//! and `<name>-phone.png`, after checking that the page also reads at 320 px (no sideways
//! scrolling: WCAG 2.2's reflow).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fantoccini::cookies::Cookie;
use fantoccini::elements::Element;
use fantoccini::error::CmdError;
use fantoccini::wd::{TimeoutConfiguration, WebDriverCompatibleCommand};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

use crate::TestApp;

/// How long a page, an element or a script may take (a loaded two-core machine).
const PATIENCE: Duration = Duration::from_secs(60);
/// How long an element may take to appear on a page that has loaded (the pages are
/// rendered by the server: what is not there by then will not come).
const ELEMENT_PATIENCE: Duration = Duration::from_secs(15);
/// How often a wait looks again.
const POLL: Duration = Duration::from_millis(100);

/// The desktop viewport of the screenshots.
const DESKTOP: (u32, u32) = (1280, 900);
/// The phone viewport of the screenshots.
const PHONE: (u32, u32) = (375, 800);
/// The narrowest width a page must read at without sideways scrolling (WCAG 1.4.10).
const NARROWEST: (u32, u32) = (320, 800);
/// The tallest full-page screenshot.
const MAX_SCREENSHOT_HEIGHT: u64 = 6_000;

/// The workspace's root directory.
pub fn workspace_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests package is inside the workspace")
        .to_path_buf()
}

/// Where the screenshots go: `<workspace>/target/screenshots/`.
pub fn screenshots_dir() -> PathBuf {
    workspace_dir().join("target").join("screenshots")
}

/// A file a browser test cannot run without: `variable`'s value, or `default`. A missing
/// file fails the test with what to install.
fn required_file(variable: &str, default: &Path, install: &str) -> PathBuf {
    let path = std::env::var_os(variable)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| default.to_path_buf());
    assert!(
        path.is_file(),
        "{} is missing ({variable}): the browser tests need it, and fail rather than skip. \
         {install} (scripts/test.sh does it), or point {variable} at it.",
        path.display()
    );
    path
}

fn chromedriver_path() -> PathBuf {
    required_file(
        "CHROMEDRIVER",
        Path::new("/usr/bin/chromedriver"),
        "Install it with `apt-get install chromium chromium-driver`",
    )
}

fn chromium_path() -> PathBuf {
    required_file(
        "CHROMIUM",
        Path::new("/usr/bin/chromium"),
        "Install it with `apt-get install chromium chromium-driver`",
    )
}

/// The source of axe-core, read once per test binary.
fn axe_source() -> &'static str {
    static SOURCE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SOURCE.get_or_init(|| {
        let path = required_file(
            "AXE_CORE_JS",
            &workspace_dir().join("node_modules/axe-core/axe.min.js"),
            "Install it with `npm ci` at the workspace root (axe-core is in package-lock.json)",
        );
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    })
}

/// A chromedriver process of this test, in a process group of its own: dropping it kills
/// the group, so the Chromium processes it started end with it even when a test panics
/// before it closed its sessions.
pub struct ChromeDriver {
    child: Child,
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    log: PathBuf,
}

impl ChromeDriver {
    /// Starts chromedriver on a free port and waits until it is ready.
    pub async fn start() -> ChromeDriver {
        let binary = chromedriver_path();
        let logs = workspace_dir().join("target").join("browser-logs");
        std::fs::create_dir_all(&logs).expect("create target/browser-logs");
        let mut last_failure = String::new();
        // A port found free can be taken by someone else before chromedriver binds it:
        // then another one is tried.
        for _ in 0..5 {
            let port = free_port();
            let log = logs.join(format!("chromedriver-{port}.log"));
            let child = {
                use std::os::unix::process::CommandExt as _;
                Command::new(&binary)
                    .arg(format!("--port={port}"))
                    .arg(format!("--log-path={}", log.display()))
                    .arg("--log-level=WARNING")
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .process_group(0)
                    .spawn()
                    .unwrap_or_else(|e| panic!("start {}: {e}", binary.display()))
            };
            let mut driver = ChromeDriver {
                child,
                url: format!("http://127.0.0.1:{port}"),
                log,
            };
            match driver.wait_until_ready().await {
                Ok(()) => return driver,
                Err(failure) => last_failure = failure,
            }
        }
        panic!("chromedriver did not start: {last_failure}");
    }

    async fn wait_until_ready(&mut self) -> Result<(), String> {
        let http = reqwest::Client::new();
        let deadline = Instant::now() + PATIENCE;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("it exited ({status}): {}", self.log_text()));
            }
            let answer = http
                .get(format!("{}/status", self.url))
                .timeout(Duration::from_secs(5))
                .send()
                .await;
            if let Ok(answer) = answer
                && let Ok(status) = answer.json::<Value>().await
                && status["value"]["ready"] == true
            {
                return Ok(());
            }
            tokio::time::sleep(POLL).await;
        }
        Err(format!("not ready after {PATIENCE:?}: {}", self.log_text()))
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        // The whole group: chromedriver and every Chromium it started (by this group's id,
        // which is chromedriver's own pid).
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port nobody listens on now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free port")
}

/// A chromedriver command it alone knows: a Chrome DevTools Protocol call
/// (`POST /session/{id}/goog/cdp/execute`), for the viewport of the screenshots.
#[derive(Debug)]
struct DevTools {
    command: &'static str,
    params: Value,
}

impl WebDriverCompatibleCommand for DevTools {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/goog/cdp/execute",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _request_url: &url::Url) -> (http::Method, Option<String>) {
        let body = json!({ "cmd": self.command, "params": self.params });
        (http::Method::POST, Some(body.to_string()))
    }
}

/// One headless Chromium, signed in as whoever its cookies say, on one test server.
pub struct Browser {
    client: Client,
    /// The server's `APP_BASE_URL` (`http://localhost:<port>`).
    base_url: String,
    driver: Arc<ChromeDriver>,
}

/// A browser's failure: what it was doing, and where it was.
fn failed(what: &str, at: &str, error: impl std::fmt::Display) -> String {
    format!("browser: {what} failed at {at}: {error}")
}

/// An XPath string literal for `text` (which may hold either quote).
fn xpath_literal(text: &str) -> String {
    if !text.contains('\'') {
        format!("'{text}'")
    } else if !text.contains('"') {
        format!("\"{text}\"")
    } else {
        let parts: Vec<String> = text.split('\'').map(|p| format!("'{p}'")).collect();
        format!("concat({})", parts.join(", \"'\", "))
    }
}

/// A CSS selector of the `inner` elements inside what `scope` (a list of selectors
/// without commas in their strings) matches.
fn within(scope: &str, inner: &str) -> String {
    scope
        .split(", ")
        .map(|outer| format!("{outer} {inner}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A CSS attribute-value string for `text`.
fn css_string(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

impl Browser {
    /// A new browser (and its own chromedriver) on `app`'s pages; `app` must be a
    /// [`TestApp::spawn_for_browser`] server.
    pub async fn open(app: &TestApp) -> Browser {
        assert!(
            app.base_url.starts_with("http://localhost:"),
            "a browser needs a server made by TestApp::spawn_for_browser (its pages' origin is \
             http://localhost:<port>), not {}",
            app.base_url
        );
        let driver = Arc::new(ChromeDriver::start().await);
        Browser::on_driver(driver, &app.base_url).await
    }

    /// A second browser (another device, with a cookie jar of its own) on the same
    /// server and chromedriver.
    pub async fn another(&self) -> Browser {
        Browser::on_driver(self.driver.clone(), &self.base_url).await
    }

    async fn on_driver(driver: Arc<ChromeDriver>, base_url: &str) -> Browser {
        let chromium = chromium_path();
        let mut capabilities = serde_json::Map::new();
        capabilities.insert("browserName".into(), json!("chrome"));
        capabilities.insert("pageLoadStrategy".into(), json!("normal"));
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": chromium.display().to_string(),
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--no-first-run",
                    "--no-default-browser-check",
                    "--disable-extensions",
                    "--disable-background-networking",
                    "--disable-sync",
                    "--password-store=basic",
                    "--lang=en-US",
                    "--force-device-scale-factor=1",
                    format!("--window-size={},{}", DESKTOP.0, DESKTOP.1),
                ],
                "prefs": {
                    "credentials_enable_service": false,
                    "profile.password_manager_enabled": false,
                    "profile.password_manager_leak_detection": false,
                },
            }),
        );
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let mut last_error = String::new();
        // Starting Chromium on a loaded machine can fail once; a second try is fair.
        for _ in 0..3 {
            match ClientBuilder::new(connector.clone())
                .capabilities(capabilities.clone())
                .connect(&driver.url)
                .await
            {
                Ok(client) => {
                    client
                        .update_timeouts(TimeoutConfiguration::new(
                            Some(PATIENCE),
                            Some(PATIENCE),
                            Some(Duration::ZERO),
                        ))
                        .await
                        .expect("set the WebDriver timeouts");
                    return Browser {
                        client,
                        base_url: base_url.to_owned(),
                        driver,
                    };
                }
                Err(error) => last_error = error.to_string(),
            }
        }
        panic!(
            "browser: no Chromium session ({}): {last_error}\n{}",
            chromium.display(),
            driver.log_text()
        );
    }

    /// Ends the session (Chromium quits). Dropping the browser without it also ends
    /// Chromium, when its chromedriver is dropped.
    pub async fn close(self) {
        let _ = self.client.close().await;
    }

    /// The WebDriver client, for what the helpers do not cover.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The server's URL of `path` (`/login?x=1`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    async fn here(&self) -> String {
        self.client
            .current_url()
            .await
            .map(|u| u.to_string())
            .unwrap_or_else(|_| "(no page)".to_owned())
    }

    /// Opens `path` (`/login`) and waits until it has loaded.
    pub async fn goto(&self, path: &str) {
        let url = self.url(path);
        self.client
            .goto(&url)
            .await
            .unwrap_or_else(|e| panic!("{}", failed("goto", &url, e)));
        self.wait_until_loaded().await;
    }

    /// The current URL.
    pub async fn current_url(&self) -> url::Url {
        self.client
            .current_url()
            .await
            .unwrap_or_else(|e| panic!("browser: the current URL: {e}"))
    }

    /// The current URL's path (`/account/security`).
    pub async fn current_path(&self) -> String {
        self.current_url().await.path().to_owned()
    }

    /// The current URL's path and query (`/login?notice=verified`).
    pub async fn current_path_and_query(&self) -> String {
        let url = self.current_url().await;
        match url.query() {
            Some(query) => format!("{}?{query}", url.path()),
            None => url.path().to_owned(),
        }
    }

    /// The value of the current URL's query parameter `name`.
    pub async fn query_param(&self, name: &str) -> Option<String> {
        self.current_url()
            .await
            .query_pairs()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.into_owned())
    }

    /// The page's `<title>`.
    pub async fn title(&self) -> String {
        self.client
            .title()
            .await
            .unwrap_or_else(|e| panic!("browser: the title: {e}"))
    }

    /// The page's HTML as the browser holds it now.
    pub async fn source(&self) -> String {
        self.client
            .source()
            .await
            .unwrap_or_else(|e| panic!("browser: the page source: {e}"))
    }

    /// Runs `script` (a function body; `arguments` holds `args`) in the page.
    pub async fn run(&self, script: &str, args: Vec<Value>) -> Value {
        let at = self.here().await;
        self.client
            .execute(script, args)
            .await
            .unwrap_or_else(|e| panic!("{}", failed("a script", &at, e)))
    }

    /// Waits until the document has loaded (`readyState` is `complete`).
    async fn wait_until_loaded(&self) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let state = self
                .client
                .execute("return document.readyState", vec![])
                .await;
            if matches!(&state, Ok(Value::String(s)) if s == "complete") {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "browser: {} did not finish loading in {PATIENCE:?} ({state:?})",
                self.here().await
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// Does `act` (a click that submits a form or follows a link), then waits until a new
    /// document has replaced this one and has loaded.
    async fn navigating<F, Fut>(&self, what: &str, act: F)
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<(), CmdError>>,
    {
        let at = self.here().await;
        // A mark on this document's window: the next document has none.
        self.client
            .execute("window.__e2eOldDocument = true; return null", vec![])
            .await
            .unwrap_or_else(|e| panic!("{}", failed(what, &at, e)));
        act()
            .await
            .unwrap_or_else(|e| panic!("{}", failed(what, &at, e)));
        let deadline = Instant::now() + PATIENCE;
        loop {
            let state = self
                .client
                .execute(
                    "return window.__e2eOldDocument === true ? 'old' : document.readyState",
                    vec![],
                )
                .await;
            if matches!(&state, Ok(Value::String(s)) if s == "complete") {
                return;
            }
            if Instant::now() >= deadline {
                // The usual cause: the browser's own validation held the form back.
                let invalid = self
                    .client
                    .execute(
                        "return [...document.querySelectorAll(':invalid')]\n\
                           .filter(e => e.name)\n\
                           .map(e => e.name + ': ' + e.validationMessage)",
                        vec![],
                    )
                    .await
                    .unwrap_or(Value::Null);
                panic!(
                    "browser: {what} at {at} led to no new page in {PATIENCE:?} (now at {}, \
                     {state:?}; fields the browser finds invalid: {invalid})",
                    self.here().await
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits for an element matching `css` and returns it.
    pub async fn find(&self, css: &str) -> Element {
        match self
            .client
            .wait()
            .at_most(ELEMENT_PATIENCE)
            .every(POLL)
            .for_element(Locator::Css(css))
            .await
        {
            Ok(element) => element,
            Err(error) => panic!(
                "{}\n--- page ---\n{}",
                failed(&format!("finding {css}"), &self.here().await, error),
                self.source().await
            ),
        }
    }

    /// Every element matching `css` now (no wait).
    pub async fn find_all(&self, css: &str) -> Vec<Element> {
        self.client
            .find_all(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("browser: finding {css}: {e}"))
    }

    /// Whether an element matches `css` now (no wait).
    pub async fn exists(&self, css: &str) -> bool {
        !self.find_all(css).await.is_empty()
    }

    /// The text of the first element matching `css` (waiting for it).
    pub async fn text_of(&self, css: &str) -> String {
        let element = self.find(css).await;
        element
            .text()
            .await
            .unwrap_or_else(|e| panic!("browser: the text of {css}: {e}"))
    }

    /// The texts of every element matching `css` now.
    pub async fn texts_of(&self, css: &str) -> Vec<String> {
        let mut texts = Vec::new();
        for element in self.find_all(css).await {
            texts.push(
                element
                    .text()
                    .await
                    .unwrap_or_else(|e| panic!("browser: the text of {css}: {e}")),
            );
        }
        texts
    }

    /// The `name` attribute of the first element matching `css`.
    pub async fn attribute_of(&self, css: &str, name: &str) -> Option<String> {
        self.find(css)
            .await
            .attr(name)
            .await
            .unwrap_or_else(|e| panic!("browser: attribute {name} of {css}: {e}"))
    }

    /// The one displayed element among `elements` (`what` names them in a failure).
    async fn the_displayed(&self, elements: Vec<Element>, what: &str) -> Element {
        let mut displayed = Vec::new();
        for element in elements {
            if element.is_displayed().await.unwrap_or(false) {
                displayed.push(element);
            }
        }
        match displayed.len() {
            1 => displayed.remove(0),
            0 => panic!(
                "browser: no visible {what} at {}\n--- page ---\n{}",
                self.here().await,
                self.source().await
            ),
            n => panic!(
                "browser: {n} visible {what} at {}: scope the action to a form with \
                 Browser::form",
                self.here().await
            ),
        }
    }

    /// Waits for a field named `name` inside `scope` (a CSS selector of its form, or
    /// the whole page), and returns the one that is visible.
    async fn field(&self, scope: &str, name: &str) -> Element {
        let css = within(scope, &format!("[name={}]", css_string(name)));
        self.find(&css).await;
        let all = self.find_all(&css).await;
        self.the_displayed(all, &format!("field {name:?}")).await
    }

    /// Sends `keys` to whatever has the focus, as a person at the keyboard would
    /// (`fantoccini::key::Key` values, such as `Key::Tab`, written as `char`s, or text).
    pub async fn press(&self, keys: &str) {
        let at = self.here().await;
        let focused = self
            .client
            .active_element()
            .await
            .unwrap_or_else(|e| panic!("{}", failed("finding the focus", &at, e)));
        focused
            .send_keys(keys)
            .await
            .unwrap_or_else(|e| panic!("{}", failed("pressing keys", &at, e)));
    }

    /// Sends `keys` to whatever has the focus (Enter in a form's field) and waits until
    /// the page it leads to has replaced this one and has loaded.
    pub async fn press_and_follow(&self, keys: &str) {
        let at = self.here().await;
        let focused = self
            .client
            .active_element()
            .await
            .unwrap_or_else(|e| panic!("{}", failed("finding the focus", &at, e)));
        self.navigating(&format!("pressing {keys:?}"), || focused.send_keys(keys))
            .await;
    }

    /// The `id` of the element that has the focus (empty for none).
    pub async fn focused_id(&self) -> String {
        self.run(
            "return document.activeElement ? document.activeElement.id : ''",
            vec![],
        )
        .await
        .as_str()
        .unwrap_or_default()
        .to_owned()
    }

    /// Types `value` into the visible field named `name` (after clearing it).
    pub async fn fill(&self, name: &str, value: &str) {
        self.fill_in("html", name, value).await;
    }

    async fn fill_in(&self, scope: &str, name: &str, value: &str) {
        let field = self.field(scope, name).await;
        let at = self.here().await;
        field
            .clear()
            .await
            .unwrap_or_else(|e| panic!("{}", failed(&format!("clearing {name}"), &at, e)));
        field
            .send_keys(value)
            .await
            .unwrap_or_else(|e| panic!("{}", failed(&format!("typing into {name}"), &at, e)));
    }

    /// Ticks the checkbox named `name` (if it is not ticked).
    pub async fn check(&self, name: &str) {
        self.set_checked("html", name, true).await;
    }

    /// Unticks the checkbox named `name` (if it is ticked).
    pub async fn uncheck(&self, name: &str) {
        self.set_checked("html", name, false).await;
    }

    /// Whether the checkbox named `name` is ticked.
    pub async fn is_checked(&self, name: &str) -> bool {
        self.field("html", name)
            .await
            .is_selected()
            .await
            .unwrap_or_else(|e| panic!("browser: whether {name} is ticked: {e}"))
    }

    async fn set_checked(&self, scope: &str, name: &str, ticked: bool) {
        let css = within(scope, &format!("input[name={}]", css_string(name)));
        let element = self.find(&css).await;
        self.toggle_to(element, name, ticked).await;
    }

    /// Clicks a checkbox or radio button (or, when a styled label covers it, its label)
    /// until it is `ticked`.
    async fn toggle_to(&self, element: Element, name: &str, ticked: bool) {
        let at = self.here().await;
        let selected = element
            .is_selected()
            .await
            .unwrap_or_else(|e| panic!("{}", failed(&format!("reading {name}"), &at, e)));
        if selected == ticked {
            return;
        }
        if element.click().await.is_err() {
            let id = element.attr("id").await.ok().flatten().unwrap_or_default();
            let label = self.find(&format!("label[for={}]", css_string(&id))).await;
            label
                .click()
                .await
                .unwrap_or_else(|e| panic!("{}", failed(&format!("clicking {name}"), &at, e)));
        }
        let now = element.is_selected().await.unwrap_or(!ticked);
        assert_eq!(now, ticked, "browser: {name} did not change at {at}");
    }

    /// Chooses the radio button `name` whose value is `value`.
    pub async fn choose(&self, name: &str, value: &str) {
        let css = format!(
            "input[type=radio][name={}][value={}]",
            css_string(name),
            css_string(value)
        );
        let element = self.find(&css).await;
        self.toggle_to(element, &format!("{name}={value}"), true)
            .await;
    }

    /// Chooses the option `value` (its `value`, or else its text) of the `<select>`
    /// named `name`.
    pub async fn select(&self, name: &str, value: &str) {
        self.select_in("html", name, value).await;
    }

    async fn select_in(&self, scope: &str, name: &str, value: &str) {
        let field = self.field(scope, name).await;
        let at = self.here().await;
        let chosen = match field.select_by_value(value).await {
            Err(error) if error.is_no_such_element() => field.select_by_label(value).await,
            other => other,
        };
        chosen.unwrap_or_else(|e| {
            panic!("{}", failed(&format!("choosing {value} in {name}"), &at, e))
        });
    }

    /// Finds the visible button labelled `text` inside `scope` (preferring one inside
    /// `<main>` when the page has another outside it).
    async fn button(&self, scope: &str, text: &str) -> Element {
        let literal = xpath_literal(text);
        let xpath = format!(
            "//button[normalize-space(.)={literal}] | \
             //input[(@type='submit' or @type='button') and @value={literal}]"
        );
        let deadline = Instant::now() + ELEMENT_PATIENCE;
        loop {
            let scoped = self.in_scope(scope, &xpath).await;
            if !scoped.is_empty() {
                let mut in_main = Vec::new();
                for element in &scoped {
                    let inside = self
                        .client
                        .execute(
                            "return arguments[0].closest('main') !== null",
                            vec![serde_json::to_value(element).unwrap_or(Value::Null)],
                        )
                        .await
                        .map(|v| v == Value::Bool(true))
                        .unwrap_or(false);
                    if inside {
                        in_main.push(element.clone());
                    }
                }
                let candidates = if in_main.is_empty() { scoped } else { in_main };
                return self
                    .the_displayed(candidates, &format!("button {text:?}"))
                    .await;
            }
            if Instant::now() >= deadline {
                panic!(
                    "browser: no button {text:?} in {scope} at {}\n--- page ---\n{}",
                    self.here().await,
                    self.source().await
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// The elements matching `xpath` that are inside the first element matching the
    /// CSS selector `scope`.
    async fn in_scope(&self, scope: &str, xpath: &str) -> Vec<Element> {
        let Ok(root) = self.client.find(Locator::Css(scope)).await else {
            return Vec::new();
        };
        let relative = xpath
            .split(" | ")
            .map(|part| format!(".{}", part.trim()))
            .collect::<Vec<_>>()
            .join(" | ");
        root.find_all(Locator::XPath(&relative))
            .await
            .unwrap_or_default()
    }

    /// Clicks the button labelled `text` (a form's submit button) and waits for the page
    /// it leads to.
    pub async fn click_button(&self, text: &str) {
        self.click_button_in("html", text).await;
    }

    async fn click_button_in(&self, scope: &str, text: &str) {
        let button = self.button(scope, text).await;
        self.navigating(&format!("clicking {text:?}"), || button.click())
            .await;
    }

    /// Submits the form holding the first element matching `css` (a field, visible or
    /// hidden: `[name=token]`), by clicking that form's one submit button, and waits for
    /// the page it leads to.
    pub async fn submit_form_containing(&self, css: &str) {
        let inner = self.find(css).await;
        let at = self.here().await;
        let form = inner
            .find(Locator::XPath("./ancestor::form[1]"))
            .await
            .unwrap_or_else(|e| panic!("{}", failed(&format!("the form of {css}"), &at, e)));
        let button = self.sole_submit_button(&form, css).await;
        self.navigating(&format!("submitting the form of {css}"), || button.click())
            .await;
    }

    /// Submits the form holding the field named `name` (visible or hidden) by its one
    /// submit button.
    pub async fn submit_form_with(&self, name: &str) {
        self.submit_form_containing(&format!("[name={}]", css_string(name)))
            .await;
    }

    /// Clicks the submit button whose `name` is `name` and `value` is `value` (a form
    /// with several actions: `action` = `verify`) and waits for the page it leads to.
    pub async fn click_submit(&self, name: &str, value: &str) {
        let css = format!(
            "button[name={}][value={}], input[type=submit][name={}][value={}]",
            css_string(name),
            css_string(value),
            css_string(name),
            css_string(value)
        );
        self.find(&css).await;
        let all = self.find_all(&css).await;
        let button = self
            .the_displayed(all, &format!("button {name}={value}"))
            .await;
        self.navigating(&format!("clicking {name}={value}"), || button.click())
            .await;
    }

    /// The one visible submit button of `form` (`what` names it in a failure).
    async fn sole_submit_button(&self, form: &Element, what: &str) -> Element {
        let buttons = form
            .find_all(Locator::XPath(
                ".//button[not(@type) or @type='submit'] | .//input[@type='submit']",
            ))
            .await
            .unwrap_or_default();
        self.the_displayed(buttons, &format!("submit button in the form of {what}"))
            .await
    }

    /// Clicks the visible link whose `href` contains `part` (`method=backup_code`) and
    /// waits for the page it leads to.
    pub async fn click_link_to(&self, part: &str) {
        let css = format!("a[href*={}]", css_string(part));
        self.find(&css).await;
        let all = self.find_all(&css).await;
        let link = self.the_displayed(all, &format!("link to {part:?}")).await;
        self.navigating(&format!("following the link to {part:?}"), || link.click())
            .await;
    }

    /// Gives the field `name` the value `value` whatever it is: a `<select>` (chosen), radio
    /// buttons (the one with that value), a checkbox (ticked), a text field (typed), or a
    /// hidden field (left alone when it already holds `value`).
    pub async fn set_field(&self, name: &str, value: &str) {
        let css = format!("[name={}]", css_string(name));
        let first = self.find(&css).await;
        let tag = first
            .tag_name()
            .await
            .unwrap_or_default()
            .to_ascii_lowercase();
        let kind = first
            .attr("type")
            .await
            .ok()
            .flatten()
            .unwrap_or_default()
            .to_ascii_lowercase();
        match (tag.as_str(), kind.as_str()) {
            ("select", _) => self.select(name, value).await,
            ("input", "radio") => self.choose(name, value).await,
            ("input", "checkbox") => self.check(name).await,
            ("input", "hidden") => {
                let held = first.attr("value").await.ok().flatten().unwrap_or_default();
                assert_eq!(
                    held,
                    value,
                    "browser: the hidden field {name} holds {held:?}, not {value:?}, at {}",
                    self.here().await
                );
            }
            _ => self.fill(name, value).await,
        }
    }

    /// Clicks the link whose text is `text` and waits for the page it leads to.
    pub async fn click_link(&self, text: &str) {
        let xpath = format!("//a[normalize-space(.)={}]", xpath_literal(text));
        let link = match self
            .client
            .wait()
            .at_most(ELEMENT_PATIENCE)
            .every(POLL)
            .for_element(Locator::XPath(&xpath))
            .await
        {
            Ok(_) => {
                let all = self
                    .client
                    .find_all(Locator::XPath(&xpath))
                    .await
                    .unwrap_or_default();
                self.the_displayed(all, &format!("link {text:?}")).await
            }
            Err(error) => panic!(
                "{}\n--- page ---\n{}",
                failed(&format!("finding link {text:?}"), &self.here().await, error),
                self.source().await
            ),
        };
        self.navigating(&format!("following {text:?}"), || link.click())
            .await;
    }

    /// The form whose `action` is `action` (a path, with or without a query), for
    /// pages with several forms that share field names or button labels.
    pub fn form<'b>(&'b self, action: &str) -> Form<'b> {
        let quoted = css_string(action);
        let prefix = css_string(&format!("{action}?"));
        Form {
            browser: self,
            scope: format!("form[action={quoted}], form[action^={prefix}]"),
        }
    }

    /// The browser's cookie `name` for this site (read over WebDriver, so HttpOnly ones
    /// too), if it has one.
    pub async fn cookie(&self, name: &str) -> Option<Cookie<'static>> {
        match self.client.get_named_cookie(name).await {
            Ok(cookie) => Some(cookie),
            Err(error) if error.is_no_such_cookie() => None,
            Err(error) => panic!("browser: cookie {name}: {error}"),
        }
    }

    /// Every cookie the browser holds for this site.
    pub async fn cookies(&self) -> Vec<Cookie<'static>> {
        self.client
            .get_all_cookies()
            .await
            .unwrap_or_else(|e| panic!("browser: the cookies: {e}"))
    }

    /// Runs axe-core on the page as it is now; fails the test on any violation of
    /// serious or critical impact, listing each rule and the elements it found.
    pub async fn axe_check(&self) {
        let at = self.here().await;
        let loaded = self
            .client
            .execute("return typeof window.axe === 'object'", vec![])
            .await
            .unwrap_or_else(|e| panic!("{}", failed("axe-core", &at, e)));
        if loaded != Value::Bool(true) {
            // WebDriver's scripts are not the page's: the page's CSP does not apply.
            self.client
                .execute(&format!("{}\n;return null;", axe_source()), vec![])
                .await
                .unwrap_or_else(|e| panic!("{}", failed("injecting axe-core", &at, e)));
        }
        let result = self
            .client
            .execute_async(
                "const done = arguments[arguments.length - 1];\n\
                 window.axe.run(document, { resultTypes: ['violations'] })\n\
                   .then(r => done({ ok: r.violations }))\n\
                   .catch(e => done({ error: String(e) }));",
                vec![],
            )
            .await
            .unwrap_or_else(|e| panic!("{}", failed("axe.run()", &at, e)));
        if let Some(error) = result.get("error") {
            panic!("browser: axe.run() failed at {at}: {error}");
        }
        let violations = result["ok"].as_array().cloned().unwrap_or_default();
        let serious: Vec<String> = violations
            .iter()
            .filter(|v| matches!(v["impact"].as_str(), Some("serious" | "critical")))
            .map(describe_violation)
            .collect();
        assert!(
            serious.is_empty(),
            "axe-core found {} violation(s) of serious or critical impact at {at}:\n{}",
            serious.len(),
            serious.join("\n")
        );
    }

    /// Makes the page's viewport `width` x `height` CSS pixels (a phone's, with `mobile`).
    async fn set_viewport(&self, width: u32, height: u64, mobile: bool) {
        let command = DevTools {
            command: "Emulation.setDeviceMetricsOverride",
            params: json!({
                "width": width,
                "height": height,
                "deviceScaleFactor": 1,
                "mobile": mobile,
            }),
        };
        self.client
            .issue_cmd(command)
            .await
            .unwrap_or_else(|e| panic!("browser: setting the viewport to {width}x{height}: {e}"));
    }

    async fn reset_viewport(&self) {
        let command = DevTools {
            command: "Emulation.clearDeviceMetricsOverride",
            params: json!({}),
        };
        self.client
            .issue_cmd(command)
            .await
            .unwrap_or_else(|e| panic!("browser: resetting the viewport: {e}"));
    }

    /// Numbers the page reports about its layout: `[scrollWidth, scrollHeight,
    /// innerWidth]`.
    async fn layout(&self) -> (u64, u64, u64) {
        let value = self
            .run(
                "const d = document.documentElement;\n\
                 const b = document.body || d;\n\
                 return [Math.max(d.scrollWidth, b.scrollWidth),\n\
                         Math.max(d.scrollHeight, b.scrollHeight), window.innerWidth];",
                vec![],
            )
            .await;
        let number = |i: usize| value[i].as_f64().unwrap_or_default().ceil() as u64;
        (number(0), number(1), number(2))
    }

    /// Writes a full-page screenshot at `viewport` to `file`.
    async fn shoot(&self, viewport: (u32, u32), mobile: bool, file: &Path) {
        self.set_viewport(viewport.0, viewport.1.into(), mobile)
            .await;
        let (_, height, _) = self.layout().await;
        let height = height.clamp(viewport.1.into(), MAX_SCREENSHOT_HEIGHT);
        self.set_viewport(viewport.0, height, mobile).await;
        let png = self
            .client
            .screenshot()
            .await
            .unwrap_or_else(|e| panic!("browser: screenshot {}: {e}", file.display()));
        // Both backends' tests reach the same pages at once: write aside, then rename
        // (atomic), so a reader never sees half a file.
        let aside = file.with_extension(format!("png.{}", uuid::Uuid::new_v4().simple()));
        std::fs::write(&aside, png).unwrap_or_else(|e| panic!("{}: {e}", aside.display()));
        std::fs::rename(&aside, file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    }

    /// Checks that the page reads at 320 px wide without scrolling sideways, then writes
    /// its screenshots: `target/screenshots/<name>-desktop.png` (1280x900) and
    /// `<name>-phone.png` (375x800), each as tall as the page.
    pub async fn screenshot(&self, name: &str) {
        let dir = screenshots_dir();
        std::fs::create_dir_all(&dir).expect("create target/screenshots");
        let at = self.here().await;
        self.set_viewport(NARROWEST.0, NARROWEST.1.into(), true)
            .await;
        let (scroll_width, _, inner_width) = self.layout().await;
        self.shoot(DESKTOP, false, &dir.join(format!("{name}-desktop.png")))
            .await;
        self.shoot(PHONE, true, &dir.join(format!("{name}-phone.png")))
            .await;
        self.reset_viewport().await;
        assert!(
            scroll_width <= inner_width.max(u64::from(NARROWEST.0)),
            "{at} ({name}) scrolls sideways at {} px wide: the page is {scroll_width} px wide \
             (WCAG 2.2 1.4.10 reflow)",
            NARROWEST.0
        );
    }

    /// What every page a journey reaches gets: [`axe_check`](Self::axe_check) and
    /// [`screenshot`](Self::screenshot) (named by page and state: `login-error`).
    pub async fn review(&self, name: &str) {
        self.screenshot(name).await;
        self.axe_check().await;
    }
}

/// One violation as a failure lists it: the rule, its impact and help, and each element.
fn describe_violation(violation: &Value) -> String {
    let nodes: Vec<String> = violation["nodes"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|node| {
            format!(
                "      {} {}\n        {}",
                node["target"],
                node["html"].as_str().unwrap_or_default(),
                node["failureSummary"]
                    .as_str()
                    .unwrap_or_default()
                    .replace('\n', "\n        ")
            )
        })
        .collect();
    format!(
        "  - {} ({}): {} [{}]\n{}",
        violation["id"].as_str().unwrap_or_default(),
        violation["impact"].as_str().unwrap_or_default(),
        violation["help"].as_str().unwrap_or_default(),
        violation["helpUrl"].as_str().unwrap_or_default(),
        nodes.join("\n")
    )
}

/// A form of the page ([`Browser::form`]): its fields and buttons only.
pub struct Form<'b> {
    browser: &'b Browser,
    scope: String,
}

impl Form<'_> {
    /// Types `value` into the form's field `name`.
    pub async fn fill(&self, name: &str, value: &str) -> &Self {
        self.browser.fill_in(&self.scope, name, value).await;
        self
    }

    /// Ticks the form's checkbox `name`.
    pub async fn check(&self, name: &str) -> &Self {
        self.browser.set_checked(&self.scope, name, true).await;
        self
    }

    /// Unticks the form's checkbox `name`.
    pub async fn uncheck(&self, name: &str) -> &Self {
        self.browser.set_checked(&self.scope, name, false).await;
        self
    }

    /// Whether the form's checkbox `name` is ticked.
    pub async fn is_checked(&self, name: &str) -> bool {
        self.browser
            .field(&self.scope, name)
            .await
            .is_selected()
            .await
            .unwrap_or_else(|e| panic!("browser: whether {name} is ticked: {e}"))
    }

    /// Chooses the option `value` (its `value`, or else its text) of the form's
    /// `<select>` named `name`.
    pub async fn select(&self, name: &str, value: &str) -> &Self {
        self.browser.select_in(&self.scope, name, value).await;
        self
    }

    /// Clicks the form's button labelled `text` and waits for the page it leads to.
    pub async fn click_button(&self, text: &str) {
        self.browser.click_button_in(&self.scope, text).await;
    }

    /// Submits the form by its one submit button and waits for the page it leads to.
    pub async fn submit(&self) {
        let form = self.browser.find(&self.scope).await;
        let button = self.browser.sole_submit_button(&form, &self.scope).await;
        self.browser
            .navigating(&format!("submitting {}", self.scope), || button.click())
            .await;
    }
}
