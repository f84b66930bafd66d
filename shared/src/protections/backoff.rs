//! The back-off on guesses: after five consecutive failures on one counter, attempts are
//! refused for 30 s, doubling with each further failure up to 15 minutes, whether or not
//! the guess is right. A success clears the counter.
//!
//! Each kind of guess has counters of its own ([`Counter`]), so that failures of one
//! kind never block another: anyone who knows an address can send wrong passwords
//! through it, and must not thereby lock the owner out of a second-factor step, a
//! password reset by an emailed link, or a signed-in password check.
//!
//! An attempt first *claims* its counter with one conditional write that fails while the
//! counter is locked, and holds a short lease until its outcome is recorded: parallel
//! attempts cannot all slip past a read of the counter, so a burst gets the same five
//! guesses as a patient attacker. The lock a failure sets is computed from the count the
//! claim returned, never from an earlier read.

use crate::records::{attr, keys};
use crate::store::{Change, Cond, EXPIRES_AT, Item, Key, Store, Write, WriteError};

/// Failures allowed before the back-off starts.
pub const FREE_FAILURES: i64 = 5;
const FIRST_BACKOFF_SECONDS: i64 = 30;
const MAX_BACKOFF_SECONDS: i64 = 15 * 60;
/// A run of failures is forgotten after a day without one.
const FORGET_AFTER_SECONDS: i64 = 24 * 3_600;
/// How long a claimed attempt holds its counter; its outcome releases it sooner. Long
/// enough for one password verification, short enough that a crash costs little.
pub const LEASE_SECONDS: i64 = 10;

