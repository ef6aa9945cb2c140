//! The rooms' side of a connection: a handle that queues frames for one peer without
//! waiting. This is the fan-out seam: the rooms only ever call [`ConnHandle::send`], so
//! a delivery that crosses to another server node can sit beside the in-process queue
//! without the rooms knowing.

use crate::frame::Text;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;

/// Why a connection is closed. The transport picks the WebSocket close code for each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Close {
    /// The peer sent `leave`.
    Left,
    /// Another peer or a back end removed the peer.
    Removed,
    /// The room was ended.
    RoomEnded,
    /// A newer connection of the same peer took over.
    Replaced,
    /// The server is shutting down.
    ShuttingDown,
    /// The connection task is ending normally.
    Done,
    /// No frame from the peer within the idle timeout.
    IdleTimeout,
    /// The peer sent a frame over the size limit.
    FrameTooLarge,
    /// The peer kept sending over the frame rate limit.
    RateLimited,
}

/// Something for a connection's writer to do.
pub enum Out {
    /// Send a text frame (already serialized, shared by every receiver).
    Text(Text),
    /// Send a text frame and report to its fan-out when it has been written and flushed.
    TextAck(Text, Ack),
    /// Build a frame meant for this connection alone (a `peer-list`) and send it. The
    /// rooms queue it under their lock, in order with everything else, and the writer
    /// builds it outside any lock.
    Build(Box<dyn FnOnce() -> Text + Send>),
    /// Send a close frame for this reason, then stop.
    Close(Close),
}

impl Out {
    /// The bytes this holds in a queue: a text frame's length. A `Build` is built by the
    /// writer when it gets there (its text never waits in the queue); a close is a few bytes.
    fn bytes(&self) -> usize {
        match self {
            Out::Text(t) | Out::TextAck(t, _) => t.len(),
            Out::Build(_) | Out::Close(_) => 0,
        }
    }
}

/// Bytes queued for one connection, shared by its handles and its outbox.
#[derive(Debug)]
struct Bytes {
    queued: AtomicUsize,
    max: usize,
}

impl std::fmt::Debug for Out {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Out::Text(t) => f.debug_tuple("Text").field(t).finish(),
            Out::TextAck(t, _) => f.debug_tuple("TextAck").field(t).finish(),
            Out::Build(_) => f.write_str("Build"),
            Out::Close(c) => f.debug_tuple("Close").field(c).finish(),
        }
    }
}

/// One fan-out's writes (an end-room's notices to every peer): how many frames were
/// queued, how many written, and when the first and the last were written and flushed.
/// One shared counter rather than a channel per peer: a fan-out to 10,000 peers costs no
/// allocation per peer for it.
#[derive(Debug, Default)]
pub struct Fanout {
    queued: AtomicUsize,
    /// Acks not finished yet, plus one until [`Fanout::seal`].
    pending: AtomicUsize,
    written: AtomicUsize,
    first_us: AtomicU64,
    last_us: AtomicU64,
    all_done: Notify,
}

impl Fanout {
    /// A fan-out about to be queued.
    pub fn new() -> Arc<Self> {
        let f = Fanout::default();
        f.pending.store(1, Ordering::Relaxed);
        Arc::new(f)
    }

    /// The ack for one more frame of this fan-out.
    pub fn ack(self: &Arc<Self>) -> Ack {
        self.pending.fetch_add(1, Ordering::Relaxed);
        Ack { fanout: self.clone(), written: false }
    }

    /// Counts a frame that was queued (its [`Ack`] went into a queue).
    pub fn queued_one(&self) {
        self.queued.fetch_add(1, Ordering::Relaxed);
    }

    /// Every frame is queued: [`Fanout::wait`] can now finish.
    pub fn seal(&self) {
        self.finish_one();
    }

    fn finish_one(&self) {
        if self.pending.fetch_sub(1, Ordering::AcqRel) == 1 {
            // Stores a permit if nobody waits yet, so `wait` cannot miss it.
            self.all_done.notify_one();
        }
    }

    /// Resolves once every queued frame was written or given up (its connection ended).
    pub async fn wait(&self) {
        if self.pending.load(Ordering::Acquire) > 0 {
            self.all_done.notified().await;
        }
    }

    /// Frames queued.
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    /// Frames written and flushed so far.
    pub fn written(&self) -> usize {
        self.written.load(Ordering::Relaxed)
    }

    /// When the first and the last frame were written and flushed, µs since the Unix
    /// epoch (0 = none yet).
    pub fn times_us(&self) -> (u64, u64) {
        (self.first_us.load(Ordering::Relaxed), self.last_us.load(Ordering::Relaxed))
    }
}

/// One frame's share of a [`Fanout`]: finished when dropped, as written if
/// [`Ack::written`] was called, else as given up (its connection ended first).
#[derive(Debug)]
pub struct Ack {
    fanout: Arc<Fanout>,
    written: bool,
}

impl Ack {
    /// The frame was written and flushed.
    pub fn written(mut self) {
        self.written = true;
    }
}

impl Drop for Ack {
    fn drop(&mut self) {
        if self.written {
            let now = crate::clock::now_micros();
            let _ = self.fanout.first_us.compare_exchange(0, now, Ordering::Relaxed, Ordering::Relaxed);
            self.fanout.last_us.fetch_max(now, Ordering::Relaxed);
            self.fanout.written.fetch_add(1, Ordering::Relaxed);
        }
        self.fanout.finish_one();
    }
}

/// Where a connection's frames go.
#[derive(Debug, Clone)]
enum Delivery {
    /// A queue, bounded in frames and in bytes, drained by the connection's writer task
    /// in this process. `kill` fires when the server gives up on a peer that cannot keep up.
    Queue { tx: mpsc::Sender<Out>, kill: CancellationToken, bytes: Arc<Bytes> },
}

