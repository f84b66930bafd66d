//! Passwords as credentials: argon2id hashing that runs off the async runtime and costs
//! the same whether or not an account exists.

use std::sync::{Arc, Mutex, OnceLock};

use anyhow::{Context, anyhow};
use argon2::password_hash::phc::{self, Output, ParamsString, Salt};
use argon2::{Algorithm, Argon2, Block, Params, Version};

use crate::records::PasswordHash;
use crate::values::new_password::{NewPassword, normalise};
use crate::values::secret::Secret;

/// The result of checking a password against a stored hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Wrong,
    Right { needs_rehash: bool },
}

/// What a login's password matched, found with one argon2 computation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoginVerdict {
    /// The account's own password.
    Account {
        needs_rehash: bool,
    },
    /// The password of a signup made on the account's address since (see
    /// `flows::signup::PendingSignup`): not a way in, but the person who made that signup is
    /// answered as the owner of a new, unverified account would be.
    PendingSignup,
    Wrong,
}

/// A hash, at the default cost, of a random password nobody kept: verifying against it
/// costs what verifying a real password does, from the first request of a cold start
/// (other costs compute their own dummy once).
const OWASP_DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$NK2csQOFHOBDnudNda+KNg$KC+T8/81Vhef1Jtbd9TIWNfAdZFTx8VcC+PYwOPrlkM";

/// argon2id parameters; [`HashParams::OWASP`] is the floor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HashParams {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl HashParams {
    /// OWASP's first argon2id configuration: m=19456 KiB, t=2, p=1.
    pub const OWASP: HashParams = HashParams {
        memory_kib: 19_456,
        iterations: 2,
        parallelism: 1,
    };

    /// Whether these parameters are at least as costly as OWASP's.
    pub fn meets_owasp(&self) -> bool {
        self.memory_kib >= Self::OWASP.memory_kib
            && self.iterations >= Self::OWASP.iterations
            && self.parallelism >= 1
    }
}

/// Hashes and verifies passwords with argon2id on the blocking thread pool.
#[derive(Clone)]
pub struct PasswordHasher {
    inner: Arc<HasherInner>,
}

struct HasherInner {
    params: HashParams,
    argon2: Argon2<'static>,
    /// A hash of a random password, verified against when there is no account, so that
    /// an unknown login costs one argon2 run like a known one.
    dummy: OnceLock<String>,
    /// Idle argon2 working memories of the configured size (see [`HasherInner::compute`]).
    memory: Mutex<Vec<Vec<Block>>>,
    /// One argon2 computation per core at a time (see [`PasswordHasher::run`]).
    running: Arc<tokio::sync::Semaphore>,
    /// The cores this process may use: the permits of `running`, and the working
    /// memories kept.
    cores: usize,
}

impl PasswordHasher {
    pub fn new(params: HashParams) -> anyhow::Result<PasswordHasher> {
        let argon2_params = Params::new(
            params.memory_kib,
            params.iterations,
            params.parallelism,
            None,
        )
        .map_err(|e| anyhow!("invalid argon2 parameters: {e}"))?;
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Ok(PasswordHasher {
            inner: Arc::new(HasherInner {
                params,
                argon2: Argon2::new(Algorithm::Argon2id, Version::V0x13, argon2_params),
                dummy: OnceLock::new(),
                memory: Mutex::new(Vec::new()),
                running: Arc::new(tokio::sync::Semaphore::new(cores)),
                cores,
            }),
        })
    }

