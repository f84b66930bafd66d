//! The state every request shares, built once per cold start: configuration, the
//! store, the mailer, the clock and the password hasher.

pub mod config;

use std::future::Future;
use std::sync::Arc;

use anyhow::Context;

use crate::app::config::Config;
use crate::clock::Clock;
use crate::credentials::access_token::{AccessTokens, generate_ed25519_pem};
use crate::credentials::oidc::{PROVIDER_TRUST_ROOTS, Providers};
use crate::credentials::password::PasswordHasher;
use crate::credentials::totp::{TotpKey, TotpKeys};
use crate::mail::messages::Message;
use crate::mail::{Delivery, Mailer};
use crate::store::Store;

#[derive(Clone)]
pub struct App {
    pub config: Arc<Config>,
    pub store: Arc<dyn Store>,
    pub mailer: Arc<dyn Mailer>,
    pub clock: Arc<dyn Clock>,
    pub passwords: PasswordHasher,
    tokens: Arc<TokenKeys>,
    pub totp_keys: Arc<TotpKeys>,
    /// Google and Apple, with their cached discovery documents and keys.
    pub providers: Arc<Providers>,
}

/// The access-token keys: the configured ones, or (no key configured: the local server,
/// the tests, and the functions that never see a token) a key generated on first use, so
/// that a function that never issues or checks a token never pays for making one at its
/// cold start (generating an Ed25519 key seeds aws-lc's random generator: ~20 ms).
enum TokenKeys {
    Configured(AccessTokens),
    Generated {
        keys: std::sync::OnceLock<AccessTokens>,
        issuer: String,
        audience: String,
    },
}

impl App {
    pub fn new(
        config: Config,
        store: Arc<dyn Store>,
        mailer: Arc<dyn Mailer>,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<App> {
        let passwords = PasswordHasher::new(config.password_hashing)?;
        let tokens = match (&config.jwt_signing_key, &config.jwt_verification_keys) {
            (Some(pem), _) => TokenKeys::Configured(AccessTokens::from_pem(
                pem.expose(),
                config.jwt_previous_signing_key.as_ref().map(|k| k.expose()),
                &config.jwt_issuer,
                &config.jwt_audience,
            )?),
            (None, Some(public)) => TokenKeys::Configured(AccessTokens::verify_only(
                public,
                &config.jwt_issuer,
                &config.jwt_audience,
            )?),
            (None, None) => TokenKeys::Generated {
                keys: std::sync::OnceLock::new(),
                issuer: config.jwt_issuer.clone(),
                audience: config.jwt_audience.clone(),
            },
        };
        let totp_keys = TotpKeys::new(
            match &config.totp_encryption_key {
                Some(key) => TotpKey::from_base64(key.expose())?,
                None => TotpKey::generate()?,
            },
            config
                .totp_previous_encryption_key
                .as_ref()
                .map(|key| TotpKey::from_base64(key.expose()))
                .transpose()?,
        );
        let providers = Providers::new(config.oauth.providers.clone(), PROVIDER_TRUST_ROOTS)?;
        Ok(App {
            providers: Arc::new(providers),
            totp_keys: Arc::new(totp_keys),
            config: Arc::new(config),
            store,
            mailer,
            clock,
            passwords,
            tokens: Arc::new(tokens),
        })
    }

    pub fn now(&self) -> i64 {
        self.clock.now()
    }

    /// The same app over another store (tests that wrap the store).
    pub fn with_store(&self, store: Arc<dyn Store>) -> App {
        App {
            store,
            ..self.clone()
        }
    }

    /// The keys that issue and check access tokens.
    pub fn tokens(&self) -> anyhow::Result<&AccessTokens> {
        match self.tokens.as_ref() {
            TokenKeys::Configured(keys) => Ok(keys),
            TokenKeys::Generated {
                keys,
                issuer,
                audience,
            } => {
                if let Some(keys) = keys.get() {
                    return Ok(keys);
                }
                tracing::debug!(
                    "no JWT_SIGNING_KEY: signing with a key generated for this process"
                );
                let generated =
                    AccessTokens::from_pem(&generate_ed25519_pem()?, None, issuer, audience)?;
                Ok(keys.get_or_init(|| generated))
            }
        }
    }

    /// Renders and sends one message to an account's stored address.
    pub async fn send(&self, to: &str, message: Message) -> anyhow::Result<()> {
        let email = message.render(to).context("rendering an email")?;
        self.mailer.send(email).await.context("sending an email")
    }

    /// Sends mail whose failure must not change the answer (enumeration-safe routes and
    /// notices): nothing goes to an address whose `delivery` rules the message out (a
    /// hard bounce, or a complaint and a notice), and a failure is logged and counted
    /// (the `MailSendFailed` metric and its alarm); the person can ask again.
    pub async fn send_quietly(&self, to: &str, delivery: Delivery, message: Message) {
        let template = message.template().name();
        if !delivery.allows(&message) {
            tracing::info!(
                template,
                delivery = delivery.as_str(),
                "an email was not sent: SES reported the address"
            );
            crate::telemetry::metrics::count("MailSuppressed", template);
            return;
        }
        match self.send(to, message).await {
            Ok(()) => crate::telemetry::metrics::count("MailSent", template),
            Err(error) => {
                tracing::error!(error = format!("{error:#}"), "an email could not be sent");
                crate::telemetry::metrics::count("MailSendFailed", template);
            }
        }
    }

    /// Runs `work`, then waits until the configured enumeration floor has passed since
    /// it started, so that the answer's timing says nothing about which branch ran.
    pub async fn with_floor<T>(&self, work: impl Future<Output = T>) -> T {
        let deadline = tokio::time::Instant::now() + self.config.enumeration_floor;
        let output = work.await;
        if tokio::time::Instant::now() > deadline {
            tracing::warn!("an enumeration-sensitive request outlasted its timing floor");
        }
        tokio::time::sleep_until(deadline).await;
        output
    }
}
