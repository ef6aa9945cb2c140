//! Native tests of the state machine, fed with frames as the server writes them.

use crate::error::codes;
use crate::session::{Out, Phase, Session};
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
    let mut s = S::new(1000.0);
    s.begin_join(me.into(), "j".into(), JoinParams { name: "Me".into(), data: String::new() }, 0.0, 1).unwrap();
    let outs = s.on_open();
    assert!(matches!(&outs[..], [Out::Send { id: Some(id), call: ClientCall::Join(p) }] if id == "j" && p.name == "Me"));
    assert!(s.on_answer("j", Ok(())).is_empty(), "join must wait for policy and peer list");
    assert!(s.on_push(policy(role)).is_empty());
    let mut all = vec![(me, "Me", role)];
    all.extend_from_slice(others);
    let outs = s.on_push(peer_list(&all));
    assert!(matches!(&outs[..], [Out::Resolve(1)]), "{outs:?}");
    assert_eq!(s.phase(), Phase::Joined);
    s
}

fn rejected(outs: &[Out<u32>]) -> Vec<(u32, i32)> {
    outs.iter().filter_map(|o| if let Out::Reject(t, e) = o { Some((*t, e.code)) } else { None }).collect()
}

#[test]
fn join_resolves_after_answer_policy_and_peer_list_in_any_order() {
    let mut s = S::new(1000.0);
    s.begin_join("me".into(), "j".into(), JoinParams { name: "Me".into(), data: String::new() }, 0.0, 7).unwrap();
    assert!(s.local_peer().is_none());
    s.on_open();
    assert!(s.on_push(peer_list(&[("me", "Me", "host")])).is_empty());
    assert!(s.on_push(policy("host")).is_empty());
    assert!(s.local_peer().is_none(), "not joined before the answer");
    let outs = s.on_answer("j", Ok(()));
    assert!(matches!(&outs[..], [Out::Resolve(7)]));
    let me = s.local_peer().unwrap();
    assert!(me.is_local && me.role.permissions.end_room && me.name == "Me");
    assert_eq!(s.room().unwrap().session_id.as_deref(), Some("s1"));
}

#[test]
fn second_join_is_a_conflict() {
    let mut s = joined("me", "host", &[]);
    let r = s.begin_join("x".into(), "j2".into(), JoinParams { name: "x".into(), data: String::new() }, 0.0, 2);
    assert_eq!(r.unwrap_err().1.code, 409);
}

#[test]
fn join_error_answer_rejects_with_server_code() {
    let mut s = S::new(1000.0);
    s.begin_join("me".into(), "j".into(), JoinParams { name: "Me".into(), data: String::new() }, 0.0, 1).unwrap();
    s.on_open();
    let outs = s.on_answer("j", Err(RpcError::new(423, "room is locked")));
    assert_eq!(rejected(&outs), vec![(1, 423)]);
    assert!(matches!(outs[0], Out::Close));
    assert_eq!(s.phase(), Phase::Idle);
}

#[test]
fn on_error_before_join_rejects_join_without_on_error_callback() {
    let mut s = S::new(1000.0);
    s.begin_join("me".into(), "j".into(), JoinParams { name: "Me".into(), data: String::new() }, 0.0, 1).unwrap();
    s.on_open();
    let outs = s.on_push(push(json!({"method":"on-error","params":{"code":401,"message":"bad token"}})));
    assert_eq!(rejected(&outs), vec![(1, 401)]);
    assert!(!outs.iter().any(|o| matches!(o, Out::Error(_))));
    assert!(s.on_close(1008).is_empty(), "the close after on-error is already handled");
}

#[test]
fn socket_that_never_opens_fails_to_connect() {
    let mut s = S::new(1000.0);
    s.begin_join("me".into(), "j".into(), JoinParams { name: "Me".into(), data: String::new() }, 0.0, 1).unwrap();
    assert_eq!(rejected(&s.on_close(1006)), vec![(1, codes::FAILED_TO_CONNECT)]);
}

#[test]
fn peer_join_and_leave_events_and_peer_order() {
    let mut s = joined("me", "host", &[("a", "Ann", "guest")]);
    let outs = s.on_push(push(json!({"method":"on-peer-join","params":peer_json("b","Bob","guest",9)})));
    match &outs[..] {
        [Out::PeerJoin(p)] => assert!(p.name == "Bob" && !p.is_local && !p.role.permissions.end_room && p.user_id == "u-b"),
        other => panic!("{other:?}"),
    }
    let names: Vec<String> = s.peers().into_iter().map(|p| p.name).collect();
    assert_eq!(names, vec!["Me", "Ann", "Bob"]);
    let outs = s.on_push(push(json!({"method":"on-peer-leave","params":peer_json("a","Ann","guest",0)})));
    assert!(matches!(&outs[..], [Out::PeerLeave(p)] if p.peer_id == "a"));
    // An unknown peer leaving is not news.
    assert!(s.on_push(push(json!({"method":"on-peer-leave","params":peer_json("zz","Z","guest",0)}))).is_empty());
    assert_eq!(s.peers().len(), 2);
}

