//! The local server's settings (environment variables with local defaults) and the
//! wiring they select: embedded or DynamoDB store, outbox or SES mailer.

use std::sync::Arc;

use accounts::app::App;
use accounts::clock::{Clock, SystemClock};
use accounts::config::Config;
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

/// Defaults that make `cargo run -p dev-server` work with no environment at all.
fn local_default(name: &str) -> Option<&'static str> {
    Some(match name {
        "APP_BASE_URL" => "http://localhost:3000",
        "TABLE_NAME" => "accounts-local",
        "MAIL_FROM" => "Account Security <no-reply@accounts.localhost>",
        // Locally there is no SES latency to hide; keep pages snappy.
        "ENUMERATION_FLOOR_MS" => "50",
        _ => return None,
    })
}

impl Settings {
    pub fn from_env() -> anyhow::Result<Settings> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
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
        let config = Config::from_lookup(|name| {
            var(name).or_else(|| local_default(name).map(str::to_owned))
        })?;
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
    })
}
