//! Time-based one-time passwords (RFC 6238: HMAC-SHA-1, 6 digits, 30-second steps,
//! one step of clock drift either way) as a credential type: the shared secret, its
//! `otpauth://` URL and QR code for enrolment, step-precise verification with replay
//! protection, and encryption of the secret at rest.
//!
//! Everything here is pure: the caller reads "now" from its clock, loads the last used
//! time step of the account, and stores the step that [`matching_step`] returns with a
//! conditional write (`last_step < :step`), so that two requests racing with the same
//! code cannot both succeed.

use std::fmt;

use anyhow::{Context, anyhow, bail, ensure};
use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use qrcodegen::{QrCode, QrCodeEcc};
use subtle::ConstantTimeEq;
use totp_rs::{Algorithm, Builder, Totp};
use zeroize::{Zeroize, Zeroizing};

use crate::values::secret::{Secret, random_bytes};

/// Length of a TOTP secret: 160 bits, the size RFC 4226 recommends for HMAC-SHA-1.
pub const SECRET_LEN: usize = 20;
/// Digits in a code.
pub const DIGITS: usize = 6;
/// Length of a time step in seconds.
pub const STEP_SECONDS: i64 = 30;
/// Steps of clock drift accepted on either side of the current one.
pub const DRIFT_STEPS: i64 = 1;

/// The shared secret of an authenticator app. It has no `Display`, its `Debug` output
/// is redacted, and its bytes are wiped when it is dropped.
pub struct TotpSecret {
    bytes: [u8; SECRET_LEN],
}

impl TotpSecret {
    /// A fresh secret: 20 bytes from the operating system's random number generator.
    pub fn generate() -> anyhow::Result<TotpSecret> {
        Ok(TotpSecret {
            bytes: random_bytes::<SECRET_LEN>()?,
        })
    }

    /// A secret from its raw bytes (exactly [`SECRET_LEN`] of them).
    pub fn from_bytes(bytes: &[u8]) -> anyhow::Result<TotpSecret> {
        let bytes: [u8; SECRET_LEN] = bytes
            .try_into()
            .map_err(|_| anyhow!("a TOTP secret must be {SECRET_LEN} bytes"))?;
        Ok(TotpSecret { bytes })
    }

    /// The secret in RFC 4648 base32 without padding, as a person types it into an
    /// authenticator app. Show it once, at setup; never log it.
    pub fn base32(&self) -> Secret {
        Secret::new(totp_rs::Secret::new_stack(self.bytes).to_base32())
    }

    /// The RFC 6238 generator for this secret. `Builder::build` checks the parameters
    /// (digits, step, secret of at least 128 bits), which are constant here.
    fn totp(&self) -> anyhow::Result<Totp> {
        Builder::new()
            .with_algorithm(Algorithm::SHA1)
            .with_digits(DIGITS as u8)
            .with_skew(DRIFT_STEPS as u16)
            .with_step_duration(STEP_SECONDS as u64)
            .with_secret(totp_rs::Secret::new_stack(self.bytes))
            .build()
            .map_err(|e| anyhow!("cannot set up TOTP: {e}"))
    }
}

impl fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TotpSecret([redacted])")
    }
}

impl Drop for TotpSecret {
    fn drop(&mut self) {
        self.bytes.zeroize();
    }
}

/// The time step that contains `unix_time` (`floor(unix_time / 30)`).
pub fn step_of(unix_time: i64) -> i64 {
    unix_time.div_euclid(STEP_SECONDS)
}

/// The code for the step that contains `unix_time` (what an authenticator app shows).
pub fn code_at(secret: &TotpSecret, unix_time: i64) -> anyhow::Result<Secret> {
    let totp = secret.totp()?;
    let code = code_of_step(&totp, step_of(unix_time))
        .context("no TOTP code exists for a time before 1970")?;
    let text = String::from_utf8(code.to_vec()).context("a TOTP code is ASCII digits")?;
    Ok(Secret::new(text))
}

