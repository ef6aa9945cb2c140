//! Native tests of the state machine, fed with frames as the server writes them.

use crate::config::Config;
use crate::error::ErrorName;
use crate::model::ConnectionState;
use crate::session::{Out, Session};
use hms_protocol::{ClientCall, JoinParams, RpcError, ServerPush};
use serde_json::json;

type S = Session<u32>;

fn push(v: serde_json::Value) -> ServerPush {
    serde_json::from_value(v).unwrap()
}

fn policy(role: &str) -> ServerPush {
    push(json!({"method":"on-policy-change","params":{"name":role,"template_id":"default","known_roles":{
        "host":{"name":"host","priority":10,"permissions":{"endRoom":true,"removeOthers":true}},
        "guest":{"name":"guest","priority":1,"permissions":{}}}}}))
}

fn peer_json(id: &str, name: &str, role: &str, at: u64) -> serde_json::Value {
    json!({"peer_id":id,"info":{"name":name,"data":"m","user_id":format!("u-{id}"),"type":"regular"},"role":role,"joined_at":at,"tracks":{},"groups":[]})
}

fn peer_list(peers: &[(&str, &str, &str)]) -> ServerPush {
    let mut map = serde_json::Map::new();
    for (i, (id, name, role)) in peers.iter().enumerate() {
        map.insert(id.to_string(), peer_json(id, name, role, i as u64));
    }
    push(json!({"method":"peer-list","params":{"peers":map,"room":{"room_id":"r1","name":"Room","session_id":"s1"}}}))
}

fn joined(me: &str, role: &str, others: &[(&str, &str, &str)]) -> S {
    joined_with(Config { request_timeout: 1000.0, ..Config::default() }, me, role, others)
}

fn joined_with(cfg: Config, me: &str, role: &str, others: &[(&str, &str, &str)]) -> S {
    let mut s = S::with_config(cfg);
    s.begin_join(me.into(), "j".into(), JoinParams { name: "Me".into(), data: String::new() }, 0.0, 1).unwrap();
    let outs = s.on_open(0.0);
    assert!(matches!(&fx(&outs)[..], [Out::Send { id: Some(id), call: ClientCall::Join(p) }] if id == "j" && p.name == "Me"));
    assert!(s.on_answer("j", Ok(())).is_empty(), "join must wait for policy and peer list");
    assert!(s.on_push(policy(role)).is_empty());
    let mut all = vec![(me, "Me", role)];
    all.extend_from_slice(others);
    let outs = s.on_push(peer_list(&all));
    assert!(matches!(&fx(&outs)[..], [Out::Resolve(1)]), "{outs:?}");
    assert_eq!(s.connection_state(), ConnectionState::Connected);
    s
}

/// The effects that matter to a test: without connection-state reports and releases.
fn fx(outs: &[Out<u32>]) -> Vec<&Out<u32>> {
    outs.iter().filter(|o| !matches!(o, Out::State(_) | Out::Release(_))).collect()
}

/// The connection states reported.
fn states(outs: &[Out<u32>]) -> Vec<ConnectionState> {
    outs.iter().filter_map(|o| if let Out::State(s) = o { Some(*s) } else { None }).collect()
}

fn rejected(outs: &[Out<u32>]) -> Vec<(u32, i32)> {
    outs.iter().filter_map(|o| if let Out::Reject(t, e) = o { Some((*t, e.code)) } else { None }).collect()
}

#[test]
fn join_resolves_after_answer_policy_and_peer_list_in_any_order() {
    let mut s = S::new(1000.0);
    s.begin_join("me".into(), "j".into(), JoinParams { name: "Me".into(), data: String::new() }, 0.0, 7).unwrap();
    assert!(s.local_peer().is_none());
    s.on_open(0.0);
    assert!(s.on_push(peer_list(&[("me", "Me", "host")])).is_empty());
    assert!(s.on_push(policy("host")).is_empty());
    assert!(s.local_peer().is_none(), "not joined before the answer");
    let outs = s.on_answer("j", Ok(()));
    assert!(matches!(&fx(&outs)[..], [Out::Resolve(7)]));
    let me = s.local_peer().unwrap();
    assert!(me.is_local && me.role.permissions.end_room && me.name == "Me");
    assert_eq!(s.room().unwrap().session_id.as_deref(), Some("s1"));
}

#[test]
fn second_join_is_a_conflict() {
    let mut s = joined("me", "host", &[]);
    let r = s.begin_join("x".into(), "j2".into(), JoinParams { name: "x".into(), data: String::new() }, 0.0, 2);
    assert_eq!(r.unwrap_err().1.code, ErrorName::AlreadyJoined.code());
}

#[test]
fn join_error_answer_rejects_with_server_code() {
    let mut s = S::new(1000.0);
    s.begin_join("me".into(), "j".into(), JoinParams { name: "Me".into(), data: String::new() }, 0.0, 1).unwrap();
    s.on_open(0.0);
    let outs = s.on_answer("j", Err(RpcError::new(423, "room is locked")));
    assert_eq!(rejected(&outs), vec![(1, 423)]);
    assert!(matches!(fx(&outs)[0], Out::Close));
    assert_eq!(s.connection_state(), ConnectionState::Failed);
}

