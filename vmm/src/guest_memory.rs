//! Reading the instruction a guest was executing, through its own page tables.
//!
//! An EPT violation reports the guest-physical address of the data access, not the
//! instruction. To emulate it, the hypervisor needs the bytes at the guest's RIP, which is
//! a linear address: [`fetch_instruction`] translates it with the guest's paging mode
//! ([`Paging`], from the vCPU's CR0, CR3, CR4 and EFER) and reads guest-physical memory
//! through [`GuestPhysical`], which the binary implements over the partition's RAM (and a
//! test over a byte vector).
//!
//! Everything here reads guest-controlled tables: a missing or out-of-RAM entry ends the
//! walk with `None`, a walk never takes more than five reads, and nothing panics.

/// Guest-physical memory as the hypervisor may read it.
pub trait GuestPhysical {
    /// Fills `buf` from guest-physical `gpa`. Returns false, and may leave `buf` partly
    /// written, when any byte is outside the partition's RAM.
    fn read(&self, gpa: u64, buf: &mut [u8]) -> bool;
}

/// Guest RAM as one byte slice, guest-physical 0 at index 0 (a partition's RAM as the
/// hypervisor maps it, and the fake the tests use).
impl GuestPhysical for [u8] {
    fn read(&self, gpa: u64, buf: &mut [u8]) -> bool {
        let Ok(start) = usize::try_from(gpa) else { return false };
        let Some(end) = start.checked_add(buf.len()) else { return false };
        match self.get(start..end) {
            Some(bytes) => {
                buf.copy_from_slice(bytes);
                true
            }
            None => false,
        }
    }
}

const CR0_PG: u64 = 1 << 31;
const CR4_PSE: u64 = 1 << 4;
const CR4_PAE: u64 = 1 << 5;
const CR4_LA57: u64 = 1 << 12;
const EFER_LMA: u64 = 1 << 10;
const PRESENT: u64 = 1;
const PAGE_SIZE_BIT: u64 = 1 << 7;
/// Bits 51:12 of a 64-bit paging entry or CR3.
const ADDRESS_4K: u64 = 0x000F_FFFF_FFFF_F000;
const PAGE: u64 = 4096;

/// The registers that select how a vCPU translates linear addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Paging {
    /// Guest CR0 (PG).
    pub cr0: u64,
    /// Guest CR3 (the root table).
    pub cr3: u64,
    /// Guest CR4 (PSE, PAE, LA57).
    pub cr4: u64,
    /// Guest IA32_EFER (LMA).
    pub efer: u64,
}

impl Paging {
    /// Whether linear addresses are 64 bits wide (IA-32e mode); otherwise they wrap at 4 GiB.
    pub const fn long_mode(&self) -> bool {
        self.efer & EFER_LMA != 0
    }

    /// The guest-physical address of `linear`, or `None` when a paging entry is not
    /// present or cannot be read.
    pub fn translate(&self, memory: &impl GuestPhysical, linear: u64) -> Option<u64> {
        if self.cr0 & CR0_PG == 0 {
            return Some(linear & 0xFFFF_FFFF);
        }
        if self.long_mode() {
            let top_shift = if self.cr4 & CR4_LA57 != 0 { 48 } else { 39 };
            return walk_64(memory, self.cr3 & ADDRESS_4K, linear, top_shift);
        }
        let linear = linear & 0xFFFF_FFFF;
        if self.cr4 & CR4_PAE != 0 {
            // The four PDPTEs sit at CR3 bits 31:5.
            let pdpte = read_u64(memory, (self.cr3 & 0xFFFF_FFE0) + ((linear >> 30) & 3) * 8)?;
            if pdpte & PRESENT == 0 {
                return None;
            }
            return walk_64(memory, pdpte & ADDRESS_4K, linear, 21);
        }
        let pde = u64::from(read_u32(memory, (self.cr3 & 0xFFFF_F000) + ((linear >> 22) & 0x3FF) * 4)?);
        if pde & PRESENT == 0 {
            return None;
        }
        if pde & PAGE_SIZE_BIT != 0 && self.cr4 & CR4_PSE != 0 {
            // 4 MiB page; PSE-36 puts physical bits 39:32 in PDE bits 20:13.
            let base = (pde & 0xFFC0_0000) | ((pde >> 13) & 0xFF) << 32;
            return Some(base | (linear & 0x3F_FFFF));
        }
        let pte = u64::from(read_u32(memory, (pde & 0xFFFF_F000) + ((linear >> 12) & 0x3FF) * 4)?);
        (pte & PRESENT != 0).then_some((pte & 0xFFFF_F000) | (linear & 0xFFF))
    }
}

