//! The layering rules of `layers.toml` (ARCHITECTURE.md "Layers"), checked
//! on the source text: a module imports only from its own layer and the
//! layers below it, no two modules import each other (also within a layer;
//! a child using its parent's items is not a cycle), and only the modules
//! of the allow-list use `std::fs`.
//! Imports are the paths a file names: `crate::a::b`, `super::x`, and
//! `child::y` for a module it declares; `crate::Name` of a re-export in
//! lib.rs counts as the module it comes from. Test modules are skipped.

use super::{code_only, rust_files};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

#[derive(serde::Deserialize)]
struct LayerFile {
    layers: Vec<String>,
    fs: FsRules,
}

#[derive(serde::Deserialize)]
struct FsRules {
    allow: Vec<String>,
}

/// One file of `src/` as the rules see it.
struct Module {
    /// `repo::keys` for src/repo/keys.rs, `repo` for src/repo/mod.rs.
    path: String,
    /// Where it is, for messages.
    file: String,
    /// Its code without comments, strings and test module.
    code: String,
}

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn layer_file() -> LayerFile {
    let p = manifest_dir().join("layers.toml");
    let text = std::fs::read_to_string(&p).unwrap();
    toml::from_str(&text).unwrap()
}

/// Every module of `src/` but the crate roots and the tidy checks.
fn modules() -> Vec<Module> {
    let src = manifest_dir().join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let rel = f.strip_prefix(&src).unwrap().to_string_lossy().into_owned();
        let path = module_path(&rel);
        let skip = path.is_empty()
            || path == "main"
            || path.split("::").next() == Some("tidy")
            || path.rsplit("::").next() == Some("tests");
        if skip {
            continue;
        }
        let text = std::fs::read_to_string(&f).unwrap();
        let text = match text.find("#[cfg(test)]\nmod tests") {
            Some(i) => &text[..i],
            None => &text[..],
        };
        let code = String::from_utf8(code_only(text)).unwrap();
        out.push(Module {
            path,
            file: format!("src/{rel}"),
            code,
        });
    }
    out
}

/// `repo/keys.rs` -> `repo::keys`; `repo/mod.rs` -> `repo`; `lib.rs` -> ``.
fn module_path(rel: &str) -> String {
    let rel = rel.trim_end_matches(".rs");
    let mut segs: Vec<&str> = rel.split('/').collect();
    if matches!(segs.last(), Some(&"mod") | Some(&"lib")) {
        segs.pop();
    }
    segs.join("::")
}

