//! Hostile models: each must hit its limit or find nothing to steal, with the
//! user-facing message asserted.

mod common;

use std::io::Write as _;
use std::net::TcpListener;
use std::time::{Duration, Instant};

use trellis_compiler::{CompileFailure, LimitKind};

fn model_message(err: &CompileFailure) -> &str {
    match err {
        CompileFailure::Model { message, .. } => message,
        other => panic!("expected a model error, got {other:?}"),
    }
}

#[tokio::test]
async fn no_network_not_even_the_hosts_loopback() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let compiler = common::compiler();

    let model = format!("import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=2)\n");
    let err = compiler.compile(&model).await.unwrap_err();
    assert_eq!(model_message(&err), "ConnectionRefusedError: [Errno 111] Connection refused");
    assert!(listener.accept().is_err(), "the host listener must not see a connection");

    let model = "import socket\nsocket.create_connection(('192.0.2.1', 80), timeout=2)\n";
    let err = compiler.compile(model).await.unwrap_err();
    assert_eq!(model_message(&err), "OSError: [Errno 101] Network is unreachable");
    assert_eq!(err.to_string(), "model.py line 2: OSError: [Errno 101] Network is unreachable");

    // The only interface is the sandbox's own loopback.
    let model = "import socket\nprint(sorted(n for _, n in socket.if_nameindex()))\n";
    let err = compiler.compile(model).await.unwrap_err();
    assert_eq!(err, CompileFailure::NoExperiment);
    let model =
        format!("import socket\nprint(sorted(n for _, n in socket.if_nameindex()))\n{}", common::HELLO);
    assert_eq!(compiler.compile(&model).await.unwrap().output, "['lo']\n");
}

#[tokio::test]
async fn host_secrets_are_not_visible() {
    // Stands in for the portal's data dir: a secret outside the sandbox.
    let data = tempfile::tempdir().unwrap();
    let secret = data.path().join("jwt-signing.key");
    std::fs::File::create(&secret).unwrap().write_all(b"TOP-SECRET-42").unwrap();
    let compiler = common::compiler();

    for path in ["/etc/shadow", secret.to_str().unwrap(), "/root/.bash_history"] {
        let model = format!("print(open({path:?}).read())\n");
        let err = compiler.compile(&model).await.unwrap_err();
        assert_eq!(
            model_message(&err),
            format!("FileNotFoundError: [Errno 2] No such file or directory: {path:?}").replace('"', "'")
        );
    }
    let model = format!("import os\nprint(os.path.exists({:?}), os.getuid(), os.getgid())\n", data.path());
    let model = format!("{model}{}", common::HELLO);
    assert_eq!(compiler.compile(&model).await.unwrap().output, "False 65534 65534\n");

    // What is there at all: / holds only the sandbox's own mounts (no /etc,
    // no /proc), and the only writable places are the two tmpfs mounts.
    let model = format!(
        "import os\nprint(sorted(os.listdir('/')))\nprint(os.listdir('/tmp'), os.getcwd())\n\
         for p in ('/usr/evil', '/evil', '/dev/evil', '/dev/shm/evil', '/proc/sys/kernel/hostname'):\n    \
         try:\n        open(p, 'w')\n    except OSError as e:\n        print(p, e.strerror)\n\
         open('/tmp/ok', 'w').write('x')\nopen('/compile/ok', 'w').write('x')\n{}",
        common::HELLO
    );
    let out = compiler.compile(&model).await.unwrap().output;
    let mut lines = out.lines();
    let root: Vec<&str> =
        lines.next().unwrap().trim_matches(['[', ']']).split(", ").map(|e| e.trim_matches('\'')).collect();
    // Besides bwrap's own entries, only the first components of the venv and
    // the Python install (mounted at their host paths) may appear.
    let first = |p: std::path::PathBuf| {
        p.canonicalize().unwrap().iter().nth(1).unwrap().to_string_lossy().into_owned()
    };
    let mut allowed: Vec<String> =
        ["bin", "compile", "dev", "lib", "lib64", "sbin", "tmp", "usr"].map(String::from).to_vec();
    allowed.push(first(common::venv()));
    allowed.push(first(common::config(common::test_limits(), "unused").python));
    for entry in &root {
        assert!(allowed.iter().any(|a| a == entry), "unexpected /{entry} in the sandbox: {root:?}");
    }
    for required in ["compile", "tmp", "usr", "dev"] {
        assert!(root.contains(&required), "{root:?}");
    }
    for absent in ["etc", "proc", "sys", "home", "var", "run"] {
        assert!(!root.contains(&absent), "{root:?}");
    }
    // /tmp is the sandbox's own tmpfs; it holds nothing but the mount points bwrap makes when
    // the venv or Python itself lives under the host's /tmp (a checkout in /tmp, as in CI).
    let under_tmp = |p: std::path::PathBuf| {
        let p = p.canonicalize().unwrap();
        p.strip_prefix("/tmp")
            .ok()
            .and_then(|rest| rest.iter().next())
            .map(|c| format!("'{}'", c.to_string_lossy()))
    };
    let mut tmp: Vec<String> =
        [under_tmp(common::venv()), under_tmp(common::config(common::test_limits(), "unused").python)]
            .into_iter()
            .flatten()
            .collect();
    tmp.sort();
    tmp.dedup();
    assert_eq!(lines.next(), Some(format!("[{}] /compile", tmp.join(", ")).as_str()));
    for p in ["/usr/evil", "/evil", "/dev/evil", "/dev/shm/evil"] {
        assert_eq!(lines.next(), Some(format!("{p} Read-only file system").as_str()));
    }
    assert_eq!(lines.next(), Some("/proc/sys/kernel/hostname No such file or directory"));
    assert_eq!(lines.next(), None);
    drop(data);
}

