//! The Lambda entry path: API Gateway HTTP API (payload v2) events in, responses out,
//! through the same dispatch (and, for the `web` function, the same pages) the local
//! server uses.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr};

use anyhow::Context;
use std::sync::Arc;

use bytes::Bytes;
use http::StatusCode;
use lambda_http::request::RequestContext;
use lambda_http::{Body, RequestExt, service_fn};

use super::{Function, KeysNeeded, RouteGroup, dispatch_to};
use crate::app::App;
use crate::app::config::Config;
use crate::clock::SystemClock;
use crate::http::{ApiRequest, MAX_BODY_BYTES, Problem};
use crate::mail::ses::SesMailer;
use crate::store::dynamo::DynamoStore;
use crate::values::secret::{Secret, digests_match};

/// Builds the shared state once per cold start and serves the events of one function's
/// routes until the runtime stops: all a function's `main` does. Being generic over the
/// routes, each binary links only its own handlers.
pub async fn run<G: RouteGroup>() -> Result<(), lambda_http::Error> {
    let app = cold_start(G::FUNCTION).await?;
    lambda_http::run(service_fn(move |event: lambda_http::Request| {
        let app = app.clone();
        let invocation = invocation_of(&event);
        async move {
            let response = invocation.scope(handle_event::<G>(&app, event)).await;
            Ok::<_, Infallible>(Answer(response))
        }
    }))
    .await
}

/// All the `web` function's `main` does: the state built once per cold start (with every
/// key the pages' flows need), then each event answered by [`web_service`].
pub async fn run_web() -> Result<(), lambda_http::Error> {
    let app = cold_start(Function::Web).await?;
    lambda_http::run(web_service(app)).await
}

/// The service the `web` function runs (and the tests drive through `lambda_http`'s own
/// adapter): each event answered by [`handle_web_event`] inside its invocation.
pub fn web_service(
    app: Arc<App>,
) -> impl lambda_http::Service<
    lambda_http::Request,
    Response = Answer,
    Error = Infallible,
    Future = impl Future<Output = Result<Answer, Infallible>> + Send,
> {
    service_fn(move |event: lambda_http::Request| {
        let app = app.clone();
        let invocation = invocation_of(&event);
        async move {
            let response = invocation.scope(handle_web_event(&app, event)).await;
            Ok::<_, Infallible>(Answer(response))
        }
    })
}

/// Logging, then the function's state from the environment; a failure is logged (with
/// the function's name) before the runtime reports it.
async fn cold_start(function: Function) -> Result<Arc<App>, lambda_http::Error> {
    crate::telemetry::init(true);
    let app = app_from_environment(function).await.inspect_err(|e| {
        tracing::error!(
            error = format!("{e:#}"),
            function = function.name(),
            "cold start failed"
        );
    })?;
    Ok(Arc::new(app))
}

/// The invocation an HTTP event belongs to: Lambda's request id and API Gateway's.
pub fn invocation_of(event: &lambda_http::Request) -> crate::telemetry::Invocation {
    let request_id = event
        .lambda_context_ref()
        .map(|context| context.request_id.as_str())
        .unwrap_or_default();
    let api_request_id = match event.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(context)) => context.request_id.as_deref(),
        _ => None,
    };
    crate::telemetry::Invocation::start(request_id, api_request_id)
}

/// All the `main` of a function that serves no route (the scheduled `cleanup`, the
/// event-driven `mail-events`) does: logging, the state built once per cold start with
/// the keys it needs, then each event handed to `handle` inside its invocation (so its
/// lines carry the request id).
pub async fn run_events<F, Fut>(keys: KeysNeeded, handle: F) -> Result<(), lambda_http::Error>
where
    F: Fn(Arc<App>, lambda_http::LambdaEvent<serde_json::Value>) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    crate::telemetry::init(true);
    let app = Arc::new(app_from_environment_for(keys).await.inspect_err(|e| {
        tracing::error!(error = format!("{e:#}"), "cold start failed");
    })?);
    lambda_http::lambda_runtime::run(lambda_http::service_fn(
        move |event: lambda_http::LambdaEvent<serde_json::Value>| {
            let invocation = crate::telemetry::Invocation::start(&event.context.request_id, None);
            let work = handle(app.clone(), event);
            async move {
                invocation
                    .scope(work)
                    .await
                    .map_err(lambda_http::Error::from)
            }
        },
    ))
    .await
}

/// A response whose body is already what API Gateway gets. `lambda_http` would otherwise
/// collect each body again and decode it by its `charset` (pulling in every legacy
/// encoding table), though ours are UTF-8 (JSON, HTML, CSS, JavaScript) or empty.
pub struct Answer(lambda_http::Response<Body>);

