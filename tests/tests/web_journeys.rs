//! The web pages' journeys in real Chromium (issue 15), against the local server on both
//! backends, as docs/web-pages.md describes them: field names, paths, redirects, notices,
//! the markup every page shares and the web session's cookies. Mail is read back from the
//! outbox or the SES emulator; TOTP codes are computed at the server's clock.
//!
//! Every page a journey reaches is checked for the shared markup, then reviewed
//! ([`Browser::review`]): axe-core finds no serious or critical violation, the page reads
//! at 320 px, and its screenshots at desktop and phone widths are written to
//! `target/screenshots/<page>-<state>-{desktop,phone}.png`.

use api_tests::browser::Browser;
use api_tests::{
    PASSWORD, TestApp, WRONG_PASSWORD, assert, codes_of, on_both_backends_in_browser, unique_email,
};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

/// A new password that meets the policy.
const NEW_PASSWORD: &str = "violet-harbour-4471";
/// The security question set on the settings page, and its answer.
const QUESTION_ID: &str = "first-pet";
const ANSWER: &str = "Rex the Dog";
/// Where a login lands by default.
const SETTINGS: &str = "/account/security";

// ---------------------------------------------------------------------------------
// What every page shares (docs/web-pages.md, "Markup every page shares")
// ---------------------------------------------------------------------------------

/// Checks the markup every page shares, then reviews the page (axe-core, reflow at
/// 320 px, screenshots named `name`).
async fn page(browser: &Browser, name: &str) {
    let shared = browser
        .run(
            "const main = document.querySelector('main#main');\n\
             const h1s = main ? [...main.querySelectorAll('h1')] : [];\n\
             return {\n\
               main: main !== null,\n\
               h1: h1s.map(h => h.textContent.trim().replace(/\\s+/g, ' ')),\n\
               title: document.title,\n\
               scripts: [...document.scripts].map(s => s.getAttribute('src')),\n\
               sheets: [...document.querySelectorAll('link[rel~=stylesheet]')]\n\
                 .map(l => l.getAttribute('href')),\n\
               styles: document.querySelectorAll('style').length,\n\
             };",
            vec![],
        )
        .await;
    let at = browser.current_path_and_query().await;
    assert_eq!(shared["main"], true, "{name} ({at}): no <main id=\"main\">");
    let h1 = shared["h1"].as_array().cloned().unwrap_or_default();
    assert_eq!(
        h1.len(),
        1,
        "{name} ({at}): <main> holds {h1:?}, not one <h1>"
    );
    let h1 = h1[0].as_str().unwrap_or_default();
    assert_eq!(
        shared["title"].as_str().unwrap_or_default(),
        format!("{h1} - Account"),
        "{name} ({at}): the <title> is not \"<h1 text> - Account\""
    );
    for script in shared["scripts"].as_array().cloned().unwrap_or_default() {
        assert!(
            script
                .as_str()
                .is_some_and(|src| same_site_path(browser, src) == "/assets/app.js"),
            "{name} ({at}): a script other than /assets/app.js: {script}"
        );
    }
    for sheet in shared["sheets"].as_array().cloned().unwrap_or_default() {
        assert!(
            sheet
                .as_str()
                .is_some_and(|href| same_site_path(browser, href) == "/assets/app.css"),
            "{name} ({at}): a style sheet other than /assets/app.css: {sheet}"
        );
    }
    assert_eq!(shared["styles"], 0, "{name} ({at}): a <style> element");
    browser.review(name).await;
}

/// `src` as a path of this site (an absolute URL of the site loses its origin).
fn same_site_path(browser: &Browser, src: &str) -> String {
    let origin = browser.url("");
    src.strip_prefix(&origin).unwrap_or(src).to_owned()
}

/// The text of `<main>`.
async fn main_text(browser: &Browser) -> String {
    browser.text_of("main#main").await
}

/// Asserts the browser is at `path` (ignoring the query).
async fn assert_at(browser: &Browser, path: &str) {
    let here = browser.current_path_and_query().await;
    assert_eq!(
        browser.current_path().await,
        path,
        "the browser is at {here}, not {path}:\n{}",
        main_text_or_source(browser).await
    );
}

/// Asserts the browser is at `path?notice=<notice>` and the page shows the notice
/// (`<p class="notice" role="status">`).
async fn assert_notice(browser: &Browser, path: &str, notice: &str) {
    assert_at(browser, path).await;
    assert_eq!(
        browser.query_param("notice").await.as_deref(),
        Some(notice),
        "{} has not notice={notice}",
        browser.current_path_and_query().await
    );
    let text = browser.text_of("p.notice[role=status]").await;
    assert!(!text.trim().is_empty(), "the notice {notice} is empty");
}

