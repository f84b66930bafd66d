//! The local server: serves every API route through the same dispatch as the Lambda
//! functions, the product's web pages from the same code as the `web` function, and a
//! developer page of the mail sent.

pub mod pages;
pub mod setup;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use accounts::app::App;
use accounts::http::{self as api, ApiRequest, MAX_BODY_BYTES};
use accounts::mail::outbox::Outbox;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;

/// Sees every API answer before it is sent (the black-box tests check each one against
/// the API document).
pub type Observer = Arc<dyn Fn(&ApiRequest, &api::ApiResponse) + Send + Sync>;

/// How long a client may take to send a request's headers (or, on a kept-alive
/// connection, to start the next request) and its body.
pub const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// What the server needs: the app, the outbox when mail stays local, an observer of the
/// answers, if any, and how long a client may take to send a request.
#[derive(Clone)]
pub struct Server {
    pub app: App,
    pub outbox: Option<Arc<Outbox>>,
    pub observer: Option<Observer>,
    pub read_timeout: Duration,
}

/// Serves connections from `listener` until the task is dropped. Only requests for this
/// machine's own names (`localhost` and `127.0.0.1` at the listening port) are answered:
/// a page of another site whose name resolves here (DNS rebinding) is refused before
/// anything, `/dev/mail.json` included, can be read.
pub async fn serve(listener: TcpListener, server: Server) -> anyhow::Result<()> {
    let port = listener.local_addr()?.port();
    let server = Arc::new(server);
    loop {
        let (stream, peer) = listener.accept().await?;
        let server = server.clone();
        tokio::spawn(async move {
            let timeout = server.read_timeout;
            let service = service_fn(move |request| {
                let server = server.clone();
                async move { Ok::<_, Infallible>(server.answer(request, peer, port).await) }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(timeout)
                .serve_connection(TokioIo::new(stream), service);
            if let Err(error) = connection.await {
                tracing::debug!(%error, "a connection ended with an error");
            }
        });
    }
}

impl Server {
    async fn answer(
        &self,
        request: hyper::Request<Incoming>,
        peer: SocketAddr,
        port: u16,
    ) -> hyper::Response<Full<Bytes>> {
        let (parts, body) = request.into_parts();
        if !is_own_host(&parts.headers, port) {
            return to_hyper(api::problem(&misdirected()));
        }
        // Read one byte past the limit so an oversized body is refused, not truncated.
        let limited = Limited::new(body, MAX_BODY_BYTES + 1).collect();
        let body = match tokio::time::timeout(self.read_timeout, limited).await {
            Ok(Ok(collected)) => collected.to_bytes(),
            Ok(Err(_)) => return to_hyper(api::problem(&api::payload_too_large())),
            Err(_) => return to_hyper(api::problem(&too_slow())),
        };
        let request = ApiRequest::new(
            parts.method,
            parts.uri.path(),
            parts.uri.query().map(str::to_owned),
            parts.headers,
            body,
            peer.ip(),
        );
        if let Some(page) = pages::answer(self, &request) {
            return to_hyper(page);
        }
        if !accounts::web::is_api_path(&request.path) {
            return to_hyper(accounts::web::answer(&self.app, &request).await);
        }
        let response = match &self.observer {
            // The request is kept for the observer only: no copy on the usual path.
            None => accounts::routes::dispatch(&self.app, None, request).await,
            Some(observe) => {
                let response = accounts::routes::dispatch(&self.app, None, request.clone()).await;
                observe(&request, &response);
                response
            }
        };
        to_hyper(response)
    }
}

/// The names of this machine a request may use.
const OWN_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "[::1]"];

/// Whether `name:port` is one of this machine's names at this server's port (compared
/// without allocating: every request passes here).
fn is_own_name_and_port(text: &str, port: u16) -> bool {
    let Some((name, given)) = text.rsplit_once(':') else {
        return false;
    };
    given.parse::<u16>().ok() == Some(port)
        && OWN_NAMES.iter().any(|own| name.eq_ignore_ascii_case(own))
}

/// Whether the request names this server: `localhost`, `127.0.0.1` or `[::1]` at its
/// own port (a browser always sends the port of a URL that has one).
fn is_own_host(headers: &http::HeaderMap, port: u16) -> bool {
    headers
        .get(http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|host| is_own_name_and_port(host, port))
}

fn misdirected() -> api::Problem {
    api::Problem::new(
        http::StatusCode::MISDIRECTED_REQUEST,
        "misdirected_request",
        "This server answers only requests for localhost and 127.0.0.1 at its own port.",
    )
}

fn too_slow() -> api::Problem {
    api::Problem::new(
        http::StatusCode::REQUEST_TIMEOUT,
        "request_timeout",
        "The request body did not arrive in time.",
    )
}

fn to_hyper(response: api::ApiResponse) -> hyper::Response<Full<Bytes>> {
    let (parts, body) = response.into_parts();
    hyper::Response::from_parts(parts, Full::new(body))
}
