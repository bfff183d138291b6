//! A spec for unit tests.

use crate::{JupyterSpec, VolumeRef, XdcGroup, XdcMount, XdcSpec, XdcUser};

pub(crate) fn spec() -> XdcSpec {
    let user = |name: &str, id: u32| XdcUser {
        name: name.into(),
        uid: id,
        gid: id,
        authorized_keys: vec![format!("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI{name} {name}@laptop")],
        identity: None,
    };
    XdcSpec {
        id: "x0-proj".into(),
        users: vec![user("alice", 2001), user("bob", 2002)],
        groups: vec![XdcGroup {
            name: "proj".into(),
            gid: 3001,
            members: vec!["alice".into(), "bob".into()],
        }],
        mounts: vec![
            XdcMount { volume: VolumeRef::Home("alice".into()), host_path: "/srv/homes/alice".into() },
            XdcMount { volume: VolumeRef::Project("proj".into()), host_path: "/srv/projects/proj".into() },
        ],
        user_ca_public_key: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIca user-ca".into(),
        host_private_key: "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n"
            .into(),
        host_certificate: "ssh-ed25519-cert-v01@openssh.com AAAAcert x0-proj".into(),
        jupyter: Some(JupyterSpec {
            user: "alice".into(),
            base_url: "/x0-proj/".into(),
            token: "0123456789abcdef0123".into(),
            port: 8888,
        }),
        cpu_millis: 1500,
        memory_bytes: 1 << 30,
        hosts: vec![("n1.infra".into(), "10.0.0.7".parse().unwrap())],
        search: vec!["infra.r.e.proj".into()],
    }
}