#[test]
fn on_error_before_join_rejects_join_without_on_error_callback() {
    let mut s = S::new(1000.0);
    s.begin_join("me".into(), "j".into(), JoinParams { name: "Me".into(), data: String::new() }, 0.0, 1).unwrap();
    s.on_open(0.0);
    let outs = s.on_push(push(json!({"method":"on-error","params":{"code":401,"message":"bad token"}})));
    assert_eq!(rejected(&outs), vec![(1, 401)]);
    assert!(!outs.iter().any(|o| matches!(o, Out::Error(_))));
    assert!(s.on_close(1008, 0.0).is_empty(), "the close after on-error is already handled");
}

#[test]
fn socket_that_never_opens_fails_to_connect() {
    let mut s = S::new(1000.0);
    s.begin_join("me".into(), "j".into(), JoinParams { name: "Me".into(), data: String::new() }, 0.0, 1).unwrap();
    assert_eq!(rejected(&s.on_close(1006, 0.0)), vec![(1, ErrorName::FailedToConnect.code())]);
}

#[test]
fn peer_join_and_leave_events_and_peer_order() {
    let mut s = joined("me", "host", &[("a", "Ann", "guest")]);
    let outs = s.on_push(push(json!({"method":"on-peer-join","params":peer_json("b","Bob","guest",9)})));
    match &fx(&outs)[..] {
        [Out::PeerJoin(p)] => assert!(p.name == "Bob" && !p.is_local && !p.role.permissions.end_room && p.user_id == "u-b"),
        other => panic!("{other:?}"),
    }
    let names: Vec<String> = s.peers().into_iter().map(|p| p.name).collect();
    assert_eq!(names, vec!["Me", "Ann", "Bob"]);
    // The same peer announced again is an update, not a second join.
    assert!(s.on_push(push(json!({"method":"on-peer-join","params":peer_json("b","Bobby","guest",9)}))).is_empty());
    assert_eq!(s.peers()[2].name, "Bobby");
    let outs = s.on_push(push(json!({"method":"on-peer-leave","params":peer_json("a","Ann","guest",0)})));
    assert!(matches!(&fx(&outs)[..], [Out::PeerLeave(p)] if p.peer_id == "a"));
    // An unknown peer leaving is not news.
    assert!(s.on_push(push(json!({"method":"on-peer-leave","params":peer_json("zz","Z","guest",0)}))).is_empty());
    assert_eq!(s.peers().len(), 2);
}

#[test]
fn guest_end_room_is_refused_locally_with_403_and_sends_nothing() {
    let mut s = joined("me", "guest", &[("h", "Host", "host")]);
    let outs = s.end_room("e".into(), true, "bye".into(), 0.0, 5);
    assert_eq!(rejected(&outs), vec![(5, 403)]);
    assert_eq!(fx(&outs).len(), 1, "no frame may be sent: {outs:?}");
    let outs = s.remove_peer("r".into(), "h".into(), "bye".into(), 0.0, 6);
    assert_eq!(rejected(&outs), vec![(6, 403)]);
    assert_eq!(fx(&outs).len(), 1);
    assert_eq!(s.connection_state(), ConnectionState::Connected, "a refused call leaves the client joined");
    assert_eq!(s.next_deadline(), Some(3000.0), "only the heartbeat is scheduled, no request");
}

#[test]
fn requests_before_join_are_not_connected() {
    let mut s = S::new(1000.0);
    assert_eq!(rejected(&s.end_room("e".into(), false, "x".into(), 0.0, 1)), vec![(1, 6000)]);
    assert_eq!(rejected(&s.remove_peer("e".into(), "p".into(), "x".into(), 0.0, 2)), vec![(2, 6000)]);
}

#[test]
fn host_end_room_resolves_after_answer_then_client_is_left() {
    let mut s = joined("me", "host", &[("g", "Guest", "guest")]);
    let outs = s.end_room("e".into(), true, "done".into(), 0.0, 5);
    assert!(matches!(&fx(&outs)[..], [Out::Send { id: Some(id), call: ClientCall::EndRoom(p) }] if id == "e" && p.lock && p.reason == "done"));
    assert!(s.local_peer().is_some());
    let outs = s.on_answer("e", Ok(()));
    // Resolved first; the server closes the socket itself (no extra close from us); the
    // room is freed last.
    assert_eq!(kinds(&outs), vec!["resolve", "detach"], "{outs:?}");
    assert_eq!(states(&outs), vec![ConnectionState::Disconnected]);
    assert!(matches!(outs.last(), Some(Out::Release(r)) if r.peers.len() == 2));
    assert!(!outs.iter().any(|o| matches!(o, Out::Removed(_) | Out::Error(_))));
    assert!(s.local_peer().is_none());
    assert!(s.peers().is_empty());
    assert!(s.on_close(1000, 0.0).is_empty(), "the server's close after end-room is not an error");
}

#[test]
fn server_refusal_of_end_room_keeps_client_joined() {
    let mut s = joined("me", "host", &[]);
    s.end_room("e".into(), false, "x".into(), 0.0, 5);
    let outs = s.on_answer("e", Err(RpcError::new(403, "nope")));
    assert_eq!(rejected(&outs), vec![(5, 403)]);
    assert_eq!(s.connection_state(), ConnectionState::Connected);
}

