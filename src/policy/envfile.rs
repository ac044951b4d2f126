//! The policy's `environment_file` (README "Backup policy"): what a
//! scheduled run needs from an environment that cron and systemd do not
//! give it (object store credentials, `PGPASSWORD`, …). One `NAME=value`
//! per line; blank lines and lines starting with `#` are skipped; an
//! `export ` prefix and one pair of matching quotes around the value are
//! removed. The file holds secrets, so it must belong to this user (or
//! root) and be readable by nobody else (mode 0600 or stricter), else it is
//! refused, as ssh refuses a private key others can read.

use crate::error::{Error, IoContext, Result};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// The variables of the environment file at `path`.
pub fn load(path: &Path) -> Result<Vec<(String, String)>> {
    let bad = |why: String| Error::Invalid(format!("{}: {why}", path.display()));
    let meta = std::fs::metadata(path).at(path)?;
    if meta.mode() & 0o077 != 0 {
        return Err(bad(format!(
            "mode {:o} lets others read it; it holds secrets: chmod 600 it",
            meta.mode() & 0o777
        )));
    }
    let me = rustix::process::geteuid().as_raw();
    if meta.uid() != me && meta.uid() != 0 {
        return Err(bad(format!(
            "belongs to user {}, not to this user ({me}) or root",
            meta.uid()
        )));
    }
    let text = std::fs::read_to_string(path).at(path)?;
    parse(&text).map_err(|(line, why)| bad(format!("line {line}: {why}")))
}

/// Parse the file's text; `Err((line, why))`.
pub fn parse(text: &str) -> std::result::Result<Vec<(String, String)>, (usize, String)> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line).trim_start();
        let Some((name, value)) = line.split_once('=') else {
            return Err((i + 1, "expected NAME=value".into()));
        };
        let name = name.trim();
        let valid = !name.is_empty()
            && !name.starts_with(|c: char| c.is_ascii_digit())
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !valid {
            return Err((i + 1, format!("{name:?} is not a variable name")));
        }
        let value = value.trim();
        let unquoted = ['"', '\'']
            .iter()
            .find_map(|q| value.strip_prefix(*q)?.strip_suffix(*q))
            .unwrap_or(value);
        out.push((name.to_string(), unquoted.to_string()));
    }
    Ok(out)
}

/// What `schedule --install` writes when the file does not exist: the
/// variables a scheduled run usually needs, commented out.
pub const TEMPLATE: &str = "\
# strata's environment for scheduled runs (strata.toml environment_file).
# NAME=value per line; keep this file mode 0600.
# Object storage (s3://):
#AWS_ACCESS_KEY_ID=
#AWS_SECRET_ACCESS_KEY=
#AWS_DEFAULT_REGION=us-east-1
#AWS_ENDPOINT=https://s3.example.com
# Google Cloud Storage (gs://):
#GOOGLE_SERVICE_ACCOUNT=/etc/strata/gcs.json
# Azure (az://):
#AZURE_STORAGE_ACCOUNT_NAME=
#AZURE_STORAGE_ACCOUNT_KEY=
# Database sources:
#PGPASSWORD=
#REDISCLI_AUTH=
";

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn lines_comments_exports_and_quotes() {
        let v =
            parse("# c\n\nAWS_ACCESS_KEY_ID=abc\nexport B = \"x y\"\nC='q'\nD=\nE=a=b\n").unwrap();
        let want = [
            ("AWS_ACCESS_KEY_ID", "abc"),
            ("B", "x y"),
            ("C", "q"),
            ("D", ""),
            ("E", "a=b"),
        ];
        assert_eq!(
            v,
            want.iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect::<Vec<_>>()
        );
        assert_eq!(parse("novalue\n").unwrap_err().0, 1);
        assert_eq!(parse("A=1\n1X=2\n").unwrap_err().0, 2);
        assert!(parse(TEMPLATE).unwrap().is_empty());
    }

    #[test]
    fn a_file_others_can_read_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("env");
        std::fs::write(&p, "A=1\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = load(&p).unwrap_err().to_string();
        assert!(e.contains("chmod 600"), "{e}");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(load(&p).unwrap(), vec![("A".to_string(), "1".to_string())]);
    }
}
