//! Repository keys (format-spec/backend.md "Keys"): what a key may look
//! like, checked by every backend before any I/O, and the keys of the
//! layout in repository.md. A key is a relative `/`-separated path of
//! segments made of `[A-Za-z0-9._-]`, no segment empty or starting with
//! `.`, so a key can never leave the repository (`..`, absolute paths),
//! never collides with a backend's own staging names (`#`, `.tmp`) and
//! needs no escaping on any object store. `tmp/` is reserved for the local
//! backend's staging and refused.

use super::{BResult, BackendError};

/// Longest key accepted, in bytes (S3 allows 1024 with the prefix).
pub const MAX_KEY_LEN: usize = 512;

fn invalid(key: &str, reason: &'static str) -> BackendError {
    BackendError::InvalidKey {
        key: key.to_string(),
        reason,
    }
}

/// Check `key` names an object (rules in the module doc).
pub fn check_key(key: &str) -> BResult<()> {
    if key.is_empty() {
        return Err(invalid(key, "empty"));
    }
    check_prefix(key)
}

/// Check a [`super::Backend::list`] prefix: `""` (everything) or a key.
pub fn check_prefix(key: &str) -> BResult<()> {
    if key.is_empty() {
        return Ok(());
    }
    if key.len() > MAX_KEY_LEN {
        return Err(invalid(key, "too long"));
    }
    if key.starts_with('/') {
        return Err(invalid(key, "absolute"));
    }
    for seg in key.split('/') {
        segment(seg).map_err(|reason| invalid(key, reason))?;
    }
    if key == "tmp" || key.starts_with("tmp/") {
        return Err(invalid(key, "tmp/ is reserved for staging"));
    }
    Ok(())
}

/// The bytes a segment may hold: `[A-Za-z0-9._-]`.
const ALLOWED: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = c.is_ascii_alphanumeric() || c == b'.' || c == b'_' || c == b'-';
        b += 1;
    }
    t
};

/// Check one segment of a key; the reason it is refused.
fn segment(seg: &str) -> Result<(), &'static str> {
    if seg.is_empty() {
        return Err("empty path segment");
    }
    if seg.starts_with('.') {
        return Err(if seg == "." || seg == ".." {
            "`.` or `..` segment"
        } else {
            "segment starts with `.`"
        });
    }
    if !seg.bytes().all(|b| ALLOWED[usize::from(b)]) {
        return Err("characters outside [A-Za-z0-9._-]");
    }
    Ok(())
}

/// Is `parent/name` a key, `parent` being one (or `""`)? What
/// [`check_key`] decides, checking only the new segment (a listing's walk).
pub fn is_child_key(parent: &str, name: &str) -> bool {
    let len = if parent.is_empty() {
        name.len()
    } else {
        parent.len() + 1 + name.len()
    };
    len <= MAX_KEY_LEN && segment(name).is_ok() && !(parent.is_empty() && name == "tmp")
}

/// The key of pack `hex` (64 lowercase hex digits): `packs/<first two>/<hex>`.
pub fn pack(hex: &str) -> String {
    let fan = hex.get(..2).unwrap_or("00");
    format!("packs/{fan}/{hex}")
}

/// The key of snapshot manifest `hex`.
pub fn snapshot(hex: &str) -> String {
    format!("snapshots/{hex}")
}

/// The key of lock file `hex`.
pub fn lock(hex: &str) -> String {
    format!("locks/{hex}")
}

/// The config's key.
pub const CONFIG: &str = "config";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_of_the_layout_are_valid_and_odd_ones_refused() {
        let h = "ab".repeat(32);
        for k in [
            CONFIG.to_string(),
            pack(&h),
            snapshot(&h),
            lock(&h),
            format!("keys/{}.info", &h[..32]),
            format!("gc/{h}"),
            format!("dicts/{h}"),
        ] {
            check_key(&k).unwrap();
        }
        assert_eq!(pack(&h), format!("packs/ab/{h}"));
        for (k, why) in [
            ("", "empty"),
            ("/etc/passwd", "absolute"),
            ("..", "`.` or `..` segment"),
            ("packs/../config", "`.` or `..` segment"),
            ("packs//x", "empty path segment"),
            ("packs/", "empty path segment"),
            ("packs/.hidden", "segment starts with `.`"),
            ("a b", "characters outside [A-Za-z0-9._-]"),
            ("a#1", "characters outside [A-Za-z0-9._-]"),
            ("a\\b", "characters outside [A-Za-z0-9._-]"),
            ("tmp/x", "tmp/ is reserved for staging"),
        ] {
            match check_key(k) {
                Err(BackendError::InvalidKey { reason, .. }) => assert_eq!(reason, why, "{k}"),
                other => panic!("{k:?}: {other:?}"),
            }
        }
        check_prefix("").unwrap();
        assert!(check_key(&"a".repeat(MAX_KEY_LEN + 1)).is_err());
    }

    /// A listing's walk checks only the new segment: the same verdict as
    /// checking the whole key, for every parent and name.
    #[test]
    fn a_child_key_is_judged_as_the_whole_key() {
        let long = "a".repeat(MAX_KEY_LEN - 6);
        for parent in ["", "packs", "packs/ab", "tmpx", long.as_str()] {
            for name in [
                "ab", "tmp", "x.y", "-_.", ".", "..", ".hidden", "", "a b", "é", "a#", "abcdefgh",
            ] {
                let key = if parent.is_empty() {
                    name.to_string()
                } else {
                    format!("{parent}/{name}")
                };
                assert_eq!(
                    is_child_key(parent, name),
                    check_key(&key).is_ok(),
                    "{parent:?} + {name:?}"
                );
            }
        }
    }
}
