//! What the benchmarks share: their report, `bench/REPORT.md`, one `## …` section per bench
//! (each bench replaces its own, keeping the others, so it can be rerun alone), and quantiles.

use std::path::PathBuf;

fn report_path() -> PathBuf {
    crate::paths::repo_file("bench/REPORT.md")
}

/// Replaces the section whose heading starts with `heading_prefix` (e.g. `"## Startup:"`) by
/// `section`, or appends `section` when there is none.
pub fn write_section(heading_prefix: &str, section: &str) {
    let path = report_path();
    let existing = std::fs::read_to_string(&path).unwrap_or_else(|_| "# Benchmarks\n\n".to_owned());
    std::fs::write(&path, replace_section(&existing, heading_prefix, section))
        .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    println!("wrote {}", path.display());
}

/// `report` with the section starting at `heading_prefix` (up to the next `## `) replaced by
/// `section`, or `section` appended.
fn replace_section(report: &str, heading_prefix: &str, section: &str) -> String {
    match report.find(heading_prefix) {
        Some(start) => {
            let end = report[start + 1..]
                .find("\n## ")
                .map(|i| start + 1 + i + 1)
                .unwrap_or(report.len());
            format!("{}{}{}", &report[..start], section, &report[end..])
        }
        None => format!("{}\n\n{section}", report.trim_end_matches('\n')),
    }
}

/// The value at quantile `q` (0..=1) of sorted samples.
pub fn quantile<T: Copy>(sorted: &[T], q: f64) -> T {
    let index = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_section_is_replaced_in_place_and_a_new_one_appended() {
        let report = "# Benchmarks\n\n## A: old\n\nx\n\n## B: keep\n\ny\n";
        assert_eq!(
            replace_section(report, "## A:", "## A: new\n\nz\n\n"),
            "# Benchmarks\n\n## A: new\n\nz\n\n## B: keep\n\ny\n"
        );
        assert_eq!(
            replace_section(report, "## C:", "## C: added\n"),
            "# Benchmarks\n\n## A: old\n\nx\n\n## B: keep\n\ny\n\n## C: added\n"
        );
    }

    #[test]
    fn quantiles_of_sorted_samples() {
        let samples = [1, 2, 3, 4, 5];
        assert_eq!(quantile(&samples, 0.0), 1);
        assert_eq!(quantile(&samples, 0.5), 3);
        assert_eq!(quantile(&samples, 1.0), 5);
    }
}
