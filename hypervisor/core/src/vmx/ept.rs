//! Extended page tables: a partition's guest-physical to host-physical map with rights.
//!
//! The tables live in host frames obtained through [`FrameAllocator`]; the binary
//! implements it over identity-mapped host memory, the tests over a `Vec` of pages.
//! [`Ept::map`] uses 2 MiB pages wherever guest and host addresses are both 2 MiB aligned
//! and at least 2 MiB remain, and 4 KiB pages elsewhere. It refuses any range that overlaps
//! an existing mapping, so a partition can never get two views of one guest address.
//!
//! ```
//! # use hallows_core::vmx::ept::*;
//! struct Frames(Vec<[u64; 512]>);
//! impl FrameAllocator for Frames {
//!     fn alloc_zeroed(&mut self) -> Option<u64> {
//!         self.0.push([0; 512]);
//!         Some(self.0.len() as u64 * 0x1000) // frame i at host 0x1000 * (i + 1)
//!     }
//!     fn table(&self, hpa: u64) -> &[u64; 512] { &self.0[hpa as usize / 0x1000 - 1] }
//!     fn table_mut(&mut self, hpa: u64) -> &mut [u64; 512] { &mut self.0[hpa as usize / 0x1000 - 1] }
//! }
//! let mut frames = Frames(Vec::new());
//! let mut ept = Ept::new(&mut frames).unwrap();
//! ept.map(&mut frames, 0, 0x4000_0000, 4 << 20, Rights::RWX, MemoryType::WriteBack).unwrap();
//! assert_eq!(ept.translate(&frames, 0x20_1234), Some((0x4020_1234, Rights::RWX)));
//! let eptp = ept.eptp(); // for the VMCS EPT_POINTER field
//! # assert_eq!(eptp & 0xFFF, 0x1E);
//! ```

use core::fmt;
use hallows_abi::channel;
use hallows_abi::layout::{CHANNEL_WINDOW_BYTES, CHANNEL_WINDOW_GPA, LARGE_PAGE_SIZE, PAGE_SIZE};
use hallows_abi::table::{ChannelEntry, CHANNEL_QUEUING};

/// Host frames holding EPT tables. Frames must stay valid (and at the same host-physical
/// address) for the lifetime of the [`Ept`].
pub trait FrameAllocator {
    /// A zeroed 4 KiB frame: its host-physical address (4 KiB aligned), or `None` when out
    /// of memory.
    fn alloc_zeroed(&mut self) -> Option<u64>;
    /// The table in the frame at `hpa` (an address `alloc_zeroed` returned).
    fn table(&self, hpa: u64) -> &[u64; 512];
    /// The table in the frame at `hpa`, writable.
    fn table_mut(&mut self, hpa: u64) -> &mut [u64; 512];
}

/// Access rights of a mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rights {
    pub read: bool,
    pub write: bool,
    pub execute: bool,
}

impl Rights {
    pub const R: Rights = Rights { read: true, write: false, execute: false };
    pub const RW: Rights = Rights { read: true, write: true, execute: false };
    pub const RX: Rights = Rights { read: true, write: false, execute: true };
    pub const RWX: Rights = Rights { read: true, write: true, execute: true };

    fn bits(self) -> u64 {
        self.read as u64 | (self.write as u64) << 1 | (self.execute as u64) << 2
    }

    fn from_bits(bits: u64) -> Self {
        Rights { read: bits & 1 != 0, write: bits & 2 != 0, execute: bits & 4 != 0 }
    }
}

/// EPT memory type of a leaf (SDM: EPT entry bits 5:3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum MemoryType {
    Uncacheable = 0,
    WriteCombining = 1,
    WriteThrough = 4,
    WriteProtected = 5,
    WriteBack = 6,
}

impl MemoryType {
    fn from_bits(bits: u64) -> Self {
        match bits & 7 {
            1 => Self::WriteCombining,
            4 => Self::WriteThrough,
            5 => Self::WriteProtected,
            6 => Self::WriteBack,
            _ => Self::Uncacheable,
        }
    }
}

