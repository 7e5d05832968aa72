//! The operator partition's commands: the RT counterpart of Linux's `rhctl`, over the
//! SDK's management client ([`rt_partition::manage::Manager`]). A command is one line:
//!
//! ```text
//! list                      one line per partition: name, kind, state, restarts
//! stats NAME                windows, overruns, exits, health events, restarts, uptime
//! events NAME               the partition's newest health-monitor events
//! restart NAME [clean]      halt NAME      start NAME
//! sleep MS                  wait (a script in `args` gives the machine time between steps)
//! bench stats NAME N        N counter reads: TSC ticks per read beside a null hypercall's
//! ```
//!
//! Several commands may share a line, separated by `;` (a partition's `args`). Every
//! command prints one result line or more through `out`, starting with the command
//! itself, e.g. `restart sensor: ok` or `list: refused (denied)`; nothing a command
//! or the hypervisor answers stops the partition.
#![no_std]
#![forbid(unsafe_code)]

use core::fmt::Write;

use hallows_abi::health::{Action, EventClass};
use hallows_abi::manage::field_text;
use rt_partition::manage::{Exchange, ManageError, Manager, Status, KIND_LINUX, STATE_NAMES};

/// What the commands need from the partition besides the management client.
pub trait Host {
    /// Waits `ms` milliseconds.
    fn sleep_ms(&mut self, ms: u64);
    /// The time stamp counter (in Bochs: instructions executed).
    fn ticks(&mut self) -> u64;
    /// One null hypercall (the round trip a counter read is compared with).
    fn null_call(&mut self);
}

/// Runs every `;`-separated command of `line`.
pub fn run_line<E: Exchange>(line: &str, m: &mut Manager<E>, out: &mut impl Write, host: &mut impl Host) {
    for command in line.split(';').map(str::trim).filter(|c| !c.is_empty()) {
        run(command, m, out, host);
    }
}

/// The most reads one `bench` makes.
pub const BENCH_MAX: u64 = 100_000;

/// The longest `sleep` (a typo must not stop the script for good).
pub const SLEEP_MAX_MS: u64 = 600_000;

/// Runs one command.
pub fn run<E: Exchange>(command: &str, m: &mut Manager<E>, out: &mut impl Write, host: &mut impl Host) {
    let mut words = command.split_whitespace();
    let verb = words.next().unwrap_or("");
    let name = words.next();
    let flag = words.next();
    if let ("sleep", Some(ms), None) = (verb, name.and_then(|n| n.parse::<u64>().ok()), flag) {
        host.sleep_ms(ms.min(SLEEP_MAX_MS));
        return;
    }
    if let ("bench", Some("stats"), Some(target)) = (verb, name, flag) {
        let n =
            words.next().and_then(|n| n.parse::<u64>().ok()).filter(|&n| n > 0).unwrap_or(1).min(BENCH_MAX);
        bench_stats(command, target, n, m, out, host);
        return;
    }
    let result = match (verb, name, flag) {
        ("list", None, None) => list(m, out),
        ("stats", Some(n), None) => with_target(m, n, |m, i| stats(m, i, n, out)),
        ("events", Some(n), None) => with_target(m, n, |m, i| events(m, i, n, out)),
        ("restart", Some(n), None | Some("clean")) => with_target(m, n, |m, i| m.restart(i, flag.is_some())),
        ("halt", Some(n), None) => with_target(m, n, |m, i| m.halt(i)),
        ("start", Some(n), None) => with_target(m, n, |m, i| m.start(i)),
        _ => {
            let _ = writeln!(
                out,
                "{command}: unknown command (list | stats NAME | events NAME | restart NAME [clean] | halt NAME | start NAME | sleep MS | bench stats NAME N)"
            );
            return;
        }
    };
    let _ = match result {
        Ok(()) => writeln!(out, "{command}: ok"),
        Err(Failure::NoSuchPartition) => writeln!(out, "{command}: no such partition"),
        Err(Failure::Manage(e)) => writeln!(out, "{command}: refused ({})", describe(e)),
    };
}

