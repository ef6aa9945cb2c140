//! The JSON of every webhook: 100ms's envelope (`version`, `id`, `account_id`, `app_id`,
//! `timestamp`, `type`, `data`) and event names, with the data of each event type defined
//! once here. docs/WEBHOOKS.md shows each shape; a test compares those examples with what
//! the server really sends.

use crate::events::{By, CloseReason, Event, LeaveReason, PeerDetails, PeerRecord};
use crate::store::Encoded;
use serde::Serialize;

/// The envelope version (100ms's).
pub const VERSION: &str = "2.0";

/// A webhook body.
#[derive(Debug, Serialize)]
pub struct Envelope<'a> {
    /// Always [`VERSION`].
    pub version: &'static str,
    /// The event id: the same for every retry and every target, so a receiver can drop
    /// duplicates.
    pub id: &'a str,
    /// The server's `access_key` (one server is one 100ms "account").
    pub account_id: &'a str,
    /// The server's `access_key` again (100ms sends both fields).
    pub app_id: &'a str,
    /// When the event happened, RFC 3339 UTC with milliseconds.
    pub timestamp: String,
    /// The event type, e.g. `peer.leave.success`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The event's data.
    pub data: Data<'a>,
}

/// The data of each event type.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum Data<'a> {
    /// `session.open.success`.
    SessionOpen(SessionOpen<'a>),
    /// `session.close.success`.
    SessionClose(SessionClose<'a>),
    /// `peer.join.success`.
    PeerJoin(PeerJoin<'a>),
    /// `peer.leave.success`.
    PeerLeave(PeerLeave<'a>),
    /// `room.enable.success` / `room.disable.success`.
    Room(RoomFlag<'a>),
}

/// Who asked for an end or a removal (`null` in the JSON when it was the REST API).
#[derive(Debug, Serialize)]
pub struct Requester<'a> {
    /// The requesting peer.
    pub peer_id: &'a str,
    /// Its user id.
    pub user_id: &'a str,
}

/// `session.open.success`.
#[derive(Debug, Serialize)]
pub struct SessionOpen<'a> {
    /// The room.
    pub room_id: &'a str,
    /// Rooms have no separate name here: the room id.
    pub room_name: &'a str,
    /// The session.
    pub session_id: &'a str,
    /// When it began.
    pub session_started_at: String,
    /// The role template.
    pub template_id: &'a str,
}

/// `session.close.success`.
#[derive(Debug, Serialize)]
pub struct SessionClose<'a> {
    /// The room.
    pub room_id: &'a str,
    /// The room id again.
    pub room_name: &'a str,
    /// The session.
    pub session_id: &'a str,
    /// When it began.
    pub session_started_at: String,
    /// When it ended.
    pub session_stopped_at: String,
    /// Seconds it lasted.
    pub session_duration: u64,
    /// `room ended`, `room empty`, `server shutdown` or `server stopped`.
    pub reason: &'static str,
    /// The reason given with end-room (empty otherwise).
    pub message: &'a str,
    /// Whether an end-room ended it.
    pub room_end: bool,
    /// Whether the end-room also locked (disabled) the room.
    pub lock_room: bool,
    /// The peer that ended it; `null` for the REST API or when no one did.
    pub requested_by: Option<Requester<'a>>,
}

/// The peer fields of `peer.join.success` and `peer.leave.success`.
#[derive(Debug, Serialize)]
pub struct PeerData<'a> {
    /// The room.
    pub room_id: &'a str,
    /// The room id again.
    pub room_name: &'a str,
    /// The session.
    pub session_id: &'a str,
    /// The peer.
    pub peer_id: &'a str,
    /// The token's user id.
    pub user_id: &'a str,
    /// The name given at join.
    pub user_name: &'a str,
    /// The metadata given at join.
    pub user_data: &'a str,
    /// The role.
    pub role: &'a str,
    /// When it joined.
    pub joined_at: String,
}

/// `peer.join.success`.
#[derive(Debug, Serialize)]
pub struct PeerJoin<'a> {
    /// Who joined.
    #[serde(flatten)]
    pub peer: PeerData<'a>,
    /// The role template.
    pub template_id: &'a str,
}

