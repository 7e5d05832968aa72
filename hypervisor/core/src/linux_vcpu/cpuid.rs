//! The CPUID view of a Linux vCPU, built on [`crate::cpuid::filter`].
//!
//! On every CPUID exit the binary executes CPUID on the vCPU's own core with the guest's
//! `eax`/`ecx` and passes the result to [`LinuxCpuid::answer`]. On top of the common
//! filter (no VMX/SMX, no RDT, no PMU, hypervisor bit, "RustHallows" vendor leaf):
//!
//! - **Topology shows only the partition.** One package, one thread per core, as many
//!   cores as vCPUs. The core-level shift is the number of bits that cover the largest
//!   guest APIC id, so every vCPU has package id 0 and core id = its APIC id. Leaf 1
//!   EBX[31:24] is the vCPU's (guest) APIC id, EBX[23:16] the addressable ids, EDX.HTT set
//!   when there is more than one vCPU; leaves 0xB and 0x1F describe an SMT level (shift 0,
//!   one thread) and a core level (that shift, n vCPUs) with the x2APIC id in EDX; leaf 4
//!   says the package addresses `2^shift` cores and that the last-level cache (level 3) is
//!   shared by all of them, lower levels by one core.
//! - **x2APIC on, and what Linux should not touch off.** Leaf 1 ECX.x2APIC is set;
//!   MONITOR/MWAIT (leaf 5 zero: Linux idles with HLT, which never exits), DS, DS-CPL, EST,
//!   TM, TM2, PBE, PDCM, ACPI-thermal, MCE/MCA (the machine-check banks are shared with
//!   other partitions), TSC_ADJUST and WAITPKG are hidden. Leaf 6 reads as ARAT only (the
//!   APIC timer keeps running in C1, the only C-state HLT reaches). Leaf 7 EDX[29]
//!   announces IA32_ARCH_CAPABILITIES, which [`super::msr`] emulates with the
//!   "x2APIC locked" bit.
//! - **TSC and LAPIC-timer frequencies are announced, so Linux never calibrates against a
//!   PIT or HPET** (the partition has neither). What Linux 6.1 reads: `native_calibrate_tsc`
//!   (Intel vendor only) uses leaf 0x15 when the maximum basic leaf is at least 0x15:
//!   TSC Hz = ECX (crystal Hz) * EBX / EAX, computed in 32-bit arithmetic from
//!   `ECX / 1000`; it then marks the frequency known (no refinement against another clock)
//!   and, importantly, sets the LAPIC timer period from the crystal frequency, which skips
//!   `calibrate_APIC_clock`. So the crystal announced here is the **LAPIC timer input
//!   clock** and EBX/EAX the TSC ratio, reduced so that Linux's 32-bit product cannot
//!   overflow. Leaf 0x16 (base/max MHz, bus MHz) feeds `cpu_khz_from_cpuid`, which saves
//!   the early PIT calibration. When the host's maximum basic leaf is below 0x16 it is
//!   raised to 0x16, and leaves between the host maximum and 0x16 that are not
//!   synthesised read as zero. The hypervisor timing leaf 0x4000_0010 (EAX = TSC kHz, EBX
//!   = LAPIC timer kHz) is also provided, but Linux 6.1 reads it only for hypervisors it
//!   recognises (VMware, ACRN), not for this vendor string: it is for our own tools.
//!   Under Bochs both clocks tick once per emulated instruction, so `tsc_khz ==
//!   lapic_khz` = the configured `ips` / 1000. Overriding the host leaves is essential
//!   there: Bochs's `corei7_skylake_x` reports leaf 0x15 = (2, 292, 0) and leaf 0x16 =
//!   3500 MHz, from which Linux would derive a 3.5 GHz TSC, 35 times too fast at
//!   `ips=100000000`.
//!
//! ```
//! use hallows_core::linux_vcpu::apic::ApicIdMap;
//! use hallows_core::linux_vcpu::cpuid::{LinuxCpuid, TscTiming};
//! let map = ApicIdMap::identity(&[0, 1, 2]).unwrap();
//! let view = LinuxCpuid::new(&map, 2, 0x16, TscTiming { tsc_khz: 100_000, lapic_khz: 100_000 });
//! let leaf1 = view.answer(1, 0, [0x50654, 0x0010_0800, 0x7FFA_FBBF, 0xBFEB_FBFF]);
//! assert_eq!(leaf1[1] >> 24, 2); // initial APIC id of vCPU 2
//! assert_ne!(leaf1[2] & 1 << 21, 0); // x2APIC
//! let leaf15 = view.answer(0x15, 0, [0; 4]);
//! assert_eq!(leaf15[2] as u64 / 1000 * leaf15[1] as u64 / leaf15[0] as u64, 100_000);
//! ```

