//! VMX exit decoding: the exit reasons (SDM Vol. 3, appendix C), the exit-information
//! fields the binary reads ([`ExitInfo`]) and the qualifications of I/O, EPT-violation and
//! control-register exits. `crate::vmx::translate` turns them into an arch-neutral
//! `crate::vcpu::Exit`; what an exit leads to is `crate::vcpu::decide`.
//!
//! ```
//! use hallows_core::vmx::exit::{EptViolationQualification, ExitInfo, ExitReason};
//! // A write to a read-only page (qualification: write access, page readable).
//! let ept = ExitInfo { reason: 48, qualification: 0b1010, guest_physical: 0xC000_0008, ..ExitInfo::default() };
//! assert_eq!(ept.basic_reason(), ExitReason::EptViolation);
//! let q = EptViolationQualification::decode(ept.qualification);
//! assert!(q.write && q.readable && !q.writable);
//! ```

/// Basic exit reasons (SDM Vol. 3, Appendix C).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitReason {
    ExceptionOrNmi,
    ExternalInterrupt,
    TripleFault,
    Init,
    Sipi,
    IoSmi,
    OtherSmi,
    InterruptWindow,
    NmiWindow,
    TaskSwitch,
    Cpuid,
    Getsec,
    Hlt,
    Invd,
    Invlpg,
    Rdpmc,
    Rdtsc,
    Rsm,
    Vmcall,
    /// VMCLEAR, VMLAUNCH, VMPTRLD, VMPTRST, VMREAD, VMRESUME, VMWRITE, VMXOFF, VMXON,
    /// INVEPT, INVVPID, VMFUNC: the basic reason tells which.
    VmxInstruction(u16),
    CrAccess,
    MovDr,
    Io,
    Rdmsr,
    Wrmsr,
    /// VM-entry failure: invalid guest state (33).
    InvalidGuestState,
    /// VM-entry failure: MSR loading (34).
    MsrLoading,
    Mwait,
    MonitorTrapFlag,
    Monitor,
    Pause,
    /// VM-entry failure: machine-check event (41).
    MachineCheck,
    TprBelowThreshold,
    ApicAccess,
    VirtualizedEoi,
    GdtrIdtrAccess,
    LdtrTrAccess,
    EptViolation,
    EptMisconfig,
    Rdtscp,
    PreemptionTimer,
    Wbinvd,
    Xsetbv,
    ApicWrite,
    Rdrand,
    Invpcid,
    Encls,
    Rdseed,
    PmlFull,
    Xsaves,
    Xrstors,
    /// Any number this module does not name.
    Other(u16),
}

impl ExitReason {
    /// Decodes a basic exit reason (bits 15:0 of the exit-reason field).
    pub const fn from_basic(n: u16) -> Self {
        match n {
            0 => Self::ExceptionOrNmi,
            1 => Self::ExternalInterrupt,
            2 => Self::TripleFault,
            3 => Self::Init,
            4 => Self::Sipi,
            5 => Self::IoSmi,
            6 => Self::OtherSmi,
            7 => Self::InterruptWindow,
            8 => Self::NmiWindow,
            9 => Self::TaskSwitch,
            10 => Self::Cpuid,
            11 => Self::Getsec,
            12 => Self::Hlt,
            13 => Self::Invd,
            14 => Self::Invlpg,
            15 => Self::Rdpmc,
            16 => Self::Rdtsc,
            17 => Self::Rsm,
            18 => Self::Vmcall,
            19..=27 | 50 | 53 | 59 => Self::VmxInstruction(n),
            28 => Self::CrAccess,
            29 => Self::MovDr,
            30 => Self::Io,
            31 => Self::Rdmsr,
            32 => Self::Wrmsr,
            33 => Self::InvalidGuestState,
            34 => Self::MsrLoading,
            36 => Self::Mwait,
            37 => Self::MonitorTrapFlag,
            39 => Self::Monitor,
            40 => Self::Pause,
            41 => Self::MachineCheck,
            43 => Self::TprBelowThreshold,
            44 => Self::ApicAccess,
            45 => Self::VirtualizedEoi,
            46 => Self::GdtrIdtrAccess,
            47 => Self::LdtrTrAccess,
            48 => Self::EptViolation,
            49 => Self::EptMisconfig,
            51 => Self::Rdtscp,
            52 => Self::PreemptionTimer,
            54 => Self::Wbinvd,
            55 => Self::Xsetbv,
            56 => Self::ApicWrite,
            57 => Self::Rdrand,
            58 => Self::Invpcid,
            60 => Self::Encls,
            61 => Self::Rdseed,
            62 => Self::PmlFull,
            63 => Self::Xsaves,
            64 => Self::Xrstors,
            _ => Self::Other(n),
        }
    }

