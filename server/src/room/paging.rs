//! The paged peer list of a room (`find-peer`, `peer-iter-next`, `get-peer`): the room's
//! visible peers in join order, and the iterators peers read it with.
//!
//! Every peer that becomes visible gets the next number of its room's join sequence, and
//! an iterator is a cursor on that sequence. A page is the next `limit` peers after the
//! cursor that are still in the room, so while peers join and leave during an iteration,
//! every peer that stays is seen exactly once, a peer that joins is seen if it is still
//! there when the cursor reaches it, and one that leaves is never seen twice. (A peer
//! that leaves and joins again is a new join with a new number.) Reading a page costs
//! the page, not the room: the sequence is an ordered map and each peer's JSON is
//! cached.
//!
//! Iterators belong to the peer's place, at most [`MAX_CURSORS`] of them (the least
//! recently used goes first), and expire [`CURSOR_TTL`] after their last use, so a
//! client cannot pile them up.

use super::{Hub, Room, SlotState};
use crate::error::Error;
use crate::frame::{self, Text};
use hms_protocol::peer_list::page_size;
use hms_protocol::FindPeerParams;
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Iterators one peer may hold at once.
pub const MAX_CURSORS: usize = 8;
/// An iterator not used for this long is forgotten.
pub const CURSOR_TTL: Duration = Duration::from_secs(60);

/// The visible peers of a room by join sequence.
#[derive(Debug, Default)]
pub struct Roster {
    by_seq: BTreeMap<u64, Text>,
    next: u64,
}

impl Roster {
    /// Adds a peer that just became visible; returns its sequence number (from 1).
    pub fn add(&mut self, peer_id: Text) -> u64 {
        self.next += 1;
        self.by_seq.insert(self.next, peer_id);
        self.next
    }

    /// Removes the peer with sequence number `seq`.
    pub fn remove(&mut self, seq: u64) {
        self.by_seq.remove(&seq);
    }

    /// Visible peers.
    pub fn len(&self) -> usize {
        self.by_seq.len()
    }

    /// The first `n` peers in join order.
    pub fn first(&self, n: usize) -> impl Iterator<Item = (u64, &Text)> {
        self.by_seq.iter().take(n).map(|(s, id)| (*s, id))
    }

    fn after(&self, seq: u64) -> impl Iterator<Item = (u64, &Text)> {
        self.by_seq.range(seq + 1..).map(|(s, id)| (*s, id))
    }
}

/// Which peers an iterator walks.
#[derive(Debug)]
enum Filter {
    All,
    Role(String),
    /// These sequence numbers, ascending (the `peers` of `find-peer`, as they were then).
    Seqs(Vec<u64>),
    /// A filter nobody matches (a group: peers have none here).
    Nobody,
}

/// One open iterator of a peer.
#[derive(Debug)]
pub struct Cursor {
    id: u64,
    after: u64,
    filter: Filter,
    expires: Instant,
}

/// A page: the peers' JSON, the total and whether it is the last.
struct Page {
    peers: Vec<Text>,
    last: u64,
    eof: bool,
    total: u64,
}

impl Room {
    fn matches(&self, filter: &Filter, seq: u64, id: &str) -> bool {
        match filter {
            Filter::All => true,
            Filter::Role(r) => self.peers.get(id).is_some_and(|s| s.role.as_str() == r.as_str()),
            Filter::Seqs(seqs) => seqs.binary_search(&seq).is_ok(),
            Filter::Nobody => false,
        }
    }

    /// The next `limit` matching peers after `after`; one more is looked for to know
    /// whether this page is the last.
    fn page(&self, filter: &Filter, after: u64, limit: usize) -> Page {
        let mut peers = Vec::with_capacity(limit);
        let mut last = after;
        let mut eof = true;
        let candidates: Box<dyn Iterator<Item = (u64, &Text)>> = match filter {
            Filter::Seqs(seqs) => Box::new(
                seqs.iter().filter(|s| **s > after).filter_map(|s| self.roster.by_seq.get(s).map(|id| (*s, id))),
            ),
            Filter::Nobody => Box::new(std::iter::empty()),
            _ => Box::new(self.roster.after(after)),
        };
        for (seq, id) in candidates {
            if !self.matches(filter, seq, id) {
                continue;
            }
            if peers.len() == limit {
                eof = false;
                break;
            }
            if let Some(slot) = self.peers.get(id.as_str()) {
                peers.push(slot.json.clone());
                last = seq;
            }
        }
        let total = match filter {
            Filter::All => self.roster.len(),
            Filter::Role(r) => self.peers.values().filter(|s| s.visible() && s.role.as_str() == r.as_str()).count(),
            Filter::Seqs(seqs) => seqs.iter().filter(|s| self.roster.by_seq.contains_key(s)).count(),
            Filter::Nobody => 0,
        };
        Page { peers, last, eof, total: total as u64 }
    }
}

