//! Browser tests of the SDK: real `HmsClient`s in one page against the real room server
//! (and a tiny mock server for timeouts and dropped sockets). Run by
//! `scripts/browser-tests.sh`, which starts both and passes their URLs and a management
//! token at compile time (`HMS_TEST_HTTP`, `HMS_TEST_WS`, `HMS_TEST_MGMT`, `HMS_TEST_MOCK_WS`, `HMS_TEST_RELAY`).
#![cfg(target_arch = "wasm32")]

use hms_client::HmsClient;
use js_sys::{Array, Function, Object, Promise, Reflect};
use std::cell::RefCell;
use std::rc::Rc;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

/// A compile-time setting from scripts/browser-tests.sh.
fn need(value: Option<&'static str>, name: &str) -> &'static str {
    value.unwrap_or_else(|| panic!("{name} is unset: run the browser tests with scripts/browser-tests.sh"))
}

fn http() -> &'static str {
    need(option_env!("HMS_TEST_HTTP"), "HMS_TEST_HTTP")
}
fn ws() -> &'static str {
    need(option_env!("HMS_TEST_WS"), "HMS_TEST_WS")
}
fn mgmt() -> &'static str {
    need(option_env!("HMS_TEST_MGMT"), "HMS_TEST_MGMT")
}
fn control(action: &str) -> String {
    format!("{}/{action}", need(option_env!("HMS_TEST_CONTROL"), "HMS_TEST_CONTROL"))
}
fn restart_http() -> &'static str {
    need(option_env!("HMS_TEST_RESTART_HTTP"), "HMS_TEST_RESTART_HTTP")
}
fn restart_ws() -> &'static str {
    need(option_env!("HMS_TEST_RESTART_WS"), "HMS_TEST_RESTART_WS")
}
fn node_a() -> (&'static str, &'static str) {
    (need(option_env!("HMS_TEST_NODE_A_HTTP"), "HMS_TEST_NODE_A_HTTP"), need(option_env!("HMS_TEST_NODE_A_WS"), "HMS_TEST_NODE_A_WS"))
}
fn node_b() -> (&'static str, &'static str) {
    (need(option_env!("HMS_TEST_NODE_B_HTTP"), "HMS_TEST_NODE_B_HTTP"), need(option_env!("HMS_TEST_NODE_B_WS"), "HMS_TEST_NODE_B_WS"))
}
fn mock_ws(mode: &str) -> String {
    format!("{}/{mode}", need(option_env!("HMS_TEST_MOCK_WS"), "HMS_TEST_MOCK_WS"))
}
/// The mock's HTTP base URL (same port as its WebSocket modes).
fn mock_http() -> String {
    need(option_env!("HMS_TEST_MOCK_WS"), "HMS_TEST_MOCK_WS").replacen("ws://", "http://", 1)
}

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_name = setTimeout)]
    fn set_timeout(f: &Function, ms: i32) -> JsValue;
    #[wasm_bindgen(js_name = fetch)]
    fn fetch(url: &str, init: &JsValue) -> Promise;
}

fn obj(pairs: &[(&str, JsValue)]) -> JsValue {
    let o = Object::new();
    for (k, v) in pairs {
        Reflect::set(&o, &JsValue::from_str(k), v).unwrap();
    }
    o.into()
}

fn prop(v: &JsValue, key: &str) -> JsValue {
    Reflect::get(v, &JsValue::from_str(key)).unwrap()
}

fn prop_str(v: &JsValue, key: &str) -> String {
    prop(v, key).as_string().unwrap_or_else(|| panic!("{key} is not a string in {v:?}"))
}

async fn sleep(ms: i32) {
    let p = Promise::new(&mut |resolve, _| {
        set_timeout(&resolve, ms);
    });
    JsFuture::from(p).await.unwrap();
}

/// Polls `cond` every 10 ms until it holds; panics after `timeout_ms`.
async fn wait_until(what: &str, timeout_ms: f64, cond: impl Fn() -> bool) {
    let deadline = js_sys::Date::now() + timeout_ms;
    while !cond() {
        assert!(js_sys::Date::now() < deadline, "timed out waiting for {what}");
        sleep(10).await;
    }
}

fn uid(prefix: &str) -> String {
    format!("{prefix}-{}", (js_sys::Math::random() * 1e12) as u64)
}

/// A REST call to the main server with the management token; returns (status, JSON body).
async fn rest(method: &str, path: &str, body: Option<JsValue>) -> (u16, JsValue) {
    rest_at(http(), method, path, body).await
}

/// A REST call to the server at `base` (`http://127.0.0.1:PORT`) with the management
/// token, through the mock server's relay: the management API answers no CORS (it is for
/// back ends), and this page comes from another origin.
async fn rest_at(base: &str, method: &str, path: &str, body: Option<JsValue>) -> (u16, JsValue) {
    let headers = obj(&[
        ("Authorization", format!("Bearer {}", mgmt()).into()),
        ("Content-Type", "application/json".into()),
    ]);
    let mut init = vec![("method", JsValue::from_str(method)), ("headers", headers)];
    if let Some(b) = body {
        init.push(("body", js_sys::JSON::stringify(&b).unwrap().into()));
    }
    let relay = need(option_env!("HMS_TEST_RELAY"), "HMS_TEST_RELAY");
    let url = format!("{relay}/{}{path}", base.trim_start_matches("http://"));
    let resp = JsFuture::from(fetch(&url, &obj(&init))).await.unwrap();
    let status = prop(&resp, "status").as_f64().unwrap() as u16;
    let text_fn: Function = prop(&resp, "text").unchecked_into();
    let text = JsFuture::from(text_fn.call0(&resp).unwrap().unchecked_into::<Promise>()).await.unwrap();
    let json = js_sys::JSON::parse(&text.as_string().unwrap()).unwrap_or(JsValue::NULL);
    (status, json)
}

