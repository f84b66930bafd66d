//! The `verify` Lambda function: the verify routes of the API, served by the shared crate.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    accounts::routes::lambda::run::<accounts::routes::VerifyRoute>().await
}