/// The code of one time step, as ASCII digits; `None` for a step before 1970.
fn code_of_step(totp: &Totp, step: i64) -> Option<Zeroizing<[u8; DIGITS]>> {
    let time = u64::try_from(step).ok()?.checked_mul(STEP_SECONDS as u64)?;
    // `Token`'s `Display` pads to the number of digits.
    let text = Zeroizing::new(totp.generate(time).to_string());
    let digits: [u8; DIGITS] = text.as_bytes().try_into().ok()?;
    Some(Zeroizing::new(digits))
}

/// What a person typed, as exactly six ASCII digits; spaces are dropped because apps
/// show codes as "123 456".
fn typed_code(code: &str) -> Option<Zeroizing<[u8; DIGITS]>> {
    if code.len() > 4 * DIGITS {
        return None;
    }
    let mut digits = Zeroizing::new([0u8; DIGITS]);
    let mut count = 0;
    for byte in code.bytes().filter(|b| !b.is_ascii_whitespace()) {
        if !byte.is_ascii_digit() || count == DIGITS {
            return None;
        }
        digits[count] = byte;
        count += 1;
    }
    (count == DIGITS).then_some(digits)
}

/// Checks `code` against the steps `step_of(now) - 1`, `step_of(now)` and
/// `step_of(now) + 1`, and returns the step whose code it is, but only if that step is
/// later than `last_used_step` (a code is accepted once, and never one older than the
/// last accepted code). Codes are compared in constant time, and every candidate step is
/// computed and compared whatever the outcome.
///
/// The caller must store the returned step with a conditional write
/// (`attribute_not_exists(last_step) OR last_step < :step`) and treat a failed condition
/// as a refused code: that write, not this check, is what stops two concurrent requests
/// from both using one code.
pub fn matching_step(
    secret: &TotpSecret,
    code: &str,
    now: i64,
    last_used_step: Option<i64>,
) -> Option<i64> {
    let typed = typed_code(code)?;
    let totp = secret.totp().ok()?;
    let current = step_of(now);
    let mut found = None;
    for offset in -DRIFT_STEPS..=DRIFT_STEPS {
        let Some(step) = current.checked_add(offset) else {
            continue;
        };
        let Some(expected) = code_of_step(&totp, step) else {
            continue;
        };
        let matches: bool = expected.ct_eq(&*typed).into();
        let unused = last_used_step.is_none_or(|last| step > last);
        // The earliest acceptable step: it leaves later steps usable.
        if matches && unused && found.is_none() {
            found = Some(step);
        }
    }
    found
}

