//! The account-security backend: domain rules, storage, mail and HTTP handling that
//! every Lambda function and the local server share.
#![deny(clippy::unwrap_used, clippy::expect_used)]

pub mod access_token;
pub mod account;
pub mod accounts;
pub mod app;
pub mod clock;
pub mod config;
pub mod email;
pub mod health;
pub mod history;
pub mod http;
pub mod lockout;
pub mod login;
pub mod mail;
pub mod password;
pub mod rate_limit;
pub mod records;
pub mod secret;
pub mod session;
pub mod signup;
pub mod store;
pub mod telemetry;
pub mod username;
pub mod verification;
