//! Prometheus metrics (the `prometheus-client` crate, OpenMetrics text) and their own
//! listener, `GET http://<metrics_addr>/metrics`. Room, peer, join, leave and end-room
//! figures come from the domain events ([`Metrics::observe`]); refusals are counted where
//! a request or a connection is refused ([`Metrics::refused`]); the end-room fan-out time
//! and webhook deliveries by the code that does them.

use crate::error::Error;
use crate::events::{CloseReason, Event, LeaveReason};
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};
use std::sync::Arc;
use std::time::Duration;

/// Why a client was refused: the label of `hms_refusals_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// 400: malformed input.
    BadRequest,
    /// 401: a missing, bad or expired token.
    Unauthorized,
    /// 403: the role lacks the permission.
    Forbidden,
    /// 404: no such peer, room or code.
    NotFound,
    /// 409: the peer id is taken, already joined, already ending.
    Conflict,
    /// 423: the room is locked.
    Locked,
    /// 429: over the frame rate (the frame is refused, the connection stays).
    RateLimited,
    /// 500.
    Internal,
    /// Too many connections from one IP address.
    PerIp,
    /// A frame over the size limit (the connection is closed).
    FrameTooLarge,
    /// Over the frame rate for too long (the connection is closed).
    RateLimitClose,
    /// A connection while the server shuts down.
    ShuttingDown,
}

