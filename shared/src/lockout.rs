//! The login back-off: after five consecutive failures on one login (an account's
//! email, its username, or a login with no account), attempts are refused for 30 s,
//! doubling with each further failure up to 15 minutes, whether or not the password is
//! right. A success clears it.
//!
//! An attempt first *claims* the login with one conditional write that fails while it
//! is locked, and holds a short lease until its outcome is recorded: parallel attempts
//! cannot all slip past a read of the counter, so a burst gets the same five guesses
//! as a patient attacker.

use crate::records::attr;
use crate::store::{Change, Cond, EXPIRES_AT, Item, Key, Write};

/// Failures allowed before the back-off starts.
pub const FREE_FAILURES: i64 = 5;
const FIRST_BACKOFF_SECONDS: i64 = 30;
const MAX_BACKOFF_SECONDS: i64 = 15 * 60;
/// A run of failures is forgotten after a day without one.
const FORGET_AFTER_SECONDS: i64 = 24 * 3_600;
/// How long a claimed attempt holds the login; its outcome releases it sooner. Long
/// enough for one password verification, short enough that a crash costs little.
pub const LEASE_SECONDS: i64 = 10;

/// How long the `failures`-th consecutive failure locks the login.
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
pub fn retry_after(lockout: Option<&Item>, now: i64) -> Option<u64> {
    let until = lockout?.n(attr::LOCKED_UNTIL)?;
    (now < until).then(|| u64::try_from(until - now).unwrap_or(1))
}

/// How long an attempt refused by a [`claim`] should wait: out the back-off after
/// failures, or a moment while another attempt's claim is in flight.
pub fn refusal_wait(current: Option<&Item>, now: i64) -> u64 {
    if failures(current) < FREE_FAILURES {
        1
    } else {
        retry_after(current, now).unwrap_or(1)
    }
}

/// The consecutive failures a lockout item records.
pub fn failures(lockout: Option<&Item>) -> i64 {
    lockout.and_then(|item| item.n(attr::FAILURES)).unwrap_or(0)
}

/// Claims the login for one attempt: fails while it is locked (or another attempt
/// holds it), and holds it until the attempt's outcome is written.
pub fn claim(key: Key, now: i64) -> Write {
    Write::update(
        key,
        vec![
            Change::set(attr::LOCKED_UNTIL, now + LEASE_SECONDS),
            Change::set(EXPIRES_AT, now + FORGET_AFTER_SECONDS),
        ],
    )
    .when(Cond::attr_absent(attr::LOCKED_UNTIL).or(Cond::le(attr::LOCKED_UNTIL, now)))
}

/// Records one more failure after `failures_before` and locks the login for its
/// back-off (or releases it, while failures are still free).
pub fn record_failure(key: Key, failures_before: i64, now: i64) -> Write {
    Write::update(
        key,
        vec![
            Change::add(attr::FAILURES, 1),
            Change::set(attr::LAST_FAILURE_AT, now),
            Change::set(
                attr::LOCKED_UNTIL,
                now + backoff_seconds(failures_before + 1),
            ),
            Change::set(EXPIRES_AT, now + FORGET_AFTER_SECONDS),
        ],
    )
}

/// Ends a claim without judging the password (the attempt stopped for another reason).
pub fn release(key: Key, now: i64) -> Write {
    Write::update(key, vec![Change::set(attr::LOCKED_UNTIL, now)])
}

/// Clears the run of failures.
pub fn clear(key: Key) -> Write {
    Write::delete(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backoff_starts_at_the_fifth_failure_and_doubles_to_fifteen_minutes() {
        let seconds: Vec<i64> = (1..=11).map(backoff_seconds).collect();
        assert_eq!(seconds, [0, 0, 0, 0, 30, 60, 120, 240, 480, 900, 900]);
        assert_eq!(backoff_seconds(10_000), 900);
    }

    #[test]
    fn a_locked_login_is_told_how_long_to_wait() {
        let item = Item::default().with(attr::LOCKED_UNTIL, 1_030);
        assert_eq!(retry_after(Some(&item), 1_010), Some(20));
        assert_eq!(retry_after(Some(&item), 1_030), None);
        assert_eq!(retry_after(None, 1_010), None);
    }
}