use super::apic::ApicIdMap;
use crate::cpuid::{filter, HYPERVISOR_LEAF};

/// The frequencies the guest is told. Zero means unknown: leaves 0x15, 0x16 and 0x4000_0010
/// then read as zero and Linux falls back to calibration.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TscTiming {
    pub tsc_khz: u32,
    /// The LAPIC timer's input clock (before the divide configuration).
    pub lapic_khz: u32,
}

/// The hypervisor timing leaf.
pub const TIMING_LEAF: u32 = 0x4000_0010;
/// The maximum basic leaf the guest is shown at least (leaf 0x16, frequencies).
pub const MIN_MAX_BASIC_LEAF: u32 = 0x16;

mod bit {
    // Leaf 1 ECX.
    pub const MONITOR: u32 = 1 << 3;
    pub const DS_CPL: u32 = 1 << 4;
    pub const EST: u32 = 1 << 7;
    pub const TM2: u32 = 1 << 8;
    pub const PDCM: u32 = 1 << 15;
    pub const X2APIC: u32 = 1 << 21;
    // Leaf 1 EDX.
    pub const MCE: u32 = 1 << 7;
    pub const MCA: u32 = 1 << 14;
    pub const DS: u32 = 1 << 21;
    pub const ACPI: u32 = 1 << 22;
    pub const HTT: u32 = 1 << 28;
    pub const TM: u32 = 1 << 29;
    pub const PBE: u32 = 1 << 31;
    // Leaf 6 EAX.
    pub const ARAT: u32 = 1 << 2;
    // Leaf 7.0.
    pub const TSC_ADJUST: u32 = 1 << 1; // EBX
    pub const WAITPKG: u32 = 1 << 5; // ECX
    pub const ARCH_CAPABILITIES: u32 = 1 << 29; // EDX
}

/// The CPUID answers for one vCPU of a Linux partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinuxCpuid {
    apic_id: u32,
    vcpus: u32,
    shift: u32,
    host_max_basic: u32,
    timing: TscTiming,
}

