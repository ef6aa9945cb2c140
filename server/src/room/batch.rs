//! Coalesced join and leave notices of large rooms (`on-peer-batch`). Instead of one
//! frame to every peer per event (O(n) frames per join, O(n²) to fill a room), the
//! events of one short tick are collected here and sent as one frame, serialized once and
//! shared, to the peers whose role subscribes.
//!
//! The room model does no I/O and keeps no timers: the first event of a tick returns a
//! token in [`super::Effects::batch`]; the caller waits for the tick, then calls
//! [`Hub::take_batch`], builds the frame outside the lock, and hands it to
//! [`Hub::send_batch`], which queues it to the subscribers and says whether another tick
//! is due. One flush runs at a time per room, so batches arrive in order.

use super::{Hub, SlotState};
use crate::conn::Out;
use crate::frame::{self, Text};
use std::sync::atomic::{AtomicU64, Ordering};

/// Tokens of flushes, unique in the process (a room that ends and starts again gets a
/// new one, so a stale flush never touches it).
static NEXT_TOKEN: AtomicU64 = AtomicU64::new(1);

/// The events of the current tick.
#[derive(Debug, Default)]
pub struct Pending {
    joined: Vec<(String, Text)>,
    left: Vec<String>,
    /// The flush in progress, if any.
    token: Option<u64>,
}

impl Pending {
    /// A flush token when this event starts a tick.
    fn schedule(&mut self) -> Option<u64> {
        if self.token.is_some() {
            return None;
        }
        let t = NEXT_TOKEN.fetch_add(1, Ordering::Relaxed);
        self.token = Some(t);
        Some(t)
    }

    /// `peer_id` joined (its JSON is `json`).
    pub fn joined(&mut self, peer_id: &str, json: Text) -> Option<u64> {
        self.joined.push((peer_id.to_owned(), json));
        self.schedule()
    }

    /// `peer_id` left. A join of the same tick cancels out; otherwise it is listed.
    pub fn left(&mut self, peer_id: &str) -> Option<u64> {
        if let Some(i) = self.joined.iter().position(|(id, _)| id == peer_id) {
            self.joined.remove(i);
        } else {
            self.left.push(peer_id.to_owned());
        }
        self.schedule()
    }
}

/// A tick's events, taken out of the room to be serialized outside its lock.
#[derive(Debug)]
pub struct PeerBatchFrame {
    joined: Vec<Text>,
    left: Vec<String>,
    peer_count: u64,
}

impl PeerBatchFrame {
    /// Whether nothing is left to tell (a join and a leave of one tick cancelled out).
    pub fn is_empty(&self) -> bool {
        self.joined.is_empty() && self.left.is_empty()
    }

    /// The `on-peer-batch` frame.
    pub fn encode(&self) -> Text {
        frame::peer_batch(&self.joined, &self.left, self.peer_count)
    }
}

impl Hub {
    /// Takes the events of the tick of flush `token`; `None` when the room is gone or
    /// the flush is stale.
    pub fn take_batch(&self, room_id: &str, token: u64) -> Option<PeerBatchFrame> {
        let mut st = self.lock(room_id);
        let room = st.rooms.get_mut(room_id).filter(|r| r.batch.token == Some(token))?;
        let joined = std::mem::take(&mut room.batch.joined).into_iter().map(|(_, json)| json).collect();
        let left = std::mem::take(&mut room.batch.left);
        Some(PeerBatchFrame { joined, left, peer_count: room.roster.len() as u64 })
    }

    /// Queues `frame` (if any) to every connected peer of the room whose role subscribes. Returns
    /// whether events came in meanwhile (then wait a tick and flush again); otherwise the
    /// flush is over.
    pub fn send_batch(&self, room_id: &str, token: u64, frame: Option<Text>) -> bool {
        let mut st = self.lock(room_id);
        let Some(room) = st.rooms.get_mut(room_id).filter(|r| r.batch.token == Some(token)) else { return false };
        for s in room.peers.values().filter(|_| frame.is_some()) {
            if s.subscribed && s.state == SlotState::Joined {
                if let (Some(c), Some(f)) = (&s.conn, &frame) {
                    c.send(Out::Text(f.clone()));
                }
            }
        }
        let more = !room.batch.joined.is_empty() || !room.batch.left.is_empty();
        if !more {
            room.batch.token = None;
        }
        more
    }
}
