//! What may be logged of personal data: addresses by their domain only, and nothing of
//! what people type as logins or of the IP addresses rate limits count. Store keys and
//! the texts of AWS errors pass through here before they reach an error's context.

/// `text` with every email address in it cut to its domain: `alice@example.com` becomes
/// `…@example.com`. SES error messages name recipients ("...failed the check: alice@...").
pub fn addresses(text: &str) -> String {
    let is_local = |c: char| c.is_alphanumeric() || "._%+-!#$&'*/=?^`{|}~".contains(c);
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        if chars[i] == '@' {
            // Take back the local part already copied, and say only that there was one.
            let mut dropped = 0;
            while out.chars().last().is_some_and(is_local) {
                out.pop();
                dropped += 1;
            }
            if dropped > 0 {
                out.push('…');
            }
        }
        out.push(chars[i]);
        i += 1;
    }
    out
}

/// The value part of a key that holds personal data, cut: an address to its domain, a
/// typed login, a username or an IP address to nothing.
fn value(prefix: &str, rest: &str) -> String {
    match prefix {
        "EMAIL" | "VERIFYCODE" => addresses(rest),
        "LOGIN" | "USERNAME" => "<redacted>".to_owned(),
        // RATE#<scope>#<subject>: the scope says which limit.
        "RATE" => match rest.split_once('#') {
            Some((scope, _)) => format!("{scope}#<redacted>"),
            None => "<redacted>".to_owned(),
        },
        _ => rest.to_owned(),
    }
}

/// One part of a store key (`KIND#value...`) as logs may show it: the kind of item and
/// the ids (account, session), never an address's local part, a typed login, a username
/// or an IP address.
pub fn key_part(text: &str) -> String {
    match text.split_once('#') {
        Some((prefix, rest)) => format!("{prefix}#{}", value(prefix, rest)),
        None => text.to_owned(),
    }
}

/// A whole key (`pk/sk`) as logs may show it.
pub fn key(pk: &str, sk: &str) -> String {
    format!("{}/{}", key_part(pk), key_part(sk))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_keep_only_their_domain() {
        let ses = "MessageRejected: Email address is not verified. The following identities \
                   failed the check in region US-EAST-1: alice.o'neil+x@example.com, bob@b.test";
        let cut = addresses(ses);
        assert!(!cut.contains("alice"), "{cut}");
        assert!(!cut.contains("bob"), "{cut}");
        assert!(cut.contains("…@example.com, …@b.test"), "{cut}");
        assert_eq!(addresses("no address here"), "no address here");
        assert_eq!(addresses("jöhn@exämple.com"), "…@exämple.com");
    }

    #[test]
    fn keys_show_their_kind_and_ids_but_no_personal_data() {
        let shown = key;
        assert_eq!(
            shown("EMAIL#alice@example.com", "CLAIM"),
            "EMAIL#…@example.com/CLAIM"
        );
        assert_eq!(
            shown("LOGIN#my secret password", "LOCKOUT"),
            "LOGIN#<redacted>/LOCKOUT"
        );
        assert_eq!(
            shown("USERNAME#moonbeam", "CLAIM"),
            "USERNAME#<redacted>/CLAIM"
        );
        assert_eq!(
            shown("RATE#signup#203.0.113.9", "492"),
            "RATE#signup#<redacted>/492"
        );
        assert_eq!(shown("USER#3f2a", "SESSION#01ab"), "USER#3f2a/SESSION#01ab");
        assert_eq!(
            key_part("VERIFYCODE#eve@example.com"),
            "VERIFYCODE#…@example.com"
        );
    }
}
