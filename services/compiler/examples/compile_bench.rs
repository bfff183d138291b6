//! Sandbox cost per compile: `cargo run -p trellis-compiler --example compile_bench [RUNS]`.
//!
//! For hello-world and a generated 1,000-node model it prints the medians of
//! the sandbox start (spawn to the driver's first statement) and Python time
//! (driver start to exit) of real sandboxed compiles, next to the same driver
//! run without any sandbox, and compares a sandboxed `python -I -c pass` with
//! a bare one. Set TRELLIS_VENV to use a venv other than `<repo>/.venv`.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use trellis_compiler::{Compiler, CompilerConfig};

const HELLO: &str = "\
from mergexp import *
net = Network('hello', addressing==ipv4, routing==static)
a, b, c = [net.node(n, proc.cores>=2, memory.capacity>=gb(4)) for n in ['a', 'b', 'c']]
net.connect([a, b], capacity==mbps(100), latency==ms(10))
net.connect([b, c], capacity==mbps(100), latency==ms(10))
experiment(net)
";

const DRIVER: &str = include_str!("../driver/compile.py");

fn chain(n: usize) -> String {
    format!(
        "from mergexp import *\nnet = Network('chain')\n\
         nodes = [net.node('n%d' % i, image=='2204') for i in range({n})]\n\
         for i in range({n} - 1):\n    net.connect([nodes[i], nodes[i + 1]], capacity==gbps(1))\n\
         experiment(net)\n"
    )
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:7.1} ms", d.as_secs_f64() * 1000.0)
}

/// The driver and model in a plain Python process: no sandbox at all.
fn unsandboxed(python: &Path, model: &str) -> anyhow::Result<Duration> {
    let dir = tempfile::tempdir()?;
    let started = Instant::now();
    let mut child = Command::new(python)
        .args(["-I", "-B", "-c", DRIVER])
        .current_dir(dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    child.stdin.take().context("stdin")?.write_all(model.as_bytes())?;
    let out = child.wait_with_output()?;
    let took = started.elapsed();
    if !out.stdout.windows(14).any(|w| w == b"\"status\": \"ok\"") {
        bail!("unsandboxed driver failed: {}", String::from_utf8_lossy(&out.stdout));
    }
    Ok(took)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let runs: usize = std::env::args().nth(1).map(|s| s.parse()).transpose()?.unwrap_or(15);
    let venv = std::env::var_os("TRELLIS_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv"));
    let config =
        CompilerConfig { cgroup_name: "trellis-compiler-bench".into(), ..CompilerConfig::new(&venv) };
    let python = config.python.clone();
    let compiler = Compiler::new(config)?;
    println!("{runs} runs each, medians; mergexp {}", compiler.mergexp_version());

    let mut bare = Vec::new();
    let mut boxed = Vec::new();
    for _ in 0..runs {
        let started = Instant::now();
        let status = Command::new(&python).args(["-I", "-c", "pass"]).status()?;
        bare.push(started.elapsed());
        if !status.success() {
            bail!("python -c pass failed");
        }
        boxed.push(compiler.check_sandbox().await?);
    }
    let (bare, boxed) = (median(bare), median(boxed));
    let overhead = boxed.saturating_sub(bare);
    println!("python -I -c pass:  bare {}   sandboxed {}", ms(bare), ms(boxed));
    println!(
        "sandbox overhead:   {} per run = {:.2}x a bare python start",
        ms(overhead),
        overhead.as_secs_f64() / bare.as_secs_f64()
    );

    for (name, model) in [("hello-world", HELLO.to_string()), ("1000-node chain", chain(1000))] {
        let (mut start, mut py, mut total, mut plain) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for _ in 0..runs {
            let out = compiler.compile(&model).await?;
            start.push(out.timings.sandbox_start);
            py.push(out.timings.python);
            total.push(out.timings.total);
            plain.push(unsandboxed(&python, &model)?);
        }
        let (total, plain) = (median(total), median(plain));
        println!(
            "{name:16}  sandbox start {}  python {}  total {}  | unsandboxed {}  => sandbox adds {}",
            ms(median(start)),
            ms(median(py)),
            ms(total),
            ms(plain),
            ms(total.saturating_sub(plain))
        );
    }
    Ok(())
}