impl Refusal {
    /// The refusal an error answer stands for.
    pub fn of(e: &Error) -> Refusal {
        match e {
            Error::BadRequest(_) | Error::NotJoined => Refusal::BadRequest,
            Error::Unauthorized(_) => Refusal::Unauthorized,
            Error::Forbidden(_) => Refusal::Forbidden,
            Error::NotFound(_) => Refusal::NotFound,
            Error::Conflict(_) => Refusal::Conflict,
            Error::Locked => Refusal::Locked,
            Error::RateLimited(_) | Error::Throttled(..) => Refusal::RateLimited,
            Error::Internal(_) | Error::Store(_) | Error::Config(_) => Refusal::Internal,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Refusal::BadRequest => "bad_request",
            Refusal::Unauthorized => "unauthorized",
            Refusal::Forbidden => "forbidden",
            Refusal::NotFound => "not_found",
            Refusal::Conflict => "conflict",
            Refusal::Locked => "locked",
            Refusal::RateLimited => "rate_limited",
            Refusal::Internal => "internal",
            Refusal::PerIp => "per_ip_limit",
            Refusal::FrameTooLarge => "frame_too_large",
            Refusal::RateLimitClose => "rate_limit_close",
            Refusal::ShuttingDown => "shutting_down",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

/// What a webhook delivery attempt came to.
#[derive(Debug, Clone, Copy)]
pub enum Delivery {
    /// The receiver answered 2xx.
    Delivered,
    /// It failed; the event is retried later.
    Retried,
    /// It failed past the retry budget; the event moved to the failed list.
    Failed,
}

/// The server's metrics.
pub struct Metrics {
    registry: Registry,
    rooms: Gauge,
    peers: Gauge,
    joins: Counter,
    leaves: Family<ReasonLabel, Counter>,
    end_rooms: Counter,
    refusals: Family<ReasonLabel, Counter>,
    fanout: Histogram,
    webhooks: Family<OutcomeLabel, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Every metric registered, at zero.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("hms");
        let m = Metrics {
            registry: Registry::default(),
            rooms: Gauge::default(),
            peers: Gauge::default(),
            joins: Counter::default(),
            leaves: Family::default(),
            end_rooms: Counter::default(),
            refusals: Family::default(),
            // 1 ms to ~16 s.
            fanout: Histogram::new(exponential_buckets(0.001, 2.0, 15)),
            webhooks: Family::default(),
        };
        registry.register("rooms", "Rooms with a running session", m.rooms.clone());
        registry.register("peers", "Peers in rooms (joined, or held for a reconnect)", m.peers.clone());
        registry.register("joins", "Peers that joined a room", m.joins.clone());
        registry.register("leaves", "Peers that left a room, by reason", m.leaves.clone());
        registry.register("end_rooms", "Sessions ended by end-room (a peer or the REST API)", m.end_rooms.clone());
        registry.register("refusals", "Requests and connections refused, by reason", m.refusals.clone());
        registry.register_with_unit(
            "end_room_fanout",
            "From the stored end of a room to the last notice written to the peers' sockets",
            Unit::Seconds,
            m.fanout.clone(),
        );
        registry.register("webhook_deliveries", "Webhook delivery attempts, by outcome", m.webhooks.clone());
        Metrics { registry, ..m }
    }

    /// Counts what an event changes.
    pub fn observe(&self, e: &Event) {
        match e {
            Event::SessionOpened { .. } => {
                self.rooms.inc();
            }
            Event::SessionClosed { reason, .. } => {
                self.rooms.dec();
                if matches!(reason, CloseReason::Ended { .. }) {
                    self.end_rooms.inc();
                }
            }
            Event::PeerJoined { .. } => {
                self.peers.inc();
                self.joins.inc();
            }
            Event::PeerLeft { reason, .. } => {
                self.peers.dec();
                let reason = match reason {
                    LeaveReason::Left => "left",
                    LeaveReason::Removed { .. } => "removed",
                    LeaveReason::RoomEnded { .. } => "room_ended",
                    LeaveReason::ConnectionLost => "connection_lost",
                    LeaveReason::LimitExceeded => "limit_exceeded",
                    LeaveReason::ServerShutdown => "server_shutdown",
                    LeaveReason::ServerStopped => "server_stopped",
                };
                self.leaves.get_or_create(&ReasonLabel { reason }).inc();
            }
            Event::RoomEnabled { .. } => {}
        }
    }

    /// Counts a refusal.
    pub fn refused(&self, why: Refusal) {
        self.refusals.get_or_create(&ReasonLabel { reason: why.label() }).inc();
    }

    /// Records one end-room's fan-out time.
    pub fn end_room_fanout(&self, took: Duration) {
        self.fanout.observe(took.as_secs_f64());
    }

    /// Counts a webhook delivery attempt.
    pub fn webhook(&self, outcome: Delivery) {
        let outcome = match outcome {
            Delivery::Delivered => "delivered",
            Delivery::Retried => "retried",
            Delivery::Failed => "failed",
        };
        self.webhooks.get_or_create(&OutcomeLabel { outcome }).inc();
    }

    /// The OpenMetrics text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// Serves `GET /metrics` on `listener` until the process ends.
pub async fn serve(listener: tokio::net::TcpListener, metrics: Arc<Metrics>) {
    let app = Router::new().route(
        "/metrics",
        get(move || {
            let m = metrics.clone();
            async move { ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], m.render()).into_response() }
        }),
    );
    if let Err(e) = axum::serve(listener, app).await {
        tracing::error!(error = %e, "the metrics listener failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{By, PeerDetails, PeerRecord};

    fn line(text: &str, name: &str) -> Option<String> {
        text.lines().find(|l| l.starts_with(name)).map(str::to_owned)
    }

    #[test]
    fn events_move_the_gauges_and_counters() {
        let m = Metrics::new();
        let peer = PeerRecord::new("p", "u", "host", &PeerDetails::default());
        let (room_id, session_id) = ("r".to_string(), "s".to_string());
        m.observe(&Event::SessionOpened { room_id: room_id.clone(), session_id: session_id.clone(), at: 1 });
        m.observe(&Event::PeerJoined { room_id: room_id.clone(), session_id: session_id.clone(), peer: peer.clone() });
        let reason = CloseReason::Ended { by: By::Api, message: "x".into(), locked: true };
        m.observe(&Event::SessionClosed { room_id: room_id.clone(), session_id: session_id.clone(), started_at: 1, at: 2, reason });
        let reason = LeaveReason::RoomEnded { by: By::Api, message: "x".into() };
        m.observe(&Event::PeerLeft { room_id, session_id, peer, at: 2, reason });
        m.refused(Refusal::of(&Error::Locked));
        m.refused(Refusal::PerIp);
        m.end_room_fanout(Duration::from_millis(3));
        let t = m.render();
        assert_eq!(line(&t, "hms_rooms ").as_deref(), Some("hms_rooms 0"));
        assert_eq!(line(&t, "hms_peers ").as_deref(), Some("hms_peers 0"));
        assert_eq!(line(&t, "hms_joins_total").as_deref(), Some("hms_joins_total 1"));
        assert_eq!(line(&t, "hms_end_rooms_total").as_deref(), Some("hms_end_rooms_total 1"));
        assert_eq!(line(&t, "hms_leaves_total{").as_deref(), Some("hms_leaves_total{reason=\"room_ended\"} 1"));
        assert!(t.contains("hms_refusals_total{reason=\"locked\"} 1") && t.contains("hms_refusals_total{reason=\"per_ip_limit\"} 1"), "{t}");
        assert!(t.contains("hms_end_room_fanout_seconds_count 1"), "{t}");
        assert!(t.ends_with("# EOF\n"));
    }
}
