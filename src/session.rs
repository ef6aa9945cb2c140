//! The client's state machine, free of I/O (sans-IO): the browser layer feeds it socket
//! events, answers, pushes and clock ticks, and carries out the [`Out`] effects it
//! returns in order. `T` settles a request (the JS promise's functions in the browser).
//! Everything that decides *what* happens lives here, so native `cargo test` covers it.
//!
//! The state of each phase lives in its [`Stage`] variant; what is known of the room
//! lives in [`RoomData`] (`room.rs`), and timing settings in [`Config`] (`config.rs`).

use crate::config::Config;
use crate::error::{from_rpc, ErrorAction, ErrorName, SdkError};
use crate::model::{ConnectionState, HmsPeer, HmsRoom, RemovedEvent};
use crate::pending::{Entry, Kind, Pending};
use crate::room::{Peer, Peers, RoomData};
use hms_protocol::{
    code, Action, ClientCall, EndRoomParams, FindPeerParams, JoinParams, LeaveParams, PeerBatch, PeerIterNextParams,
    PeerLeaveRequest, PeerLeaveRequestParams, PeerListCall, Role, RoomState, RpcError, ServerPush,
};

/// How often an `endRoom` whose outcome stays unknown is sent at most: the first send,
/// then once after each reconnect that does not tell the outcome.
pub const END_ROOM_SENDS: u8 = 3;

/// A server push in the shape the session consumes: [`ServerPush`] with lists instead
/// of maps. The wasm layer builds these directly (`wire.rs`, the one place pushes are
/// decoded); native code converts a decoded [`ServerPush`] with `From`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Push {
    /// `on-policy-change`: the local role's name and every role.
    Policy {
        /// The local role's name.
        role: String,
        /// `known_roles`.
        roles: Vec<Role>,
    },
    /// `peer-list`.
    PeerList {
        /// Every peer, the local one included (a large room: the local one and the
        /// first page).
        peers: Peers,
        /// The room.
        room: RoomState,
        /// A large room's peer count (absent in small rooms).
        peer_count: Option<u64>,
    },
    /// `on-peer-batch` (large rooms): apply `left`, then `joined`.
    PeerBatch {
        /// Peers that joined.
        joined: Peers,
        /// Ids of peers that left.
        left: Vec<String>,
        /// The room's count after the batch.
        peer_count: u64,
    },
    /// `on-peer-join`.
    PeerJoin(Peer),
    /// `on-peer-leave`.
    PeerLeave(Peer),
    /// `on-peer-leave-request`.
    LeaveRequest(PeerLeaveRequest),
    /// `on-error`.
    Error(RpcError),
}

impl From<ServerPush> for Push {
    fn from(p: ServerPush) -> Self {
        match p {
            ServerPush::PolicyChange(p) => Push::Policy { role: p.name, roles: p.known_roles.into_values().collect() },
            ServerPush::PeerList(l) => Push::PeerList { peers: l.peers.into_values().collect(), room: l.room, peer_count: l.peer_count },
            ServerPush::PeerJoin(p) => Push::PeerJoin(p.into()),
            ServerPush::PeerLeave(p) => Push::PeerLeave(p.into()),
            ServerPush::PeerLeaveRequest(r) => Push::LeaveRequest(r),
            ServerPush::Error(e) => Push::Error(e),
        }
    }
}

impl From<PeerBatch> for Push {
    fn from(b: PeerBatch) -> Self {
        Push::PeerBatch { joined: b.joined.into_iter().collect(), left: b.left, peer_count: b.peer_count }
    }
}

/// A page of the room's peer list (the answer to `find-peer` / `peer-iter-next`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<P> {
    /// The iterator to continue with.
    pub iterator: String,
    /// Matching peers in the room.
    pub total: u64,
    /// No peer after this page.
    pub eof: bool,
    /// The page's peers.
    pub peers: P,
}

/// A join under way: done when the answer, the policy and the peer list are all in.
#[derive(Debug, Default)]
struct Progress {
    /// The `join` request's id.
    id: String,
    answered: bool,
    policy: bool,
    peer_list: bool,
}

impl Progress {
    fn new(id: String) -> Self {
        Self { id, ..Self::default() }
    }
    fn done(&self) -> bool {
        self.answered && self.policy && self.peer_list
    }
}

/// Reconnect bookkeeping.
#[derive(Debug, Default)]
struct Rejoin {
    started: f64,
    attempt: u32,
    /// When the next attempt starts (`None` while one is under way).
    next_at: Option<f64>,
    /// When the attempt under way is given up.
    attempt_deadline: Option<f64>,
    /// The attempt's join, once its socket opened.
    join: Option<Progress>,
    /// Peer-list differences, reported when the rejoin completes.
    events: Vec<(bool, HmsPeer)>,
}

