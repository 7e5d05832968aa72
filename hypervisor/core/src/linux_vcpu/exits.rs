//! The VMX controls that keep a Linux vCPU's exits rare, its CR0/CR4 write rules and the
//! xAPIC-page message. What each exit leads to is `crate::vcpu::decide` with
//! `Kind::Linux` (one decision table for every kind of vCPU).
//!
//! Unlike a real-time partition, Linux legitimately executes CPUID, switches from real to
//! protected to long mode (control-register writes), writes EFER, XSETBV, the ICR, and
//! probes I/O ports and MSRs.
//!
//! With [`linux_controls`] the steady state has no exits at all: no HLT exiting (an idle
//! Linux core halts in VMX non-root and its own LAPIC timer or IPIs wake it), no external-
//! interrupt exiting (interrupts go straight to Linux's IDT), no preemption timer (Linux
//! owns its cores: it is never in a cyclic schedule), no CR3/CR8/INVLPG/RDTSC/PAUSE
//! exiting; TPR (CR8) is the real one. What remains exits on purpose: CPUID (always),
//! ICR writes, MSRs outside the pass-through list, trapped ports, MWAIT/MONITOR (hidden by
//! CPUID: #UD), WBINVD (dropped: it would flush the LLC that real-time partitions share;
//! with EPT write-back memory and no non-coherent DMA Linux does not need it), XSETBV,
//! writes to the CR0/CR4 bits VMX fixes, and NMIs (the hypervisor's cross-core kick).
//!
//! Faults: a triple fault; an EPT violation outside the partition's RAM and its devices;
//! an EPT violation on the xAPIC page (0xFEE0_0000): the partition is given x2APIC only
//! and the page stays unmapped, so an xAPIC MMIO access is a fault with a clear message
//! ([`xapic_access_message`]) rather than an emulation; any VM-entry failure; an exit that
//! these controls never cause.
//!
//! ```
//! use hallows_abi::health::EventClass;
//! use hallows_core::linux_vcpu::exits::xapic_access_message;
//! use hallows_core::vcpu::{decide, Exit, Kind, PageFault, Step};
//! // Linux touched the xAPIC page: a memory violation with its own message.
//! let xapic = Exit::NestedPageFault(PageFault { gpa: 0xFEE0_0300, read: true, ..PageFault::default() });
//! assert_eq!(decide(Kind::Linux, &xapic, |_| false), Step::Fault(EventClass::MemoryViolation));
//! assert!(xapic_access_message(&xapic, 0x1000).is_some());
//! ```

use crate::vcpu::Exit;
use crate::vmx::caps::{
    adjust, entry, exit, pin, primary, secondary, ControlError, ControlKind, VmxCapabilities, VmxControls,
};
use core::fmt;

/// The xAPIC MMIO page every partition's MADT announces.
pub const XAPIC_PAGE: u64 = 0xFEE0_0000;

/// Whether `gpa` lies in the xAPIC MMIO page.
pub const fn is_xapic_page(gpa: u64) -> bool {
    gpa & !0xFFF == XAPIC_PAGE
}

/// The console text for a nested-page fault on the xAPIC page at guest RIP `rip`, or
/// `None` for other exits (use [`Exit::at`] then).
pub fn xapic_access_message(exit: &Exit, rip: u64) -> Option<XapicAccess> {
    match exit {
        Exit::NestedPageFault(f) if is_xapic_page(f.gpa) => Some(XapicAccess { offset: f.gpa & 0xFFF, rip }),
        _ => None,
    }
}

/// Display adapter: "xAPIC MMIO access to register 0x300 at RIP ...".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct XapicAccess {
    pub offset: u64,
    pub rip: u64,
}

impl fmt::Display for XapicAccess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "xAPIC MMIO access to register {:#x} at RIP {:#x}: this partition has x2APIC only \
             (did Linux disable x2APIC? boot it with noapic and without nox2apic)",
            self.offset, self.rip
        )
    }
}

/// The result of emulating a control-register write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrWrite {
    /// Write `guest` to the VMCS guest register and `shadow` to its read shadow; advance RIP.
    Update {
        guest: u64,
        shadow: u64,
    },
    InjectGp,
}

use crate::control_regs::cr0::{CD as CR0_CD, NW as CR0_NW, PE as CR0_PE, PG as CR0_PG, TS as CR0_TS};
use crate::control_regs::cr4::{SMXE as CR4_SMXE, VMXE as CR4_VMXE};
use crate::control_regs::CrWriteRequest;

/// MOV to CR0 (or LMSW, after merging its low 4 bits into the shadow) with `value`.
/// Architectural #GP cases: bits 63:32 set, PG without PE, NW without CD. The VMX-fixed
/// bits other than PE and PG (unrestricted guest) are forced on in the real register.
pub fn cr0_write(caps: &VmxCapabilities, value: u64) -> CrWrite {
    if value >> 32 != 0
        || (value & CR0_PG != 0 && value & CR0_PE == 0)
        || (value & CR0_NW != 0 && value & CR0_CD == 0)
    {
        return CrWrite::InjectGp;
    }
    let forced = caps.cr0_fixed0 & !(CR0_PE | CR0_PG);
    // CD/NW stay in the shadow only (see `ap_start::linux_cr_masks`).
    let real = (value | forced) & caps.cr0_fixed1 & !super::ap_start::CR0_CACHE_CONTROL;
    CrWrite::Update { guest: real, shadow: value }
}

