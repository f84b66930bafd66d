//! Answers as pages: a rendered template with the page headers and the cookies a step
//! sets, a redirect after a post (303), and the pages for the errors (403, 404, 429 with
//! the wait in minutes, 500 and 503) in the same style.

use askama::Template;
use bytes::Bytes;
use http::StatusCode;
use http::header::{HeaderValue, LOCATION, RETRY_AFTER, SET_COOKIE};

use super::form::{ErrorLink, Form, summary};
use super::headers::{self, Caching};
use crate::http::ApiResponse;

/// A link in a page's list of links.
#[derive(Clone, Debug)]
pub struct Link {
    pub href: String,
    pub text: String,
}

impl Link {
    pub fn to(href: impl Into<String>, text: &str) -> Link {
        Link {
            href: href.into(),
            text: text.to_owned(),
        }
    }
}

/// The page most steps are: a heading, paragraphs, forms and links.
#[derive(Template)]
#[template(path = "web/page.html")]
pub struct Page {
    pub h1: String,
    pub notice: Option<String>,
    pub errors: Vec<ErrorLink>,
    pub lead: Vec<String>,
    pub forms: Vec<Form>,
    pub links: Vec<Link>,
}

impl Page {
    pub fn new(h1: &str) -> Page {
        Page {
            h1: h1.to_owned(),
            notice: None,
            errors: Vec::new(),
            lead: Vec::new(),
            forms: Vec::new(),
            links: Vec::new(),
        }
    }

    pub fn notice(mut self, notice: Option<String>) -> Page {
        self.notice = notice;
        self
    }

    pub fn line(mut self, line: impl Into<String>) -> Page {
        self.lead.push(line.into());
        self
    }

    pub fn form(mut self, form: Form) -> Page {
        self.forms.push(form);
        self
    }

    pub fn link(mut self, href: impl Into<String>, text: &str) -> Page {
        self.links.push(Link::to(href, text));
        self
    }

    /// Renders the page with its error summary (gathered from the forms' fields).
    pub fn answer(mut self, status: StatusCode) -> Answer {
        self.errors = summary(&self.forms);
        Answer::page(status, &self)
    }
}

/// A page's answer, still open to the cookies a step sets.
#[derive(Debug)]
pub struct Answer {
    response: ApiResponse,
}

impl Answer {
    /// The rendered `template` with the page headers (a template that fails to render
    /// is the 500 page: it cannot happen with compiled templates but for a bug).
    pub fn page(status: StatusCode, template: &impl Template) -> Answer {
        match template.render() {
            Ok(html) => Answer::html(status, html),
            Err(error) => {
                tracing::error!(error = %error, "a page did not render");
                broken(StatusCode::INTERNAL_SERVER_ERROR, None)
            }
        }
    }

    fn html(status: StatusCode, html: String) -> Answer {
        let mut response = http::Response::new(Bytes::from(html));
        *response.status_mut() = status;
        headers::apply(
            response.headers_mut(),
            "text/html; charset=utf-8",
            Caching::NoStore,
        );
        Answer { response }
    }

    /// `303 See Other` to `location` (a path of this site or an allowed URL).
    pub fn redirect(location: &str) -> Answer {
        let mut response = http::Response::new(Bytes::new());
        *response.status_mut() = StatusCode::SEE_OTHER;
        headers::apply(
            response.headers_mut(),
            "text/html; charset=utf-8",
            Caching::NoStore,
        );
        if let Ok(value) = HeaderValue::from_str(location) {
            response.headers_mut().insert(LOCATION, value);
        }
        Answer { response }
    }

    /// A static asset, cacheable.
    pub fn asset(content_type: &'static str, body: &'static str) -> Answer {
        let mut response = http::Response::new(Bytes::from_static(body.as_bytes()));
        headers::apply(response.headers_mut(), content_type, Caching::Asset);
        Answer { response }
    }

    /// Adds `Set-Cookie` lines.
    pub fn with_cookies(mut self, cookies: impl IntoIterator<Item = String>) -> Answer {
        for cookie in cookies {
            if let Ok(value) = HeaderValue::from_str(&cookie) {
                self.response.headers_mut().append(SET_COOKIE, value);
            }
        }
        self
    }

    fn retry_after(mut self, seconds: Option<u64>) -> Answer {
        if let Some(seconds) = seconds {
            self.response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(seconds));
        }
        self
    }

    pub fn status(&self) -> StatusCode {
        self.response.status()
    }

    pub fn into_response(self) -> ApiResponse {
        self.response
    }
}

/// The wait, in words: whole minutes, rounded up (a person plans in minutes).
pub fn minutes(seconds: u64) -> String {
    let minutes = seconds.div_ceil(60).max(1);
    if minutes == 1 {
        "1 minute".to_owned()
    } else {
        format!("{minutes} minutes")
    }
}

/// The 404 page.
pub fn not_found() -> Answer {
    Page::new("Page not found")
        .line("There is no page at this address. If you typed it, check it; if you followed a link, it may be old.")
        .link("/login", "Log in")
        .link("/signup", "Create an account")
        .answer(StatusCode::NOT_FOUND)
}

/// The 429 page: the wait in minutes, and `Retry-After`.
pub fn too_many_attempts(retry_after: Option<u64>) -> Answer {
    let wait = minutes(retry_after.unwrap_or(60));
    Page::new("Too many attempts")
        .line(format!(
            "To keep your account safe, this is paused for now. Try again in {wait}."
        ))
        .line("If you forgot your password, you can reset it instead of guessing.")
        .link("/forgot-password", "Reset your password")
        .answer(StatusCode::TOO_MANY_REQUESTS)
        .retry_after(retry_after.or(Some(60)))
}

/// The page for a failure on our side: `500`, or `503` with `Retry-After` when a retry
/// will do.
pub fn broken(status: StatusCode, retry_after: Option<u64>) -> Answer {
    let page = Page::new("Something went wrong")
        .line("Something went wrong on our side, and nothing was changed. Please try again in a moment.")
        .link("/login", "Log in");
    // A page that fails to render here would recurse: render it by hand on failure.
    match page.render() {
        Ok(html) => Answer::html(status, html).retry_after(retry_after),
        Err(_) => Answer::html(status, "<!doctype html><title>Error</title>".to_owned()),
    }
}

/// The page for a form refused before anything was done (another site's post, or a
/// missing or wrong CSRF token).
pub fn refused() -> Answer {
    Page::new("This form could not be sent")
        .line("For your security, this form was refused: it was sent from another site, or the page was open too long. Nothing was changed.")
        .line("Go back, reload the page and try again.")
        .answer(StatusCode::FORBIDDEN)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_are_given_in_whole_minutes_rounded_up() {
        assert_eq!(minutes(30), "1 minute");
        assert_eq!(minutes(60), "1 minute");
        assert_eq!(minutes(61), "2 minutes");
        assert_eq!(minutes(900), "15 minutes");
    }
}
