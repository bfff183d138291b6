//! Measures how fast the local runtime brings up an XDC (as root):
//! from the start of `apply` to sshd sending its banner on `<address>:22`, and to Jupyter
//! answering `GET <base_url>api/status` with 200. Each round creates a fresh XDC (new
//! network namespace, root and container) and removes it.
//!
//! Usage: `trellis-xdc-bench [ROUNDS]` (default 5). Uses its own bridge `trxbench0`, subnet
//! 10.251.250.0/24 and a state directory under the system temporary directory, and removes
//! all of them at the end.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use trellis_xdc_runtime::local::{LocalConfig, LocalRuntime};
use trellis_xdc_runtime::{JupyterSpec, RuntimeError, XdcRuntime, XdcSpec, XdcUser, probe};

const BRIDGE: &str = "trxbench0";
const TOKEN: &str = "bench-token-0123456789";

#[derive(Debug, thiserror::Error)]
enum BenchError {
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error("{0}")]
    Setup(String),
}

fn host_key(dir: &Path) -> Result<String, BenchError> {
    let path = dir.join("host_key");
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&path)
        .status()
        .map_err(|e| BenchError::Setup(format!("ssh-keygen: {e}")))?;
    if !status.success() {
        return Err(BenchError::Setup("ssh-keygen failed".into()));
    }
    std::fs::read_to_string(&path).map_err(|e| BenchError::Setup(format!("reading the host key: {e}")))
}

fn spec(id: &str, key: &str, jupyter: bool) -> XdcSpec {
    XdcSpec {
        id: id.into(),
        users: vec![XdcUser {
            name: "bench".into(),
            uid: 2900,
            gid: 2900,
            authorized_keys: vec![],
            identity: None,
        }],
        groups: vec![],
        mounts: vec![],
        user_ca_public_key: String::new(),
        host_private_key: key.into(),
        host_certificate: String::new(),
        jupyter: jupyter.then(|| JupyterSpec {
            user: "bench".into(),
            base_url: format!("/{id}/"),
            token: TOKEN.into(),
            port: 8888,
        }),
        cpu_millis: 0,
        memory_bytes: 0,
        hosts: vec![],
        search: vec![],
    }
}

fn summary(name: &str, samples: &mut [Duration]) {
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    if let (Some(min), Some(max)) = (samples.first(), samples.last()) {
        let median = samples[samples.len() / 2];
        println!(
            "{name:<36} min {:>7.1} ms  median {:>7.1} ms  max {:>7.1} ms  (n={})",
            ms(*min),
            ms(median),
            ms(*max),
            samples.len()
        );
    }
}

async fn run(rounds: usize, dir: &Path) -> Result<(), BenchError> {
    std::fs::create_dir_all(dir).map_err(|e| BenchError::Setup(format!("{}: {e}", dir.display())))?;
    let mut config = LocalConfig::new(dir.join("state"));
    config.subnet = "10.251.250.0/24".parse()?;
    config.bridge = BRIDGE.into();
    let runtime = LocalRuntime::open(config)?;
    let outcome = measure(&runtime, rounds, dir).await;
    // Whatever a failed round left behind goes too.
    for id in runtime.list().await.unwrap_or_default() {
        let _ = runtime.remove(&id).await;
    }
    outcome
}

async fn measure(runtime: &LocalRuntime, rounds: usize, dir: &Path) -> Result<(), BenchError> {
    let key = host_key(dir)?;
    let (mut applied, mut ssh, mut ssh_j, mut jupyter) = (vec![], vec![], vec![], vec![]);
    for round in 0..rounds {
        for with_jupyter in [false, true] {
            let id = format!("bench{round}-{}", if with_jupyter { "j" } else { "s" });
            let spec = spec(&id, &key, with_jupyter);
            let start = Instant::now();
            let status = runtime.apply(&spec).await?;
            let returned = start.elapsed();
            let address = status.address.ok_or_else(|| BenchError::Setup("no address".into()))?;
            probe::retry(Duration::from_secs(60), Duration::from_millis(2), || {
                probe::ssh_banner(SocketAddr::new(address, 22))
            })
            .await
            .map_err(|e| BenchError::Setup(format!("sshd of {id}: {e}")))?;
            let banner = start.elapsed();
            if with_jupyter {
                ssh_j.push(banner);
                let path = format!("/{id}/api/status");
                let auth = format!("token {TOKEN}");
                probe::retry(Duration::from_secs(120), Duration::from_millis(10), || async {
                    match probe::http_status(
                        SocketAddr::new(address, 8888),
                        &path,
                        &[("Authorization", &auth)],
                    )
                    .await?
                    {
                        200 => Ok(()),
                        code => Err(std::io::Error::other(format!("HTTP {code}"))),
                    }
                })
                .await
                .map_err(|e| BenchError::Setup(format!("Jupyter of {id}: {e}")))?;
                jupyter.push(start.elapsed());
            } else {
                applied.push(returned);
                ssh.push(banner);
            }
            runtime.remove(&id).await?;
        }
    }
    println!("trellis-xdc-bench: {rounds} rounds, each a fresh XDC (netns, root, crun container)");
    summary("apply() returned", &mut applied);
    summary("apply -> sshd banner", &mut ssh);
    summary("apply -> sshd banner (with Jupyter)", &mut ssh_j);
    summary("apply -> Jupyter api/status 200", &mut jupyter);
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    let rounds = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(5);
    let dir = std::env::temp_dir().join(format!("trellis-xdc-bench-{}", std::process::id()));
    let outcome = run(rounds, &dir).await;
    let _ = Command::new("ip").args(["link", "del", "dev", BRIDGE]).output();
    let _ = std::fs::remove_dir_all(&dir);
    match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("trellis-xdc-bench: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
