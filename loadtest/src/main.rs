//! `hms-loadtest`: N peers across M rooms over real WebSockets on loopback; every room
//! ended at once; every push verified; latency, throughput and memory reported.

mod cli;
mod limits;
mod pages;
mod peer;
mod server;
mod stats;
mod token;
mod verify;
mod webhooks;

use clap::Parser;
use futures_util::StreamExt;
use cli::Args;
use stats::{ms, summarize, Summary};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch, Semaphore};
use verify::{PeerReport, RoomPlan};

/// Generous limits for `serve`, so the run measures the server and not its guards: all
/// peers come from 127.0.0.1, and a guard meant for abuse would cut the run short. Each
/// flag is passed only if `serve --help` lists it.
fn generous_limits(biggest_room: usize) -> Vec<(&'static str, String)> {
    let mut flags = vec![
        ("--max-conns-per-ip", "0".into()),
        ("--max-frames-per-sec", "0".into()),
        // Every join in a room of n queues an `on-peer-join` for each of the n-1 others;
        // the default queue (1024) would cut off early joiners of a big room as "slow".
        ("--send-queue", (2 * biggest_room + 1024).to_string()),
    ];
    // The server's default room size (10,000 peers) is kept up to there, so that a
    // 10,000-peer room shows the default fits; the paged reader joins the biggest room as
    // one more peer, so it is counted too.
    if biggest_room + 1 > 10_000 {
        flags.push(("--max-peers-per-room", (biggest_room + 1).to_string()));
    }
    flags
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run(args).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("hms-loadtest: {e}");
            println!("load: 0 passed, 1 failed");
            ExitCode::from(2)
        }
    }
}

/// `ws://HOST:PORT[/]` -> `ws://HOST:PORT`, refusing any host off the loopback.
pub fn loopback_base(url: &str) -> Result<String, String> {
    let rest = url.strip_prefix("ws://").ok_or_else(|| format!("{url}: only ws:// URLs"))?;
    let hostport = rest.trim_end_matches('/');
    if hostport.contains('/') {
        return Err(format!("{url}: give the base URL only (ws://HOST:PORT); the tool adds /ws"));
    }
    let host = match hostport.rsplit_once(':') {
        Some((h, p)) if p.parse::<u16>().is_ok() => h,
        _ => return Err(format!("{url}: no port")),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let loopback = host == "localhost"
        || host.parse::<std::net::IpAddr>().map(|ip| ip.is_loopback()).unwrap_or(false);
    if !loopback {
        return Err(format!("{url}: the load tool only targets loopback addresses"));
    }
    Ok(format!("ws://{hostport}"))
}

/// Splits `peers` over `rooms` as evenly as possible (the first rooms get one more).
pub fn room_sizes(peers: usize, rooms: usize) -> Vec<usize> {
    (0..rooms).map(|r| peers / rooms + usize::from(r < peers % rooms)).collect()
}

async fn server_flags(bin: &std::path::Path) -> String {
    let out = tokio::time::timeout(
        Duration::from_secs(10),
        tokio::process::Command::new(bin).args(["serve", "--help"]).kill_on_drop(true).output(),
    )
    .await;
    match out {
        Ok(Ok(o)) => format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr)),
        _ => String::new(),
    }
}

