//! Server configuration: a TOML file (all keys optional), the built-in default role
//! template, and the limits that keep one bad client from hurting the others.

use crate::error::Error;
use hms_protocol::{Permissions, Role};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// The default template, shipped inside the binary. `host` may end the room and remove
/// others; `guest` may do neither.
pub const DEFAULT_TEMPLATE_TOML: &str = r#"
[template]
id = "default"
large_room_peers = 500
peer_batch_ms = 50

[template.roles.host]
priority = 100
permissions = { endRoom = true, removeOthers = true, mute = true, unmute = true, changeRole = true }

[template.roles.guest]
priority = 1
peer_updates = false
permissions = { endRoom = false, removeOthers = false, mute = false, unmute = false, changeRole = false }
"#;

/// The whole configuration file. Every key is optional.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// HS256 secret for auth and management tokens. `HMS_SECRET` wins over it; without
    /// either, a random secret is generated once into `<data-dir>/secret`.
    #[serde(default)]
    pub secret: Option<String>,
    /// The `access_key` claim put into tokens the server mints.
    #[serde(default = "default_access_key")]
    pub access_key: String,
    /// Lifetime of tokens minted by `hms-server token` and `/v2/token`, in seconds.
    #[serde(default = "default_token_ttl")]
    pub token_ttl_secs: u64,
    /// Limits and timeouts.
    #[serde(default)]
    pub limits: Limits,
    /// TLS, allowed origins and trusted proxies.
    #[serde(default)]
    pub http: Http,
    /// The role template every room uses.
    #[serde(default = "default_template")]
    pub template: Template,
    /// Webhooks: where events are POSTed, how they are signed and retried.
    #[serde(default)]
    pub webhooks: Webhooks,
    /// Serve Prometheus metrics at `http://<metrics_addr>/metrics` (a listener of its
    /// own, so it need not be public). Flag `--metrics-addr`. Off by default.
    #[serde(default)]
    pub metrics_addr: Option<std::net::SocketAddr>,
}

fn default_access_key() -> String {
    "hms-local".to_owned()
}
fn default_token_ttl() -> u64 {
    86_400
}
fn default_template() -> Template {
    // The constant is part of the binary and covered by a unit test, so it always parses.
    toml::from_str::<TemplateFile>(DEFAULT_TEMPLATE_TOML).map(|f| f.template).unwrap_or_else(|_| Template {
        id: "default".into(),
        roles: BTreeMap::new(),
        large_room_peers: default_large_room_peers(),
        peer_batch_ms: default_peer_batch_ms(),
    })
}

#[derive(Deserialize)]
struct TemplateFile {
    template: Template,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            secret: None,
            access_key: default_access_key(),
            token_ttl_secs: default_token_ttl(),
            limits: Limits::default(),
            http: Http::default(),
            template: default_template(),
            webhooks: Webhooks::default(),
            metrics_addr: None,
        }
    }
}

/// `[http]`: how the server meets the network. Each key also has a `serve` flag.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Http {
    /// PEM certificate chain: with `tls_key`, the server speaks only HTTPS / `wss://`.
    /// Flag `--tls-cert`.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `tls_cert`. Flag `--tls-key`.
    pub tls_key: Option<PathBuf>,
    /// Origins (`https://app.example.com`, scheme://host[:port]) whose pages may open the
    /// WebSocket; others get `on-error {403}`. Empty: any. Requests without an `Origin`
    /// header (not from a browser) are not affected. Also the only origins CORS answers
    /// for on `/v2/token`. Flag `--allowed-origins a,b`.
    pub allowed_origins: Vec<String>,
    /// Addresses or CIDR blocks of reverse proxies whose `X-Forwarded-For` is believed:
    /// requests through them count (limits, throttles) and are logged as the address the
    /// proxy names. Empty: the header is ignored. Flag `--trusted-proxies a,b`.
    pub trusted_proxies: Vec<IpNet>,
}

