//! A room's membership as data, and the few room operations only a cluster needs
//! (`crate::cluster`). The node that owns a room writes its [`RoomImage`] to Redis as it
//! changes; a node that takes the room over restores it with every peer held, so the
//! rules of the room stay here, written once, whichever node runs them.

use super::{Connected, Hub, Room, Secret, SecretHash, Session, Slot, SlotState, State, Tombstone};
use crate::conn::{Close, ConnHandle, Out};
use crate::error::Error;
use crate::frame::{self, Text};
use hms_protocol::{PeerInfo, PeerLeaveRequest, PeerNotification, ServerPush};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A room's running session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionImage {
    /// Session id.
    pub id: String,
    /// Start, ms since the Unix epoch.
    pub started_at: u64,
}

/// A peer that has joined (connected or held).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerImage {
    /// Its peer id.
    pub peer_id: String,
    /// Its token's user id.
    pub user_id: String,
    /// Its role.
    pub role: String,
    /// Its place in the room's join order (0 when stored before it had one).
    pub seq: u64,
    /// Its reconnect secret's digest: only the connection holding the secret takes the
    /// place back, whichever node owns the room then.
    pub secret: SecretHash,
    /// What the others see: its `PeerNotification` JSON, exactly as served.
    pub json: String,
}

/// A removal or room end a disconnected peer must learn if it comes back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TombImage {
    /// The peer.
    pub peer_id: String,
    /// Its user id (only the same user learns it).
    pub user_id: String,
    /// Its place's secret digest (only that peer learns it); `None` when rebuilt from an
    /// end record, as on one node.
    pub secret: Option<SecretHash>,
    /// The notice it gets.
    pub notice: PeerLeaveRequest,
    /// Until when, ms since the Unix epoch (wall time: it crosses nodes).
    pub until_ms: u64,
}

/// The membership of one room: what a node needs to take it over.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomImage {
    /// The running session, if any.
    pub session: Option<SessionImage>,
    /// Joined peers, held ones included, in join order (connections that have not
    /// joined are not part of the room: they connect again).
    pub peers: Vec<PeerImage>,
    /// Pending notices of removed peers and of the room's end.
    pub tombstones: Vec<TombImage>,
}

impl RoomImage {
    /// The image of a room whose end was stored but not carried out (its owner died in
    /// between): no session, no peers, and each peer gets `notice` if it comes back
    /// before `until_ms`.
    pub fn ended(self, notice: &PeerLeaveRequest, until_ms: u64) -> RoomImage {
        let mut tombstones = self.tombstones;
        for p in self.peers {
            tombstones.retain(|t| t.peer_id != p.peer_id);
            tombstones.push(TombImage { peer_id: p.peer_id, user_id: p.user_id, secret: Some(p.secret), notice: notice.clone(), until_ms });
        }
        RoomImage { session: None, peers: Vec::new(), tombstones }
    }
}

/// How a re-attached connection found its place.
#[derive(Debug)]
pub enum Reattached {
    /// Back in its place, silently for the others; it was sent a fresh `peer-list`.
    Joined,
    /// It was removed, or the room ended, meanwhile: deliver this and close.
    Missed(PeerLeaveRequest),
}

fn wall_to_instant(until_ms: u64, now_ms: u64) -> Instant {
    Instant::now() + Duration::from_millis(until_ms.saturating_sub(now_ms))
}

fn instant_to_wall(until: Instant, now_ms: u64) -> u64 {
    now_ms + until.saturating_duration_since(Instant::now()).as_millis() as u64
}

fn session_image(room: Option<&Room>) -> Option<SessionImage> {
    room.and_then(|r| r.session.as_ref()).map(|s| SessionImage { id: s.id.clone(), started_at: s.started_at })
}

fn peer_image(peer_id: &str, s: &Slot) -> PeerImage {
    PeerImage { peer_id: peer_id.to_owned(), user_id: s.user_id.clone(), role: s.role.to_string(), seq: s.seq, secret: s.secret, json: s.json.to_string() }
}

