//! The JS-facing data shapes, each defined once: the serde derive makes the JS object
//! (serde-wasm-bindgen in `js.rs`) and tsify makes its TypeScript declaration. Also the
//! option objects apps pass in (their TypeScript from the same derive; read by
//! [`ClientOptions::read`] & co., which a native test checks against serde's reading),
//! URLs and ids. Pure Rust: no wasm-bindgen types.

use crate::config::{Config, DEFAULT_REQUEST_TIMEOUT_MS};
use hms_protocol::Role;
use serde::{Deserialize, Serialize};
use tsify::Tsify;

/// The TypeScript of the protocol's role objects as apps get them (`HmsRole`,
/// `HmsPermissions`): written here, checked against `hms_protocol::Role` by a test.
pub const ROLE_TS: &str = r#"
/** A role of the room's template. */
export interface HmsRole {
  name: string;
  priority: number;
  permissions: HmsPermissions;
}
/** What a role may do. */
export interface HmsPermissions {
  endRoom: boolean;
  removeOthers: boolean;
  mute: boolean;
  unmute: boolean;
  changeRole: boolean;
  hlsStreaming: boolean;
  rtmpStreaming: boolean;
  browserRecording: boolean;
  pollRead: boolean;
  pollWrite: boolean;
}
"#;

/// `HmsPeer`: a peer of the room as apps see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Tsify)]
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
    #[tsify(type = "HmsRole")]
    pub role: Role,
}

/// `HmsRoom`: the joined room.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Tsify)]
#[serde(rename_all = "camelCase")]
pub struct HmsRoom {
    /// The room id the auth tokens name.
    pub id: String,
    /// The room's display name.
    pub name: String,
    /// The current session, `null` when the server did not say.
    #[tsify(type = "string | null")]
    pub session_id: Option<String>,
}

/// `RemovedFromRoomEvent`: why the local peer is no longer in the room.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Tsify)]
#[serde(rename_all = "camelCase")]
#[tsify(rename = "RemovedFromRoomEvent")]
pub struct RemovedEvent {
    /// The reason given by whoever ended the room or removed us.
    pub reason: String,
    /// Exactly the server's `room_end`: true when the whole room ended.
    pub room_was_ended: bool,
    /// Who did it, looked up in the peer list; `null` when a back end used the REST API.
    #[tsify(type = "HmsPeer | null")]
    pub peer_who_removed: Option<HmsPeer>,
}

/// `HmsConnectionState`: where the client's connection is, with 100ms's room-state names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Tsify)]
#[tsify(rename = "HmsConnectionState")]
pub enum ConnectionState {
    /// Not in a room: never joined, left, removed, or the room ended.
    Disconnected,
    /// `join` was called: the socket is opening or the join is under way.
    Connecting,
    /// In the room.
    Connected,
    /// The connection was lost; trying to get back as the same peer.
    Reconnecting,
    /// `leave()` is under way.
    Disconnecting,
    /// The session ended on an error (see `onError` or the `join` rejection).
    Failed,
}

/// Where option objects are read from: a JS object in the browser (`wire.rs`), a JSON
/// value in native tests. Reading only what is there, as the type says, costs far less
/// wasm than serde's `Deserialize` error paths (measured in docs/SDK.md).
pub trait Source {
    /// The string at `key`, if it is one.
    fn string(&self, key: &str) -> Option<String>;
    /// The number at `key`, if it is one.
    fn number(&self, key: &str) -> Option<f64>;
}

/// `HmsClientOptions`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, Tsify)]
#[serde(rename_all = "camelCase")]
#[tsify(rename = "HmsClientOptions")]
pub struct ClientOptions {
    /// WebSocket URL of the room server, e.g. `ws://127.0.0.1:7880/ws`.
    pub endpoint: String,
    /// How long a request waits for its answer before it fails with 9001 RequestTimeout
    /// (default 10000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub request_timeout_ms: Option<f64>,
    /// `ping` interval while joined (default 3000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub heartbeat_interval_ms: Option<f64>,
    /// No incoming frame for this long means the connection is lost (default 12000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub heartbeat_timeout_ms: Option<f64>,
    /// Total time spent reconnecting before `onError` gets a terminal 1003
    /// ConnectionLost (default 30000; 0 = never reconnect).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub reconnect_budget_ms: Option<f64>,
}

fn positive(v: Option<f64>) -> Option<f64> {
    v.filter(|t| t.is_finite() && *t > 0.0)
}

