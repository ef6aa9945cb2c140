//! This node as an edge: the connections whose sockets it serves, each attached to its
//! room's owner under an attachment id (unique in the cluster, new at every
//! re-attachment, so a stale one never matches), the delivery of frames the owner
//! relays, and re-attaching connections silently when their room moves to another owner.

use super::wire::{Op, ReattachedW, Reply};
use super::{guard, Inner, Route};
use crate::conn::{Close, ConnHandle, Out};
use crate::error::Error;
use crate::frame;
use crate::room::Secret;
use hms_protocol::ServerPush;
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

/// One connection of this node.
struct EdgeConn {
    room: String,
    peer: String,
    user: String,
    role: String,
    /// The connection's queue (its local id is the key of [`Edge::by_local`]).
    handle: ConnHandle,
    /// Its current attachment id.
    attach: u64,
    /// The owner token it is attached under; `None` while it needs (re-)attaching.
    owner: Option<String>,
    /// Whether it has joined (re-attaching restores the place rather than connecting).
    joined: bool,
    /// The place's reconnect secret, while it has not joined: a new owner makes the place
    /// again with it (the join answer will carry it). Dropped at the join (the mirror has
    /// its digest from then on).
    secret: Option<Secret>,
    /// Its first attachment is under way: nothing else may attach it meanwhile.
    connecting: bool,
    /// It was told to go: never re-attached again.
    going: bool,
}

#[derive(Default)]
struct Conns {
    by_local: HashMap<u64, EdgeConn>,
    by_attach: HashMap<u64, u64>,
}

/// This node's connections.
#[derive(Default)]
pub(super) struct Edge {
    conns: Mutex<Conns>,
}

impl Edge {
    /// A new connection, attaching as `attach`.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn add(&self, local: u64, attach: u64, room: &str, peer: &str, user: &str, role: &str, handle: ConnHandle) {
        let mut c = guard(&self.conns);
        c.by_attach.insert(attach, local);
        let e = EdgeConn { room: room.into(), peer: peer.into(), user: user.into(), role: role.into(), handle, attach, owner: None, joined: false, secret: None, connecting: true, going: false };
        c.by_local.insert(local, e);
    }

    /// The connection is attached as `attach` under `token`; its place's `secret` when
    /// it is known (a first attachment).
    pub(super) fn attached(&self, local: u64, attach: u64, token: String, secret: Option<Secret>) {
        if let Some(e) = guard(&self.conns).by_local.get_mut(&local).filter(|e| e.attach == attach) {
            e.owner = Some(token);
            e.connecting = false;
            if secret.is_some() {
                e.secret = secret;
            }
        }
    }

    /// The connection joined.
    pub(super) fn joined(&self, local: u64) {
        if let Some(e) = guard(&self.conns).by_local.get_mut(&local) {
            e.joined = true;
            e.secret = None;
        }
    }

    /// The connection was told to go (a missed notice, or 1012): it is left out of
    /// every later re-attachment until its socket closes.
    pub(super) fn gone(&self, local: u64) {
        if let Some(e) = guard(&self.conns).by_local.get_mut(&local) {
            e.going = true;
            e.owner = None;
        }
    }

    /// The connection is gone.
    pub(super) fn remove(&self, local: u64) {
        let mut c = guard(&self.conns);
        if let Some(e) = c.by_local.remove(&local) {
            c.by_attach.remove(&e.attach);
        }
    }

    /// (room, attachment id, owner token) of a connection that has not been told to go.
    pub(super) fn attachment(&self, local: u64) -> Option<(String, u64, Option<String>)> {
        guard(&self.conns).by_local.get(&local).filter(|e| !e.going).map(|e| (e.room.clone(), e.attach, e.owner.clone()))
    }

    /// The connection attached as `attach`, named by that id (as its owner knows it).
    pub(super) fn handle(&self, attach: u64) -> Option<ConnHandle> {
        let c = guard(&self.conns);
        let local = c.by_attach.get(&attach)?;
        c.by_local.get(local).map(|e| e.handle.renamed(attach))
    }

    /// Queues a relayed frame; false when the connection is gone.
    pub(super) fn deliver(&self, attach: u64, out: Out) -> bool {
        let c = guard(&self.conns);
        match c.by_attach.get(&attach).and_then(|l| c.by_local.get(l)) {
            Some(e) => e.handle.send(out),
            None => false,
        }
    }

    /// Each room with connections here, with the owner tokens they are attached under.
    pub(super) fn rooms(&self) -> HashMap<String, Vec<Option<String>>> {
        let c = guard(&self.conns);
        let mut out: HashMap<String, Vec<Option<String>>> = HashMap::new();
        for e in c.by_local.values().filter(|e| !e.connecting && !e.going) {
            out.entry(e.room.clone()).or_default().push(e.owner.clone());
        }
        out
    }

    /// Local ids of the connections in `room` not attached under `token`.
    pub(super) fn stale_in(&self, room: &str, token: &str) -> Vec<u64> {
        let c = guard(&self.conns);
        c.by_local.iter().filter(|(_, e)| !e.connecting && !e.going && e.room == room && e.owner.as_deref() != Some(token)).map(|(l, _)| *l).collect()
    }

    /// Forgets every attachment (this node was presumed dead, or lost a room): each
    /// connection re-attaches.
    pub(super) fn detach_all(&self, room: Option<&str>) {
        for e in guard(&self.conns).by_local.values_mut() {
            if room.map_or(true, |r| r == e.room) {
                e.owner = None;
            }
        }
    }

    /// Every connection's queue (shutdown).
    pub(super) fn all(&self) -> Vec<ConnHandle> {
        guard(&self.conns).by_local.values().map(|e| e.handle.clone()).collect()
    }

    /// Number of connections (node stats).
    pub(super) fn len(&self) -> usize {
        guard(&self.conns).by_local.len()
    }
}

