//! Repository invariants as tests.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn manifests() -> Vec<PathBuf> {
    let mut out = vec![root().join("Cargo.toml")];
    for e in std::fs::read_dir(root().join("crates")).unwrap() {
        let m = e.unwrap().path().join("Cargo.toml");
        if m.exists() {
            out.push(m);
        }
    }
    out
}

fn deps_of(manifest: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(manifest).unwrap();
    let value: toml::Table = toml::from_str(&text).unwrap();
    let mut out = Vec::new();
    for section in ["dependencies", "dev-dependencies"] {
        if let Some(t) = value.get(section).and_then(|v| v.as_table()) {
            out.extend(t.keys().cloned());
        }
    }
    out
}

#[test]
fn only_the_store_depends_on_sled() {
    for m in manifests() {
        let is_store = m.ends_with("crates/store/Cargo.toml");
        assert!(is_store || !deps_of(&m).iter().any(|d| d == "sled"), "{} depends on sled", m.display());
    }
}

#[test]
fn protocol_crates_do_not_depend_on_the_daemon() {
    for m in manifests() {
        if m == root().join("Cargo.toml") || m.ends_with("crates/daemon/Cargo.toml") {
            continue;
        }
        assert!(!deps_of(&m).iter().any(|d| d == "coimail-daemon"), "{}", m.display());
    }
}

#[test]
fn architecture_doc_names_every_crate() {
    let doc = std::fs::read_to_string(root().join("docs/ARCHITECTURE.md")).unwrap();
    for e in std::fs::read_dir(root().join("crates")).unwrap() {
        let name = e.unwrap().file_name().into_string().unwrap();
        assert!(doc.contains(&format!("crates/{name}")), "docs/ARCHITECTURE.md does not mention crates/{name}");
    }
}

#[test]
fn no_source_file_is_too_long() {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    let mut files = Vec::new();
    walk(&root().join("crates"), &mut files);
    walk(&root().join("tests"), &mut files);
    for f in files {
        let lines = std::fs::read_to_string(&f).unwrap().lines().count();
        assert!(lines <= 1000, "{} has {lines} lines; split it", f.display());
    }
}
