//! The crate's layering, checked on its own source: every `crate::` path a module names
//! must lead to a module of its own layer or a lower one, and no two modules may name
//! each other. The map of the layers is in the crate's documentation (`lib.rs`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layers, lowest first, by the first segment of a module's path.
const LAYERS: &[(&str, usize)] = &[
    ("clock", 0),
    ("telemetry", 0),
    ("redact", 0),
    ("http", 0),
    ("store", 0),
    ("mail", 0),
    ("aws", 0),
    ("values", 1),
    ("records", 2),
    ("credentials", 3),
    ("app", 4),
    ("protections", 5),
    ("flows", 6),
    ("routes", 7),
    ("web", 7),
];

fn layer_of(module: &str) -> Option<usize> {
    let first = module.split("::").next().unwrap_or_default();
    LAYERS
        .iter()
        .find(|(name, _)| *name == first)
        .map(|(_, rank)| *rank)
}

/// Every source file of the crate, by its module path (`flows::login`, `store`).
fn modules() -> BTreeMap<String, PathBuf> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut found = BTreeMap::new();
    let mut pending = vec![src.clone()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let relative = path.strip_prefix(&src).unwrap_or(&path);
            let mut segments: Vec<String> = relative
                .iter()
                .map(|s| s.to_string_lossy().trim_end_matches(".rs").to_owned())
                .collect();
            if segments.last().is_some_and(|s| s == "mod") {
                segments.pop();
            }
            let name = segments.join("::");
            if name != "lib" && name != "layering" {
                found.insert(name, path);
            }
        }
    }
    found
}

/// The `crate::` paths of a file's code (comments left out), with `{a, b::c}` groups
/// expanded (`crate::x::{a, b}` names `x::a` and `x::b`).
fn crate_paths(text: &str) -> Vec<String> {
    let code: String = text
        .lines()
        .filter(|line| !line.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    let is_path = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == ':';
    let mut paths = Vec::new();
    let mut rest = code.as_str();
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        let prefix: String = rest.chars().take_while(|c| is_path(*c)).collect();
        let after = &rest[prefix.len()..];
        let prefix = prefix.trim_end_matches(':');
        match after.strip_prefix('{') {
            Some(group) => {
                let end = group.find('}').unwrap_or(group.len());
                for item in group[..end].split(',') {
                    let item: String = item.trim().chars().take_while(|c| is_path(*c)).collect();
                    let item = item.trim_end_matches(':');
                    let joined = match (prefix.is_empty(), item.is_empty() || item == "self") {
                        (true, _) => item.to_owned(),
                        (false, true) => prefix.to_owned(),
                        (false, false) => format!("{prefix}::{item}"),
                    };
                    if !joined.is_empty() {
                        paths.push(joined);
                    }
                }
            }
            None => paths.push(prefix.to_owned()),
        }
    }
    paths
}

/// The module a path names: its longest prefix that is a module of the crate.
fn module_named<'a>(path: &str, modules: &'a BTreeMap<String, PathBuf>) -> Option<&'a str> {
    let segments: Vec<&str> = path.split("::").collect();
    (1..=segments.len())
        .rev()
        .map(|n| segments[..n].join("::"))
        .find_map(|prefix| {
            modules
                .get_key_value(&prefix)
                .map(|(name, _)| name.as_str())
        })
}

/// Whether one module is the other or contains it (a folder and its files are one part).
fn related(a: &str, b: &str) -> bool {
    a == b || a.starts_with(&format!("{b}::")) || b.starts_with(&format!("{a}::"))
}

fn uses() -> BTreeMap<String, BTreeSet<String>> {
    let modules = modules();
    assert!(
        modules.len() > 30,
        "the crate's modules were not found: {modules:?}"
    );
    let mut uses: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (name, path) in &modules {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        for used in crate_paths(&text) {
            if let Some(target) = module_named(&used, &modules)
                && !related(name, target)
            {
                uses.entry(name.clone())
                    .or_default()
                    .insert(target.to_owned());
            }
        }
    }
    uses
}

#[test]
fn every_module_belongs_to_a_layer() {
    let unplaced: Vec<String> = modules()
        .into_keys()
        .filter(|name| layer_of(name).is_none())
        .collect();
    assert!(
        unplaced.is_empty(),
        "modules outside every layer: {unplaced:?}"
    );
}

#[test]
fn no_module_uses_a_layer_above_its_own() {
    let mut upward = Vec::new();
    for (user, used) in uses() {
        for target in used {
            if layer_of(&target) > layer_of(&user) {
                upward.push(format!("{user} uses {target}"));
            }
        }
    }
    assert!(upward.is_empty(), "upward uses: {upward:#?}");
}

#[test]
fn no_two_modules_use_each_other() {
    let uses = uses();
    let mut mutual = Vec::new();
    for (a, used) in &uses {
        for b in used {
            if a < b && uses.get(b).is_some_and(|back| back.contains(a)) {
                mutual.push(format!("{a} <-> {b}"));
            }
        }
    }
    assert!(
        mutual.is_empty(),
        "modules that use each other: {mutual:#?}"
    );
}

#[test]
fn the_checker_sees_paths_and_groups() {
    let text = "use crate::protections::{self, backoff::Claim, sessions};\n\
                use crate::{values::email, records};\n\
                // crate::flows::login is a comment\n\
                let x = crate::app::App::new();";
    assert_eq!(
        crate_paths(text),
        [
            "protections",
            "protections::backoff::",
            "protections::sessions",
            "values::email",
            "records",
            "app::",
        ]
        .iter()
        .map(|p| p.trim_end_matches(':').to_owned())
        .collect::<Vec<_>>()
    );
}
