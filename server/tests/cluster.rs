//! Distributed mode against real parts: a real `redis-server` (AOF, fsync always) and
//! three real `hms-server` processes over real sockets. Every bullet of issue 12's proof:
//! end-room fan-out exactly once across nodes, 423 everywhere, REST through any node,
//! a node killed with SIGKILL and its peers back on another node, Redis killed after an
//! end-room answered and the lock still there, Redis down: a clear 503, nothing hangs,
//! and the cluster recovers by itself.

mod common;

use common::{Client, Ev, Redis, Server};
use serde_json::json;
use std::time::{Duration, Instant};

/// Short lease and window so failures resolve within a test's deadlines.
const CONFIG: &str = "[limits]\nreconnect_window_secs = 20\n[cluster]\nlease_ms = 1500\n";

fn three(redis: &Redis) -> (Server, Server, Server) {
    (Server::node(redis, "a", CONFIG, &[]), Server::node(redis, "b", CONFIG, &[]), Server::node(redis, "c", CONFIG, &[]))
}

/// Reads events until `pred` matches one, within `d`; returns it and what came before.
async fn until(c: &mut Client, d: Duration, pred: impl Fn(&Ev) -> bool) -> (Ev, Vec<Ev>) {
    let deadline = Instant::now() + d;
    let mut before = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let ev = c.next_within(left).await.unwrap_or_else(|| panic!("no matching event within {d:?}; got {before:?}"));
        if pred(&ev) {
            return (ev, before);
        }
        before.push(ev);
    }
}

fn is_push(ev: &Ev, method: &str) -> bool {
    matches!(ev, Ev::Frame(f) if f["method"] == method)
}

/// Every guest gets the end notice exactly once, with the reason and the requester
/// (none for the REST API), then a 1000 close and nothing else.
async fn assert_told_once(guests: &mut [Client], requested_by: Option<&str>, reason: &str) {
    let mut want = json!({"reason": reason, "room_end": true});
    if let Some(by) = requested_by {
        want["requested_by"] = json!(by);
    }
    for g in guests.iter_mut() {
        let (ev, before) = until(g, Duration::from_secs(5), |e| is_push(e, "on-peer-leave-request")).await;
        assert!(before.iter().all(|e| !is_push(e, "on-peer-leave-request")), "{before:?}");
        let Ev::Frame(f) = ev else { unreachable!() };
        assert_eq!(f["params"], want);
        g.expect_close(1000).await;
        assert!(matches!(g.next_raw(Duration::from_millis(300)).await, None | Some(Ev::Gone)), "nothing after the close");
    }
}

#[tokio::test]
async fn end_room_reaches_every_peer_on_every_node_exactly_once() {
    let redis = Redis::start();
    let (a, b, c) = three(&redis);
    let mut host = a.joined("r", "host", "host").await;
    let mut guests = vec![
        b.joined("r", "g1", "guest").await,
        b.joined("r", "g2", "guest").await,
        c.joined("r", "g3", "guest").await,
        c.joined("r", "g4", "guest").await,
        a.joined("r", "g5", "guest").await,
    ];
    // Joins are seen on every node: the host (on A) hears each guest once.
    let mut joined = Vec::new();
    for _ in 0..5 {
        joined.push(host.push("on-peer-join").await["peer_id"].as_str().unwrap().to_owned());
    }
    joined.sort();
    assert_eq!(joined, ["g1", "g2", "g3", "g4", "g5"]);
    // One peer list for the whole room, asked through a node that serves nobody in it.
    let (st, room) = c.http("GET", "/v2/active-rooms/r", Some(&Server::mgmt()), None).await;
    assert_eq!(st, 200, "{room}");
    assert_eq!(room["peers"].as_object().unwrap().len(), 6);
    // The permission check holds for a guest on another node than the owner.
    assert_eq!(guests[2].error_code("end-room", json!({"lock": true, "reason": "no"})).await, 403);

    let ans = host.request("end-room", json!({"lock": true, "reason": "meeting over"})).await;
    assert_eq!(ans["result"], json!({}), "{ans}");
    assert_told_once(&mut guests, Some("host"), "meeting over").await;
    host.expect_close(1000).await;

    // The lock holds on every node as soon as end-room answered.
    for node in [&a, &b, &c] {
        let mut late = node.connect("r", "late", "guest").await;
        assert_eq!(late.error_code("join", json!({"name": "late"})).await, 423);
    }
    // REST sees it through any node, and unlocking through another works everywhere.
    let (_, r) = b.http("GET", "/v2/rooms/r", Some(&Server::mgmt()), None).await;
    assert_eq!((r["enabled"].clone(), r["sessions"][0]["ended_by"].clone(), r["sessions"][0]["locked"].clone()), (json!(false), json!("host"), json!(true)), "{r}");
    let (st, _) = c.http("POST", "/v2/rooms/r", Some(&Server::mgmt()), Some(&json!({"enabled": true}))).await;
    assert_eq!(st, 200);
    a.joined("r", "again", "guest").await;
}

