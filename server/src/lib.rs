//! `hms-server`: the room server of hms-client.
//!
//! WebSocket signaling at `/ws?peer=<id>&token=<jwt>` (JSON-RPC 2.0, see
//! `docs/PROTOCOL.md`), the REST API under `/v2`, optional static files, and durable
//! room state in SQLite. Modules: [`config`] (TOML + default template), [`auth`] (JWTs),
//! [`store`] (SQLite), [`frame`] (frame decoder), [`room`] (room state and fan-out, no sockets), [`signaling`] (one
//! WebSocket connection), [`rest`] (REST API).

pub mod auth;
pub mod config;
pub mod frame;
pub mod rest;
pub mod room;
pub mod signaling;
pub mod store;

use axum::extract::{ConnectInfo, Query, State};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tower_http::cors::CorsLayer;
use tower_http::services::ServeDir;

/// Everything a request or connection needs.
pub struct AppState {
    /// The configuration in force (file + flags).
    pub config: config::Config,
    /// Token signing and checking.
    pub keys: auth::TokenKeys,
    /// Durable state.
    pub store: store::Store,
    /// Live rooms.
    pub hub: room::Hub,
    /// Open WebSocket connections per client IP.
    pub per_ip: Mutex<HashMap<IpAddr, usize>>,
    /// Next connection id.
    pub next_conn: AtomicU64,
    /// Connection tasks alive (for graceful shutdown).
    pub live: AtomicUsize,
    /// Fired on SIGTERM / Ctrl-C.
    pub shutdown: CancellationToken,
}

impl AppState {
    /// Builds the state: opens the store and loads the room locks into memory.
    pub async fn new(config: config::Config, secret: &str, data_dir: &std::path::Path) -> Result<Arc<Self>, String> {
        config.validate()?;
        let store = store::Store::open(data_dir)?;
        let hub = room::Hub::new(
            config.template.known_roles(),
            config.template.id.clone(),
            Duration::from_secs(config.limits.reconnect_window_secs),
        );
        for room in store.disabled_rooms().await? {
            hub.set_locked(&room, true);
        }
        let keys = auth::TokenKeys::new(secret.as_bytes(), &config.access_key, config.token_ttl_secs);
        Ok(Arc::new(Self {
            config,
            keys,
            store,
            hub,
            per_ip: Mutex::new(HashMap::new()),
            next_conn: AtomicU64::new(1),
            live: AtomicUsize::new(0),
            shutdown: CancellationToken::new(),
        }))
    }

    /// Ends the room for everyone, for a peer's `end-room` (`requester` = its peer id and
    /// connection) and the REST API (`None`) alike, in the order the protocol promises:
    /// the end (and lock) is stored durably first (on failure the in-memory lock is undone
    /// and nobody is told), then every other peer is sent `on-peer-leave-request`, and the
    /// call waits, at most `end_room_flush_ms`, for those notices to be written. Returns
    /// the requester's connection, to answer and close; the caller answers only after this.
    pub async fn end_room(
        &self,
        room_id: &str,
        requester: Option<(&str, u64)>,
        reason: &str,
        lock: bool,
    ) -> Result<Option<room::ConnHandle>, hms_protocol::RpcError> {
        let ticket = self.hub.begin_end_room(room_id, requester, lock)?;
        let by = requester.map(|(peer, _)| peer);
        if let Err(e) = self.store.end_session(room_id, &ticket.session_id, by, reason, lock).await {
            tracing::error!(room = %room_id, error = %e, "could not store the end of a session");
            self.hub.abort_end_room(room_id, &ticket);
            return Err(hms_protocol::RpcError::new(hms_protocol::code::INTERNAL, "could not store the room's state; try again"));
        }
        let (requester_conn, acks) = self.hub.finish_end_room(room_id, by, reason);
        tracing::info!(room = %room_id, by = by.unwrap_or("REST API"), lock, peers = acks.len(), "room ended");
        // A slow peer cannot hold this up for longer than the flush bound: it is cut off
        // when its queue fills anyway.
        let flush = Duration::from_millis(self.config.limits.end_room_flush_ms);
        let _ = tokio::time::timeout(flush, futures_util::future::join_all(acks)).await;
        Ok(requester_conn)
    }

    /// Graceful shutdown: closes every connection with 1001, records running sessions
    /// as ended, waits (up to the grace period) for the close frames to go out, and
    /// checkpoints the database.
    pub async fn shutdown(&self) {
        self.shutdown.cancel();
        let (sessions, conns) = self.hub.shutdown();
        tracing::info!(connections = conns.len(), sessions = sessions.len(), "shutting down");
        for sid in sessions {
            let sid2 = sid.clone();
            let _ = self
                .store
                .call(move |c| {
                    c.execute(
                        "UPDATE sessions SET ended_at = ?2, reason = 'server shutdown' WHERE session_id = ?1 AND ended_at IS NULL",
                        rusqlite::params![sid2, auth::now_millis() as i64],
                    )
                    .map(|_| ())
                })
                .await;
            let _ = sid;
        }
        let deadline = tokio::time::Instant::now() + Duration::from_millis(self.config.limits.shutdown_grace_ms);
        while self.live.load(Ordering::SeqCst) > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if let Err(e) = self.store.checkpoint().await {
            tracing::warn!(error = %e, "WAL checkpoint at shutdown failed (the data is safe in the WAL)");
        }
    }
}

