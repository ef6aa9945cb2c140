//! JSON-RPC frames: the decoder (one client text frame -> the request id and a typed
//! call, or the error to answer with) and the encoders of everything the server sends.
//! Pure (no state, no I/O), so it can be fuzzed directly (`tests/fuzz.rs`). The only
//! place where the server turns protocol values into JSON text.

use hms_protocol::{code, method as m, ClientCall, Empty, PeerListCall, PeerNotification, Response, RoomState, RpcError, ServerPush};
use serde::Serialize;
use serde_json::Value;

/// A decoded request: its `id` (`Null` for a notification) and the call.
pub type Decoded = (Value, Call);

/// A client call: one of the room's methods, or a read of a large room's peer list.
/// Serializes to the call's `{"method", "params"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Call {
    /// `join`, `leave`, `end-room`, `peer-leave-request`, `ping`.
    Room(ClientCall),
    /// `find-peer`, `peer-iter-next`, `get-peer`.
    PeerList(PeerListCall),
}

impl Call {
    /// The wire name of the method.
    pub fn method(&self) -> &'static str {
        match self {
            Call::Room(c) => c.method(),
            Call::PeerList(PeerListCall::FindPeer(_)) => m::FIND_PEER,
            Call::PeerList(PeerListCall::PeerIterNext(_)) => m::PEER_ITER_NEXT,
            Call::PeerList(PeerListCall::GetPeer(_)) => m::GET_PEER,
        }
    }
}

/// Decodes one text frame. On failure returns the id to answer with (`Null` when the
/// frame could not be read far enough) and the error: -32700 not JSON, -32600 not a
/// request object, -32601 unknown method, -32602 params that do not fit.
pub fn decode(text: &str) -> Result<Decoded, (Value, RpcError)> {
    let value: Value = serde_json::from_str(text)
        .map_err(|e| (Value::Null, RpcError::new(code::PARSE_ERROR, format!("parse error: {e}"))))?;
    let Value::Object(mut obj) = value else {
        return Err((Value::Null, RpcError::new(code::INVALID_REQUEST, "a request must be a JSON object")));
    };
    let id = obj.remove("id").unwrap_or(Value::Null);
    if !matches!(id, Value::Null | Value::String(_) | Value::Number(_)) {
        return Err((Value::Null, RpcError::new(code::INVALID_REQUEST, "id must be a string, a number or absent")));
    }
    let method = match obj.remove("method") {
        Some(Value::String(s)) => s,
        _ => return Err((id, RpcError::new(code::INVALID_REQUEST, "method (a string) is required"))),
    };
    // Unknown method first, so it gets -32601 whatever its params look like.
    let paging = PeerListCall::is_method(&method);
    if !paging && ![m::JOIN, m::LEAVE, m::END_ROOM, m::PEER_LEAVE_REQUEST, m::PING].contains(&method.as_str()) {
        return Err((id, RpcError::method_not_found(&method)));
    }
    let params = match obj.remove("params") {
        None | Some(Value::Null) => Value::Object(Default::default()),
        // By-name params only: serde would otherwise read `[1]` as a struct's fields.
        Some(p @ Value::Object(_)) => p,
        Some(_) => return Err((id, RpcError::invalid_params(&method, "params must be an object"))),
    };
    let call = if paging { PeerListCall::parse(&method, params).map(Call::PeerList) } else { ClientCall::parse(&method, params).map(Call::Room) };
    match call {
        Ok(call) => Ok((id, call)),
        Err(e) => Err((id, e)),
    }
}

/// A serialized frame, shared by every connection it goes to: reference-counted bytes
/// that are known to be UTF-8, so a push to 10,000 sockets is one allocation and each
/// socket's WebSocket message points at it (no copy per connection).
pub type Text = tokio_tungstenite::tungstenite::Utf8Bytes;

fn json(v: &impl Serialize) -> Text {
    // Serializing the protocol's own plain structs cannot fail; an empty frame would be
    // harmless anyway (the client ignores what it can't read).
    Text::from(serde_json::to_string(v).unwrap_or_default())
}

