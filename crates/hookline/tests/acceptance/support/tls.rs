//! Certificates made by the test (rcgen, ring) for TLS receivers: a CA of its own, and server
//! certificates it signs, valid, expired or for another name. The server under test trusts the
//! CA only through `hookline serve --test-extra-root-ca <file>` (see [`TestCa::trust_args`]).

use std::path::PathBuf;
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use super::crypto::base64_encode;

/// A certificate authority made for one test, with its certificate in a PEM file.
pub struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    der: CertificateDer<'static>,
    dir: tempfile::TempDir,
}

/// How a server certificate is wrong (or not).
#[derive(Clone, Copy, Debug)]
pub enum Leaf {
    /// For 127.0.0.1 and localhost, valid now.
    Valid,
    /// For 127.0.0.1 and localhost, but its validity ended in 2021.
    Expired,
    /// Valid now, but for another host name only.
    OtherName,
}

impl TestCa {
    pub fn new(name: &str) -> TestCa {
        let key = KeyPair::generate().expect("CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params
            .distinguished_name
            .push(DnType::CommonName, format!("hookline test CA {name}"));
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = params.self_signed(&key).expect("self-sign the CA");
        let der = cert.der().clone();
        let dir = tempfile::Builder::new()
            .prefix("hookline-test-ca-")
            .tempdir()
            .expect("temp dir for the CA");
        std::fs::write(dir.path().join("ca.pem"), pem("CERTIFICATE", &der)).expect("write CA");
        TestCa {
            issuer: Issuer::new(params, key),
            der,
            dir,
        }
    }

    /// The CA certificate's PEM file.
    pub fn pem_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// `hookline serve` flags that make the server trust this CA.
    pub fn trust_args(&self) -> [String; 2] {
        [
            "--test-extra-root-ca".to_string(),
            self.pem_file().display().to_string(),
        ]
    }

    /// A rustls server configuration presenting a certificate of kind `leaf` signed by this CA.
    pub fn server_config(&self, leaf: Leaf) -> Arc<rustls::ServerConfig> {
        let names = match leaf {
            Leaf::Valid | Leaf::Expired => vec!["127.0.0.1".to_string(), "localhost".to_string()],
            Leaf::OtherName => vec!["elsewhere.example".to_string()],
        };
        let key = KeyPair::generate().expect("leaf key");
        let mut params = CertificateParams::new(names).expect("leaf params");
        params
            .distinguished_name
            .push(DnType::CommonName, "hookline test receiver");
        if let Leaf::Expired = leaf {
            params.not_before = rcgen::date_time_ymd(2020, 1, 1);
            params.not_after = rcgen::date_time_ymd(2021, 1, 1);
        }
        let cert = params.signed_by(&key, &self.issuer).expect("sign the leaf");
        let chain = vec![cert.der().clone(), self.der.clone()];
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .expect("server certificate");
        Arc::new(config)
    }
}

/// DER as PEM (what `--test-extra-root-ca` reads).
fn pem(label: &str, der: &[u8]) -> String {
    let b64 = base64_encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}
