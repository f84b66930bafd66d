//! The DynamoDB store against DynamoDB Local: the conformance suite the in-memory store
//! passes in its unit tests, plus the round-trip counter the flow tests rely on.

use std::sync::Arc;

use accounts::clock::ManualClock;
use accounts::store::dynamo::{DynamoStore, client_with_counter};
use accounts::store::{Item, Key, Store, Write, conformance};
use aws_config::BehaviorVersion;

/// The SDK configuration for the DynamoDB endpoint in the environment. A missing
/// endpoint fails the test: a DynamoDB test that silently skips would pass in CI.
async fn sdk_config() -> aws_config::SdkConfig {
    let Ok(endpoint) = std::env::var("AWS_ENDPOINT_URL_DYNAMODB") else {
        let required = std::env::var_os("REQUIRE_DYNAMODB").is_some();
        panic!(
            "AWS_ENDPOINT_URL_DYNAMODB is not set{}: this test needs DynamoDB Local. Run \
             scripts/test.sh (it starts the emulators and sets the environment), or start \
             DynamoDB Local yourself and set AWS_ENDPOINT_URL_DYNAMODB, AWS_REGION, \
             AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
            if required { " (REQUIRE_DYNAMODB is set)" } else { "" }
        );
    };
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .load()
        .await
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
    store
        .write(Write::put(Item::new(&key)))
        .await
        .expect("put");
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
    drop(Arc::clone(&clock));
}
