//! Extended processor state (x87, SSE, AVX, AVX-512) of RT vCPUs: which XCR0 values a
//! partition may set with `XSETBV` (which always exits), and the XSAVE area in which a
//! vCPU's registers wait while another partition's vCPU runs on the same core.
//!
//! Switching rule (performed by the binary, see `hypervisor/uefi/src/switched.rs`): the
//! leaving vCPU is saved with `XSAVE` under its own XCR0; the arriving one is restored with
//! `XRSTOR` under [`XstatePolicy::switch_mask`], every component a partition could ever
//! enable, so that components absent from its saved area come back in their initial
//! state instead of holding the neighbour's values; then its own XCR0 is set. A fresh area
//! ([`init_area`]) restores the architectural initial state: that is the scrub at restart.
//!
//! ```
//! use hallows_core::xstate::{xcr0, XstatePolicy, XsetbvRefusal};
//! let policy = XstatePolicy::from_cpuid(0x2E7, 0); // x87 SSE AVX, AVX-512, PKRU
//! assert_eq!(policy.check_xsetbv(0, xcr0::X87 | xcr0::SSE | xcr0::AVX), Ok(0x7));
//! assert_eq!(policy.check_xsetbv(0, xcr0::X87 | xcr0::AVX), Err(XsetbvRefusal::AvxWithoutSse));
//! assert_eq!(policy.check_xsetbv(0, 0x7 | xcr0::PKRU), Err(XsetbvRefusal::NotAllowed(xcr0::PKRU)));
//! ```

use core::fmt;

/// XCR0 component bits.
pub mod xcr0 {
    pub const X87: u64 = 1 << 0;
    pub const SSE: u64 = 1 << 1;
    pub const AVX: u64 = 1 << 2;
    pub const BNDREGS: u64 = 1 << 3;
    pub const BNDCSR: u64 = 1 << 4;
    pub const OPMASK: u64 = 1 << 5;
    pub const ZMM_HI256: u64 = 1 << 6;
    pub const HI16_ZMM: u64 = 1 << 7;
    pub const PKRU: u64 = 1 << 9;
    pub const TILECFG: u64 = 1 << 17;
    pub const TILEDATA: u64 = 1 << 18;
    /// The three AVX-512 components, which XCR0 enables together or not at all.
    pub const AVX512: u64 = OPMASK | ZMM_HI256 | HI16_ZMM;
}

/// Components an RT partition may enable: plain per-core registers that the hypervisor
/// switches. MPX is deprecated, PKRU needs CR4.PKE (refused, see
/// [`crate::control_regs`]), AMX tiles need an 8 KiB area per vCPU and a permission
/// model: none of them is offered.
pub const RT_ALLOWED: u64 = xcr0::X87 | xcr0::SSE | xcr0::AVX | xcr0::AVX512;

/// XCR0 at reset, and therefore for a vCPU that never executed XSETBV.
pub const XCR0_RESET: u64 = xcr0::X87;

/// Offset of MXCSR in the legacy region of an XSAVE/FXSAVE area.
pub const MXCSR_OFFSET: usize = 24;
/// Offset of the x87 control word.
pub const FCW_OFFSET: usize = 0;
/// Offset of the XSAVE header (XSTATE_BV, XCOMP_BV, reserved bytes).
pub const HEADER_OFFSET: usize = 512;
/// Bytes of the XSAVE header.
pub const HEADER_BYTES: usize = 64;
/// MXCSR after reset: all exceptions masked, round to nearest.
pub const MXCSR_RESET: u32 = 0x1F80;
/// x87 control word after FINIT.
pub const FCW_RESET: u16 = 0x037F;
/// Alignment XSAVE/XRSTOR demand of the area.
pub const AREA_ALIGN: usize = 64;
/// Size of a legacy FXSAVE area (used where the CPU has no XSAVE).
pub const FXSAVE_BYTES: usize = 512;

/// What the CPU offers (CPUID leaf 0xD, subleaf 0) and therefore what partitions get.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct XstatePolicy {
    /// XCR0 bits the processor supports (EDX:EAX of CPUID.(EAX=0DH,ECX=0)).
    pub supported: u64,
}

