//! The distinct blobs of one source's snapshots, reference counted (issue
//! 27; format-spec/repository.md "Status rows (local)"): each blob's row in
//! `refs` counts the references to it from the source's counted rows (a
//! root tree) and from the trees counted for it (a subtree, a part of a
//! split tree, a file's content), each edge as often as it occurs. A blob
//! adds its raw and stored bytes to the source's totals when its first
//! reference comes and takes them away with its last; a tree's children
//! get their references when its first reference as a tree comes, and
//! lose them with its last. So a new snapshot costs its trees not counted
//! before, and a forgotten one the trees only it had: a union of blobs can
//! now lose one without counting every snapshot again.

use crate::error::{Error, Result};
use crate::id::BlobId;
use crate::read::BlobReader;
use crate::snapshot::tree::EntryKind;
use rusqlite::{Connection, OptionalExtension, params};
use std::collections::HashMap;

/// Raw, stored and data bytes of a source's distinct blobs, and the bytes
/// inline in its distinct trees.
#[derive(Clone, Copy, Default)]
pub(super) struct Totals {
    /// Logical bytes of the rows counted.
    pub logical: u64,
    pub raw: u64,
    pub stored: u64,
    pub data_raw: u64,
    pub inline: u64,
}

impl Totals {
    pub(super) fn load(tx: &Connection, name: &str) -> Result<Totals> {
        Ok(tx
            .query_row(
                "SELECT logical, raw, stored, data_raw, inline_bytes FROM totals WHERE source = ?1",
                [name],
                |r| {
                    Ok(Totals {
                        logical: to_u(r.get(0)?),
                        raw: to_u(r.get(1)?),
                        stored: to_u(r.get(2)?),
                        data_raw: to_u(r.get(3)?),
                        inline: to_u(r.get(4)?),
                    })
                },
            )
            .optional()?
            .unwrap_or_default())
    }

