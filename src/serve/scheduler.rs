//! NCRONTAB schedules (the Functions timer syntax, UTC) and the loop that fires them in serve mode.

use std::future::Future;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use tokio::sync::watch;

use crate::model::Timestamp;
use crate::runtime::shutdown::sleep_unless_shutdown;
use crate::runtime::TimerInfo;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid NCRONTAB schedule {expression:?}: {reason}")]
pub struct ScheduleError {
    pub expression: String,
    pub reason: String,
}

/// A parsed `{second} {minute} {hour} {day} {month} {day-of-week}` schedule (5 fields = no seconds).
#[derive(Debug, Clone)]
pub struct Schedule(cron::Schedule);

const DAY_NAMES: [&str; 8] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN"];

/// NCRONTAB numbers days 0–6 from Sunday; the `cron` crate numbers them 1–7. Names mean the same
/// in both, so numeric days (not step values) are rewritten as names.
fn day_of_week_as_names(field: &str) -> Result<String, String> {
    let items = field.split(',').map(|item| {
        let (range, step) = match item.split_once('/') {
            Some((range, step)) => (range, Some(step)),
            None => (item, None),
        };
        let range = range
            .split('-')
            .map(|part| match part.parse::<usize>() {
                Ok(n) if n < DAY_NAMES.len() => Ok(DAY_NAMES[n].to_owned()),
                Ok(n) => Err(format!("day of week {n} is out of range 0-7")),
                Err(_) => Ok(part.to_owned()),
            })
            .collect::<Result<Vec<_>, _>>()?
            .join("-");
        Ok(match step {
            Some(step) => format!("{range}/{step}"),
            None => range,
        })
    });
    Ok(items.collect::<Result<Vec<_>, String>>()?.join(","))
}

impl FromStr for Schedule {
    type Err = ScheduleError;
    fn from_str(expression: &str) -> Result<Self, Self::Err> {
        let fail = |reason: String| ScheduleError {
            expression: expression.to_owned(),
            reason,
        };
        let mut fields: Vec<String> = expression.split_whitespace().map(str::to_owned).collect();
        match fields.len() {
            5 => fields.insert(0, "0".to_owned()),
            6 => {}
            n => return Err(fail(format!("expected 5 or 6 fields, found {n}"))),
        }
        fields[5] = day_of_week_as_names(&fields[5]).map_err(fail)?;
        cron::Schedule::from_str(&fields.join(" "))
            .map(Schedule)
            .map_err(|e| fail(e.to_string()))
    }
}

impl Schedule {
    /// The first occurrence strictly after `after`.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.0.after(&after).next()
    }
}

/// Fires `job` at every occurrence until shutdown. Occurrences missed while a job ran are not
/// replayed (like the host's timer without a monitor).
pub async fn run<F, Fut>(
    name: &str,
    schedule: Schedule,
    mut shutdown: watch::Receiver<bool>,
    mut job: F,
) where
    F: FnMut(TimerInfo) -> Fut,
    Fut: Future<Output = ()>,
{
    let mut last: Option<Timestamp> = None;
    loop {
        let now = Utc::now();
        let Some(next) = schedule.next_after(now) else {
            tracing::warn!(timer = name, "schedule has no further occurrences");
            return;
        };
        let wait = (next - now).to_std().unwrap_or_default();
        if sleep_unless_shutdown(&mut shutdown, wait).await {
            return;
        }
        let info = TimerInfo {
            is_past_due: false,
            last,
            next: schedule.next_after(next).map(Timestamp),
        };
        job(info).await;
        last = Some(Timestamp(next));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        Timestamp::parse(s).unwrap().0
    }

    #[test]
    fn hourly_rollup_schedule() {
        let s: Schedule = "0 0 * * * *".parse().unwrap();
        assert_eq!(
            s.next_after(at("2025-01-01T10:15:00Z")),
            Some(at("2025-01-01T11:00:00Z"))
        );
        assert_eq!(
            s.next_after(at("2025-01-01T11:00:00Z")),
            Some(at("2025-01-01T12:00:00Z"))
        );
    }

    #[test]
    fn five_fields_mean_no_seconds() {
        let s: Schedule = "*/5 * * * *".parse().unwrap();
        assert_eq!(
            s.next_after(at("2025-01-01T10:01:30Z")),
            Some(at("2025-01-01T10:05:00Z"))
        );
    }

    #[test]
    fn day_of_week_zero_is_sunday_like_ncrontab() {
        // 2025-01-05 is a Sunday.
        let s: Schedule = "0 30 9 * * 0".parse().unwrap();
        assert_eq!(
            s.next_after(at("2025-01-01T00:00:00Z")),
            Some(at("2025-01-05T09:30:00Z"))
        );
        let weekdays: Schedule = "0 0 8 * * 1-5".parse().unwrap();
        assert_eq!(
            weekdays.next_after(at("2025-01-04T00:00:00Z")),
            Some(at("2025-01-06T08:00:00Z"))
        );
        let every_other: Schedule = "0 0 8 * * */2".parse().unwrap();
        assert!(every_other.next_after(at("2025-01-04T00:00:00Z")).is_some());
    }

    #[test]
    fn bad_schedules_say_why() {
        let err = "0 0 * *".parse::<Schedule>().unwrap_err();
        assert!(err.to_string().contains("expected 5 or 6 fields"));
        assert!("0 0 * * * 9".parse::<Schedule>().is_err());
        assert!("x y z a b c".parse::<Schedule>().is_err());
    }
}
