//! Storage: a small DynamoDB-shaped item store behind one trait, with a DynamoDB and an
//! embedded in-memory implementation that share one set of semantics.
//!
//! The domain code is written once against [`Store`]. Both implementations honour the
//! same rules, which the conformance suite in [`conformance`] checks against each:
//!
//! - items live in one table keyed by `pk` + `sk` (strings);
//! - an item whose [`EXPIRES_AT`] attribute (epoch seconds, the table's TTL attribute)
//!   is at or before the store clock's "now" does not exist: reads skip it and
//!   conditions see it as absent, because DynamoDB's TTL sweeper may take days;
//! - single writes and transactions are conditional and atomic; a failed condition
//!   reports the item as it stood (expired or not), like `ALL_OLD` in DynamoDB.

#[cfg(any(test, feature = "test-support"))]
pub mod conformance;
pub mod dynamo;
pub mod memory;
#[cfg(any(test, feature = "test-support"))]
pub mod recording;
pub mod schema;

use std::collections::{BTreeMap, BTreeSet};

use async_trait::async_trait;

/// The table's TTL attribute: epoch seconds after which the item is dead.
pub const EXPIRES_AT: &str = "expires_at";
/// Partition key attribute.
pub const PK: &str = "pk";
/// Sort key attribute.
pub const SK: &str = "sk";

/// The primary key of one item. Its `Debug` form is the one logs may show
/// ([`crate::redact::key`]): error contexts name keys.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key {
    pub pk: String,
    pub sk: String,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Key({})", crate::redact::key(&self.pk, &self.sk))
    }
}

/// DynamoDB's largest partition key, in bytes of UTF-8.
pub const MAX_PK_BYTES: usize = 2048;
/// DynamoDB's largest sort key, in bytes of UTF-8.
pub const MAX_SK_BYTES: usize = 1024;

impl Key {
    pub fn new(pk: impl Into<String>, sk: impl Into<String>) -> Self {
        Self {
            pk: pk.into(),
            sk: sk.into(),
        }
    }

    /// Refuses a key longer than DynamoDB allows, as DynamoDB does (a `ValidationException`
    /// there), so that both stores fail alike; what a request carries is checked before it
    /// ever reaches a key.
    pub fn check_size(&self) -> anyhow::Result<()> {
        if self.pk.len() > MAX_PK_BYTES || self.sk.len() > MAX_SK_BYTES {
            anyhow::bail!(
                "a key of {} + {} bytes is over DynamoDB's limits ({MAX_PK_BYTES} + {MAX_SK_BYTES})",
                self.pk.len(),
                self.sk.len()
            );
        }
        Ok(())
    }
}

/// One attribute value. Numbers are integers: nothing here needs fractions.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Value {
    S(String),
    N(i64),
    B(Vec<u8>),
    Bool(bool),
    /// A string set; never empty (DynamoDB has no empty sets).
    Ss(BTreeSet<String>),
}

impl From<&str> for Value {
    fn from(value: &str) -> Self {
        Value::S(value.to_owned())
    }
}
impl From<String> for Value {
    fn from(value: String) -> Self {
        Value::S(value)
    }
}
impl From<i64> for Value {
    fn from(value: i64) -> Self {
        Value::N(value)
    }
}
impl From<bool> for Value {
    fn from(value: bool) -> Self {
        Value::Bool(value)
    }
}
impl From<Vec<u8>> for Value {
    fn from(value: Vec<u8>) -> Self {
        Value::B(value)
    }
}

/// An item: its attributes by name, `pk` and `sk` included.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Item(pub BTreeMap<String, Value>);

impl Item {
    /// A new item with its key attributes set.
    pub fn new(key: &Key) -> Self {
        let mut item = Item::default();
        item.set(PK, key.pk.as_str());
        item.set(SK, key.sk.as_str());
        item
    }

    pub fn key(&self) -> Option<Key> {
        Some(Key::new(self.s(PK)?, self.s(SK)?))
    }

