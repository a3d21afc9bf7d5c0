//! Source checks of the rooms (ARCHITECTURE.md, "How the rules are checked"):
//!
//! - [`purity_violations`]: words that mean I/O or a clock (`std::fs`, `std::net`,
//!   `SystemTime::now`, `Instant::now`) in a crate that must be sans-I/O (cvx-consensus);
//! - [`long_files`]: source files over the line limit (house rule 11: a file past ~600 lines
//!   is a room to split);
//! - [`module_cycles`]: import cycles between the modules of one crate, over the
//!   `crate::`, `super::` and `self::` paths of its sources.
//!
//! Each works on `(path, text)` pairs, so its unit tests feed it a violation and see it
//! fail; `tests/tests/deps.rs` runs them over the real sources.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// What a sans-I/O crate's sources must not name.
pub const IMPURE: &[&str] = &["std::fs", "std::net", "SystemTime::now", "Instant::now"];

/// The line limit for one source file (house rule 11 says "~600": a little slack so that a
/// one-line change does not trip it, none for a new room).
pub const MAX_LINES: usize = 620;

/// Every `.rs` file under `dir` with its text, sorted by path.
///
/// # Errors
/// The I/O error of a directory or file that cannot be read.
pub fn rust_sources(dir: &Path) -> std::io::Result<Vec<(PathBuf, String)>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d)? {
            let p = e?.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                let text = std::fs::read_to_string(&p)?;
                out.push((p, text));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// The code of a line without its `//` comment (a `//` inside a string literal is rare in
/// this code base and only makes the check see less, never more).
fn code_of(line: &str) -> &str {
    line.find("//").map_or(line, |i| &line[..i])
}

/// `file:line: word` for every impure word outside comments. A `std::{...}` group that
/// names `fs` or `net` counts too.
#[must_use]
pub fn purity_violations(files: &[(PathBuf, String)]) -> Vec<String> {
    let mut v = Vec::new();
    for (path, text) in files {
        for (i, line) in text.lines().enumerate() {
            let code = code_of(line);
            for word in IMPURE {
                if code.contains(word) {
                    v.push(format!("{}:{}: {word}", path.display(), i + 1));
                }
            }
            let squeezed: String = code.chars().filter(|c| !c.is_whitespace()).collect();
            if let Some(group) = squeezed.split("std::{").nth(1) {
                for m in ["fs", "net"] {
                    if group
                        .split(|c: char| !c.is_alphanumeric() && c != '_')
                        .any(|t| t == m)
                    {
                        v.push(format!("{}:{}: std::{{{m}}}", path.display(), i + 1));
                    }
                }
            }
        }
    }
    v
}

/// `(file, lines)` for every file over `limit` lines that is not in `allowed` (paths
/// ending with the given suffix, each with the most lines it may keep until it is split).
#[must_use]
pub fn long_files(
    files: &[(PathBuf, String)],
    limit: usize,
    allowed: &[(&str, usize)],
) -> Vec<(PathBuf, usize)> {
    files
        .iter()
        .filter_map(|(p, t)| {
            let n = t.lines().count();
            let cap = allowed
                .iter()
                .find(|(suffix, _)| p.ends_with(suffix))
                .map_or(limit, |(_, cap)| *cap);
            (n > cap).then(|| (p.clone(), n))
        })
        .collect()
}

/// The module path of a source file under `src` (`lib.rs`/`main.rs` → `[]`,
/// `node/mod.rs` → `[node]`, `node/main_loop.rs` → `[node, main_loop]`).
#[must_use]
pub fn module_of(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).unwrap_or(file);
    let mut parts: Vec<String> = rel
        .iter()
        .map(|s| s.to_string_lossy().into_owned())
        .collect();
    if let Some(last) = parts.pop() {
        let stem = last.trim_end_matches(".rs");
        if parts.is_empty() && (stem == "lib" || stem == "main") || stem == "mod" {
            return parts;
        }
        parts.push(stem.to_owned());
    }
    parts
}

