//! The PVH boot structures (Xen's `hvm_start_info`, version 1), the alternative entry
//! into an uncompressed vmlinux: the vCPU starts in 32-bit protected mode with paging
//! off at the `XEN_ELFNOTE_PHYS32_ENTRY` address, `ebx` = the start info's address, and
//! the kernel finds its command line, initramfs (as module 0), ACPI RSDP and memory map
//! through it.

use crate::boot_params::{E820Table, GuestRange};
use core::mem::{offset_of, size_of};
use zerocopy::little_endian::{U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// `hvm_start_info.magic`: "xEn3" with the high bit of 'E' set.
pub const HVM_START_MAGIC: u32 = 0x336E_C578;
/// The structure version with the memory map.
pub const HVM_START_VERSION: u32 = 1;

/// `struct hvm_start_info` (56 bytes).
#[derive(Debug, Clone, Copy, Default, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct HvmStartInfo {
    /// 0: [`HVM_START_MAGIC`].
    pub magic: U32,
    /// 4: [`HVM_START_VERSION`].
    pub version: U32,
    /// 8: SIF_* flags (0 for an unprivileged guest).
    pub flags: U32,
    /// 12: number of modules at `modlist_paddr`.
    pub nr_modules: U32,
    /// 16: physical address of the module list.
    pub modlist_paddr: U64,
    /// 24: physical address of the NUL-terminated command line.
    pub cmdline_paddr: U64,
    /// 32: physical address of the ACPI RSDP.
    pub rsdp_paddr: U64,
    /// 40: physical address of the memory map (version 1).
    pub memmap_paddr: U64,
    /// 48: number of memory map entries.
    pub memmap_entries: U32,
    /// 52: reserved, zero.
    pub reserved: U32,
}

/// `struct hvm_modlist_entry` (32 bytes).
#[derive(Debug, Clone, Copy, Default, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct HvmModlistEntry {
    /// 0: physical address of the module.
    pub paddr: U64,
    /// 8: size in bytes.
    pub size: U64,
    /// 16: physical address of the module's command line (0 if none).
    pub cmdline_paddr: U64,
    /// 24: reserved, zero.
    pub reserved: U64,
}

/// `struct hvm_memmap_table_entry` (24 bytes). Types are the e820 ones.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned,
)]
#[repr(C)]
pub struct HvmMemmapEntry {
    /// 0: first byte.
    pub addr: U64,
    /// 8: length.
    pub size: U64,
    /// 16: type (1 = RAM, 2 = reserved, 3 = ACPI, ...).
    pub kind: U32,
    /// 20: reserved, zero.
    pub reserved: U32,
}

const _: () = {
    assert!(size_of::<HvmStartInfo>() == 56);
    assert!(offset_of!(HvmStartInfo, modlist_paddr) == 16);
    assert!(offset_of!(HvmStartInfo, rsdp_paddr) == 32);
    assert!(offset_of!(HvmStartInfo, memmap_paddr) == 40);
    assert!(offset_of!(HvmStartInfo, memmap_entries) == 48);
    assert!(size_of::<HvmModlistEntry>() == 32);
    assert!(size_of::<HvmMemmapEntry>() == 24);
};

/// Why the PVH structures could not be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PvhError {
    /// The destination range is outside guest RAM or too small.
    OutOfRam,
}

/// Where the pieces already placed in guest memory are.
#[derive(Debug, Clone, Copy)]
pub struct PvhInputs<'a> {
    /// The command line (already written, NUL-terminated).
    pub cmdline_gpa: u64,
    /// The initramfs, if any (passed as module 0).
    pub initramfs: Option<GuestRange>,
    /// The ACPI RSDP.
    pub rsdp_gpa: u64,
    /// The partition's memory map.
    pub e820: &'a E820Table,
}

/// Bytes [`write_start_info`] needs for a memory map of `entries` entries.
pub const fn start_info_bytes(entries: usize) -> usize {
    size_of::<HvmStartInfo>() + size_of::<HvmModlistEntry>() + entries * size_of::<HvmMemmapEntry>()
}

