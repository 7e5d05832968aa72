use super::table::{self, EventLine, ExitsLine, Header, Row, RowLine};
use super::*;
use crate::lifecycle::{Cause, State};
use crate::vcpu::exit::{IoAccess, IoDirection, PageFault, Sensitive};

fn event(n: u64) -> HealthEvent {
    HealthEvent {
        time_ns: n * 1_000,
        class: EventClass::ALL[(n % EventClass::COUNT as u64) as usize],
        place: Place::Rip { rip: 0x10_0000 + n },
        action: Action::Log,
    }
}

#[test]
fn exits_are_counted_by_reason() {
    let c = PartitionCounters::new();
    for _ in 0..3 {
        c.count_exit(&Exit::Hypercall);
    }
    c.count_exit(&Exit::WindowEnd);
    c.count_exit(&Exit::Nmi);
    c.count_exit(&Exit::ExternalInterrupt);
    c.count_exit(&Exit::Wrmsr { msr: 0x3a, value: 1 });
    c.count_exit(&Exit::Unexpected { code: 99, name: "x" });
    let s = c.snapshot(0, 0);
    assert_eq!(s.exits_of(ExitReason::Hypercall), 3);
    assert_eq!(s.exits_of(ExitReason::WindowEnd), 1);
    assert_eq!(s.exits_of(ExitReason::Interrupt), 2);
    assert_eq!(s.exits_of(ExitReason::Msr), 1);
    assert_eq!(s.exits_of(ExitReason::Other), 1);
    assert_eq!(s.exits_total(), 8);
}

#[test]
fn every_reason_has_its_index_and_name() {
    for (i, r) in ExitReason::ALL.into_iter().enumerate() {
        assert_eq!(r as usize, i);
        assert!(!r.name().is_empty());
    }
    assert_eq!(ExitReason::of(&Exit::Instruction(Sensitive::Wbinvd)), ExitReason::Instruction);
    assert_eq!(ExitReason::of(&Exit::TprRead { gpr: 0 }), ExitReason::ControlRegister);
}

#[test]
fn a_window_counts_once_whatever_its_exits_and_vcpus() {
    let c = PartitionCounters::new();
    c.note_window(0, false); // a window at the very start counts
    c.note_window(0, false); // another exit in the same window
    c.note_window(0, false); // its second vCPU on another core
    c.note_window(10_000_000, false);
    c.note_window(5_000_000, false); // a late core never counts an older window
    c.note_window(20_000_000, true); // stopped: not counted
    c.note_window(30_000_000, false);
    assert_eq!(c.snapshot(0, 0).windows, 3);
}

