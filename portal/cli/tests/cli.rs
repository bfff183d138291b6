//! End-to-end tests of the `trellis` binary against a real `trellisd`: accounts, keys,
//! projects, experiments, models, login state and TLS.
//!
//! Each test starts its own `trellisd up` on a free loopback port with a temporary data
//! directory, and runs the real `trellis` binary with its own configuration file, `HOME` and
//! `XDG_CONFIG_HOME` inside a temporary directory, so the user's real configuration is never
//! read or written (see `common/mod.rs`; build `trellisd` first).

mod common;

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::{ADMIN_PASSWORD, Portal, names, succeeded};
use serde_json::Value;

/// Generates an ed25519 key pair with `ssh-keygen`; returns the public key file.
fn ssh_key(dir: &Path) -> PathBuf {
    let key = dir.join("k");
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "test@trellis", "-f"])
        .arg(&key)
        .status()
        .expect("ssh-keygen (openssh-client) is needed to generate a test key");
    assert!(status.success());
    key.with_extension("pub")
}

/// The fingerprint `ssh-keygen -l` prints for a public key file.
fn fingerprint(public: &Path) -> String {
    let out = Command::new("ssh-keygen").arg("-lf").arg(public).output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    text.split_whitespace().nth(1).unwrap().to_owned()
}

