//! TLS to PostgreSQL: libpq's `sslmode` and `sslrootcert`, read from the database URL, over the
//! rustls stack the rest of hookline uses (ring provider, webpki roots), so there is one TLS
//! stack in the binary.
//!
//! tokio-postgres knows `sslmode` `disable`, `prefer` and `require` only, and no `sslrootcert`:
//! [`split_url`] takes both out of the URL, tells tokio-postgres whether to ask for TLS
//! (`verify-ca` and `verify-full` ask like `require`), and [`MakeRustls`] decides what the
//! handshake verifies, as libpq does:
//!
//! | sslmode | TLS | chain checked | host name checked |
//! | --- | --- | --- | --- |
//! | `disable` | never | | |
//! | `prefer` (the default) | if the server offers it | no | no |
//! | `require` | always | no (yes with `sslrootcert`, like libpq) | no |
//! | `verify-ca` | always | yes | no |
//! | `verify-full` | always | yes | yes |
//!
//! The trust roots are the PEM file `sslrootcert` names, or without it (or with
//! `sslrootcert=system`) the Mozilla roots compiled into the binary (webpki-roots).
//!
//! A failed handshake's error says which check failed (the server has no TLS, the certificate's
//! CA is not trusted, the certificate does not name the host), since "error performing TLS
//! handshake" alone sends an operator guessing. Nothing here ever holds the password: only the
//! two TLS parameters are read out of the URL.

use std::fmt;
use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::Socket;
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect};

use crate::store::{StoreError, StoreResult};

/// libpq's `sslmode` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    fn parse(value: &str) -> StoreResult<SslMode> {
        Ok(match value {
            "disable" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            // `allow` (plaintext first, TLS if refused) is not offered: it only ever helps a
            // server that refuses plaintext, which `prefer` reaches too.
            other => {
                return Err(StoreError::Unavailable(format!(
                    "database url: sslmode={other} is not one of disable, prefer, require, \
                     verify-ca, verify-full"
                )));
            }
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

/// The TLS parameters of a database URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsOptions {
    pub mode: SslMode,
    /// `sslrootcert`: a PEM file of CA certificates; `None` for the compiled-in Mozilla roots.
    pub root_cert: Option<PathBuf>,
}

impl Default for TlsOptions {
    /// libpq's default: TLS when the server offers it, unverified.
    fn default() -> Self {
        TlsOptions {
            mode: SslMode::Prefer,
            root_cert: None,
        }
    }
}

impl TlsOptions {
    /// What the handshake checks. libpq treats `require` with an `sslrootcert` as `verify-ca`.
    fn verify(&self) -> Verify {
        match self.mode {
            SslMode::Disable | SslMode::Prefer => Verify::Nothing,
            SslMode::Require if self.root_cert.is_none() => Verify::Nothing,
            SslMode::Require | SslMode::VerifyCa => Verify::Chain,
            SslMode::VerifyFull => Verify::ChainAndName,
        }
    }

    /// The mode tokio-postgres negotiates with: it asks for TLS (`require`) for every mode that
    /// must not fall back to plaintext.
    pub(super) fn driver_mode(&self) -> tokio_postgres::config::SslMode {
        use tokio_postgres::config::SslMode as Driver;
        match self.mode {
            SslMode::Disable => Driver::Disable,
            SslMode::Prefer => Driver::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => Driver::Require,
        }
    }

    /// Where the trust roots come from, for error messages.
    fn roots_name(&self) -> String {
        match &self.root_cert {
            Some(path) => format!("sslrootcert={}", path.display()),
            None => "the built-in Mozilla roots (no sslrootcert)".into(),
        }
    }
}

/// `url` without `sslmode` and `sslrootcert` in its query string, and those two parsed. Other
/// parameters stay for tokio-postgres to read. Only the URL form (`postgres://...?...`) is read;
/// a key-value connection string goes through unchanged.
pub fn split_url(url: &str) -> StoreResult<(String, TlsOptions)> {
    let mut options = TlsOptions::default();
    let Some((base, query)) = url.split_once('?') else {
        return Ok((url.to_owned(), options));
    };
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Ok((url.to_owned(), options));
    }
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "sslmode" => options.mode = SslMode::parse(&percent_decode(value)?)?,
            "sslrootcert" => {
                let value = percent_decode(value)?;
                // libpq's `system`: the platform's roots, which here are the compiled-in ones.
                options.root_cert = (value != "system").then(|| PathBuf::from(value));
            }
            _ => kept.push(pair),
        }
    }
    let rest = if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    Ok((rest, options))
}

