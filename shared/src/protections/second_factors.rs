//! Two-step verification as the rest of the product sees it: which second factors an
//! account has, checking one (authenticator code, backup code or security answer)
//! wherever a flow demands it, and the login challenge that waits for it.

use http::StatusCode;
use serde::{Deserialize, Serialize};

use crate::app::App;
use crate::credentials::password::Verdict;
use crate::http::{ApiRequest, ApiResponse, Problem};
use crate::protections::backoff::{Claim, Counter};
use crate::protections::login_history::{self, Outcome};
use crate::records::{User, attr, keys};
use crate::store::{Change, Cond, EXPIRES_AT, Item, Write};
use crate::values::secret::{Secret, Token};
use crate::{credentials::backup_codes, credentials::security_answer, credentials::totp};

/// How long a login waits for its second factor.
pub const CHALLENGE_SECONDS: i64 = 300;
/// Wrong codes a challenge survives.
pub const CHALLENGE_ATTEMPTS: i64 = 5;
/// Login warns when this few backup codes are left.
pub const LOW_BACKUP_CODES: usize = 2;

/// A second-factor method, as requests name it (any other name is refused when the
/// body is read, so only these names are ever stored).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Factor {
    Totp,
    BackupCode,
    SecurityQuestion,
}

impl Factor {
    pub fn name(self) -> &'static str {
        match self {
            Factor::Totp => "totp",
            Factor::BackupCode => "backup_code",
            Factor::SecurityQuestion => "security_question",
        }
    }
}

/// The second-factor methods an account offers, in the order offered. Two-step
/// verification is on when the account has an authenticator app; backup codes and the
/// security question are then other ways in ("try another method"), never alone.
pub fn methods(user: &User) -> Vec<Factor> {
    if user.totp.is_none() {
        return Vec::new();
    }
    let mut methods = vec![Factor::Totp];
    if !user.backup_codes.is_empty() {
        methods.push(Factor::BackupCode);
    }
    if user.security_question.is_some() {
        methods.push(Factor::SecurityQuestion);
    }
    methods
}

/// The methods that may authorise a change of what proves the account: every method but
/// the security question, whose answers are often public or guessable. Empty when the
/// account has no two-step verification.
pub fn possession_methods(user: &User) -> Vec<Factor> {
    methods(user)
        .into_iter()
        .filter(|f| *f != Factor::SecurityQuestion)
        .collect()
}

fn method_names(methods: &[Factor]) -> Vec<&'static str> {
    methods.iter().map(|m| m.name()).collect()
}

/// A second factor offered with a request: `{"method", "code"}` (for the security
/// question, `code` is the answer).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FactorProof {
    pub method: Factor,
    pub code: Secret,
}

/// What accepting a factor changes on the account item: a TOTP time step is marked
/// used, a backup code is removed. The condition makes the factor single-use even
/// under concurrent requests; callers merge both into their own account update.
#[derive(Debug, Default)]
pub struct FactorSpend {
    pub changes: Vec<Change>,
    pub cond: Option<Cond>,
}

impl FactorSpend {
    /// The account update that spends the factor (if it needs one), with `more`
    /// changes and conditions of the caller's.
    pub fn account_update(self, user_id: &str, more: Vec<Change>, cond: Cond) -> Option<Write> {
        let mut changes = self.changes;
        changes.extend(more);
        if changes.is_empty() {
            return None;
        }
        let cond = match self.cond {
            Some(spend) => cond.and(spend),
            None => cond,
        };
        Some(Write::update(keys::user(user_id), changes).when(cond))
    }

    /// The account write that spends the factor under `cond`: its update, or a condition
    /// check when the factor changes nothing.
    pub fn account_write(self, user_id: &str, more: Vec<Change>, cond: Cond) -> Write {
        self.account_update(user_id, more, cond.clone())
            .unwrap_or_else(|| Write::check(keys::user(user_id), cond))
    }
}

