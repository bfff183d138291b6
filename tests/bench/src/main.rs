//! trellis-bench: how much the portal's full API path costs compared with the store under it.
//!
//! For each backend (embedded redb, real etcd) it starts the store, the portal in-process on
//! 127.0.0.1:0 over it, registers and activates a user with a Protected project, and then
//! measures back to back, with the same number of concurrent tasks in the same process:
//! raw `store.get` of the project's key against an authorized `GetProject` over gRPC, and a raw
//! compare-and-swap create against an authorized `CreateExperiment`. It prints req/s, p50/p99
//! and each subject's rate as a fraction of its peer's, plus how many store calls one API call
//! made. Two breakdown rows split the authorized read's cost: `Health` without a token (the
//! gRPC stack and one store read) and `Whoami` (the gRPC stack and authentication only). A
//! last row creates experiments with one user and project per task, which separates the cost
//! of conflicts on the shared project and user records from the cost of the call itself.
//!
//! Layout:
//! - `fixture`: the backend, the portal, accounts and clients.
//! - `counting`: the store wrapper that counts calls for both sides.
//! - `workers`: the measured operations.
//! - `measure`: running workers for a fixed time into a latency histogram.
//! - `run`: the sequence of measurements on one backend.
//! - `report`: the Markdown table.
//!
//! This is a benchmark, not a test: its numbers are recorded in BENCHMARKS.md and nothing
//! asserts on them. Build it in release mode: `cargo run --release -p trellis-bench -- --help`.

mod counting;
mod fixture;
mod measure;
mod report;
mod run;
mod workers;

use std::time::Duration;

use clap::Parser;

use crate::fixture::Backend;
use crate::run::{ChannelMode, Settings, run_backend};

/// Which backends to measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Backends {
    Embedded,
    Etcd,
    Both,
}

/// Authorized portal API calls against raw store operations.
#[derive(Debug, Parser)]
#[command(name = "trellis-bench", version)]
struct Args {
    /// How long each operation is measured (like 5s, 500ms, 1m).
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    duration: Duration,
    /// Unrecorded warm-up before each measurement.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    warmup: Duration,
    /// Concurrent tasks, the same for every operation.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// The store backends to run on.
    #[arg(long, value_enum, default_value_t = Backends::Both)]
    backend: Backends,
    /// How gRPC workers connect: one HTTP/2 connection each, or one shared by all.
    #[arg(long, value_enum, default_value_t = ChannelMode::PerTask)]
    channel: ChannelMode,
    /// Skip the CreateExperiment run with one user and project per task (its setup registers
    /// one account per task, which takes a few seconds of password hashing).
    #[arg(long)]
    no_spread: bool,
}

/// Parses `5s`, `500ms`, `2m` or a bare number of seconds.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number.parse().map_err(|_| format!("{text:?} does not start with a number"))?;
    let seconds = match unit {
        "" | "s" => value,
        "ms" => value / 1000.0,
        "m" => value * 60.0,
        other => return Err(format!("unknown unit {other:?} (use ms, s or m)")),
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("{text:?}: {e}"))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let settings = Settings {
        duration: args.duration,
        warmup: args.warmup,
        concurrency: args.concurrency.max(1),
        channel: args.channel,
        spread: !args.no_spread,
    };
    let backends = match args.backend {
        Backends::Embedded => vec![Backend::Embedded],
        Backends::Etcd => vec![Backend::Etcd],
        Backends::Both => vec![Backend::Embedded, Backend::Etcd],
    };
    let mut reports = Vec::new();
    for backend in backends {
        reports.push(run_backend(backend, &settings).await?);
    }
    print!("{}", report::render(&settings, &reports));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::OpKind;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert!(parse_duration("5h").is_err());
        assert!(parse_duration("s").is_err());
    }

    /// A very short run on each backend: every operation must work through the real stack
    /// (no timing is checked, only that calls succeed and the store-call counts add up).
    async fn short_run_succeeds(backend: Backend) {
        let settings = Settings {
            duration: Duration::from_millis(300),
            warmup: Duration::from_millis(50),
            concurrency: 2,
            channel: ChannelMode::PerTask,
            spread: true,
        };
        let report = run_backend(backend, &settings).await.unwrap();
        let ops: Vec<OpKind> = report.rows.iter().map(|r| r.op).collect();
        assert_eq!(
            ops,
            [
                OpKind::RawRead,
                OpKind::Health,
                OpKind::Whoami,
                OpKind::GetProject,
                OpKind::RawCreate,
                OpKind::CreateExperiment,
                OpKind::CreateExperimentSpread
            ]
        );
        for row in &report.rows {
            assert!(row.sample.ok > 0, "{backend} {:?}: nothing succeeded", row.op);
            assert_eq!(row.sample.errors, 0, "{backend} {:?}: {:?}", row.op, row.sample.first_error);
            assert!(report.ratio(row.op).is_some() == row.op.peer().is_some());
        }
        let raw = report.row(OpKind::RawRead).unwrap();
        assert_eq!(raw.calls.gets, raw.sample.attempts, "one get per raw read");
        let create = report.row(OpKind::RawCreate).unwrap();
        assert_eq!(create.calls.txns, create.sample.attempts, "one txn per raw create");
        // An authorized read is served from the portal's watch cache: no gets, only revision
        // checks (shared among concurrent reads) against the store.
        let get = report.row(OpKind::GetProject).unwrap();
        assert_eq!(get.calls.gets, 0, "{:?}", get.calls);
        assert!(get.calls.other > 0, "{:?}", get.calls);
        assert_eq!(get.calls.txns, 0, "reads write nothing");
        let health = report.row(OpKind::Health).unwrap();
        assert_eq!(health.calls.other, health.sample.attempts, "one revision query per health check");
        assert_eq!(health.calls.gets, 0, "no token, so no authentication reads");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn short_run_on_embedded() {
        short_run_succeeds(Backend::Embedded).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn short_run_on_etcd() {
        short_run_succeeds(Backend::Etcd).await;
    }
}