/// `bench stats NAME N`: the mean TSC ticks of N counter reads, and of N null hypercalls
/// in the same run (the ratio is what to compare across machines).
fn bench_stats<E: Exchange>(
    command: &str,
    target: &str,
    n: u64,
    m: &mut Manager<E>,
    out: &mut impl Write,
    host: &mut impl Host,
) {
    let index = match m.find(target) {
        Ok(Some(i)) => i,
        Ok(None) => {
            let _ = writeln!(out, "{command}: no such partition");
            return;
        }
        Err(e) => {
            let _ = writeln!(out, "{command}: refused ({})", describe(e));
            return;
        }
    };
    let start = host.ticks();
    for _ in 0..n {
        if let Err(e) = m.stats(index) {
            let _ = writeln!(out, "{command}: refused ({})", describe(e));
            return;
        }
    }
    let stats = host.ticks().wrapping_sub(start) / n;
    let start = host.ticks();
    for _ in 0..n {
        host.null_call();
    }
    let null = host.ticks().wrapping_sub(start) / n;
    let _ = writeln!(out, "{command}: {stats} ticks per counter read, {null} per null hypercall ({n} each)");
}

enum Failure {
    NoSuchPartition,
    Manage(ManageError),
}

impl From<ManageError> for Failure {
    fn from(e: ManageError) -> Self {
        Failure::Manage(e)
    }
}

fn describe(e: ManageError) -> &'static str {
    match e {
        ManageError::Refused(Status::Denied) => "denied: this partition lacks `privileges manage`",
        ManageError::Refused(s) => s.name(),
        ManageError::Hypercall(_) => "the hypercall failed",
        ManageError::Malformed => "unreadable answer",
    }
}

fn with_target<E: Exchange>(
    m: &mut Manager<E>,
    name: &str,
    f: impl FnOnce(&mut Manager<E>, u32) -> Result<(), ManageError>,
) -> Result<(), Failure> {
    let index = m.find(name)?.ok_or(Failure::NoSuchPartition)?;
    f(m, index).map_err(Failure::Manage)
}

fn list<E: Exchange>(m: &mut Manager<E>, out: &mut impl Write) -> Result<(), Failure> {
    m.for_each_partition(|r| {
        let kind = if r.kind == KIND_LINUX { "linux" } else { "rt" };
        let state = STATE_NAMES.get(r.state as usize).copied().unwrap_or("?");
        let _ = writeln!(out, "list: {} {kind} {state} restarts {}", field_text(&r.name), r.restarts);
    })?;
    Ok(())
}

fn stats<E: Exchange>(
    m: &mut Manager<E>,
    index: u32,
    name: &str,
    out: &mut impl Write,
) -> Result<(), ManageError> {
    let s = m.stats(index)?;
    let exits: u64 = s.exits.iter().sum();
    let health: u64 = s.health.iter().sum();
    let _ = writeln!(
        out,
        "stats {name}: windows {} overruns {} exits {exits} health {health} restarts {} uptime_ms {}",
        s.windows,
        s.overruns,
        s.restarts,
        s.uptime_ns / 1_000_000
    );
    Ok(())
}

