//! Per-partition counters for the operator: VM exits by reason, windows and window
//! overruns, health-monitor events by class with the last [`EVENT_LOG_LEN`] of them,
//! console bytes and drops, and the instant the partition (re)started (its uptime).
//!
//! **Who writes, who reads.** The core running a partition's vCPU writes its
//! [`PartitionCounters`] (one `Relaxed` atomic add per event: no lock, no fence on the
//! hot path); any core reads them ([`PartitionCounters::snapshot`]) into a
//! [`Snapshot`] of plain integers, which [`table`] formats. A snapshot read while the
//! partition runs is a set of values each correct on its own, not one instant's.
//!
//! **What is counted, exactly.**
//! - *Exits*: every VM exit of any of the partition's vCPUs, by [`ExitReason`] (the
//!   arch-neutral [`Exit`] kinds, grouped).
//! - *Windows*: each window of the partition's schedule that the core reached while the
//!   partition was not stopped (entered, slept through, or spent restarting), counted
//!   once per window start even when several of its vCPUs share it
//!   ([`PartitionCounters::note_window`]). Over an uptime of `t` ns with a major frame of
//!   `f` ns and one window per frame, that is from one below to two above `t / f`
//!   ([`windows_plausible`]).
//! - *Overruns*: window ends at which the partition was still running and the
//!   preemption timer had to take the core back, per vCPU: its `WindowEnd` exits. A
//!   partition that yields or sleeps before its window ends never overruns; one that
//!   computes without pause overruns every window.
//! - *Deadline misses*: health-monitor events of class `deadline_miss`, which the SDK
//!   reports for its periodic tasks (rate-limited by the SDK: one report may stand for
//!   several misses).
//! - *Health-monitor events*: every event the health monitor decided about, by class,
//!   and the newest ones in the [`EventLog`] (time, class, place, action).
//! - *Console*: bytes taken from the partition, `Busy` refusals, lines dropped for a
//!   full queue, `[hv]` lines about it suppressed ([`ConsoleStats`]).
//! - *Restarts* are the partition's own restart counter (the one its boot info
//!   reports), passed to the snapshot; *uptime* runs from the last `Started` or
//!   `RestartDone` to now, or to the halt ([`PartitionCounters::note_lifecycle`]).

pub mod events;
pub mod table;

use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

use hallows_abi::health::{Action, EventClass};

use crate::lifecycle::Event;
use crate::vcpu::Exit;

pub use events::{EventLog, HealthEvent, Place, EVENT_LOG_LEN};

/// Why a vCPU left the guest, grouped for the operator (no vendor exit numbers).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ExitReason {
    Hypercall = 0,
    Cpuid = 1,
    Hlt = 2,
    /// The preemption timer ended the partition's window.
    WindowEnd = 3,
    /// External interrupt, NMI (the hypervisor's kick) or SIPI.
    Interrupt = 4,
    Exception = 5,
    /// CR0/CR4/CR8 reads and writes.
    ControlRegister = 6,
    Xsetbv = 7,
    Msr = 8,
    Io = 9,
    /// An EPT/NPT violation (an emulated MMIO access, or a memory violation).
    NestedPageFault = 10,
    /// A sensitive instruction (WBINVD, MONITOR, RDPMC, ...).
    Instruction = 11,
    TripleFault = 12,
    /// A failed entry or an exit the controls never ask for.
    Other = 13,
}

impl ExitReason {
    pub const COUNT: usize = 14;
    pub const ALL: [ExitReason; Self::COUNT] = [
        Self::Hypercall,
        Self::Cpuid,
        Self::Hlt,
        Self::WindowEnd,
        Self::Interrupt,
        Self::Exception,
        Self::ControlRegister,
        Self::Xsetbv,
        Self::Msr,
        Self::Io,
        Self::NestedPageFault,
        Self::Instruction,
        Self::TripleFault,
        Self::Other,
    ];

    /// The group an exit belongs to.
    #[inline]
    pub const fn of(exit: &Exit) -> Self {
        match exit {
            Exit::Hypercall => Self::Hypercall,
            Exit::Cpuid { .. } => Self::Cpuid,
            Exit::Hlt => Self::Hlt,
            Exit::WindowEnd => Self::WindowEnd,
            Exit::ExternalInterrupt | Exit::Nmi | Exit::Sipi { .. } => Self::Interrupt,
            Exit::Exception { .. } => Self::Exception,
            Exit::ControlWrite(_)
            | Exit::ControlRead { .. }
            | Exit::TprWrite { .. }
            | Exit::TprRead { .. } => Self::ControlRegister,
            Exit::Xsetbv { .. } => Self::Xsetbv,
            Exit::Rdmsr { .. } | Exit::Wrmsr { .. } => Self::Msr,
            Exit::Io(_) => Self::Io,
            Exit::NestedPageFault(_) => Self::NestedPageFault,
            Exit::Instruction(_) => Self::Instruction,
            Exit::TripleFault => Self::TripleFault,
            Exit::EntryFailed { .. } | Exit::Unexpected { .. } => Self::Other,
        }
    }

