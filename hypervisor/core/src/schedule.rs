//! The ARINC 653 cyclic schedule of one core: which partition owns an instant, until when,
//! and the VMX-preemption timer value that ends its window.
//!
//! A [`Schedule`] is a major frame of non-overlapping [`Window`]s (sorted by offset; the
//! gaps between them are idle time). Time is measured in nanoseconds since the schedule's
//! epoch (the instant frame 0 started; every core of a schedule uses the same epoch).
//! [`Schedule::slot_at`] answers "who runs now, since when, until when"; a [`Cursor`] walks
//! consecutive slots (windows and idle gaps) without ever skipping or repeating time.
//! [`TscClock`] converts between nanoseconds and TSC ticks, and [`preemption_timer_value`]
//! turns the ticks left in a window into the VMCS timer value.
//!
//! ```
//! use hallows_core::schedule::{Schedule, Window, TscClock, preemption_timer_value};
//! let windows = [
//!     Window { partition: 0, offset_ns: 0, duration_ns: 4_000_000 },
//!     Window { partition: 1, offset_ns: 5_000_000, duration_ns: 5_000_000 },
//! ];
//! let schedule = Schedule::new(10_000_000, &windows).unwrap();
//! let now = 23_000_000; // frame 2, offset 3 ms
//! let slot = schedule.slot_at(now);
//! assert_eq!((slot.partition, slot.end_ns), (Some(0), 24_000_000));
//! let clock = TscClock::new(2_000_000_000); // 2 GHz
//! let ticks = clock.ns_to_ticks(slot.end_ns - now);
//! assert_eq!(preemption_timer_value(ticks, 5), 62_500); // 2_000_000 ticks >> 5
//! ```

use core::fmt;
use hallows_abi::table::WindowEntry;

/// One window of the major frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    /// Index of the partition that owns it.
    pub partition: u32,
    /// Start relative to the frame.
    pub offset_ns: u64,
    pub duration_ns: u64,
}

impl Window {
    pub fn from_entry(e: &WindowEntry) -> Self {
        Window {
            partition: e.partition.get(),
            offset_ns: e.offset_ns.get(),
            duration_ns: e.duration_ns.get(),
        }
    }

    fn end_ns(&self) -> u64 {
        self.offset_ns + self.duration_ns
    }
}

/// Why a window list is not a schedule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScheduleError {
    /// Zero-length major frame or no window.
    Empty,
    /// Window `index` has zero duration.
    ZeroDuration { index: usize },
    /// Window `index` ends after the major frame (or overflows).
    OutsideFrame { index: usize },
    /// Window `index` starts before window `index - 1` ends.
    Overlap { index: usize },
}

impl fmt::Display for ScheduleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Empty => write!(f, "schedule has no window or a zero major frame"),
            Self::ZeroDuration { index } => write!(f, "window {index} has zero duration"),
            Self::OutsideFrame { index } => write!(f, "window {index} ends after the major frame"),
            Self::Overlap { index } => write!(f, "window {index} overlaps or precedes the window before it"),
        }
    }
}

/// A validated cyclic schedule.
#[derive(Clone, Copy, Debug)]
pub struct Schedule<'a> {
    major_frame_ns: u64,
    windows: &'a [Window],
}

/// A stretch of time with one owner (or none).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Slot {
    /// The owning partition; `None` for an idle gap.
    pub partition: Option<u32>,
    /// Index of the window in the schedule; `None` for an idle gap.
    pub window: Option<usize>,
    /// Absolute start (ns since the epoch).
    pub start_ns: u64,
    /// Absolute end: the next switch instant.
    pub end_ns: u64,
}

impl Slot {
    /// Nanoseconds left at `now_ns` (0 when already over).
    pub fn remaining_ns(&self, now_ns: u64) -> u64 {
        self.end_ns.saturating_sub(now_ns)
    }
}

