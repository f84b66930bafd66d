//! The DynamoDB store against DynamoDB Local: the conformance suite the in-memory store
//! passes in its unit tests, the round-trip counter the flow tests rely on, and the
//! retries of transaction conflicts (which DynamoDB Local never produces by itself).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use accounts::clock::ManualClock;
use accounts::store::dynamo::{CallCounter, DynamoStore, client_with_counter};
use accounts::store::{Cond, Item, Key, Store, TransactError, Write, conformance};
use aws_sdk_dynamodb::config::interceptors::{
    BeforeDeserializationInterceptorContextMut, BeforeTransmitInterceptorContextRef,
};
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use serde_json::json;

/// The SDK configuration for the DynamoDB endpoint in the environment. A missing
/// endpoint fails the test: a DynamoDB test that silently skips would pass in CI.
async fn sdk_config() -> aws_types::SdkConfig {
    let Ok(endpoint) = std::env::var("AWS_ENDPOINT_URL_DYNAMODB") else {
        let required = std::env::var_os("REQUIRE_DYNAMODB").is_some();
        panic!(
            "AWS_ENDPOINT_URL_DYNAMODB is not set{}: this test needs DynamoDB Local. Run \
             scripts/test.sh (it starts the emulators and sets the environment), or start \
             DynamoDB Local yourself and set AWS_ENDPOINT_URL_DYNAMODB, AWS_REGION, \
             AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
            if required {
                " (REQUIRE_DYNAMODB is set)"
            } else {
                ""
            }
        );
    };
    accounts::aws::sdk_config_from_process_environment()
        .expect("the SDK settings from the environment")
        .to_builder()
        .endpoint_url(endpoint)
        .build()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dynamodb_store_passes_the_conformance_suite() {
    let config = sdk_config().await;
    let (client, calls) = client_with_counter(&config);
    let table = format!("conformance-{}", uuid::Uuid::new_v4().simple());
    let clock = ManualClock::starting_now();
    let store = DynamoStore::new(client.clone(), &table, clock.clone());
    store
        .create_table_if_missing()
        .await
        .expect("create the table");
    // A second call finds the table and its TTL in place.
    store
        .create_table_if_missing()
        .await
        .expect("create the table again");

    conformance::run_all(&store, clock.as_ref()).await;

    // Every store method is one round trip when nothing is in the way.
    let key = Key::new(format!("calls-{}", uuid::Uuid::new_v4().simple()), "item");
    calls.reset();
    store.write(Write::put(Item::new(&key))).await.expect("put");
    store.get(&key).await.expect("get");
    store
        .get_many(std::slice::from_ref(&key))
        .await
        .expect("get_many");
    store
        .transact(vec![Write::delete(key.clone())])
        .await
        .expect("transact");
    let counted = calls.snapshot();
    assert_eq!(
        counted.into_iter().collect::<Vec<_>>(),
        [
            ("BatchGetItem".to_owned(), 1),
            ("GetItem".to_owned(), 1),
            ("PutItem".to_owned(), 1),
            ("TransactWriteItems".to_owned(), 1),
        ]
    );
    assert_eq!(calls.total(), 4);

    client
        .delete_table()
        .table_name(&table)
        .send()
        .await
        .expect("delete the table");
}

/// Replaces the responses of chosen operations by DynamoDB errors, in order: DynamoDB
/// Local serialises transactions and never reports conflicts, which real DynamoDB does
/// under contention (concurrent signups for one address).
#[derive(Debug, Default)]
struct InjectFaults {
    planned: Mutex<VecDeque<(&'static str, String)>>,
    sending: Mutex<String>,
}

impl InjectFaults {
    fn plan(&self, operation: &'static str, error_type: &str, body: serde_json::Value) {
        let mut body = body;
        body["__type"] = format!("com.amazonaws.dynamodb.v20120810#{error_type}").into();
        self.planned
            .lock()
            .expect("lock")
            .push_back((operation, body.to_string()));
    }

    /// Plans a `TransactWriteItems` cancelled with one reason per action ([`conflict_reasons`]).
    fn plan_cancelled_transaction(&self, codes: &[&str]) {
        self.plan(
            "TransactWriteItems",
            "TransactionCanceledException",
            conflict_reasons(codes),
        );
    }

    fn left(&self) -> usize {
        self.planned.lock().expect("lock").len()
    }
}

#[derive(Clone, Debug)]
struct Injector(Arc<InjectFaults>);

impl Intercept for Injector {
    fn name(&self) -> &'static str {
        "InjectFaults"
    }

    // The request is gone once sent: note its operation on the way out (this test has
    // one request in flight at a time).
    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let operation = context
            .request()
            .headers()
            .get("x-amz-target")
            .and_then(|target| target.rsplit('.').next())
            .unwrap_or_default();
        *self.0.sending.lock().expect("lock") = operation.to_owned();
        Ok(())
    }

    fn modify_before_deserialization(
        &self,
        context: &mut BeforeDeserializationInterceptorContextMut<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let operation = self.0.sending.lock().expect("lock").clone();
        let mut planned = self.0.planned.lock().expect("lock");
        if planned.front().is_some_and(|(op, _)| *op == operation) {
            let (_, body) = planned.pop_front().expect("planned fault");
            let response = context.response_mut();
            *response.status_mut() = 400u16.try_into()?;
            response.headers_mut().remove("x-amz-crc32");
            *response.body_mut() = body.into();
        }
        Ok(())
    }
}