/// MOV to CR4 with `value`. #GP for VMXE and SMXE (CPUID hides VMX and SMX) and for bits
/// the CPU does not allow (outside IA32_VMX_CR4_FIXED1); VMXE is forced on underneath.
pub fn cr4_write(caps: &VmxCapabilities, value: u64) -> CrWrite {
    if value & (CR4_VMXE | CR4_SMXE) != 0 || value & !caps.cr4_fixed1 != 0 {
        return CrWrite::InjectGp;
    }
    CrWrite::Update { guest: caps.fix_cr4(value), shadow: value }
}

/// A Linux vCPU's write to a control register that exited: which register it changes (0
/// or 4) and how ([`cr0_write`], [`cr4_write`]). LMSW (bits 3:0 of its source; it can set
/// PE but never clear it) and CLTS become CR0 writes on the CR0 the guest sees,
/// `cr0_shadow` (read only for them). `Err(cr)`: a MOV to a register whose writes never
/// exit.
pub fn control_write(
    caps: &VmxCapabilities,
    request: CrWriteRequest,
    cr0_shadow: impl FnOnce() -> u64,
) -> Result<(u8, CrWrite), u8> {
    Ok(match request {
        CrWriteRequest::Mov { cr: 0, value } => (0, cr0_write(caps, value)),
        CrWriteRequest::Mov { cr: 4, value } => (4, cr4_write(caps, value)),
        CrWriteRequest::Lmsw { source } => {
            (0, cr0_write(caps, (cr0_shadow() & !0xE) | (source as u64 & 0xF)))
        }
        CrWriteRequest::Clts => (0, cr0_write(caps, cr0_shadow() & !CR0_TS)),
        CrWriteRequest::Mov { cr, .. } => return Err(cr),
    })
}

