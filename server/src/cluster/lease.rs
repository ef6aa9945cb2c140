//! Room ownership in Redis: a lease per room (`SET NX PX`), a fencing epoch (`INCR`),
//! and the owner's writes, each a Lua script that first checks the lease still holds
//! this node's `<node>|<epoch>`. A node that lost its lease (paused, partitioned, Redis
//! restarted) can therefore write nothing for the room, and it stops serving it (see
//! `super::owner`). Why two nodes never disagree: docs/SCALING.md.

use super::keys;
use crate::error::Error;
use crate::redis_link::RedisLink;
use redis::Script;
use std::sync::LazyLock;

/// Takes the lease when nobody holds it. KEYS: owner, epoch, mirror, disabled flag;
/// ARGV: node, lease ms, epoch ttl ms. Returns {1, "<node>|<epoch>", disabled, mirror
/// fields...} when taken, {0, current owner} when someone holds it.
static ACQUIRE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"local cur = redis.call('GET', KEYS[1])
          if cur then return {0, cur} end
          local e = redis.call('INCR', KEYS[2])
          redis.call('PEXPIRE', KEYS[2], ARGV[3])
          local v = ARGV[1] .. '|' .. e
          redis.call('SET', KEYS[1], v, 'PX', ARGV[2])
          local out = {1, v, redis.call('EXISTS', KEYS[4])}
          for _, x in ipairs(redis.call('HGETALL', KEYS[3])) do out[#out + 1] = x end
          return out",
    )
});

/// Renews the lease if it is still ours. KEYS: owner; ARGV: ours, lease ms. 1 or 0.
static CHECK: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
          redis.call('PEXPIRE', KEYS[1], ARGV[2])
          return 1",
    )
});

/// Renews many leases (and their mirrors' TTL). KEYS: owner1, mirror1, owner2, ...;
/// ARGV: lease ms, mirror ttl ms, ours1, ours2, ... Returns a 1/0 per room.
static RENEW_ALL: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"local out = {}
          for i = 1, #KEYS / 2 do
            local o, m = KEYS[2 * i - 1], KEYS[2 * i]
            if redis.call('GET', o) == ARGV[i + 2] then
              redis.call('PEXPIRE', o, ARGV[1])
              redis.call('PEXPIRE', m, ARGV[2])
              out[i] = 1
            else
              out[i] = 0
            end
          end
          return out",
    )
});

/// Writes fields of the room's mirror if the lease is ours; ARGV[3] = '1' replaces the
/// whole hash, ARGV[4] = '1' then gives the lease up. KEYS: owner, mirror; ARGV: ours,
/// mirror ttl ms, replace, release, field, value, ... (an empty value deletes the field).
static WRITE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
          if ARGV[3] == '1' then redis.call('DEL', KEYS[2]) end
          for i = 5, #ARGV, 2 do
            if ARGV[i + 1] == '' then
              redis.call('HDEL', KEYS[2], ARGV[i])
            else
              redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
            end
          end
          if redis.call('EXISTS', KEYS[2]) == 1 then redis.call('PEXPIRE', KEYS[2], ARGV[2]) end
          if ARGV[4] == '1' then redis.call('DEL', KEYS[1]) end
          return 1",
    )
});

/// A lease this node took: what the mirror said, and the lock.
pub struct Taken {
    /// `<node>|<epoch>`: the fencing token of every later write.
    pub token: String,
    /// The room's mirror fields as the previous owner left them.
    pub fields: Vec<(String, String)>,
    /// Whether the room is disabled (locked).
    pub locked: bool,
}

/// Who holds a room, as Redis says.
pub enum Acquired {
    /// This node now does.
    Taken(Taken),
    /// Another holder: `<node>|<epoch>`.
    Held(String),
}

/// The node part of an owner token.
pub fn node_of(token: &str) -> &str {
    token.split_once('|').map_or(token, |(n, _)| n)
}

/// Redis' side of the leases.
#[derive(Clone)]
pub struct Leases {
    pub(super) redis: RedisLink,
    pub(super) node: String,
    pub(super) lease_ms: u64,
    pub(super) mirror_ttl_ms: u64,
}

