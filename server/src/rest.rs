//! The REST API under `/v2`, shaped like 100ms's server-side API: room codes and the
//! token exchange (for web pages), and end-room / remove-peers / active-rooms / enable
//! (for back ends, with a management token). Each handler decodes its request, calls one
//! use case of [`crate::app`] and encodes the answer. Errors are `{"code", "message"}`
//! with the code as the HTTP status.

use crate::app::{App, HistoryPage, Requester, Target, MAX_HISTORY_PAGE};
use crate::edge::Client;
use crate::error::Error;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRef, FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use hms_protocol::PeerNotification;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use tower_http::cors::{AllowOrigin, CorsLayer};

/// An error answer: HTTP status = the error's code, body `{"code", "message"}`.
pub struct ApiError(Error);

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        Self(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let rpc = self.0.to_rpc();
        let status = u16::try_from(rpc.code).ok().and_then(|c| StatusCode::from_u16(c).ok()).unwrap_or(StatusCode::BAD_REQUEST);
        let mut res = (status, Json(json!({"code": rpc.code, "message": rpc.message}))).into_response();
        if let Error::Throttled(_, secs) = self.0 {
            res.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        res
    }
}

type ApiResult = Result<Response, ApiError>;

/// The `/v2` routes. Only `/v2/token` answers CORS (the one call a web page makes), for
/// `allowed_origins` when the list is set and any origin otherwise; the management
/// routes are for back ends, which need no CORS.
pub fn routes<S>(allowed_origins: &[String]) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    Arc<App>: FromRef<S>,
{
    let origins: Vec<HeaderValue> = allowed_origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()).collect();
    let cors = CorsLayer::very_permissive().allow_credentials(false);
    let cors = if origins.is_empty() { cors } else { cors.allow_origin(AllowOrigin::list(origins)) };
    Router::new()
        .route("/v2/room-codes/room/{room_id}", post(issue_room_codes).get(list_room_codes))
        .route("/v2/room-codes/code/{code}", post(update_room_code))
        .route("/v2/token", post(token_by_code).layer(cors))
        .route("/v2/active-rooms/{room_id}", get(active_room))
        .route("/v2/active-rooms/{room_id}/end-room", post(end_room))
        .route("/v2/active-rooms/{room_id}/remove-peers", post(remove_peers))
        .route("/v2/rooms/{room_id}", post(set_room_enabled).get(get_room))
        .route("/v2/webhooks/failed", get(failed_webhooks))
        .route("/v2/webhooks/failed/{id}/replay", post(replay_webhook))
}

/// Proof that the request carries `Authorization: Bearer <management token>`: a handler
/// that takes it runs only for back ends.
pub struct Management;

impl<S> FromRequestParts<S> for Management
where
    S: Send + Sync,
    Arc<App>: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
            .ok_or_else(|| Error::Unauthorized("Authorization: Bearer <management token> is required".into()))?;
        Arc::<App>::from_ref(state).verify_management(token.trim())?;
        Ok(Management)
    }
}

/// Parses a JSON body; an empty body is `T::default()`.
fn body<T: DeserializeOwned + Default>(bytes: &Bytes) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(bytes).map_err(|e| Error::BadRequest(format!("invalid JSON body: {e}")).into())
}

#[derive(Deserialize, Default)]
struct IssueCodesBody {
    #[serde(default)]
    role: Option<String>,
}

/// `POST /v2/room-codes/room/<id> {role?}`: new codes (shown only now), replacing the old.
async fn issue_room_codes(_: Management, State(app): State<Arc<App>>, Path(room_id): Path<String>, bytes: Bytes) -> ApiResult {
    let req: IssueCodesBody = body(&bytes)?;
    let codes = app.issue_room_codes(&room_id, req.role.as_deref()).await?;
    Ok(Json(json!({ "data": codes })).into_response())
}

/// `GET /v2/room-codes/room/<id>`: the room's codes without their text.
async fn list_room_codes(_: Management, State(app): State<Arc<App>>, Path(room_id): Path<String>) -> ApiResult {
    let codes = app.room_codes(&room_id).await?;
    Ok(Json(json!({ "data": codes })).into_response())
}

/// `POST /v2/room-codes/code/<code> {enabled}`: enables or disables one code.
async fn update_room_code(_: Management, State(app): State<Arc<App>>, Path(code): Path<String>, bytes: Bytes) -> ApiResult {
    let found = app.set_code_enabled(&code, enabled(&bytes)?).await?;
    Ok(Json(found).into_response())
}

#[derive(Deserialize, Default)]
struct TokenRequest {
    #[serde(default)]
    code: String,
    #[serde(default)]
    user_id: Option<String>,
}

async fn token_by_code(State(app): State<Arc<App>>, Extension(client): Extension<Client>, bytes: Bytes) -> ApiResult {
    let req: TokenRequest = body(&bytes)?;
    let token = app.token_by_code(&req.code, req.user_id, client.ip).await?;
    Ok(Json(json!({ "token": token })).into_response())
}