/// The control values for a Linux vCPU (see the module documentation). Entry controls do
/// not include IA-32e mode guest: the binary sets it for a vCPU that enters in 64-bit mode
/// (the boot vCPU under the 64-bit boot protocol) and [`super::ap_start::sipi_start_state`]
/// clears it; afterwards the processor keeps it equal to EFER.LMA on every exit.
pub fn linux_controls(caps: &VmxCapabilities) -> Result<VmxControls, ControlError> {
    let fit = |kind, desired, cap| adjust(desired, cap).map_err(|missing| ControlError { kind, missing });
    let optional = secondary::ENABLE_RDTSCP | secondary::ENABLE_INVPCID | secondary::ENABLE_XSAVES;
    let allowed_optional = optional & (caps.secondary >> 32) as u32;
    let pat = entry::LOAD_PAT & (caps.entry >> 32) as u32;
    let exit_pat = (exit::SAVE_PAT | exit::LOAD_PAT) & (caps.exit >> 32) as u32;
    Ok(VmxControls {
        pin: fit(ControlKind::PinBased, pin::NMI_EXITING, caps.pin_based)?,
        primary: fit(
            ControlKind::Primary,
            primary::USE_IO_BITMAPS
                | primary::USE_MSR_BITMAPS
                | primary::MWAIT_EXITING
                | primary::MONITOR_EXITING
                | primary::RDPMC_EXITING
                | primary::ACTIVATE_SECONDARY_CONTROLS,
            caps.primary,
        )?,
        secondary: fit(
            ControlKind::Secondary,
            secondary::ENABLE_EPT
                | secondary::ENABLE_VPID
                | secondary::UNRESTRICTED_GUEST
                | secondary::WBINVD_EXITING
                | allowed_optional,
            caps.secondary,
        )?,
        exit: fit(
            ControlKind::Exit,
            exit::HOST_ADDRESS_SPACE_SIZE | exit::SAVE_EFER | exit::LOAD_EFER | exit_pat,
            caps.exit,
        )?,
        entry: fit(ControlKind::Entry, entry::LOAD_EFER | pat, caps.entry)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vcpu::PageFault;
    use crate::vmx::caps::bochs_skylake_msr;

    #[test]
    fn xapic_page_message() {
        let npf = |gpa| Exit::NestedPageFault(PageFault { gpa, write: true, ..PageFault::default() });
        let rip = 0xFFFF_FFFF_8100_0000;
        let m = xapic_access_message(&npf(0xFEE0_0300), rip).unwrap();
        assert_eq!(m.offset, 0x300);
        assert!(format!("{m}").starts_with("xAPIC MMIO access to register 0x300 at RIP 0xffffffff81000000"));
        assert!(xapic_access_message(&npf(0xFEE0_1000), rip).is_none());
        assert!(xapic_access_message(&Exit::Rdmsr { msr: 0x802 }, rip).is_none());
        assert!(is_xapic_page(0xFEE0_0FFF) && !is_xapic_page(0xFEDF_FFFF));
    }

    #[test]
    fn control_register_emulation() {
        let caps = VmxCapabilities::from_msrs(bochs_skylake_msr);
        // Linux's startup: PE|MP|ET|NE|WP|AM|PG.
        let linux_cr0 = 0x8005_003B;
        assert_eq!(cr0_write(&caps, linux_cr0), CrWrite::Update { guest: linux_cr0, shadow: linux_cr0 });
        // The trampoline's PE-only write: NE is forced on underneath.
        assert_eq!(cr0_write(&caps, 1), CrWrite::Update { guest: 0x21, shadow: 1 });
        assert_eq!(cr0_write(&caps, 0x8000_0000), CrWrite::InjectGp, "PG without PE");
        assert_eq!(cr0_write(&caps, 1 << 29 | 1), CrWrite::InjectGp, "NW without CD");
        assert_eq!(cr0_write(&caps, 1 << 32), CrWrite::InjectGp);
        // Caches off in the guest's view only.
        let uncached = linux_cr0 | 3 << 29;
        assert_eq!(cr0_write(&caps, uncached), CrWrite::Update { guest: linux_cr0, shadow: uncached });
        assert_eq!(cr4_write(&caps, 0x20), CrWrite::Update { guest: 0x2020, shadow: 0x20 });
        assert_eq!(cr4_write(&caps, 0x2000), CrWrite::InjectGp, "VMXE");
        assert_eq!(cr4_write(&caps, 1 << 14), CrWrite::InjectGp, "SMXE");
        assert_eq!(cr4_write(&caps, 1 << 30), CrWrite::InjectGp, "not allowed by FIXED1");
    }

    #[test]
    fn controls_leave_the_steady_state_exit_free() {
        let caps = VmxCapabilities::from_msrs(bochs_skylake_msr);
        let c = linux_controls(&caps).unwrap();
        assert_eq!(c.pin & (pin::EXTERNAL_INTERRUPT_EXITING | pin::PREEMPTION_TIMER), 0);
        assert_ne!(c.pin & pin::NMI_EXITING, 0);
        for off in [
            primary::HLT_EXITING,
            primary::RDTSC_EXITING,
            primary::CR3_LOAD_EXITING,
            primary::CR8_LOAD_EXITING,
            primary::INVLPG_EXITING,
            primary::PAUSE_EXITING,
            primary::UNCONDITIONAL_IO_EXITING,
        ] {
            assert_eq!(c.primary & off, 0, "{off:#x}");
        }
        assert_ne!(c.primary & primary::USE_MSR_BITMAPS, 0);
        assert_ne!(c.primary & primary::MWAIT_EXITING, 0);
        for on in [
            secondary::UNRESTRICTED_GUEST,
            secondary::ENABLE_EPT,
            secondary::ENABLE_VPID,
            secondary::WBINVD_EXITING,
        ] {
            assert_ne!(c.secondary & on, 0, "{on:#x}");
        }
        assert_eq!(c.secondary & secondary::VIRTUALIZE_APIC_ACCESSES, 0);
        assert_eq!(c.entry & entry::IA32E_MODE_GUEST, 0);
        assert_ne!(c.entry & entry::LOAD_PAT, 0);
        assert_ne!(c.exit & (exit::SAVE_PAT | exit::LOAD_PAT), 0);
        assert_eq!(c.exit & exit::ACK_INTERRUPT_ON_EXIT, 0);
        // A CPU without unrestricted guest cannot run Linux this way.
        let no_ug = VmxCapabilities {
            secondary: caps.secondary & !((secondary::UNRESTRICTED_GUEST as u64) << 32),
            ..caps
        };
        assert_eq!(
            linux_controls(&no_ug),
            Err(ControlError { kind: ControlKind::Secondary, missing: secondary::UNRESTRICTED_GUEST })
        );
    }

    #[test]
    fn lmsw_and_clts_change_the_cr0_the_guest_sees() {
        let caps = VmxCapabilities::from_msrs(bochs_skylake_msr);
        let shadow = || 0x8005_003B_u64; // Linux's CR0, TS (bit 3) set
        let write = |r| control_write(&caps, r, shadow);
        assert_eq!(write(CrWriteRequest::Clts), Ok((0, cr0_write(&caps, 0x8005_0033))));
        // LMSW cannot clear PE: source 0 keeps it.
        assert_eq!(write(CrWriteRequest::Lmsw { source: 0 }), Ok((0, cr0_write(&caps, 0x8005_0031))));
        assert_eq!(write(CrWriteRequest::Lmsw { source: 0xFFFF }), Ok((0, cr0_write(&caps, 0x8005_003F))));
        assert_eq!(write(CrWriteRequest::Mov { cr: 4, value: 0x20 }), Ok((4, cr4_write(&caps, 0x20))));
        assert_eq!(
            control_write(&caps, CrWriteRequest::Mov { cr: 0, value: 1 }, || panic!("not read")),
            Ok((0, cr0_write(&caps, 1)))
        );
        assert_eq!(write(CrWriteRequest::Mov { cr: 3, value: 0 }), Err(3));
    }
}
