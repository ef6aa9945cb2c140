//! Webhooks against the real server binary and a real HTTP receiver on 127.0.0.1
//! (started by each test): what an end-room sends, in which order, signed; a receiver
//! that fails, then goes away, then comes back; SIGKILL right after an end-room was
//! answered; the failed list and replay.

mod common;

use common::{webhook_config, Hook, Receiver, Server, WEBHOOK_SECRET};
use hms_server::webhooks::sign::Signer;
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(15);

fn kinds(hooks: &[Hook]) -> Vec<&str> {
    hooks.iter().map(Hook::kind).collect()
}

fn now_secs() -> u64 {
    hms_server::clock::now_secs()
}

/// A receiver answering `status`, and a server sending it webhooks (`extra`: more
/// `[webhooks]` lines).
async fn receiver_and_server(status: u16, extra: &str) -> (Receiver, Server) {
    let rx = Receiver::start().await;
    rx.answer(status);
    let s = Server::start_with_config(&webhook_config(&[rx.url()], extra), &[]);
    (rx, s)
}

/// Every request carries a valid signature and a well-formed 100ms envelope.
fn assert_signed_envelopes(hooks: &[Hook]) {
    let signer = Signer::new(WEBHOOK_SECRET);
    for h in hooks {
        assert!(signer.verify(&h.signature, h.body.as_bytes(), now_secs()), "bad signature on {}", h.body);
        let e = &h.json;
        assert_eq!((e["version"].as_str(), e["account_id"].as_str(), e["app_id"].as_str()), (Some("2.0"), Some("hms-local"), Some("hms-local")));
        assert!(e["timestamp"].as_str().is_some_and(|t| t.len() == 24 && t.ends_with('Z')), "{e}");
        assert_eq!(e["id"].as_str().map(str::len), Some(36), "a UUID: {e}");
    }
}

/// Each event once, in the order of its first delivery: what a receiver that drops
/// repeated ids sees (a crash between a 2xx and its record sends an event again).
fn unique(hooks: Vec<Hook>) -> Vec<Hook> {
    let mut seen = HashSet::new();
    hooks.into_iter().filter(|h| seen.insert(h.id().to_owned())).collect()
}

/// Waits until `n` distinct events were delivered; returns them once each.
async fn wait_unique(rx: &Receiver, n: usize) -> Vec<Hook> {
    let ok = |all: &[Hook]| unique(all.iter().filter(|h| h.status == 200).cloned().collect()).len() >= n;
    rx.wait_until(WAIT, ok).await;
    unique(rx.delivered())
}

/// The delivered events grouped by room, in delivery order.
fn by_room(hooks: &[Hook]) -> HashMap<String, Vec<Hook>> {
    let mut m: HashMap<String, Vec<Hook>> = HashMap::new();
    for h in hooks {
        m.entry(h.json["data"]["room_id"].as_str().unwrap_or_default().to_owned()).or_default().push(h.clone());
    }
    m
}

