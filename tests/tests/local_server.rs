//! The local server's own defences: it answers only requests for its own names (no DNS
//! rebinding of `/dev/mail.json`), refuses forms posted from other sites or without their
//! CSRF token, never lets a page with a token be cached or passed on as a referrer, and
//! drops clients that are too slow to send a request.

use std::time::Duration;

use api_tests::assert::problem;
use api_tests::{Backend, TestApp, header, on_both_backends};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn port_of(app: &TestApp) -> String {
    app.address.rsplit(':').next().expect("a port").to_owned()
}

async fn get_with_host(app: &TestApp, path: &str, host: &str) -> reqwest::Response {
    app.http
        .get(format!("{}{path}", app.address))
        .header("host", host)
        .send()
        .await
        .expect("sent")
}

on_both_backends! {
    async fn only_requests_for_the_servers_own_names_are_answered(app) {
        let port = port_of(&app);
        for host in [format!("localhost:{port}"), format!("127.0.0.1:{port}")] {
            assert_eq!(get_with_host(&app, "/v1/health", &host).await.status(), 200, "{host}");
        }
        for host in [
            format!("evil.example:{port}"),
            "localhost".to_owned(),
            format!("localhost:{}", port.parse::<u16>().expect("a port") + 1),
            format!("127.0.0.1.evil.example:{port}"),
        ] {
            for path in ["/dev/mail.json", "/dev/mail", "/v1/health", "/"] {
                let response = get_with_host(&app, path, &host).await;
                assert_eq!(response.status(), 421, "{host} {path}");
            }
        }
        problem(get_with_host(&app, "/v1/health", "evil.example").await, 421, "misdirected_request")
            .await;
    }

    async fn a_form_posted_from_another_site_is_refused_and_spends_nothing(app) {
        let email = api_tests::unique_email();
        assert_eq!(app.sign_up(&email).await.status(), 202);
        let token = app.verification_token(&email).await;
        let port = port_of(&app);
        let form = format!("token={token}");
        let post = |origin: String, site: &'static str| {
            app.http
                .post(format!("{}/verify-email", app.address))
                .header("content-type", "application/x-www-form-urlencoded")
                .header("origin", origin)
                .header("sec-fetch-site", site)
                .body(form.clone())
                .send()
        };
        let refused = post("http://evil.example".to_owned(), "cross-site").await.expect("sent");
        assert_eq!(refused.status(), 403);
        let refused = post(format!("http://localhost:{port}"), "cross-site").await.expect("sent");
        assert_eq!(refused.status(), 403);
        // Even from this server's own address, a form without its CSRF token spends
        // nothing (the accepted post, with the token, is in tests/tests/web_security.rs).
        let refused = post(format!("http://localhost:{port}"), "same-origin").await.expect("sent");
        assert_eq!(refused.status(), 403);
        assert_eq!(api_tests::email_verified(&app.app, &email).await, Some(false));
    }

    async fn pages_that_carry_tokens_are_never_cached_or_referred(app) {
        for path in [
            "/verify-email?token=abc.def",
            "/reset-password?token=abc.def",
            "/reset-security-question?token=abc.def",
            "/dev/mail",
            "/dev/mail.json",
            "/",
        ] {
            let response = app.get(path).await;
            assert_eq!(header(&response, "cache-control").as_deref(), Some("no-store"), "{path}");
            if path != "/dev/mail.json" {
                assert_eq!(header(&response, "referrer-policy").as_deref(), Some("no-referrer"), "{path}");
            }
        }
    }
}

#[tokio::test]
async fn a_client_too_slow_to_send_its_request_is_dropped() {
    let app = TestApp::spawn(Backend::Memory).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a port");
    let address = listener.local_addr().expect("an address");
    let server = dev_server::Server {
        app: app.app.clone(),
        outbox: None,
        observer: None,
        read_timeout: Duration::from_millis(300),
    };
    tokio::spawn(dev_server::serve(listener, server));
    for partial in [
        // Headers never finished.
        format!(
            "GET /v1/health HTTP/1.1\r\nHost: 127.0.0.1:{}\r\n",
            address.port()
        ),
        // A body announced and never sent.
        format!(
            "POST /v1/signup HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{",
            address.port()
        ),
        // Nothing at all, on a connection kept open.
        String::new(),
    ] {
        let mut stream = tokio::net::TcpStream::connect(address)
            .await
            .expect("a connection");
        stream.write_all(partial.as_bytes()).await.expect("written");
        let mut answer = Vec::new();
        let read =
            tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer)).await;
        assert!(
            read.is_ok(),
            "the connection was still open after 5 s: {partial:?}"
        );
        let text = String::from_utf8_lossy(&answer);
        assert!(
            text.is_empty() || text.starts_with("HTTP/1.1 408"),
            "{text}"
        );
    }
}
