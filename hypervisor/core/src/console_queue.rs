//! Console output between the line multiplexer ([`crate::console`]) and the UART: one
//! bounded queue of whole lines per source (every partition, and the hypervisor's own
//! `[hv]` lines), a pump that takes turns between the sources line by line, and a rate
//! limit for the hypervisor's lines about one partition.
//!
//! Why: the UART sends about 11.5 bytes a millisecond. With one shared queue, whoever
//! fills it makes every other writer wait for the whole backlog. Here a source can only
//! fill its own queue; a full queue refuses a whole write (the partition retries on its
//! own time), and the pump gives every non-empty source one line in turn, so another
//! source's line waits for at most one line of each other source.
//!
//! ```
//! use hallows_core::console_queue::{LineQueue, LineScheduler, LineSources, Taken};
//! struct Two([LineQueue<64>; 2]);
//! impl LineSources for Two {
//!     fn source_count(&self) -> usize { 2 }
//!     fn take(&mut self, source: usize, out: &mut [u8]) -> Option<Taken> {
//!         Some(self.0[source].take(out))
//!     }
//! }
//! let mut queues = Two([LineQueue::new(), LineQueue::new()]);
//! assert!(queues.0[0].push_line(b"a1\n") && queues.0[0].push_line(b"a2\n"));
//! assert!(queues.0[1].push_line(b"b1\n"));
//! let mut pump = LineScheduler::new();
//! let mut out = [0u8; 16];
//! let n = pump.fill(&mut queues, &mut out);
//! assert_eq!(&out[..n], b"a1\nb1\na2\n");
//! ```

/// Bytes a queue stores per line besides the line itself (its length).
pub const LINE_HEADER: usize = 2;

/// Longest line a queue stores (its length must fit the header).
pub const MAX_QUEUED_LINE: usize = u16::MAX as usize;

/// A bounded FIFO of whole lines in a ring of `N` bytes. A line goes in whole or not at
/// all, and comes out in order, possibly over several [`take`](Self::take) calls.
#[derive(Clone, Debug)]
pub struct LineQueue<const N: usize> {
    ring: [u8; N],
    /// Index of the oldest stored byte.
    head: usize,
    /// Stored bytes: headers of lines not yet started, and line bytes not yet taken.
    len: usize,
    /// Bytes of the line being taken that are still stored (0: the next byte is a
    /// header).
    line_left: usize,
    /// Lines stored, including one being taken.
    lines: usize,
}

/// What one [`LineQueue::take`] moved out.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Taken {
    /// Bytes written to the front of the output.
    pub bytes: usize,
    /// Whether those bytes end a line (the source may then yield its turn).
    pub line_done: bool,
}

impl<const N: usize> Default for LineQueue<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> LineQueue<N> {
    const ROOM_FOR_A_LINE: () = assert!(N > LINE_HEADER, "a queue must hold at least one byte of a line");

    pub const fn new() -> Self {
        let () = Self::ROOM_FOR_A_LINE;
        LineQueue { ring: [0; N], head: 0, len: 0, line_left: 0, lines: 0 }
    }

    /// Stored bytes, headers included (what [`fits`](Self::fits) compares with `N`).
    pub fn stored(&self) -> usize {
        self.len
    }

