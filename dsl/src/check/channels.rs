//! Channels: endpoints, sizes, Linux views, the channel window and a Linux partition's
//! bridge window.

use std::collections::HashMap;

use hallows_abi::layout::CHANNEL_WINDOW_BYTES;
use hallows_abi::limits::{self, MAX_CHANNELS_PER_PARTITION};

use super::System;
use crate::ast::*;
use crate::diagnostics::{Code, Diagnostic};
use crate::span::Span;

/// The size of a channel's shared region, when its sizes are valid.
pub fn region_bytes(c: &Channel) -> Option<u64> {
    let queuing = c.kind.as_ref()?.value == ChannelKind::Queuing;
    let msg = u32::try_from(c.message.as_ref()?.value).ok().filter(|m| *m > 0)?;
    let depth = if queuing { u32::try_from(c.depth.as_ref()?.value).ok().filter(|d| *d > 0)? } else { 1 };
    fits_window(queuing, msg, depth).then(|| hallows_abi::channel::region_bytes(queuing, msg, depth))
}

/// Whether the slots of a channel fit the channel window (bounding the sizes before
/// `region_bytes` multiplies them, which could overflow).
fn fits_window(queuing: bool, msg: u32, depth: u32) -> bool {
    hallows_abi::channel::slots_bytes(queuing, msg, depth).is_some_and(|b| b <= CHANNEL_WINDOW_BYTES)
}

fn missing(diags: &mut Vec<Diagnostic>, c: &Channel, setting: &str, example: &str) {
    if c.broken {
        return;
    }
    diags.push(
        Diagnostic::new(
            Code::MissingSetting,
            c.name.span,
            format!("channel `{}` has no `{setting}`", c.name.value),
        )
        .label(format!("needs `{setting}`"))
        .hint(format!("add e.g. `{example}`")),
    );
}

fn endpoint(
    sys: &System<'_>,
    c: &Channel,
    end: &Option<crate::span::Spanned<String>>,
    which: &str,
    diags: &mut Vec<Diagnostic>,
) -> Option<usize> {
    match end {
        None if c.broken => None,
        None => {
            diags.push(
                Diagnostic::new(
                    Code::ChannelEndpointMissing,
                    c.name.span,
                    format!("channel `{}` has no {which}", c.name.value),
                )
                .label(format!("no `{}`", if which == "writer" { "from" } else { "to" }))
                .hint("a channel connects a writer (`from NAME`) to a reader (`to NAME`)"),
            );
            None
        }
        Some(name) => sys.resolve(name, diags),
    }
}

