//! The use cases of the room server: connect, join, leave, end a room, remove peers,
//! enable or disable a room, room codes and tokens. Each is one method taking typed input
//! and returning a typed result or an [`Error`]. The WebSocket dispatcher
//! ([`crate::signaling`]) and the REST handlers ([`crate::rest`]) call only these, so each
//! rule — above all the end-room ordering — is written once, here.
//!
//! The app owns the server's state (config, token keys, store, room registry, metrics,
//! webhooks) and its background tasks, which it tracks so that [`App::shutdown`] can
//! wait for them. What happens in the rooms reaches the store and the metrics as
//! [`Event`]s: the rooms emit membership events through the [`Recorder`] while they hold
//! the change's lock (so they stay in order); an end-room's session close goes into the
//! store transaction that records the end.

use crate::auth::{Claims, TokenKeys, TokenType};
use crate::config::Config;
use crate::codes;
use crate::conn::{Close, ConnHandle, Out, Outbox};
use crate::error::Error;
use crate::events::{By, CloseReason, Event, Sink};
use crate::frame::Text;
use crate::metrics::Metrics;
use crate::quota::{self, Counter, Held, Rate};
use crate::registry::Rooms;
use crate::room::{ActiveRoom, Connected, Effects, Secret, END_NOTICE_TTL};
use crate::store::{Ender, RoomCode, SessionRecord, Storage};
use crate::webhooks::{self, FailedView, Webhooks};
use hms_protocol::{JoinParams, PeerLeaveRequest, PeerListCall};
use serde_json::Value;
use std::net::IpAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The server's state and its use cases.
pub struct App {
    config: Config,
    keys: TokenKeys,
    store: Storage,
    /// Shared with the hold timers.
    rooms: Arc<Rooms>,
    /// Connection tasks and hold timers, so shutdown can wait for them.
    tasks: TaskTracker,
    /// Fired when shutdown starts.
    stopping: CancellationToken,
    next_conn: AtomicU64,
    metrics: Arc<Metrics>,
    /// Set when webhooks are on.
    webhooks: Option<Arc<Webhooks>>,
    /// Open connections per (room, user).
    per_user: Arc<Counter<(String, String)>>,
    /// Joins per (room, user).
    joins: Rate<(String, String)>,
    /// `/v2/token` calls per client address.
    token_rate: Rate<IpAddr>,
}

/// The rooms' [`Sink`]: counts each event and queues it to the store (session history,
/// webhook outbox) in the order the rooms emitted it. Never waits.
struct Recorder {
    store: Storage,
    metrics: Arc<Metrics>,
    /// Sessions a room keeps (`limits.sessions_kept_per_room`; 0 = all).
    sessions_kept: usize,
}

impl Sink for Recorder {
    fn emit(&self, events: Vec<Event>) {
        let mut opened = Vec::new();
        for e in &events {
            self.metrics.observe(e);
            if let Event::SessionOpened { room_id, .. } = e {
                opened.push(room_id.clone());
            }
        }
        self.store.record(events);
        // A new session: the room's oldest ended ones beyond the cap go (after the new
        // one's row, on the same thread). End records of the last END_NOTICE_TTL stay: a
        // requester may reconnect for them.
        if self.sessions_kept > 0 {
            let protect = crate::clock::now_millis().saturating_sub(END_NOTICE_TTL.as_millis() as u64);
            for room in opened {
                self.store.prune_sessions(&room, self.sessions_kept, protect);
            }
        }
    }
}

/// Most client addresses whose `/v2/token` rate is remembered at once.
const MAX_TOKEN_RATE_KEYS: usize = 100_000;

/// A peer's connection once authenticated and placed in its room.
#[derive(Debug, Clone)]
pub struct PeerConn {
    /// The token's room.
    pub room: String,
    /// The `?peer=` id.
    pub peer: String,
    /// The token's user.
    pub user: String,
    /// The place's reconnect secret, for the join answer.
    pub secret: Secret,
    /// Where the peer's frames go.
    pub conn: ConnHandle,
}

