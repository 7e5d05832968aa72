use super::*;
use hallows_abi::health::{Action as HmAction, EventClass};
use hallows_abi::manage::{
    body_u32, body_u64, field_text, header, Op, Request, KIND_LINUX, KIND_RT, RESPONSE_MAX, RESTART_CLEAN,
};
use hallows_abi::table::{PRIV_MANAGE, PRIV_QUERY};
use proptest::prelude::*;

use crate::counters::PartitionCounters;

struct Fake {
    states: Vec<State>,
    counters: Vec<PartitionCounters>,
}

const NAMES: [&str; 3] = ["linux", "sensor", "operator"];

impl Fake {
    fn new() -> Self {
        let counters: Vec<PartitionCounters> = (0..3).map(|_| PartitionCounters::new()).collect();
        counters[1].count(crate::counters::ExitReason::Hypercall);
        counters[1].note_window(0, false);
        counters[1].note_health(5, EventClass::Panic, Place::Reported, HmAction::RestartPartition);
        counters[1].note_health(
            9,
            EventClass::IoViolation,
            Place::Port { port: 0x80, rip: 0x1234 },
            HmAction::Log,
        );
        Fake { states: vec![State::Running, State::Running, State::Halted], counters }
    }
}

impl Machine for Fake {
    fn partition_count(&self) -> usize {
        self.states.len()
    }
    fn facts(&self, index: usize) -> PartitionFacts<'_> {
        PartitionFacts {
            name: NAMES[index],
            image: if index == 0 { "vmlinux" } else { "hello.elf" },
            kind: if index == 0 { KIND_LINUX } else { KIND_RT },
            vcpus: 1,
            privileges: if index == 0 { PRIV_MANAGE } else { 0 },
            cores: 1 << index,
            memory_bytes: 4 << 20,
            frame_ns: if index == 1 { 10_000_000 } else { 0 },
            windows_per_frame: u32::from(index == 1),
            ..PartitionFacts::default()
        }
    }
    fn state(&self, index: usize) -> State {
        self.states[index]
    }
    fn snapshot(&self, index: usize) -> Snapshot {
        self.counters[index].snapshot(index as u32, 1_000)
    }
    fn now_ns(&self) -> u64 {
        1_000
    }
}

fn ask(caller: usize, privileges: u32, request: &[u8], buf: usize) -> (Served, Vec<u8>) {
    let mut out = vec![0u8; buf];
    let served = serve(caller, privileges, request, &Fake::new(), &mut out);
    out.truncate(served.len);
    (served, out)
}

fn status(out: &[u8]) -> Status {
    Status::from_u32(header(out).unwrap().0).unwrap()
}

#[test]
fn without_the_privilege_everything_is_denied_and_refused() {
    for op in 0..8 {
        let req = Request { version: VERSION, op, target: 1, flags: 0 }.encode();
        let (served, out) = ask(0, PRIV_QUERY, &req, RESPONSE_MAX);
        assert_eq!(served.action, Action::Refused);
        assert_eq!(status(&out), Status::Denied);
    }
    // Even a request too short to read, or a buffer too small for the header.
    assert_eq!(ask(0, 0, &[], RESPONSE_MAX).0.action, Action::Refused);
    assert_eq!(ask(0, 0, &[], 4).0, Served { len: 0, action: Action::Refused });
}

#[test]
fn lists_every_partition_with_its_facts_and_state() {
    let (served, out) = ask(0, PRIV_MANAGE, &Request::new(Op::List, 0, 0).encode(), RESPONSE_MAX);
    assert_eq!((served.action, status(&out)), (Action::None, Status::Ok));
    let body = &out[RESPONSE_HEADER_BYTES..];
    assert_eq!((body_u32(body, 0), body_u32(body, 4)), (Some(3), Some(3)));
    let rec = |n: usize| PartitionRecord::decode(&body[12 + n * PartitionRecord::BYTES..]).unwrap();
    assert_eq!(field_text(&rec(0).name), "linux");
    assert_eq!(rec(0).kind, KIND_LINUX);
    assert_eq!(field_text(&rec(1).image), "hello.elf");
    assert_eq!(rec(1).restarts, 1);
    assert_eq!(rec(1).frame_ns, 10_000_000);
    assert_eq!(rec(2).state, State::Halted as u8);
    assert_eq!(out.len(), RESPONSE_HEADER_BYTES + 12 + 3 * PartitionRecord::BYTES);
}

#[test]
fn a_list_pages_through_a_small_buffer() {
    let small = RESPONSE_HEADER_BYTES + 12 + PartitionRecord::BYTES + 10;
    let mut seen = Vec::new();
    let mut first = 0;
    loop {
        let (_, out) = ask(0, PRIV_MANAGE, &Request::new(Op::List, first, 0).encode(), small);
        assert_eq!(status(&out), Status::Ok);
        let body = &out[RESPONSE_HEADER_BYTES..];
        let n = body_u32(body, 4).unwrap();
        if n == 0 {
            break;
        }
        for k in 0..n as usize {
            seen.push(PartitionRecord::decode(&body[12 + k * PartitionRecord::BYTES..]).unwrap().index);
        }
        first += n;
    }
    assert_eq!(seen, [0, 1, 2]);
    let (_, out) = ask(0, PRIV_MANAGE, &Request::new(Op::List, 4, 0).encode(), small);
    assert_eq!(status(&out), Status::UnknownPartition);
}

