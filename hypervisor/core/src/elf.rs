//! Loading a real-time partition's ELF64 x86-64 executable into its guest RAM.
//!
//! The image is hostile input (it comes from the ESP): every field is range-checked and no
//! input makes this module panic. Headers are read field by field with little-endian
//! helpers, so the image needs no alignment.
//!
//! Rules a loadable image must satisfy (see [`load_rt_image`]):
//! - `ET_EXEC`, `EM_X86_64`, ELFCLASS64, little-endian, version 1;
//! - every `PT_LOAD` segment has `p_vaddr == p_paddr` (RT partitions run identity-mapped),
//!   `p_filesz <= p_memsz`, its file bytes inside the file, and its memory inside
//!   `[IMAGE_BASE_GPA, ram_bytes - vcpus * STACK_BYTES)` (the stacks are at the top);
//! - no two `PT_LOAD` segments overlap;
//! - the entry point lies inside a loaded, executable (`PF_X`) segment.
//!
//! ```
//! # use hallows_core::elf::{load_rt_image, ElfError};
//! let mut ram = vec![0u8; 2 << 20];
//! // Not an ELF at all:
//! assert_eq!(load_rt_image(b"MZ..", &mut ram, 1), Err(ElfError::Truncated));
//! ```

use core::fmt;
use hallows_abi::layout::{IMAGE_BASE_GPA, PAGE_SIZE};

/// Most `PT_LOAD` segments an image may have (keeps the overlap check cheap and bounded).
pub const MAX_LOAD_SEGMENTS: usize = 32;
/// Program header type of a loadable segment.
pub const PT_LOAD: u32 = 1;
/// Segment flag: executable.
pub const PF_X: u32 = 1;
/// Segment flag: writable.
pub const PF_W: u32 = 2;
/// Segment flag: readable.
pub const PF_R: u32 = 4;

const EHDR_SIZE: usize = 64;
const PHDR_SIZE: usize = 56;
const ET_EXEC: u16 = 2;
const EM_X86_64: u16 = 62;

/// Why an image was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ElfError {
    /// The file is shorter than a header or a table it declares.
    Truncated,
    /// Not `\x7fELF`.
    BadMagic,
    /// Not a 64-bit, little-endian, version-1, x86-64 executable (`ET_EXEC`).
    Unsupported,
    /// Program header entry size is not 56 bytes or the table lies outside the file.
    BadProgramHeaders,
    /// More than [`MAX_LOAD_SEGMENTS`] loadable segments.
    TooManySegments,
    /// No `PT_LOAD` segment at all.
    NoSegments,
    /// Segment `index` has `p_filesz > p_memsz`, file bytes outside the file, or
    /// `p_vaddr != p_paddr`.
    BadSegment { index: usize },
    /// Segment `index` lies (partly) outside the loadable area `[min, max)`.
    OutOfRange { index: usize, start: u64, end: u64, min: u64, max: u64 },
    /// Segments `a` and `b` overlap.
    Overlap { a: usize, b: usize },
    /// The entry point is not inside a loaded executable segment.
    BadEntry { entry: u64 },
    /// The RAM slice is too small for the requested vCPU stacks above the image base.
    RamTooSmall,
}

impl fmt::Display for ElfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Truncated => write!(f, "ELF image truncated"),
            Self::BadMagic => write!(f, "not an ELF image"),
            Self::Unsupported => write!(f, "not an ELF64 little-endian x86-64 executable"),
            Self::BadProgramHeaders => write!(f, "bad program header table"),
            Self::TooManySegments => write!(f, "more than {MAX_LOAD_SEGMENTS} PT_LOAD segments"),
            Self::NoSegments => write!(f, "no PT_LOAD segment"),
            Self::BadSegment { index } => write!(f, "program header {index} is malformed"),
            Self::OutOfRange { index, start, end, min, max } => write!(
                f,
                "program header {index} [{start:#x}, {end:#x}) outside the loadable area [{min:#x}, {max:#x})"
            ),
            Self::Overlap { a, b } => write!(f, "program headers {a} and {b} overlap"),
            Self::BadEntry { entry } => write!(f, "entry point {entry:#x} not in an executable segment"),
            Self::RamTooSmall => write!(f, "partition RAM too small for image base and stacks"),
        }
    }
}