/// Checks a factor; `Ok(None)` when it is wrong.
pub async fn verify_factor(
    app: &App,
    user: &User,
    factor: Factor,
    code: &Secret,
) -> anyhow::Result<Option<FactorSpend>> {
    match factor {
        Factor::Totp => {
            let Some(state) = &user.totp else {
                return Ok(None);
            };
            let secret = app.totp_keys.decrypt(&state.encrypted_secret, &user.id)?;
            let Some(step) =
                totp::matching_step(&secret, code.expose(), app.now(), state.last_step)
            else {
                return Ok(None);
            };
            Ok(Some(FactorSpend {
                changes: vec![Change::set(attr::TOTP_LAST_STEP, step)],
                cond: Some(
                    Cond::attr_exists(attr::TOTP_SECRET).and(
                        Cond::attr_absent(attr::TOTP_LAST_STEP)
                            .or(Cond::lt(attr::TOTP_LAST_STEP, step)),
                    ),
                ),
            }))
        }
        Factor::BackupCode => {
            let digest = backup_codes::digest_of(&user.id, code.expose());
            Ok(digest
                .filter(|d| user.backup_codes.contains(d))
                .map(|digest| FactorSpend {
                    changes: vec![Change::delete_from_set(attr::BACKUP_CODES, digest.as_str())],
                    cond: Some(Cond::contains(attr::BACKUP_CODES, digest)),
                }))
        }
        Factor::SecurityQuestion => {
            let Some(answer) = &user.security_question else {
                return Ok(None);
            };
            let typed = security_answer::typed_answer(code);
            let verdict = app
                .passwords
                .verify(&typed, Some(&answer.answer_hash))
                .await?;
            Ok(matches!(verdict, Verdict::Right { .. }).then(FactorSpend::default))
        }
    }
}

/// The account's second-factor counter.
pub fn counter(user_id: &str) -> Counter<'_> {
    Counter::SecondFactor { user_id }
}

/// A wrong factor is counted on the second-factor counter the attempt claimed and
/// recorded in the login history, in parallel with `also` (the caller's own count of the
/// attempt: a challenge's or an emailed link's).
pub async fn record_wrong_factor(
    app: &App,
    request: &ApiRequest,
    user_id: &str,
    factor: Factor,
    claim: &Claim,
    also: Option<Write>,
) -> anyhow::Result<()> {
    let now = app.now();
    let entry = login_history::entry(
        user_id,
        &request.client,
        now,
        Outcome::BadCode,
        factor.name(),
    );
    let counted = async {
        match also {
            // What was counted may have vanished meanwhile (a challenge spent, a link
            // replaced): the code was wrong all the same.
            Some(write) => match app.store.write(write).await {
                Ok(_) | Err(crate::store::WriteError::ConditionFailed { .. }) => Ok(()),
                Err(crate::store::WriteError::Unexpected(e)) => Err(e),
            },
            None => Ok(()),
        }
    };
    let (failure, recorded, counted) = tokio::join!(
        app.store.write(claim.failed(now)),
        app.store.write(entry),
        counted
    );
    failure.map_err(anyhow::Error::from)?;
    recorded.map_err(anyhow::Error::from)?;
    counted.map_err(|e| e.context("counting a wrong code"))?;
    Ok(())
}

pub fn invalid_code() -> Problem {
    Problem::new(
        StatusCode::UNAUTHORIZED,
        "invalid_code",
        "That code is not right.",
    )
}

fn unoffered_method() -> Problem {
    Problem::invalid_request("method must be one of the methods this account offers.")
}

/// A second factor that checked out: what spends it, and the claim on the second-factor
/// counter to clear in the caller's final transaction (`None` when the account needed
/// no factor).
#[derive(Debug, Default)]
pub struct CheckedFactor {
    pub spend: FactorSpend,
    pub claim: Option<Claim>,
}

impl CheckedFactor {
    /// The write that clears the counter, for the caller's final transaction.
    pub fn succeeded(&self) -> Option<Write> {
        self.claim.as_ref().map(Claim::succeeded)
    }

