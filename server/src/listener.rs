//! The HTTP listener: the router (`/ws`, `/v2/...`, `/healthz`, static files) and the
//! serve loop, which runs until the shutdown signal and then shuts the app down.

use crate::app::App;
use crate::error::Error;
use crate::{rest, ws};
use axum::extract::FromRef;
use axum::routing::get;
use axum::Router;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tower_http::cors::CorsLayer;
use tower_http::services::ServeDir;

/// Where static files come from.
#[derive(Debug, Clone, Default)]
pub struct StaticDirs {
    /// Served at `/`.
    pub www: Option<PathBuf>,
    /// Served at `/pkg/`.
    pub pkg: Option<PathBuf>,
}

/// What the handlers share: the app, and the transport's per-IP gate.
#[derive(Clone)]
struct Shared {
    app: Arc<App>,
    gate: Arc<ws::Gate>,
}

impl FromRef<Shared> for Arc<App> {
    fn from_ref(s: &Shared) -> Self {
        s.app.clone()
    }
}

impl FromRef<Shared> for Arc<ws::Gate> {
    fn from_ref(s: &Shared) -> Self {
        s.gate.clone()
    }
}

/// The whole HTTP app: `/ws`, `/v2/...` (CORS open), `/healthz`, static files.
pub fn router(app: Arc<App>, dirs: &StaticDirs) -> Router {
    let mut r = Router::new()
        .route("/ws", get(ws::upgrade))
        .route("/healthz", get(|| async { "ok" }))
        .merge(rest::routes().layer(CorsLayer::very_permissive().allow_credentials(false)));
    if let Some(pkg) = &dirs.pkg {
        r = r.nest_service("/pkg", ServeDir::new(pkg));
    }
    if let Some(www) = &dirs.www {
        r = r.fallback_service(ServeDir::new(www));
    }
    r.with_state(Shared { app, gate: Arc::default() })
}

/// Serves on `listener` until `shutdown` resolves, then shuts the app down gracefully.
pub async fn serve(
    app: Arc<App>,
    listener: tokio::net::TcpListener,
    dirs: StaticDirs,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    // Forget expired tombstones now and then.
    let sweeper = {
        let app = app.clone();
        tokio::spawn(async move {
            let mut t = tokio::time::interval(Duration::from_secs(10));
            loop {
                t.tick().await;
                app.sweep().await;
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
    // The server (and with it the listening socket) is dropped before the app shuts
    // down, so new connections are refused rather than left waiting.
    let failed = tokio::select! {
        r = server => Some(r),
        _ = shutdown => None,
    };
    sweeper.abort();
    if let Some(r) = failed {
        return r.map_err(|e| Error::Config(format!("server failed: {e}")));
    }
    app.shutdown().await;
    Ok(())
}
