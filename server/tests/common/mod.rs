//! Test harness: runs the real `hms-server` binary on 127.0.0.1:0 with a temp data dir,
//! and drives it with a small WebSocket client and raw HTTP/1.1. Every wait has a deadline.

#![allow(dead_code)]

use futures_util::{SinkExt, StreamExt};
use hms_server::auth::{Claims, TokenKeys, TokenType};
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

/// How long any single receive may take.
pub const RECV: Duration = Duration::from_secs(5);
/// At least 32 bytes: the server refuses shorter secrets.
pub const SECRET: &str = "test-secret-for-hms-server-0123456789";
/// The `access_key` the server checks in tokens (its default).
pub const ACCESS_KEY: &str = "hms-local";

/// A running server process.
pub struct Server {
    pub child: Child,
    pub port: u16,
    addr: ServerAddr,
    pub dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
    args: Vec<String>,
    /// Stdout lines after the first.
    lines: std::sync::mpsc::Receiver<String>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// A fresh server with a fresh data dir and extra `serve` flags.
    pub fn start(args: &[&str]) -> Server {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("data");
        Self::spawn(dir, Some(tmp), args.iter().map(|s| s.to_string()).collect())
    }

    /// A fresh server with `config` as its config file (kept beside the data dir, so a
    /// restart reads it again) and extra `serve` flags.
    pub fn start_with_config(config: &str, args: &[&str]) -> Server {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("data");
        let path = tmp.path().join("config.toml");
        std::fs::write(&path, config).unwrap();
        let mut all = vec!["--config".to_string(), path.display().to_string()];
        all.extend(args.iter().map(|s| s.to_string()));
        Self::spawn(dir, Some(tmp), all)
    }

    /// The next stdout line after the port line (e.g. `metrics on ...`), within 5 s.
    pub fn stdout_line(&self) -> String {
        self.try_stdout_line(RECV).expect("a stdout line in time")
    }

    /// The next stdout line within `d`, if any.
    pub fn try_stdout_line(&self, d: Duration) -> Option<String> {
        self.lines.recv_timeout(d).ok()
    }

    /// A server on an existing data dir (which the caller keeps), with extra flags.
    pub fn start_in(dir: &std::path::Path, args: &[&str]) -> Server {
        Self::spawn(dir.to_path_buf(), None, args.iter().map(|s| s.to_string()).collect())
    }

