//! Generated load: record values that carry their own sequence number, and a checker that
//! tells whether a consumer saw them in order, each once. The Linux CLI (`serpentlog
//! produce --count`), the RT example client and the benchmarks all use these, so a test
//! can compare what one produced with what another consumed.
//!
//! Value `n` (from 1) is `rec ` + `n` in 10 decimal digits, then `.` up to the requested
//! size (at least the 14 bytes of the number part).

/// Bytes of the numbered part of a generated value.
pub const NUMBERED_BYTES: usize = 14;

/// Writes value number `n` of `size` bytes (at least [`NUMBERED_BYTES`]) into `out`
/// (which must hold it) and returns its length.
pub fn generated(n: u64, size: usize, out: &mut [u8]) -> usize {
    let len = size.max(NUMBERED_BYTES).min(out.len());
    let mut numbered = *b"rec 0000000000";
    let mut rest = n % 10_000_000_000;
    for digit in numbered[4..].iter_mut().rev() {
        *digit = b'0' + (rest % 10) as u8;
        rest /= 10;
    }
    let head = NUMBERED_BYTES.min(len);
    out[..head].copy_from_slice(&numbered[..head]);
    out[head..len].fill(b'.');
    len
}

/// The number a generated value carries, if it is one.
pub fn number_of(value: &[u8]) -> Option<u64> {
    let digits = value.strip_prefix(b"rec ")?.get(..10)?;
    digits.iter().try_fold(0u64, |n, &d| d.is_ascii_digit().then(|| n * 10 + u64::from(d - b'0')))
}

/// Follows a stream of generated values expected to be numbered 1, 2, 3, ...
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OrderCheck {
    /// The number expected next, minus one: values `1..=seen` arrived in order.
    pub seen: u64,
    /// Values whose number was not the next one: later ones (a gap) or earlier ones (a
    /// duplicate), or values that are not generated ones.
    pub gaps: u64,
    pub duplicates: u64,
    pub foreign: u64,
}

impl OrderCheck {
    /// Takes the next value; returns whether it was the expected one.
    pub fn take(&mut self, value: &[u8]) -> bool {
        match number_of(value) {
            Some(n) if n == self.seen + 1 => {
                self.seen = n;
                true
            }
            Some(n) if n <= self.seen => {
                self.duplicates += 1;
                false
            }
            Some(n) => {
                self.gaps += 1;
                self.seen = n;
                false
            }
            None => {
                self.foreign += 1;
                false
            }
        }
    }

    /// Whether everything so far arrived in order, once each.
    pub fn clean(&self) -> bool {
        self.gaps == 0 && self.duplicates == 0 && self.foreign == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_carry_their_number_at_any_size() {
        let mut buf = [0u8; 64];
        let len = generated(42, 20, &mut buf);
        assert_eq!(&buf[..len], b"rec 0000000042......");
        assert_eq!(number_of(&buf[..len]), Some(42));
        assert_eq!(generated(7, 3, &mut buf), NUMBERED_BYTES);
        assert_eq!(number_of(b"rec 00000000x1"), None);
        assert_eq!(number_of(b"rec 12"), None);
    }

    #[test]
    fn the_checker_counts_gaps_duplicates_and_strangers() {
        let mut buf = [0u8; 16];
        let mut check = OrderCheck::default();
        for n in [1, 2, 3, 3, 5, 6, 2] {
            let len = generated(n, 16, &mut buf);
            check.take(&buf[..len]);
        }
        check.take(b"hello");
        assert_eq!((check.seen, check.gaps, check.duplicates, check.foreign), (6, 1, 2, 1));
        assert!(!check.clean());
        let mut fine = OrderCheck::default();
        for n in 1..=100 {
            let len = generated(n, 14, &mut buf);
            assert!(fine.take(&buf[..len]));
        }
        assert!(fine.clean());
    }
}
