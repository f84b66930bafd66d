//! The protections every flow shares: the back-off on guesses, rate limits, the login
//! history, security notices, sessions, re-authentication and second-factor checks.

pub mod backoff;
pub mod login_history;
pub mod rate_limit;
pub mod reauthentication;
pub mod second_factors;
pub mod security_notices;
pub mod sessions;
