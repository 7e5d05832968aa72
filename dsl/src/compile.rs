//! The compiler: a checked syntax tree to the hypervisor's [`TableModel`] and bytes.

use hallows_abi::health::EventClass;
use hallows_abi::layout::PAGE_SIZE;
use hallows_abi::table::*;
use zerocopy::little_endian::{U16, U32, U64};

use crate::ast::{ChannelKind, File, Item, Kind, LinuxView};
use crate::check::{check, expand, System};
use crate::diagnostics::{did_you_mean, order_by_cause, Code, Diagnostic};
use crate::parser::parse;
use crate::span::Span;

/// Builds the table model. The tree must have passed [`check`] without errors; on a tree
/// that did not, the result is well-formed but meaningless (it never panics).
pub fn to_model(file: &File) -> TableModel {
    let mut ignored = Vec::new();
    let sys = System::new(file, &mut ignored);
    let f = &sys.platform;
    let hv_ways = f.hv_llc_ways.as_ref().and_then(|w| crate::check::way_block(&w.value)).unwrap_or((0, 0));
    let platform = Platform {
        cores: U32::new(f.cores.unwrap_or(0)),
        console_port: U16::new(f.console),
        llc_ways: f.llc_ways.unwrap_or(0),
        cat_min_ways: f.cat_min_ways.unwrap_or(0),
        ram_bytes: U64::new(f.ram.unwrap_or(0)),
        hv_reserved_bytes: U64::new(f.reserve),
        log_level: f.log_level,
        flags: if f.require_cat { PLATFORM_REQUIRE_CAT } else { 0 } | if f.cdp { PLATFORM_CDP } else { 0 },
        hv_llc_first_way: hv_ways.0,
        hv_llc_way_count: hv_ways.1,
        _reserved: [0; 4],
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
                restart_limit: p.restarts.as_ref().map_or(0, |r| r.value.count.value as u32),
                restart_window_ms: p
                    .restarts
                    .as_ref()
                    .map_or(0, |r| (r.value.window_ns.value / NANOS_PER_MILLI) as u32),
                llc_code_ways: p.llc_code_ways.as_ref().and_then(|w| crate::check::way_block(&w.value)),
                mba_percent: p.memory_bandwidth.as_ref().map_or(0, |m| m.value.min(u8::MAX as u64) as u8),
                persistent_bytes: p.persistent.as_ref().map_or(0, |s| s.value),
                args: text(&p.args),
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

/// Nanoseconds in a millisecond: the table stores restart windows in milliseconds.
const NANOS_PER_MILLI: u64 = 1_000_000;

/// Parses, checks and, when there are no errors, compiles `source`.
///
/// Diagnostics come in the order of cause and consequence (see [`order_by_cause`]), and
/// the ones that only follow from another reported problem are left out (see
/// [`drop_follow_ons`]).
pub fn compile_source(source: &str) -> Compiled {
    let parsed = parse(source);
    // Semantic rules run even after syntax errors, so one run reports everything that can
    // be known; the checker only looks at what parsed.
    let mut checked = check(&parsed.file);
    drop_follow_ons(&parsed.file, &mut checked);
    let diagnostics = order_by_cause(parsed.diagnostics, checked);
    let model =
        if diagnostics.iter().any(Diagnostic::is_error) { None } else { Some(to_model(&parsed.file)) };
    Compiled { diagnostics, model }
}

/// A source file's text for display, and the diagnostic that it is not UTF-8.
pub struct Decoded {
    /// The text; each invalid byte sequence replaced by U+FFFD.
    pub text: String,
    /// PT0115 at the first invalid byte, when there is one.
    pub not_utf8: Option<Diagnostic>,
}

/// Decodes a source file's bytes. A file that is not UTF-8 gets one diagnostic at its
/// first invalid byte (its line and column are those of the decoded text, where the byte
/// became U+FFFD).
pub fn decode(bytes: &[u8]) -> Decoded {
    let mut offset = 0;
    let mut first_invalid: Option<(usize, &[u8])> = None;
    let mut invalid_sequences = 0usize;
    for chunk in bytes.utf8_chunks() {
        if !chunk.invalid().is_empty() {
            first_invalid.get_or_insert((offset + chunk.valid().len(), chunk.invalid()));
            invalid_sequences += 1;
        }
        offset += chunk.valid().len() + chunk.invalid().len();
    }
    let text = String::from_utf8_lossy(bytes).into_owned();
    let Some((at, invalid)) = first_invalid else { return Decoded { text, not_utf8: None } };
    // Up to the first invalid sequence the decoded text is the file's bytes, so `at` is
    // also the offset of its U+FFFD.
    let shown: Vec<String> = invalid.iter().map(|b| format!("0x{b:02x}")).collect();
    let more = match invalid_sequences - 1 {
        0 => String::new(),
        1 => " (and 1 more invalid sequence after it)".to_string(),
        n => format!(" (and {n} more invalid sequences after it)"),
    };
    let plural = if invalid.len() == 1 { "" } else { "s" };
    let diagnostic = Diagnostic::new(
        Code::NotUtf8,
        Span::new(at, at + '\u{fffd}'.len_utf8()),
        "the file is not UTF-8 text",
    )
    .label(format!("invalid byte{plural} {}{more}", shown.join(" ")))
    .hint("save the file as UTF-8 (e.g. `iconv -f latin1 -t utf-8`); keywords and names are ASCII, strings and comments may hold any UTF-8");
    Decoded { text, not_utf8: Some(diagnostic) }
}

/// [`compile_source`] for a file's bytes: a file that is not UTF-8 is not checked
/// further (its text is not what its author wrote) and gets one diagnostic, PT0115.
/// Returns the text to show the diagnostics against, and the result.
pub fn compile_bytes(bytes: &[u8]) -> (String, Compiled) {
    let decoded = decode(bytes);
    match decoded.not_utf8 {
        None => {
            let compiled = compile_source(&decoded.text);
            (decoded.text, compiled)
        }
        Some(d) => (decoded.text, Compiled { diagnostics: vec![d], model: None }),
    }
}

/// Removes checker diagnostics that only follow from another one that is reported:
///
/// - "partition never gets a window" (PT0307) in a schedule that has a window for an
///   undeclared partition (PT0201) whose name is a likely typo of the starved one's: the
///   window was meant for it, and fixing the name fixes both;
/// - the same in a schedule with a syntax error: the statement that did not parse may be
///   the starved partition's window.
pub fn drop_follow_ons(file: &File, diags: &mut Vec<Diagnostic>) {
    let partitions: Vec<&crate::ast::Partition> = file
        .items
        .iter()
        .filter_map(|i| if let Item::Partition(p) = i { Some(&**p) } else { None })
        .collect();
    let declared: std::collections::HashSet<&str> =
        partitions.iter().map(|p| p.name.value.as_str()).collect();
    // Schedule span -> the undeclared names its windows use.
    let mut unknown_in_schedule: std::collections::HashMap<Span, Vec<&str>> = Default::default();
    let mut broken_schedules: std::collections::HashSet<Span> = Default::default();
    for item in &file.items {
        if let Item::Schedule(s) = item {
            let unknown: Vec<&str> = s
                .windows
                .iter()
                .map(|w| w.partition.value.as_str())
                .filter(|n| !declared.contains(n))
                .collect();
            if !unknown.is_empty() {
                unknown_in_schedule.insert(s.span, unknown);
            }
            if s.broken {
                broken_schedules.insert(s.span);
            }
        }
    }
    if unknown_in_schedule.is_empty() && broken_schedules.is_empty() {
        return;
    }
    let cores_owner: std::collections::HashMap<Span, &str> =
        partitions.iter().filter_map(|p| p.cores.as_ref().map(|c| (c.span, p.name.value.as_str()))).collect();
    diags.retain(|d| {
        if d.code != Code::PartitionStarved {
            return true;
        }
        if d.related.iter().any(|(span, _)| broken_schedules.contains(span)) {
            return false;
        }
        let Some(starved) = cores_owner.get(&d.span) else { return true };
        let meant_for_it = d
            .related
            .iter()
            .filter_map(|(span, _)| unknown_in_schedule.get(span))
            .any(|names| names.iter().any(|n| did_you_mean(n, [*starved]).is_some()));
        !meant_for_it
    });
}