/// What a new connection gets.
#[derive(Debug)]
pub enum Opened {
    /// A place in the room (fresh, or reclaimed within the reconnect window): `join`
    /// next. The outbox is what the connection's writer drains.
    Placed {
        /// The placed peer.
        peer: PeerConn,
        /// Its outgoing queue.
        outbox: Outbox,
        /// Its count among its user's connections in the room: keep it as long as the
        /// connection.
        user_slot: Held<(String, String)>,
    },
    /// The peer was removed, or its room ended, while it was away: deliver this notice
    /// and close.
    Missed(PeerLeaveRequest),
}

/// Who asks for an end or a removal.
pub enum Requester<'a> {
    /// A joined peer; `answer` (its serialized `{}` answer) is queued to it at the moment
    /// the protocol promises.
    Peer(&'a PeerConn, Text),
    /// A back end through the REST API.
    Api,
}

impl Requester<'_> {
    fn peer(&self) -> Option<(&str, u64)> {
        match self {
            Requester::Peer(p, _) => Some((p.peer.as_str(), p.conn.id)),
            Requester::Api => None,
        }
    }
}

/// Which page of a room's session history: `limit` sessions after the cursor `start`
/// (the `last` of the page before; none: from the oldest).
#[derive(Debug, Clone)]
pub struct HistoryPage {
    /// Cursor from the previous page.
    pub start: Option<String>,
    /// Sessions per page, 1 to [`MAX_HISTORY_PAGE`].
    pub limit: usize,
}

/// Most sessions in one page of a room's history.
pub const MAX_HISTORY_PAGE: usize = 1000;

/// Whom a REST removal targets.
pub enum Target {
    /// One peer by id.
    Peer(String),
    /// Every peer with this role.
    Role(String),
}

/// A large room's joins and leaves go out once per tick: wait, take what came in,
/// serialize it once outside the room's lock, queue it to the subscribers; again while
/// more came in meanwhile.
async fn flush_batches(rooms: &Rooms, room: &str, token: u64, stopping: &CancellationToken, tick: Duration) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(tick) => {}
            _ = stopping.cancelled() => return,
        }
        let Some(batch) = rooms.take_batch(room, token).await else { return };
        let frame = (!batch.is_empty()).then(|| batch.encode());
        if !rooms.send_batch(room, token, frame).await {
            return;
        }
    }
}

/// The message a caller sees when the database fails (the detail is logged); a cluster's
/// unreachable Redis stays a 503.
fn db_failed(e: Error) -> Error {
    tracing::error!(error = %e, "store failure");
    match e {
        Error::Unavailable(_) => e,
        _ => Error::Internal("the server could not access its database".into()),
    }
}

/// Longest peer id, in bytes (a UUID is 36).
pub const MAX_PEER_ID_BYTES: usize = 64;

/// Peer ids are chosen by clients and end up in logs, URLs and other peers' lists: only
/// `[A-Za-z0-9_-]`, 1 to [`MAX_PEER_ID_BYTES`] bytes.
fn check_peer_id(peer_id: &str) -> Result<(), Error> {
    let ok = (1..=MAX_PEER_ID_BYTES).contains(&peer_id.len())
        && peer_id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !ok {
        return Err(Error::BadRequest(format!(
            "the peer query parameter is required: 1 to {MAX_PEER_ID_BYTES} characters of [A-Za-z0-9_-] (a UUID fits)"
        )));
    }
    Ok(())
}

/// Longest user id a room code holder may ask for, in bytes.
pub const MAX_USER_ID_BYTES: usize = 64;

/// A user id asked for with a room code: anyone holding the code may ask for any, so it
/// is a label the holder claims, not an identity (docs/SECURITY.md). It ends up in
/// tokens, peer lists and logs: `[A-Za-z0-9_.@+:-]`, 1 to [`MAX_USER_ID_BYTES`] bytes.
fn check_user_id(user_id: String) -> Result<String, Error> {
    let ok = (1..=MAX_USER_ID_BYTES).contains(&user_id.len())
        && user_id.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.@+:-".contains(&b));
    if !ok {
        return Err(Error::BadRequest(format!("user_id must be 1 to {MAX_USER_ID_BYTES} characters of [A-Za-z0-9_.@+:-]")));
    }
    Ok(user_id)
}

