//! Processor-mode rules a vCPU exit handler applies, as pure functions: the EFER and
//! IA-32e-mode changes a CR0 write or a WRMSR of EFER implies, the CPUID bits that mirror
//! the guest's CR4 (CPUID executes in the hypervisor, under the host's CR4), and which
//! XCR0 values a kind of vCPU may set.

use super::Kind;
use crate::control_regs::cr4;
use crate::xstate::{XsetbvRefusal, XstatePolicy};

/// CR0.PG, EFER.LME (long mode enable) and EFER.LMA (long mode active).
pub use crate::control_regs::cr0::PG as CR0_PG;
pub use crate::control_regs::efer::{LMA as EFER_LMA, LME as EFER_LME};

/// A change of long mode that a CR0 write causes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LongModeChange {
    /// The guest's new EFER.
    pub efer: u64,
    /// Whether the guest runs in IA-32e mode from the next entry (the entry control).
    pub ia32e: bool,
}

/// Paging switched on with EFER.LME set activates long mode (a secondary vCPU's trampoline
/// does this); paging switched off leaves it. `None`: no change.
pub const fn long_mode_after_cr0_write(old_cr0: u64, new_cr0: u64, efer: u64) -> Option<LongModeChange> {
    let (was, is) = (old_cr0 & CR0_PG != 0, new_cr0 & CR0_PG != 0);
    if is && !was && efer & EFER_LME != 0 {
        Some(LongModeChange { efer: efer | EFER_LMA, ia32e: true })
    } else if was && !is {
        Some(LongModeChange { efer: efer & !EFER_LMA, ia32e: false })
    } else {
        None
    }
}

/// The EFER to set when the guest writes `value`: LMA is read-only to software, it keeps
/// what the processor state says (`current`).
pub const fn efer_after_wrmsr(value: u64, current: u64) -> u64 {
    (value & !EFER_LMA) | (current & EFER_LMA)
}

/// CPUID leaf 1 ECX.OSXSAVE and leaf 7 ECX.OSPKE mirror CR4.OSXSAVE and CR4.PKE. CPUID
/// runs here under the host's CR4, so the bits must be set from the guest's CR4 instead,
/// or user space runs XGETBV after the kernel disabled XSAVE and dies of #UD.
pub const fn mirror_guest_cr4(leaf: u32, subleaf: u32, ecx: u32, guest_cr4: u64) -> u32 {
    let (bit, on) = match (leaf, subleaf) {
        (1, _) => (1u32 << 27, guest_cr4 & cr4::OSXSAVE != 0),
        (7, 0) => (1u32 << 4, guest_cr4 & cr4::PKE != 0),
        _ => return ecx,
    };
    if on {
        ecx | bit
    } else {
        ecx & !bit
    }
}

/// What XSETBV leads to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XsetbvStep {
    /// Load this XCR0 and advance RIP.
    Set(u64),
    /// Refused: RT partitions get a health event (forbidden instruction)...
    Refuse(XsetbvRefusal),
    /// ... Linux gets the #GP hardware would raise.
    GeneralProtection,
}

/// XSETBV of `value` into XCR `xcr` by a vCPU of `kind`: RT partitions may enable the
/// components of [`XstatePolicy::guest_allowed`]; Linux every component the processor
/// supports, under the processor's own rules.
pub fn xsetbv(kind: Kind, policy: &XstatePolicy, xcr: u32, value: u64) -> XsetbvStep {
    let checked = match kind {
        Kind::RealTime => policy.check_xsetbv(xcr, value),
        Kind::Linux => policy.check_xsetbv_allowing(policy.supported, xcr, value),
    };
    match (checked, kind) {
        (Ok(xcr0), _) => XsetbvStep::Set(xcr0),
        (Err(why), Kind::RealTime) => XsetbvStep::Refuse(why),
        (Err(_), Kind::Linux) => XsetbvStep::GeneralProtection,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_mode_follows_paging_and_lme() {
        let on = long_mode_after_cr0_write(0x11, 0x8000_0011, EFER_LME);
        assert_eq!(on, Some(LongModeChange { efer: EFER_LME | EFER_LMA, ia32e: true }));
        // Paging on without LME: 32-bit paging, no change.
        assert_eq!(long_mode_after_cr0_write(0x11, 0x8000_0011, 0), None);
        let off = long_mode_after_cr0_write(0x8000_0011, 0x11, EFER_LME | EFER_LMA);
        assert_eq!(off, Some(LongModeChange { efer: EFER_LME, ia32e: false }));
        // Paging stays on: nothing.
        assert_eq!(long_mode_after_cr0_write(0x8000_0011, 0x8000_0031, EFER_LME | EFER_LMA), None);
    }

    #[test]
    fn lma_is_not_writable_by_software() {
        assert_eq!(efer_after_wrmsr(EFER_LMA | EFER_LME, 0), EFER_LME);
        assert_eq!(efer_after_wrmsr(EFER_LME, EFER_LMA), EFER_LME | EFER_LMA);
    }

    #[test]
    fn cpuid_mirrors_the_guest_cr4() {
        assert_eq!(mirror_guest_cr4(1, 0, 0, cr4::OSXSAVE), 1 << 27);
        assert_eq!(mirror_guest_cr4(1, 0, u32::MAX, 0), !(1 << 27));
        assert_eq!(mirror_guest_cr4(7, 0, 0, cr4::PKE), 1 << 4);
        assert_eq!(mirror_guest_cr4(7, 1, 0, cr4::PKE), 0);
        assert_eq!(mirror_guest_cr4(0xD, 0, 0x55, u64::MAX), 0x55);
    }

    #[test]
    fn xsetbv_per_kind() {
        // x87 | SSE | AVX | a component RT partitions may not enable (bit 9, PKRU).
        let p = XstatePolicy::from_cpuid(0x207, 0);
        assert_eq!(xsetbv(Kind::RealTime, &p, 0, 7), XsetbvStep::Set(7));
        assert!(matches!(xsetbv(Kind::RealTime, &p, 0, 0x207), XsetbvStep::Refuse(_)));
        assert_eq!(xsetbv(Kind::Linux, &p, 0, 0x207), XsetbvStep::Set(0x207));
        assert_eq!(xsetbv(Kind::Linux, &p, 0, 0x407), XsetbvStep::GeneralProtection);
        assert_eq!(xsetbv(Kind::Linux, &p, 1, 7), XsetbvStep::GeneralProtection);
        assert_eq!(xsetbv(Kind::Linux, &p, 0, 6), XsetbvStep::GeneralProtection);
    }
}
