//! The local server's settings (environment variables with local defaults) and the
//! wiring they select: embedded or DynamoDB store, outbox or SES mailer.

use std::sync::Arc;

use accounts::app::App;
use accounts::app::config::Config;
use accounts::clock::{Clock, SystemClock};
use accounts::mail::Mailer;
use accounts::mail::outbox::Outbox;
use accounts::mail::ses::SesMailer;
use accounts::store::Store;
use accounts::store::dynamo::DynamoStore;
use accounts::store::memory::MemoryStore;
use anyhow::{Context, bail};

use crate::Server;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreKind {
    Memory,
    DynamoDb,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MailerKind {
    Outbox,
    Ses,
}

pub struct Settings {
    pub port: u16,
    pub store: StoreKind,
    pub mailer: MailerKind,
    pub config: Config,
    pub clock: Arc<dyn Clock>,
}

/// Defaults that make `cargo run -p dev-server` work with no environment at all (links
/// point at this server's own port: `APP_BASE_URL` defaults to `http://localhost:<PORT>`).
fn local_default(name: &str, port: u16) -> Option<String> {
    Some(
        match name {
            "APP_BASE_URL" => return Some(format!("http://localhost:{port}")),
            "TABLE_NAME" => "accounts-local",
            "MAIL_FROM" => "Account Security <no-reply@accounts.localhost>",
            // Locally there is no SES latency to hide; keep pages snappy.
            "ENUMERATION_FLOOR_MS" => "50",
            _ => return None,
        }
        .to_owned(),
    )
}

impl Settings {
    pub fn from_env() -> anyhow::Result<Settings> {
        Settings::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the settings through any lookup (the process environment, or a test's).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> anyhow::Result<Settings> {
        let var = |name: &str| lookup(name).filter(|v| !v.is_empty());
        let port = match var("PORT") {
            Some(text) => text.parse().context("PORT must be a port number")?,
            None => 3000,
        };
        let store = match var("STORE").as_deref() {
            None | Some("memory") => StoreKind::Memory,
            Some("dynamodb") => StoreKind::DynamoDb,
            Some(other) => bail!("STORE must be memory or dynamodb, not {other:?}"),
        };
        let mailer = match var("MAILER").as_deref() {
            None | Some("outbox") => MailerKind::Outbox,
            Some("ses") => MailerKind::Ses,
            Some(other) => bail!("MAILER must be outbox or ses, not {other:?}"),
        };
        let config = Config::from_lookup(|name| var(name).or_else(|| local_default(name, port)))?;
        Ok(Settings {
            port,
            store,
            mailer,
            config,
            clock: Arc::new(SystemClock),
        })
    }
}

/// Builds the server the settings describe (creating the DynamoDB table if needed).
pub async fn build(settings: Settings) -> anyhow::Result<Server> {
    let Settings {
        store,
        mailer,
        config,
        clock,
        ..
    } = settings;
    if config.jwt_signing_key.is_none() {
        tracing::info!(
            "JWT_SIGNING_KEY is not set: access tokens are signed with a key generated at start"
        );
    }
    let needs_aws = store == StoreKind::DynamoDb || mailer == MailerKind::Ses;
    let sdk = if needs_aws {
        Some(accounts::aws::sdk_config_from_process_environment()?)
    } else {
        None
    };
    let store: Arc<dyn Store> = match (&sdk, store) {
        (Some(sdk), StoreKind::DynamoDb) => {
            let dynamo = DynamoStore::new(
                aws_sdk_dynamodb::Client::new(sdk),
                config.table_name.clone(),
                clock.clone(),
            );
            dynamo
                .create_table_if_missing()
                .await
                .context("creating the DynamoDB table")?;
            Arc::new(dynamo)
        }
        _ => Arc::new(MemoryStore::new(clock.clone())),
    };
    let (mailer, outbox): (Arc<dyn Mailer>, Option<Arc<Outbox>>) = match (&sdk, mailer) {
        (Some(sdk), MailerKind::Ses) => (
            Arc::new(SesMailer::new(
                aws_sdk_sesv2::Client::new(sdk),
                config.mail_from.clone(),
                config.ses_configuration_set.clone(),
            )),
            None,
        ),
        _ => {
            let outbox = Arc::new(Outbox::new(clock.clone()));
            (outbox.clone(), Some(outbox))
        }
    };
    Ok(Server {
        app: App::new(config, store, mailer, clock)?,
        outbox,
        observer: None,
        read_timeout: crate::READ_TIMEOUT,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn settings(vars: &[(&str, &str)]) -> Settings {
        Settings::from_lookup(|name| {
            vars.iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| (*value).to_owned())
        })
        .unwrap()
    }

    #[test]
    fn links_point_at_the_port_the_server_listens_on() {
        let default = settings(&[]);
        assert_eq!(default.port, 3000);
        assert_eq!(
            default.config.app_base_url.to_string(),
            "http://localhost:3000"
        );
        let moved = settings(&[("PORT", "4321")]);
        assert_eq!(
            moved.config.app_base_url.to_string(),
            "http://localhost:4321"
        );
        let given = settings(&[
            ("PORT", "4321"),
            ("APP_BASE_URL", "https://app.example.com"),
        ]);
        assert_eq!(
            given.config.app_base_url.to_string(),
            "https://app.example.com"
        );
    }
}
