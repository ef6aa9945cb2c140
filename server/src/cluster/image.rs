//! A room's mirror in Redis: one hash per room (`hms:room:{id}:mirror`) with a field per
//! record, so a join or a leave rewrites one field, not the room: `s` the session,
//! `p:<peer>` a peer's place, `t:<peer>` a peer's tombstone, each JSON.

use crate::room::mirror::{PeerImage, RoomImage, SessionImage, TombImage};
use serde::Serialize;

/// One field to write; an empty value deletes it.
pub type Field = (String, String);

fn json<T: Serialize>(v: &T) -> String {
    // These types are plain data: encoding them cannot fail.
    serde_json::to_string(v).unwrap_or_default()
}

/// Every field of a whole room (written over whatever the hash had).
pub fn all_fields(image: &RoomImage) -> Vec<Field> {
    let mut out = Vec::new();
    if let Some(s) = &image.session {
        out.push(("s".to_owned(), json(s)));
    }
    out.extend(image.peers.iter().map(place_field));
    out.extend(image.tombstones.iter().map(|t| (format!("t:{}", t.peer_id), json(t))));
    out
}

/// The field of one peer's place.
pub fn place_field(p: &PeerImage) -> Field {
    (format!("p:{}", p.peer_id), json(p))
}

/// The fields of the session and of some peers as they stand (deleting what is gone).
pub fn peer_fields(session: Option<SessionImage>, peers: Vec<(String, Option<PeerImage>, Option<TombImage>)>) -> Vec<Field> {
    let mut out = vec![("s".to_owned(), session.as_ref().map(json).unwrap_or_default())];
    for (id, place, tomb) in peers {
        out.push((format!("p:{id}"), place.as_ref().map(json).unwrap_or_default()));
        out.push((format!("t:{id}"), tomb.as_ref().map(json).unwrap_or_default()));
    }
    out
}

/// The room from the hash's fields (HGETALL); unreadable fields are skipped and logged.
pub fn from_fields(fields: Vec<(String, String)>) -> RoomImage {
    let mut image = RoomImage::default();
    for (k, v) in fields {
        let ok = if k == "s" {
            serde_json::from_str(&v).map(|s| image.session = Some(s)).is_ok()
        } else if k.starts_with("p:") {
            serde_json::from_str(&v).map(|p| image.peers.push(p)).is_ok()
        } else if k.starts_with("t:") {
            serde_json::from_str(&v).map(|t| image.tombstones.push(t)).is_ok()
        } else {
            false
        };
        if !ok {
            tracing::error!(field = ?k, "an unreadable field in a room's mirror was skipped");
        }
    }
    image
}

#[cfg(test)]
mod tests {
    use super::*;
    use hms_protocol::PeerLeaveRequest;

    #[test]
    fn a_room_round_trips_through_its_fields() {
        let image = RoomImage {
            session: Some(SessionImage { id: "s".into(), started_at: 1 }),
            peers: vec![PeerImage { peer_id: "a".into(), user_id: "u".into(), role: "host".into(), seq: 3, secret: crate::room::SecretHash::of("s"), json: r#"{"peer_id":"a"}"#.into() }],
            tombstones: vec![TombImage { peer_id: "b".into(), user_id: "v".into(), secret: None, notice: PeerLeaveRequest { requested_by: None, reason: "x".into(), room_end: false }, until_ms: 9 }],
        };
        assert_eq!(from_fields(all_fields(&image)), image);
        let some = peer_fields(None, vec![("a".into(), None, None)]);
        assert_eq!(some, [("s".to_owned(), String::new()), ("p:a".to_owned(), String::new()), ("t:a".to_owned(), String::new())]);
    }
}
