//! One cgroup per compile: the real process limit, plus memory and CPU
//! accounting when those controllers are available.
//!
//! The sandbox user is root-mapped (bubblewrap run as root maps the sandbox
//! uid to host uid 0), and `RLIMIT_NPROC` never binds host root, so the pids
//! controller is what stops a fork bomb. It is required; memory and CPU
//! accounting are used when present.
//!
//! Both layouts are handled: cgroup v2 when the unified hierarchy offers
//! `pids`, otherwise the v1 per-controller hierarchies (this is how a hybrid
//! host, with only hugetlb on v2, ends up on v1). Each compile gets
//! `<hierarchy>/<cgroup_name>/<pid>-<uuid>`; the sandbox joins it through a
//! `/bin/sh` wrapper that writes its own PID to `cgroup.procs` and then execs
//! bubblewrap, so nothing it forks can escape.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, kill_process};

use crate::error::CompilerError;

/// Where the per-compile cgroups are created.
#[derive(Debug)]
pub(crate) struct Cgroups {
    layout: Layout,
}

#[derive(Debug, Clone)]
enum Layout {
    /// One directory in the unified hierarchy.
    V2 { base: PathBuf, memory: bool },
    /// One directory per v1 hierarchy.
    V1 { pids: PathBuf, memory: Option<PathBuf>, cpuacct: Option<PathBuf> },
}

/// What the kernel counted for one compile.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Usage {
    /// Times a fork was refused because `pids.max` was reached.
    pub(crate) pids_max_hits: u64,
    /// Processes the memory controller OOM-killed.
    pub(crate) oom_kills: u64,
    /// CPU time used by the whole sandbox, if accounted.
    pub(crate) cpu: Option<Duration>,
}

/// The cgroup(s) of one running compile. Call [`RunCgroup::finish`]; on drop
/// (a cancelled compile) it still kills what is left and removes itself.
#[derive(Debug)]
pub(crate) struct RunCgroup {
    dirs: Vec<PathBuf>,
    layout: Layout,
}

impl Cgroups {
    /// Finds the hierarchies and creates `<cgroup_name>` in each.
    pub(crate) fn setup(name: &str) -> Result<Cgroups, CompilerError> {
        if name.is_empty() || name.contains('/') || name.starts_with('.') {
            return Err(CompilerError::Config(format!("bad cgroup_name {name:?}")));
        }
        let mountinfo = fs::read_to_string("/proc/self/mountinfo")
            .map_err(|e| cgroup_err(format!("reading /proc/self/mountinfo: {e}")))?;
        let mounts = parse_mounts(&mountinfo);
        let layout = choose_layout(&mounts, name)?;
        ensure_bases(&layout)?;
        for base in bases(&layout) {
            remove_stale(base);
        }
        Ok(Cgroups { layout })
    }

    /// A short description for logs: which layout and controllers.
    pub(crate) fn describe(&self) -> String {
        match &self.layout {
            Layout::V2 { base, memory } => {
                format!("cgroup v2 at {} (pids{})", base.display(), if *memory { ", memory" } else { "" })
            }
            Layout::V1 { pids, memory, cpuacct } => format!(
                "cgroup v1 (pids at {}{}{})",
                pids.display(),
                if memory.is_some() { ", memory" } else { "" },
                if cpuacct.is_some() { ", cpuacct" } else { "" }
            ),
        }
    }