#[test]
fn register_activate_keys_projects_experiments() {
    let portal = Portal::start();
    let admin = portal.session("admin");
    let alice = portal.session("alice");

    // Self-registration: the account waits for an administrator.
    alice.register("alice", "alicepass123");
    admin.login("admin", ADMIN_PASSWORD);
    let users = admin.json(&["list", "users", "--all"]);
    let pending: Vec<_> =
        users["users"].as_array().unwrap().iter().filter(|u| u["username"] == "alice").collect();
    assert_eq!(pending.len(), 1, "{users}");
    assert_eq!(pending[0]["state"], "Pending");
    assert!(admin.ok(&["activate", "user", "alice"]).contains("activated user alice"));
    assert_eq!(admin.json(&["show", "user", "alice"])["user"]["state"], "Active");
    // An administrator's registration starts active.
    admin.register("bob", "bobpass1234");
    assert_eq!(admin.json(&["show", "user", "bob"])["user"]["state"], "Active");

    alice.login("alice", "alicepass123");
    assert_eq!(alice.ok(&["whoami"]), "alice\n");
    let token = alice.stored_token().expect("login stores a token");
    assert_eq!(alice.ok(&["whoami", "-t"]), format!("alice\n{token}\n"));
    assert_eq!(alice.json(&["whoami"])["username"], "alice");

    // SSH keys.
    let public = ssh_key(&alice.home);
    let fp = fingerprint(&public);
    alice.ok(&["keys", "add", public.to_str().unwrap()]);
    let listed = alice.ok(&["keys", "list"]);
    assert!(listed.starts_with("FINGERPRINT"), "{listed}");
    assert!(
        listed.contains(&fp) && listed.contains("ssh-ed25519") && listed.contains("test@trellis"),
        "{listed}"
    );
    let keys = alice.json(&["keys", "list"]);
    assert_eq!(names(&keys["keys"], "fingerprint"), [fp.as_str()]);
    let file_key = std::fs::read_to_string(&public).unwrap();
    assert_eq!(keys["keys"][0]["key"].as_str().unwrap().trim(), file_key.trim());
    // Administrators may look at anyone's keys.
    assert_eq!(
        names(&admin.json(&["keys", "list", "--user", "alice"])["keys"], "fingerprint"),
        [fp.as_str()]
    );
    alice.ok(&["keys", "delete", &fp]);
    assert_eq!(alice.json(&["keys", "list"])["keys"], Value::Array(vec![]));

    // A project with a member and an experiment (unique prefixes work too).
    alice.ok(&["new", "project", "proj1", "the first project", "--mode", "private"]);
    alice.ok(&["new", "mem", "proj", "proj1", "bob", "-r", "Maintainer"]);
    alice.ok(&["new", "experiment", "exp1.proj1", "an experiment"]);

    let table = alice.ok(&["list", "projects"]);
    let header = table.lines().next().unwrap();
    assert_eq!(header.split_whitespace().collect::<Vec<_>>(), ["NAME", "DESCRIPTION", "MODE", "MEMBERS"]);
    let row = table.lines().find(|l| l.starts_with("proj1 ")).unwrap_or_else(|| panic!("{table}"));
    assert!(row.contains("the first project") && row.contains("Private"), "{row}");
    assert!(row.contains("alice (Creator), bob (Maintainer)"), "{row}");
    // Columns line up: each value starts where its header does.
    assert_eq!(row.find("the first project"), header.find("DESCRIPTION"), "{table}");

    let projects = alice.json(&["list", "projects"]);
    let proj1 = projects["projects"].as_array().unwrap().iter().find(|p| p["name"] == "proj1").unwrap();
    assert_eq!(proj1["description"], "the first project");
    assert_eq!(proj1["accessMode"], "Private");
    assert_eq!(proj1["members"]["alice"]["role"], "Creator");
    assert_eq!(proj1["members"]["bob"]["role"], "Maintainer");
    assert_eq!(proj1["members"]["bob"]["state"], "Active");
    assert_eq!(proj1["experiments"], serde_json::json!(["exp1"]));

    let experiments = alice.json(&["list", "experiments"]);
    assert_eq!(names(&experiments["experiments"], "name"), ["exp1"]);
    assert_eq!(experiments["experiments"][0]["project"], "proj1");
    assert_eq!(experiments["experiments"][0]["creator"], "alice");
    let table = alice.ok(&["list", "experiments"]);
    assert!(table.lines().any(|l| l.starts_with("exp1.proj1 ") && l.contains("an experiment")), "{table}");

    let shown = alice.ok(&["show", "project", "proj1"]);
    assert!(shown.lines().any(|l| l.starts_with("name:") && l.ends_with(" proj1")), "{shown}");
    assert!(shown.lines().any(|l| l.starts_with("mode:") && l.ends_with(" Private")), "{shown}");
    let exp = alice.json(&["show", "experiment", "exp1.proj1"]);
    assert_eq!(exp["experiment"]["description"], "an experiment");
    assert_eq!(exp["experiment"]["accessMode"], "Public");

    // Another user's filter: bob belongs to proj1 now.
    let bob = portal.session("bob");
    bob.login("bob", "bobpass1234");
    assert!(names(&bob.json(&["list", "projects"])["projects"], "name").contains(&"proj1".to_owned()));

    // Tear down, checking each step took effect.
    alice.ok(&["delete", "member", "project", "proj1", "bob"]);
    let members = alice.json(&["show", "project", "proj1"])["project"]["members"].clone();
    assert!(members.get("bob").is_none(), "{members}");
    alice.ok(&["delete", "experiment", "exp1.proj1"]);
    let stderr = alice.fails(&["show", "experiment", "exp1.proj1"], 1);
    assert!(stderr.starts_with("error: ") && stderr.contains("NotFound"), "{stderr}");
    alice.ok(&["delete", "project", "proj1"]);
    let stderr = alice.fails(&["show", "project", "proj1"], 1);
    assert!(stderr.contains("NotFound"), "{stderr}");
}

#[test]
fn organizations_and_frozen_users() {
    let portal = Portal::start();
    let admin = portal.session("admin");
    admin.login("admin", ADMIN_PASSWORD);
    admin.ok(&["new", "organization", "org1", "an organization"]);
    let orgs = admin.json(&["list", "organizations"]);
    assert_eq!(names(&orgs["organizations"], "name"), ["org1"]);
    assert_eq!(orgs["organizations"][0]["members"]["admin"]["role"], "Creator");
    let shown = admin.ok(&["show", "organization", "org1"]);
    assert!(shown.contains("an organization"), "{shown}");
    admin.ok(&["delete", "organization", "org1"]);
    assert_eq!(admin.json(&["list", "organizations", "--all"])["organizations"], Value::Array(vec![]));

    admin.register("carol", "carolpass123");
    admin.ok(&["freeze", "user", "carol"]);
    assert_eq!(admin.json(&["show", "user", "carol"])["user"]["state"], "Frozen");
    let carol = portal.session("carol");
    let args = ["login", "carol", "--password-stdin"];
    let out = carol.run_with_input(&args, "carolpass123\n");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("frozen") && stderr.contains("PermissionDenied"), "{stderr}");
}

