//! VMX exits into arch-neutral [`Exit`]s: the exit reason, qualification and
//! interruption information (SDM Vol. 3C, chapter 28 and appendix C) plus the guest
//! registers an instruction names. An SVM backend has its own `translate` beside this one;
//! nothing after it knows which vendor ran the guest.

use crate::control_regs::CrWriteRequest;
use crate::hypercall::GuestRegs;
use crate::vcpu::{Exit, IoAccess, PageFault, Sensitive};
use crate::vmx::exit::{
    CrAccessQualification, EptViolationQualification, ExitInfo, ExitReason, IoQualification, ENTRY_FAILURE,
    INTERRUPTION_TYPE_NMI,
};

/// Interruption type "hardware exception" (bits 10:8 of the interruption information).
const INTERRUPTION_TYPE_HARDWARE_EXCEPTION: u32 = 3;

/// Describes the VMX exit `info` of a vCPU whose registers are `regs`; `rsp` reads the
/// guest's RSP (it lives in the VMCS) when an instruction names it.
pub fn translate(info: &ExitInfo, regs: &GuestRegs, rsp: impl FnOnce() -> u64) -> Exit {
    let reason = info.basic_reason();
    if info.reason & ENTRY_FAILURE != 0 {
        return Exit::EntryFailed { code: info.reason as u16 };
    }
    let low = |r: u64| r & 0xFFFF_FFFF;
    let edx_eax = (low(regs.rdx) << 32) | low(regs.rax);
    match reason {
        ExitReason::Vmcall => Exit::Hypercall,
        ExitReason::Cpuid => Exit::Cpuid { leaf: regs.rax as u32, subleaf: regs.rcx as u32 },
        ExitReason::Hlt => Exit::Hlt,
        ExitReason::PreemptionTimer => Exit::WindowEnd,
        ExitReason::ExternalInterrupt => Exit::ExternalInterrupt,
        ExitReason::ExceptionOrNmi => match (info.interruption_info >> 8) & 7 {
            INTERRUPTION_TYPE_NMI => Exit::Nmi,
            _ => Exit::Exception { vector: info.interruption_info as u8 },
        },
        ExitReason::Sipi => Exit::Sipi { vector: info.qualification as u8 },
        ExitReason::CrAccess => {
            let q = CrAccessQualification::decode(info.qualification);
            match (q.cr, q.access_type) {
                (8, 0) => Exit::TprWrite { value: regs.get(q.gpr, if q.gpr == 4 { rsp() } else { 0 }) },
                (8, 1) => Exit::TprRead { gpr: q.gpr },
                (cr, 0) => Exit::ControlWrite(CrWriteRequest::Mov {
                    cr,
                    value: regs.get(q.gpr, if q.gpr == 4 { rsp() } else { 0 }),
                }),
                (_, 2) => Exit::ControlWrite(CrWriteRequest::Clts),
                (_, 3) => {
                    Exit::ControlWrite(CrWriteRequest::Lmsw { source: (info.qualification >> 16) as u16 })
                }
                (cr, _) => Exit::ControlRead { cr },
            }
        }
        ExitReason::Xsetbv => Exit::Xsetbv { xcr: regs.rcx as u32, value: edx_eax },
        ExitReason::Rdmsr => Exit::Rdmsr { msr: regs.rcx as u32 },
        ExitReason::Wrmsr => Exit::Wrmsr { msr: regs.rcx as u32, value: edx_eax },
        ExitReason::Io => {
            let q = IoQualification::decode(info.qualification);
            Exit::Io(IoAccess {
                port: q.port,
                size: q.size,
                direction: q.direction,
                string: q.string,
                rep: q.rep,
            })
        }
        ExitReason::EptViolation => {
            let q = EptViolationQualification::decode(info.qualification);
            Exit::NestedPageFault(PageFault {
                gpa: info.guest_physical,
                read: q.read,
                write: q.write,
                fetch: q.fetch,
                readable: q.readable,
                writable: q.writable,
                executable: q.executable,
            })
        }
        ExitReason::TripleFault => Exit::TripleFault,
        ExitReason::Wbinvd => Exit::Instruction(Sensitive::Wbinvd),
        ExitReason::Invd => Exit::Instruction(Sensitive::Invd),
        ExitReason::Monitor => Exit::Instruction(Sensitive::Monitor),
        ExitReason::Mwait => Exit::Instruction(Sensitive::Mwait),
        ExitReason::Rdpmc => Exit::Instruction(Sensitive::Rdpmc),
        ExitReason::Rdtsc => Exit::Instruction(Sensitive::Rdtsc),
        ExitReason::Rdtscp => Exit::Instruction(Sensitive::Rdtscp),
        ExitReason::VmxInstruction(_) => Exit::Instruction(Sensitive::Virtualization(reason.name())),
        ExitReason::Getsec => Exit::Instruction(Sensitive::Getsec),
        ExitReason::Encls => Exit::Instruction(Sensitive::Encls),
        ExitReason::Rsm => Exit::Instruction(Sensitive::Rsm),
        ExitReason::MovDr => Exit::Instruction(Sensitive::MovDr),
        ExitReason::Rdrand => Exit::Instruction(Sensitive::Rdrand),
        ExitReason::Rdseed => Exit::Instruction(Sensitive::Rdseed),
        ExitReason::Invpcid => Exit::Instruction(Sensitive::Invpcid),
        ExitReason::Invlpg => Exit::Instruction(Sensitive::Invlpg),
        ExitReason::Xsaves => Exit::Instruction(Sensitive::Xsaves),
        ExitReason::Xrstors => Exit::Instruction(Sensitive::Xrstors),
        ExitReason::GdtrIdtrAccess | ExitReason::LdtrTrAccess => {
            Exit::Instruction(Sensitive::DescriptorTable)
        }
        other => Exit::Unexpected { code: info.reason as u16, name: other.name() },
    }
}

