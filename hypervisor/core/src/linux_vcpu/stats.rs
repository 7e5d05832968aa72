//! A Linux partition's VM exits by reason, as the console prints them at its power-off:
//! ` cpuid=1216 io=117474 ept-violation=136` (reasons without exits left out).

use core::fmt;

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

/// Writes ` name=count` for every reason with exits in `counts` minus `since` (the counts
/// at an earlier moment, or none); returns the total.
pub fn write_exit_counts(counts: &[u64], since: Option<&[u64]>, out: &mut impl fmt::Write) -> u64 {
    let mut total = 0u64;
    for (reason, &count) in counts.iter().enumerate() {
        let before = since.and_then(|s| s.get(reason)).copied().unwrap_or(0);
        let n = count.wrapping_sub(before);
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
        let mut counts = [0u64; 80];
        (counts[10], counts[30], counts[48], counts[77]) = (5, 100, 2, 1);
        let mut line = String::new();
        assert_eq!(write_exit_counts(&counts, None, &mut line), 108);
        assert_eq!(line, " cpuid=5 io=100 ept-violation=2 reason77=1");
        let mut since = [0u64; 80];
        (since[10], since[30]) = (5, 40);
        let mut line = String::new();
        assert_eq!(write_exit_counts(&counts, Some(&since), &mut line), 63);
        assert_eq!(line, " io=60 ept-violation=2 reason77=1");
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
