//! `trellisd`: the Trellis portal daemon.
//!
//! `trellisd up` runs every component in one process on the embedded defaults (a single-node
//! portal with one command); `trellisd serve <component>` runs one component, typically against
//! a shared etcd so several replicas cooperate.

mod config;
mod host_facility;
mod ingress;
mod run;
mod tls;
mod xdc;

use clap::Parser;

fn main() -> anyhow::Result<()> {
    let cli = config::Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("TRELLIS_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    // rustls can see more than one crypto backend in this dependency tree; pick one explicitly.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(run::run(cli))
}
