//! The comparison run: configuration files, servers, wrk, and the table.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::Args;
use trellis_ingress::DevCa;

use crate::idle;
use crate::procs::{CpuTicks, Server, niced};

const NGINX: &str = "127.0.0.1:18080";
const HAPROXY_HTTP: &str = "127.0.0.1:18081";
const HAPROXY_TLS: &str = "127.0.0.1:18443";
const HAPROXY_TCP: &str = "127.0.0.1:18082";
const TRELLIS_HTTP: &str = "127.0.0.1:18091";
const TRELLIS_TLS: &str = "127.0.0.1:18444";
const TRELLIS_TCP: &str = "127.0.0.1:18092";
/// A `forward: kernel` endpoint: nothing listens; nftables sends it to nginx.
const TRELLIS_KERNEL: &str = "127.0.0.1:18093";
/// The nftables table of the kernel path, present only while that path is measured, so the
/// other paths run without connection tracking, as they would on a host without NAT.
const BENCH_TABLE: &str = "trellis_ingress_bench";

#[derive(Args)]
pub struct RunArgs {
    /// Scratch directory for configuration, certificates and logs.
    #[arg(long, default_value = "/tmp/trellis-ingress-bench")]
    work: PathBuf,
    /// Seconds per wrk measurement (after a 1 s warm-up).
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Repetitions of every path; the table shows medians.
    #[arg(long, default_value_t = 1)]
    reps: usize,
    /// HAProxy threads (`nbthread`); the baseline measured 1.
    #[arg(long, default_value_t = 1)]
    haproxy_threads: usize,
    /// Trellis runtime worker threads (default: one per core).
    #[arg(long)]
    trellis_threads: Option<usize>,
    /// The ingress's serving threads (`threads:` in its configuration); 0 serves on the
    /// runtime that started it.
    #[arg(long, default_value_t = 1)]
    serving_threads: usize,
    /// Run Trellis as this many single-threaded runtimes on shared listeners instead.
    #[arg(long)]
    trellis_per_core: Option<usize>,
    /// Idle keep-alive connections held for the memory measurement (0 skips it).
    #[arg(long, default_value_t = 10_000)]
    idle_connections: usize,
    /// Run the proxies alone on the last CPU and nginx and wrk on the others, so the proxies
    /// are compared without sharing a core with the load (needs two CPUs or more).
    #[arg(long)]
    pin: bool,
    /// Only these paths (direct, direct_tracked, hap_http, hap_tls, hap_tcp, trellis_http,
    /// trellis_tls, trellis_tcp, trellis_kernel).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
}

/// One wrk measurement.
#[derive(Debug, Clone, Default)]
struct Sample {
    rps: f64,
    p50_ms: f64,
    p90_ms: f64,
    p99_ms: f64,
    /// nginx's CPU and the proxy's.
    cpu_us_per_request: f64,
    /// The proxy's own CPU, in user space and in the kernel (NaN for direct paths).
    proxy_user_us_per_request: f64,
    proxy_system_us_per_request: f64,
    errors: String,
}

impl Sample {
    fn proxy_us_per_request(&self) -> f64 {
        self.proxy_user_us_per_request + self.proxy_system_us_per_request
    }
}

/// One way to nginx: wrk's URL and the proxy's processes (none for direct).
struct Route {
    name: &'static str,
    url: String,
    proxy: Vec<u32>,
}

