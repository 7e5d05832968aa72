//! Channels: endpoints, sizes, Linux views and the channel window.

use std::collections::HashMap;

use hallows_abi::layout::CHANNEL_WINDOW_BYTES;
use hallows_abi::limits::MAX_CHANNELS_PER_PARTITION;

use super::System;
use crate::ast::*;
use crate::diagnostics::{Code, Diagnostic};
use crate::span::Span;

/// The size of a channel's shared region, when its sizes are valid.
pub fn region_bytes(c: &Channel) -> Option<u64> {
    let queuing = c.kind.as_ref()?.value == ChannelKind::Queuing;
    let msg = u32::try_from(c.message.as_ref()?.value).ok().filter(|m| *m > 0)?;
    let depth = if queuing { u32::try_from(c.depth.as_ref()?.value).ok().filter(|d| *d > 0)? } else { 1 };
    fits_window(msg, depth).then(|| hallows_abi::channel::region_bytes(queuing, msg, depth))
}

/// Whether the slots of a channel fit the channel window (bounding the sizes before
/// `region_bytes` multiplies them, which could overflow).
fn fits_window(msg: u32, depth: u32) -> bool {
    (depth as u64)
        .checked_mul(hallows_abi::channel::slot_bytes(msg))
        .is_some_and(|b| b <= CHANNEL_WINDOW_BYTES)
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
        if linux_end {
            // The syntax (`linux shm`/`linux tty`) parses and is checked, but no code in
            // this hypervisor version maps a channel into a Linux partition.
            let span = c.linux.as_ref().map_or(c.name.span, |v| v.span);
            diags.push(
                Diagnostic::new(
                    Code::ChannelLinuxUnsupported,
                    span,
                    format!("channel `{}` has a Linux endpoint, which this hypervisor version does not support", c.name.value),
                )
                .label("Linux channel views are not implemented yet")
                .hint("connect real-time partitions only; a Linux partition talks to the others through its console for now"),
            );
        }
        if let Some(view) = &c.linux {
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
            if !fits_window(msg as u32, if queuing { depth as u32 } else { 1 }) {
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
