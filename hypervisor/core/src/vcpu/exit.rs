//! What a VM exit *is*, whatever the vendor: the backend (`crate::vmx::translate` today,
//! an SVM one later) reads its exit fields and the guest registers and describes the exit
//! with these values. Everything after that (the decision, the health report text) is the
//! same for every vendor.

use core::fmt;

use crate::control_regs::CrWriteRequest;

/// Direction of a port access.
pub use crate::vmx::exit::IoDirection;

/// A VM exit, arch-neutral.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// The guest called the hypervisor (VMCALL; VMMCALL on AMD).
    Hypercall,
    /// CPUID with EAX = `leaf`, ECX = `subleaf`.
    Cpuid { leaf: u32, subleaf: u32 },
    /// HLT.
    Hlt,
    /// The partition's time slice ran out (the preemption timer).
    WindowEnd,
    /// A host interrupt arrived while the guest ran (acknowledged by the exit).
    ExternalInterrupt,
    /// An NMI arrived: the hypervisor's cross-core kick.
    Nmi,
    /// A start-up IPI for a vCPU waiting for one.
    Sipi { vector: u8 },
    /// An exception the guest raised that the hypervisor intercepts.
    Exception { vector: u8 },
    /// MOV to CR0/CR4, CLTS or LMSW, with the value the guest asked for.
    ControlWrite(CrWriteRequest),
    /// MOV from a control register other than CR8 (the controls never ask for it).
    ControlRead { cr: u8 },
    /// MOV to CR8 with the source's value.
    TprWrite { value: u64 },
    /// MOV from CR8 into general-purpose register `gpr` (0 = RAX ... 15 = R15).
    TprRead { gpr: u8 },
    /// XSETBV: XCR number `xcr` (ECX), value EDX:EAX.
    Xsetbv { xcr: u32, value: u64 },
    /// RDMSR of `msr` (ECX).
    Rdmsr { msr: u32 },
    /// WRMSR of `value` (EDX:EAX) to `msr` (ECX).
    Wrmsr { msr: u32, value: u64 },
    /// An IN/OUT/INS/OUTS.
    Io(IoAccess),
    /// A guest-physical access the nested page tables (EPT/NPT) do not allow.
    NestedPageFault(PageFault),
    /// An instruction a partition may not execute, or that the hypervisor answers itself.
    Instruction(Sensitive),
    /// The guest triple-faulted (shutdown).
    TripleFault,
    /// The VM entry itself failed (`code`: the vendor's exit code).
    EntryFailed { code: u16 },
    /// An exit the controls never ask for (`code`: the vendor's exit code, `name` its name).
    Unexpected { code: u16, name: &'static str },
}

/// A port access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IoAccess {
    pub port: u16,
    /// 1, 2 or 4 bytes.
    pub size: u8,
    pub direction: IoDirection,
    /// INS/OUTS.
    pub string: bool,
    /// With a REP prefix.
    pub rep: bool,
}

impl From<&crate::vmx::exit::IoQualification> for IoAccess {
    fn from(q: &crate::vmx::exit::IoQualification) -> Self {
        IoAccess { port: q.port, size: q.size, direction: q.direction, string: q.string, rep: q.rep }
    }
}

impl From<&IoAccess> for IoAccess {
    fn from(q: &IoAccess) -> Self {
        *q
    }
}

/// A nested-page-table fault: what was tried at `gpa` and what the page allowed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PageFault {
    pub gpa: u64,
    pub read: bool,
    pub write: bool,
    pub fetch: bool,
    /// The rights of the page (all false: not mapped).
    pub readable: bool,
    pub writable: bool,
    pub executable: bool,
}

/// Instructions that exit on purpose.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sensitive {
    Wbinvd,
    Invd,
    Monitor,
    Mwait,
    Rdpmc,
    Rdtsc,
    Rdtscp,
    /// A VMX or SVM instruction.
    Virtualization(&'static str),
    Getsec,
    Encls,
    Rsm,
    MovDr,
    Rdrand,
    Rdseed,
    Invpcid,
    Invlpg,
    Xsaves,
    Xrstors,
    /// LGDT/SGDT/LIDT/SIDT/LLDT/SLDT/LTR/STR.
    DescriptorTable,
}

impl Sensitive {
    pub const fn name(self) -> &'static str {
        match self {
            Self::Wbinvd => "WBINVD",
            Self::Invd => "INVD",
            Self::Monitor => "MONITOR",
            Self::Mwait => "MWAIT",
            Self::Rdpmc => "RDPMC",
            Self::Rdtsc => "RDTSC",
            Self::Rdtscp => "RDTSCP",
            Self::Virtualization(name) => name,
            Self::Getsec => "GETSEC",
            Self::Encls => "ENCLS",
            Self::Rsm => "RSM",
            Self::MovDr => "MOV DR",
            Self::Rdrand => "RDRAND",
            Self::Rdseed => "RDSEED",
            Self::Invpcid => "INVPCID",
            Self::Invlpg => "INVLPG",
            Self::Xsaves => "XSAVES",
            Self::Xrstors => "XRSTORS",
            Self::DescriptorTable => "descriptor-table access",
        }
    }
}

impl PageFault {
    /// What was tried, for messages: "write", "read", "instruction fetch".
    pub const fn access(&self) -> &'static str {
        if self.fetch {
            "instruction fetch"
        } else if self.write {
            "write"
        } else {
            "read"
        }
    }

    pub const fn mapped(&self) -> bool {
        self.readable || self.writable || self.executable
    }
}

impl Exit {
    /// The console text of this exit at guest RIP `rip`, as health reports print it.
    pub fn at(&self, rip: u64) -> Described<'_> {
        Described { exit: self, rip }
    }
}