/// Creates room codes for `room` over REST and returns the one for `role`.
async fn room_code(base: &str, room: &str, role: &str) -> String {
    let (status, body) = rest_at(base, "POST", &format!("/v2/room-codes/room/{room}"), None).await;
    assert_eq!(status, 200, "room codes: {body:?}");
    let codes: Array = prop(&body, "data").unchecked_into();
    codes
        .iter()
        .find(|c| prop_str(c, "role") == role)
        .map(|c| prop_str(&c, "code"))
        .unwrap_or_else(|| panic!("no {role} code in {body:?}"))
}

fn client_for(endpoint: &str, timeout_ms: Option<f64>) -> HmsClient {
    let mut opts = vec![("endpoint", JsValue::from_str(endpoint))];
    if let Some(t) = timeout_ms {
        opts.push(("requestTimeoutMs", t.into()));
    }
    HmsClient::new(obj(&opts)).unwrap()
}

/// An auth token the real way: a room code over REST, then `getAuthTokenByRoomCode`
/// (whose HTTP endpoint defaults to the client's WebSocket endpoint's origin).
async fn token(client: &HmsClient, room: &str, role: &str, user: &str) -> String {
    token_at(http(), client, room, role, user).await
}

/// A new room code of `room` and `role`, exchanged for `user` with `getAuthTokenByRoomCode`.
async fn exchange(base: &str, client: &HmsClient, room: &str, role: &str, user: &str) -> Result<JsValue, JsValue> {
    let code = room_code(base, room, role).await;
    JsFuture::from(client.get_auth_token_by_room_code(code, Some(obj(&[("userId", user.into())]).unchecked_into()))).await
}

/// The error of a room code exchange that must fail.
async fn token_error(client: &HmsClient, room: &str, role: &str, user: &str) -> JsValue {
    exchange(http(), client, room, role, user).await.expect_err("the exchange must fail")
}

async fn token_at(base: &str, client: &HmsClient, room: &str, role: &str, user: &str) -> String {
    exchange(base, client, room, role, user).await.expect("token by room code").as_string().unwrap()
}

async fn join_as(room: &str, role: &str, name: &str) -> HmsClient {
    let client = client_for(ws(), None);
    let tok = token(&client, room, role, &name.to_lowercase()).await;
    join(&client, &tok, name).await.unwrap_or_else(|e| panic!("{name} could not join: {e:?}"));
    client
}

async fn join(client: &HmsClient, tok: &str, name: &str) -> Result<JsValue, JsValue> {
    let cfg = obj(&[("authToken", tok.into()), ("userName", name.into()), ("metadata", "{}".into())]);
    JsFuture::from(client.join(cfg)).await
}

/// Records every value a callback receives. Owns its closure (dropped with the recorder).
struct Recorder {
    seen: Rc<RefCell<Vec<JsValue>>>,
    closure: Closure<dyn FnMut(JsValue)>,
}

impl Recorder {
    fn new() -> Self {
        let seen = Rc::new(RefCell::new(Vec::new()));
        let s = seen.clone();
        let closure = Closure::<dyn FnMut(JsValue)>::new(move |v| s.borrow_mut().push(v));
        Self { seen, closure }
    }
    fn f(&self) -> Function {
        self.closure.as_ref().unchecked_ref::<Function>().clone()
    }
    fn len(&self) -> usize {
        self.seen.borrow().len()
    }
    fn get(&self, i: usize) -> JsValue {
        self.seen.borrow()[i].clone()
    }
}

/// Checks that `e` is an HmsError (and an Error) with `code` and `name`.
fn assert_hms_error(e: &JsValue, code: i32, name: &str) {
    assert!(e.is_instance_of::<js_sys::Error>(), "not an Error: {e:?}");
    // `e instanceof HmsError`: its prototype is the exported class's prototype (the
    // class object itself is not reachable from Rust, its prototype's constructor is).
    let proto = Object::get_prototype_of(e);
    assert_eq!(prop_str(&prop(&proto, "constructor"), "name"), "HmsError");
    assert_eq!(prop(e, "code").as_f64(), Some(code as f64), "code of {e:?}");
    assert_eq!(prop_str(e, "name"), name);
    assert!(!prop_str(e, "message").is_empty());
    assert!(prop(e, "stack").is_string(), "a real Error has a stack");
}

fn settled_now(p: &Promise) -> Promise {
    // Promise.race([p, Promise.resolve("PENDING")]) takes p's outcome only if p was
    // already settled when the call returned: anything that needed a network round
    // trip loses the race.
    let pending: Promise = Promise::resolve(&JsValue::from_str("PENDING"));
    Promise::race(&Array::of2(p, &pending))
}

fn peer_names(c: &HmsClient) -> Vec<String> {
    c.get_peers().iter().map(|p| prop_str(&p, "name")).collect()
}

fn perm(peer: &JsValue, name: &str) -> bool {
    prop(&prop(&prop(peer, "role"), "permissions"), name).as_bool().unwrap()
}

/// Active peers of `room` as the server sees them (REST), or 0 when no session.
async fn server_peer_count(room: &str) -> usize {
    let (status, body) = rest("GET", &format!("/v2/active-rooms/{room}"), None).await;
    if status == 404 {
        return 0;
    }
    assert_eq!(status, 200, "{body:?}");
    let peers: Object = prop(&body, "peers").unchecked_into();
    Object::keys(&peers).length() as usize
}

