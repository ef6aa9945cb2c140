//! Large rooms over real sockets against the real binary: the join's first page and
//! count, the paged peer list (`find-peer`, `peer-iter-next`, `get-peer`) covering the
//! room exactly once while peers join and leave, clear errors for bad iterators, and the
//! coalesced `on-peer-batch` notices that only subscribing roles get.

mod common;

use common::{Client, Server};
use serde_json::{json, Value};
use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

/// A server whose rooms become large at `threshold` peers, batching every `tick_ms`.
/// `host` subscribes to batches, `guest` does not (as in the default template).
fn server(threshold: usize, tick_ms: u64) -> (Server, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.toml");
    let toml = format!(
        "[template]\nid = \"big\"\nlarge_room_peers = {threshold}\npeer_batch_ms = {tick_ms}\n\
         [template.roles.host]\npriority = 100\npermissions = {{ endRoom = true, removeOthers = true }}\n\
         [template.roles.guest]\npriority = 1\npeer_updates = false\n"
    );
    std::fs::write(&path, toml).unwrap();
    let s = Server::start(&["--config", path.to_str().unwrap(), "--max-frames-per-sec", "0"]);
    (s, dir)
}

fn ids(peers: &Value) -> Vec<String> {
    peers.as_array().unwrap_or_else(|| panic!("an array: {peers}")).iter().map(|p| p["peer_id"].as_str().unwrap().to_owned()).collect()
}

/// One page's result, asserting it is a result.
async fn page(c: &mut Client, method: &str, params: Value) -> Value {
    let a = c.request(method, params).await;
    assert!(a.get("error").is_none(), "{method}: {a}");
    a["result"].clone()
}

#[tokio::test]
async fn a_large_room_join_gets_the_first_page_and_the_count_a_small_one_everyone() {
    let (s, _cfg) = server(5, 50);
    let mut small = Vec::new();
    for i in 0..4 {
        small.push(s.joined("r", &format!("p{i:02}"), "guest").await);
    }
    // The 4th joiner was still in a small room: everyone, no large-room fields.
    let mut c = s.connect("r", "p04", "guest").await;
    let list = c.join("p04").await;
    assert_eq!(list["large_room_optimization"], true, "the 5th join makes the room large: {list}");
    assert_eq!(list["peer_count"], 5);
    for i in 5..15 {
        small.push(s.joined("r", &format!("p{i:02}"), "guest").await);
    }
    let mut late = s.connect("r", "late", "guest").await;
    let list = late.join("late").await;
    assert_eq!(list["peer_count"], 16);
    let listed: BTreeSet<&str> = list["peers"].as_object().unwrap().keys().map(String::as_str).collect();
    let first: BTreeSet<String> = (0..10).map(|i| format!("p{i:02}")).chain(["late".to_owned()]).collect();
    assert_eq!(listed, first.iter().map(String::as_str).collect(), "the joiner and the first 10 in join order");
    assert_eq!(list["room"]["room_id"], "r");

    // A small room of the same server keeps today's frame: no count, no flag.
    let mut a = s.connect("small", "a", "host").await;
    let list = a.join("a").await;
    assert!(list.get("peer_count").is_none() && list.get("large_room_optimization").is_none(), "{list}");
    let _b = s.joined("small", "b", "guest").await;
    assert_eq!(a.push("on-peer-join").await["peer_id"], "b", "small rooms still get on-peer-join");
}

