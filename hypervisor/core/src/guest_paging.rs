//! The guest page tables of a real-time partition, written into its own RAM.
//!
//! RT partitions enter in 64-bit mode, so they need paging before their first instruction.
//! [`build_identity_paging`] writes 4-level tables at
//! [`PAGE_TABLES_GPA`]..[`PAGE_TABLES_END_GPA`] (PML4 first, so the guest CR3 is
//! `PAGE_TABLES_GPA`) that identity-map:
//! - guest RAM `0..ram_bytes`: 2 MiB pages, except the first 2 MiB, mapped with 4 KiB
//!   pages and page 0 left not-present so null dereferences fault;
//! - the channel window `CHANNEL_WINDOW_GPA..+channel_window_bytes`: writable and
//!   no-execute. The guest tables only describe addresses; EPT enforces the real rights
//!   (a reader's view of a channel is read-only in EPT whatever these tables say);
//! - the persistent region `PERSISTENT_WINDOW_GPA..+persistent_bytes` (0: none):
//!   writable and no-execute, like the channel window.
//!
//! Every page is supervisor, writable, write-back (PAT index 0). The table area is
//! zeroed first, so the function also serves a restart.
//!
//! ```
//! # use hallows_core::guest_paging::build_identity_paging;
//! # use hallows_abi::layout::PAGE_TABLES_GPA;
//! let mut ram = vec![0u8; 4 << 20];
//! let cr3 = build_identity_paging(&mut ram, 4 << 20, 0x1000, 0).unwrap();
//! assert_eq!(cr3, PAGE_TABLES_GPA);
//! ```

use core::fmt;
use hallows_abi::layout::{
    CHANNEL_WINDOW_BYTES, CHANNEL_WINDOW_GPA, LARGE_PAGE_SIZE, PAGE_SIZE, PAGE_TABLES_END_GPA,
    PAGE_TABLES_GPA, PERSISTENT_WINDOW_GPA, RT_MAX_RAM, RT_MIN_RAM,
};
use hallows_abi::limits::PERSISTENT_MAX_BYTES;

/// Entry bit: present.
pub const PTE_PRESENT: u64 = 1 << 0;
/// Entry bit: writable.
pub const PTE_WRITABLE: u64 = 1 << 1;
/// Entry bit (PDE/PDPTE): maps a large page.
pub const PTE_LARGE: u64 = 1 << 7;
/// Entry bit: no execute (needs EFER.NXE).
pub const PTE_NO_EXECUTE: u64 = 1 << 63;
/// Physical-address bits of an entry.
pub const PTE_ADDR_MASK: u64 = 0x000F_FFFF_FFFF_F000;

/// Why the tables could not be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PagingError {
    /// `ram_bytes` is not a multiple of 2 MiB in `[RT_MIN_RAM, RT_MAX_RAM]`.
    BadRamSize { ram_bytes: u64 },
    /// The RAM slice is shorter than `ram_bytes`.
    RamSliceTooSmall { slice_bytes: u64, ram_bytes: u64 },
    /// The channel window size is not a page multiple or exceeds `CHANNEL_WINDOW_BYTES`.
    BadChannelWindow { bytes: u64 },
    /// The persistent region is not a page multiple or exceeds `PERSISTENT_MAX_BYTES`.
    BadPersistentRegion { bytes: u64 },
    /// The tables do not fit in `PAGE_TABLES_GPA..PAGE_TABLES_END_GPA`.
    OutOfTablePages,
}

impl fmt::Display for PagingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::BadRamSize { ram_bytes } => write!(
                f,
                "RAM size {ram_bytes:#x} is not a 2 MiB multiple in [{RT_MIN_RAM:#x}, {RT_MAX_RAM:#x}]"
            ),
            Self::RamSliceTooSmall { slice_bytes, ram_bytes } => {
                write!(f, "RAM slice of {slice_bytes:#x} bytes is smaller than RAM size {ram_bytes:#x}")
            }
            Self::BadChannelWindow { bytes } => write!(f, "bad channel window size {bytes:#x}"),
            Self::BadPersistentRegion { bytes } => write!(f, "bad persistent region size {bytes:#x}"),
            Self::OutOfTablePages => write!(f, "guest page tables do not fit their reserved area"),
        }
    }
}

