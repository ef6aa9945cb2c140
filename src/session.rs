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
}

/// The state machine. See the module doc.
#[derive(Debug)]
pub struct Session<T> {
    phase: Phase,
    timeout_ms: f64,
    local_id: String,
    join_id: String,
    join_params: Option<JoinParams>,
    join_answered: bool,
    local_role: Option<String>,
    roles: Vec<Role>,
    peer_list_seen: bool,
    peers: Vec<Peer>,
    room: Option<RoomState>,
    pending: Pending<T>,
}

fn err(code: i32, message: &str) -> SdkError {
    SdkError::new(code, message)
}

fn not_joined() -> SdkError {
    err(codes::NOT_CONNECTED, "not joined: call join() first and wait for it")
}

impl<T> Session<T> {
    /// A session whose requests time out after `timeout_ms`.
    pub fn new(timeout_ms: f64) -> Self {
        Self {
            phase: Phase::Idle,
            timeout_ms,
            local_id: String::new(),
            join_id: String::new(),
            join_params: None,
            join_answered: false,
            local_role: None,
            roles: Vec::new(),
            peer_list_seen: false,
            peers: Vec::new(),
            room: None,
            pending: Pending::default(),
        }
    }

    /// The current phase.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// The local peer id of the current or last join.
    pub fn local_id(&self) -> &str {
        &self.local_id
    }

    /// Starts joining as `peer_id`; the browser layer then opens the socket and reports
    /// [`Session::on_open`]. Refused with 409 while joining or joined.
    pub fn begin_join(&mut self, peer_id: String, request_id: String, params: JoinParams, now: f64, settle: T) -> Result<(), (T, SdkError)> {
        if self.phase != Phase::Idle {
            return Err((settle, err(hms_protocol::code::CONFLICT, "already joined or joining: call leave() first")));
        }
        self.clear_room();
        self.phase = Phase::Connecting;
        self.local_id = peer_id;
        self.join_id = request_id.clone();
        self.join_params = Some(params);
        self.pending.insert(request_id, Kind::Join, now + self.timeout_ms, settle);
        Ok(())
    }

    /// The socket opened: send `join`.
    pub fn on_open(&mut self) -> Vec<Out<T>> {
        match (self.phase, self.join_params.take()) {
            (Phase::Connecting, Some(params)) => {
                self.phase = Phase::Joining;
                vec![Out::Send { id: Some(self.join_id.clone()), call: ClientCall::Join(params) }]
            }
            _ => Vec::new(),
        }
    }

    /// An answer to request `id` arrived.
    pub fn on_answer(&mut self, id: &str, result: Result<(), RpcError>) -> Vec<Out<T>> {
        if self.phase == Phase::Idle {
            return Vec::new();
        }
        if id == self.join_id && self.phase == Phase::Joining {
            return match result {
                Ok(()) => {
                    self.join_answered = true;
                    self.check_joined()
                }
                Err(e) => self.teardown(e.into(), false),
            };
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

    /// A push arrived.
    pub fn on_push(&mut self, push: impl Into<Push>) -> Vec<Out<T>> {
        if self.phase == Phase::Idle {
            return Vec::new();
        }
        match push.into() {
            Push::Policy { role, roles } => {
                self.local_role = Some(role);
                self.roles = roles;
                self.check_joined()
            }
            Push::PeerList { peers, room } => {
                self.peers = peers;
                self.room = Some(room);
                self.peer_list_seen = true;
                self.check_joined()
            }
            Push::PeerJoin(p) => {
                let is_local = p.peer_id == self.local_id;
                let peer = self.to_peer(&p);
                match self.peers.iter_mut().find(|q| q.peer_id == p.peer_id) {
                    Some(q) => *q = p,
                    None => self.peers.push(p),
                }
                if self.phase == Phase::Joined && !is_local {
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
            Push::Error(e) => {
                let was_joined = self.phase == Phase::Joined;
                self.teardown(e.into(), was_joined)
            }
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

    /// The socket closed (not by us: our own closes release it first). `code` is the
    /// close code. Everything waiting is rejected; a joined client reports 1003 to `onError`.
    pub fn on_close(&mut self, code: u16) -> Vec<Out<T>> {
        let _ = code;
        match self.phase {
            Phase::Idle => Vec::new(),
            Phase::Connecting => self.teardown(err(codes::FAILED_TO_CONNECT, "could not open the WebSocket to the endpoint"), false),
            Phase::Joining => self.teardown(err(codes::CONNECTION_LOST, "the connection closed while joining"), false),
            Phase::Joined => self.teardown(err(codes::CONNECTION_LOST, "the connection to the room server was lost"), true),
        }
    }

    /// The clock reached `now`: reject what timed out. A join that times out ends the attempt.
    pub fn on_tick(&mut self, now: f64) -> Vec<Out<T>> {
        let mut outs = Vec::new();
        let mut join_expired = false;
        for e in self.pending.take_expired(now) {
            join_expired |= e.kind == Kind::Join;
            outs.push(Out::Reject(e.settle, err(codes::REQUEST_TIMEOUT, "no answer from the room server in time (requestTimeoutMs)")));
        }
        if join_expired {
            outs.extend(self.teardown(err(codes::REQUEST_TIMEOUT, "join timed out"), false));
        }
        outs
    }

    /// The earliest request deadline, for the timer.
    pub fn next_deadline(&self) -> Option<f64> {
        self.pending.next_deadline()
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
        if self.phase != Phase::Joined {
            return vec![Out::Reject(settle, not_joined())];
        }
        // `Permissions::allows` is the check `Permissions::check` makes; the message is
        // built here because `check` formats it with `format!`, which costs wasm size.
        if !self.local_role().permissions.allows(action) {
            let mut message = String::from("permission denied: your role lacks ");
            message.push_str(action.permission_name());
            return vec![Out::Reject(settle, SdkError::new(hms_protocol::code::FORBIDDEN, message))];
        }
        self.pending.insert(id.clone(), kind, now + self.timeout_ms, settle);
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
    /// (and reports it to `onError` when `report`), forgets the room.
    fn teardown(&mut self, error: SdkError, report: bool) -> Vec<Out<T>> {
        self.phase = Phase::Idle;
        self.join_params = None;
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
        self.local_role = None;
        self.roles.clear();
        self.peer_list_seen = false;
        self.peers.clear();
        self.room = None;
    }

    fn check_joined(&mut self) -> Vec<Out<T>> {
        if self.phase == Phase::Joining && self.join_answered && self.local_role.is_some() && self.peer_list_seen {
            self.phase = Phase::Joined;
            if let Some(e) = self.pending.take_kind(Kind::Join) {
                return vec![Out::Resolve(e.settle)];
            }
        }
        Vec::new()
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

    /// `getLocalPeer()`: defined while joined.
    pub fn local_peer(&self) -> Option<HmsPeer> {
        if self.phase != Phase::Joined {
            return None;
        }
        self.peer(&self.local_id)
    }

    /// `getPeers()`: everyone while joined, the local peer first, then by join time.
    pub fn peers(&self) -> Vec<HmsPeer> {
        if self.phase != Phase::Joined {
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

    /// `getRoom()`: defined while joined.
    pub fn room(&self) -> Option<HmsRoom> {
        if self.phase != Phase::Joined {
            return None;
        }
        self.room.as_ref().map(|r| HmsRoom { id: r.room_id.clone(), name: r.name.clone(), session_id: r.session_id.clone() })
    }
}