    pub fn set(&mut self, name: &str, value: impl Into<Value>) -> &mut Self {
        self.0.insert(name.to_owned(), value.into());
        self
    }

    /// Sets the attribute when `value` is present, removes it otherwise.
    pub fn set_opt(&mut self, name: &str, value: Option<impl Into<Value>>) -> &mut Self {
        match value {
            Some(value) => self.set(name, value),
            None => {
                self.0.remove(name);
                self
            }
        }
    }

    pub fn with(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.set(name, value);
        self
    }

    pub fn get(&self, name: &str) -> Option<&Value> {
        self.0.get(name)
    }

    pub fn s(&self, name: &str) -> Option<&str> {
        match self.0.get(name) {
            Some(Value::S(s)) => Some(s),
            _ => None,
        }
    }

    pub fn n(&self, name: &str) -> Option<i64> {
        match self.0.get(name) {
            Some(Value::N(n)) => Some(*n),
            _ => None,
        }
    }

    pub fn b(&self, name: &str) -> Option<&[u8]> {
        match self.0.get(name) {
            Some(Value::B(b)) => Some(b),
            _ => None,
        }
    }

    pub fn bool(&self, name: &str) -> Option<bool> {
        match self.0.get(name) {
            Some(Value::Bool(b)) => Some(*b),
            _ => None,
        }
    }

    pub fn ss(&self, name: &str) -> Option<&BTreeSet<String>> {
        match self.0.get(name) {
            Some(Value::Ss(set)) => Some(set),
            _ => None,
        }
    }

    /// Whether the item is dead at `now` (its TTL has passed, swept or not).
    pub fn is_expired(&self, now: i64) -> bool {
        self.n(EXPIRES_AT).is_some_and(|at| at <= now)
    }
}

/// A comparison operator for [`Cond::Cmp`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cmp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// A write condition, evaluated on the item as it stands (an expired item counts as
/// absent: every attribute of it is missing).
#[derive(Clone, Debug, PartialEq)]
pub enum Cond {
    /// The item exists (and is alive).
    ItemExists,
    /// The item does not exist (or has expired).
    ItemAbsent,
    AttrExists(String),
    AttrAbsent(String),
    /// `attr <op> value`; false when the attribute is missing or of another type.
    Cmp(String, Cmp, Value),
    /// The string-set attribute contains the string.
    Contains(String, String),
    And(Vec<Cond>),
    Or(Vec<Cond>),
    Not(Box<Cond>),
}

impl Cond {
    pub fn eq(attr: &str, value: impl Into<Value>) -> Cond {
        Cond::Cmp(attr.to_owned(), Cmp::Eq, value.into())
    }
    pub fn ne(attr: &str, value: impl Into<Value>) -> Cond {
        Cond::Cmp(attr.to_owned(), Cmp::Ne, value.into())
    }
    pub fn lt(attr: &str, value: impl Into<Value>) -> Cond {
        Cond::Cmp(attr.to_owned(), Cmp::Lt, value.into())
    }
    pub fn le(attr: &str, value: impl Into<Value>) -> Cond {
        Cond::Cmp(attr.to_owned(), Cmp::Le, value.into())
    }
    pub fn gt(attr: &str, value: impl Into<Value>) -> Cond {
        Cond::Cmp(attr.to_owned(), Cmp::Gt, value.into())
    }
    pub fn ge(attr: &str, value: impl Into<Value>) -> Cond {
        Cond::Cmp(attr.to_owned(), Cmp::Ge, value.into())
    }
    pub fn attr_exists(attr: &str) -> Cond {
        Cond::AttrExists(attr.to_owned())
    }
    pub fn attr_absent(attr: &str) -> Cond {
        Cond::AttrAbsent(attr.to_owned())
    }
    pub fn contains(attr: &str, member: impl Into<String>) -> Cond {
        Cond::Contains(attr.to_owned(), member.into())
    }
    pub fn and(self, other: Cond) -> Cond {
        match self {
            Cond::And(mut all) => {
                all.push(other);
                Cond::And(all)
            }
            first => Cond::And(vec![first, other]),
        }
    }
    pub fn or(self, other: Cond) -> Cond {
        match self {
            Cond::Or(mut any) => {
                any.push(other);
                Cond::Or(any)
            }
            first => Cond::Or(vec![first, other]),
        }
    }
    #[allow(clippy::should_implement_trait)]
    pub fn not(self) -> Cond {
        Cond::Not(Box::new(self))
    }

