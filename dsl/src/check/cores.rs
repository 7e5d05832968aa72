//! Cores and schedules: who owns which core, and whether every schedule's windows fit.

use std::collections::{HashMap, HashSet};

use hallows_abi::table::{MAX_CORES, MAX_WINDOWS_PER_SCHEDULE};

use super::{expand, Bits256, System};
use crate::diagnostics::{Code, Diagnostic};
use crate::span::Span;

/// Windows shorter than this draw a warning: a switch costs microseconds.
pub const SHORT_WINDOW_NS: u64 = 50_000;

/// Checks schedules and core ownership. Returns the schedule index of every core.
pub fn check(sys: &System<'_>, diags: &mut Vec<Diagnostic>) -> Vec<Option<usize>> {
    let mut schedule_of_core: Vec<Option<usize>> = vec![None; MAX_CORES];
    let mut schedule_cores: Vec<Bits256> = Vec::with_capacity(sys.schedules.len());
    for (si, s) in sys.schedules.iter().enumerate() {
        super::partitions::check_cores(sys, &s.cores.value, diags);
        let mut bits = Bits256::default();
        for core in expand(&s.cores.value, MAX_CORES as u64) {
            bits.insert(core);
            match schedule_of_core[core as usize] {
                Some(first) if first != si => diags.push(
                    Diagnostic::new(
                        Code::ScheduleOverlap,
                        s.cores.span,
                        format!("core {core} already has a schedule"),
                    )
                    .label(format!("core {core} again"))
                    .related(sys.schedules[first].cores.span, "first schedule for it")
                    .hint("a core follows one schedule: merge the windows into one schedule"),
                ),
                Some(_) => {}
                None => schedule_of_core[core as usize] = Some(si),
            }
        }
        schedule_cores.push(bits);
    }
    check_dedicated(sys, &schedule_of_core, diags);
    check_linux_dedicated(sys, &schedule_of_core, diags);
    let mut windowed: HashSet<(usize, usize)> = HashSet::new();
    for (si, cores) in schedule_cores.iter().enumerate() {
        check_windows(sys, si, cores, diags, &mut windowed);
    }
    check_starvation(sys, &schedule_of_core, &windowed, diags);
    schedule_of_core
}

/// Outside schedules, a core belongs to one partition.
fn check_dedicated(sys: &System<'_>, schedule_of_core: &[Option<usize>], diags: &mut Vec<Diagnostic>) {
    let mut owner: Vec<Option<(usize, Span)>> = vec![None; MAX_CORES];
    for (pi, p) in sys.partitions.iter().enumerate() {
        let Some(cores) = &p.cores else { continue };
        for item in &cores.value {
            let (first, last) = item.value;
            for core in first..=last.min(MAX_CORES as u64 - 1) {
                let c = core as usize;
                if schedule_of_core[c].is_some() {
                    continue;
                }
                match owner[c] {
                    Some((other, span)) if other != pi => {
                        let first = &sys.partitions[other].name.value;
                        let message = if *first == p.name.value {
                            format!("core {core} is given to two partitions named `{first}`")
                        } else {
                            format!("core {core} is given to `{first}` and `{}`", p.name.value)
                        };
                        diags.push(
                            Diagnostic::new(Code::CoreShared, item.span, message)
                                .label(format!("core {core} is already `{first}`'s"))
                                .related(span, "first given here")
                                .hint(format!(
                                    "give each partition its own core, or share core {core} with a `schedule cores {core} {{ ... }}` block"
                                )),
                        );
                        break;
                    }
                    Some(_) => {}
                    None => owner[c] = Some((pi, item.span)),
                }
            }
        }
    }
}

/// Linux partitions run on dedicated cores only: the hypervisor cannot preempt a Linux
/// vCPU for a window switch.
fn check_linux_dedicated(sys: &System<'_>, schedule_of_core: &[Option<usize>], diags: &mut Vec<Diagnostic>) {
    for (pi, p) in sys.partitions.iter().enumerate() {
        let Some(cores) = &p.cores else { continue };
        if !sys.is_linux(pi) {
            continue;
        }
        let Some((core, si)) =
            sys.cores[pi].iter().find_map(|c| schedule_of_core[c as usize].map(|si| (c, si)))
        else {
            continue;
        };
        diags.push(
            Diagnostic::new(
                Code::LinuxOnScheduledCore,
                cores.span,
                format!("Linux partition `{}` is on scheduled core {core}", p.name.value),
            )
            .label("Linux needs dedicated cores")
            .related(sys.schedules[si].cores.span, "this schedule covers it")
            .hint("give the Linux partition cores no schedule covers; time partitioning is for real-time partitions"),
        );
    }
}

