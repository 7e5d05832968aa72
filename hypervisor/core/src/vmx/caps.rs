//! VMX capabilities: what the CPU allows (from its capability MSRs) and the VM-execution,
//! exit and entry control values RustHallows uses for a partition.
//!
//! Reading MSRs is privileged, so [`VmxCapabilities::from_msrs`] takes a closure. It reads
//! only MSRs that exist on the CPU described so far (the TRUE_* MSRs only when
//! IA32_VMX_BASIC bit 55 says so, PROCBASED_CTLS2 only when secondary controls can be
//! enabled, EPT_VPID_CAP only when EPT or VPID can be), so the binary's `rdmsr` never
//! faults. Check [`vmx_supported`] on CPUID.1:ECX first.
//!
//! ```
//! use hallows_core::vmx::caps::{adjust, VmxCapabilities};
//! // allowed-0 (must-be-one) bits in the low half, allowed-1 bits in the high half.
//! assert_eq!(adjust(0x40, 0x0000_007f_0000_0016), Ok(0x56));
//! assert_eq!(adjust(0x80, 0x0000_007f_0000_0016), Err(0x80)); // posted interrupts: not allowed
//! let caps = VmxCapabilities::from_msrs(|msr| hallows_core::vmx::caps::bochs_skylake_msr(msr));
//! caps.check_requirements().unwrap();
//! let controls = caps.controls_for_partition().unwrap();
//! assert!(controls.pin & 0x40 != 0); // VMX-preemption timer on
//! ```

use core::fmt;

/// MSR numbers.
pub mod msr {
    pub const IA32_FEATURE_CONTROL: u32 = 0x3A;
    pub const IA32_VMX_BASIC: u32 = 0x480;
    pub const IA32_VMX_PINBASED_CTLS: u32 = 0x481;
    pub const IA32_VMX_PROCBASED_CTLS: u32 = 0x482;
    pub const IA32_VMX_EXIT_CTLS: u32 = 0x483;
    pub const IA32_VMX_ENTRY_CTLS: u32 = 0x484;
    pub const IA32_VMX_MISC: u32 = 0x485;
    pub const IA32_VMX_CR0_FIXED0: u32 = 0x486;
    pub const IA32_VMX_CR0_FIXED1: u32 = 0x487;
    pub const IA32_VMX_CR4_FIXED0: u32 = 0x488;
    pub const IA32_VMX_CR4_FIXED1: u32 = 0x489;
    pub const IA32_VMX_PROCBASED_CTLS2: u32 = 0x48B;
    pub const IA32_VMX_EPT_VPID_CAP: u32 = 0x48C;
    pub const IA32_VMX_TRUE_PINBASED_CTLS: u32 = 0x48D;
    pub const IA32_VMX_TRUE_PROCBASED_CTLS: u32 = 0x48E;
    pub const IA32_VMX_TRUE_EXIT_CTLS: u32 = 0x48F;
    pub const IA32_VMX_TRUE_ENTRY_CTLS: u32 = 0x490;
    pub const IA32_EFER: u32 = 0xC000_0080;
}

/// Pin-based VM-execution control bits.
pub mod pin {
    pub const EXTERNAL_INTERRUPT_EXITING: u32 = 1 << 0;
    pub const NMI_EXITING: u32 = 1 << 3;
    pub const VIRTUAL_NMIS: u32 = 1 << 5;
    pub const PREEMPTION_TIMER: u32 = 1 << 6;
    pub const POSTED_INTERRUPTS: u32 = 1 << 7;
}

