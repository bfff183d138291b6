//! Process containment, checked from the host through /proc: a fork bomb is
//! capped, the host keeps working, and no sandbox process outlives its
//! compile, whether it ends normally, by a limit or by cancellation.
//!
//! Tests here are serialized (they count this test process's descendants).

mod common;

use std::collections::HashMap;
use std::fs;
use std::time::{Duration, Instant};

use tokio::sync::Mutex;
use trellis_compiler::{Compiler, LimitKind};

static SERIAL: Mutex<()> = Mutex::const_new(());
const CGROUP_NAME: &str = "trellis-compiler-proctest";

fn compiler() -> Compiler {
    common::compiler_with(common::test_limits(), CGROUP_NAME)
}

/// PIDs of every live descendant of this test process.
fn descendants() -> Vec<i32> {
    let mut parent_of = HashMap::new();
    for entry in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else { continue };
        let Ok(stat) = fs::read_to_string(entry.path().join("stat")) else { continue };
        // The command name may contain spaces; fields resume after the ')'.
        let Some((_, rest)) = stat.rsplit_once(')') else { continue };
        let fields: Vec<_> = rest.split_whitespace().collect();
        if fields.first() == Some(&"Z") {
            continue;
        }
        if let Some(ppid) = fields.get(1).and_then(|p| p.parse::<i32>().ok()) {
            parent_of.insert(pid, ppid);
        }
    }
    let me = std::process::id() as i32;
    parent_of
        .keys()
        .copied()
        .filter(|&pid| {
            let mut cur = pid;
            for _ in 0..64 {
                match parent_of.get(&cur) {
                    Some(&p) if p == me => return true,
                    Some(&p) if p > 1 => cur = p,
                    _ => return false,
                }
            }
            false
        })
        .collect()
}

/// PIDs of every process on the host in one of this file's cgroups.
fn in_test_cgroups() -> Vec<i32> {
    let needle = format!("/{CGROUP_NAME}/");
    fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let pid = e.file_name().to_string_lossy().parse::<i32>().ok()?;
            let cg = fs::read_to_string(e.path().join("cgroup")).ok()?;
            cg.contains(&needle).then_some(pid)
        })
        .collect()
}

/// Leftover per-compile cgroup directories of this test process.
fn leftover_cgroup_dirs() -> Vec<String> {
    let prefix = format!("{}-", std::process::id());
    ["/sys/fs/cgroup/pids", "/sys/fs/cgroup/memory", "/sys/fs/cgroup/cpuacct", "/sys/fs/cgroup"]
        .iter()
        .filter_map(|root| fs::read_dir(format!("{root}/{CGROUP_NAME}")).ok())
        .flat_map(|dir| dir.flatten())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path().display().to_string())
        .filter(|p| p.rsplit('/').next().is_some_and(|leaf| leaf.starts_with(&prefix)))
        .collect()
}

async fn assert_nothing_left() {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let (d, c, dirs) = (descendants(), in_test_cgroups(), leftover_cgroup_dirs());
        if d.is_empty() && c.is_empty() && dirs.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "left behind: descendants {d:?}, in cgroup {c:?}, cgroup dirs {dirs:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fork_bomb_is_capped_and_leaves_nothing() {
    let _serial = SERIAL.lock().await;
    let compiler = compiler();
    assert_nothing_left().await;

    // Sample the host's view while the bomb runs.
    let sampling = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let sampler = {
        let sampling = sampling.clone();
        std::thread::spawn(move || {
            let (mut peak_desc, mut peak_cg, mut host_ok) = (0, 0, true);
            while sampling.load(std::sync::atomic::Ordering::Relaxed) {
                peak_desc = peak_desc.max(descendants().len());
                peak_cg = peak_cg.max(in_test_cgroups().len());
                // The host can still start processes.
                host_ok &= std::process::Command::new("/bin/true").status().is_ok_and(|s| s.success());
                std::thread::sleep(Duration::from_millis(5));
            }
            (peak_desc, peak_cg, host_ok)
        })
    };
    let bomb = compiler.compile("import os\nwhile True:\n    os.fork()\n");
    let good = async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        compiler.compile(common::HELLO).await
    };
    let (bomb, good) = tokio::join!(bomb, good);
    sampling.store(false, std::sync::atomic::Ordering::Relaxed);
    let (peak_desc, peak_cg, host_ok) = sampler.join().unwrap();

    let err = bomb.unwrap_err();
    assert_eq!(err.limit(), Some(LimitKind::Processes), "{err:?}");
    assert_eq!(err.to_string(), "the model tried to run more than 32 processes");
    assert_eq!(good.unwrap().nodes, 3, "a good compile next to the bomb still works");
    assert!(host_ok, "the host could not start /bin/true during the bomb");
    // 32 model processes + pid 1 + outer bwrap per sandbox, two sandboxes
    // (the bomb and the good compile), plus /bin/true and a spare.
    assert!(peak_cg <= 34 + 34, "cgroup members peaked at {peak_cg}");
    assert!(peak_desc <= 34 + 34 + 2, "descendants peaked at {peak_desc}");
    assert!(peak_cg >= 8, "the sampler should have seen the bomb ({peak_cg})");
    eprintln!("fork bomb: peak {peak_cg} processes in the test cgroups, {peak_desc} descendants");
    assert_nothing_left().await;

    // The last compiler using the cgroup name removes its base directories.
    drop(compiler);
    for root in ["/sys/fs/cgroup/pids", "/sys/fs/cgroup/memory", "/sys/fs/cgroup/cpuacct", "/sys/fs/cgroup"] {
        let base = std::path::Path::new(root).join(CGROUP_NAME);
        assert!(!base.exists(), "{} is left behind", base.display());
    }
}

