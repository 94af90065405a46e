//! A real HTTP server on 127.0.0.1 standing in for a customer's webhook endpoint. It records every
//! request and lets tests await "N hooks received" instead of sleeping.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, DefaultBodyLimit, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

/// One request the receiver got.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    /// Header names lower-cased, in arrival order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub json: Option<Value>,
    /// The client's address: one TCP connection has one peer port, so reuse is visible.
    pub peer: SocketAddr,
    /// Requests to the same path being handled when this one arrived, itself included.
    pub concurrent: usize,
    /// When the receiver had read it (its clock, for checking signed timestamps).
    pub received_at: std::time::SystemTime,
}

impl Recorded {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }
    pub fn header_count(&self, name: &str) -> usize {
        let name = name.to_ascii_lowercase();
        self.headers.iter().filter(|(k, _)| *k == name).count()
    }
    pub fn hooks_id(&self) -> Option<String> {
        self.json
            .as_ref()?
            .get("hooksId")?
            .as_str()
            .map(str::to_string)
    }
    pub fn hooks(&self) -> Vec<Value> {
        self.json
            .as_ref()
            .and_then(|j| j.get("hooks"))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    }
    pub fn hook_ids(&self) -> Vec<String> {
        self.hooks()
            .iter()
            .filter_map(|h| h.get("hookId").and_then(Value::as_str).map(str::to_string))
            .collect()
    }
    /// Short description for failure messages.
    pub fn summary(&self) -> String {
        format!(
            "{} {} hooksId={:?} hookIds={:?}",
            self.method,
            self.path,
            self.hooks_id(),
            self.hook_ids()
        )
    }
}

struct RxState {
    requests: Vec<Recorded>,
    /// Statuses to answer, in order, before falling back to `default_status`.
    statuses: VecDeque<u16>,
    default_status: u16,
    /// Never answer (until the receiver is stopped or dropped).
    hang: bool,
    /// Hold requests unanswered until `set_hold(false)`, then answer them normally.
    hold: bool,
    /// A `Retry-After` header sent with 429 and 503 answers.
    retry_after: Option<String>,
    /// How long each answer waits after the request is recorded (zero: none).
    delay: Duration,
    /// Per path: requests being handled now, and the most there ever were at once.
    concurrency: HashMap<String, (usize, usize)>,
    /// Answer 500 to every request carrying a hook whose field has this value (field, value).
    fail_carrying: Option<(String, Value)>,
}

/// Counts a request as in progress at its path until dropped (the answer is on its way).
struct InProgress {
    shared: Arc<Shared>,
    path: String,
}

impl Drop for InProgress {
    fn drop(&mut self) {
        if let Ok(mut st) = self.shared.state.lock()
            && let Some((now, _)) = st.concurrency.get_mut(&self.path)
        {
            *now -= 1;
        }
    }
}

struct Shared {
    state: Mutex<RxState>,
    /// Bumped on every recorded request.
    changes: watch::Sender<u64>,
    /// Bumped on stop: releases hanging requests.
    release: watch::Sender<u64>,
    /// Bumped when held requests may go on.
    gate: watch::Sender<u64>,
    /// TLS handshakes that failed (a client that refused the certificate, or spoke plain HTTP).
    tls_failures: std::sync::atomic::AtomicUsize,
}

struct Running {
    shutdown: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

pub struct Receiver {
    shared: Arc<Shared>,
    port: u16,
    /// Serve https with this configuration instead of plain HTTP.
    tls: Option<Arc<rustls::ServerConfig>>,
    /// A socket bound to `port` but not listening (connections are refused), held so that nobody
    /// else takes the port before `start` listens on it.
    reserved: Mutex<Option<TcpSocket>>,
    running: Mutex<Option<Running>>,
}

fn new_socket() -> TcpSocket {
    let s = TcpSocket::new_v4().expect("socket");
    s.set_reuseaddr(true).expect("SO_REUSEADDR");
    s
}

impl Receiver {
    fn with_socket(sock: TcpSocket) -> Receiver {
        let port = sock.local_addr().unwrap().port();
        let (changes, _) = watch::channel(0);
        let (release, _) = watch::channel(0);
        let (gate, _) = watch::channel(0);
        Receiver {
            shared: Arc::new(Shared {
                state: Mutex::new(RxState {
                    requests: Vec::new(),
                    statuses: VecDeque::new(),
                    default_status: 200,
                    hang: false,
                    hold: false,
                    retry_after: None,
                    delay: Duration::ZERO,
                    concurrency: HashMap::new(),
                    fail_carrying: None,
                }),
                changes,
                release,
                gate,
                tls_failures: std::sync::atomic::AtomicUsize::new(0),
            }),
            port,
            tls: None,
            reserved: Mutex::new(Some(sock)),
            running: Mutex::new(None),
        }
    }