/// Primary processor-based VM-execution control bits.
pub mod primary {
    pub const INTERRUPT_WINDOW_EXITING: u32 = 1 << 2;
    pub const USE_TSC_OFFSETTING: u32 = 1 << 3;
    pub const HLT_EXITING: u32 = 1 << 7;
    pub const INVLPG_EXITING: u32 = 1 << 9;
    pub const MWAIT_EXITING: u32 = 1 << 10;
    pub const RDPMC_EXITING: u32 = 1 << 11;
    pub const RDTSC_EXITING: u32 = 1 << 12;
    pub const CR3_LOAD_EXITING: u32 = 1 << 15;
    pub const CR3_STORE_EXITING: u32 = 1 << 16;
    pub const CR8_LOAD_EXITING: u32 = 1 << 19;
    pub const CR8_STORE_EXITING: u32 = 1 << 20;
    pub const USE_TPR_SHADOW: u32 = 1 << 21;
    pub const NMI_WINDOW_EXITING: u32 = 1 << 22;
    pub const MOV_DR_EXITING: u32 = 1 << 23;
    pub const UNCONDITIONAL_IO_EXITING: u32 = 1 << 24;
    pub const USE_IO_BITMAPS: u32 = 1 << 25;
    pub const MONITOR_TRAP_FLAG: u32 = 1 << 27;
    pub const USE_MSR_BITMAPS: u32 = 1 << 28;
    pub const MONITOR_EXITING: u32 = 1 << 29;
    pub const PAUSE_EXITING: u32 = 1 << 30;
    pub const ACTIVATE_SECONDARY_CONTROLS: u32 = 1 << 31;
}

/// Secondary processor-based VM-execution control bits.
pub mod secondary {
    pub const VIRTUALIZE_APIC_ACCESSES: u32 = 1 << 0;
    pub const ENABLE_EPT: u32 = 1 << 1;
    pub const DESCRIPTOR_TABLE_EXITING: u32 = 1 << 2;
    pub const ENABLE_RDTSCP: u32 = 1 << 3;
    pub const VIRTUALIZE_X2APIC: u32 = 1 << 4;
    pub const ENABLE_VPID: u32 = 1 << 5;
    pub const WBINVD_EXITING: u32 = 1 << 6;
    pub const UNRESTRICTED_GUEST: u32 = 1 << 7;
    pub const ENABLE_INVPCID: u32 = 1 << 12;
    pub const ENABLE_VMFUNC: u32 = 1 << 13;
    pub const ENABLE_XSAVES: u32 = 1 << 20;
}

/// VM-exit control bits.
pub mod exit {
    pub const SAVE_DEBUG_CONTROLS: u32 = 1 << 2;
    pub const HOST_ADDRESS_SPACE_SIZE: u32 = 1 << 9;
    pub const ACK_INTERRUPT_ON_EXIT: u32 = 1 << 15;
    pub const SAVE_PAT: u32 = 1 << 18;
    pub const LOAD_PAT: u32 = 1 << 19;
    pub const SAVE_EFER: u32 = 1 << 20;
    pub const LOAD_EFER: u32 = 1 << 21;
    pub const SAVE_PREEMPTION_TIMER: u32 = 1 << 22;
}

/// VM-entry control bits.
pub mod entry {
    pub const LOAD_DEBUG_CONTROLS: u32 = 1 << 2;
    pub const IA32E_MODE_GUEST: u32 = 1 << 9;
    pub const LOAD_PAT: u32 = 1 << 14;
    pub const LOAD_EFER: u32 = 1 << 15;
}

/// IA32_VMX_EPT_VPID_CAP bits.
pub mod ept_vpid {
    pub const EXECUTE_ONLY: u64 = 1 << 0;
    pub const WALK_LENGTH_4: u64 = 1 << 6;
    pub const MEMORY_TYPE_UC: u64 = 1 << 8;
    pub const MEMORY_TYPE_WB: u64 = 1 << 14;
    pub const PAGES_2M: u64 = 1 << 16;
    pub const PAGES_1G: u64 = 1 << 17;
    pub const INVEPT: u64 = 1 << 20;
    pub const ACCESSED_DIRTY: u64 = 1 << 21;
    pub const INVEPT_SINGLE_CONTEXT: u64 = 1 << 25;
    pub const INVEPT_ALL_CONTEXT: u64 = 1 << 26;
    pub const INVVPID: u64 = 1 << 32;
    pub const INVVPID_INDIVIDUAL_ADDRESS: u64 = 1 << 40;
    pub const INVVPID_SINGLE_CONTEXT: u64 = 1 << 41;
    pub const INVVPID_ALL_CONTEXT: u64 = 1 << 42;
}

/// IA32_VMX_BASIC bit 55: the TRUE_* control MSRs exist.
pub const BASIC_TRUE_CONTROLS: u64 = 1 << 55;

/// Whether CPUID.1:ECX reports VMX (bit 5).
pub const fn vmx_supported(cpuid_1_ecx: u32) -> bool {
    cpuid_1_ecx & (1 << 5) != 0
}

