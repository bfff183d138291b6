//! Requests per second through the XDC web proxy against JupyterHub's
//! `configurable-http-proxy` (CHP), both in front of the same backend, measured with wrk.
//!
//! Run through `xdc/webproxy/bench.sh`, which installs wrk and CHP first. The backend is a
//! small HTTP server (a child process) answering like Jupyter's `/api/status` (`--backend static`),
//! or a real Jupyter notebook server (`--backend jupyter`, slow enough that it, not the
//! proxies, sets the pace).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use bytes::Bytes;
use clap::{Parser, ValueEnum};
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio_util::sync::CancellationToken;
use trellis_xdc_proxy::{Backend, Denial, XdcProxy, XdcProxyConfig, XdcWebPolicy};

#[derive(Parser)]
struct Args {
    /// Path to CHP's `configurable-http-proxy` script (bench.sh installs it).
    #[arg(long, required_unless_present = "serve_backend")]
    chp: Option<PathBuf>,
    /// Seconds per wrk run (after a 1 s warm-up).
    #[arg(long, default_value_t = 5)]
    duration: u64,
    /// wrk connections.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// wrk threads.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Repetitions of each path; medians are shown.
    #[arg(long, default_value_t = 1)]
    reps: usize,
    /// Worker threads of the proxy's runtime; one proxy (and table row) per value.
    #[arg(long, value_delimiter = ',', default_value = "1,2")]
    proxy_threads: Vec<usize>,
    #[arg(long, value_enum, default_value_t = BackendKind::Static)]
    backend: BackendKind,
    /// Internal: run only the static backend, print its port, serve until killed. The
    /// benchmark runs its backend in a separate process so each process's CPU time is its own.
    #[arg(long, hide = true)]
    serve_backend: bool,
}

#[derive(Clone, Copy, ValueEnum)]
enum BackendKind {
    Static,
    Jupyter,
}

const TOKEN: &str = "bench-portal-token";
const PATH: &str = "/proj/x0/api/status";
const STATUS_JSON: &str = r#"{"connections": 0, "kernels": 0, "last_activity": "2026-11-22T00:00:00.000000Z", "started": "2026-11-22T00:00:00.000000Z"}"#;

struct BenchPolicy {
    backend: Backend,
}

#[async_trait::async_trait]
impl XdcWebPolicy for BenchPolicy {
    async fn authenticate(&self, token: &str) -> Option<String> {
        (token == TOKEN).then(|| "alice".to_owned())
    }
    async fn login(&self, _: &str, _: &str) -> Result<String, String> {
        Err("no logins in the benchmark".into())
    }
    async fn resolve(&self, user: &str, project: &str, xdc: &str) -> Result<Backend, Denial> {
        match (user, project, xdc) {
            ("alice", "proj", "x0") => Ok(self.backend.clone()),
            _ => Err(Denial::NotFound("no such XDC".into())),
        }
    }
}

