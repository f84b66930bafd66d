//! Logging: JSON lines in AWS (CloudWatch), readable text locally. Request bodies and
//! secrets are never logged; secrets cannot even be formatted.
//!
//! A JSON line is what Lambda's JSON log format and CloudWatch Logs Insights read:
//! `timestamp`, `level` and `message` at the top level, then the event's fields, the
//! function's name, and, inside an invocation, `requestId` (Lambda's), `apiRequestId`
//! (API Gateway's, the one the access log holds, so the two join) and `cold_start`.

pub mod metrics;

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;

/// Installs the global subscriber once. The level is `RUST_LOG`'s when it is set (a level,
/// `debug`, or per-target levels, `warn,accounts::login=debug`), else
/// `AWS_LAMBDA_LOG_LEVEL`'s (Lambda sets it from the function's `ApplicationLogLevel`),
/// else `info`; a value that does not parse is reported and ignored. Release builds
/// compile out `debug` and `trace` events.
pub fn init(json: bool) {
    init_to(json, std::io::stdout);
}

/// [`init`] with the lines written to `writer` (the tests read back what would be
/// logged).
pub fn init_to<W>(json: bool, writer: W)
where
    W: for<'a> tracing_subscriber::fmt::MakeWriter<'a> + Send + Sync + 'static,
{
    let (filter, refused) = filter_from(
        std::env::var("RUST_LOG").ok().as_deref(),
        std::env::var("AWS_LAMBDA_LOG_LEVEL").ok().as_deref(),
    );
    let format = tracing_subscriber::fmt::layer()
        .with_target(false)
        .with_writer(writer);
    // A second call (tests) finds a subscriber already installed; that is fine.
    let installed = if json {
        tracing_subscriber::registry()
            .with(format.event_format(LambdaJson::from_environment()))
            .with(filter)
            .try_init()
    } else {
        tracing_subscriber::registry()
            .with(format)
            .with(filter)
            .try_init()
    };
    if let (Ok(()), Some(error)) = (installed, refused) {
        tracing::warn!(%error, "the log level was ignored");
    }
}

/// A variable's value, unless it is unset or blank.
fn given(value: Option<&str>) -> Option<&str> {
    value.map(str::trim).filter(|v| !v.is_empty())
}

/// The filter `RUST_LOG` or else `AWS_LAMBDA_LOG_LEVEL` asks for. `RUST_LOG`'s syntax is
/// `tracing`'s target list, without `env-filter`'s span and field matching (whose regex
/// engine weighed more than the rest of the logging put together).
fn filter_from(rust_log: Option<&str>, lambda_level: Option<&str>) -> (Targets, Option<String>) {
    let default = Targets::new().with_default(LevelFilter::INFO);
    if let Some(value) = given(rust_log) {
        return match value.parse::<Targets>() {
            Ok(targets) => (targets, None),
            Err(error) => (default, Some(format!("RUST_LOG={value:?}: {error}"))),
        };
    }
    match given(lambda_level) {
        None => (default, None),
        Some(value) => {
            // Lambda's levels are TRACE, DEBUG, INFO, WARN, ERROR and FATAL.
            let level = match value.to_ascii_uppercase().as_str() {
                "TRACE" => Some(LevelFilter::TRACE),
                "DEBUG" => Some(LevelFilter::DEBUG),
                "INFO" => Some(LevelFilter::INFO),
                "WARN" => Some(LevelFilter::WARN),
                "ERROR" | "FATAL" => Some(LevelFilter::ERROR),
                _ => None,
            };
            match level {
                Some(level) => (Targets::new().with_default(level), None),
                None => (
                    default,
                    Some(format!("AWS_LAMBDA_LOG_LEVEL={value:?} is no level")),
                ),
            }
        }
    }
}

/// One invocation of the function: what every line logged while it runs says about it.
#[derive(Clone, Debug, Default)]
pub struct Invocation {
    /// Lambda's request id (`context.aws_request_id`).
    pub request_id: String,
    /// API Gateway's request id (`requestContext.requestId`), for HTTP events.
    pub api_request_id: Option<String>,
    /// Whether this is the first invocation of this process.
    pub cold_start: bool,
}

impl Invocation {
    /// The invocation with these ids; the first one a process starts is its cold start.
    pub fn start(request_id: &str, api_request_id: Option<&str>) -> Invocation {
        static STARTED: AtomicBool = AtomicBool::new(false);
        Invocation {
            request_id: request_id.to_owned(),
            api_request_id: api_request_id.map(str::to_owned),
            cold_start: !STARTED.swap(true, Ordering::Relaxed),
        }
    }

    /// Runs `work` as this invocation: the lines it logs carry its ids.
    pub async fn scope<F: Future>(self, work: F) -> F::Output {
        INVOCATION.scope(self, work).await
    }
}

tokio::task_local! {
    static INVOCATION: Invocation;
}

/// Formats events as one JSON object per line.
struct LambdaJson {
    function: Option<String>,
}

impl LambdaJson {
    fn from_environment() -> LambdaJson {
        LambdaJson {
            function: std::env::var("AWS_LAMBDA_FUNCTION_NAME")
                .ok()
                .filter(|name| !name.is_empty()),
        }
    }