    pub const fn name(self) -> &'static str {
        match self {
            Self::Hypercall => "hypercall",
            Self::Cpuid => "cpuid",
            Self::Hlt => "hlt",
            Self::WindowEnd => "window_end",
            Self::Interrupt => "interrupt",
            Self::Exception => "exception",
            Self::ControlRegister => "control_register",
            Self::Xsetbv => "xsetbv",
            Self::Msr => "msr",
            Self::Io => "io",
            Self::NestedPageFault => "nested_page_fault",
            Self::Instruction => "instruction",
            Self::TripleFault => "triple_fault",
            Self::Other => "other",
        }
    }
}

/// What one partition's console did (the console glue counts, the table reads).
#[derive(Debug, Default)]
pub struct ConsoleStats {
    /// Bytes of `ConsoleWrite` (or virtual UART output) taken.
    pub bytes_accepted: AtomicU64,
    /// `ConsoleWrite` calls refused with `Busy` (queue full).
    pub busy_refusals: AtomicU64,
    /// Lines lost for a full queue (a Linux UART writing on despite the busy status, a
    /// partial line flushed at a stop).
    pub lines_dropped: AtomicU64,
    /// `[hv]` lines about the partition left out by the rate limit.
    pub hv_lines_suppressed: AtomicU64,
}

/// "Never": the value of an instant not yet reached.
const NEVER: u64 = u64::MAX;

/// One partition's counters, shared by every core (see the module documentation).
#[derive(Debug)]
pub struct PartitionCounters {
    exits: [AtomicU64; ExitReason::COUNT],
    windows: AtomicU64,
    /// `windows` at the last (re)start: the windows since then are the difference.
    windows_at_start: AtomicU64,
    /// One past the start (ns since boot) of the latest window counted; 0: none yet.
    window_mark: AtomicU64,
    health: [AtomicU64; EventClass::COUNT],
    events: EventLog,
    pub console: ConsoleStats,
    /// Last `Started`/`RestartDone` and the halt after it (ns since boot; [`NEVER`]).
    started_ns: AtomicU64,
    halted_ns: AtomicU64,
}

impl Default for PartitionCounters {
    fn default() -> Self {
        Self::new()
    }
}

impl PartitionCounters {
    pub fn new() -> Self {
        PartitionCounters {
            exits: core::array::from_fn(|_| AtomicU64::new(0)),
            windows: AtomicU64::new(0),
            windows_at_start: AtomicU64::new(0),
            window_mark: AtomicU64::new(0),
            health: core::array::from_fn(|_| AtomicU64::new(0)),
            events: EventLog::new(),
            console: ConsoleStats::default(),
            started_ns: AtomicU64::new(NEVER),
            halted_ns: AtomicU64::new(NEVER),
        }
    }

    /// Counts one VM exit.
    #[inline]
    pub fn count_exit(&self, exit: &Exit) {
        self.count(ExitReason::of(exit));
    }

    /// Counts one VM exit of a reason known where it is handled (the hot ones: a
    /// constant index, no mapping).
    #[inline(always)]
    pub fn count(&self, reason: ExitReason) {
        self.exits[reason as usize].fetch_add(1, Relaxed);
    }

    /// The core reached the window of this partition that starts at `start_ns`; `stopped`:
    /// the vCPU it would run is stopped (its windows pass unused and are not counted).
    /// Counted once per window start, whichever of the partition's cores gets there
    /// first (the swap hands the new start to exactly one of them); the common case, the
    /// same window again after an exit, is one load.
    #[inline]
    pub fn note_window(&self, start_ns: u64, stopped: bool) {
        // Stored one past the start, so that a window starting at 0 counts too.
        let mark = start_ns.wrapping_add(1);
        if stopped || self.window_mark.load(Relaxed) >= mark {
            return;
        }
        if self.window_mark.swap(mark, Relaxed) < mark {
            self.windows.fetch_add(1, Relaxed);
        }
    }

    /// The health monitor decided `action` about an event of `class` at `now_ns`.
    pub fn note_health(&self, now_ns: u64, class: EventClass, place: Place, action: Action) {
        self.health[class as usize].fetch_add(1, Relaxed);
        self.events.push(HealthEvent { time_ns: now_ns, class, place, action });
    }

    /// The partition made hypercall `number` without the privilege it needs: a health
    /// event it goes on after (the table's action for the class does not apply: a
    /// refused request harms nobody). Returns the class, for the console line.
    pub fn note_refusal(&self, now_ns: u64, number: u64) -> EventClass {
        let class = EventClass::ForbiddenInstruction;
        self.note_health(now_ns, class, Place::Hypercall { number }, Action::Log);
        class
    }