    fn spawn(dir: PathBuf, tmp: Option<tempfile::TempDir>, args: Vec<String>) -> Server {
        if let Some(parent) = dir.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        let log = std::fs::OpenOptions::new().create(true).append(true).open(log_path(&dir)).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_hms-server"))
            .args(["serve", "--addr", "127.0.0.1:0", "--data-dir"])
            .arg(&dir)
            .args(&args)
            .env("HMS_SECRET", SECRET)
            .env("HMS_LOG", "hms_server=debug,info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let lines = BufReader::new(stdout).lines();
            for line in lines.map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let first = rx.recv_timeout(Duration::from_secs(20)).expect("the server printed its port line in time");
        let port = first.strip_prefix("listening on 127.0.0.1:").expect(&first).trim().parse().unwrap();
        Server { child, port, addr: ServerAddr { port }, dir, _tmp: tmp, args, lines: rx }
    }

    /// A handle for HTTP calls to the server on `port` from another task (no process of
    /// its own: dropping it stops nothing).
    pub fn at(port: u16) -> ServerAddr {
        ServerAddr { port }
    }

    /// Stops this process (SIGKILL) and starts a new one on the same data dir.
    pub fn restart(mut self) -> Server {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let tmp = self._tmp.take();
        let dir = self.dir.clone();
        let args = std::mem::take(&mut self.args);
        drop(self);
        Self::spawn(dir, tmp, args)
    }

    /// SIGKILL, no chance to flush anything.
    pub fn kill9(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM; waits (with a deadline) for the exit status.
    pub fn sigterm(&mut self) -> std::process::ExitStatus {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            assert!(std::time::Instant::now() < deadline, "server did not exit after SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(log_path(&self.dir)).unwrap_or_default()
    }

    /// The server's resident memory in KiB (from /proc), for measured notes.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    pub fn keys() -> TokenKeys {
        TokenKeys::new(SECRET.as_bytes(), ACCESS_KEY, 3600)
    }
    pub fn token(room: &str, user: &str, role: &str) -> String {
        Self::keys().app_token(room, user, role).unwrap()
    }
    pub fn mgmt() -> String {
        Self::keys().management_token().unwrap()
    }
    /// Claims to tweak for odd tokens.
    pub fn claims(room: &str, user: &str, role: &str, ty: TokenType) -> Claims {
        let now = hms_server::clock::now_secs();
        Claims {
            access_key: ACCESS_KEY.into(),
            room_id: room.into(),
            user_id: user.into(),
            role: role.into(),
            token_type: ty,
            version: 2,
            iat: now,
            nbf: now,
            exp: now + 600,
            jti: "j".into(),
        }
    }

    pub fn ws_url(&self, peer: &str, token: &str) -> String {
        format!("ws://127.0.0.1:{}/ws?peer={peer}&token={token}", self.port)
    }

    /// The URL of a reconnect: presents the place's `secret` (from the join answer).
    pub fn reconnect_url(&self, peer: &str, token: &str, secret: &str) -> String {
        format!("{}&reconnect_secret={secret}", self.ws_url(peer, token))
    }

    /// Reconnects `c`'s peer (room, user "u-<peer>", role) with its secret.
    pub async fn reconnect(&self, room: &str, peer: &str, role: &str, secret: &str) -> Client {
        Client::connect(&self.reconnect_url(peer, &Self::token(room, &format!("u-{peer}"), role), secret)).await
    }

    /// Connects `peer` with a fresh token for (room, user = "u-<peer>", role).
    pub async fn connect(&self, room: &str, peer: &str, role: &str) -> Client {
        Client::connect(&self.ws_url(peer, &Self::token(room, &format!("u-{peer}"), role))).await
    }

    /// Connects and joins; returns the client with the join frames consumed.
    pub async fn joined(&self, room: &str, peer: &str, role: &str) -> Client {
        let mut c = self.connect(room, peer, role).await;
        c.join(peer).await;
        c
    }

}

/// A server answers HTTP calls as its address does (`s.http(...)`, `s.http_raw(...)`).
impl std::ops::Deref for Server {
    type Target = ServerAddr;
    fn deref(&self) -> &ServerAddr {
        &self.addr
    }
}

/// The server's address, for HTTP calls from anywhere.
#[derive(Clone, Copy)]
pub struct ServerAddr {
    pub port: u16,
}

impl ServerAddr {
    /// A raw HTTP/1.1 request; returns the status and the JSON body (Null if none).
    pub async fn http(&self, method: &str, path: &str, bearer: Option<&str>, body: Option<&Value>) -> (u16, Value) {
        let (status, _, body) = self.http_raw(method, path, bearer, body.map(|b| b.to_string()), &[]).await;
        (status, serde_json::from_str(&body).unwrap_or(Value::Null))
    }

    /// A raw HTTP/1.1 request; returns status, header block and body text.
    pub async fn http_raw(
        &self,
        method: &str,
        path: &str,
        bearer: Option<&str>,
        body: Option<String>,
        extra_headers: &[(&str, &str)],
    ) -> (u16, String, String) {
        tokio::time::timeout(RECV, async {
            let mut s = TcpStream::connect(("127.0.0.1", self.port)).await.unwrap();
            let body = body.unwrap_or_default();
            let mut req = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
            if !body.is_empty() {
                req.push_str("Content-Type: application/json\r\n");
            }
            if let Some(b) = bearer {
                req.push_str(&format!("Authorization: Bearer {b}\r\n"));
            }
            for (k, v) in extra_headers {
                req.push_str(&format!("{k}: {v}\r\n"));
            }
            req.push_str("\r\n");
            req.push_str(&body);
            s.write_all(req.as_bytes()).await.unwrap();
            let mut buf = Vec::new();
            s.read_to_end(&mut buf).await.unwrap();
            let text = String::from_utf8_lossy(&buf).to_string();
            let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
            let status = head.split_whitespace().nth(1).unwrap_or("0").parse().unwrap_or(0);
            (status, head.to_string(), body.to_string())
        })
        .await
        .expect("HTTP answer in time")
    }
}

/// The server's log file: beside the data dir, so that the data dir holds only what the
/// server writes (its permissions are checked).
fn log_path(dir: &std::path::Path) -> PathBuf {
    let mut name = dir.as_os_str().to_owned();
    name.push(".log");
    PathBuf::from(name)
}

/// Runs the binary once (`hms-server <args>`) with exactly `env` added to a cleared
/// `HMS_SECRET`; returns (success, stdout, stderr). Bounded by a deadline.
pub fn run_cli(args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hms-server"));
    cmd.args(args).env_remove("HMS_SECRET").stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("hms-server {args:?} did not exit in time");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = child.wait_with_output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// What a client saw next.
#[derive(Debug, Clone, PartialEq)]
pub enum Ev {
    Frame(Value),
    Close(u16, String),
    /// The stream ended without a close frame, or errored.
    Gone,
}

/// Any byte stream a client can speak WebSocket over (TCP, or TLS over TCP).
pub trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Io for T {}

/// How a client connects: from which local address, with which extra headers, over TLS.
#[derive(Default)]
pub struct Dial<'a> {
    /// Bind to this local address first (e.g. 127.0.0.2: another client address).
    pub from: Option<&'a str>,
    /// Extra request headers (Origin, X-Forwarded-For).
    pub headers: &'a [(&'a str, &'a str)],
    /// Speak TLS, expecting this server name.
    pub tls: Option<(tokio_rustls::TlsConnector, &'a str)>,
    /// A small socket receive buffer (bytes): a client that stops reading then holds
    /// little in the kernel, so the server's queue for it fills.
    pub rcvbuf: Option<u32>,
}

pub struct Client {
    pub ws: WebSocketStream<Box<dyn Io>>,
    buf: VecDeque<Value>,
    next_id: u64,
    /// The reconnect secret from the last join answer.
    pub secret: Option<String>,
}

impl Client {
    pub async fn connect(url: &str) -> Client {
        Self::dial(url, Dial::default()).await
    }

    /// Connects to `url` (`ws://` or `wss://` `127.0.0.1:PORT/...`) as `how` says.
    pub async fn dial(url: &str, how: Dial<'_>) -> Client {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        tokio::time::timeout(RECV, async {
            let rest = url.split_once("://").unwrap().1;
            let port: u16 = rest.split(['/', '?']).next().unwrap().rsplit(':').next().unwrap().parse().unwrap();
            let sock = tokio::net::TcpSocket::new_v4().unwrap();
            if let Some(from) = how.from {
                sock.bind(format!("{from}:0").parse().unwrap()).unwrap();
            }
            if let Some(n) = how.rcvbuf {
                sock.set_recv_buffer_size(n).unwrap();
            }
            let tcp = sock.connect(([127, 0, 0, 1], port).into()).await.unwrap();
            let stream: Box<dyn Io> = match how.tls {
                None => Box::new(tcp),
                Some((connector, name)) => {
                    let name = tokio_rustls::rustls::pki_types::ServerName::try_from(name.to_owned()).unwrap();
                    Box::new(connector.connect(name, tcp).await.unwrap())
                }
            };
            let mut req = url.into_client_request().unwrap();
            for (k, v) in how.headers {
                let name = tokio_tungstenite::tungstenite::http::HeaderName::from_bytes(k.as_bytes()).unwrap();
                req.headers_mut().append(name, v.parse().unwrap());
            }
            let (ws, _) = tokio_tungstenite::client_async(req, stream).await.unwrap();
            Client { ws, buf: VecDeque::new(), next_id: 1, secret: None }
        })
        .await
        .expect("connect in time")
    }

    pub async fn send_text(&mut self, t: impl Into<String>) {
        let t: String = t.into();
        tokio::time::timeout(RECV, self.ws.send(Message::Text(t.into()))).await.expect("send in time").unwrap();
    }

    pub async fn send(&mut self, v: Value) {
        self.send_text(v.to_string()).await
    }

    /// The next event (buffered frames first), within [`RECV`].
    pub async fn next(&mut self) -> Ev {
        if let Some(v) = self.buf.pop_front() {
            return Ev::Frame(v);
        }
        self.next_raw(RECV).await.expect("an event within the deadline")
    }

    /// The next event from the socket within `d`, `None` on timeout. Pings are skipped.
    pub async fn next_raw(&mut self, d: Duration) -> Option<Ev> {
        let deadline = tokio::time::Instant::now() + d;
        loop {
            let m = match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Err(_) => return None,
                Ok(m) => m,
            };
            return Some(match m {
                Some(Ok(Message::Text(t))) => Ev::Frame(serde_json::from_str(&t).expect("server frames are JSON")),
                Some(Ok(Message::Close(f))) => match f {
                    Some(f) => Ev::Close(u16::from(f.code), f.reason.to_string()),
                    None => Ev::Close(u16::from(CloseCode::Status), String::new()),
                },
                Some(Ok(Message::Ping(_))) | Some(Ok(Message::Pong(_))) => continue,
                Some(Ok(other)) => panic!("unexpected message {other:?}"),
                Some(Err(_)) | None => Ev::Gone,
            });
        }
    }

