//! A deliberately tiny renderer for the email template files in `shared/templates/`.
//!
//! Every file is embedded with `include_str!`, so a Lambda binary carries its templates
//! and reads nothing from disk. Nothing is parsed ahead of time: a template is scanned
//! once, when a message is rendered, which keeps cold starts free of template work and
//! keeps a template-engine crate out of the binary.
//!
//! File layout, per message `<name>`:
//! - `<name>.txt`: first line `Subject: ...`, then a blank line, then the plain-text body;
//! - `<name>.html`: the HTML body fragment.
//!
//! `layout.txt` and `layout.html` wrap every body (`{{content}}` marks where it goes), so
//! the header and the "why you got this email" footer are written once.
//!
//! Placeholders are `{{name}}`. Values are HTML-escaped in HTML and inserted as they are
//! in the subject and text; everywhere, control characters and bidirectional-override
//! characters are dropped, because some values (IP, device) come from request headers
//! and must not be able to break lines or reorder what the reader sees. A placeholder
//! without a value, or a value no placeholder uses, is a bug and makes rendering fail.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use anyhow::{Context, bail};

/// The two files of one message, embedded at compile time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Template {
    name: &'static str,
    text: &'static str,
    html: &'static str,
}

impl Template {
    /// The file stem in `shared/templates/`.
    pub const fn name(&self) -> &'static str {
        self.name
    }
}

/// Embeds `templates/<name>.txt` and `templates/<name>.html` as one [`Template`].
macro_rules! template {
    ($name:literal) => {
        Template {
            name: $name,
            text: include_str!(concat!("../../templates/", $name, ".txt")),
            html: include_str!(concat!("../../templates/", $name, ".html")),
        }
    };
}

pub const VERIFY_EMAIL: Template = template!("verify_email");
pub const ACCOUNT_EXISTS: Template = template!("account_exists");
pub const PASSWORD_RESET_LINK: Template = template!("password_reset_link");
pub const PASSWORD_CHANGED: Template = template!("password_changed");
pub const PASSWORD_WAS_RESET: Template = template!("password_was_reset");
pub const SECURITY_QUESTION_RESET_LINK: Template = template!("security_question_reset_link");
pub const SECURITY_QUESTION_CHANGED: Template = template!("security_question_changed");
pub const TWO_STEP_ENABLED: Template = template!("two_step_enabled");
pub const TWO_STEP_DISABLED: Template = template!("two_step_disabled");
pub const BACKUP_CODES_REGENERATED: Template = template!("backup_codes_regenerated");

/// Every message template, so tests can check each one renders.
pub const ALL: &[Template] = &[
    VERIFY_EMAIL,
    ACCOUNT_EXISTS,
    PASSWORD_RESET_LINK,
    PASSWORD_CHANGED,
    PASSWORD_WAS_RESET,
    SECURITY_QUESTION_RESET_LINK,
    SECURITY_QUESTION_CHANGED,
    TWO_STEP_ENABLED,
    TWO_STEP_DISABLED,
    BACKUP_CODES_REGENERATED,
];

const LAYOUT_TEXT: &str = include_str!("../../templates/layout.txt");
const LAYOUT_HTML: &str = include_str!("../../templates/layout.html");

/// The layouts' slot for the message body; a message's own variables may not use it.
const CONTENT: &str = "content";
/// The HTML layout's slot for the subject (the document title).
const SUBJECT: &str = "subject";

/// Subject and bodies of one rendered message (the recipient is the caller's business).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// Renders `template` with `vars` (name, value) and wraps both bodies in the layouts.
///
/// Fails if a placeholder has no value, a value is used by no placeholder, a name is
/// given twice, or a file is malformed.
pub fn render(template: &Template, vars: &[(&str, &str)]) -> anyhow::Result<Rendered> {
    render_parts(template.name, template.text, template.html, vars)
}

fn render_parts(
    name: &str,
    text_file: &str,
    html_file: &str,
    vars: &[(&str, &str)],
) -> anyhow::Result<Rendered> {
    let mut names = BTreeSet::new();
    for (var, _) in vars {
        if *var == CONTENT || *var == SUBJECT {
            bail!("template {name}: `{var}` is reserved for the layout");
        }
        if !names.insert(*var) {
            bail!("template {name}: variable `{var}` given twice");
        }
    }
    let lookup = |var: &str| vars.iter().find(|(n, _)| *n == var).map(|(_, v)| *v);

    let (subject_line, text_body) =
        split_subject(text_file).with_context(|| format!("template {name}.txt"))?;
    let mut used = BTreeSet::new();
    let subject = fill(subject_line, Escape::Text, &mut used, &lookup)
        .with_context(|| format!("template {name}.txt, subject"))?;
    let text = fill(text_body, Escape::Text, &mut used, &lookup)
        .with_context(|| format!("template {name}.txt"))?;
    let html = fill(html_file, Escape::Html, &mut used, &lookup)
        .with_context(|| format!("template {name}.html"))?;
    if let Some(unused) = names.iter().find(|var| !used.contains(**var)) {
        bail!("template {name}: variable `{unused}` is not used by any placeholder");
    }
    if subject.trim().is_empty() {
        bail!("template {name}.txt: the subject is empty");
    }

    // The layouts are filled with trusted, already-rendered parts: the body goes in as
    // it is (it is already escaped), only the subject needs escaping for the HTML title.
    let text = fill_layout(LAYOUT_TEXT, text.trim_end(), &subject, Escape::Text)
        .context("template layout.txt")?;
    let html = fill_layout(LAYOUT_HTML, html.trim_end(), &subject, Escape::Html)
        .context("template layout.html")?;
    Ok(Rendered {
        subject,
        text,
        html,
    })
}

