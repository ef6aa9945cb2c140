//! The JS-facing data shapes (camelCase, serialized with serde-wasm-bindgen) and the
//! option objects apps pass in. Pure Rust: no wasm-bindgen types.

use hms_protocol::Role;
use serde::{Deserialize, Serialize};

/// `HmsPeer`: a peer of the room as apps see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HmsPeer {
    /// The id the peer's client chose when it connected.
    pub peer_id: String,
    /// Display name given at join.
    pub name: String,
    /// The `user_id` of the peer's auth token.
    pub user_id: String,
    /// The app's metadata given at join.
    pub metadata: String,
    /// Whether this is the local peer.
    pub is_local: bool,
    /// The peer's role with its permissions (camelCase, as 100ms has them).
    pub role: Role,
}

/// `HmsRoom`: the joined room.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HmsRoom {
    /// The room id the auth tokens name.
    pub id: String,
    /// The room's display name.
    pub name: String,
    /// The current session, `null` when the server did not say.
    pub session_id: Option<String>,
}

/// `RemovedFromRoomEvent`: why the local peer is no longer in the room.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RemovedEvent {
    /// The reason given by whoever ended the room or removed us.
    pub reason: String,
    /// Exactly the server's `room_end`.
    pub room_was_ended: bool,
    /// Who did it, looked up in the peer list; `null` when a back end used the REST API.
    pub peer_who_removed: Option<HmsPeer>,
}

/// `HmsClientOptions`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientOptions {
    /// The WebSocket URL, e.g. `ws://127.0.0.1:7880/ws`.
    pub endpoint: String,
    /// How long a request may wait for its answer.
    #[serde(default)]
    pub request_timeout_ms: Option<f64>,
    /// `ping` interval while joined.
    #[serde(default)]
    pub heartbeat_interval_ms: Option<f64>,
    /// Silence (no incoming frame) after which the connection counts as lost.
    #[serde(default)]
    pub heartbeat_timeout_ms: Option<f64>,
    /// Total time spent reconnecting before giving up; 0 disables reconnecting.
    #[serde(default)]
    pub reconnect_budget_ms: Option<f64>,
}

/// Default `requestTimeoutMs`.
pub const DEFAULT_REQUEST_TIMEOUT_MS: f64 = 10_000.0;

fn positive(v: Option<f64>) -> Option<f64> {
    v.filter(|t| t.is_finite() && *t > 0.0)
}

impl ClientOptions {
    /// The timeout to use: the option when it is a positive finite number, else the default.
    pub fn timeout_ms(&self) -> f64 {
        positive(self.request_timeout_ms).unwrap_or(DEFAULT_REQUEST_TIMEOUT_MS)
    }

    /// The session settings these options ask for (defaults where absent or invalid;
    /// `reconnectBudgetMs: 0` turns reconnecting off).
    pub fn config(&self) -> crate::session::Config {
        let d = crate::session::Config::default();
        crate::session::Config {
            request_timeout: self.timeout_ms(),
            heartbeat_interval: positive(self.heartbeat_interval_ms).unwrap_or(d.heartbeat_interval),
            heartbeat_timeout: positive(self.heartbeat_timeout_ms).unwrap_or(d.heartbeat_timeout),
            reconnect_budget: self.reconnect_budget_ms.filter(|t| t.is_finite() && *t >= 0.0).unwrap_or(d.reconnect_budget),
            ..d
        }
    }
}

/// `HmsJoinConfig`: what `join` takes.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JoinConfig {
    /// The auth token (from `getAuthTokenByRoomCode` or the app's back end).
    pub auth_token: String,
    /// Display name.
    pub user_name: String,
    /// Free-form metadata.
    #[serde(default)]
    pub metadata: Option<String>,
}

/// `getAuthTokenByRoomCode`'s second argument.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenOptions {
    /// Sent as `user_id`; the server picks one when absent.
    #[serde(default)]
    pub user_id: Option<String>,
    /// The HTTP base URL of the token service; derived from the WebSocket endpoint when absent.
    #[serde(default)]
    pub endpoint: Option<String>,
}

/// `POST /v2/token` answer: `{token}` on success, `{code, message}` on failure.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct TokenAnswer {
    /// The auth token.
    #[serde(default)]
    pub token: Option<String>,
    /// Error code.
    #[serde(default)]
    pub code: Option<i32>,
    /// Error message.
    #[serde(default)]
    pub message: Option<String>,
}

