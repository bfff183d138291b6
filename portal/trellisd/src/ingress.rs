//! The ingress in `trellisd`: alone (`serve ingress`) or inside `up` with a built-in
//! configuration, following node ingress records in the store.

use std::sync::Arc;

use anyhow::Context;
use tokio_util::sync::CancellationToken;
use trellis_ingress_controller::{ControllerOptions, IngressController, RunningIngress};
use trellis_store::Store;

use crate::config::Settings;
use crate::run::{create_private_dir, open_store};

/// Starts the ingress: the file when given; for `up` also the built-in configuration (served
/// while there is no file).
pub async fn start_ingress(
    settings: &Settings,
    store: Arc<dyn Store>,
    all_in_one: bool,
    cancel: CancellationToken,
) -> anyhow::Result<RunningIngress> {
    let mut options = ControllerOptions::new(store);
    options.config_path = settings.ingress_config.clone();
    if all_in_one {
        let ca = settings.data_dir.join("ingress-ca");
        options.config = Some(trellis_ingress_controller::default_config(settings.ingress_https, Some(ca)));
    }
    options.node_ingress.gateway_ip = settings.ingress_gateway_ip;
    IngressController::start(options, cancel).await.context("starting the ingress")
}

/// `trellisd serve ingress`: the ingress alone, following node ingress records in the store.
pub async fn serve_ingress(settings: Settings, cancel: CancellationToken) -> anyhow::Result<()> {
    let Some(path) = settings.ingress_config.clone() else {
        anyhow::bail!("`serve ingress` needs --ingress-config <file> (see ingress/ingress.example.yml)");
    };
    create_private_dir(&settings.data_dir)?;
    let store = open_store(&settings).await?;
    let running = start_ingress(&settings, store, false, cancel).await?;
    eprintln!("Trellis ingress serving {} (reloads on change and SIGHUP)", path.display());
    running.stopped().await;
    Ok(())
}