#[tokio::test]
async fn end_room_with_lock_sends_the_close_then_one_leave_per_peer_signed() {
    let (rx, s) = receiver_and_server(200, "").await;
    let mut host = s.joined("r", "h", "host").await;
    let _g1 = s.joined("r", "g1", "guest").await;
    let _g2 = s.joined("r", "g2", "guest").await;
    rx.wait_delivered(4, WAIT).await;
    let ans = host.request("end-room", json!({"lock": true, "reason": "class is over"})).await;
    assert_eq!(ans["result"], json!({}));
    let got = rx.wait_delivered(8, WAIT).await;
    assert_eq!(
        kinds(&got),
        [
            "session.open.success",
            "peer.join.success",
            "peer.join.success",
            "peer.join.success",
            "session.close.success",
            "peer.leave.success",
            "peer.leave.success",
            "peer.leave.success"
        ]
    );
    assert_signed_envelopes(&got);
    let ids: HashSet<&str> = got.iter().map(Hook::id).collect();
    assert_eq!(ids.len(), 8, "one id per event");
    let session = got[0].json["data"]["session_id"].as_str().unwrap().to_owned();
    let joined: Vec<&str> = got[1..4].iter().map(|h| h.json["data"]["peer_id"].as_str().unwrap()).collect();
    assert_eq!(joined, ["h", "g1", "g2"], "joins in the order they happened");
    let j = &got[2].json["data"];
    assert_eq!((j["user_id"].as_str(), j["role"].as_str(), j["user_name"].as_str()), (Some("u-g1"), Some("guest"), Some("g1")));

    let close = &got[4].json["data"];
    assert_eq!(close["session_id"], session.as_str());
    assert_eq!((close["reason"].as_str(), close["message"].as_str()), (Some("room ended"), Some("class is over")));
    assert_eq!((close["room_end"].as_bool(), close["lock_room"].as_bool()), (Some(true), Some(true)));
    assert_eq!(close["requested_by"], json!({"peer_id": "h", "user_id": "u-h"}));

    let mut left = HashSet::new();
    for h in &got[5..] {
        let d = &h.json["data"];
        assert_eq!((d["session_id"].as_str(), d["room_id"].as_str()), (Some(session.as_str()), Some("r")));
        assert_eq!((d["reason"].as_str(), d["message"].as_str()), (Some("room ended"), Some("class is over")));
        assert_eq!(d["requested_by"], json!({"peer_id": "h", "user_id": "u-h"}));
        let peer = d["peer_id"].as_str().unwrap();
        assert_eq!(d["user_id"].as_str(), Some(format!("u-{peer}").as_str()));
        assert_eq!(d["role"].as_str(), Some(if peer == "h" { "host" } else { "guest" }));
        assert!(d["left_at"].as_str() >= d["joined_at"].as_str());
        left.insert(peer.to_owned());
    }
    assert_eq!(left, HashSet::from(["h".to_owned(), "g1".to_owned(), "g2".to_owned()]), "one leave per peer");

    // The sockets closing afterwards invent nothing; the unlock is one more event.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(rx.all().len(), 8, "{:?}", common::kinds(&rx.all()));
    let (status, _) = s.http("POST", "/v2/rooms/r", Some(&Server::mgmt()), Some(&json!({"enabled": true}))).await;
    assert_eq!(status, 200);
    let got = rx.wait_delivered(9, WAIT).await;
    assert_eq!(got[8].kind(), "room.enable.success");
    assert_eq!((got[8].json["data"]["room_id"].as_str(), got[8].json["data"]["enabled"].as_bool()), (Some("r"), Some(true)));
}

#[tokio::test]
async fn a_receiver_that_fails_then_goes_away_then_returns_gets_every_event_once_in_order() {
    let (mut rx, s) = receiver_and_server(500, "").await;
    // Room a: two peers join, one leaves. Room b: one peer joins and leaves (the room empties).
    let _ah = s.joined("a", "ah", "host").await;
    let mut ag = s.joined("a", "ag", "guest").await;
    let mut bh = s.joined("b", "bh", "host").await;
    assert_eq!(ag.request("leave", json!({})).await["result"], json!({}));
    assert_eq!(bh.request("leave", json!({})).await["result"], json!({}));
    // Several failed attempts, and only ever of each room's first event: order holds.
    let tried = rx.wait_until(WAIT, |all| all.len() >= 8).await;
    for (room, hooks) in by_room(&tried) {
        let first: HashSet<&str> = hooks.iter().map(Hook::id).collect();
        assert_eq!(first.len(), 1, "room {room}: a later event was tried before the first got through: {:?}", common::kinds(&hooks));
        assert_eq!(hooks[0].kind(), "session.open.success");
    }
    // Now the receiver is gone (connections refused) for a while, then back.
    rx.stop().await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    rx.answer(200);
    rx.resume().await;
    let got = rx.wait_delivered(8, WAIT).await;
    assert_signed_envelopes(&got);
    let mut seen = HashSet::new();
    for h in &got {
        assert!(seen.insert(h.id().to_owned()), "{} delivered twice", h.id());
    }
    let rooms = by_room(&got);
    let a: Vec<String> = rooms["a"].iter().map(|h| format!("{} {}", h.kind(), h.json["data"]["peer_id"].as_str().unwrap_or(""))).collect();
    assert_eq!(a, ["session.open.success ", "peer.join.success ah", "peer.join.success ag", "peer.leave.success ag"]);
    assert_eq!(rooms["a"][3].json["data"]["reason"], "client request");
    assert_eq!(kinds(&rooms["b"]), ["session.open.success", "peer.join.success", "peer.leave.success", "session.close.success"]);
    assert_eq!(rooms["b"][3].json["data"]["reason"], "room empty");
    // Every failed attempt was of an event that was later delivered, with the same body.
    let bodies: HashMap<&str, &str> = got.iter().map(|h| (h.id(), h.body.as_str())).collect();
    for h in rx.all().iter().filter(|h| h.status != 200) {
        assert_eq!(bodies.get(h.id()), Some(&h.body.as_str()), "a retry is the same event");
    }
}

