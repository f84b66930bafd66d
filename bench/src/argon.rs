//! argon2id cost at the configured parameters: hash and verify through the product's
//! `PasswordHasher`, through the argon2 crate's `password-hash` API (which allocates the
//! memory block on every call), and the bare computation into a freshly allocated block
//! vs one allocated once and reused (`hash_password_into_with_memory`), at the
//! configured memory and at 64 MiB. glibc
//! serves allocations above its mmap threshold (at most 32 MiB) with fresh mappings, so
//! each call pays the page faults of the whole block; reuse shows what that costs.
//!
//! Everything runs on a spawned thread, as the product's hashing runs on Tokio's
//! blocking pool (a thread other than `main`, with its own malloc arena).

use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use serde_json::json;

use crate::stats;

const PASSWORD: &[u8] = b"tangerine-quartz-88";
const SALT: &[u8] = b"accounts-bench-salt!";

/// The argon2 parameters the product is configured with (`ARGON2_*`, else defaults).
pub fn configured() -> anyhow::Result<accounts::credentials::password::HashParams> {
    let config = accounts::app::config::Config::from_lookup(|name| {
        std::env::var(name)
            .ok()
            .filter(|v| !v.is_empty())
            .or_else(|| {
                Some(
                    match name {
                        "APP_BASE_URL" => "http://127.0.0.1",
                        "TABLE_NAME" => "bench",
                        "MAIL_FROM" => "bench@example.com",
                        _ => return None,
                    }
                    .to_owned(),
                )
            })
    })
    .map_err(|e| anyhow!("the configuration is invalid: {e:?}"))?;
    Ok(config.password_hashing)
}

fn argon2_with(
    memory_kib: u32,
    iterations: u32,
    parallelism: u32,
) -> anyhow::Result<Argon2<'static>> {
    let params = Params::new(memory_kib, iterations, parallelism, None)
        .map_err(|e| anyhow!("invalid argon2 parameters: {e}"))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// Milliseconds per call of `f`, `runs` times after one warm-up call.
