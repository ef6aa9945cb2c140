//! Faults against the real server binary: restarts, SIGKILL, SIGTERM, slow and silent
//! peers, dropped sockets and the reconnect window.

mod common;

use common::{Ev, Server};
use serde_json::json;
use std::time::{Duration, Instant};

async fn end_with_lock(s: &Server, room: &str) {
    let mut host = s.joined(room, "host", "host").await;
    let mut guest = s.joined(room, "guest", "guest").await;
    host.push("on-peer-join").await;
    let ans = host.request("end-room", json!({"lock": true, "reason": "locked for good"})).await;
    assert_eq!(ans["result"], json!({}));
    assert_eq!(guest.push("on-peer-leave-request").await["requested_by"], "host");
}

async fn assert_locked(s: &Server, room: &str) {
    let mut c = s.connect(room, "late", "host").await;
    assert_eq!(c.error_code("join", json!({"name": "late"})).await, 423);
}

#[tokio::test]
async fn lock_survives_a_restart() {
    let mut s = Server::start(&[]);
    end_with_lock(&s, "r").await;
    // Graceful stop this time; restart on the same data dir.
    assert!(s.sigterm().success());
    let s = s.restart();
    assert_locked(&s, "r").await;
    let (_, room) = s.http("GET", "/v2/rooms/r", Some(&Server::mgmt()), None).await;
    assert_eq!(room["enabled"], false);
    assert_eq!(room["sessions"][0]["reason"], "locked for good");
}

#[tokio::test]
async fn lock_survives_sigkill_right_after_the_answer() {
    let mut s = Server::start(&[]);
    end_with_lock(&s, "r").await;
    // No grace at all: the answer came, so the lock and the record must be on disk.
    s.kill9();
    let s = s.restart();
    assert_locked(&s, "r").await;
    let (_, room) = s.http("GET", "/v2/rooms/r", Some(&Server::mgmt()), None).await;
    let first = &room["sessions"][0];
    assert_eq!((first["ended_by"].clone(), first["locked"].clone()), (json!("host"), json!(true)), "{room}");
    // Unlocking also survives a SIGKILL.
    let (st, _) = s.http("POST", "/v2/rooms/r", Some(&Server::mgmt()), Some(&json!({"enabled": true}))).await;
    assert_eq!(st, 200);
    let s = s.restart();
    s.joined("r", "back", "guest").await;
}

#[tokio::test]
async fn sigterm_closes_peers_with_1001_and_exits_cleanly() {
    let mut s = Server::start(&[]);
    let mut a = s.joined("r", "a", "host").await;
    let mut b = s.joined("r", "b", "guest").await;
    a.push("on-peer-join").await;
    let status = s.sigterm();
    assert!(status.success(), "{status:?}");
    a.expect_close(1001).await;
    b.expect_close(1001).await;
    // The running session is recorded as ended by the shutdown.
    let s = s.restart();
    let (_, room) = s.http("GET", "/v2/rooms/r", Some(&Server::mgmt()), None).await;
    assert_eq!(room["sessions"][0]["reason"], "server shutdown");
}

#[tokio::test]
async fn a_peer_that_never_reads_cannot_stall_end_room() {
    // A long write timeout: a server that awaited each socket in turn would hang on the
    // slow peer for 30 s, far past the thresholds below, whatever the machine's load.
    // Big metadata (allowed by a flag) makes the events big.
    let s = Server::start(&["--send-queue", "8", "--write-timeout", "30", "--max-metadata-bytes", "60000"]);
    // The slow peer joins and then never reads its socket again.
    let slow = s.joined("r", "slow", "guest").await;
    // Lots of big events for it: each filler joins with 60 KB of data and leaves.
    let data = "d".repeat(60_000);
    for i in 0..150 {
        let mut f = s.connect("r", &format!("f{i}"), "guest").await;
        let a = f.request("join", json!({"name": "filler", "data": data})).await;
        assert!(a["result"]["reconnect_secret"].is_string(), "{a}");
        f.send(json!({"jsonrpc": "2.0", "method": "leave", "params": {}})).await;
        f.closed().await;
    }
    let mut host = s.joined("r", "host", "host").await;
    let mut reader = s.joined("r", "reader", "guest").await;
    host.push("on-peer-join").await;
    let t0 = Instant::now();
    host.send(json!({"jsonrpc": "2.0", "id": "end", "method": "end-room", "params": {"lock": false, "reason": "bye"}})).await;
    let n = reader.push("on-peer-leave-request").await;
    assert_eq!(n["reason"], "bye");
    assert!(t0.elapsed() < Duration::from_secs(3), "the reader's notice took {:?}", t0.elapsed());
    let ans = host.answer("end").await;
    assert_eq!(ans["result"], json!({}));
    assert!(t0.elapsed() < Duration::from_millis(4500), "the requester's answer took {:?}", t0.elapsed());
    host.expect_close(1000).await;
    reader.expect_close(1000).await;
    let log = s.log();
    assert!(log.contains("send queue full"), "the slow peer was cut off:\n{log}");
    drop(slow);
}