fn check_windows(
    sys: &System<'_>,
    si: usize,
    cores: &Bits256,
    diags: &mut Vec<Diagnostic>,
    windowed: &mut HashSet<(usize, usize)>,
) {
    let s = sys.schedules[si];
    let frame = match &s.major_frame {
        None if s.broken => None,
        None => {
            diags.push(
                Diagnostic::new(Code::MissingSetting, s.span, "this schedule has no `major_frame`")
                    .label("needs `major_frame`")
                    .hint("add e.g. `major_frame 10 ms`"),
            );
            None
        }
        Some(f) if f.value == 0 => {
            diags.push(
                Diagnostic::new(Code::ZeroFrame, f.span, "a major frame of zero length")
                    .label("zero")
                    .hint("the major frame is the period the windows repeat with, e.g. `10 ms`"),
            );
            None
        }
        Some(f) => Some(f),
    };
    if s.windows.is_empty() && !s.broken {
        diags.push(
            Diagnostic::new(Code::NoWindows, s.span, "this schedule has no windows")
                .label("no `window`")
                .hint("add e.g. `window NAME 0..5 ms`"),
        );
        return;
    }
    if s.windows.len() > MAX_WINDOWS_PER_SCHEDULE {
        diags.push(
            Diagnostic::new(
                Code::TooManyWindows,
                s.span,
                format!("{} windows in one schedule", s.windows.len()),
            )
            .label("too many windows")
            .hint(format!("a schedule holds at most {MAX_WINDOWS_PER_SCHEDULE} windows")),
        );
    }
    let mut time_per_partition: HashMap<usize, (u64, Span)> = HashMap::new();
    for w in &s.windows {
        let length = w.end.value - w.start.value;
        if length == 0 {
            diags.push(
                Diagnostic::new(Code::ZeroWindow, w.start.span.to(w.end.span), "a window of zero length")
                    .label("starts where it ends")
                    .hint("give the window a length, or remove it"),
            );
        } else if length < SHORT_WINDOW_NS {
            diags.push(
                Diagnostic::new(
                    Code::WindowShort,
                    w.start.span.to(w.end.span),
                    format!("a window of {length} ns is very short"),
                )
                .label("shorter than 50 us")
                .hint("a partition switch costs several microseconds; consider a longer window"),
            );
        }
        if let Some(f) = frame {
            if w.end.value > f.value {
                diags.push(
                    Diagnostic::new(Code::WindowOutsideFrame, w.end.span, "the window ends after the major frame")
                        .label(format!("ends at {}", crate::show::duration(w.end.value)))
                        .related(f.span, format!("the frame is {}", crate::show::duration(f.value)))
                        .hint("windows are offsets inside the major frame: shorten the window or lengthen the frame"),
                );
            }
        }
        let Some(pi) = sys.resolve(&w.partition, diags) else { continue };
        if !sys.cores[pi].intersects(cores) {
            diags.push(
                Diagnostic::new(
                    Code::WindowWrongCore,
                    w.partition.span,
                    format!("`{}` does not run on this schedule's cores", w.partition.value),
                )
                .label("not on these cores")
                .related(s.cores.span, "the schedule's cores")
                .hint(format!("add the schedule's cores to `{}`'s `cores`", w.partition.value)),
            );
        }
        windowed.insert((si, pi));
        let e = time_per_partition.entry(pi).or_insert((0, w.partition.span));
        e.0 = e.0.saturating_add(length);
    }
    let mut order: Vec<usize> = (0..s.windows.len()).collect();
    order.sort_by_key(|&i| (s.windows[i].start.value, s.windows[i].end.value));
    let mut latest: Option<usize> = None;
    for &i in &order {
        let w = &s.windows[i];
        if let Some(l) = latest {
            let prev = &s.windows[l];
            if w.start.value < prev.end.value && w.end.value > w.start.value {
                diags.push(
                    Diagnostic::new(Code::WindowOverlap, w.span, "this window overlaps another")
                        .label(format!("starts at {}", crate::show::duration(w.start.value)))
                        .related(prev.span, format!("runs until {}", crate::show::duration(prev.end.value)))
                        .hint("windows of one schedule take turns: make them disjoint"),
                );
            }
        }
        if latest.is_none_or(|l| s.windows[l].end.value < w.end.value) {
            latest = Some(i);
        }
    }
    if let Some(f) = frame {
        let mut idle: Vec<(&usize, &(u64, Span))> = time_per_partition
            .iter()
            .filter(|(_, (t, _))| *t > 0 && t.saturating_mul(100) < f.value)
            .collect();
        idle.sort_by_key(|(pi, _)| **pi);
        for (pi, (t, span)) in idle {
            diags.push(
                Diagnostic::new(
                    Code::PartitionIdle,
                    *span,
                    format!(
                        "`{}` gets {} of a {} major frame",
                        sys.partitions[*pi].name.value,
                        crate::show::duration(*t),
                        crate::show::duration(f.value)
                    ),
                )
                .label("less than 1% of the frame")
                .hint("check the window lengths"),
            );
        }
    }
}

/// A partition on a scheduled core must get a window in that schedule.
fn check_starvation(
    sys: &System<'_>,
    schedule_of_core: &[Option<usize>],
    windowed: &HashSet<(usize, usize)>,
    diags: &mut Vec<Diagnostic>,
) {
    for (pi, p) in sys.partitions.iter().enumerate() {
        let Some(cores) = &p.cores else { continue };
        let mut reported: Vec<usize> = Vec::new();
        for core in sys.cores[pi].iter() {
            let Some(si) = schedule_of_core[core as usize] else { continue };
            if windowed.contains(&(si, pi)) || reported.contains(&si) {
                continue;
            }
            reported.push(si);
            diags.push(
                Diagnostic::new(
                    Code::PartitionStarved,
                    cores.span,
                    format!("`{}` never runs: core {core} is scheduled and gives it no window", p.name.value),
                )
                .label("never gets a window")
                .related(sys.schedules[si].span, "the schedule of this core")
                .hint(format!(
                    "add `window {} START..END ms` to the schedule, or move the partition to another core",
                    p.name.value
                )),
            );
        }
    }
}
