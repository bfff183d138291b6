//! JSON records with the revisions compare-and-swap needs: the same helpers the realize
//! service uses (re-exported), plus the controller's retry pacing.

use std::time::Duration;

use rand::Rng;
pub use trellis_realize::stored::{Versioned, decode, load, load_all, now_unix, put, retrying, store_error};

/// `min * 2^(failures-1)`, capped at `max`, with up to a quarter of random jitter taken off.
pub fn retry_delay(failures: u32, min: Duration, max: Duration) -> Duration {
    let exponent = failures.saturating_sub(1).min(20);
    let delay = min.saturating_mul(1 << exponent).min(max);
    let jitter = rand::rng().random_range(0.0..0.25);
    delay.mul_f64(1.0 - jitter)
}
