//! `hms-server`: the room server of hms-client — a control plane only (no audio or
//! video): WebSocket signaling at `/ws?peer=<id>&token=<jwt>` (JSON-RPC 2.0,
//! `docs/PROTOCOL.md`), the REST API under `/v2`, optional static files, and durable room
//! state in SQLite.
//!
//! Layers, each calling only the ones below it (the code map in `docs/SERVER.md`):
//! - [`listener`] (router, serve loop) -> [`edge`] (accept loop, TLS, connection limits,
//!   client addresses), [`ws`] (WebSocket transport and its limits) and [`rest`] (REST
//!   handlers) -> [`signaling`] (decode a frame, call the app, encode);
//! - [`app`]: the use cases (connect, join, leave, end room, remove peers, enable, room
//!   codes, tokens) and the server's state and tasks;
//! - [`registry`] (where rooms live) -> [`room`] (the room model) -> [`conn`] (a
//!   connection's queue); [`store`] (every SQL statement); [`auth`] (tokens, secret);
//! - [`webhooks`] (the outbox's delivery, signing, the webhook JSON) and [`metrics`]
//!   (Prometheus), both fed by [`events`] (what happened in the rooms);
//! - shared leaves: [`frame`] (JSON-RPC encode/decode), [`error`], [`config`], [`clock`],
//!   [`datadir`] (the data dir's permissions and atomic files), [`quota`] (counts and
//!   rates per key), [`codes`] (room codes: generation and hashing).

pub mod app;
pub mod auth;
pub mod clock;
pub mod codes;
pub mod config;
pub mod conn;
pub mod datadir;
pub mod edge;
pub mod error;
pub mod events;
pub mod frame;
pub mod listener;
pub mod metrics;
pub mod quota;
pub mod registry;
pub mod rest;
pub mod room;
pub mod signaling;
pub mod store;
pub mod webhooks;
pub mod ws;

pub use app::App;
pub use error::Error;
pub use listener::{serve, StaticDirs};