#[test]
fn windows_counted_from_two_threads_are_not_doubled() {
    let c = std::sync::Arc::new(PartitionCounters::new());
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let c = c.clone();
            std::thread::spawn(move || {
                for w in 0..10_000u64 {
                    c.note_window(w * 10, false);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    // Without the hand-over each thread would count every window (20,000); a core that
    // falls a window behind the other may count one twice, so the bound has slack.
    let windows = c.snapshot(0, 0).windows;
    assert!((9_000..15_000).contains(&windows), "{windows}");
}

#[test]
fn overruns_and_health_events_by_class() {
    let c = PartitionCounters::new();
    c.count_exit(&Exit::WindowEnd);
    c.count_exit(&Exit::WindowEnd);
    c.note_health(5, EventClass::DeadlineMiss, Place::Reported, Action::Log);
    c.note_health(6, EventClass::DeadlineMiss, Place::Reported, Action::Log);
    c.note_health(7, EventClass::IoViolation, Place::Port { port: 0x80, rip: 0x1234 }, Action::HaltPartition);
    let s = c.snapshot(1, 10);
    assert_eq!(s.overruns, 2);
    assert_eq!(s.deadline_misses(), 2);
    assert_eq!(s.health_of(EventClass::IoViolation), 1);
    assert_eq!(s.health_total(), 3);
    assert_eq!(s.restarts, 1);
    assert_eq!(s.events.total, 3);
    let last = s.events.events.last().unwrap();
    assert_eq!(
        (last.time_ns, last.class, last.place, last.action),
        (7, EventClass::IoViolation, Place::Port { port: 0x80, rip: 0x1234 }, Action::HaltPartition)
    );
}

#[test]
fn uptime_runs_from_the_last_start_and_stops_at_a_halt() {
    let c = PartitionCounters::new();
    assert_eq!(c.snapshot(0, 50).uptime_ns, 0, "not started yet");
    c.note_lifecycle(Event::Started, 100);
    c.note_lifecycle(Event::Started, 150); // its second vCPU
    assert_eq!(c.snapshot(0, 1_100).uptime_ns, 1_000);
    c.note_lifecycle(Event::Fault, 1_200);
    c.note_lifecycle(Event::Restart(Cause::HealthMonitor), 1_200);
    c.note_lifecycle(Event::RestartDone, 2_000);
    assert_eq!(c.snapshot(1, 2_500).uptime_ns, 500);
    c.note_lifecycle(Event::Halt(Cause::HealthMonitor), 2_700);
    assert_eq!(c.snapshot(1, 9_000).uptime_ns, 700, "frozen at the halt");
    c.note_lifecycle(Event::RestartDone, 10_000);
    assert_eq!(c.snapshot(2, 10_001).uptime_ns, 1, "a restart after a halt runs again");
}

#[test]
fn windows_since_start_restart_from_zero() {
    let c = PartitionCounters::new();
    c.note_lifecycle(Event::Started, 0);
    for w in 0..5 {
        c.note_window(w * 10, false);
    }
    let s = c.snapshot(0, 50);
    assert_eq!((s.windows, s.windows_since_start), (5, 5));
    c.note_lifecycle(Event::RestartDone, 60);
    c.note_window(60, false);
    c.note_window(70, false);
    let s = c.snapshot(1, 80);
    assert_eq!((s.windows, s.windows_since_start), (7, 2), "since boot, and since the restart");
}

#[test]
fn the_console_stats_are_the_partitions_own() {
    let c = PartitionCounters::new();
    c.console.bytes_accepted.fetch_add(120, Relaxed);
    c.console.lines_dropped.fetch_add(2, Relaxed);
    c.console.busy_refusals.fetch_add(3, Relaxed);
    c.console.hv_lines_suppressed.fetch_add(4, Relaxed);
    let s = c.snapshot(0, 0);
    assert_eq!((s.console_bytes, s.console_dropped, s.console_busy, s.hv_lines_suppressed), (120, 2, 3, 4));
}

#[test]
fn the_event_ring_keeps_the_newest_in_order() {
    let log = EventLog::new();
    assert_eq!(log.read(), events::Recent::default());
    for n in 0..5 {
        log.push(event(n));
    }
    let r = log.read();
    assert_eq!(r.total, 5);
    assert_eq!(r.events.as_slice(), (0..5).map(event).collect::<Vec<_>>().as_slice());
    // Wrap around twice and a bit: only the newest EVENT_LOG_LEN stay, oldest first.
    let pushed = 2 * EVENT_LOG_LEN as u64 + 3;
    for n in 5..pushed {
        log.push(event(n));
    }
    let r = log.read();
    assert_eq!(r.total, pushed);
    let newest: Vec<_> = (pushed - EVENT_LOG_LEN as u64..pushed).map(event).collect();
    assert_eq!(r.events.as_slice(), newest.as_slice());
}

#[test]
fn every_place_survives_the_ring() {
    let places = [
        Place::Unknown,
        Place::Reported,
        Place::Rip { rip: 0xffff_ffff_ffff_fff0 },
        Place::Gpa { gpa: 0xdead_b000, rip: 0x10_2000 },
        Place::Port { port: 0xffff, rip: 1 },
        Place::Msr { msr: 0xc000_0080, rip: 2 },
        Place::Hypercall { number: u64::MAX },
    ];
    let log = EventLog::new();
    for (i, &place) in places.iter().enumerate() {
        log.push(HealthEvent {
            time_ns: i as u64,
            class: EventClass::Panic,
            place,
            action: Action::HaltSystem,
        });
    }
    let got: Vec<_> = log.read().events.iter().map(|e| e.place).collect();
    assert_eq!(got, places);
}

#[test]
fn places_come_from_the_exit() {
    let io = IoAccess { port: 0x80, size: 1, direction: IoDirection::Out, string: false, rep: false };
    assert_eq!(Place::of(&Exit::Io(io), 7), Place::Port { port: 0x80, rip: 7 });
    assert_eq!(Place::of(&Exit::Rdmsr { msr: 0x3a }, 8), Place::Msr { msr: 0x3a, rip: 8 });
    let fault = PageFault {
        gpa: 0x4000_0000,
        read: false,
        write: true,
        fetch: false,
        readable: false,
        writable: false,
        executable: false,
    };
    assert_eq!(Place::of(&Exit::NestedPageFault(fault), 9), Place::Gpa { gpa: 0x4000_0000, rip: 9 });
    assert_eq!(Place::of(&Exit::TripleFault, 10), Place::Rip { rip: 10 });
    assert_eq!(format!("{}", Place::Port { port: 0x80, rip: 0x1000 }), "port 0x80 at RIP 0x1000");
    assert_eq!(format!("{}", Place::Hypercall { number: 9 }), "hypercall 9");
    assert_eq!(format!("{}", Place::Unknown), "-");
}

#[test]
fn a_reader_beside_a_writer_sees_only_whole_events() {
    let log = std::sync::Arc::new(EventLog::new());
    let writer = {
        let log = log.clone();
        std::thread::spawn(move || {
            for n in 0..20_000 {
                log.push(event(n));
            }
        })
    };
    let mut reads = 0;
    while !writer.is_finished() || reads == 0 {
        let r = log.read();
        // Whole: each event's fields belong together; ordered: numbers ascend.
        let mut previous = None;
        for e in &r.events {
            let n = e.time_ns / 1_000;
            assert_eq!(*e, event(n), "a torn event");
            assert!(previous.is_none_or(|p| p < n), "out of order");
            previous = Some(n);
        }
        reads += 1;
    }
    writer.join().unwrap();
    assert_eq!(log.read().events.len(), EVENT_LOG_LEN);
}

#[test]
fn window_counts_within_one_frame_below_and_two_above() {
    // 10 ms frame, one window per frame, 1.234 s up: 123 frames.
    assert_eq!(expected_windows(1_234_000_000, 10_000_000, 1), 123);
    assert!(windows_plausible(123, 1_234_000_000, 10_000_000, 1));
    assert!(windows_plausible(124, 1_234_000_000, 10_000_000, 1));
    assert!(windows_plausible(122, 1_234_000_000, 10_000_000, 1));
    // The window it started in and the one in progress both count.
    assert!(windows_plausible(125, 1_234_000_000, 10_000_000, 1));
    assert!(!windows_plausible(126, 1_234_000_000, 10_000_000, 1));
    assert!(!windows_plausible(121, 1_234_000_000, 10_000_000, 1));
    assert!(!windows_plausible(0, 1_234_000_000, 10_000_000, 1));
    // Two windows per frame: a frame's worth of slack is two windows.
    assert!(windows_plausible(250, 1_234_000_000, 10_000_000, 2));
    assert!(!windows_plausible(251, 1_234_000_000, 10_000_000, 2));
    assert!(!windows_plausible(243, 1_234_000_000, 10_000_000, 2));
    // A zero frame (never a valid schedule) does not divide by zero.
    assert_eq!(expected_windows(5, 0, 1), 5);
}

fn sample() -> Snapshot {
    let c = PartitionCounters::new();
    c.note_lifecycle(Event::Started, 0);
    for _ in 0..1_500 {
        c.count_exit(&Exit::Hypercall);
    }
    for w in 0..120 {
        c.note_window(w * 10_000_000, false);
        c.count_exit(&Exit::WindowEnd);
    }
    c.note_health(
        300_000_000,
        EventClass::MsrViolation,
        Place::Msr { msr: 0x3a, rip: 0x10_1234 },
        Action::RestartPartition,
    );
    c.console.bytes_accepted.fetch_add(4_321, Relaxed);
    c.console.lines_dropped.fetch_add(2, Relaxed);
    c.snapshot(1, 1_234_567_890)
}

#[test]
fn the_table_lines_up() {
    let s = sample();
    let names = ["hello", "rogue_msr"];
    let width = table::name_width(names);
    assert_eq!(width, 9);
    let row = Row { name: "rogue_msr", kind: "rt", state: State::Restarting, counters: &s };
    let header = format!("{}", Header { name_width: width });
    let line = format!("{}", RowLine { row: &row, name_width: width });
    assert_eq!(
        header,
        "NAME      KIND STATE      RESTARTS      EXITS  WINDOWS OVERRUNS DL_MISS   HM CONSOLE_B/DROP     UPTIME"
    );
    assert_eq!(
        line,
        "rogue_msr rt   restarting        1       1620      120      120       0    1         4321/2     1.234s"
    );
    assert_eq!(header.len(), line.len(), "every column under its header");
    assert!(line.len() <= crate::console::MAX_HV_LINE);
}

#[test]
fn names_set_the_first_column_within_limits() {
    assert_eq!(table::name_width([]), 4);
    assert_eq!(table::name_width(["a", "bb"]), 4);
    let long = "x".repeat(60);
    assert_eq!(table::name_width([long.as_str()]), crate::console::MAX_NAME);
}

#[test]
fn exits_and_events_lines() {
    let s = sample();
    assert_eq!(
        format!("{}", ExitsLine { name: "rogue_msr", counters: &s }),
        "rogue_msr exits: hypercall=1500 window_end=120"
    );
    let empty = PartitionCounters::new().snapshot(0, 0);
    assert_eq!(format!("{}", ExitsLine { name: "idle", counters: &empty }), "idle exits: none");
    let lines: Vec<String> = table::event_lines("rogue_msr", &s).map(|l| format!("{l}")).collect();
    assert_eq!(
        lines,
        ["rogue_msr event 1 of 1 at 0.300s: msr_violation at MSR 0x3a at RIP 0x101234 -> restart"]
    );
}

#[test]
fn event_lines_are_numbered_over_the_whole_run() {
    let c = PartitionCounters::new();
    for n in 0..20 {
        c.note_health(n, EventClass::Panic, Place::Reported, Action::Log);
    }
    let s = c.snapshot(0, 0);
    let lines: Vec<EventLine> = table::event_lines("p", &s).collect();
    assert_eq!(lines.len(), EVENT_LOG_LEN);
    assert_eq!((lines[0].number, lines[0].total), (5, 20));
    assert_eq!(lines.last().map(|l| l.number), Some(20));
    assert!(format!("{}", lines[0]).ends_with(": panic (reported) -> log"), "{}", lines[0]);
    let unknown = HealthEvent {
        time_ns: 0,
        class: EventClass::UnknownExit,
        place: Place::Unknown,
        action: Action::HaltPartition,
    };
    let line = EventLine { name: "p", number: 1, total: 1, event: &unknown };
    assert_eq!(format!("{line}"), "p event 1 of 1 at 0.000s: unknown_exit -> halt");
}

#[test]
fn the_worst_row_fits_a_console_line() {
    let c = PartitionCounters::new();
    let mut s = c.snapshot(u32::MAX, 0);
    s.exits = [u64::MAX / 32; ExitReason::COUNT];
    s.windows = u64::MAX;
    s.overruns = u64::MAX;
    s.console_bytes = u64::MAX;
    s.console_dropped = u64::MAX;
    s.uptime_ns = u64::MAX;
    let name = "n".repeat(crate::console::MAX_NAME);
    let row = Row { name: &name, kind: "linux", state: State::Restarting, counters: &s };
    let line = format!("{}", RowLine { row: &row, name_width: crate::console::MAX_NAME });
    assert!(line.len() <= crate::console::MAX_HV_LINE, "{} bytes: {line}", line.len());
}

#[test]
fn the_whole_table_in_order() {
    let s = sample();
    let quiet = PartitionCounters::new().snapshot(0, 0);
    let rows = [
        Row { name: "hello", kind: "rt", state: State::Waiting, counters: &quiet },
        Row { name: "rogue_msr", kind: "rt", state: State::Restarting, counters: &s },
    ];
    let mut lines = Vec::new();
    table::write(&"power-off", 2_500_000_000, &rows, &mut |l| lines.push(l.to_string()));
    assert_eq!(lines.len(), 2 + 2 + 2 + 1, "title, header, rows, exits lines, one event");
    assert_eq!(lines[0], "counters (power-off) at 2.500s:");
    assert!(lines[1].starts_with("NAME      KIND"));
    assert!(lines[2].starts_with("hello     rt   waiting"));
    assert!(lines[3].starts_with("rogue_msr rt   restarting"));
    assert_eq!(lines[4], "hello exits: none");
    assert!(lines[5].starts_with("rogue_msr exits: "));
    assert!(lines[6].starts_with("rogue_msr event 1 of 1 at 0.300s: msr_violation"));
}

#[test]
fn a_refusal_is_a_logged_event_at_the_hypercall() {
    let c = PartitionCounters::new();
    assert_eq!(c.note_refusal(42, 9), EventClass::ForbiddenInstruction);
    let s = c.snapshot(0, 50);
    assert_eq!(s.health_of(EventClass::ForbiddenInstruction), 1);
    let e = s.events.events[0];
    assert_eq!((e.time_ns, e.place, e.action), (42, Place::Hypercall { number: 9 }, Action::Log));
}
