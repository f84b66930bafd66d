//! Logging: JSON lines in AWS (CloudWatch), readable text locally. Request bodies and
//! secrets are never logged; secrets cannot even be formatted.

pub mod metrics;

use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Installs the global subscriber once. `RUST_LOG` overrides the `info` default with a
/// level (`debug`) or per-target levels (`warn,accounts::login=debug`); a value that
/// does not parse is reported and ignored.
pub fn init(json: bool) {
    init_to(json, std::io::stdout);
}

/// [`init`] with the lines written to `writer` (the tests read back what would be
/// logged).
pub fn init_to<W>(json: bool, writer: W)
where
    W: for<'a> tracing_subscriber::fmt::MakeWriter<'a> + Send + Sync + 'static,
{
    let (filter, refused) = filter_from(std::env::var("RUST_LOG").ok().as_deref());
    let format = tracing_subscriber::fmt::layer()
        .with_target(false)
        .with_writer(writer);
    // A second call (tests) finds a subscriber already installed; that is fine.
    let installed = if json {
        tracing_subscriber::registry()
            .with(format.json().without_time())
            .with(filter)
            .try_init()
    } else {
        tracing_subscriber::registry()
            .with(format)
            .with(filter)
            .try_init()
    };
    if let (Ok(()), Some(error)) = (installed, refused) {
        tracing::warn!(%error, "RUST_LOG was ignored");
    }
}

/// The filter `RUST_LOG` asks for. Its syntax is `tracing`'s target list, without
/// `env-filter`'s span and field matching (whose regex engine weighed more than the rest
/// of the logging put together).
fn filter_from(rust_log: Option<&str>) -> (Targets, Option<String>) {
    let default = Targets::new().with_default(LevelFilter::INFO);
    match rust_log.map(str::trim).filter(|value| !value.is_empty()) {
        None => (default, None),
        Some(value) => match value.parse::<Targets>() {
            Ok(targets) => (targets, None),
            Err(error) => (default, Some(format!("{value:?}: {error}"))),
        },
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use tracing::Level;

    use super::*;

    #[test]
    fn without_rust_log_info_and_above_are_logged() {
        let (filter, refused) = filter_from(None);
        assert!(filter.would_enable("accounts::login", &Level::INFO));
        assert!(!filter.would_enable("accounts::login", &Level::DEBUG));
        assert_eq!(refused, None);
    }

    #[test]
    fn rust_log_sets_levels_per_target() {
        let (filter, _) = filter_from(Some("warn,accounts::login=debug"));
        assert!(filter.would_enable("accounts::login", &Level::DEBUG));
        assert!(!filter.would_enable("accounts::signup", &Level::INFO));
        assert!(filter.would_enable("accounts::signup", &Level::WARN));
    }

    #[test]
    fn a_rust_log_that_does_not_parse_keeps_the_default_and_says_so() {
        let (filter, refused) = filter_from(Some("accounts=[span]=loud"));
        assert!(filter.would_enable("accounts", &Level::INFO));
        assert!(refused.unwrap().contains("accounts=[span]=loud"));
    }
}
