//! The `two-factor` Lambda function: enrolling and managing two-step verification.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    accounts::routes::lambda::run::<accounts::routes::TwoFactorRoute>().await
}
