//! The HTTP listener: accepts connections for the API and the dashboard within fixed bounds, so
//! one client cannot take the service away from everyone else.
//!
//! - **A cap on open connections** (`--max-connections`, never more than the process may open
//!   files for, less a reserve for the store and outgoing deliveries) and **per client address**
//!   (`--max-connections-per-ip`).
//! - **Slow and idle clients are cut**: a request's headers must arrive within
//!   `--header-read-timeout`, and the same bound applies to a kept-alive connection waiting for
//!   its next request (hyper's header read timer starts when the connection starts waiting).
//! - **When full, idle connections make room**: a new connection over a cap closes the oldest
//!   connection (of that address, for the per-address cap) that has no request in progress: a
//!   flood of connections that send nothing, or half a request, cannot lock fresh clients out. If
//!   every connection is busy, the new one is refused at once with a `503` (not left waiting in the
//!   kernel's backlog).
//! - **Graceful shutdown**: on the signal, no new connections; requests in progress finish, idle
//!   connections close.
//!
//! Every request carries the connection's peer as [`ConnectInfo`] and the client's address as
//! [`ClientAddress`] (for throttles that count per address). They differ only behind a proxy the
//! operator trusts (`--trusted-proxy`): then the client is the nearest address in
//! `X-Forwarded-For` that is not itself a trusted proxy, and the per-address connection cap does
//! not apply to the proxy (every client behind it shares its connections). From any other peer,
//! `X-Forwarded-For` is ignored: a client cannot pick the address it is counted as.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tower_service::Service;

/// Bounds on the connections the listener keeps open.
#[derive(Debug, Clone)]
pub struct ListenerLimits {
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    pub header_read_timeout: Duration,
    pub trusted_proxies: TrustedProxies,
}

/// The address a request is counted as: the peer, or behind a trusted proxy the client the
/// proxy names (see the module's notes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddress(pub IpAddr);

/// The client address of a request (`0.0.0.0` when no listener set one: a router under test).
pub fn client_address(extensions: &axum::http::Extensions) -> IpAddr {
    match extensions.get::<ClientAddress>() {
        Some(client) => client.0,
        None => extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(IpAddr::from([0, 0, 0, 0]), |peer| peer.0.ip()),
    }
}

/// An address range, `192.0.2.0/24` or one address (`10.0.0.7`, `::1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl std::str::FromStr for Cidr {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || format!("{text:?} is not an address or a range such as 10.0.0.0/8");
        let (addr, prefix) = match text.trim().split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text.trim(), None),
        };
        let network: IpAddr = addr.parse().map_err(|_| bad())?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(bad)?,
            None => max,
        };
        Ok(Cidr { network, prefix })
    }
}

impl Cidr {
    pub fn contains(&self, ip: IpAddr) -> bool {
        fn bits(ip: IpAddr) -> (u128, u8) {
            match ip {
                IpAddr::V4(v4) => (u128::from(u32::from(v4)) << 96, 32),
                IpAddr::V6(v6) => (u128::from(v6), 128),
            }
        }
        let (net, net_len) = bits(self.network);
        let (addr, addr_len) = bits(ip.to_canonical());
        if net_len != addr_len {
            return false;
        }
        let mask = if self.prefix == 0 {
            0
        } else {
            u128::MAX << (128 - u32::from(self.prefix))
        };
        net & mask == addr & mask
    }
}

/// The proxies whose `X-Forwarded-For` is believed (`--trusted-proxy`); none by default.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Arc<[Cidr]>);

impl TrustedProxies {
    pub fn new(ranges: Vec<Cidr>) -> Self {
        TrustedProxies(ranges.into())
    }

    pub fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|range| range.contains(ip))
    }

    /// The address a request from `peer` with these `X-Forwarded-For` values is counted as: from
    /// a trusted proxy, the rightmost listed address that is not a trusted proxy (each proxy
    /// appends the address it received the request from, so entries further left were written
    /// by the client and prove nothing); otherwise, or when the list has nothing usable, the
    /// nearest address known.
    pub fn client(&self, peer: IpAddr, forwarded_for: &[&str]) -> IpAddr {
        if !self.trusts(peer) {
            return peer;
        }
        let mut nearest = peer;
        for entry in forwarded_for.iter().rev().flat_map(|v| v.rsplit(',')) {
            let entry = entry.trim();
            let Some(ip) = entry
                .parse::<IpAddr>()
                .ok()
                .or_else(|| entry.parse::<SocketAddr>().ok().map(|s| s.ip()))
            else {
                // Unreadable: what lies beyond it cannot be trusted either.
                return nearest;
            };
            if !self.trusts(ip) {
                return ip;
            }
            nearest = ip;
        }
        nearest
    }
}

