//! Decisions of the shipped policy and of small hand-written ones.

use trellis_policy::{
    AccessMode, AccessRequest, Decision, Entity, Grant, Operation, Policy, Relations, Role, Scope,
};

use AccessMode::{Private, Protected, Public};
use Operation::{Create, Delete, Read, Update};

fn ask(policy: &Policy, entity: Entity, mode: AccessMode, op: Operation, held: Relations) -> Decision {
    policy.decide(&AccessRequest { entity, mode, operation: op, admin: false, relations: &held })
}

fn r() -> Relations {
    Relations::new()
}

#[test]
fn builtin_parses_and_covers_every_entity() {
    let policy = Policy::builtin();
    assert!(policy.warnings().is_empty(), "{:?}", policy.warnings());
    for &entity in Entity::ALL {
        assert!(policy.defines(entity), "{entity} missing from policy.yml");
        // Every entity has somebody other than admins who can read it in public mode.
        assert!(!policy.grants(entity, Public, Read).is_empty(), "{entity}: public read is admin-only");
    }
    // GetPolicy returns the source text, comments included, and it parses back the same.
    let yaml = policy.to_yaml();
    assert!(yaml.contains("# Trellis access policy"));
    let again = Policy::parse(&yaml).unwrap();
    for &e in Entity::ALL {
        for &m in AccessMode::ALL {
            for &o in Operation::ALL {
                assert_eq!(policy.grants(e, m, o), again.grants(e, m, o));
            }
        }
    }
}

#[test]
fn builtin_experiment_rules_match_merge_plus_organization_maintainers() {
    let p = Policy::builtin();
    let g = |s: &str| s.parse::<Grant>().unwrap();
    assert_eq!(
        p.grants(Entity::Experiment, Private, Read),
        &[g("Experiment.Maintainer"), g("Project.Creator"), g("Organization.Maintainer")]
    );
    assert_eq!(p.grants(Entity::Experiment, Public, Read), &[Grant::ANYONE]);
    assert_eq!(p.grants(Entity::Experiment, Protected, Create), &[g("Project.Member")]);
}

