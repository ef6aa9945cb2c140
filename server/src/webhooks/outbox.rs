//! The outbox as the sender and the REST API use it: the SQLite table the store writes in
//! each change's transaction ([`Outbox::Sqlite`]), or, with several nodes, the same rows
//! in Redis, written by each room's owner with the change and sent by the one node that
//! holds the sender lease ([`Outbox::Redis`], docs/WEBHOOKS.md). The sender does not
//! change.

use crate::error::Error;
use crate::store::redis::RedisStore;
use crate::store::redis_outbox::SenderLease;
use crate::store::{Failed, OutboxReader, Pending, Store};
use std::sync::Arc;

/// Where pending webhook events are kept.
#[derive(Clone)]
pub enum Outbox {
    /// The `webhook_outbox` table: written through the store thread, read through a
    /// connection of its own.
    Sqlite {
        /// Writes (acknowledgements, retries, the failed list).
        store: Store,
        /// Reads of the queue.
        reader: Arc<OutboxReader>,
    },
    /// Rows in Redis; this node reads them only while it holds the sender lease.
    Redis {
        /// The cluster's store.
        store: RedisStore,
        /// Whether this node sends now.
        lease: Arc<SenderLease>,
    },
}

/// Runs a blocking read off the async threads.
async fn read<R: Send + 'static>(reader: &Arc<OutboxReader>, f: impl FnOnce(&OutboxReader) -> Result<R, Error> + Send + 'static) -> Result<R, Error> {
    let reader = reader.clone();
    tokio::task::spawn_blocking(move || f(&reader)).await.map_err(|e| Error::Store(format!("outbox read task: {e}")))?
}

impl Outbox {
    /// How often the sender looks at the queue without a wake-up, ms: a cluster's rows
    /// are also written by other nodes, which cannot wake this one.
    pub fn idle_poll_ms(&self) -> u64 {
        match self {
            Outbox::Sqlite { .. } => 5_000,
            Outbox::Redis { .. } => 200,
        }
    }

    /// The rooms of `target` with pending events and when each is due, soonest first
    /// (none on a node that does not send).
    pub async fn heads(&self, target: &str, limit: usize) -> Result<Vec<(String, u64)>, Error> {
        let target = target.to_owned();
        match self {
            Outbox::Sqlite { reader, .. } => read(reader, move |r| r.heads(&target, limit)).await,
            Outbox::Redis { lease, .. } if !lease.held() => Ok(Vec::new()),
            Outbox::Redis { store, .. } => store.outbox_heads(&target, limit).await,
        }
    }

    /// The pending events of a room for `target`, oldest first (none on a node that
    /// does not send: a worker stops when its node loses the lease).
    pub async fn pending(&self, target: &str, room_id: &str, limit: usize) -> Result<Vec<Pending>, Error> {
        let (target, room_id) = (target.to_owned(), room_id.to_owned());
        match self {
            Outbox::Sqlite { reader, .. } => read(reader, move |r| r.pending(&target, &room_id, limit)).await,
            Outbox::Redis { lease, .. } if !lease.held() => Ok(Vec::new()),
            Outbox::Redis { store, .. } => store.outbox_pending(&target, &room_id, limit).await,
        }
    }

    /// Forgets delivered events.
    pub async fn delivered(&self, seqs: Vec<i64>) -> Result<(), Error> {
        match self {
            Outbox::Sqlite { store, .. } => store.outbox_delivered(seqs).await,
            Outbox::Redis { store, .. } => store.outbox_delivered(seqs).await,
        }
    }

    /// Reschedules an event after a failed attempt.
    pub async fn retry(&self, seq: i64, attempts: u32, next_at: u64, error: String) -> Result<(), Error> {
        match self {
            Outbox::Sqlite { store, .. } => store.outbox_retry(seq, attempts, next_at, error).await,
            Outbox::Redis { store, .. } => store.outbox_retry(seq, attempts, next_at, error).await,
        }
    }

    /// Moves an event past its retry budget to the failed list.
    pub async fn give_up(&self, seq: i64, attempts: u32, error: String) -> Result<(), Error> {
        match self {
            Outbox::Sqlite { store, .. } => store.outbox_give_up(seq, attempts, error).await,
            Outbox::Redis { store, .. } => store.outbox_give_up(seq, attempts, error).await,
        }
    }

    /// A page of the failed list.
    pub async fn failed(&self, after: i64, limit: usize) -> Result<Vec<Failed>, Error> {
        match self {
            Outbox::Sqlite { store, .. } => store.outbox_failed(after, limit).await,
            Outbox::Redis { store, .. } => store.outbox_failed(after, limit).await,
        }
    }

    /// Queues a failed event again for the `targets` still configured.
    pub async fn replay(&self, event_id: &str, targets: Vec<String>) -> Result<(usize, usize), Error> {
        match self {
            Outbox::Sqlite { store, .. } => store.outbox_replay(event_id, targets).await,
            Outbox::Redis { store, .. } => store.outbox_replay(event_id, targets).await,
        }
    }
}
