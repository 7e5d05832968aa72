//! The x86 Linux boot protocol's data structures: `struct boot_params` (the "zero
//! page") with its embedded `struct setup_header` at 0x1F1, and the e820 memory map.
//!
//! Offsets follow the kernel's Documentation/arch/x86/boot.rst (setup header) and
//! zero-page.rst (the rest); every field's offset is asserted at compile time and in the
//! tests. All multi-byte fields are little-endian, unaligned byte-order types, so the
//! structures can be viewed in place over guest memory at any address.
//!
//! Also here: the e820 builder ([`E820Table::for_partition`]), command-line placement
//! ([`place_cmdline`]) and initramfs placement ([`initramfs_address`]).

use core::mem::{offset_of, size_of};
use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// `setup_header.boot_flag`: the classic boot-sector signature.
pub const BOOT_FLAG: u16 = 0xAA55;
/// `setup_header.header`: "HdrS".
pub const HEADER_MAGIC: u32 = u32::from_le_bytes(*b"HdrS");
/// `type_of_loader` for a boot loader without an assigned id.
pub const LOADER_TYPE_UNDEFINED: u8 = 0xFF;
/// loadflags: the protected-mode code is loaded at 0x100000 or above.
pub const LOADED_HIGH: u8 = 1 << 0;
/// loadflags: KASLR enabled (set by the kernel, not by loaders).
pub const KASLR_FLAG: u8 = 1 << 1;
/// loadflags: suppress early messages.
pub const QUIET_FLAG: u8 = 1 << 5;
/// loadflags: do not reload segment registers in the 32-bit entry.
pub const KEEP_SEGMENTS: u8 = 1 << 6;
/// loadflags: `heap_end_ptr` is valid.
pub const CAN_USE_HEAP: u8 = 1 << 7;
/// xloadflags: the kernel has the 64-bit entry at load address + 0x200.
pub const XLF_KERNEL_64: u16 = 1 << 0;
/// xloadflags: kernel, boot_params, command line and initrd may live above 4 GiB.
pub const XLF_CAN_BE_LOADED_ABOVE_4G: u16 = 1 << 1;
/// The zero page is one page.
pub const BOOT_PARAMS_SIZE: usize = 0x1000;
/// Offset of the setup header in both the zero page and the kernel image.
pub const SETUP_HEADER_OFFSET: usize = 0x1F1;
/// Capacity of the zero page's e820 table.
pub const E820_MAX_ENTRIES: usize = 128;
/// Command line size assumed when the header does not say (protocol < 2.06).
pub const DEFAULT_CMDLINE_SIZE: u32 = 255;

