//! Every email the product sends, as data: a [`Message`] carries exactly the values its
//! template needs and renders into an [`Email`] for one recipient.
//!
//! Links arrive fully built: callers make them from the configured `APP_BASE_URL`,
//! never from request headers. `ip` and `device` come from the request and are treated
//! as hostile: they are length-capped here, the templates escape them in HTML, and
//! [`templates::Clean`] drops control and bidirectional characters from every value.

use std::fmt;

use anyhow::Context;

use super::Email;
use super::templates::{self, Template};

/// Longest `device` (a User-Agent, usually) shown in an email; real ones are far shorter,
/// and a 16 KiB header must not turn into a 16 KiB email.
const MAX_DEVICE_CHARS: usize = 200;
/// Longest `ip` shown; an IPv6 address with a zone is well under this.
const MAX_IP_CHARS: usize = 64;
/// Longest `when` shown; it is built by the caller, so this is only a backstop.
const MAX_WHEN_CHARS: usize = 64;

/// One email, with the values it shows. See `shared/templates/mail/` for the wording.
///
/// `when`, `ip` and `device` describe the request that caused a security notification:
/// `when` is a human-readable time (e.g. RFC 3339), `ip` the client address, `device`
/// the User-Agent or a summary of it. `reset_url` is where to reset the password when
/// the change was not the owner's doing.
#[derive(Clone, PartialEq, Eq)]
pub enum Message {
    /// Confirm a new address: a link and a 6-digit code, both valid `valid_hours`.
    VerifyEmail {
        link: String,
        code: String,
        valid_hours: i64,
    },
    /// Someone signed up with an address that already has an account.
    AccountExists {
        login_url: String,
        reset_url: String,
    },
    /// A password-reset link, valid `valid_minutes`.
    PasswordResetLink { link: String, valid_minutes: i64 },
    /// The password was changed by a signed-in session.
    PasswordChanged {
        when: String,
        ip: String,
        device: String,
        reset_url: String,
    },
    /// The password was reset with an emailed link.
    PasswordWasReset {
        when: String,
        ip: String,
        device: String,
        reset_url: String,
    },
    /// A security-question reset link, valid `valid_minutes`.
    SecurityQuestionResetLink { link: String, valid_minutes: i64 },
    /// The security question was changed.
    SecurityQuestionChanged {
        when: String,
        ip: String,
        device: String,
        reset_url: String,
    },
    /// A provider (`Google`, `Apple`) was linked (`linked` true) or unlinked.
    IdentityChanged {
        provider: String,
        linked: bool,
        when: String,
        ip: String,
        device: String,
        reset_url: String,
    },
    /// Two-step verification was turned on. No reset link: with two-step on, a reset
    /// needs the second factor, so the email points to "Forgot password" and support.
    TwoStepEnabled {
        when: String,
        ip: String,
        device: String,
    },
    /// Two-step verification was turned off.
    TwoStepDisabled {
        when: String,
        ip: String,
        device: String,
        reset_url: String,
    },
    /// A new set of backup codes replaced the old one.
    BackupCodesRegenerated {
        when: String,
        ip: String,
        device: String,
        reset_url: String,
    },
}

/// Only the kind of message: links and codes are secrets and must not reach logs
/// through a stray `{:?}`.
impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Message")
            .field("template", &self.template().name())
            .finish_non_exhaustive()
    }
}

impl Message {
    /// Whether the recipient asked for this message by an action of their own (a
    /// signup, a resend, a "forgot" form): a verification or a one-time link. Every
    /// other message is a notice the product sends on its own initiative.
    pub fn is_requested(&self) -> bool {
        matches!(
            self,
            Message::VerifyEmail { .. }
                | Message::PasswordResetLink { .. }
                | Message::SecurityQuestionResetLink { .. }
        )
    }

