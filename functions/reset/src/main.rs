//! The `reset` Lambda function: password and security-question recovery by email.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    accounts::routes::lambda::run::<accounts::routes::ResetRoute>().await
}
