//! Maintenance: retention (`forget`, `tag`, `rewrite`) and garbage
//! collection (`gc`), following format-spec/gc.md.

pub mod forget;
pub mod gc;
mod mark;
pub mod plan;
mod repack;
pub mod rewrite;
pub mod tag;
