//! The facts a security notification reports about the request that caused it, and the
//! notices more than one flow sends.

use crate::app::App;
use crate::http::Client;
use crate::mail::messages::Message;
use crate::records::User;

/// When, from where and from what device something happened.
pub struct Occurrence {
    pub when: String,
    pub ip: String,
    pub device: String,
}

impl Occurrence {
    pub fn of(app: &App, client: &Client) -> Occurrence {
        let when = time::OffsetDateTime::from_unix_timestamp(app.now())
            .ok()
            .and_then(|t| {
                t.format(time::macros::format_description!(
                    "[year]-[month]-[day] [hour]:[minute] UTC"
                ))
                .ok()
            })
            .unwrap_or_else(|| crate::clock::rfc3339(app.now()));
        let device = if client.user_agent.is_empty() {
            "an unknown device".to_owned()
        } else {
            client.user_agent.clone()
        };
        Occurrence {
            when,
            ip: client.ip.to_string(),
            device,
        }
    }
}

/// How an account's password was replaced: the owner gets a notice saying which.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordReplaced {
    /// Changed while signed in (`POST /v1/account/password`).
    Changed,
    /// Reset through an emailed link.
    Reset,
}

/// Tells the owner of `user` that the password was replaced, when and from where, with the
/// way back in if it was not them. A mail failure is logged, never the caller's error.
pub async fn password_replaced(app: &App, user: &User, client: &Client, how: PasswordReplaced) {
    let Occurrence { when, ip, device } = Occurrence::of(app, client);
    let reset_url = app.config.app_base_url.page("/forgot-password");
    let message = match how {
        PasswordReplaced::Changed => Message::PasswordChanged {
            when,
            ip,
            device,
            reset_url,
        },
        PasswordReplaced::Reset => Message::PasswordWasReset {
            when,
            ip,
            device,
            reset_url,
        },
    };
    app.send_quietly(&user.email, user.mail_delivery, message)
        .await;
}

/// Tells the owner of `user` that `provider` (`Google`, `Apple`) was linked to the account
/// or unlinked from it, when and from where, with the way back in if it was not them.
pub async fn identity_changed(
    app: &App,
    user: &User,
    client: &Client,
    provider: &str,
    linked: bool,
) {
    let Occurrence { when, ip, device } = Occurrence::of(app, client);
    let message = Message::IdentityChanged {
        provider: provider.to_owned(),
        linked,
        when,
        ip,
        device,
        reset_url: app.config.app_base_url.page("/forgot-password"),
    };
    app.send_quietly(&user.email, user.mail_delivery, message)
        .await;
}

/// Tells the owner of `user` that the security question was set or reset, when and from
/// where, with the way back in if it was not them.
pub async fn question_changed(app: &App, user: &User, client: &Client) {
    let Occurrence { when, ip, device } = Occurrence::of(app, client);
    let message = Message::SecurityQuestionChanged {
        when,
        ip,
        device,
        reset_url: app.config.app_base_url.page("/forgot-password"),
    };
    app.send_quietly(&user.email, user.mail_delivery, message)
        .await;
}
