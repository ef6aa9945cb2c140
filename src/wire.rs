//! Reading JS values: every server frame is decoded here (the one place), on top of
//! `JSON.parse`, and the option objects apps pass are read through [`Source`]. Frames are
//! read field by field rather than with serde's `Deserialize` into the protocol types:
//! that path's error formatting costs more wasm than the budget has (docs/SDK.md,
//! "Size"). Outgoing frames are written field by field too (`codec.rs`, checked against
//! the protocol's serde types by native tests), then `JSON.stringify`.
//!
//! The property names are made into JS strings once per page ([`Keys`]): making them
//! per read (a UTF-8 decode each) was a fifth of a page's time per room-end notice.

#![cfg_attr(feature = "lever-serde-frames", allow(dead_code, unused_imports))]

use crate::codec::{page_method, read_permissions, write_page_params, write_params, Writer};
use crate::js::{json_parse, json_stringify};
use crate::model::Source;
use crate::room::{Peer, Peers};
use crate::session::{Page, Push};
use hms_protocol::{ClientCall, PeerLeaveRequest, PeerListCall, Permissions, Role, RoomState, RpcError};
use js_sys::{Object, Reflect};
use wasm_bindgen::prelude::*;

macro_rules! keys {
    ($($field:ident = $name:literal),* $(,)?) => {
        /// The property names the decoder reads, as JS strings (one set per client).
        pub(crate) struct Keys { $($field: JsValue,)* }
        impl Keys {
            /// Makes the strings.
            pub(crate) fn new() -> Self {
                Self { $($field: JsValue::from_str($name),)* }
            }
        }
    };
}

keys! {
    id = "id", method = "method", params = "params", error = "error", code = "code", message = "message",
    name = "name", known_roles = "known_roles", priority = "priority", permissions = "permissions",
    peers = "peers", room = "room", room_id = "room_id", session_id = "session_id", started_at = "started_at",
    peer_id = "peer_id", info = "info", data = "data", user_id = "user_id", role = "role", joined_at = "joined_at",
    requested_by = "requested_by", reason = "reason", room_end = "room_end",
    result = "result", iterator = "iterator", total = "total", eof = "eof", peer_count = "peer_count",
    joined = "joined", left = "left", reconnect_secret = "reconnect_secret",
}


fn get(obj: &JsValue, key: &JsValue) -> JsValue {
    if !obj.is_object() {
        return JsValue::UNDEFINED;
    }
    Reflect::get(obj, key).unwrap_or(JsValue::UNDEFINED)
}

fn string(obj: &JsValue, key: &JsValue) -> String {
    get(obj, key).as_string().unwrap_or_default()
}

/// The own enumerable property values of an object (no keys: they would be decoded
/// for nothing).
fn values(obj: &JsValue) -> Vec<JsValue> {
    match obj.dyn_ref::<Object>() {
        Some(o) => Object::values(o).iter().collect(),
        None => Vec::new(),
    }
}

impl Source for JsValue {
    fn string(&self, key: &str) -> Option<String> {
        get(self, &JsValue::from_str(key)).as_string()
    }
    fn number(&self, key: &str) -> Option<f64> {
        get(self, &JsValue::from_str(key)).as_f64()
    }
}

/// A decoded server frame.
pub(crate) enum Frame {
    /// An answer to request `id`, and the `reconnect_secret` it carries (a `join` answer).
    Answer(String, Result<(), RpcError>, Option<String>),
    /// An answer carrying a page of the peer list (its result has an `iterator`).
    Page(String, Page<Peers>),
    /// A push.
    Push(Push),
}

/// Reads a server frame. Frames that are not JSON objects, and pushes of methods this
/// SDK does not know, are skipped (`None`) so a newer server stays compatible.
pub(crate) fn decode(k: &Keys, text: &JsValue) -> Option<Frame> {
    let v = json_parse(text).ok()?;
    decode_value(k, &v)
}

