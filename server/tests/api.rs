//! The wire protocol and REST API against the real server binary: every method and
//! error code, permission enforcement, end-room fan-out, tokens, room codes, bad input.

mod common;

use common::{expect_on_error, Client, Ev, Server};
use futures_util::SinkExt;
use hms_server::auth::{TokenKeys, TokenType};
use serde_json::{json, Value};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn join_gives_policy_and_peer_list_and_announces_to_others() {
    let s = Server::start(&[]);
    let mut a = s.connect("r1", "pa", "host").await;
    let ans = a.request("join", json!({"name": "Alice", "data": "{\"x\":1}"})).await;
    let secret = ans["result"]["reconnect_secret"].as_str().unwrap();
    assert!(secret.len() == 64 && secret.bytes().all(|b| b.is_ascii_hexdigit()), "{ans}");
    assert_eq!(ans["jsonrpc"], "2.0");
    let policy = a.push("on-policy-change").await;
    assert_eq!(policy["name"], "host");
    assert_eq!(policy["known_roles"]["host"]["permissions"]["endRoom"], true);
    assert_eq!(policy["known_roles"]["host"]["permissions"]["removeOthers"], true);
    assert_eq!(policy["known_roles"]["guest"]["permissions"]["endRoom"], false);
    let list = a.push("peer-list").await;
    assert_eq!(list["room"]["room_id"], "r1");
    assert!(list["room"]["session_id"].is_string());
    assert_eq!(list["peers"]["pa"]["info"], json!({"name": "Alice", "data": "{\"x\":1}", "user_id": "u-pa", "type": "regular"}));

    let mut b = s.connect("r1", "pb", "guest").await;
    let list_b = b.join("Bob").await;
    assert_eq!(list_b["peers"].as_object().unwrap().len(), 2);
    assert_eq!(list_b["room"]["session_id"], list["room"]["session_id"], "same session");
    let joined = a.push("on-peer-join").await;
    assert_eq!(joined["peer_id"], "pb");
    assert_eq!(joined["role"], "guest");
    assert_eq!(joined["info"]["name"], "Bob");
    assert!(joined["joined_at"].as_u64().unwrap() > 0);
    assert_eq!(joined["tracks"], json!({}));

    // A second join on the same connection is a conflict.
    assert_eq!(b.error_code("join", json!({"name": "again"})).await, 409);
    // Another room is another world.
    let mut c = s.connect("r2", "pc", "host").await;
    assert_eq!(c.join("Carol").await["peers"].as_object().unwrap().len(), 1);
    a.silent(Duration::from_millis(200)).await;
}

#[tokio::test]
async fn ping_answers_the_timestamp_before_and_after_join() {
    let s = Server::start(&[]);
    let mut a = s.connect("r", "p", "guest").await;
    let ans = a.request("ping", json!({"timestamp": 1234567})).await;
    assert_eq!(ans["result"], json!({"timestamp": 1234567}));
    a.join("p").await;
    assert_eq!(a.request("ping", json!({"timestamp": 5})).await["result"]["timestamp"], 5);
}

#[tokio::test]
async fn leave_tells_the_others_and_closes_1000() {
    let s = Server::start(&[]);
    let mut a = s.joined("r", "a", "host").await;
    let mut b = s.joined("r", "b", "guest").await;
    a.push("on-peer-join").await;
    b.send(json!({"jsonrpc": "2.0", "method": "leave", "params": {"client_reason": "user request"}})).await;
    b.expect_close(1000).await;
    let left = a.push("on-peer-leave").await;
    assert_eq!(left["peer_id"], "b");
    // The peer id is free again once it left.
    let mut b2 = s.connect("r", "b", "guest").await;
    b2.join("b").await;
    assert_eq!(a.push("on-peer-join").await["peer_id"], "b");
}

#[tokio::test]
async fn methods_before_join_get_400() {
    let s = Server::start(&[]);
    let mut a = s.connect("r", "a", "host").await;
    for (m, p) in [
        ("end-room", json!({"lock": false, "reason": "x"})),
        ("peer-leave-request", json!({"requested_for": "b", "reason": "x"})),
        ("leave", json!({})),
    ] {
        let ans = a.request(m, p).await;
        assert_eq!(ans["error"]["code"], 400, "{m}: {ans}");
        assert!(ans["error"]["message"].as_str().unwrap().contains("join"), "{ans}");
    }
    a.join("a").await;
}

