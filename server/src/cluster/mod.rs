//! Distributed mode: several nodes share rooms through Redis, with room affinity (as
//! LiveKit): each active room has exactly one owner node at a time, which runs the
//! room's rules ([`crate::room`], the same code as one node) under a lease in Redis.
//! A peer's socket lives on the node it reached (its edge); when the edge does not own
//! the room, the owner sees the peer as a [`ConnHandle`] whose frames are relayed to the
//! edge, and the edge's calls go to the owner over Redis pub/sub.
//!
//! - [`lease`]: ownership (lease + fencing epoch) and the owner's fenced writes;
//! - [`owner`]: running operations on the rooms this node owns, taking a room over
//!   from its mirror, the hold timers, the mirror writer;
//! - [`edge`]: this node's connections, delivering relayed frames, re-attaching
//!   connections when their room moves;
//! - [`relay`] and [`wire`]: the per-node channels and what travels on them;
//! - [`watch`]: heartbeat, lease renewal, dead nodes, ownership checks;
//! - [`keys`]: every key and channel.
//!
//! The design, its guarantees and its failure table: docs/SCALING.md.

mod edge;
pub mod image;
pub mod keys;
pub mod lease;
mod owner;
pub mod relay;
mod watch;
pub mod wire;

use crate::config::Config;
use crate::conn::{ConnHandle, Fanout};
use crate::error::Error;
use crate::frame::Text;
use crate::quota::Rate;
use crate::room::{ActiveRoom, Connected, EndTicket, Hub, Secret};
use crate::store::redis::RedisStore;
use edge::Edge;
use lease::Leases;
use relay::Relay;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use hms_protocol::FindPeerParams;
use serde_json::Value;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use wire::{Fail, Op, Reply};

fn guard<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The cluster's timings, from the config.
#[derive(Debug, Clone, Copy)]
struct Timing {
    /// A room owner's lease.
    lease: Duration,
    /// Heartbeat, lease renewal and checks: a third of the lease.
    tick: Duration,
    /// One call to another node.
    call: Duration,
    /// end-room's wait for the notices.
    flush: Duration,
    /// The reconnect window.
    window: Duration,
    /// A large room's tick for coalesced joins and leaves.
    batch: Duration,
}

/// The limits a room's owner enforces for the whole room (issue 10's, per user).
struct Limits {
    /// `limits.max_connections_per_user` (0 = off).
    max_conns_per_user: usize,
    /// `limits.joins_per_user_per_min` (0 = off).
    joins_per_min: u32,
    /// Joins per (room, user) in the rooms this node owns.
    joins: Rate<(String, String)>,
}

/// A room this node owns.
struct Owned {
    /// `<node>|<epoch>`.
    token: String,
    /// Until when this node may act as the owner without hearing from Redis: the lease
    /// minus a margin, counted from *before* the last successful renewal was sent.
    valid_until: Instant,
}

/// What of a room's mirror must be written.
enum Dirty {
    /// Everything (after a take-over or an end).
    All,
    /// The session and these peers' records.
    Peers(HashSet<String>),
}

/// Where an operation runs.
struct Route {
    /// The owner's token.
    token: String,
    /// Its node; this one when `local`.
    node: Arc<str>,
    local: bool,
}

/// This node of the cluster. See the module doc.
pub struct Cluster {
    inner: Arc<Inner>,
}

