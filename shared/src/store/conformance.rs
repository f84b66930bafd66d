//! The store conformance suite: the behaviour every [`Store`] must share, run against the
//! in-memory store in unit tests and against DynamoDB Local in the black-box tests.
//!
//! Every check works in its own partitions (a random prefix), so runs can share a table,
//! and reads time only from the given [`ManualClock`], which it moves forward.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use super::{
    Change, Cond, EXPIRES_AT, Item, Key, MAX_TRANSACTION_WRITES, Page, Query, Store, TransactError,
    Value, Write, WriteError, schema,
};
use crate::clock::{Clock, ManualClock};

/// Runs every check, printing each name as it starts; panics on the first failure.
pub async fn run_all(store: &dyn Store, clock: &ManualClock) {
    macro_rules! checks {
        ($($check:ident),* $(,)?) => {
            $(
                println!("store conformance: {}", stringify!($check));
                $check(store, clock).await;
            )*
        };
    }
    checks!(
        ping_answers,
        every_value_type_survives_a_put_and_get,
        getting_a_missing_item_finds_nothing,
        reads_with_empty_keys_find_nothing,
        keys_over_dynamodbs_limits_are_refused,
        get_many_returns_the_live_subset_whatever_the_order,
        get_many_reads_more_than_one_batch,
        a_put_if_absent_succeeds_once_then_reports_the_current_item,
        item_exists_holds_only_for_a_present_item,
        comparisons_follow_dynamodb_typing,
        contains_only_looks_into_string_sets,
        and_or_not_combine_conditions,
        conditions_on_a_missing_item_see_no_attributes,
        an_update_creates_a_missing_item,
        add_counts_a_missing_number_from_zero,
        set_if_absent_keeps_an_existing_value,
        remove_drops_an_attribute,
        deleting_the_last_member_of_a_set_removes_the_attribute,
        an_update_returns_the_whole_new_item,
        an_update_without_changes_creates_the_bare_item,
        a_conditional_update_applies_only_when_the_condition_holds,
        a_delete_returns_the_old_item_or_nothing,
        a_conditional_delete_reports_the_current_item,
        expired_items_are_invisible_to_reads,
        an_item_expires_at_its_expiry_second,
        a_put_if_absent_replaces_an_expired_item,
        item_exists_fails_on_an_expired_item_and_reports_it,
        an_unconditional_update_of_an_expired_item_starts_fresh,
        an_update_conditioned_on_absence_starts_fresh_over_an_expired_item,
        an_update_needing_the_old_value_fails_on_an_expired_item,
        deleting_an_expired_item_returns_nothing,
        a_transaction_is_all_or_nothing,
        a_transaction_reports_every_failed_condition,
        a_transaction_applies_puts_updates_deletes_and_checks,
        a_transaction_treats_expired_items_as_absent,
        a_transaction_holds_up_to_100_writes,
        a_transaction_rejects_empty_oversized_and_duplicate_batches,
        a_check_outside_a_transaction_is_rejected,
        a_put_without_a_string_key_is_rejected,
        queries_filter_by_prefix_and_upper_bound_both_ways,
        queries_page_through_25_items_10_at_a_time,
        a_page_that_ends_the_partition_has_no_next,
        queries_skip_expired_items_and_still_fill_pages,
        queries_including_expired_items_see_what_the_ttl_sweep_has_not_reached,
        queries_on_the_unverified_by_day_index,
        an_index_sweep_that_deletes_as_it_pages_sees_every_item_once,
        concurrent_puts_if_absent_let_exactly_one_win,
        concurrent_transactions_claiming_one_key_let_exactly_one_win,
        concurrent_adds_all_count,
    );
}

// ---- helpers --------------------------------------------------------------------------

/// A partition key no other check (or run) uses.
fn partition(tag: &str) -> String {
    format!("conf-{tag}-{}", uuid::Uuid::new_v4().simple())
}

fn item(key: &Key) -> Item {
    Item::new(key)
}

async fn put(store: &dyn Store, item: Item) {
    store.write(Write::put(item)).await.expect("put");
}

async fn get(store: &dyn Store, key: &Key) -> Option<Item> {
    store.get(key).await.expect("get")
}

fn condition_failed(result: Result<Option<Item>, WriteError>) -> Option<Item> {
    match result {
        Err(WriteError::ConditionFailed { current }) => current,
        other => panic!("expected a failed condition, got {other:?}"),
    }
}

/// Whether `cond` holds on the item at `key`, asked as a transaction check and as a
/// conditional write; both paths must agree.
async fn holds(store: &dyn Store, key: &Key, cond: &Cond) -> bool {
    let as_check = match store
        .transact(vec![Write::check(key.clone(), cond.clone())])
        .await
    {
        Ok(()) => true,
        Err(TransactError::ConditionFailed { failed }) => {
            assert_eq!(failed.len(), 1, "{cond:?}");
            assert_eq!(failed[0].index, 0, "{cond:?}");
            false
        }
        Err(err) => panic!("check {cond:?}: {err:?}"),
    };
    // A put that writes the item back unchanged (or not at all: nothing when absent).
    let before = store.get(key).await.expect("get");
    let as_write = match &before {
        Some(current) => match store
            .write(Write::put(current.clone()).when(cond.clone()))
            .await
        {
            Ok(_) => true,
            Err(WriteError::ConditionFailed { .. }) => false,
            Err(err) => panic!("put {cond:?}: {err:?}"),
        },
        None => match store
            .write(Write::delete(key.clone()).when(cond.clone()))
            .await
        {
            Ok(old) => {
                assert_eq!(old, None);
                true
            }
            Err(WriteError::ConditionFailed { .. }) => false,
            Err(err) => panic!("delete {cond:?}: {err:?}"),
        },
    };
    assert_eq!(as_check, as_write, "check and write disagree on {cond:?}");
    assert_eq!(store.get(key).await.expect("get"), before);
    as_check
}

async fn assert_holds(store: &dyn Store, key: &Key, cases: &[(Cond, bool)]) {
    for (cond, expected) in cases {
        assert_eq!(holds(store, key, cond).await, *expected, "{cond:?}");
    }
}

/// Polls the future set until all are done: concurrent requests without spawning, so
/// the futures may borrow the store.
async fn join_all<F: Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut pending: Vec<Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = pending.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut done = true;
        for (future, output) in pending.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match future.as_mut().poll(cx) {
                    Poll::Ready(value) => *output = Some(value),
                    Poll::Pending => done = false,
                }
            }
        }
        if done { Poll::Ready(()) } else { Poll::Pending }
    })
    .await;
    outputs.into_iter().map(|o| o.expect("finished")).collect()
}

async fn all_pages(store: &dyn Store, query: Query) -> Vec<Page> {
    let mut pages = Vec::new();
    let mut query = query;
    loop {
        let page = store.query(&query).await.expect("query");
        let next = page.next.clone();
        pages.push(page);
        match next {
            Some(next) => query = query.after(Some(next)),
            None => return pages,
        }
        assert!(pages.len() < 100, "paging does not end");
    }
}

fn sks(items: &[Item]) -> Vec<String> {
    items
        .iter()
        .map(|item| item.s(super::SK).expect("sk").to_owned())
        .collect()
}

