//! JSON-RPC frames: the decoder (one client text frame -> the request id and a typed
//! call, or the error to answer with) and the encoders of everything the server sends.
//! Pure (no state, no I/O), so it can be fuzzed directly (`tests/fuzz.rs`). The only
//! place where the server turns protocol values into JSON text.

use hms_protocol::{code, method as m, ClientCall, Empty, Response, RpcError, ServerPush};
use serde::Serialize;
use serde_json::Value;
use std::sync::Arc;

/// A decoded request: its `id` (`Null` for a notification) and the call.
pub type Decoded = (Value, ClientCall);

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
    if ![m::JOIN, m::LEAVE, m::END_ROOM, m::PEER_LEAVE_REQUEST, m::PING].contains(&method.as_str()) {
        return Err((id, RpcError::method_not_found(&method)));
    }
    let params = match obj.remove("params") {
        None | Some(Value::Null) => Value::Object(Default::default()),
        // By-name params only: serde would otherwise read `[1]` as a struct's fields.
        Some(p @ Value::Object(_)) => p,
        Some(_) => return Err((id, RpcError::invalid_params(&method, "params must be an object"))),
    };
    match ClientCall::parse(&method, params) {
        Ok(call) => Ok((id, call)),
        Err(e) => Err((id, e)),
    }
}

/// A serialized frame, shared by every connection it goes to.
pub type Text = Arc<str>;

fn json(v: &impl Serialize) -> Text {
    // Serializing the protocol's own plain structs cannot fail; an empty frame would be
    // harmless anyway (the client ignores what it can't read).
    Arc::from(serde_json::to_string(v).unwrap_or_default())
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
    fn encoders_write_the_protocol_frames() {
        assert_eq!(&*ok(&Value::from("a")), r#"{"jsonrpc":"2.0","id":"a","result":{}}"#);
        let e = error(&Value::Null, RpcError::new(429, "slow down"));
        assert_eq!(&*e, r#"{"jsonrpc":"2.0","id":null,"error":{"code":429,"message":"slow down"}}"#);
        let p = push(&ServerPush::Error(RpcError::new(409, "x")));
        assert_eq!(&*p, r#"{"method":"on-error","params":{"code":409,"message":"x"}}"#);
    }
}
