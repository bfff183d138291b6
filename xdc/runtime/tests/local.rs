//! The local runtime against real crun, network namespaces, sshd and the OpenSSH client (as
//! root). Each test has its own subnet (10.251.<n>.0/24), bridge and XDC ids.

mod common;

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use common::*;
use trellis_xdc_runtime::local::LocalRuntime;
use trellis_xdc_runtime::{JupyterSpec, RuntimeError, VolumeRef, XdcGroup, XdcPhase, XdcRuntime, probe};

#[tokio::test]
async fn ssh_logins_volumes_and_in_place_updates() {
    if !can_run() {
        return;
    }
    let state = tempfile::tempdir().unwrap();
    let volumes = tempfile::tempdir().unwrap();
    let keys = Keys::new();
    let id = unique_id("x0-ssh");
    let config = config(state.path(), 1);
    let _cleanup = Cleanup { ids: vec![id.clone()], bridge: config.bridge.clone() };
    let runtime = LocalRuntime::open(config).unwrap();

    let home = volume_dir(volumes.path(), "home-alice", 2101, 2101, 0o750);
    let project = volume_dir(volumes.path(), "project-proj", 0, 3101, 0o2770);
    keys.sign("user_ca", "alice_cert", "alice", false);
    let registered = keys.key("alice_registered");
    let mut spec = base_spec(&id, &keys);
    spec.users = vec![user("alice", 2101, vec![registered])];
    spec.groups = vec![XdcGroup { name: "proj".into(), gid: 3101, members: vec!["alice".into()] }];
    spec.mounts = vec![
        mount(VolumeRef::Home("alice".into()), &home),
        mount(VolumeRef::Project("proj".into()), &project),
    ];

    let start = Instant::now();
    let status = runtime.apply(&spec).await.unwrap();
    let applied = start.elapsed();
    let addr = status.address.expect("an address");
    assert_eq!(status.netns.as_deref(), Some(LocalRuntime::container_name(&id).as_str()));
    let banner = wait_ssh(addr, start).await;
    eprintln!("xdc-startup: apply returned after {applied:?}; sshd banner after {banner:?}");
    wait_phase(&runtime, &id, XdcPhase::Running).await;

    // The certificate from the user CA logs in; the host proves itself with its certificate.
    let known = keys.known_hosts("host_ca", &id);
    let out = ssh_ok(
        &keys,
        "alice_cert",
        &known,
        &id,
        "alice",
        addr,
        "id; hostname; echo hi > ~/from-xdc; echo p > /project/proj/from-xdc",
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "uid=2101(alice) gid=2101(alice) groups=2101(alice),3101(proj)", "{out}");
    assert_eq!(lines[1], id);
    assert_eq!(std::fs::read_to_string(home.join("from-xdc")).unwrap(), "hi\n");
    assert_eq!(std::fs::read_to_string(project.join("from-xdc")).unwrap(), "p\n");
    // The registered key works too; keys nobody registered or signed do not.
    ssh_ok(&keys, "alice_registered", &known, &id, "alice", addr, "true");
    keys.key("stranger");
    assert!(!ssh(&keys, "stranger", &known, &id, "alice", addr, "true").status.success());
    keys.key("other_ca");
    keys.sign("other_ca", "forged", "alice", false);
    assert!(!ssh(&keys, "forged", &known, &id, "alice", addr, "true").status.success());
    // The runtime wrote nothing into the home volume.
    assert!(!home.join(".ssh").exists());

    // Accounts, keys and hosts change in place: the same init keeps running.
    let pid = init_pid(&id).expect("a running container");
    let rotated = keys.key("alice_rotated");
    spec.users = vec![user("alice", 2101, vec![rotated]), user("bob", 2102, vec![keys.key("bob")])];
    spec.groups[0].members.push("bob".into());
    spec.hosts = vec![("n1.infra".into(), "10.0.0.7".parse().unwrap())];
    spec.search = vec!["infra.example".into()];
    runtime.apply(&spec).await.unwrap();
    assert_eq!(init_pid(&id), Some(pid), "an account update restarted the XDC");
    ssh_ok(&keys, "alice_rotated", &known, &id, "alice", addr, "true");
    assert!(!ssh(&keys, "alice_registered", &known, &id, "alice", addr, "true").status.success());
    let out =
        ssh_ok(&keys, "bob", &known, &id, "bob", addr, "id -un; id -Gn; cat /etc/hosts /etc/resolv.conf");
    assert!(out.starts_with("bob\nbob proj\n"), "{out}");
    assert!(out.contains("10.0.0.7\tn1.infra") && out.contains("search infra.example"), "{out}");

    // A new host CA's certificate is served after a reload, by the same process.
    spec.host_certificate = keys.sign("host_ca2", "host_key", &id, true);
    runtime.apply(&spec).await.unwrap();
    assert_eq!(init_pid(&id), Some(pid));
    let known2 = keys.known_hosts("host_ca2", &id);
    let mut reloaded = false;
    for _ in 0..100 {
        if ssh(&keys, "alice_rotated", &known2, &id, "alice", addr, "true").status.success() {
            reloaded = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(reloaded, "sshd never presented the new host certificate");

    // A changed mount set restarts the container.
    let project2 = volume_dir(volumes.path(), "project-p2", 0, 3101, 0o2770);
    spec.mounts.push(mount(VolumeRef::Project("p2".into()), &project2));
    runtime.apply(&spec).await.unwrap();
    assert_ne!(init_pid(&id), Some(pid), "a new volume needs a restart");
    wait_ssh(addr, Instant::now()).await;
    ssh_ok(&keys, "alice_rotated", &known2, &id, "alice", addr, "echo two > /project/p2/f");
    assert_eq!(std::fs::read_to_string(project2.join("f")).unwrap(), "two\n");

    // Removal leaves nothing but the volumes, whose contents survive into a new XDC.
    runtime.remove(&id).await.unwrap();
    assert_eq!(residue(&id, state.path()), Vec::<String>::new());
    assert_eq!(runtime.status(&id).await.unwrap(), None);
    assert!(runtime.list().await.unwrap().is_empty());
    assert_eq!(std::fs::read_to_string(home.join("from-xdc")).unwrap(), "hi\n");
    runtime.remove(&id).await.unwrap();

    let start = Instant::now();
    let status = runtime.apply(&spec).await.unwrap();
    eprintln!("xdc-startup: recreated XDC's sshd banner after {:?}", wait_ssh(addr, start).await);
    assert_eq!(status.address, Some(addr));
    let out = ssh_ok(&keys, "alice_rotated", &known2, &id, "alice", addr, "cat ~/from-xdc");
    assert_eq!(out, "hi\n");
    runtime.remove(&id).await.unwrap();
    assert_eq!(residue(&id, state.path()), Vec::<String>::new());
}

#[tokio::test]
async fn jupyter_answers_with_its_token_only() {
    if !can_run() {
        return;
    }
    let state = tempfile::tempdir().unwrap();
    let volumes = tempfile::tempdir().unwrap();
    let keys = Keys::new();
    let id = unique_id("x1-jup");
    let config = config(state.path(), 2);
    let _cleanup = Cleanup { ids: vec![id.clone()], bridge: config.bridge.clone() };
    let runtime = LocalRuntime::open(config).unwrap();
    let home = volume_dir(volumes.path(), "home-alice", 2101, 2101, 0o750);
    std::fs::write(home.join("notes.txt"), "from the host\n").unwrap();
    let mut spec = base_spec(&id, &keys);
    spec.users = vec![user("alice", 2101, vec![])];
    spec.mounts = vec![mount(VolumeRef::Home("alice".into()), &home)];
    let token = "t0k3n-0123456789abcdef";
    let base = format!("/{id}/");
    spec.jupyter =
        Some(JupyterSpec { user: "alice".into(), base_url: base.clone(), token: token.into(), port: 8888 });
    spec.memory_bytes = 1 << 30;

    let start = Instant::now();
    let addr = runtime.apply(&spec).await.unwrap().address.unwrap();
    let jupyter = SocketAddr::new(addr, 8888);
    let auth = format!("token {token}");
    let status_path = format!("{base}api/status");
    let code = probe::retry(Duration::from_secs(120), Duration::from_millis(20), || async {
        match probe::http_status(jupyter, &status_path, &[("Authorization", &auth)]).await? {
            200 => Ok(200),
            other => Err(std::io::Error::other(format!("status {other}"))),
        }
    })
    .await
    .unwrap_or_else(|e| panic!("Jupyter never answered: {e}"));
    assert_eq!(code, 200);
    eprintln!("xdc-startup: Jupyter api/status answered 200 after {:?}", start.elapsed());
    assert_eq!(probe::http_status(jupyter, &status_path, &[]).await.unwrap(), 403);
    assert_eq!(
        probe::http_status(jupyter, &format!("{base}api/status?token=wrong"), &[]).await.unwrap(),
        403
    );
    // The notebook directory is the home volume.
    let contents = format!("{base}api/contents/notes.txt");
    assert_eq!(probe::http_status(jupyter, &contents, &[("Authorization", &auth)]).await.unwrap(), 200);
    wait_phase(&runtime, &id, XdcPhase::Running).await;

    // Jupyter runs as its user, and its token is on no command line.
    let mut found = false;
    for entry in std::fs::read_dir("/proc").unwrap().filter_map(Result::ok) {
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline);
        if cmdline.contains(&format!("--NotebookApp.base_url={base}")) {
            let status = std::fs::read_to_string(entry.path().join("status")).unwrap_or_default();
            let uid = status.lines().find(|l| l.starts_with("Uid:")).unwrap_or("").to_owned();
            assert!(uid.split_whitespace().skip(1).all(|u| u == "2101"), "{uid}");
            assert!(!cmdline.contains(token));
            found = true;
        }
    }
    assert!(found, "no Jupyter process with base_url {base}");
    runtime.remove(&id).await.unwrap();
    assert_eq!(residue(&id, state.path()), Vec::<String>::new());
    assert_eq!(std::fs::read_to_string(home.join("notes.txt")).unwrap(), "from the host\n");
}

/// The cgroup file `file` of the process's cgroup under `controller` (v1) or its v2 group.
fn cgroup_value(pid: i64, controller: &str, v1_file: &str, v2_file: &str) -> String {
    let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    for line in cgroups.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next(), parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        if controllers.split(',').any(|c| c == controller) {
            return std::fs::read_to_string(format!("/sys/fs/cgroup/{controllers}{path}/{v1_file}"))
                .unwrap()
                .trim()
                .to_owned();
        }
        if controllers.is_empty() && std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
            return std::fs::read_to_string(format!("/sys/fs/cgroup{path}/{v2_file}"))
                .unwrap()
                .trim()
                .to_owned();
        }
    }
    panic!("no {controller} cgroup in {cgroups}");
}

