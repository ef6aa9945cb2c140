//! The message bus between nodes: one pub/sub channel per node, one ordered outgoing
//! queue per peer node (frames for its connections, calls, answers, acks), batched into
//! one publish per drain. Calls wait for their answer with a deadline; frames sent with
//! an ack resolve when the node serving the connection has written them.

use super::keys;
use super::wire::{Answer, Batch, Item, Op};
use crate::conn::{Ack, Out, RemoteSink};
use crate::frame::Text;
use crate::error::Error;
use crate::redis_link::RedisLink;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

/// Items queued for one node before the relay refuses more (the node is not keeping up
/// or Redis is down): memory stays bounded.
const QUEUE: usize = 65_536;
/// Queued entries in one publish (before merging).
const MAX_BATCH: usize = 1024;
/// Ack waiters older than this are dropped (their frame's node died).
const ACK_TTL: Duration = Duration::from_secs(60);

fn guard<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// What waits in a node's queue: frames keep their shared text, so that one frame sent
/// to many connections of a node is merged into one item of the publish; a `peer-list`
/// is built here, outside the room's lock, as a local writer would.
enum Queued {
    Text(u64, Text),
    TextAck(u64, Text, u64),
    Build(u64, Box<dyn FnOnce() -> Text + Send>),
    Close(u64, crate::conn::Close),
    Other(Item),
}

/// Whether two frames share one buffer (the same frame fanned out).
fn same(a: &Text, b: &Text) -> bool {
    a.as_str().as_ptr() == b.as_str().as_ptr() && a.len() == b.len()
}

/// Turns queued entries into items, merging runs of the same frame (or close).
fn merge(queued: Vec<Queued>) -> Vec<Item> {
    let mut out: Vec<Item> = Vec::new();
    let mut last_text: Option<Text> = None;
    for q in queued {
        let shared = |t: &Text| last_text.as_ref().is_some_and(|l| same(l, t));
        match (q, out.last_mut()) {
            (Queued::Text(c, t), Some(Item::Text { conns, .. })) if shared(&t) => conns.push(c),
            (Queued::TextAck(c, t, a), Some(Item::TextAck { conns, .. })) if shared(&t) => conns.push((c, a)),
            (Queued::Close(c, why), Some(Item::Close { conns, why: w })) if *w == why => conns.push(c),
            (Queued::Text(c, t), _) => {
                out.push(Item::Text { conns: vec![c], text: t.to_string() });
                last_text = Some(t);
            }
            (Queued::TextAck(c, t, a), _) => {
                out.push(Item::TextAck { conns: vec![(c, a)], text: t.to_string() });
                last_text = Some(t);
            }
            (Queued::Build(c, build), _) => {
                out.push(Item::Text { conns: vec![c], text: build().to_string() });
                last_text = None;
            }
            (Queued::Close(c, why), _) => out.push(Item::Close { conns: vec![c], why }),
            (Queued::Other(i), _) => {
                out.push(i);
                last_text = None;
            }
        }
    }
    out
}

/// The outgoing side of the bus, and the calls and acks waiting for an answer.
pub struct Relay {
    me: String,
    redis: RedisLink,
    queues: Mutex<HashMap<Arc<str>, mpsc::Sender<Queued>>>,
    next: AtomicU64,
    calls: Mutex<HashMap<u64, oneshot::Sender<Answer>>>,
    /// Frames of a fan-out sent to other nodes, until their node says they were written.
    acks: Mutex<HashMap<u64, (Instant, Ack)>>,
    stop: CancellationToken,
}

/// Frames for the connections of one node, as the rooms' [`RemoteSink`].
#[derive(Debug)]
pub struct NodeSink {
    relay: Arc<Relay>,
    node: Arc<str>,
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay").field("me", &self.me).finish()
    }
}

impl RemoteSink for NodeSink {
    fn push(&self, conn: u64, out: Out) -> bool {
        let q = match out {
            Out::Text(t) => Queued::Text(conn, t),
            Out::TextAck(t, done) => {
                let ack = self.relay.next.fetch_add(1, Ordering::Relaxed);
                guard(&self.relay.acks).insert(ack, (Instant::now(), done));
                Queued::TextAck(conn, t, ack)
            }
            Out::Build(build) => Queued::Build(conn, build),
            Out::Close(why) => Queued::Close(conn, why),
        };
        self.relay.queue(&self.node, q)
    }
}

impl Relay {
    /// The relay of node `me`.
    pub fn new(me: String, redis: RedisLink, stop: CancellationToken) -> Arc<Relay> {
        Arc::new(Relay { me, redis, queues: Mutex::default(), next: AtomicU64::new(1), calls: Mutex::default(), acks: Mutex::default(), stop })
    }

    /// The sink for connections served by `node`.
    pub fn sink(self: &Arc<Self>, node: Arc<str>) -> Arc<dyn RemoteSink> {
        Arc::new(NodeSink { relay: self.clone(), node })
    }

    /// Queues `item` for `node` without waiting; false when its queue is full.
    pub fn send(self: &Arc<Self>, node: &Arc<str>, item: Item) -> bool {
        self.queue(node, Queued::Other(item))
    }