/// The counter a guess counts against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counter<'a> {
    /// Passwords typed with the account's email address at login (and at
    /// correct-email, which checks the password of an address the same way).
    Address { user_id: &'a str },
    /// Passwords typed with a username, or with a login that names no account: a
    /// canonical login text. An unknown login locks exactly like a known one, and a
    /// public username cannot lock the account's address.
    Login { canonical: &'a str },
    /// Second factors of an account: codes and answers at `POST /v1/login/mfa`, the
    /// `mfa` of a password or security-question reset, the code that turns two-step
    /// verification off.
    SecondFactor { user_id: &'a str },
    /// Password checks of a signed-in person (or of a holder of an emailed link):
    /// changing the password, the security question or second factors.
    Reauthentication { user_id: &'a str },
}

impl Counter<'_> {
    pub fn key(self) -> Key {
        match self {
            Counter::Address { user_id } => keys::account_lockout(user_id),
            Counter::Login { canonical } => keys::login_lockout(canonical),
            Counter::SecondFactor { user_id } => keys::second_factor_lockout(user_id),
            Counter::Reauthentication { user_id } => keys::reauthentication_lockout(user_id),
        }
    }
}

/// How long the `failures`-th consecutive failure locks the counter.
pub fn backoff_seconds(failures: i64) -> i64 {
    if failures < FREE_FAILURES {
        return 0;
    }
    let doublings = u32::try_from(failures - FREE_FAILURES)
        .unwrap_or(u32::MAX)
        .min(16);
    (FIRST_BACKOFF_SECONDS << doublings).min(MAX_BACKOFF_SECONDS)
}

/// Seconds until attempts are accepted again, if the lockout item says they are not.
fn retry_after(lockout: Option<&Item>, now: i64) -> Option<u64> {
    let until = lockout?.n(attr::LOCKED_UNTIL)?;
    (now < until).then(|| u64::try_from(until - now).unwrap_or(1))
}

/// How long an attempt refused by a claim should wait: out the back-off after failures,
/// or a moment while another attempt's claim is in flight.
fn refusal_wait(current: Option<&Item>, now: i64) -> u64 {
    if failures(current) < FREE_FAILURES {
        1
    } else {
        retry_after(current, now).unwrap_or(1)
    }
}

/// The consecutive failures a lockout item records.
fn failures(lockout: Option<&Item>) -> i64 {
    lockout.and_then(|item| item.n(attr::FAILURES)).unwrap_or(0)
}

/// The write that claims a counter for one attempt: it fails while the counter is locked
/// (or another attempt holds it), and holds it until the attempt's outcome is written.
pub fn claim_write(key: Key, now: i64) -> Write {
    Write::update(
        key,
        vec![
            Change::set(attr::LOCKED_UNTIL, now + LEASE_SECONDS),
            Change::set(EXPIRES_AT, now + FORGET_AFTER_SECONDS),
        ],
    )
    .when(Cond::attr_absent(attr::LOCKED_UNTIL).or(Cond::le(attr::LOCKED_UNTIL, now)))
}

/// A counter claimed for one attempt, with the failures it recorded when claimed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claim {
    key: Key,
    failures: i64,
}

/// The answer to a claim: the claim, or the seconds to wait when the counter is locked.
pub type Claimed = Result<Claim, u64>;

impl Claim {
    /// Claims `counter` (one conditional write).
    pub async fn take(
        store: &dyn Store,
        counter: Counter<'_>,
        now: i64,
    ) -> anyhow::Result<Claimed> {
        Claim::judge(
            counter.key(),
            now,
            store.write(claim_write(counter.key(), now)).await,
        )
    }

    /// Reads the outcome of a [`claim_write`] sent by the caller (beside other calls).
    pub fn judge(
        key: Key,
        now: i64,
        written: Result<Option<Item>, WriteError>,
    ) -> anyhow::Result<Claimed> {
        match written {
            Ok(item) => Ok(Ok(Claim {
                key,
                failures: failures(item.as_ref()),
            })),
            // Locked after failures: wait out the back-off. Held by an attempt in flight:
            // its outcome is a moment away.
            Err(WriteError::ConditionFailed { current }) => {
                Ok(Err(refusal_wait(current.as_ref(), now)))
            }
            Err(WriteError::Unexpected(e)) => Err(e.context("claiming an attempt")),
        }
    }

    /// The failures recorded before this attempt.
    pub fn failures(&self) -> i64 {
        self.failures
    }

    /// Records this attempt's failure and locks the counter for the back-off of the
    /// failure count it makes (or releases it, while failures are still free).
    pub fn failed(&self, now: i64) -> Write {
        let failures = self.failures.saturating_add(1);
        if failures == FREE_FAILURES {
            // The failure that starts a back-off: what a credential-stuffing run or a
            // guessing attack shows up as on the operator's dashboard.
            crate::telemetry::metrics::count_by("Lockouts", &[("Counter", self.kind())]);
        }
        Write::update(
            self.key.clone(),
            vec![
                Change::add(attr::FAILURES, 1),
                Change::set(attr::LAST_FAILURE_AT, now),
                Change::set(attr::LOCKED_UNTIL, now + backoff_seconds(failures)),
                Change::set(EXPIRES_AT, now + FORGET_AFTER_SECONDS),
            ],
        )
    }

    /// Which kind of counter this is, for the `Lockouts` metric.
    fn kind(&self) -> &'static str {
        match (self.key.pk.starts_with("LOGIN#"), self.key.sk.as_str()) {
            (true, _) => "login",
            (false, "LOCKOUT#FACTOR") => "second_factor",
            (false, "LOCKOUT#REAUTH") => "reauthentication",
            _ => "address",
        }
    }

    /// Ends the claim without judging the guess (the attempt stopped for another
    /// reason); the failures so far are kept.
    pub fn released(&self, now: i64) -> Write {
        Write::update(self.key.clone(), vec![Change::set(attr::LOCKED_UNTIL, now)])
    }

    /// Ends the claim and the run of failures: the guess was right.
    pub fn succeeded(&self) -> Write {
        Write::delete(self.key.clone())
    }

    /// Sends [`Claim::released`] on its own: for a caller that stops before its final
    /// write. A failure to release is only logged (the lease ends it soon anyway), as it
    /// is less news than the answer being given.
    pub async fn release(&self, store: &dyn Store, now: i64) {
        if let Err(error) = store.write(self.released(now)).await {
            tracing::warn!(error = %anyhow::Error::from(error), "a claim could not be released");
        }
    }
}

/// Notes a refused attempt on a counter (the login has no account whose history could
/// record it), so that refusals do one write whether or not the login is known.
pub fn note_refusal(key: Key, now: i64) -> Write {
    Write::update(
        key,
        vec![
            Change::set(attr::LAST_REFUSAL_AT, now),
            Change::set(EXPIRES_AT, now + FORGET_AFTER_SECONDS),
        ],
    )
}

