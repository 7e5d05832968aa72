//! Who owns CR0 and CR4 of an RT vCPU, and what a guest write to them leads to.
//!
//! The hypervisor owns EVERY bit of both registers (guest/host masks all ones): the guest
//! reads its own view from the read shadows, and a `MOV to CR0/CR4`, `CLTS` or `LMSW` that
//! would change any bit of that view exits. [`cr_write`] then decides:
//! - bits a partition may change because they only affect itself ([`CR0_GUEST_MAY_CHANGE`],
//!   [`CR4_GUEST_MAY_CHANGE`], limited to what the CPU allows in VMX operation) are applied
//!   to the real register and to the shadow;
//! - any other change is refused as a health-monitor event naming the bits. Those are the
//!   bits that reach beyond the partition (docs/isolation.md): CR0.CD/NW make the core
//!   run uncached, slowing the shared LLC and memory for every partition; CR4.PCE opens
//!   the performance counters, CR4.TSD changes how time reads, CR4.MCE changes how machine
//!   checks (a machine-wide event) are delivered; VMXE, SMXE, PKE, CET, LA57, PCIDE and
//!   the paging bits would break the long-mode environment the hypervisor set up or reach
//!   features the partition has not been given.
//!
//! ```
//! use hallows_core::control_regs::{cr_write, CrChange, CrWriteRequest, cr0, cr4};
//! use hallows_core::vmx::caps::{bochs_skylake_msr, VmxCapabilities};
//! let caps = VmxCapabilities::from_msrs(bochs_skylake_msr);
//! let shadow = cr4::PAE | cr4::OSFXSR | cr4::OSXMMEXCPT;
//! // Turning on FSGSBASE only concerns the partition: allowed.
//! let ok = cr_write(&caps, CrWriteRequest::Mov { cr: 4, value: shadow | cr4::FSGSBASE }, shadow);
//! assert!(matches!(ok, CrChange::Apply { shadow: s, .. } if s == shadow | cr4::FSGSBASE));
//! // Performance counters for user code: refused.
//! let no = cr_write(&caps, CrWriteRequest::Mov { cr: 4, value: shadow | cr4::PCE }, shadow);
//! assert_eq!(no, CrChange::Forbidden { cr: 4, bits: cr4::PCE });
//! ```

use core::fmt;

use crate::vmx::caps::VmxCapabilities;

/// CR0 bits.
pub mod cr0 {
    pub const PE: u64 = 1 << 0;
    pub const MP: u64 = 1 << 1;
    pub const EM: u64 = 1 << 2;
    pub const TS: u64 = 1 << 3;
    pub const ET: u64 = 1 << 4;
    pub const NE: u64 = 1 << 5;
    pub const WP: u64 = 1 << 16;
    pub const AM: u64 = 1 << 18;
    pub const NW: u64 = 1 << 29;
    pub const CD: u64 = 1 << 30;
    pub const PG: u64 = 1 << 31;
}

/// CR4 bits.
/// IA32_EFER bits (architectural; VMX and SVM alike).
pub mod efer {
    pub const SCE: u64 = 1 << 0;
    pub const LME: u64 = 1 << 8;
    pub const LMA: u64 = 1 << 10;
    pub const NXE: u64 = 1 << 11;
}

pub mod cr4 {
    pub const VME: u64 = 1 << 0;
    pub const PVI: u64 = 1 << 1;
    pub const TSD: u64 = 1 << 2;
    pub const DE: u64 = 1 << 3;
    pub const PSE: u64 = 1 << 4;
    pub const PAE: u64 = 1 << 5;
    pub const MCE: u64 = 1 << 6;
    pub const PGE: u64 = 1 << 7;
    pub const PCE: u64 = 1 << 8;
    pub const OSFXSR: u64 = 1 << 9;
    pub const OSXMMEXCPT: u64 = 1 << 10;
    pub const UMIP: u64 = 1 << 11;
    pub const LA57: u64 = 1 << 12;
    pub const VMXE: u64 = 1 << 13;
    pub const SMXE: u64 = 1 << 14;
    pub const FSGSBASE: u64 = 1 << 16;
    pub const PCIDE: u64 = 1 << 17;
    pub const OSXSAVE: u64 = 1 << 18;
    pub const SMEP: u64 = 1 << 20;
    pub const SMAP: u64 = 1 << 21;
    pub const PKE: u64 = 1 << 22;
    pub const CET: u64 = 1 << 23;
}