/// Why a mapping was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EptError {
    /// Address or size not 4 KiB aligned, or size zero.
    Misaligned { gpa: u64, hpa: u64, bytes: u64 },
    /// The guest range reaches past 2^48 or the host range past 2^52.
    AddressTooLarge { gpa: u64, hpa: u64, bytes: u64 },
    /// The guest address is already mapped.
    Overlap { gpa: u64 },
    /// Write without read, or no right at all (an EPT misconfiguration).
    BadRights,
    /// The frame allocator is exhausted (the map may be partly built).
    OutOfFrames,
    /// A channel region description is inconsistent.
    BadChannel { gpa: u64 },
}

impl fmt::Display for EptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Misaligned { gpa, hpa, bytes } => {
                write!(f, "EPT map gpa {gpa:#x} -> hpa {hpa:#x} ({bytes:#x} bytes) not page aligned")
            }
            Self::AddressTooLarge { gpa, hpa, bytes } => {
                write!(f, "EPT map gpa {gpa:#x} -> hpa {hpa:#x} ({bytes:#x} bytes) beyond the address width")
            }
            Self::Overlap { gpa } => write!(f, "EPT map overlaps an existing mapping at gpa {gpa:#x}"),
            Self::BadRights => write!(f, "EPT rights must include read"),
            Self::OutOfFrames => write!(f, "out of frames for EPT tables"),
            Self::BadChannel { gpa } => write!(f, "inconsistent channel region at gpa {gpa:#x}"),
        }
    }
}

/// Guest-physical addresses must be below this (4-level EPT).
pub const GPA_LIMIT: u64 = 1 << 48;
/// Host-physical addresses must be below this (architectural maximum).
pub const HPA_LIMIT: u64 = 1 << 52;

const ADDR_MASK: u64 = 0x000F_FFFF_FFFF_F000;
const RIGHTS_MASK: u64 = 7;
const LARGE: u64 = 1 << 7;
/// Leaf bit 6: ignore the guest's PAT, the EPT memory type is the effective one.
const IGNORE_PAT: u64 = 1 << 6;
/// Non-leaf entries grant everything; the leaves restrict.
const TABLE_ENTRY: u64 = 7;

/// One leaf mapping found by [`Ept::for_each_leaf`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Leaf {
    pub gpa: u64,
    pub hpa: u64,
    /// 4 KiB or 2 MiB.
    pub bytes: u64,
    pub rights: Rights,
    pub memory_type: MemoryType,
    /// The leaf's memory type applies whatever the guest's PAT says (EPT bit 6).
    pub ignore_pat: bool,
}

/// A 4-level EPT rooted at one PML4 frame.
#[derive(Debug)]
pub struct Ept {
    pml4: u64,
}

impl Ept {
    /// An empty EPT (nothing mapped). `None` when no frame is available.
    pub fn new<A: FrameAllocator + ?Sized>(alloc: &mut A) -> Option<Self> {
        alloc.alloc_zeroed().map(|pml4| Ept { pml4 })
    }

    /// Host-physical address of the PML4.
    pub fn root(&self) -> u64 {
        self.pml4
    }

    /// The EPT pointer for the VMCS: write-back paging-structure memory type, 4-level walk,
    /// accessed/dirty flags disabled.
    pub fn eptp(&self) -> u64 {
        self.pml4 | (3 << 3) | MemoryType::WriteBack as u64
    }

    /// Maps guest `gpa..gpa+bytes` to host `hpa..hpa+bytes` with `rights` and `memory_type`.
    /// All three must be 4 KiB aligned, `bytes > 0`, rights must include read. Refuses (and
    /// changes nothing) when any page of the guest range is already mapped.
    pub fn map<A: FrameAllocator + ?Sized>(
        &mut self,
        alloc: &mut A,
        gpa: u64,
        hpa: u64,
        bytes: u64,
        rights: Rights,
        memory_type: MemoryType,
    ) -> Result<(), EptError> {
        self.map_leaves(alloc, gpa, hpa, bytes, rights, (memory_type as u64) << 3)
    }

    /// [`Ept::map`] with the memory type forced whatever the guest's page attributes say
    /// (ignore-PAT): for memory shared between partitions, which must be cached the same
    /// way on both sides (a guest mapping a shared ring uncacheable would make every
    /// access of its own, and none of the other side's, go to memory).
    #[allow(clippy::too_many_arguments)]
    pub fn map_ignoring_pat<A: FrameAllocator + ?Sized>(
        &mut self,
        alloc: &mut A,
        gpa: u64,
        hpa: u64,
        bytes: u64,
        rights: Rights,
        memory_type: MemoryType,
    ) -> Result<(), EptError> {
        self.map_leaves(alloc, gpa, hpa, bytes, rights, (memory_type as u64) << 3 | IGNORE_PAT)
    }