async fn run(args: Args) -> Result<bool, String> {
    if args.rooms == 0 || args.peers < args.rooms {
        return Err(format!("need at least one peer per room (--peers {} --rooms {})", args.peers, args.rooms));
    }
    let deadline = Instant::now() + Duration::from_secs(args.timeout_s);
    match limits::raise_nofile() {
        Ok((old, new)) if new < (args.peers as u64) + 64 => {
            eprintln!("warning: open-file limit {new} (was {old}) is below --peers {}; connects may fail", args.peers)
        }
        Ok(_) => {}
        Err(e) => eprintln!("warning: could not raise the open-file limit: {e}"),
    }

    if args.webhooks != webhooks::Mode::Off && args.server_bin.is_none() {
        return Err("--webhooks needs --server-bin (the tool starts the server with its receiver)".into());
    }
    // The target: a server we start, or one that runs.
    let mut spawned = None;
    let mut receiver = None;
    let (base, tokens) = match (&args.server_bin, &args.url) {
        (Some(bin), _) => {
            let secret = args.secret.clone().unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
            let mut extra = Vec::new();
            if !args.server_default_limits {
                let help = server_flags(bin).await;
                let biggest = room_sizes(args.peers, args.rooms).into_iter().max().unwrap_or(0);
                for (flag, value) in generous_limits(biggest) {
                    let listed = help.split(|c: char| c.is_whitespace() || c == ',' || c == '=').any(|w| w == flag);
                    if listed {
                        extra.push(format!("{flag}={value}"));
                    }
                }
            }
            extra.extend(args.server_args.iter().cloned());
            let mut envs = Vec::new();
            if args.webhooks != webhooks::Mode::Off {
                let hook_secret = format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple());
                let r = webhooks::Receiver::start(args.webhooks, &hook_secret, Duration::from_millis(args.webhook_slow_ms)).await?;
                extra.push(format!("--webhook-url={}", r.url));
                envs.push(("HMS_WEBHOOK_SECRET", hook_secret));
                receiver = Some(r);
            }
            let s = server::spawn(bin, &secret, &envs, &extra, Duration::from_secs(30)).await?;
            eprintln!("server: {} (pid {}) {}", s.base_url, s.pid, extra.join(" "));
            let tokens = if args.cli_tokens {
                token::TokenSource::Cli { bin: bin.clone(), data_dir: s.data_dir.clone(), secret }
            } else {
                token::TokenSource::Secret(secret)
            };
            let base = s.base_url.clone();
            spawned = Some(s);
            (base, tokens)
        }
        (None, Some(url)) => {
            let secret = args.secret.clone().ok_or("--url needs --secret (or HMS_SECRET) to mint tokens")?;
            (loopback_base(url)?, token::TokenSource::Secret(secret))
        }
        (None, None) => return Err("give --server-bin PATH or --url ws://127.0.0.1:PORT".into()),
    };

    // The plan: rooms, hosts, guests, tokens.
    let run_id = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    let mut plans = Vec::new();
    let mut jobs = Vec::new();
    for (r, size) in room_sizes(args.peers, args.rooms).into_iter().enumerate() {
        let room_id = format!("lt-{run_id}-{r}");
        let reason = format!("load test {run_id}: room {r} ended by its host");
        let mut plan = RoomPlan { room_id: room_id.clone(), reason: reason.clone(), host: String::new(), guests: Vec::new() };
        let shared = if args.cli_tokens {
            Some((tokens.token(&room_id, "host", "host").await?, tokens.token(&room_id, "guest", "guest").await?))
        } else {
            None
        };
        for i in 0..size {
            let is_host = i == 0;
            let peer_id = uuid::Uuid::new_v4().to_string();
            let role = if is_host { "host" } else { "guest" };
            let tok = match &shared {
                Some((h, g)) => if is_host { h.clone() } else { g.clone() },
                None => tokens.token(&room_id, &format!("u{r}-{i}"), role).await?,
            };
            if is_host {
                plan.host = peer_id.clone();
            } else {
                plan.guests.push(peer_id.clone());
            }
            jobs.push(peer::PeerJob {
                url: format!("{base}/ws?peer={peer_id}&token={tok}"),
                report: PeerReport::new(r, peer_id, is_host),
                end_reason: is_host.then(|| reason.clone()),
                ping_every: Duration::from_millis(args.ping_interval_ms.max(100)),
                join_timeout: Duration::from_secs(30),
            });
        }
        plans.push(plan);
    }

    let rss_idle = spawned.as_ref().map(|s| server::rss_bytes(s.pid)).transpose()?;
    let cpu = |s: &Option<server::SpawnedServer>| s.as_ref().and_then(|s| server::cpu_time(s.pid).ok());
    let cpu_start = cpu(&spawned);

    // Join phase.
    let (joined_tx, mut joined_rx) = mpsc::unbounded_channel();
    let (end_tx, end_rx) = watch::channel(false);
    let (stop_tx, stop_rx) = watch::channel(false);
    let sig = peer::Signals { join_permits: Arc::new(Semaphore::new(args.concurrency.max(1))), joined: joined_tx, end: end_rx, stop: stop_rx };
    let started = Instant::now();
    let handles: Vec<_> = jobs.into_iter().map(|job| tokio::spawn(peer::run(job, sig.clone()))).collect();
    drop(sig);
    let mut phase_failures = Vec::new();
    let (mut ok, mut failed) = (0usize, 0usize);
    let mut last_join = started;
    // Progress every few seconds, and the memory guard.
    let mut watch_tick = tokio::time::interval(Duration::from_secs(5));
    watch_tick.tick().await;
    let rss_cap = args.max_server_rss_mib.saturating_mul(1024 * 1024);
    let mut aborted = false;
    while ok + failed < args.peers {
        tokio::select! {
            got = tokio::time::timeout_at(deadline.into(), joined_rx.recv()) => match got {
                Ok(Some(true)) => {
                    ok += 1;
                    last_join = Instant::now();
                }
                Ok(Some(false)) => failed += 1,
                Ok(None) => break,
                Err(_) => {
                    phase_failures.push(format!("timed out after {} s while joining ({ok} joined, {failed} failed)", args.timeout_s));
                    break;
                }
            },
            _ = watch_tick.tick() => {
                let rss = spawned.as_ref().and_then(|s| server::rss_bytes(s.pid).ok());
                eprintln!(
                    "  ... {:.0} s: {ok} joined, {failed} failed{}",
                    started.elapsed().as_secs_f64(),
                    rss.map(|r| format!(", server RSS {} MiB", r / 1048576)).unwrap_or_default()
                );
                if rss.is_some_and(|r| r > rss_cap) {
                    phase_failures.push(format!(
                        "aborted: server RSS passed --max-server-rss-mib {} with {ok} of {} peers joined after {:.0} s",
                        args.max_server_rss_mib, args.peers, started.elapsed().as_secs_f64()
                    ));
                    aborted = true;
                    break;
                }
            }
        }
    }
    if aborted {
        let _ = stop_tx.send(true);
    }
    let join_span = last_join.saturating_duration_since(started);
    eprintln!("joined: {ok} of {} in {:.2} s ({failed} failed)", args.peers, join_span.as_secs_f64());

    // Memory with everyone connected.
    let mut rss_loaded = None;
    if let Some(s) = &spawned {
        let settle = Instant::now() + Duration::from_millis(args.settle_ms);
        tokio::time::sleep_until(settle.min(deadline).into()).await;
        rss_loaded = Some(server::rss_bytes(s.pid)?);
    }

    let cpu_joined = cpu(&spawned);
    // The paged read of a big room's list, before the rooms end.
    let mut page_failures = Vec::new();
    let mut page_read = None;
    let sizes = room_sizes(args.peers, args.rooms);
    if let Some(r) = (args.page_read_min_peers > 0).then(|| sizes.iter().position(|n| *n >= args.page_read_min_peers)).flatten() {
        let plan = &plans[r];
        let reader = format!("reader-{run_id}");
        let tok = tokens.token(&plan.room_id, "page-reader", "guest").await?;
        let left = deadline.saturating_duration_since(Instant::now());
        match pages::read(&format!("{base}/ws?peer={reader}&token={tok}"), &reader, left).await {
            Ok(read) => {
                page_failures = pages::verify(plan, &reader, &read);
                eprintln!("paged read: {} peers in {} pages in {:.1} ms", read.seen.len(), read.pages, ms(read.elapsed));
                page_read = Some(read);
            }
            Err(e) => page_failures.push(format!("paged read of {}: {e}", plan.room_id)),
        }
    }

    let cpu_ending = cpu(&spawned);
    // End phase: every host ends its room at once; wait for every peer to finish.
    let _ = end_tx.send(true);
    let ending = Instant::now();
    let mut reports = Vec::with_capacity(handles.len());
    // One stream of every peer task, drained until the deadline and, past it, for a few
    // seconds more after `stop` (every task returns at once on stop). A task's result is
    // taken exactly once (polling a finished JoinHandle again would panic).
    let mut pending: futures_util::stream::FuturesUnordered<_> = handles.into_iter().collect();
    let mut take = |r: Result<PeerReport, tokio::task::JoinError>, failures: &mut Vec<String>| match r {
        Ok(rep) => reports.push(rep),
        Err(e) => failures.push(format!("a peer task failed: {e}")),
    };
    let mut timed_out = false;
    while !pending.is_empty() {
        match tokio::time::timeout_at(deadline.into(), pending.next()).await {
            Ok(Some(r)) => take(r, &mut phase_failures),
            Ok(None) => break,
            Err(_) => {
                timed_out = true;
                break;
            }
        }
    }
    if timed_out {
        phase_failures.push(format!("timed out after {} s waiting for the rooms to end", args.timeout_s));
        let _ = stop_tx.send(true);
        let grace = tokio::time::Instant::now() + Duration::from_secs(5);
        while !pending.is_empty() {
            match tokio::time::timeout_at(grace, pending.next()).await {
                Ok(Some(r)) => take(r, &mut phase_failures),
                Ok(None) => break,
                Err(_) => {
                    phase_failures.push(format!("{} peer tasks ignored stop", pending.len()));
                    break;
                }
            }
        }
    }
    let end_span = ending.elapsed();
    let cpu_ended = cpu(&spawned);
    // The server's own CPU time per phase: the machine is shared, so wall-clock figures
    // include waiting for a core; this does not.
    let cpu_ms = |a: Option<Duration>, b: Option<Duration>| Some(ms(b?.saturating_sub(a?)));
    let (cpu_join_ms, cpu_end_ms) = (cpu_ms(cpu_start, cpu_joined), cpu_ms(cpu_ending, cpu_ended));

    // Webhooks: with a fast receiver, wait for every event and verify them.
    let hooks_expected = webhooks::expected(&plans);
    let (hook_events, hook_problems) = match &receiver {
        Some(r) if args.webhooks == webhooks::Mode::Fast => {
            let got = r.wait_for(hooks_expected, deadline).await;
            let problems = webhooks::verify(&plans, &got);
            (got, problems)
        }
        Some(r) => (r.got(), Vec::new()),
        None => (Vec::new(), Vec::new()),
    };

    // Verification and figures.
    let mut failures = phase_failures;
    failures.extend(verify::verify(&plans, &reports));
    failures.extend(page_failures);
    failures.extend(hook_problems);
    // The server's CPU time from before the joins until every room ended (and, with a fast
    // receiver, every event was delivered).
    let cpu_all = cpu(&spawned).or(cpu_ended);
    let server_cpu_s = cpu_start.zip(cpu_all).map(|(a, b)| b.saturating_sub(a).as_secs_f64());
    let hooks_report = webhook_figures(&hook_events, ending);
    // The server's own view: per room, from the notices queued to the last one written.
    let fan_outs = spawned.as_ref().map(|s| s.fan_outs()).unwrap_or_default();
    let server_last: Vec<Duration> = fan_outs.iter().map(|f| Duration::from_micros(f.last_us.saturating_sub(f.start_us))).collect();
    let server_span = match (fan_outs.iter().map(|f| f.start_us).min(), fan_outs.iter().map(|f| f.last_us).max()) {
        (Some(a), Some(b)) => Some(Duration::from_micros(b.saturating_sub(a))),
        _ => None,
    };
    let joins: Vec<Duration> = reports.iter().filter_map(|r| r.join_latency).collect();
    let (fan, last_per_room) = verify::fan_out(&plans, &reports);
    let end_answers: Vec<Duration> = reports
        .iter()
        .filter_map(|r| Some(r.end_answer.as_ref()?.0.saturating_duration_since(r.end_sent_at?)))
        .collect();
    let last_fan: Vec<Duration> = last_per_room.iter().flatten().copied().collect();
    let join_s = summarize(&joins);
    let fan_s = summarize(&fan);
    let end_s = summarize(&end_answers);
    let last_s = summarize(&last_fan);
    let joins_per_s = if join_span.is_zero() { 0.0 } else { ok as f64 / join_span.as_secs_f64() };
    let rss_per_peer = match (rss_idle, rss_loaded) {
        (Some(i), Some(l)) if ok > 0 => Some((l.saturating_sub(i)) as f64 / ok as f64),
        _ => None,
    };

    println!("hms-loadtest: {} peers in {} rooms against {base}", args.peers, args.rooms);
    println!("  peers held (joined at once) : {ok}");
    print_summary("join latency (connect+join)", &join_s);
    println!("  joins/s                     : {joins_per_s:.0}  (all {ok} joined in {:.3} s, {} at a time)", join_span.as_secs_f64(), args.concurrency);
    print_summary("fan-out (end-room -> push)", &fan_s);
    print_summary("fan-out to the last peer", &last_s);
    print_summary("end-room answered", &end_s);
    let server_s = summarize(&server_last);
    if !fan_outs.is_empty() {
        print_summary("server: queued -> last written", &server_s);
        println!("  server: all rooms' notices   : {:.3} ms from the first queued to the last written ({} rooms)", server_span.map(ms).unwrap_or(0.0), fan_outs.len());
    }
    if let (Some(j), Some(e)) = (cpu_join_ms, cpu_end_ms) {
        println!("  server CPU time             : {j:.0} ms while joining, {e:.0} ms while ending the rooms (user + system)");
    }
    if let Some(r) = &page_read {
        println!("  paged read of the peer list : {} peers in {} pages of up to 100 in {:.1} ms", r.seen.len(), r.pages, ms(r.elapsed));
    }
    println!("  rooms ended in              : {:.3} s (until every socket closed)", end_span.as_secs_f64());
    if let Some(cpu) = server_cpu_s {
        println!("  server CPU time             : {cpu:.2} s (user + system, from before the joins to the end{})", if args.webhooks == webhooks::Mode::Fast { " of the deliveries" } else { "" });
    }
    if args.webhooks != webhooks::Mode::Off {
        let h = &hooks_report;
        println!(
            "  webhooks ({:?} receiver)     : {} of {hooks_expected} events delivered ({} requests)",
            args.webhooks, h.distinct, h.requests
        );
        if h.end_events > 0 {
            println!(
                "  webhook delivery            : the end-rooms' {} events (closes and leaves) delivered within {:.3} s: {:.0} events/s",
                h.end_events, h.lag_s, h.per_s
            );
        }
    }
    if let (Some(i), Some(l)) = (rss_idle, rss_loaded) {
        println!(
            "  server RSS                  : idle {:.1} MiB, with peers {:.1} MiB, {:.1} KiB per peer",
            i as f64 / 1048576.0,
            l as f64 / 1048576.0,
            rss_per_peer.unwrap_or(0.0) / 1024.0
        );
    }
    if let Some(path) = &args.json {
        let json = serde_json::json!({
            "peers": args.peers, "rooms": args.rooms, "held": ok,
            "join_ms": summary_json(&join_s), "fan_out_ms": summary_json(&fan_s),
            "fan_out_last_ms": summary_json(&last_s), "end_room_answer_ms": summary_json(&end_s),
            "joins_per_s": joins_per_s, "join_span_s": join_span.as_secs_f64(),
            "rss_idle_bytes": rss_idle, "rss_loaded_bytes": rss_loaded, "rss_per_peer_bytes": rss_per_peer,
            "server_fan_out_last_ms": summary_json(&server_s),
            "server_fan_out_span_ms": server_span.map(ms),
            "server_cpu_join_ms": cpu_join_ms, "server_cpu_end_ms": cpu_end_ms,
            "page_read": page_read.as_ref().map(|r| serde_json::json!({"peers": r.seen.len(), "pages": r.pages, "ms": ms(r.elapsed)})),
            "server_cpu_s": server_cpu_s,
            "failures": failures.len(),
            "webhooks": format!("{:?}", args.webhooks).to_lowercase(), "webhook_events_expected": hooks_expected,
            "webhook_events_delivered": hooks_report.distinct, "webhook_requests": hooks_report.requests,
            "webhook_end_events": hooks_report.end_events, "webhook_end_events_per_s": hooks_report.per_s,
            "webhook_end_events_delivered_within_s": hooks_report.lag_s,
        });
        if let Err(e) = std::fs::write(path, json.to_string()) {
            eprintln!("warning: writing {}: {e}", path.display());
        }
    }
    if !failures.is_empty() {
        println!("verification FAILED: {} problem(s)", failures.len());
        for f in failures.iter().take(20) {
            println!("  - {f}");
        }
        if failures.len() > 20 {
            println!("  ... and {} more", failures.len() - 20);
        }
        if let Some(s) = &spawned {
            println!("server log tail:\n{}", s.log_tail(15));
        }
        println!("load: 0 passed, 1 failed");
        return Ok(false);
    }
    let guests = plans.iter().map(|p| p.guests.len()).sum::<usize>();
    println!(
        "verified: {} rooms ended, {guests} guests got exactly one on-peer-leave-request with their room's reason and host, {} hosts answered {{}}",
        plans.len(),
        plans.len()
    );
    println!("load: 1 passed, 0 failed");
    Ok(true)
}

