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
        if let Some(timestamp) = parse_utc(input.as_bytes()) {
            return Ok(timestamp);
        }
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
        match self.canonical_bytes() {
            Some(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            None => self.0.to_rfc3339_opts(SecondsFormat::Micros, true),
        }
    }

    /// `canonical` written into a fixed buffer, for years 0–9999 outside leap seconds (every
    /// timestamp this system meets); `None` for the others, which chrono writes.
    fn canonical_bytes(&self) -> Option<[u8; CANONICAL_LEN]> {
        use chrono::{Datelike, Timelike};
        let (date, time) = (self.0.date_naive(), self.0.time());
        let year = u32::try_from(date.year()).ok().filter(|y| *y <= 9999)?;
        let nanos = time.nanosecond();
        if nanos >= 1_000_000_000 {
            return None;
        }
        let mut out = *b"0000-00-00T00:00:00.000000Z";
        let mut digits = |at: usize, width: usize, mut value: u32| {
            for slot in out[at..at + width].iter_mut().rev() {
                *slot = b'0' + (value % 10) as u8;
                value /= 10;
            }
        };
        digits(0, 4, year);
        digits(5, 2, date.month());
        digits(8, 2, date.day());
        digits(11, 2, time.hour());
        digits(14, 2, time.minute());
        digits(17, 2, time.second());
        digits(20, 6, nanos / 1000);
        Some(out)
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

/// `YYYY-MM-DDTHH:MM:SS.ffffffZ`.
const CANONICAL_LEN: usize = 27;

/// The common form on its own: `YYYY-MM-DDTHH:MM:SS`, an optional `.` and 1–9 fraction digits,
/// `Z`; exactly what chrono's RFC 3339 parser gives for it, without its general machinery.
/// `None` for anything else (other offsets, lowercase, leap seconds), which `parse` hands on.
fn parse_utc(text: &[u8]) -> Option<Timestamp> {
    fn number(digits: &[u8]) -> Option<u32> {
        digits.iter().try_fold(0u32, |value, &d| {
            d.is_ascii_digit().then(|| value * 10 + u32::from(d - b'0'))
        })
    }
    let (head, rest) = (text.get(..19)?, &text[19..]);
    if [head[4], head[7], head[10], head[13], head[16]] != *b"--T::" {
        return None;
    }
    let nanos = match rest {
        [b'Z'] => 0,
        [b'.', fraction @ .., b'Z'] if (1..=9).contains(&fraction.len()) => {
            number(fraction)? * 10u32.pow(9 - fraction.len() as u32)
        }
        _ => return None,
    };
    let second = number(&head[17..19])?;
    if second > 59 {
        return None;
    }
    let date = chrono::NaiveDate::from_ymd_opt(
        i32::try_from(number(&head[..4])?).ok()?,
        number(&head[5..7])?,
        number(&head[8..10])?,
    )?;
    let time = chrono::NaiveTime::from_hms_nano_opt(
        number(&head[11..13])?,
        number(&head[14..16])?,
        second,
        nanos,
    )?;
    Some(Timestamp(date.and_time(time).and_utc()))
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.canonical_bytes() {
            // Digits and punctuation only: always UTF-8.
            Some(bytes) => {
                serializer.serialize_str(std::str::from_utf8(&bytes).unwrap_or_default())
            }
            None => serializer.serialize_str(&self.0.to_rfc3339_opts(SecondsFormat::Micros, true)),
        }
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
        // Borrowed where the text has no escapes (no allocation per timestamp read).
        let raw = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
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

    /// chrono's own parser and writer, which the fast paths must equal.
    fn chrono_parse(input: &str) -> Option<DateTime<Utc>> {
        DateTime::parse_from_rfc3339(input)
            .ok()
            .map(|dt| dt.with_timezone(&Utc))
    }

    proptest::proptest! {
        // Most generated texts are not valid dates; enough cases for a few hundred valid ones.
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2048))]
        #[test]
        fn the_fast_paths_equal_chronos(
            year in 0u32..=9999, month in 0u32..=13, day in 0u32..=32, hour in 0u32..=24,
            minute in 0u32..=60, second in 0u32..=60, fraction in proptest::option::of("[0-9]{1,10}"),
            zone in proptest::sample::select(vec!["Z", "z", "+00:00", "+02:00", ""]),
        ) {
            let fraction = fraction.map(|f| format!(".{f}")).unwrap_or_default();
            let text = format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}{fraction}{zone}");
            let chrono = chrono_parse(&text);
            if let Some(fast) = parse_utc(text.as_bytes()) {
                proptest::prop_assert_eq!(Some(fast.0), chrono);
            }
            if let Some(expected) = chrono {
                let parsed = Timestamp::parse(&text).unwrap();
                proptest::prop_assert_eq!(parsed.0, expected);
                proptest::prop_assert_eq!(parsed.canonical(), expected.to_rfc3339_opts(SecondsFormat::Micros, true));
            }
        }
    }

    #[test]
    fn timestamps_out_of_the_fast_range_are_written_by_chrono() {
        let leap = chrono::NaiveDate::from_ymd_opt(2016, 12, 31)
            .unwrap()
            .and_hms_nano_opt(23, 59, 59, 1_500_000_000)
            .unwrap()
            .and_utc();
        assert_eq!(Timestamp(leap).canonical(), "2016-12-31T23:59:60.500000Z");
        let far = Timestamp(DateTime::from_timestamp(253_402_300_800, 0).unwrap());
        assert_eq!(far.canonical(), "+10000-01-01T00:00:00.000000Z");
        assert_eq!(
            serde_json::to_string(&far).unwrap(),
            "\"+10000-01-01T00:00:00.000000Z\""
        );
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
