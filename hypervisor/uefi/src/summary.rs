//! The counters table on the console (hallows-core's `counters::table` formats it): at
//! power-off, once every partition has halted, and when a partition with the `query`
//! privilege asks (`PrintSummary`); a refused request (of any privileged hypercall) is a
//! health-monitor event.

use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, Ordering};

use hallows_core::counters::table::{self, Row};
use hallows_core::lifecycle::State;

use crate::hvlog;
use crate::machine::Machine;
use crate::partition::Partition;

/// Prints the table: every partition's row, then each one's exits and newest events.
pub fn print(m: &Machine, why: &dyn core::fmt::Display) {
    let now = m.now_ns();
    let snapshots: Vec<_> =
        m.partitions.iter().map(|p| p.counters.snapshot(p.restarts.load(Ordering::Relaxed), now)).collect();
    let rows: Vec<Row> = m
        .partitions
        .iter()
        .zip(&snapshots)
        .map(|(p, s)| Row {
            name: &p.name,
            kind: if p.is_linux { "linux" } else { "rt" },
            state: p.lifecycle(),
            counters: s,
        })
        .collect();
    table::write(why, now, &rows, &mut |line| hvlog!("{line}"));
}

/// Whether the table was printed because every partition had halted.
static ALL_HALTED_PRINTED: AtomicBool = AtomicBool::new(false);

/// After a partition halted: prints the table once when none is left running.
pub fn after_halt(m: &Machine) {
    let all = m.partitions.iter().all(|p| p.lifecycle() == State::Halted);
    if all && !ALL_HALTED_PRINTED.swap(true, Ordering::Relaxed) {
        print(m, &"every partition halted");
    }
}

/// Partition `p` made hypercall `number` (or, for Linux, a management request) without
/// the privilege it needs: a health event, logged and counted.
pub fn refused(m: &Machine, p: &Partition, number: u64) {
    let class = p.counters.note_refusal(m.now_ns(), number);
    let privilege = hallows_core::hypercall::privilege_needed(number);
    crate::hvlog_for!(
        p,
        "partition {}: {}: hypercall {number} needs the {privilege} privilege -> refused",
        p.name,
        class.name()
    );
}
