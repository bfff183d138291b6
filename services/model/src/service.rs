//! The model service: compile sources in the sandbox, analyse them, and keep revisions.

use std::sync::Arc;

use prost::Message;
use trellis_api::xir;
use trellis_blobs::BlobStore;
use trellis_compiler::{CompileFailure, Compiler};
use trellis_store::{Compare, Op, Store, StoreError, Txn};
use trellis_types::{Error, Violation};

use crate::analysis::{Analysis, Level, analyze};
use crate::revisions::{
    DEFAULT_BRANCH, INLINE_XIR_LIMIT, MAX_SOURCE_BYTES, Revision, XirLocation, keys, revision_id,
};

/// A successfully compiled and analysed model (not stored).
#[derive(Debug, Clone)]
pub struct Compiled {
    pub xir: Vec<u8>,
    pub network: xir::Network,
    pub analysis: Analysis,
    pub seconds: f64,
}

fn store_error(err: StoreError) -> Error {
    match err {
        StoreError::Unavailable { .. } => Error::Unavailable(err.to_string()),
        other => Error::Internal(other.to_string()),
    }
}

fn blob_error(err: trellis_blobs::BlobError) -> Error {
    Error::Internal(format!("blob store: {err}"))
}

/// Why a model failed, in Merge's title/detail/evidence shape.
fn compile_error(failure: CompileFailure) -> Error {
    match failure {
        CompileFailure::Model { ref traceback, .. } => {
            let mut violations = vec![Violation::new("model", failure.to_string())];
            if !traceback.is_empty() {
                violations.push(Violation::new("evidence", traceback.clone()));
            }
            Error::InvalidArgument { violations }
        }
        CompileFailure::NoExperiment => Error::invalid(
            "model",
            "the model never called experiment(net); end model.py with experiment(<your Network>)",
        ),
        // A model that runs away is the model's fault: say which limit it hit.
        CompileFailure::Limit { message, .. } => Error::invalid("model", message),
        CompileFailure::Sandbox(_) => Error::Internal(failure.to_string()),
    }
}

/// The model service.
#[derive(Clone)]
pub struct ModelService {
    store: Arc<dyn Store>,
    blobs: Arc<dyn BlobStore>,
    /// `Err` says why models cannot be compiled on this portal (set-up incomplete).
    compiler: Result<Compiler, String>,
    /// Compiled XIR larger than this goes to the blob store.
    inline_limit: usize,
}

impl ModelService {
    /// A model service; `compiler` is the reason compiling is unavailable, if it is.
    pub fn new(store: Arc<dyn Store>, blobs: Arc<dyn BlobStore>, compiler: Result<Compiler, String>) -> Self {
        ModelService { store, blobs, compiler, inline_limit: INLINE_XIR_LIMIT }
    }

    /// Changes the size above which compiled XIR goes to the blob store (default
    /// [`INLINE_XIR_LIMIT`]).
    pub fn with_inline_limit(mut self, bytes: usize) -> Self {
        self.inline_limit = bytes;
        self
    }

    /// Compiles and analyses `source` without storing anything.
    pub async fn compile(&self, source: &str) -> Result<Compiled, Error> {
        if source.len() > MAX_SOURCE_BYTES {
            return Err(Error::invalid(
                "model",
                format!("model.py is {} bytes; the limit is {MAX_SOURCE_BYTES}", source.len()),
            ));
        }
        if source.trim().is_empty() {
            return Err(Error::invalid("model", "model.py is empty"));
        }
        let compiler = self
            .compiler
            .as_ref()
            .map_err(|why| Error::FailedPrecondition(format!("this portal cannot compile models: {why}")))?;
        let compiled = compiler.compile(source).await.map_err(compile_error)?;
        let network = xir::Network::decode(compiled.xir.as_slice())
            .map_err(|e| Error::Internal(format!("the compiler produced unreadable XIR: {e}")))?;
        let analysis = analyze(&network);
        Ok(Compiled { xir: compiled.xir, network, analysis, seconds: compiled.timings.total.as_secs_f64() })
    }

