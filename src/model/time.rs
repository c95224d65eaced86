//! Timestamps: lenient on the way in, one canonical form on the way out.
//!
//! Legacy rows hold naive `datetime.utcnow().isoformat()` strings, the Functions host reformats
//! date-like strings through Newtonsoft (trailing zeros trimmed, `Z` vs `+00:00`), and Cosmos
//! range queries compare strings. So we parse every RFC 3339 variant (0–9 fraction digits, any
//! offset, or none = UTC) and always write one fixed-width form (`…:SS.ffffffZ`) so that string
//! order equals time order in both stores.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, NaiveDateTime, SecondsFormat, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub DateTime<Utc>);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("not an RFC 3339 timestamp: {0:?}")]
pub struct TimestampError(pub String);

impl Timestamp {
    pub fn now() -> Self {
        Timestamp(Utc::now())
    }

    /// Lenient parse: RFC 3339 with any offset, or a naive ISO 8601 date-time taken as UTC,
    /// or a bare `YYYY-MM-DD` (midnight UTC).
    pub fn parse(input: &str) -> Result<Self, TimestampError> {
        let s = input.trim();
        if let Ok(dt) = DateTime::parse_from_rfc3339(s) {
            return Ok(Timestamp(dt.with_timezone(&Utc)));
        }
        // RFC 3339 requires the `T`; accept a space as well as lowercase variants.
        let normalized = s.replacen(' ', "T", 1);
        if let Ok(dt) = DateTime::parse_from_rfc3339(&normalized) {
            return Ok(Timestamp(dt.with_timezone(&Utc)));
        }
        for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M"] {
            if let Ok(naive) = NaiveDateTime::parse_from_str(&normalized, format) {
                return Ok(Timestamp(naive.and_utc()));
            }
        }
        if let Ok(date) = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
            if let Some(naive) = date.and_hms_opt(0, 0, 0) {
                return Ok(Timestamp(naive.and_utc()));
            }
        }
        Err(TimestampError(input.chars().take(64).collect()))
    }

    /// The canonical stored form: UTC, microseconds, `Z`, fixed width.
    pub fn canonical(&self) -> String {
        self.0.to_rfc3339_opts(SecondsFormat::Micros, true)
    }

    /// UTC calendar date `YYYY-MM-DD`.
    pub fn date(&self) -> String {
        self.0.format("%Y-%m-%d").to_string()
    }

    pub fn epoch_seconds(&self) -> i64 {
        self.0.timestamp()
    }

    pub fn epoch_millis(&self) -> i64 {
        self.0.timestamp_millis()
    }

    pub fn from_epoch_millis(ms: i64) -> Option<Self> {
        DateTime::from_timestamp_millis(ms).map(Timestamp)
    }

    pub fn plus_millis(&self, ms: i64) -> Self {
        Timestamp(self.0 + chrono::Duration::milliseconds(ms))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.canonical())
    }
}

impl FromStr for Timestamp {
    type Err = TimestampError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Timestamp::parse(s)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.canonical())
    }
}

/// An RFC 3339 UTC date-time as the API writes it (`2026-11-22T19:05:07.496999Z`).
impl schemars::JsonSchema for Timestamp {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Timestamp".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "format": "date-time",
            "description": "RFC 3339 UTC date-time with microseconds, e.g. 2026-11-22T19:05:07.496999Z",
        })
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        Timestamp::parse(&raw).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canon(s: &str) -> String {
        Timestamp::parse(s).unwrap().canonical()
    }

    #[test]
    fn parses_every_form_the_sources_produce() {
        assert_eq!(canon("2025-01-26T10:00:01Z"), "2025-01-26T10:00:01.000000Z");
        assert_eq!(
            canon("2025-01-26T10:00:01+00:00"),
            "2025-01-26T10:00:01.000000Z"
        );
        assert_eq!(
            canon("2025-01-26T12:00:01+02:00"),
            "2025-01-26T10:00:01.000000Z"
        );
        assert_eq!(
            canon("2025-04-08T02:00:00.0012345+00:00"),
            "2025-04-08T02:00:00.001234Z"
        );
        assert_eq!(
            canon("2025-04-09T04:46:10.723203Z"),
            "2025-04-09T04:46:10.723203Z"
        );
        // legacy Python naive isoformat, with and without microseconds
        assert_eq!(
            canon("2025-11-20T15:04:05.123456"),
            "2025-11-20T15:04:05.123456Z"
        );
        assert_eq!(canon("2025-11-20T15:04:05"), "2025-11-20T15:04:05.000000Z");
        assert_eq!(
            canon("2025-11-20 15:04:05.5"),
            "2025-11-20T15:04:05.500000Z"
        );
        assert_eq!(canon("2025-11-20"), "2025-11-20T00:00:00.000000Z");
    }

    #[test]
    fn rejects_garbage_with_the_input_in_the_message() {
        let err = Timestamp::parse("yesterday").unwrap_err();
        assert!(err.to_string().contains("yesterday"));
        assert!(Timestamp::parse("2025-13-01T00:00:00Z").is_err());
        assert!(Timestamp::parse("").is_err());
    }

    #[test]
    fn canonical_form_sorts_like_time() {
        let a = Timestamp::parse("2025-01-01T00:00:00.9Z").unwrap();
        let b = Timestamp::parse("2025-01-01T00:00:01Z").unwrap();
        assert!(a < b);
        assert!(a.canonical() < b.canonical());
    }

    #[test]
    fn serde_round_trip_is_canonical() {
        let t: Timestamp = serde_json::from_str("\"2025-01-26T10:00:01.5+01:00\"").unwrap();
        assert_eq!(
            serde_json::to_string(&t).unwrap(),
            "\"2025-01-26T09:00:01.500000Z\""
        );
    }
}
