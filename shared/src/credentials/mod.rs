//! What proves an identity: password hashing, authenticator (TOTP) codes, backup codes,
//! security answers, access tokens, emailed one-time links, and Google's and Apple's ID
//! tokens.

pub mod access_token;
pub mod backup_codes;
pub mod emailed_link;
pub mod oidc;
pub mod password;
pub mod security_answer;
pub mod totp;