/// File descriptors kept back from the connection cap: the store's files and connections, the
/// delivery client's connections to receivers, logs.
const FD_RESERVE: u64 = 512;

impl ListenerLimits {
    /// `max_connections` lowered so that the open connections can never exhaust the process's
    /// file descriptors (a flood then makes accept fail for everyone, the store included).
    pub fn within_fd_limit(mut self) -> Self {
        if let Some(fds) = open_files_limit() {
            let room = fds.saturating_sub(FD_RESERVE).max(16) as usize;
            if self.max_connections > room {
                tracing::warn!(
                    requested = self.max_connections,
                    allowed = room,
                    open_files_limit = fds,
                    "--max-connections lowered to fit the open files limit (ulimit -n)"
                );
                self.max_connections = room;
            }
        }
        self.max_connections_per_ip = self.max_connections_per_ip.clamp(1, self.max_connections);
        self
    }
}

/// The soft limit on open files, from /proc (Linux); `None` when it cannot be read.
fn open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// One open connection, as the accept loop sees it.
struct Conn {
    ip: IpAddr,
    /// Accept order: the smallest is the oldest.
    seq: u64,
    /// Requests in progress on it.
    busy: Arc<AtomicUsize>,
    /// Closes it (the connection's task drops the socket).
    close: Arc<Notify>,
}

#[derive(Default)]
struct Table {
    conns: HashMap<u64, Conn>,
    per_ip: HashMap<IpAddr, usize>,
}

impl Table {
    /// Makes room for a connection from `ip`; false when every candidate is busy.
    fn make_room(&mut self, ip: IpAddr, limits: &ListenerLimits) -> bool {
        // A trusted proxy carries many clients: only the total cap applies to it.
        if !limits.trusted_proxies.trusts(ip)
            && self.per_ip.get(&ip).copied().unwrap_or(0) >= limits.max_connections_per_ip
            && !self.close_oldest_idle(Some(ip))
        {
            return false;
        }
        if self.conns.len() >= limits.max_connections && !self.close_oldest_idle(None) {
            return false;
        }
        true
    }

    /// Closes the oldest connection (of `ip`, if given) with no request in progress.
    fn close_oldest_idle(&mut self, ip: Option<IpAddr>) -> bool {
        let oldest = self
            .conns
            .values()
            .filter(|c| ip.is_none_or(|ip| c.ip == ip) && c.busy.load(Ordering::Relaxed) == 0)
            .min_by_key(|c| c.seq)
            .map(|c| c.seq);
        match oldest {
            Some(seq) => {
                self.remove(seq);
                true
            }
            None => false,
        }
    }

    fn insert(&mut self, conn: Conn) {
        *self.per_ip.entry(conn.ip).or_default() += 1;
        self.conns.insert(conn.seq, conn);
    }

    /// Forgets a connection and tells its task to close it (a no-op when it already ended).
    fn remove(&mut self, seq: u64) {
        if let Some(conn) = self.conns.remove(&seq) {
            conn.close.notify_one();
            if let Some(n) = self.per_ip.get_mut(&conn.ip) {
                *n -= 1;
                if *n == 0 {
                    self.per_ip.remove(&conn.ip);
                }
            }
        }
    }
}

/// Serves `app` on `listener` until `shutdown` completes, then drains.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ListenerLimits,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let table = Arc::new(Mutex::new(Table::default()));
    let seq = AtomicU64::new(0);
    // Dropped at shutdown: every connection task sees it and shuts down gracefully.
    let (stop_tx, stop_rx) = watch::channel(());
    let open = Arc::new(AtomicUsize::new(0));
    let drained = Arc::new(Notify::new());
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors or a transient error: wait a little rather than
                    // spin, then go on accepting.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let id = seq.fetch_add(1, Ordering::Relaxed);
        let busy = Arc::new(AtomicUsize::new(0));
        let close = Arc::new(Notify::new());
        let admitted = match table.lock() {
            Ok(mut table) => {
                let room = table.make_room(peer.ip(), &limits);
                if room {
                    table.insert(Conn {
                        ip: peer.ip(),
                        seq: id,
                        busy: busy.clone(),
                        close: close.clone(),
                    });
                }
                room
            }
            Err(_) => false,
        };
        if !admitted {
            tracing::debug!(%peer, "connection refused: every open connection is busy");
            tokio::spawn(refuse(stream));
            continue;
        }
        let _ = stream.set_nodelay(true);
        open.fetch_add(1, Ordering::Relaxed);
        let task = ConnTask {
            app: app.clone(),
            peer,
            busy,
            close,
            stop: stop_rx.clone(),
            header_read_timeout: limits.header_read_timeout,
            trusted_proxies: limits.trusted_proxies.clone(),
        };
        let table = table.clone();
        let open = open.clone();
        let drained = drained.clone();
        tokio::spawn(async move {
            task.run(stream).await;
            if let Ok(mut table) = table.lock() {
                table.remove(id);
            }
            if open.fetch_sub(1, Ordering::Relaxed) == 1 {
                drained.notify_waiters();
            }
        });
    }
    drop(listener);
    drop(stop_tx);
    // Requests in progress finish; idle connections were told to close.
    while open.load(Ordering::Relaxed) > 0 {
        let wait = drained.notified();
        if open.load(Ordering::Relaxed) == 0 {
            break;
        }
        let _ = tokio::time::timeout(Duration::from_millis(100), wait).await;
    }
    Ok(())
}

