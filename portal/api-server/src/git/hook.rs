//! The pre-receive hook that keeps a non-compiling model off `master`, and the portal side of
//! its hand-shake.
//!
//! `git receive-pack` runs the hook after the pushed objects arrived (in quarantine) but before
//! any reference moves. For a push that changes `model.py` on `master` the hook writes the new
//! source to `$TRELLIS_HOOK_DIR/model.py` and waits for `$TRELLIS_HOOK_DIR/verdict`; the bridge,
//! which made that directory for this one request, compiles and records the model and writes the
//! verdict. Only an accepted model lets the hook exit 0; otherwise git refuses the whole push and
//! shows the compiler's reasons to the pusher as `remote:` lines.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use trellis_model::ModelService;

/// The hook script installed in every repository.
pub const PRE_RECEIVE: &str = r#"#!/bin/sh
# Installed by Trellis: master may only move to a commit whose model.py compiles.
dir="$TRELLIS_HOOK_DIR"
if [ -z "$dir" ]; then
    echo "pushes to this repository must go through the Trellis portal" >&2
    exit 1
fi
zero=0000000000000000000000000000000000000000
while read -r old new ref; do
    [ "$ref" = refs/heads/master ] || continue
    if [ "$new" = "$zero" ]; then
        echo "master cannot be deleted: it holds the experiment's model" >&2
        exit 1
    fi
    newblob=$(git rev-parse --verify -q "$new:model.py") || continue
    oldblob=""
    if [ "$old" != "$zero" ]; then
        oldblob=$(git rev-parse --verify -q "$old:model.py")
    fi
    [ "$newblob" = "$oldblob" ] && continue
    git cat-file blob "$newblob" > "$dir/model.py.part" && mv "$dir/model.py.part" "$dir/model.py" || exit 1
    i=0
    while [ ! -e "$dir/verdict" ]; do
        i=$((i + 1))
        if [ "$i" -gt 6000 ]; then
            echo "timed out waiting for the portal to compile model.py" >&2
            exit 1
        fi
        sleep 0.1
    done
    read -r first < "$dir/verdict"
    tail -n +2 "$dir/verdict" >&2
    [ "$first" = accepted ] || exit 1
done
exit 0
"#;

/// Largest model.py the hook hands over (the model service has its own, smaller limit).
const MAX_MODEL_FILE: u64 = 4 * 1024 * 1024;

/// What the watcher needs to compile and record a pushed model.
#[derive(Clone)]
pub struct PushContext {
    pub models: Option<ModelService>,
    pub project: String,
    pub experiment: String,
    pub username: String,
}

/// Serves the hook of one receive-pack request until `cancel` fires.
pub async fn watch(dir: PathBuf, context: PushContext, cancel: CancellationToken) {
    let model = dir.join("model.py");
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(Duration::from_millis(50)) => {}
        }
        if tokio::fs::try_exists(&model).await.unwrap_or(false) {
            let verdict = judge(&model, &context).await;
            if let Err(e) = write_verdict(&dir, &verdict).await {
                tracing::warn!(error = %e, "could not answer the git pre-receive hook");
            }
            return;
        }
    }
}

/// `accepted` or `refused`, then the message for the pusher.
async fn judge(model: &Path, context: &PushContext) -> String {
    let Some(models) = &context.models else {
        return "refused\nthis portal was started without experiment model support\n".to_owned();
    };
    let size = tokio::fs::metadata(model).await.map(|m| m.len()).unwrap_or(0);
    if size > MAX_MODEL_FILE {
        return format!("refused\nmodel.py is {size} bytes; it is too large to compile\n");
    }
    let source = match tokio::fs::read(model).await.map(String::from_utf8) {
        Ok(Ok(source)) => source,
        Ok(Err(_)) => return "refused\nmodel.py is not UTF-8 text\n".to_owned(),
        Err(e) => return format!("refused\nreading the pushed model.py: {e}\n"),
    };
    let (p, e, user) = (&context.project, &context.experiment, &context.username);
    match models.push(p, e, &source, "master", "", user).await {
        Ok(revision) => {
            tracing::info!(project = %p, experiment = %e, revision = %revision.id, "model pushed over git");
            format!("accepted\nTrellis: model.py compiled; revision {}\n", revision.id)
        }
        Err(err) => format!("refused\nTrellis: model.py was refused, master is unchanged: {err}\n"),
    }
}

async fn write_verdict(dir: &Path, verdict: &str) -> std::io::Result<()> {
    let part = dir.join("verdict.part");
    tokio::fs::write(&part, verdict).await?;
    tokio::fs::rename(&part, dir.join("verdict")).await
}
