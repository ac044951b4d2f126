//! Writing to stdout without panicking on a closed pipe: errors come back as
//! `Error::Io`, and `cli::main` exits 0 on `BrokenPipe`.

use crate::error::{IoContext, Result};
use std::io::Write;
use std::path::Path;

/// Write one line to stdout.
pub fn line(s: &str) -> Result<()> {
    let mut o = std::io::stdout().lock();
    writeln!(o, "{s}").at(Path::new("<stdout>"))
}

/// Write raw bytes to stdout.
pub fn bytes(b: &[u8]) -> Result<()> {
    let mut o = std::io::stdout().lock();
    o.write_all(b)
        .and_then(|_| o.flush())
        .at(Path::new("<stdout>"))
}

/// Human-readable byte count.
pub fn size(n: u64) -> String {
    const U: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i < U.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", U[i])
    }
}
