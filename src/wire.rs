//! JS <-> Rust conversions for the wasm build, written by hand with `Reflect` on top of
//! `JSON.parse`/`JSON.stringify`. Derived serde impls would work too, but their error
//! paths pull float and `Debug` formatting into the module and tripled the package size
//! (measured: ~98 KB gzip with serde-wasm-bindgen versus the 40 KB budget).

use crate::js::{json_parse, json_stringify};
use crate::model::{ClientOptions, HmsPeer, HmsRoom, JoinConfig, RemovedEvent, TokenAnswer, TokenOptions};
use crate::session::{Peer, Push};
use hms_protocol::{ClientCall, PeerLeaveRequest, Permissions, Role, RoomState, RpcError};
use js_sys::{Array, Object, Reflect};
use wasm_bindgen::prelude::*;

fn get(obj: &JsValue, key: &str) -> JsValue {
    if !obj.is_object() {
        return JsValue::UNDEFINED;
    }
    Reflect::get(obj, &JsValue::from_str(key)).unwrap_or(JsValue::UNDEFINED)
}

fn get_str(obj: &JsValue, key: &str) -> Option<String> {
    get(obj, key).as_string()
}

fn get_string(obj: &JsValue, key: &str) -> String {
    get_str(obj, key).unwrap_or_default()
}

fn get_f64(obj: &JsValue, key: &str) -> Option<f64> {
    get(obj, key).as_f64()
}

fn get_bool(obj: &JsValue, key: &str) -> bool {
    get(obj, key).as_bool().unwrap_or(false)
}

fn set(obj: &Object, key: &str, value: &JsValue) {
    let _ = Reflect::set(obj, &JsValue::from_str(key), value);
}

fn set_str(obj: &Object, key: &str, value: &str) {
    set(obj, key, &JsValue::from_str(value));
}

/// The own enumerable `[key, value]` pairs of an object.
fn entries(obj: &JsValue) -> Vec<(String, JsValue)> {
    match obj.is_object() {
        true => Object::entries(obj.unchecked_ref())
            .iter()
            .filter_map(|pair| {
                let pair: Array = pair.unchecked_into();
                pair.get(0).as_string().map(|k| (k, pair.get(1)))
            })
            .collect(),
        false => Vec::new(),
    }
}

/// A decoded server frame.
pub(crate) enum Frame {
    /// An answer to request `id`.
    Answer(String, Result<(), RpcError>),
    /// A push.
    Push(Push),
}

/// Reads a server frame. Frames that are not JSON objects, and pushes of methods this
/// SDK does not know, are skipped (`None`) so a newer server stays compatible.
pub(crate) fn decode(text: &str) -> Option<Frame> {
    let v = json_parse(text).ok()?;
    if let Some(id) = get_str(&v, "id") {
        let error = get(&v, "error");
        let result = if error.is_object() { Err(rpc_error(&error)) } else { Ok(()) };
        return Some(Frame::Answer(id, result));
    }
    let method = get_str(&v, "method")?;
    let p = get(&v, "params");
    let push = match method.as_str() {
        hms_protocol::method::ON_POLICY_CHANGE => Push::Policy {
            role: get_string(&p, "name"),
            roles: entries(&get(&p, "known_roles")).iter().map(|(_, r)| role(r)).collect(),
        },
        hms_protocol::method::PEER_LIST => {
            let r = get(&p, "room");
            Push::PeerList {
                peers: entries(&get(&p, "peers")).iter().map(|(_, n)| peer(n)).collect(),
                room: RoomState {
                    room_id: get_string(&r, "room_id"),
                    name: get_string(&r, "name"),
                    session_id: get_str(&r, "session_id"),
                    started_at: get_f64(&r, "started_at").map(|t| t as u64),
                },
            }
        }
        hms_protocol::method::ON_PEER_JOIN => Push::PeerJoin(peer(&p)),
        hms_protocol::method::ON_PEER_LEAVE => Push::PeerLeave(peer(&p)),
        hms_protocol::method::ON_PEER_LEAVE_REQUEST => Push::LeaveRequest(PeerLeaveRequest {
            requested_by: get_str(&p, "requested_by"),
            reason: get_string(&p, "reason"),
            room_end: get_bool(&p, "room_end"),
        }),
        hms_protocol::method::ON_ERROR => Push::Error(rpc_error(&p)),
        _ => return None,
    };
    Some(Frame::Push(push))
}

fn rpc_error(e: &JsValue) -> RpcError {
    RpcError {
        code: get_f64(e, "code").map_or(hms_protocol::code::INTERNAL, |c| c as i32),
        message: get_str(e, "message").unwrap_or_else(|| String::from("the server reported an error")),
    }
}

fn role(r: &JsValue) -> Role {
    let p = get(r, "permissions");
    Role {
        name: get_string(r, "name"),
        priority: get_f64(r, "priority").map_or(0, |n| n as i32),
        permissions: Permissions {
            end_room: get_bool(&p, "endRoom"),
            remove_others: get_bool(&p, "removeOthers"),
            mute: get_bool(&p, "mute"),
            unmute: get_bool(&p, "unmute"),
            change_role: get_bool(&p, "changeRole"),
            hls_streaming: get_bool(&p, "hlsStreaming"),
            rtmp_streaming: get_bool(&p, "rtmpStreaming"),
            browser_recording: get_bool(&p, "browserRecording"),
            poll_read: get_bool(&p, "pollRead"),
            poll_write: get_bool(&p, "pollWrite"),
        },
    }
}

