//! The scheduled cleanup job: deletes accounts left unverified too long (with their
//! email and username claims, so a mistyped or squatted address frees up), and deletes
//! sessions and login-history entries that have expired but that DynamoDB's lazy TTL
//! sweep has not reached yet (which also trims login history to its retention).
//!
//! Every deletion is conditional on what made the item garbage, so the job is safe to
//! run at any time, concurrently with the API and with itself, and running it again
//! finds nothing more to do. It stops starting new work when its time budget is spent
//! and says so (`complete: false`); the next run picks up what is left, since finished
//! work is gone from the indexes it reads.

use std::collections::HashSet;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use serde::Serialize;
use tokio::time::Instant;

use crate::app::App;
use crate::records::{self, attr, keys};
use crate::store::{
    Cond, Item, Key, MAX_TRANSACTION_WRITES, Query, TransactError, Write, WriteError, schema,
};

const DAY: i64 = 86_400;
/// How many days before the cutoff day the job looks for unverified accounts. Every
/// run reads each of these day partitions (one query each, even when empty), so the
/// cost of a run stays fixed; an account older than that was only missed if the job did
/// not run for two months.
pub const UNVERIFIED_LOOKBACK_DAYS: i64 = 60;
/// How many days back the job looks for expired items. DynamoDB's TTL sweep usually
/// deletes an item within days of its expiry, so older partitions of the expiry index
/// are empty; reading them would only cost queries.
pub const EXPIRED_LOOKBACK_DAYS: i64 = 100;
/// Items read per query page.
const PAGE_SIZE: usize = 100;
/// Time kept back from a Lambda invocation's deadline: the work in progress when the
/// budget runs out (one query page or one account) and the final log line fit in it.
pub const SAFETY_MARGIN: Duration = Duration::from_secs(10);

/// What one run did; also the scheduled function's response.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CleanupReport {
    /// Accounts deleted for staying unverified too long, each with its email claim,
    /// username claim and pending verification.
    pub unverified_accounts_deleted: u64,
    /// Other items of those accounts (login history, back-off, ...).
    pub account_items_deleted: u64,
    /// Old unverified accounts kept because they changed between the read and the
    /// delete (verified, or moved to another address, meanwhile).
    pub unverified_accounts_kept: u64,
    /// Expired sessions and login-history entries that the TTL sweep had not reached.
    pub expired_items_deleted: u64,
    /// Expired items found alive again at the delete (renewed meanwhile), and kept.
    pub expired_items_kept: u64,
    /// Whether the run got through all its work within its budget.
    pub complete: bool,
    pub elapsed_ms: u64,
}

/// When to stop starting new work.
struct Budget {
    /// `None`: a budget too large to represent, i.e. no limit.
    deadline: Option<Instant>,
}

impl Budget {
    fn spent(&self) -> bool {
        self.deadline
            .is_some_and(|deadline| Instant::now() >= deadline)
    }
}

/// Runs the whole job once, starting no new work after `budget` has passed.
pub async fn run(app: &App, budget: Duration) -> anyhow::Result<CleanupReport> {
    let started = Instant::now();
    let budget = Budget {
        deadline: started.checked_add(budget),
    };
    let now = app.now();
    let mut report = CleanupReport::default();
    let outcome = async {
        Ok::<_, anyhow::Error>(
            delete_unverified_accounts(app, now, &budget, &mut report).await?
                && delete_expired_items(app, now, &budget, &mut report).await?,
        )
    }
    .await;
    report.elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    match outcome {
        Ok(complete) => {
            report.complete = complete;
            let r = &report;
            tracing::info!(
                unverified_accounts_deleted = r.unverified_accounts_deleted,
                account_items_deleted = r.account_items_deleted,
                unverified_accounts_kept = r.unverified_accounts_kept,
                expired_items_deleted = r.expired_items_deleted,
                expired_items_kept = r.expired_items_kept,
                complete,
                elapsed_ms = r.elapsed_ms,
                "cleanup finished"
            );
            Ok(report)
        }
        Err(error) => {
            let r = &report;
            tracing::error!(
                error = format!("{error:#}"),
                unverified_accounts_deleted = r.unverified_accounts_deleted,
                account_items_deleted = r.account_items_deleted,
                unverified_accounts_kept = r.unverified_accounts_kept,
                expired_items_deleted = r.expired_items_deleted,
                expired_items_kept = r.expired_items_kept,
                elapsed_ms = r.elapsed_ms,
                "cleanup failed"
            );
            Err(error)
        }
    }
}