/// Expand a `use` tree (`a::{b, c::{d as e}}`, whitespace removed) into its paths.
fn expand(tree: &str, prefix: &[String], out: &mut Vec<Vec<String>>) {
    let tree = tree.trim_matches(',');
    if tree.is_empty() {
        return;
    }
    // Split at the top-level commas.
    let mut depth = 0;
    let mut start = 0;
    let mut items = Vec::new();
    for (i, c) in tree.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(&tree[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(&tree[start..]);
    for item in items {
        match item.find('{') {
            Some(b) => {
                let head = &item[..b];
                let inner = item[b + 1..].strip_suffix('}').unwrap_or(&item[b + 1..]);
                let mut p = prefix.to_vec();
                p.extend(
                    head.split("::")
                        .filter(|s| !s.is_empty())
                        .map(str::to_owned),
                );
                expand(inner, &p, out);
            }
            None => {
                let mut p = prefix.to_vec();
                for seg in item.split("::").filter(|s| !s.is_empty()) {
                    // `a::{self, b}` names `a`; a leading `self::` is kept (a child).
                    if seg != "self" || p.is_empty() {
                        p.push(seg.to_owned());
                    }
                }
                out.push(p);
            }
        }
    }
}

/// The paths one source file's shipped code names that start with `crate`, `super` or
/// `self`: every `use` item (groups expanded) and every inline `crate::a::b` path.
#[must_use]
pub fn paths_in(text: &str) -> Vec<Vec<String>> {
    // Shipped code only: a top-level `#[cfg(test)]` item (the tests module, by convention
    // at the end of the file) and what follows it are tests, not imports.
    let code: String = text
        .lines()
        .take_while(|l| *l != "#[cfg(test)]")
        .map(code_of)
        .collect::<Vec<_>>()
        .join("\n");
    let mut out = Vec::new();
    // `use` statements, braces and all.
    let mut rest = code.as_str();
    while let Some(i) = rest.find("use ") {
        let before_ok = i == 0
            || !rest[..i]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_alphanumeric() || c == '_');
        let after = &rest[i + 4..];
        let end = after.find(';').unwrap_or(after.len());
        if before_ok {
            let spaced: Vec<&str> = after[..end].split_whitespace().collect();
            let tree: String = strip_aliases(&spaced.join(" "))
                .chars()
                .filter(|c| !c.is_whitespace())
                .collect();
            expand(&tree, &[], &mut out);
        }
        rest = &after[end.min(after.len())..];
    }
    // Inline paths.
    for (i, _) in code.match_indices("crate::") {
        if code[..i]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':')
        {
            continue;
        }
        let token = code[i..]
            .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
            .next()
            .unwrap_or_default();
        // `crate::a::{...}` is a use group, already expanded above.
        if token.ends_with("::") {
            continue;
        }
        let p: Vec<String> = token
            .split("::")
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        if p.len() >= 2 {
            out.push(p);
        }
    }
    out.retain(|p| {
        p.first()
            .is_some_and(|s| s == "crate" || s == "super" || s == "self")
    });
    out
}

/// `a as b` → `a` inside a use tree (whitespace already collapsed to single spaces).
fn strip_aliases(tree: &str) -> String {
    let mut s = String::new();
    let mut rest = tree;
    while let Some(i) = rest.find(" as ") {
        s.push_str(&rest[..i]);
        // Skip the alias name, keep what follows it (`,` or `}`).
        rest = rest[i + 4..].trim_start_matches(|c: char| c.is_alphanumeric() || c == '_');
    }
    s.push_str(rest);
    s
}

/// The module graph of one crate: module → the modules it names (the longest known
/// module prefix of each path), without edges to its own ancestors or descendants
/// (a module and its parent are one room seen at two scales).
#[must_use]
pub fn module_graph(src: &Path, files: &[(PathBuf, String)]) -> BTreeMap<String, BTreeSet<String>> {
    let modules: BTreeSet<Vec<String>> = files.iter().map(|(p, _)| module_of(src, p)).collect();
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (p, text) in files {
        let me = module_of(src, p);
        let entry = edges.entry(me.join("::")).or_default();
        for path in paths_in(text) {
            let mut abs: Vec<String> = Vec::new();
            let mut base = me.clone();
            let mut segs = path.iter().peekable();
            match segs.peek().map(|s| s.as_str()) {
                Some("crate") => {
                    segs.next();
                }
                Some("self") => {
                    segs.next();
                    abs.clone_from(&base);
                }
                _ => {
                    while segs.peek().is_some_and(|s| *s == "super") {
                        segs.next();
                        base.pop();
                    }
                    abs.clone_from(&base);
                }
            }
            if path.first().is_some_and(|s| s == "crate") {
                abs.clear();
            }
            abs.extend(segs.cloned());
            let Some(target) = (0..=abs.len())
                .rev()
                .map(|n| abs[..n].to_vec())
                .find(|m| modules.contains(m))
            else {
                continue;
            };
            let related = target.starts_with(&me) || me.starts_with(&target);
            if !related {
                entry.insert(target.join("::"));
            }
        }
    }
    edges
}

