//! The webhook outbox's SQL: events are written into `webhook_outbox` in the transaction
//! of the change they report (the transactional-outbox pattern), one row per event and
//! target; the sender reads them through its own connection ([`OutboxReader`]) and
//! acknowledges, reschedules or gives up on them through the store thread. Events past
//! their retry budget move to `webhook_failed`, where the REST API lists and replays them.
//!
//! `live_peers` mirrors who is in a running session (written only while webhooks are on),
//! so that after a crash every peer of a dangling session still gets its leave.

use super::{now_ms, Store};
use crate::error::Error;
use crate::events::{By, Event, LeaveReason, PeerDetails, PeerRecord};
use rusqlite::{params, Connection};
use std::path::Path;
use std::sync::Mutex;

pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS webhook_outbox (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id   TEXT NOT NULL,
    target     TEXT NOT NULL,
    room_id    TEXT NOT NULL,
    type       TEXT NOT NULL,
    body       TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    attempts   INTEGER NOT NULL DEFAULT 0,
    next_at    INTEGER NOT NULL DEFAULT 0,
    last_error TEXT
);
CREATE INDEX IF NOT EXISTS webhook_outbox_queue ON webhook_outbox(target, room_id, seq);
CREATE TABLE IF NOT EXISTS webhook_failed (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id   TEXT NOT NULL,
    target     TEXT NOT NULL,
    room_id    TEXT NOT NULL,
    type       TEXT NOT NULL,
    body       TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    attempts   INTEGER NOT NULL,
    failed_at  INTEGER NOT NULL,
    last_error TEXT
);
CREATE INDEX IF NOT EXISTS webhook_failed_event ON webhook_failed(event_id);
CREATE TABLE IF NOT EXISTS live_peers (
    room_id    TEXT NOT NULL,
    session_id TEXT NOT NULL,
    peer_id    TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    role       TEXT NOT NULL,
    name       TEXT NOT NULL,
    data       TEXT NOT NULL,
    joined_at  INTEGER NOT NULL,
    PRIMARY KEY (room_id, peer_id)
) WITHOUT ROWID;
";

/// One event as the outbox stores it.
#[derive(Debug, Clone)]
pub struct Encoded {
    /// The event id the receiver deduplicates with (the same for every target).
    pub id: String,
    /// The event type (`peer.leave.success`, ...).
    pub kind: &'static str,
    /// The exact body to POST (and sign).
    pub body: String,
}

/// How the store turns events into outbox rows; given when webhooks are on.
pub struct OutboxWriter {
    /// Target URLs: each event gets one row per target.
    pub targets: Vec<String>,
    /// The body of an event.
    pub encode: Box<dyn Fn(&Event) -> Encoded + Send + Sync>,
    /// Called after a commit that added rows (wakes the sender).
    pub on_commit: Box<dyn Fn() + Send + Sync>,
}

/// A pending delivery: one event for one target.
#[derive(Debug, Clone)]
pub struct Pending {
    /// Its place in the queue (increasing in commit order).
    pub seq: i64,
    /// The event id.
    pub event_id: String,
    /// The body to POST.
    pub body: String,
    /// Attempts made so far.
    pub attempts: u32,
    /// When the event was written, ms since the Unix epoch (the retry budget runs from it).
    pub created_at: u64,
    /// Not before this time, ms since the Unix epoch.
    pub next_at: u64,
}

/// An event that ran out of retries.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Failed {
    /// Cursor for the next page.
    pub seq: i64,
    /// The event id.
    pub id: String,
    /// The target it could not reach.
    pub target: String,
    /// The room.
    pub room_id: String,
    /// The event type.
    #[serde(rename = "type")]
    pub kind: String,
    /// Attempts made.
    pub attempts: u32,
    /// The last attempt's error.
    pub last_error: Option<String>,
    /// When the event was written, ms since the Unix epoch.
    pub created_at: u64,
    /// When it was given up, ms since the Unix epoch.
    pub failed_at: u64,
    /// The body that was sent.
    #[serde(skip)]
    pub body: String,
}

