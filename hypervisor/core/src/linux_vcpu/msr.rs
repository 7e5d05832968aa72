//! The MSR policy of a Linux vCPU: which MSRs pass through, which are emulated, which
//! writes are dropped, and which accesses fault.
//!
//! [`LinuxMsrPolicy::fill_bitmap`] writes the MSR bitmap (with
//! [`crate::vmx::bitmaps::fill_msr_bitmap`]); an RDMSR/WRMSR exit then goes to
//! [`LinuxMsrPolicy::on_rdmsr`] / [`LinuxMsrPolicy::on_wrmsr`], which return an
//! [`MsrAction`]. The classes, and why:
//!
//! - **Pass through, no exit** ([`passthrough_reads`], [`passthrough_writes`]): state that
//!   belongs to the core the partition owns. The x2APIC registers except the ICR and the
//!   LDR (and, with a non-identity [`ApicIdMap`], except ID): TPR, EOI, SVR, ESR, LVTs,
//!   timer counts and divide, SELF_IPI, and reads of version, PPR, ISR/TMR/IRR and all
//!   LVTs. Writes to the LVTs that have a delivery-mode field (CMCI, thermal, PMI, LINT0,
//!   LINT1; Linux writes them only while bringing a CPU up) exit: reserved bits get #GP,
//!   SMI delivery is refused (an SMI enters firmware, which may rendezvous every core of
//!   the machine), anything else is written for the guest. Also
//!   TSC_DEADLINE, FS/GS base, KERNEL_GS_BASE, STAR/LSTAR/CSTAR/SFMASK, TSC_AUX,
//!   SYSENTER_CS/ESP/EIP, SPEC_CTRL, PRED_CMD, FLUSH_CMD, IA32_XSS, reads of EFER, TSC,
//!   the microcode revision (0x8B) and the ICR, and PAT when the VMCS loads and saves it
//!   ([`LinuxMsrPolicy::pat_in_vmcs`]). KERNEL_GS_BASE and the SYSCALL MSRs are not
//!   switched by VM entry/exit: the host must not use them on a Linux core (it does not).
//! - **Emulated reads** ([`MsrAction::Read`]): APIC_BASE (base 0xFEE0_0000, enabled, x2APIC
//!   mode, BSP bit on vCPU 0 only); the x2APIC LDR, derived from the id as the
//!   architecture defines it (Bochs's x2APIC reads its LDR as 0, and Linux's cluster mode
//!   would then address every IPI to nobody); the x2APIC ID with a non-identity map; MTRRs (no
//!   variable ranges, no fixed ranges, no SMRR, WC; default type write-back, enabled:
//!   under EPT the guest's MTRRs do not decide memory types anyway); FEATURE_CONTROL
//!   (locked, VMX off); MISC_ENABLE (fast strings, no BTS/PEBS, no MONITOR);
//!   PLATFORM_INFO (max non-turbo ratio = TSC / 100 MHz, no CPUID faulting);
//!   ARCH_CAPABILITIES (the host's value, if any, plus XAPIC_DISABLE) and
//!   XAPIC_DISABLE_STATUS (x2APIC locked: Linux 6.1 then refuses to fall back to xAPIC);
//!   MCG_CAP/MCG_STATUS/MCG_CTL (no banks); TSC_ADJUST (0); DEBUGCTL (0).
//! - **Dropped writes** ([`MsrAction::Ignore`]): writes Linux performs on ordinary boots
//!   that must not reach the machine: MTRRs (every AP rewrites MTRRdefType), MISC_ENABLE,
//!   the microcode revision reset (0x8B) and the microcode update trigger (0x79: the
//!   revision reads back unchanged, so the loader reports failure and goes on), TSC and
//!   TSC_ADJUST (the TSC is the hypervisor's time base), DEBUGCTL (branch tracing is not
//!   virtualised), MCG_STATUS/MCG_CTL.
//! - **Checked writes**: APIC_BASE may be rewritten only with its current value (anything
//!   else would leave x2APIC mode or move the APIC: #GP); EFER goes to
//!   [`MsrAction::WriteEfer`] when only SCE/LME/LMA/NXE are set, else #GP; the ICR goes to
//!   [`MsrAction::Icr`] ([`super::apic::decide_icr`]).
//! - **Refused writes** ([`MsrAction::Refuse`], health event `MsrViolation`): WRMSR to
//!   MSRs that reach other cores or the machine and that Linux never writes given the
//!   CPUID view (RDT: PQR_ASSOC, QM_EVTSEL/CTR, L3/L2 masks, MBA; SMRR and SMM; package
//!   power, RAPL and thermal; uncore and HWP; DEBUG_INTERFACE; the machine-check banks;
//!   VMX capability MSRs): such a write means a hostile or broken guest. *Reads* of the
//!   same MSRs get #GP without an event: some drivers (RAPL, uncore) probe them by CPU
//!   model with `rdmsr_safe` regardless of CPUID, and a probe must not restart Linux.
//!   The RDT MSRs are the exception: reading them is refused too (health event), since
//!   the CPUID view hides RDT and no driver probes them by model for reading; cache
//!   allocation is the hypervisor's alone (issue 13).
//! - **Everything else**: #GP ([`MsrAction::InjectGp`]), reads and writes alike. Linux
//!   probes optional MSRs with `rdmsr_safe`/`wrmsr_safe`, so this is what real hardware
//!   without that MSR would do; it is not a health event.
//!
//! ```
//! use hallows_core::vmx::bitmaps::msr_access_exits;
//! use hallows_core::linux_vcpu::apic::ApicIdMap;
//! use hallows_core::linux_vcpu::msr::{LinuxMsrPolicy, MsrAction};
//! let map = ApicIdMap::identity(&[0, 1]).unwrap();
//! let policy = LinuxMsrPolicy::new(&map, 0, 100_000);
//! let mut page = [0u8; 4096];
//! policy.fill_bitmap(&mut page);
//! assert!(!msr_access_exits(&page, 0x6E0, true)); // TSC_DEADLINE: no exit
//! assert!(msr_access_exits(&page, 0x830, true)); // ICR: exits
//! assert_eq!(policy.on_wrmsr(0x830, 0x1_0000_00FD), MsrAction::Icr(0x1_0000_00FD));
//! assert_eq!(policy.on_rdmsr(0x1B), MsrAction::Read(0xFEE0_0D00));
//! ```

