//! The `web` Lambda function: the end-user web pages (and API Gateway's `$default` route),
//! served by the shared crate.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    accounts::routes::lambda::run_web().await
}
