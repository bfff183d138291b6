//! The CephFS backend against a real single-node cluster. The `#[ignore]`d tests need one:
//! `xdc/volumes/tests/run-cephfs.sh` brings it up (scripts/ceph-up.sh), runs them with
//! TRELLIS_TEST_CEPH_CONF set, and tears it down. Mount roots sit inside the cluster's
//! directory, so scripts/ceph-down.sh unmounts whatever a failed test leaves behind.
//!
//! Subvolumes are checked with the `ceph` CLI directly, not through the backend's own parser.

use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use trellis_volumes::cephfs::{CephFsConfig, CephFsVolumes};
use trellis_volumes::{VolumeError, VolumeOwner, VolumeRef, Volumes};

const MIB: u64 = 1 << 20;
const EDQUOT: i32 = 122;
const ENOSPC: i32 = 28;

fn conf() -> PathBuf {
    let conf = std::env::var_os("TRELLIS_TEST_CEPH_CONF")
        .expect("TRELLIS_TEST_CEPH_CONF must name a ceph.conf; run xdc/volumes/tests/run-cephfs.sh");
    PathBuf::from(conf)
}

/// A backend whose mount root is `<cluster dir>/mnt/<test>`, unmounted again on drop (also
/// when the test panics).
struct Fixture {
    volumes: CephFsVolumes,
    root: PathBuf,
}

impl Fixture {
    fn new(test: &str) -> Fixture {
        let conf = conf();
        let dir = conf.parent().unwrap();
        let mode = std::fs::metadata(dir).unwrap().mode();
        assert!(mode & 0o001 != 0, "{} must be traversable by other users (chmod 0711)", dir.display());
        let root = dir.join("mnt").join(test);
        Fixture { volumes: CephFsVolumes::new(CephFsConfig::new(conf, &root)), root }
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        for point in mounts_below(&self.root) {
            let _ = Command::new("umount").arg("-l").arg(&point).status();
        }
    }
}

fn owner(uid: u32, gid: u32, mode: u32, quota_bytes: u64) -> VolumeOwner {
    VolumeOwner { uid, gid, mode, quota_bytes }
}

fn home(name: &str) -> VolumeRef {
    VolumeRef::Home(name.to_owned())
}

fn project(name: &str) -> VolumeRef {
    VolumeRef::Project(name.to_owned())
}

/// `ceph fs subvolume info`, or `None` when the CLI says ENOENT.
fn cli_info(group: &str, name: &str) -> Option<serde_json::Value> {
    let out = Command::new("ceph")
        .arg("-c")
        .arg(conf())
        .args(["--format", "json", "fs", "subvolume", "info", "cephfs", name, "--group_name", group])
        .output()
        .unwrap();
    if out.status.code() == Some(2) {
        return None;
    }
    assert!(out.status.success(), "ceph fs subvolume info: {}", String::from_utf8_lossy(&out.stderr));
    Some(serde_json::from_slice(&out.stdout).unwrap())
}

/// (uid, gid, mode & 0o7777, quota) as the volumes module reports them; quota 0 = infinite.
fn cli_attrs(group: &str, name: &str) -> (u64, u64, u64, u64) {
    let info = cli_info(group, name).unwrap_or_else(|| panic!("subvolume {group}/{name} does not exist"));
    let quota = match &info["bytes_quota"] {
        serde_json::Value::String(s) if s == "infinite" => 0,
        v => v.as_u64().unwrap(),
    };
    (
        info["uid"].as_u64().unwrap(),
        info["gid"].as_u64().unwrap(),
        info["mode"].as_u64().unwrap() & 0o7777,
        quota,
    )
}

/// ceph-fuse mounts at `root` or below, from the kernel's table.
fn mounts_below(root: &Path) -> Vec<PathBuf> {
    let table = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    table
        .lines()
        .filter(|line| line.contains(" - fuse.ceph-fuse "))
        .map(|line| PathBuf::from(line.split(' ').nth(4).unwrap()))
        .filter(|point| point.starts_with(root))
        .collect()
}

fn mounts_at(point: &Path) -> usize {
    mounts_below(point).iter().filter(|p| p.as_path() == point).count()
}

fn stat(path: &Path) -> (u32, u32, u32) {
    let meta = std::fs::metadata(path).unwrap();
    (meta.uid(), meta.gid(), meta.mode() & 0o7777)
}

