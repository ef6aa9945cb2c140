//! The webhook outbox of a cluster, in Redis: the same rows, queues and failed list as
//! SQLite's (`super::outbox`), so the sender (`crate::webhooks::sender`) runs unchanged
//! over either. Rows are written by the room's owner in the same fenced script as the
//! history record of the change they report (`super::redis`, [`RECORD`]); one node at a
//! time sends them, the holder of the sender lease ([`SenderLease`]).
//!
//! Keys (docs/SCALING.md lists them all): `hms:wh:seq` (row numbers, in write order),
//! `hms:wh:row:<seq>` (a hash: one event for one target), `hms:wh:q:<t>:<room>` (a sorted
//! set of a room's pending rows for target `<t>`, by seq), `hms:wh:heads:<t>` (a sorted set
//! of the rooms with pending rows for `<t>`, scored by when their oldest row is due),
//! `hms:wh:fseq`, `hms:wh:failed` and `hms:wh:f:<fseq>` (the failed list),
//! `hms:wh:fev:<event id>` (an event's failed rows, for replay), `hms:wh:sender` (the
//! sender lease). `<t>` is the first 16 hex digits of the SHA-256 of the target's URL (a
//! URL may carry a token: keys never show it).

use super::redis::RedisStore;
use super::{Failed, Pending};
use crate::error::Error;
use crate::redis_link::RedisLink;
use ::redis::{cmd, pipe, Script};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// The key part naming a target (see the module doc).
pub fn target_key(url: &str) -> String {
    Sha256::digest(url.as_bytes()).iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// Lua shared by the outbox scripts: `fixhead(t, room)` scores the room in its target's
/// heads by its oldest pending row's `next_at`, or removes it when none is left.
const PRELUDE: &str = r"
local function fixhead(t, room)
  local h = redis.call('ZRANGE', 'hms:wh:q:' .. t .. ':' .. room, 0, 0)
  if #h == 0 then
    redis.call('ZREM', 'hms:wh:heads:' .. t, room)
  else
    redis.call('ZADD', 'hms:wh:heads:' .. t, tonumber(redis.call('HGET', 'hms:wh:row:' .. h[1], 'next_at') or '0'), room)
  end
end
local function append(t, url, room, eid, etype, body, now)
  local seq = redis.call('INCR', 'hms:wh:seq')
  redis.call('HSET', 'hms:wh:row:' .. seq, 'event_id', eid, 'target', url, 't', t, 'room_id', room, 'type', etype,
    'body', body, 'created_at', now, 'attempts', 0, 'next_at', 0)
  redis.call('ZADD', 'hms:wh:q:' .. t .. ':' .. room, seq, seq)
  redis.call('ZADD', 'hms:wh:heads:' .. t, 'NX', 0, room)
end
local function drop(seq)
  local r = redis.call('HMGET', 'hms:wh:row:' .. seq, 't', 'room_id')
  if not r[1] then return end
  redis.call('ZREM', 'hms:wh:q:' .. r[1] .. ':' .. r[2], seq)
  redis.call('DEL', 'hms:wh:row:' .. seq)
  fixhead(r[1], r[2])
end
";

fn script(body: &str) -> Script {
    Script::new(&format!("{PRELUDE}{body}"))
}

/// Records a batch of one room's events: their history (session start and end records,
/// the keys of `super::redis::keys`) and one outbox row per event and target, all or
/// nothing, and only while `ARGV[1]` (the room's owner key, or `''` for no fence) holds
/// `ARGV[2]` (this node's lease token). ARGV: owner key, token, room, now, number of
/// targets, (t, url) per target, then per event: history ('o' open, 'c' close, '-'
/// none), session id, at, close reason, event id, type, body. Returns the rows written,
/// or -1 when fenced out.
pub static RECORD_SRC: LazyLock<String> = LazyLock::new(|| {
    format!(
        "{PRELUDE}{}",
        r"
if ARGV[1] ~= '' and redis.call('GET', ARGV[1]) ~= ARGV[2] then return -1 end
local room, now, nt = ARGV[3], ARGV[4], tonumber(ARGV[5])
local rows = 0
local i = 6 + 2 * nt
while i + 6 <= #ARGV do
  local hist, sid, at, reason = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  if hist == 'o' then
    redis.call('HSET', 'hms:session:' .. sid, 'room_id', room, 'started_at', at)
    local list = 'hms:room:{' .. room .. '}:sessions'
    if not redis.call('ZSCORE', list, sid) then
      redis.call('ZADD', list, redis.call('INCR', 'hms:room:{' .. room .. '}:sessionseq'), sid)
    end
  elseif hist == 'c' then
    local h = 'hms:session:' .. sid
    if redis.call('EXISTS', h) == 1 and redis.call('HEXISTS', h, 'ended_at') == 0 then
      redis.call('HSET', h, 'ended_at', at, 'reason', reason)
    end
  end
  for t = 0, nt - 1 do
    append(ARGV[6 + 2 * t], ARGV[7 + 2 * t], room, ARGV[i + 4], ARGV[i + 5], ARGV[i + 6], now)
    rows = rows + 1
  end
  i = i + 7
end
return rows"
    )
});

/// [`RECORD_SRC`] as a script (sent by hash, loaded when Redis does not know it).
pub static RECORD: LazyLock<Script> = LazyLock::new(|| Script::new(&RECORD_SRC));

/// Forgets delivered rows. ARGV: their seqs.
static DELIVERED: LazyLock<Script> = LazyLock::new(|| script("for _, s in ipairs(ARGV) do drop(s) end return 1"));

/// Reschedules a row. ARGV: seq, attempts, next_at, error.
static RETRY: LazyLock<Script> = LazyLock::new(|| {
    script(
        r"
local row = 'hms:wh:row:' .. ARGV[1]
if redis.call('EXISTS', row) == 0 then return 0 end
redis.call('HSET', row, 'attempts', ARGV[2], 'next_at', ARGV[3], 'last_error', ARGV[4])
local r = redis.call('HMGET', row, 't', 'room_id')
fixhead(r[1], r[2])
return 1",
    )
});

/// Moves a row past its retry budget to the failed list. ARGV: seq, attempts, error, now.
static GIVE_UP: LazyLock<Script> = LazyLock::new(|| {
    script(
        r"
local row = 'hms:wh:row:' .. ARGV[1]
local r = redis.call('HMGET', row, 'event_id', 'target', 'room_id', 'type', 'body', 'created_at')
if not r[1] then return 0 end
local f = redis.call('INCR', 'hms:wh:fseq')
redis.call('HSET', 'hms:wh:f:' .. f, 'event_id', r[1], 'target', r[2], 'room_id', r[3], 'type', r[4], 'body', r[5],
  'created_at', r[6], 'attempts', ARGV[2], 'last_error', ARGV[3], 'failed_at', ARGV[4])
redis.call('ZADD', 'hms:wh:failed', f, f)
redis.call('SADD', 'hms:wh:fev:' .. r[1], f)
drop(ARGV[1])
return 1",
    )
});

/// Queues an event's failed rows again, for the targets still configured, behind their
/// rooms' pending rows, with a fresh budget. ARGV: event id, now, then (t, url) per
/// configured target. Returns {queued, kept}.
static REPLAY: LazyLock<Script> = LazyLock::new(|| {
    script(
        r"
local known = {}
for i = 3, #ARGV, 2 do known[ARGV[i + 1]] = ARGV[i] end
local queued, kept = 0, 0
local fs = redis.call('SMEMBERS', 'hms:wh:fev:' .. ARGV[1])
table.sort(fs, function(a, b) return tonumber(a) < tonumber(b) end)
for _, f in ipairs(fs) do
  local r = redis.call('HMGET', 'hms:wh:f:' .. f, 'target', 'room_id', 'type', 'body')
  local t = known[r[1]]
  if t then
    append(t, r[1], r[2], ARGV[1], r[3], r[4], ARGV[2])
    redis.call('DEL', 'hms:wh:f:' .. f)
    redis.call('ZREM', 'hms:wh:failed', f)
    redis.call('SREM', 'hms:wh:fev:' .. ARGV[1], f)
    queued = queued + 1
  else
    kept = kept + 1
  end
end
return {queued, kept}",
    )
});

fn num(h: &HashMap<String, String>, k: &str) -> u64 {
    h.get(k).and_then(|v| v.parse().ok()).unwrap_or(0)
}

fn text(h: &mut HashMap<String, String>, k: &str) -> String {
    h.remove(k).unwrap_or_default()
}

impl RedisStore {
    /// The rooms of `target` with pending rows and when each one's oldest is due, soonest
    /// first, at most `limit`.
    pub async fn outbox_heads(&self, target: &str, limit: usize) -> Result<Vec<(String, u64)>, Error> {
        let key = format!("hms:wh:heads:{}", target_key(target));
        let rows: Vec<(String, f64)> = self.link().cmd(cmd("ZRANGE").arg(key).arg(0).arg(limit.saturating_sub(1)).arg("WITHSCORES")).await?;
        Ok(rows.into_iter().map(|(room, due)| (room, due as u64)).collect())
    }

    /// The pending rows of (`target`, `room_id`), oldest first, at most `limit`.
    pub async fn outbox_pending(&self, target: &str, room_id: &str, limit: usize) -> Result<Vec<Pending>, Error> {
        let key = format!("hms:wh:q:{}:{room_id}", target_key(target));
        let seqs: Vec<i64> = self.link().cmd(cmd("ZRANGE").arg(key).arg(0).arg(limit.saturating_sub(1))).await?;
        if seqs.is_empty() {
            return Ok(Vec::new());
        }
        let mut p = pipe();
        for s in &seqs {
            p.cmd("HGETALL").arg(format!("hms:wh:row:{s}"));
        }
        let rows: Vec<HashMap<String, String>> = self.link().pipe(&p).await?;
        Ok(seqs
            .into_iter()
            .zip(rows)
            .filter(|(_, h)| !h.is_empty())
            .map(|(seq, mut h)| Pending {
                seq,
                attempts: num(&h, "attempts") as u32,
                created_at: num(&h, "created_at"),
                next_at: num(&h, "next_at"),
                event_id: text(&mut h, "event_id"),
                body: text(&mut h, "body"),
            })
            .collect())
    }

    /// Forgets delivered rows.
    pub async fn outbox_delivered(&self, seqs: Vec<i64>) -> Result<(), Error> {
        if seqs.is_empty() {
            return Ok(());
        }
        let args: Vec<String> = seqs.iter().map(i64::to_string).collect();
        let args: Vec<&[u8]> = args.iter().map(|s| s.as_bytes()).collect();
        self.link().script::<i64>(&DELIVERED, &[], &args).await.map(|_| ())
    }

    /// Records a failed attempt: try again at `next_at`.
    pub async fn outbox_retry(&self, seq: i64, attempts: u32, next_at: u64, error: String) -> Result<(), Error> {
        let (seq, attempts, next_at) = (seq.to_string(), attempts.to_string(), next_at.to_string());
        self.link().script::<i64>(&RETRY, &[], &[seq.as_bytes(), attempts.as_bytes(), next_at.as_bytes(), error.as_bytes()]).await.map(|_| ())
    }

    /// Gives up on a row past its retry budget: it moves to the failed list.
    pub async fn outbox_give_up(&self, seq: i64, attempts: u32, error: String) -> Result<(), Error> {
        let (seq, attempts, now) = (seq.to_string(), attempts.to_string(), crate::clock::now_millis().to_string());
        self.link().script::<i64>(&GIVE_UP, &[], &[seq.as_bytes(), attempts.as_bytes(), error.as_bytes(), now.as_bytes()]).await.map(|_| ())
    }

    /// The failed list after `after` (a cursor), oldest first, at most `limit`.
    pub async fn outbox_failed(&self, after: i64, limit: usize) -> Result<Vec<Failed>, Error> {
        let from = format!("({after}");
        let fs: Vec<i64> = self.link().cmd(cmd("ZRANGEBYSCORE").arg("hms:wh:failed").arg(from).arg("+inf").arg("LIMIT").arg(0).arg(limit)).await?;
        if fs.is_empty() {
            return Ok(Vec::new());
        }
        let mut p = pipe();
        for f in &fs {
            p.cmd("HGETALL").arg(format!("hms:wh:f:{f}"));
        }
        let rows: Vec<HashMap<String, String>> = self.link().pipe(&p).await?;
        Ok(fs
            .into_iter()
            .zip(rows)
            .filter(|(_, h)| !h.is_empty())
            .map(|(seq, mut h)| Failed {
                seq,
                attempts: num(&h, "attempts") as u32,
                created_at: num(&h, "created_at"),
                failed_at: num(&h, "failed_at"),
                last_error: h.remove("last_error"),
                id: text(&mut h, "event_id"),
                target: text(&mut h, "target"),
                room_id: text(&mut h, "room_id"),
                kind: text(&mut h, "type"),
                body: text(&mut h, "body"),
            })
            .collect())
    }

    /// Queues a failed event again for the `targets` still configured; (queued, kept).
    pub async fn outbox_replay(&self, event_id: &str, targets: Vec<String>) -> Result<(usize, usize), Error> {
        let now = crate::clock::now_millis().to_string();
        let mut args: Vec<String> = vec![event_id.to_owned(), now];
        for url in targets {
            args.push(target_key(&url));
            args.push(url);
        }
        let args: Vec<&[u8]> = args.iter().map(|s| s.as_bytes()).collect();
        let (queued, kept): (usize, usize) = self.link().script(&REPLAY, &[], &args).await?;
        Ok((queued, kept))
    }
}

/// The key of the sender lease: `<node>` of the one node sending webhooks.
const SENDER: &str = "hms:wh:sender";

/// Takes the sender lease when free, renews it when ours. KEYS[1] the lease; ARGV: node,
/// lease ms. Returns 1 when this node holds it.
static SENDER_LEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"local v = redis.call('GET', KEYS[1])
          if v == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end
          if not v then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1 end
          return 0",
    )
});

