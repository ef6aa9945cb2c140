//! `hms-protocol`: the wire format shared by the `hms-client` SDK and `hms-server`.
//!
//! JSON-RPC 2.0 text frames over one WebSocket per peer, with the method and field
//! names of the 100ms control plane. This crate has no I/O and keeps `serde_json` out
//! of its public API, so the WebAssembly SDK can use it without paying for a JSON
//! library: the server decodes with `serde_json`, the SDK reads frames with the
//! browser's `JSON.parse`. The full spec with example frames is `docs/PROTOCOL.md`.

pub mod error;
pub mod jsonrpc;
pub mod messages;
pub mod method;
pub mod peer_list;
pub mod permissions;

pub use error::{code, RpcError};
pub use jsonrpc::{ClientCall, ClientRequest, Response, ServerFrame, ServerPush};
pub use messages::*;
pub use peer_list::{FindPeerParams, GetPeerParams, PeerBatch, PeerIterNextParams, PeerListCall, PeersIteration};
pub use permissions::{Action, Permissions, Role};

/// The JSON-RPC version string every request carries.
pub const JSONRPC_VERSION: &str = "2.0";

/// Largest text frame either side accepts, in bytes (the server closes with 1009 past it).
pub const MAX_FRAME_BYTES: usize = 64 * 1024;
