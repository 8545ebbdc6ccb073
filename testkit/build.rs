//! Names the template database after the migrations' source, so a changed
//! migration gets a fresh template instead of a stale one.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::Path;

fn main() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../migration/src");
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .map(|entries| entries.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    files.sort();
    let mut hasher = DefaultHasher::new();
    for file in files {
        if let Ok(text) = std::fs::read(&file) {
            file.file_name().hash(&mut hasher);
            text.hash(&mut hasher);
        }
    }
    println!("cargo:rustc-env=APLUS_SCHEMA_HASH={:016x}", hasher.finish());
}
