//! New passwords: the strength policy every password must meet before it is hashed for
//! storage, and the normal form passwords are hashed and checked in.

use std::sync::LazyLock;

use icu_normalizer::ComposingNormalizerBorrowed;

use crate::values::email::EmailAddress;
use crate::values::secret::Secret;
use crate::values::username::Username;

pub const MIN_CHARS: usize = 8;
pub const MAX_CHARS: usize = 128;

/// The bundled list of common passwords (lowercase, byte-sorted; see data/README.md).
static COMMON_PASSWORDS: &str = include_str!("../../data/common-passwords.txt");
static COMMON_SORTED: LazyLock<Vec<&'static str>> =
    LazyLock::new(|| COMMON_PASSWORDS.lines().collect());

/// Why a password was refused; each is reported as a field error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Weakness {
    TooShort,
    TooLong,
    Common,
    ContainsEmail,
    ContainsUsername,
}

impl Weakness {
    pub fn code(self) -> &'static str {
        match self {
            Weakness::TooShort => "too_short",
            Weakness::TooLong => "too_long",
            Weakness::Common => "common",
            Weakness::ContainsEmail => "contains_email",
            Weakness::ContainsUsername => "contains_username",
        }
    }
}

/// A password that met the policy: the only kind that can be hashed for storage.
pub struct NewPassword(Secret);

impl NewPassword {
    /// Checks a proposed password against the policy. Length counts characters (after
    /// NFKC normalisation, as NIST SP 800-63B recommends), not bytes.
    pub fn parse(
        input: &Secret,
        email: Option<&EmailAddress>,
        username: Option<&Username>,
    ) -> Result<NewPassword, Vec<Weakness>> {
        let normalised = normalise(input);
        let text = normalised.expose();
        let chars = text.chars().count();
        let lower = text.to_lowercase();
        let mut weaknesses = Vec::new();
        if chars < MIN_CHARS {
            weaknesses.push(Weakness::TooShort);
        }
        if chars > MAX_CHARS {
            weaknesses.push(Weakness::TooLong);
        }
        if is_common(&lower) {
            weaknesses.push(Weakness::Common);
        }
        // A local part of one or two characters would refuse half of all passwords.
        if email.is_some_and(|e| {
            let local = e.canonical_local_part();
            local.chars().count() >= 3 && lower.contains(local)
        }) {
            weaknesses.push(Weakness::ContainsEmail);
        }
        if username.is_some_and(|u| lower.contains(u.canonical())) {
            weaknesses.push(Weakness::ContainsUsername);
        }
        if weaknesses.is_empty() {
            Ok(NewPassword(normalised))
        } else {
            Err(weaknesses)
        }
    }
}

impl NewPassword {
    /// The password, normalised.
    pub fn as_secret(&self) -> &Secret {
        &self.0
    }

    /// A replacement password for an existing account (`new_password` in a reset or a
    /// change), checked against the account's own email and username.
    pub fn for_account(
        input: &Secret,
        email: &str,
        username: Option<&str>,
    ) -> Result<NewPassword, crate::http::Problem> {
        let email = EmailAddress::parse(email).ok();
        let username = username.and_then(|u| Username::parse(u).ok());
        NewPassword::parse(input, email.as_ref(), username.as_ref()).map_err(|weaknesses| {
            crate::http::Problem::validation(
                weaknesses
                    .iter()
                    .map(|w| crate::http::FieldError::new("new_password", w.code()))
                    .collect(),
            )
        })
    }
}

fn is_common(lowercase: &str) -> bool {
    COMMON_SORTED.binary_search(&lowercase).is_ok()
}

/// The form a password is hashed in, so that the same characters typed on different
/// keyboards (composed or decomposed accents, full-width digits) verify alike.
pub fn normalise(input: &Secret) -> Secret {
    Secret::new(
        ComposingNormalizerBorrowed::new_nfkc()
            .normalize(input.expose())
            .into_owned(),
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn secret(s: &str) -> Secret {
        Secret::new(s)
    }

    fn weaknesses(password: &str) -> Vec<Weakness> {
        let email = EmailAddress::parse("marguerite@example.com").unwrap();
        let username = Username::parse("Moonbeam").unwrap();
        match NewPassword::parse(&secret(password), Some(&email), Some(&username)) {
            Ok(_) => vec![],
            Err(w) => w,
        }
    }

    #[test]
    fn a_long_uncommon_password_is_accepted() {
        assert!(weaknesses("correct horse battery staple").is_empty());
    }

    #[test]
    fn length_counts_characters_not_bytes() {
        // Seven two-byte characters are 14 bytes but still too short.
        assert_eq!(weaknesses("ééééééé"), vec![Weakness::TooShort]);
        assert!(weaknesses("éééééééé").is_empty());
        assert_eq!(weaknesses(&"é".repeat(129)), vec![Weakness::TooLong]);
        assert!(weaknesses(&"é".repeat(128)).is_empty());
    }

    #[test]
    fn common_passwords_are_refused_whatever_their_case() {
        assert_eq!(weaknesses("PASSWORD123"), vec![Weakness::Common]);
        assert_eq!(weaknesses("iloveyou2"), vec![Weakness::Common]);
    }

    #[test]
    fn the_bundled_list_is_large_and_sorted() {
        assert!(COMMON_SORTED.len() >= 10_000);
        assert!(COMMON_SORTED.windows(2).all(|w| w[0] < w[1]));
    }

    /// Shorter entries could never match: a password that short is refused first.
    #[test]
    fn the_bundled_list_holds_only_passwords_of_an_allowed_length() {
        assert!(
            COMMON_SORTED
                .iter()
                .all(|entry| (MIN_CHARS..=MAX_CHARS).contains(&entry.chars().count()))
        );
    }

    #[test]
    fn a_password_containing_the_email_or_username_is_refused() {
        assert_eq!(weaknesses("xxMarguerite!!"), vec![Weakness::ContainsEmail]);
        assert_eq!(
            weaknesses("my-moonbeam-42"),
            vec![Weakness::ContainsUsername]
        );
    }
}