/// Characters escaped in the label and parameters of an `otpauth://` URL: everything but
/// RFC 3986 unreserved characters (a space becomes `%20`, as authenticator apps expect,
/// and a `:` inside the issuer or account name becomes `%3A`).
const URL_COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The enrolment URL (Google Authenticator's key URI format):
/// `otpauth://totp/Issuer:account?secret=...&issuer=...&algorithm=SHA1&digits=6&period=30`.
/// It contains the secret: return it to the person enrolling, never log it.
pub fn otpauth_url(secret: &TotpSecret, issuer: &str, account_name: &str) -> String {
    let issuer = utf8_percent_encode(issuer, URL_COMPONENT).to_string();
    let account = utf8_percent_encode(account_name, URL_COMPONENT);
    let base32 = secret.base32();
    format!(
        "otpauth://totp/{issuer}:{account}?secret={}&issuer={issuer}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECONDS}",
        base32.expose()
    )
}

/// Modules of quiet zone around a QR code, as the QR specification requires.
const QR_BORDER: i32 = 4;

/// The URL as a QR code in SVG (one path of unit squares, scalable without blur).
/// Medium error correction keeps the code small enough to scan from a screen.
pub fn qr_svg(url: &str) -> anyhow::Result<String> {
    let qr = QrCode::encode_text(url, QrCodeEcc::Medium)
        .map_err(|e| anyhow!("cannot encode the QR code: {e}"))?;
    let size = qr.size();
    let dimension = size + 2 * QR_BORDER;
    // One rectangle per horizontal run of dark modules, not one square per module: the
    // set-up page's weight is mostly this path (issue 15's 30 KB page budget).
    let mut path = String::new();
    for y in 0..size {
        let mut x = 0;
        while x < size {
            if !qr.get_module(x, y) {
                x += 1;
                continue;
            }
            let start = x;
            while x < size && qr.get_module(x, y) {
                x += 1;
            }
            let run = x - start;
            path.push_str(&format!(
                "M{},{}h{run}v1h-{run}z",
                start + QR_BORDER,
                y + QR_BORDER
            ));
        }
    }
    Ok(format!(
        concat!(
            r#"<svg xmlns="http://www.w3.org/2000/svg" version="1.1" viewBox="0 0 {0} {0}" "#,
            r#"stroke="none" shape-rendering="crispEdges" role="img" aria-label="QR code">"#,
            r##"<rect width="100%" height="100%" fill="#FFFFFF"/>"##,
            r##"<path d="{1}" fill="#000000"/></svg>"##,
        ),
        dimension, path
    ))
}

/// Length of an AES-256-GCM key.
const KEY_LEN: usize = 32;
/// Length of an AES-GCM authentication tag.
const TAG_LEN: usize = 16;
/// The format version that starts every ciphertext.
const FORMAT_VERSION: &str = "v1";

/// The AES-256-GCM key that encrypts TOTP secrets at rest, from configuration (32 bytes
/// as standard base64). Its `Debug` output shows only its key id.
pub struct TotpKey {
    bytes: Zeroizing<[u8; KEY_LEN]>,
    kid: String,
}

impl TotpKey {
    /// A key from its configuration text: standard base64 of 32 random bytes
    /// (`openssl rand -base64 32`).
    pub fn from_base64(text: &str) -> anyhow::Result<TotpKey> {
        let decoded = Zeroizing::new(
            STANDARD
                .decode(text.trim())
                .map_err(|_| anyhow!("the TOTP encryption key is not valid base64"))?,
        );
        TotpKey::from_bytes(&decoded)
    }

    /// A key from its 32 raw bytes.
    pub fn from_bytes(bytes: &[u8]) -> anyhow::Result<TotpKey> {
        let bytes: [u8; KEY_LEN] = bytes
            .try_into()
            .map_err(|_| anyhow!("the TOTP encryption key must be {KEY_LEN} bytes"))?;
        let bytes = Zeroizing::new(bytes);
        Ok(TotpKey {
            kid: key_id(&bytes[..]),
            bytes,
        })
    }

    /// A fresh random key (the local server and tests, where none is configured).
    pub fn generate() -> anyhow::Result<TotpKey> {
        TotpKey::from_bytes(&Zeroizing::new(random_bytes::<KEY_LEN>()?)[..])
    }

    /// The key id written into each ciphertext: the first 8 hex digits of the key's SHA-256.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    fn aead_key(&self) -> anyhow::Result<LessSafeKey> {
        let key = UnboundKey::new(&AES_256_GCM, &self.bytes[..])
            .map_err(|_| anyhow!("cannot set up the TOTP encryption key"))?;
        Ok(LessSafeKey::new(key))
    }

    /// Encrypts a secret for the account `associated_data` (its user id), as
    /// `v1.<kid>.<base64url(nonce || ciphertext || tag)>` with a random 96-bit nonce. The
    /// user id is authenticated (not stored), so the text only decrypts for that account.
    pub fn encrypt(&self, secret: &TotpSecret, associated_data: &str) -> anyhow::Result<String> {
        let nonce = random_bytes::<NONCE_LEN>()?;
        let mut sealed = Zeroizing::new(Vec::with_capacity(NONCE_LEN + SECRET_LEN + TAG_LEN));
        sealed.extend_from_slice(&nonce);
        let mut in_out = Zeroizing::new(Vec::with_capacity(SECRET_LEN + TAG_LEN));
        in_out.extend_from_slice(&secret.bytes);
        self.aead_key()?
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad(&self.kid, associated_data)),
                &mut *in_out,
            )
            .map_err(|_| anyhow!("cannot encrypt the TOTP secret"))?;
        sealed.extend_from_slice(&in_out);
        Ok(format!(
            "{FORMAT_VERSION}.{}.{}",
            self.kid,
            URL_SAFE_NO_PAD.encode(&*sealed)
        ))
    }

    /// Decrypts what [`TotpKey::encrypt`] wrote for the same account. Fails when the text
    /// was written with another key, for another account, or was changed in any way.
    pub fn decrypt(&self, text: &str, associated_data: &str) -> anyhow::Result<TotpSecret> {
        let parsed = Ciphertext::parse(text)?;
        ensure!(
            parsed.kid == self.kid,
            "the TOTP secret was encrypted with another key ({})",
            parsed.kid
        );
        let mut sealed = Zeroizing::new(
            URL_SAFE_NO_PAD
                .decode(parsed.body)
                .map_err(|_| anyhow!("the encrypted TOTP secret is not valid base64"))?,
        );
        ensure!(
            sealed.len() == NONCE_LEN + SECRET_LEN + TAG_LEN,
            "the encrypted TOTP secret has the wrong length"
        );
        let (nonce, in_out) = sealed.split_at_mut(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce)
            .map_err(|_| anyhow!("the encrypted TOTP secret has a malformed nonce"))?;
        let plain = self
            .aead_key()?
            .open_in_place(nonce, Aad::from(aad(&self.kid, associated_data)), in_out)
            .map_err(|_| {
                anyhow!("the encrypted TOTP secret does not decrypt for this account and key")
            })?;
        TotpSecret::from_bytes(plain)
    }
}

