//! Durable state in an embedded SQLite database (`<data-dir>/hms.sqlite3`): room locks,
//! session history, room codes and the webhook outbox ([`outbox`]).
//!
//! One thread owns the connection and runs jobs in the order they arrive, so a
//! session's start is always written before its end and async tasks never block on
//! disk. WAL with `synchronous=FULL`: a job's answer means its data is on disk, so a
//! SIGKILL right after an `end-room` answer loses neither the lock nor the record.
//!
//! Group commit: jobs that queue up while a commit is in progress run together in one
//! transaction (each inside its own savepoint, so a failing job undoes only itself), and
//! all of them are answered after that one fsync. A hundred rooms ended at once cost a
//! few fsyncs, not a hundred.

use crate::error::Error;
use crate::events::{CloseReason, Event};
use rusqlite::{params, Connection, OptionalExtension};
use std::path::Path;
use std::sync::{Arc, OnceLock};
use tokio::sync::oneshot;

mod outbox;
pub use outbox::{Encoded, Failed, OutboxReader, OutboxWriter, Pending};

/// Called with whether the batch committed; answers the job's caller.
type Completion = Box<dyn FnOnce(bool) + Send>;

/// A job that runs inside a batch's transaction; returns whether it succeeded.
type BatchedJob = Box<dyn FnOnce(&Connection) -> (bool, Completion) + Send>;

enum Job {
    /// Runs inside the current batch's transaction.
    Batched(BatchedJob),
    /// Runs alone, outside any transaction (checkpoints).
    Alone(Box<dyn FnOnce(&mut Connection) + Send>),
}

/// Most jobs run in one transaction.
const MAX_BATCH: usize = 512;

/// The database thread: batches of jobs, one commit each.
fn run_jobs(mut conn: Connection, rx: std::sync::mpsc::Receiver<Job>) {
    let mut pending: Option<Job> = None;
    loop {
        let first = match pending.take() {
            Some(j) => j,
            None => match rx.recv() {
                Ok(j) => j,
                Err(_) => return,
            },
        };
        let first = match first {
            Job::Alone(f) => {
                f(&mut conn);
                continue;
            }
            Job::Batched(f) => f,
        };
        let began = conn.execute_batch("BEGIN IMMEDIATE").is_ok();
        let mut completions = Vec::new();
        let mut next = Some(first);
        while let Some(f) = next.take() {
            let _ = conn.execute_batch("SAVEPOINT job");
            let (ok, done) = f(&conn);
            if !ok {
                let _ = conn.execute_batch("ROLLBACK TO job");
            }
            let _ = conn.execute_batch("RELEASE job");
            completions.push(done);
            if completions.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(Job::Batched(f)) => next = Some(f),
                    Ok(alone) => pending = Some(alone),
                    Err(_) => {}
                }
            }
        }
        let committed = began && conn.execute_batch("COMMIT").is_ok();
        if began && !committed {
            tracing::error!("store: a commit failed; its jobs are answered with an error");
            let _ = conn.execute_batch("ROLLBACK");
        }
        for done in completions {
            done(committed);
        }
    }
}

/// Told of each committed lock change (room, locked), on the database thread, in commit
/// order.
pub type LockListener = Box<dyn Fn(&str, bool) + Send + Sync>;

/// Handle to the database thread. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    tx: std::sync::mpsc::Sender<Job>,
    /// Set when webhooks are on: events then also become outbox rows.
    outbox: Option<Arc<OutboxWriter>>,
    on_lock: Arc<OnceLock<LockListener>>,
}

/// One row of the session history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    /// Session id (UUID).
    pub session_id: String,
    /// Room id.
    pub room_id: String,
    /// Start, ms since the Unix epoch.
    pub started_at: u64,
    /// End, ms since the Unix epoch; `None` while it runs.
    pub ended_at: Option<u64>,
    /// Peer id of whoever ended it; `None` for the REST API, the server, or an emptied room.
    pub ended_by: Option<String>,
    /// Why it ended.
    pub reason: Option<String>,
    /// Whether the room was locked when it ended.
    pub locked: bool,
}