#[tokio::test]
async fn a_silent_peer_is_dropped_after_the_idle_timeout() {
    let s = Server::start(&["--idle-timeout", "1", "--reconnect-window", "0"]);
    let mut watcher = s.joined("r", "watcher", "host").await;
    let mut silent = s.joined("r", "silent", "guest").await;
    watcher.push("on-peer-join").await;
    // The watcher keeps pinging (as the SDK does) and stays; the silent one goes.
    let t0 = Instant::now();
    let mut seen_leave = false;
    while t0.elapsed() < Duration::from_secs(4) && !seen_leave {
        watcher.send(json!({"jsonrpc": "2.0", "id": "p", "method": "ping", "params": {"timestamp": 1}})).await;
        // Read for 250 ms per ping, as the SDK's 3 s interval, only faster.
        let tick = tokio::time::Instant::now() + Duration::from_millis(250);
        while let Some(ev) = watcher.next_raw(tick.saturating_duration_since(tokio::time::Instant::now())).await {
            if let Ev::Frame(f) = ev {
                if f["method"] == "on-peer-leave" {
                    assert_eq!(f["params"]["peer_id"], "silent");
                    seen_leave = true;
                }
            }
        }
    }
    assert!(seen_leave, "the silent peer was not dropped");
    assert!(t0.elapsed() >= Duration::from_millis(700), "dropped too early: {:?}", t0.elapsed());
    assert_eq!(silent.closed().await, 1001);
    // The pinging peer is still in.
    let a = watcher.request("ping", json!({"timestamp": 2})).await;
    assert_eq!(a["result"]["timestamp"], 2, "{a}");
}

#[tokio::test]
async fn a_dropped_peer_gets_its_place_back_within_the_window() {
    let s = Server::start(&["--reconnect-window", "30"]);
    let mut a = s.joined("r", "a", "host").await;
    let token_b = Server::token("r", "u-b", "guest");
    let mut b = common::Client::connect(&s.ws_url("b", &token_b)).await;
    b.join("b").await;
    let secret = b.secret.clone().unwrap();
    a.push("on-peer-join").await;
    // The socket dies without leave or close frame.
    drop(b);
    a.silent(Duration::from_millis(500)).await;
    let (_, active) = s.http("GET", "/v2/active-rooms/r", Some(&Server::mgmt()), None).await;
    assert!(active["peers"]["b"].is_object(), "held peers are still in the room");
    // Same peer id, same token, the place's secret: back in, with the full state and no
    // noise for others.
    let mut b = common::Client::connect(&s.reconnect_url("b", &token_b, &secret)).await;
    let list = b.join("b").await;
    let mut ids: Vec<&String> = list["peers"].as_object().unwrap().keys().collect();
    ids.sort();
    assert_eq!(ids, ["a", "b"]);
    a.silent(Duration::from_millis(300)).await;
    // Someone else cannot take a live place.
    let mut thief = common::Client::connect(&s.ws_url("b", &Server::token("r", "u-x", "guest"))).await;
    assert_eq!(thief.push("on-error").await["code"], 409);
    // A clean close (1000) without leave is a drop too: an SDK closes a socket it gave
    // up on before reconnecting. Held again, and reclaimed again without noise.
    b.ws.close(None).await.unwrap();
    a.silent(Duration::from_millis(300)).await;
    let mut b = common::Client::connect(&s.reconnect_url("b", &token_b, &secret)).await;
    assert_eq!(b.join("b").await["peers"].as_object().unwrap().len(), 2);
    a.silent(Duration::from_millis(200)).await;
    // The reconnected peer works normally.
    b.send(json!({"jsonrpc": "2.0", "method": "leave", "params": {}})).await;
    assert_eq!(a.push("on-peer-leave").await["peer_id"], "b");
}

