//! Throughput per core: the release `dev-server` (embedded store, outbox mailer) pinned
//! to one core with `taskset`, wrk pinned to another, both on 127.0.0.1 only.
//!
//! - logins per second against the raw argon2id rate of the same parameters on the same
//!   core (`bench verify-rate`: argon2id computations into one reused memory block, with
//!   nothing else around them);
//! - token refreshes per second against `GET /v1/health` (the cheapest route: the
//!   server's fixed cost per request);
//! - peak memory of the server (`VmHWM`) after all of it, against its idle size.
//!
//! Every figure is the median of `rounds` rounds, each round measuring all four in a
//! row; the ratios are taken within each round (a noisy moment on the shared machine
//! hits a whole round alike), and their median reported.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};

use crate::http;
use crate::stats;

pub struct Options {
    pub server: PathBuf,
    pub work_dir: PathBuf,
    pub wrk: String,
    pub rounds: usize,
    pub server_core: usize,
    pub load_core: usize,
}

const PASSWORD: &str = "quartz-tangerine-bench-2024";
const ACCOUNTS: usize = 16;
/// Connections for the cheap routes, and for logins (argon2 is the bottleneck anyway).
const CONNECTIONS: usize = 8;
const LOGIN_CONNECTIONS: usize = 4;
/// Sessions beyond one per connection for the refresh load (see `refresh_script`).
const SPARE_SESSIONS: usize = 4;
const CHEAP_SECONDS: u64 = 5;
const LOGIN_SECONDS: u64 = 8;

