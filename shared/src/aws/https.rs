//! The HTTP client under every AWS SDK client: HTTP/1.1 over rustls on aws-lc, offering
//! only the TLS algorithms the AWS endpoints negotiate and trusting only Amazon's roots.
//!
//! It replaces the SDKs' `default-https-client`, which links an HTTP/2 stack and rustls's
//! whole aws-lc provider (ChaCha20, P-384 and P-521 key exchange, Ed25519, P-521 and ML-DSA
//! certificate signatures, client-certificate keys of every type) into each function,
//! though DynamoDB, SES and SSM answer over HTTP/1.1 with AES-GCM and certificates from
//! Amazon Trust Services (RSA and ECDSA P-256/P-384). What the SDK asks of its connector
//! is kept: the connect and read timeouts it configures, errors classified so that its
//! retry policy retries what is transient, and connections it can poison after a failure.
//! Plain `http://` endpoints (DynamoDB Local, the SES emulator) work too.

use std::error::Error as StdError;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use aws_smithy_runtime_api::client::connection::{CaptureSmithyConnection, ConnectionMetadata};
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::retry::ErrorKind;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::{CaptureConnection, HttpConnector as TcpConnector};
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls::crypto::aws_lc_rs::{cipher_suite, kx_group};
use rustls::crypto::{
    CryptoProvider, GetRandomFailed, KeyProvider, SecureRandom, WebPkiSupportedAlgorithms,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::SigningKey;
use rustls::{ClientConfig, RootCertStore, SignatureScheme};
use webpki::aws_lc_rs as algorithm;

/// The roots of Amazon Trust Services, which issue the certificates of the AWS endpoints
/// the functions call (DynamoDB, SES, SSM).
pub const AWS_TRUST_ROOTS: &str = include_str!("../../certs/amazon-trust-services.pem");

/// The client the SDK clients share. Parsing the roots here, once per cold start, and not
/// the system store (every root of the CA bundle and of the certificate directory) was
/// most of a function's start-up time beyond a hello-world function's (bench/REPORT.md).
pub fn https_client() -> anyhow::Result<SharedHttpClient> {
    https_client_trusting(AWS_TRUST_ROOTS)
}

/// An [`https_client`] that trusts the roots in `roots_pem` instead (tests use their own).
pub fn https_client_trusting(roots_pem: &str) -> anyhow::Result<SharedHttpClient> {
    Ok(SharedHttpClient::new(AwsHttpClient {
        tls: tls_config(roots_pem)?,
        connectors: Mutex::new(Vec::new()),
    }))
}

/// The TLS settings: TLS 1.3 or 1.2, AES-GCM, X25519 with ML-KEM-768 (post-quantum, which
/// AWS endpoints offer), X25519 or P-256, and no client certificate.
pub fn tls_config(roots_pem: &str) -> anyhow::Result<ClientConfig> {
    let mut roots = RootCertStore::empty();
    for certificate in CertificateDer::pem_slice_iter(roots_pem.as_bytes()) {
        roots
            .add(certificate.context("a root certificate is not valid PEM")?)
            .context("a root certificate was refused")?;
    }
    anyhow::ensure!(!roots.is_empty(), "no root certificate to trust");
    let provider = CryptoProvider {
        cipher_suites: vec![
            cipher_suite::TLS13_AES_128_GCM_SHA256,
            cipher_suite::TLS13_AES_256_GCM_SHA384,
            cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
            cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
            cipher_suite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
            cipher_suite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        ],
        kx_groups: vec![
            kx_group::X25519MLKEM768,
            kx_group::X25519,
            kx_group::SECP256R1,
        ],
        signature_verification_algorithms: AMAZON_SIGNATURES,
        secure_random: &OsRandom,
        key_provider: &NoClientCertificate,
    };
    Ok(ClientConfig::builder_with_provider(Arc::new(provider))
        .with_safe_default_protocol_versions()
        .context("the TLS versions of the AWS client")?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// The signatures of Amazon Trust Services' chains (RSA 2048 and ECDSA P-256/P-384 keys)
/// and of the handshakes of servers holding them.
static AMAZON_SIGNATURES: WebPkiSupportedAlgorithms = WebPkiSupportedAlgorithms {
    all: &[
        algorithm::ECDSA_P256_SHA256,
        algorithm::ECDSA_P256_SHA384,
        algorithm::ECDSA_P384_SHA256,
        algorithm::ECDSA_P384_SHA384,
        algorithm::RSA_PSS_2048_8192_SHA256_LEGACY_KEY,
        algorithm::RSA_PSS_2048_8192_SHA384_LEGACY_KEY,
        algorithm::RSA_PSS_2048_8192_SHA512_LEGACY_KEY,
        algorithm::RSA_PKCS1_2048_8192_SHA256,
        algorithm::RSA_PKCS1_2048_8192_SHA384,
        algorithm::RSA_PKCS1_2048_8192_SHA512,
        algorithm::RSA_PKCS1_2048_8192_SHA256_ABSENT_PARAMS,
        algorithm::RSA_PKCS1_2048_8192_SHA384_ABSENT_PARAMS,
        algorithm::RSA_PKCS1_2048_8192_SHA512_ABSENT_PARAMS,
    ],
    // TLS 1.2 does not tie an ECDSA scheme to a curve; TLS 1.3 does.
    mapping: &[
        (
            SignatureScheme::ECDSA_NISTP384_SHA384,
            &[algorithm::ECDSA_P384_SHA384, algorithm::ECDSA_P256_SHA384],
        ),
        (
            SignatureScheme::ECDSA_NISTP256_SHA256,
            &[algorithm::ECDSA_P256_SHA256, algorithm::ECDSA_P384_SHA256],
        ),
        (
            SignatureScheme::RSA_PSS_SHA512,
            &[algorithm::RSA_PSS_2048_8192_SHA512_LEGACY_KEY],
        ),
        (
            SignatureScheme::RSA_PSS_SHA384,
            &[algorithm::RSA_PSS_2048_8192_SHA384_LEGACY_KEY],
        ),
        (
            SignatureScheme::RSA_PSS_SHA256,
            &[algorithm::RSA_PSS_2048_8192_SHA256_LEGACY_KEY],
        ),
        (
            SignatureScheme::RSA_PKCS1_SHA512,
            &[algorithm::RSA_PKCS1_2048_8192_SHA512],
        ),
        (
            SignatureScheme::RSA_PKCS1_SHA384,
            &[algorithm::RSA_PKCS1_2048_8192_SHA384],
        ),
        (
            SignatureScheme::RSA_PKCS1_SHA256,
            &[algorithm::RSA_PKCS1_2048_8192_SHA256],
        ),
    ],
};

/// Handshake randomness from the OS, through aws-lc.
#[derive(Debug)]
struct OsRandom;

impl SecureRandom for OsRandom {
    fn fill(&self, buf: &mut [u8]) -> Result<(), GetRandomFailed> {
        aws_lc_rs::rand::fill(buf).map_err(|_| GetRandomFailed)
    }
}

/// The AWS clients authenticate by signing requests, never with a client certificate; with
/// no key types to load, none of their parsers is linked.
#[derive(Debug)]
struct NoClientCertificate;

impl KeyProvider for NoClientCertificate {
    fn load_private_key(
        &self,
        _key: PrivateKeyDer<'static>,
    ) -> Result<Arc<dyn SigningKey>, rustls::Error> {
        Err(rustls::Error::General(
            "the AWS clients present no client certificate".to_owned(),
        ))
    }
}

/// The connect and read timeouts a connector applies (the SDK's timeout configuration).
type Timeouts = (Option<Duration>, Option<Duration>);

#[derive(Debug)]
struct AwsHttpClient {
    tls: ClientConfig,
    /// One connector (and connection pool) per timeout setting; every client of a process
    /// uses the same setting, so this holds one entry.
    connectors: Mutex<Vec<(Timeouts, SharedHttpConnector)>>,
}

impl HttpClient for AwsHttpClient {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        let timeouts = (settings.connect_timeout(), settings.read_timeout());
        let mut connectors = self
            .connectors
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some((_, connector)) = connectors.iter().find(|(key, _)| *key == timeouts) {
            return connector.clone();
        }
        let connector = SharedHttpConnector::new(self.connector(timeouts));
        connectors.push((timeouts, connector.clone()));
        connector
    }
}

impl AwsHttpClient {
    fn connector(&self, (connect_timeout, read_timeout): Timeouts) -> PooledConnector {
        let mut tcp = TcpConnector::new();
        tcp.enforce_http(false);
        tcp.set_nodelay(true);
        tcp.set_connect_timeout(connect_timeout);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(self.tls.clone())
            .https_or_http()
            .enable_http1()
            .wrap_connector(tcp);
        PooledConnector {
            client: Client::builder(TokioExecutor::new())
                .pool_timer(TokioTimer::new())
                .build(https),
            read_timeout,
        }
    }
}

#[derive(Debug)]
struct PooledConnector {
    client: Client<HttpsConnector<TcpConnector>, SdkBody>,
    /// How long the response's head may take once the request is sent.
    read_timeout: Option<Duration>,
}

impl HttpConnector for PooledConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let mut request = match request.try_into_http1x() {
            Ok(request) => request,
            Err(error) => {
                return HttpConnectorFuture::ready(Err(ConnectorError::user(error.into())));
            }
        };
        let connection = hyper_util::client::legacy::connect::capture_connection(&mut request);
        if let Some(capture) = request.extensions().get::<CaptureSmithyConnection>() {
            capture.set_connection_retriever(move || poisonable(&connection));
        }
        let response = self.client.request(request);
        let read_timeout = self.read_timeout;
        HttpConnectorFuture::new(async move {
            let response = match read_timeout {
                None => response.await,
                Some(limit) => tokio::time::timeout(limit, response)
                    .await
                    .map_err(|elapsed| ConnectorError::timeout(elapsed.into()))?,
            }
            .map_err(classify)?;
            HttpResponse::try_from(response.map(SdkBody::from_body_1_x))
                .map_err(|error| ConnectorError::other(error.into(), None))
        })
    }
}

