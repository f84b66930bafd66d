//! The `mail-events` Lambda function, invoked by the EventBridge rule on SES's bounce,
//! complaint, delivery-delay and reject events: marks each bounced or complaining
//! address on its account (see `accounts::flows::mail_events`).

use accounts::flows::mail_events;
use accounts::routes::KeysNeeded;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    // Marking an address needs none of the shared keys.
    accounts::routes::lambda::run_events(KeysNeeded::default(), |app, event| async move {
        mail_events::handle_event(&app, &event.payload)
            .await
            .map(drop)
    })
    .await
}
