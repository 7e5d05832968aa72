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