/// The HTTP base URL that belongs to a WebSocket endpoint: `ws://h:p/ws` -> `http://h:p`,
/// `wss://h/x` -> `https://h`. Anything else is returned without its path.
pub fn http_base_of(ws_endpoint: &str) -> String {
    // Byte positions and `get` (never `[..]`): a panicking slice pulls kilobytes of
    // formatting code into the wasm module.
    let b = ws_endpoint.as_bytes();
    let (scheme, start) = match b.windows(3).position(|w| w == b"://") {
        Some(i) => (ws_endpoint.get(..i).unwrap_or(""), i + 3),
        None => ("", 0),
    };
    let scheme = match scheme {
        "wss" => "https",
        "ws" | "" => "http",
        other => other,
    };
    let end = b.iter().skip(start).position(|&c| matches!(c, b'/' | b'?' | b'#')).map_or(b.len(), |n| start + n);
    let host = ws_endpoint.get(start..end).unwrap_or("");
    let mut out = String::with_capacity(scheme.len() + 3 + host.len());
    out.push_str(scheme);
    out.push_str("://");
    out.push_str(host);
    out
}

/// The WebSocket URL with the peer id and token as query parameters. `token` and
/// `peer_id` must already be URI-component-encoded.
pub fn socket_url(endpoint: &str, peer_id: &str, token: &str) -> String {
    let mut url = String::with_capacity(endpoint.len() + peer_id.len() + token.len() + 14);
    url.push_str(endpoint);
    url.push(if endpoint.contains('?') { '&' } else { '?' });
    url.push_str("peer=");
    url.push_str(peer_id);
    url.push_str("&token=");
    url.push_str(token);
    url
}

/// Formats 16 random bytes as a UUID v4 (`xxxxxxxx-xxxx-4xxx-[89ab]xxx-xxxxxxxxxxxx`).
pub fn uuid_v4(mut b: [u8; 16]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let mut s = String::with_capacity(36);
    for (i, byte) in b.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            s.push('-');
        }
        s.push(HEX[(byte >> 4) as usize] as char);
        s.push(HEX[(byte & 0x0f) as usize] as char);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_base_from_ws() {
        assert_eq!(http_base_of("ws://127.0.0.1:7880/ws"), "http://127.0.0.1:7880");
        assert_eq!(http_base_of("wss://example.com/ws?x=1"), "https://example.com");
        assert_eq!(http_base_of("ws://h:1"), "http://h:1");
    }

    #[test]
    fn socket_url_appends_query() {
        assert_eq!(socket_url("ws://h/ws", "p1", "t"), "ws://h/ws?peer=p1&token=t");
        assert_eq!(socket_url("ws://h/ws?a=b", "p1", "t"), "ws://h/ws?a=b&peer=p1&token=t");
    }

    #[test]
    fn uuid_shape() {
        let u = uuid_v4([0xff; 16]);
        assert_eq!(u, "ffffffff-ffff-4fff-bfff-ffffffffffff");
        let u = uuid_v4([0; 16]);
        assert_eq!(u, "00000000-0000-4000-8000-000000000000");
    }

    #[test]
    fn timeout_option() {
        let o = ClientOptions { endpoint: "ws://x".into(), ..Default::default() };
        assert_eq!(o.timeout_ms(), 10_000.0);
        let c = o.config();
        assert_eq!((c.heartbeat_interval, c.heartbeat_timeout, c.reconnect_budget), (3000.0, 12000.0, 30000.0));
        let o = ClientOptions { request_timeout_ms: Some(250.0), reconnect_budget_ms: Some(0.0), ..o };
        assert_eq!(o.timeout_ms(), 250.0);
        assert_eq!(o.config().reconnect_budget, 0.0, "0 disables reconnecting");
        assert_eq!(o.config().request_timeout, 250.0);
        let o = ClientOptions { request_timeout_ms: Some(-1.0), heartbeat_interval_ms: Some(f64::NAN), ..o };
        assert_eq!(o.timeout_ms(), 10_000.0);
        assert_eq!(o.config().heartbeat_interval, 3000.0);
    }

    #[test]
    fn peer_serializes_camel_case() {
        let p = HmsPeer {
            peer_id: "p".into(),
            name: "Ada".into(),
            user_id: "u".into(),
            metadata: "".into(),
            is_local: true,
            role: Role { name: "host".into(), priority: 1, permissions: Default::default() },
        };
        let v = serde_json::to_value(&p).unwrap();
        assert_eq!(v["peerId"], "p");
        assert_eq!(v["isLocal"], true);
        assert_eq!(v["role"]["permissions"]["endRoom"], false);
        let ev = RemovedEvent { reason: "r".into(), room_was_ended: true, peer_who_removed: None };
        let v = serde_json::to_value(&ev).unwrap();
        assert_eq!(v["roomWasEnded"], true);
        assert!(v["peerWhoRemoved"].is_null());
    }
}
