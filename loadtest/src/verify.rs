//! What a run must show, checked from what every peer saw (pure, unit-tested): every
//! peer joined; every guest got exactly one `on-peer-leave-request` with its room's
//! reason, requested by its room's host, `room_end: true`; every host's `end-room` was
//! answered `{}` and the host itself was not asked to leave; the server closed every
//! socket afterwards; nobody got an `on-error`.

use hms_protocol::PeerLeaveRequest;
use std::time::{Duration, Instant};

/// One room of the run: who is in it and how it will be ended.
#[derive(Debug, Clone)]
pub struct RoomPlan {
    /// The room id the tokens name.
    pub room_id: String,
    /// The reason its host ends it with (unique per room, so a push that reached the
    /// wrong room is caught).
    pub reason: String,
    /// The host's peer id.
    pub host: String,
    /// The guests' peer ids.
    pub guests: Vec<String>,
}

/// An `on-peer-leave-request` as a peer received it.
#[derive(Debug, Clone)]
pub struct Received {
    /// The push's params.
    pub push: PeerLeaveRequest,
    /// When the frame was read.
    pub at: Instant,
}

/// Everything one peer saw during the run.
#[derive(Debug, Clone)]
pub struct PeerReport {
    /// Index of the peer's room in the plan.
    pub room: usize,
    /// The peer's id.
    pub peer_id: String,
    /// Whether this peer is its room's host.
    pub is_host: bool,
    /// Connect + join until the join was answered with success; `None` if it failed.
    pub join_latency: Option<Duration>,
    /// Every `on-peer-leave-request` received, in order.
    pub leave_requests: Vec<Received>,
    /// Host only: when `end-room` was sent.
    pub end_sent_at: Option<Instant>,
    /// Host only: when the answer to `end-room` arrived, and the answer (`Ok(result as
    /// JSON)` or `Err(error)`).
    pub end_answer: Option<(Instant, Result<serde_json::Value, String>)>,
    /// The server closed the socket (close frame or EOF) after the room ended.
    pub closed_by_server: bool,
    /// Anything else that went wrong: a failed join, `on-error`, a socket error.
    pub errors: Vec<String>,
}

impl PeerReport {
    /// A report for `peer_id` with nothing seen yet.
    pub fn new(room: usize, peer_id: String, is_host: bool) -> Self {
        Self {
            room,
            peer_id,
            is_host,
            join_latency: None,
            leave_requests: Vec::new(),
            end_sent_at: None,
            end_answer: None,
            closed_by_server: false,
            errors: Vec::new(),
        }
    }
}

/// Every way the run fell short of the contract, one line each (empty when it passed).
pub fn verify(plans: &[RoomPlan], reports: &[PeerReport]) -> Vec<String> {
    let mut failures = Vec::new();
    let expected: usize = plans.iter().map(|p| 1 + p.guests.len()).sum();
    if reports.len() != expected {
        failures.push(format!("expected reports from {expected} peers, got {}", reports.len()));
    }
    for r in reports {
        let Some(plan) = plans.get(r.room) else {
            failures.push(format!("peer {} reports room #{} which is not in the plan", r.peer_id, r.room));
            continue;
        };
        let who = format!("{} {} in {}", if r.is_host { "host" } else { "guest" }, r.peer_id, plan.room_id);
        for e in &r.errors {
            failures.push(format!("{who}: {e}"));
        }
        if r.join_latency.is_none() {
            failures.push(format!("{who}: did not join"));
            continue;
        }
        if r.is_host {
            if r.peer_id != plan.host {
                failures.push(format!("{who}: is not the planned host {}", plan.host));
            }
            match &r.end_answer {
                None => failures.push(format!("{who}: end-room was not answered")),
                Some((_, Err(e))) => failures.push(format!("{who}: end-room failed: {e}")),
                Some((_, Ok(v))) if !v.as_object().is_some_and(|o| o.is_empty()) => {
                    failures.push(format!("{who}: end-room answered {v}, expected {{}}"))
                }
                Some(_) => {}
            }
            if !r.leave_requests.is_empty() {
                failures.push(format!(
                    "{who}: the host that ended the room got {} on-peer-leave-request(s)",
                    r.leave_requests.len()
                ));
            }
        } else {
            match r.leave_requests.len() {
                0 => failures.push(format!("{who}: lost: no on-peer-leave-request")),
                1 => {}
                n => failures.push(format!("{who}: duplicated: {n} on-peer-leave-requests")),
            }
            for got in &r.leave_requests {
                let p = &got.push;
                if p.reason != plan.reason {
                    failures.push(format!("{who}: reason {:?}, expected {:?}", p.reason, plan.reason));
                }
                if p.requested_by.as_deref() != Some(plan.host.as_str()) {
                    failures.push(format!("{who}: requested_by {:?}, expected {:?}", p.requested_by, plan.host));
                }
                if !p.room_end {
                    failures.push(format!("{who}: room_end false, expected true"));
                }
            }
        }
        if !r.closed_by_server {
            failures.push(format!("{who}: the server did not close the socket after the room ended"));
        }
    }
    failures
}

