//! Google and Apple as OpenID providers, from the relying party's side: discovery, the
//! authorization request (code flow, PKCE S256, `state`, `nonce`), the code exchange (with
//! Apple's ES256 client secret), and the ID token's verification (signature against the
//! provider's JWKS, cached and fetched again for an unknown `kid`; `alg` pinned to RS256,
//! `iss`, `aud`, `azp`, `exp`, `iat` against the product's clock, and `nonce`).
//!
//! Why not the `openidconnect` crate: it links RustCrypto's `rsa` (RUSTSEC-2023-0071, no
//! fixed release), a second JOSE stack beside `jsonwebtoken` and its own HTTP client; its
//! clock is the system's, while every expiry here is judged by [`crate::clock`]. The two
//! things the relying party must get right (verifying ID tokens and Apple's client secret)
//! are `jsonwebtoken`'s (on aws-lc, already linked for access tokens); what is left is two
//! HTTP calls and a URL.

use std::collections::HashSet;
use std::sync::RwLock;
use std::time::Duration;

use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::Deserialize;

use crate::values::secret::{Secret, digests_match, sha256_hex};

/// The roots of the providers' endpoints (see the file's header).
pub const PROVIDER_TRUST_ROOTS: &str = include_str!("../../certs/oidc-providers.pem");

/// How far the provider's clock may be from ours.
const LEEWAY_SECONDS: i64 = 60;
/// The least time between two JWKS fetches for unknown `kid`s: a stream of forged tokens
/// must not become a stream of requests to the provider.
const JWKS_REFETCH_SECONDS: i64 = 30;
/// How long one call to a provider may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// How long Apple's client secret is valid (Apple allows up to six months; one call needs
/// one minute).
const APPLE_SECRET_SECONDS: i64 = 300;

/// The providers the product supports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProviderName {
    Google,
    Apple,
}

impl ProviderName {
    pub fn parse(text: &str) -> Option<ProviderName> {
        match text {
            "google" => Some(ProviderName::Google),
            "apple" => Some(ProviderName::Apple),
            _ => None,
        }
    }

    /// The name in paths, items and the login history.
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderName::Google => "google",
            ProviderName::Apple => "apple",
        }
    }

    /// The name people read.
    pub fn display(self) -> &'static str {
        match self {
            ProviderName::Google => "Google",
            ProviderName::Apple => "Apple",
        }
    }
}

/// How the product authenticates to a provider's token endpoint.
#[derive(Clone, Debug)]
pub enum ClientAuth {
    /// Google: the client secret.
    Secret(Secret),
    /// Apple: a short ES256 JWT signed with the product's key from Apple.
    AppleKey {
        team_id: String,
        key_id: String,
        private_key_pem: Secret,
    },
}

/// One provider's registration.
#[derive(Clone, Debug)]
pub struct ProviderSettings {
    pub name: ProviderName,
    /// The issuer (`https://accounts.google.com`); tests point it at a local provider.
    pub issuer: String,
    pub client_id: String,
    pub client_auth: ClientAuth,
}

/// What a verified ID token says about the person.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProviderIdentity {
    pub provider: ProviderName,
    pub subject: String,
    pub email: Option<String>,
    /// The provider vouches for the address: `email_verified`, and for Google only for an
    /// address Google is authoritative for (`@gmail.com`, or a Workspace domain: `hd`).
    pub email_verified: bool,
    /// Apple's private relay address.
    pub private_email: bool,
    pub full_name: Option<String>,
}

