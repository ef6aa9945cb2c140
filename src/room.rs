//! The room as the session knows it while joined: the local role, every role, the peer
//! list and the room itself. Pure Rust.
//!
//! The peer list keeps every peer's strings in one text buffer with one index ([`Peers`]):
//! a client holds the whole room, and a page with many clients frees every copy when the
//! room ends. Measured with `bench/fanout.mjs --profile`: with one allocation per peer,
//! those frees were a third of the page's time between the end and the last guest
//! hearing of it at N=250; now a room costs two frees per client.

use crate::model::{HmsPeer, HmsRoom};
use hms_protocol::{PeerNotification, Role, RoomState};

/// Where a peer's strings end in its text, and when it joined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Slot {
    /// Where `peer_id` starts.
    start: u32,
    /// Where `peer_id`, `name`, `data`, `user_id` and the role name end.
    ends: [u32; 5],
    joined_at: u64,
}

/// A peer as the session reads it: `peer_id`, `info.name`, `info.data`, `info.user_id`,
/// the role name and `joined_at`.
#[derive(Clone, Copy)]
pub struct PeerRef<'a> {
    text: &'a str,
    slot: &'a Slot,
}

impl<'a> PeerRef<'a> {
    fn part(&self, i: usize) -> &'a str {
        // `get`, never `[]`: a bounds check's panic message pulls integer formatting
        // into the wasm module.
        let start = match i.checked_sub(1) {
            Some(j) => self.slot.ends.get(j).copied().unwrap_or(0),
            None => self.slot.start,
        } as usize;
        let end = self.slot.ends.get(i).copied().unwrap_or(0) as usize;
        self.text.get(start..end).unwrap_or("")
    }
    /// `peer_id`.
    pub fn peer_id(&self) -> &'a str {
        self.part(0)
    }
    /// `info.name`.
    pub fn name(&self) -> &'a str {
        self.part(1)
    }
    /// `info.data`.
    pub fn data(&self) -> &'a str {
        self.part(2)
    }
    /// `info.user_id`.
    pub fn user_id(&self) -> &'a str {
        self.part(3)
    }
    /// The role's name.
    pub fn role(&self) -> &'a str {
        self.part(4)
    }
    /// `joined_at`, 0 when absent.
    pub fn joined_at(&self) -> u64 {
        self.slot.joined_at
    }
}

impl std::fmt::Debug for PeerRef<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peer").field("peer_id", &self.peer_id()).field("name", &self.name()).field("role", &self.role()).finish()
    }
}

/// Appends the five strings to `text`; their slot.
fn pack(text: &mut String, fields: [&str; 5], joined_at: u64) -> Slot {
    let start = text.len() as u32;
    let mut ends = [0u32; 5];
    for (end, part) in ends.iter_mut().zip(fields) {
        text.push_str(part);
        *end = text.len() as u32;
    }
    Slot { start, ends, joined_at }
}

/// One peer on its own (an `on-peer-join` or `on-peer-leave`): one allocation.
#[derive(Clone, PartialEq, Eq)]
pub struct Peer {
    text: Box<str>,
    slot: Slot,
}

impl Peer {
    /// A peer from its fields.
    pub fn new(peer_id: &str, name: &str, data: &str, user_id: &str, role: &str, joined_at: u64) -> Self {
        let mut text = String::with_capacity(peer_id.len() + name.len() + data.len() + user_id.len() + role.len());
        let slot = pack(&mut text, [peer_id, name, data, user_id, role], joined_at);
        Self { text: text.into_boxed_str(), slot }
    }

    /// Its fields.
    pub fn view(&self) -> PeerRef<'_> {
        PeerRef { text: &self.text, slot: &self.slot }
    }
}

impl std::fmt::Debug for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.view().fmt(f)
    }
}

impl From<PeerNotification> for Peer {
    fn from(p: PeerNotification) -> Self {
        Self::new(&p.peer_id, &p.info.name, &p.info.data, &p.info.user_id, &p.role, p.joined_at.unwrap_or(0))
    }
}

/// The peer list: every peer's strings in one buffer, one slot each, in arrival order.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Peers {
    text: String,
    slots: Vec<Slot>,
}

impl Peers {
    /// Adds a peer (the caller makes sure its id is not in the list yet).
    pub fn push(&mut self, peer_id: &str, name: &str, data: &str, user_id: &str, role: &str, joined_at: u64) {
        let slot = pack(&mut self.text, [peer_id, name, data, user_id, role], joined_at);
        self.slots.push(slot);
    }

