//! Intel Resource Director Technology, allocation side: L3 cache allocation (CAT), its
//! code and data prioritisation (CDP) and memory bandwidth allocation (MBA). No
//! privileged code: the binary performs the returned [`MsrWrite`]s.
//!
//! - [`CatInfo`] / [`MbaInfo`]: what CPUID offers.
//! - [`plan::plan`]: the classes of service (COS) of a whole table, checked against
//!   CPUID: each partition with ways (or a bandwidth share) gets its own class `1..`, the
//!   hypervisor and the partitions without ways share class 0; [`plan::CachePlan::boot_writes`]
//!   are the MSR writes that apply it on a package.
//! - [`switch::ClassTracker`]: which class a core's `IA32_PQR_ASSOC` holds, so that a core
//!   writes it only when the partition it enters has another class.
//! - [`hardware::RdtMsrs`]: a model of the MSRs with the #GP rules of the SDM (and of the
//!   `bochs-rdt` emulator), used by the tests to run every write the plan makes.
//!
//! ```
//! use hallows_core::cat::{assoc_write, mask_write, way_mask, CatInfo};
//! let info = CatInfo { ways: 12, max_cos: 15, shareable_mask: 0, cdp: false };
//! let mask = way_mask(&info, 4, 2, 1).unwrap();
//! assert_eq!(mask, 0b11_0000);
//! let w = mask_write(&info, 3, mask).unwrap();
//! assert_eq!((w.msr, w.value), (0xC93, 0x30));
//! assert_eq!(assoc_write(3).value, 3 << 32);
//! ```

pub mod hardware;
#[cfg(test)]
mod isolation_tests;
pub mod plan;
pub mod report;
pub mod switch;

use core::fmt;

/// IA32_PQR_ASSOC: bits 63:32 select the class of service of the current core.
pub const IA32_PQR_ASSOC: u32 = 0xC8F;
/// IA32_L3_QOS_MASK_0; the mask of COS `n` is at `IA32_L3_MASK_BASE + n` (with CDP: the
/// data mask at `+ 2n`, the code mask at `+ 2n + 1`).
pub const IA32_L3_MASK_BASE: u32 = 0xC90;
/// IA32_L3_QOS_CFG: bit 0 enables CDP.
pub const IA32_L3_QOS_CFG: u32 = 0xC81;
/// IA32_L2_QOS_EXT_BW_THRTL_0: the MBA delay of COS `n` is at `IA32_MBA_THRTL_BASE + n`.
pub const IA32_MBA_THRTL_BASE: u32 = 0xD50;
/// The last MSR of the RDT block (L2 masks and MBA delays end below it); every MSR from
/// `IA32_QM_EVTSEL` (0xC8D) to here is the hypervisor's alone.
pub const RDT_MSR_LAST: u32 = 0xD8F;
/// IA32_QM_EVTSEL, the first RDT MSR (monitoring).
pub const RDT_MSR_FIRST: u32 = 0xC8D;

/// L3 CAT as CPUID describes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CatInfo {
    /// Capacity bitmask length: the number of ways that can be assigned.
    pub ways: u8,
    /// Highest class of service number.
    pub max_cos: u16,
    /// Ways that other agents (e.g. I/O) may share (CPUID.(0x10,1):EBX).
    pub shareable_mask: u32,
    /// Code and data prioritisation is available (CPUID.(0x10,1):ECX[2]).
    pub cdp: bool,
}

