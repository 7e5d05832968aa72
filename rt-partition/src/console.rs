//! The partition console: `print!`/`println!` over the `ConsoleWrite` hypercall.
//!
//! Text is collected in a line buffer and handed to the hypervisor one line at a time (or
//! 4 KiB at a time for longer lines), so a line costs one VM exit and lines of different
//! vCPUs of the partition do not interleave mid-line. When the partition's console queue
//! in the hypervisor is full, printing waits (yielding the processor) until the UART has
//! made room: a partition that prints faster than the UART sends slows only itself.

use core::fmt;

use hallows_abi::hypercall::CONSOLE_WRITE_MAX;

/// Capacity of the line buffer: the most one `ConsoleWrite` may carry.
pub const LINE_CAPACITY: usize = CONSOLE_WRITE_MAX as usize;

/// Collects bytes and emits them whenever a line is complete or the buffer is full.
pub struct LineBuffer {
    buf: [u8; LINE_CAPACITY],
    len: usize,
}

impl LineBuffer {
    /// An empty buffer.
    pub const fn new() -> Self {
        Self { buf: [0; LINE_CAPACITY], len: 0 }
    }

    /// Bytes waiting for the end of their line.
    pub fn pending(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// Appends `bytes`, calling `emit` with each completed line (newline included) and with
    /// the whole buffer whenever it fills up without a newline.
    pub fn write(&mut self, mut bytes: &[u8], emit: &mut impl FnMut(&[u8])) {
        while !bytes.is_empty() {
            let room = LINE_CAPACITY - self.len;
            let take = bytes.len().min(room);
            let (head, rest) = bytes.split_at(take);
            match head.iter().position(|&b| b == b'\n') {
                Some(nl) => {
                    self.buf[self.len..self.len + nl + 1].copy_from_slice(&head[..=nl]);
                    self.len += nl + 1;
                    self.flush(emit);
                    bytes = &bytes[nl + 1..];
                }
                None => {
                    self.buf[self.len..self.len + take].copy_from_slice(head);
                    self.len += take;
                    if self.len == LINE_CAPACITY {
                        self.flush(emit);
                    }
                    bytes = rest;
                }
            }
        }
    }

    /// Emits whatever is pending, even without a newline.
    pub fn flush(&mut self, emit: &mut impl FnMut(&[u8])) {
        if self.len > 0 {
            emit(&self.buf[..self.len]);
            self.len = 0;
        }
    }
}

impl Default for LineBuffer {
    fn default() -> Self {
        Self::new()
    }
}

/// Adapts a [`LineBuffer`] and an emit function to [`fmt::Write`].
struct Formatter<'a, F: FnMut(&[u8])> {
    line: &'a mut LineBuffer,
    emit: F,
}

impl<F: FnMut(&[u8])> fmt::Write for Formatter<'_, F> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.line.write(s.as_bytes(), &mut self.emit);
        Ok(())
    }
}

/// Formats `args` into `line`, emitting completed lines through `emit`.
pub fn format_into(line: &mut LineBuffer, args: fmt::Arguments<'_>, emit: impl FnMut(&[u8])) {
    let _ = fmt::write(&mut Formatter { line, emit }, args);
}

/// The partition-wide console buffer.
static CONSOLE: spin::Mutex<LineBuffer> = spin::Mutex::new(LineBuffer::new());

fn emit_to_hypervisor(bytes: &[u8]) {
    // Waits (yielding) while the partition's console queue is full; nothing sensible can
    // be done when the console itself fails.
    let _ = crate::hypercall::console_write(bytes);
}

/// Implementation of [`print!`](crate::print) and [`println!`](crate::println).
#[doc(hidden)]
pub fn _print(args: fmt::Arguments<'_>) {
    format_into(&mut CONSOLE.lock(), args, emit_to_hypervisor);
}