#[tokio::test]
async fn limits_adoption_after_reopening_and_recovery() {
    if !can_run() {
        return;
    }
    let state = tempfile::tempdir().unwrap();
    let keys = Keys::new();
    let id = unique_id("x2-adopt");
    let config = config(state.path(), 3);
    let _cleanup = Cleanup { ids: vec![id.clone()], bridge: config.bridge.clone() };
    let runtime = LocalRuntime::open(config.clone()).unwrap();
    keys.sign("user_ca", "alice_cert", "alice", false);
    let mut spec = base_spec(&id, &keys);
    spec.users = vec![user("alice", 2101, vec![])];
    spec.cpu_millis = 500;
    spec.memory_bytes = 256 << 20;
    let addr: IpAddr = runtime.apply(&spec).await.unwrap().address.unwrap();
    wait_phase(&runtime, &id, XdcPhase::Running).await;
    let pid = init_pid(&id).unwrap();
    assert_eq!(
        cgroup_value(pid, "memory", "memory.limit_in_bytes", "memory.max"),
        (256u64 << 20).to_string()
    );
    let cpu = cgroup_value(pid, "cpu", "cpu.cfs_quota_us", "cpu.max");
    assert!(cpu == "50000" || cpu == "50000 100000", "{cpu}");

    // A new runtime on the same state adopts the running XDC without restarting it.
    drop(runtime);
    let runtime = LocalRuntime::open(config.clone()).unwrap();
    assert_eq!(runtime.list().await.unwrap(), vec![id.clone()]);
    assert_eq!(runtime.status(&id).await.unwrap().unwrap().phase, XdcPhase::Running);
    runtime.apply(&spec).await.unwrap();
    assert_eq!(init_pid(&id), Some(pid));
    // ... and refuses to move it to another subnet.
    let mut moved = config.clone();
    moved.subnet = "10.251.4.0/24".parse().unwrap();
    assert!(matches!(LocalRuntime::open(moved), Err(RuntimeError::Unavailable(_))));

    // When the init dies the XDC is reported failed; apply brings it back.
    sh("kill", &["-KILL", &pid.to_string()]);
    wait_phase(&runtime, &id, XdcPhase::Failed).await;
    let status = runtime.status(&id).await.unwrap().unwrap();
    assert!(status.message.contains("not running"), "{status:?}");
    runtime.apply(&spec).await.unwrap();
    assert_ne!(init_pid(&id), Some(pid));
    wait_ssh(addr, Instant::now()).await;
    let known = keys.known_hosts("host_ca", &id);
    assert_eq!(ssh_ok(&keys, "alice_cert", &known, &id, "alice", addr, "id -u"), "2101\n");

    runtime.remove(&id).await.unwrap();
    assert!(runtime.list().await.unwrap().is_empty());
    assert_eq!(residue(&id, state.path()), Vec::<String>::new());
}

