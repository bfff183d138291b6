//! Experiments, models, revisions, realizations and materializations through the web pages, on
//! a real in-process portal whose models compile in the real sandbox (bubblewrap and the
//! venv's `mergexp`) and whose realizations embed on a commissioned facility.

mod common;

use common::*;
use http::StatusCode;
use trellis_api::portal::v1 as pb;
use trellis_embed::generate::{FacilitySpec, facility};
use trellis_web::api::authed;

const PAIR: &str = "from mergexp import *\nnet = Network('pair')\na, b = [net.node(n) for n in ['a', 'b']]\nnet.connect([a, b])\nexperiment(net)\n";
const TRIO: &str = "\nfrom mergexp import *\nnet = Network('trio')\nx, y, z = [net.node(n) for n in ['x', 'y', 'z']]\nnet.connect([x, y])\nnet.connect([y, z])\nexperiment(net)\n";
/// A name used before it exists, on line 4 (the line the compiler must point at).
const UNDEFINED: &str = "from mergexp import *\nnet = Network('bad')\na = net.node('a')\nnet.connect([a, missing_node])\nexperiment(net)\n";
/// An unclosed bracket: a syntax error on line 3.
const SYNTAX: &str =
    "from mergexp import *\nnet = Network('bad')\nnodes = [net.node('a'), net.node('b')\nexperiment(net)\n";

/// A portal that compiles models and has a commissioned facility, with an active user `alice`
/// owning the private project `ap`; returns alice's token.
async fn portal() -> (TestWeb, String) {
    let web = TestWeb::start_with_models().await;
    let admin = web.admin_token().await;
    let mut spec = FacilitySpec::new("lab", 1, 4);
    spec.virtualized = true;
    let register = pb::RegisterFacilityRequest {
        facility: Some(pb::Facility {
            name: "lab".into(),
            address: "lab.example".into(),
            ..Default::default()
        }),
        model: Some(facility(&spec)),
    };
    web.api.commission().register_facility(authed(&admin, register)).await.expect("commission lab");
    let alice = web.active_user("alice").await;
    let project = pb::CreateProjectRequest {
        user: "alice".into(),
        project: Some(pb::Project {
            name: "ap".into(),
            access_mode: pb::AccessMode::Private as i32,
            ..Default::default()
        }),
    };
    web.api.workspace().create_project(authed(&alice, project)).await.expect("create project");
    (web, alice)
}

/// The text of the `<textarea id=...>` as the browser would show it.
fn textarea(body: &str, id: &str) -> String {
    let start = body.find(&format!("id=\"{id}\"")).unwrap_or_else(|| panic!("no textarea {id} in {body}"));
    let open_end = start + body[start..].find('>').expect("tag end") + 1;
    let close = open_end + body[open_end..].find("</textarea>").expect("textarea end");
    // As HTML parsers do, one newline right after the start tag is not part of the text.
    let text = &body[open_end..close];
    text.strip_prefix('\n')
        .unwrap_or(text)
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&#x27;", "'")
        .replace("&amp;", "&")
}

/// The start tag holding `attribute` (leptos orders attributes its own way).
fn tag<'b>(body: &'b str, attribute: &str) -> &'b str {
    let at = body.find(attribute).unwrap_or_else(|| panic!("no {attribute} in {body}"));
    let start = body[..at].rfind('<').expect("tag start");
    &body[start..at + body[at..].find('>').expect("tag end")]
}

/// The number of the one source line marked bad (`class="source-line bad" id="L<n>"`).
fn highlighted(body: &str) -> Option<u32> {
    let tag = tag(body, "class=\"source-line bad\"");
    let id = &tag[tag.find("id=\"L")? + 5..];
    id[..id.find('"')?].parse().ok()
}