impl lambda_http::IntoResponse for Answer {
    fn into_response(
        self,
    ) -> std::pin::Pin<Box<dyn Future<Output = lambda_http::Response<Body>> + Send>> {
        Box::pin(std::future::ready(self.0))
    }
}

/// Secrets kept in SSM Parameter Store as SecureStrings: each `*_PARAMETER` variable
/// names a parameter whose value stands in for the variable it names.
const SECRET_PARAMETERS: &[(&str, &str)] = &[
    ("JWT_SIGNING_KEY_PARAMETER", "JWT_SIGNING_KEY"),
    ("JWT_VERIFICATION_KEYS_PARAMETER", "JWT_VERIFICATION_KEYS"),
    (
        "JWT_PREVIOUS_SIGNING_KEY_PARAMETER",
        "JWT_PREVIOUS_SIGNING_KEY",
    ),
    ("TOTP_ENCRYPTION_KEY_PARAMETER", "TOTP_ENCRYPTION_KEY"),
    ("GOOGLE_CLIENT_SECRET_PARAMETER", "GOOGLE_CLIENT_SECRET"),
    ("APPLE_PRIVATE_KEY_PARAMETER", "APPLE_PRIVATE_KEY"),
    (
        "TOTP_PREVIOUS_ENCRYPTION_KEY_PARAMETER",
        "TOTP_PREVIOUS_ENCRYPTION_KEY",
    ),
];

/// Reads every configured secret parameter in one `GetParameters` call (the only
/// network call of a cold start).
/// `lookup` answers the `*_PARAMETER` variables (the process environment in production);
/// the answer maps each secret's variable (`JWT_SIGNING_KEY`) to its value.
pub async fn secrets_from_ssm(
    sdk: &aws_types::SdkConfig,
    lookup: impl Fn(&str) -> Option<String>,
) -> anyhow::Result<HashMap<String, String>> {
    let wanted: Vec<(String, &str)> = SECRET_PARAMETERS
        .iter()
        .filter_map(|(parameter_var, var)| {
            let name = lookup(parameter_var).filter(|n| !n.is_empty())?;
            Some((name, *var))
        })
        .collect();
    if wanted.is_empty() {
        return Ok(HashMap::new());
    }
    let output = aws_sdk_ssm::Client::new(sdk)
        .get_parameters()
        .set_names(Some(wanted.iter().map(|(name, _)| name.clone()).collect()))
        .with_decryption(true)
        .send()
        .await
        .context("reading secrets from SSM Parameter Store")?;
    if let Some(missing) = output.invalid_parameters().first() {
        anyhow::bail!("the SSM parameter {missing} does not exist");
    }
    let mut secrets = HashMap::new();
    for parameter in output.parameters() {
        if let (Some(name), Some(value)) = (parameter.name(), parameter.value())
            && let Some((_, var)) = wanted.iter().find(|(wanted, _)| wanted == name)
        {
            secrets.insert((*var).to_owned(), value.to_owned());
        }
    }
    Ok(secrets)
}

/// The production wiring: configuration from the environment (secrets from SSM),
/// DynamoDB and SES clients with the Lambda environment's region and credentials.
pub async fn app_from_environment(function: Function) -> anyhow::Result<App> {
    app_from_environment_for(function.keys_needed()).await
}

/// [`app_from_environment`] for any function, HTTP or not (the scheduled cleanup): it
/// refuses to start without the shared keys the function needs (keys generated per
/// instance would differ between instances).
pub async fn app_from_environment_for(needs: KeysNeeded) -> anyhow::Result<App> {
    let sdk = crate::aws::sdk_config_from_process_environment()?;
    let secrets = secrets_from_ssm(&sdk, |name| std::env::var(name).ok()).await?;
    let config = Config::from_lookup(|name| {
        secrets
            .get(name)
            .cloned()
            .or_else(|| std::env::var(name).ok())
    })?;
    if needs.signing_key && config.jwt_signing_key.is_none() {
        anyhow::bail!(
            "set JWT_SIGNING_KEY_PARAMETER (an SSM SecureString holding a PKCS#8 PEM key): \
             every instance must sign with the same key"
        );
    }
    if needs.verification_keys && config.jwt_verification_keys.is_none() {
        anyhow::bail!(
            "set JWT_VERIFICATION_KEYS_PARAMETER (an SSM parameter holding the PEM public \
             keys of the signing key and, during a rotation, of the previous one)"
        );
    }
    if needs.totp_key && config.totp_encryption_key.is_none() {
        anyhow::bail!(
            "set TOTP_ENCRYPTION_KEY_PARAMETER (an SSM SecureString holding 32 random bytes \
             in base64): every instance must decrypt with the same key"
        );
    }
    let clock = Arc::new(SystemClock);
    let store = DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&sdk),
        config.table_name.clone(),
        clock.clone(),
    );
    let mailer = SesMailer::new(
        aws_sdk_sesv2::Client::new(&sdk),
        config.mail_from.clone(),
        config.ses_configuration_set.clone(),
    );
    App::new(config, Arc::new(store), Arc::new(mailer), clock)
}

