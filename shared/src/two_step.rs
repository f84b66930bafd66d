//! Two-step verification as the rest of the product sees it: which second factors an
//! account has, and checking one where a flow demands it (login, password reset).

use serde::Deserialize;

use crate::app::App;
use crate::http::{ApiRequest, Problem};
use crate::records::User;
use crate::secret::Secret;
use crate::store::{Item, Write};

/// A second factor offered with a request: `{"method", "code"}` (for the security
/// question, `code` is the answer).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FactorProof {
    pub method: String,
    pub code: Secret,
}

/// The second-factor methods an account has enabled, in the order offered. Two-step
/// verification is on when the account has an authenticator app; until then the list
/// is empty and no flow asks for a second factor.
pub fn methods(_user: &User) -> Vec<&'static str> {
    Vec::new()
}

/// Demands a valid second factor for a password reset when the account has two-step
/// verification; returns the writes that spend the factor (to commit with the reset).
pub async fn require_for_reset(
    _app: &App,
    _request: &ApiRequest,
    user: &User,
    _lockout: Option<&Item>,
    _proof: Option<FactorProof>,
) -> Result<Vec<Write>, Problem> {
    if methods(user).is_empty() {
        return Ok(Vec::new());
    }
    Err(Problem::internal(&anyhow::anyhow!(
        "two-step verification is not available yet"
    )))
}