#[tokio::test]
async fn daemonized_children_die_with_a_successful_compile() {
    let _serial = SERIAL.lock().await;
    let model = format!(
        "import os, time\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n        time.sleep(300)\n    os._exit(0)\n{}",
        common::HELLO
    );
    let out = compiler().compile(&model).await.unwrap();
    assert_eq!(out.nodes, 3);
    assert_nothing_left().await;
}

#[tokio::test]
async fn wall_limit_kill_leaves_nothing() {
    let _serial = SERIAL.lock().await;
    let model =
        "import os, time\nfor _ in range(5):\n    if os.fork() == 0:\n        break\ntime.sleep(1000)\n";
    let err = compiler().compile(model).await.unwrap_err();
    assert_eq!(err.limit(), Some(LimitKind::Wall));
    assert_nothing_left().await;
}

#[tokio::test]
async fn cancelled_compile_leaves_nothing() {
    let _serial = SERIAL.lock().await;
    let compiler = compiler();
    let model = "import os, time\nos.fork()\ntime.sleep(1000)\n";
    let cancelled = tokio::time::timeout(Duration::from_millis(700), compiler.compile(model)).await;
    assert!(cancelled.is_err(), "the compile should still have been running");
    assert_nothing_left().await;
}

/// Why the pids cgroup is needed: bubblewrap run as root maps the sandbox
/// user to host root, and the kernel never applies RLIMIT_NPROC to root, so
/// `prlimit --nproc` alone lets a sandboxed process fork far past it.
#[tokio::test]
async fn rlimit_nproc_alone_does_not_bind_the_root_mapped_sandbox_user() {
    let _serial = SERIAL.lock().await;
    if !is_root() {
        eprintln!("not root: RLIMIT_NPROC does bind here; nothing to show");
        return;
    }
    let config = common::config(common::test_limits(), CGROUP_NAME);
    let python_home = fs::canonicalize(&config.python).unwrap();
    let python_home = python_home.parent().unwrap().parent().unwrap();
    let venv = fs::canonicalize(&config.venv).unwrap();
    let out = std::process::Command::new(&config.bwrap)
        .args(["--unshare-all", "--unshare-user", "--uid", "65534", "--gid", "65534", "--die-with-parent"])
        .args(["--ro-bind", "/usr", "/usr", "--symlink", "usr/lib", "/lib", "--symlink", "usr/lib64", "/lib64"])
        .arg("--ro-bind")
        .args([python_home, python_home])
        .arg("--ro-bind")
        .args([&venv, &venv])
        .args(["--proc", "/proc", "--dev", "/dev", "--"])
        .arg(&config.prlimit)
        .arg("--nproc=5")
        .arg(venv.join("bin/python"))
        .args(["-c", "import os, time\nn = 0\nfor _ in range(20):\n    if os.fork() == 0:\n        time.sleep(1); os._exit(0)\n    n += 1\nprint(os.getuid(), n)"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "65534 20",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn is_root() -> bool {
    fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .is_some_and(|ids| ids.split_whitespace().nth(1) == Some("0"))
}
