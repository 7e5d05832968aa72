//! Puts the SDK's linker script on the linker's search path, so that a partition program
//! only has to pass `-Trt-partition.ld` (see any guest's build.rs).

use std::{env, fs, path::PathBuf};

fn main() {
    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let script = manifest.join("link.ld");
    fs::copy(&script, out.join("rt-partition.ld")).expect("copy link.ld to OUT_DIR");
    println!("cargo:rustc-link-search=native={}", out.display());
    println!("cargo:rerun-if-changed=link.ld");
    println!("cargo:rerun-if-changed=build.rs");
}