/// Writes `events`' outbox rows (and keeps `live_peers` current) inside the caller's
/// transaction. Returns whether rows were added.
pub(super) fn write(c: &Connection, w: &OutboxWriter, events: &[Event]) -> rusqlite::Result<bool> {
    let now = now_ms();
    let mut insert = c.prepare_cached(
        "INSERT INTO webhook_outbox(event_id, target, room_id, type, body, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    for e in events {
        match e {
            Event::PeerJoined { room_id, session_id, peer } => {
                let d = peer.details();
                c.prepare_cached(
                    "INSERT OR REPLACE INTO live_peers(room_id, session_id, peer_id, user_id, role, name, data, joined_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                )?
                .execute(params![room_id, session_id, peer.peer_id, peer.user_id, peer.role, d.name, d.data, d.joined_at as i64])?;
            }
            Event::PeerLeft { room_id, peer, .. } => {
                c.prepare_cached("DELETE FROM live_peers WHERE room_id = ?1 AND peer_id = ?2")?.execute(params![room_id, peer.peer_id])?;
            }
            _ => {}
        }
        let enc = (w.encode)(e);
        for target in &w.targets {
            insert.execute(params![enc.id, target, e.room_id(), enc.kind, enc.body, now])?;
        }
    }
    Ok(!events.is_empty() && !w.targets.is_empty())
}

/// At start: the peers still recorded as present, each as a leave, read before the
/// dangling sessions are closed. A peer of a session that is still open left because the
/// server stopped; a peer of a session already ended was in an end-room whose leaves the
/// crash cut off (they are stored after the end), so its leave is that end's. Returns
/// (session id, whether that session is still open, the leave).
pub(super) fn stranded_peers(c: &Connection, now: u64) -> rusqlite::Result<Vec<(String, bool, Event)>> {
    let mut st = c.prepare(
        "SELECT p.room_id, p.session_id, p.peer_id, p.user_id, p.role, p.name, p.data, p.joined_at,
                s.ended_at, s.ended_by, s.ended_by_user, s.reason
         FROM live_peers p LEFT JOIN sessions s ON s.session_id = p.session_id ORDER BY p.joined_at, p.peer_id",
    )?;
    let rows = st.query_map([], |r| {
        let session_id: String = r.get(1)?;
        let ended_at: Option<i64> = r.get(8)?;
        let (at, reason) = match ended_at {
            None => (now, LeaveReason::ServerStopped),
            Some(t) => {
                let by = match (r.get::<_, Option<String>>(9)?, r.get::<_, Option<String>>(10)?) {
                    (Some(peer_id), user) => By::Peer { peer_id, user_id: user.unwrap_or_default() },
                    (None, _) => By::Api,
                };
                (t as u64, LeaveReason::RoomEnded { by, message: r.get::<_, Option<String>>(11)?.unwrap_or_default() })
            }
        };
        let details = PeerDetails { name: r.get(5)?, data: r.get(6)?, joined_at: r.get::<_, i64>(7)? as u64 };
        let peer = PeerRecord::new(&r.get::<_, String>(2)?, &r.get::<_, String>(3)?, &r.get::<_, String>(4)?, &details);
        let leave = Event::PeerLeft { room_id: r.get(0)?, session_id: session_id.clone(), peer, at, reason };
        Ok((session_id, ended_at.is_none(), leave))
    })?;
    rows.collect()
}

/// At start: pending rows for targets no longer configured can never be sent; they move
/// to the failed list (where they stay visible) instead of waiting forever.
pub(super) fn retire_unknown_targets(c: &Connection, targets: &[String]) -> rusqlite::Result<usize> {
    let mut st = c.prepare("SELECT DISTINCT target FROM webhook_outbox")?;
    let known: Vec<String> = st.query_map([], |r| r.get(0))?.collect::<rusqlite::Result<_>>()?;
    let mut moved = 0;
    for t in known.iter().filter(|t| !targets.contains(t)) {
        moved += c.execute(
            "INSERT INTO webhook_failed(event_id, target, room_id, type, body, created_at, attempts, failed_at, last_error)
             SELECT event_id, target, room_id, type, body, created_at, attempts, ?2, 'the target is no longer configured'
             FROM webhook_outbox WHERE target = ?1 ORDER BY seq",
            params![t, now_ms()],
        )?;
        c.execute("DELETE FROM webhook_outbox WHERE target = ?1", params![t])?;
    }
    Ok(moved)
}

/// The sender's read side: its own connection to the database, so that scanning the
/// queue never waits for (or holds up) the store thread's commits. WAL lets it read
/// while the store writes.
pub struct OutboxReader {
    conn: Mutex<Connection>,
}

impl OutboxReader {
    /// Opens a reading connection to `<data_dir>/hms.sqlite3`.
    pub fn open(data_dir: &Path) -> Result<OutboxReader, Error> {
        let path = data_dir.join("hms.sqlite3");
        let conn = Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .and_then(|c| c.execute_batch("PRAGMA busy_timeout=5000;").map(|_| c))
            .map_err(|e| Error::Config(format!("opening {} for the webhook sender: {e}", path.display())))?;
        Ok(OutboxReader { conn: Mutex::new(conn) })
    }

    fn with<R>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<R>) -> Result<R, Error> {
        let c = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        f(&c).map_err(|e| Error::Store(e.to_string()))
    }

    /// The rooms of `target` with pending events and when each one's oldest event is due
    /// (0 = now), soonest first, at most `limit`: the rooms to deliver now, and when to
    /// look again, in one scan.
    pub fn heads(&self, target: &str, limit: usize) -> Result<Vec<(String, u64)>, Error> {
        self.with(|c| {
            // SQLite takes a bare column of a MIN() aggregate from the row with the minimum.
            let mut st = c.prepare_cached(
                "SELECT room_id, next_at FROM
                   (SELECT room_id, MIN(seq) AS head, next_at FROM webhook_outbox WHERE target = ?1 GROUP BY room_id)
                 ORDER BY next_at, head LIMIT ?2",
            )?;
            let rows = st.query_map(params![target, limit as i64], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u64)))?;
            rows.collect()
        })
    }

    /// The pending events of (`target`, `room_id`), oldest first, at most `limit`.
    pub fn pending(&self, target: &str, room_id: &str, limit: usize) -> Result<Vec<Pending>, Error> {
        self.with(|c| {
            let mut st = c.prepare_cached(
                "SELECT seq, event_id, body, attempts, created_at, next_at FROM webhook_outbox
                 WHERE target = ?1 AND room_id = ?2 ORDER BY seq LIMIT ?3",
            )?;
            let rows = st.query_map(params![target, room_id, limit as i64], |r| {
                Ok(Pending {
                    seq: r.get(0)?,
                    event_id: r.get(1)?,
                    body: r.get(2)?,
                    attempts: r.get(3)?,
                    created_at: r.get::<_, i64>(4)? as u64,
                    next_at: r.get::<_, i64>(5)? as u64,
                })
            })?;
            rows.collect()
        })
    }
}