/// Index queries are eventually consistent on DynamoDB: wait until the index shows
/// `expected` items (at once on DynamoDB Local and in memory).
async fn settled_index(store: &dyn Store, query: &Query, expected: usize) -> Page {
    for _ in 0..50 {
        let page = store.query(query).await.expect("index query");
        if page.items.len() == expected {
            return page;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the index never showed {expected} items for {query:?}");
}

// ---- reads and writes ---------------------------------------------------------------

async fn ping_answers(store: &dyn Store, _: &ManualClock) {
    store.ping().await.expect("ping");
}

async fn every_value_type_survives_a_put_and_get(store: &dyn Store, _: &ManualClock) {
    let key = Key::new(partition("values"), "item");
    let written = item(&key)
        .with("s", "text with ünïcode")
        .with("empty_s", "")
        .with("n", 42)
        .with("zero", 0)
        .with("negative", -7)
        .with("max", i64::MAX)
        .with("min", i64::MIN)
        .with("b", vec![0u8, 1, 2, 255])
        .with("t", true)
        .with("f", false)
        .with(
            "ss",
            Value::Ss(BTreeSet::from([
                "a".to_owned(),
                "b".to_owned(),
                "c d".to_owned(),
            ])),
        );
    put(store, written.clone()).await;
    assert_eq!(get(store, &key).await, Some(written));
}

async fn getting_a_missing_item_finds_nothing(store: &dyn Store, _: &ManualClock) {
    let key = Key::new(partition("missing"), "nothing");
    assert_eq!(get(store, &key).await, None);
    assert_eq!(store.get_many(&[key]).await.expect("get_many"), vec![]);
    assert_eq!(store.get_many(&[]).await.expect("get_many"), vec![]);
}

async fn reads_with_empty_keys_find_nothing(store: &dyn Store, _: &ManualClock) {
    let pk = partition("emptykeys");
    let real = Key::new(&pk, "real");
    put(store, item(&real)).await;
    let empty = [Key::new("", ""), Key::new(&pk, ""), Key::new("", "real")];
    for key in &empty {
        assert_eq!(get(store, key).await, None);
    }
    let mut asked = empty.to_vec();
    asked.push(real.clone());
    assert_eq!(
        store.get_many(&asked).await.expect("get_many"),
        vec![item(&real)]
    );
    let page = store.query(&Query::partition("")).await.expect("query");
    assert_eq!(page, Page::default());
    let page = store
        .query(&Query::partition(&pk).after(Some(Key::new(&pk, ""))))
        .await
        .expect("query");
    assert_eq!(page.items, vec![item(&real)]);
}

async fn keys_over_dynamodbs_limits_are_refused(store: &dyn Store, _: &ManualClock) {
    let pk = partition("longkeys");
    // At the limits: fine.
    let longest = Key::new(
        format!("{pk}{}", "p".repeat(super::MAX_PK_BYTES - pk.len())),
        "s".repeat(super::MAX_SK_BYTES),
    );
    put(store, item(&longest)).await;
    assert_eq!(get(store, &longest).await, Some(item(&longest)));
    // One byte over, in either part: refused by every kind of call.
    let over = [
        Key::new(format!("{}x", longest.pk), "s"),
        Key::new(&pk, format!("{}x", longest.sk)),
    ];
    for key in &over {
        assert!(
            store.get(key).await.is_err(),
            "get {} + {}",
            key.pk.len(),
            key.sk.len()
        );
        assert!(store.get_many(std::slice::from_ref(key)).await.is_err());
        assert!(store.write(Write::put(item(key))).await.is_err());
        assert!(store.write(Write::delete(key.clone())).await.is_err());
        assert!(store.transact(vec![Write::put(item(key))]).await.is_err());
        assert!(
            store
                .query(&Query::partition(&key.pk).after(Some(key.clone())))
                .await
                .is_err()
        );
    }
}

async fn get_many_returns_the_live_subset_whatever_the_order(store: &dyn Store, _: &ManualClock) {
    let pk = partition("many");
    let keys: Vec<Key> = (0..4).map(|i| Key::new(&pk, format!("k{i}"))).collect();
    for key in &keys[..3] {
        put(store, item(key).with("v", key.sk.as_str())).await;
    }
    let asked = vec![keys[2].clone(), keys[3].clone(), keys[0].clone()];
    let mut found = store.get_many(&asked).await.expect("get_many");
    found.sort_by_key(|item| item.key());
    assert_eq!(
        found,
        vec![
            item(&keys[0]).with("v", "k0"),
            item(&keys[2]).with("v", "k2")
        ]
    );
}

async fn get_many_reads_more_than_one_batch(store: &dyn Store, _: &ManualClock) {
    let pk = partition("batch");
    let keys: Vec<Key> = (0..130)
        .map(|i| Key::new(&pk, format!("k{i:03}")))
        .collect();
    for chunk in keys.chunks(MAX_TRANSACTION_WRITES) {
        let writes = chunk.iter().map(|key| Write::put(item(key))).collect();
        store.transact(writes).await.expect("transact");
    }
    let mut asked = keys.clone();
    asked.push(Key::new(&pk, "absent"));
    let found = store.get_many(&asked).await.expect("get_many");
    let found: BTreeSet<Key> = found.iter().map(|item| item.key().expect("key")).collect();
    assert_eq!(found, keys.into_iter().collect::<BTreeSet<_>>());
}

async fn a_put_if_absent_succeeds_once_then_reports_the_current_item(
    store: &dyn Store,
    _: &ManualClock,
) {
    let key = Key::new(partition("absent"), "claim");
    let first = item(&key).with("owner", "first");
    store
        .write(Write::put(first.clone()).when(Cond::ItemAbsent))
        .await
        .expect("first claim");
    let second = store
        .write(Write::put(item(&key).with("owner", "second")).when(Cond::ItemAbsent))
        .await;
    assert_eq!(condition_failed(second), Some(first.clone()));
    assert_eq!(get(store, &key).await, Some(first));
}

async fn item_exists_holds_only_for_a_present_item(store: &dyn Store, _: &ManualClock) {
    let key = Key::new(partition("exists"), "item");
    let result = store
        .write(Write::put(item(&key).with("v", 1)).when(Cond::ItemExists))
        .await;
    assert_eq!(condition_failed(result), None);
    assert_eq!(get(store, &key).await, None);
    put(store, item(&key).with("v", 1)).await;
    store
        .write(Write::put(item(&key).with("v", 2)).when(Cond::ItemExists))
        .await
        .expect("put over an existing item");
    assert_eq!(get(store, &key).await, Some(item(&key).with("v", 2)));
}

async fn comparisons_follow_dynamodb_typing(store: &dyn Store, _: &ManualClock) {
    let key = Key::new(partition("cmp"), "item");
    let set = Value::Ss(BTreeSet::from(["x".to_owned(), "y".to_owned()]));
    put(
        store,
        item(&key)
            .with("n", 5)
            .with("neg", -3)
            .with("s", "m")
            .with("b", vec![1u8, 2])
            .with("flag", true)
            .with("set", set.clone()),
    )
    .await;
    assert_holds(
        store,
        &key,
        &[
            (Cond::eq("n", 5), true),
            (Cond::eq("n", 6), false),
            (Cond::ne("n", 6), true),
            (Cond::ne("n", 5), false),
            (Cond::lt("n", 6), true),
            (Cond::lt("n", 5), false),
            (Cond::le("n", 5), true),
            (Cond::le("n", 4), false),
            (Cond::gt("n", 4), true),
            (Cond::gt("n", 5), false),
            (Cond::ge("n", 5), true),
            (Cond::ge("n", 6), false),
            (Cond::lt("neg", -2), true),
            (Cond::gt("neg", -4), true),
            (Cond::lt("neg", -3), false),
            (Cond::gt("n", 10_000_000_000i64), false),
            (Cond::eq("s", "m"), true),
            (Cond::ne("s", "m"), false),
            (Cond::lt("s", "n"), true),
            (Cond::lt("s", "ma"), true),
            (Cond::le("s", "l"), false),
            (Cond::gt("s", "a"), true),
            (Cond::ge("s", "m"), true),
            (Cond::gt("s", "m"), false),
            (Cond::eq("b", vec![1u8, 2]), true),
            (Cond::lt("b", vec![1u8, 3]), true),
            (Cond::gt("b", vec![1u8, 3]), false),
            (Cond::eq("flag", true), true),
            (Cond::ne("flag", false), true),
            (Cond::eq("flag", false), false),
            (Cond::lt("flag", true), false),
            (Cond::Cmp("set".into(), super::Cmp::Eq, set.clone()), true),
            (Cond::Cmp("set".into(), super::Cmp::Lt, set), false),
            // A missing attribute satisfies no comparison, not even "not equal".
            (Cond::eq("missing", 1), false),
            (Cond::ne("missing", 1), false),
            (Cond::lt("missing", 1), false),
            (Cond::ge("missing", "a"), false),
            // Another type is never equal nor ordered, and always "not equal".
            (Cond::eq("n", "5"), false),
            (Cond::ne("n", "5"), true),
            (Cond::lt("n", "9"), false),
            (Cond::gt("n", "0"), false),
            (Cond::gt("s", 1), false),
            (Cond::lt("s", 1), false),
            (Cond::attr_exists("n"), true),
            (Cond::attr_exists("missing"), false),
            (Cond::attr_absent("missing"), true),
            (Cond::attr_absent("n"), false),
        ],
    )
    .await;
}

async fn contains_only_looks_into_string_sets(store: &dyn Store, _: &ManualClock) {
    let key = Key::new(partition("contains"), "item");
    put(
        store,
        item(&key)
            .with(
                "set",
                Value::Ss(BTreeSet::from(["a".to_owned(), "bc".to_owned()])),
            )
            .with("text", "abc"),
    )
    .await;
    assert_holds(
        store,
        &key,
        &[
            (Cond::contains("set", "a"), true),
            (Cond::contains("set", "bc"), true),
            (Cond::contains("set", "b"), false),
            (Cond::contains("text", "a"), false),
            (Cond::contains("missing", "a"), false),
            (Cond::contains("set", "a").not(), false),
        ],
    )
    .await;
}

async fn and_or_not_combine_conditions(store: &dyn Store, _: &ManualClock) {
    let key = Key::new(partition("logic"), "item");
    put(store, item(&key).with("n", 1).with("s", "x")).await;
    let yes = || Cond::eq("n", 1);
    let no = || Cond::eq("n", 2);
    assert_holds(
        store,
        &key,
        &[
            (yes().and(Cond::eq("s", "x")), true),
            (yes().and(no()), false),
            (no().or(yes()), true),
            (no().or(Cond::eq("s", "y")), false),
            (no().not(), true),
            (yes().not(), false),
            (Cond::And(vec![]), true),
            (Cond::Or(vec![]), false),
            (Cond::ItemExists.and(yes()), true),
            (Cond::ItemAbsent.or(yes()), true),
            (Cond::ItemAbsent.or(no()), false),
            (Cond::ItemExists.not(), false),
            (Cond::ItemAbsent.not(), true),
            (yes().and(no().or(Cond::eq("s", "x").not())).not(), true),
            (
                Cond::Or(vec![no(), Cond::And(vec![yes(), Cond::attr_absent("z")])]),
                true,
            ),
        ],
    )
    .await;
}

async fn conditions_on_a_missing_item_see_no_attributes(store: &dyn Store, _: &ManualClock) {
    let key = Key::new(partition("nothing"), "item");
    assert_holds(
        store,
        &key,
        &[
            (Cond::ItemAbsent, true),
            (Cond::ItemExists, false),
            (Cond::attr_absent("n"), true),
            (Cond::attr_exists("n"), false),
            (Cond::eq("n", 1), false),
            (Cond::ne("n", 1), false),
            (Cond::eq("n", 1).not(), true),
            (Cond::ItemAbsent.or(Cond::eq("n", 1)), true),
            (Cond::ItemExists.and(Cond::eq("n", 1)).not(), true),
            (Cond::And(vec![]), true),
        ],
    )
    .await;
    assert_eq!(get(store, &key).await, None);
}

async fn an_update_creates_a_missing_item(store: &dyn Store, _: &ManualClock) {
    let key = Key::new(partition("create"), "item");
    let new = store
        .write(Write::update(key.clone(), vec![Change::set("v", "x")]))
        .await
        .expect("update");
    let expected = item(&key).with("v", "x");
    assert_eq!(new, Some(expected.clone()));
    assert_eq!(get(store, &key).await, Some(expected));
}

async fn add_counts_a_missing_number_from_zero(store: &dyn Store, _: &ManualClock) {
    let key = Key::new(partition("add"), "counter");
    let after = |n: i64| Some(item(&key).with("n", n));
    let add = |by| Write::update(key.clone(), vec![Change::add("n", by)]);
    assert_eq!(store.write(add(3)).await.expect("add"), after(3));
    assert_eq!(store.write(add(-5)).await.expect("add"), after(-2));
    put(store, item(&key).with("other", 1)).await;
    assert_eq!(
        store.write(add(1)).await.expect("add"),
        Some(item(&key).with("other", 1).with("n", 1))
    );
}

async fn set_if_absent_keeps_an_existing_value(store: &dyn Store, _: &ManualClock) {
    let key = Key::new(partition("setifabsent"), "item");
    let write = |v: &str| Write::update(key.clone(), vec![Change::set_if_absent("v", v)]);
    assert_eq!(
        store.write(write("first")).await.expect("update"),
        Some(item(&key).with("v", "first"))
    );
    assert_eq!(
        store.write(write("second")).await.expect("update"),
        Some(item(&key).with("v", "first"))
    );
}

async fn remove_drops_an_attribute(store: &dyn Store, _: &ManualClock) {
    let key = Key::new(partition("remove"), "item");
    put(store, item(&key).with("a", 1).with("b", 2)).await;
    let new = store
        .write(Write::update(
            key.clone(),
            vec![Change::remove("a"), Change::remove("never")],
        ))
        .await
        .expect("update");
    assert_eq!(new, Some(item(&key).with("b", 2)));
}

async fn deleting_the_last_member_of_a_set_removes_the_attribute(
    store: &dyn Store,
    _: &ManualClock,
) {
    let key = Key::new(partition("sets"), "item");
    let set = Value::Ss(BTreeSet::from(["a".to_owned(), "b".to_owned()]));
    put(store, item(&key).with("set", set)).await;
    let remove = |m: &str| Write::update(key.clone(), vec![Change::delete_from_set("set", m)]);
    assert_eq!(
        store.write(remove("a")).await.expect("update"),
        Some(item(&key).with("set", Value::Ss(BTreeSet::from(["b".to_owned()]))))
    );
    assert_eq!(
        store
            .write(remove("absent"))
            .await
            .expect("update")
            .map(|i| i.0.len()),
        Some(3)
    );
    assert_eq!(
        store.write(remove("b")).await.expect("update"),
        Some(item(&key))
    );
    // Deleting from a missing set changes nothing.
    assert_eq!(
        store.write(remove("b")).await.expect("update"),
        Some(item(&key))
    );
}

async fn an_update_returns_the_whole_new_item(store: &dyn Store, _: &ManualClock) {
    let key = Key::new(partition("updated"), "item");
    put(
        store,
        item(&key)
            .with("keep", "k")
            .with("gone", 1)
            .with("count", 10)
            .with(
                "set",
                Value::Ss(BTreeSet::from(["x".to_owned(), "y".to_owned()])),
            ),
    )
    .await;
    let new = store
        .write(Write::update(
            key.clone(),
            vec![
                Change::set("new", true),
                Change::set_if_absent("keep", "other"),
                Change::set_if_absent("fresh", vec![7u8]),
                Change::add("count", 5),
                Change::remove("gone"),
                Change::delete_from_set("set", "x"),
            ],
        ))
        .await
        .expect("update");
    let expected = item(&key)
        .with("keep", "k")
        .with("count", 15)
        .with("new", true)
        .with("fresh", vec![7u8])
        .with("set", Value::Ss(BTreeSet::from(["y".to_owned()])));
    assert_eq!(new, Some(expected.clone()));
    assert_eq!(get(store, &key).await, Some(expected));
}

async fn an_update_without_changes_creates_the_bare_item(store: &dyn Store, _: &ManualClock) {
    let pk = partition("bare");
    let single = Key::new(&pk, "single");
    assert_eq!(
        store
            .write(Write::update(single.clone(), vec![]))
            .await
            .expect("update"),
        Some(item(&single))
    );
    assert_eq!(get(store, &single).await, Some(item(&single)));
    let existing = Key::new(&pk, "existing");
    put(store, item(&existing).with("v", 1)).await;
    assert_eq!(
        store
            .write(Write::update(existing.clone(), vec![]))
            .await
            .expect("update"),
        Some(item(&existing).with("v", 1))
    );
    let in_transaction = Key::new(&pk, "transaction");
    store
        .transact(vec![Write::update(in_transaction.clone(), vec![])])
        .await
        .expect("transact");
    assert_eq!(
        get(store, &in_transaction).await,
        Some(item(&in_transaction))
    );
}

async fn a_conditional_update_applies_only_when_the_condition_holds(
    store: &dyn Store,
    _: &ManualClock,
) {
    let key = Key::new(partition("condupdate"), "item");
    let bump = |expected: i64| {
        Write::update(key.clone(), vec![Change::add("version", 1)])
            .when(Cond::eq("version", expected))
    };
    assert_eq!(condition_failed(store.write(bump(0)).await), None);
    assert_eq!(get(store, &key).await, None);
    put(store, item(&key).with("version", 1)).await;
    assert_eq!(
        store.write(bump(1)).await.expect("bump"),
        Some(item(&key).with("version", 2))
    );
    assert_eq!(
        condition_failed(store.write(bump(1)).await),
        Some(item(&key).with("version", 2))
    );
    // A condition that holds for a missing item lets the update create it.
    let other = Key::new(&key.pk, "other");
    assert_eq!(
        store
            .write(
                Write::update(other.clone(), vec![Change::set("v", 1)])
                    .when(Cond::attr_absent("v"))
            )
            .await
            .expect("update"),
        Some(item(&other).with("v", 1))
    );
}

async fn a_delete_returns_the_old_item_or_nothing(store: &dyn Store, _: &ManualClock) {
    let key = Key::new(partition("delete"), "item");
    assert_eq!(
        store
            .write(Write::delete(key.clone()))
            .await
            .expect("delete"),
        None
    );
    put(store, item(&key).with("v", 1)).await;
    assert_eq!(
        store
            .write(Write::delete(key.clone()))
            .await
            .expect("delete"),
        Some(item(&key).with("v", 1))
    );
    assert_eq!(get(store, &key).await, None);
}

async fn a_conditional_delete_reports_the_current_item(store: &dyn Store, _: &ManualClock) {
    let key = Key::new(partition("conddelete"), "item");
    put(store, item(&key).with("v", 1)).await;
    let result = store
        .write(Write::delete(key.clone()).when(Cond::eq("v", 2)))
        .await;
    assert_eq!(condition_failed(result), Some(item(&key).with("v", 1)));
    assert_eq!(
        store
            .write(Write::delete(key.clone()).when(Cond::eq("v", 1)))
            .await
            .expect("delete"),
        Some(item(&key).with("v", 1))
    );
    let result = store
        .write(Write::delete(key.clone()).when(Cond::ItemExists))
        .await;
    assert_eq!(condition_failed(result), None);
}

// ---- expiry ---------------------------------------------------------------------------

async fn expired_items_are_invisible_to_reads(store: &dyn Store, clock: &ManualClock) {
    let pk = partition("expiry");
    let short = Key::new(&pk, "a-short");
    let long = Key::new(&pk, "b-long");
    put(store, item(&short).with(EXPIRES_AT, clock.now() + 60)).await;
    put(store, item(&long).with(EXPIRES_AT, clock.now() + 600)).await;
    let both = [short.clone(), long.clone()];
    assert!(get(store, &short).await.is_some());
    assert_eq!(store.get_many(&both).await.expect("get_many").len(), 2);
    clock.advance(61);
    assert_eq!(get(store, &short).await, None);
    assert_eq!(
        store.get_many(&both).await.expect("get_many"),
        vec![item(&long).with(EXPIRES_AT, clock.now() + 539)]
    );
    let page = store.query(&Query::partition(&pk)).await.expect("query");
    assert_eq!(sks(&page.items), vec!["b-long"]);
    assert_eq!(page.next, None);
}

async fn an_item_expires_at_its_expiry_second(store: &dyn Store, clock: &ManualClock) {
    let pk = partition("boundary");
    let key = Key::new(&pk, "item");
    put(store, item(&key).with(EXPIRES_AT, clock.now() + 1)).await;
    assert!(get(store, &key).await.is_some());
    clock.advance(1);
    assert_eq!(get(store, &key).await, None);
    // A text `expires_at` is not a TTL (neither for DynamoDB's sweeper).
    let text = Key::new(&pk, "text");
    put(store, item(&text).with(EXPIRES_AT, "0")).await;
    assert!(get(store, &text).await.is_some());
}

async fn a_put_if_absent_replaces_an_expired_item(store: &dyn Store, clock: &ManualClock) {
    let key = Key::new(partition("reclaim"), "claim");
    put(
        store,
        item(&key)
            .with("owner", "old")
            .with(EXPIRES_AT, clock.now() + 10),
    )
    .await;
    clock.advance(10);
    let new = item(&key).with("owner", "new");
    store
        .write(Write::put(new.clone()).when(Cond::ItemAbsent))
        .await
        .expect("claim over an expired item");
    assert_eq!(get(store, &key).await, Some(new));
}

async fn item_exists_fails_on_an_expired_item_and_reports_it(
    store: &dyn Store,
    clock: &ManualClock,
) {
    let key = Key::new(partition("stale"), "item");
    let stale = item(&key).with("v", 1).with(EXPIRES_AT, clock.now() + 10);
    put(store, stale.clone()).await;
    clock.advance(11);
    let result = store
        .write(Write::put(item(&key).with("v", 2)).when(Cond::ItemExists))
        .await;
    assert_eq!(condition_failed(result), Some(stale.clone()));
    let result = store
        .write(Write::delete(key.clone()).when(Cond::eq("v", 1)))
        .await;
    assert_eq!(condition_failed(result), Some(stale.clone()));
    assert_holds(
        store,
        &key,
        &[
            (Cond::ItemExists, false),
            (Cond::eq("v", 1), false),
            (Cond::attr_exists("v"), false),
        ],
    )
    .await;
    // A condition that holds lets the probing write through, which replaces the expired
    // item: put it back (already expired) before each.
    for cond in [
        Cond::ItemAbsent,
        Cond::attr_absent("v"),
        Cond::ne("v", 1).not(),
    ] {
        put(store, item(&key).with("v", 1).with(EXPIRES_AT, clock.now())).await;
        assert!(holds(store, &key, &cond).await, "{cond:?}");
    }
}

async fn an_unconditional_update_of_an_expired_item_starts_fresh(
    store: &dyn Store,
    clock: &ManualClock,
) {
    let key = Key::new(partition("fresh"), "item");
    put(
        store,
        item(&key)
            .with("old", "x")
            .with("count", 41)
            .with(EXPIRES_AT, clock.now() + 5),
    )
    .await;
    clock.advance(5);
    let new = store
        .write(Write::update(
            key.clone(),
            vec![Change::add("count", 1), Change::set_if_absent("s", "new")],
        ))
        .await
        .expect("update");
    let expected = item(&key).with("count", 1).with("s", "new");
    assert_eq!(new, Some(expected.clone()));
    assert_eq!(get(store, &key).await, Some(expected));
}

async fn an_update_conditioned_on_absence_starts_fresh_over_an_expired_item(
    store: &dyn Store,
    clock: &ManualClock,
) {
    let pk = partition("freshcond");
    let key = Key::new(&pk, "item");
    put(
        store,
        item(&key).with("old", 1).with(EXPIRES_AT, clock.now() + 5),
    )
    .await;
    clock.advance(6);
    let new = store
        .write(Write::update(key.clone(), vec![Change::set("v", 1)]).when(Cond::ItemAbsent))
        .await
        .expect("update");
    assert_eq!(new, Some(item(&key).with("v", 1)));
    let other = Key::new(&pk, "other");
    put(
        store,
        item(&other)
            .with("old", 1)
            .with(EXPIRES_AT, clock.now() + 5),
    )
    .await;
    clock.advance(6);
    let new = store
        .write(
            Write::update(other.clone(), vec![Change::add("n", 2)]).when(Cond::attr_absent("old")),
        )
        .await
        .expect("update");
    assert_eq!(new, Some(item(&other).with("n", 2)));
}

async fn an_update_needing_the_old_value_fails_on_an_expired_item(
    store: &dyn Store,
    clock: &ManualClock,
) {
    let key = Key::new(partition("needold"), "item");
    let stale = item(&key).with("v", 1).with(EXPIRES_AT, clock.now() + 5);
    put(store, stale.clone()).await;
    clock.advance(5);
    let result = store
        .write(Write::update(key.clone(), vec![Change::set("v", 2)]).when(Cond::eq("v", 1)))
        .await;
    assert_eq!(condition_failed(result), Some(stale.clone()));
    let result = store
        .write(Write::update(key.clone(), vec![Change::set("v", 2)]).when(Cond::ItemExists))
        .await;
    assert_eq!(condition_failed(result), Some(stale));
}

async fn deleting_an_expired_item_returns_nothing(store: &dyn Store, clock: &ManualClock) {
    let pk = partition("deadelete");
    let key = Key::new(&pk, "item");
    put(store, item(&key).with(EXPIRES_AT, clock.now() + 5)).await;
    clock.advance(5);
    assert_eq!(
        store
            .write(Write::delete(key.clone()))
            .await
            .expect("delete"),
        None
    );
    let other = Key::new(&pk, "other");
    put(store, item(&other).with(EXPIRES_AT, clock.now() + 5)).await;
    clock.advance(5);
    assert_eq!(
        store
            .write(Write::delete(other.clone()).when(Cond::attr_absent("v")))
            .await
            .expect("delete"),
        None
    );
}

// ---- transactions ---------------------------------------------------------------------

async fn a_transaction_is_all_or_nothing(store: &dyn Store, _: &ManualClock) {
    let pk = partition("atomic");
    let fresh = Key::new(&pk, "a");
    let taken = Key::new(&pk, "b");
    put(store, item(&taken).with("owner", "someone")).await;
    let result = store
        .transact(vec![
            Write::put(item(&fresh).with("v", 1)).when(Cond::ItemAbsent),
            Write::put(item(&taken).with("owner", "me")).when(Cond::ItemAbsent),
            Write::update(Key::new(&pk, "c"), vec![Change::add("n", 1)]),
        ])
        .await;
    match result {
        Err(TransactError::ConditionFailed { failed }) => {
            assert_eq!(failed.len(), 1, "{failed:?}");
            assert_eq!(failed[0].index, 1);
            assert_eq!(
                failed[0].current,
                Some(item(&taken).with("owner", "someone"))
            );
        }
        other => panic!("expected a failed condition, got {other:?}"),
    }
    assert_eq!(get(store, &fresh).await, None);
    assert_eq!(get(store, &Key::new(&pk, "c")).await, None);
    assert_eq!(
        get(store, &taken).await,
        Some(item(&taken).with("owner", "someone"))
    );
}

async fn a_transaction_reports_every_failed_condition(store: &dyn Store, _: &ManualClock) {
    let pk = partition("allfailed");
    let one = Key::new(&pk, "one");
    let three = Key::new(&pk, "three");
    put(store, item(&one).with("v", 1)).await;
    put(store, item(&three).with("v", 3)).await;
    let result = store
        .transact(vec![
            Write::put(item(&one)).when(Cond::ItemAbsent),
            Write::put(item(&Key::new(&pk, "two"))).when(Cond::ItemAbsent),
            Write::check(three.clone(), Cond::eq("v", 4)),
            Write::delete(Key::new(&pk, "four")).when(Cond::ItemExists),
        ])
        .await;
    let failed = match result {
        Err(TransactError::ConditionFailed { failed }) => failed,
        other => panic!("expected failed conditions, got {other:?}"),
    };
    let err = TransactError::ConditionFailed {
        failed: failed.clone(),
    };
    assert_eq!(failed.len(), 3, "{failed:?}");
    assert_eq!(
        err.failed_at(0).map(|f| f.current.clone()),
        Some(Some(item(&one).with("v", 1)))
    );
    assert!(err.failed_at(1).is_none());
    assert_eq!(
        err.failed_at(2).map(|f| f.current.clone()),
        Some(Some(item(&three).with("v", 3)))
    );
    assert_eq!(err.failed_at(3).map(|f| f.current.clone()), Some(None));
}

async fn a_transaction_applies_puts_updates_deletes_and_checks(store: &dyn Store, _: &ManualClock) {
    let pk = partition("mixed");
    let [put_key, update_key, delete_key, check_key] =
        ["put", "update", "delete", "check"].map(|sk| Key::new(&pk, sk));
    put(store, item(&update_key).with("n", 1)).await;
    put(store, item(&delete_key).with("v", 1)).await;
    put(store, item(&check_key).with("state", "open")).await;
    store
        .transact(vec![
            Write::put(item(&put_key).with("v", "new")).when(Cond::ItemAbsent),
            Write::update(update_key.clone(), vec![Change::add("n", 1)]).when(Cond::eq("n", 1)),
            Write::delete(delete_key.clone()).when(Cond::ItemExists),
            Write::check(check_key.clone(), Cond::eq("state", "open")),
        ])
        .await
        .expect("transact");
    assert_eq!(
        get(store, &put_key).await,
        Some(item(&put_key).with("v", "new"))
    );
    assert_eq!(
        get(store, &update_key).await,
        Some(item(&update_key).with("n", 2))
    );
    assert_eq!(get(store, &delete_key).await, None);
    assert_eq!(
        get(store, &check_key).await,
        Some(item(&check_key).with("state", "open"))
    );
    // A failing check stops the writes around it.
    let result = store
        .transact(vec![
            Write::update(update_key.clone(), vec![Change::add("n", 1)]),
            Write::check(check_key.clone(), Cond::eq("state", "closed")),
        ])
        .await;
    let failed_at_1 = result.as_ref().err().and_then(|e| e.failed_at(1)).cloned();
    assert_eq!(
        failed_at_1.map(|f| f.current),
        Some(Some(item(&check_key).with("state", "open"))),
        "{result:?}"
    );
    assert_eq!(
        get(store, &update_key).await,
        Some(item(&update_key).with("n", 2))
    );
}

async fn a_transaction_treats_expired_items_as_absent(store: &dyn Store, clock: &ManualClock) {
    let pk = partition("txexpiry");
    let [claim, counter, checked, stale] =
        ["claim", "counter", "checked", "stale"].map(|sk| Key::new(&pk, sk));
    let until = clock.now() + 5;
    put(
        store,
        item(&claim).with("owner", "old").with(EXPIRES_AT, until),
    )
    .await;
    put(
        store,
        item(&counter)
            .with("n", 10)
            .with("old", 1)
            .with(EXPIRES_AT, until),
    )
    .await;
    put(store, item(&checked).with(EXPIRES_AT, until)).await;
    let stale_item = item(&stale).with("v", 1).with(EXPIRES_AT, until);
    put(store, stale_item.clone()).await;
    clock.advance(5);
    store
        .transact(vec![
            Write::put(item(&claim).with("owner", "new")).when(Cond::ItemAbsent),
            Write::update(counter.clone(), vec![Change::add("n", 1)]),
            Write::check(checked.clone(), Cond::ItemAbsent),
        ])
        .await
        .expect("transact over expired items");
    assert_eq!(
        get(store, &claim).await,
        Some(item(&claim).with("owner", "new"))
    );
    assert_eq!(
        get(store, &counter).await,
        Some(item(&counter).with("n", 1))
    );
    let result = store
        .transact(vec![Write::check(stale.clone(), Cond::ItemExists)])
        .await;
    let failed = result.as_ref().err().and_then(|e| e.failed_at(0)).cloned();
    assert_eq!(
        failed.map(|f| f.current),
        Some(Some(stale_item)),
        "{result:?}"
    );
}

async fn a_transaction_holds_up_to_100_writes(store: &dyn Store, _: &ManualClock) {
    let pk = partition("hundred");
    let writes: Vec<Write> = (0..MAX_TRANSACTION_WRITES)
        .map(|i| Write::put(item(&Key::new(&pk, format!("{i:03}")))).when(Cond::ItemAbsent))
        .collect();
    store.transact(writes).await.expect("100 writes");
    let page = store
        .query(&Query::partition(&pk).limit(1000))
        .await
        .expect("query");
    assert_eq!(page.items.len(), MAX_TRANSACTION_WRITES);
}

async fn a_transaction_rejects_empty_oversized_and_duplicate_batches(
    store: &dyn Store,
    _: &ManualClock,
) {
    let pk = partition("rejects");
    assert!(matches!(
        store.transact(vec![]).await,
        Err(TransactError::Unexpected(_))
    ));
    let too_many: Vec<Write> = (0..=MAX_TRANSACTION_WRITES)
        .map(|i| Write::put(item(&Key::new(&pk, format!("{i:03}")))))
        .collect();
    assert!(matches!(
        store.transact(too_many).await,
        Err(TransactError::Unexpected(_))
    ));
    let twice = Key::new(&pk, "twice");
    let duplicates = vec![
        Write::put(item(&Key::new(&pk, "once"))),
        Write::put(item(&twice)),
        Write::update(twice.clone(), vec![Change::add("n", 1)]),
    ];
    assert!(matches!(
        store.transact(duplicates).await,
        Err(TransactError::Unexpected(_))
    ));
    let page = store.query(&Query::partition(&pk)).await.expect("query");
    assert_eq!(page.items, vec![]);
}

async fn a_check_outside_a_transaction_is_rejected(store: &dyn Store, _: &ManualClock) {
    let key = Key::new(partition("check"), "item");
    assert!(matches!(
        store.write(Write::check(key, Cond::ItemAbsent)).await,
        Err(WriteError::Unexpected(_))
    ));
}

async fn a_put_without_a_string_key_is_rejected(store: &dyn Store, _: &ManualClock) {
    let mut keyless = Item::default();
    keyless.set("pk", partition("keyless"));
    assert!(matches!(
        store.write(Write::put(keyless.clone())).await,
        Err(WriteError::Unexpected(_))
    ));
    assert!(matches!(
        store.transact(vec![Write::put(keyless)]).await,
        Err(TransactError::Unexpected(_))
    ));
}

// ---- queries --------------------------------------------------------------------------

async fn queries_filter_by_prefix_and_upper_bound_both_ways(store: &dyn Store, _: &ManualClock) {
    let pk = partition("ranges");
    let all = ["a#1", "a#2", "a#3", "b", "b#1", "b#2", "c"];
    for sk in all {
        put(store, item(&Key::new(&pk, sk)).with("v", sk)).await;
    }
    let run = |query: Query| async move {
        let page = store.query(&query).await.expect("query");
        assert_eq!(page.next, None, "{query:?}");
        sks(&page.items)
    };
    let q = || Query::partition(&pk);
    assert_eq!(run(q()).await, all);
    assert_eq!(
        run(q().descending()).await,
        ["c", "b#2", "b#1", "b", "a#3", "a#2", "a#1"]
    );
    assert_eq!(run(q().prefix("a#")).await, ["a#1", "a#2", "a#3"]);
    assert_eq!(
        run(q().prefix("a#").descending()).await,
        ["a#3", "a#2", "a#1"]
    );
    assert_eq!(run(q().prefix("b")).await, ["b", "b#1", "b#2"]);
    assert_eq!(run(q().prefix("z")).await, Vec::<String>::new());
    assert_eq!(
        run(q().at_most("b#1")).await,
        ["a#1", "a#2", "a#3", "b", "b#1"]
    );
    assert_eq!(
        run(q().at_most("b#1").descending()).await,
        ["b#1", "b", "a#3", "a#2", "a#1"]
    );
    assert_eq!(run(q().at_most("a")).await, Vec::<String>::new());
    assert_eq!(run(q().prefix("b").at_most("b#1")).await, ["b", "b#1"]);
    assert_eq!(
        run(q().prefix("b").at_most("b#1").descending()).await,
        ["b#1", "b"]
    );
    assert_eq!(
        run(q().prefix("b#").at_most("b")).await,
        Vec::<String>::new()
    );
    assert_eq!(
        run(q().prefix("a#").at_most("b#0")).await,
        ["a#1", "a#2", "a#3"]
    );
    assert_eq!(
        run(q().prefix("b").at_most("a#9")).await,
        Vec::<String>::new()
    );
    assert_eq!(run(q().prefix("b").at_most("b")).await, ["b"]);
    assert_eq!(
        run(Query::partition(partition("empty"))).await,
        Vec::<String>::new()
    );
    // The query's own partition only.
    let page = store.query(&q().limit(1)).await.expect("query");
    assert!(page.items.iter().all(|i| i.s("pk") == Some(pk.as_str())));
}

async fn queries_page_through_25_items_10_at_a_time(store: &dyn Store, _: &ManualClock) {
    let pk = partition("paging");
    let writes: Vec<Write> = (0..25)
        .map(|i| Write::put(item(&Key::new(&pk, format!("item#{i:02}"))).with("i", i)))
        .collect();
    store.transact(writes).await.expect("transact");
    let expected: Vec<String> = (0..25).map(|i| format!("item#{i:02}")).collect();
    for ascending in [true, false] {
        let mut query = Query::partition(&pk).prefix("item#").limit(10);
        if !ascending {
            query = query.descending();
        }
        let pages = all_pages(store, query).await;
        assert_eq!(
            pages.iter().map(|p| p.items.len()).collect::<Vec<_>>(),
            [10, 10, 5]
        );
        for page in &pages[..2] {
            assert_eq!(page.next, page.items.last().and_then(Item::key));
        }
        let mut seen: Vec<String> = pages.iter().flat_map(|p| sks(&p.items)).collect();
        if !ascending {
            seen.reverse();
        }
        assert_eq!(seen, expected);
    }
}

async fn a_page_that_ends_the_partition_has_no_next(store: &dyn Store, _: &ManualClock) {
    let pk = partition("exact");
    let writes: Vec<Write> = (0..20)
        .map(|i| Write::put(item(&Key::new(&pk, format!("{i:02}")))))
        .collect();
    store.transact(writes).await.expect("transact");
    let pages = all_pages(store, Query::partition(&pk).limit(10)).await;
    assert_eq!(pages.len(), 2);
    assert_eq!(pages[1].items.len(), 10);
    assert_eq!(pages[1].next, None);
    assert_eq!(
        store
            .query(&Query::partition(&pk).limit(0))
            .await
            .expect("query"),
        Page::default()
    );
}

async fn queries_skip_expired_items_and_still_fill_pages(store: &dyn Store, clock: &ManualClock) {
    let pk = partition("expiredpages");
    let soon = clock.now() + 30;
    // Every third item and a block of 12 in the middle expire.
    let writes: Vec<Write> = (0..40)
        .map(|i| {
            let mut written = item(&Key::new(&pk, format!("{i:02}")));
            if i % 3 == 0 || (14..26).contains(&i) {
                written.set(EXPIRES_AT, soon);
            }
            Write::put(written)
        })
        .collect();
    store.transact(writes).await.expect("transact");
    clock.advance(30);
    let live: Vec<String> = (0..40)
        .filter(|i| !(i % 3 == 0 || (14..26).contains(i)))
        .map(|i| format!("{i:02}"))
        .collect();
    for ascending in [true, false] {
        let mut query = Query::partition(&pk).limit(5);
        if !ascending {
            query = query.descending();
        }
        let pages = all_pages(store, query).await;
        let sizes: Vec<usize> = pages.iter().map(|p| p.items.len()).collect();
        assert!(
            sizes[..sizes.len() - 1].iter().all(|n| *n == 5),
            "{sizes:?}"
        );
        let mut seen: Vec<String> = pages.iter().flat_map(|p| sks(&p.items)).collect();
        if !ascending {
            seen.reverse();
        }
        assert_eq!(seen, live);
    }
}

/// The cleanup job's view: expired items that are still stored, in the table and in the
/// expiry index, and deleting them only while they are dead.
async fn queries_including_expired_items_see_what_the_ttl_sweep_has_not_reached(
    store: &dyn Store,
    clock: &ManualClock,
) {
    let pk = partition("sweep");
    let now = clock.now();
    let indexed = |sk: &str, expires_at: i64| {
        schema::index_expiry(item(&Key::new(&pk, sk)).with(EXPIRES_AT, expires_at))
    };
    // Same expiry second, so the three share one partition of the expiry index.
    let day = schema::expiring_day(now + 10);
    put(store, indexed("a-dead", now + 10)).await;
    put(store, indexed("b-dead", now + 10)).await;
    put(store, indexed("c-renewed", now + 10)).await;
    put(store, item(&Key::new(&pk, "d-forever"))).await;
    clock.advance(10);
    let table = Query::partition(&pk).limit(2);
    let live: Vec<String> = all_pages(store, table.clone())
        .await
        .iter()
        .flat_map(|p| sks(&p.items))
        .collect();
    assert_eq!(live, ["d-forever"]);
    let everything: Vec<String> = all_pages(store, table.including_expired())
        .await
        .iter()
        .flat_map(|p| sks(&p.items))
        .collect();
    assert_eq!(everything, ["a-dead", "b-dead", "c-renewed", "d-forever"]);

    let index = Query::partition(&day)
        .on_index(schema::EXPIRING_BY_DAY.name)
        .prefix(format!("{:012}#{pk}#", now + 10))
        .limit(100);
    assert!(store.query(&index).await.expect("query").items.is_empty());
    let found = settled_index(store, &index.clone().including_expired(), 3).await;
    assert_eq!(sks(&found.items), ["a-dead", "b-dead", "c-renewed"]);

    // A delete that only applies to a dead item: the sweep never removes an item that
    // came back to life between its read and its delete.
    put(store, indexed("c-renewed", clock.now() + 60)).await;
    for key in found.items.iter().filter_map(Item::key) {
        let result = store
            .write(Write::delete(key.clone()).when(Cond::ItemAbsent))
            .await;
        if key.sk == "c-renewed" {
            assert!(condition_failed(result).is_some());
        } else {
            assert_eq!(result.expect("delete a dead item"), None);
        }
    }
    let left: Vec<String> = all_pages(store, Query::partition(&pk).including_expired())
        .await
        .iter()
        .flat_map(|p| sks(&p.items))
        .collect();
    assert_eq!(left, ["c-renewed", "d-forever"]);
    settled_index(store, &index.including_expired(), 0).await;
}

fn unverified(key: &Key, day: &str, at: &str) -> Item {
    item(key)
        .with(schema::UNVERIFIED_BY_DAY.pk, day)
        .with(schema::UNVERIFIED_BY_DAY.sk, at)
}

async fn queries_on_the_unverified_by_day_index(store: &dyn Store, clock: &ManualClock) {
    let pk = partition("accounts");
    let day = partition("day");
    let other_day = partition("day");
    let index = schema::UNVERIFIED_BY_DAY.name;
    let expires = clock.now() + 30;
    let mut writes = Vec::new();
    for i in 0..7 {
        let key = Key::new(format!("{pk}-{i}"), "account");
        let mut account = unverified(&key, &day, &format!("t{:02}#{i}", 10 - i));
        if i == 3 {
            account.set(EXPIRES_AT, expires);
        }
        writes.push(Write::put(account));
    }
    // Sparse: verified accounts carry no index attributes and never show up.
    writes.push(Write::put(item(&Key::new(
        format!("{pk}-verified"),
        "account",
    ))));
    writes.push(Write::put(
        item(&Key::new(format!("{pk}-half"), "account"))
            .with(schema::UNVERIFIED_BY_DAY.pk, day.as_str()),
    ));
    writes.push(Write::put(unverified(
        &Key::new(format!("{pk}-other"), "account"),
        &other_day,
        "t00",
    )));
    store.transact(writes).await.expect("transact");

    let query = Query::partition(&day).on_index(index).limit(100);
    let page = settled_index(store, &query, 7).await;
    let order: Vec<String> = page
        .items
        .iter()
        .map(|i| i.key().expect("key").pk)
        .collect();
    let expected: Vec<String> = (0..7).rev().map(|i| format!("{pk}-{i}")).collect();
    assert_eq!(order, expected);
    assert_eq!(page.next, None);

    clock.advance(30);
    let live: Vec<String> = [6, 5, 4, 2, 1, 0]
        .iter()
        .map(|i| format!("{pk}-{i}"))
        .collect();
    let pages = all_pages(store, query.clone().limit(2)).await;
    assert_eq!(
        pages.iter().map(|p| p.items.len()).collect::<Vec<_>>(),
        [2, 2, 2]
    );
    assert_eq!(pages[0].next, pages[0].items[1].key());
    let seen: Vec<String> = pages
        .iter()
        .flat_map(|p| p.items.iter().map(|i| i.key().expect("key").pk))
        .collect();
    assert_eq!(seen, live);

    let newest_first = store
        .query(&query.clone().descending().limit(2))
        .await
        .expect("query");
    let newest: Vec<String> = newest_first
        .items
        .iter()
        .map(|i| i.key().expect("key").pk)
        .collect();
    assert_eq!(newest, [format!("{pk}-0"), format!("{pk}-1")]);
    let older = store
        .query(&query.clone().at_most("t06").limit(100))
        .await
        .expect("query");
    // "t06#4" sorts after "t06"; "t07#3" has expired.
    assert_eq!(older.items.len(), 2);
    let prefixed = store
        .query(&query.clone().prefix("t1"))
        .await
        .expect("query");
    assert_eq!(prefixed.items.len(), 1);
    assert_eq!(
        store
            .query(&Query::partition(&other_day).on_index(index))
            .await
            .expect("query")
            .items
            .len(),
        1
    );
    assert!(
        store
            .query(&Query::partition(&day).on_index("nope"))
            .await
            .is_err()
    );
}

async fn an_index_sweep_that_deletes_as_it_pages_sees_every_item_once(
    store: &dyn Store,
    _: &ManualClock,
) {
    let pk = partition("sweep");
    let day = partition("sweepday");
    let writes: Vec<Write> = (0..9)
        .map(|i| {
            Write::put(unverified(
                &Key::new(format!("{pk}-{i}"), "account"),
                &day,
                &format!("t{i:02}"),
            ))
        })
        .collect();
    store.transact(writes).await.expect("transact");
    let mut query = Query::partition(&day)
        .on_index(schema::UNVERIFIED_BY_DAY.name)
        .limit(4);
    settled_index(store, &query.clone().limit(100), 9).await;
    let mut swept = Vec::new();
    loop {
        let page = store.query(&query).await.expect("query");
        for account in &page.items {
            let key = account.key().expect("key");
            store
                .write(Write::delete(key.clone()))
                .await
                .expect("delete");
            swept.push(key.pk);
        }
        match page.next {
            Some(next) => query = query.after(Some(next)),
            None => break,
        }
        assert!(swept.len() <= 9, "the sweep does not end");
    }
    let expected: Vec<String> = (0..9).map(|i| format!("{pk}-{i}")).collect();
    assert_eq!(swept, expected);
}

// ---- concurrency ----------------------------------------------------------------------

async fn concurrent_puts_if_absent_let_exactly_one_win(store: &dyn Store, _: &ManualClock) {
    let key = Key::new(partition("race"), "claim");
    let attempts = (0..20)
        .map(|i| store.write(Write::put(item(&key).with("owner", i)).when(Cond::ItemAbsent)));
    let results = join_all(attempts.collect()).await;
    let winners: Vec<usize> = results
        .iter()
        .enumerate()
        .filter(|(_, r)| r.is_ok())
        .map(|(i, _)| i)
        .collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    let winner = item(&key).with("owner", winners[0] as i64);
    for result in results.into_iter().filter(Result::is_err) {
        assert_eq!(condition_failed(result), Some(winner.clone()));
    }
    assert_eq!(get(store, &key).await, Some(winner));
}

async fn concurrent_transactions_claiming_one_key_let_exactly_one_win(
    store: &dyn Store,
    _: &ManualClock,
) {
    let pk = partition("txrace");
    let claim = Key::new(&pk, "address");
    let attempts = (0..20).map(|i| {
        store.transact(vec![
            Write::put(item(&claim).with("owner", i)).when(Cond::ItemAbsent),
            Write::put(item(&Key::new(&pk, format!("account#{i:02}")))).when(Cond::ItemAbsent),
        ])
    });
    let results = join_all(attempts.collect()).await;
    let winners: Vec<usize> = results
        .iter()
        .enumerate()
        .filter(|(_, r)| r.is_ok())
        .map(|(i, _)| i)
        .collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    let winner = item(&claim).with("owner", winners[0] as i64);
    for result in results.iter().filter(|r| r.is_err()) {
        match result {
            Err(TransactError::ConditionFailed { failed }) => {
                assert_eq!(failed.len(), 1, "{failed:?}");
                assert_eq!(failed[0].index, 0);
                assert_eq!(failed[0].current, Some(winner.clone()));
            }
            other => panic!("expected a failed condition, got {other:?}"),
        }
    }
    let page = store
        .query(&Query::partition(&pk).prefix("account#"))
        .await
        .expect("query");
    assert_eq!(sks(&page.items), [format!("account#{:02}", winners[0])]);
}

async fn concurrent_adds_all_count(store: &dyn Store, _: &ManualClock) {
    let key = Key::new(partition("adds"), "counter");
    let adds = (0..20).map(|_| store.write(Write::update(key.clone(), vec![Change::add("n", 1)])));
    for result in join_all(adds.collect()).await {
        result.expect("add");
    }
    assert_eq!(get(store, &key).await, Some(item(&key).with("n", 20)));
}