fn events<E: Exchange>(
    m: &mut Manager<E>,
    index: u32,
    name: &str,
    out: &mut impl Write,
) -> Result<(), ManageError> {
    let total = m.events(index, |e| {
        let class = EventClass::ALL.get(e.class as usize).map_or("?", |c| c.name());
        let action = Action::from_u8(e.action).map_or("?", |a| a.name());
        let _ = writeln!(out, "events {name}: {} ms {class} -> {action}", e.time_ns / 1_000_000);
    })?;
    let _ = writeln!(out, "events {name}: {total} in all");
    Ok(())
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use hallows_abi::manage::{KIND_RT, REQUEST_BYTES};
    use hallows_abi::table::PRIV_MANAGE;
    use hallows_core::counters::{PartitionCounters, Place, Snapshot};
    use hallows_core::lifecycle::State;
    use hallows_core::manage::{self, Action as Act, PartitionFacts};
    use std::string::String;
    use std::vec::Vec;

    /// The real decision function over a small machine; actions are recorded.
    struct Machine {
        states: Vec<State>,
        counters: Vec<PartitionCounters>,
        privileges: u32,
        actions: Vec<Act>,
    }

    const NAMES: [&str; 3] = ["linux", "sensor", "operator"];

    impl manage::Machine for Machine {
        fn partition_count(&self) -> usize {
            NAMES.len()
        }
        fn facts(&self, index: usize) -> PartitionFacts<'_> {
            PartitionFacts {
                name: NAMES[index],
                kind: if index == 0 { KIND_LINUX } else { KIND_RT },
                ..Default::default()
            }
        }
        fn state(&self, index: usize) -> State {
            self.states[index]
        }
        fn snapshot(&self, index: usize) -> Snapshot {
            self.counters[index].snapshot(0, 5_000_000)
        }
        fn now_ns(&self) -> u64 {
            5_000_000
        }
    }

    impl Exchange for &mut Machine {
        fn exchange(
            &mut self,
            request: &[u8; REQUEST_BYTES],
            response: &mut [u8],
        ) -> Result<usize, ManageError> {
            let served = manage::serve(2, self.privileges, request, &**self, response);
            if served.action == Act::Refused {
                return Err(ManageError::Refused(Status::Denied));
            }
            if served.action != Act::None {
                self.actions.push(served.action);
            }
            Ok(served.len)
        }
    }

    fn machine(privileges: u32) -> Machine {
        let counters: Vec<PartitionCounters> = (0..3).map(|_| PartitionCounters::new()).collect();
        counters[1].note_health(1_000_000, EventClass::Panic, Place::Reported, Action::RestartPartition);
        Machine { states: std::vec![State::Running; 3], counters, privileges, actions: Vec::new() }
    }

    /// Records sleeps; its clock advances 10 per look.
    #[derive(Default)]
    struct FakeHost {
        slept: Vec<u64>,
        clock: u64,
        nulls: u64,
    }

    impl Host for FakeHost {
        fn sleep_ms(&mut self, ms: u64) {
            self.slept.push(ms);
        }
        fn ticks(&mut self) -> u64 {
            self.clock += 10;
            self.clock
        }
        fn null_call(&mut self) {
            self.nulls += 1;
        }
    }

    fn run_on(machine: &mut Machine, line: &str) -> String {
        let mut out = String::new();
        let mut host = FakeHost::default();
        run_line(line, &mut Manager::new(machine), &mut out, &mut host);
        for ms in host.slept {
            out.push_str(&std::format!("slept {ms}\n"));
        }
        out.push_str(&std::format!("nulls {}\n", host.nulls));
        out
    }

    #[test]
    fn bench_reads_counters_and_compares_with_null_hypercalls() {
        let mut m = machine(PRIV_MANAGE);
        let out = run_on(&mut m, "bench stats sensor 5; bench stats nobody 5");
        assert!(
            out.contains("bench stats sensor 5: 2 ticks per counter read, 2 per null hypercall (5 each)"),
            "{out}"
        );
        assert!(out.contains("bench stats nobody 5: no such partition"), "{out}");
        assert!(out.contains("nulls 5\n"), "{out}");
        let mut m = machine(0);
        assert!(run_on(&mut m, "bench stats sensor 3").contains("bench stats sensor 3: refused (denied"));
    }

    #[test]
    fn commands_reach_the_decisions_and_say_how_they_went() {
        let mut m = machine(PRIV_MANAGE);
        let out = run_on(
            &mut m,
            "list; restart linux; restart sensor clean; halt nobody; stats sensor; events sensor",
        );
        assert!(out.contains("list: linux linux running restarts 0\n"), "{out}");
        assert!(out.contains("list: sensor rt running restarts 0\n"), "{out}");
        assert!(out.contains("restart linux: ok\n"), "{out}");
        assert!(out.contains("restart sensor clean: ok\n"), "{out}");
        assert!(out.contains("halt nobody: no such partition\n"), "{out}");
        assert!(
            out.contains("stats sensor: windows 0 overruns 0 exits 0 health 1 restarts 0 uptime_ms 0\n"),
            "{out}"
        );
        assert!(out.contains("events sensor: 1 ms panic -> restart\n"), "{out}");
        assert!(out.contains("events sensor: 1 in all\n"), "{out}");
        assert_eq!(m.actions.len(), 2);
    }

    #[test]
    fn the_caller_itself_and_wrong_states_are_refused() {
        let mut m = machine(PRIV_MANAGE);
        let out =
            run_on(&mut m, "restart operator; start sensor; frobnicate; sleep 20; sleep 99999999; sleep x");
        assert!(out.contains("restart operator: refused (partition is the caller itself)"), "{out}");
        assert!(out.contains("start sensor: refused (not possible in the partition's state)"), "{out}");
        assert!(out.contains("frobnicate: unknown command"), "{out}");
        assert!(out.contains("sleep x: unknown command"), "{out}");
        assert!(out.contains("slept 20\nslept 600000\n"), "{out}");
        assert!(m.actions.is_empty());
    }

    #[test]
    fn without_the_privilege_everything_is_denied() {
        let mut m = machine(0);
        let out = run_on(&mut m, "list; restart sensor");
        assert!(out.contains("list: refused (denied: this partition lacks `privileges manage`)"), "{out}");
        assert!(out.contains("restart sensor: refused (denied"), "{out}");
        assert!(m.actions.is_empty());
    }
}