/// One loadable segment as described by the image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    /// Index of the program header.
    pub index: usize,
    /// Guest-physical (= virtual) load address.
    pub gpa: u64,
    /// Bytes in memory (file bytes followed by zeroes).
    pub mem_bytes: u64,
    /// Offset of the file bytes in the image.
    pub file_offset: u64,
    /// Bytes taken from the file.
    pub file_bytes: u64,
    /// `PF_*` flags.
    pub flags: u32,
}

impl Segment {
    /// Guest-physical end (exclusive). Never overflows for a parsed segment.
    pub fn end(&self) -> u64 {
        self.gpa + self.mem_bytes
    }
}

/// The parsed image: entry point and its loadable segments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ElfImage {
    pub entry: u64,
    segments: [Segment; MAX_LOAD_SEGMENTS],
    count: usize,
}

impl ElfImage {
    /// The `PT_LOAD` segments in program-header order (empty ones skipped).
    pub fn segments(&self) -> &[Segment] {
        &self.segments[..self.count]
    }
}

/// What [`load_rt_image`] produced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoadedImage {
    /// Guest-physical entry point.
    pub entry: u64,
    /// End of the highest segment, rounded up to a page: where the heap may start.
    pub image_end: u64,
}

fn bytes<const N: usize>(data: &[u8], at: usize) -> Result<[u8; N], ElfError> {
    let end = at.checked_add(N).ok_or(ElfError::Truncated)?;
    let slice = data.get(at..end).ok_or(ElfError::Truncated)?;
    let mut out = [0u8; N];
    out.copy_from_slice(slice);
    Ok(out)
}
fn u16_at(d: &[u8], at: usize) -> Result<u16, ElfError> {
    bytes::<2>(d, at).map(u16::from_le_bytes)
}
fn u32_at(d: &[u8], at: usize) -> Result<u32, ElfError> {
    bytes::<4>(d, at).map(u32::from_le_bytes)
}
fn u64_at(d: &[u8], at: usize) -> Result<u64, ElfError> {
    bytes::<8>(d, at).map(u64::from_le_bytes)
}

/// Parses the headers of `elf` without checking where segments go in RAM.
pub fn parse(elf: &[u8]) -> Result<ElfImage, ElfError> {
    let ident = bytes::<16>(elf, 0).map_err(|_| ElfError::Truncated)?;
    if elf.len() < EHDR_SIZE {
        return Err(ElfError::Truncated);
    }
    if ident[..4] != *b"\x7fELF" {
        return Err(ElfError::BadMagic);
    }
    // EI_CLASS = ELFCLASS64, EI_DATA = little-endian, EI_VERSION = 1.
    if ident[4] != 2 || ident[5] != 1 || ident[6] != 1 {
        return Err(ElfError::Unsupported);
    }
    if u16_at(elf, 16)? != ET_EXEC || u16_at(elf, 18)? != EM_X86_64 || u32_at(elf, 20)? != 1 {
        return Err(ElfError::Unsupported);
    }
    let entry = u64_at(elf, 24)?;
    let phoff = u64_at(elf, 32)?;
    let phentsize = u16_at(elf, 54)? as usize;
    let phnum = u16_at(elf, 56)? as usize;
    if phentsize != PHDR_SIZE {
        return Err(ElfError::BadProgramHeaders);
    }
    let table_end = phoff.checked_add((phnum * PHDR_SIZE) as u64).ok_or(ElfError::BadProgramHeaders)?;
    if table_end > elf.len() as u64 {
        return Err(ElfError::BadProgramHeaders);
    }
    let phoff = phoff as usize;

    let empty = Segment { index: 0, gpa: 0, mem_bytes: 0, file_offset: 0, file_bytes: 0, flags: 0 };
    let mut image = ElfImage { entry, segments: [empty; MAX_LOAD_SEGMENTS], count: 0 };
    for index in 0..phnum {
        let ph = phoff + index * PHDR_SIZE;
        if u32_at(elf, ph)? != PT_LOAD {
            continue;
        }
        let seg = Segment {
            index,
            flags: u32_at(elf, ph + 4)?,
            file_offset: u64_at(elf, ph + 8)?,
            gpa: u64_at(elf, ph + 16)?,
            file_bytes: u64_at(elf, ph + 32)?,
            mem_bytes: u64_at(elf, ph + 40)?,
        };
        let paddr = u64_at(elf, ph + 24)?;
        let file_end = seg.file_offset.checked_add(seg.file_bytes);
        if paddr != seg.gpa
            || seg.file_bytes > seg.mem_bytes
            || file_end.is_none_or(|e| e > elf.len() as u64)
            || seg.gpa.checked_add(seg.mem_bytes).is_none()
        {
            return Err(ElfError::BadSegment { index });
        }
        if seg.mem_bytes == 0 {
            continue;
        }
        if image.count == MAX_LOAD_SEGMENTS {
            return Err(ElfError::TooManySegments);
        }
        image.segments[image.count] = seg;
        image.count += 1;
    }
    if image.count == 0 {
        return Err(ElfError::NoSegments);
    }
    Ok(image)
}

