//! Fuzzing on stable, bounded in time: the frame decoder and the dispatcher (the real
//! `handle_text` against a real hub and store) get corpus frames, mutations of them,
//! structured random JSON-RPC and random bytes. Nothing may panic, every frame the
//! server queues must be well-formed, and the room must stay consistent.
//!
//! Inputs: `server/fuzz/corpus/*` (seeds) and `server/fuzz/regressions/*` (inputs that
//! once broke something; replayed first, every run). A crashing input is written to
//! `server/fuzz/regressions/crash-*.txt` before the test fails, so it becomes a
//! regression test. Time budget per test: `HMS_FUZZ_SECS` (default 2 s); the seed:
//! `HMS_FUZZ_SEED` (default: time-based, printed).

use hms_server::app::{App, PeerConn};
use hms_server::config::Config;
use hms_server::conn::{ConnHandle, Out};
use hms_server::frame::decode;
use hms_server::room::{Connected, Secret};
use hms_server::signaling::{handle_text, Ctx};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// xorshift64*: tiny, seedable, good enough to pick mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

fn budget() -> Duration {
    let secs = std::env::var("HMS_FUZZ_SECS").ok().and_then(|s| s.parse::<f64>().ok()).unwrap_or(2.0);
    Duration::from_secs_f64(secs)
}

fn seed() -> u64 {
    let s = std::env::var("HMS_FUZZ_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(1)
    });
    println!("HMS_FUZZ_SEED={s}");
    s | 1
}

fn fuzz_dir(sub: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz").join(sub)
}

fn read_inputs(sub: &str) -> Vec<String> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(fuzz_dir(sub)).map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect()).unwrap_or_default();
    files.sort();
    files.iter().filter_map(|p| std::fs::read(p).ok()).map(|b| String::from_utf8_lossy(&b).into_owned()).collect()
}

/// Saves a crashing input as a regression test.
fn save_crash(input: &str) -> PathBuf {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in input.bytes() {
        h = (h ^ b as u64).wrapping_mul(0x100_0000_01b3);
    }
    let p = fuzz_dir("regressions").join(format!("crash-{h:016x}.txt"));
    let _ = std::fs::write(&p, input);
    p
}

const METHODS: [&str; 7] = ["join", "leave", "end-room", "peer-leave-request", "ping", "on-peer-join", "x"];
const PEERS: [&str; 4] = ["h", "g1", "g2", "h2"];

fn random_value(rng: &mut Rng, depth: u32) -> Value {
    match rng.below(if depth > 2 { 6 } else { 8 }) {
        0 => Value::Null,
        1 => Value::Bool(rng.chance(50)),
        2 => json!(rng.next() as i64),
        3 => json!(rng.next() % 1000),
        4 => json!(PEERS[rng.below(PEERS.len())]),
        5 => json!(["", "x", "reason", "\u{0}", "😀", "a\"b"][rng.below(6)]),
        6 => Value::Array((0..rng.below(3)).map(|_| random_value(rng, depth + 1)).collect()),
        _ => {
            let keys = ["name", "data", "lock", "reason", "requested_for", "timestamp", "client_reason", "zzz"];
            Value::Object((0..rng.below(4)).map(|_| (keys[rng.below(keys.len())].to_owned(), random_value(rng, depth + 1))).collect())
        }
    }
}

/// A JSON-RPC-ish frame: mostly right, sometimes subtly wrong.
fn structured(rng: &mut Rng) -> String {
    let method = METHODS[rng.below(METHODS.len())];
    let params = match (method, rng.below(3)) {
        ("join", 0) => json!({"name": "n", "data": "d"}),
        ("end-room", 0) => json!({"lock": rng.chance(50), "reason": "fuzz"}),
        ("peer-leave-request", 0) => json!({"requested_for": PEERS[rng.below(PEERS.len())], "reason": "fuzz"}),
        ("ping", 0) => json!({"timestamp": rng.next() % 1_000_000}),
        ("leave", 0) => json!({}),
        _ => random_value(rng, 0),
    };
    let mut obj = serde_json::Map::new();
    if rng.chance(90) {
        obj.insert("jsonrpc".into(), json!("2.0"));
    }
    if rng.chance(85) {
        obj.insert("id".into(), if rng.chance(90) { json!(format!("i{}", rng.next() % 100)) } else { random_value(rng, 2) });
    }
    if rng.chance(95) {
        obj.insert("method".into(), if rng.chance(95) { json!(method) } else { random_value(rng, 2) });
    }
    if rng.chance(90) {
        obj.insert("params".into(), params);
    }
    Value::Object(obj).to_string()
}