/// Runs a shell command as uid:gid with the given supplementary groups; true if it succeeded.
fn as_user(uid: u32, gid: u32, groups: &str, script: &str) -> bool {
    let mut command = Command::new("setpriv");
    command.arg(format!("--reuid={uid}")).arg(format!("--regid={gid}"));
    if groups.is_empty() {
        command.arg("--clear-groups");
    } else {
        command.arg(format!("--groups={groups}"));
    }
    command.args(["sh", "-c", script]).status().unwrap().success()
}

/// Appends up to `limit` bytes in 1 MiB writes, syncing every 4 MiB; returns the bytes
/// written and the error that stopped it, if any.
fn fill(path: &Path, limit: u64) -> (u64, Option<std::io::Error>) {
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(path).unwrap();
    let chunk = vec![0x5a_u8; MIB as usize];
    let mut written = 0;
    while written < limit {
        if let Err(e) = file.write_all(&chunk) {
            return (written, Some(e));
        }
        written += MIB;
        if written % (4 * MIB) == 0
            && let Err(e) = file.sync_all()
        {
            return (written, Some(e));
        }
    }
    match file.sync_all() {
        Ok(()) => (written, None),
        Err(e) => (written, Some(e)),
    }
}

#[tokio::test]
#[ignore = "needs a Ceph cluster: xdc/volumes/tests/run-cephfs.sh"]
async fn ensure_creates_subvolumes_with_owner_mode_and_quota() {
    let fx = Fixture::new("attrs");
    let path = fx.volumes.ensure(&home("alice"), owner(1000, 1000, 0o750, 64 * MIB)).await.unwrap();
    assert_eq!(path, fx.root.join("homes/alice"));
    assert_eq!(mounts_at(&path), 1);
    assert_eq!(cli_attrs("homes", "alice"), (1000, 1000, 0o750, 64 * MIB));
    assert_eq!(stat(&path), (1000, 1000, 0o750));
    let info = fx.volumes.info(&home("alice")).await.unwrap().unwrap();
    assert_eq!((info.uid, info.gid, info.mode, info.quota_bytes), (1000, 1000, 0o750, 64 * MIB));
    assert!(info.path.starts_with("/volumes/homes/alice/"), "{}", info.path);

    let path = fx.volumes.ensure(&project("proj1"), owner(0, 2000, 0o2770, 0)).await.unwrap();
    assert_eq!(path, fx.root.join("projects/proj1"));
    assert_eq!(cli_attrs("projects", "proj1"), (0, 2000, 0o2770, 0));
    assert_eq!(stat(&path), (0, 2000, 0o2770));

    // Owner, mode and quota are applied again on every ensure.
    fx.volumes.ensure(&home("alice"), owner(1001, 1002, 0o700, 32 * MIB)).await.unwrap();
    assert_eq!(cli_attrs("homes", "alice"), (1001, 1002, 0o700, 32 * MIB));
    fx.volumes.ensure(&project("proj1"), owner(1000, 2001, 0o2750, 16 * MIB)).await.unwrap();
    assert_eq!(cli_attrs("projects", "proj1"), (1000, 2001, 0o2750, 16 * MIB));
    // Back to root and no quota: uid 0 is the case `subvolume create` cannot set.
    fx.volumes.ensure(&project("proj1"), owner(0, 2000, 0o2770, 0)).await.unwrap();
    assert_eq!(cli_attrs("projects", "proj1"), (0, 2000, 0o2770, 0));

    fx.volumes.remove(&home("alice")).await.unwrap();
    fx.volumes.remove(&project("proj1")).await.unwrap();
}

