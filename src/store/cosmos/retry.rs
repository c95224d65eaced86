//! How this backend retries what is still failing after the SDK's own retries.
//!
//! The SDK already retries 429s itself, honouring `x-ms-retry-after-ms` (data-plane budget: 18
//! attempts, at most 15 s each; `ThrottleRetryState::next_throttle_retry` in
//! `azure_data_cosmos_driver-1.1.0-beta.1/src/driver/pipeline/components.rs`), and the
//! operation's end-to-end timeout bounds that. This layer adds a few spaced-out attempts on top
//! for errors that are still transient when the SDK gives up, so a burst of throttling or a
//! gateway hiccup delays a batch instead of failing it, and it logs each one.

use std::time::Duration;

use crate::retry::{Backoff, Jitter};

/// Three retries, 100–200 ms, 200–400 ms and 400–800 ms after the failure (equal jitter, so a
/// fleet of workers does not retry in lockstep), never more than 3 s.
pub const BACKOFF: Backoff = Backoff {
    attempts: 4,
    base: Duration::from_millis(200),
    cap: Duration::from_secs(3),
    jitter: Jitter::Equal,
};
