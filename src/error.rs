//! The SDK's error value: a numeric code plus a readable message, and the stable name
//! apps branch on. Pure Rust; `js.rs` turns it into a real JS `HmsError`.

use hms_protocol::{code, RpcError};

/// Codes the SDK produces itself (the 100ms web SDK's numbers where one fits); server
/// codes (400, 401, 403, 404, 409, 423, ...) are passed through unchanged.
pub mod codes {
    /// The WebSocket could not be opened, or the token endpoint could not be reached.
    pub const FAILED_TO_CONNECT: i32 = 1000;
    /// The WebSocket dropped while joined or while a request was waiting.
    pub const CONNECTION_LOST: i32 = 1003;
    /// The server's answer could not be read.
    pub const JSON_PARSING_FAILED: i32 = 6004;
    /// The call needs a joined client (or the client left while the call was waiting).
    pub const NOT_CONNECTED: i32 = 6000;
    /// No answer within `requestTimeoutMs`.
    pub const REQUEST_TIMEOUT: i32 = 6008;
    /// The app passed options or arguments of the wrong shape.
    pub const VALIDATION_FAILED: i32 = 6013;
    /// Reconnecting failed within the budget (phase 2 of the reliability issue).
    pub const RECONNECT_FAILED: i32 = 1006;
}

/// An error as the SDK reports it: rejections and `onError` both carry one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdkError {
    /// One of [`codes`] or a server code.
    pub code: i32,
    /// What happened, for developers.
    pub message: String,
}

impl SdkError {
    /// An error with any code.
    pub fn new(code: i32, message: impl Into<String>) -> Self {
        Self { code, message: message.into() }
    }

    /// The stable name apps branch on (`err.name`), derived from the code.
    pub fn name(&self) -> &'static str {
        name_of(self.code)
    }
}

impl From<RpcError> for SdkError {
    fn from(e: RpcError) -> Self {
        Self { code: e.code, message: e.message }
    }
}

/// The stable `name` of a code; unknown codes are `ServerError`.
pub fn name_of(c: i32) -> &'static str {
    match c {
        code::BAD_REQUEST => "BadRequest",
        code::UNAUTHORIZED => "InvalidToken",
        code::FORBIDDEN => "PermissionDenied",
        code::NOT_FOUND => "NotFound",
        code::CONFLICT => "Conflict",
        code::LOCKED => "RoomLocked",
        code::RATE_LIMITED => "RateLimited",
        code::PARSE_ERROR => "ParseError",
        code::INVALID_REQUEST => "InvalidRequest",
        code::METHOD_NOT_FOUND => "MethodNotFound",
        code::INVALID_PARAMS => "InvalidParams",
        codes::FAILED_TO_CONNECT => "FailedToConnect",
        codes::CONNECTION_LOST => "ConnectionLost",
        codes::RECONNECT_FAILED => "ReconnectFailed",
        codes::NOT_CONNECTED => "NotConnected",
        codes::JSON_PARSING_FAILED => "JsonParsingFailed",
        codes::REQUEST_TIMEOUT => "RequestTimeout",
        codes::VALIDATION_FAILED => "ValidationFailed",
        _ => "ServerError",
    }
}

/// Every name [`name_of`] can return, for the TypeScript union and the docs.
pub const ALL_NAMES: &[&str] = &[
    "BadRequest",
    "InvalidToken",
    "PermissionDenied",
    "NotFound",
    "Conflict",
    "RoomLocked",
    "RateLimited",
    "ParseError",
    "InvalidRequest",
    "MethodNotFound",
    "InvalidParams",
    "FailedToConnect",
    "ConnectionLost",
    "ReconnectFailed",
    "NotConnected",
    "JsonParsingFailed",
    "RequestTimeout",
    "ValidationFailed",
    "ServerError",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_spec() {
        assert_eq!(name_of(6000), "NotConnected");
        assert_eq!(name_of(403), "PermissionDenied");
        assert_eq!(name_of(423), "RoomLocked");
        assert_eq!(name_of(401), "InvalidToken");
        assert_eq!(name_of(404), "NotFound");
        assert_eq!(name_of(1003), "ConnectionLost");
        assert_eq!(name_of(6008), "RequestTimeout");
        assert_eq!(name_of(409), "Conflict");
        assert_eq!(name_of(400), "BadRequest");
        assert_eq!(name_of(1000), "FailedToConnect");
        assert_eq!(name_of(599), "ServerError");
    }

    #[test]
    fn every_name_is_listed() {
        for c in [400, 401, 403, 404, 409, 423, 429, -32700, -32600, -32601, -32602, 1000, 1003, 1006, 6000, 6004, 6008, 6013, 12345] {
            assert!(ALL_NAMES.contains(&name_of(c)), "{c}");
        }
    }

    #[test]
    fn server_errors_pass_through() {
        let e = SdkError::from(RpcError::new(423, "room is locked"));
        assert_eq!((e.code, e.name(), e.message.as_str()), (423, "RoomLocked", "room is locked"));
    }
}