/// The guest/host mask of both registers for RT vCPUs: the hypervisor owns every bit.
pub const RT_GUEST_HOST_MASK: u64 = u64::MAX;

/// CR0 bits an RT partition may flip: FPU-emulation and task-switched flags (lazy FPU
/// switching inside the partition), alignment checking, supervisor write protection.
pub const CR0_GUEST_MAY_CHANGE: u64 = cr0::MP | cr0::EM | cr0::TS | cr0::AM | cr0::WP;

/// CR4 bits an RT partition may flip: they change how its own code runs and nothing else.
/// OSXSAVE only enables XSETBV, and every XCR0 value is checked by [`crate::xstate`].
pub const CR4_GUEST_MAY_CHANGE: u64 = cr4::DE
    | cr4::PGE
    | cr4::OSFXSR
    | cr4::OSXMMEXCPT
    | cr4::UMIP
    | cr4::FSGSBASE
    | cr4::OSXSAVE
    | cr4::SMEP
    | cr4::SMAP;

/// A guest instruction that writes CR0 or CR4, as the exit qualification and the
/// guest's registers describe it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrWriteRequest {
    /// `MOV to CRn` with the source register's value.
    Mov { cr: u8, value: u64 },
    /// `CLTS`: clears CR0.TS.
    Clts,
    /// `LMSW` with its 16-bit source (only bits 3:0 matter; it can set PE, never clear it).
    Lmsw { source: u16 },
}

/// What the hypervisor does about a [`CrWriteRequest`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrChange {
    /// Write `guest` to the VMCS guest register, `shadow` to its read shadow, skip the
    /// instruction.
    Apply { cr: u8, guest: u64, shadow: u64 },
    /// A health-monitor event (forbidden instruction): the partition tried to change
    /// `bits` of CRn, which belong to the hypervisor. Nothing changes.
    Forbidden { cr: u8, bits: u64 },
}

/// Decides a guest write to CR0 or CR4 given the register's current read shadow (the
/// value the guest believes it has). Any other control register (CR3 and CR8 do not exit
/// for RT vCPUs) is refused as well: it would be a VM exit the controls never asked for.
pub fn cr_write(caps: &VmxCapabilities, request: CrWriteRequest, shadow: u64) -> CrChange {
    let (cr, value) = match request {
        CrWriteRequest::Mov { cr, value } => (cr, value),
        CrWriteRequest::Clts => (0, shadow & !cr0::TS),
        CrWriteRequest::Lmsw { source } => {
            let low = source as u64 & 0xF;
            // LMSW never clears PE.
            (0, (shadow & !0xE) | low | (shadow & cr0::PE))
        }
    };
    let (may_change, fixed0, fixed1) = match cr {
        0 => (CR0_GUEST_MAY_CHANGE, caps.cr0_fixed0, caps.cr0_fixed1),
        4 => (CR4_GUEST_MAY_CHANGE, caps.cr4_fixed0, caps.cr4_fixed1),
        _ => return CrChange::Forbidden { cr, bits: value },
    };
    let changed = value ^ shadow;
    // A bit the CPU cannot have set in VMX operation is not the guest's either.
    let forbidden = changed & !(may_change & fixed1);
    if forbidden != 0 {
        return CrChange::Forbidden { cr, bits: forbidden };
    }
    CrChange::Apply { cr, guest: (value | fixed0) & fixed1, shadow: value }
}

/// A guest `MOV to CR8` (the task-priority register). RT vCPUs get a virtual TPR: CR8
/// loads and stores exit, and the value lives with the vCPU's saved state, because the
/// real TPR belongs to the core's local APIC, which every partition on the core (and the
/// hypervisor) shares. Bits 63:4 set raise #GP on hardware: refused.
pub fn tpr_write(value: u64) -> Result<u64, CrChange> {
    if value >> 4 != 0 {
        return Err(CrChange::Forbidden { cr: 8, bits: value & !0xF });
    }
    Ok(value)
}

/// Bit names for a console line, e.g. `CD NW`.
pub struct BitNames {
    cr: u8,
    bits: u64,
}

/// Names the bits of a refused CRn write.
pub fn bit_names(cr: u8, bits: u64) -> BitNames {
    BitNames { cr, bits }
}