/// A connection over the caps with every open one busy: a short `503` and close, rather than
/// leaving it in the backlog where it would hold a slot of the kernel's queue.
async fn refuse(mut stream: TcpStream) {
    const BODY: &str = "{\"header\":{\"isSuccessful\":false,\"resultCode\":-1050,\
        \"resultMessage\":\"too many connections; try again in a moment\"}}";
    let answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\nconnection: close\r\n\
         content-type: application/json\r\ncontent-length: {}\r\nretry-after: 1\r\n\r\n{BODY}",
        BODY.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(1), stream.write_all(answer.as_bytes())).await;
}

struct ConnTask {
    app: Router,
    peer: SocketAddr,
    busy: Arc<AtomicUsize>,
    close: Arc<Notify>,
    stop: watch::Receiver<()>,
    header_read_timeout: Duration,
    trusted_proxies: TrustedProxies,
}

impl ConnTask {
    async fn run(mut self, stream: TcpStream) {
        let app = self.app.clone();
        let peer = self.peer;
        let busy = self.busy.clone();
        let trusted = self.trusted_proxies.clone();
        let service = hyper::service::service_fn(move |mut request: hyper::Request<_>| {
            let client = if trusted.trusts(peer.ip()) {
                let forwarded: Vec<&str> = request
                    .headers()
                    .get_all("x-forwarded-for")
                    .iter()
                    .filter_map(|v| v.to_str().ok())
                    .collect();
                trusted.client(peer.ip(), &forwarded)
            } else {
                peer.ip()
            };
            request.extensions_mut().insert(ClientAddress(client));
            request.extensions_mut().insert(ConnectInfo(peer));
            let request = request.map(Body::new);
            let mut app = app.clone();
            let busy = busy.clone();
            busy.fetch_add(1, Ordering::Relaxed);
            async move {
                let response = app.call(request).await;
                busy.fetch_sub(1, Ordering::Relaxed);
                response
            }
        });
        let mut builder = http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(self.header_read_timeout);
        let conn = builder.serve_connection(TokioIo::new(stream), service);
        let mut conn = std::pin::pin!(conn);
        let mut stopping = false;
        loop {
            tokio::select! {
                _ = conn.as_mut() => break,
                _ = self.close.notified() => break,
                changed = self.stop.changed(), if !stopping => {
                    let _ = changed;
                    stopping = true;
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(table: &mut Table, seq: u64, ip: [u8; 4], busy: usize) -> Arc<Notify> {
        let close = Arc::new(Notify::new());
        table.insert(Conn {
            ip: IpAddr::from(ip),
            seq,
            busy: Arc::new(AtomicUsize::new(busy)),
            close: close.clone(),
        });
        close
    }

    fn limits(total: usize, per_ip: usize) -> ListenerLimits {
        ListenerLimits {
            max_connections: total,
            max_connections_per_ip: per_ip,
            header_read_timeout: Duration::from_secs(10),
            trusted_proxies: TrustedProxies::default(),
        }
    }

    #[test]
    fn a_full_table_closes_its_oldest_idle_connection() {
        let mut table = Table::default();
        conn(&mut table, 1, [10, 0, 0, 1], 1);
        conn(&mut table, 2, [10, 0, 0, 2], 0);
        conn(&mut table, 3, [10, 0, 0, 3], 0);
        assert!(table.make_room(IpAddr::from([10, 0, 0, 9]), &limits(3, 3)));
        let mut left: Vec<u64> = table.conns.keys().copied().collect();
        left.sort();
        assert_eq!(
            left,
            [1, 3],
            "the oldest idle one (2) went, not the busy one (1)"
        );
    }

    #[test]
    fn a_full_table_of_busy_connections_refuses() {
        let mut table = Table::default();
        conn(&mut table, 1, [10, 0, 0, 1], 1);
        conn(&mut table, 2, [10, 0, 0, 2], 2);
        assert!(!table.make_room(IpAddr::from([10, 0, 0, 9]), &limits(2, 2)));
        assert_eq!(table.conns.len(), 2);
    }

    #[test]
    fn the_per_address_cap_makes_room_among_that_address_only() {
        let mut table = Table::default();
        conn(&mut table, 1, [10, 0, 0, 7], 0);
        conn(&mut table, 2, [10, 0, 0, 1], 0);
        conn(&mut table, 3, [10, 0, 0, 1], 0);
        assert!(table.make_room(IpAddr::from([10, 0, 0, 1]), &limits(100, 2)));
        assert!(
            table.conns.contains_key(&1),
            "another address keeps its connection"
        );
        assert!(!table.conns.contains_key(&2));
        assert_eq!(table.per_ip[&IpAddr::from([10, 0, 0, 1])], 1);
    }

    #[test]
    fn the_cap_never_passes_the_open_files_limit() {
        let l = limits(usize::MAX, usize::MAX).within_fd_limit();
        if let Some(fds) = open_files_limit() {
            assert!(l.max_connections as u64 <= fds);
        }
        assert!(l.max_connections_per_ip <= l.max_connections);
    }

    fn proxies(ranges: &[&str]) -> TrustedProxies {
        TrustedProxies::new(ranges.iter().map(|r| r.parse().unwrap()).collect())
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn ranges_parse_and_contain_what_they_should() {
        let net: Cidr = "10.1.0.0/16".parse().unwrap();
        assert!(net.contains(ip("10.1.200.3")));
        assert!(!net.contains(ip("10.2.0.1")));
        assert!(
            net.contains(ip("::ffff:10.1.0.9")),
            "an IPv4-mapped address is IPv4"
        );
        assert!(!net.contains(ip("::1")));
        let one: Cidr = "::1".parse().unwrap();
        assert!(one.contains(ip("::1")) && !one.contains(ip("::2")));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("203.0.113.5")));
        for bad in ["10.0.0.0/33", "10.0.0/8", "fe80::/129", "proxy", ""] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn only_a_trusted_proxy_names_the_client_and_only_the_hops_it_vouches_for() {
        let trusted = proxies(&["10.0.0.0/8"]);
        // Not from a proxy: the header is the client's own claim and ignored.
        assert_eq!(
            trusted.client(ip("203.0.113.9"), &["198.51.100.1"]),
            ip("203.0.113.9")
        );
        // From the proxy: the rightmost address that is not a proxy is the client; what the
        // client wrote further left is not believed.
        assert_eq!(
            trusted.client(ip("10.0.0.2"), &["1.2.3.4, 198.51.100.7, 10.0.0.5"]),
            ip("198.51.100.7")
        );
        assert_eq!(
            trusted.client(ip("10.0.0.2"), &["1.2.3.4", "198.51.100.7"]),
            ip("198.51.100.7"),
            "several header lines read as one list"
        );
        assert_eq!(
            trusted.client(ip("10.0.0.2"), &["198.51.100.7:4711"]),
            ip("198.51.100.7")
        );
        // Nothing usable: the nearest known hop.
        assert_eq!(trusted.client(ip("10.0.0.2"), &[]), ip("10.0.0.2"));
        assert_eq!(
            trusted.client(ip("10.0.0.2"), &["1.2.3.4, garbage, 10.0.0.3"]),
            ip("10.0.0.3")
        );
        // No proxies trusted (the default): always the peer.
        assert_eq!(
            TrustedProxies::default().client(ip("10.0.0.2"), &["1.2.3.4"]),
            ip("10.0.0.2")
        );
    }

    #[test]
    fn a_trusted_proxy_is_held_only_to_the_total_cap() {
        let mut l = limits(10, 1);
        l.trusted_proxies = proxies(&["10.0.0.1"]);
        let mut table = Table::default();
        conn(&mut table, 1, [10, 0, 0, 1], 1);
        conn(&mut table, 2, [10, 0, 0, 1], 1);
        assert!(table.make_room(IpAddr::from([10, 0, 0, 1]), &l));
        conn(&mut table, 3, [10, 0, 0, 2], 1);
        assert!(
            !table.make_room(IpAddr::from([10, 0, 0, 2]), &l),
            "another address stays within its cap"
        );
    }
}