/// Measurement only (`lever-serde-frames`, scripts/size-levers.sh): every frame through
/// serde-wasm-bindgen's `from_value` into the protocol's types.
#[cfg(feature = "lever-serde-frames")]
fn decode_value(_k: &Keys, v: &JsValue) -> Option<Frame> {
    #[derive(serde::Deserialize)]
    struct Answer {
        id: Option<String>,
        error: Option<RpcError>,
        result: Option<AnswerResult>,
    }
    #[derive(serde::Deserialize)]
    struct AnswerResult {
        reconnect_secret: Option<String>,
    }
    let a: Answer = serde_wasm_bindgen::from_value(v.clone()).ok()?;
    if let Some(id) = a.id {
        let secret = a.result.and_then(|r| r.reconnect_secret);
        return Some(Frame::Answer(id, a.error.map_or(Ok(()), Err), secret));
    }
    let push: hms_protocol::ServerPush = serde_wasm_bindgen::from_value(v.clone()).ok()?;
    Some(Frame::Push(push.into()))
}

/// The option objects apps pass: read by hand ([`Source`]), or with `from_value` for
/// measurement only (`lever-serde-options`).
pub(crate) fn read_options<T: serde::de::DeserializeOwned>(v: &JsValue, by_hand: impl FnOnce(&JsValue) -> Option<T>) -> Option<T> {
    if cfg!(feature = "lever-serde-options") {
        serde_wasm_bindgen::from_value(v.clone()).ok()
    } else {
        by_hand(v)
    }
}

#[cfg(not(feature = "lever-serde-frames"))]
fn decode_value(k: &Keys, v: &JsValue) -> Option<Frame> {
    if let Some(id) = get(v, &k.id).as_string() {
        let error = get(v, &k.error);
        let r = get(v, &k.result);
        if let (false, Some(iterator)) = (error.is_object(), get(&r, &k.iterator).as_string()) {
            let peers = peer_array(k, &get(&r, &k.peers));
            let total = get(&r, &k.total).as_f64().map_or(0, |n| n as u64);
            return Some(Frame::Page(id, Page { iterator, total, eof: get(&r, &k.eof).as_bool().unwrap_or(false), peers }));
        }
        let result = if error.is_object() { Err(rpc_error(k, &error)) } else { Ok(()) };
        let secret = get(&r, &k.reconnect_secret).as_string();
        return Some(Frame::Answer(id, result, secret));
    }
    let method = get(v, &k.method).as_string()?;
    let p = get(v, &k.params);
    let push = match method.as_str() {
        hms_protocol::method::ON_POLICY_CHANGE => {
            Push::Policy { role: string(&p, &k.name), roles: values(&get(&p, &k.known_roles)).iter().map(|r| role(k, r)).collect() }
        }
        hms_protocol::method::PEER_LIST => {
            let r = get(&p, &k.room);
            Push::PeerList {
                peers: peer_array(k, &get(&p, &k.peers)),
                peer_count: get(&p, &k.peer_count).as_f64().map(|n| n as u64),
                room: RoomState {
                    room_id: string(&r, &k.room_id),
                    name: string(&r, &k.name),
                    session_id: get(&r, &k.session_id).as_string(),
                    started_at: get(&r, &k.started_at).as_f64().map(|t| t as u64),
                },
            }
        }
        hms_protocol::method::ON_PEER_BATCH => Push::PeerBatch {
            joined: peer_array(k, &get(&p, &k.joined)),
            left: values(&get(&p, &k.left)).iter().filter_map(JsValue::as_string).collect(),
            peer_count: get(&p, &k.peer_count).as_f64().map_or(0, |n| n as u64),
        },
        hms_protocol::method::ON_PEER_JOIN => Push::PeerJoin(peer(k, &p)),
        hms_protocol::method::ON_PEER_LEAVE => Push::PeerLeave(peer(k, &p)),
        hms_protocol::method::ON_PEER_LEAVE_REQUEST => Push::LeaveRequest(PeerLeaveRequest {
            requested_by: get(&p, &k.requested_by).as_string(),
            reason: string(&p, &k.reason),
            room_end: get(&p, &k.room_end).as_bool().unwrap_or(false),
        }),
        hms_protocol::method::ON_ERROR => Push::Error(rpc_error(k, &p)),
        _ => return None,
    };
    Some(Frame::Push(push))
}

