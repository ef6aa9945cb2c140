//! One peer's signaling: decode what the peer sends (the connect query, then JSON-RPC
//! frames), call the use case in [`crate::app`], encode the answer. Nothing else: no
//! socket (that is [`crate::ws`]), no room rules (those are the app's and the rooms').

use crate::app::{App, Opened, PeerConn, Requester};
use crate::conn::Out;
use crate::error::Error;
use crate::frame::{self, Call};
use crate::metrics::Refusal;
use hms_protocol::{ClientCall, JoinResult, PingParams};
use std::collections::HashMap;
use std::sync::Arc;

/// A connected peer, as the dispatcher sees it.
pub struct Ctx {
    /// The server.
    pub app: Arc<App>,
    /// Who the connection is and where its frames go.
    pub peer: PeerConn,
}

/// Decodes the connect query (`?peer=<id>&token=<jwt>[&room=<id>][&reconnect_secret=<s>]`)
/// and connects. Each refusal is an error for `on-error` + close.
pub async fn open(app: &App, query: &HashMap<String, String>) -> Result<Opened, Error> {
    let arg = |k: &str| query.get(k).map(String::as_str);
    app.connect(arg("peer").unwrap_or_default(), arg("token"), arg("room"), arg("reconnect_secret")).await
}

/// Decodes and dispatches one text frame (size and rate limits are the transport's).
pub async fn handle_text(ctx: &Ctx, text: &str) {
    let (id, call) = match frame::decode(text) {
        Ok(d) => d,
        Err((id, e)) => {
            ctx.app.metrics().refused(Refusal::BadRequest);
            ctx.peer.conn.send(Out::Text(frame::error(&id, e)));
            return;
        }
    };
    let (app, p) = (&ctx.app, &ctx.peer);
    let call = match call {
        Call::Room(c) => c,
        Call::PeerList(read) => {
            let answer = app.read_peer_list(p, &id, &read).await.unwrap_or_else(|e| frame::error(&id, e.to_rpc()));
            p.conn.send(Out::Text(answer));
            return;
        }
    };
    let done = match call {
        ClientCall::Ping(ping) => {
            p.conn.send(Out::Text(frame::result(&id, PingParams { timestamp: ping.timestamp })));
            Ok(())
        }
        ClientCall::Join(j) => {
            let answer = frame::result(&id, JoinResult { reconnect_secret: p.secret.as_str().to_owned() });
            app.join(p, &j, answer).await
        }
        ClientCall::Leave(_) => app.leave(p, (!id.is_null()).then(|| frame::ok(&id))).await,
        ClientCall::EndRoom(e) => app.end_room(&p.room, Requester::Peer(p, frame::ok(&id)), &e.reason, e.lock).await,
        ClientCall::PeerLeaveRequest(r) => {
            app.remove_peer(&p.room, Requester::Peer(p, frame::ok(&id)), &r.requested_for, &r.reason).await
        }
    };
    if let Err(e) = done {
        app.metrics().refused(Refusal::of(&e));
        p.conn.send(Out::Text(frame::error(&id, e.to_rpc())));
    }
}

/// The connection ended; `hold` keeps the peer's place for a reconnect.
pub async fn closed(ctx: &Ctx, hold: bool) {
    ctx.app.disconnected(&ctx.peer, hold).await;
}
