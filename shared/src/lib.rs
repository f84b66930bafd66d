//! The account-security backend: every rule, the stores, the mailers and HTTP handling that
//! every Lambda function and the local server share.
//!
//! The crate's folders are its layers. Each may use the layers below it, never one above,
//! and no two modules use each other (`layering`, below, checks both on every test run):
//!
//! | layer | what it holds |
//! | --- | --- |
//! | [`routes`], [`web`] | the route table (which function serves which route, and which flow answers it) and the Lambda adapter; the end-user web pages' shared pieces (docs/web-pages.md) |
//! | [`flows`] | one module per user journey or route group: signup, email verification, login, tokens, recovery, the account's own views and protection, two-factor, the service's own routes, the cleanup job, SES's mail events |
//! | [`protections`] | what every flow shares: the back-off on guesses, rate limits, login history, security notices, sessions, re-authentication, second-factor checks |
//! | [`app`] | the state built once per cold start ([`app::App`]) and its configuration |
//! | [`credentials`] | what proves an identity: password hashing, TOTP, backup codes, security answers, access tokens, emailed one-time links |
//! | [`records`] | the items the product stores: keys, attribute names, typed records, and finding accounts by what people type |
//! | [`values`] | the values people type and the rules on them: email addresses, usernames, full names, new passwords, logins, secrets |
//! | plumbing | [`store`], [`mail`], [`http`] (requests, responses, problem documents), [`aws`], [`clock`], [`telemetry`], [`redact`]: used by every layer, using none |
#![deny(clippy::unwrap_used, clippy::expect_used)]

pub mod app;
pub mod aws;
pub mod clock;
pub mod credentials;
pub mod flows;
pub mod http;
pub mod mail;
pub mod protections;
pub mod records;
pub mod redact;
pub mod routes;
pub mod store;
pub mod telemetry;
pub mod values;
pub mod web;

#[cfg(test)]
mod layering;
