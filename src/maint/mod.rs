//! Maintenance: retention (`forget`, `tag`, `rewrite`), garbage
//! collection (`gc`), following format-spec/gc.md, `check` and `repair`
//! (format-spec/check.md).

pub mod check;
pub mod forget;
pub mod gc;
mod mark;
pub mod plan;
mod repack;
pub mod repair;
pub mod rewrite;
pub mod tag;
pub mod vanished;
