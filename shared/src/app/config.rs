//! Settings from environment variables, read and checked once at start; every problem
//! is reported together so a deploy fails with one clear message.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::credentials::oidc::{ClientAuth, ProviderName, ProviderSettings};
use crate::credentials::password::HashParams;
use crate::values::secret::Secret;

/// Everything the handlers need to know about their deployment.
#[derive(Clone, Debug)]
pub struct Config {
    /// Where the web front end lives; every link in an email starts with it.
    pub app_base_url: BaseUrl,
    /// The DynamoDB table holding every item.
    pub table_name: String,
    /// The sender of every email, e.g. `Account Security <no-reply@example.com>`.
    pub mail_from: String,
    /// An SES configuration set for delivery events, if any.
    pub ses_configuration_set: Option<String>,
    pub password_hashing: HashParams,
    /// The least time an enumeration-sensitive route (signup, resend, forgot) takes, so
    /// that "account exists" and "no such account" cannot be told apart by timing.
    pub enumeration_floor: Duration,
    pub limits: Limits,
    pub sessions: SessionLimits,
    /// The PKCS#8 PEM key that signs access tokens (Ed25519 or P-256). In AWS it is read
    /// from SSM at cold start; when absent (local server, tests) one is generated.
    pub jwt_signing_key: Option<Secret>,
    /// The key used before the last rotation: still accepted and published.
    pub jwt_previous_signing_key: Option<Secret>,
    /// PEM public keys (`-----BEGIN PUBLIC KEY-----`, the current one first) of the
    /// functions that check access tokens without issuing them; they never see the
    /// private key. In AWS read from SSM at cold start.
    pub jwt_verification_keys: Option<String>,
    /// The `iss` of access tokens.
    pub jwt_issuer: String,
    /// The `aud` of access tokens.
    pub jwt_audience: String,
    /// The AES-256-GCM key (base64, 32 bytes) that encrypts TOTP secrets at rest; in AWS
    /// read from SSM at cold start; generated when absent (local server, tests).
    pub totp_encryption_key: Option<Secret>,
    /// The key used before the last rotation: still decrypts.
    pub totp_previous_encryption_key: Option<Secret>,
    /// The issuer name authenticator apps show.
    pub totp_issuer: String,
    /// The cleanup job deletes accounts still unverified this many days after signup,
    /// freeing their email address and username.
    pub unverified_account_max_age_days: i64,
    /// Behind CloudFront: the value of the `X-Origin-Verify` header the distribution adds
    /// to every request it forwards. When set, the Lambda functions answer only requests
    /// that carry it (`403 forbidden` otherwise), and take the client's IP from
    /// CloudFront's `CloudFront-Viewer-Address` instead of API Gateway's source IP (which
    /// is then a CloudFront edge).
    pub origin_verify_secret: Option<Secret>,
    /// The origins (`https://host[:port]`) besides `APP_BASE_URL`'s that a login's
    /// `return_to` may send the browser to (`WEB_RETURN_TO_ORIGINS`, comma-separated).
    pub web_return_to_origins: Vec<String>,
    /// Sign in with Google and Apple.
    pub oauth: OauthConfig,
}

/// The OpenID providers the product is a relying party of.
#[derive(Clone, Debug)]
pub struct OauthConfig {
    /// Where the providers send the browser back (`<base>/v1/oauth/<provider>/callback`):
    /// the API's public origin (`OAUTH_REDIRECT_BASE_URL`, `APP_BASE_URL` by default).
    pub redirect_base: BaseUrl,
    /// The configured providers (a provider without a client id is off).
    pub providers: Vec<ProviderSettings>,
}

impl OauthConfig {
    /// The `redirect_uri` registered with `provider`.
    pub fn redirect_uri(&self, provider: ProviderName) -> String {
        self.redirect_base
            .page(&format!("/v1/oauth/{}/callback", provider.as_str()))
    }
}

/// How long sessions and access tokens live, in seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionLimits {
    pub access_token: i64,
    /// A session without "remember me" ends this long after login.
    pub session: i64,
    /// A "remember me" session ends this long after login...
    pub remember_me: i64,
    /// ...or after this long without a token refresh.
    pub remember_me_idle: i64,
    /// The most valid sessions an account keeps: a login beyond it ends the least
    /// recently used one.
    pub max_per_account: usize,
}

/// Rate limits per client IP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub signups_per_ip_per_hour: u32,
    pub resends_per_ip_per_hour: u32,
    pub login_failures_per_ip_per_hour: u32,
    pub recoveries_per_ip_per_hour: u32,
    pub verify_attempts_per_ip_per_hour: u32,
}