    /// Compiles `source` and records it as a revision of `project`/`experiment` on `branch`
    /// (default `master`), optionally tagged. A model that fails to compile, or whose analysis
    /// finds errors, is refused with the reasons and nothing is stored.
    pub async fn push(
        &self,
        project: &str,
        experiment: &str,
        source: &str,
        branch: &str,
        tag: &str,
        pushed_by: &str,
    ) -> Result<Revision, Error> {
        let branch = if branch.is_empty() { DEFAULT_BRANCH } else { branch };
        validate_ref("branch", branch)?;
        if !tag.is_empty() {
            validate_ref("tag", tag)?;
        }
        let compiled = self.compile(source).await?;
        if compiled.analysis.has_errors() {
            return Err(Error::InvalidArgument {
                violations: compiled
                    .analysis
                    .errors()
                    .map(|d| Violation::new(d.element.clone(), d.message.clone()))
                    .collect(),
            });
        }
        let id = revision_id(source);
        let xir = if compiled.xir.len() > self.inline_limit {
            let blob = self.blobs.put(compiled.xir.clone()).await.map_err(blob_error)?;
            XirLocation::Blob(blob.to_string())
        } else {
            XirLocation::Inline(compiled.xir.clone())
        };
        let revision = Revision {
            id: id.clone(),
            project: project.to_owned(),
            experiment: experiment.to_owned(),
            source: source.to_owned(),
            xir,
            summary: compiled.analysis.summary,
            diagnostics: compiled
                .analysis
                .diagnostics
                .into_iter()
                .filter(|d| d.level == Level::Warning)
                .collect(),
            pushed_by: pushed_by.to_owned(),
            pushed_at: now_unix(),
            compile_seconds: compiled.seconds,
        };
        self.record(&revision, branch, tag).await?;
        Ok(revision)
    }

    async fn record(&self, revision: &Revision, branch: &str, tag: &str) -> Result<(), Error> {
        let (p, e) = (revision.project.as_str(), revision.experiment.as_str());
        let value =
            serde_json::to_vec(revision).map_err(|e| Error::Internal(format!("encoding revision: {e}")))?;
        for _ in 0..16 {
            let rev_key = keys::revision(p, e, &revision.id);
            let existing = self.store.get(&rev_key).await.map_err(store_error)?;
            let mut txn = Txn::default();
            // Same content, same id: pushing it again only moves the references.
            if existing.is_none() {
                txn.compares.push(Compare::ModRevision { key: rev_key.clone(), revision: 0 });
                txn.success.push(Op::Put { key: rev_key, value: value.clone(), lease: None });
            }
            txn.success.push(Op::Put {
                key: keys::branch(p, e, branch),
                value: revision.id.as_bytes().to_vec(),
                lease: None,
            });
            if !tag.is_empty() {
                let tag_key = keys::tag(p, e, tag);
                match self.store.get(&tag_key).await.map_err(store_error)? {
                    Some(kv) if kv.value == revision.id.as_bytes() => {}
                    Some(kv) => {
                        return Err(Error::AlreadyExists {
                            kind: "tag",
                            name: format!("{tag} (it names revision {})", String::from_utf8_lossy(&kv.value)),
                        });
                    }
                    None => {
                        txn.compares.push(Compare::ModRevision { key: tag_key.clone(), revision: 0 });
                        txn.success.push(Op::Put {
                            key: tag_key,
                            value: revision.id.as_bytes().to_vec(),
                            lease: None,
                        });
                    }
                }
            }
            if self.store.txn(txn).await.map_err(store_error)?.succeeded {
                return Ok(());
            }
        }
        Err(Error::Aborted("too many concurrent pushes to this experiment; try again".to_owned()))
    }

