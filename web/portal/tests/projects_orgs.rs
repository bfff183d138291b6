//! The project and organization pages against a real portal in process: forms go through the
//! web router as a browser would send them, and every effect is read back through the API.

mod common;

use common::{TestWeb, escaped};
use http::StatusCode;
use trellis_api::portal::v1 as pb;
use trellis_web::api::authed;

/// The project as the administrator sees it, or `None` when it does not exist.
async fn project(web: &TestWeb, name: &str) -> Option<pb::Project> {
    let admin = web.admin_token().await;
    let request = pb::GetProjectRequest { name: name.into(), status_ms: 0 };
    match web.api.workspace().get_project(authed(&admin, request)).await {
        Ok(reply) => reply.into_inner().project,
        Err(status) if status.code() == tonic::Code::NotFound => None,
        Err(status) => panic!("reading project {name}: {status}"),
    }
}

/// Every project's name, as the administrator sees them.
async fn all_projects(web: &TestWeb) -> Vec<String> {
    let admin = web.admin_token().await;
    let request = pb::GetProjectsRequest { filter: pb::FilterMode::ByAll as i32 };
    let reply = web.api.workspace().get_projects(authed(&admin, request)).await.expect("projects");
    let mut names: Vec<String> = reply.into_inner().projects.into_iter().map(|p| p.name).collect();
    names.sort();
    names
}

async fn organization(web: &TestWeb, name: &str) -> Option<pb::Organization> {
    let admin = web.admin_token().await;
    let request = pb::GetOrganizationRequest { name: name.into(), status_ms: 0 };
    match web.api.workspace().get_organization(authed(&admin, request)).await {
        Ok(reply) => reply.into_inner().organization,
        Err(status) if status.code() == tonic::Code::NotFound => None,
        Err(status) => panic!("reading organization {name}: {status}"),
    }
}

fn member(role: pb::member::Role, state: pb::member::State) -> Option<pb::Member> {
    Some(pb::Member { role: role as i32, state: state as i32 })
}