/// An absolute http(s) URL without a trailing slash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BaseUrl(String);

impl BaseUrl {
    /// An absolute `https` or `http` URL with a host, and no user name, password, query
    /// or fragment (WHATWG URL parsing, so an out-of-range port is refused too); a path
    /// is kept as a prefix of every link.
    pub fn parse(input: &str) -> Result<BaseUrl, String> {
        let url = url::Url::parse(input.trim()).map_err(|e| format!("is not a URL: {e}"))?;
        if !matches!(url.scheme(), "https" | "http") {
            return Err("must start with https:// or http://".into());
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err("must have a host".into());
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err("must not hold a user name or password".into());
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err("must have no query or fragment".into());
        }
        Ok(BaseUrl(url.as_str().trim_end_matches('/').to_owned()))
    }

    /// `base + path + ?token=...`: a link into the front end.
    pub fn link(&self, path: &str, token: &str) -> String {
        format!("{}{path}?token={token}", self.0)
    }

    pub fn page(&self, path: &str) -> String {
        format!("{}{path}", self.0)
    }
}

impl fmt::Display for BaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Every problem found in the environment.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration:\n  - {}", .0.join("\n  - "))]
pub struct ConfigError(pub Vec<String>);

/// Reads variables through `lookup`, collecting every problem instead of stopping at
/// the first.
struct Reader<F> {
    lookup: F,
    problems: Vec<String>,
}

impl<F: Fn(&str) -> Option<String>> Reader<F> {
    fn optional(&self, name: &str) -> Option<String> {
        (self.lookup)(name).filter(|v| !v.trim().is_empty())
    }

    fn required(&mut self, name: &str, what: &str) -> String {
        self.optional(name).unwrap_or_else(|| {
            self.problems.push(format!("{name} is missing ({what})"));
            String::new()
        })
    }