    /// A short name for console lines.
    pub const fn name(self) -> &'static str {
        match self {
            Self::ExceptionOrNmi => "exception or NMI",
            Self::ExternalInterrupt => "external interrupt",
            Self::TripleFault => "triple fault",
            Self::Init => "INIT signal",
            Self::Sipi => "start-up IPI",
            Self::IoSmi => "I/O SMI",
            Self::OtherSmi => "SMI",
            Self::InterruptWindow => "interrupt window",
            Self::NmiWindow => "NMI window",
            Self::TaskSwitch => "task switch",
            Self::Cpuid => "CPUID",
            Self::Getsec => "GETSEC",
            Self::Hlt => "HLT",
            Self::Invd => "INVD",
            Self::Invlpg => "INVLPG",
            Self::Rdpmc => "RDPMC",
            Self::Rdtsc => "RDTSC",
            Self::Rsm => "RSM",
            Self::Vmcall => "VMCALL",
            Self::VmxInstruction(n) => match n {
                19 => "VMCLEAR",
                20 => "VMLAUNCH",
                21 => "VMPTRLD",
                22 => "VMPTRST",
                23 => "VMREAD",
                24 => "VMRESUME",
                25 => "VMWRITE",
                26 => "VMXOFF",
                27 => "VMXON",
                50 => "INVEPT",
                53 => "INVVPID",
                59 => "VMFUNC",
                _ => "VMX instruction",
            },
            Self::CrAccess => "control-register access",
            Self::MovDr => "MOV DR",
            Self::Io => "I/O instruction",
            Self::Rdmsr => "RDMSR",
            Self::Wrmsr => "WRMSR",
            Self::InvalidGuestState => "VM entry failure: invalid guest state",
            Self::MsrLoading => "VM entry failure: MSR loading",
            Self::Mwait => "MWAIT",
            Self::MonitorTrapFlag => "monitor trap flag",
            Self::Monitor => "MONITOR",
            Self::Pause => "PAUSE",
            Self::MachineCheck => "VM entry failure: machine-check event",
            Self::TprBelowThreshold => "TPR below threshold",
            Self::ApicAccess => "APIC access",
            Self::VirtualizedEoi => "virtualized EOI",
            Self::GdtrIdtrAccess => "GDTR/IDTR access",
            Self::LdtrTrAccess => "LDTR/TR access",
            Self::EptViolation => "EPT violation",
            Self::EptMisconfig => "EPT misconfiguration",
            Self::Rdtscp => "RDTSCP",
            Self::PreemptionTimer => "VMX-preemption timer expired",
            Self::Wbinvd => "WBINVD",
            Self::Xsetbv => "XSETBV",
            Self::ApicWrite => "APIC write",
            Self::Rdrand => "RDRAND",
            Self::Invpcid => "INVPCID",
            Self::Encls => "ENCLS",
            Self::Rdseed => "RDSEED",
            Self::PmlFull => "page-modification log full",
            Self::Xsaves => "XSAVES",
            Self::Xrstors => "XRSTORS",
            Self::Other(_) => "unknown exit reason",
        }
    }
}

