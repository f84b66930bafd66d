//! `bench/REPORT.md` from the JSON results of one run: each figure with its baseline
//! from the same run, the ratio and the goal; then the cost of a million logins
//! derived from the measured round trips and CPU time.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde_json::Value;

use crate::coldstart::{BASELINE, binary_path};

pub struct Options {
    pub results: PathBuf,
    pub out: PathBuf,
    pub arm64_dir: Option<PathBuf>,
    pub x86_dir: Option<PathBuf>,
    /// `cargo tree -d -e normal --target aarch64-unknown-linux-gnu` output.
    pub tree: Option<PathBuf>,
    /// `cargo tree -e normal --prefix none` of the functions (every crate they link).
    pub tree_all: Option<PathBuf>,
    pub functions: Vec<String>,
}

// ---- goals (issue 7) ------------------------------------------------------------------

const COLD_START_MAX_RATIO: f64 = 3.0;
const SIZE_MAX_BYTES: u64 = 5_000_000;
const LOGIN_MIN_RATIO: f64 = 0.90;
const REFRESH_MIN_RATIO: f64 = 0.30;
/// Issue 15: every page under 30 KB transferred, its style sheet and script included.
const PAGE_MAX_BYTES: u64 = crate::pages::BUDGET_BYTES;

// ---- prices and assumptions for the cost estimate (us-east-1 list prices, 2025) -------

/// Lambda arm64, per GB-second and per request.
pub const LAMBDA_ARM64_GB_SECOND: f64 = 0.000_013_333_4;
pub const LAMBDA_PER_REQUEST: f64 = 0.20 / 1e6;
/// API Gateway HTTP API, per request (first 300 million a month).
pub const HTTP_API_PER_REQUEST: f64 = 1.00 / 1e6;
/// DynamoDB on-demand, per write and read request unit.
pub const DYNAMODB_PER_WRU: f64 = 0.625 / 1e6;
pub const DYNAMODB_PER_RRU: f64 = 0.125 / 1e6;
/// The functions' memory (infra/template.yaml) and the size that gets one full vCPU.
pub const LAMBDA_MEMORY_MB: f64 = 1024.0;
pub const FULL_VCPU_MB: f64 = 1769.0;
/// Assumed latency of one DynamoDB call from Lambda in the same region.
pub const DYNAMODB_CALL_MS: f64 = 8.0;
/// Request units of one login, from its measured calls: every read is strongly
/// consistent and under 4 KB (GetItem 1 RRU; BatchGetItem `BATCH_ITEMS` items, 1 RRU
/// each); every single write is under 1 KB (1 WRU); the transaction writes
/// `TRANSACTION_ITEMS` items at 2 WRU each (the IP count taken back, session, history
/// entry, cleared back-off), and `INDEX_WRITES` of them also go to index `gsi2` (session
/// and history entry, 1 WRU each).
pub const BATCH_ITEMS: f64 = 2.0;
pub const TRANSACTION_ITEMS: f64 = 4.0;
pub const INDEX_WRITES: f64 = 2.0;
/// Amazon Cognito user pools, per monthly active user above 10,000 free.
pub const COGNITO_LITE_PER_MAU: f64 = 0.0055;
pub const COGNITO_ESSENTIALS_PER_MAU: f64 = 0.015;
pub const COGNITO_FREE_MAU: f64 = 10_000.0;
/// How many logins one user makes a month, to turn logins into MAUs.
pub const LOGINS_PER_USER_PER_MONTH: f64 = 10.0;

fn read_json(dir: &Path, name: &str) -> Option<Value> {
    let text = std::fs::read_to_string(dir.join(name)).ok()?;
    serde_json::from_str(&text).ok()
}

fn f(value: &Value) -> f64 {
    value.as_f64().unwrap_or(f64::NAN)
}

fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "**not met**" }
}

fn mb(bytes: u64) -> String {
    format!("{:.2} MB", bytes as f64 / 1e6)
}

struct Summary {
    rows: Vec<[String; 6]>,
}

impl Summary {
    fn add(
        &mut self,
        what: &str,
        figure: String,
        baseline: String,
        ratio: String,
        goal: &str,
        ok: Option<bool>,
    ) {
        let status = match ok {
            Some(ok) => verdict(ok).to_owned(),
            None => "not measured".to_owned(),
        };
        self.rows.push([
            what.to_owned(),
            figure,
            baseline,
            ratio,
            goal.to_owned(),
            status,
        ]);
    }
}

