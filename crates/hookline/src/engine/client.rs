//! The HTTP client that delivers envelopes (the request, its headers and signatures:
//! `docs/wire-format.md`).
//!
//! It reports what happened, raw: the status, the first bytes of the answer, a 429/503's
//! `Retry-After` header, or the error; what that means is the [`verdict`](super::verdict)'s to
//! say. One pooled keep-alive client (HTTP/1.1, rustls for https) shared by every config.
//! Redirects are never followed (the verdict counts a 3xx as a failure). The response body is
//! read only up to what the log records. The connector resolves the host itself and checks every address it is about to
//! connect to against the private-range guard, so a host name that resolves to 127.0.0.1 (or a
//! DNS answer that changes between check and use) cannot reach internal services.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper::Uri;
use hyper::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderValue, RETRY_AFTER, USER_AGENT};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::CertificateDer;
use tokio::net::TcpStream;

use crate::model::{AttemptErrorKind, AttemptResult, WebhookConfig, now_millis};

/// How much of a receiver's answer the log keeps.
pub const RESPONSE_BODY_LIMIT: usize = 1024;
pub const USER_AGENT_VALUE: &str = concat!("hookline/", env!("CARGO_PKG_VERSION"));
const CONTENT_TYPE_VALUE: &str = "application/json;charset=UTF-8";

/// Why the connector refused or failed to connect.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The message names neither the host nor the address it resolved to: a tenant must not
    /// learn what names resolve to inside the network (internal DNS) by testing URLs.
    #[error("the URL's host resolves only to blocked addresses")]
    Blocked { host: String, addr: IpAddr },
    #[error("cannot resolve {host}: {source}")]
    Dns {
        host: String,
        source: std::io::Error,
    },
    #[error("connect to {addr}: {source}")]
    Connect {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("url has no host")]
    NoHost,
}

/// True for addresses a webhook must not reach unless private targets are allowed: loopback,
/// private, link-local, shared, multicast, unspecified, broadcast, and IPv6 forms that embed them.
pub fn is_blocked_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_blocked_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_blocked_v4(v4);
            }
            let seg = v6.segments();
            // Translation ranges that only make sense inside a network: the local-use NAT64
            // prefix 64:ff9b:1::/48 (RFC 8215) and IPv4-translated addresses ::ffff:0:0/96
            // (RFC 2765). Whatever they embed, nothing public lives there.
            if (seg[0] == 0x64 && seg[1] == 0xff9b && seg[2] == 1)
                || seg[..6] == [0, 0, 0, 0, 0xffff, 0]
            {
                return true;
            }
            // NAT64 (64:ff9b::/96) and the deprecated IPv4-compatible form (::a.b.c.d) embed an
            // IPv4 address that the network may route to.
            if (seg[0] == 0x64 && seg[1] == 0xff9b && seg[2..6] == [0, 0, 0, 0])
                || (seg[..6] == [0, 0, 0, 0, 0, 0] && !v6.is_loopback() && !v6.is_unspecified())
            {
                let o = v6.octets();
                return is_blocked_v4(Ipv4Addr::new(o[12], o[13], o[14], o[15]));
            }
            // 6to4 (2002::/16) carries an IPv4 address in bits 16..48; Teredo (2001:0::/32)
            // carries its server's in bits 32..64 and the client's, inverted, in the last 32.
            if seg[0] == 0x2002 {
                let o = v6.octets();
                return is_blocked_v4(Ipv4Addr::new(o[2], o[3], o[4], o[5]));
            }
            if seg[0] == 0x2001 && seg[1] == 0 {
                let o = v6.octets();
                let server = Ipv4Addr::new(o[4], o[5], o[6], o[7]);
                let client = Ipv4Addr::new(!o[12], !o[13], !o[14], !o[15]);
                return is_blocked_v4(server) || is_blocked_v4(client);
            }
            is_blocked_v6(v6)
        }
    }
}