async fn main_text_or_source(browser: &Browser) -> String {
    if browser.exists("main").await {
        browser.text_of("main").await
    } else {
        browser.source().await
    }
}

/// Asserts each field named `name` has `autocomplete` = `token`.
async fn assert_autocomplete(browser: &Browser, fields: &[(&str, &str)]) {
    for (name, token) in fields {
        let css = format!("input[name=\"{name}\"]");
        let found = browser.find_all(&css).await;
        assert!(
            !found.is_empty(),
            "no field {name} at {}",
            browser.current_path_and_query().await
        );
        for field in found {
            let given = field.attr("autocomplete").await.ok().flatten();
            assert_eq!(
                given.as_deref(),
                Some(*token),
                "the field {name} at {} has autocomplete={given:?}, not {token}",
                browser.current_path_and_query().await
            );
        }
    }
}

/// Asserts a form's errors as docs/web-pages.md shows them: the summary
/// (`#error-summary`, `role="alert"`, `tabindex="-1"`, focused on load) links to the
/// fields in error (at least those of `fields`), and each of them names its own message
/// (`#<field>-error`) with `aria-describedby` and `aria-invalid="true"`.
async fn assert_errors_on(browser: &Browser, fields: &[&str]) {
    let at = browser.current_path_and_query().await;
    browser
        .find("div.error-summary#error-summary[role=alert][tabindex=\"-1\"]")
        .await;
    let focused = browser
        .run(
            "return document.activeElement && document.activeElement.id",
            vec![],
        )
        .await;
    assert_eq!(
        focused,
        json!("error-summary"),
        "the error summary at {at} is not focused on load"
    );
    let mut linked = Vec::new();
    for link in browser.find_all("#error-summary ul a").await {
        let href = link.attr("href").await.ok().flatten().unwrap_or_default();
        let field = href
            .strip_prefix('#')
            .unwrap_or_else(|| panic!("an error summary link at {at} is not #<field>: {href}"));
        linked.push(field.to_owned());
    }
    for field in fields {
        assert!(
            linked.iter().any(|l| l == field),
            "the error summary at {at} does not link to #{field} (it links to {linked:?})"
        );
    }
    for field in &linked {
        let message = browser
            .text_of(&format!("p.field-error#{field}-error"))
            .await;
        assert!(
            !message.trim().is_empty(),
            "{field}'s message at {at} is empty"
        );
        let input = browser.find(&format!("#{field}")).await;
        let described = input
            .attr("aria-describedby")
            .await
            .ok()
            .flatten()
            .unwrap_or_default();
        assert!(
            described
                .split_whitespace()
                .any(|id| id == format!("{field}-error")),
            "#{field} at {at} is not described by #{field}-error (aria-describedby={described:?})"
        );
        let invalid = input.attr("aria-invalid").await.ok().flatten();
        assert_eq!(
            invalid.as_deref(),
            Some("true"),
            "#{field} at {at}: aria-invalid"
        );
    }
}

/// Asserts no referrer reached this page (the pages send `Referrer-Policy: no-referrer`;
/// some carry a token in their URL).
async fn assert_no_referrer(browser: &Browser) {
    let referrer = browser.run("return document.referrer", vec![]).await;
    assert_eq!(
        referrer,
        json!(""),
        "{} received a referrer",
        browser.current_path_and_query().await
    );
}

// ---------------------------------------------------------------------------------
// Steps the journeys share
// ---------------------------------------------------------------------------------

/// Fills and sends the sign-up form (on `/signup`) for a freelancer.
async fn fill_sign_up(browser: &Browser, email: &str) {
    browser.fill("full_name", "Ada Lovelace").await;
    browser.fill("email", email).await;
    browser.fill("password", PASSWORD).await;
    browser.choose("account_type", "freelancer").await;
    browser.submit_form_with("email").await;
}

/// Logs in on `/login` with `login` and `password`, ticking "Remember me" or not.
async fn log_in(browser: &Browser, login: &str, password: &str, remember_me: bool) {
    if browser.current_path().await != "/login" {
        browser.goto("/login").await;
    }
    browser.fill("login", login).await;
    browser.fill("password", password).await;
    if remember_me {
        browser.check("remember_me").await;
    } else {
        browser.uncheck("remember_me").await;
    }
    browser.submit_form_with("login").await;
}

