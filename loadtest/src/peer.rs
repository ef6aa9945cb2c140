//! One load peer: a real WebSocket that joins, pings, (host only) ends its room, and
//! records every `on-peer-leave-request` it gets until the server closes the socket.

use crate::verify::{PeerReport, Received};
use futures_util::{SinkExt, StreamExt};
use hms_protocol::{method, ClientCall, ClientRequest, EndRoomParams, JoinParams, PeerLeaveRequest, PingParams, ServerFrame};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::{mpsc, watch, Semaphore};
use tokio_tungstenite::tungstenite::Message;

/// Request ids this tool uses (one request of each kind at a time per peer).
const JOIN_ID: &str = "join";
const END_ID: &str = "end";

/// Frames larger than this are only searched for the method the tool cares about, never
/// parsed: in a big room every join sends the joiner a `peer-list` of everyone, and
/// parsing megabytes of it per peer would measure this tool instead of the server.
const PARSE_LIMIT: usize = 4096;

/// What a peer needs to run.
pub struct PeerJob {
    /// `ws://127.0.0.1:PORT/ws?peer=..&token=..`.
    pub url: String,
    /// Where its observations go.
    pub report: PeerReport,
    /// Host only: the reason it ends its room with.
    pub end_reason: Option<String>,
    /// Heartbeat interval (the server drops silent peers).
    pub ping_every: Duration,
    /// Longest a connect + join may take.
    pub join_timeout: Duration,
}