pub fn run(args: RunArgs) -> anyhow::Result<()> {
    for tool in ["nginx", "haproxy", "wrk"] {
        if Command::new("sh").args(["-c", &format!("command -v {tool}")]).output()?.stdout.is_empty() {
            bail!("{tool} is not installed; run ingress/bench/run.sh");
        }
    }
    // HAProxy refuses to start when its maxconn needs more descriptors than it may open.
    let haproxy_maxconn = (raise_fd_limit().saturating_sub(100) / 2).min(20_000);
    let work = &args.work;
    std::fs::create_dir_all(work.join("www"))?;
    std::fs::create_dir_all(work.join("nginx/logs"))?;
    std::fs::write(work.join("www/index.html"), "x".repeat(612))?;
    write_certificates(work)?;
    std::fs::write(work.join("nginx/nginx.conf"), nginx_conf(work))?;
    std::fs::write(work.join("haproxy.cfg"), haproxy_cfg(work, args.haproxy_threads, haproxy_maxconn))?;
    let ingress_yml = ingress_yml(work, args.serving_threads);
    std::fs::write(work.join("ingress.yml"), &ingress_yml)?;
    let kernel_nat = trellis_ingress::IngressConfig::from_yaml(&ingress_yml)?
        .nat_with_forwards(|_, _| true)
        .context("the benchmark's configuration has a nat section")?;

    let placement = args.pin.then(Placement::split).transpose()?;
    let load_cpus = placement.as_ref().map(|p| p.load.as_str());
    let proxy_cpus = placement.as_ref().map(|p| p.proxies.as_str());
    let nginx_conf = work.join("nginx/nginx.conf");
    let nginx = Server::start(
        "nginx",
        work,
        load_cpus,
        "nginx",
        &["-p", &path(&work.join("nginx")), "-c", &path(&nginx_conf), "-g", "daemon off;"],
    )?;
    let haproxy =
        Server::start("haproxy", work, proxy_cpus, "haproxy", &["-f", &path(&work.join("haproxy.cfg"))])?;
    let exe = std::env::current_exe()?;
    let threads = args.trellis_threads.map(|t| t.to_string());
    let per_core = args.trellis_per_core.map(|t| t.to_string());
    let mut serve_args = vec!["serve", "--config"];
    let config_path = path(&work.join("ingress.yml"));
    serve_args.push(&config_path);
    if let Some(threads) = &threads {
        serve_args.extend(["--threads", threads]);
    }
    if let Some(per_core) = &per_core {
        serve_args.extend(["--per-core", per_core]);
    }
    let trellis = Server::start("trellis", work, proxy_cpus, &path(&exe), &serve_args)?;
    std::thread::sleep(Duration::from_secs(2));
    for server in [&nginx, &haproxy, &trellis] {
        if std::fs::metadata(format!("/proc/{}", server.pid())).is_err() {
            bail!("{} exited; see {}/{}.log", server.name, work.display(), server.name);
        }
    }

    let nginx_pids = nginx.pids();
    // Each proxy's processes, found once (a walk over /proc) for all its paths.
    let (haproxy_pids, trellis_pids) = (haproxy.pids(), trellis.pids());
    let route = |name: &'static str, scheme: &str, address: &str, proxy: &[u32]| Route {
        name,
        url: format!("{scheme}://{address}/index.html"),
        proxy: proxy.to_vec(),
    };
    let paths = vec![
        route("direct", "http", NGINX, &[]),
        // Direct again, with the kernel path's table present: what connection tracking alone
        // costs (a portal host with NAT in front tracks every connection anyway).
        route("direct_tracked", "http", NGINX, &[]),
        route("hap_http", "http", HAPROXY_HTTP, &haproxy_pids),
        route("hap_tls", "https", HAPROXY_TLS, &haproxy_pids),
        route("hap_tcp", "http", HAPROXY_TCP, &haproxy_pids),
        route("trellis_http", "http", TRELLIS_HTTP, &trellis_pids),
        route("trellis_tls", "https", TRELLIS_TLS, &trellis_pids),
        route("trellis_tcp", "http", TRELLIS_TCP, &trellis_pids),
        route("trellis_kernel", "http", TRELLIS_KERNEL, &trellis_pids),
    ];
    // The kernel path's table needs CAP_NET_ADMIN; without it those paths are left out.
    let may_nat = rustix::process::geteuid().is_root();
    if !may_nat {
        eprintln!("not root: leaving out trellis_kernel and direct_tracked (they need nftables)");
    }
    let paths: Vec<_> = paths
        .into_iter()
        .filter(|path| args.only.is_empty() || args.only.iter().any(|o| o == path.name))
        .filter(|path| may_nat || !matches!(path.name, "trellis_kernel" | "direct_tracked"))
        .collect();

    let mut results: Vec<(&str, Vec<Sample>)> = paths.iter().map(|path| (path.name, Vec::new())).collect();
    for rep in 1..=args.reps {
        for (i, path) in paths.iter().enumerate() {
            let tracked = matches!(path.name, "trellis_kernel" | "direct_tracked");
            let _nat = if tracked { Some(KernelNat::apply(&kernel_nat)?) } else { None };
            let sample = measure(path, &nginx_pids, args.duration, load_cpus)?;
            let proxy_cpu = if path.proxy.is_empty() {
                String::new()
            } else {
                format!(
                    " (proxy {:.1} user + {:.1} kernel)",
                    sample.proxy_user_us_per_request, sample.proxy_system_us_per_request
                )
            };
            eprintln!(
                "rep {rep} {:<13} {:>9.0} req/s  p50 {:>6.2} ms  p90 {:>6.2} ms  p99 {:>6.2} ms  {:>5.1} µs/req{proxy_cpu} {}",
                path.name,
                sample.rps,
                sample.p50_ms,
                sample.p90_ms,
                sample.p99_ms,
                sample.cpu_us_per_request,
                sample.errors
            );
            results[i].1.push(sample);
        }
    }
    print_table(&results, args.duration, args.reps);

    if args.idle_connections > 0 {
        let haproxy_idle = idle::measure(HAPROXY_HTTP, haproxy.pid(), args.idle_connections)?;
        println!("\nIdle keep-alive connections on HAProxy (http): {haproxy_idle}");
        let trellis_idle = idle::measure(TRELLIS_HTTP, trellis.pid(), args.idle_connections)?;
        println!("Idle keep-alive connections on Trellis (http): {trellis_idle}");
        println!(
            "Trellis / HAProxy memory per idle connection: {:.2}",
            trellis_idle.kib_per_connection / haproxy_idle.kib_per_connection.max(0.01)
        );
    }
    drop((trellis, haproxy, nginx));
    Ok(())
}

