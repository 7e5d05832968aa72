//! Loading an uncompressed `vmlinux` ELF: the fast path under an emulator, since the
//! bzImage's decompressor spends most of an emulated boot unpacking XZ.
//!
//! Segments are loaded by physical address (`p_paddr`): the kernel is linked at
//! 0xffffffff81000000 but expects to run from physical 16 MiB until it sets up its own
//! page tables. Two entries are offered:
//! - the 64-bit boot protocol entry, `startup_64`: the ELF entry point (the kernel's
//!   linker script makes `e_entry` physical); enter in long mode with `rsi` = zero page;
//! - the PVH entry, from the Xen ELF note `XEN_ELFNOTE_PHYS32_ENTRY` (type 18): enter in
//!   32-bit protected mode, paging off, `ebx` = `hvm_start_info` (see [`crate::pvh`]).
//!
//! Parsing is bounds-checked throughout: a malformed file is an error, never a panic.

use crate::boot_params::GuestRange;

/// ELF note type carrying the PVH 32-bit entry point.
pub const XEN_ELFNOTE_PHYS32_ENTRY: u32 = 18;
/// The x86 kernel's virtual base (`__START_KERNEL_map`).
pub const START_KERNEL_MAP: u64 = 0xFFFF_FFFF_8000_0000;

const PT_LOAD: u32 = 1;
const PT_NOTE: u32 = 4;
const EM_X86_64: u16 = 62;
const ET_EXEC: u16 = 2;
const EHDR_SIZE: usize = 64;
const PHDR_SIZE: usize = 56;
/// Upper bound on program headers considered (real kernels have about five).
const MAX_PHDRS: usize = 64;

/// Why a file is not a loadable vmlinux.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VmlinuxError {
    /// Not a little-endian ELF64 x86-64 executable.
    NotElf64X86,
    /// A header or segment points outside the file.
    Truncated,
    /// No PT_LOAD segment.
    NoLoadSegments,
    /// A segment would land outside guest RAM.
    OutOfRam,
    /// The entry point lies in no loaded segment.
    BadEntry,
}

/// One PT_LOAD segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadSegment<'a> {
    /// Physical load address.
    pub paddr: u64,
    /// Virtual address it is linked at.
    pub vaddr: u64,
    /// Bytes from the file.
    pub data: &'a [u8],
    /// Size in memory (the rest after `data` is zeroed).
    pub mem_size: u64,
}

/// A parsed vmlinux borrowing the file.
#[derive(Debug, Clone, Copy)]
pub struct Vmlinux<'a> {
    bytes: &'a [u8],
    entry: u64,
    phoff: usize,
    phnum: usize,
}

fn u16_at(b: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(off..off.checked_add(2)?)?.try_into().ok()?))
}
fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(off..off.checked_add(4)?)?.try_into().ok()?))
}
fn u64_at(b: &[u8], off: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(off..off.checked_add(8)?)?.try_into().ok()?))
}

/// True if `bytes` starts like an ELF file (used to tell a vmlinux from a bzImage).
pub fn is_elf(bytes: &[u8]) -> bool {
    bytes.starts_with(b"\x7fELF")
}

