//! The layer rule of docs/architecture.md, checked against the code: every `crate::` path in
//! `src/` (in `use` trees and inline) is resolved to the file that holds it, and
//!
//! - no module imports a module of a higher layer (model → store → runtime → features →
//!   registry → adapters → cli);
//! - a feature uses another feature only through the items its root re-exports (its face);
//! - no two files import each other, directly or around a loop, and neither do two folders;
//!   for loops a name is followed through re-exports (`pub use`) to the file that defines it,
//!   so importing through a folder's face does not hide one.
//!
//! A folder's `mod.rs` declares and re-exports its children (and may compose them, as
//! `store::open` does); those parent → child edges are not counted as loops, the child → parent
//! edges are.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Top-level module → layer. A module may import its own layer's peers only where noted.
const LAYERS: &[(&str, u8, &str)] = &[
    ("model", 0, "model"),
    ("clock", 0, "model"),
    ("retry", 0, "model"),
    ("store", 1, "store"),
    ("blobs", 1, "store"),
    ("storage_account", 1, "store"),
    ("realtime", 1, "store"),
    ("runtime", 2, "runtime core"),
    ("live", 3, "feature"),
    ("metrics", 3, "feature"),
    ("query", 3, "feature"),
    ("migrate", 3, "feature"),
    ("ops", 3, "feature"),
    ("simulate", 3, "feature"),
    ("registry", 4, "registry"),
    ("handler", 5, "adapter"),
    ("serve", 5, "adapter"),
    ("deploy", 5, "adapter"),
    ("cli", 6, "entry"),
];