    /// The template files this message renders from.
    pub fn template(&self) -> &'static Template {
        match self {
            Message::VerifyEmail { .. } => &templates::VerifyEmail::TEMPLATE,
            Message::AccountExists { .. } => &templates::AccountExists::TEMPLATE,
            Message::PasswordResetLink { .. } => &templates::PasswordResetLink::TEMPLATE,
            Message::PasswordChanged { .. } => &templates::PasswordChanged::TEMPLATE,
            Message::PasswordWasReset { .. } => &templates::PasswordWasReset::TEMPLATE,
            Message::SecurityQuestionResetLink { .. } => {
                &templates::SecurityQuestionResetLink::TEMPLATE
            }
            Message::SecurityQuestionChanged { .. } => {
                &templates::SecurityQuestionChanged::TEMPLATE
            }
            Message::IdentityChanged { .. } => &templates::IdentityChanged::TEMPLATE,
            Message::TwoStepEnabled { .. } => &templates::TwoStepEnabled::TEMPLATE,
            Message::TwoStepDisabled { .. } => &templates::TwoStepDisabled::TEMPLATE,
            Message::BackupCodesRegenerated { .. } => &templates::BackupCodesRegenerated::TEMPLATE,
        }
    }

    /// Renders the message for `to`, which must be the account's stored address.
    pub fn render(&self, to: &str) -> anyhow::Result<Email> {
        use templates as t;
        // Every arm builds its template's struct: a value the files use and the struct
        // lacks does not compile. A duration's temporary string lives until the end of
        // its arm, past the rendering that borrows it.
        let rendered = match self {
            Message::VerifyEmail {
                link,
                code,
                valid_hours,
            } => t::VerifyEmail {
                link: link.into(),
                code: code.into(),
                valid_for: (&hours(*valid_hours)).into(),
            }
            .render(),
            Message::AccountExists {
                login_url,
                reset_url,
            } => t::AccountExists {
                login_url: login_url.into(),
                reset_url: reset_url.into(),
            }
            .render(),
            Message::PasswordResetLink {
                link,
                valid_minutes,
            } => t::PasswordResetLink {
                link: link.into(),
                valid_for: (&minutes(*valid_minutes)).into(),
            }
            .render(),
            Message::SecurityQuestionResetLink {
                link,
                valid_minutes,
            } => t::SecurityQuestionResetLink {
                link: link.into(),
                valid_for: (&minutes(*valid_minutes)).into(),
            }
            .render(),
            Message::PasswordChanged {
                when,
                ip,
                device,
                reset_url,
            } => {
                let d = Details::new(when, ip, device);
                t::PasswordChanged {
                    when: (&d.when).into(),
                    ip: (&d.ip).into(),
                    device: (&d.device).into(),
                    reset_url: reset_url.into(),
                }
                .render()
            }
            Message::PasswordWasReset {
                when,
                ip,
                device,
                reset_url,
            } => {
                let d = Details::new(when, ip, device);
                t::PasswordWasReset {
                    when: (&d.when).into(),
                    ip: (&d.ip).into(),
                    device: (&d.device).into(),
                    reset_url: reset_url.into(),
                }
                .render()
            }
            Message::SecurityQuestionChanged {
                when,
                ip,
                device,
                reset_url,
            } => {
                let d = Details::new(when, ip, device);
                t::SecurityQuestionChanged {
                    when: (&d.when).into(),
                    ip: (&d.ip).into(),
                    device: (&d.device).into(),
                    reset_url: reset_url.into(),
                }
                .render()
            }
            Message::IdentityChanged {
                provider,
                linked,
                when,
                ip,
                device,
                reset_url,
            } => {
                let d = Details::new(when, ip, device);
                t::IdentityChanged {
                    provider: provider.into(),
                    change: if *linked {
                        "linked to"
                    } else {
                        "unlinked from"
                    }
                    .into(),
                    when: (&d.when).into(),
                    ip: (&d.ip).into(),
                    device: (&d.device).into(),
                    reset_url: reset_url.into(),
                }
                .render()
            }
            Message::TwoStepEnabled { when, ip, device } => {
                let d = Details::new(when, ip, device);
                t::TwoStepEnabled {
                    when: (&d.when).into(),
                    ip: (&d.ip).into(),
                    device: (&d.device).into(),
                }
                .render()
            }
            Message::TwoStepDisabled {
                when,
                ip,
                device,
                reset_url,
            } => {
                let d = Details::new(when, ip, device);
                t::TwoStepDisabled {
                    when: (&d.when).into(),
                    ip: (&d.ip).into(),
                    device: (&d.device).into(),
                    reset_url: reset_url.into(),
                }
                .render()
            }
            Message::BackupCodesRegenerated {
                when,
                ip,
                device,
                reset_url,
            } => {
                let d = Details::new(when, ip, device);
                t::BackupCodesRegenerated {
                    when: (&d.when).into(),
                    ip: (&d.ip).into(),
                    device: (&d.device).into(),
                    reset_url: reset_url.into(),
                }
                .render()
            }
        }
        .with_context(|| format!("rendering the {} email", self.template().name()))?;
        Ok(Email {
            to: to.to_owned(),
            subject: rendered.subject,
            text: rendered.text,
            html: rendered.html,
        })
    }
}