/// `struct setup_header`, 0x1F1..0x26C of the zero page (protocol 2.15).
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct SetupHeader {
    /// 0x1F1: size of the real-mode setup in 512-byte sectors (0 means 4).
    pub setup_sects: u8,
    /// 0x1F2: mount root read-only (obsolete).
    pub root_flags: U16,
    /// 0x1F4: size of the protected-mode code in 16-byte units.
    pub syssize: U32,
    /// 0x1F8: obsolete.
    pub ram_size: U16,
    /// 0x1FA: video mode.
    pub vid_mode: U16,
    /// 0x1FC: default root device.
    pub root_dev: U16,
    /// 0x1FE: 0xAA55.
    pub boot_flag: U16,
    /// 0x200: jump instruction; its second byte + 0x202 is the end of the header.
    pub jump: U16,
    /// 0x202: "HdrS".
    pub header: U32,
    /// 0x206: boot protocol version (major << 8 | minor).
    pub version: U16,
    /// 0x208: real-mode switch hook.
    pub realmode_swtch: U32,
    /// 0x20C: obsolete.
    pub start_sys_seg: U16,
    /// 0x20E: pointer to the kernel version string (minus 0x200).
    pub kernel_version: U16,
    /// 0x210: boot loader identifier (0xFF = undefined).
    pub type_of_loader: u8,
    /// 0x211: boot protocol option flags.
    pub loadflags: u8,
    /// 0x212: move size for the real-mode code (obsolete).
    pub setup_move_size: U16,
    /// 0x214: 32-bit entry point of the protected-mode code.
    pub code32_start: U32,
    /// 0x218: initrd physical address, low 32 bits.
    pub ramdisk_image: U32,
    /// 0x21C: initrd size, low 32 bits.
    pub ramdisk_size: U32,
    /// 0x220: obsolete.
    pub bootsect_kludge: U32,
    /// 0x224: end of the setup stack/heap minus 0x200.
    pub heap_end_ptr: U16,
    /// 0x226: extended loader version.
    pub ext_loader_ver: u8,
    /// 0x227: extended loader type.
    pub ext_loader_type: u8,
    /// 0x228: command line physical address, low 32 bits.
    pub cmd_line_ptr: U32,
    /// 0x22C: highest address the initrd may occupy (its last byte).
    pub initrd_addr_max: U32,
    /// 0x230: physical alignment a relocatable kernel needs.
    pub kernel_alignment: U32,
    /// 0x234: nonzero if the kernel is relocatable.
    pub relocatable_kernel: u8,
    /// 0x235: minimum alignment, as a power of two.
    pub min_alignment: u8,
    /// 0x236: extended load flags (XLF_*).
    pub xloadflags: U16,
    /// 0x238: maximum command line size, excluding the terminating NUL.
    pub cmdline_size: U32,
    /// 0x23C: hardware subarchitecture (0 = PC).
    pub hardware_subarch: U32,
    /// 0x240: subarchitecture-specific data.
    pub hardware_subarch_data: U64,
    /// 0x248: offset of the compressed payload from the protected-mode code.
    pub payload_offset: U32,
    /// 0x24C: length of the payload.
    pub payload_length: U32,
    /// 0x250: physical address of a linked list of `setup_data`.
    pub setup_data: U64,
    /// 0x258: preferred load address of a relocatable kernel.
    pub pref_address: U64,
    /// 0x260: bytes the kernel needs from its load address until it is running.
    pub init_size: U32,
    /// 0x264: EFI handover entry offset.
    pub handover_offset: U32,
    /// 0x268: offset of `kernel_info` from the protected-mode code.
    pub kernel_info_offset: U32,
}

/// One e820 entry (20 bytes, packed).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned,
)]
#[repr(C)]
pub struct E820Entry {
    /// First byte.
    pub addr: U64,
    /// Length in bytes.
    pub size: U64,
    /// An [`E820Type`] value.
    pub kind: U32,
}

/// e820 range types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum E820Type {
    /// Usable RAM.
    Ram = 1,
    /// Reserved: the guest must not use it as RAM.
    Reserved = 2,
    /// ACPI tables, reclaimable after they are parsed.
    Acpi = 3,
    /// ACPI non-volatile storage.
    Nvs = 4,
    /// Known-bad memory.
    Unusable = 5,
}

