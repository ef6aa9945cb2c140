//! Issue 10: each attack tried against the server, as an attacker would, over real
//! sockets against the real binary. Each test failed against the code before its fix
//! (the commit that added it says how). docs/SECURITY.md lists them with the check that
//! stops each.

mod common;

use common::{run_cli, Client, Server, SECRET};
use serde_json::json;
use hms_server::auth::{TokenKeys, TokenType};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())).permissions().mode() & 0o777
}

// ---- attack 5: the secret ----

/// An empty `<data-dir>/secret` (a crash between create and write, with older servers)
/// used to make every process pick its own random secret without saving it. Empty and
/// short secrets are refused, from the file, the environment and the config alike.
#[test]
fn empty_or_short_secrets_are_refused_with_a_clear_message() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("secret"), "").unwrap();
    let d = dir.to_str().unwrap();
    for args in [vec!["token", "--management", "--data-dir", d], vec!["serve", "--addr", "127.0.0.1:0", "--data-dir", d]] {
        let (ok, out, err) = run_cli(&args, &[]);
        assert!(!ok, "{args:?} must fail with an empty secret file; stdout {out:?}");
        assert!(err.contains("secret") && err.contains("empty"), "{args:?}: {err}");
    }
    let short = "0123456789abcdef0123456789abcde"; // 31 bytes
    let (ok, _, err) = run_cli(&["token", "--management", "--data-dir", d], &[("HMS_SECRET", short)]);
    assert!(!ok && err.contains("HMS_SECRET") && err.contains("32"), "{err}");
    let cfg = tmp.path().join("hms.toml");
    std::fs::write(&cfg, format!("secret = \"{short}\"\n")).unwrap();
    let (ok, _, err) = run_cli(&["token", "--management", "--data-dir", d, "--config", cfg.to_str().unwrap()], &[]);
    assert!(!ok && err.contains("secret") && err.contains("32"), "{err}");
    std::fs::write(dir.join("secret"), short).unwrap();
    let (ok, _, err) = run_cli(&["token", "--management", "--data-dir", d], &[]);
    assert!(!ok && err.contains("32"), "{err}");
    // 32 bytes are fine.
    let (ok, _, err) = run_cli(&["token", "--management", "--data-dir", d], &[("HMS_SECRET", &SECRET[..32])]);
    assert!(ok, "{err}");
}

/// Processes racing to create the secret (a `serve` and a few `token` commands started
/// together on a fresh data dir) must all end up with the one secret that is saved.
#[test]
fn racing_processes_converge_on_one_secret() {
    for round in 0..8 {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("data");
        let d = dir.to_str().unwrap().to_owned();
        let runs: Vec<_> = (0..32)
            .map(|_| {
                let d = d.clone();
                std::thread::spawn(move || run_cli(&["token", "--management", "--data-dir", &d], &[]))
            })
            .collect();
        let tokens: Vec<String> = runs
            .into_iter()
            .map(|h| {
                let (ok, out, err) = h.join().unwrap();
                assert!(ok, "round {round}: {err}");
                out.trim().to_owned()
            })
            .collect();
        let saved = std::fs::read_to_string(dir.join("secret")).unwrap();
        let keys = TokenKeys::new(saved.trim().as_bytes(), "hms-local", 60);
        for t in &tokens {
            keys.verify(t, TokenType::Management).unwrap_or_else(|e| panic!("round {round}: a token signed with another secret: {e}"));
        }
        assert_eq!(mode(&dir.join("secret")), 0o600);
        let leftovers: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).filter(|n| n != "secret").collect();
        assert!(leftovers.is_empty(), "temp files left behind: {leftovers:?}");
    }
}

// ---- attack 7: local disclosure ----

