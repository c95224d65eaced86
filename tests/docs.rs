//! The user-facing docs (`README.md`, `docs/*.md`) stay true to the code and walkable:
//!
//! - the README's settings table names exactly the settings the code reads
//!   (`runtime::config::SETTINGS`), each once;
//! - the README stays short (what it is, the commands, the status, links);
//! - every relative link in the docs reaches a file, and every `#anchor` a heading of it;
//! - nothing cites material outside the repository (the design notes the code was written from).
//! - every measured figure the README's status and the benchmarks page's table quote is one
//!   `bench/REPORT.md` holds (what `bench/run` measured, never a figure typed in or left over).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use bifrost_workers::runtime::config::SETTINGS;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// README.md and every docs/*.md, with their text.
fn pages() -> Vec<(PathBuf, String)> {
    let mut pages = vec![(repo().join("README.md"), read(&repo().join("README.md")))];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(repo().join("docs"))
        .expect("docs/ exists")
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    for path in docs {
        let text = read(&path);
        pages.push((path, text));
    }
    pages
}

/// The lines of the `## {title}` section, up to the next `## ` heading.
fn section<'a>(text: &'a str, title: &str) -> Vec<&'a str> {
    let heading = format!("## {title}");
    text.lines()
        .skip_while(|line| line.trim_end() != heading)
        .skip(1)
        .take_while(|line| !line.starts_with("## "))
        .collect()
}

/// The first backticked word of each body row's first cell: `| \`NAME\` / \`--flag\` | … |` → NAME.
fn first_column_names(table: &[&str]) -> Vec<String> {
    table
        .iter()
        .filter(|line| line.starts_with('|'))
        // Header and the `|---|` separator.
        .skip(2)
        .filter_map(|row| {
            let cell = row.trim_start_matches('|').split('|').next()?;
            let start = cell.find('`')? + 1;
            let end = start + cell[start..].find('`')?;
            Some(cell[start..end].to_owned())
        })
        .collect()
}

#[test]
fn readme_settings_table_lists_exactly_the_settings_the_code_reads() {
    let readme = read(&repo().join("README.md"));
    let table = section(&readme, "Settings");
    assert!(!table.is_empty(), "README.md has no `## Settings` section");
    let listed = first_column_names(&table);

    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for name in &listed {
        *counts.entry(name.as_str()).or_default() += 1;
    }
    let twice: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "listed more than once: {twice:?}");

    let in_code: BTreeSet<&str> = SETTINGS.iter().map(|s| s.name).collect();
    let in_readme: BTreeSet<&str> = counts.keys().copied().collect();
    let missing: Vec<_> = in_code.difference(&in_readme).collect();
    let unknown: Vec<_> = in_readme.difference(&in_code).collect();
    assert!(
        missing.is_empty() && unknown.is_empty(),
        "README settings table: missing {missing:?}, not read by the code {unknown:?}"
    );
}

#[test]
fn the_table_reader_sees_names_flags_and_duplicates() {
    let table = [
        "| setting | meaning |",
        "|---|---|",
        "| `A` / `--a` | one |",
        "| `B` | two `C` |",
        "| `A` | again |",
        "not a row",
    ];
    assert_eq!(first_column_names(&table), ["A", "B", "A"]);
    let text = "# t\n## Settings\n| h |\n|---|\n| `X` |\n## Next\n| h |\n|---|\n| `Y` |\n";
    assert_eq!(first_column_names(&section(text, "Settings")), ["X"]);
}

#[test]
fn readme_stays_a_short_front_page() {
    let readme = read(&repo().join("README.md"));
    let lines = readme.lines().count();
    assert!(
        lines <= 150,
        "README.md has {lines} lines; move detail into docs/"
    );
    // It opens with the two commands, before anything else.
    let first_block: Vec<&str> = readme
        .lines()
        .skip_while(|l| !l.starts_with("```"))
        .skip(1)
        .take_while(|l| !l.starts_with("```"))
        .collect();
    assert!(
        first_block[0].starts_with("cargo run --release -- serve --demo"),
        "{first_block:?}"
    );
    assert!(first_block[1].starts_with("cargo test"), "{first_block:?}");
}

/// GitHub's heading anchors: lower case, spaces to `-`, other punctuation dropped.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

fn anchors(text: &str) -> BTreeSet<String> {
    let mut in_code = false;
    let mut found = BTreeSet::new();
    for line in text.lines() {
        if line.starts_with("```") {
            in_code = !in_code;
        } else if !in_code && line.starts_with('#') {
            found.insert(anchor(line.trim_start_matches('#')));
        }
    }
    found
}

/// Targets of `[text](target)` links.
fn link_targets(text: &str) -> Vec<String> {
    let mut targets = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("](") {
        rest = &rest[at + 2..];
        if let Some(end) = rest.find(')') {
            targets.push(rest[..end].to_owned());
        }
    }
    targets
}

#[test]
fn every_relative_link_reaches_its_file_and_heading() {
    let mut broken = Vec::new();
    let mut checked = 0;
    for (page, text) in pages() {
        for target in link_targets(&text) {
            if target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            checked += 1;
            let (file, fragment) = match target.split_once('#') {
                Some((file, fragment)) => (file, Some(fragment)),
                None => (target.as_str(), None),
            };
            let path = if file.is_empty() {
                page.clone()
            } else {
                page.parent().expect("a folder").join(file)
            };
            if !path.exists() {
                broken.push(format!("{}: {target}: no such file", page.display()));
                continue;
            }
            if let Some(fragment) = fragment {
                if !anchors(&read(&path)).contains(fragment) {
                    broken.push(format!("{}: {target}: no such heading", page.display()));
                }
            }
        }
    }
    assert!(
        checked > 20,
        "only {checked} links found: is the reader broken?"
    );
    assert!(
        broken.is_empty(),
        "broken links:\n  {}",
        broken.join("\n  ")
    );
}

