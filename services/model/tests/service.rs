//! The model service over real parts: the sandboxed compiler (the venv `scripts/setup.sh`
//! makes), the embedded store and the local blob store.

use std::path::Path;
use std::sync::Arc;

use trellis_blobs::BlobStore;
use trellis_blobs::local::LocalBlobStore;
use trellis_compiler::{Compiler, CompilerConfig};
use trellis_model::ModelService;
use trellis_model::revisions::XirLocation;
use trellis_store::Store;
use trellis_store::embedded::EmbeddedStore;
use trellis_types::Error;

const LIMIT: usize = 8 * 1024;

fn venv() -> std::path::PathBuf {
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv");
    assert!(venv.join("bin/python").exists(), "{} is missing: run scripts/setup.sh", venv.display());
    venv
}

/// A chain of `n` nodes: big enough XIR to leave the state store when `n` is large.
fn chain(n: usize) -> String {
    format!(
        "from mergexp import *\nnet = Network('chain')\nnodes = [net.node('n%d' % i, proc.cores>=1) for i in range({n})]\n\
         for a, b in zip(nodes, nodes[1:]):\n    net.connect([a, b], capacity==mbps(100))\nexperiment(net)\n"
    )
}

struct Fixture {
    service: ModelService,
    blobs: Arc<LocalBlobStore>,
    _dir: tempfile::TempDir,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(EmbeddedStore::open(&dir.path().join("s.redb")).unwrap());
    let blobs = Arc::new(LocalBlobStore::open(&dir.path().join("blobs")).unwrap());
    let compiler = Compiler::new(CompilerConfig::new(venv())).map_err(|e| e.to_string());
    assert!(compiler.is_ok(), "compiler: {:?}", compiler.as_ref().err());
    // A small threshold so a modest model exercises the blob path quickly.
    let service = ModelService::new(store, blobs.clone(), compiler).with_inline_limit(LIMIT);
    Fixture { service, blobs, _dir: dir }
}

#[tokio::test]
async fn small_models_stay_inline_and_large_ones_go_to_the_blob_store() {
    let f = fixture();
    let small = f.service.push("p", "e", &chain(3), "", "v1", "alice").await.unwrap();
    assert!(matches!(small.xir, XirLocation::Inline(_)));
    assert_eq!(small.summary.nodes, 3);
    assert_eq!(small.summary.links, 2);
    assert!(f.blobs.list().await.unwrap().is_empty());

    let large_source = chain(200);
    let large = f.service.push("p", "e", &large_source, "", "", "alice").await.unwrap();
    let XirLocation::Blob(blob) = &large.xir else {
        panic!("a {}-node model should exceed {LIMIT} bytes", large.summary.nodes)
    };
    assert_eq!(f.blobs.list().await.unwrap().len(), 1);

    // master follows the latest push; the tag still names the first.
    let (head, xir) = f.service.revision("p", "e", "").await.unwrap();
    assert_eq!(head.id, large.id);
    assert!(xir.len() > LIMIT);
    assert_eq!(blob, &trellis_blobs::BlobId::of(&xir).to_string());
    let (tagged, _) = f.service.revision("p", "e", "v1").await.unwrap();
    assert_eq!(tagged.id, small.id);
    let (by_prefix, _) = f.service.revision("p", "e", &small.id[..10]).await.unwrap();
    assert_eq!(by_prefix.id, small.id);

    // A tag cannot be moved to another revision.
    let moved = f.service.push("p", "e", &chain(5), "", "v1", "alice").await.unwrap_err();
    assert!(matches!(moved, Error::AlreadyExists { .. }), "{moved:?}");
    let (revisions, master) = f.service.revisions("p", "e").await.unwrap();
    assert_eq!(revisions.len(), 2, "the refused push stored nothing");
    assert_eq!(master.as_deref(), Some(large.id.as_str()));
}

#[tokio::test]
async fn models_with_errors_are_refused_with_their_reasons() {
    let f = fixture();
    let bad = "from mergexp import *\nnet = Network('x')\na = net.node('a', image=='win95')\nb = net.node('b')\nnet.connect([a, b], loss==2.0)\nexperiment(net)\n";
    let Error::InvalidArgument { violations } =
        f.service.push("p", "e", bad, "", "", "alice").await.unwrap_err()
    else {
        panic!("expected invalid argument")
    };
    let text: Vec<String> = violations.iter().map(|v| format!("{}: {}", v.field, v.description)).collect();
    assert!(text.iter().any(|t| t.starts_with("node a: image \"win95\"")), "{text:?}");
    assert!(text.iter().any(|t| t.contains("loss 2 is not a probability")), "{text:?}");
    let crash = "from mergexp import *\nnet = Network('x')\n\nraise ValueError('boom')\n";
    let Error::InvalidArgument { violations } =
        f.service.push("p", "e", crash, "", "", "alice").await.unwrap_err()
    else {
        panic!("expected invalid argument")
    };
    assert!(violations[0].description.contains("line 4"), "{violations:?}");
    assert!(
        violations.iter().any(|v| v.field == "evidence" && v.description.contains("ValueError")),
        "{violations:?}"
    );
    assert!(f.service.revisions("p", "e").await.unwrap().0.is_empty());
}