/// The data dir holds the database (room codes, history) and maybe the secret: only the
/// server's user may read it. A dir made by an older server (0755) is tightened.
#[tokio::test]
async fn the_data_dir_and_its_files_are_private() {
    let tmp = tempfile::tempdir().unwrap();
    for (name, existing) in [("fresh", false), ("old", true)] {
        let dir = tmp.path().join(name).join("data");
        if existing {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let s = Server::start_in(&dir, &[]);
        // Make sure the WAL exists: a write.
        let (st, _) = s.http("POST", "/v2/rooms/r", Some(&Server::mgmt()), Some(&serde_json::json!({"enabled": false}))).await;
        assert_eq!(st, 200);
        assert_eq!(mode(&dir), 0o700, "{name}: data dir");
        for f in ["hms.sqlite3", "hms.sqlite3-wal", "hms.sqlite3-shm"] {
            assert_eq!(mode(&dir.join(f)), 0o600, "{name}: {f}");
        }
        // Without HMS_SECRET the generated secret file is private too.
        let (ok, _, err) = run_cli(&["token", "--management", "--data-dir", dir.to_str().unwrap()], &[]);
        assert!(ok, "{err}");
        assert_eq!(mode(&dir.join("secret")), 0o600);
    }
}

// ---- attack 8: log forging ----

/// Whatever a client sends that ends up in a log line is escaped: a newline in `?peer=`,
/// in a REST path or in a removal target never starts a line of its own.
#[tokio::test]
async fn input_cannot_forge_log_lines() {
    let s = Server::start(&[]);
    let forged = "2099-01-01T00:00:00.000000Z%20%20INFO%20hms_server::app:%20FORGED";
    // A bad token gets the attempt logged, with the peer id.
    let url = format!("ws://127.0.0.1:{}/ws?peer=p%0A{forged}1&token=bad", s.port);
    let mut c = Client::connect(&url).await;
    let e = c.push("on-error").await;
    assert!(e["code"] == 400 || e["code"] == 401, "{e}");
    let url = format!("ws://127.0.0.1:{}/ws?peer=p%0D%0A{forged}2&token={}", s.port, Server::token("r", "u", "host"));
    let mut c = Client::connect(&url).await;
    // Refused (400) today; a server that accepted it would log it on join.
    c.send(json!({"jsonrpc": "2.0", "id": "j", "method": "join", "params": {"name": "n"}})).await;
    let _ = c.next_raw(Duration::from_secs(2)).await;
    // REST paths are URL-decoded before they reach a handler.
    let (st, _) = s.http("POST", &format!("/v2/rooms/r%0A{forged}3"), Some(&Server::mgmt()), Some(&json!({"enabled": false}))).await;
    assert_eq!(st, 200);
    let (st, _) = s
        .http("POST", &format!("/v2/active-rooms/r%0A{forged}4/remove-peers"), Some(&Server::mgmt()), Some(&json!({"peer_id": "x\nFORGED5"})))
        .await;
    assert_eq!(st, 404);
    let mut host = s.joined("r", "h", "host").await;
    assert_eq!(host.error_code("peer-leave-request", json!({"requested_for": "x\nFORGED6", "reason": "y\nFORGED7"})).await, 404);
    host.request("ping", json!({"timestamp": 1})).await;
    let log = s.log();
    assert!(log.contains("FORGED"), "the attempts were logged (escaped): {log}");
    for line in log.lines() {
        assert!(!line.contains("FORGED") || !line.trim_start().starts_with("2099") && !line.starts_with("FORGED"), "a forged line: {line:?}");
    }
}

/// Peer ids are `[A-Za-z0-9_-]`, 1 to 64 bytes (UUIDs fit): anything else gets 400 at
/// connect.
#[tokio::test]
async fn peer_ids_are_validated() {
    let s = Server::start(&[]);
    let token = Server::token("r", "u", "host");
    for bad in ["", "a%20b", "a.b", "%C3%A9", "a%0Ab", &"x".repeat(65)] {
        let mut c = Client::connect(&s.ws_url(bad, &token)).await;
        let e = c.push("on-error").await;
        assert_eq!(e["code"], 400, "{bad:?}: {e}");
        assert!(e["message"].as_str().unwrap().contains("A-Za-z0-9"), "{e}");
        assert_eq!(c.closed().await, 1008);
    }
    for good in ["6f1c0b1e-6f5e-4c1a-9a59-0d3c0d0b6a11", "Peer_1", &"y".repeat(64)] {
        let mut c = Client::connect(&s.ws_url(good, &token)).await;
        c.join(good).await;
        c.send(json!({"jsonrpc": "2.0", "method": "leave"})).await;
        assert_eq!(c.closed().await, 1000);
    }
}

// ---- attack 1: session takeover and lock bypass ----

/// Room codes over REST: (host code, guest code).
async fn codes(s: &Server, room: &str) -> (String, String) {
    let (st, body) = s.http("POST", &format!("/v2/room-codes/room/{room}"), Some(&Server::mgmt()), None).await;
    assert_eq!(st, 200, "{body}");
    let of = |role: &str| {
        body["data"].as_array().unwrap().iter().find(|c| c["role"] == role).unwrap()["code"].as_str().unwrap().to_owned()
    };
    (of("host"), of("guest"))
}

/// A token for `user_id` from a room code, as anyone holding the code can get one.
async fn token_by_code(s: &Server, code: &str, user_id: &str) -> String {
    let (st, body) = s.http("POST", "/v2/token", None, Some(&json!({"code": code, "user_id": user_id}))).await;
    assert_eq!(st, 200, "{body}");
    body["token"].as_str().unwrap().to_owned()
}

/// The peer list shows every peer's id and user id, and anyone with the guest code gets a
/// token for any user id. That used to be enough to replace a guest (the victim got 409
/// and was gone) and to get into a room locked over REST. A place now belongs to the
/// connection that holds its reconnect secret.
#[tokio::test]
async fn a_guest_cannot_take_over_another_peer() {
    let s = Server::start(&["--reconnect-window", "30"]);
    let (_, guest_code) = codes(&s, "r").await;
    let mut host = s.joined("r", "host", "host").await;
    let victim_token = token_by_code(&s, &guest_code, "alice").await;
    let mut victim = Client::connect(&s.ws_url("victim", &victim_token)).await;
    let list = victim.join("Alice").await;
    let secret = victim.secret.clone().expect("the join answer carries a reconnect secret");
    assert!(secret.len() >= 32, "at least 128 bits: {secret}");
    assert_eq!(list["peers"]["victim"]["info"]["user_id"], "alice");
    host.push("on-peer-join").await;

    // The attacker reads victim's ids from its own peer list and mints a token for "alice".
    let attacker_token = token_by_code(&s, &guest_code, "alice").await;
    for url in [
        s.ws_url("victim", &attacker_token),
        s.reconnect_url("victim", &attacker_token, "0000000000000000000000000000000000000000000000000000000000000000"),
        s.reconnect_url("victim", &attacker_token, &secret[..secret.len() - 1]),
    ] {
        let mut a = Client::connect(&url).await;
        assert_eq!(a.push("on-error").await["code"], 409);
        assert_eq!(a.closed().await, 1008);
    }
    // Nobody noticed anything, and the victim is still the live connection.
    victim.silent(Duration::from_millis(300)).await;
    host.silent(Duration::from_millis(10)).await;
    assert_eq!(victim.request("ping", json!({"timestamp": 7})).await["result"]["timestamp"], 7);

    // Locked over REST: a fresh join gets 423, and a takeover is still refused.
    let (st, _) = s.http("POST", "/v2/rooms/r", Some(&Server::mgmt()), Some(&json!({"enabled": false}))).await;
    assert_eq!(st, 200);
    let mut fresh = Client::connect(&s.ws_url("intruder", &attacker_token)).await;
    assert_eq!(fresh.error_code("join", json!({"name": "x"})).await, 423);
    let mut a = Client::connect(&s.ws_url("victim", &attacker_token)).await;
    assert_eq!(a.push("on-error").await["code"], 409);

    // The victim's own connection drops: its place is held; the attacker cannot reclaim
    // it; the victim can, with its secret (it never left the room, so the lock lets it back).
    drop(victim);
    host.silent(Duration::from_millis(300)).await;
    let mut a = Client::connect(&s.ws_url("victim", &attacker_token)).await;
    assert_eq!(a.push("on-error").await["code"], 409);
    let mut back = Client::connect(&s.reconnect_url("victim", &victim_token, &secret)).await;
    let list = back.join("Alice").await;
    assert_eq!(back.secret.as_deref(), Some(secret.as_str()), "the secret stays the same for the place");
    assert_eq!(list["peers"].as_object().unwrap().len(), 2);
    host.silent(Duration::from_millis(300)).await;
    // A live place is taken over only with the secret too (a half-open old socket).
    let mut newer = Client::connect(&s.reconnect_url("victim", &victim_token, &secret)).await;
    assert_eq!(back.push("on-error").await["code"], 409);
    newer.join("Alice").await;
    host.silent(Duration::from_millis(200)).await;
    assert!(!s.log().contains(&secret), "the secret never reaches the log");
}

/// The lock holds on every way in: a token minted before the lock, a connection that
/// was waiting to join, a reconnect after the window, a room code. Only a peer that never
/// left (its place held, its secret presented) comes back.
#[tokio::test]
async fn the_lock_holds_on_every_way_in() {
    let s = Server::start(&["--reconnect-window", "1"]);
    let (_, guest_code) = codes(&s, "r").await;
    let minted_before = Server::token("r", "u-early", "guest");
    let mut host = s.joined("r", "h", "host").await;
    let g = s.joined("r", "g", "guest").await;
    let g_secret = g.secret.clone().unwrap();
    host.push("on-peer-join").await;
    let mut waiting = s.connect("r", "w", "guest").await;
    assert!(waiting.request("ping", json!({"timestamp": 1})).await["result"].is_object());
    drop(g);
    let (st, _) = s.http("POST", "/v2/rooms/r", Some(&Server::mgmt()), Some(&json!({"enabled": false}))).await;
    assert_eq!(st, 200);
    assert_eq!(waiting.error_code("join", json!({"name": "w"})).await, 423, "connected before the lock");
    let mut early = Client::connect(&s.ws_url("early", &minted_before)).await;
    assert_eq!(early.error_code("join", json!({"name": "e"})).await, 423, "a token minted before the lock");
    let (st, _) = s.http("POST", "/v2/token", None, Some(&json!({"code": guest_code}))).await;
    assert_eq!(st, 423, "a room code");
    // After the window the dropped guest's place is gone: its reconnect is a fresh join.
    assert_eq!(host.push("on-peer-leave").await["peer_id"], "g");
    let mut late = s.reconnect("r", "g", "guest", &g_secret).await;
    assert_eq!(late.error_code("join", json!({"name": "g"})).await, 423, "a reconnect after the window");
}

/// A removed peer's id stays its own while its tombstone lives: another user connecting
/// with it is refused (409) and the tombstone stays, so the removed peer still learns
/// that it was removed when it comes back.
#[tokio::test]
async fn a_removed_peers_id_is_not_taken_by_another_user() {
    let s = Server::start(&["--reconnect-window", "30"]);
    let mut host = s.joined("r", "h", "host").await;
    let g_token = Server::token("r", "u-g", "guest");
    let mut g = Client::connect(&s.ws_url("g", &g_token)).await;
    g.join("g").await;
    let secret = g.secret.clone().unwrap();
    host.push("on-peer-join").await;
    drop(g);
    assert_eq!(host.request("peer-leave-request", json!({"requested_for": "g", "reason": "bye"})).await["result"], json!({}));
    host.push("on-peer-leave").await;
    let mut other = Client::connect(&s.ws_url("g", &Server::token("r", "u-mallory", "guest"))).await;
    assert_eq!(other.push("on-error").await["code"], 409);
    // Not even the same user without the secret.
    let mut same = Client::connect(&s.ws_url("g", &g_token)).await;
    assert_eq!(same.push("on-error").await["code"], 409);
    let mut back = Client::connect(&s.reconnect_url("g", &g_token, &secret)).await;
    assert_eq!(back.push("on-peer-leave-request").await, json!({"requested_by": "h", "reason": "bye", "room_end": false}));
    assert_eq!(back.closed().await, 1000);
    host.silent(Duration::from_millis(200)).await;
}

// ---- attack 9: a REST enable racing a locking end-room ----

/// Whether a fresh join to `room` is refused with 423.
async fn refuses_joins(s: &Server, room: &str, probe: &str) -> bool {
    let mut c = s.connect(room, probe, "guest").await;
    let a = c.request("join", json!({"name": "probe"})).await;
    if a["error"]["code"] == 423 {
        return true;
    }
    assert!(a["result"].is_object(), "{a}");
    c.send(json!({"jsonrpc": "2.0", "method": "leave"})).await;
    c.closed().await;
    false
}

/// A host's `end-room {lock: true}` and a back end's `POST /v2/rooms/<id> {enabled: true}`
/// at the same moment, in many rooms: whichever wins, the lock the server acts on (its
/// memory) is the lock it would load after a restart (the database).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rest_enable_racing_a_locking_end_room_leaves_memory_and_disk_agreeing() {
    let mut s = Server::start(&[]);
    const ROOMS: usize = 40;
    for round in 0..4 {
        let mut hosts = Vec::new();
        for i in 0..ROOMS {
            hosts.push(s.joined(&format!("race{round}-{i}"), "h", "host").await);
        }
        let mgmt = Server::mgmt();
        let port = s.port;
        let races = hosts.into_iter().enumerate().map(|(i, mut host)| {
            let mgmt = mgmt.clone();
            async move {
                let room = format!("race{round}-{i}");
                let rest = async {
                    let server = common::Server::at(port);
                    server.http("POST", &format!("/v2/rooms/{room}"), Some(&mgmt), Some(&json!({"enabled": true}))).await
                };
                let end = async {
                    // Spread the frame over the REST call's few milliseconds.
                    tokio::time::sleep(Duration::from_micros(250 * (i % 12) as u64)).await;
                    host.request("end-room", json!({"lock": true, "reason": "race"})).await
                };
                let ((st, _), ans) = tokio::join!(rest, end);
                assert_eq!(st, 200);
                assert!(ans["result"].is_object(), "{ans}");
            }
        });
        futures_util::future::join_all(races).await;
        let mut memory = Vec::new();
        for i in 0..ROOMS {
            memory.push(refuses_joins(&s, &format!("race{round}-{i}"), "m").await);
        }
        s.kill9();
        s = s.restart();
        let mut disk = Vec::new();
        for i in 0..ROOMS {
            disk.push(refuses_joins(&s, &format!("race{round}-{i}"), "d").await);
        }
        let differ: Vec<usize> = (0..ROOMS).filter(|&i| memory[i] != disk[i]).collect();
        assert!(differ.is_empty(), "round {round}: rooms {differ:?} were locked in memory {:?} but on disk {:?}", memory, disk);
    }
}