/// Fan-out latencies: for every guest, from its host's `end-room` send to the guest's
/// first `on-peer-leave-request`. Returns (all samples, per room the slowest guest).
pub fn fan_out(plans: &[RoomPlan], reports: &[PeerReport]) -> (Vec<Duration>, Vec<Option<Duration>>) {
    let mut sent: Vec<Option<Instant>> = vec![None; plans.len()];
    for r in reports.iter().filter(|r| r.is_host) {
        if let Some(slot) = sent.get_mut(r.room) {
            *slot = r.end_sent_at;
        }
    }
    let mut all = Vec::new();
    let mut last: Vec<Option<Duration>> = vec![None; plans.len()];
    for r in reports.iter().filter(|r| !r.is_host) {
        let (Some(Some(t0)), Some(first)) = (sent.get(r.room), r.leave_requests.first()) else { continue };
        let d = first.at.saturating_duration_since(*t0);
        all.push(d);
        let slot = &mut last[r.room];
        *slot = Some(slot.map_or(d, |m: Duration| m.max(d)));
    }
    (all, last)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> Vec<RoomPlan> {
        vec![
            RoomPlan { room_id: "r0".into(), reason: "end r0".into(), host: "h0".into(), guests: vec!["g0a".into(), "g0b".into()] },
            RoomPlan { room_id: "r1".into(), reason: "end r1".into(), host: "h1".into(), guests: vec!["g1a".into()] },
        ]
    }

    fn push(reason: &str, by: &str, at: Instant) -> Received {
        Received { push: PeerLeaveRequest { requested_by: Some(by.into()), reason: reason.into(), room_end: true }, at }
    }

    /// A run in which everything went right; t0 is when both hosts sent end-room.
    fn good(t0: Instant) -> Vec<PeerReport> {
        let ms = Duration::from_millis;
        let mut out = Vec::new();
        for (room, p) in plan().iter().enumerate() {
            let mut h = PeerReport::new(room, p.host.clone(), true);
            h.join_latency = Some(ms(2));
            h.end_sent_at = Some(t0);
            h.end_answer = Some((t0 + ms(5), Ok(serde_json::json!({}))));
            h.closed_by_server = true;
            out.push(h);
            for (i, g) in p.guests.iter().enumerate() {
                let mut r = PeerReport::new(room, g.clone(), false);
                r.join_latency = Some(ms(3));
                r.leave_requests.push(push(&p.reason, &p.host, t0 + ms(1 + i as u64 + 10 * room as u64)));
                r.closed_by_server = true;
                out.push(r);
            }
        }
        out
    }

    #[test]
    fn a_clean_run_passes() {
        assert_eq!(verify(&plan(), &good(Instant::now())), Vec::<String>::new());
    }

    #[test]
    fn a_lost_push_fails() {
        let mut r = good(Instant::now());
        r[1].leave_requests.clear();
        let f = verify(&plan(), &r);
        assert_eq!(f.len(), 1, "{f:?}");
        assert!(f[0].contains("g0a") && f[0].contains("lost"), "{f:?}");
    }

    #[test]
    fn a_duplicated_push_fails() {
        let mut r = good(Instant::now());
        let again = r[4].leave_requests[0].clone();
        r[4].leave_requests.push(again);
        let f = verify(&plan(), &r);
        assert!(f.iter().any(|l| l.contains("g1a") && l.contains("duplicated")), "{f:?}");
    }

    #[test]
    fn the_wrong_reason_requester_or_flag_fails() {
        let mut r = good(Instant::now());
        r[1].leave_requests[0].push.reason = "end r1".into(); // the other room's reason
        r[2].leave_requests[0].push.requested_by = None;
        r[4].leave_requests[0].push.room_end = false;
        let f = verify(&plan(), &r);
        assert!(f.iter().any(|l| l.contains("g0a") && l.contains("reason")), "{f:?}");
        assert!(f.iter().any(|l| l.contains("g0b") && l.contains("requested_by")), "{f:?}");
        assert!(f.iter().any(|l| l.contains("g1a") && l.contains("room_end")), "{f:?}");
        assert_eq!(f.len(), 3, "{f:?}");
    }

    #[test]
    fn host_answer_must_be_an_empty_object() {
        let t0 = Instant::now();
        let mut r = good(t0);
        r[0].end_answer = Some((t0, Ok(serde_json::Value::Null)));
        r[3].end_answer = Some((t0, Err("403 permission denied".into())));
        let f = verify(&plan(), &r);
        assert!(f.iter().any(|l| l.contains("h0") && l.contains("expected {}")), "{f:?}");
        assert!(f.iter().any(|l| l.contains("h1") && l.contains("403")), "{f:?}");
        let mut r = good(t0);
        r[0].end_answer = None;
        assert!(verify(&plan(), &r).iter().any(|l| l.contains("not answered")));
    }

    #[test]
    fn join_failures_missing_peers_errors_and_open_sockets_fail() {
        let mut r = good(Instant::now());
        r[2].join_latency = None;
        r[4].errors.push("on-error 401".into());
        r[3].closed_by_server = false;
        r.pop();
        let f = verify(&plan(), &r);
        assert!(f.iter().any(|l| l.contains("expected reports from 5 peers, got 4")), "{f:?}");
        assert!(f.iter().any(|l| l.contains("g0b") && l.contains("did not join")), "{f:?}");
        assert!(f.iter().any(|l| l.contains("h1") && l.contains("did not close")), "{f:?}");
        let mut r = good(Instant::now());
        r[4].errors.push("on-error 401".into());
        assert!(verify(&plan(), &r).iter().any(|l| l.contains("on-error 401")));
    }

    #[test]
    fn a_host_asked_to_leave_fails() {
        let t0 = Instant::now();
        let mut r = good(t0);
        r[0].leave_requests.push(push("end r0", "h0", t0));
        assert!(verify(&plan(), &r).iter().any(|l| l.contains("h0") && l.contains("host that ended")));
    }

    #[test]
    fn fan_out_is_measured_from_each_rooms_end_room() {
        let t0 = Instant::now();
        let (all, last) = fan_out(&plan(), &good(t0));
        let ms = Duration::from_millis;
        let mut sorted = all.clone();
        sorted.sort();
        assert_eq!(sorted, vec![ms(1), ms(2), ms(11)]);
        assert_eq!(last, vec![Some(ms(2)), Some(ms(11))]);
    }
}