/// Why a callback's answer from the provider is refused.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    #[error("the provider refused the code: {0}")]
    CodeRefused(String),
    #[error("the ID token is not acceptable: {0}")]
    TokenRefused(&'static str),
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

#[derive(Clone, Debug, Deserialize)]
struct Discovery {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    jwks_uri: String,
}

/// One provider with its caches.
pub struct Provider {
    pub settings: ProviderSettings,
    discovery: RwLock<Option<Discovery>>,
    /// The JWKS and when it was fetched.
    jwks: RwLock<Option<(JwkSet, i64)>>,
}

type HttpClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

/// The configured providers and the HTTP client that reaches them.
pub struct Providers {
    providers: Vec<Provider>,
    http: Option<HttpClient>,
}

/// The secrets of one authorization request, all derived from the browser's handle (the
/// `__Host-` cookie's 256 random bits), so that only the handle's digest is stored.
pub struct RequestSecrets {
    pub state: String,
    pub nonce: String,
    pub code_verifier: String,
}

impl RequestSecrets {
    pub fn of(handle: &Secret) -> RequestSecrets {
        let derive = |label: &str| {
            let digest = sha256_hex(&format!("{label}:{}", handle.expose()));
            // 256 bits of hex, as base64url: 43 characters, within PKCE's 43..128.
            let bytes: Vec<u8> = (0..digest.len())
                .step_by(2)
                .filter_map(|i| u8::from_str_radix(&digest[i..i + 2], 16).ok())
                .collect();
            URL_SAFE_NO_PAD.encode(bytes)
        };
        RequestSecrets {
            state: derive("state"),
            nonce: derive("nonce"),
            code_verifier: derive("pkce"),
        }
    }

    /// The PKCE S256 challenge of the verifier.
    pub fn code_challenge(&self) -> String {
        use sha2::Digest;
        URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(self.code_verifier.as_bytes()))
    }
}

#[derive(Deserialize)]
struct TokenResponse {
    id_token: Option<String>,
}

/// `true`, `"true"` (Apple sends strings) or absent.
#[derive(Deserialize)]
#[serde(untagged)]
enum Flag {
    Bool(bool),
    Text(String),
}

impl Flag {
    fn is_true(flag: Option<&Flag>) -> bool {
        match flag {
            Some(Flag::Bool(value)) => *value,
            Some(Flag::Text(text)) => text == "true",
            None => false,
        }
    }
}

#[derive(Deserialize)]
struct IdClaims {
    sub: String,
    iat: i64,
    exp: i64,
    nonce: Option<String>,
    azp: Option<String>,
    #[serde(default)]
    aud: Audience,
    email: Option<String>,
    email_verified: Option<Flag>,
    is_private_email: Option<Flag>,
    hd: Option<String>,
    name: Option<String>,
}

#[derive(Default, Deserialize)]
#[serde(untagged)]
enum Audience {
    #[default]
    None,
    One(serde::de::IgnoredAny),
    Many(Vec<serde::de::IgnoredAny>),
}

impl Audience {
    fn count(&self) -> usize {
        match self {
            Audience::None => 0,
            Audience::One(_) => 1,
            Audience::Many(list) => list.len(),
        }
    }
}

impl Providers {
    /// The providers of `settings`; the HTTP client trusts `roots_pem` for `https`.
    pub fn new(settings: Vec<ProviderSettings>, roots_pem: &str) -> anyhow::Result<Providers> {
        let http = match settings.is_empty() {
            true => None,
            false => {
                let tls = crate::aws::https::tls_config(roots_pem)?;
                let connector = hyper_rustls::HttpsConnectorBuilder::new()
                    .with_tls_config(tls)
                    .https_or_http()
                    .enable_http1()
                    .build();
                Some(Client::builder(TokioExecutor::new()).build(connector))
            }
        };
        Ok(Providers {
            providers: settings
                .into_iter()
                .map(|settings| Provider {
                    settings,
                    discovery: RwLock::new(None),
                    jwks: RwLock::new(None),
                })
                .collect(),
            http,
        })
    }

    /// The provider, when it is configured.
    pub fn get(&self, name: ProviderName) -> Option<&Provider> {
        self.providers.iter().find(|p| p.settings.name == name)
    }