impl ClientOptions {
    /// Reads the options; `None` when `endpoint` is not a string.
    pub fn read(src: &impl Source) -> Option<Self> {
        Some(Self {
            endpoint: src.string("endpoint")?,
            request_timeout_ms: src.number("requestTimeoutMs"),
            heartbeat_interval_ms: src.number("heartbeatIntervalMs"),
            heartbeat_timeout_ms: src.number("heartbeatTimeoutMs"),
            reconnect_budget_ms: src.number("reconnectBudgetMs"),
        })
    }

    /// The timeout to use: the option when it is a positive finite number, else the default.
    pub fn timeout_ms(&self) -> f64 {
        positive(self.request_timeout_ms).unwrap_or(DEFAULT_REQUEST_TIMEOUT_MS)
    }

    /// The session settings these options ask for (defaults where absent or invalid;
    /// `reconnectBudgetMs: 0` turns reconnecting off).
    pub fn config(&self) -> Config {
        let d = Config::default();
        Config {
            request_timeout: self.timeout_ms(),
            heartbeat_interval: positive(self.heartbeat_interval_ms).unwrap_or(d.heartbeat_interval),
            heartbeat_timeout: positive(self.heartbeat_timeout_ms).unwrap_or(d.heartbeat_timeout),
            reconnect_budget: self.reconnect_budget_ms.filter(|t| t.is_finite() && *t >= 0.0).unwrap_or(d.reconnect_budget),
            ..d
        }
    }
}

/// `HmsJoinConfig`: what `join` takes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Tsify)]
#[serde(rename_all = "camelCase")]
#[tsify(rename = "HmsJoinConfig")]
pub struct JoinConfig {
    /// The auth token (from `getAuthTokenByRoomCode` or the app's back end).
    pub auth_token: String,
    /// Display name.
    pub user_name: String,
    /// Free-form metadata (often JSON text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub metadata: Option<String>,
}

impl JoinConfig {
    /// Reads the config; `None` when `authToken` or `userName` is not a string.
    pub fn read(src: &impl Source) -> Option<Self> {
        Some(Self { auth_token: src.string("authToken")?, user_name: src.string("userName")?, metadata: src.string("metadata") })
    }
}

/// `HmsTokenOptions`: `getAuthTokenByRoomCode`'s second argument.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, Tsify)]
#[serde(rename_all = "camelCase")]
#[tsify(rename = "HmsTokenOptions")]
pub struct TokenOptions {
    /// Sent as `user_id`; the server picks one when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub user_id: Option<String>,
    /// HTTP base URL of the token service; derived from the client's endpoint when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub endpoint: Option<String>,
}

impl TokenOptions {
    /// Reads the options (all optional).
    pub fn read(src: &impl Source) -> Self {
        Self { user_id: src.string("userId"), endpoint: src.string("endpoint") }
    }
}

/// `HmsPeerListIteratorOptions`: what `getPeerListIterator` takes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, Tsify)]
#[tsify(rename = "HmsPeerListIteratorOptions")]
pub struct PeerListIteratorOptions {
    /// Peers per page, 1 to 100 (default 10, as 100ms's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub limit: Option<u32>,
}

impl PeerListIteratorOptions {
    /// Reads the options (all optional).
    pub fn read(src: &impl Source) -> Self {
        Self { limit: src.number("limit").map(|l| l.clamp(1.0, hms_protocol::peer_list::MAX_PAGE as f64) as u32) }
    }

    /// The page size in force.
    pub fn page(&self) -> u32 {
        hms_protocol::peer_list::page_size(self.limit) as u32
    }
}

/// The body of `POST /v2/token`.
#[derive(Debug, Clone, Serialize)]
pub struct TokenRequest<'a> {
    /// The room code.
    pub code: &'a str,
    /// The user id to put in the token; the server picks one when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<&'a str>,
}

/// `POST /v2/token` answer: `{token}` on success, `{code, message}` on failure.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TokenAnswer {
    /// The auth token.
    pub token: Option<String>,
    /// Error code.
    pub code: Option<i32>,
    /// Error message.
    pub message: Option<String>,
}

impl TokenAnswer {
    /// Reads the answer.
    pub fn read(src: &impl Source) -> Self {
        Self { token: src.string("token"), code: src.number("code").map(|c| c as i32), message: src.string("message") }
    }
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

    impl Source for serde_json::Value {
        fn string(&self, key: &str) -> Option<String> {
            self.get(key)?.as_str().map(str::to_owned)
        }
        fn number(&self, key: &str) -> Option<f64> {
            self.get(key)?.as_f64()
        }
    }

