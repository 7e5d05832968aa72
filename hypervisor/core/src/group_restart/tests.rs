use super::*;
use crate::boot_plan::VcpuPlan;
use alloc::vec;
use std::sync::Arc;

/// Parks running vCPU `vcpu` as a core would; returns the restart it parked for.
fn park(sync: &RestartSync, vcpu: u32) -> u32 {
    let Poll::Park { gen } = sync.poll(vcpu, 0) else { panic!("vCPU {vcpu} is not asked to park") };
    sync.ack(vcpu);
    assert_eq!(sync.poll(vcpu, gen), Poll::Nothing, "asked once per restart");
    gen
}

#[test]
fn every_phase_survives_its_encoding() {
    let phases = [
        Phase::Idle,
        Phase::Claiming { gen: 7, owner: 63 },
        Phase::Stopping { gen: u32::MAX, owner: 0 },
        Phase::Released { gen: 1 },
        Phase::Abandoned { gen: 99 },
    ];
    for p in phases {
        assert_eq!(Phase::decode(p.encode()), p);
    }
}

#[test]
fn a_single_vcpu_partition_rebuilds_at_once() {
    let sync = RestartSync::new();
    assert_eq!(sync.phase(), Phase::Idle);
    let gen = sync.claim(0, 1).unwrap();
    assert_eq!(sync.phase(), Phase::Stopping { gen, owner: 0 });
    assert_eq!(sync.owner_step(1, 0, 0), OwnerStep::Rebuild, "nobody else to wait for, even at the deadline");
    assert_eq!(sync.poll(0, 0), Poll::Nothing, "the owner is never asked to park");
    sync.release(gen);
    assert_eq!(sync.poll(0, 0), Poll::Nothing);
    assert!(!sync.busy());
}

#[test]
fn the_owner_rebuilds_only_when_every_other_vcpu_parked() {
    let sync = RestartSync::new();
    let gen = sync.claim(2, 4).unwrap();
    assert!(sync.busy());
    for vcpu in [0, 3] {
        park(&sync, vcpu);
        assert_eq!(sync.owner_step(4, 10, 100), OwnerStep::Wait, "vCPU 1 still runs");
    }
    assert_eq!(park(&sync, 1), gen);
    assert_eq!(sync.owner_step(4, 10, 100), OwnerStep::Rebuild);
    assert_eq!(sync.poll(1, gen), Poll::Nothing, "parked vCPUs stay parked until released");
    sync.release(gen);
    for vcpu in [0, 1, 3] {
        assert_eq!(sync.poll(vcpu, gen), Poll::Resume, "vCPU {vcpu} starts afresh");
        assert_eq!(sync.poll(vcpu, 0), Poll::Nothing, "and only once");
    }
}

#[test]
fn a_restart_is_claimed_once_however_many_vcpus_ask() {
    let sync = RestartSync::new();
    let gen = sync.claim(1, 2).unwrap();
    assert_eq!(sync.claim(0, 2), None, "vCPU 0's fault joins the restart under way");
    assert_eq!(sync.claim(1, 2), None);
    park(&sync, 0);
    sync.release(gen);
    let next = sync.claim(0, 2).unwrap();
    assert_eq!(next, gen + 1, "a later fault is a new restart");
    assert_eq!(sync.owner_step(2, 0, 100), OwnerStep::Wait, "the previous restart's parking does not count");
}

#[test]
fn a_vcpu_still_parked_from_the_previous_restart_parks_again_for_the_next() {
    let sync = RestartSync::new();
    let first = sync.claim(0, 2).unwrap();
    assert_eq!(park(&sync, 1), first);
    sync.release(first);
    // vCPU 1's core has not looked yet when vCPU 0 faults again.
    let second = sync.claim(0, 2).unwrap();
    assert_eq!(sync.poll(1, first), Poll::Park { gen: second }, "it must say so again");
    assert_eq!(sync.owner_step(2, 0, 100), OwnerStep::Wait);
    sync.ack(1);
    assert_eq!(sync.owner_step(2, 0, 100), OwnerStep::Rebuild);
}

#[test]
fn concurrent_claims_make_exactly_one_owner() {
    for _ in 0..50 {
        let sync = Arc::new(RestartSync::new());
        let threads: std::vec::Vec<_> = (0..4u32)
            .map(|v| {
                let s = Arc::clone(&sync);
                std::thread::spawn(move || s.claim(v, 4).is_some())
            })
            .collect();
        let owners = threads.into_iter().map(|t| t.join().unwrap()).filter(|&won| won).count();
        assert_eq!(owners, 1);
    }
}

