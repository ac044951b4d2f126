//! Paths as a snapshot stores them (format-spec/objects.md "Layouts"): absolute, `/`
//! separated byte strings, e.g. `/srv/bridge/events/1.json`. This module
//! holds the three things every command does with them: print one
//! ([`escape`], reversible, also in `--json`), take one back from the command
//! line ([`unescape`], [`components`]), and match one against glob patterns
//! with restic's rules ([`Patterns`]).

use crate::error::{Error, Result};
use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use std::fmt::Write as _;

/// A stored path (or name) as text: valid UTF-8 as is, except that a
/// backslash prints as `\\`, and each byte of invalid UTF-8 and each ASCII
/// control character (newline, tab, DEL...) as `\xHH`. Plain names print
/// unchanged; no two byte strings print alike; [`unescape`] reverses it.
pub fn escape(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                c if c.is_ascii_control() => {
                    let _ = write!(out, "\\x{:02x}", c as u32);
                }
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out
}

/// Does `bytes` print as something other than itself?
pub fn needs_escape(bytes: &[u8]) -> bool {
    match std::str::from_utf8(bytes) {
        Ok(s) => s.chars().any(|c| c == '\\' || c.is_ascii_control()),
        Err(_) => true,
    }
}

/// Reverse [`escape`]: `\\` is a backslash, `\xHH` one byte; any other
/// backslash sequence is an error.
pub fn unescape(s: &[u8]) -> Result<Vec<u8>> {
    let bad = || {
        Error::Invalid(format!(
            "{:?}: a backslash must start \\\\ or \\xHH (see `strata help ls`)",
            String::from_utf8_lossy(s)
        ))
    };
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] != b'\\' {
            out.push(s[i]);
            i += 1;
            continue;
        }
        match s.get(i + 1) {
            Some(b'\\') => {
                out.push(b'\\');
                i += 2;
            }
            Some(b'x') => {
                let hex = s.get(i + 2..i + 4).ok_or_else(bad)?;
                let hex = std::str::from_utf8(hex).map_err(|_| bad())?;
                out.push(u8::from_str_radix(hex, 16).map_err(|_| bad())?);
                i += 4;
            }
            _ => return Err(bad()),
        }
    }
    Ok(out)
}

/// The components of a path argument (`/srv/bridge`, `srv/bridge/` and
/// `/` alike; `.` components dropped, `..` refused): relative to the
/// snapshot root.
pub fn components(path: &[u8]) -> Result<Vec<&[u8]>> {
    let mut out = Vec::new();
    for c in path.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                return Err(Error::Invalid(format!(
                    "{:?}: `..` is not allowed in a path inside a snapshot",
                    String::from_utf8_lossy(path)
                )));
            }
            c => out.push(c),
        }
    }
    Ok(out)
}

/// The ways a path argument may name a stored path: itself, and if it
/// holds backslash escapes (as `ls` and `find` print them), the bytes they
/// stand for. Callers try them in order and take the first that exists.
pub fn spellings(arg: &[u8]) -> Vec<Vec<u8>> {
    let mut v = vec![arg.to_vec()];
    if arg.contains(&b'\\') {
        if let Ok(u) = unescape(arg) {
            if u != arg {
                v.push(u);
            }
        }
    }
    v
}

/// Glob patterns matched against stored paths, with restic's rules
/// (README "Paths, names and patterns"):
///
/// - `*` and `?` and `[...]` never match `/`; `**` as a whole component
///   matches any number of components (zero included).
/// - A pattern that starts with `/` is anchored at the snapshot root; any
///   other pattern may match at any depth (as if it started with `/**/`).
/// - A pattern matches a path if it matches the path itself or one of its
///   directories, so excluding `/srv/cache` excludes everything below it.
/// - `\` escapes the next character; a trailing `/` is ignored.
#[derive(Clone, Debug)]
pub struct Patterns {
    /// Each pattern, and each pattern followed by `/**`.
    set: GlobSet,
    /// Each pattern alone.
    own: GlobSet,
    source: Vec<String>,
}

impl Default for Patterns {
    fn default() -> Self {
        Patterns {
            set: GlobSet::empty(),
            own: GlobSet::empty(),
            source: Vec::new(),
        }
    }
}

impl Patterns {
    /// Compile `pats`; a bad pattern is an error naming it.
    pub fn new<S: AsRef<str>>(pats: &[S]) -> Result<Patterns> {
        let (mut b, mut own) = (GlobSetBuilder::new(), GlobSetBuilder::new());
        let mut source = Vec::new();
        for p in pats {
            let p = p.as_ref();
            let trimmed = p.trim_end_matches('/');
            if trimmed.is_empty() && !p.is_empty() {
                // `/`: the root, so everything
                source.push(p.to_string());
                b.add(glob("/**", p)?);
                own.add(glob("/**", p)?);
                continue;
            }
            if trimmed.is_empty() {
                return Err(Error::Invalid("empty glob pattern".into()));
            }
            let base = if trimmed.starts_with('/') {
                trimmed.to_string()
            } else {
                format!("/**/{trimmed}")
            };
            b.add(glob(&base, p)?);
            b.add(glob(&format!("{base}/**"), p)?);
            own.add(glob(&base, p)?);
            source.push(p.to_string());
        }
        let err = |e: globset::Error| Error::Invalid(format!("bad glob pattern: {e}"));
        Ok(Patterns {
            set: b.build().map_err(err)?,
            own: own.build().map_err(err)?,
            source,
        })
    }

    /// No patterns at all?
    pub fn is_empty(&self) -> bool {
        self.source.is_empty()
    }

