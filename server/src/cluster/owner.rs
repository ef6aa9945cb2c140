//! This node as the owner of rooms: running each operation on the room model while
//! its lease is valid, carrying out the effects (session records, hold timers), taking
//! a room over from the mirror its previous owner left, writing the mirror (coalesced,
//! fenced), and letting rooms go when they empty or their lease is lost.

use super::lease::Acquired;
use super::wire::{Answer, Fail, Op, Reply};
use super::{guard, Dirty, Inner, Owned};
use crate::conn::ConnHandle;
use crate::frame::Text;
use crate::error::Error;
use crate::quota;
use crate::room::{Effects, Secret};
use hms_protocol::PeerLeaveRequest;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

impl Inner {
    /// How long a lease stays usable here after the renewal sent at `sent`: the lease
    /// minus a margin for clock-rate drift and the time the answer took.
    pub(super) fn valid_from(&self, sent: Instant) -> Instant {
        sent + self.t.lease.mul_f64(0.8)
    }

    /// Runs `op`, sent by node `from`, on a room this node owns; `NotOwner` otherwise.
    pub(super) async fn exec(self: &Arc<Self>, op: Op, from: &Arc<str>) -> Answer {
        let room = op.room().to_owned();
        let Some(token) = self.owned_token(&room) else { return Err(Fail::NotOwner) };
        let hub = &self.hub;
        let conn = |id: u64| -> Result<ConnHandle, Fail> {
            if **from == *self.me {
                self.edge.handle(id).ok_or_else(|| Fail::Err(Error::Internal("the connection is gone".into())))
            } else {
                guard(&self.edges).insert(from.clone());
                Ok(ConnHandle::remote(id, from.clone(), self.relay.sink(from.clone())))
            }
        };
        let reply = match op {
            Op::Connect { peer, user, role, secret, keep: true, conn: id, .. } => {
                Reply::Connected(hub.connect_keeping(&room, &peer, &user, &role, secret.as_ref(), conn(id)?)?)
            }
            Op::Connect { peer, user, role, secret, conn: id, .. } => {
                // Every node counts its own connections; the owner counts the room's.
                let max = self.limits.max_conns_per_user;
                if max > 0 && hub.conns_of_user(&room, &user, &peer) >= max {
                    tracing::info!(peer = ?peer, room = ?room, user = ?user, "connection refused: too many connections of one user in the room");
                    return Err(quota::too_many_conns(max).into());
                }
                Reply::Connected(hub.connect(&room, &peer, &user, &role, secret.as_ref().map(Secret::as_str), conn(id)?)?)
            }
            Op::Reattach { peer, user, role, conn: id, .. } => Reply::Reattached(hub.reattach(&room, &peer, &user, &role, conn(id)?)?.into()),
            Op::Join { peer, conn, name, data, ok, .. } => {
                if let Some(user) = hub.user_of(&room, &peer) {
                    if let Err(wait) = self.limits.joins.take(&(room.clone(), user.clone()), Instant::now()) {
                        tracing::info!(peer = ?peer, room = ?room, user = ?user, "join refused: too many joins of one user in the room");
                        return Err(quota::too_many_joins(self.limits.joins_per_min, wait).into());
                    }
                }
                // A new peer is in the mirror before anyone hears of it (so a new owner
                // knows it), and the fenced write proves no other node took the room.
                match hub.join_image(&room, &peer, conn, &name, &data) {
                    Some(p) => self.fenced(&room, &token, &[super::image::place_field(&p)]).await?,
                    None => self.confirm(&room, &token).await?,
                }
                let fx = hub.join(&room, &peer, conn, &name, &data, Text::from(ok))?;
                self.changed(&room, &peer, fx);
                Reply::Done
            }
            Op::IsJoined { peer, conn, .. } => Reply::Bool(hub.is_joined(&room, &peer, conn)),
            Op::Leave { peer, conn, .. } => {
                let fx = hub.leave(&room, &peer, conn)?;
                self.changed(&room, &peer, fx);
                Reply::Done
            }
            Op::Disconnected { peer, conn, hold, .. } => {
                let fx = hub.disconnected(&room, &peer, conn, hold);
                self.changed(&room, &peer, fx);
                Reply::Done
            }
            Op::BeginEnd { requester, lock, .. } => {
                self.confirm(&room, &token).await?;
                // The room's events so far are written before its end is (the end's
                // close may be written by another node): webhooks keep their order.
                if let Err(e) = self.store.flush().await {
                    tracing::warn!(room = ?room, error = %e, "could not write a room's events before its end");
                }
                Reply::Ticket(hub.begin_end_room(&room, requester.as_ref().map(|(p, c)| (p.as_str(), *c)), lock)?)
            }
            Op::AbortEnd { ticket, .. } => {
                hub.abort_end_room(&room, &ticket);
                Reply::Done
            }
            Op::FinishEnd { requested_by, reason, .. } => {
                // The end (and its lock) is stored: the lock is in memory before the room
                // empties, as on one node.
                self.refresh_lock(&room).await;
                let (requester, notices) = hub.finish_end_room(&room, requested_by.as_deref(), &reason);
                self.mark_dirty(&room);
                // The notices are written (on whichever node serves each peer) before the
                // caller answers the requester, or the flush bound passed.
                let _ = tokio::time::timeout(self.t.flush, notices.wait()).await;
                let (first_us, last_us) = notices.times_us();
                let figures = (notices.queued(), notices.written(), first_us, last_us);
                Reply::Finished(requester.map(|c| (c.id, c.remote_node().map_or_else(|| self.me.to_string(), |n| n.to_string()))), figures)
            }
            Op::RemovePeer { requester, target, reason, .. } => {
                let fx = hub.remove_peer(&room, requester.as_ref().map(|(p, c)| (p.as_str(), *c)), &target, &reason)?;
                self.changed(&room, &target, fx);
                Reply::Done
            }
            Op::FindPeer { peer, conn, id, params, .. } => Reply::Text(hub.find_peer(&room, &peer, conn, &id, &params)?.to_string()),
            Op::PeerIterNext { peer, conn, id, iterator, limit, .. } => {
                Reply::Text(hub.peer_iter_next(&room, &peer, conn, &id, &iterator, limit)?.to_string())
            }
            Op::GetPeer { peer, conn, id, target, .. } => Reply::Text(hub.get_peer(&room, &peer, conn, &id, &target)?.to_string()),
            Op::PeersWithRole { role, .. } => Reply::Peers(hub.peers_with_role(&room, &role)),
            Op::ActiveRoom { .. } => Reply::Active(hub.active_room(&room)),
            Op::LockStored { .. } => {
                self.refresh_lock(&room).await;
                Reply::Done
            }
        };
        Ok(reply)
    }