/// `GET /v2/active-rooms/<id>`.
#[derive(Serialize)]
struct ActiveRoomView {
    room_id: String,
    session_id: String,
    started_at: u64,
    peers: BTreeMap<String, PeerNotification>,
}

async fn active_room(_: Management, State(app): State<Arc<App>>, Path(room_id): Path<String>) -> ApiResult {
    let r = app.active_room(&room_id).await?;
    let view = ActiveRoomView { room_id: r.room_id, session_id: r.session_id, started_at: r.started_at, peers: r.peers };
    Ok(Json(view).into_response())
}

#[derive(Deserialize, Default)]
struct EndRoomBody {
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    lock: bool,
}

async fn end_room(_: Management, State(app): State<Arc<App>>, Path(room_id): Path<String>, bytes: Bytes) -> ApiResult {
    let req: EndRoomBody = body(&bytes)?;
    let reason = req.reason.unwrap_or_else(|| "the room was ended by the server".to_owned());
    app.end_room(&room_id, Requester::Api, &reason, req.lock).await?;
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

async fn remove_peers(_: Management, State(app): State<Arc<App>>, Path(room_id): Path<String>, bytes: Bytes) -> ApiResult {
    let req: RemovePeersBody = body(&bytes)?;
    let reason = req.reason.unwrap_or_else(|| "removed by the server".to_owned());
    // peer_id wins over role, as in 100ms.
    let target = match (req.peer_id.filter(|p| !p.is_empty()), req.role.filter(|r| !r.is_empty())) {
        (Some(p), _) => Target::Peer(p),
        (None, Some(role)) => Target::Role(role),
        (None, None) => return Err(Error::BadRequest("peer_id or role is required".into()).into()),
    };
    app.remove_peers(&room_id, target, &reason).await?;
    Ok(Json(json!({ "message": "peer remove request submitted" })).into_response())
}

#[derive(Deserialize, Default)]
struct EnableBody {
    #[serde(default)]
    enabled: Option<bool>,
}

/// The `enabled` of an `{enabled: bool}` body (400 without it).
fn enabled(bytes: &Bytes) -> Result<bool, ApiError> {
    let req: EnableBody = body(bytes)?;
    req.enabled.ok_or_else(|| Error::BadRequest("enabled (true or false) is required".into()).into())
}

async fn set_room_enabled(_: Management, State(app): State<Arc<App>>, Path(room_id): Path<String>, bytes: Bytes) -> ApiResult {
    let enabled = enabled(&bytes)?;
    app.set_room_enabled(&room_id, enabled).await?;
    Ok(Json(json!({ "id": room_id, "name": room_id, "enabled": enabled })).into_response())
}

/// `GET /v2/rooms/<id>?limit=&start=`: paging through the session history.
#[derive(Deserialize)]
struct HistoryQuery {
    #[serde(default)]
    start: Option<String>,
    #[serde(default = "default_page")]
    limit: usize,
}

fn default_page() -> usize {
    100
}

async fn get_room(
    _: Management,
    State(app): State<Arc<App>>,
    Path(room_id): Path<String>,
    query: Result<Query<HistoryQuery>, QueryRejection>,
) -> ApiResult {
    let Query(q) = query
        .map_err(|e| Error::BadRequest(format!("{} (limit: 1 to {MAX_HISTORY_PAGE}; start: the last of a page)", e.body_text())))?;
    let enabled = app.room_enabled(&room_id).await;
    let (history, last) = app.room_history(&room_id, HistoryPage { start: q.start, limit: q.limit }).await?;
    let sessions: Vec<_> = history
        .into_iter()
        .map(|s| {
            json!({"session_id": s.session_id, "started_at": s.started_at, "ended_at": s.ended_at,
                   "ended_by": s.ended_by, "reason": s.reason, "locked": s.locked})
        })
        .collect();
    Ok(Json(json!({ "id": room_id, "name": room_id, "enabled": enabled, "sessions": sessions, "last": last })).into_response())
}

/// `GET /v2/webhooks/failed?after=&limit=`: events past their retry budget, oldest first;
/// `next` is the `after` of the following page (null on the last).
async fn failed_webhooks(_: Management, State(app): State<Arc<App>>, Query(q): Query<HashMap<String, String>>) -> ApiResult {
    let num = |k: &str, default: u64| -> Result<u64, ApiError> {
        q.get(k).map_or(Ok(default), |v| v.parse().map_err(|_| Error::BadRequest(format!("{k} must be a non-negative integer")).into()))
    };
    let (after, limit) = (num("after", 0)?, num("limit", 100)?);
    let (page, next) = app.failed_webhooks(after.min(i64::MAX as u64) as i64, limit.min(usize::MAX as u64) as usize).await?;
    Ok(Json(json!({ "data": page, "next": next })).into_response())
}

/// `POST /v2/webhooks/failed/<event id>/replay`: queues the event again.
async fn replay_webhook(_: Management, State(app): State<Arc<App>>, Path(id): Path<String>) -> ApiResult {
    let queued = app.replay_webhook(&id).await?;
    Ok(Json(json!({ "message": "event queued for delivery", "queued": queued })).into_response())
}