    /// A receiver listening on a fresh port, answering 200.
    pub async fn start() -> Receiver {
        let r = Receiver::reserve();
        r.listen();
        r
    }

    /// A receiver serving https on a fresh port with `tls` (see `support::tls`), answering 200.
    pub async fn start_tls(tls: Arc<rustls::ServerConfig>) -> Receiver {
        let mut r = Receiver::reserve();
        r.tls = Some(tls);
        r.listen();
        r
    }

    /// TLS handshakes that failed so far (https receivers only).
    pub fn tls_failures(&self) -> usize {
        self.shared
            .tls_failures
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Reserves a port without listening on it: connections to it are refused until `listen`.
    pub fn reserve() -> Receiver {
        let sock = new_socket();
        sock.bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .expect("bind 127.0.0.1:0");
        Receiver::with_socket(sock)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT` + `path` (`https://` for a TLS receiver).
    pub fn url(&self, path: &str) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}{}", self.port, path)
    }

    /// Starts listening (on the reserved socket, or binding the same port again after `stop`).
    pub fn listen(&self) {
        let mut running = self.running.lock().unwrap();
        assert!(running.is_none(), "receiver already listening");
        let sock = match self.reserved.lock().unwrap().take() {
            Some(s) => s,
            None => {
                let mut tries = 0;
                loop {
                    let s = new_socket();
                    match s.bind(SocketAddr::from(([127, 0, 0, 1], self.port))) {
                        Ok(()) => break s,
                        Err(e) if tries < 100 => {
                            tries += 1;
                            let _ = e;
                            std::thread::sleep(Duration::from_millis(50));
                        }
                        Err(e) => panic!("cannot bind receiver port {} again: {e}", self.port),
                    }
                }
            }
        };
        let listener: TcpListener = sock.listen(1024).expect("listen");
        let app = Router::new()
            .fallback(handle)
            .layer(DefaultBodyLimit::disable())
            .with_state(self.shared.clone());
        let (tx, rx) = oneshot::channel::<()>();
        if let Some(tls) = &self.tls {
            let task = tokio::spawn(serve_tls(
                listener,
                app,
                tls.clone(),
                self.shared.clone(),
                rx,
            ));
            *running = Some(Running { shutdown: tx, task });
            return;
        }
        let task = tokio::spawn(async move {
            let _ = axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(async move {
                let _ = rx.await;
            })
            .await;
        });
        *running = Some(Running { shutdown: tx, task });
    }