// ---- attack 2: quadratic amplification ----

/// Median round trip of a ping on `c`, in ms (for the measured note, never asserted).
async fn ping_ms(c: &mut Client) -> f64 {
    let mut t = Vec::new();
    for i in 0..5 {
        let t0 = std::time::Instant::now();
        assert_eq!(c.request("ping", json!({"timestamp": i})).await["result"]["timestamp"], i);
        t.push(t0.elapsed().as_secs_f64() * 1000.0);
    }
    t.sort_by(f64::total_cmp);
    t[2]
}

/// What the next frame of a client that never reads anything else is: its first frame.
async fn first_frame(c: &mut Client) -> serde_json::Value {
    match c.next_raw(Duration::from_secs(5)).await {
        Some(common::Ev::Frame(f)) => f,
        other => panic!("expected a frame, got {other:?}"),
    }
}

/// One guest token, 150 sockets with distinct peer ids, each joining with ~63 KB of name
/// and metadata, never reading: each join used to serialize the whole peer list under the
/// hub lock (150 sockets took the server from 6 MB to 428 MB RSS and a ping in another
/// room from 6 to 196 ms). The limits stop it: connections per user per room, and the
/// name and metadata sizes. RSS and the other room's ping are printed, not asserted.
#[tokio::test]
async fn one_token_cannot_amplify_joins() {
    let s = Server::start(&[]);
    let mut bystander = s.joined("elsewhere", "b", "host").await;
    let (rss0, ping0) = (s.rss_kib(), ping_ms(&mut bystander).await);
    let token = Server::token("r", "mallory", "guest");
    let (name, data) = ("n".repeat(30_000), "d".repeat(33_000));
    let mut kept = Vec::new();
    let (mut placed, mut refused_conn, mut refused_join) = (0, 0, 0);
    for i in 0..150 {
        let mut c = Client::connect(&s.ws_url(&format!("m{i}"), &token)).await;
        c.send(json!({"jsonrpc": "2.0", "id": "j", "method": "join", "params": {"name": name, "data": data}})).await;
        let f = first_frame(&mut c).await;
        if f["method"] == "on-error" {
            assert_eq!(f["params"]["code"], 429, "{f}");
            refused_conn += 1;
            continue;
        }
        placed += 1;
        assert_eq!(f["error"]["code"], 400, "{f}");
        assert!(f["error"]["message"].as_str().unwrap().contains("limit"), "{f}");
        refused_join += 1;
        kept.push(c);
    }
    assert_eq!((placed, refused_join, refused_conn), (8, 8, 142), "8 connections per user per room by default");
    // Within the limits: the 8 kept sockets join with the largest name and metadata
    // allowed, and never read again.
    let (name, data) = ("n".repeat(256), "d".repeat(4096));
    for c in kept.iter_mut() {
        let a = c.request("join", json!({"name": name, "data": data})).await;
        assert!(a["result"].is_object(), "{a}");
    }
    let (rss1, ping1) = (s.rss_kib(), ping_ms(&mut bystander).await);
    println!("measured: server RSS {rss0} KiB -> {rss1} KiB; ping in another room {ping0:.2} ms -> {ping1:.2} ms (median of 5)");
    bystander.silent(Duration::from_millis(100)).await;
}