#[test]
fn errors_are_clear_and_exit_non_zero() {
    let portal = Portal::start();
    let nobody = portal.session("nobody");
    // Not logged in: the portal says so.
    let stderr = nobody.fails(&["whoami"], 1);
    assert!(stderr.contains("no access token provided") && stderr.contains("Unauthenticated"), "{stderr}");
    let stderr = nobody.fails(&["list", "projects"], 1);
    assert!(stderr.contains("no access token provided"), "{stderr}");
    let stderr = nobody.fails(&["logout"], 1);
    assert!(stderr.contains("not logged in"), "{stderr}");

    let admin = portal.session("admin");
    let args = ["login", "admin", "--password-stdin"];
    let out = admin.run_with_input(&args, "wrong-password\n");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("error: "));
    admin.login("admin", ADMIN_PASSWORD);

    // A bad name is rejected by the portal with the offending value.
    let stderr = admin.fails(&["new", "project", "Bad_Name"], 1);
    assert!(stderr.starts_with("error: ") && stderr.contains("Bad_Name"), "{stderr}");
    assert!(stderr.contains("InvalidArgument"), "{stderr}");
    // Usage errors are caught before any call, with exit status 2.
    let stderr = admin.fails(&["new", "experiment", "no-project-part"], 2);
    assert!(stderr.contains("<experiment>.<project>"), "{stderr}");
    admin.fails(&["new", "project", "p", "--mode", "secret"], 2);
    admin.fails(&["frobnicate"], 2);

    // An unreachable portal.
    let dead = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let stderr = admin.fails(&["--server", &dead.to_string(), "whoami"], 1);
    assert!(stderr.contains("cannot connect to http://127.0.0.1:"), "{stderr}");
    let stderr = admin.fails(&["--server", "ftp://x:1", "whoami"], 1);
    assert!(stderr.contains("bad server address"), "{stderr}");
}

#[test]
fn logout_revokes_and_forgets_the_token() {
    let portal = Portal::start();
    let admin = portal.session("admin");
    admin.login("admin", ADMIN_PASSWORD);
    let token = admin.stored_token().unwrap();
    assert_eq!(admin.ok(&["whoami"]), "admin\n");
    assert!(admin.ok(&["logout"]).contains("logged out"));
    assert_eq!(admin.stored_token(), None);
    let stderr = admin.fails(&["whoami"], 1);
    assert!(stderr.contains("no access token provided"), "{stderr}");

    // The old token was revoked on the portal, not only forgotten here.
    let server = format!("http://{}", portal.addr);
    std::fs::write(&admin.config, format!("server: {server}\ntoken: {token}\nusername: admin\n")).unwrap();
    let stderr = admin.fails(&["whoami"], 1);
    assert!(stderr.contains("Unauthenticated") && !stderr.contains("no access token"), "{stderr}");
}

#[test]
fn default_config_file_is_private_and_tokens_stay_with_their_server() {
    use std::os::unix::fs::PermissionsExt;

    let portal = Portal::start();
    let user = portal.session("default");
    // No --config: the file goes under XDG_CONFIG_HOME.
    let run = |args: &[&str], server_env: Option<&str>, input: &str| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_trellis"));
        cmd.args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &user.home)
            .env("XDG_CONFIG_HOME", user.home.join("xdg"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(server) = server_env {
            cmd.env("TRELLIS_SERVER", server);
        }
        let mut child = cmd.spawn().unwrap();
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
        child.wait_with_output().unwrap()
    };
    let login = ["login", "admin", "--password-stdin"];
    succeeded(&login, run(&login, Some(&portal.addr), &format!("{ADMIN_PASSWORD}\n")));
    let path = user.home.join("xdg/trellis/config.yml");
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let dir_mode = std::fs::metadata(path.parent().unwrap()).unwrap().permissions().mode() & 0o777;
    assert_eq!(dir_mode, 0o700);

    // The stored server is used when none is given.
    assert_eq!(succeeded(&["whoami"], run(&["whoami"], None, "")), "admin\n");
    // The same portal under another name is another server: the token is not sent there.
    let other = format!("http://localhost:{}", portal.addr.rsplit(':').next().unwrap());
    let out = run(&["whoami"], Some(&other), "");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no access token provided"));
}