/// What IA32_FEATURE_CONTROL says about VMXON outside SMX.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FeatureControl {
    /// Locked with VMX outside SMX enabled: VMXON may run.
    Enabled,
    /// Locked with VMX disabled (firmware setting): VMXON would fault.
    LockedOff,
    /// Not locked: the hypervisor must write `value | 0x5` (lock + enable) first.
    Unlocked,
}

/// Classifies an IA32_FEATURE_CONTROL value (bit 0 lock, bit 2 VMX outside SMX).
pub const fn feature_control(value: u64) -> FeatureControl {
    match (value & 1 != 0, value & 4 != 0) {
        (true, true) => FeatureControl::Enabled,
        (true, false) => FeatureControl::LockedOff,
        (false, _) => FeatureControl::Unlocked,
    }
}

/// Why the hypervisor cannot use this CPU's VMX.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VmxUnavailable {
    /// CPUID says there is no VMX.
    NoVmx,
    /// IA32_FEATURE_CONTROL is locked with VMX off.
    DisabledByFirmware,
    /// VMX lacks features the hypervisor needs.
    Missing(Missing),
}

impl core::fmt::Display for VmxUnavailable {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::NoVmx => f.write_str("this CPU has no VMX (CPUID.1:ECX.VMX = 0)"),
            Self::DisabledByFirmware => {
                f.write_str("VMX is disabled by the firmware (IA32_FEATURE_CONTROL locked)")
            }
            Self::Missing(missing) => write!(f, "this CPU lacks VMX features: {missing}"),
        }
    }
}

/// The CPU's VMX capabilities, checked against every requirement: CPUID.1:ECX first, and
/// only when it reports VMX, IA32_FEATURE_CONTROL and the capability MSRs (`read_msr`).
pub fn probe(cpuid_1_ecx: u32, read_msr: impl Fn(u32) -> u64) -> Result<VmxCapabilities, VmxUnavailable> {
    if !vmx_supported(cpuid_1_ecx) {
        return Err(VmxUnavailable::NoVmx);
    }
    if feature_control(read_msr(msr::IA32_FEATURE_CONTROL)) == FeatureControl::LockedOff {
        return Err(VmxUnavailable::DisabledByFirmware);
    }
    let caps = VmxCapabilities::from_msrs(read_msr);
    caps.check_requirements().map_err(VmxUnavailable::Missing)?;
    Ok(caps)
}

/// Applies a control capability MSR to `desired` control bits (SDM A.3): bits set in the
/// low half (allowed-0 settings) must be 1 and are added; bits clear in the high half
/// (allowed-1 settings) must be 0. Returns the value to write, or the desired bits the
/// CPU does not allow.
pub const fn adjust(desired: u32, cap: u64) -> Result<u32, u32> {
    let must_be_one = cap as u32;
    let may_be_one = (cap >> 32) as u32;
    let missing = desired & !may_be_one;
    if missing != 0 {
        Err(missing)
    } else {
        Ok(desired | must_be_one)
    }
}

/// A feature RustHallows needs from VMX.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Requirement {
    SecondaryControls,
    IoBitmaps,
    MsrBitmaps,
    Ept,
    Vpid,
    UnrestrictedGuest,
    PreemptionTimer,
    EptWalk4,
    EptWriteBack,
    Ept2MiBPages,
    InveptSingleContext,
    Invvpid,
    WriteBackVmcs,
}

impl Requirement {
    pub const ALL: [Requirement; 13] = [
        Self::SecondaryControls,
        Self::IoBitmaps,
        Self::MsrBitmaps,
        Self::Ept,
        Self::Vpid,
        Self::UnrestrictedGuest,
        Self::PreemptionTimer,
        Self::EptWalk4,
        Self::EptWriteBack,
        Self::Ept2MiBPages,
        Self::InveptSingleContext,
        Self::Invvpid,
        Self::WriteBackVmcs,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            Self::SecondaryControls => "secondary controls",
            Self::IoBitmaps => "I/O bitmaps",
            Self::MsrBitmaps => "MSR bitmaps",
            Self::Ept => "EPT",
            Self::Vpid => "VPID",
            Self::UnrestrictedGuest => "unrestricted guest",
            Self::PreemptionTimer => "VMX-preemption timer",
            Self::EptWalk4 => "4-level EPT walk",
            Self::EptWriteBack => "write-back EPT memory type",
            Self::Ept2MiBPages => "2 MiB EPT pages",
            Self::InveptSingleContext => "single-context INVEPT",
            Self::Invvpid => "INVVPID (single or all context)",
            Self::WriteBackVmcs => "write-back VMCS memory type",
        }
    }
}