impl Store {
    /// Removes delivered rows.
    pub async fn outbox_delivered(&self, seqs: Vec<i64>) -> Result<(), Error> {
        if seqs.is_empty() {
            return Ok(());
        }
        self.call(move |c| {
            let mut st = c.prepare_cached("DELETE FROM webhook_outbox WHERE seq = ?1")?;
            for s in seqs {
                st.execute(params![s])?;
            }
            Ok(())
        })
        .await
    }

    /// Records a failed attempt: try again at `next_at`.
    pub async fn outbox_retry(&self, seq: i64, attempts: u32, next_at: u64, error: String) -> Result<(), Error> {
        self.call(move |c| {
            c.execute(
                "UPDATE webhook_outbox SET attempts = ?2, next_at = ?3, last_error = ?4 WHERE seq = ?1",
                params![seq, attempts, next_at as i64, error],
            )
            .map(|_| ())
        })
        .await
    }

    /// Gives up on a row past its retry budget: it moves to the failed list.
    pub async fn outbox_give_up(&self, seq: i64, attempts: u32, error: String) -> Result<(), Error> {
        self.call(move |c| {
            c.execute(
                "INSERT INTO webhook_failed(event_id, target, room_id, type, body, created_at, attempts, failed_at, last_error)
                 SELECT event_id, target, room_id, type, body, created_at, ?2, ?3, ?4 FROM webhook_outbox WHERE seq = ?1",
                params![seq, attempts, now_ms(), error],
            )?;
            c.execute("DELETE FROM webhook_outbox WHERE seq = ?1", params![seq]).map(|_| ())
        })
        .await
    }