pub fn check(sys: &System<'_>, diags: &mut Vec<Diagnostic>) {
    check_counts(sys, diags);
    check_linux_bridge(sys, diags);
    let mut names: HashMap<&str, Span> = HashMap::new();
    let mut pairs: HashMap<(usize, usize, bool), &str> = HashMap::new();
    let mut window_used = 0u64;
    for c in &sys.channels {
        if let Some(first) = names.get(c.name.value.as_str()) {
            diags.push(
                Diagnostic::new(
                    Code::DuplicateChannel,
                    c.name.span,
                    format!("channel `{}` is declared twice", c.name.value),
                )
                .label("second declaration")
                .related(*first, "first declared here")
                .hint("rename one of them"),
            );
        } else {
            names.insert(&c.name.value, c.name.span);
        }
        super::partitions::name_fits(&c.name, "channel", diags);
        let from = endpoint(sys, c, &c.from, "writer", diags);
        let to = endpoint(sys, c, &c.to, "reader", diags);
        if let (Some(f), Some(t), Some(span)) = (from, to, c.to.as_ref().map(|t| t.span)) {
            if f == t {
                diags.push(
                    Diagnostic::new(
                        Code::ChannelSelfLoop,
                        span,
                        format!(
                            "channel `{}` goes from `{}` to itself",
                            c.name.value, sys.partitions[f].name.value
                        ),
                    )
                    .label("same as the writer")
                    .hint("a channel connects two different partitions"),
                );
            }
        }
        check_sizes(c, diags);
        let linux_end = [from, to]
            .into_iter()
            .flatten()
            .any(|i| sys.partitions[i].kind.as_ref().is_some_and(|k| k.value == Kind::Linux));
        if let Some(view) = c.linux.as_ref().filter(|v| v.value == LinuxView::Tty) {
            diags.push(
                Diagnostic::new(
                    Code::ChannelLinuxTty,
                    view.span,
                    format!("channel `{}` asks for `linux tty`, which the language no longer has", c.name.value),
                )
                .label("no such view")
                .hint("write `linux shm` (or nothing): Linux sees the channel as a PCI function, and `rhlink send`/`rhlink recv` turn its messages into lines on stdin/stdout"),
            );
        }
        if let Some(view) = c.linux.as_ref().filter(|v| v.value != LinuxView::Tty) {
            if !linux_end && from.is_some() && to.is_some() {
                diags.push(
                    Diagnostic::new(
                        Code::ChannelLinuxView,
                        view.span,
                        "`linux` says how a Linux endpoint sees the channel, and neither endpoint is Linux",
                    )
                    .label("no Linux endpoint")
                    .hint("remove the `linux` line"),
                );
            }
        }
        let sizes =
            (c.message.as_ref().map(|m| m.value), c.depth.as_ref().map_or(Some(1), |d| Some(d.value)));
        if let (Some(msg @ 1..=0xffff_ffff), Some(depth @ 1..=0xffff_ffff)) = sizes {
            let queuing = c.kind.as_ref().is_some_and(|k| k.value == ChannelKind::Queuing);
            if !fits_window(queuing, msg as u32, depth as u32) {
                diags.push(
                    Diagnostic::new(
                        Code::ChannelWindowFull,
                        c.name.span,
                        "this channel alone is larger than the 256 MiB channel window",
                    )
                    .label(format!("{msg} B x {depth}"))
                    .hint("use smaller messages or a shallower queue"),
                );
            }
        }
        if let Some(bytes) = region_bytes(c) {
            window_used = window_used.saturating_add(bytes);
            if window_used > CHANNEL_WINDOW_BYTES && window_used - bytes <= CHANNEL_WINDOW_BYTES {
                diags.push(
                    Diagnostic::new(
                        Code::ChannelWindowFull,
                        c.name.span,
                        "the channels no longer fit the 256 MiB channel window",
                    )
                    .label(format!("this channel brings the total to {} KiB", window_used >> 10))
                    .hint("use fewer, smaller or shallower channels"),
                );
            }
        }
        if let (Some(f), Some(t), Some(k)) = (from, to, &c.kind) {
            let key = (f, t, k.value == ChannelKind::Queuing);
            match pairs.get(&key) {
                Some(first) if f != t => diags.push(
                    Diagnostic::new(
                        Code::ChannelRedundant,
                        c.name.span,
                        format!("channel `{}` repeats `{first}`", c.name.value),
                    )
                    .label("same writer, reader and kind")
                    .hint("one of the two channels is likely unused: merge them or remove one"),
                ),
                Some(_) => {}
                None => {
                    pairs.insert(key, &c.name.value);
                }
            }
        }
    }
}