struct Inner {
    me: Arc<str>,
    hub: Hub,
    store: RedisStore,
    leases: Leases,
    relay: Arc<Relay>,
    t: Timing,
    limits: Limits,
    /// One lock refresh at a time (owner.rs).
    lock_refresh: tokio::sync::Mutex<()>,
    owned: Mutex<HashMap<String, Owned>>,
    /// One acquisition at a time per room.
    acquiring: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Owner tokens of rooms owned elsewhere, as last resolved.
    owners: Mutex<HashMap<String, String>>,
    /// Nodes serving connections in rooms this node owns (watched for death).
    edges: Mutex<HashSet<Arc<str>>>,
    /// Nodes seen alive, and when: a route trusts this for a tick.
    live: Mutex<HashMap<String, Instant>>,
    edge: Edge,
    /// Rooms whose connections are being re-attached.
    reattaching: Mutex<HashSet<String>>,
    /// Mirror writes to do, per room.
    dirty: Mutex<HashMap<String, Dirty>>,
    dirty_notify: Notify,
    /// Attachment ids: this node's number in the high bits, so they are unique in the cluster.
    next_attach: AtomicU64,
    closing: AtomicBool,
    /// Rooms whose renewal Redis refused (another node holds them), for the ticker.
    lost: Mutex<Vec<String>>,
    /// The heartbeat had lapsed: other nodes may have held this node's peers.
    lapsed: AtomicBool,
    stop: CancellationToken,
}

/// The message while this node is shutting down.
fn closing() -> Error {
    Error::Unavailable("this node is shutting down; reconnect to another".into())
}

impl Cluster {
    /// Joins the cluster whose Redis `store` is on: checks Redis' durability settings,
    /// registers the node, starts its channel, heartbeat and mirror writer. The hub's
    /// events (session history) go to the sink it was built with.
    pub async fn start(config: &Config, hub: Hub, store: RedisStore) -> Result<Cluster, Error> {
        let c = &config.cluster;
        let redis = store.link().clone();
        watch::check_durability(&redis, c.allow_non_durable_redis).await?;
        let me: Arc<str> = c.node_id.clone().unwrap_or_else(|| format!("n-{}", uuid::Uuid::new_v4().simple())).into();
        let seq: u64 = redis.cmd(redis::cmd("INCR").arg(keys::NODE_SEQ)).await?;
        let lease = Duration::from_millis(c.lease_ms);
        let window = Duration::from_secs(config.limits.reconnect_window_secs);
        let t = Timing {
            lease,
            tick: lease / 3,
            call: Duration::from_millis(c.call_timeout_ms),
            flush: Duration::from_millis(config.limits.end_room_flush_ms),
            window,
            batch: Duration::from_millis(config.template.peer_batch_ms),
        };
        let mirror_ttl = crate::room::END_NOTICE_TTL.max(window) + lease * 10;
        let stop = CancellationToken::new();
        let leases = Leases { redis: redis.clone(), node: me.to_string(), lease_ms: c.lease_ms, mirror_ttl_ms: mirror_ttl.as_millis() as u64 };
        let inner = Arc::new(Inner {
            relay: Relay::new(me.to_string(), redis.clone(), stop.clone()),
            me,
            hub,
            store,
            leases,
            t,
            limits: Limits {
                max_conns_per_user: config.limits.max_connections_per_user,
                joins_per_min: config.limits.joins_per_user_per_min,
                joins: Rate::new(config.limits.joins_per_user_per_min, config.limits.joins_per_user_per_min, crate::quota::MAX_JOIN_RATE_KEYS),
            },
            lock_refresh: tokio::sync::Mutex::new(()),
            owned: Mutex::default(),
            acquiring: Mutex::default(),
            owners: Mutex::default(),
            edges: Mutex::default(),
            live: Mutex::default(),
            edge: Edge::default(),
            reattaching: Mutex::default(),
            dirty: Mutex::default(),
            dirty_notify: Notify::new(),
            next_attach: AtomicU64::new((seq & 0xFF_FFFF) << 40 | 1),
            closing: AtomicBool::new(false),
            lost: Mutex::default(),
            lapsed: AtomicBool::new(false),
            stop,
        });
        // Only a room's owner writes its records (history, webhook outbox), fenced by
        // its lease as Redis has it: a node that lost the room writes nothing.
        let weak = Arc::downgrade(&inner);
        inner.store.set_fence(Box::new(move |room| {
            let token = weak.upgrade().and_then(|i| guard(&i.owned).get(room).map(|o| o.token.clone()));
            (keys::owner(room), token.unwrap_or_default())
        }));
        watch::start(&inner, &redis).await?;
        tracing::info!(node = %inner.me, lease_ms = c.lease_ms, "joined the cluster");
        Ok(Cluster { inner })
    }

