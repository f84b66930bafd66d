//! The items the product stores: their keys, attribute names, and the typed records
//! read from them. The single-table layout is documented in the README.

pub mod lookup;

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::mail::Delivery;
use crate::store::{Change, Cond, Item, Key, Value, schema};
use crate::values::email::EmailAddress;

/// Attribute names, in one place so readers and writers cannot drift apart.
pub mod attr {
    pub const USER_ID: &str = "user_id";
    pub const EMAIL: &str = "email";
    pub const EMAIL_CANONICAL: &str = "email_canonical";
    pub const USERNAME: &str = "username";
    pub const USERNAME_CANONICAL: &str = "username_canonical";
    pub const FULL_NAME: &str = "full_name";
    pub const ACCOUNT_TYPE: &str = "account_type";
    pub const EMAIL_VERIFIED: &str = "email_verified";
    /// What SES reported about the address (`mail::Delivery`), on the account and on
    /// the address's claim; absent while nothing was reported.
    pub const MAIL_DELIVERY: &str = "mail_delivery";
    pub const MAIL_DELIVERY_AT: &str = "mail_delivery_at";
    pub const CREATED_AT: &str = "created_at";
    pub const PASSWORD_HASH: &str = "password_hash";
    pub const TOKEN_HASH: &str = "token_hash";
    pub const CODE_HASH: &str = "code_hash";
    pub const CODE_ATTEMPTS: &str = "code_attempts";
    pub const SENT_AT: &str = "sent_at";
    pub const WINDOW_START: &str = "window_start";
    pub const WINDOW_SENDS: &str = "window_sends";
    pub const NOTICE_SENT_AT: &str = "notice_sent_at";
    pub const COUNT: &str = "count";
    pub const FAILURES: &str = "failures";
    pub const LOCKED_UNTIL: &str = "locked_until";
    pub const LAST_FAILURE_AT: &str = "last_failure_at";
    pub const LAST_REFUSAL_AT: &str = "last_refusal_at";
    pub const SESSION_ID: &str = "session_id";
    pub const LAST_SEEN_AT: &str = "last_seen_at";
    pub const IP: &str = "ip";
    pub const USER_AGENT: &str = "user_agent";
    pub const REMEMBER_ME: &str = "remember_me";
    pub const REFRESH_HASH: &str = "refresh_hash";
    pub const REFRESH_GENERATION: &str = "refresh_generation";
    pub const AT: &str = "at";
    pub const OUTCOME: &str = "outcome";
    pub const METHOD: &str = "method";
    pub const VALID_UNTIL: &str = "valid_until";
    pub const QUESTION_ID: &str = "question_id";
    pub const ANSWER_HASH: &str = "answer_hash";
    pub const TOTP_SECRET: &str = "totp_secret";
    pub const TOTP_LAST_STEP: &str = "totp_last_step";
    pub const TOTP_ENABLED_AT: &str = "totp_enabled_at";
    pub const BACKUP_CODES: &str = "backup_codes";
    pub const ATTEMPTS: &str = "attempts";
    pub const PASSWORD_DIGEST: &str = "password_digest";
    /// On an account: sessions of an earlier epoch have ended (one write ends them all).
    pub const SESSION_EPOCH: &str = "session_epoch";
    /// On an account: the one session that outlived the last epoch change (the caller
    /// of "sign out other devices").
    pub const KEPT_SESSION: &str = "kept_session";
    /// On a session: the account's session epoch when it was created.
    pub const EPOCH: &str = "epoch";
    /// On an email or username claim: the password of a signup made on an address that
    /// already had an account, hashed like that account's (see `signup`).
    pub const PENDING_HASH: &str = "pending_hash";
    /// On an email claim: until when its pending signup is answered.
    pub const PENDING_UNTIL: &str = "pending_until";
    /// On a session: how its second step was passed (`password` when there was none).
    pub const SECOND_FACTOR: &str = "second_factor";
    /// On an account created through Google or Apple: its password is a random one
    /// nobody knows (until "forgot password" sets one), so it is no way to log in.
    pub const PASSWORD_UNUSABLE: &str = "password_unusable";
    /// On an identity or a sign-in in progress: `google` or `apple`.
    pub const PROVIDER: &str = "provider";
    /// On an identity: the provider's `sub`.
    pub const SUBJECT: &str = "subject";
    pub const LINKED_AT: &str = "linked_at";
    /// On a sign-in in progress: where the browser goes afterwards.
    pub const RETURN_TO: &str = "return_to";
    /// On a sign-in waiting for its last step: `signup` or `link`.
    pub const STEP: &str = "step";
    /// On a sign-in waiting for its account type: the unverified account (someone
    /// else's signup) that the verified address is taken back from.
    pub const REPLACES: &str = "replaces";
    pub const PRIVATE_EMAIL: &str = "private_email";
}

