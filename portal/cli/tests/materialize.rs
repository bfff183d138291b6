//! End-to-end tests of materializations through the `trellis` binary against a real
//! `trellisd up` (see `common/mod.rs`; build `trellisd` first).
//!
//! `trellisd up` runs the built-in facility agent, so nodes really come up: containers in
//! network namespaces, run by crun (the test runs as root, as CI does).

mod common;

use common::{ADMIN_PASSWORD, Portal, Session};

/// Three VMs in a line: two point-to-point links.
const LINE: &str = "from mergexp import *
net = Network('line')
a, b, c = [net.node(n) for n in ['a', 'b', 'c']]
net.connect([a, b])
net.connect([b, c])
experiment(net)
";

const MZID: &str = "r1.line.matproj";

fn realize_line(admin: &Session<'_>) {
    admin.ok(&["new", "project", "matproj", "materialization tests"]);
    admin.ok(&["new", "experiment", "line.matproj"]);
    let path = admin.home.join("line.py");
    std::fs::write(&path, LINE).unwrap();
    admin.ok(&["push", path.to_str().unwrap(), "line.matproj", "--tag", "v1"]);
    admin.ok(&["realize", MZID, "tag", "v1"]);
}

#[test]
fn materialize_show_generate_reboot_and_dematerialize() {
    let portal = Portal::start();
    let admin = portal.session("admin");
    admin.login("admin", ADMIN_PASSWORD);
    realize_line(&admin);

    // --sync waits until every node answers, showing progress.
    let out = admin.run(&["materialize", MZID, "--sync", "--timeout", "120"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("3/3 nodes ready, 2/2 links ready"), "{stdout}");
    let stderr = admin.fails(&["materialize", MZID], 1);
    assert!(stderr.contains("AlreadyExists"), "{stderr}");

    // The status tree: the materialization, the facility, its 3 nodes and 2 links, all up.
    let text = admin.ok(&["show", "mat", MZID, "-S"]);
    assert!(text.lines().any(|l| l.starts_with("materialization:") && l.ends_with(MZID)), "{text}");
    let leaves: Vec<&str> =
        text.lines().filter(|l| l.starts_with("   ├─ ") || l.starts_with("   └─ ")).collect();
    assert_eq!(leaves.len(), 5, "3 nodes and 2 links: {text}");
    assert!(leaves.iter().all(|l| l.contains("Success")), "{text}");

    // Nodes with their infranet addresses, in the table, the JSON and the generated files.
    let shown = admin.json(&["show", "mat", MZID]);
    let nodes = shown["nodes"].as_array().unwrap();
    let mut addresses = Vec::new();
    for (node, name) in nodes.iter().zip(["a", "b", "c"]) {
        assert_eq!((node["name"].as_str(), node["kind"].as_str()), (Some(name), Some("VM")), "{shown}");
        assert_eq!(node["facility"], "local", "{shown}");
        let address = node["infranetAddr"].as_str().unwrap().to_owned();
        assert!(!address.is_empty(), "{name} has no infranet address: {shown}");
        addresses.push((name, address));
    }
    assert_eq!(shown["status"]["task"]["name"], MZID, "{shown}");

    let hosts = admin.ok(&["nodes", "generate", "etchosts", MZID]);
    let expected: String =
        addresses.iter().map(|(name, addr)| format!("{addr} {name} {name}.infra.{MZID}\n")).collect();
    assert_eq!(hosts, expected);
    let inventory = admin.ok(&["nodes", "gen", "inventory", MZID]);
    for (name, addr) in &addresses {
        assert!(inventory.contains(&format!("\n{name} ansible_host={addr}\n")), "{inventory}");
    }
    assert!(inventory.starts_with("[all]\n") && inventory.contains("\n[vms]\na\nb\nc\n"), "{inventory}");

    let listed = admin.ok(&["list", "materializations"]);
    let header: Vec<&str> = listed.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["MATERIALIZATION", "METAL", "VMS", "LINKS", "STATUS"]);
    let row = listed.lines().find(|l| l.starts_with(MZID)).unwrap_or_else(|| panic!("{listed}"));
    assert_eq!(row.split_whitespace().collect::<Vec<_>>()[1..4], ["0", "3", "2"], "{row}");

    // A reboot is accepted for named nodes; naming none is a usage error.
    admin.ok(&["nodes", "reboot", MZID, "b"]);
    admin.fails(&["nodes", "reboot", MZID], 2);

    // Teardown: --sync waits until the facility confirms and the record is gone.
    let out = admin.run(&["dematerialize", MZID, "--sync", "--timeout", "120"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stderr = admin.fails(&["show", "mat", MZID], 1);
    assert!(stderr.contains("NotFound") || stderr.contains("not found"), "{stderr}");
    admin.ok(&["relinquish", MZID]);
}
