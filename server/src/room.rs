//! Room state and fan-out, without sockets: every connection is just a bounded queue
//! ([`ConnHandle`]). All state sits behind one short-lived mutex that is never held
//! across an `.await`; sending is `try_send` into a queue, so a slow peer can never
//! stall a room: when its queue is full it is cut off (its kill token fires) and its
//! connection task treats it like a dropped socket.

use hms_protocol::{
    code, Empty, PeerInfo, PeerLeaveRequest, PeerList, PeerNotification, Permissions, PolicyChange, Role, RoomState,
    RpcError, ServerPush,
};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

/// Something for a connection's writer to do.
#[derive(Debug)]
pub enum Out {
    /// Send a text frame.
    Text(Arc<str>),
    /// Send a text frame and report when it has been written.
    TextAck(Arc<str>, oneshot::Sender<()>),
    /// Send a close frame with this code and reason, then stop.
    Close(u16, &'static str),
}

/// The room's side of one WebSocket connection.
#[derive(Debug, Clone)]
pub struct ConnHandle {
    /// Unique per connection, so a stale connection never touches a slot it lost.
    pub id: u64,
    /// The bounded outgoing queue.
    pub tx: mpsc::Sender<Out>,
    /// Fired when the server gives up on the connection (queue full).
    pub kill: CancellationToken,
}

impl ConnHandle {
    /// Queues `out` without waiting. A full queue means the peer can't keep up: it is
    /// cut off (kill fires) and `false` is returned.
    pub fn send(&self, out: Out) -> bool {
        match self.tx.try_send(out) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                if !self.kill.is_cancelled() {
                    tracing::warn!(conn = self.id, "send queue full: disconnecting a peer that cannot keep up");
                }
                self.kill.cancel();
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }
}

/// Where a peer id of a room stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SlotState {
    /// Connected, not joined yet: invisible to others, but the peer id is taken.
    Connected,
    /// Joined and connected: gets the room's events.
    Joined,
    /// Joined, socket dropped; held for a reconnect until the timer with this generation fires.
    Held(u64),
    /// Reconnected into a held place; gets the room's state again at `join`.
    Rejoining,
}

#[derive(Debug)]
struct Slot {
    state: SlotState,
    conn: Option<ConnHandle>,
    user_id: String,
    role: String,
    permissions: Permissions,
    peer: PeerNotification,
}