/// Webhook delivery figures of a run. The joins' events trickle in with the joins, so
/// the rate is taken over the burst every end-room makes at once: one close and a leave
/// per peer, from the moment the hosts ended their rooms to the last one delivered.
#[derive(Debug, Default)]
struct HookFigures {
    requests: usize,
    distinct: usize,
    end_events: usize,
    per_s: f64,
    lag_s: f64,
}

fn webhook_figures(got: &[webhooks::Got], ending: Instant) -> HookFigures {
    let mut seen = std::collections::HashSet::new();
    let unique: Vec<&webhooks::Got> = got.iter().filter(|g| seen.insert(g.id.as_str())).collect();
    let end: Vec<&&webhooks::Got> = unique.iter().filter(|g| g.kind == "session.close.success" || g.kind == "peer.leave.success").collect();
    let lag = end.iter().map(|g| g.at.saturating_duration_since(ending)).max().unwrap_or_default().as_secs_f64();
    HookFigures {
        requests: got.len(),
        distinct: unique.len(),
        end_events: end.len(),
        per_s: if lag > 0.0 { end.len() as f64 / lag } else { 0.0 },
        lag_s: lag,
    }
}

fn print_summary(label: &str, s: &Summary) {
    println!(
        "  {label:<28}: p50 {:.3} ms  p90 {:.3} ms  p99 {:.3} ms  max {:.3} ms  (n={})",
        ms(s.p50),
        ms(s.p90),
        ms(s.p99),
        ms(s.max),
        s.count
    );
}