/// The VM-entry interruption-information value that injects `exception` (valid, type
/// hardware exception, error-code flag when it pushes one).
pub const fn injection(exception: crate::vcpu::Exception) -> u32 {
    let error_code = if exception.has_error_code() { 1 << 11 } else { 0 };
    (1 << 31) | error_code | INTERRUPTION_TYPE_HARDWARE_EXCEPTION << 8 | exception.vector() as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vcpu::{Exception, IoDirection};

    fn exit(reason: u32, qualification: u64) -> ExitInfo {
        ExitInfo { reason, qualification, guest_rip: 0x10_0000, ..ExitInfo::default() }
    }

    #[test]
    fn instructions_carry_their_operands() {
        let regs = GuestRegs {
            rax: 0xFFFF_FFFF_0000_0007,
            rcx: 0x1_0000_0000,
            rdx: 0x2,
            r9: 0x55,
            ..GuestRegs::default()
        };
        assert_eq!(translate(&exit(10, 0), &regs, || 0), Exit::Cpuid { leaf: 7, subleaf: 0 });
        assert_eq!(translate(&exit(55, 0), &regs, || 0), Exit::Xsetbv { xcr: 0, value: 0x2_0000_0007 });
        assert_eq!(translate(&exit(32, 0), &regs, || 0), Exit::Wrmsr { msr: 0, value: 0x2_0000_0007 });
        // MOV CR4, R9 (qualification: CR 4, type 0, register 9).
        assert_eq!(
            translate(&exit(28, 4 | 9 << 8), &regs, || 0),
            Exit::ControlWrite(CrWriteRequest::Mov { cr: 4, value: 0x55 })
        );
        // MOV CR0, RSP reads RSP from the VMCS; other registers do not.
        assert_eq!(
            translate(&exit(28, 4 << 8), &regs, || 0x7000),
            Exit::ControlWrite(CrWriteRequest::Mov { cr: 0, value: 0x7000 })
        );
        assert_eq!(
            translate(&exit(28, 8 | 9 << 8), &regs, || panic!("RSP not needed")),
            Exit::TprWrite { value: 0x55 }
        );
        assert_eq!(translate(&exit(28, 8 | 1 << 4 | 3 << 8), &regs, || 0), Exit::TprRead { gpr: 3 });
        assert_eq!(translate(&exit(28, 2 << 4), &regs, || 0), Exit::ControlWrite(CrWriteRequest::Clts));
        assert_eq!(
            translate(&exit(28, 3 << 4 | 0xB << 16), &regs, || 0),
            Exit::ControlWrite(CrWriteRequest::Lmsw { source: 0xB })
        );
        assert_eq!(translate(&exit(28, 3 | 1 << 4), &regs, || 0), Exit::ControlRead { cr: 3 });
    }

    #[test]
    fn io_and_page_faults_decode() {
        let regs = GuestRegs::default();
        let out_dx = exit(30, 0x3F8 << 16 | 1);
        assert_eq!(
            translate(&out_dx, &regs, || 0),
            Exit::Io(IoAccess {
                port: 0x3F8,
                size: 2,
                direction: IoDirection::Out,
                string: false,
                rep: false
            })
        );
        let write_ro = ExitInfo { guest_physical: 0x8000, ..exit(48, 2 | 8) };
        assert_eq!(
            translate(&write_ro, &regs, || 0),
            Exit::NestedPageFault(PageFault {
                gpa: 0x8000,
                write: true,
                readable: true,
                ..PageFault::default()
            })
        );
    }

    #[test]
    fn events_and_failures() {
        let regs = GuestRegs::default();
        let nmi = ExitInfo { interruption_info: 0x8000_0202, ..exit(0, 0) };
        assert_eq!(translate(&nmi, &regs, || 0), Exit::Nmi);
        let gp = ExitInfo { interruption_info: 0x8000_0B0D, ..exit(0, 0) };
        assert_eq!(translate(&gp, &regs, || 0), Exit::Exception { vector: 13 });
        assert_eq!(translate(&exit(33 | ENTRY_FAILURE, 0), &regs, || 0), Exit::EntryFailed { code: 33 });
        assert_eq!(translate(&exit(52, 0), &regs, || 0), Exit::WindowEnd);
        assert_eq!(translate(&exit(4, 0x9A), &regs, || 0), Exit::Sipi { vector: 0x9A });
        assert_eq!(
            translate(&exit(24, 0), &regs, || 0),
            Exit::Instruction(Sensitive::Virtualization("VMRESUME"))
        );
        assert!(matches!(translate(&exit(49, 0), &regs, || 0), Exit::Unexpected { code: 49, .. }));
    }

    #[test]
    fn injections_encode_as_the_sdm_says() {
        assert_eq!(injection(Exception::InvalidOpcode), 0x8000_0306);
        assert_eq!(injection(Exception::GeneralProtection), 0x8000_0B0D);
    }

    proptest::proptest! {
        /// Whatever the exit fields and registers (a hostile guest controls many of them),
        /// translation and the decisions for both kinds of vCPU complete, and a failed
        /// entry is always a fault.
        #[test]
        fn any_exit_translates_and_decides(
            reason: u32,
            qualification: u64,
            interruption_info: u32,
            gpa: u64,
            rax: u64,
            rcx: u64,
            rdx: u64,
        ) {
            use crate::vcpu::{decide, Kind, Step};
            let info = ExitInfo { reason, qualification, interruption_info, guest_physical: gpa, ..ExitInfo::default() };
            let regs = GuestRegs { rax, rcx, rdx, ..GuestRegs::default() };
            let exit = translate(&info, &regs, || rax);
            for kind in [Kind::RealTime, Kind::Linux] {
                let step = decide(kind, &exit, |a| a == gpa);
                if reason & ENTRY_FAILURE != 0 {
                    proptest::prop_assert_eq!(step, Step::Fault(hallows_abi::health::EventClass::UnknownExit));
                }
            }
            let _ = alloc::format!("{}", exit.at(info.guest_rip));
        }
    }
}