    fn queue(self: &Arc<Self>, node: &Arc<str>, item: Queued) -> bool {
        let tx = {
            let mut q = guard(&self.queues);
            match q.get(node) {
                Some(tx) if !tx.is_closed() => tx.clone(),
                _ => {
                    let (tx, rx) = mpsc::channel(QUEUE);
                    q.insert(node.clone(), tx.clone());
                    tokio::spawn(self.clone().pump(node.clone(), rx));
                    tx
                }
            }
        };
        match tx.try_send(item) {
            Ok(()) => true,
            Err(_) => {
                tracing::warn!(node = %node, "relay queue full: an item for another node is dropped");
                false
            }
        }
    }

    /// Drains one node's queue into publishes on its channel, in order. A publish that
    /// fails is retried briefly (Redis restarting), then dropped: calls time out and the
    /// watcher re-attaches what was lost.
    async fn pump(self: Arc<Self>, node: Arc<str>, mut rx: mpsc::Receiver<Queued>) {
        let channel = keys::channel(&node);
        loop {
            let first = tokio::select! {
                i = rx.recv() => match i { Some(i) => i, None => return },
                _ = self.stop.cancelled() => return,
            };
            let mut items = vec![first];
            while items.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(i) => items.push(i),
                    Err(_) => break,
                }
            }
            let payload = match serde_json::to_vec(&Batch { from: self.me.clone(), items: merge(items) }) {
                Ok(p) => p,
                Err(e) => {
                    tracing::error!(error = %e, "relay: could not encode a batch");
                    continue;
                }
            };
            let mut tries = 0;
            while let Err(e) = self.redis.cmd::<()>(redis::cmd("PUBLISH").arg(&channel).arg(&payload)).await {
                tries += 1;
                if tries >= 3 || self.stop.is_cancelled() {
                    tracing::warn!(node = %node, error = %e, "relay: a batch for another node was lost");
                    break;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }

    /// Forgets a dead node's queue.
    pub fn forget(&self, node: &str) {
        guard(&self.queues).remove(node);
    }

    /// Calls `op` on `node` and waits at most `deadline` for the answer.
    pub async fn call(self: &Arc<Self>, node: &Arc<str>, op: Op, deadline: Duration) -> Result<Answer, Error> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        guard(&self.calls).insert(id, tx);
        let deadline_ms = crate::clock::now_millis() + deadline.as_millis() as u64;
        let unavailable = || Error::Unavailable("the node that serves this room did not answer in time; retry later".into());
        if !self.send(node, Item::Call { id, deadline_ms, op }) {
            guard(&self.calls).remove(&id);
            return Err(unavailable());
        }
        match tokio::time::timeout(deadline, rx).await {
            Ok(Ok(answer)) => Ok(answer),
            _ => {
                guard(&self.calls).remove(&id);
                tracing::warn!(node = %node, "a call to another node timed out");
                Err(unavailable())
            }
        }
    }

    /// An answer to a call of ours arrived.
    pub fn answered(&self, id: u64, answer: Answer) {
        if let Some(tx) = guard(&self.calls).remove(&id) {
            let _ = tx.send(answer);
        }
    }

    /// Frames we sent with an ack were written (their fan-out counts them written as
    /// the acknowledgement arrives).
    pub fn acked(&self, ids: &[u64]) {
        let done: Vec<Ack> = {
            let mut acks = guard(&self.acks);
            let done = ids.iter().filter_map(|id| acks.remove(id)).map(|(_, a)| a).collect();
            // Frames whose node died never hear back: given up.
            let now = Instant::now();
            acks.retain(|_, (at, _)| now.duration_since(*at) < ACK_TTL);
            done
        };
        done.into_iter().for_each(Ack::written);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conn::Close;

    #[test]
    fn one_frame_for_many_connections_travels_once_and_order_is_kept() {
        let a = Text::from("a".to_owned());
        let b = Text::from("b".to_owned());
        let same_text_other_buffer = Text::from("a".to_owned());
        let items = merge(vec![
            Queued::Text(1, a.clone()),
            Queued::Text(2, a.clone()),
            Queued::Text(3, b.clone()),
            Queued::Text(4, a.clone()),
            Queued::Text(5, same_text_other_buffer),
            Queued::TextAck(1, b.clone(), 10),
            Queued::TextAck(2, b, 11),
            Queued::Build(6, Box::new(|| Text::from("built".to_owned()))),
            Queued::Close(1, Close::RoomEnded),
            Queued::Close(2, Close::RoomEnded),
            Queued::Close(3, Close::Removed),
            Queued::Other(Item::Acks { ids: vec![7] }),
        ]);
        let shape: Vec<String> = items
            .iter()
            .map(|i| match i {
                Item::Text { conns, text } => format!("T{text}{conns:?}"),
                Item::TextAck { conns, text } => format!("A{text}{conns:?}"),
                Item::Close { conns, why } => format!("C{why:?}{conns:?}"),
                Item::Acks { ids } => format!("K{ids:?}"),
                _ => "?".into(),
            })
            .collect();
        assert_eq!(shape, ["Ta[1, 2]", "Tb[3]", "Ta[4]", "Ta[5]", "Ab[(1, 10), (2, 11)]", "Tbuilt[6]", "CRoomEnded[1, 2]", "CRemoved[3]", "K[7]"]);
    }
}
