//! One WebSocket connection: authentication at connect, the frame decoder and
//! dispatcher, rate and size limits, idle timeout, and the writer task that drains the
//! connection's bounded queue.

use crate::auth::TokenType;
use crate::room::{ok_frame, ConnHandle, Connected, Effects, Out};
use crate::AppState;
use hyper_util::rt::TokioIo;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{CloseCode, Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Bytes, Message};
use tokio_tungstenite::WebSocketStream;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use hms_protocol::{code, ClientCall, EndRoomParams, PingParams, Response, RpcError, ServerPush};
use serde_json::Value;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// An upgraded connection.
pub type WebSocket = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

/// Text messages longer than this go out as fragments of this size. Tungstenite
/// serializes a whole message into the connection's output buffer, whose capacity is
/// kept for the connection's life; one `peer-list` of a 10,000-peer room would pin
/// ~1.5 MB per connection. Fragments keep the buffer near this size. The message is
/// unchanged for the receiver (RFC 6455 section 5.4: fragments are reassembled).
const FRAGMENT_BYTES: usize = 16 * 1024;

/// The frames for one outgoing text message: one `Message::Text` when small,
/// continuation fragments when big.
fn text_frames(t: &str) -> Vec<Message> {
    let b = t.as_bytes();
    if b.len() <= FRAGMENT_BYTES {
        return vec![Message::Text(t.to_owned().into())];
    }
    let chunks: Vec<&[u8]> = b.chunks(FRAGMENT_BYTES).collect();
    let last = chunks.len() - 1;
    chunks
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            let op = if i == 0 { OpCode::Data(Data::Text) } else { OpCode::Data(Data::Continue) };
            Message::Frame(Frame::message(Bytes::copy_from_slice(c), op, i == last))
        })
        .collect()
}

fn close_msg(code: u16, reason: &'static str) -> Message {
    Message::Close(Some(CloseFrame { code: CloseCode::from(code), reason: reason.into() }))
}

/// Who a connection is, once its token checked out.
pub struct Ctx {
    /// The server.
    pub app: Arc<AppState>,
    /// The token's room.
    pub room: String,
    /// The `?peer=` id.
    pub peer: String,
    /// The connection's queue.
    pub conn: ConnHandle,
}

/// What the reader does after a frame.
#[derive(Debug, PartialEq, Eq)]
pub enum Flow {
    /// Read on.
    Continue,
    /// Close with this code, and drop the peer without holding its place.
    Close(u16, &'static str),
}

/// Releases a per-IP connection slot when the connection ends.
struct IpSlot {
    app: Arc<AppState>,
    ip: IpAddr,
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut m = self.app.per_ip.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = m.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.ip);
            }
        }
    }
}

/// Counts live connection tasks, for graceful shutdown.
struct LiveGuard(Arc<AppState>);

