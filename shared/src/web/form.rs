//! Forms as the pages show them and read them back: the fields (typed: a field is a text
//! box, a password, a code, a check box, a set of radio buttons, a list or hidden), each
//! with its label, `autocomplete`, hint and error, and the posted form's values.

use crate::http::ApiRequest;

/// What kind of control a field is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Text,
    Email,
    Password,
    /// A one-time code (digits on a phone's keypad, though backup codes have letters).
    Code,
    Checkbox,
    Radio,
    Select,
    Hidden,
}

/// One option of a radio set or a list.
#[derive(Clone, Debug)]
pub struct Choice {
    pub value: String,
    pub label: String,
}

/// One field of a form.
#[derive(Clone, Debug)]
pub struct Field {
    /// The element's id: the name, or `<form>-<name>` where a page has several forms
    /// with the same field.
    pub id: String,
    pub name: &'static str,
    pub label: String,
    pub kind: Kind,
    pub autocomplete: &'static str,
    pub value: String,
    pub hint: Option<String>,
    pub error: Option<String>,
    pub required: bool,
    pub checked: bool,
    pub options: Vec<Choice>,
}

impl Field {
    fn new(name: &'static str, label: &str, kind: Kind, autocomplete: &'static str) -> Field {
        Field {
            id: name.to_owned(),
            name,
            label: label.to_owned(),
            kind,
            autocomplete,
            value: String::new(),
            hint: None,
            error: None,
            required: true,
            checked: false,
            options: Vec::new(),
        }
    }

    pub fn text(name: &'static str, label: &str, autocomplete: &'static str) -> Field {
        Field::new(name, label, Kind::Text, autocomplete)
    }

    pub fn email(name: &'static str, label: &str) -> Field {
        Field::new(name, label, Kind::Email, "email")
    }

    /// A password field; `autocomplete` is `current-password` or `new-password`.
    pub fn password(name: &'static str, label: &str, autocomplete: &'static str) -> Field {
        Field::new(name, label, Kind::Password, autocomplete)
    }

    pub fn code(name: &'static str, label: &str) -> Field {
        Field::new(name, label, Kind::Code, "one-time-code")
    }

    pub fn checkbox(name: &'static str, label: &str, checked: bool) -> Field {
        Field {
            checked,
            required: false,
            ..Field::new(name, label, Kind::Checkbox, "off")
        }
    }

    pub fn radio(name: &'static str, label: &str, options: Vec<Choice>) -> Field {
        Field {
            options,
            ..Field::new(name, label, Kind::Radio, "off")
        }
    }

    pub fn select(name: &'static str, label: &str, options: Vec<Choice>) -> Field {
        Field {
            options,
            ..Field::new(name, label, Kind::Select, "off")
        }
    }

    pub fn hidden(name: &'static str, value: &str) -> Field {
        Field {
            value: value.to_owned(),
            required: false,
            ..Field::new(name, "", Kind::Hidden, "off")
        }
    }

    pub fn optional(mut self) -> Field {
        self.required = false;
        self
    }

    pub fn with_value(mut self, value: impl Into<String>) -> Field {
        self.value = value.into();
        self
    }

    pub fn with_hint(mut self, hint: &str) -> Field {
        self.hint = Some(hint.to_owned());
        self
    }

    pub fn with_error(mut self, error: Option<String>) -> Field {
        self.error = error;
        self
    }

    /// Prefixes the id (a page with several forms that share field names).
    pub fn in_form(mut self, form: &str) -> Field {
        self.id = format!("{form}-{}", self.name);
        self
    }

    // What the templates ask of a field.

    pub fn is_hidden(&self) -> bool {
        self.kind == Kind::Hidden
    }
    pub fn is_checkbox(&self) -> bool {
        self.kind == Kind::Checkbox
    }
    pub fn is_radio(&self) -> bool {
        self.kind == Kind::Radio
    }
    pub fn is_select(&self) -> bool {
        self.kind == Kind::Select
    }
    pub fn is_password(&self) -> bool {
        self.kind == Kind::Password
    }
    pub fn is_code(&self) -> bool {
        self.kind == Kind::Code
    }

    /// The `type` of an `<input>`.
    pub fn input_type(&self) -> &'static str {
        match self.kind {
            Kind::Email => "email",
            Kind::Password => "password",
            Kind::Checkbox => "checkbox",
            Kind::Radio => "radio",
            Kind::Hidden => "hidden",
            Kind::Text | Kind::Code | Kind::Select => "text",
        }
    }

    /// `aria-describedby`: the hint and the error, when there are.
    pub fn described_by(&self) -> String {
        let mut ids = Vec::new();
        if self.hint.is_some() {
            ids.push(format!("{}-hint", self.id));
        }
        if self.error.is_some() {
            ids.push(format!("{}-error", self.id));
        }
        ids.join(" ")
    }

    /// Whether `choice` is the field's value.
    pub fn selects(&self, choice: &Choice) -> bool {
        self.value == choice.value
    }
}