const CR0_NAMES: [(u64, &str); 11] = [
    (cr0::PE, "PE"),
    (cr0::MP, "MP"),
    (cr0::EM, "EM"),
    (cr0::TS, "TS"),
    (cr0::ET, "ET"),
    (cr0::NE, "NE"),
    (cr0::WP, "WP"),
    (cr0::AM, "AM"),
    (cr0::NW, "NW"),
    (cr0::CD, "CD"),
    (cr0::PG, "PG"),
];

const CR4_NAMES: [(u64, &str); 22] = [
    (cr4::VME, "VME"),
    (cr4::PVI, "PVI"),
    (cr4::TSD, "TSD"),
    (cr4::DE, "DE"),
    (cr4::PSE, "PSE"),
    (cr4::PAE, "PAE"),
    (cr4::MCE, "MCE"),
    (cr4::PGE, "PGE"),
    (cr4::PCE, "PCE"),
    (cr4::OSFXSR, "OSFXSR"),
    (cr4::OSXMMEXCPT, "OSXMMEXCPT"),
    (cr4::UMIP, "UMIP"),
    (cr4::LA57, "LA57"),
    (cr4::VMXE, "VMXE"),
    (cr4::SMXE, "SMXE"),
    (cr4::FSGSBASE, "FSGSBASE"),
    (cr4::PCIDE, "PCIDE"),
    (cr4::OSXSAVE, "OSXSAVE"),
    (cr4::SMEP, "SMEP"),
    (cr4::SMAP, "SMAP"),
    (cr4::PKE, "PKE"),
    (cr4::CET, "CET"),
];

impl fmt::Display for BitNames {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: &[(u64, &str)] = match self.cr {
            0 => &CR0_NAMES,
            4 => &CR4_NAMES,
            _ => &[],
        };
        let mut rest = self.bits;
        let mut first = true;
        for &(bit, name) in names {
            if rest & bit != 0 {
                if !first {
                    f.write_str(" ")?;
                }
                f.write_str(name)?;
                rest &= !bit;
                first = false;
            }
        }
        if rest != 0 {
            if !first {
                f.write_str(" ")?;
            }
            write!(f, "{rest:#x}")?;
        }
        Ok(())
    }
}

