//! The paged peer list of large rooms, in 100ms's vocabulary: `find-peer` opens an
//! iterator over the room's peers and returns its first page, `peer-iter-next` returns
//! the next page, `get-peer` reads one peer; `on-peer-batch` (ours) carries the joins and
//! leaves of one short tick. See docs/PROTOCOL.md section 3 ("Large rooms").
//!
//! These calls have their own enum rather than new [`crate::ClientCall`] variants, so a
//! client that never pages (and matches `ClientCall` exhaustively) is unaffected.

use crate::error::RpcError;
use crate::messages::PeerNotification;
use crate::method;
use serde::{Deserialize, Deserializer, Serialize};

/// Page size when a request names none (100ms's `DEFAULT_LIMIT`).
pub const DEFAULT_PAGE: u32 = 10;
/// Largest page the server returns; a bigger `limit` is cut to it.
pub const MAX_PAGE: u32 = 100;

/// `find-peer` params: which peers to page through (all of the room when no filter is
/// given) and the first page's size.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FindPeerParams {
    /// Only these peer ids.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peers: Option<Vec<String>>,
    /// Only peers with this role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Only peers in this group (peers have no groups here, so a group matches nobody).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Peers per page, 1 to [`MAX_PAGE`]; [`DEFAULT_PAGE`] when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

/// `peer-iter-next` params.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerIterNextParams {
    /// The id a `find-peer` (or earlier `peer-iter-next`) answer gave.
    pub iterator: String,
    /// Peers per page, as in [`FindPeerParams::limit`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

/// `get-peer` params. 100ms's web SDK has sent both spellings over time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetPeerParams {
    /// The peer to read.
    #[serde(alias = "peerId")]
    pub peer_id: String,
}

/// The answer to `find-peer` and `peer-iter-next` (100ms's `PeersIterationResponse`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeersIteration {
    /// Pass to `peer-iter-next` for the next page.
    pub iterator: String,
    /// Peers matching the filter in the room now.
    pub total: u64,
    /// No peer after this page (at the time of the answer).
    pub eof: bool,
    /// This page, in join order.
    pub peers: Vec<PeerNotification>,
}

/// `on-peer-batch` params (ours): apply `left`, then `joined`. A peer that joined and
/// left within the tick is in neither; one that left and joined again is in both.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerBatch {
    /// Peers that joined, in join order.
    pub joined: Vec<PeerNotification>,
    /// Ids of peers that left (removed, dropped past the reconnect window, or left).
    pub left: Vec<String>,
    /// Peers in the room after the batch.
    pub peer_count: u64,
}

/// A peer-list call, tagged by `method` with its `params`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "method", content = "params")]
pub enum PeerListCall {
    /// `find-peer`.
    #[serde(rename = "find-peer")]
    FindPeer(FindPeerParams),
    /// `peer-iter-next`.
    #[serde(rename = "peer-iter-next")]
    PeerIterNext(PeerIterNextParams),
    /// `get-peer`.
    #[serde(rename = "get-peer")]
    GetPeer(GetPeerParams),
}

impl PeerListCall {
    /// Whether `method_name` is one of these calls.
    pub fn is_method(method_name: &str) -> bool {
        [method::FIND_PEER, method::PEER_ITER_NEXT, method::GET_PEER].contains(&method_name)
    }

    /// Decodes `params` for `method_name` (as [`crate::ClientCall::parse`] does).
    pub fn parse<'de, D: Deserializer<'de>>(method_name: &str, params: D) -> Result<Self, RpcError> {
        let bad = |e| RpcError::invalid_params(method_name, e);
        match method_name {
            method::FIND_PEER => FindPeerParams::deserialize(params).map(Self::FindPeer).map_err(bad),
            method::PEER_ITER_NEXT => PeerIterNextParams::deserialize(params).map(Self::PeerIterNext).map_err(bad),
            method::GET_PEER => GetPeerParams::deserialize(params).map(Self::GetPeer).map_err(bad),
            other => Err(RpcError::method_not_found(other)),
        }
    }
}

/// The page size a request asks for, bounded to 1..=[`MAX_PAGE`].
pub fn page_size(limit: Option<u32>) -> usize {
    limit.unwrap_or(DEFAULT_PAGE).clamp(1, MAX_PAGE) as usize
}
