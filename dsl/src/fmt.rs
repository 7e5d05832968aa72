//! `parseltongue fmt`: prints a file in the canonical layout: one statement per line,
//! four-space indents, settings in a fixed order, sizes and durations in their largest
//! exact unit, addresses in hex, one blank line between blocks. Comments are kept: a
//! comment on its own line stays before the statement that followed it, a comment after
//! code stays at the end of that statement's line.

use std::collections::HashMap;

use hallows_abi::table::{LOG_DEBUG, LOG_ERROR, LOG_INFO, LOG_TRACE, LOG_WARN};

use crate::ast::*;
use crate::lexer::Comment;
use crate::parser::{parse, privilege_word};
use crate::show::{id_list_u64, size};
use crate::span::LineIndex;

/// The canonical text of `source`, or `None` when it has syntax errors.
pub fn format_source(source: &str) -> Option<String> {
    let parsed = parse(source);
    if !parsed.diagnostics.is_empty() {
        return None;
    }
    let mut lines: Vec<Line> = Vec::new();
    for (i, item) in parsed.file.items.iter().enumerate() {
        if i > 0 {
            lines.push(Line { indent: 0, text: String::new(), anchor: None });
        }
        item_lines(item, &mut lines);
    }
    Some(place_comments(source, &parsed.comments, &lines))
}

/// One output line; `anchor` is the source offset it comes from (for comments).
struct Line {
    indent: usize,
    text: String,
    anchor: Option<usize>,
}

fn push(lines: &mut Vec<Line>, indent: usize, anchor: usize, text: String) {
    lines.push(Line { indent, text, anchor: Some(anchor) });
}

fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

fn auto(v: &Auto<u64>, f: impl Fn(u64) -> String) -> String {
    match v {
        Auto::Auto => "auto".into(),
        Auto::Value(n) => f(*n),
    }
}

const TIME_UNITS: [(&str, u64); 4] = [("s", 1_000_000_000), ("ms", 1_000_000), ("us", 1_000), ("ns", 1)];

/// `10 ms`: the largest unit that states the value exactly (never a bare number).
fn duration(ns: u64) -> String {
    let (unit, scale) = TIME_UNITS
        .iter()
        .find(|(_, s)| ns.is_multiple_of(*s) && ns != 0)
        .copied()
        .unwrap_or(("ms", 1_000_000));
    format!("{} {unit}", ns / scale)
}

/// `0..4 ms`: both ends in the largest unit that states both exactly.
fn time_span(start: u64, end: u64) -> String {
    let (unit, scale) = TIME_UNITS
        .iter()
        .find(|(_, s)| start.is_multiple_of(*s) && end.is_multiple_of(*s) && (start | end) != 0)
        .copied()
        .unwrap_or(("ms", 1_000_000));
    format!("{}..{} {unit}", start / scale, end / scale)
}

/// Hex, with `_` every four digits above 32 bits (`0x40_0000_0000`).
fn hex(v: u64) -> String {
    let digits = format!("{v:x}");
    if digits.len() <= 8 {
        return format!("0x{digits}");
    }
    let mut groups: Vec<&str> = Vec::new();
    let mut end = digits.len();
    while end > 0 {
        let start = end.saturating_sub(4);
        groups.push(&digits[start..end]);
        end = start;
    }
    groups.reverse();
    format!("0x{}", groups.join("_"))
}

fn index_list(list: &IndexList) -> String {
    id_list_u64(&list.iter().map(|i| i.value).collect::<Vec<_>>(), |v| v.to_string())
}

