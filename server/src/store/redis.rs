//! The store of a node in distributed mode: the same durable state as the SQLite store
//! (room locks, session history and end records, room codes), kept in Redis so that
//! every node of a cluster sees it. Every key is listed in [`keys`] and in
//! docs/SCALING.md.
//!
//! Durability: an `end-room` with lock writes the session's end and the lock in one
//! MULTI/EXEC and answers only after Redis replied; with `appendonly yes` and
//! `appendfsync always` (checked at start, see `crate::cluster`) Redis replies after the
//! AOF is fsynced, so a lock that was acknowledged survives a crash of Redis.
//! The events the rooms report ([`Event`]s) are written in the background by one writer
//! task, in the order reported: each batch of a room is one script ([`RECORD`]) writing
//! the history records and, with webhooks, the outbox rows (`super::redis_outbox`), all
//! or nothing, fenced by the room's lease (only its owner writes). The end of an
//! end-room and a lock change write their event's rows in their own `MULTI`.

use super::redis_outbox::{target_key, RECORD, RECORD_SRC};
use super::{EndRecord, Ender, OutboxWriter, RoomCode, SessionRecord};
use crate::error::Error;
use crate::events::{CloseReason, Event};
use crate::redis_link::RedisLink;
use ::redis::{cmd, pipe, Pipeline, Script};
use std::collections::HashMap;
use std::sync::{Arc, LazyLock, OnceLock};
use tokio::sync::{mpsc, oneshot};

/// Every key of the Redis store. A room id sits between `{}` (a Redis Cluster hash tag:
/// one room's keys share a slot) and the suffixes have no `:`, so no two (room, suffix)
/// pairs make the same key whatever the room id contains.
pub mod keys {
    /// `"0"` while the room is disabled (locked); absent when enabled.
    pub fn disabled(room: &str) -> String {
        format!("hms:room:{{{room}}}:disabled")
    }
    /// Set of the disabled rooms' ids.
    pub const DISABLED_ROOMS: &str = "hms:rooms:disabled";
    /// Hash of one session: `room_id`, `started_at`, `ended_at`, `ended_by`,
    /// `ended_by_user`, `reason`, `locked`.
    pub fn session(session_id: &str) -> String {
        format!("hms:session:{session_id}")
    }
    /// Sorted set of a room's session ids, scored by their number in the room (1, 2,
    /// ... in the order they were recorded): the cursor of the history's pages.
    pub fn sessions(room: &str) -> String {
        format!("hms:room:{{{room}}}:sessions")
    }
    /// The last number given to a session of the room ([`sessions`]).
    pub fn session_seq(room: &str) -> String {
        format!("hms:room:{{{room}}}:sessionseq")
    }
    /// Sorted set of the sessions a peer ended, scored by end (ms), trimmed to the last
    /// [`crate::room::END_NOTICE_TTL`].
    pub const ENDS: &str = "hms:ends";
    /// Hash of one room code, named by the code's hash (`crate::codes::hash`; the text
    /// is never stored): `room_id`, `role`, `enabled`, `created_at`.
    pub fn code(hash: &str) -> String {
        format!("{CODE_PREFIX}{hash}")
    }
    /// What [`code`] puts before the hash (the code scripts build the key from it).
    pub const CODE_PREFIX: &str = "hms:code:";
    /// Hash of a room's codes: role -> the code's hash.
    pub fn codes(room: &str) -> String {
        format!("hms:room:{{{room}}}:codes")
    }
}

/// Who may write a room's records: the room's owner key and this node's token of its
/// lease (empty when it does not hold it: then nothing is written). Given by the cluster.
pub type Fence = Box<dyn Fn(&str) -> (String, String) + Send + Sync>;

/// The store over Redis. Cheap to clone.
#[derive(Clone)]
pub struct RedisStore {
    redis: RedisLink,
    /// The background writer: history writes in the order they were recorded.
    writes: mpsc::UnboundedSender<Write>,
    /// Set when webhooks are on: events also become outbox rows.
    outbox: Option<Arc<OutboxWriter>>,
    fence: Arc<OnceLock<Fence>>,
}