/// Answers one EventBridge scheduled event (any payload is accepted: a manual test
/// invocation with `{}` runs the job too).
pub async fn handle_scheduled_event(
    app: &App,
    event: &serde_json::Value,
    budget: Duration,
) -> anyhow::Result<CleanupReport> {
    let text = |name: &str| {
        event
            .get(name)
            .and_then(serde_json::Value::as_str)
            .unwrap_or("-")
            .to_owned()
    };
    let rule = event
        .get("resources")
        .and_then(|r| r.get(0))
        .and_then(serde_json::Value::as_str)
        .unwrap_or("-");
    tracing::info!(
        event_id = text("id"),
        scheduled_for = text("time"),
        rule,
        budget_ms = u64::try_from(budget.as_millis()).unwrap_or(u64::MAX),
        "cleanup started"
    );
    let report = run(app, budget).await?;
    report.count();
    Ok(report)
}

impl CleanupReport {
    /// The run as metrics: what it deleted, and whether it finished (the template alarms
    /// when two days pass without a `CleanupCompleted`).
    fn count(&self) {
        use crate::telemetry::metrics::add;
        add("CleanupAccountsDeleted", self.unverified_accounts_deleted);
        add(
            "CleanupItemsDeleted",
            self.account_items_deleted + self.expired_items_deleted,
        );
        add(
            if self.complete {
                "CleanupCompleted"
            } else {
                "CleanupIncomplete"
            },
            1,
        );
    }
}

/// The budget of an invocation that must end by `deadline`: the time left minus
/// [`SAFETY_MARGIN`] (nothing when less than that is left).
pub fn budget(deadline: SystemTime, now: SystemTime) -> Duration {
    deadline
        .duration_since(now)
        .unwrap_or_default()
        .saturating_sub(SAFETY_MARGIN)
}

// ---- unverified accounts ---------------------------------------------------------------

/// Deletes accounts created at or before `now - max age` and still unverified, oldest
/// day first. Returns whether it got through every day partition.
async fn delete_unverified_accounts(
    app: &App,
    now: i64,
    budget: &Budget,
    report: &mut CleanupReport,
) -> anyhow::Result<bool> {
    let max_age = app
        .config
        .unverified_account_max_age_days
        .saturating_mul(DAY);
    let cutoff = now.saturating_sub(max_age);
    let last_day = cutoff.div_euclid(DAY);
    for day in last_day.saturating_sub(UNVERIFIED_LOOKBACK_DAYS)..=last_day {
        // Sort keys are `<created_at>#<id>`; `~` sorts after every id character.
        let mut query = Query::partition(records::unverified_day(day.saturating_mul(DAY)))
            .on_index(schema::UNVERIFIED_BY_DAY.name)
            .at_most(format!("{cutoff}#~"))
            .limit(PAGE_SIZE);
        let mut seen = HashSet::new();
        loop {
            if budget.spent() {
                return Ok(false);
            }
            let page = app
                .store
                .query(&query)
                .await
                .with_context(|| format!("reading unverified accounts of {}", query.pk))?;
            for item in &page.items {
                if !item.key().is_some_and(|key| seen.insert(key)) {
                    continue;
                }
                if budget.spent() {
                    return Ok(false);
                }
                if !delete_unverified_account(app, item, cutoff, budget, report).await? {
                    return Ok(false);
                }
            }
            match page.next {
                Some(next) => query = query.after(Some(next)),
                None => break,
            }
        }
    }
    Ok(true)
}