/// `peer.leave.success`.
#[derive(Debug, Serialize)]
pub struct PeerLeave<'a> {
    /// Who left.
    #[serde(flatten)]
    pub peer: PeerData<'a>,
    /// When it left.
    pub left_at: String,
    /// Seconds it was in the room.
    pub duration: u64,
    /// Why, one of [`leave_reason`]'s values.
    pub reason: &'static str,
    /// The reason given by whoever removed it or ended the room (empty otherwise).
    pub message: &'a str,
    /// Who removed it or ended the room; `null` for the REST API or when no one did.
    pub requested_by: Option<Requester<'a>>,
}

/// `room.enable.success` / `room.disable.success`.
#[derive(Debug, Serialize)]
pub struct RoomFlag<'a> {
    /// The room.
    pub room_id: &'a str,
    /// The room id again.
    pub room_name: &'a str,
    /// The new flag.
    pub enabled: bool,
    /// When it changed.
    pub updated_at: String,
}

/// Every event type, in the order docs/WEBHOOKS.md lists them.
pub const TYPES: [&str; 6] =
    ["session.open.success", "session.close.success", "peer.join.success", "peer.leave.success", "room.enable.success", "room.disable.success"];

/// RFC 3339 UTC with milliseconds, e.g. `2026-05-25T10:15:04.123Z`.
pub fn rfc3339(ms: u64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

fn secs_between(from_ms: u64, to_ms: u64) -> u64 {
    to_ms.saturating_sub(from_ms) / 1000
}

fn requester(by: &By) -> Option<Requester<'_>> {
    match by {
        By::Peer { peer_id, user_id } => Some(Requester { peer_id, user_id }),
        By::Api => None,
    }
}

/// A peer leave's `reason`, `message` and `requested_by`. The first four values are
/// 100ms's own.
pub fn leave_reason(r: &LeaveReason) -> (&'static str, &str, Option<Requester<'_>>) {
    match r {
        LeaveReason::Left => ("client request", "", None),
        LeaveReason::Removed { by: by @ By::Peer { .. }, message } => ("peer kicked", message, requester(by)),
        LeaveReason::Removed { by: By::Api, message } => ("server removed peer", message, None),
        LeaveReason::ConnectionLost => ("websocket closed", "", None),
        LeaveReason::RoomEnded { by, message } => ("room ended", message, requester(by)),
        LeaveReason::LimitExceeded => ("limit exceeded", "", None),
        LeaveReason::ServerShutdown => ("server shutdown", "", None),
        LeaveReason::ServerStopped => ("server stopped", "", None),
    }
}

fn peer_data<'a>(room_id: &'a str, session_id: &'a str, p: &'a PeerRecord, d: &'a PeerDetails) -> PeerData<'a> {
    PeerData {
        room_id,
        room_name: room_id,
        session_id,
        peer_id: &p.peer_id,
        user_id: &p.user_id,
        user_name: &d.name,
        user_data: &d.data,
        role: &p.role,
        joined_at: rfc3339(d.joined_at),
    }
}

