//! Every command end to end over the hypervisor's own decisions (`hallows_core::manage`)
//! on a fake machine: what is printed, what is done, and what a refusal says.

mod common;

use common::{run, shared, FakeMachine, LINUX, LOGGER, SENSOR};
use hallows_abi::health::EventClass;
use hallows_abi::manage::Status;
use hallows_core::counters::Place;
use hallows_core::lifecycle::{RestartScope, State};
use hallows_core::manage::Action;
use rhctl::Error;

#[test]
fn list_shows_every_partition() {
    let machine = shared(FakeMachine::demo());
    let (out, result) = run(&machine, &["list"]);
    result.unwrap();
    assert_eq!(
        out,
        "Name    ID  Kind   State    vCPUs  Cores  Mem(MiB)  Restarts  Uptime(s)  Image\n\
         linux    0  linux  running      2  0-1         512  0              12.3  bzImage\n\
         sensor   1  rt     running      1  2             4  1/3            12.3  sensor.elf\n\
         logger   2  rt     halted       1  3             4  0               3.0  logger.elf\n"
    );
}

#[test]
fn list_reads_every_page() {
    // More partitions than one response holds (4096 bytes: 29 records of 136).
    let mut machine = FakeMachine::demo();
    let names: Vec<&'static str> =
        (0..70).map(|n| &*Box::leak(format!("p{n:02}").into_boxed_str())).collect();
    for (n, name) in names.iter().enumerate() {
        let mut p = FakeMachine::demo().partitions.remove(SENSOR);
        p.facts.name = name;
        p.facts.cores = 1 << (n % 64);
        machine.partitions.push(p);
    }
    let machine = shared(machine);
    let (out, result) = run(&machine, &["list"]);
    result.unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 1 + 73);
    assert!(lines[73].starts_with("p69     72  rt"), "{}", lines[73]);
}

#[test]
fn stats_of_one_partition_as_text() {
    let machine = shared(FakeMachine::demo());
    let (out, result) = run(&machine, &["stats", "sensor"]);
    result.unwrap();
    assert_eq!(
        out,
        "sensor (partition 1, rt, running)\n\
        \x20 uptime           12.3 s\n\
        \x20 restarts         1 (at most 3 per 60.0 s)\n\
        \x20 exits            43: hypercall=40 window_end=3\n\
        \x20 windows          1230 since the last start, expected 1230 (12.3 s of 10 ms frames, 1 per frame); 1230 since boot\n\
        \x20 overruns         3\n\
        \x20 deadline misses  1\n\
        \x20 health events    2: io_violation=1 deadline_miss=1\n\
        \x20 console          312 bytes, 0 busy, 0 dropped, 0 [hv] lines suppressed\n"
    );
}

#[test]
fn stats_of_every_partition_leave_out_expected_windows_on_dedicated_cores() {
    let machine = shared(FakeMachine::demo());
    let (out, result) = run(&machine, &["stats"]);
    result.unwrap();
    let titles: Vec<&str> = out.lines().filter(|l| !l.starts_with(' ') && !l.is_empty()).collect();
    assert_eq!(
        titles,
        [
            "linux (partition 0, linux, running)",
            "sensor (partition 1, rt, running)",
            "logger (partition 2, rt, halted)"
        ]
    );
    assert_eq!(out.matches("(dedicated cores: no schedule)").count(), 2);
    assert_eq!(out.matches("expected").count(), 1);
    assert!(out.contains("  exits            0: none\n"));
}