#[tokio::test]
async fn rest_end_room_and_removal_through_any_node_act_on_the_whole_room() {
    let redis = Redis::start();
    let (a, b, c) = three(&redis);
    let mut host = a.joined("r2", "host", "host").await;
    let mut g1 = c.joined("r2", "g1", "guest").await;
    let mut g2 = a.joined("r2", "g2", "guest").await;
    host.push("on-peer-join").await;
    host.push("on-peer-join").await;
    g1.push("on-peer-join").await;
    // A host on A removes a guest on C: one notice for it, one leave for the others.
    let ans = host.request("peer-leave-request", json!({"requested_for": "g1", "reason": "bye"})).await;
    assert_eq!(ans["result"], json!({}));
    assert_eq!(g1.push("on-peer-leave-request").await, json!({"requested_by": "host", "reason": "bye", "room_end": false}));
    g1.expect_close(1000).await;
    assert_eq!(g2.push("on-peer-leave").await["peer_id"], "g1");
    assert_eq!(host.push("on-peer-leave").await["peer_id"], "g1");
    // Room codes made through A, exchanged for a token through B, used on C.
    let (st, codes) = a.http("POST", "/v2/room-codes/room/r2", Some(&Server::mgmt()), None).await;
    assert_eq!(st, 200, "{codes}");
    let guest_code = codes["data"].as_array().unwrap().iter().find(|c| c["role"] == "guest").unwrap()["code"].as_str().unwrap().to_owned();
    let (st, tok) = b.http("POST", "/v2/token", None, Some(&json!({"code": guest_code, "user_id": "coded"}))).await;
    assert_eq!(st, 200, "{tok}");
    let mut g3 = Client::connect(&c.ws_url("g3", tok["token"].as_str().unwrap())).await;
    g3.join("g3").await;
    assert_eq!(host.push("on-peer-join").await["peer_id"], "g3");
    // REST end-room through B, which serves none of the room's peers.
    let (st, body) = b.http("POST", "/v2/active-rooms/r2/end-room", Some(&Server::mgmt()), Some(&json!({"reason": "closing", "lock": false}))).await;
    assert_eq!(st, 200, "{body}");
    assert_told_once(&mut [host, g2, g3], None, "closing").await;
    let (st, _) = c.http("GET", "/v2/active-rooms/r2", Some(&Server::mgmt()), None).await;
    assert_eq!(st, 404);
}

#[tokio::test]
async fn a_node_killed_mid_room_its_peers_come_back_on_another_node() {
    let redis = Redis::start();
    let (a, mut b, c) = three(&redis);
    // The first peer reaches B, so B owns the room; others are on A and C.
    let mut on_b = b.joined("r", "on-b", "guest").await;
    let mut host = a.joined("r", "host", "host").await;
    let mut on_c = c.joined("r", "on-c", "guest").await;
    let mut lost = b.joined("r", "lost", "guest").await;
    for _ in 0..3 {
        on_b.push("on-peer-join").await;
    }
    host.push("on-peer-join").await;
    host.push("on-peer-join").await;
    on_c.push("on-peer-join").await;
    b.kill9();
    assert!(matches!(on_b.next_raw(Duration::from_secs(5)).await, Some(Ev::Gone) | Some(Ev::Close(..))));
    drop(lost.next_raw(Duration::from_millis(10)).await);
    let killed = Instant::now();
    // The others are re-attached to the room's new owner silently: a fresh peer list
    // (the places of B's peers held), no leave for anyone.
    for peer in [&mut host, &mut on_c] {
        let (ev, before) = until(peer, Duration::from_secs(10), |e| is_push(e, "peer-list")).await;
        assert!(before.is_empty(), "nothing before the re-attach: {before:?}");
        let Ev::Frame(f) = ev else { unreachable!() };
        let mut ids: Vec<&String> = f["params"]["peers"].as_object().unwrap().keys().collect();
        ids.sort();
        assert_eq!(ids, ["host", "lost", "on-b", "on-c"], "held places are listed");
    }
    let moved = killed.elapsed();
    assert!(moved < Duration::from_secs(8), "re-attached after {moved:?}");
    // B's peer reconnects through C (as the SDK does with several endpoints) and keeps
    // its place: nobody hears a thing.
    let mut back = c.connect("r", "on-b", "guest").await;
    let list = back.join("on-b").await;
    assert_eq!(list["peers"].as_object().unwrap().len(), 4);
    host.silent(Duration::from_millis(500)).await;
    on_c.silent(Duration::from_millis(10)).await;
    // The peer of B that never comes back leaves after the window (20 s here); the
    // host's end-room reaches the ones that are back.
    let ans = host.request("end-room", json!({"lock": false, "reason": "done"})).await;
    assert_eq!(ans["result"], json!({}), "{ans}");
    assert_told_once(&mut [back, on_c], Some("host"), "done").await;
}

