//! The node's life in the cluster: the durability check at start, its pub/sub channel
//! (reconnected and resubscribed by itself), and every third of the lease:
//! - on a thread of its own with its own Redis connection (so a node busy fanning out
//!   never lets its leases lapse): the heartbeat (`hms:node:<id>` with stats, TTL = the
//!   lease) and the renewal of the leases of the rooms it owns;
//! - on the server's runtime: giving up rooms whose lease is lost, letting empty rooms
//!   go, holding the peers of nodes whose heartbeat expired, and re-attaching this
//!   node's connections whose room changed owner.

use super::wire::{Batch, Item};
use super::{guard, keys, Inner};
use crate::conn::{Fanout, Out};
use crate::frame::Text;
use crate::error::Error;
use crate::redis_link::RedisLink;
use futures_util::StreamExt;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// Refuses (or, when allowed, warns about) a Redis that does not fsync every write: the
/// lock's promise ("locked once end-room answered") needs `appendonly yes` and
/// `appendfsync always`. A Redis that hides `CONFIG` (some managed services) is
/// warned about: the operator must vouch for it.
pub(super) async fn check_durability(redis: &RedisLink, allow: bool) -> Result<(), Error> {
    let get = |k: &'static str| async move { redis.cmd::<Vec<String>>(redis::cmd("CONFIG").arg("GET").arg(k)).await.map(|v| v.get(1).cloned().unwrap_or_default()) };
    let (aof, fsync) = match (get("appendonly").await, get("appendfsync").await) {
        (Ok(a), Ok(f)) => (a, f),
        (Err(e), _) | (_, Err(e)) => {
            tracing::warn!(error = %e, "cannot read Redis' persistence settings (CONFIG GET refused?): make sure it runs with appendonly yes and appendfsync always");
            return Ok(());
        }
    };
    if aof == "yes" && fsync == "always" {
        return Ok(());
    }
    let msg = format!(
        "Redis runs with appendonly {aof} and appendfsync {fsync}: a room lock acknowledged just before Redis crashes could be lost; \
         run it with --appendonly yes --appendfsync always (or set cluster.allow_non_durable_redis = true to accept that)"
    );
    if allow {
        tracing::warn!("{msg}");
        Ok(())
    } else {
        Err(Error::Config(msg))
    }
}

/// Registers the node and starts its tasks.
pub(super) async fn start(inner: &Arc<Inner>, redis: &RedisLink) -> Result<(), Error> {
    // Subscribed before anyone can route a call here.
    let (ready_tx, ready_rx) = oneshot::channel();
    tokio::spawn(inner.clone().listen(redis.client().clone(), ready_tx));
    match tokio::time::timeout(redis.deadline() * 3, ready_rx).await {
        Ok(Ok(())) => {}
        _ => return Err(Error::Config("could not subscribe to this node's Redis channel".into())),
    }
    inner.heartbeat(redis).await?;
    redis.cmd::<()>(redis::cmd("SADD").arg(keys::NODES).arg(&*inner.me)).await?;
    let (me, client, deadline) = (inner.clone(), redis.client().clone(), redis.deadline());
    std::thread::Builder::new()
        .name("hms-lease".into())
        .spawn(move || match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(rt) => rt.block_on(me.renewer(client, deadline)),
            Err(e) => tracing::error!(error = %e, "could not start the lease thread: leases will lapse"),
        })
        .map_err(|e| Error::Config(format!("starting the lease thread: {e}")))?;
    tokio::spawn(inner.clone().ticker());
    tokio::spawn(inner.clone().mirror_writer());
    Ok(())
}

/// Whether `node`'s heartbeat is current (a node seen alive within the last tick is
/// taken as alive: one check per tick, not per call).
pub(super) async fn alive(inner: &Inner, node: &str) -> Result<bool, Error> {
    if guard(&inner.live).get(node).is_some_and(|at| at.elapsed() < inner.t.tick) {
        return Ok(true);
    }
    let alive = inner.leases.redis.cmd::<bool>(redis::cmd("EXISTS").arg(keys::node(node))).await?;
    let mut live = guard(&inner.live);
    if alive {
        live.insert(node.to_owned(), Instant::now());
    } else {
        live.remove(node);
    }
    Ok(alive)
}

/// Leaves the cluster: the heartbeat key goes at once, so other nodes hold this node's
/// peers at their next tick rather than after the lease.
pub(super) async fn leave(inner: &Inner) {
    let mut p = redis::pipe();
    p.cmd("DEL").arg(keys::node(&inner.me)).ignore().cmd("SREM").arg(keys::NODES).arg(&*inner.me).ignore();
    if let Err(e) = inner.leases.redis.pipe::<()>(&p).await {
        tracing::warn!(error = %e, "could not remove this node from Redis; its heartbeat expires by itself");
    }
}