fn is_blocked_v4(ip: Ipv4Addr) -> bool {
    let o = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_multicast()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || o[0] == 0 // "this network"
        || (o[0] == 100 && (o[1] & 0xc0) == 64) // shared address space 100.64/10
        || (o[0] == 192 && o[1] == 0 && o[2] == 0) // IETF protocol assignments
        || (o[0] == 198 && (o[1] & 0xfe) == 18) // benchmarking 198.18/15
        || o[0] >= 240 // reserved
}

fn is_blocked_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || (first & 0xfe00) == 0xfc00 // unique local fc00::/7
        || (first & 0xffc0) == 0xfe80 // link-local fe80::/10
        || (first & 0xffc0) == 0xfec0 // site-local (deprecated) fec0::/10
}

/// Resolves, filters and connects. Implements the connector interface of hyper-util's client.
#[derive(Clone)]
pub struct GuardedConnector {
    allow_private: bool,
}

impl tower_service::Service<Uri> for GuardedConnector {
    type Response = TokioIo<TcpStream>;
    type Error = ConnectError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let allow_private = self.allow_private;
        Box::pin(async move {
            let host = uri.host().ok_or(ConnectError::NoHost)?;
            // Bracketed IPv6 literals come with their brackets.
            let host = host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned();
            let default_port = if uri.scheme_str() == Some("https") {
                443
            } else {
                80
            };
            let port = uri.port_u16().unwrap_or(default_port);
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), port))
                .await
                .map_err(|source| ConnectError::Dns {
                    host: host.clone(),
                    source,
                })?
                .collect();
            let mut blocked = None;
            let mut last_error = None;
            for addr in addrs {
                if !allow_private && is_blocked_ip(addr.ip()) {
                    blocked = Some(addr.ip());
                    continue;
                }
                match TcpStream::connect(addr).await {
                    Ok(stream) => {
                        let _ = stream.set_nodelay(true);
                        return Ok(TokioIo::new(stream));
                    }
                    Err(source) => last_error = Some(ConnectError::Connect { addr, source }),
                }
            }
            if let Some(e) = last_error {
                return Err(e);
            }
            match blocked {
                Some(addr) => Err(ConnectError::Blocked { host, addr }),
                None => Err(ConnectError::Dns {
                    host,
                    source: std::io::Error::new(std::io::ErrorKind::NotFound, "no addresses"),
                }),
            }
        })
    }
}

/// Headers and body of one attempt.
pub struct Outgoing<'a> {
    pub config: &'a WebhookConfig,
    pub hooks_id: &'a str,
    pub envelope: Bytes,
    /// A test send (the `test` route, the dashboard's button): marked `X-Hookline-Test: true`
    /// so a receiver can tell a sample from a real event.
    pub test: bool,
}

/// The header that marks a test send.
pub const TEST_HEADER: &str = "x-hookline-test";

#[derive(Clone)]
pub struct DeliveryClient {
    client: Client<HttpsConnector<GuardedConnector>, Full<Bytes>>,
}