/// The peer that ended a session, for its end record.
#[derive(Debug, Clone, Copy)]
pub struct Ender<'a> {
    /// Its peer id.
    pub peer_id: &'a str,
    /// Its token's user id.
    pub user_id: &'a str,
}

/// A session that a peer ended, as the store recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndRecord {
    /// The room.
    pub room_id: String,
    /// The peer that ended it.
    pub peer_id: String,
    /// That peer's user id.
    pub user_id: String,
    /// The reason it gave.
    pub reason: String,
    /// When, ms since the Unix epoch.
    pub ended_at: u64,
}

/// A room code: one per (room, role).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RoomCode {
    /// The code's text (`abcd-efgh-ijkl-mnop`): known only when it is issued, never stored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// The room it opens.
    pub room_id: String,
    /// The role a token minted from it gets.
    pub role: String,
    /// Disabled codes are refused with 404.
    pub enabled: bool,
    /// When it was issued, ms since the Unix epoch.
    pub created_at: u64,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS rooms (
    room_id    TEXT PRIMARY KEY,
    enabled    INTEGER NOT NULL DEFAULT 1,
    updated_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS sessions (
    session_id TEXT PRIMARY KEY,
    room_id    TEXT NOT NULL,
    started_at INTEGER NOT NULL,
    ended_at   INTEGER,
    ended_by   TEXT,
    reason     TEXT,
    locked     INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS sessions_room ON sessions(room_id, started_at);
CREATE INDEX IF NOT EXISTS sessions_room_order ON sessions(room_id);
CREATE TABLE IF NOT EXISTS room_code_hashes (
    hash       TEXT PRIMARY KEY,
    room_id    TEXT NOT NULL,
    role       TEXT NOT NULL,
    enabled    INTEGER NOT NULL DEFAULT 1,
    created_at INTEGER NOT NULL,
    UNIQUE(room_id, role)
);
";

fn now_ms() -> i64 {
    crate::clock::now_millis() as i64
}

fn stopped() -> Error {
    Error::Store("the store thread has stopped".into())
}

impl Store {
    /// Opens (creating if needed) `<data_dir>/hms.sqlite3` and starts its thread, without
    /// webhooks. See [`Store::open_with`].
    pub fn open(data_dir: &Path) -> Result<Store, Error> {
        Self::open_with(data_dir, None)
    }

    /// Opens (creating if needed) `<data_dir>/hms.sqlite3` and starts its thread; with
    /// `outbox`, events are also written to the webhook outbox. The data dir is made 0700
    /// and the database files 0600. Sessions a crash left open are closed with reason
    /// `"server stopped"` (and, with webhooks, reported as closed, every peer they had as
    /// left).
    pub fn open_with(data_dir: &Path, outbox: Option<OutboxWriter>) -> Result<Store, Error> {
        let fail = |what: String| Error::Config(what);
        crate::datadir::ensure_private_dir(data_dir)?;
        let path = data_dir.join("hms.sqlite3");
        // SQLite gives the WAL and shm files the database file's mode: make it 0600 first,
        // and tighten files an older server left wider.
        crate::datadir::ensure_private_file(&path)?;
        for f in ["hms.sqlite3-wal", "hms.sqlite3-shm"] {
            crate::datadir::tighten(&data_dir.join(f))?;
        }
        let conn = Connection::open(&path).map_err(|e| fail(format!("opening {}: {e}", path.display())))?;
        conn.execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA busy_timeout=5000;")
            .map_err(|e| fail(format!("configuring {}: {e}", path.display())))?;
        conn.execute_batch(SCHEMA).map_err(|e| fail(format!("creating tables: {e}")))?;
        conn.execute_batch(outbox::SCHEMA).map_err(|e| fail(format!("creating tables: {e}")))?;
        migrate(&conn).map_err(|e| fail(format!("upgrading the tables: {e}")))?;
        close_dangling(&conn, outbox.as_ref()).map_err(|e| fail(format!("closing dangling sessions: {e}")))?;
        let (tx, rx) = std::sync::mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("hms-store".into())
            .spawn(move || run_jobs(conn, rx))
            .map_err(|e| fail(format!("starting the store thread: {e}")))?;
        Ok(Store { tx, outbox: outbox.map(Arc::new), on_lock: Arc::default() })
    }

    /// Sets the one listener of lock changes. It runs on the database thread right after
    /// each commit that changed a room's lock, in commit order, before the caller is
    /// answered: whoever mirrors the locks in memory ends with what the database has,
    /// however lock changes race. Later calls are ignored.
    pub fn on_lock_change(&self, listener: LockListener) {
        let _ = self.on_lock.set(listener);
    }

    /// Runs `f` on the database thread (in a transaction, possibly shared with other
    /// jobs) and waits until it is committed.
    async fn call<R: Send + 'static>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<R> + Send + 'static) -> Result<R, Error> {
        self.call_then(f, None).await
    }

    /// [`Store::call`], telling the lock listener of `lock` (room, locked) once committed.
    async fn call_then<R: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<R> + Send + 'static,
        lock: Option<(String, bool)>,
    ) -> Result<R, Error> {
        let (done, wait) = oneshot::channel();
        let on_lock = self.on_lock.clone();
        let job = Job::Batched(Box::new(move |c| {
            let r = f(c).map_err(|e| Error::Store(e.to_string()));
            let ok = r.is_ok();
            let completion: Completion = Box::new(move |committed| {
                if committed && ok {
                    if let (Some((room, locked)), Some(listener)) = (lock, on_lock.get()) {
                        listener(&room, locked);
                    }
                }
                let _ = done.send(if committed { r } else { Err(Error::Store("the database commit failed".into())) });
            });
            (ok, completion)
        }));
        self.tx.send(job).map_err(|_| stopped())?;
        wait.await.map_err(|_| stopped())?
    }

    /// Runs `f` on the database thread without waiting; failures are logged. `f` says
    /// whether it wrote outbox rows: the sender is woken once they are committed.
    fn fire(&self, what: &'static str, f: impl FnOnce(&Connection) -> rusqlite::Result<bool> + Send + 'static) {
        let outbox = self.outbox.clone();
        let job = Job::Batched(Box::new(move |c| {
            let r = f(c);
            if let Err(e) = &r {
                tracing::error!(error = %e, "store: {what} failed");
            }
            let wrote = matches!(r, Ok(true));
            let completion: Completion = Box::new(move |committed| {
                if !committed {
                    tracing::error!("store: {what} lost: its commit failed");
                } else if let (true, Some(w)) = (wrote, &outbox) {
                    (w.on_commit)();
                }
            });
            (r.is_ok(), completion)
        }));
        if self.tx.send(job).is_err() {
            tracing::error!("store: {what} dropped, the store thread has stopped");
        }
    }

    /// Rooms that are disabled (locked), for the in-memory cache at startup.
    pub async fn disabled_rooms(&self) -> Result<Vec<String>, Error> {
        self.call(|c| {
            let mut st = c.prepare("SELECT room_id FROM rooms WHERE enabled = 0")?;
            let rows = st.query_map([], |r| r.get::<_, String>(0))?;
            rows.collect()
        })
        .await
    }

    /// Enables or disables (locks) a room, with its `RoomEnabled` event; durable when this
    /// returns, and the lock listener has been told.
    pub async fn set_enabled(&self, room_id: &str, enabled: bool) -> Result<(), Error> {
        let room = room_id.to_owned();
        let outbox = self.outbox.clone();
        let lock = Some((room.clone(), !enabled));
        self.call_then(move |c| {
            let now = now_ms();
            c.execute(
                "INSERT INTO rooms(room_id, enabled, updated_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT(room_id) DO UPDATE SET enabled = excluded.enabled, updated_at = excluded.updated_at",
                params![room, enabled, now],
            )?;
            if let Some(w) = &outbox {
                outbox::write(c, w, &[Event::RoomEnabled { room_id: room, enabled, at: now as u64 }])?;
            }
            Ok(())
        }, lock)
        .await?;
        self.outbox_committed();
        Ok(())
    }

    /// Records what the rooms report, in order, without waiting: session starts and ends
    /// (history), and with webhooks every event into the outbox. Joins and leaves alone
    /// change no history, so without webhooks they cost nothing here.
    pub fn record(&self, mut events: Vec<Event>) {
        if self.outbox.is_none() {
            events.retain(|e| !e.is_membership());
        }
        if events.is_empty() {
            return;
        }
        let outbox = self.outbox.clone();
        self.fire("recording room events", move |c| {
            for e in &events {
                history(c, e)?;
            }
            match &outbox {
                Some(w) => outbox::write(c, w, &events),
                None => Ok(false),
            }
        });
    }

    /// Records a session end (an end-room: `close` is its `SessionClosed` event) and,
    /// with `locked`, disables the room, in one transaction; durable when this returns
    /// (and the lock listener has been told of the lock).
    pub async fn end_session(
        &self,
        room_id: &str,
        session_id: &str,
        ended_by: Option<Ender<'_>>,
        reason: &str,
        locked: bool,
        close: Event,
    ) -> Result<(), Error> {
        let (room, sid, reason) = (room_id.to_owned(), session_id.to_owned(), reason.to_owned());
        let (by, by_user) = (ended_by.map(|e| e.peer_id.to_owned()), ended_by.map(|e| e.user_id.to_owned()));
        let outbox = self.outbox.clone();
        let lock = locked.then(|| (room.clone(), true));
        let r = self.call_then(move |c| {
            // Atomic: the batch runs each job in its own savepoint.
            let now = now_ms();
            c.execute(
                "UPDATE sessions SET ended_at = ?2, ended_by = ?3, ended_by_user = ?4, reason = ?5, locked = ?6 WHERE session_id = ?1",
                params![sid, now, by, by_user, reason, locked],
            )?;
            if locked {
                c.execute(
                    "INSERT INTO rooms(room_id, enabled, updated_at) VALUES (?1, 0, ?2)
                     ON CONFLICT(room_id) DO UPDATE SET enabled = 0, updated_at = excluded.updated_at",
                    params![room, now],
                )?;
            }
            if let Some(w) = &outbox {
                outbox::write(c, w, std::slice::from_ref(&close))?;
            }
            Ok(())
        }, lock)
        .await;
        if r.is_ok() {
            self.outbox_committed();
        }
        r
    }

    /// One page of the session history of a room, oldest first: at most `limit` sessions
    /// after the cursor `after` (none: from the first). Returns the page and the cursor
    /// of its last session when more may follow.
    pub async fn sessions(&self, room_id: &str, after: Option<i64>, limit: usize) -> Result<(Vec<SessionRecord>, Option<i64>), Error> {
        let room = room_id.to_owned();
        self.call(move |c| {
            let mut st = c.prepare(
                "SELECT session_id, room_id, started_at, ended_at, ended_by, reason, locked, rowid
                 FROM sessions WHERE room_id = ?1 AND rowid > ?2 ORDER BY rowid LIMIT ?3",
            )?;
            let rows = st.query_map(params![room, after.unwrap_or(0), limit as i64], |r| {
                let record = SessionRecord {
                    session_id: r.get(0)?,
                    room_id: r.get(1)?,
                    started_at: r.get::<_, i64>(2)? as u64,
                    ended_at: r.get::<_, Option<i64>>(3)?.map(|v| v as u64),
                    ended_by: r.get(4)?,
                    reason: r.get(5)?,
                    locked: r.get(6)?,
                };
                Ok((record, r.get::<_, i64>(7)?))
            })?;
            let rows: Vec<(SessionRecord, i64)> = rows.collect::<rusqlite::Result<_>>()?;
            let next = if rows.len() == limit { rows.last().map(|(_, id)| *id) } else { None };
            Ok((rows.into_iter().map(|(r, _)| r).collect(), next))
        })
        .await
    }

    /// Keeps the `keep` newest sessions of a room and deletes older ended ones, except
    /// end records of a peer newer than `protect_since_ms` (a requester may still need
    /// them, see [`Store::ends_since`]). Not awaited; runs after the session start it
    /// follows.
    pub fn prune_sessions(&self, room_id: &str, keep: usize, protect_since_ms: u64) {
        let room = room_id.to_owned();
        self.fire("pruning old sessions", move |c| {
            c.execute(
                "DELETE FROM sessions WHERE room_id = ?1 AND ended_at IS NOT NULL
                   AND rowid <= (SELECT rowid FROM sessions WHERE room_id = ?1 ORDER BY rowid DESC LIMIT 1 OFFSET ?2)
                   AND NOT (ended_by IS NOT NULL AND ended_at >= ?3)",
                params![room, keep as i64, protect_since_ms as i64],
            )
            // Nothing for the webhook outbox.
            .map(|_| false)
        });
    }

    /// Stores newly issued codes of a room, `(role, hash)`: each replaces the role's
    /// previous code (which stops working) and starts enabled. Returns their `created_at`.
    pub async fn issue_codes(&self, room_id: &str, codes: Vec<(String, String)>) -> Result<u64, Error> {
        let room = room_id.to_owned();
        self.call(move |c| {
            let now = now_ms();
            for (role, hash) in codes {
                c.execute(
                    "INSERT INTO room_code_hashes(hash, room_id, role, enabled, created_at) VALUES (?1, ?2, ?3, 1, ?4)
                     ON CONFLICT(room_id, role) DO UPDATE SET hash = excluded.hash, enabled = 1, created_at = excluded.created_at",
                    params![hash, room, role, now],
                )?;
            }
            Ok(now as u64)
        })
        .await
    }

    /// The room's codes (without their text), by role.
    pub async fn codes(&self, room_id: &str) -> Result<Vec<RoomCode>, Error> {
        let room = room_id.to_owned();
        self.call(move |c| {
            let mut st = c.prepare("SELECT room_id, role, enabled, created_at FROM room_code_hashes WHERE room_id = ?1 ORDER BY role")?;
            let rows = st.query_map(params![room], code_row)?;
            rows.collect()
        })
        .await
    }

    /// The code whose hash is `hash` (without its text).
    pub async fn find_code(&self, hash: &str) -> Result<Option<RoomCode>, Error> {
        let hash = hash.to_owned();
        self.call(move |c| {
            c.query_row("SELECT room_id, role, enabled, created_at FROM room_code_hashes WHERE hash = ?1", params![hash], code_row)
                .optional()
        })
        .await
    }

    /// Enables or disables the code whose hash is `hash`; false when there is none.
    pub async fn set_code_enabled(&self, hash: &str, enabled: bool) -> Result<bool, Error> {
        let hash = hash.to_owned();
        self.call(move |c| Ok(c.execute("UPDATE room_code_hashes SET enabled = ?2 WHERE hash = ?1", params![hash, enabled])? > 0))
            .await
    }

    /// Sessions a peer ended since `since_ms` (ms since the Unix epoch), oldest first.
    pub async fn ends_since(&self, since_ms: u64) -> Result<Vec<EndRecord>, Error> {
        self.call(move |c| {
            let mut st = c.prepare(
                "SELECT room_id, ended_by, ended_by_user, reason, ended_at FROM sessions
                 WHERE ended_at >= ?1 AND ended_by IS NOT NULL AND ended_by_user IS NOT NULL ORDER BY ended_at",
            )?;
            let rows = st.query_map(params![since_ms as i64], |r| {
                Ok(EndRecord {
                    room_id: r.get(0)?,
                    peer_id: r.get(1)?,
                    user_id: r.get(2)?,
                    reason: r.get::<_, Option<String>>(3)?.unwrap_or_default(),
                    ended_at: r.get::<_, i64>(4)? as u64,
                })
            })?;
            rows.collect()
        })
        .await
    }

    /// Waits until every job queued before this call is committed.
    pub async fn flush(&self) -> Result<(), Error> {
        self.call(|_| Ok(())).await
    }

    /// Checkpoints the WAL into the main file (on graceful shutdown).
    pub async fn checkpoint(&self) -> Result<(), Error> {
        let (done, wait) = oneshot::channel();
        let job = Job::Alone(Box::new(move |c| {
            let _ = done.send(c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);").map_err(|e| Error::Store(e.to_string())));
        }));
        self.tx.send(job).map_err(|_| stopped())?;
        wait.await.map_err(|_| stopped())?
    }
}

