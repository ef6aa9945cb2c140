//! The client's state machine, free of I/O (sans-IO): the browser layer feeds it socket
//! events, answers, pushes and clock ticks, and carries out the [`Out`] effects it
//! returns in order. `T` settles a request (the JS resolve/reject pair in the browser).
//! Everything that decides *what* happens lives here, so native `cargo test` covers it.

use crate::error::{codes, SdkError};
use crate::model::{HmsPeer, HmsRoom, RemovedEvent};
use crate::pending::{Kind, Pending};
use hms_protocol::{
    Action, ClientCall, EndRoomParams, JoinParams, LeaveParams, PeerLeaveRequest, PeerLeaveRequestParams, PeerNotification,
    Role, RoomState, RpcError, ServerPush,
};

/// A peer as the session keeps it (the parts of `PeerNotification` the SDK uses).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// `peer_id`.
    pub peer_id: String,
    /// `info.name`.
    pub name: String,
    /// `info.data`.
    pub data: String,
    /// `info.user_id`.
    pub user_id: String,
    /// Role name.
    pub role: String,
    /// `joined_at`, 0 when absent.
    pub joined_at: u64,
}

impl From<PeerNotification> for Peer {
    fn from(p: PeerNotification) -> Self {
        Self { peer_id: p.peer_id, name: p.info.name, data: p.info.data, user_id: p.info.user_id, role: p.role, joined_at: p.joined_at.unwrap_or(0) }
    }
}

/// A server push in the shape the session consumes: [`ServerPush`] with lists instead
/// of maps. The wasm layer builds these directly (map code is costly in wasm); native
/// code converts a decoded [`ServerPush`] with `From`.
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
        /// Every peer, the local one included.
        peers: Vec<Peer>,
        /// The room.
        room: RoomState,
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
            ServerPush::PeerList(l) => Push::PeerList { peers: l.peers.into_values().map(Peer::from).collect(), room: l.room },
            ServerPush::PeerJoin(p) => Push::PeerJoin(p.into()),
            ServerPush::PeerLeave(p) => Push::PeerLeave(p.into()),
            ServerPush::PeerLeaveRequest(r) => Push::LeaveRequest(r),
            ServerPush::Error(e) => Push::Error(e),
        }
    }
}

/// Where the client is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Never joined, or left: `join` may be called.
    Idle,
    /// `join` called, the socket is opening.
    Connecting,
    /// The socket is open and `join` was sent; waiting for the answer, policy and peer list.
    Joining,
    /// In the room.
    Joined,
    /// The connection was lost while joined; trying to get back as the same peer.
    Reconnecting,
}

/// Timing knobs (ms).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Config {
    /// How long a request waits for its answer (also: one reconnect attempt's deadline).
    pub request_timeout: f64,
    /// `ping` every this long while joined.
    pub heartbeat_interval: f64,
    /// No incoming frame for this long while joined: the connection is lost.
    pub heartbeat_timeout: f64,
    /// Total time for reconnecting before giving up; 0 disables reconnecting.
    pub reconnect_budget: f64,
    /// First retry delay; doubles per attempt up to `backoff_max`, with ±30 % jitter.
    pub backoff_base: f64,
    /// Largest retry delay.
    pub backoff_max: f64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            request_timeout: 10_000.0,
            heartbeat_interval: 3_000.0,
            heartbeat_timeout: 12_000.0,
            reconnect_budget: 30_000.0,
            backoff_base: 500.0,
            backoff_max: 5_000.0,
        }
    }
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
    /// Open a new socket to the same URL (same peer id and token): a reconnect attempt.
    Connect,
    /// Call the `onReconnecting` callbacks.
    Reconnecting(SdkError),
    /// Call the `onReconnected` callbacks.
    Reconnected,
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
    /// The attempt's `join` request id, once its socket opened.
    join_id: Option<String>,
    /// Peer-list differences, reported when the rejoin completes.
    events: Vec<(bool, HmsPeer)>,
}

