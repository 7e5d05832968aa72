//! The console glue: hallows-core's line multiplexer writes whole lines to COM1 through
//! these sinks, under the serial lock, so lines from different cores never interleave.

use hallows_core::console::ConsoleSink;

/// Queues partitions' console lines for COM1 (see `serial::queue_bytes`): a partition's
/// console write costs it a copy, not the UART's line rate.
pub struct SerialSink;

impl ConsoleSink for SerialSink {
    fn write_line(&mut self, line: &[u8]) {
        crate::serial::queue_bytes(line);
    }
}

/// Writes the hypervisor's own `[hv]` lines: at once during boot, queued (in order with
/// the partitions' lines) once partitions run; `serial::drain` empties the queue before
/// a power-off.
pub struct HvSink;

impl ConsoleSink for HvSink {
    fn write_line(&mut self, line: &[u8]) {
        crate::serial::write_hv_line(line);
    }
}
