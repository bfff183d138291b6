//! One conformance suite (`suite.rs`) for every [`BlobStore`] backend, run against the local store
//! always and against RADOS when built with `--features rados`. The RADOS cases need a running
//! cluster named by `TRELLIS_CEPH_CONF` (and optionally `TRELLIS_CEPH_USER`, default "admin"); with
//! the feature on and the variable unset they fail rather than skip. `run-rados.sh` beside this
//! directory brings a throwaway cluster up, runs them, and tears it down.

mod local;
#[cfg(feature = "rados")]
mod rados;
mod suite;

/// Instantiates every suite case as a `#[tokio::test]` in module `$backend`; `$make(case)` builds a
/// fresh, empty [`suite::Harness`] for each case.
macro_rules! conformance {
    ($backend:ident, $make:path) => {
        mod $backend {
            conformance!(@cases $make;
                round_trip, idempotent_put, id_is_sha256, missing_is_none, delete, list,
                large_blob, corruption_is_detected, concurrent_puts_of_the_same_bytes);
        }
    };
    (@cases $make:path; $($case:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let harness = $make(stringify!($case)).await;
                crate::suite::$case(&harness).await;
            }
        )*
    };
}

conformance!(local_store, crate::local::harness);
#[cfg(feature = "rados")]
conformance!(rados_store, crate::rados::harness);