fn revision_id(source: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(source.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

const EXPERIMENT: &str = "/projects/ap/experiments/e";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn models_are_checked_pushed_and_drawn() {
    let (web, alice) = portal().await;

    // Create the experiment through the form; a bad name comes back with the input kept.
    let bad =
        web.post(&alice, "/projects/ap/experiments", &[("name", "Bad Name!"), ("description", "kept")]).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.body);
    assert!(
        bad.body.contains("id=\"new-experiment-form\"") && bad.body.contains("value=\"kept\""),
        "{}",
        bad.body
    );
    let created = web
        .post(
            &alice,
            "/projects/ap/experiments",
            &[("name", "e"), ("description", "two nodes"), ("access_mode", "Private")],
        )
        .await;
    assert!(created.redirected_to().starts_with(EXPERIMENT), "{created:?}");
    let page = web.get(&alice, EXPERIMENT).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    for id in ["model-form", "model-source", "model-file", "check-model", "push-model", "revisions-table"] {
        assert!(page.body.contains(&format!("id=\"{id}\"")), "missing {id}: {}", page.body);
    }
    assert!(page.body.contains("two nodes"));
    assert!(page.body.contains("enctype=\"multipart/form-data\""));

    // Check a valid model: it compiles, nothing is stored, the text stays.
    let checked = web
        .post_multipart(&alice, &format!("{EXPERIMENT}/model"), &[("model", PAIR), ("action", "check")], &[])
        .await;
    assert_eq!(checked.status, StatusCode::OK, "{}", checked.body);
    assert!(checked.body.contains("The model compiles: 2 node(s), 1 link(s)"), "{}", checked.body);
    assert!(!checked.body.contains("id=\"revision-"), "checking stores nothing: {}", checked.body);
    assert_eq!(textarea(&checked.body, "model-source"), PAIR);

    // Push it as an uploaded file: a revision, drawn with its two nodes.
    let pushed = web
        .post_multipart(
            &alice,
            &format!("{EXPERIMENT}/model"),
            &[("model", ""), ("action", "push")],
            &[("file", "model.py", PAIR)],
        )
        .await;
    let pair_id = revision_id(PAIR);
    let revision_path = format!("{EXPERIMENT}/revisions/{pair_id}");
    assert!(pushed.redirected_to().starts_with(&revision_path), "{pushed:?}");
    let revision = web.get(&alice, &revision_path).await;
    assert_eq!(revision.status, StatusCode::OK, "{}", revision.body);
    assert!(revision.body.contains("2 node(s), 1 link(s)"), "{}", revision.body);
    let request = pb::GetRevisionRequest {
        project: "ap".into(),
        experiment: "e".into(),
        revision: pair_id.clone(),
        encoding: pb::GetRevisionRequestEncoding::Xirb64 as i32,
    };
    let stored = web.api.workspace().get_revision(authed(&alice, request)).await.unwrap().into_inner();
    let network = stored.model.and_then(|m| m.model).unwrap();
    assert_eq!(network.nodes.iter().map(|n| n.id.as_str()).collect::<Vec<_>>(), ["a", "b"]);
    let svg = trellis_web::pages::realizations::inline_svg(&network);
    assert!(svg.starts_with("<svg"), "{svg}");
    let topology = format!("<div id=\"topology\" class=\"topology\">{svg}</div>");
    assert!(
        revision.body.contains(&topology),
        "the page embeds the drawing of the revision: {}",
        revision.body
    );
    for id in ["realize-form", "realization-name", "realization-duration", "realize", "xir-nodes"] {
        assert!(revision.body.contains(&format!("id=\"{id}\"")), "missing {id}: {}", revision.body);
    }
    // The XIR summary names the nodes, and the source is there.
    assert!(
        revision.body.contains("<td>a</td>") && revision.body.contains("<td>b</td>"),
        "{}",
        revision.body
    );
    assert!(revision.body.contains("net.connect([a, b])"));

    // A second revision from the text area (CRLF as browsers send it): newest first, and the
    // editor starts from it.
    let trio_crlf = TRIO.replace('\n', "\r\n");
    let pushed = web
        .post_multipart(
            &alice,
            &format!("{EXPERIMENT}/model"),
            &[("model", &trio_crlf), ("action", "push")],
            &[],
        )
        .await;
    let trio_id = revision_id(TRIO);
    assert!(pushed.redirected_to().contains(&trio_id), "{pushed:?}");
    let page = web.get(&alice, EXPERIMENT).await;
    let (newer, older) = (
        page.body.find(&format!("id=\"revision-{trio_id}\"")).expect("trio row"),
        page.body.find(&format!("id=\"revision-{pair_id}\"")).expect("pair row"),
    );
    assert!(newer < older, "the newest revision comes first: {}", page.body);
    assert!(page.body.contains(&format!("href=\"{EXPERIMENT}/revisions/{trio_id}\"")));
    assert_eq!(textarea(&page.body, "model-source"), TRIO);

    // A model with an error on line 4: refused with the error, line 4 highlighted, text kept.
    let refused = web
        .post_multipart(
            &alice,
            &format!("{EXPERIMENT}/model"),
            &[("model", UNDEFINED), ("action", "push")],
            &[],
        )
        .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.body);
    assert!(refused.body.contains("id=\"compile-errors\""), "{}", refused.body);
    assert!(refused.body.contains("NameError") && refused.body.contains("missing_node"), "{}", refused.body);
    assert!(refused.body.contains("<a href=\"#L4\">line 4</a>"), "{}", refused.body);
    assert_eq!(highlighted(&refused.body), Some(4), "{}", refused.body);
    assert_eq!(refused.body.matches("source-line bad").count(), 1, "{}", refused.body);
    assert_eq!(textarea(&refused.body, "model-source"), UNDEFINED);
    let after = web.get(&alice, EXPERIMENT).await;
    assert!(
        !after.body.contains(&format!("revision-{}", revision_id(UNDEFINED))),
        "a bad model is never a revision"
    );

    // Checking a syntax error points at its line too.
    let checked = web
        .post_multipart(
            &alice,
            &format!("{EXPERIMENT}/model"),
            &[("model", SYNTAX), ("action", "check")],
            &[],
        )
        .await;
    assert_eq!(checked.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", checked.body);
    assert!(checked.body.contains("SyntaxError"), "{}", checked.body);
    let line = highlighted(&checked.body).expect("a highlighted line");
    assert!((3..=4).contains(&line), "the unclosed bracket of line 3 (Python may blame line 4): {line}");
    assert_eq!(textarea(&checked.body, "model-source"), SYNTAX);

    // The experiments list shows it; an outsider gets the policy's reason, on the page and
    // on the form.
    let list = web.get(&alice, "/experiments").await;
    assert!(list.body.contains("id=\"experiment-ap-e\""), "{}", list.body);
    let bob = web.active_user("bob").await;
    let request = pb::GetExperimentRequest {
        project: "ap".into(),
        experiment: "e".into(),
        with_models: true,
        status_ms: 0,
    };
    let denial = web.api.workspace().get_experiment(authed(&bob, request)).await.unwrap_err();
    let denied = web.get(&bob, EXPERIMENT).await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN, "{}", denied.body);
    assert!(
        denied.body.contains(&html_escape(denial.message())),
        "{} not in {}",
        denial.message(),
        denied.body
    );
    let denied = web
        .post_multipart(&bob, &format!("{EXPERIMENT}/model"), &[("model", PAIR), ("action", "push")], &[])
        .await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN, "{}", denied.body);
    let denied = web.get(&bob, &revision_path).await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN, "{}", denied.body);

    // Deleting needs the confirmation.
    web.post(&alice, "/projects/ap/experiments", &[("name", "tmp")]).await.redirected_to();
    let unconfirmed = web.post(&alice, "/projects/ap/experiments/tmp/delete", &[]).await;
    assert_eq!(unconfirmed.status, StatusCode::BAD_REQUEST, "{}", unconfirmed.body);
    let deleted = web.post(&alice, "/projects/ap/experiments/tmp/delete", &[("confirm", "yes")]).await;
    assert!(deleted.redirected_to().starts_with("/experiments"), "{deleted:?}");
    assert_eq!(web.get(&alice, "/projects/ap/experiments/tmp").await.status, StatusCode::NOT_FOUND);
}

fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revisions_are_realized_extended_materialized_and_relinquished() {
    let (web, alice) = portal().await;
    web.post(&alice, "/projects/ap/experiments", &[("name", "e"), ("access_mode", "Private")])
        .await
        .redirected_to();
    let pushed = web
        .post_multipart(&alice, &format!("{EXPERIMENT}/model"), &[("model", PAIR), ("action", "push")], &[])
        .await;
    let revision_path = format!("{EXPERIMENT}/revisions/{}", revision_id(PAIR));
    assert!(pushed.redirected_to().starts_with(&revision_path), "{pushed:?}");

    // A duration the API cannot read comes back with the form as typed.
    let bad = web
        .post(&alice, &format!("{revision_path}/realize"), &[("name", "r1"), ("duration", "forever")])
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.body);
    assert!(bad.body.contains("value=\"forever\"") && bad.body.contains("value=\"r1\""), "{}", bad.body);

    let realized =
        web.post(&alice, &format!("{revision_path}/realize"), &[("name", "r1"), ("duration", "2d")]).await;
    let r1 = format!("{EXPERIMENT}/realizations/r1");
    assert!(realized.redirected_to().starts_with(&r1), "{realized:?}");
    let page = web.get(&alice, &r1).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    for id in [
        "realization-status",
        "node-a",
        "node-b",
        "link-",
        "materialize",
        "extend-form",
        "extend",
        "relinquish",
    ] {
        assert!(page.body.contains(&format!("id=\"{id}")), "missing {id}: {}", page.body);
    }
    assert!(page.body.contains("@lab"), "nodes drill down to their hosts: {}", page.body);
    assert!(!page.body.contains("http-equiv=\"refresh\""), "nothing is changing: {}", page.body);
    let listed = web.get(&alice, EXPERIMENT).await;
    assert!(listed.body.contains(&format!("href=\"{r1}\"")), "{}", listed.body);

    // Extend it.
    let before = page.body[page.body.find("id=\"realization-expires\"").unwrap()..].to_owned();
    let extended = web.post(&alice, &format!("{r1}/extend"), &[("duration", "30d")]).await;
    assert!(extended.redirected_to().contains("notice="), "{extended:?}");
    let page = web.get(&alice, &r1).await;
    let after = &page.body[page.body.find("id=\"realization-expires\"").unwrap()..];
    assert_ne!(before[..60], after[..60], "the expiry moved");

    // The dashboard lists it.
    let dashboard = web.get(&alice, "/").await;
    assert!(dashboard.body.contains("id=\"realizations-table\""), "{}", dashboard.body);
    assert!(dashboard.body.contains("id=\"realization-r1-e-ap\""), "{}", dashboard.body);

    // Materialize: no facility agent answers in this test, so it stays in progress and the
    // page keeps reloading itself with the task tree showing.
    let materialized = web.post(&alice, &format!("{r1}/materialize"), &[]).await;
    assert!(materialized.redirected_to().starts_with(&r1), "{materialized:?}");
    let page = web.get(&alice, &r1).await;
    assert!(tag(&page.body, "id=\"materialization-status\"").contains("class=\"tree\""), "{}", page.body);
    assert!(page.body.contains("id=\"dematerialize\""), "{}", page.body);
    assert!(page.body.contains("http-equiv=\"refresh\""), "in progress: {}", page.body);
    let dashboard = web.get(&alice, "/").await;
    assert!(dashboard.body.contains("id=\"materialization-r1-e-ap\""), "{}", dashboard.body);

    // A second realization, relinquished (with the confirmation).
    let realized = web.post(&alice, &format!("{revision_path}/realize"), &[("name", "r2")]).await;
    let r2 = format!("{EXPERIMENT}/realizations/r2");
    assert!(realized.redirected_to().starts_with(&r2), "{realized:?}");
    let unconfirmed = web.post(&alice, &format!("{r2}/relinquish"), &[]).await;
    assert_eq!(unconfirmed.status, StatusCode::BAD_REQUEST, "{}", unconfirmed.body);
    let relinquished = web.post(&alice, &format!("{r2}/relinquish"), &[("confirm", "yes")]).await;
    assert!(relinquished.redirected_to().starts_with(EXPERIMENT), "{relinquished:?}");
    assert_eq!(web.get(&alice, &r2).await.status, StatusCode::NOT_FOUND);

    // An outsider may not realize, and is told why.
    let bob = web.active_user("bob").await;
    let denied = web.post(&bob, &format!("{revision_path}/realize"), &[("name", "r3")]).await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN, "{}", denied.body);
    let denied = web.get(&bob, &r1).await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN, "{}", denied.body);
    assert!(denied.body.contains("banner error"), "{}", denied.body);
}

#[test]
fn revision_ids_match_the_model_service() {
    assert_eq!(revision_id(PAIR), trellis_model::revisions::revision_id(PAIR));
}
