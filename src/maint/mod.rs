//! Maintenance: retention (`forget`, `tag`, `rewrite`), garbage
//! collection (`gc`), following format-spec/gc.md, and `check`
//! (format-spec/check.md).

pub mod check;
pub mod forget;
pub mod gc;
mod mark;
pub mod plan;
mod repack;
pub mod rewrite;
pub mod tag;
