//! The console multiplexer: every partition's bytes become whole lines
//! `[name] text\r\n` on the hypervisor's serial port, and the hypervisor's own lines are
//! `[hv] text\r\n`.
//!
//! Each partition owns a [`LineBuffer`]. Bytes are buffered until a newline; a line longer
//! than [`MAX_LINE`] bytes is emitted in pieces, every piece but the last ending with a
//! `\` continuation marker. Each emitted line goes to the [`ConsoleSink`] in a single
//! `write_line` call, so a sink that holds its lock for the duration of one call keeps
//! lines from different cores whole.
//!
//! Lines are sanitised on the way out: `\r` is dropped, a tab becomes a space, every other
//! control character (C0, DEL, C1) and every byte that is not part of valid UTF-8 becomes
//! `?`, so no partition can send escape sequences to the operator's terminal.
//!
//! ```
//! use hallows_core::console::{hv_line, ConsoleSink, LineBuffer};
//! struct Out(Vec<u8>);
//! impl ConsoleSink for Out {
//!     fn write_line(&mut self, line: &[u8]) { self.0.extend_from_slice(line) }
//! }
//! let mut out = Out(Vec::new());
//! let mut hello = LineBuffer::new();
//! hello.push("hello", b"Hi\x1b[2J there\npartial", &mut out);
//! hv_line(&mut out, format_args!("partition {}: halted", "hello"));
//! assert_eq!(out.0, b"[hello] Hi?[2J there\r\n[hv] partition hello: halted\r\n");
//! ```

use core::fmt;

/// Longest line body emitted at once (bytes of partition output per line).
pub const MAX_LINE: usize = 160;
/// Longest name shown in a line prefix (longer names are cut).
pub const MAX_NAME: usize = 32;
/// Longest hypervisor line body (longer text is cut).
pub const MAX_HV_LINE: usize = 200;
const OUT_BYTES: usize = 1 + MAX_NAME + 2 + MAX_HV_LINE + 3;

/// Where whole lines go (the serial port, behind a lock, in the binary).
pub trait ConsoleSink {
    /// Writes one complete line, including its `\r\n`.
    fn write_line(&mut self, line: &[u8]);
}

/// One partition's pending, not yet complete line.
#[derive(Clone, Debug)]
pub struct LineBuffer {
    buf: [u8; MAX_LINE],
    len: usize,
}

impl Default for LineBuffer {
    fn default() -> Self {
        Self::new()
    }
}

impl LineBuffer {
    pub const fn new() -> Self {
        LineBuffer { buf: [0; MAX_LINE], len: 0 }
    }

    /// Bytes waiting for their newline.
    pub fn pending(&self) -> usize {
        self.len
    }

    /// Adds a partition's output; emits every completed line as `[name] ...`.
    pub fn push(&mut self, name: &str, bytes: &[u8], sink: &mut impl ConsoleSink) {
        for &b in bytes {
            match b {
                b'\n' => self.emit(name, false, sink),
                b'\r' => {}
                _ => {
                    self.buf[self.len] = b;
                    self.len += 1;
                    if self.len == MAX_LINE {
                        self.emit(name, true, sink);
                    }
                }
            }
        }
    }

    /// An upper bound of what [`push`](Self::push)`(name, bytes)` would emit now: the
    /// lines and their bytes in all, each with its prefix, continuation marker and
    /// `\r\n`. Sanitising never makes text longer, so the bound counts the raw bytes;
    /// for printable ASCII it is exact. Lets a bounded queue refuse a whole write before
    /// any of it is taken.
    pub fn push_bound(&self, name: &str, bytes: &[u8]) -> EmitBound {
        let prefix = 3 + name.len().min(MAX_NAME);
        let line_bytes =
            |body: usize, continued: bool| (prefix + body + continued as usize).min(OUT_BYTES - 2) + 2;
        let mut bound = EmitBound::default();
        let mut pending = self.len;
        for &b in bytes {
            match b {
                b'\n' => {
                    bound.add(line_bytes(pending, false));
                    pending = 0;
                }
                b'\r' => {}
                _ => {
                    pending += 1;
                    if pending == MAX_LINE {
                        bound.add(line_bytes(pending, true));
                        pending = 0;
                    }
                }
            }
        }
        bound
    }