#[tokio::test]
async fn end_room_fans_out_with_requester_and_reason_then_locks() {
    let s = Server::start(&[]);
    let mut host = s.joined("r", "host1", "host").await;
    let mut g1 = s.joined("r", "g1", "guest").await;
    let mut g2 = s.joined("r", "g2", "guest").await;
    host.push("on-peer-join").await;
    host.push("on-peer-join").await;
    g1.push("on-peer-join").await;

    let ans = host.request("end-room", json!({"lock": true, "reason": "meeting over"})).await;
    assert_eq!(ans["result"], json!({}), "{ans}");
    // The others' notices were written before the answer went out: they are already
    // waiting in the guests' sockets.
    for g in [&mut g1, &mut g2] {
        let n = match g.next_raw(Duration::from_millis(500)).await {
            Some(Ev::Frame(f)) if f["method"] == "on-peer-leave-request" => f["params"].clone(),
            other => panic!("the notice was not there when the requester got its answer: {other:?}"),
        };
        assert_eq!(n, json!({"requested_by": "host1", "reason": "meeting over", "room_end": true}));
        g.expect_close(1000).await;
    }
    // The requester gets its answer (no notice of its own), then close 1000.
    host.expect_close(1000).await;

    // Locked: a later join fails with 423 (the connection itself is fine).
    let mut late = s.connect("r", "late", "host").await;
    let e = late.request("join", json!({"name": "late"})).await;
    assert_eq!(e["error"]["code"], 423, "{e}");
    // Other rooms are not affected.
    s.joined("other", "x", "guest").await;

    // The REST API re-enables it.
    let (st, body) = s.http("POST", "/v2/rooms/r", Some(&Server::mgmt()), Some(&json!({"enabled": true}))).await;
    assert_eq!((st, body["enabled"].clone()), (200, json!(true)));
    let list = late.join("late").await;
    assert_eq!(list["peers"].as_object().unwrap().len(), 1, "a new session: {list}");

    // History: the ended session is recorded with who, why and the lock.
    let (_, room) = s.http("GET", "/v2/rooms/r", Some(&Server::mgmt()), None).await;
    let first = &room["sessions"][0];
    assert_eq!((first["ended_by"].clone(), first["reason"].clone(), first["locked"].clone()), (json!("host1"), json!("meeting over"), json!(true)));
    assert!(room["sessions"][1]["ended_at"].is_null(), "the new session runs");
}

#[tokio::test]
async fn end_room_without_lock_leaves_the_room_open() {
    let s = Server::start(&[]);
    let mut host = s.joined("r", "h", "host").await;
    let mut g = s.joined("r", "g", "guest").await;
    host.push("on-peer-join").await;
    assert_eq!(host.request("end-room", json!({"lock": false, "reason": ""})).await["result"], json!({}));
    assert_eq!(g.push("on-peer-leave-request").await["room_end"], true);
    g.expect_close(1000).await;
    host.expect_close(1000).await;
    s.joined("r", "again", "guest").await;
}

#[tokio::test]
async fn server_enforces_permissions_on_raw_frames() {
    let s = Server::start(&[]);
    let mut host = s.joined("r", "h", "host").await;
    let mut g = s.joined("r", "g", "guest").await;
    let mut g2 = s.joined("r", "g2", "guest").await;
    host.push("on-peer-join").await;
    host.push("on-peer-join").await;
    g.push("on-peer-join").await;
    // A guest skipping the SDK's check gains nothing.
    let e = g.request("end-room", json!({"lock": true, "reason": "hijack"})).await;
    assert_eq!(e["error"]["code"], 403, "{e}");
    assert!(e["error"]["message"].as_str().unwrap().contains("endRoom"));
    assert_eq!(g.error_code("peer-leave-request", json!({"requested_for": "h", "reason": "x"})).await, 403);
    // Nothing happened to anyone, and no lock.
    host.silent(Duration::from_millis(300)).await;
    g2.silent(Duration::from_millis(10)).await;
    let mut g3 = s.joined("r", "g3", "guest").await;
    assert_eq!(host.push("on-peer-join").await["peer_id"], "g3");
    g3.silent(Duration::from_millis(10)).await;
}

