//! Periodic tasks with deadline monitoring.
//!
//! ```ignore
//! let mut task = Periodic::new(5_000_000, 4_000_000); // 5 ms period, 4 ms deadline
//! loop {
//!     let activation = task.wait_next();
//!     do_work(activation);
//! }
//! ```
//! Activation `k` is released at `start + k * period`, where `start` is the time of the
//! first [`Periodic::wait_next`]; its deadline is `release + deadline`. Each `wait_next`
//! first closes the previous activation: finishing after its deadline is a deadline miss,
//! counted and reported to the health monitor (class `deadline_miss`, whose default action
//! is `log`; at most one report per [`MISS_REPORT_INTERVAL_NS`] so that a task that misses
//! every period does not flood the console). An activation whose release passed by more
//! than a whole period is skipped (counted), so an overrun never causes a burst of
//! back-to-back activations.

use core::fmt::Write;

use hallows_abi::health::EventClass;

use crate::fixed::FixedText;

/// Least time between two deadline-miss reports of one task.
pub const MISS_REPORT_INTERVAL_NS: u64 = 1_000_000_000;

/// One activation of a periodic task.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Activation {
    /// Activation number, from 0 (skipped activations are counted too).
    pub index: u64,
    /// When the activation was released.
    pub release_ns: u64,
    /// How late the task actually started after its release (release jitter).
    pub lateness_ns: u64,
    /// Activations skipped just before this one because the task overran them.
    pub skipped: u64,
}

/// How the previous activation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Completion {
    /// Finished after `release + deadline`.
    pub missed: bool,
    /// By how much (0 when met).
    pub late_by_ns: u64,
}

/// The arithmetic of a periodic schedule, independent of any clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Schedule {
    period_ns: u64,
    deadline_ns: u64,
    start_ns: u64,
    /// Index of the current activation.
    index: u64,
}

impl Schedule {
    /// A schedule whose activation 0 is released at `start_ns`. A zero period is taken as
    /// 1 ns; a zero deadline means "the period".
    pub const fn new(period_ns: u64, deadline_ns: u64, start_ns: u64) -> Self {
        let period_ns = if period_ns == 0 { 1 } else { period_ns };
        let deadline_ns = if deadline_ns == 0 { period_ns } else { deadline_ns };
        Self { period_ns, deadline_ns, start_ns, index: 0 }
    }

    /// Release time of activation `index` (saturating).
    pub const fn release_of(&self, index: u64) -> u64 {
        self.start_ns.saturating_add(index.saturating_mul(self.period_ns))
    }

    /// The current activation's index.
    pub const fn index(&self) -> u64 {
        self.index
    }

    /// Judges the current activation, finished at `now_ns`, against its deadline.
    pub const fn complete(&self, now_ns: u64) -> Completion {
        let deadline = self.release_of(self.index).saturating_add(self.deadline_ns);
        if now_ns > deadline {
            Completion { missed: true, late_by_ns: now_ns - deadline }
        } else {
            Completion { missed: false, late_by_ns: 0 }
        }
    }

    /// Moves to the next activation as seen at `now_ns`: the one right after the current,
    /// unless its release is more than a period in the past, in which case the latest
    /// release not after `now_ns`. Returns its index, release time and the skipped count.
    pub fn advance(&mut self, now_ns: u64) -> (u64, u64, u64) {
        let mut next = self.index + 1;
        let mut skipped = 0;
        let release = self.release_of(next);
        if now_ns >= release.saturating_add(self.period_ns) {
            skipped = (now_ns - release) / self.period_ns;
            next += skipped;
        }
        self.index = next;
        (next, self.release_of(next), skipped)
    }
}

/// What a periodic task needs from the outside world; [`PartitionClock`] in a partition,
/// a fake in tests.
pub trait TaskClock {
    /// The current time in nanoseconds.
    fn now_ns(&mut self) -> u64;
    /// Waits until `deadline_ns`; returns the time at wake-up (not before `deadline_ns`).
    fn sleep_until(&mut self, deadline_ns: u64) -> u64;
    /// Reports a deadline miss to the health monitor.
    fn report_miss(&mut self, message: &str);
}