/// A child process killed (by its PID) when dropped.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.0.id().to_string()]).status();
        for _ in 0..50 {
            if matches!(self.0.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[derive(Clone, Copy, Default)]
struct Sample {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    non_2xx: u64,
    /// CPU time of the process in the middle (backend, CHP, or the Trellis proxy) per request.
    cpu_us: f64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.serve_backend {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
        return runtime.block_on(async {
            let backend = static_backend().await?;
            println!("{}", backend.addr.port());
            std::future::pending::<()>().await;
            anyhow::Ok(())
        });
    }
    let Some(chp_script) = args.chp.clone() else { bail!("--chp is required") };
    for tool in ["wrk", "node"] {
        if !Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .stdout(Stdio::null())
            .status()?
            .success()
        {
            bail!("{tool} is not installed; run xdc/webproxy/bench.sh");
        }
    }
    let work = tempfile_dir()?;
    let (backend_process, backend) = match args.backend {
        BackendKind::Static => spawn_static_backend()?,
        BackendKind::Jupyter => jupyter(&work)?,
    };

    let stop = CancellationToken::new();
    let mut proxies = Vec::new();
    for &threads in &args.proxy_threads {
        let runtime =
            tokio::runtime::Builder::new_multi_thread().worker_threads(threads).enable_all().build()?;
        let addr = runtime.block_on(async {
            let mut config = XdcProxyConfig::new("xdc.example.net");
            config.secure_cookie = false;
            let proxy = XdcProxy::new(config, Arc::new(BenchPolicy { backend: backend.clone() }))?;
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            let addr = listener.local_addr()?;
            let shutdown = stop.clone();
            tokio::spawn(async move { proxy.serve(listener, shutdown).await });
            anyhow::Ok(addr)
        })?;
        proxies.push((format!("trellis-xdc-proxy, {threads} worker(s)"), addr, runtime));
    }

    let chp_port = free_port()?;
    let chp_api = free_port()?;
    let chp = Process(
        Command::new("node")
            .arg(&chp_script)
            .args(["--ip", "127.0.0.1", "--port", &chp_port.to_string()])
            .args(["--api-ip", "127.0.0.1", "--api-port", &chp_api.to_string()])
            .args(["--default-target", &format!("http://{}", backend.addr), "--log-level", "error"])
            .env("CONFIGPROXY_AUTH_TOKEN", "bench-chp-api-token")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .context("starting configurable-http-proxy")?,
    );
    wait_listening(chp_port)?;

    // CHP authenticates nobody and passes Jupyter's token through (JupyterHub's single-user
    // servers check it themselves); the Trellis proxy takes the portal token and adds Jupyter's.
    let jupyter_auth = format!("Authorization: token {}", backend.jupyter_token);
    let portal_auth = format!("Authorization: Bearer {TOKEN}");
    let mut paths: Vec<(String, u16, &str, u32)> = vec![
        ("direct backend".into(), backend.addr.port(), &jupyter_auth, backend_process.0.id()),
        ("CHP".into(), chp_port, &jupyter_auth, chp.0.id()),
    ];
    // The proxies share this process; only the one being measured is busy.
    for (name, addr, _) in &proxies {
        paths.push((name.clone(), addr.port(), &portal_auth, std::process::id()));
    }
    let mut samples: Vec<Vec<Sample>> = vec![Vec::new(); paths.len()];
    for _ in 0..args.reps {
        for (index, (_, port, auth, pid)) in paths.iter().enumerate() {
            let url = format!("http://127.0.0.1:{port}{PATH}");
            wrk(&args, &url, auth, 1)?;
            let before = cpu_seconds(*pid);
            let mut sample = wrk(&args, &url, auth, args.duration)?;
            let cpu = cpu_seconds(*pid) - before;
            sample.cpu_us = cpu * 1e6 / (sample.rps * args.duration as f64).max(1.0);
            samples[index].push(sample);
        }
    }
    stop.cancel();
    drop(chp);

    let backend_name = match args.backend {
        BackendKind::Static => "static backend process",
        BackendKind::Jupyter => "real Jupyter notebook 6.4",
    };
    println!(
        "\nGET {PATH} ({backend_name}), wrk -t{} -c{} -d{}s, median of {} run(s)\n",
        args.threads, args.connections, args.duration, args.reps
    );
    println!("| path | req/s | p50 ms | p99 ms | non-2xx | CPU µs/req (middle process) |");
    println!("|---|---:|---:|---:|---:|---:|");
    let medians: Vec<Sample> = samples.iter().map(|s| median(s)).collect();
    for ((name, ..), sample) in paths.iter().zip(&medians) {
        println!(
            "| {name} | {:.0} | {:.2} | {:.2} | {} | {:.1} |",
            sample.rps, sample.p50_ms, sample.p99_ms, sample.non_2xx, sample.cpu_us
        );
    }
    println!();
    for ((name, ..), sample) in paths.iter().zip(&medians).skip(2) {
        println!("{name} / CHP: {:.2}x (goal >= 5x)", sample.rps / medians[1].rps.max(1.0));
    }
    drop(proxies);
    let _ = std::fs::remove_dir_all(&work);
    Ok(())
}

fn median(samples: &[Sample]) -> Sample {
    let mut sorted = samples.to_vec();
    sorted.sort_by(|a, b| a.rps.total_cmp(&b.rps));
    sorted.get(sorted.len() / 2).copied().unwrap_or_default()
}

fn wrk(args: &Args, url: &str, header: &str, seconds: u64) -> anyhow::Result<Sample> {
    let output = Command::new("wrk")
        .args([&format!("-t{}", args.threads), &format!("-c{}", args.connections), &format!("-d{seconds}s")])
        .args(["--latency", "-H", header, url])
        .output()
        .context("running wrk")?;
    let text = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!("wrk failed: {text}{}", String::from_utf8_lossy(&output.stderr));
    }
    let field = |prefix: &str| {
        text.lines().find_map(|line| line.trim().strip_prefix(prefix).map(|rest| rest.trim().to_owned()))
    };
    let rps =
        field("Requests/sec:").and_then(|v| v.parse().ok()).context("no Requests/sec in wrk's output")?;
    let non_2xx = field("Non-2xx or 3xx responses:").and_then(|v| v.parse().ok()).unwrap_or(0);
    Ok(Sample {
        rps,
        p50_ms: field("50%").map_or(0.0, |v| millis(&v)),
        p99_ms: field("99%").map_or(0.0, |v| millis(&v)),
        non_2xx,
        cpu_us: 0.0,
    })
}

/// wrk's latency with its unit (`812.00us`, `1.23ms`, `1.01s`) in milliseconds.
fn millis(value: &str) -> f64 {
    let split = value.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(value.len());
    let number: f64 = value[..split].parse().unwrap_or(0.0);
    match &value[split..] {
        "us" => number / 1000.0,
        "s" => number * 1000.0,
        "m" => number * 60_000.0,
        _ => number,
    }
}

async fn static_backend() -> anyhow::Result<Backend> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let service = service_fn(|_req| async {
                    let mut response =
                        http::Response::new(Full::new(Bytes::from_static(STATUS_JSON.as_bytes())));
                    response
                        .headers_mut()
                        .insert("content-type", http::HeaderValue::from_static("application/json"));
                    Ok::<_, std::convert::Infallible>(response)
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(Backend { addr, jupyter_token: "bench-jupyter-token".into(), base_path: "/proj/x0/".into() })
}

fn spawn_static_backend() -> anyhow::Result<(Process, Backend)> {
    let mut child = Command::new(std::env::current_exe()?)
        .arg("--serve-backend")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .context("starting the backend process")?;
    let mut line = String::new();
    let stdout = child.stdout.take().context("the backend's stdout")?;
    let process = Process(child);
    std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line)?;
    let port: u16 = line.trim().parse().context("the backend's port")?;
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    Ok((
        process,
        Backend { addr, jupyter_token: "bench-jupyter-token".into(), base_path: "/proj/x0/".into() },
    ))
}

/// User plus system CPU time of a process so far, from `/proc/<pid>/stat`.
fn cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return 0.0 };
    // Fields after the command name, which is parenthesized and may contain spaces.
    let Some((_, rest)) = stat.rsplit_once(')') else { return 0.0 };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of the whole line; `rest` starts at field 3.
    (ticks(11) + ticks(12)) / clock_ticks()
}

