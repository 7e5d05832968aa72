//! The persistent region: memory the partition keeps across its own restarts.
//!
//! A table entry with `persistent SIZE` gives the partition a region of its own at
//! [`PERSISTENT_WINDOW_GPA`]. The hypervisor zeroes it at boot and leaves it alone when the
//! health monitor restarts the partition (after a fault, at its own request or another
//! partition's plain request), while RAM (image, statics, heap, stacks) starts afresh; a
//! clean restart ([`crate::hypercall::restart_partition_clean`], by the partition itself
//! or one with the `restart` privilege acting for the operator) zeroes it too. So what
//! the partition writes there is what it finds after a restart, and nothing else is: it
//! must check what it finds (a magic number, checksums) because a fault may have struck
//! halfway through a write.
//!
//! ```ignore
//! let region = rt_partition::persistent::region(bi).expect("the table gives `persistent`");
//! let boots = u64::from_le_bytes(region[..8].try_into().unwrap()) + 1;
//! region[..8].copy_from_slice(&boots.to_le_bytes());
//! ```

use core::sync::atomic::{AtomicBool, Ordering};

use hallows_abi::bootinfo::BootInfo;
use hallows_abi::layout::{PAGE_SIZE, PERSISTENT_WINDOW_GPA};
use hallows_abi::limits::PERSISTENT_MAX_BYTES;

/// The region as the boot info describes it, `(guest-physical base, bytes)`, when it is
/// one the hypervisor can have mapped: at [`PERSISTENT_WINDOW_GPA`], whole pages, at most
/// [`PERSISTENT_MAX_BYTES`]. `None` when the partition has none (or the page is not to be
/// trusted).
pub fn described(bi: &BootInfo) -> Option<(u64, u64)> {
    let (gpa, bytes) = bi.persistent_region()?;
    let mapped =
        gpa == PERSISTENT_WINDOW_GPA && bytes.is_multiple_of(PAGE_SIZE) && bytes <= PERSISTENT_MAX_BYTES;
    mapped.then_some((gpa, bytes))
}

/// [`described`], once per `taken` flag: the first caller gets the region, later ones
/// `None`, so at most one mutable view of it exists.
pub fn claim(bi: &BootInfo, taken: &AtomicBool) -> Option<(u64, u64)> {
    let region = described(bi)?;
    (!taken.swap(true, Ordering::AcqRel)).then_some(region)
}

static TAKEN: AtomicBool = AtomicBool::new(false);

/// The persistent region as bytes, for the partition's whole life. The first call gets
/// it; any later call (from any vCPU) gets `None`, as does a partition without
/// `persistent` in its table entry. Only meaningful inside a partition (`bi` is the boot
/// info the SDK's entry passed to main).
pub fn region(bi: &BootInfo) -> Option<&'static mut [u8]> {
    let (gpa, bytes) = claim(bi, &TAKEN)?;
    // SAFETY: the hypervisor maps `gpa..gpa + bytes` read-write in this partition's EPT
    // and identity page tables for its whole life (`described` checked it is the window
    // it maps); no other partition maps those host pages, the SDK uses none of them, and
    // `claim` hands the range out once, so this is the only reference to it.
    Some(unsafe { core::slice::from_raw_parts_mut(gpa as *mut u8, bytes as usize) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use zerocopy::FromZeros;

    #[test]
    fn the_region_is_handed_out_once() {
        let mut bi = BootInfo::new_zeroed();
        let taken = AtomicBool::new(false);
        assert_eq!(claim(&bi, &taken), None, "no region in the table");
        assert!(!taken.load(Ordering::Relaxed), "nothing was claimed");
        bi.persistent_gpa = PERSISTENT_WINDOW_GPA;
        bi.persistent_bytes = 64 << 10;
        assert_eq!(claim(&bi, &taken), Some((PERSISTENT_WINDOW_GPA, 64 << 10)));
        assert_eq!(claim(&bi, &taken), None, "a second call gets nothing");
    }

    #[test]
    fn only_a_region_the_hypervisor_maps_is_trusted() {
        let mut bi = BootInfo::new_zeroed();
        bi.persistent_gpa = PERSISTENT_WINDOW_GPA;
        for bytes in [5000, PERSISTENT_MAX_BYTES + PAGE_SIZE, 0] {
            bi.persistent_bytes = bytes;
            assert_eq!(described(&bi), None, "{bytes}");
        }
        bi.persistent_bytes = PERSISTENT_MAX_BYTES;
        assert_eq!(described(&bi), Some((PERSISTENT_WINDOW_GPA, PERSISTENT_MAX_BYTES)));
        bi.persistent_gpa = 0x1000;
        assert_eq!(described(&bi), None, "outside the window");
    }
}