fn fill_layout(
    layout: &str,
    content: &str,
    subject: &str,
    escape: Escape,
) -> anyhow::Result<String> {
    let subject = match escape {
        Escape::Html => escape_html(subject),
        Escape::Text | Escape::Raw => subject.to_owned(),
    };
    let lookup = |var: &str| match var {
        CONTENT => Some(content),
        SUBJECT => Some(subject.as_str()),
        _ => None,
    };
    // The body is trusted, rendered output, so it bypasses escaping and cleaning.
    let mut used = BTreeSet::new();
    let out = fill(layout, Escape::Raw, &mut used, &lookup)?;
    if !used.contains(CONTENT) {
        bail!("the layout has no {{{{content}}}} placeholder");
    }
    Ok(out)
}

/// Splits a `.txt` file into its subject (without the `Subject: ` prefix) and body.
fn split_subject(file: &str) -> anyhow::Result<(&str, &str)> {
    let (first, rest) = file
        .split_once('\n')
        .context("expected `Subject: ...`, a blank line, then the body")?;
    // Tolerate CRLF files (a Windows checkout with autocrlf).
    let first = first.strip_suffix('\r').unwrap_or(first);
    let subject = first
        .strip_prefix("Subject: ")
        .context("the first line must start with `Subject: `")?;
    let body = rest
        .strip_prefix("\r\n")
        .or_else(|| rest.strip_prefix('\n'))
        .context("the subject line must be followed by a blank line")?;
    Ok((subject.trim(), body))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Escape {
    /// Subject and plain text: inserted as they are, minus unsafe characters.
    Text,
    /// HTML: escaped, minus unsafe characters.
    Html,
    /// Already-rendered output (layouts only): inserted untouched.
    Raw,
}

/// Replaces every `{{name}}` in `source` in one pass; inserted values are never scanned
/// again, so a value that itself contains `{{...}}` stays literal text.
fn fill<'v>(
    source: &str,
    escape: Escape,
    used: &mut BTreeSet<String>,
    lookup: &dyn Fn(&str) -> Option<&'v str>,
) -> anyhow::Result<String> {
    let mut out = String::with_capacity(source.len() + 256);
    let mut rest = source;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find("}}")
            .with_context(|| format!("unterminated placeholder near `{}`", excerpt(after)))?;
        let var = after[..end].trim();
        if var.is_empty() || !var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            bail!("malformed placeholder `{{{{{}}}}}`", &after[..end]);
        }
        let value = lookup(var).with_context(|| format!("no value for placeholder `{var}`"))?;
        match escape {
            Escape::Text => out.extend(value.chars().filter(|c| is_safe(*c))),
            Escape::Html => push_html_escaped(&mut out, value),
            Escape::Raw => out.push_str(value),
        }
        used.insert(var.to_owned());
        rest = &after[end + 2..];
    }
    if let Some(stray) = rest.find("}}") {
        bail!("stray `}}}}` near `{}`", excerpt(&rest[stray..]));
    }
    out.push_str(rest);
    Ok(out)
}

fn excerpt(s: &str) -> String {
    s.chars().take(30).collect()
}

