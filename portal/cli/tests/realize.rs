//! End-to-end tests of realizations, facilities and pools through the `trellis` binary against
//! a real `trellisd up`, which registers this machine as the built-in VM-only facility `local`
//! (see `common/mod.rs`; build `trellisd` first).

mod common;

use std::path::PathBuf;

use common::{ADMIN_PASSWORD, Portal, Session, names};
use prost::Message;
use serde_json::Value;
use trellis_api::xir;

/// Three VMs in a line: two point-to-point links.
const LINE: &str = "from mergexp import *
net = Network('line')
a, b, c = [net.node(n) for n in ['a', 'b', 'c']]
net.connect([a, b])
net.connect([b, c])
experiment(net)
";

/// Valid models the VM-only `local` facility cannot hold.
const NEEDS_METAL: &str = "from mergexp import *
net = Network('metal')
net.node('iron', metal == True)
experiment(net)
";
const NEEDS_MEMORY: &str = "from mergexp import *
net = Network('huge')
net.node('whale', memory.capacity >= gb(4096))
experiment(net)
";

fn write(session: &Session<'_>, name: &str, text: &str) -> String {
    let path = session.home.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

/// Seconds since the epoch of an RFC 3339 timestamp as the CLI prints them.
fn seconds(value: &Value) -> i64 {
    let text = value.as_str().unwrap_or_else(|| panic!("not a timestamp: {value}"));
    text.parse::<prost_types::Timestamp>().unwrap_or_else(|e| panic!("{text:?}: {e}")).seconds
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

const DAY: i64 = 24 * 3600;

/// The sorted node names at the ends of a realized link.
fn link_ends(link: &Value) -> Vec<String> {
    let mut ends: Vec<String> = link["segments"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|s| {
            s["endpoints"].as_array().unwrap().iter().map(|e| e["node"].as_str().unwrap().to_owned())
        })
        .collect();
    ends.sort();
    ends
}

/// The nodes `mzid` holds in the allocation table, checking each entry is Merge-shaped: one
/// node on one resource of the `local` facility, here `host`.
fn allocated_nodes(admin: &Session<'_>, mzid: &str, host: &str) -> Vec<String> {
    let table = admin.json(&["list", "allocations"]);
    let mut nodes = Vec::new();
    for a in table["allocations"].as_array().unwrap().iter().filter(|a| a["mzid"] == mzid) {
        assert_eq!((a["resource"].as_str(), a["facility"].as_str()), (Some(host), Some("local")), "{a}");
        nodes.push(a["node"].as_str().unwrap().to_owned());
    }
    nodes.sort();
    nodes
}

#[test]
fn realize_show_extend_and_relinquish_on_the_local_facility() {
    let portal = Portal::start();
    let admin = portal.session("admin");
    admin.login("admin", ADMIN_PASSWORD);

    // The built-in facility: this machine as one VM host.
    let local = admin.json(&["show", "facility", "local", "--model"]);
    assert_eq!(local["facility"]["name"], "local");
    let resources = local["model"]["resources"].as_array().unwrap();
    assert_eq!(resources.len(), 1, "{local}");
    assert!(resources[0]["roles"].as_array().unwrap().contains(&"Hypervisor".into()), "{local}");
    let host = resources[0]["id"].as_str().unwrap().to_owned();

    // Private, so that someone outside the project may see none of it.
    admin.ok(&["new", "project", "rlzproj", "realization tests", "--mode", "private"]);
    admin.ok(&["new", "experiment", "line.rlzproj", "--mode", "private"]);
    let line = write(&admin, "line.py", LINE);
    let revision =
        admin.json(&["push", &line, "line.rlzproj", "--tag", "v1"])["revision"].as_str().unwrap().to_owned();

    // Realize by tag; the summary names every node's host.
    let out = admin.ok(&["realize", "r1.line.rlzproj", "tag", "v1", "--duration", "7d"]);
    assert!(out.starts_with("realized r1.line.rlzproj (revision "), "{out}");
    assert!(out.contains("3 node(s), 2 link(s)"), "{out}");
    for node in ["a", "b", "c"] {
        let row = out.lines().find(|l| l.starts_with(&format!("{node} "))).unwrap_or_else(|| panic!("{out}"));
        assert!(row.contains(&host) && row.contains("local") && row.contains("VM"), "{row}");
    }

    let shown = admin.json(&["show", "realization", "r1.line.rlzproj"]);
    let r = &shown["realization"];
    assert_eq!(
        (r["id"].as_str(), r["eid"].as_str(), r["pid"].as_str()),
        (Some("r1"), Some("line"), Some("rlzproj"))
    );
    assert_eq!(r["xhash"], revision.as_str());
    assert_eq!(r["creator"], "admin");
    assert_eq!(r["complete"], true);
    let nodes = r["nodes"].as_object().unwrap();
    assert_eq!(nodes.keys().collect::<Vec<_>>(), ["a", "b", "c"]);
    let mut addresses = Vec::new();
    for (name, node) in nodes {
        assert_eq!(node["kind"], "VirtualMachine", "{name}: {node}");
        assert_eq!(node["facility"], "local", "{name}: {node}");
        assert_eq!(node["resource"]["id"], host.as_str(), "{name}: {node}");
        let address = node["infranetAddr"].as_str().unwrap();
        assert!(!address.is_empty(), "{name} has no infranet address: {node}");
        addresses.push(address.to_owned());
    }
    addresses.sort();
    addresses.dedup();
    assert_eq!(addresses.len(), 3, "infranet addresses are distinct: {addresses:?}");
    let links = r["links"].as_object().unwrap();
    let mut ends: Vec<Vec<String>> = links.values().map(link_ends).collect();
    ends.sort();
    assert_eq!(ends, [["a", "b"], ["b", "c"]], "{shown}");
    let lifetime = seconds(&r["expires"]) - seconds(&r["created"]);
    assert!((7 * DAY - 60..=7 * DAY + 60).contains(&lifetime), "7d realization lasts {lifetime} s");
    assert_eq!(shown["status"]["highestStatus"], "Success", "{shown}");

    // The human view: a header, the nodes, the links with their VLANs, the task tree.
    let text = admin.ok(&["show", "realization", "r1.line.rlzproj"]);
    assert!(text.lines().any(|l| l.starts_with("realization:") && l.ends_with("r1.line.rlzproj")), "{text}");
    assert!(text.contains("NODE") && text.contains("INFRANET ADDRESS"), "{text}");
    assert!(text.contains("LINK") && text.contains("ENDPOINTS"), "{text}");
    assert!(text.contains("tasks:") && text.contains("Success"), "{text}");

    // Realize by revision id too, to be kept forever.
    let out = admin.json(&["realize", "r2.line.rlzproj", "revision", &revision, "--duration", "never"]);
    assert_eq!(out["realization"]["expires"], Value::Null, "{out}");

    let listed = admin.ok(&["list", "realizations"]);
    let header: Vec<&str> = listed.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["REALIZATION", "NODES", "LINKS", "EXPIRES", "STATUS"]);
    let row =
        listed.lines().find(|l| l.starts_with("r1.line.rlzproj ")).unwrap_or_else(|| panic!("{listed}"));
    assert_eq!(row.split_whitespace().collect::<Vec<_>>()[1..3], ["3", "2"], "{row}");
    assert!(row.ends_with("Complete"), "{row}");
    let row =
        listed.lines().find(|l| l.starts_with("r2.line.rlzproj ")).unwrap_or_else(|| panic!("{listed}"));
    assert!(row.contains(" never "), "{row}");
    let listed = admin.json(&["list", "realizations"]);
    assert_eq!(names(&listed["realizations"], "id"), ["r1", "r2"]);

    // Every node holds its place in the allocation table.
    assert_eq!(allocated_nodes(&admin, "r1.line.rlzproj", &host), ["a", "b", "c"]);

    // Someone outside the project sees none of it.
    admin.register("bob", "bobpass1234");
    let bob = portal.session("bob");
    bob.login("bob", "bobpass1234");
    assert_eq!(bob.json(&["list", "realizations", "-a"])["realizations"], Value::Array(vec![]));
    let denied = bob.fails(&["show", "realization", "r1.line.rlzproj"], 1);
    assert!(denied.contains("PermissionDenied") || denied.contains("NotFound"), "{denied}");
    let denied = bob.fails(&["relinquish", "r1.line.rlzproj"], 1);
    assert!(denied.contains("PermissionDenied") || denied.contains("NotFound"), "{denied}");

    // Extend, then make permanent, then give it a fixed life again.
    let updated = admin.json(&["update", "realization", "expiration", "r1.line.rlzproj", "30d"]);
    let left = seconds(&updated["expires"]) - now();
    assert!((30 * DAY - 300..=30 * DAY + 60).contains(&left), "30d from now is {left} s away");
    let shown = admin.json(&["show", "realization", "r1.line.rlzproj"]);
    assert_eq!(shown["realization"]["expires"], updated["expires"]);
    let out = admin.ok(&["update", "realization", "expiration", "r1.line.rlzproj", "never"]);
    assert_eq!(out, "r1.line.rlzproj now expires never\n");
    assert_eq!(
        admin.json(&["show", "realization", "r1.line.rlzproj"])["realization"]["expires"],
        Value::Null
    );
    let stderr = admin.fails(&["update", "realization", "expiration", "r1.line.rlzproj", "3x"], 1);
    assert!(stderr.contains("InvalidArgument"), "{stderr}");

    // A name taken is refused; an unknown tag is reported.
    let stderr = admin.fails(&["realize", "r1.line.rlzproj", "tag", "v1"], 1);
    assert!(
        stderr.starts_with("error: ")
            && stderr.contains("r1.line.rlzproj")
            && stderr.contains("AlreadyExists"),
        "{stderr}"
    );
    let stderr = admin.fails(&["realize", "r3.line.rlzproj", "tag", "nosuchtag"], 1);
    assert!(stderr.contains("nosuchtag") && stderr.contains("NotFound"), "{stderr}");

    // Relinquish: gone from show, list and the allocation table.
    assert_eq!(admin.ok(&["relinquish", "r1.line.rlzproj"]), "relinquished r1.line.rlzproj\n");
    let stderr = admin.fails(&["show", "realization", "r1.line.rlzproj"], 1);
    assert!(stderr.contains("NotFound"), "{stderr}");
    assert_eq!(names(&admin.json(&["list", "realizations"])["realizations"], "id"), ["r2"]);
    assert_eq!(allocated_nodes(&admin, "r1.line.rlzproj", &host), Vec::<String>::new());
    admin.ok(&["relinquish", "r2.line.rlzproj"]);
    assert_eq!(admin.json(&["list", "realizations", "-a"])["realizations"], Value::Array(vec![]));
}

#[test]
fn unrealizable_models_name_the_node_and_constraint() {
    let portal = Portal::start();
    let admin = portal.session("admin");
    admin.login("admin", ADMIN_PASSWORD);
    admin.ok(&["new", "experiment", "big.admin"]);
    let metal = write(&admin, "metal.py", NEEDS_METAL);
    let memory = write(&admin, "memory.py", NEEDS_MEMORY);
    admin.ok(&["push", &metal, "big.admin", "--tag", "metal"]);
    admin.ok(&["push", &memory, "big.admin", "--tag", "memory"]);

    // The local facility runs VMs only.
    let stderr = admin.fails(&["realize", "m.big.admin", "tag", "metal"], 1);
    assert!(stderr.starts_with("error: ") && stderr.contains("m.big.admin"), "{stderr}");
    assert!(
        stderr.contains("iron") && stderr.contains("metal"),
        "the node and constraint are named: {stderr}"
    );
    // No machine here has 4 TiB of memory.
    let stderr = admin.fails(&["realize", "w.big.admin", "branch", "master"], 1);
    assert!(
        stderr.contains("whale") && stderr.contains("memory"),
        "the node and constraint are named: {stderr}"
    );
    // Nothing was kept.
    assert_eq!(admin.json(&["list", "realizations", "-a"])["realizations"], Value::Array(vec![]));
    assert!(admin.fails(&["show", "realization", "m.big.admin"], 1).contains("NotFound"));
}

/// A small lab: two bare-metal machines, encoded as Merge's facility tooling writes `model.pb`.
fn lab_model(dir: &std::path::Path) -> PathBuf {
    let machine = |id: &str| xir::Resource {
        id: id.to_owned(),
        facility: "lab".to_owned(),
        procs: vec![xir::Proc { cores: 16, ..Default::default() }],
        memory: vec![xir::Dimm { capacity: 64 << 30, ..Default::default() }],
        alloc: vec![xir::AllocMode::Physical as i32],
        roles: vec![xir::Role::TbNode as i32],
        ..Default::default()
    };
    let model = xir::Facility {
        id: "lab".to_owned(),
        fqdn: "lab.example.net".to_owned(),
        resources: vec![machine("m1"), machine("m2")],
        ..Default::default()
    };
    let path = dir.join("lab.pb");
    std::fs::write(&path, model.encode_to_vec()).unwrap();
    path
}

#[test]
fn facilities_and_pools() {
    let portal = Portal::start();
    let admin = portal.session("admin");
    admin.login("admin", ADMIN_PASSWORD);
    let model = lab_model(&admin.home);
    let model = model.to_str().unwrap();

    // Commission, list, show, take resources out of service and back.
    let out = admin.ok(&["new", "facility", "lab", "lab.example.net", model, "--description", "a small lab"]);
    assert_eq!(out, "registered facility lab (2 resource(s))\n");
    let listed = admin.json(&["list", "facilities"]);
    assert_eq!(names(&listed["facilities"], "name"), ["lab", "local"]);
    let table = admin.ok(&["list", "facilities"]);
    assert!(table.lines().any(|l| l.starts_with("lab ") && l.contains("a small lab")), "{table}");
    let shown = admin.json(&["show", "facility", "lab", "-m"]);
    assert_eq!(shown["facility"]["address"], "lab.example.net");
    assert_eq!(names(&shown["model"]["resources"], "id"), ["m1", "m2"]);
    assert_eq!(shown["model"]["resources"][0]["cores"], 16);
    assert_eq!(admin.json(&["show", "facility", "lab"])["model"], Value::Null);
    let text = admin.ok(&["show", "facility", "lab", "--model"]);
    assert!(
        text.lines().any(|l| l.starts_with("m2 ") && l.contains("TbNode") && l.contains("64.0 GiB")),
        "{text}"
    );
    let resources = admin.json(&["list", "resources"]);
    let ids: Vec<&str> = resources["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["resource"]["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&"m1") && ids.contains(&"m2"), "{resources}");
    admin.ok(&["deactivate", "resources", "lab", "m1"]);
    admin.ok(&["activate", "resources", "lab", "m1"]);
    let stderr = admin.fails(&["deactivate", "resources", "lab", "nosuch"], 1);
    assert!(stderr.contains("nosuch"), "{stderr}");

    // Bad input is caught here or by the portal, never half-registered.
    let json = admin.home.join("lab.json");
    std::fs::write(&json, "{\"id\": \"lab2\"}").unwrap();
    let stderr = admin.fails(&["new", "facility", "lab2", "x", json.to_str().unwrap()], 1);
    assert!(stderr.contains("looks like JSON") && stderr.contains("binary protobuf"), "{stderr}");
    let stderr = admin.fails(&["new", "facility", "lab", "lab.example.net", model], 1);
    assert!(stderr.contains("AlreadyExists"), "{stderr}");

    // Only administrators commission facilities or read the allocation table.
    admin.register("carol", "carolpass123");
    let carol = portal.session("carol");
    carol.login("carol", "carolpass123");
    let stderr = carol.fails(&["new", "facility", "lab3", "x", model], 1);
    assert!(stderr.contains("PermissionDenied"), "{stderr}");
    let stderr = carol.fails(&["list", "allocations"], 1);
    assert!(stderr.contains("PermissionDenied"), "{stderr}");

    // A pool round trip.
    admin.ok(&["new", "organization", "org1"]);
    admin.ok(&["new", "pool", "p1", "--description", "first pool", "-p", "carol", "--facility", "lab"]);
    admin.ok(&["pool", "add", "organization", "p1", "org1"]);
    admin.ok(&["pool", "add", "project", "p1", "admin"]);
    admin.ok(&["pool", "add", "facility", "p1", "local"]);
    let out = admin.ok(&["update", "pool", "resources", "p1", "lab", "m1", "m2"]);
    assert_eq!(out, "pool p1 now holds 2 of lab: m1, m2\n");
    let out = admin.json(&["update", "pool", "resources", "p1", "lab", "m2", "--strategy", "subtract"]);
    assert_eq!(out["resources"], serde_json::json!(["m1"]));
    admin.ok(&["update", "pool", "priority", "p1", "5"]);
    let pool = admin.json(&["show", "pool", "p1"])["pool"].clone();
    assert_eq!(pool["description"], "first pool");
    assert_eq!(pool["creator"], "admin");
    assert_eq!(pool["priority"], 5);
    assert_eq!(pool["projects"], serde_json::json!(["carol", "admin"]));
    assert_eq!(pool["organizations"], serde_json::json!(["org1"]));
    assert_eq!(pool["facilities"]["lab"]["resources"], serde_json::json!(["m1"]));
    assert!(pool["facilities"].get("local").is_some(), "{pool}");
    let text = admin.ok(&["list", "pools"]);
    let row = text.lines().find(|l| l.starts_with("p1 ")).unwrap_or_else(|| panic!("{text}"));
    assert!(row.contains("first pool") && row.contains("lab (1), local"), "{row}");

    admin.ok(&["pool", "remove", "project", "p1", "carol"]);
    admin.ok(&["pool", "remove", "organization", "p1", "org1"]);
    admin.ok(&["pool", "remove", "facility", "p1", "local"]);
    let stderr = admin.fails(&["pool", "remove", "project", "p1", "carol"], 1);
    assert!(stderr.contains("NotFound") && stderr.contains("carol"), "{stderr}");
    let pool = admin.json(&["show", "pool", "p1"])["pool"].clone();
    assert_eq!(pool["projects"], serde_json::json!(["admin"]));
    assert_eq!(pool["organizations"], serde_json::json!([]));
    assert!(pool["facilities"].get("local").is_none(), "{pool}");
    let stderr = carol.fails(&["new", "pool", "p2"], 1);
    assert!(stderr.contains("PermissionDenied"), "{stderr}");

    admin.ok(&["delete", "pool", "p1"]);
    assert!(admin.fails(&["show", "pool", "p1"], 1).contains("NotFound"));
    assert_eq!(admin.json(&["list", "pools"])["pools"], Value::Array(vec![]));

    admin.ok(&["delete", "facility", "lab"]);
    assert_eq!(names(&admin.json(&["list", "facilities"])["facilities"], "name"), ["local"]);
    assert!(admin.fails(&["show", "facility", "lab"], 1).contains("NotFound"));
}
