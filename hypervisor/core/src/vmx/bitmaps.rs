//! The VMX I/O bitmaps and MSR bitmap: which port and MSR accesses of a partition exit.
//!
//! Both work on pages the binary owns (passed as arrays, so no copy and no heap):
//! - I/O bitmaps A and B as one 8 KiB array: bit `p` set = access to port `p` exits
//!   (A covers ports 0x0000-0x7FFF, B 0x8000-0xFFFF; write A's address to `IO_BITMAP_A`
//!   and A + 4096 to `IO_BITMAP_B`).
//! - the MSR bitmap, one 4 KiB page: read-low, read-high, write-low, write-high quarters
//!   for MSRs 0x0000_0000-0x0000_1FFF and 0xC000_0000-0xC000_1FFF; any other MSR always
//!   exits.
//!
//! ```
//! use hallows_core::vmx::bitmaps::{fill_io_bitmaps, io_access_exits, fill_msr_bitmap, msr_access_exits};
//! let mut io = [0u8; 8192];
//! fill_io_bitmaps(&mut io, [(0x3F8, 8)]).unwrap(); // COM1 passed through
//! assert!(!io_access_exits(&io, 0x3F8, 1));
//! assert!(io_access_exits(&io, 0x3FE, 4)); // 0x3FE..0x401 leaves the range
//! let mut msrs = [0u8; 4096];
//! fill_msr_bitmap(&mut msrs, &[0xC000_0100], &[]); // FS base: read freely, writes exit
//! assert!(!msr_access_exits(&msrs, 0xC000_0100, false));
//! assert!(msr_access_exits(&msrs, 0xC000_0100, true));
//! ```

use core::fmt;

/// A pass-through range that is not a valid port range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadPortRange {
    pub first: u32,
    pub count: u32,
}

impl fmt::Display for BadPortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "I/O ports {:#x} + {} outside 0..0x10000", self.first, self.count)
    }
}

/// Sets every port to exit, then clears the bits of each `(first, count)` range. Refuses
/// (leaving every port trapped) a range that reaches past port 0xFFFF.
pub fn fill_io_bitmaps(
    bits: &mut [u8; 8192],
    allowed: impl IntoIterator<Item = (u32, u32)>,
) -> Result<(), BadPortRange> {
    bits.fill(0xFF);
    for (first, count) in allowed {
        if first.checked_add(count).is_none_or(|end| end > 0x1_0000) {
            bits.fill(0xFF);
            return Err(BadPortRange { first, count });
        }
        for port in first..first + count {
            bits[port as usize / 8] &= !(1 << (port % 8));
        }
    }
    Ok(())
}

/// Whether an access of `size` bytes at `port` exits: when the bit of any byte it touches
/// is set, or when it wraps past 0xFFFF (SDM 26.1.3).
pub fn io_access_exits(bits: &[u8; 8192], port: u16, size: u8) -> bool {
    let first = port as u32;
    let end = first + size.max(1) as u32;
    end > 0x1_0000 || (first..end).any(|p| bits[p as usize / 8] & (1 << (p % 8)) != 0)
}

/// Where `msr`'s bit lives in the read half: byte offset of its quarter and bit index.
fn msr_slot(msr: u32) -> Option<(usize, u32)> {
    match msr {
        0..=0x1FFF => Some((0, msr)),
        0xC000_0000..=0xC000_1FFF => Some((1024, msr - 0xC000_0000)),
        _ => None,
    }
}

/// Sets every MSR access to exit, then lets the guest read the MSRs in `read_allowed` and
/// write those in `write_allowed` without an exit. MSRs outside the two bitmap ranges
/// cannot be allowed and are ignored (they always exit).
pub fn fill_msr_bitmap(page: &mut [u8; 4096], read_allowed: &[u32], write_allowed: &[u32]) {
    page.fill(0xFF);
    for (list, half) in [(read_allowed, 0usize), (write_allowed, 2048)] {
        for &msr in list {
            if let Some((quarter, bit)) = msr_slot(msr) {
                page[half + quarter + bit as usize / 8] &= !(1 << (bit % 8));
            }
        }
    }
}

/// Whether RDMSR (`write == false`) or WRMSR of `msr` exits.
pub fn msr_access_exits(page: &[u8; 4096], msr: u32, write: bool) -> bool {
    match msr_slot(msr) {
        None => true,
        Some((quarter, bit)) => {
            let half = if write { 2048 } else { 0 };
            page[half + quarter + bit as usize / 8] & (1 << (bit % 8)) != 0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn io_ranges() {
        let mut io = [0u8; 8192];
        fill_io_bitmaps(&mut io, [(0x60, 1), (0xFFF0, 0x10), (0x8000, 2)]).unwrap();
        assert!(!io_access_exits(&io, 0x60, 1));
        assert!(io_access_exits(&io, 0x60, 2));
        assert!(io_access_exits(&io, 0x61, 1));
        assert!(io_access_exits(&io, 0x5F, 1));
        assert!(!io_access_exits(&io, 0xFFFC, 4));
        assert!(io_access_exits(&io, 0xFFFF, 2), "wrap-around always exits");
        assert!(!io_access_exits(&io, 0x8000, 2));
        assert_eq!(io[0x8000 / 8] & 3, 0, "port 0x8000 is the first bit of bitmap B");
        assert!(io_access_exits(&io, 0x7FFF, 1));
        let before = io;
        assert_eq!(
            fill_io_bitmaps(&mut io, [(0x60, 1), (0xFFFF, 2)]),
            Err(BadPortRange { first: 0xFFFF, count: 2 })
        );
        assert!(io.iter().all(|&b| b == 0xFF), "a refused list leaves everything trapped");
        assert_ne!(before, io);
        assert!(fill_io_bitmaps(&mut io, [(u32::MAX, 2)]).is_err());
    }

    #[test]
    fn msr_quarters() {
        let mut page = [0u8; 4096];
        fill_msr_bitmap(&mut page, &[0x10, 0xC000_0080, 0x4000_0000], &[0x1FFF, 0xC000_1FFF]);
        assert!(!msr_access_exits(&page, 0x10, false));
        assert!(msr_access_exits(&page, 0x10, true));
        assert!(!msr_access_exits(&page, 0xC000_0080, false));
        assert!(msr_access_exits(&page, 0xC000_0080, true));
        assert!(!msr_access_exits(&page, 0x1FFF, true));
        assert!(!msr_access_exits(&page, 0xC000_1FFF, true));
        assert!(msr_access_exits(&page, 0x4000_0000, false), "outside the ranges: always exits");
        assert_eq!(page[0x10 / 8], !(1 << 0)); // read-low quarter
        assert_eq!(page[1024 + 0x80 / 8], !(1 << 0)); // read-high quarter
        assert_eq!(page[2048 + 0x1FFF / 8], !(1 << 7)); // write-low quarter
        assert_eq!(page[3072 + 0x1FFF / 8], !(1 << 7)); // write-high quarter
        assert_eq!(page.iter().filter(|&&b| b != 0xFF).count(), 4);
    }

    proptest! {
        #[test]
        fn only_allowed_ports_pass(first in 0u32..0x10000, count in 0u32..64, port: u16, size in 1u8..5) {
            let count = count.min(0x1_0000 - first);
            let mut io = [0u8; 8192];
            fill_io_bitmaps(&mut io, [(first, count)]).unwrap();
            let (p, end) = (port as u32, port as u32 + size as u32);
            let inside = first <= p && end <= first + count;
            prop_assert_eq!(io_access_exits(&io, port, size), !inside);
        }
    }
}
