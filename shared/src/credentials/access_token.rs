//! Access tokens: short-lived JWTs signed with Ed25519 (EdDSA) or P-256 (ES256), the
//! keys that sign and verify them, and the JWKS document that publishes the public
//! halves. Verification pins the algorithm, issuer, audience and type, and reads the
//! time from the app's clock; it never does I/O.

use std::collections::HashMap;

use anyhow::{Context, anyhow, bail};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair,
};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
#[cfg(test)]
use jsonwebtoken::EncodingKey;
use jsonwebtoken::{Algorithm, DecodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::clock::UnixTime;

/// The `typ` claim of an access token; other token kinds can never pass for one.
const ACCESS: &str = "access";

/// One key pair, parsed from a PKCS#8 private key.
struct SigningKey {
    public: VerifyingKey,
    /// The parsed private key. `jsonwebtoken::encode` takes the PKCS#8 bytes and parses
    /// them again for every token, which for Ed25519 derives the public key (a second
    /// scalar multiplication as costly as the signature): a third of a token refresh.
    signer: Signer,
    /// For tests that sign tokens with headers of their own.
    #[cfg(test)]
    encoding: EncodingKey,
}

enum Signer {
    Ed25519(Ed25519KeyPair),
    P256(EcdsaKeyPair),
}

impl Signer {
    /// The JWS signature of `message` (ES256: the fixed-size `r || s` form JWS uses).
    fn sign(&self, message: &[u8]) -> anyhow::Result<Vec<u8>> {
        match self {
            Signer::Ed25519(pair) => Ok(pair.sign(message).as_ref().to_vec()),
            Signer::P256(pair) => pair
                .sign(&SystemRandom::new(), message)
                .map(|signature| signature.as_ref().to_vec())
                .map_err(|_| anyhow!("ES256 signing failed")),
        }
    }
}

impl SigningKey {
    fn from_pkcs8(der: &[u8]) -> anyhow::Result<SigningKey> {
        if let Ok(pair) = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der) {
            let public = ed25519_public(&URL_SAFE_NO_PAD.encode(pair.public_key().as_ref()))?;
            return Ok(SigningKey {
                public,
                // Checked parsing (the public key, when present, must match), as
                // `jsonwebtoken` parsed it for each token.
                signer: Signer::Ed25519(
                    Ed25519KeyPair::from_pkcs8(der)
                        .map_err(|_| anyhow!("the Ed25519 signing key is inconsistent"))?,
                ),
                #[cfg(test)]
                encoding: EncodingKey::from_ed_der(der),
            });
        }
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der)
            .map_err(|_| anyhow!("the signing key is neither an Ed25519 nor a P-256 PKCS#8 key"))?;
        // An uncompressed point: 0x04, then x and y, 32 bytes each.
        let point = pair.public_key().as_ref();
        if point.len() != 65 {
            bail!("unexpected P-256 public key length {}", point.len());
        }
        let public = p256_public(
            &URL_SAFE_NO_PAD.encode(&point[1..33]),
            &URL_SAFE_NO_PAD.encode(&point[33..]),
        )?;
        Ok(SigningKey {
            public,
            signer: Signer::P256(pair),
            #[cfg(test)]
            encoding: EncodingKey::from_ec_der(der),
        })
    }
}

/// The DER of an Ed25519 `SubjectPublicKeyInfo` before its 32 key bytes.
const ED25519_SPKI: &[u8] = &[
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];
/// The DER of a P-256 `SubjectPublicKeyInfo` before the x and y of its uncompressed point.
const P256_SPKI: &[u8] = &[
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00, 0x04,
];

/// The public half of a key: what verifies tokens and what the JWKS publishes.
#[derive(Clone)]
struct VerifyingKey {
    kid: String,
    algorithm: Algorithm,
    decoding: DecodingKey,
    jwk: serde_json::Value,
}

impl VerifyingKey {
    /// Reads an X.509 `SubjectPublicKeyInfo` of an Ed25519 or P-256 key (what
    /// `openssl pkey -pubout` writes): both have a fixed DER prefix before the key bytes.
    fn from_spki(der: &[u8]) -> anyhow::Result<VerifyingKey> {
        if let Some(key) = der.strip_prefix(ED25519_SPKI).filter(|k| k.len() == 32) {
            return ed25519_public(&URL_SAFE_NO_PAD.encode(key));
        }
        if let Some(point) = der.strip_prefix(P256_SPKI).filter(|p| p.len() == 64) {
            let (x, y) = point.split_at(32);
            return p256_public(&URL_SAFE_NO_PAD.encode(x), &URL_SAFE_NO_PAD.encode(y));
        }
        bail!("a verification key is neither an Ed25519 nor a P-256 public key")
    }
}

