//! Benchmarks the Trellis jump host against an OpenSSH `sshd` used as a ProxyJump, and against
//! connecting directly, all on loopback in one run:
//!
//! - connection setup: the median wall time of `ssh -F cfg HOST true`;
//! - copy throughput: `head -c SIZE /dev/zero | ssh HOST 'cat > /dev/null'` (upload) and
//!   `ssh HOST 'head -c SIZE /dev/zero' > /dev/null` (download), median of the rounds.
//!
//! The XDC is a real Debian `sshd`; the OpenSSH jump is another one; the Trellis jump runs in
//! this process. Every path uses the same client key and the same inner session to the XDC
//! (OpenSSH's defaults); only the jump differs. The OpenSSH jump is measured with its defaults
//! (what users get: sntrup761x25519 and ChaCha20-Poly1305 from an OpenSSH 9.2 client) and
//! "tuned" to what such a client negotiates with the Trellis jump (curve25519 and AES-128-GCM),
//! to separate the algorithms' share of the difference from the implementation's.
//!
//! Usage: `trellis-jump-bench [--runs N] [--size-mib M] [--rounds R] [--paths a,b] [--hold-secs S]`
//! (defaults 30 setup runs, 1024 MiB, 3 rounds, all paths). `--paths` picks some of `direct`,
//! `via-openssh`, `via-openssh-tuned`, `via-trellis` (for profiling one); `--hold-secs` waits
//! after setup so the paths can be tried by hand. Needs `ssh`, `ssh-keygen` and
//! `/usr/sbin/sshd`.

mod cpu;
#[path = "../../../tests/support/openssh.rs"]
mod openssh;

use std::collections::HashMap;
use std::error::Error;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use openssh::{CertSpec, Hop, Scratch, Sshd};
use trellis_jump::{JumpConfig, JumpHost, JumpPolicy};

type BoxResult<T> = Result<T, Box<dyn Error>>;

struct Args {
    runs: usize,
    size_mib: u64,
    rounds: usize,
    /// Which paths to measure (all by default; fewer for profiling one).
    paths: Vec<&'static str>,
    /// Seconds to wait after setting up, printing the client configuration, so the paths can
    /// be tried by hand (`ssh -F CONFIG -v via-trellis`).
    hold_secs: u64,
}

fn parse_args() -> BoxResult<Args> {
    let mut args = Args { runs: 30, size_mib: 1024, rounds: 3, paths: ALL_PATHS.to_vec(), hold_secs: 0 };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--runs" => args.runs = value.parse()?,
            "--size-mib" => args.size_mib = value.parse()?,
            "--rounds" => args.rounds = value.parse()?,
            "--hold-secs" => args.hold_secs = value.parse()?,
            "--paths" => {
                args.paths = value
                    .split(',')
                    .map(|name| {
                        ALL_PATHS.iter().copied().find(|p| *p == name).ok_or(format!("unknown path {name}"))
                    })
                    .collect::<Result<_, _>>()?;
            }
            other => return Err(format!("unknown flag {other}").into()),
        }
    }
    if args.runs == 0 || args.rounds == 0 || args.size_mib == 0 {
        return Err("--runs, --size-mib and --rounds must be positive".into());
    }
    Ok(args)
}

/// Lets the benchmark user's key in as `alice` and routes `x0-proj` to the XDC.
struct BenchPolicy {
    key: String,
    xdc: SocketAddr,
}

#[async_trait::async_trait]
impl JumpPolicy for BenchPolicy {
    async fn accepts_key(&self, user: &str, public_key: &str) -> bool {
        user == "alice" && public_key == self.key
    }

    async fn account_active(&self, user: &str) -> bool {
        user == "alice"
    }

    async fn resolve(&self, _user: &str, host: &str, port: u32) -> Result<SocketAddr, String> {
        if host == "x0-proj" && port == 22 { Ok(self.xdc) } else { Err(format!("no XDC named {host}")) }
    }
}

fn main() -> BoxResult<()> {
    let args = parse_args()?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    // On Ctrl-C, dropping `run` kills the sshds it started and removes its scratch directory.
    runtime.block_on(async {
        tokio::select! {
            result = run(args) => result,
            _ = tokio::signal::ctrl_c() => Err("interrupted".into()),
        }
    })
}