/// `Ok` when `value` fits in `max` bytes; else 400 naming the limit and its config key.
fn check_len(what: &str, value: &str, max: usize, key: &str) -> Result<(), Error> {
    if value.len() > max {
        return Err(Error::BadRequest(format!("{what} is {} bytes: the limit is {max} (limits.{key})", value.len())));
    }
    Ok(())
}

fn check_room_id(room_id: &str) -> Result<(), Error> {
    if room_id.is_empty() || room_id.len() > 128 {
        return Err(Error::BadRequest("room_id must be 1 to 128 characters".into()));
    }
    Ok(())
}

impl App {
    /// Builds the state: validates the config, opens the store and loads the room locks.
    pub async fn new(config: Config, secret: &str, data_dir: &Path) -> Result<Arc<Self>, Error> {
        config.validate()?;
        let metrics = Arc::new(Metrics::new());
        let stopping = CancellationToken::new();
        let wake = webhooks::Wake::new(&config);
        let store = Storage::open(&config, data_dir, config.webhooks.enabled().then(|| webhooks::writer(&config, &wake))).await?;
        let sessions_kept = config.limits.sessions_kept_per_room;
        let recorder = Arc::new(Recorder { store: store.clone(), metrics: metrics.clone(), sessions_kept });
        let rooms = Arc::new(Rooms::open(&config, &store, recorder).await?);
        // After the rooms: a cluster node that refuses to start never takes the sender lease.
        let webhooks = match config.webhooks.enabled() {
            true => Some(Webhooks::start(&config, &store, data_dir, wake, metrics.clone(), stopping.clone())?),
            false => None,
        };
        // (A cluster's owner loads these when it takes a room, and reads the lock from
        // Redis after each change: see cluster/owner.rs.)
        if rooms.is_local() {
            for room in store.disabled_rooms().await? {
                rooms.set_locked(&room, true).await?;
            }
            // Lock changes reach memory in the order the database commits them: a REST
            // enable racing a locking end-room cannot leave the two disagreeing.
            let mirror = rooms.clone();
            store.on_lock_change(Box::new(move |room, locked| mirror.lock_committed(room, locked)));
            // A peer whose end-room was stored just before a crash learns so when it
            // reconnects to the restarted server.
            let ttl = END_NOTICE_TTL.max(Duration::from_secs(config.limits.reconnect_window_secs));
            let now_ms = crate::clock::now_millis();
            for end in store.ends_since(now_ms.saturating_sub(ttl.as_millis() as u64)).await? {
                let notice = PeerLeaveRequest { requested_by: Some(end.peer_id.clone()), reason: end.reason, room_end: true };
                let until = Instant::now() + ttl.saturating_sub(Duration::from_millis(now_ms.saturating_sub(end.ended_at)));
                rooms.remember_end(&end.room_id, &end.peer_id, &end.user_id, notice, until).await;
            }
        }
        let keys = TokenKeys::new(secret.as_bytes(), &config.access_key, config.token_ttl_secs);
        let per_min = config.limits.joins_per_user_per_min;
        let token_rate = Rate::new(config.limits.token_requests_per_min_per_ip, config.limits.token_burst_per_ip, MAX_TOKEN_RATE_KEYS);
        Ok(Arc::new(Self {
            config,
            keys,
            store,
            rooms,
            tasks: TaskTracker::new(),
            stopping,
            next_conn: AtomicU64::new(1),
            metrics,
            webhooks,
            per_user: Arc::default(),
            joins: Rate::new(per_min, per_min, quota::MAX_JOIN_RATE_KEYS),
            token_rate,
        }))
    }

    /// The server's metrics (the transport counts its own refusals there).
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The room registry (tests drive the rooms through it directly).
    pub fn rooms(&self) -> &Rooms {
        &self.rooms
    }

