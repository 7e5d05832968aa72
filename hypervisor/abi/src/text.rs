//! The one fixed-capacity text buffer of the project, used by the hypervisor (formatting on
//! the VM-exit path, where nothing may allocate) and by the partition SDK (panic messages
//! and fault reports): it cuts instead of failing, so formatting never fails half-way.

use core::fmt;

/// Up to `N` bytes of UTF-8 text; writes beyond the capacity are cut at a character boundary.
#[derive(Clone)]
pub struct FixedText<const N: usize> {
    buf: [u8; N],
    len: usize,
}

impl<const N: usize> FixedText<N> {
    /// An empty buffer.
    pub const fn new() -> Self {
        Self { buf: [0; N], len: 0 }
    }

    /// Empties the buffer (only the length is reset: nothing is cleared on a hot path).
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// The text written so far.
    pub fn as_str(&self) -> &str {
        // Only whole characters are ever copied in, so this cannot fail.
        core::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }

    /// The bytes written so far.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl<const N: usize> Default for FixedText<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> fmt::Write for FixedText<N> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let mut take = s.len().min(N - self.len);
        while !s.is_char_boundary(take) {
            take -= 1;
        }
        self.buf[self.len..self.len + take].copy_from_slice(&s.as_bytes()[..take]);
        self.len += take;
        Ok(())
    }
}

impl<const N: usize> fmt::Display for FixedText<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::fmt::Write;

    #[test]
    fn text_that_fits_is_kept() {
        let mut t = FixedText::<16>::new();
        write!(t, "a{}c", 1).unwrap();
        assert_eq!(t.as_str(), "a1c");
    }

    #[test]
    fn overflow_is_cut_on_a_char_boundary() {
        let mut t = FixedText::<5>::new();
        write!(t, "ab").unwrap();
        write!(t, "éé").unwrap(); // 4 bytes, only one é fits
        assert_eq!(t.as_str(), "abé");
        write!(t, "zzz").unwrap();
        assert_eq!(t.as_str(), "abéz");
        t.clear();
        write!(t, "x").unwrap();
        assert_eq!(alloc::format!("{t}"), "x");
    }
}
