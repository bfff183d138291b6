//! SSH public keys of the logged-in user (or of `--user`, for administrators).

use std::path::Path;

use serde_json::json;
use trellis_api::portal::v1 as pb;

use super::{Ctx, whoami};
use crate::cli::KeysCommand;
use crate::client::Clients;
use crate::error::CliError;
use crate::output::{self, public_key_json};

/// `trellis keys ...`.
pub async fn run(ctx: &Ctx, command: KeysCommand) -> Result<(), CliError> {
    let mut clients = ctx.connect().await?;
    match command {
        KeysCommand::Add { file, user } => {
            let key = read_key(&file)?;
            let user = owner(&mut clients, user).await?;
            clients
                .workspace
                .add_user_public_key(pb::AddUserPublicKeyRequest { user: user.clone(), key })
                .await?;
            ctx.done(format!("added the key in {} for {user}", file.display()))
        }
        KeysCommand::List { user } => {
            let user = owner(&mut clients, user).await?;
            let mut keys = clients
                .workspace
                .get_user_public_keys(pb::GetUserPublicKeysRequest { user })
                .await?
                .into_inner()
                .keys;
            keys.sort_by(|a, b| a.fingerprint.cmp(&b.fingerprint));
            let value = json!({ "keys": keys.iter().map(public_key_json).collect::<Vec<_>>() });
            ctx.emit(value, || {
                let rows: Vec<Vec<String>> = keys
                    .iter()
                    .map(|k| {
                        let (kind, comment) = describe_key(&k.key);
                        vec![k.fingerprint.clone(), kind, comment]
                    })
                    .collect();
                output::table(&["fingerprint", "type", "comment"], &rows)
            })
        }
        KeysCommand::Delete { fingerprint, user } => {
            let user = owner(&mut clients, user).await?;
            let request =
                pb::DeleteUserPublicKeyRequest { user: user.clone(), fingerprint: fingerprint.clone() };
            clients.workspace.delete_user_public_key(request).await?;
            ctx.done(format!("deleted key {fingerprint} of {user}"))
        }
    }
}

/// Whose keys: the named user, else the caller.
async fn owner(clients: &mut Clients, user: Option<String>) -> Result<String, CliError> {
    match user {
        Some(user) => Ok(user),
        None => whoami(clients).await,
    }
}

/// The first non-comment line of an OpenSSH public key file.
fn read_key(path: &Path) -> Result<String, CliError> {
    let text = std::fs::read_to_string(path)
        .map_err(|source| CliError::ReadFile { path: path.to_owned(), source })?;
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .ok_or_else(|| CliError::EmptyKey { path: path.to_owned() })
}

/// The key type and comment of an OpenSSH key line, for the table (the base64 body is noise).
fn describe_key(key: &str) -> (String, String) {
    let mut parts = key.split_whitespace();
    let kind = parts.next().unwrap_or_default().to_owned();
    let _body = parts.next();
    (kind, parts.collect::<Vec<_>>().join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_files_yield_their_key_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.pub");
        std::fs::write(&path, "# mine\n\nssh-ed25519 AAAAC3Nz me@host\n").unwrap();
        assert_eq!(read_key(&path).unwrap(), "ssh-ed25519 AAAAC3Nz me@host");
        std::fs::write(&path, "\n# nothing\n").unwrap();
        assert!(matches!(read_key(&path), Err(CliError::EmptyKey { .. })));
        assert!(matches!(read_key(&dir.path().join("missing")), Err(CliError::ReadFile { .. })));
    }

    #[test]
    fn keys_are_described_by_type_and_comment() {
        assert_eq!(describe_key("ssh-ed25519 AAAA a b"), ("ssh-ed25519".to_owned(), "a b".to_owned()));
        assert_eq!(describe_key("ssh-rsa AAAA"), ("ssh-rsa".to_owned(), String::new()));
    }
}