impl DeliveryClient {
    /// `extra_roots` are trusted beside the webpki roots: empty in production; the acceptance
    /// tests pass the CA of their TLS receivers (serve's hidden `--test-extra-root-ca`), so that
    /// https is tested through this very verifier rather than a test-only one.
    pub fn new(
        allow_private_targets: bool,
        extra_roots: &[CertificateDer<'static>],
    ) -> anyhow::Result<Self> {
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        for root in extra_roots {
            roots.add(root.clone())?;
        }
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(GuardedConnector {
                allow_private: allow_private_targets,
            });
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(64)
            .build(https);
        Ok(DeliveryClient { client })
    }

    /// Sends one attempt and reports its outcome; never fails (errors are outcomes).
    pub async fn send(&self, out: Outgoing<'_>) -> AttemptResult {
        let started_at = now_millis();
        let clock = Instant::now();
        let timeout = Duration::from_millis(u64::from(out.config.timeout_ms));
        let outcome = match tokio::time::timeout(timeout, self.exchange(&out)).await {
            Ok(result) => result,
            Err(_) => Err((
                AttemptErrorKind::Timeout,
                format!("no complete answer within {} ms", out.config.timeout_ms),
            )),
        };
        let duration_ms = clock.elapsed().as_millis() as u64;
        match outcome {
            Ok(answer) => AttemptResult {
                started_at,
                duration_ms,
                status_code: Some(answer.status),
                error_kind: None,
                error_message: None,
                response_body: Some(answer.body),
                retry_after: answer.retry_after,
                request_headers: crate::model::shown_headers(&out.config.headers),
            },
            Err((kind, message)) => AttemptResult {
                started_at,
                duration_ms,
                status_code: None,
                error_kind: Some(kind),
                error_message: Some(message),
                response_body: None,
                retry_after: None,
                request_headers: crate::model::shown_headers(&out.config.headers),
            },
        }
    }

    async fn exchange(&self, out: &Outgoing<'_>) -> Result<Answer, (AttemptErrorKind, String)> {
        let config = out.config;
        let uri: Uri = config
            .url
            .parse()
            .map_err(|e| (AttemptErrorKind::InvalidUrl, format!("url: {e}")))?;
        let signature = HeaderValue::from_bytes(config.signature.as_bytes()).map_err(|_| {
            (
                AttemptErrorKind::InvalidUrl,
                "signature: not a valid header value".to_owned(),
            )
        })?;
        let mut request = Request::post(uri)
            .header(CONTENT_TYPE, CONTENT_TYPE_VALUE)
            .header(hookline_wire::SIGNATURE_HEADER, signature)
            .header(USER_AGENT, USER_AGENT_VALUE)
            .header(CONTENT_LENGTH, out.envelope.len());
        if out.test {
            request = request.header(TEST_HEADER, "true");
        }
        // During a rotation the previous secret signs too (space-separated signatures).
        let secrets = config.signing_secrets(now_millis());
        if !secrets.is_empty() {
            let timestamp = chrono::Utc::now().timestamp();
            let signed = hookline_wire::standard_webhooks::sign_all(
                &secrets,
                out.hooks_id,
                timestamp,
                &out.envelope,
            )
            .map_err(|e| (AttemptErrorKind::InvalidUrl, format!("signingSecret: {e}")))?;
            request = request
                .header("webhook-id", out.hooks_id)
                .header("webhook-timestamp", timestamp)
                .header("webhook-signature", signed);
        }
        // The config's own headers, checked when it was written (names, reserved ones, CR/LF).
        for (name, value) in &config.headers {
            request = request.header(name.as_str(), value.as_str());
        }
        let request = request
            .body(Full::new(out.envelope.clone()))
            .map_err(|e| (AttemptErrorKind::InvalidUrl, e.to_string()))?;

        let mut response = self.client.request(request).await.map_err(classify)?;
        let status = response.status().as_u16();
        // Taken raw (moved out of the headers, not copied): the verdict reads it.
        let retry_after = if super::verdict::honours_retry_after(status) {
            response.headers_mut().remove(RETRY_AFTER)
        } else {
            None
        };
        let mut body = response.into_body();
        let mut kept = Vec::new();
        // Read only what the log keeps; a longer body is dropped with its connection.
        while kept.len() < RESPONSE_BODY_LIMIT {
            match body.frame().await {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        let room = RESPONSE_BODY_LIMIT - kept.len();
                        kept.extend_from_slice(&data[..data.len().min(room)]);
                    }
                }
                Some(Err(e)) => {
                    // The status arrived: the attempt's outcome is the status, the body is cut.
                    tracing::debug!(error = %e, "response body broke off");
                    break;
                }
                None => break,
            }
        }
        Ok(Answer {
            status,
            body: String::from_utf8_lossy(&kept).into_owned(),
            retry_after,
        })
    }
}

struct Answer {
    status: u16,
    body: String,
    retry_after: Option<HeaderValue>,
}

