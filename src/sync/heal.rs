//! Healing the destination (format-spec/sync.md "Healing"): which of its
//! packs this machine found damaged there, by its records of that location
//! (`damaged.json` beside the destination's index, and the packs its
//! `check --read-data` found damaged, `maint::check::state`), so that
//! `plan::copies` copies them again; and, once copied, those records
//! cleared. The records are found without unlocking anything: under each
//! repository id in the cache that has an index at both ends' locations.

use crate::id::PackId;
use std::collections::BTreeSet;
use std::path::PathBuf;

/// This machine's records of the destination, per repository id that
/// has an index at both ends.
pub(super) struct Records {
    /// (index directory, check state file) at the destination.
    at: Vec<(PathBuf, PathBuf)>,
}

impl Records {
    /// The records of `dst` for repositories also indexed at `src` (both
    /// backend names).
    pub fn find(src: &str, dst: &str) -> Records {
        let mut at = Vec::new();
        let Some(base) = crate::cache::base_dir() else {
            return Records { at };
        };
        let key =
            |name: &str| crate::repo::location_key(&crate::maint::check::state::location(name));
        let (ks, kd) = (key(src), key(dst));
        let Ok(rd) = std::fs::read_dir(&base) else {
            return Records { at };
        };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.len() != 64 || !name.bytes().all(|b| b.is_ascii_hexdigit()) {
                continue;
            }
            let index = e.path().join("index");
            if index.join(&ks).is_dir() && index.join(&kd).is_dir() {
                let state = e.path().join("check").join(&kd).join("state.json");
                at.push((index.join(&kd), state));
            }
        }
        Records { at }
    }

    /// The keys of the packs recorded damaged at the destination.
    pub fn damaged(&self) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for (index, state) in &self.at {
            out.extend(crate::maint::repair::damaged::packs_in(index));
            let (st, _) = crate::maint::check::state::CheckState::load(state);
            out.extend(st.damaged_packs());
        }
        out.into_iter()
            .map(|p| crate::backend::key::pack(&p.to_hex()))
            .collect()
    }

    /// `packs` were copied again: they leave the records (verified again
    /// by the next check). A failure is returned as a warning.
    pub fn healed(&self, packs: &[PackId]) -> Option<String> {
        let mut errors = Vec::new();
        for (index, state) in &self.at {
            if let Err(e) = crate::maint::repair::damaged::healed_in(index, packs) {
                errors.push(e.to_string());
            }
            if let Err(e) = crate::maint::check::state::forget_packs(state, packs) {
                errors.push(e.to_string());
            }
        }
        (!errors.is_empty()).then(|| errors.join("; "))
    }
}
