//! The account-security backend: domain rules, storage, mail and HTTP handling that
//! every Lambda function and the local server share.
#![deny(clippy::unwrap_used, clippy::expect_used)]

pub mod clock;
pub mod store;
