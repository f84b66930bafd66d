//! Secrets and single-use tokens: random values from the OS, wrapped so that they can
//! never be printed or logged, and stored only as their SHA-256.

use std::fmt;

use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroize;

/// A string that must not be shown: passwords, answers, tokens. Its `Debug` output
/// is redacted and it has no `Display`, so `{}`/`{:?}` in a log line cannot leak it.
#[derive(Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself: call this only where the value is used, never to log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        // Wipe the bytes so a later allocation cannot read them back.
        self.0.zeroize();
    }
}

/// Fills a buffer from the operating system's random number generator.
pub fn random_bytes<const N: usize>() -> anyhow::Result<[u8; N]> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes)
        .map_err(|e| anyhow::anyhow!("{e}"))
        .context("the OS random number generator failed")?;
    Ok(bytes)
}

/// A uniformly random number in `0..bound`, from the OS RNG (rejection sampling, so
/// no value is more likely than another).
pub fn random_below(bound: u32) -> anyhow::Result<u32> {
    anyhow::ensure!(bound > 0, "random_below needs a positive bound");
    let zone = u32::MAX - (u32::MAX % bound);
    loop {
        let value = u32::from_le_bytes(random_bytes::<4>()?);
        if value < zone {
            return Ok(value % bound);
        }
    }
}

/// The SHA-256 of a secret, as stored: hex text.
pub fn sha256_hex(value: &str) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let digest = Sha256::digest(value.as_bytes());
    let mut hex = String::with_capacity(64);
    // Not `format!` per byte: that allocated 32 strings per digest, on every request
    // that presents a token.
    for byte in digest {
        hex.push(char::from(DIGITS[usize::from(byte >> 4)]));
        hex.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    hex
}

/// Compares two stored digests without leaking where they differ.
pub fn digests_match(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

/// A single-use token handed to a person (in a link or a response): 256 random bits
/// plus a public part that says which record it belongs to (the "selector/verifier"
/// pattern: the selector finds the record, the verifier is checked against a hash).
#[derive(Clone, PartialEq, Eq)]
pub struct Token {
    selector: String,
    verifier: Secret,
}

/// Separates the selector from the verifier in a token's text.
const TOKEN_SEPARATOR: char = '.';
/// Joins the parts of a selector (ids are UUIDs, which never contain it).
const PART_JOIN: char = '_';

impl Token {
    /// A fresh token for the record named by `selector` (which must not contain '.').
    pub fn generate(selector: &str) -> anyhow::Result<Token> {
        anyhow::ensure!(
            !selector.contains(TOKEN_SEPARATOR) && !selector.is_empty(),
            "a token selector must be non-empty and free of '{TOKEN_SEPARATOR}'"
        );
        let verifier = URL_SAFE_NO_PAD.encode(random_bytes::<32>()?);
        Ok(Token {
            selector: selector.to_owned(),
            verifier: Secret(verifier),
        })
    }

    /// Reads a token from its text; `None` when it cannot be one of ours.
    pub fn parse(text: &str) -> Option<Token> {
        let (selector, verifier) = text.trim().split_once(TOKEN_SEPARATOR)?;
        let decoded = URL_SAFE_NO_PAD.decode(verifier).ok()?;
        let selector_ok = !selector.is_empty()
            && selector.len() <= 128
            && selector
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        (selector_ok && decoded.len() == 32).then(|| Token {
            selector: selector.to_owned(),
            verifier: Secret(verifier.to_owned()),
        })
    }

    pub fn selector(&self) -> &str {
        &self.selector
    }

    /// A token whose selector names several parts (an account, one of its records, a
    /// generation).
    pub fn for_parts(parts: &[&str]) -> anyhow::Result<Token> {
        anyhow::ensure!(
            parts.iter().all(|part| !part.contains(PART_JOIN)),
            "parts of a token selector cannot contain '{PART_JOIN}'"
        );
        Token::generate(&parts.join(&PART_JOIN.to_string()))
    }

    /// The parts of a [`Token::for_parts`] selector.
    pub fn parts(&self) -> Vec<&str> {
        self.selector.split(PART_JOIN).collect()
    }

    /// What the store keeps: the SHA-256 of the verifier, bound to the selector.
    pub fn digest(&self) -> String {
        sha256_hex(&self.expose())
    }

    /// The token's text, for a link or a response body only.
    pub fn expose(&self) -> String {
        format!(
            "{}{TOKEN_SEPARATOR}{}",
            self.selector,
            self.verifier.expose()
        )
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Token({}.[redacted])", self.selector)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn a_digest_is_lowercase_hex_sha256() {
        // FIPS 180-2, appendix B.1.
        assert_eq!(
            sha256_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn a_secret_never_shows_its_value_in_debug_output() {
        let secret = Secret::new("hunter22");
        assert!(!format!("{secret:?}").contains("hunter22"));
    }

    #[test]
    fn a_token_round_trips_through_its_text_and_keeps_its_digest() {
        let token = Token::generate("user-1").unwrap();
        let parsed = Token::parse(&token.expose()).unwrap();
        assert_eq!(parsed.selector(), "user-1");
        assert_eq!(parsed.digest(), token.digest());
        assert!(!format!("{token:?}").contains(token.verifier.expose()));
    }

    #[test]
    fn two_tokens_never_share_a_verifier() {
        let a = Token::generate("u").unwrap();
        let b = Token::generate("u").unwrap();
        assert_ne!(a.digest(), b.digest());
    }

    #[test]
    fn malformed_token_text_is_not_a_token() {
        for text in [
            "",
            "abc",
            "u.",
            ".abc",
            "u.not-base64!",
            "u.c2hvcnQ",
            "a b.cc",
        ] {
            assert!(Token::parse(text).is_none(), "{text}");
        }
    }

    #[test]
    fn a_digest_moved_to_another_selector_does_not_match() {
        let token = Token::generate("user-1").unwrap();
        let text = token.expose().replace("user-1", "user-2");
        assert_ne!(Token::parse(&text).unwrap().digest(), token.digest());
    }

    #[test]
    fn random_below_stays_in_range() {
        for _ in 0..1000 {
            assert!(random_below(10).unwrap() < 10);
        }
    }
}