#[tokio::test]
async fn projects_are_created_listed_managed_and_guarded_by_the_policy() {
    let web = TestWeb::start().await;
    let alice = web.active_user("alice").await;
    web.active_user("bob").await;
    let carol = web.active_user("carol").await;

    let list = web.get(&alice, "/projects").await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.body);
    for id in [
        "new-project-form",
        "new-project-name",
        "new-project-description",
        "create-project",
        "projects-table",
    ] {
        assert!(list.body.contains(&format!("id=\"{id}\"")), "no #{id} in {}", list.body);
    }

    // A bad name comes back with the API's words under the field, and nothing typed is lost.
    let before = all_projects(&web).await;
    let fields = [("name", "Bad Name"), ("description", "keep this text"), ("access_mode", "Private")];
    let bad = web.post(&alice, "/projects", &fields).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.body);
    assert!(bad.body.contains("class=\"field-error\""), "{}", bad.body);
    assert!(bad.body.contains("must start with a lowercase letter"), "{}", bad.body);
    assert!(bad.body.contains(">keep this text</textarea>"), "{}", bad.body);
    assert!(bad.body.contains("value=\"Bad Name\""), "{}", bad.body);
    assert_eq!(all_projects(&web).await, before, "nothing was created");

    let fields = [("name", "alpha"), ("description", "the first project"), ("access_mode", "Private")];
    let created = web.post(&alice, "/projects", &fields).await;
    assert_eq!(created.status, StatusCode::SEE_OTHER, "{}", created.body);
    assert!(created.redirected_to().starts_with("/projects/alpha?notice="), "{:?}", created.location);
    let stored = project(&web, "alpha").await.expect("alpha was created");
    assert_eq!(stored.description, "the first project");
    assert_eq!(stored.access_mode, pb::AccessMode::Private as i32);
    assert_eq!(
        stored.members.get("alice"),
        member(pb::member::Role::Creator, pb::member::State::Active).as_ref()
    );

    let list = web.get(&alice, "/projects").await;
    assert!(list.body.contains("id=\"project-alpha\""), "{}", list.body);
    assert!(list.body.contains("the first project"), "{}", list.body);
    // Carol's own list does not have it, and neither does her list of everything she may see.
    let theirs = web.get(&carol, "/projects?filter=all").await;
    assert_eq!(theirs.status, StatusCode::OK);
    assert!(!theirs.body.contains("id=\"project-alpha\""), "{}", theirs.body);

    let page = web.get(&alice, "/projects/alpha").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("the first project"));
    assert!(page.body.contains("id=\"member-alice\""), "{}", page.body);
    assert!(page.body.contains("action=\"/projects/alpha/experiments\""), "{}", page.body);
    for id in
        ["new-experiment-form", "new-experiment-name", "new-experiment-description", "create-experiment"]
    {
        assert!(page.body.contains(&format!("id=\"{id}\"")), "no #{id}");
    }
    for id in ["members-table", "add-member-form", "add-member-username", "add-member-role", "add-member"] {
        assert!(page.body.contains(&format!("id=\"{id}\"")), "no #{id}");
    }

    // Someone who is not a member gets the policy's reason, with the page's status.
    let denied = web.get(&carol, "/projects/alpha").await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN, "{}", denied.body);
    let request = pb::GetProjectRequest { name: "alpha".into(), status_ms: 0 };
    let reason =
        web.api.workspace().get_project(authed(&carol, request)).await.expect_err("carol is refused");
    assert!(reason.message().contains("Project.Member"), "{}", reason.message());
    assert!(denied.body.contains(&escaped(reason.message())), "{} not in {}", reason.message(), denied.body);
    assert!(denied.body.contains("id=\"whoami\""), "the denial keeps the navigation");

    // Members: add, re-role, approve a waiting membership, remove.
    let added = web.post(&alice, "/projects/alpha/members", &[("username", "bob"), ("role", "Member")]).await;
    assert_eq!(added.status, StatusCode::SEE_OTHER, "{}", added.body);
    let stored = project(&web, "alpha").await.unwrap();
    assert_eq!(
        stored.members.get("bob"),
        member(pb::member::Role::Member, pb::member::State::Active).as_ref()
    );
    assert!(web.get(&alice, "/projects/alpha").await.body.contains("id=\"member-bob\""));

    let missing =
        web.post(&alice, "/projects/alpha/members", &[("username", "nobody"), ("role", "Maintainer")]).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND, "{}", missing.body);
    assert!(missing.body.contains("value=\"nobody\""), "the username is kept: {}", missing.body);
    assert!(!project(&web, "alpha").await.unwrap().members.contains_key("nobody"));

    let re_roled = web.post(&alice, "/projects/alpha/members/bob/role", &[("role", "Maintainer")]).await;
    assert_eq!(re_roled.status, StatusCode::SEE_OTHER, "{}", re_roled.body);
    let bob = project(&web, "alpha").await.unwrap().members.get("bob").copied();
    assert_eq!(bob, member(pb::member::Role::Maintainer, pb::member::State::Active));

    let waiting = pb::UpdateProjectMemberRequest {
        project: "alpha".into(),
        username: "bob".into(),
        member: member(pb::member::Role::Maintainer, pb::member::State::MemberRequested),
    };
    web.api.workspace().update_project_member(authed(&alice, waiting)).await.expect("bob's membership waits");
    let page = web.get(&alice, "/projects/alpha").await;
    assert!(page.body.contains("MemberRequested"), "{}", page.body);
    assert!(page.body.contains("id=\"approve-member-bob\""), "{}", page.body);
    let approved = web.post(&alice, "/projects/alpha/members/bob/approve", &[]).await;
    assert_eq!(approved.status, StatusCode::SEE_OTHER, "{}", approved.body);
    let bob = project(&web, "alpha").await.unwrap().members.get("bob").copied();
    assert_eq!(bob, member(pb::member::Role::Maintainer, pb::member::State::Active));

    // Carol cannot change the membership either; the API's refusal is shown.
    let refused = web.post(&carol, "/projects/alpha/members/bob/remove", &[]).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    assert!(project(&web, "alpha").await.unwrap().members.contains_key("bob"));
    let removed = web.post(&alice, "/projects/alpha/members/bob/remove", &[]).await;
    assert_eq!(removed.status, StatusCode::SEE_OTHER, "{}", removed.body);
    assert!(!project(&web, "alpha").await.unwrap().members.contains_key("bob"));

    // Settings.
    let fields = [("description", "now protected"), ("access_mode", "Protected")];
    let saved = web.post(&alice, "/projects/alpha/settings", &fields).await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.body);
    let stored = project(&web, "alpha").await.unwrap();
    assert_eq!(
        (stored.description.as_str(), stored.access_mode),
        ("now protected", pb::AccessMode::Protected as i32)
    );

    // Deleting takes the confirmation box.
    let unconfirmed = web.post(&alice, "/projects/alpha/delete", &[]).await;
    assert_eq!(unconfirmed.status, StatusCode::BAD_REQUEST, "{}", unconfirmed.body);
    assert!(unconfirmed.body.contains("tick the box"), "{}", unconfirmed.body);
    assert!(project(&web, "alpha").await.is_some());
    let deleted = web.post(&alice, "/projects/alpha/delete", &[("confirm", "yes")]).await;
    assert_eq!(deleted.status, StatusCode::SEE_OTHER, "{}", deleted.body);
    assert!(deleted.redirected_to().starts_with("/projects?notice="));
    assert!(project(&web, "alpha").await.is_none());
}