/// Writes the start info, then the module list, then the memory map, contiguously from
/// `gpa` in `ram` (guest RAM from GPA 0). Returns the start info's address (for `ebx`).
pub fn write_start_info(ram: &mut [u8], gpa: u64, inputs: &PvhInputs<'_>) -> Result<u64, PvhError> {
    let start = usize::try_from(gpa).map_err(|_| PvhError::OutOfRam)?;
    let len = start_info_bytes(inputs.e820.len());
    let area =
        ram.get_mut(start..start.checked_add(len).ok_or(PvhError::OutOfRam)?).ok_or(PvhError::OutOfRam)?;
    let modlist_gpa = gpa + size_of::<HvmStartInfo>() as u64;
    let memmap_gpa = modlist_gpa + size_of::<HvmModlistEntry>() as u64;
    let info = HvmStartInfo {
        magic: U32::new(HVM_START_MAGIC),
        version: U32::new(HVM_START_VERSION),
        flags: U32::new(0),
        nr_modules: U32::new(u32::from(inputs.initramfs.is_some())),
        modlist_paddr: U64::new(if inputs.initramfs.is_some() { modlist_gpa } else { 0 }),
        cmdline_paddr: U64::new(inputs.cmdline_gpa),
        rsdp_paddr: U64::new(inputs.rsdp_gpa),
        memmap_paddr: U64::new(memmap_gpa),
        memmap_entries: U32::new(inputs.e820.len() as u32),
        reserved: U32::new(0),
    };
    let (info_bytes, rest) = area.split_at_mut(size_of::<HvmStartInfo>());
    info_bytes.copy_from_slice(info.as_bytes());
    let (module_bytes, map_bytes) = rest.split_at_mut(size_of::<HvmModlistEntry>());
    let module = inputs
        .initramfs
        .map(|r| HvmModlistEntry { paddr: U64::new(r.start), size: U64::new(r.len()), ..Default::default() })
        .unwrap_or_default();
    module_bytes.copy_from_slice(module.as_bytes());
    for (slot, e) in map_bytes.chunks_exact_mut(size_of::<HvmMemmapEntry>()).zip(inputs.e820.entries()) {
        let entry = HvmMemmapEntry { addr: e.addr, size: e.size, kind: e.kind, reserved: U32::new(0) };
        slot.copy_from_slice(entry.as_bytes());
    }
    Ok(gpa)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boot_params::E820Type;
    extern crate std;

    #[test]
    fn start_info_layout_matches_the_xen_header() {
        let mut info = HvmStartInfo::default();
        info.magic.set(HVM_START_MAGIC);
        info.version.set(1);
        info.nr_modules.set(1);
        info.modlist_paddr.set(0x1111);
        info.cmdline_paddr.set(0x2222);
        info.rsdp_paddr.set(0x3333);
        info.memmap_paddr.set(0x4444);
        info.memmap_entries.set(5);
        let b = info.as_bytes();
        assert_eq!(b[0..4], [0x78, 0xC5, 0x6E, 0x33]);
        assert_eq!(b[4..8], 1u32.to_le_bytes());
        assert_eq!(b[12..16], 1u32.to_le_bytes());
        assert_eq!(b[16..24], 0x1111u64.to_le_bytes());
        assert_eq!(b[24..32], 0x2222u64.to_le_bytes());
        assert_eq!(b[32..40], 0x3333u64.to_le_bytes());
        assert_eq!(b[40..48], 0x4444u64.to_le_bytes());
        assert_eq!(b[48..52], 5u32.to_le_bytes());
    }

    #[test]
    fn writes_start_info_modules_and_memory_map() {
        let ram_ranges = [GuestRange::sized(0, 64 << 20)];
        let carve = [(GuestRange { start: 0x9_F000, end: 0x10_0000 }, E820Type::Reserved)];
        let e820 = E820Table::for_partition(&ram_ranges, &carve).unwrap();
        let mut ram = std::vec![0u8; 0x10000];
        let inputs = PvhInputs {
            cmdline_gpa: 0x2000,
            initramfs: Some(GuestRange::sized(0x300_0000, 0x1234)),
            rsdp_gpa: 0xE_0000,
            e820: &e820,
        };
        assert_eq!(write_start_info(&mut ram, 0x6000, &inputs), Ok(0x6000));
        let info = HvmStartInfo::read_from_bytes(&ram[0x6000..0x6038]).unwrap();
        assert_eq!(info.magic.get(), HVM_START_MAGIC);
        assert_eq!(info.nr_modules.get(), 1);
        assert_eq!(info.rsdp_paddr.get(), 0xE_0000);
        let module = HvmModlistEntry::read_from_bytes(&ram[0x6038..0x6058]).unwrap();
        assert_eq!((module.paddr.get(), module.size.get()), (0x300_0000, 0x1234));
        assert_eq!(info.modlist_paddr.get(), 0x6038);
        assert_eq!(info.memmap_paddr.get(), 0x6058);
        assert_eq!(info.memmap_entries.get(), 3);
        let second = HvmMemmapEntry::read_from_bytes(&ram[0x6058 + 24..0x6058 + 48]).unwrap();
        assert_eq!((second.addr.get(), second.size.get(), second.kind.get()), (0x9_F000, 0x6_1000, 2));
        assert_eq!(write_start_info(&mut ram, 0xFFF0, &inputs), Err(PvhError::OutOfRam));
        let none = PvhInputs { initramfs: None, ..inputs };
        write_start_info(&mut ram, 0x6000, &none).unwrap();
        let info = HvmStartInfo::read_from_bytes(&ram[0x6000..0x6038]).unwrap();
        assert_eq!((info.nr_modules.get(), info.modlist_paddr.get()), (0, 0));
    }
}
