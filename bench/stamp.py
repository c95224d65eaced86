"""Stamps bench/REPORT.md after a `bench/run`: under the title, one "Run …" line per run whose
sections the report still holds (the command, the machine, its load: a run of some benchmarks
replaces the lines of earlier runs of any of them and keeps the others) and the summary of the
plan's targets, rebuilt on every run. The summary is made of the sections' own "Plan target: …;
ours: …" lines, so it repeats their figures and never holds one of its own.

    python3 bench/stamp.py REPORT HEADER
"""

import sys

SUMMARY = "## Summary: the plan's targets beside ours"
RUN = "Run `bench/run"


def benches_of(run_line):
    """The benchmarks a "Run `bench/run a b` at …" line names (empty: all of them)."""
    return set(run_line[len(RUN):].split("`", 1)[0].split())


def stamp(text, header):
    if SUMMARY in text:
        start = text.index(SUMMARY)
        end = text.find("\n## ", start + 1)
        text = text[:start] + (text[end + 1:] if end >= 0 else "")
    ran = benches_of(header)
    # A run of everything (no names) replaces every earlier line, as does one naming them all.
    earlier = [
        line for line in text.split("\n")
        if line.startswith(RUN) and ran and benches_of(line) and not benches_of(line) & ran
    ]
    lines = [line for line in text.split("\n") if not line.startswith(RUN)]
    rows = []
    section = ""
    for line in lines:
        if line.startswith("## "):
            section = line[3:]
        if line.startswith("Plan target") and "; ours: " in line:
            target, ours = line.split(": ", 1)[1].split("; ours: ", 1)
            rows.append(f"| {target} | {ours.rstrip('.')} | {section} |")
    kept = [part for line in earlier for part in (line, "")]
    table = [SUMMARY, "", "| target | ours | section |", "|---|---|---|"] + rows + [""]
    block = [header, ""] + kept + table
    title = lines.index("# Benchmarks") if "# Benchmarks" in lines else 0
    lines[title + 1:title + 1] = [""] + block
    text = "\n".join(lines)
    while "\n\n\n" in text:
        text = text.replace("\n\n\n", "\n\n")
    return text


if __name__ == "__main__":
    path, header = sys.argv[1], sys.argv[2]
    with open(path) as f:
        text = f.read()
    with open(path, "w") as f:
        f.write(stamp(text, header))
