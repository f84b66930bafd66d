//! The `mail-events` Lambda function, invoked by the EventBridge rule on SES's bounce,
//! complaint, delivery-delay and reject events: marks each bounced or complaining
//! address on its account (see `accounts::flows::mail_events`).

use std::sync::Arc;

use accounts::flows::mail_events;
use lambda_runtime::{LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    accounts::telemetry::init(true);
    // Marking an address needs none of the shared keys.
    let keys = accounts::routes::KeysNeeded::default();
    let app = Arc::new(accounts::routes::lambda::app_from_environment_for(keys).await?);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<serde_json::Value>| {
        let app = app.clone();
        let invocation = accounts::telemetry::Invocation::start(&event.context.request_id, None);
        invocation.scope(async move {
            mail_events::handle_event(&app, &event.payload)
                .await
                .map(|_report| ())
                .map_err(lambda_runtime::Error::from)
        })
    }))
    .await
}
