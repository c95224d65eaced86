//! Daily documents as sums of contributions: add, remove, and derived fields. Pure.
//!
//! Every stored field is a sum over contributions (counts, duration totals, histogram buckets)
//! or derived from sums (averages, percentiles), so adding then removing a contribution restores
//! the document exactly and any order of the same contributions gives the same document.

use crate::model::{ExecutionStatus, MetricsDoc, Timestamp, WorkflowMetrics};

use super::contribution::Contribution;

/// Buckets per doubling of the duration: each is 2^(1/8) ≈ 9% wide, so a percentile read at the
/// bucket's geometric middle is within ±4.5% of the exact value.
const BUCKETS_PER_DOUBLING: f64 = 8.0;

pub fn empty(scope: &str, day: &str) -> MetricsDoc {
    MetricsDoc {
        id: MetricsDoc::id_for(day),
        doc_type: MetricsDoc::TYPE.to_owned(),
        scope: scope.to_owned(),
        date: day.to_owned(),
        ..MetricsDoc::default()
    }
}

fn bucket_of(duration_ms: i64) -> u32 {
    let ms = duration_ms.max(0) as f64;
    ((ms + 1.0).log2() * BUCKETS_PER_DOUBLING).floor() as u32
}

/// The geometric middle of a bucket, in milliseconds.
fn bucket_middle(bucket: u32) -> i64 {
    let low = 2f64.powf(f64::from(bucket) / BUCKETS_PER_DOUBLING) - 1.0;
    let high = 2f64.powf(f64::from(bucket + 1) / BUCKETS_PER_DOUBLING) - 1.0;
    ((low.max(0.0) + 1.0) * (high + 1.0)).sqrt().round() as i64 - 1
}

fn status_counter(doc: &mut MetricsDoc, status: ExecutionStatus) -> Option<&mut u64> {
    match status {
        ExecutionStatus::Success => Some(&mut doc.success_count),
        ExecutionStatus::Failed => Some(&mut doc.failed_count),
        ExecutionStatus::Timeout => Some(&mut doc.timeout_count),
        ExecutionStatus::CompletedWithErrors => Some(&mut doc.completed_with_errors_count),
        ExecutionStatus::Cancelled => Some(&mut doc.cancelled_count),
        _ => None,
    }
}

fn step(value: &mut u64, sign: i64) {
    *value = if sign > 0 {
        value.saturating_add(1)
    } else {
        value.saturating_sub(1)
    };
}

/// Adds (`sign` = 1) or removes (`sign` = -1) one contribution; derived fields are refreshed.
pub fn apply(doc: &mut MetricsDoc, contribution: &Contribution, sign: i64) {
    step(&mut doc.total_executions, sign);
    if let Some(counter) = status_counter(doc, contribution.status) {
        step(counter, sign);
    }
    let workflow = doc
        .workflows
        .entry(contribution.workflow_name.clone())
        .or_default();
    step(&mut workflow.count, sign);
    match contribution.status {
        ExecutionStatus::Success => step(&mut workflow.success_count, sign),
        ExecutionStatus::Failed => step(&mut workflow.failed_count, sign),
        _ => {}
    }
    if let Some(ms) = contribution.duration_ms {
        workflow.total_duration_ms += sign * ms;
        step(&mut workflow.duration_count, sign);
        doc.total_duration_ms += sign * ms;
        step(&mut doc.duration_count, sign);
        let bucket = doc
            .duration_histogram
            .entry(bucket_of(ms).to_string())
            .or_default();
        step(bucket, sign);
    }
    refresh_derived(doc);
}

/// Recomputes averages and percentiles from the sums, and drops empty entries so that a
/// document's JSON depends only on its contributions.
pub fn refresh_derived(doc: &mut MetricsDoc) {
    doc.workflows.retain(|_, w| w.count > 0);
    doc.duration_histogram.retain(|_, count| *count > 0);
    for workflow in doc.workflows.values_mut() {
        workflow.avg_duration_ms = average(workflow.total_duration_ms, workflow.duration_count);
    }
    doc.avg_duration_ms = average(doc.total_duration_ms, doc.duration_count);
    doc.p50_duration_ms = percentile(doc, 0.50);
    doc.p95_duration_ms = percentile(doc, 0.95);
}

fn average(total: i64, count: u64) -> i64 {
    if count == 0 {
        0
    } else {
        (total as f64 / count as f64).round() as i64
    }
}

/// Nearest-rank percentile over the histogram.
fn percentile(doc: &MetricsDoc, q: f64) -> Option<i64> {
    let total: u64 = doc.duration_histogram.values().sum();
    if total == 0 {
        return None;
    }
    let rank = ((q * total as f64).ceil() as u64).max(1);
    let mut buckets: Vec<(u32, u64)> = doc
        .duration_histogram
        .iter()
        .filter_map(|(k, v)| k.parse::<u32>().ok().map(|b| (b, *v)))
        .collect();
    buckets.sort_unstable();
    let mut seen = 0;
    for (bucket, count) in buckets {
        seen += count;
        if seen >= rank {
            return Some(bucket_middle(bucket));
        }
    }
    None
}

