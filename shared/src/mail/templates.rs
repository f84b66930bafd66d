//! The email templates in `shared/templates/mail/`, compiled by askama, the engine the
//! web pages use too (paths are relative to `shared/templates/`, askama's default
//! directory, which the pages share under `web/`).
//!
//! Each message is one struct whose fields are the values its templates show, so a
//! template naming a value its message lacks does not compile. The templates are
//! compiled into the binary: a Lambda function reads no file and parses no template.
//!
//! Per message `<name>`: `<name>.txt` extends `layout.txt` and fills two blocks,
//! `subject` (one line) and `content` (the plain-text body); `<name>.html` extends
//! `layout.html` and fills `content`. The subject is written once, in the `.txt` file:
//! the text layout's `subject` and `text` blocks are rendered apart (askama's `blocks`),
//! and the subject is handed to the HTML layout for the document's title.
//!
//! askama escapes by file extension: values are HTML-escaped in `.html` files and
//! written as they are in `.txt` files, so neither the text body nor the subject is
//! HTML-escaped. Every value is also a [`Clean`], which drops control characters and
//! bidirectional controls as it is written, wherever it goes: some values (IP, device)
//! come from request headers and must not be able to break a line (or a header) or
//! reorder what the reader sees.

use std::fmt;

/// A value shown in an email: written without control characters and bidirectional
/// controls. Every field of every message is one, so no value can skip the cleaning.
#[derive(Clone, Copy)]
pub struct Clean<'a>(&'a str);

impl<'a> From<&'a str> for Clean<'a> {
    fn from(value: &'a str) -> Self {
        Clean(value)
    }
}

impl<'a> From<&'a String> for Clean<'a> {
    fn from(value: &'a String) -> Self {
        Clean(value)
    }
}

impl fmt::Display for Clean<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0
            .split(|c| !is_safe(c))
            .try_for_each(|piece| f.write_str(piece))
    }
}