/// Writes the identity page tables into `ram` (guest-physical 0 = `ram[0]`) and returns
/// the guest CR3 (the PML4's address, [`PAGE_TABLES_GPA`]).
pub fn build_identity_paging(
    ram: &mut [u8],
    ram_bytes: u64,
    channel_window_bytes: u64,
    persistent_bytes: u64,
) -> Result<u64, PagingError> {
    if !ram_bytes.is_multiple_of(LARGE_PAGE_SIZE) || !(RT_MIN_RAM..=RT_MAX_RAM).contains(&ram_bytes) {
        return Err(PagingError::BadRamSize { ram_bytes });
    }
    if (ram.len() as u64) < ram_bytes {
        return Err(PagingError::RamSliceTooSmall { slice_bytes: ram.len() as u64, ram_bytes });
    }
    write_tables(ram, ram_bytes, channel_window_bytes, persistent_bytes)
}

/// Whether [`build_identity_paging`] succeeds for a partition with `ram_bytes` of RAM and
/// `channel_window_bytes` of channel window and `persistent_bytes` of persistent region,
/// without the partition's RAM: the tables are built in a scratch copy of the table area
/// (the boot plan checks every table this way).
pub fn check_identity_paging(
    ram_bytes: u64,
    channel_window_bytes: u64,
    persistent_bytes: u64,
) -> Result<(), PagingError> {
    if !ram_bytes.is_multiple_of(LARGE_PAGE_SIZE) || !(RT_MIN_RAM..=RT_MAX_RAM).contains(&ram_bytes) {
        return Err(PagingError::BadRamSize { ram_bytes });
    }
    let mut scratch = alloc::vec![0u8; PAGE_TABLES_END_GPA as usize];
    write_tables(&mut scratch, ram_bytes, channel_window_bytes, persistent_bytes).map(|_| ())
}

/// Writes the tables into `area`, which holds guest-physical `0..PAGE_TABLES_END_GPA` at
/// least (the RAM size was checked by the caller).
fn write_tables(
    ram: &mut [u8],
    ram_bytes: u64,
    channel_window_bytes: u64,
    persistent_bytes: u64,
) -> Result<u64, PagingError> {
    if !channel_window_bytes.is_multiple_of(PAGE_SIZE) || channel_window_bytes > CHANNEL_WINDOW_BYTES {
        return Err(PagingError::BadChannelWindow { bytes: channel_window_bytes });
    }
    if !persistent_bytes.is_multiple_of(PAGE_SIZE) || persistent_bytes > PERSISTENT_MAX_BYTES {
        return Err(PagingError::BadPersistentRegion { bytes: persistent_bytes });
    }
    ram[PAGE_TABLES_GPA as usize..PAGE_TABLES_END_GPA as usize].fill(0);
    let mut tables = Tables { ram, next_free: PAGE_TABLES_GPA + PAGE_SIZE };
    let pml4 = PAGE_TABLES_GPA;

    let ram_flags = PTE_PRESENT | PTE_WRITABLE;
    for gpa in (PAGE_SIZE..LARGE_PAGE_SIZE).step_by(PAGE_SIZE as usize) {
        tables.map(pml4, gpa, false, ram_flags)?;
    }
    for gpa in (LARGE_PAGE_SIZE..ram_bytes).step_by(LARGE_PAGE_SIZE as usize) {
        tables.map(pml4, gpa, true, ram_flags)?;
    }
    let window_flags = PTE_PRESENT | PTE_WRITABLE | PTE_NO_EXECUTE;
    tables.map_window(pml4, CHANNEL_WINDOW_GPA, channel_window_bytes, window_flags)?;
    tables.map_window(pml4, PERSISTENT_WINDOW_GPA, persistent_bytes, window_flags)?;
    Ok(pml4)
}

/// Page tables living inside guest RAM, allocated from the reserved area.
struct Tables<'a> {
    ram: &'a mut [u8],
    next_free: u64,
}

