//! Usernames: public handles people can log in with, unique regardless of case.

use std::fmt;

const MIN_LEN: usize = 3;
const MAX_LEN: usize = 30;

/// A valid username: 3 to 30 ASCII letters, digits, `.`, `_` or `-`, starting and ending
/// with a letter or digit. Never contains `@`, so a login is an email exactly when it
/// contains one.
#[derive(Clone, PartialEq, Eq)]
pub struct Username {
    display: String,
    canonical: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not a valid username")]
pub struct InvalidUsername;

impl Username {
    pub fn parse(input: &str) -> Result<Username, InvalidUsername> {
        let name = input.trim();
        let edges_ok = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
        let valid = (MIN_LEN..=MAX_LEN).contains(&name.len())
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
            && edges_ok(name.chars().next())
            && edges_ok(name.chars().last());
        if !valid {
            return Err(InvalidUsername);
        }
        Ok(Username {
            display: name.to_owned(),
            canonical: name.to_ascii_lowercase(),
        })
    }

    /// As the person typed it.
    pub fn as_str(&self) -> &str {
        &self.display
    }

    /// The identity for uniqueness and look-ups.
    pub fn canonical(&self) -> &str {
        &self.canonical
    }
}

impl fmt::Debug for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Username({})", self.display)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_username_keeps_its_case_for_display_but_not_for_identity() {
        let name = Username::parse(" Ada_L ").unwrap();
        assert_eq!(name.as_str(), "Ada_L");
        assert_eq!(name.canonical(), "ada_l");
    }

    #[test]
    fn usernames_outside_the_rules_are_refused() {
        let too_long = "a".repeat(31);
        for input in [
            "ab",
            "a@b.c",
            "_abc",
            "abc-",
            "a b c",
            "ünïcode",
            too_long.as_str(),
        ] {
            assert_eq!(Username::parse(input), Err(InvalidUsername), "{input}");
        }
    }
}
