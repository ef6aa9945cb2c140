//! The room registry: where the rooms live. This is the seam between the use cases
//! ([`crate::app`]) and the room model: every room in this process ([`Rooms::Local`],
//! the [`Hub`]), or rooms shared by the nodes of a cluster ([`Rooms::Cluster`]: each
//! operation runs here when this node owns the room, on the owner node otherwise), and
//! `app` does not change. The methods are async because a shared registry waits on the
//! network; the local one never waits.
//!
//! The cluster's futures are boxed (`Box::pin`): unboxed, every connection task's state
//! holds room for the largest of them, in a single node too (`connection_task_bytes`,
//! which the server logs once: 6,528 B unboxed, 4,552 B boxed; docs/SERVER.md, "Memory
//! per connection").

use crate::cluster::Cluster;
use crate::config::Config;
use crate::conn::{ConnHandle, Fanout};
use crate::error::Error;
use crate::frame::Text;
use crate::room::{ActiveRoom, Connected, Effects, EndTicket, Hub, LargeRooms, PeerBatchFrame};
use crate::events::Sink;
use crate::store::Storage;
use hms_protocol::{peer_list, FindPeerParams, PeerLeaveRequest, Role};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Where the rooms live. See the module doc.
pub enum Rooms {
    /// In this process.
    Local(Hub),
    /// Shared by the nodes of a cluster through Redis. The owner carries out a
    /// change's effects (session records, hold timers) itself, so every method returns
    /// empty [`Effects`] for this variant.
    Cluster(Cluster),
}

impl Rooms {
    /// The rooms `config` asks for, over `store`: every room in this process (the
    /// default, with SQLite), or this node's share of a cluster (with Redis). Their
    /// events go to `sink`.
    pub async fn open(config: &Config, store: &Storage, sink: Arc<dyn Sink>) -> Result<Rooms, Error> {
        let hub = Hub::new(
            config.template.known_roles(),
            config.template.id.clone(),
            Duration::from_secs(config.limits.reconnect_window_secs),
        )
        .with_large_rooms(LargeRooms {
            threshold: config.template.large_room_peers,
            first_page: peer_list::DEFAULT_PAGE as usize,
            quiet_roles: config.template.quiet_roles(),
        })
        .with_sink(sink)
        .with_max_peers(config.limits.max_peers_per_room);
        match store {
            Storage::Sqlite(_) => Ok(Rooms::Local(hub)),
            Storage::Redis(redis) => Ok(Rooms::Cluster(Cluster::start(config, hub, redis.clone()).await?)),
        }
    }

    /// Whether every room lives in this process (a cluster's owners load locks and end
    /// records themselves when they take a room).
    pub fn is_local(&self) -> bool {
        matches!(self, Rooms::Local(_))
    }

    /// The template's roles.
    pub fn known_roles(&self) -> &BTreeMap<String, Role> {
        match self {
            Rooms::Local(h) => h.known_roles(),
            Rooms::Cluster(c) => c.hub().known_roles(),
        }
    }

    /// Marks a room as locked or not (from the store at startup; a cluster's owner reads
    /// the stored flag instead).
    pub async fn set_locked(&self, room_id: &str, locked: bool) -> Result<(), Error> {
        match self {
            Rooms::Local(h) => {
                h.set_locked(room_id, locked);
                Ok(())
            }
            Rooms::Cluster(c) => Box::pin(c.lock_stored(room_id)).await,
        }
    }

    /// A lock change the store just committed (called on the store's thread, in commit
    /// order; see `Store::on_lock_change`). Never waits. (Only SQLite calls it.)
    pub fn lock_committed(&self, room_id: &str, locked: bool) {
        match self {
            Rooms::Local(h) => h.set_locked(room_id, locked),
            Rooms::Cluster(_) => {}
        }
    }

    /// A lock change was stored (REST enable or disable): the memory of one node has it
    /// already (from [`Rooms::lock_committed`]); a cluster's owner reads it from Redis.
    pub async fn lock_stored(&self, room_id: &str) -> Result<(), Error> {
        match self {
            Rooms::Local(_) => Ok(()),
            Rooms::Cluster(c) => Box::pin(c.lock_stored(room_id)).await,
        }
    }

    /// Whether joins to the room are refused.
    pub async fn is_locked(&self, room_id: &str) -> bool {
        match self {
            Rooms::Local(h) => h.is_locked(room_id),
            Rooms::Cluster(c) => Box::pin(c.is_locked(room_id)).await,
        }
    }