#[tokio::test]
async fn the_others_hear_of_a_drop_when_the_window_runs_out() {
    let s = Server::start(&["--reconnect-window", "1"]);
    let mut a = s.joined("r", "a", "host").await;
    let b = s.joined("r", "b", "guest").await;
    a.push("on-peer-join").await;
    let t0 = Instant::now();
    drop(b);
    assert_eq!(a.push("on-peer-leave").await["peer_id"], "b");
    assert!(t0.elapsed() >= Duration::from_millis(800), "told too early: {:?}", t0.elapsed());
    // After the window the peer id is simply fresh again: a normal join, announced.
    let mut b = s.connect("r", "b", "guest").await;
    b.join("b").await;
    assert_eq!(a.push("on-peer-join").await["peer_id"], "b");
}

#[tokio::test]
async fn a_removal_missed_while_disconnected_is_delivered_on_reconnect() {
    let s = Server::start(&["--reconnect-window", "30"]);
    let mut host = s.joined("r", "h", "host").await;
    let b = s.joined("r", "b", "guest").await;
    let secret = b.secret.clone().unwrap();
    host.push("on-peer-join").await;
    drop(b);
    // Removing a held peer works, and the others are told at once.
    let ans = host.request("peer-leave-request", json!({"requested_for": "b", "reason": "kicked"})).await;
    assert_eq!(ans["result"], json!({}));
    assert_eq!(host.push("on-peer-leave").await["peer_id"], "b");
    // The removed peer comes back within the window: it gets what it missed, and no seat.
    let mut b = s.reconnect("r", "b", "guest", &secret).await;
    assert_eq!(b.push("on-peer-leave-request").await, json!({"requested_by": "h", "reason": "kicked", "room_end": false}));
    b.expect_close(1000).await;
    host.silent(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn a_room_end_missed_while_disconnected_is_delivered_on_reconnect() {
    let s = Server::start(&["--reconnect-window", "30"]);
    let mut host = s.joined("r", "h", "host").await;
    let g = s.joined("r", "g", "guest").await;
    let secret = g.secret.clone().unwrap();
    host.push("on-peer-join").await;
    drop(g);
    assert_eq!(host.request("end-room", json!({"lock": false, "reason": "all done"})).await["result"], json!({}));
    host.expect_close(1000).await;
    let mut g = s.reconnect("r", "g", "guest", &secret).await;
    assert_eq!(g.push("on-peer-leave-request").await, json!({"requested_by": "h", "reason": "all done", "room_end": true}));
    g.expect_close(1000).await;
    // A new peer id can start a fresh session (the room was not locked).
    s.joined("r", "fresh", "guest").await;
}

/// The requester of an end-room whose socket drops before its answer arrives learns the
/// outcome when it reconnects with the same peer id: the room ended, by itself.
#[tokio::test]
async fn an_end_room_requester_that_dropped_learns_the_outcome_on_reconnect() {
    let s = Server::start(&["--reconnect-window", "30"]);
    let mut host = s.joined("r", "h", "host").await;
    let mut guest = s.joined("r", "g", "guest").await;
    host.push("on-peer-join").await;
    // Send end-room and drop the socket at once, without reading the answer. The server
    // reads the frame before it sees the drop, so the end is stored.
    let secret = host.secret.clone().unwrap();
    host.send(json!({"jsonrpc": "2.0", "id": "e1", "method": "end-room", "params": {"lock": true, "reason": "over"}})).await;
    drop(host);
    assert_eq!(guest.push("on-peer-leave-request").await["requested_by"], "h");
    let mut back = s.reconnect("r", "h", "host", &secret).await;
    assert_eq!(back.push("on-peer-leave-request").await, json!({"requested_by": "h", "reason": "over", "room_end": true}));
    back.expect_close(1000).await;
}

/// The same after a crash: the end record in the store tells the restarted server.
#[tokio::test]
async fn an_end_room_requester_learns_the_outcome_after_a_server_crash() {
    let mut s = Server::start(&["--reconnect-window", "30"]);
    let mut host = s.joined("r", "h", "host").await;
    let _guest = s.joined("r", "g", "guest").await;
    host.push("on-peer-join").await;
    let secret = host.secret.clone().unwrap();
    assert_eq!(host.request("end-room", json!({"lock": false, "reason": "crash test"})).await["result"], json!({}));
    s.kill9();
    let s = s.restart();
    let mut back = s.reconnect("r", "h", "host", &secret).await;
    assert_eq!(back.push("on-peer-leave-request").await, json!({"requested_by": "h", "reason": "crash test", "room_end": true}));
    back.expect_close(1000).await;
}
