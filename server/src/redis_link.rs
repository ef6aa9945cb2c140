//! The connection to Redis of a node in distributed mode: one multiplexed connection
//! (the redis crate's `ConnectionManager`, which reconnects by itself when Redis comes
//! back) shared by the Redis store and the cluster, every call bounded by a deadline, and
//! failures mapped to the crate's [`Error`]: unreachable or slow is
//! [`Error::Unavailable`] (503, retry later), anything else [`Error::Store`].

use crate::error::Error;
use redis::aio::ConnectionManager;
use redis::{FromRedisValue, Pipeline, Script};
use std::future::Future;
use std::time::Duration;

/// A cheap-to-clone handle on the node's Redis connection.
#[derive(Clone)]
pub struct RedisLink {
    client: redis::Client,
    conn: ConnectionManager,
    deadline: Duration,
}

/// The message clients see while Redis cannot be reached.
pub const UNAVAILABLE: &str = "the server cannot reach its shared state (Redis); nothing was changed, retry later";

fn map_err(e: redis::RedisError) -> Error {
    if e.is_io_error() || e.is_timeout() || e.is_connection_dropped() || e.is_connection_refusal() || e.is_unrecoverable_error() {
        tracing::warn!(error = %e, "redis unreachable");
        Error::Unavailable(UNAVAILABLE.into())
    } else {
        Error::Store(format!("redis: {e}"))
    }
}

impl RedisLink {
    /// Connects to `url` (`redis://host:port/db`); each later call waits at most
    /// `deadline`. The URL is never logged (it may carry a password).
    pub async fn connect(url: &str, deadline: Duration) -> Result<RedisLink, Error> {
        let client = redis::Client::open(url).map_err(|e| Error::Config(format!("the Redis URL: {e}")))?;
        Self::from_client(client, deadline).await
    }

    /// Another connection of the same client (its driver runs on the caller's runtime).
    pub async fn from_client(client: redis::Client, deadline: Duration) -> Result<RedisLink, Error> {
        let cfg = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(deadline))
            .set_response_timeout(Some(deadline))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let conn = tokio::time::timeout(deadline * 3, client.get_connection_manager_with_config(cfg))
            .await
            .map_err(|_| Error::Config(format!("Redis did not answer within {:?}", deadline * 3)))?
            .map_err(|e| Error::Config(format!("connecting to Redis: {e}")))?;
        Ok(RedisLink { client, conn, deadline })
    }

    /// The client, for the node's own pub/sub connection.
    pub fn client(&self) -> &redis::Client {
        &self.client
    }

    /// The per-call deadline.
    pub fn deadline(&self) -> Duration {
        self.deadline
    }

    async fn bounded<T>(&self, f: impl Future<Output = redis::RedisResult<T>>) -> Result<T, Error> {
        match tokio::time::timeout(self.deadline, f).await {
            Ok(r) => r.map_err(map_err),
            Err(_) => {
                tracing::warn!(deadline_ms = self.deadline.as_millis() as u64, "redis call timed out");
                Err(Error::Unavailable(UNAVAILABLE.into()))
            }
        }
    }

    /// Runs one command.
    pub async fn cmd<T: FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, Error> {
        let mut c = self.conn.clone();
        self.bounded(cmd.query_async(&mut c)).await
    }

    /// Runs a pipeline (atomic if it was built with `.atomic()`).
    pub async fn pipe<T: FromRedisValue>(&self, pipe: &Pipeline) -> Result<T, Error> {
        let mut c = self.conn.clone();
        self.bounded(pipe.query_async(&mut c)).await
    }

    /// Runs a Lua script with `keys` and `args` (EVALSHA, loading it when Redis lacks it).
    pub async fn script<T: FromRedisValue>(&self, script: &Script, keys: &[&str], args: &[&[u8]]) -> Result<T, Error> {
        let mut inv = script.prepare_invoke();
        for k in keys {
            inv.key(*k);
        }
        for a in args {
            inv.arg(*a);
        }
        let mut c = self.conn.clone();
        self.bounded(inv.invoke_async(&mut c)).await
    }
}
