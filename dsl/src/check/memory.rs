//! Memory: pinned ranges must not overlap, and everything must fit in the platform's RAM.

use super::System;
use crate::diagnostics::{Code, Diagnostic};

pub fn check(sys: &System<'_>, diags: &mut Vec<Diagnostic>) {
    check_pinned(sys, diags);
    check_pinned_against_mmio(sys, diags);
    let Some(available) = sys.platform.ram else { return };
    let partitions: u64 =
        sys.partitions.iter().filter_map(|p| p.memory.as_ref()).map(|m| m.value).fold(0, u64::saturating_add);
    // The compiler packs the regions one after the other: their sum is the window's end.
    let channels: u64 =
        sys.channels.iter().filter_map(|c| super::channels::region_bytes(c)).fold(0, u64::saturating_add);
    let persistent: u64 = persistent_regions(sys).fold(0, u64::saturating_add);
    // Exactly what placement takes: each block rounded to 2 MiB (a persistent region is a
    // block of its own), the channel window as one.
    let needed = hallows_abi::limits::ram_needed(
        sys.platform.reserve,
        sys.partitions.iter().filter_map(|p| p.memory.as_ref()).map(|m| m.value),
        persistent_regions(sys),
        channels,
    );
    if needed > available {
        let span = sys.platform.ram_span.unwrap_or(super::FILE_START);
        diags.push(
            Diagnostic::new(Code::RamExhausted, span, format!("the table needs {} MiB of RAM, the platform has {} MiB", needed >> 20, available >> 20))
                .label(format!("{} MiB short", (needed - available).div_ceil(1 << 20)))
                .hint(format!(
                    "partitions need {} MiB{}, channels {} KiB (placed as {} MiB: the channel window is one 2 MiB-rounded block) and the hypervisor reserves {} MiB: shrink them or use `ram auto`",
                    partitions >> 20,
                    if persistent > 0 {
                        format!(
                            " and their persistent regions {} KiB (each placed as a 2 MiB-rounded block)",
                            persistent >> 10
                        )
                    } else {
                        String::new()
                    },
                    channels >> 10,
                    hallows_abi::limits::round_to_large_page(channels).unwrap_or(u64::MAX) >> 20,
                    sys.platform.reserve >> 20
                )),
        );
    } else {
        check_fragmentation(sys, available, channels, diags);
    }
}

fn is_rt(p: &crate::ast::Partition) -> bool {
    p.kind.as_ref().is_none_or(|k| k.value == crate::ast::Kind::Rt)
}

/// The persistent regions the compiler writes (RT partitions only; a Linux partition's is
/// refused by the partition rules and never compiled).
fn persistent_regions<'s>(sys: &'s System<'_>) -> impl Iterator<Item = u64> + 's {
    sys.partitions.iter().filter(|p| is_rt(p)).filter_map(|p| p.persistent.as_ref()).map(|s| s.value)
}

/// With pinned partitions, enough RAM in total is not enough: the pins split it, and each
/// other block must fit in one piece. The hypervisor's own placement
/// (`hallows_core::placement`) runs on the platform as this file describes it, RAM from 0
/// to `ram` plus every pinned range, so a table that passes does not fail placement there.
fn check_fragmentation(sys: &System<'_>, available: u64, channels: u64, diags: &mut Vec<Diagnostic>) {
    use hallows_core::placement::{place, PlacementError, Region, Request};
    let pinned = |p: &&crate::ast::Partition| p.pinned.is_some() && p.memory.is_some();
    if !sys.partitions.iter().any(pinned) {
        return; // one block of `ram` holds what fits in total
    }
    let mut free = vec![Region { base: 0, bytes: available }];
    let mut requests =
        vec![Request { name: "the hypervisor reservation", bytes: sys.platform.reserve, pinned: None }];
    for p in &sys.partitions {
        let Some(m) = &p.memory else { continue };
        let base = p.pinned.as_ref().map(|b| b.value);
        if let Some(base) = base {
            free.push(Region { base, bytes: m.value });
        }
        requests.push(Request { name: &p.name.value, bytes: m.value, pinned: base });
    }
    if channels > 0 {
        requests.push(Request { name: "the channel window", bytes: channels, pinned: None });
    }
    // In `hallows_core::placement::place_table`'s order: persistent regions last.
    let kept: Vec<(String, u64)> = sys
        .partitions
        .iter()
        .filter(|p| is_rt(p))
        .filter_map(|p| {
            p.persistent.as_ref().map(|s| (format!("{}'s persistent region", p.name.value), s.value))
        })
        .collect();
    for (name, bytes) in &kept {
        requests.push(Request { name, bytes: *bytes, pinned: None });
    }
    let mut bases = vec![0; requests.len()];
    if let Err(PlacementError::DoesNotFit { name, bytes, largest_free }) = place(&free, &requests, &mut bases)
    {
        let span = sys.platform.ram_span.unwrap_or(super::FILE_START);
        diags.push(
            Diagnostic::new(
                Code::RamExhausted,
                span,
                format!("{name} ({} MiB) does not fit in one piece beside the pinned partitions", bytes >> 20),
            )
            .label(format!("the largest free block left is {} MiB", largest_free >> 20))
            .hint("pinned memory splits the platform's RAM (taken as 0 to `ram`): move a pin, shrink the partition, or use `ram auto`"),
        );
    }
}