    fn map_leaves<A: FrameAllocator + ?Sized>(
        &mut self,
        alloc: &mut A,
        gpa: u64,
        hpa: u64,
        bytes: u64,
        rights: Rights,
        attribute_bits: u64,
    ) -> Result<(), EptError> {
        if bytes == 0 || !(gpa | hpa | bytes).is_multiple_of(PAGE_SIZE) {
            return Err(EptError::Misaligned { gpa, hpa, bytes });
        }
        if gpa.checked_add(bytes).is_none_or(|e| e > GPA_LIMIT)
            || hpa.checked_add(bytes).is_none_or(|e| e > HPA_LIMIT)
        {
            return Err(EptError::AddressTooLarge { gpa, hpa, bytes });
        }
        if !rights.read {
            return Err(EptError::BadRights);
        }
        if let Some(gpa) = self.first_mapped(alloc, gpa, gpa + bytes) {
            return Err(EptError::Overlap { gpa });
        }
        let leaf_bits = rights.bits() | attribute_bits;
        let mut done = 0;
        while done < bytes {
            let (g, h) = (gpa + done, hpa + done);
            let pd = self.table_for(alloc, g, 2)?;
            let pd_index = ((g >> 21) & 511) as usize;
            let large_fits = (g | h).is_multiple_of(LARGE_PAGE_SIZE) && bytes - done >= LARGE_PAGE_SIZE;
            if large_fits && alloc.table(pd)[pd_index] == 0 {
                alloc.table_mut(pd)[pd_index] = h | leaf_bits | LARGE;
                done += LARGE_PAGE_SIZE;
            } else {
                let pt = self.table_for(alloc, g, 1)?;
                alloc.table_mut(pt)[((g >> 12) & 511) as usize] = h | leaf_bits;
                done += PAGE_SIZE;
            }
        }
        Ok(())
    }

    /// The host-physical address and rights `gpa` maps to, if mapped.
    pub fn translate<A: FrameAllocator + ?Sized>(&self, alloc: &A, gpa: u64) -> Option<(u64, Rights)> {
        if gpa >= GPA_LIMIT {
            return None;
        }
        let mut table = self.pml4;
        for shift in [39u32, 30, 21, 12] {
            let entry = alloc.table(table)[((gpa >> shift) & 511) as usize];
            if entry & RIGHTS_MASK == 0 {
                return None;
            }
            if shift == 12 || entry & LARGE != 0 {
                let page = 1u64 << shift;
                let hpa = (entry & ADDR_MASK & !(page - 1)) | (gpa & (page - 1));
                return Some((hpa, Rights::from_bits(entry)));
            }
            table = entry & ADDR_MASK;
        }
        None
    }

    /// Calls `f` for every leaf mapping, in ascending guest-physical order.
    pub fn for_each_leaf<A: FrameAllocator + ?Sized>(&self, alloc: &A, mut f: impl FnMut(Leaf)) {
        self.walk_level(alloc, self.pml4, 39, 0, &mut f);
    }

    fn walk_level<A: FrameAllocator + ?Sized>(
        &self,
        alloc: &A,
        table: u64,
        shift: u32,
        base: u64,
        f: &mut impl FnMut(Leaf),
    ) {
        for (i, &entry) in alloc.table(table).iter().enumerate() {
            if entry & RIGHTS_MASK == 0 {
                continue;
            }
            let gpa = base | (i as u64) << shift;
            if shift == 12 || entry & LARGE != 0 {
                let bytes = 1u64 << shift;
                f(Leaf {
                    gpa,
                    hpa: entry & ADDR_MASK & !(bytes - 1),
                    bytes,
                    rights: Rights::from_bits(entry),
                    memory_type: MemoryType::from_bits(entry >> 3),
                    ignore_pat: entry & IGNORE_PAT != 0,
                });
            } else {
                self.walk_level(alloc, entry & ADDR_MASK, shift - 9, gpa, f);
            }
        }
    }