    /// Whether shutdown has started (new connections are refused).
    pub fn is_shutting_down(&self) -> bool {
        self.stopping.is_cancelled()
    }

    /// Runs `task` as one of the server's tasks: shutdown waits for it.
    pub fn spawn<F>(&self, task: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        self.tasks.spawn(task);
    }

    /// Checks a management token (REST API).
    pub fn verify_management(&self, token: &str) -> Result<(), Error> {
        self.keys.verify(token, TokenType::Management).map(|_| ())
    }

    /// A new connection of `peer_id` with the app `token` (and the optional `?room=`,
    /// which must match the token's): checked in that order, then placed in its room. A
    /// place that exists is taken back only with its reconnect `secret`.
    pub async fn connect(&self, peer_id: &str, token: Option<&str>, room: Option<&str>, secret: Option<&str>) -> Result<Opened, Error> {
        check_peer_id(peer_id)?;
        let claims = self.authenticate(token, room).inspect_err(|e| {
            tracing::info!(peer = ?peer_id, error = %e, "connection refused: bad token");
        })?;
        let limits = &self.config.limits;
        let room = &claims.room_id;
        let (user_slot, admitted) = self.per_user.hold((room.clone(), claims.user_id.clone()), limits.max_connections_per_user);
        if !admitted {
            tracing::info!(peer = ?peer_id, room = ?room, user = ?claims.user_id, "connection refused: too many connections of one user");
            return Err(quota::too_many_conns(limits.max_connections_per_user));
        }
        let id = self.next_conn.fetch_add(1, Ordering::Relaxed);
        let (conn, outbox) = ConnHandle::bounded(id, limits.send_queue, limits.send_queue_bytes);
        let found = self.rooms.connect(room, peer_id, &claims.user_id, &claims.role, secret, conn.clone()).await.inspect_err(|e| {
            tracing::info!(peer = ?peer_id, room = ?room, code = e.code(), "connection refused");
        })?;
        match found {
            Connected::Missed(notice) => {
                tracing::info!(peer = ?peer_id, room = ?room, "reconnect after removal: delivering the missed notice");
                Ok(Opened::Missed(notice))
            }
            found => {
                let secret = match found {
                    Connected::Fresh(new) => {
                        tracing::debug!(peer = ?peer_id, room = ?room, "connected");
                        new
                    }
                    _ => {
                        tracing::info!(peer = ?peer_id, room = ?room, "reconnected within the window");
                        Secret::presented(secret.unwrap_or_default())
                    }
                };
                let peer = PeerConn { room: room.clone(), peer: peer_id.to_owned(), user: claims.user_id, secret, conn };
                Ok(Opened::Placed { peer, outbox, user_slot })
            }
        }
    }

    fn authenticate(&self, token: Option<&str>, room: Option<&str>) -> Result<Claims, Error> {
        let token = token.ok_or_else(|| Error::Unauthorized("the token query parameter is required".into()))?;
        let claims = self.keys.verify(token, TokenType::App)?;
        if room.is_some_and(|r| !r.is_empty() && r != claims.room_id) {
            return Err(Error::Unauthorized("the token is for another room".into()));
        }
        Ok(claims)
    }

    /// `join`: `answer` goes out first, then the policy and the peer list; the others
    /// are told.
    pub async fn join(&self, p: &PeerConn, params: &JoinParams, answer: Text) -> Result<(), Error> {
        let l = &self.config.limits;
        check_len("name", &params.name, l.max_name_bytes, "max_name_bytes")?;
        check_len("data (metadata)", &params.data, l.max_metadata_bytes, "max_metadata_bytes")?;
        if let Err(wait) = self.joins.take(&(p.room.clone(), p.user.clone()), Instant::now()) {
            tracing::info!(peer = ?p.peer, room = ?p.room, user = ?p.user, "join refused: too many joins of one user");
            return Err(quota::too_many_joins(l.joins_per_user_per_min, wait));
        }
        let fx = self.rooms.join(&p.room, &p.peer, p.conn.id, &params.name, &params.data, answer).await?;
        tracing::debug!(peer = ?p.peer, room = ?p.room, "joined");
        self.apply(&p.room, &p.peer, fx);
        Ok(())
    }

