//! Linux boot protocol support for RustHallows: everything the hypervisor needs to start
//! an unmodified Linux kernel as a partition. `no_std`, no heap, tested on the host.
//!
//! - [`boot_params`]: the zero page (`struct boot_params`, `struct setup_header`), the
//!   e820 map built from the partition's own memory, command line and initramfs placement.
//! - [`bzimage`]: parsing a bzImage's setup header and locating the 64-bit entry.
//! - [`vmlinux`]: loading an uncompressed vmlinux ELF, its 64-bit and PVH entries.
//! - [`pvh`]: the PVH `hvm_start_info` structures (the alternative 32-bit entry).
//! - [`acpi`]: synthesised ACPI tables listing only the partition's CPUs.
//! - [`setup`]: one call that lays out everything in guest RAM and returns the vCPU's
//!   entry state for the VMCS.
#![no_std]
#![deny(unsafe_code)]

pub mod acpi;
pub mod boot_params;
pub mod bzimage;
pub mod pvh;
pub mod setup;
pub mod vmlinux;

/// The Debian kernel assets `scripts/linux-assets` prepares in `build/linux/`, for the tests
/// that check the real kernel.
#[cfg(test)]
pub(crate) mod test_assets {
    extern crate std;

    /// Reads `build/linux/NAME`. A developer's machine without the assets skips the test
    /// (with a message); under CI (`CI=true`, where `scripts/test` prepares them first) a
    /// missing asset fails it, so the real-kernel checks can never pass by not running.
    pub fn read(name: &str) -> Option<std::vec::Vec<u8>> {
        let path = std::format!("{}/../build/linux/{name}", env!("CARGO_MANIFEST_DIR"));
        match std::fs::read(&path) {
            Ok(bytes) => Some(bytes),
            Err(e) if std::env::var("CI").is_ok_and(|v| v == "true") => {
                panic!("{path}: {e}; CI must run scripts/linux-assets before the tests")
            }
            Err(_) => {
                std::eprintln!("skipped: {path} not prepared (scripts/linux-assets)");
                None
            }
        }
    }
}
