//! The HTTP listener: the router (`/ws`, `/v2/...`, `/healthz`, static files) and the
//! serve loop (the accept loop is [`crate::edge`]'s), which runs until the shutdown
//! signal and then shuts the app down.

use crate::app::App;
use crate::edge::{self, Edge};
use crate::error::Error;
use crate::{rest, ws};
use axum::routing::get;
use axum::Router;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tower_http::services::ServeDir;

/// Where static files come from.
#[derive(Debug, Clone, Default)]
pub struct StaticDirs {
    /// Served at `/`.
    pub www: Option<PathBuf>,
    /// Served at `/pkg/`.
    pub pkg: Option<PathBuf>,
}

/// The whole HTTP app: `/ws`, `/v2/...`, `/healthz`, static files.
pub fn router(app: Arc<App>, dirs: &StaticDirs) -> Router {
    let mut r = Router::new()
        .route("/ws", get(ws::upgrade))
        .route("/healthz", get(|| async { "ok" }))
        .merge(rest::routes(&app.config().http.allowed_origins));
    if let Some(pkg) = &dirs.pkg {
        r = r.nest_service("/pkg", ServeDir::new(pkg));
    }
    if let Some(www) = &dirs.www {
        r = r.fallback_service(ServeDir::new(www));
    }
    r.with_state(app)
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
    let edge = Edge::new(app.config())?;
    // The accept loop (and with it the listening socket) ends before the app shuts down,
    // so new connections are refused rather than left waiting.
    edge::serve(listener, router(app.clone(), &dirs), edge, shutdown).await;
    sweeper.abort();
    app.shutdown().await;
    Ok(())
}
