//! The rooms of this process as a domain model: peers, their places (joined, held for a
//! reconnect, removed), sessions, locks, and who is told what. No sockets, no JSON, no
//! close codes: every connection is a [`ConnHandle`] (a queue), frames come ready-made
//! from [`crate::frame`], and closes carry a [`Close`] reason.
//!
//! State is split into shards by room id, each behind a short-lived mutex that is never
//! held across an `.await` or while a big frame is serialized, so rooms on different
//! shards (many rooms ended at once) never wait for each other. Sending is a
//! non-blocking queue push, so a slow peer can never stall a room: when its queue is full
//! it is cut off and its connection task treats it like a dropped socket.
//!
//! Every peer's JSON is serialized once, when it joins, and reused by every frame that
//! carries it. A room that reaches [`LargeRooms::threshold`] peers becomes a large room:
//! joiners get a first page instead of everyone ([`paging`]), and joins and leaves are
//! coalesced per tick for the roles that subscribe ([`batch`]).

mod batch;
mod paging;

pub use batch::PeerBatchFrame;

use crate::conn::{Close, ConnHandle, Fanout, Out};
use crate::error::Error;
use crate::events::{By, CloseReason, Discard, Event, LeaveReason, PeerRecord, Sink};
use crate::frame::{self, Text};
use hms_protocol::{Action, PeerInfo, PeerLeaveRequest, PeerNotification, Permissions, PolicyChange, Role, RoomState, ServerPush};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{BuildHasher, Hasher};
use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

mod secret;
pub use secret::{Secret, SecretHash};

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
    /// Proves a reconnect is this peer's own (see [`SecretHash`]).
    secret: SecretHash,
    user_id: String,
    /// The role's name, shared with every slot of the role.
    role: Text,
    permissions: Permissions,
    /// In a large room, whether this peer gets the coalesced joins and leaves.
    subscribed: bool,
    /// The peer's [`PeerNotification`] as JSON, serialized once at join (empty before).
    json: Text,
    /// Its place in the room's join order ([`paging::Roster`]); 0 before join.
    seq: u64,
    /// Its open peer-list iterators (bounded, they expire).
    cursors: Vec<paging::Cursor>,
}

impl Slot {
    /// The peer as events report it (its name, metadata and join time are in its JSON).
    fn record(&self, peer_id: &str) -> PeerRecord {
        PeerRecord { peer_id: peer_id.to_owned(), user_id: self.user_id.clone(), role: self.role.to_string(), json: self.json.clone() }
    }
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
    /// The end under way locks the room: joins get 423 already, although the lock itself
    /// is set (by [`Hub::set_locked`]) only once the database has it.
    ending_locks: bool,
    /// Large-room mode (one way: set at the join that reaches the threshold).
    large: bool,
    /// The visible peers in join order.
    roster: paging::Roster,
    /// Large rooms: joins and leaves waiting for the next tick.
    batch: batch::Pending,
}

/// How long the peer that ended a room is told so if it reconnects: its `end-room` may
/// have been stored while its connection dropped, and a reconnect is how it learns the
/// outcome. Longer than the reconnect window, because the SDK keeps trying for longer
/// (and a server restart in between is covered by [`Hub::remember_end`]).
pub const END_NOTICE_TTL: Duration = Duration::from_secs(300);

/// A removal a disconnected peer missed: delivered if it reconnects within the window.
#[derive(Debug, Clone)]
struct Tombstone {
    user_id: String,
    /// The place's secret; `None` when rebuilt from the store after a restart (the store
    /// keeps no secrets), then the user id alone decides.
    secret: Option<SecretHash>,
    /// Shared by every peer of an ended room.
    notice: std::sync::Arc<PeerLeaveRequest>,
    until: Instant,
}

#[derive(Default)]
struct State {
    rooms: HashMap<String, Room>,
    locked: HashSet<String>,
    tombstones: HashMap<(String, String), Tombstone>,
    next_gen: u64,
    /// Events of the change in progress, handed to the sink before the lock is released.
    events: Vec<Event>,
}

/// A locked shard. Dropping it hands the change's events to the sink while the lock is
/// still held, so every room's events reach the sink in the order they happened.
struct Locked<'a> {
    state: MutexGuard<'a, State>,
    sink: &'a dyn Sink,
}

