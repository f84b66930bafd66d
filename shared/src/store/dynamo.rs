//! The DynamoDB store: the [`Store`] semantics on one table, with the expiry rule folded
//! into every condition so that items past their TTL act as absent long before
//! DynamoDB's sweeper deletes them.
//!
//! How the expiry rule maps onto DynamoDB: a write's condition `C` is evaluated by
//! DynamoDB on the raw stored item, which may be expired. `C.holds_for(None)` tells what
//! `C` says about an absent item; when that is true, an expired item must also pass, so
//! the condition sent is `(alive AND C) OR dead`, otherwise `alive AND C`. Updates cannot
//! pass over an expired item (DynamoDB would merge into its stale attributes), so they
//! exclude it, and when that is the only reason they fail, the expired item is deleted
//! and the update retried on the now truly absent item.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::create_table::CreateTableError;
use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, ConditionCheck, Delete, GlobalSecondaryIndex,
    IndexStatus, KeySchemaElement, KeyType, KeysAndAttributes, Projection, ProjectionType, Put,
    ReturnValue, ReturnValuesOnConditionCheckFailure, ScalarAttributeType, TableStatus,
    TimeToLiveSpecification, TimeToLiveStatus, TransactWriteItem, Update,
};

use super::{
    Change, Cmp, Cond, EXPIRES_AT, FailedCondition, Item, Key, PK, Page, Query, SK, Store,
    StoreFailure, TransactError, Value, Write, WriteError, schema,
};
use crate::clock::Clock;

/// Attempts for a write that keeps meeting concurrent transactions on its item; each
/// retry waits a little longer, with jitter so that the contenders spread out.
const CONFLICT_ATTEMPTS: u32 = 8;
/// Times an update deletes an expired item in its way before giving up; more than one
/// only happens when another writer keeps putting expired items back.
const REVIVAL_ATTEMPTS: u32 = 3;
/// Attempts of one batch read while DynamoDB leaves keys unprocessed.
const BATCH_ATTEMPTS: u32 = 8;
/// Keys per BatchGetItem request (DynamoDB's limit).
const BATCH_GET_KEYS: usize = 100;
/// How many index page positions are remembered (see [`DynamoStore::positions`]).
const REMEMBERED_POSITIONS: usize = 4096;
/// An update needs an expression inside a transaction, and an update without changes
/// must still create a missing item: removing an attribute nobody sets does both.
const NOTHING: &str = "__store_no_such_attribute__";