/// Coordination with the run.
#[derive(Clone)]
pub struct Signals {
    /// Bounds how many peers connect and join at once.
    pub join_permits: Arc<Semaphore>,
    /// Told once per peer when its join succeeded (`true`) or failed (`false`).
    pub joined: mpsc::UnboundedSender<bool>,
    /// Becomes `true` when the hosts are to end their rooms.
    pub end: watch::Receiver<bool>,
    /// Becomes `true` when the run is over, whatever the state: return at once.
    pub stop: watch::Receiver<bool>,
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

fn request(id: &str, call: &ClientCall) -> Result<Message, String> {
    serde_json::to_string(&ClientRequest::new(id, call))
        .map(|s| Message::Text(s.into()))
        .map_err(|e| format!("encoding {}: {e}", call.method()))
}

/// What one text frame meant for this peer.
#[derive(Debug, PartialEq)]
pub enum Seen {
    /// `on-peer-leave-request` with these params.
    LeaveRequest(PeerLeaveRequest),
    /// The answer to request `id`: `Ok(result)` or `Err(error text)`.
    Answer(String, Result<serde_json::Value, String>),
    /// `on-error`: terminal.
    Error(String),
    /// Anything else (`peer-list`, `on-peer-join`, ...).
    Other,
}

/// Classifies a text frame, parsing only what matters (see [`PARSE_LIMIT`]).
pub fn classify(text: &str) -> Seen {
    let interesting = text.contains(method::ON_PEER_LEAVE_REQUEST);
    if text.len() > PARSE_LIMIT && !interesting {
        return Seen::Other;
    }
    // In a room of n peers every join sends n-1 `on-peer-join` pushes: skip the frames
    // that are neither an answer (they carry `"id"`) nor a push this tool acts on,
    // without parsing them. (`"peer_id"`, `"user_id"`... do not contain `"id"`.)
    if !interesting && !text.contains("\"id\"") && !text.contains(method::ON_ERROR) {
        return Seen::Other;
    }
    let frame: ServerFrame<serde_json::Value> = match serde_json::from_str(text) {
        Ok(f) => f,
        Err(e) => return Seen::Error(format!("unreadable frame ({e}): {}", truncate(text))),
    };
    match (frame.id, frame.method.as_deref()) {
        (Some(id), _) => {
            let answer = match (frame.result, frame.error) {
                (_, Some(err)) => Err(err.to_string()),
                (Some(result), None) => Ok(result),
                (None, None) => Err("answer with neither result nor error".into()),
            };
            Seen::Answer(id, answer)
        }
        (None, Some(method::ON_PEER_LEAVE_REQUEST)) => {
            match frame.params.map(serde_json::from_value::<PeerLeaveRequest>) {
                Some(Ok(p)) => Seen::LeaveRequest(p),
                Some(Err(e)) => Seen::Error(format!("bad on-peer-leave-request params: {e}")),
                None => Seen::Error("on-peer-leave-request without params".into()),
            }
        }
        (None, Some(method::ON_ERROR)) => Seen::Error(format!("on-error {}", frame.params.unwrap_or_default())),
        _ => Seen::Other,
    }
}

fn truncate(text: &str) -> &str {
    let mut end = text.len().min(200);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Resolves once `rx` holds `true` (or its sender is gone); the watch guard is dropped
/// inside, so the future stays `Send`.
async fn signalled(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|v| *v).await;
}

/// Runs one peer to the end of the run and returns what it saw.
pub async fn run(job: PeerJob, mut sig: Signals) -> PeerReport {
    let mut report = job.report;
    let permit = tokio::select! {
        p = sig.join_permits.clone().acquire_owned() => p.ok(),
        _ = signalled(&mut sig.stop) => None,
    };
    let Some(permit) = permit else {
        report.errors.push("stopped before it could connect".into());
        let _ = sig.joined.send(false);
        return report;
    };
    let started = Instant::now();
    let joined = tokio::select! {
        r = tokio::time::timeout(job.join_timeout, connect_and_join(&job.url, &report.peer_id)) => {
            r.unwrap_or_else(|_| Err(format!("connect + join took longer than {:?}", job.join_timeout)))
        }
        _ = signalled(&mut sig.stop) => Err("stopped while joining".into()),
    };
    drop(permit);
    let ws = match joined {
        Ok(ws) => {
            report.join_latency = Some(started.elapsed());
            let _ = sig.joined.send(true);
            ws
        }
        Err(e) => {
            report.errors.push(format!("join: {e}"));
            let _ = sig.joined.send(false);
            return report;
        }
    };
    let (mut tx, mut rx) = ws.split();
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + job.ping_every, job.ping_every);
    let mut pings: u64 = 0;
    let mut end_pending = job.end_reason.clone();
    // A second handle on the end signal to read its state while `sig.end` is awaited.
    let ended = sig.end.clone();
    loop {
        tokio::select! {
            frame = rx.next() => {
                let at = Instant::now();
                match frame {
                    Some(Ok(Message::Text(text))) => match classify(text.as_str()) {
                        Seen::LeaveRequest(push) => report.leave_requests.push(Received { push, at }),
                        Seen::Answer(id, answer) if id == END_ID => report.end_answer = Some((at, answer)),
                        Seen::Answer(id, Err(e)) => report.errors.push(format!("request {id} failed: {e}")),
                        Seen::Error(e) => report.errors.push(e),
                        Seen::Answer(..) | Seen::Other => {}
                    },
                    Some(Ok(Message::Close(_))) | None => {
                        if !*ended.borrow() {
                            report.errors.push("the server closed the socket before the room was ended".into());
                        }
                        report.closed_by_server = true;
                        return report;
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => {
                        // A reset right after the room ended is still the server closing it.
                        if *ended.borrow() && (!report.leave_requests.is_empty() || report.end_answer.is_some()) {
                            report.closed_by_server = true;
                        } else {
                            report.errors.push(format!("socket: {e}"));
                        }
                        return report;
                    }
                }
            }
            _ = ping.tick() => {
                pings += 1;
                let call = ClientCall::Ping(PingParams { timestamp: now_ms() });
                if let Ok(msg) = request(&format!("ping-{pings}"), &call) {
                    // After the room ends the socket may already be closing: not an error.
                    let _ = tx.send(msg).await;
                }
            }
            _ = signalled(&mut sig.end), if end_pending.is_some() => {
                let reason = end_pending.take().unwrap_or_default();
                let call = ClientCall::EndRoom(EndRoomParams { lock: false, reason });
                match request(END_ID, &call) {
                    Ok(msg) => {
                        report.end_sent_at = Some(Instant::now());
                        if let Err(e) = tx.send(msg).await {
                            report.errors.push(format!("sending end-room: {e}"));
                        }
                    }
                    Err(e) => report.errors.push(e),
                }
            }
            _ = signalled(&mut sig.stop) => return report,
        }
    }
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect_and_join(url: &str, name: &str) -> Result<Ws, String> {
    // Small buffers: the library's defaults (128 KiB each way) would make the tool, not
    // the server, the memory limit of a big run.
    let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .read_buffer_size(8 * 1024)
        .write_buffer_size(0);
    let (mut ws, _) = tokio_tungstenite::connect_async_with_config(url, Some(config), true)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let call = ClientCall::Join(JoinParams { name: name.to_owned(), data: String::new() });
    ws.send(request(JOIN_ID, &call)?).await.map_err(|e| format!("sending join: {e}"))?;
    while let Some(frame) = ws.next().await {
        match frame.map_err(|e| format!("socket: {e}"))? {
            Message::Text(text) => match classify(text.as_str()) {
                Seen::Answer(id, Ok(_)) if id == JOIN_ID => return Ok(ws),
                Seen::Answer(id, Err(e)) if id == JOIN_ID => return Err(e),
                Seen::Error(e) => return Err(e),
                _ => {}
            },
            Message::Close(c) => return Err(format!("closed before the join was answered: {c:?}")),
            _ => {}
        }
    }
    Err("closed before the join was answered".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_frames() {
        assert_eq!(
            classify(r#"{"method":"on-peer-leave-request","params":{"requested_by":"h","reason":"bye","room_end":true}}"#),
            Seen::LeaveRequest(PeerLeaveRequest { requested_by: Some("h".into()), reason: "bye".into(), room_end: true })
        );
        assert_eq!(classify(r#"{"jsonrpc":"2.0","id":"end","result":{}}"#), Seen::Answer("end".into(), Ok(serde_json::json!({}))));
        assert!(matches!(
            classify(r#"{"jsonrpc":"2.0","id":"end","error":{"code":403,"message":"no"}}"#),
            Seen::Answer(id, Err(e)) if id == "end" && e.contains("403")
        ));
        assert!(matches!(classify(r#"{"method":"on-error","params":{"code":401,"message":"bad token"}}"#), Seen::Error(e) if e.contains("401")));
        assert_eq!(classify(r#"{"method":"on-peer-join","params":{}}"#), Seen::Other);
        assert_eq!(
            classify(r#"{"method":"on-peer-join","params":{"peer_id":"p","info":{"user_id":"u"},"room_id":"r"}}"#),
            Seen::Other
        );
        assert!(matches!(classify(r#"{"id":"join","error":{"code":401,"message":"bad token"}}"#), Seen::Answer(id, Err(_)) if id == "join"));
        assert!(matches!(classify(r#"{"id":"x" not json"#), Seen::Error(_)));
    }

    #[test]
    fn big_frames_are_skipped_unless_they_are_leave_requests() {
        let big_list = format!(r#"{{"method":"peer-list","params":{{"x":"{}"}}}}"#, "a".repeat(PARSE_LIMIT));
        assert_eq!(classify(&big_list), Seen::Other);
        let big_push = format!(
            r#"{{"method":"on-peer-leave-request","params":{{"reason":"{}","room_end":true}}}}"#,
            "r".repeat(PARSE_LIMIT)
        );
        assert!(matches!(classify(&big_push), Seen::LeaveRequest(p) if p.reason.len() == PARSE_LIMIT && p.requested_by.is_none()));
    }
}