fn tomb_image(st: &State, room_id: &str, peer_id: &str, now_ms: u64) -> Option<TombImage> {
    let t = st.tombstones.get(&(room_id.to_owned(), peer_id.to_owned())).filter(|t| t.until > Instant::now())?;
    let until_ms = instant_to_wall(t.until, now_ms);
    Some(TombImage { peer_id: peer_id.to_owned(), user_id: t.user_id.clone(), secret: t.secret, notice: (*t.notice).clone(), until_ms })
}

impl Hub {
    /// The room's membership now.
    pub fn image(&self, room_id: &str) -> RoomImage {
        let st = self.lock(room_id);
        let now_ms = super::now_ms();
        let tombstones = st.tombstones.keys().filter(|(r, _)| r == room_id).filter_map(|(_, p)| tomb_image(&st, room_id, p, now_ms)).collect();
        let room = st.rooms.get(room_id);
        let mut peers: Vec<PeerImage> =
            room.map(|r| r.peers.iter().filter(|(_, s)| s.visible()).map(|(id, s)| peer_image(id, s)).collect()).unwrap_or_default();
        peers.sort_by_key(|p| p.seq);
        RoomImage { session: session_image(room), peers, tombstones }
    }

    /// The session and the records of `peers` as they stand now: each peer's place (if
    /// it has a visible one) and tombstone (if any), for a write of just what changed.
    #[allow(clippy::type_complexity)]
    pub fn peer_images(&self, room_id: &str, peers: &[String]) -> (Option<SessionImage>, Vec<(String, Option<PeerImage>, Option<TombImage>)>) {
        let st = self.lock(room_id);
        let now_ms = super::now_ms();
        let room = st.rooms.get(room_id);
        let out = peers
            .iter()
            .map(|id| {
                let place = room.and_then(|r| r.peers.get(id)).filter(|s| s.visible()).map(|s| peer_image(id, s));
                (id.clone(), place, tomb_image(&st, room_id, id, now_ms))
            })
            .collect();
        (session_image(room), out)
    }

    /// The record a `join` of `peer_id` on `conn_id` would announce, so that a cluster
    /// can store it before anyone hears of it; `None` when the join would announce
    /// nothing (a reclaimed place, or not this connection's).
    pub fn join_image(&self, room_id: &str, peer_id: &str, conn_id: u64, name: &str, data: &str) -> Option<PeerImage> {
        let st = self.lock(room_id);
        let slot = st.rooms.get(room_id)?.peers.get(peer_id)?;
        if slot.state != SlotState::Connected || slot.conn.as_ref().map(|c| c.id) != Some(conn_id) {
            return None;
        }
        let me = PeerNotification {
            peer_id: peer_id.to_owned(),
            info: PeerInfo { name: name.to_owned(), data: data.to_owned(), user_id: slot.user_id.clone(), peer_type: "regular".into() },
            role: slot.role.to_string(),
            joined_at: Some(super::now_ms()),
            tracks: BTreeMap::new(),
            groups: Vec::new(),
        };
        let json = frame::peer(&me).to_string();
        Some(PeerImage { peer_id: peer_id.to_owned(), user_id: slot.user_id.clone(), role: slot.role.to_string(), seq: 0, secret: slot.secret, json })
    }

