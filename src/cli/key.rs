//! `strata key add|list|remove|passwd|export-identity` (format-spec/keys.md
//! "Key files").

use super::args::{KeyCommand, NewPassArgs};
use super::{exit, output};
use crate::error::{Error, Result};
use crate::events::Events;
use crate::repo::Repo;
use crate::repo::keys::{self, NewKey};
use crate::repo::lock::Lock;
use crate::session::{Operation, Session, unlock};
use std::sync::Arc;

fn crypto(repo: &Repo) -> Result<&crate::crypto::Crypto> {
    repo.crypto().map(|c| c.as_ref()).ok_or_else(|| {
        Error::Invalid("the repository is not encrypted: it has no keys (see `strata init`)".into())
    })
}

fn new_passphrase_key(session: &Session, a: &NewPassArgs, ev: &dyn Events) -> Result<NewKey> {
    Ok(NewKey::Passphrase {
        passphrase: unlock::new_passphrase(
            a.new_password_file.as_deref(),
            &session.given_sources(),
            false,
            ev,
        )?,
        log_n: a.scrypt_log_n,
    })
}

/// Open the repository with the lock the subcommand needs, then run it.
pub fn run(session: &Session, cmd: &KeyCommand, ev: &Arc<dyn Events>) -> Result<i32> {
    let op = match cmd {
        KeyCommand::List { .. } | KeyCommand::ExportIdentity | KeyCommand::ExportRecovery => {
            Operation::ReadKeys
        }
        _ => Operation::ChangeKeys,
    };
    let (repo, _l): (Repo, Lock) = session.open_for(op, ev)?;
    let c = crypto(&repo)?;
    c.full(&format!("`key {}`", cmd.name()))?;
    let root = &**repo.store();
    let repo_id = &repo.config().repo_id;
    match cmd {
        KeyCommand::Add(a) => {
            let new = match &a.recipient {
                Some(r) => NewKey::Recipient(r.clone()),
                None => new_passphrase_key(session, &a.new, &**ev)?,
            };
            let label = a.label.clone().unwrap_or_default();
            if a.write_only {
                // write-only.md "Format version": strata 0.2 must refuse
                // what follows (signed manifests, packs with a writer)
                if repo.config().version < 3 {
                    // the packs written so far were all written by full
                    // keys: trusted for dedup (write-only.md), recorded
                    // before the first write-only key can write any
                    let packs: Vec<_> = crate::repo::reconcile::list_packs(&repo)?
                        .into_iter()
                        .map(|(id, _)| id)
                        .collect();
                    crate::repo::trust::record(&repo, &packs, "format 3")?;
                }
                repo.require_format(crate::repo::config::REPO_VERSION)?;
                let bytes = repo.read("config")?;
                let config = crate::repo::files::open_config(&bytes, "config", Some(c))?;
                let id = keys::add_write_only(root, c, (&config, &bytes), &new, &label)?;
                output::line(&format!(
                    "added write-only key {id}: it can back up, but not read, forget or delete \
                     (README \"Write-only keys\"); sync an existing offsite copy once with a \
                     full key, so that it has the upgraded config"
                ))?;
                return Ok(exit::OK);
            }
            let id = keys::add(root, c, repo_id, &new, &label)?;
            output::line(&format!("added key {id}"))?;
        }
        KeyCommand::List { json } => list(&repo, c, *json)?,
        KeyCommand::Remove { id } => {
            let id = keys::resolve(root, id)?;
            keys::remove(root, c, &id, &mut |k| crate::snapshot::signed_by(&repo, k))?;
            output::line(&format!("removed key {id}"))?;
        }
        KeyCommand::Passwd(a) => {
            let old = repo
                .key_id()
                .ok_or_else(|| Error::Invalid("no key unlocked the repository".into()))?
                .clone();
            let id = keys::change_passphrase(root, c, repo_id, &old, &mut |_| {
                new_passphrase_key(session, a, &**ev)
            })?;
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
            let id = c.identity_string()?;
            output::line(&format!(
                "# strata repository {}\n# public key: {}\n{}",
                repo_id.to_hex(),
                c.recipient(),
                id.as_str()
            ))?;
        }
        KeyCommand::ExportRecovery => {
            eprintln!(
                "strata: WARNING: this recovery key opens the repository alone, to read and to \
                 write: anyone who holds it and the storage holds all backups. Keep it offline \
                 (printed, in a safe); `strata --identity FILE` opens the repository with it."
            );
            output::line(crate::repo::recovery::encode(c, repo_id)?.trim_end())?;
        }
    }
    Ok(exit::OK)
}

fn list(repo: &Repo, c: &crate::crypto::Crypto, json: bool) -> Result<()> {
    let list = keys::list(&**repo.store(), c)?;
    if json {
        let v = serde_json::to_string_pretty(&list)
            .map_err(|e| Error::Internal(format!("json: {e}")))?;
        return output::line(&v);
    }
    output::line(&format!(
        "  {:<32}  {:<11}  {:<20}  {:<16}  label",
        "id", "kind", "created", "host"
    ))?;
    for k in list {
        let current = repo.key_id().map(|i| i.as_str()) == Some(k.id.as_str());
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
    Ok(())
}