    /// This node's id.
    pub fn node_id(&self) -> &str {
        &self.inner.me
    }

    /// The room model (template, sweeping).
    pub fn hub(&self) -> &Hub {
        &self.inner.hub
    }

    /// A lock change of the room was stored: its owner reads the flag from the store.
    pub async fn lock_stored(&self, room: &str) -> Result<(), Error> {
        self.inner.run(Op::LockStored { room: room.into() }).await.map(|_| ())
    }

    /// Whether the room is disabled: the store is the truth for every node.
    pub async fn is_locked(&self, room: &str) -> bool {
        self.inner.store.is_disabled(room).await.unwrap_or_else(|e| {
            tracing::warn!(room = ?room, error = %e, "could not read a room's lock");
            false
        })
    }

    /// A new connection of this node for `peer` in `room`.
    pub async fn connect(&self, room: &str, peer: &str, user: &str, role: &str, secret: Option<&str>, conn: ConnHandle) -> Result<Connected, Error> {
        let i = &self.inner;
        if i.closing.load(Ordering::Relaxed) {
            return Err(closing());
        }
        if !i.hub.known_roles().contains_key(role) {
            return Err(Error::Unauthorized(format!("the token's role {role:?} is not in the template")));
        }
        let attach = i.next_attach.fetch_add(1, Ordering::Relaxed);
        let local = conn.id;
        i.edge.add(local, attach, room, peer, user, role, conn);
        let secret = secret.map(Secret::presented);
        let op = Op::Connect { room: room.into(), peer: peer.into(), user: user.into(), role: role.into(), secret: secret.clone(), keep: false, conn: attach };
        match i.run_routed(op).await {
            Ok((Reply::Connected(c), token)) => {
                match &c {
                    Connected::Missed(_) => i.edge.remove(local),
                    Connected::Fresh(new) => i.edge.attached(local, attach, token, Some(new.clone())),
                    Connected::Reclaimed => i.edge.attached(local, attach, token, secret),
                }
                Ok(c)
            }
            Ok(_) => {
                i.edge.remove(local);
                Err(unexpected())
            }
            Err(e) => {
                i.edge.remove(local);
                Err(e)
            }
        }
    }

    /// `join` of this node's connection `conn` (its local id).
    pub async fn join(&self, room: &str, peer: &str, conn: u64, name: &str, data: &str, ok: Text) -> Result<(), Error> {
        let (name, data, ok) = (name.to_owned(), data.to_owned(), ok.to_string());
        self.inner
            .conn_op(conn, |attach| Op::Join { room: room.into(), peer: peer.into(), conn: attach, name: name.clone(), data: data.clone(), ok: ok.clone() })
            .await?;
        self.inner.edge.joined(conn);
        Ok(())
    }

    /// Whether this node's connection `conn` is the joined one of `peer`.
    pub async fn is_joined(&self, room: &str, peer: &str, conn: u64) -> bool {
        let r = self.inner.conn_op(conn, |attach| Op::IsJoined { room: room.into(), peer: peer.into(), conn: attach }).await;
        matches!(r, Ok(Reply::Bool(true)))
    }

    /// `leave` of this node's connection `conn`.
    pub async fn leave(&self, room: &str, peer: &str, conn: u64) -> Result<(), Error> {
        self.inner.conn_op(conn, |attach| Op::Leave { room: room.into(), peer: peer.into(), conn: attach }).await.map(|_| ())
    }