#[tokio::test]
async fn peer_leave_request_removes_the_target_only() {
    let s = Server::start(&[]);
    let mut host = s.joined("r", "h", "host").await;
    let mut a = s.joined("r", "a", "guest").await;
    let mut b = s.joined("r", "b", "guest").await;
    host.push("on-peer-join").await;
    host.push("on-peer-join").await;
    a.push("on-peer-join").await;
    assert_eq!(host.error_code("peer-leave-request", json!({"requested_for": "h", "reason": "x"})).await, 400);
    assert_eq!(host.error_code("peer-leave-request", json!({"requested_for": "nobody", "reason": "x"})).await, 404);
    let ans = host.request("peer-leave-request", json!({"requested_for": "a", "reason": "spam"})).await;
    assert_eq!(ans["result"], json!({}));
    assert_eq!(a.push("on-peer-leave-request").await, json!({"requested_by": "h", "reason": "spam", "room_end": false}));
    a.expect_close(1000).await;
    assert_eq!(b.push("on-peer-leave").await["peer_id"], "a");
    assert_eq!(host.push("on-peer-leave").await["peer_id"], "a");
    // The room goes on.
    assert_eq!(b.request("ping", json!({"timestamp": 1})).await["result"]["timestamp"], 1);
}

async fn refused(url: &str) -> (Value, u16) {
    let mut c = Client::connect(url).await;
    let e = expect_on_error(&mut c).await;
    let code = match c.next().await {
        Ev::Close(code, _) => code,
        other => panic!("expected a close, got {other:?}"),
    };
    (e, code)
}

#[tokio::test]
async fn bad_tokens_get_on_error_401_and_close_1008() {
    let s = Server::start(&[]);
    let forged = TokenKeys::new(b"not-the-secret", "x", 60).app_token("r", "u", "host").unwrap();
    let mut expired = Server::claims("r", "u", "host", TokenType::App);
    expired.exp = expired.iat - 3600;
    expired.nbf = expired.exp - 60;
    expired.iat = expired.nbf;
    let expired = Server::keys().sign(&expired).unwrap();
    let management = Server::mgmt();
    let unknown_role = Server::token("r", "u", "admin");
    for (what, url) in [
        ("forged", s.ws_url("p", &forged)),
        ("expired", s.ws_url("p", &expired)),
        ("management as app", s.ws_url("p", &management)),
        ("garbage", s.ws_url("p", "abc.def.ghi")),
        ("unknown role", s.ws_url("p", &unknown_role)),
        ("other room", format!("{}&room=elsewhere", s.ws_url("p", &Server::token("r", "u", "host")))),
        ("missing", format!("ws://127.0.0.1:{}/ws?peer=p", s.port)),
    ] {
        let (e, close) = refused(&url).await;
        assert_eq!(e["code"], 401, "{what}: {e}");
        assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()), "{what}");
        assert_eq!(close, 1008, "{what}");
    }
    // The right room named explicitly is fine.
    let mut ok = Client::connect(&format!("{}&room=r", s.ws_url("p", &Server::token("r", "u", "host")))).await;
    ok.join("p").await;
    assert!(!s.log().contains(&forged), "tokens never reach the log");
}

#[tokio::test]
async fn peer_id_in_use_gets_409() {
    let s = Server::start(&[]);
    let mut a = s.joined("r", "same", "host").await;
    let (e, close) = refused(&s.ws_url("same", &Server::token("r", "u-other", "guest"))).await;
    assert_eq!((e["code"].clone(), close), (json!(409), 1008));
    // The same user with another role is someone else too.
    let (e, _) = refused(&s.ws_url("same", &Server::token("r", "u", "guest"))).await;
    assert_eq!(e["code"], 409);
    a.silent(Duration::from_millis(100)).await;
}