    /// The first mapped guest address in `[start, end)`, skipping absent subtrees whole.
    fn first_mapped<A: FrameAllocator + ?Sized>(&self, alloc: &A, start: u64, end: u64) -> Option<u64> {
        let mut at = start;
        'outer: while at < end {
            let mut table = self.pml4;
            for shift in [39u32, 30, 21, 12] {
                let entry = alloc.table(table)[((at >> shift) & 511) as usize];
                if entry & RIGHTS_MASK == 0 {
                    // Nothing mapped up to the end of this entry's span.
                    at = (at | ((1u64 << shift) - 1)) + 1;
                    continue 'outer;
                }
                if shift == 12 || entry & LARGE != 0 {
                    return Some(at);
                }
                table = entry & ADDR_MASK;
            }
        }
        None
    }

    /// The table at `level` (1 = PT, 2 = PD, 3 = PDPT) covering `gpa`, created as needed.
    fn table_for<A: FrameAllocator + ?Sized>(
        &self,
        alloc: &mut A,
        gpa: u64,
        level: u32,
    ) -> Result<u64, EptError> {
        let mut table = self.pml4;
        let mut shift = 39;
        while shift > 12 + 9 * (level - 1) {
            let index = ((gpa >> shift) & 511) as usize;
            let entry = alloc.table(table)[index];
            table = if entry & RIGHTS_MASK != 0 {
                // `first_mapped` guaranteed no large leaf covers an address we map.
                entry & ADDR_MASK
            } else {
                let new = alloc.alloc_zeroed().ok_or(EptError::OutOfFrames)?;
                alloc.table_mut(table)[index] = new | TABLE_ENTRY;
                new
            };
            shift -= 9;
        }
        Ok(table)
    }
}

/// Which end of a channel a partition is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChannelRole {
    Writer,
    Reader,
}

/// One channel region as one partition maps it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChannelMapping {
    /// Guest-physical base (inside the channel window).
    pub gpa: u64,
    /// Host-physical base of the shared region.
    pub hpa: u64,
    /// Bytes of writer pages at the start of the region.
    pub writer_bytes: u64,
    /// Bytes of the reader page after them.
    pub reader_bytes: u64,
    pub role: ChannelRole,
}

impl ChannelMapping {
    /// How `partition` maps `channel`, whose region sits at host `channels_hpa +
    /// window_offset` (the placement puts the whole channel window in one host block).
    /// `None` when the partition is not an endpoint or the entry's sizes disagree with
    /// [`hallows_abi::channel`].
    pub fn for_partition(channel: &ChannelEntry, partition: u32, channels_hpa: u64) -> Option<Self> {
        let role = if channel.source.get() == partition {
            ChannelRole::Writer
        } else if channel.destination.get() == partition {
            ChannelRole::Reader
        } else {
            return None;
        };
        let queuing = channel.kind == CHANNEL_QUEUING;
        let writer_bytes = channel::writer_bytes(queuing, channel.msg_size.get(), channel.depth.get());
        let bytes = channel.bytes.get();
        let offset = channel.window_offset.get();
        if bytes != channel::region_bytes(queuing, channel.msg_size.get(), channel.depth.get())
            || offset.checked_add(bytes).is_none_or(|e| e > CHANNEL_WINDOW_BYTES)
        {
            return None;
        }
        Some(ChannelMapping {
            gpa: CHANNEL_WINDOW_GPA + offset,
            hpa: channels_hpa.checked_add(offset)?,
            writer_bytes,
            reader_bytes: bytes - writer_bytes,
            role,
        })
    }
}

