//! Benchmark of the realization engine (`trellis-embed`) on generated testbeds and
//! experiments, with METIS (`gpmetis`) as the reference for how few links must cross racks.
//!
//! Every case runs in a child process of this program, so that the peak memory it reports
//! (`VmHWM` from `/proc/self/status`) is that case's alone. Run in release mode:
//! `cargo run --release -p trellis-realize-bench`.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use trellis_embed::check::{check_embedding, check_occupancy};
use trellis_embed::generate::{self, ExperimentSpec, FacilitySpec, GBPS};
use trellis_embed::{Occupancy, Options, Request, Testbed, embed};

const HOSTS_PER_RACK: u32 = 32;
/// Embeddings timed per case; the table shows the median.
const RUNS: usize = 5;

struct Case {
    nodes: u32,
    hosts: u32,
    /// 10 Gb/s uplinks from each leaf to the spines.
    uplinks: u32,
}

const CASES: [Case; 4] = [
    Case { nodes: 100, hosts: 512, uplinks: 4 },
    Case { nodes: 400, hosts: 512, uplinks: 4 },
    Case { nodes: 400, hosts: 2048, uplinks: 8 },
    Case { nodes: 1000, hosts: 1024, uplinks: 8 },
];

/// Emulab `assign` on comparable inputs, from the issue that set the goals.
const ASSIGN_REFERENCE: [(&str, &str, &str, &str); 2] =
    [("400 on 2,048", "159 s", "231", "131–137"), ("1,000 on 1,024", "180 s", "526", "379")];

/// What one case measured (one line of the child's output).
#[derive(Debug, Default)]
struct Measured {
    links: usize,
    build: Duration,
    embed_median: Duration,
    embed_min: Duration,
    peak_kib: u64,
    violations: usize,
    cross: usize,
    racks: usize,
    metis: Option<u64>,
    metis_note: String,
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--case") {
        let index: usize = args.get(i + 1).context("--case needs a number")?.parse()?;
        let case = CASES.get(index).context("no such case")?;
        return run_case(case);
    }
    let exe = std::env::current_exe()?;
    println!("trellis-embed realization benchmark ({} runs per case, median shown)", RUNS);
    println!(
        "testbed: racks of {HOSTS_PER_RACK} hosts, 4 x 1 Gb/s experiment ports each, 4 spines; \
         experiments: random connected graphs, degree <= 4, ~1.4 links/node, 100 Mb/s links, bare metal\n"
    );
    let mut rows = Vec::new();
    for (i, case) in CASES.iter().enumerate() {
        let out = Command::new(&exe).args(["--case", &i.to_string()]).output()?;
        if !out.status.success() {
            bail!("case {i} failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let line = text.lines().find(|l| l.starts_with("RESULT ")).context("case printed no result")?;
        rows.push((case, parse(line)?));
    }

    println!(
        "{:<16} {:>6} {:>6} {:>5} {:>10} {:>11} {:>10} {:>9} {:>10} {:>10} {:>6} {:>8}",
        "case",
        "links",
        "racks",
        "upl",
        "build tb",
        "embed med",
        "embed min",
        "peak MB",
        "violations",
        "cross-rack",
        "METIS",
        "ours/M"
    );
    let mut metis_missing = None;
    for (case, m) in &rows {
        let (metis, ratio) = match m.metis {
            Some(cut) if cut > 0 => (cut.to_string(), format!("{:.2}", m.cross as f64 / cut as f64)),
            Some(cut) => (cut.to_string(), "-".into()),
            None => {
                metis_missing = Some(m.metis_note.clone());
                ("n/a".into(), "n/a".into())
            }
        };
        println!(
            "{:<16} {:>6} {:>6} {:>5} {:>8.1}ms {:>9.1}ms {:>8.1}ms {:>9.1} {:>10} {:>10} {:>6} {:>8}",
            format!("{} on {}", case.nodes, case.hosts),
            m.links,
            m.racks,
            case.uplinks,
            ms(m.build),
            ms(m.embed_median),
            ms(m.embed_min),
            m.peak_kib as f64 / 1024.0,
            m.violations,
            m.cross,
            metis,
            ratio
        );
    }
    if let Some(note) = metis_missing {
        println!("\nMETIS: n/a — {note}");
    } else {
        println!(
            "\nMETIS: `gpmetis <graph> <racks used>` (k-way, default 3% imbalance) on the same experiment graph."
        );
    }
    println!("\nEmulab assign — measured elsewhere, not in this run (from the issue, for context):");
    println!("{:<16} {:>10} {:>12} {:>10}", "case", "time", "cross-rack", "METIS");
    for (case, time, cross, metis) in ASSIGN_REFERENCE {
        println!("{case:<16} {time:>10} {cross:>12} {metis:>10}");
    }
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn parse(line: &str) -> Result<Measured> {
    let mut m = Measured::default();
    for field in line.split_whitespace().skip(1) {
        let (key, value) = field.split_once('=').context("malformed result")?;
        let micros = || value.parse::<u64>().map(Duration::from_micros);
        match key {
            "links" => m.links = value.parse()?,
            "build_us" => m.build = micros()?,
            "embed_median_us" => m.embed_median = micros()?,
            "embed_min_us" => m.embed_min = micros()?,
            "peak_kib" => m.peak_kib = value.parse()?,
            "violations" => m.violations = value.parse()?,
            "cross" => m.cross = value.parse()?,
            "racks" => m.racks = value.parse()?,
            "metis" => m.metis = value.parse().ok(),
            "metis_note" => m.metis_note = value.replace('_', " "),
            _ => {}
        }
    }
    Ok(m)
}

fn run_case(case: &Case) -> Result<()> {
    let mut spec = FacilitySpec::new("bench", case.hosts / HOSTS_PER_RACK, HOSTS_PER_RACK);
    spec.spines = 4;
    spec.uplinks_per_leaf = case.uplinks;
    spec.uplink_capacity = 10 * GBPS;
    let facility = generate::facility(&spec);
    let network = generate::experiment(&ExperimentSpec::new("bench", case.nodes, 42));

    let started = Instant::now();
    let testbed = Testbed::from_facilities(std::slice::from_ref(&facility))?;
    let build = started.elapsed();
    let request = Request::from_network(&network)?;
    let occupancy = Occupancy::new();
    let options = Options { eligible: None, seed: 7 };

    let mut times = Vec::with_capacity(RUNS);
    let mut embedding = None;
    for _ in 0..RUNS {
        let started = Instant::now();
        let result = embed(&testbed, &occupancy, &request, &options);
        times.push(started.elapsed());
        embedding = Some(result.map_err(|e| anyhow::anyhow!("{e}: {:?}", e.diagnostics))?);
    }
    let embedding = embedding.context("no run")?;
    times.sort();

    let mut violations = check_embedding(&testbed, &occupancy, &request, &embedding, &options);
    let mut after = occupancy.clone();
    for claim in &embedding.claims {
        after.add(claim);
    }
    violations.extend(check_occupancy(&testbed, &after));
    for v in &violations {
        eprintln!("violation: {v}");
    }
    let racks: BTreeSet<u32> = embedding.nodes.iter().map(|n| testbed.host_rack[n.host.0 as usize]).collect();
    let (metis, note) = match metis_cut(&request, racks.len()) {
        Ok(cut) => (cut.to_string(), String::new()),
        Err(e) => ("n/a".to_string(), e.to_string().replace(' ', "_")),
    };
    println!(
        "RESULT links={} build_us={} embed_median_us={} embed_min_us={} peak_kib={} violations={} cross={} \
         racks={} metis={metis} metis_note={note}",
        request.links.len(),
        build.as_micros(),
        times[times.len() / 2].as_micros(),
        times[0].as_micros(),
        peak_kib()?,
        violations.len(),
        embedding.cross_rack_links,
        racks.len(),
    );
    Ok(())
}

/// Peak resident memory of this process.
fn peak_kib() -> Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).context("no VmHWM in /proc/self/status")?;
    Ok(line.split_whitespace().nth(1).context("malformed VmHWM")?.parse()?)
}