impl CatInfo {
    /// Reads L3 CAT support through `cpuid(leaf, subleaf) -> [eax, ebx, ecx, edx]`:
    /// `CPUID.(7,0):EBX[15]` (RDT allocation), `CPUID.(0x10,0):EBX[1]` (L3 CAT), then
    /// CPUID.(0x10,1). `None` when the CPU has no L3 CAT (every emulator).
    pub fn from_cpuid(cpuid: impl Fn(u32, u32) -> [u32; 4]) -> Option<Self> {
        if cpuid(0, 0)[0] < 0x10 || cpuid(7, 0)[1] & (1 << 15) == 0 || cpuid(0x10, 0)[1] & (1 << 1) == 0 {
            return None;
        }
        let [eax, ebx, ecx, edx] = cpuid(0x10, 1);
        Some(CatInfo {
            ways: (eax & 0x1F) as u8 + 1,
            max_cos: (edx & 0xFFFF) as u16,
            shareable_mask: ebx,
            cdp: ecx & (1 << 2) != 0,
        })
    }

    /// All ways.
    pub fn full_mask(&self) -> u32 {
        if self.ways >= 32 {
            u32::MAX
        } else {
            (1u32 << self.ways) - 1
        }
    }

    /// The highest class of service usable in the given mode: with CDP every class takes
    /// two mask registers, which halves the classes.
    pub fn max_cos_in_mode(&self, cdp: bool) -> u16 {
        if cdp {
            (self.max_cos as u32).div_ceil(2).saturating_sub(1) as u16
        } else {
            self.max_cos
        }
    }
}

/// Memory bandwidth allocation as CPUID describes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MbaInfo {
    /// Highest delay value (CPUID.(0x10,3):EAX[11:0] + 1): the delays run from 0 (no
    /// throttling) to this in steps of `100 - max_delay` percent.
    pub max_delay: u16,
    /// Highest class of service with an MBA delay register.
    pub max_cos: u16,
    /// The delay scales the bandwidth linearly (CPUID.(0x10,3):ECX[2]); only then does a
    /// percentage mean anything.
    pub linear: bool,
}

impl MbaInfo {
    /// Reads MBA support: `CPUID.(7,0):EBX[15]`, `CPUID.(0x10,0):EBX[3]`, then
    /// CPUID.(0x10,3). `None` without MBA.
    pub fn from_cpuid(cpuid: impl Fn(u32, u32) -> [u32; 4]) -> Option<Self> {
        if cpuid(0, 0)[0] < 0x10 || cpuid(7, 0)[1] & (1 << 15) == 0 || cpuid(0x10, 0)[1] & (1 << 3) == 0 {
            return None;
        }
        let [eax, _, ecx, edx] = cpuid(0x10, 3);
        Some(MbaInfo {
            max_delay: (eax & 0xFFF) as u16 + 1,
            max_cos: (edx & 0xFFFF) as u16,
            linear: ecx & (1 << 2) != 0,
        })
    }

    /// Step between two delay values, in percent of the bandwidth.
    pub fn granularity(&self) -> u16 {
        100u16.saturating_sub(self.max_delay).max(1)
    }

    /// The delay value that gives a partition `percent` of the bandwidth, when the CPU
    /// can express it exactly.
    pub fn delay_for(&self, percent: u8) -> Option<u16> {
        let percent = percent as u16;
        if !self.linear || percent == 0 || percent > 100 {
            return None;
        }
        let delay = 100 - percent;
        (delay <= self.max_delay && delay.is_multiple_of(self.granularity())).then_some(delay)
    }
}

/// Why a way assignment cannot be applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CatError {
    /// Zero ways, or fewer than the minimum contiguous width.
    TooNarrow { count: u8, min: u8 },
    /// The ways `first..first + count` exceed the CPU's mask length.
    OutOfRange { first: u8, count: u8, ways: u8 },
    /// The class of service exceeds the CPU's highest one.
    ClassOutOfRange { cos: u16, max: u16 },
    /// A mask that is empty, not contiguous, or wider than the CPU's mask length.
    BadMask { mask: u32 },
}

