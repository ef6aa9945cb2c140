//! Delivers the outbox: one loop per target picks rooms whose oldest event is due and
//! hands each to a worker, at most `max_in_flight` rooms at a time. A worker sends its
//! room's events one at a time, in order, and stops at the first failure, which it
//! reschedules with exponential backoff and jitter (or, past the retry budget, moves to
//! the failed list so the room's later events are not held up forever). An event is
//! removed only after a 2xx: at-least-once, the event id lets a receiver drop repeats.
//!
//! Nothing here touches the rooms: a slow or dead receiver only slows this task. Memory
//! is bounded: a worker reads its room's events a batch at a time.

use super::outbox::Outbox;
use super::sign::{Signer, HEADER};
use crate::clock::{now_millis, now_secs};
use crate::config;
use crate::metrics::{Delivery, Metrics};
use crate::store::Pending;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// Events a worker reads at once.
const BATCH: usize = 32;
/// Without a wake-up, the queue is looked at this often anyway (ms).
const IDLE_POLL_MS: u64 = 5_000;
/// A look at the queue scans the heads of every room with pending events. Commits wake the
/// loop up to thousands of times a second, so it looks at most this often ...
const SCAN_GAP: Duration = Duration::from_millis(250);
/// ... unless a retry fell due, or a worker ended while every slot was taken (rooms may be
/// waiting for a slot): then after this.
const URGENT_SCAN_GAP: Duration = Duration::from_millis(10);
/// A receiver's answer body is read up to this much (so the connection can be reused).
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// The delivery task's state.
pub struct Sender {
    outbox: Outbox,
    client: reqwest::Client,
    signer: Signer,
    config: config::Webhooks,
    metrics: Arc<Metrics>,
}

/// A target as logs show it: its host only (a URL may carry a token).
fn host(target: &str) -> String {
    reqwest::Url::parse(target).ok().and_then(|u| u.host_str().map(str::to_owned)).unwrap_or_else(|| "?".into())
}