/// The receiving end of a [`ConnHandle::queue`]: what the connection's writer drains, and
/// the token that fires when the server gives up on the peer.
#[derive(Debug)]
pub struct Outbox {
    /// Frames to write, in order. Read it through [`Outbox::recv`] and
    /// [`Outbox::try_recv`], which give the bytes back to the queue's byte bound (tests
    /// of queues without a byte bound may read it directly).
    pub rx: mpsc::Receiver<Out>,
    /// Fired when the queue overflowed: the peer is cut off.
    pub kill: CancellationToken,
    bytes: Arc<Bytes>,
}

impl Outbox {
    fn taken(&self, out: Out) -> Out {
        self.bytes.queued.fetch_sub(out.bytes(), Ordering::Relaxed);
        out
    }

    /// The next frame to write; `None` once every handle is gone.
    pub async fn recv(&mut self) -> Option<Out> {
        let out = self.rx.recv().await?;
        Some(self.taken(out))
    }

    /// The next frame if one is queued.
    pub fn try_recv(&mut self) -> Option<Out> {
        let out = self.rx.try_recv().ok()?;
        Some(self.taken(out))
    }
}

/// One connection as the rooms see it. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ConnHandle {
    /// Unique per connection, so a stale connection never touches a place it lost.
    pub id: u64,
    delivery: Delivery,
}

impl ConnHandle {
    /// A connection served in this process through a queue of `capacity` frames (no
    /// byte bound).
    pub fn queue(id: u64, capacity: usize) -> (ConnHandle, Outbox) {
        Self::bounded(id, capacity, usize::MAX)
    }

    /// A queue of at most `capacity` frames and `max_bytes` bytes of text.
    pub fn bounded(id: u64, capacity: usize, max_bytes: usize) -> (ConnHandle, Outbox) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let kill = CancellationToken::new();
        let bytes = Arc::new(Bytes { queued: AtomicUsize::new(0), max: max_bytes });
        let handle = ConnHandle { id, delivery: Delivery::Queue { tx, kill: kill.clone(), bytes: bytes.clone() } };
        (handle, Outbox { rx, kill, bytes })
    }

    /// Queues `out` without waiting. A full queue (in frames or in bytes) means the peer
    /// can't keep up: it is cut off (its kill token fires) and `false` is returned; so is
    /// a closed queue.
    pub fn send(&self, out: Out) -> bool {
        match &self.delivery {
            Delivery::Queue { tx, kill, bytes } => {
                let n = out.bytes();
                let before = bytes.queued.fetch_add(n, Ordering::Relaxed);
                let result = if before.saturating_add(n) > bytes.max {
                    Err(true)
                } else {
                    tx.try_send(out).map_err(|e| matches!(e, mpsc::error::TrySendError::Full(_)))
                };
                match result {
                    Ok(()) => true,
                    Err(full) => {
                        bytes.queued.fetch_sub(n, Ordering::Relaxed);
                        if full {
                            if !kill.is_cancelled() {
                                tracing::warn!(conn = self.id, "send queue full: disconnecting a peer that cannot keep up");
                            }
                            kill.cancel();
                        }
                        false
                    }
                }
            }
        }
    }

    /// Whether the server gave up on this connection (its queue overflowed).
    pub fn is_killed(&self) -> bool {
        match &self.delivery {
            Delivery::Queue { kill, .. } => kill.is_cancelled(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_fanout_finishes_when_every_ack_is_written_or_dropped() {
        let f = Fanout::new();
        let (a, b) = (f.ack(), f.ack());
        f.queued_one();
        f.queued_one();
        f.seal();
        a.written();
        assert!(tokio::time::timeout(std::time::Duration::from_millis(50), f.wait()).await.is_err(), "one ack is still out");
        drop(b); // its connection ended unwritten
        tokio::time::timeout(std::time::Duration::from_secs(1), f.wait()).await.expect("done");
        assert_eq!((f.queued(), f.written()), (2, 1));
        assert!(f.times_us().0 > 0 && f.times_us().0 <= f.times_us().1);
        let empty = Fanout::new();
        empty.seal();
        tokio::time::timeout(std::time::Duration::from_secs(1), empty.wait()).await.expect("nothing to wait for");
    }

    #[test]
    fn a_full_queue_kills_the_connection_once() {
        let (c, mut out) = ConnHandle::queue(7, 1);
        assert!(c.send(Out::Close(Close::Done)));
        assert!(!c.is_killed());
        assert!(!c.send(Out::Close(Close::Done)), "the second frame does not fit");
        assert!(c.is_killed() && out.kill.is_cancelled());
        assert!(matches!(out.rx.try_recv(), Ok(Out::Close(Close::Done))));
        drop(out);
        assert!(!c.send(Out::Close(Close::Done)), "a closed queue refuses");
    }

    #[test]
    fn a_queue_is_bounded_in_bytes_and_reading_gives_them_back() {
        let (c, mut out) = ConnHandle::bounded(1, 100, 10);
        assert!(c.send(Out::Text("123456".into())));
        assert!(!c.send(Out::Text("12345".into())), "6 + 5 bytes do not fit in 10");
        assert!(c.is_killed());
        let (c, mut out2) = ConnHandle::bounded(2, 100, 10);
        assert!(c.send(Out::Text("123456".into())));
        assert!(matches!(out2.try_recv(), Some(Out::Text(_))));
        assert!(c.send(Out::Text("1234567890".into())), "read bytes are given back");
        assert!(!c.is_killed());
        assert!(matches!(out.try_recv(), Some(Out::Text(_))));
    }
}
