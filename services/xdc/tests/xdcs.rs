//! The XDC service against a real embedded store, workspace and SSH CA: validation, accounts
//! and mounts from membership, name resolution, attachments, expiry, and the controller driving
//! a runtime (an in-memory one here; the real crun runtime is exercised end to end by
//! tests/compat/client/test_xdc.py).

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use trellis_credentials::{SshCa, SshCaConfig};
use trellis_store::Store;
use trellis_store::embedded::EmbeddedStore;
use trellis_types::{AccessMode, Error, Member, MemberRole};
use trellis_volumes::Volumes;
use trellis_volumes::local::LocalVolumes;
use trellis_workspace::projects::NewProject;
use trellis_workspace::{RegisterInput, Workspace, WorkspaceConfig};
use trellis_xdc::{Attachment, ControllerParts, NewXdc, XdcConfig, XdcKind, XdcPhase, XdcService};
use trellis_xdc_runtime::{
    RuntimeError, VolumeRef, XdcPhase as RuntimePhase, XdcRuntime, XdcSpec, XdcStatus,
};

struct Fixture {
    _dir: tempfile::TempDir,
    store: Arc<dyn Store>,
    workspace: Workspace,
    ca: SshCa,
    xdcs: XdcService,
    volumes: Arc<LocalVolumes>,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(EmbeddedStore::open(&dir.path().join("s.redb")).unwrap());
    let workspace = Workspace::new(store.clone(), WorkspaceConfig::default());
    for name in ["alice", "bob"] {
        let input = RegisterInput {
            username: name.into(),
            email: format!("{name}@example.org"),
            password: "password-long-enough".into(),
            name: name.into(),
            ..Default::default()
        };
        workspace.register(input, true).await.unwrap();
    }
    let project = NewProject { name: "proj".into(), access_mode: AccessMode::Private, ..Default::default() };
    workspace.create_project("alice", project).await.unwrap();
    let ca = SshCa::open(store.clone(), SshCaConfig::default()).await.unwrap();
    let xdcs = XdcService::new(store.clone(), workspace.clone(), ca.clone(), XdcConfig::default());
    let volumes = Arc::new(LocalVolumes::new(dir.path().join("volumes")));
    Fixture { _dir: dir, store, workspace, ca, xdcs, volumes }
}

fn new(project: &str, name: &str) -> NewXdc {
    NewXdc { project: project.into(), name: name.into(), ..Default::default() }
}

fn field_of(e: &Error) -> String {
    match e {
        Error::InvalidArgument { violations } => violations[0].field.clone(),
        other => panic!("expected InvalidArgument, got {other:?}"),
    }
}

#[tokio::test]
async fn bad_requests_are_refused_and_nothing_is_stored() {
    let f = fixture().await;
    assert_eq!(field_of(&f.xdcs.create("alice", new("proj", "X0")).await.unwrap_err()), "xdc");
    assert_eq!(field_of(&f.xdcs.create("alice", new("proj", "a-b")).await.unwrap_err()), "xdc");
    let image = NewXdc { image: "ubuntu".into(), ..new("proj", "x0") };
    assert_eq!(field_of(&f.xdcs.create("alice", image).await.unwrap_err()), "image");
    let cpus = NewXdc { cpu_cores: 1000, ..new("proj", "x0") };
    assert_eq!(field_of(&f.xdcs.create("alice", cpus).await.unwrap_err()), "cpulimit");
    let memory = NewXdc { memory_gib: 100_000, ..new("proj", "x0") };
    assert_eq!(field_of(&f.xdcs.create("alice", memory).await.unwrap_err()), "memlimit");
    let lifetime = NewXdc { lifetime: Some(-5), ..new("proj", "x0") };
    assert_eq!(field_of(&f.xdcs.create("alice", lifetime).await.unwrap_err()), "duration");
    assert!(matches!(f.xdcs.create("alice", new("nope", "x0")).await, Err(Error::NotFound { .. })));
    // A personal XDC is an account in the project's files: only for members.
    let personal = NewXdc { kind: XdcKind::Personal, ..new("proj", "x0") };
    assert!(matches!(f.xdcs.create("bob", personal).await, Err(Error::FailedPrecondition(_))));
    assert!(f.xdcs.list(None).await.unwrap().is_empty());

    f.xdcs.create("alice", new("proj", "x0")).await.unwrap();
    assert!(matches!(f.xdcs.create("alice", new("proj", "x0")).await, Err(Error::AlreadyExists { .. })));
    assert!(matches!(f.xdcs.delete("proj", "x9").await, Err(Error::NotFound { .. })));
}