/// A [`Store`] on one DynamoDB table laid out as [`schema`] describes.
pub struct DynamoStore {
    client: Client,
    table: String,
    clock: Arc<dyn Clock>,
    /// The index sort key of the last item of recent index pages, by (index, table key):
    /// a query resuming after that item needs it in its ExclusiveStartKey, and the item
    /// may be gone by then (a sweep deletes what it pages through).
    positions: Mutex<HashMap<(&'static str, Key), String>>,
}

impl DynamoStore {
    pub fn new(client: Client, table: impl Into<String>, clock: Arc<dyn Clock>) -> Self {
        Self {
            client,
            table: table.into(),
            clock,
            positions: Mutex::new(HashMap::new()),
        }
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// Creates the table with its indexes and TTL unless it exists; for local runs and
    /// tests (the deployed table comes from the infrastructure template).
    pub async fn create_table_if_missing(&self) -> anyhow::Result<()> {
        let mut attributes = BTreeSet::from([PK, SK]);
        for index in schema::INDEXES {
            attributes.insert(index.pk);
            attributes.insert(index.sk);
        }
        let definitions = attributes
            .into_iter()
            .map(|name| {
                AttributeDefinition::builder()
                    .attribute_name(name)
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .context("building an attribute definition")
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let indexes = schema::INDEXES
            .iter()
            .map(|index| {
                GlobalSecondaryIndex::builder()
                    .index_name(index.name)
                    .set_key_schema(Some(key_schema(index.pk, index.sk)?))
                    .projection(
                        Projection::builder()
                            .projection_type(ProjectionType::All)
                            .build(),
                    )
                    .build()
                    .context("building an index definition")
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let created = self
            .client
            .create_table()
            .table_name(&self.table)
            .billing_mode(BillingMode::PayPerRequest)
            .set_attribute_definitions(Some(definitions))
            .set_key_schema(Some(key_schema(PK, SK)?))
            .set_global_secondary_indexes(Some(indexes))
            .send()
            .await;
        if let Err(err) = created {
            let exists = matches!(
                err.as_service_error(),
                Some(CreateTableError::ResourceInUseException(_))
            );
            if !exists {
                return Err(err).with_context(|| format!("CreateTable {}", self.table));
            }
        }
        self.wait_until_active().await?;
        self.enable_ttl().await
    }

    async fn wait_until_active(&self) -> anyhow::Result<()> {
        for _ in 0..600 {
            let described = self
                .client
                .describe_table()
                .table_name(&self.table)
                .send()
                .await
                .with_context(|| format!("DescribeTable {}", self.table))?;
            let active = described.table().is_some_and(|table| {
                table.table_status() == Some(&TableStatus::Active)
                    && table
                        .global_secondary_indexes()
                        .iter()
                        .all(|index| index.index_status() == Some(&IndexStatus::Active))
            });
            if active {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        bail!(
            "table {} did not become active within 5 minutes",
            self.table
        )
    }

    async fn enable_ttl(&self) -> anyhow::Result<()> {
        let described = self
            .client
            .describe_time_to_live()
            .table_name(&self.table)
            .send()
            .await
            .with_context(|| format!("DescribeTimeToLive {}", self.table))?;
        let already = described.time_to_live_description().is_some_and(|ttl| {
            ttl.attribute_name() == Some(EXPIRES_AT)
                && matches!(
                    ttl.time_to_live_status(),
                    Some(TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling)
                )
        });
        if already {
            return Ok(());
        }
        let specification = TimeToLiveSpecification::builder()
            .attribute_name(EXPIRES_AT)
            .enabled(true)
            .build()
            .context("building the TTL specification")?;
        let updated = self
            .client
            .update_time_to_live()
            .table_name(&self.table)
            .time_to_live_specification(specification)
            .send()
            .await;
        match updated {
            Ok(_) => Ok(()),
            // Another process enabling TTL at the same time is success too.
            Err(err)
                if err
                    .as_service_error()
                    .and_then(|e| e.meta().message())
                    .is_some_and(|m| m.contains("already enabled")) =>
            {
                Ok(())
            }
            Err(err) => Err(err).with_context(|| format!("UpdateTimeToLive {}", self.table)),
        }
    }

    async fn put(&self, item: Item, cond: Option<Cond>) -> Result<Option<Item>, WriteError> {
        item.key()
            .ok_or_else(|| anyhow!("a put needs string pk and sk attributes"))?;
        let now = self.clock.now();
        let mut exprs = Placeholders::default();
        let condition = exprs.condition(&guarded(cond.as_ref(), now));
        let attributes = to_attributes(&item);
        for attempt in 1.. {
            let result = self
                .client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(attributes.clone()))
                .set_condition_expression(condition.clone())
                .set_expression_attribute_names(exprs.names())
                .set_expression_attribute_values(exprs.values())
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                )
                .send()
                .await;
            match result {
                Ok(_) => return Ok(None),
                Err(err) => {
                    after_failure(err, attempt, || format!("PutItem on {}", self.table)).await?
                }
            }
        }
        Err(anyhow!("unreachable: the put loop ended").into())
    }

    async fn update(
        &self,
        key: Key,
        changes: Vec<Change>,
        cond: Option<Cond>,
    ) -> Result<Option<Item>, WriteError> {
        let fresh_allowed = cond.as_ref().is_none_or(|c| c.holds_for(None));
        let mut conflicts = 0;
        let mut revivals = 0;
        loop {
            let now = self.clock.now();
            let mut exprs = Placeholders::default();
            let condition = exprs.condition(&update_guard(cond.as_ref(), now));
            let update = exprs.update(&changes);
            let result = self
                .client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(key_attributes(&key)))
                .update_expression(update)
                .set_condition_expression(condition)
                .set_expression_attribute_names(exprs.names())
                .set_expression_attribute_values(exprs.values())
                .return_values(ReturnValue::AllNew)
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                )
                .send()
                .await;
            let err = match result {
                Ok(out) => {
                    let item = match out.attributes() {
                        Some(attributes) => from_attributes(attributes)?,
                        None => Item::new(&key),
                    };
                    return Ok(Some(item));
                }
                Err(err) => err,
            };
            match classify(&err) {
                Failure::Condition(current) => {
                    let current = current.as_ref().map(from_attributes).transpose()?;
                    let expired = current.as_ref().is_some_and(|item| item.is_expired(now));
                    if fresh_allowed && expired && revivals < REVIVAL_ATTEMPTS {
                        revivals += 1;
                        self.delete_expired(&key, now).await?;
                        continue;
                    }
                    if cond.is_none() {
                        return Err(anyhow!(
                            "UpdateItem {key:?} on {}: an expired item kept coming back",
                            self.table
                        )
                        .into());
                    }
                    return Err(WriteError::ConditionFailed { current });
                }
                Failure::Conflict if conflicts < CONFLICT_ATTEMPTS => {
                    conflicts += 1;
                    backoff(conflicts).await;
                }
                _ => {
                    return Err(
                        sdk_failure(err, format!("UpdateItem {key:?} on {}", self.table)).into(),
                    );
                }
            }
        }
    }

    async fn delete(&self, key: Key, cond: Option<Cond>) -> Result<Option<Item>, WriteError> {
        let now = self.clock.now();
        let mut exprs = Placeholders::default();
        let condition = exprs.condition(&guarded(cond.as_ref(), now));
        for attempt in 1.. {
            let result = self
                .client
                .delete_item()
                .table_name(&self.table)
                .set_key(Some(key_attributes(&key)))
                .set_condition_expression(condition.clone())
                .set_expression_attribute_names(exprs.names())
                .set_expression_attribute_values(exprs.values())
                .return_values(ReturnValue::AllOld)
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                )
                .send()
                .await;
            match result {
                Ok(out) => {
                    let old = out.attributes().map(from_attributes).transpose()?;
                    return Ok(old.filter(|item| !item.is_expired(now)));
                }
                Err(err) => {
                    let what = || format!("DeleteItem {key:?} on {}", self.table);
                    after_failure(err, attempt, what).await?
                }
            }
        }
        Err(anyhow!("unreachable: the delete loop ended").into())
    }

    /// Deletes the item if it is expired at `now`; losing a race to another writer is
    /// fine, the caller re-evaluates its own condition anyway.
    async fn delete_expired(&self, key: &Key, now: i64) -> anyhow::Result<()> {
        let mut exprs = Placeholders::default();
        let condition = exprs.condition(&expired(now));
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key_attributes(key)))
            .set_condition_expression(condition)
            .set_expression_attribute_names(exprs.names())
            .set_expression_attribute_values(exprs.values())
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(err)
                if matches!(
                    err.as_service_error(),
                    Some(
                        DeleteItemError::ConditionalCheckFailedException(_)
                            | DeleteItemError::TransactionConflictException(_)
                    )
                ) =>
            {
                Ok(())
            }
            Err(err) => Err(sdk_failure(
                err,
                format!("DeleteItem of expired {key:?} on {}", self.table),
            )),
        }
    }

