//! Helpers shared by the integration tests.

use std::path::{Path, PathBuf};

/// Every `.pt` file under `configs/`, sorted.
pub fn configs() -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut dirs = vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "pt") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}