    /// Lines stored, including a line partly taken.
    pub fn lines(&self) -> usize {
        self.lines
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether `lines` more lines of `bytes` bytes in all would fit now.
    pub fn fits(&self, lines: usize, bytes: usize) -> bool {
        lines
            .checked_mul(LINE_HEADER)
            .and_then(|h| h.checked_add(bytes))
            .is_some_and(|need| need <= N - self.len)
    }

    /// Appends one line, all or nothing: false (and nothing stored) when it does not fit
    /// or is longer than [`MAX_QUEUED_LINE`]. An empty line stores nothing.
    pub fn push_line(&mut self, line: &[u8]) -> bool {
        if line.is_empty() {
            return true;
        }
        if line.len() > MAX_QUEUED_LINE || !self.fits(1, line.len()) {
            return false;
        }
        let header = (line.len() as u16).to_le_bytes();
        self.store(&header);
        self.store(line);
        self.lines += 1;
        true
    }

    fn store(&mut self, bytes: &[u8]) {
        let tail = (self.head + self.len) % N;
        let first = bytes.len().min(N - tail);
        self.ring[tail..tail + first].copy_from_slice(&bytes[..first]);
        self.ring[..bytes.len() - first].copy_from_slice(&bytes[first..]);
        self.len += bytes.len();
    }

    fn load(&mut self, out: &mut [u8]) {
        let first = out.len().min(N - self.head);
        out[..first].copy_from_slice(&self.ring[self.head..self.head + first]);
        let rest = out.len() - first;
        out[first..].copy_from_slice(&self.ring[..rest]);
        self.head = (self.head + out.len()) % N;
        self.len -= out.len();
    }

    /// Moves the next bytes of the oldest line into `out` (never past that line's end).
    pub fn take(&mut self, out: &mut [u8]) -> Taken {
        if out.is_empty() || self.len == 0 {
            return Taken::default();
        }
        if self.line_left == 0 {
            let mut header = [0u8; LINE_HEADER];
            self.load(&mut header);
            self.line_left = u16::from_le_bytes(header) as usize;
        }
        let n = out.len().min(self.line_left);
        self.load(&mut out[..n]);
        self.line_left -= n;
        let line_done = self.line_left == 0;
        if line_done {
            self.lines -= 1;
        }
        Taken { bytes: n, line_done }
    }
}

/// The sources the pump takes turns between (index 0 first).
pub trait LineSources {
    fn source_count(&self) -> usize;
    /// Moves the next bytes of `source`'s current line into `out` (see
    /// [`LineQueue::take`]); `None` when the source cannot be read now (its lock is held:
    /// the pump never waits).
    fn take(&mut self, source: usize, out: &mut [u8]) -> Option<Taken>;
}

/// The pump's turn-taking: it finishes the line it started, then moves on to the next
/// source (round robin), so each non-empty source gets one line per turn.
#[derive(Clone, Debug, Default)]
pub struct LineScheduler {
    /// The source whose turn it is.
    current: usize,
    /// The current source's line is partly sent: no other source may send before it ends.
    mid_line: bool,
}

impl LineScheduler {
    pub const fn new() -> Self {
        LineScheduler { current: 0, mid_line: false }
    }

    /// Fills `out` with as many bytes as the sources have (up to `out.len()`), taking
    /// turns line by line; returns how many. Stops early when the source in the middle
    /// of a line cannot be read now.
    pub fn fill(&mut self, sources: &mut impl LineSources, out: &mut [u8]) -> usize {
        let count = sources.source_count();
        if count == 0 {
            return 0;
        }
        let mut filled = 0;
        // Sources passed over in a row without a byte: a whole round of them ends the fill.
        let mut passed = 0;
        while filled < out.len() && passed < count {
            if self.current >= count {
                // The set of sources shrank: the line in progress has gone with its source.
                (self.current, self.mid_line) = (0, false);
            }
            match sources.take(self.current, &mut out[filled..]) {
                None if self.mid_line => break,
                Some(t) if t.bytes > 0 && !t.line_done => {
                    filled += t.bytes;
                    self.mid_line = true;
                    passed = 0;
                }
                taken => {
                    let Taken { bytes, line_done } = taken.unwrap_or_default();
                    filled += bytes;
                    // A line ended, or this source has nothing (or is busy): next source.
                    passed = if line_done { 0 } else { passed + 1 };
                    self.mid_line = false;
                    self.current = (self.current + 1) % count;
                }
            }
        }
        filled
    }
}

/// A token bucket over lines: `burst` lines at once, then `per_second` lines a second of
/// the hypervisor's clock. Lines it refuses are counted, so the next line that passes can
/// say how many were suppressed.
#[derive(Clone, Debug)]
pub struct LineRateLimit {
    /// Nanoseconds of credit one line costs.
    cost_ns: u64,
    /// Most credit the bucket holds.
    capacity_ns: u64,
    credit_ns: u64,
    last_ns: u64,
    suppressed: u64,
}

/// A rate limit's answer for one line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Print it, after a note that `suppressed_before` lines were left out (when > 0).
    Pass { suppressed_before: u64 },
    /// Leave it out (it has been counted).
    Suppress,
}

