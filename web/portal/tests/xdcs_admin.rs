//! XDCs, the account page and administration through the web pages, on a real in-process
//! portal (embedded store, built-in policy). Every decision is the API's: the tests check that
//! the pages carry it out and show its answers, and read the effects back through the API.

mod common;

use base64::Engine;
use common::*;
use http::StatusCode;
use http::header::{CACHE_CONTROL, CONTENT_DISPOSITION};
use trellis_api::portal::v1 as pb;
use trellis_embed::generate::{FacilitySpec, facility};
use trellis_web::api::authed;

async fn user_state(web: &TestWeb, admin: &str, username: &str) -> &'static str {
    let request = pb::GetUserRequest { username: username.into(), status_ms: 0 };
    let user =
        web.api.workspace().get_user(authed(admin, request)).await.expect("get user").into_inner().user;
    let state = user.expect("user").state;
    pb::UserState::try_from(state).map(|s| s.as_str_name()).unwrap_or("?")
}

/// The start tag holding `attribute` (leptos orders attributes its own way).
fn tag<'b>(body: &'b str, attribute: &str) -> &'b str {
    let at = body.find(attribute).unwrap_or_else(|| panic!("no {attribute} in {body}"));
    let start = body[..at].rfind('<').expect("tag start");
    &body[start..at + body[at..].find('>').expect("tag end")]
}

/// The text inside the element whose start tag holds `attribute`, tags stripped, entities
/// decoded as a browser would show them.
fn text_of(body: &str, attribute: &str) -> String {
    let start = body.find(attribute).unwrap_or_else(|| panic!("no {attribute} in {body}"));
    let open_end = start + body[start..].find('>').expect("tag end") + 1;
    let close = open_end + body[open_end..].find("</").expect("end tag");
    body[open_end..close]
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

/// The HTML of the table row whose start tag holds `attribute`.
fn row<'b>(body: &'b str, attribute: &str) -> &'b str {
    let start = body.find(attribute).unwrap_or_else(|| panic!("no {attribute} in {body}"));
    &body[start..start + body[start..].find("</tr>").expect("row end")]
}

/// A distinct, well-formed OpenSSH ed25519 public key line.
fn ssh_key(n: u32) -> String {
    let mut blob = Vec::new();
    blob.extend_from_slice(&11u32.to_be_bytes());
    blob.extend_from_slice(b"ssh-ed25519");
    blob.extend_from_slice(&32u32.to_be_bytes());
    let mut raw = [7u8; 32];
    raw[..4].copy_from_slice(&n.to_be_bytes());
    blob.extend_from_slice(&raw);
    format!("ssh-ed25519 {} key{n}", base64::engine::general_purpose::STANDARD.encode(blob))
}

#[tokio::test]
async fn admins_activate_and_freeze_users_and_see_the_portal() {
    let web = TestWeb::start_with_models().await;
    let admin = web.admin_token().await;
    let register = pb::RegisterFacilityRequest {
        facility: Some(pb::Facility {
            name: "lab".into(),
            address: "lab.example".into(),
            ..Default::default()
        }),
        model: Some(facility(&FacilitySpec::new("lab", 1, 2))),
    };
    web.api.commission().register_facility(authed(&admin, register)).await.expect("commission lab");
    let pool = pb::CreatePoolRequest {
        name: "gold".into(),
        description: "the good nodes".into(),
        ..Default::default()
    };
    web.api.alloc().create_pool(authed(&admin, pool)).await.expect("create pool");
    web.register("carol").await;

    let page = web.get(&admin, "/admin").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("href=\"/admin\""), "admins see the Admin link");
    let carol = row(&page.body, "id=\"user-carol\"");
    assert!(carol.contains("carol@example.org") && carol.contains("Pending"), "{carol}");
    assert!(page.body.contains("carol@example.org"));
    assert!(!tag(&page.body, "id=\"activate-carol\"").contains("disabled"));
    assert!(tag(&page.body, "id=\"activate-admin\"").contains("disabled"), "admin is active already");
    let policy = text_of(&page.body, "id=\"policy\"");
    assert!(policy.contains("xdc:") && policy.contains("Project.Member"), "{policy}");
    assert!(page.body.contains("id=\"facility-lab\""), "{}", page.body);
    assert!(page.body.contains("lab.example"));
    assert!(page.body.contains("id=\"pool-gold\"") && page.body.contains("the good nodes"));
    assert!(tag(&page.body, "id=\"health\"").contains("span"));
    assert!(page.body.contains("<code>OK</code>"), "{}", page.body);

    assert_eq!(user_state(&web, &admin, "carol").await, "Pending");
    let done = web.post(&admin, "/admin/users/carol/activate", &[]).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    assert!(done.redirected_to().starts_with("/admin?notice="));
    assert_eq!(user_state(&web, &admin, "carol").await, "Active");
    let page = web.get(&admin, "/admin").await;
    assert!(tag(&page.body, "id=\"activate-carol\"").contains("disabled"));

    let done = web.post(&admin, "/admin/users/carol/freeze", &[]).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    assert_eq!(user_state(&web, &admin, "carol").await, "Frozen");

    // The API's refusal, re-rendered on the page with its reason.
    let refused = web.post(&admin, "/admin/users/admin/freeze", &[]).await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.body);
    assert!(refused.body.contains("you cannot freeze your own account"), "{}", refused.body);
    assert!(refused.body.contains("id=\"users-table\""));
    assert_eq!(user_state(&web, &admin, "admin").await, "Active");

    // A form without this session's CSRF token changes nothing.
    let forged = web.post_raw(&admin, "/admin/users/carol/activate", &[("csrf", "forged")]).await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert_eq!(user_state(&web, &admin, "carol").await, "Frozen");
}