/// The type and data of `e`; `details` are its peer's, if it is about one.
pub fn data<'a>(e: &'a Event, details: &'a PeerDetails, template_id: &'a str) -> (&'static str, Data<'a>) {
    match e {
        Event::SessionOpened { room_id, session_id, at } => (
            "session.open.success",
            Data::SessionOpen(SessionOpen { room_id, room_name: room_id, session_id, session_started_at: rfc3339(*at), template_id }),
        ),
        Event::SessionClosed { room_id, session_id, started_at, at, reason } => {
            let (why, message, room_end, lock_room, by) = match reason {
                CloseReason::Ended { by, message, locked } => ("room ended", message.as_str(), true, *locked, requester(by)),
                CloseReason::Emptied => ("room empty", "", false, false, None),
                CloseReason::ServerShutdown => ("server shutdown", "", false, false, None),
                CloseReason::ServerStopped => ("server stopped", "", false, false, None),
            };
            let close = SessionClose {
                room_id,
                room_name: room_id,
                session_id,
                session_started_at: rfc3339(*started_at),
                session_stopped_at: rfc3339(*at),
                session_duration: secs_between(*started_at, *at),
                reason: why,
                message,
                room_end,
                lock_room,
                requested_by: by,
            };
            ("session.close.success", Data::SessionClose(close))
        }
        Event::PeerJoined { room_id, session_id, peer } => {
            ("peer.join.success", Data::PeerJoin(PeerJoin { peer: peer_data(room_id, session_id, peer, details), template_id }))
        }
        Event::PeerLeft { room_id, session_id, peer, at, reason } => {
            let (reason, message, requested_by) = leave_reason(reason);
            let leave = PeerLeave {
                peer: peer_data(room_id, session_id, peer, details),
                left_at: rfc3339(*at),
                duration: secs_between(details.joined_at, *at),
                reason,
                message,
                requested_by,
            };
            ("peer.leave.success", Data::PeerLeave(leave))
        }
        Event::RoomEnabled { room_id, enabled, at } => {
            let kind = if *enabled { "room.enable.success" } else { "room.disable.success" };
            (kind, Data::Room(RoomFlag { room_id, room_name: room_id, enabled: *enabled, updated_at: rfc3339(*at) }))
        }
    }
}

/// The outbox row of `e`: a fresh event id and the body to sign and send.
pub fn encode(e: &Event, account_id: &str, template_id: &str) -> Encoded {
    // A random (v4) UUID from the thread's CSPRNG: no system call per event.
    let id = uuid::Builder::from_random_bytes(rand::random()).into_uuid().to_string();
    // A peer's JSON is read once here, on the store's thread, not under the rooms' lock.
    let details = match e {
        Event::PeerJoined { peer, .. } | Event::PeerLeft { peer, .. } => peer.details(),
        _ => PeerDetails::default(),
    };
    let at = match e {
        Event::PeerJoined { .. } => details.joined_at,
        other => other.at(),
    };
    let (kind, data) = data(e, &details, template_id);
    let env = Envelope { version: VERSION, id: &id, account_id, app_id: account_id, timestamp: rfc3339(at), kind, data };
    // Serializing plain structs of strings, numbers and bools cannot fail.
    let body = serde_json::to_string(&env).unwrap_or_default();
    Encoded { id, kind, body }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn timestamps_are_rfc3339_utc_with_milliseconds() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_779_704_104_123), "2026-05-25T10:15:04.123Z");
        assert_eq!(rfc3339(951_782_400_007), "2000-02-29T00:00:00.007Z");
    }

    #[test]
    fn a_leave_by_room_end_names_who_and_why() {
        let peer = PeerRecord::new("p", "u", "guest", &PeerDetails { name: "Pat".into(), data: "{}".into(), joined_at: 1_000 });
        let by = By::Peer { peer_id: "h".into(), user_id: "uh".into() };
        let e = Event::PeerLeft {
            room_id: "r".into(),
            session_id: "s".into(),
            peer,
            at: 62_500,
            reason: LeaveReason::RoomEnded { by, message: "done".into() },
        };
        let enc = encode(&e, "acc", "default");
        let v: Value = serde_json::from_str(&enc.body).unwrap();
        assert_eq!((v["version"].as_str(), v["type"].as_str(), v["id"].as_str()), (Some("2.0"), Some("peer.leave.success"), Some(enc.id.as_str())));
        assert_eq!((v["account_id"].as_str(), v["app_id"].as_str()), (Some("acc"), Some("acc")));
        let d = &v["data"];
        assert_eq!((d["reason"].as_str(), d["message"].as_str(), d["duration"].as_u64()), (Some("room ended"), Some("done"), Some(61)));
        assert_eq!((d["requested_by"]["peer_id"].as_str(), d["requested_by"]["user_id"].as_str()), (Some("h"), Some("uh")));
        assert_eq!((d["user_name"].as_str(), d["role"].as_str(), d["joined_at"].as_str()), (Some("Pat"), Some("guest"), Some("1970-01-01T00:00:01.000Z")));
        assert_ne!(encode(&e, "acc", "default").id, enc.id, "every event gets its own id");
    }
}
