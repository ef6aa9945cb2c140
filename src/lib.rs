//! hms-client: the browser SDK (Rust -> WebAssembly) that joins a room of the hms room
//! server and can end it for everyone. Control plane only: no audio or video. The JS
//! API is `HmsClient` and `HmsError` (docs/SDK.md).
//!
//! Layout: pure logic with no wasm-bindgen types, tested natively with `cargo test`
//! ([`codec`], [`config`], [`error`], [`executor`], [`model`], [`pending`], [`room`], [`session`]); thin browser
//! layers compiled for wasm32 only: the WebSocket transport, the timer, the JS
//! conversions (`wire.rs` decodes every server frame, `js.rs` makes every JS object),
//! the token request and the facade.

pub mod codec;
pub mod config;
pub mod error;
pub mod executor;
pub mod model;
pub mod pending;
pub mod room;
pub mod session;

#[cfg(test)]
mod session_tests;

#[cfg(target_arch = "wasm32")]
mod alloc;
#[cfg(target_arch = "wasm32")]
mod client;
#[cfg(target_arch = "wasm32")]
mod js;
#[cfg(target_arch = "wasm32")]
mod listener;
#[cfg(target_arch = "wasm32")]
mod timer;
#[cfg(target_arch = "wasm32")]
mod token;
#[cfg(target_arch = "wasm32")]
mod transport;
#[cfg(target_arch = "wasm32")]
mod wire;

#[cfg(target_arch = "wasm32")]
pub use client::HmsClient;
#[cfg(target_arch = "wasm32")]
pub use js::HmsError;
