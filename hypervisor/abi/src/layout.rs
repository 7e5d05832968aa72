//! Guest-physical layout of a real-time partition. The hypervisor builds it, the SDK's
//! linker script and start-up code rely on it, so both take the numbers from here.
//!
//! ```text
//! 0x0000_0000  page 0: never mapped in the guest's page tables (null dereferences fault)
//! 0x0000_1000  BootInfo (one page, written by the hypervisor before entry)
//! 0x0000_2000  guest page tables built by the hypervisor (PML4, PDPT, PDs)
//! 0x0010_0000  IMAGE_BASE: the partition ELF is linked and loaded here
//!   ...        heap (from the end of the image to the stacks)
//!   top        one STACK_BYTES stack per vCPU, vCPU 0 highest
//! 0xC000_0000  CHANNEL_WINDOW: shared pages of the partition's channels
//! 0xD000_0000  PERSISTENT_WINDOW: the partition's persistent region (kept across its
//!              restarts), when its table entry has one
//! ```
//!
//! The guest enters in 64-bit long mode with paging on, identity-mapped with 2 MiB pages
//! over its RAM, its channel window and its persistent region (4 KiB pages where a size is
//! not a 2 MiB multiple), `rdi` = [`BOOT_INFO_GPA`], `rsi` = vCPU index,
//! `rsp` = the top of that vCPU's stack, interrupts disabled.

/// Size of a small page.
pub const PAGE_SIZE: u64 = 0x1000;
/// Size of a large page; partition RAM sizes are multiples of it.
pub const LARGE_PAGE_SIZE: u64 = 0x20_0000;
/// Where the hypervisor writes the [`crate::bootinfo::BootInfo`].
pub const BOOT_INFO_GPA: u64 = 0x1000;
/// First page of the guest page tables the hypervisor builds.
pub const PAGE_TABLES_GPA: u64 = 0x2000;
/// End (exclusive) of the area reserved for guest page tables.
pub const PAGE_TABLES_END_GPA: u64 = 0x2_0000;
/// Link and load address of a real-time partition image.
pub const IMAGE_BASE_GPA: u64 = 0x10_0000;
/// Stack size per vCPU.
pub const STACK_BYTES: u64 = 0x1_0000;
/// Guest-physical base of the channel window (shared memory of channels).
pub const CHANNEL_WINDOW_GPA: u64 = 0xC000_0000;
/// Size of the channel window.
pub const CHANNEL_WINDOW_BYTES: u64 = 0x1000_0000;
/// Guest-physical base of the persistent region: right after the channel window, so it
/// collides with neither RAM (which ends below the channel window) nor channels. Its own
/// host memory, kept across the partition's restarts (see `hallows_core::lifecycle::
/// RestartScope`); sizes are limited by [`crate::limits::PERSISTENT_MAX_BYTES`].
pub const PERSISTENT_WINDOW_GPA: u64 = CHANNEL_WINDOW_GPA + CHANNEL_WINDOW_BYTES;
/// The largest RAM a real-time partition may have: RAM must end below the channel window.
pub const RT_MAX_RAM: u64 = CHANNEL_WINDOW_GPA;
/// The smallest RAM a real-time partition may have (page tables, image, one stack).
pub const RT_MIN_RAM: u64 = LARGE_PAGE_SIZE;

/// Top of the stack of vCPU `vcpu` in a partition with `ram_bytes` of RAM.
pub const fn stack_top(ram_bytes: u64, vcpu: u64) -> u64 {
    ram_bytes - vcpu * STACK_BYTES
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_do_not_overlap() {
        const { assert!(BOOT_INFO_GPA + PAGE_SIZE <= PAGE_TABLES_GPA) };
        const { assert!(PAGE_TABLES_END_GPA <= IMAGE_BASE_GPA) };
        const { assert!(IMAGE_BASE_GPA < RT_MIN_RAM) };
        const { assert!(RT_MAX_RAM <= CHANNEL_WINDOW_GPA) };
        const { assert!(CHANNEL_WINDOW_GPA + CHANNEL_WINDOW_BYTES <= PERSISTENT_WINDOW_GPA) };
        const { assert!(PERSISTENT_WINDOW_GPA.is_multiple_of(LARGE_PAGE_SIZE)) };
        assert_eq!(stack_top(RT_MIN_RAM, 0), RT_MIN_RAM);
        assert_eq!(stack_top(RT_MIN_RAM, 1), RT_MIN_RAM - STACK_BYTES);
    }
}