impl Inner {
    /// Attaches connection `local` to the room's owner at `route` under a new id: a
    /// joined peer gets its place back silently, one that had not joined connects again.
    /// A removal or end it missed is delivered and the connection closed; a place the
    /// new owner does not know (lost with its owner) closes it with 1012 so the SDK
    /// reconnects and joins again. Whether the connection is attached now (false: it was
    /// told to go).
    pub(super) async fn reattach_conn(self: &Arc<Self>, local: u64, route: &Route) -> Result<bool, Error> {
        let attach = self.next_attach.fetch_add(1, Ordering::Relaxed);
        let (op, handle, joined) = {
            let mut c = guard(&self.edge.conns);
            let Some(e) = c.by_local.get_mut(&local) else { return Err(Error::NotJoined) };
            let old = std::mem::replace(&mut e.attach, attach);
            e.owner = None;
            let (room, peer, user, role) = (e.room.clone(), e.peer.clone(), e.user.clone(), e.role.clone());
            let (handle, joined, secret) = (e.handle.clone(), e.joined, e.secret.clone());
            c.by_attach.remove(&old);
            c.by_attach.insert(attach, local);
            let op = match joined {
                true => Op::Reattach { room, peer, user, role, conn: attach },
                false => Op::Connect { room, peer, user, role, secret, keep: true, conn: attach },
            };
            (op, handle, joined)
        };
        let missed = |notice: hms_protocol::PeerLeaveRequest| {
            let why = if notice.room_end { Close::RoomEnded } else { Close::Removed };
            handle.send(Out::Text(frame::push(&ServerPush::PeerLeaveRequest(notice))));
            handle.send(Out::Close(why));
        };
        match self.dispatch(route, op).await? {
            Ok(Reply::Reattached(ReattachedW::Joined)) | Ok(Reply::Connected(crate::room::Connected::Fresh(_) | crate::room::Connected::Reclaimed)) => {
                self.edge.attached(local, attach, route.token.clone(), None);
                tracing::debug!(conn = local, joined, "re-attached to the room's owner");
                Ok(true)
            }
            Ok(Reply::Reattached(ReattachedW::Missed(n))) | Ok(Reply::Connected(crate::room::Connected::Missed(n))) => {
                missed(n);
                self.edge.gone(local);
                Ok(false)
            }
            Ok(_) => Err(super::unexpected()),
            Err(super::wire::Fail::NotOwner) => Err(Error::Unavailable("the room moved again; retrying".into())),
            Err(super::wire::Fail::Err(Error::Unavailable(m))) => Err(Error::Unavailable(m)),
            Err(super::wire::Fail::Err(e)) => {
                tracing::info!(conn = local, error = %e, "the room's new owner has no place for a connection: asking it to reconnect");
                handle.send(Out::Close(Close::Moved));
                self.edge.gone(local);
                Ok(false)
            }
        }
    }

    /// Re-attaches every connection of `room` not attached under its current owner.
    pub(super) async fn reattach_room(self: &Arc<Self>, room: String) {
        // One at a time per room: the ticker asks again while one runs.
        if !guard(&self.reattaching).insert(room.clone()) {
            return;
        }
        self.reattach_room_once(&room).await;
        guard(&self.reattaching).remove(&room);
    }

    async fn reattach_room_once(self: &Arc<Self>, room: &str) {
        let room = room.to_owned();
        let deadline = std::time::Instant::now() + self.t.lease * 2 + self.t.call;
        let route = match self.route(&room, deadline).await {
            Ok(r) => r,
            Err(e) => {
                tracing::info!(room = ?room, error = %e, "cannot re-attach a room's connections yet");
                return;
            }
        };
        let stale = self.edge.stale_in(&room, &route.token);
        if stale.is_empty() {
            return;
        }
        tracing::info!(room = ?room, conns = stale.len(), owner = %route.node, "re-attaching connections to the room's new owner");
        let all = stale.into_iter().map(|local| {
            let route = Route { token: route.token.clone(), node: route.node.clone(), local: route.local };
            let me = self.clone();
            async move {
                if let Err(e) = me.reattach_conn(local, &route).await {
                    tracing::info!(conn = local, error = %e, "re-attaching a connection failed; the watcher retries");
                }
            }
        });
        futures_util::future::join_all(all).await;
    }
}
