//! The policy matrix: every policy-gated Workspace/Identity RPC × caller role × access mode,
//! checked end to end against the built-in policy through real gRPC clients.
//!
//! The expected outcomes are a literal table written by hand from `policy/policy.yml` and the
//! RPC → (entity, operation) mapping in `src/authz/rules.rs`; the policy engine is never asked,
//! so the table is an independent check of the engine, the relations and the layer together.
//!
//! Who holds what (all fixture objects are created by the administrator):
//! - projects (`P`, and `px` holding the experiments): `creator` is Creator, `maint` Maintainer,
//!   `member` and `expc` Members; the project is an active member of organization `porg`, whose
//!   Maintainer is `orgm`.
//! - experiments (in `px`): created by `expc` (so Experiment Creator and Maintainer).
//! - organizations (`O`): `creator` is Creator, `maint` and `orgm` Maintainers, `member` Member;
//!   `expc` holds nothing.
//! - users (`T`): `T` is a Member of project `pu` (where `member`, `maint`, `creator` hold those
//!   roles) and of organization `ou` (where `orgm` is Maintainer and `expc` Member). `self` is
//!   `T`'s own session.
//! - `outsider` is active and holds nothing anywhere; `anon` sends no token.
//!
//! Mutating rows get a fresh target per cell (or, for plain field edits, a per-cell value on a
//! shared target), and every cell checks the effect: present exactly when the call was allowed.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU32, Ordering};

use common::*;
use tonic::{Code, Status};
use trellis_api::portal::v1 as pb;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Role {
    Anon,
    Outsider,
    Member,
    Maint,
    Creator,
    ExpC,
    OrgM,
    Self_,
    Admin,
}

/// The table's columns, in order.
const ROLES: [Role; 9] = [
    Role::Anon,
    Role::Outsider,
    Role::Member,
    Role::Maint,
    Role::Creator,
    Role::ExpC,
    Role::OrgM,
    Role::Self_,
    Role::Admin,
];

impl Role {
    fn username(self) -> &'static str {
        match self {
            Role::Outsider => "outsider",
            Role::Member => "member",
            Role::Maint => "maint",
            Role::Creator => "creator",
            Role::ExpC => "expc",
            Role::OrgM => "orgm",
            Role::Admin => "admin",
            Role::Anon | Role::Self_ => unreachable!("{self:?} is not a fixed account"),
        }
    }
}

const FIXED: [Role; 6] = [Role::Outsider, Role::Member, Role::Maint, Role::Creator, Role::ExpC, Role::OrgM];

/// Access mode of the row's object; `Any` for rows where no mode applies (shared targets then
/// use the protected one).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Pub,
    Prot,
    Priv,
    Any,
}

