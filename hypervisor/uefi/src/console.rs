//! The console glue: hallows-core's line multiplexer turns a partition's bytes into whole
//! `[name] ...` lines in that partition's own bounded queue, and the hypervisor's lines
//! into `[hv] ...` lines in its queue; `serial` pumps the queues to the UART, line by line
//! in turn, so no partition's output makes anyone else wait.

use core::fmt;
use core::sync::atomic::Ordering;

use hallows_abi::hypercall::{CONSOLE_WRITE_MAX, CONSOLE_WRITE_MAX_LINES};
use hallows_core::console::{hv_line, worst_case_emit, ConsoleSink};
use hallows_core::console_queue::{Admission, LineQueue, LineRateLimit, LINE_HEADER};

use crate::partition::Partition;

/// Bytes of one partition's console queue: about 0.7 s of the UART's time.
pub const PARTITION_QUEUE_BYTES: usize = 8 * 1024;

/// One partition's queue of whole lines for the UART.
pub type PartitionQueue = LineQueue<PARTITION_QUEUE_BYTES>;

// Every `ConsoleWrite` the ABI allows fits an empty queue, so one refused with `Busy`
// always goes in once the queue has drained.
const _: () = assert!(
    worst_case_emit(CONSOLE_WRITE_MAX as usize, CONSOLE_WRITE_MAX_LINES as usize, LINE_HEADER)
        <= PARTITION_QUEUE_BYTES
);

/// Queued bytes above which a Linux partition's virtual UART reports its transmitter
/// busy: Linux then waits on its own core, with a quarter of its queue in flight.
pub const LINUX_BACKLOG_LIMIT: usize = PARTITION_QUEUE_BYTES / 4;

/// Burst of `[hv]` lines about one partition, and the lines a second after it.
const HV_LINES_BURST: u64 = 10;
const HV_LINES_PER_SECOND: u64 = 5;

/// A fresh rate limit for the `[hv]` lines about one partition.
pub const fn hv_line_limit() -> LineRateLimit {
    LineRateLimit::new(HV_LINES_BURST, HV_LINES_PER_SECOND)
}

/// Puts partition `p`'s completed lines into its queue; a line that does not fit is
/// dropped and counted (only `ConsoleWrite`'s room check prevents that).
pub struct PartitionSink<'a>(pub &'a Partition);

impl ConsoleSink for PartitionSink<'_> {
    fn write_line(&mut self, line: &[u8]) {
        if !crate::serial::queue_partition_line(self.0, line) {
            self.0.counters.console.lines_dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// A `ConsoleWrite` of partition `p`, all or nothing: false, with nothing taken, when its
/// queue lacks room now for the lines the write would complete.
pub fn partition_write(p: &Partition, bytes: &[u8]) -> bool {
    let mut line = p.console.lock();
    let need = line.push_bound(&p.name, bytes);
    // Only holders of `p.console` add to the queue, and the pump only removes: the room
    // seen here is still there while the lines go in.
    if need.lines > 0 && !p.console_queue.lock().fits(need.lines, need.bytes) {
        p.counters.console.busy_refusals.fetch_add(1, Ordering::Relaxed);
        return false;
    }
    line.push(&p.name, bytes, &mut PartitionSink(p));
    p.counters.console.bytes_accepted.fetch_add(bytes.len() as u64, Ordering::Relaxed);
    true
}

/// Output of partition `p` that bypasses the room check: its virtual UART (which reports
/// busy before the queue fills instead).
pub fn partition_output(p: &Partition, bytes: &[u8]) {
    p.console.lock().push(&p.name, bytes, &mut PartitionSink(p));
    p.counters.console.bytes_accepted.fetch_add(bytes.len() as u64, Ordering::Relaxed);
}

/// Queues partition `p`'s unfinished line (when it halts or restarts).
pub fn flush_partition(p: &Partition) {
    p.console.lock().flush(&p.name, &mut PartitionSink(p));
}

/// Whether partition `p`'s virtual UART should report its transmitter busy.
pub fn partition_backlogged(p: &Partition) -> bool {
    crate::serial::queued_bytes(p) > LINUX_BACKLOG_LIMIT
}

/// Writes a hypervisor line about partition `p` unless the partition has had its share
/// (see `hv_line_limit`); the first line after suppressed ones says how many there were.
pub fn partition_hv_line(p: &Partition, args: fmt::Arguments<'_>) {
    let now = crate::machine::MACHINE.get().map_or(0, |m| m.now_ns());
    let admission = p.hv_line_limit.lock().admit(now);
    match admission {
        Admission::Suppress => {
            p.counters.console.hv_lines_suppressed.fetch_add(1, Ordering::Relaxed);
        }
        Admission::Pass { suppressed_before } => {
            if suppressed_before > 0 {
                hv_line(
                    &mut HvSink,
                    format_args!("partition {}: {suppressed_before} lines suppressed", p.name),
                );
            }
            hv_line(&mut HvSink, args);
        }
    }
}

/// Writes the hypervisor's own `[hv]` lines: at once during boot, queued once partitions
/// run; `serial::drain` empties the queues before a power-off.
pub struct HvSink;

impl ConsoleSink for HvSink {
    fn write_line(&mut self, line: &[u8]) {
        crate::serial::write_hv_line(line);
    }
}