    /// Takes a room over from its image: every peer is held (until it is re-attached or
    /// reconnects), in the image's join order; the tombstones and the lock flag are set.
    /// Returns the held peers and their hold generations: call [`Hub::hold_expired`] for
    /// each after the window. Connections of this node that have not joined stay.
    pub fn restore(&self, room_id: &str, image: RoomImage, locked: bool) -> Vec<(String, u64)> {
        let mut guard = self.lock(room_id);
        let st: &mut State = &mut guard;
        let now_ms = super::now_ms();
        st.tombstones.retain(|(r, _), _| r != room_id);
        for t in image.tombstones {
            let until = wall_to_instant(t.until_ms, now_ms);
            let tomb = Tombstone { user_id: t.user_id, secret: t.secret, notice: Arc::new(t.notice), until };
            st.tombstones.insert((room_id.to_owned(), t.peer_id), tomb);
        }
        if locked {
            st.locked.insert(room_id.to_owned());
        } else {
            st.locked.remove(room_id);
        }
        let mut holds = Vec::new();
        let room = st.rooms.entry(room_id.to_owned()).or_default();
        room.peers.retain(|_, s| s.state == SlotState::Connected);
        room.ending = false;
        room.ending_locks = false;
        room.roster = Default::default();
        room.session = image.session.map(|s| Session { id: s.id, started_at: s.started_at });
        let mut peers = image.peers;
        peers.sort_by_key(|p| p.seq);
        for p in peers {
            // A role the template no longer has cannot be served: the peer is dropped.
            let (Some(role), Some((role_name, _))) = (self.known_roles.get(&p.role), self.roles.get(&p.role)) else { continue };
            st.next_gen += 1;
            let gen = st.next_gen;
            let seq = room.roster.add(Text::from(p.peer_id.clone()));
            holds.push((p.peer_id.clone(), gen));
            let slot = Slot {
                state: SlotState::Held(gen),
                conn: None,
                secret: p.secret,
                user_id: p.user_id,
                role: role_name.clone(),
                permissions: role.permissions,
                subscribed: !self.large.quiet_roles.contains(&p.role),
                json: Text::from(p.json),
                seq,
                cursors: Vec::new(),
            };
            room.peers.insert(p.peer_id, slot);
        }
        let threshold = self.large.threshold;
        room.large = threshold > 0 && room.roster.len() >= threshold;
        if room.peers.is_empty() && room.session.is_none() {
            st.rooms.remove(room_id);
        }
        holds
    }

    /// Puts the joined peer `peer_id` back on a connection (`conn`) after the node
    /// serving its room changed: no event for the others; the peer gets a fresh
    /// `peer-list` (events of the gap are not replayed). A removal or end it missed is
    /// returned instead.
    pub fn reattach(&self, room_id: &str, peer_id: &str, user_id: &str, role: &str, conn: ConnHandle) -> Result<Reattached, Error> {
        let mut guard = self.lock(room_id);
        let st: &mut State = &mut guard;
        if let Some(t) = st.tombstones.get(&(room_id.to_owned(), peer_id.to_owned())) {
            if t.until > Instant::now() && t.user_id == user_id {
                return Ok(Reattached::Missed((*t.notice).clone()));
            }
        }
        let room = st.rooms.get_mut(room_id).ok_or_else(|| Error::NotFound("no such room".into()))?;
        let slot = room
            .peers
            .get_mut(peer_id)
            .filter(|s| s.visible() && s.user_id == user_id && s.role.as_str() == role)
            .ok_or_else(|| Error::NotFound(format!("no place of {peer_id:?} in this room")))?;
        if let Some(old) = slot.conn.replace(conn.clone()) {
            if old.id != conn.id {
                let notice = ServerPush::Error(Error::Conflict("replaced by a newer connection of the same peer".into()).to_rpc());
                old.send(Out::Text(frame::push(&notice)));
                old.send(Out::Close(Close::Replaced));
            }
        }
        slot.state = SlotState::Joined;
        let (me, seq) = (slot.json.clone(), slot.seq);
        conn.send(self.list_out(room_id, room, peer_id, &me, seq));
        Ok(Reattached::Joined)
    }

    /// Drops everything this hub knows of a room (its ownership moved to another node)
    /// without telling anyone; returns the connections that were in it, by peer id.
    pub fn forget(&self, room_id: &str) -> Vec<(String, ConnHandle)> {
        let mut st = self.lock(room_id);
        st.tombstones.retain(|(r, _), _| r != room_id);
        st.locked.remove(room_id);
        let Some(room) = st.rooms.remove(room_id) else { return Vec::new() };
        room.peers.into_iter().filter_map(|(id, s)| s.conn.map(|c| (id, c))).collect()
    }

    /// [`Hub::connect`] for a connection re-attached before it joined (its room moved
    /// to this node): a place made anew keeps `secret`, the one the connection was given
    /// (its join answer will carry it), so its later reconnects still prove it.
    pub fn connect_keeping(&self, room_id: &str, peer_id: &str, user_id: &str, role: &str, secret: Option<&Secret>, conn: ConnHandle) -> Result<Connected, Error> {
        let found = self.connect(room_id, peer_id, user_id, role, secret.map(Secret::as_str), conn)?;
        let (Connected::Fresh(_), Some(secret)) = (&found, secret) else { return Ok(found) };
        let mut st = self.lock(room_id);
        if let Some(slot) = st.rooms.get_mut(room_id).and_then(|r| r.peers.get_mut(peer_id)) {
            slot.secret = SecretHash::of(secret.as_str());
        }
        Ok(Connected::Fresh(secret.clone()))
    }