    /// Stops listening (new connections are refused) and releases hanging requests.
    pub async fn stop(&self) {
        let running = self.running.lock().unwrap().take();
        let Some(running) = running else { return };
        let _ = running.shutdown.send(());
        self.shared.release.send_modify(|g| *g += 1);
        // The listener is dropped as soon as the serve loop sees the signal; wait until the port
        // refuses connections.
        let end = Instant::now() + Duration::from_secs(10);
        loop {
            match tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await {
                Err(_) => break,
                Ok(_) if Instant::now() > end => {
                    panic!("receiver port {} still accepts after stop", self.port)
                }
                Ok(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
        let _ = tokio::time::timeout(Duration::from_secs(2), running.task).await;
    }

    // ----- behaviour -----

    /// Answer these statuses to the next requests, in order, then the default (200).
    pub fn respond_with(&self, statuses: &[u16]) {
        let mut st = self.shared.state.lock().unwrap();
        st.statuses = statuses.iter().copied().collect();
    }

    /// Send this `Retry-After` value with 429 and 503 answers (`None`: no header).
    pub fn set_retry_after(&self, value: Option<&str>) {
        self.shared.state.lock().unwrap().retry_after = value.map(str::to_string);
    }

    /// The most requests to `path` that were ever being handled at once.
    pub fn peak_concurrency(&self, path: &str) -> usize {
        let st = self.shared.state.lock().unwrap();
        st.concurrency.get(path).map_or(0, |(_, peak)| *peak)
    }

    /// Answer every request `delay` after recording it, so that requests stay in flight a while.
    pub fn set_delay(&self, delay: Duration) {
        self.shared.state.lock().unwrap().delay = delay;
    }

    /// Answer 500 to every request that carries a hook whose `field` is `value` (`None`: stop).
    pub fn fail_requests_carrying(&self, field_value: Option<(&str, Value)>) {
        self.shared.state.lock().unwrap().fail_carrying =
            field_value.map(|(field, value)| (field.to_string(), value));
    }

    pub fn set_default_status(&self, status: u16) {
        self.shared.state.lock().unwrap().default_status = status;
    }

    /// Never answer new requests (`true`), or answer normally again (`false`; requests already
    /// hanging stay so until `stop`).
    pub fn set_hang(&self, hang: bool) {
        self.shared.state.lock().unwrap().hang = hang;
    }

    /// Hold new requests unanswered (`true`), or answer them and every held one normally (`false`).
    pub fn set_hold(&self, hold: bool) {
        self.shared.state.lock().unwrap().hold = hold;
        if !hold {
            self.shared.gate.send_modify(|g| *g += 1);
        }
    }

    // ----- observations -----

    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.state.lock().unwrap().requests.clone()
    }

    /// The requests from the `start`-th on, in arrival order (to follow a long run incrementally
    /// without copying everything again).
    pub fn requests_from(&self, start: usize) -> Vec<Recorded> {
        let st = self.shared.state.lock().unwrap();
        st.requests.get(start..).unwrap_or_default().to_vec()
    }

    pub fn requests_to(&self, path: &str) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| r.path == path)
            .collect()
    }

    /// How many times each hookId arrived (over all requests, or those to `path`).
    pub fn hook_counts(&self, path: Option<&str>) -> HashMap<String, usize> {
        let mut m = HashMap::new();
        for r in self.requests() {
            if path.is_some_and(|p| p != r.path) {
                continue;
            }
            for id in r.hook_ids() {
                *m.entry(id).or_insert(0) += 1;
            }
        }
        m
    }

    /// Waits until `cond(requests)` holds; returns the requests then. The error lists what arrived.
    pub async fn wait_until(
        &self,
        deadline: Duration,
        what: &str,
        cond: impl Fn(&[Recorded]) -> bool,
    ) -> Result<Vec<Recorded>, String> {
        let end = tokio::time::Instant::now() + deadline;
        let mut rx = self.shared.changes.subscribe();
        loop {
            rx.borrow_and_update();
            {
                let st = self.shared.state.lock().unwrap();
                if cond(&st.requests) {
                    return Ok(st.requests.clone());
                }
            }
            if tokio::time::timeout_at(end, rx.changed()).await.is_err() {
                let reqs = self.requests();
                let mut msg = format!(
                    "receiver :{}: timed out after {deadline:?} waiting for {what}; it got {} requests:",
                    self.port,
                    reqs.len()
                );
                for r in reqs.iter().take(40) {
                    msg.push_str("\n  ");
                    msg.push_str(&r.summary());
                }
                return Err(msg);
            }
        }
    }

    /// Waits until `n` requests arrived.
    pub async fn wait_for_requests(
        &self,
        n: usize,
        deadline: Duration,
    ) -> Result<Vec<Recorded>, String> {
        self.wait_until(deadline, &format!("{n} requests"), |r| r.len() >= n)
            .await
    }

