//! Method names, as the 100ms web SDK spells them.

/// Client -> server: join the room the auth token names.
pub const JOIN: &str = "join";
/// Client -> server notification: leave the room.
pub const LEAVE: &str = "leave";
/// Client -> server: end the room for everyone (needs `endRoom`).
pub const END_ROOM: &str = "end-room";
/// Client -> server: remove another peer (needs `removeOthers`).
pub const PEER_LEAVE_REQUEST: &str = "peer-leave-request";
/// Client -> server: heartbeat; answered with the same timestamp.
pub const PING: &str = "ping";

/// Server -> client: a terminal error for the session; the socket closes after it.
pub const ON_ERROR: &str = "on-error";
/// Server -> client: the local peer's role and every role of the room's template.
pub const ON_POLICY_CHANGE: &str = "on-policy-change";
/// Server -> client: everyone in the room, right after a successful join.
pub const PEER_LIST: &str = "peer-list";
/// Server -> client: another peer joined.
pub const ON_PEER_JOIN: &str = "on-peer-join";
/// Server -> client: another peer left, was removed or dropped.
pub const ON_PEER_LEAVE: &str = "on-peer-leave";
/// Server -> client: you are being removed, or the room is ending.
pub const ON_PEER_LEAVE_REQUEST: &str = "on-peer-leave-request";

/// Client -> server: start reading the room's peer list page by page (100ms's name).
pub const FIND_PEER: &str = "find-peer";
/// Client -> server: the next page of a `find-peer` iterator (100ms's name).
pub const PEER_ITER_NEXT: &str = "peer-iter-next";
/// Client -> server: one peer of the room by id (100ms's name).
pub const GET_PEER: &str = "get-peer";
/// Server -> client, large rooms only: the joins and leaves of one short tick, coalesced
/// (our method: 100ms does not publish its own).
pub const ON_PEER_BATCH: &str = "on-peer-batch";
