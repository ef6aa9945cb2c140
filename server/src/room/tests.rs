//! Unit tests of the room model: every rule of joining, leaving, holding, ending and
//! removing, driven through the hub with plain queues.

use super::*;
use hms_protocol::Permissions;
use serde_json::{json, Value};

/// The default template's two roles: `host` may end and remove, `guest` may not.
fn roles() -> BTreeMap<String, Role> {
    let role = |name: &str, priority, allowed| Role {
        name: name.into(),
        priority,
        permissions: Permissions { end_room: allowed, remove_others: allowed, ..Permissions::default() },
    };
    [("host".to_owned(), role("host", 100, true)), ("guest".to_owned(), role("guest", 1, false))].into()
}

fn hub(window_ms: u64) -> Hub {
    Hub::new(roles(), "default".into(), Duration::from_millis(window_ms))
}

struct Peer {
    conn: ConnHandle,
    rx: tokio::sync::mpsc::Receiver<Out>,
    /// The place's reconnect secret.
    secret: Secret,
}

fn conn(id: u64, cap: usize) -> Peer {
    let (conn, out) = ConnHandle::queue(id, cap);
    Peer { conn, rx: out.rx, secret: Secret::default() }
}

impl Peer {
    /// Everything queued so far, as JSON (acks are fired as if written).
    fn drain(&mut self) -> Vec<Value> {
        let mut v = Vec::new();
        while let Ok(o) = self.rx.try_recv() {
            v.push(match o {
                Out::Text(t) => serde_json::from_str(&t).unwrap(),
                Out::TextAck(t, done) => {
                    done.written();
                    serde_json::from_str(&t).unwrap()
                }
                Out::Build(build) => serde_json::from_str(&build()).unwrap(),
                Out::Close(why) => json!({"close": format!("{why:?}")}),
            });
        }
        v
    }
}

fn methods(v: &[Value]) -> Vec<String> {
    v.iter()
        .map(|f| f.get("method").and_then(Value::as_str).map(str::to_owned).unwrap_or_else(|| f.to_string()))
        .collect()
}

fn join(h: &Hub, room: &str, peer: &str, role: &str, id: u64) -> Peer {
    let mut p = conn(id, 64);
    match h.connect(room, peer, &format!("u-{peer}"), role, None, p.conn.clone()).unwrap() {
        Connected::Fresh(secret) => p.secret = secret,
        other => panic!("expected a fresh place, got {other:?}"),
    }
    h.join(room, peer, id, peer, "", frame::ok(&json!(1))).unwrap();
    let first = p.drain();
    assert_eq!(first[0]["result"], json!({}));
    assert_eq!(methods(&first[1..]), ["on-policy-change", "peer-list"]);
    p
}

/// Host `a` and guests `b`, `c` joined in room `r`; what `a` and `b` got so far is read.
fn host_and_two_guests(h: &Hub) -> (Peer, Peer, Peer) {
    let mut a = join(h, "r", "a", "host", 1);
    let mut b = join(h, "r", "b", "guest", 2);
    let c = join(h, "r", "c", "guest", 3);
    a.drain();
    b.drain();
    (a, b, c)
}

#[test]
fn join_announces_and_lists() {
    let h = hub(0);
    let mut a = join(&h, "r", "a", "host", 1);
    let b = {
        let mut p = conn(2, 64);
        h.connect("r", "b", "u-b", "guest", None, p.conn.clone()).unwrap();
        h.join("r", "b", 2, "Bee", "d", frame::ok(&json!("x"))).unwrap();
        let f = p.drain();
        assert_eq!(f[2]["params"]["peers"].as_object().unwrap().len(), 2);
        assert_eq!(f[1]["params"]["name"], "guest");
        assert_eq!(f[1]["params"]["known_roles"]["host"]["permissions"]["endRoom"], true);
        p
    };
    let got = a.drain();
    assert_eq!(methods(&got), ["on-peer-join"]);
    assert_eq!(got[0]["params"]["info"]["name"], "Bee");
    assert_eq!(h.join("r", "b", 2, "again", "", frame::ok(&json!(2))).unwrap_err().code(), 409);
    drop(b);
}