impl Drop for LiveGuard {
    fn drop(&mut self) {
        self.0.live.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

fn text(s: String) -> Message {
    Message::Text(s.into())
}

fn push_frame(push: &ServerPush) -> String {
    serde_json::to_string(push).unwrap_or_default()
}

fn error_frame(id: &Value, e: RpcError) -> String {
    serde_json::to_string(&Response::<&Value, ()>::err(id, e)).unwrap_or_default()
}

/// Sends a terminal push straight on the socket (before the writer exists) and closes.
async fn reject(mut socket: WebSocket, push: ServerPush, close_code: u16, reason: &'static str) {
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        let _ = socket.send(text(push_frame(&push))).await;
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

/// Runs one upgraded connection to its end.
pub async fn run(app: Arc<AppState>, socket: WebSocket, ip: IpAddr, query: HashMap<String, String>) {
    app.live.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let _live = LiveGuard(app.clone());
    if app.shutdown.is_cancelled() {
        return reject(socket, ServerPush::Error(RpcError::new(code::INTERNAL, "server shutting down")), 1001, "server shutting down").await;
    }
    // Connections per IP.
    let max_ip = app.config.limits.max_connections_per_ip;
    let over = {
        let mut m = app.per_ip.lock().unwrap_or_else(|p| p.into_inner());
        let n = m.entry(ip).or_insert(0);
        *n += 1;
        max_ip > 0 && *n > max_ip
    };
    let _ip_slot = IpSlot { app: app.clone(), ip };
    if over {
        tracing::warn!(%ip, "too many connections from one address");
        let e = RpcError::new(code::RATE_LIMITED, format!("too many connections from your address (limit {max_ip})"));
        return reject(socket, ServerPush::Error(e), 1008, "too many connections").await;
    }
    // Authentication: every failure is an on-error push and close 1008, because a
    // browser cannot read the HTTP status of a failed upgrade.
    let peer = query.get("peer").filter(|p| !p.is_empty() && p.len() <= 256).cloned();
    let Some(peer) = peer else {
        let e = RpcError::bad_request("the peer query parameter (1 to 256 characters) is required");
        return reject(socket, ServerPush::Error(e), 1008, "bad request").await;
    };
    let claims = match query.get("token").map(|t| app.keys.verify(t, TokenType::App)) {
        Some(Ok(c)) => c,
        Some(Err(e)) => {
            tracing::info!(peer = %peer, error = %e, "connection refused: bad token");
            return reject(socket, ServerPush::Error(RpcError::new(code::UNAUTHORIZED, e.0)), 1008, "unauthorized").await;
        }
        None => {
            let e = RpcError::new(code::UNAUTHORIZED, "the token query parameter is required");
            return reject(socket, ServerPush::Error(e), 1008, "unauthorized").await;
        }
    };
    if let Some(room) = query.get("room").filter(|r| !r.is_empty()) {
        if *room != claims.room_id {
            let e = RpcError::new(code::UNAUTHORIZED, "the token is for another room");
            return reject(socket, ServerPush::Error(e), 1008, "unauthorized").await;
        }
    }
    let limits = &app.config.limits;
    let (tx, rx) = mpsc::channel(limits.send_queue);
    let conn_id = app.next_conn.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let conn = ConnHandle { id: conn_id, tx, kill: CancellationToken::new() };
    match app.hub.connect(&claims.room_id, &peer, &claims.user_id, &claims.role, conn.clone()) {
        Err(e) => {
            tracing::info!(peer = %peer, room = %claims.room_id, code = e.code, "connection refused");
            return reject(socket, ServerPush::Error(e), 1008, "refused").await;
        }
        Ok(Connected::Missed(notice)) => {
            tracing::info!(peer = %peer, room = %claims.room_id, "reconnect after removal: delivering the missed notice");
            return reject(socket, ServerPush::PeerLeaveRequest(notice), 1000, "removed").await;
        }
        Ok(Connected::Reclaimed) => tracing::info!(peer = %peer, room = %claims.room_id, "reconnected within the window"),
        Ok(Connected::Fresh) => tracing::debug!(peer = %peer, room = %claims.room_id, "connected"),
    }
    let (sink, stream) = socket.split();
    let done = CancellationToken::new();
    let write_timeout = Duration::from_secs(limits.write_timeout_secs.max(1));
    let writer = tokio::spawn(write_loop(sink, rx, done.clone(), write_timeout));
    let ctx = Ctx { app: app.clone(), room: claims.room_id, peer, conn };
    let hold = read_loop(&ctx, stream, &done).await;
    let fx = app.hub.disconnected(&ctx.room, &ctx.peer, ctx.conn.id, hold);
    apply(&app, &ctx.room, &ctx.peer, fx);
    // Let the writer flush what is queued (a close frame at least), but not forever.
    let _ = ctx.conn.tx.try_send(Out::Close(1000, "closing"));
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
    mut rx: mpsc::Receiver<Out>,
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
                Out::Text(t) => text_frames(&t),
                Out::TextAck(t, ack) => {
                    acks.push(ack);
                    text_frames(&t)
                }
                Out::Close(code, reason) => {
                    last = true;
                    vec![close_msg(code, reason)]
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
                next = rx.try_recv().ok();
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
            let _ = ack.send(());
        }
        if last {
            break;
        }
    }
    done.cancel();
}

/// Reads frames until the connection ends. Returns whether the peer's place should be
/// held for a reconnect (true for drops; false for a clean close or a broken rule).
async fn read_loop(ctx: &Ctx, mut stream: SplitStream<WebSocket>, done: &CancellationToken) -> bool {
    let limits = &ctx.app.config.limits;
    let idle = (limits.idle_timeout_secs > 0).then(|| Duration::from_secs(limits.idle_timeout_secs));
    let mut rate = RateLimiter::new(limits.max_frames_per_sec, limits.rate_limit_strikes);
    loop {
        let next = tokio::select! {
            biased;
            _ = done.cancelled() => return true,
            _ = ctx.conn.kill.cancelled() => {
                // The queue is full: the writer is behind, so a close frame cannot be queued.
                return true;
            }
            r = next_frame(&mut stream, idle) => r,
        };
        let msg = match next {
            Err(()) => {
                tracing::info!(peer = %ctx.peer, room = %ctx.room, "idle timeout: no frame received");
                ctx.conn.send(Out::Close(1001, "idle timeout"));
                return true;
            }
            Ok(None) | Ok(Some(Err(_))) => return true,
            Ok(Some(Ok(m))) => m,
        };
        let flow = match msg {
            Message::Text(t) => {
                if t.len() > limits.max_frame_bytes {
                    Flow::Close(1009, "frame too large")
                } else {
                    match rate.hit(Instant::now()) {
                        Rate::Ok => handle_text(ctx, t.as_str()).await,
                        Rate::Limited => {
                            let e = RpcError::new(code::RATE_LIMITED, format!("too many frames: the limit is {} per second", limits.max_frames_per_sec));
                            ctx.conn.send(Out::Text(Arc::from(error_frame(&request_id(t.as_str()), e))));
                            Flow::Continue
                        }
                        Rate::Close => Flow::Close(1008, "rate limit exceeded"),
                    }
                }
            }
            Message::Binary(b) => {
                if b.len() > limits.max_frame_bytes {
                    Flow::Close(1009, "frame too large")
                } else if let Rate::Close = rate.hit(Instant::now()) {
                    // Binary frames count against the frame rate too (each gets an answer).
                    Flow::Close(1008, "rate limit exceeded")
                } else {
                    let e = RpcError::new(code::INVALID_REQUEST, "binary frames are not supported: send JSON-RPC as text frames");
                    ctx.conn.send(Out::Text(Arc::from(error_frame(&Value::Null, e))));
                    Flow::Continue
                }
            }
            // Only `leave` leaves. A close without it, even a clean 1000, is what an SDK
            // does to a socket it gave up on before reconnecting: hold the place.
            Message::Close(_) => return true,
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => Flow::Continue,
        };
        if let Flow::Close(code, reason) = flow {
            tracing::info!(peer = %ctx.peer, room = %ctx.room, code, reason, "closing a connection that broke a limit");
            ctx.conn.send(Out::Close(code, reason));
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

/// The `id` of a frame, read loosely (for answering a frame we refuse unread).
fn request_id(text: &str) -> Value {
    #[derive(serde::Deserialize)]
    struct IdOnly {
        #[serde(default)]
        id: Value,
    }
    serde_json::from_str::<IdOnly>(text).map(|i| i.id).unwrap_or(Value::Null)
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

/// Decodes and dispatches one text frame (size and rate limits are the caller's).
pub async fn handle_text(ctx: &Ctx, text: &str) -> Flow {
    let reply_err = |id: &Value, e: RpcError| {
        ctx.conn.send(Out::Text(Arc::from(error_frame(id, e))));
        Flow::Continue
    };
    let (id, call) = match crate::frame::decode(text) {
        Ok(d) => d,
        Err((id, e)) => return reply_err(&id, e),
    };
    let app = &ctx.app;
    match call {
        ClientCall::Ping(p) => {
            let r = Response::ok(&id, PingParams { timestamp: p.timestamp });
            ctx.conn.send(Out::Text(Arc::from(serde_json::to_string(&r).unwrap_or_default())));
        }
        ClientCall::Join(j) => match app.hub.join(&ctx.room, &ctx.peer, ctx.conn.id, &j.name, &j.data, ok_frame(&id)) {
            Ok(fx) => {
                tracing::debug!(peer = %ctx.peer, room = %ctx.room, "joined");
                apply(app, &ctx.room, &ctx.peer, fx);
            }
            Err(e) => return reply_err(&id, e),
        },
        ClientCall::Leave(_) => {
            if !app.hub.is_joined(&ctx.room, &ctx.peer, ctx.conn.id) {
                return reply_err(&id, RpcError::not_joined());
            }
            if !id.is_null() {
                ctx.conn.send(Out::Text(ok_frame(&id)));
            }
            match app.hub.leave(&ctx.room, &ctx.peer, ctx.conn.id) {
                Ok(fx) => apply(app, &ctx.room, &ctx.peer, fx),
                Err(e) => return reply_err(&id, e),
            }
        }
        ClientCall::EndRoom(p) => {
            if let Err(e) = end_room(ctx, &id, p).await {
                return reply_err(&id, e);
            }
        }
        ClientCall::PeerLeaveRequest(p) => {
            match app.hub.remove_peer(&ctx.room, Some((&ctx.peer, ctx.conn.id)), &p.requested_for, &p.reason) {
                Ok(fx) => {
                    tracing::info!(peer = %ctx.peer, room = %ctx.room, target = %p.requested_for, "peer removed");
                    ctx.conn.send(Out::Text(ok_frame(&id)));
                    apply(app, &ctx.room, &p.requested_for, fx);
                }
                Err(e) => return reply_err(&id, e),
            }
        }
    }
    Flow::Continue
}

/// `end-room` from a peer: [`AppState::end_room`] (stored, the others told), then the
/// requester's answer and its close with 1000.
async fn end_room(ctx: &Ctx, id: &Value, p: EndRoomParams) -> Result<(), RpcError> {
    let requester = ctx.app.end_room(&ctx.room, Some((&ctx.peer, ctx.conn.id)), &p.reason, p.lock).await?;
    let me = requester.unwrap_or_else(|| ctx.conn.clone());
    me.send(Out::Text(ok_frame(id)));
    me.send(Out::Close(1000, "room ended"));
    Ok(())
}

/// Carries out a hub state change's effects: history records and hold timers.
pub fn apply(app: &Arc<AppState>, room: &str, peer: &str, fx: Effects) {
    if let Some((sid, started)) = fx.session_started {
        app.store.start_session(room, &sid, started);
    }
    if let Some(sid) = fx.session_emptied {
        app.store.session_emptied(&sid);
    }
    if let Some(gen) = fx.hold {
        tracing::info!(peer = %peer, room = %room, "peer dropped: holding its place for the reconnect window");
        let (app, room, peer) = (app.clone(), room.to_owned(), peer.to_owned());
        let window = Duration::from_secs(app.config.limits.reconnect_window_secs);
        tokio::spawn(async move {
            tokio::select! {
                _ = tokio::time::sleep(window) => {}
                _ = app.shutdown.cancelled() => return,
            }
            let fx = app.hub.hold_expired(&room, &peer, gen);
            if let Some(sid) = fx.session_emptied {
                app.store.session_emptied(&sid);
            }
        });
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
    fn request_id_is_read_loosely() {
        assert_eq!(request_id(r#"{"id":"a","method":1}"#), Value::from("a"));
        assert_eq!(request_id("garbage"), Value::Null);
    }

    #[test]
    fn big_text_is_split_into_fragments_small_text_is_not() {
        let small = "x".repeat(FRAGMENT_BYTES);
        assert!(matches!(&text_frames(&small)[..], [Message::Text(t)] if t.as_str() == small));
        let big = "é".repeat(FRAGMENT_BYTES); // 2 bytes a char: fragments split chars
        let frames = text_frames(&big);
        assert_eq!(frames.len(), 2);
        let mut joined = Vec::new();
        for (i, m) in frames.iter().enumerate() {
            let Message::Frame(f) = m else { panic!("not a frame") };
            let op = if i == 0 { OpCode::Data(Data::Text) } else { OpCode::Data(Data::Continue) };
            assert_eq!(f.header().opcode, op);
            assert_eq!(f.header().is_final, i == frames.len() - 1);
            assert!(f.payload().len() <= FRAGMENT_BYTES);
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
            for m in text_frames(&sent).into_iter().chain(text_frames("after")) {
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
