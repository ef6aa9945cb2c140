//! The load tool against a small in-test mock of the server's end-room contract, with
//! faults injected: a clean run must pass (exit 0, `load: 1 passed, 0 failed`), and a
//! lost push, a duplicated push, a wrong reason or a missing answer must each fail
//! (exit 1, `load: 0 passed, 1 failed`). The real server is exercised by
//! scripts/load-smoke.sh; this proves the tool's verdict can fail at all.

// The handshake callback's error type is tungstenite's, not ours.
#![allow(clippy::result_large_err)]

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::process::Command;
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::Message;

#[derive(Clone, Copy, PartialEq)]
enum Fault {
    None,
    /// The first guest of each room gets no push.
    LosePush,
    /// The first guest of each room gets its push twice.
    DuplicatePush,
    /// Every push carries another reason.
    WrongReason,
    /// The host's end-room is never answered.
    NoAnswer,
}

type Peer = (String, mpsc::UnboundedSender<Message>);
type Rooms = Arc<Mutex<HashMap<String, Vec<Peer>>>>;

fn room_of(token: &str) -> Option<String> {
    use base64::Engine;
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).ok()?;
    let claims: Value = serde_json::from_slice(&bytes).ok()?;
    claims["room_id"].as_str().map(str::to_owned)
}

async fn serve(listener: TcpListener, fault: Fault) {
    let rooms: Rooms = Arc::default();
    while let Ok((stream, _)) = listener.accept().await {
        let rooms = rooms.clone();
        // Without it, small pushes wait out Nagle + delayed ACK (~40 ms).
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let mut query = String::new();
            let cb = |req: &Request, resp: Response| {
                query = req.uri().query().unwrap_or_default().to_owned();
                Ok(resp)
            };
            let Ok(ws) = tokio_tungstenite::accept_hdr_async(stream, cb).await else { return };
            let params: HashMap<&str, &str> = query.split('&').filter_map(|kv| kv.split_once('=')).collect();
            let peer = params.get("peer").copied().unwrap_or_default().to_owned();
            let Some(room) = params.get("token").and_then(|t| room_of(t)) else { return };
            let (mut sink, mut stream) = ws.split();
            let (tx, mut rx) = mpsc::unbounded_channel::<Message>();
            tokio::spawn(async move {
                while let Some(m) = rx.recv().await {
                    let close = matches!(m, Message::Close(_));
                    if sink.send(m).await.is_err() || close {
                        break;
                    }
                }
            });
            while let Some(Ok(Message::Text(text))) = stream.next().await {
                let req: Value = serde_json::from_str(text.as_str()).unwrap();
                let id = req["id"].clone();
                let answer = |result: Value| Message::Text(json!({"jsonrpc": "2.0", "id": id, "result": result}).to_string().into());
                match req["method"].as_str().unwrap_or_default() {
                    "join" => {
                        rooms.lock().unwrap().entry(room.clone()).or_default().push((peer.clone(), tx.clone()));
                        let _ = tx.send(answer(json!({})));
                    }
                    "ping" => {
                        let _ = tx.send(answer(req["params"].clone()));
                    }
                    "end-room" => {
                        let reason = req["params"]["reason"].as_str().unwrap_or_default().to_owned();
                        let peers = rooms.lock().unwrap().remove(&room).unwrap_or_default();
                        let reason = if fault == Fault::WrongReason { format!("{reason}!") } else { reason };
                        let push = json!({"method": "on-peer-leave-request", "params": {"requested_by": peer, "reason": reason, "room_end": true}});
                        let mut first = true;
                        for (p, t) in peers.iter().filter(|(p, _)| *p != peer) {
                            let _ = p;
                            let times = match (fault, first) {
                                (Fault::LosePush, true) => 0,
                                (Fault::DuplicatePush, true) => 2,
                                _ => 1,
                            };
                            first = false;
                            for _ in 0..times {
                                let _ = t.send(Message::Text(push.to_string().into()));
                            }
                        }
                        if fault != Fault::NoAnswer {
                            let _ = tx.send(answer(json!({})));
                        }
                        for (_, t) in &peers {
                            let _ = t.send(Message::Close(None));
                        }
                    }
                    _ => {}
                }
            }
        });
    }
}

/// Runs the tool against a mock with `fault`; returns (exit code, stdout).
fn run_tool(fault: Fault) -> (i32, String) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let listener = rt.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
    let addr = listener.local_addr().unwrap();
    rt.spawn(serve(listener, fault));
    let out = Command::new(env!("CARGO_BIN_EXE_hms-loadtest"))
        .args(["--url", &format!("ws://{addr}"), "--secret", "test-secret", "--peers", "30", "--rooms", "3", "--timeout-s", "30"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    (out.status.code().unwrap_or(-1), stdout)
}

fn last_line(s: &str) -> &str {
    s.lines().last().unwrap_or_default()
}

#[test]
fn a_clean_run_passes() {
    let (code, out) = run_tool(Fault::None);
    assert_eq!(code, 0, "{out}");
    assert_eq!(last_line(&out), "load: 1 passed, 0 failed", "{out}");
    assert!(out.contains("27 guests got exactly one"), "{out}");
}

#[test]
fn a_lost_push_fails() {
    let (code, out) = run_tool(Fault::LosePush);
    assert_eq!(code, 1, "{out}");
    assert_eq!(last_line(&out), "load: 0 passed, 1 failed", "{out}");
    assert!(out.contains("lost: no on-peer-leave-request"), "{out}");
}

#[test]
fn a_duplicated_push_fails() {
    let (code, out) = run_tool(Fault::DuplicatePush);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("duplicated: 2"), "{out}");
    assert_eq!(last_line(&out), "load: 0 passed, 1 failed", "{out}");
}

#[test]
fn a_wrong_reason_fails() {
    let (code, out) = run_tool(Fault::WrongReason);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("reason"), "{out}");
}

#[test]
fn an_unanswered_end_room_fails() {
    let (code, out) = run_tool(Fault::NoAnswer);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("end-room was not answered"), "{out}");
}