#[test]
fn peer_id_in_use_is_409_and_unknown_role_401() {
    let h = hub(0);
    let _a = join(&h, "r", "a", "host", 1);
    assert_eq!(h.connect("r", "a", "u-other", "host", None, conn(2, 4).conn).unwrap_err().code(), 409);
    assert_eq!(h.connect("r", "a", "u-a", "guest", None, conn(2, 4).conn).unwrap_err().code(), 409);
    assert_eq!(h.connect("r", "z", "u", "nope", None, conn(3, 4).conn).unwrap_err().code(), 401);
}

#[test]
fn a_drop_while_the_room_is_ending_still_gets_the_room_end_on_reconnect() {
    let h = hub(30_000);
    let mut host = join(&h, "r", "h", "host", 1);
    let g = join(&h, "r", "g", "guest", 2);
    host.drain();
    // end-room's first half, then the guest's socket drop is processed while the
    // durable write is under way, then the second half.
    let _ticket = h.begin_end_room("r", Some(("h", 1)), false).unwrap();
    let secret = g.secret.clone();
    drop(g);
    let fx = h.disconnected("r", "g", 2, true);
    assert!(fx.hold.is_some(), "the dropped guest is held, not announced");
    h.finish_end_room("r", Some("h"), "all done");
    assert!(host.drain().iter().all(|m| m["method"] != "on-peer-leave"), "no stray on-peer-leave");
    let g2 = conn(3, 8);
    match h.connect("r", "g", "u-g", "guest", Some(secret.as_str()), g2.conn.clone()).unwrap() {
        Connected::Missed(n) => assert!(n.room_end && n.reason == "all done"),
        other => panic!("expected the missed room end, got {other:?}"),
    }
}

#[test]
fn same_user_takes_over_a_live_place_and_the_old_connection_is_told() {
    let h = hub(0);
    let mut a = join(&h, "r", "a", "host", 1);
    let mut b = join(&h, "r", "b", "guest", 2);
    a.drain();
    let mut a2 = conn(3, 8);
    // Without the place's secret: refused, and the live connection is left alone.
    assert_eq!(h.connect("r", "a", "u-a", "host", None, a2.conn.clone()).unwrap_err().code(), 409);
    assert_eq!(h.connect("r", "a", "u-a", "host", Some("wrong"), a2.conn.clone()).unwrap_err().code(), 409);
    assert!(a.drain().is_empty());
    assert!(matches!(h.connect("r", "a", "u-a", "host", Some(a.secret.as_str()), a2.conn.clone()).unwrap(), Connected::Reclaimed));
    let old = a.drain();
    assert_eq!(old[0]["method"], "on-error");
    assert_eq!(old[0]["params"]["code"], 409);
    // The stale connection's end no longer touches the place.
    assert!(h.disconnected("r", "a", 1, false).hold.is_none());
    h.join("r", "a", 3, "a", "", frame::ok(&json!(9))).unwrap();
    assert_eq!(methods(&a2.drain()[1..]), ["on-policy-change", "peer-list"]);
    assert!(b.drain().is_empty(), "others see no leave/join for a takeover");
}

#[test]
fn end_room_notifies_others_and_locks() {
    let h = hub(0);
    let (mut a, mut b, mut c) = host_and_two_guests(&h);
    assert_eq!(h.begin_end_room("r", Some(("b", 2)), true).unwrap_err().code(), 403);
    assert!(!h.is_locked("r"));
    let t = h.begin_end_room("r", Some(("a", 1)), true).unwrap();
    // Joins are refused at once; the lock itself is set from the store's commit.
    let w = conn(9, 8);
    h.connect("r", "w", "u-w", "guest", None, w.conn.clone()).unwrap();
    assert_eq!(h.join("r", "w", 9, "w", "", frame::ok(&json!(1))).unwrap_err().code(), 423);
    assert!(!h.is_locked("r"));
    h.set_locked("r", true);
    let (req, acks) = h.finish_end_room("r", Some("a"), "done");
    assert_eq!(req.unwrap().id, 1);
    assert_eq!(acks.queued(), 2);
    for p in [&mut b, &mut c] {
        let f = p.drain();
        let f: Vec<&Value> = f.iter().filter(|f| f.get("method").map(|m| m != "on-peer-join").unwrap_or(true)).collect();
        assert_eq!(f[0]["method"], "on-peer-leave-request");
        assert_eq!(f[0]["params"], json!({"requested_by": "a", "reason": "done", "room_end": true}));
        assert_eq!(f[1], &json!({"close": "RoomEnded"}));
    }
    assert!(a.drain().is_empty(), "the requester's answer is the caller's job");
    assert!(h.active_room("r").is_none());
    let _ = t;
    // Locked: a new join fails with 423.
    let p = conn(9, 4);
    h.connect("r", "d", "u-d", "host", None, p.conn.clone()).unwrap();
    assert_eq!(h.join("r", "d", 9, "d", "", frame::ok(&json!(1))).unwrap_err().code(), 423);
    h.set_locked("r", false);
    assert!(h.join("r", "d", 9, "d", "", frame::ok(&json!(1))).is_ok());
}

