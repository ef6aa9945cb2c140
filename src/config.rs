//! The client's timing settings, read from `HmsClientOptions` (`model.rs`) and used by
//! the state machine (`session.rs`). Apart from both so neither imports the other.

/// Default `requestTimeoutMs`.
pub const DEFAULT_REQUEST_TIMEOUT_MS: f64 = 10_000.0;

/// Timing knobs (ms).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Config {
    /// How long a request waits for its answer (also: one reconnect attempt's deadline).
    pub request_timeout: f64,
    /// `ping` every this long while joined.
    pub heartbeat_interval: f64,
    /// No incoming frame for this long while joined: the connection is lost.
    pub heartbeat_timeout: f64,
    /// Total time for reconnecting before giving up; 0 disables reconnecting.
    pub reconnect_budget: f64,
    /// First retry delay; doubles per attempt up to `backoff_max`, with ±30 % jitter.
    pub backoff_base: f64,
    /// Largest retry delay.
    pub backoff_max: f64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            request_timeout: DEFAULT_REQUEST_TIMEOUT_MS,
            heartbeat_interval: 3_000.0,
            heartbeat_timeout: 12_000.0,
            reconnect_budget: 30_000.0,
            backoff_base: 500.0,
            backoff_max: 5_000.0,
        }
    }
}
