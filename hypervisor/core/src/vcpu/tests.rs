//! Synthetic exits through [`decide`] and [`after_health`], for both kinds of vCPU.

use super::*;
use hallows_abi::health::Action;
use EventClass as E;

const ALL_EXITS: &[Exit] = &[
    Exit::Hypercall,
    Exit::Cpuid { leaf: 1, subleaf: 0 },
    Exit::Hlt,
    Exit::WindowEnd,
    Exit::ExternalInterrupt,
    Exit::Nmi,
    Exit::Sipi { vector: 0x9A },
    Exit::Exception { vector: 14 },
    Exit::ControlWrite(CrWriteRequest::Mov { cr: 0, value: 0x8000_0031 }),
    Exit::ControlRead { cr: 3 },
    Exit::TprWrite { value: 2 },
    Exit::TprRead { gpr: 1 },
    Exit::Xsetbv { xcr: 0, value: 7 },
    Exit::Rdmsr { msr: 0x1B },
    Exit::Wrmsr { msr: 0x830, value: 0 },
    Exit::Io(IoAccess { port: 0x3F8, size: 1, direction: IoDirection::Out, string: false, rep: false }),
    Exit::NestedPageFault(PageFault {
        gpa: 0xE000_0000,
        read: true,
        write: false,
        fetch: false,
        readable: false,
        writable: false,
        executable: false,
    }),
    Exit::Instruction(Sensitive::Wbinvd),
    Exit::Instruction(Sensitive::Mwait),
    Exit::Instruction(Sensitive::Rdpmc),
    Exit::Instruction(Sensitive::Rdtsc),
    Exit::Instruction(Sensitive::Invlpg),
    Exit::TripleFault,
    Exit::EntryFailed { code: 33 },
    Exit::Unexpected { code: 49, name: "EPT misconfiguration" },
];

#[test]
fn real_time_partitions_reach_nothing_privileged() {
    let rt = |e: &Exit| decide(Kind::RealTime, e, |_| false);
    // Everything an RT vCPU can do to hardware is a health event.
    for e in [Exit::Rdmsr { msr: 0x1B }, Exit::Wrmsr { msr: 0xC8F, value: 1 }] {
        assert_eq!(rt(&e), Step::Fault(E::MsrViolation), "{e:?}");
    }
    assert_eq!(rt(&ALL_EXITS[15]), Step::Fault(E::IoViolation));
    assert_eq!(rt(&ALL_EXITS[16]), Step::Fault(E::MemoryViolation));
    for i in [Sensitive::Wbinvd, Sensitive::Mwait, Sensitive::Monitor, Sensitive::Rdpmc, Sensitive::Invlpg] {
        assert_eq!(rt(&Exit::Instruction(i)), Step::Fault(E::ForbiddenInstruction), "{i:?}");
    }
    assert_eq!(rt(&Exit::Instruction(Sensitive::Rdtsc)), Step::Fault(E::UnknownExit));
    assert_eq!(rt(&Exit::TripleFault), Step::Fault(E::TripleFault));
    assert_eq!(rt(&Exit::Hlt), Step::GiveUpWindow);
    assert_eq!(rt(&Exit::ExternalInterrupt), Step::AcknowledgeInterrupt);
    assert_eq!(rt(&Exit::TprWrite { value: 2 }), Step::WriteTpr { value: 2 });
    assert_eq!(rt(&Exit::TprRead { gpr: 1 }), Step::ReadTpr { gpr: 1 });
    // No device is ever claimed for an RT partition, and even a claim would be emulated
    // only because the partition's own bus holds it.
    assert_eq!(
        decide(Kind::RealTime, &ALL_EXITS[16], |gpa| gpa == 0xE000_0000),
        Step::Mmio(match ALL_EXITS[16] {
            Exit::NestedPageFault(f) => f,
            _ => unreachable!(),
        })
    );
}

