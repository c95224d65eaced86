//! Request-unit and retry accounting for the Cosmos backend: every operation adds the request
//! charge Cosmos reported, so benchmarks and the dashboard-cost comparison can read RUs.

use std::sync::atomic::{AtomicU64, Ordering};

use azure_data_cosmos::CosmosError;

/// Totals since the store was opened. Charges are kept in milli-RU so they add up atomically.
#[derive(Debug, Default)]
pub struct Meter {
    milli_ru: AtomicU64,
    requests: AtomicU64,
    retries: AtomicU64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MeterReading {
    pub request_units: f64,
    pub requests: u64,
    /// Retries this layer made after the SDK's own retries gave up (throttling, transient).
    pub retries: u64,
}

impl Meter {
    pub fn charge(&self, request_units: f64) {
        if request_units.is_finite() && request_units > 0.0 {
            let milli = (request_units * 1000.0).round() as u64;
            self.milli_ru.fetch_add(milli, Ordering::Relaxed);
        }
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    pub fn retried(&self) {
        self.retries.fetch_add(1, Ordering::Relaxed);
    }

    pub fn reading(&self) -> MeterReading {
        MeterReading {
            request_units: self.milli_ru.load(Ordering::Relaxed) as f64 / 1000.0,
            requests: self.requests.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
        }
    }
}

/// What a failed request cost (a 404 read, a 412 write cost RUs too).
pub(super) fn error_charge(e: &CosmosError) -> f64 {
    e.response()
        .and_then(|response| response.headers().request_charge)
        .map(f64::from)
        .unwrap_or(0.0)
}

/// What a response cost, from its headers.
pub(super) fn charge_of(headers: &azure_data_cosmos::models::ResponseHeaders) -> f64 {
    headers
        .request_charge()
        .copied()
        .map(f64::from)
        .unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charges_add_up() {
        let meter = Meter::default();
        meter.charge(1.25);
        meter.charge(5.71);
        meter.charge(f64::NAN);
        meter.retried();
        let reading = meter.reading();
        assert!((reading.request_units - 6.96).abs() < 1e-9);
        assert_eq!(reading.requests, 3);
        assert_eq!(reading.retries, 1);
    }
}