impl LineRateLimit {
    /// A full bucket of `burst` lines refilled at `per_second` lines a second (both at
    /// least 1).
    pub const fn new(burst: u64, per_second: u64) -> Self {
        let per_second = if per_second == 0 { 1 } else { per_second };
        let burst = if burst == 0 { 1 } else { burst };
        let cost_ns = 1_000_000_000 / per_second;
        let capacity_ns = cost_ns.saturating_mul(burst);
        LineRateLimit { cost_ns, capacity_ns, credit_ns: capacity_ns, last_ns: 0, suppressed: 0 }
    }

    /// Lines suppressed since the last line that passed.
    pub fn suppressed(&self) -> u64 {
        self.suppressed
    }

    /// Decides on one line at `now_ns` (a clock that went backwards refills nothing).
    pub fn admit(&mut self, now_ns: u64) -> Admission {
        let elapsed = now_ns.saturating_sub(self.last_ns);
        self.last_ns = self.last_ns.max(now_ns);
        self.credit_ns = self.credit_ns.saturating_add(elapsed).min(self.capacity_ns);
        if self.credit_ns < self.cost_ns {
            self.suppressed = self.suppressed.saturating_add(1);
            return Admission::Suppress;
        }
        self.credit_ns -= self.cost_ns;
        let suppressed_before = core::mem::take(&mut self.suppressed);
        Admission::Pass { suppressed_before }
    }
}

/// The hypervisor's own `[hv]` queue, which never makes its writer wait: a line that
/// does not fit is dropped and counted, and the next line that fits (with the notice) is
/// preceded by `[hv] console: N lines dropped`.
#[derive(Clone, Debug)]
pub struct DroppingQueue<const N: usize> {
    lines: LineQueue<N>,
    /// Lines dropped since the last one that went in.
    dropped: u64,
}

impl<const N: usize> Default for DroppingQueue<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> DroppingQueue<N> {
    pub const fn new() -> Self {
        DroppingQueue { lines: LineQueue::new(), dropped: 0 }
    }

    /// Queues `line`, after the notice of the lines dropped before it; returns how many
    /// lines went in (0: `line` was dropped and counted).
    pub fn push_line(&mut self, line: &[u8]) -> usize {
        let mut added = 0;
        if self.dropped > 0 {
            let mut notice = NoticeLine { bytes: [0; 64], len: 0 };
            crate::console::hv_line(&mut notice, format_args!("console: {} lines dropped", self.dropped));
            let notice = &notice.bytes[..notice.len];
            if !self.lines.fits(2, notice.len() + line.len()) {
                self.dropped += 1;
                return 0;
            }
            self.lines.push_line(notice);
            self.dropped = 0;
            added += 1;
        }
        if self.lines.push_line(line) {
            added += 1;
        } else {
            self.dropped += 1;
        }
        added
    }

    /// Moves bytes of the oldest line out (see [`LineQueue::take`]).
    pub fn take(&mut self, out: &mut [u8]) -> Taken {
        self.lines.take(out)
    }
}

/// Collects the one short line of a drop notice.
struct NoticeLine {
    bytes: [u8; 64],
    len: usize,
}