pub struct Server {
    child: Child,
    pub address: SocketAddr,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn email(i: usize) -> String {
    format!("load-{i}@example.com")
}

/// The release `dev-server` at `server`, pinned to `core`, on a free port of 127.0.0.1
/// (embedded store, outbox mailer, per-IP limits out of the way), once it answers.
pub fn start_server(server: &Path, work_dir: &Path, core: usize) -> anyhow::Result<Server> {
    let port = free_port()?;
    let address: SocketAddr = ([127, 0, 0, 1], port).into();
    let log = std::fs::File::create(work_dir.join("dev-server.log"))?;
    let child = Command::new("taskset")
        .arg("-c")
        .arg(core.to_string())
        .arg(server)
        .env("PORT", port.to_string())
        .env("APP_BASE_URL", format!("http://{address}"))
        .env("STORE", "memory")
        .env("MAILER", "outbox")
        .env("SIGNUPS_PER_IP_PER_HOUR", "100000")
        .env("RESENDS_PER_IP_PER_HOUR", "100000")
        .env("LOGIN_FAILURES_PER_IP_PER_HOUR", "100000")
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| format!("starting {}", server.display()))?;
    let mut server = Server { child, address };
    let started = Instant::now();
    loop {
        if let Ok(reply) = http::request(address, "GET", "/v1/health", None)
            && reply.status == 200
        {
            return Ok(server);
        }
        if let Some(status) = server.child.try_wait()? {
            bail!(
                "the dev-server exited ({status}); see {}/dev-server.log",
                work_dir.display()
            );
        }
        if started.elapsed() > Duration::from_secs(30) {
            bail!("the dev-server did not answer /v1/health within 30 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Signs up and verifies `ACCOUNTS` accounts through the API and the outbox.
fn prepare_accounts(address: SocketAddr) -> anyhow::Result<()> {
    for i in 0..ACCOUNTS {
        let reply = http::request(
            address,
            "POST",
            "/v1/signup",
            Some(&json!({"email": email(i), "password": PASSWORD, "account_type": "freelancer"})),
        )?;
        if reply.status != 202 {
            bail!("signup answered {}: {}", reply.status, reply.body);
        }
    }
    let mails = http::request(address, "GET", "/dev/mail.json", None)?.json()?;
    for i in 0..ACCOUNTS {
        let to = email(i);
        let token = mails
            .as_array()
            .into_iter()
            .flatten()
            .filter(|m| m["to"].as_str().is_some_and(|t| t.contains(&to)))
            .find_map(|m| {
                let text = m["text"].as_str()?;
                let start = text.find("/verify-email?token=")? + "/verify-email?token=".len();
                Some(
                    text[start..]
                        .chars()
                        .take_while(|c| !c.is_whitespace())
                        .collect::<String>(),
                )
            })
            .with_context(|| format!("no verification link for {to} in /dev/mail.json"))?;
        let reply = http::request(
            address,
            "POST",
            "/v1/email/verify",
            Some(&json!({"token": token})),
        )?;
        if reply.status != 200 {
            bail!("verify answered {}: {}", reply.status, reply.body);
        }
    }
    Ok(())
}

/// Fresh sessions for one refresh round (a token spent in an earlier round is gone).
fn refresh_tokens(address: SocketAddr, count: usize) -> anyhow::Result<Vec<String>> {
    (0..count)
        .map(|i| {
            let reply = http::request(
                address,
                "POST",
                "/v1/login",
                Some(&json!({"login": email(i % ACCOUNTS), "password": PASSWORD})),
            )?;
            if reply.status != 200 {
                bail!("login answered {}: {}", reply.status, reply.body);
            }
            reply.json()?["refresh_token"]
                .as_str()
                .map(str::to_owned)
                .context("no refresh_token in the login answer")
        })
        .collect()
}

fn login_script(path: &Path) -> anyhow::Result<()> {
    let script = format!(
        r#"-- POST /v1/login, cycling through the prepared accounts.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local i = 0
request = function()
  i = i + 1
  local body = string.format('{{"login":"load-%d@example.com","password":"{PASSWORD}"}}', i % {ACCOUNTS})
  return wrk.format(nil, "/v1/login", nil, body)
end
"#
    );
    std::fs::write(path, script)?;
    Ok(())
}

/// Each response's new refresh token goes back in the queue for the next request, so
/// every refresh is a valid rotation; a request without a token left is counted as an
/// error by wrk (non-2xx). wrk calls `request()` once more than it sends before the
/// first response arrives, so the queue starts with spare sessions (`SPARE_SESSIONS`).
fn refresh_script(path: &Path, tokens_file: &Path) -> anyhow::Result<()> {
    let script = format!(
        r#"-- POST /v1/token/refresh, rotating real refresh tokens.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local queue, head, tail = {{}}, 1, 0
init = function(args)
  for line in io.lines("{tokens}") do
    if #line > 0 then tail = tail + 1; queue[tail] = line end
  end
end
request = function()
  local token = "none-left"
  if head <= tail then token = queue[head]; queue[head] = nil; head = head + 1 end
  return wrk.format(nil, "/v1/token/refresh", nil, '{{"refresh_token":"' .. token .. '"}}')
end
response = function(status, headers, body)
  local token = body:match('"refresh_token"%s*:%s*"([^"]+)"')
  if token then tail = tail + 1; queue[tail] = token end
end
"#,
        tokens = tokens_file.display()
    );
    std::fs::write(path, script)?;
    Ok(())
}

/// One wrk run pinned to the load core; returns requests per second and errors.
fn wrk(
    options: &Options,
    address: SocketAddr,
    path: &str,
    script: Option<&Path>,
    connections: usize,
    seconds: u64,
) -> anyhow::Result<(f64, u64)> {
    let mut command = Command::new("taskset");
    command
        .arg("-c")
        .arg(options.load_core.to_string())
        .arg(&options.wrk)
        .args([
            "-t1",
            &format!("-c{connections}"),
            &format!("-d{seconds}s"),
            "--timeout",
            "10s",
        ]);
    if let Some(script) = script {
        command.arg("-s").arg(script);
    }
    command.arg(format!("http://{address}{path}"));
    let output = command
        .output()
        .with_context(|| format!("running {} (install it: apt-get install wrk)", options.wrk))?;
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.status.success() {
        bail!(
            "wrk failed ({}): {text}{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let rate = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .with_context(|| format!("no Requests/sec in wrk's output:\n{text}"))?;
    let non_2xx: u64 = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Non-2xx or 3xx responses:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let socket_errors: u64 = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Socket errors:"))
        .map(|v| {
            v.split(',')
                .filter_map(|part| part.split_whitespace().last()?.parse::<u64>().ok())
                .sum()
        })
        .unwrap_or(0);
    Ok((rate, non_2xx + socket_errors))
}

fn raw_verify_rate(options: &Options) -> anyhow::Result<f64> {
    let exe = std::env::current_exe()?;
    let output = Command::new("taskset")
        .arg("-c")
        .arg(options.server_core.to_string())
        .arg(exe)
        .args(["verify-rate", "--seconds", &LOGIN_SECONDS.to_string()])
        .output()
        .context("running bench verify-rate")?;
    if !output.status.success() {
        bail!(
            "bench verify-rate failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let value: Value = serde_json::from_slice(&output.stdout)?;
    value["per_second"]
        .as_f64()
        .context("no per_second from bench verify-rate")
}

/// `VmHWM` / `VmRSS` of a process, in KiB.
fn memory_kib(pid: u32, field: &str) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .with_context(|| format!("no {field} in /proc/{pid}/status"))
}

pub fn run(options: &Options) -> anyhow::Result<Value> {
    std::fs::create_dir_all(&options.work_dir)?;
    let server = start_server(&options.server, &options.work_dir, options.server_core)?;
    let address = server.address;
    let pid = server.child.id();
    let idle_kib = memory_kib(pid, "VmRSS:")?;
    prepare_accounts(address)?;
    let login_lua = options.work_dir.join("login.lua");
    let refresh_lua = options.work_dir.join("refresh.lua");
    let tokens_file = options.work_dir.join("refresh-tokens.txt");
    login_script(&login_lua)?;
    refresh_script(&refresh_lua, &tokens_file)?;

    let (mut health, mut refresh, mut login, mut raw) = (vec![], vec![], vec![], vec![]);
    let mut errors = json!({"health": 0, "refresh": 0, "login": 0});
    for round in 1..=options.rounds {
        let (rate, failed) = wrk(
            options,
            address,
            "/v1/health",
            None,
            CONNECTIONS,
            CHEAP_SECONDS,
        )?;
        health.push(rate);
        errors["health"] = json!(errors["health"].as_u64().unwrap_or(0) + failed);

        std::fs::write(
            &tokens_file,
            refresh_tokens(address, CONNECTIONS + SPARE_SESSIONS)?.join("\n") + "\n",
        )?;
        let (rate, failed) = wrk(
            options,
            address,
            "/v1/token/refresh",
            Some(&refresh_lua),
            CONNECTIONS,
            CHEAP_SECONDS,
        )?;
        refresh.push(rate);
        errors["refresh"] = json!(errors["refresh"].as_u64().unwrap_or(0) + failed);

        let (rate, failed) = wrk(
            options,
            address,
            "/v1/login",
            Some(&login_lua),
            LOGIN_CONNECTIONS,
            LOGIN_SECONDS,
        )?;
        login.push(rate);
        errors["login"] = json!(errors["login"].as_u64().unwrap_or(0) + failed);

        raw.push(raw_verify_rate(options)?);
        eprintln!(
            "throughput round {round}: health {:.0}/s, refresh {:.0}/s, login {:.1}/s, raw argon2 verify {:.1}/s",
            health[round - 1],
            refresh[round - 1],
            login[round - 1],
            raw[round - 1]
        );
    }
    let peak_kib = memory_kib(pid, "VmHWM:")?;
    let final_kib = memory_kib(pid, "VmRSS:")?;
    drop(server);
    // Ratios within each round (the machine's load changes between rounds), then
    // their median.
    let login_ratios: Vec<f64> = login.iter().zip(&raw).map(|(l, r)| l / r).collect();
    let refresh_ratios: Vec<f64> = refresh.iter().zip(&health).map(|(r, h)| r / h).collect();
    Ok(json!({
        "rounds": options.rounds,
        "server_core": options.server_core,
        "load_core": options.load_core,
        "connections": {"cheap": CONNECTIONS, "login": LOGIN_CONNECTIONS},
        "seconds": {"cheap": CHEAP_SECONDS, "login": LOGIN_SECONDS},
        "accounts": ACCOUNTS,
        "health_per_second": stats::summary(&health),
        "refresh_per_second": stats::summary(&refresh),
        "login_per_second": stats::summary(&login),
        "raw_verify_per_second": stats::summary(&raw),
        "login_over_raw_verify": stats::summary(&login_ratios),
        "refresh_over_health": stats::summary(&refresh_ratios),
        "errors": errors,
        "memory_kib": {"idle": idle_kib, "peak": peak_kib, "final": final_kib},
    }))
}
