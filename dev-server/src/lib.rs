//! The local server: serves every API route through the same dispatch as the Lambda
//! functions, plus developer pages (sent mail, the pages emailed links open).

pub mod pages;
pub mod setup;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use accounts::app::App;
use accounts::http::{self as api, ApiRequest, MAX_BODY_BYTES};
use accounts::mail::outbox::Outbox;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// Sees every API answer before it is sent (the black-box tests check each one against
/// the API document).
pub type Observer = Arc<dyn Fn(&ApiRequest, &api::ApiResponse) + Send + Sync>;

/// What the server needs: the app, the outbox when mail stays local, and an observer of
/// the answers, if any.
#[derive(Clone)]
pub struct Server {
    pub app: App,
    pub outbox: Option<Arc<Outbox>>,
    pub observer: Option<Observer>,
}

/// Serves connections from `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, server: Server) -> anyhow::Result<()> {
    let server = Arc::new(server);
    loop {
        let (stream, peer) = listener.accept().await?;
        let server = server.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let server = server.clone();
                async move { Ok::<_, Infallible>(server.answer(request, peer).await) }
            });
            let connection = hyper::server::conn::http1::Builder::new()
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
    ) -> hyper::Response<Full<Bytes>> {
        let (parts, body) = request.into_parts();
        // Read one byte past the limit so an oversized body is refused, not truncated.
        let body = match Limited::new(body, MAX_BODY_BYTES + 1).collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(_) => return to_hyper(api::problem(&api::payload_too_large())),
        };
        let request = ApiRequest::new(
            parts.method,
            parts.uri.path(),
            parts.uri.query().map(str::to_owned),
            parts.headers,
            body,
            peer.ip(),
        );
        if let Some(page) = pages::answer(self, &request).await {
            return to_hyper(page);
        }
        let response = match &self.observer {
            // The request is kept for the observer only: no copy on the usual path.
            None => api::router::dispatch(&self.app, None, request).await,
            Some(observe) => {
                let response = api::router::dispatch(&self.app, None, request.clone()).await;
                observe(&request, &response);
                response
            }
        };
        to_hyper(response)
    }
}

fn to_hyper(response: api::ApiResponse) -> hyper::Response<Full<Bytes>> {
    let (parts, body) = response.into_parts();
    hyper::Response::from_parts(parts, Full::new(body))
}