    /// This node's connection `conn` ended; `hold` keeps a joined peer's place. Told
    /// only to the owner it is attached to (never taking the room, never re-attaching):
    /// a newer owner holds the place already, and a dead edge's peers are held anyway.
    pub async fn disconnected(&self, room: &str, peer: &str, conn: u64, hold: bool) {
        let i = &self.inner;
        if let Some((_, attach, Some(token))) = i.edge.attachment(conn).filter(|_| !i.closing.load(Ordering::Relaxed)) {
            let op = Op::Disconnected { room: room.into(), peer: peer.into(), conn: attach, hold };
            let local = i.owned_token(room).is_some_and(|t| t == token);
            let route = Route { node: if local { i.me.clone() } else { lease::node_of(&token).into() }, token, local };
            if let Err(e) = i.dispatch(&route, op).await {
                tracing::info!(peer = ?peer, room = ?room, error = %e, "could not tell the room's owner about a disconnect");
            }
        }
        i.edge.remove(conn);
    }

    /// First half of an end; `requester` is (peer, this node's connection id).
    pub async fn begin_end_room(&self, room: &str, requester: Option<(&str, u64)>, lock: bool) -> Result<EndTicket, Error> {
        let reply = match requester {
            Some((peer, conn)) => {
                self.inner.conn_op(conn, |attach| Op::BeginEnd { room: room.into(), requester: Some((peer.into(), attach)), lock }).await?
            }
            None => self.inner.run(Op::BeginEnd { room: room.into(), requester: None, lock }).await?,
        };
        match reply {
            Reply::Ticket(t) => Ok(t),
            _ => Err(unexpected()),
        }
    }

    /// Undoes a begun end whose record could not be stored.
    pub async fn abort_end_room(&self, room: &str, ticket: &EndTicket) {
        if let Err(e) = self.inner.run(Op::AbortEnd { room: room.into(), ticket: ticket.clone() }).await {
            tracing::warn!(room = ?room, error = %e, "could not undo a begun end on the room's owner");
        }
    }

    /// Second half of an end: the owner tells everyone and waits (bounded) for the
    /// notices to be written, then this returns the requester's connection and the
    /// fan-out as the owner saw it (finished).
    pub async fn finish_end_room(&self, room: &str, requested_by: Option<&str>, reason: &str) -> (Option<ConnHandle>, Arc<Fanout>) {
        let i = &self.inner;
        let op = Op::FinishEnd { room: room.into(), requested_by: requested_by.map(str::to_owned), reason: reason.into() };
        match i.run(op).await {
            Ok(Reply::Finished(requester, (queued, written, first_us, last_us))) => {
                (requester.and_then(|(id, node)| i.conn_handle(id, &node.into())), Fanout::finished(queued, written, first_us, last_us))
            }
            Ok(_) => (None, Fanout::finished(0, 0, 0, 0)),
            Err(e) => {
                // The end is stored: whoever owns the room next carries it out (owner.rs).
                tracing::warn!(room = ?room, error = %e, "the room's owner did not confirm the end's fan-out");
                (None, Fanout::finished(0, 0, 0, 0))
            }
        }
    }

    /// `find-peer` of this node's connection `conn`: the answer to `id`.
    pub async fn find_peer(&self, room: &str, peer: &str, conn: u64, id: &Value, params: &FindPeerParams) -> Result<Text, Error> {
        let op = |attach| Op::FindPeer { room: room.into(), peer: peer.into(), conn: attach, id: id.clone(), params: params.clone() };
        text_reply(self.inner.conn_op(conn, op).await?)
    }

    /// `peer-iter-next` of this node's connection `conn`: the answer to `id`.
    #[allow(clippy::too_many_arguments)]
    pub async fn peer_iter_next(&self, room: &str, peer: &str, conn: u64, id: &Value, iterator: &str, limit: Option<u32>) -> Result<Text, Error> {
        let op = |attach| Op::PeerIterNext { room: room.into(), peer: peer.into(), conn: attach, id: id.clone(), iterator: iterator.into(), limit };
        text_reply(self.inner.conn_op(conn, op).await?)
    }

