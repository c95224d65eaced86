//! The one retry loop for calls to other services (Storage, SignalR, Cosmos DB, the store): a
//! [`Backoff`] says how many attempts, how long to wait and how much of the wait is random; a
//! classifier says whether an error is worth another attempt and whether the server named a
//! wait (`Retry-After`); [`retry`] runs the operation under both.
//!
//! The function-level retry of change-feed functions (`runtime::function::RetryPolicy`) is not
//! this type: it is the Functions host's declarative `exponentialBackoff`, written into
//! function.json and carried out by the host (or mirrored by serve's pump), with the host's
//! fields only. It shares the doubling rule, [`exponential`].

use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::time::{Duration, SystemTime};

/// How a call is retried: `attempts` in all, the first included; the wait before retry `n` is
/// `base * 2^(n-1)` (or the server's `Retry-After`), never more than `cap`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Attempts in all, the first one included (1: no retry).
    pub attempts: u32,
    /// The wait before the first retry; each further retry waits twice as long as the one before.
    pub base: Duration,
    /// No wait is longer, a server's `Retry-After` included: a caller that must give up in
    /// bounded time is never held longer than `attempts × cap` plus the calls themselves.
    pub cap: Duration,
    pub jitter: Jitter,
}

/// How much of a computed wait is random, so that many clients failing together do not retry
/// together. A server's `Retry-After` is never shortened by jitter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Jitter {
    /// The computed wait exactly.
    None,
    /// "Equal jitter": half the wait fixed, the other half uniformly random (`[w/2, w]`).
    Equal,
}

/// The classifier's verdict on one failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retryable {
    /// Give up: return this error now.
    No,
    /// Try again after the backoff's wait.
    Yes,
    /// Try again after the wait the server asked for (capped at the backoff's `cap`).
    After(Duration),
}

impl From<bool> for Retryable {
    fn from(retry: bool) -> Self {
        if retry {
            Retryable::Yes
        } else {
            Retryable::No
        }
    }
}

/// What [`retry`] tells its observer before it waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NextAttempt {
    /// The attempt that just failed (1-based).
    pub failed: u32,
    /// How long the loop now waits before attempt `failed + 1`.
    pub wait: Duration,
}

/// `base * 2^(retry-1)`, capped at `cap` (without overflow at any `retry`); `retry` is 1-based
/// and 0 is treated as 1.
pub fn exponential(base: Duration, cap: Duration, retry: u32) -> Duration {
    let factor = 1u32
        .checked_shl(retry.saturating_sub(1))
        .unwrap_or(u32::MAX);
    base.saturating_mul(factor).min(cap)
}

impl Backoff {
    /// The wait before retry number `retry` (1-based), given the server's hint and a random
    /// number for the jitter. The hint wins over the exponential wait; both are capped.
    pub fn delay(&self, retry: u32, retry_after: Option<Duration>, random: u64) -> Duration {
        if let Some(hint) = retry_after {
            return hint.min(self.cap);
        }
        let wait = exponential(self.base, self.cap, retry);
        match self.jitter {
            Jitter::None => wait,
            Jitter::Equal => {
                let half = wait / 2;
                let spread = u64::try_from((wait - half).as_nanos()).unwrap_or(u64::MAX);
                let extra = match spread.checked_add(1) {
                    Some(range) => random % range,
                    None => random,
                };
                half + Duration::from_nanos(extra)
            }
        }
    }
}

/// A random number for jitter (std's per-process random hash keys, fresh per call; jitter needs
/// no stronger source and no crate for it).
pub fn random() -> u64 {
    std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish()
}

/// Runs `op` until it succeeds, `classify` calls its error not worth retrying, or the backoff's
/// attempts are spent; returns the last result. Before each wait `on_retry` sees the error and
/// the wait (to log or count it): the loop itself logs nothing, since what is worth a warning
/// differs per caller (a throttled request is, an expected write race is not).
pub async fn retry<T, E, Op, Fut>(
    backoff: &Backoff,
    mut classify: impl FnMut(&E) -> Retryable,
    mut on_retry: impl FnMut(&E, NextAttempt),
    mut op: Op,
) -> Result<T, E>
where
    Op: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut failed = 0;
    loop {
        let error = match op().await {
            Ok(value) => return Ok(value),
            Err(error) => error,
        };
        failed += 1;
        let hint = match classify(&error) {
            Retryable::No => return Err(error),
            Retryable::Yes => None,
            Retryable::After(wait) => Some(wait),
        };
        if failed >= backoff.attempts {
            return Err(error);
        }
        let wait = backoff.delay(failed, hint, random());
        on_retry(&error, NextAttempt { failed, wait });
        tokio::time::sleep(wait).await;
    }
}

