//! Developer pages: the sent-mail viewer, a sign-up form, and the pages that emailed
//! links open. A link's page only shows a button; the token is spent by the POST the
//! button sends, so a mail scanner that fetches links cannot use them up.

use accounts::http::{self as api, ApiRequest, ApiResponse, form_param};
use accounts::mail::templates::escape_html;
use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue, REFERRER_POLICY, X_FRAME_OPTIONS};
use http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::Server;

/// Answers a developer page, or `None` when the request is for the API. A form posted
/// from another site (its `Origin` is not this server) is refused: the pages act with
/// the links' tokens.
pub async fn answer(server: &Server, request: &ApiRequest, port: u16) -> Option<ApiResponse> {
    let is_page = matches!(
        request.path.as_str(),
        "/" | "/dev/mail"
            | "/dev/mail.json"
            | "/verify-email"
            | "/reset-password"
            | "/reset-security-question"
    );
    if !is_page {
        return None;
    }
    if request.method == Method::POST && !same_origin(request, port) {
        return Some(html(
            StatusCode::FORBIDDEN,
            "Refused",
            "<p class=\"error\">This form was sent from another site, so it was refused.</p>",
        ));
    }
    let page = match (&request.method, request.path.as_str()) {
        (&Method::GET, "/") => home(None),
        (&Method::POST, "/") => sign_up(server, request).await,
        (&Method::GET, "/dev/mail") => mail_page(server),
        (&Method::GET, "/dev/mail.json") => return Some(mail_json(server)),
        (&Method::GET, "/verify-email") => confirm_page(
            "Confirm your email address",
            "/verify-email",
            &request.query_param("token").unwrap_or_default(),
            "Confirm my email",
        ),
        (&Method::POST, "/verify-email") => verify_email(server, request).await,
        (&Method::GET, "/reset-password") => reset_password_page(request),
        (&Method::POST, "/reset-password") => reset_password(server, request).await,
        (&Method::GET, "/reset-security-question") => reset_question_page(request),
        (&Method::POST, "/reset-security-question") => reset_question(server, request).await,
        _ => return None,
    };
    Some(page)
}