    /// `leave`: `answer` (if the request had an id) goes out, then the peer leaves for
    /// good and its socket is closed; the others are told.
    pub async fn leave(&self, p: &PeerConn, answer: Option<Text>) -> Result<(), Error> {
        if !self.rooms.is_joined(&p.room, &p.peer, p.conn.id).await {
            return Err(Error::NotJoined);
        }
        if let Some(answer) = answer {
            p.conn.send(Out::Text(answer));
        }
        let fx = self.rooms.leave(&p.room, &p.peer, p.conn.id).await?;
        self.apply(&p.room, &p.peer, fx);
        Ok(())
    }

    /// The connection of `p` ended; `hold` keeps a joined peer's place for the reconnect
    /// window (a drop), otherwise it leaves now (it broke a rule).
    pub async fn disconnected(&self, p: &PeerConn, hold: bool) {
        let fx = self.rooms.disconnected(&p.room, &p.peer, p.conn.id, hold).await;
        self.apply(&p.room, &p.peer, fx);
    }

    /// Ends the room for everyone, in the order the protocol promises:
    /// 1. the requester's permission is checked and the room marked ending (with `lock`,
    ///    joins get 423 at once);
    /// 2. the end (and lock) is stored durably, and the lock set in memory from the
    ///    commit; on failure the room is no longer ending, nobody is told and the caller
    ///    gets 500;
    /// 3. every other peer is sent `on-peer-leave-request` and closed;
    /// 4. the call waits, at most `end_room_flush_ms`, for those notices to be written;
    /// 5. only then a requesting peer gets its answer, and its socket is closed.
    ///
    /// The session's close event is stored with the end (step 2); the peers' leaves are
    /// emitted at step 3 and stored after it, in order. Nothing waits for them: if a crash
    /// comes first, the next start rebuilds them from the ended session and the peers it
    /// still lists (see `store::outbox::stranded_peers`).
    pub async fn end_room(&self, room_id: &str, by: Requester<'_>, reason: &str, lock: bool) -> Result<(), Error> {
        check_len("reason", reason, self.config.limits.max_reason_bytes, "max_reason_bytes")?;
        let requester = by.peer();
        let ticket = self.rooms.begin_end_room(room_id, requester, lock).await?;
        let by_id = requester.map(|(peer, _)| peer);
        let ender = by_id.zip(ticket.requester_user.as_deref()).map(|(peer_id, user_id)| Ender { peer_id, user_id });
        let ended_by = match ender {
            Some(e) => By::Peer { peer_id: e.peer_id.to_owned(), user_id: e.user_id.to_owned() },
            None => By::Api,
        };
        let close = Event::SessionClosed {
            room_id: room_id.to_owned(),
            session_id: ticket.session_id.clone(),
            started_at: ticket.started_at,
            at: crate::clock::now_millis(),
            reason: CloseReason::Ended { by: ended_by, message: reason.to_owned(), locked: lock },
        };
        if let Err(e) = self.store.end_session(room_id, &ticket.session_id, ender, reason, lock, close.clone()).await {
            tracing::error!(room = ?room_id, error = %e, "could not store the end of a session");
            self.rooms.abort_end_room(room_id, &ticket).await;
            return Err(match e {
                Error::Unavailable(_) => e,
                _ => Error::Internal("could not store the room's state; try again".into()),
            });
        }
        self.metrics.observe(&close);
        let fan_out = crate::clock::now_micros();
        let started = Instant::now();
        let (requester_conn, notices) = self.rooms.finish_end_room(room_id, by_id, reason).await;
        let peers = notices.queued();
        tracing::info!(room = ?room_id, by = by_id.unwrap_or("REST API"), lock, peers, "room ended");
        // A slow peer cannot hold this up for longer than the flush bound: it is cut off
        // when its queue fills anyway.
        let flush = Duration::from_millis(self.config.limits.end_room_flush_ms);
        let _ = tokio::time::timeout(flush, notices.wait()).await;
        self.metrics.end_room_fanout(started.elapsed());
        // The server's own view of the fan-out (the load tool reads it beside the
        // clients' view, since both share the machine): when the notices were queued and
        // when the first and the last were written and flushed, µs since the Unix epoch.
        let (first_us, last_us) = notices.times_us();
        let written = notices.written();
        tracing::info!(target: "fanout", room = ?room_id, peers, written, start_us = fan_out, first_us, last_us, "end-room notices written");
        if let Requester::Peer(p, answer) = by {
            // The requester's place may have moved to a newer connection meanwhile.
            let me = requester_conn.unwrap_or_else(|| p.conn.clone());
            me.send(Out::Text(answer));
            me.send(Out::Close(Close::RoomEnded));
        }
        Ok(())
    }