    /// Evaluates the condition on an item that is alive at the time of the write
    /// (`None`: absent or expired). The in-memory store uses this directly; the
    /// DynamoDB store uses it on `None` to fold the expiry rule into its expressions.
    pub fn holds_for(&self, item: Option<&Item>) -> bool {
        match self {
            Cond::ItemExists => item.is_some(),
            Cond::ItemAbsent => item.is_none(),
            Cond::AttrExists(attr) => item.and_then(|i| i.get(attr)).is_some(),
            Cond::AttrAbsent(attr) => item.and_then(|i| i.get(attr)).is_none(),
            Cond::Cmp(attr, op, expected) => item
                .and_then(|i| i.get(attr))
                .is_some_and(|actual| compare(actual, *op, expected)),
            Cond::Contains(attr, member) => item
                .and_then(|i| i.ss(attr))
                .is_some_and(|set| set.contains(member)),
            Cond::And(all) => all.iter().all(|c| c.holds_for(item)),
            Cond::Or(any) => any.iter().any(|c| c.holds_for(item)),
            Cond::Not(inner) => !inner.holds_for(item),
        }
    }
}

/// DynamoDB comparison semantics: only values of the same type compare, and only
/// strings, numbers and binaries order; everything else supports (in)equality alone.
fn compare(actual: &Value, op: Cmp, expected: &Value) -> bool {
    use std::cmp::Ordering;
    let ordering: Option<Ordering> = match (actual, expected) {
        (Value::S(a), Value::S(b)) => Some(a.cmp(b)),
        (Value::N(a), Value::N(b)) => Some(a.cmp(b)),
        (Value::B(a), Value::B(b)) => Some(a.cmp(b)),
        _ => None,
    };
    match (op, ordering) {
        (Cmp::Eq, _) => actual == expected,
        (Cmp::Ne, _) => actual != expected,
        (Cmp::Lt, Some(o)) => o == Ordering::Less,
        (Cmp::Le, Some(o)) => o != Ordering::Greater,
        (Cmp::Gt, Some(o)) => o == Ordering::Greater,
        (Cmp::Ge, Some(o)) => o != Ordering::Less,
        (_, None) => false,
    }
}

/// One change of an update.
#[derive(Clone, Debug, PartialEq)]
pub enum Change {
    Set(String, Value),
    /// Sets the attribute only when it is missing (DynamoDB `if_not_exists`).
    SetIfAbsent(String, Value),
    /// Adds to a number (a missing number counts as 0).
    Add(String, i64),
    Remove(String),
    /// Removes strings from a string set; the attribute goes away when the set empties.
    DeleteFromSet(String, BTreeSet<String>),
}

impl Change {
    pub fn set(attr: &str, value: impl Into<Value>) -> Change {
        Change::Set(attr.to_owned(), value.into())
    }
    pub fn set_if_absent(attr: &str, value: impl Into<Value>) -> Change {
        Change::SetIfAbsent(attr.to_owned(), value.into())
    }
    pub fn add(attr: &str, by: i64) -> Change {
        Change::Add(attr.to_owned(), by)
    }
    pub fn remove(attr: &str) -> Change {
        Change::Remove(attr.to_owned())
    }
    pub fn delete_from_set(attr: &str, member: impl Into<String>) -> Change {
        Change::DeleteFromSet(attr.to_owned(), BTreeSet::from([member.into()]))
    }

    /// The attribute the change touches.
    pub fn attr(&self) -> &str {
        match self {
            Change::Set(attr, _)
            | Change::SetIfAbsent(attr, _)
            | Change::Add(attr, _)
            | Change::Remove(attr)
            | Change::DeleteFromSet(attr, _) => attr,
        }
    }

