//! The keys a cold start reads from SSM Parameter Store, over the wire: moto's server
//! mode speaks SSM (`scripts/emulators.sh` starts it; `AWS_ENDPOINT_URL_SSM` points the
//! SDK at it). One `GetParameters` call with decryption, SecureStrings and a String.

use accounts::routes::lambda::secrets_from_ssm;
use api_tests::required_env;
use aws_sdk_ssm::types::ParameterType;

/// The SDK settings of the tests, with SSM at moto.
fn sdk() -> aws_types::SdkConfig {
    required_env("AWS_ENDPOINT_URL_SSM");
    accounts::aws::sdk_config_from_process_environment().expect("the SDK settings")
}

async fn put(ssm: &aws_sdk_ssm::Client, name: &str, kind: ParameterType, value: &str) {
    ssm.put_parameter()
        .name(name)
        .r#type(kind)
        .value(value)
        .overwrite(true)
        .send()
        .await
        .unwrap_or_else(|e| panic!("put {name}: {e:?}"));
}

#[tokio::test]
async fn the_keys_come_from_ssm_securestrings_and_the_public_keys_from_a_string() {
    let sdk = sdk();
    let ssm = aws_sdk_ssm::Client::new(&sdk);
    let stage = format!("/accounts/test-{}", uuid::Uuid::new_v4().simple());
    let signing =
        "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIGk=\n-----END PRIVATE KEY-----\n";
    let public = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA=\n-----END PUBLIC KEY-----\n";
    let totp = "q83vEjRWeJq83vEjRWeJq83vEjRWeJq83vEjRWeJq80=";
    put(
        &ssm,
        &format!("{stage}/jwt-signing-key"),
        ParameterType::SecureString,
        signing,
    )
    .await;
    put(
        &ssm,
        &format!("{stage}/jwt-verification-keys"),
        ParameterType::String,
        public,
    )
    .await;
    put(
        &ssm,
        &format!("{stage}/totp-encryption-key"),
        ParameterType::SecureString,
        totp,
    )
    .await;

    let names = stage.clone();
    let secrets = secrets_from_ssm(&sdk, move |variable| match variable {
        "JWT_SIGNING_KEY_PARAMETER" => Some(format!("{names}/jwt-signing-key")),
        "JWT_VERIFICATION_KEYS_PARAMETER" => Some(format!("{names}/jwt-verification-keys")),
        "TOTP_ENCRYPTION_KEY_PARAMETER" => Some(format!("{names}/totp-encryption-key")),
        // A rotation's previous keys are not configured: they are not asked for.
        _ => None,
    })
    .await
    .expect("the keys");

    assert_eq!(secrets.len(), 3, "{:?}", secrets.keys());
    assert_eq!(secrets["JWT_SIGNING_KEY"], signing);
    assert_eq!(secrets["JWT_VERIFICATION_KEYS"], public);
    assert_eq!(secrets["TOTP_ENCRYPTION_KEY"], totp);
}

#[tokio::test]
async fn a_parameter_that_does_not_exist_is_named_and_stops_the_cold_start() {
    let sdk = sdk();
    let missing = format!(
        "/accounts/test-{}/jwt-signing-key",
        uuid::Uuid::new_v4().simple()
    );
    let wanted = missing.clone();
    let result = secrets_from_ssm(&sdk, move |variable| {
        (variable == "JWT_SIGNING_KEY_PARAMETER").then(|| wanted.clone())
    })
    .await;
    let error = format!(
        "{:#}",
        result.expect_err("a missing key stops the cold start")
    );
    assert!(error.contains(&missing), "{error}");
}

#[tokio::test]
async fn a_function_that_needs_no_keys_makes_no_ssm_call() {
    // No endpoint at all: a call would fail.
    let sdk = aws_types::SdkConfig::builder()
        .behavior_version(aws_sdk_ssm::config::BehaviorVersion::latest())
        .build();
    let secrets = secrets_from_ssm(&sdk, |_| None)
        .await
        .expect("nothing to read");
    assert!(secrets.is_empty());
}
