//! No partition reaches the cache-allocation hardware (issue 13): every RDT MSR exits
//! and is a forbidden-MSR health event for RT and Linux partitions alike, and RDT is
//! absent from the CPUID both kinds see (so Linux's `resctrl` finds nothing to mount).

use crate::hypercall::GuestRegs;
use crate::linux_vcpu::apic::ApicIdMap;
use crate::linux_vcpu::cpuid::{LinuxCpuid, TscTiming};
use crate::linux_vcpu::msr::{LinuxMsrPolicy, MsrAction};
use crate::switched_state::{RT_MSR_READ_PASSTHROUGH, RT_MSR_WRITE_PASSTHROUGH};
use crate::vcpu::{decide, Kind, Step};
use crate::vmx::bitmaps::{fill_msr_bitmap, msr_access_exits};
use crate::vmx::exit::ExitInfo;
use crate::vmx::translate::translate;
use hallows_abi::health::EventClass;

use super::{
    IA32_L3_MASK_BASE, IA32_L3_QOS_CFG, IA32_MBA_THRTL_BASE, IA32_PQR_ASSOC, RDT_MSR_FIRST, RDT_MSR_LAST,
};

/// Every RDT allocation and monitoring MSR the hypervisor programs or could program.
fn rdt_msrs() -> impl Iterator<Item = u32> {
    [IA32_L3_QOS_CFG, IA32_L3_QOS_CFG + 1].into_iter().chain(RDT_MSR_FIRST..=RDT_MSR_LAST)
}

#[test]
fn the_named_msrs_are_in_the_block() {
    for msr in [IA32_PQR_ASSOC, IA32_L3_MASK_BASE, IA32_L3_MASK_BASE + 15, IA32_MBA_THRTL_BASE, 0xD10] {
        assert!(rdt_msrs().any(|m| m == msr), "{msr:#x}");
    }
}

#[test]
fn an_rt_partition_exits_on_every_rdt_msr_and_it_is_an_msr_violation() {
    let mut bitmap = [0u8; 4096];
    fill_msr_bitmap(&mut bitmap, &RT_MSR_READ_PASSTHROUGH, &RT_MSR_WRITE_PASSTHROUGH);
    for msr in rdt_msrs() {
        assert!(msr_access_exits(&bitmap, msr, false), "RDMSR {msr:#x} must exit");
        assert!(msr_access_exits(&bitmap, msr, true), "WRMSR {msr:#x} must exit");
        for reason in [31, 32] {
            let info = ExitInfo { reason, rcx: msr as u64, ..Default::default() };
            let exit = translate(&info, &GuestRegs { rcx: msr as u64, ..GuestRegs::default() }, || 0);
            assert_eq!(
                decide(Kind::RealTime, &exit, |_| false),
                Step::Fault(EventClass::MsrViolation),
                "{msr:#x}"
            );
        }
    }
}

#[test]
fn a_linux_partition_is_refused_every_rdt_msr() {
    let map = ApicIdMap::identity(&[0, 1]).unwrap();
    let policy = LinuxMsrPolicy::new(&map, 1, 140_000);
    let mut bitmap = [0u8; 4096];
    policy.fill_bitmap(&mut bitmap);
    for msr in rdt_msrs() {
        assert!(
            msr_access_exits(&bitmap, msr, false) && msr_access_exits(&bitmap, msr, true),
            "{msr:#x} exits"
        );
        assert_eq!(policy.on_rdmsr(msr), MsrAction::Refuse(EventClass::MsrViolation), "RDMSR {msr:#x}");
        assert_eq!(
            policy.on_wrmsr(msr, 15 << 32),
            MsrAction::Refuse(EventClass::MsrViolation),
            "WRMSR {msr:#x}"
        );
    }
}

#[test]
fn rdt_is_hidden_from_every_cpuid_view() {
    // The host as bochs-rdt reports it.
    let host = |leaf: u32, sub: u32| match (leaf, sub) {
        (0, 0) => [0x16, 0, 0, 0],
        (7, 0) => [0, 0xd19f_a7eb, 0, 0],
        (0xF, _) => [0, 0xFF, 0, 2],
        (0x10, 0) => [0, 2, 0, 0],
        (0x10, 1) => [10, 0x600, 0, 15],
        _ => [u32::MAX; 4],
    };
    let xstate = crate::xstate::XstatePolicy::from_cpuid(0x7, 0);
    let linux = LinuxCpuid::new(
        &ApicIdMap::identity(&[0]).unwrap(),
        0,
        0x16,
        TscTiming { tsc_khz: 1_000_000, lapic_khz: 1_000_000 },
    );
    for (leaf, sub) in [(7, 0), (0xF, 0), (0xF, 1), (0x10, 0), (0x10, 1), (0x10, 2), (0x10, 3)] {
        let rt = crate::cpuid::rt_view(leaf, sub, host(leaf, sub), 0, &xstate);
        let lx = linux.answer(leaf, sub, host(leaf, sub));
        if leaf == 7 {
            for (who, view) in [("rt", rt), ("linux", lx)] {
                assert_eq!(view[1] & (1 << 15), 0, "{who}: RDT allocation (PQE) hidden");
                assert_eq!(view[1] & (1 << 12), 0, "{who}: RDT monitoring (PQM) hidden");
            }
        } else {
            assert_eq!(rt, [0; 4], "rt: leaf {leaf:#x}.{sub}");
            assert_eq!(lx, [0; 4], "linux: leaf {leaf:#x}.{sub}");
        }
    }
    // What the hypervisor itself detects from the same host: CAT.
    assert!(super::CatInfo::from_cpuid(host).is_some());
    // And what a guest would detect from its view: nothing.
    assert_eq!(super::CatInfo::from_cpuid(|l, s| linux.answer(l, s, host(l, s))), None);
    assert_eq!(super::CatInfo::from_cpuid(|l, s| crate::cpuid::rt_view(l, s, host(l, s), 0, &xstate)), None);
}