/// The connection a request went out on, for the SDK to poison (never reuse) when the call
/// failed in a way that leaves the connection suspect.
fn poisonable(connection: &CaptureConnection) -> Option<ConnectionMetadata> {
    connection.connection_metadata().as_ref()?;
    let connection = connection.clone();
    Some(
        ConnectionMetadata::builder()
            .proxied(false)
            .poison_fn(move || {
                if let Some(connected) = connection.connection_metadata().as_ref() {
                    connected.poison();
                }
            })
            .build(),
    )
}

/// Sorts a failed call the way the SDK's retry policy reads it: timeouts and I/O failures
/// (refused or reset connections, a closed pooled connection) are retried, a response cut
/// short is transient, and a request the client could not send is the caller's.
fn classify(error: hyper_util::client::legacy::Error) -> ConnectorError {
    let timed_out = chain(&error).any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
            || cause
                .downcast_ref::<hyper::Error>()
                .is_some_and(hyper::Error::is_timeout)
    });
    let hyper_error = chain(&error).find_map(|cause| cause.downcast_ref::<hyper::Error>());
    let io = error.is_connect()
        || chain(&error).any(|cause| cause.is::<std::io::Error>())
        || hyper_error.is_some_and(|e| e.is_closed() || e.is_canceled());
    let incomplete = hyper_error.is_some_and(hyper::Error::is_incomplete_message);
    let user = hyper_error.is_some_and(hyper::Error::is_user);
    let error: Box<dyn StdError + Send + Sync> = error.into();
    if timed_out {
        ConnectorError::timeout(error)
    } else if io {
        ConnectorError::io(error)
    } else if incomplete {
        ConnectorError::other(error, Some(ErrorKind::TransientError))
    } else if user {
        ConnectorError::user(error)
    } else {
        ConnectorError::other(error, None)
    }
}