impl fmt::Debug for TotpKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TotpKey(kid={}, [redacted])", self.kid)
    }
}

/// The authenticated data of a ciphertext: its purpose, format and key id (so a text
/// cannot be relabelled) and the account it belongs to (so it cannot be moved).
fn aad(kid: &str, user_id: &str) -> Vec<u8> {
    format!("accounts.totp-secret.{FORMAT_VERSION}.{kid}:{user_id}").into_bytes()
}

/// A key's id: the first 8 hex digits (32 bits) of its SHA-256, the same as
/// `printf %s "$KEY" | base64 -d | sha256sum | cut -c1-8`. It names the key without
/// revealing anything useful about it.
fn key_id(key: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(key)[..4]
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// The parts of `v1.<kid>.<body>`.
struct Ciphertext<'a> {
    kid: &'a str,
    body: &'a str,
}

impl<'a> Ciphertext<'a> {
    fn parse(text: &'a str) -> anyhow::Result<Ciphertext<'a>> {
        let mut parts = text.trim().splitn(3, '.');
        let (Some(version), Some(kid), Some(body)) = (parts.next(), parts.next(), parts.next())
        else {
            bail!("the encrypted TOTP secret is not in the {FORMAT_VERSION}.<kid>.<data> format");
        };
        ensure!(
            version == FORMAT_VERSION,
            "the encrypted TOTP secret has an unknown format version"
        );
        ensure!(
            kid.len() == 8 && kid.bytes().all(|b| b.is_ascii_hexdigit()),
            "the encrypted TOTP secret has a malformed key id"
        );
        Ok(Ciphertext { kid, body })
    }
}

/// The configured keys: the current one encrypts; the previous one (kept during a
/// rotation) still decrypts what was written before the rotation.
#[derive(Debug)]
pub struct TotpKeys {
    pub current: TotpKey,
    pub previous: Option<TotpKey>,
}

impl TotpKeys {
    pub fn new(current: TotpKey, previous: Option<TotpKey>) -> TotpKeys {
        TotpKeys { current, previous }
    }

    /// Encrypts with the current key.
    pub fn encrypt(&self, secret: &TotpSecret, associated_data: &str) -> anyhow::Result<String> {
        self.current.encrypt(secret, associated_data)
    }

    /// Decrypts with whichever configured key the text names.
    pub fn decrypt(&self, text: &str, associated_data: &str) -> anyhow::Result<TotpSecret> {
        let kid = Ciphertext::parse(text)?.kid;
        let key = [Some(&self.current), self.previous.as_ref()]
            .into_iter()
            .flatten()
            .find(|key| key.kid == kid)
            .ok_or_else(|| anyhow!("the TOTP secret was encrypted with an unknown key ({kid})"))?;
        key.decrypt(text, associated_data)
    }