#[wasm_bindgen_test]
async fn join_gives_local_peer_peer_lists_and_join_events() {
    let room = uid("join");
    let host = join_as(&room, "host", "Hostess").await;
    let joins = Recorder::new();
    let _off = host.on_peer_join(joins.f());
    // Defined as soon as join resolves.
    let me = host.get_local_peer();
    assert_eq!(prop_str(&me, "name"), "Hostess");
    assert_eq!(prop_str(&me, "userId"), "hostess");
    assert_eq!(prop_str(&me, "metadata"), "{}");
    assert!(prop(&me, "isLocal").as_bool().unwrap());
    assert_eq!(prop_str(&prop(&me, "role"), "name"), "host");
    assert!(perm(&me, "endRoom") && perm(&me, "removeOthers"));
    let r = host.get_room();
    assert_eq!(prop_str(&r, "id"), room);
    assert!(prop(&r, "sessionId").is_string());

    let guest = join_as(&room, "guest", "Guido").await;
    let g = guest.get_local_peer();
    assert!(!perm(&g, "endRoom") && !perm(&g, "removeOthers"));
    assert_eq!(peer_names(&guest), vec!["Guido", "Hostess"], "local peer first");
    wait_until("host sees the guest join", 5000.0, || joins.len() == 1).await;
    let joined = joins.get(0);
    assert_eq!(prop_str(&joined, "name"), "Guido");
    assert!(!prop(&joined, "isLocal").as_bool().unwrap());
    assert_eq!(prop_str(&joined, "peerId"), prop_str(&g, "peerId"));
    assert_eq!(peer_names(&host), vec!["Hostess", "Guido"]);
    assert_eq!(server_peer_count(&room).await, 2);

    // A second join on a joined client is refused.
    let again = join(&host, "whatever", "x").await.unwrap_err();
    assert_hms_error(&again, 5001, "AlreadyJoined");

    // leave: the other side sees the peer go.
    let leaves = Recorder::new();
    let _off2 = host.on_peer_leave(leaves.f());
    JsFuture::from(guest.leave()).await.unwrap();
    assert!(guest.get_local_peer().is_undefined());
    assert_eq!(guest.get_peers().length(), 0);
    wait_until("host sees the guest leave", 5000.0, || leaves.len() == 1).await;
    assert_eq!(prop_str(&leaves.get(0), "name"), "Guido");
    assert_eq!(peer_names(&host), vec!["Hostess"]);
}

#[wasm_bindgen_test]
async fn host_ends_room_guest_gets_reason_and_remover() {
    let room = uid("end");
    let host = join_as(&room, "host", "Hostess").await;
    let guest = join_as(&room, "guest", "Guido").await;
    let host_removed = Recorder::new();
    let guest_removed = Recorder::new();
    let guest_errors = Recorder::new();
    let _a = host.on_removed_from_room(host_removed.f());
    let _b = guest.on_removed_from_room(guest_removed.f());
    let _c = guest.on_error(guest_errors.f());

    JsFuture::from(host.end_room(false, "meeting over".into())).await.expect("endRoom resolves");
    // The caller has left when the promise resolves.
    assert!(host.get_local_peer().is_undefined());
    assert!(host.get_room().is_undefined());

    wait_until("guest's removed callback", 5000.0, || guest_removed.len() == 1).await;
    let ev = guest_removed.get(0);
    assert_eq!(prop_str(&ev, "reason"), "meeting over");
    assert_eq!(prop(&ev, "roomWasEnded").as_bool(), Some(true));
    assert_eq!(prop_str(&prop(&ev, "peerWhoRemoved"), "name"), "Hostess");
    assert!(guest.get_local_peer().is_undefined());
    // The server's close that follows is neither an error nor a second callback.
    assert_eq!(server_peer_count(&room).await, 0);
    sleep(200).await;
    assert_eq!(guest_removed.len(), 1, "exactly once");
    assert_eq!(guest_errors.len(), 0);
    assert_eq!(host_removed.len(), 0, "the caller gets no removed callback");
    // Requests after the end: not connected.
    let e = JsFuture::from(guest.end_room(false, "x".into())).await.unwrap_err();
    assert_hms_error(&e, 6000, "NotConnected");
}

#[wasm_bindgen_test]
async fn locked_room_refuses_rejoin_with_423() {
    let room = uid("lock");
    let host = join_as(&room, "host", "Hostess").await;
    let late = client_for(ws(), None);
    // A token got before the lock: its join is refused.
    let tok = token(&late, &room, "guest", "late").await;
    JsFuture::from(host.end_room(true, "locked".into())).await.unwrap();
    let e = join(&late, &tok, "Late").await.unwrap_err();
    assert_hms_error(&e, 423, "RoomLocked");
    assert!(late.get_local_peer().is_undefined());
    // A room code of a locked room is refused at the exchange already.
    assert_hms_error(&token_error(&late, &room, "guest", "later").await, 423, "RoomLocked");
    // Unlock over REST: joining works again.
    let (status, _) = rest("POST", &format!("/v2/rooms/{room}"), Some(obj(&[("enabled", true.into())]))).await;
    assert_eq!(status, 200);
    join(&late, &tok, "Late").await.expect("join after unlock");
    assert_eq!(prop_str(&late.get_local_peer(), "name"), "Late");
}

#[wasm_bindgen_test]
async fn guest_end_room_is_refused_locally_before_any_frame() {
    let room = uid("deny");
    let host = join_as(&room, "host", "Hostess").await;
    let guest = join_as(&room, "guest", "Guido").await;
    let host_removed = Recorder::new();
    let _a = host.on_removed_from_room(host_removed.f());

    let p = guest.end_room(true, "nope".into());
    // Already rejected when endRoom returned: no round trip happened.
    let e = JsFuture::from(settled_now(&p)).await.unwrap_err();
    assert_hms_error(&e, 403, "PermissionDenied");
    assert!(prop_str(&e, "message").contains("endRoom"));
    let e = JsFuture::from(settled_now(&guest.remove_peer(prop_str(&host.get_local_peer(), "peerId"), "x".into()))).await.unwrap_err();
    assert_hms_error(&e, 403, "PermissionDenied");
    // Everyone stays joined; the server still has both.
    assert_eq!(server_peer_count(&room).await, 2);
    sleep(100).await;
    assert_eq!(host_removed.len(), 0);
    assert_eq!(peer_names(&host), vec!["Hostess", "Guido"]);
    assert_eq!(prop_str(&guest.get_local_peer(), "name"), "Guido");
}