impl Ept {
    /// Maps a partition: guest RAM `0..ram_bytes` to host `ram_hpa` (read, write, execute,
    /// write-back), and every channel region with per-page rights: the writer pages are
    /// read-write for the writer and read-only for the reader, the reader page read-write
    /// for the reader and read-only for the writer; never executable; write-back whatever
    /// the guest's PAT says. Nothing else.
    pub fn map_partition<A: FrameAllocator + ?Sized>(
        &mut self,
        alloc: &mut A,
        ram_bytes: u64,
        ram_hpa: u64,
        channels: &[ChannelMapping],
    ) -> Result<(), EptError> {
        self.map(alloc, 0, ram_hpa, ram_bytes, Rights::RWX, MemoryType::WriteBack)?;
        for c in channels {
            let (writer_rights, reader_rights) = match c.role {
                ChannelRole::Writer => (Rights::RW, Rights::R),
                ChannelRole::Reader => (Rights::R, Rights::RW),
            };
            let reader_gpa = c.gpa.checked_add(c.writer_bytes).ok_or(EptError::BadChannel { gpa: c.gpa })?;
            let reader_hpa = c.hpa.checked_add(c.writer_bytes).ok_or(EptError::BadChannel { gpa: c.gpa })?;
            self.map_ignoring_pat(alloc, c.gpa, c.hpa, c.writer_bytes, writer_rights, MemoryType::WriteBack)?;
            if c.reader_bytes > 0 {
                self.map_ignoring_pat(
                    alloc,
                    reader_gpa,
                    reader_hpa,
                    c.reader_bytes,
                    reader_rights,
                    MemoryType::WriteBack,
                )?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use entry_builder::channel_entry;
    use hallows_abi::table::CHANNEL_SAMPLING;

    /// Frames in a Vec; frame `i` is at host-physical `BASE + i * 4096`.
    pub struct VecFrames {
        pub frames: Vec<[u64; 512]>,
        pub limit: usize,
    }
    const BASE: u64 = 0x7000_0000;

    impl VecFrames {
        pub fn new(limit: usize) -> Self {
            VecFrames { frames: Vec::new(), limit }
        }
    }

    impl FrameAllocator for VecFrames {
        fn alloc_zeroed(&mut self) -> Option<u64> {
            if self.frames.len() == self.limit {
                return None;
            }
            self.frames.push([0; 512]);
            Some(BASE + (self.frames.len() as u64 - 1) * PAGE_SIZE)
        }
        fn table(&self, hpa: u64) -> &[u64; 512] {
            &self.frames[((hpa - BASE) / PAGE_SIZE) as usize]
        }
        fn table_mut(&mut self, hpa: u64) -> &mut [u64; 512] {
            &mut self.frames[((hpa - BASE) / PAGE_SIZE) as usize]
        }
    }

    fn leaves(ept: &Ept, a: &VecFrames) -> Vec<Leaf> {
        let mut out = Vec::new();
        ept.for_each_leaf(a, |l| out.push(l));
        out
    }

    const MIB: u64 = 1 << 20;

    #[test]
    fn uses_large_pages_where_aligned() {
        let mut a = VecFrames::new(64);
        let mut ept = Ept::new(&mut a).unwrap();
        // gpa 1 MiB .. 7 MiB -> hpa 0x4010_0000: 4 KiB up to 2 MiB, then two 2 MiB, then 4 KiB.
        ept.map(&mut a, MIB, 0x4010_0000, 6 * MIB, Rights::RWX, MemoryType::WriteBack).unwrap();
        let l = leaves(&ept, &a);
        assert_eq!(l.iter().filter(|l| l.bytes == LARGE_PAGE_SIZE).count(), 2);
        assert_eq!(l.iter().filter(|l| l.bytes == PAGE_SIZE).count(), 2 * 256);
        assert_eq!(l.iter().map(|l| l.bytes).sum::<u64>(), 6 * MIB);
        for leaf in &l {
            assert_eq!(leaf.hpa - leaf.gpa, 0x4010_0000 - MIB);
            assert_eq!(leaf.memory_type, MemoryType::WriteBack);
        }
        assert_eq!(ept.translate(&a, MIB), Some((0x4010_0000, Rights::RWX)));
        assert_eq!(ept.translate(&a, 7 * MIB - 1), Some((0x4070_0000 - 1, Rights::RWX)));
        assert_eq!(ept.translate(&a, MIB - 1), None);
        assert_eq!(ept.translate(&a, 7 * MIB), None);
        // Misaligned host: 4 KiB pages only.
        ept.map(&mut a, 8 * MIB, 0x5000_1000, 2 * MIB, Rights::R, MemoryType::Uncacheable).unwrap();
        assert_eq!(ept.translate(&a, 9 * MIB), Some((0x5010_1000, Rights::R)));
        assert!(leaves(&ept, &a).iter().filter(|l| l.gpa >= 8 * MIB).all(|l| l.bytes == PAGE_SIZE));
    }

    #[test]
    fn refuses_overlap_misalignment_and_huge_addresses() {
        let mut a = VecFrames::new(64);
        let mut ept = Ept::new(&mut a).unwrap();
        ept.map(&mut a, 2 * MIB, 0x1000_0000, 2 * MIB, Rights::RW, MemoryType::WriteBack).unwrap();
        let before = leaves(&ept, &a);
        let m = |ept: &mut Ept, a: &mut VecFrames, g, h, b| {
            ept.map(a, g, h, b, Rights::RW, MemoryType::WriteBack)
        };
        assert_eq!(m(&mut ept, &mut a, 0, 0, 3 * MIB), Err(EptError::Overlap { gpa: 2 * MIB }));
        assert_eq!(
            m(&mut ept, &mut a, 4 * MIB - 0x1000, 0, 0x2000),
            Err(EptError::Overlap { gpa: 4 * MIB - 0x1000 })
        );
        assert!(matches!(m(&mut ept, &mut a, 0x800, 0, 0x1000), Err(EptError::Misaligned { .. })));
        assert!(matches!(m(&mut ept, &mut a, 0, 0x800, 0x1000), Err(EptError::Misaligned { .. })));
        assert!(matches!(m(&mut ept, &mut a, 0, 0, 0), Err(EptError::Misaligned { .. })));
        assert!(matches!(
            m(&mut ept, &mut a, GPA_LIMIT - 0x1000, 0, 0x2000),
            Err(EptError::AddressTooLarge { .. })
        ));
        assert!(matches!(m(&mut ept, &mut a, 0, HPA_LIMIT, 0x1000), Err(EptError::AddressTooLarge { .. })));
        assert!(matches!(
            m(&mut ept, &mut a, u64::MAX - 0xFFF, 0, 0x1000),
            Err(EptError::AddressTooLarge { .. })
        ));
        let write_only = Rights { read: false, write: true, execute: false };
        assert_eq!(
            ept.map(&mut a, 0, 0, 0x1000, write_only, MemoryType::WriteBack),
            Err(EptError::BadRights)
        );
        assert_eq!(leaves(&ept, &a), before, "refused maps change nothing");
        // Adjacent ranges are fine, including a 4 KiB neighbour in the same PD.
        m(&mut ept, &mut a, 4 * MIB, 0x2000_0000, 0x1000).unwrap();
        m(&mut ept, &mut a, GPA_LIMIT - 0x1000, HPA_LIMIT - 0x1000, 0x1000).unwrap();
        assert_eq!(ept.translate(&a, GPA_LIMIT - 1), Some((HPA_LIMIT - 1, Rights::RW)));
    }

    #[test]
    fn out_of_frames_is_an_error_not_a_panic() {
        let mut a = VecFrames::new(3);
        let mut ept = Ept::new(&mut a).unwrap();
        assert_eq!(
            ept.map(&mut a, 0, 0, 0x1000, Rights::R, MemoryType::WriteBack),
            Err(EptError::OutOfFrames)
        );
        assert!(Ept::new(&mut VecFrames::new(0)).is_none());
    }

    #[test]
    fn eptp_encodes_walk_length_and_memory_type() {
        let mut a = VecFrames::new(1);
        let ept = Ept::new(&mut a).unwrap();
        assert_eq!(ept.eptp(), BASE | 6 | 3 << 3);
        assert_eq!(ept.root(), BASE);
    }

    /// Builds `ChannelEntry`s byte by byte (the ABI crate's writer needs its `alloc` feature).
    mod entry_builder {
        use hallows_abi::table::ChannelEntry;

        pub fn channel_entry(
            kind: u8,
            source: u32,
            destination: u32,
            msg: u32,
            depth: u32,
            offset: u64,
        ) -> ChannelEntry {
            let queuing = kind == hallows_abi::table::CHANNEL_QUEUING;
            let bytes = hallows_abi::channel::region_bytes(queuing, msg, depth);
            let mut raw = [0u8; core::mem::size_of::<ChannelEntry>()];
            raw[8] = kind;
            raw[12..16].copy_from_slice(&source.to_le_bytes());
            raw[16..20].copy_from_slice(&destination.to_le_bytes());
            raw[20..24].copy_from_slice(&msg.to_le_bytes());
            raw[24..28].copy_from_slice(&depth.to_le_bytes());
            raw[32..40].copy_from_slice(&offset.to_le_bytes());
            raw[40..48].copy_from_slice(&bytes.to_le_bytes());
            let entry = <ChannelEntry as zerocopy::FromBytes>::read_from_bytes(&raw).unwrap();
            assert_eq!(entry.bytes.get(), bytes);
            entry
        }
    }

    #[test]
    fn partition_map_has_ram_and_channel_pages_with_per_role_rights_and_nothing_else() {
        let queue = channel_entry(CHANNEL_QUEUING, 0, 1, 64, 60, 0); // 2 writer pages + 1 reader page
        let sample = channel_entry(CHANNEL_SAMPLING, 1, 0, 8, 1, 0x10_0000);
        let channels_hpa = 0x9000_0000;
        for (partition, role_q, role_s) in
            [(0u32, ChannelRole::Writer, ChannelRole::Reader), (1, ChannelRole::Reader, ChannelRole::Writer)]
        {
            let maps: Vec<_> = [&queue, &sample]
                .iter()
                .map(|c| ChannelMapping::for_partition(c, partition, channels_hpa).unwrap())
                .collect();
            assert_eq!(maps[0].role, role_q);
            assert_eq!(maps[1].role, role_s);
            assert_eq!((maps[0].writer_bytes, maps[0].reader_bytes), (2 * PAGE_SIZE, PAGE_SIZE));
            let mut a = VecFrames::new(64);
            let mut ept = Ept::new(&mut a).unwrap();
            let ram_hpa = 0x4000_0000 + partition as u64 * 0x100_0000;
            ept.map_partition(&mut a, 4 * MIB, ram_hpa, &maps).unwrap();

            let w = CHANNEL_WINDOW_GPA;
            let writer_is_me = role_q == ChannelRole::Writer;
            let (wr, rd) = if writer_is_me { (Rights::RW, Rights::R) } else { (Rights::R, Rights::RW) };
            assert_eq!(ept.translate(&a, w), Some((channels_hpa, wr)));
            assert_eq!(ept.translate(&a, w + PAGE_SIZE + 8), Some((channels_hpa + PAGE_SIZE + 8, wr)));
            assert_eq!(ept.translate(&a, w + 2 * PAGE_SIZE), Some((channels_hpa + 2 * PAGE_SIZE, rd)));
            let (sample_wr, sample_rd) =
                if role_s == ChannelRole::Writer { (Rights::RW, Rights::R) } else { (Rights::R, Rights::RW) };
            assert_eq!(ept.translate(&a, w + 0x10_0000), Some((channels_hpa + 0x10_0000, sample_wr)));
            let sample_reader_page = w + 0x10_0000 + PAGE_SIZE;
            assert_eq!(
                ept.translate(&a, sample_reader_page),
                Some((channels_hpa + 0x10_0000 + PAGE_SIZE, sample_rd))
            );

            // Nothing outside RAM and the two regions, and no executable channel page.
            let mut total = 0;
            ept.for_each_leaf(&a, |l| {
                total += l.bytes;
                let in_ram = l.gpa + l.bytes <= 4 * MIB;
                let in_queue = l.gpa >= w && l.gpa + l.bytes <= w + 3 * PAGE_SIZE;
                let in_sample = l.gpa >= w + 0x10_0000 && l.gpa + l.bytes <= w + 0x10_0000 + 2 * PAGE_SIZE;
                assert!(in_ram || in_queue || in_sample, "stray leaf {l:?}");
                assert_eq!(in_ram, l.rights.execute);
                if in_ram {
                    assert_eq!(l.hpa, ram_hpa + l.gpa);
                }
            });
            assert_eq!(total, 4 * MIB + 5 * PAGE_SIZE);
            // PML4, PDPT, the PD of RAM (two 2 MiB leaves), the PD of the channel window
            // and one page table for its 4 KiB pages.
            assert_eq!(a.frames.len(), 5);
        }
        assert_eq!(ChannelMapping::for_partition(&queue, 2, channels_hpa), None);
    }

    #[test]
    fn inconsistent_channel_entries_are_refused() {
        let mut bad = channel_entry(CHANNEL_QUEUING, 0, 1, 64, 100, 0);
        bad.bytes = 0x1000.into();
        assert_eq!(ChannelMapping::for_partition(&bad, 0, 0), None);
        let outside = channel_entry(CHANNEL_SAMPLING, 0, 1, 8, 1, CHANNEL_WINDOW_BYTES);
        assert_eq!(ChannelMapping::for_partition(&outside, 0, 0), None);
    }
}
