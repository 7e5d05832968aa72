//! The boot log of cache allocation: what the plan decided, in the words an operator
//! reads (`cache: ...` lines). The binary only prints these lines.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use hallows_abi::table::Table;

use super::plan::{CachePlan, ClassMasks, ClassOwner, Decision, WayRange};
use super::{CatInfo, MbaInfo};

/// Every boot-log line of a decision, without the `cache: ` prefix: the notices, then
/// (when classes are programmed) one summary line and one line per class.
pub fn boot_lines(
    table: &Table,
    decision: &Decision,
    cat: Option<CatInfo>,
    mba: Option<MbaInfo>,
) -> Vec<String> {
    let mut lines: Vec<String> = decision.notices.iter().map(|n| format!("{n}")).collect();
    if let (Some(plan), Some(cat)) = (&decision.plan, cat) {
        lines.push(summary(plan, cat, mba));
        for (cos, class) in plan.classes.iter().enumerate() {
            lines.push(describe_class(table, plan, cos, class));
        }
    }
    lines
}

/// What the CPU offers and how much of it the plan uses.
fn summary(plan: &CachePlan, cat: CatInfo, mba: Option<MbaInfo>) -> String {
    format!(
        "L3 CAT with {} ways and classes 0-{}{}{}; {} classes in use",
        cat.ways,
        cat.max_cos,
        if plan.cdp { ", CDP on" } else { "" },
        match mba {
            Some(m) if plan.classes.iter().any(|c| c.mba_delay.is_some()) =>
                format!(", MBA delays up to {}", m.max_delay),
            _ => String::new(),
        },
        plan.classes.len()
    )
}

/// One class: who uses it, its ways and masks, its bandwidth.
fn describe_class(table: &Table, plan: &CachePlan, cos: usize, c: &ClassMasks) -> String {
    let who = match c.owner {
        ClassOwner::Partition(i) => {
            format!("partition {}", table.partitions.get(i).map_or("?", |p| table.text(p.name)))
        }
        ClassOwner::Shared => {
            let sharers: Vec<&str> = (0..table.partitions.len())
                .filter(|&i| plan.class_of(i) == 0)
                .filter_map(|i| table.partitions.get(i).map(|p| table.text(p.name)))
                .collect();
            if sharers.is_empty() {
                String::from("hypervisor")
            } else {
                format!("hypervisor and {}", sharers.join(", "))
            }
        }
    };
    let mut line = format!("{who}: class {cos}, LLC ways {} (mask {:#x})", WayRange(c.data), c.data);
    if plan.cdp && c.code != c.data {
        line.push_str(&format!(" for data, ways {} (mask {:#x}) for code", WayRange(c.code), c.code));
    }
    if c.io_shared != 0 {
        line.push_str(&format!(", shared with I/O in {:#x}", c.io_shared));
    }
    match c.mba_delay {
        Some(0) | None => {}
        Some(delay) => line.push_str(&format!(", memory bandwidth {}% (delay {delay})", 100 - delay)),
    }
    line
}
