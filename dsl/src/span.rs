//! Byte spans into the source text and their line/column positions.

/// A half-open byte range `start..end` of the source.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

impl Span {
    /// The span `start..end`.
    pub const fn new(start: usize, end: usize) -> Self {
        Self { start, end }
    }

    /// The smallest span covering both.
    pub fn to(self, other: Span) -> Span {
        Span { start: self.start.min(other.start), end: self.end.max(other.end) }
    }

    /// Length in bytes.
    pub fn len(self) -> usize {
        self.end.saturating_sub(self.start)
    }

    /// Whether the span covers no bytes.
    pub fn is_empty(self) -> bool {
        self.len() == 0
    }
}

/// A value with the span of source text it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Spanned<T> {
    pub value: T,
    pub span: Span,
}

impl<T> Spanned<T> {
    /// Pairs `value` with `span`.
    pub fn new(value: T, span: Span) -> Self {
        Self { value, span }
    }
}

/// Bytes between two character-count checkpoints of a [`LineIndex`].
const CHAR_CHECKPOINT: usize = 1024;

/// Whether `byte` starts a UTF-8 character (it is not a continuation byte).
fn starts_char(byte: u8) -> bool {
    byte & 0xc0 != 0x80
}

/// Line and column lookups for byte offsets of one source text, computed once per source
/// in one pass. A lookup costs a binary search over the line starts plus at most
/// `CHAR_CHECKPOINT` bytes of character counting, whatever the file's or the line's
/// length, so rendering diagnostics is linear in their number.
pub struct LineIndex {
    /// Byte offset of the start of every line.
    line_starts: Vec<usize>,
    /// `chars_before[k]`: characters in the first `k * CHAR_CHECKPOINT` bytes.
    chars_before: Vec<usize>,
    len: usize,
}

impl LineIndex {
    /// Indexes the line starts and character counts of `source`.
    pub fn new(source: &str) -> Self {
        let bytes = source.as_bytes();
        let mut line_starts = vec![0];
        line_starts.extend(source.match_indices('\n').map(|(i, _)| i + 1));
        let mut chars_before = Vec::with_capacity(bytes.len() / CHAR_CHECKPOINT + 1);
        let mut count = 0;
        chars_before.push(0);
        for chunk in bytes.chunks(CHAR_CHECKPOINT) {
            count += chunk.iter().filter(|b| starts_char(**b)).count();
            chars_before.push(count);
        }
        Self { line_starts, chars_before, len: bytes.len() }
    }

    /// Number of lines (a file without a final line break still has its last line).
    pub fn line_count(&self) -> usize {
        self.line_starts.len()
    }

    /// 0-based line holding byte `offset` (offsets past the end are on the last line).
    pub fn line_of(&self, offset: usize) -> usize {
        let offset = offset.min(self.len);
        self.line_starts.partition_point(|&s| s <= offset).saturating_sub(1)
    }

    /// Byte range of 0-based `line`, without its line break (`\n` or `\r\n`).
    pub fn line_range(&self, source: &str, line: usize) -> std::ops::Range<usize> {
        let Some(&start) = self.line_starts.get(line) else { return self.len..self.len };
        let mut end = self.line_starts.get(line + 1).map_or(self.len, |next| next - 1);
        if end > start && source.as_bytes().get(end - 1) == Some(&b'\r') {
            end -= 1;
        }
        start..end
    }

    /// Characters in `source[..offset]`.
    pub fn chars_before(&self, source: &str, offset: usize) -> usize {
        let offset = offset.min(self.len);
        let checkpoint = offset / CHAR_CHECKPOINT;
        let from = checkpoint * CHAR_CHECKPOINT;
        self.chars_before[checkpoint]
            + source.as_bytes()[from..offset].iter().filter(|b| starts_char(**b)).count()
    }

    /// Characters in `source[from..to]`: counted directly when the range is short (the
    /// usual case, a column within a line), from the checkpoints when it is long.
    pub fn chars_between(&self, source: &str, from: usize, to: usize) -> usize {
        let (from, to) = (from.min(self.len), to.min(self.len));
        if to <= from {
            return 0;
        }
        if to - from <= 2 * CHAR_CHECKPOINT {
            return source.as_bytes()[from..to].iter().filter(|b| starts_char(**b)).count();
        }
        self.chars_before(source, to) - self.chars_before(source, from)
    }

    /// Byte offset of the character numbered `chars` (0-based) in `source`; the end of
    /// the source when there are fewer.
    pub fn byte_of_char(&self, source: &str, chars: usize) -> usize {
        let checkpoint = self.chars_before.partition_point(|&c| c <= chars).saturating_sub(1);
        let mut count = self.chars_before[checkpoint];
        let bytes = source.as_bytes();
        for (offset, byte) in bytes.iter().enumerate().skip(checkpoint * CHAR_CHECKPOINT) {
            if starts_char(*byte) {
                if count == chars {
                    return offset;
                }
                count += 1;
            }
        }
        self.len
    }

    /// 1-based (line, column) of `offset` in `source`; the column counts characters.
    pub fn position(&self, source: &str, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.len);
        let line = self.line_of(offset);
        let start = self.line_starts[line];
        let column = self.chars_between(source, start, offset);
        (line + 1, column + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based() {
        let src = "ab\ncd\n\nx";
        let idx = LineIndex::new(src);
        assert_eq!(idx.position(src, 0), (1, 1));
        assert_eq!(idx.position(src, 1), (1, 2));
        assert_eq!(idx.position(src, 3), (2, 1));
        assert_eq!(idx.position(src, 7), (4, 1));
        assert_eq!(idx.position(src, 99), (4, 2));
        assert_eq!(idx.line_count(), 4);
        assert_eq!(idx.line_range(src, 1), 3..5);
        assert_eq!(idx.line_range(src, 9), 8..8);
    }

    #[test]
    fn columns_count_characters_across_checkpoints() {
        // Multi-byte characters straddle the checkpoints; a long line spans many.
        let line: String = "é€x".repeat(2_000);
        let src = format!("a\r\n{line}y\n");
        let idx = LineIndex::new(&src);
        let y = src.find('y').unwrap();
        assert_eq!(idx.position(&src, y), (2, 6_001));
        assert_eq!(idx.line_range(&src, 0), 0..1, "the \\r of a CRLF line is not part of it");
        for offset in (0..src.len()).filter(|o| src.is_char_boundary(*o)) {
            let chars = src[..offset].chars().count();
            assert_eq!(idx.chars_before(&src, offset), chars);
            assert_eq!(idx.chars_between(&src, 0, offset), chars);
            assert_eq!(idx.chars_between(&src, offset, src.len()), src[offset..].chars().count());
            assert_eq!(idx.byte_of_char(&src, chars), offset);
        }
    }

    #[test]
    fn spans_join() {
        assert_eq!(Span::new(4, 6).to(Span::new(1, 2)), Span::new(1, 6));
        assert!(Span::new(3, 3).is_empty());
    }
}
