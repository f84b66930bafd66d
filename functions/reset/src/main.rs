//! The `reset` Lambda function: password and security-question recovery by email.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    accounts::http::lambda::run::<accounts::http::router::ResetRoute>().await
}
