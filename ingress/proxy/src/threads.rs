//! Serving threads: connections served on single-threaded runtimes that each own what they
//! accept, instead of on the work-stealing runtime that started the ingress.
//!
//! On a machine whose cores are busy with other work (the backends, the clients, the rest of
//! the portal), a work-stealing runtime's workers wake each other to steal and migrate
//! connections between cores; against HAProxy (BENCHMARKS.md, "Ingress", seventh
//! measurement) 3 of its 10 repetitions fell to about 0.8× HAProxy's throughput, where no
//! single-threaded one fell that far. A thread that owns its connections, as each of
//! HAProxy's and nginx's threads does, is not disturbed by that, nor by whatever else the
//! starting runtime runs. With several threads every endpoint has one listener per thread on
//! the same address (`SO_REUSEPORT`), and the kernel spreads new connections over them.

use std::io;

use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;

/// The runtimes of the serving threads; empty when the starting runtime serves.
#[derive(Default)]
pub(crate) struct ServingThreads {
    runtimes: Vec<Handle>,
}

impl ServingThreads {
    /// Starts `count` threads, which run until `until` fires (after the ingress has stopped:
    /// dropping a runtime drops the tasks still on it).
    pub(crate) fn start(count: usize, until: &CancellationToken) -> io::Result<ServingThreads> {
        let mut runtimes = Vec::with_capacity(count);
        for index in 0..count {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            runtimes.push(runtime.handle().clone());
            let until = until.clone();
            let (running, started) = std::sync::mpsc::sync_channel(1);
            std::thread::Builder::new().name(format!("ingress-serve-{index}")).spawn(move || {
                runtime.block_on(async move {
                    let _ = running.send(());
                    until.cancelled().await
                })
            })?;
            // Returns with every thread running (and named), so a failure to start shows here.
            let _ = started.recv();
        }
        Ok(ServingThreads { runtimes })
    }

    /// Binds one listener on `addr` per serving thread, registered with that thread's runtime
    /// (or one on the current runtime when there are none), with the runtime its accept loop
    /// belongs on. Port 0 is resolved by the first bind and shared by the rest.
    pub(crate) fn bind(
        &self,
        addr: std::net::SocketAddr,
        reuse_port: bool,
    ) -> io::Result<Vec<(tokio::net::TcpListener, Handle)>> {
        if self.runtimes.is_empty() {
            return Ok(vec![(crate::io::bind(addr, reuse_port)?, Handle::current())]);
        }
        let reuse_port = reuse_port || self.runtimes.len() > 1;
        let mut addr = addr;
        let mut listeners = Vec::with_capacity(self.runtimes.len());
        for runtime in &self.runtimes {
            let _registering_with = runtime.enter();
            let listener = crate::io::bind(addr, reuse_port)?;
            addr = listener.local_addr()?;
            listeners.push((listener, runtime.clone()));
        }
        Ok(listeners)
    }
}