/// Every cycle of the module graph, each as the modules on it (`a -> b -> a`).
#[must_use]
pub fn module_cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<String> {
    // For each edge a -> b: is a reachable from b? Report each cycle once (by its set).
    let reach = |from: &str, to: &str| -> Option<Vec<String>> {
        let mut prev: BTreeMap<String, String> = BTreeMap::new();
        let mut queue = std::collections::VecDeque::from([from.to_owned()]);
        let mut seen = BTreeSet::from([from.to_owned()]);
        while let Some(n) = queue.pop_front() {
            if n == to {
                let mut path = vec![n.clone()];
                let mut cur = n;
                while let Some(p) = prev.get(&cur) {
                    path.push(p.clone());
                    cur = p.clone();
                }
                path.reverse();
                return Some(path);
            }
            for m in graph.get(&n).into_iter().flatten() {
                if seen.insert(m.clone()) {
                    prev.insert(m.clone(), n.clone());
                    queue.push_back(m.clone());
                }
            }
        }
        None
    };
    let mut found: BTreeSet<BTreeSet<String>> = BTreeSet::new();
    let mut out = Vec::new();
    for (a, bs) in graph {
        for b in bs {
            if let Some(back) = reach(b, a) {
                let set: BTreeSet<String> = back.iter().cloned().collect();
                if found.insert(set) {
                    let name = |m: &String| {
                        if m.is_empty() {
                            "crate".to_owned()
                        } else {
                            m.clone()
                        }
                    };
                    let mut cycle: Vec<String> = vec![name(a)];
                    cycle.extend(back.iter().map(name));
                    out.push(cycle.join(" -> "));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(list: &[(&str, &str)]) -> Vec<(PathBuf, String)> {
        list.iter()
            .map(|(p, t)| (PathBuf::from("src").join(p), (*t).to_owned()))
            .collect()
    }

    #[test]
    fn the_purity_scan_fails_on_io_and_clocks() {
        let f = files(&[
            (
                "a.rs",
                "use std::fs::File;\n// std::net in a comment is fine\n",
            ),
            (
                "b.rs",
                "let t = std::time::Instant::now();\nuse std::{collections::HashMap, net::TcpStream};\n",
            ),
            (
                "c.rs",
                "let now = event.now; // SystemTime::now is read by the host\n",
            ),
        ]);
        let v = purity_violations(&f);
        assert_eq!(v.len(), 3, "{v:?}");
        assert!(v[0].ends_with("a.rs:1: std::fs"));
        assert!(v[1].ends_with("b.rs:1: Instant::now"));
        assert!(v[2].ends_with("b.rs:2: std::{net}"));
        assert!(
            purity_violations(&files(&[("d.rs", "use std::collections::BTreeMap;\n")])).is_empty()
        );
    }

    #[test]
    fn the_line_limit_fails_on_a_long_file_unless_allowed() {
        let long = "x\n".repeat(MAX_LINES + 1);
        let f = files(&[("big.rs", &long), ("small.rs", "x\n")]);
        assert_eq!(
            long_files(&f, MAX_LINES, &[]),
            vec![(PathBuf::from("src/big.rs"), MAX_LINES + 1)]
        );
        assert!(long_files(&f, MAX_LINES, &[("big.rs", MAX_LINES + 1)]).is_empty());
        assert_eq!(
            long_files(&f, MAX_LINES, &[("big.rs", MAX_LINES)]).len(),
            1,
            "a grandfathered file may not grow"
        );
    }

    #[test]
    fn module_paths_follow_the_file_layout() {
        let src = Path::new("src");
        assert!(module_of(src, Path::new("src/lib.rs")).is_empty());
        assert_eq!(module_of(src, Path::new("src/node/mod.rs")), ["node"]);
        assert_eq!(
            module_of(src, Path::new("src/node/main_loop.rs")),
            ["node", "main_loop"]
        );
    }

    #[test]
    fn use_groups_and_inline_paths_are_read() {
        let p = paths_in(
            "use crate::{a::{B, c::D as E}, f};\nuse super::g::H;\nuse crate::hash::{Base as B, class};\nfn x() { crate::k::l(); }\n// use crate::comment;\n",
        );
        let p: Vec<String> = p.iter().map(|v| v.join("::")).collect();
        assert_eq!(
            p,
            [
                "crate::a::B",
                "crate::a::c::D",
                "crate::f",
                "super::g::H",
                "crate::hash::Base",
                "crate::hash::class",
                "crate::k::l"
            ]
        );
    }

    /// The cycle this check was written for: node -> net::sync -> persist -> node.
    #[test]
    fn the_cycle_check_fails_on_an_import_cycle() {
        let f = files(&[
            ("lib.rs", "pub mod node;\npub mod net;\npub mod persist;\n"),
            ("node.rs", "use crate::net::sync::join;\n"),
            ("net/mod.rs", "pub mod sync;\n"),
            (
                "net/sync.rs",
                "use super::read_frame;\nfn f() { crate::persist::save(); }\n",
            ),
            ("persist.rs", "use crate::node::NodeError;\n"),
        ]);
        let g = module_graph(Path::new("src"), &f);
        let c = module_cycles(&g);
        assert_eq!(c.len(), 1, "{c:?}");
        assert!(c[0].contains("node") && c[0].contains("net::sync") && c[0].contains("persist"));
        // Moving NodeError out of node breaks it; a child naming its parent is no cycle.
        let f = files(&[
            (
                "lib.rs",
                "pub mod node;\npub mod net;\npub mod persist;\npub mod error;\n",
            ),
            (
                "node/mod.rs",
                "mod main_loop;\nuse crate::net::sync::join;\npub use crate::error::NodeError;\n",
            ),
            (
                "node/main_loop.rs",
                "use super::MainLoop;\nuse crate::error::NodeError;\n",
            ),
            ("net/mod.rs", "pub mod sync;\n"),
            (
                "net/sync.rs",
                "use super::read_frame;\nuse crate::persist::save;\n",
            ),
            ("persist.rs", "use crate::error::NodeError;\n"),
            ("error.rs", ""),
        ]);
        assert!(module_cycles(&module_graph(Path::new("src"), &f)).is_empty());
    }
}