#[test]
fn stats_as_json_parse_back_with_stable_keys() {
    let machine = shared(FakeMachine::demo());
    let (out, result) = run(&machine, &["stats", "--json"]);
    result.unwrap();
    assert!(out.ends_with("}\n") && out.lines().count() == 1);
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(doc["now_ns"], 12_300_000_000u64);
    let parts = doc["partitions"].as_array().unwrap();
    assert_eq!(parts.len(), 3);
    let sensor = &parts[1];
    // Keys in the order written (serde_json's map sorts them: read the text).
    let sensor_text = &out[out.find("{\"name\":\"sensor\"").unwrap()..];
    let mut keys: Vec<(usize, &str)> = sensor
        .as_object()
        .unwrap()
        .keys()
        .map(|k| (sensor_text.find(&format!("\"{k}\":")).unwrap(), k.as_str()))
        .collect();
    keys.sort();
    let keys: Vec<&str> = keys.into_iter().map(|(_, k)| k).collect();
    assert_eq!(
        keys,
        [
            "name",
            "index",
            "kind",
            "state",
            "restarts",
            "restart_limit",
            "uptime_ns",
            "frame_ns",
            "windows_per_frame",
            "windows",
            "windows_since_start",
            "expected_windows",
            "overruns",
            "deadline_misses",
            "exits",
            "exits_total",
            "health",
            "events_total",
            "console"
        ]
    );
    assert_eq!(sensor["name"], "sensor");
    assert_eq!(sensor["index"], 1);
    assert_eq!(sensor["kind"], "rt");
    assert_eq!(sensor["state"], "running");
    assert_eq!(sensor["restarts"], 1);
    assert_eq!(sensor["uptime_ns"], 12_300_000_000u64);
    assert_eq!(sensor["frame_ns"], 10_000_000);
    assert_eq!(sensor["windows_per_frame"], 1);
    assert_eq!(sensor["windows"], 1230);
    assert_eq!(sensor["expected_windows"], 1230);
    assert_eq!(sensor["overruns"], 3);
    assert_eq!(sensor["deadline_misses"], 1);
    assert_eq!(sensor["exits"]["hypercall"], 40);
    assert_eq!(sensor["exits"]["window_end"], 3);
    assert_eq!(sensor["exits"].as_object().unwrap().len(), 14);
    assert_eq!(sensor["exits_total"], 43);
    assert_eq!(sensor["health"]["io_violation"], 1);
    assert_eq!(sensor["health"]["panic"], 0);
    assert_eq!(sensor["health"].as_object().unwrap().len(), 8);
    assert_eq!(sensor["events_total"], 2);
    assert_eq!(
        sensor["console"],
        serde_json::json!({"bytes": 312, "busy": 0, "dropped": 0, "hv_lines_suppressed": 0})
    );
    assert!(parts[2]["expected_windows"].is_null());
    assert_eq!(parts[2]["state"], "halted");
    assert_eq!(parts[0]["kind"], "linux");
}

#[test]
fn events_of_every_partition_in_time_order() {
    let machine = shared(FakeMachine::demo());
    machine.lock().unwrap().fault(
        LOGGER,
        2_000_000_000,
        EventClass::MsrViolation,
        Place::Msr { msr: 0x3a, rip: 0x10_1234 },
    );
    let (out, result) = run(&machine, &["events"]);
    result.unwrap();
    assert_eq!(
        out,
        "   TIME(s)  PARTITION  CLASS                  ACTION       PLACE\n\
        \x20    1.500  sensor     io_violation           log          port 0x80 at RIP 0x1234\n\
        \x20    2.000  logger     msr_violation          restart      MSR 0x3a at RIP 0x101234\n\
        \x20    2.250  sensor     deadline_miss          log          reported\n"
    );
    let (out, _) = run(&machine, &["events", "logger"]);
    assert_eq!(out.lines().count(), 2);
    let (out, _) = run(&machine, &["events", "linux"]);
    assert_eq!(out, "no health-monitor events\n");
}

#[test]
fn events_say_when_the_log_holds_only_the_newest() {
    let machine = shared(FakeMachine::demo());
    for n in 0..20 {
        machine.lock().unwrap().fault(SENSOR, 3_000_000_000 + n, EventClass::Panic, Place::Reported);
    }
    let (out, result) = run(&machine, &["events", "sensor"]);
    result.unwrap();
    assert_eq!(out.lines().count(), 1 + 16 + 1);
    assert!(out.ends_with("sensor: 22 events in all, the newest 16 shown\n"), "{out}");
}

#[test]
fn events_follow_prints_only_new_ones_and_counts_the_missed() {
    use clap::Parser;
    use rhctl::cli::{run as run_command, Cli};
    let machine = shared(FakeMachine::demo());
    let cli = Cli::try_parse_from(["rhctl", "events", "--follow"]).unwrap();
    let mut client = rhctl::client::Client::new(common::Direct { machine: machine.clone(), caller: LINUX });
    let mut out = Vec::new();
    let mut polls = 0;
    let feed = machine.clone();
    let mut pause = || {
        polls += 1;
        let mut m = feed.lock().unwrap();
        match polls {
            // One new event.
            1 => m.fault(
                SENSOR,
                5_000_000_000,
                EventClass::MemoryViolation,
                Place::Gpa { gpa: 0xfee0_0000, rip: 0x42 },
            ),
            // Nothing new.
            2 => {}
            // 20 new ones: the log holds 16 of them.
            3 => (0..20).for_each(|n| {
                m.fault(LOGGER, 6_000_000_000 + n * 1_000_000, EventClass::Panic, Place::Reported)
            }),
            _ => return false,
        }
        true
    };
    run_command(&cli.command, &mut client, &mut out, &mut pause).unwrap();
    let out = String::from_utf8(out).unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 1 + 2 + 1 + 16 + 1, "{out}");
    assert!(lines[3].contains("memory_violation") && lines[3].contains("GPA 0xfee00000 at RIP 0x42"));
    assert!(lines[4].starts_with("     6.004  logger"), "{}", lines[4]);
    assert_eq!(lines[20], "logger: 4 events were missed (more came between two polls than the log holds)");
}

