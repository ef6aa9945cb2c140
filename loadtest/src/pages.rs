//! The paged read of a big room's peer list: a reader peer joins the room after
//! everyone else, reads the whole list with `find-peer` and `peer-iter-next` (100 peers
//! a page), and leaves. Every planned peer must be seen exactly once across the pages.

use crate::verify::RoomPlan;
use futures_util::{SinkExt, StreamExt};
use hms_protocol::{ClientCall, ClientRequest, JoinParams, LeaveParams, PeersIteration};
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

/// What the reader saw.
#[derive(Debug, Default)]
pub struct PageRead {
    /// Peer ids in the order the pages listed them.
    pub seen: Vec<String>,
    /// Pages read.
    pub pages: usize,
    /// From the first `find-peer` to the last page's answer.
    pub elapsed: Duration,
    /// `total` of the last page.
    pub total: u64,
}

/// Peers per page (the protocol's maximum).
const PAGE: u32 = 100;

/// Joins `url` as `reader_id`, reads every page, leaves.
pub async fn read(url: &str, reader_id: &str, deadline: Duration) -> Result<PageRead, String> {
    tokio::time::timeout(deadline, read_inner(url, reader_id)).await.map_err(|_| format!("the paged read took longer than {deadline:?}"))?
}

async fn read_inner(url: &str, reader_id: &str) -> Result<PageRead, String> {
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.map_err(|e| format!("reader connect: {e}"))?;
    let mut n = 0u64;
    let join = ClientCall::Join(JoinParams { name: reader_id.to_owned(), data: String::new() });
    let body = serde_json::to_string(&ClientRequest::new("join", &join)).map_err(|e| e.to_string())?;
    ws.send(Message::Text(body.into())).await.map_err(|e| format!("reader join: {e}"))?;
    answer(&mut ws, "join").await?;
    let mut out = PageRead::default();
    let started = Instant::now();
    let mut iterator: Option<String> = None;
    loop {
        n += 1;
        let id = format!("page-{n}");
        let (method, params) = match &iterator {
            None => ("find-peer", serde_json::json!({ "limit": PAGE })),
            Some(it) => ("peer-iter-next", serde_json::json!({ "iterator": it, "limit": PAGE })),
        };
        let body = serde_json::json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}).to_string();
        ws.send(Message::Text(body.into())).await.map_err(|e| format!("reader {method}: {e}"))?;
        let result = answer(&mut ws, &id).await?;
        let page: PeersIteration = serde_json::from_value(result).map_err(|e| format!("a page that does not fit PeersIteration: {e}"))?;
        out.pages += 1;
        out.total = page.total;
        out.seen.extend(page.peers.into_iter().map(|p| p.peer_id));
        if page.eof {
            break;
        }
        iterator = Some(page.iterator);
    }
    out.elapsed = started.elapsed();
    let leave = ClientCall::Leave(LeaveParams::default());
    if let Ok(body) = serde_json::to_string(&ClientRequest::notification(&leave)) {
        let _ = ws.send(Message::Text(body.into())).await;
    }
    // Wait for the server's close (bounded by the caller's deadline).
    while let Some(Ok(m)) = ws.next().await {
        if matches!(m, Message::Close(_)) {
            break;
        }
    }
    Ok(out)
}

/// The result of request `id`, skipping pushes.
async fn answer<S>(ws: &mut S, id: &str) -> Result<serde_json::Value, String>
where
    S: StreamExt<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    while let Some(m) = ws.next().await {
        let Message::Text(t) = m.map_err(|e| format!("reader socket: {e}"))? else { continue };
        // Batches and the join's pushes have no "id" key.
        if !t.contains("\"id\"") {
            continue;
        }
        let v: serde_json::Value = serde_json::from_str(&t).map_err(|e| format!("reader: unreadable frame: {e}"))?;
        if v["id"] == id {
            if let Some(e) = v.get("error") {
                return Err(format!("{id} failed: {e}"));
            }
            return Ok(v["result"].clone());
        }
    }
    Err(format!("the socket closed before the answer to {id}"))
}

/// Every way the read fell short: each planned peer (and the reader) seen exactly once,
/// nobody else, and the last page's total matching.
pub fn verify(plan: &RoomPlan, reader_id: &str, read: &PageRead) -> Vec<String> {
    let mut failures = Vec::new();
    let mut count: HashMap<&str, usize> = HashMap::new();
    for id in &read.seen {
        *count.entry(id.as_str()).or_default() += 1;
    }
    let expected: Vec<&str> = std::iter::once(plan.host.as_str()).chain(plan.guests.iter().map(String::as_str)).chain([reader_id]).collect();
    let missing = expected.iter().filter(|id| !count.contains_key(*id)).count();
    let twice = count.values().filter(|n| **n > 1).count();
    let strangers = count.keys().filter(|id| !expected.contains(id)).count();
    if missing > 0 {
        failures.push(format!("paged read of {}: {missing} peers never listed", plan.room_id));
    }
    if twice > 0 {
        failures.push(format!("paged read of {}: {twice} peers listed more than once", plan.room_id));
    }
    if strangers > 0 {
        failures.push(format!("paged read of {}: {strangers} unknown peers listed", plan.room_id));
    }
    if read.total != expected.len() as u64 {
        failures.push(format!("paged read of {}: total {} but {} peers in the room", plan.room_id, read.total, expected.len()));
    }
    failures
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> RoomPlan {
        RoomPlan { room_id: "r".into(), reason: "x".into(), host: "h".into(), guests: vec!["a".into(), "b".into()] }
    }

    fn read(seen: &[&str], total: u64) -> PageRead {
        PageRead { seen: seen.iter().map(|s| s.to_string()).collect(), pages: 1, elapsed: Duration::ZERO, total }
    }

    #[test]
    fn exact_coverage_passes_and_each_defect_fails() {
        assert!(verify(&plan(), "me", &read(&["h", "a", "me", "b"], 4)).is_empty());
        assert_eq!(verify(&plan(), "me", &read(&["h", "a", "me"], 4)).len(), 1, "missing");
        assert_eq!(verify(&plan(), "me", &read(&["h", "a", "a", "me", "b"], 4)).len(), 1, "twice");
        assert_eq!(verify(&plan(), "me", &read(&["h", "a", "x", "me", "b"], 4)).len(), 1, "stranger");
        assert_eq!(verify(&plan(), "me", &read(&["h", "a", "me", "b"], 5)).len(), 1, "total");
    }
}
