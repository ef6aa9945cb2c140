//! The SDK's one error type: a numeric code with its stable name, which call failed
//! (`action`), whether the session is over (`isTerminal`), and a readable message, as
//! 100ms's `HMSException` has them. Pure Rust; `js.rs` turns it into a real JS `HmsError`.
//!
//! Codes: the SDK's own conditions use 100ms's code where 100ms has one for the same
//! meaning, and codes 100ms does not use (9001...) otherwise; server codes (400, 401,
//! 403, ..., the JSON-RPC -326xx) pass through unchanged, and a code this table does not
//! know keeps its number and is named `ServerError`.

use serde::Serialize;
use tsify::Tsify;

/// Declares [`ErrorName`] from one table, so that every code, name and origin is written
/// once: the enum, its `code`, its `name`, [`ErrorName::ALL`] and the TypeScript union
/// `HmsErrorName` (derived by tsify) all come from it.
macro_rules! error_names {
    ($( $(#[doc = $doc:literal])* $name:ident = $code:literal, $origin:ident; )*) => {
        /// The stable `name` of an `HmsError` (its TypeScript type is `HmsErrorName`).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Tsify)]
        #[tsify(rename = "HmsErrorName")]
        pub enum ErrorName {
            $( $(#[doc = $doc])* $name, )*
        }

        impl ErrorName {
            /// Every name, in the table's order (docs/SDK.md lists them the same way).
            pub const ALL: &'static [ErrorName] = &[$(ErrorName::$name),*];

            /// The code this name stands for.
            pub fn code(self) -> i32 {
                match self { $(ErrorName::$name => $code,)* }
            }

            /// The name as apps compare it (`err.name === "RoomLocked"`).
            pub fn as_str(self) -> &'static str {
                match self { $(ErrorName::$name => stringify!($name),)* }
            }

            /// Who produces it: the SDK itself or the server (passed through).
            pub fn origin(self) -> Origin {
                match self { $(ErrorName::$name => Origin::$origin,)* }
            }
        }
    };
}

/// Who produces an error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The SDK, without asking the server.
    Sdk,
    /// The server; the SDK passes the code through.
    Server,
}

error_names! {
    /// 100ms 1000 FAILED_TO_CONNECT: the WebSocket could not be opened.
    FailedToConnect = 1000, Sdk;
    /// 100ms 1003 WEBSOCKET_CONNECTION_LOST: the connection dropped; terminal once
    /// reconnecting gave up (`action: "RECONNECT_SIGNAL"`), as in 100ms.
    ConnectionLost = 1003, Sdk;
    /// 100ms 2003 ENDPOINT_UNREACHABLE: the token endpoint could not be reached.
    EndpointUnreachable = 2003, Sdk;
    /// 100ms 5001 ALREADY_JOINED: `join` on a client that is joined or joining.
    AlreadyJoined = 5001, Sdk;
    /// 100ms 6000 NOT_CONNECTED: not joined, or the client left (or was removed) while
    /// the call waited.
    NotConnected = 6000, Sdk;
    /// 100ms 6004 JSON_PARSING_FAILED: the token endpoint's answer was not readable.
    JsonParsingFailed = 6004, Sdk;
    /// 100ms 6013 VALIDATION_FAILED: options or arguments of the wrong shape.
    ValidationFailed = 6013, Sdk;
    /// No answer within `requestTimeoutMs` (100ms has no code for it).
    RequestTimeout = 9001, Sdk;
    /// The package was used before `init()` finished (thrown by the package's JS
    /// entry, which has no wasm to ask yet; 100ms has no code for it).
    NotInitialized = 9002, Sdk;
    /// The request makes no sense now (e.g. removing yourself).
    BadRequest = 400, Server;
    /// Missing, malformed, forged, expired or foreign auth token.
    InvalidToken = 401, Server;
    /// The role lacks the permission (the SDK checks first, the server always).
    PermissionDenied = 403, Server;
    /// Unknown peer, room or room code.
    NotFound = 404, Server;
    /// Already joined, the peer id is in use, or the room is already ending.
    Conflict = 409, Server;
    /// The room was ended with `lock: true`.
    RoomLocked = 423, Server;
    /// Too many frames.
    RateLimited = 429, Server;
    /// The server failed; also the name of any code this table does not know.
    ServerError = 500, Server;
    /// JSON-RPC: the frame was not JSON.
    ParseError = -32700, Server;
    /// JSON-RPC: not a request object.
    InvalidRequest = -32600, Server;
    /// JSON-RPC: no such method.
    MethodNotFound = -32601, Server;
    /// JSON-RPC: the params do not fit the method.
    InvalidParams = -32602, Server;
}

impl ErrorName {
    /// The name of `code`; codes this table does not know are `ServerError`.
    pub fn of(code: i32) -> ErrorName {
        ErrorName::ALL.iter().copied().find(|n| n.code() == code).unwrap_or(ErrorName::ServerError)
    }
}

/// Which call failed (`err.action`), in 100ms's words where it has them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Tsify)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[tsify(rename = "HmsErrorAction")]
pub enum ErrorAction {
    /// `new HmsClient(...)`, or using the package before `init()`.
    Init,
    /// `getAuthTokenByRoomCode`.
    GetToken,
    /// `join`, or the session it started (a server `on-error`).
    Join,
    /// `endRoom`.
    EndRoom,
    /// `removePeer`.
    RemovePeer,
    /// `HmsPeerListIterator.next()` (a page of a large room's peer list).
    PeerList,
    /// Reconnecting after the connection was lost.
    ReconnectSignal,
}

/// An error as the SDK reports it: rejections, throws, `onError` and `onReconnecting`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdkError {
    /// A code of [`ErrorName`] or any server code.
    pub code: i32,
    /// What happened, for developers.
    pub message: String,
    /// Which call failed.
    pub action: ErrorAction,
    /// The session is over: the app must `join` again.
    pub terminal: bool,
}

/// The fields `HmsError` has beyond `Error`'s (its `name` is set apart, as `Error.name`).
#[derive(Debug, Clone, Serialize, Tsify)]
#[serde(rename_all = "camelCase")]
#[tsify(rename = "HmsErrorDetails")]
pub struct ErrorDetails {
    /// The numeric code.
    pub code: i32,
    /// Which call failed.
    #[tsify(type = "HmsErrorAction")]
    pub action: ErrorAction,
    /// The session is over: the app must `join` again to be in a room.
    pub is_terminal: bool,
}

impl SdkError {
    /// A non-terminal error with `name`'s code.
    pub fn new(name: ErrorName, action: ErrorAction, message: impl Into<String>) -> Self {
        Self::with_code(name.code(), action, message)
    }

    /// A non-terminal error with any code (a server's).
    pub fn with_code(code: i32, action: ErrorAction, message: impl Into<String>) -> Self {
        Self { code, message: message.into(), action, terminal: false }
    }

    /// The same error, marked terminal (the session ended with it).
    pub fn terminal(mut self) -> Self {
        self.terminal = true;
        self
    }

    /// The stable name apps branch on (`err.name`), derived from the code.
    pub fn name(&self) -> ErrorName {
        ErrorName::of(self.code)
    }

    /// What `HmsError` carries besides `name` and `message`.
    pub fn details(&self) -> ErrorDetails {
        ErrorDetails { code: self.code, action: self.action, is_terminal: self.terminal }
    }
}

/// A server's error answer as an SDK error of `action`.
pub fn from_rpc(e: hms_protocol::RpcError, action: ErrorAction) -> SdkError {
    SdkError::with_code(e.code, action, e.message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hms_protocol::code;

    #[test]
    fn names_follow_the_codes() {
        for (c, name) in [
            (6000, "NotConnected"),
            (403, "PermissionDenied"),
            (423, "RoomLocked"),
            (401, "InvalidToken"),
            (404, "NotFound"),
            (1003, "ConnectionLost"),
            (9001, "RequestTimeout"),
            (9002, "NotInitialized"),
            (409, "Conflict"),
            (5001, "AlreadyJoined"),
            (400, "BadRequest"),
            (1000, "FailedToConnect"),
            (2003, "EndpointUnreachable"),
            (500, "ServerError"),
            (503, "ServerError"),
            (599, "ServerError"),
        ] {
            assert_eq!(ErrorName::of(c).as_str(), name, "{c}");
        }
    }

    #[test]
    fn codes_and_names_are_unique() {
        for (i, a) in ErrorName::ALL.iter().enumerate() {
            for b in &ErrorName::ALL[i + 1..] {
                assert_ne!(a.code(), b.code(), "{a:?} {b:?}");
                assert_ne!(a.as_str(), b.as_str());
            }
        }
    }

    /// 100ms's web SDK codes (`ErrorCodes.ts` of @100mslive/hms-video-store) that our
    /// own errors must not take for another meaning.
    const HMS_CODES: &[(i32, &str)] = &[
        (1000, "FAILED_TO_CONNECT"),
        (1003, "WEBSOCKET_CONNECTION_LOST"),
        (1006, "ABNORMAL_CLOSE"),
        (2000, "SERVER_ERRORS"),
        (2002, "INIT_CONFIG_NOT_AVAILABLE"),
        (2003, "ENDPOINT_UNREACHABLE"),
        (2004, "INVALID_TOKEN_FORMAT"),
        (5000, "SERVER_ERRORS"),
        (5001, "ALREADY_JOINED"),
        (5002, "CANNOT_JOIN_PREVIEW_IN_PROGRESS"),
        (6000, "NOT_CONNECTED"),
        (6001, "SIGNALLING"),
        (6002, "UNKNOWN"),
        (6003, "NOT_READY"),
        (6004, "JSON_PARSING_FAILED"),
        (6005, "TRACK_METADATA_MISSING"),
        (6006, "RTC_TRACK_MISSING"),
        (6007, "PEER_METADATA_MISSING"),
        (6008, "INVALID_ROLE"),
        (6009, "PREVIEW_IN_PROGRESS"),
        (6010, "MISSING_MEDIADEVICES"),
        (6011, "MISSING_RTCPEERCONNECTION"),
        (6012, "LOCAL_STORAGE_ACCESS_DENIED"),
        (6013, "VALIDATION_FAILED"),
        (8001, "NO_ENTRY_TO_PLAY"),
        (8002, "NO_ENTRY_IS_PLAYING"),
    ];

    #[test]
    fn sdk_codes_mean_what_100ms_means_by_them_or_are_unused_there() {
        let same_meaning = [
            (ErrorName::FailedToConnect, "FAILED_TO_CONNECT"),
            (ErrorName::ConnectionLost, "WEBSOCKET_CONNECTION_LOST"),
            (ErrorName::EndpointUnreachable, "ENDPOINT_UNREACHABLE"),
            (ErrorName::AlreadyJoined, "ALREADY_JOINED"),
            (ErrorName::NotConnected, "NOT_CONNECTED"),
            (ErrorName::JsonParsingFailed, "JSON_PARSING_FAILED"),
            (ErrorName::ValidationFailed, "VALIDATION_FAILED"),
        ];
        for name in ErrorName::ALL.iter().filter(|n| n.origin() == Origin::Sdk) {
            let theirs = HMS_CODES.iter().find(|(c, _)| *c == name.code()).map(|(_, n)| *n);
            let ours = same_meaning.iter().find(|(n, _)| n == name).map(|(_, m)| *m);
            assert_eq!(theirs, ours, "{name:?} ({}) must be 100ms's code of the same meaning or one 100ms does not use", name.code());
            // 100ms's media range (3000-4999, 7000-7999) is not ours either.
            assert!(!(3000..5000).contains(&name.code()) && !(7000..8000).contains(&name.code()));
        }
    }

    #[test]
    fn server_codes_pass_through_under_the_protocols_numbers() {
        for (c, n) in [
            (code::BAD_REQUEST, ErrorName::BadRequest),
            (code::UNAUTHORIZED, ErrorName::InvalidToken),
            (code::FORBIDDEN, ErrorName::PermissionDenied),
            (code::NOT_FOUND, ErrorName::NotFound),
            (code::CONFLICT, ErrorName::Conflict),
            (code::LOCKED, ErrorName::RoomLocked),
            (code::RATE_LIMITED, ErrorName::RateLimited),
            (code::INTERNAL, ErrorName::ServerError),
            (code::PARSE_ERROR, ErrorName::ParseError),
            (code::INVALID_REQUEST, ErrorName::InvalidRequest),
            (code::METHOD_NOT_FOUND, ErrorName::MethodNotFound),
            (code::INVALID_PARAMS, ErrorName::InvalidParams),
        ] {
            assert_eq!(ErrorName::of(c), n);
            assert_eq!(n.origin(), Origin::Server);
        }
        let e = from_rpc(hms_protocol::RpcError::new(503, "cluster store unavailable"), ErrorAction::EndRoom);
        assert_eq!((e.code, e.name(), e.terminal), (503, ErrorName::ServerError, false), "unknown codes keep their number");
    }

    #[test]
    fn the_docs_table_lists_every_code() {
        let doc = include_str!("../docs/SDK.md");
        for n in ErrorName::ALL {
            let row = format!("| {} | `{}` |", n.code(), n.as_str());
            assert!(doc.contains(&row), "docs/SDK.md lacks the row starting {row:?}");
        }
    }

    #[test]
    fn typescript_union_comes_from_the_enum() {
        let ts = <ErrorName as Tsify>::DECL;
        for n in ErrorName::ALL {
            assert!(ts.contains(&format!("\"{}\"", n.as_str())), "{ts}");
        }
        assert!(ts.contains("export type HmsErrorName ="), "{ts}");
        let ts = <ErrorAction as Tsify>::DECL;
        assert!(ts.contains("\"RECONNECT_SIGNAL\"") && ts.contains("\"END_ROOM\""), "{ts}");
        let ts = <ErrorDetails as Tsify>::DECL;
        assert!(ts.contains("isTerminal: boolean") && ts.contains("action: HmsErrorAction"), "{ts}");
    }
}
