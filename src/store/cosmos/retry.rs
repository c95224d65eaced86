//! How this backend retries what is still failing after the SDK's own retries.
//!
//! The SDK already retries 429s itself, honouring `x-ms-retry-after-ms` (data-plane budget: 18
//! attempts, at most 15 s each; `ThrottleRetryState::next_throttle_retry` in
//! `azure_data_cosmos_driver-1.1.0-beta.1/src/driver/pipeline/components.rs`), and the
//! operation's end-to-end timeout bounds that. This layer adds a few spaced-out attempts on top
//! for errors that are still transient when the SDK gives up, so a burst of throttling or a
//! gateway hiccup delays a batch instead of failing it, and it logs each one. A 429 the SDK
//! gave up on still names its wait (`x-ms-retry-after-ms`): that wait is honoured here too
//! (capped by the backoff), rather than retrying sooner than the service asked.

use std::time::Duration;

use azure_data_cosmos::CosmosError;

use crate::retry::{Backoff, Jitter, Retryable};

/// Three retries, 100–200 ms, 200–400 ms and 400–800 ms after the failure (equal jitter, so a
/// fleet of workers does not retry in lockstep), never more than 3 s.
pub const BACKOFF: Backoff = Backoff {
    attempts: 4,
    base: Duration::from_millis(200),
    cap: Duration::from_secs(3),
    jitter: Jitter::Equal,
};

/// Whether to retry `e` (`retry` says if it is worth it), after the wait the service named.
pub(super) fn classify(e: &CosmosError, retry: bool) -> Retryable {
    if !retry {
        return Retryable::No;
    }
    let named = e
        .response()
        .and_then(|response| response.headers().retry_after_ms)
        .map(Duration::from_millis);
    retry_after(named)
}

/// The verdict for a retryable failure: after the service's wait when it named one.
fn retry_after(named: Option<Duration>) -> Retryable {
    match named {
        Some(wait) => Retryable::After(wait),
        None => Retryable::Yes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_services_wait_is_honoured_and_capped_by_the_backoff() {
        let named = retry_after(Some(Duration::from_millis(1500)));
        assert_eq!(named, Retryable::After(Duration::from_millis(1500)));
        assert_eq!(retry_after(None), Retryable::Yes);
        // The loop caps a named wait at the backoff's cap.
        assert_eq!(
            BACKOFF.delay(1, Some(Duration::from_secs(60)), 0),
            BACKOFF.cap
        );
        assert_eq!(
            BACKOFF.delay(1, Some(Duration::from_millis(1500)), 0),
            Duration::from_millis(1500)
        );
    }
}
