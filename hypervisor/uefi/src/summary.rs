//! The counters table on the console (hallows-core's `counters::table` formats it): at
//! power-off, once every partition has halted, and when a partition with the `query`
//! privilege asks (`PrintSummary`); a refused request is a health-monitor event.

use core::sync::atomic::{AtomicBool, Ordering};

use hallows_abi::health::{Action, EventClass};
use hallows_core::counters::{table, Place};

use crate::hvlog;
use crate::machine::Machine;
use crate::partition::Partition;

/// Prints every partition's row, then each one's exits by reason and newest events.
pub fn print(m: &Machine, why: &dyn core::fmt::Display) {
    let now = m.now_ns();
    let name_width = table::name_width(m.partitions.iter().map(|p| p.name.as_str()));
    hvlog!("counters ({why}) at {}.{:03} s:", now / 1_000_000_000, now % 1_000_000_000 / 1_000_000);
    hvlog!("{}", table::Header { name_width });
    for p in &m.partitions {
        let counters = snapshot(m, p);
        let kind = if p.is_linux { "linux" } else { "rt" };
        let row = table::Row { name: &p.name, kind, state: p.lifecycle(), counters: &counters };
        hvlog!("{}", table::RowLine { row: &row, name_width });
    }
    for p in &m.partitions {
        let counters = snapshot(m, p);
        hvlog!("{}", table::ExitsLine { name: &p.name, counters: &counters });
        for line in table::event_lines(&p.name, &counters) {
            hvlog!("{line}");
        }
    }
}

fn snapshot(m: &Machine, p: &Partition) -> hallows_core::counters::Snapshot {
    p.counters.snapshot(p.restarts.load(Ordering::Relaxed), m.now_ns())
}

/// Whether the table was printed because every partition had halted.
static ALL_HALTED_PRINTED: AtomicBool = AtomicBool::new(false);

/// After a partition halted: prints the table once when none is left running.
pub fn after_halt(m: &Machine) {
    let all = m.partitions.iter().all(|p| p.lifecycle() == hallows_core::lifecycle::State::Halted);
    if all && !ALL_HALTED_PRINTED.swap(true, Ordering::Relaxed) {
        print(m, &"every partition halted");
    }
}

/// Partition `p` asked for the table without the `query` privilege (hypercall `number`):
/// refused, counted and logged as a health-monitor event it continues after.
pub fn refused(m: &Machine, p: &Partition, number: u64) {
    let class = EventClass::ForbiddenInstruction;
    p.counters.note_health(m.now_ns(), class, Place::Hypercall { number }, Action::Log);
    crate::hvlog_for!(
        p,
        "partition {}: {}: hypercall {number} needs the query privilege -> refused",
        p.name,
        class.name()
    );
}