impl<'a> Vmlinux<'a> {
    /// Parses the ELF header and checks every program header lies within the file.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, VmlinuxError> {
        if bytes.len() < EHDR_SIZE || !is_elf(bytes) || bytes[4] != 2 || bytes[5] != 1 {
            return Err(VmlinuxError::NotElf64X86);
        }
        if u16_at(bytes, 16) != Some(ET_EXEC) || u16_at(bytes, 18) != Some(EM_X86_64) {
            return Err(VmlinuxError::NotElf64X86);
        }
        let entry = u64_at(bytes, 24).ok_or(VmlinuxError::Truncated)?;
        let phoff = usize::try_from(u64_at(bytes, 32).ok_or(VmlinuxError::Truncated)?)
            .map_err(|_| VmlinuxError::Truncated)?;
        let phentsize = usize::from(u16_at(bytes, 54).ok_or(VmlinuxError::Truncated)?);
        let phnum = usize::from(u16_at(bytes, 56).ok_or(VmlinuxError::Truncated)?);
        if phentsize != PHDR_SIZE || phnum > MAX_PHDRS {
            return Err(VmlinuxError::NotElf64X86);
        }
        let table_end = phoff.checked_add(phnum * PHDR_SIZE).ok_or(VmlinuxError::Truncated)?;
        if table_end > bytes.len() {
            return Err(VmlinuxError::Truncated);
        }
        let elf = Self { bytes, entry, phoff, phnum };
        let mut loads = 0;
        for i in 0..phnum {
            let (kind, offset, size) = elf.phdr_file_range(i).ok_or(VmlinuxError::Truncated)?;
            if offset.checked_add(size).is_none_or(|end| end > bytes.len()) {
                return Err(VmlinuxError::Truncated);
            }
            loads += usize::from(kind == PT_LOAD);
        }
        if loads == 0 {
            return Err(VmlinuxError::NoLoadSegments);
        }
        Ok(elf)
    }

    /// (p_type, p_offset, p_filesz) of program header `i`.
    fn phdr_file_range(&self, i: usize) -> Option<(u32, usize, usize)> {
        let base = self.phoff + i * PHDR_SIZE;
        let kind = u32_at(self.bytes, base)?;
        let offset = usize::try_from(u64_at(self.bytes, base + 8)?).ok()?;
        let filesz = usize::try_from(u64_at(self.bytes, base + 32)?).ok()?;
        Some((kind, offset, filesz))
    }

    /// The PT_LOAD segments, in file order.
    pub fn segments(&self) -> impl Iterator<Item = LoadSegment<'a>> + '_ {
        (0..self.phnum).filter_map(move |i| {
            let base = self.phoff + i * PHDR_SIZE;
            let (kind, offset, filesz) = self.phdr_file_range(i)?;
            if kind != PT_LOAD {
                return None;
            }
            Some(LoadSegment {
                vaddr: u64_at(self.bytes, base + 16)?,
                paddr: u64_at(self.bytes, base + 24)?,
                data: self.bytes.get(offset..offset + filesz)?,
                mem_size: u64_at(self.bytes, base + 40)?,
            })
        })
    }

    /// The physical range `[lowest paddr, highest paddr + memsz)` the kernel occupies.
    pub fn physical_extent(&self) -> GuestRange {
        let start = self.segments().map(|s| s.paddr).min().unwrap_or(0);
        let end = self.segments().map(|s| s.paddr.saturating_add(s.mem_size)).max().unwrap_or(0);
        GuestRange { start, end }
    }

    /// The 64-bit entry (`startup_64`), physical. `e_entry` is physical in the kernel's
    /// own link; a virtual entry inside a segment is translated through that segment.
    pub fn entry_64(&self) -> Result<u64, VmlinuxError> {
        for segment in self.segments() {
            let size = segment.mem_size;
            if self.entry >= segment.paddr && self.entry - segment.paddr < size {
                return Ok(self.entry);
            }
            if self.entry >= segment.vaddr && self.entry - segment.vaddr < size {
                return Ok(segment.paddr + (self.entry - segment.vaddr));
            }
        }
        Err(VmlinuxError::BadEntry)
    }

    /// The PVH 32-bit entry from the `XEN_ELFNOTE_PHYS32_ENTRY` note, if the kernel has
    /// one (CONFIG_PVH). The note's value is physical already.
    pub fn pvh_entry(&self) -> Option<u32> {
        (0..self.phnum).find_map(|i| {
            let (kind, offset, size) = self.phdr_file_range(i)?;
            if kind != PT_NOTE {
                return None;
            }
            find_xen_note(self.bytes.get(offset..offset.checked_add(size)?)?, XEN_ELFNOTE_PHYS32_ENTRY)
                .and_then(|desc| match desc.len() {
                    4 => u32_at(desc, 0),
                    8 => u64_at(desc, 0).and_then(|v| u32::try_from(v).ok()),
                    _ => None,
                })
        })
    }

    /// Copies every segment into `ram` (guest RAM from GPA 0) at its physical address
    /// and zeroes the remainder of each (bss). Returns the occupied extent.
    pub fn load(&self, ram: &mut [u8]) -> Result<GuestRange, VmlinuxError> {
        for segment in self.segments() {
            let start = usize::try_from(segment.paddr).map_err(|_| VmlinuxError::OutOfRam)?;
            let mem_size = usize::try_from(segment.mem_size).map_err(|_| VmlinuxError::OutOfRam)?;
            if segment.data.len() > mem_size {
                return Err(VmlinuxError::Truncated);
            }
            let end = start.checked_add(mem_size).ok_or(VmlinuxError::OutOfRam)?;
            let dest = ram.get_mut(start..end).ok_or(VmlinuxError::OutOfRam)?;
            let (file_part, bss) = dest.split_at_mut(segment.data.len());
            file_part.copy_from_slice(segment.data);
            bss.fill(0);
        }
        Ok(self.physical_extent())
    }
}