    /// Whether [`Change::apply`] can refuse the change (only adding can).
    pub fn can_fail(&self) -> bool {
        matches!(self, Change::Add(..))
    }

    /// Applies the change to an item (used by the in-memory store); adding to an
    /// attribute that is not a number fails, as it does in DynamoDB.
    pub fn apply(&self, item: &mut Item) -> anyhow::Result<()> {
        match self {
            Change::Set(attr, value) => {
                item.0.insert(attr.clone(), value.clone());
            }
            Change::SetIfAbsent(attr, value) => {
                item.0.entry(attr.clone()).or_insert_with(|| value.clone());
            }
            Change::Add(attr, by) => {
                let current = match item.get(attr) {
                    None => 0,
                    Some(Value::N(n)) => *n,
                    Some(_) => anyhow::bail!("cannot add to {attr}: it is not a number"),
                };
                item.0.insert(attr.clone(), Value::N(current + by));
            }
            Change::Remove(attr) => {
                item.0.remove(attr);
            }
            Change::DeleteFromSet(attr, members) => {
                if let Some(Value::Ss(set)) = item.0.get_mut(attr) {
                    set.retain(|m| !members.contains(m));
                    if set.is_empty() {
                        item.0.remove(attr);
                    }
                }
            }
        }
        Ok(())
    }
}

/// One write, alone or inside a transaction.
#[derive(Clone, Debug, PartialEq)]
pub enum Write {
    /// Replaces the whole item.
    Put {
        item: Item,
        cond: Option<Cond>,
    },
    /// Changes attributes, creating the item when it does not exist (like DynamoDB's
    /// UpdateItem); an expired item is replaced by a fresh one first.
    Update {
        key: Key,
        changes: Vec<Change>,
        cond: Option<Cond>,
    },
    Delete {
        key: Key,
        cond: Option<Cond>,
    },
    /// Only a condition; allowed in transactions only.
    Check {
        key: Key,
        cond: Cond,
    },
}

impl Write {
    pub fn put(item: Item) -> Write {
        Write::Put { item, cond: None }
    }
    pub fn update(key: Key, changes: Vec<Change>) -> Write {
        Write::Update {
            key,
            changes,
            cond: None,
        }
    }
    pub fn delete(key: Key) -> Write {
        Write::Delete { key, cond: None }
    }
    pub fn check(key: Key, cond: Cond) -> Write {
        Write::Check { key, cond }
    }
    /// Adds a condition (ANDed with any condition already there).
    pub fn when(mut self, new: Cond) -> Write {
        let slot = match &mut self {
            Write::Put { cond, .. } | Write::Update { cond, .. } | Write::Delete { cond, .. } => {
                cond
            }
            Write::Check { cond, .. } => {
                *cond = cond.clone().and(new);
                return self;
            }
        };
        *slot = Some(match slot.take() {
            Some(existing) => existing.and(new),
            None => new,
        });
        self
    }

    pub fn key(&self) -> Key {
        match self {
            Write::Put { item, .. } => item.key().unwrap_or_else(|| Key::new("", "")),
            Write::Update { key, .. } | Write::Delete { key, .. } | Write::Check { key, .. } => {
                key.clone()
            }
        }
    }

    /// The key's two parts, borrowed (a put's from its item).
    pub fn key_parts(&self) -> (&str, &str) {
        match self {
            Write::Put { item, .. } => (
                item.s(PK).unwrap_or_default(),
                item.s(SK).unwrap_or_default(),
            ),
            Write::Update { key, .. } | Write::Delete { key, .. } | Write::Check { key, .. } => {
                (&key.pk, &key.sk)
            }
        }
    }