#[tokio::test]
async fn non_admins_get_the_apis_refusal_of_the_admin_page() {
    let web = TestWeb::start().await;
    let dave = web.active_user("dave").await;
    web.register("carol").await;

    let page = web.get(&dave, "/admin").await;
    assert_eq!(page.status, StatusCode::FORBIDDEN, "{}", page.body);
    assert!(page.body.contains("ListIdentities is for portal administrators only"), "{}", page.body);
    assert!(!page.body.contains("id=\"users-table\""));
    assert!(!page.body.contains("href=\"/admin\""), "no Admin link for non-admins");

    let refused = web.post(&dave, "/admin/users/carol/activate", &[]).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    assert!(refused.body.contains("Denied"), "{}", refused.body);
    let admin = web.admin_token().await;
    assert_eq!(user_state(&web, &admin, "carol").await, "Pending");
}

#[tokio::test]
async fn ssh_keys_are_added_listed_removed_and_bad_ones_explained() {
    let web = TestWeb::start().await;
    let erin = web.active_user("erin").await;

    let page = web.get(&erin, "/account").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("erin@example.org"));
    assert!(text_of(&page.body, "id=\"account-state\"").contains("Active"));
    assert!(page.body.contains("id=\"add-key-form\"") && page.body.contains("id=\"no-keys\""));

    let key = ssh_key(1);
    let added = web.post(&erin, "/account/keys", &[("key", &key)]).await;
    assert_eq!(added.status, StatusCode::SEE_OTHER, "{}", added.body);
    let keys = web
        .api
        .workspace()
        .get_user_public_keys(authed(&erin, pb::GetUserPublicKeysRequest { user: "erin".into() }))
        .await
        .expect("keys")
        .into_inner()
        .keys;
    assert_eq!(keys.len(), 1);
    let page = web.get(&erin, "/account").await;
    let table = &page.body[page.body.find("id=\"keys-table\"").expect("keys table")..];
    assert!(table.contains(&keys[0].fingerprint), "{table}");
    assert!(table.contains(key.split(' ').nth(1).expect("key body")), "{table}");

    let bad = web.post(&erin, "/account/keys", &[("key", "ssh-ed25519 not-base64!")]).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.body);
    assert!(bad.body.contains("key body is not base64"), "{}", bad.body);
    assert!(bad.body.contains("class=\"field-error\""));
    assert_eq!(text_of(&bad.body, "id=\"add-key-text\""), "ssh-ed25519 not-base64!");

    let removed = web.post(&erin, "/account/keys/delete", &[("fingerprint", &keys[0].fingerprint)]).await;
    assert_eq!(removed.status, StatusCode::SEE_OTHER, "{}", removed.body);
    let page = web.get(&erin, "/account").await;
    assert!(!page.body.contains(&keys[0].fingerprint));

    let differ =
        web.post(&erin, "/account/password", &[("password", "a-new-password-1"), ("confirm", "other")]).await;
    assert_eq!(differ.status, StatusCode::BAD_REQUEST);
    let changed = web
        .post(
            &erin,
            "/account/password",
            &[("password", "a-new-password-1"), ("confirm", "a-new-password-1")],
        )
        .await;
    assert_eq!(changed.status, StatusCode::SEE_OTHER, "{}", changed.body);
    web.login("erin", "a-new-password-1").await;
}

