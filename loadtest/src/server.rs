//! Starting the real server as a child process, and reading its memory.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// A server this tool started; killed when dropped.
pub struct SpawnedServer {
    /// The child (kill_on_drop).
    pub child: Child,
    /// Its OS pid, for /proc.
    pub pid: u32,
    /// `ws://127.0.0.1:PORT`.
    pub base_url: String,
    /// The temp data dir (removed on drop).
    pub data_dir: PathBuf,
    /// Where the server's stderr goes, for the tail on failure.
    pub log_path: PathBuf,
}

impl Drop for SpawnedServer {
    fn drop(&mut self) {
        // kill_on_drop sends SIGKILL; the data dir is ours to remove.
        let _ = self.child.start_kill();
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

/// A fresh, unique temp dir.
pub fn temp_dir(prefix: &str) -> Result<PathBuf, String> {
    let dir = std::env::temp_dir().join(format!("{prefix}-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    Ok(dir)
}

/// Starts `bin serve --addr 127.0.0.1:0 --data-dir <temp> <extra...>` with `HMS_SECRET`
/// and `envs` set, and waits (up to `wait`) for its `listening on 127.0.0.1:PORT` line.
pub async fn spawn(bin: &Path, secret: &str, envs: &[(&str, String)], extra: &[String], wait: Duration) -> Result<SpawnedServer, String> {
    let data_dir = temp_dir("hms-loadtest")?;
    let log_path = data_dir.join("server.log");
    let log = std::fs::File::create(&log_path).map_err(|e| format!("creating {}: {e}", log_path.display()))?;
    let mut cmd = Command::new(bin);
    // If this tool dies without running destructors (SIGKILL, `timeout`), the server must
    // not live on: the kernel sends it SIGTERM when its parent goes. (The signal follows
    // the spawning thread: `run` awaits this on the main thread, which lives to the end.)
    // SAFETY: prctl is async-signal-safe and touches only the child being set up.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        });
    }
    let mut child = cmd
        .args(["serve", "--addr", "127.0.0.1:0", "--data-dir"])
        .arg(&data_dir)
        .args(extra)
        .env("HMS_SECRET", secret)
        .envs(envs.iter().map(|(k, v)| (*k, v.as_str())))
        // Per-connection info logs would cost the server more than the load itself.
        // The `fanout` lines (one per ended room) are the server's own fan-out times.
        .env("RUST_LOG", std::env::var("HMS_LOADTEST_SERVER_LOG").unwrap_or_else(|_| "warn,fanout=info".into()))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log))
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("starting {}: {e}", bin.display()))?;
    let pid = child.id().ok_or("the server exited at once")?;
    let stdout = child.stdout.take().ok_or("no stdout pipe")?;
    let mut server = SpawnedServer { child, pid, base_url: String::new(), data_dir, log_path };
    let mut lines = BufReader::new(stdout).lines();
    let first = tokio::time::timeout(wait, lines.next_line())
        .await
        .map_err(|_| format!("the server printed no line within {wait:?}"))?
        .map_err(|e| format!("reading the server's stdout: {e}"))?
        .ok_or_else(|| format!("the server exited before listening; its log:\n{}", server.log_tail(20)))?;
    let addr = parse_listening(&first).ok_or_else(|| format!("unexpected first line from the server: {first:?}"))?;
    server.base_url = format!("ws://{addr}");
    // Keep draining stdout so the server never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok(server)
}

impl SpawnedServer {
    /// The last `n` lines of the server's log.
    pub fn log_tail(&self, n: usize) -> String {
        let text = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }
}

/// One ended room as the server logged it: when its notices were queued and when the
/// first and last were written and flushed (µs since the Unix epoch), and how many.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerFanOut {
    /// Notices queued (after the durable write).
    pub start_us: u64,
    /// The first notice written and flushed.
    pub first_us: u64,
    /// The last notice written and flushed.
    pub last_us: u64,
    /// Notices queued.
    pub peers: u64,
    /// Notices written within the server's flush bound.
    pub written: u64,
}