fn table(out: &mut String, header: &[&str], rows: &[Vec<String>]) {
    let _ = writeln!(out, "| {} |", header.join(" | "));
    let _ = writeln!(out, "|{}", " --- |".repeat(header.len()));
    for row in rows {
        let _ = writeln!(out, "| {} |", row.join(" | "));
    }
    out.push('\n');
}

fn cold_start(out: &mut String, summary: &mut Summary, results: &Path) {
    out.push_str("## Cold start\n\n");
    let Some(data) = read_json(results, "coldstart.json") else {
        out.push_str("Not measured in this run.\n\n");
        summary.add(
            "cold start",
            "-".into(),
            "-".into(),
            "-".into(),
            "<= 3x hello world",
            None,
        );
        return;
    };
    let floor = f(&data["baseline_ms"]);
    let _ = writeln!(
        out,
        "Process start to the first `GET /2018-06-01/runtime/invocation/next` on a local \
         Runtime API stand-in; median of {} runs per binary (round-robin, after one warm-up \
         each), binaries from `{}`. Configuration and keys are given directly (no SSM call); \
         every AWS endpoint points at a local listener that counts connections made during \
         init.\n",
        data["runs"],
        data["bin_dir"].as_str().unwrap_or("?")
    );
    let mut rows = Vec::new();
    let mut worst: Option<(String, f64)> = None;
    let mut connections = 0;
    for r in data["results"].as_array().into_iter().flatten() {
        let name = r["name"].as_str().unwrap_or("?").to_owned();
        let ratio = f(&r["ratio"]);
        let conns = r["init_network_connections"].as_u64().unwrap_or(0);
        if name != BASELINE {
            connections += conns;
            if worst.as_ref().is_none_or(|(_, w)| ratio > *w) {
                worst = Some((name.clone(), ratio));
            }
        }
        rows.push(vec![
            format!("`{name}`"),
            format!("{:.2}", f(&r["ms"]["median"])),
            format!("{:.2} - {:.2}", f(&r["ms"]["min"]), f(&r["ms"]["max"])),
            format!("{ratio:.2}x"),
            conns.to_string(),
            if name == BASELINE {
                "baseline".into()
            } else {
                verdict(ratio <= COLD_START_MAX_RATIO && conns == 0).into()
            },
        ]);
    }
    table(
        out,
        &[
            "binary",
            "median ms",
            "min - max ms",
            "vs hello world",
            "init connections",
            "goal: <= 3x, none",
        ],
        &rows,
    );
    if let Some((name, ratio)) = worst {
        summary.add(
            "cold start (slowest function)",
            format!("{name}: {:.2} ms", ratio * floor),
            format!("hello world {floor:.2} ms"),
            format!("{ratio:.2}x"),
            "<= 3x",
            Some(ratio <= COLD_START_MAX_RATIO),
        );
        summary.add(
            "network calls on the init path",
            connections.to_string(),
            "0".into(),
            "-".into(),
            "none (SSM GetParameters only in AWS)",
            Some(connections == 0),
        );
    }
}

fn size_of(dir: &Option<PathBuf>, name: &str) -> Option<u64> {
    let dir = dir.as_ref()?;
    std::fs::metadata(binary_path(dir, name))
        .ok()
        .map(|m| m.len())
}

/// Crates that make up a TLS / HTTP client stack: two versions of any is a second stack
/// (`http`, types only, is not one).
const STACK_CRATES: &[&str] = &[
    "rustls",
    "rustls-webpki",
    "tokio-rustls",
    "hyper-rustls",
    "ring",
    "aws-lc-rs",
    "aws-lc-sys",
    "openssl",
    "openssl-sys",
    "native-tls",
    "hyper",
    "h2",
];