/// One background write, or a marker answered once everything before it was written.
enum Write {
    Pipe(&'static str, Pipeline),
    /// [`RECORD`]'s arguments.
    Record(Vec<String>),
    Flushed(oneshot::Sender<()>),
}

/// How long the writer keeps retrying a batch of events while Redis is unreachable
/// (later writes wait behind it, in order).
const RECORD_RETRY: std::time::Duration = std::time::Duration::from_secs(30);

/// Writes the background writes in order; a failure is logged (the history misses that
/// record) and the next goes on.
async fn writer(redis: RedisLink, outbox: Option<Arc<OutboxWriter>>, mut rx: mpsc::UnboundedReceiver<Write>) {
    while let Some(w) = rx.recv().await {
        let r = match w {
            Write::Pipe(what, p) => redis.pipe::<()>(&p).await.map_err(|e| (what, e)),
            Write::Record(args) => {
                let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
                let deadline = std::time::Instant::now() + RECORD_RETRY;
                let r = loop {
                    match redis.script::<i64>(&RECORD, &[], &args).await {
                        Err(Error::Unavailable(_)) if std::time::Instant::now() < deadline => {
                            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                        }
                        r => break r,
                    }
                };
                match r {
                    Ok(-1) => {
                        tracing::warn!(room = ?args.get(2).map(|r| String::from_utf8_lossy(r)), "store: events of a room this node no longer owns were not written");
                        Ok(())
                    }
                    Ok(rows) => {
                        if rows > 0 {
                            if let Some(w) = &outbox {
                                (w.on_commit)();
                            }
                        }
                        Ok(())
                    }
                    Err(e) => Err(("recording room events", e)),
                }
            }
            Write::Flushed(done) => {
                let _ = done.send(());
                Ok(())
            }
        };
        if let Err((what, e)) = r {
            tracing::error!(error = %e, "store: {what} failed");
        }
    }
}

fn now_ms() -> u64 {
    crate::clock::now_millis()
}

/// Lists a session in its room's history, numbered after the room's last one, unless
/// it is listed already. KEYS: the room's sessions, its sequence; ARGV[1]: session id.
/// Sent as EVAL inside a pipeline or a MULTI (the start record's, or an end's whose
/// start has not landed).
const LIST_SESSION: &str = r"if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then
    redis.call('ZADD', KEYS[1], redis.call('INCR', KEYS[2]), ARGV[1])
  end
  return 1";

fn list_session(p: &mut Pipeline, room_id: &str, session_id: &str) {
    p.cmd("EVAL").arg(LIST_SESSION).arg(2).arg(keys::sessions(room_id)).arg(keys::session_seq(room_id)).arg(session_id).ignore();
}

/// Keeps a room's `ARGV[1]` newest sessions: older ended ones are deleted, except end
/// records of a peer since `ARGV[2]` ms (a requester may reconnect for them), as the
/// SQLite store does. KEYS[1]: the room's sessions.
const PRUNE_SESSIONS: &str = r"local excess = redis.call('ZCARD', KEYS[1]) - tonumber(ARGV[1])
  if excess <= 0 then return 0 end
  local removed = 0
  for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, excess - 1)) do
    local h = 'hms:session:' .. id
    local e = redis.call('HMGET', h, 'ended_at', 'ended_by')
    if e[1] and not (e[2] and tonumber(e[1]) >= tonumber(ARGV[2])) then
      redis.call('ZREM', KEYS[1], id)
      redis.call('DEL', h)
      removed = removed + 1
    end
  end
  return removed";

/// Stores issued codes of a room: each replaces its role's previous code (whose record
/// goes: it stops working) and starts enabled. KEYS[1]: the room's codes; ARGV: key
/// prefix of a code, room id, now, then (role, hash) pairs.
static ISSUE_CODES: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"for i = 4, #ARGV, 2 do
            local old = redis.call('HGET', KEYS[1], ARGV[i])
            if old then redis.call('DEL', ARGV[1] .. old) end
            redis.call('HSET', ARGV[1] .. ARGV[i + 1], 'room_id', ARGV[2], 'role', ARGV[i], 'enabled', '1', 'created_at', ARGV[3])
            redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
          end
          return 1",
    )
});

/// Enables or disables an existing code. KEYS[1] code hash; ARGV[1] "1" or "0".
static SET_CODE_ENABLED: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
          redis.call('HSET', KEYS[1], 'enabled', ARGV[1])
          return 1",
    )
});

fn flag(b: bool) -> &'static str {
    if b {
        "1"
    } else {
        "0"
    }
}

fn num(h: &HashMap<String, String>, k: &str) -> Option<u64> {
    h.get(k).and_then(|v| v.parse().ok())
}

/// A code's record (`None` when the hash holds none).
fn code_record(h: &HashMap<String, String>) -> Option<RoomCode> {
    let (room_id, role) = (h.get("room_id")?, h.get("role")?);
    Some(RoomCode {
        code: None,
        room_id: room_id.clone(),
        role: role.clone(),
        enabled: h.get("enabled").map_or(true, |v| v == "1"),
        created_at: num(h, "created_at").unwrap_or(0),
    })
}