/// Logs in and asserts the landing on the security settings.
async fn log_in_to_settings(browser: &Browser, login: &str, password: &str) {
    log_in(browser, login, password, false).await;
    assert_at(browser, SETTINGS).await;
}

/// Logs out (`POST /logout` from the settings page) and asserts the notice.
async fn log_out(browser: &Browser) {
    if browser.current_path().await != SETTINGS {
        browser.goto(SETTINGS).await;
    }
    browser.form("/logout").submit().await;
    assert_notice(browser, "/login", "logged_out").await;
}

/// The session id (`sid` claim) of the browser's access token.
async fn session_id_of(browser: &Browser) -> String {
    let cookie = browser
        .cookie("__Host-access")
        .await
        .expect("the browser is signed in (__Host-access)");
    let payload = cookie
        .value()
        .split('.')
        .nth(1)
        .expect("the access token is a JWT");
    let claims: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("base64url"))
            .expect("JSON claims");
    claims["sid"].as_str().expect("a sid claim").to_owned()
}

/// Sets up an authenticator through the API for `email` (signed in there with the test
/// password); returns the secret and the backup codes.
async fn enrol_by_api(app: &TestApp, email: &str) -> (String, Vec<String>) {
    let tokens = app.log_in(email, false).await;
    let setup = assert::ok_json(app.totp_setup(&tokens.access_token).await).await;
    let secret = setup["secret"].as_str().expect("a secret").to_owned();
    let confirmed = assert::ok_json(
        app.totp_confirm(&tokens.access_token, &app.totp_code(&secret, 0))
            .await,
    )
    .await;
    (secret, codes_of(&confirmed))
}

/// The verification code in the newest mail to `email`.
async fn mailed_code(app: &TestApp, email: &str) -> String {
    app.last_mail_to(email)
        .await
        .and_then(|mail| mail.code())
        .unwrap_or_else(|| panic!("no code was mailed to {email}"))
}

/// Seconds from now to the cookie's expiry; `None` for a cookie that ends with the
/// browser.
fn lifetime_of(cookie: &fantoccini::cookies::Cookie<'static>) -> Option<i64> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or_default())
        .unwrap_or_default();
    cookie
        .expires_datetime()
        .map(|at| at.unix_timestamp() - now)
}

/// Asserts the web session cookies' attributes as WebDriver reports them.
fn assert_session_cookie(cookie: &fantoccini::cookies::Cookie<'static>) {
    let name = cookie.name();
    assert!(name.starts_with("__Host-"), "{name}");
    assert_eq!(cookie.http_only(), Some(true), "{name} is not HttpOnly");
    assert_eq!(cookie.secure(), Some(true), "{name} is not Secure");
    assert_eq!(
        cookie.same_site().map(|s| s.to_string()).as_deref(),
        Some("Lax"),
        "{name} is not SameSite=Lax"
    );
    assert_eq!(cookie.path(), Some("/"), "{name}'s path");
}

// ---------------------------------------------------------------------------------
// Sign up and confirm
// ---------------------------------------------------------------------------------