/// The real clock: TSC time, `Yield` to wait, `ReportFault(DeadlineMiss)` to report.
#[derive(Clone, Copy, Debug, Default)]
pub struct PartitionClock;

impl TaskClock for PartitionClock {
    fn now_ns(&mut self) -> u64 {
        crate::time::now_ns()
    }

    fn sleep_until(&mut self, deadline_ns: u64) -> u64 {
        crate::time::sleep_until(deadline_ns)
    }

    fn report_miss(&mut self, message: &str) {
        let _ = crate::hypercall::report_fault(EventClass::DeadlineMiss, message.as_bytes());
    }
}

/// Counters of a periodic task.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Activations started.
    pub activations: u64,
    /// Activations that finished after their deadline.
    pub deadline_misses: u64,
    /// Activations skipped because of overruns.
    pub skipped: u64,
    /// Largest start lateness seen (release jitter).
    pub max_lateness_ns: u64,
    /// Smallest start lateness seen.
    pub min_lateness_ns: u64,
}

/// A periodic task: call [`Periodic::wait_next`] at the top of each activation.
pub struct Periodic<C: TaskClock = PartitionClock> {
    clock: C,
    period_ns: u64,
    deadline_ns: u64,
    schedule: Option<Schedule>,
    stats: Stats,
    last_report_ns: Option<u64>,
}

impl Periodic<PartitionClock> {
    /// A task with the given period and relative deadline (0 = the period), timed by the
    /// partition clock.
    pub fn new(period_ns: u64, deadline_ns: u64) -> Self {
        Self::with_clock(period_ns, deadline_ns, PartitionClock)
    }
}

impl<C: TaskClock> Periodic<C> {
    /// A task timed by `clock`.
    pub fn with_clock(period_ns: u64, deadline_ns: u64, clock: C) -> Self {
        Self { clock, period_ns, deadline_ns, schedule: None, stats: Stats::default(), last_report_ns: None }
    }

    /// Counters so far.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Ends the current activation (checking its deadline) and waits for the next release.
    /// The first call starts the schedule and returns activation 0 at once.
    pub fn wait_next(&mut self) -> Activation {
        let now = self.clock.now_ns();
        let (index, release, skipped) = match &mut self.schedule {
            None => {
                self.schedule = Some(Schedule::new(self.period_ns, self.deadline_ns, now));
                (0, now, 0)
            }
            Some(schedule) => {
                let completion = schedule.complete(now);
                let finished = schedule.index();
                let next = schedule.advance(now);
                if completion.missed {
                    self.on_miss(finished, completion.late_by_ns, now);
                }
                next
            }
        };
        let woke = if now < release { self.clock.sleep_until(release) } else { now };
        let lateness_ns = woke.saturating_sub(release);
        let s = &mut self.stats;
        if s.activations == 0 || lateness_ns < s.min_lateness_ns {
            s.min_lateness_ns = lateness_ns;
        }
        s.max_lateness_ns = s.max_lateness_ns.max(lateness_ns);
        s.activations += 1;
        s.skipped += skipped;
        Activation { index, release_ns: release, lateness_ns, skipped }
    }