/// Maps a client error to the attempt's error kind by walking its causes.
fn classify(e: hyper_util::client::legacy::Error) -> (AttemptErrorKind, String) {
    let message = error_chain(&e);
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
    while let Some(err) = source {
        if let Some(connect) = err.downcast_ref::<ConnectError>() {
            let kind = match connect {
                ConnectError::Blocked { .. } => AttemptErrorKind::BlockedAddress,
                ConnectError::Dns { .. } => AttemptErrorKind::Dns,
                ConnectError::Connect { .. } => AttemptErrorKind::Connect,
                ConnectError::NoHost => AttemptErrorKind::InvalidUrl,
            };
            return (kind, message);
        }
        if is_tls_error(err) {
            return (AttemptErrorKind::Tls, message);
        }
        source = err.source();
    }
    if e.is_connect() {
        (AttemptErrorKind::Connect, message)
    } else {
        (AttemptErrorKind::Io, message)
    }
}

/// A rustls error, possibly inside `io::Error`s wrapping each other (tokio-rustls wraps it once,
/// hyper-rustls again). `io::Error::source` skips the wrapped error itself, so look inside.
fn is_tls_error(err: &(dyn std::error::Error + 'static)) -> bool {
    if err.downcast_ref::<rustls::Error>().is_some() {
        return true;
    }
    match err
        .downcast_ref::<std::io::Error>()
        .and_then(|io| io.get_ref())
    {
        Some(inner) => is_tls_error(inner),
        None => false,
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(err) = source {
        text.push_str(": ");
        text.push_str(&err.to_string());
        source = err.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::WebhookConfig;

    #[test]
    fn blocks_internal_ranges_in_every_form() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::127.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b:1::a9fe:a9fe",   // local-use NAT64 of 169.254.169.254
            "64:ff9b:1:ffff::7f00:1", // the same prefix, any suffix layout
            "::ffff:0:127.0.0.1",     // IPv4-translated
            "::ffff:0:a00:1",         // IPv4-translated 10.0.0.1
            "::ffff:0:808:808",       // IPv4-translated, even of a public address
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "ff02::1",
            "2002:7f00:1::1",                       // 6to4 of 127.0.0.1
            "2002:c0a8:101::1",                     // 6to4 of 192.168.1.1
            "2001:0:4136:e378:8000:63bf:80ff:fffe", // Teredo, client 127.0.0.1
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert!(is_blocked_ip(ip), "{ip} must be blocked");
        }
        for ip in [
            "93.184.216.34",
            "8.8.8.8",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert!(!is_blocked_ip(ip), "{ip} must be allowed");
        }
    }

    /// Addresses of the blocked ranges that a host could really have on an interface, one of
    /// each kind: private 10/8, 172.16/12, 192.168/16, link-local (the cloud metadata address),
    /// shared 100.64/10, benchmarking 198.18/15, IPv6 unique-local, and an IPv4-mapped IPv6
    /// spelling of a private address.
    const PRIVATE_TARGETS: [(&str, &str); 8] = [
        ("10.0.0.1", "10.0.0.1"),
        ("172.16.0.1", "172.16.0.1"),
        ("192.168.1.1", "192.168.1.1"),
        ("169.254.169.254", "169.254.169.254"),
        ("100.64.0.1", "100.64.0.1"),
        ("198.18.0.1", "198.18.0.1"),
        ("fd00::1", "[fd00::1]"),
        ("10.0.0.2", "[::ffff:10.0.0.2]"),
    ];

    /// Runs a system command (`ip`) under a time limit, so that it cannot hang the test run.
    fn run(args: &[&str]) {
        let out = std::process::Command::new("timeout")
            .arg("30")
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {args:?}: {e}"));
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn config(url: String) -> WebhookConfig {
        WebhookConfig {
            url,
            ..WebhookConfig::for_tests()
        }
    }

    /// The private ranges go through the real client and connector, not only the predicate:
    /// every target has a listener behind it, the guarded client's attempt is `BLOCKED_ADDRESS`
    /// and no connection reaches the listener, while a client allowing private targets does get
    /// its 200 there (so the guard, not the network, is what stopped the first).
    ///
    /// It runs in a network namespace of its own (its thread's, needs root as the acceptance
    /// tests' mounts do; it fails rather than skips without), where these addresses are put on
    /// the loopback interface: whatever the guard does, no packet leaves the machine.
    #[test]
    fn the_connector_refuses_every_private_range_before_connecting() {
        let thread = std::thread::spawn(|| {
            // SAFETY: unshare(2) with CLONE_NEWNET only changes this thread's network
            // namespace; no memory is involved.
            let rc = unsafe { libc::unshare(libc::CLONE_NEWNET) };
            assert_eq!(
                rc,
                0,
                "unshare(CLONE_NEWNET) failed (this test needs root): {}",
                std::io::Error::last_os_error()
            );
            // Children and threads started from here on inherit this thread's namespace.
            run(&["ip", "link", "set", "lo", "up"]);
            for (ip, _) in PRIVATE_TARGETS {
                if ip.contains(':') {
                    run(&[
                        "ip",
                        "-6",
                        "addr",
                        "add",
                        &format!("{ip}/128"),
                        "dev",
                        "lo",
                        "nodad",
                    ]);
                } else {
                    run(&["ip", "addr", "add", &format!("{ip}/32"), "dev", "lo"]);
                }
            }
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(check_private_targets());
        });
        if let Err(panic) = thread.join() {
            std::panic::resume_unwind(panic);
        }
    }

    async fn check_private_targets() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicUsize, Ordering};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};

        let guarded = DeliveryClient::new(false, &[]).unwrap();
        let open = DeliveryClient::new(true, &[]).unwrap();
        for (ip, host) in PRIVATE_TARGETS {
            let listener = tokio::net::TcpListener::bind((ip.parse::<IpAddr>().unwrap(), 0))
                .await
                .unwrap_or_else(|e| panic!("bind {ip}: {e}"));
            let port = listener.local_addr().unwrap().port();
            let connections = Arc::new(AtomicUsize::new(0));
            let counter = connections.clone();
            let server = tokio::spawn(async move {
                while let Ok((mut stream, _)) = listener.accept().await {
                    counter.fetch_add(1, Ordering::SeqCst);
                    tokio::spawn(async move {
                        let mut buf = vec![0u8; 64 * 1024];
                        let mut got = Vec::new();
                        while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                            match stream.read(&mut buf).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => got.extend_from_slice(&buf[..n]),
                            }
                        }
                        let _ = stream
                            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                            .await;
                    });
                }
            });
            // The address must route in this namespace before the guard is judged: the open
            // client once got "Network is unreachable" for a just-added IPv6 address on a loaded
            // machine. A plain connection probes it; it is then taken off the count, which must
            // stay 0 through the guarded send.
            let target = std::net::SocketAddr::new(ip.parse::<IpAddr>().unwrap(), port);
            let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
            loop {
                match tokio::net::TcpStream::connect(target).await {
                    Ok(_) => break,
                    Err(e) => {
                        assert!(
                            tokio::time::Instant::now() < deadline,
                            "{target} never became reachable in the test's namespace: {e}"
                        );
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            }
            while connections.load(Ordering::SeqCst) == 0 {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "the probe of {target} was never accepted"
                );
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            connections.store(0, Ordering::SeqCst);
            let url = format!("http://{host}:{port}/hook");
            let cfg = config(url.clone());
            let out = || Outgoing {
                config: &cfg,
                hooks_id: "h",
                envelope: Bytes::from_static(b"{}"),
                test: false,
            };
            let blocked = guarded.send(out()).await;
            assert_eq!(
                blocked.error_kind,
                Some(AttemptErrorKind::BlockedAddress),
                "{url}: {blocked:?}"
            );
            assert_eq!(
                connections.load(Ordering::SeqCst),
                0,
                "{url}: the guarded client connected"
            );
            let allowed = open.send(out()).await;
            assert_eq!(allowed.status_code, Some(200), "{url}: {allowed:?}");
            assert!(connections.load(Ordering::SeqCst) >= 1);
            server.abort();
        }
    }
}