#[test]
fn room_end_push_fires_removed_once_with_requester_then_cleans_up() {
    let mut s = joined("me", "guest", &[("h", "Hostess", "host")]);
    s.remove_peer("r".into(), "h".into(), "x".into(), 0.0, 9); // refused locally (guest)
    let outs = s.on_push(push(json!({"method":"on-peer-leave-request","params":{"requested_by":"h","reason":"meeting over","room_end":true}})));
    let removed: Vec<_> = outs.iter().filter_map(|o| if let Out::Removed(ev) = o { Some(ev) } else { None }).collect();
    assert_eq!(removed.len(), 1);
    assert_eq!(removed[0].reason, "meeting over");
    assert!(removed[0].room_was_ended);
    assert_eq!(removed[0].peer_who_removed.as_ref().unwrap().name, "Hostess");
    // The callback comes before the teardown; the server closes the socket itself.
    assert_eq!(kinds(&outs)[..2], ["removed", "detach"]);
    assert!(matches!(outs.last(), Some(Out::Release(r)) if r.peers.len() == 2), "the room is freed after the callback");
    assert_eq!(s.connection_state(), ConnectionState::Disconnected);
    // Nothing more comes out: no second callback, no error for the close that follows.
    assert!(s.on_push(push(json!({"method":"on-peer-leave-request","params":{"reason":"again","room_end":true}}))).is_empty());
    assert!(s.on_close(1000, 0.0).is_empty());
}

#[test]
fn removal_rejects_pending_requests_with_a_clear_error() {
    let mut s = joined("me", "host", &[("h2", "Other host", "host"), ("g", "G", "guest")]);
    s.remove_peer("r".into(), "g".into(), "x".into(), 0.0, 3);
    let outs = s.on_push(push(json!({"method":"on-peer-leave-request","params":{"requested_by":"h2","reason":"kicked","room_end":false}})));
    assert!(matches!(fx(&outs)[0], Out::Removed(ref ev) if !ev.room_was_ended && ev.reason == "kicked"));
    let rej: Vec<_> = outs.iter().filter_map(|o| if let Out::Reject(t, e) = o { Some((*t, e.code, e.message.clone())) } else { None }).collect();
    assert_eq!(rej.len(), 1);
    assert_eq!(rej[0].0, 3);
    assert_eq!(rej[0].1, ErrorName::NotConnected.code());
    assert!(rej[0].2.contains("kicked"));
}

#[test]
fn rest_end_room_has_no_requester() {
    let mut s = joined("me", "guest", &[]);
    let outs = s.on_push(push(json!({"method":"on-peer-leave-request","params":{"reason":"backend","room_end":true}})));
    assert!(matches!(&fx(&outs)[0], Out::Removed(ev) if ev.peer_who_removed.is_none() && ev.room_was_ended));
}

#[test]
fn own_end_notice_settles_end_room_as_success_not_as_removal() {
    let mut s = joined("me", "host", &[]);
    s.end_room("e".into(), false, "x".into(), 0.0, 5);
    let outs = s.on_push(push(json!({"method":"on-peer-leave-request","params":{"requested_by":"me","reason":"x","room_end":true}})));
    assert_eq!(kinds(&outs), vec!["resolve", "detach"]);
    assert!(s.on_answer("e", Ok(())).is_empty(), "settled once");
    // Without an endRoom waiting, a notice naming us is a removal like any other.
    let mut s = joined("me", "host", &[]);
    let outs = s.on_push(push(json!({"method":"on-peer-leave-request","params":{"requested_by":"me","reason":"x","room_end":true}})));
    assert_eq!(kinds(&outs), vec!["removed", "detach"]);
}

#[test]
fn requests_time_out_with_6008() {
    let mut s = joined("me", "host", &[("g", "G", "guest")]);
    s.remove_peer("r".into(), "g".into(), "x".into(), 100.0, 3);
    assert_eq!(s.next_deadline(), Some(1100.0));
    assert!(s.on_tick(1099.0).is_empty());
    assert_eq!(rejected(&s.on_tick(1100.0)), vec![(3, ErrorName::RequestTimeout.code())]);
    assert_eq!(s.connection_state(), ConnectionState::Connected, "a timed-out request does not end the session");
    assert!(s.on_answer("r", Ok(())).is_empty(), "a late answer is ignored");
}

#[test]
fn join_timeout_ends_the_attempt() {
    let mut s = S::new(500.0);
    s.begin_join("me".into(), "j".into(), JoinParams { name: "Me".into(), data: String::new() }, 0.0, 1).unwrap();
    s.on_open(0.0);
    let outs = s.on_tick(500.0);
    assert_eq!(rejected(&outs), vec![(1, ErrorName::RequestTimeout.code())]);
    assert!(outs.iter().any(|o| matches!(o, Out::Close)));
    assert_eq!(s.connection_state(), ConnectionState::Failed);
}

#[test]
fn dropped_socket_without_reconnect_rejects_pending_with_1003_and_reports_error() {
    let mut s = joined_with(Config { reconnect_budget: 0.0, ..Config::default() }, "me", "host", &[("g", "G", "guest")]);
    s.remove_peer("r".into(), "g".into(), "x".into(), 0.0, 3);
    s.end_room("e".into(), false, "x".into(), 0.0, 4);
    let outs = s.on_close(1006, 0.0);
    assert_eq!(rejected(&outs), vec![(3, 1003), (4, 1003)]);
    assert!(matches!(fx(&outs).last().copied(), Some(Out::Error(e)) if e.code == 1003));
    assert!(s.local_peer().is_none());
}

#[test]
fn leave_sends_leave_and_rejects_pending() {
    let mut s = joined("me", "host", &[("g", "G", "guest")]);
    s.remove_peer("r".into(), "g".into(), "x".into(), 0.0, 3);
    let outs = s.leave();
    assert!(matches!(&fx(&outs)[0], Out::Send { id: None, call: ClientCall::Leave(_) }));
    assert!(matches!(fx(&outs)[1], Out::Close));
    assert_eq!(rejected(&outs), vec![(3, 6000)]);
    assert!(s.leave().is_empty(), "leaving twice is a no-op");
}