#[tokio::test]
async fn a_shared_xdc_has_every_member_and_the_project_directory() {
    let f = fixture().await;
    let x = f.xdcs.create("alice", new("proj", "x0")).await.unwrap();
    assert_eq!(
        (x.id(), x.full_name(), x.jupyter_base_url()),
        ("x0-proj".into(), "x0.proj".into(), "/proj/x0/".into())
    );
    assert_eq!((x.cpu_cores, x.memory_gib), (2, 4));

    let spec = f.xdcs.build_spec(&x, f.volumes.as_ref(), None).await.unwrap();
    assert_eq!(spec.id, "x0-proj");
    assert_eq!(spec.users.iter().map(|u| u.name.as_str()).collect::<Vec<_>>(), ["alice"]);
    let project = f.workspace.get_project("proj").await.unwrap();
    let group = spec.groups.iter().find(|g| g.gid == project.gid).unwrap();
    assert_eq!((group.name.as_str(), group.members.clone()), ("proj", vec!["alice".to_owned()]));
    let mounts: BTreeMap<VolumeRef, _> =
        spec.mounts.iter().map(|m| (m.volume.clone(), m.host_path.clone())).collect();
    assert_eq!(
        mounts.keys().cloned().collect::<Vec<_>>(),
        [VolumeRef::Home("alice".into()), VolumeRef::Project("proj".into())]
    );
    assert!(mounts.values().all(|p| p.is_dir()));
    assert_eq!(spec.user_ca_public_key, f.ca.public_key_openssh().unwrap());
    let jupyter = spec.jupyter.clone().unwrap();
    assert_eq!((jupyter.user.as_str(), jupyter.base_url.as_str()), ("alice", "/proj/x0/"));
    assert_eq!(jupyter.token, x.jupyter_token);
    assert_eq!((spec.cpu_millis, spec.memory_bytes), (2000, 4 << 30));

    // The host certificate names the XDC and is signed by the portal's host CA.
    let cert = ssh_key::Certificate::from_openssh(&x.host_certificate).unwrap();
    assert_eq!(cert.valid_principals(), ["x0-proj".to_owned()]);
    let host_ca = ssh_key::PublicKey::from_openssh(&f.ca.host_public_key_openssh().unwrap()).unwrap();
    cert.validate(&[host_ca.fingerprint(Default::default())]).unwrap();

    // A new member gets an account on the next build; the owner-only mode is kept.
    f.workspace.add_project_member("proj", "bob", Member::active(MemberRole::Member)).await.unwrap();
    let spec = f.xdcs.build_spec(&x, f.volumes.as_ref(), None).await.unwrap();
    assert_eq!(spec.users.iter().map(|u| u.name.as_str()).collect::<Vec<_>>(), ["alice", "bob"]);
    assert!(spec.mounts.iter().any(|m| m.volume == VolumeRef::Home("bob".into())));
    assert!(f.xdcs.has_account(&x, "bob").await.unwrap());
}

#[tokio::test]
async fn a_personal_xdc_has_only_its_creator_with_all_their_projects() {
    let f = fixture().await;
    let x = f.xdcs.create("alice", NewXdc { kind: XdcKind::Personal, ..new("proj", "mine") }).await.unwrap();
    f.workspace.add_project_member("proj", "bob", Member::active(MemberRole::Member)).await.unwrap();
    let spec = f.xdcs.build_spec(&x, f.volumes.as_ref(), None).await.unwrap();
    assert_eq!(spec.users.iter().map(|u| u.name.as_str()).collect::<Vec<_>>(), ["alice"]);
    let projects: Vec<_> = spec
        .mounts
        .iter()
        .filter_map(|m| match &m.volume {
            VolumeRef::Project(p) => Some(p.clone()),
            VolumeRef::Home(_) => None,
        })
        .collect();
    // Her personal project (named after her) and proj; the personal project's group must not
    // collide with her own group of the same name.
    assert_eq!(projects, ["alice", "proj"]);
    let names: Vec<_> = spec.groups.iter().map(|g| g.name.clone()).collect();
    assert!(names.contains(&"alice".to_owned()) && names.contains(&"alice-project".to_owned()), "{names:?}");
    assert!(!f.xdcs.has_account(&x, "bob").await.unwrap());
}

