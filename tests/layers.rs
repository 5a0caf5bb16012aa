//! The house's layers (docs/design.md, "Layers"): every module of src/ imports only modules in
//! its own layer or below, and no two modules import each other, directly or around a loop.
//!
//! The layer table is read from docs/design.md; every `crate::` and `super::` path in src/
//! (comments excepted, `use` trees expanded) is resolved to the file module it names (a path
//! through the crate root's `pub use` is followed to the module it re-exports), and that module
//! to its entry in the table (the longest entry that is a prefix). A module missing from the
//! table, an import of a higher layer, or a loop between entries fails the test.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

type Module = Vec<String>;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The layer table: entry (a module path such as `backend::cpu`) -> layer number.
fn layer_table(design: &str) -> BTreeMap<String, usize> {
    let start = design.find("\n## Layers").expect("docs/design.md has a \"## Layers\" section");
    let section = &design[start + 1..];
    let end = section[3..].find("\n## ").map_or(section.len(), |e| e + 3);
    let mut table = BTreeMap::new();
    for line in section[..end].lines().filter(|l| l.starts_with('|')) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let Ok(layer) = cells.get(1).unwrap_or(&"").parse::<usize>() else { continue };
        for m in cells[2].split('`').skip(1).step_by(2) {
            assert!(table.insert(m.to_string(), layer).is_none(), "`{m}` is listed twice in the layer table");
        }
    }
    assert!(!table.is_empty(), "the layer table in docs/design.md has no rows");
    table
}