fn layer_of(module: &str) -> Option<(u8, &'static str)> {
    LAYERS
        .iter()
        .find(|(name, _, _)| *name == module)
        .map(|(_, layer, kind)| (*layer, *kind))
}

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .expect("src/ is readable")
        .map(|e| e.expect("directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The module path of a file: `src/store/cosmos/mod.rs` → `["store", "cosmos"]`.
fn module_of(relative: &Path) -> Vec<String> {
    let mut parts: Vec<String> = relative
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let last = parts.pop().expect("a file name");
    let stem = last.trim_end_matches(".rs");
    if !matches!(stem, "mod" | "lib" | "main") {
        parts.push(stem.to_owned());
    }
    parts
}

/// Source without comments and string literals, so that prose and strings never count.
fn code_only(source: &str) -> String {
    let bytes = source.as_bytes();
    let mut out = String::with_capacity(source.len());
    let mut i = 0;
    while i < bytes.len() {
        let rest = &source[i..];
        if rest.starts_with("//") {
            while i < bytes.len() && bytes[i] != b'\n' {
                i += 1;
            }
        } else if rest.starts_with("/*") {
            i += 2;
            while i + 1 < bytes.len() && !source[i..].starts_with("*/") {
                i += 1;
            }
            i += 2;
        } else if rest.starts_with("r#\"") || rest.starts_with("r\"") {
            let hashes = rest[1..].chars().take_while(|c| *c == '#').count();
            let closing = format!("\"{}", "#".repeat(hashes));
            let body = i + 2 + hashes;
            i = source[body..]
                .find(&closing)
                .map_or(bytes.len(), |end| body + end + closing.len());
            out.push_str("\"\"");
        } else if bytes[i] == b'"' {
            i += 1;
            while i < bytes.len() && bytes[i] != b'"' {
                i += if bytes[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("\"\"");
        } else if bytes[i] == b'\''
            && rest.len() >= 3
            && (rest.as_bytes()[2] == b'\'' || rest.as_bytes()[1] == b'\\')
        {
            // A char literal ('"', '\n'); lifetimes ('a) have no closing quote here.
            let end = rest[1..].find('\'').map_or(1, |e| e + 2);
            i += end;
            out.push_str("' '");
        } else {
            let ch = rest.chars().next().expect("not at the end");
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    out
}

/// Inside an inline module (`mod tests { … }`) `super` is the file's own module: rewrite it as
/// `self` there, so that paths resolve as they do in the file.
fn inline_modules_resolved(code: &str) -> String {
    let mut out = String::with_capacity(code.len());
    let mut depth = 0usize;
    // Brace depths at which an inline module opened.
    let mut inline: Vec<usize> = Vec::new();
    let mut i = 0;
    while i < code.len() {
        let rest = &code[i..];
        let at_word_start = i == 0
            || !code[..i]
                .chars()
                .last()
                .is_some_and(|c| c.is_alphanumeric() || c == '_');
        if at_word_start && rest.starts_with("mod ") {
            let header_end = rest.find(['{', ';']).unwrap_or(rest.len());
            if rest[header_end..].starts_with('{') {
                inline.push(depth + 1);
            }
        }
        if at_word_start && !inline.is_empty() && rest.starts_with("super::") {
            out.push_str("self::");
            i += "super::".len();
            continue;
        }
        let ch = rest.chars().next().expect("not at the end");
        match ch {
            '{' => depth += 1,
            '}' => {
                if inline.last() == Some(&depth) {
                    inline.pop();
                }
                depth = depth.saturating_sub(1);
            }
            _ => {}
        }
        out.push(ch);
        i += ch.len_utf8();
    }
    out
}

/// Every path a `use` tree names: `a::{b, c::{d, e}}` → `a::b`, `a::c::d`, `a::c::e`.
fn expand_use_tree(tree: &str) -> Vec<String> {
    named_use_tree(tree)
        .into_iter()
        .map(|(path, _)| path)
        .collect()
}

/// Every path a `use` tree names, with the name it is known by where it is used:
/// `a::{b as c, d}` → (`a::b`, `c`), (`a::d`, `d`).
fn named_use_tree(tree: &str) -> Vec<(String, String)> {
    // `as` is a word of its own: mark it before the white space that sets it apart goes.
    let tree = tree.split_whitespace().collect::<Vec<_>>().join(" ");
    let tree: String = tree
        .replace(" as ", "@")
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    fn expand(prefix: &str, tree: &str, out: &mut Vec<(String, String)>) {
        if let Some(open) = tree.find('{') {
            let head = &tree[..open];
            let inner = &tree[open + 1..tree.len() - 1];
            let mut depth = 0;
            let mut start = 0;
            for (i, c) in inner.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        expand(&format!("{prefix}{head}"), &inner[start..i], out);
                        start = i + 1;
                    }
                    _ => {}
                }
            }
            expand(&format!("{prefix}{head}"), &inner[start..], out);
        } else if !tree.is_empty() {
            let (path, alias) = tree.split_once('@').unwrap_or((tree, ""));
            let path = format!("{prefix}{path}");
            let name = match alias {
                "" => path.rsplit("::").next().unwrap_or(&path).to_owned(),
                alias => alias.to_owned(),
            };
            out.push((path, name));
        }
    }
    let mut out = Vec::new();
    expand("", &tree, &mut out);
    out
}

/// The paths a file names, absolute from the crate root, each as its segments.
fn paths_in(code: &str, module: &[String], children: &BTreeSet<String>) -> Vec<Vec<String>> {
    let mut raw = Vec::new();
    // `use` statements (braced trees included).
    for (_, tree) in use_statements(code) {
        raw.extend(expand_use_tree(tree));
    }
    // Inline `crate::…` and `super::…` paths.
    for start in ["crate::", "super::"] {
        let mut from = 0;
        while let Some(at) = code[from..].find(start) {
            let begin = from + at;
            let before = code[..begin].chars().last();
            from = begin + start.len();
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                continue;
            }
            let end = code[begin..]
                .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                .map_or(code.len(), |e| begin + e);
            raw.push(code[begin..end].to_owned());
        }
    }
    raw.iter()
        .filter_map(|path| absolute(path, module, children))
        .collect()
}

/// Each `use` statement of `code`: whether it is a re-export (`pub use`, `pub(crate) use`, …)
/// and its tree.
fn use_statements(code: &str) -> Vec<(bool, &str)> {
    let mut statements = Vec::new();
    let mut from = 0;
    while let Some(at) = code[from..].find("use ") {
        let begin = from + at;
        from = begin + 4;
        let before = code[..begin].trim_end();
        if code[..begin]
            .chars()
            .last()
            .is_some_and(|c| c.is_alphanumeric() || c == '_')
        {
            continue;
        }
        let Some(end) = code[from..].find(';') else {
            continue;
        };
        let visibility = before.rsplit(|c: char| c.is_whitespace()).next();
        let public = visibility.is_some_and(|v| v == "pub" || v.starts_with("pub("));
        statements.push((public, &code[from..from + end]));
    }
    statements
}

/// What a file re-exports: each name it makes public, and the absolute path it stands for.
fn reexports_in(
    code: &str,
    module: &[String],
    children: &BTreeSet<String>,
) -> Vec<(String, Vec<String>)> {
    use_statements(code)
        .into_iter()
        .filter(|(public, _)| *public)
        .flat_map(|(_, tree)| named_use_tree(tree))
        .filter(|(_, name)| name != "*" && name != "self")
        .filter_map(|(path, name)| Some((name, absolute(&path, module, children)?)))
        .collect()
}

/// A path as written in the file of `module`, absolute from the crate root; `None` for paths
/// outside the crate.
fn absolute(path: &str, module: &[String], children: &BTreeSet<String>) -> Option<Vec<String>> {
    let segments: Vec<String> = path
        .split("::")
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    let absolute = match segments.first()?.as_str() {
        "crate" => segments[1..].to_vec(),
        "super" | "self" => {
            let mut base = module.to_vec();
            let mut segs = segments.as_slice();
            // A file that is not a mod.rs is a module itself: `self` is it, `super` its parent.
            while let Some(s) = segs.first() {
                match s.as_str() {
                    "super" => {
                        base.pop();
                    }
                    "self" => {}
                    _ => break,
                }
                segs = &segs[1..];
            }
            base.extend(segs.iter().cloned());
            base
        }
        // 2018 relative paths to a child module (`use hub::Hub` in serve/mod.rs).
        name if children.contains(name) => {
            let mut base = module.to_vec();
            base.extend(segments.iter().cloned());
            base
        }
        _ => return None,
    };
    (!absolute.is_empty()).then_some(absolute)
}

struct Tree {
    /// Module path → file (relative to src/).
    modules: BTreeMap<Vec<String>, PathBuf>,
    /// (module, name) → the path that module re-exports under that name (`pub use`).
    reexports: BTreeMap<(Vec<String>, String), Vec<String>>,
}

impl Tree {
    fn read() -> (Tree, Vec<(PathBuf, Vec<String>, String)>) {
        let src = src_dir();
        let mut files = Vec::new();
        rust_files(&src, &mut files);
        Tree::build(files.into_iter().map(|file| {
            let relative = file.strip_prefix(&src).expect("under src").to_path_buf();
            let source = std::fs::read_to_string(&file).expect("readable source");
            (relative, source)
        }))
    }

    /// The tree of these files (paths relative to src/, with their source).
    fn build(
        files: impl IntoIterator<Item = (PathBuf, String)>,
    ) -> (Tree, Vec<(PathBuf, Vec<String>, String)>) {
        let mut modules = BTreeMap::new();
        let mut sources = Vec::new();
        for (relative, source) in files {
            let module = module_of(&relative);
            let code = inline_modules_resolved(&code_only(&source));
            modules.insert(module.clone(), relative.clone());
            sources.push((relative, module, code));
        }
        let mut tree = Tree {
            modules,
            reexports: BTreeMap::new(),
        };
        for (_, module, code) in &sources {
            let children = tree.children(module);
            for (name, target) in reexports_in(code, module, &children) {
                tree.reexports.insert((module.clone(), name), target);
            }
        }
        (tree, sources)
    }

    /// The file holding `path`: its longest module prefix.
    fn resolve(&self, path: &[String]) -> Option<(&Vec<String>, &PathBuf)> {
        (1..=path.len())
            .rev()
            .find_map(|n| self.modules.get_key_value(&path[..n]))
    }

    /// The file that defines what `path` names: `resolve`, then through each re-export
    /// (`store::StoreError`, re-exported by store/mod.rs, is defined in the file it names).
    fn defining_file(&self, path: &[String]) -> Option<&PathBuf> {
        let mut path = path.to_vec();
        // Re-exports may chain; a few hops cover any real chain, and a cycle cannot hang.
        for _ in 0..8 {
            let (module, file) = self.resolve(&path)?;
            let Some(name) = path.get(module.len()) else {
                return Some(file);
            };
            match self.reexports.get(&(module.clone(), name.clone())) {
                Some(target) if !path.starts_with(target) => {
                    let mut next = target.clone();
                    next.extend(path[module.len() + 1..].iter().cloned());
                    path = next;
                }
                _ => return Some(file),
            }
        }
        self.resolve(&path).map(|(_, file)| file)
    }

    fn children(&self, module: &[String]) -> BTreeSet<String> {
        self.modules
            .keys()
            .filter(|m| m.len() == module.len() + 1 && m.starts_with(module))
            .map(|m| m[module.len()].clone())
            .collect()
    }
}

/// How an imported path is mapped to a file.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Resolution {
    /// The file of the path as written (a folder's face for what it re-exports): what the
    /// layer and face rules are about.
    AsWritten,
    /// The file that defines the item, through re-exports: what loops are about, since a loop
    /// through a face is still a loop.
    Defining,
}

type Graph = BTreeMap<PathBuf, BTreeMap<PathBuf, Vec<String>>>;

/// File → files it imports (resolved), with the names used, for the files of `src/`.
fn import_graph(resolution: Resolution) -> (Tree, Graph) {
    let (tree, sources) = Tree::read();
    let graph = graph_of(&tree, &sources, resolution);
    (tree, graph)
}

fn graph_of(
    tree: &Tree,
    sources: &[(PathBuf, Vec<String>, String)],
    resolution: Resolution,
) -> Graph {
    let mut graph = Graph::new();
    for (file, module, code) in sources {
        let children = tree.children(module);
        let entry = graph.entry(file.clone()).or_default();
        for path in paths_in(code, module, &children) {
            let target = match resolution {
                Resolution::AsWritten => tree.resolve(&path).map(|(_, file)| file),
                Resolution::Defining => tree.defining_file(&path),
            };
            if let Some(target) = target {
                if target != file {
                    entry
                        .entry(target.clone())
                        .or_default()
                        .push(path.join("::"));
                }
            }
        }
    }
    graph
}

fn is_mod_root(file: &Path) -> bool {
    file.file_name()
        .is_some_and(|n| n == "mod.rs" || n == "lib.rs" || n == "main.rs")
}

/// Whether `from` is the face of a folder that contains `to` (a parent → child edge).
fn parent_to_child(from: &Path, to: &Path) -> bool {
    is_mod_root(from)
        && from
            .parent()
            .is_some_and(|dir| to.starts_with(dir) && to != from)
}

fn top_module(file: &Path) -> String {
    let first = file.iter().next().expect("a path").to_string_lossy();
    first.trim_end_matches(".rs").to_owned()
}

#[test]
fn no_module_imports_a_higher_layer() {
    let (tree, graph) = import_graph(Resolution::AsWritten);
    let mut violations = Vec::new();
    for (file, targets) in &graph {
        let from = top_module(file);
        if matches!(from.as_str(), "lib" | "main") {
            continue;
        }
        let Some((from_layer, _)) = layer_of(&from) else {
            violations.push(format!(
                "{}: module {from} has no layer in LAYERS",
                file.display()
            ));
            continue;
        };
        for (target, names) in targets {
            let to = top_module(target);
            if to == from {
                continue;
            }
            let Some((to_layer, to_kind)) = layer_of(&to) else {
                violations.push(format!("{}: module {to} has no layer", target.display()));
                continue;
            };
            if to_layer > from_layer {
                violations.push(format!(
                    "{} ({from}, layer {from_layer}) imports {} ({to}, layer {to_layer}): {names:?}",
                    file.display(),
                    target.display()
                ));
            }
            if to_layer == from_layer
                && to_kind != "feature"
                && to_kind != "model"
                && to_kind != "store"
            {
                violations.push(format!(
                    "{} imports {} of its own layer ({to_kind}): {names:?}",
                    file.display(),
                    target.display()
                ));
            }
            // A feature uses another feature only through its face (items its root re-exports).
            if to_layer == from_layer && to_kind == "feature" {
                let through_face = names.iter().all(|name| {
                    let segments: Vec<String> = name.split("::").map(str::to_owned).collect();
                    tree.resolve(&segments)
                        .is_some_and(|(module, _)| module.len() == 1)
                });
                if !through_face {
                    violations.push(format!(
                        "feature {} reaches into another feature's internals {}: {names:?}",
                        file.display(),
                        target.display()
                    ));
                }
            }
        }
    }
    assert!(
        violations.is_empty(),
        "layer violations:\n  {}",
        violations.join("\n  ")
    );
}

/// Strongly connected components with more than one node (Tarjan, iterative enough for this size).
fn loops(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct State<'a> {
        graph: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        next: usize,
        found: Vec<Vec<String>>,
    }
    fn visit<'a>(s: &mut State<'a>, node: &'a str) {
        s.index.insert(node, s.next);
        s.low.insert(node, s.next);
        s.next += 1;
        s.stack.push(node);
        s.on_stack.insert(node);
        if let Some(targets) = s.graph.get(node) {
            for target in targets {
                let target = target.as_str();
                if !s.index.contains_key(target) {
                    visit(s, target);
                    let low = s.low[node].min(s.low[target]);
                    s.low.insert(node, low);
                } else if s.on_stack.contains(target) {
                    let low = s.low[node].min(s.index[target]);
                    s.low.insert(node, low);
                }
            }
        }
        if s.low[node] == s.index[node] {
            let mut component = Vec::new();
            while let Some(top) = s.stack.pop() {
                s.on_stack.remove(top);
                component.push(top.to_owned());
                if top == node {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort();
                s.found.push(component);
            }
        }
    }
    let mut state = State {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        next: 0,
        found: Vec::new(),
    };
    for node in graph.keys() {
        if !state.index.contains_key(node.as_str()) {
            visit(&mut state, node);
        }
    }
    state.found
}

