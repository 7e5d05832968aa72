//! Devices: I/O ports, MMIO ranges and PCI functions belong to at most one partition.

use std::collections::HashMap;

use hallows_abi::layout::PAGE_SIZE;
use hallows_abi::limits;

use super::System;
use crate::ast::Kind;
use crate::diagnostics::{Code, Diagnostic};
use crate::span::Span;

/// One range with its owner, for the sorted sweep.
struct Owned {
    first: u64,
    /// Exclusive end.
    end: u64,
    partition: usize,
    span: Span,
}

pub fn check(sys: &System<'_>, diags: &mut Vec<Diagnostic>) {
    let mut io = Vec::new();
    let mut mmio = Vec::new();
    let mut pci: HashMap<crate::ast::PciAddress, (usize, Span)> = HashMap::new();
    let console = sys.platform.console;
    let channels = sys.channels_per_partition();
    let mut pci_refused = false;
    for (pi, p) in sys.partitions.iter().enumerate() {
        for r in &p.io {
            let (first, last) = r.value;
            if last > 0xffff {
                diags.push(
                    Diagnostic::new(Code::IoBad, r.span, "I/O ports go from 0x0 to 0xffff")
                        .label("beyond port 0xffff")
                        .hint("x86 has 65536 I/O ports; MMIO ranges are given with `mmio`"),
                );
                continue;
            }
            let count = (last - first + 1) as u32;
            match limits::reserved_port_conflict(console, first as u32, count) {
                Some(owned) if owned == limits::console_ports(console) => diags.push(
                    Diagnostic::new(
                        Code::IoConsole,
                        r.span,
                        format!(
                            "ports {:#x}-{:#x} are the hypervisor's console UART",
                            owned.first,
                            owned.first + owned.count - 1
                        ),
                    )
                    .label("holds a console UART register")
                    .hint("the hypervisor owns all 8 registers of its console UART (`console 0` keeps COM1); pass another UART, or move the console with `console` in the platform block"),
                ),
                Some(owned) => diags.push(
                    Diagnostic::new(
                        Code::IoHypervisor,
                        r.span,
                        format!(
                            "ports {:#x}-{:#x} are {}, which the hypervisor drives",
                            owned.first,
                            owned.first + owned.count - 1,
                            owned.what
                        ),
                    )
                    .label("holds a port the hypervisor owns")
                    .hint("a partition owning these ports could reconfigure or stop the whole machine; leave them out of `io`"),
                ),
                None => {}
            }
            io.push(Owned { first, end: last + 1, partition: pi, span: r.span });
        }
        for m in &p.mmio {
            let (base, size) = (m.base.value, m.size.value);
            if size == 0
                || !base.is_multiple_of(PAGE_SIZE)
                || !size.is_multiple_of(PAGE_SIZE)
                || base.checked_add(size).is_none()
            {
                diags.push(
                    Diagnostic::new(Code::MmioBad, m.span, "an MMIO range must be whole 4 KiB pages")
                        .label(if size == 0 { "empty" } else { "not page aligned" })
                        .hint("give a page-aligned base and a size that is a non-zero multiple of 4 KiB"),
                );
                continue;
            }
            if let Some(owned) = limits::reserved_mmio_conflict(base, size) {
                diags.push(
                    Diagnostic::new(
                        Code::MmioHypervisor,
                        m.span,
                        format!(
                            "{:#x}-{:#x} is {}, which the hypervisor keeps",
                            owned.base,
                            owned.base + owned.size - 1,
                            owned.what
                        ),
                    )
                    .label("holds the hypervisor's interrupt hardware")
                    .hint("whoever owns these registers can send interrupts (INIT, too) to every core: leave them out of `mmio`"),
                );
            }
            let ram = p.memory.as_ref().map_or(0, |m| m.value);
            let linux = p.kind.as_ref().is_some_and(|k| k.value == Kind::Linux);
            let persistent_bytes = p.persistent.as_ref().filter(|_| !linux).map_or(0, |s| s.value);
            let map =
                limits::GuestMap { ram_bytes: ram, has_channels: channels[pi] > 0, linux, persistent_bytes };
            if let Some(conflict) = limits::mmio_conflict(base, size, map) {
                let (message, hint) = match conflict {
                    limits::MmioConflict::InsideRam => (
                        format!("this MMIO range lies inside `{}`'s own RAM (guest-physical 0-{ram:#x})", p.name.value),
                        "MMIO is mapped at its host-physical address: device registers must lie above the partition's RAM",
                    ),
                    limits::MmioConflict::InsideChannelWindow if linux => (
                        format!(
                            "this MMIO range overlaps the bridge window (guest-physical {:#x}-{:#x}) where `{}` sees its channels",
                            limits::LINUX_BRIDGE_BARS_GPA,
                            limits::LINUX_BRIDGE_WINDOW_END - 1,
                            p.name.value
                        ),
                        "a Linux partition with channels sees their PCI BARs there: pass registers outside that window",
                    ),
                    limits::MmioConflict::InsideChannelWindow => (
                        "this MMIO range overlaps the channel window (guest-physical 0xc0000000-0xcfffffff)".to_string(),
                        "a partition with channels sees them there: pass registers outside that window",
                    ),
                    limits::MmioConflict::InsidePersistentRegion => (
                        format!(
                            "this MMIO range overlaps `{}`'s persistent region (guest-physical {:#x}-{:#x})",
                            p.name.value,
                            hallows_abi::layout::PERSISTENT_WINDOW_GPA,
                            hallows_abi::layout::PERSISTENT_WINDOW_GPA + persistent_bytes - 1
                        ),
                        "the partition's persistent memory is mapped there: pass registers outside it",
                    ),
                    limits::MmioConflict::BeyondGuestPhysical => (
                        "this MMIO range reaches past guest-physical 2^48".to_string(),
                        "EPT maps guest-physical addresses below 2^48 only",
                    ),
                };
                diags.push(
                    Diagnostic::new(Code::MmioUnmappable, m.span, message)
                        .label("cannot be mapped into the partition")
                        .hint(hint),
                );
            }
            mmio.push(Owned { first: base, end: base + size, partition: pi, span: m.span });
        }
        for f in &p.pci {
            let a = f.value;
            if a.device >= 32 || a.function >= 8 {
                pci_refused = true;
                diags.push(
                    Diagnostic::new(Code::PciBad, f.span, format!("`{a}` is not a PCI function"))
                        .label("device must be below 0x20, function below 8")
                        .hint("copy the address from `lspci -D`"),
                );
                continue;
            }
            match pci.get(&a) {
                Some((q, span)) => {
                    pci_refused = true;
                    diags.push(
                        Diagnostic::new(
                            Code::PciDuplicate,
                            f.span,
                            format!("PCI function {a} is given twice"),
                        )
                        .label("given again")
                        .related(*span, format!("already `{}`'s", sys.partitions[*q].name.value))
                        .hint("a device is passed through to exactly one partition"),
                    )
                }
                None => {
                    pci.insert(a, (pi, f.span));
                }
            }
        }
    }
    // PCI functions parse and are checked above, but nothing in this hypervisor version
    // passes one through; said once the addresses themselves are right.
    if !pci_refused {
        for (_, span) in pci.values() {
            diags.push(
                Diagnostic::new(
                    Code::PciUnsupported,
                    *span,
                    "PCI function pass-through is not supported by this hypervisor version",
                )
                .label("would be ignored")
                .hint("remove the `pci` line; a device's registers can be passed with `mmio` (its BARs) and `io`"),
            );
        }
    }
    sweep(sys, io, Code::IoOverlap, "I/O ports", diags);
    sweep(sys, mmio, Code::MmioOverlap, "MMIO", diags);
}

/// Sorted sweep: each range is compared with the earlier range that reaches furthest.
fn sweep(sys: &System<'_>, mut ranges: Vec<Owned>, code: Code, what: &str, diags: &mut Vec<Diagnostic>) {
    ranges.sort_by_key(|r| (r.first, r.end, r.span.start));
    let mut reach: Option<&Owned> = None;
    for r in &ranges {
        if let Some(prev) = reach {
            if r.first < prev.end {
                let (p, q) =
                    (&sys.partitions[r.partition].name.value, &sys.partitions[prev.partition].name.value);
                let message = if p == q {
                    format!("{what} range given twice to `{p}`")
                } else {
                    format!("{what} range given to both `{q}` and `{p}`")
                };
                diags.push(
                    Diagnostic::new(code, r.span, message)
                        .label(format!("overlaps {:#x}..{:#x}", prev.first, prev.end))
                        .related(prev.span, format!("`{q}`'s range"))
                        .hint("a device's registers are passed through to exactly one partition, once"),
                );
            }
        }
        if reach.is_none_or(|p| r.end > p.end) {
            reach = Some(r);
        }
    }
}
