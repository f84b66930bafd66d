//! The `login` Lambda function: the login routes of the API, served by the shared crate.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    accounts::http::lambda::run::<accounts::http::router::LoginRoute>().await
}
