//! What happened in the rooms, as typed domain events: a session opened or closed, a
//! peer joined or left (and why), a room was enabled or disabled. One enum carries
//! everything its consumers need: the store (session history and the webhook outbox,
//! [`crate::store`]) and the metrics ([`crate::metrics`]). No JSON here: the webhook
//! shape of each event is [`crate::webhooks::payload`]'s.
//!
//! Order matters to the consumers (a receiver must never see a session open before the
//! previous one closed), so the rooms emit membership events through a [`Sink`] while
//! they still hold the lock of the change; the use cases emit the events of durable
//! changes (an end-room's session close, a room enabled) inside the store transaction
//! that makes the change.

use crate::frame::{self, Text};
use hms_protocol::{PeerInfo, PeerNotification};

/// A peer as the events report it: who, with which role, and its JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerRecord {
    /// The peer id.
    pub peer_id: String,
    /// The token's user id.
    pub user_id: String,
    /// The role.
    pub role: String,
    /// The peer's `PeerNotification` as the rooms serialized it at join (shared, not
    /// copied): its name, metadata and join time are read from it by the consumers,
    /// off the rooms' lock ([`PeerRecord::details`]).
    pub json: Text,
}

/// What a peer's JSON says besides its ids.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerDetails {
    /// The name given at `join`.
    pub name: String,
    /// The metadata given at `join`.
    pub data: String,
    /// When it joined, ms since the Unix epoch.
    pub joined_at: u64,
}

impl PeerRecord {
    /// A record from its parts (the store's crash recovery, tests).
    pub fn new(peer_id: &str, user_id: &str, role: &str, details: &PeerDetails) -> PeerRecord {
        let peer = PeerNotification {
            peer_id: peer_id.to_owned(),
            info: PeerInfo { name: details.name.clone(), data: details.data.clone(), user_id: user_id.to_owned(), peer_type: "regular".into() },
            role: role.to_owned(),
            joined_at: Some(details.joined_at),
            tracks: Default::default(),
            groups: Vec::new(),
        };
        PeerRecord { peer_id: peer_id.to_owned(), user_id: user_id.to_owned(), role: role.to_owned(), json: frame::peer(&peer) }
    }

    /// The name, metadata and join time from the peer's JSON (empty if it does not parse,
    /// which the rooms' own serializer never produces).
    pub fn details(&self) -> PeerDetails {
        match serde_json::from_str::<PeerNotification>(&self.json) {
            Ok(p) => PeerDetails { name: p.info.name, data: p.info.data, joined_at: p.joined_at.unwrap_or_default() },
            Err(_) => PeerDetails::default(),
        }
    }
}

/// Who asked for a removal or an end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum By {
    /// A peer of the room.
    Peer {
        /// Its peer id.
        peer_id: String,
        /// Its user id.
        user_id: String,
    },
    /// A back end, through the REST API.
    Api,
}

impl By {
    /// The requesting peer's id, if a peer asked.
    pub fn peer_id(&self) -> Option<&str> {
        match self {
            By::Peer { peer_id, .. } => Some(peer_id),
            By::Api => None,
        }
    }
}

/// Why a peer left its room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaveReason {
    /// The peer sent `leave`.
    Left,
    /// A peer or a back end removed it; `message` is the reason given.
    Removed {
        /// Who removed it.
        by: By,
        /// The reason given.
        message: String,
    },
    /// The room was ended; `message` is the reason given.
    RoomEnded {
        /// Who ended it.
        by: By,
        /// The reason given.
        message: String,
    },
    /// Its connection dropped and the reconnect window ran out (or is off).
    ConnectionLost,
    /// The server closed its connection for breaking a limit (frame size or rate).
    LimitExceeded,
    /// The server shut down (SIGTERM, Ctrl-C).
    ServerShutdown,
    /// The server stopped without shutting down (a crash); reported at the next start.
    ServerStopped,
}

/// Why a session closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseReason {
    /// `end-room`, by a peer or the REST API.
    Ended {
        /// Who ended it.
        by: By,
        /// The reason given.
        message: String,
        /// Whether the room was locked (disabled) with the end.
        locked: bool,
    },
    /// The last peer left.
    Emptied,
    /// The server shut down (SIGTERM, Ctrl-C).
    ServerShutdown,
    /// The server stopped without shutting down; reported at the next start.
    ServerStopped,
}

/// One thing that happened. Times are ms since the Unix epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A room's first peer joined: a session began.
    SessionOpened {
        /// The room.
        room_id: String,
        /// The new session.
        session_id: String,
        /// When.
        at: u64,
    },
    /// A session ended. For an end-room it comes before the peers' leaves; for a room
    /// that emptied, after the last one.
    SessionClosed {
        /// The room.
        room_id: String,
        /// The session.
        session_id: String,
        /// When the session began.
        started_at: u64,
        /// When it ended.
        at: u64,
        /// Why.
        reason: CloseReason,
    },
    /// A peer joined (a reconnect within the window is not a join).
    PeerJoined {
        /// The room.
        room_id: String,
        /// The running session.
        session_id: String,
        /// The peer.
        peer: PeerRecord,
    },
    /// A peer left for good (a drop held for a reconnect is not a leave, yet).
    PeerLeft {
        /// The room.
        room_id: String,
        /// The session it was in.
        session_id: String,
        /// The peer.
        peer: PeerRecord,
        /// When it left.
        at: u64,
        /// Why.
        reason: LeaveReason,
    },
    /// A room was enabled or disabled (locked) through the REST API.
    RoomEnabled {
        /// The room.
        room_id: String,
        /// The new flag.
        enabled: bool,
        /// When.
        at: u64,
    },
}

impl Event {
    /// The room the event is about (webhooks are ordered per room).
    pub fn room_id(&self) -> &str {
        match self {
            Event::SessionOpened { room_id, .. }
            | Event::SessionClosed { room_id, .. }
            | Event::PeerJoined { room_id, .. }
            | Event::PeerLeft { room_id, .. }
            | Event::RoomEnabled { room_id, .. } => room_id,
        }
    }

    /// When it happened, ms since the Unix epoch.
    pub fn at(&self) -> u64 {
        match self {
            Event::SessionOpened { at, .. }
            | Event::SessionClosed { at, .. }
            | Event::PeerLeft { at, .. }
            | Event::RoomEnabled { at, .. } => *at,
            Event::PeerJoined { peer, .. } => peer.details().joined_at,
        }
    }

    /// Whether only the webhooks care (peer joins and leaves change no durable state).
    pub fn is_membership(&self) -> bool {
        matches!(self, Event::PeerJoined { .. } | Event::PeerLeft { .. })
    }
}

/// Where the rooms send their events. Called while the room's lock is held, so the
/// events of one room arrive in the order they happened: an implementation must only
/// queue (never wait, never do I/O).
pub trait Sink: Send + Sync {
    /// The events of one change, in order.
    fn emit(&self, events: Vec<Event>);
}

/// A sink that drops everything (rooms built without consumers, e.g. in tests).
pub struct Discard;

impl Sink for Discard {
    fn emit(&self, _: Vec<Event>) {}
}