    /// Runs `work` on the blocking thread pool, at most one per core at a time: more
    /// would only time-slice a core between 19 MiB working sets (finishing none sooner,
    /// evicting each other's memory from the caches, and holding more memory), so the
    /// others wait their turn. The permit goes with the work, so a request dropped
    /// while it runs still holds its core until the computation ends.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&HasherInner) -> T + Send + 'static,
    ) -> anyhow::Result<T> {
        let permit = self
            .inner
            .running
            .clone()
            .acquire_owned()
            .await
            .context("the password hashing limiter is closed")?;
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            work(&inner)
        })
        .await
        .context("the password hashing task failed")
    }

    pub fn params(&self) -> HashParams {
        self.inner.params
    }

    /// Hashes a password that met the policy.
    pub async fn hash(&self, password: &NewPassword) -> anyhow::Result<PasswordHash> {
        let secret = password.as_secret().clone();
        self.run(move |inner| inner.hash(&secret))
            .await?
            .map(PasswordHash)
    }

    /// Hashes a password that already verified against a weaker stored hash, with the
    /// configured cost (the policy was checked when it was set).
    pub async fn rehash(&self, password: &Secret) -> anyhow::Result<PasswordHash> {
        self.hash_secret(password).await
    }

    /// Hashes any secret answer (security answers are hashed like passwords).
    pub async fn hash_secret(&self, secret: &Secret) -> anyhow::Result<PasswordHash> {
        let secret = normalise(secret);
        self.run(move |inner| inner.hash(&secret))
            .await?
            .map(PasswordHash)
    }

    /// Hashes `password` with the algorithm, parameters and salt of `like` (an account's
    /// stored hash), so that a later [`PasswordHasher::verify_login`] against `like`
    /// also tells whether the password was this one, at no extra cost.
    pub async fn hash_like(
        &self,
        password: &Secret,
        like: &PasswordHash,
    ) -> anyhow::Result<PasswordHash> {
        let password = normalise(password);
        let like = like.0.clone();
        self.run(move |inner| inner.hash_like(&password, &like))
            .await?
            .map(PasswordHash)
    }

    /// Checks a login's password against the account's stored hash (or the dummy hash
    /// when there is no account), and with the same computation against `pending`, a
    /// [`PasswordHasher::hash_like`] of that stored hash: one argon2 run whatever the
    /// answer.
    pub async fn verify_login(
        &self,
        password: &Secret,
        stored: Option<&PasswordHash>,
        pending: Option<&PasswordHash>,
    ) -> anyhow::Result<LoginVerdict> {
        let password = normalise(password);
        let stored = stored.map(|hash| hash.0.clone());
        let pending = pending.map(|hash| hash.0.clone());
        self.run(move |inner| inner.verify_login(&password, stored.as_deref(), pending.as_deref()))
            .await?
    }

    /// Checks a password against a stored hash, or against a dummy hash with the same
    /// cost when there is none (unknown account): the answer is then always `Wrong`.
    pub async fn verify(
        &self,
        password: &Secret,
        stored: Option<&PasswordHash>,
    ) -> anyhow::Result<Verdict> {
        let password = normalise(password);
        let stored = stored.map(|hash| hash.0.clone());
        self.run(move |inner| inner.verify(&password, stored.as_deref()))
            .await?
    }
}

impl HasherInner {
    /// argon2 of `password` and `salt` into `out`, with `argon2`'s parameters, in a
    /// working memory reused from earlier calls when it has the configured size. The
    /// `password-hash` API allocates the memory (19 MiB by default) on every call:
    /// glibc maps it afresh or zeroes it each time (above 32 MiB it always maps: 1.5x
    /// slower at 64 MiB, bench/REPORT.md), and every blocking-pool thread left its
    /// malloc arena holding ~57 MiB (the local server on one core grew to 858 MiB
    /// under `make bench`'s login load; 99 MiB with reuse, in the same debug build). A
    /// reused memory holds the last computation's blocks until the next overwrites
    /// them, as freed heap memory did.
    fn compute(
        &self,
        argon2: &Argon2<'_>,
        password: &[u8],
        salt: &[u8],
        out: &mut [u8],
    ) -> anyhow::Result<()> {
        let blocks = argon2.params().block_count();
        let reusable = blocks == self.argon2.params().block_count();
        let idle = if reusable {
            self.memory.lock().ok().and_then(|mut idle| idle.pop())
        } else {
            None
        };
        let mut memory = idle.unwrap_or_else(|| vec![Block::default(); blocks]);
        let result = argon2.hash_password_into_with_memory(password, salt, out, &mut memory[..]);
        if reusable
            && let Ok(mut idle) = self.memory.lock()
            && idle.len() < self.cores
        {
            idle.push(memory);
        }
        result.map_err(|e| anyhow!("argon2 failed: {e}"))
    }

