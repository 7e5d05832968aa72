//! A Linux partition's VM exits by reason, as the console prints them at its power-off:
//! ` cpuid=1216 io=117474 ept-violation=136` (reasons without exits left out).

use core::fmt;
use core::sync::atomic::{AtomicU64, Ordering};

/// Short names of the (VMX basic) exit reasons a Linux partition causes.
pub fn reason_name(reason: usize) -> Option<&'static str> {
    Some(match reason {
        0 => "exception/nmi",
        1 => "external-interrupt",
        2 => "triple-fault",
        10 => "cpuid",
        12 => "hlt",
        13 => "invd",
        18 => "vmcall",
        28 => "cr",
        30 => "io",
        31 => "rdmsr",
        32 => "wrmsr",
        33 => "entry-failure",
        48 => "ept-violation",
        49 => "ept-misconfig",
        54 => "wbinvd",
        55 => "xsetbv",
        _ => return None,
    })
}

/// Basic exit reasons counted one by one (SDM appendix C has fewer than 80); larger
/// ones share the last count.
pub const EXIT_REASONS: usize = 80;

/// A Linux partition's VM exits by basic exit reason, all its vCPUs together.
#[derive(Debug)]
pub struct ExitCounts([AtomicU64; EXIT_REASONS]);

impl Default for ExitCounts {
    fn default() -> Self {
        ExitCounts([const { AtomicU64::new(0) }; EXIT_REASONS])
    }
}

impl ExitCounts {
    /// Counts one exit with `reason` (the exit-reason field; its high bits are flags).
    #[inline]
    pub fn count(&self, reason: u32) {
        let i = (reason as usize & 0xFFFF).min(EXIT_REASONS - 1);
        self.0[i].fetch_add(1, Ordering::Relaxed);
    }

    /// Takes `other`'s counts (a snapshot to count from later).
    pub fn copy_from(&self, other: &ExitCounts) {
        for (mine, theirs) in self.0.iter().zip(&other.0) {
            mine.store(theirs.load(Ordering::Relaxed), Ordering::Relaxed);
        }
    }

    /// Writes ` name=count` for every reason with exits since `since` (the counts at an
    /// earlier moment, or none); returns the total.
    pub fn write_since(&self, since: Option<&ExitCounts>, out: &mut impl fmt::Write) -> u64 {
        let mut total = 0u64;
        for (reason, count) in self.0.iter().enumerate() {
            let before = since.map_or(0, |s| s.0[reason].load(Ordering::Relaxed));
            let n = count.load(Ordering::Relaxed).wrapping_sub(before);
            if n != 0 {
                total = total.wrapping_add(n);
                let _ = match reason_name(reason) {
                    Some(name) => write!(out, " {name}={n}"),
                    None => write!(out, " reason{reason}={n}"),
                };
            }
        }
        total
    }
}

/// The test initramfs's /init prints this first: the end of "boot to /init".
pub const INIT_MARKER: &[u8] = b"LINUX-INIT-OK";

/// Looks for [`INIT_MARKER`] in a console stream, fed one byte at a time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MarkerMatch {
    /// Bytes of the marker matched so far.
    seen: usize,
}

impl MarkerMatch {
    /// Feeds one byte; true when it completes the marker (matching then starts over).
    pub fn feed(&mut self, byte: u8) -> bool {
        if INIT_MARKER.get(self.seen) == Some(&byte) {
            self.seen += 1;
            if self.seen == INIT_MARKER.len() {
                self.seen = 0;
                return true;
            }
        } else {
            self.seen = usize::from(INIT_MARKER.first() == Some(&byte));
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::String;

    #[test]
    fn only_reasons_with_exits_are_listed_by_name() {
        let counts = ExitCounts::default();
        let count = |reason, n| (0..n).for_each(|_| counts.count(reason));
        count(10, 5);
        count(30, 40);
        let since = ExitCounts::default();
        since.copy_from(&counts);
        count(30, 60);
        count(48, 2);
        count(77, 1);
        count(0x8000_0021, 1); // entry failure flag and reason 33
        count(300, 1); // beyond the table: the last count
        let mut line = String::new();
        assert_eq!(counts.write_since(None, &mut line), 110);
        assert_eq!(line, " cpuid=5 io=100 entry-failure=1 ept-violation=2 reason77=1 reason79=1");
        let mut line = String::new();
        assert_eq!(counts.write_since(Some(&since), &mut line), 65);
        assert_eq!(line, " io=60 entry-failure=1 ept-violation=2 reason77=1 reason79=1");
    }

    #[test]
    fn the_marker_is_found_in_a_stream() {
        let count = |stream: &[u8]| {
            let mut m = MarkerMatch::default();
            stream.iter().filter(|&&b| m.feed(b)).count()
        };
        assert_eq!(count(b"boot\nLINUX-INIT-OK\n"), 1);
        assert_eq!(count(b"LLINUX-INIT-OK"), 1, "a false start on the first byte");
        assert_eq!(count(b"LINUX-INIT-O LINUX-INIT-OK LINUX-INIT-OK"), 2);
        assert_eq!(count(b"LINUX-INIT-KO"), 0);
    }
}