#[test]
fn stats_and_events_of_one_partition() {
    let (_, out) = ask(0, PRIV_MANAGE, &Request::new(Op::Stats, 1, 0).encode(), RESPONSE_MAX);
    assert_eq!(status(&out), Status::Ok);
    let s = StatsRecord::decode(&out[RESPONSE_HEADER_BYTES..]).unwrap();
    assert_eq!((s.index, s.restarts, s.windows, s.exits[0], s.events_total), (1, 1, 1, 1, 2));
    assert_eq!(s.health[EventClass::Panic as usize], 1);

    let (_, out) = ask(0, PRIV_MANAGE, &Request::new(Op::Events, 1, 0).encode(), RESPONSE_MAX);
    let body = &out[RESPONSE_HEADER_BYTES..];
    assert_eq!((body_u64(body, 0), body_u32(body, 8)), (Some(2), Some(2)));
    let second = EventRecord::decode(&body[16 + EventRecord::BYTES..]).unwrap();
    assert_eq!(second.class, EventClass::IoViolation as u8);
    assert_eq!((second.place_kind, second.place_a, second.place_b), (PLACE_PORT, 0x80, 0x1234));
}

#[test]
fn a_buffer_too_small_says_how_much_is_needed() {
    let (served, out) = ask(0, PRIV_MANAGE, &Request::new(Op::Stats, 1, 0).encode(), 64);
    assert_eq!((status(&out), served.len), (Status::TooSmall, RESPONSE_HEADER_BYTES));
    assert_eq!(header(&out).unwrap().1 as usize, StatsRecord::BYTES);
}

#[test]
fn control_checks_target_caller_and_state() {
    let req = |op, target, flags| Request::new(op, target, flags).encode();
    let run = |r: [u8; 16]| {
        let (served, out) = ask(0, PRIV_MANAGE, &r, RESPONSE_MAX);
        (status(&out), served.action)
    };
    assert_eq!(
        run(req(Op::Restart, 1, 0)),
        (Status::Ok, Action::Restart { target: 1, scope: RestartScope::KeepPersistent })
    );
    assert_eq!(
        run(req(Op::Restart, 1, RESTART_CLEAN)),
        (Status::Ok, Action::Restart { target: 1, scope: RestartScope::Clean })
    );
    assert_eq!(run(req(Op::Halt, 1, 0)), (Status::Ok, Action::Halt { target: 1 }));
    assert_eq!(run(req(Op::Start, 2, 0)), (Status::Ok, Action::Start { target: 2 }));
    assert_eq!(run(req(Op::Start, 1, 0)), (Status::WrongState, Action::None));
    assert_eq!(run(req(Op::Halt, 2, 0)), (Status::WrongState, Action::None));
    assert_eq!(run(req(Op::Restart, 2, 0)), (Status::WrongState, Action::None));
    assert_eq!(run(req(Op::Restart, 0, 0)), (Status::IsCaller, Action::None));
    assert_eq!(run(req(Op::Halt, 0, 0)), (Status::IsCaller, Action::None));
    assert_eq!(run(req(Op::Restart, 3, 0)), (Status::UnknownPartition, Action::None));
    assert_eq!(run(req(Op::Halt, 1, RESTART_CLEAN)), (Status::BadRequest, Action::None));
    assert_eq!(run(req(Op::Restart, 1, 2)), (Status::BadRequest, Action::None));
    let mut old = req(Op::List, 0, 0);
    old[0] = 9;
    assert_eq!(run(old), (Status::UnsupportedVersion, Action::None));
    assert_eq!(
        run(Request { version: VERSION, op: 99, target: 0, flags: 0 }.encode()),
        (Status::BadRequest, Action::None)
    );
    // Nothing while a restart is under way.
    assert_eq!(control(Op::Restart, 0, 1, State::Restarting), None);
    assert_eq!(control(Op::Halt, 0, 1, State::Restarting), None);
}

proptest! {
    /// Any bytes, any buffer size: no panic, the length fits the buffer, and only a
    /// privileged well-formed control request acts.
    #[test]
    fn hostile_requests_never_panic(request in proptest::collection::vec(any::<u8>(), 0..40),
                                    buf in 0usize..600, privileged in any::<bool>()) {
        let privileges = if privileged { PRIV_MANAGE } else { 0 };
        let (served, _) = ask(1, privileges, &request, buf);
        prop_assert!(served.len <= buf);
        if !privileged {
            prop_assert_eq!(served.action, Action::Refused);
        }
    }
}

#[test]
fn placement_reads_cores_and_the_schedule() {
    use crate::boot_plan::VcpuPlan;
    use crate::schedule::Window;
    let dedicated = CorePlan { vcpus: vec![VcpuPlan { partition: 0, vcpu: 0 }], ..CorePlan::default() };
    let window = |partition, offset_ns| Window { partition, offset_ns, duration_ns: 1_000_000 };
    let scheduled = CorePlan {
        vcpus: vec![VcpuPlan { partition: 1, vcpu: 0 }, VcpuPlan { partition: 2, vcpu: 0 }],
        windows: vec![window(1, 0), window(2, 2_000_000), window(1, 4_000_000)],
        major_frame_ns: 10_000_000,
        ..CorePlan::default()
    };
    let cores = [dedicated, scheduled.clone(), scheduled];
    assert_eq!(placement(&cores, 0), (0b001, 0, 0));
    assert_eq!(placement(&cores, 1), (0b110, 2, 10_000_000));
    assert_eq!(placement(&cores, 2), (0b110, 1, 10_000_000));
    assert_eq!(placement(&cores, 7), (0, 0, 0));
}
