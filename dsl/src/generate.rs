//! Generates large valid tables, for the benchmark and for property tests.

use std::fmt::Write;

/// A valid table with `partitions` real-time partitions. `per_core` partitions share each
/// core (through a schedule when more than one), each getting `windows_each` 800 us
/// windows of 1 ms slots; consecutive partitions are chained by sampling channels; with
/// `ways`, the partitions of each core share one LLC way of their own.
pub fn table(partitions: usize, per_core: usize, windows_each: usize, ways: bool) -> String {
    let per_core = per_core.max(1);
    let mut s = String::new();
    s.push_str("# generated\nplatform {\n    cores auto\n    ram auto\n");
    if ways {
        s.push_str("    llc_ways auto\n    cat_min_ways 1\n");
    }
    s.push_str("}\n\nhypervisor {\n    reserve 32 MiB\n}\n\n");
    for i in 0..partitions {
        let core = i / per_core;
        let _ = write!(
            s,
            "partition p{i} {{\n    kind rt\n    image \"p{i}.elf\"\n    cores {core}\n    memory 2 MiB\n"
        );
        if ways {
            let _ = writeln!(s, "    llc_ways {core}");
        }
        s.push_str("}\n\n");
    }
    if per_core > 1 {
        let cores = partitions.div_ceil(per_core);
        for core in 0..cores {
            let members: Vec<usize> = (core * per_core..((core + 1) * per_core).min(partitions)).collect();
            let slots = (per_core * windows_each.max(1)) as u64;
            let _ = write!(s, "schedule cores {core} {{\n    major_frame {slots} ms\n");
            for k in 0..windows_each.max(1) {
                for (j, p) in members.iter().enumerate() {
                    let start = ((k * per_core + j) as u64) * 1000;
                    let _ = writeln!(s, "    window p{p} {start}..{} us", start + 800);
                }
            }
            s.push_str("}\n\n");
        }
    }
    for i in 1..partitions {
        let _ = write!(
            s,
            "channel c{i} {{\n    kind sampling\n    from p{}\n    to p{i}\n    message 64 B\n}}\n\n",
            i - 1
        );
    }
    s
}

#[cfg(test)]
mod tests {
    #[test]
    fn generated_tables_are_clean() {
        for (parts, per_core, ways) in [(1, 1, false), (7, 3, true), (40, 1, true), (100, 5, true)] {
            let src = super::table(parts, per_core, 3, ways);
            let c = crate::compile::compile_source(&src);
            assert!(c.diagnostics.is_empty(), "{parts}/{per_core}: {:?}", c.diagnostics);
            let m = c.model.unwrap();
            assert_eq!(m.partitions.len(), parts);
            let windows: usize = m.schedules.iter().map(|s| s.windows.len()).sum();
            assert_eq!(windows, if per_core > 1 { parts * 3 } else { 0 });
        }
    }
}