/// Where the client is in its life, with the state that belongs to that phase only.
#[derive(Debug)]
enum Stage {
    /// Never joined, or the session ended (`failed`: on an error).
    Idle { failed: bool },
    /// `join` called, the socket is opening.
    Connecting { join_id: String },
    /// The socket is open and `join` was sent.
    Joining(Progress),
    /// In the room.
    Joined,
    /// The connection was lost while joined; trying to get back as the same peer.
    Reconnecting(Rejoin),
}

/// An effect for the browser layer to carry out, in order.
#[derive(Debug)]
pub enum Out<T> {
    /// Send a frame (`id: None` for a notification).
    Send {
        /// The request id.
        id: Option<String>,
        /// The method and params.
        call: ClientCall,
    },
    /// Send a peer-list request.
    SendPage {
        /// The request id.
        id: String,
        /// The method and params.
        call: PeerListCall,
    },
    /// Resolve a page request's promise with its peers.
    ResolvePage(T, Page<Vec<HmsPeer>>),
    /// Resolve a request's promise (with `undefined`).
    Resolve(T),
    /// Reject a request's promise.
    Reject(T, SdkError),
    /// Call the `onPeerJoin` callbacks.
    PeerJoin(HmsPeer),
    /// Call the `onPeerLeave` callbacks.
    PeerLeave(HmsPeer),
    /// Call the `onRemovedFromRoom` callbacks.
    Removed(RemovedEvent),
    /// Call the `onError` callbacks.
    Error(SdkError),
    /// Close the socket with 1000 and release it.
    Close,
    /// Stop listening to the socket and let the server close it (it does so right
    /// after a room end, a removal, an `end-room` answer or `on-error`).
    Detach,
    /// Open a new socket to the same URL (same peer id and token): a reconnect attempt.
    Connect,
    /// Call the `onReconnecting` callbacks.
    Reconnecting(SdkError),
    /// Call the `onReconnected` callbacks.
    Reconnected,
    /// Call the `onConnectionStateChange` callbacks.
    State(ConnectionState),
    /// The room the session knew, to free after the callbacks before it have run.
    Release(RoomData),
}

/// The state machine. See the module doc.
#[derive(Debug)]
pub struct Session<T> {
    stage: Stage,
    cfg: Config,
    now: f64,
    local_id: String,
    /// The session's join params, kept for reconnects.
    params: Option<JoinParams>,
    /// The place's reconnect secret, from the join answer: a reconnect presents it (only
    /// the connection holding it gets the place back).
    reconnect_secret: Option<String>,
    room: RoomData,
    pending: Pending<T>,
    last_rx: f64,
    next_ping: f64,
    seq: u32,
    rng: u64,
}

fn err(name: ErrorName, action: ErrorAction, message: &str) -> SdkError {
    SdkError::new(name, action, message)
}

fn lost(action: ErrorAction) -> SdkError {
    err(ErrorName::ConnectionLost, action, "the connection to the room server was lost")
}

impl<T> Session<T> {
    /// A session whose requests time out after `timeout_ms`, with default heartbeat and
    /// reconnect settings.
    pub fn new(timeout_ms: f64) -> Self {
        Self::with_config(Config { request_timeout: timeout_ms, ..Config::default() })
    }

    /// A session with these settings.
    pub fn with_config(cfg: Config) -> Self {
        Self {
            stage: Stage::Idle { failed: false },
            cfg,
            now: 0.0,
            local_id: String::new(),
            params: None,
            reconnect_secret: None,
            room: RoomData::default(),
            pending: Pending::default(),
            last_rx: 0.0,
            next_ping: 0.0,
            seq: 0,
            rng: 0x9e37_79b9_7f4a_7c15,
        }
    }

    /// Seeds the jitter of reconnect delays (the browser passes `crypto.getRandomValues` bits).
    pub fn seed(&mut self, seed: u64) {
        self.rng = seed | 1;
    }

    /// The connection state apps see (`getConnectionState()`).
    pub fn connection_state(&self) -> ConnectionState {
        match self.stage {
            Stage::Idle { failed: false } => ConnectionState::Disconnected,
            Stage::Idle { failed: true } => ConnectionState::Failed,
            Stage::Connecting { .. } | Stage::Joining(_) => ConnectionState::Connecting,
            Stage::Joined => ConnectionState::Connected,
            Stage::Reconnecting(_) => ConnectionState::Reconnecting,
        }
    }