fn peer(n: &JsValue) -> Peer {
    let info = get(n, "info");
    Peer {
        peer_id: get_string(n, "peer_id"),
        name: get_string(&info, "name"),
        data: get_string(&info, "data"),
        user_id: get_string(&info, "user_id"),
        role: get_string(n, "role"),
        joined_at: get_f64(n, "joined_at").map_or(0, |t| t as u64),
    }
}

/// A client frame as JSON text: `{"jsonrpc":"2.0","id"?,"method","params"}`.
pub(crate) fn encode(id: Option<&str>, call: &ClientCall) -> Option<String> {
    let params = Object::new();
    match call {
        ClientCall::Join(p) => {
            set_str(&params, "name", &p.name);
            set_str(&params, "data", &p.data);
        }
        ClientCall::Leave(p) => {
            if let Some(r) = &p.client_reason {
                set_str(&params, "client_reason", r);
            }
        }
        ClientCall::EndRoom(p) => {
            set(&params, "lock", &JsValue::from_bool(p.lock));
            set_str(&params, "reason", &p.reason);
        }
        ClientCall::PeerLeaveRequest(p) => {
            set_str(&params, "requested_for", &p.requested_for);
            set_str(&params, "reason", &p.reason);
        }
        ClientCall::Ping(p) => set(&params, "timestamp", &JsValue::from_f64(p.timestamp as f64)),
    }
    let frame = Object::new();
    set_str(&frame, "jsonrpc", hms_protocol::JSONRPC_VERSION);
    if let Some(id) = id {
        set_str(&frame, "id", id);
    }
    set_str(&frame, "method", call.method());
    set(&frame, "params", &params);
    json_stringify(&frame).ok().map(String::from)
}

/// `HmsPeer` as a plain object.
pub(crate) fn peer_to_js(p: &HmsPeer) -> JsValue {
    let o = Object::new();
    set_str(&o, "peerId", &p.peer_id);
    set_str(&o, "name", &p.name);
    set_str(&o, "userId", &p.user_id);
    set_str(&o, "metadata", &p.metadata);
    set(&o, "isLocal", &JsValue::from_bool(p.is_local));
    let role = Object::new();
    set_str(&role, "name", &p.role.name);
    set(&role, "priority", &JsValue::from(p.role.priority));
    let perms = Object::new();
    let x = &p.role.permissions;
    for (k, v) in [
        ("endRoom", x.end_room),
        ("removeOthers", x.remove_others),
        ("mute", x.mute),
        ("unmute", x.unmute),
        ("changeRole", x.change_role),
        ("hlsStreaming", x.hls_streaming),
        ("rtmpStreaming", x.rtmp_streaming),
        ("browserRecording", x.browser_recording),
        ("pollRead", x.poll_read),
        ("pollWrite", x.poll_write),
    ] {
        set(&perms, k, &JsValue::from_bool(v));
    }
    set(&role, "permissions", &perms);
    set(&o, "role", &role);
    o.into()
}

/// `HmsRoom` as a plain object.
pub(crate) fn room_to_js(r: &HmsRoom) -> JsValue {
    let o = Object::new();
    set_str(&o, "id", &r.id);
    set_str(&o, "name", &r.name);
    set(&o, "sessionId", &r.session_id.as_deref().map_or(JsValue::NULL, JsValue::from_str));
    o.into()
}

/// `RemovedFromRoomEvent` as a plain object.
pub(crate) fn removed_to_js(ev: &RemovedEvent) -> JsValue {
    let o = Object::new();
    set_str(&o, "reason", &ev.reason);
    set(&o, "roomWasEnded", &JsValue::from_bool(ev.room_was_ended));
    set(&o, "peerWhoRemoved", &ev.peer_who_removed.as_ref().map_or(JsValue::NULL, peer_to_js));
    o.into()
}

/// `HmsClientOptions`; `None` when `endpoint` is not a string.
pub(crate) fn client_options(v: &JsValue) -> Option<ClientOptions> {
    Some(ClientOptions {
        endpoint: get_str(v, "endpoint")?,
        request_timeout_ms: get_f64(v, "requestTimeoutMs"),
        heartbeat_interval_ms: get_f64(v, "heartbeatIntervalMs"),
        heartbeat_timeout_ms: get_f64(v, "heartbeatTimeoutMs"),
        reconnect_budget_ms: get_f64(v, "reconnectBudgetMs"),
    })
}

/// `HmsJoinConfig`; `None` when `authToken` or `userName` is not a string.
pub(crate) fn join_config(v: &JsValue) -> Option<JoinConfig> {
    Some(JoinConfig { auth_token: get_str(v, "authToken")?, user_name: get_str(v, "userName")?, metadata: get_str(v, "metadata") })
}

/// `HmsTokenOptions` (all optional).
pub(crate) fn token_options(v: &JsValue) -> TokenOptions {
    TokenOptions { user_id: get_str(v, "userId"), endpoint: get_str(v, "endpoint") }
}

/// The body of `POST /v2/token`.
pub(crate) fn token_request(code: &str, user_id: Option<&str>) -> Option<String> {
    let o = Object::new();
    set_str(&o, "code", code);
    if let Some(u) = user_id {
        set_str(&o, "user_id", u);
    }
    json_stringify(&o).ok().map(String::from)
}

/// The answer of `POST /v2/token` (empty when it is not JSON).
pub(crate) fn token_answer(text: &str) -> TokenAnswer {
    match json_parse(text) {
        Ok(v) => TokenAnswer { token: get_str(&v, "token"), code: get_f64(&v, "code").map(|c| c as i32), message: get_str(&v, "message") },
        Err(_) => TokenAnswer::default(),
    }
}
