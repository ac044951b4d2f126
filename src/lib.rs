//! strata: a content-addressed, deduplicating backup engine.
//!
//! Data flow, one module per stage:
//! `backup` (walk -> chunk -> hash -> dedup) -> `blob` (compress) ->
//! `pack` (seal, INV-1/INV-2) -> `index` (SQLite cache) -> `snapshot`
//! (trees and manifests, INV-4); and back: `restore` plans blobs by pack and
//! writes files. The on-disk format is specified in `format-spec/`.
#![warn(missing_docs)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod backend;
pub mod backup;
pub mod blob;
pub mod cache;
pub mod chunker;
pub mod crypto;
pub mod dict;
pub mod error;
pub mod events;
pub mod id;
pub mod index;
pub mod inspect;
pub mod killpoint;
pub mod maint;
pub mod object;
pub mod pack;
pub mod paths;
pub mod policy;
pub mod read;
pub mod repo;
pub mod restore;
pub mod session;
pub mod snapshot;
pub mod sync;
pub mod sys;

pub use error::{Error, Result};
pub use id::{BlobId, PackId, SnapshotId};
pub use repo::{InitOptions, Repo};
#[cfg(feature = "cli")]
pub mod cli;
pub mod mount;
#[cfg(test)]
mod tidy;