    /// Moves to `stage`, reporting the connection state when it changes.
    fn goto(&mut self, stage: Stage, outs: &mut Vec<Out<T>>) {
        let before = self.connection_state();
        self.stage = stage;
        let after = self.connection_state();
        if after != before {
            outs.push(Out::State(after));
        }
    }

    /// The local peer id of the current or last join.
    pub fn local_id(&self) -> &str {
        &self.local_id
    }

    /// A frame arrived at `now`: the connection is alive.
    pub fn touch(&mut self, now: f64) {
        self.now = now;
        self.last_rx = now;
    }

    fn next_id(&mut self) -> String {
        self.seq = self.seq.wrapping_add(1);
        // By hand, without indexing: `to_string` or a bounds check would pull integer
        // formatting into the wasm module.
        let mut id = String::from("sdk-");
        let (mut n, mut digits, mut len) = (self.seq, [0u8; 10], 0);
        for d in digits.iter_mut() {
            *d = b'0' + (n % 10) as u8;
            n /= 10;
            len += 1;
            if n == 0 {
                break;
            }
        }
        for d in digits.iter().take(len).rev() {
            id.push(char::from(*d));
        }
        id
    }

    /// A number in [0, 1) from xorshift64.
    fn random(&mut self) -> f64 {
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        (x >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Starts joining as `peer_id`; the browser layer then opens the socket and reports
    /// [`Session::on_open`]. Refused with 5001 AlreadyJoined while joining or joined.
    pub fn begin_join(&mut self, peer_id: String, request_id: String, params: JoinParams, now: f64, settle: T) -> Result<Vec<Out<T>>, (T, SdkError)> {
        if !matches!(self.stage, Stage::Idle { .. }) {
            return Err((settle, err(ErrorName::AlreadyJoined, ErrorAction::Join, "already joined or joining: call leave() first")));
        }
        self.now = now;
        self.room = RoomData::default();
        self.local_id = peer_id;
        self.params = Some(params);
        self.reconnect_secret = None;
        self.pending.insert(Entry::new(request_id.clone(), Kind::Join, None, now + self.cfg.request_timeout, settle));
        let mut outs = Vec::new();
        self.goto(Stage::Connecting { join_id: request_id }, &mut outs);
        Ok(outs)
    }

    /// The socket opened: send `join` (first join or a reconnect attempt).
    pub fn on_open(&mut self, now: f64) -> Vec<Out<T>> {
        self.touch(now);
        let Some(params) = self.params.clone() else { return Vec::new() };
        match &mut self.stage {
            Stage::Connecting { join_id } => {
                let id = std::mem::take(join_id);
                self.stage = Stage::Joining(Progress::new(id.clone()));
                vec![Out::Send { id: Some(id), call: ClientCall::Join(params) }]
            }
            Stage::Reconnecting(_) => {
                let id = self.next_id();
                if let Stage::Reconnecting(r) = &mut self.stage {
                    r.join = Some(Progress::new(id.clone()));
                }
                vec![Out::Send { id: Some(id), call: ClientCall::Join(params) }]
            }
            _ => Vec::new(),
        }
    }

    /// The join under way (first join or rejoin), if any.
    fn progress(&mut self) -> Option<&mut Progress> {
        match &mut self.stage {
            Stage::Joining(p) => Some(p),
            Stage::Reconnecting(r) => r.join.as_mut(),
            _ => None,
        }
    }

    /// An answer carried a `reconnect_secret`: only `join` answers do (the first join's,
    /// or a rejoin's, which may be new after a server restart), and the browser layer
    /// hears only the current socket, so the latest is the place's.
    pub fn on_reconnect_secret(&mut self, secret: String) {
        self.reconnect_secret = Some(secret);
    }

    /// The secret a reconnect presents, once a join was answered.
    pub fn reconnect_secret(&self) -> Option<&str> {
        self.reconnect_secret.as_deref()
    }

    /// An answer to request `id` arrived (call [`Session::touch`] first).
    pub fn on_answer(&mut self, id: &str, result: Result<(), RpcError>) -> Vec<Out<T>> {
        let rejoining = matches!(self.stage, Stage::Reconnecting(_));
        match self.progress() {
            Some(p) if p.id == id => {
                return match result {
                    Ok(()) => {
                        p.answered = true;
                        self.check_joined()
                    }
                    Err(e) if rejoining => self.rejoin_refused(from_rpc(e, ErrorAction::ReconnectSignal)),
                    Err(e) => self.end_session(Vec::new(), from_rpc(e, ErrorAction::Join), Out::Close, false, true),
                };
            }
            _ => {}
        }
        if let (Some(entry), Err(e)) = (self.pending.get_mut(id), &result) {
            if entry.kind == Kind::EndRoom && e.code == code::CONFLICT && entry.sends > 1 {
                // A re-send found the room already ending: the first send's answer (or
                // the room's end notice) comes next.
                entry.deadline = Some(self.now + self.cfg.request_timeout);
                return Vec::new();
            }
        }
        let Some(entry) = self.pending.take(id) else { return Vec::new() };
        match (entry.kind, result) {
            (Kind::EndRoom, Ok(())) => self.ended_by_us(entry.settle),
            (_, Ok(())) => vec![Out::Resolve(entry.settle)],
            (kind, Err(e)) => vec![Out::Reject(entry.settle, from_rpc(e, kind.action()))],
        }
    }

    /// Our `endRoom` succeeded: the caller learns it from its resolved promise, not a
    /// callback; the client has left by the time the promise's handlers run.
    fn ended_by_us(&mut self, settle: T) -> Vec<Out<T>> {
        let left = err(ErrorName::NotConnected, ErrorAction::EndRoom, "the room was ended by this client");
        self.end_session(vec![Out::Resolve(settle)], left, Out::Detach, false, false)
    }

    /// A push arrived (call [`Session::touch`] first).
    pub fn on_push(&mut self, push: impl Into<Push>) -> Vec<Out<T>> {
        if matches!(self.stage, Stage::Idle { .. }) {
            return Vec::new();
        }
        match push.into() {
            Push::Policy { role, roles } => {
                self.room.local_role = Some(role);
                self.room.roles = roles;
                if let Some(p) = self.progress() {
                    p.policy = true;
                }
                self.check_joined()
            }
            Push::PeerList { peers, room, peer_count } => {
                let old = std::mem::replace(&mut self.room.peers, peers);
                self.room.room = Some(room);
                self.room.peer_count = peer_count;
                if let Some(p) = self.progress() {
                    p.peer_list = true;
                }
                if matches!(self.stage, Stage::Reconnecting(_)) {
                    // The server's list is the truth after a reconnect: report the difference.
                    let (me, room) = (self.local_id.as_str(), &self.room);
                    let mut events = Vec::new();
                    for p in old.iter().filter(|p| p.peer_id() != me && room.find(p.peer_id()).is_none()) {
                        events.push((false, room.to_js_peer(p, me)));
                    }
                    for p in room.peers.iter().filter(|p| p.peer_id() != me && old.find(p.peer_id()).is_none()) {
                        events.push((true, room.to_js_peer(p, me)));
                    }
                    if let Stage::Reconnecting(r) = &mut self.stage {
                        r.events = events;
                    }
                }
                self.check_joined()
            }
            Push::PeerJoin(p) => self.peer_joined(p.view()).into_iter().collect(),
            Push::PeerLeave(p) => self.peer_left(p.view().peer_id()).into_iter().collect(),
            Push::PeerBatch { joined, left, peer_count } => {
                let mut outs: Vec<Out<T>> = left.iter().filter_map(|id| self.peer_left(id)).collect();
                outs.extend(joined.iter().filter_map(|p| self.peer_joined(p)));
                self.room.peer_count = Some(peer_count);
                outs
            }
            Push::LeaveRequest(req) => self.on_removed(req),
            Push::Error(e) => match self.stage {
                Stage::Reconnecting(_) => self.rejoin_refused(from_rpc(e, ErrorAction::ReconnectSignal)),
                Stage::Joined => self.end_session(Vec::new(), from_rpc(e, ErrorAction::Join), Out::Detach, true, true),
                _ => self.end_session(Vec::new(), from_rpc(e, ErrorAction::Join), Out::Detach, false, true),
            },
        }
    }

    /// A peer joined (a push, or a batch's entry): its `onPeerJoin`, unless it is known
    /// already (updated silently: one join per peer) or is the local peer.
    fn peer_joined(&mut self, p: crate::room::PeerRef<'_>) -> Option<Out<T>> {
        let is_local = p.peer_id() == self.local_id;
        let known = self.room.peers.upsert(p);
        (matches!(self.stage, Stage::Joined) && !is_local && !known).then(|| Out::PeerJoin(self.room.to_js_peer(p, &self.local_id)))
    }

    /// A peer left: its `onPeerLeave` if this client knew it.
    fn peer_left(&mut self, peer_id: &str) -> Option<Out<T>> {
        let gone = self.room.peers.remove(peer_id)?;
        let peer = self.room.to_js_peer(gone.view(), &self.local_id);
        (matches!(self.stage, Stage::Joined) && !peer.is_local).then_some(Out::PeerLeave(peer))
    }

    /// Requests a page of the room's peer list: the first (`iterator: None`, `find-peer`)
    /// or the next of an iterator (`peer-iter-next`). Only while joined: while
    /// reconnecting, the server may have dropped the iterator with the old connection.
    pub fn peer_page(&mut self, request_id: String, iterator: Option<String>, limit: u32, now: f64, settle: T) -> Vec<Out<T>> {
        self.now = now;
        if !matches!(self.stage, Stage::Joined) {
            return vec![Out::Reject(settle, err(ErrorName::NotConnected, ErrorAction::PeerList, "not joined: call join() first and wait for it"))];
        }
        let limit = Some(limit);
        let call = match iterator {
            None => PeerListCall::FindPeer(FindPeerParams { limit, ..FindPeerParams::default() }),
            Some(iterator) => PeerListCall::PeerIterNext(PeerIterNextParams { iterator, limit }),
        };
        let mut entry = Entry::new(request_id.clone(), Kind::PeerPage, None, now + self.cfg.request_timeout, settle);
        entry.sends = 1;
        self.pending.insert(entry);
        vec![Out::SendPage { id: request_id, call }]
    }

    /// The answer to a page request arrived (call [`Session::touch`] first). Its peers
    /// become peers this client knows (`getPeers`), without `onPeerJoin`: they did not
    /// just join. Errors come through [`Session::on_answer`].
    pub fn on_page(&mut self, id: &str, page: Page<Peers>) -> Vec<Out<T>> {
        let Some(entry) = self.pending.take(id) else { return Vec::new() };
        let mut peers = Vec::with_capacity(page.peers.len());
        for p in page.peers.iter() {
            peers.push(self.room.to_js_peer(p, &self.local_id));
            self.room.peers.upsert(p);
        }
        vec![Out::ResolvePage(entry.settle, Page { iterator: page.iterator, total: page.total, eof: page.eof, peers })]
    }

    fn on_removed(&mut self, req: PeerLeaveRequest) -> Vec<Out<T>> {
        // The end notice naming us while our endRoom waits: its answer was lost with a
        // dropped socket, and the server told us on reconnect instead. That is success.
        if req.room_end && req.requested_by.as_deref() == Some(self.local_id.as_str()) {
            if let Some(entry) = self.pending.take_kind(Kind::EndRoom) {
                return self.ended_by_us(entry.settle);
            }
        }
        let by = req.requested_by.as_deref().and_then(|id| self.room.find(id)).map(|p| self.room.to_js_peer(p, &self.local_id));
        let mut message = String::from(if req.room_end { "the room was ended: " } else { "removed from the room: " });
        message.push_str(&req.reason);
        let ev = RemovedEvent { reason: req.reason, room_was_ended: req.room_end, peer_who_removed: by };
        // The callback fires before the session's state is torn down and freed.
        self.end_session(vec![Out::Removed(ev)], err(ErrorName::NotConnected, ErrorAction::Join, &message), Out::Detach, false, false)
    }

    /// The socket closed at `now` (not by us: our own closes release it first), with
    /// close `code`. Joined: reconnect (or, with reconnecting disabled, report 1003 and
    /// leave). Reconnecting: that attempt failed, try again later.
    pub fn on_close(&mut self, code: u16, now: f64) -> Vec<Out<T>> {
        let _ = code;
        self.now = now;
        match self.stage {
            Stage::Idle { .. } => Vec::new(),
            Stage::Connecting { .. } => {
                let e = err(ErrorName::FailedToConnect, ErrorAction::Join, "could not open the WebSocket to the endpoint");
                self.end_session(Vec::new(), e, Out::Close, false, true)
            }
            Stage::Joining(_) => {
                let e = err(ErrorName::ConnectionLost, ErrorAction::Join, "the connection closed while joining");
                self.end_session(Vec::new(), e, Out::Close, false, true)
            }
            Stage::Joined => self.connection_lost(),
            Stage::Reconnecting(_) => self.retry_later(),
        }
    }

    /// The browser went offline: a joined client starts reconnecting right away.
    pub fn on_offline(&mut self, now: f64) -> Vec<Out<T>> {
        self.now = now;
        if matches!(self.stage, Stage::Joined) {
            self.connection_lost()
        } else {
            Vec::new()
        }
    }

    /// The browser is back online: a waiting reconnect attempt starts now.
    pub fn on_online(&mut self, now: f64) -> Vec<Out<T>> {
        self.now = now;
        if let Stage::Reconnecting(r) = &mut self.stage {
            if r.next_at.is_some() {
                r.next_at = Some(now);
            }
        }
        self.on_tick(now)
    }

    fn connection_lost(&mut self) -> Vec<Out<T>> {
        if self.cfg.reconnect_budget <= 0.0 {
            return self.end_session(Vec::new(), lost(ErrorAction::Join), Out::Close, true, true);
        }
        let mut outs = vec![Out::Close];
        self.goto(Stage::Reconnecting(Rejoin { started: self.now, next_at: Some(self.now), ..Rejoin::default() }), &mut outs);
        // An endRoom in flight may well have ended the room: it waits for the reconnect
        // to tell (its answer, or the room's end notice). Other requests in flight may
        // or may not have reached the server: say so, don't guess.
        for e in self.pending.iter_mut().filter(|e| e.kind == Kind::EndRoom && e.sends > 0) {
            e.deadline = None;
        }
        for e in self.pending.take_where(|e| e.sends > 0 && e.kind != Kind::EndRoom) {
            outs.push(Out::Reject(e.settle, err(ErrorName::ConnectionLost, e.kind.action(), "the connection was lost before the answer arrived")));
        }
        outs.push(Out::Reconnecting(lost(ErrorAction::ReconnectSignal)));
        outs.extend(self.on_tick(self.now));
        outs
    }

    /// The attempt under way failed: close it and schedule the next one, with backoff.
    fn retry_later(&mut self) -> Vec<Out<T>> {
        let now = self.now;
        let (base, max) = (self.cfg.backoff_base, self.cfg.backoff_max);
        let jitter = 0.7 + 0.6 * self.random();
        let Stage::Reconnecting(r) = &mut self.stage else { return Vec::new() };
        r.attempt = r.attempt.saturating_add(1);
        let exp = base * f64::from(1u32 << r.attempt.min(16).saturating_sub(1));
        r.next_at = Some(now + exp.min(max) * jitter);
        r.attempt_deadline = None;
        r.join = None;
        r.events.clear();
        vec![Out::Close]
    }

    /// The server refused the rejoin. 409 (our old connection is still known to it) and
    /// 5xx are worth retrying; anything else (401 token expired, 423 locked, ...) is final.
    fn rejoin_refused(&mut self, e: SdkError) -> Vec<Out<T>> {
        if e.code == code::CONFLICT || e.code >= 500 {
            self.retry_later()
        } else {
            self.end_session(Vec::new(), e, Out::Close, true, true)
        }
    }

    /// The clock reached `now`: time out requests, send heartbeats, detect a silent
    /// connection, drive reconnect attempts and the reconnect budget.
    pub fn on_tick(&mut self, now: f64) -> Vec<Out<T>> {
        self.now = now;
        let reconnects = self.cfg.reconnect_budget > 0.0;
        if matches!(self.stage, Stage::Joined) && reconnects {
            let silent_end = self.pending.find(Kind::EndRoom, None).is_some_and(|e| e.sends > 0 && e.deadline.is_some_and(|d| d <= now));
            if silent_end {
                // No answer to end-room in time: the room may have ended anyway. Learn the
                // outcome over a new connection rather than report a failure we don't know.
                return self.connection_lost();
            }
        }
        let mut outs = Vec::new();
        let mut join_expired = false;
        for e in self.pending.take_expired(now) {
            join_expired |= e.kind == Kind::Join;
            let timeout = err(ErrorName::RequestTimeout, e.kind.action(), "no answer from the room server in time (requestTimeoutMs)");
            outs.push(Out::Reject(e.settle, timeout));
        }
        if join_expired {
            outs.extend(self.end_session(Vec::new(), err(ErrorName::RequestTimeout, ErrorAction::Join, "join timed out"), Out::Close, false, true));
            return outs;
        }
        let timeout = self.cfg.request_timeout;
        let budget_end = match &self.stage {
            Stage::Reconnecting(r) => r.started + self.cfg.reconnect_budget,
            _ => f64::INFINITY,
        };
        match &mut self.stage {
            Stage::Joined => {
                if now - self.last_rx >= self.cfg.heartbeat_timeout {
                    outs.extend(self.connection_lost());
                } else if now >= self.next_ping {
                    self.next_ping = now + self.cfg.heartbeat_interval;
                    let id = self.next_id();
                    outs.push(Out::Send { id: Some(id), call: ClientCall::Ping(hms_protocol::PingParams { timestamp: now as u64 }) });
                }
            }
            Stage::Reconnecting(_) if now >= budget_end => {
                let gave_up = err(
                    ErrorName::ConnectionLost,
                    ErrorAction::ReconnectSignal,
                    "could not reconnect within reconnectBudgetMs; a request in flight may or may not have taken effect",
                );
                outs.extend(self.end_session(Vec::new(), gave_up, Out::Close, true, true));
            }
            Stage::Reconnecting(r) => {
                if r.next_at.is_some_and(|t| t <= now) {
                    r.next_at = None;
                    r.attempt_deadline = Some(now + timeout);
                    outs.push(Out::Connect);
                } else if r.attempt_deadline.is_some_and(|t| t <= now) {
                    outs.extend(self.retry_later());
                }
            }
            _ => {}
        }
        outs
    }

    /// The next moment [`Session::on_tick`] has something to do.
    pub fn next_deadline(&self) -> Option<f64> {
        let mut next = self.pending.next_deadline();
        let mut consider = |t: Option<f64>| {
            if let Some(t) = t {
                next = Some(next.map_or(t, |n: f64| n.min(t)));
            }
        };
        match &self.stage {
            Stage::Joined => {
                consider(Some(self.next_ping));
                consider(Some(self.last_rx + self.cfg.heartbeat_timeout));
            }
            Stage::Reconnecting(r) => {
                consider(r.next_at);
                consider(r.attempt_deadline);
                consider(Some(r.started + self.cfg.reconnect_budget));
            }
            _ => {}
        }
        next
    }

    /// What settles the `endRoom` (`Kind::EndRoom`) or the `removePeer` for `target`
    /// still waiting, so a second call can hand out the same promise.
    pub fn waiting(&self, kind: Kind, target: Option<&str>) -> Option<&T> {
        self.pending.find(kind, target).map(|e| &e.settle)
    }

    /// `endRoom(lock, reason)`: checks joined and the `endRoom` permission before sending.
    /// Call [`Session::waiting`] first: one `endRoom` at a time.
    pub fn end_room(&mut self, request_id: String, lock: bool, reason: String, now: f64, settle: T) -> Vec<Out<T>> {
        let call = ClientCall::EndRoom(EndRoomParams { lock, reason });
        self.request(Entry::new(request_id, Kind::EndRoom, Some(call), now + self.cfg.request_timeout, settle), Action::EndRoom, now)
    }

    /// `removePeer(peerId, reason)`: checks joined and `removeOthers` before sending.
    /// Call [`Session::waiting`] first: one `removePeer` per peer at a time.
    pub fn remove_peer(&mut self, request_id: String, peer_id: String, reason: String, now: f64, settle: T) -> Vec<Out<T>> {
        let call = ClientCall::PeerLeaveRequest(PeerLeaveRequestParams { requested_for: peer_id.clone(), reason });
        let entry = Entry { target: Some(peer_id), ..Entry::new(request_id, Kind::RemovePeer, Some(call), now + self.cfg.request_timeout, settle) };
        self.request(entry, Action::RemoveOthers, now)
    }

    fn request(&mut self, mut entry: Entry<T>, action: Action, now: f64) -> Vec<Out<T>> {
        self.now = now;
        let kind = entry.kind.action();
        if !matches!(self.stage, Stage::Joined | Stage::Reconnecting(_)) {
            return vec![Out::Reject(entry.settle, err(ErrorName::NotConnected, kind, "not joined: call join() first and wait for it"))];
        }
        // `Permissions::allows` is the check `Permissions::check` makes; the message is
        // built here because `check` formats it with `format!`, which costs wasm size.
        if !self.room.local_role().permissions.allows(action) {
            let mut message = String::from("permission denied: your role lacks ");
            message.push_str(action.permission_name());
            return vec![Out::Reject(entry.settle, SdkError::new(ErrorName::PermissionDenied, kind, message))];
        }
        let mut outs = Vec::new();
        if matches!(self.stage, Stage::Joined) {
            // While reconnecting it stays queued (sends: 0) and goes out once back, or
            // times out as usual if that takes too long.
            if let Some(call) = entry.call.clone() {
                entry.sends = 1;
                outs.push(Out::Send { id: Some(entry.id.clone()), call });
            }
        }
        self.pending.insert(entry);
        outs
    }

    /// `leave()`: tells the server (when the socket is open), closes, rejects what waits.
    pub fn leave(&mut self) -> Vec<Out<T>> {
        let mut outs = Vec::new();
        if matches!(self.stage, Stage::Idle { .. }) {
            return outs;
        }
        if matches!(self.stage, Stage::Joining(_) | Stage::Joined) {
            let params = LeaveParams { client_reason: Some("user request".into()) };
            outs.push(Out::Send { id: None, call: ClientCall::Leave(params) });
        }
        outs.push(Out::State(ConnectionState::Disconnecting));
        let left = err(ErrorName::NotConnected, ErrorAction::Join, "left the room before the answer arrived");
        outs.extend(self.end_session(Vec::new(), left, Out::Close, false, false));
        outs
    }

    /// Ends the session: `first` (a callback or a resolve) goes out before anything is
    /// torn down; then the socket is closed or detached, everything waiting is rejected
    /// with `error` (reported to `onError` when `report`), and the room is released
    /// last. Nothing reconnects from here: only `join` starts a new session.
    fn end_session(&mut self, first: Vec<Out<T>>, error: SdkError, socket: Out<T>, report: bool, failed: bool) -> Vec<Out<T>> {
        let error = error.terminal();
        let mut outs = first;
        outs.push(socket);
        self.params = None;
        self.goto(Stage::Idle { failed }, &mut outs);
        for e in self.pending.drain() {
            let mut each = error.clone();
            each.action = e.kind.action();
            outs.push(Out::Reject(e.settle, each));
        }
        if report {
            outs.push(Out::Error(error));
        }
        outs.push(Out::Release(std::mem::take(&mut self.room)));
        outs
    }

    fn check_joined(&mut self) -> Vec<Out<T>> {
        if !self.progress().is_some_and(|p| p.done()) {
            return Vec::new();
        }
        let now = self.now;
        self.last_rx = now;
        self.next_ping = now + self.cfg.heartbeat_interval;
        let was = std::mem::replace(&mut self.stage, Stage::Joined);
        let mut outs = Vec::new();
        // Reported as a change from `Connecting`/`Reconnecting` to `Connected`.
        outs.push(Out::State(ConnectionState::Connected));
        match was {
            Stage::Joining(_) => {
                if let Some(e) = self.pending.take_kind(Kind::Join) {
                    outs.push(Out::Resolve(e.settle));
                }
            }
            Stage::Reconnecting(r) => {
                outs.extend(r.events.into_iter().map(|(joined, p)| if joined { Out::PeerJoin(p) } else { Out::PeerLeave(p) }));
                outs.push(Out::Reconnected);
                outs.extend(self.send_after_rejoin());
            }
            _ => {}
        }
        outs
    }

    /// Back in the room: send what was queued, and re-send an `endRoom` whose outcome
    /// the reconnect did not tell (the room did not end while we were away, or its end
    /// is still being stored: then the server answers 409 and the first send's answer
    /// follows). After [`END_ROOM_SENDS`] sends it fails with 9001 RequestTimeout.
    fn send_after_rejoin(&mut self) -> Vec<Out<T>> {
        let mut outs = Vec::new();
        let timeout = self.cfg.request_timeout;
        let mut entries = self.pending.drain();
        let mut kept = Vec::with_capacity(entries.len());
        for mut e in entries.drain(..) {
            let resend = e.kind == Kind::EndRoom && e.sends > 0;
            if resend && e.sends >= END_ROOM_SENDS {
                outs.push(Out::Reject(e.settle, err(ErrorName::RequestTimeout, ErrorAction::EndRoom, "the room server did not answer end-room")));
                continue;
            }
            if resend || e.sends == 0 {
                if let Some(call) = e.call.clone() {
                    if resend {
                        let fresh = self.next_id();
                        e.old_ids.push(std::mem::replace(&mut e.id, fresh));
                        e.deadline = Some(self.now + timeout);
                    }
                    e.sends = e.sends.saturating_add(1);
                    outs.push(Out::Send { id: Some(e.id.clone()), call });
                }
            }
            kept.push(e);
        }
        for e in kept {
            self.pending.insert(e);
        }
        outs
    }

    fn in_room(&self) -> bool {
        matches!(self.stage, Stage::Joined | Stage::Reconnecting(_))
    }

    /// `getLocalPeer()`: defined while joined (and while reconnecting).
    pub fn local_peer(&self) -> Option<HmsPeer> {
        if !self.in_room() {
            return None;
        }
        self.room.find(&self.local_id).map(|p| self.room.to_js_peer(p, &self.local_id))
    }

    /// `getPeers()`: everyone while joined, the local peer first, then by join time.
    pub fn peers(&self) -> Vec<HmsPeer> {
        if !self.in_room() {
            return Vec::new();
        }
        self.room.sorted_peers(&self.local_id)
    }

    /// `getPeerCount()`: every peer in the room, the local one included (in a large room
    /// the server's count, which `getPeers()` may not all know); 0 when not joined.
    pub fn peer_count(&self) -> u64 {
        if !self.in_room() {
            return 0;
        }
        self.room.peer_count.unwrap_or(self.room.peers.len() as u64)
    }

    /// `getRoom()`: defined while joined (and while reconnecting).
    pub fn room(&self) -> Option<HmsRoom> {
        if !self.in_room() {
            return None;
        }
        self.room.to_js_room()
    }
}
