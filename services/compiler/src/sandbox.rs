//! Running Python inside bubblewrap with limits, and reading what comes out.
//!
//! The process tree, host side first:
//!
//! ```text
//! /bin/sh -c JOIN            writes its PID to each cgroup.procs, then execs
//!   bwrap ...                outer bubblewrap (the child tokio waits for)
//!     bwrap (pid 1)          reaper inside the new pid namespace
//!       prlimit ... python   rlimits set, then exec'd into the venv's Python
//! ```
//!
//! Why there is no `/proc`: bubblewrap run as root maps the sandbox user to
//! host uid 0, and `/proc/sys` write checks look at that host uid, so with a
//! writable procfs the model could change host-wide sysctls. Python needs no
//! procfs, so none is mounted.
//!
//! Isolation: every namespace is unshared (no network, own pid/ipc/uts/cgroup
//! namespace), the sandbox user is uid/gid 65534 in a new user namespace with
//! further user namespaces disabled, and only `/usr`, the venv and the Python
//! installation are mounted, read-only. `/tmp` and the working dir `/compile` are
//! small private tmpfs mounts and the only writable places (the sandbox's
//! root and `/dev` are remounted read-only); nothing else of the host is
//! visible.
//!
//! Teardown: `--die-with-parent` SIGKILLs the sandbox when the outer bwrap
//! dies, the pid namespace dies with its pid 1, and the cgroup is swept with
//! SIGKILL before it is removed, so no process outlives a compile.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, kill_process_group};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;
use tokio::sync::Notify;

use crate::cgroup::Cgroups;
use crate::config::Limits;
use crate::outcome::{JOIN_FAILED, Killed, Run};

/// The driver script, written into the sandbox as the `-c` program.
pub(crate) const DRIVER: &str = include_str!("../driver/compile.py");

/// Shell that joins the cgroups given before `--`, then execs the rest.
const JOIN: &str = "while [ \"$1\" != -- ]; do echo $$ > \"$1\" || exit 125; shift; done; shift; exec \"$@\"";
/// Room for the driver's JSON header on top of the XIR itself.
const HEADER_ROOM: u64 = 256 * 1024 + 1;
/// How much of the model's printed output is kept for messages.
const CONSOLE_TAIL: usize = 16 * 1024;
/// How long to wait for the pipes and the process after a kill.
const KILL_GRACE: Duration = Duration::from_secs(5);
/// The model's working directory (a tmpfs) and `HOME`.
const WORK_DIR: &str = "/compile";
/// Sandbox user and group (nobody/nogroup).
const SANDBOX_ID: &str = "65534";

/// A configured sandbox; cheap to share.
#[derive(Debug)]
pub(crate) struct Sandbox {
    pub(crate) bwrap: PathBuf,
    pub(crate) prlimit: PathBuf,
    /// The venv's interpreter, as a path valid inside the sandbox.
    pub(crate) python: PathBuf,
    /// Host directories bound read-only at the same path (besides `/usr`).
    pub(crate) mounts: Vec<PathBuf>,
    pub(crate) limits: Limits,
}

/// A finished run and its timestamps.
#[derive(Debug)]
pub(crate) struct Finished {
    pub(crate) run: Run,
    pub(crate) spawned: Instant,
    /// When the driver's start byte arrived.
    pub(crate) ready: Option<Instant>,
    pub(crate) ended: Instant,
}

impl Sandbox {
    /// Runs `python <python_args>` in the sandbox with `stdin` as its input.
    /// `Err` means the host side failed (no model output to judge).
    pub(crate) async fn run(
        &self,
        cgroups: &Cgroups,
        python_args: &[&str],
        stdin: &[u8],
    ) -> Result<Finished, String> {
        let limits = &self.limits;
        // pid 1 and the outer bwrap are in the cgroup as well.
        let max_tasks = u64::from(limits.processes) + 2;
        // The two tmpfs mounts are charged to the cgroup too, plus bwrap.
        let budget =
            limits.memory_bytes.saturating_add(limits.tmpfs_bytes.saturating_mul(2)).saturating_add(32 << 20);
        let cgroup = cgroups.create(max_tasks, budget)?;

        let mut cmd = self.command(&cgroup.procs_files(), python_args);
        let spawned = Instant::now();
        let mut child = cmd.spawn().map_err(|e| format!("spawning {}: {e}", self.bwrap.display()))?;
        let pgid = child.id().and_then(|id| i32::try_from(id).ok()).and_then(Pid::from_raw);
        let (Some(mut input), Some(output), Some(console)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err("the sandbox's pipes were not set up".into());
        };

        let over = Notify::new();
        let feed = async {
            // The driver reads all of stdin first; EPIPE only means it died.
            let _ = input.write_all(stdin).await;
            drop(input);
        };
        let result_cap = limits.output_bytes.saturating_add(HEADER_ROOM);
        let work = async {
            tokio::join!(
                feed,
                read_capped(output, result_cap, &over),
                read_tail(console, limits.output_bytes, &over),
                child.wait()
            )
        };
        tokio::pin!(work);

        let deadline = tokio::time::Instant::from_std(spawned + limits.wall);
        let mut killed = None;
        let mut grace = None;
        let ((), (result, ready, result_over), (console_tail, console_over), status) = loop {
            tokio::select! {
                done = &mut work => break done,
                () = tokio::time::sleep_until(deadline), if killed.is_none() => {
                    killed = Some(Killed::Wall);
                }
                () = over.notified(), if killed.is_none() => {
                    killed = Some(Killed::Output);
                }
                () = sleep_until_opt(grace) => {
                    cgroup.kill_all();
                    return Err(format!("the sandbox did not exit within {KILL_GRACE:?} of being killed"));
                }
            }
            if grace.is_none() {
                grace = Some(tokio::time::Instant::now() + KILL_GRACE);
                if let Some(pgid) = pgid {
                    // ESRCH: it exited on its own in the meantime.
                    let _ = kill_process_group(pgid, Signal::KILL);
                }
                cgroup.kill_all();
            }
        };
        let ended = Instant::now();
        if killed.is_none() && (result_over || console_over) {
            killed = Some(Killed::Output);
        }
        let status = status.map_err(|e| format!("waiting for the sandbox: {e}"))?;

        let usage = cgroup.usage();
        let left = cgroup.remaining();
        if left > 0 {
            tracing::warn!(left, "sandbox processes outlived bubblewrap; killing them");
        }
        cgroup.finish(KILL_GRACE).await?;
        let run = Run { exit_code: status.code(), result, console_tail, killed, usage };
        if run.exit_code == Some(JOIN_FAILED) && run.result.is_empty() {
            return Err(format!("could not join the compile's cgroup: {}", run.console_tail.trim()));
        }
        Ok(Finished { run, spawned, ready, ended })
    }