impl fmt::Display for CrChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            CrChange::Apply { cr, shadow, .. } => write!(f, "MOV to CR{cr}: {shadow:#x}"),
            CrChange::Forbidden { cr, bits } => {
                write!(f, "MOV to CR{cr}: changes bits the hypervisor owns ({})", bit_names(cr, bits))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vmx::caps::bochs_skylake_msr;
    use proptest::prelude::*;

    const CR0_START: u64 = cr0::PE | cr0::MP | cr0::ET | cr0::NE | cr0::WP | cr0::PG;
    const CR4_START: u64 = cr4::PAE | cr4::OSFXSR | cr4::OSXMMEXCPT;

    fn caps() -> VmxCapabilities {
        VmxCapabilities::from_msrs(bochs_skylake_msr)
    }

    #[test]
    fn neighbour_harming_bits_are_refused() {
        let c = caps();
        for (cr, shadow, bits) in [
            (0, CR0_START, cr0::CD),
            (0, CR0_START, cr0::CD | cr0::NW),
            (4, CR4_START, cr4::PCE),
            (4, CR4_START, cr4::TSD),
            (4, CR4_START, cr4::MCE),
            (4, CR4_START, cr4::VMXE),
            (4, CR4_START, cr4::SMXE),
            (4, CR4_START, cr4::PKE),
            (4, CR4_START, cr4::PCIDE),
        ] {
            let got = cr_write(&c, CrWriteRequest::Mov { cr, value: shadow | bits }, shadow);
            assert_eq!(got, CrChange::Forbidden { cr, bits }, "CR{cr} {bits:#x}");
        }
        // Clearing what the environment needs is refused too.
        let got = cr_write(&c, CrWriteRequest::Mov { cr: 0, value: CR0_START & !cr0::PG }, CR0_START);
        assert_eq!(got, CrChange::Forbidden { cr: 0, bits: cr0::PG });
        let got = cr_write(&c, CrWriteRequest::Mov { cr: 4, value: CR4_START & !cr4::PAE }, CR4_START);
        assert_eq!(got, CrChange::Forbidden { cr: 4, bits: cr4::PAE });
    }

    #[test]
    fn partition_private_bits_are_applied_with_fixed_bits_hidden() {
        let c = caps();
        let v = CR4_START | cr4::FSGSBASE | cr4::OSXSAVE;
        match cr_write(&c, CrWriteRequest::Mov { cr: 4, value: v }, CR4_START) {
            CrChange::Apply { cr: 4, guest, shadow } => {
                assert_eq!(shadow, v);
                assert_eq!(guest, v | cr4::VMXE, "VMXE stays on underneath");
            }
            other => panic!("{other:?}"),
        }
        let v = CR0_START | cr0::TS | cr0::AM;
        assert_eq!(
            cr_write(&c, CrWriteRequest::Mov { cr: 0, value: v }, CR0_START),
            CrChange::Apply { cr: 0, guest: v, shadow: v }
        );
        // CLTS clears TS; LMSW sets MP/EM/TS but cannot clear PE.
        assert_eq!(
            cr_write(&c, CrWriteRequest::Clts, CR0_START | cr0::TS),
            CrChange::Apply { cr: 0, guest: CR0_START, shadow: CR0_START }
        );
        let lmsw = cr_write(&c, CrWriteRequest::Lmsw { source: 0b1000 }, CR0_START);
        assert_eq!(
            lmsw,
            CrChange::Apply {
                cr: 0,
                guest: (CR0_START & !cr0::MP) | cr0::TS,
                shadow: (CR0_START & !cr0::MP) | cr0::TS
            }
        );
    }

    #[test]
    fn bits_the_cpu_lacks_are_refused_even_if_harmless() {
        // Bochs's CR4_FIXED1 has no UMIP (bit 11).
        let c = caps();
        assert_eq!(
            cr_write(&c, CrWriteRequest::Mov { cr: 4, value: CR4_START | cr4::UMIP }, CR4_START),
            CrChange::Forbidden { cr: 4, bits: cr4::UMIP }
        );
    }

    #[test]
    fn the_task_priority_register_is_virtual_and_four_bits_wide() {
        assert_eq!(tpr_write(0xA), Ok(0xA));
        assert_eq!(tpr_write(0x1F), Err(CrChange::Forbidden { cr: 8, bits: 0x10 }));
    }

    #[test]
    fn other_registers_and_messages() {
        let c = caps();
        assert_eq!(
            cr_write(&c, CrWriteRequest::Mov { cr: 3, value: 0x1000 }, 0),
            CrChange::Forbidden { cr: 3, bits: 0x1000 }
        );
        let line = format!("{}", CrChange::Forbidden { cr: 0, bits: cr0::CD | cr0::NW });
        assert_eq!(line, "MOV to CR0: changes bits the hypervisor owns (NW CD)");
        assert_eq!(format!("{}", bit_names(4, cr4::PCE | 1 << 40)), "PCE 0x10000000000");
    }

    proptest! {
        /// Whatever a guest writes, the real register never gains a neighbour-harming bit,
        /// always keeps the VMX fixed bits, and the shadow only ever moves by allowed bits.
        #[test]
        fn no_write_escapes_the_policy(value: u64, cr in prop::sample::select(vec![0u8, 4]), lmsw: u16, kind in 0u8..3) {
            let c = caps();
            let shadow = if cr == 0 { CR0_START } else { CR4_START };
            let req = match kind {
                0 => CrWriteRequest::Mov { cr, value },
                1 => CrWriteRequest::Clts,
                _ => CrWriteRequest::Lmsw { source: lmsw },
            };
            match cr_write(&c, req, shadow) {
                CrChange::Apply { cr, guest, shadow: new } => {
                    let (may, f0, f1, harm) = if cr == 0 {
                        (CR0_GUEST_MAY_CHANGE, c.cr0_fixed0, c.cr0_fixed1, cr0::CD | cr0::NW)
                    } else {
                        (CR4_GUEST_MAY_CHANGE, c.cr4_fixed0, c.cr4_fixed1, cr4::PCE | cr4::TSD | cr4::MCE | cr4::PKE)
                    };
                    prop_assert_eq!((new ^ shadow) & !may, 0);
                    prop_assert_eq!(guest & harm, 0);
                    prop_assert_eq!(guest & f0, f0);
                    prop_assert_eq!(guest & !f1, 0);
                }
                CrChange::Forbidden { bits, .. } => prop_assert_ne!(bits, 0),
            }
        }
    }
}