/// Why an XSETBV was refused (a health-monitor event for the partition).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XsetbvRefusal {
    /// ECX named an extended control register other than XCR0.
    NotXcr0(u32),
    /// XCR0 bit 0 (x87) must always be set.
    NoX87,
    /// AVX needs SSE.
    AvxWithoutSse,
    /// AVX-512 needs AVX and all three of its components.
    IncompleteAvx512,
    /// Components the partition may not enable (or the CPU lacks).
    NotAllowed(u64),
}

impl fmt::Display for XsetbvRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::NotXcr0(n) => write!(f, "XCR{n} does not exist"),
            Self::NoX87 => f.write_str("x87 (bit 0) must stay enabled"),
            Self::AvxWithoutSse => f.write_str("AVX without SSE"),
            Self::IncompleteAvx512 => f.write_str("AVX-512 needs AVX and all three of its components"),
            Self::NotAllowed(bits) => write!(f, "components {bits:#x} are not offered to partitions"),
        }
    }
}

impl XstatePolicy {
    /// From CPUID.(EAX=0DH,ECX=0): EAX and EDX.
    pub const fn from_cpuid(eax: u32, edx: u32) -> Self {
        XstatePolicy { supported: (edx as u64) << 32 | eax as u64 }
    }

    /// XCR0 bits a partition may set.
    pub const fn guest_allowed(&self) -> u64 {
        self.supported & RT_ALLOWED
    }

    /// The components the binary restores at every switch (see the module docs).
    pub const fn switch_mask(&self) -> u64 {
        self.guest_allowed() | XCR0_RESET
    }

    /// Decides `XSETBV` with `ecx` and the value EDX:EAX: the XCR0 to set, or a refusal.
    /// Mirrors the processor's own #GP rules (SDM XSETBV) and adds the partition policy.
    pub fn check_xsetbv(&self, ecx: u32, value: u64) -> Result<u64, XsetbvRefusal> {
        self.check_xsetbv_allowing(self.guest_allowed(), ecx, value)
    }

    /// As [`Self::check_xsetbv`], with `allowed` the components the caller may enable (Linux:
    /// every one the processor supports).
    pub fn check_xsetbv_allowing(&self, allowed: u64, ecx: u32, value: u64) -> Result<u64, XsetbvRefusal> {
        if ecx != 0 {
            return Err(XsetbvRefusal::NotXcr0(ecx));
        }
        if value & xcr0::X87 == 0 {
            return Err(XsetbvRefusal::NoX87);
        }
        let extra = value & !(allowed & self.supported);
        if extra != 0 {
            return Err(XsetbvRefusal::NotAllowed(extra));
        }
        if value & xcr0::AVX != 0 && value & xcr0::SSE == 0 {
            return Err(XsetbvRefusal::AvxWithoutSse);
        }
        let avx512 = value & xcr0::AVX512;
        if avx512 != 0 && (avx512 != xcr0::AVX512 || value & xcr0::AVX == 0) {
            return Err(XsetbvRefusal::IncompleteAvx512);
        }
        Ok(value)
    }

    /// What a partition sees for CPUID leaf 0xD: only the components it may enable are
    /// announced (subleaf 0 EAX/EDX, subleaf 1 ECX/EDX for XSS components: none), and the
    /// subleaves describing other components read as zero. `host` is the processor's answer.
    pub fn cpuid_leaf_0xd(&self, subleaf: u32, host: [u32; 4]) -> [u32; 4] {
        let allowed = self.guest_allowed();
        match subleaf {
            0 => [host[0] & allowed as u32, host[1], host[2], host[3] & (allowed >> 32) as u32],
            // XSAVES/XRSTORS supervisor components (IA32_XSS): none offered.
            1 => [host[0], host[1], 0, 0],
            n if n < 64 && allowed & (1 << n) != 0 => host,
            _ => [0; 4],
        }
    }
}