use super::apic::{logical_id, reg, ApicIdMap};
use crate::control_regs::efer;
use crate::vmx::bitmaps::fill_msr_bitmap;
use hallows_abi::health::EventClass;

/// MSR numbers the policy names.
pub mod num {
    pub const TSC: u32 = 0x10;
    pub const APIC_BASE: u32 = 0x1B;
    pub const FEATURE_CONTROL: u32 = 0x3A;
    pub const TSC_ADJUST: u32 = 0x3B;
    pub const SPEC_CTRL: u32 = 0x48;
    pub const PRED_CMD: u32 = 0x49;
    pub const BIOS_UPDT_TRIG: u32 = 0x79;
    pub const BIOS_SIGN_ID: u32 = 0x8B;
    pub const XAPIC_DISABLE_STATUS: u32 = 0xBD;
    pub const PLATFORM_INFO: u32 = 0xCE;
    pub const MTRRCAP: u32 = 0xFE;
    pub const ARCH_CAPABILITIES: u32 = 0x10A;
    pub const FLUSH_CMD: u32 = 0x10B;
    pub const SYSENTER_CS: u32 = 0x174;
    pub const SYSENTER_ESP: u32 = 0x175;
    pub const SYSENTER_EIP: u32 = 0x176;
    pub const MCG_CAP: u32 = 0x179;
    pub const MCG_STATUS: u32 = 0x17A;
    pub const MCG_CTL: u32 = 0x17B;
    pub const MISC_ENABLE: u32 = 0x1A0;
    pub const DEBUGCTL: u32 = 0x1D9;
    pub const SMRR_PHYSBASE: u32 = 0x1F2;
    pub const SMRR_PHYSMASK: u32 = 0x1F3;
    pub const MTRR_PHYSBASE0: u32 = 0x200;
    pub const MTRR_FIX64K: u32 = 0x250;
    pub const MTRR_FIX16K_80000: u32 = 0x258;
    pub const MTRR_FIX16K_A0000: u32 = 0x259;
    pub const MTRR_FIX4K_C0000: u32 = 0x268;
    pub const MTRR_FIX4K_F8000: u32 = 0x26F;
    pub const PAT: u32 = 0x277;
    pub const MTRR_DEF_TYPE: u32 = 0x2FF;
    pub const TSC_DEADLINE: u32 = 0x6E0;
    pub const DEBUG_INTERFACE: u32 = 0xC80;
    pub const QM_EVTSEL: u32 = 0xC8D;
    pub const PQR_ASSOC: u32 = 0xC8F;
    pub const L3_MASK_0: u32 = 0xC90;
    pub const XSS: u32 = 0xDA0;
    pub const EFER: u32 = 0xC000_0080;
    pub const STAR: u32 = 0xC000_0081;
    pub const LSTAR: u32 = 0xC000_0082;
    pub const CSTAR: u32 = 0xC000_0083;
    pub const SFMASK: u32 = 0xC000_0084;
    pub const FS_BASE: u32 = 0xC000_0100;
    pub const GS_BASE: u32 = 0xC000_0101;
    pub const KERNEL_GS_BASE: u32 = 0xC000_0102;
    pub const TSC_AUX: u32 = 0xC000_0103;
}