    /// Sets the room's lock in memory from the store. One refresh at a time, each after
    /// the change that asked for it was stored: the last to run reads the last change,
    /// so memory ends as the store ends however lock changes race (one node has the
    /// same promise from SQLite's commit order). If Redis cannot be read the flag stays
    /// (the next owner reads it when it takes the room).
    async fn refresh_lock(self: &Arc<Self>, room: &str) {
        let _one = self.lock_refresh.lock().await;
        match self.store.is_disabled(room).await {
            Ok(locked) => self.hub.set_locked(room, locked),
            Err(e) => tracing::warn!(room = ?room, error = %e, "could not read a room's lock after a change"),
        }
    }

    /// Checks with Redis that the lease is still `token` (renewing it); gives the room
    /// up when it is not.
    async fn confirm(self: &Arc<Self>, room: &str, token: &str) -> Result<(), Fail> {
        let sent = Instant::now();
        match self.leases.check(room, token).await {
            Ok(true) => {
                if let Some(o) = guard(&self.owned).get_mut(room).filter(|o| o.token == token) {
                    o.valid_until = self.valid_from(sent);
                }
                Ok(())
            }
            Ok(false) => {
                self.lose(room);
                Err(Fail::NotOwner)
            }
            Err(e) => Err(Fail::Err(e)),
        }
    }