fn sizes(out: &mut String, summary: &mut Summary, options: &Options) {
    out.push_str("## Binary size\n\n");
    let _ = writeln!(
        out,
        "Stripped release binaries as deployed (`bootstrap`), built with `cargo lambda build \
         --release` for arm64 (`{}`) and x86_64 (`{}`); goal at most 5 MB (5,000,000 bytes) \
         each. Baseline: the hello-world `lambda_http` binary from the x86_64 build.\n",
        options
            .arm64_dir
            .as_ref()
            .map_or("-".into(), |d| d.display().to_string()),
        options
            .x86_dir
            .as_ref()
            .map_or("-".into(), |d| d.display().to_string()),
    );
    let hello_arm = size_of(&options.arm64_dir, BASELINE);
    let hello_x86 = size_of(&options.x86_dir, BASELINE);
    let mut rows = Vec::new();
    let mut largest: Option<(String, u64, &str)> = None;
    let mut all_ok = true;
    let mut any = false;
    for name in std::iter::once(BASELINE.to_owned()).chain(options.functions.iter().cloned()) {
        let arm = size_of(&options.arm64_dir, &name);
        let x86 = size_of(&options.x86_dir, &name);
        if name != BASELINE {
            for (size, arch) in [(arm, "arm64"), (x86, "x86_64")] {
                if let Some(size) = size {
                    any = true;
                    all_ok &= size <= SIZE_MAX_BYTES;
                    if largest.as_ref().is_none_or(|(_, l, _)| size > *l) {
                        largest = Some((name.clone(), size, arch));
                    }
                }
            }
        }
        let cell = |size: Option<u64>, hello: Option<u64>| match (size, hello) {
            (Some(s), Some(h)) if name != BASELINE => {
                format!("{} ({:.1}x)", mb(s), s as f64 / h as f64)
            }
            (Some(s), _) => mb(s),
            (None, _) => "not built".into(),
        };
        let ok = name == BASELINE || [arm, x86].iter().flatten().all(|s| *s <= SIZE_MAX_BYTES);
        rows.push(vec![
            format!("`{name}`"),
            cell(arm, hello_arm),
            cell(x86, hello_x86),
            if name == BASELINE {
                "baseline".into()
            } else {
                verdict(ok).into()
            },
        ]);
    }
    table(
        out,
        &[
            "binary",
            "arm64 (vs hello)",
            "x86_64 (vs hello)",
            "goal: <= 5 MB",
        ],
        &rows,
    );
    if let Some((name, size, arch)) = &largest {
        let hello = if *arch == "arm64" {
            hello_arm
        } else {
            hello_x86
        };
        summary.add(
            "binary size (largest function)",
            format!("{name} {arch}: {}", mb(*size)),
            hello.map_or("-".into(), |h| format!("hello world {}", mb(h))),
            hello.map_or("-".into(), |h| format!("{:.1}x", *size as f64 / h as f64)),
            "<= 5 MB",
            Some(all_ok && any),
        );
    } else {
        summary.add(
            "binary size",
            "-".into(),
            "-".into(),
            "-".into(),
            "<= 5 MB",
            None,
        );
    }

    // One TLS stack: no crate of the TLS/HTTP stack in two versions.
    let Some(tree) = options
        .tree
        .as_ref()
        .and_then(|p| std::fs::read_to_string(p).ok())
    else {
        return;
    };
    let mut duplicated = Vec::new();
    let mut stack_dups = Vec::new();
    for line in tree.lines() {
        // Roots of `cargo tree -d` are the duplicated crates: "name vX.Y.Z".
        if line.is_empty() || line.starts_with([' ', '│', '├', '└']) {
            continue;
        }
        let mut parts = line.split_whitespace();
        if let (Some(name), Some(version)) = (parts.next(), parts.next()) {
            let entry = format!("{name} {version}");
            if !duplicated.contains(&entry) {
                duplicated.push(entry.clone());
                if STACK_CRATES.contains(&name) {
                    stack_dups.push(entry);
                }
            }
        }
    }
    let _ = writeln!(
        out,
        "`cargo tree -d -e normal --target aarch64-unknown-linux-gnu`: {} crates in more than \
         one version: {}.\n\nTLS / HTTP stack crates in two versions: {}.\n",
        duplicated.len(),
        if duplicated.is_empty() {
            "none".to_owned()
        } else {
            duplicated
                .iter()
                .map(|d| format!("`{d}`"))
                .collect::<Vec<_>>()
                .join(", ")
        },
        if stack_dups.is_empty() {
            "none".to_owned()
        } else {
            stack_dups.join(", ")
        }
    );
    // A second stack can also be another implementation: ring or OpenSSL beside aws-lc.
    let crates: Vec<String> = options
        .tree_all
        .as_ref()
        .and_then(|p| std::fs::read_to_string(p).ok())
        .map(|text| {
            text.lines()
                .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let present = |name: &str| crates.iter().any(|c| c == name);
    let providers: Vec<&str> = ["aws-lc-rs", "ring", "openssl", "native-tls", "s2n-tls"]
        .into_iter()
        .filter(|p| present(p))
        .collect();
    if !crates.is_empty() {
        let _ = writeln!(
            out,
            "TLS / crypto implementations linked by the functions: {}; rustls {}, hyper {}.\n",
            providers.join(", "),
            if present("rustls") { "yes" } else { "no" },
            if present("hyper") { "yes" } else { "no" },
        );
    }
    let second_provider = providers.len() > 1;
    summary.add(
        "TLS stacks",
        if stack_dups.is_empty() && !second_provider {
            format!("1 (rustls on {})", providers.join(", "))
        } else {
            format!(
                "more than one: {} {}",
                stack_dups.join(", "),
                providers.join(", ")
            )
        },
        "-".into(),
        "-".into(),
        "one (no second rustls/hyper/ring/aws-lc)",
        Some(stack_dups.is_empty() && !second_provider),
    );
}

fn round_trips(out: &mut String, summary: &mut Summary, results: &Path) -> Option<Value> {
    out.push_str("## DynamoDB round trips per flow\n\n");
    let Some(data) = read_json(results, "round_trips.json") else {
        out.push_str("Not measured in this run.\n\n");
        summary.add(
            "round trips",
            "-".into(),
            "-".into(),
            "-".into(),
            "budgets",
            None,
        );
        return None;
    };
    out.push_str(
        "Counted by the SDK interceptor on DynamoDB Local (`tests/tests/round_trips.rs`, which \
         fails when a flow exceeds its budget); sequential steps are counted on the wire (calls \
         that overlap in time, through a relay adding 15 ms to each answer, are one step). Budgets: the issue's goals (signup 1 transaction, \
         login at most 3 sequential calls, refresh, logout and the session check 1 each) and \
         the README's round-trip table for the rest.\n\n",
    );
    let mut rows = Vec::new();
    let mut over = Vec::new();
    for flow in data["flows"].as_array().into_iter().flatten() {
        let name = flow["flow"].as_str().unwrap_or("?");
        let ok = flow["ok"].as_bool().unwrap_or(false);
        if !ok {
            over.push(name.to_owned());
        }
        let calls = flow["calls"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(op, n)| format!("{op} {n}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default();
        rows.push(vec![
            name.to_owned(),
            flow["total"].to_string(),
            flow["steps"].to_string(),
            calls,
            flow["budget"].as_str().unwrap_or("?").to_owned(),
            verdict(ok).into(),
        ]);
    }
    table(
        out,
        &[
            "flow",
            "calls",
            "sequential steps",
            "by operation",
            "budget",
            "goal",
        ],
        &rows,
    );
    summary.add(
        "DynamoDB round trips",
        format!("{} flows", rows.len()),
        "README table".into(),
        "-".into(),
        "every flow within budget",
        Some(over.is_empty() && !rows.is_empty()),
    );
    Some(data)
}

fn throughput(out: &mut String, summary: &mut Summary, results: &Path) -> Option<Value> {
    out.push_str("## Throughput per core\n\n");
    let Some(t) = read_json(results, "throughput.json") else {
        out.push_str("Not measured in this run.\n\n");
        summary.add(
            "logins per core",
            "-".into(),
            "-".into(),
            "-".into(),
            ">= 90% of argon2 verify",
            None,
        );
        return None;
    };
    let _ = writeln!(
        out,
        "Release `dev-server` (embedded store) pinned to core {} with `taskset`; wrk 4 pinned \
         to core {} (`-t1`, {} connections, {} connections for logins) on 127.0.0.1; median of \
         {} rounds of health {} s, refresh {} s, login {} s and the raw argon2id rate on the \
         server's core for {} s (argon2id computations at the same parameters into one reused \
         memory block, nothing else).\n",
        t["server_core"],
        t["load_core"],
        t["connections"]["cheap"],
        t["connections"]["login"],
        t["rounds"],
        t["seconds"]["cheap"],
        t["seconds"]["cheap"],
        t["seconds"]["login"],
        t["seconds"]["login"]
    );
    let login = f(&t["login_per_second"]["median"]);
    let raw = f(&t["raw_verify_per_second"]["median"]);
    let refresh = f(&t["refresh_per_second"]["median"]);
    let health = f(&t["health_per_second"]["median"]);
    // The medians of the ratios within each round.
    let login_ratio = f(&t["login_over_raw_verify"]["median"]);
    let refresh_ratio = f(&t["refresh_over_health"]["median"]);
    let line = |v: &Value| {
        format!(
            "{:.1} ({:.1} - {:.1})",
            f(&v["median"]),
            f(&v["min"]),
            f(&v["max"])
        )
    };
    let rows = vec![
        vec![
            "`POST /v1/login`".into(),
            line(&t["login_per_second"]),
            t["errors"]["login"].to_string(),
        ],
        vec![
            "raw argon2id, reused block (baseline)".into(),
            line(&t["raw_verify_per_second"]),
            "-".into(),
        ],
        vec![
            "`POST /v1/token/refresh`".into(),
            line(&t["refresh_per_second"]),
            t["errors"]["refresh"].to_string(),
        ],
        vec![
            "`GET /v1/health` (baseline)".into(),
            line(&t["health_per_second"]),
            t["errors"]["health"].to_string(),
        ],
    ];
    table(
        out,
        &["load", "per second, median (min - max)", "errors"],
        &rows,
    );
    let idle = t["memory_kib"]["idle"].as_u64().unwrap_or(0);
    let peak = t["memory_kib"]["peak"].as_u64().unwrap_or(0);
    let _ = writeln!(
        out,
        "Within a round, logins reach {:.0}% of the raw argon2id rate (median of the rounds; \
         goal at least 90%) and refreshes {:.0}% of health checks (goal at least 30%). Server \
         memory: {:.1} MiB idle, {:.1} MiB peak (`VmHWM`) after all rounds.\n",
        100.0 * login_ratio,
        100.0 * refresh_ratio,
        idle as f64 / 1024.0,
        peak as f64 / 1024.0
    );
    let errors_ok =
        t["errors"]["login"].as_u64() == Some(0) && t["errors"]["refresh"].as_u64() == Some(0);
    summary.add(
        "logins per second, one core",
        format!("{login:.1}/s"),
        format!("raw argon2id {raw:.1}/s"),
        format!("{:.0}%", 100.0 * login_ratio),
        ">= 90%",
        Some(login_ratio >= LOGIN_MIN_RATIO && errors_ok),
    );
    summary.add(
        "refreshes per second, one core",
        format!("{refresh:.0}/s"),
        format!("health {health:.0}/s"),
        format!("{:.0}%", 100.0 * refresh_ratio),
        ">= 30%",
        Some(refresh_ratio >= REFRESH_MIN_RATIO && errors_ok),
    );
    summary.add(
        "server peak memory under load",
        format!("{:.1} MiB", peak as f64 / 1024.0),
        format!("idle {:.1} MiB", idle as f64 / 1024.0),
        format!("{:.1}x", peak as f64 / idle.max(1) as f64),
        "reported",
        Some(true),
    );
    Some(t)
}

fn kb(bytes: u64) -> String {
    format!("{:.1} KB", bytes as f64 / 1024.0)
}

fn page_weight(out: &mut String, summary: &mut Summary, results: &Path) {
    out.push_str("## Page weight\n\n");
    let Some(data) = read_json(results, "pages.json") else {
        out.push_str("Not measured in this run.\n\n");
        summary.add(
            "page weight (heaviest page)",
            "-".into(),
            "-".into(),
            "-".into(),
            "< 30 KB, no other origin",
            None,
        );
        return;
    };
    out.push_str(
        "Each page as a first visit (empty cache) fetches it from the release `dev-server`, \
         which serves the same pages as the `web` function: the page and every subresource \
         it names, each with its response head; bodies as sent (uncompressed) and gzipped \
         (`gzip -6`, close to what CloudFront's compression sends). KB are 1,024 bytes. A \
         subresource on another origin, or a CSP that would allow one, fails the run. \
         Baseline: the 404 page, the smallest page (the layout, the style sheet and the \
         script).\n\n",
    );
    let mut rows = Vec::new();
    let mut heaviest: Option<(String, u64)> = None;
    let mut baseline: Option<u64> = None;
    let mut all_within = true;
    let mut foreign = 0;
    for p in data["pages"].as_array().into_iter().flatten() {
        let label = p["page"].as_str().unwrap_or("?").to_owned();
        let html = &p["html"];
        let assets = p["assets"].as_array().cloned().unwrap_or_default();
        let asset_bytes: u64 = assets
            .iter()
            .map(|a| a["body_bytes"].as_u64().unwrap_or(0))
            .sum();
        let asset_gzip: u64 = assets
            .iter()
            .map(|a| a["body_gzip_bytes"].as_u64().unwrap_or(0))
            .sum();
        let heads: u64 = html["head_bytes"].as_u64().unwrap_or(0)
            + assets
                .iter()
                .map(|a| a["head_bytes"].as_u64().unwrap_or(0))
                .sum::<u64>();
        let total = p["total_bytes"].as_u64().unwrap_or(0);
        let total_gzip = p["total_gzip_bytes"].as_u64().unwrap_or(0);
        let within = total < PAGE_MAX_BYTES && p["foreign_requests"].as_u64() == Some(0);
        all_within &= within;
        foreign += p["foreign_requests"].as_u64().unwrap_or(1);
        if label.contains("404") {
            baseline = Some(total);
        }
        if heaviest.as_ref().is_none_or(|(_, t)| total > *t) {
            heaviest = Some((label.clone(), total));
        }
        let asset_paths: Vec<String> = assets
            .iter()
            .filter_map(|a| a["path"].as_str().map(|path| format!("`{path}`")))
            .collect();
        rows.push(vec![
            format!("`{label}`"),
            format!(
                "{} ({})",
                html["body_bytes"].as_u64().unwrap_or(0),
                html["body_gzip_bytes"].as_u64().unwrap_or(0)
            ),
            format!("{asset_bytes} ({asset_gzip}): {}", asset_paths.join(", ")),
            heads.to_string(),
            format!("{} ({})", kb(total), kb(total_gzip)),
            p["requests"].to_string(),
            verdict(within).into(),
        ]);
    }
    table(
        out,
        &[
            "page",
            "HTML bytes (gzip)",
            "asset bytes (gzip)",
            "head bytes",
            "total (gzip)",
            "requests",
            "goal: < 30 KB, same origin",
        ],
        &rows,
    );
    if let Some((label, total)) = heaviest {
        let base = baseline.unwrap_or(0);
        summary.add(
            "page weight (heaviest page)",
            format!("{label}: {}", kb(total)),
            format!("404 page {}", kb(base)),
            if base > 0 {
                format!("{:.2}x", total as f64 / base as f64)
            } else {
                "-".into()
            },
            "every page < 30 KB with its assets; no other origin",
            Some(all_within && foreign == 0),
        );
    }
}

fn argon2(out: &mut String, summary: &mut Summary, results: &Path) {
    out.push_str("## argon2id cost\n\n");
    let Some(a) = read_json(results, "argon2.json") else {
        out.push_str("Not measured in this run.\n\n");
        return;
    };
    let _ = writeln!(
        out,
        "At the configured parameters (m={} KiB, t={}, p={}), median of {} calls on one thread \
         (not `main`: the product hashes on Tokio's blocking pool), pinned to one core. The \
         product reuses its memory blocks (`shared/src/credentials/password.rs`); below, \"fresh\" \
         allocates the block per call as the `password-hash` API does, \"reused\" passes one \
         block allocated once (`hash_password_into_with_memory`).\n",
        a["params"]["memory_kib"], a["params"]["iterations"], a["params"]["parallelism"], a["runs"]
    );
    let cmp = |v: &Value| {
        vec![
            format!("{} KiB", v["memory_kib"]),
            format!("{:.2}", f(&v["fresh_ms"]["median"])),
            format!("{:.2}", f(&v["reused_ms"]["median"])),
            format!("{:.2}x", f(&v["fresh_over_reused"])),
        ]
    };
    let rows = vec![
        vec![
            "the product's `PasswordHasher` (blocking-pool task, reused memory)".into(),
            format!("{:.2}", f(&a["product_hash_ms"]["median"])),
            format!("{:.2}", f(&a["product_verify_ms"]["median"])),
        ],
        vec![
            "the argon2 crate's `password-hash` API (memory allocated per call)".into(),
            format!("{:.2}", f(&a["hash_ms"]["median"])),
            format!("{:.2}", f(&a["verify_ms"]["median"])),
        ],
    ];
    table(
        out,
        &["path", "hash, median ms", "verify, median ms"],
        &rows,
    );
    table(
        out,
        &[
            "memory",
            "fresh block ms",
            "reused block ms",
            "fresh / reused",
        ],
        &[cmp(&a["configured_memory"]), cmp(&a["memory_64_mib"])],
    );
    let product = f(&a["product_verify_ms"]["median"]);
    let bare = f(&a["configured_memory"]["reused_ms"]["median"]);
    summary.add(
        "argon2id verify as the product runs it",
        format!("{product:.2} ms"),
        format!("bare computation, reused block {bare:.2} ms"),
        format!("{:.2}x", product / bare),
        "no allocation penalty (< 1.1x)",
        Some(product / bare < 1.1),
    );
    summary.add(
        "argon2id at 64 MiB: fresh vs reused block",
        format!("{:.2} ms", f(&a["memory_64_mib"]["fresh_ms"]["median"])),
        format!(
            "reused {:.2} ms",
            f(&a["memory_64_mib"]["reused_ms"]["median"])
        ),
        format!("{:.2}x", f(&a["memory_64_mib"]["fresh_over_reused"])),
        "reported (glibc mmap effect)",
        Some(true),
    );
}

fn cost(out: &mut String, throughput: Option<&Value>, trips: Option<&Value>) {
    out.push_str("## Cost of a million logins (derived)\n\n");
    let Some(t) = throughput else {
        out.push_str("Needs the throughput figures.\n\n");
        return;
    };
    let login_rate = f(&t["login_per_second"]["median"]);
    let cpu_ms = 1000.0 / login_rate;
    let login = trips.and_then(|d| {
        d["flows"]
            .as_array()?
            .iter()
            .find(|fl| fl["flow"] == "login")
            .cloned()
    });
    let op = |name: &str| {
        login
            .as_ref()
            .and_then(|l| l["calls"][name].as_f64())
            .unwrap_or(0.0)
    };
    let steps = login
        .as_ref()
        .and_then(|l| l["steps"].as_f64())
        .unwrap_or(3.0);
    let rru = op("GetItem") + BATCH_ITEMS * op("BatchGetItem");
    let wru = op("UpdateItem")
        + op("PutItem")
        + op("DeleteItem")
        + op("TransactWriteItems") * (2.0 * TRANSACTION_ITEMS + INDEX_WRITES);
    let ops_text = login
        .as_ref()
        .and_then(|l| l["calls"].as_object())
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_else(|| "not measured".into());
    let duration_ms = (cpu_ms * FULL_VCPU_MB / LAMBDA_MEMORY_MB + steps * DYNAMODB_CALL_MS).ceil();
    let gb_seconds = duration_ms / 1000.0 * LAMBDA_MEMORY_MB / 1024.0;
    let lambda = 1e6 * (gb_seconds * LAMBDA_ARM64_GB_SECOND + LAMBDA_PER_REQUEST);
    let dynamodb = 1e6 * (wru * DYNAMODB_PER_WRU + rru * DYNAMODB_PER_RRU);
    let api = 1e6 * HTTP_API_PER_REQUEST;
    let total = lambda + dynamodb + api;
    let maus = 1e6 / LOGINS_PER_USER_PER_MONTH;
    let billable = (maus - COGNITO_FREE_MAU).max(0.0);
    let _ = writeln!(
        out,
        "CPU per login = 1 / measured logins per second on one core = {cpu_ms:.1} ms. \
         Lambda at {LAMBDA_MEMORY_MB} MB gets {LAMBDA_MEMORY_MB}/{FULL_VCPU_MB} of a vCPU, so \
         duration = {cpu_ms:.1} x {FULL_VCPU_MB}/{LAMBDA_MEMORY_MB} + {steps} sequential DynamoDB \
         steps x {DYNAMODB_CALL_MS} ms (assumed) = {duration_ms:.0} ms, or {gb_seconds:.4} GB-s. \
         DynamoDB calls of a login (measured): {ops_text}; that is {rru} RRU (GetItem 1, \
         BatchGetItem {BATCH_ITEMS} items) and {wru} WRU (single writes 1; the transaction \
         {TRANSACTION_ITEMS} items x 2 + {INDEX_WRITES} index writes).\n"
    );
    let rows = vec![
        vec![
            "Lambda arm64".into(),
            format!("1M x ({gb_seconds:.4} GB-s x ${LAMBDA_ARM64_GB_SECOND} + $0.20/1M requests)"),
            format!("${lambda:.2}"),
        ],
        vec![
            "DynamoDB on-demand".into(),
            format!("1M x ({wru} WRU x $0.625/1M + {rru} RRU x $0.125/1M)"),
            format!("${dynamodb:.2}"),
        ],
        vec![
            "API Gateway HTTP API".into(),
            "1M x $1.00/1M".into(),
            format!("${api:.2}"),
        ],
        vec![
            "**total**".into(),
            String::new(),
            format!("**${total:.2}**"),
        ],
        vec![
            "Cognito Lite, same load".into(),
            format!(
                "{maus:.0} MAU ({LOGINS_PER_USER_PER_MONTH} logins each) - {COGNITO_FREE_MAU} free, x ${COGNITO_LITE_PER_MAU}"
            ),
            format!("${:.2}", billable * COGNITO_LITE_PER_MAU),
        ],
        vec![
            "Cognito Essentials, same load".into(),
            format!("same MAUs x ${COGNITO_ESSENTIALS_PER_MAU}"),
            format!("${:.2}", billable * COGNITO_ESSENTIALS_PER_MAU),
        ],
    ];
    table(out, &["part", "formula", "per million logins"], &rows);
    out.push_str(
        "Prices: us-east-1 list prices (Lambda arm64 $0.0000133334 per GB-s and $0.20 per \
         million requests; DynamoDB on-demand $0.625 per million WRU and $0.125 per million RRU; \
         HTTP API $1.00 per million requests; Cognito $0.0055 (Lite) / $0.015 (Essentials) per \
         MAU above 10,000). Not included: CloudWatch Logs, SES, storage, data transfer, cold \
         starts. The CPU time is this machine's x86_64 core running the local server; a \
         Graviton core may differ by tens of percent.\n\n",
    );
}

pub fn write(options: &Options) -> anyhow::Result<()> {
    let mut summary = Summary { rows: Vec::new() };
    let mut body = String::new();
    cold_start(&mut body, &mut summary, &options.results);
    sizes(&mut body, &mut summary, options);
    let trips = round_trips(&mut body, &mut summary, &options.results);
    let thr = throughput(&mut body, &mut summary, &options.results);
    argon2(&mut body, &mut summary, &options.results);
    page_weight(&mut body, &mut summary, &options.results);
    cost(&mut body, thr.as_ref(), trips.as_ref());

    let mut out = String::new();
    out.push_str("# Benchmark report\n\n");
    let when = std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines().find_map(|l| {
                l.strip_prefix("model name")
                    .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
            })
        })
        .unwrap_or_else(|| "?".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let _ = writeln!(
        out,
        "Written by `bench/run.sh` (`make bench`) on {when}; {cores} cores ({cpu}), shared with \
         other work, so every figure is a median of several runs and is compared with a \
         baseline measured in the same run.\n"
    );
    out.push_str("## Summary\n\n");
    let rows: Vec<Vec<String>> = summary.rows.iter().map(|r| r.to_vec()).collect();
    table(
        &mut out,
        &[
            "measure",
            "figure",
            "baseline (same run)",
            "ratio",
            "goal",
            "status",
        ],
        &rows,
    );
    out.push_str(&body);
    if let Some(parent) = options.out.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&options.out, out)
        .with_context(|| format!("writing {}", options.out.display()))?;
    eprintln!("wrote {}", options.out.display());
    Ok(())
}
