//! `strata unlock`: remove stale locks, or all with `--remove-all`.

use super::args::UnlockArgs;
use super::{exit, output};
use crate::error::Result;
use crate::repo::Repo;
use crate::repo::lock;

pub fn run(repo: &Repo, a: &UnlockArgs) -> Result<i32> {
    let mut removed = 0;
    let mut kept = 0;
    for l in lock::list(repo)? {
        let why = if a.remove_all {
            Some("--remove-all".to_string())
        } else {
            l.stale_reason()
        };
        match why {
            Some(why) => {
                lock::remove(repo, &l.name)?;
                output::line(&format!("removed {} ({why})", l.describe()))?;
                removed += 1;
            }
            None => {
                output::line(&format!("kept {} (not stale)", l.describe()))?;
                kept += 1;
            }
        }
    }
    output::line(&format!("{removed} locks removed, {kept} kept"))?;
    Ok(exit::OK)
}