impl fmt::Display for CatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::TooNarrow { count, min } => write!(f, "{count} LLC ways, at least {min} needed"),
            Self::OutOfRange { first, count, ways } => {
                write!(f, "LLC ways {first}..{} beyond the CPU's {ways}", first as u16 + count as u16)
            }
            Self::ClassOutOfRange { cos, max } => write!(f, "class of service {cos} beyond the CPU's {max}"),
            Self::BadMask { mask } => write!(f, "invalid capacity bitmask {mask:#x}"),
        }
    }
}

/// One MSR write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MsrWrite {
    pub msr: u32,
    pub value: u64,
}

/// The contiguous capacity bitmask of ways `first..first + count`, checked against the
/// CPU's mask length and the minimum width `min_ways` (the table's `cat_min_ways`, at
/// least 1).
pub fn way_mask(info: &CatInfo, first: u8, count: u8, min_ways: u8) -> Result<u32, CatError> {
    let min = min_ways.max(1);
    if count < min {
        return Err(CatError::TooNarrow { count, min });
    }
    if first as u16 + count as u16 > info.ways.min(32) as u16 {
        return Err(CatError::OutOfRange { first, count, ways: info.ways });
    }
    let ones = if count >= 32 { u32::MAX } else { (1u32 << count) - 1 };
    Ok(ones << first)
}

/// One contiguous run of ones (what a capacity bitmask must be).
pub fn contiguous(mask: u32) -> bool {
    mask != 0 && {
        let shifted = mask >> mask.trailing_zeros();
        shifted & (shifted.wrapping_add(1)) == 0
    }
}

/// The write of `mask` into `IA32_L3_MASK_cos`.
pub fn mask_write(info: &CatInfo, cos: u16, mask: u32) -> Result<MsrWrite, CatError> {
    if cos > info.max_cos {
        return Err(CatError::ClassOutOfRange { cos, max: info.max_cos });
    }
    let width_ok = info.ways >= 32 || mask >> info.ways == 0;
    if !contiguous(mask) || !width_ok {
        return Err(CatError::BadMask { mask });
    }
    Ok(MsrWrite { msr: IA32_L3_MASK_BASE + cos as u32, value: mask as u64 })
}

