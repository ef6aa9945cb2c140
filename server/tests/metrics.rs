//! `/metrics` of the real server binary (its own listener, `--metrics-addr`): what a
//! scrape shows after joins, a refused join and an end-room.

mod common;

use common::Server;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// GET /metrics on `addr`; returns the content type and the body.
async fn scrape(addr: &str) -> (String, String) {
    tokio::time::timeout(common::RECV, async {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.unwrap();
        let mut buf = String::new();
        s.read_to_string(&mut buf).await.unwrap();
        let (head, body) = buf.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        let ctype = head.lines().find_map(|l| l.strip_prefix("content-type: ")).unwrap_or_default().to_owned();
        (ctype, body.to_owned())
    })
    .await
    .expect("metrics in time")
}

/// The value of the sample line starting with `name` (exactly, up to the value).
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test]
async fn metrics_count_joins_refusals_and_end_rooms() {
    let s = Server::start(&["--metrics-addr", "127.0.0.1:0"]);
    let line = s.stdout_line();
    let addr = line.strip_prefix("metrics on ").expect(&line).to_owned();

    let (ctype, text) = scrape(&addr).await;
    assert!(ctype.starts_with("application/openmetrics-text"), "{ctype}");
    assert_eq!(sample(&text, "hms_joins_total"), Some(0.0), "{text}");
    assert_eq!(sample(&text, "hms_rooms"), Some(0.0));

    let mut host = s.joined("r", "h", "host").await;
    let mut guest = s.joined("r", "g", "guest").await;
    host.push("on-peer-join").await;
    let (_, text) = scrape(&addr).await;
    assert_eq!((sample(&text, "hms_rooms"), sample(&text, "hms_peers"), sample(&text, "hms_joins_total")), (Some(1.0), Some(2.0), Some(2.0)), "{text}");

    // A guest may not end the room: one refusal, 403.
    assert_eq!(guest.error_code("end-room", json!({"lock": false, "reason": "x"})).await, 403);
    let ans = host.request("end-room", json!({"lock": true, "reason": "done"})).await;
    assert_eq!(ans["result"], json!({}));
    guest.push("on-peer-leave-request").await;
    // The room is locked now: a join is refused with 423.
    let mut late = s.connect("r", "late", "guest").await;
    assert_eq!(late.error_code("join", json!({"name": "late"})).await, 423);

    // A forged token is refused at connect: 401.
    let mut forged = common::Client::connect(&s.ws_url("x", "not-a-token")).await;
    assert_eq!(common::expect_on_error(&mut forged).await["code"], 401);

    let (_, text) = scrape(&addr).await;
    assert_eq!(sample(&text, "hms_refusals_total{reason=\"unauthorized\"}"), Some(1.0), "{text}");
    assert_eq!(sample(&text, "hms_end_rooms_total"), Some(1.0), "{text}");
    assert_eq!((sample(&text, "hms_rooms"), sample(&text, "hms_peers")), (Some(0.0), Some(0.0)), "{text}");
    assert_eq!(sample(&text, "hms_leaves_total{reason=\"room_ended\"}"), Some(2.0), "{text}");
    assert_eq!(sample(&text, "hms_refusals_total{reason=\"forbidden\"}"), Some(1.0), "{text}");
    assert_eq!(sample(&text, "hms_refusals_total{reason=\"locked\"}"), Some(1.0), "{text}");
    assert_eq!(sample(&text, "hms_end_room_fanout_seconds_count"), Some(1.0), "{text}");
    let fanout = sample(&text, "hms_end_room_fanout_seconds_sum").unwrap();
    assert!(fanout > 0.0 && fanout < 2.0, "one fan-out, within the flush bound: {fanout}");
    assert!(text.ends_with("# EOF\n"));
}

#[tokio::test]
async fn without_the_flag_there_is_no_metrics_listener() {
    let s = Server::start(&[]);
    let (status, _, _) = s.http_raw("GET", "/metrics", None, None, &[]).await;
    assert_eq!(status, 404, "not on the public listener");
    assert_eq!(s.try_stdout_line(std::time::Duration::from_millis(300)), None);
}
