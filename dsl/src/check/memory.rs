//! Memory: pinned ranges must not overlap, and everything must fit in the platform's RAM.

use super::System;
use crate::diagnostics::{Code, Diagnostic};

pub fn check(sys: &System<'_>, diags: &mut Vec<Diagnostic>) {
    check_pinned(sys, diags);
    check_pinned_against_mmio(sys, diags);
    let Some(available) = sys.platform.ram else { return };
    let partitions: u64 =
        sys.partitions.iter().filter_map(|p| p.memory.as_ref()).map(|m| m.value).fold(0, u64::saturating_add);
    let channels: u64 =
        sys.channels.iter().filter_map(|c| super::channels::region_bytes(c)).fold(0, u64::saturating_add);
    let needed = partitions.saturating_add(channels).saturating_add(sys.platform.reserve);
    if needed > available {
        let span = sys.platform.ram_span.unwrap_or(super::FILE_START);
        diags.push(
            Diagnostic::new(Code::RamExhausted, span, format!("the table needs {} MiB of RAM, the platform has {} MiB", needed >> 20, available >> 20))
                .label(format!("{} MiB short", (needed - available).div_ceil(1 << 20)))
                .hint(format!(
                    "partitions need {} MiB, channels {} KiB and the hypervisor reserves {} MiB: shrink them or use `ram auto`",
                    partitions >> 20,
                    channels >> 10,
                    sys.platform.reserve >> 20
                )),
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