    fn transact_item(&self, write: &Write, now: i64) -> anyhow::Result<TransactWriteItem> {
        let mut exprs = Placeholders::default();
        let built = match write {
            Write::Put { item, cond } => {
                let condition = exprs.condition(&guarded(cond.as_ref(), now));
                TransactWriteItem::builder().put(
                    Put::builder()
                        .table_name(&self.table)
                        .set_item(Some(to_attributes(item)))
                        .set_condition_expression(condition)
                        .set_expression_attribute_names(exprs.names())
                        .set_expression_attribute_values(exprs.values())
                        .return_values_on_condition_check_failure(
                            ReturnValuesOnConditionCheckFailure::AllOld,
                        )
                        .build()
                        .context("building a transaction put")?,
                )
            }
            Write::Update { key, changes, cond } => {
                let condition = exprs.condition(&update_guard(cond.as_ref(), now));
                let update = exprs.update(changes);
                TransactWriteItem::builder().update(
                    Update::builder()
                        .table_name(&self.table)
                        .set_key(Some(key_attributes(key)))
                        .update_expression(update)
                        .set_condition_expression(condition)
                        .set_expression_attribute_names(exprs.names())
                        .set_expression_attribute_values(exprs.values())
                        .return_values_on_condition_check_failure(
                            ReturnValuesOnConditionCheckFailure::AllOld,
                        )
                        .build()
                        .context("building a transaction update")?,
                )
            }
            Write::Delete { key, cond } => {
                let condition = exprs.condition(&guarded(cond.as_ref(), now));
                TransactWriteItem::builder().delete(
                    Delete::builder()
                        .table_name(&self.table)
                        .set_key(Some(key_attributes(key)))
                        .set_condition_expression(condition)
                        .set_expression_attribute_names(exprs.names())
                        .set_expression_attribute_values(exprs.values())
                        .return_values_on_condition_check_failure(
                            ReturnValuesOnConditionCheckFailure::AllOld,
                        )
                        .build()
                        .context("building a transaction delete")?,
                )
            }
            Write::Check { key, cond } => {
                // A check always needs an expression; one that holds for every item is
                // rendered as `alive OR dead`, which DynamoDB accepts.
                let condition = exprs
                    .condition(&guarded(Some(cond), now))
                    .unwrap_or_else(|| exprs.render(&or([alive(now), dead(now)])));
                TransactWriteItem::builder().condition_check(
                    ConditionCheck::builder()
                        .table_name(&self.table)
                        .set_key(Some(key_attributes(key)))
                        .condition_expression(condition)
                        .set_expression_attribute_names(exprs.names())
                        .set_expression_attribute_values(exprs.values())
                        .return_values_on_condition_check_failure(
                            ReturnValuesOnConditionCheckFailure::AllOld,
                        )
                        .build()
                        .context("building a transaction condition check")?,
                )
            }
        };
        Ok(built.build())
    }

    /// The ExclusiveStartKey that resumes `query` after `after`; `None` starts over,
    /// which is what the in-memory store does when the item is no longer in the results.
    async fn start_key(
        &self,
        query: &Query,
        index: Option<&'static schema::Index>,
        after: &Key,
    ) -> anyhow::Result<Option<HashMap<String, AttributeValue>>> {
        if !storable(after) {
            return Ok(None);
        }
        let mut start = key_attributes(after);
        let Some(index) = index else {
            return Ok((after.pk == query.pk).then_some(start));
        };
        let remembered = self
            .positions
            .lock()
            .ok()
            .and_then(|positions| positions.get(&(index.name, after.clone())).cloned());
        let index_sk = match remembered {
            Some(sk) => Some(sk),
            None => {
                // Another process served the previous page: the item tells its position.
                let stored = self
                    .client
                    .get_item()
                    .table_name(&self.table)
                    .set_key(Some(key_attributes(after)))
                    .consistent_read(true)
                    .send()
                    .await
                    .map_err(|err| {
                        sdk_failure(err, format!("GetItem {after:?} on {}", self.table))
                    })?;
                let item = stored.item().map(from_attributes).transpose()?;
                item.filter(|item| item.s(index.pk) == Some(query.pk.as_str()))
                    .and_then(|item| item.s(index.sk).map(str::to_owned))
            }
        };
        Ok(index_sk.map(|sk| {
            start.insert(index.pk.to_owned(), AttributeValue::S(query.pk.clone()));
            start.insert(index.sk.to_owned(), AttributeValue::S(sk));
            start
        }))
    }

    fn remember_position(&self, index: &'static schema::Index, item: &Item) {
        let (Some(key), Some(sk)) = (item.key(), item.s(index.sk)) else {
            return;
        };
        if let Ok(mut positions) = self.positions.lock() {
            if positions.len() >= REMEMBERED_POSITIONS {
                positions.clear();
            }
            positions.insert((index.name, key), sk.to_owned());
        }
    }
}

