//! The WebSocket transport: the upgrade handshake, connections per IP, and for each
//! connection a reader (frame size and rate limits, idle timeout) and a writer (drains
//! the connection's queue, fragments big messages, flushes once per burst). What a frame
//! means is [`crate::signaling`]'s business; this module never looks inside one.

use crate::app::{App, Opened};
use crate::conn::{Close, Out, Outbox};
use crate::edge::Client;
use crate::frame::{self, Text};
use crate::metrics::Refusal;
use crate::signaling::{self, Ctx};
use axum::extract::{Query, State};
use axum::Extension;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::IntoResponse;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use hms_protocol::{code, RpcError, ServerPush};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::protocol::frame::coding::{CloseCode, Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Bytes, Message};
use tokio_tungstenite::WebSocketStream;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// An upgraded connection.
pub type WebSocket = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

/// A connection's buffers, the largest part of its memory (docs/SERVER.md, "Memory per
/// connection"). Tungstenite allocates `read` up front, and grows its output buffer to
/// what it was ever asked to hold at once (about `write` plus one frame) and keeps that
/// capacity for the connection's life: so text messages longer than `fragment` go out
/// as fragments of that size (RFC 6455 section 5.4: the receiver reassembles them; the
/// message is unchanged). Control frames are small, and the biggest messages (a small
/// room's `peer-list`, a large room's `on-peer-batch`) are a few fragments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Buffers {
    read: usize,
    write: usize,
    fragment: usize,
}

const BUFFERS: Buffers = Buffers { read: 1024, write: 2 * 1024, fragment: 2 * 1024 };

/// The buffer sizes in force: [`BUFFERS`], or `HMS_WS_BUFFERS=read:write:fragment` (bytes),
/// which exists only to measure what each size costs (scripts/memory-ab.sh) in one build.
fn buffers() -> Buffers {
    static B: std::sync::OnceLock<Buffers> = std::sync::OnceLock::new();
    *B.get_or_init(|| {
        let Ok(v) = std::env::var("HMS_WS_BUFFERS") else { return BUFFERS };
        let n: Vec<usize> = v.split(':').filter_map(|x| x.parse().ok()).collect();
        match n[..] {
            [read, write, fragment] if read >= 256 && fragment >= 256 => Buffers { read, write, fragment },
            _ => {
                tracing::warn!("HMS_WS_BUFFERS must be read:write:fragment in bytes (each at least 256); using the defaults");
                BUFFERS
            }
        }
    })
}

/// The WebSocket close code and reason for each way a connection ends.
fn close_frame(why: Close) -> (u16, &'static str) {
    match why {
        Close::Left => (1000, "left"),
        Close::Removed => (1000, "removed"),
        Close::RoomEnded => (1000, "room ended"),
        Close::Done => (1000, "closing"),
        Close::Replaced => (1008, "replaced"),
        Close::ShuttingDown => (1001, "server shutting down"),
        Close::IdleTimeout => (1001, "idle timeout"),
        Close::FrameTooLarge => (1009, "frame too large"),
        Close::RateLimited => (1008, "rate limit exceeded"),
    }
}

fn close_msg(code: u16, reason: &'static str) -> Message {
    Message::Close(Some(CloseFrame { code: CloseCode::from(code), reason: reason.into() }))
}

/// The frames of one outgoing text message: one `Message::Text` when small,
/// continuation fragments when big. Each points into the shared frame: no copy and no
/// allocation per connection.
enum TextFrames {
    One(Option<Message>),
    Fragments { bytes: Bytes, at: usize },
}

impl Iterator for TextFrames {
    type Item = Message;

    fn next(&mut self) -> Option<Message> {
        match self {
            TextFrames::One(m) => m.take(),
            TextFrames::Fragments { bytes, at } => {
                if *at >= bytes.len() {
                    return None;
                }
                let end = (*at + buffers().fragment).min(bytes.len());
                let op = if *at == 0 { OpCode::Data(Data::Text) } else { OpCode::Data(Data::Continue) };
                let f = Frame::message(bytes.slice(*at..end), op, end == bytes.len());
                *at = end;
                Some(Message::Frame(f))
            }
        }
    }
}

fn text_frames(t: Text) -> TextFrames {
    if t.len() <= buffers().fragment {
        TextFrames::One(Some(Message::Text(t)))
    } else {
        TextFrames::Fragments { bytes: Bytes::from(t), at: 0 }
    }
}