/// The kernel path's NAT table, applied with the code the ingress controller uses and removed
/// when dropped.
struct KernelNat(trellis_nat::NatController);

impl KernelNat {
    fn apply(nat: &trellis_nat::NatConfig) -> anyhow::Result<KernelNat> {
        let controller = trellis_nat::NatController::for_config(nat)?;
        controller.apply(nat).context("applying the kernel path's NAT (needs root and nft)")?;
        Ok(KernelNat(controller))
    }
}

impl Drop for KernelNat {
    fn drop(&mut self) {
        if let Err(err) = self.0.remove() {
            eprintln!("could not remove nftables table {BENCH_TABLE}: {err}");
        }
    }
}

/// Where the processes run with `--pin`: `taskset` CPU lists.
struct Placement {
    load: String,
    proxies: String,
}

impl Placement {
    fn split() -> anyhow::Result<Placement> {
        let cpus = std::thread::available_parallelism()?.get();
        if cpus < 2 {
            bail!("--pin needs two CPUs or more; this machine has {cpus}");
        }
        let load = if cpus == 2 { "0".to_owned() } else { format!("0-{}", cpus - 2) };
        Ok(Placement { load, proxies: (cpus - 1).to_string() })
    }
}

fn measure(path: &Route, nginx: &[u32], duration: u64, cpus: Option<&str>) -> anyhow::Result<Sample> {
    let url = &path.url;
    let wrk = |seconds: u64, latency: bool| -> anyhow::Result<String> {
        let mut command = niced(cpus, "wrk");
        command.args(["-t2", "-c64", &format!("-d{seconds}s")]);
        if latency {
            command.arg("--latency");
        }
        let output = command.arg(url).output().context("running wrk")?;
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    };
    wrk(1, false)?;
    let (nginx_before, proxy_before) = (CpuTicks::of(nginx), CpuTicks::of(&path.proxy));
    let out = wrk(duration, true)?;
    let nginx_used = CpuTicks::of(nginx).since(nginx_before);
    let proxy_used = CpuTicks::of(&path.proxy).since(proxy_before);
    let requests: f64 = out
        .lines()
        .find_map(|l| l.trim().split_once(" requests in ").map(|(n, _)| n.trim().to_owned()))
        .and_then(|n| n.parse().ok())
        .with_context(|| format!("no request count in wrk output:\n{out}"))?;
    let rps = out
        .lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0);
    let percentile = |p: &str| {
        out.lines()
            .map(str::split_whitespace)
            .find_map(|mut words| (words.next() == Some(p)).then(|| words.next().map(to_ms)).flatten())
            .unwrap_or(f64::NAN)
    };
    // Ticks are 1/100 s: 10,000 µs each.
    let per_request = |ticks: u64| ticks as f64 * 10_000.0 / requests.max(1.0);
    let errors = out
        .lines()
        .filter(|l| l.contains("Non-2xx") || l.contains("Socket errors"))
        .map(str::trim)
        .collect::<Vec<_>>()
        .join("; ");
    Ok(Sample {
        rps,
        p50_ms: percentile("50%"),
        p90_ms: percentile("90%"),
        p99_ms: percentile("99%"),
        cpu_us_per_request: per_request(nginx_used.total() + proxy_used.total()),
        proxy_user_us_per_request: if path.proxy.is_empty() {
            f64::NAN
        } else {
            per_request(proxy_used.user)
        },
        proxy_system_us_per_request: if path.proxy.is_empty() {
            f64::NAN
        } else {
            per_request(proxy_used.system)
        },
        errors,
    })
}