    /// A new connection for `peer_id` in `room_id`, authenticated as `user_id` with `role`,
    /// presenting a reconnect `secret` or none (see [`Hub::connect`]).
    pub async fn connect(
        &self,
        room_id: &str,
        peer_id: &str,
        user_id: &str,
        role: &str,
        secret: Option<&str>,
        conn: ConnHandle,
    ) -> Result<Connected, Error> {
        match self {
            Rooms::Local(h) => h.connect(room_id, peer_id, user_id, role, secret, conn),
            Rooms::Cluster(c) => Box::pin(c.connect(room_id, peer_id, user_id, role, secret, conn)).await,
        }
    }

    /// `join`: `ok` (the serialized answer) goes out first, then the policy and the peer
    /// list; the others are told.
    #[allow(clippy::too_many_arguments)]
    pub async fn join(&self, room_id: &str, peer_id: &str, conn_id: u64, name: &str, data: &str, ok: Text) -> Result<Effects, Error> {
        match self {
            Rooms::Local(h) => h.join(room_id, peer_id, conn_id, name, data, ok),
            Rooms::Cluster(c) => Box::pin(c.join(room_id, peer_id, conn_id, name, data, ok)).await.map(|()| Effects::default()),
        }
    }

    /// Whether `conn_id` is the joined connection of `peer_id`.
    pub async fn is_joined(&self, room_id: &str, peer_id: &str, conn_id: u64) -> bool {
        match self {
            Rooms::Local(h) => h.is_joined(room_id, peer_id, conn_id),
            Rooms::Cluster(c) => Box::pin(c.is_joined(room_id, peer_id, conn_id)).await,
        }
    }

    /// `leave`: the peer goes for good; the others are told.
    pub async fn leave(&self, room_id: &str, peer_id: &str, conn_id: u64) -> Result<Effects, Error> {
        match self {
            Rooms::Local(h) => h.leave(room_id, peer_id, conn_id),
            Rooms::Cluster(c) => Box::pin(c.leave(room_id, peer_id, conn_id)).await.map(|()| Effects::default()),
        }
    }

    /// The connection ended without `leave`; `hold` keeps a joined peer's place.
    pub async fn disconnected(&self, room_id: &str, peer_id: &str, conn_id: u64, hold: bool) -> Effects {
        match self {
            Rooms::Local(h) => h.disconnected(room_id, peer_id, conn_id, hold),
            Rooms::Cluster(c) => {
                Box::pin(c.disconnected(room_id, peer_id, conn_id, hold)).await;
                Effects::default()
            }
        }
    }

    /// A held place's reconnect window ran out (a cluster's owners run these timers
    /// themselves).
    pub async fn hold_expired(&self, room_id: &str, peer_id: &str, gen: u64) -> Effects {
        match self {
            Rooms::Local(h) => h.hold_expired(room_id, peer_id, gen),
            Rooms::Cluster(_) => Effects::default(),
        }
    }

    /// First half of an end: checks the requester, marks the room ending.
    pub async fn begin_end_room(&self, room_id: &str, requester: Option<(&str, u64)>, lock: bool) -> Result<EndTicket, Error> {
        match self {
            Rooms::Local(h) => h.begin_end_room(room_id, requester, lock),
            Rooms::Cluster(c) => Box::pin(c.begin_end_room(room_id, requester, lock)).await,
        }
    }

    /// Undoes [`Rooms::begin_end_room`] when the end could not be stored.
    pub async fn abort_end_room(&self, room_id: &str, ticket: &EndTicket) {
        match self {
            Rooms::Local(h) => h.abort_end_room(room_id, ticket),
            Rooms::Cluster(c) => Box::pin(c.abort_end_room(room_id, ticket)).await,
        }
    }

    /// Second half of an end: everyone else is told; returns the requester's connection
    /// and the notices' fan-out (it tells when they are written).
    pub async fn finish_end_room(&self, room_id: &str, requested_by: Option<&str>, reason: &str) -> (Option<ConnHandle>, Arc<Fanout>) {
        match self {
            Rooms::Local(h) => h.finish_end_room(room_id, requested_by, reason),
            Rooms::Cluster(c) => Box::pin(c.finish_end_room(room_id, requested_by, reason)).await,
        }
    }