/// `GET /ws`: the handshake is done here rather than by axum's WebSocketUpgrade,
/// because axum's socket hides tungstenite's frame-level API, which the writer needs to
/// send big messages (a big room's peer-list) as fragments: a whole-message write grows
/// tungstenite's output buffer to the message's size and it never shrinks, which made
/// memory per peer O(room size) (see docs/BENCHMARKS.md).
pub async fn upgrade(
    State(app): State<Arc<App>>,
    Extension(client): Extension<Client>,
    Query(query): Query<HashMap<String, String>>,
    mut req: axum::extract::Request,
) -> axum::response::Response {
    fn has(h: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
        h.get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    }
    let h = req.headers();
    if req.method() != axum::http::Method::GET || !has(h, header::CONNECTION, "upgrade") || !has(h, header::UPGRADE, "websocket") {
        return (StatusCode::BAD_REQUEST, "Connection header did not include 'upgrade'").into_response();
    }
    if h.get(header::SEC_WEBSOCKET_VERSION).map(|v| v.as_bytes()) != Some(b"13") {
        return (StatusCode::BAD_REQUEST, "WebSocket version 13 required").into_response();
    }
    let Some(key) = h.get(header::SEC_WEBSOCKET_KEY) else {
        return (StatusCode::BAD_REQUEST, "Sec-WebSocket-Key header missing").into_response();
    };
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    let origin = h.get(header::ORIGIN).map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let Some(on_upgrade) = req.extensions_mut().remove::<hyper::upgrade::OnUpgrade>() else {
        return (StatusCode::UPGRADE_REQUIRED, "connection cannot be upgraded").into_response();
    };
    // The library limit sits well above ours, so that a frame a bit over
    // max_frame_bytes reaches our check and gets a clean 1009 close; frames past the
    // library limit just drop the connection.
    let hard = (app.config().limits.max_frame_bytes * 4).max(1 << 20);
    // Small socket buffers: the library defaults (128 KiB each way) would cost a lot of
    // memory per idle peer; control frames are small.
    let b = buffers();
    let cfg = WebSocketConfig::default()
        .read_buffer_size(b.read)
        .write_buffer_size(b.write)
        .max_message_size(Some(hard))
        .max_frame_size(Some(hard));
    let task_app = app.clone();
    let conn_task = async move {
        let upgraded = match on_upgrade.await {
            Ok(u) => u,
            Err(e) => {
                tracing::debug!(error = %e, "websocket upgrade failed");
                return;
            }
        };
        let socket = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(cfg)).await;
        let span = tracing::info_span!("ws", ip = %client.ip);
        run(task_app, client, origin, socket, query).instrument(span).await;
    };
    task_sizes().0.get_or_init(|| std::mem::size_of_val(&conn_task));
    app.spawn(conn_task);
    let mut res = axum::response::Response::new(axum::body::Body::empty());
    *res.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let rh = res.headers_mut();
    rh.insert(header::CONNECTION, header::HeaderValue::from_static("upgrade"));
    rh.insert(header::UPGRADE, header::HeaderValue::from_static("websocket"));
    if let Ok(v) = header::HeaderValue::from_str(&accept) {
        rh.insert(header::SEC_WEBSOCKET_ACCEPT, v);
    }
    res
}

/// The sizes of a connection's two task futures (reader and writer), known at the first
/// connection.
fn task_sizes() -> &'static (std::sync::OnceLock<usize>, std::sync::OnceLock<usize>) {
    static S: (std::sync::OnceLock<usize>, std::sync::OnceLock<usize>) = (std::sync::OnceLock::new(), std::sync::OnceLock::new());
    &S
}

/// Sends a terminal push straight on the socket (before the writer exists) and closes.
async fn reject(mut socket: WebSocket, push: ServerPush, close_code: u16, reason: &'static str) {
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        let _ = socket.send(Message::Text(frame::push(&push))).await;
        let _ = socket.send(close_msg(close_code, reason)).await;
        // Give the client a moment to answer the close, so it sees a clean close.
        while let Some(Ok(m)) = socket.next().await {
            if matches!(m, Message::Close(_)) {
                break;
            }
        }
    })
    .await;
}