#[tokio::test]
async fn same_peer_and_user_takes_over_a_connection_the_server_still_thinks_alive() {
    // After a network change the old socket is half-open: the server only notices at
    // the idle timeout. A reconnect must not be refused until then.
    let s = Server::start(&[]);
    let mut other = s.joined("r", "other", "guest").await;
    let token = Server::token("r", "u", "host");
    let mut old = common::Client::connect(&s.ws_url("p", &token)).await;
    old.join("p").await;
    assert_eq!(other.push("on-peer-join").await["peer_id"], "p");
    // The reconnect presents the place's secret from the join answer.
    let secret = old.secret.clone().unwrap();
    let mut new = common::Client::connect(&s.reconnect_url("p", &token, &secret)).await;
    // The old connection is told, terminally, and closed.
    assert_eq!(old.push("on-error").await["code"], 409);
    assert_eq!(old.closed().await, 1008);
    // The new one gets the full state; the others see no leave/join noise.
    let list = new.join("p").await;
    assert_eq!(list["peers"].as_object().unwrap().len(), 2);
    other.silent(Duration::from_millis(300)).await;
    // And it is the live one: a removal reaches it.
    let (st, _) = s
        .http("POST", "/v2/active-rooms/r/remove-peers", Some(&Server::mgmt()), Some(&json!({"peer_id": "p", "reason": "bye"})))
        .await;
    assert_eq!(st, 200);
    assert_eq!(new.push("on-peer-leave-request").await["reason"], "bye");
    assert_eq!(other.push("on-peer-leave").await["peer_id"], "p");
}

#[tokio::test]
async fn bad_input_gets_clear_errors_and_the_room_stays_healthy() {
    let s = Server::start(&[]);
    let mut other = s.joined("r", "other", "guest").await;
    let mut bad = s.joined("r", "bad", "host").await;
    other.push("on-peer-join").await;

    bad.send_text("{not json").await;
    let f = bad.frame().await;
    assert_eq!((f["error"]["code"].clone(), f["id"].clone()), (json!(-32700), Value::Null), "{f}");

    bad.send_text("[1,2,3]").await;
    assert_eq!(bad.frame().await["error"]["code"], -32600);
    bad.send_text("42").await;
    assert_eq!(bad.frame().await["error"]["code"], -32600);
    bad.send(json!({"jsonrpc": "2.0", "id": "x1", "params": {}})).await;
    let f = bad.frame().await;
    assert_eq!((f["error"]["code"].clone(), f["id"].clone()), (json!(-32600), json!("x1")));
    bad.send(json!({"jsonrpc": "2.0", "id": {"a": 1}, "method": "ping"})).await;
    assert_eq!(bad.frame().await["error"]["code"], -32600);

    assert_eq!(bad.error_code("no-such-method", json!({})).await, -32601);
    assert_eq!(bad.error_code("no-such-method", json!([1])).await, -32601, "unknown method wins over odd params");
    assert_eq!(bad.error_code("end-room", json!({"lock": "yes", "reason": "x"})).await, -32602);
    assert_eq!(bad.error_code("end-room", json!({"reason": "x"})).await, -32602);
    assert_eq!(bad.error_code("ping", json!({})).await, -32602);
    assert_eq!(bad.error_code("ping", json!([1])).await, -32602);
    assert_eq!(bad.error_code("peer-leave-request", json!({"requested_for": 5, "reason": "x"})).await, -32602);

    // A binary frame: a clear error, and the connection stays usable.
    bad.ws.send(Message::Binary(vec![1u8, 2, 3].into())).await.unwrap();
    let f = bad.frame().await;
    assert_eq!(f["error"]["code"], -32600);
    assert!(f["error"]["message"].as_str().unwrap().contains("binary"));
    assert_eq!(bad.request("ping", json!({"timestamp": 9})).await["result"]["timestamp"], 9);

    // None of that reached the other peer, and the room still works.
    other.silent(Duration::from_millis(200)).await;
    let mut newcomer = s.joined("r", "new", "guest").await;
    assert_eq!(other.push("on-peer-join").await["peer_id"], "new");
    assert_eq!(bad.push("on-peer-join").await["peer_id"], "new");

    // A frame over 64 KiB closes that socket with 1009; the others hear it left.
    bad.send_text(format!("{{\"jsonrpc\":\"2.0\",\"id\":\"big\",\"method\":\"ping\",\"params\":{{\"pad\":\"{}\"}}}}", "x".repeat(70_000))).await;
    bad.expect_close(1009).await;
    assert_eq!(other.push("on-peer-leave").await["peer_id"], "bad");
    assert_eq!(newcomer.push("on-peer-leave").await["peer_id"], "bad");
    assert_eq!(other.request("ping", json!({"timestamp": 3})).await["result"]["timestamp"], 3);
}

