//! `bench/REPORT.md` is shared by every benchmark: each replaces only its own `## Title:` section.

/// Writes `section` (which starts with `heading`, e.g. `## Startup:`) in place of the section
/// with that heading, or appends it; returns the file's path.
pub fn replace_section(heading: &str, section: &str) -> &'static str {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/bench/REPORT.md");
    let existing = std::fs::read_to_string(path).unwrap_or_else(|_| "# Benchmarks\n\n".to_owned());
    let updated = match existing.find(heading) {
        Some(start) => {
            let end = existing[start + 1..]
                .find("\n## ")
                .map(|i| start + 1 + i + 1)
                .unwrap_or(existing.len());
            format!("{}{}{}", &existing[..start], section, &existing[end..])
        }
        None => format!("{}\n\n{section}", existing.trim_end()),
    };
    std::fs::write(path, updated).expect("write bench/REPORT.md");
    path
}