/// Checks `image` against a partition with `ram_bytes` of RAM and `vcpus` stacks: every
/// segment inside `[IMAGE_BASE_GPA, ram_bytes - vcpus * STACK_BYTES)`, no overlaps, entry in
/// an executable segment. Returns the page-rounded image end.
pub fn check_placement(image: &ElfImage, ram_bytes: u64, vcpus: u32) -> Result<u64, ElfError> {
    let min = IMAGE_BASE_GPA;
    let max = hallows_abi::limits::stacks_bottom(ram_bytes, vcpus)
        .filter(|&m| m > min)
        .ok_or(ElfError::RamTooSmall)?;
    let segs = image.segments();
    for s in segs {
        if s.gpa < min || s.end() > max {
            return Err(ElfError::OutOfRange { index: s.index, start: s.gpa, end: s.end(), min, max });
        }
    }
    for (i, a) in segs.iter().enumerate() {
        for b in &segs[i + 1..] {
            if a.gpa < b.end() && b.gpa < a.end() {
                return Err(ElfError::Overlap { a: a.index, b: b.index });
            }
        }
    }
    let entry = image.entry;
    if !segs.iter().any(|s| s.flags & PF_X != 0 && s.gpa <= entry && entry < s.end()) {
        return Err(ElfError::BadEntry { entry });
    }
    let end = segs.iter().map(Segment::end).max().unwrap_or(min);
    // `end <= max < ram_bytes`, so rounding up to a page cannot overflow.
    Ok(end.div_ceil(PAGE_SIZE) * PAGE_SIZE)
}

/// Parses `elf`, checks it against a partition whose guest RAM is `ram` (guest-physical 0
/// is `ram[0]`) with `vcpus` vCPU stacks at the top, and copies every `PT_LOAD` segment to
/// its address, zeroing the `p_memsz - p_filesz` tail (.bss). Nothing is written unless
/// every check passes. Bytes outside the segments are left as they are: the caller scrubs
/// RAM before a (re)load.
pub fn load_rt_image(elf: &[u8], ram: &mut [u8], vcpus: u32) -> Result<LoadedImage, ElfError> {
    let image = parse(elf)?;
    let image_end = check_placement(&image, ram.len() as u64, vcpus)?;
    for s in image.segments() {
        // All ranges were checked above: inside `ram` and inside `elf`.
        let dst = &mut ram[s.gpa as usize..s.end() as usize];
        let src = &elf[s.file_offset as usize..(s.file_offset + s.file_bytes) as usize];
        let (file_part, bss) = dst.split_at_mut(src.len());
        file_part.copy_from_slice(src);
        bss.fill(0);
    }
    Ok(LoadedImage { entry: image.entry, image_end })
}