on_both_backends_in_browser! {
    &[];
    async fn a_person_signs_up_and_confirms_by_the_emailed_link(app) {
        let browser = Browser::open(&app).await;
        browser.goto("/signup").await;
        assert_autocomplete(&browser, &[
            ("full_name", "name"),
            ("email", "email"),
            ("password", "new-password"),
            ("username", "username"),
        ])
        .await;
        page(&browser, "signup").await;

        // A mistake first (one the browser cannot catch: a password holding the address):
        // the errors are summarised, linked and focused.
        let email = unique_email();
        let weak = format!("{}-99", email.split('@').next().unwrap_or_default());
        browser.fill("full_name", "Ada Lovelace").await;
        browser.fill("email", &email).await;
        browser.fill("password", &weak).await;
        browser.choose("account_type", "freelancer").await;
        browser.submit_form_with("email").await;
        assert_at(&browser, "/signup").await;
        assert_errors_on(&browser, &["password"]).await;
        page(&browser, "signup-errors").await;
        assert_eq!(api_tests::email_verified(&app.app, &email).await, None, "no account yet");

        fill_sign_up(&browser, &email).await;
        assert_at(&browser, "/check-email").await;
        assert!(main_text(&browser).await.contains(&email), "check-email names the address");
        page(&browser, "check-email").await;

        // A second mail, after the resend cooldown: its link is the one that works.
        app.clock.advance(61);
        browser.click_submit("action", "resend").await;
        assert_at(&browser, "/check-email").await;
        browser.text_of("p.notice[role=status]").await;
        page(&browser, "check-email-resent").await;
        assert_eq!(app.mails_with_link(&email, "/verify-email").await.len(), 2);

        let token = app.newest_link_token(&email, "/verify-email").await;
        browser.goto(&format!("/verify-email?token={token}")).await;
        page(&browser, "verify-email").await;
        assert_eq!(api_tests::email_verified(&app.app, &email).await, Some(false),
            "opening the link alone must not spend it");
        browser.submit_form_with("token").await;
        assert!(
            main_text(&browser).await.contains("Your email address is confirmed"),
            "{}", main_text(&browser).await
        );
        assert_no_referrer(&browser).await;
        page(&browser, "verify-email-confirmed").await;
        assert_eq!(api_tests::email_verified(&app.app, &email).await, Some(true));

        // The same link again: already used.
        browser.goto(&format!("/verify-email?token={token}")).await;
        browser.submit_form_with("token").await;
        assert!(
            main_text(&browser).await.to_lowercase().contains("already"),
            "{}", main_text(&browser).await
        );
        page(&browser, "verify-email-already-used").await;

        log_in_to_settings(&browser, &email, PASSWORD).await;
        page(&browser, "security-settings").await;
        browser.close().await;
    }

    async fn an_expired_link_offers_a_new_one(app) {
        let browser = Browser::open(&app).await;
        let email = unique_email();
        browser.goto("/signup").await;
        fill_sign_up(&browser, &email).await;
        assert_at(&browser, "/check-email").await;
        let token = app.newest_link_token(&email, "/verify-email").await;
        app.clock.advance(25 * 3_600);
        browser.goto(&format!("/verify-email?token={token}")).await;
        browser.submit_form_with("token").await;
        assert!(
            main_text(&browser).await.to_lowercase().contains("expired"),
            "{}", main_text(&browser).await
        );
        assert_autocomplete(&browser, &[("email", "email")]).await;
        page(&browser, "verify-email-expired").await;
        browser.fill("email", &email).await;
        browser.submit_form_with("email").await;
        page(&browser, "verify-email-expired-resent").await;
        let fresh = app.newest_link_token(&email, "/verify-email").await;
        assert_ne!(fresh, token, "a new link was mailed");
        browser.goto(&format!("/verify-email?token={fresh}")).await;
        browser.submit_form_with("token").await;
        assert!(main_text(&browser).await.contains("Your email address is confirmed"));
        browser.close().await;
    }

    async fn a_person_signs_up_and_confirms_by_the_code_on_the_check_email_page(app) {
        let browser = Browser::open(&app).await;
        let email = unique_email();
        browser.goto("/signup").await;
        fill_sign_up(&browser, &email).await;
        assert_at(&browser, "/check-email").await;
        assert_autocomplete(&browser, &[("code", "one-time-code")]).await;

        // A wrong code first.
        let code = mailed_code(&app, &email).await;
        let wrong = if code == "000000" { "111111" } else { "000000" };
        browser.fill("code", wrong).await;
        browser.click_submit("action", "verify").await;
        assert_at(&browser, "/check-email").await;
        assert_errors_on(&browser, &["code"]).await;
        page(&browser, "check-email-wrong-code").await;

        browser.fill("code", &code).await;
        browser.click_submit("action", "verify").await;
        assert_notice(&browser, "/login", "verified").await;
        assert_autocomplete(&browser, &[("login", "username"), ("password", "current-password")])
            .await;
        page(&browser, "login-verified").await;
        assert_eq!(api_tests::email_verified(&app.app, &email).await, Some(true));

        log_in_to_settings(&browser, &email, PASSWORD).await;
        browser.close().await;
    }

    async fn a_person_fixes_a_mistyped_address_on_the_check_email_page(app) {
        let browser = Browser::open(&app).await;
        let (typo, email) = (unique_email().replace("@example.com", "@exmaple.com"), unique_email());
        browser.goto("/signup").await;
        fill_sign_up(&browser, &typo).await;
        assert_at(&browser, "/check-email").await;
        assert!(main_text(&browser).await.contains(&typo));
        assert_autocomplete(&browser, &[("new_email", "email"), ("password", "current-password")])
            .await;

        browser.fill("new_email", &email).await;
        browser.fill("password", PASSWORD).await;
        browser.click_submit("action", "correct").await;
        assert_at(&browser, "/check-email").await;
        browser.text_of("p.notice[role=status]").await;
        let text = main_text(&browser).await;
        assert!(text.contains(&email), "the page names the corrected address: {text}");
        page(&browser, "check-email-corrected").await;

        browser.fill("code", &mailed_code(&app, &email).await).await;
        browser.click_submit("action", "verify").await;
        assert_notice(&browser, "/login", "verified").await;
        assert_eq!(api_tests::email_verified(&app.app, &email).await, Some(true));
        assert_eq!(api_tests::email_verified(&app.app, &typo).await, None, "the typo is gone");
        browser.close().await;
    }
}