fn time_ms(runs: usize, mut f: impl FnMut() -> anyhow::Result<()>) -> anyhow::Result<Vec<f64>> {
    f()?;
    let mut samples = Vec::with_capacity(runs);
    for _ in 0..runs {
        let started = Instant::now();
        f()?;
        samples.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    Ok(samples)
}

/// Fresh allocation per call vs one reused block, at `memory_kib`.
fn fresh_vs_reused(
    memory_kib: u32,
    iterations: u32,
    parallelism: u32,
    runs: usize,
) -> anyhow::Result<serde_json::Value> {
    let argon2 = argon2_with(memory_kib, iterations, parallelism)?;
    let mut out = [0u8; 32];
    let fresh = time_ms(runs, || {
        argon2
            .hash_password_into(PASSWORD, SALT, &mut out)
            .map_err(|e| anyhow!("argon2: {e}"))
    })?;
    let blocks = argon2.params().block_count();
    let mut memory = vec![Block::default(); blocks];
    let reused = time_ms(runs, || {
        argon2
            .hash_password_into_with_memory(PASSWORD, SALT, &mut out, &mut memory[..])
            .map_err(|e| anyhow!("argon2: {e}"))
    })?;
    let (fresh_ms, reused_ms) = (stats::median(&fresh), stats::median(&reused));
    Ok(json!({
        "memory_kib": memory_kib,
        "iterations": iterations,
        "parallelism": parallelism,
        "fresh_ms": stats::summary(&fresh),
        "reused_ms": stats::summary(&reused),
        "fresh_over_reused": fresh_ms / reused_ms,
    }))
}

/// Hash and verify through the product's own `PasswordHasher` (its blocking-pool task,
/// its memory reuse), awaited one at a time.
fn product(runs: usize) -> anyhow::Result<(Vec<f64>, Vec<f64>)> {
    use accounts::credentials::password::PasswordHasher;
    use accounts::values::new_password::NewPassword;
    use accounts::values::secret::Secret;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let hasher = PasswordHasher::new(configured()?)?;
    let password = std::str::from_utf8(PASSWORD)?;
    let new = NewPassword::parse(&Secret::new(password), None, None)
        .map_err(|weak| anyhow!("the benchmark password is refused: {weak:?}"))?;
    let secret = Secret::new(password);
    runtime.block_on(async {
        let stored = hasher.hash(&new).await?;
        let mut hash = Vec::with_capacity(runs);
        let mut verify = Vec::with_capacity(runs);
        for _ in 0..=runs {
            let started = Instant::now();
            hasher.hash(&new).await?;
            hash.push(started.elapsed().as_secs_f64() * 1000.0);
            let started = Instant::now();
            hasher.verify(&secret, Some(&stored)).await?;
            verify.push(started.elapsed().as_secs_f64() * 1000.0);
        }
        // The first of each warmed up.
        Ok((hash.split_off(1), verify.split_off(1)))
    })
}

fn micro_benchmark_here(runs: usize) -> anyhow::Result<serde_json::Value> {
    let params = configured()?;
    let (product_hash, product_verify) = product(runs)?;
    let argon2 = argon2_with(params.memory_kib, params.iterations, params.parallelism)?;
    // As the product does it: a PHC string out, a PHC string verified.
    let mut phc = String::new();
    let hash = time_ms(runs, || {
        phc = argon2
            .hash_password(PASSWORD)
            .map_err(|e| anyhow!("argon2: {e}"))?
            .to_string();
        Ok(())
    })?;
    let parsed = argon2::password_hash::phc::PasswordHash::new(&phc)
        .map_err(|e| anyhow!("parsing our own hash: {e}"))?;
    let verify = time_ms(runs, || {
        argon2
            .verify_password(PASSWORD, &parsed)
            .map_err(|e| anyhow!("argon2: {e}"))
    })?;
    let configured_memory = fresh_vs_reused(
        params.memory_kib,
        params.iterations,
        params.parallelism,
        runs,
    )?;
    let large = fresh_vs_reused(65_536, params.iterations, params.parallelism, runs)?;
    Ok(json!({
        "runs": runs,
        "params": {
            "memory_kib": params.memory_kib,
            "iterations": params.iterations,
            "parallelism": params.parallelism,
        },
        "product_hash_ms": stats::summary(&product_hash),
        "product_verify_ms": stats::summary(&product_verify),
        "hash_ms": stats::summary(&hash),
        "verify_ms": stats::summary(&verify),
        "configured_memory": configured_memory,
        "memory_64_mib": large,
    }))
}

pub fn micro_benchmark(runs: usize) -> anyhow::Result<serde_json::Value> {
    let result = std::thread::spawn(move || micro_benchmark_here(runs))
        .join()
        .map_err(|_| anyhow!("the benchmark thread panicked"))??;
    let ms = |key: &str| result[key]["median"].as_f64().unwrap_or(f64::NAN);
    eprintln!(
        "argon2 (medians): the product hashes in {:.2} ms and verifies in {:.2} ms; \
         the argon2 crate's own API {:.2} / {:.2} ms",
        ms("product_hash_ms"),
        ms("product_verify_ms"),
        ms("hash_ms"),
        ms("verify_ms")
    );
    Ok(result)
}

/// argon2id computations per second on one thread for `seconds`, at the configured
/// parameters, into one reused memory block: the most logins one core could do if a
/// login cost nothing but its password check.
pub fn verify_rate(seconds: f64) -> anyhow::Result<serde_json::Value> {
    let params = configured()?;
    std::thread::spawn(move || -> anyhow::Result<serde_json::Value> {
        let argon2 = argon2_with(params.memory_kib, params.iterations, params.parallelism)?;
        let mut memory = vec![Block::default(); argon2.params().block_count()];
        let mut out = [0u8; 32];
        let budget = Duration::from_secs_f64(seconds);
        let started = Instant::now();
        let mut count = 0u64;
        while started.elapsed() < budget {
            argon2
                .hash_password_into_with_memory(PASSWORD, SALT, &mut out, &mut memory[..])
                .map_err(|e| anyhow!("argon2: {e}"))?;
            count += 1;
        }
        let elapsed = started.elapsed().as_secs_f64();
        Ok(json!({
            "computations": count,
            "seconds": elapsed,
            "per_second": count as f64 / elapsed,
        }))
    })
    .join()
    .map_err(|_| anyhow!("the benchmark thread panicked"))?
    .context("measuring the argon2id rate")
}