fn to_ms(value: &str) -> f64 {
    let number = |suffix: &str| value.trim_end_matches(suffix).parse::<f64>().unwrap_or(f64::NAN);
    if value.ends_with("us") {
        number("us") / 1000.0
    } else if value.ends_with("ms") {
        number("ms")
    } else if value.ends_with('s') {
        number("s") * 1000.0
    } else {
        f64::NAN
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

fn print_table(results: &[(&str, Vec<Sample>)], duration: u64, reps: usize) {
    let summary: Vec<(&str, Sample)> = results
        .iter()
        .map(|(name, samples)| {
            let rps = median(samples.iter().map(|s| s.rps).collect());
            // Latency from the repetition with the median throughput.
            let pick = samples
                .iter()
                .min_by(|a, b| (a.rps - rps).abs().total_cmp(&(b.rps - rps).abs()))
                .cloned()
                .unwrap_or_default();
            let cpu = |value: fn(&Sample) -> f64| median(samples.iter().map(value).collect());
            let sample = Sample {
                rps,
                cpu_us_per_request: cpu(|s| s.cpu_us_per_request),
                proxy_user_us_per_request: cpu(|s| s.proxy_user_us_per_request),
                proxy_system_us_per_request: cpu(|s| s.proxy_system_us_per_request),
                ..pick
            };
            (*name, sample)
        })
        .collect();
    let rps_of = |name: &str| summary.iter().find(|(n, _)| *n == name).map(|(_, s)| s.rps);
    println!("\nwrk -t2 -c64 -d{duration}s, 612-byte file from nginx (1 worker); median of {reps} run(s)\n");
    println!(
        "| path | req/s | vs direct | vs HAProxy | p50 ms | p99 ms | server CPU µs/req | proxy CPU µs/req (user + kernel) | errors |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for (name, s) in &summary {
        let vs_direct = rps_of("direct").map_or("-".to_owned(), |d| format!("{:.2}", s.rps / d));
        // The kernel path stands in for HAProxy's tcp mode.
        let peer = name.strip_prefix("trellis_").map(|mode| format!("hap_{}", mode.replace("kernel", "tcp")));
        let vs_hap = peer.and_then(|p| rps_of(&p)).map_or("-".to_owned(), |h| format!("{:.2}", s.rps / h));
        let proxy_cpu = if s.proxy_user_us_per_request.is_nan() {
            "-".to_owned()
        } else {
            format!(
                "{:.1} ({:.1} + {:.1})",
                s.proxy_us_per_request(),
                s.proxy_user_us_per_request,
                s.proxy_system_us_per_request
            )
        };
        println!(
            "| {name} | {:.0} | {vs_direct} | {vs_hap} | {:.2} | {:.2} | {:.1} | {proxy_cpu} | {} |",
            s.rps,
            s.p50_ms,
            s.p99_ms,
            s.cpu_us_per_request,
            if s.errors.is_empty() { "-" } else { &s.errors }
        );
    }
    print_paired(results);
}

/// Each Trellis repetition against its peer's repetition in the same round (HAProxy in the
/// same mode; for the kernel path also direct nginx): the two ran minutes apart at most, so
/// slow drifts of the machine cancel out of the ratio.
fn print_paired(results: &[(&str, Vec<Sample>)]) {
    let samples_of = |name: &str| results.iter().find(|(n, _)| *n == name).map(|(_, s)| s);
    let mut rows = Vec::new();
    let pairs = [
        ("http / HAProxy http", "trellis_http", "hap_http"),
        ("TLS / HAProxy TLS", "trellis_tls", "hap_tls"),
        ("tcp (proxy) / HAProxy tcp", "trellis_tcp", "hap_tcp"),
        ("tcp (kernel) / HAProxy tcp", "trellis_kernel", "hap_tcp"),
        ("tcp (kernel) / direct", "trellis_kernel", "direct"),
        ("tcp (kernel) / direct, both tracked", "trellis_kernel", "direct_tracked"),
    ];
    for (mode, trellis, peer) in pairs {
        let (Some(trellis), Some(hap)) = (samples_of(trellis), samples_of(peer)) else {
            continue;
        };
        let ratios = |value: fn(&Sample) -> f64| -> String {
            let r: Vec<f64> =
                trellis.iter().zip(hap).map(|(t, h)| value(t) / value(h)).filter(|r| !r.is_nan()).collect();
            if r.is_empty() {
                return "-".to_owned();
            }
            let (lo, hi) = r.iter().fold((f64::MAX, f64::MIN), |(lo, hi), &x| (lo.min(x), hi.max(x)));
            format!("{:.2} ({lo:.2}–{hi:.2})", median(r))
        };
        rows.push(format!(
            "| {mode} | {} | {} | {} | {} | {} | {} | {} |",
            ratios(|s| s.rps),
            ratios(|s| s.p50_ms),
            ratios(|s| s.p90_ms),
            ratios(|s| s.p99_ms),
            ratios(|s| s.cpu_us_per_request),
            ratios(Sample::proxy_us_per_request),
            ratios(|s| s.proxy_user_us_per_request)
        ));
    }
    if rows.is_empty() {
        return;
    }
    println!("\nTrellis / peer, repetition by repetition (median, min–max):\n");
    println!(
        "| Trellis / peer | req/s | p50 | p90 | p99 | server CPU µs/req | proxy CPU µs/req | proxy user-space µs/req |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for row in rows {
        println!("{row}");
    }
}

/// Raises the open-file limit (as root past the hard limit, for 10,000 idle connections on
/// each proxy, which HAProxy counts twice); returns the limit now in force.
fn raise_fd_limit() -> u64 {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    const WANTED: u64 = 65_536;
    let wanted = Rlimit { current: Some(WANTED), maximum: Some(WANTED) };
    if setrlimit(Resource::Nofile, wanted).is_err()
        && let Some(max) = getrlimit(Resource::Nofile).maximum
    {
        let _ = setrlimit(Resource::Nofile, Rlimit { current: Some(max), maximum: Some(max) });
    }
    getrlimit(Resource::Nofile).current.unwrap_or(1024)
}

fn path(p: &Path) -> String {
    p.display().to_string()
}

fn write_certificates(work: &Path) -> anyhow::Result<()> {
    let ca = DevCa::generate()?;
    let (cert, key) = ca.issue(&["localhost".to_owned()])?;
    std::fs::write(work.join("cert.pem"), &cert)?;
    std::fs::write(work.join("key.pem"), &key)?;
    std::fs::write(work.join("haproxy.pem"), format!("{cert}{key}"))?;
    Ok(())
}

fn nginx_conf(work: &Path) -> String {
    let w = work.display();
    format!(
        "worker_processes 1;\nuser root;\npid {w}/nginx/nginx.pid;\nerror_log {w}/nginx/logs/error.log warn;\n\
         events {{ worker_connections 4096; }}\n\
         http {{\n  access_log off;\n  keepalive_requests 10000000;\n  keepalive_timeout 65;\n\
         client_body_temp_path {w}/nginx/cbt;\n  proxy_temp_path {w}/nginx/pt;\n  fastcgi_temp_path {w}/nginx/ft;\n\
         uwsgi_temp_path {w}/nginx/ut;\n  scgi_temp_path {w}/nginx/st;\n  default_type text/html;\n\
         server {{ listen {NGINX}; root {w}/www; location / {{ }} }}\n}}\n"
    )
}

fn haproxy_cfg(work: &Path, threads: usize, maxconn: u64) -> String {
    let w = work.display();
    format!(
        "global\n  nbthread {threads}\n  maxconn {maxconn}\n  ssl-default-bind-options ssl-min-ver TLSv1.2\n\
         defaults\n  mode http\n  timeout connect 5s\n  timeout client 60s\n  timeout server 60s\n\
         frontend fe_http\n  bind {HAPROXY_HTTP}\n  default_backend be_http\n\
         frontend fe_tls\n  bind {HAPROXY_TLS} ssl crt {w}/haproxy.pem alpn http/1.1\n  default_backend be_http\n\
         frontend fe_tcp\n  mode tcp\n  bind {HAPROXY_TCP}\n  default_backend be_tcp\n\
         backend be_http\n  server n1 {NGINX}\n\
         backend be_tcp\n  mode tcp\n  server n1 {NGINX}\n"
    )
}

fn ingress_yml(work: &Path, serving_threads: usize) -> String {
    let w = work.display();
    format!(
        "access_log: false\nthreads: {serving_threads}\ntimeouts: {{ header_read: 60s }}\nendpoints:\n\
         \x20 - {{ name: http, listen: \"{TRELLIS_HTTP}\", protocol: http, max_connections: 18000 }}\n\
         \x20 - name: tls\n    listen: \"{TRELLIS_TLS}\"\n    protocol: https\n\
         \x20   tls: {{ certificates: [{{ names: [localhost], cert: \"{w}/cert.pem\", key: \"{w}/key.pem\" }}] }}\n\
         \x20 - {{ name: tcp, listen: \"{TRELLIS_TCP}\", protocol: tcp, pool: nginx }}\n\
         \x20 - {{ name: kernel, listen: \"{TRELLIS_KERNEL}\", protocol: tcp, pool: nginx, forward: kernel }}\n\
         pools:\n  nginx: {{ backends: [\"{NGINX}\"] }}\n\
         routes:\n  - {{ id: all, host: \"*\", pool: nginx }}\n\
         nat: {{ table: {BENCH_TABLE}, route_localnet: false }}\n"
    )
}