/// Writes what guest RAM `chunk_gpa..chunk_gpa + chunk.len()` holds once `image` (parsed
/// from `elf`) is loaded on zeroed RAM: zeroes, overlaid with the bytes of every segment
/// that overlaps the range. A restart rebuilds RAM this way a chunk at a time, scrubbing
/// and reloading in one pass that can stop between chunks. `image` must have passed
/// [`check_placement`] for this RAM and come from this `elf` (segments inside the file).
pub fn image_bytes_into(image: &ElfImage, elf: &[u8], chunk_gpa: u64, chunk: &mut [u8]) {
    chunk.fill(0);
    let chunk_end = chunk_gpa.saturating_add(chunk.len() as u64);
    for s in image.segments() {
        let file_end = s.gpa + s.file_bytes;
        let (from, to) = (s.gpa.max(chunk_gpa), file_end.min(chunk_end));
        if from >= to {
            continue;
        }
        let at = (from - chunk_gpa) as usize;
        let src = (s.file_offset + (from - s.gpa)) as usize;
        let len = (to - from) as usize;
        // `parse` checked the file range; the `get`s keep a caller's mismatch harmless.
        if let (Some(dst), Some(src)) = (chunk.get_mut(at..at + len), elf.get(src..src + len)) {
            dst.copy_from_slice(src);
        }
    }
}

/// Test helper: builds minimal ELF64 executables.
#[cfg(test)]
pub(crate) mod build {
    extern crate alloc;
    use alloc::vec::Vec;

