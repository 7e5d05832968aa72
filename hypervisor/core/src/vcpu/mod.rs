//! The arch-neutral VM-exit path. A vendor backend (`crate::vmx::translate` today; an SVM
//! one later, beside it) describes each exit as an [`Exit`]; [`decide`] turns it into the
//! [`Step`] the vCPU's kind calls for; [`after_health`] says what follows a health-monitor
//! decision; the binary's one per-core loop performs the steps. Nothing here reads a
//! register or knows a VMCS field: every function is a pure function of values, tested
//! with synthetic exits.
//!
//! ```
//! use hallows_core::vcpu::{decide, Exit, Kind, Sensitive, Step, Exception};
//! // A real-time partition may not flush the shared cache; Linux's WBINVD is dropped.
//! let wbinvd = Exit::Instruction(Sensitive::Wbinvd);
//! assert!(matches!(decide(Kind::RealTime, &wbinvd, |_| false), Step::Fault(_)));
//! assert_eq!(decide(Kind::Linux, &wbinvd, |_| false), Step::SkipInstruction);
//! // VMCALL is a hypercall for RT partitions, an invalid opcode for Linux.
//! assert_eq!(decide(Kind::RealTime, &Exit::Hypercall, |_| false), Step::Hypercall);
//! assert_eq!(decide(Kind::Linux, &Exit::Hypercall, |_| false), Step::Inject(Exception::InvalidOpcode));
//! ```

pub mod exit;
pub mod modes;

use hallows_abi::health::{Action, EventClass};

use crate::control_regs::CrWriteRequest;
pub use exit::{Exit, IoAccess, IoDirection, PageFault, Sensitive};

/// The kinds of vCPU one loop runs. What differs between them is this policy, not code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A real-time partition on the SDK: everything privileged is refused.
    RealTime,
    /// An unmodified Linux kernel on dedicated cores: the hardware it may touch passes
    /// through, the rest is emulated or answered with the exception real hardware gives.
    Linux,
}

/// An exception the hypervisor makes the guest take.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exception {
    /// #UD: the instruction does not exist (CPUID said so).
    InvalidOpcode,
    /// #GP(0).
    GeneralProtection,
}

impl Exception {
    pub const fn vector(self) -> u8 {
        match self {
            Self::InvalidOpcode => 6,
            Self::GeneralProtection => 13,
        }
    }

    /// Whether the exception pushes an error code.
    pub const fn has_error_code(self) -> bool {
        matches!(self, Self::GeneralProtection)
    }
}

/// What the loop does about an exit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Dispatch the hypercall (`crate::hypercall::dispatch`).
    Hypercall,
    /// Answer CPUID with the kind's view of the host's answer.
    Cpuid {
        leaf: u32,
        subleaf: u32,
    },
    /// Give up the rest of the window (an RT vCPU's HLT: no interrupt would wake it).
    GiveUpWindow,
    /// The window ended: run whoever owns the core now.
    WindowEnd,
    /// End the host interrupt the exit acknowledged (EOI), then resume.
    AcknowledgeInterrupt,
    /// The hypervisor's kick: look at the partition's requests (restart, stop), resume.
    CheckRequests,
    /// Re-enter without touching RIP.
    Resume,
    /// Do nothing, advance RIP.
    SkipInstruction,
    /// Make the guest take an exception (RIP stays on the instruction).
    Inject(Exception),
    /// A control-register write, decided by the kind's rules (`crate::control_regs` for
    /// RT vCPUs, `crate::linux_vcpu::exits` for Linux).
    WriteControl(CrWriteRequest),
    /// The virtual CR8 (RT vCPUs).
    WriteTpr {
        value: u64,
    },
    ReadTpr {
        gpr: u8,
    },
    /// XSETBV, checked against the kind's XCR0 policy.
    Xsetbv {
        xcr: u32,
        value: u64,
    },
    /// The MSR policy of the kind (Linux).
    Rdmsr {
        msr: u32,
    },
    Wrmsr {
        msr: u32,
        value: u64,
    },
    /// A port access for the partition's port bus (Linux).
    Io(IoAccess),
    /// A guest-physical access a device on the partition's MMIO bus claimed.
    Mmio(PageFault),
    /// A health-monitor event of this class.
    Fault(EventClass),
}

impl Step {
    /// For the steps only a Linux vCPU's policies take (MSRs, ports, MMIO devices): the
    /// health class of the same exit on a vCPU without them, as [`decide`] gives it for a
    /// real-time vCPU.
    pub const fn linux_only_class(&self) -> Option<EventClass> {
        match self {
            Step::Rdmsr { .. } | Step::Wrmsr { .. } => Some(EventClass::MsrViolation),
            Step::Io(_) => Some(EventClass::IoViolation),
            Step::Mmio(_) => Some(EventClass::MemoryViolation),
            _ => None,
        }
    }
}