#[tokio::test]
async fn a_flood_gets_429_without_hurting_the_room() {
    let s = Server::start(&["--max-frames-per-sec", "10"]);
    let mut other = s.joined("r", "other", "guest").await;
    let mut flood = s.joined("r", "flood", "guest").await;
    other.push("on-peer-join").await;
    for i in 0..40 {
        flood.send(json!({"jsonrpc": "2.0", "id": format!("f{i}"), "method": "ping", "params": {"timestamp": i}})).await;
    }
    let (mut ok, mut limited) = (0, 0);
    for _ in 0..40 {
        let f = flood.frame().await;
        if f["error"]["code"] == 429 {
            limited += 1;
        } else {
            assert!(f["result"]["timestamp"].is_u64(), "{f}");
            ok += 1;
        }
    }
    assert!(limited >= 20 && ok >= 8, "ok {ok}, limited {limited}");
    other.silent(Duration::from_millis(100)).await;
    assert_eq!(other.request("ping", json!({"timestamp": 1})).await["result"]["timestamp"], 1);
}

#[tokio::test]
async fn a_persistent_flood_is_closed_1008() {
    let s = Server::start(&["--max-frames-per-sec", "5", "--rate-limit-strikes", "1"]);
    let mut other = s.joined("r", "other", "guest").await;
    let mut flood = s.joined("r", "flood", "guest").await;
    other.push("on-peer-join").await;
    for i in 0..20 {
        if flood.ws.send(Message::Text(json!({"jsonrpc":"2.0","id":i.to_string(),"method":"ping","params":{"timestamp":i}}).to_string().into())).await.is_err() {
            break;
        }
    }
    assert_eq!(flood.closed().await, 1008);
    assert_eq!(other.push("on-peer-leave").await["peer_id"], "flood");
}

#[tokio::test]
async fn connections_per_ip_are_limited() {
    let s = Server::start(&["--max-conns-per-ip", "2"]);
    let _a = s.connect("r", "a", "guest").await;
    let _b = s.connect("r", "b", "guest").await;
    let (e, close) = refused(&s.ws_url("c", &Server::token("r", "u-c", "guest"))).await;
    assert_eq!((e["code"].clone(), close), (json!(429), 1008));
}

#[tokio::test]
async fn rest_end_room_has_no_requester_and_can_lock() {
    let s = Server::start(&[]);
    let m = Server::mgmt();
    let mut a = s.joined("r", "a", "host").await;
    let mut b = s.joined("r", "b", "guest").await;
    a.push("on-peer-join").await;

    let (st, active) = s.http("GET", "/v2/active-rooms/r", Some(&m), None).await;
    assert_eq!(st, 200);
    assert_eq!(active["peers"].as_object().unwrap().len(), 2);
    assert_eq!(active["peers"]["b"]["role"], "guest");

    let (st, body) = s.http("POST", "/v2/active-rooms/r/end-room", Some(&m), Some(&json!({"reason": "maintenance", "lock": true}))).await;
    assert_eq!((st, body), (200, json!({"message": "session is ending"})));
    for c in [&mut a, &mut b] {
        assert_eq!(c.push("on-peer-leave-request").await, json!({"reason": "maintenance", "room_end": true}));
        c.expect_close(1000).await;
    }
    let (st, e) = s.http("GET", "/v2/active-rooms/r", Some(&m), None).await;
    assert_eq!((st, e["code"].clone()), (404, json!(404)));
    let (st, _) = s.http("POST", "/v2/active-rooms/r/end-room", Some(&m), None).await;
    assert_eq!(st, 404, "nothing to end");

    let mut c = s.connect("r", "c", "host").await;
    assert_eq!(c.error_code("join", json!({"name": "c"})).await, 423);
    let (st, _) = s.http("POST", "/v2/rooms/r", Some(&m), Some(&json!({"enabled": true}))).await;
    assert_eq!(st, 200);
    c.join("c").await;
    // And the REST API can lock an idle room too.
    let (st, _) = s.http("POST", "/v2/rooms/idle", Some(&m), Some(&json!({"enabled": false}))).await;
    assert_eq!(st, 200);
    let mut d = s.connect("idle", "d", "host").await;
    assert_eq!(d.error_code("join", json!({"name": "d"})).await, 423);
}