/// What a security notification says of the request that caused it, capped for showing.
struct Details {
    when: String,
    ip: String,
    device: String,
}

impl Details {
    fn new(when: &str, ip: &str, device: &str) -> Details {
        Details {
            when: capped(when, MAX_WHEN_CHARS, "unknown time"),
            ip: capped(ip, MAX_IP_CHARS, "unknown"),
            device: capped(device, MAX_DEVICE_CHARS, "unknown device"),
        }
    }
}

/// Trims and shortens an untrusted value; an empty one reads `fallback` rather than
/// leaving a dangling "Device:" line.
fn capped(value: &str, max_chars: usize, fallback: &str) -> String {
    let value = value.trim();
    if value.is_empty() {
        return fallback.to_owned();
    }
    match value.char_indices().nth(max_chars) {
        Some((cut, _)) => format!("{}…", &value[..cut]),
        None => value.to_owned(),
    }
}

fn hours(n: i64) -> String {
    if n == 1 {
        "1 hour".to_owned()
    } else {
        format!("{n} hours")
    }
}

/// Whole hours read better ("1 hour" rather than "60 minutes").
fn minutes(n: i64) -> String {
    if n >= 60 && n % 60 == 0 {
        hours(n / 60)
    } else if n == 1 {
        "1 minute".to_owned()
    } else {
        format!("{n} minutes")
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    const TO: &str = "ann@example.com";
    const RESET: &str = "https://app.example/reset-password";

    fn details() -> (String, String, String) {
        (
            "2025-03-01T12:00:00Z".to_owned(),
            "203.0.113.7".to_owned(),
            "Firefox on Linux".to_owned(),
        )
    }

    /// One of every message, with realistic values.
    fn samples() -> Vec<Message> {
        let (when, ip, device) = details();
        let reset_url = RESET.to_owned();
        vec![
            Message::VerifyEmail {
                link: "https://app.example/verify-email?token=abc&x=1".to_owned(),
                code: "042917".to_owned(),
                valid_hours: 24,
            },
            Message::AccountExists {
                login_url: "https://app.example/login".to_owned(),
                reset_url: reset_url.clone(),
            },
            Message::PasswordResetLink {
                link: "https://app.example/reset-password?token=def".to_owned(),
                valid_minutes: 60,
            },
            Message::PasswordChanged {
                when: when.clone(),
                ip: ip.clone(),
                device: device.clone(),
                reset_url: reset_url.clone(),
            },
            Message::PasswordWasReset {
                when: when.clone(),
                ip: ip.clone(),
                device: device.clone(),
                reset_url: reset_url.clone(),
            },
            Message::SecurityQuestionResetLink {
                link: "https://app.example/reset-security-question?token=ghi".to_owned(),
                valid_minutes: 60,
            },
            Message::SecurityQuestionChanged {
                when: when.clone(),
                ip: ip.clone(),
                device: device.clone(),
                reset_url: reset_url.clone(),
            },
            Message::IdentityChanged {
                provider: "Google".into(),
                linked: true,
                when: when.clone(),
                ip: ip.clone(),
                device: device.clone(),
                reset_url: reset_url.clone(),
            },
            Message::TwoStepEnabled {
                when: when.clone(),
                ip: ip.clone(),
                device: device.clone(),
            },
            Message::TwoStepDisabled {
                when: when.clone(),
                ip: ip.clone(),
                device: device.clone(),
                reset_url: reset_url.clone(),
            },
            Message::BackupCodesRegenerated {
                when,
                ip,
                device,
                reset_url,
            },
        ]
    }

    fn has_details(message: &Message) -> bool {
        !matches!(
            message,
            Message::VerifyEmail { .. }
                | Message::AccountExists { .. }
                | Message::PasswordResetLink { .. }
                | Message::SecurityQuestionResetLink { .. }
        )
    }

    fn has_reset_url(message: &Message) -> bool {
        matches!(
            message,
            Message::AccountExists { .. }
                | Message::PasswordChanged { .. }
                | Message::PasswordWasReset { .. }
                | Message::SecurityQuestionChanged { .. }
                | Message::IdentityChanged { .. }
                | Message::TwoStepDisabled { .. }
                | Message::BackupCodesRegenerated { .. }
        )
    }

    #[test]
    fn every_message_renders_with_no_placeholder_left() -> anyhow::Result<()> {
        for message in samples() {
            let email = message.render(TO)?;
            let name = message.template().name();
            assert_eq!(email.to, TO);
            assert!(!email.subject.trim().is_empty(), "{name}: empty subject");
            assert!(
                !email.subject.contains(char::is_control),
                "{name}: the subject must be one line: {:?}",
                email.subject
            );
            for (part, body) in [
                ("subject", &email.subject),
                ("text", &email.text),
                ("html", &email.html),
            ] {
                assert!(
                    !body.contains("{{"),
                    "{name} {part} has `{{{{` left:\n{body}"
                );
                assert!(
                    !body.contains("}}"),
                    "{name} {part} has `}}}}` left:\n{body}"
                );
            }
        }
        Ok(())
    }

    #[test]
    fn the_samples_cover_every_template() {
        let rendered: BTreeSet<_> = samples().iter().map(|m| m.template().name()).collect();
        let all: BTreeSet<_> = templates::ALL.iter().map(|t| t.name()).collect();
        assert_eq!(rendered, all);
    }

    #[test]
    fn every_template_file_on_disk_belongs_to_a_message() -> anyhow::Result<()> {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/templates/mail");
        let mut on_disk = BTreeSet::new();
        for entry in std::fs::read_dir(dir).context("listing shared/templates/mail")? {
            let name = entry?.file_name().to_string_lossy().into_owned();
            on_disk.insert(name);
        }
        // The layouts and the pieces several messages include.
        let mut expected: BTreeSet<_> = [
            "layout.txt",
            "layout.html",
            "when_where.html",
            "reset_button.html",
        ]
        .map(str::to_owned)
        .into();
        for template in templates::ALL {
            expected.insert(format!("{}.txt", template.name()));
            expected.insert(format!("{}.html", template.name()));
        }
        assert_eq!(on_disk, expected);
        Ok(())
    }

    #[test]
    fn the_verification_email_shows_the_link_the_code_and_the_expiry() -> anyhow::Result<()> {
        let email = Message::VerifyEmail {
            link: "https://app.example/verify-email?token=abc&x=1".to_owned(),
            code: "042917".to_owned(),
            valid_hours: 24,
        }
        .render(TO)?;
        assert_eq!(email.subject, "Confirm your email address");
        assert!(
            email
                .text
                .contains("https://app.example/verify-email?token=abc&x=1")
        );
        assert!(email.text.contains("042917"));
        assert!(email.text.contains("24 hours"));
        assert!(
            email
                .html
                .contains("href=\"https://app.example/verify-email?token=abc&#38;x=1\"")
        );
        assert!(email.html.contains(">042917</p>"));
        assert!(email.html.contains("24 hours"));
        Ok(())
    }

    #[test]
    fn every_security_notification_shows_when_where_and_what_device() -> anyhow::Result<()> {
        let (when, ip, device) = details();
        for message in samples().iter().filter(|m| has_details(m)) {
            let email = message.render(TO)?;
            let name = message.template().name();
            for value in [&when, &ip, &device] {
                assert!(
                    email.text.contains(value.as_str()),
                    "{name} text lacks {value}"
                );
                assert!(
                    email.html.contains(value.as_str()),
                    "{name} html lacks {value}"
                );
            }
            assert!(email.text.contains("Wasn't you?"), "{name} text");
            assert!(email.html.contains("Wasn't you?"), "{name} html");
        }
        Ok(())
    }

    #[test]
    fn notifications_with_a_reset_link_show_it_in_both_bodies() -> anyhow::Result<()> {
        for message in samples().iter().filter(|m| has_reset_url(m)) {
            let email = message.render(TO)?;
            let name = message.template().name();
            assert!(
                email.text.contains(RESET),
                "{name} text lacks the reset link"
            );
            assert!(
                email.html.contains(&format!("href=\"{RESET}\"")),
                "{name} html"
            );
        }
        Ok(())
    }

    #[test]
    fn hostile_request_details_are_escaped_and_cleaned() -> anyhow::Result<()> {
        let email = Message::PasswordChanged {
            when: "now".to_owned(),
            ip: "1.2.3.4\r\nBcc: x@evil.example".to_owned(),
            device: "<img src=x onerror=alert(1)>\u{202E}".to_owned(),
            reset_url: RESET.to_owned(),
        }
        .render(TO)?;
        assert!(!email.html.contains("<img"));
        assert!(email.html.contains("&#60;img src=x onerror=alert(1)&#62;"));
        assert!(
            email
                .text
                .contains("IP address: 1.2.3.4Bcc: x@evil.example\n")
        );
        assert_eq!(email.subject, "Your password was changed");
        for part in [&email.subject, &email.text, &email.html] {
            assert!(!part.contains(['\r', '\u{202E}']), "{part:?}");
        }
        Ok(())
    }

    #[test]
    fn an_overlong_device_is_cut_short() -> anyhow::Result<()> {
        let email = Message::TwoStepEnabled {
            when: "now".to_owned(),
            ip: "1.2.3.4".to_owned(),
            device: "é".repeat(10_000),
        }
        .render(TO)?;
        assert!(
            email
                .text
                .contains(&format!("{}…", "é".repeat(MAX_DEVICE_CHARS)))
        );
        assert!(!email.text.contains(&"é".repeat(MAX_DEVICE_CHARS + 1)));
        Ok(())
    }

    #[test]
    fn empty_request_details_read_as_unknown() -> anyhow::Result<()> {
        let email = Message::TwoStepEnabled {
            when: String::new(),
            ip: " ".to_owned(),
            device: String::new(),
        }
        .render(TO)?;
        assert!(email.text.contains("IP address: unknown\n"));
        assert!(email.text.contains("Device: unknown device\n"));
        Ok(())
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(hours(1), "1 hour");
        assert_eq!(hours(24), "24 hours");
        assert_eq!(minutes(1), "1 minute");
        assert_eq!(minutes(15), "15 minutes");
        assert_eq!(minutes(60), "1 hour");
        assert_eq!(minutes(90), "90 minutes");
        assert_eq!(minutes(120), "2 hours");
    }

    #[test]
    fn debug_output_never_shows_links_or_codes() {
        let message = Message::VerifyEmail {
            link: "https://app.example/verify-email?token=secret-token".to_owned(),
            code: "123456".to_owned(),
            valid_hours: 24,
        };
        let debug = format!("{message:?}");
        assert!(debug.contains("verify_email"));
        assert!(!debug.contains("secret-token"));
        assert!(!debug.contains("123456"));
    }
}