#[wasm_bindgen_test]
async fn remove_peer_removes_only_the_target() {
    let room = uid("remove");
    let host = join_as(&room, "host", "Hostess").await;
    let guest = join_as(&room, "guest", "Guido").await;
    let other = join_as(&room, "guest", "Olga").await;
    let guest_removed = Recorder::new();
    let other_removed = Recorder::new();
    let host_leaves = Recorder::new();
    let _a = guest.on_removed_from_room(guest_removed.f());
    let _b = other.on_removed_from_room(other_removed.f());
    let _c = host.on_peer_leave(host_leaves.f());

    // Unknown peer: the server's 404 passes through.
    let e = JsFuture::from(host.remove_peer("no-such-peer".into(), "x".into())).await.unwrap_err();
    assert_hms_error(&e, 404, "NotFound");

    let target = prop_str(&guest.get_local_peer(), "peerId");
    JsFuture::from(host.remove_peer(target, "be nice".into())).await.expect("removePeer resolves");
    wait_until("guest removed", 5000.0, || guest_removed.len() == 1).await;
    let ev = guest_removed.get(0);
    assert_eq!(prop_str(&ev, "reason"), "be nice");
    assert_eq!(prop(&ev, "roomWasEnded").as_bool(), Some(false));
    assert_eq!(prop_str(&prop(&ev, "peerWhoRemoved"), "name"), "Hostess");
    assert!(guest.get_local_peer().is_undefined());
    wait_until("host sees the guest leave", 5000.0, || host_leaves.len() == 1).await;
    assert_eq!(prop_str(&host_leaves.get(0), "name"), "Guido");
    wait_until("Olga's list updated", 5000.0, || peer_names(&other) == vec!["Olga", "Hostess"]).await;
    assert_eq!(other_removed.len(), 0);
    assert_eq!(server_peer_count(&room).await, 2);
}

#[wasm_bindgen_test]
async fn rest_end_room_has_no_remover() {
    let room = uid("rest");
    let guest = join_as(&room, "guest", "Guido").await;
    let removed = Recorder::new();
    let _a = guest.on_removed_from_room(removed.f());
    let (status, body) = rest("POST", &format!("/v2/active-rooms/{room}/end-room"), Some(obj(&[("reason", "backend says".into())]))).await;
    assert_eq!(status, 200, "{body:?}");
    wait_until("removed by the back end", 5000.0, || removed.len() == 1).await;
    let ev = removed.get(0);
    assert!(prop(&ev, "peerWhoRemoved").is_null());
    assert_eq!(prop(&ev, "roomWasEnded").as_bool(), Some(true));
    assert_eq!(prop_str(&ev, "reason"), "backend says");
    assert!(guest.get_local_peer().is_undefined());
}

#[wasm_bindgen_test]
async fn bad_room_code_and_bad_token_are_hms_errors() {
    let c = client_for(ws(), None);
    let e = JsFuture::from(c.get_auth_token_by_room_code("nope-nope-nope".into(), None)).await.unwrap_err();
    assert_hms_error(&e, 404, "NotFound");
    let e = join(&c, "not-a-jwt", "Eve").await.unwrap_err();
    assert_hms_error(&e, 401, "InvalidToken");
    assert!(c.get_local_peer().is_undefined());
    // Nothing listens on port 9: the socket never opens.
    let dead = client_for("ws://127.0.0.1:9/ws", None);
    let e = join(&dead, "t", "x").await.unwrap_err();
    assert_hms_error(&e, 1000, "FailedToConnect");
    let e = JsFuture::from(dead.get_auth_token_by_room_code("abc".into(), Some(obj(&[("endpoint", "http://127.0.0.1:9".into())]).unchecked_into()))).await.unwrap_err();
    assert_hms_error(&e, 2003, "EndpointUnreachable");
    assert_eq!(prop_str(&e, "action"), "GET_TOKEN");
    // Bad options are thrown synchronously as HmsError too.
    let e = HmsClient::new(obj(&[])).err().unwrap();
    assert_hms_error(&e, 6013, "ValidationFailed");
}

/// The token exchange (gloo-net's `Request`) when the endpoint answers something other
/// than the real server's JSON, or when the URL is one `fetch` refuses outright.
#[wasm_bindgen_test]
async fn token_exchange_reports_what_went_wrong() {
    let c = client_for(ws(), None);
    let with_endpoint = |endpoint: String| Some(obj(&[("endpoint", endpoint.into())]).unchecked_into());
    // A plain-text 503: the status is the code.
    let e = JsFuture::from(c.get_auth_token_by_room_code("abc".into(), with_endpoint(format!("{}/token-fault/503", mock_http())))).await.unwrap_err();
    assert_hms_error(&e, 503, "ServerError");
    assert_eq!(prop_str(&e, "action"), "GET_TOKEN");
    // A 200 without a token: the answer could not be read.
    let e = JsFuture::from(c.get_auth_token_by_room_code("abc".into(), with_endpoint(format!("{}/token-fault/200", mock_http())))).await.unwrap_err();
    assert_hms_error(&e, 6004, "JsonParsingFailed");
    // Credentials in the URL: `new Request` throws, the promise rejects with 2003.
    let e = JsFuture::from(c.get_auth_token_by_room_code("abc".into(), with_endpoint("http://user:pw@127.0.0.1:9".into()))).await.unwrap_err();
    assert_hms_error(&e, 2003, "EndpointUnreachable");
    // The client is still usable: a real exchange works afterwards.
    assert!(!token(&c, &uid("tokfault"), "guest", "after").await.is_empty());
}

