//! Developer pages: the sent-mail viewer (`/dev/mail`, and `/dev/mail.json` for
//! scripts). Everything else a person sees is the product's own web pages
//! (`accounts::web`), served here from the same code as the `web` function.

use accounts::http::{self as api, ApiRequest, ApiResponse};
use accounts::mail::templates::escape_html;
use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue, REFERRER_POLICY, X_FRAME_OPTIONS};
use http::{Method, StatusCode};

use crate::Server;

/// Answers a developer page, or `None` when the request is for another path.
pub fn answer(server: &Server, request: &ApiRequest) -> Option<ApiResponse> {
    match (&request.method, request.path.as_str()) {
        (&Method::GET, "/dev/mail") => Some(mail_page(server)),
        (&Method::GET, "/dev/mail.json") => Some(mail_json(server)),
        _ => None,
    }
}

fn html(status: StatusCode, title: &str, body: &str) -> ApiResponse {
    let page = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title}</title><style>\
         body{{font-family:system-ui,sans-serif;max-width:46rem;margin:2rem auto;padding:0 1rem;color:#1f2933}}\
         label{{display:block;margin:.6rem 0}}input,select{{font-size:1rem;padding:.3rem;width:100%}}\
         button{{font-size:1rem;padding:.5rem 1.2rem;margin-top:.8rem;cursor:pointer}}\
         .mail{{border:1px solid #d9e2ec;border-radius:6px;padding:1rem;margin:1rem 0}}\
         .ok{{color:#0b7a3e}}.error{{color:#b42318}}iframe{{width:100%;height:24rem;border:1px solid #eee}}\
         pre{{white-space:pre-wrap}}</style></head><body>{body}\
         <p><small><a href=\"/signup\">Sign up</a> · <a href=\"/login\">Log in</a> · <a href=\"/dev/mail\">Sent mail</a></small></p>\
         </body></html>",
        title = escape_html(title),
    );
    let mut response = http::Response::new(Bytes::from(page));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    // Every page here shows or carries a link's token (or the sent mail itself): none
    // may be cached, and none may pass its address on as a referrer.
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}

fn mail_page(server: &Server) -> ApiResponse {
    let Some(outbox) = &server.outbox else {
        return html(
            StatusCode::OK,
            "Sent mail",
            "<h1>Sent mail</h1><p>Mail goes through SES (MAILER=ses); nothing is kept here.</p>",
        );
    };
    let mails = outbox.all();
    let mut body = format!(
        "<h1>Sent mail</h1><p>{} emails, newest first.</p>",
        mails.len()
    );
    for mail in &mails {
        body.push_str(&format!(
            "<div class=\"mail\"><p><strong>{subject}</strong><br>To: {to}<br>\
             <small>{at}</small></p><iframe sandbox=\"allow-top-navigation-by-user-activation allow-popups\" \
             srcdoc=\"{html}\"></iframe><details><summary>Plain text</summary><pre>{text}</pre></details></div>",
            subject = escape_html(&mail.subject),
            to = escape_html(&mail.to),
            at = accounts::clock::rfc3339(mail.sent_at),
            html = escape_html(&add_base_target(&mail.html)),
            text = escape_html(&mail.text),
        ));
    }
    html(StatusCode::OK, "Sent mail", &body)
}

/// Links inside the sandboxed preview open in the whole tab, not inside the frame.
fn add_base_target(mail_html: &str) -> String {
    format!("<base target=\"_top\">{mail_html}")
}

fn mail_json(server: &Server) -> ApiResponse {
    let mails = server.outbox.as_ref().map(|o| o.all()).unwrap_or_default();
    api::json(StatusCode::OK, &mails)
}