    /// The line for an event whose fields are `fields`, at `level`, now.
    fn line(&self, level: &Level, mut fields: Map<String, Value>) -> String {
        let mut line = Map::new();
        line.insert("timestamp".to_owned(), Value::String(now_rfc3339_millis()));
        line.insert("level".to_owned(), Value::String(level.as_str().to_owned()));
        line.insert(
            "message".to_owned(),
            fields
                .remove("message")
                .unwrap_or(Value::String(String::new())),
        );
        if let Some(function) = &self.function {
            line.insert("function".to_owned(), Value::String(function.clone()));
        }
        let _ = INVOCATION.try_with(|invocation| {
            line.insert(
                "requestId".to_owned(),
                Value::String(invocation.request_id.clone()),
            );
            if let Some(id) = &invocation.api_request_id {
                line.insert("apiRequestId".to_owned(), Value::String(id.clone()));
            }
            line.insert("cold_start".to_owned(), Value::Bool(invocation.cold_start));
        });
        for (name, value) in fields {
            // An event's own field never hides one of the line's.
            line.entry(name).or_insert(value);
        }
        Value::Object(line).to_string()
    }
}

impl<S, N> FormatEvent<S, N> for LambdaJson
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        let mut fields = Fields::default();
        event.record(&mut fields);
        writeln!(writer, "{}", self.line(event.metadata().level(), fields.0))
    }
}

/// An event's fields as JSON values.
#[derive(Default)]
struct Fields(Map<String, Value>);

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0
            .insert(field.name().to_owned(), Value::String(value.to_owned()));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().to_owned(), Value::Bool(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let mut text = String::new();
        let _ = write!(text, "{value:?}");
        self.0.insert(field.name().to_owned(), Value::String(text));
    }
}

/// The present as RFC 3339 with milliseconds, in UTC (what CloudWatch parses).
fn now_rfc3339_millis() -> String {
    const FORMAT: &[time::format_description::BorrowedFormatItem<'static>] = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    time::OffsetDateTime::now_utc()
        .format(FORMAT)
        .unwrap_or_default()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use tracing::Level;

    use super::*;

    #[test]
    fn without_a_level_set_info_and_above_are_logged() {
        let (filter, refused) = filter_from(None, None);
        assert!(filter.would_enable("accounts::login", &Level::INFO));
        assert!(!filter.would_enable("accounts::login", &Level::DEBUG));
        assert_eq!(refused, None);
    }

    #[test]
    fn rust_log_sets_levels_per_target() {
        let (filter, _) = filter_from(Some("warn,accounts::login=debug"), None);
        assert!(filter.would_enable("accounts::login", &Level::DEBUG));
        assert!(!filter.would_enable("accounts::signup", &Level::INFO));
        assert!(filter.would_enable("accounts::signup", &Level::WARN));
    }

    #[test]
    fn a_rust_log_that_does_not_parse_keeps_the_default_and_says_so() {
        let (filter, refused) = filter_from(Some("accounts=[span]=loud"), None);
        assert!(filter.would_enable("accounts", &Level::INFO));
        assert!(refused.unwrap().contains("accounts=[span]=loud"));
    }

    #[test]
    fn lambdas_log_level_applies_when_rust_log_is_not_set() {
        let (filter, refused) = filter_from(None, Some("WARN"));
        assert!(!filter.would_enable("accounts::login", &Level::INFO));
        assert!(filter.would_enable("accounts::login", &Level::WARN));
        assert_eq!(refused, None);
        let (filter, _) = filter_from(None, Some("FATAL"));
        assert!(!filter.would_enable("accounts::login", &Level::WARN));
        assert!(filter.would_enable("accounts::login", &Level::ERROR));
        // RUST_LOG, a developer's override, wins.
        let (filter, _) = filter_from(Some("debug"), Some("ERROR"));
        assert!(filter.would_enable("accounts::login", &Level::DEBUG));
        let (_, refused) = filter_from(None, Some("LOUD"));
        assert!(refused.unwrap().contains("LOUD"));
    }

    #[test]
    fn a_line_has_its_message_at_the_top_and_the_invocation_it_belongs_to() {
        let format = LambdaJson {
            function: Some("accounts-dev-login".to_owned()),
        };
        let mut fields = Map::new();
        fields.insert("message".to_owned(), Value::from("a login failed"));
        fields.insert("requestId".to_owned(), Value::from("forged"));
        fields.insert("outcome".to_owned(), Value::from("bad_password"));
        let invocation = Invocation {
            request_id: "8476a536-e9f4-11e8-9739-2dfe598c3fcd".to_owned(),
            api_request_id: Some("JKJaXmPLvHcESHA=".to_owned()),
            cold_start: true,
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let line = runtime.block_on(invocation.scope(async { format.line(&Level::WARN, fields) }));
        let line: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(line["message"], "a login failed");
        assert_eq!(line["level"], "WARN");
        assert_eq!(line["function"], "accounts-dev-login");
        assert_eq!(line["requestId"], "8476a536-e9f4-11e8-9739-2dfe598c3fcd");
        assert_eq!(line["apiRequestId"], "JKJaXmPLvHcESHA=");
        assert_eq!(line["cold_start"], true);
        assert_eq!(line["outcome"], "bad_password");
        let timestamp = line["timestamp"].as_str().unwrap();
        assert!(
            time::OffsetDateTime::parse(timestamp, &time::format_description::well_known::Rfc3339)
                .is_ok(),
            "{timestamp}"
        );
        // Outside an invocation (a cold start's own lines) there is no request id.
        let outside = format.line(&Level::INFO, Map::new());
        assert!(!outside.contains("requestId"), "{outside}");
    }
}