/// Walks 64-bit-entry tables from `table`, whose entries index `linear` from bit
/// `top_shift` down to bit 12 (9 bits a level). Large pages end the walk at bit 30 or 21.
fn walk_64(memory: &impl GuestPhysical, mut table: u64, linear: u64, top_shift: u32) -> Option<u64> {
    let mut shift = top_shift;
    loop {
        let entry = read_u64(memory, table + ((linear >> shift) & 0x1FF) * 8)?;
        if entry & PRESENT == 0 {
            return None;
        }
        let large = entry & PAGE_SIZE_BIT != 0 && (shift == 30 || shift == 21);
        if shift == 12 || large {
            let offset_mask = (1u64 << shift) - 1;
            return Some((entry & ADDRESS_4K & !offset_mask) | (linear & offset_mask));
        }
        table = entry & ADDRESS_4K;
        shift -= 9;
    }
}

fn read_u64(memory: &impl GuestPhysical, gpa: u64) -> Option<u64> {
    let mut bytes = [0u8; 8];
    memory.read(gpa, &mut bytes).then_some(u64::from_le_bytes(bytes))
}

fn read_u32(memory: &impl GuestPhysical, gpa: u64) -> Option<u32> {
    let mut bytes = [0u8; 4];
    memory.read(gpa, &mut bytes).then_some(u32::from_le_bytes(bytes))
}

/// Reads up to `out.len()` instruction bytes from guest-linear `linear`, page by page
/// (an instruction may cross into a page mapped elsewhere). Returns how many bytes were
/// read: fewer than asked when a page is not mapped or not in RAM, which the decoder then
/// reports as a truncated instruction.
pub fn fetch_instruction(memory: &impl GuestPhysical, paging: &Paging, linear: u64, out: &mut [u8]) -> usize {
    let address_mask = if paging.long_mode() { u64::MAX } else { 0xFFFF_FFFF };
    let mut done = 0;
    while done < out.len() {
        let here = linear.wrapping_add(done as u64) & address_mask;
        let Some(gpa) = paging.translate(memory, here) else { break };
        let in_page = (PAGE - (here & (PAGE - 1))) as usize;
        let chunk = in_page.min(out.len() - done);
        if !memory.read(gpa, &mut out[done..done + chunk]) {
            break;
        }
        done += chunk;
    }
    done
}

#[cfg(test)]
mod tests {
    use super::*;
    extern crate std;
    use std::vec;
    use std::vec::Vec;

    /// Guest RAM from GPA 0.
    struct Ram(Vec<u8>);

    impl GuestPhysical for Ram {
        fn read(&self, gpa: u64, buf: &mut [u8]) -> bool {
            self.0.as_slice().read(gpa, buf)
        }
    }

    impl Ram {
        fn put_u64(&mut self, gpa: u64, value: u64) {
            self.0[gpa as usize..gpa as usize + 8].copy_from_slice(&value.to_le_bytes());
        }
        fn put_u32(&mut self, gpa: u64, value: u32) {
            self.0[gpa as usize..gpa as usize + 4].copy_from_slice(&value.to_le_bytes());
        }
    }

    const LONG_MODE: Paging = Paging { cr0: CR0_PG | 1, cr3: 0x1000, cr4: CR4_PAE, efer: EFER_LMA | 1 << 8 };

    /// 4-level tables at 0x1000.. mapping linear 0xFFFF_8000_0040_0000 (PML4 256, PDPT 0,
    /// PD 2) with a 4 KiB page table: page 0 -> GPA 0x9000, page 1 -> 0x7000 (not
    /// adjacent), page 2 not present; and PD 3 as a 2 MiB page at GPA 0x20_0000.
    fn long_mode_ram() -> Ram {
        let mut ram = Ram(vec![0; 0x40_0000]);
        ram.put_u64(0x1000 + 256 * 8, 0x2000 | 3);
        ram.put_u64(0x2000, 0x3000 | 3);
        ram.put_u64(0x3000 + 2 * 8, 0x4000 | 3);
        ram.put_u64(0x3000 + 3 * 8, 0x20_0000 | PAGE_SIZE_BIT | 3);
        ram.put_u64(0x4000, 0x9000 | 3);
        ram.put_u64(0x4008, 0x7000 | 3);
        ram
    }

    const KERNEL_VA: u64 = 0xFFFF_8000_0040_0000;

    #[test]
    fn four_level_walk_with_small_and_large_pages() {
        let ram = long_mode_ram();
        assert_eq!(LONG_MODE.translate(&ram, KERNEL_VA + 0x123), Some(0x9123));
        assert_eq!(LONG_MODE.translate(&ram, KERNEL_VA + 0x1FFF), Some(0x7FFF));
        assert_eq!(LONG_MODE.translate(&ram, KERNEL_VA + 0x2000), None, "PTE not present");
        assert_eq!(
            LONG_MODE.translate(&ram, KERNEL_VA + 0x20_0000 + 0x1_2345),
            Some(0x21_2345),
            "2 MiB page"
        );
        assert_eq!(LONG_MODE.translate(&ram, 0x1000), None, "PML4 entry 0 not present");
        // A table pointer outside RAM ends the walk.
        let mut bad = long_mode_ram();
        bad.put_u64(0x2000, 0x7FFF_F000 | 3);
        assert_eq!(LONG_MODE.translate(&bad, KERNEL_VA), None);
    }

