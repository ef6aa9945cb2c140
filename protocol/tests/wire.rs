//! The wire format, checked against literal frames from docs/PROTOCOL.md.

use hms_protocol::*;
use serde_json::{json, Value};

fn to_json<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).expect("serializable")
}

#[test]
fn end_room_request_frame() {
    let call = ClientCall::EndRoom(EndRoomParams { lock: true, reason: "Meeting over".into() });
    let frame = to_json(&ClientRequest::new("a1b2", &call));
    assert_eq!(
        frame,
        json!({"jsonrpc":"2.0","id":"a1b2","method":"end-room","params":{"lock":true,"reason":"Meeting over"}})
    );
}

#[test]
fn leave_is_a_notification_without_id() {
    let call = ClientCall::Leave(LeaveParams { client_reason: Some("user request".into()) });
    let frame = to_json(&ClientRequest::notification(&call));
    assert_eq!(frame, json!({"jsonrpc":"2.0","method":"leave","params":{"client_reason":"user request"}}));
}

#[test]
fn parse_distinguishes_unknown_method_from_bad_params() {
    let err = ClientCall::parse("fly", json!({})).unwrap_err();
    assert_eq!(err.code, code::METHOD_NOT_FOUND);
    let err = ClientCall::parse("end-room", json!({"lock":"yes","reason":"x"})).unwrap_err();
    assert_eq!(err.code, code::INVALID_PARAMS);
    assert!(err.message.contains("end-room"), "{}", err.message);
    let ok = ClientCall::parse("peer-leave-request", json!({"requested_for":"p2","reason":"bye"})).unwrap();
    assert_eq!(
        ok,
        ClientCall::PeerLeaveRequest(PeerLeaveRequestParams { requested_for: "p2".into(), reason: "bye".into() })
    );
    // 100ms's join carries media fields we ignore; data defaults to "".
    let ok = ClientCall::parse("join", json!({"name":"Ada","simulcast":true})).unwrap();
    assert_eq!(ok, ClientCall::Join(JoinParams { name: "Ada".into(), data: String::new() }));
}

#[test]
fn leave_request_push_round_trips_with_and_without_requester() {
    let push = ServerPush::PeerLeaveRequest(PeerLeaveRequest {
        requested_by: Some("host-1".into()),
        reason: "Meeting over".into(),
        room_end: true,
    });
    let v = to_json(&push);
    assert_eq!(
        v,
        json!({"method":"on-peer-leave-request","params":{"requested_by":"host-1","reason":"Meeting over","room_end":true}})
    );
    assert_eq!(serde_json::from_value::<ServerPush>(v).unwrap(), push);
    let rest: ServerPush = serde_json::from_value(
        json!({"method":"on-peer-leave-request","params":{"reason":"by API","room_end":true}}),
    )
    .unwrap();
    assert!(matches!(rest, ServerPush::PeerLeaveRequest(PeerLeaveRequest { requested_by: None, .. })));
}

#[test]
fn roles_are_camel_case_and_missing_permissions_are_false() {
    let role: Role = serde_json::from_value(json!({"name":"host","priority":1,"permissions":{"endRoom":true}})).unwrap();
    assert!(role.permissions.allows(Action::EndRoom));
    assert!(!role.permissions.allows(Action::RemoveOthers));
    let v = to_json(&role);
    assert_eq!(v["permissions"]["removeOthers"], json!(false));
    assert_eq!(v["permissions"]["endRoom"], json!(true));
}

#[test]
fn permission_check_gives_403_naming_the_permission() {
    let guest = Permissions::default();
    let err = guest.check(Action::EndRoom).unwrap_err();
    assert_eq!(err.code, code::FORBIDDEN);
    assert!(err.message.contains("endRoom"));
    let host = Permissions { end_room: true, remove_others: true, ..Default::default() };
    assert!(host.check(Action::EndRoom).is_ok() && host.check(Action::RemoveOthers).is_ok());
}

#[test]
fn peer_notification_has_100ms_shape() {
    let p = PeerNotification {
        peer_id: "p1".into(),
        info: PeerInfo { name: "Ada".into(), data: "".into(), user_id: "u1".into(), peer_type: "regular".into() },
        role: "host".into(),
        joined_at: Some(1),
        tracks: Default::default(),
        groups: vec![],
    };
    assert_eq!(
        to_json(&p),
        json!({"peer_id":"p1","info":{"name":"Ada","data":"","user_id":"u1","type":"regular"},"role":"host","joined_at":1,"tracks":{},"groups":[]})
    );
}

