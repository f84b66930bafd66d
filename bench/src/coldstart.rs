//! Cold start: the time from process start to the function's first request to the
//! Lambda Runtime API (`GET /2018-06-01/runtime/invocation/next`), which is when the
//! runtime is ready for its first event. A small stand-in for that API listens on
//! 127.0.0.1, records the instant each request arrives, and the process is killed.
//!
//! Every AWS endpoint points at a second local listener that only counts connections:
//! a connection during init means a network call on the init path.
//!
//! Runs go round-robin over the binaries (after one unmeasured warm-up each), so that
//! noise from other work on the machine spreads over all of them alike.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use base64::Engine as _;
use serde_json::json;

use crate::stats;

/// The hello-world floor every function is compared with.
pub const BASELINE: &str = "bench-hello";
const NEXT_PATH: &str = "/2018-06-01/runtime/invocation/next";
const RUN_TIMEOUT: Duration = Duration::from_secs(20);

pub struct Options {
    /// `cargo lambda` output (`<dir>/<bin>/bootstrap`) or a plain target dir (`<dir>/<bin>`).
    pub bin_dir: PathBuf,
    pub functions: Vec<String>,
    pub runs: usize,
    pub log_dir: PathBuf,
    /// Extra `NAME=value` variables for every process (experiments, e.g. SSL_CERT_FILE).
    pub extra_env: Vec<(String, String)>,
}

pub fn binary_path(dir: &Path, name: &str) -> PathBuf {
    let bootstrap = dir.join(name).join("bootstrap");
    if bootstrap.is_file() {
        bootstrap
    } else {
        dir.join(name)
    }
}

/// One request to the stand-in: when it arrived, and its connection (kept open until
/// the process is gone, so the runtime never sees an error and retries).
struct Arrival {
    at: Instant,
    _connection: TcpStream,
}

/// The Runtime API stand-in: every `GET .../invocation/next` is reported on a channel.
fn runtime_api() -> anyhow::Result<(u16, mpsc::Receiver<Arrival>)> {
    let listener = TcpListener::bind("127.0.0.1:0").context("binding the Runtime API stand-in")?;
    let port = listener.local_addr()?.port();
    let (sender, receiver) = mpsc::channel();
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let sender = sender.clone();
            thread::spawn(move || {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
                let Ok(reader_stream) = stream.try_clone() else {
                    return;
                };
                let mut reader = BufReader::new(reader_stream);
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() {
                    return;
                }
                if line.starts_with("GET ") && line.contains(NEXT_PATH) {
                    let _ = sender.send(Arrival {
                        at: Instant::now(),
                        _connection: stream,
                    });
                }
            });
        }
    });
    Ok((port, receiver))
}

/// A listener that accepts and drops connections, counting them.
fn sentinel() -> anyhow::Result<(u16, Arc<AtomicUsize>)> {
    let listener = TcpListener::bind("127.0.0.1:0").context("binding the endpoint sentinel")?;
    let port = listener.local_addr()?.port();
    let count = Arc::new(AtomicUsize::new(0));
    let counter = count.clone();
    thread::spawn(move || {
        for stream in listener.incoming() {
            if stream.is_ok() {
                counter.fetch_add(1, Ordering::SeqCst);
            }
        }
    });
    Ok((port, count))
}

/// The keys a deployment gives its functions (in the environment here, in place of SSM).
struct Keys {
    signing: String,
    verification: String,
    totp: String,
}

impl Keys {
    fn generate() -> anyhow::Result<Keys> {
        let signing = accounts::credentials::access_token::generate_ed25519_pem()?;
        let verification =
            accounts::credentials::access_token::AccessTokens::from_pem(&signing, None, "i", "a")?
                .public_pem()
                .ok_or_else(|| anyhow::anyhow!("a signing key has a public half"))?;
        let totp = base64::engine::general_purpose::STANDARD
            .encode(accounts::values::secret::random_bytes::<32>()?);
        Ok(Keys {
            signing,
            verification,
            totp,
        })
    }

    /// The keys `function` is given as deployed: exactly those it needs.
    fn environment_of(&self, function: &str) -> Vec<(String, String)> {
        let needs = accounts::routes::Function::ALL
            .iter()
            .find(|f| f.name() == function)
            .map(|f| f.keys_needed())
            .unwrap_or_default();
        let mut keys = Vec::new();
        if needs.signing_key {
            keys.push(("JWT_SIGNING_KEY".to_owned(), self.signing.clone()));
        }
        if needs.verification_keys {
            keys.push((
                "JWT_VERIFICATION_KEYS".to_owned(),
                self.verification.clone(),
            ));
        }
        if needs.totp_key {
            keys.push(("TOTP_ENCRYPTION_KEY".to_owned(), self.totp.clone()));
        }
        keys
    }
}