/// The other limits of a join: peers per room and joins per user per minute.
#[tokio::test]
async fn rooms_are_bounded_and_joins_are_rate_limited() {
    let s = Server::start(&["--max-peers-per-room", "3", "--joins-per-user-per-min", "3"]);
    let _a = s.joined("r", "a", "host").await;
    let mut b = s.connect("r", "b", "guest").await;
    let mut c = s.connect("r", "c", "guest").await;
    // Placed (a place is made after the upgrade): a ping is answered only then.
    for p in [&mut b, &mut c] {
        assert!(p.request("ping", json!({"timestamp": 1})).await["result"].is_object());
    }
    let mut d = s.connect("r", "d", "guest").await;
    let e = d.push("on-error").await;
    assert_eq!(e["code"], 429, "{e}");
    assert!(e["message"].as_str().unwrap().contains("full"), "{e}");
    // Joins per user: the 4th join of one user in one room within a minute is refused.
    let token = Server::token("q", "looper", "guest");
    for i in 0..3 {
        let mut c = Client::connect(&s.ws_url(&format!("l{i}"), &token)).await;
        c.join("l").await;
        c.send(json!({"jsonrpc": "2.0", "method": "leave"})).await;
        assert_eq!(c.closed().await, 1000);
    }
    let mut c = Client::connect(&s.ws_url("l3", &token)).await;
    let a = c.request("join", json!({"name": "l"})).await;
    assert_eq!(a["error"]["code"], 429, "{a}");
    assert!(a["error"]["message"].as_str().unwrap().contains("retry in"), "{a}");
    // Another user is not affected.
    s.joined("q", "other", "guest").await;
}

/// Reasons are bounded too, wherever they come from.
#[tokio::test]
async fn reasons_are_bounded() {
    let s = Server::start(&[]);
    let mut host = s.joined("r", "h", "host").await;
    let mut g = s.joined("r", "g", "guest").await;
    host.push("on-peer-join").await;
    let long = "r".repeat(1025);
    assert_eq!(host.error_code("end-room", json!({"lock": true, "reason": long})).await, 400);
    assert_eq!(host.error_code("peer-leave-request", json!({"requested_for": "g", "reason": long})).await, 400);
    let m = Server::mgmt();
    let (st, e) = s.http("POST", "/v2/active-rooms/r/end-room", Some(&m), Some(&json!({"reason": long}))).await;
    assert_eq!((st, e["code"].clone()), (400, json!(400)), "{e}");
    let (st, _) = s.http("POST", "/v2/active-rooms/r/remove-peers", Some(&m), Some(&json!({"peer_id": "g", "reason": long}))).await;
    assert_eq!(st, 400);
    // Nothing happened; 1 KiB is fine.
    g.silent(Duration::from_millis(200)).await;
    let ok = "r".repeat(1024);
    assert!(host.request("end-room", json!({"lock": false, "reason": ok})).await["result"].is_object());
    assert_eq!(g.push("on-peer-leave-request").await["reason"], ok);
}