/// A peer's own JSON (a [`PeerNotification`]), serialized once when it joins and
/// reused in every frame that carries the peer.
pub fn peer(p: &PeerNotification) -> Text {
    json(p)
}

/// `{"method":"<method>","params":<params>}` around ready-made JSON params: the same bytes
/// serde writes for a [`ServerPush`] with those params.
fn push_raw(method: &str, params: &str) -> Text {
    let mut s = String::with_capacity(method.len() + params.len() + 24);
    s.push_str("{\"method\":\"");
    s.push_str(method);
    s.push_str("\",\"params\":");
    s.push_str(params);
    s.push('}');
    Text::from(s)
}

/// `on-peer-join` for a peer's cached JSON ([`peer`]).
pub fn peer_join(peer: &str) -> Text {
    push_raw(m::ON_PEER_JOIN, peer)
}

/// `on-peer-leave` for a peer's cached JSON ([`peer`]).
pub fn peer_leave(peer: &str) -> Text {
    push_raw(m::ON_PEER_LEAVE, peer)
}

/// Appends `items` as a JSON array of ready-made JSON values.
fn push_array<T: AsRef<str>>(s: &mut String, items: &[T]) {
    s.push('[');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str(item.as_ref());
    }
    s.push(']');
}

/// Appends `v` serialized (a string key, a number...).
fn push_json(s: &mut String, v: &impl Serialize) {
    s.push_str(&serde_json::to_string(v).unwrap_or_default());
}

/// `peer-list` from cached peer JSON, `peers` sorted by id (the order serde writes a
/// `BTreeMap` in): byte for byte what `push(&ServerPush::PeerList(..))` gives for the
/// same peers, without deserializing or re-serializing a single peer.
pub fn peer_list(peers: &[(Text, Text)], room: &RoomState, peer_count: Option<u64>, large: bool) -> Text {
    let mut s = String::with_capacity(64 + peers.iter().map(|(id, p)| id.len() + p.len() + 4).sum::<usize>());
    s.push_str("{\"peers\":{");
    for (i, (id, p)) in peers.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        push_json(&mut s, &id.as_str());
        s.push(':');
        s.push_str(p);
    }
    s.push_str("},\"room\":");
    push_json(&mut s, room);
    if let Some(n) = peer_count {
        s.push_str(",\"peer_count\":");
        push_json(&mut s, &n);
    }
    if large {
        s.push_str(",\"large_room_optimization\":true");
    }
    s.push('}');
    push_raw(m::PEER_LIST, &s)
}

/// `{"jsonrpc":"2.0","id":<id>,"result":` : the start of a success answer whose result
/// follows, ready-made (the same bytes as [`result`] writes).
fn result_start(id: &Value, capacity: usize) -> String {
    let mut s = String::with_capacity(40 + capacity);
    s.push_str("{\"jsonrpc\":\"2.0\",\"id\":");
    push_json(&mut s, id);
    s.push_str(",\"result\":");
    s
}

/// The answer to `find-peer` / `peer-iter-next` ([`hms_protocol::PeersIteration`]) from cached peer JSON.
pub fn peers_iteration(id: &Value, iterator: &str, total: u64, eof: bool, peers: &[Text]) -> Text {
    let mut s = result_start(id, 64 + peers.iter().map(|p| p.len() + 1).sum::<usize>());
    s.push_str("{\"iterator\":");
    push_json(&mut s, &iterator);
    s.push_str(",\"total\":");
    push_json(&mut s, &total);
    s.push_str(",\"eof\":");
    push_json(&mut s, &eof);
    s.push_str(",\"peers\":");
    push_array(&mut s, peers);
    s.push_str("}}");
    Text::from(s)
}

/// The answer to `get-peer`: the peer's cached JSON as the result.
pub fn peer_result(id: &Value, peer: &str) -> Text {
    let mut s = result_start(id, peer.len() + 1);
    s.push_str(peer);
    s.push('}');
    Text::from(s)
}

