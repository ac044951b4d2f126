//! Durable file writes: temp name, fsync, rename, fsync directory (INV-1).

use crate::error::{IoContext, Result};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// A fresh random name in `tmp_dir`.
pub fn temp_path(tmp_dir: &Path, suffix: &str) -> PathBuf {
    let mut r = [0u8; 12];
    // getrandom only fails if the OS has no entropy source; fall back to
    // time and pid, which is unique enough for a temp name.
    if getrandom::fill(&mut r).is_err() {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        r[..8].copy_from_slice(&(t as u64).to_le_bytes());
        r[8..].copy_from_slice(&std::process::id().to_le_bytes());
    }
    tmp_dir.join(format!("{}{suffix}", crate::id::to_hex(&r)))
}

/// fsync a directory so a rename inside it is durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).at(dir)
}

/// Create a temp file for writing.
pub fn create_temp(tmp_dir: &Path, suffix: &str) -> Result<(File, PathBuf)> {
    let p = temp_path(tmp_dir, suffix);
    let f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&p)
        .at(&p)?;
    Ok((f, p))
}

/// fsync `file` (at `tmp`), rename it to `dest`, fsync `dest`'s directory (INV-1).
pub fn commit_temp(file: File, tmp: &Path, dest: &Path) -> Result<()> {
    file.sync_all().at(tmp)?;
    drop(file);
    if let Some(dir) = dest.parent() {
        fs::create_dir_all(dir).at(dir)?;
    }
    fs::rename(tmp, dest).at(dest)?;
    if let Some(dir) = dest.parent() {
        sync_dir(dir)?;
    }
    Ok(())
}

/// Write `bytes` to `dest` atomically and durably (INV-1).
pub fn write_atomic(tmp_dir: &Path, dest: &Path, bytes: &[u8]) -> Result<()> {
    let (mut f, tmp) = create_temp(tmp_dir, ".tmp")?;
    let r = f
        .write_all(bytes)
        .at(&tmp)
        .and_then(|_| commit_temp(f, &tmp, dest));
    if r.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    r
}

/// Random bytes for ids and seeds.
pub fn random_bytes<const N: usize>() -> Result<[u8; N]> {
    let mut r = [0u8; N];
    getrandom::fill(&mut r)
        .map_err(|e| crate::error::Error::Invalid(format!("no random source available: {e}")))?;
    Ok(r)
}
