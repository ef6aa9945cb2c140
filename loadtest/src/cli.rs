//! Command-line options.

use crate::webhooks::Mode;
use clap::Parser;
use std::path::PathBuf;

/// N peers across M rooms join an hms-server over real WebSockets on loopback; then
/// every room's host ends its room at the same moment, and the tool checks that every
/// other peer got exactly one `on-peer-leave-request` with its room's reason and host.
/// Reports join and fan-out latency percentiles, joins/s and server memory per peer.
/// Exits 0 when everything was verified, 1 on any verification failure, 2 on a setup error.
#[derive(Debug, Parser)]
#[command(name = "hms-loadtest", version)]
pub struct Args {
    /// Peers in total (each room gets one host and its share of guests).
    #[arg(long, default_value_t = 200)]
    pub peers: usize,
    /// Rooms the peers are spread over.
    #[arg(long, default_value_t = 10)]
    pub rooms: usize,
    /// Start this server binary (`serve` on port 0 with a temp data dir and a known
    /// secret); lets the tool read the server's memory.
    #[arg(long, conflicts_with = "url")]
    pub server_bin: Option<PathBuf>,
    /// Or use a running server at this base URL (loopback only), e.g. ws://127.0.0.1:7880.
    #[arg(long)]
    pub url: Option<String>,
    /// The server's HMS_SECRET, to mint tokens (random when the tool starts the server).
    #[arg(long, env = "HMS_SECRET", hide_env_values = true)]
    pub secret: Option<String>,
    /// Get tokens from `<server-bin> token` (one per room and role) instead of minting them.
    #[arg(long, requires = "server_bin")]
    pub cli_tokens: bool,
    /// Hard limit for the whole run, in seconds.
    #[arg(long, default_value_t = 120)]
    pub timeout_s: u64,
    /// Peers connecting and joining at the same time.
    #[arg(long, default_value_t = 128)]
    pub concurrency: usize,
    /// Heartbeat interval of every peer, in ms.
    #[arg(long, default_value_t = 3000)]
    pub ping_interval_ms: u64,
    /// Wait this long after the last join before reading the server's memory, in ms.
    #[arg(long, default_value_t = 500)]
    pub settle_ms: u64,
    /// Abort the run (as a failure) when the started server's RSS passes this many MiB:
    /// the machine is shared, and a run must never take it down.
    #[arg(long, default_value_t = 8192)]
    pub max_server_rss_mib: u64,
    /// Extra argument for `serve` (repeat for several), e.g. --server-arg=--max-conns-per-ip=100000.
    #[arg(long = "server-arg", allow_hyphen_values = true)]
    pub server_args: Vec<String>,
    /// Do not add the generous default limits to `serve` (use the server's own defaults).
    #[arg(long)]
    pub server_default_limits: bool,
    /// Before the rooms end, a reader joins the first room with at least this many peers,
    /// reads its whole peer list page by page (`find-peer`, `peer-iter-next`) and checks
    /// that every peer was listed exactly once. 0 = no paged read.
    #[arg(long, default_value_t = 1000)]
    pub page_read_min_peers: usize,
    /// Also write the figures as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Webhooks of the started server: off, or POSTed to a receiver this tool runs —
    /// `fast` answers at once (every event is verified and the delivery rate reported),
    /// `slow` answers after --webhook-slow-ms, `down` is a port nobody listens on.
    #[arg(long, value_enum, default_value_t = Mode::Off)]
    pub webhooks: Mode,
    /// How long the `slow` receiver takes to answer, in ms.
    #[arg(long, default_value_t = 1000)]
    pub webhook_slow_ms: u64,
}
