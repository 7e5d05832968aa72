//! The console glue: hallows-core's line multiplexer writes whole lines to COM1 through
//! this sink, under the serial lock, so lines from different cores never interleave.

use hallows_core::console::ConsoleSink;

/// Writes whole console lines to COM1.
pub struct SerialSink;

impl ConsoleSink for SerialSink {
    fn write_line(&mut self, line: &[u8]) {
        crate::serial::write_bytes(line);
    }
}
