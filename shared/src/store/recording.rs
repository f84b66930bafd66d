//! A [`Store`] wrapper that records, for every call, the DynamoDB requests the DynamoDB
//! store may send for it and the IAM permissions those requests need. The infrastructure
//! cross-check drives each function's routes through its own recorder and compares what
//! was recorded with the function's IAM policy in `infra/template.yaml`, so the policy is
//! derived from what the code does, never from a hand-kept list.
//!
//! The mapping mirrors [`super::dynamo::DynamoStore`], including its less obvious
//! requests (keep the two in step):
//!
//! | call | API operations | IAM actions (resource) |
//! | --- | --- | --- |
//! | `get` | GetItem | GetItem (table) |
//! | `get_many` | BatchGetItem | BatchGetItem (table) |
//! | `query` | Query; resuming an index query may read the last item: GetItem | Query (table or `index/<name>`); GetItem (table) |
//! | `write` Put / Update / Delete | PutItem / UpdateItem / DeleteItem | the same |
//! | `transact` | TransactWriteItems | per write: PutItem, UpdateItem, DeleteItem, ConditionCheckItem (IAM knows no TransactWriteItems action) |
//! | `ping` | GetItem | GetItem (table) |
//!
//! An update that may start a fresh item (no condition, or one that holds for a missing
//! item) deletes an expired item in its way first, alone or inside a transaction: that
//! adds DeleteItem.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use super::{Item, Key, Page, Query, Store, TransactError, Write, WriteError};

/// What an IAM statement's resource names: the table or one of its indexes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Target {
    /// `arn:...:table/<name>`
    Table,
    /// `arn:...:table/<name>/index/<index>`
    Index(&'static str),
}

/// One IAM permission on the table: an action such as `dynamodb:GetItem` on a target.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Permission {
    pub action: String,
    pub target: Target,
}

impl Permission {
    fn new(operation: &str, target: Target) -> Permission {
        Permission {
            action: format!("dynamodb:{operation}"),
            target,
        }
    }
}

/// Wraps any store and records what each call implies; see the module documentation.
pub struct RecordingStore {
    inner: Arc<dyn Store>,
    recorded: Mutex<Recorded>,
}

#[derive(Default)]
struct Recorded {
    operations: BTreeSet<&'static str>,
    permissions: BTreeSet<Permission>,
}

impl RecordingStore {
    pub fn new(inner: Arc<dyn Store>) -> Arc<RecordingStore> {
        Arc::new(RecordingStore {
            inner,
            recorded: Mutex::new(Recorded::default()),
        })
    }

    /// The DynamoDB API operations (`GetItem`, `TransactWriteItems`, ...) the calls so far
    /// may have sent.
    pub fn operations(&self) -> BTreeSet<&'static str> {
        self.recorded
            .lock()
            .map(|r| r.operations.clone())
            .unwrap_or_default()
    }

    /// The IAM permissions the calls so far needed.
    pub fn permissions(&self) -> BTreeSet<Permission> {
        self.recorded
            .lock()
            .map(|r| r.permissions.clone())
            .unwrap_or_default()
    }

    /// Forgets everything recorded so far.
    pub fn clear(&self) {
        if let Ok(mut recorded) = self.recorded.lock() {
            *recorded = Recorded::default();
        }
    }

    /// Records one API operation and the permissions it needs.
    fn record(&self, operation: &'static str, permissions: &[Permission]) {
        if let Ok(mut recorded) = self.recorded.lock() {
            recorded.operations.insert(operation);
            recorded.permissions.extend(permissions.iter().cloned());
        }
    }

    /// Records what one write needs, alone (`in_transaction` false) or inside a
    /// transaction (where a condition check is allowed and needs its own permission).
    fn record_write(&self, write: &Write, in_transaction: bool) {
        let table = Target::Table;
        match write {
            Write::Put { .. } => {
                self.record_item_operation("PutItem", in_transaction);
            }
            Write::Update { cond, .. } => {
                self.record_item_operation("UpdateItem", in_transaction);
                // DynamoStore deletes an expired item in the way of an update that may
                // start fresh (a separate DeleteItem request, even from a transaction).
                if cond.as_ref().is_none_or(|c| c.holds_for(None)) {
                    self.record("DeleteItem", &[Permission::new("DeleteItem", table)]);
                }
            }
            Write::Delete { .. } => {
                self.record_item_operation("DeleteItem", in_transaction);
            }
            Write::Check { .. } if in_transaction => {
                if let Ok(mut recorded) = self.recorded.lock() {
                    recorded
                        .permissions
                        .insert(Permission::new("ConditionCheckItem", table));
                }
            }
            // A lone condition check is refused before any request.
            Write::Check { .. } => {}
        }
    }

    /// An item write: its own request when alone, a part of TransactWriteItems (which
    /// IAM authorises item by item) inside a transaction.
    fn record_item_operation(&self, operation: &'static str, in_transaction: bool) {
        let permission = Permission::new(operation, Target::Table);
        if in_transaction {
            if let Ok(mut recorded) = self.recorded.lock() {
                recorded.permissions.insert(permission);
            }
        } else {
            self.record(operation, &[permission]);
        }
    }
}

