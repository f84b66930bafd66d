//! The state every request shares, built once per cold start: configuration, the
//! store, the mailer, the clock and the password hasher.

use std::future::Future;
use std::sync::Arc;

use anyhow::Context;

use crate::access_token::{AccessTokens, generate_ed25519_pem};
use crate::clock::Clock;
use crate::config::Config;
use crate::mail::Mailer;
use crate::mail::messages::Message;
use crate::password::PasswordHasher;
use crate::store::Store;
use crate::totp::{TotpKey, TotpKeys};

#[derive(Clone)]
pub struct App {
    pub config: Arc<Config>,
    pub store: Arc<dyn Store>,
    pub mailer: Arc<dyn Mailer>,
    pub clock: Arc<dyn Clock>,
    pub passwords: PasswordHasher,
    pub tokens: Arc<AccessTokens>,
    pub totp_keys: Arc<TotpKeys>,
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
            (Some(pem), _) => AccessTokens::from_pem(
                pem.expose(),
                config.jwt_previous_signing_key.as_ref().map(|k| k.expose()),
                &config.jwt_issuer,
                &config.jwt_audience,
            )?,
            (None, Some(public)) => {
                AccessTokens::verify_only(public, &config.jwt_issuer, &config.jwt_audience)?
            }
            (None, None) => {
                tracing::debug!(
                    "no JWT_SIGNING_KEY: signing with a key generated for this process"
                );
                AccessTokens::from_pem(
                    &generate_ed25519_pem()?,
                    None,
                    &config.jwt_issuer,
                    &config.jwt_audience,
                )?
            }
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
        Ok(App {
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

    /// Renders and sends one message to an account's stored address.
    pub async fn send(&self, to: &str, message: Message) -> anyhow::Result<()> {
        let email = message.render(to).context("rendering an email")?;
        self.mailer.send(email).await.context("sending an email")
    }

    /// Sends mail whose failure must not change the answer (enumeration-safe routes):
    /// the failure is logged and the person can ask again.
    pub async fn send_quietly(&self, to: &str, message: Message) {
        if let Err(error) = self.send(to, message).await {
            tracing::error!(error = format!("{error:#}"), "an email could not be sent");
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