/// The loops among files, leaving out a folder's face composing its children.
fn file_loops(graph: &Graph) -> Vec<Vec<String>> {
    let mut files: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (file, targets) in graph {
        let entry = files.entry(file.display().to_string()).or_default();
        for target in targets.keys() {
            if !parent_to_child(file, target) {
                entry.insert(target.display().to_string());
            }
        }
    }
    loops(&files)
}

#[test]
fn no_file_imports_itself_around_a_loop() {
    let (_, graph) = import_graph(Resolution::Defining);
    let found = file_loops(&graph);
    let described: Vec<String> = found
        .iter()
        .map(|component| {
            let edges: Vec<String> = component
                .iter()
                .flat_map(|from| {
                    let names = &graph[&PathBuf::from(from)];
                    component.iter().filter_map(move |to| {
                        names
                            .get(&PathBuf::from(to))
                            .filter(|_| !parent_to_child(Path::new(from), Path::new(to)))
                            .map(|n| format!("{from} -> {to}: {n:?}"))
                    })
                })
                .collect();
            edges.join("\n    ")
        })
        .collect();
    assert!(
        found.is_empty(),
        "file loops:\n    {}",
        described.join("\n  ---\n    ")
    );
}

#[test]
fn no_folder_imports_itself_around_a_loop() {
    let (_, graph) = import_graph(Resolution::Defining);
    // A file directly under src/ is a top-level module of its own, not a member of a folder.
    let folder = |file: &Path| match file.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => file.to_path_buf(),
    };
    let mut folders: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (file, targets) in &graph {
        let from = folder(file);
        let entry = folders.entry(from.display().to_string()).or_default();
        for target in targets.keys() {
            let to = folder(target);
            // A folder's face composing its subfolders is the parent → child edge again.
            if to != from && !parent_to_child(file, target) {
                entry.insert(to.display().to_string());
            }
        }
    }
    let found = loops(&folders);
    assert!(found.is_empty(), "folder loops: {found:?}");
}