fn item_lines(item: &Item, lines: &mut Vec<Line>) {
    match item {
        Item::Platform(p) => {
            push(lines, 0, p.span.start, "platform {".into());
            if let Some(v) = &p.cores {
                push(lines, 1, v.span.start, format!("cores {}", auto(&v.value, |n| n.to_string())));
            }
            if let Some(v) = &p.ram {
                push(lines, 1, v.span.start, format!("ram {}", auto(&v.value, size)));
            }
            if let Some(v) = &p.llc_ways {
                push(lines, 1, v.span.start, format!("llc_ways {}", auto(&v.value, |n| n.to_string())));
            }
            if let Some(v) = &p.cat_min_ways {
                push(lines, 1, v.span.start, format!("cat_min_ways {}", auto(&v.value, |n| n.to_string())));
            }
            if let Some(v) = &p.console {
                push(lines, 1, v.span.start, format!("console {:#x}", v.value));
            }
            if let Some(span) = p.require_cat {
                push(lines, 1, span.start, "require_cat".into());
            }
            if let Some(span) = p.cdp {
                push(lines, 1, span.start, "cdp".into());
            }
        }
        Item::Hypervisor(h) => {
            push(lines, 0, h.span.start, "hypervisor {".into());
            if let Some(v) = &h.reserve {
                push(lines, 1, v.span.start, format!("reserve {}", size(v.value)));
            }
            if let Some(v) = &h.log_level {
                let word = match v.value {
                    LOG_ERROR => "error",
                    LOG_WARN => "warn",
                    LOG_INFO => "info",
                    LOG_DEBUG => "debug",
                    LOG_TRACE => "trace",
                    _ => "info",
                };
                push(lines, 1, v.span.start, format!("log_level {word}"));
            }
            if let Some(v) = &h.llc_ways {
                push(lines, 1, v.span.start, format!("llc_ways {}", index_list(&v.value)));
            }
        }
        Item::Partition(p) => partition_lines(p, lines),
        Item::Channel(c) => {
            push(lines, 0, c.name.span.start, format!("channel {} {{", c.name.value));
            if let Some(v) = &c.kind {
                let word = if v.value == ChannelKind::Queuing { "queuing" } else { "sampling" };
                push(lines, 1, v.span.start, format!("kind {word}"));
            }
            if let Some(v) = &c.from {
                push(lines, 1, v.span.start, format!("from {}", v.value));
            }
            if let Some(v) = &c.to {
                push(lines, 1, v.span.start, format!("to {}", v.value));
            }
            if let Some(v) = &c.message {
                push(lines, 1, v.span.start, format!("message {}", size(v.value)));
            }
            if let Some(v) = &c.depth {
                push(lines, 1, v.span.start, format!("depth {}", v.value));
            }
            if let Some(v) = &c.linux {
                push(
                    lines,
                    1,
                    v.span.start,
                    format!("linux {}", if v.value == LinuxView::Tty { "tty" } else { "shm" }),
                );
            }
        }
        Item::Schedule(s) => {
            push(lines, 0, s.span.start, format!("schedule cores {} {{", index_list(&s.cores.value)));
            if let Some(v) = &s.major_frame {
                push(lines, 1, v.span.start, format!("major_frame {}", duration(v.value)));
            }
            for w in &s.windows {
                push(
                    lines,
                    1,
                    w.span.start,
                    format!("window {} {}", w.partition.value, time_span(w.start.value, w.end.value)),
                );
            }
        }
    }
    lines.push(Line { indent: 0, text: "}".into(), anchor: None });
}

fn partition_lines(p: &Partition, lines: &mut Vec<Line>) {
    push(lines, 0, p.name.span.start, format!("partition {} {{", p.name.value));
    if let Some(v) = &p.kind {
        push(lines, 1, v.span.start, format!("kind {}", if v.value == Kind::Linux { "linux" } else { "rt" }));
    }
    for (word, v) in [
        ("image", &p.image),
        ("kernel", &p.kernel),
        ("initramfs", &p.initramfs),
        ("cmdline", &p.cmdline),
        ("args", &p.args),
    ] {
        if let Some(v) = v {
            push(lines, 1, v.span.start, format!("{word} {}", quote(&v.value)));
        }
    }
    if let Some(v) = &p.cores {
        push(lines, 1, v.span.start, format!("cores {}", index_list(&v.value)));
    }
    if let Some(v) = &p.memory {
        let at = p.pinned.as_ref().map_or(String::new(), |b| format!(" at {}", hex(b.value)));
        push(lines, 1, v.span.start, format!("memory {}{at}", size(v.value)));
    }
    if let Some(v) = &p.persistent {
        push(lines, 1, v.span.start, format!("persistent {}", size(v.value)));
    }
    if let Some(v) = &p.llc_ways {
        push(lines, 1, v.span.start, format!("llc_ways {}", index_list(&v.value)));
    }
    if let Some(v) = &p.llc_code_ways {
        push(lines, 1, v.span.start, format!("llc_code_ways {}", index_list(&v.value)));
    }
    if let Some(v) = &p.memory_bandwidth {
        push(lines, 1, v.span.start, format!("memory_bandwidth {} percent", v.value));
    }
    for r in &p.io {
        let text = if r.value.0 == r.value.1 {
            format!("{:#x}", r.value.0)
        } else {
            format!("{:#x}-{:#x}", r.value.0, r.value.1)
        };
        push(lines, 1, r.span.start, format!("io {text}"));
    }
    for m in &p.mmio {
        push(lines, 1, m.span.start, format!("mmio {} size {}", hex(m.base.value), size(m.size.value)));
    }
    for f in &p.pci {
        push(lines, 1, f.span.start, format!("pci \"{}\"", f.value));
    }
    if let Some(first) = p.privileges.first() {
        // The parser only makes bits from the same list, so no word is ever dropped here.
        let words: Vec<&str> = p.privileges.iter().filter_map(|v| privilege_word(v.value)).collect();
        push(lines, 1, first.span.start, format!("privileges {}", words.join(", ")));
    }
    for rule in &p.health {
        push(
            lines,
            1,
            rule.event.span.start,
            format!("on {} {}", rule.event.value.name(), rule.action.value.name()),
        );
    }
    if let Some(r) = &p.restarts {
        let text = format!("restarts {} per {}", r.value.count.value, duration(r.value.window_ns.value));
        push(lines, 1, r.span.start, text);
    }
}