    /// Releases the claim when the caller's final step failed (nothing was committed).
    pub async fn finish<T>(&self, app: &App, outcome: Result<T, Problem>) -> Result<T, Problem> {
        if let (Err(_), Some(claim)) = (&outcome, &self.claim) {
            claim.release(app.store.as_ref(), app.now()).await;
        }
        outcome
    }
}

/// Demands one of `offered` (when there is any) from a person who holds an emailed link:
/// `403 mfa_required` listing them without a factor, `401 invalid_code` when it is
/// wrong. The check claims the account's second-factor counter first, so parallel
/// requests get no extra guesses; `on_wrong` is the link's own count of wrong factors.
pub async fn require_factor(
    app: &App,
    request: &ApiRequest,
    user: &User,
    offered: &[Factor],
    proof: Option<FactorProof>,
    on_wrong: Write,
) -> Result<CheckedFactor, Problem> {
    if offered.is_empty() {
        return Ok(CheckedFactor::default());
    }
    let Some(proof) = proof else {
        return Err(Problem::new(
            StatusCode::FORBIDDEN,
            "mfa_required",
            "This account has two-step verification: give a second factor too.",
        )
        .with_extra("methods", serde_json::json!(method_names(offered))));
    };
    if !offered.contains(&proof.method) {
        return Err(unoffered_method());
    }
    let claim = match Claim::take(app.store.as_ref(), counter(&user.id), app.now()).await? {
        Ok(claim) => claim,
        Err(wait) => return Err(Problem::rate_limited(wait)),
    };
    let checked = verify_factor(app, user, proof.method, &proof.code).await;
    match checked {
        Ok(Some(spend)) => Ok(CheckedFactor {
            spend,
            claim: Some(claim),
        }),
        Ok(None) => {
            record_wrong_factor(app, request, &user.id, proof.method, &claim, Some(on_wrong))
                .await?;
            Err(invalid_code())
        }
        Err(e) => {
            claim.release(app.store.as_ref(), app.now()).await;
            Err(e.into())
        }
    }
}

/// A login waiting for its second factor. The token names the account and the
/// challenge; only its hash is stored.
pub struct Challenge {
    token: Token,
    item: Item,
}

#[derive(Serialize)]
struct ChallengeView {
    mfa_required: bool,
    mfa_token: String,
    methods: Vec<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    security_question: Option<&'static str>,
    backup_codes_remaining: usize,
}

impl Challenge {
    pub fn start(app: &App, user: &User, remember_me: bool) -> anyhow::Result<Challenge> {
        let id = uuid::Uuid::new_v4().to_string();
        let token = Token::for_parts(&[&user.id, &id])?;
        let item = Item::new(&keys::mfa_challenge(&user.id, &id))
            .with(attr::TOKEN_HASH, token.digest())
            .with(attr::PASSWORD_DIGEST, password_digest(user))
            .with(attr::ATTEMPTS, 0)
            .with(attr::REMEMBER_ME, remember_me)
            .with(EXPIRES_AT, app.now() + CHALLENGE_SECONDS);
        Ok(Challenge { token, item })
    }

    pub fn write(&self) -> Write {
        Write::put(self.item.clone()).when(Cond::ItemAbsent)
    }

    /// `200 {"mfa_required": true, ...}`
    pub fn response(&self, user: &User) -> ApiResponse {
        let offered = methods(user);
        let view = ChallengeView {
            mfa_required: true,
            mfa_token: self.token.expose(),
            methods: method_names(&offered),
            security_question: user
                .security_question
                .as_ref()
                .and_then(|a| security_answer::question(&a.question_id))
                .map(|q| q.text),
            backup_codes_remaining: user.backup_codes.len(),
        };
        crate::http::json(StatusCode::OK, &view)
    }
}

/// Binds a challenge to the password that started it: a reset or change in between
/// makes the challenge unusable.
fn password_digest(user: &User) -> String {
    crate::values::secret::sha256_hex(&user.password_hash.0)
}