/// Item keys.
pub mod keys {
    use crate::store::Key;

    /// The account itself.
    pub fn user(user_id: &str) -> Key {
        Key::new(format!("USER#{user_id}"), "PROFILE")
    }

    /// The pending email verification of an account (at most one).
    pub fn verification(user_id: &str) -> Key {
        Key::new(format!("USER#{user_id}"), "VERIFY")
    }

    /// Claims an email address (canonical form) for one account.
    pub fn email_claim(canonical_email: &str) -> Key {
        Key::new(format!("EMAIL#{canonical_email}"), "CLAIM")
    }

    /// The claim that maps a login (an address or a username) to its account.
    pub fn claim_of(login: &crate::values::login_id::LoginId) -> Key {
        use crate::values::login_id::LoginId;
        match login {
            LoginId::Email(email) => email_claim(email.canonical()),
            LoginId::Username(name) => username_claim(name.canonical()),
        }
    }

    /// Claims a username (canonical form) for one account.
    pub fn username_claim(canonical_username: &str) -> Key {
        Key::new(format!("USERNAME#{canonical_username}"), "CLAIM")
    }

    /// The pending emailed password-reset link of an account (at most one).
    pub fn password_reset(user_id: &str) -> Key {
        Key::new(format!("USER#{user_id}"), "RESET")
    }

    /// The pending emailed security-question reset link of an account (at most one).
    pub fn security_question_reset(user_id: &str) -> Key {
        Key::new(format!("USER#{user_id}"), "SQRESET")
    }

    /// An authenticator-app secret waiting for its first code (10 minutes).
    pub fn totp_pending(user_id: &str) -> Key {
        Key::new(format!("USER#{user_id}"), "TOTP_PENDING")
    }

    /// A login waiting for its second factor (5 minutes).
    pub fn mfa_challenge(user_id: &str, challenge_id: &str) -> Key {
        Key::new(format!("USER#{user_id}"), format!("MFA#{challenge_id}"))
    }

    /// The consecutive login failures of an account.
    pub fn account_lockout(user_id: &str) -> Key {
        Key::new(format!("USER#{user_id}"), "LOCKOUT")
    }

    /// The consecutive wrong second factors of an account (codes, answers).
    pub fn second_factor_lockout(user_id: &str) -> Key {
        Key::new(format!("USER#{user_id}"), "LOCKOUT#FACTOR")
    }

    /// The consecutive wrong passwords of signed-in password checks on an account.
    pub fn reauthentication_lockout(user_id: &str) -> Key {
        Key::new(format!("USER#{user_id}"), "LOCKOUT#REAUTH")
    }

    /// The consecutive login failures of a username, or of a login that has no account
    /// (so that unknown logins lock exactly like known ones: no enumeration through
    /// `429`).
    pub fn login_lockout(canonical_login: &str) -> Key {
        Key::new(format!("LOGIN#{canonical_login}"), "LOCKOUT")
    }

    /// A sign-in with a provider between `start` and its callback, keyed by the digest of
    /// the browser's handle (its `__Host-` cookie), never the handle.
    pub fn oauth_state(handle_digest: &str) -> Key {
        Key::new(format!("OAUTH#{handle_digest}"), "STATE")
    }

    /// A sign-in with a provider waiting for its last step (the account type, or the
    /// proof of an existing account), named by its token's selector.
    pub fn oauth_pending(id: &str) -> Key {
        Key::new(format!("OAUTH#{id}"), "PENDING")
    }

    /// Which account a provider's identity (`provider` + `sub`) logs into.
    pub fn identity(provider: &str, subject: &str) -> Key {
        Key::new(format!("IDENTITY#{provider}#{subject}"), "LINK")
    }

    /// The prefix of an account's identities' sort keys.
    pub const IDENTITY_PREFIX: &str = "IDENTITY#";

    /// An account's identity at `provider` (at most one per provider), for its list.
    pub fn account_identity(user_id: &str, provider: &str) -> Key {
        Key::new(
            format!("USER#{user_id}"),
            format!("{IDENTITY_PREFIX}{provider}"),
        )
    }

    /// The prefix of every session's sort key.
    pub const SESSION_PREFIX: &str = "SESSION#";

    /// One signed-in session of an account.
    pub fn session(user_id: &str, session_id: &str) -> Key {
        Key::new(
            format!("USER#{user_id}"),
            format!("{SESSION_PREFIX}{session_id}"),
        )
    }

    /// The prefix of every login-history entry's sort key.
    pub const HISTORY_PREFIX: &str = "HISTORY#";