/// A set of missing [`Requirement`]s. Displays as a comma-separated list.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Missing(u32);

impl Missing {
    pub fn insert(&mut self, r: Requirement) {
        self.0 |= 1 << r as u8;
    }
    pub fn contains(&self, r: Requirement) -> bool {
        self.0 & (1 << r as u8) != 0
    }
    pub fn is_empty(&self) -> bool {
        self.0 == 0
    }
    pub fn iter(&self) -> impl Iterator<Item = Requirement> + '_ {
        Requirement::ALL.into_iter().filter(|r| self.contains(*r))
    }
}

impl fmt::Display for Missing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            f.write_str(r.name())?;
        }
        Ok(())
    }
}

/// Which control field a [`ControlError`] is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ControlKind {
    PinBased,
    Primary,
    Secondary,
    Exit,
    Entry,
}

/// Control bits RustHallows needs that the CPU does not allow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ControlError {
    pub kind: ControlKind,
    pub missing: u32,
}

impl fmt::Display for ControlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} controls: CPU does not allow bits {:#010x}", self.kind, self.missing)
    }
}

/// The five control values to write into a VMCS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VmxControls {
    pub pin: u32,
    pub primary: u32,
    pub secondary: u32,
    pub exit: u32,
    pub entry: u32,
}

/// The VMX capability MSRs of one CPU. The control fields hold the TRUE_* MSR when the CPU
/// has them; MSRs the CPU lacks read as 0 (nothing allowed).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VmxCapabilities {
    pub basic: u64,
    pub pin_based: u64,
    pub primary: u64,
    pub secondary: u64,
    pub exit: u64,
    pub entry: u64,
    pub misc: u64,
    pub ept_vpid: u64,
    pub cr0_fixed0: u64,
    pub cr0_fixed1: u64,
    pub cr4_fixed0: u64,
    pub cr4_fixed1: u64,
}

impl VmxCapabilities {
    /// Reads the capability MSRs through `read_msr` (only those that exist, see the module
    /// documentation). Call only when [`vmx_supported`].
    pub fn from_msrs(read_msr: impl Fn(u32) -> u64) -> Self {
        let basic = read_msr(msr::IA32_VMX_BASIC);
        let true_ctls = basic & BASIC_TRUE_CONTROLS != 0;
        let pick = |plain, truer| read_msr(if true_ctls { truer } else { plain });
        let primary = pick(msr::IA32_VMX_PROCBASED_CTLS, msr::IA32_VMX_TRUE_PROCBASED_CTLS);
        let has_secondary = (primary >> 32) as u32 & primary::ACTIVATE_SECONDARY_CONTROLS != 0;
        let secondary = if has_secondary { read_msr(msr::IA32_VMX_PROCBASED_CTLS2) } else { 0 };
        let may2 = (secondary >> 32) as u32;
        let has_ept_vpid = may2 & (secondary::ENABLE_EPT | secondary::ENABLE_VPID) != 0;
        VmxCapabilities {
            basic,
            pin_based: pick(msr::IA32_VMX_PINBASED_CTLS, msr::IA32_VMX_TRUE_PINBASED_CTLS),
            primary,
            secondary,
            exit: pick(msr::IA32_VMX_EXIT_CTLS, msr::IA32_VMX_TRUE_EXIT_CTLS),
            entry: pick(msr::IA32_VMX_ENTRY_CTLS, msr::IA32_VMX_TRUE_ENTRY_CTLS),
            misc: read_msr(msr::IA32_VMX_MISC),
            ept_vpid: if has_ept_vpid { read_msr(msr::IA32_VMX_EPT_VPID_CAP) } else { 0 },
            cr0_fixed0: read_msr(msr::IA32_VMX_CR0_FIXED0),
            cr0_fixed1: read_msr(msr::IA32_VMX_CR0_FIXED1),
            cr4_fixed0: read_msr(msr::IA32_VMX_CR4_FIXED0),
            cr4_fixed1: read_msr(msr::IA32_VMX_CR4_FIXED1),
        }
    }

