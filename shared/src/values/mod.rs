//! The values people type, parsed once at the edge into types known to be valid: email
//! addresses, usernames, full names, new passwords, places to return to after a login, and
//! secrets (which cannot be printed).

pub mod email;
pub mod full_name;
pub mod login_id;
pub mod new_password;
pub mod return_to;
pub mod secret;
pub mod username;