fn percent_decode(value: &str) -> StoreResult<String> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = value
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| {
                    StoreError::Unavailable(
                        "database url: a bad %-escape in an ssl parameter".into(),
                    )
                })?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out)
        .map_err(|_| StoreError::Unavailable("database url: an ssl parameter is not UTF-8".into()))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verify {
    Nothing,
    Chain,
    ChainAndName,
}

/// tokio-postgres's TLS connector over tokio-rustls, verifying as [`TlsOptions`] says.
#[derive(Clone)]
pub struct MakeRustls {
    config: Arc<ClientConfig>,
    /// Kept for the wording of handshake errors.
    options: Arc<TlsOptions>,
}

impl MakeRustls {
    /// Reads the `sslrootcert` file (once, here: a missing file fails at start, not at the
    /// first connection) and builds the client config.
    pub fn new(options: &TlsOptions) -> StoreResult<MakeRustls> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verify = options.verify();
        let chain = match verify {
            Verify::Nothing => None,
            Verify::Chain | Verify::ChainAndName => {
                let roots = Arc::new(root_store(options)?);
                let verifier = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
                    .build()
                    .map_err(|e| StoreError::Unavailable(format!("postgres tls: {e}")))?;
                Some(verifier)
            }
        };
        let verifier = Arc::new(Verifier {
            verify,
            chain,
            algorithms: provider.signature_verification_algorithms,
        });
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| StoreError::Unavailable(format!("postgres tls: {e}")))?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        Ok(MakeRustls {
            config: Arc::new(config),
            options: Arc::new(options.clone()),
        })
    }
}

fn root_store(options: &TlsOptions) -> StoreResult<RootCertStore> {
    let Some(path) = &options.root_cert else {
        return Ok(RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        });
    };
    let unreadable = |e: &dyn fmt::Display| {
        StoreError::Unavailable(format!(
            "database url: sslrootcert={}: cannot read it as PEM certificates: {e}",
            path.display()
        ))
    };
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(path).map_err(|e| unreadable(&e))? {
        let cert = cert.map_err(|e| unreadable(&e))?;
        roots.add(cert).map_err(|e| unreadable(&e))?;
    }
    if roots.is_empty() {
        return Err(unreadable(&"no certificate in the file"));
    }
    Ok(roots)
}

