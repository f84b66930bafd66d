//! The flows: one module per user journey or route group, each answering its routes
//! (the route table, `routes`, says which module answers which route).

pub mod account;
pub mod account_security;
pub mod api_document;
pub mod cleanup;
pub mod email_verification;
pub mod login;
pub mod mail_events;
pub mod oauth;
pub mod recovery;
pub mod service;
pub mod signup;
pub mod tokens;
pub mod two_factor;
