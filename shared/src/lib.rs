//! The account-security backend: domain rules, storage, mail and HTTP handling that
//! every Lambda function and the local server share.
#![deny(clippy::unwrap_used, clippy::expect_used)]

pub mod access_token;
pub mod account;
pub mod account_security;
pub mod accounts;
pub mod api_document;
pub mod app;
pub mod aws;
pub mod aws_https;
pub mod backup_codes;
pub mod cleanup;
pub mod clock;
pub mod config;
pub mod email;
pub mod full_name;
pub mod health;
pub mod history;
pub mod http;
pub mod lockout;
pub mod login;
pub mod mail;
pub mod notify;
pub mod password;
pub mod rate_limit;
pub mod reauthentication;
pub mod records;
pub mod recovery;
pub mod recovery_link;
pub mod redact;
pub mod secret;
pub mod security_question;
pub mod session;
pub mod signup;
pub mod store;
pub mod telemetry;
pub mod totp;
pub mod two_factor;
pub mod two_step;
pub mod username;
pub mod verification;