impl<'a> Schedule<'a> {
    /// Checks the windows: each non-empty, inside the frame, sorted, not overlapping.
    pub fn new(major_frame_ns: u64, windows: &'a [Window]) -> Result<Self, ScheduleError> {
        if major_frame_ns == 0 || windows.is_empty() {
            return Err(ScheduleError::Empty);
        }
        let mut previous_end = 0;
        for (index, w) in windows.iter().enumerate() {
            if w.duration_ns == 0 {
                return Err(ScheduleError::ZeroDuration { index });
            }
            if w.offset_ns.checked_add(w.duration_ns).is_none_or(|end| end > major_frame_ns) {
                return Err(ScheduleError::OutsideFrame { index });
            }
            if w.offset_ns < previous_end {
                return Err(ScheduleError::Overlap { index });
            }
            previous_end = w.end_ns();
        }
        Ok(Schedule { major_frame_ns, windows })
    }

    pub fn major_frame_ns(&self) -> u64 {
        self.major_frame_ns
    }

    pub fn windows(&self) -> &'a [Window] {
        self.windows
    }

    /// The slot containing the absolute instant `now_ns`. End instants saturate at
    /// `u64::MAX` (585 years after the epoch).
    pub fn slot_at(&self, now_ns: u64) -> Slot {
        let frame_start = now_ns - now_ns % self.major_frame_ns;
        let offset = now_ns - frame_start;
        let at = |rel: u64| frame_start.saturating_add(rel);
        // Windows starting at or before `offset`.
        let started = self.windows.partition_point(|w| w.offset_ns <= offset);
        if let Some(index) = started.checked_sub(1) {
            let w = &self.windows[index];
            if offset < w.end_ns() {
                return Slot {
                    partition: Some(w.partition),
                    window: Some(index),
                    start_ns: at(w.offset_ns),
                    end_ns: at(w.end_ns()),
                };
            }
        }
        // Idle: from the end of the previous window (possibly in the previous frame) to
        // the start of the next one (possibly in the next frame).
        let start_ns = match started.checked_sub(1) {
            Some(i) => at(self.windows[i].end_ns()),
            None => {
                let last = self.windows[self.windows.len() - 1];
                let gap_before_frame_end = self.major_frame_ns - last.end_ns();
                frame_start.saturating_sub(gap_before_frame_end)
            }
        };
        let end_ns = match self.windows.get(started) {
            Some(next) => at(next.offset_ns),
            None => at(self.major_frame_ns).saturating_add(self.windows[0].offset_ns),
        };
        Slot { partition: None, window: None, start_ns, end_ns }
    }

    /// A cursor positioned on the slot containing `now_ns`.
    pub fn cursor(&self, now_ns: u64) -> Cursor<'a> {
        Cursor { schedule: *self, current: self.slot_at(now_ns) }
    }
}

/// Walks the schedule slot by slot.
#[derive(Clone, Copy, Debug)]
pub struct Cursor<'a> {
    schedule: Schedule<'a>,
    current: Slot,
}

impl Cursor<'_> {
    pub fn current(&self) -> Slot {
        self.current
    }

    /// Moves to the slot that starts when the current one ends and returns it.
    pub fn advance(&mut self) -> Slot {
        self.current = self.schedule.slot_at(self.current.end_ns);
        self.current
    }

    /// Moves to the slot containing `now_ns` (after a late wake-up, say) and returns it.
    pub fn seek(&mut self, now_ns: u64) -> Slot {
        self.current = self.schedule.slot_at(now_ns);
        self.current
    }
}

/// Converts between nanoseconds and TSC ticks at a fixed frequency.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TscClock {
    hz: u64,
}

impl TscClock {
    /// A clock of `hz` ticks per second (at least 1).
    pub const fn new(hz: u64) -> Self {
        TscClock { hz: if hz == 0 { 1 } else { hz } }
    }

    pub const fn hz(&self) -> u64 {
        self.hz
    }

    /// Ticks in `ns` nanoseconds, rounded down, saturating.
    pub const fn ns_to_ticks(&self, ns: u64) -> u64 {
        let t = ns as u128 * self.hz as u128 / 1_000_000_000;
        if t > u64::MAX as u128 {
            u64::MAX
        } else {
            t as u64
        }
    }

