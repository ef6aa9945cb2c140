//! The storage the app uses: the embedded SQLite [`Store`] (the default, one process), or
//! the Redis store (a node of a cluster, `--redis`). Both keep the same records with the
//! same promises; each method hands over to the backend.

use super::redis::RedisStore;
use super::{EndRecord, Ender, OutboxWriter, RoomCode, SessionRecord, Store};
use crate::config::Config;
use crate::error::Error;
use crate::events::Event;
use crate::redis_link::RedisLink;
use std::path::Path;
use std::time::Duration;

/// Durable room state: locks, session history and end records, room codes.
#[derive(Clone)]
pub enum Storage {
    /// `<data-dir>/hms.sqlite3` (with the webhook outbox when webhooks are on).
    Sqlite(Store),
    /// The cluster's Redis.
    Redis(RedisStore),
}

/// Runs the same call on whichever backend the storage has.
macro_rules! each {
    ($self:ident, $s:ident => $call:expr) => {
        match $self {
            Storage::Sqlite($s) => $call,
            Storage::Redis($s) => $call,
        }
    };
}

/// Awaits the same call on whichever backend the storage has. Redis' futures are boxed,
/// so the futures of the app's use cases (and each connection's task, which holds them)
/// do not grow by their size in a single node (see `registry.rs`).
macro_rules! each_async {
    ($self:ident, $s:ident => $fut:expr) => {
        match $self {
            Storage::Sqlite($s) => $fut.await,
            Storage::Redis($s) => Box::pin($fut).await,
        }
    };
}

impl Storage {
    /// The storage `config` asks for: SQLite in `data_dir` (with the webhook `outbox`
    /// when given), or the cluster's Redis at `config.cluster.redis_url`.
    pub async fn open(config: &Config, data_dir: &Path, outbox: Option<OutboxWriter>) -> Result<Storage, Error> {
        match &config.cluster.redis_url {
            None => Store::open_with(data_dir, outbox).map(Storage::Sqlite),
            Some(url) => {
                let link = RedisLink::connect(url, Duration::from_millis(config.cluster.redis_timeout_ms)).await?;
                Ok(Storage::Redis(RedisStore::new(link, outbox)))
            }
        }
    }

    /// Sets the SQLite store's listener of committed lock changes (see
    /// [`Store::on_lock_change`]); a cluster's owners read the lock from Redis instead.
    pub fn on_lock_change(&self, listener: super::LockListener) {
        if let Storage::Sqlite(s) = self {
            s.on_lock_change(listener);
        }
    }

    /// Rooms that are disabled (locked).
    pub async fn disabled_rooms(&self) -> Result<Vec<String>, Error> {
        each_async!(self, s => s.disabled_rooms())
    }

    /// Enables or disables (locks) a room; durable when this returns.
    pub async fn set_enabled(&self, room_id: &str, enabled: bool) -> Result<(), Error> {
        each_async!(self, s => s.set_enabled(room_id, enabled))
    }

    /// Records what the rooms report (session history; with webhooks, the outbox),
    /// without waiting.
    pub fn record(&self, events: Vec<Event>) {
        each!(self, s => s.record(events))
    }

    /// Records an end-room's session end (`close` is its event) and, with `locked`,
    /// disables the room, atomically; durable when this returns.
    pub async fn end_session(&self, room_id: &str, session_id: &str, ended_by: Option<Ender<'_>>, reason: &str, locked: bool, close: Event) -> Result<(), Error> {
        each_async!(self, s => s.end_session(room_id, session_id, ended_by, reason, locked, close))
    }

    /// One page of a room's session history, oldest first: at most `limit` sessions
    /// after the cursor `after`; the page and its last cursor when more may follow.
    pub async fn sessions(&self, room_id: &str, after: Option<i64>, limit: usize) -> Result<(Vec<SessionRecord>, Option<i64>), Error> {
        each_async!(self, s => s.sessions(room_id, after, limit))
    }

    /// Keeps the room's `keep` newest sessions (end records of a peer since
    /// `protect_since_ms` stay); not awaited.
    pub fn prune_sessions(&self, room_id: &str, keep: usize, protect_since_ms: u64) {
        each!(self, s => s.prune_sessions(room_id, keep, protect_since_ms))
    }

    /// Stores newly issued codes `(role, hash)` of a room, each replacing the role's
    /// previous one; returns their `created_at`.
    pub async fn issue_codes(&self, room_id: &str, codes: Vec<(String, String)>) -> Result<u64, Error> {
        each_async!(self, s => s.issue_codes(room_id, codes))
    }

    /// The room's codes (without their text), by role.
    pub async fn codes(&self, room_id: &str) -> Result<Vec<RoomCode>, Error> {
        each_async!(self, s => s.codes(room_id))
    }

    /// The code whose hash is `hash` (without its text).
    pub async fn find_code(&self, hash: &str) -> Result<Option<RoomCode>, Error> {
        each_async!(self, s => s.find_code(hash))
    }

    /// Enables or disables the code whose hash is `hash`; false when there is none.
    pub async fn set_code_enabled(&self, hash: &str, enabled: bool) -> Result<bool, Error> {
        each_async!(self, s => s.set_code_enabled(hash, enabled))
    }

    /// Sessions a peer ended since `since_ms`, oldest first.
    pub async fn ends_since(&self, since_ms: u64) -> Result<Vec<EndRecord>, Error> {
        each_async!(self, s => s.ends_since(since_ms))
    }

    /// Waits until everything recorded so far is written (graceful shutdown).
    pub async fn flush(&self) -> Result<(), Error> {
        each_async!(self, s => s.flush())
    }

    /// Checkpoints SQLite's WAL on graceful shutdown; Redis persists through its own AOF.
    pub async fn checkpoint(&self) -> Result<(), Error> {
        match self {
            Storage::Sqlite(s) => s.checkpoint().await,
            Storage::Redis(_) => Ok(()),
        }
    }
}