/// Bits needed to hold ids 0..=max.
fn bits_for(max: u32) -> u32 {
    32 - max.leading_zeros()
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

impl LinuxCpuid {
    /// The view of `vcpu` of the partition described by `map`. `host_max_basic` is EAX of
    /// the host's CPUID leaf 0. A `vcpu` outside the map gets APIC id 0 (the binary's bug,
    /// never the guest's).
    pub fn new(map: &ApicIdMap, vcpu: usize, host_max_basic: u32, timing: TscTiming) -> Self {
        LinuxCpuid {
            apic_id: map.guest_id(vcpu).unwrap_or(0),
            vcpus: map.len() as u32,
            shift: bits_for(map.max_guest_id()),
            host_max_basic,
            timing,
        }
    }

    /// The core-level shift of leaf 0xB (bits of APIC id below the package id).
    pub fn core_shift(&self) -> u32 {
        self.shift
    }

    fn max_basic(&self) -> u32 {
        self.host_max_basic.max(MIN_MAX_BASIC_LEAF)
    }

    fn topology_leaf(&self, subleaf: u32) -> [u32; 4] {
        match subleaf {
            0 => [0, 1, 1 << 8, self.apic_id],
            1 => [self.shift, self.vcpus, 2 << 8 | 1, self.apic_id],
            n => [0, 0, n & 0xFF, self.apic_id],
        }
    }

    /// Leaf 0x15: `[denominator, numerator, crystal Hz, 0]` with crystal = LAPIC clock.
    fn tsc_leaf(&self) -> [u32; 4] {
        let TscTiming { tsc_khz, lapic_khz } = self.timing;
        if tsc_khz == 0 || lapic_khz == 0 || lapic_khz > u32::MAX / 1000 {
            return [0; 4];
        }
        let g = gcd(tsc_khz, lapic_khz);
        let (mut num, mut den) = (tsc_khz / g, lapic_khz / g);
        // Linux computes crystal_khz * num in 32 bits.
        while lapic_khz as u64 * num as u64 > u32::MAX as u64 && den > 1 {
            num >>= 1;
            den >>= 1;
        }
        if lapic_khz as u64 * num as u64 > u32::MAX as u64 {
            return [0; 4];
        }
        [den, num, lapic_khz * 1000, 0]
    }

    /// The registers `[eax, ebx, ecx, edx]` for `CPUID(leaf, subleaf)` given the host's
    /// answer on this vCPU's core.
    pub fn answer(&self, leaf: u32, subleaf: u32, host: [u32; 4]) -> [u32; 4] {
        let [eax, ebx, ecx, edx] = filter(leaf, subleaf, host);
        let addressable = (1u32 << self.shift.min(8)).min(255);
        match leaf {
            0 => [self.max_basic(), ebx, ecx, edx],
            1 => {
                let ebx = (ebx & 0xFFFF) | addressable << 16 | (self.apic_id & 0xFF) << 24;
                let ecx =
                    (ecx & !(bit::MONITOR | bit::DS_CPL | bit::EST | bit::TM2 | bit::PDCM)) | bit::X2APIC;
                let mut edx =
                    edx & !(bit::MCE | bit::MCA | bit::DS | bit::ACPI | bit::TM | bit::PBE | bit::HTT);
                if self.vcpus > 1 {
                    edx |= bit::HTT;
                }
                [eax, ebx, ecx, edx]
            }
            4 if eax & 0x1F == 0 => [eax, ebx, ecx, edx],
            4 => {
                let cores = ((1u32 << self.shift.min(6)) - 1).min(63);
                let level = (eax >> 5) & 7;
                let sharing = if level >= 3 { ((1u32 << self.shift.min(12)) - 1).min(0xFFF) } else { 0 };
                [(eax & 0x3FFF) | sharing << 14 | cores << 26, ebx, ecx, edx]
            }
            5 => [0; 4],
            6 => [bit::ARAT, 0, 0, 0],
            7 if subleaf == 0 => {
                [eax, ebx & !bit::TSC_ADJUST, ecx & !bit::WAITPKG, edx | bit::ARCH_CAPABILITIES]
            }
            0xB | 0x1F => self.topology_leaf(subleaf),
            0x15 => self.tsc_leaf(),
            0x16 => {
                let t = self.timing;
                if t.tsc_khz == 0 {
                    [0; 4]
                } else {
                    let mhz = t.tsc_khz / 1000;
                    [mhz & 0xFFFF, mhz & 0xFFFF, (t.lapic_khz / 1000) & 0xFFFF, 0]
                }
            }
            l if l > self.host_max_basic && l <= self.max_basic() => [0; 4],
            HYPERVISOR_LEAF => [TIMING_LEAF, ebx, ecx, edx],
            TIMING_LEAF => [self.timing.tsc_khz, self.timing.lapic_khz, 0, 0],
            _ => [eax, ebx, ecx, edx],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const HOST1: [u32; 4] = [0x50654, 0x0A10_0800, 0xFFFF_FFFF, 0xFFFF_FFFF];
    const BOCHS: TscTiming = TscTiming { tsc_khz: 140_000, lapic_khz: 140_000 };

    fn view(ids: &[u32], vcpu: usize) -> LinuxCpuid {
        LinuxCpuid::new(&ApicIdMap::identity(ids).unwrap(), vcpu, 0x16, BOCHS)
    }

    /// Linux 6.1's arithmetic in native_calibrate_tsc (u32 throughout).
    fn linux_tsc_khz(l: [u32; 4]) -> u32 {
        let crystal_khz = l[2] / 1000;
        crystal_khz.wrapping_mul(l[1]) / l[0]
    }

    #[test]
    fn leaf1_topology_and_features() {
        let [_, ebx, ecx, edx] = view(&[0, 1, 2, 3, 4], 3).answer(1, 0, HOST1);
        assert_eq!(ebx >> 24, 3, "initial APIC id");
        assert_eq!((ebx >> 16) & 0xFF, 8, "ids 0..4 need 3 bits: 8 addressable");
        assert_eq!(ebx & 0xFFFF, 0x0800, "brand/CLFLUSH kept");
        assert_ne!(ecx & bit::X2APIC, 0);
        assert_ne!(ecx & 1 << 31, 0, "hypervisor");
        assert_eq!(ecx & (1 << 5 | bit::MONITOR | bit::PDCM | bit::EST), 0, "VMX, MONITOR, PDCM, EST hidden");
        assert_eq!(edx & (bit::MCE | bit::MCA | bit::ACPI | bit::TM), 0);
        assert_ne!(edx & bit::HTT, 0);
        assert_ne!(edx & 1 << 12, 0, "MTRR stays");
        let [_, _, ecx, edx] = view(&[7], 0).answer(1, 0, [0, 0, 0, 0]);
        assert_eq!(edx & bit::HTT, 0, "one vCPU: no HTT");
        assert_ne!(ecx & bit::X2APIC, 0, "x2APIC set even when the host hides it");
    }

    #[test]
    fn extended_topology_leaves() {
        let v = view(&[0x10, 0x11, 0x13], 2);
        assert_eq!(v.core_shift(), 5, "largest id 0x13 needs 5 bits");
        for leaf in [0xB, 0x1F] {
            assert_eq!(v.answer(leaf, 0, [9; 4]), [0, 1, 0x100, 0x13]);
            assert_eq!(v.answer(leaf, 1, [9; 4]), [5, 3, 0x201, 0x13]);
            assert_eq!(v.answer(leaf, 2, [9; 4]), [0, 0, 2, 0x13]);
        }
        // Every vCPU's package id (apic id >> shift) is 0.
        for id in [0x10u32, 0x11, 0x13] {
            assert_eq!(id >> v.core_shift(), 0);
        }
        let seq = LinuxCpuid::new(&ApicIdMap::sequential(&[40, 41]).unwrap(), 1, 0x1F, BOCHS);
        assert_eq!(seq.answer(0xB, 1, [0; 4]), [1, 2, 0x201, 1]);
    }

    #[test]
    fn cache_leaf_sharing() {
        let v = view(&[0, 1, 2, 3], 0);
        // L1 data cache (type 1, level 1) and L3 (type 3, level 3).
        let l1 = v.answer(4, 0, [0xFC00_4121, 1, 2, 3]);
        assert_eq!(l1[0] >> 26, 3, "4 addressable cores");
        assert_eq!((l1[0] >> 14) & 0xFFF, 0, "L1 per core");
        assert_eq!(l1[0] & 0x3FFF, 0x0121);
        assert_eq!(&l1[1..], &[1, 2, 3]);
        let l3 = v.answer(4, 3, [0xFC0F_C163, 0, 0, 0]);
        assert_eq!((l3[0] >> 14) & 0xFFF, 3, "L3 shared by the 4 cores");
        assert_eq!(v.answer(4, 4, [0, 0, 0, 0]), [0; 4], "end of list untouched");
    }

    #[test]
    fn power_and_misc_leaves() {
        let v = view(&[0, 1], 0);
        assert_eq!(v.answer(5, 0, [u32::MAX; 4]), [0; 4]);
        assert_eq!(v.answer(6, 0, [u32::MAX; 4]), [bit::ARAT, 0, 0, 0]);
        let l7 = v.answer(7, 0, [0, u32::MAX, u32::MAX, 0]);
        assert_eq!(l7[1] & (bit::TSC_ADJUST | 1 << 15), 0, "TSC_ADJUST and RDT-A hidden");
        assert_eq!(l7[2] & bit::WAITPKG, 0);
        assert_ne!(l7[3] & bit::ARCH_CAPABILITIES, 0);
        assert_eq!(v.answer(7, 1, [5, 6, 7, 8])[3], 8, "subleaf 1 untouched");
        assert_eq!(v.answer(0xA, 0, [u32::MAX; 4]), [0; 4], "PMU hidden by the common filter");
        assert_eq!(v.answer(0x8000_0007, 0, [0, 0, 0, 0x100]), [0, 0, 0, 0x100], "invariant TSC kept");
    }

    #[test]
    fn tsc_leaves_let_linux_skip_calibration() {
        let v = view(&[0], 0);
        let l15 = v.answer(0x15, 0, [0; 4]);
        assert_eq!(l15, [1, 1, 140_000_000, 0]);
        assert_eq!(linux_tsc_khz(l15), 140_000);
        assert_eq!(v.answer(0x16, 0, [0; 4]), [140, 140, 140, 0]);
        assert_eq!(v.answer(TIMING_LEAF, 0, [0; 4]), [140_000, 140_000, 0, 0]);
        assert_eq!(v.answer(HYPERVISOR_LEAF, 0, [0; 4])[0], TIMING_LEAF);
        // Real-hardware shaped: 24 MHz crystal, 2.1 GHz TSC.
        let hw = TscTiming { tsc_khz: 2_100_000, lapic_khz: 24_000 };
        let l = LinuxCpuid::new(&ApicIdMap::identity(&[0]).unwrap(), 0, 0x16, hw).answer(0x15, 0, [0; 4]);
        assert_eq!(l, [2, 175, 24_000_000, 0], "ratio reduced by the gcd");
        assert_eq!(linux_tsc_khz(l), 2_100_000);
        // Unknown timing: zeros.
        let none = LinuxCpuid::new(&ApicIdMap::identity(&[0]).unwrap(), 0, 0x16, TscTiming::default());
        assert_eq!(none.answer(0x15, 0, [1, 2, 3, 4]), [0; 4]);
        assert_eq!(none.answer(0x16, 0, [1, 2, 3, 4]), [0; 4]);
    }

    #[test]
    fn max_basic_leaf_is_raised_to_reach_the_frequency_leaves() {
        let map = ApicIdMap::identity(&[0]).unwrap();
        let low = LinuxCpuid::new(&map, 0, 0xD, BOCHS);
        assert_eq!(low.answer(0, 0, [0xD, 1, 2, 3]), [0x16, 1, 2, 3]);
        assert_eq!(low.answer(0x10, 0, [9; 4]), [0; 4], "between host max and 0x16: zero");
        assert_eq!(low.answer(0x14, 0, [9; 4]), [0; 4]);
        assert_ne!(low.answer(0x15, 0, [9; 4]), [0; 4]);
        let high = LinuxCpuid::new(&map, 0, 0x20, BOCHS);
        assert_eq!(high.answer(0, 0, [0x20, 1, 2, 3])[0], 0x20);
        assert_eq!(high.answer(0x14, 0, [9; 4]), [9; 4]);
    }

    proptest! {
        #[test]
        fn ratio_never_overflows_linux(tsc in 1u32..10_000_000, lapic in 1u32..4_000_000) {
            let v = LinuxCpuid::new(&ApicIdMap::identity(&[0]).unwrap(), 0, 0x16, TscTiming { tsc_khz: tsc, lapic_khz: lapic });
            let l = v.answer(0x15, 0, [0; 4]);
            if l != [0; 4] {
                prop_assert!(l[0] != 0 && l[1] != 0);
                prop_assert!((l[2] / 1000) as u64 * l[1] as u64 <= u32::MAX as u64);
                let got = linux_tsc_khz(l) as f64;
                prop_assert!((got - tsc as f64).abs() / (tsc as f64) < 0.01, "{got} vs {tsc}");
            }
        }

        #[test]
        fn any_leaf_is_answered(leaf: u32, subleaf: u32, host: [u32; 4], vcpu in 0usize..4) {
            let v = LinuxCpuid::new(&ApicIdMap::sequential(&[3, 9, 1]).unwrap(), vcpu, 0x1F, BOCHS);
            let a = v.answer(leaf, subleaf, host);
            if leaf == 1 {
                prop_assert_eq!(a[2] & (1 << 5), 0);
                prop_assert_ne!(a[2] & bit::X2APIC, 0);
            }
        }
    }
}