#[tokio::test]
async fn sigkill_right_after_an_answered_end_room_loses_no_event() {
    // Nothing gets through before the kill: what arrives later came from the disk.
    let (rx, mut s) = receiver_and_server(503, "").await;
    let mut host = s.joined("r", "h", "host").await;
    let _g1 = s.joined("r", "g1", "guest").await;
    let _g2 = s.joined("r", "g2", "guest").await;
    let ans = host.request("end-room", json!({"lock": true, "reason": "bye"})).await;
    assert_eq!(ans["result"], json!({}));
    s.kill9();
    assert!(rx.delivered().is_empty());
    rx.answer(200);
    let s = s.restart();
    let got = rx.wait_delivered(8, WAIT).await;
    assert_eq!(&kinds(&got)[..5], ["session.open.success", "peer.join.success", "peer.join.success", "peer.join.success", "session.close.success"]);
    assert_eq!(kinds(&got)[5..], ["peer.leave.success"; 3]);
    assert_eq!((got[4].json["data"]["reason"].as_str(), got[4].json["data"]["lock_room"].as_bool()), (Some("room ended"), Some(true)));
    assert!(got[5..].iter().all(|h| h.json["data"]["reason"] == "room ended"));
    assert_signed_envelopes(&got);
    drop(s);
}

#[tokio::test]
async fn a_crash_mid_session_is_reported_after_the_restart_with_every_leave() {
    let (rx, mut s) = receiver_and_server(200, "").await;
    let _p1 = s.joined("r", "p1", "host").await;
    let _p2 = s.joined("r", "p2", "guest").await;
    rx.wait_delivered(3, WAIT).await;
    s.kill9();
    let s = s.restart();
    let got = wait_unique(&rx, 6).await;
    assert_eq!(kinds(&got[3..]), ["session.close.success", "peer.leave.success", "peer.leave.success"]);
    assert_eq!(got[3].json["data"]["reason"], "server stopped");
    assert_eq!(got[3].json["data"]["session_id"], got[0].json["data"]["session_id"]);
    let left: HashSet<&str> = got[4..].iter().map(|h| h.json["data"]["peer_id"].as_str().unwrap()).collect();
    assert_eq!(left, HashSet::from(["p1", "p2"]));
    assert!(got[4..].iter().all(|h| h.json["data"]["reason"] == "server stopped"));
    drop(s);
}

#[tokio::test]
async fn a_graceful_shutdown_reports_the_close_and_the_leaves_once() {
    let (rx, mut s) = receiver_and_server(200, "").await;
    let _p1 = s.joined("r", "p1", "host").await;
    rx.wait_delivered(2, WAIT).await;
    assert!(s.sigterm().success());
    let s = s.restart();
    let got = wait_unique(&rx, 4).await;
    assert_eq!(kinds(&got[2..]), ["session.close.success", "peer.leave.success"]);
    assert_eq!((got[2].json["data"]["reason"].as_str(), got[3].json["data"]["reason"].as_str()), (Some("server shutdown"), Some("server shutdown")));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(unique(rx.delivered()).len(), 4, "the restart adds no second close: {:?}", common::kinds(&rx.all()));
    drop(s);
}

