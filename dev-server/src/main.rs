//! Runs the local server: `cargo run -p dev-server`, then open http://localhost:3000.

use std::net::{Ipv4Addr, SocketAddr};

use anyhow::Context;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    accounts::telemetry::init(false);
    let settings = dev_server::setup::Settings::from_env()?;
    let port = settings.port;
    let server = dev_server::setup::build(settings).await?;
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| format!("cannot listen on {address}"))?;
    tracing::info!("serving on http://{address} (sent mail: http://{address}/dev/mail)");
    tokio::select! {
        result = dev_server::serve(listener, server) => result,
        _ = tokio::signal::ctrl_c() => Ok(()),
    }
}