#[wasm_bindgen_test]
async fn throwing_callback_does_not_break_the_client_and_unsubscribe_works() {
    let room = uid("throw");
    let host = join_as(&room, "host", "Hostess").await;
    let thrower = Closure::<dyn FnMut(JsValue)>::new(|_| {
        wasm_bindgen::throw_str("app bug in a callback");
    });
    let _t = host.on_peer_join(thrower.as_ref().unchecked_ref::<Function>().clone());
    let joins = Recorder::new();
    let unsubscribed = Recorder::new();
    let _j = host.on_peer_join(joins.f());
    let off = host.on_peer_join(unsubscribed.f());
    off.call0(&JsValue::UNDEFINED).unwrap();
    let _guest = join_as(&room, "guest", "Guido").await;
    wait_until("the second callback still runs", 5000.0, || joins.len() == 1).await;
    assert_eq!(unsubscribed.len(), 0, "unsubscribed callback not called");
    // The client still works after the throw.
    assert_eq!(peer_names(&host), vec!["Hostess", "Guido"]);
    JsFuture::from(host.end_room(false, "bye".into())).await.expect("still usable");
}

#[wasm_bindgen_test]
async fn free_releases_the_socket() {
    let room = uid("free");
    let host = join_as(&room, "host", "Hostess").await;
    let guest = join_as(&room, "guest", "Guido").await;
    let leaves = Recorder::new();
    let _a = host.on_peer_leave(leaves.f());
    drop(guest); // what `guest.free()` does in JS
    wait_until("host sees the freed guest leave", 5000.0, || leaves.len() == 1).await;
    assert_eq!(server_peer_count(&room).await, 1);
}

#[wasm_bindgen_test]
async fn request_timeout_rejects_with_9001() {
    let c = client_for(&mock_ws("silent"), Some(300.0));
    join(&c, "t", "Tim").await.expect("the mock accepts the join");
    let started = js_sys::Date::now();
    let e = JsFuture::from(c.remove_peer("someone".into(), "x".into())).await.unwrap_err();
    let took = js_sys::Date::now() - started;
    assert_hms_error(&e, 9001, "RequestTimeout");
    assert_eq!(prop_str(&e, "action"), "REMOVE_PEER");
    assert_eq!(prop(&e, "isTerminal").as_bool(), Some(false));
    assert!((250.0..3000.0).contains(&took), "timed out after {took} ms");
    // A timed-out request does not end the session.
    assert_eq!(prop_str(&c.get_local_peer(), "name"), "Tim");
}

#[wasm_bindgen_test]
async fn dropped_socket_without_reconnect_rejects_pending_with_1003() {
    let c = HmsClient::new(obj(&[("endpoint", mock_ws("drop").into()), ("reconnectBudgetMs", 0.into())])).unwrap();
    let errors = Recorder::new();
    let reconnecting = Recorder::new();
    let _a = c.on_error(errors.f());
    let _b = c.on_reconnecting(reconnecting.f());
    join(&c, "t", "Dora").await.expect("the mock accepts the join");
    let e = JsFuture::from(c.remove_peer("someone".into(), "x".into())).await.unwrap_err();
    assert_hms_error(&e, 1003, "ConnectionLost");
    wait_until("onError", 5000.0, || errors.len() == 1).await;
    assert_hms_error(&errors.get(0), 1003, "ConnectionLost");
    assert_eq!(reconnecting.len(), 0, "reconnecting is off");
    assert!(c.get_local_peer().is_undefined());
    let e = JsFuture::from(c.end_room(false, "x".into())).await.unwrap_err();
    assert_hms_error(&e, 6000, "NotConnected");
}

#[wasm_bindgen_test]
async fn dropped_socket_rejects_pending_with_1003_then_reconnects() {
    let c = client_for(&mock_ws("drop"), Some(5000.0));
    let errors = Recorder::new();
    let reconnecting = Recorder::new();
    let reconnected = Recorder::new();
    let _a = c.on_error(errors.f());
    let _b = c.on_reconnecting(reconnecting.f());
    let _c = c.on_reconnected(reconnected.f());
    join(&c, "t", "Dora").await.expect("the mock accepts the join");
    let id = prop_str(&c.get_local_peer(), "peerId");
    let e = JsFuture::from(c.remove_peer("someone".into(), "x".into())).await.unwrap_err();
    assert_hms_error(&e, 1003, "ConnectionLost");
    wait_until("onReconnecting", 5000.0, || reconnecting.len() == 1).await;
    assert_hms_error(&reconnecting.get(0), 1003, "ConnectionLost");
    wait_until("onReconnected", 5000.0, || reconnected.len() == 1).await;
    assert_eq!(prop_str(&c.get_local_peer(), "peerId"), id, "same peer id after the reconnect");
    assert_eq!(errors.len(), 0);
    JsFuture::from(c.leave()).await.unwrap();
}

#[wasm_bindgen_test]
async fn silent_server_is_detected_by_the_heartbeat() {
    let c = HmsClient::new(obj(&[
        ("endpoint", mock_ws("mute").into()),
        ("heartbeatIntervalMs", 100.into()),
        ("heartbeatTimeoutMs", 600.into()),
    ]))
    .unwrap();
    let reconnecting = Recorder::new();
    let reconnected = Recorder::new();
    let _a = c.on_reconnecting(reconnecting.f());
    let _b = c.on_reconnected(reconnected.f());
    join(&c, "t", "Hal").await.expect("the mock accepts the join");
    let joined_at = js_sys::Date::now();
    let id = prop_str(&c.get_local_peer(), "peerId");
    wait_until("the heartbeat notices the silence", 5000.0, || reconnecting.len() == 1).await;
    let took = js_sys::Date::now() - joined_at;
    assert!(took >= 550.0, "not before the heartbeat timeout: {took} ms");
    assert_hms_error(&reconnecting.get(0), 1003, "ConnectionLost");
    wait_until("back after the reconnect", 5000.0, || reconnected.len() == 1).await;
    assert_eq!(prop_str(&c.get_local_peer(), "peerId"), id);
    JsFuture::from(c.leave()).await.unwrap();
}