/// A peer that never reads is cut off when its queue holds more bytes than allowed, even
/// while it holds fewer frames than the frame limit (here at most 200 of 1024); the room
/// goes on.
#[tokio::test]
async fn send_queues_are_bounded_in_bytes() {
    let s = Server::start(&["--send-queue-bytes", "65536", "--write-timeout", "30", "--max-metadata-bytes", "60000"]);
    let mut watcher = s.joined("r", "w", "host").await;
    // The slow peer's socket takes little (a small receive window), then nothing more.
    let url = s.ws_url("slow", &Server::token("r", "u-slow", "guest"));
    let mut slow = Client::dial(&url, common::Dial { rcvbuf: Some(4096), ..Default::default() }).await;
    slow.join("slow").await;
    watcher.push("on-peer-join").await;
    // Each joiner brings 60 KB of metadata: its on-peer-join fills what the kernel holds
    // for the slow peer (a few MB on loopback) within a few dozen joins, then the queue's
    // 64 KiB. The watcher reads everything; the joiners go (held, nobody is told).
    let data = "d".repeat(60_000);
    for i in 0..200 {
        let mut c = s.connect("r", &format!("j{i}"), "guest").await;
        assert!(c.request("join", json!({"name": "j", "data": data})).await["result"].is_object());
        drop(c);
        assert_eq!(watcher.push("on-peer-join").await["peer_id"], format!("j{i}"));
        if s.log().contains("send queue full") {
            break;
        }
    }
    assert!(s.log().contains("send queue full"), "the slow peer was cut off by bytes");
    assert_eq!(watcher.request("ping", json!({"timestamp": 1})).await["result"]["timestamp"], 1);
    drop(slow);
}

// ---- attack 4: unbounded session rows ----

/// A guest looping join/leave in an empty room starts a session each time. Joins per
/// user bound the rate (tested above); the rows a room keeps are capped (oldest ended
/// ones pruned); `GET /v2/rooms/<id>` pages through them.
#[tokio::test]
async fn session_rows_are_capped_and_listed_in_pages() {
    let s = Server::start(&["--sessions-kept-per-room", "20", "--joins-per-user-per-min", "0"]);
    let token = Server::token("loop", "looper", "guest");
    for i in 0..60 {
        let mut c = Client::connect(&s.ws_url(&format!("p{i}"), &token)).await;
        c.join("p").await;
        c.send(json!({"jsonrpc": "2.0", "method": "leave"})).await;
        assert_eq!(c.closed().await, 1000);
    }
    let m = Server::mgmt();
    // Pages of 7 cover every kept session once, oldest first.
    let mut seen = Vec::new();
    let mut start: Option<String> = None;
    for _ in 0..10 {
        let path = match &start {
            Some(c) => format!("/v2/rooms/loop?limit=7&start={c}"),
            None => "/v2/rooms/loop?limit=7".to_owned(),
        };
        let (st, page) = s.http("GET", &path, Some(&m), None).await;
        assert_eq!(st, 200, "{page}");
        let sessions = page["sessions"].as_array().unwrap();
        assert!(sessions.len() <= 7);
        seen.extend(sessions.iter().map(|x| (x["started_at"].as_u64().unwrap(), x["session_id"].as_str().unwrap().to_owned())));
        match page["last"].as_str() {
            Some(c) => start = Some(c.to_owned()),
            None => break,
        }
    }
    let mut ids: Vec<&String> = seen.iter().map(|(_, id)| id).collect();
    assert!(seen.windows(2).all(|w| w[0].0 <= w[1].0), "oldest first");
    ids.dedup();
    assert_eq!(ids.len(), seen.len(), "no session twice");
    assert!((20..=21).contains(&seen.len()), "at most 20 kept (plus one still being written): {}", seen.len());
    // Bad paging parameters are refused clearly.
    for bad in ["limit=0", "limit=5000", "limit=x", "start=nope"] {
        let (st, e) = s.http("GET", &format!("/v2/rooms/loop?{bad}"), Some(&m), None).await;
        assert_eq!((st, e["code"].clone()), (400, json!(400)), "{bad}: {e}");
    }
}

// ---- attack 3: slowloris ----

/// Reads until the server closes the connection; returns what came, or `None` if it did
/// not close within `d`.
async fn read_until_closed(s: &mut tokio::net::TcpStream, d: Duration) -> Option<String> {
    use tokio::io::AsyncReadExt;
    let mut buf = Vec::new();
    match tokio::time::timeout(d, s.read_to_end(&mut buf)).await {
        Ok(_) => Some(String::from_utf8_lossy(&buf).into_owned()),
        Err(_) => None,
    }
}

/// A keep-alive request whose connection stays open afterwards; returns the answer's
/// status line.
async fn request_keep_alive(s: &mut tokio::net::TcpStream) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let mut buf = vec![0u8; 1024];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await.expect("an answer").unwrap();
    String::from_utf8_lossy(&buf[..n]).lines().next().unwrap_or("").to_owned()
}

