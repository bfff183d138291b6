//! Account states (pending, frozen) and the two-sided consent organizations need before they
//! reach into a project or a user.

mod common;

use common::*;
use tonic::{Code, Status};
use trellis_api::portal::v1 as pb;

#[tokio::test]
async fn pending_accounts_manage_themselves_and_frozen_accounts_nothing() {
    let portal = TestPortal::start().await;
    portal.user("pend", false).await;
    let (mut ws, mut id) = portal.as_user("pend").await;
    assert_eq!(ws.whoami(pb::WhoamiRequest {}).await.unwrap().into_inner().whoami, "pend");
    let me = || pb::GetUserRequest { username: "pend".into(), status_ms: 0 };
    assert_eq!(
        ws.get_user(me()).await.unwrap().into_inner().user.unwrap().state,
        pb::UserState::Pending as i32
    );
    ws.add_user_public_key(pb::AddUserPublicKeyRequest { user: "pend".into(), key: ssh_key(1) })
        .await
        .unwrap();
    let keys = ws.get_user_public_keys(pb::GetUserPublicKeysRequest { user: "pend".into() }).await.unwrap();
    assert_eq!(keys.into_inner().keys.len(), 1);
    id.get_identity(pb::GetIdentityRequest { username: "pend".into() }).await.unwrap();
    let project = |name: &str| Some(pb::Project { name: name.into(), ..Default::default() });
    let refused = [
        (
            "CreateProject",
            done(
                ws.create_project(pb::CreateProjectRequest { user: "pend".into(), project: project("pp") })
                    .await,
            ),
        ),
        ("GetProjects", done(ws.get_projects(pb::GetProjectsRequest::default()).await)),
        (
            "GetProject",
            done(ws.get_project(pb::GetProjectRequest { name: "pend".into(), status_ms: 0 }).await),
        ),
        (
            "CreateOrganization",
            done(
                ws.create_organization(pb::CreateOrganizationRequest {
                    user: String::new(),
                    organization: Some(pb::Organization { name: "po".into(), ..Default::default() }),
                })
                .await,
            ),
        ),
    ];
    for (what, r) in refused {
        let err = r.expect_err(what);
        assert_eq!(err.code(), Code::PermissionDenied, "pending {what}: {err:?}");
        assert!(err.message().contains("activation"), "pending {what}: {}", err.message());
    }

    // A frozen account's live session is refused everything, its own account included.
    portal.user("frosty", true).await;
    let token = portal.login("frosty", PASSWORD).await;
    let (mut ws, mut id) = portal.clients(Some(token)).await;
    assert_eq!(ws.whoami(pb::WhoamiRequest {}).await.unwrap().into_inner().whoami, "frosty");
    let (mut admin, _) = portal.admin().await;
    admin.freeze_user(pb::FreezeUserRequest { username: "frosty".into() }).await.unwrap();
    let user = || "frosty".to_owned();
    let refused = [
        ("Whoami", done(ws.whoami(pb::WhoamiRequest {}).await)),
        ("GetUser", done(ws.get_user(pb::GetUserRequest { username: user(), status_ms: 0 }).await)),
        (
            "UpdateUser",
            done(
                ws.update_user(pb::UpdateUserRequest {
                    username: user(),
                    name: "x".into(),
                    ..Default::default()
                })
                .await,
            ),
        ),
        (
            "GetUserPublicKeys",
            done(ws.get_user_public_keys(pb::GetUserPublicKeysRequest { user: user() }).await),
        ),
        (
            "AddUserPublicKey",
            done(ws.add_user_public_key(pb::AddUserPublicKeyRequest { user: user(), key: ssh_key(2) }).await),
        ),
        ("GetProjects", done(ws.get_projects(pb::GetProjectsRequest::default()).await)),
        ("GetProject", done(ws.get_project(pb::GetProjectRequest { name: user(), status_ms: 0 }).await)),
        (
            "CreateProject",
            done(ws.create_project(pb::CreateProjectRequest { user: user(), project: project("fp") }).await),
        ),
        ("GetPolicy", done(ws.get_policy(pb::GetPolicyRequest {}).await)),
        (
            "RequestOrganizationMembership",
            done(
                ws.request_organization_membership(pb::RequestOrganizationMembershipRequest {
                    organization: "none".into(),
                    id: user(),
                    ..Default::default()
                })
                .await,
            ),
        ),
        ("DeleteUser", done(ws.delete_user(pb::DeleteUserRequest { user: user() }).await)),
        ("GetIdentity", done(id.get_identity(pb::GetIdentityRequest { username: user() }).await)),
        (
            "UpdateIdentity",
            done(
                id.update_identity(pb::UpdateIdentityRequest {
                    username: user(),
                    emailaddress: "f@example.org".into(),
                    ..Default::default()
                })
                .await,
            ),
        ),
        ("Unregister", done(id.unregister(pb::UnregisterRequest { username: user() }).await)),
        ("Logout", done(id.logout(pb::LogoutRequest { username: user() }).await)),
    ];
    for (what, r) in refused {
        let err = r.expect_err(what);
        assert_eq!(err.code(), Code::PermissionDenied, "frozen {what}: {err:?}");
        assert!(err.message().contains("frozen"), "frozen {what}: {}", err.message());
    }
    let (_, mut anon) = portal.clients(None).await;
    let err = anon.login(pb::LoginRequest { username: user(), password: PASSWORD.into() }).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert!(err.message().contains("frozen"), "{}", err.message());
    // Nothing the frozen session tried took effect.
    let after =
        admin.get_user(pb::GetUserRequest { username: user(), status_ms: 0 }).await.unwrap().into_inner();
    let after = after.user.unwrap();
    assert_eq!(after.state, pb::UserState::Frozen as i32);
    assert_eq!(after.name, "frosty");
    let keys = admin.get_user_public_keys(pb::GetUserPublicKeysRequest { user: user() }).await.unwrap();
    assert!(keys.into_inner().keys.is_empty());
}