async fn control_call(action: &str) {
    let resp = JsFuture::from(fetch(&control(action), &obj(&[]))).await.unwrap();
    assert_eq!(prop(&resp, "status").as_f64(), Some(200.0), "control {action}");
}

async fn join_restartable(room: &str, role: &str, name: &str, budget_ms: Option<f64>) -> HmsClient {
    let mut opts = vec![("endpoint", JsValue::from_str(restart_ws()))];
    if let Some(b) = budget_ms {
        opts.push(("reconnectBudgetMs", b.into()));
    }
    let client = HmsClient::new(obj(&opts)).unwrap();
    let tok = token_at(restart_http(), &client, room, role, &name.to_lowercase()).await;
    join(&client, &tok, name).await.unwrap_or_else(|e| panic!("{name} could not join: {e:?}"));
    client
}

/// One test for every scenario that kills the restartable server, so they never overlap.
#[wasm_bindgen_test]
async fn server_killed_restarted_or_gone_for_good() {
    control_call("start").await;

    // 1. Killed and restarted mid-session: reconnecting, reconnected, same ids, right list.
    let room = uid("restart");
    let host = join_restartable(&room, "host", "Hostess", None).await;
    let guest = join_restartable(&room, "guest", "Guido", None).await;
    let (host_id, guest_id) = (prop_str(&host.get_local_peer(), "peerId"), prop_str(&guest.get_local_peer(), "peerId"));
    let recs: Vec<(Recorder, Recorder, Recorder)> = (0..2).map(|_| (Recorder::new(), Recorder::new(), Recorder::new())).collect();
    let mut offs = Vec::new();
    for (c, (reconnecting, reconnected, errors)) in [&host, &guest].into_iter().zip(recs.iter()) {
        offs.push(c.on_reconnecting(reconnecting.f()));
        offs.push(c.on_reconnected(reconnected.f()));
        offs.push(c.on_error(errors.f()));
    }
    control_call("stop").await;
    wait_until("both see the connection drop", 5000.0, || recs.iter().all(|r| r.0.len() == 1)).await;
    assert_hms_error(&recs[0].0.get(0), 1003, "ConnectionLost");
    // While reconnecting the room stays visible, and requests wait.
    assert_eq!(prop_str(&host.get_local_peer(), "peerId"), host_id);
    control_call("start").await;
    wait_until("both reconnected", 15000.0, || recs.iter().all(|r| r.1.len() == 1)).await;
    assert_eq!(prop_str(&host.get_local_peer(), "peerId"), host_id, "same peer id");
    assert_eq!(prop_str(&guest.get_local_peer(), "peerId"), guest_id, "same peer id");
    wait_until("peer lists restored", 5000.0, || peer_names(&host) == vec!["Hostess", "Guido"] && peer_names(&guest) == vec!["Guido", "Hostess"]).await;
    assert!(recs.iter().all(|r| r.2.len() == 0), "no terminal error");
    let (status, body) = rest_at(restart_http(), "GET", &format!("/v2/active-rooms/{room}"), None).await;
    assert_eq!(status, 200);
    let peers: Object = prop(&body, "peers").unchecked_into();
    assert_eq!(Object::keys(&peers).length(), 2);
    // The session works again: the host removes the guest.
    let removed = Recorder::new();
    let _r = guest.on_removed_from_room(removed.f());
    JsFuture::from(host.remove_peer(guest_id.clone(), "after restart".into())).await.expect("removePeer after reconnect");
    wait_until("guest removed after reconnect", 5000.0, || removed.len() == 1).await;

    // 2. A removed client whose socket is then dropped does not reconnect.
    control_call("stop").await;
    wait_until("host reconnecting again", 5000.0, || recs[0].0.len() == 2).await;
    sleep(300).await;
    assert_eq!(recs[1].0.len(), 1, "the removed guest never tries to reconnect");
    assert_eq!(recs[1].2.len(), 0);
    assert!(guest.get_local_peer().is_undefined());
    control_call("start").await;
    wait_until("host back", 15000.0, || recs[0].1.len() == 2).await;
    JsFuture::from(host.leave()).await.unwrap();

    // 3. Server gone for good: a terminal error within the budget, and a clean left state.
    let room = uid("gone");
    let c = join_restartable(&room, "host", "Gina", Some(1500.0)).await;
    let errors = Recorder::new();
    let reconnecting = Recorder::new();
    let _a = c.on_error(errors.f());
    let _b = c.on_reconnecting(reconnecting.f());
    control_call("stop").await;
    let stopped = js_sys::Date::now();
    wait_until("the terminal error", 8000.0, || errors.len() == 1).await;
    let took = js_sys::Date::now() - stopped;
    assert!(took < 4000.0, "gave up after {took} ms with a 1500 ms budget");
    assert_eq!(reconnecting.len(), 1);
    assert_hms_error(&errors.get(0), 1003, "ConnectionLost");
    assert_eq!(prop(&errors.get(0), "isTerminal").as_bool(), Some(true));
    assert_eq!(prop_str(&errors.get(0), "action"), "RECONNECT_SIGNAL");
    assert!(c.get_local_peer().is_undefined());
    assert_eq!(c.get_peers().length(), 0);
    let e = JsFuture::from(c.end_room(false, "x".into())).await.unwrap_err();
    assert_hms_error(&e, 6000, "NotConnected");
    control_call("start").await;
    sleep(300).await;
    assert_eq!(reconnecting.len(), 1, "nothing more after giving up");
    drop(offs);
}

