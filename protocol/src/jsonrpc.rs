//! JSON-RPC 2.0 framing: requests, responses and server pushes.
//!
//! - Request: `{"jsonrpc":"2.0","id":"<uuid>","method":"end-room","params":{...}}`.
//! - Client notification: the same without `id` (only `leave` is sent this way).
//! - Response: `{"jsonrpc":"2.0","id":"<uuid>","result":{...}}` or `{..., "error":{"code","message"}}`.
//! - Server push: `{"method":"on-peer-join","params":{...}}`, no `id`.

use crate::error::RpcError;
use crate::messages::*;
use crate::method;
use serde::{Deserialize, Deserializer, Serialize};

/// A call the client makes, tagged by `method` with its `params`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "method", content = "params")]
pub enum ClientCall {
    /// `join`.
    #[serde(rename = "join")]
    Join(JoinParams),
    /// `leave` (a notification: no id, no answer).
    #[serde(rename = "leave")]
    Leave(LeaveParams),
    /// `end-room`.
    #[serde(rename = "end-room")]
    EndRoom(EndRoomParams),
    /// `peer-leave-request`.
    #[serde(rename = "peer-leave-request")]
    PeerLeaveRequest(PeerLeaveRequestParams),
    /// `ping`.
    #[serde(rename = "ping")]
    Ping(PingParams),
}

impl ClientCall {
    /// The wire name of the method.
    pub fn method(&self) -> &'static str {
        match self {
            ClientCall::Join(_) => method::JOIN,
            ClientCall::Leave(_) => method::LEAVE,
            ClientCall::EndRoom(_) => method::END_ROOM,
            ClientCall::PeerLeaveRequest(_) => method::PEER_LEAVE_REQUEST,
            ClientCall::Ping(_) => method::PING,
        }
    }

    /// Decodes `params` for `method` in two steps, so that an unknown method (-32601) and
    /// params of the wrong shape (-32602) get their own codes. `params` is any serde
    /// deserializer over the params value (the server passes a `serde_json::Value`).
    pub fn parse<'de, D: Deserializer<'de>>(method_name: &str, params: D) -> Result<Self, RpcError> {
        fn typed<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
            name: &str,
            params: D,
            wrap: fn(T) -> ClientCall,
        ) -> Result<ClientCall, RpcError> {
            T::deserialize(params).map(wrap).map_err(|e| RpcError::invalid_params(name, e))
        }
        match method_name {
            method::JOIN => typed(method_name, params, ClientCall::Join),
            method::LEAVE => typed(method_name, params, ClientCall::Leave),
            method::END_ROOM => typed(method_name, params, ClientCall::EndRoom),
            method::PEER_LEAVE_REQUEST => typed(method_name, params, ClientCall::PeerLeaveRequest),
            method::PING => typed(method_name, params, ClientCall::Ping),
            other => Err(RpcError::method_not_found(other)),
        }
    }
}

/// A whole client frame: the call plus the JSON-RPC envelope. Serialize it to send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClientRequest<'a> {
    /// Always `"2.0"`.
    pub jsonrpc: &'static str,
    /// The request id (a UUID v4 in 100ms); `None` for notifications.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<&'a str>,
    /// Method and params.
    #[serde(flatten)]
    pub call: &'a ClientCall,
}

impl<'a> ClientRequest<'a> {
    /// A request that expects an answer with `id`.
    pub fn new(id: &'a str, call: &'a ClientCall) -> Self {
        Self { jsonrpc: crate::JSONRPC_VERSION, id: Some(id), call }
    }
    /// A notification (no id, no answer).
    pub fn notification(call: &'a ClientCall) -> Self {
        Self { jsonrpc: crate::JSONRPC_VERSION, id: None, call }
    }
}

/// A push from the server (no `id`), tagged by `method`. Serializes to exactly the frame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "method", content = "params")]
pub enum ServerPush {
    /// `on-error`: terminal; the server closes the socket right after.
    #[serde(rename = "on-error")]
    Error(RpcError),
    /// `on-policy-change`.
    #[serde(rename = "on-policy-change")]
    PolicyChange(PolicyChange),
    /// `peer-list`.
    #[serde(rename = "peer-list")]
    PeerList(PeerList),
    /// `on-peer-join`.
    #[serde(rename = "on-peer-join")]
    PeerJoin(PeerNotification),
    /// `on-peer-leave`.
    #[serde(rename = "on-peer-leave")]
    PeerLeave(PeerNotification),
    /// `on-peer-leave-request`.
    #[serde(rename = "on-peer-leave-request")]
    PeerLeaveRequest(PeerLeaveRequest),
}

/// A server answer to the request `id`: `result` on success, `error` on failure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response<Id, R> {
    /// Always `"2.0"`.
    #[serde(default = "jsonrpc_version")]
    pub jsonrpc: String,
    /// The request's id, echoed (null when the request could not be read at all).
    pub id: Id,
    /// The success value: always an object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<R>,
    /// The failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<RpcError>,
}

fn jsonrpc_version() -> String {
    crate::JSONRPC_VERSION.to_owned()
}

impl<Id, R> Response<Id, R> {
    /// A success.
    pub fn ok(id: Id, result: R) -> Self {
        Self { jsonrpc: jsonrpc_version(), id, result: Some(result), error: None }
    }
    /// A failure.
    pub fn err(id: Id, error: RpcError) -> Self {
        Self { jsonrpc: jsonrpc_version(), id, result: None, error: Some(error) }
    }
}

/// Any frame a server sends, read loosely in one pass: a response has `id` and `result`
/// or `error`; a push has `method` and `params`. `V` is the decoder's raw value type
/// (`serde_json::Value` natively, `JsValue` in the SDK), decoded further once the kind
/// of frame is known.
#[derive(Debug, Clone, Deserialize)]
pub struct ServerFrame<V> {
    /// The answered request's id.
    #[serde(default)]
    pub id: Option<String>,
    /// The push's method.
    #[serde(default)]
    pub method: Option<String>,
    /// The push's params.
    #[serde(default = "none")]
    pub params: Option<V>,
    /// A success answer.
    #[serde(default = "none")]
    pub result: Option<V>,
    /// A failure answer.
    #[serde(default)]
    pub error: Option<RpcError>,
}

fn none<V>() -> Option<V> {
    None
}