fn ssh_keygen(args: &[&str]) -> String {
    let out = std::process::Command::new("ssh-keygen").args(args).output().expect("run ssh-keygen");
    assert!(out.status.success(), "ssh-keygen {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn credential_downloads_are_the_users_own_openssh_files() {
    let web = TestWeb::start().await;
    let erin = web.active_user("erin").await;
    web.active_user("frank").await;
    let dir = tempfile::tempdir().expect("temp dir");

    let mut saved = Vec::new();
    for name in ["merge_key", "merge_key.pub", "merge_key-cert.pub"] {
        let (reply, headers) = web.get_with_headers(&erin, &format!("/account/ssh/{name}")).await;
        assert_eq!(reply.status, StatusCode::OK, "{name}: {}", reply.body);
        let disposition = headers.get(CONTENT_DISPOSITION).and_then(|v| v.to_str().ok()).unwrap_or_default();
        assert_eq!(disposition, format!("attachment; filename=\"{name}\""));
        assert_eq!(headers.get(CACHE_CONTROL).and_then(|v| v.to_str().ok()), Some("no-store"));
        let path = dir.path().join(name);
        std::fs::write(&path, &reply.body).expect("save");
        saved.push((path, reply.body));
    }
    assert!(saved[0].1.starts_with("-----BEGIN OPENSSH PRIVATE KEY-----"));
    assert!(saved[2].1.starts_with("ssh-ed25519-cert-v01@openssh.com "), "{}", saved[2].1);

    // OpenSSH itself reads the certificate: issued to erin, for the key pair just downloaded.
    let cert = saved[2].0.to_str().expect("path");
    let listing = ssh_keygen(&["-L", "-f", cert]);
    let principals = &listing[listing.find("Principals:").expect("principals")..];
    assert!(principals.lines().nth(1).is_some_and(|l| l.trim() == "erin"), "{listing}");
    let key_fingerprint = ssh_keygen(&["-l", "-f", saved[1].0.to_str().expect("path")]);
    let fingerprint = key_fingerprint.split_whitespace().nth(1).expect("fingerprint");
    assert!(listing.contains(fingerprint), "{listing} lacks {fingerprint}");

    let (hosts, _) = web.get_with_headers(&erin, "/account/ssh/trellis_known_hosts").await;
    assert!(hosts.body.starts_with("@cert-authority * ssh-"), "{}", hosts.body);
    let (missing, _) = web.get_with_headers(&erin, "/account/ssh/id_rsa").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);

    // Without a session: to the login page, nothing handed out.
    let (anonymous, _) = web.get_with_headers("", "/account/ssh/merge_key").await;
    assert_eq!(anonymous.status, StatusCode::SEE_OTHER);
    assert!(anonymous.redirected_to().starts_with("/login"));
    assert!(!anonymous.body.contains("PRIVATE KEY"));
}