    /// Nanoseconds in `ticks` ticks, rounded down, saturating.
    pub const fn ticks_to_ns(&self, ticks: u64) -> u64 {
        let ns = ticks as u128 * 1_000_000_000 / self.hz as u128;
        if ns > u64::MAX as u128 {
            u64::MAX
        } else {
            ns as u64
        }
    }
}

/// The VMX-preemption timer value that expires after at most `ticks` TSC ticks, for a
/// timer that counts once every `2^rate_shift` ticks (`IA32_VMX_MISC[4:0]`). Rounded down
/// so a window never overruns; saturates at `u32::MAX`. Zero makes the exit happen
/// before the guest's first instruction.
pub const fn preemption_timer_value(ticks: u64, rate_shift: u8) -> u32 {
    let v = if rate_shift >= 64 { 0 } else { ticks >> rate_shift };
    if v > u32::MAX as u64 {
        u32::MAX
    } else {
        v as u32
    }
}

/// How long a vCPU may run in what is left of its window (`remaining` ticks) so that the
/// hypervisor's handling of its last VM exit still ends before the window does: the
/// window's tail of `guard` ticks (the longest exit handling seen for this vCPU, see
/// [`WorkBudget`]) is left unused. The guard is capped at half the window (`window`
/// ticks), so a partition whose exits are slow shortens only its own windows, and never
/// to nothing. `None`: too little is left to enter at all.
///
/// ```
/// use hallows_core::schedule::guarded_run_ticks;
/// assert_eq!(guarded_run_ticks(1_000, 100, 4_000), Some(900));
/// assert_eq!(guarded_run_ticks(100, 100, 4_000), None);
/// assert_eq!(guarded_run_ticks(3_000, 9_000, 4_000), Some(1_000), "guard capped at half the window");
/// ```
pub const fn guarded_run_ticks(remaining: u64, guard: u64, window: u64) -> Option<u64> {
    let cap = window / 2;
    let guard = if guard > cap { cap } else { guard };
    if remaining > guard {
        Some(remaining - guard)
    } else {
        None
    }
}

/// Hypervisor work done for a partition on a time-partitioned core must not eat into the
/// next window. [`WorkBudget`] keeps, per kind of work (a hypercall number), the longest
/// time that work took, with a quarter of margin, and tells whether it still fits before
/// the window's end; work that does not fit is deferred to the partition's next window.
/// The first occurrence of a kind has no estimate and runs (its cost is then known).
///
/// ```
/// use hallows_core::schedule::WorkBudget;
/// let mut b = WorkBudget::<4>::new();
/// assert!(b.fits(1, 1_000, 1_010), "nothing measured yet: it runs");
/// b.record(1, 400);
/// assert!(b.fits(1, 1_000, 1_500));
/// assert!(!b.fits(1, 1_000, 1_499), "400 + 25 % does not fit in 499");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WorkBudget<const KINDS: usize> {
    cost: [u64; KINDS],
}

impl<const KINDS: usize> Default for WorkBudget<KINDS> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const KINDS: usize> WorkBudget<KINDS> {
    pub const fn new() -> Self {
        WorkBudget { cost: [0; KINDS] }
    }

    /// A budget that starts as if work of `kind` had once taken `took` (a guess until
    /// the real cost is measured).
    pub fn with_measured(kind: u64, took: u64) -> Self {
        let mut b = Self::new();
        b.record(kind, took);
        b
    }

    fn slot(kind: u64) -> usize {
        (kind.min(KINDS as u64 - 1)) as usize
    }

    /// Whether work of `kind` started at `now` ends by `end` (same clock, e.g. TSC ticks).
    pub fn fits(&self, kind: u64, now: u64, end: u64) -> bool {
        now.saturating_add(self.cost[Self::slot(kind)]) <= end
    }

    /// Work of `kind` took `took`: the estimate becomes the longest seen plus 25 %.
    pub fn record(&mut self, kind: u64, took: u64) {
        let c = &mut self.cost[Self::slot(kind)];
        *c = (*c).max(took.saturating_add(took / 4));
    }