impl Mode {
    fn index(self) -> usize {
        match self {
            Mode::Pub => 0,
            Mode::Prot | Mode::Any => 1,
            Mode::Priv => 2,
        }
    }
    fn pb(self) -> i32 {
        [pb::AccessMode::Public, pb::AccessMode::Protected, pb::AccessMode::Private][self.index()] as i32
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Rpc {
    GetProject,
    GetProjectMembers,
    GetProjectExperiments,
    CreateProject,
    UpdateProject,
    AddProjectMember,
    DeleteProjectMember,
    DeleteProject,
    CreateExperiment,
    GetExperiment,
    UpdateExperiment,
    DeleteExperiment,
    CreateOrganization,
    GetOrganization,
    UpdateOrganization,
    DeleteOrganization,
    GetUser,
    UpdateUser,
    GetUserPublicKeys,
    AddUserPublicKey,
    ActivateUser,
    FreezeUser,
    GetIdentity,
    UpdateIdentity,
    Unregister,
    ListIdentities,
    UpdateUserConfigurations,
}

use Mode::{Any, Priv, Prot, Pub};
use Rpc::*;

/// `A` allowed (the call succeeds), `D` PERMISSION_DENIED, `U` UNAUTHENTICATED, `-` not applicable.
/// Columns: anon outsider member maint creator expc orgm self admin.
#[rustfmt::skip]
const TABLE: &[(Rpc, Mode, &str)] = &[
    // project read: public Any.Any; protected P.Member|O.Member; private P.Member|O.Maintainer
    (GetProject,            Pub,  "U A A A A A A - A"),
    (GetProject,            Prot, "U D A A A A A - A"),
    (GetProject,            Priv, "U D A A A A A - A"),
    (GetProjectMembers,     Pub,  "U A A A A A A - A"),
    (GetProjectMembers,     Prot, "U D A A A A A - A"),
    (GetProjectMembers,     Priv, "U D A A A A A - A"),
    (GetProjectExperiments, Pub,  "U A A A A A A - A"),
    (GetProjectExperiments, Prot, "U D A A A A A - A"),
    (GetProjectExperiments, Priv, "U D A A A A A - A"),
    // project create: Any.Any
    (CreateProject,         Pub,  "U A A A A A A - A"),
    (CreateProject,         Prot, "U A A A A A A - A"),
    (CreateProject,         Priv, "U A A A A A A - A"),
    // project update (membership changes too): P.Maintainer|O.Maintainer
    (UpdateProject,         Pub,  "U D D A A D A - A"),
    (UpdateProject,         Prot, "U D D A A D A - A"),
    (UpdateProject,         Priv, "U D D A A D A - A"),
    (AddProjectMember,      Pub,  "U D D A A D A - A"),
    (AddProjectMember,      Prot, "U D D A A D A - A"),
    (AddProjectMember,      Priv, "U D D A A D A - A"),
    (DeleteProjectMember,   Pub,  "U D D A A D A - A"),
    (DeleteProjectMember,   Prot, "U D D A A D A - A"),
    (DeleteProjectMember,   Priv, "U D D A A D A - A"),
    // project delete: P.Creator|O.Creator (an organization maintainer is not enough)
    (DeleteProject,         Pub,  "U D D D A D D - A"),
    (DeleteProject,         Prot, "U D D D A D D - A"),
    (DeleteProject,         Priv, "U D D D A D D - A"),
    // experiment create: P.Member (organization maintainers are not project members)
    (CreateExperiment,      Pub,  "U D A A A A D - A"),
    (CreateExperiment,      Prot, "U D A A A A D - A"),
    (CreateExperiment,      Priv, "U D A A A A D - A"),
    // experiment read: public Any.Any; protected P.Member|O.Maintainer;
    // private E.Maintainer|P.Creator|O.Maintainer
    (GetExperiment,         Pub,  "U A A A A A A - A"),
    (GetExperiment,         Prot, "U D A A A A A - A"),
    (GetExperiment,         Priv, "U D D D A A A - A"),
    // experiment update: E.Maintainer|P.Maintainer|O.Maintainer; private: P.Creator for P.Maintainer
    (UpdateExperiment,      Pub,  "U D D A A A A - A"),
    (UpdateExperiment,      Prot, "U D D A A A A - A"),
    (UpdateExperiment,      Priv, "U D D D A A A - A"),
    // experiment delete: E.Creator|P.Maintainer|O.Maintainer; private: P.Creator for P.Maintainer
    (DeleteExperiment,      Pub,  "U D D A A A A - A"),
    (DeleteExperiment,      Prot, "U D D A A A A - A"),
    (DeleteExperiment,      Priv, "U D D D A A A - A"),
    // organization create: Any.Any
    (CreateOrganization,    Pub,  "U A A A A A A - A"),
    (CreateOrganization,    Prot, "U A A A A A A - A"),
    (CreateOrganization,    Priv, "U A A A A A A - A"),
    // organization read: public Any.Any; otherwise O.Member
    (GetOrganization,       Pub,  "U A A A A A A - A"),
    (GetOrganization,       Prot, "U D A A A D A - A"),
    (GetOrganization,       Priv, "U D A A A D A - A"),
    // organization update: O.Maintainer; delete: O.Creator
    (UpdateOrganization,    Pub,  "U D D A A D A - A"),
    (UpdateOrganization,    Prot, "U D D A A D A - A"),
    (UpdateOrganization,    Priv, "U D D A A D A - A"),
    (DeleteOrganization,    Pub,  "U D D D A D D - A"),
    (DeleteOrganization,    Prot, "U D D D A D D - A"),
    (DeleteOrganization,    Priv, "U D D D A D D - A"),
    // user read: public Any.Any; protected Self|P.Member|O.Member; private Self|O.Maintainer
    (GetUser,               Pub,  "U A A A A A A A A"),
    (GetUser,               Prot, "U D A A A A A A A"),
    (GetUser,               Priv, "U D D D D D A A A"),
    // user update (profile and SSH keys): Self|O.Maintainer
    (UpdateUser,            Pub,  "U D D D D D A A A"),
    (UpdateUser,            Prot, "U D D D D D A A A"),
    (UpdateUser,            Priv, "U D D D D D A A A"),
    (GetUserPublicKeys,     Pub,  "U D D D D D A A A"),
    (GetUserPublicKeys,     Prot, "U D D D D D A A A"),
    (GetUserPublicKeys,     Priv, "U D D D D D A A A"),
    (AddUserPublicKey,      Pub,  "U D D D D D A A A"),
    (AddUserPublicKey,      Prot, "U D D D D D A A A"),
    (AddUserPublicKey,      Priv, "U D D D D D A A A"),
    // admitting / freezing a user is user create: O.Maintainer (never oneself)
    (ActivateUser,          Pub,  "U D D D D D A D A"),
    (ActivateUser,          Prot, "U D D D D D A D A"),
    (ActivateUser,          Priv, "U D D D D D A D A"),
    (FreezeUser,            Pub,  "U D D D D D A D A"),
    (FreezeUser,            Prot, "U D D D D D A D A"),
    (FreezeUser,            Priv, "U D D D D D A D A"),
    // identity: User.Self only, whatever the user's access mode
    (GetIdentity,           Pub,  "U D D D D D D A A"),
    (GetIdentity,           Prot, "U D D D D D D A A"),
    (GetIdentity,           Priv, "U D D D D D D A A"),
    (UpdateIdentity,        Pub,  "U D D D D D D A A"),
    (UpdateIdentity,        Prot, "U D D D D D D A A"),
    (UpdateIdentity,        Priv, "U D D D D D D A A"),
    (Unregister,            Prot, "U D D D D D D A A"),
    // administrators only
    (ListIdentities,        Any,  "U D D D D D D D A"),
    (UpdateUserConfigurations, Any, "U D D D D D D D A"),
];

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Outcome {
    Allowed,
    Denied,
    Unauthenticated,
}

fn expected(cells: &str) -> Vec<Option<Outcome>> {
    let v: Vec<_> = cells
        .split_whitespace()
        .map(|c| match c {
            "A" => Some(Outcome::Allowed),
            "D" => Some(Outcome::Denied),
            "U" => Some(Outcome::Unauthenticated),
            "-" => None,
            other => panic!("bad cell {other:?}"),
        })
        .collect();
    assert_eq!(v.len(), ROLES.len(), "row {cells:?}");
    v
}

const PORG: &str = "porg";
const PX: &str = "px";
const PU: &str = "pu";
const OU: &str = "ou";

/// A signed-in person with both clients.
#[derive(Clone)]
struct Session {
    name: String,
    ws: Ws,
    id: Id,
}

/// The fixture: fixed accounts and one shared object of each kind per access mode.
struct World {
    portal: TestPortal,
    anon: (Ws, Id),
    sessions: HashMap<Role, (Ws, Id)>,
    projects: Vec<String>,
    experiments: Vec<String>,
    orgs: Vec<String>,
    targets: Vec<Session>,
    seq: AtomicU32,
}

impl World {
    async fn build() -> World {
        use pb::member::Role as R;
        let portal = TestPortal::start().await;
        let admin = portal.admin().await;
        let anon = portal.clients(None).await;
        let mut world = World {
            anon,
            sessions: HashMap::from([(Role::Admin, admin)]),
            portal,
            projects: vec![],
            experiments: vec![],
            orgs: vec![],
            targets: vec![],
            seq: AtomicU32::new(1),
        };
        for role in FIXED {
            world.register(role.username(), true).await;
        }
        world.register("addee", true).await;
        for role in FIXED {
            world.sessions.insert(role, world.portal.as_user(role.username()).await);
        }
        let mut ws = world.admin();
        // porg: created (active) by the administrator; orgm asks to join as Maintainer and the
        // administrator confirms.
        world.create_org(PORG, "", Pub).await;
        let (mut orgm, _) = world.client(Role::OrgM);
        orgm.request_organization_membership(pb::RequestOrganizationMembershipRequest {
            organization: PORG.into(),
            id: "orgm".into(),
            kind: pb::MembershipType::UserMember as i32,
            member: Some(pb::Member { role: R::Maintainer as i32, ..Default::default() }),
        })
        .await
        .unwrap();
        ws.confirm_organization_membership(pb::ConfirmOrganizationMembershipRequest {
            organization: PORG.into(),
            id: "orgm".into(),
            kind: pb::MembershipType::UserMember as i32,
        })
        .await
        .unwrap();
        // pu and ou: where the user targets meet the fixed accounts.
        world.create_project(PU, Priv).await;
        ws.update_project(pb::UpdateProjectRequest {
            name: PU.into(),
            members: members(&[("member", R::Member), ("maint", R::Maintainer)]),
            ..Default::default()
        })
        .await
        .unwrap();
        world.create_org(OU, "", Priv).await;
        world.set_org_members(OU, &[("orgm", R::Maintainer), ("expc", R::Member)]).await;
        world.project_in_porg(PX, Prot, false).await;
        for mode in [Pub, Prot, Priv] {
            let p = world.new_project(mode, false).await;
            world.projects.push(p);
            let e = world.new_experiment(mode).await;
            world.experiments.push(e);
            let o = world.new_org(mode).await;
            world.orgs.push(o);
            let t = world.new_target(mode, true).await;
            let (ws, id) = world.portal.as_user(&t).await;
            world.targets.push(Session { name: t, ws, id });
        }
        world
    }

    fn next(&self, prefix: &str) -> String {
        format!("{prefix}{}", self.seq.fetch_add(1, Ordering::Relaxed))
    }

    fn admin(&self) -> Ws {
        self.sessions[&Role::Admin].0.clone()
    }

    fn client(&self, role: Role) -> (Ws, Id) {
        match role {
            Role::Anon => self.anon.clone(),
            Role::Self_ => panic!("a self session belongs to a target"),
            other => self.sessions[&other].clone(),
        }
    }

    /// Registers `name`; through the administrator the account is active at once, otherwise it
    /// waits for activation.
    async fn register(&self, name: &str, active: bool) {
        let mut id = if active { self.sessions[&Role::Admin].1.clone() } else { self.anon.1.clone() };
        id.register(pb::RegisterRequest {
            username: name.into(),
            email: format!("{name}@example.org"),
            password: PASSWORD.into(),
            name: name.into(),
            institution: "Other".into(),
            category: "Researcher".into(),
            country: "US".into(),
            ..Default::default()
        })
        .await
        .unwrap_or_else(|e| panic!("register {name}: {e}"));
    }

    async fn create_project(&self, name: &str, mode: Mode) {
        let project = pb::Project { name: name.into(), access_mode: mode.pb(), ..Default::default() };
        self.admin()
            .create_project(pb::CreateProjectRequest { user: "creator".into(), project: Some(project) })
            .await
            .unwrap_or_else(|e| panic!("create project {name}: {e}"));
    }

    async fn create_org(&self, name: &str, creator: &str, mode: Mode) {
        let org = pb::Organization { name: name.into(), access_mode: mode.pb(), ..Default::default() };
        self.admin()
            .create_organization(pb::CreateOrganizationRequest {
                user: creator.into(),
                organization: Some(org),
            })
            .await
            .unwrap_or_else(|e| panic!("create organization {name}: {e}"));
    }

    async fn set_org_members(&self, org: &str, list: &[(&str, pb::member::Role)]) {
        self.admin()
            .update_organization(pb::UpdateOrganizationRequest {
                name: org.into(),
                members: members(list),
                ..Default::default()
            })
            .await
            .unwrap_or_else(|e| panic!("members of {org}: {e}"));
    }

    /// A project with the standard members that has joined `porg`.
    async fn project_in_porg(&self, name: &str, mode: Mode, with_addee: bool) {
        use pb::member::Role as R;
        self.create_project(name, mode).await;
        let mut list = vec![("member", R::Member), ("maint", R::Maintainer), ("expc", R::Member)];
        if with_addee {
            list.push(("addee", R::Member));
        }
        let mut ws = self.admin();
        ws.update_project(pb::UpdateProjectRequest {
            name: name.into(),
            members: members(&list),
            ..Default::default()
        })
        .await
        .unwrap();
        ws.add_organization_project(pb::AddOrganizationProjectRequest {
            organization: PORG.into(),
            project: name.into(),
            member: Some(active(R::Member)),
        })
        .await
        .unwrap();
    }

    async fn new_project(&self, mode: Mode, with_addee: bool) -> String {
        let name = self.next("p");
        self.project_in_porg(&name, mode, with_addee).await;
        name
    }

    async fn new_experiment(&self, mode: Mode) -> String {
        let name = self.next("e");
        let experiment = pb::Experiment {
            name: name.clone(),
            project: PX.into(),
            access_mode: mode.pb(),
            creator: "expc".into(),
            ..Default::default()
        };
        self.admin()
            .create_experiment(pb::CreateExperimentRequest { experiment: Some(experiment) })
            .await
            .unwrap_or_else(|e| panic!("create experiment {name}: {e}"));
        name
    }

    async fn new_org(&self, mode: Mode) -> String {
        use pb::member::Role as R;
        let name = self.next("o");
        self.create_org(&name, "creator", mode).await;
        self.set_org_members(
            &name,
            &[("member", R::Member), ("maint", R::Maintainer), ("orgm", R::Maintainer)],
        )
        .await;
        name
    }

    /// A user with the given access mode, member of `pu` and `ou`; pending unless `active`.
    async fn new_target(&self, mode: Mode, active_account: bool) -> String {
        use pb::member::Role as R;
        let name = self.next("t");
        self.register(&name, active_account).await;
        let mut ws = self.admin();
        if mode != Prot {
            ws.update_user(pb::UpdateUserRequest {
                username: name.clone(),
                access_mode: Some(pb::AccessModeUpdate { value: mode.pb() }),
                ..Default::default()
            })
            .await
            .unwrap();
        }
        ws.add_project_member(pb::AddProjectMemberRequest {
            project: PU.into(),
            username: name.clone(),
            member: Some(active(R::Member)),
        })
        .await
        .unwrap();
        self.set_org_members(OU, &[(&name, R::Member)]).await;
        name
    }

    // === reading back effects, as the administrator ===

    async fn project(&self, name: &str) -> Option<pb::Project> {
        found(self.admin().get_project(pb::GetProjectRequest { name: name.into(), status_ms: 0 }).await)
            .and_then(|r| r.project)
    }

    async fn experiment(&self, name: &str) -> Option<pb::Experiment> {
        let req =
            pb::GetExperimentRequest { project: PX.into(), experiment: name.into(), ..Default::default() };
        found(self.admin().get_experiment(req).await).and_then(|r| r.experiment)
    }

    async fn org(&self, name: &str) -> Option<pb::Organization> {
        let req = pb::GetOrganizationRequest { name: name.into(), status_ms: 0 };
        found(self.admin().get_organization(req).await).and_then(|r| r.organization)
    }

    async fn user(&self, name: &str) -> Option<pb::User> {
        found(self.admin().get_user(pb::GetUserRequest { username: name.into(), status_ms: 0 }).await)
            .and_then(|r| r.user)
    }
}

/// Performs one cell: the call as `role`, and whether its effect is visible afterwards (for
/// calls that change something).
async fn perform(w: &World, rpc: Rpc, mode: Mode, role: Role) -> (Result<(), Status>, Option<bool>) {
    let i = mode.index();
    let n = w.seq.fetch_add(1, Ordering::Relaxed);
    let marker = format!("cell {n}");
    let description = || Some(pb::DescriptionUpdate { value: marker.clone() });
    // The caller's clients; `Self_` is the target user's own session (rows without a self column
    // never reach it).
    let as_role = |target: &Session| match role {
        Role::Self_ => (target.ws.clone(), target.id.clone()),
        r => w.client(r),
    };
    let (mut ws, mut id) = as_role(&w.targets[i]);
    // A fresh user target, with its own session when the cell is the self column.
    let fresh_target = |active_account: bool| async move {
        let name = w.new_target(mode, active_account).await;
        let (ws, id) = if role == Role::Self_ { w.portal.as_user(&name).await } else { w.anon.clone() };
        Session { name, ws, id }
    };
    match rpc {
        GetProject => {
            let req = pb::GetProjectRequest { name: w.projects[i].clone(), status_ms: 0 };
            (done(ws.get_project(req).await), None)
        }
        GetProjectMembers => {
            let req = pb::GetProjectMembersRequest { name: w.projects[i].clone() };
            (done(ws.get_project_members(req).await), None)
        }
        GetProjectExperiments => {
            let req = pb::GetProjectExperimentsRequest { project: w.projects[i].clone() };
            (done(ws.get_project_experiments(req).await), None)
        }
        CreateProject => {
            let name = w.next("p");
            let project =
                Some(pb::Project { name: name.clone(), access_mode: mode.pb(), ..Default::default() });
            let r = done(ws.create_project(pb::CreateProjectRequest { user: String::new(), project }).await);
            (r, Some(w.project(&name).await.is_some()))
        }
        UpdateProject => {
            let name = w.new_project(mode, false).await;
            let req = pb::UpdateProjectRequest {
                name: name.clone(),
                description: description(),
                ..Default::default()
            };
            let r = done(ws.update_project(req).await);
            (r, Some(w.project(&name).await.unwrap().description == marker))
        }
        AddProjectMember => {
            let project = w.new_project(mode, false).await;
            let member = Some(active(pb::member::Role::Member));
            let req =
                pb::AddProjectMemberRequest { project: project.clone(), username: "addee".into(), member };
            let r = done(ws.add_project_member(req).await);
            (r, Some(w.project(&project).await.unwrap().members.contains_key("addee")))
        }
        DeleteProjectMember => {
            let project = w.new_project(mode, true).await;
            let req = pb::DeleteProjectMemberRequest { project: project.clone(), member: "addee".into() };
            let r = done(ws.delete_project_member(req).await);
            (r, Some(!w.project(&project).await.unwrap().members.contains_key("addee")))
        }
        DeleteProject => {
            let name = w.new_project(mode, false).await;
            let r = done(
                ws.delete_project(pb::DeleteProjectRequest { user: String::new(), name: name.clone() }).await,
            );
            (r, Some(w.project(&name).await.is_none()))
        }
        CreateExperiment => {
            let name = w.next("e");
            let e = pb::Experiment {
                name: name.clone(),
                project: PX.into(),
                access_mode: mode.pb(),
                ..Default::default()
            };
            let r = done(ws.create_experiment(pb::CreateExperimentRequest { experiment: Some(e) }).await);
            (r, Some(w.experiment(&name).await.is_some()))
        }
        GetExperiment => {
            let experiment = w.experiments[i].clone();
            let req = pb::GetExperimentRequest { project: PX.into(), experiment, ..Default::default() };
            (done(ws.get_experiment(req).await), None)
        }
        UpdateExperiment => {
            let name = w.new_experiment(mode).await;
            let req = pb::UpdateExperimentRequest {
                name: name.clone(),
                project: PX.into(),
                description: description(),
                ..Default::default()
            };
            let r = done(ws.update_experiment(req).await);
            (r, Some(w.experiment(&name).await.unwrap().description == marker))
        }
        DeleteExperiment => {
            let name = w.new_experiment(mode).await;
            let req = pb::DeleteExperimentRequest { project: PX.into(), experiment: name.clone() };
            let r = done(ws.delete_experiment(req).await);
            (r, Some(w.experiment(&name).await.is_none()))
        }
        CreateOrganization => {
            let name = w.next("o");
            let org =
                Some(pb::Organization { name: name.clone(), access_mode: mode.pb(), ..Default::default() });
            let req = pb::CreateOrganizationRequest { user: String::new(), organization: org };
            let r = done(ws.create_organization(req).await);
            (r, Some(w.org(&name).await.is_some()))
        }
        GetOrganization => {
            let req = pb::GetOrganizationRequest { name: w.orgs[i].clone(), status_ms: 0 };
            (done(ws.get_organization(req).await), None)
        }
        UpdateOrganization => {
            let name = w.new_org(mode).await;
            let req = pb::UpdateOrganizationRequest {
                name: name.clone(),
                description: description(),
                ..Default::default()
            };
            let r = done(ws.update_organization(req).await);
            (r, Some(w.org(&name).await.unwrap().description == marker))
        }
        DeleteOrganization => {
            let name = w.new_org(mode).await;
            let req = pb::DeleteOrganizationRequest { user: String::new(), name: name.clone() };
            let r = done(ws.delete_organization(req).await);
            (r, Some(w.org(&name).await.is_none()))
        }
        // The shared user targets: reads, and field edits where each cell writes its own value.
        GetUser => {
            let req = pb::GetUserRequest { username: w.targets[i].name.clone(), status_ms: 0 };
            (done(ws.get_user(req).await), None)
        }
        GetUserPublicKeys => {
            let req = pb::GetUserPublicKeysRequest { user: w.targets[i].name.clone() };
            (done(ws.get_user_public_keys(req).await), None)
        }
        GetIdentity => {
            let req = pb::GetIdentityRequest { username: w.targets[i].name.clone() };
            (done(id.get_identity(req).await), None)
        }
        UpdateUser => {
            let username = w.targets[i].name.clone();
            let req = pb::UpdateUserRequest {
                username: username.clone(),
                name: marker.clone(),
                ..Default::default()
            };
            let r = done(ws.update_user(req).await);
            (r, Some(w.user(&username).await.unwrap().name == marker))
        }
        AddUserPublicKey => {
            let user = w.targets[i].name.clone();
            let key = ssh_key(n);
            let r = done(
                ws.add_user_public_key(pb::AddUserPublicKeyRequest { user: user.clone(), key: key.clone() })
                    .await,
            );
            let keys = w.admin().get_user_public_keys(pb::GetUserPublicKeysRequest { user }).await.unwrap();
            (r, Some(keys.into_inner().keys.iter().any(|k| k.key == key)))
        }
        UpdateIdentity => {
            let username = w.targets[i].name.clone();
            let email = format!("cell{n}@example.org");
            let req = pb::UpdateIdentityRequest {
                username: username.clone(),
                emailaddress: email.clone(),
                ..Default::default()
            };
            let r = done(id.update_identity(req).await);
            let (_, mut admin_id) = w.client(Role::Admin);
            let identity = admin_id.get_identity(pb::GetIdentityRequest { username }).await.unwrap();
            (r, Some(identity.into_inner().identity.unwrap().email == email))
        }
        // State changes and deletion: a fresh target per cell.
        ActivateUser => {
            let t = fresh_target(false).await;
            let (mut ws, _) = as_role(&t);
            let req = pb::ActivateUserRequest { username: t.name.clone(), ..Default::default() };
            let r = done(ws.activate_user(req).await);
            (r, Some(w.user(&t.name).await.unwrap().state == pb::UserState::Active as i32))
        }
        FreezeUser => {
            let t = fresh_target(true).await;
            let (mut ws, _) = as_role(&t);
            let r = done(ws.freeze_user(pb::FreezeUserRequest { username: t.name.clone() }).await);
            (r, Some(w.user(&t.name).await.unwrap().state == pb::UserState::Frozen as i32))
        }
        Unregister => {
            let t = fresh_target(true).await;
            let (_, mut id) = as_role(&t);
            let r = done(id.unregister(pb::UnregisterRequest { username: t.name.clone() }).await);
            (r, Some(w.user(&t.name).await.is_none()))
        }
        ListIdentities => (done(id.list_identities(pb::ListIdentityRequest {}).await), None),
        UpdateUserConfigurations => {
            let institution = format!("Institute of {marker}");
            let patchstrategy =
                Some(pb::PatchStrategy { strategy: pb::PatchStrategyStrategy::Expand as i32 });
            let req = pb::UpdateUserConfigurationsRequest {
                institutions: vec![institution.clone()],
                categories: vec![],
                patchstrategy,
            };
            let r = done(ws.update_user_configurations(req).await);
            let (mut anon, _) = w.client(Role::Anon);
            let config = anon.get_user_configurations(pb::GetUserConfigurationsRequest {}).await.unwrap();
            (r, Some(config.into_inner().institutions.contains(&institution)))
        }
    }
}

fn classify(r: &Result<(), Status>) -> Result<Outcome, String> {
    match r {
        Ok(()) => Ok(Outcome::Allowed),
        Err(s) if s.code() == Code::PermissionDenied => Ok(Outcome::Denied),
        Err(s) if s.code() == Code::Unauthenticated => Ok(Outcome::Unauthenticated),
        Err(s) => Err(format!("{:?}: {}", s.code(), s.message())),
    }
}

#[tokio::test]
async fn policy_matrix_matches_the_builtin_policy() {
    let started = std::time::Instant::now();
    let world = World::build().await;
    let mut failures = Vec::new();
    let (mut checks, mut counts) = (0, HashMap::new());
    for &(rpc, mode, cells) in TABLE {
        for (role, want) in ROLES.into_iter().zip(expected(cells)) {
            let Some(want) = want else { continue };
            let (result, effect) = perform(&world, rpc, mode, role).await;
            checks += 1;
            *counts.entry(want).or_insert(0) += 1;
            let cell = format!("{rpc:?} {mode:?} as {role:?}");
            match classify(&result) {
                Err(other) => failures.push(format!("{cell}: expected {want:?}, got {other}")),
                Ok(got) if got != want => {
                    let why = result.err().map(|s| s.message().to_owned()).unwrap_or_default();
                    failures.push(format!("{cell}: expected {want:?}, got {got:?} {why}"));
                }
                Ok(got) => {
                    if let Some(took_effect) = effect
                        && took_effect != (got == Outcome::Allowed)
                    {
                        failures.push(format!("{cell}: {got:?} but the effect was present={took_effect}"));
                    }
                    if got == Outcome::Denied && role != Role::Admin {
                        let message = result.unwrap_err().message().to_owned();
                        // Denials say why (the policy's reason or the account state), never nothing.
                        if message.is_empty() {
                            failures.push(format!("{cell}: denied without a reason"));
                        }
                    }
                }
            }
        }
    }
    println!(
        "policy matrix: {} rows, {checks} cells checked ({} allowed, {} denied, {} unauthenticated) in {:.1?}",
        TABLE.len(),
        counts.get(&Outcome::Allowed).unwrap_or(&0),
        counts.get(&Outcome::Denied).unwrap_or(&0),
        counts.get(&Outcome::Unauthenticated).unwrap_or(&0),
        started.elapsed()
    );
    assert!(
        failures.is_empty(),
        "{} of {checks} cells disagree with the policy:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Which fixture objects each role sees in the `ByAll` lists; `1` visible, `0` hidden.
/// Columns: projects (P pub, prot, priv, px), experiments (pub, prot, priv), organizations
/// (pub, prot, priv), users (T pub, prot, priv). `self` is the protected target user.
#[rustfmt::skip]
const VISIBLE: &[(Role, &str, &str, &str, &str)] = &[
    (Role::Outsider, "1 0 0 0", "1 0 0", "1 0 0", "1 0 0"),
    (Role::Member,   "1 1 1 1", "1 1 0", "1 1 1", "1 1 0"),
    (Role::Maint,    "1 1 1 1", "1 1 0", "1 1 1", "1 1 0"),
    (Role::Creator,  "1 1 1 1", "1 1 1", "1 1 1", "1 1 0"),
    (Role::ExpC,     "1 1 1 1", "1 1 1", "1 0 0", "1 1 0"),
    (Role::OrgM,     "1 1 1 1", "1 1 1", "1 1 1", "1 1 1"),
    (Role::Self_,    "1 0 0 0", "1 0 0", "1 0 0", "1 1 0"),
    (Role::Admin,    "1 1 1 1", "1 1 1", "1 1 1", "1 1 1"),
];

/// The names in `universe` whose flag in `flags` is 1.
fn pick(universe: &[String], flags: &str) -> BTreeSet<String> {
    let flags: Vec<&str> = flags.split_whitespace().collect();
    assert_eq!(flags.len(), universe.len());
    universe.iter().zip(flags).filter(|(_, f)| *f == "1").map(|(n, _)| n.clone()).collect()
}

fn within(names: impl IntoIterator<Item = String>, universe: &[String]) -> BTreeSet<String> {
    names.into_iter().filter(|n| universe.contains(n)).collect()
}

#[tokio::test]
async fn list_calls_return_exactly_what_each_role_may_read() {
    let w = World::build().await;
    let all = pb::FilterMode::ByAll as i32;
    let (mut anon, _) = w.client(Role::Anon);
    let refusals = [
        done(anon.get_projects(pb::GetProjectsRequest { filter: all }).await),
        done(anon.get_experiments(pb::GetExperimentsRequest { filter: all }).await),
        done(anon.get_organizations(pb::GetOrganizationsRequest { filter: all }).await),
        done(anon.get_users(pb::GetUsersRequest { filter: all }).await),
    ];
    for r in refusals {
        assert_eq!(r.unwrap_err().code(), Code::Unauthenticated);
    }

    let projects: Vec<String> = w.projects.iter().cloned().chain([PX.to_owned()]).collect();
    let targets: Vec<String> = w.targets.iter().map(|t| t.name.clone()).collect();
    // Every account, hence every personal project (private, only its owner's).
    let accounts: Vec<String> = ["admin", "addee"]
        .into_iter()
        .map(str::to_owned)
        .chain(FIXED.iter().map(|r| r.username().to_owned()))
        .chain(targets.iter().cloned())
        .collect();
    let mut checked = 0;
    for &(role, p, e, o, u) in VISIBLE {
        let (me, (mut ws, _)) = match role {
            Role::Self_ => (w.targets[1].name.clone(), (w.targets[1].ws.clone(), w.targets[1].id.clone())),
            r => (r.username().to_owned(), w.client(r)),
        };
        let got = ws.get_projects(pb::GetProjectsRequest { filter: all }).await.unwrap().into_inner();
        let names: Vec<String> = got.projects.into_iter().map(|p| p.name).collect();
        assert_eq!(within(names.clone(), &projects), pick(&projects, p), "{role:?}: projects");
        let personal = within(names, &accounts);
        let own: BTreeSet<String> =
            if role == Role::Admin { accounts.iter().cloned().collect() } else { [me.clone()].into() };
        assert_eq!(personal, own, "{role:?}: personal projects");

        let got = ws.get_experiments(pb::GetExperimentsRequest { filter: all }).await.unwrap().into_inner();
        let visible = pick(&w.experiments, e);
        let names = got.experiments.into_iter().map(|e| e.name);
        assert_eq!(within(names, &w.experiments), visible, "{role:?}: experiments");
        // The experiments of one project are filtered the same way, once the project is readable.
        let of_px = ws.get_project_experiments(pb::GetProjectExperimentsRequest { project: PX.into() }).await;
        if p.ends_with('1') {
            let names = of_px.unwrap().into_inner().experiments.into_iter().map(|e| e.name);
            assert_eq!(names.collect::<BTreeSet<_>>(), visible, "{role:?}: experiments of {PX}");
        } else {
            assert_eq!(of_px.unwrap_err().code(), Code::PermissionDenied, "{role:?}: experiments of {PX}");
        }

        let got =
            ws.get_organizations(pb::GetOrganizationsRequest { filter: all }).await.unwrap().into_inner();
        let names = got.organizations.into_iter().map(|o| o.name);
        assert_eq!(within(names, &w.orgs), pick(&w.orgs, o), "{role:?}: organizations");

        let got = ws.get_users(pb::GetUsersRequest { filter: all }).await.unwrap().into_inner();
        let names = got.users.into_iter().map(|u| u.username);
        assert_eq!(within(names, &targets), pick(&targets, u), "{role:?}: users");
        checked += 1;
    }
    println!("list filtering: {checked} roles x 5 lists checked");
}