#[test]
fn end_room_leaves_unjoined_connections_alone() {
    let h = hub(0);
    let _a = join(&h, "r", "a", "host", 1);
    let mut w = conn(2, 8);
    h.connect("r", "w", "u-w", "guest", None, w.conn.clone()).unwrap();
    h.begin_end_room("r", Some(("a", 1)), false).unwrap();
    h.finish_end_room("r", Some("a"), "bye");
    assert!(w.drain().is_empty(), "not told, not closed");
    h.join("r", "w", 2, "w", "", frame::ok(&json!(1))).unwrap();
    let f = w.drain();
    assert_eq!(f[2]["params"]["peers"].as_object().unwrap().len(), 1, "a new session with only w");
    assert!(h.active_room("r").is_some());
}

#[test]
fn remove_peer_rules() {
    let h = hub(0);
    let (mut a, mut b, mut c) = host_and_two_guests(&h);
    assert_eq!(h.remove_peer("r", Some(("b", 2)), "c", "x").unwrap_err().code(), 403);
    assert_eq!(h.remove_peer("r", Some(("a", 1)), "a", "x").unwrap_err().code(), 400);
    assert_eq!(h.remove_peer("r", Some(("a", 1)), "zz", "x").unwrap_err().code(), 404);
    h.remove_peer("r", Some(("a", 1)), "c", "bye").unwrap();
    let f = c.drain();
    assert_eq!(f[0]["params"], json!({"requested_by": "a", "reason": "bye", "room_end": false}));
    assert_eq!(f[1], json!({"close": "Removed"}));
    for p in [&mut a, &mut b] {
        let f = p.drain();
        assert_eq!(methods(&f), ["on-peer-leave"]);
        assert_eq!(f[0]["params"]["peer_id"], "c");
    }
}

#[test]
fn methods_before_join_are_refused() {
    let h = hub(0);
    let p = conn(1, 4);
    h.connect("r", "a", "u", "host", None, p.conn.clone()).unwrap();
    assert_eq!(h.leave("r", "a", 1).unwrap_err().code(), 400);
    assert_eq!(h.begin_end_room("r", Some(("a", 1)), false).unwrap_err().code(), 400);
    assert_eq!(h.remove_peer("r", Some(("a", 1)), "b", "").unwrap_err().code(), 400);
}

#[test]
fn full_queue_cuts_the_slow_peer_not_the_room() {
    let h = hub(0);
    let mut a = join(&h, "r", "a", "host", 1);
    // b's queue holds 3 frames: its own join answers fill it.
    let mut b = conn(2, 3);
    h.connect("r", "b", "u-b", "guest", None, b.conn.clone()).unwrap();
    h.join("r", "b", 2, "b", "", frame::ok(&json!(1))).unwrap();
    let _c = join(&h, "r", "c", "guest", 3); // b's on-peer-join overflows
    assert!(b.conn.is_killed());
    a.drain();
    h.begin_end_room("r", Some(("a", 1)), false).unwrap();
    let (_req, acks) = h.finish_end_room("r", Some("a"), "bye");
    assert_eq!(acks.queued(), 1, "c got its notice; b's full queue was skipped");
    assert_eq!(b.drain().len(), 3);
}