/// Runs `openssl` in `dir`, failing the test if it fails.
fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl").args(args).current_dir(dir).output().expect("openssl is needed");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A private CA and a server certificate it signed for 127.0.0.1: (ca.pem, server.pem, server.key).
fn private_ca(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    std::fs::write(
        dir.join("ca.cnf"),
        "[req]\ndistinguished_name = dn\nx509_extensions = v3_ca\nprompt = no\n\
         [dn]\nCN = trellis test CA\n\
         [v3_ca]\nbasicConstraints = critical,CA:TRUE\nkeyUsage = critical,keyCertSign,cRLSign\n\
         subjectKeyIdentifier = hash\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("leaf.ext"),
        "basicConstraints = CA:FALSE\nkeyUsage = critical,digitalSignature\n\
         extendedKeyUsage = serverAuth\nsubjectAltName = IP:127.0.0.1,DNS:localhost\n",
    )
    .unwrap();
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    let mut args =
        vec!["req", "-x509", "-config", "ca.cnf", "-days", "2", "-keyout", "ca.key", "-out", "ca.pem"];
    args.extend(ec);
    openssl(dir, &args);
    let mut args = vec![
        "req",
        "-new",
        "-config",
        "ca.cnf",
        "-subj",
        "/CN=localhost",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    ];
    args.extend(ec);
    openssl(dir, &args);
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "leaf.ext",
            "-out",
            "server.pem",
        ],
    );
    (dir.join("ca.pem"), dir.join("server.pem"), dir.join("server.key"))
}

#[test]
fn https_with_a_private_ca() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    std::fs::create_dir(&certs).unwrap();
    let (ca, cert, key) = private_ca(&certs);
    let portal = Portal::start_with(dir, Some((cert, key)));
    assert!(portal.server.starts_with("https://"));

    // Without the CA the server's certificate is not trusted.
    let stranger = portal.session("stranger");
    let stderr = stranger.fails(&["whoami"], 1);
    assert!(stderr.contains(&format!("cannot connect to {}", portal.server)), "{stderr}");

    // With it, login works, and the CA is remembered for later commands to this server.
    let admin = portal.session("admin");
    let ca = ca.to_str().unwrap();
    let args = ["--ca-cert", ca, "login", "admin", "--password-stdin"];
    succeeded(&args, admin.run_with_input(&args, &format!("{ADMIN_PASSWORD}\n")));
    assert_eq!(admin.ok(&["whoami"]), "admin\n");
    let config = std::fs::read_to_string(&admin.config).unwrap();
    assert!(config.contains(&format!("ca_cert: {ca}")), "{config}");
}

#[test]
fn compile_and_push_models() {
    let portal = Portal::start();
    let admin = portal.session("admin");
    admin.login("admin", ADMIN_PASSWORD);
    admin.ok(&["new", "experiment", "hello.admin"]);
    let good = portal.dir.path().join("model.py");
    std::fs::write(
        &good,
        "from mergexp import *\nnet = Network('hello')\na, b = [net.node(n) for n in ['a', 'b']]\nnet.connect([a, b])\nexperiment(net)\n",
    )
    .unwrap();
    let bad = portal.dir.path().join("bad.py");
    std::fs::write(
        &bad,
        "from mergexp import *\nnet = Network('x')\nnet.node('a', image=='win95')\nexperiment(net)\n",
    )
    .unwrap();
    let (good, bad) = (good.to_str().unwrap(), bad.to_str().unwrap());

    assert!(admin.ok(&["compile", good]).contains("compiles"));
    let out = admin.run(&["compile", bad]);
    assert_eq!(out.status.code(), Some(1), "a model with errors fails the command");
    assert!(String::from_utf8_lossy(&out.stdout).contains("image \"win95\" is not available"));

    let pushed = admin.json(&["push", good, "hello.admin", "--tag", "v1"]);
    let revision = pushed["revision"].as_str().unwrap().to_owned();
    assert_eq!(revision.len(), 64, "revisions are SHA-256 content hashes");
    let refused = admin.fails(&["push", bad, "hello.admin"], 1);
    assert!(refused.contains("win95"), "{refused}");
    let shown = admin.json(&["show", "experiment", "hello.admin", "-m"]);
    assert_eq!(shown["revisions"], serde_json::json!([revision]));
}
