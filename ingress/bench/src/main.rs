//! Benchmarks the ingress proxy against HAProxy and nginx on this machine, in one run, with
//! the same backend (nginx serving a 612-byte file) and the same load (`wrk -t2 -c64`), as
//! `shared/reference/baselines.md` measured them.
//!
//! - `run`: starts nginx, HAProxy and the proxy (this binary's `serve`), runs wrk against
//!   each path (direct, HAProxy http/TLS/tcp, Trellis http/TLS/tcp, and as root Trellis tcp
//!   carried by the kernel and direct with that NAT table present), and prints req/s,
//!   latency, server CPU per request and ratios; then holds 10,000 idle keep-alive
//!   connections on each proxy and prints its resident memory.
//! - `serve`: the proxy alone, from a YAML file, until SIGINT/SIGTERM.
//!
//! `run.sh` beside this crate installs the tools and builds in release mode first.

mod idle;
mod procs;
mod run;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "Ingress benchmark: Trellis against HAProxy and direct nginx")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the whole comparison.
    Run(run::RunArgs),
    /// Serve an ingress configuration until interrupted.
    Serve {
        /// The ingress YAML file.
        #[arg(long)]
        config: PathBuf,
        /// Runtime worker threads (default: one per core).
        #[arg(long)]
        threads: Option<usize>,
        /// Instead of one multi-threaded runtime, run this many single-threaded ones, each with
        /// its own ingress on shared (`SO_REUSEPORT`) listeners.
        #[arg(long)]
        per_core: Option<usize>,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Run(args) => run::run(args),
        Command::Serve { config, threads, per_core } => serve(config, threads, per_core),
    }
}

fn serve(config: PathBuf, threads: Option<usize>, per_core: Option<usize>) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn,access=off".into()),
        )
        .init();
    let text = std::fs::read_to_string(&config)?;
    let config = trellis_ingress::IngressConfig::from_yaml(&text)
        .map_err(|e| anyhow::anyhow!("{}: {e}", config.display()))?;
    if let Some(count) = per_core {
        let mut config = config;
        config.reuse_port = true;
        // Each runtime serves its own connections; no serving threads inside them.
        config.threads = 0;
        let handles: Vec<_> = (0..count)
            .map(|_| {
                let config = config.clone();
                std::thread::spawn(move || -> anyhow::Result<()> {
                    tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()?
                        .block_on(run_until_signal(config))
                })
            })
            .collect();
        for handle in handles {
            handle.join().map_err(|_| anyhow::anyhow!("a runtime thread panicked"))??;
        }
        return Ok(());
    }
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(threads) = threads {
        builder.worker_threads(threads);
    }
    builder.enable_all().build()?.block_on(run_until_signal(config))
}

async fn run_until_signal(config: trellis_ingress::IngressConfig) -> anyhow::Result<()> {
    {
        let cancel = tokio_util::sync::CancellationToken::new();
        let ingress = trellis_ingress::Ingress::start(config, cancel.clone()).await?;
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        cancel.cancel();
        ingress.stopped().await;
        Ok(())
    }
}
