//! The AWS SDK settings every client shares, read from the environment the way Lambda
//! provides them: region, the execution role's credentials, endpoint overrides, and an
//! HTTPS client that trusts only the roots AWS endpoints use.
//!
//! This stands in for `aws-config`'s default chain on purpose. In Lambda the chain always
//! ends at its first link (the role's credentials are environment variables), and its
//! other links (profiles, SSO, STS web identity, container and instance metadata) were
//! 0.45 MB of every function's binary. Outside Lambda, export credentials first, for
//! example `eval "$(aws configure export-credentials --format env)"`.

pub mod https;

use anyhow::bail;
use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_smithy_runtime_api::client::behavior_version::BehaviorVersion;
use aws_types::SdkConfig;
use aws_types::region::Region;
use aws_types::service_config::{LoadServiceConfig, ServiceConfigKey};

/// [`sdk_config_from_environment`] with the process environment.
pub fn sdk_config_from_process_environment() -> anyhow::Result<SdkConfig> {
    sdk_config_from_environment(|name| std::env::var(name).ok())
}

/// The shared SDK settings from environment variables `lookup` answers (in production,
/// the process environment): `AWS_REGION` (or `AWS_DEFAULT_REGION`),
/// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, optionally `AWS_SESSION_TOKEN`, and
/// the endpoint overrides `AWS_ENDPOINT_URL_<SERVICE>` and `AWS_ENDPOINT_URL` as the
/// SDKs define them (used with DynamoDB Local and the SES emulator).
pub fn sdk_config_from_environment(
    lookup: impl Fn(&str) -> Option<String> + Clone + Send + Sync + 'static,
) -> anyhow::Result<SdkConfig> {
    let value = move |name: &str| lookup(name).filter(|value| !value.trim().is_empty());
    let Some(region) = value("AWS_REGION").or_else(|| value("AWS_DEFAULT_REGION")) else {
        bail!("set AWS_REGION (Lambda sets it) to the region of the table and of SES");
    };
    let missing: Vec<&str> = ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"]
        .into_iter()
        .filter(|name| value(name).is_none())
        .collect();
    let (Some(key_id), Some(secret)) = (value("AWS_ACCESS_KEY_ID"), value("AWS_SECRET_ACCESS_KEY"))
    else {
        bail!(
            "set {} (Lambda sets them from the function's role; elsewhere, export \
             credentials, for example with `aws configure export-credentials --format env`)",
            missing.join(" and ")
        );
    };
    let credentials = Credentials::new(
        key_id,
        secret,
        value("AWS_SESSION_TOKEN"),
        None,
        "environment",
    );
    Ok(SdkConfig::builder()
        .region(Region::new(region))
        .credentials_provider(SharedCredentialsProvider::new(credentials))
        .http_client(crate::aws::https::https_client()?)
        .service_config(EndpointsFromEnvironment(value.clone()))
        .behavior_version(BehaviorVersion::latest())
        .build())
}

/// Answers the SDK's per-service setting lookups from the environment, as `aws-config`
/// does: `<VAR>_<SERVICE ID>` first (`AWS_ENDPOINT_URL_DYNAMODB`), then `<VAR>`.
struct EndpointsFromEnvironment<F>(F);

impl<F> std::fmt::Debug for EndpointsFromEnvironment<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EndpointsFromEnvironment")
    }
}

impl<F> LoadServiceConfig for EndpointsFromEnvironment<F>
where
    F: Fn(&str) -> Option<String> + Send + Sync,
{
    fn load_config(&self, key: ServiceConfigKey<'_>) -> Option<String> {
        let service = key.service_id().to_ascii_uppercase().replace(' ', "_");
        (self.0)(&format!("{}_{service}", key.env())).or_else(|| (self.0)(key.env()))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn environment(
        pairs: &[(&str, &str)],
    ) -> impl Fn(&str) -> Option<String> + Clone + Send + Sync + use<> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name: &str| map.get(name).cloned()
    }

    const LAMBDA: &[(&str, &str)] = &[
        ("AWS_REGION", "eu-west-1"),
        ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
        ("AWS_SECRET_ACCESS_KEY", "secret"),
        ("AWS_SESSION_TOKEN", "session"),
    ];

    #[test]
    fn the_lambda_environment_gives_region_and_credentials() {
        let sdk = sdk_config_from_environment(environment(LAMBDA)).unwrap();
        assert_eq!(sdk.region().map(Region::as_ref), Some("eu-west-1"));
        let dynamodb = aws_sdk_dynamodb::config::Config::from(&sdk);
        assert_eq!(dynamodb.region().map(Region::as_ref), Some("eu-west-1"));
        assert_eq!(endpoint_override(&sdk, "DynamoDB"), None);
    }

    #[test]
    fn a_missing_region_or_key_is_named() {
        let error = sdk_config_from_environment(environment(&LAMBDA[1..])).unwrap_err();
        assert!(error.to_string().contains("AWS_REGION"), "{error}");
        let error = sdk_config_from_environment(environment(&[("AWS_REGION", "eu-west-1")]))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"),
            "{error}"
        );
    }

    #[test]
    fn a_service_endpoint_override_wins_over_the_global_one() {
        let mut pairs = LAMBDA.to_vec();
        pairs.push(("AWS_ENDPOINT_URL", "http://127.0.0.1:1"));
        pairs.push(("AWS_ENDPOINT_URL_DYNAMODB", "http://127.0.0.1:2"));
        let sdk = sdk_config_from_environment(environment(&pairs)).unwrap();
        assert_eq!(
            endpoint_override(&sdk, "DynamoDB").as_deref(),
            Some("http://127.0.0.1:2")
        );
        assert_eq!(
            endpoint_override(&sdk, "SESv2").as_deref(),
            Some("http://127.0.0.1:1")
        );
    }

    /// The endpoint a service's client takes from the settings, asked as the SDKs ask.
    fn endpoint_override(sdk: &SdkConfig, service_id: &str) -> Option<String> {
        let key = ServiceConfigKey::builder()
            .service_id(service_id)
            .env("AWS_ENDPOINT_URL")
            .profile("endpoint_url")
            .build()
            .unwrap();
        sdk.service_config()?.load_config(key)
    }
}