    /// The user id of `peer_id`'s place in the room.
    pub fn user_of(&self, room_id: &str, peer_id: &str) -> Option<String> {
        self.lock(room_id).rooms.get(room_id)?.peers.get(peer_id).map(|s| s.user_id.clone())
    }

    /// How many connections `user_id` has in the room, on every node: what a room's
    /// owner counts against `limits.max_connections_per_user` (each node counts only
    /// its own). `except` (a reconnecting peer's own place) is not counted.
    pub fn conns_of_user(&self, room_id: &str, user_id: &str, except: &str) -> usize {
        let st = self.lock(room_id);
        let Some(room) = st.rooms.get(room_id) else { return 0 };
        room.peers.iter().filter(|(id, s)| s.conn.is_some() && s.user_id == user_id && id.as_str() != except).count()
    }

    /// Whether the hub has any peer (connected, joined or held) in the room.
    pub fn has_room(&self, room_id: &str) -> bool {
        self.lock(room_id).rooms.contains_key(room_id)
    }

    /// The connections served by `node` (a dead node of the cluster), as (room, peer,
    /// connection id): the caller disconnects each with a hold.
    pub fn conns_of_node(&self, node: &str) -> Vec<(String, String, u64)> {
        let mut out = Vec::new();
        for shard in self.shards.iter() {
            let st = self.guard(shard);
            for (room_id, room) in &st.rooms {
                for (peer_id, slot) in &room.peers {
                    if let Some(c) = slot.conn.as_ref().filter(|c| c.remote_node().is_some_and(|n| &**n == node)) {
                        out.push((room_id.clone(), peer_id.clone(), c.id));
                    }
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hms_protocol::{Permissions, Role};

    fn hub_for_tests(window_ms: u64) -> Hub {
        let role = |name: &str, allowed| Role {
            name: name.into(),
            priority: 1,
            permissions: Permissions { end_room: allowed, remove_others: allowed, ..Permissions::default() },
        };
        let roles = [("host".to_owned(), role("host", true)), ("guest".to_owned(), role("guest", false))].into();
        Hub::new(roles, "default".into(), Duration::from_millis(window_ms))
    }

    fn queue(id: u64) -> (ConnHandle, tokio::sync::mpsc::Receiver<Out>) {
        let (c, out) = ConnHandle::queue(id, 64);
        (c, out.rx)
    }

    fn text(o: Out) -> serde_json::Value {
        let t = match o {
            Out::Text(t) => t,
            Out::Build(f) => f(),
            other => panic!("{other:?}"),
        };
        serde_json::from_str(&t).unwrap()
    }

    #[test]
    fn an_image_restored_elsewhere_holds_every_peer_and_reattaches_silently() {
        let a = hub_for_tests(60_000);
        let (host, _host_rx) = queue(1);
        let (guest, _guest_rx) = queue(2);
        let Ok(Connected::Fresh(host_secret)) = a.connect("r", "host", "u-host", "host", None, host) else { panic!("a fresh place") };
        a.join("r", "host", 1, "Host", "", "{}".into()).unwrap();
        let Ok(Connected::Fresh(guest_secret)) = a.connect("r", "guest", "u-guest", "guest", None, guest) else { panic!("a fresh place") };
        a.join("r", "guest", 2, "Guest", "", "{}".into()).unwrap();
        a.remove_peer("r", Some(("host", 1)), "guest", "bye").unwrap();
        let image = a.image("r");
        assert_eq!(image.peers.len(), 1);
        assert_eq!(image.tombstones.len(), 1);
        let json = serde_json::to_string(&image).unwrap();
        let back: RoomImage = serde_json::from_str(&json).unwrap();
        assert_eq!(back, image);

        let b = hub_for_tests(60_000);
        let holds = b.restore("r", back, true);
        assert_eq!(holds.len(), 1);
        assert!(b.is_locked("r"));
        let active = b.active_room("r").unwrap();
        assert_eq!(active.session_id, image.session.unwrap().id);
        assert_eq!(active.peers["host"].info.name, "Host", "the peer's JSON is served as it was");
        // The removed guest learns of its removal; the host is back without noise.
        let (g2, _) = queue(12);
        assert!(matches!(b.reattach("r", "guest", "u-guest", "guest", g2), Ok(Reattached::Missed(n)) if n.reason == "bye"));
        let (h2, mut h2_rx) = queue(11);
        assert!(matches!(b.reattach("r", "host", "u-host", "host", h2), Ok(Reattached::Joined)));
        assert!(b.is_joined("r", "host", 11));
        let list = text(h2_rx.try_recv().unwrap());
        assert_eq!(list["method"], "peer-list");
        assert!(list["params"]["peers"]["host"].is_object(), "{list}");
        assert!(h2_rx.try_recv().is_err());
        // Another user cannot take the place over.
        let (x, _) = queue(13);
        assert!(b.reattach("r", "host", "u-other", "host", x).is_err());
        // The places' secrets came with the image: a reconnect to the new owner proves
        // itself with the secret of its join on the old one, and nobody else can.
        let (y, _) = queue(14);
        assert!(matches!(b.connect("r", "host", "u-host", "host", Some(guest_secret.as_str()), y), Err(Error::Conflict(_))));
        let (y, _) = queue(15);
        assert!(matches!(b.connect("r", "guest", "u-guest", "guest", None, y), Err(Error::Conflict(_))), "the tombstone keeps its secret");
        let (y, _) = queue(16);
        assert!(matches!(b.connect("r", "guest", "u-guest", "guest", Some(guest_secret.as_str()), y), Ok(Connected::Missed(_))));
        let (z, _) = queue(17);
        assert!(matches!(b.connect("r", "host", "u-host", "host", Some(host_secret.as_str()), z), Ok(Connected::Reclaimed)));
        assert_eq!(b.forget("r").len(), 1);
        assert!(!b.has_room("r") && !b.is_locked("r"));
    }

    #[test]
    fn an_interrupted_end_turns_every_peer_into_a_tombstone() {
        let (secret, digest) = SecretHash::generate();
        let peer = |id: &str| PeerImage { peer_id: id.into(), user_id: format!("u-{id}"), role: "guest".into(), seq: 1, secret: digest, json: "{}".into() };
        let image = RoomImage { session: Some(SessionImage { id: "s".into(), started_at: 1 }), peers: vec![peer("a"), peer("b")], tombstones: Vec::new() };
        let notice = PeerLeaveRequest { requested_by: Some("h".into()), reason: "done".into(), room_end: true };
        let ended = image.ended(&notice, super::super::now_ms() + 60_000);
        assert!(ended.session.is_none() && ended.peers.is_empty());
        let hub = hub_for_tests(60_000);
        assert!(hub.restore("r", ended, false).is_empty());
        let (c, _) = queue(1);
        assert!(matches!(hub.connect("r", "a", "u-a", "guest", None, c), Err(Error::Conflict(_))), "only the peer learns its end");
        let (c, _) = queue(2);
        assert!(matches!(hub.connect("r", "a", "u-a", "guest", Some(secret.as_str()), c), Ok(Connected::Missed(n)) if n.reason == "done"));
    }

    #[test]
    fn a_place_remade_on_a_new_owner_keeps_its_secret() {
        let hub = hub_for_tests(60_000);
        let (secret, _) = SecretHash::generate();
        let (c, _) = queue(1);
        assert!(matches!(hub.connect_keeping("r", "a", "u-a", "guest", Some(&secret), c), Ok(Connected::Fresh(s)) if s == secret));
        let (c, _) = queue(2);
        assert!(matches!(hub.connect("r", "a", "u-a", "guest", None, c), Err(Error::Conflict(_))));
        let (c, _) = queue(3);
        assert!(matches!(hub.connect("r", "a", "u-a", "guest", Some(secret.as_str()), c), Ok(Connected::Reclaimed)));
    }
}