    /// (flags, vaddr, file bytes, mem_bytes)
    pub type Seg<'a> = (u32, u64, &'a [u8], u64);

    pub fn elf(entry: u64, segs: &[Seg<'_>]) -> Vec<u8> {
        let phoff = 64u64;
        let data_start = phoff + 56 * segs.len() as u64;
        let mut out = Vec::new();
        out.extend_from_slice(b"\x7fELF");
        out.extend_from_slice(&[2, 1, 1, 0]);
        out.extend_from_slice(&[0; 8]);
        out.extend_from_slice(&2u16.to_le_bytes());
        out.extend_from_slice(&62u16.to_le_bytes());
        out.extend_from_slice(&1u32.to_le_bytes());
        out.extend_from_slice(&entry.to_le_bytes());
        out.extend_from_slice(&phoff.to_le_bytes());
        out.extend_from_slice(&0u64.to_le_bytes()); // shoff
        out.extend_from_slice(&0u32.to_le_bytes()); // flags
        out.extend_from_slice(&64u16.to_le_bytes());
        out.extend_from_slice(&56u16.to_le_bytes());
        out.extend_from_slice(&(segs.len() as u16).to_le_bytes());
        out.extend_from_slice(&[0; 6]);
        let mut offset = data_start;
        for &(flags, vaddr, data, mem) in segs {
            out.extend_from_slice(&1u32.to_le_bytes());
            out.extend_from_slice(&flags.to_le_bytes());
            out.extend_from_slice(&offset.to_le_bytes());
            out.extend_from_slice(&vaddr.to_le_bytes());
            out.extend_from_slice(&vaddr.to_le_bytes());
            out.extend_from_slice(&(data.len() as u64).to_le_bytes());
            out.extend_from_slice(&mem.to_le_bytes());
            out.extend_from_slice(&0x1000u64.to_le_bytes());
            offset += data.len() as u64;
        }
        for &(_, _, data, _) in segs {
            out.extend_from_slice(data);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::build::elf;
    use super::*;

    proptest::proptest! {
        /// Rebuilding RAM chunk by chunk gives exactly what scrubbing and loading at once
        /// gives, whatever the chunk size and whatever RAM held before.
        #[test]
        fn chunked_rebuild_equals_a_whole_load(chunk_kib in 1usize..96, garbage: u8, bss in 0u64..20_000) {
            let text = [0x90u8; 3000];
            let data: Vec<u8> = (0..5000u32).map(|i| i as u8).collect();
            let image_bytes = elf(0x10_0010, &[
                (PF_X | PF_R, 0x10_0000, &text, 3000),
                (PF_R | PF_W, 0x10_2000, &data, 5000 + bss),
            ]);
            let ram_bytes = 4 << 20;
            let mut whole = vec![0u8; ram_bytes];
            load_rt_image(&image_bytes, &mut whole, 1).unwrap();
            let image = parse(&image_bytes).unwrap();
            check_placement(&image, ram_bytes as u64, 1).unwrap();
            let mut chunked = vec![garbage; ram_bytes];
            for (i, c) in chunked.chunks_mut(chunk_kib << 10).enumerate() {
                image_bytes_into(&image, &image_bytes, (i * (chunk_kib << 10)) as u64, c);
            }
            proptest::prop_assert!(chunked == whole);
        }
    }
    use hallows_abi::layout::STACK_BYTES;
    use proptest::prelude::*;

    const RAM: usize = 4 << 20;

    fn ram() -> Vec<u8> {
        vec![0xAAu8; RAM]
    }

    #[test]
    fn loads_segments_and_zeroes_bss() {
        let text = [0x90u8, 0x90, 0xF4];
        let data = [1u8, 2, 3, 4];
        let image =
            elf(0x10_0001, &[(PF_R | PF_X, 0x10_0000, &text, 3), (PF_R | PF_W, 0x10_2000, &data, 0x1800)]);
        let mut ram = ram();
        let loaded = load_rt_image(&image, &mut ram, 1).unwrap();
        assert_eq!(loaded, LoadedImage { entry: 0x10_0001, image_end: 0x10_4000 });
        assert_eq!(&ram[0x10_0000..0x10_0003], &text);
        assert_eq!(ram[0x10_0003], 0xAA, "bytes between segments are not touched");
        assert_eq!(&ram[0x10_2000..0x10_2004], &data);
        assert!(ram[0x10_2004..0x10_3800].iter().all(|&b| b == 0), "bss zeroed");
        assert_eq!(ram[0x10_3800], 0xAA);
    }

    #[test]
    fn refuses_segments_outside_the_loadable_area() {
        let t = [0xC3u8];
        let low = elf(0xF_F000, &[(PF_X, 0xF_F000, &t, 1)]);
        assert!(matches!(load_rt_image(&low, &mut ram(), 1), Err(ElfError::OutOfRange { .. })));
        // Reaching into the stack of vCPU 1 (of 2).
        let top = RAM as u64 - 2 * STACK_BYTES;
        let high = elf(0x10_0000, &[(PF_X, 0x10_0000, &t, 1), (PF_W, top - 8, &t, 16)]);
        assert!(matches!(load_rt_image(&high, &mut ram(), 2), Err(ElfError::OutOfRange { index: 1, .. })));
        // ...but the same image fits with a single vCPU.
        assert!(load_rt_image(&high, &mut ram(), 1).is_ok());
    }

    #[test]
    fn refuses_overlaps_bad_entries_and_non_executables() {
        let t = [0u8; 16];
        let overlap = elf(0x10_0000, &[(PF_X, 0x10_0000, &t, 0x2000), (PF_W, 0x10_1000, &t, 16)]);
        assert_eq!(load_rt_image(&overlap, &mut ram(), 1), Err(ElfError::Overlap { a: 0, b: 1 }));
        let entry_in_data = elf(0x10_1000, &[(PF_X, 0x10_0000, &t, 16), (PF_W, 0x10_1000, &t, 16)]);
        assert_eq!(
            load_rt_image(&entry_in_data, &mut ram(), 1),
            Err(ElfError::BadEntry { entry: 0x10_1000 })
        );
        let entry_past_end = elf(0x10_0010, &[(PF_X, 0x10_0000, &t, 16)]);
        assert!(matches!(load_rt_image(&entry_past_end, &mut ram(), 1), Err(ElfError::BadEntry { .. })));
        let mut so = elf(0x10_0000, &[(PF_X, 0x10_0000, &t, 16)]);
        so[16] = 3; // ET_DYN
        assert_eq!(load_rt_image(&so, &mut ram(), 1), Err(ElfError::Unsupported));
    }

    #[test]
    fn refuses_malformed_segments_without_touching_ram() {
        let t = [7u8; 32];
        let mut image = elf(0x10_0000, &[(PF_X, 0x10_0000, &t, 32)]);
        // p_filesz > p_memsz
        image[64 + 40..64 + 48].copy_from_slice(&8u64.to_le_bytes());
        let mut r = ram();
        assert_eq!(load_rt_image(&image, &mut r, 1), Err(ElfError::BadSegment { index: 0 }));
        assert!(r.iter().all(|&b| b == 0xAA));
        // vaddr + memsz overflows
        let mut image = elf(0x10_0000, &[(PF_X, 0x10_0000, &t, 32)]);
        image[64 + 16..64 + 24].copy_from_slice(&(u64::MAX - 4).to_le_bytes());
        image[64 + 24..64 + 32].copy_from_slice(&(u64::MAX - 4).to_le_bytes());
        assert_eq!(load_rt_image(&image, &mut r, 1), Err(ElfError::BadSegment { index: 0 }));
        // file bytes beyond the file
        let mut image = elf(0x10_0000, &[(PF_X, 0x10_0000, &t, 32)]);
        image[64 + 8..64 + 16].copy_from_slice(&0xFFFF_FFFFu64.to_le_bytes());
        assert_eq!(load_rt_image(&image, &mut r, 1), Err(ElfError::BadSegment { index: 0 }));
        // program header table beyond the file
        let mut image = elf(0x10_0000, &[(PF_X, 0x10_0000, &t, 32)]);
        image[56..58].copy_from_slice(&1000u16.to_le_bytes());
        assert_eq!(load_rt_image(&image, &mut r, 1), Err(ElfError::BadProgramHeaders));
        assert_eq!(load_rt_image(&image[..40], &mut r, 1), Err(ElfError::Truncated));
        assert_eq!(
            load_rt_image(b"\x7fELG\x02\x01\x01\0\0\0\0\0\0\0\0\0", &mut r, 1),
            Err(ElfError::Truncated)
        );
        assert!(r.iter().all(|&b| b == 0xAA));
    }

    #[test]
    fn ram_too_small_for_stacks() {
        let t = [0u8; 1];
        let image = elf(0x10_0000, &[(PF_X, 0x10_0000, &t, 1)]);
        let mut small = vec![0u8; 0x12_0000];
        assert_eq!(load_rt_image(&image, &mut small, 2), Err(ElfError::RamTooSmall));
        assert_eq!(load_rt_image(&image, &mut small, u32::MAX), Err(ElfError::RamTooSmall));
    }

    proptest! {
        #[test]
        fn hostile_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..512)) {
            let mut r = vec![0u8; 0x20_0000];
            let _ = load_rt_image(&data, &mut r, 1);
        }

        #[test]
        fn mutated_images_never_panic_or_write_outside(
            pos in 0usize..(64 + 2 * 56),
            val in any::<u64>(),
            width in 0usize..4,
            cut in 0usize..300,
        ) {
            let t = [0x90u8; 40];
            let mut image = elf(0x10_0000, &[(PF_X | PF_R, 0x10_0000, &t, 40), (PF_W, 0x11_0000, &t, 0x3000)]);
            let w = [1usize, 2, 4, 8][width];
            let end = (pos + w).min(image.len());
            image[pos..end].copy_from_slice(&val.to_le_bytes()[..end - pos]);
            image.truncate(image.len().saturating_sub(cut));
            let mut r = vec![0x55u8; 0x20_0000];
            if let Ok(l) = load_rt_image(&image, &mut r, 1) {
                prop_assert!(l.entry >= IMAGE_BASE_GPA && l.image_end <= 0x20_0000 - STACK_BYTES);
                prop_assert!(r[..IMAGE_BASE_GPA as usize].iter().all(|&b| b == 0x55));
                prop_assert!(r[0x20_0000 - STACK_BYTES as usize..].iter().all(|&b| b == 0x55));
            }
        }
    }
}