#[tokio::test]
async fn forms_without_this_sessions_csrf_field_are_refused() {
    let web = TestWeb::start().await;
    let alice = web.active_user("alice").await;
    let carol = web.active_user("carol").await;
    let fields = [("name", "sneaky"), ("description", "x"), ("access_mode", "Public")];

    let missing = web.post_raw(&alice, "/projects", &fields).await;
    assert_eq!(missing.status, StatusCode::FORBIDDEN, "{}", missing.body);
    let other_session = trellis_web::session::csrf_for(&carol);
    let mut wrong = vec![("csrf", other_session.as_str())];
    wrong.extend_from_slice(&fields);
    let wrong_field = web.post_raw(&alice, "/projects", &wrong).await;
    assert_eq!(wrong_field.status, StatusCode::FORBIDDEN, "{}", wrong_field.body);
    let own = trellis_web::session::csrf_for(&alice);
    let mut right = vec![("csrf", own.as_str())];
    right.extend_from_slice(&fields);
    let cross_site = web
        .post_with_headers(
            &alice,
            "/projects",
            &right,
            &[("host", "portal.test"), ("origin", "https://evil.test")],
        )
        .await;
    assert_eq!(cross_site.status, StatusCode::FORBIDDEN, "{}", cross_site.body);
    let org =
        web.post_raw(&alice, "/organizations", &[("name", "sneakyorg"), ("access_mode", "Public")]).await;
    assert_eq!(org.status, StatusCode::FORBIDDEN, "{}", org.body);
    assert!(project(&web, "sneaky").await.is_none());
    assert!(organization(&web, "sneakyorg").await.is_none());

    // The same form with this session's field goes through.
    let accepted = web.post_raw(&alice, "/projects", &right).await;
    assert_eq!(accepted.status, StatusCode::SEE_OTHER, "{}", accepted.body);
    assert!(project(&web, "sneaky").await.is_some());
}

