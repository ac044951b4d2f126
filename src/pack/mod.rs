//! Pack files (format-spec/pack.md): the byte layout, a writer that seals
//! packs durably (INV-1, INV-2), and readers for trailers and blobs.

pub mod format;
pub mod pad;
pub mod reader;
pub mod writer;

pub use format::PackEntry;
