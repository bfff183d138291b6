//! Printing results as a Markdown table (so a run can be pasted into BENCHMARKS.md as is).

use std::fmt::Write;

use crate::counting::Snapshot;
use crate::run::{BackendReport, Row, Settings};

/// The machine the run happened on.
pub fn machine() -> String {
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, name)| name.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    format!(
        "{cores} cores ({cpu}); client tasks, portal and store client share one tokio runtime \
         with {cores} workers in one process, so they share the cores"
    )
}

/// Store calls per call of the operation, like `4.00 get` or `3.00 get + 1.02 txn`.
pub fn calls_per_op(calls: Snapshot, attempts: u64) -> String {
    let n = attempts.max(1) as f64;
    let parts: Vec<String> =
        [("get", calls.gets), ("range", calls.ranges), ("txn", calls.txns), ("other", calls.other)]
            .into_iter()
            .filter(|(_, count)| *count > 0)
            .map(|(name, count)| format!("{:.2} {name}", count as f64 / n))
            .collect();
    if parts.is_empty() { "none".to_owned() } else { parts.join(" + ") }
}

fn row_line(report: &BackendReport, row: &Row) -> String {
    let s = &row.sample;
    let ratio = match report.ratio(row.op) {
        Some(r) => format!("{r:.2}×"),
        None => "peer".to_owned(),
    };
    format!(
        "| {} | {} | {:.0} | {:.1} | {:.1} | {} | {} | {} |",
        report.backend,
        row.op.label(),
        s.rate(),
        s.micros(0.50),
        s.micros(0.99),
        s.errors,
        calls_per_op(row.calls, s.attempts),
        ratio,
    )
}

/// The whole report: settings, machine, one table for every backend, then any errors seen.
pub fn render(settings: &Settings, reports: &[BackendReport]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "concurrency {}, {:?} measured after {:?} warm-up per operation, gRPC channel: {:?}",
        settings.concurrency, settings.duration, settings.warmup, settings.channel
    );
    let _ = writeln!(out, "machine: {}", machine());
    let _ = writeln!(out);
    let _ =
        writeln!(out, "| backend | op | req/s | p50 µs | p99 µs | errors | store calls per call | vs peer |");
    let _ = writeln!(out, "|---|---|---:|---:|---:|---:|---|---:|");
    for report in reports {
        for row in &report.rows {
            let _ = writeln!(out, "{}", row_line(report, row));
        }
    }
    for report in reports {
        for row in &report.rows {
            if let Some(e) = &row.sample.first_error {
                let _ = writeln!(
                    out,
                    "\n{} {}: {} errors, first: {e}",
                    report.backend,
                    row.op.label(),
                    row.sample.errors
                );
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_are_divided_by_attempts_and_zero_kinds_left_out() {
        let calls = Snapshot { gets: 400, ranges: 0, txns: 102, other: 0 };
        assert_eq!(calls_per_op(calls, 100), "4.00 get + 1.02 txn");
        assert_eq!(calls_per_op(Snapshot::default(), 0), "none");
    }
}