#[tokio::test]
async fn xdcs_are_created_through_the_form_with_their_ssh_command_and_stay_private() {
    let web = TestWeb::start().await;
    let alice = web.active_user("alice").await;
    let bob = web.active_user("bob").await;

    let page = web.get(&alice, "/xdcs").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(tag(&page.body, "value=\"alice\"").contains("option"), "personal project offered");
    assert!(page.body.contains("id=\"new-xdc-form\"") && page.body.contains("id=\"create-xdc\""));

    // Bad input: the API's reason under the field, the input kept.
    let bad =
        web.post(&alice, "/xdcs", &[("name", "Bad-Name"), ("project", "alice"), ("kind", "personal")]).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.body);
    assert!(bad.body.contains("class=\"field-error\""), "{}", bad.body);
    assert!(tag(&bad.body, "id=\"new-xdc-name\"").contains("value=\"Bad-Name\""));
    assert!(tag(&bad.body, "value=\"personal\"").contains("selected"));

    let created =
        web.post(&alice, "/xdcs", &[("name", "dev"), ("project", "alice"), ("kind", "personal")]).await;
    assert_eq!(created.status, StatusCode::SEE_OTHER, "{}", created.body);
    assert!(created.redirected_to().starts_with("/xdcs?notice="));

    // The API stored it (no XDC runtime runs here, so it stays Starting).
    let listed =
        web.api.xdc().list_xd_cs(authed(&alice, pb::ListXdCsRequest::default())).await.expect("list");
    let xdcs = listed.into_inner().xd_cs;
    assert_eq!(xdcs.iter().map(|x| x.name.as_str()).collect::<Vec<_>>(), ["dev.alice"]);
    assert_eq!((xdcs[0].creator.as_str(), xdcs[0].r#type), ("alice", pb::XdcType::Personal as i32));

    let page = web.get(&alice, "/xdcs").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("id=\"xdc-dev-alice\""));
    assert_eq!(
        text_of(&page.body, "id=\"ssh-command-dev-alice\""),
        "ssh -i ~/.ssh/merge_key -J alice@localhost:2202 alice@dev-alice"
    );
    let jupyter = tag(&page.body, "id=\"open-jupyter-dev-alice\"");
    assert!(jupyter.contains(&format!("href=\"{}\"", xdcs[0].urls[0].url)), "{jupyter}");
    let dev = row(&page.body, "id=\"xdc-dev-alice\"");
    assert!(dev.contains("Starting") && dev.contains("personal"), "{dev}");
    assert!(page.body.contains("http-equiv=\"refresh\""), "the page follows the starting XDC");

    let detail = web.get(&alice, "/xdcs/alice/dev").await;
    assert_eq!(detail.status, StatusCode::OK, "{}", detail.body);
    assert!(detail.body.contains("id=\"attach-form\"") && detail.body.contains("id=\"attach\""));
    assert!(!detail.body.contains("id=\"detach\""), "nothing to detach yet");
    let through = text_of(&detail.body, "id=\"ssh-node-command\"");
    assert!(through.contains("-J alice@localhost:2202,alice@dev-alice"), "{through}");

    // Attaching to a materialization that does not exist: the API's answer, the fields kept.
    let attach = [("experiment", "nosuch"), ("realization", "r1"), ("realization_project", "alice")];
    let refused = web.post(&alice, "/xdcs/alice/dev/attach", &attach).await;
    assert_eq!(refused.status, StatusCode::NOT_FOUND, "{}", refused.body);
    assert!(refused.body.contains("nosuch"), "{}", refused.body);
    assert!(tag(&refused.body, "id=\"attach-experiment\"").contains("value=\"nosuch\""));

    let dashboard = web.get(&alice, "/").await;
    assert_eq!(dashboard.status, StatusCode::OK, "{}", dashboard.body);
    let table = &dashboard.body[dashboard.body.find("id=\"dashboard-xdcs\"").expect("dashboard XDCs")..];
    assert!(table.contains("href=\"/xdcs/alice/dev\""), "{table}");

    // Bob is not in alice's project: he neither sees nor reaches her XDC.
    let page = web.get(&bob, "/xdcs?all=1").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(!page.body.contains("dev-alice") && !page.body.contains("dev.alice"), "{}", page.body);
    let hidden = web.get(&bob, "/xdcs/alice/dev").await;
    assert_eq!(hidden.status, StatusCode::FORBIDDEN, "{}", hidden.body);
    assert!(!hidden.body.contains("ssh-command-dev-alice"));
    let denied = web.post(&bob, "/xdcs/alice/dev/delete", &[("confirm", "yes")]).await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN, "{}", denied.body);

    // Deleting takes the confirmation.
    let unconfirmed = web.post(&alice, "/xdcs/alice/dev/delete", &[]).await;
    assert_eq!(unconfirmed.status, StatusCode::BAD_REQUEST, "{}", unconfirmed.body);
    let listed =
        web.api.xdc().list_xd_cs(authed(&alice, pb::ListXdCsRequest::default())).await.expect("list");
    assert_eq!(listed.into_inner().xd_cs.len(), 1);
    let deleted = web.post(&alice, "/xdcs/alice/dev/delete", &[("confirm", "yes")]).await;
    assert_eq!(deleted.status, StatusCode::SEE_OTHER, "{}", deleted.body);
    let listed =
        web.api.xdc().list_xd_cs(authed(&alice, pb::ListXdCsRequest::default())).await.expect("list");
    assert!(listed.into_inner().xd_cs.is_empty());
}

#[tokio::test]
async fn admins_check_a_pasted_policy_without_installing_it() {
    let web = TestWeb::start().await;
    let admin = web.admin_token().await;
    let dave = web.active_user("dave").await;
    let installed = web.get(&admin, "/admin").await;
    assert!(installed.body.contains("id=\"policy-text\""), "{}", installed.body);

    let broken = "project:\n  public:\n    read: [Project.Owner]\n";
    let checked = web.post(&admin, "/admin/policy/check", &[("policy", broken)]).await;
    assert_eq!(checked.status, StatusCode::OK, "{}", checked.body);
    let start = checked.body.find("id=\"policy-check-result\"").expect("a check result");
    let result = &checked.body[start..start + 300.min(checked.body.len() - start)];
    assert!(result.contains("Not valid") && result.contains("line 3"), "names the line: {result}");
    assert!(
        checked.body.contains(&escaped(broken)) || checked.body.contains("Project.Owner"),
        "the text is kept"
    );

    let builtin = trellis_policy::Policy::builtin().to_yaml();
    let checked = web.post(&admin, "/admin/policy/check", &[("policy", &builtin)]).await;
    assert!(text_of(&checked.body, "id=\"policy-check-result\"").contains("Valid"), "{}", checked.body);

    // The check sits on the admin page, which only the API's administrators get.
    let refused = web.post(&dave, "/admin/policy/check", &[("policy", &builtin)]).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    assert!(!refused.body.contains("policy-check-result"));
}