/// Fires a synthetic `offline`/`online` event on the global object (what the browser
/// does when the network goes away or comes back).
fn dispatch_global(event: &str) {
    let global = js_sys::global();
    let ctor: Function = prop(&global, "Event").unchecked_into();
    let ev = Reflect::construct(&ctor, &Array::of1(&event.into())).unwrap();
    let dispatch: Function = prop(&global, "dispatchEvent").unchecked_into();
    dispatch.call1(&global, &ev).unwrap();
}

#[wasm_bindgen_test]
async fn offline_event_reconnects_at_once_into_the_held_place() {
    let room = uid("offline");
    let host = join_as(&room, "host", "Hostess").await;
    let guest = join_as(&room, "guest", "Guido").await;
    let (host_id, guest_id) = (prop_str(&host.get_local_peer(), "peerId"), prop_str(&guest.get_local_peer(), "peerId"));
    // The host's on-peer-join for the guest travels on another socket than the guest's
    // join answer: let it arrive before recording.
    wait_until("host sees the guest", 5000.0, || peer_names(&host) == vec!["Hostess", "Guido"]).await;
    let recs: Vec<[Recorder; 5]> = (0..2).map(|_| [Recorder::new(), Recorder::new(), Recorder::new(), Recorder::new(), Recorder::new()]).collect();
    let mut offs = Vec::new();
    for (c, [reconnecting, reconnected, joins, leaves, errors]) in [&host, &guest].into_iter().zip(recs.iter()) {
        offs.push(c.on_reconnecting(reconnecting.f()));
        offs.push(c.on_reconnected(reconnected.f()));
        offs.push(c.on_peer_join(joins.f()));
        offs.push(c.on_peer_leave(leaves.f()));
        offs.push(c.on_error(errors.f()));
    }
    dispatch_global("offline");
    // Detected at once, not after the 12 s heartbeat timeout.
    assert!(recs.iter().all(|r| r[0].len() == 1), "offline starts reconnecting synchronously");
    dispatch_global("online");
    wait_until("both back", 10000.0, || recs.iter().all(|r| r[1].len() == 1)).await;
    assert_eq!(prop_str(&host.get_local_peer(), "peerId"), host_id);
    assert_eq!(prop_str(&guest.get_local_peer(), "peerId"), guest_id);
    assert_eq!(peer_names(&host), vec!["Hostess", "Guido"]);
    assert_eq!(peer_names(&guest), vec!["Guido", "Hostess"]);
    // The server held both places for the reconnect window: nobody saw anyone leave.
    sleep(200).await;
    for (who, r) in ["host", "guest"].iter().zip(&recs) {
        let names = |rec: &Recorder| -> Vec<String> { (0..rec.len()).map(|i| format!("{:?}", js_sys::JSON::stringify(&rec.get(i)).unwrap())).collect() };
        assert_eq!((r[2].len(), r[3].len(), r[4].len()), (0, 0, 0), "{who}: no join/leave noise, no error: joins {:?} leaves {:?}", names(&r[2]), names(&r[3]));
    }
    assert_eq!(server_peer_count(&room).await, 2);
    // And the session is fully usable.
    JsFuture::from(host.end_room(false, "done".into())).await.expect("endRoom after reconnect");
    drop(offs);
}

// ---- the API through the generated JS glue (tests/app.js), as an app uses it ----

#[wasm_bindgen(module = "/tests/app.js")]
extern "C" {
    #[wasm_bindgen(js_name = apiFromJs, catch)]
    async fn api_from_js(client_class: &JsValue, error_class: &JsValue, cfg: &JsValue) -> Result<JsValue, JsValue>;
    #[wasm_bindgen(js_name = callsTwice, catch)]
    async fn calls_twice(client_class: &JsValue, cfg: &JsValue) -> Result<JsValue, JsValue>;
    #[wasm_bindgen(js_name = endRoomAnswerLost, catch)]
    async fn end_room_answer_lost(client_class: &JsValue, cfg: &JsValue) -> Result<JsValue, JsValue>;
}

/// The exported JS classes `HmsClient` and `HmsError`, as the glue defines them.
fn js_classes() -> (JsValue, JsValue) {
    let client: JsValue = client_for(ws(), None).into();
    let client_class = prop(&Object::get_prototype_of(&client), "constructor");
    let free: Function = prop(&client, "free").unchecked_into();
    free.call0(&client).unwrap();
    let error = HmsClient::new(obj(&[])).err().unwrap();
    let error_class = prop(&Object::get_prototype_of(&error), "constructor");
    (client_class, error_class)
}

fn proxy_ws() -> String {
    format!("{}/ws", need(option_env!("HMS_TEST_PROXY_WS"), "HMS_TEST_PROXY_WS"))
}

/// Auth tokens for `(role, user)` pairs in `room`, the real way (room codes, then
/// `getAuthTokenByRoomCode`).
async fn tokens(room: &str, who: &[(&str, &str)]) -> Vec<String> {
    let helper = client_for(ws(), None);
    let mut out = Vec::new();
    for (role, user) in who {
        out.push(token(&helper, room, role, user).await);
    }
    out
}

/// Fails the test with the scenario's own message.
fn scenario_ok(name: &str, r: Result<JsValue, JsValue>) -> JsValue {
    r.unwrap_or_else(|e| panic!("{name}: {}", prop(&e, "message").as_string().unwrap_or_else(|| format!("{e:?}"))))
}

#[wasm_bindgen_test]
async fn js_app_sees_errors_shapes_and_connection_states() {
    let room = uid("js-api");
    let [host, guest] = <[String; 2]>::try_from(tokens(&room, &[("host", "hostess"), ("guest", "guido")]).await).unwrap();
    let (client_class, error_class) = js_classes();
    let cfg = obj(&[("endpoint", ws().into()), ("hostToken", host.into()), ("guestToken", guest.into())]);
    scenario_ok("apiFromJs", api_from_js(&client_class, &error_class, &cfg).await);
}