#[tokio::test]
async fn pages_cover_the_room_exactly_once_while_peers_join_and_leave() {
    let (s, _cfg) = server(1, 20);
    let mut reader = s.connect("r", "reader", "guest").await;
    reader.join("reader").await;
    let mut peers: HashMap<String, Client> = HashMap::new();
    for i in 0..30 {
        let id = format!("g{i:02}");
        peers.insert(id.clone(), s.joined("r", &id, "guest").await);
    }
    let first = page(&mut reader, "find-peer", json!({"limit": 7})).await;
    assert_eq!(first["total"], 31);
    assert_eq!(first["eof"], false);
    let iterator = first["iterator"].as_str().unwrap().to_owned();
    let mut seen = ids(&first["peers"]);
    assert_eq!(seen[0], "reader", "join order: the reader joined first");

    // Churn between pages: one already seen and one not yet seen leave, two join.
    let (seen_leaver, unseen_leaver) = (seen[3].clone(), "g20".to_owned());
    for id in [&seen_leaver, &unseen_leaver] {
        let mut c = peers.remove(id.as_str()).unwrap();
        c.send(json!({"jsonrpc": "2.0", "method": "leave", "params": {}})).await;
        c.expect_close(1000).await;
    }
    for id in ["n1", "n2"] {
        peers.insert(id.into(), s.joined("r", id, "guest").await);
    }
    let mut eof = false;
    let mut pages = 1;
    let mut total = 31; // 31 - 2 left + 2 joined
    while !eof {
        let p = page(&mut reader, "peer-iter-next", json!({"iterator": iterator, "limit": 7})).await;
        assert_eq!(p["iterator"], iterator.as_str());
        assert_eq!(p["total"], total, "the room's count now");
        seen.extend(ids(&p["peers"]));
        eof = p["eof"].as_bool().unwrap();
        pages += 1;
        if pages == 3 {
            // More churn mid-way: a peer joins after the cursor passed the old ones.
            peers.insert("n3".into(), s.joined("r", "n3", "guest").await);
            total += 1;
        }
        assert!(pages < 20, "the iteration ends");
    }
    let unique: BTreeSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "nobody seen twice: {seen:?}");
    let mut expected: BTreeSet<String> = peers.keys().cloned().collect();
    expected.insert("reader".into());
    expected.insert(seen_leaver.clone()); // seen before it left
    assert_eq!(unique.into_iter().cloned().collect::<BTreeSet<_>>(), expected, "every peer present throughout seen once");
    assert!(!seen.contains(&unseen_leaver), "a peer that left before the cursor reached it is not listed");
    // After eof, the iterator still answers, with nothing new.
    let p = page(&mut reader, "peer-iter-next", json!({"iterator": iterator})).await;
    assert_eq!((p["eof"].clone(), p["peers"].clone()), (json!(true), json!([])));
}

#[tokio::test]
async fn filters_get_peer_and_not_joined() {
    let (s, _cfg) = server(1, 20);
    let mut h = s.joined("r", "h", "host").await;
    for i in 0..5 {
        s.joined("r", &format!("g{i}"), "guest").await;
    }
    let hosts = page(&mut h, "find-peer", json!({"role": "host"})).await;
    assert_eq!((ids(&hosts["peers"]), hosts["total"].clone(), hosts["eof"].clone()), (vec!["h".to_owned()], json!(1), json!(true)));
    let some = page(&mut h, "find-peer", json!({"peers": ["g3", "nobody", "g1"], "limit": 1})).await;
    assert_eq!((ids(&some["peers"]), some["total"].clone(), some["eof"].clone()), (vec!["g1".to_owned()], json!(2), json!(false)));
    let group = page(&mut h, "find-peer", json!({"group": "stage"})).await;
    assert_eq!((group["total"].clone(), group["peers"].clone()), (json!(0), json!([])));
    let one = page(&mut h, "get-peer", json!({"peer_id": "g2"})).await;
    assert_eq!((one["peer_id"].clone(), one["role"].clone(), one["info"]["name"].clone()), (json!("g2"), json!("guest"), json!("g2")));
    assert_eq!(h.error_code("get-peer", json!({"peerId": "nobody"})).await, 404);
    // Only a joined peer reads the list.
    let mut c = s.connect("r", "early", "guest").await;
    assert_eq!(c.error_code("find-peer", json!({})).await, 400);
}