    /// An upper bound of what [`flush`](Self::flush)`(name)` would emit now.
    pub fn flush_bound(&self, name: &str) -> EmitBound {
        let mut bound = EmitBound::default();
        if self.len > 0 {
            bound.add((3 + name.len().min(MAX_NAME) + self.len).min(OUT_BYTES - 2) + 2);
        }
        bound
    }

    /// Emits a pending partial line (when the partition halts or restarts).
    pub fn flush(&mut self, name: &str, sink: &mut impl ConsoleSink) {
        if self.len > 0 {
            self.emit(name, false, sink);
        }
    }

    fn emit(&mut self, name: &str, continued: bool, sink: &mut impl ConsoleSink) {
        let mut out = Line::new();
        out.prefix(name);
        out.sanitised(&self.buf[..self.len]);
        if continued {
            out.push(b'\\');
        }
        out.finish(sink);
        self.len = 0;
    }
}

/// How many lines, and bytes in all, some console input emits at most (see
/// [`LineBuffer::push_bound`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EmitBound {
    pub lines: usize,
    pub bytes: usize,
}

impl EmitBound {
    fn add(&mut self, line_bytes: usize) {
        self.lines += 1;
        self.bytes += line_bytes;
    }
}

/// The most bytes one write of at most `max_bytes` bytes with at most `max_newlines`
/// newlines can make a [`LineBuffer`] emit (a pending partial line included), counting
/// `header` bytes of framing per line: a queue of at least this size takes any such
/// write once it is empty, so a write refused for lack of room always goes in later.
pub const fn worst_case_emit(max_bytes: usize, max_newlines: usize, header: usize) -> usize {
    // Text: the write plus up to a line's worth already pending.
    let text = max_bytes + MAX_LINE - 1;
    // A line per newline, and one per MAX_LINE bytes of text without one.
    let lines = max_newlines + text / MAX_LINE;
    // Per line: `[name] `, a continuation marker, `\r\n` and the framing.
    text + lines * (3 + MAX_NAME + 1 + 2 + header)
}

/// Emits a hypervisor line `[hv] <args>\r\n` (cut at [`MAX_HV_LINE`] bytes).
pub fn hv_line(sink: &mut impl ConsoleSink, args: fmt::Arguments<'_>) {
    let mut text = Line::new();
    // Formatting into a bounded buffer cannot fail; overflow is cut silently.
    let _ = fmt::write(&mut text, args);
    let mut out = Line::new();
    out.prefix("hv");
    out.sanitised(&text.bytes[..text.len.min(MAX_HV_LINE)]);
    out.finish(sink);
}

/// Writes a partition's message (guest bytes, any encoding) as text: trailing whitespace
/// left out, invalid UTF-8 as U+FFFD (control characters are the console's to sanitise).
pub fn write_lossy(out: &mut impl fmt::Write, message: &[u8]) -> fmt::Result {
    for chunk in message.trim_ascii_end().utf8_chunks() {
        out.write_str(chunk.valid())?;
        if !chunk.invalid().is_empty() {
            out.write_char('\u{fffd}')?;
        }
    }
    Ok(())
}

/// A bounded line being composed.
struct Line {
    bytes: [u8; OUT_BYTES],
    len: usize,
}

impl Line {
    fn new() -> Self {
        Line { bytes: [0; OUT_BYTES], len: 0 }
    }

    /// Appends one byte; leaves room for the line end.
    fn push(&mut self, b: u8) {
        if self.len < OUT_BYTES - 2 {
            self.bytes[self.len] = b;
            self.len += 1;
        }
    }

    fn prefix(&mut self, name: &str) {
        self.push(b'[');
        let mut cut = name.len().min(MAX_NAME);
        while !name.is_char_boundary(cut) {
            cut -= 1;
        }
        self.sanitised(&name.as_bytes()[..cut]);
        self.push(b']');
        self.push(b' ');
    }

    fn sanitised(&mut self, bytes: &[u8]) {
        for chunk in bytes.utf8_chunks() {
            for c in chunk.valid().chars() {
                match c {
                    '\t' => self.push(b' '),
                    c if c.is_control() => self.push(b'?'),
                    c => {
                        let mut utf8 = [0u8; 4];
                        for &b in c.encode_utf8(&mut utf8).as_bytes() {
                            self.push(b);
                        }
                    }
                }
            }
            for _ in chunk.invalid() {
                self.push(b'?');
            }
        }
    }