use num::*;

/// What to do with an RDMSR or WRMSR exit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MsrAction {
    /// RDMSR: return this value in edx:eax, advance RIP.
    Read(u64),
    /// Execute the access on the real MSR for the guest, advance RIP. On WRMSR this is
    /// returned for the checked LVT registers (the value is already validated) and for
    /// pass-through MSRs whose exit the bitmap should have avoided: for the latter use a
    /// WRMSR that survives #GP (exception fixup) and inject #GP if it faults.
    PassThrough,
    /// WRMSR: drop the value, advance RIP.
    Ignore,
    /// WRMSR of EFER: write the value to the VMCS guest EFER (with LMA = LME && CR0.PG)
    /// and set the IA-32e-mode-guest entry control to LMA; advance RIP.
    WriteEfer(u64),
    /// WRMSR of the ICR: hand the value to [`super::apic::decide_icr`].
    Icr(u64),
    /// Inject #GP(0) without advancing RIP.
    InjectGp,
    /// Report to the health monitor (class `MsrViolation`); if the partition continues,
    /// inject #GP(0).
    Refuse(EventClass),
}

/// APIC_BASE bits.
const APIC_BSP: u64 = 1 << 8;
const APIC_EXTD: u64 = 1 << 10;
const APIC_EN: u64 = 1 << 11;
/// The local APIC base every partition sees.
pub const APIC_BASE_ADDRESS: u64 = 0xFEE0_0000;
/// MTRR type write-back.
const WB: u64 = 6;
/// EFER bits a guest may set.
const EFER_ALLOWED: u64 = efer::SCE | efer::LME | efer::LMA | efer::NXE;
/// ARCH_CAPABILITIES bit 21: IA32_XAPIC_DISABLE_STATUS exists.
pub const ARCH_CAP_XAPIC_DISABLE: u64 = 1 << 21;

/// The MSR policy of one vCPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinuxMsrPolicy {
    /// vCPU index (0 = boot CPU).
    pub vcpu: usize,
    /// The guest-visible x2APIC id; `None` with an identity map (ID passes through).
    pub virtual_apic_id: Option<u32>,
    /// The x2APIC id the guest sees (the real one with an identity map): what its LDR is
    /// derived from.
    pub apic_id: u32,
    pub tsc_khz: u32,
    /// The VMCS loads and saves IA32_PAT (entry LOAD_PAT, exit SAVE_PAT and LOAD_PAT): PAT
    /// then passes through. Default true.
    pub pat_in_vmcs: bool,
    /// The host's IA32_ARCH_CAPABILITIES, or 0 when the CPU has none.
    pub host_arch_capabilities: u64,
}

/// Ranges of MSRs whose any access is refused (first, last).
const REFUSED: &[(u32, u32)] = &[
    (0x34, 0x34),   // SMI_COUNT
    (0x9B, 0x9B),   // SMM_MONITOR_CTL
    (0x19A, 0x1A2), // clock modulation, thermal, temperature target
    (0x1AA, 0x1B2), // power control, energy/perf bias, package thermal
    (SMRR_PHYSBASE, SMRR_PHYSMASK),
    (0x400, 0x47F), // machine-check banks
    (0x480, 0x493), // VMX capabilities
    (0x600, 0x6DF), // RAPL, package power and C-state residency
    (0x700, 0x77F), // uncore, HWP
    (DEBUG_INTERFACE, DEBUG_INTERFACE),
    RDT_QOS_CFG,
    RDT_BLOCK,
];

