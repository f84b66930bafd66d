//! The facts a security notification reports about the request that caused it.

use crate::app::App;
use crate::http::Client;

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