    /// True when the text was not written with the current key: after a successful
    /// [`TotpKeys::decrypt`], encrypt the secret again and store it, so the previous key
    /// can be retired.
    pub fn needs_reencryption(&self, text: &str) -> bool {
        Ciphertext::parse(text).map_or(true, |parsed| parsed.kid != self.current.kid)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    /// The seed of RFC 6238 Appendix B for SHA-1.
    const RFC_SEED: &[u8; 20] = b"12345678901234567890";

    fn rfc_secret() -> TotpSecret {
        TotpSecret::from_bytes(RFC_SEED).unwrap()
    }

    fn code(secret: &TotpSecret, time: i64) -> String {
        code_at(secret, time).unwrap().expose().to_owned()
    }

    #[test]
    fn rfc_6238_sha1_vectors_pass() {
        // (T, the RFC's 8-digit TOTP); a 6-digit code is the value mod 10^6.
        let vectors: [(i64, u32); 6] = [
            (59, 94287082),
            (1111111109, 7081804),
            (1111111111, 14050471),
            (1234567890, 89005924),
            (2000000000, 69279037),
            (20000000000, 65353130),
        ];
        let secret = rfc_secret();
        for (time, rfc) in vectors {
            let expected = format!("{:06}", rfc % 1_000_000);
            assert_eq!(code(&secret, time), expected, "T = {time}");
            assert_eq!(
                matching_step(&secret, &expected, time, None),
                Some(time / 30),
                "T = {time}"
            );
        }
    }

    #[test]
    fn rfc_6238_sha1_vectors_pass_with_eight_digits_through_totp_rs() {
        let totp = Builder::new()
            .with_algorithm(Algorithm::SHA1)
            .with_digits(8)
            .with_secret(totp_rs::Secret::new_stack(*RFC_SEED))
            .build()
            .unwrap();
        for (time, expected) in [
            (59, "94287082"),
            (1111111109, "07081804"),
            (1111111111, "14050471"),
            (1234567890, "89005924"),
            (2000000000, "69279037"),
            (20000000000, "65353130"),
        ] {
            assert_eq!(totp.generate(time).to_string(), expected, "T = {time}");
        }
    }

    #[test]
    fn one_step_of_drift_is_accepted_either_way_and_two_are_not() {
        let secret = TotpSecret::generate().unwrap();
        let now = 1_700_000_015;
        let step = step_of(now);
        for offset in [-1, 0, 1] {
            let typed = code(&secret, now + offset * STEP_SECONDS);
            assert_eq!(
                matching_step(&secret, &typed, now, None),
                Some(step + offset),
                "offset {offset}"
            );
        }
        for offset in [-2, 2] {
            let typed = code(&secret, now + offset * STEP_SECONDS);
            // A random secret could give the same code for two steps (odds 1 in 10^6).
            let collides = [-1, 0, 1]
                .iter()
                .any(|o| typed == code(&secret, now + o * 30));
            if !collides {
                assert_eq!(matching_step(&secret, &typed, now, None), None, "{offset}");
            }
        }
    }

    #[test]
    fn drift_works_at_step_boundaries() {
        let secret = rfc_secret();
        // The code of step 1 (seconds 30 to 59) works from the first second of step 0
        // to the last second of step 2, and not a second outside.
        let typed = code(&secret, 59);
        for now in [0, 29, 30, 59, 60, 89] {
            assert_eq!(matching_step(&secret, &typed, now, None), Some(1), "{now}");
        }
        assert_eq!(matching_step(&secret, &typed, 90, None), None);
    }

    #[test]
    fn a_code_is_refused_in_a_step_already_used() {
        let secret = rfc_secret();
        let now = 1_111_111_111;
        let step = step_of(now);
        let typed = code(&secret, now);
        assert_eq!(
            matching_step(&secret, &typed, now, Some(step - 1)),
            Some(step)
        );
        assert_eq!(matching_step(&secret, &typed, now, Some(step)), None);
        // Nor is an older code once a later step was used.
        let previous = code(&secret, now - STEP_SECONDS);
        assert_eq!(matching_step(&secret, &previous, now, Some(step)), None);
        assert_eq!(matching_step(&secret, &previous, now, Some(step + 1)), None);
    }

    #[test]
    fn a_later_step_is_accepted_after_an_earlier_one() {
        let secret = rfc_secret();
        let now = 1_234_567_890;
        let step = step_of(now);
        let first = code(&secret, now);
        let used = matching_step(&secret, &first, now, None).unwrap();
        assert_eq!(used, step);
        let later = now + STEP_SECONDS;
        let second = code(&secret, later);
        assert_eq!(
            matching_step(&secret, &second, later, Some(used)),
            Some(step + 1)
        );
        // The next code, typed early (clock drift), is accepted too.
        let early = code(&secret, now + STEP_SECONDS);
        assert_eq!(
            matching_step(&secret, &early, now, Some(step)),
            Some(step + 1)
        );
    }

    #[test]
    fn typed_codes_are_normalised_and_malformed_ones_refused() {
        let secret = rfc_secret();
        let now = 59;
        let typed = code(&secret, now);
        let spaced = format!(" {} {} ", &typed[..3], &typed[3..]);
        assert_eq!(matching_step(&secret, &spaced, now, None), Some(1));
        for bad in [
            "",
            "12345",
            "1234567",
            "12345a",
            "+28708",
            "-28708",
            "２８７０８２",
            "287 0822",
            &format!("{typed}0"),
            &"2".repeat(1000),
        ] {
            assert_eq!(matching_step(&secret, bad, now, None), None, "{bad:?}");
        }
    }

    #[test]
    fn the_wrong_code_is_refused() {
        let secret = rfc_secret();
        let typed = code(&secret, 59);
        let wrong = format!("{:06}", (typed.parse::<u32>().unwrap() + 1) % 1_000_000);
        assert_eq!(matching_step(&secret, &wrong, 59, None), None);
        let other = TotpSecret::generate().unwrap();
        let theirs = code(&other, 59);
        if theirs != typed {
            assert_eq!(matching_step(&secret, &theirs, 59, None), None);
        }
    }

    #[test]
    fn codes_are_compared_in_constant_time() {
        // `ct_eq` on equal-length arrays: the comparison does not stop at the first
        // differing digit, and every candidate step is compared whatever the outcome.
        let a = Zeroizing::new(*b"123456");
        assert!(bool::from(a.ct_eq(b"123456")));
        assert!(!bool::from(a.ct_eq(b"923456")));
        assert!(!bool::from(a.ct_eq(b"123459")));
        assert_eq!(&*typed_code("123 456").unwrap(), b"123456");
    }

    #[test]
    fn times_before_1970_have_no_code() {
        let secret = rfc_secret();
        assert!(code_at(&secret, -1).is_err());
        assert_eq!(step_of(-1), -1);
        // Step -1 is skipped, steps 0 and 1 are still checked.
        let typed = code(&secret, 0);
        assert_eq!(matching_step(&secret, &typed, 0, None), Some(0));
        assert_eq!(matching_step(&secret, &typed, i64::MAX, None), None);
        assert_eq!(matching_step(&secret, &typed, i64::MIN, None), None);
    }

    #[test]
    fn a_secret_is_20_random_bytes_in_32_base32_characters() {
        let a = TotpSecret::generate().unwrap();
        let b = TotpSecret::generate().unwrap();
        assert_ne!(a.bytes, b.bytes);
        let text = a.base32();
        assert_eq!(text.expose().len(), 32);
        assert!(
            text.expose()
                .bytes()
                .all(|c| c.is_ascii_uppercase() || (b'2'..=b'7').contains(&c))
        );
        assert_eq!(
            rfc_secret().base32().expose(),
            "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
        );
        assert!(TotpSecret::from_bytes(&[0; 19]).is_err());
        assert!(TotpSecret::from_bytes(&[0; 21]).is_err());
    }

    #[test]
    fn the_otpauth_url_names_issuer_account_and_parameters() {
        let url = otpauth_url(&rfc_secret(), "Example Co", "ann+2fa@example.com");
        assert_eq!(
            url,
            "otpauth://totp/Example%20Co:ann%2B2fa%40example.com\
             ?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Example%20Co\
             &algorithm=SHA1&digits=6&period=30"
        );
        let tricky = otpauth_url(&rfc_secret(), "A:B&c=d", "x?y#z/é");
        assert!(tricky.starts_with("otpauth://totp/A%3AB%26c%3Dd:x%3Fy%23z%2F%C3%A9?secret="));
        assert!(tricky.contains("&issuer=A%3AB%26c%3Dd&"));
    }

    #[test]
    fn the_qr_code_is_an_svg() {
        let url = otpauth_url(&rfc_secret(), "Example", "ann@example.com");
        let svg = qr_svg(&url).unwrap();
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(svg.ends_with("</svg>"));
        assert!(svg.contains("<path d=\"M"));
        // The same URL always gives the same picture; another URL another one.
        assert_eq!(svg, qr_svg(&url).unwrap());
        assert_ne!(svg, qr_svg(&format!("{url}x")).unwrap());
        // The view box is the QR size plus the quiet zone on both sides.
        let qr = QrCode::encode_text(&url, QrCodeEcc::Medium).unwrap();
        let side = qr.size() + 8;
        assert!(svg.contains(&format!("viewBox=\"0 0 {side} {side}\"")));
        assert!(qr_svg(&"x".repeat(5000)).is_err());
    }

    #[test]
    fn the_qr_paths_runs_cover_exactly_the_dark_modules() {
        let url = otpauth_url(&rfc_secret(), "Example", "ann@example.com");
        let svg = qr_svg(&url).unwrap();
        let qr = QrCode::encode_text(&url, QrCodeEcc::Medium).unwrap();
        let path = svg
            .split("<path d=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        let mut drawn = std::collections::BTreeSet::new();
        for segment in path.split('M').filter(|s| !s.is_empty()) {
            let (x, rest) = segment.split_once(',').unwrap();
            let (y, rest) = rest.split_once('h').unwrap();
            let run: i32 = rest.split_once('v').unwrap().0.parse().unwrap();
            let (x, y): (i32, i32) = (x.parse().unwrap(), y.parse().unwrap());
            for dx in 0..run {
                assert!(
                    drawn.insert((x + dx - QR_BORDER, y - QR_BORDER)),
                    "drawn twice"
                );
            }
        }
        let dark: std::collections::BTreeSet<_> = (0..qr.size())
            .flat_map(|y| (0..qr.size()).map(move |x| (x, y)))
            .filter(|&(x, y)| qr.get_module(x, y))
            .collect();
        assert_eq!(drawn, dark);
        // Runs keep the page light (issue 15: 30 KB with its assets).
        assert!(svg.len() < 12_000, "{} bytes", svg.len());
    }

    fn key() -> TotpKey {
        TotpKey::generate().unwrap()
    }

    #[test]
    fn an_encrypted_secret_round_trips_for_its_account() {
        let key = key();
        let secret = TotpSecret::generate().unwrap();
        let text = key.encrypt(&secret, "user-1").unwrap();
        let parts: Vec<&str> = text.split('.').collect();
        assert_eq!(parts.len(), 3);
        assert_eq!(parts[0], "v1");
        assert_eq!(parts[1], key.kid());
        assert_eq!(
            URL_SAFE_NO_PAD.decode(parts[2]).unwrap().len(),
            NONCE_LEN + SECRET_LEN + TAG_LEN
        );
        let back = key.decrypt(&text, "user-1").unwrap();
        assert_eq!(back.bytes, secret.bytes);
        // A fresh nonce each time: the same secret never gives the same text.
        assert_ne!(key.encrypt(&secret, "user-1").unwrap(), text);
        // The secret is not in the text.
        assert!(!text.contains(secret.base32().expose()));
    }

    #[test]
    fn a_ciphertext_moved_to_another_account_does_not_decrypt() {
        let key = key();
        let text = key
            .encrypt(&TotpSecret::generate().unwrap(), "user-1")
            .unwrap();
        assert!(key.decrypt(&text, "user-2").is_err());
        assert!(key.decrypt(&text, "").is_err());
        assert!(key.decrypt(&text, "user-1 ").is_err());
    }

    #[test]
    fn a_tampered_ciphertext_does_not_decrypt() {
        let key = key();
        let text = key
            .encrypt(&TotpSecret::generate().unwrap(), "user-1")
            .unwrap();
        let (head, body) = text.rsplit_once('.').unwrap();
        let raw = URL_SAFE_NO_PAD.decode(body).unwrap();
        for index in [0, NONCE_LEN, NONCE_LEN + 5, raw.len() - 1] {
            let mut changed = raw.clone();
            changed[index] ^= 0x01;
            let tampered = format!("{head}.{}", URL_SAFE_NO_PAD.encode(&changed));
            assert!(key.decrypt(&tampered, "user-1").is_err(), "byte {index}");
        }
        let truncated = format!("{head}.{}", URL_SAFE_NO_PAD.encode(&raw[..raw.len() - 1]));
        assert!(key.decrypt(&truncated, "user-1").is_err());
        for bad in [
            "",
            "v1",
            "v1.abcdef01",
            &text.replacen("v1", "v2", 1),
            &format!("{head}.!!!"),
        ] {
            assert!(key.decrypt(bad, "user-1").is_err(), "{bad:?}");
        }
        // Another key with the id relabelled still fails: the id is authenticated.
        let other = self::key();
        let relabelled = text.replacen(key.kid(), other.kid(), 1);
        assert!(other.decrypt(&relabelled, "user-1").is_err());
        assert!(other.decrypt(&text, "user-1").is_err());
    }

    #[test]
    fn the_previous_key_still_decrypts_after_a_rotation() {
        let old = key();
        let secret = TotpSecret::generate().unwrap();
        let before = old.encrypt(&secret, "user-1").unwrap();
        let keys = TotpKeys::new(key(), Some(old));
        assert!(keys.needs_reencryption(&before));
        assert_eq!(keys.decrypt(&before, "user-1").unwrap().bytes, secret.bytes);
        let after = keys.encrypt(&secret, "user-1").unwrap();
        assert!(!keys.needs_reencryption(&after));
        assert!(after.starts_with(&format!("v1.{}.", keys.current.kid())));
        assert_eq!(keys.decrypt(&after, "user-1").unwrap().bytes, secret.bytes);
        // Once the old key is gone, its texts no longer decrypt.
        let retired = TotpKeys::new(keys.current, None);
        assert!(retired.decrypt(&before, "user-1").is_err());
        assert!(retired.needs_reencryption(&before));
        assert!(retired.needs_reencryption("garbage"));
    }

    #[test]
    fn keys_come_from_base64_configuration_and_have_stable_ids() {
        let text = STANDARD.encode([7u8; 32]);
        let a = TotpKey::from_base64(&text).unwrap();
        let b = TotpKey::from_base64(&format!(" {text}\n")).unwrap();
        assert_eq!(a.kid(), b.kid());
        // sha256 of 32 bytes of 0x07, as `sha256sum` prints it.
        assert_eq!(
            a.kid(),
            &crate::values::secret::sha256_hex("\x07".repeat(32).as_str())[..8]
        );
        assert_eq!(a.kid().len(), 8);
        assert_ne!(a.kid(), key().kid());
        assert!(TotpKey::from_base64(&STANDARD.encode([7u8; 16])).is_err());
        assert!(TotpKey::from_base64("not base64!").is_err());
    }

    #[test]
    fn debug_output_never_shows_secrets() {
        let secret = rfc_secret();
        let shown = format!("{secret:?}");
        assert!(!shown.contains("1234"));
        assert!(!shown.contains("GEZDG"));
        assert!(!format!("{:?}", secret.base32()).contains("GEZDG"));
        assert!(!format!("{:?}", code_at(&secret, 59).unwrap()).contains("287082"));
        let raw = [7u8; 32];
        let key = TotpKey::from_bytes(&raw).unwrap();
        let keys = TotpKeys::new(key, Some(TotpKey::from_bytes(&[9u8; 32]).unwrap()));
        let shown = format!("{keys:?}");
        assert!(shown.contains(keys.current.kid()));
        assert!(!shown.contains(&STANDARD.encode(raw)));
        assert!(!shown.contains("7, 7, 7"));
        assert!(!shown.contains("[7"));
    }
}