/// Deletes one account (as read from the unverified index) if it is still unverified
/// and old enough, with its claims, its verification and every other item of its
/// partition. Returns false when the budget ran out before the last of those.
async fn delete_unverified_account(
    app: &App,
    account: &Item,
    cutoff: i64,
    budget: &Budget,
    report: &mut CleanupReport,
) -> anyhow::Result<bool> {
    let (Some(id), Some(created_at), Some(email)) = (
        account.s(attr::USER_ID),
        account.n(attr::CREATED_AT),
        account.s(attr::EMAIL_CANONICAL),
    ) else {
        tracing::warn!(key = ?account.key(), "an unverified-index entry is not an account");
        return Ok(true);
    };
    // The index is eventually consistent: it may still list an account verified a
    // moment ago. The delete's condition is what decides; this only saves a write.
    if created_at > cutoff || account.bool(attr::EMAIL_VERIFIED) != Some(false) {
        return Ok(true);
    }
    let username = account.s(attr::USERNAME_CANONICAL);

    // The account's other items, expired ones included (DynamoDB still holds them).
    let mut others: Vec<Key> = Vec::new();
    let mut query = Query::partition(keys::user_partition(id))
        .including_expired()
        .limit(PAGE_SIZE);
    let own = [keys::user(id), keys::verification(id)];
    loop {
        let page = app
            .store
            .query(&query)
            .await
            .with_context(|| format!("reading the items of account {id}"))?;
        others.extend(
            page.items
                .iter()
                .filter_map(Item::key)
                .filter(|key| !own.contains(key)),
        );
        match page.next {
            Some(next) => query = query.after(Some(next)),
            None => break,
        }
    }

    // The account goes only as it was read: unverified, same creation, same address
    // and username (the claims to delete are derived from those). Each claim goes only
    // while it still names this account.
    let unchanged = Cond::eq(attr::EMAIL_VERIFIED, false)
        .and(Cond::eq(attr::CREATED_AT, created_at))
        .and(Cond::eq(attr::EMAIL_CANONICAL, email))
        .and(match username {
            Some(username) => Cond::eq(attr::USERNAME_CANONICAL, username),
            None => Cond::attr_absent(attr::USERNAME_CANONICAL),
        });
    let mut writes = vec![
        Write::delete(keys::user(id)).when(unchanged),
        Write::delete(keys::verification(id)),
        Write::delete(keys::email_claim(email)).when(Cond::eq(attr::USER_ID, id)),
    ];
    if let Some(username) = username {
        writes
            .push(Write::delete(keys::username_claim(username)).when(Cond::eq(attr::USER_ID, id)));
    }
    // As many of the other items as fit go in the same transaction.
    let room = MAX_TRANSACTION_WRITES - writes.len();
    let later = others.split_off(others.len().min(room));
    let in_transaction = others.len();
    writes.extend(others.into_iter().map(Write::delete));

    match app.store.transact(writes.clone()).await {
        Ok(()) => {}
        Err(TransactError::Unexpected(e)) => {
            return Err(e.context(format!("deleting unverified account {id}")));
        }
        Err(e) if e.failed_at(0).is_some() => {
            tracing::debug!(user_id = id, "an old unverified account changed: kept");
            report.unverified_accounts_kept += 1;
            return Ok(true);
        }
        Err(TransactError::ConditionFailed { failed }) => {
            // The account is as read, but a claim names another account (or is gone):
            // the account is garbage all the same; delete it without that claim.
            tracing::warn!(
                user_id = id,
                "an unverified account's claim names another account: deleting the account alone"
            );
            let failed: HashSet<usize> = failed.iter().map(|f| f.index).collect();
            let retry: Vec<Write> = writes
                .into_iter()
                .enumerate()
                .filter(|(index, _)| !failed.contains(index))
                .map(|(_, write)| write)
                .collect();
            match app.store.transact(retry).await {
                Ok(()) => {}
                Err(TransactError::Unexpected(e)) => {
                    return Err(e.context(format!("deleting unverified account {id}")));
                }
                Err(TransactError::ConditionFailed { .. }) => {
                    report.unverified_accounts_kept += 1;
                    return Ok(true);
                }
            }
        }
    }
    report.unverified_accounts_deleted += 1;
    report.account_items_deleted += in_transaction as u64;
    tracing::debug!(user_id = id, created_at, "deleted an unverified account");

    // Items beyond one transaction: the account is gone and its id is never reused, so
    // they are plain garbage. Left over when the budget ends here, they still expire
    // (every item of an account but the account itself has a TTL).
    for key in later {
        if budget.spent() {
            return Ok(false);
        }
        app.store
            .write(Write::delete(key.clone()))
            .await
            .with_context(|| format!("deleting {key:?} of a deleted account"))?;
        report.account_items_deleted += 1;
    }
    Ok(true)
}