#[test]
fn follow_waits_quietly_when_there_is_nothing() {
    use clap::Parser;
    let machine = shared(FakeMachine::demo());
    let cli = rhctl::cli::Cli::try_parse_from(["rhctl", "events", "linux", "--follow"]).unwrap();
    let mut client = rhctl::client::Client::new(common::Direct { machine: machine.clone(), caller: LINUX });
    let mut out = Vec::new();
    let mut polls = 0;
    rhctl::cli::run(&cli.command, &mut client, &mut out, &mut || {
        polls += 1;
        polls < 3
    })
    .unwrap();
    assert_eq!(String::from_utf8(out).unwrap(), "no health-monitor events yet; waiting for them\n");
}

#[test]
fn restart_keeps_or_scrubs_the_persistent_region() {
    let machine = shared(FakeMachine::demo());
    let (out, result) = run(&machine, &["restart", "sensor"]);
    result.unwrap();
    assert_eq!(out, "restarting sensor (persistent region kept)\n");
    let (out, result) = run(&machine, &["restart", "sensor", "--clean"]);
    result.unwrap();
    assert_eq!(out, "restarting sensor (persistent region scrubbed)\n");
    let m = machine.lock().unwrap();
    assert_eq!(
        m.actions,
        [
            Action::Restart { target: SENSOR, scope: RestartScope::KeepPersistent },
            Action::Restart { target: SENSOR, scope: RestartScope::Clean }
        ]
    );
    assert_eq!(m.partitions[SENSOR].restarts, 3);
}

#[test]
fn halt_then_start() {
    let machine = shared(FakeMachine::demo());
    let (out, result) = run(&machine, &["halt", "sensor"]);
    result.unwrap();
    assert_eq!(out, "halting sensor (`rhctl start sensor` starts it again)\n");
    assert_eq!(machine.lock().unwrap().partitions[SENSOR].state, State::Halted);
    let (out, result) = run(&machine, &["start", "sensor"]);
    result.unwrap();
    assert_eq!(out, "starting sensor afresh\n");
    assert_eq!(machine.lock().unwrap().partitions[SENSOR].state, State::Running);
}

fn error_text(machine: &common::Shared, args: &[&str]) -> String {
    let (out, result) = run(machine, args);
    assert_eq!(out, "", "nothing is printed on stdout when {args:?} fails");
    result.unwrap_err().to_string()
}

#[test]
fn wrong_states_say_what_works() {
    let machine = shared(FakeMachine::demo());
    assert_eq!(error_text(&machine, &["restart", "logger"]), "logger is halted: use `rhctl start logger`");
    assert_eq!(
        error_text(&machine, &["halt", "logger"]),
        "logger is halted: it is halted already; `rhctl start logger` starts it again"
    );
    assert_eq!(
        error_text(&machine, &["start", "sensor"]),
        "sensor is running: it is not halted; use `rhctl restart sensor` to start it afresh"
    );
    machine.lock().unwrap().partitions[SENSOR].state = State::Restarting;
    assert_eq!(
        error_text(&machine, &["halt", "sensor"]),
        "sensor is restarting: wait until it runs again (`rhctl list` shows its state)"
    );
    assert!(machine.lock().unwrap().actions.is_empty());
}

#[test]
fn the_caller_itself_is_refused_with_the_way_to_do_it() {
    let machine = shared(FakeMachine::demo());
    assert_eq!(
        error_text(&machine, &["restart", "linux"]),
        "linux is this Linux partition itself: to restart this Linux partition, reboot it"
    );
    assert_eq!(
        error_text(&machine, &["halt", "linux"]),
        "linux is this Linux partition itself: to halt this Linux partition, power it off (`poweroff`)"
    );
}

#[test]
fn unknown_names_list_the_known_ones() {
    let machine = shared(FakeMachine::demo());
    for args in [&["restart", "sensr"][..], &["stats", "sensr"], &["events", "sensr"], &["halt", "sensr"]] {
        assert_eq!(
            error_text(&machine, args),
            "no partition named \"sensr\"; the partitions are: linux, sensor, logger"
        );
    }
}

#[test]
fn without_the_privilege_every_command_is_denied_and_recorded() {
    let machine = shared(FakeMachine::demo());
    machine.lock().unwrap().partitions[LINUX].facts.privileges = 0;
    for args in [&["list"][..], &["stats"], &["events"], &["restart", "sensor"]] {
        let (_, result) = run(&machine, args);
        assert!(matches!(result, Err(Error::Refused { status: Status::Denied, .. })), "{args:?}");
    }
    let m = machine.lock().unwrap();
    assert_eq!(m.actions.len(), 4);
    let linux = m.partitions[LINUX].counters.snapshot(0, m.now_ns);
    assert_eq!(linux.health[EventClass::ForbiddenInstruction as usize], 4);
    assert_eq!(linux.events.events[0].place, Place::Hypercall { number: 10 });
}