// ---- heartbeat and reconnect ----

fn kinds(outs: &[Out<u32>]) -> Vec<&'static str> {
    fx(outs)
        .into_iter()
        .map(|o| match o {
            Out::Send { call, .. } => call.method(),
            Out::SendPage { .. } => "page",
            Out::ResolvePage(..) => "resolve-page",
            Out::Resolve(_) => "resolve",
            Out::Reject(..) => "reject",
            Out::PeerJoin(_) => "peer-join",
            Out::PeerLeave(_) => "peer-leave",
            Out::Removed(_) => "removed",
            Out::Error(_) => "error",
            Out::Close => "close",
            Out::Connect => "connect",
            Out::Reconnecting(_) => "reconnecting",
            Out::Reconnected => "reconnected",
            Out::Detach => "detach",
            Out::State(_) => "state",
            Out::Release(_) => "release",
        })
        .collect()
}

fn rejoin_id(outs: &[Out<u32>]) -> String {
    match outs {
        [Out::Send { id: Some(id), call: ClientCall::Join(p) }] => {
            assert_eq!(p.name, "Me", "rejoins with the same name");
            id.clone()
        }
        other => panic!("expected a join, got {other:?}"),
    }
}

#[test]
fn lost_connection_reconnects_as_same_peer_and_restores_peer_list() {
    let mut s = joined("me", "host", &[("a", "Ann", "guest"), ("b", "Bob", "guest")]);
    s.remove_peer("r".into(), "a".into(), "x".into(), 0.0, 3);
    let outs = s.on_close(1006, 100.0);
    assert_eq!(kinds(&outs), vec!["close", "reject", "reconnecting", "connect"]);
    assert_eq!(rejected(&outs), vec![(3, ErrorName::ConnectionLost.code())], "in-flight requests fail clearly");
    assert!(matches!(&fx(&outs)[2], Out::Reconnecting(e) if e.code == ErrorName::ConnectionLost.code()));
    assert_eq!(s.connection_state(), ConnectionState::Reconnecting);
    assert_eq!(s.local_peer().unwrap().peer_id, "me", "the room stays visible while reconnecting");
    // A request made while reconnecting waits for the outcome.
    assert!(s.end_room("e".into(), false, "later".into(), 150.0, 4).is_empty());
    let id = rejoin_id(&s.on_open(200.0));
    s.touch(210.0);
    assert!(s.on_answer(&id, Ok(())).is_empty());
    assert!(s.on_push(policy("host")).is_empty());
    let outs = s.on_push(peer_list(&[("me", "Me", "host"), ("a", "Ann", "guest"), ("c", "Cid", "guest")]));
    assert_eq!(kinds(&outs), vec!["peer-leave", "peer-join", "reconnected", "end-room"]);
    assert!(matches!(&fx(&outs)[0], Out::PeerLeave(p) if p.name == "Bob"));
    assert!(matches!(&fx(&outs)[1], Out::PeerJoin(p) if p.name == "Cid"));
    assert_eq!(s.connection_state(), ConnectionState::Connected);
    assert_eq!(s.local_id(), "me");
    let names: Vec<String> = s.peers().into_iter().map(|p| p.name).collect();
    assert_eq!(names, vec!["Me", "Ann", "Cid"]);
}

#[test]
fn the_join_answers_secret_is_kept_for_reconnects_and_dropped_with_the_session() {
    let mut s = S::new(1000.0);
    s.begin_join("me".into(), "j".into(), JoinParams { name: "Me".into(), data: String::new() }, 0.0, 1).unwrap();
    s.on_open(0.0);
    assert_eq!(s.reconnect_secret(), None);
    s.on_reconnect_secret("5d0c8f4e".into());
    assert_eq!(s.reconnect_secret(), Some("5d0c8f4e"));
    s.on_answer("j", Ok(()));
    s.on_push(policy("host"));
    s.on_push(peer_list(&[("me", "Me", "host")]));
    // The connection drops: the reconnect presents the secret.
    assert_eq!(kinds(&s.on_close(1006, 100.0)), vec!["close", "reconnecting", "connect"]);
    assert_eq!(s.reconnect_secret(), Some("5d0c8f4e"));
    // A rejoin's answer (a restarted server gives a new place) replaces it.
    rejoin_id(&s.on_open(200.0));
    s.on_reconnect_secret("77aa".into());
    assert_eq!(s.reconnect_secret(), Some("77aa"));
    // A new join starts without one.
    s.leave();
    s.begin_join("me2".into(), "j2".into(), JoinParams { name: "Me".into(), data: String::new() }, 400.0, 2).unwrap();
    assert_eq!(s.reconnect_secret(), None);
}