impl Tables<'_> {
    fn read(&self, table: u64, index: u64) -> u64 {
        let at = (table + index * 8) as usize;
        let mut b = [0u8; 8];
        b.copy_from_slice(&self.ram[at..at + 8]);
        u64::from_le_bytes(b)
    }

    fn write(&mut self, table: u64, index: u64, value: u64) {
        let at = (table + index * 8) as usize;
        self.ram[at..at + 8].copy_from_slice(&value.to_le_bytes());
    }

    /// The table `table[index]` points to, allocating it (already zeroed) if absent.
    fn child(&mut self, table: u64, index: u64) -> Result<u64, PagingError> {
        let entry = self.read(table, index);
        if entry & PTE_PRESENT != 0 {
            return Ok(entry & PTE_ADDR_MASK);
        }
        if self.next_free >= PAGE_TABLES_END_GPA {
            return Err(PagingError::OutOfTablePages);
        }
        let new = self.next_free;
        self.next_free += PAGE_SIZE;
        self.write(table, index, new | PTE_PRESENT | PTE_WRITABLE);
        Ok(new)
    }

    /// Maps `base..base + bytes` (a 2 MiB aligned base): 2 MiB pages while they fit, then
    /// 4 KiB pages.
    fn map_window(&mut self, pml4: u64, base: u64, bytes: u64, flags: u64) -> Result<(), PagingError> {
        let mut offset = 0;
        while offset < bytes {
            let large = bytes - offset >= LARGE_PAGE_SIZE;
            self.map(pml4, base + offset, large, flags)?;
            offset += if large { LARGE_PAGE_SIZE } else { PAGE_SIZE };
        }
        Ok(())
    }

    fn map(&mut self, pml4: u64, gpa: u64, large: bool, flags: u64) -> Result<(), PagingError> {
        let pdpt = self.child(pml4, (gpa >> 39) & 511)?;
        let pd = self.child(pdpt, (gpa >> 30) & 511)?;
        if large {
            self.write(pd, (gpa >> 21) & 511, gpa | flags | PTE_LARGE);
        } else {
            let pt = self.child(pd, (gpa >> 21) & 511)?;
            self.write(pt, (gpa >> 12) & 511, gpa | flags);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a software walk of the tables finds for one virtual address.
    #[derive(Debug, PartialEq)]
    struct Translation {
        phys: u64,
        writable: bool,
        executable: bool,
        page_bytes: u64,
    }

    fn read(ram: &[u8], at: u64) -> u64 {
        u64::from_le_bytes(ram[at as usize..at as usize + 8].try_into().unwrap())
    }

    /// A 4-level walk as the CPU does it (no US/PKE/SMEP: supervisor accesses only).
    fn walk(ram: &[u8], cr3: u64, va: u64) -> Option<Translation> {
        let mut table = cr3 & PTE_ADDR_MASK;
        let mut writable = true;
        let mut executable = true;
        for (level, shift) in [(4, 39u32), (3, 30), (2, 21), (1, 12)] {
            let entry = read(ram, table + ((va >> shift) & 511) * 8);
            if entry & PTE_PRESENT == 0 {
                return None;
            }
            writable &= entry & PTE_WRITABLE != 0;
            executable &= entry & PTE_NO_EXECUTE == 0;
            let leaf = level == 1 || (level < 4 && entry & PTE_LARGE != 0);
            if leaf {
                let page_bytes = 1u64 << shift;
                let base = entry & PTE_ADDR_MASK & !(page_bytes - 1);
                return Some(Translation {
                    phys: base | (va & (page_bytes - 1)),
                    writable,
                    executable,
                    page_bytes,
                });
            }
            table = entry & PTE_ADDR_MASK;
        }
        unreachable!()
    }

    const MIB: u64 = 1 << 20;

    #[test]
    fn ram_is_identity_mapped_except_page_zero() {
        let ram_bytes = 6 * MIB;
        let mut ram = vec![0u8; ram_bytes as usize];
        let cr3 = build_identity_paging(&mut ram, ram_bytes, 0, 0).unwrap();
        assert_eq!(cr3, PAGE_TABLES_GPA);
        assert_eq!(walk(&ram, cr3, 0), None);
        assert_eq!(walk(&ram, cr3, 0xFFF), None);
        for va in (PAGE_SIZE..ram_bytes).step_by(0x7000).chain([0x1000, 0x1F_FFFF, 0x20_0000, ram_bytes - 1])
        {
            let t = walk(&ram, cr3, va).unwrap_or_else(|| panic!("{va:#x} unmapped"));
            assert_eq!(t.phys, va);
            assert!(t.writable && t.executable);
            assert_eq!(t.page_bytes, if va < LARGE_PAGE_SIZE { PAGE_SIZE } else { LARGE_PAGE_SIZE });
        }
        assert_eq!(walk(&ram, cr3, ram_bytes), None);
        assert_eq!(walk(&ram, cr3, CHANNEL_WINDOW_GPA), None);
        assert_eq!(walk(&ram, cr3, 1 << 47), None);
    }

    #[test]
    fn channel_window_is_mapped_to_its_exact_size_without_execute() {
        let ram_bytes = 2 * MIB;
        let mut ram = vec![0u8; ram_bytes as usize];
        let window = 2 * MIB + 3 * PAGE_SIZE;
        let cr3 = build_identity_paging(&mut ram, ram_bytes, window, 0).unwrap();
        for off in [0, PAGE_SIZE, 2 * MIB - 1, 2 * MIB, window - 1] {
            let t = walk(&ram, cr3, CHANNEL_WINDOW_GPA + off).unwrap();
            assert_eq!(t.phys, CHANNEL_WINDOW_GPA + off);
            assert!(t.writable && !t.executable);
        }
        assert_eq!(walk(&ram, cr3, CHANNEL_WINDOW_GPA + window), None);
        // PML4, PDPT, PD and PT of RAM, PD and PT of the window: the rest stays zero.
        let used = ram[PAGE_TABLES_GPA as usize..PAGE_TABLES_END_GPA as usize]
            .chunks(PAGE_SIZE as usize)
            .filter(|page| page.iter().any(|&b| b != 0))
            .count();
        assert_eq!(used, 6);
        assert_eq!(walk(&ram, cr3, CHANNEL_WINDOW_GPA - 1), None);
    }

    #[test]
    fn persistent_region_is_mapped_beside_a_full_channel_window() {
        let ram_bytes = 2 * MIB;
        let mut ram = vec![0u8; ram_bytes as usize];
        let region = 4 * MIB + 16 * PAGE_SIZE;
        let cr3 = build_identity_paging(&mut ram, ram_bytes, CHANNEL_WINDOW_BYTES, region).unwrap();
        for off in [0, PAGE_SIZE, 4 * MIB, region - 1] {
            let t = walk(&ram, cr3, PERSISTENT_WINDOW_GPA + off).unwrap();
            assert_eq!(t.phys, PERSISTENT_WINDOW_GPA + off);
            assert!(t.writable && !t.executable);
        }
        assert_eq!(walk(&ram, cr3, PERSISTENT_WINDOW_GPA + region), None);
        let last = CHANNEL_WINDOW_GPA + CHANNEL_WINDOW_BYTES - 1;
        assert_eq!(walk(&ram, cr3, last).unwrap().phys, last, "the window before it is whole");
        // The largest region fits the table area, and a restart's rebuild without one
        // leaves nothing of it behind.
        build_identity_paging(&mut ram, ram_bytes, CHANNEL_WINDOW_BYTES, PERSISTENT_MAX_BYTES).unwrap();
        build_identity_paging(&mut ram, ram_bytes, 0, 0).unwrap();
        assert_eq!(walk(&ram, cr3, PERSISTENT_WINDOW_GPA), None);
        assert_eq!(
            build_identity_paging(&mut ram, ram_bytes, 0, 5),
            Err(PagingError::BadPersistentRegion { bytes: 5 })
        );
        assert_eq!(
            check_identity_paging(ram_bytes, 0, PERSISTENT_MAX_BYTES + PAGE_SIZE),
            Err(PagingError::BadPersistentRegion { bytes: PERSISTENT_MAX_BYTES + PAGE_SIZE })
        );
    }

    #[test]
    fn largest_layout_fits_the_table_area_and_rebuild_clears_old_entries() {
        let ram_bytes = RT_MAX_RAM;
        // 3 GiB, zero-filled lazily by the allocator: only the table pages are touched.
        let mut ram = vec![0u8; ram_bytes as usize];
        let cr3 = build_identity_paging(&mut ram, ram_bytes, CHANNEL_WINDOW_BYTES - PAGE_SIZE, 0).unwrap();
        assert_eq!(walk(&ram, cr3, RT_MAX_RAM - 1).unwrap().phys, RT_MAX_RAM - 1);
        let last = CHANNEL_WINDOW_GPA + CHANNEL_WINDOW_BYTES - 2 * PAGE_SIZE;
        assert_eq!(walk(&ram, cr3, last).unwrap().phys, last);
        // Rebuilding smaller leaves nothing of the old map behind.
        build_identity_paging(&mut ram, 2 * MIB, 0, 0).unwrap();
        assert_eq!(walk(&ram, cr3, 2 * MIB), None);
        assert_eq!(walk(&ram, cr3, last), None);
    }

    #[test]
    fn refuses_bad_sizes() {
        let mut ram = vec![0u8; 4 * MIB as usize];
        assert_eq!(
            build_identity_paging(&mut ram, 3 * MIB, 0, 0),
            Err(PagingError::BadRamSize { ram_bytes: 3 * MIB })
        );
        assert_eq!(build_identity_paging(&mut ram, 0, 0, 0), Err(PagingError::BadRamSize { ram_bytes: 0 }));
        assert_eq!(
            build_identity_paging(&mut ram, 6 * MIB, 0, 0),
            Err(PagingError::RamSliceTooSmall { slice_bytes: 4 * MIB, ram_bytes: 6 * MIB })
        );
        assert_eq!(
            build_identity_paging(&mut ram, 2 * MIB, 5, 0),
            Err(PagingError::BadChannelWindow { bytes: 5 })
        );
        let too_big = CHANNEL_WINDOW_BYTES + PAGE_SIZE;
        assert_eq!(
            build_identity_paging(&mut ram, 2 * MIB, too_big, 0),
            Err(PagingError::BadChannelWindow { bytes: too_big })
        );
    }
}