    /// The patterns as given.
    pub fn source(&self) -> &[String] {
        &self.source
    }

    /// Does a pattern match the stored path `path` (absolute: it starts
    /// with `/`) or one of its directories?
    pub fn matches(&self, path: &[u8]) -> bool {
        use std::os::unix::ffi::OsStrExt;
        !self.source.is_empty() && self.set.is_match(std::ffi::OsStr::from_bytes(path))
    }

    /// Does a pattern match `path` itself (not only a directory above it)?
    /// What `find` lists.
    pub fn matches_itself(&self, path: &[u8]) -> bool {
        use std::os::unix::ffi::OsStrExt;
        !self.source.is_empty() && self.own.is_match(std::ffi::OsStr::from_bytes(path))
    }

    /// Do the patterns look at names only (no `/` but a trailing one)? Then
    /// whether a path matches depends on its last component alone.
    pub fn names_only(&self) -> bool {
        self.source
            .iter()
            .all(|p| !p.trim_end_matches('/').contains('/') && !p.is_empty())
    }
}

fn glob(g: &str, given: &str) -> Result<globset::Glob> {
    GlobBuilder::new(g)
        .literal_separator(true)
        .backslash_escape(true)
        .empty_alternates(true)
        .build()
        .map_err(|e| Error::Invalid(format!("bad glob pattern {given:?}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pats: &[&str], path: &str) -> bool {
        Patterns::new(pats).unwrap().matches(path.as_bytes())
    }

    #[test]
    fn star_stays_in_one_component() {
        assert!(m(&["/srv/*.log"], "/srv/a.log"));
        assert!(!m(&["/srv/*.log"], "/srv/x/a.log"));
        assert!(m(&["/srv/*"], "/srv/x/a.log")); // /srv/x matches: below it too
        assert!(!m(&["/s*/a.log"], "/srv/x/a.log"));
        assert!(m(&["/srv/?.log"], "/srv/a.log"));
        assert!(!m(&["/srv/?.log"], "/srv/ab.log"));
        assert!(m(&["/srv/[ab].log"], "/srv/b.log"));
    }

    #[test]
    fn double_star_crosses_components() {
        assert!(m(&["/srv/**/a.log"], "/srv/a.log"));
        assert!(m(&["/srv/**/a.log"], "/srv/x/y/a.log"));
        assert!(!m(&["/srv/**/a.log"], "/etc/a.log"));
        assert!(m(&["/srv/**"], "/srv/x/y"));
        assert!(m(&["**/cache"], "/var/lib/cache/x"));
    }

    #[test]
    fn anchoring() {
        assert!(m(&["*.log"], "/a.log"));
        assert!(m(&["*.log"], "/srv/x/a.log"));
        assert!(m(&["x/a.log"], "/srv/x/a.log"));
        assert!(!m(&["/x/a.log"], "/srv/x/a.log"));
        assert!(m(&["/srv"], "/srv/x/a.log"));
        assert!(!m(&["/srv"], "/srvx"));
        assert!(m(&["cache/"], "/home/u/cache/f"));
        assert!(!m(&["cache"], "/home/u/cached"));
        assert!(m(&["/"], "/anything"));
        assert!(!m(&[], "/anything"));
    }

    #[test]
    fn itself_or_below() {
        let p = Patterns::new(&["/srv/*.d", "cache"]).unwrap();
        assert!(p.matches(b"/srv/x.d/f") && !p.matches_itself(b"/srv/x.d/f"));
        assert!(p.matches_itself(b"/srv/x.d"));
        assert!(p.matches_itself(b"/a/cache") && !p.matches_itself(b"/a/cache/b"));
        assert!(!p.names_only());
        assert!(Patterns::new(&["*.log", "cache/"]).unwrap().names_only());
    }

    #[test]
    fn escapes_and_odd_bytes() {
        assert!(m(&["/a\\*b"], "/a*b"));
        assert!(!m(&["/a\\*b"], "/axb"));
        assert!(m(&["*.bin"], "/d/\u{ff}\u{fe}.bin"));
        let p = Patterns::new(&["/d/*"]).unwrap();
        assert!(p.matches(b"/d/\xff\xfe"));
        assert!(Patterns::new(&["/[a"]).is_err());
        assert!(Patterns::new(&[""]).is_err());
    }

    #[test]
    fn escaping_round_trips() {
        for b in [
            &b"plain.txt"[..],
            b"caf\xc3\xa9",
            b"\xff\xfe",
            b"a\\b",
            b"line\nbreak",
            b"\\x41",
            b"\x7f\x00",
        ] {
            let s = escape(b);
            assert!(!s.contains('\n'));
            assert_eq!(unescape(s.as_bytes()).unwrap(), b, "{s}");
            assert_eq!(needs_escape(b), s.as_bytes() != b);
        }
        assert_eq!(escape(b"\xffa\\"), "\\xffa\\\\");
        assert_eq!(escape("café".as_bytes()), "café");
        assert!(unescape(b"a\\q").is_err());
        assert!(unescape(b"a\\x4").is_err());
        assert!(unescape(b"a\\").is_err());
    }

    #[test]
    fn argument_components() {
        assert_eq!(
            components(b"/srv//bridge/./x/").unwrap(),
            vec![&b"srv"[..], b"bridge", b"x"]
        );
        assert!(components(b"/").unwrap().is_empty());
        assert!(components(b"/srv/../etc").is_err());
        assert_eq!(
            spellings(b"a\\xffb"),
            vec![b"a\\xffb".to_vec(), b"a\xffb".to_vec()]
        );
        assert_eq!(spellings(b"plain"), vec![b"plain".to_vec()]);
    }
}