/// Which node sends the webhooks: the holder of `hms:wh:sender` (`SET NX PX`, renewed
/// every third of the lease). A node counts it held until 0.8 of the lease after it sent
/// its last successful renewal (as room leases, docs/SCALING.md), so two nodes never
/// both think they send; a dead sender's lease lapses and another node takes over the
/// same rows.
pub struct SenderLease {
    /// Until when this node may send, ms on [`SenderLease::epoch`]'s clock (0 = not held).
    until_ms: AtomicU64,
    epoch: Instant,
}

impl SenderLease {
    /// Starts competing for the lease as `node` over `redis` until `stop`; `gained` is
    /// called each time this node takes it.
    pub fn start(redis: RedisLink, node: String, lease: Duration, gained: Box<dyn Fn() + Send + Sync>, stop: CancellationToken) -> Arc<SenderLease> {
        let me = Arc::new(SenderLease { until_ms: AtomicU64::new(0), epoch: Instant::now() });
        let lease_ms = lease.as_millis().max(1) as u64;
        let this = me.clone();
        tokio::spawn(async move {
            let (node, ms) = (node, lease_ms.to_string());
            loop {
                let sent = Instant::now();
                let held = redis.script::<i64>(&SENDER_LEASE, &[SENDER], &[node.as_bytes(), ms.as_bytes()]).await;
                let had = this.held();
                match held {
                    Ok(1) => {
                        let until = sent.duration_since(this.epoch) + lease.mul_f64(0.8);
                        this.until_ms.store(until.as_millis() as u64, Ordering::Relaxed);
                        if !had {
                            tracing::info!(node = %node, "this node sends the webhooks now");
                            gained();
                        }
                    }
                    Ok(_) => this.until_ms.store(0, Ordering::Relaxed),
                    // Unreachable Redis: the lease runs out by itself.
                    Err(e) => tracing::warn!(error = %e, "webhooks: could not renew the sender lease"),
                }
                tokio::select! {
                    _ = tokio::time::sleep(lease / 3) => {}
                    _ = stop.cancelled() => break,
                }
            }
            // Handing over at once on a graceful stop.
            if this.held() {
                let _: Result<i64, _> = redis.script(&RELEASE, &[SENDER], &[node.as_bytes()]).await;
            }
        });
        me
    }

    /// Whether this node sends the webhooks now.
    pub fn held(&self) -> bool {
        self.epoch.elapsed().as_millis() < self.until_ms.load(Ordering::Relaxed) as u128
    }
}

/// Releases the sender lease if it is this node's. KEYS[1] the lease; ARGV[1] node.
static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new("if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0")
});
