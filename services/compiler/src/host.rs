//! Start-up checks of the host tools and the venv, and working out what the
//! sandbox must mount for the venv's Python to run.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;

use crate::config::CompilerConfig;
use crate::error::CompilerError;

/// What the checks found.
#[derive(Debug)]
pub(crate) struct Host {
    pub(crate) bwrap_version: String,
    pub(crate) mergexp_version: String,
    /// The interpreter path to exec inside the sandbox.
    pub(crate) python: PathBuf,
    /// Directories to bind read-only (the venv, and the base Python install
    /// when it is not under `/usr`).
    pub(crate) mounts: Vec<PathBuf>,
}

/// Asks the venv's Python (trusted code: ours) where it lives.
const INTROSPECT: &str = "import importlib.metadata as m, json, sys; \
print(json.dumps({'prefix': sys.prefix, 'base_prefix': sys.base_prefix, \
'executable': sys.executable, 'mergexp': m.version('mergexp')}))";

#[derive(Debug, Deserialize)]
struct Introspection {
    prefix: PathBuf,
    base_prefix: PathBuf,
    mergexp: String,
}

pub(crate) fn check(config: &CompilerConfig) -> Result<Host, CompilerError> {
    let bwrap_version = tool_version("bubblewrap", &config.bwrap)?;
    tool_version("prlimit", &config.prlimit)?;
    if !Path::new("/bin/sh").exists() {
        return Err(CompilerError::Tool { what: "sh", path: "/bin/sh".into(), detail: "missing".into() });
    }

    let venv_err = |detail: String| CompilerError::Venv { venv: config.venv.clone(), detail };
    let venv = config.venv.canonicalize().map_err(|e| venv_err(format!("cannot resolve it: {e}")))?;
    // Exec the interpreter through the venv's own bin/ (not its symlink
    // target), or Python would not find pyvenv.cfg and the venv's packages.
    let rel = config
        .python
        .strip_prefix(&config.venv)
        .map_err(|_| venv_err(format!("python {} is not inside the venv", config.python.display())))?;
    let python = venv.join(rel);
    let out =
        Command::new(&python).args(["-I", "-c", INTROSPECT]).env_clear().output().map_err(|e| {
            CompilerError::Tool { what: "python", path: python.clone(), detail: e.to_string() }
        })?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let last = stderr.lines().last().unwrap_or("").to_string();
        return Err(venv_err(format!("cannot import mergexp ({}): {last}", out.status)));
    }
    let found: Introspection = serde_json::from_slice(&out.stdout)
        .map_err(|e| venv_err(format!("unexpected answer from python: {e}")))?;
    if found.prefix.canonicalize().ok().as_deref() != Some(venv.as_path()) {
        return Err(venv_err(format!(
            "{} runs with prefix {}, not the venv",
            python.display(),
            found.prefix.display()
        )));
    }

    let base = found.base_prefix.canonicalize().map_err(|e| venv_err(format!("base prefix: {e}")))?;
    let mut mounts = vec![venv.clone()];
    if !base.starts_with("/usr") && !base.starts_with(&venv) {
        mounts.push(base);
    }
    let real = python.canonicalize().map_err(|e| venv_err(format!("resolving {}: {e}", python.display())))?;
    if !real.starts_with("/usr") && !mounts.iter().any(|m| real.starts_with(m)) {
        return Err(venv_err(format!(
            "the interpreter {} is outside /usr, the venv and the Python base prefix, so it would not exist in the sandbox",
            real.display()
        )));
    }
    Ok(Host { bwrap_version, mergexp_version: found.mergexp, python, mounts })
}

fn tool_version(what: &'static str, path: &Path) -> Result<String, CompilerError> {
    let err = |detail: String| CompilerError::Tool { what, path: path.to_path_buf(), detail };
    let out = Command::new(path).arg("--version").env_clear().output().map_err(|e| err(e.to_string()))?;
    if !out.status.success() {
        return Err(err(format!("--version exited with {}", out.status)));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}