#[test]
fn builtin_decision_table() {
    let p = Policy::builtin();
    let member = r().with(Scope::Project, Role::Member);
    let maintainer = r().with(Scope::Project, Role::Maintainer);
    let creator = r().with(Scope::Project, Role::Creator);
    let exp_creator = r().with(Scope::Project, Role::Member).with(Scope::Experiment, Role::Creator);
    let org_maintainer = r().with(Scope::Organization, Role::Maintainer);
    let org_member = r().with(Scope::Organization, Role::Member);
    let me = r().with(Scope::User, Role::Self_);
    let nobody = r();

    use Entity::*;
    #[rustfmt::skip]
    let table: &[(Entity, AccessMode, Operation, Relations, bool)] = &[
        // experiment: the Merge fragment.
        (Experiment, Public,    Read,   nobody,         true),
        (Experiment, Protected, Read,   nobody,         false),
        (Experiment, Protected, Read,   member,         true),
        (Experiment, Private,   Read,   member,         false),
        (Experiment, Private,   Read,   maintainer,     false),
        (Experiment, Private,   Read,   creator,        true),
        (Experiment, Private,   Read,   exp_creator,    true),  // Creator ≥ Maintainer
        (Experiment, Private,   Read,   org_maintainer, true),
        (Experiment, Private,   Read,   org_member,     false),
        (Experiment, Public,    Create, member,         true),
        (Experiment, Public,    Create, nobody,         false),
        (Experiment, Public,    Update, member,         false),
        (Experiment, Public,    Update, maintainer,     true),
        (Experiment, Public,    Delete, exp_creator,    true),
        (Experiment, Private,   Delete, maintainer,     false),
        (Experiment, Private,   Delete, creator,        true),
        // project
        (Project, Public,    Create, nobody,         true),
        (Project, Public,    Read,   nobody,         true),
        (Project, Protected, Read,   nobody,         false),
        (Project, Protected, Read,   org_member,     true),
        (Project, Private,   Read,   org_member,     false),
        (Project, Private,   Read,   member,         true),
        (Project, Private,   Update, member,         false),
        (Project, Private,   Update, maintainer,     true),
        (Project, Private,   Update, org_maintainer, true),
        (Project, Public,    Delete, maintainer,     false),
        (Project, Public,    Delete, creator,        true),
        (Project, Public,    Delete, org_maintainer, false),
        // organization
        (Organization, Public,  Read,   nobody,         true),
        (Organization, Private, Read,   nobody,         false),
        (Organization, Private, Read,   org_member,     true),
        (Organization, Public,  Update, org_member,     false),
        (Organization, Public,  Update, org_maintainer, true),
        (Organization, Public,  Delete, org_maintainer, false),
        // user and identity
        (User, Public,    Read,   nobody,         true),
        (User, Private,   Read,   nobody,         false),
        (User, Private,   Read,   me,             true),
        (User, Public,    Update, me,             true),
        (User, Public,    Update, nobody,         false),
        (User, Public,    Update, org_maintainer, true),
        (User, Public,    Delete, me,             true),
        (User, Public,    Delete, creator,        false),
        (Identity, Private, Read,   me,     true),
        (Identity, Private, Read,   nobody, false),
        (Identity, Public,  Read,   nobody, false),
        (Identity, Public,  Create, me,     false),
        // realization / materialization / xdc
        (Realization,     Protected, Create, member,      true),
        (Realization,     Private,   Create, member,      false),
        (Realization,     Private,   Create, exp_creator, true),
        (Materialization, Protected, Read,   member,      true),
        (Materialization, Public,    Delete, member,      false),
        (Xdc, Public,  Read,   nobody,     false),
        (Xdc, Public,  Read,   member,     true),
        (Xdc, Public,  Delete, member,     false),
        (Xdc, Public,  Delete, me,         true),
        (Xdc, Public,  Delete, maintainer, true),
        // facility and pool: read for everyone, writes admin-only
        (Facility, Public,  Read,   nobody,  true),
        (Facility, Private, Read,   nobody,  true),
        (Facility, Public,  Create, creator, false),
        (Facility, Public,  Update, org_maintainer, false),
        (Pool,     Public,  Read,   nobody,  true),
        (Pool,     Public,  Delete, creator, false),
    ];
    let mut failures = Vec::new();
    for &(entity, mode, op, held, expected) in table {
        let d = ask(&p, entity, mode, op, held);
        if d.allowed != expected {
            failures.push(format!("{op} {mode} {entity} holding {held}: got {}", d.reason()));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn admins_are_allowed_everything() {
    let p = Policy::builtin();
    let nothing = r();
    for &e in Entity::ALL {
        for &m in AccessMode::ALL {
            for &o in Operation::ALL {
                let d = p.decide(&AccessRequest {
                    entity: e,
                    mode: m,
                    operation: o,
                    admin: true,
                    relations: &nothing,
                });
                assert!(d.allowed, "{o} {m} {e}");
                assert!(d.reason().contains("portal administrator"), "{}", d.reason());
            }
        }
    }
}

#[test]
fn reasons_name_requirement_and_holdings() {
    let p = Policy::builtin();
    let d = ask(&p, Entity::Experiment, Private, Read, r().with(Scope::Project, Role::Member));
    assert!(!d.allowed);
    assert_eq!(
        d.reason(),
        "reading a private experiment requires one of Experiment.Maintainer, Project.Creator, \
         Organization.Maintainer; you hold Project.Member"
    );
    let d = ask(&p, Entity::Identity, Private, Read, r());
    assert_eq!(d.reason(), "reading a private identity requires User.Self; you hold no role");
    let d = ask(&p, Entity::Facility, Public, Delete, r());
    assert!(!d.allowed);
    assert!(d.reason().contains("restricted to portal administrators"), "{d}");
    let d = ask(&p, Entity::Facility, Public, Read, r());
    assert!(d.allowed);
    assert_eq!(d.matched, Some(Grant::ANYONE));
    assert!(d.reason().contains("Any.Any"), "{d}");
    let d = ask(&p, Entity::Experiment, Private, Update, r().with(Scope::Experiment, Role::Creator));
    assert!(d.allowed);
    assert_eq!(d.matched, Some("Experiment.Maintainer".parse().unwrap()));
    assert_eq!(
        d.reason(),
        "updating a private experiment is allowed by Experiment.Maintainer; you hold Experiment.Creator"
    );
}

#[test]
fn role_ordering_and_any_role() {
    let p = Policy::parse(
        "project:\n  public:\n    read: [Project.Member]\n    update: [Project.Maintainer]\n    \
         delete: [Project.Creator]\n    create: [Organization.Any]\n",
    )
    .unwrap();
    let roles = [Role::Member, Role::Maintainer, Role::Creator];
    for (i, &held) in roles.iter().enumerate() {
        let held = r().with(Scope::Project, held);
        for (j, op) in [Read, Update, Delete].into_iter().enumerate() {
            let d = ask(&p, Entity::Project, Public, op, held);
            assert_eq!(d.allowed, i >= j, "{op} holding {held}: {d}");
        }
    }
    // Organization.Any: any role in the organization, but not in another scope.
    for &role in &roles {
        let held = r().with(Scope::Organization, role);
        assert!(ask(&p, Entity::Project, Public, Create, held).allowed);
    }
    let held = r().with(Scope::Project, Role::Creator);
    assert!(!ask(&p, Entity::Project, Public, Create, held).allowed);
}

#[test]
fn missing_and_empty_rules_are_admin_only() {
    let p =
        Policy::parse("experiment:\n  public:\n    read: [Any.Any]\n    update: []\n    delete:\n").unwrap();
    // Nine entities missing: one warning each, naming the entity.
    assert_eq!(p.warnings().len(), Entity::ALL.len() - 1);
    assert!(p.warnings().iter().any(|w| w.contains("pool")));
    let all = r()
        .with(Scope::Project, Role::Creator)
        .with(Scope::Experiment, Role::Creator)
        .with(Scope::Organization, Role::Creator)
        .with(Scope::User, Role::Self_);
    assert!(ask(&p, Entity::Experiment, Public, Read, r()).allowed);
    for op in [Create, Update, Delete] {
        let d = ask(&p, Entity::Experiment, Public, op, all);
        assert!(!d.allowed, "{op}");
        assert!(d.reason().contains("portal administrators"), "{d}");
    }
    // Mode absent.
    assert!(!ask(&p, Entity::Experiment, Private, Read, all).allowed);
    // Entity absent.
    let d = ask(&p, Entity::Pool, Public, Read, all);
    assert!(!d.allowed);
    assert!(d.reason().contains("no rules for pool"), "{d}");
}