    fn finish(mut self, sink: &mut impl ConsoleSink) {
        self.bytes[self.len] = b'\r';
        self.bytes[self.len + 1] = b'\n';
        sink.write_line(&self.bytes[..self.len + 2]);
    }
}

impl fmt::Write for Line {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for &b in s.as_bytes() {
            self.push(b);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Sink {
        lines: Vec<Vec<u8>>,
    }

    impl ConsoleSink for Sink {
        fn write_line(&mut self, line: &[u8]) {
            assert!(line.ends_with(b"\r\n"));
            self.lines.push(line.to_vec());
        }
    }

    impl Sink {
        fn text(&self) -> Vec<String> {
            self.lines.iter().map(|l| String::from_utf8(l.clone()).unwrap()).collect()
        }
    }

    #[test]
    fn lines_are_buffered_until_newline() {
        let mut sink = Sink::default();
        let mut b = LineBuffer::new();
        b.push("p", b"hel", &mut sink);
        assert!(sink.lines.is_empty());
        assert_eq!(b.pending(), 3);
        b.push("p", b"lo\r\nworld\n\n", &mut sink);
        assert_eq!(sink.text(), ["[p] hello\r\n", "[p] world\r\n", "[p] \r\n"]);
        b.push("p", b"tail", &mut sink);
        b.flush("p", &mut sink);
        b.flush("p", &mut sink);
        assert_eq!(sink.text().last().unwrap(), "[p] tail\r\n");
        assert_eq!(sink.lines.len(), 4);
    }

    #[test]
    fn interleaved_partitions_stay_line_atomic() {
        let mut sink = Sink::default();
        let (mut a, mut b) = (LineBuffer::new(), LineBuffer::new());
        a.push("alpha", b"one ", &mut sink);
        b.push("beta", b"uno ", &mut sink);
        a.push("alpha", b"two\n", &mut sink);
        b.push("beta", b"dos\n", &mut sink);
        assert_eq!(sink.text(), ["[alpha] one two\r\n", "[beta] uno dos\r\n"]);
    }

    #[test]
    fn long_lines_are_cut_with_a_continuation_marker() {
        let mut sink = Sink::default();
        let mut b = LineBuffer::new();
        let long = vec![b'x'; MAX_LINE * 2 + 5];
        b.push("p", &long, &mut sink);
        b.push("p", b"\n", &mut sink);
        let text = sink.text();
        assert_eq!(text.len(), 3);
        assert_eq!(text[0], format!("[p] {}\\\r\n", "x".repeat(MAX_LINE)));
        assert_eq!(text[1], text[0]);
        assert_eq!(text[2], "[p] xxxxx\r\n");
    }

    #[test]
    fn control_characters_and_bad_utf8_are_neutralised() {
        let mut sink = Sink::default();
        let mut b = LineBuffer::new();
        b.push("p", b"a\x1b[31mb\tc\x07\x7f\xc2\x9bd\xff\xc3\xa9\n", &mut sink);
        assert_eq!(sink.text(), ["[p] a?[31mb c???d?\u{e9}\r\n"]);
        let mut names = Sink::default();
        hv_line(&mut names, format_args!("{}", "evil\x1b]0;title\x07"));
        assert_eq!(names.text(), ["[hv] evil?]0;title?\r\n"]);
    }

    #[test]
    fn hv_lines_and_names_are_bounded() {
        let mut sink = Sink::default();
        hv_line(&mut sink, format_args!("{}", "y".repeat(1000)));
        assert_eq!(sink.lines[0].len(), 5 + MAX_HV_LINE + 2);
        let mut b = LineBuffer::new();
        let name = "é".repeat(40);
        b.push(&name, b"x\n", &mut sink);
        assert_eq!(sink.text()[1], format!("[{}] x\r\n", "é".repeat(16)));
    }

    #[test]
    fn push_bound_is_exact_for_printable_ascii() {
        let mut sink = Sink::default();
        let mut b = LineBuffer::new();
        b.push("name", b"pending ", &mut sink);
        let input = [&b"one\r\n\ntwo\n"[..], &[b'x'; MAX_LINE * 2 + 3], b"\nrest"].concat();
        let bound = b.push_bound("name", &input);
        b.push("name", &input, &mut sink);
        let total: usize = sink.lines.iter().map(Vec::len).sum();
        assert_eq!(bound, EmitBound { lines: sink.lines.len(), bytes: total });
        assert_eq!(bound.lines, 6);
        assert_eq!(b.flush_bound("name"), EmitBound { lines: 1, bytes: "[name] rest\r\n".len() });
        assert_eq!(LineBuffer::new().flush_bound("name"), EmitBound::default());
        assert_eq!(LineBuffer::new().push_bound("name", b"no newline"), EmitBound::default());
    }

