//! The embedded store: the whole table in a map behind one lock, so every write and
//! transaction is trivially atomic, with DynamoDB's condition and expiry rules.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use anyhow::anyhow;
use async_trait::async_trait;

use super::{
    Change, FailedCondition, Item, Key, Page, Query, Store, TransactError, Write, WriteError,
    schema,
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

    /// Every item, expired ones included: for checks over everything a scenario wrote.
    pub fn raw_items(&self) -> Vec<Item> {
        self.items
            .lock()
            .map(|items| items.values().cloned().collect())
            .unwrap_or_default()
    }
}

fn alive(item: Option<&Item>, now: i64) -> Option<&Item> {
    item.filter(|item| !item.is_expired(now))
}

/// Checks one write against the table; `Err` carries the item as it stood.
fn check(items: &BTreeMap<Key, Item>, write: &Write, now: i64) -> Result<(), Option<Item>> {
    let Some(cond) = write.cond() else {
        return Ok(());
    };
    let stored = match write {
        Write::Update { key, .. } | Write::Delete { key, .. } | Write::Check { key, .. } => {
            items.get(key)
        }
        Write::Put { .. } => items.get(&write.key()),
    };
    match cond.holds_for(alive(stored, now)) {
        true => Ok(()),
        false => Err(stored.cloned()),
    }
}

/// What a checked write will do to the table, computed before anything changes so a
/// transaction whose writes cannot all apply changes nothing.
enum Effect {
    Insert(Key, Item),
    Remove(Key),
    Nothing,
}

/// Works out a checked write's effect and what [`Store::write`] returns for it.
fn prepare(
    items: &BTreeMap<Key, Item>,
    write: Write,
    now: i64,
) -> anyhow::Result<(Effect, Option<Item>)> {
    Ok(match write {
        Write::Put { item, .. } => match item.key() {
            Some(key) => (Effect::Insert(key, item), None),
            None => (Effect::Nothing, None),
        },
        Write::Update { key, changes, .. } => {
            let mut item = match alive(items.get(&key), now) {
                Some(old) => old.clone(),
                None => Item::new(&key),
            };
            for change in &changes {
                change.apply(&mut item)?;
            }
            (Effect::Insert(key, item.clone()), Some(item))
        }
        Write::Delete { key, .. } => {
            let old = alive(items.get(&key), now).cloned();
            (Effect::Remove(key), old)
        }
        Write::Check { .. } => (Effect::Nothing, None),
    })
}

/// Applies changes that cannot fail to the stored item where it is (a fresh item when it
/// is absent or expired), and hands the changed item back.
fn update_in_place<'a>(
    items: &'a mut BTreeMap<Key, Item>,
    key: Key,
    changes: &[Change],
    now: i64,
) -> anyhow::Result<&'a Item> {
    let item = match items.entry(key) {
        std::collections::btree_map::Entry::Occupied(entry) => {
            let item = entry.into_mut();
            if item.is_expired(now) {
                *item = Item::new(&item.key().unwrap_or_else(|| Key::new("", "")));
            }
            item
        }
        std::collections::btree_map::Entry::Vacant(entry) => {
            let item = Item::new(entry.key());
            entry.insert(item)
        }
    };
    for change in changes {
        change.apply(item)?;
    }
    Ok(item)
}

fn commit(items: &mut BTreeMap<Key, Item>, effect: Effect) {
    match effect {
        Effect::Insert(key, item) => {
            items.insert(key, item);
        }
        Effect::Remove(key) => {
            items.remove(&key);
        }
        Effect::Nothing => {}
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn get(&self, key: &Key) -> anyhow::Result<Option<Item>> {
        key.check_size()?;
        let now = self.clock.now();
        Ok(alive(self.lock()?.get(key), now).cloned())
    }

    async fn get_many(&self, keys: &[Key]) -> anyhow::Result<Vec<Item>> {
        keys.iter().try_for_each(Key::check_size)?;
        let now = self.clock.now();
        let items = self.lock()?;
        Ok(keys
            .iter()
            .filter_map(|key| alive(items.get(key), now).cloned())
            .collect())
    }

    async fn query(&self, query: &Query) -> anyhow::Result<Page> {
        query.check_size()?;
        let now = self.clock.now();
        let (pk_attr, sk_attr) = match query.index {
            None => (super::PK, super::SK),
            Some(name) => {
                let index = schema::index(name).ok_or_else(|| anyhow!("no index named {name}"))?;
                (index.pk, index.sk)
            }
        };
        let items = self.lock()?;
        // A table query reads its partition only (keys order by partition first); an
        // index query looks at every item.
        let candidates: Box<dyn Iterator<Item = (&Key, &Item)>> = match query.index {
            None => {
                let start = Key::new(
                    query.pk.as_str(),
                    query.sk_prefix.as_deref().unwrap_or_default(),
                );
                Box::new(
                    items
                        .range(start..)
                        .take_while(|(key, _)| key.pk == query.pk),
                )
            }
            Some(_) => Box::new(items.iter()),
        };
        // Index order is (index sort key, table key), as DynamoDB orders ties.
        let mut matching: Vec<(&str, &Key, &Item)> = candidates
            .filter(|(_, item)| {
                (query.include_expired || !item.is_expired(now))
                    && item.s(pk_attr) == Some(&query.pk)
            })
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
        // Resume just past where the previous page ended, even if that item has gone
        // since (a sweep deleting as it pages must not start over).
        let resume_at = query.start_after.as_ref().and_then(|after| {
            let sk = match query.index {
                None => Some(after.sk.clone()),
                Some(_) => items
                    .get(after)
                    .and_then(|i| i.s(sk_attr))
                    .map(str::to_owned),
            };
            sk.map(|sk| (sk, after.clone()))
        });
        let start = match resume_at {
            Some((sk, after)) => matching
                .iter()
                .position(|(s, key, _)| {
                    let here = (*s, *key);
                    let mark = (sk.as_str(), &after);
                    if query.ascending {
                        here > mark
                    } else {
                        here < mark
                    }
                })
                .unwrap_or(matching.len()),
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
        write.validate()?;
        let now = self.clock.now();
        let mut items = self.lock()?;
        check(&items, &write, now).map_err(|current| WriteError::ConditionFailed { current })?;
        let write = match write {
            Write::Update { key, changes, .. } if !changes.iter().any(Change::can_fail) => {
                // Nothing can fail from here: change the stored item where it is, rather
                // than a copy (one clone fewer per update).
                let item = update_in_place(&mut items, key, &changes, now)?;
                return Ok(Some(item.clone()));
            }
            write => write,
        };
        let (effect, returned) = prepare(&items, write, now)?;
        commit(&mut items, effect);
        Ok(returned)
    }

    async fn transact(&self, writes: Vec<Write>) -> Result<(), TransactError> {
        super::validate_transaction(&writes)?;
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
        // Work out every write that can still fail before changing anything; the others
        // (puts, deletes, updates that only set or remove) then apply in place.
        let mut in_place = Vec::new();
        let mut effects = Vec::new();
        for write in writes {
            match write {
                Write::Update { key, changes, .. } if !changes.iter().any(Change::can_fail) => {
                    in_place.push((key, changes));
                }
                Write::Check { .. } => {}
                write => effects.push(prepare(&items, write, now)?.0),
            }
        }
        for effect in effects {
            commit(&mut items, effect);
        }
        for (key, changes) in in_place {
            update_in_place(&mut items, key, &changes, now)?;
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
