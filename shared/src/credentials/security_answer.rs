//! Security questions as a credential: the curated list, and answers normalised so
//! that "  Main  Street " and "main street" are one answer. Answers are hashed like
//! passwords and never returned.

use icu_normalizer::ComposingNormalizerBorrowed;
use serde::Serialize;

use crate::credentials::password::PasswordHasher;
use crate::http::{FieldError, Problem};
use crate::records::{SecurityAnswer, User, attr};
use crate::store::Change;
use crate::values::email::EmailAddress;
use crate::values::secret::Secret;

/// A question people can answer years later without the answer being public.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Question {
    pub id: &'static str,
    pub text: &'static str,
}

/// The curated list. Ids are stable: stored answers refer to them.
pub const QUESTIONS: &[Question] = &[
    Question {
        id: "first-pet",
        text: "What was the name of your first pet?",
    },
    Question {
        id: "childhood-street",
        text: "What was the name of the street you grew up on?",
    },
    Question {
        id: "first-teacher",
        text: "What was the last name of your first school teacher?",
    },
    Question {
        id: "childhood-friend",
        text: "What was the first name of your childhood best friend?",
    },
    Question {
        id: "first-concert",
        text: "What was the first concert you went to?",
    },
    Question {
        id: "first-car",
        text: "What was the make and model of your first car?",
    },
    Question {
        id: "parents-meeting-city",
        text: "In which city did your parents meet?",
    },
    Question {
        id: "first-job-town",
        text: "In which town was your first job?",
    },
    Question {
        id: "favourite-childhood-book",
        text: "What was your favourite book as a child?",
    },
    Question {
        id: "oldest-cousin",
        text: "What is the first name of your oldest cousin?",
    },
];

pub fn question(id: &str) -> Option<&'static Question> {
    QUESTIONS.iter().find(|q| q.id == id)
}

/// The least length of a normalised answer, in characters.
pub const MIN_ANSWER_CHARS: usize = 3;
const MAX_ANSWER_CHARS: usize = 128;

/// Trimmed, inner whitespace collapsed to one space, NFKC, case-folded.
pub fn normalise(text: &str) -> String {
    ComposingNormalizerBorrowed::new_nfkc()
        .normalize(text)
        .to_lowercase()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// Why an answer was refused (field error codes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AnswerProblem {
    TooShort,
    TooLong,
    EqualsPassword,
    EqualsEmail,
    EqualsUsername,
}

impl AnswerProblem {
    pub fn code(self) -> &'static str {
        match self {
            AnswerProblem::TooShort => "too_short",
            AnswerProblem::TooLong => "too_long",
            AnswerProblem::EqualsPassword => "equals_password",
            AnswerProblem::EqualsEmail => "equals_email",
            AnswerProblem::EqualsUsername => "equals_username",
        }
    }
}

/// A normalised answer that met the rules: the only kind that can be stored.
pub struct NewAnswer(Secret);

impl NewAnswer {
    pub fn parse(
        answer: &Secret,
        password: &Secret,
        email: &str,
        username: Option<&str>,
    ) -> Result<NewAnswer, AnswerProblem> {
        let answer = normalise(answer.expose());
        let chars = answer.chars().count();
        if chars < MIN_ANSWER_CHARS {
            return Err(AnswerProblem::TooShort);
        }
        if chars > MAX_ANSWER_CHARS {
            return Err(AnswerProblem::TooLong);
        }
        if answer == normalise(password.expose()) {
            return Err(AnswerProblem::EqualsPassword);
        }
        let email_forms = EmailAddress::parse(email)
            .map(|e| {
                vec![
                    e.canonical().to_owned(),
                    e.canonical_local_part().to_owned(),
                ]
            })
            .unwrap_or_default();
        if email_forms.iter().any(|form| normalise(form) == answer) {
            return Err(AnswerProblem::EqualsEmail);
        }
        if username.is_some_and(|name| normalise(name) == answer) {
            return Err(AnswerProblem::EqualsUsername);
        }
        Ok(NewAnswer(Secret::new(answer)))
    }

    pub fn secret(&self) -> &Secret {
        &self.0
    }
}

/// What a person typed at login, normalised for verification against the hash.
pub fn typed_answer(text: &Secret) -> Secret {
    Secret::new(normalise(text.expose()))
}

/// Validates a new question and answer for an account.
pub fn parse_answer(
    question_id: &str,
    answer: &Secret,
    password: &Secret,
    user: &User,
) -> Result<NewAnswer, Problem> {
    if question(question_id).is_none() {
        return Err(Problem::validation(vec![FieldError::new(
            "question_id",
            "unknown",
        )]));
    }
    NewAnswer::parse(answer, password, &user.email, user.username.as_deref())
        .map_err(|problem| Problem::validation(vec![FieldError::new("answer", problem.code())]))
}

/// The stored form of a new answer: hashed like a password.
pub async fn hash_answer(
    passwords: &PasswordHasher,
    question_id: &str,
    answer: &NewAnswer,
) -> anyhow::Result<SecurityAnswer> {
    Ok(SecurityAnswer {
        question_id: question_id.to_owned(),
        answer_hash: passwords.hash_secret(answer.secret()).await?,
    })
}

/// The account changes that store a new question and answer.
pub fn answer_changes(answer: &SecurityAnswer) -> Vec<Change> {
    vec![
        Change::set(attr::QUESTION_ID, answer.question_id.as_str()),
        Change::set(attr::ANSWER_HASH, answer.answer_hash.0.as_str()),
    ]
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn parse(answer: &str) -> Result<NewAnswer, AnswerProblem> {
        NewAnswer::parse(
            &Secret::new(answer),
            &Secret::new("Tangerine Quartz"),
            "Marguerite@example.com",
            Some("Moonbeam"),
        )
    }

    #[test]
    fn answers_are_trimmed_collapsed_and_case_folded() {
        assert_eq!(normalise("  Main \t  STREET "), "main street");
        assert_eq!(parse(" Elm   Road ").unwrap().secret().expose(), "elm road");
    }

    #[test]
    fn answers_that_are_too_short_or_reuse_credentials_are_refused() {
        assert_eq!(parse(" ab ").err(), Some(AnswerProblem::TooShort));
        assert_eq!(
            parse("tangerine   QUARTZ").err(),
            Some(AnswerProblem::EqualsPassword)
        );
        assert_eq!(
            parse("marguerite@example.com").err(),
            Some(AnswerProblem::EqualsEmail)
        );
        assert_eq!(parse("Marguerite").err(), Some(AnswerProblem::EqualsEmail));
        assert_eq!(parse("moonbeam").err(), Some(AnswerProblem::EqualsUsername));
    }

    #[test]
    fn the_curated_list_has_at_least_eight_distinct_questions() {
        assert!(QUESTIONS.len() >= 8);
        for (i, a) in QUESTIONS.iter().enumerate() {
            assert!(QUESTIONS[i + 1..].iter().all(|b| b.id != a.id));
        }
    }
}
