//! The store of a node in distributed mode: the same durable state as the SQLite store
//! (room locks, session history and end records, room codes), kept in Redis so that
//! every node of a cluster sees it. Every key is listed in [`keys`] and in
//! docs/SCALING.md.
//!
//! Durability: an `end-room` with lock writes the session's end and the lock in one
//! MULTI/EXEC and answers only after Redis replied; with `appendonly yes` and
//! `appendfsync always` (checked at start, see `crate::cluster`) Redis replies after the
//! AOF is fsynced, so a lock that was acknowledged survives a crash of Redis.
//! Session starts and ends reported by the rooms ([`Event`]s) are written in the
//! background by one writer task, in the order reported; each writes its own fields of
//! the session's hash. Webhooks are not delivered in distributed mode (a node refuses to
//! start with both, docs/SCALING.md), so the events feed only the history here.

use super::{EndRecord, Ender, RoomCode, SessionRecord};
use crate::error::Error;
use crate::events::{CloseReason, Event};
use crate::redis_link::RedisLink;
use ::redis::{cmd, pipe, Pipeline, Script};
use std::collections::HashMap;
use std::sync::LazyLock;
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
    /// Sorted set of a room's session ids, scored by start (ms).
    pub fn sessions(room: &str) -> String {
        format!("hms:room:{{{room}}}:sessions")
    }
    /// Sorted set of the sessions a peer ended, scored by end (ms), trimmed to the last
    /// [`crate::room::END_NOTICE_TTL`].
    pub const ENDS: &str = "hms:ends";
    /// Hash of one room code: `room_id`, `role`, `enabled`, `created_at`.
    pub fn code(code: &str) -> String {
        format!("hms:code:{code}")
    }
    /// Hash of a room's codes: role -> code.
    pub fn codes(room: &str) -> String {
        format!("hms:room:{{{room}}}:codes")
    }
}

/// The store over Redis. Cheap to clone.
#[derive(Clone)]
pub struct RedisStore {
    redis: RedisLink,
    /// The background writer: history writes in the order they were recorded.
    writes: mpsc::UnboundedSender<Write>,
}