/// An address block: `10.0.0.0/8`, `2001:db8::/32`, or one address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

impl IpNet {
    /// Whether `ip` is in the block (IPv4-mapped IPv6 addresses count as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl std::str::FromStr for IpNet {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("{s:?} is not an address or a CIDR block (e.g. 10.0.0.0/8)");
        let (addr, prefix) = match s.trim().split_once('/') {
            Some((a, p)) => (a.parse::<IpAddr>().map_err(|_| bad())?, Some(p.parse::<u8>().map_err(|_| bad())?)),
            None => (s.trim().parse::<IpAddr>().map_err(|_| bad())?, None),
        };
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        if prefix > max {
            return Err(bad());
        }
        Ok(IpNet { addr, prefix })
    }
}

impl<'de> Deserialize<'de> for IpNet {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

/// Checks an allowed origin: `scheme://host[:port]`, nothing after.
pub fn check_origin(origin: &str) -> Result<(), String> {
    let rest = origin.strip_prefix("https://").or_else(|| origin.strip_prefix("http://"));
    match rest {
        Some(host) if !host.is_empty() && !host.contains(['/', '?', '#', ' ']) => Ok(()),
        _ => Err(format!("allowed origin {origin:?} must be scheme://host[:port] (e.g. https://app.example.com)")),
    }
}

/// A role template: the roles a room knows, by name.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Template {
    /// Sent to clients as `template_id`.
    #[serde(default = "default_template_id")]
    pub id: String,
    /// Roles by name.
    #[serde(default)]
    pub roles: BTreeMap<String, RoleConfig>,
    /// A room becomes a large room (paged peer list, coalesced notices; see
    /// docs/PROTOCOL.md) at the join that brings it to this many peers. 0 = never, 1 =
    /// every room from its first join. Default 500.
    #[serde(default = "default_large_room_peers")]
    pub large_room_peers: usize,
    /// In large rooms, joins and leaves are collected for this long and sent as one
    /// `on-peer-batch`, in ms. Default 50.
    #[serde(default = "default_peer_batch_ms")]
    pub peer_batch_ms: u64,
}

fn default_template_id() -> String {
    "default".to_owned()
}

fn default_large_room_peers() -> usize {
    500
}

fn default_peer_batch_ms() -> u64 {
    50
}

fn yes() -> bool {
    true
}

/// One role in the config file: `[template.roles.<name>]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleConfig {
    /// Higher is more important.
    #[serde(default)]
    pub priority: i32,
    /// camelCase permission flags, as 100ms names them; missing ones are false.
    #[serde(default)]
    pub permissions: Permissions,
    /// In large rooms, whether peers of this role get `on-peer-batch` (the joins and
    /// leaves of each tick). Small rooms tell every role, as always. Default true.
    #[serde(default = "yes")]
    pub peer_updates: bool,
}

impl Template {
    /// The roles as the wire has them (`known_roles`).
    pub fn known_roles(&self) -> BTreeMap<String, Role> {
        self.roles
            .iter()
            .map(|(name, r)| (name.clone(), Role { name: name.clone(), priority: r.priority, permissions: r.permissions }))
            .collect()
    }

    /// The roles that get no join and leave notices in large rooms.
    pub fn quiet_roles(&self) -> std::collections::HashSet<String> {
        self.roles.iter().filter(|(_, r)| !r.peer_updates).map(|(n, _)| n.clone()).collect()
    }
}