impl Leases {
    /// The current owner token of a room, if any.
    pub async fn owner(&self, room: &str) -> Result<Option<String>, Error> {
        self.redis.cmd(redis::cmd("GET").arg(keys::owner(room))).await
    }

    /// The owner tokens of several rooms.
    pub async fn owners(&self, rooms: &[String]) -> Result<Vec<Option<String>>, Error> {
        if rooms.is_empty() {
            return Ok(Vec::new());
        }
        let mut c = redis::cmd("MGET");
        for r in rooms {
            c.arg(keys::owner(r));
        }
        self.redis.cmd(&c).await
    }

    /// Takes the room's lease if free.
    pub async fn acquire(&self, room: &str) -> Result<Acquired, Error> {
        let (owner, epoch, mirror) = (keys::owner(room), keys::epoch(room), keys::mirror(room));
        let disabled = crate::store::redis::keys::disabled(room);
        let lease = self.lease_ms.to_string();
        let epoch_ttl = (24 * 3600 * 1000u64).to_string();
        let v: redis::Value = self
            .redis
            .script(&ACQUIRE, &[&owner, &epoch, &mirror, &disabled], &[self.node.as_bytes(), lease.as_bytes(), epoch_ttl.as_bytes()])
            .await?;
        let bad = || Error::Store("unexpected answer of the acquire script".into());
        let redis::Value::Array(items) = v else { return Err(bad()) };
        let text = |i: usize| -> Result<String, Error> { redis::from_redis_value_ref::<String>(items.get(i).ok_or_else(bad)?).map_err(|_| bad()) };
        let int = |i: usize| -> Result<i64, Error> { redis::from_redis_value_ref::<i64>(items.get(i).ok_or_else(bad)?).map_err(|_| bad()) };
        if int(0)? == 0 {
            return Ok(Acquired::Held(text(1)?));
        }
        let mut fields = Vec::new();
        let mut i = 3;
        while i + 1 < items.len() {
            fields.push((text(i)?, text(i + 1)?));
            i += 2;
        }
        Ok(Acquired::Taken(Taken { token: text(1)?, locked: int(2)? == 1, fields }))
    }

    /// Whether the lease is still `token` (and renews it): the check before an
    /// operation that must not run on a stale owner.
    pub async fn check(&self, room: &str, token: &str) -> Result<bool, Error> {
        let lease = self.lease_ms.to_string();
        let n: i64 = self.redis.script(&CHECK, &[&keys::owner(room)], &[token.as_bytes(), lease.as_bytes()]).await?;
        Ok(n == 1)
    }

    /// Renews the leases of `rooms` (room, token); whether each is still ours.
    pub async fn renew(&self, rooms: &[(String, String)]) -> Result<Vec<bool>, Error> {
        if rooms.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = rooms.iter().flat_map(|(r, _)| [keys::owner(r), keys::mirror(r)]).collect();
        let key_refs: Vec<&str> = keys.iter().map(String::as_str).collect();
        let (lease, ttl) = (self.lease_ms.to_string(), self.mirror_ttl_ms.to_string());
        let mut args: Vec<&[u8]> = vec![lease.as_bytes(), ttl.as_bytes()];
        args.extend(rooms.iter().map(|(_, t)| t.as_bytes()));
        let out: Vec<i64> = self.redis.script(&RENEW_ALL, &key_refs, &args).await?;
        Ok(out.into_iter().map(|n| n == 1).collect())
    }

    /// Writes `fields` of the room's mirror (all of it with `replace`) if the lease is
    /// still `token`; `release` then gives the lease up. Whether it was still ours.
    pub async fn write(&self, room: &str, token: &str, fields: &[super::image::Field], replace: bool, release: bool) -> Result<bool, Error> {
        let ttl = self.mirror_ttl_ms.to_string();
        let flag = |b: bool| -> &'static [u8] { if b { b"1" } else { b"0" } };
        let mut args: Vec<&[u8]> = vec![token.as_bytes(), ttl.as_bytes(), flag(replace), flag(release)];
        for (k, v) in fields {
            args.push(k.as_bytes());
            args.push(v.as_bytes());
        }
        let n: i64 = self.redis.script(&WRITE, &[&keys::owner(room), &keys::mirror(room)], &args).await?;
        Ok(n == 1)
    }
}