    /// Refuses what DynamoDB refuses, so that both stores fail alike: empty key
    /// strings, empty string sets, updates of the key, two changes to one attribute.
    pub fn validate(&self) -> anyhow::Result<()> {
        let key = match self {
            Write::Put { item, .. } => {
                if item
                    .0
                    .values()
                    .any(|v| matches!(v, Value::Ss(set) if set.is_empty()))
                {
                    anyhow::bail!("an item cannot hold an empty string set");
                }
                item.key()
                    .ok_or_else(|| anyhow::anyhow!("a put needs string pk and sk attributes"))?
            }
            other => other.key(),
        };
        if key.pk.is_empty() || key.sk.is_empty() {
            anyhow::bail!("key attributes cannot be empty strings");
        }
        key.check_size()?;
        if let Write::Update { changes, .. } = self {
            let mut touched = BTreeSet::new();
            for change in changes {
                let attr = change.attr();
                if attr == PK || attr == SK {
                    anyhow::bail!("an update cannot change the key attribute {attr}");
                }
                if !touched.insert(attr) {
                    anyhow::bail!("an update cannot change {attr} twice");
                }
                if matches!(change, Change::Set(_, Value::Ss(set)) | Change::SetIfAbsent(_, Value::Ss(set)) if set.is_empty())
                {
                    anyhow::bail!("an update cannot set an empty string set");
                }
            }
        }
        Ok(())
    }

    pub fn cond(&self) -> Option<&Cond> {
        match self {
            Write::Put { cond, .. } | Write::Update { cond, .. } | Write::Delete { cond, .. } => {
                cond.as_ref()
            }
            Write::Check { cond, .. } => Some(cond),
        }
    }
}

/// A query over one partition of the table or of a secondary index.
#[derive(Clone, Debug, PartialEq)]
pub struct Query {
    /// `None` for the table itself, or an index of [`schema::INDEXES`].
    pub index: Option<&'static str>,
    pub pk: String,
    /// Only sort keys starting with this.
    pub sk_prefix: Option<String>,
    /// Only sort keys at or before this (inclusive), e.g. for "older than" sweeps.
    pub sk_at_most: Option<String>,
    /// Newest (largest sort key) first when false.
    pub ascending: bool,
    pub limit: usize,
    /// Resume after this item (the `next` of a previous page).
    pub start_after: Option<Key>,
    /// Also return items past their TTL that DynamoDB has not swept yet (only the
    /// cleanup job, which deletes them, wants these).
    pub include_expired: bool,
}

impl Query {
    pub fn partition(pk: impl Into<String>) -> Query {
        Query {
            index: None,
            pk: pk.into(),
            sk_prefix: None,
            sk_at_most: None,
            ascending: true,
            limit: 100,
            start_after: None,
            include_expired: false,
        }
    }
    pub fn on_index(mut self, index: &'static str) -> Query {
        self.index = Some(index);
        self
    }
    pub fn prefix(mut self, prefix: impl Into<String>) -> Query {
        self.sk_prefix = Some(prefix.into());
        self
    }
    pub fn at_most(mut self, sk: impl Into<String>) -> Query {
        self.sk_at_most = Some(sk.into());
        self
    }
    pub fn descending(mut self) -> Query {
        self.ascending = false;
        self
    }
    pub fn limit(mut self, limit: usize) -> Query {
        self.limit = limit;
        self
    }
    pub fn after(mut self, key: Option<Key>) -> Query {
        self.start_after = key;
        self
    }
    /// Refuses a partition or resume key longer than DynamoDB allows (both stores call
    /// this first: DynamoDB Local answers some such queries instead of refusing them).
    pub fn check_size(&self) -> anyhow::Result<()> {
        if self.pk.len() > MAX_PK_BYTES {
            anyhow::bail!(
                "a partition key of {} bytes is over DynamoDB's limit",
                self.pk.len()
            );
        }
        match &self.start_after {
            Some(after) => after.check_size(),
            None => Ok(()),
        }
    }

    /// Returns expired items too (see [`Query::include_expired`]).
    pub fn including_expired(mut self) -> Query {
        self.include_expired = true;
        self
    }
}