/// Checks the server's certificate as far as the mode asks; the handshake's own signatures are
/// always checked (with the provider's algorithms), so even `require` talks to the holder of
/// the certificate's key.
#[derive(Debug)]
struct Verifier {
    verify: Verify,
    chain: Option<Arc<WebPkiServerVerifier>>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(chain) = &self.chain else {
            return Ok(ServerCertVerified::assertion());
        };
        let checked =
            chain.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now);
        match (self.verify, checked) {
            // webpki checks the name last, after the chain: a name error means the chain held.
            (
                Verify::Chain,
                Err(rustls::Error::InvalidCertificate(
                    CertificateError::NotValidForName
                    | CertificateError::NotValidForNameContext { .. },
                )),
            ) => Ok(ServerCertVerified::assertion()),
            (_, checked) => checked,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

impl MakeTlsConnect<Socket> for MakeRustls {
    type Stream = RustlsStream;
    type TlsConnect = RustlsConnect;
    type Error = TlsError;

    fn make_tls_connect(&mut self, domain: &str) -> Result<RustlsConnect, TlsError> {
        let name = ServerName::try_from(domain.to_owned()).map_err(|_| TlsError {
            message: format!("the host {domain:?} is not a name or address TLS can check"),
        })?;
        Ok(RustlsConnect {
            connector: tokio_rustls::TlsConnector::from(self.config.clone()),
            name,
            options: self.options.clone(),
        })
    }
}

pub struct RustlsConnect {
    connector: tokio_rustls::TlsConnector,
    name: ServerName<'static>,
    options: Arc<TlsOptions>,
}

impl TlsConnect<Socket> for RustlsConnect {
    type Stream = RustlsStream;
    type Error = TlsError;
    type Future = Pin<Box<dyn Future<Output = Result<RustlsStream, TlsError>> + Send>>;

    fn connect(self, stream: Socket) -> Self::Future {
        Box::pin(async move {
            let host = match &self.name {
                ServerName::DnsName(name) => name.as_ref().to_owned(),
                ServerName::IpAddress(ip) => std::net::IpAddr::from(*ip).to_string(),
                _ => "the server".to_owned(),
            };
            match self.connector.connect(self.name, stream).await {
                Ok(stream) => Ok(RustlsStream(stream)),
                Err(e) => Err(TlsError {
                    message: describe_handshake_error(&e, &host, &self.options),
                }),
            }
        })
    }
}

/// What failed, in the operator's terms.
fn describe_handshake_error(e: &io::Error, host: &str, options: &TlsOptions) -> String {
    let mode = options.mode.as_str();
    let Some(tls) = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    else {
        return format!("the TLS handshake with {host} failed (sslmode={mode}): {e}");
    };
    match tls {
        rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer) => format!(
            "the server's certificate is not signed by a trusted CA (sslmode={mode}, trusting {})",
            options.roots_name()
        ),
        rustls::Error::InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
        ) => format!(
            "the server's certificate is not valid for the host name {host} (sslmode={mode} \
             checks it; connect by a name the certificate lists): {tls}"
        ),
        rustls::Error::InvalidCertificate(_) => {
            format!("the server's certificate was refused (sslmode={mode}): {tls}")
        }
        other => format!("the TLS handshake with {host} failed (sslmode={mode}): {other}"),
    }
}

/// A failed TLS handshake, worded by [`describe_handshake_error`].
#[derive(Debug)]
pub struct TlsError {
    message: String,
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for TlsError {}

/// A TLS connection to the server.
pub struct RustlsStream(tokio_rustls::client::TlsStream<Socket>);

impl tokio_postgres::tls::TlsStream for RustlsStream {
    /// No channel binding: SCRAM without `-PLUS`, which every server accepts unless the URL says
    /// `channel_binding=require`. (Computing `tls-server-end-point` needs the certificate's
    /// signature hash, i.e. an X.509 parser this crate does not otherwise need.)
    fn channel_binding(&self) -> ChannelBinding {
        ChannelBinding::none()
    }
}

impl AsyncRead for RustlsStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for RustlsStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_url_takes_out_the_tls_parameters_and_keeps_the_others() {
        let (rest, options) = split_url(
            "postgres://u:pw@db.example:5432/hl?sslmode=verify-full&connect_timeout=3&sslrootcert=%2Fetc%2Fca.pem",
        )
        .unwrap();
        assert_eq!(rest, "postgres://u:pw@db.example:5432/hl?connect_timeout=3");
        assert_eq!(options.mode, SslMode::VerifyFull);
        assert_eq!(options.root_cert, Some(PathBuf::from("/etc/ca.pem")));
        assert_eq!(options.verify(), Verify::ChainAndName);

        let (rest, options) = split_url("postgres://u@h/db").unwrap();
        assert_eq!(rest, "postgres://u@h/db");
        assert_eq!(options, TlsOptions::default());

