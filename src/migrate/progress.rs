//! Progress: an indicatif bar (rows/s, ETA) on a terminal, plain periodic lines otherwise (CI
//! logs, pipes). Both on stderr; stdout carries the summary.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

#[derive(Debug)]
pub struct Progress {
    /// What is counted (`executions`, `entity documents`).
    what: &'static str,
    bar: Option<ProgressBar>,
    total: u64,
    done: u64,
    started: Instant,
    last_line: Option<Instant>,
    /// `done` as of the last plain line, so `finish` does not repeat it.
    last_printed: Option<u64>,
    interval: Duration,
}

impl Progress {
    /// `interval`: how often plain lines are printed (zero: after every page).
    pub fn new(what: &'static str, total: u64, interval: Duration) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            let template =
                format!("{{bar:40}} {{pos}}/{{len}} {what}  {{per_sec}}  ETA {{eta}}  {{msg}}");
            if let Ok(style) = ProgressStyle::with_template(&template) {
                bar.set_style(style);
            }
            bar
        });
        Progress {
            what,
            bar,
            total,
            done: 0,
            started: Instant::now(),
            last_line: None,
            last_printed: None,
            interval,
        }
    }

    pub fn advance(&mut self, items: u64) {
        self.done += items;
        if let Some(bar) = &self.bar {
            bar.inc(items);
            return;
        }
        let due = self
            .last_line
            .is_none_or(|at| at.elapsed() >= self.interval);
        if due {
            self.last_line = Some(Instant::now());
            self.last_printed = Some(self.done);
            eprintln!("{}", self.line());
        }
    }

    fn line(&self) -> String {
        let elapsed = self.started.elapsed().as_secs_f64().max(1e-3);
        let rate = self.done as f64 / elapsed;
        let left = self.total.saturating_sub(self.done) as f64;
        let eta = if rate > 0.0 {
            format!("{:.0}s", left / rate)
        } else {
            "?".into()
        };
        let percent = if self.total > 0 {
            self.done as f64 * 100.0 / self.total as f64
        } else {
            100.0
        };
        format!(
            "progress: {}/{} {} ({percent:.1}%), {rate:.1} rows/s, ETA {eta}",
            self.done, self.total, self.what
        )
    }

    pub fn finish(&mut self) {
        match &self.bar {
            Some(bar) => bar.finish_and_clear(),
            None if self.last_printed == Some(self.done) => {}
            None => eprintln!("{}", self.line()),
        }
    }
}

/// Progress of a read whose size is not known up front (the log spool): a spinner with the count
/// and rate on a terminal, plain periodic lines otherwise. Shared by parallel readers.
#[derive(Debug)]
pub struct RowCounter {
    what: &'static str,
    bar: Option<ProgressBar>,
    state: std::sync::Mutex<CounterState>,
    started: Instant,
    interval: Duration,
}

#[derive(Debug, Default)]
struct CounterState {
    rows: u64,
    last_line: Option<Instant>,
}

impl RowCounter {
    pub fn new(what: &'static str, interval: Duration) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            if let Ok(style) =
                ProgressStyle::with_template("{spinner} {msg}: {pos} rows  {per_sec}")
            {
                bar.set_style(style);
            }
            bar.set_message(what);
            bar
        });
        RowCounter {
            what,
            bar,
            state: Default::default(),
            started: Instant::now(),
            interval,
        }
    }

    pub fn add(&self, rows: u64) {
        if let Some(bar) = &self.bar {
            bar.inc(rows);
            return;
        }
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        state.rows += rows;
        if state
            .last_line
            .is_none_or(|at| at.elapsed() >= self.interval)
        {
            state.last_line = Some(Instant::now());
            eprintln!("{}", self.line(state.rows));
        }
    }

    fn line(&self, rows: u64) -> String {
        let elapsed = self.started.elapsed().as_secs_f64().max(1e-3);
        format!(
            "progress: {}: {rows} rows, {:.1} rows/s",
            self.what,
            rows as f64 / elapsed
        )
    }

    pub fn finish(&self) {
        match &self.bar {
            Some(bar) => bar.finish_and_clear(),
            None => {
                if let Ok(state) = self.state.lock() {
                    eprintln!("{} (done)", self.line(state.rows));
                }
            }
        }
    }
}