#[test]
fn acknowledgements_from_many_cores_are_all_seen() {
    let sync = Arc::new(RestartSync::new());
    let gen = sync.claim(0, 33).unwrap();
    let threads: std::vec::Vec<_> = (1..33u32)
        .map(|v| {
            let s = Arc::clone(&sync);
            std::thread::spawn(move || {
                while !matches!(s.poll(v, 0), Poll::Park { .. }) {}
                s.ack(v);
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(sync.owner_step(33, 0, 1), OwnerStep::Rebuild);
    sync.release(gen);
}

#[test]
fn a_vcpu_that_never_parks_ends_the_wait_at_the_deadline() {
    let sync = RestartSync::new();
    let gen = sync.claim(0, 3).unwrap();
    park(&sync, 2);
    assert_eq!(sync.owner_step(3, 99, 100), OwnerStep::Wait);
    let step = sync.owner_step(3, 100, 100);
    assert_eq!(step, OwnerStep::GiveUp { missing: 0b010 });
    sync.abandon(gen);
    assert_eq!(sync.poll(2, gen), Poll::Halt, "a parked vCPU stops for good");
    assert_eq!(sync.poll(1, 0), Poll::Nothing, "the one that never answered is left alone");
    assert!(!sync.busy(), "another partition or the operator may restart it later");
    let line = std::format!("{}", StopTimeout { partition: "pair", missing: 0b1010, waited_ns: 150_000_000 });
    assert_eq!(line, "partition pair: restart given up: vCPU 1, 3 did not stop within 150 ms; halted");
}

#[test]
fn a_late_release_or_abandon_of_an_older_restart_changes_nothing() {
    let sync = RestartSync::new();
    let old = sync.claim(0, 2).unwrap();
    sync.abandon(old);
    let new = sync.claim(1, 2).unwrap();
    sync.release(old);
    sync.abandon(old);
    assert_eq!(sync.phase(), Phase::Stopping { gen: new, owner: 1 });
}

#[test]
fn claims_the_mask_cannot_count_are_refused() {
    let sync = RestartSync::new();
    assert_eq!(sync.claim(0, MAX_VCPUS + 1), None);
    assert_eq!(sync.claim(2, 2), None, "no such vCPU");
    assert_eq!(sync.phase(), Phase::Idle);
    let gen = sync.claim(63, 64).unwrap();
    for v in 0..63 {
        park(&sync, v);
    }
    assert_eq!(sync.owner_step(64, 0, 1), OwnerStep::Rebuild);
    sync.release(gen);
}

#[test]
fn the_wait_covers_two_frames_of_the_slowest_core_running_the_partition() {
    let plan = |partitions: &[usize], frame| CorePlan {
        vcpus: partitions.iter().map(|&p| VcpuPlan { partition: p, vcpu: 0 }).collect(),
        major_frame_ns: frame,
        ..CorePlan::default()
    };
    let cores = vec![plan(&[0], 0), plan(&[1, 2], 20_000_000), plan(&[1], 5_000_000), plan(&[3], 90_000_000)];
    assert_eq!(stop_wait_ns(&cores, 0), STOP_GRACE_NS, "dedicated cores answer at once");
    assert_eq!(stop_wait_ns(&cores, 1), STOP_GRACE_NS + 40_000_000);
    assert_eq!(stop_wait_ns(&cores, 9), STOP_GRACE_NS);
}

#[test]
fn an_absorbed_fault_says_it_is_not_counted() {
    let line = std::format!("{}", Absorbed { partition: "pair", vcpu: 0, what: "io_violation: port 0x80" });
    assert_eq!(line, "partition pair: vCPU 0: io_violation: port 0x80 while the partition restarts: not counted, vCPU parked");
}

#[test]
fn two_vcpus_faulting_at_once_spend_one_restart_of_the_budget() {
    use crate::health::{HealthMonitor, RestartPolicy};
    use hallows_abi::health::{Action, EventClass};
    let actions = [Action::RestartPartition as u8; EventClass::COUNT];
    let mut hm = HealthMonitor::new(RestartPolicy { max_restarts: 1, window_ns: 1_000_000 });
    let sync = RestartSync::new();
    let fault = |hm: &mut HealthMonitor| {
        let d = hm.decide(&actions, EventClass::IoViolation, 10);
        (d.action, d.action == Action::RestartPartition)
    };
    let first = decide_once(&sync, &mut hm, 1, 2, fault);
    assert_eq!(first, Some((Action::RestartPartition, Some(1))), "vCPU 1 owns restart 1");
    assert_eq!(decide_once(&sync, &mut hm, 0, 2, fault), None, "vCPU 0's fault is absorbed");
    let request = |hm: &mut HealthMonitor| {
        let r = hm.decide_requested_restart(20);
        (r.allowed, r.allowed)
    };
    assert_eq!(decide_once(&sync, &mut hm, 0, 2, request), None, "so is a request meanwhile");
    assert_eq!(hm.total_restarts(), 1, "one restart counted for the partition");
    park(&sync, 0);
    sync.release(1);
    // The budget (1 per window) is spent: the next fault halts, nothing is claimed.
    assert_eq!(decide_once(&sync, &mut hm, 0, 2, fault), Some((Action::HaltPartition, None)));
    assert_eq!(sync.phase(), Phase::Released { gen: 1 });
}

#[test]
fn the_owner_waits_once_and_then_rebuilds_in_as_many_windows_as_it_takes() {
    let sync = RestartSync::new();
    let gen = sync.claim(0, 2).unwrap();
    let mut owned = Owned::new(gen, 1_000, 500);
    assert_eq!(owned.step(&sync, 2, 1_200), OwnerStep::Wait);
    park(&sync, 1);
    assert_eq!(owned.step(&sync, 2, 1_300), OwnerStep::Rebuild);
    sync.release(gen);
    let _ = sync.claim(1, 2);
    assert_eq!(owned.step(&sync, 2, 9_999), OwnerStep::Rebuild, "its vCPUs stay parked while it rebuilds");

    let sync = RestartSync::new();
    let mut late = Owned::new(sync.claim(1, 2).unwrap(), 1_000, 500);
    assert_eq!(late.step(&sync, 2, 1_499), OwnerStep::Wait);
    assert_eq!(late.step(&sync, 2, 1_500), OwnerStep::GiveUp { missing: 1 });
    let line = std::format!("{}", late.timeout("pair", 1));
    assert_eq!(line, "partition pair: restart given up: vCPU 0 did not stop within 0 ms; halted");
}