#[test]
fn guest_end_room_is_refused_locally_with_403_and_sends_nothing() {
    let mut s = joined("me", "guest", &[("h", "Host", "host")]);
    let outs = s.end_room("e".into(), true, "bye".into(), 0.0, 5);
    assert_eq!(rejected(&outs), vec![(5, 403)]);
    assert_eq!(outs.len(), 1, "no frame may be sent: {outs:?}");
    let outs = s.remove_peer("r".into(), "h".into(), "bye".into(), 0.0, 6);
    assert_eq!(rejected(&outs), vec![(6, 403)]);
    assert_eq!(outs.len(), 1);
    assert_eq!(s.phase(), Phase::Joined, "a refused call leaves the client joined");
    assert!(s.next_deadline().is_none());
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
    assert!(matches!(&outs[..], [Out::Send { id: Some(id), call: ClientCall::EndRoom(p) }] if id == "e" && p.lock && p.reason == "done"));
    assert!(s.local_peer().is_some());
    let outs = s.on_answer("e", Ok(()));
    assert!(matches!(outs[0], Out::Close), "{outs:?}");
    assert!(matches!(outs.last(), Some(Out::Resolve(5))));
    assert!(!outs.iter().any(|o| matches!(o, Out::Removed(_) | Out::Error(_))));
    assert!(s.local_peer().is_none());
    assert!(s.peers().is_empty());
    assert!(s.on_close(1000).is_empty(), "the server's close after end-room is not an error");
}

#[test]
fn server_refusal_of_end_room_keeps_client_joined() {
    let mut s = joined("me", "host", &[]);
    s.end_room("e".into(), false, "x".into(), 0.0, 5);
    let outs = s.on_answer("e", Err(RpcError::new(403, "nope")));
    assert_eq!(rejected(&outs), vec![(5, 403)]);
    assert_eq!(s.phase(), Phase::Joined);
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
    assert!(outs.iter().any(|o| matches!(o, Out::Close)));
    assert_eq!(s.phase(), Phase::Idle);
    // Nothing more comes out: no second callback, no error for the close that follows.
    assert!(s.on_push(push(json!({"method":"on-peer-leave-request","params":{"reason":"again","room_end":true}}))).is_empty());
    assert!(s.on_close(1000).is_empty());
}

#[test]
fn removal_rejects_pending_requests_with_a_clear_error() {
    let mut s = joined("me", "host", &[("h2", "Other host", "host"), ("g", "G", "guest")]);
    s.remove_peer("r".into(), "g".into(), "x".into(), 0.0, 3);
    let outs = s.on_push(push(json!({"method":"on-peer-leave-request","params":{"requested_by":"h2","reason":"kicked","room_end":false}})));
    assert!(matches!(outs[0], Out::Removed(ref ev) if !ev.room_was_ended && ev.reason == "kicked"));
    let rej: Vec<_> = outs.iter().filter_map(|o| if let Out::Reject(t, e) = o { Some((*t, e.code, e.message.clone())) } else { None }).collect();
    assert_eq!(rej.len(), 1);
    assert_eq!(rej[0].0, 3);
    assert_eq!(rej[0].1, codes::NOT_CONNECTED);
    assert!(rej[0].2.contains("kicked"));
}

#[test]
fn rest_end_room_has_no_requester() {
    let mut s = joined("me", "guest", &[]);
    let outs = s.on_push(push(json!({"method":"on-peer-leave-request","params":{"reason":"backend","room_end":true}})));
    assert!(matches!(&outs[0], Out::Removed(ev) if ev.peer_who_removed.is_none() && ev.room_was_ended));
}

#[test]
fn own_end_room_echo_does_not_count_as_removal() {
    let mut s = joined("me", "host", &[]);
    s.end_room("e".into(), false, "x".into(), 0.0, 5);
    assert!(s.on_push(push(json!({"method":"on-peer-leave-request","params":{"requested_by":"me","reason":"x","room_end":true}}))).is_empty());
    assert!(matches!(s.on_answer("e", Ok(())).last(), Some(Out::Resolve(5))));
}

#[test]
fn requests_time_out_with_6008() {
    let mut s = joined("me", "host", &[("g", "G", "guest")]);
    s.remove_peer("r".into(), "g".into(), "x".into(), 100.0, 3);
    assert_eq!(s.next_deadline(), Some(1100.0));
    assert!(s.on_tick(1099.0).is_empty());
    assert_eq!(rejected(&s.on_tick(1100.0)), vec![(3, codes::REQUEST_TIMEOUT)]);
    assert_eq!(s.phase(), Phase::Joined, "a timed-out request does not end the session");
    assert!(s.on_answer("r", Ok(())).is_empty(), "a late answer is ignored");
}

#[test]
fn join_timeout_ends_the_attempt() {
    let mut s = S::new(500.0);
    s.begin_join("me".into(), "j".into(), JoinParams { name: "Me".into(), data: String::new() }, 0.0, 1).unwrap();
    s.on_open();
    let outs = s.on_tick(500.0);
    assert_eq!(rejected(&outs), vec![(1, codes::REQUEST_TIMEOUT)]);
    assert!(outs.iter().any(|o| matches!(o, Out::Close)));
    assert_eq!(s.phase(), Phase::Idle);
}

#[test]
fn dropped_socket_rejects_pending_with_1003_and_reports_error() {
    let mut s = joined("me", "host", &[("g", "G", "guest")]);
    s.remove_peer("r".into(), "g".into(), "x".into(), 0.0, 3);
    s.end_room("e".into(), false, "x".into(), 0.0, 4);
    let outs = s.on_close(1006);
    assert_eq!(rejected(&outs), vec![(3, 1003), (4, 1003)]);
    assert!(matches!(outs.last(), Some(Out::Error(e)) if e.code == 1003));
    assert!(s.local_peer().is_none());
}

#[test]
fn leave_sends_leave_and_rejects_pending() {
    let mut s = joined("me", "host", &[("g", "G", "guest")]);
    s.remove_peer("r".into(), "g".into(), "x".into(), 0.0, 3);
    let outs = s.leave();
    assert!(matches!(&outs[0], Out::Send { id: None, call: ClientCall::Leave(_) }));
    assert!(matches!(outs[1], Out::Close));
    assert_eq!(rejected(&outs), vec![(3, 6000)]);
    assert!(s.leave().is_empty(), "leaving twice is a no-op");
}