fn is_word(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The paths of a `{ ... }` use group starting just after `{` at `at`:
/// each item's segments (nested groups expanded).
fn group(code: &str, at: usize) -> Vec<Vec<String>> {
    let bytes = code.as_bytes();
    let (mut depth, mut end) = (1usize, at);
    while end < bytes.len() && depth > 0 {
        match bytes[end] {
            b'{' => depth += 1,
            b'}' => depth -= 1,
            _ => {}
        }
        end += 1;
    }
    let inner = &code[at..end.saturating_sub(1)];
    let mut items = Vec::new();
    let (mut d, mut start) = (0usize, 0usize);
    for (i, c) in inner.char_indices() {
        match c {
            '{' => d += 1,
            '}' => d = d.saturating_sub(1),
            ',' if d == 0 => {
                items.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(&inner[start..]);
    let mut out = Vec::new();
    for item in items {
        let item = item.trim();
        let (head, rest) = match item.find('{') {
            Some(i) => (&item[..i], Some(i)),
            None => (item, None),
        };
        let segs: Vec<String> = head
            .split("::")
            .map(|s| s.split_whitespace().next().unwrap_or("").to_string())
            .filter(|s| !s.is_empty())
            .collect();
        match rest {
            Some(i) => {
                let start = item.as_ptr() as usize - code.as_ptr() as usize + i + 1;
                for sub in group(code, start) {
                    out.push(segs.iter().cloned().chain(sub).collect());
                }
            }
            None if !segs.is_empty() => out.push(segs),
            None => {}
        }
    }
    out
}

/// The paths after each `prefix` (`crate::`, `super::`, `child::`) in
/// `code`, as segments: `crate::repo::Repo` -> `[repo, Repo]`.
fn paths_after(code: &str, prefix: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for (i, _) in code.match_indices(prefix) {
        let before = code[..i].chars().next_back();
        if before.is_some_and(|c| is_word(c) || c == ':') {
            continue;
        }
        let at = i + prefix.len();
        let rest = &code[at..];
        if rest.starts_with('{') {
            out.extend(group(code, at + 1));
            continue;
        }
        let mut segs = Vec::new();
        let mut r = rest;
        loop {
            let word: String = r.chars().take_while(|&c| is_word(c)).collect();
            if word.is_empty() {
                break;
            }
            r = &r[word.len()..];
            segs.push(word);
            if !r.starts_with("::") {
                break;
            }
            r = &r[2..];
            if r.starts_with('{') {
                // `prefix::a::b::{c, d::e}`: each item under `a::b`
                let open = code.len() - r.len() + 1;
                for sub in group(code, open) {
                    out.push(segs.iter().cloned().chain(sub).collect());
                }
                segs.clear();
                break;
            }
        }
        if !segs.is_empty() {
            out.push(segs);
        }
    }
    out
}

/// The modules `m` imports from: each path resolved to the longest module
/// of `known` it names (a re-export of lib.rs to the module it comes from).
fn imports(
    m: &Module,
    known: &BTreeSet<String>,
    root: &BTreeMap<String, String>,
) -> BTreeSet<String> {
    let me: Vec<String> = m.path.split("::").map(str::to_string).collect();
    let mut paths: Vec<Vec<String>> = paths_after(&m.code, "crate::");
    // `super::` from a.rs or a/mod.rs alike is the parent of module `a`
    let parent: Vec<String> = me[..me.len() - 1].to_vec();
    for p in paths_after(&m.code, "super::") {
        let mut base = parent.clone();
        let mut p = p.into_iter().peekable();
        while p.peek().map(String::as_str) == Some("super") {
            p.next();
            base.pop();
        }
        paths.push(base.into_iter().chain(p).collect());
    }
    for child in declared_children(&m.code) {
        for p in paths_after(&m.code, &format!("{child}::")) {
            let full = me.iter().cloned().chain([child.clone()]).chain(p).collect();
            paths.push(full);
        }
    }
    let mut out = BTreeSet::new();
    for p in paths {
        let p = match p.first().and_then(|h| root.get(h)) {
            Some(module) => module.split("::").map(str::to_string).collect(),
            None => p,
        };
        let found = (1..=p.len())
            .rev()
            .map(|n| p[..n].join("::"))
            .find(|c| known.contains(c));
        if let Some(t) = found {
            if t != m.path {
                out.insert(t);
            }
        }
    }
    out
}

/// The modules declared by `mod name;` in `code`.
fn declared_children(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in code.lines() {
        let l = line.trim();
        let l = l.strip_prefix("pub ").unwrap_or(l);
        let l = l.strip_prefix("pub(crate) ").unwrap_or(l);
        if let Some(name) = l.strip_prefix("mod ").and_then(|r| r.strip_suffix(';')) {
            out.push(name.trim().to_string());
        }
    }
    out
}

/// The names lib.rs re-exports (`pub use repo::{InitOptions, Repo};`), each
/// to its module.
fn root_reexports() -> BTreeMap<String, String> {
    let lib = std::fs::read_to_string(manifest_dir().join("src/lib.rs")).unwrap();
    let code = String::from_utf8(code_only(&lib)).unwrap();
    let mut out = BTreeMap::new();
    for stmt in code.split(';') {
        let Some(at) = stmt.find("pub use ") else {
            continue;
        };
        let text = format!("x::{}", &stmt[at + "pub use ".len()..]);
        for p in paths_after(&text, "x::") {
            if let Some(name) = p.last() {
                out.insert(name.clone(), p[..p.len() - 1].join("::"));
            }
        }
    }
    out
}

/// The layer of `module`: that of the longest name of `ranks` that is it
/// or a parent of it.
fn layer_of<'a>(module: &str, ranks: &'a BTreeMap<String, usize>) -> Option<(&'a str, usize)> {
    let segs: Vec<&str> = module.split("::").collect();
    (1..=segs.len()).rev().find_map(|n| {
        let name = segs[..n].join("::");
        ranks.get_key_value(&name).map(|(k, r)| (k.as_str(), *r))
    })
}

fn ranks(lf: &LayerFile) -> BTreeMap<String, usize> {
    let mut ranks = BTreeMap::new();
    for (i, line) in lf.layers.iter().enumerate() {
        for name in line.split_whitespace() {
            assert!(
                ranks.insert(name.to_string(), i).is_none(),
                "{name} listed twice"
            );
        }
    }
    ranks
}

#[test]
fn no_module_imports_from_a_layer_above_its_own() {
    let lf = layer_file();
    let ranks = ranks(&lf);
    let mods = modules();
    assert!(mods.len() > 50, "found only {} modules", mods.len());
    let known: BTreeSet<String> = mods.iter().map(|m| m.path.clone()).collect();
    let root = root_reexports();
    let mut bad = Vec::new();
    for m in &mods {
        let Some((unit, rank)) = layer_of(&m.path, &ranks) else {
            bad.push(format!(
                "{}: `{}` is in no layer of layers.toml",
                m.file, m.path
            ));
            continue;
        };
        for t in imports(m, &known, &root) {
            match layer_of(&t, &ranks) {
                Some((tu, tr)) if tr > rank => bad.push(format!(
                    "{}: `{}` (layer {rank}, {unit}) imports `{t}` (layer {tr}, {tu}) above it",
                    m.file, m.path
                )),
                _ => {}
            }
        }
    }
    assert!(
        bad.is_empty(),
        "imports against the layers of layers.toml (ARCHITECTURE.md \"Layers\"):\n{}",
        bad.join("\n")
    );
}

/// Whether `code` names `std::fs` (a path, or `fs` in a `use std::{…}`).
fn uses_std_fs(code: &str) -> bool {
    if code.match_indices("std::fs").any(|(i, _)| {
        let after = code[i + "std::fs".len()..].chars().next();
        !after.is_some_and(is_word)
    }) {
        return true;
    }
    paths_after(code, "std::")
        .iter()
        .any(|p| p.first().map(String::as_str) == Some("fs"))
}

#[test]
fn only_the_allowed_modules_use_std_fs() {
    let lf = layer_file();
    let allowed = |path: &str| {
        lf.fs.allow.iter().any(|a| match a.strip_suffix("::*") {
            Some(base) => path == base || path.starts_with(&format!("{base}::")),
            None => path == a,
        })
    };
    let mut bad = Vec::new();
    for m in modules() {
        if uses_std_fs(&m.code) && !allowed(&m.path) {
            bad.push(format!("{}: `{}` uses std::fs", m.file, m.path));
        }
    }
    assert!(
        bad.is_empty(),
        "std::fs outside the allow-list of layers.toml (repository files go through \
         Backend):\n{}",
        bad.join("\n")
    );
}

#[test]
fn reads_imports_as_the_compiler_does() {
    let code = "use crate::{a::{b, c::D}, e};\nuse crate::m::{n::O, P};\nuse super::f::G;\nlet x = crate::h::i(1);\n\
                mod k;\nuse k::L;\nfn f() { std::fs::read(p); }";
    let m = Module {
        path: "p::q".into(),
        file: "src/p/q.rs".into(),
        code: code.into(),
    };
    let known: BTreeSet<String> = ["a::b", "a::c", "e", "p::f", "h", "p::q::k", "m::n", "m"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let got: Vec<String> = imports(&m, &known, &BTreeMap::new()).into_iter().collect();
    assert_eq!(
        got,
        ["a::b", "a::c", "e", "h", "m", "m::n", "p::f", "p::q::k"]
    );
    let mut root = BTreeMap::new();
    root.insert("Repo".to_string(), "h".to_string());
    let m = Module {
        code: "use crate::Repo;".into(),
        ..m
    };
    let got: Vec<String> = imports(&m, &known, &root).into_iter().collect();
    assert_eq!(got, ["h"]);
    assert!(uses_std_fs(code));
    assert!(uses_std_fs("use std::{fs, io};"));
    assert!(!uses_std_fs(
        "use std::os::unix::fs::MetadataExt; rustix::fs::openat"
    ));
    assert_eq!(module_path("repo/mod.rs"), "repo");
    assert_eq!(module_path("repo/keys.rs"), "repo::keys");
}

/// The import cycles among the modules: strongly connected sets of more
/// than one module, where an import of a module's own parent (`super::x`
/// of an item of `mod.rs`) does not count.
fn cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    // Kosaraju: finish order on the graph, then components on its reverse.
    fn visit(
        v: &str,
        g: &BTreeMap<String, BTreeSet<String>>,
        seen: &mut BTreeSet<String>,
        out: &mut Vec<String>,
    ) {
        let mut stack = vec![(v.to_string(), false)];
        while let Some((n, done)) = stack.pop() {
            if done {
                out.push(n);
                continue;
            }
            if !seen.insert(n.clone()) {
                continue;
            }
            stack.push((n.clone(), true));
            for w in g.get(&n).into_iter().flatten() {
                if !seen.contains(w) {
                    stack.push((w.clone(), false));
                }
            }
        }
    }
    let mut order = Vec::new();
    let mut seen = BTreeSet::new();
    for v in graph.keys() {
        visit(v, graph, &mut seen, &mut order);
    }
    let mut rev: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (v, ws) in graph {
        for w in ws {
            rev.entry(w.clone()).or_default().insert(v.clone());
        }
    }
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for v in order.iter().rev() {
        if seen.contains(v) {
            continue;
        }
        let mut comp = Vec::new();
        visit(v, &rev, &mut seen, &mut comp);
        if comp.len() > 1 {
            comp.sort();
            out.push(comp);
        }
    }
    out
}

#[test]
fn no_import_cycles() {
    let mods = modules();
    let known: BTreeSet<String> = mods.iter().map(|m| m.path.clone()).collect();
    let root = root_reexports();
    let mut graph = BTreeMap::new();
    for m in &mods {
        let up: BTreeSet<String> = imports(m, &known, &root)
            .into_iter()
            .filter(|t| !m.path.starts_with(&format!("{t}::")))
            .collect();
        graph.insert(m.path.clone(), up);
    }
    let found: Vec<String> = cycles(&graph).iter().map(|c| c.join(" <-> ")).collect();
    assert!(
        found.is_empty(),
        "modules that import each other (make one of them lower, ARCHITECTURE.md \"Layers\"):\n{}",
        found.join("\n")
    );
}
