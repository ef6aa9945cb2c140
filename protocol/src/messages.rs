//! Params of client requests and payloads of server pushes, as serde structs.
//!
//! Field names are snake_case where 100ms has them so (`peer_id`, `room_end`); role
//! objects are camelCase (see [`crate::permissions`]). Unknown fields are ignored on
//! input so that newer peers stay compatible with older ones.

use crate::permissions::Role;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `join` params. 100ms sends more fields (`disableVidAutoSub`, `simulcast`, ...); we have
/// no media, so only the name and the app's metadata matter and the rest are ignored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinParams {
    /// Display name of the joining peer.
    pub name: String,
    /// Free-form metadata the app attaches to the peer (often JSON text).
    #[serde(default)]
    pub data: String,
}

/// The `join` result. `reconnect_secret` proves, on a reconnect, that a connection is this
/// peer's own: the server lets a new connection take over a live place, or reclaim a place
/// held after a drop, only when its URL carries `reconnect_secret=<this value>` (with a
/// token for the same room, user and role). Random (256 bits), the same for the life of
/// the place; keep it in memory only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinResult {
    /// 64 lowercase hex characters.
    pub reconnect_secret: String,
}

/// `leave` params (sent as a notification, no answer).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaveParams {
    /// `"user request"` or `"sdk request"` in 100ms; free text here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_reason: Option<String>,
}

/// `end-room` params.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndRoomParams {
    /// Keep the room disabled after it ends: later joins fail with 423 until re-enabled.
    pub lock: bool,
    /// Shown to every removed peer.
    pub reason: String,
}

/// `peer-leave-request` params: remove another peer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerLeaveRequestParams {
    /// The peer to remove.
    pub requested_for: String,
    /// Shown to the removed peer.
    pub reason: String,
}

/// `ping` params and result: the client's clock in ms, echoed back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PingParams {
    /// Milliseconds since the Unix epoch, as the client's clock has them.
    pub timestamp: u64,
}

/// The result of a request that has nothing to return: always the object `{}`, never
/// null, because the 100ms SDK treats a falsy result as an error.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Empty {}

/// `peer.info`: who the peer is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerInfo {
    /// Display name given at join.
    pub name: String,
    /// App metadata given at join.
    #[serde(default)]
    pub data: String,
    /// The `user_id` claim of the peer's auth token.
    #[serde(default)]
    pub user_id: String,
    /// `"regular"` for browser peers (100ms also has `"sip"`).
    #[serde(rename = "type", default = "regular")]
    pub peer_type: String,
}

fn regular() -> String {
    "regular".to_owned()
}

/// A peer as the server describes it in `peer-list`, `on-peer-join` and `on-peer-leave`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerNotification {
    /// The id the client chose when it connected (`?peer=`).
    pub peer_id: String,
    /// Name, metadata and user id.
    pub info: PeerInfo,
    /// Name of the peer's role; the role object is in `on-policy-change`'s `known_roles`.
    pub role: String,
    /// When the peer joined, ms since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub joined_at: Option<u64>,
    /// Media tracks; always empty (this is a control plane without media).
    #[serde(default)]
    pub tracks: BTreeMap<String, Empty>,
    /// Peer groups; always empty here.
    #[serde(default)]
    pub groups: Vec<String>,
}

/// `room` of `peer-list`: the room and its current session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomState {
    /// The room id the auth tokens name (our addition to 100ms's shape).
    pub room_id: String,
    /// The room's display name.
    pub name: String,
    /// The current session: starts at the first join, ends when the room is ended or empties.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// When the session started, ms since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<u64>,
}

/// `peer-list` params: everyone in the room (the joiner included) and the room itself; in
/// a large room, the joiner, the first page and the count.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerList {
    /// Every joined peer by id, the receiver included.
    pub peers: BTreeMap<String, PeerNotification>,
    /// The room and its session.
    pub room: RoomState,
    /// Large rooms only: how many peers the room has (`peers` is then only the receiver
    /// and the first page; the rest is read with `find-peer`). Absent in small rooms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_count: Option<u64>,
    /// `true` in a large room (100ms's name for the mode); absent in small rooms.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub large_room_optimization: bool,
}

/// `on-policy-change` params: the local peer's role and all roles of the room's template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyChange {
    /// Name of the receiver's own role.
    pub name: String,
    /// Every role of the template by name.
    pub known_roles: BTreeMap<String, Role>,
    /// The template the roles come from.
    #[serde(default)]
    pub template_id: String,
}

/// `on-peer-leave-request` params: the receiver is being removed, or the room is ending.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerLeaveRequest {
    /// The peer who ended the room or removed the receiver; absent when a back end did
    /// it through the REST API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_by: Option<String>,
    /// Why, in the words of whoever did it.
    pub reason: String,
    /// `true` when the whole room ended, `false` when only the receiver was removed.
    pub room_end: bool,
}
