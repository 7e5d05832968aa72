//! Links the partition with the SDK's linker script (rt-partition puts it on the search
//! path) and leaves debug sections out of the image (symbols stay).
fn main() {
    println!("cargo:rustc-link-arg-bins=-Trt-partition.ld");
    println!("cargo:rustc-link-arg-bins=--strip-debug");
    // Static, not position independent, even when RUSTFLAGS replaces the workspace's
    // relocation-model=static (PIC code links fine as a fixed-address executable).
    println!("cargo:rustc-link-arg-bins=--no-pie");
    println!("cargo:rerun-if-changed=build.rs");
}