/// The history side of a room event: session rows.
fn history(c: &Connection, e: &Event) -> rusqlite::Result<()> {
    match e {
        Event::SessionOpened { room_id, session_id, at } => c
            .execute("INSERT OR IGNORE INTO sessions(session_id, room_id, started_at) VALUES (?1, ?2, ?3)", params![session_id, room_id, *at as i64])
            .map(|_| ()),
        Event::SessionClosed { session_id, at, reason, .. } => {
            let why = match reason {
                CloseReason::Emptied => "room empty",
                CloseReason::ServerShutdown => "server shutdown",
                CloseReason::ServerStopped => "server stopped",
                // Ended: end_session writes it, with who and the lock.
                CloseReason::Ended { message, .. } => message,
            };
            c.execute(
                "UPDATE sessions SET ended_at = ?2, reason = ?3 WHERE session_id = ?1 AND ended_at IS NULL",
                params![session_id, *at as i64, why],
            )
            .map(|_| ())
        }
        _ => Ok(()),
    }
}

/// At start: sessions a crash left open are closed as `"server stopped"`; with webhooks,
/// that close and a leave for each of their peers go to the outbox, in one transaction.
fn close_dangling(c: &Connection, outbox: Option<&OutboxWriter>) -> rusqlite::Result<()> {
    let now = now_ms() as u64;
    c.execute_batch("BEGIN IMMEDIATE")?;
    let r = (|| {
        let open: Vec<(String, String, i64)> = {
            let mut st = c.prepare("SELECT session_id, room_id, started_at FROM sessions WHERE ended_at IS NULL ORDER BY started_at")?;
            let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        let mut stranded = outbox::stranded_peers(c, now)?;
        c.execute("UPDATE sessions SET ended_at = ?1, reason = 'server stopped' WHERE ended_at IS NULL", params![now as i64])?;
        if let Some(w) = outbox {
            let moved = outbox::retire_unknown_targets(c, &w.targets)?;
            if moved > 0 {
                tracing::warn!(events = moved, "webhook events for targets no longer configured moved to the failed list");
            }
            let mut events = Vec::new();
            for (session_id, room_id, started_at) in open {
                let reason = CloseReason::ServerStopped;
                events.push(Event::SessionClosed { room_id, session_id: session_id.clone(), started_at: started_at as u64, at: now, reason });
                events.extend(stranded.iter().filter(|(s, open, _)| *open && *s == session_id).map(|(_, _, e)| e.clone()));
            }
            // Leaves an end-room's crash cut off: its close is in the outbox already.
            stranded.retain(|(_, open, _)| !open);
            events.extend(stranded.into_iter().map(|(_, _, e)| e));
            outbox::write(c, w, &events)?;
        }
        c.execute("DELETE FROM live_peers", []).map(|_| ())
    })();
    match r {
        Ok(()) => c.execute_batch("COMMIT"),
        Err(e) => {
            let _ = c.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

fn code_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RoomCode> {
    Ok(RoomCode { code: None, room_id: r.get(0)?, role: r.get(1)?, enabled: r.get(2)?, created_at: r.get::<_, i64>(3)? as u64 })
}

/// Brings a database made by an older server up to the current schema.
fn migrate(c: &Connection) -> rusqlite::Result<()> {
    // Room codes used to be stored as text: keep them working, as hashes.
    let old: bool = c.query_row("SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'room_codes'", [], |r| r.get(0))?;
    if old {
        let rows: Vec<(String, String, String, bool, i64)> = {
            let mut st = c.prepare("SELECT code, room_id, role, enabled, created_at FROM room_codes")?;
            let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        c.execute_batch("BEGIN")?;
        for (code, room, role, enabled, created) in rows {
            c.execute(
                "INSERT OR IGNORE INTO room_code_hashes(hash, room_id, role, enabled, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![crate::codes::hash(&code), room, role, enabled, created],
            )?;
        }
        // Zero the old rows' pages, and keep no copy in the WAL: the text is what a file
        // read must not find.
        c.execute_batch("PRAGMA secure_delete = ON; DROP TABLE room_codes; COMMIT; PRAGMA secure_delete = OFF;")?;
        c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    }
    let has: bool = c.query_row("SELECT COUNT(*) FROM pragma_table_info('sessions') WHERE name = 'ended_by_user'", [], |r| r.get(0))?;
    if !has {
        c.execute_batch("ALTER TABLE sessions ADD COLUMN ended_by_user TEXT")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lock_and_history_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let opened = |sid: &str, at| Event::SessionOpened { room_id: "r1".into(), session_id: sid.into(), at };
        s.record(vec![opened("s1", 10)]);
        let by = crate::events::By::Peer { peer_id: "p1".into(), user_id: "u1".into() };
        let reason = CloseReason::Ended { by, message: "bye".into(), locked: true };
        let close = Event::SessionClosed { room_id: "r1".into(), session_id: "s1".into(), started_at: 10, at: 11, reason };
        s.end_session("r1", "s1", Some(Ender { peer_id: "p1", user_id: "u1" }), "bye", true, close).await.unwrap();
        s.record(vec![opened("s2", 20)]);
        s.checkpoint().await.unwrap();
        drop(s);
        let s = Store::open(dir.path()).unwrap();
        assert_eq!(s.disabled_rooms().await.unwrap(), vec!["r1".to_string()]);
        let (h, more) = s.sessions("r1", None, 10).await.unwrap();
        assert!(more.is_none());
        assert_eq!(h.len(), 2);
        assert_eq!((h[0].ended_by.as_deref(), h[0].reason.as_deref(), h[0].locked), (Some("p1"), Some("bye"), true));
        let ends = s.ends_since(0).await.unwrap();
        assert_eq!((ends.len(), ends[0].peer_id.as_str(), ends[0].user_id.as_str(), ends[0].reason.as_str()), (1, "p1", "u1", "bye"));
        assert!(s.ends_since(crate::clock::now_millis() + 1000).await.unwrap().is_empty());
        // s2 was left open: reopening closes it as "server stopped".
        assert_eq!(h[1].reason.as_deref(), Some("server stopped"));
        s.set_enabled("r1", true).await.unwrap();
        assert!(s.disabled_rooms().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_failing_job_undoes_only_itself_in_a_shared_commit() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let bad = s.call(|c| {
            c.execute("INSERT INTO rooms(room_id, enabled, updated_at) VALUES ('half', 0, 1)", [])?;
            c.execute("INSERT INTO no_such_table VALUES (1)", []).map(|_| ())
        });
        let good = s.set_enabled("locked", false);
        let many: Vec<_> = (0..50).map(|i| s.set_enabled(Box::leak(format!("r{i}").into_boxed_str()), false)).collect();
        let (bad, good, many) = tokio::join!(bad, good, futures_util::future::join_all(many));
        assert!(bad.is_err());
        good.unwrap();
        assert!(many.iter().all(|r| r.is_ok()));
        let mut rooms = s.disabled_rooms().await.unwrap();
        rooms.sort();
        assert_eq!(rooms.len(), 51, "the failed job's first insert was rolled back: {rooms:?}");
        assert!(!rooms.contains(&"half".to_string()));
    }

    #[tokio::test]
    async fn the_lock_listener_hears_committed_lock_changes_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let heard = Arc::new(std::sync::Mutex::new(Vec::new()));
        let h = heard.clone();
        s.on_lock_change(Box::new(move |room, locked| h.lock().unwrap().push((room.to_owned(), locked))));
        s.record(vec![Event::SessionOpened { room_id: "r".into(), session_id: "s1".into(), at: 1 }]);
        let close = |room: &str, sid: &str, locked| Event::SessionClosed {
            room_id: room.into(),
            session_id: sid.into(),
            started_at: 1,
            at: 2,
            reason: CloseReason::Ended { by: crate::events::By::Api, message: "bye".into(), locked },
        };
        let (a, b, c) = tokio::join!(
            s.set_enabled("r", false),
            s.end_session("r", "s1", None, "bye", true, close("r", "s1", true)),
            s.set_enabled("r", true)
        );
        a.unwrap();
        b.unwrap();
        c.unwrap();
        s.end_session("q", "none", None, "no lock", false, close("q", "none", false)).await.unwrap();
        let heard = heard.lock().unwrap().clone();
        assert_eq!(heard, [("r".to_owned(), true), ("r".to_owned(), true), ("r".to_owned(), false)]);
        assert!(s.disabled_rooms().await.unwrap().is_empty(), "the last change wins on disk as in memory");
    }

    #[tokio::test]
    async fn room_codes_are_kept_as_hashes_one_per_role() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        s.issue_codes("r", vec![("host".into(), "h1".into()), ("guest".into(), "g1".into())]).await.unwrap();
        assert_eq!(s.find_code("g1").await.unwrap().unwrap().role, "guest");
        s.issue_codes("r", vec![("guest".into(), "g2".into())]).await.unwrap();
        assert!(s.find_code("g1").await.unwrap().is_none(), "replaced");
        assert!(s.find_code("h1").await.unwrap().is_some(), "the other role's code stays");
        assert!(s.set_code_enabled("g2", false).await.unwrap());
        assert!(!s.find_code("g2").await.unwrap().unwrap().enabled);
        assert!(!s.set_code_enabled("nope", false).await.unwrap());
        let all = s.codes("r").await.unwrap();
        assert_eq!(all.iter().map(|c| c.role.as_str()).collect::<Vec<_>>(), ["guest", "host"]);
        assert!(all.iter().all(|c| c.code.is_none()));
    }

    #[test]
    fn text_codes_of_an_older_server_become_hashes() {
        let dir = tempfile::tempdir().unwrap();
        {
            let c = Connection::open(dir.path().join("hms.sqlite3")).unwrap();
            c.execute_batch(
                "CREATE TABLE room_codes (code TEXT PRIMARY KEY, room_id TEXT NOT NULL, role TEXT NOT NULL,
                   enabled INTEGER NOT NULL DEFAULT 1, created_at INTEGER NOT NULL, UNIQUE(room_id, role));
                 INSERT INTO room_codes VALUES ('abc-defg-hij', 'r', 'host', 1, 5);",
            )
            .unwrap();
        }
        let s = Store::open(dir.path()).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let found = rt.block_on(s.find_code(&crate::codes::hash("abc-defg-hij"))).unwrap().unwrap();
        assert_eq!((found.room_id.as_str(), found.role.as_str(), found.created_at), ("r", "host", 5));
        drop(s);
        let c = Connection::open(dir.path().join("hms.sqlite3")).unwrap();
        let old: i64 = c.query_row("SELECT COUNT(*) FROM sqlite_master WHERE name = 'room_codes'", [], |r| r.get(0)).unwrap();
        assert_eq!(old, 0, "the text table is gone");
    }
}