    /// Removes `target`; `requester` is `None` for the REST API.
    pub async fn remove_peer(&self, room_id: &str, requester: Option<(&str, u64)>, target: &str, reason: &str) -> Result<Effects, Error> {
        match self {
            Rooms::Local(h) => h.remove_peer(room_id, requester, target, reason),
            Rooms::Cluster(c) => Box::pin(c.remove_peer(room_id, requester, target, reason)).await.map(|()| Effects::default()),
        }
    }

    /// `find-peer`: a new iterator of the peer's and its first page, as the answer to `id`.
    pub async fn find_peer(&self, room_id: &str, peer_id: &str, conn_id: u64, id: &Value, params: &FindPeerParams) -> Result<Text, Error> {
        match self {
            Rooms::Local(h) => h.find_peer(room_id, peer_id, conn_id, id, params),
            Rooms::Cluster(c) => Box::pin(c.find_peer(room_id, peer_id, conn_id, id, params)).await,
        }
    }

    /// `peer-iter-next`: the next page of one of the peer's iterators, as the answer to `id`.
    #[allow(clippy::too_many_arguments)]
    pub async fn peer_iter_next(&self, room_id: &str, peer_id: &str, conn_id: u64, id: &Value, iterator: &str, limit: Option<u32>) -> Result<Text, Error> {
        match self {
            Rooms::Local(h) => h.peer_iter_next(room_id, peer_id, conn_id, id, iterator, limit),
            Rooms::Cluster(c) => Box::pin(c.peer_iter_next(room_id, peer_id, conn_id, id, iterator, limit)).await,
        }
    }

    /// `get-peer`: one peer of the room, as the answer to `id`.
    pub async fn get_peer(&self, room_id: &str, peer_id: &str, conn_id: u64, id: &Value, target: &str) -> Result<Text, Error> {
        match self {
            Rooms::Local(h) => h.get_peer(room_id, peer_id, conn_id, id, target),
            Rooms::Cluster(c) => Box::pin(c.get_peer(room_id, peer_id, conn_id, id, target)).await,
        }
    }

    /// Takes a large room's pending joins and leaves for flush `token` (a cluster's
    /// owners flush their rooms' batches themselves).
    pub async fn take_batch(&self, room_id: &str, token: u64) -> Option<PeerBatchFrame> {
        match self {
            Rooms::Local(h) => h.take_batch(room_id, token),
            Rooms::Cluster(_) => None,
        }
    }

    /// Queues a batch to the room's subscribers; whether another flush is due.
    pub async fn send_batch(&self, room_id: &str, token: u64, frame: Option<Text>) -> bool {
        match self {
            Rooms::Local(h) => h.send_batch(room_id, token, frame),
            Rooms::Cluster(_) => false,
        }
    }

    /// Peer ids of the room's visible peers with `role`.
    pub async fn peers_with_role(&self, room_id: &str, role: &str) -> Vec<String> {
        match self {
            Rooms::Local(h) => h.peers_with_role(room_id, role),
            Rooms::Cluster(c) => Box::pin(c.peers_with_role(room_id, role)).await,
        }
    }

    /// The room's running session and peers.
    pub async fn active_room(&self, room_id: &str) -> Result<Option<ActiveRoom>, Error> {
        match self {
            Rooms::Local(h) => Ok(h.active_room(room_id)),
            Rooms::Cluster(c) => Box::pin(c.active_room(room_id)).await,
        }
    }

    /// Remembers, from an end record, that `peer_id` ended the room (see
    /// [`Hub::remember_end`]). A cluster keeps it in the room's mirror instead.
    pub async fn remember_end(&self, room_id: &str, peer_id: &str, user_id: &str, notice: PeerLeaveRequest, until: Instant) {
        match self {
            Rooms::Local(h) => h.remember_end(room_id, peer_id, user_id, notice, until),
            Rooms::Cluster(_) => {}
        }
    }

    /// Forgets expired tombstones.
    pub async fn sweep(&self) {
        match self {
            Rooms::Local(h) => h.sweep(),
            Rooms::Cluster(c) => c.hub().sweep(),
        }
    }

    /// Closes every connection and forgets every room; returns the running sessions and
    /// how many connections were told.
    pub async fn shutdown(&self) -> (Vec<String>, usize) {
        match self {
            Rooms::Local(h) => h.shutdown(),
            Rooms::Cluster(c) => Box::pin(c.shutdown()).await,
        }
    }
}
