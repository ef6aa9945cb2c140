//! JSON-RPC error objects and the stable error codes of the protocol.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Stable numeric error codes. HTTP-like codes for domain errors, JSON-RPC's own for framing.
pub mod code {
    /// The request is well-formed JSON-RPC but makes no sense now (e.g. not joined yet, removing yourself).
    pub const BAD_REQUEST: i32 = 400;
    /// The auth token is missing, malformed, forged, expired or for another room.
    pub const UNAUTHORIZED: i32 = 401;
    /// The local role lacks the permission the method needs.
    pub const FORBIDDEN: i32 = 403;
    /// The peer, room or room code does not exist.
    pub const NOT_FOUND: i32 = 404;
    /// The peer id is already in use, or the peer has already joined.
    pub const CONFLICT: i32 = 409;
    /// The room is locked (disabled) and refuses joins.
    pub const LOCKED: i32 = 423;
    /// The server failed; the request may be retried.
    pub const INTERNAL: i32 = 500;
    /// The server cannot reach the shared state it needs (a node of a cluster whose Redis
    /// is down): nothing was changed; retry later.
    pub const UNAVAILABLE: i32 = 503;
    /// The frame is not valid JSON.
    pub const PARSE_ERROR: i32 = -32700;
    /// The JSON is not a JSON-RPC request object.
    pub const INVALID_REQUEST: i32 = -32600;
    /// No such method.
    pub const METHOD_NOT_FOUND: i32 = -32601;
    /// The params do not fit the method.
    pub const INVALID_PARAMS: i32 = -32602;
    /// The peer sends frames faster than the server's limit allows.
    pub const RATE_LIMITED: i32 = 429;
}

/// A JSON-RPC error object: `{"code": 403, "message": "..."}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RpcError {
    /// One of [`code`], or a code passed through from elsewhere.
    pub code: i32,
    /// A readable explanation, meant for developers.
    pub message: String,
}

impl RpcError {
    /// An error with any code.
    pub fn new(code: i32, message: impl Into<String>) -> Self {
        Self { code, message: message.into() }
    }
    /// 400: the request makes no sense in the current state.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(code::BAD_REQUEST, message)
    }
    /// 400 for any method but `join`/`ping` before `join`.
    pub fn not_joined() -> Self {
        Self::bad_request("join the room first: only join and ping are allowed before join")
    }
    /// 403: the local role lacks `permission`.
    pub fn forbidden(permission: &str) -> Self {
        Self::new(code::FORBIDDEN, format!("permission denied: your role lacks {permission}"))
    }
    /// -32601: no such method.
    pub fn method_not_found(method: &str) -> Self {
        Self::new(code::METHOD_NOT_FOUND, format!("unknown method {method:?}"))
    }
    /// -32602: the params do not fit the method.
    pub fn invalid_params(method: &str, detail: impl fmt::Display) -> Self {
        Self::new(code::INVALID_PARAMS, format!("invalid params for {method}: {detail}"))
    }
}

impl fmt::Display for RpcError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message, self.code)
    }
}

impl std::error::Error for RpcError {}