/// A presented challenge token: the account and challenge it names.
pub struct PresentedChallenge {
    pub user_id: String,
    pub challenge_id: String,
    digest: String,
}

pub fn challenge_expired() -> Problem {
    Problem::new(
        StatusCode::UNAUTHORIZED,
        "mfa_token_expired",
        "This sign-in has expired. Please log in again.",
    )
}

impl PresentedChallenge {
    pub fn parse(text: &Secret) -> Result<PresentedChallenge, Problem> {
        let token = Token::parse(text.expose()).ok_or_else(challenge_expired)?;
        let [user_id, challenge_id] = token.parts()[..] else {
            return Err(challenge_expired());
        };
        Ok(PresentedChallenge {
            user_id: user_id.to_owned(),
            challenge_id: challenge_id.to_owned(),
            digest: token.digest(),
        })
    }

    pub fn key(&self) -> crate::store::Key {
        keys::mfa_challenge(&self.user_id, &self.challenge_id)
    }

    /// Whether the stored challenge is this one, still takes attempts, and was started
    /// with the account's current password.
    pub fn usable(&self, stored: Option<&Item>, user: &User) -> bool {
        stored.is_some_and(|item| {
            item.s(attr::TOKEN_HASH)
                .is_some_and(|hash| crate::values::secret::digests_match(hash, &self.digest))
                && item.n(attr::ATTEMPTS).unwrap_or(0) < CHALLENGE_ATTEMPTS
                && item.s(attr::PASSWORD_DIGEST) == Some(password_digest(user).as_str())
        })
    }

    /// Spends the challenge: once, and only while it takes attempts.
    pub fn spend(&self) -> Write {
        Write::delete(self.key()).when(
            Cond::eq(attr::TOKEN_HASH, self.digest.as_str())
                .and(Cond::lt(attr::ATTEMPTS, CHALLENGE_ATTEMPTS)),
        )
    }

    /// Counts a wrong code against the challenge.
    pub fn count_attempt(&self) -> Write {
        Write::update(self.key(), vec![Change::add(attr::ATTEMPTS, 1)])
            .when(Cond::eq(attr::TOKEN_HASH, self.digest.as_str()))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::records::PasswordHash;
    use crate::records::{AccountType, SecurityAnswer, TotpState};

    fn user(totp: bool, codes: bool, question: bool) -> User {
        User {
            id: "u".into(),
            email: "a@example.com".into(),
            email_canonical: "a@example.com".into(),
            username: None,
            username_canonical: None,
            full_name: None,
            account_type: AccountType::Client,
            email_verified: true,
            created_at: 0,
            password_hash: PasswordHash("h".into()),
            security_question: question.then(|| SecurityAnswer {
                question_id: "first-pet".into(),
                answer_hash: PasswordHash("a".into()),
            }),
            totp: totp.then(|| TotpState {
                encrypted_secret: "s".into(),
                last_step: None,
            }),
            backup_codes: if codes {
                ["d".to_owned()].into()
            } else {
                Default::default()
            },
            sessions: Default::default(),
            mail_delivery: Default::default(),
        }
    }

    #[test]
    fn the_question_is_offered_at_login_but_never_to_change_what_proves_the_account() {
        let full = user(true, true, true);
        use Factor::*;
        assert_eq!(methods(&full), [Totp, BackupCode, SecurityQuestion]);
        assert_eq!(possession_methods(&full), [Totp, BackupCode]);
        // Without an authenticator app there is no two-step verification at all.
        let question_only = user(false, false, true);
        assert!(methods(&question_only).is_empty());
        assert!(possession_methods(&question_only).is_empty());
    }

    #[test]
    fn only_known_method_names_parse() {
        let parsed: Factor = serde_json::from_str("\"backup_code\"").unwrap();
        assert_eq!(parsed, Factor::BackupCode);
        assert!(serde_json::from_str::<Factor>("\"sms; drop\"").is_err());
    }
}