#[tokio::test]
async fn rest_remove_peers_by_id_and_by_role() {
    let s = Server::start(&[]);
    let m = Server::mgmt();
    let mut h = s.joined("r", "h", "host").await;
    let mut g1 = s.joined("r", "g1", "guest").await;
    let mut g2 = s.joined("r", "g2", "guest").await;
    let mut g3 = s.joined("r", "g3", "guest").await;
    for _ in 0..3 {
        h.push("on-peer-join").await;
    }

    let (st, body) = s.http("POST", "/v2/active-rooms/r/remove-peers", Some(&m), Some(&json!({"peer_id": "g1", "reason": "bye"}))).await;
    assert_eq!((st, body), (200, json!({"message": "peer remove request submitted"})));
    assert_eq!(g1.push("on-peer-join").await["peer_id"], "g2");
    assert_eq!(g1.push("on-peer-join").await["peer_id"], "g3");
    assert_eq!(g1.push("on-peer-leave-request").await, json!({"reason": "bye", "room_end": false}));
    g1.expect_close(1000).await;
    assert_eq!(h.push("on-peer-leave").await["peer_id"], "g1");

    let (st, _) = s.http("POST", "/v2/active-rooms/r/remove-peers", Some(&m), Some(&json!({"role": "guest", "reason": "guests out"}))).await;
    assert_eq!(st, 200);
    for g in [&mut g2, &mut g3] {
        assert_eq!(g.closed().await, 1000);
    }
    let mut left: Vec<String> = vec![h.push("on-peer-leave").await["peer_id"].as_str().unwrap().into(), h.push("on-peer-leave").await["peer_id"].as_str().unwrap().into()];
    left.sort();
    assert_eq!(left, ["g2", "g3"]);

    let (st, e) = s.http("POST", "/v2/active-rooms/r/remove-peers", Some(&m), Some(&json!({"peer_id": "ghost"}))).await;
    assert_eq!((st, e["code"].clone()), (404, json!(404)));
    let (st, _) = s.http("POST", "/v2/active-rooms/r/remove-peers", Some(&m), Some(&json!({}))).await;
    assert_eq!(st, 400);
    let (st, e) = s.http("POST", "/v2/active-rooms/r/remove-peers", Some(&m), Some(&json!("nope"))).await;
    assert_eq!((st, e["code"].clone()), (400, json!(400)));
}

#[tokio::test]
async fn rest_needs_a_management_token() {
    let s = Server::start(&[]);
    let app = Server::token("r", "u", "host");
    for bearer in [None, Some(app.as_str()), Some("garbage")] {
        for (method, path) in [
            ("GET", "/v2/active-rooms/r"),
            ("POST", "/v2/active-rooms/r/end-room"),
            ("POST", "/v2/active-rooms/r/remove-peers"),
            ("POST", "/v2/rooms/r"),
            ("POST", "/v2/room-codes/room/r"),
        ] {
            let (st, e) = s.http(method, path, bearer, Some(&json!({}))).await;
            assert_eq!((st, e["code"].clone()), (401, json!(401)), "{method} {path} {bearer:?}: {e}");
            assert!(e["message"].is_string());
        }
    }
}