#[test]
fn failed_attempts_back_off_with_jitter_and_give_up_past_the_budget() {
    let cfg = Config { request_timeout: 1000.0, reconnect_budget: 5000.0, ..Config::default() };
    let mut s = joined_with(cfg, "me", "host", &[]);
    s.seed(42);
    assert!(kinds(&s.on_close(1006, 0.0)).ends_with(&["connect"]));
    let mut now = 0.0;
    let mut delays = Vec::new();
    let outs = loop {
        assert_eq!(kinds(&s.on_close(1006, now)), vec!["close"], "a failed attempt is closed and retried later");
        let next = s.next_deadline().unwrap();
        delays.push(next - now);
        now = next;
        let outs = s.on_tick(now);
        if kinds(&outs) != vec!["connect"] {
            break outs;
        }
        assert!(delays.len() < 50, "never gave up: {delays:?}");
    };
    // Backoff: 500 ms doubling, capped at 5 s (here: at the budget's end), each ±30 %.
    assert!((350.0..=650.0).contains(&delays[0]), "{delays:?}");
    assert!((700.0..=1300.0).contains(&delays[1]), "{delays:?}");
    assert!((1400.0..=2600.0).contains(&delays[2]), "{delays:?}");
    assert!(delays.len() >= 3);
    assert_eq!(now, 5000.0, "gives up exactly when the budget is spent");
    assert_eq!(kinds(&outs), vec!["close", "error"]);
    assert!(matches!(fx(&outs).last().copied(), Some(Out::Error(e)) if e.code == ErrorName::ConnectionLost.code() && e.terminal && e.action == crate::error::ErrorAction::ReconnectSignal));
    assert_eq!(s.connection_state(), ConnectionState::Failed);
    assert!(s.local_peer().is_none());
    assert!(s.next_deadline().is_none(), "nothing more scheduled");
}

#[test]
fn requests_while_reconnecting_wait_time_out_or_fail_with_the_terminal_error() {
    let cfg = Config { request_timeout: 1000.0, reconnect_budget: 5000.0, ..Config::default() };
    let mut s = joined_with(cfg, "me", "host", &[("g", "G", "guest")]);
    s.on_close(1006, 0.0);
    assert!(s.remove_peer("r1".into(), "g".into(), "x".into(), 10.0, 1).is_empty(), "queued, not sent");
    s.on_close(1006, 20.0);
    // Its own deadline passes while still reconnecting: 6008, and never sent later.
    let outs = s.on_tick(1010.0);
    assert_eq!(rejected(&outs), vec![(1, ErrorName::RequestTimeout.code())]);
    assert!(s.end_room("e".into(), false, "x".into(), 1100.0, 2).is_empty());
    let t = s.next_deadline().unwrap();
    s.on_tick(t);
    let id = rejoin_id(&s.on_open(t + 1.0));
    s.on_answer(&id, Ok(()));
    s.on_push(policy("host"));
    let outs = s.on_push(peer_list(&[("me", "Me", "host"), ("g", "G", "guest")]));
    assert_eq!(kinds(&outs), vec!["reconnected", "end-room"], "only the live request is sent");
    // A request queued when the budget runs out fails with the terminal error.
    let mut s = joined_with(Config { request_timeout: 60_000.0, reconnect_budget: 2000.0, ..Config::default() }, "me", "host", &[]);
    s.on_close(1006, 0.0);
    s.end_room("e".into(), false, "x".into(), 1.0, 7);
    let outs = s.on_tick(2000.0);
    assert_eq!(rejected(&outs), vec![(7, ErrorName::ConnectionLost.code())]);
}

#[test]
fn an_attempt_that_hangs_is_abandoned_after_the_request_timeout() {
    let mut s = joined_with(Config { request_timeout: 1000.0, ..Config::default() }, "me", "host", &[]);
    s.on_close(1006, 0.0);
    assert_eq!(s.next_deadline(), Some(1000.0));
    let outs = s.on_tick(1000.0);
    assert_eq!(kinds(&outs), vec!["close"]);
    assert_eq!(s.connection_state(), ConnectionState::Reconnecting);
}

#[test]
fn heartbeat_pings_and_silence_means_lost() {
    let mut s = joined("me", "host", &[]);
    assert!(s.on_tick(2999.0).is_empty());
    let outs = s.on_tick(3000.0);
    assert!(matches!(&fx(&outs)[..], [Out::Send { id: Some(_), call: ClientCall::Ping(p) }] if p.timestamp == 3000));
    s.touch(3500.0); // any frame is a sign of life
    assert_eq!(kinds(&s.on_tick(6000.0)), vec!["ping"]);
    assert_eq!(kinds(&s.on_tick(9000.0)), vec!["ping"]);
    assert_eq!(kinds(&s.on_tick(12000.0)), vec!["ping"]);
    assert_eq!(s.connection_state(), ConnectionState::Connected);
    let outs = s.on_tick(15500.0);
    assert_eq!(kinds(&outs), vec!["close", "reconnecting", "connect"]);
    assert_eq!(s.connection_state(), ConnectionState::Reconnecting);
}

#[test]
fn offline_and_online_events_speed_things_up() {
    let mut s = joined("me", "host", &[]);
    assert_eq!(kinds(&s.on_offline(50.0)), vec!["close", "reconnecting", "connect"]);
    s.on_close(1006, 60.0); // the attempt fails while offline
    assert!(s.next_deadline().unwrap() > 300.0);
    assert_eq!(kinds(&s.on_online(70.0)), vec!["connect"], "online retries at once");
    // Offline when not joined: nothing.
    let mut idle = S::new(1000.0);
    assert!(idle.on_offline(0.0).is_empty());
}

#[test]
fn rejoin_conflict_retries_but_other_refusals_are_final() {
    let mut s = joined("me", "host", &[]);
    s.on_close(1006, 0.0);
    let id = rejoin_id(&s.on_open(10.0));
    assert_eq!(kinds(&s.on_answer(&id, Err(RpcError::new(409, "peer id in use")))), vec!["close"]);
    assert_eq!(s.connection_state(), ConnectionState::Reconnecting);
    s.on_tick(s.next_deadline().unwrap());
    let id = rejoin_id(&s.on_open(1000.0));
    let outs = s.on_answer(&id, Err(RpcError::new(423, "room is locked")));
    assert!(matches!(fx(&outs).last().copied(), Some(Out::Error(e)) if e.code == 423 && e.terminal));
    assert_eq!(s.connection_state(), ConnectionState::Failed);
    // on-error at connect (e.g. an expired token) is final too.
    let mut s = joined("me", "host", &[]);
    s.on_close(1006, 0.0);
    s.on_open(10.0);
    let outs = s.on_push(push(json!({"method":"on-error","params":{"code":401,"message":"token expired"}})));
    assert!(matches!(fx(&outs).last().copied(), Some(Out::Error(e)) if e.code == 401));
}

