//! A webhook receiver for load runs (`--webhooks`): a real HTTP server on 127.0.0.1 that
//! the started hms-server POSTs its events to. `fast` answers 200 at once and records
//! every event (then the run verifies each room's events and reports the delivery rate);
//! `slow` answers after a delay and `down` is a port nobody listens on, to show that
//! signaling does not wait for webhooks.

use crate::verify::RoomPlan;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How the receiver behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// No webhooks (the server is started without them).
    Off,
    /// Answers 200 at once; every event is recorded and verified.
    Fast,
    /// Answers 200 after `--webhook-slow-ms`.
    Slow,
    /// Nobody listens: every delivery is refused and retried.
    Down,
}

/// One request, as recorded.
#[derive(Debug, Clone)]
pub struct Got {
    /// When it arrived.
    pub at: Instant,
    /// Event id.
    pub id: String,
    /// Event type.
    pub kind: String,
    /// `data.room_id`.
    pub room: String,
    /// `data.peer_id` (joins and leaves).
    pub peer: String,
    /// `data.reason` (closes and leaves).
    pub reason: String,
    /// Whether `X-HMS-Signature` verified.
    pub signed: bool,
}

struct Shared {
    secret: String,
    delay: Duration,
    got: Mutex<Vec<Got>>,
}

/// A running receiver (or, for `down`, a port nobody listens on).
pub struct Receiver {
    /// Where the server POSTs.
    pub url: String,
    shared: Arc<Shared>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

/// Whether `header` (`t=..,v1=..`) signs `body` with `secret`.
pub fn signature_ok(secret: &str, header: &str, body: &[u8]) -> bool {
    let mut t = None;
    let mut v1 = None;
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => t = Some(v.to_owned()),
            Some(("v1", v)) => v1 = Some(v.to_owned()),
            _ => {}
        }
    }
    let (Some(t), Some(v1)) = (t, v1) else { return false };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else { return false };
    mac.update(t.as_bytes());
    mac.update(b".");
    mac.update(body);
    let hex: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
    hex == v1
}

fn record(shared: &Shared, header: &str, body: &[u8]) {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let s = |x: &Value| x.as_str().unwrap_or_default().to_owned();
    let got = Got {
        at: Instant::now(),
        id: s(&v["id"]),
        kind: s(&v["type"]),
        room: s(&v["data"]["room_id"]),
        peer: s(&v["data"]["peer_id"]),
        reason: s(&v["data"]["reason"]),
        signed: signature_ok(&shared.secret, header, body),
    };
    shared.got.lock().unwrap_or_else(|p| p.into_inner()).push(got);
}

