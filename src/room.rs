//! The room as the session knows it while joined: the local role, every role, the peer
//! list and the room itself. Pure Rust.
//!
//! Each peer keeps its five strings in one allocation: a client holds the whole room,
//! and a page with many clients frees every copy when the room ends (one free per peer
//! instead of five keeps that off the time until the last client hears of it).

use crate::model::{HmsPeer, HmsRoom};
use hms_protocol::{PeerNotification, Role, RoomState};

/// A peer as the session keeps it: `peer_id`, `info.name`, `info.data`, `info.user_id`,
/// the role name and `joined_at`.
#[derive(Clone, PartialEq, Eq)]
pub struct Peer {
    /// The five strings back to back.
    text: Box<str>,
    /// Where each of the first four ends in `text` (the role runs to the end).
    ends: [u32; 4],
    /// `joined_at`, 0 when absent.
    pub joined_at: u64,
}

impl Peer {
    /// A peer from its fields.
    pub fn new(peer_id: &str, name: &str, data: &str, user_id: &str, role: &str, joined_at: u64) -> Self {
        let mut text = String::with_capacity(peer_id.len() + name.len() + data.len() + user_id.len() + role.len());
        let mut ends = [0u32; 4];
        for (i, part) in [peer_id, name, data, user_id].into_iter().enumerate() {
            text.push_str(part);
            ends[i] = text.len() as u32;
        }
        text.push_str(role);
        Self { text: text.into_boxed_str(), ends, joined_at }
    }

    fn part(&self, i: usize) -> &str {
        // `get`, never `[]`: a bounds check's panic message pulls integer formatting
        // into the wasm module.
        let start = i.checked_sub(1).and_then(|j| self.ends.get(j)).map_or(0, |&e| e as usize);
        let end = self.ends.get(i).map_or(self.text.len(), |&e| e as usize);
        self.text.get(start..end).unwrap_or("")
    }

    /// `peer_id`.
    pub fn peer_id(&self) -> &str {
        self.part(0)
    }
    /// `info.name`.
    pub fn name(&self) -> &str {
        self.part(1)
    }
    /// `info.data`.
    pub fn data(&self) -> &str {
        self.part(2)
    }
    /// `info.user_id`.
    pub fn user_id(&self) -> &str {
        self.part(3)
    }
    /// The role's name.
    pub fn role(&self) -> &str {
        self.part(4)
    }
}

impl std::fmt::Debug for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peer").field("peer_id", &self.peer_id()).field("name", &self.name()).field("role", &self.role()).finish()
    }
}

impl From<PeerNotification> for Peer {
    fn from(p: PeerNotification) -> Self {
        Self::new(&p.peer_id, &p.info.name, &p.info.data, &p.info.user_id, &p.role, p.joined_at.unwrap_or(0))
    }
}

/// What the session knows of the room. Empty outside a session.
#[derive(Debug, Default)]
pub struct RoomData {
    /// The local role's name, from `on-policy-change`.
    pub local_role: Option<String>,
    /// Every role of the template.
    pub roles: Vec<Role>,
    /// Every peer, the local one included.
    pub peers: Vec<Peer>,
    /// The room and its session, from `peer-list`.
    pub room: Option<RoomState>,
}

impl RoomData {
    /// The role `name`, or one without permissions when the template lacks it.
    pub fn role_of(&self, name: &str) -> Role {
        self.roles
            .iter()
            .find(|r| r.name == name)
            .cloned()
            .unwrap_or_else(|| Role { name: name.to_owned(), priority: 0, permissions: Default::default() })
    }

    /// The local peer's role (none before the policy arrived).
    pub fn local_role(&self) -> Role {
        self.role_of(self.local_role.as_deref().unwrap_or(""))
    }

    /// Peer `id`, if known.
    pub fn find(&self, id: &str) -> Option<&Peer> {
        self.peers.iter().find(|p| p.peer_id() == id)
    }

    /// `p` as apps see it.
    pub fn to_js_peer(&self, p: &Peer, local_id: &str) -> HmsPeer {
        let is_local = p.peer_id() == local_id;
        HmsPeer {
            peer_id: p.peer_id().to_owned(),
            name: p.name().to_owned(),
            user_id: p.user_id().to_owned(),
            metadata: p.data().to_owned(),
            is_local,
            // The local role comes from the policy, which is authoritative for ourselves.
            role: if is_local { self.local_role() } else { self.role_of(p.role()) },
        }
    }

    /// Everyone, the local peer first, then by join time.
    pub fn sorted_peers(&self, local_id: &str) -> Vec<HmsPeer> {
        // An insertion sort by hand: core's sort costs kilobytes of wasm.
        let key = |p: &Peer| (p.peer_id() != local_id, p.joined_at);
        let mut list: Vec<&Peer> = Vec::with_capacity(self.peers.len());
        for p in &self.peers {
            let at = list.iter().position(|q| key(q) > key(p)).unwrap_or(list.len());
            list.insert(at, p);
        }
        list.into_iter().map(|p| self.to_js_peer(p, local_id)).collect()
    }

    /// The room as apps see it.
    pub fn to_js_room(&self) -> Option<HmsRoom> {
        self.room.as_ref().map(|r| HmsRoom { id: r.room_id.clone(), name: r.name.clone(), session_id: r.session_id.clone() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packed_fields_read_back() {
        let p = Peer::new("p1", "Ada", "", "u-1", "host", 7);
        assert_eq!((p.peer_id(), p.name(), p.data(), p.user_id(), p.role(), p.joined_at), ("p1", "Ada", "", "u-1", "host", 7));
        let p = Peer::new("", "", "", "", "", 0);
        assert_eq!((p.peer_id(), p.role()), ("", ""));
        let p = Peer::new("é", "名前", "{\"x\":1}", "ü", "guest", 1);
        assert_eq!((p.peer_id(), p.name(), p.data(), p.user_id(), p.role()), ("é", "名前", "{\"x\":1}", "ü", "guest"));
    }
}