    async fn call(&self, request: http::Request<Full<Bytes>>) -> anyhow::Result<(u16, Bytes)> {
        let http = self.http.as_ref().context("no provider is configured")?;
        let response = tokio::time::timeout(CALL_TIMEOUT, http.request(request))
            .await
            .context("a provider did not answer in time")?
            .context("calling a provider")?;
        let status = response.status().as_u16();
        let body = tokio::time::timeout(CALL_TIMEOUT, response.into_body().collect())
            .await
            .context("a provider's answer did not arrive in time")?
            .context("reading a provider's answer")?
            .to_bytes();
        Ok((status, body))
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&self, url: &str) -> anyhow::Result<T> {
        let request = http::Request::get(url)
            .header(http::header::ACCEPT, "application/json")
            .body(Full::new(Bytes::new()))
            .context("building a provider request")?;
        let (status, body) = self.call(request).await?;
        anyhow::ensure!(status == 200, "{url} answered {status}");
        serde_json::from_slice(&body).with_context(|| format!("reading {url}"))
    }

    async fn discovery(&self, provider: &Provider) -> anyhow::Result<Discovery> {
        if let Ok(cached) = provider.discovery.read()
            && let Some(discovery) = cached.as_ref()
        {
            return Ok(discovery.clone());
        }
        let issuer = &provider.settings.issuer;
        let url = format!(
            "{}/.well-known/openid-configuration",
            issuer.trim_end_matches('/')
        );
        let discovery: Discovery = self.get_json(&url).await?;
        // A document that names another issuer is not this provider's (the mix-up).
        anyhow::ensure!(
            discovery.issuer == *issuer,
            "the discovery document of {issuer} names another issuer"
        );
        if let Ok(mut cached) = provider.discovery.write() {
            *cached = Some(discovery.clone());
        }
        Ok(discovery)
    }

    /// Where the browser goes to sign in with the provider.
    pub async fn authorization_url(
        &self,
        provider: &Provider,
        secrets: &RequestSecrets,
        redirect_uri: &str,
    ) -> anyhow::Result<String> {
        let discovery = self.discovery(provider).await?;
        let mut url = url::Url::parse(&discovery.authorization_endpoint)
            .context("the provider's authorization endpoint is not a URL")?;
        let challenge = secrets.code_challenge();
        {
            let mut query = url.query_pairs_mut();
            query
                .append_pair("response_type", "code")
                .append_pair("client_id", &provider.settings.client_id)
                .append_pair("redirect_uri", redirect_uri)
                .append_pair("state", &secrets.state)
                .append_pair("nonce", &secrets.nonce)
                .append_pair("code_challenge", &challenge)
                .append_pair("code_challenge_method", "S256");
            match provider.settings.name {
                ProviderName::Google => {
                    query.append_pair("scope", "openid email profile");
                }
                // Apple sends the name and email only with `form_post`.
                ProviderName::Apple => {
                    query
                        .append_pair("scope", "openid email name")
                        .append_pair("response_mode", "form_post");
                }
            }
        }
        Ok(url.into())
    }