// ---------------------------------------------------------------------------------
// Logging in
// ---------------------------------------------------------------------------------

on_both_backends_in_browser! {
    &[];
    async fn remember_me_keeps_the_session_cookies_for_thirty_days_and_without_it_they_end_with_the_browser(app) {
        let email = app.verified_account().await;
        let remembered = Browser::open(&app).await;
        remembered.goto("/login").await;
        page(&remembered, "login").await;
        log_in(&remembered, &email, PASSWORD, true).await;
        assert_at(&remembered, SETTINGS).await;
        for name in ["__Host-access", "__Host-refresh"] {
            let cookie = remembered.cookie(name).await.unwrap_or_else(|| panic!("no {name}"));
            assert_session_cookie(&cookie);
            let lifetime = lifetime_of(&cookie);
            assert!(
                lifetime.is_some_and(|s| (29 * 86_400..=30 * 86_400 + 60).contains(&s)),
                "with Remember me, {name} lasts {lifetime:?} s, not 30 days"
            );
        }

        let forgetful = remembered.another().await;
        log_in(&forgetful, &email, PASSWORD, false).await;
        assert_at(&forgetful, SETTINGS).await;
        for name in ["__Host-access", "__Host-refresh"] {
            let cookie = forgetful.cookie(name).await.unwrap_or_else(|| panic!("no {name}"));
            assert_session_cookie(&cookie);
            assert_eq!(
                lifetime_of(&cookie),
                None,
                "without Remember me, {name} must end with the browser"
            );
        }
        for cookie in forgetful.cookies().await {
            assert!(cookie.name().starts_with("__Host-"), "a cookie without __Host-: {}", cookie.name());
        }
        forgetful.close().await;
        remembered.close().await;
    }

    async fn a_person_logs_in_with_the_keyboard_alone_and_sees_where_the_focus_is(app) {
        use fantoccini::key::Key;
        let email = app.verified_account().await;
        let browser = Browser::open(&app).await;
        browser.goto("/login").await;
        let tab = char::from(Key::Tab).to_string();
        // The first stop is the link that skips to the content.
        browser.press(&tab).await;
        let first = browser
            .run("return document.activeElement.getAttribute('href')", vec![])
            .await;
        assert_eq!(first, json!("#main"), "the first Tab stop is the skip link");
        // Tab reaches each field, and the focus can be seen.
        for (id, value) in [("login", email.as_str()), ("password", PASSWORD)] {
            let mut presses = 0;
            while browser.focused_id().await != id {
                presses += 1;
                assert!(presses < 10, "Tab never reached #{id}");
                browser.press(&tab).await;
            }
            let outline = browser
                .run("return getComputedStyle(document.activeElement).outlineStyle", vec![])
                .await;
            assert_ne!(outline, json!("none"), "#{id} shows no focus outline");
            browser.press(value).await;
        }
        // Enter in the password field sends the form.
        browser
            .press_and_follow(&char::from(Key::Enter).to_string())
            .await;
        assert_at(&browser, SETTINGS).await;
        browser.close().await;
    }

    async fn a_wrong_password_is_explained_on_the_login_page(app) {
        let email = app.verified_account().await;
        let browser = Browser::open(&app).await;
        log_in(&browser, &email, WRONG_PASSWORD, false).await;
        assert_at(&browser, "/login").await;
        assert_errors_on(&browser, &[]).await;
        page(&browser, "login-wrong-password").await;
        assert!(browser.cookie("__Host-access").await.is_none());
        browser.close().await;
    }

    async fn a_page_that_needs_a_session_sends_to_login_and_back(app) {
        let email = app.verified_account().await;
        let browser = Browser::open(&app).await;
        browser.goto(SETTINGS).await;
        assert_at(&browser, "/login").await;
        assert_eq!(browser.query_param("return_to").await.as_deref(), Some(SETTINGS));
        page(&browser, "login-return-to").await;
        log_in(&browser, &email, PASSWORD, false).await;
        assert_at(&browser, SETTINGS).await;
        browser.close().await;
    }
}

