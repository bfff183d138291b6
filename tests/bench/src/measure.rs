//! Driving workers concurrently for a fixed time and collecting throughput and latency.

use std::time::{Duration, Instant};

use anyhow::Context;
use hdrhistogram::Histogram;
use tokio::task::JoinSet;

use crate::workers::Worker;

/// Longest latency the histogram tracks; longer calls are clamped to it.
const MAX_LATENCY_NS: u64 = 60_000_000_000;

/// What one measurement saw.
#[derive(Debug)]
pub struct Sample {
    /// Calls that succeeded inside the measured window.
    pub ok: u64,
    /// Calls that failed inside the measured window.
    pub errors: u64,
    /// The first failure's message.
    pub first_error: Option<String>,
    /// Every call made, warm-up included (to divide store-call counts by).
    pub attempts: u64,
    /// From the end of the warm-up to the last measured call's completion.
    pub elapsed: Duration,
    /// Latencies of the successful measured calls, in nanoseconds.
    pub latency: Histogram<u64>,
}

impl Sample {
    /// Successful calls per second.
    pub fn rate(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(f64::EPSILON)
    }

    /// A latency quantile in microseconds.
    pub fn micros(&self, quantile: f64) -> f64 {
        self.latency.value_at_quantile(quantile) as f64 / 1000.0
    }
}

struct TaskResult {
    ok: u64,
    errors: u64,
    first_error: Option<String>,
    attempts: u64,
    last_done: Option<Instant>,
}

fn histogram() -> anyhow::Result<Histogram<u64>> {
    Histogram::new_with_bounds(1, MAX_LATENCY_NS, 3).context("creating a latency histogram")
}

/// Runs every worker in its own task: first for `warmup` (not recorded), then for `duration`.
/// All tasks share one clock, so warm-up and measurement start and stop together; a call
/// counts if it started inside the measured window.
pub async fn drive<W: Worker>(
    workers: Vec<W>,
    warmup: Duration,
    duration: Duration,
) -> anyhow::Result<Sample> {
    let measure_from = Instant::now() + warmup;
    let until = measure_from + duration;
    let mut tasks = JoinSet::new();
    for mut worker in workers {
        let mut latency = histogram()?;
        tasks.spawn(async move {
            let mut result = TaskResult { ok: 0, errors: 0, first_error: None, attempts: 0, last_done: None };
            loop {
                let started = Instant::now();
                if started >= until {
                    break;
                }
                let outcome = worker.call().await;
                let done = Instant::now();
                result.attempts += 1;
                if started < measure_from {
                    continue;
                }
                result.last_done = Some(done);
                match outcome {
                    Ok(()) => {
                        let nanos =
                            u64::try_from(done.duration_since(started).as_nanos()).unwrap_or(u64::MAX);
                        latency.saturating_record(nanos.clamp(1, MAX_LATENCY_NS));
                        result.ok += 1;
                    }
                    Err(e) => {
                        result.errors += 1;
                        result.first_error.get_or_insert(e);
                    }
                }
            }
            (result, latency)
        });
    }
    let mut sample =
        Sample { ok: 0, errors: 0, first_error: None, attempts: 0, elapsed: duration, latency: histogram()? };
    let mut last_done = measure_from + duration;
    while let Some(joined) = tasks.join_next().await {
        let (r, latency) = joined.context("a benchmark task panicked")?;
        sample.ok += r.ok;
        sample.errors += r.errors;
        sample.attempts += r.attempts;
        if sample.first_error.is_none() {
            sample.first_error = r.first_error;
        }
        sample.latency.add(&latency).context("merging latency histograms")?;
        if let Some(done) = r.last_done {
            last_done = last_done.max(done);
        }
    }
    sample.elapsed = last_done.duration_since(measure_from);
    Ok(sample)
}