/// The state machine. See the module doc.
#[derive(Debug)]
pub struct Session<T> {
    phase: Phase,
    cfg: Config,
    now: f64,
    local_id: String,
    join_id: String,
    join_params: Option<JoinParams>,
    saved_params: Option<JoinParams>,
    join_answered: bool,
    policy_seen: bool,
    local_role: Option<String>,
    roles: Vec<Role>,
    peer_list_seen: bool,
    peers: Vec<Peer>,
    room: Option<RoomState>,
    pending: Pending<T>,
    /// Requests made while reconnecting, sent once back (if still pending).
    queued: Vec<(String, ClientCall)>,
    rejoin: Option<Rejoin>,
    last_rx: f64,
    next_ping: f64,
    seq: u32,
    rng: u64,
}

fn err(code: i32, message: &str) -> SdkError {
    SdkError::new(code, message)
}

fn not_joined() -> SdkError {
    err(codes::NOT_CONNECTED, "not joined: call join() first and wait for it")
}

fn lost() -> SdkError {
    err(codes::CONNECTION_LOST, "the connection to the room server was lost")
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
            phase: Phase::Idle,
            cfg,
            now: 0.0,
            local_id: String::new(),
            join_id: String::new(),
            join_params: None,
            saved_params: None,
            join_answered: false,
            policy_seen: false,
            local_role: None,
            roles: Vec::new(),
            peer_list_seen: false,
            peers: Vec::new(),
            room: None,
            pending: Pending::default(),
            queued: Vec::new(),
            rejoin: None,
            last_rx: 0.0,
            next_ping: 0.0,
            seq: 0,
            rng: 0x9e37_79b9_7f4a_7c15,
        }
    }

    /// Seeds the jitter of reconnect delays (the browser passes `Math.random()` bits).
    pub fn seed(&mut self, seed: u64) {
        self.rng = seed | 1;
    }

    /// The current phase.
    pub fn phase(&self) -> Phase {
        self.phase
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
        let mut id = String::from("sdk-");
        let mut n = self.seq;
        let mut digits = [0u8; 10];
        let mut i = digits.len();
        loop {
            i -= 1;
            digits[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        for d in digits.iter().skip(i) {
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
    /// [`Session::on_open`]. Refused with 409 while joining or joined.
    pub fn begin_join(&mut self, peer_id: String, request_id: String, params: JoinParams, now: f64, settle: T) -> Result<(), (T, SdkError)> {
        if self.phase != Phase::Idle {
            return Err((settle, err(hms_protocol::code::CONFLICT, "already joined or joining: call leave() first")));
        }
        self.now = now;
        self.clear_room();
        self.phase = Phase::Connecting;
        self.local_id = peer_id;
        self.join_id = request_id.clone();
        self.saved_params = Some(params.clone());
        self.join_params = Some(params);
        self.pending.insert(request_id, Kind::Join, now + self.cfg.request_timeout, settle);
        Ok(())
    }

    /// The socket opened: send `join` (first join or a reconnect attempt).
    pub fn on_open(&mut self, now: f64) -> Vec<Out<T>> {
        self.touch(now);
        match self.phase {
            Phase::Connecting => match self.join_params.take() {
                Some(params) => {
                    self.phase = Phase::Joining;
                    vec![Out::Send { id: Some(self.join_id.clone()), call: ClientCall::Join(params) }]
                }
                None => Vec::new(),
            },
            Phase::Reconnecting => {
                let Some(params) = self.saved_params.clone() else { return Vec::new() };
                let id = self.next_id();
                self.join_answered = false;
                self.policy_seen = false;
                self.peer_list_seen = false;
                if let Some(r) = self.rejoin.as_mut() {
                    r.join_id = Some(id.clone());
                }
                vec![Out::Send { id: Some(id), call: ClientCall::Join(params) }]
            }
            _ => Vec::new(),
        }
    }

    /// An answer to request `id` arrived (call [`Session::touch`] first).
    pub fn on_answer(&mut self, id: &str, result: Result<(), RpcError>) -> Vec<Out<T>> {
        match self.phase {
            Phase::Idle => return Vec::new(),
            Phase::Joining if id == self.join_id => {
                return match result {
                    Ok(()) => {
                        self.join_answered = true;
                        self.check_joined()
                    }
                    Err(e) => self.teardown(e.into(), false),
                };
            }
            Phase::Reconnecting if self.rejoin.as_ref().and_then(|r| r.join_id.as_deref()) == Some(id) => {
                return match result {
                    Ok(()) => {
                        self.join_answered = true;
                        self.check_joined()
                    }
                    Err(e) => self.rejoin_refused(e.into()),
                };
            }
            _ => {}
        }
        let Some(entry) = self.pending.take(id) else { return Vec::new() };
        match (entry.kind, result) {
            (Kind::EndRoom, Ok(())) => {
                // The caller learns of the end from its resolved promise, not a callback:
                // leave first so the app sees a left client when the promise settles.
                let mut outs = self.teardown(err(codes::NOT_CONNECTED, "the room was ended by this client"), false);
                outs.push(Out::Resolve(entry.settle));
                outs
            }
            (_, Ok(())) => vec![Out::Resolve(entry.settle)],
            (_, Err(e)) => vec![Out::Reject(entry.settle, e.into())],
        }
    }

    /// A push arrived (call [`Session::touch`] first).
    pub fn on_push(&mut self, push: impl Into<Push>) -> Vec<Out<T>> {
        if self.phase == Phase::Idle {
            return Vec::new();
        }
        match push.into() {
            Push::Policy { role, roles } => {
                self.local_role = Some(role);
                self.roles = roles;
                self.policy_seen = true;
                self.check_joined()
            }
            Push::PeerList { peers, room } => {
                let old = std::mem::replace(&mut self.peers, peers);
                self.room = Some(room);
                self.peer_list_seen = true;
                if self.phase == Phase::Reconnecting {
                    // The server's list is the truth after a reconnect: report the difference.
                    let mut events = Vec::new();
                    for p in old.iter().filter(|p| p.peer_id != self.local_id) {
                        if !self.peers.iter().any(|q| q.peer_id == p.peer_id) {
                            events.push((false, self.to_peer(p)));
                        }
                    }
                    for p in self.peers.iter().filter(|p| p.peer_id != self.local_id) {
                        if !old.iter().any(|q| q.peer_id == p.peer_id) {
                            events.push((true, self.to_peer(p)));
                        }
                    }
                    if let Some(r) = self.rejoin.as_mut() {
                        r.events = events;
                    }
                }
                self.check_joined()
            }
            Push::PeerJoin(p) => {
                let is_local = p.peer_id == self.local_id;
                let peer = self.to_peer(&p);
                // A peer already in the list is updated silently: one join per peer.
                let known = match self.peers.iter_mut().find(|q| q.peer_id == p.peer_id) {
                    Some(q) => {
                        *q = p;
                        true
                    }
                    None => {
                        self.peers.push(p);
                        false
                    }
                };
                if self.phase == Phase::Joined && !is_local && !known {
                    vec![Out::PeerJoin(peer)]
                } else {
                    Vec::new()
                }
            }
            Push::PeerLeave(p) => {
                let Some(i) = self.peers.iter().position(|q| q.peer_id == p.peer_id) else { return Vec::new() };
                let gone = self.peers.remove(i);
                let peer = self.to_peer(&gone);
                if self.phase == Phase::Joined && !peer.is_local {
                    vec![Out::PeerLeave(peer)]
                } else {
                    Vec::new()
                }
            }
            Push::LeaveRequest(req) => self.on_removed(req),
            Push::Error(e) => match self.phase {
                Phase::Reconnecting => self.rejoin_refused(e.into()),
                Phase::Joined => self.teardown(e.into(), true),
                _ => self.teardown(e.into(), false),
            },
        }
    }

    fn on_removed(&mut self, req: PeerLeaveRequest) -> Vec<Out<T>> {
        // The peer that ends the room learns it from its own answer; should the server
        // ever tell it too, that must not turn its success into a removal.
        if req.room_end && self.pending.has_kind(Kind::EndRoom) && req.requested_by.as_deref() == Some(self.local_id.as_str()) {
            return Vec::new();
        }
        let by = req.requested_by.as_deref().and_then(|id| self.peer(id));
        let ev = RemovedEvent { reason: req.reason, room_was_ended: req.room_end, peer_who_removed: by };
        let mut message = String::from(if ev.room_was_ended { "the room was ended: " } else { "removed from the room: " });
        message.push_str(&ev.reason);
        let mut outs = vec![Out::Removed(ev)];
        outs.extend(self.teardown(SdkError::new(codes::NOT_CONNECTED, message), false));
        outs
    }

    /// The socket closed at `now` (not by us: our own closes release it first), with
    /// close `code`. Joined: reconnect (or, with reconnecting disabled, report 1003 and
    /// leave). Reconnecting: that attempt failed, try again later.
    pub fn on_close(&mut self, code: u16, now: f64) -> Vec<Out<T>> {
        let _ = code;
        self.now = now;
        match self.phase {
            Phase::Idle => Vec::new(),
            Phase::Connecting => self.teardown(err(codes::FAILED_TO_CONNECT, "could not open the WebSocket to the endpoint"), false),
            Phase::Joining => self.teardown(err(codes::CONNECTION_LOST, "the connection closed while joining"), false),
            Phase::Joined => self.connection_lost(),
            Phase::Reconnecting => self.retry_later(),
        }
    }

    /// The browser went offline: a joined client starts reconnecting right away.
    pub fn on_offline(&mut self, now: f64) -> Vec<Out<T>> {
        self.now = now;
        if self.phase == Phase::Joined {
            self.connection_lost()
        } else {
            Vec::new()
        }
    }

    /// The browser is back online: a waiting reconnect attempt starts now.
    pub fn on_online(&mut self, now: f64) -> Vec<Out<T>> {
        self.now = now;
        if self.phase == Phase::Reconnecting {
            if let Some(r) = self.rejoin.as_mut() {
                if r.next_at.is_some() {
                    r.next_at = Some(now);
                }
            }
        }
        self.on_tick(now)
    }

    fn connection_lost(&mut self) -> Vec<Out<T>> {
        if self.cfg.reconnect_budget <= 0.0 {
            return self.teardown(lost(), true);
        }
        self.phase = Phase::Reconnecting;
        self.rejoin = Some(Rejoin { started: self.now, next_at: Some(self.now), ..Rejoin::default() });
        let mut outs = vec![Out::Close];
        // What was in flight may or may not have reached the server: say so, don't guess.
        let in_flight = self.pending.drain();
        for e in in_flight {
            outs.push(Out::Reject(e.settle, err(codes::CONNECTION_LOST, "the connection was lost before the answer arrived")));
        }
        outs.push(Out::Reconnecting(lost()));
        outs.extend(self.on_tick(self.now));
        outs
    }

    /// The attempt under way failed: close it and schedule the next one, with backoff.
    fn retry_later(&mut self) -> Vec<Out<T>> {
        let now = self.now;
        let (base, max) = (self.cfg.backoff_base, self.cfg.backoff_max);
        let jitter = 0.7 + 0.6 * self.random();
        let Some(r) = self.rejoin.as_mut() else { return Vec::new() };
        r.attempt = r.attempt.saturating_add(1);
        let exp = base * f64::from(1u32 << r.attempt.min(16).saturating_sub(1));
        r.next_at = Some(now + exp.min(max) * jitter);
        r.attempt_deadline = None;
        r.join_id = None;
        r.events.clear();
        vec![Out::Close]
    }

    /// The server refused the rejoin. 409 (our old connection is still known to it) and
    /// 5xx are worth retrying; anything else (401 token expired, 423 locked, ...) is final.
    fn rejoin_refused(&mut self, e: SdkError) -> Vec<Out<T>> {
        if e.code == hms_protocol::code::CONFLICT || e.code >= 500 {
            self.retry_later()
        } else {
            self.teardown(e, true)
        }
    }

    /// The clock reached `now`: time out requests, send heartbeats, detect a silent
    /// connection, drive reconnect attempts and the reconnect budget.
    pub fn on_tick(&mut self, now: f64) -> Vec<Out<T>> {
        self.now = now;
        let mut outs = Vec::new();
        let mut join_expired = false;
        for e in self.pending.take_expired(now) {
            join_expired |= e.kind == Kind::Join;
            outs.push(Out::Reject(e.settle, err(codes::REQUEST_TIMEOUT, "no answer from the room server in time (requestTimeoutMs)")));
        }
        if join_expired {
            outs.extend(self.teardown(err(codes::REQUEST_TIMEOUT, "join timed out"), false));
            return outs;
        }
        match self.phase {
            Phase::Joined => {
                if now - self.last_rx >= self.cfg.heartbeat_timeout {
                    outs.extend(self.connection_lost());
                } else if now >= self.next_ping {
                    self.next_ping = now + self.cfg.heartbeat_interval;
                    let id = self.next_id();
                    outs.push(Out::Send { id: Some(id), call: ClientCall::Ping(hms_protocol::PingParams { timestamp: now as u64 }) });
                }
            }
            Phase::Reconnecting => {
                let timeout = self.cfg.request_timeout;
                let budget_end = self.rejoin.as_ref().map_or(now, |r| r.started + self.cfg.reconnect_budget);
                if now >= budget_end {
                    outs.extend(self.teardown(err(codes::RECONNECT_FAILED, "could not reconnect to the room server within reconnectBudgetMs"), true));
                } else if let Some(r) = self.rejoin.as_mut() {
                    if r.next_at.is_some_and(|t| t <= now) {
                        r.next_at = None;
                        r.attempt_deadline = Some(now + timeout);
                        outs.push(Out::Connect);
                    } else if r.attempt_deadline.is_some_and(|t| t <= now) {
                        outs.extend(self.retry_later());
                    }
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
        match self.phase {
            Phase::Joined => {
                consider(Some(self.next_ping));
                consider(Some(self.last_rx + self.cfg.heartbeat_timeout));
            }
            Phase::Reconnecting => {
                if let Some(r) = &self.rejoin {
                    consider(r.next_at);
                    consider(r.attempt_deadline);
                    consider(Some(r.started + self.cfg.reconnect_budget));
                }
            }
            _ => {}
        }
        next
    }

    /// `endRoom(lock, reason)`: checks joined and the `endRoom` permission before sending.
    pub fn end_room(&mut self, request_id: String, lock: bool, reason: String, now: f64, settle: T) -> Vec<Out<T>> {
        let call = ClientCall::EndRoom(EndRoomParams { lock, reason });
        self.request(Kind::EndRoom, Action::EndRoom, call, request_id, now, settle)
    }

    /// `removePeer(peerId, reason)`: checks joined and `removeOthers` before sending.
    pub fn remove_peer(&mut self, request_id: String, peer_id: String, reason: String, now: f64, settle: T) -> Vec<Out<T>> {
        let call = ClientCall::PeerLeaveRequest(PeerLeaveRequestParams { requested_for: peer_id, reason });
        self.request(Kind::RemovePeer, Action::RemoveOthers, call, request_id, now, settle)
    }

    fn request(&mut self, kind: Kind, action: Action, call: ClientCall, id: String, now: f64, settle: T) -> Vec<Out<T>> {
        self.now = now;
        if !matches!(self.phase, Phase::Joined | Phase::Reconnecting) {
            return vec![Out::Reject(settle, not_joined())];
        }
        // `Permissions::allows` is the check `Permissions::check` makes; the message is
        // built here because `check` formats it with `format!`, which costs wasm size.
        if !self.local_role().permissions.allows(action) {
            let mut message = String::from("permission denied: your role lacks ");
            message.push_str(action.permission_name());
            return vec![Out::Reject(settle, SdkError::new(hms_protocol::code::FORBIDDEN, message))];
        }
        self.pending.insert(id.clone(), kind, now + self.cfg.request_timeout, settle);
        if self.phase == Phase::Reconnecting {
            // Sent once reconnected; times out as usual if that takes too long.
            self.queued.push((id, call));
            return Vec::new();
        }
        vec![Out::Send { id: Some(id), call }]
    }

    /// `leave()`: tells the server (when the socket is open), closes, rejects what waits.
    pub fn leave(&mut self) -> Vec<Out<T>> {
        let mut outs = Vec::new();
        if matches!(self.phase, Phase::Joining | Phase::Joined) {
            let params = LeaveParams { client_reason: Some("user request".into()) };
            outs.push(Out::Send { id: None, call: ClientCall::Leave(params) });
        }
        if self.phase != Phase::Idle {
            outs.extend(self.teardown(err(codes::NOT_CONNECTED, "left the room before the answer arrived"), false));
        }
        outs
    }

    /// Ends the session: closes the socket, rejects everything waiting with `error`
    /// (and reports it to `onError` when `report`), forgets the room. Nothing reconnects
    /// from here: only `join` starts a new session.
    fn teardown(&mut self, error: SdkError, report: bool) -> Vec<Out<T>> {
        self.phase = Phase::Idle;
        self.join_params = None;
        self.saved_params = None;
        self.rejoin = None;
        self.queued.clear();
        self.clear_room();
        let mut outs = vec![Out::Close];
        outs.extend(self.pending.drain().into_iter().map(|e| Out::Reject(e.settle, error.clone())));
        if report {
            outs.push(Out::Error(error));
        }
        outs
    }

    fn clear_room(&mut self) {
        self.join_answered = false;
        self.policy_seen = false;
        self.local_role = None;
        self.roles.clear();
        self.peer_list_seen = false;
        self.peers.clear();
        self.room = None;
    }

    fn check_joined(&mut self) -> Vec<Out<T>> {
        if !(self.join_answered && self.policy_seen && self.peer_list_seen) {
            return Vec::new();
        }
        let now = self.now;
        self.last_rx = now;
        self.next_ping = now + self.cfg.heartbeat_interval;
        match self.phase {
            Phase::Joining => {
                self.phase = Phase::Joined;
                match self.pending.take_kind(Kind::Join) {
                    Some(e) => vec![Out::Resolve(e.settle)],
                    None => Vec::new(),
                }
            }
            Phase::Reconnecting => {
                self.phase = Phase::Joined;
                let events = self.rejoin.take().map(|r| r.events).unwrap_or_default();
                let mut outs: Vec<Out<T>> =
                    events.into_iter().map(|(joined, p)| if joined { Out::PeerJoin(p) } else { Out::PeerLeave(p) }).collect();
                outs.push(Out::Reconnected);
                for (id, call) in std::mem::take(&mut self.queued) {
                    if self.pending.contains(&id) {
                        outs.push(Out::Send { id: Some(id), call });
                    }
                }
                outs
            }
            _ => Vec::new(),
        }
    }

    fn role_of(&self, name: &str) -> Role {
        self.roles
            .iter()
            .find(|r| r.name == name)
            .cloned()
            .unwrap_or_else(|| Role { name: name.to_owned(), priority: 0, permissions: Default::default() })
    }

    fn local_role(&self) -> Role {
        match &self.local_role {
            Some(name) => self.role_of(name),
            None => Role { name: String::new(), priority: 0, permissions: Default::default() },
        }
    }

    fn to_peer(&self, p: &Peer) -> HmsPeer {
        let is_local = p.peer_id == self.local_id;
        HmsPeer {
            peer_id: p.peer_id.clone(),
            name: p.name.clone(),
            user_id: p.user_id.clone(),
            metadata: p.data.clone(),
            is_local,
            // The local role comes from the policy, which is authoritative for ourselves.
            role: if is_local { self.local_role() } else { self.role_of(&p.role) },
        }
    }

    fn peer(&self, id: &str) -> Option<HmsPeer> {
        self.peers.iter().find(|p| p.peer_id == id).map(|p| self.to_peer(p))
    }

    fn in_room(&self) -> bool {
        matches!(self.phase, Phase::Joined | Phase::Reconnecting)
    }

    /// `getLocalPeer()`: defined while joined (and while reconnecting).
    pub fn local_peer(&self) -> Option<HmsPeer> {
        if !self.in_room() {
            return None;
        }
        self.peer(&self.local_id)
    }

    /// `getPeers()`: everyone while joined, the local peer first, then by join time.
    pub fn peers(&self) -> Vec<HmsPeer> {
        if !self.in_room() {
            return Vec::new();
        }
        // An insertion sort by hand: rooms are small, and core's sort costs kilobytes of wasm.
        let key = |p: &Peer| (p.peer_id != self.local_id, p.joined_at);
        let mut list: Vec<&Peer> = Vec::with_capacity(self.peers.len());
        for p in &self.peers {
            let at = list.iter().position(|q| key(q) > key(p)).unwrap_or(list.len());
            list.insert(at, p);
        }
        list.into_iter().map(|p| self.to_peer(p)).collect()
    }

    /// `getRoom()`: defined while joined (and while reconnecting).
    pub fn room(&self) -> Option<HmsRoom> {
        if !self.in_room() {
            return None;
        }
        self.room.as_ref().map(|r| HmsRoom { id: r.room_id.clone(), name: r.name.clone(), session_id: r.session_id.clone() })
    }
}