// ---- expired items ---------------------------------------------------------------------

/// Deletes the items of the expiry index whose TTL has passed, day by day up to today.
/// Returns whether it got through every day partition.
async fn delete_expired_items(
    app: &App,
    now: i64,
    budget: &Budget,
    report: &mut CleanupReport,
) -> anyhow::Result<bool> {
    let today = now.div_euclid(DAY);
    // Sort keys are `<expires_at:012>#<pk>#<sk>`; `~` sorts after `#`, so this bound
    // takes every item expiring at or before `now` and none after.
    let expired_by_now = format!("{now:012}~");
    for day in (today - EXPIRED_LOOKBACK_DAYS)..=today {
        let mut query = Query::partition(schema::expiring_day(day * DAY))
            .on_index(schema::EXPIRING_BY_DAY.name)
            .at_most(expired_by_now.as_str())
            .including_expired()
            .limit(PAGE_SIZE);
        let mut seen = HashSet::new();
        loop {
            if budget.spent() {
                return Ok(false);
            }
            let page = app
                .store
                .query(&query)
                .await
                .with_context(|| format!("reading expired items of {}", query.pk))?;
            for item in &page.items {
                let Some(key) = item.key().filter(|key| seen.insert(key.clone())) else {
                    continue;
                };
                if !item.is_expired(now) {
                    continue;
                }
                if budget.spent() {
                    return Ok(false);
                }
                // The store sees an expired item as absent, so "absent" holds exactly
                // while the item is still dead: one renewed meanwhile is kept.
                match app
                    .store
                    .write(Write::delete(key.clone()).when(Cond::ItemAbsent))
                    .await
                {
                    Ok(_) => report.expired_items_deleted += 1,
                    Err(WriteError::ConditionFailed { .. }) => report.expired_items_kept += 1,
                    Err(WriteError::Unexpected(e)) => {
                        return Err(e.context(format!("deleting expired {key:?}")));
                    }
                }
            }
            match page.next {
                Some(next) => query = query.after(Some(next)),
                None => break,
            }
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_is_the_time_left_minus_the_margin() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let in_a_minute = now + Duration::from_secs(60);
        assert_eq!(
            budget(in_a_minute, now),
            Duration::from_secs(60) - SAFETY_MARGIN
        );
        assert_eq!(budget(now + Duration::from_secs(5), now), Duration::ZERO);
        assert_eq!(budget(now - Duration::from_secs(5), now), Duration::ZERO);
    }

    #[test]
    fn the_expired_bound_takes_exactly_the_items_expired_by_now() {
        let now = 1_700_000_000_i64;
        let bound = format!("{now:012}~");
        let sk = |at: i64| format!("{at:012}#USER#x#SESSION#y");
        assert!(sk(now) <= bound);
        assert!(sk(now - 1) <= bound);
        assert!(sk(now + 1) > bound);
    }
}
