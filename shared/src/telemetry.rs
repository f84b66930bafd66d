//! Logging: JSON lines in AWS (CloudWatch), readable text locally. Request bodies and
//! secrets are never logged; secrets cannot even be formatted.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber once; `RUST_LOG` overrides the `info` default.
pub fn init(json: bool) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    // A second call (tests) finds a subscriber already installed; that is fine.
    let _ = if json {
        builder.json().without_time().try_init()
    } else {
        builder.try_init()
    };
}