/// Where static files come from.
#[derive(Debug, Clone, Default)]
pub struct StaticDirs {
    /// Served at `/`.
    pub www: Option<PathBuf>,
    /// Served at `/pkg/`.
    pub pkg: Option<PathBuf>,
}

/// The whole HTTP app: `/ws`, `/v2/...` (CORS open), `/healthz`, static files.
pub fn router(app: Arc<AppState>, dirs: &StaticDirs) -> Router {
    let mut r = Router::new()
        .route("/ws", get(ws_upgrade))
        .route("/healthz", get(|| async { "ok" }))
        .merge(rest::routes().layer(CorsLayer::very_permissive().allow_credentials(false)));
    if let Some(pkg) = &dirs.pkg {
        r = r.nest_service("/pkg", ServeDir::new(pkg));
    }
    if let Some(www) = &dirs.www {
        r = r.fallback_service(ServeDir::new(www));
    }
    r.with_state(app)
}

async fn ws_upgrade(
    State(app): State<Arc<AppState>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    Query(query): Query<HashMap<String, String>>,
    mut req: axum::extract::Request,
) -> axum::response::Response {
    use axum::http::{header, HeaderMap, StatusCode};
    fn has(h: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
        h.get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    }
    // The handshake is done here rather than by axum's WebSocketUpgrade, because
    // axum's socket hides tungstenite's frame-level API, which the writer needs to
    // send big messages (a big room's peer-list) as fragments: a whole-message write
    // grows tungstenite's output buffer to the message's size and it never shrinks,
    // which made memory per peer O(room size) (see docs/BENCHMARKS.md).
    let h = req.headers();
    if req.method() != axum::http::Method::GET || !has(h, header::CONNECTION, "upgrade") || !has(h, header::UPGRADE, "websocket") {
        return (StatusCode::BAD_REQUEST, "Connection header did not include 'upgrade'").into_response();
    }
    if h.get(header::SEC_WEBSOCKET_VERSION).map(|v| v.as_bytes()) != Some(b"13") {
        return (StatusCode::BAD_REQUEST, "WebSocket version 13 required").into_response();
    }
    let Some(key) = h.get(header::SEC_WEBSOCKET_KEY) else {
        return (StatusCode::BAD_REQUEST, "Sec-WebSocket-Key header missing").into_response();
    };
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    let Some(on_upgrade) = req.extensions_mut().remove::<hyper::upgrade::OnUpgrade>() else {
        return (StatusCode::UPGRADE_REQUIRED, "connection cannot be upgraded").into_response();
    };
    // The library limit sits well above ours, so that a frame a bit over
    // max_frame_bytes reaches our check and gets a clean 1009 close; frames past the
    // library limit just drop the connection.
    let hard = (app.config.limits.max_frame_bytes * 4).max(1 << 20);
    // Small socket buffers: the library defaults (128 KiB each way) would cost a lot of
    // memory per idle peer; control frames are small.
    let cfg = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .read_buffer_size(8 * 1024)
        .write_buffer_size(8 * 1024)
        .max_message_size(Some(hard))
        .max_frame_size(Some(hard));
    tokio::spawn(async move {
        let upgraded = match on_upgrade.await {
            Ok(u) => u,
            Err(e) => {
                tracing::debug!(error = %e, "websocket upgrade failed");
                return;
            }
        };
        let io = hyper_util::rt::TokioIo::new(upgraded);
        let socket = tokio_tungstenite::WebSocketStream::from_raw_socket(io, tokio_tungstenite::tungstenite::protocol::Role::Server, Some(cfg)).await;
        signaling::run(app, socket, addr.ip(), query).await;
    });
    let mut res = axum::response::Response::new(axum::body::Body::empty());
    *res.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let rh = res.headers_mut();
    rh.insert(header::CONNECTION, header::HeaderValue::from_static("upgrade"));
    rh.insert(header::UPGRADE, header::HeaderValue::from_static("websocket"));
    if let Ok(v) = header::HeaderValue::from_str(&accept) {
        rh.insert(header::SEC_WEBSOCKET_ACCEPT, v);
    }
    res
}

/// Serves on `listener` until `shutdown` resolves, then shuts down gracefully.
pub async fn serve(
    app: Arc<AppState>,
    listener: tokio::net::TcpListener,
    dirs: StaticDirs,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), String> {
    // Forget expired tombstones now and then.
    let sweeper = {
        let app = app.clone();
        tokio::spawn(async move {
            let mut t = tokio::time::interval(Duration::from_secs(10));
            loop {
                t.tick().await;
                app.hub.sweep();
            }
        })
    };
    let svc = router(app.clone(), &dirs).into_make_service_with_connect_info::<SocketAddr>();
    // TCP_NODELAY: a join answer is followed by on-policy-change and peer-list; with
    // Nagle on, those wait for the client's delayed ACK (~40 ms on Linux loopback).
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp: &mut tokio::net::TcpStream| {
        let _ = tcp.set_nodelay(true);
    });
    let server = axum::serve(listener, svc);
    tokio::select! {
        r = server => {
            sweeper.abort();
            return r.map_err(|e| format!("server failed: {e}"));
        }
        _ = shutdown => {}
    }
    sweeper.abort();
    app.shutdown().await;
    Ok(())
}