fn summary_json(s: &Summary) -> serde_json::Value {
    serde_json::json!({"n": s.count, "p50": ms(s.p50), "p90": ms(s.p90), "p99": ms(s.p99), "max": ms(s.max)})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_urls_are_accepted() {
        assert_eq!(loopback_base("ws://127.0.0.1:7880").unwrap(), "ws://127.0.0.1:7880");
        assert_eq!(loopback_base("ws://localhost:7880/").unwrap(), "ws://localhost:7880");
        assert_eq!(loopback_base("ws://[::1]:7880").unwrap(), "ws://[::1]:7880");
        assert!(loopback_base("ws://10.0.0.1:7880").is_err());
        assert!(loopback_base("ws://example.com:80").is_err());
        assert!(loopback_base("wss://127.0.0.1:7880").is_err());
        assert!(loopback_base("ws://127.0.0.1").is_err());
        assert!(loopback_base("ws://127.0.0.1:7880/ws").is_err());
    }

    #[test]
    fn rooms_share_the_peers_evenly() {
        assert_eq!(room_sizes(200, 10), vec![20; 10]);
        assert_eq!(room_sizes(7, 3), vec![3, 2, 2]);
        assert_eq!(room_sizes(10_000, 1), vec![10_000]);
        assert_eq!(room_sizes(5, 5).iter().sum::<usize>(), 5);
    }
}