/// Interleaves the comments with the formatted lines.
fn place_comments(source: &str, comments: &[Comment], lines: &[Line]) -> String {
    let index = LineIndex::new(source);
    let line_of = |offset: usize| index.position(source, offset).0;
    let mut anchors: Vec<usize> = lines.iter().filter_map(|l| l.anchor).collect();
    anchors.sort_unstable();
    // First anchor of every source line, for trailing comments.
    let mut first_on_line: HashMap<usize, usize> = HashMap::new();
    for &a in anchors.iter().rev() {
        first_on_line.insert(line_of(a), a);
    }
    // A blank line after a comment (before the next code or comment) is kept.
    let blank_after = |c: &Comment| {
        let rest = &source[c.span.end.min(source.len())..];
        let gap = &rest[..rest.find(|ch: char| !ch.is_whitespace()).unwrap_or(rest.len())];
        gap.matches('\n').count() >= 2
    };
    let mut before: HashMap<usize, Vec<(&str, bool)>> = HashMap::new();
    let mut trailing: HashMap<usize, &str> = HashMap::new();
    let mut at_end: Vec<&str> = Vec::new();
    for c in comments {
        let line_start = source[..c.span.start].rfind('\n').map_or(0, |i| i + 1);
        let own_line = source[line_start..c.span.start].trim().is_empty();
        let here = line_of(c.span.start);
        match first_on_line.get(&here) {
            Some(&a) if !own_line && !trailing.contains_key(&a) => {
                trailing.insert(a, c.text.as_str());
            }
            _ => match anchors.get(anchors.partition_point(|&a| a < c.span.start)) {
                Some(&a) => before.entry(a).or_default().push((c.text.as_str(), blank_after(c))),
                None => at_end.push(c.text.as_str()),
            },
        }
    }
    let mut out = String::new();
    for line in lines {
        let pad = "    ".repeat(line.indent);
        if let Some(a) = line.anchor {
            for (c, blank) in before.get(&a).into_iter().flatten() {
                out.push_str(&format!("{pad}#{}\n", c.trim_end()));
                if *blank && !out.ends_with("\n\n") {
                    out.push('\n');
                }
            }
        }
        if line.text.is_empty() {
            out.push('\n');
            continue;
        }
        out.push_str(&pad);
        out.push_str(&line.text);
        if let Some(c) = line.anchor.and_then(|a| trailing.get(&a)) {
            out.push_str(&format!("  #{}", c.trim_end()));
        }
        out.push('\n');
    }
    if !at_end.is_empty() && !lines.is_empty() {
        out.push('\n');
    }
    for c in at_end {
        out.push_str(&format!("#{}\n", c.trim_end()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_layout_units_and_order() {
        let src = "partition a { memory 4096 KiB ; kind rt; cores 3,0-1; image \"a.elf\" } # tail\nschedule core 0 { window a 0..4000 us; major_frame 10000000 ns }";
        let out = format_source(src).unwrap();
        assert_eq!(
            out,
            "partition a {  # tail\n    kind rt\n    image \"a.elf\"\n    cores 3, 0-1\n    memory 4 MiB\n}\n\nschedule cores 0 {\n    major_frame 10 ms\n    window a 0..4 ms\n}\n"
        );
        assert_eq!(format_source(&out).unwrap(), out);
    }

    #[test]
    fn every_privilege_round_trips() {
        for (word, _) in crate::parser::PRIVILEGES {
            let src = format!(
                "partition a {{ kind rt; image \"a.elf\"; cores 0; memory 4 MiB; privileges {word} }}"
            );
            let out = format_source(&src).unwrap();
            assert!(out.contains(&format!("\n    privileges {word}\n")), "{word}: {out}");
            assert_eq!(format_source(&out).unwrap(), out);
        }
        // Several words keep the order they were written in.
        let out = format_source("partition a { privileges manage,query }").unwrap();
        assert_eq!(out, "partition a {\n    privileges manage, query\n}\n");
    }

    #[test]
    fn keeps_comments_in_place() {
        let src = "# head\nplatform {\n  # cores\n  cores 4 # four\n}\n# tail\n";
        let out = format_source(src).unwrap();
        assert_eq!(out, "# head\nplatform {\n    # cores\n    cores 4  # four\n}\n\n# tail\n");
    }

    #[test]
    fn long_addresses_are_grouped() {
        assert_eq!(hex(0x3f8), "0x3f8");
        assert_eq!(hex(0xfe00_0000), "0xfe000000");
        assert_eq!(hex(0x40_0000_0000), "0x40_0000_0000");
        assert_eq!(hex(u64::MAX), "0xffff_ffff_ffff_ffff");
    }

    #[test]
    fn refuses_broken_files() {
        assert_eq!(format_source("partition {"), None);
    }
}