/// The client-side names of the measured paths.
const DIRECT: &str = "direct";
const VIA_OPENSSH: &str = "via-openssh";
const VIA_OPENSSH_TUNED: &str = "via-openssh-tuned";
const VIA_TRELLIS: &str = "via-trellis";
const ALL_PATHS: [&str; 4] = [DIRECT, VIA_OPENSSH, VIA_OPENSSH_TUNED, VIA_TRELLIS];

async fn run(args: Args) -> BoxResult<()> {
    let scratch = Scratch::new("trellis-jump-bench")?;
    let dir = scratch.path();
    let user = openssh::keygen(dir, "user").await?;
    let user_ca = openssh::keygen(dir, "user_ca").await?;
    let host_ca = openssh::keygen(dir, "host_ca").await?;
    let user_cert = openssh::sign(
        dir,
        &user_ca,
        &user,
        "user_alice",
        &CertSpec {
            identity: "alice",
            principals: &["alice"],
            validity: "-5m:+1h",
            host: false,
            options: &[],
        },
    )
    .await?;

    let authorized = [user.public_line()?];
    let xdc = Sshd::start(dir, "xdc", &authorized, "").await?;
    let openssh_jump = Sshd::start(dir, "openssh_jump", &authorized, "AllowTcpForwarding yes").await?;

    let jump_key = openssh::keygen(dir, "trellis_jump").await?;
    let jump_cert = openssh::sign(
        dir,
        &host_ca,
        &jump_key,
        "trellis_jump_cert",
        &CertSpec {
            identity: "jump",
            principals: &["trellis-jump"],
            validity: "-5m:+1h",
            host: true,
            options: &[],
        },
    )
    .await?;
    let mut config = JumpConfig::new(vec!["127.0.0.1:0".parse()?], jump_key.private_text()?);
    config.host_certificate = Some(std::fs::read_to_string(&jump_cert)?);
    config.user_ca_public_keys = vec![user_ca.public_line()?];
    let policy = BenchPolicy { key: user.public_line()?, xdc: xdc.addr };
    let jump = JumpHost::start(config, Arc::new(policy)).await?;
    let trellis_addr = jump.local_addrs()[0];

    let known_hosts = dir.join("known_hosts");
    std::fs::write(
        &known_hosts,
        format!(
            "@cert-authority trellis-jump {}\nopenssh-jump {}\nx0-proj {}\n",
            host_ca.public_line()?,
            openssh_jump.host_key.public_line()?,
            xdc.host_key.public_line()?
        ),
    )?;
    let hop = |alias: &str, addr: SocketAddr, user_name: &str, key_alias: &str| Hop {
        alias: alias.into(),
        host_name: Some(addr.ip().to_string()),
        port: Some(addr.port()),
        user: user_name.into(),
        identity: Some(user.private.clone()),
        host_key_alias: Some(key_alias.into()),
        ..Hop::default()
    };
    // The algorithms a 9.2 client negotiates with the Trellis jump, forced on the OpenSSH jump.
    let tuned = |mut h: Hop| {
        h.extra.push("Ciphers aes128-gcm@openssh.com".into());
        h.extra.push("KexAlgorithms curve25519-sha256".into());
        h
    };
    let jumped = |alias: &str, via: &str| Hop {
        proxy_jump: Some(via.into()),
        ..hop(alias, xdc.addr, "root", "x0-proj")
    };
    let hops = [
        Hop { certificate: Some(user_cert), ..hop("trellis", trellis_addr, "alice", "trellis-jump") },
        hop("openssh", openssh_jump.addr, "root", "openssh-jump"),
        tuned(hop("openssh-tuned", openssh_jump.addr, "root", "openssh-jump")),
        hop(DIRECT, xdc.addr, "root", "x0-proj"),
        jumped(VIA_OPENSSH, "openssh"),
        jumped(VIA_OPENSSH_TUNED, "openssh-tuned"),
        // The Trellis jump resolves the XDC by name, as in production.
        Hop { host_name: Some("x0-proj".into()), port: Some(22), ..jumped(VIA_TRELLIS, "trellis") },
    ];
    let ssh_config = dir.join("ssh_config");
    openssh::write_client_config(&ssh_config, &known_hosts, &hops)?;

    let paths: &[&str] = &args.paths;
    if args.hold_secs > 0 {
        println!("client configuration: {} (paths: {})", ssh_config.display(), ALL_PATHS.join(", "));
        tokio::time::sleep(Duration::from_secs(args.hold_secs)).await;
    }
    // Warm-up: page cache, binaries, and a check that every path works at all.
    for &path in paths {
        ssh_true(&ssh_config, path).await?;
    }

    println!("setup: {} runs of `ssh -F cfg HOST true` per path, interleaved", args.runs);
    let mut setup: HashMap<&str, Vec<f64>> = HashMap::new();
    for _ in 0..args.runs {
        for &path in paths {
            setup.entry(path).or_default().push(ssh_true(&ssh_config, path).await?);
        }
    }
    let setup_ms: HashMap<&str, f64> = setup.into_iter().map(|(p, v)| (p, median(v) * 1000.0)).collect();
    for &path in paths {
        println!("  {path:<16} median {:>7.1} ms", setup_ms[path]);
    }

    // The jump leg alone: `ssh -W` through each jump with stdin closed connects, opens the
    // channel, reaches the XDC's sshd and ends when it hangs up on the empty session.
    if paths.contains(&VIA_OPENSSH) && paths.contains(&VIA_TRELLIS) {
        let legs = [("openssh", format!("{}", xdc.addr)), ("trellis", "x0-proj:22".to_owned())];
        let mut leg_ms = HashMap::new();
        for _ in 0..args.runs {
            for (jump_host, target) in &legs {
                let ms = ssh_w(&ssh_config, jump_host, target).await? * 1000.0;
                leg_ms.entry(*jump_host).or_insert_with(Vec::new).push(ms);
            }
        }
        let leg_ms: HashMap<&str, f64> = leg_ms.into_iter().map(|(p, v)| (p, median(v))).collect();
        println!(
            "  jump leg alone (`ssh -W XDC JUMP`): OpenSSH {:.1} ms, Trellis {:.1} ms",
            leg_ms["openssh"], leg_ms["trellis"]
        );
    }

    let bytes = args.size_mib * 1024 * 1024;
    println!(
        "copy: {} MiB per transfer, {} rounds per path and direction, interleaved",
        args.size_mib, args.rounds
    );
    let mut up: HashMap<&str, Vec<f64>> = HashMap::new();
    let mut down: HashMap<&str, Vec<f64>> = HashMap::new();
    // CPU seconds per GiB copied (either direction): the jump's own, and the whole pipeline's.
    let mut jump_cpu: HashMap<&str, Vec<f64>> = HashMap::new();
    let mut total_cpu: HashMap<&str, Vec<f64>> = HashMap::new();
    let probe = cpu::Probe {
        xdc_sshd: xdc.pid().ok_or("the XDC sshd has exited")?,
        openssh_jump: openssh_jump.pid().ok_or("the OpenSSH jump has exited")?,
    };
    let gib = bytes as f64 / f64::from(1u32 << 30);
    for _ in 0..args.rounds {
        for &path in paths {
            let upload = format!(
                "head -c {bytes} /dev/zero | ssh -F '{}' {path} 'cat > /dev/null'",
                ssh_config.display()
            );
            let download =
                format!("ssh -F '{}' {path} 'head -c {bytes} /dev/zero' > /dev/null", ssh_config.display());
            for (script, table) in [(&upload, &mut up), (&download, &mut down)] {
                let before = probe.sample().await?;
                table.entry(path).or_default().push(bytes as f64 / shell(script).await? / 1e6);
                let used = probe.sample().await? - before;
                let jump = match path {
                    VIA_TRELLIS => used.trellis_jump,
                    VIA_OPENSSH | VIA_OPENSSH_TUNED => used.openssh_jump,
                    _ => 0.0,
                };
                jump_cpu.entry(path).or_default().push(jump / gib);
                total_cpu.entry(path).or_default().push(used.total / gib);
            }
        }
    }
    let up_mbs: HashMap<&str, f64> = up.into_iter().map(|(p, v)| (p, median(v))).collect();
    let down_mbs: HashMap<&str, f64> = down.into_iter().map(|(p, v)| (p, median(v))).collect();
    let jump_cpu: HashMap<&str, f64> = jump_cpu.into_iter().map(|(p, v)| (p, median(v))).collect();
    let total_cpu: HashMap<&str, f64> = total_cpu.into_iter().map(|(p, v)| (p, median(v))).collect();
    for &path in paths {
        println!(
            "  {path:<16} upload {:>6.1} MB/s  download {:>6.1} MB/s  CPU s/GiB: jump {:.2}, all {:.2}",
            up_mbs[path], down_mbs[path], jump_cpu[path], total_cpu[path]
        );
    }

    let stats = jump.stats();
    jump.shutdown().await;
    drop((xdc, openssh_jump));

    println!("ratios (goal: setup <= 0.8x OpenSSH jump, copy >= 1.2x OpenSSH jump):");
    let ratio = |what: &str, table: &HashMap<&str, f64>, a: &str, b: &str, label: &str| {
        if let (Some(a), Some(b)) = (table.get(a), table.get(b)) {
            println!("  {what:<8} {label:<28} {:.2}x", a / b);
        }
    };
    ratio("setup", &setup_ms, VIA_OPENSSH, DIRECT, "OpenSSH jump / direct");
    ratio("setup", &setup_ms, VIA_TRELLIS, DIRECT, "Trellis jump / direct");
    ratio("setup", &setup_ms, VIA_TRELLIS, VIA_OPENSSH, "Trellis jump / OpenSSH jump");
    ratio("setup", &setup_ms, VIA_TRELLIS, VIA_OPENSSH_TUNED, "Trellis jump / OpenSSH tuned");
    for (name, table) in [("upload", &up_mbs), ("download", &down_mbs)] {
        ratio(name, table, VIA_OPENSSH, DIRECT, "OpenSSH jump / direct");
        ratio(name, table, VIA_TRELLIS, DIRECT, "Trellis jump / direct");
        ratio(name, table, VIA_TRELLIS, VIA_OPENSSH, "Trellis jump / OpenSSH jump");
        ratio(name, table, VIA_TRELLIS, VIA_OPENSSH_TUNED, "Trellis jump / OpenSSH tuned");
    }
    // Lower is better here, so the ratio is OpenSSH's over ours, comparable with the others.
    ratio("CPU", &total_cpu, VIA_OPENSSH, VIA_TRELLIS, "pipeline OpenSSH / Trellis");
    ratio("CPU", &jump_cpu, VIA_OPENSSH, VIA_TRELLIS, "jump OpenSSH / Trellis");
    println!(
        "trellis jump counters: {} logins, {} channels, {} refusals",
        stats.logins,
        stats.channels_opened,
        stats.login_refusals + stats.channel_refusals
    );
    Ok(())
}