#[test]
fn missed_removal_delivered_on_reconnect_ends_the_session() {
    let mut s = joined("me", "guest", &[("h", "Hostess", "host")]);
    s.on_close(1006, 0.0);
    s.on_open(10.0);
    let outs = s.on_push(push(json!({"method":"on-peer-leave-request","params":{"requested_by":"h","reason":"gone","room_end":true}})));
    assert_eq!(kinds(&outs)[0], "removed");
    assert!(matches!(&fx(&outs)[0], Out::Removed(ev) if ev.peer_who_removed.as_ref().map(|p| p.name.as_str()) == Some("Hostess")));
    assert!(!kinds(&outs).contains(&"reconnected"));
    assert_eq!(s.connection_state(), ConnectionState::Disconnected);
}

#[test]
fn never_reconnects_after_removal_end_room_or_leave() {
    // Removed, then the socket drops.
    let mut s = joined("me", "guest", &[]);
    s.on_push(push(json!({"method":"on-peer-leave-request","params":{"reason":"bye","room_end":false}})));
    assert!(s.on_close(1006, 10.0).is_empty());
    assert!(s.on_tick(100_000.0).is_empty());
    assert!(s.on_online(100_001.0).is_empty());
    assert!(s.next_deadline().is_none());
    // Ended the room ourselves.
    let mut s = joined("me", "host", &[]);
    s.end_room("e".into(), true, "x".into(), 0.0, 1);
    s.on_answer("e", Ok(()));
    assert!(s.on_close(1006, 10.0).is_empty());
    assert!(s.next_deadline().is_none());
    // Left while reconnecting: nothing is sent on the dead socket, nothing more happens.
    let mut s = joined("me", "host", &[]);
    s.on_close(1006, 0.0);
    s.end_room("e".into(), false, "x".into(), 1.0, 2);
    let outs = s.leave();
    assert_eq!(kinds(&outs), vec!["close", "reject"]);
    assert_eq!(rejected(&outs), vec![(2, ErrorName::NotConnected.code())]);
    assert!(s.on_tick(100_000.0).is_empty());
}

// ---- endRoom whose outcome is unknown, one request per call, connection states ----

/// Drops the joined session's socket, reconnects, and completes the rejoin; returns the
/// effects of the completing peer list.
fn drop_and_rejoin(s: &mut S, at: f64) -> Vec<Out<u32>> {
    s.on_close(1006, at);
    let id = rejoin_id(&s.on_open(at + 1.0));
    s.on_answer(&id, Ok(()));
    s.on_push(policy("host"));
    s.on_push(peer_list(&[("me", "Me", "host")]))
}

fn sent_end_room(outs: &[Out<u32>]) -> Option<String> {
    outs.iter().find_map(|o| match o {
        Out::Send { id: Some(id), call: ClientCall::EndRoom(_) } => Some(id.clone()),
        _ => None,
    })
}

#[test]
fn end_room_in_flight_survives_a_drop_and_the_end_notice_naming_us_resolves_it() {
    let mut s = joined("me", "host", &[("g", "G", "guest")]);
    s.end_room("e".into(), true, "bye".into(), 0.0, 5);
    let outs = s.on_close(1006, 10.0);
    assert!(rejected(&outs).is_empty(), "the room may have ended: no failure is reported");
    assert_eq!(kinds(&outs), vec!["close", "reconnecting", "connect"], "a reconnect starts at once");
    s.on_open(20.0);
    // The server stored the end before the drop: our reconnect gets the missed notice.
    let outs = s.on_push(push(json!({"method":"on-peer-leave-request","params":{"requested_by":"me","reason":"bye","room_end":true}})));
    assert_eq!(kinds(&outs), vec!["resolve", "detach"], "resolved as success, no removed callback");
    assert!(matches!(outs[0], Out::Resolve(5)));
    assert_eq!(s.connection_state(), ConnectionState::Disconnected);
}

#[test]
fn end_room_answer_arriving_on_the_new_socket_resolves_it() {
    let mut s = joined("me", "host", &[]);
    s.end_room("e".into(), false, "x".into(), 0.0, 5);
    s.on_close(1006, 10.0);
    s.on_open(20.0);
    // The end was still being stored: the reconnect reclaimed the place and the original
    // answer comes on the new socket.
    let outs = s.on_answer("e", Ok(()));
    assert!(matches!(fx(&outs)[0], Out::Resolve(5)), "{outs:?}");
    assert_eq!(s.connection_state(), ConnectionState::Disconnected);
}

