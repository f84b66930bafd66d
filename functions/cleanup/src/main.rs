//! The `cleanup` Lambda function, run on an EventBridge schedule: deletes accounts left
//! unverified too long and expired items DynamoDB's TTL sweep has not reached yet, within
//! the invocation's remaining time.

use std::sync::Arc;
use std::time::SystemTime;

use accounts::flows::cleanup;
use lambda_runtime::{LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    accounts::telemetry::init(true);
    // The cleanup needs none of the shared keys (it never sees a token or a TOTP secret).
    let keys = accounts::routes::KeysNeeded::default();
    let app = Arc::new(accounts::routes::lambda::app_from_environment_for(keys).await?);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<serde_json::Value>| {
        let app = app.clone();
        let invocation = accounts::telemetry::Invocation::start(&event.context.request_id, None);
        invocation.scope(async move {
            let budget = cleanup::budget(event.context.deadline(), SystemTime::now());
            cleanup::handle_scheduled_event(&app, &event.payload, budget)
                .await
                .map_err(lambda_runtime::Error::from)
        })
    }))
    .await
}