/// Runs one upgraded connection to its end. Every refusal at connect is an `on-error`
/// push and close 1008 (1001 when shutting down), because a browser cannot read the
/// HTTP status of a failed upgrade.
async fn run(app: Arc<App>, client: Client, origin: Option<String>, socket: WebSocket, query: HashMap<String, String>) {
    if app.is_shutting_down() {
        app.metrics().refused(Refusal::ShuttingDown);
        let e = RpcError::new(code::INTERNAL, "server shutting down");
        return reject(socket, ServerPush::Error(e), 1001, "server shutting down").await;
    }
    if !client.admitted {
        app.metrics().refused(Refusal::PerIp);
        let max_ip = app.config().limits.max_connections_per_ip;
        let e = RpcError::new(code::RATE_LIMITED, format!("too many connections from your address (limit {max_ip})"));
        return reject(socket, ServerPush::Error(e), 1008, "too many connections").await;
    }
    // Pages of other sites must not open sockets with a user's token (cross-site
    // WebSocket hijacking); a client that is not a browser sends no Origin at all.
    let allowed = &app.config().http.allowed_origins;
    if let Some(o) = origin.as_deref().filter(|o| !allowed.is_empty() && !allowed.iter().any(|a| a.eq_ignore_ascii_case(o))) {
        tracing::info!(origin = ?o, "connection refused: origin not allowed");
        let e = RpcError::new(code::FORBIDDEN, format!("the origin {o:?} may not connect to this server (http.allowed_origins)"));
        return reject(socket, ServerPush::Error(e), 1008, "origin not allowed").await;
    }
    let opened = signaling::open(&app, &query).await;
    // The query holds the token: not kept for the connection's life.
    drop(query);
    let (peer, outbox, _user_slot) = match opened {
        Ok(Opened::Placed { peer, outbox, user_slot }) => (peer, outbox, user_slot),
        Ok(Opened::Missed(notice)) => return reject(socket, ServerPush::PeerLeaveRequest(notice), 1000, "removed").await,
        Err(e) => {
            app.metrics().refused(Refusal::of(&e));
            let reason = match e.code() {
                code::BAD_REQUEST => "bad request",
                code::UNAUTHORIZED => "unauthorized",
                _ => "refused",
            };
            return reject(socket, ServerPush::Error(e.to_rpc()), 1008, reason).await;
        }
    };
    let (sink, stream) = socket.split();
    let done = CancellationToken::new();
    let limits = &app.config().limits;
    let write_timeout = Duration::from_secs(limits.write_timeout_secs.max(1));
    let kill = outbox.kill.clone();
    let writer = write_loop(sink, outbox, done.clone(), write_timeout);
    let sizes = task_sizes();
    if sizes.1.set(std::mem::size_of_val(&writer)).is_ok() {
        // Once per process: what each connection's two tasks hold (docs/SERVER.md,
        // "Memory per connection").
        let conn = sizes.0.get().copied().unwrap_or(0);
        tracing::info!(target: "memory", connection_task_bytes = conn, writer_task_bytes = std::mem::size_of_val(&writer), "per-connection task state");
    }
    let writer = tokio::spawn(writer);
    let ctx = Ctx { app: app.clone(), peer };
    let hold = read_loop(&ctx, stream, &done, &kill).await;
    signaling::closed(&ctx, hold).await;
    // Let the writer flush what is queued (a close frame at least), but not forever.
    ctx.peer.conn.send(Out::Close(Close::Done));
    drop(ctx);
    let mut writer = writer;
    if tokio::time::timeout(Duration::from_secs(2), &mut writer).await.is_err() {
        writer.abort();
    }
}

/// Drains the queue onto the socket; a write that takes longer than `write_timeout`
/// means the peer is stuck, and the connection ends. Frames already queued are written
/// together with one flush (a join's answer, policy and peer list go out as one packet).
async fn write_loop(
    mut sink: SplitSink<WebSocket, Message>,
    mut rx: Outbox,
    done: CancellationToken,
    write_timeout: Duration,
) {
    const BURST: usize = 64;
    let mut acks = Vec::new();
    'outer: while let Some(first) = rx.recv().await {
        let mut next = Some(first);
        let mut fed = 0;
        let mut last = false;
        while let Some(out) = next.take() {
            let msgs = match out {
                Out::Text(t) => text_frames(t),
                Out::TextAck(t, ack) => {
                    acks.push(ack);
                    text_frames(t)
                }
                Out::Build(build) => text_frames(build()),
                Out::Close(why) => {
                    last = true;
                    let (code, reason) = close_frame(why);
                    TextFrames::One(Some(close_msg(code, reason)))
                }
            };
            for msg in msgs {
                match tokio::time::timeout(write_timeout, sink.feed(msg)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) => break 'outer,
                    Err(_) => {
                        tracing::warn!("socket write timed out: dropping a stuck peer");
                        break 'outer;
                    }
                }
            }
            fed += 1;
            if !last && fed < BURST {
                next = rx.try_recv();
            }
        }
        match tokio::time::timeout(write_timeout, sink.flush()).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => break,
            Err(_) => {
                tracing::warn!("socket write timed out: dropping a stuck peer");
                break;
            }
        }
        for ack in acks.drain(..) {
            ack.written();
        }
        if last {
            break;
        }
    }
    done.cancel();
}