#[test]
fn anchors_follow_github() {
    assert_eq!(
        anchor(" Run under the Functions host locally (`func start`)"),
        "run-under-the-functions-host-locally-func-start"
    );
    assert_eq!(
        anchor("Differences from the legacy API"),
        "differences-from-the-legacy-api"
    );
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable folder") {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            files_under(&path, out);
        } else {
            out.push(path);
        }
    }
}

#[test]
fn nothing_cites_notes_outside_the_repository() {
    // The design notes this code was written from live outside the repository; a reader here
    // cannot follow a citation of them, so code and docs state the fact instead.
    let citations = ["reference/", "shared/", "§", "seeds/"];
    let mut files: Vec<PathBuf> = pages().into_iter().map(|(p, _)| p).collect();
    for dir in ["src", "tests", "benches", "crates", "examples", "infra"] {
        files_under(&repo().join(dir), &mut files);
    }
    let this_file = Path::new(file!()).file_name().expect("a file name");
    let mut found = Vec::new();
    for file in files {
        let text_like = file.extension().is_some_and(|e| {
            ["rs", "md", "py", "cjs", "bicep", "sh", "bicepparam"]
                .contains(&e.to_str().unwrap_or(""))
        });
        if !text_like || file.file_name() == Some(this_file) {
            continue;
        }
        let text = read(&file);
        for (number, line) in text.lines().enumerate() {
            if let Some(cited) = citations.iter().find(|c| line.contains(*c)) {
                found.push(format!(
                    "{}:{}: {cited}: {}",
                    file.display(),
                    number + 1,
                    line.trim()
                ));
            }
        }
    }
    assert!(
        found.is_empty(),
        "citations of outside notes:\n  {}",
        found.join("\n  ")
    );
}

/// The measured figures a text quotes: a number followed by a unit (`3.31 µs`, `19.5 ms`,
/// `17 MiB`, `4.2×`), leaving out goals and limits (a number after `<`, `≤`, `>`, or after
/// `target`, `goal` or `not` in the same clause), which are not measurements.
fn quoted_figures(text: &str) -> Vec<String> {
    const UNITS: [&str; 5] = ["µs", "ms", "MiB", "s", "×"];
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let mut figures = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let (start, c) = chars[i];
        let starts_number = c.is_ascii_digit()
            && (i == 0 || !chars[i - 1].1.is_alphanumeric() && chars[i - 1].1 != '.');
        if !starts_number {
            i += 1;
            continue;
        }
        let mut j = i;
        while j < chars.len() && (chars[j].1.is_ascii_digit() || chars[j].1 == '.') {
            j += 1;
        }
        let number_end = chars.get(j).map_or(text.len(), |c| c.0);
        let number = text[start..number_end].trim_end_matches('.');
        let after = text[number_end..]
            .strip_prefix(' ')
            .unwrap_or(&text[number_end..]);
        let unit = UNITS.iter().find(|unit| {
            after.starts_with(**unit)
                && !after[unit.len()..].starts_with(|c: char| c.is_alphanumeric())
        });
        if let Some(unit) = unit {
            let clause_start = text[..start]
                .rfind([',', ';', '(', '|'])
                .map_or(0, |at| at + 1);
            let clause = &text[clause_start..start];
            let is_limit = text[..start].trim_end().ends_with(['<', '≤', '>'])
                || clause.contains("target")
                || clause.contains("goal")
                || clause.contains("not ");
            if !is_limit {
                let gap = if *unit == "×" { "" } else { " " };
                figures.push(format!("{number}{gap}{unit}"));
            }
        }
        // Past the number (at least its first digit).
        i = j;
    }
    figures
}

#[test]
fn the_figure_reader_takes_measurements_and_leaves_goals() {
    let text = "| ours 3.31 µs vs 13.87 µs: 4.2× less (target of issue 17: 10×), p99 4.2 ms at \
                1000 logs/s, under 100 ms; slowest 19.9 ms (plan: < 1 s), 17 MiB, goal p99 ≤ 20 ms, not 10× |";
    assert_eq!(
        quoted_figures(text),
        [
            "3.31 µs",
            "13.87 µs",
            "4.2×",
            "4.2 ms",
            "100 ms",
            "19.9 ms",
            "17 MiB"
        ]
    );
}

/// What the README's status and the benchmarks page's figure table quote as measured is what
/// `bench/REPORT.md` (written by `bench/run`) holds: a figure is never edited by hand or left
/// from an older run.
#[test]
fn quoted_figures_are_the_reports() {
    let report = read(&repo().join("bench/REPORT.md"));
    let readme = read(&repo().join("README.md"));
    let benchmarks = read(&repo().join("docs/benchmarks.md"));
    // The figure table: the first table of the page.
    let table: Vec<&str> = benchmarks
        .lines()
        .skip_while(|line| !line.starts_with('|'))
        .take_while(|line| line.starts_with('|'))
        .collect();
    let mut missing = Vec::new();
    for (page, lines) in [
        ("README.md", section(&readme, "Status")),
        ("docs/benchmarks.md", table),
    ] {
        for figure in quoted_figures(&lines.join("\n")) {
            if !report.contains(&figure) {
                missing.push(format!("{page}: {figure}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "figures not in bench/REPORT.md (rerun `bench/run` or quote the report): {missing:?}"
    );
}