#[tokio::test]
async fn a_dead_nodes_peer_that_never_returns_leaves_after_the_window() {
    let redis = Redis::start();
    let cfg = "[limits]\nreconnect_window_secs = 3\n[cluster]\nlease_ms = 1500\n";
    let a = Server::node(&redis, "a", cfg, &[]);
    let mut b = Server::node(&redis, "b", cfg, &[]);
    let mut host = a.joined("r", "host", "host").await;
    let _gone = b.joined("r", "gone", "guest").await;
    host.push("on-peer-join").await;
    b.kill9();
    let killed = Instant::now();
    // A owns the room: it holds B's peer once B's heartbeat expires, then the window.
    let (ev, _) = until(&mut host, Duration::from_secs(10), |e| is_push(e, "on-peer-leave")).await;
    let Ev::Frame(f) = ev else { unreachable!() };
    assert_eq!(f["params"]["peer_id"], "gone");
    let after = killed.elapsed();
    assert!(after >= Duration::from_secs(3) && after < Duration::from_secs(8), "told after {after:?}");
}

#[tokio::test]
async fn the_lock_survives_redis_killed_right_after_end_room_answered() {
    let mut redis = Redis::start();
    let (a, b, _c) = three(&redis);
    let mut host = a.joined("r", "host", "host").await;
    let mut guest = b.joined("r", "guest", "guest").await;
    host.push("on-peer-join").await;
    let ans = host.request("end-room", json!({"lock": true, "reason": "locked"})).await;
    assert_eq!(ans["result"], json!({}));
    redis.kill9();
    assert_eq!(guest.push("on-peer-leave-request").await["reason"], "locked");
    redis.restart();
    // The nodes reconnect by themselves; the lock is there (503s until they have).
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut i = 0;
    loop {
        i += 1;
        match try_join(&b, "r", &format!("late{i}")).await {
            Err(423) => break,
            Err(503) => {}
            Ok(_) => panic!("a join to the locked room succeeded"),
            Err(code) => panic!("a join to the locked room: {code}"),
        }
        assert!(Instant::now() < deadline, "still no 423 after Redis came back");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Connects and joins as a guest: `Ok` with the client, or the error code of the join
/// or of the refusal at connect.
async fn try_join(s: &Server, room: &str, peer: &str) -> Result<Client, i64> {
    let mut c = s.connect(room, peer, "guest").await;
    c.send(json!({"jsonrpc": "2.0", "id": "j", "method": "join", "params": {"name": peer, "data": ""}})).await;
    loop {
        match c.next_within(Duration::from_secs(10)).await {
            Some(Ev::Frame(f)) if f["id"] == "j" => {
                return match f["error"]["code"].as_i64() {
                    Some(code) => Err(code),
                    None => {
                        c.push("on-policy-change").await;
                        c.push("peer-list").await;
                        Ok(c)
                    }
                };
            }
            Some(Ev::Frame(f)) if f["method"] == "on-error" => return Err(f["params"]["code"].as_i64().unwrap()),
            other => panic!("joining {peer}: {other:?}"),
        }
    }
}

/// The first frame of a connection that is refused at connect time.
async fn refused_code(s: &Server, room: &str, peer: &str) -> i64 {
    let mut c = s.connect(room, peer, "guest").await;
    let f = c.push("on-error").await;
    f["code"].as_i64().unwrap()
}

#[tokio::test]
async fn redis_down_joins_and_end_room_fail_with_503_nothing_hangs_and_the_cluster_recovers() {
    let mut redis = Redis::start();
    let (a, b, _c) = three(&redis);
    let mut host = a.joined("r", "host", "host").await;
    let mut guest = b.joined("r", "guest", "guest").await;
    host.push("on-peer-join").await;
    let mut waiting = b.connect("r", "waiting", "guest").await;
    // Answered only once the connection is placed in its room.
    assert!(waiting.request("ping", json!({"timestamp": 1})).await.get("result").is_some());
    redis.kill9();
    let t = Instant::now();
    assert_eq!(refused_code(&a, "other", "p").await, 503);
    assert_eq!(waiting.error_code("join", json!({"name": "w"})).await, 503);
    assert_eq!(host.error_code("end-room", json!({"lock": true, "reason": "x"})).await, 503);
    let (st, body) = b.http("POST", "/v2/active-rooms/r/end-room", Some(&Server::mgmt()), Some(&json!({"lock": true}))).await;
    assert_eq!(st, 503, "{body}");
    assert!(t.elapsed() < Duration::from_secs(15), "every failure came within its deadlines: {:?}", t.elapsed());
    redis.restart();
    // Recovery by itself: the connected peers stay in the room (re-attached), new
    // peers join, and end-room works again.
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut i = 0;
    let mut late = loop {
        i += 1;
        match try_join(&b, "r", &format!("late{i}")).await {
            Ok(c) => break c,
            Err(503) => {}
            Err(code) => panic!("join after recovery: {code}"),
        }
        assert!(Instant::now() < deadline, "no recovery");
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let (st, room) = a.http("GET", "/v2/active-rooms/r", Some(&Server::mgmt()), None).await;
    assert_eq!(st, 200, "{room}");
    let ids: Vec<&String> = room["peers"].as_object().unwrap().keys().collect();
    assert!(ids.contains(&&"host".to_string()) && ids.contains(&&"guest".to_string()), "the peers who stayed are still in: {room}");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let ans = host.request("end-room", json!({"lock": false, "reason": "after"})).await;
        if ans["result"] == json!({}) {
            break;
        }
        assert!(Instant::now() < deadline, "end-room never worked again: {ans}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    for g in [&mut guest, &mut late] {
        let (ev, _) = until(g, Duration::from_secs(5), |e| is_push(e, "on-peer-leave-request")).await;
        let Ev::Frame(f) = ev else { unreachable!() };
        assert_eq!(f["params"]["reason"], "after");
    }
}

#[test]
fn a_node_refuses_a_redis_without_fsync_a_missing_shared_secret_and_webhooks() {
    let redis = Redis::start_with("everysec");
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hms-server"))
        .args(["serve", "--addr", "127.0.0.1:0", "--redis", &redis.url(), "--data-dir"])
        .arg(dir.path())
        .env("HMS_SECRET", common::SECRET)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("appendfsync everysec") && err.contains("allow_non_durable_redis"), "{err}");
    // And without a shared secret it refuses too.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hms-server"))
        .args(["serve", "--addr", "127.0.0.1:0", "--redis", &redis.url(), "--data-dir"])
        .arg(dir.path())
        .env_remove("HMS_SECRET")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("HMS_SECRET"));
    // Webhooks are not delivered in distributed mode yet: refused, not silently dropped.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hms-server"))
        .args(["serve", "--addr", "127.0.0.1:0", "--redis", &redis.url(), "--webhook-url", "http://127.0.0.1:9/hooks", "--data-dir"])
        .arg(dir.path())
        .env("HMS_SECRET", common::SECRET)
        .env("HMS_WEBHOOK_SECRET", "a-webhook-secret-of-at-least-32-characters")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("webhooks are not delivered in distributed mode"), "{}", String::from_utf8_lossy(&out.stderr));
}

#[tokio::test]
async fn a_node_stopped_with_sigterm_hands_its_rooms_over_at_once() {
    let redis = Redis::start();
    let a = Server::node(&redis, "a", CONFIG, &[]);
    let mut b = Server::node(&redis, "b", CONFIG, &[]);
    // B owns the room (its peer came first); the guest is on A.
    let mut host = b.joined("r", "host", "host").await;
    let mut guest = a.joined("r", "guest", "guest").await;
    host.push("on-peer-join").await;
    let t = Instant::now();
    assert!(b.sigterm().success());
    host.expect_close(1001).await;
    // The guest moves to a new owner silently, well before a lease would have lapsed.
    let (_, before) = until(&mut guest, Duration::from_secs(5), |e| is_push(e, "peer-list")).await;
    assert!(before.is_empty(), "{before:?}");
    assert!(t.elapsed() < Duration::from_millis(1500), "handed over after {:?}", t.elapsed());
    // The host reconnects through A and takes its place back without noise.
    let mut back = a.connect("r", "host", "host").await;
    assert_eq!(back.join("host").await["peers"].as_object().unwrap().len(), 2);
    guest.silent(Duration::from_millis(500)).await;
}