/// `struct boot_params`: the 4 KiB zero page.
#[derive(Debug, Clone, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct BootParams {
    /// 0x000: `struct screen_info`.
    pub screen_info: [u8; 0x40],
    /// 0x040: `struct apm_bios_info`.
    pub apm_bios_info: [u8; 0x14],
    /// 0x054.
    pub _pad2: [u8; 4],
    /// 0x058: physical address of the tboot shared page.
    pub tboot_addr: U64,
    /// 0x060: `struct ist_info`.
    pub ist_info: [u8; 0x10],
    /// 0x070: physical address of the ACPI RSDP (protocol 2.14+).
    pub acpi_rsdp_addr: U64,
    /// 0x078.
    pub _pad3: [u8; 8],
    /// 0x080: obsolete hd0 disk parameters.
    pub hd0_info: [u8; 0x10],
    /// 0x090: obsolete hd1 disk parameters.
    pub hd1_info: [u8; 0x10],
    /// 0x0A0: obsolete system description table.
    pub sys_desc_table: [u8; 0x10],
    /// 0x0B0: OLPC firmware header.
    pub olpc_ofw_header: [u8; 0x10],
    /// 0x0C0: initrd address, high 32 bits.
    pub ext_ramdisk_image: U32,
    /// 0x0C4: initrd size, high 32 bits.
    pub ext_ramdisk_size: U32,
    /// 0x0C8: command line address, high 32 bits.
    pub ext_cmd_line_ptr: U32,
    /// 0x0CC.
    pub _pad4: [u8; 0x70],
    /// 0x13C: confidential-computing blob address.
    pub cc_blob_address: U32,
    /// 0x140: EDID data.
    pub edid_info: [u8; 0x80],
    /// 0x1C0: `struct efi_info`.
    pub efi_info: [u8; 0x20],
    /// 0x1E0: alternative memory size in KiB.
    pub alt_mem_k: U32,
    /// 0x1E4: scratch field for the kernel setup code.
    pub scratch: U32,
    /// 0x1E8: number of valid entries in `e820_table`.
    pub e820_entries: u8,
    /// 0x1E9: number of entries in `eddbuf`.
    pub eddbuf_entries: u8,
    /// 0x1EA: number of entries in `edd_mbr_sig_buffer`.
    pub edd_mbr_sig_buf_entries: u8,
    /// 0x1EB: keyboard status.
    pub kbd_status: u8,
    /// 0x1EC: secure boot state.
    pub secure_boot: u8,
    /// 0x1ED.
    pub _pad5: [u8; 2],
    /// 0x1EF: the kernel zeroes fields a broken loader left behind if this is nonzero.
    pub sentinel: u8,
    /// 0x1F0.
    pub _pad6: u8,
    /// 0x1F1: the setup header.
    pub hdr: SetupHeader,
    /// 0x26C.
    pub _pad7: [u8; 0x290 - 0x26C],
    /// 0x290: EDD MBR signatures.
    pub edd_mbr_sig_buffer: [U32; 16],
    /// 0x2D0: the e820 memory map.
    pub e820_table: [E820Entry; E820_MAX_ENTRIES],
    /// 0xCD0.
    pub _pad8: [u8; 0x30],
    /// 0xD00: EDD data.
    pub eddbuf: [u8; 0x1EC],
    /// 0xEEC.
    pub _pad9: [u8; 0x114],
}

const _: () = {
    assert!(size_of::<SetupHeader>() == 0x26C - 0x1F1);
    assert!(size_of::<E820Entry>() == 20);
    assert!(size_of::<BootParams>() == BOOT_PARAMS_SIZE);
    assert!(offset_of!(BootParams, acpi_rsdp_addr) == 0x070);
    assert!(offset_of!(BootParams, ext_ramdisk_image) == 0x0C0);
    assert!(offset_of!(BootParams, ext_ramdisk_size) == 0x0C4);
    assert!(offset_of!(BootParams, ext_cmd_line_ptr) == 0x0C8);
    assert!(offset_of!(BootParams, e820_entries) == 0x1E8);
    assert!(offset_of!(BootParams, sentinel) == 0x1EF);
    assert!(offset_of!(BootParams, hdr) == SETUP_HEADER_OFFSET);
    assert!(offset_of!(BootParams, e820_table) == 0x2D0);
    assert!(offset_of!(BootParams, eddbuf) == 0xD00);
};

impl BootParams {
    /// A zeroed zero page.
    pub fn zeroed() -> Self {
        <Self as zerocopy::FromZeros>::new_zeroed()
    }

    /// Sets `ramdisk_image`/`ramdisk_size` and their `ext_*` high halves.
    pub fn set_ramdisk(&mut self, addr: u64, size: u64) {
        self.hdr.ramdisk_image.set(addr as u32);
        self.ext_ramdisk_image.set((addr >> 32) as u32);
        self.hdr.ramdisk_size.set(size as u32);
        self.ext_ramdisk_size.set((size >> 32) as u32);
    }

    /// Sets `cmd_line_ptr` and its `ext_cmd_line_ptr` high half.
    pub fn set_cmdline(&mut self, addr: u64) {
        self.hdr.cmd_line_ptr.set(addr as u32);
        self.ext_cmd_line_ptr.set((addr >> 32) as u32);
    }