/// RDT allocation configuration: IA32_L3_QOS_CFG (CDP) and IA32_L2_QOS_CFG.
const RDT_QOS_CFG: (u32, u32) = (0xC81, 0xC82);
/// RDT: QM_EVTSEL, QM_CTR, PQR_ASSOC, L3/L2 masks, MBA delays.
const RDT_BLOCK: (u32, u32) = (QM_EVTSEL, 0xD8F);

/// x2APIC registers the guest reads without an exit (ID added for identity maps).
const APIC_READS: &[u32] = &[
    reg::VERSION,
    reg::TPR,
    reg::PPR,
    reg::SVR,
    reg::ESR,
    reg::LVT_CMCI,
    reg::ICR,
    reg::LVT_TIMER,
    reg::LVT_THERMAL,
    reg::LVT_PMI,
    reg::LVT_LINT0,
    reg::LVT_LINT1,
    reg::LVT_ERROR,
    reg::TIMER_INITIAL_COUNT,
    reg::TIMER_CURRENT_COUNT,
    reg::TIMER_DIVIDE,
];
/// x2APIC registers the guest writes without an exit (the ICR is not among them).
const APIC_WRITES: &[u32] = &[
    reg::TPR,
    reg::EOI,
    reg::SVR,
    reg::ESR,
    reg::LVT_TIMER,
    reg::LVT_ERROR,
    reg::TIMER_INITIAL_COUNT,
    reg::TIMER_DIVIDE,
    reg::SELF_IPI,
];
/// LVT registers with a delivery-mode field: their writes exit so that SMI delivery can be
/// refused (Linux writes them only while setting up a CPU). `(register, writable bits)`:
/// vector, delivery mode, mask; LINT0/1 also polarity and trigger mode.
const LVT_CHECKED: &[(u32, u64)] = &[
    (reg::LVT_CMCI, 0x1_07FF),
    (reg::LVT_THERMAL, 0x1_07FF),
    (reg::LVT_PMI, 0x1_07FF),
    (reg::LVT_LINT0, 0x1_A7FF),
    (reg::LVT_LINT1, 0x1_A7FF),
];
/// LVT delivery mode SMI.
const LVT_SMI: u64 = 2;
/// Core-local MSRs that pass through both ways.
const CORE_LOCAL_RW: &[u32] = &[
    TSC_DEADLINE,
    SPEC_CTRL,
    SYSENTER_CS,
    SYSENTER_ESP,
    SYSENTER_EIP,
    XSS,
    STAR,
    LSTAR,
    CSTAR,
    SFMASK,
    FS_BASE,
    GS_BASE,
    KERNEL_GS_BASE,
    TSC_AUX,
];

/// Every MSR the guest reads without an exit (besides ISR/TMR/IRR, see [`passthrough_reads`]).
const EXTRA_READS: &[u32] = &[EFER, TSC, BIOS_SIGN_ID];
/// Write-only command MSRs that pass through.
const EXTRA_WRITES: &[u32] = &[PRED_CMD, FLUSH_CMD];

impl LinuxMsrPolicy {
    /// The policy for `vcpu` of the partition `map`, announcing `tsc_khz`.
    pub fn new(map: &ApicIdMap, vcpu: usize, tsc_khz: u32) -> Self {
        LinuxMsrPolicy {
            vcpu,
            virtual_apic_id: if map.is_identity() { None } else { Some(map.guest_id(vcpu).unwrap_or(0)) },
            apic_id: map.guest_id(vcpu).unwrap_or(0),
            tsc_khz,
            pat_in_vmcs: true,
            host_arch_capabilities: 0,
        }
    }