// ---------------------------------------------------------------------------------
// Two-step verification
// ---------------------------------------------------------------------------------

on_both_backends_in_browser! {
    &[];
    async fn a_person_sets_up_an_authenticator_from_the_pages_secret_and_logs_in_with_a_code(app) {
        let email = app.verified_account().await;
        let browser = Browser::open(&app).await;
        log_in_to_settings(&browser, &email, PASSWORD).await;
        assert_autocomplete(&browser, &[
            ("current_password", "current-password"),
            ("new_password", "new-password"),
            ("confirm_password", "new-password"),
        ])
        .await;

        let setup = browser.form("/account/security/totp/setup");
        setup.fill("current_password", PASSWORD).await;
        setup.submit().await;
        let secret: String = browser
            .text_of("#totp-secret")
            .await
            .chars()
            .filter(|c| !c.is_whitespace() && *c != '-')
            .collect();
        assert!(secret.len() >= 16, "the secret shown: {secret:?}");
        assert_autocomplete(&browser, &[("code", "one-time-code")]).await;
        page(&browser, "totp-setup").await;

        browser.fill("code", &app.totp_code(&secret, 0)).await;
        browser.submit_form_with("code").await;
        let codes: Vec<String> = browser
            .texts_of(".backup-code")
            .await
            .into_iter()
            .map(|c| c.trim().to_owned())
            .collect();
        assert!(!codes.is_empty() && codes.iter().all(|c| !c.is_empty()), "{codes:?}");
        page(&browser, "backup-codes").await;

        log_out(&browser).await;
        page(&browser, "login-logged-out").await;
        assert!(browser.cookie("__Host-access").await.is_none(), "logged out");

        log_in(&browser, &email, PASSWORD, false).await;
        assert_at(&browser, "/login/two-step").await;
        assert!(browser.cookie("__Host-mfa").await.is_some(), "the challenge rides in __Host-mfa");
        assert_autocomplete(&browser, &[("code", "one-time-code")]).await;
        page(&browser, "two-step-totp").await;

        // A wrong code, then the right one.
        browser.fill("code", &app.wrong_code(&secret)).await;
        browser.submit_form_with("code").await;
        assert_at(&browser, "/login/two-step").await;
        assert_errors_on(&browser, &["code"]).await;
        page(&browser, "two-step-totp-wrong-code").await;
        browser.fill("code", &app.fresh_code(&secret)).await;
        browser.submit_form_with("code").await;
        assert_at(&browser, SETTINGS).await;
        page(&browser, "security-settings-two-step-on").await;
        browser.close().await;
    }

    async fn a_person_tries_another_method_with_a_backup_code_and_with_the_security_answer(app) {
        let email = app.verified_account().await;
        let browser = Browser::open(&app).await;
        log_in_to_settings(&browser, &email, PASSWORD).await;

        let question = browser.form("/account/security/question");
        question.fill("current_password", PASSWORD).await;
        question.select("question_id", QUESTION_ID).await;
        question.fill("answer", ANSWER).await;
        question.submit().await;
        assert_notice(&browser, SETTINGS, "question_changed").await;
        page(&browser, "security-settings-question-changed").await;

        let (_, backup_codes) = enrol_by_api(&app, &email).await;
        log_out(&browser).await;

        // A backup code.
        log_in(&browser, &email, PASSWORD, false).await;
        assert_at(&browser, "/login/two-step").await;
        browser.click_link_to("method=backup_code").await;
        assert_at(&browser, "/login/two-step").await;
        assert_eq!(browser.query_param("method").await.as_deref(), Some("backup_code"));
        page(&browser, "two-step-backup-code").await;
        browser.fill("code", &backup_codes[0]).await;
        browser.submit_form_with("code").await;
        assert_at(&browser, SETTINGS).await;
        log_out(&browser).await;

        // The same backup code again: spent.
        log_in(&browser, &email, PASSWORD, false).await;
        browser.click_link_to("method=backup_code").await;
        browser.fill("code", &backup_codes[0]).await;
        browser.submit_form_with("code").await;
        assert_at(&browser, "/login/two-step").await;
        assert_errors_on(&browser, &["code"]).await;
        page(&browser, "two-step-backup-code-spent").await;

        // The security answer (typed in another case, with spaces).
        browser.goto("/login/two-step").await;
        browser.click_link_to("method=security_question").await;
        assert_eq!(browser.query_param("method").await.as_deref(), Some("security_question"));
        assert!(
            main_text(&browser).await.contains("What was the name of your first pet?"),
            "the page asks the question"
        );
        assert!(browser.exists("a[href*=\"/forgot-security-answer\"]").await,
            "\"Forgot your answer?\" on the security-question form");
        page(&browser, "two-step-security-question").await;
        browser.fill("code", "  rex THE dog ").await;
        browser.submit_form_with("code").await;
        assert_at(&browser, SETTINGS).await;
        browser.close().await;
    }

    async fn a_person_with_two_step_resets_a_forgotten_password(app) {
        let email = app.verified_account().await;
        let (secret, _) = enrol_by_api(&app, &email).await;
        let browser = Browser::open(&app).await;
        browser.goto("/login").await;
        browser.click_link_to("/forgot-password").await;
        assert_at(&browser, "/forgot-password").await;
        assert_autocomplete(&browser, &[("login", "username")]).await;
        page(&browser, "forgot-password").await;
        browser.fill("login", &email).await;
        browser.submit_form_with("login").await;
        assert_at(&browser, "/forgot-password/sent").await;
        page(&browser, "forgot-password-sent").await;

        // An unknown login reaches the same page.
        browser.goto("/forgot-password").await;
        browser.fill("login", &unique_email()).await;
        browser.submit_form_with("login").await;
        assert_at(&browser, "/forgot-password/sent").await;

        let token = app.newest_link_token(&email, "/reset-password").await;
        browser.goto(&format!("/reset-password?token={token}")).await;
        assert_autocomplete(&browser, &[
            ("new_password", "new-password"),
            ("confirm_password", "new-password"),
            ("mfa_code", "one-time-code"),
        ])
        .await;
        page(&browser, "reset-password").await;

        // Mismatched passwords first.
        browser.fill("new_password", NEW_PASSWORD).await;
        browser.fill("confirm_password", "another-password-77").await;
        browser.set_field("mfa_method", "totp").await;
        browser.fill("mfa_code", &app.fresh_code(&secret)).await;
        browser.submit_form_with("new_password").await;
        assert_at(&browser, "/reset-password").await;
        assert_errors_on(&browser, &[]).await;
        page(&browser, "reset-password-errors").await;

        browser.fill("new_password", NEW_PASSWORD).await;
        browser.fill("confirm_password", NEW_PASSWORD).await;
        browser.set_field("mfa_method", "totp").await;
        browser.fill("mfa_code", &app.fresh_code(&secret)).await;
        browser.submit_form_with("new_password").await;
        assert_notice(&browser, "/login", "password_reset").await;
        assert_no_referrer(&browser).await;
        page(&browser, "login-password-reset").await;

        log_in(&browser, &email, NEW_PASSWORD, false).await;
        assert_at(&browser, "/login/two-step").await;
        browser.fill("code", &app.fresh_code(&secret)).await;
        browser.submit_form_with("code").await;
        assert_at(&browser, SETTINGS).await;
        assert_eq!(app.try_log_in(&email, PASSWORD).await.status(), 401, "the old password is gone");
        browser.close().await;
    }
}

