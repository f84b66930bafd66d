//! Fixed-window rate limits kept in the store, so every function instance shares them.

use anyhow::Context;

use crate::app::App;
use crate::clock::Clock;
use crate::http::{Client, Problem};
use crate::records::{attr, keys};
use crate::store::{Change, EXPIRES_AT, Item, Key, Store, Write};

/// A limit of `max` events per `window_seconds` for one subject (an IP, an account).
#[derive(Clone, Copy, Debug)]
pub struct RateLimit {
    pub scope: &'static str,
    pub max: u32,
    pub window_seconds: i64,
}

/// The limit was reached; retry after this many seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("rate limit reached; retry after {retry_after} s")]
pub struct RateLimited {
    pub retry_after: u64,
}

impl RateLimit {
    pub const fn per_hour(scope: &'static str, max: u32) -> RateLimit {
        RateLimit {
            scope,
            max,
            window_seconds: 3_600,
        }
    }

    /// The counter of the window `now` falls in.
    pub fn window_key(&self, subject: &str, now: i64) -> Key {
        keys::rate_window(self.scope, subject, now.div_euclid(self.window_seconds))
    }

    fn window_end(&self, now: i64) -> i64 {
        (now.div_euclid(self.window_seconds) + 1) * self.window_seconds
    }

    /// The write that counts one event in `window` (atomic: concurrent events are all
    /// counted); the counter expires with its window.
    pub fn count_write(&self, window: Key, now: i64) -> Write {
        Write::update(
            window,
            vec![
                Change::add(attr::COUNT, 1),
                Change::set(EXPIRES_AT, self.window_end(now)),
            ],
        )
    }

    /// Takes one event back (an attempt counted up front turned out not to be a
    /// failure). The counter keeps its window's expiry: if the window ended meanwhile
    /// (its item already swept or expired), the write re-creates it already expired, so
    /// no window item ever outlives its hour.
    pub fn uncount_write(&self, window: Key) -> Write {
        let window_number = window.sk.parse::<i64>().unwrap_or_default();
        let end = (window_number + 1) * self.window_seconds;
        Write::update(
            window,
            vec![Change::add(attr::COUNT, -1), Change::set(EXPIRES_AT, end)],
        )
    }

    /// Seconds to wait when a counter that includes the current event is over the
    /// limit.
    pub fn over_limit(&self, window: Option<&Item>, now: i64) -> Option<u64> {
        let count = window.and_then(|item| item.n(attr::COUNT)).unwrap_or(0);
        (count > i64::from(self.max))
            .then(|| u64::try_from(self.window_end(now) - now).unwrap_or(1))
    }

    /// Seconds to wait when a window's counter has reached the limit.
    pub fn retry_after(&self, window: Option<&Item>, now: i64) -> Option<u64> {
        let count = window.and_then(|item| item.n(attr::COUNT)).unwrap_or(0);
        (count >= i64::from(self.max))
            .then(|| u64::try_from(self.window_end(now) - now).unwrap_or(1))
    }

    /// Counts a request against its client IP's share of the limit: `429` with
    /// `Retry-After` once the IP is over it.
    pub async fn check_ip(&self, app: &App, client: &Client) -> Result<(), Problem> {
        self.hit(
            app.store.as_ref(),
            app.clock.as_ref(),
            &client.ip.to_string(),
        )
        .await
        .with_context(|| format!("counting a {} request against its IP's limit", self.scope))?
        .map_err(|limited| Problem::rate_limited(limited.retry_after))
    }

    /// Counts one event for `subject` and says whether it is within the limit.
    pub async fn hit(
        &self,
        store: &dyn Store,
        clock: &dyn Clock,
        subject: &str,
    ) -> anyhow::Result<Result<(), RateLimited>> {
        let now = clock.now();
        let updated = store
            .write(self.count_write(self.window_key(subject, now), now))
            .await
            .map_err(anyhow::Error::from)?;
        let count = updated
            .as_ref()
            .and_then(|item| item.n(attr::COUNT))
            .unwrap_or(0);
        // The counter now includes this event: over the limit means it exceeded it.
        Ok(match count > i64::from(self.max) {
            true => Err(RateLimited {
                retry_after: u64::try_from(self.window_end(now) - now).unwrap_or(1),
            }),
            false => Ok(()),
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::store::memory::MemoryStore;

    #[tokio::test]
    async fn a_subject_over_its_limit_is_told_when_to_retry() {
        let clock = ManualClock::starting_now();
        let store = MemoryStore::new(clock.clone());
        let limit = RateLimit::per_hour("test", 2);
        for _ in 0..2 {
            assert!(
                limit
                    .hit(&store, clock.as_ref(), "1.2.3.4")
                    .await
                    .unwrap()
                    .is_ok()
            );
        }
        let refused = limit.hit(&store, clock.as_ref(), "1.2.3.4").await.unwrap();
        let retry_after = refused.unwrap_err().retry_after;
        assert!((1..=3_600).contains(&retry_after));
        assert!(
            limit
                .hit(&store, clock.as_ref(), "5.6.7.8")
                .await
                .unwrap()
                .is_ok()
        );
    }

    #[test]
    fn a_counter_taken_back_keeps_its_window_expiry() {
        let limit = RateLimit::per_hour("test", 5);
        let window = limit.window_key("ip", 7_300);
        let Write::Update { changes, .. } = limit.uncount_write(window) else {
            panic!("an update");
        };
        assert!(
            changes.contains(&Change::set(EXPIRES_AT, 10_800)),
            "{changes:?}"
        );
    }

    #[tokio::test]
    async fn a_new_window_starts_a_new_count() {
        let clock = ManualClock::starting_now();
        let store = MemoryStore::new(clock.clone());
        let limit = RateLimit::per_hour("test", 1);
        limit
            .hit(&store, clock.as_ref(), "ip")
            .await
            .unwrap()
            .unwrap();
        clock.advance(3_600);
        assert!(
            limit
                .hit(&store, clock.as_ref(), "ip")
                .await
                .unwrap()
                .is_ok()
        );
    }
}
