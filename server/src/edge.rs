//! The HTTP edge: the accept loop and everything about a connection before a request is
//! routed. A cap on TCP connections open at once; connections per client address,
//! counted at accept (every TCP connection, not only WebSockets); an optional TLS
//! handshake (rustls); a deadline for a request's headers (and the handshake), so a
//! client cannot hold a connection open by sending slowly; and, per request, which
//! address the client is: the TCP peer, or what a trusted reverse proxy says in
//! `X-Forwarded-For`.
//!
//! Each request carries a [`Client`] in its extensions. A WebSocket keeps its clone for
//! its whole life, so its connection stays counted after the HTTP part is over.

use crate::config::{Config, IpNet};
use crate::error::Error;
use crate::quota::{self, Counter, Held};
use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, Request, Response, StatusCode};
use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_rustls::rustls;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;
use tracing::Instrument;

/// Who a request comes from, as the edge resolved it (in every request's extensions).
#[derive(Clone, Debug)]
pub struct Client {
    /// The client's address: the TCP peer's, or the one a trusted proxy forwarded.
    pub ip: IpAddr,
    /// Whether the client is within its connections-per-address limit. A client over it
    /// gets one refusal and is closed: a WebSocket gets `on-error {429}` (a browser cannot
    /// read the status of a failed upgrade), anything else a 429 answer.
    pub admitted: bool,
    /// Keeps this connection counted (at once, and for the client's address) while alive.
    pub hold: Arc<Hold>,
}

/// What a connection holds from the edge's counts; given back when the last clone goes.
#[derive(Debug)]
pub struct Hold {
    _conn: Arc<ConnSlot>,
    /// For a client behind a trusted proxy: its own count (the proxy's connection is not
    /// counted per address).
    _client: Option<Held<IpAddr>>,
}

#[derive(Debug)]
struct ConnSlot {
    _permit: Option<OwnedSemaphorePermit>,
    _ip: Option<Held<IpAddr>>,
}

/// The edge's settings and shared counts.
pub struct Edge {
    max_per_ip: usize,
    header_read_timeout: Duration,
    trusted: Vec<IpNet>,
    tls: Option<TlsAcceptor>,
    per_ip: Arc<Counter<IpAddr>>,
    /// `None` when the connection cap is off.
    slots: Option<Arc<Semaphore>>,
    /// When a refusal at accept was last logged (seconds since start), to log floods once a second.
    last_refusal_log: AtomicU64,
    started: std::time::Instant,
}

impl Edge {
    /// The edge for `config`: loads the TLS certificate and key if configured.
    pub fn new(config: &Config) -> Result<Self, Error> {
        let l = &config.limits;
        let tls = match (&config.http.tls_cert, &config.http.tls_key) {
            (Some(cert), Some(key)) => Some(tls_acceptor(cert, key)?),
            _ => None,
        };
        Ok(Self {
            max_per_ip: l.max_connections_per_ip,
            header_read_timeout: Duration::from_secs(l.header_read_timeout_secs),
            trusted: config.http.trusted_proxies.clone(),
            tls,
            per_ip: Arc::default(),
            slots: (l.max_connections > 0).then(|| Arc::new(Semaphore::new(l.max_connections.min(Semaphore::MAX_PERMITS)))),
            last_refusal_log: AtomicU64::new(u64::MAX),
            started: std::time::Instant::now(),
        })
    }

    /// Whether the server speaks TLS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    fn trusted(&self, ip: IpAddr) -> bool {
        self.trusted.iter().any(|n| n.contains(ip))
    }

    /// Logs a refusal at accept at most once a second (a flood must not flood the log).
    fn log_refusal(&self, what: &str, ip: IpAddr) {
        let now = self.started.elapsed().as_secs();
        if self.last_refusal_log.swap(now, Ordering::Relaxed) != now {
            tracing::warn!(%ip, "{what}");
        }
    }

    /// The client a request on a connection from `peer` comes from: the peer itself, or,
    /// when the peer is a trusted proxy, the nearest address in `X-Forwarded-For` that is
    /// not a trusted proxy (proxies append, so the right end is the most trustworthy).
    pub fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        if !self.trusted(peer) {
            return peer;
        }
        let hops: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect();
        let mut client = peer;
        for hop in hops.iter().rev() {
            let Some(ip) = parse_hop(hop) else { break };
            client = ip;
            if !self.trusted(ip) {
                break;
            }
        }
        client
    }
}