impl Hub {
    /// The room of `peer_id` if `conn_id` is its joined connection, else `NotJoined`.
    fn joined_room<'a>(rooms: &'a mut std::collections::HashMap<String, Room>, room_id: &str, peer_id: &str, conn_id: u64) -> Result<&'a mut Room, Error> {
        let room = rooms.get_mut(room_id).ok_or(Error::NotJoined)?;
        let ok = room.peers.get(peer_id).is_some_and(|s| s.state == SlotState::Joined && s.conn.as_ref().map(|c| c.id) == Some(conn_id));
        if ok {
            Ok(room)
        } else {
            Err(Error::NotJoined)
        }
    }

    /// `find-peer`: opens an iterator for `peer_id` and returns the answer to request
    /// `id` with its first page. The frame is built after the lock is released.
    pub fn find_peer(&self, room_id: &str, peer_id: &str, conn_id: u64, id: &Value, params: &FindPeerParams) -> Result<Text, Error> {
        let mut guard = self.lock(room_id);
        let st = &mut *guard;
        st.next_gen += 1;
        let cursor_id = st.next_gen;
        let room = Self::joined_room(&mut st.rooms, room_id, peer_id, conn_id)?;
        let filter = if params.group.is_some() {
            Filter::Nobody
        } else if let Some(ids) = &params.peers {
            let mut seqs: Vec<u64> = ids.iter().filter_map(|p| room.peers.get(p.as_str())).filter(|s| s.visible()).map(|s| s.seq).collect();
            seqs.sort_unstable();
            seqs.dedup();
            Filter::Seqs(seqs)
        } else if let Some(role) = &params.role {
            Filter::Role(role.clone())
        } else {
            Filter::All
        };
        let page = room.page(&filter, 0, page_size(params.limit));
        let now = Instant::now();
        if let Some(slot) = room.peers.get_mut(peer_id) {
            slot.cursors.retain(|c| c.expires > now);
            if slot.cursors.len() >= MAX_CURSORS {
                if let Some(oldest) = slot.cursors.iter().enumerate().min_by_key(|(_, c)| c.expires).map(|(i, _)| i) {
                    slot.cursors.swap_remove(oldest);
                }
            }
            slot.cursors.push(Cursor { id: cursor_id, after: page.last, filter, expires: now + CURSOR_TTL });
        }
        drop(guard);
        Ok(frame::peers_iteration(id, &cursor_id.to_string(), page.total, page.eof, &page.peers))
    }

    /// `peer-iter-next`: the next page of one of `peer_id`'s iterators. An id that is
    /// not one of its open iterators (never made, expired, or another peer's) gets 404.
    pub fn peer_iter_next(&self, room_id: &str, peer_id: &str, conn_id: u64, id: &Value, iterator: &str, limit: Option<u32>) -> Result<Text, Error> {
        let unknown = || Error::NotFound("unknown or expired iterator: start again with find-peer".into());
        let cursor_id: u64 = iterator.parse().map_err(|_| unknown())?;
        let mut guard = self.lock(room_id);
        let room = Self::joined_room(&mut guard.rooms, room_id, peer_id, conn_id)?;
        let now = Instant::now();
        let Some(slot) = room.peers.get_mut(peer_id) else { return Err(Error::NotJoined) };
        slot.cursors.retain(|c| c.expires > now);
        let Some(i) = slot.cursors.iter().position(|c| c.id == cursor_id) else { return Err(unknown()) };
        // Taken out while the page is read (the room is borrowed for it), then put back.
        let mut cursor = slot.cursors.swap_remove(i);
        let page = room.page(&cursor.filter, cursor.after, page_size(limit));
        cursor.after = page.last;
        cursor.expires = now + CURSOR_TTL;
        if let Some(slot) = room.peers.get_mut(peer_id) {
            slot.cursors.push(cursor);
        }
        drop(guard);
        Ok(frame::peers_iteration(id, iterator, page.total, page.eof, &page.peers))
    }

    /// `get-peer`: one visible peer of the room by id, as the answer to request `id`.
    pub fn get_peer(&self, room_id: &str, peer_id: &str, conn_id: u64, id: &Value, target: &str) -> Result<Text, Error> {
        let mut guard = self.lock(room_id);
        let room = Self::joined_room(&mut guard.rooms, room_id, peer_id, conn_id)?;
        let json = room.peers.get(target).filter(|s| s.visible()).map(|s| s.json.clone());
        drop(guard);
        match json {
            Some(json) => Ok(frame::peer_result(id, &json)),
            None => Err(Error::NotFound("no such peer in this room".into())),
        }
    }
}