/// Keys DynamoDB would refuse are answered without a request (as DynamoStore does).
fn storable(key: &Key) -> bool {
    !key.pk.is_empty() && !key.sk.is_empty()
}

#[async_trait]
impl Store for RecordingStore {
    async fn get(&self, key: &Key) -> anyhow::Result<Option<Item>> {
        if storable(key) {
            self.record("GetItem", &[Permission::new("GetItem", Target::Table)]);
        }
        self.inner.get(key).await
    }

    async fn get_many(&self, keys: &[Key]) -> anyhow::Result<Vec<Item>> {
        if keys.iter().any(storable) {
            self.record(
                "BatchGetItem",
                &[Permission::new("BatchGetItem", Target::Table)],
            );
        }
        self.inner.get_many(keys).await
    }

    async fn query(&self, query: &Query) -> anyhow::Result<Page> {
        if query.limit > 0 && !query.pk.is_empty() {
            let target = match query.index {
                None => Target::Table,
                Some(name) => Target::Index(name),
            };
            self.record("Query", &[Permission::new("Query", target)]);
            // Resuming an index query after an item whose index position this instance
            // does not remember reads that item from the table.
            if query.index.is_some() && query.start_after.as_ref().is_some_and(storable) {
                self.record("GetItem", &[Permission::new("GetItem", Target::Table)]);
            }
        }
        self.inner.query(query).await
    }

    async fn write(&self, write: Write) -> Result<Option<Item>, WriteError> {
        self.record_write(&write, false);
        self.inner.write(write).await
    }

    async fn transact(&self, writes: Vec<Write>) -> Result<(), TransactError> {
        if !writes.is_empty() {
            self.record("TransactWriteItems", &[]);
            for write in &writes {
                self.record_write(write, true);
            }
        }
        self.inner.transact(writes).await
    }

    async fn ping(&self) -> anyhow::Result<()> {
        self.record("GetItem", &[Permission::new("GetItem", Target::Table)]);
        self.inner.ping().await
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::store::memory::MemoryStore;
    use crate::store::{Change, Cond};

    fn recorder() -> Arc<RecordingStore> {
        RecordingStore::new(Arc::new(MemoryStore::new(ManualClock::starting_now())))
    }

    fn actions(store: &RecordingStore) -> Vec<String> {
        store
            .permissions()
            .into_iter()
            .map(|p| match p.target {
                Target::Table => p.action,
                Target::Index(name) => format!("{} on {name}", p.action),
            })
            .collect()
    }

    #[tokio::test]
    async fn a_transaction_needs_the_item_actions_it_holds() {
        let store = recorder();
        store
            .transact(vec![
                Write::put(Item::new(&Key::new("a", "1"))).when(Cond::ItemAbsent),
                Write::check(Key::new("b", "1"), Cond::ItemAbsent),
            ])
            .await
            .unwrap();
        assert_eq!(store.operations(), BTreeSet::from(["TransactWriteItems"]));
        assert_eq!(
            actions(&store),
            ["dynamodb:ConditionCheckItem", "dynamodb:PutItem"]
        );
    }

    #[tokio::test]
    async fn an_update_that_may_start_fresh_may_delete_an_expired_item() {
        let store = recorder();
        let key = Key::new("a", "1");
        store
            .write(Write::update(key.clone(), vec![Change::add("n", 1)]))
            .await
            .unwrap();
        assert_eq!(
            actions(&store),
            ["dynamodb:DeleteItem", "dynamodb:UpdateItem"]
        );

        store.clear();
        store
            .write(Write::update(key, vec![Change::add("n", 1)]).when(Cond::ItemExists))
            .await
            .unwrap();
        assert_eq!(actions(&store), ["dynamodb:UpdateItem"]);
    }

    #[tokio::test]
    async fn index_queries_name_the_index() {
        let store = recorder();
        let query = Query::partition("p").on_index(crate::store::schema::UNVERIFIED_BY_DAY.name);
        store.query(&query).await.unwrap();
        assert_eq!(actions(&store), ["dynamodb:Query on gsi1"]);
        store
            .query(&query.after(Some(Key::new("a", "1"))))
            .await
            .unwrap();
        assert_eq!(
            actions(&store),
            ["dynamodb:GetItem", "dynamodb:Query on gsi1"]
        );
    }

    #[tokio::test]
    async fn ping_reads_one_item() {
        let store = recorder();
        store.ping().await.unwrap();
        assert_eq!(store.operations(), BTreeSet::from(["GetItem"]));
        assert_eq!(actions(&store), ["dynamodb:GetItem"]);
    }
}