#[async_trait]
impl Store for DynamoStore {
    async fn get(&self, key: &Key) -> anyhow::Result<Option<Item>> {
        if !storable(key) {
            return Ok(None);
        }
        let now = self.clock.now();
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key_attributes(key)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|err| sdk_failure(err, format!("GetItem {key:?} on {}", self.table)))?;
        let item = out.item().map(from_attributes).transpose()?;
        Ok(item.filter(|item| !item.is_expired(now)))
    }

    async fn get_many(&self, keys: &[Key]) -> anyhow::Result<Vec<Item>> {
        let now = self.clock.now();
        // BatchGetItem rejects duplicate keys; the answer is rebuilt per requested key.
        let unique: Vec<&Key> = keys
            .iter()
            .filter(|key| storable(key))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let mut found: HashMap<Key, Item> = HashMap::new();
        for chunk in unique.chunks(BATCH_GET_KEYS) {
            let mut pending: Vec<HashMap<String, AttributeValue>> =
                chunk.iter().map(|key| key_attributes(key)).collect();
            let mut attempt = 0;
            while !pending.is_empty() {
                let request = KeysAndAttributes::builder()
                    .set_keys(Some(pending))
                    .consistent_read(true)
                    .build()
                    .context("building a batch read")?;
                let out = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, request)
                    .send()
                    .await
                    .map_err(|err| sdk_failure(err, format!("BatchGetItem on {}", self.table)))?;
                let read = out
                    .responses()
                    .and_then(|responses| responses.get(&self.table))
                    .map(Vec::as_slice)
                    .unwrap_or_default();
                for attributes in read {
                    let item = from_attributes(attributes)?;
                    if let Some(key) = item.key().filter(|_| !item.is_expired(now)) {
                        found.insert(key, item);
                    }
                }
                pending = out
                    .unprocessed_keys()
                    .and_then(|unprocessed| unprocessed.get(&self.table))
                    .map(|request| request.keys().to_vec())
                    .unwrap_or_default();
                if !pending.is_empty() {
                    attempt += 1;
                    if attempt >= BATCH_ATTEMPTS {
                        bail!(
                            "BatchGetItem on {}: {} keys still unprocessed after {attempt} attempts",
                            self.table,
                            pending.len()
                        );
                    }
                    backoff(attempt).await;
                }
            }
        }
        Ok(keys
            .iter()
            .filter_map(|key| found.get(key).cloned())
            .collect())
    }

    async fn query(&self, query: &Query) -> anyhow::Result<Page> {
        query.check_size()?;
        if query.limit == 0 || query.pk.is_empty() {
            return Ok(Page::default());
        }
        let now = self.clock.now();
        let index = match query.index {
            None => None,
            Some(name) => {
                Some(schema::index(name).ok_or_else(|| anyhow!("no index named {name}"))?)
            }
        };
        let (pk_attr, sk_attr) = index.map_or((PK, SK), |index| (index.pk, index.sk));

        let mut exprs = Placeholders::default();
        let pk_name = exprs.name(pk_attr);
        let pk_value = exprs.value(AttributeValue::S(query.pk.clone()));
        let mut key_condition = format!("{pk_name} = {pk_value}");
        let sk_range = match (query.sk_prefix.as_deref(), query.sk_at_most.as_deref()) {
            (None, None) => None,
            (Some(prefix), None) => Some(SkRange::Prefix(prefix)),
            (None, Some(max)) => Some(SkRange::AtMost(max)),
            // Both bounds fit one key condition: every string with the prefix sorts
            // after the prefix, and before `max` unless `max` itself has the prefix.
            (Some(prefix), Some(max)) if max < prefix => return Ok(Page::default()),
            (Some(prefix), Some(max)) if max.starts_with(prefix) => {
                Some(SkRange::Between(prefix, max))
            }
            (Some(prefix), Some(_)) => Some(SkRange::Prefix(prefix)),
        };
        if let Some(range) = sk_range {
            let sk_name = exprs.name(sk_attr);
            let condition = match range {
                SkRange::Prefix(prefix) => {
                    let prefix = exprs.value(AttributeValue::S(prefix.to_owned()));
                    format!("begins_with({sk_name}, {prefix})")
                }
                SkRange::AtMost(max) => {
                    let max = exprs.value(AttributeValue::S(max.to_owned()));
                    format!("{sk_name} <= {max}")
                }
                SkRange::Between(low, high) => {
                    let low = exprs.value(AttributeValue::S(low.to_owned()));
                    let high = exprs.value(AttributeValue::S(high.to_owned()));
                    format!("{sk_name} BETWEEN {low} AND {high}")
                }
            };
            key_condition = format!("{key_condition} AND {condition}");
        }
        let filter = (!query.include_expired).then(|| exprs.render(&not(expired(now))));

        let mut start = match &query.start_after {
            Some(after) => self.start_key(query, index, after).await?,
            None => None,
        };
        let mut items: Vec<Item> = Vec::new();
        let mut more = false;
        loop {
            // One item beyond the page tells whether another page follows, so `next`
            // is only set when there is more, as in the in-memory store.
            let wanted = query.limit - items.len() + 1;
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .set_index_name(query.index.map(str::to_owned))
                .key_condition_expression(&key_condition)
                .set_filter_expression(filter.clone())
                .set_expression_attribute_names(exprs.names())
                .set_expression_attribute_values(exprs.values())
                .scan_index_forward(query.ascending)
                // Secondary indexes only read eventually consistently.
                .consistent_read(index.is_none())
                .limit(i32::try_from(wanted).unwrap_or(i32::MAX))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|err| {
                    let call = format!(
                        "Query {} on {}",
                        crate::redact::key_part(&query.pk),
                        self.table
                    );
                    sdk_failure(err, call)
                })?;
            for attributes in out.items() {
                let item = from_attributes(attributes)?;
                if item.is_expired(now) && !query.include_expired {
                    continue;
                }
                if items.len() == query.limit {
                    more = true;
                    break;
                }
                items.push(item);
            }
            match out.last_evaluated_key() {
                Some(last) if !more => start = Some(last.clone()),
                _ => break,
            }
        }
        let next = if more {
            items.last().and_then(Item::key)
        } else {
            None
        };
        if let (Some(index), true, Some(last)) = (index, more, items.last()) {
            self.remember_position(index, last);
        }
        Ok(Page { items, next })
    }

    async fn write(&self, write: Write) -> Result<Option<Item>, WriteError> {
        write.validate()?;
        match write {
            Write::Put { item, cond } => self.put(item, cond).await,
            Write::Update { key, changes, cond } => self.update(key, changes, cond).await,
            Write::Delete { key, cond } => self.delete(key, cond).await,
            Write::Check { .. } => {
                Err(anyhow!("a condition check is only allowed in a transaction").into())
            }
        }
    }

    async fn transact(&self, writes: Vec<Write>) -> Result<(), TransactError> {
        super::validate_transaction(&writes)?;
        let mut conflicts = 0;
        let mut revivals = 0;
        loop {
            let now = self.clock.now();
            let items = writes
                .iter()
                .map(|write| self.transact_item(write, now))
                .collect::<anyhow::Result<Vec<_>>>()?;
            // The SDK fills ClientRequestToken (an idempotency token in the service's
            // model) once per call, so its own retries of a transaction DynamoDB applied
            // but whose answer was lost are not refused by their own conditions
            // (tests/tests/faults.rs). Each pass of this loop is a new call, a new token.
            let result = self
                .client
                .transact_write_items()
                .set_transact_items(Some(items))
                .send()
                .await;
            let err = match result {
                Ok(_) => return Ok(()),
                Err(err) => err,
            };
            let reasons: Option<Vec<(Option<String>, Option<HashMap<String, AttributeValue>>)>> =
                match err.as_service_error() {
                    Some(TransactWriteItemsError::TransactionCanceledException(e)) => Some(
                        e.cancellation_reasons()
                            .iter()
                            .map(|reason| {
                                (reason.code().map(str::to_owned), reason.item().cloned())
                            })
                            .collect(),
                    ),
                    _ => None,
                };
            let Some(reasons) = reasons else {
                return Err(
                    sdk_failure(err, format!("TransactWriteItems on {}", self.table)).into(),
                );
            };
            let mut failed = Vec::new();
            let mut expired_in_the_way = Vec::new();
            let mut conflict = false;
            let mut other = Vec::new();
            for (index, (code, current)) in reasons.into_iter().enumerate() {
                match code.as_deref() {
                    None | Some("None") => {}
                    Some("ConditionalCheckFailed") => {
                        let current = current.as_ref().map(from_attributes).transpose()?;
                        let write = writes.get(index).ok_or_else(|| {
                            anyhow!(
                                "TransactWriteItems reported a failure at {index}, past the end"
                            )
                        })?;
                        let expired = current.as_ref().is_some_and(|item| item.is_expired(now));
                        if expired && update_starts_fresh(write) {
                            expired_in_the_way.push(write.key());
                        } else {
                            failed.push(FailedCondition { index, current });
                        }
                    }
                    Some("TransactionConflict") => conflict = true,
                    Some(code) => other.push(format!("{index}: {code}")),
                }
            }
            if !failed.is_empty() {
                return Err(TransactError::ConditionFailed { failed });
            }
            if !other.is_empty() {
                // Throttling of one of the items passes; a validation error does not.
                let transient = other.iter().all(|reason| {
                    reason.ends_with(": ThrottlingError")
                        || reason.ends_with(": ProvisionedThroughputExceeded")
                        || reason.ends_with(": TransactionConflict")
                });
                let call = format!(
                    "TransactWriteItems on {} cancelled: {}",
                    self.table,
                    other.join(", ")
                );
                return Err(failure(err, transient, call).into());
            }
            if !expired_in_the_way.is_empty() && revivals < REVIVAL_ATTEMPTS {
                revivals += 1;
                for key in &expired_in_the_way {
                    self.delete_expired(key, now).await?;
                }
                continue;
            }
            if conflict && conflicts < CONFLICT_ATTEMPTS {
                conflicts += 1;
                backoff(conflicts).await;
                continue;
            }
            let call = format!(
                "TransactWriteItems on {}: gave up after {conflicts} conflicts and {revivals} expired items",
                self.table
            );
            return Err(failure(err, true, call).into());
        }
    }

    async fn ping(&self) -> anyhow::Result<()> {
        self.get(&super::health_key()).await.map(drop)
    }
}

