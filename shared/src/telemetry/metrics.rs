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
    emit(name, 1, &[], Some(detail));
}

/// Adds `value` to `name` (e.g. the items a cleanup run deleted).
pub fn add(name: &'static str, value: u64) {
    emit(name, value, &[], None);
}

/// Counts one occurrence of `name`, in its total and in one series per value of each of
/// `dimensions` (e.g. `Logins` by `Outcome` and by `Method`): each dimension is its own
/// set, never their product, so the series stay few (a handful of values each).
pub fn count_by(name: &'static str, dimensions: &[(&'static str, &str)]) {
    emit(name, 1, dimensions, None);
}

fn emit(name: &'static str, value: u64, dimensions: &[(&'static str, &str)], detail: Option<&str>) {
    #[cfg(any(test, feature = "test-support"))]
    record(name, value, dimensions);
    if let Some(namespace) = namespace() {
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_millis());
        println!(
            "{}",
            line(namespace, name, value, dimensions, detail, now_ms)
        );
    }
}

/// The counts of this process so far, by name and by `name/dimension=value` (tests read
/// them back; production has only the EMF lines).
#[cfg(any(test, feature = "test-support"))]
static RECORDED: std::sync::Mutex<std::collections::BTreeMap<String, u64>> =
    std::sync::Mutex::new(std::collections::BTreeMap::new());

#[cfg(any(test, feature = "test-support"))]
fn record(name: &str, value: u64, dimensions: &[(&str, &str)]) {
    if let Ok(mut counts) = RECORDED.lock() {
        *counts.entry(name.to_owned()).or_default() += value;
        for (dimension, of) in dimensions {
            *counts
                .entry(format!("{name}/{dimension}={of}"))
                .or_default() += value;
        }
    }
}

/// How much `key` (`Logins`, or `Logins/Outcome=rate_limited`) was counted in this process.
#[cfg(any(test, feature = "test-support"))]
pub fn recorded(key: &str) -> u64 {
    RECORDED
        .lock()
        .map(|counts| counts.get(key).copied().unwrap_or(0))
        .unwrap_or(0)
}

/// One EMF line adding `value` to `name`, with a dimensionless total and one dimension
/// set per entry of `dimensions`.
fn line(
    namespace: &str,
    name: &str,
    value: u64,
    dimensions: &[(&str, &str)],
    detail: Option<&str>,
    now_ms: u128,
) -> String {
    let mut sets = vec![Vec::<&str>::new()];
    sets.extend(dimensions.iter().map(|(dimension, _)| vec![*dimension]));
    let mut document = json!({
        "_aws": {
            "Timestamp": now_ms,
            "CloudWatchMetrics": [{
                "Namespace": namespace,
                "Dimensions": sets,
                "Metrics": [{ "Name": name, "Unit": "Count" }],
            }],
        },
    });
    for (dimension, of) in dimensions {
        document[*dimension] = json!(of);
    }
    if let Some(detail) = detail {
        document["detail"] = json!(detail);
    }
    // The value sits at the top level under the metric's name (EMF's rule).
    document[name] = json!(value);
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
            1,
            &[],
            Some("verify_email"),
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
        assert_eq!(document["MailSendFailed"], 1);
        assert_eq!(document["detail"], "verify_email");
    }

    #[test]
    fn a_count_by_dimensions_keeps_a_total_and_one_set_per_dimension() {
        let dimensions = [("Outcome", "rate_limited"), ("Method", "password")];
        let text = line("accounts-dev", "Logins", 1, &dimensions, None, 0);
        let document: serde_json::Value = serde_json::from_str(&text).unwrap();
        let directive = &document["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(
            directive["Dimensions"],
            json!([[], ["Outcome"], ["Method"]])
        );
        assert_eq!(document["Outcome"], "rate_limited");
        assert_eq!(document["Method"], "password");
        assert_eq!(document["Logins"], 1);
    }

    #[test]
    fn counts_are_recorded_by_name_and_by_dimension() {
        let before = (recorded("TestMetric"), recorded("TestMetric/Outcome=ok"));
        count_by("TestMetric", &[("Outcome", "ok")]);
        add("TestMetric", 4);
        assert_eq!(recorded("TestMetric"), before.0 + 5);
        assert_eq!(recorded("TestMetric/Outcome=ok"), before.1 + 1);
    }
}