#[test]
fn the_checker_sees_imports_and_ignores_prose() {
    let code = code_only(
        "use crate::store::{Store, sqlite::{SqliteStore, open}};\n// use crate::serve::x;\nlet s = \"crate::cli::y\";\nlet t = crate::model::Scope::Global;\nuse super::ledger;",
    );
    let module = vec!["metrics".to_owned(), "routes".to_owned()];
    let paths: Vec<String> = paths_in(&code, &module, &BTreeSet::new())
        .into_iter()
        .map(|p| p.join("::"))
        .collect();
    assert!(paths.contains(&"store::Store".to_owned()), "{paths:?}");
    assert!(
        paths.contains(&"store::sqlite::SqliteStore".to_owned()),
        "{paths:?}"
    );
    assert!(
        paths.contains(&"model::Scope::Global".to_owned()),
        "{paths:?}"
    );
    assert!(paths.contains(&"metrics::ledger".to_owned()), "{paths:?}");
    assert!(
        !paths
            .iter()
            .any(|p| p.starts_with("serve") || p.starts_with("cli")),
        "{paths:?}"
    );
    let nested = inline_modules_resolved("use super::a;\nmod tests {\n    use super::*;\n}\n");
    assert_eq!(nested, "use super::a;\nmod tests {\n    use self::*;\n}\n");
    let mut graph = BTreeMap::new();
    graph.insert("a".to_owned(), BTreeSet::from(["b".to_owned()]));
    graph.insert("b".to_owned(), BTreeSet::from(["a".to_owned()]));
    graph.insert("c".to_owned(), BTreeSet::from(["a".to_owned()]));
    assert_eq!(loops(&graph), vec![vec!["a".to_owned(), "b".to_owned()]]);
}