    /// Resolves `reference` (a revision id or unique prefix of at least 7 characters, a tag, a
    /// branch; empty means `master`) to a revision and its compiled XIR.
    pub async fn revision(
        &self,
        project: &str,
        experiment: &str,
        reference: &str,
    ) -> Result<(Revision, Vec<u8>), Error> {
        let id = self.resolve(project, experiment, reference).await?;
        let key = keys::revision(project, experiment, &id);
        let kv = self
            .store
            .get(&key)
            .await
            .map_err(store_error)?
            .ok_or_else(|| Error::not_found("revision", format!("{id} of {experiment}.{project}")))?;
        let revision: Revision = serde_json::from_slice(&kv.value)
            .map_err(|e| Error::Internal(format!("revision {id} is corrupt: {e}")))?;
        let xir = match &revision.xir {
            XirLocation::Inline(bytes) => bytes.clone(),
            XirLocation::Blob(blob) => {
                let blob = blob.parse().map_err(blob_error)?;
                self.blobs.get(&blob).await.map_err(blob_error)?.ok_or_else(|| {
                    Error::Internal(format!(
                        "the compiled model of revision {id} is missing from the blob store"
                    ))
                })?
            }
        };
        Ok((revision, xir))
    }

    async fn resolve(&self, project: &str, experiment: &str, reference: &str) -> Result<String, Error> {
        let reference = if reference.is_empty() { DEFAULT_BRANCH } else { reference };
        for key in [keys::tag(project, experiment, reference), keys::branch(project, experiment, reference)] {
            if let Some(kv) = self.store.get(&key).await.map_err(store_error)? {
                return String::from_utf8(kv.value)
                    .map_err(|_| Error::Internal(format!("reference {key} is corrupt")));
            }
        }
        if reference.len() >= 7 && reference.bytes().all(|b| b.is_ascii_hexdigit()) {
            let prefix =
                format!("{}{}", keys::revisions(project, experiment), reference.to_ascii_lowercase());
            let matches = self.store.range(&prefix).await.map_err(store_error)?.kvs;
            match matches.as_slice() {
                [one] => return Ok(one.key.rsplit('/').next().unwrap_or_default().to_owned()),
                [] => {}
                _ => {
                    return Err(Error::invalid(
                        "revision",
                        format!("{reference} matches several revisions; give more of it"),
                    ));
                }
            }
        }
        Err(Error::not_found("revision", format!("{reference} of {experiment}.{project}")))
    }

    /// Every revision of an experiment, newest first, and the id `master` points at.
    pub async fn revisions(
        &self,
        project: &str,
        experiment: &str,
    ) -> Result<(Vec<Revision>, Option<String>), Error> {
        let range = self.store.range(&keys::revisions(project, experiment)).await.map_err(store_error)?;
        let mut revisions = range
            .kvs
            .iter()
            .map(|kv| {
                serde_json::from_slice::<Revision>(&kv.value)
                    .map_err(|e| Error::Internal(format!("{} is corrupt: {e}", kv.key)))
            })
            .collect::<Result<Vec<_>, _>>()?;
        revisions.sort_by_key(|r| std::cmp::Reverse(r.pushed_at));
        let head = self
            .store
            .get(&keys::branch(project, experiment, DEFAULT_BRANCH))
            .await
            .map_err(store_error)?
            .and_then(|kv| String::from_utf8(kv.value).ok());
        Ok((revisions, head))
    }

    /// The store op that removes every revision and reference of an experiment; the workspace
    /// adds it to the experiment's deletion so both go in one transaction.
    pub fn delete_op(project: &str, experiment: &str) -> Op {
        Op::DeletePrefix { prefix: keys::experiment(project, experiment) }
    }
}

/// Branch and tag names: git-like, but restricted so they are safe in store keys and URLs.
fn validate_ref(field: &str, name: &str) -> Result<(), Error> {
    let ok = name.len() <= 100
        && !name.is_empty()
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        && !name.starts_with('.')
        && !name.contains("..");
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(field, format!("{name:?} is not a valid {field} name (letters, digits, - _ .)")))
    }
}

fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refs_are_validated() {
        for ok in ["master", "v1.0", "feature_x-2"] {
            assert!(validate_ref("tag", ok).is_ok(), "{ok}");
        }
        for bad in ["", "../x", "a/b", ".hidden", "a..b", "sp ace"] {
            assert!(validate_ref("tag", bad).is_err(), "{bad}");
        }
    }
}
