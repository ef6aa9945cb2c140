//! Webhooks: every room event, in 100ms's envelope ([`payload`]), signed ([`sign`]),
//! written to a durable outbox in the transaction of its change ([`crate::store`]) and
//! delivered in order per room, with retries, by the [`sender`]. Events past their retry
//! budget are listed and replayed through the REST API ([`Webhooks::failed`],
//! [`Webhooks::replay`]). docs/WEBHOOKS.md is the receiver's guide.

pub mod outbox;
pub mod payload;
pub mod sender;
pub mod sign;

use crate::config::Config;
use crate::error::Error;
use crate::metrics::Metrics;
use crate::store::{OutboxReader, OutboxWriter, Store};
use outbox::Outbox;
use std::path::Path;
use std::sync::Arc;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Failed events a page of `GET /v2/webhooks/failed` shows at most.
pub const MAX_PAGE: usize = 500;

/// Wakes the per-target delivery loops when events are committed.
pub struct Wake(Vec<Arc<Notify>>);

impl Wake {
    /// One wake-up per configured target.
    pub fn new(config: &Config) -> Self {
        Wake(config.webhooks.urls.iter().map(|_| Arc::new(Notify::new())).collect())
    }
}

/// How the store turns events into outbox rows for `config`'s targets.
pub fn writer(config: &Config, wake: &Wake) -> OutboxWriter {
    let (account, template) = (config.access_key.clone(), config.template.id.clone());
    let wakes = wake.0.clone();
    OutboxWriter {
        targets: config.webhooks.urls.clone(),
        encode: Box::new(move |e| payload::encode(e, &account, &template)),
        on_commit: Box::new(move || wakes.iter().for_each(|w| w.notify_one())),
    }
}

/// A failed event as `GET /v2/webhooks/failed` shows it.
#[derive(Debug, serde::Serialize)]
pub struct FailedView {
    /// The event and its delivery record.
    #[serde(flatten)]
    pub record: crate::store::Failed,
    /// The event as it was sent.
    pub event: serde_json::Value,
}

/// The running webhooks: the outbox and the delivery task.
pub struct Webhooks {
    outbox: Outbox,
    targets: Vec<String>,
}

impl Webhooks {
    /// Starts delivering `store`'s outbox (opened with [`writer`]) until `stop`.
    pub fn start(config: &Config, store: Store, data_dir: &Path, wake: Wake, metrics: Arc<Metrics>, stop: CancellationToken) -> Result<Arc<Webhooks>, Error> {
        let reader = Arc::new(OutboxReader::open(data_dir)?);
        let outbox = Outbox::Sqlite { store, reader };
        let sender = Arc::new(sender::Sender::new(&config.webhooks, outbox.clone(), metrics)?);
        sender.spawn(wake.0, stop);
        tracing::info!(targets = config.webhooks.urls.len(), "webhooks on");
        Ok(Arc::new(Webhooks { outbox, targets: config.webhooks.urls.clone() }))
    }

    /// Events past their retry budget after the cursor `after`, oldest first, at most
    /// `limit` (1 to [`MAX_PAGE`]), and the cursor of the next page if there is one.
    pub async fn failed(&self, after: i64, limit: usize) -> Result<(Vec<FailedView>, Option<i64>), Error> {
        let limit = limit.clamp(1, MAX_PAGE);
        let mut rows = self.outbox.failed(after, limit + 1).await?;
        let more = rows.len() > limit;
        rows.truncate(limit);
        let next = if more { rows.last().map(|r| r.seq) } else { None };
        let page = rows
            .into_iter()
            .map(|record| {
                let event = serde_json::from_str(&record.body).unwrap_or(serde_json::Value::Null);
                FailedView { record, event }
            })
            .collect();
        Ok((page, next))
    }

    /// Queues the failed event `id` again (same id and body, a fresh retry budget).
    /// 404 when no failed event has that id; 409 when its target is no longer configured.
    pub async fn replay(&self, id: &str) -> Result<usize, Error> {
        match self.outbox.replay(id, self.targets.clone()).await? {
            (0, 0) => Err(Error::NotFound("no failed webhook event with this id".into())),
            (0, _) => Err(Error::Conflict("the event's target is no longer configured".into())),
            (n, _) => Ok(n),
        }
    }
}