/// Seconds one `ssh HOST true` takes; an error if it fails.
async fn ssh_true(config: &Path, host: &str) -> BoxResult<f64> {
    let started = Instant::now();
    let run = openssh::run("ssh", config, &[host, "true"], Duration::from_secs(60)).await?;
    let elapsed = started.elapsed().as_secs_f64();
    if !run.ok() {
        return Err(format!("ssh {host} true failed: {}", run.stderr).into());
    }
    Ok(elapsed)
}

/// Seconds one `ssh -W target jump` with stdin closed takes.
async fn ssh_w(config: &Path, jump: &str, target: &str) -> BoxResult<f64> {
    let started = Instant::now();
    let run = openssh::run("ssh", config, &["-W", target, jump], Duration::from_secs(60)).await?;
    let elapsed = started.elapsed().as_secs_f64();
    if !run.stdout.starts_with("SSH-2.0-") {
        return Err(format!("ssh -W {target} {jump} did not reach the XDC: {run:?}").into());
    }
    Ok(elapsed)
}

/// Seconds a shell pipeline takes; an error if it fails.
async fn shell(script: &str) -> BoxResult<f64> {
    let started = Instant::now();
    let out = tokio::process::Command::new("bash")
        .args(["-o", "pipefail", "-c", script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .await?;
    let elapsed = started.elapsed().as_secs_f64();
    if !out.status.success() {
        return Err(format!("`{script}` failed: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    Ok(elapsed)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len() % 2 == 1 { values[mid] } else { (values[mid - 1] + values[mid]) / 2.0 }
}