/// Byte-level mutations of a seed.
fn mutate(rng: &mut Rng, seed: &str) -> String {
    let mut b = seed.as_bytes().to_vec();
    for _ in 0..1 + rng.below(4) {
        let n = b.len();
        match rng.below(5) {
            0 if n > 0 => {
                let i = rng.below(n);
                b[i] = rng.next() as u8;
            }
            1 if n > 0 => {
                let i = rng.below(n);
                b.remove(i);
            }
            2 => {
                let tokens: [&[u8]; 9] = [b"{", b"}", b"[", b"]", b"\"", b",", b":", b"null", b"\\u0000"];
                let t = tokens[rng.below(tokens.len())];
                let i = rng.below(n + 1);
                b.splice(i..i, t.iter().copied());
            }
            3 if n > 2 => {
                let i = rng.below(n / 2);
                let j = i + rng.below(n - i);
                let chunk = b[i..j].to_vec();
                b.splice(j..j, chunk);
            }
            _ => b.truncate(rng.below(n + 1)),
        }
    }
    String::from_utf8_lossy(&b).into_owned()
}

fn random_bytes(rng: &mut Rng) -> String {
    let b: Vec<u8> = (0..rng.below(64)).map(|_| rng.next() as u8).collect();
    String::from_utf8_lossy(&b).into_owned()
}

fn next_input(rng: &mut Rng, seeds: &[String]) -> String {
    match rng.below(10) {
        0..=4 => structured(rng),
        5..=8 => {
            let i = rng.below(seeds.len());
            mutate(rng, &seeds[i])
        }
        _ => random_bytes(rng),
    }
}

#[test]
fn decoder_never_panics_and_answers_with_known_codes() {
    let mut rng = Rng(seed());
    let seeds: Vec<String> = read_inputs("corpus").into_iter().chain(read_inputs("regressions")).collect();
    assert!(seeds.len() >= 10, "corpus missing");
    let check = |input: &str| {
        let r = std::panic::catch_unwind(|| decode(input));
        let r = match r {
            Ok(r) => r,
            Err(_) => panic!("decode panicked; input saved to {}", save_crash(input).display()),
        };
        match r {
            Ok((id, call)) => {
                assert!(matches!(id, Value::Null | Value::String(_) | Value::Number(_)), "{input}");
                assert!(serde_json::to_string(&call).is_ok());
            }
            Err((id, e)) => {
                assert!([-32700, -32600, -32601, -32602].contains(&e.code), "{input} -> {e}");
                assert!(!e.message.is_empty());
                assert!(matches!(id, Value::Null | Value::String(_) | Value::Number(_)), "{input}");
            }
        }
    };
    for s in &seeds {
        check(s);
    }
    let deadline = Instant::now() + budget();
    let mut n = 0u64;
    while Instant::now() < deadline {
        check(&next_input(&mut rng, &seeds));
        n += 1;
    }
    println!("decoder: {n} inputs");
    assert!(n > 100);
}

struct FuzzPeer {
    name: &'static str,
    role: &'static str,
    conn: Option<(ConnHandle, mpsc::Receiver<Out>)>,
    hold: Option<u64>,
    /// Bumped when a missed notice turns the peer away: it comes back as a new peer id
    /// (its old id stays taken while its tombstone lives, as an SDK's next join would).
    gen: u32,
    /// The reconnect secret of its place.
    secret: Option<Secret>,
}

impl FuzzPeer {
    fn id(&self) -> String {
        if self.gen == 0 {
            self.name.to_owned()
        } else {
            format!("{}x{}", self.name, self.gen)
        }
    }
}

/// Whether `id` is one of the fuzzer's peers (a name of [`PEERS`], maybe with a generation).
fn ours(id: &str) -> bool {
    PEERS.iter().any(|p| id == *p || id.strip_prefix(p).is_some_and(|g| g.starts_with('x')))
}

/// Checks every queued frame; returns true when the server closed this connection.
fn drain(rx: &mut mpsc::Receiver<Out>, stats: &mut Stats) -> bool {
    while let Ok(out) = rx.try_recv() {
        let text = match out {
            Out::Text(t) => t,
            Out::TextAck(t, ack) => {
                ack.written();
                t
            }
            Out::Build(build) => build(),
            Out::Close(_) => return true,
        };
        let f: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("server frame is not JSON ({e}): {text}"));
        let is_answer = f.get("id").is_some() && (f.get("result").is_some() ^ f.get("error").is_some());
        let is_push = f.get("id").is_none() && f["method"].is_string() && f.get("params").is_some();
        assert!(is_answer || is_push, "malformed server frame: {text}");
        if let Some(r) = f.get("result") {
            assert!(r.is_object(), "results are objects: {text}");
        }
        match f["method"].as_str() {
            Some("peer-list") => stats.joins += 1,
            Some("on-peer-leave-request") => stats.removals += 1,
            _ => {}
        }
        if f.get("error").is_some() {
            stats.errors += 1;
        }
    }
    false
}

#[derive(Default, Debug)]
struct Stats {
    frames: u64,
    joins: u64,
    removals: u64,
    missed: u64,
    errors: u64,
}