/// One page of a query: live items only (unless the query includes expired ones), in
/// sort-key order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Page {
    pub items: Vec<Item>,
    /// The table key of the last item read when more may follow.
    pub next: Option<Key>,
}

/// Why a single write did not happen.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The condition did not hold; `current` is the item as it stood (possibly
    /// expired), `None` when there was none.
    #[error("the write's condition did not hold")]
    ConditionFailed { current: Option<Item> },
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// A call to the database that failed, and whether the failure passes: throttling, a
/// timeout, a dropped connection, a 5xx, conflicts that outlasted their retries. A
/// transient failure is answered `503 unavailable` with `Retry-After` (nothing was left
/// half done: every multi-item change is one transaction), anything else `500`.
#[derive(Debug, thiserror::Error)]
#[error("{}", if *.transient { "the database failed for a moment" } else { "the database refused the call" })]
pub struct StoreFailure {
    pub transient: bool,
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

/// Whether `error` comes from a transient failure of the database.
pub fn is_transient(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<StoreFailure>()
            .is_some_and(|f| f.transient)
    })
}

/// Why a transaction did not happen.
#[derive(Debug, thiserror::Error)]
pub enum TransactError {
    /// At least one condition failed; nothing was written. Every failed write is
    /// listed by its index in the transaction with the item as it stood.
    #[error("a condition of the transaction did not hold")]
    ConditionFailed { failed: Vec<FailedCondition> },
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// One failed condition of a transaction.
#[derive(Clone, Debug, PartialEq)]
pub struct FailedCondition {
    pub index: usize,
    pub current: Option<Item>,
}

impl TransactError {
    /// The failure at `index`, if that write's condition failed.
    pub fn failed_at(&self, index: usize) -> Option<&FailedCondition> {
        match self {
            TransactError::ConditionFailed { failed } => failed.iter().find(|f| f.index == index),
            TransactError::Unexpected(_) => None,
        }
    }
}

/// The most writes one transaction may hold (DynamoDB's limit).
pub const MAX_TRANSACTION_WRITES: usize = 100;

/// The key the health check reads; nothing ever writes it.
pub fn health_key() -> Key {
    Key::new("HEALTH", "HEALTH")
}

/// Refuses a transaction DynamoDB would refuse: empty, over 100 writes, one item
/// touched twice, or any invalid write.
pub fn validate_transaction(writes: &[Write]) -> anyhow::Result<()> {
    if writes.is_empty() || writes.len() > MAX_TRANSACTION_WRITES {
        anyhow::bail!("a transaction holds 1 to 100 writes, not {}", writes.len());
    }
    let keys: BTreeSet<(&str, &str)> = writes.iter().map(Write::key_parts).collect();
    if keys.len() != writes.len() {
        anyhow::bail!("a transaction cannot touch one item twice");
    }
    writes.iter().try_for_each(Write::validate)
}

/// A DynamoDB-shaped store. Every method is one round trip on DynamoDB.
#[async_trait]
pub trait Store: Send + Sync {
    /// Reads one live item (strongly consistent).
    async fn get(&self, key: &Key) -> anyhow::Result<Option<Item>>;

    /// Reads several live items at once, in no particular order; missing ones are
    /// left out.
    async fn get_many(&self, keys: &[Key]) -> anyhow::Result<Vec<Item>>;

    /// Reads one page of a partition.
    async fn query(&self, query: &Query) -> anyhow::Result<Page>;

    /// Performs one conditional write. Returns the item after an update, the item
    /// before a delete (if it was alive), and nothing for a put.
    async fn write(&self, write: Write) -> Result<Option<Item>, WriteError>;

    /// Performs up to [`MAX_TRANSACTION_WRITES`] writes on distinct items atomically:
    /// all or none.
    async fn transact(&self, writes: Vec<Write>) -> Result<(), TransactError>;

    /// Whether the store answers (for the health check): in DynamoDB, one read of [`health_key`], an item that never exists. It needs no
    /// permission beyond the functions' own (DescribeTable would) and costs one read
    /// unit.
    async fn ping(&self) -> anyhow::Result<()>;
}