// === Organizations annexing what is not theirs ===
//
// Adding a project or user to an organization is authorized as an update of the organization
// only, yet it gives the organization's maintainers rights over that project or user (read
// private, update, delete projects; read, update, add SSH keys to, activate and freeze users).
// Neither the project's maintainers nor the user are asked, and the organization need not even
// be approved. The tests assert that such one-sided moves confer nothing.

/// Regression: `AddOrganizationProject` / `UpdateOrganization{projects}` by an organization's
/// maintainer puts any project into the organization as an Active member without its
/// maintainers' consent (services/workspace/src/organizations.rs `set_organization_membership`,
/// reached from portal/api-server/src/api/workspace_orgs.rs), and `project_relations`
/// (services/workspace/src/access.rs) then grants Organization.Creator over it — even from an
/// organization that is still pending. The annexer can read, edit and delete the victim's
/// private project.
#[tokio::test]
async fn organization_side_cannot_annex_a_project() {
    let portal = TestPortal::start().await;
    portal.user("victim", true).await;
    portal.user("mallory", true).await;
    let (mut victim, _) = portal.as_user("victim").await;
    let private = |name: &str| pb::CreateProjectRequest {
        user: String::new(),
        project: Some(pb::Project {
            name: name.into(),
            description: "mine".into(),
            access_mode: pb::AccessMode::Private as i32,
            ..Default::default()
        }),
    };
    for p in ["vault", "vault2", "vault3"] {
        victim.create_project(private(p)).await.unwrap();
    }
    let (mut mallory, _) = portal.as_user("mallory").await;
    let (mut admin, _) = portal.admin().await;
    let org = |name: &str| Some(pb::Organization { name: name.into(), ..Default::default() });
    // "evil" is only proposed (pending); "club" was approved by an administrator.
    mallory
        .create_organization(pb::CreateOrganizationRequest { user: String::new(), organization: org("evil") })
        .await
        .unwrap();
    admin
        .create_organization(pb::CreateOrganizationRequest {
            user: "mallory".into(),
            organization: org("club"),
        })
        .await
        .unwrap();
    let joined = Some(active(pb::member::Role::Member));
    // The attempts' own results do not matter, only what they lead to.
    let _ = mallory
        .add_organization_project(pb::AddOrganizationProjectRequest {
            organization: "evil".into(),
            project: "vault".into(),
            member: joined,
        })
        .await;
    let _ = mallory
        .add_organization_project(pb::AddOrganizationProjectRequest {
            organization: "club".into(),
            project: "vault2".into(),
            member: joined,
        })
        .await;
    let _ = mallory
        .update_organization(pb::UpdateOrganizationRequest {
            name: "club".into(),
            projects: members(&[("vault3", pb::member::Role::Member)]),
            ..Default::default()
        })
        .await;
    let mut failures = vec![];
    for p in ["vault", "vault2", "vault3"] {
        let read = done(mallory.get_project(pb::GetProjectRequest { name: p.into(), status_ms: 0 }).await);
        let edit = done(
            mallory
                .update_project(pb::UpdateProjectRequest {
                    name: p.into(),
                    description: Some(pb::DescriptionUpdate { value: "annexed".into() }),
                    ..Default::default()
                })
                .await,
        );
        let delete = done(
            mallory.delete_project(pb::DeleteProjectRequest { user: String::new(), name: p.into() }).await,
        );
        for (what, r) in [("read", read), ("update", edit), ("delete", delete)] {
            if r.as_ref().map_err(Status::code) != Err(Code::PermissionDenied) {
                failures.push(format!("mallory could {what} {p}: {r:?}"));
            }
        }
        let now = found(admin.get_project(pb::GetProjectRequest { name: p.into(), status_ms: 0 }).await);
        match now.and_then(|r| r.project) {
            Some(project) if project.description == "mine" => {}
            other => failures.push(format!("{p} was changed by mallory: {other:?}")),
        }
    }
    assert!(failures.is_empty(), "organization annexes projects:\n{}", failures.join("\n"));
}