// ---------------------------------------------------------------------------------
// Devices and history
// ---------------------------------------------------------------------------------

on_both_backends_in_browser! {
    &[];
    async fn changing_the_password_with_require_all_devices_signs_the_other_browser_out(app) {
        let email = app.verified_account().await;
        let laptop = Browser::open(&app).await;
        let phone = laptop.another().await;
        log_in_to_settings(&laptop, &email, PASSWORD).await;
        log_in_to_settings(&phone, &email, PASSWORD).await;

        let change = laptop.form("/account/security/password");
        assert!(
            change.is_checked("sign_out_other_devices").await,
            "\"Require all devices to sign in with the new password\" is checked by default"
        );
        change.fill("current_password", PASSWORD).await;
        change.fill("new_password", NEW_PASSWORD).await;
        change.fill("confirm_password", NEW_PASSWORD).await;
        change.submit().await;
        assert_notice(&laptop, SETTINGS, "password_changed").await;
        page(&laptop, "security-settings-password-changed").await;

        // The other browser is sent to the login page on its next page.
        phone.goto(SETTINGS).await;
        assert_at(&phone, "/login").await;
        assert_eq!(phone.query_param("return_to").await.as_deref(), Some(SETTINGS));
        log_in(&phone, &email, NEW_PASSWORD, false).await;
        assert_at(&phone, SETTINGS).await;

        // The laptop is still signed in.
        laptop.goto(SETTINGS).await;
        assert_at(&laptop, SETTINGS).await;
        phone.close().await;
        laptop.close().await;
    }

    async fn a_person_signs_out_one_device_then_all_others_from_the_devices_list(app) {
        let email = app.verified_account().await;
        let laptop = Browser::open(&app).await;
        let phone = laptop.another().await;
        log_in_to_settings(&phone, &email, PASSWORD).await;
        log_in_to_settings(&laptop, &email, PASSWORD).await;
        page(&laptop, "security-settings-two-devices").await;

        let phone_session = session_id_of(&phone).await;
        laptop
            .submit_form_containing(&format!(
                "form[action=\"/account/security/sessions/revoke\"] \
                 input[name=\"session_id\"][value=\"{phone_session}\"]"
            ))
            .await;
        assert_notice(&laptop, SETTINGS, "signed_out_device").await;
        page(&laptop, "security-settings-signed-out-device").await;
        phone.goto(SETTINGS).await;
        assert_at(&phone, "/login").await;

        // Back in, then out again with "sign out all others".
        log_in(&phone, &email, PASSWORD, false).await;
        assert_at(&phone, SETTINGS).await;
        laptop.goto(SETTINGS).await;
        laptop.form("/account/security/sessions/revoke-others").submit().await;
        assert_notice(&laptop, SETTINGS, "signed_out_others").await;
        page(&laptop, "security-settings-signed-out-others").await;
        phone.goto(SETTINGS).await;
        assert_at(&phone, "/login").await;
        laptop.goto(SETTINGS).await;
        assert_at(&laptop, SETTINGS).await;
        phone.close().await;
        laptop.close().await;
    }

    async fn a_person_reads_the_login_history_page_by_page(app) {
        let email = app.verified_account().await;
        // More logins than a page holds (the API's default page is 50).
        for _ in 0..55 {
            app.log_in(&email, false).await;
        }
        let browser = Browser::open(&app).await;
        log_in(&browser, &email, WRONG_PASSWORD, false).await;
        log_in_to_settings(&browser, &email, PASSWORD).await;
        let text = main_text(&browser).await;
        assert!(text.contains("127.0.0.1"), "the history shows the IP address: {text}");
        page(&browser, "security-settings-history").await;
        browser.click_link_to("history_after=").await;
        assert_at(&browser, SETTINGS).await;
        assert!(browser.query_param("history_after").await.is_some());
        assert!(main_text(&browser).await.contains("127.0.0.1"), "the next page has entries");
        page(&browser, "security-settings-history-next-page").await;
        browser.close().await;
    }
}

