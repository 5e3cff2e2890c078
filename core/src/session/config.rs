//! [`SessionConfig`]: the limits one native connection lives within.

use std::num::NonZeroU32;
use std::time::Duration;

use crate::router::LagPolicy;

/// Limits and settings of native sessions; shared by every connection.
#[derive(Clone, Debug)]
pub struct SessionConfig {
    /// Largest inbound frame, in bytes; larger ones are refused before decoding.
    pub max_frame_bytes: usize,
    /// Most rooms one connection may be subscribed to at once.
    pub max_subscriptions: usize,
    /// Sends allowed per second, sustained, per connection.
    pub sends_per_second: NonZeroU32,
    /// Sends allowed in a burst above the sustained rate.
    pub send_burst: NonZeroU32,
    /// Most events in one history page.
    pub max_history_page: usize,
    /// Deliveries a connection's queue holds before it lags.
    pub queue_capacity: usize,
    /// What a lagging connection does.
    pub lag_policy: LagPolicy,
    /// How often clients should ping (sent in `Welcome`).
    pub heartbeat_interval: Duration,
    /// Malformed frames tolerated before the connection is closed.
    pub max_bad_frames: u32,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            max_frame_bytes: axon_schemas::DEFAULT_MAX_FRAME_BYTES,
            max_subscriptions: 1024,
            sends_per_second: NonZeroU32::new(50).unwrap_or(NonZeroU32::MIN),
            send_burst: NonZeroU32::new(200).unwrap_or(NonZeroU32::MIN),
            max_history_page: 200,
            queue_capacity: 4096,
            lag_policy: LagPolicy::CatchUp,
            heartbeat_interval: Duration::from_secs(30),
            max_bad_frames: 16,
        }
    }
}