#[tokio::test]
async fn ssh_names_resolve_to_xdcs() {
    let f = fixture().await;
    f.xdcs.create("alice", new("proj", "x0")).await.unwrap();
    for name in ["x0-proj", "x0-proj.jump.example.net"] {
        assert_eq!(
            f.xdcs.resolve_ssh_name(name).await.unwrap().map(|x| x.id()),
            Some("x0-proj".into()),
            "{name}"
        );
    }
    for name in ["x1-proj", "proj", "x0-proj-extra", "-", "", "X0-proj"] {
        assert!(f.xdcs.resolve_ssh_name(name).await.unwrap().is_none(), "{name}");
    }
    // `xdc-<experiment>-<project>`: the project's XDC attached to that experiment.
    f.store
        .txn(trellis_store::Txn {
            compares: vec![],
            success: vec![trellis_store::Op::Put {
                key: trellis_materialize::keys::materialization("proj", "exp", "r"),
                value: b"{}".to_vec(),
                lease: None,
            }],
        })
        .await
        .unwrap();
    assert!(f.xdcs.resolve_ssh_name("xdc-exp-proj").await.unwrap().is_none());
    f.xdcs.attach("proj", "x0", Attachment::new("proj", "exp", "r"), false).await.unwrap();
    assert_eq!(f.xdcs.resolve_ssh_name("xdc-exp-proj").await.unwrap().map(|x| x.name), Some("x0".into()));
}

#[tokio::test]
async fn attachments_need_a_materialization_and_replace_only_by_force() {
    let f = fixture().await;
    f.xdcs.create("alice", new("proj", "x0")).await.unwrap();
    let target = Attachment::new("proj", "exp", "r");
    assert!(matches!(
        f.xdcs.attach("proj", "x0", target.clone(), false).await,
        Err(Error::FailedPrecondition(m)) if m.contains("r.exp.proj is not materialized")
    ));
    // A shared XDC belongs to its project's experiments only.
    let elsewhere = Attachment::new("alice", "exp", "r");
    assert!(matches!(f.xdcs.attach("proj", "x0", elsewhere, false).await, Err(Error::FailedPrecondition(_))));
    for (exp, rlz) in [("exp", "r"), ("exp", "s")] {
        f.store
            .txn(trellis_store::Txn {
                compares: vec![],
                success: vec![trellis_store::Op::Put {
                    key: trellis_materialize::keys::materialization("proj", exp, rlz),
                    value: b"{}".to_vec(),
                    lease: None,
                }],
            })
            .await
            .unwrap();
    }
    let x = f.xdcs.attach("proj", "x0", target.clone(), false).await.unwrap();
    assert_eq!(x.attachment.as_ref().map(|a| a.mzid.as_str()), Some("r.exp.proj"));
    // Attaching again to the same one is a no-op; another needs force.
    f.xdcs.attach("proj", "x0", target, false).await.unwrap();
    let other = Attachment::new("proj", "exp", "s");
    assert!(matches!(
        f.xdcs.attach("proj", "x0", other.clone(), false).await,
        Err(Error::FailedPrecondition(_))
    ));
    let x = f.xdcs.attach("proj", "x0", other, true).await.unwrap();
    assert_eq!(x.attachment.map(|a| a.mzid), Some("s.exp.proj".into()));
    assert!(f.xdcs.detach("proj", "x0").await.unwrap().attachment.is_none());
}

#[tokio::test]
async fn expired_xdcs_are_deleted() {
    let f = fixture().await;
    f.xdcs.create("alice", NewXdc { lifetime: Some(1), ..new("proj", "brief") }).await.unwrap();
    f.xdcs.create("alice", new("proj", "lasting")).await.unwrap();
    assert!(matches!(
        f.xdcs.set_expiry("proj", "lasting", Some(1)).await,
        Err(Error::InvalidArgument { .. })
    ));
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(f.xdcs.reap_expired().await.unwrap(), 1);
    let left: Vec<_> = f.xdcs.list(Some("proj")).await.unwrap().into_iter().map(|x| x.name).collect();
    assert_eq!(left, ["lasting"]);
}

