//! End-to-end tests of XDCs and SSH through the `trellis` binary against a real `trellisd up`
//! (see `common/mod.rs`; build `trellisd` first).
//!
//! `trellisd up` runs the XDC controller on the local runtime, so an XDC created here really
//! starts (a crun container with sshd, as root, which CI is); every test that creates XDCs
//! deletes them and waits until the runtime has removed them.
//! The SSH test uses the system's OpenSSH client through the portal's jump host.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{ADMIN_PASSWORD, Portal, Session, names, succeeded};
use serde_json::Value;

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).permissions().mode() & 0o777
}

/// `trellis login` with extra arguments and environment.
fn login_with(
    session: &Session<'_>,
    user: &str,
    password: &str,
    extra: &[&str],
    env: &[(&str, &Path)],
) -> String {
    let mut args = vec!["login", user, "--password-stdin"];
    args.extend_from_slice(extra);
    let mut command = session.command(&args);
    for (name, value) in env {
        command.env(name, value);
    }
    let mut child =
        command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), format!("{password}\n").as_bytes()).unwrap();
    succeeded(&args, child.wait_with_output().unwrap())
}

/// `ssh -G`: how OpenSSH itself resolves `host` under the configuration file `config`.
fn ssh_resolved(config: &Path, host: &str) -> String {
    let out =
        Command::new("ssh").arg("-F").arg(config).args(["-G", host]).output().expect("ssh (openssh-client)");
    assert!(out.status.success(), "ssh -G: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// The port of the portal's (only) jump host.
fn jump_port(session: &Session<'_>) -> u64 {
    let jumps = session.json(&["xdc", "jumphosts"]);
    assert_eq!(jumps["jumpHosts"].as_array().map(Vec::len), Some(1), "{jumps}");
    assert_eq!(jumps["jumpHosts"][0]["fqdn"], "127.0.0.1", "{jumps}");
    jumps["jumpHosts"][0]["port"].as_u64().unwrap()
}

/// Waits until the local runtime has removed every XDC, so deleting really removes them.
fn wait_xdcs_removed(portal: &Portal) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !portal.xdcs_on_runtime().is_empty() {
        assert!(Instant::now() < deadline, "XDCs still on the runtime: {:?}", portal.xdcs_on_runtime());
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn login_installs_key_certificate_and_mergejump() {
    let portal = Portal::start();
    let admin = portal.session("admin");
    let out = login_with(&admin, "admin", ADMIN_PASSWORD, &[], &[]);
    let ssh = admin.home.join(".ssh");
    assert!(out.contains(&format!("installed the SSH key and certificate in {}", ssh.display())), "{out}");
    let port = jump_port(&admin);

    // The files `mrg login` writes, with its modes, in ~/.ssh by default.
    assert_eq!(mode(&ssh), 0o700);
    assert_eq!(mode(&ssh.join("merge_key")), 0o600);
    assert_eq!(mode(&ssh.join("merge_key.pub")), 0o644);
    assert_eq!(mode(&ssh.join("merge_key-cert.pub")), 0o644);
    // The public key is the private key's, and the certificate names the user.
    let derived = Command::new("ssh-keygen").arg("-y").arg("-f").arg(ssh.join("merge_key")).output().unwrap();
    assert!(derived.status.success(), "{}", String::from_utf8_lossy(&derived.stderr));
    let public = std::fs::read_to_string(ssh.join("merge_key.pub")).unwrap();
    let first_two = |s: &str| s.split_whitespace().take(2).collect::<Vec<_>>().join(" ");
    assert_eq!(first_two(&String::from_utf8_lossy(&derived.stdout)), first_two(&public));
    let cert =
        Command::new("ssh-keygen").arg("-L").arg("-f").arg(ssh.join("merge_key-cert.pub")).output().unwrap();
    let cert = String::from_utf8_lossy(&cert.stdout).into_owned();
    assert!(cert.contains("user certificate"), "{cert}");
    let principals = cert.split("Principals:").nth(1).and_then(|s| s.lines().nth(1)).map(str::trim);
    assert_eq!(principals, Some("admin"), "{cert}");
    let known = std::fs::read_to_string(ssh.join("trellis_known_hosts")).unwrap();
    assert!(known.starts_with("@cert-authority * ssh-ed25519 ") && known.lines().count() == 1, "{known}");

    // OpenSSH reads the block as intended.
    let resolved = ssh_resolved(&ssh.join("config"), "mergejump");
    for line in [
        "hostname 127.0.0.1".to_owned(),
        format!("port {port}"),
        "user admin".to_owned(),
        format!("identityfile {}", ssh.join("merge_key").display()),
        format!("certificatefile {}", ssh.join("merge_key-cert.pub").display()),
        format!("userknownhostsfile {}", ssh.join("trellis_known_hosts").display()),
    ] {
        assert!(resolved.lines().any(|l| l == line), "{line} missing from:\n{resolved}");
    }
    let resolved = ssh_resolved(&ssh.join("trellis_ssh_config"), "x0-p");
    assert!(
        resolved.lines().any(|l| l == format!("identityfile {}", ssh.join("merge_key").display())),
        "{resolved}"
    );

    // Another directory (TRELLIS_SSH_DIR) whose config has the user's own lines, without a
    // final newline: they stay, the block is added once, and a second login changes nothing.
    admin.register("bob", "bobpass1234");
    let bob = portal.session("bob");
    let dir = bob.home.join("elsewhere");
    std::fs::create_dir(&dir).unwrap();
    let mine = "Host work\n    HostName work.example.org\n    User me";
    std::fs::write(dir.join("config"), mine).unwrap();
    std::fs::set_permissions(dir.join("config"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = login_with(&bob, "bob", "bobpass1234", &["--json"], &[("TRELLIS_SSH_DIR", &dir)]);
    let value: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(value["ssh"]["jumpHost"], format!("bob@127.0.0.1:{port}"), "{value}");
    assert_eq!(value["ssh"]["dir"], dir.to_str().unwrap(), "{value}");
    assert!(!bob.home.join(".ssh").exists(), "the default directory was used too");
    let config = std::fs::read_to_string(dir.join("config")).unwrap();
    assert!(config.starts_with(&format!("{mine}\n\n# BEGIN trellis")), "{config}");
    assert_eq!(config.matches("Host mergejump\n").count(), 1, "{config}");
    assert_eq!(mode(&dir.join("config")), 0o644, "the config keeps its mode");
    assert!(ssh_resolved(&dir.join("config"), "work").lines().any(|l| l == "hostname work.example.org"));
    assert!(ssh_resolved(&dir.join("config"), "mergejump").lines().any(|l| l == "user bob"));
    let key = std::fs::read(dir.join("merge_key")).unwrap();
    login_with(&bob, "bob", "bobpass1234", &["--ssh-dir", dir.to_str().unwrap()], &[]);
    assert_eq!(
        std::fs::read_to_string(dir.join("config")).unwrap(),
        config,
        "second login changed the config"
    );
    assert_eq!(std::fs::read(dir.join("merge_key")).unwrap(), key, "the user's key pair is stable");

    // --no-ssh installs nothing.
    let untouched = bob.home.join("untouched");
    let out =
        login_with(&bob, "bob", "bobpass1234", &["--no-ssh", "--json"], &[("TRELLIS_SSH_DIR", &untouched)]);
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap()["ssh"], Value::Null, "{out}");
    assert!(!untouched.exists());
    // ... and `xdc ssh` then says what is missing.
    let mut command = bob.command(&["xdc", "ssh", "x0.p", "--dry-run"]);
    let out = command.env("TRELLIS_SSH_DIR", &untouched).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("merge_key is missing; run `trellis login`"), "{stderr}");
}

#[test]
fn xdc_create_list_show_update_delete_and_command_lines() {
    let portal = Portal::start();
    let admin = portal.session("admin");
    admin.login("admin", ADMIN_PASSWORD);
    admin.register("alice", "alicepass123");
    admin.register("bob", "bobpass1234");
    let alice = portal.session("alice");
    alice.login("alice", "alicepass123");
    let bob = portal.session("bob");
    bob.login("bob", "bobpass1234");
    alice.ok(&["new", "project", "xdcp1", "--mode", "public"]);
    let port = jump_port(&alice);

    let out = alice.ok(&["new", "xdc", "x0.xdcp1"]);
    assert!(
        out.starts_with("created XDC x0.xdcp1; reach it with `trellis xdc ssh x0.xdcp1` (ssh name x0-xdcp1)"),
        "{out}"
    );
    let created = alice.json(&[
        "new",
        "xdc",
        "x1.xdcp1",
        "--type",
        "personal",
        "--cpu",
        "1",
        "--memory",
        "1",
        "--expires",
        "2d",
    ]);
    assert_eq!(created["xdc"]["name"], "x1.xdcp1", "{created}");
    let stderr = alice.fails(&["new", "xdc", "x0.xdcp1"], 1);
    assert!(stderr.contains("AlreadyExists"), "{stderr}");
    let stderr = alice.fails(&["new", "xdc", "x2.nosuchproject"], 1);
    assert!(stderr.contains("NotFound"), "{stderr}");

    // The table: one row per XDC with its SSH name and Jupyter URL.
    let table = alice.ok(&["list", "xdcs"]);
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "CREATOR", "TYPE", "MATERIALIZATION", "SSH", "URL"], "{table}");
    let row: Vec<&str> = table.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(row[..4], ["x0.xdcp1", "alice", "shared", "x0-xdcp1"], "{table}");
    assert!(row[4].starts_with("http://127.0.0.1:") && row[4].ends_with("/xdcp1/x0/"), "{table}");
    assert!(table.lines().nth(2).unwrap().starts_with("x1.xdcp1  alice    personal"), "{table}");
    assert_eq!(table.lines().count(), 3, "{table}");
    let listed = alice.json(&["list", "xdc"]);
    assert_eq!(names(&listed["xdcs"], "name"), ["x0.xdcp1", "x1.xdcp1"]);
    assert_eq!(names(&listed["xdcs"], "fqdn"), ["x0-xdcp1", "x1-xdcp1"]);
    // A non-member sees none, even of a public project (XDCs hold the members' accounts).
    assert_eq!(bob.json(&["list", "xdcs", "-a"])["xdcs"], Value::Array(vec![]));
    // Without --all (or a project), only XDCs of your own projects: none for the
    // administrator, who may nevertheless see all.
    assert_eq!(admin.json(&["list", "xdcs"])["xdcs"], Value::Array(vec![]));
    assert_eq!(names(&admin.json(&["list", "xdcs", "--all"])["xdcs"], "name"), ["x0.xdcp1", "x1.xdcp1"]);
    assert_eq!(
        names(&admin.json(&["list", "xdcs", "-p", "xdcp1"])["xdcs"], "name"),
        ["x0.xdcp1", "x1.xdcp1"]
    );

    // Show: the fields and the status tree (Pending while it starts, Success once it runs).
    let shown = alice.json(&["show", "xdc", "x1.xdcp1"]);
    let x = &shown["xdc"];
    assert_eq!(
        (x["type"].as_str(), x["cpulimit"].as_i64(), x["memlimit"].as_i64()),
        (Some("personal"), Some(1), Some(1))
    );
    assert!(x["expires"].is_string(), "{shown}");
    assert_eq!(shown["status"]["task"]["name"], "x1.xdcp1", "{shown}");
    let state = shown["status"]["highestStatus"].as_str().unwrap();
    assert!(["Pending", "Success"].contains(&state), "{shown}");
    let text = alice.ok(&["show", "xdc", "x0.xdcp1", "-S"]);
    for line in [
        "name:            x0.xdcp1",
        "type:            shared",
        "ssh:             x0-xdcp1",
        "expires:         never",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} missing from:\n{text}");
    }
    assert!(text.lines().any(|l| l.starts_with("url:") && l.ends_with("/xdcp1/x0/ (Jupyter)")), "{text}");
    let tree = text.split("\n\n").nth(1).unwrap_or_else(|| panic!("no status tree:\n{text}"));
    assert!(tree.starts_with("x0.xdcp1  "), "{text}");

    // Expiry.
    let out = alice.ok(&["update", "xdc", "x0.xdcp1", "--expires", "3d"]);
    assert!(out.starts_with("x0.xdcp1 now expires 20"), "{out}");
    assert!(alice.json(&["show", "xdc", "x0.xdcp1"])["xdc"]["expires"].is_string());
    assert_eq!(
        alice.ok(&["update", "xdc", "x0.xdcp1", "--expires", "never"]),
        "x0.xdcp1 now expires never\n"
    );
    assert!(alice.json(&["show", "xdc", "x0.xdcp1"])["xdc"]["expires"].is_null());

    // Command lines, exactly as they would run.
    let ssh_dir = alice.home.join(".ssh");
    let config = ssh_dir.join("trellis_ssh_config");
    let jump = format!("alice@127.0.0.1:{port}");
    assert_eq!(
        alice.ok(&["xdc", "ssh", "x0.xdcp1", "--dry-run"]),
        format!("ssh -F {} -J {jump} alice@x0-xdcp1\n", config.display())
    );
    assert_eq!(
        alice.ok(&[
            "xdc",
            "ssh",
            "x0.xdcp1",
            "-x",
            "a",
            "-L",
            "8888:localhost:8888",
            "--dry-run",
            "--",
            "echo",
            "two words"
        ]),
        format!(
            "ssh -F {} -J {jump},alice@x0-xdcp1 -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
             -o LogLevel=ERROR -L 8888:localhost:8888 alice@a echo 'two words'\n",
            config.display()
        )
    );
    let argv = alice.json(&["xdc", "ssh", "x1.xdcp1", "--jump", "jump.example.net:2022", "--dry-run"]);
    let argv: Vec<&str> = argv["command"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
    assert_eq!(
        argv,
        ["ssh", "-F", config.to_str().unwrap(), "-J", "alice@jump.example.net:2022", "alice@x1-xdcp1"]
    );
    assert_eq!(
        alice.ok(&["xdc", "scp", "upload", "x0.xdcp1", "a.txt", "b:c", "dir/", "-r", "--dry-run"]),
        format!("scp -F {} -J {jump} -r a.txt ./b:c alice@x0-xdcp1:dir/\n", config.display())
    );
    assert_eq!(
        alice.ok(&["xdc", "scp", "download", "x0.xdcp1", "/tmp/out", ".", "--dry-run"]),
        format!("scp -F {} -J {jump} alice@x0-xdcp1:/tmp/out .\n", config.display())
    );
    let stderr = alice.fails(&["xdc", "ssh", "nope.xdcp1", "--dry-run"], 1);
    assert!(stderr.contains("NotFound"), "{stderr}");

    // Attaching needs a materialization of the XDC's project.
    alice.ok(&["new", "experiment", "e.xdcp1"]);
    let stderr = alice.fails(&["xdc", "attach", "x0.xdcp1", "r.e.xdcp1"], 1);
    assert!(stderr.contains("FailedPrecondition") && stderr.contains("not materialized"), "{stderr}");
    let stderr = alice.fails(&["xdc", "attach", "x0.xdcp1", "r.e.elsewhere", "--force"], 1);
    assert!(stderr.contains("elsewhere"), "{stderr}");
    assert_eq!(alice.ok(&["xdc", "detach", "x0.xdcp1"]), "detaching x0.xdcp1\n");

    // Images, and deleting: not by a stranger, then for good.
    let images = alice.json(&["xdc", "images"]);
    assert_eq!(names(&images["images"], "image"), ["default"]);
    let stderr = bob.fails(&["delete", "xdc", "x0.xdcp1"], 1);
    assert!(stderr.contains("PermissionDenied"), "{stderr}");
    assert_eq!(alice.ok(&["delete", "xdc", "x0.xdcp1"]), "deleted XDC x0.xdcp1\n");
    alice.ok(&["delete", "xdc", "x1.xdcp1"]);
    assert_eq!(alice.json(&["list", "xdcs"])["xdcs"], Value::Array(vec![]));
    let stderr = alice.fails(&["show", "xdc", "x0.xdcp1"], 1);
    assert!(stderr.contains("NotFound"), "{stderr}");
    wait_xdcs_removed(&portal);
}

/// A file of `len` bytes that is not all one value.
fn patterned_file(path: &Path, len: usize) -> Vec<u8> {
    let data: Vec<u8> = (0..len).map(|i| (i * 7 + i / 251) as u8).collect();
    std::fs::write(path, &data).unwrap();
    data
}

#[test]
fn ssh_and_scp_reach_a_running_xdc_through_the_jump_host() {
    let portal = Portal::start();
    let admin = portal.session("admin");
    admin.login("admin", ADMIN_PASSWORD);
    admin.register("carol", "carolpass123");
    let carol = portal.session("carol");
    carol.login("carol", "carolpass123");
    carol.ok(&["new", "project", "sshp1"]);
    carol.ok(&["new", "xdc", "dev.sshp1"]);

    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let shown = carol.json(&["show", "xdc", "dev.sshp1"]);
        match shown["status"]["highestStatus"].as_str() {
            Some("Success") => break,
            Some("Error") => panic!("the XDC failed: {}", carol.ok(&["show", "xdc", "dev.sshp1", "-S"])),
            _ => {}
        }
        assert!(
            Instant::now() < deadline,
            "the XDC did not start: {}",
            carol.ok(&["show", "xdc", "dev.sshp1", "-S"])
        );
        std::thread::sleep(Duration::from_millis(500));
    }

    // The real OpenSSH client, through the portal's jump host, with the portal's certificate
    // and host CA only (no prompt could be answered: standard input is closed).
    let out = carol.ok(&["xdc", "ssh", "dev.sshp1", "--", "echo trellis-ok; id -un; hostname"]);
    assert_eq!(out, "trellis-ok\ncarol\ndev-sshp1\n");
    // ssh's exit status is the command's, because trellis became ssh.
    let status = carol.run(&["xdc", "ssh", "dev.sshp1", "--", "exit 7"]).status;
    assert_eq!(status.code(), Some(7));

    // scp both ways, into the user's home on the XDC.
    let local: PathBuf = carol.home.join("up.bin");
    let data = patterned_file(&local, 3 << 20);
    carol.ok(&["xdc", "scp", "upload", "dev.sshp1", local.to_str().unwrap(), "copied.bin"]);
    let out = carol.ok(&["xdc", "ssh", "dev.sshp1", "--", "wc -c < copied.bin"]);
    assert_eq!(out.trim(), data.len().to_string());
    let back = carol.home.join("down.bin");
    carol.ok(&["xdc", "scp", "download", "dev.sshp1", "copied.bin", back.to_str().unwrap()]);
    assert!(std::fs::read(&back).unwrap() == data, "the file came back different");

    carol.ok(&["delete", "xdc", "dev.sshp1"]);
    wait_xdcs_removed(&portal);
}
