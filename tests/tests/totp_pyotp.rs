//! TOTP against an independent implementation: Python's `pyotp` (pinned in
//! tests/requirements.txt, installed by scripts/test.sh). Codes pyotp computes are
//! accepted by `matching_step`, pyotp accepts the codes we compute, and pyotp reads our
//! `otpauth://` URL back to the same secret and parameters.

use std::io::Write;
use std::process::{Command, Stdio};

use accounts::credentials::totp::{TotpSecret, code_at, matching_step, otpauth_url, step_of};
use serde_json::{Value, json};

/// Reads a JSON request on stdin, answers with JSON on stdout.
const SCRIPT: &str = r#"
import json, sys
try:
    import pyotp
except ImportError:
    sys.exit("pyotp is missing: python3 -m pip install -r tests/requirements.txt")

request = json.load(sys.stdin)
totp = pyotp.TOTP(request["secret"])  # SHA-1, 6 digits, 30 s: the RFC 6238 defaults
uri = pyotp.parse_uri(request["url"])
print(json.dumps({
    "codes": [totp.at(t) for t in request["times"]],
    "verified": [totp.verify(code, for_time=t) for t, code in request["ours"]],
    "uri": {
        "secret": uri.secret,
        "issuer": uri.issuer,
        "name": uri.name,
        "digits": uri.digits,
        "interval": uri.interval,
        "digest": uri.digest().name,
    },
}))
"#;

fn pyotp(request: &Value) -> Value {
    let mut child = Command::new("python3")
        .args(["-c", SCRIPT])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 must be installed to run the pyotp cross-check");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(request.to_string().as_bytes())
        .expect("write the request to python3");
    let output = child.wait_with_output().expect("python3 finished");
    assert!(
        output.status.success(),
        "the pyotp script failed (scripts/test.sh installs tests/requirements.txt):\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("JSON from the pyotp script")
}

/// RFC 6238 Appendix B times, step boundaries, and now.
fn times() -> Vec<i64> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("a clock after 1970")
        .as_secs() as i64;
    vec![
        0,
        59,
        1_111_111_109,
        1_111_111_111,
        1_234_567_890,
        1_700_000_000,
        1_700_000_029,
        1_700_000_030,
        2_000_000_000,
        20_000_000_000,
        now,
    ]
}

fn cross_check(secret: &TotpSecret, issuer: &str, account: &str) {
    let times = times();
    let ours: Vec<(i64, String)> = times
        .iter()
        .map(|&t| (t, code_at(secret, t).expect("our code").expose().to_owned()))
        .collect();
    let url = otpauth_url(secret, issuer, account);
    let answer = pyotp(&json!({
        "secret": secret.base32().expose(),
        "times": times,
        "ours": ours,
        "url": url,
    }));

    // pyotp's codes are accepted at their own time, and one step late or early.
    let codes = answer["codes"].as_array().expect("codes");
    assert_eq!(codes.len(), times.len());
    for ((&t, code), (_, our_code)) in times.iter().zip(codes).zip(&ours) {
        let code = code.as_str().expect("a code");
        assert_eq!(code, our_code, "t={t}");
        assert_eq!(code.len(), 6, "{code}");
        assert_eq!(
            matching_step(secret, code, t, None),
            Some(step_of(t)),
            "t={t}"
        );
        if t >= 30 {
            assert_eq!(
                matching_step(secret, code, t + 30, Some(step_of(t) - 1)),
                Some(step_of(t)),
                "t={t}, one step later"
            );
        }
        // ...but only once.
        assert_eq!(matching_step(secret, code, t, Some(step_of(t))), None);
    }

    // pyotp accepts every code we compute.
    let verified = answer["verified"].as_array().expect("verified");
    assert_eq!(verified.len(), ours.len());
    for ((t, code), ok) in ours.iter().zip(verified) {
        assert_eq!(
            ok,
            &Value::Bool(true),
            "pyotp refused our code {code} at t={t}"
        );
    }

    // pyotp reads our enrolment URL back.
    let uri = &answer["uri"];
    assert_eq!(uri["secret"], json!(secret.base32().expose()), "{url}");
    assert_eq!(uri["issuer"], json!(issuer), "{url}");
    assert_eq!(uri["name"], json!(account), "{url}");
    assert_eq!(uri["digits"], json!(6));
    assert_eq!(uri["interval"], json!(30));
    assert_eq!(uri["digest"], json!("sha1"));
}

#[test]
fn pyotp_and_we_agree_on_the_rfc_6238_secret() {
    let secret = TotpSecret::from_bytes(b"12345678901234567890").expect("20 bytes");
    cross_check(&secret, "Example", "ann@example.com");
}

#[test]
fn pyotp_and_we_agree_on_random_secrets_and_awkward_names() {
    // pyotp percent-decodes the whole URL before splitting it, so names containing `?`,
    // `#`, `&` or `+` in the query cannot round-trip through it (the unit tests check how
    // we encode those); these names exercise the encoding it can read.
    for (issuer, account) in [
        ("Account Security", "bob+2fa@example.com"),
        ("Ünïcode Co.", "name with spaces/x"),
    ] {
        let secret = TotpSecret::generate().expect("a secret");
        cross_check(&secret, issuer, account);
    }
}

#[test]
fn pyotp_refuses_a_code_for_the_wrong_step() {
    // Guards the check above: pyotp's verify is exact (no drift window by default).
    let secret = TotpSecret::from_bytes(b"12345678901234567890").expect("20 bytes");
    let t = 1_111_111_111;
    let later = code_at(&secret, t + 60).expect("code").expose().to_owned();
    let answer = pyotp(&json!({
        "secret": secret.base32().expose(),
        "times": [t],
        "ours": [[t, later]],
        "url": otpauth_url(&secret, "Example", "ann@example.com"),
    }));
    assert_eq!(answer["verified"], json!([false]));
}