#[test]
fn linux_gets_what_hardware_would_give() {
    let linux = |e: &Exit| decide(Kind::Linux, e, |gpa| gpa & !0xFFF == 0xE000_0000);
    assert_eq!(linux(&Exit::Hypercall), Step::Inject(Exception::InvalidOpcode));
    assert_eq!(linux(&Exit::Instruction(Sensitive::Mwait)), Step::Inject(Exception::InvalidOpcode));
    assert_eq!(linux(&Exit::Instruction(Sensitive::Rdpmc)), Step::Inject(Exception::GeneralProtection));
    assert_eq!(linux(&Exit::Instruction(Sensitive::Wbinvd)), Step::SkipInstruction);
    assert_eq!(linux(&Exit::Rdmsr { msr: 0x1B }), Step::Rdmsr { msr: 0x1B });
    assert!(matches!(linux(&ALL_EXITS[15]), Step::Io(IoAccess { port: 0x3F8, .. })));
    assert!(matches!(linux(&ALL_EXITS[16]), Step::Mmio(PageFault { gpa: 0xE000_0000, .. })));
    let elsewhere =
        Exit::NestedPageFault(PageFault { gpa: 0xF000_0000, write: true, ..PageFault::default() });
    assert_eq!(linux(&elsewhere), Step::Fault(E::MemoryViolation));
    assert_eq!(linux(&Exit::Hlt), Step::Resume);
    assert_eq!(linux(&Exit::ExternalInterrupt), Step::Resume);
    assert_eq!(linux(&Exit::TprWrite { value: 0 }), Step::Fault(E::UnknownExit));
    assert_eq!(linux(&Exit::TripleFault), Step::Fault(E::TripleFault));
}

#[test]
fn linux_only_steps_are_the_real_time_faults() {
    let mut seen = 0;
    for e in ALL_EXITS {
        let step = decide(Kind::Linux, e, |_| true);
        if let Some(class) = step.linux_only_class() {
            seen += 1;
            assert_eq!(decide(Kind::RealTime, e, |_| false), Step::Fault(class), "{e:?}");
        }
        let rt = decide(Kind::RealTime, e, |_| false);
        assert_eq!(rt.linux_only_class(), None, "a real-time vCPU never takes {rt:?}");
    }
    assert_eq!(seen, 4, "RDMSR, WRMSR, a port, an MMIO access");
}

#[test]
fn every_exit_has_a_decision_for_both_kinds_and_failures_are_faults() {
    for kind in [Kind::RealTime, Kind::Linux] {
        for e in ALL_EXITS {
            let step = decide(kind, e, |_| false);
            if matches!(e, Exit::EntryFailed { .. } | Exit::Unexpected { .. } | Exit::Exception { .. }) {
                assert_eq!(step, Step::Fault(E::UnknownExit), "{kind:?} {e:?}");
            }
            // The same exit always gets the same answer (no hidden state).
            assert_eq!(step, decide(kind, e, |_| false));
            // A description exists for every exit and names the RIP.
            let text = alloc::format!("{}", e.at(0xABC));
            assert!(text.contains("0xabc") || matches!(e, Exit::EntryFailed { .. }), "{text}");
        }
    }
}

#[test]
fn health_followups_per_kind() {
    let rt = |class, action| after_health(Kind::RealTime, 1, class, action);
    assert_eq!(rt(E::MsrViolation, Action::Log), (Action::Log, Followup::Continue));
    assert_eq!(rt(E::DeadlineMiss, Action::Log), (Action::Log, Followup::Continue));
    // A memory violation cannot be stepped over: logging it would loop forever.
    assert_eq!(rt(E::MemoryViolation, Action::Log), (Action::Log, Followup::Stop));
    assert_eq!(rt(E::TripleFault, Action::RestartPartition), (Action::RestartPartition, Followup::Restart));
    assert_eq!(rt(E::Panic, Action::HaltSystem), (Action::HaltSystem, Followup::HaltSystem));
    // Two vCPUs: the partition restarts whole (`group_restart`); beyond what its cores
    // can agree on, it halts.
    assert_eq!(
        after_health(Kind::RealTime, 2, E::TripleFault, Action::RestartPartition),
        (Action::RestartPartition, Followup::Restart)
    );
    assert_eq!(
        after_health(Kind::RealTime, 65, E::TripleFault, Action::RestartPartition),
        (Action::HaltPartition, Followup::Stop)
    );
    let linux = |class, action| after_health(Kind::Linux, 2, class, action);
    assert_eq!(
        linux(E::MsrViolation, Action::Log),
        (Action::Log, Followup::ContinueWith(Exception::GeneralProtection))
    );
    assert_eq!(linux(E::DeadlineMiss, Action::Log), (Action::Log, Followup::Stop));
    // Linux restarts whole, with one vCPU or more (the kernel is kept from boot).
    assert_eq!(
        linux(E::TripleFault, Action::RestartPartition),
        (Action::RestartPartition, Followup::Restart)
    );
    assert_eq!(
        after_health(Kind::Linux, 1, E::Panic, Action::RestartPartition),
        (Action::RestartPartition, Followup::Restart)
    );
    assert_eq!(linux(E::MemoryViolation, Action::HaltPartition), (Action::HaltPartition, Followup::Stop));
}