    /// `find-peer`, `peer-iter-next`, `get-peer`: reads the room's peer list for a joined
    /// peer; the answer to request `id`, ready to send.
    pub async fn read_peer_list(&self, p: &PeerConn, id: &Value, call: &PeerListCall) -> Result<Text, Error> {
        let (room, peer, conn) = (p.room.as_str(), p.peer.as_str(), p.conn.id);
        match call {
            PeerListCall::FindPeer(f) => self.rooms.find_peer(room, peer, conn, id, f).await,
            PeerListCall::PeerIterNext(n) => self.rooms.peer_iter_next(room, peer, conn, id, &n.iterator, n.limit).await,
            PeerListCall::GetPeer(g) => self.rooms.get_peer(room, peer, conn, id, &g.peer_id).await,
        }
    }

    /// Removes one peer: it gets `on-peer-leave-request {room_end: false}` and is
    /// closed, the others `on-peer-leave`; then a requesting peer gets its answer.
    pub async fn remove_peer(&self, room_id: &str, by: Requester<'_>, target: &str, reason: &str) -> Result<(), Error> {
        check_len("reason", reason, self.config.limits.max_reason_bytes, "max_reason_bytes")?;
        let fx = self.rooms.remove_peer(room_id, by.peer(), target, reason).await?;
        if let Requester::Peer(p, answer) = by {
            tracing::info!(peer = ?p.peer, room = ?room_id, target = ?target, "peer removed");
            p.conn.send(Out::Text(answer));
        }
        self.apply(room_id, target, fx);
        Ok(())
    }

    /// REST: removes a peer, or every peer of a role; how many were removed (404 if none).
    pub async fn remove_peers(&self, room_id: &str, target: Target, reason: &str) -> Result<usize, Error> {
        check_len("reason", reason, self.config.limits.max_reason_bytes, "max_reason_bytes")?;
        let targets = match target {
            Target::Peer(p) => vec![p],
            Target::Role(role) => self.rooms.peers_with_role(room_id, &role).await,
        };
        let mut removed = 0;
        for target in &targets {
            if self.remove_peer(room_id, Requester::Api, target, reason).await.is_ok() {
                removed += 1;
            }
        }
        if removed == 0 {
            return Err(Error::NotFound("no matching peer in this room".into()));
        }
        tracing::info!(room = ?room_id, removed, "peers removed through the REST API");
        Ok(removed)
    }

    /// Enables or disables (locks) a room: on disk first (a lock the database does not
    /// have would vanish on a restart), then in memory, from the commit (see
    /// [`Store::on_lock_change`]).
    pub async fn set_room_enabled(&self, room_id: &str, enabled: bool) -> Result<(), Error> {
        check_room_id(room_id)?;
        self.store.set_enabled(room_id, enabled).await.map_err(db_failed)?;
        self.rooms.lock_stored(room_id).await?;
        tracing::info!(room = ?room_id, enabled, "room enabled flag changed");
        Ok(())
    }

    /// Whether the room accepts joins.
    pub async fn room_enabled(&self, room_id: &str) -> bool {
        !self.rooms.is_locked(room_id).await
    }

