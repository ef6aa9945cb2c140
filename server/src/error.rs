//! The server's one error type. Every variant maps to a stable protocol code
//! ([`hms_protocol::code`]): the WebSocket answers with it as a JSON-RPC error, the REST
//! API as the HTTP status and `{"code", "message"}`.

use hms_protocol::{code, Action, RpcError};
use std::fmt;

/// Why a use case, a room operation, the store or start-up failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// 400: the request makes no sense in the current state, or its input is malformed.
    BadRequest(String),
    /// 400: a method other than `join` / `ping` before `join`.
    NotJoined,
    /// 401: the token is missing, malformed, forged, expired or of the wrong kind.
    Unauthorized(String),
    /// 403: the caller's role lacks the permission `Action` needs.
    Forbidden(Action),
    /// 404: no such peer, room, session or room code.
    NotFound(String),
    /// 409: the peer id is taken, the peer has joined already, the room is already ending.
    Conflict(String),
    /// 423: the room is locked (disabled) and refuses joins.
    Locked,
    /// 429: over a rate or count limit.
    RateLimited(String),
    /// 429: too many of these too fast; the next one is allowed after this many seconds
    /// (the REST API sends it as `Retry-After`). The message says what was limited.
    Throttled(String, u64),
    /// 500, with a message safe to show a client (details are logged where they happen).
    Internal(String),
    /// The database failed; the detail is for the log only. Use cases turn it into
    /// [`Error::Internal`] with a message for the caller.
    Store(String),
    /// Start-up: a bad config file, flag, secret or data dir. Never sent to a client.
    Config(String),
}

/// Results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The protocol code (also the HTTP status of the REST API).
    pub fn code(&self) -> i32 {
        match self {
            Error::BadRequest(_) | Error::NotJoined => code::BAD_REQUEST,
            Error::Unauthorized(_) => code::UNAUTHORIZED,
            Error::Forbidden(_) => code::FORBIDDEN,
            Error::NotFound(_) => code::NOT_FOUND,
            Error::Conflict(_) => code::CONFLICT,
            Error::Locked => code::LOCKED,
            Error::RateLimited(_) | Error::Throttled(..) => code::RATE_LIMITED,
            Error::Internal(_) | Error::Store(_) | Error::Config(_) => code::INTERNAL,
        }
    }

    /// The JSON-RPC error object for this error.
    pub fn to_rpc(&self) -> RpcError {
        match self {
            Error::NotJoined => RpcError::not_joined(),
            Error::Forbidden(action) => RpcError::forbidden(action.permission_name()),
            // A store failure that reached a client unconverted still leaks no detail.
            Error::Store(_) => RpcError::new(code::INTERNAL, "the server could not access its database"),
            other => RpcError::new(other.code(), other.to_string()),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::BadRequest(m)
            | Error::Unauthorized(m)
            | Error::NotFound(m)
            | Error::Conflict(m)
            | Error::RateLimited(m)
            | Error::Internal(m)
            | Error::Store(m)
            | Error::Config(m) => f.write_str(m),
            Error::Throttled(what, secs) => write!(f, "{what}; retry in {secs} s"),
            Error::NotJoined => f.write_str(&RpcError::not_joined().message),
            Error::Forbidden(a) => f.write_str(&RpcError::forbidden(a.permission_name()).message),
            Error::Locked => f.write_str("the room is locked: it was ended with lock and is disabled until re-enabled"),
        }
    }
}

impl std::error::Error for Error {}

impl From<Error> for RpcError {
    fn from(e: Error) -> Self {
        e.to_rpc()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_has_its_protocol_code_and_a_message() {
        let all = [
            (Error::BadRequest("b".into()), 400),
            (Error::NotJoined, 400),
            (Error::Unauthorized("u".into()), 401),
            (Error::Forbidden(Action::EndRoom), 403),
            (Error::NotFound("n".into()), 404),
            (Error::Conflict("c".into()), 409),
            (Error::Locked, 423),
            (Error::RateLimited("r".into()), 429),
            (Error::Throttled("too many joins".into(), 3), 429),
            (Error::Internal("i".into()), 500),
            (Error::Store("disk I/O error at /secret/path".into()), 500),
        ];
        for (e, code) in all {
            let rpc = e.to_rpc();
            assert_eq!((e.code(), rpc.code), (code, code), "{e:?}");
            assert!(!rpc.message.is_empty());
        }
        assert!(Error::Forbidden(Action::EndRoom).to_rpc().message.contains("endRoom"));
        assert!(!Error::Store("/secret/path".into()).to_rpc().message.contains("secret"), "store details stay in the log");
    }
}
