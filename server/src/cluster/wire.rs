//! What nodes send each other over their pub/sub channels: one JSON [`Batch`] per
//! publish, holding, in order, frames for the receiver's connections, calls to the
//! rooms it owns, answers, and write acknowledgements. Everything for one node goes
//! through one ordered queue (`super::relay`), so an answer never overtakes the frames
//! the call queued before it.

use crate::conn::Close;
use crate::error::Error;
use crate::room::mirror::Reattached;
use crate::room::{ActiveRoom, Connected, EndTicket, Secret};
use hms_protocol::{FindPeerParams, PeerLeaveRequest};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One publish: items from node `from`, in the order they were queued.
#[derive(Debug, Serialize, Deserialize)]
pub struct Batch {
    /// The sending node.
    pub from: String,
    /// Its items.
    pub items: Vec<Item>,
}

/// One thing for the receiving node.
#[derive(Debug, Serialize, Deserialize)]
pub enum Item {
    /// A text frame for these connections of the receiver (one frame fanned out to many
    /// connections travels once).
    Text { conns: Vec<u64>, text: String },
    /// A text frame whose write the sender waits for, per (connection, ack id): answer
    /// with [`Item::Acks`].
    TextAck { conns: Vec<(u64, u64)>, text: String },
    /// Close these connections for this reason.
    Close { conns: Vec<u64>, why: Close },
    /// A call to a room the receiver owns; answer with [`Item::Answer`] before `deadline_ms`.
    Call { id: u64, deadline_ms: u64, op: Op },
    /// The answer to call `id`.
    Answer { id: u64, answer: Answer },
    /// These acknowledged frames were written (or their connection is gone).
    Acks { ids: Vec<u64> },
}

/// A registry operation run by the room's owner. Connections are named by id; their
/// node is the calling node.
#[allow(missing_docs)]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Op {
    /// `secret`: the reconnect secret the connection presented (its `Debug` hides it);
    /// with `keep`, a re-attachment before the join: the place keeps that secret.
    Connect { room: String, peer: String, user: String, role: String, secret: Option<Secret>, keep: bool, conn: u64 },
    Reattach { room: String, peer: String, user: String, role: String, conn: u64 },
    Join { room: String, peer: String, conn: u64, name: String, data: String, ok: String },
    IsJoined { room: String, peer: String, conn: u64 },
    Leave { room: String, peer: String, conn: u64 },
    Disconnected { room: String, peer: String, conn: u64, hold: bool },
    BeginEnd { room: String, requester: Option<(String, u64)>, lock: bool },
    AbortEnd { room: String, ticket: EndTicket },
    FinishEnd { room: String, requested_by: Option<String>, reason: String },
    RemovePeer { room: String, requester: Option<(String, u64)>, target: String, reason: String },
    FindPeer { room: String, peer: String, conn: u64, id: Value, params: FindPeerParams },
    PeerIterNext { room: String, peer: String, conn: u64, id: Value, iterator: String, limit: Option<u32> },
    GetPeer { room: String, peer: String, conn: u64, id: Value, target: String },
    PeersWithRole { room: String, role: String },
    ActiveRoom { room: String },
    /// A lock change was stored: the owner reads the room's flag from the store.
    LockStored { room: String },
}

impl Op {
    /// The room the operation is about.
    pub fn room(&self) -> &str {
        match self {
            Op::Connect { room, .. }
            | Op::Reattach { room, .. }
            | Op::Join { room, .. }
            | Op::IsJoined { room, .. }
            | Op::Leave { room, .. }
            | Op::Disconnected { room, .. }
            | Op::BeginEnd { room, .. }
            | Op::AbortEnd { room, .. }
            | Op::FinishEnd { room, .. }
            | Op::RemovePeer { room, .. }
            | Op::FindPeer { room, .. }
            | Op::PeerIterNext { room, .. }
            | Op::GetPeer { room, .. }
            | Op::PeersWithRole { room, .. }
            | Op::ActiveRoom { room }
            | Op::LockStored { room } => room,
        }
    }
}

/// What an operation gives back.
#[allow(missing_docs)]
#[derive(Debug, Serialize, Deserialize)]
pub enum Reply {
    Done,
    Bool(bool),
    Connected(Connected),
    Reattached(ReattachedW),
    Ticket(EndTicket),
    /// After an end: the requester's current connection (id, node), and the fan-out's
    /// figures (queued, written, first and last write in µs since the Unix epoch).
    Finished(Option<(u64, String)>, (usize, usize, u64, u64)),
    /// An answer frame, ready to send.
    Text(String),
    Peers(Vec<String>),
    Active(Option<ActiveRoom>),
}

/// [`Reattached`] on the wire.
#[allow(missing_docs)]
#[derive(Debug, Serialize, Deserialize)]
pub enum ReattachedW {
    Joined,
    Missed(PeerLeaveRequest),
}

impl From<Reattached> for ReattachedW {
    fn from(r: Reattached) -> Self {
        match r {
            Reattached::Joined => ReattachedW::Joined,
            Reattached::Missed(n) => ReattachedW::Missed(n),
        }
    }
}

/// Why an operation did not run, or its error.
#[derive(Debug, Serialize, Deserialize)]
pub enum Fail {
    /// The receiver does not own the room (any more): resolve the owner again.
    NotOwner,
    /// The operation ran and failed with this error.
    Err(Error),
}

impl From<Error> for Fail {
    fn from(e: Error) -> Self {
        Fail::Err(e)
    }
}

/// The result of a call.
pub type Answer = Result<Reply, Fail>;
