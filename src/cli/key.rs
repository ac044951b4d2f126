//! `strata key add|list|remove|passwd|export-identity` (format-spec/keys.md
//! "Key files").

use super::args::{Cli, KeyCommand, NewPassArgs};
use super::{exit, output, unlock};
use crate::crypto::keys::{self, NewKey};
use crate::error::{Error, Result};
use crate::repo::Repo;

fn crypto(repo: &Repo) -> Result<&crate::crypto::Crypto> {
    repo.crypto().map(|c| c.as_ref()).ok_or_else(|| {
        Error::Invalid("the repository is not encrypted: it has no keys (see `strata init`)".into())
    })
}

fn new_passphrase_key(cli: &Cli, a: &NewPassArgs) -> Result<NewKey> {
    Ok(NewKey::Passphrase {
        passphrase: unlock::new_passphrase(
            a.new_password_file.as_deref(),
            &super::sources(cli),
            false,
        )?,
        log_n: a.scrypt_log_n,
    })
}

/// Run a key subcommand on an unlocked repository.
pub fn run(cli: &Cli, repo: &Repo, cmd: &KeyCommand) -> Result<i32> {
    let c = crypto(repo)?;
    let root = &**repo.store();
    let repo_id = &repo.config().repo_id;
    match cmd {
        KeyCommand::Add(a) => {
            let new = match &a.recipient {
                Some(r) => NewKey::Recipient(r.clone()),
                None => new_passphrase_key(cli, &a.new)?,
            };
            let label = a.label.clone().unwrap_or_default();
            let id = keys::add(root, c, repo_id, &new, &label)?;
            output::line(&format!("added key {id}"))?;
        }
        KeyCommand::List { json } => {
            let list = keys::list(root, c)?;
            if *json {
                let v = serde_json::to_string_pretty(&list)
                    .map_err(|e| Error::Invalid(format!("json: {e}")))?;
                output::line(&v)?;
                return Ok(exit::OK);
            }
            output::line(&format!(
                "  {:<32}  {:<11}  {:<20}  {:<16}  label",
                "id", "kind", "created", "host"
            ))?;
            for k in list {
                let current = repo.key_id() == Some(k.id.as_str());
                output::line(&format!(
                    "{} {:<32}  {:<11}  {:<20}  {:<16}  {}",
                    if current { "*" } else { " " },
                    k.id,
                    k.kind,
                    super::inspect::utc_string(k.created_unix_ns.div_euclid(1_000_000_000)),
                    k.host,
                    k.label
                ))?;
            }
        }
        KeyCommand::Remove { id } => {
            let id = keys::resolve(root, id)?;
            keys::remove(root, &id)?;
            output::line(&format!("removed key {id}"))?;
        }
        KeyCommand::Passwd(a) => {
            let old = repo
                .key_id()
                .ok_or_else(|| Error::Invalid("no key unlocked the repository".into()))?
                .to_string();
            // keys.md "Key commands": the info decides (and gives the label).
            let info = keys::passphrase_key_info(root, c, &old)?;
            let mut new = new_passphrase_key(cli, a)?;
            // The new key keeps the old one's work factor unless told.
            if let NewKey::Passphrase {
                log_n: l @ None, ..
            } = &mut new
            {
                *l = Some(keys::scrypt_log_n(root, &old)?);
            }
            // The new key is durable before the old one goes: a crash in
            // between leaves both, never neither.
            let id = keys::add(root, c, repo_id, &new, &info.label)?;
            keys::remove(root, &old)?;
            output::line(&format!(
                "changed the passphrase: key {old} replaced by {id}"
            ))?;
        }
        KeyCommand::ExportIdentity => {
            eprintln!(
                "strata: WARNING: this identity decrypts every pack and snapshot of the \
                 repository. Store it offline (it is for disaster recovery with `age -d -i`); \
                 anyone who holds it and the storage can read all backups."
            );
            let id = c.identity_string();
            output::line(&format!(
                "# strata repository {}\n# public key: {}\n{}",
                crate::id::to_hex(repo_id),
                c.recipient(),
                id.as_str()
            ))?;
        }
    }
    Ok(exit::OK)
}
