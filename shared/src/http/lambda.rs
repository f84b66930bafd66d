//! The Lambda entry path: API Gateway HTTP API (payload v2) events in, responses out,
//! through the same dispatch the local server uses.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};

use anyhow::Context;
use std::sync::Arc;

use bytes::Bytes;
use lambda_http::request::RequestContext;
use lambda_http::{Body, RequestExt, service_fn};

use super::router::{Function, KeysNeeded, dispatch};
use super::{ApiRequest, MAX_BODY_BYTES};
use crate::app::App;
use crate::clock::SystemClock;
use crate::config::Config;
use crate::mail::ses::SesMailer;
use crate::store::dynamo::DynamoStore;

/// Builds the shared state once per cold start and serves events until the runtime
/// stops: all a function's `main` does.
pub async fn run(function: Function) -> Result<(), lambda_http::Error> {
    crate::telemetry::init(true);
    let app = Arc::new(app_from_environment(function).await.inspect_err(|e| {
        tracing::error!(
            error = format!("{e:#}"),
            function = function.name(),
            "cold start failed"
        );
    })?);
    lambda_http::run(service_fn(move |event: lambda_http::Request| {
        let app = app.clone();
        async move { Ok::<_, std::convert::Infallible>(handle_event(&app, function, event).await) }
    }))
    .await
}

/// Secrets kept in SSM Parameter Store as SecureStrings: each `*_PARAMETER` variable
/// names a parameter whose value stands in for the variable it names.
const SECRET_PARAMETERS: &[(&str, &str)] = &[
    ("JWT_SIGNING_KEY_PARAMETER", "JWT_SIGNING_KEY"),
    (
        "JWT_PREVIOUS_SIGNING_KEY_PARAMETER",
        "JWT_PREVIOUS_SIGNING_KEY",
    ),
    ("TOTP_ENCRYPTION_KEY_PARAMETER", "TOTP_ENCRYPTION_KEY"),
    (
        "TOTP_PREVIOUS_ENCRYPTION_KEY_PARAMETER",
        "TOTP_PREVIOUS_ENCRYPTION_KEY",
    ),
];

/// Reads every configured secret parameter in one `GetParameters` call (the only
/// network call of a cold start).
async fn secrets_from_ssm(sdk: &aws_config::SdkConfig) -> anyhow::Result<HashMap<String, String>> {
    let wanted: Vec<(String, &str)> = SECRET_PARAMETERS
        .iter()
        .filter_map(|(parameter_var, var)| {
            let name = std::env::var(parameter_var)
                .ok()
                .filter(|n| !n.is_empty())?;
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
/// DynamoDB and SES clients from the AWS SDK's default chain.
pub async fn app_from_environment(function: Function) -> anyhow::Result<App> {
    app_from_environment_for(function.keys_needed()).await
}

/// [`app_from_environment`] for any function, HTTP or not (the scheduled cleanup): it
/// refuses to start without the shared keys the function needs (keys generated per
/// instance would differ between instances).
pub async fn app_from_environment_for(needs: KeysNeeded) -> anyhow::Result<App> {
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(aws_https_client()?)
        .load()
        .await;
    let secrets = secrets_from_ssm(&sdk).await?;
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

/// The roots of Amazon Trust Services, which issue the certificates of the AWS endpoints
/// the functions call (DynamoDB, SES, SSM).
const AWS_TRUST_ROOTS: &str = include_str!("../../certs/amazon-trust-services.pem");

/// The SDK's default HTTPS client (rustls on aws-lc), trusting only the AWS roots. The
/// default trusts the system store, which it parses at every cold start: every root of
/// the CA bundle, and again every file of the certificate directory. That was most of a
/// function's start-up time beyond a hello-world function's (bench/REPORT.md).
fn aws_https_client() -> anyhow::Result<aws_sdk_dynamodb::config::SharedHttpClient> {
    use aws_smithy_http_client::tls;
    let trust = tls::TrustStore::empty()
        .with_native_roots(false)
        .with_pem_certificate(AWS_TRUST_ROOTS.as_bytes());
    let context = tls::TlsContext::builder()
        .with_trust_store(trust)
        .build()
        .context("the TLS settings of the AWS client")?;
    Ok(aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::AwsLc,
        ))
        .tls_context(context)
        .build_https())
}

/// Answers one API Gateway event.
pub async fn handle_event(
    app: &App,
    function: Function,
    event: lambda_http::Request,
) -> lambda_http::Response<Body> {
    let request = into_api_request(event);
    let response = dispatch(app, Some(function), request).await;
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

fn into_api_request(event: lambda_http::Request) -> ApiRequest {
    // The source IP is the one API Gateway saw; a client's X-Forwarded-For is ignored.
    let ip = match event.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(context)) => context
            .http
            .source_ip
            .as_deref()
            .and_then(|ip| ip.parse().ok()),
        _ => None,
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
    ApiRequest::new(
        parts.method,
        parts.uri.path(),
        parts.uri.query().map(str::to_owned),
        parts.headers,
        body,
        ip,
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// The roots are parsed when the first connection is set up (a malformed file would
    /// panic there, in production): a call to a closed local port gets that far.
    #[tokio::test]
    async fn the_aws_https_client_loads_the_aws_roots() {
        use aws_sdk_dynamodb::config::{Credentials, Region};
        let sdk = aws_config::SdkConfig::builder()
            .http_client(aws_https_client().unwrap())
            .region(Region::new("us-east-1"))
            .credentials_provider(aws_sdk_dynamodb::config::SharedCredentialsProvider::new(
                Credentials::for_tests(),
            ))
            .endpoint_url("https://127.0.0.1:9")
            .behavior_version(aws_config::BehaviorVersion::latest())
            .retry_config(aws_config::retry::RetryConfig::disabled())
            .build();
        let error = aws_sdk_dynamodb::Client::new(&sdk)
            .list_tables()
            .send()
            .await
            .unwrap_err();
        assert!(
            matches!(error, aws_sdk_dynamodb::error::SdkError::DispatchFailure(_)),
            "{error:?}"
        );
        assert!(AWS_TRUST_ROOTS.matches("BEGIN CERTIFICATE").count() >= 5);
    }
}