impl Sender {
    /// A sender for `config` (validated: urls and a secret are set).
    pub fn new(config: &config::Webhooks, outbox: Outbox, metrics: Arc<Metrics>) -> Result<Sender, crate::Error> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_millis(config.timeout_ms))
            .connect_timeout(Duration::from_millis(config.connect_timeout_ms))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("hms-server/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| crate::Error::Config(format!("webhooks: building the HTTP client: {e}")))?;
        let signer = Signer::new(config.secret.as_deref().unwrap_or_default());
        Ok(Sender { outbox, client, signer, config: config.clone(), metrics })
    }

    /// Runs one delivery loop per target until `stop`; `wakes[i]` is notified when
    /// events for target `i` were committed.
    pub fn spawn(self: Arc<Self>, wakes: Vec<Arc<Notify>>, stop: CancellationToken) {
        for (target, wake) in self.config.urls.clone().into_iter().zip(wakes) {
            tokio::spawn(self.clone().run_target(target, wake, stop.clone()));
        }
    }

    async fn run_target(self: Arc<Self>, target: String, wake: Arc<Notify>, stop: CancellationToken) {
        let max = self.config.max_in_flight.max(1);
        let mut busy: HashSet<String> = HashSet::new();
        let mut rooms_of: HashMap<tokio::task::Id, String> = HashMap::new();
        let mut workers = JoinSet::new();
        let mut last_scan = Instant::now() - SCAN_GAP;
        let mut urgent = true;
        loop {
            let gap = if urgent { URGENT_SCAN_GAP } else { SCAN_GAP }.saturating_sub(last_scan.elapsed());
            if !gap.is_zero() {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tokio::time::sleep(gap) => {}
                }
            }
            last_scan = Instant::now();
            urgent = false;
            let now = now_millis();
            let mut next = now + IDLE_POLL_MS;
            if busy.len() < max {
                // One more than the slots: the first room not due says when to look again.
                match self.outbox.heads(&target, max + 1).await {
                    Ok(heads) => {
                        for (room, due) in heads {
                            if due > now {
                                next = next.min(due);
                                break;
                            }
                            if busy.len() < max && busy.insert(room.clone()) {
                                let h = workers.spawn(self.clone().deliver(target.clone(), room.clone()));
                                rooms_of.insert(h.id(), room);
                            }
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "webhooks: reading the outbox failed; trying again in 1 s");
                        next = now + 1_000;
                    }
                }
            }
            let sleep = tokio::time::sleep(Duration::from_millis(next.saturating_sub(now)));
            tokio::select! {
                _ = stop.cancelled() => break,
                Some(done) = workers.join_next_with_id(), if !workers.is_empty() => {
                    let id = match done {
                        Ok((id, ())) => id,
                        Err(e) => {
                            tracing::error!(error = %e, "webhooks: a delivery worker failed");
                            e.id()
                        }
                    };
                    urgent = busy.len() >= max;
                    if let Some(room) = rooms_of.remove(&id) {
                        busy.remove(&room);
                    }
                }
                _ = wake.notified() => {}
                _ = sleep => urgent = true,
            }
        }
        // Deliveries cut short are still in the outbox: they go out after the restart.
        workers.abort_all();
    }

    /// Sends the room's due events in order until it is drained or an attempt fails.
    async fn deliver(self: Arc<Self>, target: String, room: String) {
        let budget_ms = self.config.retry_budget_secs.saturating_mul(1000);
        loop {
            let batch = match self.outbox.pending(&target, &room, BATCH).await {
                Ok(b) if !b.is_empty() => b,
                Ok(_) => return,
                Err(e) => {
                    tracing::warn!(error = %e, "webhooks: reading the outbox failed");
                    return;
                }
            };
            let mut done = Vec::new();
            for ev in batch {
                let now = now_millis();
                if ev.next_at > now {
                    // Its backoff is not over: the target loop comes back for it.
                    self.acknowledge(done).await;
                    return;
                }
                let error = match self.post(&target, &ev).await {
                    Ok(()) => {
                        self.metrics.webhook(Delivery::Delivered);
                        done.push(ev.seq);
                        continue;
                    }
                    Err(error) => error,
                };
                // What went through is acknowledged before the failure is recorded.
                if !self.acknowledge(std::mem::take(&mut done)).await {
                    return;
                }
                let attempts = ev.attempts.saturating_add(1);
                if now.saturating_sub(ev.created_at) >= budget_ms {
                    self.metrics.webhook(Delivery::Failed);
                    tracing::warn!(room = ?room, event = %ev.event_id, target = %host(&target), attempts, error = %error,
                        "webhook event given up after its retry budget; listed at GET /v2/webhooks/failed");
                    if let Err(e) = self.outbox.give_up(ev.seq, attempts, error).await {
                        tracing::error!(error = %e, "webhooks: could not move an event to the failed list");
                        return;
                    }
                    // The room's next event gets its own attempt.
                    continue;
                }
                self.metrics.webhook(Delivery::Retried);
                let delay = backoff(&self.config, attempts);
                tracing::info!(room = ?room, target = %host(&target), attempts, error = %error, retry_in_ms = delay, "webhook delivery failed; will retry");
                if let Err(e) = self.outbox.retry(ev.seq, attempts, now + delay, error).await {
                    tracing::error!(error = %e, "webhooks: could not reschedule an event");
                }
                return;
            }
            if !self.acknowledge(done).await {
                return;
            }
        }
    }

    /// Removes delivered events; false when the store failed (they will be sent again).
    async fn acknowledge(&self, seqs: Vec<i64>) -> bool {
        match self.outbox.delivered(seqs).await {
            Ok(()) => true,
            Err(e) => {
                tracing::error!(error = %e, "webhooks: could not record deliveries (they will be sent again)");
                false
            }
        }
    }

    /// One signed POST; `Err` says why it did not count as delivered.
    async fn post(&self, target: &str, ev: &Pending) -> Result<(), String> {
        let signature = self.signer.header(now_secs(), ev.body.as_bytes());
        let sent = self
            .client
            .post(target)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(HEADER, signature)
            .body(ev.body.clone())
            .send()
            .await;
        let mut answer = match sent {
            Ok(a) => a,
            // Without the URL: it may carry a token.
            Err(e) => return Err(e.without_url().to_string()),
        };
        let status = answer.status();
        let mut read = 0;
        while let Ok(Some(chunk)) = answer.chunk().await {
            read += chunk.len();
            if read > MAX_ANSWER_BYTES {
                break;
            }
        }
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("HTTP {}", status.as_u16()))
        }
    }
}

/// The delay before attempt `attempts + 1`, ms: `initial * 2^(attempts-1)` capped at
/// `backoff_max_ms`, of which a random half ("equal jitter"), so that receivers coming
/// back are not hit by every room at the same instant.
pub fn backoff(config: &config::Webhooks, attempts: u32) -> u64 {
    let exp = config.backoff_initial_ms.saturating_mul(1u64 << attempts.saturating_sub(1).min(32));
    let d = exp.min(config.backoff_max_ms).max(1);
    d / 2 + rand::random_range(0..=d - d / 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_up_to_the_cap() {
        let c = config::Webhooks { backoff_initial_ms: 1_000, backoff_max_ms: 30_000, ..Default::default() };
        for _ in 0..200 {
            let (a1, a3, a20) = (backoff(&c, 1), backoff(&c, 3), backoff(&c, 20));
            assert!((500..=1_000).contains(&a1), "{a1}");
            assert!((2_000..=4_000).contains(&a3), "{a3}");
            assert!((15_000..=30_000).contains(&a20), "{a20}");
        }
        assert!(backoff(&c, u32::MAX) <= 30_000);
    }

    #[test]
    fn logs_show_the_host_not_the_url() {
        assert_eq!(host("https://hooks.example.com/in?token=s3cret"), "hooks.example.com");
        assert_eq!(host("not a url"), "?");
    }
}