    /// The next frame; panics on a close.
    pub async fn frame(&mut self) -> Value {
        match self.next().await {
            Ev::Frame(v) => v,
            other => panic!("expected a frame, got {other:?}"),
        }
    }

    /// The next frame must be the push `method`; returns its params.
    pub async fn push(&mut self, method: &str) -> Value {
        let f = self.frame().await;
        assert_eq!(f["method"], method, "frame: {f}");
        assert!(f.get("id").is_none(), "pushes have no id: {f}");
        f["params"].clone()
    }

    /// Skips frames until a close; returns its code.
    pub async fn closed(&mut self) -> u16 {
        loop {
            match self.next().await {
                Ev::Close(c, _) => return c,
                Ev::Gone => panic!("the stream ended without a close frame"),
                Ev::Frame(_) => {}
            }
        }
    }

    /// The next event must be a close with `code`.
    pub async fn expect_close(&mut self, code: u16) {
        match self.next().await {
            Ev::Close(c, r) => assert_eq!(c, code, "close reason {r:?}"),
            other => panic!("expected close {code}, got {other:?}"),
        }
    }

    /// Nothing at all arrives within `d`.
    pub async fn silent(&mut self, d: Duration) {
        assert!(self.buf.is_empty(), "buffered: {:?}", self.buf);
        if let Some(ev) = self.next_raw(d).await {
            panic!("expected silence, got {ev:?}");
        }
    }

