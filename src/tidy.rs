//! Tidy checks over the source tree itself (rust-analyzer's `tidy` tests):
//! no function in `src/` is longer than [`MAX_FN_LINES`] lines, counted
//! from its `fn` line to its closing brace, comments included (split a
//! long function by phase, as `restore::run` was); and only the front end
//! (`src/cli/`, `src/main.rs`) prints: the library reports through
//! `events::Events`. `.ci/run` runs these tests on their own (`cargo test
//! --lib tidy::`) before the suite. The layering rules of `layers.toml`
//! are checked in [`layers`].

mod layers;

use std::path::{Path, PathBuf};

/// The longest a function may be, in lines.
const MAX_FN_LINES: usize = 100;

/// `src` with comments and the contents of string and char literals
/// blanked (newlines kept), so that braces and `fn` are only code's.
fn code_only(src: &str) -> Vec<u8> {
    let b = src.as_bytes();
    let mut out = b.to_vec();
    let mut i = 0;
    let blank = |out: &mut Vec<u8>, from: usize, to: usize| {
        for c in &mut out[from..to.min(b.len())] {
            if *c != b'\n' {
                *c = b' ';
            }
        }
    };
    while i < b.len() {
        let end = literal_end(b, i);
        if end > i {
            blank(&mut out, i, end);
            i = end;
        } else {
            i += 1;
        }
    }
    out
}

/// Where a comment, string or char literal starting at `i` ends (`i`
/// when none starts there).
fn literal_end(b: &[u8], i: usize) -> usize {
    let at = |k: usize| b.get(k).copied().unwrap_or(0);
    let ident_before = i > 0 && (at(i - 1).is_ascii_alphanumeric() || at(i - 1) == b'_');
    match (at(i), at(i + 1)) {
        (b'/', b'/') => b[i..]
            .iter()
            .position(|&c| c == b'\n')
            .map_or(b.len(), |p| i + p),
        (b'/', b'*') => block_comment_end(b, i),
        (b'r', b'"' | b'#') if !ident_before => raw_string_end(b, i + 1),
        (b'b', b'r') if !ident_before && matches!(at(i + 2), b'"' | b'#') => {
            raw_string_end(b, i + 2)
        }
        (b'"', _) => string_end(b, i + 1, b'"'),
        (b'\'', b'\\') => string_end(b, i + 1, b'\''),
        (b'\'', _) if at(i + 2) == b'\'' => i + 3,
        // a multi-byte char literal: ' then one UTF-8 scalar then '
        (b'\'', c) if c >= 0x80 => {
            let len = b[i + 1..].iter().take(5).position(|&c| c == b'\'');
            len.map_or(i + 1, |p| i + 2 + p)
        }
        _ => i,
    }
}

fn block_comment_end(b: &[u8], mut i: usize) -> usize {
    let mut depth = 0usize;
    while i + 1 < b.len() {
        match (b[i], b[i + 1]) {
            (b'/', b'*') => {
                depth += 1;
                i += 2;
            }
            (b'*', b'/') => {
                depth -= 1;
                i += 2;
                if depth == 0 {
                    return i;
                }
            }
            _ => i += 1,
        }
    }
    b.len()
}

/// `i` is at the `#`s or `"` after `r`.
fn raw_string_end(b: &[u8], i: usize) -> usize {
    let hashes = b[i..].iter().take_while(|&&c| c == b'#').count();
    if b.get(i + hashes) != Some(&b'"') {
        return i; // r#ident
    }
    let mut k = i + hashes + 1;
    while k < b.len() {
        if b[k] == b'"'
            && b[k + 1..]
                .iter()
                .take(hashes)
                .filter(|&&c| c == b'#')
                .count()
                == hashes
        {
            return k + 1 + hashes;
        }
        k += 1;
    }
    b.len()
}

/// `i` is just past the opening quote.
fn string_end(b: &[u8], mut i: usize, quote: u8) -> usize {
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            c if c == quote => return i + 1,
            _ => i += 1,
        }
    }
    b.len()
}

/// Every function with a body in `code` (see [`code_only`]): its name,
/// the line of `fn` and the line of its closing brace (1-based).
fn functions(code: &[u8]) -> Vec<(String, usize, usize)> {
    let line_of = |k: usize| code[..k].iter().filter(|&&c| c == b'\n').count() + 1;
    let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(p) = code[i..].windows(3).position(|w| w == b"fn ") {
        let at = i + p;
        i = at + 3;
        if at > 0 && word(code[at - 1]) {
            continue;
        }
        let name_start = i + code[i..]
            .iter()
            .take_while(|c| c.is_ascii_whitespace())
            .count();
        let name: String = code[name_start..]
            .iter()
            .take_while(|&&c| word(c))
            .map(|&c| c as char)
            .collect();
        if name.is_empty() {
            continue;
        }
        let Some(open) = code[name_start..]
            .iter()
            .position(|&c| c == b'{' || c == b';')
        else {
            continue;
        };
        let open = name_start + open;
        if code[open] == b';' {
            continue;
        }
        if let Some(close) = matching_brace(code, open) {
            out.push((name, line_of(at), line_of(close)));
        }
    }
    out
}

fn matching_brace(code: &[u8], open: usize) -> Option<usize> {
    let mut depth = 0usize;
    for (k, &c) in code.iter().enumerate().skip(open) {
        match c {
            b'{' => depth += 1,
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(k);
                }
            }
            _ => {}
        }
    }
    None
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn no_function_over_100_lines() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    assert!(files.len() > 50, "found only {} files in src/", files.len());
    let mut long = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        for (name, from, to) in functions(&code_only(&text)) {
            let lines = to - from + 1;
            if lines > MAX_FN_LINES {
                let rel = f.strip_prefix(&src).unwrap_or(f);
                long.push(format!(
                    "src/{}:{from} `{name}`: {lines} lines",
                    rel.display()
                ));
            }
        }
    }
    assert!(
        long.is_empty(),
        "functions over {MAX_FN_LINES} lines (split them by phase):\n{}",
        long.join("\n")
    );
}

#[test]
fn only_the_front_end_prints() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut found = Vec::new();
    for f in &files {
        let rel = f.strip_prefix(&src).unwrap_or(f);
        if rel.starts_with("cli") || rel == Path::new("main.rs") {
            continue;
        }
        let code = code_only(&std::fs::read_to_string(f).unwrap());
        for (n, line) in code.split(|&c| c == b'\n').enumerate() {
            let line = String::from_utf8_lossy(line);
            for mac in ["println!", "eprintln!", "print!", "eprint!", "dbg!"] {
                let printed = line
                    .match_indices(mac)
                    .any(|(i, _)| i == 0 || !line.as_bytes()[i - 1].is_ascii_alphanumeric());
                if printed {
                    found.push(format!("src/{}:{}: {mac}", rel.display(), n + 1));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "the library prints (report through events::Events instead):\n{}",
        found.join("\n")
    );
}

#[test]
fn counts_lines_from_fn_to_its_closing_brace() {
    let text = "/// doc\nfn a() {\n    let s = \"}\"; // }\n    let c = '}';\n    /* { */\n}\n\
                trait T { fn decl(&self); }\nfn b<'x>(v: &'x str) -> impl Fn() + 'x {\n    let r = r#\"{\"#;\n    move || {}\n}\n";
    let got = functions(&code_only(text));
    assert_eq!(got, vec![("a".to_string(), 2, 6), ("b".to_string(), 8, 11)]);
}