/// Two files that import each other only through their folder's face (`use super::Name`,
/// re-exported by mod.rs) still form a loop; and a re-export under another name is followed.
#[test]
fn a_loop_through_a_face_is_still_a_loop() {
    let files = [
        (
            "store/mod.rs",
            "mod contract;\nmod patch;\nmod query;\npub use contract::{Store as Backend, StoreError};\npub use patch::PatchOp;\n",
        ),
        ("store/contract.rs", "use super::PatchOp;\npub struct StoreError;\n"),
        ("store/patch.rs", "use super::StoreError;\npub struct PatchOp;\n"),
        ("store/query.rs", "use super::Backend;\n"),
    ];
    let (tree, sources) =
        Tree::build(files.map(|(path, code)| (PathBuf::from(path), code.to_owned())));
    let as_written = graph_of(&tree, &sources, Resolution::AsWritten);
    assert!(file_loops(&as_written).is_empty(), "{as_written:?}");
    let defining = graph_of(&tree, &sources, Resolution::Defining);
    assert_eq!(
        file_loops(&defining),
        vec![vec![
            "store/contract.rs".to_owned(),
            "store/patch.rs".to_owned()
        ]]
    );
    assert!(
        defining[Path::new("store/query.rs")].contains_key(Path::new("store/contract.rs")),
        "{defining:?}"
    );
}