impl Slot {
    fn visible(&self) -> bool {
        !matches!(self.state, SlotState::Connected)
    }
    fn live(&self) -> Option<&ConnHandle> {
        match self.state {
            SlotState::Joined => self.conn.as_ref(),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
struct Session {
    id: String,
    started_at: u64,
}

#[derive(Debug, Default)]
struct Room {
    session: Option<Session>,
    peers: HashMap<String, Slot>,
    ending: bool,
}

/// A removal a disconnected peer missed: delivered if it reconnects within the window.
#[derive(Debug, Clone)]
struct Tombstone {
    user_id: String,
    notice: PeerLeaveRequest,
    until: Instant,
}

#[derive(Default)]
struct State {
    rooms: HashMap<String, Room>,
    locked: HashSet<String>,
    tombstones: HashMap<(String, String), Tombstone>,
    next_gen: u64,
}

/// What a new connection finds.
#[derive(Debug)]
pub enum Connected {
    /// A fresh peer id: `join` next.
    Fresh,
    /// The place of a peer dropped within the reconnect window: `join` restores it silently.
    Reclaimed,
    /// The peer was removed, or its room ended, while it was disconnected: deliver this
    /// `on-peer-leave-request` and close with 1000.
    Missed(PeerLeaveRequest),
}

/// Effects the caller must carry out after a state change (the hub does no I/O).
#[derive(Debug, Default)]
pub struct Effects {
    /// A session started: record it.
    pub session_started: Option<(String, u64)>,
    /// A session ended because the room emptied: record it.
    pub session_emptied: Option<String>,
    /// A peer is now held: after the window, call [`Hub::hold_expired`] with this generation.
    pub hold: Option<u64>,
}

/// An `end-room` in progress (between the state check and the fan-out).
#[derive(Debug)]
pub struct EndTicket {
    /// The session being ended.
    pub session_id: String,
    /// Whether the room was locked before (to undo a failed lock).
    pub was_locked: bool,
}

/// A room's live state as `GET /v2/active-rooms/<id>` shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ActiveRoom {
    /// Room id.
    pub room_id: String,
    /// Current session.
    pub session_id: String,
    /// Session start, ms since the Unix epoch.
    pub started_at: u64,
    /// Peers in the room (held ones included), by id.
    pub peers: BTreeMap<String, PeerNotification>,
}

/// All rooms of the server.
pub struct Hub {
    state: Mutex<State>,
    known_roles: BTreeMap<String, Role>,
    template_id: String,
    reconnect_window: Duration,
}

fn frame(push: &ServerPush) -> Arc<str> {
    // Serializing our own plain structs cannot fail; an empty frame would be harmless anyway.
    Arc::from(serde_json::to_string(push).unwrap_or_default())
}

fn now_ms() -> u64 {
    crate::auth::now_millis()
}

impl Hub {
    /// A hub for rooms using `known_roles`; dropped peers are held for `reconnect_window`.
    pub fn new(known_roles: BTreeMap<String, Role>, template_id: String, reconnect_window: Duration) -> Self {
        Self { state: Mutex::new(State::default()), known_roles, template_id, reconnect_window }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock would poison it; the state is still consistent
        // enough to go on (every mutation is a few field writes), so keep serving.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The template's roles.
    pub fn known_roles(&self) -> &BTreeMap<String, Role> {
        &self.known_roles
    }

    /// Marks rooms as locked (from the database at startup, or the REST API).
    pub fn set_locked(&self, room_id: &str, locked: bool) {
        let mut st = self.lock();
        if locked {
            st.locked.insert(room_id.to_owned());
        } else {
            st.locked.remove(room_id);
        }
    }

    /// Whether joins to the room are refused.
    pub fn is_locked(&self, room_id: &str) -> bool {
        self.lock().locked.contains(room_id)
    }

    /// A new connection for `peer_id` in `room_id`, authenticated as `user_id` with `role`.
    pub fn connect(
        &self,
        room_id: &str,
        peer_id: &str,
        user_id: &str,
        role: &str,
        conn: ConnHandle,
    ) -> Result<Connected, RpcError> {
        let Some(role_def) = self.known_roles.get(role) else {
            return Err(RpcError::new(code::UNAUTHORIZED, format!("the token's role {role:?} is not in the template")));
        };
        let mut st = self.lock();
        let key = (room_id.to_owned(), peer_id.to_owned());
        if let Some(t) = st.tombstones.get(&key) {
            if t.until > Instant::now() && t.user_id == user_id {
                return Ok(Connected::Missed(t.notice.clone()));
            }
            st.tombstones.remove(&key);
        }
        let room = st.rooms.entry(room_id.to_owned()).or_default();
        if let Some(slot) = room.peers.get_mut(peer_id) {
            if slot.user_id != user_id || slot.role != role {
                return Err(RpcError::new(code::CONFLICT, format!("peer id {peer_id:?} is already in use in this room")));
            }
            // The same user and role: a reconnect. The old socket may still look alive
            // here (a half-open TCP connection after a network change is only noticed at
            // the idle timeout), so the new connection takes over at once rather than
            // being refused until then. The old one is told why, terminally, and closed.
            if let Some(old) = slot.conn.take() {
                let notice = ServerPush::Error(RpcError::new(code::CONFLICT, "replaced by a newer connection of the same peer"));
                old.send(Out::Text(frame(&notice)));
                old.send(Out::Close(1008, "replaced"));
            }
            slot.conn = Some(conn);
            return Ok(match slot.state {
                SlotState::Connected => Connected::Fresh,
                _ => {
                    slot.state = SlotState::Rejoining;
                    Connected::Reclaimed
                }
            });
        }
        room.peers.insert(
            peer_id.to_owned(),
            Slot {
                state: SlotState::Connected,
                conn: Some(conn),
                user_id: user_id.to_owned(),
                role: role.to_owned(),
                permissions: role_def.permissions,
                peer: PeerNotification {
                    peer_id: peer_id.to_owned(),
                    info: PeerInfo { name: String::new(), data: String::new(), user_id: user_id.to_owned(), peer_type: "regular".into() },
                    role: role.to_owned(),
                    joined_at: None,
                    tracks: BTreeMap::new(),
                    groups: Vec::new(),
                },
            },
        );
        Ok(Connected::Fresh)
    }

    /// `join`: queues `ok` (the serialized `{}` answer), `on-policy-change` and
    /// `peer-list` to the joiner, and `on-peer-join` to the others, all under one lock so
    /// that no other event can slip in between.
    pub fn join(&self, room_id: &str, peer_id: &str, conn_id: u64, name: &str, data: &str, ok: Arc<str>) -> Result<Effects, RpcError> {
        let mut guard = self.lock();
        let st = &mut *guard;
        let locked = st.locked.contains(room_id);
        let room = st.rooms.get_mut(room_id).ok_or_else(|| RpcError::new(code::INTERNAL, "connection lost its room"))?;
        let slot = room.peers.get(peer_id).filter(|s| s.conn.as_ref().map(|c| c.id) == Some(conn_id));
        let Some(state) = slot.map(|s| s.state) else {
            return Err(RpcError::new(code::INTERNAL, "connection lost its place"));
        };
        let mut fx = Effects::default();
        let announce = match state {
            SlotState::Joined => return Err(RpcError::new(code::CONFLICT, "already joined")),
            SlotState::Held(_) => return Err(RpcError::new(code::INTERNAL, "connection lost its place")),
            SlotState::Rejoining => false,
            SlotState::Connected => {
                if locked {
                    return Err(RpcError::new(code::LOCKED, "the room is locked: it was ended with lock and is disabled until re-enabled"));
                }
                true
            }
        };
        if room.session.is_none() {
            let s = Session { id: uuid::Uuid::new_v4().to_string(), started_at: now_ms() };
            fx.session_started = Some((s.id.clone(), s.started_at));
            room.session = Some(s);
        }
        let Some(slot) = room.peers.get_mut(peer_id) else {
            return Err(RpcError::new(code::INTERNAL, "connection lost its place"));
        };
        if announce {
            slot.peer.info.name = name.to_owned();
            slot.peer.info.data = data.to_owned();
            slot.peer.joined_at = Some(now_ms());
        }
        slot.state = SlotState::Joined;
        let me = slot.peer.clone();
        let my_role = slot.role.clone();
        let conn = slot.conn.clone();
        let session = room.session.clone();
        let peers: BTreeMap<String, PeerNotification> =
            room.peers.iter().filter(|(_, s)| s.visible()).map(|(id, s)| (id.clone(), s.peer.clone())).collect();
        if let Some(conn) = conn {
            let policy = ServerPush::PolicyChange(PolicyChange {
                name: my_role,
                known_roles: self.known_roles.clone(),
                template_id: self.template_id.clone(),
            });
            let list = ServerPush::PeerList(PeerList {
                peers,
                room: RoomState {
                    room_id: room_id.to_owned(),
                    name: room_id.to_owned(),
                    session_id: session.as_ref().map(|s| s.id.clone()),
                    started_at: session.as_ref().map(|s| s.started_at),
                },
            });
            let _ = conn.send(Out::Text(ok)) && conn.send(Out::Text(frame(&policy))) && conn.send(Out::Text(frame(&list)));
        }
        if announce {
            let f = frame(&ServerPush::PeerJoin(me));
            for (id, s) in &room.peers {
                if id != peer_id {
                    if let Some(c) = s.live() {
                        c.send(Out::Text(f.clone()));
                    }
                }
            }
        }
        Ok(fx)
    }

    /// Checks that `conn_id` is the joined connection of `peer_id`; returns its permissions.
    fn joined<'a>(room: Option<&'a Room>, peer_id: &str, conn_id: u64) -> Result<&'a Slot, RpcError> {
        room.and_then(|r| r.peers.get(peer_id))
            .filter(|s| s.state == SlotState::Joined && s.conn.as_ref().map(|c| c.id) == Some(conn_id))
            .ok_or_else(RpcError::not_joined)
    }

    /// Whether `conn_id` is the joined connection of `peer_id` (for methods that need a join).
    pub fn is_joined(&self, room_id: &str, peer_id: &str, conn_id: u64) -> bool {
        let st = self.lock();
        Self::joined(st.rooms.get(room_id), peer_id, conn_id).is_ok()
    }

    /// Removes a slot and tells the others; ends the session when the room empties.
    fn drop_slot(st: &mut State, room_id: &str, peer_id: &str, announce: bool) -> Effects {
        let mut fx = Effects::default();
        let Some(room) = st.rooms.get_mut(room_id) else { return fx };
        let Some(slot) = room.peers.remove(peer_id) else { return fx };
        if announce && slot.visible() {
            let f = frame(&ServerPush::PeerLeave(slot.peer));
            for s in room.peers.values() {
                if let Some(c) = s.live() {
                    c.send(Out::Text(f.clone()));
                }
            }
        }
        Self::maybe_empty(st, room_id, &mut fx);
        fx
    }

    fn maybe_empty(st: &mut State, room_id: &str, fx: &mut Effects) {
        let Some(room) = st.rooms.get_mut(room_id) else { return };
        if room.ending {
            return;
        }
        if !room.peers.values().any(Slot::visible) {
            if let Some(s) = room.session.take() {
                fx.session_emptied = Some(s.id);
            }
        }
        if room.peers.is_empty() {
            st.rooms.remove(room_id);
        }
    }

    /// `leave`: the peer goes for good; the others get `on-peer-leave`; its socket is
    /// closed with 1000.
    pub fn leave(&self, room_id: &str, peer_id: &str, conn_id: u64) -> Result<Effects, RpcError> {
        let mut st = self.lock();
        let conn = Self::joined(st.rooms.get(room_id), peer_id, conn_id)?.conn.clone();
        let fx = Self::drop_slot(&mut st, room_id, peer_id, true);
        if let Some(c) = conn {
            c.send(Out::Close(1000, "left"));
        }
        Ok(fx)
    }

    /// The connection ended without `leave`. With `hold`, a joined peer's place is kept
    /// for the reconnect window (see [`Effects::hold`]); otherwise it leaves now.
    pub fn disconnected(&self, room_id: &str, peer_id: &str, conn_id: u64, hold: bool) -> Effects {
        let mut st = self.lock();
        let gen = st.next_gen + 1;
        let window = self.reconnect_window;
        let Some(room) = st.rooms.get_mut(room_id) else { return Effects::default() };
        let Some(slot) = room.peers.get_mut(peer_id) else { return Effects::default() };
        if slot.conn.as_ref().map(|c| c.id) != Some(conn_id) {
            return Effects::default();
        }
        let joined = matches!(slot.state, SlotState::Joined | SlotState::Rejoining);
        // Held even while the room is ending: the end's second half then leaves the peer
        // a tombstone, so a reconnect still learns the room ended. Dropping it here
        // instead would tell the others a stray on-peer-leave and lose the notice.
        if joined && hold && !window.is_zero() {
            slot.state = SlotState::Held(gen);
            slot.conn = None;
            st.next_gen = gen;
            return Effects { hold: Some(gen), ..Effects::default() };
        }
        Self::drop_slot(&mut st, room_id, peer_id, true)
    }

    /// The reconnect window of a held peer ran out: it leaves; the others get `on-peer-leave`.
    pub fn hold_expired(&self, room_id: &str, peer_id: &str, gen: u64) -> Effects {
        let mut st = self.lock();
        let held = st.rooms.get(room_id).and_then(|r| r.peers.get(peer_id)).map(|s| s.state) == Some(SlotState::Held(gen));
        if !held {
            return Effects::default();
        }
        Self::drop_slot(&mut st, room_id, peer_id, true)
    }

    /// First half of `end-room`: checks the requester (`None` for the REST API) and
    /// marks the room as ending (and locked, in memory, so joins get 423 at once).
    pub fn begin_end_room(&self, room_id: &str, requester: Option<(&str, u64)>, lock: bool) -> Result<EndTicket, RpcError> {
        let mut guard = self.lock();
        let st = &mut *guard;
        let room = st.rooms.get(room_id);
        if let Some((peer_id, conn_id)) = requester {
            Self::joined(room, peer_id, conn_id)?.permissions.check(hms_protocol::Action::EndRoom)?;
        }
        let room = st
            .rooms
            .get_mut(room_id)
            .filter(|r| r.session.is_some())
            .ok_or_else(|| RpcError::new(code::NOT_FOUND, "no active session in this room"))?;
        if room.ending {
            return Err(RpcError::new(code::CONFLICT, "the room is already ending"));
        }
        let Some(session) = room.session.as_ref() else {
            return Err(RpcError::new(code::NOT_FOUND, "no active session in this room"));
        };
        let session_id = session.id.clone();
        room.ending = true;
        let was_locked = st.locked.contains(room_id);
        if lock {
            st.locked.insert(room_id.to_owned());
        }
        Ok(EndTicket { session_id, was_locked })
    }

    /// Undoes [`Hub::begin_end_room`] when the lock could not be stored.
    pub fn abort_end_room(&self, room_id: &str, ticket: &EndTicket) {
        let mut st = self.lock();
        if !ticket.was_locked {
            st.locked.remove(room_id);
        }
        if let Some(r) = st.rooms.get_mut(room_id) {
            r.ending = false;
        }
    }

    /// Second half of `end-room` (after the lock is on disk): every peer but the
    /// requester gets `on-peer-leave-request {requested_by, reason, room_end: true}` and
    /// a close (1000); disconnected peers get it if they reconnect within the window.
    /// Returns the requester's connection (to answer, then close) and one receiver per
    /// notice, fired once it is written.
    pub fn finish_end_room(
        &self,
        room_id: &str,
        requested_by: Option<&str>,
        reason: &str,
    ) -> (Option<ConnHandle>, Vec<oneshot::Receiver<()>>) {
        let mut st = self.lock();
        let notice = PeerLeaveRequest { requested_by: requested_by.map(str::to_owned), reason: reason.to_owned(), room_end: true };
        let f = frame(&ServerPush::PeerLeaveRequest(notice.clone()));
        let until = Instant::now() + self.reconnect_window;
        let Some(mut room) = st.rooms.remove(room_id) else { return (None, Vec::new()) };
        let mut acks = Vec::new();
        let mut requester = None;
        // Connections that have not joined yet were never part of the session: they stay,
        // and their `join` starts a new session (or gets 423 when the room is locked).
        let mut waiting = Room::default();
        for (peer_id, slot) in room.peers.drain() {
            if Some(peer_id.as_str()) == requested_by {
                requester = slot.conn;
                continue;
            }
            if slot.state == SlotState::Connected {
                waiting.peers.insert(peer_id, slot);
                continue;
            }
            if slot.visible() && !self.reconnect_window.is_zero() {
                st.tombstones.insert(
                    (room_id.to_owned(), peer_id.clone()),
                    Tombstone { user_id: slot.user_id.clone(), notice: notice.clone(), until },
                );
            }
            if let Some(c) = slot.conn {
                let (done, wait) = oneshot::channel();
                if c.send(Out::TextAck(f.clone(), done)) {
                    acks.push(wait);
                }
                c.send(Out::Close(1000, "room ended"));
            }
        }
        if !waiting.peers.is_empty() {
            st.rooms.insert(room_id.to_owned(), waiting);
        }
        (requester, acks)
    }

    /// Removes `target` from the room: it gets `on-peer-leave-request {room_end: false}`
    /// and a close (1000), the others `on-peer-leave`. `requester` is `None` for the REST API.
    pub fn remove_peer(
        &self,
        room_id: &str,
        requester: Option<(&str, u64)>,
        target: &str,
        reason: &str,
    ) -> Result<Effects, RpcError> {
        let mut st = self.lock();
        let room = st.rooms.get(room_id);
        if let Some((peer_id, conn_id)) = requester {
            Self::joined(room, peer_id, conn_id)?.permissions.check(hms_protocol::Action::RemoveOthers)?;
            if peer_id == target {
                return Err(RpcError::bad_request("you cannot remove yourself: use leave"));
            }
        }
        let slot = room
            .and_then(|r| r.peers.get(target))
            .filter(|s| s.visible() && !r_ending(room))
            .ok_or_else(|| RpcError::new(code::NOT_FOUND, format!("no peer {target:?} in this room")))?;
        let notice = PeerLeaveRequest { requested_by: requester.map(|(p, _)| p.to_owned()), reason: reason.to_owned(), room_end: false };
        if !self.reconnect_window.is_zero() {
            let t = Tombstone { user_id: slot.user_id.clone(), notice: notice.clone(), until: Instant::now() + self.reconnect_window };
            st.tombstones.insert((room_id.to_owned(), target.to_owned()), t);
        }
        let conn = st.rooms.get(room_id).and_then(|r| r.peers.get(target)).and_then(|s| s.conn.clone());
        if let Some(c) = conn {
            if c.send(Out::Text(frame(&ServerPush::PeerLeaveRequest(notice)))) {
                c.send(Out::Close(1000, "removed"));
            }
        }
        Ok(Self::drop_slot(&mut st, room_id, target, true))
    }

    /// Peer ids of the room's visible peers with `role`.
    pub fn peers_with_role(&self, room_id: &str, role: &str) -> Vec<String> {
        let st = self.lock();
        st.rooms
            .get(room_id)
            .map(|r| r.peers.iter().filter(|(_, s)| s.visible() && s.role == role).map(|(id, _)| id.clone()).collect())
            .unwrap_or_default()
    }

    /// The room's session and peers, if a session is running.
    pub fn active_room(&self, room_id: &str) -> Option<ActiveRoom> {
        let st = self.lock();
        let room = st.rooms.get(room_id)?;
        let s = room.session.as_ref()?;
        Some(ActiveRoom {
            room_id: room_id.to_owned(),
            session_id: s.id.clone(),
            started_at: s.started_at,
            peers: room.peers.iter().filter(|(_, s)| s.visible()).map(|(id, s)| (id.clone(), s.peer.clone())).collect(),
        })
    }

    /// Forgets expired tombstones.
    pub fn sweep(&self) {
        let now = Instant::now();
        self.lock().tombstones.retain(|_, t| t.until > now);
    }

    /// Shutdown: queues a close (1001) to every connection, forgets all rooms, and
    /// returns the running sessions (to record as ended) and the connections.
    pub fn shutdown(&self) -> (Vec<String>, Vec<ConnHandle>) {
        let mut st = self.lock();
        let mut sessions = Vec::new();
        let mut conns = Vec::new();
        for (_, room) in st.rooms.drain() {
            if let Some(s) = room.session {
                sessions.push(s.id);
            }
            for (_, slot) in room.peers {
                if let Some(c) = slot.conn {
                    c.send(Out::Close(1001, "server shutting down"));
                    conns.push(c);
                }
            }
        }
        (sessions, conns)
    }

    /// Number of rooms and of connected peers (for logs and tests).
    pub fn counts(&self) -> (usize, usize) {
        let st = self.lock();
        (st.rooms.len(), st.rooms.values().map(|r| r.peers.values().filter(|s| s.conn.is_some()).count()).sum())
    }
}

fn r_ending(room: Option<&Room>) -> bool {
    room.map(|r| r.ending).unwrap_or(false)
}

/// The serialized `{}` success answer for request `id`.
pub fn ok_frame(id: &serde_json::Value) -> Arc<str> {
    Arc::from(serde_json::to_string(&hms_protocol::Response::ok(id, Empty {})).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn hub(window_ms: u64) -> Hub {
        let cfg = crate::config::Config::default();
        Hub::new(cfg.template.known_roles(), "default".into(), Duration::from_millis(window_ms))
    }

    struct Peer {
        conn: ConnHandle,
        rx: mpsc::Receiver<Out>,
    }

    fn conn(id: u64, cap: usize) -> Peer {
        let (tx, rx) = mpsc::channel(cap);
        Peer { conn: ConnHandle { id, tx, kill: CancellationToken::new() }, rx }
    }

    impl Peer {
        /// Everything queued so far, as JSON (acks are fired as if written).
        fn drain(&mut self) -> Vec<Value> {
            let mut v = Vec::new();
            while let Ok(o) = self.rx.try_recv() {
                v.push(match o {
                    Out::Text(t) => serde_json::from_str(&t).unwrap(),
                    Out::TextAck(t, done) => {
                        let _ = done.send(());
                        serde_json::from_str(&t).unwrap()
                    }
                    Out::Close(code, _) => json!({"close": code}),
                });
            }
            v
        }
    }

    fn methods(v: &[Value]) -> Vec<String> {
        v.iter()
            .map(|f| f.get("method").and_then(Value::as_str).map(str::to_owned).unwrap_or_else(|| f.to_string()))
            .collect()
    }

    fn join(h: &Hub, room: &str, peer: &str, role: &str, id: u64) -> Peer {
        let mut p = conn(id, 64);
        assert!(matches!(h.connect(room, peer, &format!("u-{peer}"), role, p.conn.clone()).unwrap(), Connected::Fresh));
        h.join(room, peer, id, peer, "", ok_frame(&json!(1))).unwrap();
        let first = p.drain();
        assert_eq!(first[0]["result"], json!({}));
        assert_eq!(methods(&first[1..]), ["on-policy-change", "peer-list"]);
        p
    }

    #[test]
    fn join_announces_and_lists() {
        let h = hub(0);
        let mut a = join(&h, "r", "a", "host", 1);
        let b = {
            let mut p = conn(2, 64);
            h.connect("r", "b", "u-b", "guest", p.conn.clone()).unwrap();
            h.join("r", "b", 2, "Bee", "d", ok_frame(&json!("x"))).unwrap();
            let f = p.drain();
            assert_eq!(f[2]["params"]["peers"].as_object().unwrap().len(), 2);
            assert_eq!(f[1]["params"]["name"], "guest");
            assert_eq!(f[1]["params"]["known_roles"]["host"]["permissions"]["endRoom"], true);
            p
        };
        let got = a.drain();
        assert_eq!(methods(&got), ["on-peer-join"]);
        assert_eq!(got[0]["params"]["info"]["name"], "Bee");
        assert_eq!(h.join("r", "b", 2, "again", "", ok_frame(&json!(2))).unwrap_err().code, 409);
        drop(b);
    }

    #[test]
    fn peer_id_in_use_is_409_and_unknown_role_401() {
        let h = hub(0);
        let _a = join(&h, "r", "a", "host", 1);
        assert_eq!(h.connect("r", "a", "u-other", "host", conn(2, 4).conn).unwrap_err().code, 409);
        assert_eq!(h.connect("r", "a", "u-a", "guest", conn(2, 4).conn).unwrap_err().code, 409);
        assert_eq!(h.connect("r", "z", "u", "nope", conn(3, 4).conn).unwrap_err().code, 401);
    }

    #[test]
    fn a_drop_while_the_room_is_ending_still_gets_the_room_end_on_reconnect() {
        let h = hub(30_000);
        let mut host = join(&h, "r", "h", "host", 1);
        let g = join(&h, "r", "g", "guest", 2);
        host.drain();
        // end-room's first half, then the guest's socket drop is processed while the
        // durable write is under way, then the second half.
        let _ticket = h.begin_end_room("r", Some(("h", 1)), false).unwrap();
        drop(g);
        let fx = h.disconnected("r", "g", 2, true);
        assert!(fx.hold.is_some(), "the dropped guest is held, not announced");
        h.finish_end_room("r", Some("h"), "all done");
        assert!(host.drain().iter().all(|m| m["method"] != "on-peer-leave"), "no stray on-peer-leave");
        let g2 = conn(3, 8);
        match h.connect("r", "g", "u-g", "guest", g2.conn.clone()).unwrap() {
            Connected::Missed(n) => assert!(n.room_end && n.reason == "all done"),
            other => panic!("expected the missed room end, got {other:?}"),
        }
    }

    #[test]
    fn same_user_takes_over_a_live_place_and_the_old_connection_is_told() {
        let h = hub(0);
        let mut a = join(&h, "r", "a", "host", 1);
        let mut b = join(&h, "r", "b", "guest", 2);
        a.drain();
        let mut a2 = conn(3, 8);
        assert!(matches!(h.connect("r", "a", "u-a", "host", a2.conn.clone()).unwrap(), Connected::Reclaimed));
        let old = a.drain();
        assert_eq!(old[0]["method"], "on-error");
        assert_eq!(old[0]["params"]["code"], 409);
        // The stale connection's end no longer touches the place.
        assert!(h.disconnected("r", "a", 1, false).hold.is_none());
        h.join("r", "a", 3, "a", "", ok_frame(&json!(9))).unwrap();
        assert_eq!(methods(&a2.drain()[1..]), ["on-policy-change", "peer-list"]);
        assert!(b.drain().is_empty(), "others see no leave/join for a takeover");
    }

    #[test]
    fn end_room_notifies_others_and_locks() {
        let h = hub(0);
        let mut a = join(&h, "r", "a", "host", 1);
        let mut b = join(&h, "r", "b", "guest", 2);
        let mut c = join(&h, "r", "c", "guest", 3);
        a.drain();
        b.drain();
        assert_eq!(h.begin_end_room("r", Some(("b", 2)), true).unwrap_err().code, 403);
        assert!(!h.is_locked("r"));
        let t = h.begin_end_room("r", Some(("a", 1)), true).unwrap();
        assert!(h.is_locked("r"));
        let (req, acks) = h.finish_end_room("r", Some("a"), "done");
        assert_eq!(req.unwrap().id, 1);
        assert_eq!(acks.len(), 2);
        for p in [&mut b, &mut c] {
            let f = p.drain();
            let f: Vec<&Value> = f.iter().filter(|f| f.get("method").map(|m| m != "on-peer-join").unwrap_or(true)).collect();
            assert_eq!(f[0]["method"], "on-peer-leave-request");
            assert_eq!(f[0]["params"], json!({"requested_by": "a", "reason": "done", "room_end": true}));
            assert_eq!(f[1], &json!({"close": 1000}));
        }
        assert!(a.drain().is_empty(), "the requester's answer is the caller's job");
        assert!(h.active_room("r").is_none());
        let _ = t;
        // Locked: a new join fails with 423.
        let p = conn(9, 4);
        h.connect("r", "d", "u-d", "host", p.conn.clone()).unwrap();
        assert_eq!(h.join("r", "d", 9, "d", "", ok_frame(&json!(1))).unwrap_err().code, 423);
        h.set_locked("r", false);
        assert!(h.join("r", "d", 9, "d", "", ok_frame(&json!(1))).is_ok());
    }

    #[test]
    fn end_room_leaves_unjoined_connections_alone() {
        let h = hub(0);
        let _a = join(&h, "r", "a", "host", 1);
        let mut w = conn(2, 8);
        h.connect("r", "w", "u-w", "guest", w.conn.clone()).unwrap();
        h.begin_end_room("r", Some(("a", 1)), false).unwrap();
        h.finish_end_room("r", Some("a"), "bye");
        assert!(w.drain().is_empty(), "not told, not closed");
        h.join("r", "w", 2, "w", "", ok_frame(&json!(1))).unwrap();
        let f = w.drain();
        assert_eq!(f[2]["params"]["peers"].as_object().unwrap().len(), 1, "a new session with only w");
        assert!(h.active_room("r").is_some());
    }

    #[test]
    fn remove_peer_rules() {
        let h = hub(0);
        let mut a = join(&h, "r", "a", "host", 1);
        let mut b = join(&h, "r", "b", "guest", 2);
        let mut c = join(&h, "r", "c", "guest", 3);
        a.drain();
        b.drain();
        assert_eq!(h.remove_peer("r", Some(("b", 2)), "c", "x").unwrap_err().code, 403);
        assert_eq!(h.remove_peer("r", Some(("a", 1)), "a", "x").unwrap_err().code, 400);
        assert_eq!(h.remove_peer("r", Some(("a", 1)), "zz", "x").unwrap_err().code, 404);
        h.remove_peer("r", Some(("a", 1)), "c", "bye").unwrap();
        let f = c.drain();
        assert_eq!(f[0]["params"], json!({"requested_by": "a", "reason": "bye", "room_end": false}));
        assert_eq!(f[1], json!({"close": 1000}));
        for p in [&mut a, &mut b] {
            let f = p.drain();
            assert_eq!(methods(&f), ["on-peer-leave"]);
            assert_eq!(f[0]["params"]["peer_id"], "c");
        }
    }

    #[test]
    fn methods_before_join_are_refused() {
        let h = hub(0);
        let p = conn(1, 4);
        h.connect("r", "a", "u", "host", p.conn.clone()).unwrap();
        assert_eq!(h.leave("r", "a", 1).unwrap_err().code, 400);
        assert_eq!(h.begin_end_room("r", Some(("a", 1)), false).unwrap_err().code, 400);
        assert_eq!(h.remove_peer("r", Some(("a", 1)), "b", "").unwrap_err().code, 400);
    }

    #[test]
    fn full_queue_cuts_the_slow_peer_not_the_room() {
        let h = hub(0);
        let mut a = join(&h, "r", "a", "host", 1);
        // b's queue holds 3 frames: its own join answers fill it.
        let mut b = conn(2, 3);
        h.connect("r", "b", "u-b", "guest", b.conn.clone()).unwrap();
        h.join("r", "b", 2, "b", "", ok_frame(&json!(1))).unwrap();
        let _c = join(&h, "r", "c", "guest", 3); // b's on-peer-join overflows
        assert!(b.conn.kill.is_cancelled());
        a.drain();
        h.begin_end_room("r", Some(("a", 1)), false).unwrap();
        let (_req, acks) = h.finish_end_room("r", Some("a"), "bye");
        assert_eq!(acks.len(), 1, "c got its notice; b's full queue was skipped");
        assert_eq!(b.drain().len(), 3);
    }

    #[test]
    fn reconnect_window_holds_the_place_silently() {
        let h = hub(60_000);
        let mut a = join(&h, "r", "a", "host", 1);
        let _b = join(&h, "r", "b", "guest", 2);
        a.drain();
        let fx = h.disconnected("r", "b", 2, true);
        let gen = fx.hold.unwrap();
        assert!(a.drain().is_empty(), "no leave while held");
        let mut b2 = conn(5, 16);
        assert!(matches!(h.connect("r", "b", "u-b", "guest", b2.conn.clone()).unwrap(), Connected::Reclaimed));
        h.join("r", "b", 5, "b", "", ok_frame(&json!(1))).unwrap();
        let f = b2.drain();
        assert_eq!(methods(&f[1..]), ["on-policy-change", "peer-list"]);
        assert_eq!(f[2]["params"]["peers"].as_object().unwrap().len(), 2);
        assert!(a.drain().is_empty(), "no join noise on reconnect");
        assert!(h.hold_expired("r", "b", gen).session_emptied.is_none());
        assert!(a.drain().is_empty(), "a stale timer does nothing");
        // Dropped again, and the window runs out: now the others hear of it.
        let gen = h.disconnected("r", "b", 5, true).hold.unwrap();
        h.hold_expired("r", "b", gen);
        assert_eq!(methods(&a.drain()), ["on-peer-leave"]);
        // Another user cannot take a held place.
        let _c = join(&h, "r", "c", "guest", 6);
        h.disconnected("r", "c", 6, true);
        assert_eq!(h.connect("r", "c", "someone-else", "guest", conn(7, 4).conn).unwrap_err().code, 409);
    }

    #[test]
    fn missed_removal_and_room_end_are_delivered_on_reconnect() {
        let h = hub(60_000);
        let _a = join(&h, "r", "a", "host", 1);
        let _b = join(&h, "r", "b", "guest", 2);
        let _c = join(&h, "r", "c", "guest", 3);
        h.disconnected("r", "b", 2, true);
        h.remove_peer("r", Some(("a", 1)), "b", "kicked").unwrap();
        match h.connect("r", "b", "u-b", "guest", conn(4, 4).conn).unwrap() {
            Connected::Missed(n) => assert_eq!((n.requested_by.as_deref(), n.reason.as_str(), n.room_end), (Some("a"), "kicked", false)),
            other => panic!("{other:?}"),
        }
        h.disconnected("r", "c", 3, true);
        h.begin_end_room("r", None, false).unwrap();
        h.finish_end_room("r", None, "over");
        match h.connect("r", "c", "u-c", "guest", conn(5, 4).conn).unwrap() {
            Connected::Missed(n) => assert_eq!((n.requested_by, n.reason.as_str(), n.room_end), (None, "over", true)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn session_ends_when_room_empties() {
        let h = hub(0);
        let a = join(&h, "r", "a", "host", 1);
        assert!(h.active_room("r").is_some());
        let fx = h.leave("r", "a", 1).unwrap();
        assert!(fx.session_emptied.is_some());
        assert!(h.active_room("r").is_none());
        assert_eq!(h.counts(), (0, 0));
        drop(a);
    }
}
