//! What the operator reads: the partition table, one partition's counters (text and
//! JSON) and event lines. Pure functions of decoded records; values this version does
//! not know (a kind, state, class or action added later) are shown as their numbers.

use hallows_abi::health::{Action, EventClass};
use hallows_abi::manage::{
    EventRecord, PartitionRecord, StatsRecord, EXIT_REASONS, KIND_LINUX, KIND_RT, PLACE_GPA, PLACE_HYPERCALL,
    PLACE_MSR, PLACE_PORT, PLACE_REPORTED, PLACE_RIP, PLACE_UNKNOWN, STATE_NAMES,
};

use crate::client::name;
use crate::json::Value;

const NS_PER_S: u64 = 1_000_000_000;
const MIB: u64 = 1 << 20;

pub fn kind(kind: u8) -> String {
    match kind {
        KIND_RT => "rt".into(),
        KIND_LINUX => "linux".into(),
        other => format!("kind {other}"),
    }
}

pub fn state(state: u8) -> String {
    STATE_NAMES.get(state as usize).map_or_else(|| format!("state {state}"), |s| (*s).into())
}

pub fn class(class: u8) -> String {
    EventClass::ALL.get(class as usize).map_or_else(|| format!("class {class}"), |c| c.name().into())
}

pub fn action(action: u8) -> String {
    Action::from_u8(action).map_or_else(|| format!("action {action}"), |a| a.name().into())
}

/// A core mask as ranges: `0,2-3`; `-` for none.
pub fn cores(mask: u64) -> String {
    let mut parts = Vec::new();
    let mut core = 0;
    while core < 64 {
        if mask & (1 << core) == 0 {
            core += 1;
            continue;
        }
        let first = core;
        while core < 64 && mask & (1 << core) != 0 {
            core += 1;
        }
        let last = core - 1;
        parts.push(if first == last { format!("{first}") } else { format!("{first}-{last}") });
    }
    if parts.is_empty() {
        "-".into()
    } else {
        parts.join(",")
    }
}

/// Seconds with one decimal (truncated): `12.3`.
pub fn seconds_tenths(ns: u64) -> String {
    format!("{}.{}", ns / NS_PER_S, ns % NS_PER_S / (NS_PER_S / 10))
}

/// Seconds with three decimals (truncated): `0.331`.
pub fn seconds_millis(ns: u64) -> String {
    format!("{}.{:03}", ns / NS_PER_S, ns % NS_PER_S / 1_000_000)
}

/// A duration in milliseconds, without trailing zeros: `10`, `0.25`.
pub fn millis(ns: u64) -> String {
    let (whole, rest) = (ns / 1_000_000, ns % 1_000_000);
    if rest == 0 {
        return format!("{whole}");
    }
    let fraction = format!("{rest:06}");
    format!("{whole}.{}", fraction.trim_end_matches('0'))
}

/// Memory in MiB: whole when it is, else one decimal (truncated).
pub fn mebibytes(bytes: u64) -> String {
    if bytes.is_multiple_of(MIB) {
        format!("{}", bytes / MIB)
    } else {
        format!("{}.{}", bytes / MIB, bytes % MIB * 10 / MIB)
    }
}

/// `n`, or `n/limit` when the table sets a restart budget.
pub fn restarts(record: &PartitionRecord) -> String {
    if record.restart_limit == 0 {
        format!("{}", record.restarts)
    } else {
        format!("{}/{}", record.restarts, record.restart_limit)
    }
}

/// Windows a partition on a schedule should have had in `uptime_ns`: one per
/// `windows_per_frame` per major frame. `None` on dedicated cores (no schedule).
pub fn expected_windows(uptime_ns: u64, frame_ns: u64, windows_per_frame: u32) -> Option<u64> {
    if frame_ns == 0 || windows_per_frame == 0 {
        return None;
    }
    let expected = u128::from(uptime_ns) * u128::from(windows_per_frame) / u128::from(frame_ns);
    Some(u64::try_from(expected).unwrap_or(u64::MAX))
}

