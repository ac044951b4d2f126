//! gc's repack (format-spec/gc.md step 6, GC-1): copy the chosen blobs of
//! partly used packs into new packs. Every blob is verified against its id
//! before it is copied (its stored bytes are copied as they are), and each
//! new pack is durable under its final name before its index rows are
//! committed (INV-1, INV-2). A pack whose blobs cannot all be read is left
//! alone (reported), never condemned.

use crate::error::Result;
use crate::index::{BlobRow, Index, PackRow};
use crate::maint::plan::{choose, for_each_reachable};
use crate::pack::reader::{self, BlobLocation};
use crate::pack::writer::PackWriter;
use crate::repo::Repo;
use rusqlite::params;
use std::collections::{HashMap, HashSet};

/// What the repack did.
#[derive(Debug, Default)]
pub struct Repacked {
    /// Packs whose chosen blobs were all copied (to be condemned).
    pub done: Vec<i64>,
    /// Packs left alone, with the reason.
    pub failed: Vec<(i64, String)>,
    /// New packs written.
    pub packs_written: u64,
    /// Their bytes.
    pub bytes_written: u64,
    /// Blobs copied.
    pub blobs_copied: u64,
}

/// Pass 2 over the reachable set: record in `m.copy` the blobs whose chosen
/// copy is in a pack to repack.
pub fn list_copies(
    index: &Index,
    packs: &HashMap<i64, PackRow>,
    repack: &HashSet<i64>,
) -> Result<()> {
    let conn = index.conn();
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS m.copy (
           pack INTEGER NOT NULL, offset INTEGER NOT NULL, id BLOB NOT NULL,
           stored_len INTEGER NOT NULL, raw_len INTEGER NOT NULL,
           kind INTEGER NOT NULL, compression INTEGER NOT NULL,
           PRIMARY KEY (pack, offset)) WITHOUT ROWID;
         DELETE FROM m.copy;",
    )?;
    // One transaction for the whole list (the rows are scratch: a killed
    // gc leaves nothing to recover from them).
    let tx = conn.unchecked_transaction()?;
    let mut ins = tx.prepare(
        "INSERT OR IGNORE INTO m.copy(pack, offset, id, stored_len, raw_len, kind, compression)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    for_each_reachable(&tx, &mut |_, rows| {
        if let Some((r, _)) = choose(rows, packs) {
            if repack.contains(&r.pack) {
                ins.execute(params![
                    r.pack,
                    r.offset as i64,
                    &r.id.0[..],
                    i64::from(r.stored_len),
                    i64::from(r.raw_len),
                    r.kind as i64,
                    r.compression as i64
                ])?;
            }
        }
        Ok(())
    })?;
    drop(ins);
    tx.commit()?;
    Ok(())
}

/// Copy the listed blobs of each pack in `order` into new packs.
pub fn repack(
    repo: &Repo,
    index: &mut Index,
    packs: &HashMap<i64, PackRow>,
    order: &[i64],
) -> Result<Repacked> {
    let mut out = Repacked::default();
    let mut open: [Option<PackWriter>; 2] = [None, None];
    for rowid in order {
        let Some(p) = packs.get(rowid) else { continue };
        let blobs = copies_of(index, *rowid)?;
        match copy_pack(repo, index, p, &blobs, &mut open, &mut out) {
            Ok(()) => out.done.push(*rowid),
            Err(e) => out.failed.push((*rowid, e.to_string())),
        }
    }
    for w in open.iter_mut() {
        if let Some(w) = w.take() {
            seal(repo, index, w, &mut out)?;
        }
    }
    Ok(out)
}

fn copies_of(index: &Index, pack: i64) -> Result<Vec<BlobRow>> {
    let mut st = index.conn().prepare_cached(
        "SELECT id, offset, stored_len, raw_len, kind, compression FROM m.copy
         WHERE pack = ?1 ORDER BY offset",
    )?;
    let mut rows = st.query(params![pack])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.push(crate::index::blob_row(r, pack)?);
    }
    Ok(out)
}

/// Read, verify and append the blobs of one pack; full packs are sealed.
fn copy_pack(
    repo: &Repo,
    index: &mut Index,
    p: &PackRow,
    blobs: &[BlobRow],
    open: &mut [Option<PackWriter>; 2],
    out: &mut Repacked,
) -> Result<()> {
    let file = repo.open_pack(&p.id)?;
    let span = |b: &BlobRow| (b.offset, b.stored_len);
    for run in reader::runs(blobs, span) {
        let (buf, start) = reader::read_run(&file, run, span)?;
        for b in run {
            let s = (b.offset - start) as usize;
            let stored = &buf[s..s + b.stored_len as usize];
            let loc = BlobLocation {
                pack: p.id,
                offset: b.offset,
                stored_len: b.stored_len,
                raw_len: b.raw_len,
                compression: b.compression,
            };
            // Verified before copying: a damaged blob is never spread.
            repo.decode_with(b.kind, |d| reader::decode_blob(stored, &b.id, &loc, d))?;
            let slot = &mut open[b.kind as usize];
            if slot.is_none() {
                *slot = Some(repo.pack_writer(b.kind)?);
            }
            if let Some(w) = slot.as_mut() {
                w.add(b.id, b.raw_len, b.compression, stored)?;
                out.blobs_copied += 1;
                if w.size() >= repo.config().pack_target_size {
                    if let Some(w) = slot.take() {
                        seal(repo, index, w, out)?;
                    }
                }
            }
        }
    }
    Ok(())
}

/// GC-1: the pack is durable under its final name, then indexed (INV-2).
fn seal(repo: &Repo, index: &mut Index, w: PackWriter, out: &mut Repacked) -> Result<()> {
    let sealed = w.finish(&**repo.store())?;
    index.add_pack(&sealed)?;
    out.packs_written += 1;
    out.bytes_written += sealed.size;
    Ok(())
}