impl crate::console::ConsoleSink for NoticeLine {
    fn write_line(&mut self, line: &[u8]) {
        let n = line.len().min(self.bytes.len());
        self.bytes[..n].copy_from_slice(&line[..n]);
        self.len = n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Queues as sources; `busy` marks sources whose lock is "held".
    struct Queues<const N: usize> {
        queues: Vec<LineQueue<N>>,
        busy: Vec<bool>,
    }

    impl<const N: usize> Queues<N> {
        fn new(count: usize) -> Self {
            Queues { queues: (0..count).map(|_| LineQueue::new()).collect(), busy: vec![false; count] }
        }
    }

    impl<const N: usize> LineSources for Queues<N> {
        fn source_count(&self) -> usize {
            self.queues.len()
        }
        fn take(&mut self, source: usize, out: &mut [u8]) -> Option<Taken> {
            (!self.busy[source]).then(|| self.queues[source].take(out))
        }
    }

    /// Pumps everything out in fills of `fifo` bytes.
    fn drain<const N: usize>(pump: &mut LineScheduler, q: &mut Queues<N>, fifo: usize) -> Vec<u8> {
        let mut all = Vec::new();
        let mut buf = vec![0u8; fifo];
        loop {
            let n = pump.fill(q, &mut buf);
            if n == 0 {
                return all;
            }
            all.extend_from_slice(&buf[..n]);
        }
    }

    fn line(tag: u8, n: usize, len: usize) -> Vec<u8> {
        let mut l = format!("[{}] {n:04} ", tag as char).into_bytes();
        l.resize(len.max(l.len() + 1) - 1, tag);
        l.push(b'\n');
        l
    }

    #[test]
    fn push_is_all_or_nothing() {
        let mut q = LineQueue::<16>::new();
        assert!(q.push_line(b"0123456789"));
        assert_eq!((q.stored(), q.lines()), (12, 1));
        assert!(!q.fits(1, 3));
        assert!(q.fits(1, 2));
        assert!(!q.push_line(b"abc"), "3 bytes + header do not fit 4 free bytes");
        assert_eq!((q.stored(), q.lines()), (12, 1), "a refused line leaves nothing");
        assert!(q.push_line(b"ab"));
        assert!(!q.push_line(b"x"));
        assert!(q.push_line(b""), "an empty line needs no room");
        assert_eq!(q.lines(), 2);
        assert!(!LineQueue::<8>::new().push_line(b"1234567"), "longer than the whole queue");
    }

    #[test]
    fn take_never_crosses_a_line_end() {
        let mut q = LineQueue::<64>::new();
        assert!(q.push_line(b"hello\n") && q.push_line(b"world\n"));
        let mut out = [0u8; 4];
        assert_eq!(q.take(&mut out), Taken { bytes: 4, line_done: false });
        assert_eq!(&out, b"hell");
        assert_eq!(q.take(&mut out), Taken { bytes: 2, line_done: true });
        assert_eq!(&out[..2], b"o\n");
        assert_eq!(q.lines(), 1);
        let mut big = [0u8; 32];
        assert_eq!(q.take(&mut big), Taken { bytes: 6, line_done: true });
        assert_eq!(q.take(&mut big), Taken::default());
        assert_eq!(q.take(&mut []), Taken::default());
        assert!(q.is_empty());
    }

    #[test]
    fn the_ring_wraps_around() {
        let mut q = LineQueue::<10>::new();
        let mut out = [0u8; 10];
        for round in 0..20u8 {
            let l = [b'a' + round % 26; 5];
            assert!(q.push_line(&l), "round {round}");
            assert_eq!(q.take(&mut out), Taken { bytes: 5, line_done: true });
            assert_eq!(out[..5], l);
        }
    }

    #[test]
    fn turns_go_line_by_line() {
        let mut q = Queues::<256>::new(3);
        for i in 0..3 {
            assert!(q.queues[0].push_line(&line(b'a', i, 20)));
        }
        assert!(q.queues[2].push_line(&line(b'c', 0, 20)));
        let out = drain(&mut LineScheduler::new(), &mut q, 16);
        let lines: Vec<&[u8]> = out.split_inclusive(|&b| b == b'\n').collect();
        assert_eq!(
            lines,
            [&line(b'a', 0, 20)[..], &line(b'c', 0, 20), &line(b'a', 1, 20), &line(b'a', 2, 20)]
        );
    }

    #[test]
    fn a_single_line_waits_for_at_most_one_line_of_a_flood() {
        const FLOOD_LINE: usize = 200;
        let mut q = Queues::<8192>::new(3);
        let mut n = 0;
        while q.queues[1].push_line(&line(b'f', n, FLOOD_LINE)) {
            n += 1;
        }
        let mut pump = LineScheduler::new();
        // The flood has been sending for a while: the pump is in the middle of its line.
        let mut fifo = [0u8; 16];
        for _ in 0..20 {
            pump.fill(&mut q, &mut fifo);
        }
        let quiet = line(b'q', 0, 60);
        assert!(q.queues[2].push_line(&quiet));
        let mut sent = Vec::new();
        let waited = loop {
            if let Some(at) = sent.windows(quiet.len()).position(|w| w == &quiet[..]) {
                break at;
            }
            let n = pump.fill(&mut q, &mut fifo);
            assert!(n > 0, "the quiet line must come out");
            sent.extend_from_slice(&fifo[..n]);
        };
        assert!(waited <= FLOOD_LINE, "the quiet line waited for {waited} bytes");
        assert!(waited > 0, "the flood's line in progress is finished first");
    }

    #[test]
    fn a_busy_source_is_passed_over_but_never_split() {
        let mut q = Queues::<256>::new(2);
        assert!(q.queues[0].push_line(b"first line\n"));
        assert!(q.queues[1].push_line(b"second\n"));
        let mut pump = LineScheduler::new();
        let mut four = [0u8; 4];
        assert_eq!(pump.fill(&mut q, &mut four), 4);
        assert_eq!(&four, b"firs");
        // Mid-line on source 0 and its lock is held: nothing else may go out.
        q.busy[0] = true;
        assert_eq!(pump.fill(&mut q, &mut four), 0);
        q.busy[0] = false;
        let mut out = [0u8; 64];
        let n = pump.fill(&mut q, &mut out);
        assert_eq!(&out[..n], b"t line\nsecond\n");
        // Not mid-line: a busy source is skipped, the others still go.
        assert!(q.queues[0].push_line(b"a\n") && q.queues[1].push_line(b"b\n"));
        q.busy[0] = true;
        let n = pump.fill(&mut q, &mut out);
        assert_eq!(&out[..n], b"b\n");
        q.busy[0] = false;
        let n = pump.fill(&mut q, &mut out);
        assert_eq!(&out[..n], b"a\n");
    }

    #[test]
    fn fewer_sources_reset_the_turn() {
        let mut q = Queues::<64>::new(3);
        assert!(q.queues[2].push_line(b"long line\n"));
        let mut pump = LineScheduler::new();
        assert_eq!(pump.fill(&mut q, &mut [0u8; 3]), 3);
        q.queues.truncate(1);
        q.busy.truncate(1);
        assert!(q.queues[0].push_line(b"x\n"));
        let mut out = [0u8; 8];
        assert_eq!(pump.fill(&mut q, &mut out), 2);
        assert_eq!(pump.fill(&mut Queues::<64>::new(0), &mut out), 0);
    }

    #[test]
    fn rate_limit_allows_a_burst_then_the_refill_rate() {
        const S: u64 = 1_000_000_000;
        let mut limit = LineRateLimit::new(10, 5);
        let t0 = 42 * S;
        for _ in 0..10 {
            assert_eq!(limit.admit(t0), Admission::Pass { suppressed_before: 0 });
        }
        for _ in 0..90 {
            assert_eq!(limit.admit(t0 + 1000), Admission::Suppress);
        }
        assert_eq!(limit.suppressed(), 90);
        // One line's credit (200 ms) later, exactly one more passes and reports the gap.
        assert_eq!(limit.admit(t0 + S / 5), Admission::Pass { suppressed_before: 90 });
        assert_eq!(limit.admit(t0 + S / 5), Admission::Suppress);
        // A long quiet time refills at most the burst.
        let later = t0 + 3600 * S;
        for _ in 0..10 {
            assert!(matches!(limit.admit(later), Admission::Pass { .. }));
        }
        assert_eq!(limit.admit(later), Admission::Suppress);
        // A clock going backwards refills nothing and does not panic.
        assert_eq!(limit.admit(0), Admission::Suppress);
        assert_eq!(limit.admit(later + S / 5), Admission::Pass { suppressed_before: 2 });
        let mut odd = LineRateLimit::new(0, 0);
        assert!(matches!(odd.admit(u64::MAX), Admission::Pass { .. }));
        assert_eq!(odd.admit(u64::MAX), Admission::Suppress);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        /// Whatever the interleaving of pushes and pump fills, every source's accepted
        /// lines come out whole, in order, exactly once, and nothing else comes out.
        #[test]
        fn bytes_in_equal_bytes_out_per_source(
            steps in proptest::collection::vec((0usize..4, 0usize..90, 1usize..24, proptest::bool::ANY), 0..200),
        ) {
            let mut q = Queues::<256>::new(4);
            let mut pump = LineScheduler::new();
            let mut accepted: Vec<Vec<Vec<u8>>> = vec![Vec::new(); 4];
            let mut out = Vec::new();
            for (n, (source, len, fifo, busy)) in steps.into_iter().enumerate() {
                // Source 3's lock is held now and then, as another core's would be.
                q.busy[3] = busy;
                let l = line(b'a' + source as u8, n, len.max(8));
                let stored = q.queues[source].stored();
                if q.queues[source].push_line(&l) {
                    accepted[source].push(l);
                } else {
                    prop_assert_eq!(q.queues[source].stored(), stored);
                }
                let mut buf = vec![0u8; fifo];
                let k = pump.fill(&mut q, &mut buf);
                out.extend_from_slice(&buf[..k]);
            }
            q.busy[3] = false;
            out.extend(drain(&mut pump, &mut q, 16));
            let mut got: Vec<Vec<Vec<u8>>> = vec![Vec::new(); 4];
            for l in out.split_inclusive(|&b| b == b'\n') {
                // Every line comes out whole: its first byte names its source.
                prop_assert_eq!(l[0], b'[');
                let source = (l[1] - b'a') as usize;
                got[source].push(l.to_vec());
            }
            prop_assert_eq!(got, accepted);
        }
    }

    #[test]
    fn a_dropping_queue_says_how_many_lines_it_dropped() {
        let mut q = DroppingQueue::<64>::new();
        let line = [b'x'; 20];
        assert_eq!(q.push_line(&line), 1);
        assert_eq!(q.push_line(&line), 1);
        // 2 x (20 + 2) bytes stored: a third line does not fit, nor a fourth.
        assert_eq!(q.push_line(&line), 0);
        assert_eq!(q.push_line(b"short\r\n"), 0, "the notice and the line must fit together");
        let mut out = [0u8; 64];
        assert_eq!(q.take(&mut out).bytes, 20);
        assert_eq!(q.take(&mut out).bytes, 20);
        assert_eq!(q.push_line(b"next\r\n"), 2, "the notice, then the line");
        let mut all = Vec::new();
        loop {
            let t = q.take(&mut out);
            if t.bytes == 0 {
                break;
            }
            all.extend_from_slice(&out[..t.bytes]);
        }
        assert_eq!(all, b"[hv] console: 2 lines dropped\r\nnext\r\n");
        assert_eq!(q.push_line(b"again\r\n"), 1, "no notice once it was queued");
    }
}