/// Pinned RAM must not cover device registers: one sorted sweep over both kinds of
/// range, comparing each range with the furthest-reaching range of the other kind.
fn check_pinned_against_mmio(sys: &System<'_>, diags: &mut Vec<Diagnostic>) {
    // (start, end, is_mmio, partition, span)
    let mut ranges: Vec<(u64, u64, bool, usize, crate::span::Span)> = Vec::new();
    for (i, p) in sys.partitions.iter().enumerate() {
        if let (Some(base), Some(size)) = (&p.pinned, &p.memory) {
            ranges.push((base.value, base.value.saturating_add(size.value), false, i, base.span));
        }
        for m in &p.mmio {
            ranges.push((m.base.value, m.base.value.saturating_add(m.size.value), true, i, m.span));
        }
    }
    ranges.sort_unstable_by_key(|r| (r.0, r.1, r.2));
    let mut reach: [Option<(u64, usize, crate::span::Span)>; 2] = [None, None];
    for (start, end, is_mmio, i, span) in ranges {
        if start == end {
            continue;
        }
        if let Some((far, j, other_span)) = reach[usize::from(!is_mmio)] {
            if start < far {
                let (ram_owner, mmio_owner) = if is_mmio { (j, i) } else { (i, j) };
                let (ram, mmio) =
                    (&sys.partitions[ram_owner].name.value, &sys.partitions[mmio_owner].name.value);
                diags.push(
                    Diagnostic::new(
                        Code::PinnedOverlapsMmio,
                        span,
                        format!("`{ram}`'s pinned memory overlaps an MMIO range of `{mmio}`"),
                    )
                    .label(if is_mmio {
                        "device registers inside pinned RAM"
                    } else {
                        "RAM over device registers"
                    })
                    .related(other_span, if is_mmio { "pinned RAM" } else { "MMIO range" })
                    .hint("RAM and device registers live at different host-physical addresses: check both"),
                );
            }
        }
        let slot = &mut reach[usize::from(is_mmio)];
        if slot.is_none_or(|(far, _, _)| end > far) {
            *slot = Some((end, i, span));
        }
    }
}

/// Sorted sweep over pinned ranges: each overlaps the earlier range reaching furthest.
fn check_pinned(sys: &System<'_>, diags: &mut Vec<Diagnostic>) {
    let mut ranges: Vec<(u64, u64, usize)> = sys
        .partitions
        .iter()
        .enumerate()
        .filter_map(|(i, p)| {
            let base = p.pinned.as_ref()?.value;
            let size = p.memory.as_ref()?.value;
            Some((base, base.saturating_add(size), i))
        })
        .collect();
    ranges.sort_unstable();
    let mut reach: Option<(u64, usize)> = None;
    for (base, end, i) in ranges {
        if let Some((far, j)) = reach {
            if base < far && base < end {
                let (p, q) = (sys.partitions[i], sys.partitions[j]);
                if let (Some(a), Some(b)) = (&p.pinned, &q.pinned) {
                    diags.push(
                        Diagnostic::new(Code::PinnedOverlap, a.span, format!("`{}`'s pinned memory overlaps `{}`'s", p.name.value, q.name.value))
                            .label(format!("starts at {base:#x}"))
                            .related(b.span, format!("`{}` runs to {far:#x}", q.name.value))
                            .hint("move one base past the other's end, or drop `at` and let the hypervisor place it"),
                    );
                }
            }
        }
        if reach.is_none_or(|(far, _)| end > far) {
            reach = Some((end, i));
        }
    }
}