/// The CPU tests get a long wall limit, so on a busy machine (where 2 s of
/// CPU can take more than 5 s) only the CPU limit can stop them.
fn cpu_test_compiler() -> trellis_compiler::Compiler {
    let limits = trellis_compiler::Limits { wall: Duration::from_secs(30), ..common::test_limits() };
    common::compiler_with(limits, "trellis-compiler-test")
}

#[tokio::test]
async fn infinite_loop_hits_the_cpu_limit() {
    let err = cpu_test_compiler().compile("while True:\n    pass\n").await.unwrap_err();
    assert_eq!(err.limit(), Some(LimitKind::Cpu), "{err:?}");
    assert_eq!(err.to_string(), "the model used more than 2 s of CPU time");
}

#[tokio::test]
async fn cpu_limit_holds_even_if_the_model_ignores_sigxcpu() {
    let model = "import signal\nsignal.signal(signal.SIGXCPU, signal.SIG_IGN)\nwhile True:\n    pass\n";
    let err = cpu_test_compiler().compile(model).await.unwrap_err();
    assert_eq!(err.limit(), Some(LimitKind::Cpu), "{err:?}");
}

#[tokio::test]
async fn sleeping_hits_the_wall_limit() {
    let started = Instant::now();
    let err = common::compiler().compile("import time\ntime.sleep(1000)\n").await.unwrap_err();
    assert_eq!(err.limit(), Some(LimitKind::Wall), "{err:?}");
    assert_eq!(err.to_string(), "the model ran longer than the 5 s time limit");
    let took = started.elapsed();
    assert!(took >= Duration::from_secs(5) && took < Duration::from_secs(8), "{took:?}");
}

#[tokio::test]
async fn memory_bomb_hits_the_memory_limit() {
    let model = "hoard = []\nwhile True:\n    hoard.append(bytearray(16 * 1024 * 1024))\n";
    let err = common::compiler().compile(model).await.unwrap_err();
    assert_eq!(err.limit(), Some(LimitKind::Memory), "{err:?}");
    assert_eq!(err.to_string(), "the model used more than 256 MiB of memory");
}

#[tokio::test]
async fn forked_memory_bomb_is_capped_as_a_whole() {
    // Each process stays under its own address-space limit; together they
    // would exceed it, which the memory cgroup stops.
    let model = "\
import os, time
for _ in range(6):
    if os.fork() == 0:
        hoard = bytearray(150 * 1024 * 1024)
        for i in range(0, len(hoard), 4096):
            hoard[i] = 1
        time.sleep(60)
os.wait()
";
    let err = common::compiler().compile(model).await.unwrap_err();
    assert_eq!(err.limit(), Some(LimitKind::Memory), "{err:?}");
}

#[tokio::test]
async fn huge_output_hits_the_output_limit() {
    let started = Instant::now();
    let err = common::compiler().compile("while True:\n    print('x' * 65536)\n").await.unwrap_err();
    assert_eq!(err.limit(), Some(LimitKind::Output), "{err:?}");
    assert_eq!(err.to_string(), "the model wrote more than 4194304 bytes of output");
    assert!(started.elapsed() < Duration::from_secs(4));
}

#[tokio::test]
async fn huge_network_hits_the_output_limit() {
    // 5 MiB of XIR from a single node name: over the 4 MiB cap.
    let model =
        "from mergexp import *\nnet = Network('big')\nnet.node('n' * (5 * 1024 * 1024))\nexperiment(net)\n";
    let err = common::compiler().compile(model).await.unwrap_err();
    assert_eq!(err.limit(), Some(LimitKind::Output), "{err:?}");
}

#[tokio::test]
async fn writing_to_the_result_channel_is_caught() {
    // The model can find the driver's result fd; garbage there must be
    // rejected, not decoded into a network.
    let model = "import os\nfor fd in range(3, 20):\n    try:\n        os.write(fd, b'{\"status\":\"ok\",\"xir_len\":3}\\nabc')\n    except OSError:\n        pass\n";
    let err = common::compiler().compile(model).await.unwrap_err();
    assert!(err.to_string().contains("malformed") || err.to_string().contains("valid XIR"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn good_compile_succeeds_next_to_a_hostile_one() {
    let compiler = cpu_test_compiler();
    let hostile = async {
        let out = compiler.compile("while True:\n    pass\n").await;
        (out, Instant::now())
    };
    let good = async {
        // Start while the loop is already burning CPU.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let out = compiler.compile(common::HELLO).await;
        (out, Instant::now())
    };
    let ((bad, bad_done), (good, good_done)) = tokio::join!(hostile, good);
    assert_eq!(bad.unwrap_err().limit(), Some(LimitKind::Cpu));
    let good = good.unwrap();
    assert_eq!((good.nodes, good.links), (3, 2));
    assert!(good_done < bad_done, "the good compile waited for the hostile one");
}
