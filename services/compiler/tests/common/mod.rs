//! Shared set-up for the integration tests: a real compiler on the real venv.
#![allow(dead_code, unreachable_pub)]

use std::path::PathBuf;
use std::time::Duration;

use trellis_compiler::{Compiler, CompilerConfig, Limits};

/// The venv that scripts/setup.sh creates (override with TRELLIS_VENV).
pub fn venv() -> PathBuf {
    std::env::var_os("TRELLIS_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv"))
}

/// Small limits so hostile models fail fast.
pub fn test_limits() -> Limits {
    Limits {
        cpu: Duration::from_secs(2),
        wall: Duration::from_secs(5),
        memory_bytes: 256 * 1024 * 1024,
        processes: 32,
        output_bytes: 4 * 1024 * 1024,
        source_bytes: 256 * 1024,
        tmpfs_bytes: 8 * 1024 * 1024,
    }
}

pub fn config(limits: Limits, cgroup_name: &str) -> CompilerConfig {
    let venv = venv();
    let config = CompilerConfig::new(&venv);
    assert!(
        config.bwrap.exists(),
        "bubblewrap is missing at {}: run scripts/setup.sh (it installs the Debian package bubblewrap)",
        config.bwrap.display()
    );
    assert!(
        config.python.exists(),
        "the venv python is missing at {}: run scripts/setup.sh (it creates the venv with mergexp==0.3.0)",
        config.python.display()
    );
    CompilerConfig { limits, cgroup_name: cgroup_name.to_string(), max_concurrent: 4, ..config }
}

/// A compiler with [`test_limits`].
pub fn compiler() -> Compiler {
    compiler_with(test_limits(), "trellis-compiler-test")
}

pub fn compiler_with(limits: Limits, cgroup_name: &str) -> Compiler {
    match Compiler::new(config(limits, cgroup_name)) {
        Ok(c) => c,
        Err(e) => panic!(
            "cannot set up the compiler ({e}); run scripts/setup.sh to install bubblewrap and the venv"
        ),
    }
}

/// The hello-world model from the Merge docs.
pub const HELLO: &str = "\
from mergexp import *
net = Network('hello', addressing==ipv4, routing==static)
a, b, c = [net.node(n, proc.cores>=2, memory.capacity>=gb(4)) for n in ['a', 'b', 'c']]
net.connect([a, b], capacity==mbps(100), latency==ms(10))
net.connect([b, c], capacity==mbps(100), latency==ms(10))
experiment(net)
";

/// A generated model with `n` nodes in a chain (n - 1 links).
pub fn chain(n: usize) -> String {
    format!(
        "from mergexp import *
net = Network('chain{n}', addressing==ipv4, routing==static)
nodes = [net.node('n%d' % i, image=='2204', proc.cores>=1) for i in range({n})]
for i in range({n} - 1):
    net.connect([nodes[i], nodes[i + 1]], capacity==gbps(1), latency==us(100))
experiment(net)
"
    )
}