    fn command(&self, procs_files: &[PathBuf], python_args: &[&str]) -> Command {
        let limits = &self.limits;
        let mut cmd = Command::new("/bin/sh");
        cmd.arg("-c").arg(JOIN).arg("sh").args(procs_files).arg("--");
        cmd.arg(&self.bwrap).args(self.bwrap_args());
        cmd.arg("--").arg(&self.prlimit).args([
            format!("--cpu={}:{}", crate::outcome::cpu_secs(limits), crate::outcome::cpu_secs(limits) + 1),
            format!("--as={}", limits.memory_bytes),
            format!("--fsize={}", limits.tmpfs_bytes),
            "--core=0".to_string(),
            "--nofile=256".to_string(),
            // Does not bind the root-mapped sandbox user (the pids cgroup
            // does); set anyway so a non-root deployment gets it too.
            format!("--nproc={}", limits.processes),
        ]);
        cmd.arg("--").arg(&self.python).args(python_args);
        cmd.env_clear()
            .env("PATH", "/usr/bin:/bin")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Our own process group, so a timeout kills the whole host side.
            .process_group(0)
            // A dropped (cancelled) compile kills bwrap, and --die-with-parent
            // takes the sandbox down with it.
            .kill_on_drop(true);
        cmd
    }

    fn bwrap_args(&self) -> Vec<OsString> {
        let tmpfs_size = self.limits.tmpfs_bytes.to_string();
        #[rustfmt::skip]
        let fixed = [
            "--unshare-all", "--unshare-user", "--disable-userns",
            "--uid", SANDBOX_ID, "--gid", SANDBOX_ID,
            "--hostname", "model",
            "--die-with-parent", "--new-session",
            "--clearenv",
            "--setenv", "PATH", "/usr/bin:/bin",
            "--setenv", "HOME", WORK_DIR,
            "--setenv", "TMPDIR", "/tmp",
            "--setenv", "LANG", "C.UTF-8",
            "--dev", "/dev",
            // The tmpfs mounts come before the binds so that a venv living
            // under one of these paths is mounted on top, not hidden.
            "--perms", "1777", "--size", &tmpfs_size, "--tmpfs", "/tmp",
            "--perms", "0700", "--size", &tmpfs_size, "--tmpfs", WORK_DIR,
            "--ro-bind", "/usr", "/usr",
            "--symlink", "usr/bin", "/bin",
            "--symlink", "usr/sbin", "/sbin",
            "--symlink", "usr/lib", "/lib",
            "--symlink", "usr/lib64", "/lib64",
        ];
        let mut args: Vec<OsString> = fixed.into_iter().map(OsString::from).collect();
        for dir in &self.mounts {
            args.extend([OsString::from("--ro-bind"), dir.into(), dir.into()]);
        }
        // bwrap's own root and /dev are unbounded tmpfs mounts; read-only,
        // the only writable places are the two size-capped ones.
        args.extend(["--remount-ro", "/dev", "--remount-ro", "/", "--chdir", WORK_DIR].map(OsString::from));
        args
    }
}

async fn sleep_until_opt(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Reads everything up to `cap` bytes; past that it signals `over` and stops.
/// Also returns when the first byte arrived.
async fn read_capped(
    mut r: impl AsyncRead + Unpin,
    cap: u64,
    over: &Notify,
) -> (Vec<u8>, Option<Instant>, bool) {
    let mut buf = Vec::new();
    let mut first = None;
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        match r.read(&mut chunk).await {
            Ok(0) | Err(_) => return (buf, first, false),
            Ok(n) => {
                first.get_or_insert_with(Instant::now);
                if buf.len() as u64 + n as u64 > cap {
                    over.notify_one();
                    return (buf, first, true);
                }
                buf.extend_from_slice(&chunk[..n]);
            }
        }
    }
}

/// Counts everything, keeps the last [`CONSOLE_TAIL`] bytes; past `cap` bytes
/// in total it signals `over` and stops.
async fn read_tail(mut r: impl AsyncRead + Unpin, cap: u64, over: &Notify) -> (String, bool) {
    let mut tail: Vec<u8> = Vec::new();
    let mut total = 0u64;
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        match r.read(&mut chunk).await {
            Ok(0) | Err(_) => return (String::from_utf8_lossy(&tail).into_owned(), false),
            Ok(n) => {
                total += n as u64;
                tail.extend_from_slice(&chunk[..n]);
                if tail.len() > CONSOLE_TAIL {
                    tail.drain(..tail.len() - CONSOLE_TAIL);
                }
                if total > cap {
                    over.notify_one();
                    return (String::from_utf8_lossy(&tail).into_owned(), true);
                }
            }
        }
    }
}