    /// Exchanges the code and verifies the ID token it brings.
    pub async fn exchange(
        &self,
        provider: &Provider,
        code: &str,
        secrets: &RequestSecrets,
        redirect_uri: &str,
        now: i64,
    ) -> Result<ProviderIdentity, ProviderError> {
        let discovery = self.discovery(provider).await?;
        let client_secret = client_secret(&provider.settings, now)?;
        let form = form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "authorization_code")
            .append_pair("code", code)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("client_id", &provider.settings.client_id)
            .append_pair("client_secret", client_secret.expose())
            .append_pair("code_verifier", &secrets.code_verifier)
            .finish();
        let request = http::Request::post(&discovery.token_endpoint)
            .header(
                http::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .header(http::header::ACCEPT, "application/json")
            .body(Full::new(Bytes::from(form)))
            .context("building a token request")?;
        let (status, body) = self.call(request).await?;
        if status != 200 {
            // The provider's error code only (`invalid_grant`): never the body as a whole.
            let code = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v["error"].as_str().map(str::to_owned))
                .unwrap_or_else(|| format!("status {status}"));
            return Err(ProviderError::CodeRefused(code));
        }
        let response: TokenResponse = serde_json::from_slice(&body)
            .map_err(|_| ProviderError::TokenRefused("the token response is not JSON"))?;
        let id_token = response
            .id_token
            .ok_or(ProviderError::TokenRefused("no ID token"))?;
        self.verify_id_token(provider, &discovery, &id_token, &secrets.nonce, now)
            .await
    }

    async fn verify_id_token(
        &self,
        provider: &Provider,
        discovery: &Discovery,
        id_token: &str,
        nonce: &str,
        now: i64,
    ) -> Result<ProviderIdentity, ProviderError> {
        let settings = &provider.settings;
        let header = jsonwebtoken::decode_header(id_token)
            .map_err(|_| ProviderError::TokenRefused("malformed header"))?;
        // Pinned: Google and Apple sign ID tokens with RS256. `none`, HMAC with the public
        // key, or any other algorithm is refused before a key is looked at.
        if header.alg != Algorithm::RS256 {
            return Err(ProviderError::TokenRefused("algorithm not allowed"));
        }
        let kid = header.kid.ok_or(ProviderError::TokenRefused("no key id"))?;
        let key = self.key(provider, discovery, &kid, now).await?;
        let mut validation = Validation::new(Algorithm::RS256);
        // Expiry is judged by the product's clock below, not the system's.
        validation.validate_exp = false;
        validation.required_spec_claims = HashSet::new();
        let mut issuers = vec![settings.issuer.as_str()];
        if settings.name == ProviderName::Google && settings.issuer == "https://accounts.google.com"
        {
            // Google's documentation: either form may be the `iss` of its ID tokens.
            issuers.push("accounts.google.com");
        }
        validation.set_issuer(&issuers);
        validation.set_audience(&[settings.client_id.as_str()]);
        let claims = jsonwebtoken::decode::<IdClaims>(id_token, &key, &validation)
            .map_err(|e| {
                use jsonwebtoken::errors::ErrorKind;
                ProviderError::TokenRefused(match e.kind() {
                    ErrorKind::InvalidIssuer => "another issuer",
                    ErrorKind::InvalidAudience => "another audience",
                    ErrorKind::InvalidSignature => "bad signature",
                    _ => "not a valid ID token",
                })
            })?
            .claims;
        if claims.aud.count() > 1 && claims.azp.as_deref() != Some(settings.client_id.as_str()) {
            return Err(ProviderError::TokenRefused("issued to another party"));
        }
        if claims.exp + LEEWAY_SECONDS <= now {
            return Err(ProviderError::TokenRefused("expired"));
        }
        if claims.iat > now + LEEWAY_SECONDS || claims.iat > claims.exp {
            return Err(ProviderError::TokenRefused("issued in the future"));
        }
        let nonce_matches = claims
            .nonce
            .as_deref()
            .is_some_and(|presented| digests_match(&sha256_hex(presented), &sha256_hex(nonce)));
        if !nonce_matches {
            return Err(ProviderError::TokenRefused("nonce mismatch"));
        }
        if claims.sub.is_empty() || claims.sub.len() > 255 {
            return Err(ProviderError::TokenRefused("no subject"));
        }
        let said_verified = Flag::is_true(claims.email_verified.as_ref());
        let email_verified = said_verified
            && match settings.name {
                // Google vouches only for addresses it is authoritative for.
                ProviderName::Google => claims.email.as_deref().is_some_and(|email| {
                    email.to_ascii_lowercase().ends_with("@gmail.com")
                        || claims.hd.as_deref().is_some_and(|hd| {
                            !hd.is_empty()
                                && email
                                    .rsplit_once('@')
                                    .is_some_and(|(_, domain)| domain.eq_ignore_ascii_case(hd))
                        })
                }),
                ProviderName::Apple => true,
            };
        Ok(ProviderIdentity {
            provider: settings.name,
            subject: claims.sub,
            email: claims.email,
            email_verified,
            private_email: Flag::is_true(claims.is_private_email.as_ref()),
            full_name: claims.name,
        })
    }

    /// The provider's key `kid`: from the cached JWKS, or from a fresh one when the cache
    /// lacks it (a key rotation), at most every [`JWKS_REFETCH_SECONDS`].
    async fn key(
        &self,
        provider: &Provider,
        discovery: &Discovery,
        kid: &str,
        now: i64,
    ) -> Result<DecodingKey, ProviderError> {
        let cached = provider.jwks.read().ok().and_then(|jwks| jwks.clone());
        if let Some((set, _)) = &cached
            && let Some(key) = rsa_key(set, kid)?
        {
            return Ok(key);
        }
        let fetched_recently = cached
            .as_ref()
            .is_some_and(|(_, at)| now - at < JWKS_REFETCH_SECONDS);
        if fetched_recently {
            return Err(ProviderError::TokenRefused("unknown key"));
        }
        let set: JwkSet = self.get_json(&discovery.jwks_uri).await?;
        let key = rsa_key(&set, kid)?;
        if let Ok(mut jwks) = provider.jwks.write() {
            *jwks = Some((set, now));
        }
        key.ok_or(ProviderError::TokenRefused("unknown key"))
    }
}