#[test]
fn server_frame_reads_responses_and_pushes() {
    let r: ServerFrame<Value> = serde_json::from_value(json!({"jsonrpc":"2.0","id":"7","result":{}})).unwrap();
    assert_eq!(r.id.as_deref(), Some("7"));
    assert_eq!(r.result, Some(json!({})));
    let e: ServerFrame<Value> =
        serde_json::from_value(json!({"id":"8","error":{"code":423,"message":"room is locked"}})).unwrap();
    assert_eq!(e.error.unwrap().code, code::LOCKED);
    let p: ServerFrame<Value> = serde_json::from_value(json!({"method":"on-peer-join","params":{"x":1}})).unwrap();
    assert_eq!(p.method.as_deref(), Some("on-peer-join"));
    assert!(p.id.is_none() && p.params.is_some());
}

#[test]
fn response_is_always_an_object() {
    let ok = to_json(&Response::ok(json!("1"), Empty {}));
    assert_eq!(ok, json!({"jsonrpc":"2.0","id":"1","result":{}}));
    let err = to_json(&Response::<Value, Empty>::err(Value::Null, RpcError::new(code::PARSE_ERROR, "bad json")));
    assert_eq!(err, json!({"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"bad json"}}));
}

/// Every example frame of docs/PROTOCOL.md's large-room parts decodes into the protocol's
/// types and serializes back to the same JSON: the docs and the types cannot drift.
#[test]
fn large_room_examples_in_the_docs_match_the_types() {
    let doc = include_str!("../../docs/PROTOCOL.md");
    let mut frames: Vec<Value> = Vec::new();
    let mut pending = String::new();
    let mut in_block = false;
    for line in doc.lines() {
        if line.starts_with("```") {
            in_block = !in_block;
            pending.clear();
            continue;
        }
        if !in_block {
            continue;
        }
        // A frame starts at a line opening an object; a frame may span lines.
        if line.starts_with("{\"") {
            pending.clear();
        }
        pending.push_str(line);
        if let Ok(v) = serde_json::from_str::<Value>(&pending) {
            frames.push(v);
            pending.clear();
        } else if !pending.starts_with('{') {
            pending.clear();
        }
    }
    let mut checked = 0;
    for f in &frames {
        let method = f["method"].as_str().unwrap_or_default();
        let params = f["params"].clone();
        match method {
            "find-peer" | "peer-iter-next" | "get-peer" => {
                let call = PeerListCall::parse(method, params).unwrap_or_else(|e| panic!("{f}: {e}"));
                let back = to_json(&call);
                assert_eq!(back["method"], method);
                // get-peer's alias aside, the params come back as written.
                assert_eq!(back["params"], f["params"], "{f}");
            }
            "on-peer-batch" => {
                let b: PeerBatch = serde_json::from_value(params.clone()).unwrap();
                assert_eq!(to_json(&b), params);
            }
            "peer-list" if params.get("peer_count").is_some() => {
                let push: ServerPush = serde_json::from_value(f.clone()).unwrap();
                assert!(matches!(&push, ServerPush::PeerList(l) if l.large_room_optimization && l.peer_count == Some(10000)));
                assert_eq!(&to_json(&push), f);
            }
            _ => {
                let Some(result) = f.get("result") else { continue };
                if result.get("iterator").is_some() {
                    let it: PeersIteration = serde_json::from_value(result.clone()).unwrap();
                    assert_eq!(&to_json(&it), result);
                } else if result.get("peer_id").is_some() {
                    let p: PeerNotification = serde_json::from_value(result.clone()).unwrap();
                    assert_eq!(&to_json(&p), result);
                } else {
                    continue;
                }
            }
        }
        checked += 1;
    }
    assert_eq!(checked, 8, "find-peer, peer-iter-next, get-peer (request + answer each), the large peer-list, on-peer-batch");
}

#[test]
fn join_answer_carries_the_reconnect_secret() {
    let secret = "5d0c8f4e2a7b19c3e6f0a4d8b2c7e1f9a3b5c7d9e1f3a5b7c9d1e3f5a7b9c1d3";
    let frame = to_json(&Response::ok("1", JoinResult { reconnect_secret: secret.into() }));
    // The frame of docs/PROTOCOL.md, section 3, `join`.
    assert_eq!(frame, json!({"jsonrpc":"2.0","id":"1","result":{"reconnect_secret":secret}}));
    let back: JoinResult = serde_json::from_value(frame["result"].clone()).unwrap();
    assert_eq!(back.reconnect_secret, secret);
}