/// One background write, or a marker answered once everything before it was written.
enum Write {
    Pipe(&'static str, Pipeline),
    EndIfRunning(String, u64, String),
    Flushed(oneshot::Sender<()>),
}

/// Writes the background writes in order; a failure is logged (the history misses that
/// record) and the next goes on.
async fn writer(redis: RedisLink, mut rx: mpsc::UnboundedReceiver<Write>) {
    while let Some(w) = rx.recv().await {
        let r = match w {
            Write::Pipe(what, p) => redis.pipe::<()>(&p).await.map_err(|e| (what, e)),
            Write::EndIfRunning(key, at, reason) => {
                let at = at.to_string();
                redis.script::<()>(&END_IF_RUNNING, &[&key], &[at.as_bytes(), reason.as_bytes()]).await.map_err(|e| ("recording a session end", e))
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

/// Ends a session that emptied (or was running at shutdown) unless it has ended already.
/// KEYS[1] session hash; ARGV: ended_at, reason.
static END_IF_RUNNING: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"if redis.call('EXISTS', KEYS[1]) == 1 and redis.call('HEXISTS', KEYS[1], 'ended_at') == 0 then
            redis.call('HSET', KEYS[1], 'ended_at', ARGV[1], 'reason', ARGV[2])
          end
          return 1",
    )
});

/// The room's code for a role, created with the candidate code when missing.
/// KEYS: room codes hash, candidate's code hash; ARGV: role, candidate, room, now.
/// Returns {code, enabled} or false when the candidate is taken (retry with another).
static CODE_FOR_ROLE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"local c = redis.call('HGET', KEYS[1], ARGV[1])
          if c then
            return {c, redis.call('HGET', 'hms:code:' .. c, 'enabled') or '1'}
          end
          if redis.call('EXISTS', KEYS[2]) == 1 then return false end
          redis.call('HSET', KEYS[2], 'room_id', ARGV[3], 'role', ARGV[1], 'enabled', '1', 'created_at', ARGV[4])
          redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
          return {ARGV[2], '1'}",
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

impl RedisStore {
    /// The store over `redis` (starts its background writer).
    pub fn new(redis: RedisLink) -> RedisStore {
        let (writes, rx) = mpsc::unbounded_channel();
        tokio::spawn(writer(redis.clone(), rx));
        RedisStore { redis, writes }
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
        self.redis.pipe(&p).await
    }

    /// Records the session starts and ends the rooms report, in the background, in order.
    pub fn record(&self, events: Vec<Event>) {
        for e in events {
            let w = match e {
                Event::SessionOpened { room_id, session_id, at } => {
                    let mut p = pipe();
                    p.cmd("HSET").arg(keys::session(&session_id)).arg("room_id").arg(&room_id).arg("started_at").arg(at).ignore();
                    p.cmd("ZADD").arg(keys::sessions(&room_id)).arg(at).arg(&session_id).ignore();
                    Write::Pipe("recording a session start", p)
                }
                Event::SessionClosed { session_id, at, reason, .. } => {
                    let why = match reason {
                        CloseReason::Emptied => "room empty".to_owned(),
                        CloseReason::ServerShutdown => "server shutdown".to_owned(),
                        CloseReason::ServerStopped => "server stopped".to_owned(),
                        // end_session wrote it, with who and the lock.
                        CloseReason::Ended { .. } => continue,
                    };
                    Write::EndIfRunning(keys::session(&session_id), at, why)
                }
                _ => continue,
            };
            if self.writes.send(w).is_err() {
                tracing::error!("store: the Redis writer has stopped; a history record is lost");
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
    /// (`_close` would go to a webhook outbox; distributed mode has none yet.)
    pub async fn end_session(&self, room_id: &str, session_id: &str, ended_by: Option<Ender<'_>>, reason: &str, locked: bool, _close: Event) -> Result<(), Error> {
        let now = now_ms();
        let key = keys::session(session_id);
        let mut p = pipe();
        p.atomic();
        p.cmd("HSET").arg(&key).arg("room_id").arg(room_id).arg("ended_at").arg(now).arg("reason").arg(reason).arg("locked").arg(flag(locked)).ignore();
        // Listed even if its start record has not landed yet (the start corrects the score).
        p.cmd("ZADD").arg(keys::sessions(room_id)).arg("NX").arg(now).arg(session_id).ignore();
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
        self.redis.pipe(&p).await
    }

    /// The end of a session as stored: (ended_by, reason) when it has ended.
    pub async fn session_end(&self, session_id: &str) -> Result<Option<(Option<String>, String)>, Error> {
        let (ended_at, by, reason): (Option<u64>, Option<String>, Option<String>) =
            self.redis.cmd(cmd("HMGET").arg(keys::session(session_id)).arg("ended_at").arg("ended_by").arg("reason")).await?;
        Ok(ended_at.map(|_| (by, reason.unwrap_or_default())))
    }

    /// The session history of a room, oldest first.
    pub async fn sessions(&self, room_id: &str) -> Result<Vec<SessionRecord>, Error> {
        let ids: Vec<String> = self.redis.cmd(cmd("ZRANGE").arg(keys::sessions(room_id)).arg(0).arg(-1)).await?;
        let rows = self.session_hashes(&ids).await?;
        let mut out: Vec<SessionRecord> = ids
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
        out.sort_by_key(|s| s.started_at);
        Ok(out)
    }

    /// The room's codes, one per role in `roles`, created where missing.
    pub async fn room_codes(&self, room_id: &str, roles: Vec<String>) -> Result<Vec<RoomCode>, Error> {
        let codes_key = keys::codes(room_id);
        let mut out = Vec::new();
        for role in roles {
            // A random code collides with an existing one astronomically rarely: retry.
            let mut tries = 0;
            let (code, enabled) = loop {
                let candidate = super::new_code();
                let now = now_ms().to_string();
                let got: Option<(String, String)> = self
                    .redis
                    .script(&CODE_FOR_ROLE, &[&codes_key, &keys::code(&candidate)], &[role.as_bytes(), candidate.as_bytes(), room_id.as_bytes(), now.as_bytes()])
                    .await?;
                if let Some(found) = got {
                    break found;
                }
                tries += 1;
                if tries > 16 {
                    return Err(Error::Store("could not find a free room code".into()));
                }
            };
            out.push(RoomCode { code, room_id: room_id.to_owned(), role, enabled: enabled == "1" });
        }
        Ok(out)
    }

    /// Looks a room code up.
    pub async fn find_code(&self, code: &str) -> Result<Option<RoomCode>, Error> {
        let h: HashMap<String, String> = self.redis.cmd(cmd("HGETALL").arg(keys::code(code))).await?;
        let (Some(room_id), Some(role)) = (h.get("room_id"), h.get("role")) else { return Ok(None) };
        Ok(Some(RoomCode { code: code.to_owned(), room_id: room_id.clone(), role: role.clone(), enabled: h.get("enabled").is_none_or(|v| v == "1") }))
    }

    /// Enables or disables one code; whether it exists.
    pub async fn set_code_enabled(&self, code: &str, enabled: bool) -> Result<bool, Error> {
        let n: i64 = self.redis.script(&SET_CODE_ENABLED, &[&keys::code(code)], &[flag(enabled).as_bytes()]).await?;
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