/// The edge cut `gpmetis` finds splitting the experiment graph into `k` parts.
fn metis_cut(request: &Request, k: usize) -> Result<u64> {
    if k < 2 {
        return Ok(0);
    }
    let n = request.nodes.len();
    let mut adjacency: Vec<BTreeSet<u32>> = vec![BTreeSet::new(); n];
    for link in &request.links {
        for a in &link.endpoints {
            for b in &link.endpoints {
                if a.node != b.node {
                    adjacency[a.node as usize].insert(b.node + 1);
                }
            }
        }
    }
    let edges: usize = adjacency.iter().map(|a| a.len()).sum::<usize>() / 2;
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("experiment.graph");
    let mut text = format!("{n} {edges}\n");
    for neighbours in &adjacency {
        let line: Vec<String> = neighbours.iter().map(|v| v.to_string()).collect();
        text.push_str(&line.join(" "));
        text.push('\n');
    }
    std::fs::write(&path, text)?;
    run_gpmetis(&path, k)
}

fn run_gpmetis(path: &Path, k: usize) -> Result<u64> {
    let out = match Command::new("gpmetis").arg(path).arg(k.to_string()).output() {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            bail!("gpmetis is not installed (Debian package metis; scripts/setup.sh installs it)")
        }
        Err(e) => return Err(e.into()),
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().find(|l| l.contains("Edgecut")).context("gpmetis printed no edge cut")?;
    let value = line.split("Edgecut:").nth(1).context("malformed gpmetis output")?;
    let digits: String = value.trim_start().chars().take_while(|c| c.is_ascii_digit()).collect();
    Ok(digits.parse()?)
}