/// What every function needs to start: configuration given directly, dummy credentials,
/// and every AWS endpoint on the local sentinel (the keys: [`Keys::environment_of`]).
fn environment(runtime_port: u16, sentinel_port: u16) -> anyhow::Result<Vec<(String, String)>> {
    let endpoint = format!("http://127.0.0.1:{sentinel_port}");
    let missing = std::env::temp_dir().join("accounts-bench-no-such-file");
    let missing = missing.display().to_string();
    let pairs = [
        (
            "AWS_LAMBDA_RUNTIME_API",
            format!("127.0.0.1:{runtime_port}"),
        ),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".to_owned()),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "1024".to_owned()),
        ("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/bench".to_owned()),
        ("AWS_LAMBDA_LOG_STREAM_NAME", "bench".to_owned()),
        ("AWS_REGION", "us-east-1".to_owned()),
        ("AWS_DEFAULT_REGION", "us-east-1".to_owned()),
        ("AWS_ACCESS_KEY_ID", "bench".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "bench".to_owned()),
        ("AWS_SESSION_TOKEN", "bench".to_owned()),
        ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
        ("AWS_CONFIG_FILE", missing.clone()),
        ("AWS_SHARED_CREDENTIALS_FILE", missing),
        ("AWS_ENDPOINT_URL", endpoint.clone()),
        ("AWS_ENDPOINT_URL_DYNAMODB", endpoint.clone()),
        ("AWS_ENDPOINT_URL_SESV2", endpoint.clone()),
        ("AWS_ENDPOINT_URL_SSM", endpoint.clone()),
        ("AWS_ENDPOINT_URL_STS", endpoint),
        ("TABLE_NAME", "accounts-bench".to_owned()),
        ("APP_BASE_URL", "https://app.example.test".to_owned()),
        (
            "MAIL_FROM",
            "Account Security <no-reply@accounts.test>".to_owned(),
        ),
        ("RUST_LOG", "info".to_owned()),
    ];
    Ok(pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
}

struct Target {
    name: String,
    path: PathBuf,
    samples: Vec<f64>,
    init_connections: usize,
}

/// Starts one process and waits for its first `/next`; returns milliseconds.
fn one_run(
    target: &Target,
    env: &[(String, String)],
    arrivals: &mpsc::Receiver<Arrival>,
    connections: &AtomicUsize,
    log_dir: &Path,
) -> anyhow::Result<(f64, usize)> {
    // Anything left over from the previous process is not this one's.
    while arrivals.try_recv().is_ok() {}
    connections.store(0, Ordering::SeqCst);
    let log = log_dir.join(format!("cold-start-{}.log", target.name));
    let stdout = File::create(&log)?;
    let stderr = stdout.try_clone()?;
    let mut command = Command::new(&target.path);
    command
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("AWS_LAMBDA_FUNCTION_NAME", &target.name)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr);
    let started = Instant::now();
    let mut child: Child = command
        .spawn()
        .with_context(|| format!("starting {}", target.path.display()))?;
    let outcome = loop {
        match arrivals.recv_timeout(Duration::from_millis(20)) {
            Ok(arrival) => {
                let elapsed = arrival.at.saturating_duration_since(started);
                break Ok((elapsed.as_secs_f64() * 1000.0, arrival));
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if let Some(status) = child.try_wait()? {
                    let output = std::fs::read_to_string(&log).unwrap_or_default();
                    break Err(anyhow::anyhow!(
                        "{} exited ({status}) before asking for an event:\n{output}",
                        target.name
                    ));
                }
                if started.elapsed() > RUN_TIMEOUT {
                    break Err(anyhow::anyhow!(
                        "{} did not ask for an event within {RUN_TIMEOUT:?}",
                        target.name
                    ));
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                break Err(anyhow::anyhow!("the Runtime API stand-in stopped"));
            }
        }
    };
    let network = connections.load(Ordering::SeqCst);
    let _ = child.kill();
    let _ = child.wait();
    let (ms, arrival) = outcome?;
    drop(arrival);
    Ok((ms, network))
}

pub fn run(options: &Options) -> anyhow::Result<serde_json::Value> {
    std::fs::create_dir_all(&options.log_dir)?;
    let (runtime_port, arrivals) = runtime_api()?;
    let (sentinel_port, connections) = sentinel()?;
    let mut env = environment(runtime_port, sentinel_port)?;
    env.extend(options.extra_env.iter().cloned());
    let keys = Keys::generate()?;
    let mut targets: Vec<Target> = std::iter::once(BASELINE.to_owned())
        .chain(options.functions.iter().cloned())
        .map(|name| Target {
            path: binary_path(&options.bin_dir, &name),
            name,
            samples: Vec::new(),
            init_connections: 0,
        })
        .collect();
    for target in &targets {
        if !target.path.is_file() {
            bail!("{} not found (build it first)", target.path.display());
        }
    }
    // One warm-up each (page cache), then the measured runs, round-robin.
    for round in 0..=options.runs {
        for target in &mut targets {
            let mut env = env.clone();
            env.extend(keys.environment_of(&target.name));
            let (ms, network) = one_run(target, &env, &arrivals, &connections, &options.log_dir)?;
            if round > 0 {
                target.samples.push(ms);
            }
            target.init_connections = target.init_connections.max(network);
        }
    }
    let floor = stats::median(&targets[0].samples);
    let results: Vec<serde_json::Value> = targets
        .iter()
        .map(|t| {
            let median = stats::median(&t.samples);
            json!({
                "name": t.name,
                "path": t.path.display().to_string(),
                "ms": stats::summary(&t.samples),
                "ratio": median / floor,
                "init_network_connections": t.init_connections,
            })
        })
        .collect();
    for t in &targets {
        eprintln!(
            "cold start {:<12} median {:>7.2} ms  ({:.2}x the floor)  init connections {}",
            t.name,
            stats::median(&t.samples),
            stats::median(&t.samples) / floor,
            t.init_connections
        );
    }
    Ok(json!({
        "runs": options.runs,
        "baseline": BASELINE,
        "baseline_ms": floor,
        "bin_dir": options.bin_dir.display().to_string(),
        "extra_env": options.extra_env.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>(),
        "results": results,
    }))
}