    /// VMCS revision identifier: the first 4 bytes of every VMXON region and VMCS.
    pub fn revision_id(&self) -> u32 {
        self.basic as u32 & 0x7FFF_FFFF
    }

    /// Bytes to allocate for a VMXON region or VMCS (at most 4096).
    pub fn vmcs_bytes(&self) -> u32 {
        ((self.basic >> 32) & 0x1FFF) as u32
    }

    /// Whether the VMCS has the guest IA32_PAT field: only where the CPU can load or
    /// save IA32_PAT on entry or exit (a VMWRITE to a missing field fails).
    pub fn has_pat_field(&self) -> bool {
        adjust(entry::LOAD_PAT, self.entry).is_ok()
            || adjust(exit::SAVE_PAT, self.exit).is_ok()
            || adjust(exit::LOAD_PAT, self.exit).is_ok()
    }

    /// The VMX-preemption timer counts down once every 2^shift TSC ticks (`MISC[4:0]`).
    pub fn preemption_timer_shift(&self) -> u8 {
        (self.misc & 0x1F) as u8
    }

    /// CR0 adjusted to the VMX fixed bits: FIXED0 ones forced on, FIXED1 zeroes forced off.
    pub fn fix_cr0(&self, cr0: u64) -> u64 {
        (cr0 | self.cr0_fixed0) & self.cr0_fixed1
    }

    /// CR4 adjusted to the VMX fixed bits.
    pub fn fix_cr4(&self, cr4: u64) -> u64 {
        (cr4 | self.cr4_fixed0) & self.cr4_fixed1
    }

    fn may(cap: u64, bits: u32) -> bool {
        adjust(bits, cap).is_ok()
    }

    /// Everything RustHallows needs that this CPU lacks; `Ok` when nothing is missing.
    pub fn check_requirements(&self) -> Result<(), Missing> {
        let mut m = Missing::default();
        let mut need = |ok: bool, r| {
            if !ok {
                m.insert(r)
            }
        };
        need(Self::may(self.primary, primary::ACTIVATE_SECONDARY_CONTROLS), Requirement::SecondaryControls);
        need(Self::may(self.primary, primary::USE_IO_BITMAPS), Requirement::IoBitmaps);
        need(Self::may(self.primary, primary::USE_MSR_BITMAPS), Requirement::MsrBitmaps);
        need(Self::may(self.secondary, secondary::ENABLE_EPT), Requirement::Ept);
        need(Self::may(self.secondary, secondary::ENABLE_VPID), Requirement::Vpid);
        need(Self::may(self.secondary, secondary::UNRESTRICTED_GUEST), Requirement::UnrestrictedGuest);
        need(
            Self::may(self.pin_based, pin::PREEMPTION_TIMER)
                && Self::may(self.exit, exit::SAVE_PREEMPTION_TIMER),
            Requirement::PreemptionTimer,
        );
        let ev = self.ept_vpid;
        need(ev & ept_vpid::WALK_LENGTH_4 != 0, Requirement::EptWalk4);
        need(ev & ept_vpid::MEMORY_TYPE_WB != 0, Requirement::EptWriteBack);
        need(ev & ept_vpid::PAGES_2M != 0, Requirement::Ept2MiBPages);
        need(
            ev & ept_vpid::INVEPT != 0 && ev & ept_vpid::INVEPT_SINGLE_CONTEXT != 0,
            Requirement::InveptSingleContext,
        );
        need(
            ev & ept_vpid::INVVPID != 0
                && ev & (ept_vpid::INVVPID_SINGLE_CONTEXT | ept_vpid::INVVPID_ALL_CONTEXT) != 0,
            Requirement::Invvpid,
        );
        need((self.basic >> 50) & 0xF == 6, Requirement::WriteBackVmcs);
        if m.is_empty() {
            Ok(())
        } else {
            Err(m)
        }
    }