    /// A PHC string (`$argon2id$v=19$m=...,t=...,p=...$<salt>$<hash>`) with a fresh
    /// 16-byte salt, as the `password-hash` API writes it.
    fn hash(&self, secret: &Secret) -> anyhow::Result<String> {
        let salt = crate::values::secret::random_bytes::<16>()?;
        let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
        self.compute(&self.argon2, secret.expose().as_bytes(), &salt, &mut out)?;
        let phc = phc::PasswordHash {
            algorithm: Algorithm::Argon2id.ident(),
            version: Some(Version::V0x13.into()),
            params: ParamsString::try_from(self.argon2.params())
                .map_err(|e| anyhow!("argon2 parameters: {e}"))?,
            salt: Some(Salt::new(&salt).map_err(|e| anyhow!("argon2 salt: {e}"))?),
            hash: Some(Output::new(&out).map_err(|e| anyhow!("argon2 output: {e}"))?),
        };
        Ok(phc.to_string())
    }

    /// argon2 of `password` with a parsed PHC hash's own algorithm, version, parameters
    /// and salt (`None` when the hash cannot be computed here).
    fn compute_like(&self, password: &[u8], hash: &phc::PasswordHash) -> Option<Vec<u8>> {
        let (Some(salt), Some(expected)) = (&hash.salt, &hash.hash) else {
            return None;
        };
        let algorithm = Algorithm::try_from(hash.algorithm.as_str()).ok()?;
        let version = hash.version.map(Version::try_from).transpose().ok()?;
        let params = Params::try_from(hash).ok()?;
        let argon2 = Argon2::new(algorithm, version.unwrap_or_default(), params);
        let mut out = vec![0u8; expected.len()];
        self.compute(&argon2, password, salt, &mut out).ok()?;
        Some(out)
    }

    /// Whether `computed` is the output of `hash` (compared in constant time by `Output`).
    fn is_output_of(computed: &[u8], hash: &phc::PasswordHash) -> bool {
        hash.hash
            .as_ref()
            .is_some_and(|expected| Output::new(computed).is_ok_and(|c| c == *expected))
    }

    /// Whether two PHC hashes were computed the same way (algorithm, version,
    /// parameters, salt), so that one computation serves both.
    fn same_computation(a: &phc::PasswordHash, b: &phc::PasswordHash) -> bool {
        a.algorithm == b.algorithm
            && a.version == b.version
            && a.params == b.params
            && a.salt == b.salt
    }

    /// A PHC string of `secret` computed like `like` (same algorithm, parameters, salt).
    fn hash_like(&self, secret: &Secret, like: &str) -> anyhow::Result<String> {
        let like = phc::PasswordHash::new(like)
            .map_err(|e| anyhow!("a stored password hash is malformed: {e}"))?;
        let out = self
            .compute_like(secret.expose().as_bytes(), &like)
            .ok_or_else(|| anyhow!("a stored password hash cannot be computed"))?;
        let phc = phc::PasswordHash {
            hash: Some(Output::new(&out).map_err(|e| anyhow!("argon2 output: {e}"))?),
            ..like
        };
        Ok(phc.to_string())
    }

    fn verify_login(
        &self,
        password: &Secret,
        stored: Option<&str>,
        pending: Option<&str>,
    ) -> anyhow::Result<LoginVerdict> {
        let Some(text) = stored else {
            self.verify(password, None)?;
            return Ok(LoginVerdict::Wrong);
        };
        let parsed = phc::PasswordHash::new(text)
            .map_err(|e| anyhow!("a stored password hash is malformed: {e}"))?;
        let Some(computed) = self.compute_like(password.expose().as_bytes(), &parsed) else {
            return Ok(LoginVerdict::Wrong);
        };
        if Self::is_output_of(&computed, &parsed) {
            return Ok(LoginVerdict::Account {
                needs_rehash: self.needs_rehash(&parsed),
            });
        }
        let pending_matches = pending
            .and_then(|text| phc::PasswordHash::new(text).ok())
            .is_some_and(|pending| {
                Self::same_computation(&parsed, &pending) && Self::is_output_of(&computed, &pending)
            });
        Ok(match pending_matches {
            true => LoginVerdict::PendingSignup,
            false => LoginVerdict::Wrong,
        })
    }