/// Answers one API Gateway event with one function's routes.
pub async fn handle_event<G: RouteGroup>(
    app: &App,
    event: lambda_http::Request,
) -> lambda_http::Response<Body> {
    let origin = app.config.origin_verify_secret.as_ref();
    let response = match into_api_request(event, origin) {
        Ok(request) => dispatch_to::<G>(app, request).await,
        Err(problem) => crate::http::problem(&problem),
    };
    lambda_response(response)
}

/// Answers one API Gateway event with the web pages (`crate::web::answer`): a page, the
/// HTML 404 page for an unknown page path, or the API's own problem+json for an API path
/// no route matched. The proof of origin and the client's IP are read as for the API.
pub async fn handle_web_event(
    app: &App,
    event: lambda_http::Request,
) -> lambda_http::Response<Body> {
    let origin = app.config.origin_verify_secret.as_ref();
    let response = match into_api_request(event, origin) {
        Ok(request) => crate::web::answer(app, &request).await,
        Err(problem) => crate::http::problem(&problem),
    };
    lambda_response(response)
}

/// The response in `lambda_http`'s form. Every `Set-Cookie` stays a header of its own:
/// for an HTTP API event `lambda_http` moves them into the response's `cookies` array.
fn lambda_response(response: crate::http::ApiResponse) -> lambda_http::Response<Body> {
    let (parts, body) = response.into_parts();
    lambda_http::Response::from_parts(parts, body_of(body))
}

fn body_of(bytes: Bytes) -> Body {
    if bytes.is_empty() {
        Body::Empty
    } else {
        match String::from_utf8(bytes.to_vec()) {
            Ok(text) => Body::Text(text),
            Err(e) => Body::Binary(e.into_bytes()),
        }
    }
}

/// The header CloudFront adds to every request it forwards (`OriginCustomHeaders`).
const ORIGIN_VERIFY_HEADER: &str = "x-origin-verify";
/// CloudFront's record of the viewer: `<ip>:<port>` (an IPv6 address unbracketed).
const VIEWER_ADDRESS_HEADER: &str = "cloudfront-viewer-address";

/// The request an event carries, with the client's IP: API Gateway's source IP, or,
/// behind CloudFront (`origin` set), the viewer address CloudFront saw, once the
/// request proves it came through CloudFront. A client's `X-Forwarded-For` is never
/// believed.
fn into_api_request(
    event: lambda_http::Request,
    origin: Option<&Secret>,
) -> Result<ApiRequest, Problem> {
    let ip = match origin {
        None => match event.request_context_ref() {
            Some(RequestContext::ApiGatewayV2(context)) => context
                .http
                .source_ip
                .as_deref()
                .and_then(|ip| ip.parse().ok()),
            _ => None,
        },
        Some(secret) => {
            let presented = event
                .headers()
                .get(ORIGIN_VERIFY_HEADER)
                .and_then(|value| value.to_str().ok())
                .unwrap_or_default();
            if !digests_match(presented, secret.expose()) {
                return Err(Problem::new(
                    StatusCode::FORBIDDEN,
                    "forbidden",
                    "This API answers only through its CloudFront distribution.",
                ));
            }
            event
                .headers()
                .get(VIEWER_ADDRESS_HEADER)
                .and_then(|value| value.to_str().ok())
                .and_then(viewer_ip)
        }
    }
    .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    let (parts, body) = event.into_parts();
    let body = match body {
        Body::Empty => Bytes::new(),
        Body::Text(text) => Bytes::from(text),
        Body::Binary(bytes) => Bytes::from(bytes),
        _ => Bytes::new(),
    };
    // API Gateway caps payloads itself; this keeps the contract's limit exact.
    let body = if body.len() > MAX_BODY_BYTES {
        body.slice(..=MAX_BODY_BYTES)
    } else {
        body
    };
    let mut headers = parts.headers;
    // The proof of origin goes no further than this check.
    headers.remove(ORIGIN_VERIFY_HEADER);
    Ok(ApiRequest::new(
        parts.method,
        parts.uri.path(),
        parts.uri.query().map(str::to_owned),
        headers,
        body,
        ip,
    ))
}

/// The IP of a `CloudFront-Viewer-Address` value (`198.51.100.10:46532`,
/// `2001:db8::1:46532`): everything before the last colon.
fn viewer_ip(value: &str) -> Option<IpAddr> {
    let (ip, port) = value.trim().rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    ip.trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()
}