/// Characters that may appear in an inserted value. Control characters could break a
/// line or a header; bidirectional overrides could make `evil.example` read as
/// `elpmaxe.live` - neither has a place in an IP address or a device name.
fn is_safe(c: char) -> bool {
    !c.is_control()
        && !matches!(c, '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

fn push_html_escaped(out: &mut String, value: &str) {
    for c in value.chars().filter(|c| is_safe(*c)) {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // Braces too, so an escaped value can never look like a placeholder to a
            // later reader (or to the "nothing left unrendered" checks).
            '{' => out.push_str("&#123;"),
            '}' => out.push_str("&#125;"),
            _ => {
                let _ = out.write_char(c);
            }
        }
    }
}

/// HTML-escapes `value` the way placeholders are escaped.
pub fn escape_html(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    push_html_escaped(&mut out, value);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render_str(text: &str, html: &str, vars: &[(&str, &str)]) -> anyhow::Result<Rendered> {
        render_parts("test", text, html, vars)
    }

    #[test]
    fn placeholders_are_replaced_in_subject_text_and_html() -> anyhow::Result<()> {
        let out = render_str(
            "Subject: Hello {{who}}\n\nHi {{who}}, see {{link}}\n",
            "<a href=\"{{link}}\">{{who}}</a>",
            &[("who", "Ann"), ("link", "https://x.example/a?b=1&c=2")],
        )?;
        assert_eq!(out.subject, "Hello Ann");
        assert!(out.text.contains("Hi Ann, see https://x.example/a?b=1&c=2"));
        assert!(
            out.html
                .contains("<a href=\"https://x.example/a?b=1&amp;c=2\">Ann</a>")
        );
        Ok(())
    }

    #[test]
    fn values_are_html_escaped_in_html_only() -> anyhow::Result<()> {
        let device = "<script>alert('x')</script> & \"friends\"";
        let out = render_str(
            "Subject: s\n\n{{device}}",
            "<p>{{device}}</p>",
            &[("device", device)],
        )?;
        assert!(out.text.contains(device));
        assert!(out.html.contains(
            "<p>&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;friends&quot;</p>"
        ));
        assert!(!out.html.contains("<script>"));
        Ok(())
    }

    #[test]
    fn control_and_bidi_characters_are_stripped_from_values() -> anyhow::Result<()> {
        let out = render_str(
            "Subject: from {{ip}}\n\nDevice: {{device}}",
            "<p>{{device}}</p><p>{{ip}}</p>",
            &[
                ("device", "Fire\r\nfox\u{202E}gpj.exe\u{7}"),
                ("ip", "1.2.3.4\n"),
            ],
        )?;
        assert_eq!(out.subject, "from 1.2.3.4");
        assert!(out.text.contains("Device: Firefoxgpj.exe\n"));
        assert!(out.html.contains("<p>Firefoxgpj.exe</p>"));
        Ok(())
    }

    #[test]
    fn a_value_that_looks_like_a_placeholder_stays_literal() -> anyhow::Result<()> {
        let out = render_str(
            "Subject: s\n\n{{device}} {{code}}",
            "<p>{{device}} {{code}}</p>",
            &[("device", "{{code}}"), ("code", "123456")],
        )?;
        assert!(out.text.contains("{{code}} 123456"));
        assert!(
            out.html
                .contains("<p>&#123;&#123;code&#125;&#125; 123456</p>")
        );
        Ok(())
    }

    #[test]
    fn a_placeholder_without_a_value_is_an_error() {
        let err = render_str("Subject: s\n\n{{missing}}", "<p></p>", &[]).err();
        assert!(format!("{err:#?}").contains("missing"));
    }

    #[test]
    fn a_value_no_placeholder_uses_is_an_error() {
        let err = render_str("Subject: s\n\nbody", "<p>body</p>", &[("ip", "1.2.3.4")]).err();
        assert!(format!("{err:#?}").contains("not used"));
    }

    #[test]
    fn a_value_given_twice_is_an_error() {
        let result = render_str("Subject: s\n\n{{a}}", "{{a}}", &[("a", "1"), ("a", "2")]);
        assert!(result.is_err());
    }

    #[test]
    fn the_layout_slots_cannot_be_set_by_a_message() {
        let result = render_str("Subject: s\n\n{{content}}", "", &[("content", "x")]);
        assert!(result.is_err());
    }

    #[test]
    fn malformed_placeholders_are_errors() {
        for text in [
            "Subject: s\n\n{{unterminated",
            "Subject: s\n\n{{}}",
            "Subject: s\n\n{{two words}}",
            "Subject: s\n\nstray }} brace",
        ] {
            assert!(render_str(text, "", &[]).is_err(), "{text:?} should fail");
        }
    }

    #[test]
    fn a_text_file_needs_a_subject_line_and_a_blank_line() {
        assert!(render_str("Hello\n\nbody", "", &[]).is_err());
        assert!(render_str("Subject: s\nbody", "", &[]).is_err());
        assert!(render_str("Subject: s", "", &[]).is_err());
        assert!(render_str("Subject:   \n\nbody", "", &[]).is_err());
    }

    #[test]
    fn crlf_template_files_render_like_lf_ones() -> anyhow::Result<()> {
        let out = render_str("Subject: Hi\r\n\r\nbody\r\n", "<p>body</p>", &[])?;
        assert_eq!(out.subject, "Hi");
        assert!(out.text.starts_with("body"));
        Ok(())
    }

    #[test]
    fn bodies_are_wrapped_in_the_layouts() -> anyhow::Result<()> {
        let out = render_str("Subject: A & B\n\nthe body", "<p>the fragment</p>", &[])?;
        assert!(out.text.starts_with("the body"));
        assert!(
            out.text.len() > "the body".len(),
            "the text layout adds a footer"
        );
        assert!(out.html.starts_with("<!DOCTYPE html>"));
        assert!(out.html.contains("<p>the fragment</p>"));
        assert!(out.html.contains("<title>A &amp; B</title>"));
        assert!(!out.html.contains("{{"));
        Ok(())
    }

    #[test]
    fn every_template_file_has_a_subject_and_well_formed_placeholders() {
        for template in ALL {
            assert!(
                split_subject(template.text).is_ok(),
                "{}.txt has no subject line",
                template.name
            );
            for file in [template.text, template.html] {
                let mut used = BTreeSet::new();
                // Any value will do: this only checks that the scanner accepts the file.
                let result = fill(file, Escape::Text, &mut used, &|_| Some("x"));
                assert!(result.is_ok(), "{}: {result:?}", template.name);
            }
        }
    }
}