    /// The hand readers and serde's derived reading of the same types agree, so a field
    /// added, renamed or retyped on one side alone fails here.
    #[test]
    fn readers_agree_with_the_serde_types() {
        let full = serde_json::json!({"endpoint":"ws://h/ws","requestTimeoutMs":250.0,"heartbeatIntervalMs":100.0,"heartbeatTimeoutMs":600.0,"reconnectBudgetMs":0.0});
        let serde: ClientOptions = serde_json::from_value(full.clone()).unwrap();
        assert_eq!(ClientOptions::read(&full), Some(serde.clone()));
        assert_eq!(serde_json::to_value(&serde).unwrap(), full, "every field is read");
        let full = serde_json::json!({"authToken":"t","userName":"Ada","metadata":"{}"});
        let serde: JoinConfig = serde_json::from_value(full.clone()).unwrap();
        assert_eq!(JoinConfig::read(&full), Some(serde.clone()));
        assert_eq!(serde_json::to_value(&serde).unwrap(), full);
        let full = serde_json::json!({"userId":"u","endpoint":"http://h"});
        let serde: TokenOptions = serde_json::from_value(full.clone()).unwrap();
        assert_eq!(TokenOptions::read(&full), serde.clone());
        assert_eq!(serde_json::to_value(&serde).unwrap(), full);
        // Required fields missing: no value (the SDK then throws 6013 ValidationFailed).
        assert_eq!(ClientOptions::read(&serde_json::json!({"requestTimeoutMs": 5})), None);
        assert_eq!(JoinConfig::read(&serde_json::json!({"authToken": "t"})), None);
    }

    #[test]
    fn typescript_comes_from_the_types() {
        let peer = <HmsPeer as Tsify>::DECL;
        assert!(peer.contains("export interface HmsPeer {"), "{peer}");
        assert!(peer.contains("peerId: string;") && peer.contains("isLocal: boolean;") && peer.contains("role: HmsRole;"), "{peer}");
        let ev = <RemovedEvent as Tsify>::DECL;
        assert!(ev.contains("export interface RemovedFromRoomEvent {") && ev.contains("peerWhoRemoved: HmsPeer | null;"), "{ev}");
        let room = <HmsRoom as Tsify>::DECL;
        assert!(room.contains("sessionId: string | null;"), "{room}");
        let opts = <ClientOptions as Tsify>::DECL;
        assert!(opts.contains("export interface HmsClientOptions {") && opts.contains("endpoint: string;") && opts.contains("requestTimeoutMs?: number;"), "{opts}");
        let state = <ConnectionState as Tsify>::DECL;
        assert!(state.contains("\"Reconnecting\"") && state.contains("\"Failed\""), "{state}");
        for decl in [peer, ev, room, opts, state] {
            assert!(!decl.contains("any"), "no any in public payloads: {decl}");
        }
    }

    /// `HmsRole` and `HmsPermissions` are the protocol's `Role` and `Permissions`, whose
    /// `#[serde(default)]` (for reading) would make tsify declare every field optional;
    /// their TypeScript is written in [`ROLE_TS`] and must match what serde produces.
    #[test]
    fn role_typescript_matches_the_protocol_types() {
        let role = Role { name: "host".into(), priority: 1, permissions: Default::default() };
        let v = serde_json::to_value(&role).unwrap();
        let fields = |ts: &str, iface: &str| -> Vec<(String, String)> {
            let body = ts.split(&format!("export interface {iface} {{")).nth(1).unwrap().split('}').next().unwrap();
            body.split(';').map(str::trim).filter(|l| !l.is_empty()).map(|l| {
                let (k, t) = l.split_once(':').unwrap();
                (k.trim().to_owned(), t.trim().to_owned())
            }).collect()
        };
        let ts_type = |v: &serde_json::Value| match v {
            serde_json::Value::Bool(_) => "boolean",
            serde_json::Value::Number(_) => "number",
            serde_json::Value::String(_) => "string",
            _ => "object",
        };
        let perms = v["permissions"].as_object().unwrap();
        let declared = fields(ROLE_TS, "HmsPermissions");
        assert_eq!(declared.len(), perms.len(), "{declared:?} vs {perms:?}");
        for (k, t) in &declared {
            assert_eq!(perms.get(k).map(ts_type), Some(t.as_str()), "HmsPermissions.{k}");
        }
        let declared = fields(ROLE_TS, "HmsRole");
        let role = v.as_object().unwrap();
        assert_eq!(declared.len(), role.len());
        for (k, t) in &declared {
            let expected = if k == "permissions" { "HmsPermissions" } else { ts_type(&role[k]) };
            assert_eq!(t, expected, "HmsRole.{k}");
        }
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