impl Deref for Locked<'_> {
    type Target = State;
    fn deref(&self) -> &State {
        &self.state
    }
}

impl DerefMut for Locked<'_> {
    fn deref_mut(&mut self) -> &mut State {
        &mut self.state
    }
}

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        if !self.state.events.is_empty() {
            self.sink.emit(std::mem::take(&mut self.state.events));
        }
    }
}

/// What a new connection finds.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub enum Connected {
    /// A fresh peer id: `join` next. The place's new reconnect secret, for the join answer.
    Fresh(Secret),
    /// The place of a peer dropped within the reconnect window: `join` restores it silently.
    Reclaimed,
    /// The peer was removed, or its room ended, while it was disconnected: deliver this
    /// `on-peer-leave-request` and close with 1000.
    Missed(PeerLeaveRequest),
}

/// Effects the caller must carry out after a state change (the hub does no I/O; what
/// happened goes to the [`Sink`] as events).
#[derive(Debug, Default)]
pub struct Effects {
    /// A peer is now held: after the window, call [`Hub::hold_expired`] with this generation.
    pub hold: Option<u64>,
    /// A large room's batch of joins and leaves was started: after the tick, flush it
    /// with [`Hub::take_batch`] and [`Hub::send_batch`] under this token.
    pub batch: Option<u64>,
}

/// An `end-room` in progress (between the state check and the fan-out).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct EndTicket {
    /// The session being ended.
    pub session_id: String,
    /// When it began, ms since the Unix epoch.
    pub started_at: u64,
    /// The requesting peer's user id (for the end record).
    pub requester_user: Option<String>,
}

/// A room's running session and who is in it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
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

/// When a room becomes a large room, and who is told of joins and leaves then.
#[derive(Debug, Clone, Default)]
pub struct LargeRooms {
    /// A room becomes large at the join that brings it to this many peers; 0 = never,
    /// 1 = from the first join.
    pub threshold: usize,
    /// Peers besides the joiner in a large room's `peer-list` (the first page).
    pub first_page: usize,
    /// Roles that get no `on-peer-batch` in large rooms.
    pub quiet_roles: HashSet<String>,
}

/// Shards of the room state. Rooms hash to one; a power of two.
const SHARDS: usize = 64;

/// All rooms of the server.
pub struct Hub {
    shards: Box<[Mutex<State>]>,
    sink: Arc<dyn Sink>,
    hasher: std::collections::hash_map::RandomState,
    known_roles: BTreeMap<String, Role>,
    /// Each role's name, shared by its slots, and its `on-policy-change` frame,
    /// serialized once.
    roles: HashMap<String, (Text, Text)>,
    reconnect_window: Duration,
    large: LargeRooms,
    /// Places one room holds at most (0 = no limit).
    max_peers: usize,
}

fn now_ms() -> u64 {
    crate::clock::now_millis()
}

