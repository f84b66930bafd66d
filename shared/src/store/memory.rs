//! The embedded store: the whole table in a map behind one lock, so every write and
//! transaction is trivially atomic, with DynamoDB's condition and expiry rules.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use anyhow::anyhow;
use async_trait::async_trait;

use super::{
    FailedCondition, Item, Key, MAX_TRANSACTION_WRITES, Page, Query, Store, TransactError, Write,
    WriteError, schema,
};
use crate::clock::Clock;

/// An in-memory [`Store`] for the local server and fast tests.
pub struct MemoryStore {
    items: Mutex<BTreeMap<Key, Item>>,
    clock: Arc<dyn Clock>,
}

impl MemoryStore {
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self {
            items: Mutex::new(BTreeMap::new()),
            clock,
        }
    }

    fn lock(&self) -> anyhow::Result<MutexGuard<'_, BTreeMap<Key, Item>>> {
        self.items
            .lock()
            .map_err(|_| anyhow!("the in-memory store's lock is poisoned"))
    }

    /// Every item, expired ones included (what DynamoDB would still hold before its
    /// TTL sweep); for tests of the cleanup job.
    pub fn raw_len(&self) -> usize {
        self.items.lock().map(|items| items.len()).unwrap_or(0)
    }
}

fn alive(item: Option<&Item>, now: i64) -> Option<&Item> {
    item.filter(|item| !item.is_expired(now))
}

/// Checks one write against the table; `Err` carries the item as it stood.
fn check(items: &BTreeMap<Key, Item>, write: &Write, now: i64) -> Result<(), Option<Item>> {
    let key = write.key();
    let stored = items.get(&key);
    match write.cond() {
        Some(cond) if !cond.holds_for(alive(stored, now)) => Err(stored.cloned()),
        _ => Ok(()),
    }
}

/// Applies a checked write; returns what [`Store::write`] promises.
fn apply(items: &mut BTreeMap<Key, Item>, write: Write, now: i64) -> Option<Item> {
    match write {
        Write::Put { item, .. } => {
            if let Some(key) = item.key() {
                items.insert(key, item);
            }
            None
        }
        Write::Update { key, changes, .. } => {
            let mut item = match items.remove(&key) {
                Some(old) if !old.is_expired(now) => old,
                _ => Item::new(&key),
            };
            for change in &changes {
                change.apply(&mut item);
            }
            items.insert(key, item.clone());
            Some(item)
        }
        Write::Delete { key, .. } => items.remove(&key).filter(|old| !old.is_expired(now)),
        Write::Check { .. } => None,
    }
}

fn validate(write: &Write) -> anyhow::Result<()> {
    if let Write::Put { item, .. } = write {
        item.key()
            .ok_or_else(|| anyhow!("a put needs string pk and sk attributes"))?;
    }
    Ok(())
}

#[async_trait]
impl Store for MemoryStore {
    async fn get(&self, key: &Key) -> anyhow::Result<Option<Item>> {
        let now = self.clock.now();
        Ok(alive(self.lock()?.get(key), now).cloned())
    }

    async fn get_many(&self, keys: &[Key]) -> anyhow::Result<Vec<Item>> {
        let now = self.clock.now();
        let items = self.lock()?;
        Ok(keys
            .iter()
            .filter_map(|key| alive(items.get(key), now).cloned())
            .collect())
    }

    async fn query(&self, query: &Query) -> anyhow::Result<Page> {
        let now = self.clock.now();
        let (pk_attr, sk_attr) = match query.index {
            None => (super::PK, super::SK),
            Some(name) => {
                let index = schema::index(name).ok_or_else(|| anyhow!("no index named {name}"))?;
                (index.pk, index.sk)
            }
        };
        let items = self.lock()?;
        // Index order is (index sort key, table key), as DynamoDB orders ties.
        let mut matching: Vec<(&str, &Key, &Item)> = items
            .iter()
            .filter(|(_, item)| !item.is_expired(now) && item.s(pk_attr) == Some(&query.pk))
            .filter_map(|(key, item)| Some((item.s(sk_attr)?, key, item)))
            .filter(|(sk, _, _)| {
                query.sk_prefix.as_deref().is_none_or(|p| sk.starts_with(p))
                    && query.sk_at_most.as_deref().is_none_or(|max| *sk <= max)
            })
            .collect();
        matching.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
        if !query.ascending {
            matching.reverse();
        }
        let start = match &query.start_after {
            Some(after) => matching
                .iter()
                .position(|(_, key, _)| *key == after)
                .map_or(0, |at| at + 1),
            None => 0,
        };
        let page: Vec<Item> = matching
            .iter()
            .skip(start)
            .take(query.limit)
            .map(|(_, _, item)| (*item).clone())
            .collect();
        let more = matching.len() > start + page.len();
        let next = if more {
            page.last().and_then(Item::key)
        } else {
            None
        };
        Ok(Page { items: page, next })
    }

    async fn write(&self, write: Write) -> Result<Option<Item>, WriteError> {
        if matches!(write, Write::Check { .. }) {
            return Err(anyhow!("a condition check is only allowed in a transaction").into());
        }
        validate(&write)?;
        let now = self.clock.now();
        let mut items = self.lock()?;
        check(&items, &write, now).map_err(|current| WriteError::ConditionFailed { current })?;
        Ok(apply(&mut items, write, now))
    }

    async fn transact(&self, writes: Vec<Write>) -> Result<(), TransactError> {
        if writes.is_empty() || writes.len() > MAX_TRANSACTION_WRITES {
            return Err(
                anyhow!("a transaction holds 1 to 100 writes, not {}", writes.len()).into(),
            );
        }
        let mut keys: Vec<Key> = writes.iter().map(Write::key).collect();
        keys.sort();
        keys.dedup();
        if keys.len() != writes.len() {
            return Err(anyhow!("a transaction cannot touch one item twice").into());
        }
        for write in &writes {
            validate(write)?;
        }
        let now = self.clock.now();
        let mut items = self.lock()?;
        let failed: Vec<FailedCondition> = writes
            .iter()
            .enumerate()
            .filter_map(|(index, write)| {
                check(&items, write, now)
                    .err()
                    .map(|current| FailedCondition { index, current })
            })
            .collect();
        if !failed.is_empty() {
            return Err(TransactError::ConditionFailed { failed });
        }
        for write in writes {
            apply(&mut items, write, now);
        }
        Ok(())
    }

    async fn ping(&self) -> anyhow::Result<()> {
        self.lock().map(|_| ())
    }
}

/// Conditions are the same code for both stores, so unit tests here stay small; the
/// shared behaviour is checked by the conformance suite.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::store::{Cond, conformance};

    fn store() -> (MemoryStore, Arc<ManualClock>) {
        let clock = ManualClock::starting_now();
        (MemoryStore::new(clock.clone()), clock)
    }

    #[tokio::test]
    async fn the_memory_store_passes_the_conformance_suite() {
        let (store, clock) = store();
        conformance::run_all(&store, clock.as_ref()).await;
    }

    #[tokio::test]
    async fn a_condition_on_an_item_that_is_absent_treats_it_as_empty() {
        let (store, _) = store();
        let key = Key::new("a", "b");
        let result = store
            .write(Write::put(Item::new(&key)).when(Cond::eq("x", 1)))
            .await;
        assert!(matches!(
            result,
            Err(WriteError::ConditionFailed { current: None })
        ));
    }
}
