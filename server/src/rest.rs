//! The REST API under `/v2`, shaped like 100ms's server-side API: room codes and the
//! token exchange (for web pages), and end-room / remove-peers / active-rooms / enable
//! (for back ends, with a management token). Errors are `{"code", "message"}`.

use crate::auth::TokenType;
use crate::signaling::apply;
use crate::AppState;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use hms_protocol::RpcError;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;

/// An error answer: HTTP status = `code`, body `{"code", "message"}`.
pub struct ApiError(RpcError);

impl ApiError {
    fn new(code: i32, message: impl Into<String>) -> Self {
        Self(RpcError::new(code, message))
    }
}

impl From<RpcError> for ApiError {
    fn from(e: RpcError) -> Self {
        Self(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = u16::try_from(self.0.code)
            .ok()
            .and_then(|c| StatusCode::from_u16(c).ok())
            .unwrap_or(StatusCode::BAD_REQUEST);
        (status, Json(json!({"code": self.0.code, "message": self.0.message}))).into_response()
    }
}

type ApiResult = Result<Response, ApiError>;

/// The `/v2` routes.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v2/room-codes/room/{room_id}", post(create_room_codes))
        .route("/v2/token", post(token_by_code))
        .route("/v2/active-rooms/{room_id}", get(active_room))
        .route("/v2/active-rooms/{room_id}/end-room", post(end_room))
        .route("/v2/active-rooms/{room_id}/remove-peers", post(remove_peers))
        .route("/v2/rooms/{room_id}", post(set_room_enabled).get(get_room))
}

/// Requires `Authorization: Bearer <management token>`.
fn management(app: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let token = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .ok_or_else(|| ApiError::new(401, "Authorization: Bearer <management token> is required"))?;
    app.keys.verify(token.trim(), TokenType::Management).map(|_| ()).map_err(|e| ApiError::new(401, e.0))
}

/// Parses a JSON body; an empty body is `T::default()`.
fn body<T: DeserializeOwned + Default>(bytes: &Bytes) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(bytes).map_err(|e| ApiError::new(400, format!("invalid JSON body: {e}")))
}

fn valid_room_id(room_id: &str) -> Result<(), ApiError> {
    if room_id.is_empty() || room_id.len() > 128 {
        return Err(ApiError::new(400, "room_id must be 1 to 128 characters"));
    }
    Ok(())
}

fn store_err(e: String) -> ApiError {
    tracing::error!(error = %e, "store failure");
    ApiError::new(500, "the server could not access its database")
}

async fn create_room_codes(State(app): State<Arc<AppState>>, Path(room_id): Path<String>, headers: HeaderMap) -> ApiResult {
    management(&app, &headers)?;
    valid_room_id(&room_id)?;
    let roles: Vec<String> = app.hub.known_roles().keys().cloned().collect();
    let codes = app.store.room_codes(&room_id, roles).await.map_err(store_err)?;
    Ok(Json(json!({ "data": codes })).into_response())
}

#[derive(Deserialize, Default)]
struct TokenRequest {
    #[serde(default)]
    code: String,
    #[serde(default)]
    user_id: Option<String>,
}

async fn token_by_code(State(app): State<Arc<AppState>>, bytes: Bytes) -> ApiResult {
    let req: TokenRequest = body(&bytes)?;
    if req.code.is_empty() {
        return Err(ApiError::new(400, "code is required"));
    }
    let code = app.store.find_code(&req.code).await.map_err(store_err)?;
    let Some(code) = code.filter(|c| c.enabled) else {
        return Err(ApiError::new(404, "unknown or disabled room code"));
    };
    let user = req.user_id.filter(|u| !u.is_empty()).unwrap_or_else(|| format!("user-{}", uuid::Uuid::new_v4()));
    let token = app.keys.app_token(&code.room_id, &user, &code.role).map_err(|e| ApiError::new(500, e.0))?;
    Ok(Json(json!({ "token": token })).into_response())
}