/// Whether a POST comes from this server's own pages: a browser sends `Origin` with
/// every form post (and `Sec-Fetch-Site`), and a form on another site gets the other
/// site's origin. A client that sends neither (curl, the tests) is not a browser page.
fn same_origin(request: &ApiRequest, port: u16) -> bool {
    let header = |name: &str| request.headers.get(name).and_then(|v| v.to_str().ok());
    let origin_ok = header("origin").is_none_or(|origin| crate::is_own_origin(origin, port));
    let fetch_ok =
        header("sec-fetch-site").is_none_or(|site| site == "same-origin" || site == "none");
    origin_ok && fetch_ok
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
         <p><small><a href=\"/\">Home</a> · <a href=\"/dev/mail\">Sent mail</a></small></p>\
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

fn home(message: Option<String>) -> ApiResponse {
    let body = format!(
        "<h1>Local account-security server</h1>{}\
         <p>Every API route of <a href=\"/v1/openapi.json\"><code>docs/openapi.yaml</code></a> is served here. Emails stay on this \
         machine: read them at <a href=\"/dev/mail\">/dev/mail</a>.</p>\
         <h2>Sign up</h2><form method=\"post\" action=\"/\">\
         <label>Email <input name=\"email\" type=\"email\" required></label>\
         <label>Password <input name=\"password\" type=\"password\" required minlength=\"8\"></label>\
         <label>Account type <select name=\"account_type\"><option>freelancer</option>\
         <option>client</option><option>agency</option></select></label>\
         <label>Username (optional) <input name=\"username\"></label>\
         <button>Sign up</button></form>",
        message.unwrap_or_default()
    );
    html(StatusCode::OK, "Local account-security server", &body)
}

/// Calls an API route in-process with a JSON body, as the front end would.
async fn call_api(
    server: &Server,
    from: &ApiRequest,
    path: &str,
    body: Value,
) -> (StatusCode, Value) {
    let mut headers = http::HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Some(agent) = from.headers.get(http::header::USER_AGENT) {
        headers.insert(http::header::USER_AGENT, agent.clone());
    }
    let request = ApiRequest::new(
        Method::POST,
        path,
        None,
        headers,
        Bytes::from(body.to_string()),
        from.client.ip,
    );
    let response = accounts::routes::dispatch(&server.app, None, request).await;
    let status = response.status();
    let value = serde_json::from_slice(response.body()).unwrap_or(Value::Null);
    (status, value)
}

/// The outcome of an API call as a paragraph: its detail on failure.
fn outcome(status: StatusCode, body: &Value, success: &str) -> String {
    if status.is_success() {
        format!("<p class=\"ok\">{}</p>", escape_html(success))
    } else {
        let detail = body["detail"].as_str().unwrap_or("Something went wrong.");
        let errors = body["errors"]
            .as_array()
            .map(|list| {
                list.iter()
                    .map(|e| {
                        format!(
                            "{}: {}",
                            e["field"].as_str().unwrap_or(""),
                            e["code"].as_str().unwrap_or("")
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default();
        format!(
            "<p class=\"error\">{} <small>({} {})</small></p>",
            escape_html(detail),
            escape_html(body["code"].as_str().unwrap_or("")),
            escape_html(&errors)
        )
    }
}

fn form_body(request: &ApiRequest) -> String {
    String::from_utf8_lossy(&request.body).into_owned()
}

async fn sign_up(server: &Server, request: &ApiRequest) -> ApiResponse {
    let form = form_body(request);
    let field = |name: &str| form_param(&form, name).unwrap_or_default();
    let mut body = json!({
        "email": field("email"),
        "password": field("password"),
        "account_type": field("account_type"),
    });
    let username = field("username");
    if !username.trim().is_empty() {
        body["username"] = Value::String(username);
    }
    let (status, answer) = call_api(server, request, "/v1/signup", body).await;
    home(Some(outcome(
        status,
        &answer,
        "Check your email: open /dev/mail and follow the link.",
    )))
}

fn confirm_page(title: &str, action: &str, token: &str, button: &str) -> ApiResponse {
    let body = if token.is_empty() {
        "<p class=\"error\">This link has no token. Open it from the email.</p>".to_owned()
    } else {
        format!(
            "<h1>{title}</h1><form method=\"post\" action=\"{action}\">\
             <input type=\"hidden\" name=\"token\" value=\"{token}\">\
             <button>{button}</button></form>",
            title = escape_html(title),
            action = escape_html(action),
            token = escape_html(token),
            button = escape_html(button),
        )
    };
    html(StatusCode::OK, title, &body)
}

async fn verify_email(server: &Server, request: &ApiRequest) -> ApiResponse {
    let token = form_param(&form_body(request), "token").unwrap_or_default();
    let (status, answer) = call_api(
        server,
        request,
        "/v1/email/verify",
        json!({ "token": token }),
    )
    .await;
    let body = format!(
        "<h1>Email confirmation</h1>{}",
        outcome(
            status,
            &answer,
            "Your email address is verified. You can log in now."
        )
    );
    html(status, "Email confirmation", &body)
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

fn token_field(request: &ApiRequest) -> Option<String> {
    request.query_param("token").filter(|t| !t.is_empty())
}

fn missing_token() -> ApiResponse {
    html(
        StatusCode::OK,
        "Missing link",
        "<p class=\"error\">This link has no token. Open it from the email.</p>",
    )
}

fn reset_password_page(request: &ApiRequest) -> ApiResponse {
    let Some(token) = token_field(request) else {
        return missing_token();
    };
    let body = format!(
        "<h1>Choose a new password</h1><form method=\"post\" action=\"/reset-password\">\
         <input type=\"hidden\" name=\"token\" value=\"{}\">\
         <label>New password <input name=\"new_password\" type=\"password\" required minlength=\"8\"></label>\
         <p><small>If your account has two-step verification, give a second factor too.</small></p>\
         <label>Method <select name=\"mfa_method\"><option value=\"\">none</option>\
         <option value=\"totp\">authenticator app</option><option value=\"backup_code\">backup code</option>\
         <option value=\"security_question\">security question</option></select></label>\
         <label>Code or answer <input name=\"mfa_code\" autocomplete=\"one-time-code\"></label>\
         <button>Reset my password</button></form>",
        escape_html(&token)
    );
    html(StatusCode::OK, "Choose a new password", &body)
}

async fn reset_password(server: &Server, request: &ApiRequest) -> ApiResponse {
    let form = form_body(request);
    let field = |name: &str| form_param(&form, name).unwrap_or_default();
    let mut body = json!({ "token": field("token"), "new_password": field("new_password") });
    if !field("mfa_method").is_empty() {
        body["mfa"] = json!({ "method": field("mfa_method"), "code": field("mfa_code") });
    }
    let (status, answer) = call_api(server, request, "/v1/password/reset", body).await;
    let page = format!(
        "<h1>Password reset</h1>{}",
        outcome(
            status,
            &answer,
            "Your password is changed and every device is signed out. Log in again."
        )
    );
    html(status, "Password reset", &page)
}

fn reset_question_page(request: &ApiRequest) -> ApiResponse {
    let Some(token) = token_field(request) else {
        return missing_token();
    };
    let options: String = accounts::credentials::security_answer::QUESTIONS
        .iter()
        .map(|q| {
            format!(
                "<option value=\"{}\">{}</option>",
                q.id,
                escape_html(q.text)
            )
        })
        .collect();
    let body = format!(
        "<h1>Choose a new security question</h1>\
         <form method=\"post\" action=\"/reset-security-question\">\
         <input type=\"hidden\" name=\"token\" value=\"{}\">\
         <label>Your password <input name=\"password\" type=\"password\" required></label>\
         <label>Question <select name=\"question_id\">{options}</select></label>\
         <label>Answer <input name=\"answer\" required minlength=\"3\"></label>\
         <button>Save</button></form>",
        escape_html(&token)
    );
    html(StatusCode::OK, "Choose a new security question", &body)
}

async fn reset_question(server: &Server, request: &ApiRequest) -> ApiResponse {
    let form = form_body(request);
    let field = |name: &str| form_param(&form, name).unwrap_or_default();
    let body = json!({
        "token": field("token"),
        "password": field("password"),
        "question_id": field("question_id"),
        "answer": field("answer"),
    });
    let (status, answer) = call_api(server, request, "/v1/security-question/reset", body).await;
    let page = format!(
        "<h1>Security question</h1>{}",
        outcome(status, &answer, "Your security question is changed.")
    );
    html(status, "Security question", &page)
}
