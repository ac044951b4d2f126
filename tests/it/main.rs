//! The integration tests: one test binary (`cargo test --test it`), one
//! module per file, so the library and the cloud clients are linked once
//! rather than once per file (matklad, "Delete Cargo Integration Tests").
//! Run one file's tests with `cargo test --test it battery_kill::`; a test
//! that re-runs itself in a child process names itself `module::name`.
//! The helpers are in `tests/support` (one of each), the repository model
//! shared with the fuzz target `repo_model` in `tests/model`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../model/mod.rs"]
mod model;
#[path = "../support/mod.rs"]
mod support;

mod alerts;
mod backend;
mod bad_input;
mod battery_damage;
mod battery_enospc;
mod battery_faults;
mod battery_flips;
mod battery_kill;
mod battery_sources;
mod battery_traversal;
mod check;
mod chunker_golden;
mod cli;
mod crash;
mod decoders;
mod dedup;
mod deep_trees;
mod drill;
mod encryption;
mod gc;
mod gc_concurrency;
mod gc_crash;
mod heal;
mod hostile;
mod incremental;
mod inline;
mod inspect;
mod mount;
mod object_lock;
mod paths;
mod policy;
mod recover;
mod remote;
mod repair;
mod repo_model;
mod restore;
mod retention_year;
mod roundtrip;
mod s3_faults;
mod sync;
mod vectors;
mod write_only;
