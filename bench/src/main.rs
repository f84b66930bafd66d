//! The benchmark driver behind `bench/run.sh` (`make bench`). Each subcommand measures
//! one thing and writes a JSON file; `report` turns them into `bench/REPORT.md`.
//!
//! ```text
//! bench cold-start  --bin-dir DIR --functions a,b,c --runs 31 --out FILE [--env K=V,K=V]
//! bench argon2      --runs 15 --out FILE
//! bench verify-rate --seconds 5                     (prints JSON; run pinned by `throughput`)
//! bench throughput  --server PATH --work-dir DIR --out FILE [--rounds 3] [--wrk wrk]
//! bench page-weight --server PATH --work-dir DIR --out FILE [--core 0]
//! bench report      --results DIR --out bench/REPORT.md [--arm64-dir D] [--x86-dir D]
//!                   [--tree FILE] [--tree-all FILE] [--functions a,b,c]
//! ```
//!
//! The machines are shared and noisy: every figure is a median of several runs and is
//! reported as a ratio to a baseline measured in the same run.

mod argon;
mod coldstart;
mod http;
mod pages;
mod report;
mod stats;
mod throughput;

use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::{Context, bail};

/// `--name value` pairs after the subcommand.
struct Args {
    values: HashMap<String, String>,
}

impl Args {
    fn parse(raw: &[String]) -> anyhow::Result<Args> {
        let mut values = HashMap::new();
        let mut iter = raw.iter();
        while let Some(flag) = iter.next() {
            let Some(name) = flag.strip_prefix("--") else {
                bail!("unexpected argument {flag:?} (flags are --name value)");
            };
            let value = iter
                .next()
                .with_context(|| format!("--{name} needs a value"))?;
            values.insert(name.to_owned(), value.clone());
        }
        Ok(Args { values })
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    fn required(&self, name: &str) -> anyhow::Result<&str> {
        self.get(name)
            .with_context(|| format!("--{name} is required"))
    }

    fn path(&self, name: &str) -> anyhow::Result<PathBuf> {
        self.required(name).map(PathBuf::from)
    }

    fn number<T: std::str::FromStr>(&self, name: &str, default: T) -> anyhow::Result<T> {
        match self.get(name) {
            None => Ok(default),
            Some(text) => text
                .parse()
                .map_err(|_| anyhow::anyhow!("--{name} must be a number, not {text:?}")),
        }
    }

    fn list(&self, name: &str) -> Vec<String> {
        self.get(name)
            .map(|text| {
                text.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// The function binaries, when `--functions` is not given.
const DEFAULT_FUNCTIONS: &[&str] = &[
    "signup",
    "verify",
    "login",
    "reset",
    "account",
    "two-factor",
    "web",
    "cleanup",
    "mail-events",
];

fn functions(args: &Args) -> Vec<String> {
    let listed = args.list("functions");
    if listed.is_empty() {
        DEFAULT_FUNCTIONS.iter().map(|s| (*s).to_owned()).collect()
    } else {
        listed
    }
}

fn write_json(path: &std::path::Path, value: &serde_json::Value) -> anyhow::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let text = serde_json::to_string_pretty(value)?;
    std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))
}

fn main() -> anyhow::Result<()> {
    let raw: Vec<String> = std::env::args().skip(1).collect();
    let Some((command, rest)) = raw.split_first() else {
        bail!(
            "usage: bench <cold-start|argon2|verify-rate|throughput|page-weight|report> [--flag value]..."
        );
    };
    let args = Args::parse(rest)?;
    match command.as_str() {
        "cold-start" => {
            let result = coldstart::run(&coldstart::Options {
                bin_dir: args.path("bin-dir")?,
                functions: functions(&args),
                runs: args.number("runs", 31)?,
                log_dir: args
                    .get("log-dir")
                    .map(PathBuf::from)
                    .unwrap_or_else(std::env::temp_dir),
                extra_env: args
                    .list("env")
                    .into_iter()
                    .filter_map(|pair| {
                        let (k, v) = pair.split_once('=')?;
                        Some((k.to_owned(), v.to_owned()))
                    })
                    .collect(),
            })?;
            write_json(&args.path("out")?, &result)
        }
        "argon2" => {
            let result = argon::micro_benchmark(args.number("runs", 15)?)?;
            write_json(&args.path("out")?, &result)
        }
        "verify-rate" => {
            let result = argon::verify_rate(args.number("seconds", 5.0)?)?;
            println!("{result}");
            Ok(())
        }
        "throughput" => {
            let result = throughput::run(&throughput::Options {
                server: args.path("server")?,
                work_dir: args.path("work-dir")?,
                wrk: args.get("wrk").unwrap_or("wrk").to_owned(),
                rounds: args.number("rounds", 3)?,
                server_core: args.number("server-core", 0)?,
                load_core: args.number("load-core", 1)?,
            })?;
            write_json(&args.path("out")?, &result)
        }
        "page-weight" => {
            let result = pages::run(&pages::Options {
                server: args.path("server")?,
                work_dir: args.path("work-dir")?,
                core: args.number("core", 0)?,
            })?;
            write_json(&args.path("out")?, &result)
        }
        "report" => report::write(&report::Options {
            results: args.path("results")?,
            out: args.path("out")?,
            arm64_dir: args.get("arm64-dir").map(PathBuf::from),
            x86_dir: args.get("x86-dir").map(PathBuf::from),
            tree: args.get("tree").map(PathBuf::from),
            tree_all: args.get("tree-all").map(PathBuf::from),
            functions: functions(&args),
        }),
        other => bail!("unknown subcommand {other:?}"),
    }
}
