//! The health check: the service is up when its store answers.

use http::StatusCode;

use crate::app::App;
use crate::http::{ApiResponse, Problem};

/// `GET /v1/health`
pub async fn health(app: &App) -> Result<ApiResponse, Problem> {
    match app.store.ping().await {
        Ok(()) => Ok(crate::http::status(StatusCode::OK, "ok")),
        Err(error) => {
            tracing::error!(error = format!("{error:#}"), "the store does not answer");
            let mut problem = Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "The service cannot reach its database.",
            );
            problem.retry_after = Some(1);
            Err(problem)
        }
    }
}
