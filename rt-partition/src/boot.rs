//! Checks of the boot-info page and the memory plan derived from it.

use hallows_abi::bootinfo::{BootInfo, ARGS_MAX, MAX_CHANNELS, NAME_MAX};
use hallows_abi::layout::{IMAGE_BASE_GPA, RT_MAX_RAM, STACK_BYTES};

/// Why a boot-info page is unusable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BootInfoError {
    /// Magic or version differ from what this SDK was built against.
    BadMagicOrVersion,
    /// A name or arguments length, or the channel count, is out of range.
    BadCounts,
    /// RAM size, image end or stack area are inconsistent.
    BadMemory,
}

/// Checks that `bi` is a boot-info page this SDK understands and that its memory facts are
/// consistent: `IMAGE_BASE <= image_end <= stacks_bottom <= ram_bytes <= RT_MAX_RAM` and the
/// stacks of all vCPUs fit between `stacks_bottom` and the end of RAM.
pub fn check(bi: &BootInfo) -> Result<(), BootInfoError> {
    if !bi.is_valid() {
        return Err(BootInfoError::BadMagicOrVersion);
    }
    if bi.name_len as usize > NAME_MAX
        || bi.channel_count as usize > MAX_CHANNELS
        || bi.vcpu_count == 0
        || bi.channels().iter().any(|c| c.name_len as usize > NAME_MAX)
        || bi.args_len as usize > ARGS_MAX
    {
        return Err(BootInfoError::BadCounts);
    }
    let stacks = (bi.vcpu_count as u64).checked_mul(STACK_BYTES).ok_or(BootInfoError::BadMemory)?;
    let ordered = IMAGE_BASE_GPA <= bi.image_end
        && bi.image_end <= bi.stacks_bottom
        && bi.stacks_bottom <= bi.ram_bytes
        && bi.ram_bytes <= RT_MAX_RAM;
    if !ordered || bi.ram_bytes - bi.stacks_bottom < stacks {
        return Err(BootInfoError::BadMemory);
    }
    // A persistent region is described completely or not at all.
    if (bi.persistent_gpa != 0 || bi.persistent_bytes != 0) && crate::persistent::described(bi).is_none() {
        return Err(BootInfoError::BadMemory);
    }
    Ok(())
}

/// The smallest heap worth setting up (the allocator needs room for its own metadata).
pub const MIN_HEAP_BYTES: u64 = 4096;