/// A failed SDK call as the store reports it: a [`StoreFailure`], transient when the
/// SDK's own retries could not get past a timeout, a dropped connection, throttling or a
/// 5xx, with the call named on top.
fn sdk_failure<E>(err: SdkError<E, HttpResponse>, call: String) -> anyhow::Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let transient = match &err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            true
        }
        SdkError::ServiceError(service) => {
            service.raw().status().is_server_error()
                || matches!(
                    err.code(),
                    Some(
                        "ThrottlingException"
                            | "ProvisionedThroughputExceededException"
                            | "RequestLimitExceeded"
                            | "TransactionConflictException"
                            | "TransactionInProgressException"
                            | "InternalServerError"
                            | "ServiceUnavailable"
                    )
                )
        }
        _ => false,
    };
    failure(err, transient, call)
}

fn failure<E>(err: E, transient: bool, call: String) -> anyhow::Error
where
    E: std::error::Error + Send + Sync + 'static,
{
    anyhow::Error::new(StoreFailure {
        transient,
        source: Box::new(err),
    })
    .context(call)
}

/// How one failed single write should go on.
enum Failure {
    Condition(Option<HashMap<String, AttributeValue>>),
    Conflict,
    Other,
}

/// The single-write errors that can report a failed condition or a conflict with a
/// transaction in flight.
trait ConditionalWriteError {
    fn failure(&self) -> Failure;
}

macro_rules! conditional_write_errors {
    ($($error:ty),*) => {$(
        impl ConditionalWriteError for $error {
            fn failure(&self) -> Failure {
                match self {
                    Self::ConditionalCheckFailedException(e) => Failure::Condition(e.item().cloned()),
                    Self::TransactionConflictException(_) => Failure::Conflict,
                    _ => Failure::Other,
                }
            }
        }
    )*};
}

conditional_write_errors!(PutItemError, UpdateItemError, DeleteItemError);

fn classify<E: ConditionalWriteError, R>(err: &SdkError<E, R>) -> Failure {
    err.as_service_error().map_or(Failure::Other, E::failure)
}

/// What a failed single write does next: `Ok` after waiting out a conflict (retry),
/// `Err` for a failed condition or anything else.
async fn after_failure<E>(
    err: SdkError<E, HttpResponse>,
    attempt: u32,
    what: impl FnOnce() -> String,
) -> Result<(), WriteError>
where
    E: ConditionalWriteError + ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match classify(&err) {
        Failure::Condition(current) => Err(condition_failed(current)?),
        Failure::Conflict if attempt < CONFLICT_ATTEMPTS => {
            backoff(attempt).await;
            Ok(())
        }
        _ => Err(sdk_failure(err, what()).into()),
    }
}