    #[test]
    fn five_level_and_one_gib_pages() {
        let mut ram = Ram(vec![0; 0x10_000]);
        // PML5 at 0x1000, entry 1 -> PML4 0x2000, entry 0 -> PDPT 0x3000, entry 1 = 1 GiB page.
        ram.put_u64(0x1000 + 8, 0x2000 | 1);
        ram.put_u64(0x2000, 0x3000 | 1);
        ram.put_u64(0x3008, 0x1_4000_0000 | PAGE_SIZE_BIT | 1);
        let paging = Paging { cr4: CR4_PAE | CR4_LA57, ..LONG_MODE };
        let linear = (1u64 << 48) | (1 << 30) | 0x2345_6789;
        assert_eq!(paging.translate(&ram, linear), Some(0x1_6345_6789));
    }

    #[test]
    fn legacy_modes() {
        let mut ram = Ram(vec![0; 0x10_000]);
        let no_paging = Paging { cr0: 1, ..Paging::default() };
        assert_eq!(no_paging.translate(&ram, 0x1_0000_1234), Some(0x1234), "wraps at 4 GiB");
        // 32-bit: PDE 1 -> PT at 0x2000; PTE 5 -> 0x8000. PDE 2 is a 4 MiB page with PSE-36 bits.
        ram.put_u32(0x1000 + 4, 0x2000 | 1);
        ram.put_u32(0x2000 + 5 * 4, 0x8000 | 1);
        ram.put_u32(0x1000 + 8, 0x0C00_0000 | 3 << 13 | PAGE_SIZE_BIT as u32 | 1);
        let flat = Paging { cr0: CR0_PG | 1, cr3: 0x1000, cr4: CR4_PSE, efer: 0 };
        assert_eq!(flat.translate(&ram, 0x40_5ABC), Some(0x8ABC));
        assert_eq!(flat.translate(&ram, 0x80_0010), Some(0x3_0C00_0010));
        let no_pse = Paging { cr4: 0, ..flat };
        assert_eq!(no_pse.translate(&ram, 0x40_5ABC), Some(0x8ABC));
        // PAE: PDPTE 0 at CR3 -> PD 0x3000; PDE 0 -> 2 MiB page at 0x40_0000.
        ram.put_u64(0x1100, 0x3000 | 1);
        ram.put_u64(0x3000, 0x40_0000 | PAGE_SIZE_BIT | 1);
        let pae = Paging { cr0: CR0_PG | 1, cr3: 0x1100, cr4: CR4_PAE, efer: 0 };
        assert_eq!(pae.translate(&ram, 0x1_2345), Some(0x41_2345));
        assert_eq!(pae.translate(&ram, 0x4000_0000), None, "PDPTE 1 not present");
    }

    #[test]
    fn fetch_crosses_pages_and_stops_at_a_hole() {
        let mut ram = long_mode_ram();
        ram.0[0x9FFD..0xA000].copy_from_slice(&[0x8B, 0x87, 0x10]);
        ram.0[0x7000..0x7003].copy_from_slice(&[0x00, 0x00, 0x00]);
        let mut bytes = [0u8; 15];
        assert_eq!(fetch_instruction(&ram, &LONG_MODE, KERNEL_VA + 0xFFD, &mut bytes), 15);
        assert_eq!(&bytes[..6], &[0x8B, 0x87, 0x10, 0, 0, 0]);
        // Two bytes before the unmapped third page.
        assert_eq!(fetch_instruction(&ram, &LONG_MODE, KERNEL_VA + 0x1FFE, &mut bytes), 2);
        assert_eq!(fetch_instruction(&ram, &LONG_MODE, KERNEL_VA + 0x2000, &mut bytes), 0);
    }

    proptest::proptest! {
        #[test]
        fn hostile_tables_never_panic(
            words in proptest::collection::vec(proptest::prelude::any::<u64>(), 512),
            cr0: u64, cr3: u64, cr4: u64, efer: u64, linear: u64,
        ) {
            // RAM of random entries, some of which point back into it.
            let mut ram = Ram(vec![0; 0x1000 * 4]);
            for (i, w) in words.iter().enumerate() {
                let entry = if i % 3 == 0 { w & 0x3FFF } else { *w };
                ram.put_u64((i as u64 * 8) % 0x3FF8, entry);
            }
            let paging = Paging { cr0, cr3: cr3 & 0x3FFF, cr4, efer };
            let _ = paging.translate(&ram, linear);
            let mut bytes = [0u8; 15];
            proptest::prop_assert!(fetch_instruction(&ram, &paging, linear, &mut bytes) <= 15);
        }
    }
}