impl Hub {
    /// A hub for rooms using `known_roles`; dropped peers are held for `reconnect_window`.
    pub fn new(known_roles: BTreeMap<String, Role>, template_id: String, reconnect_window: Duration) -> Self {
        let roles = known_roles
            .keys()
            .map(|name| {
                let policy = ServerPush::PolicyChange(PolicyChange {
                    name: name.clone(),
                    known_roles: known_roles.clone(),
                    template_id: template_id.clone(),
                });
                (name.clone(), (Text::from(name.clone()), frame::push(&policy)))
            })
            .collect();
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(State::default())).collect(),
            sink: Arc::new(Discard),
            hasher: Default::default(),
            known_roles,
            roles,
            reconnect_window,
            large: LargeRooms::default(),
            max_peers: 0,
        }
    }

    /// Limits each room to `max` places (connected, joined or held); 0 = no limit.
    pub fn with_max_peers(mut self, max: usize) -> Self {
        self.max_peers = max;
        self
    }

    /// Sets when rooms become large rooms (off by default).
    pub fn with_large_rooms(mut self, large: LargeRooms) -> Self {
        self.large = large;
        self
    }

    /// The same hub, sending its events to `sink`.
    pub fn with_sink(mut self, sink: Arc<dyn Sink>) -> Self {
        self.sink = sink;
        self
    }

    /// The shard of `room_id`, locked.
    fn lock(&self, room_id: &str) -> Locked<'_> {
        let mut h = self.hasher.build_hasher();
        h.write(room_id.as_bytes());
        self.guard(&self.shards[h.finish() as usize & (SHARDS - 1)])
    }

    fn guard<'a>(&'a self, m: &'a Mutex<State>) -> Locked<'a> {
        // A panic while holding the lock would poison it; the state is still consistent
        // enough to go on (every mutation is a few field writes), so keep serving.
        Locked { state: m.lock().unwrap_or_else(|p| p.into_inner()), sink: &*self.sink }
    }

    /// The template's roles.
    pub fn known_roles(&self) -> &BTreeMap<String, Role> {
        &self.known_roles
    }

    /// Marks rooms as locked or not: from the database at startup, then each time a lock
    /// change is committed, in commit order (so memory ends as the database ends).
    pub fn set_locked(&self, room_id: &str, locked: bool) {
        let mut st = self.lock(room_id);
        if locked {
            st.locked.insert(room_id.to_owned());
        } else {
            st.locked.remove(room_id);
        }
    }

    /// Whether joins to the room are refused.
    pub fn is_locked(&self, room_id: &str) -> bool {
        self.lock(room_id).locked.contains(room_id)
    }

    /// A new connection for `peer_id` in `room_id`, authenticated as `user_id` with `role`,
    /// presenting `secret` (the `reconnect_secret` of an earlier join, if any).
    ///
    /// A peer id that has a place (connected, joined or held) or a live tombstone belongs
    /// to whoever holds that place's secret: only a connection with the same user, role
    /// and secret takes the place over (or gets the tombstone's notice); anyone else gets
    /// 409 and the place, its connection and the tombstone are left as they were.
    pub fn connect(
        &self,
        room_id: &str,
        peer_id: &str,
        user_id: &str,
        role: &str,
        secret: Option<&str>,
        conn: ConnHandle,
    ) -> Result<Connected, Error> {
        let (Some(role_def), Some((role_name, _))) = (self.known_roles.get(role), self.roles.get(role)) else {
            return Err(Error::Unauthorized(format!("the token's role {role:?} is not in the template")));
        };
        let in_use = || {
            Error::Conflict(format!(
                "peer id {peer_id:?} is in use in this room; only its own reconnect (same user and role, with the reconnect_secret of its join answer) can take it back"
            ))
        };
        let mut st = self.lock(room_id);
        let key = (room_id.to_owned(), peer_id.to_owned());
        if let Some(t) = st.tombstones.get(&key) {
            if t.until > Instant::now() {
                if t.user_id == user_id && t.secret.as_ref().map_or(true, |h| h.matches(secret)) {
                    return Ok(Connected::Missed((*t.notice).clone()));
                }
                return Err(in_use());
            }
            st.tombstones.remove(&key);
        }
        let room = st.rooms.entry(room_id.to_owned()).or_default();
        if let Some(slot) = room.peers.get_mut(peer_id) {
            if slot.user_id != user_id || slot.role.as_str() != role || !slot.secret.matches(secret) {
                return Err(in_use());
            }
            // The peer itself, reconnecting. The old socket may still look alive here (a
            // half-open TCP connection after a network change is only noticed at the idle
            // timeout), so the new connection takes over at once rather than being refused
            // until then. The old one is told why, terminally, and closed.
            if let Some(old) = slot.conn.take() {
                let notice = ServerPush::Error(Error::Conflict("replaced by a newer connection of the same peer".into()).to_rpc());
                old.send(Out::Text(frame::push(&notice)));
                old.send(Out::Close(Close::Replaced));
            }
            slot.conn = Some(conn);
            if slot.state != SlotState::Connected {
                slot.state = SlotState::Rejoining;
            }
            return Ok(Connected::Reclaimed);
        }
        if self.max_peers > 0 && room.peers.len() >= self.max_peers {
            return Err(Error::RateLimited(format!("the room is full: {} peers (limits.max_peers_per_room)", self.max_peers)));
        }
        let (secret, hash) = SecretHash::generate();
        room.peers.insert(
            peer_id.to_owned(),
            Slot {
                state: SlotState::Connected,
                conn: Some(conn),
                secret: hash,
                user_id: user_id.to_owned(),
                role: role_name.clone(),
                permissions: role_def.permissions,
                subscribed: !self.large.quiet_roles.contains(role),
                json: Text::from_static(""),
                seq: 0,
                cursors: Vec::new(),
            },
        );
        Ok(Connected::Fresh(secret))
    }

    /// `join`: queues `ok` (the serialized `{}` answer), `on-policy-change` and
    /// `peer-list` to the joiner, and tells the others, all under the room's lock so that
    /// no other event can slip in between. Small rooms: every peer in the list, an
    /// `on-peer-join` to each other peer. Large rooms: the first page in the list, and the
    /// join goes into the next `on-peer-batch`.
    pub fn join(&self, room_id: &str, peer_id: &str, conn_id: u64, name: &str, data: &str, ok: Text) -> Result<Effects, Error> {
        let mut guard = self.lock(room_id);
        let st = &mut *guard;
        let room = st.rooms.get_mut(room_id).ok_or_else(|| Error::Internal("connection lost its room".into()))?;
        let locked = room.ending_locks || st.locked.contains(room_id);
        let slot = room.peers.get(peer_id).filter(|s| s.conn.as_ref().map(|c| c.id) == Some(conn_id));
        let Some(state) = slot.map(|s| s.state) else {
            return Err(Error::Internal("connection lost its place".into()));
        };
        let mut fx = Effects::default();
        let announce = match state {
            SlotState::Joined => return Err(Error::Conflict("already joined".into())),
            SlotState::Held(_) => return Err(Error::Internal("connection lost its place".into())),
            SlotState::Rejoining => false,
            SlotState::Connected => {
                if locked {
                    return Err(Error::Locked);
                }
                true
            }
        };
        if room.session.is_none() {
            let s = Session { id: uuid::Uuid::new_v4().to_string(), started_at: now_ms() };
            st.events.push(Event::SessionOpened { room_id: room_id.to_owned(), session_id: s.id.clone(), at: s.started_at });
            room.session = Some(s);
        }
        let Some(slot) = room.peers.get_mut(peer_id) else {
            return Err(Error::Internal("connection lost its place".into()));
        };
        if announce {
            let me = PeerNotification {
                peer_id: peer_id.to_owned(),
                info: PeerInfo { name: name.to_owned(), data: data.to_owned(), user_id: slot.user_id.clone(), peer_type: "regular".into() },
                role: slot.role.to_string(),
                joined_at: Some(now_ms()),
                tracks: BTreeMap::new(),
                groups: Vec::new(),
            };
            slot.json = frame::peer(&me);
            slot.seq = room.roster.add(Text::from(peer_id.to_owned()));
        }
        slot.state = SlotState::Joined;
        let (me, my_seq, conn) = (slot.json.clone(), slot.seq, slot.conn.clone());
        let policy = self.roles.get(slot.role.as_str()).map(|(_, p)| p.clone());
        let threshold = self.large.threshold;
        if !room.large && threshold > 0 && room.roster.len() >= threshold {
            room.large = true;
        }
        let list = self.list_out(room_id, room, peer_id, &me, my_seq);
        if let Some(conn) = conn {
            let _ = conn.send(Out::Text(ok)) && policy.is_some_and(|p| conn.send(Out::Text(p))) && conn.send(list);
        }
        if announce {
            if let (Some(s), Some(slot)) = (&room.session, room.peers.get(peer_id)) {
                st.events.push(Event::PeerJoined { room_id: room_id.to_owned(), session_id: s.id.clone(), peer: slot.record(peer_id) });
            }
            if room.large {
                fx.batch = room.batch.joined(peer_id, me);
            } else {
                let f = frame::peer_join(&me);
                for (id, s) in &room.peers {
                    if id != peer_id {
                        if let Some(c) = s.live() {
                            c.send(Out::Text(f.clone()));
                        }
                    }
                }
            }
        }
        Ok(fx)
    }

    /// The `peer-list` for `peer_id` (whose JSON is `me`, join order `my_seq`): every
    /// peer of a small room, the first page of a large one. Only shared handles to each
    /// listed peer's JSON are taken here; the frame is built by the peer's writer,
    /// outside the lock.
    fn list_out(&self, room_id: &str, room: &Room, peer_id: &str, me: &Text, my_seq: u64) -> Out {
        let session = room.session.as_ref();
        let info = RoomState {
            room_id: room_id.to_owned(),
            name: room_id.to_owned(),
            session_id: session.map(|s| s.id.clone()),
            started_at: session.map(|s| s.started_at),
        };
        let (listed, count) = if room.large {
            let mut page = vec![(Text::from(peer_id.to_owned()), me.clone())];
            page.extend(room.roster.first(self.large.first_page + 1).filter(|(seq, _)| *seq != my_seq).take(self.large.first_page).filter_map(|(_, id)| {
                room.peers.get(id.as_str()).map(|s| (id.clone(), s.json.clone()))
            }));
            (page, Some(room.roster.len() as u64))
        } else {
            let all = room.peers.iter().filter(|(_, s)| s.visible()).map(|(id, s)| (Text::from(id.clone()), s.json.clone())).collect();
            (all, None)
        };
        let large = room.large;
        Out::Build(Box::new(move || {
            let mut listed = listed;
            listed.sort_unstable_by(|a, b| a.0.cmp(&b.0));
            frame::peer_list(&listed, &info, count, large)
        }))
    }

    /// Checks that `conn_id` is the joined connection of `peer_id`; returns its permissions.
    fn joined<'a>(room: Option<&'a Room>, peer_id: &str, conn_id: u64) -> Result<&'a Slot, Error> {
        room.and_then(|r| r.peers.get(peer_id))
            .filter(|s| s.state == SlotState::Joined && s.conn.as_ref().map(|c| c.id) == Some(conn_id))
            .ok_or(Error::NotJoined)
    }

    /// `Ok` when the slot's role allows `action` (the protocol's shared check).
    fn permit(slot: &Slot, action: Action) -> Result<(), Error> {
        if slot.permissions.allows(action) {
            Ok(())
        } else {
            Err(Error::Forbidden(action))
        }
    }

    /// Whether `conn_id` is the joined connection of `peer_id` (for methods that need a join).
    pub fn is_joined(&self, room_id: &str, peer_id: &str, conn_id: u64) -> bool {
        let st = self.lock(room_id);
        Self::joined(st.rooms.get(room_id), peer_id, conn_id).is_ok()
    }

    /// Removes a slot and tells the others; ends the session when the room empties.
    fn drop_slot(st: &mut State, room_id: &str, peer_id: &str, reason: LeaveReason) -> Effects {
        let mut fx = Effects::default();
        let Some(room) = st.rooms.get_mut(room_id) else { return fx };
        let Some(slot) = room.peers.remove(peer_id) else { return fx };
        if slot.visible() {
            room.roster.remove(slot.seq);
            if let Some(s) = &room.session {
                let left = Event::PeerLeft { room_id: room_id.to_owned(), session_id: s.id.clone(), peer: slot.record(peer_id), at: now_ms(), reason };
                st.events.push(left);
            }
        }
        if slot.visible() {
            if room.large {
                fx.batch = room.batch.left(peer_id);
            } else {
                let f = frame::peer_leave(&slot.json);
                for s in room.peers.values() {
                    if let Some(c) = s.live() {
                        c.send(Out::Text(f.clone()));
                    }
                }
            }
        }
        Self::maybe_empty(st, room_id);
        fx
    }

    fn maybe_empty(st: &mut State, room_id: &str) {
        let Some(room) = st.rooms.get_mut(room_id) else { return };
        if room.ending {
            return;
        }
        if !room.peers.values().any(Slot::visible) {
            if let Some(s) = room.session.take() {
                let reason = CloseReason::Emptied;
                st.events.push(Event::SessionClosed { room_id: room_id.to_owned(), session_id: s.id, started_at: s.started_at, at: now_ms(), reason });
            }
        }
        if room.peers.is_empty() {
            st.rooms.remove(room_id);
        }
    }

    /// `leave`: the peer goes for good; the others get `on-peer-leave`; its socket is
    /// closed with 1000.
    pub fn leave(&self, room_id: &str, peer_id: &str, conn_id: u64) -> Result<Effects, Error> {
        let mut st = self.lock(room_id);
        let conn = Self::joined(st.rooms.get(room_id), peer_id, conn_id)?.conn.clone();
        let fx = Self::drop_slot(&mut st, room_id, peer_id, LeaveReason::Left);
        if let Some(c) = conn {
            c.send(Out::Close(Close::Left));
        }
        Ok(fx)
    }

    /// The connection ended without `leave`. With `hold`, a joined peer's place is kept
    /// for the reconnect window (see [`Effects::hold`]); otherwise it leaves now.
    pub fn disconnected(&self, room_id: &str, peer_id: &str, conn_id: u64, hold: bool) -> Effects {
        let mut st = self.lock(room_id);
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
        // Without `hold` the server closed the connection for breaking a limit.
        let reason = if hold { LeaveReason::ConnectionLost } else { LeaveReason::LimitExceeded };
        Self::drop_slot(&mut st, room_id, peer_id, reason)
    }

    /// The reconnect window of a held peer ran out: it leaves; the others get `on-peer-leave`.
    pub fn hold_expired(&self, room_id: &str, peer_id: &str, gen: u64) -> Effects {
        let mut st = self.lock(room_id);
        let held = st.rooms.get(room_id).and_then(|r| r.peers.get(peer_id)).map(|s| s.state) == Some(SlotState::Held(gen));
        if !held {
            return Effects::default();
        }
        Self::drop_slot(&mut st, room_id, peer_id, LeaveReason::ConnectionLost)
    }

    /// First half of `end-room`: checks the requester (`None` for the REST API) and
    /// marks the room as ending (with `lock`, joins get 423 at once; the lock itself is
    /// set when the database has committed it).
    pub fn begin_end_room(&self, room_id: &str, requester: Option<(&str, u64)>, lock: bool) -> Result<EndTicket, Error> {
        let mut guard = self.lock(room_id);
        let st = &mut *guard;
        let room = st.rooms.get(room_id);
        let mut requester_user = None;
        if let Some((peer_id, conn_id)) = requester {
            let slot = Self::joined(room, peer_id, conn_id)?;
            Self::permit(slot, Action::EndRoom)?;
            requester_user = Some(slot.user_id.clone());
        }
        let room = st
            .rooms
            .get_mut(room_id)
            .filter(|r| r.session.is_some())
            .ok_or_else(|| Error::NotFound("no active session in this room".into()))?;
        if room.ending {
            return Err(Error::Conflict("the room is already ending".into()));
        }
        let Some(session) = room.session.as_ref() else {
            return Err(Error::NotFound("no active session in this room".into()));
        };
        let (session_id, started_at) = (session.id.clone(), session.started_at);
        room.ending = true;
        room.ending_locks = lock;
        Ok(EndTicket { session_id, started_at, requester_user })
    }

    /// Undoes [`Hub::begin_end_room`] when the lock could not be stored.
    pub fn abort_end_room(&self, room_id: &str, _ticket: &EndTicket) {
        let mut st = self.lock(room_id);
        if let Some(r) = st.rooms.get_mut(room_id) {
            r.ending = false;
            r.ending_locks = false;
        }
    }

    /// Second half of `end-room` (after the lock is on disk): every peer but the
    /// requester gets `on-peer-leave-request {requested_by, reason, room_end: true}` and
    /// a close (1000); disconnected peers get it if they reconnect within the window.
    /// Returns the requester's connection (to answer, then close) and the fan-out of the
    /// notices, which tells when they are written.
    pub fn finish_end_room(&self, room_id: &str, requested_by: Option<&str>, reason: &str) -> (Option<ConnHandle>, std::sync::Arc<Fanout>) {
        let mut st = self.lock(room_id);
        let notice = std::sync::Arc::new(PeerLeaveRequest { requested_by: requested_by.map(str::to_owned), reason: reason.to_owned(), room_end: true });
        let f = frame::push(&ServerPush::PeerLeaveRequest((*notice).clone()));
        let until = Instant::now() + self.reconnect_window;
        let fanout = Fanout::new();
        let Some(mut room) = st.rooms.remove(room_id) else {
            fanout.seal();
            return (None, fanout);
        };
        let by = match requested_by {
            // The requester's slot is still there: its connection waits for this end.
            Some(p) => By::Peer { peer_id: p.to_owned(), user_id: room.peers.get(p).map(|s| s.user_id.clone()).unwrap_or_default() },
            None => By::Api,
        };
        let session_id = room.session.as_ref().map(|s| s.id.clone()).unwrap_or_default();
        let left_at = now_ms();
        let mut requester = None;
        // Connections that have not joined yet were never part of the session: they stay,
        // and their `join` starts a new session (or gets 423 when the room is locked).
        let mut waiting = Room::default();
        for (peer_id, slot) in room.peers.drain() {
            if slot.visible() {
                let reason = LeaveReason::RoomEnded { by: by.clone(), message: reason.to_owned() };
                let (room_id, session_id) = (room_id.to_owned(), session_id.clone());
                st.events.push(Event::PeerLeft { room_id, session_id, peer: slot.record(&peer_id), at: left_at, reason });
            }
            if Some(peer_id.as_str()) == requested_by {
                // The requester's answer may never arrive (its socket can drop after the
                // end was stored): a reconnect of it learns the outcome from this.
                let until = Instant::now() + END_NOTICE_TTL.max(self.reconnect_window);
                let t = Tombstone { user_id: slot.user_id, secret: Some(slot.secret), notice: notice.clone(), until };
                st.tombstones.insert((room_id.to_owned(), peer_id), t);
                requester = slot.conn;
                continue;
            }
            if slot.state == SlotState::Connected {
                waiting.peers.insert(peer_id, slot);
                continue;
            }
            if let Some(c) = &slot.conn {
                if c.send(Out::TextAck(f.clone(), fanout.ack())) {
                    fanout.queued_one();
                }
                c.send(Out::Close(Close::RoomEnded));
            }
            if slot.visible() && !self.reconnect_window.is_zero() {
                let t = Tombstone { user_id: slot.user_id, secret: Some(slot.secret), notice: notice.clone(), until };
                st.tombstones.insert((room_id.to_owned(), peer_id), t);
            }
        }
        if !waiting.peers.is_empty() {
            st.rooms.insert(room_id.to_owned(), waiting);
        }
        fanout.seal();
        (requester, fanout)
    }

    /// Removes `target` from the room: it gets `on-peer-leave-request {room_end: false}`
    /// and a close (1000), the others `on-peer-leave`. `requester` is `None` for the REST API.
    pub fn remove_peer(
        &self,
        room_id: &str,
        requester: Option<(&str, u64)>,
        target: &str,
        reason: &str,
    ) -> Result<Effects, Error> {
        let mut st = self.lock(room_id);
        let room = st.rooms.get(room_id);
        let mut requester_user = None;
        if let Some((peer_id, conn_id)) = requester {
            let slot = Self::joined(room, peer_id, conn_id)?;
            Self::permit(slot, Action::RemoveOthers)?;
            requester_user = Some(slot.user_id.clone());
            if peer_id == target {
                return Err(Error::BadRequest("you cannot remove yourself: use leave".into()));
            }
        }
        let slot = room
            .and_then(|r| r.peers.get(target))
            .filter(|s| s.visible() && !r_ending(room))
            .ok_or_else(|| Error::NotFound(format!("no peer {target:?} in this room")))?;
        let notice = PeerLeaveRequest { requested_by: requester.map(|(p, _)| p.to_owned()), reason: reason.to_owned(), room_end: false };
        if !self.reconnect_window.is_zero() {
            let until = Instant::now() + self.reconnect_window;
            let t = Tombstone { user_id: slot.user_id.clone(), secret: Some(slot.secret), notice: std::sync::Arc::new(notice.clone()), until };
            st.tombstones.insert((room_id.to_owned(), target.to_owned()), t);
        }
        let conn = st.rooms.get(room_id).and_then(|r| r.peers.get(target)).and_then(|s| s.conn.clone());
        if let Some(c) = conn {
            if c.send(Out::Text(frame::push(&ServerPush::PeerLeaveRequest(notice)))) {
                c.send(Out::Close(Close::Removed));
            }
        }
        let by = match requester {
            Some((p, _)) => By::Peer { peer_id: p.to_owned(), user_id: requester_user.unwrap_or_default() },
            None => By::Api,
        };
        Ok(Self::drop_slot(&mut st, room_id, target, LeaveReason::Removed { by, message: reason.to_owned() }))
    }

    /// Peer ids of the room's visible peers with `role`.
    pub fn peers_with_role(&self, room_id: &str, role: &str) -> Vec<String> {
        let st = self.lock(room_id);
        st.rooms
            .get(room_id)
            .map(|r| r.peers.iter().filter(|(_, s)| s.visible() && s.role.as_str() == role).map(|(id, _)| id.clone()).collect())
            .unwrap_or_default()
    }

    /// The room's session and peers, if a session is running.
    pub fn active_room(&self, room_id: &str) -> Option<ActiveRoom> {
        let st = self.lock(room_id);
        let room = st.rooms.get(room_id)?;
        let s = room.session.as_ref()?;
        // Peers are kept as their JSON only; the REST API is rare enough to read it back.
        let peers = room
            .peers
            .iter()
            .filter(|(_, s)| s.visible())
            .filter_map(|(id, s)| Some((id.clone(), serde_json::from_str::<PeerNotification>(&s.json).ok()?)))
            .collect();
        Some(ActiveRoom { room_id: room_id.to_owned(), session_id: s.id.clone(), started_at: s.started_at, peers })
    }

    /// Remembers (after a restart, from the store's end records) that `peer_id` of
    /// `user_id` ended the room: a reconnect of it before `until` gets `notice`.
    pub fn remember_end(&self, room_id: &str, peer_id: &str, user_id: &str, notice: PeerLeaveRequest, until: Instant) {
        let t = Tombstone { user_id: user_id.to_owned(), secret: None, notice: std::sync::Arc::new(notice), until };
        self.lock(room_id).tombstones.insert((room_id.to_owned(), peer_id.to_owned()), t);
    }

    /// Forgets expired tombstones.
    pub fn sweep(&self) {
        let now = Instant::now();
        for shard in self.shards.iter() {
            self.guard(shard).tombstones.retain(|_, t| t.until > now);
        }
    }

    /// Shutdown: queues a close to every connection, forgets all rooms, and returns the
    /// running sessions (to record as ended) and how many connections were told.
    pub fn shutdown(&self) -> (Vec<String>, usize) {
        let mut sessions = Vec::new();
        let mut conns = 0;
        let at = now_ms();
        let mut rooms = Vec::new();
        for shard in self.shards.iter() {
            let mut guard = self.guard(shard);
            let st = &mut *guard;
            for (room_id, room) in st.rooms.drain() {
                // Each session's close, then its peers' leaves, emitted under the shard's lock.
                if let Some(s) = &room.session {
                    let reason = CloseReason::ServerShutdown;
                    st.events.push(Event::SessionClosed { room_id: room_id.clone(), session_id: s.id.clone(), started_at: s.started_at, at, reason });
                    for (peer_id, slot) in room.peers.iter().filter(|(_, s)| s.visible()) {
                        let (room_id, session_id) = (room_id.clone(), s.id.clone());
                        st.events.push(Event::PeerLeft { room_id, session_id, peer: slot.record(peer_id), at, reason: LeaveReason::ServerShutdown });
                    }
                }
                rooms.push(room);
            }
        }
        for room in rooms {
            if let Some(s) = room.session {
                sessions.push(s.id);
            }
            for (_, slot) in room.peers {
                if let Some(c) = slot.conn {
                    c.send(Out::Close(Close::ShuttingDown));
                    conns += 1;
                }
            }
        }
        (sessions, conns)
    }

    /// Number of rooms and of connected peers (for logs and tests).
    pub fn counts(&self) -> (usize, usize) {
        self.shards.iter().fold((0, 0), |(rooms, peers), shard| {
            let st = self.guard(shard);
            (rooms + st.rooms.len(), peers + st.rooms.values().map(|r| r.peers.values().filter(|s| s.conn.is_some()).count()).sum::<usize>())
        })
    }
}

fn r_ending(room: Option<&Room>) -> bool {
    room.map(|r| r.ending).unwrap_or(false)
}



pub mod mirror;

#[cfg(test)]
mod tests;