impl Inner {
    /// Publishes this node's heartbeat and stats through `redis`.
    async fn heartbeat(&self, redis: &RedisLink) -> Result<(), Error> {
        let stats = serde_json::json!({
            "id": &*self.me,
            "rooms": guard(&self.owned).len(),
            "peers": self.edge.len(),
            "updated_at": crate::clock::now_millis(),
        });
        let ttl = self.t.lease.as_millis() as u64;
        redis.cmd::<()>(redis::cmd("SET").arg(keys::node(&self.me)).arg(stats.to_string()).arg("PX").arg(ttl)).await
    }

    /// The node's channel: decodes each batch and acts on it. Reconnects (with backoff)
    /// when Redis goes away; what was published meanwhile is lost, and the ticker
    /// repairs what depends on it.
    async fn listen(self: Arc<Self>, client: redis::Client, ready: oneshot::Sender<()>) {
        let mut ready = Some(ready);
        let channel = keys::channel(&self.me);
        let mut backoff = Duration::from_millis(100);
        loop {
            let sub = async {
                let mut ps = client.get_async_pubsub().await?;
                ps.subscribe(&channel).await?;
                Ok::<_, redis::RedisError>(ps)
            };
            let ps = tokio::select! {
                r = tokio::time::timeout(self.leases.redis.deadline() * 2, sub) => r,
                _ = self.stop.cancelled() => return,
            };
            match ps {
                Ok(Ok(ps)) => {
                    backoff = Duration::from_millis(100);
                    if let Some(r) = ready.take() {
                        let _ = r.send(());
                    } else {
                        tracing::info!("reconnected to this node's Redis channel");
                    }
                    let mut stream = ps.into_on_message();
                    loop {
                        let msg = tokio::select! {
                            m = stream.next() => m,
                            _ = self.stop.cancelled() => return,
                        };
                        let Some(msg) = msg else { break };
                        match serde_json::from_slice::<Batch>(msg.get_payload_bytes()) {
                            Ok(batch) => self.on_batch(batch),
                            Err(e) => tracing::warn!(error = %e, "undecodable message on this node's channel"),
                        }
                    }
                    tracing::warn!("lost this node's Redis channel; reconnecting");
                }
                _ => tracing::debug!("cannot subscribe to this node's Redis channel yet"),
            }
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = self.stop.cancelled() => return,
            }
            backoff = (backoff * 2).min(Duration::from_secs(1));
        }
    }

    /// One batch from node `batch.from`. Frames sent with an ack are written through one
    /// local fan-out per batch; the acknowledgement goes back once they all were (or
    /// their connections ended), at most the end-room flush bound later.
    fn on_batch(self: &Arc<Self>, batch: Batch) {
        let from: Arc<str> = batch.from.into();
        let mut gone = Vec::new();
        let mut written = Vec::new();
        let fanout = Fanout::new();
        for item in batch.items {
            match item {
                Item::Text { conns, text } => {
                    let text = Text::from(text);
                    for conn in conns {
                        self.edge.deliver(conn, Out::Text(text.clone()));
                    }
                }
                Item::TextAck { conns, text } => {
                    let text = Text::from(text);
                    for (conn, ack) in conns {
                        if self.edge.deliver(conn, Out::TextAck(text.clone(), fanout.ack())) {
                            written.push(ack);
                        } else {
                            // Nothing to wait for: the connection is gone.
                            gone.push(ack);
                        }
                    }
                }
                Item::Close { conns, why } => {
                    for conn in conns {
                        self.edge.deliver(conn, Out::Close(why));
                    }
                }
                Item::Call { id, deadline_ms, op } => {
                    let (me, from) = (self.clone(), from.clone());
                    tokio::spawn(async move {
                        // The caller gave up: running it now could change state unseen.
                        if crate::clock::now_millis() > deadline_ms {
                            return;
                        }
                        let answer = me.exec(op, &from).await;
                        me.relay.send(&from, Item::Answer { id, answer });
                    });
                }
                Item::Answer { id, answer } => self.relay.answered(id, answer),
                Item::Acks { ids } => self.relay.acked(&ids),
            }
        }
        fanout.seal();
        if !gone.is_empty() {
            self.relay.send(&from, Item::Acks { ids: gone });
        }
        if !written.is_empty() {
            let (me, flush) = (self.clone(), self.t.flush);
            tokio::spawn(async move {
                let _ = tokio::time::timeout(flush, fanout.wait()).await;
                me.relay.send(&from, Item::Acks { ids: written });
            });
        }
    }

    /// The lease thread: heartbeat and renewals every third of the lease, over its own
    /// connection; what it finds is handed to [`Inner::ticker`].
    async fn renewer(self: Arc<Self>, client: redis::Client, deadline: Duration) {
        let link = loop {
            match RedisLink::from_client(client.clone(), deadline).await {
                Ok(l) => break l,
                Err(e) => tracing::warn!(error = %e, "the lease thread cannot reach Redis yet"),
            }
            tokio::select! {
                _ = tokio::time::sleep(self.t.tick) => {}
                _ = self.stop.cancelled() => return,
            }
        };
        let leases = super::lease::Leases { redis: link.clone(), ..self.leases.clone() };
        let mut last_beat = Instant::now();
        let mut t = self.interval();
        while self.next_tick(&mut t).await {
            match self.heartbeat(&link).await {
                Ok(()) => {
                    if last_beat.elapsed() >= self.t.lease {
                        self.lapsed.store(true, Ordering::Relaxed);
                    }
                    last_beat = Instant::now();
                }
                Err(e) => tracing::warn!(error = %e, "heartbeat failed"),
            }
            let rooms: Vec<(String, String)> = guard(&self.owned).iter().map(|(r, o)| (r.clone(), o.token.clone())).collect();
            let sent = Instant::now();
            match leases.renew(&rooms).await {
                Ok(ours) => {
                    let mut lost = Vec::new();
                    let mut owned = guard(&self.owned);
                    for ((room, token), ok) in rooms.into_iter().zip(ours) {
                        match owned.get_mut(&room).filter(|o| o.token == token) {
                            Some(o) if ok => o.valid_until = self.valid_from(sent),
                            Some(_) => lost.push(room),
                            None => {}
                        }
                    }
                    drop(owned);
                    guard(&self.lost).extend(lost);
                }
                Err(e) => tracing::warn!(error = %e, rooms = rooms.len(), "could not renew the leases"),
            }
        }
    }

    /// A tick every third of the lease (late ticks are not made up).
    fn interval(&self) -> tokio::time::Interval {
        let mut t = tokio::time::interval(self.t.tick);
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        t
    }

    /// Waits for the next tick (skipping ticks while the node is closing); false once it
    /// has stopped.
    async fn next_tick(&self, t: &mut tokio::time::Interval) -> bool {
        loop {
            tokio::select! {
                _ = t.tick() => {}
                _ = self.stop.cancelled() => return false,
            }
            if !self.closing.load(Ordering::Relaxed) {
                return true;
            }
        }
    }

    /// Every third of the lease, on the server's runtime: see the module doc.
    async fn ticker(self: Arc<Self>) {
        let mut t = self.interval();
        while self.next_tick(&mut t).await {
            if self.lapsed.swap(false, Ordering::Relaxed) {
                // Other nodes may have taken this one for dead and held its peers:
                // every connection re-attaches (under new ids).
                tracing::warn!("this node's heartbeat had lapsed: re-attaching every connection");
                self.edge.detach_all(None);
            }
            let lost: Vec<String> = std::mem::take(&mut *guard(&self.lost));
            // Rooms another node holds now, and rooms whose validity ran out while
            // Redis could not be reached.
            let expired: Vec<String> = guard(&self.owned).iter().filter(|(_, o)| o.valid_until <= Instant::now()).map(|(r, _)| r.clone()).collect();
            for room in lost.into_iter().chain(expired) {
                self.lose(&room);
            }
            self.release_idle().await;
            self.hold_dead_edges().await;
            self.check_attachments().await;
        }
    }

    /// Peers served by nodes whose heartbeat expired are held (their places wait for a
    /// reconnect through another node).
    async fn hold_dead_edges(self: &Arc<Self>) {
        let nodes: Vec<Arc<str>> = guard(&self.edges).iter().cloned().collect();
        if nodes.is_empty() {
            return;
        }
        let mut p = redis::pipe();
        for n in &nodes {
            p.cmd("EXISTS").arg(keys::node(n));
        }
        let Ok(alive) = self.leases.redis.pipe::<Vec<bool>>(&p).await else { return };
        for (node, alive) in nodes.into_iter().zip(alive) {
            if alive {
                continue;
            }
            guard(&self.live).remove(&*node);
            guard(&self.edges).remove(&node);
            self.relay.forget(&node);
            let conns = self.hub.conns_of_node(&node);
            tracing::warn!(node = %node, peers = conns.len(), "a node's heartbeat expired: holding its peers for the reconnect window");
            for (room, peer, conn) in conns {
                if self.owned_token(&room).is_some() {
                    let fx = self.hub.disconnected(&room, &peer, conn, true);
                    self.changed(&room, &peer, fx);
                }
            }
        }
    }

    /// This node's connections whose room has a new owner (the old one died, lost its
    /// lease, or this node took the room back) re-attach to it.
    async fn check_attachments(self: &Arc<Self>) {
        let rooms: HashMap<String, Vec<Option<String>>> = self.edge.rooms();
        // Cached owners of rooms this node has no connection in any more are dropped.
        guard(&self.owners).retain(|r, _| rooms.contains_key(r));
        if rooms.is_empty() {
            return;
        }
        let names: Vec<String> = rooms.keys().cloned().collect();
        let Ok(owners) = self.leases.owners(&names).await else { return };
        let mut stale = HashSet::new();
        for (room, owner) in names.into_iter().zip(owners) {
            let attached = &rooms[&room];
            let current_owner_ok = owner.as_ref().is_some_and(|o| attached.iter().all(|a| a.as_ref() == Some(o)));
            if !current_owner_ok {
                stale.insert(room);
            }
        }
        for room in stale {
            guard(&self.owners).remove(&room);
            let me = self.clone();
            tokio::spawn(async move { me.reattach_room(room).await });
        }
    }
}