#[tokio::test]
async fn room_codes_exchange_for_tokens() {
    let s = Server::start(&[]);
    let (st, codes) = s.http("POST", "/v2/room-codes/room/team", Some(&Server::mgmt()), None).await;
    assert_eq!(st, 200);
    let codes = codes["data"].as_array().unwrap().clone();
    assert_eq!(codes.len(), 2, "one per role");
    let guest = codes.iter().find(|c| c["role"] == "guest").unwrap();
    assert_eq!((guest["room_id"].clone(), guest["enabled"].clone()), (json!("team"), json!(true)));
    assert!(guest["created_at"].as_u64().unwrap() > 0);

    let (st, tok) = s.http("POST", "/v2/token", None, Some(&json!({"code": guest["code"], "user_id": "zed"}))).await;
    assert_eq!(st, 200);
    let token = tok["token"].as_str().unwrap();
    let claims = Server::keys().verify(token, TokenType::App).unwrap();
    assert_eq!((claims.room_id.as_str(), claims.user_id.as_str(), claims.role.as_str(), claims.version), ("team", "zed", "guest", 2));
    let mut c = Client::connect(&s.ws_url("z", token)).await;
    assert_eq!(c.join("z").await["peers"]["z"]["info"]["user_id"], "zed");

    // Without user_id a user id is made up.
    let (_, tok) = s.http("POST", "/v2/token", None, Some(&json!({"code": guest["code"]}))).await;
    assert!(!Server::keys().verify(tok["token"].as_str().unwrap(), TokenType::App).unwrap().user_id.is_empty());

    let (st, e) = s.http("POST", "/v2/token", None, Some(&json!({"code": "nope-nope-nope-nope"}))).await;
    assert_eq!((st, e["code"].clone()), (404, json!(404)));
    let (st, _) = s.http("POST", "/v2/token", None, Some(&json!({}))).await;
    assert_eq!(st, 400);

    // A disabled code is refused like an unknown one.
    let host_code = codes.iter().find(|c| c["role"] == "host").unwrap()["code"].as_str().unwrap().to_owned();
    let (st, _) = s.http("POST", &format!("/v2/room-codes/code/{host_code}"), Some(&Server::mgmt()), Some(&json!({"enabled": false}))).await;
    assert_eq!(st, 200);
    let (st, _) = s.http("POST", "/v2/token", None, Some(&json!({"code": host_code}))).await;
    assert_eq!(st, 404);
    // Asking again issues new codes; the old ones stop working.
    let (_, again) = s.http("POST", "/v2/room-codes/room/team", Some(&Server::mgmt()), None).await;
    assert_ne!(again["data"].as_array().unwrap(), &codes);
    let (st, _) = s.http("POST", "/v2/token", None, Some(&json!({"code": guest["code"]}))).await;
    assert_eq!(st, 404);
}

#[tokio::test]
async fn cors_is_open_on_v2() {
    let s = Server::start(&[]);
    let (st, head, _) = s
        .http_raw(
            "OPTIONS",
            "/v2/token",
            None,
            None,
            &[("Origin", "http://example.test"), ("Access-Control-Request-Method", "POST"), ("Access-Control-Request-Headers", "authorization, content-type")],
        )
        .await;
    let head = head.to_ascii_lowercase();
    assert!(st == 200 || st == 204, "{head}");
    assert!(head.contains("access-control-allow-origin: http://example.test") || head.contains("access-control-allow-origin: *"), "{head}");
    assert!(head.contains("access-control-allow-headers") && head.contains("authorization"), "{head}");
    let (_, head, _) = s.http_raw("POST", "/v2/token", None, Some("{}".into()), &[("Origin", "http://example.test")]).await;
    assert!(head.to_ascii_lowercase().contains("access-control-allow-origin"), "{head}");
}

#[tokio::test]
async fn serves_www_and_pkg_with_wasm_mime() {
    let files = tempfile::tempdir().unwrap();
    let www = files.path().join("www");
    let pkg = files.path().join("pkg");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::create_dir_all(&pkg).unwrap();
    std::fs::write(www.join("index.html"), "<h1>demo</h1>").unwrap();
    std::fs::write(pkg.join("sdk_bg.wasm"), b"\0asm\x01\0\0\0").unwrap();
    let s = Server::start(&["--www", www.to_str().unwrap(), "--pkg", pkg.to_str().unwrap()]);
    let (st, _, body) = s.http_raw("GET", "/", None, None, &[]).await;
    assert_eq!((st, body.as_str()), (200, "<h1>demo</h1>"));
    let (st, head, _) = s.http_raw("GET", "/pkg/sdk_bg.wasm", None, None, &[]).await;
    assert_eq!(st, 200);
    assert!(head.to_ascii_lowercase().contains("content-type: application/wasm"), "{head}");
    let (st, _, _) = s.http_raw("GET", "/nope.html", None, None, &[]).await;
    assert_eq!(st, 404);
}

#[tokio::test]
async fn a_binary_flood_counts_against_the_frame_rate() {
    let s = Server::start(&["--max-frames-per-sec", "5", "--rate-limit-strikes", "1"]);
    let mut other = s.joined("r", "other", "guest").await;
    let mut flood = s.joined("r", "flood", "guest").await;
    other.push("on-peer-join").await;
    for _ in 0..20 {
        if flood.ws.send(Message::Binary(vec![0u8; 16].into())).await.is_err() {
            break;
        }
    }
    assert_eq!(flood.closed().await, 1008);
    assert_eq!(other.push("on-peer-leave").await["peer_id"], "flood");
}
