//! Re-authentication: the account password checked again before a sensitive change by a
//! signed-in person (or by the holder of an emailed link), under a back-off counter of
//! its own. Like a login, the check first claims the counter (refused while locked, so
//! parallel guesses get no extra tries) and a wrong password counts as a failure; unlike
//! a login, failures here never lock the account's login, and login failures (which
//! anyone who knows the address can cause) never lock these checks.

use http::StatusCode;

use crate::app::App;
use crate::credentials::password::Verdict;
use crate::http::{ApiRequest, Problem};
use crate::protections::backoff::{Claim, Counter};
use crate::protections::login_history;
use crate::records::User;
use crate::store::Write;
use crate::values::secret::Secret;

/// A right password whose claim is still held, for a caller that ends with one write or
/// transaction: [`Reauthenticated::succeeded`] goes into it (a success clears the
/// failures), which saves a separate release; a caller that stops before must
/// [`Reauthenticated::finish`] with its error, which releases the claim.
pub struct Reauthenticated {
    claim: Claim,
}

impl Reauthenticated {
    /// The write that ends the claim and the run of failures, for the final transaction.
    pub fn succeeded(&self) -> Write {
        self.claim.succeeded()
    }

    /// Hands back what the caller's last step answered; when that failed, nothing was
    /// committed, so the claim is released now rather than left to its lease.
    pub async fn finish<T>(&self, app: &App, outcome: Result<T, Problem>) -> Result<T, Problem> {
        if outcome.is_err() {
            self.claim.release(app.store.as_ref(), app.now()).await;
        }
        outcome
    }
}

pub fn wrong_password() -> Problem {
    Problem::new(
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
        "The password is not right.",
    )
}

/// Checks `password` against the account's under the re-authentication counter; a wrong
/// one is recorded (counter and login history, in parallel) and answered `401
/// invalid_credentials`, a locked counter `429`.
pub async fn check_password(
    app: &App,
    request: &ApiRequest,
    user: &User,
    password: &Secret,
) -> Result<Reauthenticated, Problem> {
    let counter = Counter::Reauthentication { user_id: &user.id };
    let claim = match Claim::take(app.store.as_ref(), counter, app.now()).await? {
        Ok(claim) => claim,
        Err(wait) => return Err(Problem::rate_limited(wait)),
    };
    match app
        .passwords
        .verify(password, Some(&user.password_hash))
        .await?
    {
        Verdict::Right { .. } => Ok(Reauthenticated { claim }),
        Verdict::Wrong => {
            login_history::count_wrong_password(
                app.store.as_ref(),
                &claim,
                Some(&user.id),
                &request.client,
                app.now(),
            )
            .await?;
            Err(wrong_password())
        }
    }
}