/// `error` and its causes. An `io::Error`'s cause is its payload (`get_ref`): its
/// `source()` skips the payload and goes to the payload's own cause.
fn chain<'a>(
    error: &'a (dyn StdError + 'static),
) -> impl Iterator<Item = &'a (dyn StdError + 'static)> {
    std::iter::successors(Some(error), |&error| {
        match error.downcast_ref::<std::io::Error>() {
            Some(io) => io.get_ref().map(|inner| inner as &(dyn StdError + 'static)),
            None => error.source(),
        }
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpListener;

    use aws_credential_types::Credentials;
    use aws_sdk_dynamodb::config::retry::RetryConfig;
    use aws_sdk_dynamodb::config::timeout::TimeoutConfig;
    use aws_sdk_dynamodb::error::SdkError;
    use aws_sdk_dynamodb::types::AttributeValue;
    use aws_smithy_runtime_api::client::behavior_version::BehaviorVersion;
    use aws_types::region::Region;
    use rustls::version::{TLS12, TLS13};
    use rustls::{ServerConfig, ServerConnection, StreamOwned, SupportedProtocolVersion};

    use super::*;

    /// A CA and a certificate it issued for `localhost` (RSA-signed ECDSA P-256 key, valid
    /// until 2126), for these tests only; see certs/README.md.
    const TEST_CA: &str = include_str!("../../certs/test/ca.pem");
    const TEST_LOCALHOST: &str = include_str!("../../certs/test/localhost.pem");
    const TEST_LOCALHOST_KEY: &str = include_str!("../../certs/test/localhost.key.pem");

    /// What a test server saw of the one call it answered.
    #[derive(Debug)]
    struct Served {
        version: Option<rustls::ProtocolVersion>,
        cipher_suite: Option<rustls::CipherSuite>,
        request_line: String,
    }

    /// A TLS server on 127.0.0.1 holding the `localhost` certificate, speaking `versions`,
    /// that answers one request as DynamoDB answers a GetItem of a missing item.
    fn tls_server(
        versions: &[&'static SupportedProtocolVersion],
    ) -> (u16, std::thread::JoinHandle<Served>) {
        let chain = CertificateDer::pem_slice_iter(TEST_LOCALHOST.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_slice(TEST_LOCALHOST_KEY.as_bytes()).unwrap();
        let config = ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_protocol_versions(versions)
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let (tcp, _) = listener.accept().unwrap();
            let connection = ServerConnection::new(Arc::new(config)).unwrap();
            let mut tls = StreamOwned::new(connection, tcp);
            let request_line = read_request(&mut tls);
            tls.write_all(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/x-amz-json-1.0\r\n\
                  content-length: 2\r\nx-amzn-requestid: test\r\n\r\n{}",
            )
            .unwrap();
            tls.flush().unwrap();
            Served {
                version: tls.conn.protocol_version(),
                cipher_suite: tls.conn.negotiated_cipher_suite().map(|s| s.suite()),
                request_line,
            }
        });
        (port, server)
    }

    /// Reads one HTTP/1.1 request (head and `content-length` body); returns its first line.
    fn read_request(stream: &mut impl Read) -> String {
        let mut reader = BufReader::new(stream);
        let mut request_line = String::new();
        reader.read_line(&mut request_line).unwrap();
        let mut body_length = 0;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if line.trim().is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                body_length = value.trim().parse().unwrap();
            }
        }
        let mut body = vec![0; body_length];
        reader.read_exact(&mut body).unwrap();
        request_line.trim_end().to_owned()
    }

    fn dynamodb(
        http: SharedHttpClient,
        endpoint: &str,
        read_timeout: Option<Duration>,
    ) -> aws_sdk_dynamodb::Client {
        let mut timeouts = TimeoutConfig::builder();
        if let Some(limit) = read_timeout {
            timeouts = timeouts.read_timeout(limit);
        }
        let config = aws_sdk_dynamodb::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("eu-west-1"))
            .credentials_provider(Credentials::new("AKIDTEST", "secret", None, None, "test"))
            .endpoint_url(endpoint)
            .http_client(http)
            .retry_config(RetryConfig::disabled())
            .timeout_config(timeouts.build())
            .build();
        aws_sdk_dynamodb::Client::from_conf(config)
    }

    async fn get_item(
        client: &aws_sdk_dynamodb::Client,
    ) -> Result<
        aws_sdk_dynamodb::operation::get_item::GetItemOutput,
        SdkError<aws_sdk_dynamodb::operation::get_item::GetItemError>,
    > {
        client
            .get_item()
            .table_name("accounts")
            .key("pk", AttributeValue::S("USER#1".to_owned()))
            .send()
            .await
    }

    #[tokio::test]
    async fn a_call_goes_over_tls_1_3_with_aes_gcm_to_a_server_the_roots_vouch_for() {
        let (port, server) = tls_server(&[&TLS13]);
        let client = dynamodb(
            https_client_trusting(TEST_CA).unwrap(),
            &format!("https://localhost:{port}"),
            None,
        );
        let output = get_item(&client).await.unwrap();
        assert!(output.item.is_none());
        let served = server.join().unwrap();
        assert_eq!(served.request_line, "POST / HTTP/1.1");
        assert_eq!(served.version, Some(rustls::ProtocolVersion::TLSv1_3));
        assert_eq!(
            served.cipher_suite,
            Some(rustls::CipherSuite::TLS13_AES_128_GCM_SHA256)
        );
    }

    #[tokio::test]
    async fn a_server_that_speaks_only_tls_1_2_is_reached_with_ecdhe_and_aes_gcm() {
        let (port, server) = tls_server(&[&TLS12]);
        let client = dynamodb(
            https_client_trusting(TEST_CA).unwrap(),
            &format!("https://localhost:{port}"),
            None,
        );
        get_item(&client).await.unwrap();
        let served = server.join().unwrap();
        assert_eq!(served.version, Some(rustls::ProtocolVersion::TLSv1_2));
        assert_eq!(
            served.cipher_suite,
            Some(rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256)
        );
    }

    #[tokio::test]
    async fn a_certificate_no_amazon_root_issued_is_refused() {
        assert!(AWS_TRUST_ROOTS.matches("BEGIN CERTIFICATE").count() >= 5);
        let (port, _server) = tls_server(&[&TLS13]);
        let client = dynamodb(
            https_client().unwrap(),
            &format!("https://localhost:{port}"),
            None,
        );
        let error = get_item(&client).await.unwrap_err();
        let SdkError::DispatchFailure(failure) = &error else {
            panic!("expected a dispatch failure, got {error:?}");
        };
        assert!(!failure.is_timeout(), "{failure:?}");
        assert!(
            format!("{failure:?}").contains("UnknownIssuer"),
            "{failure:?}"
        );
    }

    #[tokio::test]
    async fn a_response_slower_than_the_read_timeout_fails_as_a_timeout() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        // Accepts and reads, never answers; the connection stays open until the test ends.
        let _server = std::thread::spawn(move || {
            let (mut tcp, _) = listener.accept().unwrap();
            read_request(&mut tcp);
            std::thread::sleep(Duration::from_secs(5));
        });
        let client = dynamodb(
            https_client().unwrap(),
            &format!("http://127.0.0.1:{port}"),
            Some(Duration::from_millis(200)),
        );
        let error = get_item(&client).await.unwrap_err();
        let SdkError::DispatchFailure(failure) = &error else {
            panic!("expected a dispatch failure, got {error:?}");
        };
        assert!(failure.is_timeout(), "{failure:?}");
    }

    #[tokio::test]
    async fn a_refused_connection_fails_as_io_which_the_sdk_retries() {
        let port = {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let client = dynamodb(
            https_client().unwrap(),
            &format!("http://127.0.0.1:{port}"),
            None,
        );
        let error = get_item(&client).await.unwrap_err();
        let SdkError::DispatchFailure(failure) = &error else {
            panic!("expected a dispatch failure, got {error:?}");
        };
        assert!(failure.is_io(), "{failure:?}");
    }

    #[test]
    fn roots_that_are_not_certificates_are_refused() {
        assert!(https_client_trusting("").is_err());
        assert!(
            https_client_trusting("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
                .is_err()
        );
    }
}