/// Clears a counter outside an attempt (a password reset clears the password counters).
pub fn clear(counter: Counter<'_>) -> Write {
    Write::delete(counter.key())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::clock::{Clock, ManualClock};
    use crate::store::memory::MemoryStore;

    #[test]
    fn the_backoff_starts_at_the_fifth_failure_and_doubles_to_fifteen_minutes() {
        let seconds: Vec<i64> = (1..=11).map(backoff_seconds).collect();
        assert_eq!(seconds, [0, 0, 0, 0, 30, 60, 120, 240, 480, 900, 900]);
        assert_eq!(backoff_seconds(10_000), 900);
    }

    #[test]
    fn a_locked_counter_is_told_how_long_to_wait() {
        let item = Item::default()
            .with(attr::LOCKED_UNTIL, 1_030)
            .with(attr::FAILURES, 5);
        assert_eq!(retry_after(Some(&item), 1_010), Some(20));
        assert_eq!(retry_after(Some(&item), 1_030), None);
        assert_eq!(retry_after(None, 1_010), None);
        assert_eq!(refusal_wait(Some(&item), 1_010), 20);
    }

    #[test]
    fn each_kind_of_guess_has_its_own_counter() {
        let kinds = [
            Counter::Address { user_id: "u" },
            Counter::Login { canonical: "u" },
            Counter::SecondFactor { user_id: "u" },
            Counter::Reauthentication { user_id: "u" },
        ];
        for (i, a) in kinds.iter().enumerate() {
            for b in &kinds[i + 1..] {
                assert_ne!(a.key(), b.key(), "{a:?} and {b:?}");
            }
        }
    }

    async fn fail_once(store: &MemoryStore, counter: Counter<'_>, now: i64) -> Claimed {
        let claimed = Claim::take(store, counter, now).await.unwrap();
        if let Ok(claim) = &claimed {
            store.write(claim.failed(now)).await.unwrap();
        }
        claimed
    }

    #[tokio::test]
    async fn a_claimed_counter_refuses_a_second_claim_until_released() {
        let clock = ManualClock::starting_now();
        let store = MemoryStore::new(clock.clone());
        let counter = Counter::SecondFactor { user_id: "u" };
        let now = clock.now();
        let first = Claim::take(&store, counter, now).await.unwrap().unwrap();
        assert_eq!(Claim::take(&store, counter, now).await.unwrap(), Err(1));
        store.write(first.released(now)).await.unwrap();
        assert!(Claim::take(&store, counter, now).await.unwrap().is_ok());
    }

    #[tokio::test]
    async fn the_lock_follows_the_claimed_count_of_failures() {
        let clock = ManualClock::starting_now();
        let store = MemoryStore::new(clock.clone());
        let counter = Counter::Reauthentication { user_id: "u" };
        let now = clock.now();
        for _ in 0..4 {
            assert!(fail_once(&store, counter, now).await.is_ok());
        }
        let fifth = fail_once(&store, counter, now).await.unwrap();
        assert_eq!(fifth.failures(), 4);
        assert_eq!(Claim::take(&store, counter, now).await.unwrap(), Err(30));
        // Another kind of guess on the same account is not locked.
        let other = Counter::SecondFactor { user_id: "u" };
        assert!(Claim::take(&store, other, now).await.unwrap().is_ok());
    }

    #[tokio::test]
    async fn a_success_clears_the_run_of_failures() {
        let clock = ManualClock::starting_now();
        let store = MemoryStore::new(clock.clone());
        let counter = Counter::Address { user_id: "u" };
        let now = clock.now();
        for _ in 0..3 {
            fail_once(&store, counter, now).await.unwrap();
        }
        let claim = Claim::take(&store, counter, now).await.unwrap().unwrap();
        assert_eq!(claim.failures(), 3);
        store.write(claim.succeeded()).await.unwrap();
        let next = Claim::take(&store, counter, now).await.unwrap().unwrap();
        assert_eq!(next.failures(), 0);
    }
}
