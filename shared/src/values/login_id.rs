//! What a person types as their login: an email address or a username.

use crate::values::email::EmailAddress;
use crate::values::username::Username;

/// What a person typed as their login, in the form that identifies an account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LoginId {
    Email(EmailAddress),
    Username(Username),
}

impl LoginId {
    /// An email when it contains `@` (usernames cannot), a username otherwise.
    pub fn parse(text: &str) -> Option<LoginId> {
        if text.contains('@') {
            EmailAddress::parse(text).ok().map(LoginId::Email)
        } else {
            Username::parse(text).ok().map(LoginId::Username)
        }
    }

    /// The canonical text, shared by every case and Unicode variant of the login.
    pub fn canonical(&self) -> &str {
        match self {
            LoginId::Email(email) => email.canonical(),
            LoginId::Username(name) => name.canonical(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_at_sign_makes_a_login_an_address() {
        assert!(matches!(
            LoginId::parse("Ada@Example.com"),
            Some(LoginId::Email(_))
        ));
        assert!(matches!(
            LoginId::parse("ada_l"),
            Some(LoginId::Username(_))
        ));
        assert_eq!(
            LoginId::parse("ADA@example.com").map(|l| l.canonical().to_owned()),
            Some("ada@example.com".to_owned())
        );
        assert_eq!(LoginId::parse("two words"), None);
    }
}