    /// Copies an e820 table into the zero page.
    pub fn set_e820(&mut self, table: &E820Table) {
        self.e820_table = [E820Entry::default(); E820_MAX_ENTRIES];
        self.e820_table[..table.len()].copy_from_slice(table.entries());
        self.e820_entries = table.len() as u8;
    }
}

/// A half-open guest-physical range `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuestRange {
    /// First byte.
    pub start: u64,
    /// One past the last byte.
    pub end: u64,
}

impl GuestRange {
    /// `[start, start + size)`, saturating at the top of the address space.
    pub const fn sized(start: u64, size: u64) -> Self {
        Self { start, end: start.saturating_add(size) }
    }

    /// Length in bytes.
    pub const fn len(&self) -> u64 {
        self.end.saturating_sub(self.start)
    }

    /// True if empty.
    pub const fn is_empty(&self) -> bool {
        self.end <= self.start
    }

    /// True if `other` lies entirely inside this range.
    pub const fn contains_range(&self, other: &GuestRange) -> bool {
        other.start >= self.start && other.end <= self.end
    }

    /// True if the two ranges share a byte.
    pub const fn overlaps(&self, other: &GuestRange) -> bool {
        self.start < other.end && other.start < self.end
    }
}

/// Why an e820 table could not be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum E820Error {
    /// More than [`E820_MAX_ENTRIES`] entries would be needed.
    TooManyEntries,
    /// RAM ranges are empty, unsorted or overlapping.
    BadRamRanges,
}

/// An e820 map as the zero page carries it.
#[derive(Debug, Clone)]
pub struct E820Table {
    entries: [E820Entry; E820_MAX_ENTRIES],
    len: usize,
}

impl E820Table {
    /// The e820 map of a partition: its RAM (`ram`, sorted and non-overlapping) is
    /// usable except where `carve` marks a part of it with another type (the legacy BIOS
    /// hole, the ACPI tables). Carved ranges outside the partition's RAM are dropped:
    /// the map never describes memory the partition does not own. Adjacent ranges of the
    /// same type are merged.
    pub fn for_partition(ram: &[GuestRange], carve: &[(GuestRange, E820Type)]) -> Result<Self, E820Error> {
        let mut table = Self { entries: [E820Entry::default(); E820_MAX_ENTRIES], len: 0 };
        let mut previous_end = 0;
        for (i, range) in ram.iter().enumerate() {
            if range.is_empty() || (i > 0 && range.start < previous_end) {
                return Err(E820Error::BadRamRanges);
            }
            previous_end = range.end;
            let mut cursor = range.start;
            while cursor < range.end {
                // The carve covering `cursor` (first listed wins), or the next carve start.
                let covering = carve.iter().find(|(c, _)| c.start <= cursor && cursor < c.end);
                let (kind, end) = match covering {
                    Some((c, kind)) => (*kind, c.end.min(range.end)),
                    None => {
                        let next = carve
                            .iter()
                            .filter(|(c, _)| c.start > cursor && !c.is_empty())
                            .map(|(c, _)| c.start)
                            .min()
                            .unwrap_or(u64::MAX);
                        (E820Type::Ram, next.min(range.end))
                    }
                };
                table.push(cursor, end - cursor, kind)?;
                cursor = end;
            }
        }
        Ok(table)
    }

    fn push(&mut self, addr: u64, size: u64, kind: E820Type) -> Result<(), E820Error> {
        if let Some(last) = self.entries[..self.len].last_mut() {
            if last.kind.get() == kind as u32 && last.addr.get() + last.size.get() == addr {
                last.size.set(last.size.get() + size);
                return Ok(());
            }
        }
        if self.len == E820_MAX_ENTRIES {
            return Err(E820Error::TooManyEntries);
        }
        self.entries[self.len] =
            E820Entry { addr: U64::new(addr), size: U64::new(size), kind: U32::new(kind as u32) };
        self.len += 1;
        Ok(())
    }

    /// The valid entries.
    pub fn entries(&self) -> &[E820Entry] {
        &self.entries[..self.len]
    }