    /// Creates the cgroup(s) for one compile with its limits set.
    pub(crate) fn create(&self, max_tasks: u64, memory_bytes: u64) -> Result<RunCgroup, String> {
        // Unique across every Compiler in this process; the PID prefix lets a
        // later start-up remove leftovers of a process that died.
        let leaf = format!("{}-{}", std::process::id(), uuid::Uuid::new_v4().simple());
        let mut run = RunCgroup { dirs: Vec::new(), layout: self.layout.clone() };
        match &self.layout {
            Layout::V2 { base, memory } => {
                let dir = base.join(&leaf);
                self.make_leaf(&dir)?;
                run.dirs.push(dir.clone());
                write_str(&dir.join("pids.max"), &max_tasks.to_string())?;
                if *memory {
                    write_str(&dir.join("memory.max"), &memory_bytes.to_string())?;
                    // Swap would let the sandbox exceed memory.max unnoticed.
                    let swap = dir.join("memory.swap.max");
                    if swap.exists() {
                        write_str(&swap, "0")?;
                    }
                }
            }
            Layout::V1 { pids, memory, cpuacct } => {
                let dir = pids.join(&leaf);
                self.make_leaf(&dir)?;
                run.dirs.push(dir.clone());
                write_str(&dir.join("pids.max"), &max_tasks.to_string())?;
                if let Some(memory) = memory {
                    let dir = memory.join(&leaf);
                    self.make_leaf(&dir)?;
                    run.dirs.push(dir.clone());
                    write_str(&dir.join("memory.limit_in_bytes"), &memory_bytes.to_string())?;
                    // memsw (memory+swap) must not be below the limit, so it is
                    // written second; it is absent when swap accounting is off.
                    let memsw = dir.join("memory.memsw.limit_in_bytes");
                    if memsw.exists() {
                        write_str(&memsw, &memory_bytes.to_string())?;
                    }
                }
                if let Some(cpuacct) = cpuacct {
                    let dir = cpuacct.join(&leaf);
                    self.make_leaf(&dir)?;
                    run.dirs.push(dir);
                }
            }
        }
        Ok(run)
    }
}

impl Cgroups {
    /// Creates a per-compile directory, recreating the base directory if the
    /// last `Cgroups` of another `Compiler` removed it in the meantime.
    fn make_leaf(&self, dir: &Path) -> Result<(), String> {
        match fs::create_dir(dir) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                ensure_bases(&self.layout).map_err(|e| e.to_string())?;
                fs::create_dir(dir)
            }
            other => other,
        }
        .map_err(|e| format!("mkdir {}: {e}", dir.display()))
    }
}

impl Drop for Cgroups {
    /// Removes the base directories; this fails harmlessly (EBUSY) while
    /// another compiler still has compiles running under them.
    fn drop(&mut self) {
        for base in bases(&self.layout) {
            let _ = fs::remove_dir(base);
        }
    }
}

impl RunCgroup {
    /// The `cgroup.procs` files the sandbox must join, one per hierarchy.
    pub(crate) fn procs_files(&self) -> Vec<PathBuf> {
        self.dirs.iter().map(|d| d.join("cgroup.procs")).collect()
    }

    /// SIGKILLs every process still in the cgroup.
    pub(crate) fn kill_all(&self) {
        for dir in &self.dirs {
            if dir.join("cgroup.kill").exists() {
                let _ = fs::write(dir.join("cgroup.kill"), "1");
            }
            for pid in pids_in(dir) {
                if let Some(pid) = Pid::from_raw(pid) {
                    // ESRCH just means it already exited.
                    let _ = kill_process(pid, Signal::KILL);
                }
            }
        }
    }

    /// Reads what the kernel counted. Call after the sandbox exited.
    pub(crate) fn usage(&self) -> Usage {
        let mut usage = Usage::default();
        match &self.layout {
            Layout::V2 { .. } => {
                if let Some(dir) = self.dirs.first() {
                    usage.pids_max_hits = keyed(&dir.join("pids.events"), "max");
                    usage.oom_kills = keyed(&dir.join("memory.events"), "oom_kill");
                    usage.cpu = fs::read_to_string(dir.join("cpu.stat"))
                        .ok()
                        .and_then(|s| keyed_in(&s, "usage_usec"))
                        .map(Duration::from_micros);
                }
            }
            Layout::V1 { memory, cpuacct, .. } => {
                for dir in &self.dirs {
                    if memory.as_ref().is_some_and(|m| dir.starts_with(m)) {
                        usage.oom_kills = keyed(&dir.join("memory.oom_control"), "oom_kill");
                    } else if cpuacct.as_ref().is_some_and(|c| dir.starts_with(c)) {
                        usage.cpu = fs::read_to_string(dir.join("cpuacct.usage"))
                            .ok()
                            .and_then(|s| s.trim().parse().ok())
                            .map(Duration::from_nanos);
                    } else {
                        usage.pids_max_hits = keyed(&dir.join("pids.events"), "max");
                    }
                }
            }
        }
        usage
    }