/// Display adapter returned by [`Exit::at`].
pub struct Described<'a> {
    exit: &'a Exit,
    rip: u64,
}

impl fmt::Display for Described<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rip = self.rip;
        match *self.exit {
            Exit::NestedPageFault(p) => {
                write!(f, "EPT violation: {} at GPA {:#x} (", p.access(), p.gpa)?;
                if p.mapped() {
                    let r = |b: bool, c: char| if b { c } else { '-' };
                    write!(
                        f,
                        "page is {}{}{})",
                        r(p.readable, 'R'),
                        r(p.writable, 'W'),
                        r(p.executable, 'X')
                    )?;
                } else {
                    f.write_str("not mapped)")?;
                }
                write!(f, " at RIP {rip:#x}")
            }
            Exit::Io(q) => {
                let (verb, prep) = match q.direction {
                    IoDirection::In => ("in", "from"),
                    IoDirection::Out => ("out", "to"),
                };
                let s = if q.string { "s" } else { "" };
                let rep = if q.rep { "rep " } else { "" };
                let plural = if q.size == 1 { "" } else { "s" };
                write!(
                    f,
                    "I/O violation: {rep}{verb}{s} {} byte{plural} {prep} port {:#x} at RIP {rip:#x}",
                    q.size, q.port
                )
            }
            Exit::Rdmsr { msr } => write!(f, "MSR violation: RDMSR of MSR {msr:#x} at RIP {rip:#x}"),
            Exit::Wrmsr { msr, .. } => write!(f, "MSR violation: WRMSR of MSR {msr:#x} at RIP {rip:#x}"),
            Exit::ControlWrite(CrWriteRequest::Mov { cr, .. }) => {
                write!(f, "forbidden write to CR{cr} at RIP {rip:#x}")
            }
            Exit::ControlWrite(CrWriteRequest::Clts) => write!(f, "forbidden CLTS on CR0 at RIP {rip:#x}"),
            Exit::ControlWrite(CrWriteRequest::Lmsw { .. }) => {
                write!(f, "forbidden LMSW on CR0 at RIP {rip:#x}")
            }
            Exit::ControlRead { cr } => write!(f, "forbidden read of CR{cr} at RIP {rip:#x}"),
            Exit::TprWrite { .. } => write!(f, "forbidden write to CR8 at RIP {rip:#x}"),
            Exit::TprRead { .. } => write!(f, "forbidden read of CR8 at RIP {rip:#x}"),
            Exit::TripleFault => write!(f, "triple fault at RIP {rip:#x}"),
            Exit::Exception { vector } => write!(f, "unexpected exception vector {vector} at RIP {rip:#x}"),
            Exit::Instruction(i) => write!(f, "forbidden instruction {} at RIP {rip:#x}", i.name()),
            Exit::EntryFailed { code } => write!(f, "VM entry failed (reason {code})"),
            Exit::Unexpected { code, name } => {
                write!(f, "unexpected VM exit {name} ({code}) at RIP {rip:#x}")
            }
            Exit::Hypercall => write!(f, "hypercall at RIP {rip:#x}"),
            Exit::Cpuid { leaf, subleaf } => write!(f, "CPUID {leaf:#x}/{subleaf:#x} at RIP {rip:#x}"),
            Exit::Hlt => write!(f, "HLT at RIP {rip:#x}"),
            Exit::WindowEnd => write!(f, "end of window at RIP {rip:#x}"),
            Exit::ExternalInterrupt => write!(f, "external interrupt at RIP {rip:#x}"),
            Exit::Nmi => write!(f, "NMI at RIP {rip:#x}"),
            Exit::Sipi { vector } => write!(f, "SIPI vector {vector:#x} at RIP {rip:#x}"),
            Exit::Xsetbv { xcr, value } => write!(f, "XSETBV XCR{xcr} <- {value:#x} at RIP {rip:#x}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn descriptions_name_what_and_where() {
        let npf = Exit::NestedPageFault(PageFault {
            gpa: 0x5000,
            write: true,
            readable: true,
            ..PageFault::default()
        });
        assert_eq!(
            npf.at(0x1234).to_string(),
            "EPT violation: write at GPA 0x5000 (page is R--) at RIP 0x1234"
        );
        let unmapped = Exit::NestedPageFault(PageFault { gpa: 0x9000, read: true, ..PageFault::default() });
        assert_eq!(unmapped.at(1).to_string(), "EPT violation: read at GPA 0x9000 (not mapped) at RIP 0x1");
        let io = Exit::Io(IoAccess {
            port: 0x80,
            size: 1,
            direction: IoDirection::Out,
            string: false,
            rep: false,
        });
        assert_eq!(io.at(2).to_string(), "I/O violation: out 1 byte to port 0x80 at RIP 0x2");
        let ins =
            Exit::Io(IoAccess { port: 0x60, size: 2, direction: IoDirection::In, string: true, rep: true });
        assert_eq!(ins.at(2).to_string(), "I/O violation: rep ins 2 bytes from port 0x60 at RIP 0x2");
        assert_eq!(
            Exit::Wrmsr { msr: 0x3A, value: 0 }.at(3).to_string(),
            "MSR violation: WRMSR of MSR 0x3a at RIP 0x3"
        );
        assert_eq!(
            Exit::Instruction(Sensitive::Wbinvd).at(4).to_string(),
            "forbidden instruction WBINVD at RIP 0x4"
        );
        assert_eq!(
            Exit::ControlWrite(CrWriteRequest::Mov { cr: 4, value: 0 }).at(5).to_string(),
            "forbidden write to CR4 at RIP 0x5"
        );
    }
}
