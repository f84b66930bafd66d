//! Signing in with the local OpenID providers (`tests/oidc/provider.mjs`, started by
//! `scripts/emulators.sh`): a person logs in at the provider's real authorization
//! endpoint over HTTP (its interaction completed by a form post, as a browser would), and
//! the test holds what the provider sent back for the product's callback.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use serde_json::Value;

use crate::{TestApp, required_env};

/// The configuration that points the server at the local providers (from `OIDC_*`).
pub fn overrides() -> &'static [(&'static str, &'static str)] {
    static OVERRIDES: OnceLock<Vec<(&'static str, &'static str)>> = OnceLock::new();
    OVERRIDES.get_or_init(|| {
        let leak = |value: String| -> &'static str { Box::leak(value.into_boxed_str()) };
        let key_file = required_env("OIDC_APPLE_KEY_FILE");
        let apple_key = std::fs::read_to_string(&key_file)
            .unwrap_or_else(|e| panic!("reading {key_file}: {e}"));
        vec![
            ("GOOGLE_ISSUER", leak(required_env("OIDC_GOOGLE_ISSUER"))),
            (
                "GOOGLE_CLIENT_ID",
                leak(required_env("OIDC_GOOGLE_CLIENT_ID")),
            ),
            (
                "GOOGLE_CLIENT_SECRET",
                leak(required_env("OIDC_GOOGLE_CLIENT_SECRET")),
            ),
            ("APPLE_ISSUER", leak(required_env("OIDC_APPLE_ISSUER"))),
            (
                "APPLE_CLIENT_ID",
                leak(required_env("OIDC_APPLE_CLIENT_ID")),
            ),
            ("APPLE_TEAM_ID", leak(required_env("OIDC_APPLE_TEAM_ID"))),
            ("APPLE_KEY_ID", leak(required_env("OIDC_APPLE_KEY_ID"))),
            ("APPLE_PRIVATE_KEY", leak(apple_key)),
            ("WEB_RETURN_TO_ORIGINS", "https://market.example.test"),
        ]
    })
}

fn issuer(provider: &str) -> String {
    match provider {
        "google" => required_env("OIDC_GOOGLE_ISSUER"),
        "apple" => required_env("OIDC_APPLE_ISSUER"),
        other => panic!("no local provider {other}"),
    }
}

/// A person at a provider, as the provider's login step is told.
#[derive(Clone, Debug)]
pub struct Person {
    pub sub: String,
    pub email: String,
    pub email_verified: bool,
    /// Google Workspace's hosted domain.
    pub hd: Option<String>,
    pub is_private_email: bool,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
}

impl Person {
    /// A person with a fresh `sub` and a verified `@gmail.com` address.
    pub fn gmail() -> Person {
        Person::with_email(&format!(
            "p{}@gmail.com",
            &uuid::Uuid::new_v4().simple().to_string()[..16]
        ))
    }

    pub fn with_email(email: &str) -> Person {
        Person {
            sub: uuid::Uuid::new_v4().simple().to_string(),
            email: email.to_owned(),
            email_verified: true,
            hd: None,
            is_private_email: false,
            given_name: Some("Ada".into()),
            family_name: Some("Lovelace".into()),
        }
    }
}

/// What the provider sent back, and the browser's cookie for the product.
#[derive(Clone, Debug)]
pub struct Authorization {
    pub provider: String,
    pub code: String,
    pub state: String,
    /// Apple's `user` parameter.
    pub user: Option<String>,
    /// `name=value` of the product's `__Host-oauth-<provider>` cookie.
    pub cookie: String,
    /// The authorization URL the product sent the browser to.
    pub authorization_url: String,
}

fn cookies_of(response: &reqwest::Response) -> Vec<(String, String)> {
    response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|line| line.split(';').next())
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

fn location(response: &reqwest::Response, base: &str) -> String {
    let text = response
        .headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("no Location in a {} answer", response.status()));
    url::Url::parse(base)
        .and_then(|base| base.join(text))
        .expect("a Location URL")
        .to_string()
}

/// The value of hidden input `name` in a form_post page.
fn hidden_input(html: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker)? + marker.len();
    let end = html[start..].find('"')? + start;
    Some(
        html[start..end]
            .replace("&quot;", "\"")
            .replace("&#34;", "\"")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&#39;", "'")
            .replace("&amp;", "&"),
    )
}