    /// Every peer, in arrival order.
    pub fn iter(&self) -> impl Iterator<Item = PeerRef<'_>> {
        self.slots.iter().map(move |slot| PeerRef { text: &self.text, slot })
    }

    /// How many peers.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Peer `id`, if in the list.
    pub fn find(&self, id: &str) -> Option<PeerRef<'_>> {
        self.iter().find(|p| p.peer_id() == id)
    }

    /// Adds `p`, or replaces the peer with its id; whether it was known.
    pub fn upsert(&mut self, p: PeerRef<'_>) -> bool {
        let known = self.remove(p.peer_id()).is_some();
        self.push(p.peer_id(), p.name(), p.data(), p.user_id(), p.role(), p.joined_at());
        known
    }

    /// Removes peer `id`; the removed peer.
    pub fn remove(&mut self, id: &str) -> Option<Peer> {
        let i = self.iter().position(|p| p.peer_id() == id)?;
        let gone = self.slots.remove(i);
        let p = PeerRef { text: &self.text, slot: &gone };
        let out = Peer::new(p.peer_id(), p.name(), p.data(), p.user_id(), p.role(), p.joined_at());
        // The text of removed peers stays until it is half the buffer.
        let live: usize = self.slots.iter().map(|s| s.ends[4].saturating_sub(s.start) as usize).sum();
        if live * 2 < self.text.len() {
            let old = std::mem::take(self);
            for p in old.iter() {
                self.push(p.peer_id(), p.name(), p.data(), p.user_id(), p.role(), p.joined_at());
            }
        }
        Some(out)
    }
}

impl FromIterator<PeerNotification> for Peers {
    fn from_iter<I: IntoIterator<Item = PeerNotification>>(iter: I) -> Self {
        let mut peers = Peers::default();
        for p in iter {
            peers.push(&p.peer_id, &p.info.name, &p.info.data, &p.info.user_id, &p.role, p.joined_at.unwrap_or(0));
        }
        peers
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
    pub peers: Peers,
    /// The room and its session, from `peer-list`.
    pub room: Option<RoomState>,
    /// A large room's peer count (the server's, from `peer-list` and `on-peer-batch`);
    /// `None` in a small room, where `peers` is everyone.
    pub peer_count: Option<u64>,
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
    pub fn find(&self, id: &str) -> Option<PeerRef<'_>> {
        self.peers.find(id)
    }

    /// `p` as apps see it.
    pub fn to_js_peer(&self, p: PeerRef<'_>, local_id: &str) -> HmsPeer {
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
        let key = |p: &PeerRef<'_>| (p.peer_id() != local_id, p.joined_at());
        let mut list: Vec<PeerRef<'_>> = Vec::with_capacity(self.peers.len());
        for p in self.peers.iter() {
            let at = list.iter().position(|q| key(q) > key(&p)).unwrap_or(list.len());
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
        let v = p.view();
        assert_eq!((v.peer_id(), v.name(), v.data(), v.user_id(), v.role(), v.joined_at()), ("p1", "Ada", "", "u-1", "host", 7));
        let p = Peer::new("", "", "", "", "", 0);
        assert_eq!((p.view().peer_id(), p.view().role()), ("", ""));
        let p = Peer::new("é", "名前", "{\"x\":1}", "ü", "guest", 1);
        let v = p.view();
        assert_eq!((v.peer_id(), v.name(), v.data(), v.user_id(), v.role()), ("é", "名前", "{\"x\":1}", "ü", "guest"));
    }

    #[test]
    fn the_list_adds_replaces_removes_and_compacts() {
        let mut l = Peers::default();
        for i in 0..10 {
            l.push(&format!("p{i}"), &format!("N{i}"), "d", "u", "guest", i);
        }
        assert_eq!(l.len(), 10);
        assert_eq!(l.find("p3").map(|p| p.name()), Some("N3"));
        assert!(l.upsert(Peer::new("p3", "Renamed", "d", "u", "host", 3).view()), "known");
        assert!(!l.upsert(Peer::new("p10", "New", "", "", "guest", 10).view()));
        assert_eq!((l.len(), l.find("p3").map(|p| (p.name(), p.role()))), (11, Some(("Renamed", "host"))));
        for i in 0..9 {
            let gone = l.remove(&format!("p{i}")).unwrap();
            assert_eq!(gone.view().peer_id(), format!("p{i}"));
        }
        assert!(l.remove("p0").is_none());
        let left: Vec<_> = l.iter().map(|p| (p.peer_id().to_owned(), p.name().to_owned())).collect();
        assert_eq!(left, vec![("p9".into(), "N9".into()), ("p10".into(), "New".into())]);
        assert!(l.text.len() <= 2 * "p9N9dguestp10New".len() + 64, "removed text is compacted: {}", l.text.len());
    }
}
