//! `hms-server`: `serve` runs the room server; `token` prints auth or management tokens
//! signed with the same secret `serve` uses; `default-config` prints a commented config.

use clap::{Args, Parser, Subcommand};
use hms_server::auth::{resolve_secret, TokenKeys};
use hms_server::config::{Config, IpNet};
use hms_server::{App, Error, StaticDirs};
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "hms-server", version, about = "The hms room server (WebSocket signaling, REST API, SQLite state)")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
// Parsed once at start: the size of the biggest variant does not matter.
#[allow(clippy::large_enum_variant)]
enum Cmd {
    /// Run the server. Prints `listening on ADDR:PORT` as its first stdout line.
    Serve(ServeArgs),
    /// Print an auth token (`--room --user --role`) or a management token (`--management`).
    Token(TokenArgs),
    /// Print a full, commented config file with the defaults.
    DefaultConfig,
}

/// Flags shared by `serve` and `token`, so both resolve the same secret.
#[derive(Args)]
struct Common {
    /// Data directory: SQLite database and the generated secret.
    #[arg(long, default_value = ".data")]
    data_dir: PathBuf,
    /// TOML config file (see `hms-server default-config`).
    #[arg(long)]
    config: Option<PathBuf>,
}

#[derive(Args)]
struct ServeArgs {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:7880")]
    addr: SocketAddr,
    #[command(flatten)]
    common: Common,
    /// Directory served at `/`.
    #[arg(long)]
    www: Option<PathBuf>,
    /// Directory served at `/pkg/` (the SDK's wasm-pack output).
    #[arg(long)]
    pkg: Option<PathBuf>,
    /// Largest text frame in bytes (close 1009 beyond) [config: limits.max_frame_bytes].
    #[arg(long)]
    max_frame_bytes: Option<usize>,
    /// Outgoing frames queued per connection before a slow peer is cut off [limits.send_queue].
    #[arg(long)]
    send_queue: Option<usize>,
    /// Seconds without a frame before a peer is dropped, 0 = off [limits.idle_timeout_secs].
    #[arg(long)]
    idle_timeout: Option<u64>,
    /// Seconds a dropped peer's place is held for a reconnect, 0 = off [limits.reconnect_window_secs].
    #[arg(long)]
    reconnect_window: Option<u64>,
    /// Frames per second per connection (429 beyond), 0 = off [limits.max_frames_per_sec].
    #[arg(long)]
    max_frames_per_sec: Option<u32>,
    /// Consecutive seconds over the frame rate before close 1008 [limits.rate_limit_strikes].
    #[arg(long)]
    rate_limit_strikes: Option<u32>,
    /// TCP connections per client address, 0 = off [limits.max_connections_per_ip].
    #[arg(long)]
    max_conns_per_ip: Option<usize>,
    /// Seconds one socket write may take before the peer is dropped [limits.write_timeout_secs].
    #[arg(long)]
    write_timeout: Option<u64>,
    /// Max ms end-room waits for the others' notices before answering [limits.end_room_flush_ms].
    #[arg(long)]
    end_room_flush_ms: Option<u64>,
    /// Max ms to wait for close frames on SIGTERM / Ctrl-C [limits.shutdown_grace_ms].
    #[arg(long)]
    shutdown_grace_ms: Option<u64>,
    /// POST every room event here (repeatable; replaces the config's list) [webhooks.urls].
    /// The signing secret comes from env HMS_WEBHOOK_SECRET or webhooks.secret.
    #[arg(long = "webhook-url")]
    webhook_urls: Vec<String>,
    /// Seconds an event is retried before it is listed as failed [webhooks.retry_budget_secs].
    #[arg(long)]
    webhook_retry_budget_secs: Option<u64>,
    /// Ms one webhook delivery may take [webhooks.timeout_ms].
    #[arg(long)]
    webhook_timeout_ms: Option<u64>,
    /// Serve Prometheus metrics at http://ADDR/metrics (port 0 picks one; printed as the
    /// second stdout line, `metrics on ADDR`) [metrics_addr].
    #[arg(long)]
    metrics_addr: Option<SocketAddr>,
    /// Longest join name in bytes (400 beyond) [limits.max_name_bytes].
    #[arg(long)]
    max_name_bytes: Option<usize>,
    /// Longest join metadata (`data`) in bytes (400 beyond) [limits.max_metadata_bytes].
    #[arg(long)]
    max_metadata_bytes: Option<usize>,
    /// Longest end-room / removal reason in bytes (400 beyond) [limits.max_reason_bytes].
    #[arg(long)]
    max_reason_bytes: Option<usize>,
    /// Peers per room, held ones included, 0 = off [limits.max_peers_per_room].
    #[arg(long)]
    max_peers_per_room: Option<usize>,
    /// WebSocket connections per user per room, 0 = off [limits.max_connections_per_user].
    #[arg(long)]
    max_conns_per_user: Option<usize>,
    /// Bytes queued per connection before a slow peer is cut off [limits.send_queue_bytes].
    #[arg(long)]
    send_queue_bytes: Option<usize>,
    /// Joins per user per room per minute, 0 = off [limits.joins_per_user_per_min].
    #[arg(long)]
    joins_per_user_per_min: Option<u32>,
    /// Sessions kept in a room's history, 0 = all [limits.sessions_kept_per_room].
    #[arg(long)]
    sessions_kept_per_room: Option<usize>,
    /// TCP connections open at once, 0 = off [limits.max_connections].
    #[arg(long)]
    max_connections: Option<usize>,
    /// Seconds to send request headers or finish a TLS handshake [limits.header_read_timeout_secs].
    #[arg(long)]
    header_read_timeout: Option<u64>,
    /// POST /v2/token calls per client address per minute, 0 = off [limits.token_requests_per_min_per_ip].
    #[arg(long)]
    token_requests_per_min: Option<u32>,
    /// POST /v2/token calls one client address may make at once [limits.token_burst_per_ip].
    #[arg(long)]
    token_burst: Option<u32>,
    /// PEM certificate chain: serve HTTPS / wss:// (with --tls-key) [http.tls_cert].
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert [http.tls_key].
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Comma-separated origins allowed to open the WebSocket, e.g. https://app.example.com [http.allowed_origins].
    #[arg(long, value_delimiter = ',')]
    allowed_origins: Option<Vec<String>>,
    /// Comma-separated proxy addresses or CIDR blocks whose X-Forwarded-For is believed [http.trusted_proxies].
    #[arg(long, value_delimiter = ',')]
    trusted_proxies: Option<Vec<IpNet>>,
}

