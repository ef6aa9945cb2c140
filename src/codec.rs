//! The parts of the wire format the wasm layer writes and reads field by field instead
//! of through serde (each saves wasm: docs/SDK.md, "Size"). Pure Rust over small
//! traits, so native tests check them against the protocol's own serde types: a field
//! added or renamed there and not here fails `cargo test`.

use hms_protocol::{ClientCall, PeerListCall, Permissions};

/// Where a frame's `params` are written: a JS object in the browser, a JSON map in tests.
pub trait Writer {
    /// A string field.
    fn string(&mut self, key: &str, value: &str);
    /// A boolean field.
    fn boolean(&mut self, key: &str, value: bool);
    /// A number field.
    fn number(&mut self, key: &str, value: f64);
}

/// Writes `call`'s params (the `params` member of its frame).
pub fn write_params(call: &ClientCall, w: &mut impl Writer) {
    match call {
        ClientCall::Join(p) => {
            w.string("name", &p.name);
            w.string("data", &p.data);
        }
        ClientCall::Leave(p) => {
            if let Some(r) = &p.client_reason {
                w.string("client_reason", r);
            }
        }
        ClientCall::EndRoom(p) => {
            w.boolean("lock", p.lock);
            w.string("reason", &p.reason);
        }
        ClientCall::PeerLeaveRequest(p) => {
            w.string("requested_for", &p.requested_for);
            w.string("reason", &p.reason);
        }
        ClientCall::Ping(p) => w.number("timestamp", p.timestamp as f64),
    }
}

/// Writes a peer-list call's params (`find-peer`, `peer-iter-next`, `get-peer`).
pub fn write_page_params(call: &PeerListCall, w: &mut impl Writer) {
    let limit = match call {
        PeerListCall::FindPeer(f) => f.limit,
        PeerListCall::PeerIterNext(n) => {
            w.string("iterator", &n.iterator);
            n.limit
        }
        PeerListCall::GetPeer(g) => {
            w.string("peer_id", &g.peer_id);
            None
        }
    };
    if let Some(l) = limit {
        w.number("limit", l as f64);
    }
}

/// The wire name of a peer-list call.
pub fn page_method(call: &PeerListCall) -> &'static str {
    match call {
        PeerListCall::FindPeer(_) => hms_protocol::method::FIND_PEER,
        PeerListCall::PeerIterNext(_) => hms_protocol::method::PEER_ITER_NEXT,
        PeerListCall::GetPeer(_) => hms_protocol::method::GET_PEER,
    }
}

/// A role's permission flags from its `permissions` object's `[name, flag]` pairs;
/// unknown names are ignored, missing ones are `false` (as the protocol's serde reads them).
pub fn read_permissions(flags: impl IntoIterator<Item = (String, bool)>) -> Permissions {
    let mut p = Permissions::default();
    for (name, on) in flags {
        let flag = match name.as_str() {
            "endRoom" => &mut p.end_room,
            "removeOthers" => &mut p.remove_others,
            "mute" => &mut p.mute,
            "unmute" => &mut p.unmute,
            "changeRole" => &mut p.change_role,
            "hlsStreaming" => &mut p.hls_streaming,
            "rtmpStreaming" => &mut p.rtmp_streaming,
            "browserRecording" => &mut p.browser_recording,
            "pollRead" => &mut p.poll_read,
            "pollWrite" => &mut p.poll_write,
            _ => continue,
        };
        *flag = on;
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use hms_protocol::{EndRoomParams, JoinParams, LeaveParams, PeerLeaveRequestParams, PingParams};
    use serde_json::{Map, Value};

    impl Writer for Map<String, Value> {
        fn string(&mut self, key: &str, value: &str) {
            self.insert(key.into(), value.into());
        }
        fn boolean(&mut self, key: &str, value: bool) {
            self.insert(key.into(), value.into());
        }
        fn number(&mut self, key: &str, value: f64) {
            self.insert(key.into(), serde_json::Number::from_f64(value).map_or(Value::Null, |n| {
                // Integral numbers as JSON integers, as serde writes a u64.
                n.as_f64().filter(|f| f.fract() == 0.0).map_or(Value::Number(n), |f| Value::from(f as u64))
            }));
        }
    }

    #[test]
    fn params_match_the_protocols_serde_frames() {
        for call in [
            ClientCall::Join(JoinParams { name: "Ada".into(), data: "{}".into() }),
            ClientCall::Leave(LeaveParams { client_reason: Some("user request".into()) }),
            ClientCall::Leave(LeaveParams { client_reason: None }),
            ClientCall::EndRoom(EndRoomParams { lock: true, reason: "bye".into() }),
            ClientCall::PeerLeaveRequest(PeerLeaveRequestParams { requested_for: "p".into(), reason: "x".into() }),
            ClientCall::Ping(PingParams { timestamp: 1_764_000_000_000 }),
        ] {
            let mut ours = Map::new();
            write_params(&call, &mut ours);
            let theirs = serde_json::to_value(&call).unwrap();
            assert_eq!(Value::Object(ours), theirs["params"], "{}", call.method());
        }
    }

    #[test]
    fn page_params_match_the_protocols_serde_frames() {
        use hms_protocol::{FindPeerParams, GetPeerParams, PeerIterNextParams};
        for call in [
            PeerListCall::FindPeer(FindPeerParams { limit: Some(100), ..FindPeerParams::default() }),
            PeerListCall::FindPeer(FindPeerParams::default()),
            PeerListCall::PeerIterNext(PeerIterNextParams { iterator: "41".into(), limit: Some(10) }),
            PeerListCall::GetPeer(GetPeerParams { peer_id: "p".into() }),
        ] {
            let mut ours = Map::new();
            write_page_params(&call, &mut ours);
            let theirs = serde_json::to_value(&call).unwrap();
            assert_eq!(Value::Object(ours), theirs["params"], "{}", page_method(&call));
            assert_eq!(theirs["method"], page_method(&call));
        }
    }

    #[test]
    fn permissions_match_the_protocols_serde_reading() {
        let names: Vec<String> = serde_json::to_value(Permissions::default()).unwrap().as_object().unwrap().keys().cloned().collect();
        assert_eq!(names.len(), 10);
        for name in &names {
            let ours = read_permissions([(name.clone(), true), ("unknownFlag".into(), true)]);
            let theirs: Permissions = serde_json::from_value(serde_json::json!({ name.as_str(): true, "unknownFlag": true })).unwrap();
            assert_eq!(ours, theirs, "{name}");
            assert_ne!(ours, Permissions::default(), "{name} is read");
        }
    }
}