#[test]
fn reconnect_window_holds_the_place_silently() {
    let (h, events) = recording(60_000);
    let mut a = join(&h, "r", "a", "host", 1);
    let b = join(&h, "r", "b", "guest", 2);
    a.drain();
    events.take();
    let fx = h.disconnected("r", "b", 2, true);
    let gen = fx.hold.unwrap();
    assert!(a.drain().is_empty(), "no leave while held");
    let mut b2 = conn(5, 16);
    assert_eq!(h.connect("r", "b", "u-b", "guest", None, b2.conn.clone()).unwrap_err().code(), 409, "no secret, no place");
    assert!(matches!(h.connect("r", "b", "u-b", "guest", Some(b.secret.as_str()), b2.conn.clone()).unwrap(), Connected::Reclaimed));
    h.join("r", "b", 5, "b", "", frame::ok(&json!(1))).unwrap();
    let f = b2.drain();
    assert_eq!(methods(&f[1..]), ["on-policy-change", "peer-list"]);
    assert_eq!(f[2]["params"]["peers"].as_object().unwrap().len(), 2);
    assert!(a.drain().is_empty(), "no join noise on reconnect");
    h.hold_expired("r", "b", gen);
    assert!(a.drain().is_empty(), "a stale timer does nothing");
    assert!(events.take().is_empty(), "a drop and a reconnect within the window are no events");
    // Dropped again, and the window runs out: now the others hear of it.
    let gen = h.disconnected("r", "b", 5, true).hold.unwrap();
    h.hold_expired("r", "b", gen);
    assert_eq!(methods(&a.drain()), ["on-peer-leave"]);
    assert_eq!(events.names(), ["leave b connection lost"]);
    // Another user cannot take a held place.
    let _c = join(&h, "r", "c", "guest", 6);
    h.disconnected("r", "c", 6, true);
    assert_eq!(h.connect("r", "c", "someone-else", "guest", None, conn(7, 4).conn).unwrap_err().code(), 409);
}