    /// A page of the room's session history, oldest first, and the cursor of the next
    /// page (see [`HistoryPage`]).
    pub async fn room_history(&self, room_id: &str, page: HistoryPage) -> Result<(Vec<SessionRecord>, Option<String>), Error> {
        let after = match page.start.as_deref() {
            None => None,
            Some(c) => Some(c.parse::<i64>().ok().filter(|n| *n > 0).ok_or_else(|| Error::BadRequest("start must be the `last` of a previous page".into()))?),
        };
        if !(1..=MAX_HISTORY_PAGE).contains(&page.limit) {
            return Err(Error::BadRequest(format!("limit must be 1 to {MAX_HISTORY_PAGE}")));
        }
        let (rows, next) = self.store.sessions(room_id, after, page.limit).await.map_err(db_failed)?;
        Ok((rows, next.map(|n| n.to_string())))
    }

    /// The room's running session and its peers (404 when none runs).
    pub async fn active_room(&self, room_id: &str) -> Result<ActiveRoom, Error> {
        self.rooms.active_room(room_id).await?.ok_or_else(|| Error::NotFound("no active session in this room".into()))
    }

    /// Issues new room codes for every role of the template (or only `role`): each
    /// replaces the role's previous code, which stops working at once. The answer is the
    /// only time the codes' text is known: the store keeps hashes.
    pub async fn issue_room_codes(&self, room_id: &str, role: Option<&str>) -> Result<Vec<RoomCode>, Error> {
        check_room_id(room_id)?;
        let roles: Vec<String> = match role {
            Some(r) if self.rooms.known_roles().contains_key(r) => vec![r.to_owned()],
            Some(r) => return Err(Error::BadRequest(format!("role {r:?} is not in the template"))),
            None => self.rooms.known_roles().keys().cloned().collect(),
        };
        let issued: Vec<(String, String)> = roles.into_iter().map(|r| (r, codes::generate())).collect();
        let hashes = issued.iter().map(|(r, c)| (r.clone(), codes::hash(c))).collect();
        let created_at = self.store.issue_codes(room_id, hashes).await.map_err(db_failed)?;
        tracing::info!(room = ?room_id, roles = issued.len(), "room codes issued");
        Ok(issued
            .into_iter()
            .map(|(role, code)| RoomCode { code: Some(code), room_id: room_id.to_owned(), role, enabled: true, created_at })
            .collect())
    }

    /// The room's codes, without their text.
    pub async fn room_codes(&self, room_id: &str) -> Result<Vec<RoomCode>, Error> {
        check_room_id(room_id)?;
        self.store.codes(room_id).await.map_err(db_failed)
    }

    /// Enables or disables one code, named by its text (404 when unknown).
    pub async fn set_code_enabled(&self, code: &str, enabled: bool) -> Result<RoomCode, Error> {
        let hash = codes::hash(code);
        if !self.store.set_code_enabled(&hash, enabled).await.map_err(db_failed)? {
            return Err(Error::NotFound("unknown room code".into()));
        }
        let found = self.store.find_code(&hash).await.map_err(db_failed)?;
        let found = found.ok_or_else(|| Error::NotFound("unknown room code".into()))?;
        tracing::info!(room = ?found.room_id, role = ?found.role, enabled, "room code enabled flag changed");
        Ok(found)
    }

    /// Exchanges a room code for an app token, for `user_id` (checked: see
    /// [`check_user_id`]) or a generated one. Throttled per client address `from`; a
    /// locked room refuses (423).
    pub async fn token_by_code(&self, code: &str, user_id: Option<String>, from: IpAddr) -> Result<String, Error> {
        if let Err(wait) = self.token_rate.take(&quota::ip_key(from), Instant::now()) {
            tracing::info!(ip = %from, "token exchange refused: too many from one address");
            let what = format!("too many token requests from your address (limit {} a minute)", self.config.limits.token_requests_per_min_per_ip);
            return Err(Error::Throttled(what, wait.as_secs_f64().ceil().max(1.0) as u64));
        }
        if code.is_empty() {
            return Err(Error::BadRequest("code is required".into()));
        }
        let user = match user_id {
            Some(u) => check_user_id(u)?,
            None => format!("user-{}", uuid::Uuid::new_v4()),
        };
        let found = self.store.find_code(&codes::hash(code)).await.map_err(db_failed)?;
        let Some(code) = found.filter(|c| c.enabled) else {
            return Err(Error::NotFound("unknown or disabled room code".into()));
        };
        if self.rooms.is_locked(&code.room_id).await {
            return Err(Error::Locked);
        }
        self.keys.app_token(&code.room_id, &user, &code.role)
    }

