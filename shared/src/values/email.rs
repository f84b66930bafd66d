//! Email addresses, parsed once at the edge into a type that is known to be valid and
//! carries the canonical form used to tell two accounts apart.

use std::fmt;

use icu_normalizer::ComposingNormalizerBorrowed;

/// The longest address we accept (RFC 5321's path limit, less the angle brackets).
const MAX_ADDRESS_LEN: usize = 254;
const MAX_LOCAL_LEN: usize = 64;

/// A syntactically valid email address.
///
/// `address()` is what mail is sent to: the local part as typed (trimmed, NFC) and the
/// domain in lowercase ASCII (IDN domains in punycode). `canonical()` is the identity
/// used for uniqueness: the local part is also NFKC-normalised and lowercased, so
/// `José@Example.com` and `jose\u{301}@example.COM` are one account.
#[derive(Clone, PartialEq, Eq)]
pub struct EmailAddress {
    address: String,
    canonical: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not a valid email address")]
pub struct InvalidEmail;

impl EmailAddress {
    pub fn parse(input: &str) -> Result<EmailAddress, InvalidEmail> {
        let trimmed = ComposingNormalizerBorrowed::new_nfc().normalize(input.trim());
        let (local, domain) = trimmed.rsplit_once('@').ok_or(InvalidEmail)?;
        if !is_valid_local_part(local) {
            return Err(InvalidEmail);
        }
        let domain = ascii_domain(domain).ok_or(InvalidEmail)?;
        let address = format!("{local}@{domain}");
        if address.len() > MAX_ADDRESS_LEN {
            return Err(InvalidEmail);
        }
        let canonical_local = ComposingNormalizerBorrowed::new_nfkc()
            .normalize(local)
            .to_lowercase();
        let canonical = format!(
            "{}@{domain}",
            ComposingNormalizerBorrowed::new_nfc().normalize(&canonical_local)
        );
        Ok(EmailAddress { address, canonical })
    }

    /// An address a person gives for an account (at signup, or to correct it): like
    /// [`EmailAddress::parse`], but compatibility characters (fullwidth letters,
    /// ligatures, mathematical letters...) are refused rather than folded, so that no
    /// stored address can be a look-alike of another. Logins keep folding what is typed.
    pub fn parse_for_account(input: &str) -> Result<EmailAddress, InvalidEmail> {
        let composed = ComposingNormalizerBorrowed::new_nfc().normalize(input.trim());
        if ComposingNormalizerBorrowed::new_nfkc().normalize(&composed) != composed {
            return Err(InvalidEmail);
        }
        EmailAddress::parse(input)
    }

    /// The address mail goes to.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The identity of the address for uniqueness and look-ups.
    pub fn canonical(&self) -> &str {
        &self.canonical
    }

    /// The local part's canonical form (for "password contains your email" checks).
    pub fn canonical_local_part(&self) -> &str {
        self.canonical
            .rsplit_once('@')
            .map_or(self.canonical.as_str(), |(local, _)| local)
    }
}

/// A dot-atom local part (RFC 5322) that also allows non-ASCII letters (RFC 6531).
/// Quoted local parts are refused: nobody types them, and they hide confusables.
fn is_valid_local_part(local: &str) -> bool {
    const SPECIALS: &str = "!#$%&'*+-/=?^_`{|}~";
    !local.is_empty()
        && local.len() <= MAX_LOCAL_LEN
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && local.chars().all(|c| {
            c.is_ascii_alphanumeric()
                || c == '.'
                || SPECIALS.contains(c)
                || (!c.is_ascii() && !c.is_control() && !c.is_whitespace())
        })
}

/// The domain in lowercase ASCII: IDNA (UTS 46) for internationalised names, at least
/// two labels, and a top-level label that is not all digits (no IP literals).
fn ascii_domain(domain: &str) -> Option<String> {
    if domain.is_empty() || domain.starts_with('[') {
        return None;
    }
    let ascii = idna::domain_to_ascii_strict(domain).ok()?;
    let labels: Vec<&str> = ascii.split('.').collect();
    let well_formed = labels.len() >= 2
        && labels.iter().all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
        && labels
            .last()
            .is_some_and(|tld| !tld.bytes().all(|b| b.is_ascii_digit()));
    well_formed.then_some(ascii)
}

impl fmt::Debug for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Addresses are personal data: logs get the domain only.
        let domain = self.address.rsplit_once('@').map_or("", |(_, d)| d);
        write!(f, "EmailAddress(…@{domain})")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn an_address_is_trimmed_and_its_domain_lowercased() {
        let email = EmailAddress::parse("  Ada.Lovelace@Example.COM \n").unwrap();
        assert_eq!(email.address(), "Ada.Lovelace@example.com");
        assert_eq!(email.canonical(), "ada.lovelace@example.com");
    }

    #[test]
    fn case_and_unicode_variants_share_one_canonical_form() {
        let composed = EmailAddress::parse("JOS\u{c9}@example.com").unwrap();
        let decomposed = EmailAddress::parse("jose\u{301}@EXAMPLE.com").unwrap();
        assert_eq!(composed.canonical(), decomposed.canonical());
    }

    #[test]
    fn an_internationalised_domain_is_stored_in_punycode() {
        let email = EmailAddress::parse("anna@bücher.example").unwrap();
        assert_eq!(email.address(), "anna@xn--bcher-kva.example");
    }

    #[test]
    fn malformed_addresses_are_refused() {
        let long_local = format!("{}@example.com", "a".repeat(65));
        let long_domain = format!("a@{}.com", "b".repeat(250));
        for input in [
            "",
            "plainaddress",
            "@example.com",
            "user@",
            "user@localhost",
            "user@@example.com",
            ".user@example.com",
            "user.@example.com",
            "us..er@example.com",
            "us er@example.com",
            "user@exa mple.com",
            "user@[127.0.0.1]",
            "user@127.0.0.1",
            "user@-example.com",
            "\"quoted\"@example.com",
            "user\u{0}@example.com",
            long_local.as_str(),
            long_domain.as_str(),
        ] {
            assert_eq!(EmailAddress::parse(input), Err(InvalidEmail), "{input:?}");
        }
    }

    #[test]
    fn plus_addressing_and_subdomains_are_accepted() {
        let email = EmailAddress::parse("dev+signup@mail.example.co.uk").unwrap();
        assert_eq!(email.canonical_local_part(), "dev+signup");
    }

    #[test]
    fn debug_output_hides_the_local_part() {
        let email = EmailAddress::parse("secret.person@example.com").unwrap();
        assert!(!format!("{email:?}").contains("secret"));
    }

    #[test]
    fn an_account_address_with_compatibility_characters_is_refused() {
        for lookalike in [
            "\u{ff41}lice@example.com",
            "alice@\u{ff45}xample.com",
            "\u{fb01}nance@example.com",
            "\u{1d41a}lice@example.com",
        ] {
            assert_eq!(
                EmailAddress::parse_for_account(lookalike),
                Err(InvalidEmail),
                "{lookalike}"
            );
            // A login still folds what is typed onto the plain account.
            assert!(EmailAddress::parse(lookalike).is_ok(), "{lookalike}");
        }
        let composed = EmailAddress::parse_for_account("Jos\u{e9}@Example.com").unwrap();
        let decomposed = EmailAddress::parse_for_account("Jose\u{301}@example.com").unwrap();
        assert_eq!(composed.canonical(), decomposed.canonical());
    }
}