/// Exit-reason field bit 31: the exit is a VM-entry failure.
pub const ENTRY_FAILURE: u32 = 1 << 31;

/// The exit-information fields the classifier and the descriptions use. The binary fills
/// it with `VMREAD`s (and `rcx` from the saved guest registers); fields an exit does not
/// define may hold anything.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExitInfo {
    /// The full exit-reason field (basic reason in bits 15:0, entry failure in bit 31).
    pub reason: u32,
    pub qualification: u64,
    pub guest_rip: u64,
    /// Guest-physical address (EPT violations and misconfigurations).
    pub guest_physical: u64,
    /// Guest-linear address (EPT violations when qualification bit 7 is set).
    pub guest_linear: u64,
    /// VM-exit interruption information (exceptions, NMIs, external interrupts).
    pub interruption_info: u32,
    pub instruction_len: u32,
    /// Guest RCX at the exit (the MSR number of RDMSR/WRMSR).
    pub rcx: u64,
}

/// Direction of an I/O instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IoDirection {
    In,
    Out,
}

/// The exit qualification of an I/O instruction exit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IoQualification {
    pub port: u16,
    /// Access size in bytes: 1, 2 or 4.
    pub size: u8,
    pub direction: IoDirection,
    /// INS/OUTS.
    pub string: bool,
    /// REP prefix.
    pub rep: bool,
    /// The port came from an immediate operand (otherwise from DX).
    pub immediate: bool,
}

impl IoQualification {
    /// Decodes the qualification. Size encodings other than 0, 1, 3 are reserved; they
    /// decode as 4 bytes (the widest access) so a checker errs on the side of refusing.
    pub const fn decode(q: u64) -> Self {
        IoQualification {
            size: match q & 7 {
                0 => 1,
                1 => 2,
                _ => 4,
            },
            direction: if q & 8 != 0 { IoDirection::In } else { IoDirection::Out },
            string: q & 0x10 != 0,
            rep: q & 0x20 != 0,
            immediate: q & 0x40 != 0,
            port: (q >> 16) as u16,
        }
    }
}

/// The exit qualification of an EPT violation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EptViolationQualification {
    /// The access was a data read.
    pub read: bool,
    /// The access was a data write.
    pub write: bool,
    /// The access was an instruction fetch.
    pub fetch: bool,
    /// The page was readable (the rights present in the EPT entry).
    pub readable: bool,
    pub writable: bool,
    pub executable: bool,
    /// The guest-linear-address field is valid.
    pub linear_valid: bool,
    /// With `linear_valid`: the access was to the translated address (not to a guest
    /// paging structure).
    pub to_translated_address: bool,
    /// NMI unblocking due to IRET.
    pub nmi_unblocking: bool,
}

impl EptViolationQualification {
    pub const fn decode(q: u64) -> Self {
        EptViolationQualification {
            read: q & 1 != 0,
            write: q & 2 != 0,
            fetch: q & 4 != 0,
            readable: q & 8 != 0,
            writable: q & 0x10 != 0,
            executable: q & 0x20 != 0,
            linear_valid: q & 0x80 != 0,
            to_translated_address: q & 0x100 != 0,
            nmi_unblocking: q & 0x1000 != 0,
        }
    }

    /// Whether the page was mapped at all (any right present).
    pub const fn page_present(&self) -> bool {
        self.readable || self.writable || self.executable
    }
}

/// How a control-register access exit's qualification decodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CrAccessQualification {
    pub cr: u8,
    /// 0 MOV to CR, 1 MOV from CR, 2 CLTS, 3 LMSW.
    pub access_type: u8,
    /// General-purpose register number (0 = RAX ... 15 = R15) for MOV.
    pub gpr: u8,
}

