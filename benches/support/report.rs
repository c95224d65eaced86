//! `bench/REPORT.md` is shared by several benchmarks: each one replaces only its own section
//! (from its `## ` heading to the next one), or appends it.

pub fn write_section(heading: &str, section: &str) {
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
    println!("wrote {path}");
}