/// Every .rs file under src/ with its module path (src/a/mod.rs and src/a.rs -> a; lib.rs -> root).
fn files(dir: &Path, prefix: &Module, out: &mut Vec<(PathBuf, Module)>) {
    let mut entries: Vec<_> = fs::read_dir(dir).expect("read src").map(|e| e.expect("entry").path()).collect();
    entries.sort();
    for p in entries {
        let name = p.file_stem().and_then(|s| s.to_str()).unwrap_or_default().to_string();
        if p.is_dir() {
            let mut m = prefix.clone();
            m.push(name);
            files(&p, &m, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            let mut m = prefix.clone();
            if name != "mod" && !(prefix.is_empty() && name == "lib") {
                m.push(name);
            }
            out.push((p, m));
        }
    }
}

/// The text without comments (line and block) and string literals' contents.
fn strip(src: &str) -> String {
    let b = src.as_bytes();
    let (mut out, mut i) = (String::with_capacity(src.len()), 0);
    while i < b.len() {
        if b[i..].starts_with(b"//") {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i..].starts_with(b"/*") {
            i = src[i..].find("*/").map_or(b.len(), |e| i + e + 2);
        } else if b[i] == b'"' && (i == 0 || b[i - 1] != b'\'') {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("\"\"");
        } else {
            let c = src[i..].chars().next().expect("char");
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

fn ident_at(s: &str, i: usize) -> &str {
    let end = s[i..].find(|c: char| !(c.is_alphanumeric() || c == '_')).map_or(s.len(), |e| i + e);
    &s[i..end]
}

/// The paths of a `use` tree or an expression path starting at `i` (just after `crate::`),
/// each as segments: `a::{b, c::{d, self}}` -> [a, b], [a, c, d], [a, c].
fn paths_at(s: &str, mut i: usize, prefix: Module, out: &mut Vec<Module>) -> usize {
    let mut path = prefix;
    loop {
        i += s[i..].len() - s[i..].trim_start().len();
        if s[i..].starts_with('{') {
            i += 1;
            loop {
                i += s[i..].len() - s[i..].trim_start().len();
                if s[i..].starts_with('}') {
                    return i + 1;
                }
                i = paths_at(s, i, path.clone(), out);
                i += s[i..].len() - s[i..].trim_start().len();
                if s[i..].starts_with(',') {
                    i += 1;
                }
            }
        }
        let id = ident_at(s, i);
        if id.is_empty() {
            out.push(path);
            return i;
        }
        i += id.len();
        if id != "self" {
            path.push(id.to_string());
        }
        if s[i..].starts_with("::") && !s[i + 2..].starts_with('<') {
            i += 2;
        } else {
            out.push(path);
            return i;
        }
    }
}

/// Every module path named from a file: `crate::` paths from the root, `super::` ones from the
/// file's parent module (`mod.rs` files are their directory's module). A glob (`super::*`)
/// names the module it reads.
fn imports(text: &str, me: &Module) -> Vec<Module> {
    // Unit tests (from `#[cfg(test)]` on, at the end of a file) are not part of the house.
    let code = text.find("#[cfg(test)]").map_or(text, |e| &text[..e]);
    let s = strip(code);
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(k) = s[i..].find(['c', 's']).map(|k| i + k) {
        let boundary = k == 0 || !s[..k].ends_with(|c: char| c.is_alphanumeric() || c == '_' || c == ':');
        if boundary && s[k..].starts_with("crate::") {
            i = paths_at(&s, k + 7, Vec::new(), &mut out);
        } else if boundary && s[k..].starts_with("super::") {
            // A file a.rs is module a: its `super` is a's parent; mod.rs likewise is its dir.
            let mut base = me.clone();
            base.pop();
            let mut j = k + 7;
            while s[j..].starts_with("super::") {
                base.pop();
                j += 7;
            }
            i = paths_at(&s, j, base, &mut out);
        } else {
            i = k + 1;
        }
    }
    out
}

/// The crate root's re-exports: name -> the module it comes from.
fn root_names(lib: &str) -> BTreeMap<String, Module> {
    let s = strip(lib);
    let mut names = BTreeMap::new();
    for (k, _) in s.match_indices("pub use ") {
        let mut paths = Vec::new();
        paths_at(&s, k + 8, Vec::new(), &mut paths);
        for p in paths {
            if let Some((last, module)) = p.split_last() {
                names.insert(last.clone(), module.to_vec());
            }
        }
    }
    names
}

/// The longest file module that `path` starts with.
fn resolve(path: &[String], modules: &BTreeSet<Module>, root: &BTreeMap<String, Module>) -> Option<Module> {
    let found = (1..=path.len()).rev().map(|n| path[..n].to_vec()).find(|p| modules.contains(p));
    match found {
        Some(m) => Some(m),
        None => path.first().and_then(|first| root.get(first).cloned()),
    }
}

/// The table entry a module belongs to: the longest entry that is a prefix of it.
fn entry_of<'t>(m: &Module, table: &'t BTreeMap<String, usize>) -> Option<(&'t String, usize)> {
    (1..=m.len()).rev().find_map(|n| table.get_key_value(&m[..n].join("::")).map(|(k, v)| (k, *v)))
}

/// The violations of the house in the files under `src`: modules missing from the table,
/// imports of a higher layer, loops between table entries.
fn violations(src: &Path, design: &str) -> Vec<String> {
    let table = layer_table(design);
    let top = table.values().copied().max().unwrap_or(0);
    let mut all = Vec::new();
    files(src, &Vec::new(), &mut all);
    let modules: BTreeSet<Module> = all.iter().map(|(_, m)| m.clone()).collect();
    let root = root_names(&fs::read_to_string(src.join("lib.rs")).expect("lib.rs"));
    let mut bad = Vec::new();
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut why: BTreeMap<(String, String), String> = BTreeMap::new();
    for (file, me) in &all {
        // The crate root and the binary's root only declare modules and re-export.
        if me.is_empty() || me == &["main".to_string()] {
            continue;
        }
        let shown = file.strip_prefix(src).unwrap_or(file).display().to_string();
        let Some((from, from_layer)) = entry_of(me, &table) else {
            bad.push(format!("src/{shown}: module `{}` is in no layer of the table", me.join("::")));
            continue;
        };
        let text = fs::read_to_string(file).expect("read source");
        for path in imports(&text, me) {
            let Some(target) = resolve(&path, &modules, &root) else {
                // The top layer may name its own binary's items (crate:: in src/main.rs's tree).
                if from_layer == top {
                    continue;
                }
                bad.push(format!("src/{shown}: `crate::{}` names no module", path.join("::")));
                continue;
            };
            let Some((to, to_layer)) = entry_of(&target, &table) else { continue };
            if to == from {
                continue;
            }
            if to_layer > from_layer {
                bad.push(format!(
                    "src/{shown}: `{from}` (layer {from_layer}) imports `{}` of `{to}` (layer {to_layer}), a higher layer",
                    path.join("::")
                ));
            }
            edges.entry(from.clone()).or_default().insert(to.clone());
            why.entry((from.clone(), to.clone())).or_insert(shown.clone());
        }
    }
    // Loops: a depth-first search over the entries; a back edge closes a loop.
    fn visit(
        n: &String,
        edges: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
        loops: &mut Vec<Vec<String>>,
    ) {
        state.insert(n.clone(), 1);
        stack.push(n.clone());
        for m in edges.get(n).into_iter().flatten() {
            match state.get(m).copied().unwrap_or(0) {
                0 => visit(m, edges, state, stack, loops),
                1 => {
                    let at = stack.iter().position(|s| s == m).expect("on the stack");
                    loops.push(stack[at..].to_vec());
                }
                _ => {}
            }
        }
        stack.pop();
        state.insert(n.clone(), 2);
    }
    let (mut state, mut loops) = (BTreeMap::new(), Vec::new());
    for n in edges.keys() {
        if !state.contains_key(n) {
            visit(n, &edges, &mut state, &mut Vec::new(), &mut loops);
        }
    }
    for l in loops {
        let mut ring = l.clone();
        ring.push(l[0].clone());
        let via: Vec<String> = ring.windows(2).map(|w| why[&(w[0].clone(), w[1].clone())].clone()).collect();
        bad.push(format!("a loop: {} (through src/{})", ring.join(" -> "), via.join(", src/")));
    }
    bad
}

#[test]
fn every_module_imports_only_its_layer_or_below_and_no_loop() {
    let design = fs::read_to_string(root().join("docs/design.md")).expect("docs/design.md");
    let bad = violations(&root().join("src"), &design);
    assert!(bad.is_empty(), "the house has slipped (docs/design.md, \"Layers\"):\n{}", bad.join("\n"));
}

/// A copy of src/ with one planted upward import (the error type reaching up into the backend,
/// as it once did), and one planted loop, must fail; the real tree must have none of either.
#[test]
fn a_planted_upward_import_and_a_planted_loop_are_caught() {
    let design = fs::read_to_string(root().join("docs/design.md")).expect("docs/design.md");
    let tmp = std::env::temp_dir().join(format!("batchgp-layers-{}", std::process::id()));
    let _ = fs::remove_dir_all(&tmp);
    copy_dir(&root().join("src"), &tmp);
    let error = tmp.join("error.rs");
    let text = fs::read_to_string(&error).expect("error.rs");
    fs::write(&error, format!("fn _planted() -> u64 {{ crate::backend::memory::available().unwrap_or(0) }}\n{text}"))
        .expect("plant");
    let bad = violations(&tmp, &design);
    assert!(
        bad.iter().any(|b| b.contains("src/error.rs") && b.contains("a higher layer")),
        "the planted upward import was not caught: {bad:?}"
    );
    // A loop inside one layer: the kernel noun importing data, which imports the kernel.
    fs::write(&error, text).expect("restore");
    let kernel = tmp.join("kernel.rs");
    let k = fs::read_to_string(&kernel).expect("kernel.rs");
    fs::write(&kernel, format!("fn _planted(d: &crate::data::Dataset) -> usize {{ d.batch_size() }}\n{k}"))
        .expect("plant");
    let bad = violations(&tmp, &design);
    assert!(
        bad.iter().any(|b| b.starts_with("a loop") && b.contains("kernel")),
        "the planted loop was not caught: {bad:?}"
    );
    let _ = fs::remove_dir_all(&tmp);
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).expect("mkdir");
    for e in fs::read_dir(from).expect("read") {
        let p = e.expect("entry").path();
        let dest = to.join(p.file_name().expect("name"));
        if p.is_dir() {
            copy_dir(&p, &dest);
        } else {
            fs::copy(&p, &dest).expect("copy");
        }
    }
}