/// Where an event happened: `port 0x80 at RIP 0x1234`, `hypercall 10`, `reported`, `-`.
pub fn place(e: &EventRecord) -> String {
    let (a, b) = (e.place_a, e.place_b);
    match e.place_kind {
        PLACE_UNKNOWN => "-".into(),
        PLACE_REPORTED => "reported".into(),
        PLACE_RIP => format!("RIP {a:#x}"),
        PLACE_GPA => format!("GPA {a:#x} at RIP {b:#x}"),
        PLACE_PORT => format!("port {a:#x} at RIP {b:#x}"),
        PLACE_MSR => format!("MSR {a:#x} at RIP {b:#x}"),
        PLACE_HYPERCALL => format!("hypercall {a}"),
        other => format!("place kind {other} ({a:#x}, {b:#x})"),
    }
}

/// How a column lines up.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Align {
    Left,
    Right,
}

/// Rows of cells as lines, each column as wide as its widest cell, two spaces apart; the
/// last column is not padded.
fn table(columns: &[(&str, Align)], rows: &[Vec<String>]) -> String {
    let header: Vec<String> = columns.iter().map(|(h, _)| (*h).to_string()).collect();
    let widths: Vec<usize> = (0..columns.len())
        .map(|c| std::iter::once(&header).chain(rows).map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            if c > 0 {
                line.push_str("  ");
            }
            let pad = " ".repeat(widths[c] - cell.chars().count());
            match columns[c].1 {
                Align::Right => {
                    line.push_str(&pad);
                    line.push_str(cell);
                }
                Align::Left => {
                    line.push_str(cell);
                    line.push_str(&pad);
                }
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// The partition table, like `xl list`.
pub fn list(records: &[PartitionRecord]) -> String {
    use Align::{Left, Right};
    let columns = [
        ("Name", Left),
        ("ID", Right),
        ("Kind", Left),
        ("State", Left),
        ("vCPUs", Right),
        ("Cores", Left),
        ("Mem(MiB)", Right),
        ("Restarts", Left),
        ("Uptime(s)", Right),
        ("Image", Left),
    ];
    let rows: Vec<Vec<String>> = records
        .iter()
        .map(|r| {
            vec![
                name(r).into(),
                r.index.to_string(),
                kind(r.kind),
                state(r.state),
                r.vcpus.to_string(),
                cores(r.cores),
                mebibytes(r.memory_bytes),
                restarts(r),
                seconds_tenths(r.uptime_ns),
                hallows_abi::manage::field_text(&r.image).into(),
            ]
        })
        .collect();
    table(&columns, &rows)
}

/// `name=value` for every non-zero value, in order; `none` when all are zero.
fn nonzero<'a>(names: impl IntoIterator<Item = &'a str>, values: &[u64]) -> String {
    let parts: Vec<String> =
        names.into_iter().zip(values).filter(|(_, &v)| v != 0).map(|(n, v)| format!("{n}={v}")).collect();
    if parts.is_empty() {
        "none".into()
    } else {
        parts.join(" ")
    }
}

fn class_names() -> impl Iterator<Item = &'static str> {
    EventClass::ALL.into_iter().map(EventClass::name)
}

/// One partition's counters as text: a title line, then one indented line per subject.
pub fn stats(record: &PartitionRecord, s: &StatsRecord) -> String {
    let mut lines = vec![format!(
        "{} (partition {}, {}, {})",
        name(record),
        record.index,
        kind(record.kind),
        state(record.state)
    )];
    let mut line = |label: &str, text: String| lines.push(format!("  {label:<16} {text}"));
    line("uptime", format!("{} s", seconds_tenths(s.uptime_ns)));
    let budget = if record.restart_limit == 0 {
        String::new()
    } else {
        format!(
            " (at most {} per {} s)",
            record.restart_limit,
            seconds_tenths(record.restart_window_ms as u64 * 1_000_000)
        )
    };
    line("restarts", format!("{}{budget}", s.restarts));
    let exits_total: u64 = s.exits.iter().sum();
    line("exits", format!("{exits_total}: {}", nonzero(EXIT_REASONS, &s.exits)));
    let windows = match expected_windows(s.uptime_ns, record.frame_ns, record.windows_per_frame) {
        Some(expected) => format!(
            "{}, expected {expected} ({} s of {} ms frames, {} per frame)",
            s.windows,
            seconds_tenths(s.uptime_ns),
            millis(record.frame_ns),
            record.windows_per_frame
        ),
        None => format!("{} (dedicated cores: no schedule)", s.windows),
    };
    line("windows", windows);
    line("overruns", s.overruns.to_string());
    line("deadline misses", s.health[EventClass::DeadlineMiss as usize].to_string());
    let health_total: u64 = s.health.iter().sum();
    line("health events", format!("{health_total}: {}", nonzero(class_names(), &s.health)));
    line(
        "console",
        format!(
            "{} bytes, {} busy, {} dropped, {} [hv] lines suppressed",
            s.console_bytes, s.console_busy, s.console_dropped, s.hv_lines_suppressed
        ),
    );
    let mut out = lines.join("\n");
    out.push('\n');
    out
}

/// One partition's counters as a JSON object (keys in docs/rhctl.md).
pub fn stats_json(record: &PartitionRecord, s: &StatsRecord) -> Value {
    let exits = Value::object(EXIT_REASONS.iter().zip(s.exits).map(|(n, v)| (*n, v.into())));
    let health = Value::object(class_names().zip(s.health).map(|(n, v)| (n, v.into())));
    Value::object([
        ("name", name(record).into()),
        ("index", record.index.into()),
        ("kind", kind(record.kind).as_str().into()),
        ("state", state(record.state).as_str().into()),
        ("restarts", s.restarts.into()),
        ("restart_limit", record.restart_limit.into()),
        ("uptime_ns", s.uptime_ns.into()),
        ("frame_ns", record.frame_ns.into()),
        ("windows_per_frame", record.windows_per_frame.into()),
        ("windows", s.windows.into()),
        ("expected_windows", expected_windows(s.uptime_ns, record.frame_ns, record.windows_per_frame).into()),
        ("overruns", s.overruns.into()),
        ("deadline_misses", s.health[EventClass::DeadlineMiss as usize].into()),
        ("exits", exits),
        ("exits_total", s.exits.iter().sum::<u64>().into()),
        ("health", health),
        ("events_total", s.events_total.into()),
        (
            "console",
            Value::object([
                ("bytes", s.console_bytes.into()),
                ("busy", s.console_busy.into()),
                ("dropped", s.console_dropped.into()),
                ("hv_lines_suppressed", s.hv_lines_suppressed.into()),
            ]),
        ),
    ])
}

/// Width of the partition column of event lines: the longest name, at least the header's.
pub fn event_name_width<'a>(names: impl IntoIterator<Item = &'a str>) -> usize {
    names.into_iter().map(|n| n.chars().count()).max().unwrap_or(0).max("PARTITION".len())
}

/// The header of event lines.
pub fn event_header(name_width: usize) -> String {
    format!("{:>10}  {:<name_width$}  {:<21}  {:<11}  PLACE", "TIME(s)", "PARTITION", "CLASS", "ACTION")
}

/// One event: time since boot, partition, class, action, place.
pub fn event_line(name_width: usize, partition: &str, e: &EventRecord) -> String {
    format!(
        "{:>10}  {partition:<name_width$}  {:<21}  {:<11}  {}",
        seconds_millis(e.time_ns),
        class(e.class),
        action(e.action),
        place(e)
    )
}
