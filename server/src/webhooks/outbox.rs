//! The outbox as the sender and the REST API use it. This is the seam for several
//! nodes: today the outbox is the SQLite table the store writes in each change's
//! transaction ([`Outbox::Sqlite`]); a Redis-backed outbox (a stream written in the same
//! MULTI as the change, read by one leased sender across the nodes, docs/WEBHOOKS.md)
//! becomes another variant here, and the sender does not change.

use crate::error::Error;
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
}

/// Runs a blocking read off the async threads.
async fn read<R: Send + 'static>(reader: &Arc<OutboxReader>, f: impl FnOnce(&OutboxReader) -> Result<R, Error> + Send + 'static) -> Result<R, Error> {
    let reader = reader.clone();
    tokio::task::spawn_blocking(move || f(&reader)).await.map_err(|e| Error::Store(format!("outbox read task: {e}")))?
}

impl Outbox {
    /// The rooms of `target` with pending events and when each is due, soonest first.
    pub async fn heads(&self, target: &str, limit: usize) -> Result<Vec<(String, u64)>, Error> {
        let target = target.to_owned();
        match self {
            Outbox::Sqlite { reader, .. } => read(reader, move |r| r.heads(&target, limit)).await,
        }
    }

    /// The pending events of a room for `target`, oldest first.
    pub async fn pending(&self, target: &str, room_id: &str, limit: usize) -> Result<Vec<Pending>, Error> {
        let (target, room_id) = (target.to_owned(), room_id.to_owned());
        match self {
            Outbox::Sqlite { reader, .. } => read(reader, move |r| r.pending(&target, &room_id, limit)).await,
        }
    }

    /// Forgets delivered events.
    pub async fn delivered(&self, seqs: Vec<i64>) -> Result<(), Error> {
        match self {
            Outbox::Sqlite { store, .. } => store.outbox_delivered(seqs).await,
        }
    }

    /// Reschedules an event after a failed attempt.
    pub async fn retry(&self, seq: i64, attempts: u32, next_at: u64, error: String) -> Result<(), Error> {
        match self {
            Outbox::Sqlite { store, .. } => store.outbox_retry(seq, attempts, next_at, error).await,
        }
    }

    /// Moves an event past its retry budget to the failed list.
    pub async fn give_up(&self, seq: i64, attempts: u32, error: String) -> Result<(), Error> {
        match self {
            Outbox::Sqlite { store, .. } => store.outbox_give_up(seq, attempts, error).await,
        }
    }

    /// A page of the failed list.
    pub async fn failed(&self, after: i64, limit: usize) -> Result<Vec<Failed>, Error> {
        match self {
            Outbox::Sqlite { store, .. } => store.outbox_failed(after, limit).await,
        }
    }

    /// Queues a failed event again for the `targets` still configured.
    pub async fn replay(&self, event_id: &str, targets: Vec<String>) -> Result<(usize, usize), Error> {
        match self {
            Outbox::Sqlite { store, .. } => store.outbox_replay(event_id, targets).await,
        }
    }
}