    /// Processes still in the cgroup (all hierarchies).
    pub(crate) fn remaining(&self) -> usize {
        self.dirs.iter().map(|d| pids_in(d).len()).sum()
    }

    /// Kills leftovers, waits for the cgroup to empty and removes it.
    pub(crate) async fn finish(mut self, patience: Duration) -> Result<(), String> {
        let deadline = Instant::now() + patience;
        let mut pause = Duration::from_millis(1);
        loop {
            self.kill_all();
            let mut left = Vec::new();
            for dir in self.dirs.drain(..) {
                if let Err(e) = fs::remove_dir(&dir) {
                    left.push((dir, e));
                }
            }
            if left.is_empty() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                let msg =
                    left.iter().map(|(d, e)| format!("{}: {e}", d.display())).collect::<Vec<_>>().join("; ");
                self.dirs = left.into_iter().map(|(d, _)| d).collect();
                return Err(format!("cgroup not removed: {msg}"));
            }
            self.dirs = left.into_iter().map(|(d, _)| d).collect();
            // The kernel usually needs a millisecond or two after the last
            // process exits; back off from there.
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(50));
        }
    }
}

impl Drop for RunCgroup {
    fn drop(&mut self) {
        if self.dirs.is_empty() {
            return;
        }
        // A cancelled compile: kill now, and remove the directories off the
        // async runtime once the kernel has finished tearing processes down.
        self.kill_all();
        let dirs = std::mem::take(&mut self.dirs);
        let spawned = std::thread::Builder::new().name("cgroup-reaper".into()).spawn(move || {
            for _ in 0..500 {
                let survivors: Vec<_> =
                    dirs.iter().filter(|d| fs::remove_dir(d).is_err() && d.exists()).collect();
                if survivors.is_empty() {
                    return;
                }
                for dir in survivors {
                    for pid in pids_in(dir).into_iter().filter_map(Pid::from_raw) {
                        let _ = kill_process(pid, Signal::KILL);
                    }
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            tracing::warn!(?dirs, "could not remove the cgroups of a cancelled compile");
        });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "could not start the cgroup reaper thread");
        }
    }
}

/// The `<cgroup_name>` directories, one per hierarchy used.
fn bases(layout: &Layout) -> Vec<&PathBuf> {
    match layout {
        Layout::V2 { base, .. } => vec![base],
        Layout::V1 { pids, memory, cpuacct } => {
            [Some(pids), memory.as_ref(), cpuacct.as_ref()].into_iter().flatten().collect()
        }
    }
}

/// Creates the `<cgroup_name>` directories (idempotent).
fn ensure_bases(layout: &Layout) -> Result<(), CompilerError> {
    match layout {
        Layout::V2 { base, memory } => {
            let parent = base.parent().unwrap_or(Path::new("/"));
            let wanted = if *memory { "+pids +memory" } else { "+pids" };
            // Controllers must be enabled in every ancestor's subtree_control
            // for the per-compile children to get them.
            write(&parent.join("cgroup.subtree_control"), wanted)?;
            mkdir(base)?;
            write(&base.join("cgroup.subtree_control"), wanted)?;
        }
        Layout::V1 { .. } => {
            for base in bases(layout) {
                mkdir(base)?;
            }
        }
    }
    Ok(())
}

/// One mount from `/proc/self/mountinfo`.
#[derive(Debug, PartialEq, Eq)]
struct Mount {
    point: PathBuf,
    fstype: String,
    super_opts: Vec<String>,
}

fn parse_mounts(mountinfo: &str) -> Vec<Mount> {
    mountinfo
        .lines()
        .filter_map(|line| {
            let (pre, post) = line.split_once(" - ")?;
            let point = pre.split(' ').nth(4)?;
            let mut post = post.split(' ');
            let fstype = post.next()?.to_string();
            let _source = post.next()?;
            let super_opts = post.next().unwrap_or("").split(',').map(str::to_string).collect();
            Some(Mount { point: PathBuf::from(point), fstype, super_opts })
        })
        .collect()
}