/// The wait a response asks for: `retry-after-ms` / `x-ms-retry-after-ms` (milliseconds, as
/// Azure services send it), else `Retry-After` in seconds or as an HTTP date.
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let millis = ["retry-after-ms", "x-ms-retry-after-ms"]
        .into_iter()
        .find_map(|name| text(name)?.trim().parse::<f64>().ok())
        .filter(|ms| ms.is_finite() && *ms >= 0.0)
        .map(|ms| Duration::from_secs_f64(ms / 1000.0));
    millis.or_else(|| parse_retry_after(text("retry-after")?, SystemTime::now()))
}

/// A `Retry-After` value: delay-seconds (`120`) or an HTTP date (`Fri, 31 Dec 1999 23:59:59
/// GMT`, measured from `now`; a date in the past is no wait). Anything else is no hint.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let at = SystemTime::from(at.with_timezone(&chrono::Utc));
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::{Cell, RefCell};
    use tokio::time::Instant;

    const MS: Duration = Duration::from_millis(1);

    /// The paused clock slept exactly the waits, each rounded up to tokio's 1 ms timer tick.
    fn assert_slept(slept: Duration, waits: &[Duration]) {
        let sum: Duration = waits.iter().sum();
        let ticks = u32::try_from(waits.len()).unwrap();
        assert!(
            slept >= sum && slept <= sum + ticks * MS,
            "slept {slept:?} for waits {waits:?}"
        );
    }

    fn backoff(attempts: u32, jitter: Jitter) -> Backoff {
        Backoff {
            attempts,
            base: 100 * MS,
            cap: 1000 * MS,
            jitter,
        }
    }

    /// Runs `retry` over a scripted list of results, on the paused clock, and returns the
    /// result, the waits seen by the observer and how long the loop slept in all.
    async fn scripted(
        backoff: Backoff,
        results: Vec<Result<u32, (&'static str, Retryable)>>,
    ) -> (Result<u32, &'static str>, Vec<Duration>, Duration, u32) {
        let script = RefCell::new(results.into_iter());
        let calls = Cell::new(0);
        let mut waits = Vec::new();
        let start = Instant::now();
        let result = retry(
            &backoff,
            |(_, verdict): &(&str, Retryable)| *verdict,
            |_, next| waits.push(next.wait),
            || {
                calls.set(calls.get() + 1);
                let next = script.borrow_mut().next().expect("the script has a result");
                async move { next }
            },
        )
        .await
        .map_err(|(message, _)| message);
        (result, waits, start.elapsed(), calls.get())
    }

    #[tokio::test(start_paused = true)]
    async fn waits_double_up_to_the_cap() {
        let failure = Err(("busy", Retryable::Yes));
        let mut script = vec![failure; 6];
        script.push(Ok(7));
        let (result, waits, slept, calls) = scripted(backoff(10, Jitter::None), script).await;
        assert_eq!(result, Ok(7));
        assert_eq!(calls, 7);
        let expected: Vec<Duration> = [100, 200, 400, 800, 1000, 1000]
            .into_iter()
            .map(|ms| ms * MS)
            .collect();
        assert_eq!(waits, expected);
        assert_eq!(
            slept,
            expected.iter().sum::<Duration>(),
            "whole milliseconds"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn attempts_exhausted_return_the_last_error() {
        let script = vec![
            Err(("first", Retryable::Yes)),
            Err(("second", Retryable::Yes)),
            Err(("third", Retryable::Yes)),
            Ok(1),
        ];
        let (result, waits, slept, calls) = scripted(backoff(3, Jitter::None), script).await;
        assert_eq!(result, Err("third"));
        assert_eq!(calls, 3, "no attempt beyond the third");
        assert_eq!(
            waits,
            [100 * MS, 200 * MS],
            "no wait after the last attempt"
        );
        assert_eq!(slept, 300 * MS);
    }

    #[tokio::test(start_paused = true)]
    async fn a_non_retryable_error_returns_at_once() {
        let script = vec![
            Err(("transient", Retryable::Yes)),
            Err(("bad request", Retryable::No)),
            Ok(1),
        ];
        let (result, waits, slept, calls) = scripted(backoff(5, Jitter::Equal), script).await;
        assert_eq!(result, Err("bad request"));
        assert_eq!(calls, 2);
        assert_eq!(waits.len(), 1);
        assert_slept(slept, &waits);

        let (result, waits, slept, calls) =
            scripted(backoff(5, Jitter::None), vec![Err(("no", Retryable::No))]).await;
        assert_eq!(
            (result, waits.len(), slept, calls),
            (Err("no"), 0, Duration::ZERO, 1)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_takes_precedence_and_is_capped() {
        let script = vec![
            Err(("throttled", Retryable::After(350 * MS))),
            Err(("throttled hard", Retryable::After(Duration::from_secs(60)))),
            Err(("busy", Retryable::Yes)),
            Ok(3),
        ];
        // Jitter never shortens a server's wait.
        let (result, waits, slept, _) = scripted(backoff(5, Jitter::Equal), script).await;
        assert_eq!(result, Ok(3));
        assert_eq!(waits[..2], [350 * MS, 1000 * MS]);
        // The third retry computes its own wait again: 400 ms with equal jitter.
        assert!(waits[2] >= 200 * MS && waits[2] <= 400 * MS, "{waits:?}");
        assert_slept(slept, &waits);
    }

    #[tokio::test(start_paused = true)]
    async fn jittered_waits_stay_in_bounds() {
        let mut script = vec![Err(("busy", Retryable::Yes)); 5];
        script.push(Ok(0));
        let (_, waits, slept, _) = scripted(backoff(10, Jitter::Equal), script).await;
        for (retry, wait) in (1..).zip(&waits) {
            let full = exponential(100 * MS, 1000 * MS, retry);
            assert!(
                *wait >= full / 2 && *wait <= full,
                "retry {retry}: {wait:?} outside [{:?}, {full:?}]",
                full / 2
            );
        }
        assert_slept(slept, &waits);
    }

    #[test]
    fn jitter_spans_its_whole_range_and_no_more() {
        let b = backoff(10, Jitter::Equal);
        assert_eq!(b.delay(1, None, 0), 50 * MS, "lowest: half the wait");
        let top = u64::try_from((50 * MS).as_nanos()).unwrap();
        assert_eq!(b.delay(1, None, top), 100 * MS, "highest: the whole wait");
        assert_eq!(b.delay(1, None, top + 1), 50 * MS, "wraps, never above");
        for random in [1, 77, 1 << 40, u64::MAX] {
            let d = b.delay(4, None, random);
            assert!(d >= 400 * MS && d <= 800 * MS, "{d:?}");
            assert!(b.delay(30, None, random) <= b.cap);
        }
        assert_ne!(b.delay(2, None, 3), b.delay(2, None, 150_000));
        assert_eq!(backoff(10, Jitter::None).delay(2, None, 12345), 200 * MS);
    }

    #[test]
    fn exponential_never_overflows() {
        assert_eq!(exponential(MS, Duration::from_secs(5), 0), MS);
        assert_eq!(exponential(MS, Duration::from_secs(5), 3), 4 * MS);
        assert_eq!(
            exponential(Duration::from_secs(1), Duration::from_secs(16), 40),
            Duration::from_secs(16)
        );
        assert_eq!(
            exponential(Duration::MAX, Duration::from_secs(1), 2),
            Duration::from_secs(1)
        );
    }

    #[test]
    fn retry_after_reads_seconds_dates_and_milliseconds() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(946_684_000);
        assert_eq!(
            parse_retry_after(" 120 ", now),
            Some(Duration::from_secs(120))
        );
        // 1999-12-31T23:59:59Z is 946684799 s after the epoch.
        assert_eq!(
            parse_retry_after("Fri, 31 Dec 1999 23:59:59 GMT", now),
            Some(Duration::from_secs(799))
        );
        let later = now + Duration::from_secs(10_000);
        assert_eq!(
            parse_retry_after("Fri, 31 Dec 1999 23:59:59 GMT", later),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-3", now), None);

        let mut headers = reqwest::header::HeaderMap::new();
        assert_eq!(retry_after(&headers), None);
        headers.insert("retry-after", "2".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(2)));
        headers.insert("x-ms-retry-after-ms", "1500".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(1500 * MS), "milliseconds first");
    }
}