impl CrAccessQualification {
    pub const fn decode(q: u64) -> Self {
        CrAccessQualification {
            cr: (q & 0xF) as u8,
            access_type: ((q >> 4) & 3) as u8,
            gpr: ((q >> 8) & 0xF) as u8,
        }
    }
}

/// Type of an event in the interruption-information field (bits 10:8).
pub const INTERRUPTION_TYPE_NMI: u32 = 2;

impl ExitInfo {
    /// The decoded basic reason.
    pub fn basic_reason(&self) -> ExitReason {
        ExitReason::from_basic(self.reason as u16)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hypercall::GuestRegs;
    use crate::vmx::translate::translate;

    fn describe(info: ExitInfo) -> alloc::string::String {
        format!("{}", translate(&info, &GuestRegs::default(), || 0).at(info.guest_rip))
    }

    fn exit(reason: u32) -> ExitInfo {
        ExitInfo { reason, guest_rip: 0x10_0000, ..ExitInfo::default() }
    }

    #[test]
    fn reason_numbers_decode() {
        assert_eq!(ExitReason::from_basic(0), ExitReason::ExceptionOrNmi);
        assert_eq!(ExitReason::from_basic(18), ExitReason::Vmcall);
        for n in (19..=27).chain([50, 53, 59]) {
            assert_eq!(ExitReason::from_basic(n), ExitReason::VmxInstruction(n));
            assert_ne!(ExitReason::from_basic(n).name(), "VMX instruction");
        }
        assert_eq!(ExitReason::from_basic(30), ExitReason::Io);
        assert_eq!(ExitReason::from_basic(48), ExitReason::EptViolation);
        assert_eq!(ExitReason::from_basic(49), ExitReason::EptMisconfig);
        assert_eq!(ExitReason::from_basic(52), ExitReason::PreemptionTimer);
        assert_eq!(ExitReason::from_basic(55), ExitReason::Xsetbv);
        assert_eq!(ExitReason::from_basic(35), ExitReason::Other(35));
        assert_eq!(ExitReason::from_basic(0xFFFF), ExitReason::Other(0xFFFF));
    }

    #[test]
    fn io_qualification() {
        // out dx, al to 0x3f8
        let q = IoQualification::decode(0x03F8_0000);
        assert_eq!(
            q,
            IoQualification {
                port: 0x3F8,
                size: 1,
                direction: IoDirection::Out,
                string: false,
                rep: false,
                immediate: false
            }
        );
        // rep insw from port 0x1f0
        let q = IoQualification::decode(0x01F0_0000 | 0x20 | 0x10 | 0x08 | 1);
        assert_eq!((q.port, q.size, q.direction, q.string, q.rep), (0x1F0, 2, IoDirection::In, true, true));
        // in eax, 0x80 (immediate)
        let q = IoQualification::decode(0x0080_0000 | 0x40 | 0x08 | 3);
        assert_eq!((q.port, q.size, q.immediate), (0x80, 4, true));
        let text = describe(ExitInfo { qualification: 0x0080_0000, ..exit(30) });
        assert_eq!(text, "I/O violation: out 1 byte to port 0x80 at RIP 0x100000");
        let text = describe(ExitInfo { qualification: 0x01F0_0039, ..exit(30) });
        assert_eq!(text, "I/O violation: rep ins 2 bytes from port 0x1f0 at RIP 0x100000");
    }

    #[test]
    fn ept_violation_qualification() {
        let q = EptViolationQualification::decode(0x1 | 0x8 | 0x20 | 0x80 | 0x100);
        assert!(q.read && !q.write && !q.fetch && q.readable && !q.writable && q.executable);
        assert!(q.linear_valid && q.to_translated_address && !q.nmi_unblocking);
        let unmapped = ExitInfo { qualification: 0x4 | 0x80, guest_physical: 0x4000_0000, ..exit(48) };
        assert_eq!(
            describe(unmapped),
            "EPT violation: instruction fetch at GPA 0x40000000 (not mapped) at RIP 0x100000"
        );
    }
}