impl Receiver {
    /// Starts a receiver in `mode` (not `Off`) checking signatures with `secret`.
    pub async fn start(mode: Mode, secret: &str, slow: Duration) -> Result<Receiver, String> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.map_err(|e| format!("webhook receiver: {e}"))?;
        let addr = listener.local_addr().map_err(|e| format!("webhook receiver: {e}"))?;
        let shared = Arc::new(Shared { secret: secret.to_owned(), delay: if mode == Mode::Slow { slow } else { Duration::ZERO }, got: Mutex::default() });
        let url = format!("http://{addr}/hook");
        if mode == Mode::Down {
            // The port was free a moment ago and nobody listens on it now.
            drop(listener);
            return Ok(Receiver { url, shared, task: None });
        }
        let s = shared.clone();
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let s = s.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                        let s = s.clone();
                        async move {
                            use http_body_util::BodyExt;
                            let header = req.headers().get("x-hms-signature").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
                            let body = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                            if !s.delay.is_zero() {
                                tokio::time::sleep(s.delay).await;
                            }
                            record(&s, &header, &body);
                            Ok::<_, std::convert::Infallible>(hyper::Response::new(http_body_util::Empty::<hyper::body::Bytes>::new()))
                        }
                    });
                    let io = hyper_util::rt::TokioIo::new(tcp);
                    let _ = hyper::server::conn::http1::Builder::new().serve_connection(io, svc).await;
                });
            }
        });
        Ok(Receiver { url, shared, task: Some(task) })
    }

    /// What arrived so far.
    pub fn got(&self) -> Vec<Got> {
        self.shared.got.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Waits until `n` distinct events arrived or `until`.
    pub async fn wait_for(&self, n: usize, until: Instant) -> Vec<Got> {
        loop {
            let got = self.got();
            let distinct = got.iter().map(|g| g.id.as_str()).collect::<HashSet<_>>().len();
            if distinct >= n || Instant::now() >= until {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// How many events a run sends: per room one session open and close, per peer one join
/// and one leave.
pub fn expected(plans: &[RoomPlan]) -> usize {
    plans.iter().map(|p| 2 + 2 * (1 + p.guests.len())).sum()
}

/// Checks the events of an ended run: every one signed, none twice, each room's in order
/// (open, a join per peer, the close as "room ended", a leave per peer as "room ended").
pub fn verify(plans: &[RoomPlan], got: &[Got]) -> Vec<String> {
    let mut problems = Vec::new();
    let unsigned = got.iter().filter(|g| !g.signed).count();
    if unsigned > 0 {
        problems.push(format!("{unsigned} webhook requests failed signature verification"));
    }
    let mut seen = HashSet::new();
    let mut by_room: HashMap<&str, Vec<&Got>> = HashMap::new();
    let mut dups = 0;
    for g in got {
        if seen.insert(g.id.as_str()) {
            by_room.entry(g.room.as_str()).or_default().push(g);
        } else {
            dups += 1;
        }
    }
    if dups > 0 {
        problems.push(format!("{dups} webhook events arrived twice (no crash happened: each should arrive once)"));
    }
    for p in plans {
        let events = by_room.remove(p.room_id.as_str()).unwrap_or_default();
        let peers: HashSet<&str> = std::iter::once(p.host.as_str()).chain(p.guests.iter().map(String::as_str)).collect();
        let n = peers.len();
        let kinds: Vec<&str> = events.iter().map(|g| g.kind.as_str()).collect();
        let mut want = vec!["session.open.success"];
        want.extend(std::iter::repeat("peer.join.success").take(n));
        want.push("session.close.success");
        want.extend(std::iter::repeat("peer.leave.success").take(n));
        if kinds != want {
            let summary = |k: &[&str]| {
                let mut c: Vec<(String, usize)> = Vec::new();
                for x in k {
                    match c.last_mut() {
                        Some((last, n)) if last == x => *n += 1,
                        _ => c.push((x.to_string(), 1)),
                    }
                }
                c.iter().map(|(k, n)| format!("{k} x{n}")).collect::<Vec<_>>().join(", ")
            };
            problems.push(format!("room {}: webhook events [{}], expected [{}]", p.room_id, summary(&kinds), summary(&want)));
            continue;
        }
        let joined: HashSet<&str> = events[1..=n].iter().map(|g| g.peer.as_str()).collect();
        let left: HashSet<&str> = events[n + 2..].iter().map(|g| g.peer.as_str()).collect();
        if joined != peers || left != peers {
            problems.push(format!("room {}: the joins or leaves do not name each peer once", p.room_id));
        }
        if events[n + 1].reason != "room ended" || events[n + 2..].iter().any(|g| g.reason != "room ended") {
            problems.push(format!("room {}: the close or a leave does not say \"room ended\"", p.room_id));
        }
    }
    if !by_room.is_empty() {
        problems.push(format!("webhook events for {} rooms that are not part of the run", by_room.len()));
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(kind: &str, room: &str, peer: &str, reason: &str, id: &str) -> Got {
        Got { at: Instant::now(), id: id.into(), kind: kind.into(), room: room.into(), peer: peer.into(), reason: reason.into(), signed: true }
    }

    fn plan() -> RoomPlan {
        RoomPlan { room_id: "r".into(), reason: "x".into(), host: "h".into(), guests: vec!["a".into()] }
    }

    fn good() -> Vec<Got> {
        vec![
            g("session.open.success", "r", "", "", "1"),
            g("peer.join.success", "r", "h", "", "2"),
            g("peer.join.success", "r", "a", "", "3"),
            g("session.close.success", "r", "", "room ended", "4"),
            g("peer.leave.success", "r", "a", "room ended", "5"),
            g("peer.leave.success", "r", "h", "room ended", "6"),
        ]
    }

    #[test]
    fn a_clean_run_verifies_and_each_fault_is_caught() {
        assert_eq!(expected(&[plan()]), 6);
        assert!(verify(&[plan()], &good()).is_empty());
        let mut dup = good();
        dup.push(dup[2].clone());
        assert!(verify(&[plan()], &dup)[0].contains("twice"));
        let mut lost = good();
        lost.remove(4);
        assert!(verify(&[plan()], &lost)[0].contains("expected"));
        let mut early = good();
        early.swap(3, 4);
        assert!(verify(&[plan()], &early)[0].contains("expected"), "a leave before the close is out of order");
        let mut unsigned = good();
        unsigned[0].signed = false;
        assert!(verify(&[plan()], &unsigned)[0].contains("signature"));
        let mut wrong = good();
        wrong[5].reason = "client request".into();
        assert!(verify(&[plan()], &wrong)[0].contains("room ended"));
    }

    #[test]
    fn signatures_are_checked_like_the_docs_say() {
        // HMAC-SHA256("key", "1.{}"), as server/src/webhooks/sign.rs's known answer.
        let header = "t=1,v1=1ba6b8171186efc613e8bcc0cbdab2748f24984d7c5a84faa2637afa0e40d224";
        assert!(signature_ok("key", header, b"{}"));
        assert!(!signature_ok("key", header, b"{ }"));
        assert!(!signature_ok("other", header, b"{}"));
    }
}
