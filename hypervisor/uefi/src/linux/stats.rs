//! Exit statistics of a Linux partition and the `/init` marker in its console stream.

use core::sync::atomic::Ordering;

use hallows_core::linux_vcpu::stats::{ExitCounts, MarkerMatch};

use super::LinuxPartition;
use crate::machine::Machine;
use crate::text::Text;
use crate::{cpu, hvlog};

/// The partition's VM exits by reason since its first entry (and since /init).
pub fn print_exit_counts(m: &Machine, l: &LinuxPartition, name: &str, why: &str) {
    let now = cpu::rdtsc();
    let first = l.first_entry_tsc.load(Ordering::SeqCst);
    let ticks = now.wrapping_sub(first);
    let init = l.init_marker_tsc.load(Ordering::SeqCst);
    if init != 0 {
        let (since, line) = exit_counts(&l.exits, Some(&l.init_marker_exits));
        let ms = m.ticks_to_ns(now.wrapping_sub(init)) / 1_000_000;
        hvlog!(
            "partition {}: /init reached (LINUX-INIT-OK) {} TSC ticks ({} ms) after its first entry; since then {since} VM exits in {ms} ms ({} per second):{line}",
            name,
            init.wrapping_sub(first),
            m.ticks_to_ns(init.wrapping_sub(first)) / 1_000_000,
            since * 1000 / ms.max(1)
        );
    }
    let (total, line) = exit_counts(&l.exits, None);
    hvlog!(
        "partition {}: {why} after {} TSC ticks ({} ms); {total} VM exits:{line}",
        name,
        ticks,
        m.ticks_to_ns(ticks) / 1_000_000
    );
}

/// Total and per-reason text of `counts` (minus `since`, a snapshot).
fn exit_counts(counts: &ExitCounts, since: Option<&ExitCounts>) -> (u64, Text<400>) {
    let mut line = Text::<400>::new();
    (counts.write_since(since, &mut line), line)
}

/// Records the TSC (and the exit counts) the first time the console stream shows the
/// `/init` marker (`stats::INIT_MARKER`).
pub fn note_marker(linux: &LinuxPartition, marker: &mut MarkerMatch, byte: u8) {
    if marker.feed(byte) {
        let now = cpu::rdtsc();
        if linux.init_marker_tsc.compare_exchange(0, now, Ordering::SeqCst, Ordering::SeqCst).is_ok() {
            linux.init_marker_exits.copy_from(&linux.exits);
        }
    }
}
