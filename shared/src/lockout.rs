//! The login back-off: after five consecutive failures on one account (or one unknown
//! login), attempts are refused for 30 s, doubling with each further failure up to
//! 15 minutes, whether or not the password is right. A success clears it.

use crate::records::attr;
use crate::store::{Change, EXPIRES_AT, Item, Key, Write};

/// Failures allowed before the back-off starts.
pub const FREE_FAILURES: i64 = 5;
const FIRST_BACKOFF_SECONDS: i64 = 30;
const MAX_BACKOFF_SECONDS: i64 = 15 * 60;
/// A run of failures is forgotten after a day without one.
const FORGET_AFTER_SECONDS: i64 = 24 * 3_600;

/// How long the `failures`-th consecutive failure locks the account.
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
    let lockout = lockout?;
    let failures = lockout.n(attr::FAILURES)?;
    let last = lockout.n(attr::LAST_FAILURE_AT)?;
    let until = last + backoff_seconds(failures);
    (now < until).then(|| u64::try_from(until - now).unwrap_or(1))
}

/// Counts one failure atomically (concurrent failures are all counted).
pub fn record_failure(key: Key, now: i64) -> Write {
    Write::update(
        key,
        vec![
            Change::add(attr::FAILURES, 1),
            Change::set(attr::LAST_FAILURE_AT, now),
            Change::set(EXPIRES_AT, now + FORGET_AFTER_SECONDS),
        ],
    )
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
        let item = Item::default()
            .with(attr::FAILURES, 5)
            .with(attr::LAST_FAILURE_AT, 1_000);
        assert_eq!(retry_after(Some(&item), 1_010), Some(20));
        assert_eq!(retry_after(Some(&item), 1_030), None);
        assert_eq!(retry_after(None, 1_010), None);
    }
}
