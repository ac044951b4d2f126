//! The last sync of a repository to a destination, in
//! `<cache>/sync/<32 hex of BLAKE3(source location, destination)>.json`
//! (a `policy::state::LastRun`), written by every sync that is not a dry
//! run (`strata sync` and `run`'s sync step alike), so that `status`
//! counts a manual sync to the configured offsite (README "Backup
//! policy"). Best effort: a record that cannot be written never fails a
//! sync.

use crate::policy::record::{hex32, load, save};
use crate::policy::state::LastRun;
use std::path::PathBuf;

fn sync_file(source: &str, dest: &str) -> Option<PathBuf> {
    let (src, _) = crate::repo::known::location(source)?;
    let dst = crate::repo::known::location(dest)
        .map(|(k, _)| k)
        .unwrap_or_else(|| dest.to_string());
    Some(
        crate::cache::base_dir()?
            .join("sync")
            .join(format!("{}.json", hex32(&[&src, &dst]))),
    )
}

/// The last sync of repository `source` (a backend name) to `dest`.
pub fn last_sync(source: &str, dest: &str) -> LastRun {
    sync_file(source, dest).map_or_else(LastRun::default, |f| load(&f))
}

/// Record a sync of `source` to `dest` started at `when`.
pub fn record_sync(source: &str, dest: &str, when: i64, outcome: std::result::Result<(), String>) {
    let Some(file) = sync_file(source, dest) else {
        return;
    };
    let mut r = load(&file);
    r.record(when, outcome.map(|()| String::new()));
    save(&file, &r);
}