    /// Webhook events past their retry budget, after the cursor `after`, and the next
    /// page's cursor (404 when webhooks are off).
    pub async fn failed_webhooks(&self, after: i64, limit: usize) -> Result<(Vec<FailedView>, Option<i64>), Error> {
        self.webhooks()?.failed(after, limit).await.map_err(db_failed)
    }

    /// Queues a failed webhook event again; how many deliveries were queued.
    pub async fn replay_webhook(&self, id: &str) -> Result<usize, Error> {
        self.webhooks()?.replay(id).await.map_err(|e| match e {
            Error::Store(_) => db_failed(e),
            other => other,
        })
    }

    fn webhooks(&self) -> Result<&Webhooks, Error> {
        self.webhooks.as_deref().ok_or_else(|| Error::NotFound("webhooks are off: no [webhooks] urls are configured".into()))
    }

    /// Forgets expired tombstones (called now and then).
    pub async fn sweep(&self) {
        self.rooms.sweep().await;
    }

    /// Carries out a room change's effects: hold timers (what happened went to the
    /// [`Recorder`] already).
    fn apply(&self, room: &str, peer: &str, fx: Effects) {
        if let Some(gen) = fx.hold {
            tracing::info!(peer = ?peer, room = ?room, "peer dropped: holding its place for the reconnect window");
            self.hold(room.to_owned(), peer.to_owned(), gen);
        }
        if let Some(token) = fx.batch {
            let tick = Duration::from_millis(self.config.template.peer_batch_ms);
            let (rooms, stopping, room) = (self.rooms.clone(), self.stopping.clone(), room.to_owned());
            self.tasks.spawn(async move { flush_batches(&rooms, &room, token, &stopping, tick).await });
        }
    }

    /// After the reconnect window, a held place that was not reclaimed is given up.
    fn hold(&self, room: String, peer: String, gen: u64) {
        let window = Duration::from_secs(self.config.limits.reconnect_window_secs);
        let tick = Duration::from_millis(self.config.template.peer_batch_ms);
        let stopping = self.stopping.clone();
        let rooms = self.rooms.clone();
        self.tasks.spawn(async move {
            tokio::select! {
                _ = tokio::time::sleep(window) => {}
                _ = stopping.cancelled() => return,
            }
            let fx = rooms.hold_expired(&room, &peer, gen).await;
            if let Some(token) = fx.batch {
                flush_batches(&rooms, &room, token, &stopping, tick).await;
            }
        });
    }

    /// Graceful shutdown: new connections are refused, every connection is closed, the
    /// running sessions are recorded as ended, the server's tasks get up to
    /// `shutdown_grace_ms` to finish (close frames written), and the database is
    /// checkpointed.
    pub async fn shutdown(&self) {
        self.stopping.cancel();
        self.tasks.close();
        // The rooms report each session's close (and, with webhooks, each peer's leave).
        let (sessions, conns) = self.rooms.shutdown().await;
        tracing::info!(connections = conns, sessions = sessions.len(), "shutting down");
        if let Err(e) = self.store.flush().await {
            tracing::warn!(error = %e, "could not record the sessions' end at shutdown");
        }
        let grace = Duration::from_millis(self.config.limits.shutdown_grace_ms);
        let _ = tokio::time::timeout(grace, self.tasks.wait()).await;
        if let Err(e) = self.store.checkpoint().await {
            tracing::warn!(error = %e, "WAL checkpoint at shutdown failed (the data is safe in the WAL)");
        }
    }
}