fn clock_ticks() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

fn jupyter(work: &std::path::Path) -> anyhow::Result<(Process, Backend)> {
    let port = free_port()?;
    let token = "bench-jupyter-token";
    let notebooks = work.join("notebooks");
    std::fs::create_dir_all(&notebooks)?;
    let process = Process(
        Command::new("jupyter-notebook")
            .args([
                "--ip=127.0.0.1",
                &format!("--port={port}"),
                "--port-retries=0",
                "--NotebookApp.base_url=/proj/x0/",
            ])
            .args([&format!("--NotebookApp.token={token}"), "--no-browser", "--allow-root"])
            .arg(format!("--notebook-dir={}", notebooks.display()))
            .args(["--log-level=ERROR"])
            .env("JUPYTER_RUNTIME_DIR", work.join("runtime"))
            .env("JUPYTER_DATA_DIR", work.join("data"))
            .env("JUPYTER_CONFIG_DIR", work.join("config"))
            .env("IPYTHONDIR", work.join("ipython"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting jupyter-notebook (Debian jupyter-notebook)")?,
    );
    wait_listening(port)?;
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    Ok((process, Backend { addr, jupyter_token: token.into(), base_path: "/proj/x0/".into() }))
}

fn wait_listening(port: u16) -> anyhow::Result<()> {
    for _ in 0..300 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!("nothing listens on port {port} after 30 s")
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn tempfile_dir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("trellis-xdc-proxy-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
