//! How a Linux partition sees its channels (the hybrid bridge): one PCI function per
//! channel on bus 0, agreed by the hypervisor (which emulates the function and maps the
//! pages), the Linux-side library (which finds and maps them through sysfs) and the tests.
//!
//! ```text
//! PCI function 00:DD.0, vendor 1af4, device 1110 (inter-VM shared memory), class 0500
//!   BAR0  32-bit memory, REGISTER_BLOCK_BYTES, read-only register block (writes ignored):
//!     0x00 magic  u32  "RHBR"        0x04 layout version u32 (LAYOUT_VERSION)
//!     0x08 kind   u32  (table::CHANNEL_SAMPLING / CHANNEL_QUEUING)
//!     0x0C direction u32 (DIRECTION_LINUX_WRITES / DIRECTION_LINUX_READS)
//!     0x10 msg_size u32               0x14 depth u32
//!     0x18 region bytes u64 (the channel's pages at the start of BAR2)
//!     0x20 writer-pages bytes u64 (the rest of the region is the reader page)
//!     0x28 peer state u32 (PEER_*: the RT partition at the other end, read live)
//!     0x2C channel index in the table u32
//!     0x40 name: NAME_BYTES bytes, UTF-8, NUL-padded
//!   BAR2  64-bit prefetchable memory, a power of two >= region bytes: the channel's shared
//!         pages (write-back cached whatever Linux maps them as); past the region nothing is
//!         mapped.
//! ```
//! BARs are fixed: Linux reads their sizes truthfully and its writes change nothing.

/// PCI vendor and device id of a channel function (the inter-VM shared memory convention).
pub const PCI_VENDOR_ID: u16 = 0x1AF4;
pub const PCI_DEVICE_ID: u16 = 0x1110;
/// Subsystem id telling a RustHallows channel apart from other ivshmem devices ("RH").
pub const PCI_SUBSYSTEM_ID: u16 = 0x5248;
/// Class code: memory controller, RAM (as ivshmem reports).
pub const PCI_CLASS: u32 = 0x05_00_00;
/// Revision id = the register block's layout version.
pub const LAYOUT_VERSION: u32 = 1;

/// `magic` value ("RHBR").
pub const REGISTER_MAGIC: u32 = u32::from_le_bytes(*b"RHBR");
/// Size of BAR0 (one page, so that it can be mapped on its own).
pub const REGISTER_BLOCK_BYTES: u64 = 4096;

pub const REG_MAGIC: u64 = 0x00;
pub const REG_VERSION: u64 = 0x04;
pub const REG_KIND: u64 = 0x08;
pub const REG_DIRECTION: u64 = 0x0C;
pub const REG_MSG_SIZE: u64 = 0x10;
pub const REG_DEPTH: u64 = 0x14;
pub const REG_REGION_BYTES: u64 = 0x18;
pub const REG_WRITER_BYTES: u64 = 0x20;
pub const REG_PEER_STATE: u64 = 0x28;
pub const REG_CHANNEL_INDEX: u64 = 0x2C;
pub const REG_NAME: u64 = 0x40;
/// Bytes of the name field (a channel name is shorter; the rest is NUL).
pub const NAME_BYTES: u64 = 64;

/// `direction`: Linux is the channel's writer.
pub const DIRECTION_LINUX_WRITES: u32 = 0;
/// `direction`: Linux is the channel's reader.
pub const DIRECTION_LINUX_READS: u32 = 1;

/// `peer state`: the RT partition at the other end is running (or waiting for its time).
pub const PEER_RUNNING: u32 = 0;
/// Being restarted by the health monitor or on request; it comes back.
pub const PEER_RESTARTING: u32 = 1;
/// Halted (or faulted for good): nobody will read or write the other end.
pub const PEER_HALTED: u32 = 2;
/// Not started yet.
pub const PEER_BOOTING: u32 = 3;

/// Size of BAR2 for a channel region of `region_bytes`: the smallest power of two that
/// holds it, at least one page (PCI memory BARs are naturally aligned powers of two).
pub const fn shared_bar_bytes(region_bytes: u64) -> u64 {
    let at_least = if region_bytes < 4096 { 4096 } else { region_bytes };
    at_least.next_power_of_two()
}

const _: () = assert!(crate::bootinfo::NAME_MAX as u64 <= NAME_BYTES);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bar_sizes_are_powers_of_two_that_hold_the_region() {
        assert_eq!(shared_bar_bytes(0), 4096);
        assert_eq!(shared_bar_bytes(4096), 4096);
        assert_eq!(shared_bar_bytes(4097), 8192);
        assert_eq!(shared_bar_bytes(3 * 4096), 4 * 4096);
        for r in [1u64, 4096, 5000, 65536, 65537, 1 << 20] {
            let b = shared_bar_bytes(r);
            assert!(b.is_power_of_two() && b >= r && b >= 4096);
        }
    }

    #[test]
    fn registers_fit_the_block_and_do_not_overlap_the_name() {
        const { assert!(REG_CHANNEL_INDEX + 4 <= REG_NAME) };
        const { assert!(REG_NAME + NAME_BYTES <= REGISTER_BLOCK_BYTES) };
        assert_eq!(REGISTER_MAGIC.to_le_bytes(), *b"RHBR");
    }
}