/// Finds the descriptor of the first note named "Xen" with type `kind` in a PT_NOTE
/// segment's bytes (entries: namesz, descsz, type, name, desc; 4-byte aligned).
fn find_xen_note(mut notes: &[u8], kind: u32) -> Option<&[u8]> {
    let align4 = |n: usize| n.checked_add(3).map(|v| v & !3);
    while notes.len() >= 12 {
        let namesz = usize::try_from(u32_at(notes, 0)?).ok()?;
        let descsz = usize::try_from(u32_at(notes, 4)?).ok()?;
        let note_type = u32_at(notes, 8)?;
        let name_start: usize = 12;
        let desc_start = name_start.checked_add(align4(namesz)?)?;
        let next = desc_start.checked_add(align4(descsz)?)?;
        let name = notes.get(name_start..name_start + namesz)?;
        let desc = notes.get(desc_start..desc_start + descsz)?;
        if note_type == kind && name == b"Xen\0" {
            return Some(desc);
        }
        notes = notes.get(next..)?;
    }
    None
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    extern crate std;
    use std::vec::Vec;

    fn note(name: &[u8], kind: u32, desc: &[u8]) -> Vec<u8> {
        let mut n = Vec::new();
        n.extend_from_slice(&(name.len() as u32).to_le_bytes());
        n.extend_from_slice(&(desc.len() as u32).to_le_bytes());
        n.extend_from_slice(&kind.to_le_bytes());
        n.extend_from_slice(name);
        n.resize(n.len().next_multiple_of(4), 0);
        n.extend_from_slice(desc);
        n.resize(n.len().next_multiple_of(4), 0);
        n
    }

    /// A synthetic vmlinux shaped like the real one: a text segment at 16 MiB linked at
    /// 0xffffffff81000000, a data segment with bss, a PT_NOTE with Xen notes.
    pub(crate) fn synthetic_vmlinux(pvh: Option<u64>) -> Vec<u8> {
        let text = b"\x48\x31\xc0STARTUP64".to_vec();
        let data = b"DATA".to_vec();
        let mut notes = note(b"Xen\0", 6, b"linux\0");
        notes.extend(note(b"GNU\0", 3, &[1, 2, 3, 4]));
        if let Some(entry) = pvh {
            notes.extend(note(b"Xen\0", XEN_ELFNOTE_PHYS32_ENTRY, &entry.to_le_bytes()));
        }
        let phnum = 3u16;
        let text_off = EHDR_SIZE + PHDR_SIZE * usize::from(phnum);
        let data_off = text_off + text.len();
        let notes_off = data_off + data.len();
        let mut f = std::vec![0u8; EHDR_SIZE];
        f[..4].copy_from_slice(b"\x7fELF");
        f[4] = 2;
        f[5] = 1;
        f[6] = 1;
        f[16..18].copy_from_slice(&ET_EXEC.to_le_bytes());
        f[18..20].copy_from_slice(&EM_X86_64.to_le_bytes());
        f[24..32].copy_from_slice(&0x100_0000u64.to_le_bytes());
        f[32..40].copy_from_slice(&(EHDR_SIZE as u64).to_le_bytes());
        f[54..56].copy_from_slice(&(PHDR_SIZE as u16).to_le_bytes());
        f[56..58].copy_from_slice(&phnum.to_le_bytes());
        let mut phdr = |kind: u32, off: usize, vaddr: u64, paddr: u64, filesz: usize, memsz: u64| {
            let mut p = [0u8; PHDR_SIZE];
            p[0..4].copy_from_slice(&kind.to_le_bytes());
            p[8..16].copy_from_slice(&(off as u64).to_le_bytes());
            p[16..24].copy_from_slice(&vaddr.to_le_bytes());
            p[24..32].copy_from_slice(&paddr.to_le_bytes());
            p[32..40].copy_from_slice(&(filesz as u64).to_le_bytes());
            p[40..48].copy_from_slice(&memsz.to_le_bytes());
            f.extend_from_slice(&p);
        };
        phdr(PT_LOAD, text_off, 0xFFFF_FFFF_8100_0000, 0x100_0000, text.len(), text.len() as u64);
        phdr(PT_LOAD, data_off, 0xFFFF_FFFF_8120_0000, 0x120_0000, data.len(), 0x2000);
        phdr(PT_NOTE, notes_off, 0, 0, notes.len(), notes.len() as u64);
        f.extend_from_slice(&text);
        f.extend_from_slice(&data);
        f.extend_from_slice(&notes);
        f
    }

    #[test]
    fn loads_segments_by_physical_address_and_zeroes_bss() {
        let file = synthetic_vmlinux(Some(0x100_0850));
        let elf = Vmlinux::parse(&file).unwrap();
        let mut ram = std::vec![0xAAu8; 0x130_0000];
        let extent = elf.load(&mut ram).unwrap();
        assert_eq!(extent, GuestRange { start: 0x100_0000, end: 0x120_2000 });
        assert_eq!(&ram[0x100_0000..0x100_000C], b"\x48\x31\xc0STARTUP64");
        assert_eq!(&ram[0x120_0000..0x120_0004], b"DATA");
        assert!(ram[0x120_0004..0x120_2000].iter().all(|&b| b == 0), "bss zeroed");
        assert_eq!(ram[0x120_2000], 0xAA, "nothing beyond memsz touched");
        assert_eq!(ram[0xFF_FFFF], 0xAA);
        assert_eq!(elf.segments().count(), 2);
    }

    #[test]
    fn finds_both_entries() {
        let file = synthetic_vmlinux(Some(0x100_0850));
        let elf = Vmlinux::parse(&file).unwrap();
        assert_eq!(elf.entry_64(), Ok(0x100_0000));
        assert_eq!(elf.pvh_entry(), Some(0x100_0850));
        let without = synthetic_vmlinux(None);
        assert_eq!(Vmlinux::parse(&without).unwrap().pvh_entry(), None);
    }

    #[test]
    fn virtual_entry_is_translated_and_stray_entry_rejected() {
        let mut file = synthetic_vmlinux(None);
        file[24..32].copy_from_slice(&0xFFFF_FFFF_8100_0004u64.to_le_bytes());
        assert_eq!(Vmlinux::parse(&file).unwrap().entry_64(), Ok(0x100_0004));
        file[24..32].copy_from_slice(&0x5000u64.to_le_bytes());
        assert_eq!(Vmlinux::parse(&file).unwrap().entry_64(), Err(VmlinuxError::BadEntry));
    }

    #[test]
    fn rejects_malformed_files() {
        let good = synthetic_vmlinux(None);
        assert_eq!(Vmlinux::parse(b"MZ").unwrap_err(), VmlinuxError::NotElf64X86);
        let mut bad = good.clone();
        bad[18] = 3; // EM_386
        assert_eq!(Vmlinux::parse(&bad).unwrap_err(), VmlinuxError::NotElf64X86);
        let mut bad = good.clone();
        bad[4] = 1; // ELFCLASS32
        assert_eq!(Vmlinux::parse(&bad).unwrap_err(), VmlinuxError::NotElf64X86);
        assert_eq!(Vmlinux::parse(&good[..good.len() - 3]).unwrap_err(), VmlinuxError::Truncated);
        let elf = Vmlinux::parse(&good).unwrap();
        let mut small = std::vec![0u8; 0x100_0000];
        assert_eq!(elf.load(&mut small).unwrap_err(), VmlinuxError::OutOfRam);
    }

    proptest::proptest! {
        #[test]
        fn corrupted_files_never_panic(flips in proptest::collection::vec((0usize..400, proptest::prelude::any::<u8>()), 1..8)) {
            let mut file = synthetic_vmlinux(Some(0x100_0850));
            for (at, value) in flips {
                if at < file.len() { file[at] = value; }
            }
            if let Ok(elf) = Vmlinux::parse(&file) {
                let _ = elf.entry_64();
                let _ = elf.pvh_entry();
                let mut ram = std::vec![0u8; 0x130_0000];
                let _ = elf.load(&mut ram);
            }
        }
    }

    #[test]
    fn debian_vmlinux_if_present() {
        let Some(bytes) = crate::test_assets::read("vmlinux") else { return };
        let elf = Vmlinux::parse(&bytes).unwrap();
        assert_eq!(elf.entry_64(), Ok(0x100_0000));
        let pvh = elf.pvh_entry().expect("Debian's kernel has CONFIG_PVH");
        assert!(elf.physical_extent().contains_range(&GuestRange::sized(u64::from(pvh), 1)));
        assert!(elf.physical_extent().start == 0x100_0000);
    }
}
