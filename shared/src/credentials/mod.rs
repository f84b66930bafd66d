//! What proves an identity: password hashing, authenticator (TOTP) codes, backup codes,
//! security answers, access tokens and emailed one-time links.

pub mod access_token;
pub mod backup_codes;
pub mod emailed_link;
pub mod password;
pub mod security_answer;
pub mod totp;