/// Reads one `fanout` log line of the server (`... start_us=.. first_us=.. last_us=..`).
pub fn parse_fan_out(line: &str) -> Option<ServerFanOut> {
    if !line.contains("end-room notices written") {
        return None;
    }
    let field = |k: &str| -> Option<u64> {
        let at = line.find(&format!(" {k}="))? + k.len() + 2;
        line[at..].split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
    };
    Some(ServerFanOut { start_us: field("start_us")?, first_us: field("first_us")?, last_us: field("last_us")?, peers: field("peers")?, written: field("written")? })
}

impl SpawnedServer {
    /// The server's own fan-out lines so far.
    pub fn fan_outs(&self) -> Vec<ServerFanOut> {
        std::fs::read_to_string(&self.log_path).unwrap_or_default().lines().filter_map(parse_fan_out).collect()
    }
}

/// CPU time (user + system) a process has used, from `/proc/<pid>/stat`: what the
/// server itself spent, whatever else shares the cores (clock ticks: 10 ms resolution).
pub fn cpu_time(pid: u32) -> Result<std::time::Duration, String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).map_err(|e| format!("reading /proc/{pid}/stat: {e}"))?;
    parse_cpu_ticks(&stat).map(|t| std::time::Duration::from_millis(t * 1000 / ticks_per_second())).ok_or_else(|| format!("no CPU times in /proc/{pid}/stat"))
}

fn ticks_per_second() -> u64 {
    // SAFETY: sysconf only reads a constant of the system.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as u64
    } else {
        100
    }
}

/// utime + stime (fields 14 and 15) of a `/proc/<pid>/stat` line, in clock ticks. The
/// command name (field 2) may hold spaces, so fields are counted after its `)`.
pub fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state): utime is field 14, stime field 15.
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

/// `listening on 127.0.0.1:PORT` -> `127.0.0.1:PORT`.
pub fn parse_listening(line: &str) -> Option<&str> {
    let addr = line.trim().strip_prefix("listening on ")?.trim();
    let (_, port) = addr.rsplit_once(':')?;
    port.parse::<u16>().ok().filter(|&p| p != 0)?;
    Some(addr)
}

/// VmRSS in bytes from the text of `/proc/<pid>/status`.
pub fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let mut parts = line["VmRSS:".len()..].split_whitespace();
    let value: u64 = parts.next()?.parse().ok()?;
    match parts.next() {
        Some("kB") | None => Some(value * 1024),
        _ => None,
    }
}

/// The resident memory of process `pid`, in bytes.
pub fn rss_bytes(pid: u32) -> Result<u64, String> {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("reading {path}: {e}"))?;
    parse_vm_rss(&text).ok_or_else(|| format!("no VmRSS in {path}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_listening_line() {
        assert_eq!(parse_listening("listening on 127.0.0.1:40123\n"), Some("127.0.0.1:40123"));
        assert_eq!(parse_listening("listening on 127.0.0.1:0"), None);
        assert_eq!(parse_listening("starting"), None);
        assert_eq!(parse_listening("listening on 127.0.0.1:http"), None);
    }

    #[test]
    fn reads_the_fan_out_lines() {
        let l = "2026-01-01T00:00:00Z  INFO fanout: end-room notices written room=\"r\" peers=99 written=99 start_us=1000 first_us=1200 last_us=5000";
        assert_eq!(parse_fan_out(l), Some(ServerFanOut { start_us: 1000, first_us: 1200, last_us: 5000, peers: 99, written: 99 }));
        assert_eq!(parse_fan_out("INFO room ended peers=3"), None);
    }

    #[test]
    fn reads_cpu_ticks_even_with_spaces_in_the_name() {
        let stat = "4242 (hms server) S 1 2 3 4 5 6 7 8 9 10 250 31 0 0 20 0 4 0 100 0 0";
        assert_eq!(parse_cpu_ticks(stat), Some(281));
        assert!(cpu_time(std::process::id()).is_ok());
    }

    #[test]
    fn reads_vm_rss() {
        let status = "Name:\thms-server\nVmPeak:\t  20000 kB\nVmRSS:\t    8192 kB\nThreads:\t3\n";
        assert_eq!(parse_vm_rss(status), Some(8192 * 1024));
        assert_eq!(parse_vm_rss("Name:\tx\n"), None);
    }

    #[test]
    fn reads_our_own_rss() {
        let rss = rss_bytes(std::process::id()).unwrap();
        assert!(rss > 100 * 1024, "a running test binary uses more than 100 KiB: {rss}");
    }
}
