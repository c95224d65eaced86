//! Shared by every benchmark: replace one `## …` section of `bench/REPORT.md`, keeping the
//! others, so each bench can be rerun alone.

/// Replaces the section whose heading starts with `heading_prefix` (e.g. `"## Startup:"`), or
/// appends `section` when there is none.
pub fn write_section(heading_prefix: &str, section: &str) {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/bench/REPORT.md");
    let existing = std::fs::read_to_string(path).unwrap_or_else(|_| "# Benchmarks\n\n".to_owned());
    let updated = match existing.find(heading_prefix) {
        Some(start) => {
            let end = existing[start + 1..]
                .find("\n## ")
                .map(|i| start + 1 + i + 1)
                .unwrap_or(existing.len());
            format!("{}{}{}", &existing[..start], section, &existing[end..])
        }
        None => format!(
            "{}\n{section}",
            existing.trim_end_matches('\n').to_owned() + "\n"
        ),
    };
    std::fs::write(path, updated).expect("write bench/REPORT.md");
    println!("wrote {path}");
}

/// The value at quantile `q` (0..=1) of sorted samples.
pub fn quantile<T: Copy>(sorted: &[T], q: f64) -> T {
    let index = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}