    /// Sends a request and returns its answer frame; pushes that arrive first are kept.
    pub async fn request(&mut self, method: &str, params: Value) -> Value {
        let id = format!("req-{}", self.next_id);
        self.next_id += 1;
        self.send(json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})).await;
        self.answer(&id).await
    }

    /// Waits for the answer to `id`, buffering pushes.
    pub async fn answer(&mut self, id: &str) -> Value {
        let deadline = tokio::time::Instant::now() + RECV;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next_raw(left).await {
                Some(Ev::Frame(f)) if f.get("id").and_then(Value::as_str) == Some(id) => return f,
                Some(Ev::Frame(f)) => self.buf.push_back(f),
                other => panic!("waiting for the answer to {id}, got {other:?}"),
            }
        }
    }

    /// The error code of a request that must fail.
    pub async fn error_code(&mut self, method: &str, params: Value) -> i64 {
        let a = self.request(method, params).await;
        a["error"]["code"].as_i64().unwrap_or_else(|| panic!("expected an error: {a}"))
    }

    /// Joins and checks the answer sequence: `{reconnect_secret}`, on-policy-change,
    /// peer-list. Keeps the secret in `self.secret`; returns peer-list params.
    pub async fn join(&mut self, name: &str) -> Value {
        let a = self.request("join", json!({"name": name, "data": ""})).await;
        let secret = a["result"]["reconnect_secret"].as_str();
        assert!(secret.is_some() && a["result"].as_object().unwrap().len() == 1, "join answer: {a}");
        self.secret = secret.map(str::to_owned);
        self.push("on-policy-change").await;
        self.push("peer-list").await
    }
}

/// Unwraps an `on-error` push's params.
pub async fn expect_on_error(c: &mut Client) -> Value {
    c.push("on-error").await
}


/// One request a [`Receiver`] got.
#[derive(Debug, Clone)]
pub struct Hook {
    /// The `X-HMS-Signature` header.
    pub signature: String,
    /// The raw body.
    pub body: String,
    /// The body as JSON.
    pub json: Value,
    /// What the receiver answered.
    pub status: u16,
}

impl Hook {
    pub fn kind(&self) -> &str {
        self.json["type"].as_str().unwrap_or_default()
    }
    pub fn id(&self) -> &str {
        self.json["id"].as_str().unwrap_or_default()
    }
}

struct Inbox {
    got: std::sync::Mutex<Vec<Hook>>,
    status: std::sync::atomic::AtomicU16,
    arrived: tokio::sync::Notify,
}