/// Limits and timeouts. Each can be set in `[limits]` of the config file or with the
/// `serve` flag named in its doc; `0` disables a limit where noted.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest text frame accepted, bytes; bigger ones close the socket with 1009.
    /// Flag `--max-frame-bytes`. Default 65536.
    pub max_frame_bytes: usize,
    /// Frames queued for one connection before the server gives up on it as too slow
    /// and disconnects it. Flag `--send-queue`. Default 1024.
    pub send_queue: usize,
    /// Seconds without any frame from a peer before it is dropped (the SDK pings every
    /// 3 s). Flag `--idle-timeout`. Default 30; 0 disables.
    pub idle_timeout_secs: u64,
    /// Seconds a dropped peer's place (room + peer_id + user_id) is held for a
    /// reconnect before the others get `on-peer-leave`. Flag `--reconnect-window`.
    /// Default 15; 0 disables.
    pub reconnect_window_secs: u64,
    /// Frames per second one connection may send; beyond, frames get error 429.
    /// Flag `--max-frames-per-sec`. Default 50; 0 disables.
    pub max_frames_per_sec: u32,
    /// Consecutive seconds over the frame rate after which the socket is closed (1008).
    /// Flag `--rate-limit-strikes`. Default 3.
    pub rate_limit_strikes: u32,
    /// TCP connections (HTTP and WebSocket) open at once from one client address (an
    /// IPv6 client: its /64); beyond, a WebSocket gets `on-error {429}` and close 1008,
    /// an HTTP request 429. Flag `--max-conns-per-ip`. Default 1000; 0 disables.
    pub max_connections_per_ip: usize,
    /// Seconds one socket write may take before the connection is dropped as stuck.
    /// Flag `--write-timeout`. Default 10.
    pub write_timeout_secs: u64,
    /// How long `end-room` waits for the other peers' `on-peer-leave-request` to be
    /// written before answering the requester, in ms (a slow peer never holds it
    /// longer). Flag `--end-room-flush-ms`. Default 2000.
    pub end_room_flush_ms: u64,
    /// On SIGTERM/Ctrl-C, how long to wait for close frames to be written, in ms.
    /// Flag `--shutdown-grace-ms`. Default 3000.
    pub shutdown_grace_ms: u64,
    /// Longest `name` a peer may join with, in bytes; longer gets 400.
    /// Flag `--max-name-bytes`. Default 256.
    pub max_name_bytes: usize,
    /// Longest `data` (the app's metadata) a peer may join with, in bytes; longer gets 400.
    /// Flag `--max-metadata-bytes`. Default 4096.
    pub max_metadata_bytes: usize,
    /// Longest `reason` of an end-room or a removal (WebSocket and REST), in bytes;
    /// longer gets 400. Flag `--max-reason-bytes`. Default 1024.
    pub max_reason_bytes: usize,
    /// Peers one room holds at once (connected, joined or held for a reconnect); beyond,
    /// a new connection gets `on-error {429}`. Flag `--max-peers-per-room`. Default
    /// 10000; 0 disables.
    pub max_peers_per_room: usize,
    /// WebSocket connections one user (the token's `user_id`) may have open in one room;
    /// beyond, `on-error {429}`. Flag `--max-conns-per-user`. Default 8; 0 disables.
    pub max_connections_per_user: usize,
    /// Bytes of frames queued for one connection; a peer whose queue holds more is
    /// disconnected like one over `send_queue` frames. A joiner's `peer-list` is built
    /// when the writer gets to it, so it is not counted. Flag `--send-queue-bytes`.
    /// Default 8 MiB.
    pub send_queue_bytes: usize,
    /// Joins one user may make in one room per minute (as many at once); beyond, `join`
    /// gets 429. Flag `--joins-per-user-per-min`. Default 30; 0 disables.
    pub joins_per_user_per_min: u32,
    /// Sessions of one room kept in the history; older ended ones are deleted when a new
    /// one starts. Flag `--sessions-kept-per-room`. Default 1000; 0 keeps all.
    pub sessions_kept_per_room: usize,
    /// TCP connections open at once (HTTP and WebSocket); beyond, new ones are closed at
    /// once. Flag `--max-connections`. Default 100000; 0 disables.
    pub max_connections: usize,
    /// Seconds a client has to send a request's headers (and to finish a TLS handshake);
    /// slower connections are closed. Flag `--header-read-timeout`. Default 10.
    pub header_read_timeout_secs: u64,
    /// `POST /v2/token` calls one client address may make per minute, after a burst of
    /// `token_burst_per_ip`; beyond, 429 with `Retry-After`. Flag
    /// `--token-requests-per-min`. Default 120; 0 disables.
    pub token_requests_per_min_per_ip: u32,
    /// How many `POST /v2/token` calls one address may make at once. Flag
    /// `--token-burst`. Default 60.
    pub token_burst_per_ip: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_frame_bytes: hms_protocol::MAX_FRAME_BYTES,
            send_queue: 1024,
            idle_timeout_secs: 30,
            reconnect_window_secs: 15,
            max_frames_per_sec: 50,
            rate_limit_strikes: 3,
            max_connections_per_ip: 1000,
            write_timeout_secs: 10,
            end_room_flush_ms: 2000,
            shutdown_grace_ms: 3000,
            max_name_bytes: 256,
            max_metadata_bytes: 4096,
            max_reason_bytes: 1024,
            max_peers_per_room: 10_000,
            max_connections_per_user: 8,
            send_queue_bytes: 8 << 20,
            joins_per_user_per_min: 30,
            sessions_kept_per_room: 1000,
            max_connections: 100_000,
            header_read_timeout_secs: 10,
            token_requests_per_min_per_ip: 120,
            token_burst_per_ip: 60,
        }
    }
}