/// Reads frames until the connection ends. Returns whether the peer's place should be
/// held for a reconnect (true for drops; false for a clean close or a broken rule).
async fn read_loop(ctx: &Ctx, mut stream: SplitStream<WebSocket>, done: &CancellationToken, kill: &CancellationToken) -> bool {
    let limits = &ctx.app.config().limits;
    let idle = (limits.idle_timeout_secs > 0).then(|| Duration::from_secs(limits.idle_timeout_secs));
    let mut rate = RateLimiter::new(limits.max_frames_per_sec, limits.rate_limit_strikes);
    let (conn, p) = (&ctx.peer.conn, &ctx.peer);
    loop {
        let next = tokio::select! {
            biased;
            _ = done.cancelled() => return true,
            // The queue is full: the writer is behind, so a close frame cannot be queued.
            _ = kill.cancelled() => return true,
            r = next_frame(&mut stream, idle) => r,
        };
        let msg = match next {
            Err(()) => {
                tracing::info!(peer = ?p.peer, room = ?p.room, "idle timeout: no frame received");
                conn.send(Out::Close(Close::IdleTimeout));
                return true;
            }
            Ok(None) | Ok(Some(Err(_))) => return true,
            Ok(Some(Ok(m))) => m,
        };
        let broke = match msg {
            Message::Text(t) => {
                if t.len() > limits.max_frame_bytes {
                    Some(Close::FrameTooLarge)
                } else {
                    match rate.hit(Instant::now()) {
                        Rate::Ok => {
                            signaling::handle_text(ctx, t.as_str()).await;
                            None
                        }
                        Rate::Limited => {
                            ctx.app.metrics().refused(Refusal::RateLimited);
                            let e = RpcError::new(code::RATE_LIMITED, format!("too many frames: the limit is {} per second", limits.max_frames_per_sec));
                            conn.send(Out::Text(frame::error(&frame::request_id(t.as_str()), e)));
                            None
                        }
                        Rate::Close => Some(Close::RateLimited),
                    }
                }
            }
            Message::Binary(b) => {
                if b.len() > limits.max_frame_bytes {
                    Some(Close::FrameTooLarge)
                } else if let Rate::Close = rate.hit(Instant::now()) {
                    // Binary frames count against the frame rate too (each gets an answer).
                    Some(Close::RateLimited)
                } else {
                    ctx.app.metrics().refused(Refusal::BadRequest);
                    let e = RpcError::new(code::INVALID_REQUEST, "binary frames are not supported: send JSON-RPC as text frames");
                    conn.send(Out::Text(frame::error(&Value::Null, e)));
                    None
                }
            }
            // Only `leave` leaves. A close without it, even a clean 1000, is what an SDK
            // does to a socket it gave up on before reconnecting: hold the place.
            Message::Close(_) => return true,
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => None,
        };
        if let Some(why) = broke {
            ctx.app.metrics().refused(if why == Close::FrameTooLarge { Refusal::FrameTooLarge } else { Refusal::RateLimitClose });
            let (code, reason) = close_frame(why);
            tracing::info!(peer = ?p.peer, room = ?p.room, code, reason, "closing a connection that broke a limit");
            conn.send(Out::Close(why));
            return false;
        }
    }
}

/// The next frame, or `Err` when none arrived within `idle`.
async fn next_frame(
    stream: &mut SplitStream<WebSocket>,
    idle: Option<Duration>,
) -> Result<Option<Result<Message, tokio_tungstenite::tungstenite::Error>>, ()> {
    match idle {
        Some(d) => tokio::time::timeout(d, stream.next()).await.map_err(|_| ()),
        None => Ok(stream.next().await),
    }
}