/// The heap: from the end of the image (the later of what the hypervisor says and what the
/// linker placed, rounded up to 16 bytes) to the bottom of the stacks. `None` when less than
/// [`MIN_HEAP_BYTES`] is left.
pub fn heap_range(bi: &BootInfo, linked_image_end: u64) -> Option<(u64, u64)> {
    let start = bi.image_end.max(linked_image_end).checked_next_multiple_of(16)?;
    let end = bi.stacks_bottom;
    (end >= start && end - start >= MIN_HEAP_BYTES).then_some((start, end - start))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hallows_abi::bootinfo::{fill_name, BOOT_INFO_MAGIC, BOOT_INFO_VERSION};
    use zerocopy::FromZeros;

    pub(crate) fn sample() -> BootInfo {
        let mut bi = BootInfo::new_zeroed();
        bi.magic = BOOT_INFO_MAGIC;
        bi.version = BOOT_INFO_VERSION;
        bi.name_len = fill_name(&mut bi.name, "hello");
        bi.vcpu_count = 2;
        bi.ram_bytes = 4 << 20;
        bi.image_end = 0x10_8000;
        bi.stacks_bottom = bi.ram_bytes - 2 * STACK_BYTES;
        bi.tsc_hz = 100_000_000;
        bi
    }

    #[test]
    fn sample_is_accepted() {
        assert_eq!(check(&sample()), Ok(()));
    }

    #[test]
    fn wrong_magic_or_version_is_rejected() {
        let mut bi = sample();
        bi.magic ^= 1;
        assert_eq!(check(&bi), Err(BootInfoError::BadMagicOrVersion));
        let mut bi = sample();
        bi.version += 1;
        assert_eq!(check(&bi), Err(BootInfoError::BadMagicOrVersion));
    }

    #[test]
    fn counts_out_of_range_are_rejected() {
        let mut bi = sample();
        bi.channel_count = MAX_CHANNELS as u32 + 1;
        assert_eq!(check(&bi), Err(BootInfoError::BadCounts));
        let mut bi = sample();
        bi.vcpu_count = 0;
        assert_eq!(check(&bi), Err(BootInfoError::BadCounts));
        let mut bi = sample();
        bi.name_len = 33;
        assert_eq!(check(&bi), Err(BootInfoError::BadCounts));
    }

    #[test]
    fn args_and_persistent_region_are_read_from_the_boot_info() {
        let mut bi = sample();
        assert_eq!((bi.args(), crate::persistent::described(&bi)), ("", None));
        bi.args_len = hallows_abi::bootinfo::fill_args(&mut bi.args, "topics=orders:4,audit:1");
        bi.persistent_gpa = hallows_abi::layout::PERSISTENT_WINDOW_GPA;
        bi.persistent_bytes = 64 << 10;
        assert_eq!(check(&bi), Ok(()));
        assert_eq!(bi.args(), "topics=orders:4,audit:1");
        assert_eq!(crate::persistent::described(&bi), Some((bi.persistent_gpa, 64 << 10)));
        bi.args_len = ARGS_MAX as u32 + 1;
        assert_eq!(check(&bi), Err(BootInfoError::BadCounts));
        let mut bi = sample();
        bi.persistent_bytes = 64 << 10; // a size without its base
        assert_eq!(check(&bi), Err(BootInfoError::BadMemory));
        let mut bi = sample();
        bi.persistent_gpa = hallows_abi::layout::PERSISTENT_WINDOW_GPA;
        bi.persistent_bytes = 100; // not whole pages
        assert_eq!(check(&bi), Err(BootInfoError::BadMemory));
    }

    #[test]
    fn inconsistent_memory_is_rejected() {
        let mut bi = sample();
        bi.image_end = bi.stacks_bottom + 1;
        assert_eq!(check(&bi), Err(BootInfoError::BadMemory));
        let mut bi = sample();
        bi.stacks_bottom = bi.ram_bytes - STACK_BYTES; // room for one stack, two vCPUs
        assert_eq!(check(&bi), Err(BootInfoError::BadMemory));
        let mut bi = sample();
        bi.ram_bytes = RT_MAX_RAM + (4 << 20);
        bi.stacks_bottom = bi.ram_bytes - 2 * STACK_BYTES;
        assert_eq!(check(&bi), Err(BootInfoError::BadMemory));
        let mut bi = sample();
        bi.vcpu_count = u32::MAX;
        assert_eq!(check(&bi), Err(BootInfoError::BadMemory));
    }

    #[test]
    fn heap_spans_image_end_to_stacks() {
        let bi = sample();
        assert_eq!(heap_range(&bi, 0x10_4000), Some((0x10_8000, bi.stacks_bottom - 0x10_8000)));
        // The linker's end wins when the hypervisor reports less.
        assert_eq!(heap_range(&bi, 0x10_9000), Some((0x10_9000, bi.stacks_bottom - 0x10_9000)));
        assert_eq!(heap_range(&bi, bi.stacks_bottom), None);
        assert_eq!(heap_range(&bi, bi.stacks_bottom - MIN_HEAP_BYTES + 1), None, "too small");
        assert_eq!(
            heap_range(&bi, bi.stacks_bottom - MIN_HEAP_BYTES),
            Some((bi.stacks_bottom - MIN_HEAP_BYTES, MIN_HEAP_BYTES))
        );
        // An unaligned end is rounded up.
        assert_eq!(heap_range(&bi, 0x10_9001).map(|r| r.0), Some(0x10_9010));
    }
}