/// Half-sent requests used to stay open indefinitely (no header-read timeout) and the
/// per-address limit counted only WebSockets: 200 of them held with --max-conns-per-ip 2.
/// Now every TCP connection counts at accept, and headers must arrive within the timeout.
#[tokio::test]
async fn slow_and_idle_connections_are_closed_and_every_connection_counts() {
    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpStream;
    let s = Server::start(&["--max-conns-per-ip", "2", "--header-read-timeout", "2"]);
    let addr = ("127.0.0.1", s.port);
    let mut slow = Vec::new();
    for i in 0..20 {
        let mut c = TcpStream::connect(addr).await.unwrap();
        if i % 2 == 0 {
            c.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ").await.unwrap();
        }
        slow.push(c);
    }
    let t0 = std::time::Instant::now();
    for (i, c) in slow.iter_mut().enumerate() {
        let got = read_until_closed(c, Duration::from_secs(6)).await;
        assert!(got.is_some(), "connection {i} was still open after {:?}", t0.elapsed());
    }
    // All given back: a request works again.
    let (st, _, _) = s.http_raw("GET", "/healthz", None, None, &[]).await;
    assert_eq!(st, 200);
    // Plain HTTP connections count against the per-address limit too. (The connection
    // above is given back once the server has seen it close: wait for two to fit.)
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let (mut a, mut b) = loop {
        let mut a = TcpStream::connect(addr).await.unwrap();
        let mut b = TcpStream::connect(addr).await.unwrap();
        if request_keep_alive(&mut a).await.contains("200") && request_keep_alive(&mut b).await.contains("200") {
            break (a, b);
        }
        assert!(std::time::Instant::now() < deadline, "two connections never fit");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(request_keep_alive(&mut a).await.contains("200") && request_keep_alive(&mut b).await.contains("200"));
    let mut c = TcpStream::connect(addr).await.unwrap();
    assert!(request_keep_alive(&mut c).await.contains("429"), "a third connection from one address");
    drop((a, b, c));
}

/// A global cap on connections open at once: beyond it, new connections are closed at once.
#[tokio::test]
async fn connections_are_capped_globally() {
    use tokio::net::TcpStream;
    let s = Server::start(&["--max-connections", "3", "--max-conns-per-ip", "0"]);
    let addr = ("127.0.0.1", s.port);
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut c = TcpStream::connect(addr).await.unwrap();
        assert!(request_keep_alive(&mut c).await.contains("200"));
        held.push(c);
    }
    let mut over = TcpStream::connect(addr).await.unwrap();
    assert_eq!(read_until_closed(&mut over, Duration::from_secs(5)).await.as_deref(), Some(""), "closed without an answer");
    held.pop();
    // The slot is given back once the server sees the close.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let mut c = TcpStream::connect(addr).await.unwrap();
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let _ = c.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await;
        let mut buf = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), c.read_to_end(&mut buf)).await;
        if String::from_utf8_lossy(&buf).contains("200") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no slot was given back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---- attack 6: room codes guessable online ----

/// An HTTP request from another loopback address (127.0.0.2), for per-address limits.
async fn http_from(src: &str, port: u16, req: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.bind(format!("{src}:0").parse().unwrap()).unwrap();
    let mut s = tokio::time::timeout(Duration::from_secs(5), sock.connect(format!("127.0.0.1:{port}").parse().unwrap())).await.unwrap().unwrap();
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf)).await.unwrap().unwrap();
    String::from_utf8_lossy(&buf).into_owned()
}

fn token_request(code: &str) -> String {
    let body = json!({"code": code}).to_string();
    format!("POST /v2/token HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}", body.len())
}

/// `/v2/token` had no throttle (1,000 wrong codes in 0.9 s) and codes had ~47 bits. Now:
/// at least 64 bits, a per-address throttle with 429 and Retry-After, and other
/// addresses unaffected.
#[tokio::test]
async fn room_codes_cannot_be_guessed_online() {
    // A burst of 20, then 1 a minute: no token comes back while the test runs, however
    // slow the machine.
    let s = Server::start(&["--token-requests-per-min", "1", "--token-burst", "20"]);
    let (host, guest) = codes(&s, "r").await;
    for c in [&host, &guest] {
        let letters = c.chars().filter(char::is_ascii_lowercase).count();
        assert!(c.chars().all(|ch| ch.is_ascii_lowercase() || ch == '-'), "{c}");
        assert!(letters as f64 * 26f64.log2() >= 64.0, "{c}: {letters} letters are under 64 bits");
    }
    let (mut not_found, mut limited, mut retry_after) = (0, 0, None);
    for i in 0..100 {
        let (st, head, _) = s.http_raw("POST", "/v2/token", None, Some(json!({"code": format!("aaaa-aaaa-aaaa-{i:04}")}).to_string()), &[]).await;
        match st {
            404 => not_found += 1,
            429 => {
                limited += 1;
                retry_after = head.lines().find_map(|l| l.to_ascii_lowercase().strip_prefix("retry-after:").map(|v| v.trim().to_owned()));
            }
            other => panic!("status {other}: {head}"),
        }
    }
    assert_eq!(not_found, 20, "the burst");
    assert_eq!(limited, 80);
    let wait: u64 = retry_after.expect("a Retry-After header").parse().unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    // The right code from the same address waits too; another address is not affected.
    let (st, _, _) = s.http_raw("POST", "/v2/token", None, Some(json!({"code": guest}).to_string()), &[]).await;
    assert_eq!(st, 429);
    assert!(http_from("127.0.0.2", s.port, &token_request(&guest)).await.starts_with("HTTP/1.1 200"));
}