/// A Linux partition sees each of its channels as a PCI function whose BAR2 lies in its
/// bridge window (`hallows_abi::limits::LINUX_BRIDGE_BARS_GPA`): its RAM must end below
/// the window, and the BARs (powers of two, naturally aligned, placed in channel order
/// exactly as the hypervisor places them) must fit it.
fn check_linux_bridge(sys: &System<'_>, diags: &mut Vec<Diagnostic>) {
    for (pi, p) in sys.partitions.iter().enumerate() {
        if p.kind.as_ref().is_none_or(|k| k.value != Kind::Linux) {
            continue;
        }
        let mine: Vec<&Channel> = sys
            .channels
            .iter()
            .copied()
            .filter(|c| {
                [&c.from, &c.to]
                    .into_iter()
                    .flatten()
                    .any(|end| sys.index.get(end.value.as_str()) == Some(&pi))
            })
            .collect();
        let Some(first) = mine.first() else { continue };
        if let Some(memory) = p.memory.as_ref().filter(|m| !limits::linux_ram_fits_bridge(m.value)) {
            diags.push(
                Diagnostic::new(
                    Code::LinuxBridgeUnmappable,
                    memory.span,
                    format!(
                        "`{}` has channels, so its RAM must end below its bridge window at {} MiB",
                        p.name.value,
                        limits::LINUX_BRIDGE_BARS_GPA >> 20
                    ),
                )
                .label(format!("more than {} MiB", limits::LINUX_MAX_RAM_WITH_CHANNELS >> 20))
                .related(first.name.span, "a channel of this partition")
                .hint(format!(
                    "give it at most {} MiB, or connect its services another way",
                    limits::LINUX_MAX_RAM_WITH_CHANNELS >> 20
                )),
            );
        }
        // Channels with invalid sizes are reported elsewhere; they take no room here.
        let sized: Vec<(&Channel, u64)> = mine.iter().filter_map(|c| Some((*c, region_bytes(c)?))).collect();
        if let Err(full) = limits::place_linux_bars(sized.iter().map(|(_, b)| *b), |_, _, _| {}) {
            let c = sized[full.channel].0;
            diags.push(
                Diagnostic::new(
                    Code::LinuxBridgeUnmappable,
                    c.name.span,
                    format!(
                        "the PCI BARs of `{}`'s channels no longer fit its {} MiB bridge window",
                        p.name.value,
                        limits::LINUX_BRIDGE_BARS_BYTES >> 20
                    ),
                )
                .label(format!("this channel's BAR would end at {} MiB into it", full.needed.div_ceil(1 << 20)))
                .hint("each channel's BAR is its shared region rounded up to a power of two and aligned to it: use smaller or fewer channels, or list the largest first"),
            );
        }
    }
}

/// Every channel of a partition is described in its boot info, which holds
/// [`MAX_CHANNELS_PER_PARTITION`]; more would be dropped.
fn check_counts(sys: &System<'_>, diags: &mut Vec<Diagnostic>) {
    for (pi, count) in sys.channels_per_partition().into_iter().enumerate() {
        if count > MAX_CHANNELS_PER_PARTITION {
            let p = sys.partitions[pi];
            diags.push(
                Diagnostic::new(
                    Code::TooManyChannels,
                    p.name.span,
                    format!("`{}` is an endpoint of {count} channels", p.name.value),
                )
                .label(format!("more than {MAX_CHANNELS_PER_PARTITION}"))
                .hint(format!(
                    "a partition's boot info describes {MAX_CHANNELS_PER_PARTITION} channels: merge some (a queuing channel can carry several message types)"
                )),
            );
        }
    }
}

fn check_sizes(c: &Channel, diags: &mut Vec<Diagnostic>) {
    let queuing = match &c.kind {
        None => {
            missing(diags, c, "kind", "kind queuing");
            None
        }
        Some(k) => Some(k.value == ChannelKind::Queuing),
    };
    match &c.message {
        None => missing(diags, c, "message", "message 64 B"),
        Some(m) if m.value == 0 => zero(diags, m.span, "message size"),
        Some(m) if m.value > u32::MAX as u64 => too_large(diags, m.span, "message size"),
        Some(_) => {}
    }
    match (&c.depth, queuing) {
        (None, Some(true)) => missing(diags, c, "depth", "depth 16"),
        (Some(d), _) if d.value == 0 => zero(diags, d.span, "depth"),
        (Some(d), _) if d.value > u32::MAX as u64 => too_large(diags, d.span, "depth"),
        (Some(d), Some(false)) if d.value > 1 => diags.push(
            Diagnostic::new(
                Code::SamplingDepth,
                d.span,
                "a sampling channel holds one message; the depth is ignored",
            )
            .label("ignored")
            .hint("remove `depth`, or use `kind queuing` for a FIFO"),
        ),
        _ => {}
    }
}

fn zero(diags: &mut Vec<Diagnostic>, span: Span, what: &str) {
    diags.push(
        Diagnostic::new(Code::ChannelZeroSize, span, format!("a channel {what} of zero"))
            .label("zero")
            .hint(format!("give a {what} of at least 1")),
    );
}

fn too_large(diags: &mut Vec<Diagnostic>, span: Span, what: &str) {
    diags.push(
        Diagnostic::new(Code::ValueOutOfRange, span, format!("the {what} is too large"))
            .label("does not fit in 32 bits")
            .hint("the table stores it as a 32-bit number"),
    );
}