    /// Every MSR whose RDMSR does not exit.
    pub fn passthrough_reads(&self) -> impl Iterator<Item = u32> + '_ {
        let isr_tmr_irr = reg::ISR0..reg::IRR0 + 8;
        let id = if self.virtual_apic_id.is_none() { [reg::ID].as_slice() } else { &[] };
        let pat = if self.pat_in_vmcs { [PAT].as_slice() } else { &[] };
        APIC_READS
            .iter()
            .chain(CORE_LOCAL_RW)
            .chain(EXTRA_READS)
            .chain(id)
            .chain(pat)
            .copied()
            .chain(isr_tmr_irr)
    }

    /// Every MSR whose WRMSR does not exit.
    pub fn passthrough_writes(&self) -> impl Iterator<Item = u32> + '_ {
        let pat = if self.pat_in_vmcs { [PAT].as_slice() } else { &[] };
        APIC_WRITES.iter().chain(CORE_LOCAL_RW).chain(EXTRA_WRITES).chain(pat).copied()
    }

    /// Writes the MSR bitmap page.
    pub fn fill_bitmap(&self, page: &mut [u8; 4096]) {
        let mut reads = [0u32; 96];
        let mut writes = [0u32; 64];
        let nr = fill(&mut reads, self.passthrough_reads());
        let nw = fill(&mut writes, self.passthrough_writes());
        fill_msr_bitmap(page, &reads[..nr], &writes[..nw]);
    }

    fn apic_base(&self) -> u64 {
        APIC_BASE_ADDRESS | APIC_EN | APIC_EXTD | if self.vcpu == 0 { APIC_BSP } else { 0 }
    }

    fn refused(msr: u32) -> bool {
        REFUSED.iter().any(|&(a, b)| (a..=b).contains(&msr))
    }

    fn fixed_mtrr(msr: u32) -> bool {
        matches!(
            msr,
            MTRR_FIX64K | MTRR_FIX16K_80000 | MTRR_FIX16K_A0000 | MTRR_FIX4K_C0000..=MTRR_FIX4K_F8000
        )
    }

    fn variable_mtrr(msr: u32) -> bool {
        (MTRR_PHYSBASE0..MTRR_PHYSBASE0 + 20).contains(&msr)
    }

    /// RDMSR of `msr` exited.
    pub fn on_rdmsr(&self, msr: u32) -> MsrAction {
        use MsrAction::*;
        if self.passthrough_reads().any(|m| m == msr) {
            return PassThrough;
        }
        match msr {
            APIC_BASE => Read(self.apic_base()),
            reg::ID => Read(self.virtual_apic_id.unwrap_or(0) as u64),
            reg::LDR => Read(logical_id(self.apic_id) as u64),
            // VCNT 0, no fixed ranges, WC supported, no SMRR.
            MTRRCAP => Read(1 << 10),
            // Enabled (E), fixed ranges off, default write-back.
            MTRR_DEF_TYPE => Read(1 << 11 | WB),
            m if Self::fixed_mtrr(m) => Read(0x0606_0606_0606_0606),
            m if Self::variable_mtrr(m) => Read(0),
            FEATURE_CONTROL => Read(1),
            // Fast strings, BTS and PEBS unavailable.
            MISC_ENABLE => Read(1 | 1 << 11 | 1 << 12),
            PLATFORM_INFO => Read(((self.tsc_khz / 100_000).min(0xFF) as u64) << 8),
            ARCH_CAPABILITIES => Read(self.host_arch_capabilities | ARCH_CAP_XAPIC_DISABLE),
            XAPIC_DISABLE_STATUS => Read(1),
            MCG_CAP | MCG_STATUS | MCG_CTL | TSC_ADJUST | DEBUGCTL => Read(0),
            PAT => PassThrough,
            m if Self::rdt(m) => Refuse(EventClass::MsrViolation),
            _ => InjectGp,
        }
    }

    /// An RDT MSR (allocation or monitoring): the hypervisor's alone, reads included.
    fn rdt(msr: u32) -> bool {
        [RDT_QOS_CFG, RDT_BLOCK].iter().any(|&(a, b)| (a..=b).contains(&msr))
    }

    /// WRMSR of `value` to `msr` exited.
    pub fn on_wrmsr(&self, msr: u32, value: u64) -> MsrAction {
        use MsrAction::*;
        if self.passthrough_writes().any(|m| m == msr) {
            return PassThrough;
        }
        if let Some(&(_, writable)) = LVT_CHECKED.iter().find(|(m, _)| *m == msr) {
            return if value & !writable != 0 {
                InjectGp
            } else if (value >> 8) & 7 == LVT_SMI {
                Refuse(EventClass::MsrViolation)
            } else {
                PassThrough
            };
        }
        match msr {
            reg::ICR => Icr(value),
            APIC_BASE if value & !APIC_BSP == self.apic_base() & !APIC_BSP => Ignore,
            APIC_BASE => InjectGp,
            EFER if value & !EFER_ALLOWED == 0 => WriteEfer(value),
            EFER => InjectGp,
            MTRR_DEF_TYPE | MISC_ENABLE | BIOS_SIGN_ID | BIOS_UPDT_TRIG | TSC | TSC_ADJUST | DEBUGCTL
            | MCG_STATUS | MCG_CTL => Ignore,
            m if Self::fixed_mtrr(m) || Self::variable_mtrr(m) => Ignore,
            // Locked or read-only: the hardware would #GP too.
            FEATURE_CONTROL | XAPIC_DISABLE_STATUS | ARCH_CAPABILITIES | MTRRCAP | PLATFORM_INFO
            | MCG_CAP => InjectGp,
            // ID, LDR, version, PPR, ISR/TMR/IRR, current count are read-only.
            0x800..=0x8FF => InjectGp,
            PAT => PassThrough,
            m if Self::refused(m) => Refuse(EventClass::MsrViolation),
            _ => InjectGp,
        }
    }
}