    /// The failed list after `after` (a `seq` cursor), oldest first, at most `limit`.
    pub async fn outbox_failed(&self, after: i64, limit: usize) -> Result<Vec<Failed>, Error> {
        self.call(move |c| {
            let mut st = c.prepare(
                "SELECT seq, event_id, target, room_id, type, attempts, last_error, created_at, failed_at, body
                 FROM webhook_failed WHERE seq > ?1 ORDER BY seq LIMIT ?2",
            )?;
            let rows = st.query_map(params![after, limit as i64], |r| {
                Ok(Failed {
                    seq: r.get(0)?,
                    id: r.get(1)?,
                    target: r.get(2)?,
                    room_id: r.get(3)?,
                    kind: r.get(4)?,
                    attempts: r.get(5)?,
                    last_error: r.get(6)?,
                    created_at: r.get::<_, i64>(7)? as u64,
                    failed_at: r.get::<_, i64>(8)? as u64,
                    body: r.get(9)?,
                })
            })?;
            rows.collect()
        })
        .await
    }

    /// Queues a failed event again (for each target it failed for that is still in
    /// `targets`), behind its room's pending events, with a fresh retry budget. Returns
    /// how many rows were queued and how many stay failed (target gone).
    pub async fn outbox_replay(&self, event_id: &str, targets: Vec<String>) -> Result<(usize, usize), Error> {
        let id = event_id.to_owned();
        let r = self
            .call(move |c| {
                let rows: Vec<(i64, String)> = {
                    let mut st = c.prepare("SELECT seq, target FROM webhook_failed WHERE event_id = ?1 ORDER BY seq")?;
                    let rows = st.query_map(params![id], |r| Ok((r.get(0)?, r.get(1)?)))?;
                    rows.collect::<rusqlite::Result<_>>()?
                };
                let (mut queued, mut kept) = (0, 0);
                for (seq, target) in rows {
                    if !targets.contains(&target) {
                        kept += 1;
                        continue;
                    }
                    c.execute(
                        "INSERT INTO webhook_outbox(event_id, target, room_id, type, body, created_at)
                         SELECT event_id, target, room_id, type, body, ?2 FROM webhook_failed WHERE seq = ?1",
                        params![seq, now_ms()],
                    )?;
                    c.execute("DELETE FROM webhook_failed WHERE seq = ?1", params![seq])?;
                    queued += 1;
                }
                Ok((queued, kept))
            })
            .await;
        if matches!(r, Ok((n, _)) if n > 0) {
            self.outbox_committed();
        }
        r
    }

    /// How many rows wait in the outbox (for metrics and tests).
    pub async fn outbox_len(&self) -> Result<u64, Error> {
        self.call(|c| c.query_row("SELECT COUNT(*) FROM webhook_outbox", [], |r| r.get::<_, i64>(0)).map(|n| n as u64)).await
    }

