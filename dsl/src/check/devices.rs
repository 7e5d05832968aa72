//! Devices: I/O ports, MMIO ranges and PCI functions belong to at most one partition.

use std::collections::HashMap;

use hallows_abi::layout::PAGE_SIZE;

use super::System;
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
    let console = sys.platform.console as u64;
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
            if (first..=last).contains(&console) {
                diags.push(
                    Diagnostic::new(Code::IoConsole, r.span, format!("port {console:#x} is the hypervisor's console"))
                        .label("holds the console port")
                        .hint("the hypervisor owns the console UART and multiplexes every partition's output onto it"),
                );
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
            mmio.push(Owned { first: base, end: base + size, partition: pi, span: m.span });
        }
        for f in &p.pci {
            let a = f.value;
            if a.device >= 32 || a.function >= 8 {
                diags.push(
                    Diagnostic::new(Code::PciBad, f.span, format!("`{a}` is not a PCI function"))
                        .label("device must be below 0x20, function below 8")
                        .hint("copy the address from `lspci -D`"),
                );
                continue;
            }
            match pci.get(&a) {
                Some((q, span)) => diags.push(
                    Diagnostic::new(Code::PciDuplicate, f.span, format!("PCI function {a} is given twice"))
                        .label("given again")
                        .related(*span, format!("already `{}`'s", sys.partitions[*q].name.value))
                        .hint("a device is passed through to exactly one partition"),
                ),
                None => {
                    pci.insert(a, (pi, f.span));
                }
            }
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