    /// The control values for a real-time partition vCPU:
    /// - pin-based: external-interrupt and NMI exiting (no interrupt ever reaches a
    ///   partition's IDT uninvited), VMX-preemption timer (window ends);
    /// - primary: HLT exiting, MWAIT, MONITOR and RDPMC exiting, CR8 load and store
    ///   exiting (the task-priority register is virtual, per vCPU), I/O bitmaps, MSR bitmaps,
    ///   secondary controls (docs/isolation.md says why each instruction that can reach
    ///   another core, a shared cache or time exits);
    /// - secondary: EPT, VPID, WBINVD exiting (WBINVD/WBNOINVD would flush the shared
    ///   LLC); RDTSCP, INVPCID and XSAVES/XRSTORS when allowed (otherwise
    ///   those instructions raise #UD in the guest); no unrestricted guest (RT partitions
    ///   start in long mode);
    /// - exit: 64-bit host, acknowledge interrupt on exit, save/load IA32_EFER, save the
    ///   preemption timer value;
    /// - entry: IA-32e mode guest, load IA32_EFER.
    ///
    /// Every value includes the CPU's must-be-one bits.
    pub fn controls_for_partition(&self) -> Result<VmxControls, ControlError> {
        let fit = |kind, desired, cap| adjust(desired, cap).map_err(|missing| ControlError { kind, missing });
        let optional = secondary::ENABLE_RDTSCP | secondary::ENABLE_INVPCID | secondary::ENABLE_XSAVES;
        let allowed_optional = optional & (self.secondary >> 32) as u32;
        Ok(VmxControls {
            pin: fit(
                ControlKind::PinBased,
                pin::EXTERNAL_INTERRUPT_EXITING | pin::NMI_EXITING | pin::PREEMPTION_TIMER,
                self.pin_based,
            )?,
            primary: fit(
                ControlKind::Primary,
                primary::HLT_EXITING
                    | primary::MWAIT_EXITING
                    | primary::MONITOR_EXITING
                    | primary::RDPMC_EXITING
                    | primary::CR8_LOAD_EXITING
                    | primary::CR8_STORE_EXITING
                    | primary::USE_IO_BITMAPS
                    | primary::USE_MSR_BITMAPS
                    | primary::ACTIVATE_SECONDARY_CONTROLS,
                self.primary,
            )?,
            secondary: fit(
                ControlKind::Secondary,
                secondary::ENABLE_EPT | secondary::ENABLE_VPID | secondary::WBINVD_EXITING | allowed_optional,
                self.secondary,
            )?,
            exit: fit(
                ControlKind::Exit,
                exit::HOST_ADDRESS_SPACE_SIZE
                    | exit::ACK_INTERRUPT_ON_EXIT
                    | exit::SAVE_EFER
                    | exit::LOAD_EFER
                    | exit::SAVE_PREEMPTION_TIMER,
                self.exit,
            )?,
            entry: fit(ControlKind::Entry, entry::IA32E_MODE_GUEST | entry::LOAD_EFER, self.entry)?,
        })
    }
}