/// Codes can be reissued (the old ones stop working at once) and disabled over REST; a
/// locked room refuses the exchange (423); the database keeps only a hash of each code;
/// the user id a code holder asks for is checked.
#[tokio::test]
async fn room_codes_rotate_disable_and_respect_the_lock() {
    let s = Server::start(&[]);
    let m = Server::mgmt();
    let (host1, guest1) = codes(&s, "r").await;
    let (host2, guest2) = codes(&s, "r").await;
    assert!(host1 != host2 && guest1 != guest2, "asking again issues new codes");
    let exchange = |code: String, user: Option<&'static str>| {
        let port = s.port;
        async move {
            let body = match user {
                Some(u) => json!({"code": code, "user_id": u}),
                None => json!({"code": code}),
            };
            common::Server::at(port).http("POST", "/v2/token", None, Some(&body)).await
        }
    };
    assert_eq!(exchange(guest1.clone(), None).await.0, 404, "replaced codes stop working");
    assert_eq!(exchange(host1.clone(), None).await.0, 404);
    assert_eq!(exchange(guest2.clone(), Some("bob")).await.0, 200);
    // Listing shows the codes' state, never their text.
    let (st, list) = s.http("GET", "/v2/room-codes/room/r", Some(&m), None).await;
    assert_eq!(st, 200, "{list}");
    assert_eq!(list["data"].as_array().unwrap().len(), 2);
    assert!(!list.to_string().contains(&guest2), "{list}");
    // Disable and enable one code by its text (100ms's update call).
    let (st, _) = s.http("POST", &format!("/v2/room-codes/code/{guest2}"), Some(&m), Some(&json!({"enabled": false}))).await;
    assert_eq!(st, 200);
    assert_eq!(exchange(guest2.clone(), None).await.0, 404);
    let (st, _) = s.http("POST", &format!("/v2/room-codes/code/{guest2}"), Some(&m), Some(&json!({"enabled": true}))).await;
    assert_eq!(st, 200);
    assert_eq!(exchange(guest2.clone(), None).await.0, 200);
    let (st, _) = s.http("POST", "/v2/room-codes/code/nope-nope-nope-nope", Some(&m), Some(&json!({"enabled": false}))).await;
    assert_eq!(st, 404);
    // Reissue one role only.
    let (st, one) = s.http("POST", "/v2/room-codes/room/r", Some(&m), Some(&json!({"role": "host"}))).await;
    assert_eq!((st, one["data"].as_array().unwrap().len()), (200, 1), "{one}");
    assert_eq!(exchange(host2.clone(), None).await.0, 404);
    assert_eq!(exchange(guest2.clone(), None).await.0, 200, "the guest code stays");
    // A locked room refuses the exchange.
    let (st, _) = s.http("POST", "/v2/rooms/r", Some(&m), Some(&json!({"enabled": false}))).await;
    assert_eq!(st, 200);
    let (st, e) = exchange(guest2.clone(), None).await;
    assert_eq!((st, e["code"].clone()), (423, json!(423)), "{e}");
    // User ids from a code: what a log line or a URL can carry, 1 to 64 bytes.
    let (st, _) = s.http("POST", "/v2/rooms/r", Some(&m), Some(&json!({"enabled": true}))).await;
    assert_eq!(st, 200);
    for bad in ["", "a\nb", "a b", "x".repeat(65).leak()] {
        let (st, e) = s.http("POST", "/v2/token", None, Some(&json!({"code": guest2, "user_id": bad}))).await;
        assert_eq!(st, 400, "{bad:?}: {e}");
    }
    assert_eq!(exchange(guest2.clone(), Some("alice.smith@example.com")).await.0, 200);
    // Only hashes on disk.
    let (st, _) = s.http("POST", "/v2/rooms/x", Some(&m), Some(&json!({"enabled": true}))).await;
    assert_eq!(st, 200);
    for f in ["hms.sqlite3", "hms.sqlite3-wal"] {
        let bytes = std::fs::read(s.dir.join(f)).unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes);
        for c in [&host1, &guest1, &host2, &guest2] {
            assert!(!text.contains(c.as_str()), "{f} holds the code {c}");
        }
    }
}

// ---- attack 9: the management surface ----

/// CORS is answered only on `/v2/token` (the one call a web page makes), and only for the
/// allowed origins when they are set; management routes get none.
#[tokio::test]
async fn cors_only_where_a_browser_needs_it() {
    let preflight = [("Origin", "http://evil.test"), ("Access-Control-Request-Method", "POST"), ("Access-Control-Request-Headers", "authorization, content-type")];
    let s = Server::start(&[]);
    for path in ["/v2/active-rooms/r/end-room", "/v2/rooms/r", "/v2/room-codes/room/r", "/v2/active-rooms/r/remove-peers"] {
        let (_, head, _) = s.http_raw("OPTIONS", path, None, None, &preflight).await;
        assert!(!head.to_ascii_lowercase().contains("access-control-allow-origin"), "{path}: {head}");
        let (_, head, _) = s.http_raw("POST", path, Some(&Server::mgmt()), Some("{}".into()), &[("Origin", "http://evil.test")]).await;
        assert!(!head.to_ascii_lowercase().contains("access-control-allow-origin"), "{path}: {head}");
    }
    let (_, head, _) = s.http_raw("OPTIONS", "/v2/token", None, None, &preflight).await;
    assert!(head.to_ascii_lowercase().contains("access-control-allow-origin"), "{head}");
    // With an allow-list, only its origins.
    let s = Server::start(&["--allowed-origins", "https://app.example.com"]);
    let (_, head, _) = s.http_raw("OPTIONS", "/v2/token", None, None, &preflight).await;
    assert!(!head.to_ascii_lowercase().contains("access-control-allow-origin"), "{head}");
    let ok = [("Origin", "https://app.example.com"), ("Access-Control-Request-Method", "POST")];
    let (_, head, _) = s.http_raw("OPTIONS", "/v2/token", None, None, &ok).await;
    assert!(head.to_ascii_lowercase().contains("access-control-allow-origin: https://app.example.com"), "{head}");
}

/// Tokens name the app they belong to (`access_key`): one signed with the right secret
/// for another app is refused, on the WebSocket and on the REST API.
#[tokio::test]
async fn tokens_for_another_access_key_are_refused() {
    use hms_server::auth::TokenType;
    let s = Server::start(&[]);
    let mut c = Server::claims("r", "u", "host", TokenType::App);
    c.access_key = "another-app".into();
    let app = Server::keys().sign(&c).unwrap();
    let mut ws = Client::connect(&s.ws_url("p", &app)).await;
    let e = ws.push("on-error").await;
    assert_eq!(e["code"], 401, "{e}");
    assert!(e["message"].as_str().unwrap().contains("access_key"), "{e}");
    let mut m = Server::claims("", "", "", TokenType::Management);
    m.access_key = "another-app".into();
    let (st, _) = s.http("GET", "/v2/active-rooms/r", Some(&Server::keys().sign(&m).unwrap()), None).await;
    assert_eq!(st, 401);
}

// ---- issue 14: TLS, origins, proxies ----

/// A self-signed certificate for `localhost`, made now; returns (cert path, key path,
/// a TLS connector that trusts only it).
fn test_certificate(dir: &Path) -> (String, String, tokio_rustls::TlsConnector) {
    use tokio_rustls::rustls;
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.cert.der().clone()).unwrap();
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    (cert_path.to_str().unwrap().to_owned(), key_path.to_str().unwrap().to_owned(), connector)
}