/// A daily document built from scratch out of its contributions (the live aggregate).
pub fn from_contributions<'a>(
    scope: &str,
    day: &str,
    contributions: impl IntoIterator<Item = &'a Contribution>,
) -> MetricsDoc {
    let mut doc = empty(scope, day);
    for contribution in contributions {
        apply(&mut doc, contribution, 1);
    }
    doc
}

/// Whether two documents hold the same metrics (ignoring bookkeeping: `updatedAt`, `sealed`).
pub fn same_metrics(a: &MetricsDoc, b: &MetricsDoc) -> bool {
    let strip = |d: &MetricsDoc| MetricsDoc {
        updated_at: None,
        sealed: false,
        ..d.clone()
    };
    strip(a) == strip(b)
}

/// Marks the document as written now.
pub fn touch(doc: &mut MetricsDoc, now: Timestamp) {
    doc.updated_at = Some(now);
}

/// Sum of several documents (other days or scopes), for dashboards.
pub fn merge(into: &mut MetricsDoc, other: &MetricsDoc) {
    into.total_executions += other.total_executions;
    into.success_count += other.success_count;
    into.failed_count += other.failed_count;
    into.timeout_count += other.timeout_count;
    into.completed_with_errors_count += other.completed_with_errors_count;
    into.cancelled_count += other.cancelled_count;
    into.total_duration_ms += other.total_duration_ms;
    into.duration_count += other.duration_count;
    for (bucket, count) in &other.duration_histogram {
        *into.duration_histogram.entry(bucket.clone()).or_default() += count;
    }
    for (name, workflow) in &other.workflows {
        let entry: &mut WorkflowMetrics = into.workflows.entry(name.clone()).or_default();
        entry.count += workflow.count;
        entry.success_count += workflow.success_count;
        entry.failed_count += workflow.failed_count;
        entry.total_duration_ms += workflow.total_duration_ms;
        entry.duration_count += workflow.duration_count;
    }
    refresh_derived(into);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(status: ExecutionStatus, ms: Option<i64>, workflow: &str) -> Contribution {
        Contribution {
            day: "2026-11-23".into(),
            status,
            duration_ms: ms,
            workflow_name: workflow.into(),
        }
    }

    #[test]
    fn add_then_remove_restores_the_empty_document() {
        let mut doc = empty("GLOBAL", "2026-11-23");
        let a = c(ExecutionStatus::Failed, Some(1200), "w1");
        apply(&mut doc, &a, 1);
        assert_eq!(doc.failed_count, 1);
        assert_eq!(doc.workflows["w1"].failed_count, 1);
        apply(&mut doc, &a, -1);
        assert_eq!(doc, empty("GLOBAL", "2026-11-23"));
    }

    #[test]
    fn order_does_not_matter() {
        let items = [
            c(ExecutionStatus::Success, Some(10), "a"),
            c(ExecutionStatus::Timeout, None, "b"),
            c(ExecutionStatus::Success, Some(99_000), "a"),
            c(ExecutionStatus::Cancelled, Some(0), "b"),
        ];
        let forward = from_contributions("GLOBAL", "d", items.iter());
        let backward = from_contributions("GLOBAL", "d", items.iter().rev());
        assert_eq!(forward, backward);
        assert_eq!(forward.total_executions, 4);
        assert_eq!(forward.duration_count, 3);
        assert_eq!(forward.avg_duration_ms, 33_003);
    }

    #[test]
    fn percentiles_are_within_the_stated_bound() {
        let durations: Vec<i64> = (1..=1000).map(|i| i * 37).collect();
        let items: Vec<Contribution> = durations
            .iter()
            .map(|ms| c(ExecutionStatus::Success, Some(*ms), "w"))
            .collect();
        let doc = from_contributions("GLOBAL", "d", items.iter());
        for (q, got) in [(0.5, doc.p50_duration_ms), (0.95, doc.p95_duration_ms)] {
            let exact = durations[((q * 1000.0_f64).ceil() as usize) - 1] as f64;
            let got = got.unwrap() as f64;
            assert!(
                (got - exact).abs() / exact <= 0.045,
                "q{q}: {got} vs {exact}"
            );
        }
    }

    #[test]
    fn merge_sums_days() {
        let mut total = empty("GLOBAL", "all");
        let day1 = from_contributions(
            "GLOBAL",
            "1",
            [c(ExecutionStatus::Success, Some(100), "a")].iter(),
        );
        let day2 = from_contributions(
            "GLOBAL",
            "2",
            [c(ExecutionStatus::Failed, Some(300), "a")].iter(),
        );
        merge(&mut total, &day1);
        merge(&mut total, &day2);
        assert_eq!(total.total_executions, 2);
        assert_eq!(total.avg_duration_ms, 200);
        assert_eq!(total.workflows["a"].count, 2);
    }
}