/// The write of `IA32_PQR_ASSOC` that makes the current core use class `cos` (RMID 0).
pub const fn assoc_write(cos: u16) -> MsrWrite {
    MsrWrite { msr: IA32_PQR_ASSOC, value: (cos as u64) << 32 }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(ways: u8) -> CatInfo {
        CatInfo { ways, max_cos: 7, shareable_mask: 0, cdp: false }
    }

    #[test]
    fn masks_from_first_and_count() {
        assert_eq!(way_mask(&info(11), 0, 2, 1), Ok(0b11));
        assert_eq!(way_mask(&info(11), 9, 2, 2), Ok(0b110_0000_0000));
        assert_eq!(way_mask(&info(32), 0, 32, 1), Ok(u32::MAX));
        assert_eq!(
            way_mask(&info(11), 10, 2, 1),
            Err(CatError::OutOfRange { first: 10, count: 2, ways: 11 })
        );
        assert_eq!(
            way_mask(&info(11), 255, 255, 1),
            Err(CatError::OutOfRange { first: 255, count: 255, ways: 11 })
        );
        assert_eq!(way_mask(&info(11), 0, 1, 2), Err(CatError::TooNarrow { count: 1, min: 2 }));
        assert_eq!(way_mask(&info(11), 0, 0, 0), Err(CatError::TooNarrow { count: 0, min: 1 }));
    }

    #[test]
    fn msr_writes() {
        let i = info(11);
        assert_eq!(mask_write(&i, 0, 0b1110), Ok(MsrWrite { msr: 0xC90, value: 0b1110 }));
        assert_eq!(mask_write(&i, 7, 0x7FF), Ok(MsrWrite { msr: 0xC97, value: 0x7FF }));
        assert_eq!(mask_write(&i, 8, 1), Err(CatError::ClassOutOfRange { cos: 8, max: 7 }));
        for bad in [0, 0b101, 0x800, 0xFFF] {
            assert_eq!(mask_write(&i, 1, bad), Err(CatError::BadMask { mask: bad }));
        }
        assert_eq!(assoc_write(5), MsrWrite { msr: 0xC8F, value: 5 << 32 });
    }

    #[test]
    fn cpuid_detection() {
        // A server part: 11 ways, 16 classes.
        let server = |leaf: u32, sub: u32| match (leaf, sub) {
            (0, 0) => [0x16, 0, 0, 0],
            (7, 0) => [0, 1 << 15, 0, 0],
            (0x10, 0) => [0, 1 << 1, 0, 0],
            (0x10, 1) => [10, 0x600, 4, 15],
            _ => [0; 4],
        };
        assert_eq!(
            CatInfo::from_cpuid(server),
            Some(CatInfo { ways: 11, max_cos: 15, shareable_mask: 0x600, cdp: true })
        );
        // Bochs / QEMU: no RDT allocation.
        let emulator = |leaf: u32, _| if leaf == 0 { [0x16, 0, 0, 0] } else { [0; 4] };
        assert_eq!(CatInfo::from_cpuid(emulator), None);
        // An old CPU whose highest leaf is below 0x10 must not be asked about leaf 0x10.
        let old = |leaf: u32, _| {
            assert!(leaf < 0x10, "leaf {leaf:#x} queried");
            if leaf == 0 {
                [0xD, 0, 0, 0]
            } else {
                [0, u32::MAX, 0, 0]
            }
        };
        assert_eq!(CatInfo::from_cpuid(old), None);
    }

    #[test]
    fn mba_detection_and_delays() {
        // A Skylake-SP-like part: delays 0..=90 in steps of 10, linear, 8 classes.
        let server = |leaf: u32, sub: u32| match (leaf, sub) {
            (0, 0) => [0x16, 0, 0, 0],
            (7, 0) => [0, 1 << 15, 0, 0],
            (0x10, 0) => [0, 1 << 1 | 1 << 3, 0, 0],
            (0x10, 3) => [89, 0, 1 << 2, 7],
            _ => [0; 4],
        };
        let mba = MbaInfo::from_cpuid(server).unwrap();
        assert_eq!(mba, MbaInfo { max_delay: 90, max_cos: 7, linear: true });
        assert_eq!(mba.granularity(), 10);
        assert_eq!(mba.delay_for(100), Some(0));
        assert_eq!(mba.delay_for(10), Some(90));
        assert_eq!(mba.delay_for(50), Some(50));
        for not_expressible in [0, 5, 25, 101] {
            assert_eq!(mba.delay_for(not_expressible), None, "{not_expressible}%");
        }
        assert_eq!(MbaInfo { linear: false, ..mba }.delay_for(50), None);
        // No MBA bit: none, and subleaf 3 is not asked.
        let cat_only = |leaf: u32, sub: u32| {
            assert!((leaf, sub) != (0x10, 3));
            server(leaf, sub)
        };
        let cat_only =
            |leaf: u32, sub: u32| if (leaf, sub) == (0x10, 0) { [0, 2, 0, 0] } else { cat_only(leaf, sub) };
        assert_eq!(MbaInfo::from_cpuid(cat_only), None);
    }

    #[test]
    fn cdp_halves_the_classes() {
        let i = CatInfo { ways: 11, max_cos: 15, shareable_mask: 0, cdp: true };
        assert_eq!(i.max_cos_in_mode(false), 15);
        assert_eq!(i.max_cos_in_mode(true), 7);
        assert_eq!(CatInfo { max_cos: 0, ..i }.max_cos_in_mode(true), 0);
        assert_eq!(CatInfo { max_cos: u16::MAX, ..i }.max_cos_in_mode(true), 32767);
        assert_eq!(i.full_mask(), 0x7FF);
        assert_eq!(CatInfo { ways: 32, ..i }.full_mask(), u32::MAX);
    }
}