fn ed25519_public(x: &str) -> anyhow::Result<VerifyingKey> {
    // RFC 7638 thumbprint: the required members in lexicographic order.
    let kid = thumbprint(&format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#));
    Ok(VerifyingKey {
        decoding: DecodingKey::from_ed_components(x)
            .map_err(|e| anyhow!("an Ed25519 public key was refused: {e}"))?,
        algorithm: Algorithm::EdDSA,
        jwk: serde_json::json!({
            "kty": "OKP", "crv": "Ed25519", "x": x,
            "kid": kid, "use": "sig", "alg": "EdDSA",
        }),
        kid,
    })
}

fn p256_public(x: &str, y: &str) -> anyhow::Result<VerifyingKey> {
    let kid = thumbprint(&format!(
        r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#
    ));
    Ok(VerifyingKey {
        decoding: DecodingKey::from_ec_components(x, y)
            .map_err(|e| anyhow!("a P-256 public key was refused: {e}"))?,
        algorithm: Algorithm::ES256,
        jwk: serde_json::json!({
            "kty": "EC", "crv": "P-256", "x": x, "y": y,
            "kid": kid, "use": "sig", "alg": "ES256",
        }),
        kid,
    })
}

fn thumbprint(canonical_jwk: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical_jwk.as_bytes()))
}

/// Reads the DER inside a PEM `PRIVATE KEY` block.
pub(crate) fn pem_to_der(pem: &str) -> anyhow::Result<Vec<u8>> {
    pem_blocks(pem, "PRIVATE KEY")?
        .into_iter()
        .next()
        .ok_or_else(|| anyhow!("the key is not a PEM \"PRIVATE KEY\" (PKCS#8) block"))
}

/// The DER of every PEM block labelled `label`, in order.
fn pem_blocks(pem: &str, label: &str) -> anyhow::Result<Vec<Vec<u8>>> {
    let (begin, end) = (
        format!("-----BEGIN {label}-----"),
        format!("-----END {label}-----"),
    );
    let mut blocks = Vec::new();
    let mut body: Option<String> = None;
    for line in pem.lines().map(str::trim) {
        match &mut body {
            None if line == begin => body = Some(String::new()),
            Some(text) if line == end => {
                blocks.push(
                    STANDARD
                        .decode(&*text)
                        .context("a PEM block is not base64")?,
                );
                body = None;
            }
            Some(text) => text.push_str(line),
            None => {}
        }
    }
    Ok(blocks)
}

/// Generates a fresh Ed25519 key as PKCS#8 PEM (for the local server and tests).
pub fn generate_ed25519_pem() -> anyhow::Result<String> {
    let document = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
        .map_err(|_| anyhow!("generating an Ed25519 key failed"))?;
    Ok(pem("PRIVATE KEY", document.as_ref()))
}

/// DER as a PEM block, in lines of 64 characters as OpenSSL writes them.
fn pem(label: &str, der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .filter_map(|chunk| std::str::from_utf8(chunk).ok())
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

/// The claims of an access token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    pub aud: String,
    /// The account id.
    pub sub: String,
    /// The session id.
    pub sid: String,
    pub iat: UnixTime,
    pub exp: UnixTime,
    pub typ: String,
}

/// Signs access tokens with the current key and verifies them with the current or
/// the previous one, so that keys can rotate without signing anyone out.
pub struct AccessTokens {
    /// The current key, in the one function that signs (`login`; the local server);
    /// functions that only verify tokens never hold a private key.
    current: Option<CurrentKey>,
    verifiers: HashMap<String, (Algorithm, DecodingKey)>,
    issuer: String,
    audience: String,
    /// The JWKS document, serialised once.
    jwks: bytes::Bytes,
}

/// The key that signs, with its JWS header (`alg`, `kid`) serialised and encoded once:
/// it is the same for every token.
struct CurrentKey {
    key: SigningKey,
    encoded_header: String,
}

/// Why a presented access token was refused; every case answers `401 unauthorized`.
#[derive(Debug, thiserror::Error)]
#[error("the access token is not valid: {0}")]
pub struct InvalidAccessToken(String);