    /// `get-peer` of this node's connection `conn`: the answer to `id`.
    pub async fn get_peer(&self, room: &str, peer: &str, conn: u64, id: &Value, target: &str) -> Result<Text, Error> {
        let op = |attach| Op::GetPeer { room: room.into(), peer: peer.into(), conn: attach, id: id.clone(), target: target.into() };
        text_reply(self.inner.conn_op(conn, op).await?)
    }

    /// Removes `target`; `requester` is (peer, this node's connection id) or `None` for the API.
    pub async fn remove_peer(&self, room: &str, requester: Option<(&str, u64)>, target: &str, reason: &str) -> Result<(), Error> {
        match requester {
            Some((peer, conn)) => self
                .inner
                .conn_op(conn, |attach| Op::RemovePeer { room: room.into(), requester: Some((peer.into(), attach)), target: target.into(), reason: reason.into() })
                .await
                .map(|_| ()),
            None => self.inner.run(Op::RemovePeer { room: room.into(), requester: None, target: target.into(), reason: reason.into() }).await.map(|_| ()),
        }
    }

    /// Peer ids of the room's visible peers with `role`.
    pub async fn peers_with_role(&self, room: &str, role: &str) -> Vec<String> {
        match self.inner.run(Op::PeersWithRole { room: room.into(), role: role.into() }).await {
            Ok(Reply::Peers(p)) => p,
            _ => Vec::new(),
        }
    }

    /// The room's running session and peers.
    pub async fn active_room(&self, room: &str) -> Result<Option<ActiveRoom>, Error> {
        match self.inner.run(Op::ActiveRoom { room: room.into() }).await? {
            Reply::Active(a) => Ok(a),
            _ => Err(unexpected()),
        }
    }

    /// Graceful shutdown: this node's peers are closed with 1001 (their places stay
    /// held by the rooms' owners), the rooms it owns are written and released for other
    /// nodes to take over, and it leaves the cluster. No session ends.
    pub async fn shutdown(&self) -> (Vec<String>, usize) {
        let n = self.inner.shutdown().await;
        (Vec::new(), n)
    }
}

fn text_reply(r: Reply) -> Result<Text, Error> {
    match r {
        Reply::Text(t) => Ok(Text::from(t)),
        _ => Err(unexpected()),
    }
}

fn unexpected() -> Error {
    Error::Internal("unexpected answer from the room's node".into())
}

impl Inner {
    /// Runs `op` on the room's owner, wherever it is.
    async fn run(self: &Arc<Self>, op: Op) -> Result<Reply, Error> {
        self.run_routed(op).await.map(|(r, _)| r)
    }