/// The `[webhooks]` section. Off while `urls` is empty.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Webhooks {
    /// Where every event is POSTed (each target gets every event, in order per room).
    /// Flag `--webhook-url` (repeatable). Default none: webhooks off.
    pub urls: Vec<String>,
    /// HMAC-SHA256 key for the `X-HMS-Signature` header, at least 32 characters.
    /// Env `HMS_WEBHOOK_SECRET` wins over it. Required when `urls` is set.
    pub secret: Option<String>,
    /// Time for one delivery (connect, send, answer), ms. Default 10000.
    pub timeout_ms: u64,
    /// Time to connect, ms. Default 5000.
    pub connect_timeout_ms: u64,
    /// How long an event is retried, counted from when it happened, before it moves to
    /// the failed list (`GET /v2/webhooks/failed`). Flag `--webhook-retry-budget-secs`.
    /// Default 86400 (a day).
    pub retry_budget_secs: u64,
    /// First retry delay, ms; doubles per attempt, with jitter. Default 1000.
    pub backoff_initial_ms: u64,
    /// Longest retry delay, ms (how soon a receiver back from an outage is served).
    /// Default 30000.
    pub backoff_max_ms: u64,
    /// Rooms delivered to one target at once (events of one room go one at a time, in
    /// order). Default 16.
    pub max_in_flight: usize,
}

impl Default for Webhooks {
    fn default() -> Self {
        Self {
            urls: Vec::new(),
            secret: None,
            timeout_ms: 10_000,
            connect_timeout_ms: 5_000,
            retry_budget_secs: 86_400,
            backoff_initial_ms: 1_000,
            backoff_max_ms: 30_000,
            max_in_flight: 16,
        }
    }
}

/// The shortest webhook signing secret accepted.
pub const MIN_WEBHOOK_SECRET: usize = 32;

impl Webhooks {
    /// Whether events are sent at all.
    pub fn enabled(&self) -> bool {
        !self.urls.is_empty()
    }