    /// One login attempt; sort keys order by time.
    pub fn history(user_id: &str, at: i64, unique: &str) -> Key {
        Key::new(
            format!("USER#{user_id}"),
            format!("{HISTORY_PREFIX}{at:012}#{unique}"),
        )
    }

    /// The partition of an account's own items.
    pub fn user_partition(user_id: &str) -> String {
        format!("USER#{user_id}")
    }

    /// A fixed-window counter of a rate limit.
    pub fn rate_window(scope: &str, subject: &str, window: i64) -> Key {
        Key::new(format!("RATE#{scope}#{subject}"), window.to_string())
    }
}

/// What kind of party an account is on the marketplace.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AccountType {
    Freelancer,
    Client,
    Agency,
}

impl AccountType {
    pub fn parse(text: &str) -> Option<AccountType> {
        match text {
            "freelancer" => Some(AccountType::Freelancer),
            "client" => Some(AccountType::Client),
            "agency" => Some(AccountType::Agency),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            AccountType::Freelancer => "freelancer",
            AccountType::Client => "client",
            AccountType::Agency => "agency",
        }
    }
}

/// A stored argon2 hash in PHC string form (`$argon2id$v=19$m=...`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PasswordHash(pub String);

/// An account as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub id: String,
    /// Where mail goes.
    pub email: String,
    pub email_canonical: String,
    pub username: Option<String>,
    pub username_canonical: Option<String>,
    pub full_name: Option<String>,
    pub account_type: AccountType,
    pub email_verified: bool,
    pub created_at: i64,
    pub password_hash: PasswordHash,
    /// The chosen security question's id, and the answer's argon2 hash.
    pub security_question: Option<SecurityAnswer>,
    /// The authenticator app, once confirmed.
    pub totp: Option<TotpState>,
    /// Digests of the unused backup codes.
    pub backup_codes: BTreeSet<String>,
    /// Which sessions are still valid (see [`SessionEpoch`]).
    pub sessions: SessionEpoch,
    /// What SES reported about `email` (bounced, complained), if anything.
    pub mail_delivery: Delivery,
}

/// Ends sessions in bulk with one write: a session is valid only while its epoch is at
/// least the account's, or while it is the one session kept at the last change. A
/// password change or reset, or "sign out other devices", moves the account's epoch on.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SessionEpoch {
    pub epoch: i64,
    pub kept_session: Option<String>,
}

impl SessionEpoch {
    pub fn from_item(item: &Item) -> SessionEpoch {
        SessionEpoch {
            epoch: item.n(attr::SESSION_EPOCH).unwrap_or(0),
            kept_session: item.s(attr::KEPT_SESSION).map(str::to_owned),
        }
    }

    /// Whether a session of `epoch` named `session_id` is still valid.
    pub fn admits(&self, session_id: &str, epoch: i64) -> bool {
        epoch >= self.epoch || self.kept_session.as_deref() == Some(session_id)
    }

    /// The same rule as [`SessionEpoch::admits`], as a condition on the account item.
    pub fn admits_cond(session_id: &str, epoch: i64) -> Cond {
        Cond::attr_absent(attr::SESSION_EPOCH)
            .or(Cond::le(attr::SESSION_EPOCH, epoch))
            .or(Cond::eq(attr::KEPT_SESSION, session_id))
    }

    /// A condition that the account's epoch is still this one (a login checked against
    /// it must not create a session that a concurrent change has already ended).
    pub fn unchanged_cond(&self) -> Cond {
        match self.epoch {
            0 => Cond::attr_absent(attr::SESSION_EPOCH).or(Cond::eq(attr::SESSION_EPOCH, 0)),
            epoch => Cond::eq(attr::SESSION_EPOCH, epoch),
        }
    }

    /// The changes that end every session, or every session but `keep`: the epoch moves
    /// on by an atomic add, so concurrent changes never undo one another.
    pub fn end_all(keep: Option<&str>) -> Vec<Change> {
        vec![
            Change::add(attr::SESSION_EPOCH, 1),
            match keep {
                Some(session_id) => Change::set(attr::KEPT_SESSION, session_id),
                None => Change::remove(attr::KEPT_SESSION),
            },
        ]
    }
}

/// An enabled authenticator app, as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TotpState {
    /// The secret, encrypted with the configured key and bound to the account.
    pub encrypted_secret: String,
    /// The last time step whose code was accepted: codes of it and before are spent.
    pub last_step: Option<i64>,
}

/// A security question and its hashed answer, as stored on the account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecurityAnswer {
    pub question_id: String,
    pub answer_hash: PasswordHash,
}

/// The day an unverified account was created, as its cleanup-index partition.
pub fn unverified_day(created_at: i64) -> String {
    let day = created_at.div_euclid(86_400);
    format!("UNVERIFIED#{day}")
}