/// Writes the recent frames if the dispatcher test panics, as a regression seed.
struct CrashGuard(Vec<String>);

impl Drop for CrashGuard {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let p = save_crash(&self.0.join("\n"));
            eprintln!("dispatcher panicked; the last frames are in {}", p.display());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dispatcher_survives_anything_and_keeps_the_room_consistent() {
    let mut rng = Rng(seed());
    let seeds: Vec<String> = read_inputs("corpus").into_iter().chain(read_inputs("regressions")).collect();
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::default();
    // The test drains queues itself, after each frame: don't wait for acks.
    config.limits.end_room_flush_ms = 0;
    config.limits.reconnect_window_secs = 60;
    let app: Arc<App> = App::new(config, "fuzz-secret", dir.path()).await.unwrap();
    let rooms = app.rooms();
    let mut peers: Vec<FuzzPeer> = PEERS
        .iter()
        .map(|&name| FuzzPeer { name, role: if name.starts_with('h') { "host" } else { "guest" }, conn: None, hold: None, gen: 0, secret: None })
        .collect();
    let mut next_id = 1u64;
    let mut stats = Stats::default();
    let mut guard = CrashGuard(Vec::new());
    let deadline = Instant::now() + budget();
    let mut replay = seeds.clone().into_iter();
    while Instant::now() < deadline {
        let i = rng.below(peers.len());
        let p = &mut peers[i];
        if p.conn.is_none() {
            // (Re)connect: fresh, reclaimed, missed notice, or refused.
            let (conn, outbox) = ConnHandle::queue(next_id, 64);
            next_id += 1;
            // Mostly the place's own secret; now and then none or a wrong one.
            let presented = match rng.below(10) {
                0 => None,
                1 => Some("not-the-secret".to_owned()),
                _ => p.secret.as_ref().map(|s| s.as_str().to_owned()),
            };
            match rooms.connect("room", &p.id(), &format!("u-{}", p.id()), p.role, presented.as_deref(), conn.clone()).await {
                Ok(Connected::Fresh(secret)) => {
                    p.secret = Some(secret);
                    p.conn = Some((conn, outbox.rx));
                }
                Ok(Connected::Reclaimed) => p.conn = Some((conn, outbox.rx)),
                Ok(Connected::Missed(n)) => {
                    stats.missed += 1;
                    assert!(n.requested_by.as_deref().is_none_or(ours), "{n:?}");
                    p.gen += 1;
                    p.secret = None;
                }
                Err(e) => assert!([401, 409].contains(&e.code()), "{e}"),
            }
            continue;
        }
        let (conn, _) = p.conn.as_ref().unwrap();
        let conn = conn.clone();
        if rng.chance(4) {
            // The socket drops (held or not), or a held place expires.
            let fx = rooms.disconnected("room", &p.id(), conn.id, rng.chance(50)).await;
            p.hold = fx.hold.or(p.hold);
            p.conn = None;
            continue;
        }
        if rng.chance(2) {
            if let Some(gen) = p.hold.take() {
                rooms.hold_expired("room", &p.id(), gen).await;
            }
            rooms.set_locked("room", rng.chance(30)).await;
            continue;
        }
        let input = match replay.next() {
            Some(s) => s,
            None => next_input(&mut rng, &seeds),
        };
        guard.0.push(format!("{}: {input}", p.name));
        if guard.0.len() > 50 {
            guard.0.remove(0);
        }
        let peer = PeerConn { room: "room".into(), peer: p.id(), user: format!("u-{}", p.id()), secret: p.secret.clone().unwrap_or_default(), conn: conn.clone() };
        let ctx = Ctx { app: app.clone(), peer };
        tokio::time::timeout(Duration::from_secs(5), handle_text(&ctx, &input)).await.expect("a frame is handled promptly");
        stats.frames += 1;
        // Drain everyone; a closed connection ends like the real connection task ends it.
        for q in peers.iter_mut() {
            let closed = match q.conn.as_mut() {
                Some((_, rx)) => drain(rx, &mut stats),
                None => false,
            };
            if closed {
                if let Some((c, _)) = q.conn.take() {
                    let peer = PeerConn { room: "room".into(), peer: q.id(), user: format!("u-{}", q.id()), secret: Secret::default(), conn: c };
                    app.disconnected(&peer, false).await;
                }
            }
        }
        // Consistency: every listed peer of the active room is one of ours.
        if let Ok(active) = app.active_room("room").await {
            for id in active.peers.keys() {
                assert!(ours(id), "stray peer {id}");
            }
        }
    }
    println!("dispatcher: {stats:?}");
    assert!(stats.frames > 50, "{stats:?}");
    assert!(stats.joins > 0 && stats.errors > 0, "the fuzzer reached joins and errors: {stats:?}");
}