    #[test]
    fn worst_case_emit_covers_the_worst_writes() {
        const HEADER: usize = 2;
        let name = "n".repeat(MAX_NAME + 5);
        let bound = worst_case_emit(4096, 32, HEADER);
        let mut pending = LineBuffer::new();
        pending.push(&name, &[b'p'; MAX_LINE - 1], &mut Sink::default());
        // Newlines up front (empty lines are the most expensive per byte), then text.
        let mut newlines_first = vec![b'\n'; 32];
        newlines_first.resize(4096, b'x');
        // Text cut just before every continuation, newlines spread.
        let spread: Vec<u8> = (0..4096).map(|i| if i % 128 == 127 { b'\n' } else { b'y' }).collect();
        for input in [newlines_first, spread, vec![b'z'; 4096]] {
            for b in [&pending, &LineBuffer::new()] {
                let need = b.push_bound(&name, &input);
                assert!(need.bytes + need.lines * HEADER <= bound, "{need:?} > {bound}");
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn worst_case_emit_bounds_any_write(
            pending in 0usize..MAX_LINE,
            newlines in proptest::collection::vec(0usize..4096, 0..=32),
            len in 0usize..=4096,
        ) {
            let name = "x".repeat(MAX_NAME);
            let mut b = LineBuffer::new();
            b.push(&name, &vec![b'p'; pending], &mut Sink::default());
            let mut input = vec![b'w'; len];
            for at in newlines.into_iter().filter(|&at| at < len) {
                input[at] = b'\n';
            }
            let need = b.push_bound(&name, &input);
            proptest::prop_assert!(need.bytes + need.lines * 2 <= worst_case_emit(4096, 32, 2));
        }

        #[test]
        fn push_and_flush_bounds_hold_for_any_input(
            name in "\\PC{0,40}",
            chunks in proptest::collection::vec(proptest::collection::vec(proptest::num::u8::ANY, 0..400), 0..6),
        ) {
            let mut b = LineBuffer::new();
            let mut sink = Sink::default();
            for c in &chunks {
                let bound = b.push_bound(&name, c);
                let before = (sink.lines.len(), sink.lines.iter().map(Vec::len).sum::<usize>());
                b.push(&name, c, &mut sink);
                let total: usize = sink.lines.iter().map(Vec::len).sum();
                proptest::prop_assert_eq!(bound.lines, sink.lines.len() - before.0);
                proptest::prop_assert!(bound.bytes >= total - before.1);
            }
            let bound = b.flush_bound(&name);
            let before = (sink.lines.len(), sink.lines.iter().map(Vec::len).sum::<usize>());
            b.flush(&name, &mut sink);
            let total: usize = sink.lines.iter().map(Vec::len).sum();
            proptest::prop_assert_eq!(bound.lines, sink.lines.len() - before.0);
            proptest::prop_assert!(bound.bytes >= total - before.1);
        }

        #[test]
        fn every_emitted_line_is_clean_and_bounded(chunks in proptest::collection::vec(proptest::collection::vec(proptest::num::u8::ANY, 0..400), 0..8)) {
            let mut sink = Sink::default();
            let mut b = LineBuffer::new();
            for c in &chunks {
                b.push("part", c, &mut sink);
            }
            b.flush("part", &mut sink);
            let newlines = chunks.iter().flatten().filter(|&&x| x == b'\n').count();
            proptest::prop_assert!(sink.lines.len() >= newlines);
            for line in &sink.lines {
                let s = core::str::from_utf8(line).unwrap();
                proptest::prop_assert!(s.starts_with("[part] "));
                let body = &s[..s.len() - 2];
                proptest::prop_assert!(!body.chars().any(|c| c.is_control()));
                proptest::prop_assert!(line.len() <= 7 + MAX_LINE + 1 + 2);
            }
        }
    }

    #[test]
    fn guest_messages_become_text() {
        let mut out = alloc::string::String::new();
        write_lossy(&mut out, b"stack overflow in \xff\xfetask 3 \r\n\t ").unwrap();
        assert_eq!(out, "stack overflow in \u{fffd}\u{fffd}task 3");
    }
}