    fn validate(&self) -> Result<(), Error> {
        let bad = |m: String| Err(Error::Config(format!("webhooks: {m}")));
        if !self.enabled() {
            return Ok(());
        }
        for u in &self.urls {
            let ok = (u.starts_with("http://") || u.starts_with("https://")) && u.len() > "https://".len() && !u.contains(char::is_whitespace);
            if !ok {
                return bad(format!("{u:?} is not an http:// or https:// URL"));
            }
        }
        match self.secret.as_deref() {
            None | Some("") => return bad("a signing secret is required (env HMS_WEBHOOK_SECRET or webhooks.secret)".into()),
            Some(s) if s.chars().count() < MIN_WEBHOOK_SECRET => {
                return bad(format!("the signing secret is {} characters; use at least {MIN_WEBHOOK_SECRET} (e.g. `openssl rand -hex 32`)", s.chars().count()))
            }
            _ => {}
        }
        if self.max_in_flight == 0 {
            return bad("max_in_flight must be at least 1".into());
        }
        for (name, v, min, max) in [
            ("timeout_ms", self.timeout_ms, 1, 600_000),
            ("connect_timeout_ms", self.connect_timeout_ms, 1, 600_000),
            ("retry_budget_secs", self.retry_budget_secs, 0, 30 * 86_400),
            ("backoff_initial_ms", self.backoff_initial_ms, 1, 3_600_000),
            ("backoff_max_ms", self.backoff_max_ms, 1, 3_600_000),
        ] {
            if v < min || v > max {
                return bad(format!("{name} = {v} is outside {min}..={max}"));
            }
        }
        Ok(())
    }
}