    /// Writes `fields` of the room's mirror now, fenced by `token`; gives the room up
    /// when the lease is not ours.
    async fn fenced(self: &Arc<Self>, room: &str, token: &str, fields: &[super::image::Field]) -> Result<(), Fail> {
        match self.leases.write(room, token, fields, false, false).await {
            Ok(true) => Ok(()),
            Ok(false) => {
                self.lose(room);
                Err(Fail::NotOwner)
            }
            Err(e) => Err(Fail::Err(e)),
        }
    }

    /// Carries out a change's effects (its events went to the hub's sink: the session
    /// history) and schedules the mirror write.
    pub(super) fn changed(self: &Arc<Self>, room: &str, peer: &str, fx: Effects) {
        if let Some(gen) = fx.hold {
            tracing::info!(peer = ?peer, room = ?room, "peer dropped: holding its place for the reconnect window");
            self.hold(room.to_owned(), peer.to_owned(), gen);
        }
        if let Some(token) = fx.batch {
            self.flush_batches(room.to_owned(), token);
        }
        self.mark_peer(room, peer);
    }

    /// A large room's joins and leaves go out once per tick, as on one node (`app`),
    /// while this node owns the room.
    fn flush_batches(self: &Arc<Self>, room: String, token: u64) {
        let me = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(me.t.batch) => {}
                    _ = me.stop.cancelled() => return,
                }
                let Some(batch) = me.owned_token(&room).and_then(|_| me.hub.take_batch(&room, token)) else { return };
                let frame = (!batch.is_empty()).then(|| batch.encode());
                if !me.hub.send_batch(&room, token, frame) {
                    return;
                }
            }
        });
    }

    /// After the reconnect window, a held place that was not reclaimed is given up (if
    /// this node still owns the room; a new owner runs its own timers).
    fn hold(self: &Arc<Self>, room: String, peer: String, gen: u64) {
        let me = self.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = tokio::time::sleep(me.t.window) => {}
                _ = me.stop.cancelled() => return,
            }
            if me.owned_token(&room).is_some() {
                let fx = me.hub.hold_expired(&room, &peer, gen);
                me.changed(&room, &peer, fx);
            }
        });
    }

    /// Takes `room` over if nobody holds its lease: restores its mirror (every peer
    /// held), its lock, and an end that was stored but not carried out. Returns the
    /// token, or `None` when another node holds the lease.
    pub(super) async fn acquire(self: &Arc<Self>, room: &str) -> Result<Option<String>, Error> {
        let lock = guard(&self.acquiring).entry(room.to_owned()).or_default().clone();
        let _one = lock.lock().await;
        if let Some(t) = self.owned_token(room) {
            return Ok(Some(t));
        }
        let sent = Instant::now();
        let taken = match self.leases.acquire(room).await? {
            Acquired::Held(_) => return Ok(None),
            Acquired::Taken(t) => t,
        };
        let mut taken = taken;
        let mut image = super::image::from_fields(std::mem::take(&mut taken.fields));
        if let Some(s) = &image.session {
            match self.store.session_end(&s.id).await {
                Ok(Some((by, reason))) => {
                    tracing::info!(room = ?room, "the room's end was stored but not carried out: finishing it");
                    let notice = PeerLeaveRequest { requested_by: by, reason, room_end: true };
                    let ttl = crate::room::END_NOTICE_TTL.max(self.t.window);
                    image = image.ended(&notice, crate::clock::now_millis() + ttl.as_millis() as u64);
                }
                Ok(None) => {}
                Err(e) => {
                    // Give the lease back rather than serve a room whose end is unknown.
                    let _ = self.leases.write(room, &taken.token, &[], false, true).await;
                    return Err(e);
                }
            }
        }
        let held = image.peers.len();
        let holds = self.hub.restore(room, image, taken.locked);
        guard(&self.owned).insert(room.to_owned(), Owned { token: taken.token.clone(), valid_until: self.valid_from(sent) });
        guard(&self.owners).remove(room);
        for (peer, gen) in holds {
            self.hold(room.to_owned(), peer, gen);
        }
        self.mark_dirty(room);
        tracing::info!(room = ?room, lease = %taken.token, held, "took a room over");
        Ok(Some(taken.token))
    }

    /// The lease of `room` is lost: stop serving it at once, without telling anyone
    /// (its new owner holds every peer); this node's connections re-attach.
    pub(super) fn lose(self: &Arc<Self>, room: &str) {
        if guard(&self.owned).remove(room).is_none() {
            return;
        }
        tracing::warn!(room = ?room, "lost a room's lease: no longer serving it");
        self.hub.forget(room);
        self.edge.detach_all(Some(room));
        let me = self.clone();
        let room = room.to_owned();
        tokio::spawn(async move { me.reattach_room(room).await });
    }

    /// Writes the mirror of every room changed since the last write, fenced by this
    /// node's lease; a refused write means the lease is gone.
    pub(super) async fn mirror_writer(self: Arc<Self>) {
        loop {
            tokio::select! {
                _ = self.dirty_notify.notified() => {}
                _ = self.stop.cancelled() => return,
            }
            let rooms: Vec<(String, Dirty)> = guard(&self.dirty).drain().collect();
            for (room, what) in rooms {
                if !self.write_mirror(&room, what, false).await {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    /// Writes one room's mirror (and with `release` gives the lease up). False when it
    /// must be retried (Redis unreachable: the room is marked again).
    pub(super) async fn write_mirror(self: &Arc<Self>, room: &str, what: Dirty, release: bool) -> bool {
        let Some(token) = guard(&self.owned).get(room).map(|o| o.token.clone()) else { return true };
        let (fields, replace) = match &what {
            Dirty::All => (super::image::all_fields(&self.hub.image(room)), true),
            Dirty::Peers(p) => {
                let peers: Vec<String> = p.iter().cloned().collect();
                let (session, records) = self.hub.peer_images(room, &peers);
                (super::image::peer_fields(session, records), false)
            }
        };
        match self.leases.write(room, &token, &fields, replace, release).await {
            Ok(true) => true,
            Ok(false) => {
                self.lose(room);
                true
            }
            Err(_) => {
                match what {
                    Dirty::All => self.mark_dirty(room),
                    Dirty::Peers(p) => p.iter().for_each(|peer| self.mark_peer(room, peer)),
                }
                false
            }
        }
    }

    /// Gives up owned rooms nobody is in any more (after their mirror is written).
    pub(super) async fn release_idle(self: &Arc<Self>) {
        let idle: Vec<String> = {
            let owned = guard(&self.owned);
            owned.keys().filter(|r| !self.hub.has_room(r)).cloned().collect()
        };
        for room in idle {
            // The last write and the release are one fenced script.
            if self.write_mirror(&room, Dirty::All, true).await {
                let mut owned = guard(&self.owned);
                if !self.hub.has_room(&room) {
                    owned.remove(&room);
                    self.hub.forget(&room);
                    guard(&self.acquiring).remove(&room);
                    tracing::debug!(room = ?room, "released an empty room");
                }
            }
        }
    }

    /// Leaves the cluster gracefully; returns how many connections were closed.
    pub(super) async fn shutdown(self: &Arc<Self>) -> usize {
        self.closing.store(true, Ordering::Relaxed);
        let conns = self.edge.all();
        for c in &conns {
            c.send(crate::conn::Out::Close(crate::conn::Close::ShuttingDown));
        }
        let rooms: Vec<String> = guard(&self.owned).keys().cloned().collect();
        let writes = rooms.iter().map(|r| self.write_mirror(r, Dirty::All, true));
        let _ = tokio::time::timeout(self.t.call, futures_util::future::join_all(writes)).await;
        super::watch::leave(self).await;
        self.stop.cancel();
        tracing::info!(rooms = rooms.len(), connections = conns.len(), "left the cluster: rooms released for other nodes");
        conns.len()
    }
}