    /// Wakes the sender after rows were committed outside the event path.
    pub(super) fn outbox_committed(&self) {
        if let Some(w) = &self.outbox {
            (w.on_commit)();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{CloseReason, PeerDetails, PeerRecord};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    fn writer(targets: &[&str], commits: Arc<AtomicUsize>) -> OutboxWriter {
        OutboxWriter {
            targets: targets.iter().map(|t| t.to_string()).collect(),
            // The body names the event, so the tests can read what was queued.
            encode: Box::new(|e| Encoded { id: uuid::Uuid::new_v4().to_string(), kind: "test", body: format!("{e:?}") }),
            on_commit: Box::new(move || {
                commits.fetch_add(1, Ordering::SeqCst);
            }),
        }
    }

    fn peer(id: &str) -> PeerRecord {
        PeerRecord::new(id, &format!("u-{id}"), "guest", &PeerDetails { name: id.into(), data: String::new(), joined_at: 5 })
    }

    fn opened(room: &str) -> Event {
        Event::SessionOpened { room_id: room.into(), session_id: format!("s-{room}"), at: 1 }
    }

    fn joined(room: &str, p: &str) -> Event {
        Event::PeerJoined { room_id: room.into(), session_id: format!("s-{room}"), peer: peer(p) }
    }

    #[tokio::test]
    async fn events_queue_per_target_and_room_in_order_and_retry_fail_and_replay() {
        let dir = tempfile::tempdir().unwrap();
        let commits = Arc::new(AtomicUsize::new(0));
        let s = Store::open_with(dir.path(), Some(writer(&["t1", "t2"], commits.clone()))).unwrap();
        let r = OutboxReader::open(dir.path()).unwrap();
        s.record(vec![opened("r1"), joined("r1", "a")]);
        s.record(vec![opened("r2")]);
        s.record(vec![joined("r1", "b")]);
        s.flush().await.unwrap();
        assert!(commits.load(Ordering::SeqCst) >= 1, "the sender was woken");
        let now = crate::clock::now_millis();
        let heads = |r: &OutboxReader| r.heads("t1", 10).unwrap();
        assert_eq!(heads(&r), [("r1".to_string(), 0), ("r2".to_string(), 0)]);
        let q = r.pending("t2", "r1", 10).unwrap();
        assert_eq!(q.len(), 3);
        assert!(q[0].body.starts_with("SessionOpened") && q[1].body.contains("\"a\"") && q[2].body.contains("\"b\""));
        assert!(q.windows(2).all(|w| w[0].seq < w[1].seq));
        let t1 = r.pending("t1", "r1", 10).unwrap();
        assert_eq!(t1[0].event_id, q[0].event_id, "one id per event, whatever the target");

        s.outbox_delivered(vec![t1[0].seq]).await.unwrap();
        let head = &r.pending("t1", "r1", 10).unwrap()[0];
        assert_eq!(head.event_id, t1[1].event_id);
        // A failed attempt: the room waits out its backoff, the others do not.
        s.outbox_retry(head.seq, 1, now + 60_000, "HTTP 500".into()).await.unwrap();
        assert_eq!(heads(&r), [("r2".to_string(), 0), ("r1".to_string(), now + 60_000)]);
        assert_eq!(r.heads("t1", 1).unwrap(), [("r2".to_string(), 0)]);
        // Past the budget: it moves to the failed list and the room's next event is the head.
        s.outbox_give_up(head.seq, 7, "HTTP 503".into()).await.unwrap();
        let failed = s.outbox_failed(0, 10).await.unwrap();
        assert_eq!((failed.len(), failed[0].id.as_str(), failed[0].attempts, failed[0].last_error.as_deref()), (1, head.event_id.as_str(), 7, Some("HTTP 503")));
        assert_eq!(r.pending("t1", "r1", 10).unwrap()[0].event_id, t1[2].event_id);
        // Replay queues it again behind the room's pending events, same id and body.
        assert_eq!(s.outbox_replay(&head.event_id, vec!["t1".into()]).await.unwrap(), (1, 0));
        let again = r.pending("t1", "r1", 10).unwrap();
        assert_eq!((again.len(), again[1].event_id.as_str(), again[1].attempts), (2, head.event_id.as_str(), 0));
        assert!(s.outbox_failed(0, 10).await.unwrap().is_empty());
        assert_eq!(s.outbox_replay("nope", vec!["t1".into()]).await.unwrap(), (0, 0));
    }

    #[tokio::test]
    async fn a_crash_leaves_nothing_unreported_and_retired_targets_are_listed() {
        let dir = tempfile::tempdir().unwrap();
        let commits = Arc::new(AtomicUsize::new(0));
        {
            let s = Store::open_with(dir.path(), Some(writer(&["t1"], commits.clone()))).unwrap();
            s.record(vec![opened("r"), joined("r", "a")]);
            s.record(vec![joined("r", "b")]);
            let left = Event::PeerLeft { room_id: "r".into(), session_id: "s-r".into(), peer: peer("a"), at: 9, reason: LeaveReason::Left };
            s.record(vec![left]);
            s.flush().await.unwrap();
            // Dropped without shutting down: the session is still open on disk.
        }
        let s = Store::open_with(dir.path(), Some(writer(&["t1"], commits.clone()))).unwrap();
        let r = OutboxReader::open(dir.path()).unwrap();
        let q = r.pending("t1", "r", 10).unwrap();
        let tail: Vec<&str> = q[4..].iter().map(|p| p.body.as_str()).collect();
        assert_eq!(q.len(), 6, "{tail:?}");
        assert!(tail[0].starts_with("SessionClosed") && tail[0].contains(&format!("{:?}", CloseReason::ServerStopped)), "{tail:?}");
        assert!(tail[1].starts_with("PeerLeft") && tail[1].contains("peer_id: \"b\"") && tail[1].contains("ServerStopped"), "{tail:?}");
        assert_eq!(s.sessions("r", None, 10).await.unwrap().0[0].reason.as_deref(), Some("server stopped"));
        drop((s, r));
        // Restarted with another target: the old one's rows are listed as failed.
        let s = Store::open_with(dir.path(), Some(writer(&["t2"], commits))).unwrap();
        let failed = s.outbox_failed(0, 100).await.unwrap();
        assert_eq!(failed.len(), 6);
        assert!(failed.iter().all(|f| f.target == "t1" && f.last_error.as_deref() == Some("the target is no longer configured")));
        assert_eq!(s.outbox_replay(&failed[0].id, vec!["t2".into()]).await.unwrap(), (0, 1), "not sent to a target it was not for");
    }

    #[tokio::test]
    async fn leaves_an_end_room_stored_before_a_crash_are_reported_at_the_restart() {
        let dir = tempfile::tempdir().unwrap();
        let commits = Arc::new(AtomicUsize::new(0));
        {
            let s = Store::open_with(dir.path(), Some(writer(&["t1"], commits.clone()))).unwrap();
            s.record(vec![opened("r"), joined("r", "a"), joined("r", "b")]);
            let by = By::Peer { peer_id: "a".into(), user_id: "u-a".into() };
            let reason = CloseReason::Ended { by, message: "over".into(), locked: false };
            let close = Event::SessionClosed { room_id: "r".into(), session_id: "s-r".into(), started_at: 1, at: 2, reason };
            let ender = super::super::Ender { peer_id: "a", user_id: "u-a" };
            s.end_session("r", "s-r", Some(ender), "over", false, close).await.unwrap();
            // The crash comes before the peers' leaves are stored.
        }
        let _s = Store::open_with(dir.path(), Some(writer(&["t1"], commits))).unwrap();
        let r = OutboxReader::open(dir.path()).unwrap();
        let q: Vec<String> = r.pending("t1", "r", 10).unwrap().into_iter().map(|p| p.body).collect();
        assert_eq!(q.len(), 6, "{q:#?}");
        assert!(q[3].starts_with("SessionClosed"), "the close came first: {q:#?}");
        for (leave, who) in q[4..].iter().zip(["a", "b"]) {
            assert!(leave.starts_with("PeerLeft") && leave.contains(&format!("peer_id: \"{who}\"")), "{leave}");
            assert!(leave.contains("RoomEnded") && leave.contains("message: \"over\"") && leave.contains("user_id: \"u-a\""), "{leave}");
        }
    }
}