fn conflict_reasons(codes: &[&str]) -> serde_json::Value {
    let reasons: Vec<serde_json::Value> = codes
        .iter()
        .map(|code| match *code {
            "ConditionalCheckFailed" => json!({
                "Code": code,
                "Message": "The conditional request failed",
                "Item": {"pk": {"S": "injected"}, "sk": {"S": "item"}, "v": {"N": "7"}},
            }),
            _ => json!({"Code": code}),
        })
        .collect();
    json!({"Message": "Transaction cancelled", "CancellationReasons": reasons})
}

#[tokio::test]
async fn the_dynamodb_store_retries_transaction_conflicts() {
    let config = sdk_config().await;
    let faults = Arc::new(InjectFaults::default());
    let counter = CallCounter::new();
    let client = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&config)
            .interceptor(counter.interceptor())
            .interceptor(Injector(faults.clone()))
            .build(),
    );
    let table = format!("conflicts-{}", uuid::Uuid::new_v4().simple());
    let clock = ManualClock::starting_now();
    let store = DynamoStore::new(client.clone(), &table, clock.clone());
    store
        .create_table_if_missing()
        .await
        .expect("create the table");
    let pk = format!("conflicts-{}", uuid::Uuid::new_v4().simple());
    let item = Item::new(&Key::new(&pk, "item")).with("v", 1);
    let checked = Key::new(&pk, "checked");
    store
        .write(Write::put(Item::new(&checked)))
        .await
        .expect("put");
    // Idempotent writes: a faked failure may hide a transaction that did happen.
    let transaction = || {
        vec![
            Write::put(item.clone()),
            Write::check(checked.clone(), Cond::ItemExists),
        ]
    };

    // Conflicts are retried until the transaction goes through.
    for _ in 0..2 {
        faults.plan_cancelled_transaction(&["None", "TransactionConflict"]);
    }
    counter.reset();
    store.transact(transaction()).await.expect("transact");
    assert_eq!(counter.snapshot().get("TransactWriteItems"), Some(&3));
    assert_eq!(faults.left(), 0);

    // A failed condition wins over a conflict: no retry.
    faults.plan_cancelled_transaction(&["TransactionConflict", "ConditionalCheckFailed"]);
    counter.reset();
    match store.transact(transaction()).await {
        Err(TransactError::ConditionFailed { failed }) => {
            assert_eq!(failed.len(), 1);
            assert_eq!(failed[0].index, 1);
            let current = failed[0].current.as_ref().expect("current item");
            assert_eq!(current.n("v"), Some(7));
        }
        other => panic!("expected a failed condition, got {other:?}"),
    }
    assert_eq!(counter.total(), 1);

    // Endless conflicts end in an error after a bounded number of attempts.
    for _ in 0..20 {
        faults.plan_cancelled_transaction(&["TransactionConflict", "None"]);
    }
    counter.reset();
    let result = store.transact(transaction()).await;
    assert!(
        matches!(result, Err(TransactError::Unexpected(_))),
        "{result:?}"
    );
    let attempts = counter.total();
    assert!((2..=10).contains(&attempts), "{attempts} attempts");
    faults.planned.lock().expect("lock").clear();

    // Other cancellation reasons are errors, not failed conditions.
    faults.plan_cancelled_transaction(&["None", "ValidationError"]);
    let result = store.transact(transaction()).await;
    assert!(
        matches!(result, Err(TransactError::Unexpected(_))),
        "{result:?}"
    );

    // A single write meeting a transaction on its item is retried too.
    faults.plan(
        "PutItem",
        "TransactionConflictException",
        json!({"message": "Transaction is ongoing for the item"}),
    );
    counter.reset();
    store.write(Write::put(item.clone())).await.expect("put");
    assert_eq!(counter.snapshot().get("PutItem"), Some(&2));
    assert_eq!(
        store.get(&item.key().expect("key")).await.expect("get"),
        Some(item)
    );

    client
        .delete_table()
        .table_name(&table)
        .send()
        .await
        .expect("delete the table");
}
