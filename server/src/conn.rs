//! The rooms' side of a connection: a handle that queues frames for one peer without
//! waiting. This is the fan-out seam: the rooms only ever call [`ConnHandle::send`], so
//! a delivery that crosses to another server node can sit beside the in-process queue
//! without the rooms knowing.

use crate::frame::Text;
use tokio::sync::{mpsc, oneshot};
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
    /// Send a text frame and report when it has been written.
    TextAck(Text, oneshot::Sender<()>),
    /// Build a frame meant for this connection alone (a `peer-list`) and send it. The
    /// rooms queue it under their lock, in order with everything else, and the writer
    /// builds it outside any lock.
    Build(Box<dyn FnOnce() -> Text + Send>),
    /// Send a close frame for this reason, then stop.
    Close(Close),
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

/// Where a connection's frames go.
#[derive(Debug, Clone)]
enum Delivery {
    /// A bounded queue drained by the connection's writer task in this process. `kill`
    /// fires when the server gives up on a peer that cannot keep up.
    Queue { tx: mpsc::Sender<Out>, kill: CancellationToken },
}

/// The receiving end of a [`ConnHandle::queue`]: what the connection's writer drains, and
/// the token that fires when the server gives up on the peer.
#[derive(Debug)]
pub struct Outbox {
    /// Frames to write, in order.
    pub rx: mpsc::Receiver<Out>,
    /// Fired when the queue overflowed: the peer is cut off.
    pub kill: CancellationToken,
}

/// One connection as the rooms see it. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ConnHandle {
    /// Unique per connection, so a stale connection never touches a place it lost.
    pub id: u64,
    delivery: Delivery,
}

impl ConnHandle {
    /// A connection served in this process through a queue of `capacity` frames.
    pub fn queue(id: u64, capacity: usize) -> (ConnHandle, Outbox) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let kill = CancellationToken::new();
        (ConnHandle { id, delivery: Delivery::Queue { tx, kill: kill.clone() } }, Outbox { rx, kill })
    }

    /// Queues `out` without waiting. A full queue means the peer can't keep up: it is
    /// cut off (its kill token fires) and `false` is returned; so is a closed queue.
    pub fn send(&self, out: Out) -> bool {
        match &self.delivery {
            Delivery::Queue { tx, kill } => match tx.try_send(out) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    if !kill.is_cancelled() {
                        tracing::warn!(conn = self.id, "send queue full: disconnecting a peer that cannot keep up");
                    }
                    kill.cancel();
                    false
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            },
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
}