async fn active_room(State(app): State<Arc<AppState>>, Path(room_id): Path<String>, headers: HeaderMap) -> ApiResult {
    management(&app, &headers)?;
    match app.hub.active_room(&room_id) {
        Some(r) => Ok(Json(r).into_response()),
        None => Err(ApiError::new(404, "no active session in this room")),
    }
}

#[derive(Deserialize, Default)]
struct EndRoomBody {
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    lock: bool,
}

async fn end_room(State(app): State<Arc<AppState>>, Path(room_id): Path<String>, headers: HeaderMap, bytes: Bytes) -> ApiResult {
    management(&app, &headers)?;
    let req: EndRoomBody = body(&bytes)?;
    let reason = req.reason.unwrap_or_else(|| "the room was ended by the server".to_owned());
    app.end_room(&room_id, None, &reason, req.lock).await?;
    Ok(Json(json!({ "message": "session is ending" })).into_response())
}

#[derive(Deserialize, Default)]
struct RemovePeersBody {
    #[serde(default)]
    peer_id: Option<String>,
    #[serde(default)]
    role: Option<String>,
    #[serde(default)]
    reason: Option<String>,
}

async fn remove_peers(State(app): State<Arc<AppState>>, Path(room_id): Path<String>, headers: HeaderMap, bytes: Bytes) -> ApiResult {
    management(&app, &headers)?;
    let req: RemovePeersBody = body(&bytes)?;
    let reason = req.reason.unwrap_or_else(|| "removed by the server".to_owned());
    // peer_id wins over role, as in 100ms.
    let targets = match (req.peer_id.filter(|p| !p.is_empty()), req.role.filter(|r| !r.is_empty())) {
        (Some(p), _) => vec![p],
        (None, Some(role)) => app.hub.peers_with_role(&room_id, &role),
        (None, None) => return Err(ApiError::new(400, "peer_id or role is required")),
    };
    let mut removed = 0;
    for target in &targets {
        if let Ok(fx) = app.hub.remove_peer(&room_id, None, target, &reason) {
            apply(&app, &room_id, target, fx);
            removed += 1;
        }
    }
    if removed == 0 {
        return Err(ApiError::new(404, "no matching peer in this room"));
    }
    tracing::info!(room = %room_id, removed, "peers removed through the REST API");
    Ok(Json(json!({ "message": "peer remove request submitted" })).into_response())
}

#[derive(Deserialize, Default)]
struct EnableBody {
    #[serde(default)]
    enabled: Option<bool>,
}

async fn set_room_enabled(State(app): State<Arc<AppState>>, Path(room_id): Path<String>, headers: HeaderMap, bytes: Bytes) -> ApiResult {
    management(&app, &headers)?;
    valid_room_id(&room_id)?;
    let req: EnableBody = body(&bytes)?;
    let Some(enabled) = req.enabled else {
        return Err(ApiError::new(400, "enabled (true or false) is required"));
    };
    // Disk first: a lock the database does not have would vanish on a restart.
    app.store.set_enabled(&room_id, enabled).await.map_err(store_err)?;
    app.hub.set_locked(&room_id, !enabled);
    tracing::info!(room = %room_id, enabled, "room enabled flag changed");
    Ok(Json(json!({ "id": room_id, "name": room_id, "enabled": enabled })).into_response())
}

async fn get_room(State(app): State<Arc<AppState>>, Path(room_id): Path<String>, headers: HeaderMap) -> ApiResult {
    management(&app, &headers)?;
    let enabled = !app.hub.is_locked(&room_id);
    let sessions = app.store.sessions(&room_id).await.map_err(store_err)?;
    let sessions: Vec<_> = sessions
        .into_iter()
        .map(|s| {
            json!({"session_id": s.session_id, "started_at": s.started_at, "ended_at": s.ended_at,
                   "ended_by": s.ended_by, "reason": s.reason, "locked": s.locked})
        })
        .collect();
    Ok(Json(json!({ "id": room_id, "name": room_id, "enabled": enabled, "sessions": sessions })).into_response())
}