#[test]
fn missed_removal_and_room_end_are_delivered_on_reconnect() {
    let h = hub(60_000);
    let _a = join(&h, "r", "a", "host", 1);
    let b = join(&h, "r", "b", "guest", 2);
    let c = join(&h, "r", "c", "guest", 3);
    h.disconnected("r", "b", 2, true);
    h.remove_peer("r", Some(("a", 1)), "b", "kicked").unwrap();
    // Another user, or the same one without the secret, neither gets the notice nor
    // takes the id; the tombstone stays.
    assert_eq!(h.connect("r", "b", "u-other", "guest", Some(b.secret.as_str()), conn(8, 4).conn).unwrap_err().code(), 409);
    assert_eq!(h.connect("r", "b", "u-b", "guest", None, conn(8, 4).conn).unwrap_err().code(), 409);
    match h.connect("r", "b", "u-b", "guest", Some(b.secret.as_str()), conn(4, 4).conn).unwrap() {
        Connected::Missed(n) => assert_eq!((n.requested_by.as_deref(), n.reason.as_str(), n.room_end), (Some("a"), "kicked", false)),
        other => panic!("{other:?}"),
    }
    h.disconnected("r", "c", 3, true);
    h.begin_end_room("r", None, false).unwrap();
    h.finish_end_room("r", None, "over");
    match h.connect("r", "c", "u-c", "guest", Some(c.secret.as_str()), conn(5, 4).conn).unwrap() {
        Connected::Missed(n) => assert_eq!((n.requested_by, n.reason.as_str(), n.room_end), (None, "over", true)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn session_ends_when_room_empties() {
    let (h, events) = recording(0);
    let a = join(&h, "r", "a", "host", 1);
    assert!(h.active_room("r").is_some());
    h.leave("r", "a", 1).unwrap();
    assert!(h.active_room("r").is_none());
    assert_eq!(h.counts(), (0, 0));
    assert_eq!(events.names(), ["open r", "join a", "leave a left", "close r emptied"]);
    drop(a);
}

/// The fixed part of a peer's record, printed for docs/SERVER.md ("Memory per
/// connection": `cargo test -p hms-server fixed_sizes -- --nocapture`) and bounded here
/// (a deterministic size, like the package budget), so that it does not creep up.
#[test]
fn fixed_sizes_of_a_peer_record_and_a_queued_frame() {
    let (slot, out) = (std::mem::size_of::<Slot>(), std::mem::size_of::<Out>());
    println!("Slot {slot} B, Out {out} B, a queue block of 32 Outs {} B", 32 * out);
    // 176 B before issue 10 added the place's reconnect secret digest (16 B, aligned to 24).
    assert!(slot <= 200, "Slot grew to {slot} B");
    assert!(out <= 48, "Out grew to {out} B");
}

/// Collects what the hub emits.
#[derive(Default)]
struct Recorded(std::sync::Mutex<Vec<Event>>);

impl Sink for Recorded {
    fn emit(&self, events: Vec<Event>) {
        self.0.lock().unwrap().extend(events);
    }
}

impl Recorded {
    fn take(&self) -> Vec<Event> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }

    /// The events so far, each as a short name (`join a`, `leave b removed by a`, ...).
    fn names(&self) -> Vec<String> {
        let by = |b: &By| b.peer_id().unwrap_or("api").to_owned();
        self.take()
            .iter()
            .map(|e| match e {
                Event::SessionOpened { room_id, .. } => format!("open {room_id}"),
                Event::SessionClosed { room_id, reason, .. } => format!("close {room_id} {reason:?}").to_lowercase(),
                Event::PeerJoined { peer, .. } => format!("join {}", peer.peer_id),
                Event::PeerLeft { peer, reason, .. } => match reason {
                    LeaveReason::Removed { by: b, message } => format!("leave {} removed by {} {message}", peer.peer_id, by(b)),
                    LeaveReason::RoomEnded { by: b, message } => format!("leave {} room ended by {} {message}", peer.peer_id, by(b)),
                    LeaveReason::Left => format!("leave {} left", peer.peer_id),
                    LeaveReason::ConnectionLost => format!("leave {} connection lost", peer.peer_id),
                    LeaveReason::LimitExceeded => format!("leave {} limit", peer.peer_id),
                    other => format!("leave {} {other:?}", peer.peer_id),
                },
                Event::RoomEnabled { room_id, enabled, .. } => format!("enabled {room_id} {enabled}"),
            })
            .collect()
    }
}

fn recording(window_ms: u64) -> (Hub, Arc<Recorded>) {
    let rec = Arc::new(Recorded::default());
    (hub(window_ms).with_sink(rec.clone()), rec)
}

#[test]
fn joins_and_leaves_are_events_with_the_peer_and_its_session() {
    let (h, events) = recording(0);
    let _a = join(&h, "r", "a", "host", 1);
    let got = events.take();
    let (Event::SessionOpened { session_id: opened, .. }, Event::PeerJoined { session_id, peer, .. }) = (&got[0], &got[1]) else {
        panic!("{got:?}")
    };
    assert_eq!(opened, session_id);
    assert_eq!((peer.peer_id.as_str(), peer.user_id.as_str(), peer.role.as_str(), peer.details().name.as_str()), ("a", "u-a", "host", "a"));
    assert!(peer.details().joined_at > 0, "the join time is read from the peer's JSON");
    // A connection that never joined leaves no trace.
    h.connect("r", "x", "u-x", "guest", None, conn(9, 4).conn).unwrap();
    h.disconnected("r", "x", 9, true);
    let _b = join(&h, "r", "b", "guest", 2);
    let _c = join(&h, "r", "c", "guest", 3);
    let _d = join(&h, "r", "d", "guest", 4);
    h.remove_peer("r", Some(("a", 1)), "b", "rude").unwrap();
    h.remove_peer("r", None, "c", "by the back end").unwrap();
    h.disconnected("r", "d", 4, false);
    assert_eq!(
        events.names(),
        ["join b", "join c", "join d", "leave b removed by a rude", "leave c removed by api by the back end", "leave d limit"]
    );
}

#[test]
fn end_room_is_one_leave_per_peer_and_the_session_close_is_the_callers() {
    let (h, events) = recording(30_000);
    let (_a, _b, _c) = host_and_two_guests(&h);
    h.disconnected("r", "c", 3, true);
    events.take();
    let t = h.begin_end_room("r", Some(("a", 1)), true).unwrap();
    assert!(events.take().is_empty(), "nothing happened yet: the end is not stored");
    assert!(t.started_at > 0);
    h.finish_end_room("r", Some("a"), "done");
    let mut names = events.names();
    names.sort();
    // The held guest and the requester leave too.
    assert_eq!(names, ["leave a room ended by a done", "leave b room ended by a done", "leave c room ended by a done"]);
}

#[test]
fn a_room_that_empties_closes_before_the_next_session_opens() {
    let (h, events) = recording(0);
    let a = join(&h, "r", "a", "host", 1);
    h.leave("r", "a", 1).unwrap();
    let b = join(&h, "r", "b", "guest", 2);
    assert_eq!(events.names(), ["open r", "join a", "leave a left", "close r emptied", "open r", "join b"]);
    h.shutdown();
    assert_eq!(events.names(), ["close r servershutdown", "leave b ServerShutdown"]);
    drop((a, b));
}
