//! Counters as CloudWatch embedded metric format (EMF) lines on stdout: CloudWatch Logs
//! turns each line into a metric, so counting costs no network call and no SDK client.
//! Nothing is written unless `METRICS_NAMESPACE` is set (the template sets it for every
//! function; the local server and the tests leave it unset).

use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::json;

/// The namespace of the metrics, read once per cold start.
fn namespace() -> Option<&'static str> {
    static NAMESPACE: OnceLock<Option<String>> = OnceLock::new();
    NAMESPACE
        .get_or_init(|| {
            std::env::var("METRICS_NAMESPACE")
                .ok()
                .map(|value| value.trim().to_owned())
                .filter(|value| !value.is_empty())
        })
        .as_deref()
}

/// Counts one occurrence of `name` (e.g. `MailSendFailed`). `detail` (a template name,
/// an outcome) is a property of the line, searchable in Logs Insights, not a dimension:
/// the metric stays one series per name, which is what the alarms watch.
pub fn count(name: &'static str, detail: &str) {
    #[cfg(any(test, feature = "test-support"))]
    record(name);
    if let Some(namespace) = namespace() {
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_millis());
        println!("{}", line(namespace, name, detail, now_ms));
    }
}

/// The counts of this process so far, by name (tests read them back; production has
/// only the EMF lines).
#[cfg(any(test, feature = "test-support"))]
static RECORDED: std::sync::Mutex<std::collections::BTreeMap<&'static str, usize>> =
    std::sync::Mutex::new(std::collections::BTreeMap::new());

#[cfg(any(test, feature = "test-support"))]
fn record(name: &'static str) {
    if let Ok(mut counts) = RECORDED.lock() {
        *counts.entry(name).or_default() += 1;
    }
}

/// How many times `name` was counted in this process.
#[cfg(any(test, feature = "test-support"))]
pub fn recorded(name: &str) -> usize {
    RECORDED
        .lock()
        .map(|counts| counts.get(name).copied().unwrap_or(0))
        .unwrap_or(0)
}

/// One EMF line counting `name` once.
fn line(namespace: &str, name: &str, detail: &str, now_ms: u128) -> String {
    let mut document = json!({
        "_aws": {
            "Timestamp": now_ms,
            "CloudWatchMetrics": [{
                "Namespace": namespace,
                "Dimensions": [[]],
                "Metrics": [{ "Name": name, "Unit": "Count" }],
            }],
        },
        "detail": detail,
    });
    document[name] = json!(1);
    document.to_string()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_count_is_one_embedded_metric_format_line() {
        let text = line(
            "accounts-dev",
            "MailSendFailed",
            "verify_email",
            1_700_000_000_123,
        );
        assert!(!text.contains('\n'));
        let document: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(document["_aws"]["Timestamp"], 1_700_000_000_123u64);
        let directive = &document["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "accounts-dev");
        assert_eq!(directive["Dimensions"], json!([[]]));
        assert_eq!(
            directive["Metrics"],
            json!([{ "Name": "MailSendFailed", "Unit": "Count" }])
        );
        // The value sits at the top level under the metric's name (EMF's rule).
        assert_eq!(document["MailSendFailed"], 1);
        assert_eq!(document["detail"], "verify_email");
    }
}