    /// Runs `op` on the room's owner; also returns the owner's token. Re-resolves the
    /// owner while it answers that it does not own the room (bounded by the lease).
    async fn run_routed(self: &Arc<Self>, op: Op) -> Result<(Reply, String), Error> {
        let deadline = Instant::now() + self.t.lease * 2 + self.t.call;
        loop {
            let route = self.route(op.room(), deadline).await?;
            match self.dispatch(&route, op.clone()).await? {
                Ok(r) => return Ok((r, route.token)),
                Err(Fail::Err(e)) => return Err(e),
                Err(Fail::NotOwner) => {
                    guard(&self.owners).remove(op.room());
                    if Instant::now() >= deadline {
                        return Err(Error::Unavailable("the room's owner could not be found in time; retry later".into()));
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }

    /// Sends `op` to the route's node (or runs it here).
    async fn dispatch(self: &Arc<Self>, route: &Route, op: Op) -> Result<Result<Reply, Fail>, Error> {
        if route.local {
            return Ok(self.exec(op, &self.me.clone()).await);
        }
        let deadline = match op {
            Op::FinishEnd { .. } => self.t.call + self.t.flush,
            _ => self.t.call,
        };
        self.relay.call(&route.node, op, deadline).await
    }

    /// An operation of this node's connection (local id `conn`): sent under its current
    /// attachment, re-attaching it first when its room's owner changed.
    async fn conn_op(self: &Arc<Self>, conn: u64, make: impl Fn(u64) -> Op) -> Result<Reply, Error> {
        if self.closing.load(Ordering::Relaxed) {
            return Err(closing());
        }
        let deadline = Instant::now() + self.t.lease * 2 + self.t.call;
        loop {
            let Some((room, attach, owner)) = self.edge.attachment(conn) else {
                return Err(Error::NotJoined);
            };
            let route = self.route(&room, deadline).await?;
            if owner.as_deref() != Some(route.token.as_str()) {
                // Told to go (missed notice, or 1012): the connection is closing.
                if !self.reattach_conn(conn, &route).await? {
                    return Err(Error::NotJoined);
                }
                continue;
            }
            match self.dispatch(&route, make(attach)).await? {
                Ok(r) => return Ok(r),
                Err(Fail::Err(e)) => return Err(e),
                Err(Fail::NotOwner) => {
                    guard(&self.owners).remove(&room);
                    if Instant::now() >= deadline {
                        return Err(Error::Unavailable("the room's owner could not be found in time; retry later".into()));
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }

    /// Who owns `room`: this node (taking the lease when nobody holds it) or another
    /// live node. Waits for a dead owner's lease to lapse, until `deadline`.
    async fn route(self: &Arc<Self>, room: &str, deadline: Instant) -> Result<Route, Error> {
        loop {
            if self.closing.load(Ordering::Relaxed) {
                return Err(closing());
            }
            if let Some(token) = self.owned_token(room) {
                return Ok(Route { token, node: self.me.clone(), local: true });
            }
            let cached = guard(&self.owners).get(room).cloned();
            let token = match cached {
                Some(t) => Some(t),
                None => self.leases.owner(room).await?,
            };
            match token {
                None => {
                    if let Some(token) = self.acquire(room).await? {
                        return Ok(Route { token, node: self.me.clone(), local: true });
                    }
                }
                Some(token) => {
                    let node = lease::node_of(&token);
                    // Our own old lease (released or lost here): wait for it to go.
                    if node != &*self.me && watch::alive(self, node).await? {
                        guard(&self.owners).insert(room.to_owned(), token.clone());
                        return Ok(Route { node: node.into(), token, local: false });
                    }
                    guard(&self.owners).remove(room);
                }
            }
            if Instant::now() >= deadline {
                return Err(Error::Unavailable("the room's owner could not be found in time; retry later".into()));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// This node's token for `room` while its lease is valid.
    fn owned_token(&self, room: &str) -> Option<String> {
        guard(&self.owned).get(room).filter(|o| o.valid_until > Instant::now()).map(|o| o.token.clone())
    }

    /// The handle for connection `id` served by `node` (this one or another).
    fn conn_handle(self: &Arc<Self>, id: u64, node: &Arc<str>) -> Option<ConnHandle> {
        if *node == self.me {
            self.edge.handle(id)
        } else {
            Some(ConnHandle::remote(id, node.clone(), self.relay.sink(node.clone())))
        }
    }

    /// The whole mirror of `room` must be written.
    fn mark_dirty(&self, room: &str) {
        guard(&self.dirty).insert(room.to_owned(), Dirty::All);
        self.dirty_notify.notify_one();
    }

    /// The session and the record of `peer` in `room`'s mirror must be written.
    fn mark_peer(&self, room: &str, peer: &str) {
        let mut d = guard(&self.dirty);
        match d.entry(room.to_owned()).or_insert_with(|| Dirty::Peers(HashSet::new())) {
            Dirty::All => {}
            Dirty::Peers(p) => {
                p.insert(peer.to_owned());
            }
        }
        drop(d);
        self.dirty_notify.notify_one();
    }
}