async fn failed_page(s: &Server, query: &str) -> Value {
    let (status, body) = s.http("GET", &format!("/v2/webhooks/failed{query}"), Some(&Server::mgmt()), None).await;
    assert_eq!(status, 200, "{body}");
    body
}

#[tokio::test]
async fn events_past_their_retry_budget_are_listed_and_can_be_replayed() {
    let (rx, s) = receiver_and_server(500, "retry_budget_secs = 0\n").await;
    let _h = s.joined("r", "h", "host").await;
    // One attempt each, then the failed list.
    let deadline = tokio::time::Instant::now() + WAIT;
    let page = loop {
        let page = failed_page(&s, "").await;
        if page["data"].as_array().map_or(0, Vec::len) == 2 {
            break page;
        }
        assert!(tokio::time::Instant::now() < deadline, "not listed in time: {page}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let items = page["data"].as_array().unwrap();
    assert_eq!(page["next"], Value::Null);
    assert_eq!((items[0]["type"].as_str(), items[1]["type"].as_str()), (Some("session.open.success"), Some("peer.join.success")));
    for it in items {
        assert_eq!((it["attempts"].as_u64(), it["last_error"].as_str(), it["room_id"].as_str()), (Some(1), Some("HTTP 500"), Some("r")));
        assert_eq!(it["target"].as_str(), Some(rx.url().as_str()));
        assert_eq!(it["event"]["id"], it["id"], "the event as it was sent");
    }
    let first = failed_page(&s, "?limit=1").await;
    assert_eq!(first["data"].as_array().unwrap().len(), 1);
    let second = failed_page(&s, &format!("?limit=1&after={}", first["next"])).await;
    assert_eq!(second["data"][0]["id"], items[1]["id"]);
    assert_eq!(second["next"], Value::Null);
    let (status, _) = s.http("GET", "/v2/webhooks/failed", None, None).await;
    assert_eq!(status, 401);
    let (status, body) = s.http("GET", "/v2/webhooks/failed?limit=x", Some(&Server::mgmt()), None).await;
    assert_eq!((status, body["code"].as_u64()), (400, Some(400)));

    rx.answer(200);
    let id = items[1]["id"].as_str().unwrap();
    let (status, body) = s.http("POST", &format!("/v2/webhooks/failed/{id}/replay"), Some(&Server::mgmt()), None).await;
    assert_eq!((status, body["queued"].as_u64()), (200, Some(1)), "{body}");
    let got = rx.wait_delivered(1, WAIT).await;
    assert_eq!(got[0].id(), id);
    let sent_before = rx.all().into_iter().find(|h| h.id() == id).unwrap();
    assert_eq!(got[0].body, sent_before.body, "replayed as it was");
    assert_eq!(failed_page(&s, "").await["data"].as_array().unwrap().len(), 1);
    let (status, body) = s.http("POST", &format!("/v2/webhooks/failed/{id}/replay"), Some(&Server::mgmt()), None).await;
    assert_eq!((status, body["code"].as_u64()), (404, Some(404)));
}

#[tokio::test]
async fn without_webhooks_the_failed_list_says_they_are_off() {
    let s = Server::start(&[]);
    let (status, body) = s.http("GET", "/v2/webhooks/failed", Some(&Server::mgmt()), None).await;
    assert_eq!(status, 404);
    assert!(body["message"].as_str().unwrap().contains("webhooks are off"), "{body}");
}

#[test]
fn a_short_signing_secret_is_refused_at_start_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hms-server"))
        .args(["serve", "--addr", "127.0.0.1:0", "--webhook-url", "http://127.0.0.1:9/hook", "--data-dir"])
        .arg(dir.path())
        .env("HMS_WEBHOOK_SECRET", "short")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("signing secret is 5 characters; use at least 32"), "{err}");
    assert!(!err.contains("short\""), "the secret itself is not printed: {err}");
}