    fn number<T: FromStr + Copy>(&mut self, name: &str, default: T) -> T {
        match self.optional(name) {
            None => default,
            Some(text) => text.trim().parse().unwrap_or_else(|_| {
                self.problems
                    .push(format!("{name} must be a whole number, not {text:?}"));
                default
            }),
        }
    }
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads settings through any lookup (tests and the local server layer defaults).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let mut env = Reader {
            lookup,
            problems: Vec::new(),
        };
        let base_url_text = env.required(
            "APP_BASE_URL",
            "the front end's URL, used for links in emails",
        );
        let app_base_url = BaseUrl::parse(&base_url_text).unwrap_or_else(|why| {
            if !base_url_text.is_empty() {
                env.problems.push(format!("APP_BASE_URL {why}"));
            }
            BaseUrl(String::new())
        });
        let table_name = env.required("TABLE_NAME", "the DynamoDB table");
        let mail_from = env.required("MAIL_FROM", "the sender address of every email");
        let ses_configuration_set = env.optional("SES_CONFIGURATION_SET");
        let password_hashing = HashParams {
            memory_kib: env.number("ARGON2_MEMORY_KIB", HashParams::OWASP.memory_kib),
            iterations: env.number("ARGON2_ITERATIONS", HashParams::OWASP.iterations),
            parallelism: env.number("ARGON2_PARALLELISM", HashParams::OWASP.parallelism),
        };
        if !password_hashing.meets_owasp() {
            env.problems.push(format!(
                "ARGON2_* must be at least OWASP's m=19456 KiB, t=2, p=1 (got {password_hashing:?})"
            ));
        }
        let enumeration_floor = Duration::from_millis(env.number("ENUMERATION_FLOOR_MS", 400));
        let limits = Limits {
            signups_per_ip_per_hour: env.number("SIGNUPS_PER_IP_PER_HOUR", 20),
            resends_per_ip_per_hour: env.number("RESENDS_PER_IP_PER_HOUR", 20),
            login_failures_per_ip_per_hour: env.number("LOGIN_FAILURES_PER_IP_PER_HOUR", 100),
            recoveries_per_ip_per_hour: env.number("RECOVERIES_PER_IP_PER_HOUR", 20),
            verify_attempts_per_ip_per_hour: env.number("VERIFY_ATTEMPTS_PER_IP_PER_HOUR", 30),
        };
        let minutes = |n: i64| n * 60;
        let sessions = SessionLimits {
            access_token: minutes(env.number("ACCESS_TOKEN_MINUTES", 15)),
            session: minutes(60) * env.number("SESSION_HOURS", 12),
            remember_me: minutes(60 * 24) * env.number("REMEMBER_ME_DAYS", 30),
            remember_me_idle: minutes(60 * 24) * env.number("REMEMBER_ME_IDLE_DAYS", 7),
            max_per_account: env.number("MAX_SESSIONS_PER_ACCOUNT", 50),
        };
        // A login ends at most this many sessions in its transaction (which also holds
        // the new session and its other writes).
        if !(1..=90).contains(&sessions.max_per_account) {
            env.problems
                .push("MAX_SESSIONS_PER_ACCOUNT must be from 1 to 90".into());
        }
        if [
            sessions.access_token,
            sessions.session,
            sessions.remember_me,
            sessions.remember_me_idle,
        ]
        .iter()
        .any(|&seconds| seconds <= 0)
        {
            env.problems
                .push("session and token lifetimes must be positive".into());
        }
        let unverified_account_max_age_days = env.number("UNVERIFIED_ACCOUNT_MAX_AGE_DAYS", 7);
        if unverified_account_max_age_days < 1 {
            env.problems
                .push("UNVERIFIED_ACCOUNT_MAX_AGE_DAYS must be at least 1".into());
        }
        let origin_verify_secret = env.optional("ORIGIN_VERIFY_SECRET").map(Secret::new);
        let web_return_to_origins = env
            .optional("WEB_RETURN_TO_ORIGINS")
            .map(|list| return_to_origins(&list, &mut env.problems))
            .unwrap_or_default();
        let oauth = OauthConfig {
            redirect_base: match env.optional("OAUTH_REDIRECT_BASE_URL") {
                None => app_base_url.clone(),
                Some(text) => BaseUrl::parse(&text).unwrap_or_else(|why| {
                    env.problems.push(format!("OAUTH_REDIRECT_BASE_URL {why}"));
                    app_base_url.clone()
                }),
            },
            providers: oauth_providers(&mut env),
        };
        let jwt_signing_key = env.optional("JWT_SIGNING_KEY").map(Secret::new);
        let jwt_previous_signing_key = env.optional("JWT_PREVIOUS_SIGNING_KEY").map(Secret::new);
        let jwt_verification_keys = env.optional("JWT_VERIFICATION_KEYS");
        let jwt_issuer = env
            .optional("JWT_ISSUER")
            .unwrap_or_else(|| app_base_url.to_string());
        let jwt_audience = env
            .optional("JWT_AUDIENCE")
            .unwrap_or_else(|| "accounts-api".to_owned());
        let totp_encryption_key = env.optional("TOTP_ENCRYPTION_KEY").map(Secret::new);
        let totp_previous_encryption_key = env
            .optional("TOTP_PREVIOUS_ENCRYPTION_KEY")
            .map(Secret::new);
        let totp_issuer = env
            .optional("TOTP_ISSUER")
            .unwrap_or_else(|| "Account Security".to_owned());
        if env.problems.is_empty() {
            Ok(Config {
                app_base_url,
                table_name,
                mail_from,
                ses_configuration_set,
                password_hashing,
                enumeration_floor,
                limits,
                sessions,
                jwt_signing_key,
                jwt_previous_signing_key,
                jwt_verification_keys,
                jwt_issuer,
                jwt_audience,
                totp_encryption_key,
                totp_previous_encryption_key,
                totp_issuer,
                unverified_account_max_age_days,
                origin_verify_secret,
                web_return_to_origins,
                oauth,
            })
        } else {
            Err(ConfigError(env.problems))
        }
    }
}

/// Google (`GOOGLE_CLIENT_ID`, `GOOGLE_CLIENT_SECRET`, `GOOGLE_ISSUER`) and Apple
/// (`APPLE_CLIENT_ID`, `APPLE_TEAM_ID`, `APPLE_KEY_ID`, `APPLE_PRIVATE_KEY`,
/// `APPLE_ISSUER`), each on when its client id is set and then complete.
fn oauth_providers<F: Fn(&str) -> Option<String>>(env: &mut Reader<F>) -> Vec<ProviderSettings> {
    let mut providers = Vec::new();
    let issuer = |env: &mut Reader<F>, name: &str, default: &str| {
        let issuer = env.optional(name).unwrap_or_else(|| default.to_owned());
        let trimmed = issuer.trim().trim_end_matches('/').to_owned();
        match url::Url::parse(&trimmed) {
            Ok(url) if matches!(url.scheme(), "https" | "http") && url.query().is_none() => {}
            _ => env.problems.push(format!("{name} must be an issuer URL")),
        }
        trimmed
    };
    if let Some(client_id) = env.optional("GOOGLE_CLIENT_ID") {
        let secret = env.required("GOOGLE_CLIENT_SECRET", "Google's client secret");
        providers.push(ProviderSettings {
            name: ProviderName::Google,
            issuer: issuer(env, "GOOGLE_ISSUER", "https://accounts.google.com"),
            client_id,
            client_auth: ClientAuth::Secret(Secret::new(secret)),
        });
    }
    if let Some(client_id) = env.optional("APPLE_CLIENT_ID") {
        let team_id = env.required("APPLE_TEAM_ID", "the Apple developer team");
        let key_id = env.required("APPLE_KEY_ID", "the id of the Sign in with Apple key");
        let key = env.required("APPLE_PRIVATE_KEY", "the Sign in with Apple key (PEM)");
        providers.push(ProviderSettings {
            name: ProviderName::Apple,
            issuer: issuer(env, "APPLE_ISSUER", "https://appleid.apple.com"),
            client_id,
            client_auth: ClientAuth::AppleKey {
                team_id,
                key_id,
                private_key_pem: Secret::new(key),
            },
        });
    }
    providers
}