impl Config {
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::Config(format!("reading {}: {e}", path.display())))?;
        Self::parse(&text).map_err(|e| Error::Config(format!("{}: {e}", path.display())))
    }

    /// Parses and validates config text.
    pub fn parse(text: &str) -> Result<Self, Error> {
        let config: Config = toml::from_str(text).map_err(|e| Error::Config(e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    /// Checks what serde cannot: at least one role, sane limits.
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |m: &str| Err(Error::Config(m.to_owned()));
        if self.template.roles.is_empty() {
            return bad("the template has no roles");
        }
        if !(1..=10_000).contains(&self.template.peer_batch_ms) {
            return bad("template.peer_batch_ms must be 1 to 10000");
        }
        if self.limits.send_queue == 0 {
            return bad("limits.send_queue must be at least 1");
        }
        if self.limits.max_frame_bytes < 1024 {
            return bad("limits.max_frame_bytes must be at least 1024");
        }
        if self.limits.send_queue_bytes < 64 * 1024 {
            return bad("limits.send_queue_bytes must be at least 65536");
        }
        if !(1..=3600).contains(&self.limits.header_read_timeout_secs) {
            return bad("limits.header_read_timeout_secs must be 1 to 3600");
        }
        if self.http.tls_cert.is_some() != self.http.tls_key.is_some() {
            return bad("http.tls_cert and http.tls_key (--tls-cert, --tls-key) go together");
        }
        for o in &self.http.allowed_origins {
            check_origin(o).map_err(Error::Config)?;
        }
        let l = &self.limits;
        // Upper bounds keep every timer computable (no Instant overflow) and sane.
        const WEEK: u64 = 7 * 86_400;
        for (name, v, max) in [
            ("idle_timeout_secs", l.idle_timeout_secs, WEEK),
            ("reconnect_window_secs", l.reconnect_window_secs, WEEK),
            ("write_timeout_secs", l.write_timeout_secs, WEEK),
            ("end_room_flush_ms", l.end_room_flush_ms, 600_000),
            ("shutdown_grace_ms", l.shutdown_grace_ms, 600_000),
            ("max_frame_bytes", l.max_frame_bytes as u64, 16 << 20),
        ] {
            if v > max {
                return Err(Error::Config(format!("limits.{name} = {v} is above the maximum {max}")));
            }
        }
        self.webhooks.validate()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_template_has_host_and_guest() {
        let t = toml::from_str::<TemplateFile>(DEFAULT_TEMPLATE_TOML).unwrap().template;
        let roles = t.known_roles();
        assert!(roles["host"].permissions.end_room && roles["host"].permissions.remove_others);
        assert!(!roles["guest"].permissions.end_room && !roles["guest"].permissions.remove_others);
        assert_eq!(Config::default().template.roles.len(), 2);
        assert_eq!(t.quiet_roles(), ["guest".to_owned()].into(), "guests get no batches in large rooms");
        assert_eq!((t.large_room_peers, t.peer_batch_ms), (500, 50));
    }

    #[test]
    fn example_config_parses() {
        let c = Config::parse(include_str!("../config.example.toml")).unwrap();
        assert!(c.template.roles.contains_key("host"));
        assert_eq!(c.limits.max_frame_bytes, 65536);
    }

    #[test]
    fn partial_config_keeps_defaults_and_rejects_typos() {
        let c = Config::parse("[limits]\nidle_timeout_secs = 5\n").unwrap();
        assert_eq!(c.limits.idle_timeout_secs, 5);
        assert_eq!(c.limits.reconnect_window_secs, 15);
        assert_eq!(c.template.roles.len(), 2);
        assert!(Config::parse("[limits]\nidle_timeout = 5\n").is_err());
        assert!(Config::parse("[template]\nid = \"x\"\n").is_err(), "no roles");
        assert!(Config::parse("[limits]\nreconnect_window_secs = 99999999999\n").is_err());
    }

    #[test]
    fn webhooks_need_a_long_secret_and_real_urls() {
        let on = |extra: &str| Config::parse(&format!("[webhooks]\nurls = [\"http://127.0.0.1:9/hook\"]\n{extra}"));
        let short = on("secret = \"too-short\"\n").unwrap_err().to_string();
        assert!(short.contains("9 characters") && short.contains("at least 32"), "{short}");
        assert!(on("").unwrap_err().to_string().contains("signing secret is required"));
        let c = on(&format!("secret = \"{}\"\n", "k".repeat(32))).unwrap();
        assert!(c.webhooks.enabled() && c.webhooks.retry_budget_secs == 86_400);
        let ftp = Config::parse(&format!("[webhooks]\nurls = [\"ftp://x\"]\nsecret = \"{}\"\n", "k".repeat(40)));
        assert!(ftp.unwrap_err().to_string().contains("not an http"));
        assert!(!Config::default().webhooks.enabled(), "off by default");
        assert!(Config::parse("[webhooks]\nurl = []\n").is_err(), "typos are refused");
    }

    #[test]
    fn http_keys_are_checked() {
        let c = Config::parse("[http]\nallowed_origins = [\"https://a.example\"]\ntrusted_proxies = [\"10.0.0.0/8\", \"::1\"]\n").unwrap();
        assert_eq!(c.http.trusted_proxies.len(), 2);
        assert!(Config::parse("[http]\nallowed_origins = [\"https://a.example/path\"]\n").is_err());
        assert!(Config::parse("[http]\ntrusted_proxies = [\"10.0.0.0/33\"]\n").is_err());
        assert!(Config::parse("[http]\ntls_cert = \"c.pem\"\n").is_err(), "a cert needs a key");
    }

    #[test]
    fn ip_blocks_match_their_addresses() {
        let net: IpNet = "10.1.0.0/16".parse().unwrap();
        assert!(net.contains("10.1.200.3".parse().unwrap()));
        assert!(!net.contains("10.2.0.1".parse().unwrap()));
        assert!(net.contains("::ffff:10.1.0.9".parse().unwrap()), "IPv4-mapped");
        let one: IpNet = "127.0.0.2".parse().unwrap();
        assert!(one.contains("127.0.0.2".parse().unwrap()) && !one.contains("127.0.0.1".parse().unwrap()));
        let v6: IpNet = "2001:db8::/32".parse().unwrap();
        assert!(v6.contains("2001:db8:ffff::1".parse().unwrap()) && !v6.contains("2001:db9::1".parse().unwrap()));
        assert!("0.0.0.0/0".parse::<IpNet>().unwrap().contains("8.8.8.8".parse().unwrap()));
        assert!("nope".parse::<IpNet>().is_err());
    }
}