/// Fills `area` so that `XRSTOR` (standard form) or `FXRSTOR` from it loads the initial
/// state of every component: XSTATE_BV = 0 (all components initial), MXCSR and the x87
/// control word at their reset values (MXCSR is loaded from the area whenever SSE or AVX
/// is restored, whatever XSTATE_BV says), everything else zero.
pub fn init_area(area: &mut [u8]) {
    area.fill(0);
    if area.len() >= FXSAVE_BYTES {
        area[FCW_OFFSET..FCW_OFFSET + 2].copy_from_slice(&FCW_RESET.to_le_bytes());
        area[MXCSR_OFFSET..MXCSR_OFFSET + 4].copy_from_slice(&MXCSR_RESET.to_le_bytes());
    }
}

/// Bytes of a per-vCPU area: CPUID.(EAX=0DH,ECX=0):ECX (every supported component, so the
/// area fits whatever XCR0 holds) rounded up to [`AREA_ALIGN`]; at least an FXSAVE area plus
/// the XSAVE header.
pub const fn area_bytes(cpuid_0xd_ecx: u32) -> usize {
    let min = FXSAVE_BYTES + HEADER_BYTES;
    let n = if (cpuid_0xd_ecx as usize) < min { min } else { cpuid_0xd_ecx as usize };
    n.div_ceil(AREA_ALIGN) * AREA_ALIGN
}

/// CPUID.1:ECX bit 26: the CPU has XSAVE/XRSTOR and XCR0.
pub const CPUID1_XSAVE: u32 = 1 << 26;

/// How this machine saves and restores a vCPU's x87/SSE/AVX state between partitions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct XsaveSupport {
    /// XSAVE/XRSTOR exist (else FXSAVE/FXRSTOR: x87 and SSE only, no XCR0).
    pub xsave: bool,
    /// XCR0 components restored at every switch ([`XstatePolicy::switch_mask`]).
    pub switch_mask: u64,
    /// Bytes of one vCPU's area.
    pub area_bytes: usize,
}