/// The origins of `WEB_RETURN_TO_ORIGINS`, each as the browser serialises it (so that
/// `https://Example.com:443/` matches the `https://example.com` a URL has).
fn return_to_origins(list: &str, problems: &mut Vec<String>) -> Vec<String> {
    list.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .filter_map(|item| match url::Url::parse(item) {
            Ok(url) if matches!(url.scheme(), "https" | "http") && url.path() == "/" => {
                Some(url.origin().ascii_serialization())
            }
            _ => {
                problems.push(format!(
                    "WEB_RETURN_TO_ORIGINS holds {item:?}, which is not an origin like https://example.com"
                ));
                None
            }
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|name| map.get(name).cloned())
    }

    const MINIMAL: &[(&str, &str)] = &[
        ("APP_BASE_URL", "https://app.example.com/"),
        ("TABLE_NAME", "accounts"),
        ("MAIL_FROM", "no-reply@example.com"),
    ];

    #[test]
    fn a_minimal_environment_gets_safe_defaults() {
        let config = config(MINIMAL).unwrap();
        assert_eq!(config.app_base_url.to_string(), "https://app.example.com");
        assert_eq!(config.password_hashing, HashParams::OWASP);
        assert_eq!(config.enumeration_floor, Duration::from_millis(400));
        assert_eq!(config.unverified_account_max_age_days, 7);
    }

    #[test]
    fn unverified_accounts_live_at_least_a_day() {
        let mut vars = MINIMAL.to_vec();
        vars.push(("UNVERIFIED_ACCOUNT_MAX_AGE_DAYS", "0"));
        let error = config(&vars).unwrap_err().to_string();
        assert!(error.contains("UNVERIFIED_ACCOUNT_MAX_AGE_DAYS"), "{error}");
        vars.pop();
        vars.push(("UNVERIFIED_ACCOUNT_MAX_AGE_DAYS", "30"));
        assert_eq!(config(&vars).unwrap().unverified_account_max_age_days, 30);
    }

    #[test]
    fn every_missing_variable_is_reported_at_once() {
        let error = config(&[]).unwrap_err().to_string();
        for name in ["APP_BASE_URL", "TABLE_NAME", "MAIL_FROM"] {
            assert!(error.contains(name), "{error}");
        }
    }

    #[test]
    fn hashing_weaker_than_owasp_is_refused() {
        let mut vars = MINIMAL.to_vec();
        vars.push(("ARGON2_MEMORY_KIB", "4096"));
        assert!(config(&vars).unwrap_err().to_string().contains("ARGON2"));
    }

    #[test]
    fn return_to_origins_are_origins_only() {
        let mut problems = Vec::new();
        assert_eq!(
            return_to_origins(
                " https://Market.example:443/ , http://localhost:4000",
                &mut problems
            ),
            ["https://market.example", "http://localhost:4000"]
        );
        assert!(problems.is_empty());
        return_to_origins("https://market.example/jobs,ftp://x", &mut problems);
        assert_eq!(problems.len(), 2);
    }

    #[test]
    fn a_base_url_needs_a_scheme_and_host() {
        assert!(BaseUrl::parse("app.example.com").is_err());
        assert!(BaseUrl::parse("https://").is_err());
        for bad in [
            "https://user:pass@app.example.com",
            "https://app.example.com@evil.example",
            "https://app.example.com:99999",
            "https://app.example.com/?next=x",
            "https://app.example.com/#top",
            "ftp://app.example.com",
        ] {
            assert!(BaseUrl::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            BaseUrl::parse("https://App.Example.com:8443/accounts/")
                .unwrap()
                .to_string(),
            "https://app.example.com:8443/accounts"
        );
        let url = BaseUrl::parse("http://localhost:3000").unwrap();
        assert_eq!(
            url.link("/verify-email", "abc"),
            "http://localhost:3000/verify-email?token=abc"
        );
    }
}