#[test]
fn end_room_is_re_sent_after_a_rejoin_that_tells_nothing_and_a_409_waits_for_the_original() {
    let mut s = joined("me", "host", &[]);
    s.end_room("e".into(), false, "x".into(), 0.0, 5);
    let outs = drop_and_rejoin(&mut s, 10.0);
    assert_eq!(kinds(&outs), vec!["reconnected", "end-room"]);
    let resent = sent_end_room(&outs).unwrap();
    assert_ne!(resent, "e", "a re-send has its own id");
    // The room is already ending (our first send is being stored): wait, don't fail.
    assert!(s.on_answer(&resent, Err(RpcError::new(409, "the room is already ending"))).is_empty());
    let outs = s.on_answer("e", Ok(()));
    assert!(matches!(fx(&outs)[0], Out::Resolve(5)));
    // A re-send that ends the room itself resolves it just the same.
    let mut s = joined("me", "host", &[]);
    s.end_room("e".into(), false, "x".into(), 0.0, 6);
    let resent = sent_end_room(&drop_and_rejoin(&mut s, 10.0)).unwrap();
    assert!(matches!(fx(&s.on_answer(&resent, Ok(())))[0], Out::Resolve(6)));
    // A definite refusal of the re-send (not 409) is what really happened.
    let mut s = joined("me", "host", &[]);
    s.end_room("e".into(), false, "x".into(), 0.0, 7);
    let resent = sent_end_room(&drop_and_rejoin(&mut s, 10.0)).unwrap();
    assert_eq!(rejected(&s.on_answer(&resent, Err(RpcError::new(500, "could not store")))), vec![(7, 500)]);
}

#[test]
fn end_room_timeout_reconnects_to_learn_the_outcome_instead_of_failing() {
    let mut s = joined("me", "host", &[]);
    s.end_room("e".into(), false, "x".into(), 0.0, 5);
    // No answer in time (requestTimeoutMs 1000): reconnect, don't reject.
    let outs = s.on_tick(1000.0);
    assert_eq!(kinds(&outs), vec!["close", "reconnecting", "connect"]);
    assert!(rejected(&outs).is_empty());
    // After END_ROOM_SENDS sends that all went unanswered, it fails with 9001.
    let mut t = 1000.0;
    for _ in 1..crate::session::END_ROOM_SENDS {
        let id = match &s.on_open(t + 1.0)[..] {
            [Out::Send { id: Some(id), .. }] => id.clone(),
            other => panic!("{other:?}"),
        };
        s.on_answer(&id, Ok(()));
        s.on_push(policy("host"));
        assert!(sent_end_room(&s.on_push(peer_list(&[("me", "Me", "host")]))).is_some(), "re-sent");
        t += 2000.0;
        assert_eq!(kinds(&s.on_tick(t)), vec!["close", "reconnecting", "connect"]);
    }
    let id = rejoin_id(&s.on_open(t + 1.0));
    s.on_answer(&id, Ok(()));
    s.on_push(policy("host"));
    let outs = s.on_push(peer_list(&[("me", "Me", "host")]));
    assert_eq!(rejected(&outs), vec![(5, ErrorName::RequestTimeout.code())]);
    assert_eq!(s.connection_state(), ConnectionState::Connected, "the session itself goes on");
}

#[test]
fn end_room_in_flight_when_reconnecting_gives_up_fails_with_the_terminal_error() {
    let cfg = Config { request_timeout: 1000.0, reconnect_budget: 3000.0, ..Config::default() };
    let mut s = joined_with(cfg, "me", "host", &[]);
    s.end_room("e".into(), false, "x".into(), 0.0, 5);
    s.on_close(1006, 0.0);
    let outs = s.on_tick(3000.0);
    let rej: Vec<_> = outs.iter().filter_map(|o| if let Out::Reject(t, e) = o { Some((*t, e.code, e.terminal, e.action)) } else { None }).collect();
    assert_eq!(rej, vec![(5, 1003, true, crate::error::ErrorAction::EndRoom)]);
    let Some(Out::Reject(_, e)) = outs.iter().find(|o| matches!(o, Out::Reject(..))) else { unreachable!() };
    assert!(e.message.contains("may or may not"), "says the outcome is unknown: {}", e.message);
}

#[test]
fn waiting_finds_the_pending_end_room_and_the_removal_per_peer() {
    let mut s = joined("me", "host", &[("a", "A", "guest"), ("b", "B", "guest")]);
    assert!(s.waiting(crate::pending::Kind::EndRoom, None).is_none());
    s.remove_peer("r1".into(), "a".into(), "x".into(), 0.0, 1);
    assert_eq!(s.waiting(crate::pending::Kind::RemovePeer, Some("a")), Some(&1));
    assert_eq!(s.waiting(crate::pending::Kind::RemovePeer, Some("b")), None, "another peer is another request");
    s.end_room("e".into(), false, "x".into(), 0.0, 2);
    assert_eq!(s.waiting(crate::pending::Kind::EndRoom, None), Some(&2));
    s.on_answer("r1", Ok(()));
    assert_eq!(s.waiting(crate::pending::Kind::RemovePeer, Some("a")), None, "settled: a new call sends again");
}

#[test]
fn connection_states_follow_100ms_names() {
    let mut s = S::new(1000.0);
    assert_eq!(s.connection_state(), ConnectionState::Disconnected);
    let outs = s.begin_join("me".into(), "j".into(), JoinParams { name: "Me".into(), data: String::new() }, 0.0, 1).unwrap();
    assert_eq!(states(&outs), vec![ConnectionState::Connecting]);
    s.on_open(0.0);
    s.on_answer("j", Ok(()));
    s.on_push(policy("host"));
    assert_eq!(states(&s.on_push(peer_list(&[("me", "Me", "host")]))), vec![ConnectionState::Connected]);
    assert_eq!(states(&s.on_close(1006, 1.0)), vec![ConnectionState::Reconnecting]);
    let id = rejoin_id(&s.on_open(2.0));
    s.on_answer(&id, Ok(()));
    s.on_push(policy("host"));
    assert_eq!(states(&s.on_push(peer_list(&[("me", "Me", "host")]))), vec![ConnectionState::Connected]);
    assert_eq!(states(&s.leave()), vec![ConnectionState::Disconnecting, ConnectionState::Disconnected]);
    // A session that ends on an error is Failed.
    let mut s = S::new(1000.0);
    s.begin_join("me".into(), "j".into(), JoinParams { name: "Me".into(), data: String::new() }, 0.0, 1).unwrap();
    assert_eq!(states(&s.on_close(1006, 0.0)), vec![ConnectionState::Failed]);
}