#[tokio::test]
async fn invalid_specs_are_refused_before_touching_the_host() {
    let state = tempfile::tempdir().unwrap();
    let keys = Keys::new();
    let runtime = LocalRuntime::open(config(state.path(), 5)).unwrap();
    let mut spec = base_spec("x3-bad", &keys);
    spec.users = vec![user("root", 0, vec![])];
    assert!(matches!(runtime.apply(&spec).await, Err(RuntimeError::InvalidSpec(_))));
    // A volume inside the runtime's own state would be deleted with an XDC.
    let mut spec = base_spec("x3-bad", &keys);
    spec.users = vec![user("alice", 2101, vec![])];
    spec.mounts = vec![mount(VolumeRef::Home("alice".into()), &state.path().join("homes/alice"))];
    if can_run() {
        assert!(matches!(runtime.apply(&spec).await, Err(RuntimeError::InvalidSpec(_))));
    }
    assert!(runtime.list().await.unwrap().is_empty());
    assert_eq!(runtime.status("x3-bad").await.unwrap(), None);
}

#[tokio::test]
async fn parallel_applies_share_a_new_bridge_and_get_distinct_addresses() {
    if !can_run() {
        return;
    }
    let state = tempfile::tempdir().unwrap();
    let keys = Keys::new();
    let ids: Vec<String> = (0..3).map(|n| unique_id(&format!("x4-par{n}"))).collect();
    let config = config(state.path(), 6);
    let _cleanup = Cleanup { ids: ids.clone(), bridge: config.bridge.clone() };
    let runtime = LocalRuntime::open(config).unwrap();
    let specs: Vec<_> = ids
        .iter()
        .map(|id| {
            let mut spec = base_spec(id, &keys);
            spec.users = vec![user("alice", 2101, vec![])];
            spec
        })
        .collect();
    let (a, b, c) =
        tokio::join!(runtime.apply(&specs[0]), runtime.apply(&specs[1]), runtime.apply(&specs[2]));
    let mut addresses: Vec<IpAddr> = [a, b, c].into_iter().map(|s| s.unwrap().address.unwrap()).collect();
    for addr in &addresses {
        wait_ssh(*addr, Instant::now()).await;
    }
    addresses.sort();
    addresses.dedup();
    assert_eq!(addresses.len(), 3, "{addresses:?}");
    let mut listed = runtime.list().await.unwrap();
    listed.sort();
    let mut expected = ids.clone();
    expected.sort();
    assert_eq!(listed, expected);
    for id in &ids {
        runtime.remove(id).await.unwrap();
        assert_eq!(residue(id, state.path()), Vec::<String>::new());
    }
}