/// Capability MSR values shaped like Bochs 2.7's `corei7_skylake_x` (VMCS revision 0x2b,
/// TRUE controls, pin-based allowed-1 = 0x7f, preemption timer at the TSC rate). For tests
/// and documentation examples; the other values are typical of real parts, not a dump.
pub fn bochs_skylake_msr(msr: u32) -> u64 {
    match msr {
        msr::IA32_VMX_BASIC => 0x00DA_0400_0000_002B,
        msr::IA32_VMX_TRUE_PINBASED_CTLS => 0x0000_007F_0000_0016,
        msr::IA32_VMX_TRUE_PROCBASED_CTLS => 0xFFF9_FFFE_0400_6172,
        msr::IA32_VMX_TRUE_EXIT_CTLS => 0x01FF_FFFF_0003_6DFB,
        msr::IA32_VMX_TRUE_ENTRY_CTLS => 0x0003_FFFF_0000_11FB,
        msr::IA32_VMX_PROCBASED_CTLS2 => 0x0017_32FF_0000_0000,
        msr::IA32_VMX_EPT_VPID_CAP => 0x0000_0F01_0673_4141,
        msr::IA32_VMX_MISC => 0x0000_0000_0000_01C0,
        msr::IA32_VMX_CR0_FIXED0 => 0x8000_0021,
        msr::IA32_VMX_CR0_FIXED1 => 0xFFFF_FFFF,
        msr::IA32_VMX_CR4_FIXED0 => 0x2000,
        msr::IA32_VMX_CR4_FIXED1 => 0x0037_27FF,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::cell::RefCell;

    #[test]
    fn adjust_follows_allowed_zero_and_allowed_one() {
        // Bochs pin-based: must-be-one 0x16, allowed-1 0x7f.
        let cap = 0x0000_007F_0000_0016;
        assert_eq!(adjust(0, cap), Ok(0x16));
        assert_eq!(adjust(pin::PREEMPTION_TIMER | pin::NMI_EXITING, cap), Ok(0x5E));
        assert_eq!(adjust(pin::POSTED_INTERRUPTS | pin::PREEMPTION_TIMER, cap), Err(pin::POSTED_INTERRUPTS));
        assert_eq!(adjust(0xFFFF_FFFF, cap), Err(0xFFFF_FF80));
        assert_eq!(adjust(1, 0), Err(1));
    }

    #[test]
    fn bochs_has_everything_and_gets_the_expected_controls() {
        let caps = VmxCapabilities::from_msrs(bochs_skylake_msr);
        assert_eq!(caps.revision_id(), 0x2B);
        assert_eq!(caps.vmcs_bytes(), 0x400);
        assert_eq!(caps.preemption_timer_shift(), 0);
        assert_eq!(caps.check_requirements(), Ok(()));
        let c = caps.controls_for_partition().unwrap();
        assert_eq!(c.pin, 0x16 | 0x01 | 0x08 | 0x40);
        assert!(c.primary & primary::HLT_EXITING != 0 && c.primary & primary::USE_IO_BITMAPS != 0);
        assert!(c.primary & primary::CR3_LOAD_EXITING == 0, "TRUE controls let CR3 exiting be 0");
        for exiting in [
            primary::MWAIT_EXITING,
            primary::MONITOR_EXITING,
            primary::RDPMC_EXITING,
            primary::CR8_LOAD_EXITING,
            primary::CR8_STORE_EXITING,
        ] {
            assert_ne!(c.primary & exiting, 0, "{exiting:#x}");
        }
        assert_eq!(
            c.secondary,
            secondary::ENABLE_EPT
                | secondary::ENABLE_VPID
                | secondary::WBINVD_EXITING
                | secondary::ENABLE_RDTSCP
                | secondary::ENABLE_INVPCID
                | secondary::ENABLE_XSAVES
        );
        assert_eq!(c.secondary & secondary::UNRESTRICTED_GUEST, 0);
        assert!(c.exit & exit::SAVE_PREEMPTION_TIMER != 0 && c.exit & exit::HOST_ADDRESS_SPACE_SIZE != 0);
        assert_eq!(
            c.entry & (entry::IA32E_MODE_GUEST | entry::LOAD_EFER),
            entry::IA32E_MODE_GUEST | entry::LOAD_EFER
        );
        assert_eq!(caps.fix_cr0(0x8000_0001), 0x8000_0021);
        assert_eq!(caps.fix_cr4(0x20 | 1 << 30), 0x2020);
    }

    #[test]
    fn only_existing_msrs_are_read() {
        // A CPU without TRUE controls and without secondary controls.
        let read = RefCell::new(Vec::new());
        let caps = VmxCapabilities::from_msrs(|m| {
            read.borrow_mut().push(m);
            match m {
                msr::IA32_VMX_BASIC => 0x0018_0400_0000_0001,
                msr::IA32_VMX_PROCBASED_CTLS => 0x7FF9_FFFE_0401_E172,
                msr::IA32_VMX_PINBASED_CTLS => 0x0000_003F_0000_0016,
                _ => 0,
            }
        });
        let read = read.into_inner();
        for absent in [
            msr::IA32_VMX_PROCBASED_CTLS2,
            msr::IA32_VMX_EPT_VPID_CAP,
            msr::IA32_VMX_TRUE_PINBASED_CTLS,
            msr::IA32_VMX_TRUE_PROCBASED_CTLS,
            msr::IA32_VMX_TRUE_EXIT_CTLS,
            msr::IA32_VMX_TRUE_ENTRY_CTLS,
        ] {
            assert!(!read.contains(&absent), "read absent MSR {absent:#x}");
        }
        let missing = caps.check_requirements().unwrap_err();
        for r in [
            Requirement::SecondaryControls,
            Requirement::Ept,
            Requirement::Vpid,
            Requirement::PreemptionTimer,
        ] {
            assert!(missing.contains(r), "{r:?}");
        }
        assert!(!missing.contains(Requirement::IoBitmaps));
        assert!(!missing.contains(Requirement::WriteBackVmcs));
        let text = format!("{missing}");
        assert!(text.contains("EPT, VPID"), "{text}");
        let err = caps.controls_for_partition().unwrap_err();
        assert_eq!(err, ControlError { kind: ControlKind::PinBased, missing: pin::PREEMPTION_TIMER });
        // Non-true primary controls force CR3 load/store exiting on.
        assert_eq!(adjust(0, caps.primary).unwrap() & primary::CR3_LOAD_EXITING, primary::CR3_LOAD_EXITING);
    }

    #[test]
    fn each_missing_ept_capability_is_reported() {
        for (bit, req) in [
            (ept_vpid::WALK_LENGTH_4, Requirement::EptWalk4),
            (ept_vpid::MEMORY_TYPE_WB, Requirement::EptWriteBack),
            (ept_vpid::PAGES_2M, Requirement::Ept2MiBPages),
            (ept_vpid::INVEPT_SINGLE_CONTEXT, Requirement::InveptSingleContext),
            (ept_vpid::INVVPID, Requirement::Invvpid),
        ] {
            let caps = VmxCapabilities::from_msrs(|m| {
                let v = bochs_skylake_msr(m);
                if m == msr::IA32_VMX_EPT_VPID_CAP {
                    v & !bit
                } else {
                    v
                }
            });
            let missing = caps.check_requirements().unwrap_err();
            assert_eq!(missing.iter().collect::<Vec<_>>(), vec![req]);
        }
    }

    #[test]
    fn optional_secondary_controls_are_dropped_when_not_allowed() {
        let caps = VmxCapabilities::from_msrs(|m| match m {
            msr::IA32_VMX_PROCBASED_CTLS2 => {
                ((secondary::ENABLE_EPT | secondary::ENABLE_VPID | secondary::WBINVD_EXITING) as u64) << 32
            }
            _ => bochs_skylake_msr(m),
        });
        let c = caps.controls_for_partition().unwrap();
        assert_eq!(c.secondary, secondary::ENABLE_EPT | secondary::ENABLE_VPID | secondary::WBINVD_EXITING);
        assert!(caps.check_requirements().unwrap_err().contains(Requirement::UnrestrictedGuest));
    }

    #[test]
    fn feature_control_and_cpuid() {
        assert_eq!(feature_control(0x5), FeatureControl::Enabled);
        assert_eq!(feature_control(0x1), FeatureControl::LockedOff);
        assert_eq!(feature_control(0x4), FeatureControl::Unlocked);
        assert!(vmx_supported(1 << 5));
        assert!(!vmx_supported(!(1 << 5)));
    }

    #[test]
    fn probing_asks_cpuid_then_the_msrs() {
        assert_eq!(probe(0, |_| panic!("no MSR without VMX")), Err(VmxUnavailable::NoVmx));
        let locked_off = |m| if m == msr::IA32_FEATURE_CONTROL { 1 } else { bochs_skylake_msr(m) };
        assert_eq!(probe(1 << 5, locked_off), Err(VmxUnavailable::DisabledByFirmware));
        let unlocked = |m| if m == msr::IA32_FEATURE_CONTROL { 0 } else { bochs_skylake_msr(m) };
        assert_eq!(probe(1 << 5, unlocked), Ok(VmxCapabilities::from_msrs(bochs_skylake_msr)));
        let no_ept = |m| if m == msr::IA32_VMX_PROCBASED_CTLS2 { 0 } else { bochs_skylake_msr(m) };
        let refused = probe(1 << 5, no_ept).unwrap_err();
        assert!(matches!(refused, VmxUnavailable::Missing(_)));
        assert!(refused.to_string().starts_with("this CPU lacks VMX features: "), "{refused}");
        assert_eq!(VmxUnavailable::NoVmx.to_string(), "this CPU has no VMX (CPUID.1:ECX.VMX = 0)");
    }
}