    fn on_miss(&mut self, index: u64, late_by_ns: u64, now: u64) {
        self.stats.deadline_misses += 1;
        let due = self.last_report_ns.is_none_or(|t| now.saturating_sub(t) >= MISS_REPORT_INTERVAL_NS);
        if due {
            self.last_report_ns = Some(now);
            let mut text = FixedText::<160>::new();
            let _ = write!(
                text,
                "deadline miss: activation {index} finished {late_by_ns} ns late ({} misses so far)",
                self.stats.deadline_misses
            );
            self.clock.report_miss(text.as_str());
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use core::cell::{Cell, RefCell};
    use proptest::prelude::*;
    use std::string::String;
    use std::vec::Vec;

    /// A fake clock: time moves only when the test says (work) or when the task sleeps.
    #[derive(Default)]
    struct FakeClock {
        now: Cell<u64>,
        /// Extra delay added to every wake-up (models wake-up latency).
        wake_delay: u64,
        reports: RefCell<Vec<String>>,
    }

    impl FakeClock {
        fn work(&self, ns: u64) {
            self.now.set(self.now.get() + ns);
        }
    }

    impl TaskClock for &FakeClock {
        fn now_ns(&mut self) -> u64 {
            self.now.get()
        }
        fn sleep_until(&mut self, deadline_ns: u64) -> u64 {
            self.now.set(self.now.get().max(deadline_ns) + self.wake_delay);
            self.now.get()
        }
        fn report_miss(&mut self, message: &str) {
            self.reports.borrow_mut().push(message.into());
        }
    }

    #[test]
    fn releases_are_periodic_and_lateness_is_measured() {
        let clock = FakeClock { now: Cell::new(1000), wake_delay: 7, ..Default::default() };
        let mut task = Periodic::with_clock(100, 0, &clock);
        let a0 = task.wait_next();
        assert_eq!((a0.index, a0.release_ns, a0.lateness_ns), (0, 1000, 0));
        let a1 = task.wait_next();
        assert_eq!((a1.index, a1.release_ns, a1.lateness_ns), (1, 1100, 7));
        let a2 = task.wait_next();
        assert_eq!((a2.index, a2.release_ns), (2, 1200));
        assert_eq!(task.stats().max_lateness_ns, 7);
        assert_eq!(task.stats().min_lateness_ns, 0);
        assert_eq!(task.stats().deadline_misses, 0);
    }

    #[test]
    fn finishing_late_is_a_reported_miss() {
        let clock = FakeClock::default();
        let mut task = Periodic::with_clock(100, 50, &clock);
        task.wait_next(); // activation 0 released at 0, deadline 50
        clock.work(60);
        let a1 = task.wait_next();
        assert_eq!(a1.index, 1);
        assert_eq!(task.stats().deadline_misses, 1);
        let reports = clock.reports.borrow();
        assert_eq!(reports.len(), 1);
        assert!(reports[0].contains("activation 0 finished 10 ns late"), "{}", reports[0]);
    }

    #[test]
    fn meeting_the_deadline_reports_nothing() {
        let clock = FakeClock::default();
        let mut task = Periodic::with_clock(100, 50, &clock);
        for _ in 0..10 {
            task.wait_next();
            clock.work(50);
        }
        assert_eq!(task.stats().deadline_misses, 0);
        assert!(clock.reports.borrow().is_empty());
    }

    #[test]
    fn overrun_skips_whole_periods_instead_of_bursting() {
        let mut s = Schedule::new(100, 100, 0);
        // Activation 0 overruns until 350: releases 100, 200 and 300 have passed.
        assert!(s.complete(350).missed);
        assert_eq!(s.advance(350), (3, 300, 2));
        // A small overrun (next release passed by less than a period) is not skipped.
        assert_eq!(s.advance(420), (4, 400, 0));
    }

    #[test]
    fn zero_period_and_deadline_are_sane() {
        let s = Schedule::new(0, 0, 5);
        assert_eq!(s.release_of(3), 8);
        assert!(!s.complete(6).missed);
        assert!(s.complete(7).missed);
    }

    #[test]
    fn miss_reports_are_rate_limited_but_all_counted() {
        let clock = FakeClock::default();
        let period = 1_000_000;
        let mut task = Periodic::with_clock(period, period / 2, &clock);
        task.wait_next();
        for _ in 0..3000 {
            // Work takes 0.8 of the period: every activation misses its 0.5 deadline.
            clock.work(period * 8 / 10);
            task.wait_next();
        }
        assert_eq!(task.stats().deadline_misses, 3000);
        // 3000 periods of 1 ms = 3 s: one report per second.
        let reports = clock.reports.borrow().len();
        assert!((3..=4).contains(&reports), "{reports} reports");
    }

    proptest! {
        /// Releases never go backwards, stay on the period grid, and the next release is
        /// never more than a period before `now`.
        #[test]
        fn advance_stays_on_the_grid(period in 1u64..1_000_000, start in 0u64..1 << 40,
                                     steps in proptest::collection::vec(0u64..5_000_000, 1..50)) {
            let mut s = Schedule::new(period, 0, start);
            let mut now = start;
            let mut last_release = start;
            for step in steps {
                now += step;
                let (index, release, _) = s.advance(now);
                prop_assert_eq!(release, start + index * period);
                prop_assert!(release > last_release);
                prop_assert!(release + period > now);
                last_release = release;
            }
        }
    }
}