fn choose_layout(mounts: &[Mount], name: &str) -> Result<Layout, CompilerError> {
    for m in mounts.iter().filter(|m| m.fstype == "cgroup2") {
        let controllers = fs::read_to_string(m.point.join("cgroup.controllers")).unwrap_or_default();
        let has = |c: &str| controllers.split_whitespace().any(|x| x == c);
        if has("pids") {
            return Ok(Layout::V2 { base: m.point.join(name), memory: has("memory") });
        }
    }
    let v1 = |controller: &str| {
        mounts
            .iter()
            .find(|m| m.fstype == "cgroup" && m.super_opts.iter().any(|o| o == controller))
            .map(|m| m.point.join(name))
    };
    let pids = v1("pids").ok_or_else(|| {
        cgroup_err(
            "no pids cgroup controller is mounted (neither v2 with pids nor a v1 pids hierarchy)".into(),
        )
    })?;
    Ok(Layout::V1 { pids, memory: v1("memory"), cpuacct: v1("cpuacct") })
}

/// Removes per-compile cgroups left by processes that no longer exist.
fn remove_stale(base: &Path) {
    let Ok(entries) = fs::read_dir(base) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(owner) = name.to_str().and_then(|n| n.split_once('-')).map(|(pid, _)| pid.to_string())
        else {
            continue;
        };
        if owner.parse::<u32>().is_ok() && !Path::new("/proc").join(&owner).exists() {
            let _ = fs::remove_dir(entry.path());
        }
    }
}

fn pids_in(dir: &Path) -> Vec<i32> {
    fs::read_to_string(dir.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

fn keyed(path: &Path, key: &str) -> u64 {
    fs::read_to_string(path).ok().and_then(|s| keyed_in(&s, key)).unwrap_or(0)
}

/// Reads `key N` from a flat-keyed cgroup file.
fn keyed_in(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        if k == key { v.trim().parse().ok() } else { None }
    })
}

fn mkdir(dir: &Path) -> Result<(), CompilerError> {
    match fs::create_dir(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(cgroup_err(format!("mkdir {}: {e}", dir.display()))),
    }
}

fn write(path: &Path, value: &str) -> Result<(), CompilerError> {
    write_str(path, value).map_err(cgroup_err)
}

fn write_str(path: &Path, value: &str) -> Result<(), String> {
    fs::write(path, value).map_err(|e| format!("writing {value:?} to {}: {e}", path.display()))
}

fn cgroup_err(detail: String) -> CompilerError {
    CompilerError::Cgroup { detail }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    #[test]
    fn parses_mountinfo() {
        let mounts = parse_mounts(HYBRID);
        assert_eq!(mounts.len(), 5);
        assert_eq!(
            mounts[2],
            Mount {
                point: PathBuf::from("/sys/fs/cgroup/pids"),
                fstype: "cgroup".into(),
                super_opts: vec!["rw".into(), "pids".into()],
            }
        );
    }

    #[test]
    fn v1_pids_is_found_when_v2_lacks_it() {
        // The unified mount point in the fixture does not exist on the test
        // host under that name with pids, so v1 must be chosen.
        let mounts: Vec<Mount> = parse_mounts(HYBRID)
            .into_iter()
            .map(|mut m| {
                if m.fstype == "cgroup2" {
                    m.point = PathBuf::from("/nonexistent/unified");
                }
                m
            })
            .collect();
        match choose_layout(&mounts, "t").unwrap() {
            Layout::V1 { pids, memory, cpuacct } => {
                assert_eq!(pids, PathBuf::from("/sys/fs/cgroup/pids/t"));
                assert_eq!(memory, Some(PathBuf::from("/sys/fs/cgroup/memory/t")));
                assert_eq!(cpuacct, Some(PathBuf::from("/sys/fs/cgroup/cpuacct/t")));
            }
            other => panic!("expected v1, got {other:?}"),
        }
    }

    #[test]
    fn no_pids_anywhere_is_an_error() {
        let mounts = parse_mounts("35 31 0:32 / /x rw - cgroup cgroup rw,memory\n");
        assert!(choose_layout(&mounts, "t").is_err());
    }

    #[test]
    fn reads_keyed_files() {
        assert_eq!(keyed_in("oom_kill_disable 0\nunder_oom 0\noom_kill 3\n", "oom_kill"), Some(3));
        assert_eq!(keyed_in("max 12\n", "max"), Some(12));
        assert_eq!(keyed_in("max 12\n", "oom"), None);
    }
}