/// The ```json examples of docs/WEBHOOKS.md, by event type.
fn documented_examples() -> HashMap<String, Value> {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/WEBHOOKS.md")).expect("docs/WEBHOOKS.md");
    let mut out = HashMap::new();
    for block in doc.split("```json\n").skip(1) {
        let text = block.split("```").next().unwrap_or_default();
        let v: Value = serde_json::from_str(text).unwrap_or_else(|e| panic!("a json block of docs/WEBHOOKS.md does not parse: {e}\n{text}"));
        if let Some(t) = v["type"].as_str() {
            out.insert(t.to_owned(), v);
        }
    }
    out
}

/// Same keys at every level and the same kind of value (null stands for "or null").
fn same_shape(doc: &Value, real: &Value, path: &str) -> Result<(), String> {
    match (doc, real) {
        (Value::Object(d), Value::Object(r)) => {
            let (dk, rk): (HashSet<&String>, HashSet<&String>) = (d.keys().collect(), r.keys().collect());
            if dk != rk {
                return Err(format!("{path}: documented keys {dk:?}, sent {rk:?}"));
            }
            d.iter().try_for_each(|(k, v)| same_shape(v, &r[k], &format!("{path}.{k}")))
        }
        (Value::Null, _) | (_, Value::Null) => Ok(()),
        (Value::String(_), Value::String(_)) | (Value::Bool(_), Value::Bool(_)) | (Value::Number(_), Value::Number(_)) => Ok(()),
        _ => Err(format!("{path}: documented {doc}, sent {real}")),
    }
}

#[tokio::test]
async fn the_documented_json_of_every_event_type_is_what_the_server_sends() {
    let (rx, s) = receiver_and_server(200, "").await;
    let mut host = s.joined("demo-room", "peer-host", "host").await;
    let _guest = s.joined("demo-room", "peer-guest", "guest").await;
    host.push("on-peer-join").await;
    let ans = host.request("end-room", json!({"lock": true, "reason": "the class is over"})).await;
    assert_eq!(ans["result"], json!({}));
    for enabled in [true, false] {
        let (status, _) = s.http("POST", "/v2/rooms/demo-room", Some(&Server::mgmt()), Some(&json!({ "enabled": enabled }))).await;
        assert_eq!(status, 200);
    }
    let got = rx.wait_delivered(8, WAIT).await;
    let docs = documented_examples();
    if std::env::var("PRINT_WEBHOOKS").is_ok() {
        // To refresh the docs' examples: PRINT_WEBHOOKS=1 cargo test --test webhooks documented -- --nocapture
        for h in &got {
            println!("{}", h.body);
        }
    }
    let mut covered = HashSet::new();
    for h in &got {
        let doc = docs.get(h.kind()).unwrap_or_else(|| panic!("docs/WEBHOOKS.md has no example of {}", h.kind()));
        same_shape(doc, &h.json, h.kind()).unwrap();
        assert_eq!(doc["version"], h.json["version"]);
        covered.insert(h.kind().to_owned());
    }
    let all: HashSet<String> = hms_server::webhooks::payload::TYPES.iter().map(|t| t.to_string()).collect();
    assert_eq!(covered, all, "every event type was sent and checked");
    assert_eq!(docs.len(), all.len(), "the docs show each type once: {:?}", docs.keys());
}

/// The fenced block of docs/WEBHOOKS.md in `lang` whose first line is `first`.
fn documented_snippet(lang: &str, first: &str) -> String {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/WEBHOOKS.md")).unwrap();
    let start = doc.find(&format!("```{lang}\n{first}")).unwrap_or_else(|| panic!("docs/WEBHOOKS.md has no {lang} block starting {first:?}"));
    let code = &doc[start + lang.len() + 4..];
    code[..code.find("```").unwrap()].to_owned()
}

