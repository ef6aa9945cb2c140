//! The room registry: where the rooms live. This is the seam between the use cases
//! ([`crate::app`]) and the room model. Today every room lives in this process
//! ([`Rooms::Local`], the [`Hub`]); a registry that shares rooms between server nodes
//! becomes another variant here, and `app` does not change. The methods are async
//! because a shared registry waits on the network; the local one never waits.

use crate::conn::{ConnHandle, Fanout};
use crate::error::Error;
use crate::frame::Text;
use crate::room::{ActiveRoom, Connected, Effects, EndTicket, Hub, PeerBatchFrame};
use hms_protocol::{FindPeerParams, PeerLeaveRequest, Role};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

/// Where the rooms live. See the module doc.
pub enum Rooms {
    /// In this process.
    Local(Hub),
}

impl Rooms {
    /// The template's roles.
    pub fn known_roles(&self) -> &BTreeMap<String, Role> {
        match self {
            Rooms::Local(h) => h.known_roles(),
        }
    }

    /// Marks a room as locked or not (the durable flag is the store's).
    pub async fn set_locked(&self, room_id: &str, locked: bool) {
        match self {
            Rooms::Local(h) => h.set_locked(room_id, locked),
        }
    }

    /// A lock change the store just committed (called on the store's thread, in commit
    /// order; see `Store::on_lock_change`). Never waits.
    pub fn lock_committed(&self, room_id: &str, locked: bool) {
        match self {
            Rooms::Local(h) => h.set_locked(room_id, locked),
        }
    }

    /// Whether joins to the room are refused.
    pub async fn is_locked(&self, room_id: &str) -> bool {
        match self {
            Rooms::Local(h) => h.is_locked(room_id),
        }
    }

    /// A new connection for `peer_id` in `room_id`, authenticated as `user_id` with `role`,
    /// presenting a reconnect `secret` or none (see [`Hub::connect`]).
    pub async fn connect(
        &self,
        room_id: &str,
        peer_id: &str,
        user_id: &str,
        role: &str,
        secret: Option<&str>,
        conn: ConnHandle,
    ) -> Result<Connected, Error> {
        match self {
            Rooms::Local(h) => h.connect(room_id, peer_id, user_id, role, secret, conn),
        }
    }

    /// `join`: `ok` (the serialized answer) goes out first, then the policy and the peer
    /// list; the others are told.
    #[allow(clippy::too_many_arguments)]
    pub async fn join(&self, room_id: &str, peer_id: &str, conn_id: u64, name: &str, data: &str, ok: Text) -> Result<Effects, Error> {
        match self {
            Rooms::Local(h) => h.join(room_id, peer_id, conn_id, name, data, ok),
        }
    }

    /// Whether `conn_id` is the joined connection of `peer_id`.
    pub async fn is_joined(&self, room_id: &str, peer_id: &str, conn_id: u64) -> bool {
        match self {
            Rooms::Local(h) => h.is_joined(room_id, peer_id, conn_id),
        }
    }

    /// `leave`: the peer goes for good; the others are told.
    pub async fn leave(&self, room_id: &str, peer_id: &str, conn_id: u64) -> Result<Effects, Error> {
        match self {
            Rooms::Local(h) => h.leave(room_id, peer_id, conn_id),
        }
    }

    /// The connection ended without `leave`; `hold` keeps a joined peer's place.
    pub async fn disconnected(&self, room_id: &str, peer_id: &str, conn_id: u64, hold: bool) -> Effects {
        match self {
            Rooms::Local(h) => h.disconnected(room_id, peer_id, conn_id, hold),
        }
    }

    /// A held place's reconnect window ran out.
    pub async fn hold_expired(&self, room_id: &str, peer_id: &str, gen: u64) -> Effects {
        match self {
            Rooms::Local(h) => h.hold_expired(room_id, peer_id, gen),
        }
    }

    /// First half of an end: checks the requester, marks the room ending.
    pub async fn begin_end_room(&self, room_id: &str, requester: Option<(&str, u64)>, lock: bool) -> Result<EndTicket, Error> {
        match self {
            Rooms::Local(h) => h.begin_end_room(room_id, requester, lock),
        }
    }