/// A real webhook receiver on 127.0.0.1 (an axum server in the test process): records
/// every request and answers the status the test sets (200 at first).
pub struct Receiver {
    pub port: u16,
    inbox: std::sync::Arc<Inbox>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Receiver {
    pub async fn start() -> Receiver {
        Self::start_on(0).await
    }

    /// Listens on `port` (0 = a free one).
    pub async fn start_on(port: u16) -> Receiver {
        let inbox = std::sync::Arc::new(Inbox {
            got: Default::default(),
            status: std::sync::atomic::AtomicU16::new(200),
            arrived: tokio::sync::Notify::new(),
        });
        let mut r = Receiver { port, inbox, task: None };
        r.listen().await;
        r
    }

    /// Accepts connections until stopped; each connection is served by a task owned by
    /// the accept task, so stopping closes them all (a pooled keep-alive connection must
    /// not keep a "down" receiver answering).
    async fn listen(&mut self) {
        use axum::http::{Response, StatusCode};
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", self.port)).await.expect("the receiver's port is free");
        self.port = listener.local_addr().unwrap().port();
        let inbox = self.inbox.clone();
        self.task = Some(tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            while let Ok((tcp, _)) = listener.accept().await {
                let inbox = inbox.clone();
                let svc = hyper::service::service_fn(move |req: axum::http::Request<hyper::body::Incoming>| {
                    let inbox = inbox.clone();
                    async move {
                        let signature = req.headers().get("x-hms-signature").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
                        let bytes = axum::body::to_bytes(axum::body::Body::new(req.into_body()), 1 << 20).await.unwrap_or_default();
                        let body = String::from_utf8_lossy(&bytes).to_string();
                        let status = inbox.status.load(std::sync::atomic::Ordering::SeqCst);
                        let json = serde_json::from_str(&body).unwrap_or(Value::Null);
                        inbox.got.lock().unwrap().push(Hook { signature, body, json, status });
                        inbox.arrived.notify_waiters();
                        let mut res = Response::new(axum::body::Body::empty());
                        *res.status_mut() = StatusCode::from_u16(status).unwrap();
                        Ok::<_, std::convert::Infallible>(res)
                    }
                });
                conns.spawn(async move {
                    let io = hyper_util::rt::TokioIo::new(tcp);
                    let _ = hyper::server::conn::http1::Builder::new().serve_connection(io, svc).await;
                });
            }
        }));
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hook", self.port)
    }

    /// The status answered from now on.
    pub fn answer(&self, status: u16) {
        self.inbox.status.store(status, std::sync::atomic::Ordering::SeqCst);
    }

    /// Stops listening (connections are refused) until [`Receiver::resume`].
    pub async fn stop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
            let _ = t.await;
        }
    }

    /// Listens again on the same port.
    pub async fn resume(&mut self) {
        self.listen().await;
    }

    /// Every request so far.
    pub fn all(&self) -> Vec<Hook> {
        self.inbox.got.lock().unwrap().clone()
    }

    /// The requests answered with 2xx, in arrival order.
    pub fn delivered(&self) -> Vec<Hook> {
        self.all().into_iter().filter(|h| (200..300).contains(&h.status)).collect()
    }

    /// Waits (at most `within`) until `done` holds for the requests so far; returns them.
    pub async fn wait_until(&self, within: Duration, done: impl Fn(&[Hook]) -> bool) -> Vec<Hook> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let arrived = self.inbox.arrived.notified();
            let all = self.all();
            if done(&all) {
                return all;
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                let all = self.all();
                assert!(done(&all), "the receiver did not get what was expected within {within:?}; it got: {:#?}", kinds(&all));
                return all;
            }
        }
    }

    /// Waits until `n` requests were answered with 2xx; returns those.
    pub async fn wait_delivered(&self, n: usize, within: Duration) -> Vec<Hook> {
        self.wait_until(within, |all| all.iter().filter(|h| (200..300).contains(&h.status)).count() >= n).await;
        self.delivered()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

/// `type peer_id status` of each request, for failure messages.
pub fn kinds(hooks: &[Hook]) -> Vec<String> {
    hooks.iter().map(|h| format!("{} {} {}", h.kind(), h.json["data"]["peer_id"].as_str().unwrap_or(""), h.status)).collect()
}

/// A config that sends webhooks to `urls`, retrying fast (tests must not wait long).
pub fn webhook_config(urls: &[String], extra: &str) -> String {
    let urls: Vec<String> = urls.iter().map(|u| format!("{u:?}")).collect();
    format!(
        "[webhooks]\nurls = [{}]\nsecret = \"{WEBHOOK_SECRET}\"\nbackoff_initial_ms = 50\nbackoff_max_ms = 200\ntimeout_ms = 2000\n{extra}",
        urls.join(", ")
    )
}

/// The signing secret of [`webhook_config`].
pub const WEBHOOK_SECRET: &str = "webhook-signing-secret-for-the-tests-0123456789";