#[tokio::test]
async fn a_bad_or_foreign_or_evicted_iterator_gets_a_clear_error() {
    let (s, _cfg) = server(1, 20);
    let mut a = s.joined("r", "a", "host").await;
    let mut b = s.joined("r", "b", "guest").await;
    let bad = a.request("peer-iter-next", json!({"iterator": "not-an-iterator"})).await;
    assert_eq!(bad["error"]["code"], 404, "{bad}");
    assert!(bad["error"]["message"].as_str().unwrap().contains("find-peer"), "the error says what to do: {bad}");
    let mine = page(&mut a, "find-peer", json!({"limit": 1})).await["iterator"].as_str().unwrap().to_owned();
    assert_eq!(b.error_code("peer-iter-next", json!({"iterator": mine})).await, 404, "another peer's iterator");
    assert_eq!(a.error_code("peer-iter-next", json!({})).await, -32602, "the iterator is required");
    // At most 8 open per peer: the 9th evicts the least recently used.
    for _ in 0..8 {
        page(&mut a, "find-peer", json!({"limit": 1})).await;
    }
    assert_eq!(a.error_code("peer-iter-next", json!({"iterator": mine})).await, 404, "evicted");
}

/// Frames that arrive within `d`, until silence.
async fn drain(c: &mut Client, d: Duration) -> Vec<Value> {
    let mut got = Vec::new();
    while let Some(common::Ev::Frame(f)) = c.next_raw(d).await {
        got.push(f);
    }
    got
}

#[tokio::test]
async fn large_rooms_coalesce_joins_and_leaves_for_subscribing_roles_only() {
    let (s, _cfg) = server(1, 300);
    let mut host = s.joined("r", "host", "host").await;
    let mut quiet = s.joined("r", "quiet", "guest").await;
    // Let the batch of these two joins go out.
    let first = drain(&mut host, Duration::from_millis(700)).await;
    assert_eq!(first.len(), 1, "{first:?}");
    assert_eq!(first[0]["method"], "on-peer-batch");
    // One shared frame for everyone, so it may list the receiver itself: apply by id.
    assert_eq!(ids(&first[0]["params"]["joined"]), ["host", "quiet"]);

    let mut guests = Vec::new();
    for i in 0..6 {
        guests.push(s.joined("r", &format!("g{i}"), "guest").await);
    }
    let mut gone = guests.remove(0);
    gone.send(json!({"jsonrpc": "2.0", "method": "leave", "params": {}})).await;
    gone.expect_close(1000).await;
    let got = drain(&mut host, Duration::from_millis(700)).await;
    assert!(got.iter().all(|f| f["method"] == "on-peer-batch"), "no single join/leave pushes: {got:?}");
    assert!(got.len() <= 2, "coalesced into a tick or two, not one frame per event: {got:?}");
    let joined: Vec<String> = got.iter().flat_map(|f| ids(&f["params"]["joined"])).collect();
    let left: Vec<&str> = got.iter().flat_map(|f| f["params"]["left"].as_array().unwrap().iter().map(|v| v.as_str().unwrap())).collect();
    if got.len() == 1 {
        // g0 joined and left within the tick: it cancels out.
        assert_eq!(joined, ["g1", "g2", "g3", "g4", "g5"]);
        assert!(left.is_empty(), "{left:?}");
    } else {
        assert_eq!(joined.len() - left.len(), 5);
    }
    assert_eq!(got.last().unwrap()["params"]["peer_count"], 7);

    // A leave of a peer the host knows is listed; the quiet role heard nothing at all.
    let mut g1 = guests.remove(0);
    g1.send(json!({"jsonrpc": "2.0", "method": "leave", "params": {}})).await;
    g1.expect_close(1000).await;
    let got = drain(&mut host, Duration::from_millis(700)).await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!((got[0]["params"]["left"].clone(), got[0]["params"]["joined"].clone(), got[0]["params"]["peer_count"].clone()), (json!(["g1"]), json!([]), json!(6)));
    quiet.silent(Duration::from_millis(100)).await;
}