    /// Waits until every hookId in `ids` arrived at least once (on any path).
    pub async fn wait_for_hooks(
        &self,
        ids: &[String],
        deadline: Duration,
    ) -> Result<Vec<Recorded>, String> {
        let want: std::collections::HashSet<&str> = ids.iter().map(String::as_str).collect();
        let res = self
            .wait_until(deadline, &format!("{} hooks", want.len()), |reqs| {
                let got: std::collections::HashSet<String> =
                    reqs.iter().flat_map(|r| r.hook_ids()).collect();
                want.iter().all(|id| got.contains(*id))
            })
            .await;
        res.map_err(|e| {
            let got: std::collections::HashSet<String> =
                self.requests().iter().flat_map(|r| r.hook_ids()).collect();
            let missing: Vec<&&str> = want.iter().filter(|id| !got.contains(**id)).collect();
            format!(
                "{e}\n{} of {} hooks missing, e.g. {:?}",
                missing.len(),
                want.len(),
                &missing[..missing.len().min(10)]
            )
        })
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.shared.release.send_modify(|g| *g += 1);
        if let Some(r) = self.running.lock().unwrap().take() {
            let _ = r.shutdown.send(());
        }
    }
}

/// The https variant of the serve loop: a TLS handshake per connection, then the same router
/// over HTTP/1.1. Stops accepting when `stop` fires (connections in progress end on their own).
async fn serve_tls(
    listener: TcpListener,
    app: Router,
    tls: Arc<rustls::ServerConfig>,
    shared: Arc<Shared>,
    mut stop: oneshot::Receiver<()>,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    loop {
        let (tcp, peer) = tokio::select! {
            _ = &mut stop => return,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(_) => continue,
            },
        };
        let acceptor = acceptor.clone();
        let app = app.clone();
        let shared = shared.clone();
        tokio::spawn(async move {
            let stream = match acceptor.accept(tcp).await {
                Ok(stream) => stream,
                Err(_) => {
                    shared
                        .tls_failures
                        .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    shared.changes.send_modify(|n| *n += 1);
                    return;
                }
            };
            let service = hyper::service::service_fn(
                move |mut req: axum::http::Request<hyper::body::Incoming>| {
                    // What `into_make_service_with_connect_info` gives the plain receiver.
                    req.extensions_mut().insert(ConnectInfo(peer));
                    let mut app = app.clone();
                    async move {
                        use tower_service::Service;
                        app.call(req).await
                    }
                },
            );
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
        });
    }
}

enum Action {
    Hang,
    Status(u16),
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut release = shared.release.subscribe();
    release.borrow_and_update();
    let mut gate = shared.gate.subscribe();
    gate.borrow_and_update();
    let rec = Recorded {
        method: method.to_string(),
        path: uri.path().to_string(),
        headers: headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_ascii_lowercase(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        json: serde_json::from_slice(&body).ok(),
        body: body.to_vec(),
        peer,
        concurrent: 0,
        received_at: std::time::SystemTime::now(),
    };
    let mut rec = rec;
    let path = rec.path.clone();
    let (action, held, delay) = {
        let mut st = shared.state.lock().unwrap();
        let carries = |(field, value): &(String, Value)| {
            rec.hooks().iter().any(|h| h.get(field) == Some(value))
        };
        let fails = st.fail_carrying.as_ref().is_some_and(carries);
        let (now, peak) = st.concurrency.entry(path.clone()).or_default();
        *now += 1;
        *peak = (*peak).max(*now);
        rec.concurrent = *now;
        st.requests.push(rec);
        (
            if st.hang {
                Action::Hang
            } else if fails {
                Action::Status(500)
            } else {
                Action::Status(0)
            },
            st.hold,
            st.delay,
        )
    };
    let _in_progress = InProgress {
        shared: shared.clone(),
        path,
    };
    shared.changes.send_modify(|n| *n += 1);
    if held {
        tokio::select! {
            _ = gate.changed() => {}
            _ = release.changed() => {
                return (StatusCode::SERVICE_UNAVAILABLE, "receiver stopped").into_response();
            }
        }
    }
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    // The status is taken when the answer is given, so held requests get them in answer order.
    let action = match action {
        Action::Hang => Action::Hang,
        Action::Status(0) => {
            let mut st = shared.state.lock().unwrap();
            Action::Status(st.statuses.pop_front().unwrap_or(st.default_status))
        }
        decided => decided,
    };
    match action {
        Action::Hang => {
            let _ = release.changed().await;
            (StatusCode::SERVICE_UNAVAILABLE, "receiver stopped").into_response()
        }
        Action::Status(s) => {
            let status = StatusCode::from_u16(s).unwrap();
            let body = if status.is_success() {
                "{\"received\":true}".to_string()
            } else {
                format!("receiver says {s}")
            };
            let retry_after = shared.state.lock().unwrap().retry_after.clone();
            match retry_after {
                Some(value) if s == 429 || s == 503 => {
                    (status, [("retry-after", value)], body).into_response()
                }
                _ => (status, body).into_response(),
            }
        }
    }
}
