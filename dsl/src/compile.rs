//! The compiler: a checked syntax tree to the hypervisor's [`TableModel`] and bytes.

use hallows_abi::health::EventClass;
use hallows_abi::layout::PAGE_SIZE;
use hallows_abi::table::*;
use zerocopy::little_endian::{U16, U32, U64};

use crate::ast::{ChannelKind, File, Kind, LinuxView};
use crate::check::{check, expand, System};
use crate::diagnostics::Diagnostic;
use crate::parser::parse;

/// Builds the table model. The tree must have passed [`check`] without errors; on a tree
/// that did not, the result is well-formed but meaningless (it never panics).
pub fn to_model(file: &File) -> TableModel {
    let mut ignored = Vec::new();
    let sys = System::new(file, &mut ignored);
    let f = &sys.platform;
    let platform = Platform {
        cores: U32::new(f.cores.unwrap_or(0)),
        console_port: U16::new(f.console),
        llc_ways: f.llc_ways.unwrap_or(0),
        cat_min_ways: f.cat_min_ways.unwrap_or(0),
        ram_bytes: U64::new(f.ram.unwrap_or(0)),
        hv_reserved_bytes: U64::new(f.reserve),
        log_level: f.log_level,
        flags: if f.require_cat { PLATFORM_REQUIRE_CAT } else { 0 },
        _reserved: [0; 6],
    };
    let text =
        |s: &Option<crate::span::Spanned<String>>| s.as_ref().map_or(String::new(), |s| s.value.clone());
    let partitions = sys
        .partitions
        .iter()
        .map(|p| {
            let kind = p.kind.as_ref().map_or(Kind::Rt, |k| k.value);
            let mut hm_actions = EventClass::ALL.map(|c| c.default_action() as u8);
            for rule in &p.health {
                hm_actions[rule.event.value as usize] = rule.action.value as u8;
            }
            PartitionModel {
                name: p.name.value.clone(),
                kind: if kind == Kind::Rt { KIND_RT } else { KIND_LINUX },
                privileges: p.privileges.iter().fold(0, |acc, v| acc | v.value),
                hm_actions,
                cores: p.cores.as_ref().map_or(Vec::new(), |c| expand(&c.value, MAX_CORES as u64)),
                ram_bytes: p.memory.as_ref().map_or(0, |m| m.value),
                pinned_base: p.pinned.as_ref().map(|b| b.value),
                llc_ways: p.llc_ways.as_ref().and_then(|w| crate::check::way_block(&w.value)),
                image: if kind == Kind::Rt { text(&p.image) } else { text(&p.kernel) },
                initramfs: text(&p.initramfs),
                cmdline: text(&p.cmdline),
            }
        })
        .collect();
    let index = |name: &str| sys.index.get(name).map_or(u32::MAX, |i| *i as u32);
    let schedules = sys
        .schedules
        .iter()
        .map(|s| {
            let mut windows: Vec<WindowModel> = s
                .windows
                .iter()
                .map(|w| WindowModel {
                    partition: index(&w.partition.value),
                    offset_ns: w.start.value,
                    duration_ns: w.end.value - w.start.value,
                })
                .collect();
            windows.sort_by_key(|w| w.offset_ns);
            ScheduleModel {
                cores: expand(&s.cores.value, MAX_CORES as u64),
                major_frame_ns: s.major_frame.as_ref().map_or(0, |f| f.value),
                windows,
            }
        })
        .collect();
    let mut offset = 0u64;
    let channels = sys
        .channels
        .iter()
        .map(|c| {
            let queuing = c.kind.as_ref().is_some_and(|k| k.value == ChannelKind::Queuing);
            let bytes = crate::check::channel_region_bytes(c).unwrap_or(0);
            let window_offset = offset;
            offset = offset.saturating_add(bytes.div_ceil(PAGE_SIZE) * PAGE_SIZE);
            let (src, dst) =
                (c.from.as_ref().map(|n| index(&n.value)), c.to.as_ref().map(|n| index(&n.value)));
            let is_linux = |i: Option<u32>| {
                i.and_then(|i| sys.partitions.get(i as usize))
                    .is_some_and(|p| p.kind.as_ref().is_some_and(|k| k.value == Kind::Linux))
            };
            let linux_view = match (c.linux.as_ref().map(|v| v.value), is_linux(src) || is_linux(dst)) {
                (_, false) => LINUX_VIEW_NONE,
                (Some(LinuxView::Tty), true) => LINUX_VIEW_TTY,
                (_, true) => LINUX_VIEW_SHM,
            };
            ChannelModel {
                name: c.name.value.clone(),
                kind: if queuing { CHANNEL_QUEUING } else { CHANNEL_SAMPLING },
                linux_view,
                source: src.unwrap_or(u32::MAX),
                destination: dst.unwrap_or(u32::MAX),
                msg_size: c.message.as_ref().map_or(0, |m| m.value as u32),
                depth: if queuing { c.depth.as_ref().map_or(0, |d| d.value as u32) } else { 1 },
                window_offset,
                bytes,
            }
        })
        .collect();
    let mut io_ranges = Vec::new();
    let mut mmio_ranges = Vec::new();
    let mut pci_functions = Vec::new();
    for (pi, p) in sys.partitions.iter().enumerate() {
        let partition = pi as u32;
        io_ranges.extend(p.io.iter().map(|r| IoRangeModel {
            partition,
            first: u32::try_from(r.value.0).unwrap_or(u32::MAX),
            count: u32::try_from(r.value.1.saturating_sub(r.value.0).saturating_add(1)).unwrap_or(u32::MAX),
        }));
        mmio_ranges.extend(p.mmio.iter().map(|m| MmioRangeModel {
            partition,
            base: m.base.value,
            size: m.size.value,
        }));
        pci_functions.extend(p.pci.iter().map(|f| PciFunctionModel {
            partition,
            segment: f.value.segment,
            bus: f.value.bus,
            device: f.value.device,
            function: f.value.function,
        }));
    }
    TableModel { platform, partitions, schedules, channels, io_ranges, mmio_ranges, pci_functions }
}

/// The result of checking (and, when clean, compiling) a source text.
pub struct Compiled {
    pub diagnostics: Vec<Diagnostic>,
    /// Present when there were no errors (warnings allowed).
    pub model: Option<TableModel>,
}

/// Parses, checks and, when there are no errors, compiles `source`.
pub fn compile_source(source: &str) -> Compiled {
    let parsed = parse(source);
    let mut diagnostics = parsed.diagnostics;
    // Semantic rules run even after syntax errors, so one run reports everything that can
    // be known; the checker only looks at what parsed.
    diagnostics.extend(check(&parsed.file));
    crate::diagnostics::sort(&mut diagnostics);
    let model =
        if diagnostics.iter().any(Diagnostic::is_error) { None } else { Some(to_model(&parsed.file)) };
    Compiled { diagnostics, model }
}