#[tokio::test]
#[ignore = "needs a Ceph cluster: xdc/volumes/tests/run-cephfs.sh"]
async fn mounted_volume_is_writable_by_its_owner_and_survives_remount() {
    let fx = Fixture::new("write");
    let home_dir = fx.volumes.ensure(&home("carol"), owner(1000, 1000, 0o750, 0)).await.unwrap();
    let notes = home_dir.join("notes");
    assert!(as_user(1000, 1000, "", &format!("echo hello > {}", notes.display())));
    assert!(!as_user(1002, 1002, "", &format!("echo intruder > {}/other", home_dir.display())));
    assert_eq!(std::fs::read_to_string(&notes).unwrap(), "hello\n");
    assert_eq!(stat(&notes).0, 1000);

    // Projects are shared through the group; setgid makes new files the project's.
    let shared = fx.volumes.ensure(&project("proj2"), owner(0, 2000, 0o2770, 0)).await.unwrap();
    assert!(as_user(1003, 1003, "2000", &format!("mkdir {0}/data && echo x > {0}/data/f", shared.display())));
    assert_eq!(stat(&shared.join("data")).1, 2000);
    assert!(!as_user(1004, 1004, "", &format!("ls {}", shared.display())));

    assert_eq!(fx.volumes.unmount_all().await.unwrap(), 2);
    assert!(mounts_below(&fx.root).is_empty());
    assert!(!notes.exists(), "the file must live in CephFS, not in the mount point");

    let again = fx.volumes.ensure(&home("carol"), owner(1000, 1000, 0o750, 0)).await.unwrap();
    assert_eq!(again, home_dir);
    assert_eq!(std::fs::read_to_string(&notes).unwrap(), "hello\n");
    fx.volumes.ensure(&project("proj2"), owner(0, 2000, 0o2770, 0)).await.unwrap();
    assert_eq!(std::fs::read_to_string(shared.join("data/f")).unwrap(), "x\n");

    fx.volumes.remove(&home("carol")).await.unwrap();
    fx.volumes.remove(&project("proj2")).await.unwrap();
}

#[tokio::test]
#[ignore = "needs a Ceph cluster: xdc/volumes/tests/run-cephfs.sh"]
async fn writing_past_the_quota_fails_and_resize_lifts_it() {
    let fx = Fixture::new("quota");
    let volume = project("quota1");
    let dir = fx.volumes.ensure(&volume, owner(0, 2000, 0o2770, 8 * MIB)).await.unwrap();
    let file = dir.join("big");
    let (written, error) = tokio::task::spawn_blocking({
        let file = file.clone();
        move || fill(&file, 64 * MIB)
    })
    .await
    .unwrap();
    let error = error.unwrap_or_else(|| panic!("wrote {written} bytes into an 8 MiB quota without an error"));
    assert!(
        matches!(error.raw_os_error(), Some(EDQUOT | ENOSPC)),
        "expected EDQUOT or ENOSPC after {written} bytes, got {error:?}"
    );
    eprintln!("quota 8 MiB: writes failed after {} MiB with {error}", written / MIB);

    // A larger quota takes effect on the mounted volume without a remount.
    fx.volumes.ensure(&volume, owner(0, 2000, 0o2770, 64 * MIB)).await.unwrap();
    assert_eq!(cli_attrs("projects", "quota1").3, 64 * MIB);
    let (more, error) = tokio::task::spawn_blocking(move || fill(&file, 16 * MIB)).await.unwrap();
    assert!(error.is_none(), "after the resize, writing failed after {more} bytes: {error:?}");
    let size = std::fs::metadata(dir.join("big")).unwrap().len();
    assert_eq!(size, written + 16 * MIB);

    fx.volumes.ensure(&volume, owner(0, 2000, 0o2770, 0)).await.unwrap();
    assert_eq!(cli_attrs("projects", "quota1").3, 0);
    fx.volumes.remove(&volume).await.unwrap();
}

#[tokio::test]
#[ignore = "needs a Ceph cluster: xdc/volumes/tests/run-cephfs.sh"]
async fn remove_deletes_the_subvolume_and_its_mount() {
    let fx = Fixture::new("remove");
    let volume = home("dave");
    let dir = fx.volumes.ensure(&volume, owner(1000, 1000, 0o750, 16 * MIB)).await.unwrap();
    std::fs::write(dir.join("file"), "data").unwrap();

    fx.volumes.remove(&volume).await.unwrap();
    assert!(cli_info("homes", "dave").is_none());
    assert!(fx.volumes.info(&volume).await.unwrap().is_none());
    assert_eq!(mounts_at(&dir), 0);
    assert!(!dir.exists());
    fx.volumes.remove(&volume).await.unwrap();

    let dir = fx.volumes.ensure(&volume, owner(1000, 1000, 0o750, 16 * MIB)).await.unwrap();
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0, "a re-created volume starts empty");
    fx.volumes.remove(&volume).await.unwrap();
}