    /// The partition's life cycle moved by `event` at `now_ns`: a (re)start begins its
    /// uptime, a halt freezes it.
    pub fn note_lifecycle(&self, event: Event, now_ns: u64) {
        match event {
            Event::Started => {
                // Its first vCPU starts it; the others find it running.
                let _ = self.started_ns.compare_exchange(NEVER, now_ns, Relaxed, Relaxed);
            }
            Event::RestartDone => {
                self.halted_ns.store(NEVER, Relaxed);
                self.started_ns.store(now_ns, Relaxed);
                self.windows_at_start.store(self.windows.load(Relaxed), Relaxed);
            }
            Event::Halt(_) => self.halted_ns.store(now_ns, Relaxed),
            _ => {}
        }
    }

    /// The counters now, as plain numbers; `restarts` is the partition's restart count.
    pub fn snapshot(&self, restarts: u32, now_ns: u64) -> Snapshot {
        let load = |a: &AtomicU64| a.load(Relaxed);
        let started = load(&self.started_ns);
        let halted = load(&self.halted_ns);
        let until = if halted == NEVER { now_ns } else { halted };
        Snapshot {
            exits: self.exits.each_ref().map(load),
            windows: load(&self.windows),
            windows_since_start: load(&self.windows).saturating_sub(load(&self.windows_at_start)),
            // Every preemption at a window's end is an overrun (module documentation).
            overruns: load(&self.exits[ExitReason::WindowEnd as usize]),
            health: self.health.each_ref().map(load),
            events: self.events.read(),
            console_bytes: load(&self.console.bytes_accepted),
            console_busy: load(&self.console.busy_refusals),
            console_dropped: load(&self.console.lines_dropped),
            hv_lines_suppressed: load(&self.console.hv_lines_suppressed),
            restarts,
            uptime_ns: if started == NEVER { 0 } else { until.saturating_sub(started) },
        }
    }
}

/// One partition's counters at one moment (see [`PartitionCounters`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    /// VM exits by [`ExitReason`] (index: `reason as usize`).
    pub exits: [u64; ExitReason::COUNT],
    pub windows: u64,
    /// Windows since the last (re)start: over `uptime_ns` with one window per frame of
    /// `f` ns, within one of `uptime_ns / f` ([`windows_plausible`]).
    pub windows_since_start: u64,
    pub overruns: u64,
    /// Health-monitor events by [`EventClass`] (index: `class as usize`).
    pub health: [u64; EventClass::COUNT],
    /// The newest health-monitor events, oldest first, and how many there were in all.
    pub events: events::Recent,
    pub console_bytes: u64,
    pub console_busy: u64,
    pub console_dropped: u64,
    pub hv_lines_suppressed: u64,
    pub restarts: u32,
    /// Since the last (re)start, until now or the halt; 0 before the first start.
    pub uptime_ns: u64,
}

impl Snapshot {
    /// VM exits of every reason.
    pub fn exits_total(&self) -> u64 {
        self.exits.iter().sum()
    }

    pub fn exits_of(&self, reason: ExitReason) -> u64 {
        self.exits[reason as usize]
    }

    /// Health-monitor events of every class.
    pub fn health_total(&self) -> u64 {
        self.health.iter().sum()
    }

    pub fn health_of(&self, class: EventClass) -> u64 {
        self.health[class as usize]
    }

    /// Deadline misses the partition reported (health events of class `deadline_miss`).
    pub fn deadline_misses(&self) -> u64 {
        self.health_of(EventClass::DeadlineMiss)
    }
}

/// The windows a partition with `windows_per_frame` windows in a major frame of
/// `frame_ns` gets over `elapsed_ns`: `elapsed / frame` frames, each with its windows.
/// The count is at most one frame's windows below (the last frame's windows may not have
/// begun) and two above (the window the partition started in and the one in progress at
/// the read both count, while `elapsed / frame` counts whole frames).
pub fn expected_windows(elapsed_ns: u64, frame_ns: u64, windows_per_frame: u64) -> u64 {
    (elapsed_ns / frame_ns.max(1)).saturating_mul(windows_per_frame)
}

/// Whether `windows` counted over `elapsed_ns` is what the schedule gives, from one
/// frame's windows below to two frames' above (see [`expected_windows`]): no window
/// missed, none counted twice.
pub fn windows_plausible(windows: u64, elapsed_ns: u64, frame_ns: u64, windows_per_frame: u64) -> bool {
    let expected = expected_windows(elapsed_ns, frame_ns, windows_per_frame);
    let low = expected.saturating_sub(windows_per_frame);
    let high = expected.saturating_add(windows_per_frame.saturating_mul(2));
    (low..=high).contains(&windows)
}

#[cfg(test)]
mod tests;