enum SkRange<'a> {
    Prefix(&'a str),
    AtMost(&'a str),
    Between(&'a str, &'a str),
}

fn condition_failed(
    current: Option<HashMap<String, AttributeValue>>,
) -> anyhow::Result<WriteError> {
    let current = current.as_ref().map(from_attributes).transpose()?;
    Ok(WriteError::ConditionFailed { current })
}

/// DynamoDB rejects empty key strings in requests, so no stored item has one: reads of
/// such keys find nothing without asking.
fn storable(key: &Key) -> bool {
    !key.pk.is_empty() && !key.sk.is_empty()
}

/// Whether an update replaces an expired item by a fresh one (see the module docs).
fn update_starts_fresh(write: &Write) -> bool {
    match write {
        Write::Update { cond, .. } => cond.as_ref().is_none_or(|c| c.holds_for(None)),
        _ => false,
    }
}

/// Waits before retry `attempt` (from 1): exponential from 20 ms, capped, jittered.
async fn backoff(attempt: u32) {
    let ceiling = 20u64.saturating_mul(1 << attempt.min(5)).min(640);
    let jitter = u64::from(getrandom::u32().unwrap_or(0)) % ceiling.max(1);
    tokio::time::sleep(Duration::from_millis(ceiling / 2 + jitter / 2)).await;
}

fn key_schema(hash: &str, range: &str) -> anyhow::Result<Vec<KeySchemaElement>> {
    Ok(vec![
        KeySchemaElement::builder()
            .attribute_name(hash)
            .key_type(KeyType::Hash)
            .build()
            .context("building a hash key")?,
        KeySchemaElement::builder()
            .attribute_name(range)
            .key_type(KeyType::Range)
            .build()
            .context("building a range key")?,
    ])
}

// ---- values ------------------------------------------------------------------------

fn to_attribute(value: &Value) -> AttributeValue {
    match value {
        Value::S(s) => AttributeValue::S(s.clone()),
        Value::N(n) => AttributeValue::N(n.to_string()),
        Value::B(b) => AttributeValue::B(Blob::new(b.clone())),
        Value::Bool(b) => AttributeValue::Bool(*b),
        Value::Ss(set) => AttributeValue::Ss(set.iter().cloned().collect()),
    }
}

fn from_attribute(name: &str, value: &AttributeValue) -> anyhow::Result<Value> {
    Ok(match value {
        AttributeValue::S(s) => Value::S(s.clone()),
        AttributeValue::N(n) => Value::N(
            n.parse()
                .with_context(|| format!("attribute {name}: {n} is not a 64-bit integer"))?,
        ),
        AttributeValue::B(b) => Value::B(b.as_ref().to_vec()),
        AttributeValue::Bool(b) => Value::Bool(*b),
        AttributeValue::Ss(set) => Value::Ss(set.iter().cloned().collect()),
        other => bail!("attribute {name} has a type this store does not use: {other:?}"),
    })
}

fn to_attributes(item: &Item) -> HashMap<String, AttributeValue> {
    item.0
        .iter()
        .map(|(name, value)| (name.clone(), to_attribute(value)))
        .collect()
}

fn from_attributes(attributes: &HashMap<String, AttributeValue>) -> anyhow::Result<Item> {
    let values = attributes
        .iter()
        .map(|(name, value)| Ok((name.clone(), from_attribute(name, value)?)))
        .collect::<anyhow::Result<BTreeMap<_, _>>>()?;
    Ok(Item(values))
}

fn key_attributes(key: &Key) -> HashMap<String, AttributeValue> {
    HashMap::from([
        (PK.to_owned(), AttributeValue::S(key.pk.clone())),
        (SK.to_owned(), AttributeValue::S(key.sk.clone())),
    ])
}

// ---- condition expressions -----------------------------------------------------------

/// A condition expression before rendering; constants fold away so that no placeholder
/// is generated for a part that then disappears (DynamoDB rejects unused ones).
#[derive(Clone, Debug)]
enum Expr {
    True,
    False,
    Exists(String),
    Absent(String),
    TypeIs(String, &'static str),
    Compare(String, &'static str, AttributeValue),
    Contains(String, String),
    And(Vec<Expr>),
    Or(Vec<Expr>),
    Not(Box<Expr>),
}

fn and(parts: impl IntoIterator<Item = Expr>) -> Expr {
    let mut all = Vec::new();
    for part in parts {
        match part {
            Expr::True => {}
            Expr::False => return Expr::False,
            Expr::And(inner) => all.extend(inner),
            other => all.push(other),
        }
    }
    match all.len() {
        0 => Expr::True,
        1 => all.pop().unwrap_or(Expr::True),
        _ => Expr::And(all),
    }
}

fn or(parts: impl IntoIterator<Item = Expr>) -> Expr {
    let mut any = Vec::new();
    for part in parts {
        match part {
            Expr::False => {}
            Expr::True => return Expr::True,
            Expr::Or(inner) => any.extend(inner),
            other => any.push(other),
        }
    }
    match any.len() {
        0 => Expr::False,
        1 => any.pop().unwrap_or(Expr::False),
        _ => Expr::Or(any),
    }
}

fn not(expr: Expr) -> Expr {
    match expr {
        Expr::True => Expr::False,
        Expr::False => Expr::True,
        Expr::Not(inner) => *inner,
        other => Expr::Not(Box::new(other)),
    }
}

/// `C` evaluated on an item known to exist and be alive (the callers guard with
/// [`alive`]); that is why the item-level tests are constants here.
fn translate(cond: &Cond) -> Expr {
    match cond {
        Cond::ItemExists => Expr::True,
        Cond::ItemAbsent => Expr::False,
        Cond::AttrExists(attr) => Expr::Exists(attr.clone()),
        Cond::AttrAbsent(attr) => Expr::Absent(attr.clone()),
        Cond::Cmp(attr, op, value) => compare(attr, *op, value),
        // `contains` also matches substrings of strings; the store's rule is sets only.
        Cond::Contains(attr, member) => and([
            Expr::TypeIs(attr.clone(), "SS"),
            Expr::Contains(attr.clone(), member.clone()),
        ]),
        Cond::And(all) => and(all.iter().map(translate)),
        Cond::Or(any) => or(any.iter().map(translate)),
        Cond::Not(inner) => not(translate(inner)),
    }
}

/// The store's comparison rule (see `compare` in the parent module) in DynamoDB terms:
/// guards make a missing attribute or another type false without relying on how
/// DynamoDB treats mixed types.
fn compare(attr: &str, op: Cmp, value: &Value) -> Expr {
    let operator = match op {
        Cmp::Eq => "=",
        Cmp::Ne => "<>",
        Cmp::Lt => "<",
        Cmp::Le => "<=",
        Cmp::Gt => ">",
        Cmp::Ge => ">=",
    };
    let compared = Expr::Compare(attr.to_owned(), operator, to_attribute(value));
    match op {
        Cmp::Eq => compared,
        Cmp::Ne => and([Expr::Exists(attr.to_owned()), compared]),
        Cmp::Lt | Cmp::Le | Cmp::Gt | Cmp::Ge => {
            let type_name = match value {
                Value::S(_) => "S",
                Value::N(_) => "N",
                Value::B(_) => "B",
                // Booleans and sets do not order: such a comparison never holds.
                Value::Bool(_) | Value::Ss(_) => return Expr::False,
            };
            and([Expr::TypeIs(attr.to_owned(), type_name), compared])
        }
    }
}

/// The stored item is past its TTL (exactly [`Item::is_expired`]).
fn expired(now: i64) -> Expr {
    compare(EXPIRES_AT, Cmp::Le, &Value::N(now))
}

fn alive(now: i64) -> Expr {
    and([Expr::Exists(PK.to_owned()), not(expired(now))])
}

fn dead(now: i64) -> Expr {
    or([Expr::Absent(PK.to_owned()), expired(now)])
}

/// The condition for a put, delete or check with the expiry rule folded in.
fn guarded(cond: Option<&Cond>, now: i64) -> Expr {
    let Some(cond) = cond else {
        return Expr::True;
    };
    let on_alive = and([alive(now), translate(cond)]);
    if cond.holds_for(None) {
        or([on_alive, dead(now)])
    } else {
        on_alive
    }
}

/// The condition for an update: like [`guarded`], except that an expired item never
/// passes, because the update would merge into it; the caller deletes it and retries.
fn update_guard(cond: Option<&Cond>, now: i64) -> Expr {
    let on_alive = and([alive(now), cond.map_or(Expr::True, translate)]);
    if cond.is_none_or(|c| c.holds_for(None)) {
        or([on_alive, Expr::Absent(PK.to_owned())])
    } else {
        on_alive
    }
}

/// Expression attribute names and values of one request, numbered as they are needed.
#[derive(Default)]
struct Placeholders {
    names: HashMap<String, String>,
    by_attr: HashMap<String, String>,
    values: HashMap<String, AttributeValue>,
}

impl Placeholders {
    fn name(&mut self, attr: &str) -> String {
        if let Some(placeholder) = self.by_attr.get(attr) {
            return placeholder.clone();
        }
        let placeholder = format!("#a{}", self.by_attr.len());
        self.by_attr.insert(attr.to_owned(), placeholder.clone());
        self.names.insert(placeholder.clone(), attr.to_owned());
        placeholder
    }

    fn value(&mut self, value: AttributeValue) -> String {
        let placeholder = format!(":v{}", self.values.len());
        self.values.insert(placeholder.clone(), value);
        placeholder
    }

    fn names(&self) -> Option<HashMap<String, String>> {
        (!self.names.is_empty()).then(|| self.names.clone())
    }

    fn values(&self) -> Option<HashMap<String, AttributeValue>> {
        (!self.values.is_empty()).then(|| self.values.clone())
    }

    /// The ConditionExpression, or `None` when the condition always holds.
    fn condition(&mut self, expr: &Expr) -> Option<String> {
        match expr {
            Expr::True => None,
            // DynamoDB has no literals: spell "never" with a contradiction.
            Expr::False => Some(self.render(&Expr::And(vec![
                Expr::Exists(PK.to_owned()),
                Expr::Absent(PK.to_owned()),
            ]))),
            other => Some(self.render(other)),
        }
    }

    fn render(&mut self, expr: &Expr) -> String {
        match expr {
            // Folding leaves constants only at the top, where `condition` handles them;
            // these arms only keep `render` total.
            Expr::True => self.render(&or([
                Expr::Exists(PK.to_owned()),
                Expr::Absent(PK.to_owned()),
            ])),
            Expr::False => self.render(&Expr::And(vec![
                Expr::Exists(PK.to_owned()),
                Expr::Absent(PK.to_owned()),
            ])),
            Expr::Exists(attr) => format!("attribute_exists({})", self.name(attr)),
            Expr::Absent(attr) => format!("attribute_not_exists({})", self.name(attr)),
            Expr::TypeIs(attr, type_name) => {
                let name = self.name(attr);
                let type_name = self.value(AttributeValue::S((*type_name).to_owned()));
                format!("attribute_type({name}, {type_name})")
            }
            Expr::Compare(attr, operator, value) => {
                let name = self.name(attr);
                let value = self.value(value.clone());
                format!("{name} {operator} {value}")
            }
            Expr::Contains(attr, member) => {
                let name = self.name(attr);
                let member = self.value(AttributeValue::S(member.clone()));
                format!("contains({name}, {member})")
            }
            Expr::And(all) => self.join(all, " AND "),
            Expr::Or(any) => self.join(any, " OR "),
            Expr::Not(inner) => format!("(NOT {})", self.render(inner)),
        }
    }

    fn join(&mut self, parts: &[Expr], separator: &str) -> String {
        let rendered: Vec<String> = parts.iter().map(|part| self.render(part)).collect();
        format!("({})", rendered.join(separator))
    }

    /// The UpdateExpression for `changes`.
    fn update(&mut self, changes: &[Change]) -> String {
        let mut set = Vec::new();
        let mut add = Vec::new();
        let mut remove = Vec::new();
        let mut delete = Vec::new();
        for change in changes {
            match change {
                Change::Set(attr, value) => {
                    let name = self.name(attr);
                    let value = self.value(to_attribute(value));
                    set.push(format!("{name} = {value}"));
                }
                Change::SetIfAbsent(attr, value) => {
                    let name = self.name(attr);
                    let value = self.value(to_attribute(value));
                    set.push(format!("{name} = if_not_exists({name}, {value})"));
                }
                Change::Add(attr, by) => {
                    let name = self.name(attr);
                    let by = self.value(AttributeValue::N(by.to_string()));
                    add.push(format!("{name} {by}"));
                }
                Change::Remove(attr) => remove.push(self.name(attr)),
                Change::DeleteFromSet(attr, members) => {
                    let name = self.name(attr);
                    let members = self.value(to_attribute(&Value::Ss(members.clone())));
                    delete.push(format!("{name} {members}"));
                }
            }
        }
        if changes.is_empty() {
            remove.push(self.name(NOTHING));
        }
        let mut clauses = Vec::new();
        for (keyword, parts) in [
            ("SET", set),
            ("ADD", add),
            ("REMOVE", remove),
            ("DELETE", delete),
        ] {
            if !parts.is_empty() {
                clauses.push(format!("{keyword} {}", parts.join(", ")));
            }
        }
        clauses.join(" ")
    }
}

// ---- round-trip counting -------------------------------------------------------------

/// Counts the requests a client sends, by operation name, so that tests can hold each
/// flow to a round-trip budget. Every HTTP attempt counts, SDK retries included.
#[derive(Debug, Default)]
pub struct CallCounter {
    calls: Mutex<BTreeMap<String, usize>>,
}

impl CallCounter {
    pub fn new() -> Arc<CallCounter> {
        Arc::new(CallCounter::default())
    }

    /// Requests so far by operation name (`GetItem`, `TransactWriteItems`, ...).
    pub fn snapshot(&self) -> BTreeMap<String, usize> {
        self.calls
            .lock()
            .map(|calls| calls.clone())
            .unwrap_or_default()
    }

    pub fn total(&self) -> usize {
        self.snapshot().values().sum()
    }

    pub fn reset(&self) {
        if let Ok(mut calls) = self.calls.lock() {
            calls.clear();
        }
    }

    fn record(&self, operation: &str) {
        if let Ok(mut calls) = self.calls.lock() {
            *calls.entry(operation.to_owned()).or_default() += 1;
        }
    }

    /// The SDK interceptor that feeds this counter, for a client built by hand.
    pub fn interceptor(self: &Arc<Self>) -> CountingInterceptor {
        CountingInterceptor(Arc::clone(self))
    }
}

/// See [`CallCounter::interceptor`].
#[derive(Clone, Debug)]
pub struct CountingInterceptor(Arc<CallCounter>);

impl Intercept for CountingInterceptor {
    fn name(&self) -> &'static str {
        "CallCounter"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        // DynamoDB's JSON protocol names the operation in this header
        // ("DynamoDB_20120810.GetItem"); it is there on every attempt.
        let operation = context
            .request()
            .headers()
            .get("x-amz-target")
            .and_then(|target| target.rsplit('.').next())
            .unwrap_or("unknown");
        self.0.record(operation);
        Ok(())
    }
}

/// A DynamoDB client for `sdk_config` whose requests are counted.
pub fn client_with_counter(sdk_config: &aws_types::SdkConfig) -> (Client, Arc<CallCounter>) {
    client_with_counter_at(sdk_config, None)
}

/// [`client_with_counter`] talking to `endpoint` when given (a relay in front of
/// DynamoDB Local, in the fault tests), whatever the environment says.
pub fn client_with_counter_at(
    sdk_config: &aws_types::SdkConfig,
    endpoint: Option<&str>,
) -> (Client, Arc<CallCounter>) {
    let counter = CallCounter::new();
    let mut config =
        aws_sdk_dynamodb::config::Builder::from(sdk_config).interceptor(counter.interceptor());
    if let Some(endpoint) = endpoint {
        config = config.endpoint_url(endpoint);
    }
    (Client::from_conf(config.build()), counter)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rendered(expr: &Expr) -> (Option<String>, usize, usize) {
        let mut exprs = Placeholders::default();
        let text = exprs.condition(expr);
        (text, exprs.names.len(), exprs.values.len())
    }

    #[test]
    fn a_put_if_absent_only_asks_for_a_dead_item() {
        let (text, _, _) = rendered(&guarded(Some(&Cond::ItemAbsent), 100));
        assert_eq!(
            text.as_deref(),
            Some("(attribute_not_exists(#a0) OR (attribute_type(#a1, :v0) AND #a1 <= :v1))")
        );
    }

    #[test]
    fn a_write_without_condition_sends_none() {
        assert_eq!(rendered(&guarded(None, 100)).0, None);
    }

    #[test]
    fn an_unconditional_update_excludes_only_expired_items() {
        let (text, names, values) = rendered(&update_guard(None, 100));
        assert_eq!(
            text.as_deref(),
            Some(
                "((attribute_exists(#a0) AND (NOT (attribute_type(#a1, :v0) AND #a1 <= :v1))) \
                 OR attribute_not_exists(#a0))"
            )
        );
        assert_eq!((names, values), (2, 2));
    }

    #[test]
    fn a_condition_that_never_holds_is_still_an_expression() {
        let never = Cond::lt("flag", true);
        let (text, _, _) = rendered(&guarded(Some(&never), 100));
        assert_eq!(
            text.as_deref(),
            Some("(attribute_exists(#a0) AND attribute_not_exists(#a0))")
        );
    }

    #[test]
    fn update_expressions_group_changes_by_clause() {
        let mut exprs = Placeholders::default();
        let text = exprs.update(&[
            Change::set("a", 1),
            Change::add("n", 2),
            Change::remove("r"),
            Change::set_if_absent("b", "x"),
            Change::delete_from_set("s", "m"),
        ]);
        assert_eq!(
            text,
            "SET #a0 = :v0, #a3 = if_not_exists(#a3, :v2) ADD #a1 :v1 REMOVE #a2 DELETE #a4 :v3"
        );
    }

    #[test]
    fn numbers_that_are_not_integers_are_an_error() {
        assert!(from_attribute("n", &AttributeValue::N("1.5".into())).is_err());
        assert!(from_attribute("l", &AttributeValue::L(vec![])).is_err());
        assert_eq!(
            from_attribute("n", &AttributeValue::N("-42".into())).ok(),
            Some(Value::N(-42))
        );
    }
}
