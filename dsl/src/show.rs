//! `parseltongue show`: a readable summary of a compiled table.

use std::fmt::Write;

use hallows_abi::health::{Action, EventClass};
use hallows_abi::table::*;

/// A duration in the largest unit that states it exactly (`10 ms`, `1500 us`).
pub fn duration(ns: u64) -> String {
    for (unit, scale) in [("s", 1_000_000_000), ("ms", 1_000_000), ("us", 1_000)] {
        if ns != 0 && ns.is_multiple_of(scale) {
            return format!("{} {unit}", ns / scale);
        }
    }
    if ns == 0 {
        return "0".into();
    }
    format!("{ns} ns")
}

/// A size for totals: exact when it is a whole unit, otherwise MiB with two decimals.
pub fn approx_size(bytes: u64) -> String {
    if bytes >= 1 << 30 && !bytes.is_multiple_of(1 << 30) {
        format!("{:.2} GiB", bytes as f64 / (1u64 << 30) as f64)
    } else if bytes >= 1 << 20 && !bytes.is_multiple_of(1 << 20) {
        format!("{:.2} MiB", bytes as f64 / (1u64 << 20) as f64)
    } else {
        size(bytes)
    }
}

/// A size in the largest binary unit that states it exactly (`4 MiB`, `1536 KiB`).
pub fn size(bytes: u64) -> String {
    for (unit, shift) in [("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)] {
        if bytes != 0 && bytes.is_multiple_of(1 << shift) {
            return format!("{} {unit}", bytes >> shift);
        }
    }
    format!("{bytes} B")
}

/// `0-3, 6` for inclusive ranges, as given (not merged).
pub fn id_list_u64(ranges: &[(u64, u64)], f: impl Fn(u64) -> String) -> String {
    ranges
        .iter()
        .map(|&(a, b)| if a == b { f(a) } else { format!("{}-{}", f(a), f(b)) })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `0-3, 6` for a sorted list of ids.
pub fn id_list(ids: &[u32]) -> String {
    let mut parts = Vec::new();
    let mut i = 0;
    while i < ids.len() {
        let start = ids[i];
        let mut end = start;
        while i + 1 < ids.len() && ids[i + 1] == end + 1 {
            i += 1;
            end = ids[i];
        }
        parts.push(if start == end { start.to_string() } else { format!("{start}-{end}") });
        i += 1;
    }
    parts.join(", ")
}

fn auto(v: u64, f: impl Fn(u64) -> String) -> String {
    if v == 0 {
        "auto".into()
    } else {
        f(v)
    }
}

fn log_level(l: u8) -> &'static str {
    match l {
        LOG_ERROR => "error",
        LOG_WARN => "warn",
        LOG_INFO => "info",
        LOG_DEBUG => "debug",
        _ => "trace",
    }
}

/// The highest core the table mentions, plus one (at least the platform's count).
pub fn core_count(m: &TableModel) -> u32 {
    let used = m
        .partitions
        .iter()
        .flat_map(|p| p.cores.iter())
        .chain(m.schedules.iter().flat_map(|s| s.cores.iter()))
        .max();
    used.map_or(0, |c| c + 1).max(m.platform.cores.get())
}

/// The summary `show` prints.
pub fn render(m: &TableModel) -> String {
    let mut out = String::new();
    let p = &m.platform;
    let _ = writeln!(
        out,
        "platform: {} cores, RAM {}, LLC ways {} (CAT minimum {}{}), console {:#x}",
        auto(p.cores.get() as u64, |v| v.to_string()),
        auto(p.ram_bytes.get(), size),
        auto(p.llc_ways as u64, |v| v.to_string()),
        auto(p.cat_min_ways as u64, |v| v.to_string()),
        match (p.flags & PLATFORM_REQUIRE_CAT != 0, p.flags & PLATFORM_CDP != 0) {
            (false, false) => "",
            (true, false) => ", required",
            (false, true) => ", CDP",
            (true, true) => ", required, CDP",
        },
        p.console_port.get()
    );
    let _ = writeln!(
        out,
        "hypervisor: reserves {}, log level {}{}",
        size(p.hv_reserved_bytes.get()),
        log_level(p.log_level),
        if p.hv_llc_way_count == 0 {
            String::new()
        } else {
            format!(
                ", LLC ways {}-{} (class 0)",
                p.hv_llc_first_way,
                p.hv_llc_first_way as u32 + p.hv_llc_way_count as u32 - 1
            )
        }
    );
    render_cores(m, &mut out);
    render_partitions(m, &mut out);
    render_channels(m, &mut out);
    render_memory(m, &mut out);
    out
}

fn name(m: &TableModel, i: u32) -> &str {
    m.partitions.get(i as usize).map_or("?", |p| p.name.as_str())
}

fn render_cores(m: &TableModel, out: &mut String) {
    let _ = writeln!(out, "\ncores (what runs when):");
    let mut shown = vec![false; m.schedules.len()];
    let count = core_count(m);
    let mut core = 0;
    while core < count {
        if let Some(si) = m.schedules.iter().position(|s| s.cores.contains(&core)) {
            let s = &m.schedules[si];
            if shown[si] {
                let first = s.cores.first().copied().unwrap_or(0);
                let _ = writeln!(out, "  {:<13}same schedule as core {first}", format!("core {core}"));
                core += 1;
                continue;
            }
            shown[si] = true;
            let _ = writeln!(
                out,
                "  {:<13}schedule on cores {}, major frame {}:",
                format!("core {core}"),
                id_list(&s.cores),
                duration(s.major_frame_ns)
            );
            let mut at = 0;
            for w in &s.windows {
                if w.offset_ns > at {
                    let _ = writeln!(out, "{:>22} .. {:<10} (idle)", duration(at), duration(w.offset_ns));
                }
                let end = w.offset_ns + w.duration_ns;
                let _ = writeln!(
                    out,
                    "{:>22} .. {:<10} {}",
                    duration(w.offset_ns),
                    duration(end),
                    name(m, w.partition)
                );
                at = at.max(end);
            }
            if at < s.major_frame_ns {
                let _ = writeln!(out, "{:>22} .. {:<10} (idle)", duration(at), duration(s.major_frame_ns));
            }
        } else {
            let owners: Vec<&str> =
                m.partitions.iter().filter(|p| p.cores.contains(&core)).map(|p| p.name.as_str()).collect();
            let what = if owners.is_empty() {
                "(unused)".to_string()
            } else {
                format!("{} (dedicated)", owners.join(", "))
            };
            // Consecutive cores with the same dedicated owner print as one range.
            let same = |c: u32| {
                !m.schedules.iter().any(|s| s.cores.contains(&c))
                    && m.partitions
                        .iter()
                        .filter(|p| p.cores.contains(&c))
                        .map(|p| p.name.as_str())
                        .eq(owners.iter().copied())
            };
            let mut last = core;
            while last + 1 < count && same(last + 1) {
                last += 1;
            }
            let label = if last == core { format!("core {core}") } else { format!("cores {core}-{last}") };
            let _ = writeln!(out, "  {label:<13}{what}");
            core = last;
        }
        core += 1;
    }
}

fn render_partitions(m: &TableModel, out: &mut String) {
    let _ = writeln!(out, "\npartitions:");
    let width = m.partitions.iter().map(|p| p.name.len()).max().unwrap_or(4).max(4);
    let cw = m.partitions.iter().map(|p| id_list(&p.cores).len()).max().unwrap_or(5).max(5);
    let _ = writeln!(
        out,
        "  {:<width$}  kind   {:<cw$}  memory      pinned at      llc ways  image",
        "name", "cores"
    );
    for p in &m.partitions {
        let kind = if p.kind == KIND_LINUX { "linux" } else { "rt" };
        let pinned = p.pinned_base.map_or("-".to_string(), |b| format!("{b:#x}"));
        let ways = p.llc_ways.map_or("-".to_string(), |(f, c)| {
            if c == 1 {
                f.to_string()
            } else {
                format!("{f}-{}", f + c - 1)
            }
        });
        let _ = writeln!(
            out,
            "  {:<width$}  {kind:<5}  {:<cw$}  {:<10}  {:<13}  {ways:<8}  {}",
            p.name,
            id_list(&p.cores),
            size(p.ram_bytes),
            pinned,
            p.image
        );
        let mut extras = Vec::new();
        if !p.initramfs.is_empty() {
            extras.push(format!("initramfs {}", p.initramfs));
        }
        if !p.cmdline.is_empty() {
            extras.push(format!("cmdline \"{}\"", p.cmdline));
        }
        if p.persistent_bytes != 0 {
            extras.push(format!(
                "persistent {} at {:#x}, kept across restarts",
                size(p.persistent_bytes),
                hallows_abi::layout::PERSISTENT_WINDOW_GPA
            ));
        }
        if !p.args.is_empty() {
            extras.push(format!("args \"{}\"", p.args));
        }
        let privileges: Vec<&str> = crate::parser::PRIVILEGES
            .iter()
            .filter(|(_, bit)| p.privileges & bit != 0)
            .map(|(word, _)| *word)
            .collect();
        if !privileges.is_empty() {
            extras.push(format!("privileges {}", privileges.join(", ")));
        }
        let health: Vec<String> = EventClass::ALL
            .iter()
            .filter(|c| p.hm_actions[**c as usize] != c.default_action() as u8)
            .map(|c| {
                format!(
                    "{} -> {}",
                    c.name(),
                    Action::from_u8(p.hm_actions[*c as usize]).map_or("?", Action::name)
                )
            })
            .collect();
        if !health.is_empty() {
            extras.push(format!("health {}", health.join(", ")));
        }
        if let Some((f, c)) = p.llc_code_ways {
            extras.push(format!("llc code ways {f}-{}", f as u32 + c as u32 - 1));
        }
        if p.mba_percent != 0 {
            extras.push(format!("memory bandwidth {}%", p.mba_percent));
        }
        if p.restart_limit != 0 || p.restart_window_ms != 0 {
            let budget = RestartBudget { limit: p.restart_limit, window_ms: p.restart_window_ms };
            let window_ns = u64::from(budget.effective_window_ms()) * 1_000_000;
            extras.push(format!("restarts {} per {}", budget.effective_limit(), duration(window_ns)));
        }
        for extra in extras {
            let _ = writeln!(out, "  {:<width$}    {extra}", "");
        }
    }
    for (i, p) in m.partitions.iter().enumerate() {
        let i = i as u32;
        let io: Vec<String> = m
            .io_ranges
            .iter()
            .filter(|r| r.partition == i)
            .map(|r| format!("io {:#x}-{:#x}", r.first, r.first + r.count - 1))
            .collect();
        let mmio: Vec<String> = m
            .mmio_ranges
            .iter()
            .filter(|r| r.partition == i)
            .map(|r| format!("mmio {:#x} size {}", r.base, size(r.size)))
            .collect();
        let pci: Vec<String> = m
            .pci_functions
            .iter()
            .filter(|f| f.partition == i)
            .map(|f| format!("pci {:04x}:{:02x}:{:02x}.{:x}", f.segment, f.bus, f.device, f.function))
            .collect();
        let all: Vec<String> = io.into_iter().chain(mmio).chain(pci).collect();
        if !all.is_empty() {
            let _ = writeln!(out, "  devices of {}: {}", p.name, all.join("; "));
        }
    }
}

/// The PCI device number, BAR2 address and BAR2 size of channel `ci` in the Linux
/// partition at one of its ends, placed as the hypervisor places them
/// (`hallows_core::bridge::linux_channels`: table order, `limits::place_linux_bars`).
fn linux_function(m: &TableModel, ci: usize) -> Option<(u8, u64, u64)> {
    let c = m.channels.get(ci)?;
    let linux = [c.source, c.destination]
        .into_iter()
        .find(|&p| m.partitions.get(p as usize).is_some_and(|p| p.kind == hallows_abi::table::KIND_LINUX))?;
    let mine: Vec<usize> = (0..m.channels.len())
        .filter(|&i| m.channels[i].source == linux || m.channels[i].destination == linux)
        .collect();
    let n = mine.iter().position(|&i| i == ci)?;
    let mut placed = None;
    hallows_abi::limits::place_linux_bars(mine.iter().map(|&i| m.channels[i].bytes), |i, offset, bytes| {
        if i == n {
            placed = Some((offset, bytes));
        }
    })
    .ok()?;
    let (offset, bytes) = placed?;
    let device = hallows_abi::limits::LINUX_BRIDGE_FIRST_DEVICE.checked_add(u8::try_from(n).ok()?)?;
    Some((device, hallows_abi::limits::LINUX_BRIDGE_BARS_GPA + offset, bytes))
}

fn render_channels(m: &TableModel, out: &mut String) {
    let _ = writeln!(out, "\nchannels:");
    if m.channels.is_empty() {
        let _ = writeln!(out, "  (none)");
    }
    for (ci, c) in m.channels.iter().enumerate() {
        let kind = if c.kind == CHANNEL_QUEUING { "queuing" } else { "sampling" };
        let view = match c.linux_view {
            LINUX_VIEW_SHM => linux_function(m, ci).map_or_else(
                || ", Linux sees it as a PCI function (which does not fit its bridge window)".to_string(),
                |(device, bar2, bytes)| {
                    format!(", Linux sees PCI 00:{device:02x}.0 with BAR2 at {bar2:#x} ({})", size(bytes))
                },
            ),
            LINUX_VIEW_TTY => ", Linux tty (removed from the language)".to_string(),
            _ => String::new(),
        };
        let _ = writeln!(
            out,
            "  {}: {kind} {} -> {}, {} x {}, {} at window +{:#x}{view}",
            c.name,
            name(m, c.source),
            name(m, c.destination),
            size(c.msg_size as u64),
            c.depth,
            size(c.bytes),
            c.window_offset
        );
    }
}

fn render_memory(m: &TableModel, out: &mut String) {
    let parts: u64 = m.partitions.iter().map(|p| p.ram_bytes).sum();
    let chans: u64 = m.channels.iter().map(|c| c.bytes).sum();
    let kept: u64 = m.partitions.iter().map(|p| p.persistent_bytes).sum();
    let hv = m.platform.hv_reserved_bytes.get();
    let total = parts + chans + kept + hv;
    let kept_text = if kept == 0 { String::new() } else { format!(", persistent {}", approx_size(kept)) };
    let _ = write!(
        out,
        "\nmemory: hypervisor {}, partitions {}{kept_text}, channels {}: {} in all",
        approx_size(hv),
        approx_size(parts),
        approx_size(chans),
        approx_size(total)
    );
    let ram = m.platform.ram_bytes.get();
    if ram == 0 {
        let _ = writeln!(out, " (RAM auto)");
    } else {
        let _ = writeln!(out, " of {} ({} free)", size(ram), approx_size(ram.saturating_sub(total)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_are_exact() {
        assert_eq!(duration(10_000_000), "10 ms");
        assert_eq!(duration(1_500_000), "1500 us");
        assert_eq!(duration(7), "7 ns");
        assert_eq!(duration(0), "0");
        assert_eq!(approx_size((300 << 20) + (8 << 10)), "300.01 MiB");
        assert_eq!(size(4 << 20), "4 MiB");
        assert_eq!(size(1536 << 10), "1536 KiB");
        assert_eq!(size(3), "3 B");
    }

    #[test]
    fn every_privilege_is_shown_by_its_word() {
        let src =
            "partition a { kind rt; image \"a.elf\"; cores 0; memory 4 MiB; privileges manage, query }\n";
        let model = crate::compile::compile_source(src).model.expect("compiles");
        assert_eq!(model.partitions[0].privileges, PRIV_MANAGE | PRIV_QUERY);
        let text = render(&model);
        // In the list's order, whatever the source's.
        assert!(text.contains("privileges query, manage"), "{text}");
    }

    #[test]
    fn id_lists_compress_runs() {
        assert_eq!(id_list(&[0, 1, 2, 5, 7, 8]), "0-2, 5, 7-8");
        assert_eq!(id_list(&[]), "");
    }
}