/// Regression: an organization maintainer gains Organization.* relations over any user by
/// putting them in the organization one-sidedly: directly with `UpdateOrganization{members}`
/// (even in a pending organization), or merely by inviting them (`RequestOrganizationMembership`
/// leaves the membership EntityRequested, yet `user_relations` in
/// services/workspace/src/access.rs counts the target's organizations whatever the state). With
/// that the maintainer may read a protected user, edit their profile, add SSH keys to their
/// account and freeze them — the portal administrator included.
#[tokio::test]
async fn organization_side_cannot_annex_a_user() {
    let portal = TestPortal::start().await;
    for name in ["victim", "victim2", "victim3", "mallory"] {
        portal.user(name, true).await;
    }
    let (mut mallory, _) = portal.as_user("mallory").await;
    // victim2 signs in before anything happens (a frozen account could not).
    let (mut victim2, _) = portal.as_user("victim2").await;
    let (mut admin, _) = portal.admin().await;
    let org = |name: &str| Some(pb::Organization { name: name.into(), ..Default::default() });
    mallory
        .create_organization(pb::CreateOrganizationRequest { user: String::new(), organization: org("evil") })
        .await
        .unwrap();
    admin
        .create_organization(pb::CreateOrganizationRequest {
            user: "mallory".into(),
            organization: org("club"),
        })
        .await
        .unwrap();
    let set = |org: &str, user: &str| pb::UpdateOrganizationRequest {
        name: org.into(),
        members: members(&[(user, pb::member::Role::Member)]),
        ..Default::default()
    };
    let _ = mallory.update_organization(set("evil", "victim")).await;
    let _ = mallory.update_organization(set("club", "victim3")).await;
    // An invitation is legitimate; it must wait for victim2's answer.
    mallory
        .request_organization_membership(pb::RequestOrganizationMembershipRequest {
            organization: "club".into(),
            id: "victim2".into(),
            kind: pb::MembershipType::UserMember as i32,
            member: Some(pb::Member::default()),
        })
        .await
        .unwrap();
    let mut failures = vec![];
    for (n, v) in ["victim", "victim2", "victim3"].into_iter().enumerate() {
        let attempts = [
            ("read", done(mallory.get_user(pb::GetUserRequest { username: v.into(), status_ms: 0 }).await)),
            (
                "rename",
                done(
                    mallory
                        .update_user(pb::UpdateUserRequest {
                            username: v.into(),
                            name: "owned".into(),
                            ..Default::default()
                        })
                        .await,
                ),
            ),
            (
                "add an SSH key to",
                done(
                    mallory
                        .add_user_public_key(pb::AddUserPublicKeyRequest {
                            user: v.into(),
                            key: ssh_key(100 + n as u32),
                        })
                        .await,
                ),
            ),
            ("freeze", done(mallory.freeze_user(pb::FreezeUserRequest { username: v.into() }).await)),
        ];
        for (what, r) in attempts {
            if r.as_ref().map_err(Status::code) != Err(Code::PermissionDenied) {
                failures.push(format!("mallory could {what} {v}: {r:?}"));
            }
        }
    }
    // Positive control: once victim2 accepts, the organization's maintainers may see them.
    // (Re-activated first in case the freeze above went through.)
    admin
        .activate_user(pb::ActivateUserRequest { username: "victim2".into(), ..Default::default() })
        .await
        .unwrap();
    victim2
        .confirm_organization_membership(pb::ConfirmOrganizationMembershipRequest {
            organization: "club".into(),
            id: "victim2".into(),
            kind: pb::MembershipType::UserMember as i32,
        })
        .await
        .unwrap();
    mallory.get_user(pb::GetUserRequest { username: "victim2".into(), status_ms: 0 }).await.unwrap();
    // Last, since it locks the administrator out when it succeeds.
    let _ = mallory.update_organization(set("evil", "admin")).await;
    let freeze = done(mallory.freeze_user(pb::FreezeUserRequest { username: "admin".into() }).await);
    if freeze.as_ref().map_err(Status::code) != Err(Code::PermissionDenied) {
        failures.push(format!("mallory could freeze the administrator: {freeze:?}"));
    }
    assert!(failures.is_empty(), "organization annexes users:\n{}", failures.join("\n"));
}