impl RedisStore {
    /// The store over `redis` (starts its background writer); with `outbox`, events
    /// also become webhook outbox rows.
    pub fn new(redis: RedisLink, outbox: Option<OutboxWriter>) -> RedisStore {
        let (writes, rx) = mpsc::unbounded_channel();
        let outbox = outbox.map(Arc::new);
        tokio::spawn(writer(redis.clone(), outbox.clone(), rx));
        RedisStore { redis, writes, outbox, fence: Arc::default() }
    }

    /// Sets who may write each room's records (the cluster's leases). Later calls are
    /// ignored.
    pub fn set_fence(&self, fence: Fence) {
        let _ = self.fence.set(fence);
    }

    /// [`RECORD`]'s arguments for `events` of `room` (one event per 7 arguments after the
    /// targets), fenced by `fence` (`None`: unfenced).
    fn record_args(&self, room: &str, fence: Option<(String, String)>, events: &[Event]) -> Vec<String> {
        let (key, token) = fence.unwrap_or_default();
        let targets: &[String] = self.outbox.as_ref().map_or(&[], |w| &w.targets);
        let mut args = vec![key, token, room.to_owned(), now_ms().to_string(), targets.len().to_string()];
        for t in targets {
            args.push(target_key(t));
            args.push(t.clone());
        }
        for e in events {
            let (hist, sid, at, reason) = match e {
                Event::SessionOpened { session_id, at, .. } => ("o", session_id.as_str(), *at, ""),
                Event::SessionClosed { session_id, at, reason, .. } => match reason {
                    CloseReason::Emptied => ("c", session_id.as_str(), *at, "room empty"),
                    CloseReason::ServerShutdown => ("c", session_id.as_str(), *at, "server shutdown"),
                    CloseReason::ServerStopped => ("c", session_id.as_str(), *at, "server stopped"),
                    // end_session wrote it, with who and the lock.
                    CloseReason::Ended { .. } => ("-", "", 0, ""),
                },
                _ => ("-", "", 0, ""),
            };
            let enc = self.outbox.as_ref().map(|w| (w.encode)(e));
            if hist == "-" && enc.is_none() {
                continue;
            }
            let (id, kind, body) = enc.map(|e| (e.id, e.kind, e.body)).unwrap_or_default();
            args.extend([hist.to_owned(), sid.to_owned(), at.to_string(), reason.to_owned(), id, kind.to_owned(), body]);
        }
        args
    }

    /// Adds to `p` (a `MULTI`) the outbox rows of `event` (nothing without webhooks).
    fn outbox_rows(&self, p: &mut Pipeline, event: &Event) {
        if self.outbox.is_none() {
            return;
        }
        let args = self.record_args(event.room_id(), None, std::slice::from_ref(event));
        // The source, not its hash: a script Redis does not know would fail alone inside
        // the MULTI while the rest is applied.
        p.cmd("EVAL").arg(RECORD_SRC.as_str()).arg(0).arg(args).ignore();
    }

    /// The Redis connection (the cluster shares it).
    pub fn link(&self) -> &RedisLink {
        &self.redis
    }

    /// Rooms that are disabled (locked).
    pub async fn disabled_rooms(&self) -> Result<Vec<String>, Error> {
        self.redis.cmd(cmd("SMEMBERS").arg(keys::DISABLED_ROOMS)).await
    }

    /// Whether the room is disabled (locked).
    pub async fn is_disabled(&self, room_id: &str) -> Result<bool, Error> {
        let v: Option<String> = self.redis.cmd(cmd("GET").arg(keys::disabled(room_id))).await?;
        Ok(v.is_some())
    }

    /// Enables or disables (locks) a room; durable when this returns.
    pub async fn set_enabled(&self, room_id: &str, enabled: bool) -> Result<(), Error> {
        let mut p = pipe();
        p.atomic();
        if enabled {
            p.cmd("DEL").arg(keys::disabled(room_id)).ignore();
            p.cmd("SREM").arg(keys::DISABLED_ROOMS).arg(room_id).ignore();
        } else {
            p.cmd("SET").arg(keys::disabled(room_id)).arg("0").ignore();
            p.cmd("SADD").arg(keys::DISABLED_ROOMS).arg(room_id).ignore();
        }
        self.outbox_rows(&mut p, &Event::RoomEnabled { room_id: room_id.to_owned(), enabled, at: now_ms() });
        self.committed(self.redis.pipe(&p).await).await
    }