/// `on-peer-batch` ([`hms_protocol::PeerBatch`]) from cached peer JSON.
pub fn peer_batch(joined: &[Text], left: &[String], peer_count: u64) -> Text {
    let mut s = String::with_capacity(48 + joined.iter().map(|p| p.len() + 1).sum::<usize>() + left.iter().map(|l| l.len() + 3).sum::<usize>());
    s.push_str("{\"joined\":");
    push_array(&mut s, joined);
    s.push_str(",\"left\":");
    push_json(&mut s, &left);
    s.push_str(",\"peer_count\":");
    push_json(&mut s, &peer_count);
    s.push('}');
    push_raw(m::ON_PEER_BATCH, &s)
}

/// A server push (`{"method", "params"}`).
pub fn push(p: &ServerPush) -> Text {
    json(p)
}

/// The success answer to request `id` with `result`.
pub fn result(id: &Value, result: impl Serialize) -> Text {
    json(&Response::ok(id, result))
}

/// The `{}` success answer to request `id`.
pub fn ok(id: &Value) -> Text {
    result(id, Empty {})
}

/// The error answer to request `id`.
pub fn error(id: &Value, e: RpcError) -> Text {
    json(&Response::<&Value, ()>::err(id, e))
}

/// The `id` of a frame, read loosely (for answering a frame refused unread).
pub fn request_id(text: &str) -> Value {
    #[derive(serde::Deserialize)]
    struct IdOnly {
        #[serde(default)]
        id: Value,
    }
    serde_json::from_str::<IdOnly>(text).map(|i| i.id).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code_of(t: &str) -> i32 {
        decode(t).unwrap_err().1.code
    }

    #[test]
    fn decodes_every_method() {
        let (id, call) = decode(r#"{"jsonrpc":"2.0","id":"a","method":"ping","params":{"timestamp":5}}"#).unwrap();
        assert_eq!((id, call.method()), (Value::from("a"), "ping"));
        let (id, call) = decode(r#"{"method":"leave"}"#).unwrap();
        assert_eq!((id, call.method()), (Value::Null, "leave"));
        assert!(decode(r#"{"id":1,"method":"join","params":{"name":"n","extra":true}}"#).is_ok());
        assert!(decode(r#"{"id":1,"method":"end-room","params":{"lock":true,"reason":""}}"#).is_ok());
        assert!(decode(r#"{"id":1,"method":"peer-leave-request","params":{"requested_for":"p","reason":"r"}}"#).is_ok());
    }

    #[test]
    fn each_bad_input_has_its_code() {
        assert_eq!(code_of("{"), -32700);
        assert_eq!(code_of("[]"), -32600);
        assert_eq!(code_of(r#"{"id":[1],"method":"ping"}"#), -32600);
        assert_eq!(code_of(r#"{"id":1}"#), -32600);
        assert_eq!(code_of(r#"{"id":1,"method":7}"#), -32600);
        assert_eq!(code_of(r#"{"id":1,"method":"nope","params":[1]}"#), -32601);
        assert_eq!(code_of(r#"{"id":1,"method":"ping","params":[1]}"#), -32602);
        assert_eq!(code_of(r#"{"id":1,"method":"ping"}"#), -32602);
        assert_eq!(code_of(r#"{"id":1,"method":"end-room","params":{"lock":1,"reason":"x"}}"#), -32602);
        let deep = "[".repeat(100_000);
        assert_eq!(code_of(&deep), -32700, "deep nesting is refused, not a stack overflow");
    }

    #[test]
    fn request_id_is_read_loosely() {
        assert_eq!(request_id(r#"{"id":"a","method":1}"#), Value::from("a"));
        assert_eq!(request_id("garbage"), Value::Null);
    }

    #[test]
    fn decodes_the_peer_list_calls() {
        let (_, call) = decode(r#"{"id":1,"method":"find-peer","params":{"role":"host","limit":5}}"#).unwrap();
        assert_eq!(call.method(), "find-peer");
        let (_, call) = decode(r#"{"id":1,"method":"peer-iter-next","params":{"iterator":"7"}}"#).unwrap();
        assert_eq!(call.method(), "peer-iter-next");
        let (_, call) = decode(r#"{"id":1,"method":"get-peer","params":{"peerId":"p"}}"#).unwrap();
        assert_eq!(call, Call::PeerList(PeerListCall::GetPeer(hms_protocol::GetPeerParams { peer_id: "p".into() })));
        assert_eq!(code_of(r#"{"id":1,"method":"peer-iter-next","params":{}}"#), -32602);
        assert_eq!(code_of(r#"{"id":1,"method":"find-peer","params":{"limit":-1}}"#), -32602);
    }

    fn sample_peer(id: &str, name: &str) -> PeerNotification {
        PeerNotification {
            peer_id: id.into(),
            info: hms_protocol::PeerInfo { name: name.into(), data: "{\"x\":1}".into(), user_id: format!("u-{id}"), peer_type: "regular".into() },
            role: "guest".into(),
            joined_at: Some(1_700_000_000_000),
            tracks: Default::default(),
            groups: Vec::new(),
        }
    }

    /// The hand-built encoders, which reuse each peer's cached JSON, write exactly what
    /// serde writes for the protocol's types: the shapes stay defined once.
    #[test]
    fn cached_json_encoders_match_serde_byte_for_byte() {
        let peers = [sample_peer("b\"q", "Bé"), sample_peer("a", "A \u{1F600}"), sample_peer("c", "")];
        let room = RoomState { room_id: "r".into(), name: "r".into(), session_id: Some("s".into()), started_at: Some(5) };
        let mut sorted: Vec<(Text, Text)> = peers.iter().map(|p| (Text::from(p.peer_id.clone()), peer(p))).collect();
        sorted.sort_by(|a, b| a.0.cmp(&b.0));
        for (count, large) in [(None, false), (Some(3), true)] {
            let list = hms_protocol::PeerList {
                peers: peers.iter().map(|p| (p.peer_id.clone(), p.clone())).collect(),
                room: room.clone(),
                peer_count: count,
                large_room_optimization: large,
            };
            assert_eq!(peer_list(&sorted, &room, count, large), push(&ServerPush::PeerList(list)));
        }
        let one = peer(&peers[0]);
        assert_eq!(peer_join(&one), push(&ServerPush::PeerJoin(peers[0].clone())));
        assert_eq!(peer_leave(&one), push(&ServerPush::PeerLeave(peers[0].clone())));
        let jsons: Vec<Text> = peers.iter().map(peer).collect();
        let it = hms_protocol::PeersIteration { iterator: "it\"1".into(), total: 9, eof: false, peers: peers.to_vec() };
        assert_eq!(peers_iteration(&Value::from("x"), "it\"1", 9, false, &jsons), result(&Value::from("x"), &it));
        let empty = hms_protocol::PeersIteration { iterator: "2".into(), total: 0, eof: true, peers: vec![] };
        assert_eq!(peers_iteration(&Value::from(3), "2", 0, true, &[]), result(&Value::from(3), &empty));
        assert_eq!(peer_result(&Value::from(4), &one), result(&Value::from(4), &peers[0]));
        let batch = hms_protocol::PeerBatch { joined: peers[..2].to_vec(), left: vec!["z".into(), "y\"".into()], peer_count: 7 };
        #[derive(Serialize)]
        struct Push<'a> {
            method: &'a str,
            params: &'a hms_protocol::PeerBatch,
        }
        let expected = serde_json::to_string(&Push { method: "on-peer-batch", params: &batch }).unwrap();
        assert_eq!(peer_batch(&jsons[..2], &batch.left, 7).as_str(), expected);
    }

    #[test]
    fn encoders_write_the_protocol_frames() {
        assert_eq!(&*ok(&Value::from("a")), r#"{"jsonrpc":"2.0","id":"a","result":{}}"#);
        let e = error(&Value::Null, RpcError::new(429, "slow down"));
        assert_eq!(&*e, r#"{"jsonrpc":"2.0","id":null,"error":{"code":429,"message":"slow down"}}"#);
        let p = push(&ServerPush::Error(RpcError::new(409, "x")));
        assert_eq!(&*p, r#"{"method":"on-error","params":{"code":409,"message":"x"}}"#);
    }
}
