//! Login history: every attempt on an existing account, kept 90 days, newest first.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;

use crate::http::Client;
use crate::protections::backoff::Claim;
use crate::records::{attr, keys};
use crate::store::{EXPIRES_AT, Item, Key, Store, Write, schema};

/// How long an entry is kept.
pub const RETENTION_SECONDS: i64 = 90 * 24 * 3_600;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Success,
    BadPassword,
    BadCode,
    RateLimited,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::BadPassword => "bad_password",
            Outcome::BadCode => "bad_code",
            Outcome::RateLimited => "rate_limited",
        }
    }
}

/// The method of an attempt that checked a password.
pub const PASSWORD: &str = "password";

/// The entry for one attempt, as a write to add to the attempt's other writes. `method`
/// is `password` or a second factor's name: never text from a request.
pub fn entry(
    user_id: &str,
    client: &Client,
    now: i64,
    outcome: Outcome,
    method: &'static str,
) -> Write {
    let key = keys::history(user_id, now, &tie_breaker());
    Write::put(schema::index_expiry(
        Item::new(&key)
            .with(attr::AT, now)
            .with(attr::IP, client.ip.to_string())
            .with(attr::USER_AGENT, client.user_agent.as_str())
            .with(attr::OUTCOME, outcome.as_str())
            .with(attr::METHOD, method)
            .with(EXPIRES_AT, now + RETENTION_SECONDS),
    ))
}

/// Orders entries written within one second: the machine's sub-second time, then a
/// few random characters so that two writers never collide.
fn tie_breaker() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let random = uuid::Uuid::new_v4().simple().to_string();
    format!("{nanos:020}{}", &random[..6])
}

/// One entry as the API shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Entry {
    pub at: String,
    pub ip: String,
    pub user_agent: String,
    pub outcome: String,
    pub method: String,
}

impl Entry {
    pub fn from_item(item: &Item) -> Entry {
        let text = |name: &str| item.s(name).unwrap_or_default().to_owned();
        Entry {
            at: crate::clock::rfc3339(item.n(attr::AT).unwrap_or(0)),
            ip: text(attr::IP),
            user_agent: text(attr::USER_AGENT),
            outcome: text(attr::OUTCOME),
            method: text(attr::METHOD),
        }
    }
}

/// A paging cursor: the sort key of the last entry shown, opaque to clients.
pub fn cursor_of(key: &Key) -> String {
    URL_SAFE_NO_PAD.encode(key.sk.as_bytes())
}

/// The longest cursor of ours: the base64 of a sort key (history's are 49 characters,
/// sessions' 44), with room to spare and far below DynamoDB's key limit.
const MAX_CURSOR_CHARS: usize = 256;

/// The sort key inside a cursor, if it is one of ours for a list whose keys start with
/// `prefix`.
pub fn sort_key_of(cursor: &str, prefix: &str) -> Option<String> {
    if cursor.len() > MAX_CURSOR_CHARS {
        return None;
    }
    let bytes = URL_SAFE_NO_PAD.decode(cursor).ok()?;
    let sk = String::from_utf8(bytes).ok()?;
    let printable = sk.bytes().all(|b| b.is_ascii_graphic());
    (sk.starts_with(prefix) && printable).then_some(sk)
}

/// Counts a wrong password against `claim` and, when it was typed for an account
/// (`user_id`), records it in the account's history: the two writes in parallel, one
/// sequential step. Logins and signed-in password checks both end a wrong guess here.
pub async fn count_wrong_password(
    store: &dyn Store,
    claim: &Claim,
    user_id: Option<&str>,
    client: &Client,
    now: i64,
) -> anyhow::Result<()> {
    let history = async {
        match user_id {
            Some(user_id) => {
                let wrong = entry(user_id, client, now, Outcome::BadPassword, PASSWORD);
                store.write(wrong).await.map(drop)
            }
            None => Ok(()),
        }
    };
    let (counted, recorded) = tokio::join!(store.write(claim.failed(now)), history);
    counted?;
    recorded?;
    Ok(())
}