#[tokio::test]
async fn frozen_projects_are_closed_to_all_but_administrators() {
    let portal = TestPortal::start().await;
    portal.user("owner", true).await;
    let (mut owner, _) = portal.as_user("owner").await;
    owner
        .create_project(pb::CreateProjectRequest {
            user: "owner".into(),
            project: Some(pb::Project { name: "cold".into(), ..Default::default() }),
        })
        .await
        .unwrap();
    let get = || pb::GetProjectRequest { name: "cold".into(), status_ms: 0 };
    owner.get_project(get()).await.unwrap();
    let (mut admin, _) = portal.admin().await;
    admin.freeze_project(pb::FreezeProjectRequest { project: "cold".into() }).await.unwrap();
    let denied = owner.get_project(get()).await.unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    assert!(denied.message().contains("frozen"), "{}", denied.message());
    let creating = owner
        .create_experiment(pb::CreateExperimentRequest {
            experiment: Some(pb::Experiment {
                name: "e".into(),
                project: "cold".into(),
                ..Default::default()
            }),
        })
        .await
        .unwrap_err();
    assert_eq!(creating.code(), Code::PermissionDenied);
    admin.get_project(get()).await.unwrap();
    admin
        .activate_project(pb::ActivateProjectRequest { project: "cold".into(), ..Default::default() })
        .await
        .unwrap();
    owner.get_project(get()).await.unwrap();
}