/// Copies `items` into `buf`, returning how many fit.
fn fill(buf: &mut [u32], items: impl Iterator<Item = u32>) -> usize {
    let mut n = 0;
    for (slot, m) in buf.iter_mut().zip(items) {
        *slot = m;
        n += 1;
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vmx::bitmaps::msr_access_exits;
    use proptest::prelude::*;

    fn policy(identity: bool, vcpu: usize) -> LinuxMsrPolicy {
        let map = if identity { ApicIdMap::identity(&[4, 5]) } else { ApicIdMap::sequential(&[4, 5]) };
        LinuxMsrPolicy::new(&map.unwrap(), vcpu, 140_000)
    }

    fn bitmap(p: &LinuxMsrPolicy) -> [u8; 4096] {
        let mut page = [0u8; 4096];
        p.fill_bitmap(&mut page);
        page
    }

    #[test]
    fn bitmap_lets_the_core_local_state_through() {
        let page = bitmap(&policy(true, 0));
        for msr in [TSC_DEADLINE, FS_BASE, GS_BASE, KERNEL_GS_BASE, LSTAR, SYSENTER_EIP, TSC_AUX, PAT] {
            assert!(!msr_access_exits(&page, msr, false), "read {msr:#x}");
            assert!(!msr_access_exits(&page, msr, true), "write {msr:#x}");
        }
        for msr in [
            reg::EOI,
            reg::TPR,
            reg::LVT_TIMER,
            reg::LVT_ERROR,
            reg::TIMER_INITIAL_COUNT,
            reg::SELF_IPI,
            reg::SVR,
        ] {
            assert!(!msr_access_exits(&page, msr, true), "write {msr:#x}");
        }
        for msr in [reg::ID, reg::ICR, reg::TIMER_CURRENT_COUNT, reg::IRR0 + 7, reg::ISR0, EFER] {
            assert!(!msr_access_exits(&page, msr, false), "read {msr:#x}");
        }
        for msr in [reg::ICR, APIC_BASE, EFER, MTRR_DEF_TYPE, PQR_ASSOC, L3_MASK_0, BIOS_UPDT_TRIG, reg::ID] {
            assert!(msr_access_exits(&page, msr, true), "write {msr:#x} must exit");
        }
        for msr in [APIC_BASE, FEATURE_CONTROL, MTRRCAP, PQR_ASSOC, 0x400, 0x1234] {
            assert!(msr_access_exits(&page, msr, false), "read {msr:#x} must exit");
        }
    }

    #[test]
    fn virtual_ids_intercept_id_and_ldr() {
        let p = policy(false, 1);
        let page = bitmap(&p);
        assert!(msr_access_exits(&page, reg::ID, false));
        assert!(msr_access_exits(&page, reg::LDR, false));
        assert_eq!(p.on_rdmsr(reg::ID), MsrAction::Read(1));
        assert_eq!(p.on_rdmsr(reg::LDR), MsrAction::Read(2));
        assert_eq!(policy(true, 1).on_rdmsr(reg::ID), MsrAction::PassThrough);
    }

    #[test]
    fn the_ldr_is_derived_from_the_real_id_with_an_identity_map() {
        // Bochs reads its x2APIC LDR as 0: the policy answers what the architecture says.
        let p = policy(true, 1);
        assert!(msr_access_exits(&bitmap(&p), reg::LDR, false));
        assert_eq!(p.on_rdmsr(reg::LDR), MsrAction::Read(logical_id(5) as u64));
        assert_eq!(logical_id(5), 1 << 5, "cluster 0, bit 5");
    }

    #[test]
    fn pat_exits_when_the_vmcs_does_not_switch_it() {
        let mut p = policy(true, 0);
        p.pat_in_vmcs = false;
        let page = bitmap(&p);
        assert!(msr_access_exits(&page, PAT, false) && msr_access_exits(&page, PAT, true));
    }

    #[test]
    fn emulated_reads() {
        let bsp = policy(true, 0);
        let ap = policy(true, 1);
        assert_eq!(bsp.on_rdmsr(APIC_BASE), MsrAction::Read(0xFEE0_0D00));
        assert_eq!(ap.on_rdmsr(APIC_BASE), MsrAction::Read(0xFEE0_0C00));
        assert_eq!(bsp.on_rdmsr(MTRRCAP), MsrAction::Read(0x400));
        assert_eq!(bsp.on_rdmsr(MTRR_DEF_TYPE), MsrAction::Read(0x806));
        assert_eq!(bsp.on_rdmsr(0x268), MsrAction::Read(0x0606_0606_0606_0606));
        assert_eq!(bsp.on_rdmsr(0x20F), MsrAction::Read(0));
        assert_eq!(bsp.on_rdmsr(FEATURE_CONTROL), MsrAction::Read(1), "locked, VMX off");
        assert_eq!(bsp.on_rdmsr(PLATFORM_INFO), MsrAction::Read(1 << 8), "140 MHz: ratio 1");
        assert_eq!(bsp.on_rdmsr(XAPIC_DISABLE_STATUS), MsrAction::Read(1));
        let mut with_caps = bsp;
        with_caps.host_arch_capabilities = 0x3;
        assert_eq!(with_caps.on_rdmsr(ARCH_CAPABILITIES), MsrAction::Read(0x3 | 1 << 21));
        assert_eq!(bsp.on_rdmsr(MISC_ENABLE), MsrAction::Read(0x1801));
        assert_eq!(bsp.on_rdmsr(MCG_CAP), MsrAction::Read(0));
        assert_eq!(bsp.on_rdmsr(0x1234), MsrAction::InjectGp, "unknown read: #GP like absent hardware");
    }

    #[test]
    fn writes_by_class() {
        let p = policy(true, 0);
        assert_eq!(p.on_wrmsr(reg::ICR, 0xFD), MsrAction::Icr(0xFD));
        assert_eq!(p.on_wrmsr(APIC_BASE, 0xFEE0_0D00), MsrAction::Ignore, "same value");
        assert_eq!(p.on_wrmsr(APIC_BASE, 0xFEE0_0C00), MsrAction::Ignore, "BSP bit is read-only");
        assert_eq!(p.on_wrmsr(APIC_BASE, 0xFEE0_0900), MsrAction::InjectGp, "leaving x2APIC mode");
        assert_eq!(p.on_wrmsr(APIC_BASE, 0xFED0_0D00), MsrAction::InjectGp, "moving the APIC");
        assert_eq!(p.on_wrmsr(EFER, 0xD01), MsrAction::WriteEfer(0xD01));
        assert_eq!(p.on_wrmsr(EFER, 1 << 12), MsrAction::InjectGp, "SVME");
        for msr in [
            MTRR_DEF_TYPE,
            0x200,
            0x250,
            MISC_ENABLE,
            BIOS_UPDT_TRIG,
            BIOS_SIGN_ID,
            TSC,
            TSC_ADJUST,
            DEBUGCTL,
        ] {
            assert_eq!(p.on_wrmsr(msr, 0x1234), MsrAction::Ignore, "{msr:#x}");
        }
        for msr in [FEATURE_CONTROL, XAPIC_DISABLE_STATUS, reg::ID, reg::LDR, reg::PPR] {
            assert_eq!(p.on_wrmsr(msr, 5), MsrAction::InjectGp, "{msr:#x}");
        }
        for msr in
            [PQR_ASSOC, L3_MASK_0, 0xC9F, QM_EVTSEL, SMRR_PHYSBASE, 0x401, 0x610, DEBUG_INTERFACE, 0x48A]
        {
            assert_eq!(p.on_wrmsr(msr, 1), MsrAction::Refuse(EventClass::MsrViolation), "{msr:#x}");
        }
        for msr in [SMRR_PHYSBASE, 0x401, 0x610, DEBUG_INTERFACE, 0x48A] {
            assert_eq!(p.on_rdmsr(msr), MsrAction::InjectGp, "read probes get #GP, no event: {msr:#x}");
        }
        for msr in [0xC81, 0xC82, QM_EVTSEL, PQR_ASSOC, L3_MASK_0, 0xC9F, 0xD10, 0xD50, 0xD8F] {
            assert_eq!(p.on_rdmsr(msr), MsrAction::Refuse(EventClass::MsrViolation), "RDT read: {msr:#x}");
            assert_eq!(
                p.on_wrmsr(msr, 0),
                MsrAction::Refuse(EventClass::MsrViolation),
                "RDT write: {msr:#x}"
            );
        }
        assert_eq!(p.on_wrmsr(0x1234, 0), MsrAction::InjectGp);
        assert_eq!(p.on_wrmsr(TSC_DEADLINE, 0), MsrAction::PassThrough);
    }

    #[test]
    fn lvt_delivery_modes_are_checked() {
        let p = policy(true, 1);
        let page = bitmap(&p);
        for lvt in [reg::LVT_CMCI, reg::LVT_THERMAL, reg::LVT_PMI, reg::LVT_LINT0, reg::LVT_LINT1] {
            assert!(msr_access_exits(&page, lvt, true), "{lvt:#x} write exits");
            assert!(!msr_access_exits(&page, lvt, false), "{lvt:#x} read passes");
            assert_eq!(p.on_wrmsr(lvt, 0x1_0000), MsrAction::PassThrough, "masked");
            assert_eq!(p.on_wrmsr(lvt, 0x400), MsrAction::PassThrough, "NMI");
            assert_eq!(p.on_wrmsr(lvt, 0x2F0), MsrAction::Refuse(EventClass::MsrViolation), "SMI");
            assert_eq!(p.on_wrmsr(lvt, 1 << 17), MsrAction::InjectGp, "reserved bit");
        }
        // Linux's LINT0 ExtINT (level) and LINT1 NMI values.
        assert_eq!(p.on_wrmsr(reg::LVT_LINT0, 0x8700), MsrAction::PassThrough);
        assert_eq!(p.on_wrmsr(reg::LVT_LINT1, 0x400), MsrAction::PassThrough);
        assert_eq!(p.on_wrmsr(reg::LVT_CMCI, 0x8700), MsrAction::InjectGp, "no trigger bit on CMCI");
    }

    #[test]
    fn lists_fit_the_bitmap_buffers() {
        for p in [policy(true, 0), policy(false, 1)] {
            assert!(p.passthrough_reads().count() <= 96);
            assert!(p.passthrough_writes().count() <= 64);
        }
    }

    proptest! {
        #[test]
        fn random_msrs_never_panic_and_refused_never_pass(msr: u32, value: u64, identity: bool, vcpu in 0usize..2) {
            let p = policy(identity, vcpu);
            let page = bitmap(&p);
            let r = p.on_rdmsr(msr);
            let w = p.on_wrmsr(msr, value);
            if LinuxMsrPolicy::refused(msr) {
                prop_assert!(msr_access_exits(&page, msr, false) && msr_access_exits(&page, msr, true));
                prop_assert_eq!(r, MsrAction::InjectGp);
                prop_assert_eq!(w, MsrAction::Refuse(EventClass::MsrViolation));
            }
            // Only the listed MSRs skip the exit.
            if !msr_access_exits(&page, msr, true) {
                prop_assert!(p.passthrough_writes().any(|m| m == msr));
                prop_assert_eq!(w, MsrAction::PassThrough);
            }
            if msr == reg::ICR {
                prop_assert_eq!(w, MsrAction::Icr(value));
            }
        }
    }
}