/// Sends any unfinished line to the hypervisor now.
pub fn flush() {
    CONSOLE.lock().flush(&mut emit_to_hypervisor);
}

/// Flushes the console buffer if nobody holds it (used by the panic handler, which must not
/// deadlock when the panic happened while printing).
#[cfg_attr(not(target_os = "none"), allow(dead_code))]
pub(crate) fn try_flush() {
    if let Some(mut line) = CONSOLE.try_lock() {
        line.flush(&mut emit_to_hypervisor);
    }
}

/// Prints to the partition console.
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => { $crate::console::_print(format_args!($($arg)*)) };
}

/// Prints a line to the partition console.
#[macro_export]
macro_rules! println {
    () => { $crate::print!("\n") };
    ($($arg:tt)*) => { $crate::console::_print(format_args!("{}\n", format_args!($($arg)*))) };
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use proptest::prelude::*;
    use std::vec::Vec;

    fn collect(inputs: &[&[u8]]) -> (Vec<Vec<u8>>, Vec<u8>) {
        let mut line = LineBuffer::new();
        let mut out = Vec::new();
        for i in inputs {
            line.write(i, &mut |b: &[u8]| out.push(b.to_vec()));
        }
        (out, line.pending().to_vec())
    }

    #[test]
    fn one_emit_per_line() {
        let (out, pending) = collect(&[b"hel", b"lo\nwor", b"ld\n", b"tail"]);
        assert_eq!(out, [b"hello\n".to_vec(), b"world\n".to_vec()]);
        assert_eq!(pending, b"tail");
    }

    #[test]
    fn long_line_is_emitted_in_full_buffers() {
        let long = [b'x'; LINE_CAPACITY * 2 + 10];
        let (out, pending) = collect(&[&long]);
        assert_eq!(out.len(), 2);
        assert!(out.iter().all(|c| c.len() == LINE_CAPACITY));
        assert_eq!(pending.len(), 10);
    }

    #[test]
    fn flush_emits_partial_line_once() {
        let mut line = LineBuffer::new();
        let mut out = Vec::new();
        line.write(b"abc", &mut |b: &[u8]| out.push(b.to_vec()));
        line.flush(&mut |b: &[u8]| out.push(b.to_vec()));
        line.flush(&mut |b: &[u8]| out.push(b.to_vec()));
        assert_eq!(out, [b"abc".to_vec()]);
    }

    #[test]
    fn format_into_formats_arguments() {
        let mut line = LineBuffer::new();
        let mut out = Vec::new();
        format_into(&mut line, format_args!("tick {} of {}\n", 3, "x"), |b: &[u8]| out.push(b.to_vec()));
        assert_eq!(out, [b"tick 3 of x\n".to_vec()]);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Whatever the chunking, the emitted bytes plus the pending ones are the input, and
        /// every emit is either a line ending in a newline or a full buffer.
        #[test]
        fn bytes_are_neither_lost_nor_reordered(chunks in proptest::collection::vec(
            // About one byte in eight is a newline; long chunks overflow the buffer.
            proptest::collection::vec(any::<u8>().prop_map(|b| if b < 32 { b'\n' } else { b }), 0..3000)
                .prop_map(|mut c| { if c.len() > 2000 { c.retain(|&b| b != b'\n') } c }),
            0..8)) {
            let refs: Vec<&[u8]> = chunks.iter().map(|c| c.as_slice()).collect();
            let (out, pending) = collect(&refs);
            let mut all: Vec<u8> = out.concat();
            all.extend_from_slice(&pending);
            prop_assert_eq!(all, chunks.concat());
            for emit in &out {
                let nl = emit.iter().position(|&b| b == b'\n');
                prop_assert!(emit.len() == LINE_CAPACITY || nl == Some(emit.len() - 1));
                prop_assert!(nl.is_none() || nl == Some(emit.len() - 1));
            }
            prop_assert!(!pending.contains(&b'\n'));
        }
    }
}