/// A submit button; a `name` and `value` tell apart the forms that post to one page.
#[derive(Clone, Debug)]
pub struct Button {
    pub label: String,
    pub name: &'static str,
    pub value: &'static str,
    /// `secondary` or `danger` (styling only), or empty.
    pub style: &'static str,
}

/// One form: where it posts, its fields (with the CSRF token), its button.
#[derive(Clone, Debug)]
pub struct Form {
    pub action: String,
    /// A heading above the form (`<h2>`), if it is one of several.
    pub heading: Option<String>,
    /// A sentence under the heading.
    pub intro: Option<String>,
    pub fields: Vec<Field>,
    pub button: Button,
}

impl Form {
    pub fn new(action: impl Into<String>, csrf: &str, button: &str) -> Form {
        Form {
            action: action.into(),
            heading: None,
            intro: None,
            fields: vec![Field::hidden("csrf", csrf)],
            button: Button {
                label: button.to_owned(),
                name: "",
                value: "",
                style: "",
            },
        }
    }

    pub fn field(mut self, field: Field) -> Form {
        self.fields.push(field);
        self
    }

    pub fn heading(mut self, heading: &str) -> Form {
        self.heading = Some(heading.to_owned());
        self
    }

    pub fn intro(mut self, intro: &str) -> Form {
        self.intro = Some(intro.to_owned());
        self
    }

    pub fn action_button(mut self, name: &'static str, value: &'static str) -> Form {
        self.button.name = name;
        self.button.value = value;
        self
    }

    pub fn styled(mut self, style: &'static str) -> Form {
        self.button.style = style;
        self
    }

    /// The fields in error, for the error summary: `(id, message)`.
    pub fn errors(&self) -> impl Iterator<Item = (&str, &str)> {
        self.fields
            .iter()
            .filter_map(|f| Some((f.id.as_str(), f.error.as_deref()?)))
    }
}

/// One line of the error summary: a link to the field in error.
#[derive(Clone, Debug)]
pub struct ErrorLink {
    pub id: String,
    pub message: String,
}

/// The error summary of `forms`, in the order the fields appear.
pub fn summary(forms: &[Form]) -> Vec<ErrorLink> {
    forms
        .iter()
        .flat_map(Form::errors)
        .map(|(id, message)| ErrorLink {
            id: id.to_owned(),
            message: message.to_owned(),
        })
        .collect()
}

/// The values of a posted form (`application/x-www-form-urlencoded`).
#[derive(Debug, Default)]
pub struct Posted(Vec<(String, String)>);

impl Posted {
    pub fn of(request: &ApiRequest) -> Posted {
        Posted(
            form_urlencoded::parse(&request.body)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    /// The value of `name`, if it was sent.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The value of `name`, or empty.
    pub fn value(&self, name: &str) -> &str {
        self.get(name).unwrap_or_default()
    }

    /// The value of `name` with surrounding spaces gone (what people type in a login or
    /// an address; never a password).
    pub fn trimmed(&self, name: &str) -> &str {
        self.value(name).trim()
    }

    /// Whether the check box `name` was ticked.
    pub fn ticked(&self, name: &str) -> bool {
        self.get(name).is_some()
    }
}

/// What to tell a person about a field the API refused, in words.
pub fn message_for(field: &str, code: &str) -> String {
    let text = match (field, code) {
        ("email" | "new_email", _) => "Enter an email address like name@example.com.",
        ("username", "taken") => "That username is taken. Choose another one.",
        ("username", _) => "Usernames are 3 to 30 letters, digits, dots, dashes or underscores.",
        ("full_name", _) => "Enter your name without control or formatting characters.",
        ("account_type", _) => "Choose whether you are a freelancer, a client or an agency.",
        (_, "too_short") => "Use at least 8 characters.",
        (_, "too_long") => "Use at most 128 characters.",
        (_, "common") => "That password is too common. Choose one that is harder to guess.",
        (_, "contains_email") => "Do not use your email address in your password.",
        (_, "contains_username") => "Do not use your username in your password.",
        ("answer", _) => {
            "Use at least 3 characters, and not your password, email address or username."
        }
        _ => "Check this field.",
    };
    text.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_field_is_described_by_its_hint_and_its_error() {
        let field = Field::password("password", "Password", "new-password")
            .with_hint("8 or more characters")
            .with_error(Some("Too short".into()));
        assert_eq!(field.described_by(), "password-hint password-error");
        assert_eq!(
            Field::code("code", "Code").in_form("off").described_by(),
            ""
        );
    }

    #[test]
    fn the_summary_links_every_field_in_error_in_order() {
        let form = Form::new("/x", "t", "Go")
            .field(Field::email("email", "Email").with_error(Some("bad".into())))
            .field(Field::text("username", "Username", "username").in_form("a"))
            .field(
                Field::code("code", "Code")
                    .in_form("b")
                    .with_error(Some("wrong".into())),
            );
        let links: Vec<_> = summary(&[form]).into_iter().map(|l| l.id).collect();
        assert_eq!(links, ["email", "b-code"]);
    }
}