/// A runtime that records what it is told and runs nothing.
#[derive(Default)]
struct Recording {
    running: Mutex<BTreeMap<String, XdcSpec>>,
    applies: Mutex<Vec<String>>,
}

#[async_trait::async_trait]
impl XdcRuntime for Recording {
    async fn apply(&self, spec: &XdcSpec) -> Result<XdcStatus, RuntimeError> {
        self.applies.lock().unwrap().push(spec.id.clone());
        self.running.lock().unwrap().insert(spec.id.clone(), spec.clone());
        Ok(XdcStatus {
            phase: RuntimePhase::Running,
            address: Some(IpAddr::V4(Ipv4Addr::new(10, 9, 0, 2))),
            netns: None,
            message: String::new(),
        })
    }
    async fn status(&self, id: &str) -> Result<Option<XdcStatus>, RuntimeError> {
        Ok(self.running.lock().unwrap().contains_key(id).then(|| XdcStatus {
            phase: RuntimePhase::Running,
            address: Some(IpAddr::V4(Ipv4Addr::new(10, 9, 0, 2))),
            netns: None,
            message: String::new(),
        }))
    }
    async fn remove(&self, id: &str) -> Result<(), RuntimeError> {
        self.running.lock().unwrap().remove(id);
        Ok(())
    }
    async fn list(&self) -> Result<Vec<String>, RuntimeError> {
        Ok(self.running.lock().unwrap().keys().cloned().collect())
    }
}

async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    for _ in 0..200 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting until {what}");
}

#[tokio::test]
async fn the_controller_runs_what_is_wanted_and_nothing_else() {
    let f = fixture().await;
    let runtime = Arc::new(Recording::default());
    // Something the store does not want (left over from before a crash).
    runtime.running.lock().unwrap().insert(
        "old-proj".into(),
        XdcSpec {
            id: "old-proj".into(),
            users: vec![],
            groups: vec![],
            mounts: vec![],
            user_ca_public_key: String::new(),
            host_private_key: String::new(),
            host_certificate: String::new(),
            jupyter: None,
            cpu_millis: 0,
            memory_bytes: 0,
            hosts: vec![],
            search: vec![],
        },
    );
    let cancel = CancellationToken::new();
    let parts = ControllerParts {
        runtime: runtime.clone(),
        volumes: f.volumes.clone(),
        attacher: None,
        resync: Duration::from_secs(3600),
    };
    let task = f.xdcs.spawn_controller(parts, cancel.clone());
    f.xdcs.create("alice", new("proj", "x0")).await.unwrap();
    eventually("x0 runs and old is gone", async || runtime.list().await.unwrap() == ["x0-proj"]).await;
    eventually("x0 is recorded running", async || {
        f.xdcs.status("proj", "x0").await.unwrap().is_some_and(|s| s.phase == XdcPhase::Running)
    })
    .await;
    let status = f.xdcs.status("proj", "x0").await.unwrap().unwrap();
    assert_eq!(status.address, Some(IpAddr::V4(Ipv4Addr::new(10, 9, 0, 2))));

    // Wanting an attachment this runtime cannot give is reported, not hidden.
    f.store
        .txn(trellis_store::Txn {
            compares: vec![],
            success: vec![trellis_store::Op::Put {
                key: trellis_materialize::keys::materialization("proj", "exp", "r"),
                value: b"{}".to_vec(),
                lease: None,
            }],
        })
        .await
        .unwrap();
    f.xdcs.attach("proj", "x0", Attachment::new("proj", "exp", "r"), false).await.unwrap();
    eventually("the attach failure is recorded", async || {
        f.xdcs.status("proj", "x0").await.unwrap().is_some_and(|s| s.attach_error.is_some())
    })
    .await;

    f.xdcs.delete("proj", "x0").await.unwrap();
    eventually("x0 is removed", async || runtime.list().await.unwrap().is_empty()).await;
    assert!(f.xdcs.status("proj", "x0").await.unwrap().is_none());
    // Its home stays.
    assert!(
        f.volumes
            .ensure(
                &VolumeRef::Home("alice".into()),
                trellis_volumes::VolumeOwner { uid: 0, gid: 0, mode: 0o750, quota_bytes: 0 }
            )
            .await
            .is_ok()
    );
    cancel.cancel();
    task.await.unwrap();
}