/// One `X-Forwarded-For` entry: an address, maybe with a port (`1.2.3.4:5`, `[::1]:5`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    hop.parse::<IpAddr>().ok().or_else(|| hop.parse::<SocketAddr>().ok().map(|s| s.ip()))
}

fn tls_acceptor(cert: &std::path::Path, key: &std::path::Path) -> Result<TlsAcceptor, Error> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let fail = |what: &str, path: &std::path::Path, e: &dyn std::fmt::Display| Error::Config(format!("{what} {}: {e}", path.display()));
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| fail("reading the certificate", cert, &e))?
        .collect::<Result<_, _>>()
        .map_err(|e| fail("reading the certificate", cert, &e))?;
    if certs.is_empty() {
        return Err(Error::Config(format!("no certificate in {}", cert.display())));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| fail("reading the private key", key, &e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(certs, key))
        .map_err(|e| Error::Config(format!("the TLS certificate and key do not make a server config: {e}")))?;
    // WebSockets need HTTP/1.1's upgrade.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Whether a request asks for a WebSocket upgrade.
fn is_upgrade(h: &HeaderMap) -> bool {
    h.get(header::UPGRADE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

/// The answer to a plain HTTP request from a client over its connection limit.
fn too_many(limit: usize) -> Response<Body> {
    let body = serde_json::json!({"code": 429, "message": format!("too many connections from your address (limit {limit})")});
    let mut res = Response::new(Body::from(body.to_string()));
    *res.status_mut() = StatusCode::TOO_MANY_REQUESTS;
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert(header::CONNECTION, HeaderValue::from_static("close"));
    res
}

/// Accepts connections on `listener` and serves `router` on each until `shutdown`
/// resolves; then stops accepting (connections already open go on until the app closes
/// them).
pub async fn serve(listener: TcpListener, router: Router, edge: Edge, shutdown: impl std::future::Future<Output = ()>) {
    let edge = Arc::new(edge);
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = &mut shutdown => return,
        };
        let (tcp, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let permit = match &edge.slots {
            None => None,
            Some(s) => match s.clone().try_acquire_owned() {
                Ok(p) => Some(p),
                Err(_) => {
                    edge.log_refusal("connection refused: the server is at limits.max_connections", peer.ip());
                    continue;
                }
            },
        };
        // TCP_NODELAY: a join answer is followed by on-policy-change and peer-list; with
        // Nagle on, those wait for the client's delayed ACK (~40 ms on Linux loopback).
        let _ = tcp.set_nodelay(true);
        // A trusted proxy carries many clients: each request is counted for its client.
        let (ip_held, admitted) = if edge.trusted(peer.ip()) {
            (None, true)
        } else {
            let (held, ok) = edge.per_ip.hold(quota::ip_key(peer.ip()), edge.max_per_ip);
            if !ok {
                edge.log_refusal("too many connections from one address", peer.ip());
            }
            (Some(held), ok)
        };
        let slot = Arc::new(ConnSlot { _permit: permit, _ip: ip_held });
        let (edge, router) = (edge.clone(), router.clone());
        tokio::spawn(async move {
            match &edge.tls {
                None => serve_conn(&edge, tcp, peer, slot, admitted, router).await,
                Some(acceptor) => match tokio::time::timeout(edge.header_read_timeout, acceptor.accept(tcp)).await {
                    Ok(Ok(tls)) => serve_conn(&edge, tls, peer, slot, admitted, router).await,
                    Ok(Err(e)) => tracing::debug!(ip = %peer.ip(), error = %e, "TLS handshake failed"),
                    Err(_) => tracing::debug!(ip = %peer.ip(), "TLS handshake timed out"),
                },
            }
        });
    }
}

/// Serves HTTP/1.1 (with upgrades) on one connection; every request gets its [`Client`].
async fn serve_conn<I>(edge: &Arc<Edge>, io: I, peer: SocketAddr, slot: Arc<ConnSlot>, admitted: bool, router: Router)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = {
        let edge = edge.clone();
        hyper::service::service_fn(move |mut req: Request<Incoming>| {
            let client = if edge.trusted(peer.ip()) {
                let ip = edge.client_ip(peer.ip(), req.headers());
                let (held, ok) = edge.per_ip.hold(quota::ip_key(ip), edge.max_per_ip);
                if !ok {
                    edge.log_refusal("too many connections from one address", ip);
                }
                Client { ip, admitted: ok, hold: Arc::new(Hold { _conn: slot.clone(), _client: Some(held) }) }
            } else {
                Client { ip: peer.ip(), admitted, hold: Arc::new(Hold { _conn: slot.clone(), _client: None }) }
            };
            let refuse = !client.admitted && !is_upgrade(req.headers());
            let span = tracing::info_span!("http", ip = %client.ip);
            req.extensions_mut().insert(client);
            let (router, limit) = (router.clone(), edge.max_per_ip);
            async move {
                if refuse {
                    return Ok::<_, std::convert::Infallible>(too_many(limit));
                }
                router.oneshot(req.map(Body::new)).await
            }
            .instrument(span)
        })
    };
    // hyper's HTTP/1 connection, not hyper-util's auto builder: the auto builder first
    // waits, with no deadline, for enough bytes to tell HTTP/1 from HTTP/2, so a client
    // that sends nothing would hold its connection forever. HTTP/1.1 is all a WebSocket
    // upgrade needs.
    let mut builder = http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(edge.header_read_timeout);
    if let Err(e) = builder.serve_connection(TokioIo::new(io), service).with_upgrades().await {
        tracing::debug!(ip = %peer.ip(), error = %e, "connection ended with an error");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edge(trusted: &[&str]) -> Edge {
        let mut c = Config::default();
        c.http.trusted_proxies = trusted.iter().map(|t| t.parse().unwrap()).collect();
        Edge::new(&c).unwrap()
    }

    fn xff(v: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for x in v {
            h.append("x-forwarded-for", HeaderValue::from_str(x).unwrap());
        }
        h
    }

    #[test]
    fn forwarded_addresses_count_only_from_trusted_proxies() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let e = edge(&["10.0.0.0/8"]);
        // Not from a proxy: the header is the client's word, ignored.
        assert_eq!(e.client_ip(ip("203.0.113.9"), &xff(&["1.2.3.4"])), ip("203.0.113.9"));
        // From a proxy: the nearest untrusted hop, whatever the client put on the left.
        assert_eq!(e.client_ip(ip("10.0.0.1"), &xff(&["6.6.6.6, 1.2.3.4"])), ip("1.2.3.4"));
        assert_eq!(e.client_ip(ip("10.0.0.1"), &xff(&["6.6.6.6", "1.2.3.4, 10.9.9.9"])), ip("1.2.3.4"));
        assert_eq!(e.client_ip(ip("10.0.0.1"), &xff(&["[2001:db8::1]:443"])), ip("2001:db8::1"));
        // Garbage stops the walk at the last good hop; no header: the proxy itself.
        assert_eq!(e.client_ip(ip("10.0.0.1"), &xff(&["1.2.3.4, junk"])), ip("10.0.0.1"));
        assert_eq!(e.client_ip(ip("10.0.0.1"), &HeaderMap::new()), ip("10.0.0.1"));
        // Only trusted hops: the leftmost.
        assert_eq!(e.client_ip(ip("10.0.0.1"), &xff(&["10.1.1.1, 10.2.2.2"])), ip("10.1.1.1"));
    }
}