#[tokio::test]
#[ignore = "needs a Ceph cluster: xdc/volumes/tests/run-cephfs.sh"]
async fn ensure_is_idempotent_even_when_concurrent() {
    let fx = Fixture::new("twice");
    let volume = project("twice");
    let wanted = owner(0, 2000, 0o2770, 32 * MIB);
    let (a, b) = tokio::join!(fx.volumes.ensure(&volume, wanted), fx.volumes.ensure(&volume, wanted));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a, b);
    assert_eq!(mounts_at(&a), 1);
    std::fs::write(a.join("marker"), "1").unwrap();

    let c = fx.volumes.ensure(&volume, wanted).await.unwrap();
    assert_eq!(c, a);
    assert_eq!(mounts_at(&a), 1);
    assert_eq!(std::fs::read_to_string(a.join("marker")).unwrap(), "1");
    assert_eq!(cli_attrs("projects", "twice"), (0, 2000, 0o2770, 32 * MIB));
    fx.volumes.remove(&volume).await.unwrap();
}

#[tokio::test]
#[ignore = "needs a Ceph cluster: xdc/volumes/tests/run-cephfs.sh"]
async fn a_dead_mount_is_remounted() {
    let fx = Fixture::new("dead");
    let volume = home("erin");
    let dir = fx.volumes.ensure(&volume, owner(1000, 1000, 0o750, 0)).await.unwrap();
    std::fs::write(dir.join("kept"), "yes").unwrap();

    // Kill the ceph-fuse serving exactly this mount point (its command line names it).
    let needle = dir.to_string_lossy().into_owned();
    let mut killed = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else { continue };
        let args: Vec<String> =
            cmdline.split(|b| *b == 0).map(|a| String::from_utf8_lossy(a).into_owned()).collect();
        if args.first().is_some_and(|a| a.ends_with("ceph-fuse")) && args.contains(&needle) {
            assert!(Command::new("kill").arg("-KILL").arg(entry.file_name()).status().unwrap().success());
            killed.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    assert_eq!(killed.len(), 1, "exactly one ceph-fuse serves {needle}");
    // The kernel keeps the dead mount until someone unmounts it; the process may take a
    // moment to exit after the signal.
    let mut dead = None;
    for _ in 0..600 {
        if let Err(e) = std::fs::read_dir(&dir) {
            dead = Some(e);
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let dead = dead.expect("the mount still answers after its ceph-fuse was killed");
    // ENOTCONN, or ECONNABORTED once the kernel has aborted the FUSE connection.
    assert!(matches!(dead.raw_os_error(), Some(107 | 103)), "a dead mount expected, got {dead:?}");
    assert_eq!(mounts_at(&dir), 1);

    let again = fx.volumes.ensure(&volume, owner(1000, 1000, 0o750, 0)).await.unwrap();
    assert_eq!(again, dir);
    assert_eq!(mounts_at(&dir), 1);
    assert_eq!(std::fs::read_to_string(dir.join("kept")).unwrap(), "yes");
    // The dead client's MDS session was evicted (it would block other clients' requests).
    let sessions = mds_sessions();
    let pids: Vec<&str> = sessions.iter().filter_map(|s| s["client_metadata"]["pid"].as_str()).collect();
    assert!(
        !pids.contains(&killed[0].as_str()),
        "session of the killed ceph-fuse {} is still open",
        killed[0]
    );
    assert!(pids.len() >= 2, "the mgr's and the new mount's sessions at least: {pids:?}");
    fx.volumes.remove(&volume).await.unwrap();
}

/// The MDS's client sessions (`ceph tell mds.cephfs:0 client ls`).
fn mds_sessions() -> Vec<serde_json::Value> {
    let out = Command::new("ceph")
        .arg("-c")
        .arg(conf())
        .args(["--format", "json", "tell", "mds.cephfs:0", "client", "ls"])
        .output()
        .unwrap();
    assert!(out.status.success(), "client ls: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test]
#[ignore = "needs a Ceph cluster: xdc/volumes/tests/run-cephfs.sh"]
async fn check_finds_the_filesystem_or_says_it_is_missing() {
    let fx = Fixture::new("check");
    fx.volumes.check().await.unwrap();
    let mut config = fx.volumes.config().clone();
    config.fs_name = "nosuchfs".to_owned();
    let err = CephFsVolumes::new(config).check().await.unwrap_err();
    assert!(matches!(err, VolumeError::Unavailable(_)), "{err:?}");
    assert!(err.to_string().contains("nosuchfs"), "{err}");
}

// Without a cluster: names are checked before any command runs (the `ceph` binary here does
// not exist, so a command would fail with Unavailable instead).

fn no_cluster() -> CephFsVolumes {
    let mut config = CephFsConfig::new("/nonexistent/ceph.conf", "/nonexistent/mnt");
    config.ceph_bin = PathBuf::from("/nonexistent/bin/ceph");
    config.ceph_fuse_bin = PathBuf::from("/nonexistent/bin/ceph-fuse");
    CephFsVolumes::new(config)
}

#[tokio::test]
async fn bad_names_are_rejected_with_the_rule_they_break() {
    let volumes = no_cluster();
    let cases = [
        (home(""), "must not be empty"),
        (home(".."), "must start with a lowercase letter"),
        (home("a/b"), "found '/'"),
        (project("x..y"), "found '.'"),
        (project("Proj"), "must start with a lowercase letter"),
        (project("p\n"), "found '\\n'"),
        (project(&"p".repeat(33)), "at most 32"),
    ];
    for (volume, rule) in &cases {
        let err = volumes.ensure(volume, owner(0, 0, 0o755, 0)).await.unwrap_err();
        assert!(matches!(err, VolumeError::InvalidName(_)), "{volume:?}: {err:?}");
        assert!(err.to_string().contains(rule), "{volume:?}: {err}");
        assert!(matches!(volumes.remove(volume).await, Err(VolumeError::InvalidName(_))));
        assert!(matches!(volumes.info(volume).await, Err(VolumeError::InvalidName(_))));
    }
}

#[tokio::test]
async fn a_missing_ceph_cli_makes_the_backend_unavailable() {
    let volumes = no_cluster();
    let err = volumes.ensure(&home("alice"), owner(1000, 1000, 0o750, 0)).await.unwrap_err();
    assert!(matches!(err, VolumeError::Unavailable(_)), "{err:?}");
    assert!(err.to_string().contains("/nonexistent/bin/ceph"), "{err}");
    assert!(matches!(volumes.check().await, Err(VolumeError::Unavailable(_))));
}

/// A `ceph` stand-in that exits with ETIMEDOUT (110) for its first `timeouts` calls, then
/// answers `fs get` like a cluster with the filesystem. Each call is logged to `calls`.
fn flaky_cli(dir: &Path, timeouts: u32) -> CephFsVolumes {
    use std::os::unix::fs::PermissionsExt;
    let script = dir.join("ceph");
    let calls = dir.join("calls");
    let body = format!(
        "#!/bin/sh\n[ \"$1\" = probe ] && exit 0\necho \"$*\" >> {calls}\nn=$(wc -l < {calls})\nif [ \"$n\" -le {timeouts} ]; then\n  \
         echo 'Error ETIMEDOUT: Connection timed out.' >&2; exit 110\nfi\necho '{{}}'\n",
        calls = calls.display()
    );
    std::fs::write(&script, body).unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    // Another test thread that forks while the script is open for writing holds the write
    // descriptor until its exec, and running the script meanwhile fails with ETXTBSY. Once one
    // run succeeds nobody holds it any more (we never reopen it), so the backend's runs can't.
    let mut tries = 0;
    while let Err(err) = std::process::Command::new(&script).arg("probe").status() {
        assert!(err.raw_os_error() == Some(26) && tries < 200, "running {}: {err}", script.display());
        tries += 1;
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let mut config = CephFsConfig::new(dir.join("ceph.conf"), dir.join("mnt"));
    config.ceph_bin = script;
    config.ceph_fuse_bin = PathBuf::from("/bin/true");
    CephFsVolumes::new(config)
}

fn calls(dir: &Path) -> usize {
    std::fs::read_to_string(dir.join("calls")).map(|s| s.lines().count()).unwrap_or(0)
}

#[tokio::test]
async fn a_mgr_timeout_is_retried_and_then_reported_as_unavailable() {
    let dir = tempfile::tempdir().unwrap();
    let recovers = flaky_cli(dir.path(), 2);
    recovers.check().await.unwrap();
    assert_eq!(calls(dir.path()), 3, "two timeouts, then the answer");

    let dir = tempfile::tempdir().unwrap();
    let never = flaky_cli(dir.path(), u32::MAX);
    let err = never.check().await.unwrap_err();
    assert!(matches!(err, VolumeError::Unavailable(_)), "{err:?}");
    assert!(err.to_string().contains("ETIMEDOUT"), "{err}");
    assert_eq!(calls(dir.path()), 4, "a bounded number of attempts");
}