enum Rate {
    Ok,
    Limited,
    Close,
}

/// Frames per one-second window; a burst over the limit gets 429s, and `strikes`
/// consecutive windows over it close the socket.
struct RateLimiter {
    max: u32,
    strikes_max: u32,
    window_start: Instant,
    count: u32,
    over: bool,
    strikes: u32,
}

impl RateLimiter {
    fn new(max: u32, strikes_max: u32) -> Self {
        Self { max, strikes_max: strikes_max.max(1), window_start: Instant::now(), count: 0, over: false, strikes: 0 }
    }

    fn hit(&mut self, now: Instant) -> Rate {
        if self.max == 0 {
            return Rate::Ok;
        }
        let elapsed = now.duration_since(self.window_start);
        if elapsed >= Duration::from_secs(1) {
            // A window with no violation, or a quiet gap, forgives earlier ones.
            self.strikes = if self.over && elapsed < Duration::from_secs(2) { self.strikes + 1 } else { 0 };
            self.window_start = now;
            self.count = 0;
            self.over = false;
        }
        self.count += 1;
        if self.count <= self.max {
            return Rate::Ok;
        }
        self.over = true;
        if self.strikes + 1 >= self.strikes_max {
            Rate::Close
        } else {
            Rate::Limited
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limiter_limits_then_closes_on_persistence() {
        let t0 = Instant::now();
        let mut r = RateLimiter::new(3, 2);
        for _ in 0..3 {
            assert!(matches!(r.hit(t0), Rate::Ok));
        }
        assert!(matches!(r.hit(t0), Rate::Limited));
        // Next second, still over: second strike closes.
        let t1 = t0 + Duration::from_millis(1100);
        for _ in 0..3 {
            assert!(matches!(r.hit(t1), Rate::Ok));
        }
        assert!(matches!(r.hit(t1), Rate::Close));
        // After a quiet gap all is forgiven.
        let t2 = t1 + Duration::from_secs(5);
        assert!(matches!(r.hit(t2), Rate::Ok));
        assert_eq!(r.strikes, 0);
        assert!(matches!(RateLimiter::new(0, 1).hit(t0), Rate::Ok));
    }

    #[test]
    fn big_text_is_split_into_fragments_small_text_is_not() {
        let small = "x".repeat(BUFFERS.fragment);
        assert!(matches!(&text_frames(Text::from(small.clone())).collect::<Vec<_>>()[..], [Message::Text(t)] if t.as_str() == small));
        let big = "é".repeat(BUFFERS.fragment); // 2 bytes a char: fragments split chars
        let frames: Vec<Message> = text_frames(Text::from(big.clone())).collect();
        assert_eq!(frames.len(), 2);
        let mut joined = Vec::new();
        for (i, m) in frames.iter().enumerate() {
            let Message::Frame(f) = m else { panic!("not a frame") };
            let op = if i == 0 { OpCode::Data(Data::Text) } else { OpCode::Data(Data::Continue) };
            assert_eq!(f.header().opcode, op);
            assert_eq!(f.header().is_final, i == frames.len() - 1);
            assert!(f.payload().len() <= BUFFERS.fragment);
            joined.extend_from_slice(f.payload());
        }
        assert_eq!(joined, big.as_bytes());
    }

    /// A fragmented message reaches a standard client as the one text message it was.
    #[tokio::test]
    async fn fragmented_text_arrives_as_one_message() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let big: String = (0..200_000).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
        let sent = big.clone();
        let server = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
            for m in text_frames(Text::from(sent)).chain(text_frames(Text::from("after"))) {
                ws.feed(m).await.unwrap();
            }
            ws.flush().await.unwrap();
            // Keep the socket open until the client has read.
            let _ = tokio::time::timeout(Duration::from_secs(5), ws.next()).await;
        });
        let (mut client, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/")).await.unwrap();
        let deadline = Duration::from_secs(5);
        let first = tokio::time::timeout(deadline, client.next()).await.unwrap().unwrap().unwrap();
        assert_eq!(first, Message::Text(big.into()));
        let second = tokio::time::timeout(deadline, client.next()).await.unwrap().unwrap().unwrap();
        assert_eq!(second, Message::Text("after".into()));
        drop(client);
        tokio::time::timeout(deadline, server).await.unwrap().unwrap();
    }
}