// ---- large rooms ----

/// A client joined to a large room of `count` whose first page lists `others`.
fn joined_large(me: &str, others: &[(&str, &str, &str)], count: u64) -> S {
    let mut s = S::new(1000.0);
    s.begin_join(me.into(), "j".into(), JoinParams { name: "Me".into(), data: String::new() }, 0.0, 1).unwrap();
    s.on_open(0.0);
    assert!(s.on_answer("j", Ok(())).is_empty());
    assert!(s.on_push(policy("guest")).is_empty());
    let mut map = serde_json::Map::new();
    map.insert(me.into(), peer_json(me, "Me", "guest", 0));
    for (i, (id, name, role)) in others.iter().enumerate() {
        map.insert(id.to_string(), peer_json(id, name, role, 1 + i as u64));
    }
    let list = push(json!({"method":"peer-list","params":{"peers":map,"room":{"room_id":"r1","name":"Room"},
        "peer_count":count,"large_room_optimization":true}}));
    assert_eq!(kinds(&s.on_push(list)), ["resolve"]);
    s
}

#[test]
fn a_large_room_counts_every_peer_but_knows_only_some() {
    let s = joined_large("me", &[("h", "Host", "host")], 10_000);
    assert_eq!(s.peer_count(), 10_000);
    assert_eq!(s.peers().len(), 2, "the peers this client knows: itself and the first page");
    let small = joined("me", "guest", &[("a", "A", "guest")]);
    assert_eq!(small.peer_count(), 2, "a small room: every peer is known");
    assert_eq!(S::new(1000.0).peer_count(), 0, "not joined");
}

#[test]
fn a_batch_applies_leaves_then_joins_once_each() {
    let mut s = joined_large("me", &[("h", "Host", "host"), ("g", "G", "guest")], 100);
    let batch: hms_protocol::PeerBatch = serde_json::from_value(json!({
        "joined":[peer_json("n", "New", "guest", 5), peer_json("me", "Me", "guest", 0), peer_json("h", "Host", "host", 1)],
        "left":["g", "stranger"], "peer_count": 101})).unwrap();
    let outs = s.on_push(batch);
    // g was known: one leave; a stranger's leave is nothing; the receiver itself and a
    // peer already known are no joins.
    assert_eq!(kinds(&outs), ["peer-leave", "peer-join"]);
    assert!(matches!(fx(&outs)[1], Out::PeerJoin(p) if p.peer_id == "n"));
    assert_eq!(s.peer_count(), 101);
    assert!(s.peers().iter().all(|p| p.peer_id != "g"));
}

#[test]
fn pages_are_requested_answered_remembered_and_failed() {
    use crate::session::Page;
    use hms_protocol::PeerListCall;
    let mut s = joined_large("me", &[], 3);
    let outs = s.peer_page("p1".into(), None, 2, 10.0, 7);
    match &fx(&outs)[..] {
        [Out::SendPage { id, call: PeerListCall::FindPeer(f) }] => assert_eq!((id.as_str(), f.limit), ("p1", Some(2))),
        other => panic!("expected find-peer, got {other:?}"),
    }
    let one: crate::room::Peers = [serde_json::from_value::<hms_protocol::PeerNotification>(peer_json("a", "A", "guest", 1)).unwrap()].into_iter().collect();
    let outs = s.on_page("p1", Page { iterator: "it".into(), total: 3, eof: false, peers: one });
    match &fx(&outs)[..] {
        [Out::ResolvePage(7, p)] => assert_eq!((p.iterator.as_str(), p.total, p.eof, p.peers[0].peer_id.as_str()), ("it", 3, false, "a")),
        other => panic!("expected the page, got {other:?}"),
    }
    assert!(s.peers().iter().any(|p| p.peer_id == "a"), "a paged peer is a peer this client knows");
    let outs = s.peer_page("p2".into(), Some("it".into()), 2, 11.0, 8);
    assert!(matches!(&fx(&outs)[..], [Out::SendPage { call: PeerListCall::PeerIterNext(n), .. }] if n.iterator == "it"));
    let outs = s.on_answer("p2", Err(RpcError::new(404, "unknown or expired iterator: start again with find-peer")));
    assert!(matches!(&fx(&outs)[..], [Out::Reject(8, e)] if e.code == 404 && e.action == crate::error::ErrorAction::PeerList));
    // A page in flight when the connection drops is rejected, not left hanging.
    s.peer_page("p3".into(), Some("it".into()), 2, 12.0, 9);
    let outs = s.on_close(1006, 13.0);
    assert!(fx(&outs).iter().any(|o| matches!(o, Out::Reject(9, _))), "{outs:?}");
    // Not joined: refused locally.
    let mut idle = S::new(1000.0);
    assert!(matches!(&fx(&idle.peer_page("x".into(), None, 10, 0.0, 10))[..], [Out::Reject(10, e)] if e.code == 6000));
}