    /// The current estimate for `kind`.
    pub fn estimate(&self, kind: u64) -> u64 {
        self.cost[Self::slot(kind)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn work_budget_keeps_the_longest_and_shares_the_last_slot() {
        let guessed = WorkBudget::<3>::with_measured(1, 800);
        assert_eq!((guessed.estimate(0), guessed.estimate(1)), (0, 1000), "a guess is a measurement");
        let mut b = WorkBudget::<3>::new();
        b.record(0, 100);
        b.record(0, 40);
        assert_eq!(b.estimate(0), 125, "longest plus a quarter");
        b.record(7, 8);
        assert_eq!(b.estimate(2), 10, "kinds past the table share its last slot");
        assert!(b.fits(0, 10, 135) && !b.fits(0, 11, 135));
        assert!(b.fits(1, u64::MAX, u64::MAX), "saturates instead of overflowing");
        b.record(1, u64::MAX);
        assert_eq!(b.estimate(1), u64::MAX);
    }
    use proptest::prelude::*;

    const MS: u64 = 1_000_000;

    fn w(partition: u32, offset_ms: u64, duration_ms: u64) -> Window {
        Window { partition, offset_ns: offset_ms * MS, duration_ns: duration_ms * MS }
    }

    #[test]
    fn validation() {
        assert_eq!(Schedule::new(0, &[w(0, 0, 1)]).unwrap_err(), ScheduleError::Empty);
        assert_eq!(Schedule::new(10, &[]).unwrap_err(), ScheduleError::Empty);
        assert_eq!(
            Schedule::new(10 * MS, &[w(0, 0, 0)]).unwrap_err(),
            ScheduleError::ZeroDuration { index: 0 }
        );
        assert_eq!(
            Schedule::new(10 * MS, &[w(0, 0, 5), w(1, 6, 5)]).unwrap_err(),
            ScheduleError::OutsideFrame { index: 1 }
        );
        assert_eq!(
            Schedule::new(10 * MS, &[w(0, 0, 5), w(1, 4, 1)]).unwrap_err(),
            ScheduleError::Overlap { index: 1 }
        );
        assert_eq!(
            Schedule::new(10 * MS, &[w(0, 5, 1), w(1, 0, 1)]).unwrap_err(),
            ScheduleError::Overlap { index: 1 }
        );
        let huge = [Window { partition: 0, offset_ns: 1, duration_ns: u64::MAX }];
        assert_eq!(Schedule::new(u64::MAX, &huge).unwrap_err(), ScheduleError::OutsideFrame { index: 0 });
    }

    #[test]
    fn windows_and_gaps() {
        let ws = [w(0, 2, 3), w(1, 5, 2), w(2, 8, 1)];
        let s = Schedule::new(10 * MS, &ws).unwrap();
        let frame = 30 * MS;
        let slot = |ms_offset: u64| s.slot_at(frame + ms_offset);
        // Leading gap: from the previous frame's last window end (9 ms) to 2 ms.
        assert_eq!(
            slot(0),
            Slot { partition: None, window: None, start_ns: frame - MS, end_ns: frame + 2 * MS }
        );
        assert_eq!(s.slot_at(frame + 2 * MS).partition, Some(0));
        assert_eq!(s.slot_at(frame + 5 * MS - 1).partition, Some(0));
        let p1 = s.slot_at(frame + 5 * MS);
        assert_eq!((p1.partition, p1.window, p1.end_ns), (Some(1), Some(1), frame + 7 * MS));
        assert_eq!(p1.remaining_ns(frame + 6 * MS), MS);
        let gap = s.slot_at(frame + 7 * MS);
        assert_eq!((gap.partition, gap.start_ns, gap.end_ns), (None, frame + 7 * MS, frame + 8 * MS));
        // Trailing gap runs into the next frame's leading gap.
        let tail = s.slot_at(frame + 9 * MS + 5);
        assert_eq!((tail.start_ns, tail.end_ns), (frame + 9 * MS, frame + 12 * MS));
        // At the epoch, the leading gap cannot start before 0.
        assert_eq!(s.slot_at(0).start_ns, 0);
        // Far future saturates instead of overflowing.
        let last = s.slot_at(u64::MAX);
        assert_eq!(last.partition, None);
        assert!(last.end_ns == u64::MAX && last.start_ns < u64::MAX);
    }

    #[test]
    fn cursor_walks_without_gaps() {
        let ws = [w(0, 0, 4), w(1, 4, 6)];
        let s = Schedule::new(10 * MS, &ws).unwrap();
        let mut c = s.cursor(0);
        assert_eq!(c.current().partition, Some(0));
        assert_eq!(c.advance().partition, Some(1));
        let next = c.advance();
        assert_eq!((next.partition, next.start_ns), (Some(0), 10 * MS));
        assert_eq!(c.seek(35 * MS).partition, Some(1));
    }

    #[test]
    fn tsc_and_timer_conversions() {
        let c = TscClock::new(3_000_000_000);
        assert_eq!(c.ns_to_ticks(1_000), 3_000);
        assert_eq!(c.ticks_to_ns(3_000), 1_000);
        assert_eq!(c.ns_to_ticks(u64::MAX), u64::MAX);
        assert_eq!(TscClock::new(0).hz(), 1);
        assert_eq!(TscClock::new(1).ticks_to_ns(u64::MAX), u64::MAX);
        assert_eq!(preemption_timer_value(1000, 0), 1000);
        assert_eq!(preemption_timer_value(1000, 5), 31);
        assert_eq!(preemption_timer_value(u64::MAX, 0), u32::MAX);
        assert_eq!(preemption_timer_value(u64::MAX, 31), u32::MAX);
        assert_eq!(preemption_timer_value(u64::MAX, 33), (u64::MAX >> 33) as u32);
        assert_eq!(preemption_timer_value(5, 200), 0);
    }

    fn windows_strategy() -> impl Strategy<Value = (u64, Vec<Window>)> {
        proptest::collection::vec((0u64..50, 1u64..50, 0u32..4), 1..8).prop_map(|parts| {
            let mut at = 0;
            let mut ws = Vec::new();
            for (gap, len, p) in parts {
                at += gap;
                ws.push(Window { partition: p, offset_ns: at, duration_ns: len });
                at += len;
            }
            (at + 7, ws)
        })
    }

    proptest! {
        #[test]
        fn every_instant_has_exactly_the_window_a_scan_finds(
            (frame, ws) in windows_strategy(), t in 0u64..10_000,
        ) {
            let s = Schedule::new(frame, &ws).unwrap();
            let slot = s.slot_at(t);
            prop_assert!(slot.start_ns <= t && t < slot.end_ns);
            let off = t % frame;
            let owners: Vec<usize> = ws.iter().enumerate()
                .filter(|(_, w)| w.offset_ns <= off && off < w.offset_ns + w.duration_ns)
                .map(|(i, _)| i).collect();
            prop_assert!(owners.len() <= 1);
            prop_assert_eq!(slot.window, owners.first().copied());
            prop_assert_eq!(slot.partition, owners.first().map(|&i| ws[i].partition));
        }

        #[test]
        fn cursor_covers_the_frame_exactly((frame, ws) in windows_strategy(), start_frame in 0u64..100) {
            let s = Schedule::new(frame, &ws).unwrap();
            let begin = start_frame * frame;
            let mut c = s.cursor(begin);
            let mut covered = c.current().end_ns - begin;
            let mut windows_seen = usize::from(c.current().window.is_some());
            let mut previous = c.current();
            while previous.end_ns < begin + frame {
                let next = c.advance();
                prop_assert_eq!(next.start_ns, previous.end_ns);
                prop_assert!(next.end_ns > next.start_ns);
                prop_assert!(next.partition.is_some() || previous.partition.is_some(), "two gaps in a row");
                covered += next.end_ns.min(begin + frame) - next.start_ns;
                windows_seen += usize::from(next.window.is_some() && next.end_ns <= begin + frame);
                previous = next;
            }
            prop_assert_eq!(covered, frame);
            prop_assert_eq!(windows_seen, ws.len());
        }
    }
}