/// `--tls-cert` / `--tls-key`: the server speaks wss:// itself (no proxy needed): a
/// client that trusts the test certificate joins and ends a room; plain HTTP is refused.
#[tokio::test]
async fn tls_serves_wss_with_a_certificate_made_at_test_time() {
    let tmp = tempfile::tempdir().unwrap();
    let (cert, key, connector) = test_certificate(tmp.path());
    let s = Server::start(&["--tls-cert", &cert, "--tls-key", &key]);
    let token = Server::token("r", "u-h", "host");
    let url = format!("wss://localhost:{}/ws?peer=h&token={token}", s.port);
    let mut host = Client::dial(&url, common::Dial { tls: Some((connector.clone(), "localhost")), ..Default::default() }).await;
    host.join("h").await;
    let gtoken = Server::token("r", "u-g", "guest");
    let gurl = format!("wss://localhost:{}/ws?peer=g&token={gtoken}", s.port);
    let mut guest = Client::dial(&gurl, common::Dial { tls: Some((connector, "localhost")), ..Default::default() }).await;
    guest.join("g").await;
    host.push("on-peer-join").await;
    assert!(host.request("end-room", json!({"lock": false, "reason": "over TLS"})).await["result"].is_object());
    assert_eq!(guest.push("on-peer-leave-request").await["reason"], "over TLS");
    // Plain HTTP on the TLS port gets no HTTP answer.
    let got = http_from("127.0.0.1", s.port, "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await;
    assert!(!got.contains("200 OK"), "{got:?}");
    // A bad key path is a clear start-up error.
    let (ok, _, err) = run_cli(&["serve", "--addr", "127.0.0.1:0", "--data-dir", tmp.path().join("d").to_str().unwrap(), "--tls-cert", &cert, "--tls-key", "/nonexistent/key.pem"], &[("HMS_SECRET", SECRET)]);
    assert!(!ok && err.contains("private key"), "{err}");
}

/// `--allowed-origins`: a page of another origin cannot open a socket (cross-site
/// WebSocket hijacking with a user's token); the allowed origin and non-browser clients
/// (no Origin header) can.
#[tokio::test]
async fn a_websocket_from_another_origin_is_refused() {
    let s = Server::start(&["--allowed-origins", "https://app.example.com,http://localhost:5173"]);
    let token = Server::token("r", "u", "host");
    let mut evil = Client::dial(&s.ws_url("p", &token), common::Dial { headers: &[("Origin", "https://evil.example")], ..Default::default() }).await;
    let e = evil.push("on-error").await;
    assert_eq!(e["code"], 403, "{e}");
    assert!(e["message"].as_str().unwrap().contains("origin"), "{e}");
    assert_eq!(evil.closed().await, 1008);
    for origin in ["https://app.example.com", "HTTP://LOCALHOST:5173"] {
        let mut ok = Client::dial(&s.ws_url("p", &token), common::Dial { headers: &[("Origin", origin)], ..Default::default() }).await;
        ok.join("p").await;
        ok.send(json!({"jsonrpc": "2.0", "method": "leave"})).await;
        assert_eq!(ok.closed().await, 1000);
    }
    let mut tool = Client::connect(&s.ws_url("p", &token)).await;
    tool.join("p").await;
    assert!(s.log().contains("origin not allowed"));
}

/// `--trusted-proxies`: behind a trusted proxy (here 127.0.0.2) per-address limits and
/// logs use the address in X-Forwarded-For; from anyone else the header is ignored.
#[tokio::test]
async fn forwarded_addresses_count_only_from_trusted_proxies() {
    let s = Server::start(&["--trusted-proxies", "127.0.0.2", "--max-conns-per-ip", "1", "--token-requests-per-min", "1", "--token-burst", "1"]);
    let dial = |from: &'static str, xff: &'static str, peer: &'static str| {
        let url = s.ws_url(peer, &Server::token("r", &format!("u-{peer}"), "guest"));
        async move { Client::dial(&url, common::Dial { from: Some(from), headers: &[("X-Forwarded-For", xff)], ..Default::default() }).await }
    };
    // Through the trusted proxy: one connection per forwarded client.
    let mut a = dial("127.0.0.2", "203.0.113.7", "a").await;
    a.join("a").await;
    let mut a2 = dial("127.0.0.2", "198.51.100.1, 203.0.113.7", "a2").await;
    assert_eq!(a2.push("on-error").await["code"], 429, "the same forwarded client (rightmost untrusted hop)");
    let mut b = dial("127.0.0.2", "203.0.113.8", "b").await;
    b.join("b").await;
    // Directly: the header is the client's own word, ignored; the socket's address counts.
    let mut c = dial("127.0.0.1", "203.0.113.9", "c").await;
    c.join("c").await;
    let mut c2 = dial("127.0.0.1", "203.0.113.10", "c2").await;
    assert_eq!(c2.push("on-error").await["code"], 429, "one connection from 127.0.0.1");
    // The token throttle keys on the same address.
    let via = |xff: &str| token_request("nope-nope-nope-nope").replacen("Host: x\r\n", &format!("Host: x\r\nX-Forwarded-For: {xff}\r\n"), 1);
    assert!(http_from("127.0.0.2", s.port, &via("203.0.113.20")).await.starts_with("HTTP/1.1 404"));
    let limited = http_from("127.0.0.2", s.port, &via("203.0.113.20")).await;
    assert!(limited.starts_with("HTTP/1.1 429") && limited.contains("token requests"), "{limited}");
    assert!(http_from("127.0.0.2", s.port, &via("203.0.113.21")).await.starts_with("HTTP/1.1 404"), "another forwarded client");
    let log = s.log();
    assert!(log.contains("ip=203.0.113.7") && log.contains("ip=203.0.113.8"), "forwarded addresses in the log:\n{log}");
    assert!(log.contains("ip=127.0.0.1"), "{log}");
    assert!(!log.contains("203.0.113.9") && !log.contains("203.0.113.10"), "an untrusted header never reaches the log");
}