    pub(super) fn save(&self, tx: &Connection, name: &str) -> Result<()> {
        tx.prepare_cached(
            "INSERT OR REPLACE INTO totals(source, logical, raw, stored, data_raw, inline_bytes)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?
        .execute(params![
            name,
            to_i(self.logical),
            to_i(self.raw),
            to_i(self.stored),
            to_i(self.data_raw),
            to_i(self.inline)
        ])?;
        Ok(())
    }
}

fn to_i(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn to_u(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// `a - b`, or an error: the counts disagree with the trees (the caller
/// counts the source again).
fn minus(a: u64, b: u64, what: &str) -> Result<u64> {
    a.checked_sub(b)
        .ok_or_else(|| Error::Internal(format!("status: {what} below zero")))
}

/// One blob's row for a source.
#[derive(Clone, Copy, Default)]
struct Ref {
    /// References from the source's counted rows and trees.
    n: i64,
    /// Of those, the references as a tree (a row's root, a subtree).
    t: i64,
    /// A tree's logical bytes (while `t > 0`).
    logical: u64,
    raw: u64,
    stored: u64,
    /// Its raw bytes went to `data_raw` (its first reference was a file's).
    data: bool,
}

/// A source's references and totals while rows are counted or dropped:
/// the table `refs`, or, when nothing of the source is counted yet (its
/// first status, or counted again), a map written to the table once the
/// walk is done (a statement per blob would cost ten times the walk when
/// every snapshot is walked).
pub(super) struct Counter<'c, 'r> {
    tx: &'c Connection,
    name: &'c str,
    reader: &'c BlobReader<'r>,
    mem: Option<HashMap<BlobId, Ref>>,
    pub totals: Totals,
}

impl<'c, 'r> Counter<'c, 'r> {
    pub(super) fn new(
        tx: &'c Connection,
        reader: &'c BlobReader<'r>,
        name: &'c str,
    ) -> Result<Self> {
        let any = tx
            .prepare_cached("SELECT 1 FROM refs WHERE source = ?1 LIMIT 1")?
            .exists([name])?;
        Ok(Counter {
            tx,
            name,
            reader,
            mem: (!any).then(HashMap::new),
            totals: Totals::load(tx, name)?,
        })
    }

    fn get(&mut self, id: &BlobId) -> Result<Option<Ref>> {
        if let Some(m) = &self.mem {
            return Ok(m.get(id).copied());
        }
        Ok(self
            .tx
            .prepare_cached(
                "SELECT n, t, logical, raw, stored, data FROM refs WHERE source = ?1 AND blob = ?2",
            )?
            .query_row(params![self.name, &id.0[..]], |r| {
                Ok(Ref {
                    n: r.get(0)?,
                    t: r.get(1)?,
                    logical: to_u(r.get(2)?),
                    raw: to_u(r.get(3)?),
                    stored: to_u(r.get(4)?),
                    data: r.get(5)?,
                })
            })
            .optional()?)
    }

    /// Save `r` as blob `id`'s row, or remove the row when nothing
    /// references it any more (its bytes leave the totals).
    fn put(&mut self, id: &BlobId, r: Ref) -> Result<()> {
        if r.n <= 0 {
            let t = &mut self.totals;
            t.raw = minus(t.raw, r.raw, "raw bytes")?;
            t.stored = minus(t.stored, r.stored, "stored bytes")?;
            if r.data {
                t.data_raw = minus(t.data_raw, r.raw, "data bytes")?;
            }
            match &mut self.mem {
                Some(m) => {
                    m.remove(id);
                }
                None => {
                    self.tx
                        .prepare_cached("DELETE FROM refs WHERE source = ?1 AND blob = ?2")?
                        .execute(params![self.name, &id.0[..]])?;
                }
            }
            return Ok(());
        }
        match &mut self.mem {
            Some(m) => {
                m.insert(*id, r);
            }
            None => insert(self.tx, self.name, id, &r)?,
        }
        Ok(())
    }

    /// A row for blob `id`, referenced for the first time: its bytes (from
    /// the index) go to the totals.
    fn first(&mut self, id: &BlobId, data: bool) -> Result<Ref> {
        let l = self.reader.locate(id)?.ok_or_else(|| Error::MissingBlob {
            blob: id.to_hex(),
            file: "(status)".into(),
        })?;
        let (raw, stored) = (u64::from(l.raw_len), u64::from(l.stored_len));
        let t = &mut self.totals;
        t.raw += raw;
        t.stored += stored;
        if data {
            t.data_raw += raw;
        }
        Ok(Ref {
            raw,
            stored,
            data,
            ..Ref::default()
        })
    }

    /// One more reference to blob `id` as a part or a file's content.
    fn add_leaf(&mut self, id: &BlobId, data: bool) -> Result<()> {
        if self.mem.is_none() {
            // one statement for a blob already counted (most of them)
            let n: i64 = self
                .tx
                .prepare_cached(
                    "INSERT INTO refs(source, blob, n, t, logical, raw, stored, data)
                     VALUES (?1, ?2, 1, 0, 0, 0, 0, ?3)
                     ON CONFLICT(source, blob) DO UPDATE SET n = n + 1 RETURNING n",
                )?
                .query_row(params![self.name, &id.0[..], data], |r| r.get(0))?;
            if n == 1 {
                let r = Ref {
                    n: 1,
                    ..self.first(id, data)?
                };
                self.put(id, r)?;
            }
            return Ok(());
        }
        let r = match self.get(id)? {
            Some(r) => r,
            None => self.first(id, data)?,
        };
        self.put(id, Ref { n: r.n + 1, ..r })
    }

    /// One reference less to blob `id` as a part or a file's content.
    fn drop_leaf(&mut self, id: &BlobId) -> Result<()> {
        let r = self.get(id)?.ok_or_else(|| unknown(id))?;
        self.put(id, Ref { n: r.n - 1, ..r })
    }

    /// One more reference to tree `id` (a row's root, a subtree); its
    /// logical bytes. Its first as a tree gives its children theirs.
    pub(super) fn add_tree(&mut self, id: &BlobId, depth: usize) -> Result<u64> {
        let mut r = match self.get(id)? {
            Some(r) => r,
            None => self.first(id, false)?,
        };
        if r.t == 0 {
            r.logical = self.children(id, depth, true)?;
        }
        r.n += 1;
        r.t += 1;
        let logical = r.logical;
        self.put(id, r)?;
        Ok(logical)
    }

    /// One reference less to tree `id`; its last as a tree takes its
    /// children's away.
    pub(super) fn drop_tree(&mut self, id: &BlobId, depth: usize) -> Result<()> {
        let mut r = self.get(id)?.ok_or_else(|| unknown(id))?;
        if r.t <= 0 {
            return Err(unknown(id));
        }
        if r.t == 1 {
            self.children(id, depth, false)?;
            r.logical = 0;
        }
        r.n -= 1;
        r.t -= 1;
        self.put(id, r)
    }

    /// Add (`add`) or drop a reference to each child of tree `id`, and its
    /// inline bytes; its logical bytes.
    fn children(&mut self, id: &BlobId, depth: usize, add: bool) -> Result<u64> {
        let l = self.reader.listing(id)?;
        for p in l.part_ids() {
            if add {
                self.add_leaf(&p, false)?;
            } else {
                self.drop_leaf(&p)?;
            }
        }
        let mut logical = 0u64;
        for (k, e) in l.entries.iter().enumerate() {
            match e.kind() {
                EntryKind::File => {
                    logical += e.size;
                    if l.elided(k) {
                        let t = &mut self.totals;
                        t.inline = if add {
                            t.inline + e.size
                        } else {
                            minus(t.inline, e.size, "inline bytes")?
                        };
                    }
                    for c in &e.content {
                        if add {
                            self.add_leaf(c, true)?;
                        } else {
                            self.drop_leaf(c)?;
                        }
                    }
                }
                EntryKind::Dir => {
                    if let Some(sub) = &e.subtree {
                        crate::snapshot::tree::check_depth(
                            depth,
                            &format!("tree {}", sub.short()),
                        )?;
                        if add {
                            logical += self.add_tree(sub, depth + 1)?;
                        } else {
                            self.drop_tree(sub, depth + 1)?;
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(logical)
    }

    /// Write the map to the table, and the totals.
    pub(super) fn finish(self) -> Result<()> {
        self.totals.save(self.tx, self.name)?;
        let Some(m) = self.mem else { return Ok(()) };
        for (id, r) in &m {
            insert(self.tx, self.name, id, r)?;
        }
        Ok(())
    }
}

/// Save blob `id`'s row.
fn insert(tx: &Connection, name: &str, id: &BlobId, r: &Ref) -> Result<()> {
    tx.prepare_cached(
        "INSERT OR REPLACE INTO refs(source, blob, n, t, logical, raw, stored, data)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        name,
        &id.0[..],
        r.n,
        r.t,
        to_i(r.logical),
        to_i(r.raw),
        to_i(r.stored),
        r.data
    ])?;
    Ok(())
}

fn unknown(id: &BlobId) -> Error {
    Error::Internal(format!(
        "status: blob {} dropped more often than it was counted",
        id.short()
    ))
}