#[tokio::test]
async fn organizations_are_created_joined_on_request_and_approved() {
    let web = TestWeb::start().await;
    let olga = web.active_user("olga").await;
    let bob = web.active_user("bob").await;
    let carol = web.active_user("carol").await;

    let list = web.get(&olga, "/organizations").await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.body);
    for id in ["new-org-form", "new-org-name", "create-org", "orgs-table", "join-org-form"] {
        assert!(list.body.contains(&format!("id=\"{id}\"")), "no #{id}");
    }
    let bad = web.post(&olga, "/organizations", &[("name", "9lives"), ("description", "still here")]).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.body);
    assert!(bad.body.contains("class=\"field-error\""), "{}", bad.body);
    assert!(bad.body.contains(">still here</textarea>"), "{}", bad.body);

    let fields = [("name", "acme"), ("description", "makers of everything"), ("access_mode", "Public")];
    let created = web.post(&olga, "/organizations", &fields).await;
    assert_eq!(created.status, StatusCode::SEE_OTHER, "{}", created.body);
    assert!(created.redirected_to().starts_with("/organizations/acme?notice="));
    let org = organization(&web, "acme").await.expect("acme was created");
    assert_eq!(
        org.members.get("olga"),
        member(pb::member::Role::Creator, pb::member::State::Active).as_ref()
    );
    assert!(web.get(&olga, "/organizations").await.body.contains("id=\"org-acme\""));

    // Bob asks to join; he cannot approve his own request; olga can.
    let everything = web.get(&bob, "/organizations?filter=all").await;
    assert!(everything.body.contains("id=\"join-acme\""), "{}", everything.body);
    let asked = web.post(&bob, "/organizations/join-request", &[("organization", "acme")]).await;
    assert_eq!(asked.status, StatusCode::SEE_OTHER, "{}", asked.body);
    let org = organization(&web, "acme").await.unwrap();
    assert_eq!(
        org.members.get("bob"),
        member(pb::member::Role::Member, pb::member::State::MemberRequested).as_ref()
    );
    let page = web.get(&olga, "/organizations/acme").await;
    assert!(page.body.contains("id=\"member-bob\""), "{}", page.body);
    assert!(page.body.contains("id=\"approve-member-bob\""), "{}", page.body);
    let self_approved = web.post(&bob, "/organizations/acme/members/bob/approve", &[]).await;
    assert_eq!(self_approved.status, StatusCode::FORBIDDEN, "{}", self_approved.body);
    assert!(self_approved.body.contains("waits for the other side"), "{}", self_approved.body);
    let approved = web.post(&olga, "/organizations/acme/members/bob/approve", &[]).await;
    assert_eq!(approved.status, StatusCode::SEE_OTHER, "{}", approved.body);
    let org = organization(&web, "acme").await.unwrap();
    assert_eq!(org.members.get("bob"), member(pb::member::Role::Member, pb::member::State::Active).as_ref());

    // Olga invites carol, who accepts from the organization's page.
    let invited =
        web.post(&olga, "/organizations/acme/members", &[("username", "carol"), ("role", "Member")]).await;
    assert_eq!(invited.status, StatusCode::SEE_OTHER, "{}", invited.body);
    let org = organization(&web, "acme").await.unwrap();
    assert_eq!(
        org.members.get("carol"),
        member(pb::member::Role::Member, pb::member::State::EntityRequested).as_ref()
    );
    let page = web.get(&carol, "/organizations/acme").await;
    assert!(page.body.contains("id=\"approve-member-carol\""), "{}", page.body);
    let accepted = web.post(&carol, "/organizations/acme/members/carol/approve", &[]).await;
    assert_eq!(accepted.status, StatusCode::SEE_OTHER, "{}", accepted.body);
    let org = organization(&web, "acme").await.unwrap();
    assert_eq!(
        org.members.get("carol"),
        member(pb::member::Role::Member, pb::member::State::Active).as_ref()
    );

    // Roles and removal.
    let re_roled = web.post(&olga, "/organizations/acme/members/bob/role", &[("role", "Maintainer")]).await;
    assert_eq!(re_roled.status, StatusCode::SEE_OTHER, "{}", re_roled.body);
    let org = organization(&web, "acme").await.unwrap();
    assert_eq!(
        org.members.get("bob"),
        member(pb::member::Role::Maintainer, pb::member::State::Active).as_ref()
    );
    let refused = web.post(&carol, "/organizations/acme/members/bob/remove", &[]).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    let removed = web.post(&bob, "/organizations/acme/members/carol/remove", &[]).await;
    assert_eq!(removed.status, StatusCode::SEE_OTHER, "{}", removed.body);
    let org = organization(&web, "acme").await.unwrap();
    assert!(!org.members.contains_key("carol") && org.members.contains_key("bob"));

    // A project created in the organization by its creator joins at once and is listed.
    let fields = [("name", "rockets"), ("access_mode", "Public"), ("organization", "acme")];
    assert_eq!(web.post(&olga, "/projects", &fields).await.status, StatusCode::SEE_OTHER);
    let page = web.get(&olga, "/organizations/acme").await;
    assert!(page.body.contains("id=\"org-project-rockets\""), "{}", page.body);
    assert_eq!(project(&web, "rockets").await.unwrap().organization, "acme");

    // Settings and deletion (confirmed), as its creator.
    let fields = [("description", "renamed"), ("access_mode", "Protected")];
    assert_eq!(web.post(&olga, "/organizations/acme/settings", &fields).await.status, StatusCode::SEE_OTHER);
    let org = organization(&web, "acme").await.unwrap();
    assert_eq!((org.description.as_str(), org.access_mode), ("renamed", pb::AccessMode::Protected as i32));
    let unconfirmed = web.post(&olga, "/organizations/acme/delete", &[]).await;
    assert_eq!(unconfirmed.status, StatusCode::BAD_REQUEST);
    assert!(organization(&web, "acme").await.is_some());
    let deleted = web.post(&olga, "/organizations/acme/delete", &[("confirm", "yes")]).await;
    assert_eq!(deleted.status, StatusCode::SEE_OTHER, "{}", deleted.body);
    assert!(organization(&web, "acme").await.is_none());
    assert_eq!(project(&web, "rockets").await.unwrap().organization, "");
}

#[tokio::test]
async fn project_categories_are_offered_when_the_portal_has_them() {
    let web = TestWeb::start().await;
    let alice = web.active_user("alice").await;
    assert!(!web.get(&alice, "/projects").await.body.contains("id=\"new-project-category\""));

    let admin = web.admin_token().await;
    let types = vec![pb::EntityType {
        etype: "Research".into(),
        subtypes: vec!["Networking".into(), "Security".into()],
    }];
    let request = pb::UpdateEntityTypeConfigurationsRequest { types, patchstrategy: None };
    web.api.workspace().update_entity_type_configurations(authed(&admin, request)).await.expect("types");
    let list = web.get(&alice, "/projects").await;
    assert!(list.body.contains("id=\"new-project-category\""), "{}", list.body);
    assert!(list.body.contains("<option value=\"Security\">Security</option>"), "{}", list.body);

    let fields = [("name", "beta"), ("category", "Research"), ("subcategory", "Security")];
    assert_eq!(web.post(&alice, "/projects", &fields).await.status, StatusCode::SEE_OTHER);
    let stored = project(&web, "beta").await.expect("beta was created");
    assert_eq!((stored.category.as_str(), stored.subcategory.as_str()), ("Research", "Security"));
    assert_eq!(stored.access_mode, pb::AccessMode::Public as i32, "Public unless chosen, as with the CLI");
}