    /// Records what the rooms report (history; with webhooks, the outbox), in the
    /// background, in order: one fenced script per run of one room's events.
    pub fn record(&self, events: Vec<Event>) {
        let mut rest = &events[..];
        while let Some(first) = rest.first() {
            let room = first.room_id();
            let n = rest.iter().take_while(|e| e.room_id() == room).count();
            let (run, next) = rest.split_at(n);
            rest = next;
            let fence = self.fence.get().map(|f| f(room));
            let args = self.record_args(room, fence, run);
            if args.len() <= 5 + 2 * self.outbox.as_ref().map_or(0, |w| w.targets.len()) {
                continue;
            }
            if self.writes.send(Write::Record(args)).is_err() {
                tracing::error!("store: the Redis writer has stopped; room events are lost");
            }
        }
    }

    /// Waits until every background write recorded so far is done.
    pub async fn flush(&self) -> Result<(), Error> {
        let (done, wait) = oneshot::channel();
        let stopped = || Error::Store("the Redis writer has stopped".into());
        self.writes.send(Write::Flushed(done)).map_err(|_| stopped())?;
        tokio::time::timeout(self.redis.deadline() * 10, wait).await.map_err(|_| Error::Unavailable(crate::redis_link::UNAVAILABLE.into()))?.map_err(|_| stopped())
    }

    /// Records a session end and, with `locked`, disables the room, atomically; durable
    /// when this returns (given the AOF settings above).
    /// With webhooks, `close`'s outbox rows are written in the same `MULTI`.
    pub async fn end_session(&self, room_id: &str, session_id: &str, ended_by: Option<Ender<'_>>, reason: &str, locked: bool, close: Event) -> Result<(), Error> {
        let now = now_ms();
        let key = keys::session(session_id);
        let mut p = pipe();
        p.atomic();
        p.cmd("HSET").arg(&key).arg("room_id").arg(room_id).arg("ended_at").arg(now).arg("reason").arg(reason).arg("locked").arg(flag(locked)).ignore();
        // Listed even if its start record has not landed yet.
        list_session(&mut p, room_id, session_id);
        if let Some(e) = ended_by {
            p.cmd("HSET").arg(&key).arg("ended_by").arg(e.peer_id).arg("ended_by_user").arg(e.user_id).ignore();
            p.cmd("ZADD").arg(keys::ENDS).arg(now).arg(session_id).ignore();
            let horizon = now.saturating_sub(crate::room::END_NOTICE_TTL.as_millis() as u64);
            p.cmd("ZREMRANGEBYSCORE").arg(keys::ENDS).arg("-inf").arg(format!("({horizon}")).ignore();
        }
        if locked {
            p.cmd("SET").arg(keys::disabled(room_id)).arg("0").ignore();
            p.cmd("SADD").arg(keys::DISABLED_ROOMS).arg(room_id).ignore();
        }
        self.outbox_rows(&mut p, &close);
        self.committed(self.redis.pipe(&p).await).await
    }

    /// After a write with outbox rows: wakes this node's sender.
    async fn committed(&self, r: Result<(), Error>) -> Result<(), Error> {
        if let (Ok(()), Some(w)) = (&r, &self.outbox) {
            (w.on_commit)();
        }
        r
    }

    /// The end of a session as stored: (ended_by, reason) when it has ended.
    pub async fn session_end(&self, session_id: &str) -> Result<Option<(Option<String>, String)>, Error> {
        let (ended_at, by, reason): (Option<u64>, Option<String>, Option<String>) =
            self.redis.cmd(cmd("HMGET").arg(keys::session(session_id)).arg("ended_at").arg("ended_by").arg("reason")).await?;
        Ok(ended_at.map(|_| (by, reason.unwrap_or_default())))
    }

    /// One page of a room's session history, in the order recorded: at most `limit`
    /// sessions numbered after `after`; the page and its last number when more may follow.
    pub async fn sessions(&self, room_id: &str, after: Option<i64>, limit: usize) -> Result<(Vec<SessionRecord>, Option<i64>), Error> {
        let from = format!("({}", after.unwrap_or(0));
        let listed: Vec<(String, i64)> =
            self.redis.cmd(cmd("ZRANGEBYSCORE").arg(keys::sessions(room_id)).arg(from).arg("+inf").arg("WITHSCORES").arg("LIMIT").arg(0).arg(limit)).await?;
        let next = if listed.len() == limit { listed.last().map(|(_, n)| *n) } else { None };
        let ids: Vec<String> = listed.into_iter().map(|(id, _)| id).collect();
        let rows = self.session_hashes(&ids).await?;
        let out = ids
            .into_iter()
            .zip(rows)
            .map(|(session_id, h)| SessionRecord {
                session_id,
                room_id: room_id.to_owned(),
                started_at: num(&h, "started_at").or_else(|| num(&h, "ended_at")).unwrap_or(0),
                ended_at: num(&h, "ended_at"),
                ended_by: h.get("ended_by").cloned(),
                reason: h.get("reason").cloned(),
                locked: h.get("locked").is_some_and(|v| v == "1"),
            })
            .collect();
        Ok((out, next))
    }