// ---------------------------------------------------------------------------------
// Error pages
// ---------------------------------------------------------------------------------

on_both_backends_in_browser! {
    &[];
    async fn an_unknown_path_shows_the_404_page(app) {
        let browser = Browser::open(&app).await;
        browser.goto("/no-such-page").await;
        assert_at(&browser, "/no-such-page").await;
        page(&browser, "error-404").await;
        browser.close().await;
    }

    async fn repeated_wrong_passwords_end_on_the_429_page_with_the_wait_in_minutes(app) {
        let email = app.verified_account().await;
        let browser = Browser::open(&app).await;
        for _ in 0..5 {
            log_in(&browser, &email, WRONG_PASSWORD, false).await;
            assert_at(&browser, "/login").await;
        }
        log_in(&browser, &email, PASSWORD, false).await;
        let text = main_text(&browser).await;
        assert!(text.contains("minute"), "the 429 page gives the wait in minutes: {text}");
        assert!(browser.cookie("__Host-access").await.is_none());
        page(&browser, "error-429").await;
        browser.close().await;
    }
}

/// The 500 page, provoked on DynamoDB by deleting the server's table under it (the
/// embedded store cannot fail).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_failure_shows_the_500_page_on_dynamodb() {
    let app = TestApp::spawn_for_browser(api_tests::Backend::DynamoDb).await;
    let email = app.verified_account().await;
    let browser = Browser::open(&app).await;
    browser.goto("/login").await;
    let sdk = accounts::aws::sdk_config_from_process_environment().expect("the SDK settings");
    aws_sdk_dynamodb::Client::new(&sdk)
        .delete_table()
        .table_name(&app.app.config.table_name)
        .send()
        .await
        .expect("delete the test table");
    log_in(&browser, &email, PASSWORD, false).await;
    assert!(browser.cookie("__Host-access").await.is_none());
    page(&browser, "error-500").await;
    browser.close().await;
}