/// What partitions may enable and how their state is switched, from CPUID (`cpuid(leaf,
/// subleaf)` as EAX, EBX, ECX, EDX): leaf 1 says whether XSAVE exists, leaf 0xD what it
/// covers. Without XSAVE no XCR0 component is offered and FXSAVE's area is used.
pub fn switching(cpuid: impl Fn(u32, u32) -> [u32; 4]) -> (XstatePolicy, XsaveSupport) {
    let has_xsave = cpuid(1, 0)[2] & CPUID1_XSAVE != 0;
    let [eax, _, ecx, edx] = if has_xsave { cpuid(0xD, 0) } else { [3, 0, 0, 0] };
    let policy = if has_xsave { XstatePolicy::from_cpuid(eax, edx) } else { XstatePolicy { supported: 0 } };
    let support =
        XsaveSupport { xsave: has_xsave, switch_mask: policy.switch_mask(), area_bytes: area_bytes(ecx) };
    (policy, support)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A Skylake-SP: x87 SSE AVX, MPX, AVX-512, PKRU.
    const SKYLAKE_X: XstatePolicy = XstatePolicy::from_cpuid(0x2FF, 0);

    #[test]
    fn valid_combinations_pass() {
        for v in [0x1, 0x3, 0x7, 0x7 | xcr0::AVX512] {
            assert_eq!(SKYLAKE_X.check_xsetbv(0, v), Ok(v), "{v:#x}");
        }
    }

    #[test]
    fn the_processor_rules_and_the_policy_refuse() {
        let p = SKYLAKE_X;
        assert_eq!(p.check_xsetbv(1, 0x3), Err(XsetbvRefusal::NotXcr0(1)));
        assert_eq!(p.check_xsetbv(0, 0x2), Err(XsetbvRefusal::NoX87));
        assert_eq!(p.check_xsetbv(0, 0x5), Err(XsetbvRefusal::AvxWithoutSse));
        assert_eq!(p.check_xsetbv(0, 0x7 | xcr0::OPMASK), Err(XsetbvRefusal::IncompleteAvx512));
        assert_eq!(p.check_xsetbv(0, 0x3 | xcr0::AVX512), Err(XsetbvRefusal::IncompleteAvx512));
        assert_eq!(p.check_xsetbv(0, 0x3 | xcr0::BNDREGS), Err(XsetbvRefusal::NotAllowed(xcr0::BNDREGS)));
        assert_eq!(p.check_xsetbv(0, 0x3 | xcr0::PKRU), Err(XsetbvRefusal::NotAllowed(xcr0::PKRU)));
        // A component the CPU lacks.
        let sse_only = XstatePolicy::from_cpuid(0x3, 0);
        assert_eq!(sse_only.check_xsetbv(0, 0x7), Err(XsetbvRefusal::NotAllowed(xcr0::AVX)));
        assert_eq!(format!("{}", XsetbvRefusal::AvxWithoutSse), "AVX without SSE");
    }

    #[test]
    fn cpuid_announces_only_what_partitions_may_enable() {
        let p = SKYLAKE_X;
        assert_eq!(p.cpuid_leaf_0xd(0, [0x2FF, 0xA88, 0xA88, 0]), [0xE7, 0xA88, 0xA88, 0]);
        assert_eq!(p.cpuid_leaf_0xd(1, [0xF, 0x100, 0x100, 0]), [0xF, 0x100, 0, 0]);
        assert_eq!(p.cpuid_leaf_0xd(2, [256, 576, 0, 0]), [256, 576, 0, 0], "AVX offered");
        assert_eq!(p.cpuid_leaf_0xd(3, [64, 960, 0, 0]), [0; 4], "MPX hidden");
        assert_eq!(p.cpuid_leaf_0xd(9, [8, 2688, 0, 0]), [0; 4], "PKRU hidden");
        assert_eq!(p.cpuid_leaf_0xd(70, [1, 1, 1, 1]), [0; 4]);
        assert_eq!(p.switch_mask(), 0xE7);
    }

    #[test]
    fn a_fresh_area_is_the_initial_state() {
        let mut area = vec![0xAAu8; area_bytes(2696)];
        init_area(&mut area);
        assert_eq!(area.len() % AREA_ALIGN, 0);
        assert!(area.len() >= 2696);
        assert_eq!(u32::from_le_bytes(area[24..28].try_into().unwrap()), 0x1F80);
        assert_eq!(u16::from_le_bytes(area[0..2].try_into().unwrap()), 0x037F);
        assert!(area[HEADER_OFFSET..HEADER_OFFSET + HEADER_BYTES].iter().all(|&b| b == 0));
        assert!(area[28..HEADER_OFFSET].iter().all(|&b| b == 0));
        assert!(area[HEADER_OFFSET + HEADER_BYTES..].iter().all(|&b| b == 0));
        assert_eq!(area_bytes(0), 576);
    }

    proptest! {
        /// Whatever a guest asks, an accepted XCR0 is allowed, keeps x87, and is a value
        /// the processor itself accepts.
        #[test]
        fn accepted_values_are_valid(ecx: u32, value: u64, supported: u64) {
            let p = XstatePolicy { supported: supported | 1 };
            if let Ok(v) = p.check_xsetbv(ecx, value) {
                prop_assert_eq!(ecx, 0);
                prop_assert_eq!(v & !p.guest_allowed(), 0);
                prop_assert!(v & 1 != 0);
                prop_assert!(v & xcr0::AVX == 0 || v & xcr0::SSE != 0);
                prop_assert!(v & xcr0::AVX512 == 0 || v & xcr0::AVX512 == xcr0::AVX512);
            }
        }
    }

    #[test]
    fn switching_follows_cpuid() {
        let skylake = |leaf: u32, _sub: u32| match leaf {
            1 => [0, 0, CPUID1_XSAVE, 0],
            0xD => [0x2FF, 0, 2696, 0],
            _ => [0; 4],
        };
        let (policy, support) = switching(skylake);
        assert_eq!(policy, SKYLAKE_X);
        assert_eq!(support, XsaveSupport { xsave: true, switch_mask: 0xE7, area_bytes: 2752 });
        let (policy, support) = switching(|_, _| [0; 4]);
        assert_eq!(policy.guest_allowed(), 0, "no XCR0 without XSAVE");
        assert_eq!(support, XsaveSupport { xsave: false, switch_mask: XCR0_RESET, area_bytes: 576 });
    }
}
