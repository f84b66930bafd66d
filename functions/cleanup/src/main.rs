//! The `cleanup` Lambda function, run on an EventBridge schedule: deletes accounts left
//! unverified too long and expired items DynamoDB's TTL sweep has not reached yet, within
//! the invocation's remaining time.

use std::time::SystemTime;

use accounts::flows::cleanup;
use accounts::routes::KeysNeeded;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    // The cleanup needs none of the shared keys (it never sees a token or a TOTP secret).
    accounts::routes::lambda::run_events(KeysNeeded::default(), |app, event| async move {
        let budget = cleanup::budget(event.context.deadline(), SystemTime::now());
        cleanup::handle_scheduled_event(&app, &event.payload, budget)
            .await
            .map(drop)
    })
    .await
}