impl AccessTokens {
    /// Builds the signer from PEM private keys: the current one and, during a
    /// rotation, the previous one (still accepted and still published).
    pub fn from_pem(
        current: &str,
        previous: Option<&str>,
        issuer: &str,
        audience: &str,
    ) -> anyhow::Result<AccessTokens> {
        let current = SigningKey::from_pkcs8(&pem_to_der(current).context("JWT signing key")?)
            .context("JWT signing key")?;
        let previous = previous
            .map(|pem| {
                SigningKey::from_pkcs8(&pem_to_der(pem)?).context("previous JWT signing key")
            })
            .transpose()?;
        let mut header = Header::new(current.public.algorithm);
        header.kid = Some(current.public.kid.clone());
        let encoded_header = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header)?);
        let mut publics = vec![current.public.clone()];
        publics.extend(previous.map(|p| p.public));
        let mut tokens = AccessTokens::verifying(publics, issuer, audience)?;
        tokens.current = Some(CurrentKey {
            key: current,
            encoded_header,
        });
        Ok(tokens)
    }

    /// A verifier only, from PEM `PUBLIC KEY` blocks (the current key first, then the
    /// previous one during a rotation): what the functions that check access tokens
    /// but never issue them hold.
    pub fn verify_only(
        public_pems: &str,
        issuer: &str,
        audience: &str,
    ) -> anyhow::Result<AccessTokens> {
        let keys = pem_blocks(public_pems, "PUBLIC KEY")?
            .iter()
            .map(|der| VerifyingKey::from_spki(der))
            .collect::<anyhow::Result<Vec<_>>>()
            .context("JWT verification keys")?;
        if keys.is_empty() {
            bail!("JWT verification keys: no PEM \"PUBLIC KEY\" block");
        }
        AccessTokens::verifying(keys, issuer, audience)
    }

    fn verifying(
        keys: Vec<VerifyingKey>,
        issuer: &str,
        audience: &str,
    ) -> anyhow::Result<AccessTokens> {
        let mut verifiers = HashMap::new();
        let mut jwks = Vec::new();
        for key in keys {
            if verifiers.contains_key(&key.kid) {
                continue;
            }
            jwks.push(key.jwk);
            verifiers.insert(key.kid, (key.algorithm, key.decoding));
        }
        let jwks = serde_json::to_vec(&serde_json::json!({ "keys": jwks }))?.into();
        Ok(AccessTokens {
            current: None,
            verifiers,
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            jwks,
        })
    }

    /// The current key's public half as PEM `PUBLIC KEY` text (for the local server,
    /// which hands it to nothing, and for tests of verify-only functions).
    pub fn public_pem(&self) -> Option<String> {
        let jwk = &self.current.as_ref()?.key.public.jwk;
        let decode = |member: &str| {
            URL_SAFE_NO_PAD
                .decode(jwk[member].as_str().unwrap_or_default())
                .ok()
        };
        let der = match jwk["kty"].as_str() {
            Some("OKP") => [ED25519_SPKI.to_vec(), decode("x")?].concat(),
            _ => [P256_SPKI.to_vec(), decode("x")?, decode("y")?].concat(),
        };
        Some(pem("PUBLIC KEY", &der))
    }

    /// The JWKS document (`/.well-known/jwks.json`).
    pub fn jwks(&self) -> bytes::Bytes {
        self.jwks.clone()
    }

    /// Signs an access token for a session.
    pub fn issue(
        &self,
        user_id: &str,
        session_id: &str,
        now: UnixTime,
        expires_at: UnixTime,
    ) -> anyhow::Result<String> {
        let claims = AccessClaims {
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            sub: user_id.to_owned(),
            sid: session_id.to_owned(),
            iat: now,
            exp: expires_at,
            typ: ACCESS.to_owned(),
        };
        let signer = self
            .current
            .as_ref()
            .ok_or_else(|| anyhow!("this function verifies access tokens but cannot issue them"))?;
        // JWS compact serialisation, as `jsonwebtoken::encode` writes it, in one buffer.
        let mut token = String::with_capacity(512);
        token.push_str(&signer.encoded_header);
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(serde_json::to_vec(&claims)?, &mut token);
        let signature = signer
            .key
            .signer
            .sign(token.as_bytes())
            .context("signing an access token")?;
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(signature, &mut token);
        Ok(token)
    }

    /// Checks a token's signature, algorithm, issuer, audience, type and expiry.
    pub fn verify(&self, token: &str, now: UnixTime) -> Result<AccessClaims, InvalidAccessToken> {
        let refuse = |why: &str| InvalidAccessToken(why.to_owned());
        let header = jsonwebtoken::decode_header(token).map_err(|_| refuse("malformed header"))?;
        let kid = header.kid.ok_or_else(|| refuse("no kid"))?;
        let (algorithm, key) = self
            .verifiers
            .get(&kid)
            .ok_or_else(|| refuse("unknown kid"))?;
        if header.alg != *algorithm {
            return Err(refuse("algorithm does not match the key"));
        }
        let mut validation = Validation::new(*algorithm);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
        // Expiry is checked below against the app's clock, which tests move.
        validation.validate_exp = false;
        let claims = jsonwebtoken::decode::<AccessClaims>(token, key, &validation)
            .map_err(|e| InvalidAccessToken(e.to_string()))?
            .claims;
        if claims.typ != ACCESS {
            return Err(refuse("not an access token"));
        }
        if claims.exp <= now {
            return Err(refuse("expired"));
        }
        if claims.iat > now + 60 {
            return Err(refuse("issued in the future"));
        }
        Ok(claims)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;

    fn current(tokens: &AccessTokens) -> &SigningKey {
        &tokens.current.as_ref().unwrap().key
    }

    fn tokens() -> AccessTokens {
        AccessTokens::from_pem(&generate_ed25519_pem().unwrap(), None, "iss", "aud").unwrap()
    }

    /// A token with any header and claims, signed by `key` (to forge variants).
    fn sign(tokens: &AccessTokens, header: &Header, claims: &serde_json::Value) -> String {
        jsonwebtoken::encode(header, claims, &current(tokens).encoding).unwrap()
    }

    fn claims() -> serde_json::Value {
        serde_json::json!({
            "iss": "iss", "aud": "aud", "sub": "u", "sid": "s",
            "iat": NOW, "exp": NOW + 900, "typ": "access",
        })
    }

    fn header(tokens: &AccessTokens) -> Header {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(current(tokens).public.kid.clone());
        header
    }

    #[test]
    fn an_issued_token_is_what_jsonwebtoken_writes() {
        // Ed25519 signatures are deterministic: the same bytes, header to signature.
        let tokens = tokens();
        let issued = tokens.issue("u", "s", NOW, NOW + 900).unwrap();
        let claims = AccessClaims {
            iss: "iss".into(),
            aud: "aud".into(),
            sub: "u".into(),
            sid: "s".into(),
            iat: NOW,
            exp: NOW + 900,
            typ: ACCESS.into(),
        };
        let expected =
            jsonwebtoken::encode(&header(&tokens), &claims, &current(&tokens).encoding).unwrap();
        assert_eq!(issued, expected);
    }

    #[test]
    fn an_issued_token_verifies_until_it_expires() {
        let tokens = tokens();
        let token = tokens.issue("user", "session", NOW, NOW + 900).unwrap();
        let claims = tokens.verify(&token, NOW + 899).unwrap();
        assert_eq!(
            (claims.sub.as_str(), claims.sid.as_str()),
            ("user", "session")
        );
        assert!(tokens.verify(&token, NOW + 900).is_err());
    }

    #[test]
    fn a_token_from_another_key_is_refused() {
        let token = tokens().issue("u", "s", NOW, NOW + 900).unwrap();
        assert!(tokens().verify(&token, NOW).is_err());
    }

    #[test]
    fn the_previous_key_still_verifies_during_a_rotation() {
        let old = generate_ed25519_pem().unwrap();
        let before = AccessTokens::from_pem(&old, None, "iss", "aud").unwrap();
        let token = before.issue("u", "s", NOW, NOW + 900).unwrap();
        let new = generate_ed25519_pem().unwrap();
        let after = AccessTokens::from_pem(&new, Some(&old), "iss", "aud").unwrap();
        assert!(after.verify(&token, NOW).is_ok());
        let jwks: serde_json::Value = serde_json::from_slice(&after.jwks()).unwrap();
        assert_eq!(jwks["keys"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn alg_none_is_refused() {
        let tokens = tokens();
        let valid = tokens.issue("u", "s", NOW, NOW + 900).unwrap();
        let payload = valid.split('.').nth(1).unwrap();
        let none_header = URL_SAFE_NO_PAD.encode(format!(
            r#"{{"alg":"none","typ":"JWT","kid":"{}"}}"#,
            current(&tokens).public.kid
        ));
        assert!(
            tokens
                .verify(&format!("{none_header}.{payload}."), NOW)
                .is_err()
        );
    }

    #[test]
    fn an_hmac_token_keyed_with_the_public_key_is_refused() {
        let tokens = tokens();
        let public = current(&tokens).public.jwk["x"]
            .as_str()
            .unwrap()
            .to_owned();
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(current(&tokens).public.kid.clone());
        let forged = jsonwebtoken::encode(
            &header,
            &claims(),
            &EncodingKey::from_secret(public.as_bytes()),
        )
        .unwrap();
        assert!(tokens.verify(&forged, NOW).is_err());
    }

    #[test]
    fn claims_of_the_wrong_shape_or_value_are_refused() {
        let tokens = tokens();
        let cases: Vec<(&str, serde_json::Value)> = vec![
            ("string exp", {
                let mut c = claims();
                c["exp"] = serde_json::json!((NOW + 900).to_string());
                c
            }),
            ("missing exp", {
                let mut c = claims();
                c.as_object_mut().unwrap().remove("exp");
                c
            }),
            ("wrong aud", {
                let mut c = claims();
                c["aud"] = "other".into();
                c
            }),
            ("wrong iss", {
                let mut c = claims();
                c["iss"] = "other".into();
                c
            }),
            ("wrong typ", {
                let mut c = claims();
                c["typ"] = "refresh".into();
                c
            }),
        ];
        for (case, claims) in cases {
            let token = sign(&tokens, &header(&tokens), &claims);
            assert!(tokens.verify(&token, NOW).is_err(), "{case}");
        }
        assert!(
            tokens
                .verify(&sign(&tokens, &header(&tokens), &claims()), NOW)
                .is_ok()
        );
    }

    #[test]
    fn a_p256_key_signs_es256_tokens() {
        let document =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
                .unwrap();
        let pem = format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            STANDARD.encode(document.as_ref())
        );
        let tokens = AccessTokens::from_pem(&pem, None, "iss", "aud").unwrap();
        let token = tokens.issue("u", "s", NOW, NOW + 60).unwrap();
        assert!(tokens.verify(&token, NOW).is_ok());
        assert_eq!(
            jsonwebtoken::decode_header(&token).unwrap().alg,
            Algorithm::ES256
        );
    }

    // Keys written by `openssl genpkey` and their `openssl pkey -pubout` halves (test keys).
    const ED25519_PRIVATE: &str = "-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIAhnyxESKjHQMtZ5Jc1TKTIni5dhCvLuoWo1KpgC62qj
-----END PRIVATE KEY-----
";
    const ED25519_PUBLIC: &str = "-----BEGIN PUBLIC KEY-----
MCowBQYDK2VwAyEAQga9YNUKNQN73rqHEx0E/KqBpjuJUPQCgm84zxsO6xw=
-----END PUBLIC KEY-----
";
    const P256_PRIVATE: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgtJiC+26D0YHPyxti
WdJafv4jbpAJbF1xx+pNXyjGTKChRANCAATwth8675PXtFSWGsNWjSIZu+DcUUaZ
hWCYncLwZ9wWnHT1Ih/R1zsfHX+xqGcSMt3tk3AUypxnW3p1T7Qm+pF5
-----END PRIVATE KEY-----
";
    const P256_PUBLIC: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE8LYfOu+T17RUlhrDVo0iGbvg3FFG
mYVgmJ3C8GfcFpx09SIf0dc7Hx1/sahnEjLd7ZNwFMqcZ1t6dU+0JvqReQ==
-----END PUBLIC KEY-----
";

    #[test]
    fn a_verifier_from_openssl_public_keys_accepts_what_the_private_keys_sign() {
        for (private, public) in [
            (ED25519_PRIVATE, ED25519_PUBLIC),
            (P256_PRIVATE, P256_PUBLIC),
        ] {
            let signer = AccessTokens::from_pem(private, None, "iss", "aud").unwrap();
            let verifier = AccessTokens::verify_only(public, "iss", "aud").unwrap();
            let token = signer.issue("u", "s", NOW, NOW + 900).unwrap();
            assert_eq!(verifier.verify(&token, NOW).unwrap().sid, "s");
            assert_eq!(signer.public_pem().unwrap(), public);
            assert_eq!(verifier.jwks(), signer.jwks());
        }
    }

    #[test]
    fn a_verify_only_holder_cannot_issue_tokens() {
        let verifier = AccessTokens::verify_only(ED25519_PUBLIC, "iss", "aud").unwrap();
        assert!(verifier.issue("u", "s", NOW, NOW + 900).is_err());
        assert!(verifier.public_pem().is_none());
    }

    #[test]
    fn every_public_key_of_a_rotation_verifies() {
        let both = format!("{P256_PUBLIC}{ED25519_PUBLIC}");
        let verifier = AccessTokens::verify_only(&both, "iss", "aud").unwrap();
        for private in [ED25519_PRIVATE, P256_PRIVATE] {
            let token = AccessTokens::from_pem(private, None, "iss", "aud")
                .unwrap()
                .issue("u", "s", NOW, NOW + 900)
                .unwrap();
            assert!(verifier.verify(&token, NOW).is_ok());
        }
        assert!(AccessTokens::verify_only("no key here", "iss", "aud").is_err());
        assert!(AccessTokens::verify_only(ED25519_PRIVATE, "iss", "aud").is_err());
    }
}