#[derive(Args)]
struct TokenArgs {
    /// Room id (app token).
    #[arg(long, required_unless_present = "management")]
    room: Option<String>,
    /// User id (app token).
    #[arg(long, required_unless_present = "management")]
    user: Option<String>,
    /// Role, one of the template's (app token).
    #[arg(long, required_unless_present = "management")]
    role: Option<String>,
    /// Print a management token for the REST API instead.
    #[arg(long, conflicts_with_all = ["room", "user", "role"])]
    management: bool,
    #[command(flatten)]
    common: Common,
}

fn load_config(common: &Common) -> Result<Config, Error> {
    match &common.config {
        Some(path) => Config::load(path),
        None => Ok(Config::default()),
    }
}

fn init_logs() {
    let filter = std::env::var("HMS_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "info".to_owned());
    let filter = tracing_subscriber::EnvFilter::try_new(&filter).unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    use std::io::IsTerminal;
    let ansi = std::io::stderr().is_terminal();
    tracing_subscriber::fmt().with_env_filter(filter).with_ansi(ansi).with_writer(std::io::stderr).init();
}

/// Raises the soft open-file limit to the hard one: every peer is a socket, and a
/// default soft limit of 1024 would cap the server long before the machine does.
fn raise_nofile() {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed in.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            let _ = libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

fn apply_flags(c: &mut Config, a: &ServeArgs) {
    let l = &mut c.limits;
    if let Some(v) = a.max_frame_bytes {
        l.max_frame_bytes = v;
    }
    if let Some(v) = a.send_queue {
        l.send_queue = v;
    }
    if let Some(v) = a.idle_timeout {
        l.idle_timeout_secs = v;
    }
    if let Some(v) = a.reconnect_window {
        l.reconnect_window_secs = v;
    }
    if let Some(v) = a.max_frames_per_sec {
        l.max_frames_per_sec = v;
    }
    if let Some(v) = a.rate_limit_strikes {
        l.rate_limit_strikes = v;
    }
    if let Some(v) = a.max_conns_per_ip {
        l.max_connections_per_ip = v;
    }
    if let Some(v) = a.write_timeout {
        l.write_timeout_secs = v;
    }
    if let Some(v) = a.end_room_flush_ms {
        l.end_room_flush_ms = v;
    }
    if let Some(v) = a.shutdown_grace_ms {
        l.shutdown_grace_ms = v;
    }
    if let Some(v) = a.max_name_bytes {
        l.max_name_bytes = v;
    }
    if let Some(v) = a.max_metadata_bytes {
        l.max_metadata_bytes = v;
    }
    if let Some(v) = a.max_reason_bytes {
        l.max_reason_bytes = v;
    }
    if let Some(v) = a.max_peers_per_room {
        l.max_peers_per_room = v;
    }
    if let Some(v) = a.max_conns_per_user {
        l.max_connections_per_user = v;
    }
    if let Some(v) = a.send_queue_bytes {
        l.send_queue_bytes = v;
    }
    if let Some(v) = a.joins_per_user_per_min {
        l.joins_per_user_per_min = v;
    }
    if let Some(v) = a.sessions_kept_per_room {
        l.sessions_kept_per_room = v;
    }
    if let Some(v) = a.max_connections {
        l.max_connections = v;
    }
    if let Some(v) = a.header_read_timeout {
        l.header_read_timeout_secs = v;
    }
    if let Some(v) = a.token_requests_per_min {
        l.token_requests_per_min_per_ip = v;
    }
    if let Some(v) = a.token_burst {
        l.token_burst_per_ip = v;
    }
    let h = &mut c.http;
    if let (Some(cert), Some(key)) = (&a.tls_cert, &a.tls_key) {
        h.tls_cert = Some(cert.clone());
        h.tls_key = Some(key.clone());
    }
    if let Some(v) = &a.allowed_origins {
        h.allowed_origins = v.iter().filter(|o| !o.is_empty()).cloned().collect();
    }
    if let Some(v) = &a.trusted_proxies {
        h.trusted_proxies = v.clone();
    }
    let w = &mut c.webhooks;
    if !a.webhook_urls.is_empty() {
        w.urls = a.webhook_urls.clone();
    }
    if let Some(v) = a.webhook_retry_budget_secs {
        w.retry_budget_secs = v;
    }
    if let Some(v) = a.webhook_timeout_ms {
        w.timeout_ms = v;
    }
    // A secret on the command line would show in `ps`: env or config only.
    if let Ok(v) = std::env::var("HMS_WEBHOOK_SECRET") {
        if !v.is_empty() {
            w.secret = Some(v);
        }
    }
    if a.metrics_addr.is_some() {
        c.metrics_addr = a.metrics_addr;
    }
}

async fn serve(args: ServeArgs) -> Result<(), Error> {
    let mut config = load_config(&args.common)?;
    apply_flags(&mut config, &args);
    config.validate()?;
    raise_nofile();
    let secret = resolve_secret(config.secret.as_deref(), &args.common.data_dir)?;
    let app = App::new(config, &secret, &args.common.data_dir).await?;
    let fail = |what: String| Error::Config(what);
    let listener = tokio::net::TcpListener::bind(args.addr).await.map_err(|e| fail(format!("binding {}: {e}", args.addr)))?;
    let local = listener.local_addr().map_err(|e| fail(format!("reading the bound address: {e}")))?;
    let metrics = match app.config().metrics_addr {
        Some(addr) => {
            let l = tokio::net::TcpListener::bind(addr).await.map_err(|e| fail(format!("binding the metrics address {addr}: {e}")))?;
            let at = l.local_addr().map_err(|e| fail(format!("reading the metrics address: {e}")))?;
            tokio::spawn(hms_server::metrics::serve(l, app.metrics().clone()));
            Some(at)
        }
        None => None,
    };
    {
        // Scripts read the port from this first line: print and flush it before anything else.
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening on {local}").map_err(|e| fail(format!("stdout: {e}")))?;
        if let Some(at) = metrics {
            writeln!(out, "metrics on {at}").map_err(|e| fail(format!("stdout: {e}")))?;
        }
        out.flush().map_err(|e| fail(format!("stdout: {e}")))?;
    }
    tracing::info!(addr = %local, data_dir = %args.common.data_dir.display(), "hms-server listening");
    let dirs = StaticDirs { www: args.www, pkg: args.pkg };
    hms_server::serve(app, listener, dirs, shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}

fn token(args: TokenArgs) -> Result<String, Error> {
    let config = load_config(&args.common)?;
    let secret = resolve_secret(config.secret.as_deref(), &args.common.data_dir)?;
    let keys = TokenKeys::new(secret.as_bytes(), &config.access_key, config.token_ttl_secs);
    if args.management {
        return keys.management_token();
    }
    let (Some(room), Some(user), Some(role)) = (args.room, args.user, args.role) else {
        return Err(Error::Config("--room, --user and --role are required (or --management)".into()));
    };
    if !config.template.roles.contains_key(&role) {
        let known: Vec<&String> = config.template.roles.keys().collect();
        return Err(Error::Config(format!("role {role:?} is not in the template (known: {known:?})")));
    }
    keys.app_token(&room, &user, &role)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.cmd {
        Cmd::Serve(args) => {
            init_logs();
            match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
                Ok(rt) => rt.block_on(serve(args)),
                Err(e) => Err(Error::Config(format!("starting the runtime: {e}"))),
            }
        }
        Cmd::Token(args) => token(args).map(|t| println!("{t}")),
        Cmd::DefaultConfig => {
            print!("{}", include_str!("../config.example.toml"));
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hms-server: {e}");
            ExitCode::FAILURE
        }
    }
}