/// Characters that may appear in a value. Control characters could break a line or a
/// header; bidirectional controls could make `evil.example` read as `elpmaxe.live`:
/// neither has a place in an IP address or a device name.
fn is_safe(c: char) -> bool {
    !c.is_control()
        && !matches!(c, '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// The name of a message's templates (their file stem), which logs and metrics show.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Template {
    name: &'static str,
}

impl Template {
    /// The file stem in `shared/templates/mail/`.
    pub const fn name(&self) -> &'static str {
        self.name
    }
}

/// Subject and bodies of one rendered message (the recipient is the caller's business).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// Declares one message: its struct (the values, all [`Clean`]) and the two
/// `#[template(...)]` arguments of its text and HTML files (a `path` in the product, an
/// inline `source` in tests).
macro_rules! mail_template {
    (
        $(#[$doc:meta])*
        $message:ident {
            text: ($($text:tt)*),
            html: ($($html:tt)*),
            values: { $($field:ident),* $(,)? } $(,)?
        }
    ) => {
        $(#[$doc])*
        #[derive(askama::Template)]
        #[template($($text)*, blocks = ["subject", "text"])]
        pub struct $message<'a> {
            $(pub $field: Clean<'a>,)*
        }

        impl $message<'_> {
            /// Renders the subject, the text body and the HTML body.
            pub fn render(&self) -> askama::Result<Rendered> {
                // askama ties one file, and so one escaper, to one type: the HTML body
                // is rendered from a twin of this struct, plus the subject for the title.
                #[derive(askama::Template)]
                #[template($($html)*)]
                struct Html<'a> {
                    subject: Clean<'a>,
                    $($field: Clean<'a>,)*
                }
                let subject = askama::Template::render(&self.as_subject())?;
                let text = askama::Template::render(&self.as_text())?;
                let html = askama::Template::render(&Html {
                    subject: Clean(&subject),
                    $($field: self.$field,)*
                })?;
                Ok(Rendered { subject, text, html })
            }
        }
    };
}

/// Declares every message of the product with the name of its templates (its
/// `TEMPLATE`), and [`ALL`].
macro_rules! mail_templates {
    ($(
        $(#[$doc:meta])*
        $message:ident = $name:literal { $($fields:tt)* }
    )*) => {
        $(
            mail_template! { $(#[$doc])* $message { $($fields)* } }

            impl $message<'_> {
                pub const TEMPLATE: Template = Template { name: $name };
            }
        )*

        /// Every message's templates, so tests can check them against the files.
        pub const ALL: &[Template] = &[$($message::TEMPLATE),*];
    };
}

mail_templates! {
    /// Confirm a new address, by link or code.
    VerifyEmail = "verify_email" {
        text: (path = "mail/verify_email.txt"),
        html: (path = "mail/verify_email.html"),
        values: { link, code, valid_for },
    }
    /// Someone signed up with an address that already has an account.
    AccountExists = "account_exists" {
        text: (path = "mail/account_exists.txt"),
        html: (path = "mail/account_exists.html"),
        values: { login_url, reset_url },
    }
    /// A password-reset link.
    PasswordResetLink = "password_reset_link" {
        text: (path = "mail/password_reset_link.txt"),
        html: (path = "mail/password_reset_link.html"),
        values: { link, valid_for },
    }
    /// The password was changed by a signed-in session.
    PasswordChanged = "password_changed" {
        text: (path = "mail/password_changed.txt"),
        html: (path = "mail/password_changed.html"),
        values: { when, ip, device, reset_url },
    }
    /// The password was reset with an emailed link.
    PasswordWasReset = "password_was_reset" {
        text: (path = "mail/password_was_reset.txt"),
        html: (path = "mail/password_was_reset.html"),
        values: { when, ip, device, reset_url },
    }
    /// A security-question reset link.
    SecurityQuestionResetLink = "security_question_reset_link" {
        text: (path = "mail/security_question_reset_link.txt"),
        html: (path = "mail/security_question_reset_link.html"),
        values: { link, valid_for },
    }
    /// The security question was changed.
    SecurityQuestionChanged = "security_question_changed" {
        text: (path = "mail/security_question_changed.txt"),
        html: (path = "mail/security_question_changed.html"),
        values: { when, ip, device, reset_url },
    }
    /// Google or Apple was linked to the account, or unlinked from it.
    IdentityChanged = "identity_changed" {
        text: (path = "mail/identity_changed.txt"),
        html: (path = "mail/identity_changed.html"),
        values: { provider, change, when, ip, device, reset_url },
    }
    /// Two-step verification was turned on.
    TwoStepEnabled = "two_step_enabled" {
        text: (path = "mail/two_step_enabled.txt"),
        html: (path = "mail/two_step_enabled.html"),
        values: { when, ip, device },
    }
    /// Two-step verification was turned off.
    TwoStepDisabled = "two_step_disabled" {
        text: (path = "mail/two_step_disabled.txt"),
        html: (path = "mail/two_step_disabled.html"),
        values: { when, ip, device, reset_url },
    }
    /// A new set of backup codes replaced the old one.
    BackupCodesRegenerated = "backup_codes_regenerated" {
        text: (path = "mail/backup_codes_regenerated.txt"),
        html: (path = "mail/backup_codes_regenerated.html"),
        values: { when, ip, device, reset_url },
    }
}

/// HTML-escapes a value the way the templates do, cleaned like them. Only for the local
/// server's hand-written developer pages, until the web pages replace them.
pub fn escape_html(value: &str) -> String {
    askama::filters::escape(Clean(value), askama::filters::Html)
        .map(|escaped| escaped.to_string())
        .unwrap_or_else(|never| match never {})
}

#[cfg(test)]
mod tests {
    use super::*;

    mail_template! {
        /// A message whose subject and both bodies show request values, as no product
        /// message's subject does yet.
        Probe {
            text: (
                source = "{% extends \"mail/layout.txt\" %}\
                    {% block subject %}Sign-in from {{ ip }}{% endblock %}\
                    {% block content %}Device: {{ device }}\nIP: {{ ip }}{% endblock %}",
                ext = "txt"
            ),
            html: (
                source = "{% extends \"mail/layout.html\" %}\
                    {% block content %}<p>{{ device }}</p><p>{{ ip }}</p>{% endblock %}",
                ext = "html"
            ),
            values: { ip, device },
        }
    }

    fn probe(ip: &str, device: &str) -> askama::Result<Rendered> {
        Probe {
            ip: ip.into(),
            device: device.into(),
        }
        .render()
    }

    #[test]
    fn values_fill_the_subject_the_text_and_the_html() -> askama::Result<()> {
        let out = probe("203.0.113.7", "Firefox")?;
        assert_eq!(out.subject, "Sign-in from 203.0.113.7");
        assert!(out.text.starts_with("Device: Firefox\nIP: 203.0.113.7\n"));
        assert!(out.html.contains("<p>Firefox</p><p>203.0.113.7</p>"));
        Ok(())
    }

    #[test]
    fn values_are_html_escaped_in_html_only() -> askama::Result<()> {
        let device = "<script>alert('x')</script> & \"friends\"";
        let out = probe("1.2.3.4", device)?;
        assert!(out.text.contains(device));
        assert!(out.html.contains(
            "<p>&#60;script&#62;alert(&#39;x&#39;)&#60;/script&#62; &#38; &#34;friends&#34;</p>"
        ));
        assert!(!out.html.contains("<script>"));
        Ok(())
    }

    #[test]
    fn a_newline_or_a_bidi_override_in_a_value_cannot_inject_into_the_subject_or_a_body()
    -> askama::Result<()> {
        let out = probe(
            "1.2.3.4\r\nBcc: x@evil.example",
            "Fire\r\nfox\u{202E}gpj.exe\u{7}\u{2066}",
        )?;
        assert_eq!(out.subject, "Sign-in from 1.2.3.4Bcc: x@evil.example");
        assert!(
            out.text
                .starts_with("Device: Firefoxgpj.exe\nIP: 1.2.3.4Bcc: x@evil.example\n")
        );
        assert!(
            out.html
                .contains("<p>Firefoxgpj.exe</p><p>1.2.3.4Bcc: x@evil.example</p>")
        );
        for part in [&out.subject, &out.text, &out.html] {
            assert!(
                !part.contains(['\r', '\u{7}', '\u{202E}', '\u{2066}']),
                "{part:?}"
            );
        }
        Ok(())
    }

    #[test]
    fn a_value_that_looks_like_template_syntax_stays_literal() -> askama::Result<()> {
        let out = probe("{{ device }}", "{% block content %}x{% endblock %}")?;
        assert_eq!(out.subject, "Sign-in from {{ device }}");
        assert!(
            out.text
                .contains("Device: {% block content %}x{% endblock %}\n")
        );
        Ok(())
    }

    #[test]
    fn bodies_are_wrapped_in_the_layouts() -> askama::Result<()> {
        let out = probe("1.2.3.4", "A & B")?;
        assert!(out.text.starts_with("Device: A & B"));
        assert!(
            out.text.contains("\n\n-- \nAccount security\n"),
            "{}",
            out.text
        );
        assert!(out.html.starts_with("<!DOCTYPE html>"));
        assert!(out.html.contains("<title>Sign-in from 1.2.3.4</title>"));
        assert!(out.html.contains("<p>A &#38; B</p>"));
        Ok(())
    }

    #[test]
    fn the_html_title_escapes_the_subject() -> askama::Result<()> {
        let out = probe("<b>&", "x")?;
        assert_eq!(out.subject, "Sign-in from <b>&");
        assert!(
            out.html
                .contains("<title>Sign-in from &#60;b&#62;&#38;</title>")
        );
        Ok(())
    }

    #[test]
    fn escape_html_escapes_and_cleans_like_the_templates() {
        assert_eq!(
            escape_html("<a href='x'>\n&\u{202E}"),
            "&#60;a href=&#39;x&#39;&#62;&#38;"
        );
    }
}