        let (rest, options) = split_url("postgres://u@h/db?sslmode=require").unwrap();
        assert_eq!(rest, "postgres://u@h/db");
        assert_eq!(options.verify(), Verify::Nothing);
    }

    #[test]
    fn require_with_a_root_cert_verifies_the_chain_like_libpq() {
        let (_, options) =
            split_url("postgres://h/db?sslmode=require&sslrootcert=/ca.pem").unwrap();
        assert_eq!(options.verify(), Verify::Chain);
        let (_, options) =
            split_url("postgres://h/db?sslmode=verify-ca&sslrootcert=system").unwrap();
        assert_eq!(options.root_cert, None);
        assert_eq!(options.verify(), Verify::Chain);
    }

    #[test]
    fn an_unknown_sslmode_is_refused_without_echoing_the_url() {
        let err = split_url("postgres://u:hunter2@h/db?sslmode=allow")
            .unwrap_err()
            .to_string();
        assert!(err.contains("sslmode=allow"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn a_missing_root_cert_file_fails_at_once_naming_it() {
        let (_, options) =
            split_url("postgres://h/db?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem")
                .unwrap();
        let err = MakeRustls::new(&options).err().unwrap().to_string();
        assert!(err.contains("/nonexistent/ca.pem"), "{err}");
    }

    // ---- against the test cluster (`scripts/pg.sh`: TLS with its own CA, `hostssl` only) ----

    use crate::store::postgres::connection::{DbConfig, connect, parse_url};
    use crate::store::postgres::{NodeOptions, PostgresStore};

    /// A password in every URL below: the cluster trusts without one, and none of the errors
    /// may show it.
    const PASSWORD: &str = "pw-must-not-leak-7f3a";

    /// `(host:port, the CA file)` of the test cluster, from `HOOKLINE_TEST_DATABASE_URL`.
    fn cluster() -> (String, PathBuf) {
        let url = std::env::var("HOOKLINE_TEST_DATABASE_URL").unwrap_or_else(|_| {
            panic!("HOOKLINE_TEST_DATABASE_URL is not set: run ./scripts/test.sh or scripts/pg.sh start")
        });
        let (rest, options) = split_url(&url).unwrap();
        let ca = options.root_cert.unwrap_or_else(|| {
            panic!("HOOKLINE_TEST_DATABASE_URL has no sslrootcert: start the cluster with scripts/pg.sh")
        });
        let authority = rest
            .split_once("://")
            .and_then(|(_, r)| r.split('/').next())
            .and_then(|a| a.rsplit_once('@').map(|(_, host)| host).or(Some(a)))
            .unwrap()
            .to_owned();
        (authority, ca)
    }

    fn url(authority: &str, query: &str) -> String {
        format!("postgres://postgres:{PASSWORD}@{authority}/postgres?{query}")
    }

    /// The error of connecting to `url`, checked not to show the password.
    async fn refused(url: &str) -> String {
        let config: DbConfig = parse_url(url).unwrap();
        let err = match connect(&config).await {
            Ok(_) => panic!("the connection must fail: {url}"),
            Err(e) => e.to_string(),
        };
        assert!(!err.contains(PASSWORD), "the password leaked: {err}");
        err
    }

    async fn encrypted(url: &str) -> bool {
        let client = connect(&parse_url(url).unwrap()).await.unwrap();
        client
            .query_one(
                "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                &[],
            )
            .await
            .unwrap()
            .get(0)
    }

    #[tokio::test]
    async fn every_mode_that_may_use_tls_connects_encrypted_to_the_test_cluster() {
        let (authority, ca) = cluster();
        let ca = ca.display();
        for query in [
            format!("sslmode=verify-full&sslrootcert={ca}"),
            format!("sslmode=verify-ca&sslrootcert={ca}"),
            format!("sslmode=require&sslrootcert={ca}"),
            "sslmode=require".to_owned(),
            "sslmode=prefer".to_owned(),
            // no sslmode: libpq's default, prefer
            "connect_timeout=5".to_owned(),
        ] {
            assert!(encrypted(&url(&authority, &query)).await, "{query}");
        }
    }

    #[tokio::test]
    async fn a_certificate_of_another_ca_is_refused_naming_the_trusted_roots() {
        let (authority, _) = cluster();
        let dir = tempfile::tempdir().unwrap();
        let other = dir.path().join("other-ca.pem");
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let der = params.self_signed(&key).unwrap().der().to_vec();
        let pem = {
            use base64::Engine;
            let b64 = base64::engine::general_purpose::STANDARD.encode(der);
            let lines: Vec<&str> = b64
                .as_bytes()
                .chunks(64)
                .map(|c| std::str::from_utf8(c).unwrap())
                .collect();
            format!(
                "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
                lines.join("\n")
            )
        };
        std::fs::write(&other, pem).unwrap();
        for mode in ["verify-full", "verify-ca", "require"] {
            let err = refused(&url(
                &authority,
                &format!("sslmode={mode}&sslrootcert={}", other.display()),
            ))
            .await;
            assert!(err.contains("not signed by a trusted CA"), "{mode}: {err}");
            assert!(err.contains(&other.display().to_string()), "{mode}: {err}");
        }
        // The store's own path (its pools) words it the same way.
        let opened = PostgresStore::open(
            &url(
                &authority,
                &format!("sslmode=verify-full&sslrootcert={}", other.display()),
            ),
            NodeOptions::default(),
        )
        .await;
        let err = match opened {
            Ok(_) => panic!("the store must not open"),
            Err(e) => e.to_string(),
        };
        assert!(err.contains("not signed by a trusted CA"), "{err}");
        assert!(!err.contains(PASSWORD), "the password leaked: {err}");
    }

    #[tokio::test]
    async fn a_host_name_the_certificate_does_not_list_is_refused_by_verify_full_only() {
        let (authority, ca) = cluster();
        let port = authority.rsplit_once(':').unwrap().1;
        // The name is checked against the certificate, the address is where the server is.
        let wrong = format!("not-in-the-cert.invalid:{port}");
        let ca = ca.display();
        let err = refused(&url(
            &wrong,
            &format!("hostaddr=127.0.0.1&sslmode=verify-full&sslrootcert={ca}"),
        ))
        .await;
        assert!(
            err.contains("not valid for the host name not-in-the-cert.invalid"),
            "{err}"
        );
        assert!(
            encrypted(&url(
                &wrong,
                &format!("hostaddr=127.0.0.1&sslmode=verify-ca&sslrootcert={ca}")
            ))
            .await
        );
    }

    #[tokio::test]
    async fn a_server_without_tls_is_refused_when_the_mode_requires_it() {
        // A stub that answers PostgreSQL's SSLRequest with 'N' (no TLS here), as a server with
        // ssl=off does.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            while let Ok((mut socket, _)) = listener.accept().await {
                let mut request = [0u8; 8];
                if socket.read_exact(&mut request).await.is_ok() {
                    let _ = socket.write_all(b"N").await;
                }
            }
        });
        let (_, ca) = cluster();
        for mode in ["require", "verify-ca", "verify-full"] {
            let err = refused(&url(
                &format!("127.0.0.1:{port}"),
                &format!("sslmode={mode}&sslrootcert={}", ca.display()),
            ))
            .await;
            assert!(err.contains("server does not support TLS"), "{mode}: {err}");
            assert!(err.contains("requires TLS"), "{mode}: {err}");
        }
    }

    #[tokio::test]
    async fn plaintext_to_the_hostssl_only_cluster_is_refused_saying_what_to_set() {
        let (authority, _) = cluster();
        let err = refused(&url(&authority, "sslmode=disable")).await;
        assert!(err.contains("no encryption"), "{err}");
        assert!(err.contains("use sslmode=require"), "{err}");
    }
}