impl User {
    pub fn key(&self) -> Key {
        keys::user(&self.id)
    }

    pub fn to_item(&self) -> Item {
        let mut item = Item::new(&self.key());
        item.set(attr::USER_ID, self.id.as_str())
            .set(attr::EMAIL, self.email.as_str())
            .set(attr::EMAIL_CANONICAL, self.email_canonical.as_str())
            .set_opt(attr::USERNAME, self.username.clone())
            .set_opt(attr::USERNAME_CANONICAL, self.username_canonical.clone())
            .set_opt(attr::FULL_NAME, self.full_name.clone())
            .set(attr::ACCOUNT_TYPE, self.account_type.as_str())
            .set(attr::EMAIL_VERIFIED, self.email_verified)
            .set(attr::CREATED_AT, self.created_at)
            .set(attr::PASSWORD_HASH, self.password_hash.0.as_str());
        if let Some(totp) = &self.totp {
            item.set(attr::TOTP_SECRET, totp.encrypted_secret.as_str())
                .set_opt(attr::TOTP_LAST_STEP, totp.last_step);
        }
        if !self.backup_codes.is_empty() {
            item.set(attr::BACKUP_CODES, Value::Ss(self.backup_codes.clone()));
        }
        if let Some(answer) = &self.security_question {
            item.set(attr::QUESTION_ID, answer.question_id.as_str())
                .set(attr::ANSWER_HASH, answer.answer_hash.0.as_str());
        }
        if self.sessions.epoch != 0 {
            item.set(attr::SESSION_EPOCH, self.sessions.epoch);
        }
        item.set_opt(attr::KEPT_SESSION, self.sessions.kept_session.clone());
        if self.mail_delivery != Delivery::Deliverable {
            item.set(attr::MAIL_DELIVERY, self.mail_delivery.as_str());
        }
        if !self.email_verified {
            // Sparse index: only unverified accounts are in it, for the cleanup job.
            let index = schema::UNVERIFIED_BY_DAY;
            item.set(index.pk, unverified_day(self.created_at))
                .set(index.sk, format!("{}#{}", self.created_at, self.id));
        }
        item
    }

    pub fn from_item(item: &Item) -> anyhow::Result<User> {
        let text = |name: &str| {
            item.s(name)
                .map(str::to_owned)
                .ok_or_else(|| anyhow::anyhow!("a user item lacks its {name}"))
        };
        let account_type = AccountType::parse(&text(attr::ACCOUNT_TYPE)?)
            .ok_or_else(|| anyhow::anyhow!("a user item has an unknown account type"))?;
        Ok(User {
            id: text(attr::USER_ID)?,
            email: text(attr::EMAIL)?,
            email_canonical: text(attr::EMAIL_CANONICAL)?,
            username: item.s(attr::USERNAME).map(str::to_owned),
            username_canonical: item.s(attr::USERNAME_CANONICAL).map(str::to_owned),
            full_name: item.s(attr::FULL_NAME).map(str::to_owned),
            account_type,
            email_verified: item.bool(attr::EMAIL_VERIFIED).unwrap_or(false),
            created_at: item.n(attr::CREATED_AT).unwrap_or(0),
            password_hash: PasswordHash(text(attr::PASSWORD_HASH)?),
            totp: item.s(attr::TOTP_SECRET).map(|secret| TotpState {
                encrypted_secret: secret.to_owned(),
                last_step: item.n(attr::TOTP_LAST_STEP),
            }),
            backup_codes: item.ss(attr::BACKUP_CODES).cloned().unwrap_or_default(),
            security_question: match (item.s(attr::QUESTION_ID), item.s(attr::ANSWER_HASH)) {
                (Some(id), Some(hash)) => Some(SecurityAnswer {
                    question_id: id.to_owned(),
                    answer_hash: PasswordHash(hash.to_owned()),
                }),
                _ => None,
            },
            sessions: SessionEpoch::from_item(item),
            mail_delivery: Delivery::parse(item.s(attr::MAIL_DELIVERY)),
        })
    }
}

/// The item that claims an email address for an account. It also remembers where to
/// send mail, so that a signup colliding with it can answer in one round trip.
pub fn email_claim_item(email: &EmailAddress, user_id: &str) -> Item {
    Item::new(&keys::email_claim(email.canonical()))
        .with(attr::USER_ID, user_id)
        .with(attr::EMAIL, email.address())
}

/// The item that claims a username for an account.
pub fn username_claim_item(canonical_username: &str, user_id: &str) -> Item {
    Item::new(&keys::username_claim(canonical_username)).with(attr::USER_ID, user_id)
}

/// A fresh account id: a random (v4) UUID.
pub fn new_user_id() -> String {
    uuid::Uuid::new_v4().to_string()
}