    /// Number of valid entries.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True if the map is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Usable RAM ranges, in address order.
    pub fn usable(&self) -> impl DoubleEndedIterator<Item = GuestRange> + Clone + '_ {
        self.entries()
            .iter()
            .filter(|e| e.kind.get() == E820Type::Ram as u32)
            .map(|e| GuestRange::sized(e.addr.get(), e.size.get()))
    }
}

/// Why the command line could not be placed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmdlineError {
    /// Longer than the kernel's `cmdline_size`.
    TooLong,
    /// Contains a NUL byte.
    EmbeddedNul,
    /// The destination is outside guest RAM.
    OutOfRam,
}

/// Writes `cmdline` NUL-terminated at `gpa` in `ram` (guest RAM from GPA 0). `max_len`
/// is the kernel's `cmdline_size` (the length without the NUL).
pub fn place_cmdline(ram: &mut [u8], gpa: u64, cmdline: &[u8], max_len: u32) -> Result<(), CmdlineError> {
    if cmdline.len() > max_len as usize {
        return Err(CmdlineError::TooLong);
    }
    if cmdline.contains(&0) {
        return Err(CmdlineError::EmbeddedNul);
    }
    let start = usize::try_from(gpa).map_err(|_| CmdlineError::OutOfRam)?;
    let end = start.checked_add(cmdline.len() + 1).ok_or(CmdlineError::OutOfRam)?;
    let dest = ram.get_mut(start..end).ok_or(CmdlineError::OutOfRam)?;
    dest[..cmdline.len()].copy_from_slice(cmdline);
    dest[cmdline.len()] = 0;
    Ok(())
}

/// Page size used for initramfs alignment.
pub const PAGE_SIZE: u64 = 0x1000;