    /// Undoes [`Rooms::begin_end_room`] when the end could not be stored.
    pub async fn abort_end_room(&self, room_id: &str, ticket: &EndTicket) {
        match self {
            Rooms::Local(h) => h.abort_end_room(room_id, ticket),
        }
    }

    /// Second half of an end: everyone else is told; returns the requester's connection
    /// and the notices' fan-out (it tells when they are written).
    pub async fn finish_end_room(&self, room_id: &str, requested_by: Option<&str>, reason: &str) -> (Option<ConnHandle>, Arc<Fanout>) {
        match self {
            Rooms::Local(h) => h.finish_end_room(room_id, requested_by, reason),
        }
    }

    /// Removes `target`; `requester` is `None` for the REST API.
    pub async fn remove_peer(&self, room_id: &str, requester: Option<(&str, u64)>, target: &str, reason: &str) -> Result<Effects, Error> {
        match self {
            Rooms::Local(h) => h.remove_peer(room_id, requester, target, reason),
        }
    }

    /// `find-peer`: a new iterator of the peer's and its first page, as the answer to `id`.
    pub async fn find_peer(&self, room_id: &str, peer_id: &str, conn_id: u64, id: &Value, params: &FindPeerParams) -> Result<Text, Error> {
        match self {
            Rooms::Local(h) => h.find_peer(room_id, peer_id, conn_id, id, params),
        }
    }

    /// `peer-iter-next`: the next page of one of the peer's iterators, as the answer to `id`.
    #[allow(clippy::too_many_arguments)]
    pub async fn peer_iter_next(&self, room_id: &str, peer_id: &str, conn_id: u64, id: &Value, iterator: &str, limit: Option<u32>) -> Result<Text, Error> {
        match self {
            Rooms::Local(h) => h.peer_iter_next(room_id, peer_id, conn_id, id, iterator, limit),
        }
    }

    /// `get-peer`: one peer of the room, as the answer to `id`.
    pub async fn get_peer(&self, room_id: &str, peer_id: &str, conn_id: u64, id: &Value, target: &str) -> Result<Text, Error> {
        match self {
            Rooms::Local(h) => h.get_peer(room_id, peer_id, conn_id, id, target),
        }
    }

    /// Takes a large room's pending joins and leaves for flush `token`.
    pub async fn take_batch(&self, room_id: &str, token: u64) -> Option<PeerBatchFrame> {
        match self {
            Rooms::Local(h) => h.take_batch(room_id, token),
        }
    }

    /// Queues a batch to the room's subscribers; whether another flush is due.
    pub async fn send_batch(&self, room_id: &str, token: u64, frame: Option<Text>) -> bool {
        match self {
            Rooms::Local(h) => h.send_batch(room_id, token, frame),
        }
    }

    /// Peer ids of the room's visible peers with `role`.
    pub async fn peers_with_role(&self, room_id: &str, role: &str) -> Vec<String> {
        match self {
            Rooms::Local(h) => h.peers_with_role(room_id, role),
        }
    }

    /// The room's running session and peers.
    pub async fn active_room(&self, room_id: &str) -> Option<ActiveRoom> {
        match self {
            Rooms::Local(h) => h.active_room(room_id),
        }
    }

    /// Remembers, from an end record, that `peer_id` ended the room (see [`Hub::remember_end`]).
    pub async fn remember_end(&self, room_id: &str, peer_id: &str, user_id: &str, notice: PeerLeaveRequest, until: Instant) {
        match self {
            Rooms::Local(h) => h.remember_end(room_id, peer_id, user_id, notice, until),
        }
    }

    /// Forgets expired tombstones.
    pub async fn sweep(&self) {
        match self {
            Rooms::Local(h) => h.sweep(),
        }
    }

    /// Closes every connection and forgets every room; returns the running sessions and
    /// how many connections were told.
    pub async fn shutdown(&self) -> (Vec<String>, usize) {
        match self {
            Rooms::Local(h) => h.shutdown(),
        }
    }
}
