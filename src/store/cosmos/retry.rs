//! Bounded exponential backoff with jitter, for what is still failing after the SDK's own
//! retries.
//!
//! The SDK already retries 429s itself, honouring `x-ms-retry-after-ms` (data-plane budget: 18
//! attempts, at most 15 s each; `ThrottleRetryState::next_throttle_retry` in
//! `azure_data_cosmos_driver-1.1.0-beta.1/src/driver/pipeline/components.rs`), and the
//! operation's end-to-end timeout bounds that. This layer adds a few spaced-out attempts on top
//! for errors that are still transient when the SDK gives up, so a burst of throttling or a
//! gateway hiccup delays a batch instead of failing it, and it logs each one.

use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    /// Attempts after the first.
    pub retries: u32,
    pub base: Duration,
    pub cap: Duration,
}

pub const DEFAULT: Backoff = Backoff {
    retries: 3,
    base: Duration::from_millis(200),
    cap: Duration::from_secs(3),
};

impl Backoff {
    /// The wait before retry number `attempt` (1-based): the service's `retry_after` when it
    /// gave one, else `base * 2^(attempt-1)`; capped, then "equal jitter" (half fixed, half
    /// random) so a fleet of workers does not retry in lockstep. `None`: give up.
    pub fn delay(
        &self,
        attempt: u32,
        retry_after: Option<Duration>,
        random: u64,
    ) -> Option<Duration> {
        if attempt == 0 || attempt > self.retries {
            return None;
        }
        let exponential = self
            .base
            .saturating_mul(1u32.checked_shl(attempt - 1).unwrap_or(u32::MAX));
        let wait = retry_after.unwrap_or(exponential).min(self.cap);
        let half = wait / 2;
        let jitter_ms = u64::try_from(half.as_millis()).unwrap_or(u64::MAX);
        let extra = if jitter_ms == 0 {
            0
        } else {
            random % (jitter_ms + 1)
        };
        Some(half + Duration::from_millis(extra))
    }
}

/// A random number for jitter (std's per-process random hash keys; no crate needed for this).
pub fn random() -> u64 {
    std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_exponential_with_jitter() {
        let b = DEFAULT;
        for random in [0, 1, 77, u64::MAX] {
            let d1 = b.delay(1, None, random).unwrap();
            assert!(d1 >= Duration::from_millis(100) && d1 <= Duration::from_millis(200));
            let d3 = b.delay(3, None, random).unwrap();
            assert!(d3 >= Duration::from_millis(400) && d3 <= Duration::from_millis(800));
        }
        assert!(b.delay(4, None, 0).is_none(), "bounded");
        assert!(b.delay(0, None, 0).is_none());
        // The service's hint wins, capped.
        let hinted = b.delay(1, Some(Duration::from_millis(1000)), 0).unwrap();
        assert_eq!(hinted, Duration::from_millis(500));
        let capped = b.delay(1, Some(Duration::from_secs(60)), u64::MAX).unwrap();
        assert!(capped <= b.cap);
        // Different random inputs spread the waits.
        assert_ne!(b.delay(2, None, 3), b.delay(2, None, 150));
    }
}