/// What the exit `exit` of a vCPU of kind `kind` leads to. `mmio_claims` says whether a
/// device of the partition's MMIO bus claims a guest-physical address.
#[inline]
pub fn decide(kind: Kind, exit: &Exit, mmio_claims: impl Fn(u64) -> bool) -> Step {
    use EventClass as E;
    use Exception::{GeneralProtection as Gp, InvalidOpcode as Ud};
    use Step::*;
    let linux = kind == Kind::Linux;
    match *exit {
        Exit::Hypercall if linux => Inject(Ud),
        Exit::Hypercall => Hypercall,
        Exit::Cpuid { leaf, subleaf } => Cpuid { leaf, subleaf },
        // Linux's controls do not exit on HLT; if they ever do, it resumes (HLT again).
        Exit::Hlt if linux => Resume,
        Exit::Hlt => GiveUpWindow,
        Exit::WindowEnd => WindowEnd,
        Exit::ExternalInterrupt if linux => Resume,
        Exit::ExternalInterrupt => AcknowledgeInterrupt,
        Exit::Nmi => CheckRequests,
        Exit::Sipi { .. } => Resume,
        Exit::Exception { .. } => Fault(E::UnknownExit),
        Exit::ControlWrite(request) => WriteControl(request),
        Exit::ControlRead { .. } => Fault(E::UnknownExit),
        // Linux owns its real CR8 (no CR8 exiting); an exit would be a control mistake.
        Exit::TprWrite { .. } | Exit::TprRead { .. } if linux => Fault(E::UnknownExit),
        Exit::TprWrite { value } => WriteTpr { value },
        Exit::TprRead { gpr } => ReadTpr { gpr },
        Exit::Xsetbv { xcr, value } => Xsetbv { xcr, value },
        Exit::Rdmsr { msr } if linux => Rdmsr { msr },
        Exit::Wrmsr { msr, value } if linux => Wrmsr { msr, value },
        Exit::Rdmsr { .. } | Exit::Wrmsr { .. } => Fault(E::MsrViolation),
        Exit::Io(access) if linux => Io(access),
        Exit::Io(_) => Fault(E::IoViolation),
        Exit::NestedPageFault(fault) if mmio_claims(fault.gpa) => Mmio(fault),
        Exit::NestedPageFault(_) => Fault(E::MemoryViolation),
        Exit::Instruction(i) if linux => match i {
            // It would flush the LLC real-time partitions share; with write-back memory
            // and no non-coherent DMA Linux does not need it.
            Sensitive::Wbinvd | Sensitive::Invd => SkipInstruction,
            // CPUID hides them: real hardware without them raises #UD.
            Sensitive::Virtualization(_)
            | Sensitive::Getsec
            | Sensitive::Monitor
            | Sensitive::Mwait
            | Sensitive::Encls => Inject(Ud),
            // The PMU is hidden.
            Sensitive::Rdpmc => Inject(Gp),
            _ => Fault(E::UnknownExit),
        },
        // RDTSC exiting is off for RT vCPUs: an exit means the controls are wrong.
        Exit::Instruction(Sensitive::Rdtsc) => Fault(E::UnknownExit),
        Exit::Instruction(_) => Fault(E::ForbiddenInstruction),
        Exit::TripleFault => Fault(E::TripleFault),
        Exit::EntryFailed { .. } | Exit::Unexpected { .. } => Fault(E::UnknownExit),
    }
}

/// What the loop does once the health monitor decided about an event of `class`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Followup {
    /// Step over the offending instruction and go on.
    Continue,
    /// Go on after making the guest take this exception (Linux: what hardware would do).
    ContinueWith(Exception),
    /// Stop the partition (every vCPU of it).
    Stop,
    /// Restart the partition with a fresh image.
    Restart,
    /// Power the machine off.
    HaltSystem,
}

/// The action the partition's table chose for an event (`chosen`) as it can be carried
/// out for a partition of `kind` with `vcpus` vCPUs, and what follows it. Only events
/// that can be stepped over continue under `log`; the others stop the partition (going
/// on would re-execute the same fault forever). RT partitions with more vCPUs than their
/// cores can agree on (`group_restart::MAX_VCPUS`) halt instead of restarting; an RT
/// partition with several vCPUs restarts whole (`group_restart`), and a Linux partition
/// restarts whole, however many vCPUs it has: every vCPU leaves the guest and the boot
/// vCPU boots the kernel kept from boot again (`linux_vcpu::restart`).
pub fn after_health(kind: Kind, vcpus: u32, class: EventClass, chosen: Action) -> (Action, Followup) {
    use EventClass as E;
    let action = match chosen {
        Action::RestartPartition if kind == Kind::RealTime && vcpus > crate::group_restart::MAX_VCPUS => {
            Action::HaltPartition
        }
        other => other,
    };
    let followup = match action {
        Action::Log => match kind {
            Kind::RealTime
                if matches!(class, E::IoViolation | E::MsrViolation | E::DeadlineMiss | E::Panic) =>
            {
                Followup::Continue
            }
            Kind::Linux if matches!(class, E::IoViolation | E::MsrViolation) => {
                Followup::ContinueWith(Exception::GeneralProtection)
            }
            _ => Followup::Stop,
        },
        Action::HaltPartition => Followup::Stop,
        Action::RestartPartition => Followup::Restart,
        Action::HaltSystem => Followup::HaltSystem,
    };
    (action, followup)
}

#[cfg(test)]
mod tests;