/// Runs `program script args...`; its stdout as JSON.
fn run_json(program: &str, args: &[&std::path::Path]) -> Value {
    let out = std::process::Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program} is needed (scripts/setup.sh installs it): {e}"));
    assert!(out.status.success(), "{program} failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{program} printed no JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

#[tokio::test]
async fn the_documented_node_and_python_checks_accept_a_real_request_and_refuse_forged_and_replayed_ones() {
    let (rx, s) = receiver_and_server(200, "").await;
    let _h = s.joined("r", "h", "host").await;
    let real = rx.wait_delivered(2, WAIT).await.remove(1);
    let t: u64 = real.signature.strip_prefix("t=").and_then(|r| r.split(',').next()).unwrap().parse().unwrap();
    let forged_key = Signer::new("not-the-secret-but-just-as-long-as-it-0123").header(t, real.body.as_bytes());
    let altered = real.body.replacen("\"u-h\"", "\"u-x\"", 1);
    assert_ne!(altered, real.body);
    let moved = real.signature.replacen(&format!("t={t}"), &format!("t={}", t + 60), 1);
    let case = |name: &str, header: &str, body: &str, now: u64| json!({"name": name, "header": header, "body": body, "now": now});
    let cases = json!({
        "secret": WEBHOOK_SECRET,
        "cases": [
            case("the real request", &real.signature, &real.body, t),
            case("the same again (a retry, or a replay within 5 min)", &real.signature, &real.body, t + 10),
            case("an altered body", &real.signature, &altered, t),
            case("signed with another key", &forged_key, &real.body, t),
            case("its time moved", &moved, &real.body, t + 60),
            case("replayed 301 s later", &real.signature, &real.body, t + 301),
            case("no header", "", &real.body, t),
        ]
    });
    let expected = json!([
        format!("ok:{}", real.id()),
        "repeat",
        "rejected:bad signature",
        "rejected:bad signature",
        "rejected:bad signature",
        "rejected:stale signature",
        "rejected:malformed signature"
    ]);
    let dir = tempfile::tempdir().unwrap();
    let cases_file = dir.path().join("cases.json");
    std::fs::write(&cases_file, cases.to_string()).unwrap();

    let js = dir.path().join("verify-webhook.js");
    std::fs::write(&js, documented_snippet("js", "// verify-webhook.js")).unwrap();
    let js_driver = dir.path().join("driver.js");
    std::fs::write(
        &js_driver,
        r#"const fs = require("node:fs");
const { verifyWebhook } = require(process.argv[2]);
const { secret, cases } = JSON.parse(fs.readFileSync(process.argv[3], "utf8"));
console.log(JSON.stringify(cases.map((c) => {
  try {
    const e = verifyWebhook(secret, c.header, Buffer.from(c.body, "utf8"), c.now);
    return e === null ? "repeat" : "ok:" + e.id;
  } catch (err) {
    return "rejected:" + err.message;
  }
})));
"#,
    )
    .unwrap();
    assert_eq!(run_json("node", &[&js_driver, &js, &cases_file]), expected, "the Node snippet");

    let py = dir.path().join("verify_webhook.py");
    std::fs::write(&py, documented_snippet("python", "# verify_webhook.py")).unwrap();
    let py_driver = dir.path().join("driver.py");
    std::fs::write(
        &py_driver,
        r#"import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("verify_webhook", sys.argv[1])
m = importlib.util.module_from_spec(spec)
spec.loader.exec_module(m)
data = json.load(open(sys.argv[2]))
out = []
for c in data["cases"]:
    try:
        e = m.verify_webhook(data["secret"], c["header"], c["body"].encode(), c["now"])
        out.append("repeat" if e is None else "ok:" + e["id"])
    except m.Rejected as err:
        out.append("rejected:" + str(err))
print(json.dumps(out))
"#,
    )
    .unwrap();
    assert_eq!(run_json("python3", &[&py_driver, &py, &cases_file]), expected, "the Python snippet");
}
