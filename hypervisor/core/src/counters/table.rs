//! The counters as the operator reads them on the console: one row per partition, like
//! `xl list` or `jailhouse cell stats`, then per partition its exits by reason and its
//! newest health-monitor events ([`write`] puts them in that order). Each value here
//! displays as one line (the binary makes each an `[hv]` line), so nothing needs the heap.
//!
//! ```
//! use hallows_core::counters::{table, PartitionCounters};
//! use hallows_core::lifecycle::State;
//! let counters = PartitionCounters::new();
//! let snapshot = counters.snapshot(0, 0);
//! let row = table::Row { name: "sensor", kind: "rt", state: State::Running, counters: &snapshot };
//! let width = table::name_width(["sensor"]);
//! assert_eq!(
//!     format!("{}", table::Header { name_width: width }),
//!     "NAME   KIND STATE      RESTARTS      EXITS  WINDOWS OVERRUNS DL_MISS   HM CONSOLE_B/DROP     UPTIME"
//! );
//! assert_eq!(
//!     format!("{}", table::RowLine { row: &row, name_width: width }),
//!     "sensor rt   running           0          0        0        0       0    0            0/0     0.000s"
//! );
//! ```

use core::fmt::{self, Write as _};

use arrayvec::ArrayString;

use super::{ExitReason, HealthEvent, Place, Snapshot};
use crate::console::MAX_NAME;
use crate::lifecycle::State;

/// The width of the name column for these names: the longest (at least the header's,
/// at most a partition name's limit).
pub fn name_width<'a>(names: impl IntoIterator<Item = &'a str>) -> usize {
    names.into_iter().map(str::len).max().unwrap_or(0).clamp("NAME".len(), MAX_NAME)
}

/// One partition's row.
#[derive(Clone, Copy, Debug)]
pub struct Row<'a> {
    pub name: &'a str,
    /// `rt` or `linux`.
    pub kind: &'a str,
    pub state: State,
    pub counters: &'a Snapshot,
}

/// The header line.
#[derive(Clone, Copy, Debug)]
pub struct Header {
    pub name_width: usize,
}

impl fmt::Display for Header {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:<w$} {:<4} {:<10} {:>8} {:>10} {:>8} {:>8} {:>7} {:>4} {:>14} {:>10}",
            "NAME",
            "KIND",
            "STATE",
            "RESTARTS",
            "EXITS",
            "WINDOWS",
            "OVERRUNS",
            "DL_MISS",
            "HM",
            "CONSOLE_B/DROP",
            "UPTIME",
            w = self.name_width
        )
    }
}

/// A partition's row, aligned under [`Header`].
#[derive(Clone, Copy, Debug)]
pub struct RowLine<'a> {
    pub row: &'a Row<'a>,
    pub name_width: usize,
}

impl fmt::Display for RowLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (r, c) = (self.row, self.row.counters);
        let mut console = ArrayString::<32>::new();
        let _ = write!(console, "{}/{}", c.console_bytes, c.console_dropped);
        write!(
            f,
            "{:<w$} {:<4} {:<10} {:>8} {:>10} {:>8} {:>8} {:>7} {:>4} {:>14} {:>10}",
            r.name,
            r.kind,
            r.state.name(),
            c.restarts,
            c.exits_total(),
            c.windows,
            c.overruns,
            c.deadline_misses(),
            c.health_total(),
            console.as_str(),
            Seconds(c.uptime_ns),
            w = self.name_width
        )
    }
}

/// Nanoseconds as seconds with three decimals and an `s`.
struct Seconds(u64);

impl fmt::Display for Seconds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut text = ArrayString::<24>::new();
        let _ = write!(text, "{}.{:03}s", self.0 / 1_000_000_000, self.0 % 1_000_000_000 / 1_000_000);
        f.pad(text.as_str())
    }
}

/// `NAME exits: hypercall=N window_end=N ...`, the reasons that occurred; `none` when
/// there was no exit.
#[derive(Clone, Copy, Debug)]
pub struct ExitsLine<'a> {
    pub name: &'a str,
    pub counters: &'a Snapshot,
}

impl fmt::Display for ExitsLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} exits:", self.name)?;
        let mut any = false;
        for reason in ExitReason::ALL {
            let n = self.counters.exits_of(reason);
            if n != 0 {
                write!(f, " {}={n}", reason.name())?;
                any = true;
            }
        }
        if !any {
            f.write_str(" none")?;
        }
        Ok(())
    }
}

/// `NAME event N of T at S: class at PLACE -> action` (`(reported)` for what the
/// partition reported itself, nothing for an unknown place): one of the newest events
/// (`number` counts from 1 over the partition's whole run, `total` is how many it had).
#[derive(Clone, Copy, Debug)]
pub struct EventLine<'a> {
    pub name: &'a str,
    pub number: u64,
    pub total: u64,
    pub event: &'a HealthEvent,
}

impl fmt::Display for EventLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let e = self.event;
        write!(
            f,
            "{} event {} of {} at {}: {}",
            self.name,
            self.number,
            self.total,
            Seconds(e.time_ns),
            e.class.name()
        )?;
        match e.place {
            Place::Unknown => {}
            Place::Reported => f.write_str(" (reported)")?,
            place => write!(f, " at {place}")?,
        }
        write!(f, " -> {}", e.action.name())
    }
}

/// The event lines of one partition's snapshot, oldest first, numbered over its run.
pub fn event_lines<'a>(name: &'a str, counters: &'a Snapshot) -> impl Iterator<Item = EventLine<'a>> + 'a {
    let recent = &counters.events;
    let first = recent.total - recent.events.len() as u64 + 1;
    recent.events.iter().enumerate().map(move |(i, event)| EventLine {
        name,
        number: first + i as u64,
        total: recent.total,
        event,
    })
}

/// The whole table for `rows` (one snapshot per partition, so a row and its details
/// agree), one line per call of `line`: a title saying why and when (`now_ns`), the
/// header, every row, then per partition its exits by reason and newest events.
pub fn write(
    why: &dyn fmt::Display,
    now_ns: u64,
    rows: &[Row<'_>],
    line: &mut dyn FnMut(fmt::Arguments<'_>),
) {
    let name_width = name_width(rows.iter().map(|r| r.name));
    line(format_args!("counters ({why}) at {}:", Seconds(now_ns)));
    line(format_args!("{}", Header { name_width }));
    for row in rows {
        line(format_args!("{}", RowLine { row, name_width }));
    }
    for row in rows {
        line(format_args!("{}", ExitsLine { name: row.name, counters: row.counters }));
        for event in event_lines(row.name, row.counters) {
            line(format_args!("{event}"));
        }
    }
}