    /// Keeps the room's `keep` newest sessions (see [`PRUNE_SESSIONS`]), in the
    /// background after the writes recorded before it.
    pub fn prune_sessions(&self, room_id: &str, keep: usize, protect_since_ms: u64) {
        let mut p = pipe();
        p.cmd("EVAL").arg(PRUNE_SESSIONS).arg(1).arg(keys::sessions(room_id)).arg(keep).arg(protect_since_ms).ignore();
        if self.writes.send(Write::Pipe("pruning old sessions", p)).is_err() {
            tracing::error!("store: the Redis writer has stopped; old sessions are not pruned");
        }
    }

    /// Stores newly issued codes `(role, hash)` of a room, each replacing the role's
    /// previous one, atomically; returns their `created_at`.
    pub async fn issue_codes(&self, room_id: &str, codes: Vec<(String, String)>) -> Result<u64, Error> {
        let now = now_ms();
        let now_s = now.to_string();
        let mut args: Vec<&[u8]> = vec![keys::CODE_PREFIX.as_bytes(), room_id.as_bytes(), now_s.as_bytes()];
        for (role, hash) in &codes {
            args.push(role.as_bytes());
            args.push(hash.as_bytes());
        }
        let _: i64 = self.redis.script(&ISSUE_CODES, &[&keys::codes(room_id)], &args).await?;
        Ok(now)
    }

    /// The room's codes (without their text), by role.
    pub async fn codes(&self, room_id: &str) -> Result<Vec<RoomCode>, Error> {
        let mut by_role: Vec<(String, String)> = self.redis.cmd(cmd("HGETALL").arg(keys::codes(room_id))).await?;
        by_role.sort();
        if by_role.is_empty() {
            return Ok(Vec::new());
        }
        let mut p = pipe();
        for (_, hash) in &by_role {
            p.cmd("HGETALL").arg(keys::code(hash));
        }
        let rows: Vec<HashMap<String, String>> = self.redis.pipe(&p).await?;
        Ok(rows.iter().filter_map(code_record).collect())
    }

    /// The code whose hash is `hash` (without its text).
    pub async fn find_code(&self, hash: &str) -> Result<Option<RoomCode>, Error> {
        let h: HashMap<String, String> = self.redis.cmd(cmd("HGETALL").arg(keys::code(hash))).await?;
        Ok(code_record(&h))
    }

    /// Enables or disables the code whose hash is `hash`; false when there is none.
    pub async fn set_code_enabled(&self, hash: &str, enabled: bool) -> Result<bool, Error> {
        let n: i64 = self.redis.script(&SET_CODE_ENABLED, &[&keys::code(hash)], &[flag(enabled).as_bytes()]).await?;
        Ok(n == 1)
    }

    /// Sessions a peer ended since `since_ms`, oldest first.
    pub async fn ends_since(&self, since_ms: u64) -> Result<Vec<EndRecord>, Error> {
        let ids: Vec<String> = self.redis.cmd(cmd("ZRANGEBYSCORE").arg(keys::ENDS).arg(since_ms).arg("+inf")).await?;
        Ok(self
            .session_hashes(&ids)
            .await?
            .into_iter()
            .filter_map(|h| {
                Some(EndRecord {
                    room_id: h.get("room_id")?.clone(),
                    peer_id: h.get("ended_by")?.clone(),
                    user_id: h.get("ended_by_user")?.clone(),
                    reason: h.get("reason").cloned().unwrap_or_default(),
                    ended_at: num(&h, "ended_at")?,
                })
            })
            .collect())
    }

    /// The hashes of sessions `ids`, in that order, in one round trip.
    async fn session_hashes(&self, ids: &[String]) -> Result<Vec<HashMap<String, String>>, Error> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut p = pipe();
        for id in ids {
            p.cmd("HGETALL").arg(keys::session(id));
        }
        self.redis.pipe(&p).await
    }
}