/// The RSA key `kid` of a JWKS, if it has one meant for RS256 signatures.
fn rsa_key(set: &JwkSet, kid: &str) -> Result<Option<DecodingKey>, ProviderError> {
    use jsonwebtoken::jwk::{AlgorithmParameters, KeyAlgorithm};
    let Some(jwk) = set.find(kid) else {
        return Ok(None);
    };
    let alg_ok = jwk
        .common
        .key_algorithm
        .is_none_or(|alg| alg == KeyAlgorithm::RS256);
    if !alg_ok || !matches!(jwk.algorithm, AlgorithmParameters::RSA(_)) {
        return Err(ProviderError::TokenRefused("key not for RS256"));
    }
    DecodingKey::from_jwk(jwk)
        .map(Some)
        .map_err(|_| ProviderError::TokenRefused("unusable key"))
}

#[derive(serde::Serialize)]
struct AppleSecretClaims<'a> {
    iss: &'a str,
    iat: i64,
    exp: i64,
    aud: &'a str,
    sub: &'a str,
}

/// The client secret of a token request: Google's as configured; Apple's a JWT signed with
/// the product's key (ES256, `kid` the key's id, `iss` the team, `sub` the client, `aud`
/// Apple's issuer).
fn client_secret(settings: &ProviderSettings, now: i64) -> anyhow::Result<Secret> {
    match &settings.client_auth {
        ClientAuth::Secret(secret) => Ok(secret.clone()),
        ClientAuth::AppleKey {
            team_id,
            key_id,
            private_key_pem,
        } => {
            let der = crate::credentials::access_token::pem_to_der(private_key_pem.expose())
                .context("APPLE_PRIVATE_KEY is not a PKCS#8 PEM key (Apple's .p8 file)")?;
            let key = EncodingKey::from_ec_der(&der);
            let mut header = Header::new(Algorithm::ES256);
            header.kid = Some(key_id.clone());
            let claims = AppleSecretClaims {
                iss: team_id,
                iat: now,
                exp: now + APPLE_SECRET_SECONDS,
                aud: &settings.issuer,
                sub: &settings.client_id,
            };
            let jwt = jsonwebtoken::encode(&header, &claims, &key)
                .context("signing Apple's client secret")?;
            Ok(Secret::new(jwt))
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn request_secrets_are_distinct_and_pkce_sized() {
        let secrets = RequestSecrets::of(&Secret::new("a-handle"));
        assert_ne!(secrets.state, secrets.nonce);
        assert_ne!(secrets.nonce, secrets.code_verifier);
        assert_eq!(secrets.code_verifier.len(), 43);
        assert_eq!(secrets.code_challenge().len(), 43);
    }

    #[test]
    fn apple_flags_may_be_strings() {
        let flag: Flag = serde_json::from_str(r#""true""#).unwrap();
        assert!(Flag::is_true(Some(&flag)));
        let flag: Flag = serde_json::from_str("false").unwrap();
        assert!(!Flag::is_true(Some(&flag)));
        assert!(!Flag::is_true(None));
    }

    #[test]
    fn providers_parse_by_their_path_names_only() {
        assert_eq!(ProviderName::parse("google"), Some(ProviderName::Google));
        assert_eq!(ProviderName::parse("apple"), Some(ProviderName::Apple));
        assert_eq!(ProviderName::parse("Google"), None);
    }
}