/// Where to load an initramfs of `size` bytes: as high as possible in usable RAM, page
/// aligned, entirely at or below `initrd_addr_max` (the header's address of the last
/// byte the initrd may occupy), and at or above `lowest` (the end of the kernel's
/// `init_size` footprint). `None` if it does not fit.
pub fn initramfs_address(e820: &E820Table, size: u64, initrd_addr_max: u64, lowest: u64) -> Option<u64> {
    if size == 0 {
        return None;
    }
    let limit = initrd_addr_max.saturating_add(1);
    e820.usable().rev().find_map(|range| {
        let top = range.end.min(limit);
        let start = top.checked_sub(size)? & !(PAGE_SIZE - 1);
        (start >= range.start && start >= lowest).then_some(start)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    extern crate std;

    fn bytes_at(bp: &BootParams, offset: usize, len: usize) -> &[u8] {
        &bp.as_bytes()[offset..offset + len]
    }

    #[test]
    fn setup_header_fields_sit_at_the_documented_offsets() {
        // (offset in the zero page per boot.rst, size, field setter)
        let mut bp = BootParams::zeroed();
        bp.hdr.setup_sects = 0x11;
        bp.hdr.boot_flag.set(BOOT_FLAG);
        bp.hdr.header.set(HEADER_MAGIC);
        bp.hdr.version.set(0x020F);
        bp.hdr.type_of_loader = LOADER_TYPE_UNDEFINED;
        bp.hdr.loadflags = LOADED_HIGH | CAN_USE_HEAP;
        bp.hdr.code32_start.set(0x0010_0000);
        bp.hdr.heap_end_ptr.set(0xFE00);
        bp.hdr.initrd_addr_max.set(0x7FFF_FFFF);
        bp.hdr.kernel_alignment.set(0x20_0000);
        bp.hdr.relocatable_kernel = 1;
        bp.hdr.min_alignment = 21;
        bp.hdr.xloadflags.set(XLF_KERNEL_64);
        bp.hdr.cmdline_size.set(2047);
        bp.hdr.payload_offset.set(0xAABB);
        bp.hdr.setup_data.set(0x1122_3344_5566_7788);
        bp.hdr.pref_address.set(0x100_0000);
        bp.hdr.init_size.set(0x3F9_8000);
        bp.hdr.kernel_info_offset.set(0xCAFE);
        assert_eq!(bytes_at(&bp, 0x1F1, 1), [0x11]);
        assert_eq!(bytes_at(&bp, 0x1FE, 2), [0x55, 0xAA]);
        assert_eq!(bytes_at(&bp, 0x202, 4), b"HdrS");
        assert_eq!(bytes_at(&bp, 0x206, 2), [0x0F, 0x02]);
        assert_eq!(bytes_at(&bp, 0x210, 2), [0xFF, 0x81]);
        assert_eq!(bytes_at(&bp, 0x214, 4), [0, 0, 0x10, 0]);
        assert_eq!(bytes_at(&bp, 0x224, 2), [0x00, 0xFE]);
        assert_eq!(bytes_at(&bp, 0x22C, 4), [0xFF, 0xFF, 0xFF, 0x7F]);
        assert_eq!(bytes_at(&bp, 0x230, 4), [0, 0, 0x20, 0]);
        assert_eq!(bytes_at(&bp, 0x234, 4), [1, 21, 1, 0]);
        assert_eq!(bytes_at(&bp, 0x238, 4), [0xFF, 0x07, 0, 0]);
        assert_eq!(bytes_at(&bp, 0x248, 2), [0xBB, 0xAA]);
        assert_eq!(bytes_at(&bp, 0x250, 8), 0x1122_3344_5566_7788u64.to_le_bytes());
        assert_eq!(bytes_at(&bp, 0x258, 8), 0x100_0000u64.to_le_bytes());
        assert_eq!(bytes_at(&bp, 0x260, 4), 0x3F9_8000u32.to_le_bytes());
        assert_eq!(bytes_at(&bp, 0x268, 4), 0xCAFEu32.to_le_bytes());
    }

    #[test]
    fn zero_page_fields_sit_at_the_documented_offsets() {
        let mut bp = BootParams::zeroed();
        bp.acpi_rsdp_addr.set(0xE_0000);
        bp.set_ramdisk(0x1_2345_6000, 0x2_0000_1000);
        bp.set_cmdline(0x3_0000_2000);
        bp.e820_entries = 3;
        bp.sentinel = 0x77;
        assert_eq!(bytes_at(&bp, 0x070, 8), 0xE_0000u64.to_le_bytes());
        assert_eq!(bytes_at(&bp, 0x218, 4), 0x2345_6000u32.to_le_bytes(), "ramdisk_image");
        assert_eq!(bytes_at(&bp, 0x0C0, 4), 1u32.to_le_bytes(), "ext_ramdisk_image");
        assert_eq!(bytes_at(&bp, 0x21C, 4), 0x1000u32.to_le_bytes(), "ramdisk_size");
        assert_eq!(bytes_at(&bp, 0x0C4, 4), 2u32.to_le_bytes(), "ext_ramdisk_size");
        assert_eq!(bytes_at(&bp, 0x228, 4), 0x2000u32.to_le_bytes(), "cmd_line_ptr");
        assert_eq!(bytes_at(&bp, 0x0C8, 4), 3u32.to_le_bytes(), "ext_cmd_line_ptr");
        assert_eq!(bytes_at(&bp, 0x1E8, 1), [3]);
        assert_eq!(bytes_at(&bp, 0x1EF, 1), [0x77]);
        assert_eq!(bp.as_bytes().len(), 4096);
    }

    #[test]
    fn e820_table_is_written_at_0x2d0_in_20_byte_entries() {
        let ram = [GuestRange::sized(0, 0x800_0000)];
        let table = E820Table::for_partition(&ram, &[]).unwrap();
        let mut bp = BootParams::zeroed();
        bp.set_e820(&table);
        assert_eq!(bytes_at(&bp, 0x1E8, 1), [1]);
        assert_eq!(bytes_at(&bp, 0x2D0, 8), 0u64.to_le_bytes());
        assert_eq!(bytes_at(&bp, 0x2D8, 8), 0x800_0000u64.to_le_bytes());
        assert_eq!(bytes_at(&bp, 0x2E0, 4), 1u32.to_le_bytes());
        assert_eq!(bytes_at(&bp, 0x2E4, 20), [0; 20], "second entry empty");
    }

    fn entry(addr: u64, size: u64, kind: E820Type) -> E820Entry {
        E820Entry { addr: U64::new(addr), size: U64::new(size), kind: U32::new(kind as u32) }
    }

    #[test]
    fn e820_carves_the_bios_hole_and_never_exceeds_partition_ram() {
        let ram = [GuestRange::sized(0, 256 << 20)];
        let carve = [
            (GuestRange { start: 0x9_F000, end: 0x10_0000 }, E820Type::Reserved),
            // Another partition's memory: outside our RAM, must not appear.
            (GuestRange::sized(512 << 20, 64 << 20), E820Type::Reserved),
        ];
        let table = E820Table::for_partition(&ram, &carve).unwrap();
        assert_eq!(
            table.entries(),
            [
                entry(0, 0x9_F000, E820Type::Ram),
                entry(0x9_F000, 0x6_1000, E820Type::Reserved),
                entry(0x10_0000, (256 << 20) - 0x10_0000, E820Type::Ram),
            ]
        );
        let end = table.entries().iter().map(|e| e.addr.get() + e.size.get()).max().unwrap();
        assert_eq!(end, 256 << 20);
    }

    #[test]
    fn e820_handles_split_ram_and_merges_neighbours() {
        let ram = [GuestRange::sized(0, 0x10_0000), GuestRange::sized(0x10_0000, 0x10_0000)];
        let carve = [(GuestRange::sized(0xE_0000, 0x2_0000), E820Type::Acpi)];
        let table = E820Table::for_partition(&ram, &carve).unwrap();
        assert_eq!(
            table.entries(),
            [
                entry(0, 0xE_0000, E820Type::Ram),
                entry(0xE_0000, 0x2_0000, E820Type::Acpi),
                entry(0x10_0000, 0x10_0000, E820Type::Ram),
            ]
        );
        assert_eq!(
            E820Table::for_partition(&[GuestRange::sized(0x1000, 0x1000), GuestRange::sized(0, 0x2000)], &[])
                .unwrap_err(),
            E820Error::BadRamRanges
        );
        let many: [GuestRange; 130] = core::array::from_fn(|i| GuestRange::sized(i as u64 * 0x2000, 0x1000));
        assert_eq!(E820Table::for_partition(&many, &[]).unwrap_err(), E820Error::TooManyEntries);
    }

    #[test]
    fn cmdline_is_nul_terminated_and_bounded() {
        let mut ram = [0xEEu8; 64];
        place_cmdline(&mut ram, 8, b"console=ttyS0", 2047).unwrap();
        assert_eq!(&ram[8..22], b"console=ttyS0\0");
        assert_eq!(ram[22], 0xEE);
        assert_eq!(place_cmdline(&mut ram, 0, b"abcdef", 5), Err(CmdlineError::TooLong));
        assert_eq!(place_cmdline(&mut ram, 60, b"abcd", 100), Err(CmdlineError::OutOfRam));
        assert_eq!(place_cmdline(&mut ram, 0, b"a\0b", 100), Err(CmdlineError::EmbeddedNul));
        assert_eq!(place_cmdline(&mut ram, u64::MAX, b"", 100), Err(CmdlineError::OutOfRam));
    }

    #[test]
    fn initramfs_goes_high_page_aligned_below_the_limit() {
        let ram = [GuestRange::sized(0, 256 << 20)];
        let carve = [(GuestRange { start: 0x9_F000, end: 0x10_0000 }, E820Type::Reserved)];
        let table = E820Table::for_partition(&ram, &carve).unwrap();
        let addr = initramfs_address(&table, 1_984_008, 0x7FFF_FFFF, 0x500_0000).unwrap();
        assert_eq!(addr % PAGE_SIZE, 0);
        assert!(addr + 1_984_008 <= 256 << 20);
        assert!((256 << 20) - (addr + 1_984_008) < PAGE_SIZE, "as high as possible");
        // A limit below the top of RAM is honoured (the limit is the last usable byte).
        let addr = initramfs_address(&table, 0x1000, 0x3FF_FFFF, 0).unwrap();
        assert_eq!(addr, 0x400_0000 - 0x1000);
        // Not above the kernel, not in the BIOS hole.
        assert_eq!(initramfs_address(&table, 0x1000_0000, 0x7FFF_FFFF, 0x100_0000), None);
        assert_eq!(initramfs_address(&table, 0, 0x7FFF_FFFF, 0), None);
        let small = E820Table::for_partition(&[GuestRange::sized(0, 0x20_0000)], &carve).unwrap();
        assert_eq!(initramfs_address(&small, 0x8_0000, 0x7FFF_FFFF, 0), Some(0x18_0000));
        // 1.5 MiB fits in neither the 1 MiB above the hole nor the 636 KiB below it.
        assert_eq!(initramfs_address(&small, 0x18_0000, 0x7FFF_FFFF, 0), None);
        assert_eq!(initramfs_address(&small, 0x2_0000, 0x7FFF_FFFF, 0), Some(0x1E_0000));
        assert_eq!(initramfs_address(&small, 0x2_0000, 0xF_FFFF, 0), Some(0x7_F000));
    }

    proptest::proptest! {
        #[test]
        fn e820_covers_exactly_the_partition_ram(
            sizes in proptest::collection::vec((0u64..64, 1u64..64), 1..6),
            carves in proptest::collection::vec((0u64..512, 1u64..64), 0..4),
        ) {
            // RAM ranges from (gap, length) pairs in pages, sorted and disjoint.
            let mut ram = std::vec::Vec::new();
            let mut cursor = 0;
            for (gap, len) in sizes {
                let start = cursor + gap * PAGE_SIZE;
                ram.push(GuestRange::sized(start, len * PAGE_SIZE));
                cursor = start + len * PAGE_SIZE;
            }
            let carve: std::vec::Vec<_> = carves
                .iter()
                .map(|&(at, len)| (GuestRange::sized(at * PAGE_SIZE, len * PAGE_SIZE), E820Type::Reserved))
                .collect();
            let table = E820Table::for_partition(&ram, &carve).unwrap();
            let mut previous_end = 0;
            let mut total = 0;
            for e in table.entries() {
                let range = GuestRange::sized(e.addr.get(), e.size.get());
                proptest::prop_assert!(!range.is_empty());
                proptest::prop_assert!(range.start >= previous_end, "sorted, disjoint");
                // Adjacent ranges merge, so check page by page.
                for page in (range.start..range.end).step_by(PAGE_SIZE as usize) {
                    let page = GuestRange::sized(page, PAGE_SIZE);
                    proptest::prop_assert!(ram.iter().any(|r| r.contains_range(&page)), "inside partition RAM");
                }
                if e.kind.get() == E820Type::Ram as u32 {
                    proptest::prop_assert!(carve.iter().all(|(c, _)| !c.overlaps(&range)), "RAM never carved");
                } else {
                    // Every page of a reserved entry lies in some carve (neighbours merge).
                    for page in (range.start..range.end).step_by(PAGE_SIZE as usize) {
                        let page = GuestRange::sized(page, PAGE_SIZE);
                        proptest::prop_assert!(carve.iter().any(|(c, _)| c.contains_range(&page)));
                    }
                }
                previous_end = range.end;
                total += range.len();
            }
            proptest::prop_assert_eq!(total, ram.iter().map(|r| r.len()).sum::<u64>(), "all RAM described");
        }

        #[test]
        fn initramfs_placement_respects_every_bound(
            ram_pages in 512u64..4096, size in 1u64..0x40_0000, limit in 0x10_0000u64..0x1000_0000, lowest in 0u64..0x80_0000,
        ) {
            let ram = [GuestRange::sized(0, ram_pages * PAGE_SIZE)];
            let carve = [(GuestRange { start: 0x9_F000, end: 0x10_0000 }, E820Type::Reserved)];
            let table = E820Table::for_partition(&ram, &carve).unwrap();
            if let Some(addr) = initramfs_address(&table, size, limit, lowest) {
                let placed = GuestRange::sized(addr, size);
                proptest::prop_assert_eq!(addr % PAGE_SIZE, 0);
                proptest::prop_assert!(addr >= lowest);
                proptest::prop_assert!(placed.end - 1 <= limit);
                proptest::prop_assert!(table.usable().any(|r| r.contains_range(&placed)));
            }
        }
    }
}