    /// Whether a hash that verified is weaker than the configured cost.
    fn needs_rehash(&self, parsed: &phc::PasswordHash) -> bool {
        let stored_params = Params::try_from(parsed).ok();
        parsed.algorithm.as_str() != "argon2id"
            || stored_params.is_none_or(|p| {
                p.m_cost() < self.params.memory_kib
                    || p.t_cost() < self.params.iterations
                    || p.p_cost() < self.params.parallelism
            })
    }

    fn dummy_hash(&self) -> anyhow::Result<&str> {
        if self.params == HashParams::OWASP {
            return Ok(OWASP_DUMMY_HASH);
        }
        if let Some(hash) = self.dummy.get() {
            return Ok(hash);
        }
        let random = crate::values::secret::random_bytes::<16>()?;
        let hash = self.hash(&Secret::new(format!("{random:02x?}")))?;
        Ok(self.dummy.get_or_init(|| hash))
    }

    fn verify(&self, password: &Secret, stored: Option<&str>) -> anyhow::Result<Verdict> {
        let (text, is_dummy) = match stored {
            Some(text) => (text, false),
            None => (self.dummy_hash()?, true),
        };
        let parsed = phc::PasswordHash::new(text)
            .map_err(|e| anyhow!("a stored password hash is malformed: {e}"))?;
        let matches = self
            .compute_like(password.expose().as_bytes(), &parsed)
            .is_some_and(|computed| Self::is_output_of(&computed, &parsed));
        if is_dummy || !matches {
            return Ok(Verdict::Wrong);
        }
        Ok(Verdict::Right {
            needs_rehash: self.needs_rehash(&parsed),
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn secret(s: &str) -> Secret {
        Secret::new(s)
    }

    #[tokio::test]
    async fn a_hash_verifies_its_password_only() {
        let hasher = PasswordHasher::new(HashParams::OWASP).unwrap();
        let password = NewPassword::parse(&secret("tangerine-quartz-88"), None, None).unwrap();
        let hash = hasher.hash(&password).await.unwrap();
        assert!(hash.0.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        let right = hasher
            .verify(&secret("tangerine-quartz-88"), Some(&hash))
            .await;
        assert_eq!(
            right.unwrap(),
            Verdict::Right {
                needs_rehash: false
            }
        );
        let wrong = hasher
            .verify(&secret("tangerine-quartz-89"), Some(&hash))
            .await;
        assert_eq!(wrong.unwrap(), Verdict::Wrong);
    }

    #[test]
    fn the_built_in_dummy_hash_costs_what_a_default_hash_costs() {
        let parsed = argon2::password_hash::phc::PasswordHash::new(OWASP_DUMMY_HASH).unwrap();
        let params = Params::try_from(&parsed).unwrap();
        assert_eq!(parsed.algorithm.as_str(), "argon2id");
        assert_eq!(
            (params.m_cost(), params.t_cost(), params.p_cost()),
            (19_456, 2, 1)
        );
    }

    #[test]
    fn hashes_are_interchangeable_with_the_argon2_crates_own() {
        use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
        let ours = PasswordHasher::new(HashParams::OWASP).unwrap();
        let inner = &ours.inner;
        // Ours verifies with the crate's verifier...
        let ours_hash = inner.hash(&secret("tangerine-quartz-88")).unwrap();
        let parsed = phc::PasswordHash::new(&ours_hash).unwrap();
        assert!(
            inner
                .argon2
                .verify_password(b"tangerine-quartz-88", &parsed)
                .is_ok()
        );
        // ...and a hash the crate wrote (as stored before) verifies with ours.
        let theirs = inner.argon2.hash_password(b"tangerine-quartz-88").unwrap();
        let theirs = theirs.to_string();
        assert_eq!(
            inner
                .verify(&secret("tangerine-quartz-88"), Some(&theirs))
                .unwrap(),
            Verdict::Right {
                needs_rehash: false
            }
        );
        assert_eq!(
            inner
                .verify(&secret("tangerine-quartz-89"), Some(&theirs))
                .unwrap(),
            Verdict::Wrong
        );
        // The working memory is kept for the next call.
        assert_eq!(inner.memory.lock().unwrap().len(), 1);
    }

    #[test]
    fn a_hash_it_cannot_compute_is_a_wrong_password() {
        let hasher = PasswordHasher::new(HashParams::OWASP).unwrap();
        // It parses, but m=1 is below argon2's minimum.
        let malformed = "$argon2id$v=19$m=1,t=2,p=1$c2FsdHNhbHRzYWx0$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
        assert_eq!(
            hasher
                .inner
                .verify(&secret("anything-at-all"), Some(malformed))
                .ok(),
            Some(Verdict::Wrong)
        );
    }

    #[tokio::test]
    async fn one_login_verification_tells_the_account_password_from_a_pending_signup() {
        let hasher = PasswordHasher::new(HashParams::OWASP).unwrap();
        let owner = NewPassword::parse(&secret("owner-password-17"), None, None)
            .ok()
            .unwrap();
        let stored = hasher.hash(&owner).await.unwrap();
        let pending = hasher
            .hash_like(&secret("signup-password-42"), &stored)
            .await
            .unwrap();
        // Same algorithm, parameters and salt: only the output differs.
        let prefix = |h: &PasswordHash| h.0.rsplit_once('$').unwrap().0.to_owned();
        assert_eq!(prefix(&pending), prefix(&stored));
        let verdict = |password: &'static str| {
            let (hasher, stored, pending) = (hasher.clone(), stored.clone(), pending.clone());
            async move {
                hasher
                    .verify_login(&secret(password), Some(&stored), Some(&pending))
                    .await
                    .unwrap()
            }
        };
        assert_eq!(
            verdict("owner-password-17").await,
            LoginVerdict::Account {
                needs_rehash: false
            }
        );
        assert_eq!(
            verdict("signup-password-42").await,
            LoginVerdict::PendingSignup
        );
        assert_eq!(verdict("something-else-99").await, LoginVerdict::Wrong);
        // A pending hash made with another salt (the owner changed the password since)
        // never matches.
        let other = hasher.hash(&owner).await.unwrap();
        let stale = hasher
            .verify_login(&secret("signup-password-42"), Some(&other), Some(&pending))
            .await
            .unwrap();
        assert_eq!(stale, LoginVerdict::Wrong);
        let unknown = hasher
            .verify_login(&secret("signup-password-42"), None, Some(&pending))
            .await
            .unwrap();
        assert_eq!(unknown, LoginVerdict::Wrong);
    }

    #[tokio::test]
    async fn an_unknown_account_is_always_a_wrong_password() {
        let hasher = PasswordHasher::new(HashParams::OWASP).unwrap();
        let verdict = hasher
            .verify(&secret("anything-at-all"), None)
            .await
            .unwrap();
        assert_eq!(verdict, Verdict::Wrong);
    }

    #[tokio::test]
    async fn a_hash_with_weaker_parameters_asks_to_be_rehashed() {
        let weak = PasswordHasher::new(HashParams {
            memory_kib: 8_192,
            iterations: 1,
            parallelism: 1,
        })
        .unwrap();
        let password = NewPassword::parse(&secret("tangerine-quartz-88"), None, None).unwrap();
        let hash = weak.hash(&password).await.unwrap();
        let strong = PasswordHasher::new(HashParams::OWASP).unwrap();
        let verdict = strong
            .verify(&secret("tangerine-quartz-88"), Some(&hash))
            .await;
        assert_eq!(verdict.unwrap(), Verdict::Right { needs_rehash: true });
    }

    #[tokio::test]
    async fn composed_and_decomposed_accents_are_one_password() {
        let hasher = PasswordHasher::new(HashParams::OWASP).unwrap();
        let password = NewPassword::parse(&secret("caf\u{e9}-ombre-2024"), None, None).unwrap();
        let hash = hasher.hash(&password).await.unwrap();
        let verdict = hasher
            .verify(&secret("cafe\u{301}-ombre-2024"), Some(&hash))
            .await;
        assert!(matches!(verdict.unwrap(), Verdict::Right { .. }));
    }
}