/// Logs `person` in at `authorization_url` (one the product made, whose start set
/// `cookie`), with `http` (which must not follow redirects).
pub async fn authorize_at(
    http: &reqwest::Client,
    provider: &str,
    authorization_url: &str,
    cookie: String,
    person: &Person,
) -> Authorization {
    let issuer = issuer(provider);
    let mut jar: BTreeMap<String, String> = BTreeMap::new();
    let send = |request: reqwest::RequestBuilder, jar: &BTreeMap<String, String>| {
        let header: Vec<String> = jar.iter().map(|(k, v)| format!("{k}={v}")).collect();
        request.header(COOKIE, header.join("; ")).send()
    };
    let to_interaction = send(http.get(authorization_url), &jar)
        .await
        .expect("the provider answers");
    assert_eq!(
        to_interaction.status(),
        303,
        "the provider asks for a login"
    );
    jar.extend(cookies_of(&to_interaction));
    let interaction = location(&to_interaction, &issuer);
    let mut form = vec![
        ("sub", person.sub.clone()),
        ("email", person.email.clone()),
        ("email_verified", person.email_verified.to_string()),
        ("is_private_email", person.is_private_email.to_string()),
    ];
    for (name, value) in [
        ("hd", &person.hd),
        ("given_name", &person.given_name),
        ("family_name", &person.family_name),
    ] {
        if let Some(value) = value {
            form.push((name, value.clone()));
        }
    }
    let logged_in = send(http.post(format!("{interaction}/login")).form(&form), &jar)
        .await
        .expect("the provider's login step answers");
    assert_eq!(
        logged_in.status(),
        303,
        "the login step resumes the authorization"
    );
    jar.extend(cookies_of(&logged_in));
    let resumed = send(http.get(location(&logged_in, &issuer)), &jar)
        .await
        .expect("the provider resumes");
    let (code, state, user) = match provider {
        "apple" => {
            assert_eq!(resumed.status(), 200, "Apple answers with a form_post page");
            let html = resumed.text().await.expect("the form_post page");
            (
                hidden_input(&html, "code").expect("a code"),
                hidden_input(&html, "state").expect("a state"),
                hidden_input(&html, "user"),
            )
        }
        _ => {
            assert_eq!(resumed.status(), 303, "Google redirects to the callback");
            let url = url::Url::parse(&location(&resumed, &issuer)).expect("a callback URL");
            let param = |name: &str| {
                url.query_pairs()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.into_owned())
            };
            (
                param("code").expect("a code"),
                param("state").expect("a state"),
                None,
            )
        }
    };
    Authorization {
        provider: provider.to_owned(),
        code,
        state,
        user,
        cookie,
        authorization_url: authorization_url.to_owned(),
    }
}

impl TestApp {
    /// `GET /v1/oauth/<provider>/start` with `return_to`, answered `302`.
    pub async fn oauth_start(&self, provider: &str, return_to: &str) -> reqwest::Response {
        let query = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("return_to", return_to)
            .finish();
        self.get(&format!("/v1/oauth/{provider}/start?{query}"))
            .await
    }

    /// Starts a sign-in and logs `person` in at the provider; the provider's answer is
    /// not yet given to the product.
    pub async fn authorize(&self, provider: &str, person: &Person) -> Authorization {
        let started = self.oauth_start(provider, "/jobs").await;
        assert_eq!(started.status(), 302, "start answers a redirect");
        let cookie = cookies_of(&started)
            .into_iter()
            .find(|(name, _)| *name == format!("__Host-oauth-{provider}"))
            .map(|(name, value)| format!("{name}={value}"))
            .expect("the start sets the state cookie");
        let authorization_url = location(&started, &self.address);
        authorize_at(&self.http, provider, &authorization_url, cookie, person).await
    }

    /// Gives the provider's answer to the product's callback, from a browser holding
    /// `cookie` (`None`: no cookie at all).
    pub async fn oauth_callback_with(
        &self,
        auth: &Authorization,
        cookie: Option<&str>,
    ) -> reqwest::Response {
        let path = format!("{}/v1/oauth/{}/callback", self.address, auth.provider);
        let mut pairs = vec![("code", auth.code.as_str()), ("state", auth.state.as_str())];
        if let Some(user) = &auth.user {
            pairs.push(("user", user));
        }
        let request = match auth.provider.as_str() {
            "apple" => self.http.post(path).form(&pairs),
            _ => self.http.get(path).query(&pairs),
        };
        let request = match cookie {
            Some(cookie) => request.header(COOKIE, cookie),
            None => request,
        };
        request.send().await.expect("the callback answers")
    }

    pub async fn oauth_callback(&self, auth: &Authorization) -> reqwest::Response {
        self.oauth_callback_with(auth, Some(&auth.cookie)).await
    }

    /// Signs `person` in with `provider` and answers the callback's status and body.
    pub async fn sign_in_with(&self, provider: &str, person: &Person) -> (u16, Value) {
        let auth = self.authorize(provider, person).await;
        let answer = self.oauth_callback(&auth).await;
        let status = answer.status().as_u16();
        (status, answer.json().await.expect("a JSON answer"))
    }

    /// Has the provider alter the ID token its token endpoint gives for `auth`'s code.
    pub async fn tamper_with(&self, auth: &Authorization, mode: &str) {
        let answer = self
            .http
            .post(format!("{}/__test/tamper", issuer(&auth.provider)))
            .json(&serde_json::json!({ "code": auth.code, "mode": mode }))
            .send()
            .await
            .expect("the provider takes the instruction");
        assert_eq!(answer.status(), 204);
    }

    /// `POST /v1/oauth/signup`.
    pub async fn oauth_signup(&self, token: &str, account_type: &str) -> reqwest::Response {
        self.post(
            "/v1/oauth/signup",
            &serde_json::json!({ "token": token, "account_type": account_type }),
        )
        .await
    }

    /// `POST /v1/oauth/link`.
    pub async fn oauth_link(&self, token: &str, password: &str) -> reqwest::Response {
        self.post(
            "/v1/oauth/link",
            &serde_json::json!({ "token": token, "password": password }),
        )
        .await
    }
}