fn rpc_error(k: &Keys, e: &JsValue) -> RpcError {
    RpcError {
        code: get(e, &k.code).as_f64().map_or(hms_protocol::code::INTERNAL, |c| c as i32),
        message: get(e, &k.message).as_string().unwrap_or_else(|| String::from("the server reported an error")),
    }
}

/// The permission flags of a role object (`codec::read_permissions`).
fn permissions(obj: &JsValue) -> Permissions {
    let flags: Vec<(String, bool)> = match obj.dyn_ref::<Object>() {
        Some(o) => Object::entries(o)
            .iter()
            .filter_map(|pair| {
                let pair: js_sys::Array = pair.unchecked_into();
                Some((pair.get(0).as_string()?, pair.get(1).as_bool()?))
            })
            .collect(),
        None => Vec::new(),
    };
    read_permissions(flags)
}

fn role(k: &Keys, r: &JsValue) -> Role {
    Role {
        name: string(r, &k.name),
        priority: get(r, &k.priority).as_f64().map_or(0, |n| n as i32),
        permissions: permissions(&get(r, &k.permissions)),
    }
}

/// The peers of an object's values or an array's items (`peer-list`'s map, a page, a batch).
fn peer_array(k: &Keys, list: &JsValue) -> Peers {
    let mut peers = Peers::default();
    for n in values(list) {
        let info = get(&n, &k.info);
        let joined_at = get(&n, &k.joined_at).as_f64().map_or(0, |t| t as u64);
        let (id, name, data, user, role) =
            (string(&n, &k.peer_id), string(&info, &k.name), string(&info, &k.data), string(&info, &k.user_id), string(&n, &k.role));
        peers.push(&id, &name, &data, &user, &role, joined_at);
    }
    peers
}

fn peer(k: &Keys, n: &JsValue) -> Peer {
    let info = get(n, &k.info);
    Peer::new(
        &string(n, &k.peer_id),
        &string(&info, &k.name),
        &string(&info, &k.data),
        &string(&info, &k.user_id),
        &string(n, &k.role),
        get(n, &k.joined_at).as_f64().map_or(0, |t| t as u64),
    )
}

struct JsWriter(Object);

impl Writer for JsWriter {
    fn string(&mut self, key: &str, value: &str) {
        let _ = Reflect::set(&self.0, &JsValue::from_str(key), &JsValue::from_str(value));
    }
    fn boolean(&mut self, key: &str, value: bool) {
        let _ = Reflect::set(&self.0, &JsValue::from_str(key), &JsValue::from_bool(value));
    }
    fn number(&mut self, key: &str, value: f64) {
        let _ = Reflect::set(&self.0, &JsValue::from_str(key), &JsValue::from_f64(value));
    }
}

/// A peer-list request frame as JSON text (`codec::write_page_params`).
pub(crate) fn encode_page(id: &str, call: &PeerListCall) -> Option<String> {
    let mut frame = JsWriter(Object::new());
    frame.string("jsonrpc", hms_protocol::JSONRPC_VERSION);
    frame.string("id", id);
    frame.string("method", page_method(call));
    let mut params = JsWriter(Object::new());
    write_page_params(call, &mut params);
    let _ = Reflect::set(&frame.0, &JsValue::from_str("params"), &params.0);
    json_stringify(&frame.0).ok().map(String::from)
}

/// A client frame as JSON text: `{"jsonrpc":"2.0","id"?,"method","params"}`. Written
/// field by field (`codec::write_params`, checked against the protocol's `ClientCall`
/// and `ClientRequest` by native tests): serde's tagged-enum and `flatten`
/// serialization cost about 1 KB gzip more (docs/SDK.md, "Size").
pub(crate) fn encode(id: Option<&str>, call: &ClientCall) -> Option<String> {
    let mut frame = JsWriter(Object::new());
    frame.string("jsonrpc", hms_protocol::JSONRPC_VERSION);
    if let Some(id) = id {
        frame.string("id", id);
    }
    frame.string("method", call.method());
    let mut params = JsWriter(Object::new());
    write_params(call, &mut params);
    let _ = Reflect::set(&frame.0, &JsValue::from_str("params"), &params.0);
    json_stringify(&frame.0).ok().map(String::from)
}