#[wasm_bindgen_test]
async fn js_app_double_click_end_room_and_remove_peer_send_once() {
    let room = uid("js-twice");
    let [host, guest, other] = <[String; 3]>::try_from(tokens(&room, &[("host", "hostess"), ("guest", "guido"), ("guest", "olga")]).await).unwrap();
    let (client_class, _) = js_classes();
    let cfg = obj(&[("endpoint", ws().into()), ("hostToken", host.into()), ("guestToken", guest.into()), ("otherToken", other.into())]);
    scenario_ok("callsTwice", calls_twice(&client_class, &cfg).await);
    assert_eq!(server_peer_count(&room).await, 0, "the room ended");
}

/// The fault proxy (tests/mock-server/mock.js) in front of the real server cuts the
/// host's socket when it sees the server's answer to end-room: after the durable write,
/// before the client hears of it.
#[wasm_bindgen_test]
async fn end_room_answer_lost_with_the_socket_still_resolves() {
    let room = uid("js-lost");
    let [host, guest] = <[String; 2]>::try_from(tokens(&room, &[("host", "hostess"), ("guest", "guido")]).await).unwrap();
    let (client_class, _) = js_classes();
    let cfg = obj(&[("proxyEndpoint", proxy_ws().into()), ("endpoint", ws().into()), ("hostToken", host.into()), ("guestToken", guest.into())]);
    scenario_ok("endRoomAnswerLost", end_room_answer_lost(&client_class, &cfg).await);
    assert_eq!(server_peer_count(&room).await, 0, "the room ended, and stays ended");
    // Locked: a room code is refused, so the end the client learnt of is the real one.
    let late = client_for(ws(), None);
    assert_hms_error(&token_error(&late, &room, "guest", "late").await, 423, "RoomLocked");
}

/// The paged peer list through the SDK against the real server: every peer exactly once
/// across pages in join order, `hasNext()` false at the end, `getTotal()` and
/// `getPeerCount()` the room's count; an iterator of a client that is not joined
/// rejects with 6000.
#[wasm_bindgen_test]
async fn peer_list_iterator_pages_through_everyone_once() {
    let room = uid("pages");
    let host = join_as(&room, "host", "Host").await;
    let mut guests = Vec::new();
    for i in 0..4 {
        guests.push(join_as(&room, "guest", &format!("G{i}")).await);
    }
    wait_until("the host knows everyone", 5000.0, || host.get_peer_count() == 5.0).await;
    let it = host.get_peer_list_iterator(obj(&[("limit", JsValue::from(2))]));
    assert!(it.has_next(), "true before the first page");
    let mut names = Vec::new();
    let mut pages = 0;
    while it.has_next() {
        let page: Array = JsFuture::from(it.next()).await.expect("a page").unchecked_into();
        assert!(page.length() <= 2, "at most `limit` a page");
        names.extend(page.iter().map(|p| prop_str(&p, "name")));
        pages += 1;
        assert!(pages <= 5, "the iteration ends");
    }
    assert_eq!(pages, 3);
    assert_eq!(names, ["Host", "G0", "G1", "G2", "G3"], "join order, each peer once");
    assert_eq!(it.get_total(), 5.0);
    // The default page size (10) takes everyone in one page.
    let all = host.get_peer_list_iterator(JsValue::UNDEFINED);
    let page: Array = JsFuture::from(all.next()).await.unwrap().unchecked_into();
    assert_eq!((page.length(), all.has_next()), (5, false));

    let idle = client_for(ws(), None);
    let err = JsFuture::from(idle.get_peer_list_iterator(JsValue::UNDEFINED).next()).await.unwrap_err();
    assert_hms_error(&err, 6000, "NotConnected");
    assert_eq!(idle.get_peer_count(), 0.0);
    drop(guests);
}

/// Two nodes of a cluster (docs/SCALING.md): the host joins through node A, the guest
/// through node B; the host's endRoom reaches the guest on the other node with the
/// right fields, and the lock holds on both nodes.
#[wasm_bindgen_test]
async fn two_nodes_host_ends_room_guest_on_the_other_node_is_removed() {
    let room = uid("nodes");
    let ((a_http, a_ws), (b_http, b_ws)) = (node_a(), node_b());
    let host = client_for(a_ws, None);
    let tok = token_at(a_http, &host, &room, "host", "hostess").await;
    join(&host, &tok, "Hostess").await.expect("host joins through node A");
    let guest = client_for(b_ws, None);
    let tok = token_at(b_http, &guest, &room, "guest", "guido").await;
    join(&guest, &tok, "Guido").await.expect("guest joins through node B");
    assert_eq!(peer_names(&guest), vec!["Guido", "Hostess"], "one room across the nodes");
    wait_until("host sees the guest from the other node", 5000.0, || peer_names(&host).len() == 2).await;
    let removed = Recorder::new();
    let errors = Recorder::new();
    let _a = guest.on_removed_from_room(removed.f());
    let _b = guest.on_error(errors.f());

    JsFuture::from(host.end_room(true, "cluster meeting over".into())).await.expect("endRoom resolves");
    wait_until("guest's removed callback on node B", 5000.0, || removed.len() == 1).await;
    let ev = removed.get(0);
    assert_eq!(prop_str(&ev, "reason"), "cluster meeting over");
    assert_eq!(prop(&ev, "roomWasEnded").as_bool(), Some(true));
    assert_eq!(prop_str(&prop(&ev, "peerWhoRemoved"), "name"), "Hostess");
    assert!(guest.get_local_peer().is_undefined());
    sleep(200).await;
    assert_eq!((removed.len(), errors.len()), (1, 0), "exactly once, no error");
    // Locked on both nodes: a room code is refused at the exchange already (issue 10).
    for (http, ws) in [(a_http, a_ws), (b_http, b_ws)] {
        let late = client_for(ws, None);
        let err = exchange(http, &late, &room, "guest", "late").await.expect_err("a locked room's code is refused");
        assert_hms_error(&err, 423, "RoomLocked");
    }
}
