//! Cache ways: partitions that can run at the same time must not share LLC ways.

use super::partitions::way_block;
use super::System;
use crate::diagnostics::{Code, Diagnostic};

/// Two partitions cannot run at the same instant only when one schedule holds all the
/// cores of both; `group` is that schedule, or `None` for a partition with a dedicated
/// core (it runs whenever anything else runs).
fn group(sys: &System<'_>, pi: usize, schedule_of_core: &[Option<usize>]) -> Option<usize> {
    let mut cores = sys.cores[pi].iter();
    let first = schedule_of_core[cores.next()? as usize]?;
    cores.all(|c| schedule_of_core[c as usize] == Some(first)).then_some(first)
}

/// Per way, the first occupant and the first occupant of another group; any partition
/// then finds a conflicting earlier occupant in O(1) per way.
#[derive(Clone, Copy, Default)]
struct Occupants {
    first: Option<(usize, Option<usize>)>,
    other: Option<usize>,
}

pub fn check(sys: &System<'_>, schedule_of_core: &[Option<usize>], diags: &mut Vec<Diagnostic>) {
    let mut ways = [Occupants::default(); 256];
    // Under CDP a partition also allocates into its code ways.
    let lists = |p: &'_ crate::ast::Partition| {
        let code = if sys.platform.cdp && p.llc_ways.is_some() { p.llc_code_ways.clone() } else { None };
        [p.llc_ways.clone(), code].into_iter().flatten()
    };
    for (pi, p) in sys.partitions.iter().enumerate() {
        for list in lists(p) {
            let list = &list;
            let Some((first, count)) = way_block(&list.value) else { continue };
            let g = group(sys, pi, schedule_of_core);
            let mut conflict = None;
            let end = (first as usize + count as usize).min(256);
            for (w, slot) in ways.iter_mut().enumerate().take(end).skip(first as usize) {
                match slot.first {
                    None => slot.first = Some((pi, g)),
                    // Its own code and data ways may share.
                    Some((q, _)) if q == pi => {}
                    Some((q, qg)) => {
                        let clash = |qg: Option<usize>| g.is_none() || qg.is_none() || qg != g;
                        if conflict.is_none() {
                            if clash(qg) {
                                conflict = Some((q, w));
                            } else if let Some(o) = slot.other.filter(|&o| o != pi) {
                                conflict = Some((o, w));
                            }
                        }
                        if slot.other.is_none() && (g.is_none() || g != qg) {
                            slot.other = Some(pi);
                        }
                    }
                }
            }
            if let Some((q, way)) = conflict {
                let other = sys.partitions[q];
                let mut d = Diagnostic::new(
                    Code::WaysOverlap,
                    list.span,
                    format!(
                        "`{}` and `{}` share cache way {way} and can run at the same time",
                        p.name.value, other.name.value
                    ),
                )
                .label(format!("way {way} is also `{}`'s", other.name.value))
                .hint("give them disjoint ways, or put both on the same scheduled cores so they take turns");
                if let Some(ol) = &other.llc_ways {
                    d = d.related(ol.span, format!("`{}`'s ways", other.name.value));
                }
                diags.push(d);
            }
        }
    }
}
