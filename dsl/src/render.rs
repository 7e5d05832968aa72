//! Human-readable rendering of diagnostics: the message, the source lines around every
//! labelled span with underlines, and the hint.
//!
//! ```text
//! PT0105
//!
//!   × unknown size unit `GB`
//!    ╭─[bad.pt:3:11]
//!  2 │     cores 4
//!  3 │     ram 1 GB
//!    ·           ─┬
//!    ·            ╰── not a size unit
//!  4 │ }
//!    ╰────
//!   help: did you mean `GiB`? sizes use B, KiB, MiB, GiB or TiB (powers of 1024)
//! ```
//!
//! Every lookup goes through one [`LineIndex`] built per file, and every source line is
//! cut to a window of at most `width` columns around its labels (`…` marks what was left
//! out), so the cost of a diagnostic does not depend on the file's size or its lines'
//! length: rendering is linear in the number of diagnostics. At most `limit` diagnostics
//! are rendered; the rest are counted in one closing line.

use std::fmt::Write;

use crate::diagnostics::{Diagnostic, Severity};
use crate::span::{LineIndex, Span};

/// How to render.
#[derive(Clone, Copy, Debug)]
pub struct Style {
    /// ANSI colours (for a terminal).
    pub color: bool,
    /// Widest source excerpt, in columns; longer lines are elided around their labels.
    pub width: usize,
    /// Most diagnostics rendered; the others are only counted.
    pub limit: usize,
}

/// Narrowest excerpt window: enough for a label and some context on both sides.
const MIN_WIDTH: usize = 40;
/// Characters of context kept before a label when a long line is elided.
const CONTEXT_BEFORE_LABEL: usize = 24;
/// Lines of context shown above and below every label.
const CONTEXT_LINES: usize = 1;

const RED: &str = "\x1b[31m";
const YELLOW: &str = "\x1b[33m";
const CYAN: &str = "\x1b[36m";
const BOLD: &str = "\x1b[1m";
const RESET: &str = "\x1b[0m";

/// One labelled span of a diagnostic.
struct Label<'a> {
    span: Span,
    text: &'a str,
    primary: bool,
    /// 0-based line of the span's start.
    line: usize,
}

/// Renders `diagnostics` about `source` (named `file_name`), at most `style.limit` of them.
pub fn render(
    file_name: &str,
    source: &str,
    index: &LineIndex,
    diagnostics: &[Diagnostic],
    style: Style,
) -> String {
    let mut out = String::new();
    for diag in diagnostics.iter().take(style.limit) {
        render_one(&mut out, file_name, source, index, diag, style);
    }
    let hidden = &diagnostics[diagnostics.len().min(style.limit)..];
    if !hidden.is_empty() {
        let errors = hidden.iter().filter(|d| d.is_error()).count();
        let _ = writeln!(
            out,
            "… and {} more not shown ({} errors, {} warnings); `--format json` lists every one",
            hidden.len(),
            errors,
            hidden.len() - errors
        );
    }
    out
}

fn paint(out: &mut String, color: bool, code: &str, text: &str) {
    if color {
        out.push_str(code);
        out.push_str(text);
        out.push_str(RESET);
    } else {
        out.push_str(text);
    }
}

/// `text` with control characters (which could drive the terminal) and tabs (whose
/// width is unknown) made visible as one column each, so underlines stay aligned.
fn printable(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '\t' => ' ',
            c if c.is_control() => '\u{fffd}',
            c => c,
        })
        .collect()
}

fn render_one(
    out: &mut String,
    file_name: &str,
    source: &str,
    index: &LineIndex,
    diag: &Diagnostic,
    style: Style,
) {
    let color = style.color;
    let (mark, mark_color) = match diag.severity() {
        Severity::Error => ("×", RED),
        Severity::Warning => ("⚠", YELLOW),
    };
    paint(out, color, BOLD, diag.code.id());
    out.push_str("\n\n  ");
    paint(out, color, mark_color, mark);
    out.push(' ');
    paint(out, color, mark_color, &printable(&diag.message));
    out.push('\n');

    let mut labels: Vec<Label<'_>> = std::iter::once((diag.span, diag.label.as_str(), true))
        .chain(diag.related.iter().map(|(span, text)| (*span, text.as_str(), false)))
        .map(|(span, text, primary)| Label { span, text, primary, line: index.line_of(span.start) })
        .collect();
    labels.sort_by_key(|l| (l.span.start, !l.primary));
    let style = Style { width: style.width.max(MIN_WIDTH), ..style };
    // A file's final line break does not start a line worth showing.
    let shown_lines = index.line_count() - usize::from(source.ends_with('\n'));
    let last_labelled = labels.iter().map(|l| l.line + 1).max().unwrap_or(0);
    for group in contexts(&labels, shown_lines.max(last_labelled)) {
        render_context(out, file_name, source, index, &labels[group.labels], group.lines, mark_color, style);
    }
    if let Some(hint) = &diag.hint {
        out.push_str("  ");
        paint(out, color, CYAN, "help:");
        out.push(' ');
        out.push_str(&printable(hint));
        out.push('\n');
    }
}

/// Labels whose surrounding lines touch are shown in one excerpt.
struct Context {
    /// Range into the sorted labels.
    labels: std::ops::Range<usize>,
    /// 0-based lines shown, inclusive.
    lines: (usize, usize),
}

/// Groups `labels` (sorted by position) into excerpts of `CONTEXT_LINES` lines around
/// each, merging excerpts that overlap or touch; lines past `line_count` are not shown.
fn contexts(labels: &[Label<'_>], line_count: usize) -> Vec<Context> {
    let mut out: Vec<Context> = Vec::new();
    let last_line = line_count.saturating_sub(1);
    for (i, label) in labels.iter().enumerate() {
        let first = label.line.saturating_sub(CONTEXT_LINES);
        let last = (label.line + CONTEXT_LINES).min(last_line);
        match out.last_mut() {
            Some(ctx) if first <= ctx.lines.1 + 1 => {
                ctx.labels.end = i + 1;
                ctx.lines.1 = ctx.lines.1.max(last);
            }
            _ => out.push(Context { labels: i..i + 1, lines: (first, last) }),
        }
    }
    out
}

/// The part of a source line that is shown, found by walking at most `width` characters
/// (never the whole line, which may be megabytes long).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Window {
    /// Byte range of the line that is shown.
    start: usize,
    end: usize,
    /// Characters of the line before `start`.
    skipped: usize,
    /// `start` is past the line's start / `end` before its end: print `…` there.
    cut_before: bool,
    cut_after: bool,
}

/// The window of `line` (a byte range of `source`) to show: the whole line when it fits
/// in `width` columns, else `width` columns starting `CONTEXT_BEFORE_LABEL` characters
/// before `focus` (a byte offset in the line; the line's start when it has no label).
fn window(source: &str, line: std::ops::Range<usize>, focus: usize, width: usize) -> Window {
    let text = &source[line.clone()];
    let whole = text.chars().take(width + 1).count() <= width;
    if whole {
        return Window { start: line.start, end: line.end, skipped: 0, cut_before: false, cut_after: false };
    }
    // Two columns go to the `…` marks.
    let budget = width - 2;
    let focus = focus.clamp(line.start, line.end) - line.start;
    let focus = (0..=focus).rev().find(|i| text.is_char_boundary(*i)).unwrap_or(0);
    let mut start =
        text[..focus].char_indices().rev().take(CONTEXT_BEFORE_LABEL).last().map_or(focus, |(i, _)| i);
    let mut end = text[start..].char_indices().nth(budget).map_or(text.len(), |(i, _)| start + i);
    if end == text.len() {
        // Near the end of the line: fill the window from the end instead.
        start = text.char_indices().rev().take(budget).last().map_or(0, |(i, _)| i);
        end = text.len();
    }
    Window {
        start: line.start + start,
        end: line.start + end,
        skipped: 0,
        cut_before: start > 0,
        cut_after: end < text.len(),
    }
}

/// `window` for a context line that has no label of its own: the whole line when it
/// fits, else the same columns as the context's labelled line, so the excerpt stays
/// aligned.
fn aligned_window(
    source: &str,
    index: &LineIndex,
    line: std::ops::Range<usize>,
    skip_chars: usize,
    width: usize,
) -> Window {
    let fits = source[line.clone()].chars().take(width + 1).count() <= width;
    if skip_chars == 0 || fits {
        return window(source, line.clone(), line.start, width);
    }
    let line_start_chars = index.chars_before(source, line.start);
    let start = index.byte_of_char(source, line_start_chars + skip_chars).min(line.end);
    let text = &source[start..line.end];
    let budget = width - 2;
    let end = text.char_indices().nth(budget).map_or(line.end, |(i, _)| start + i);
    Window { start, end, skipped: skip_chars, cut_before: true, cut_after: end < line.end }
}

#[allow(clippy::too_many_arguments)]
fn render_context(
    out: &mut String,
    file_name: &str,
    source: &str,
    index: &LineIndex,
    labels: &[Label<'_>],
    (first_line, last_line): (usize, usize),
    mark_color: &str,
    style: Style,
) {
    let color = style.color;
    let gutter = (last_line + 1).to_string().len();
    let pad = " ".repeat(gutter + 2);
    let anchor = labels.iter().find(|l| l.primary).unwrap_or(&labels[0]);
    let (line, column) = index.position(source, anchor.span.start);
    let _ = writeln!(out, "{pad}╭─[{}:{line}:{column}]", printable(file_name));

    // The labelled lines decide the columns shown; unlabelled lines follow the nearest.
    let mut windows: Vec<(usize, Window)> = Vec::new();
    for line in first_line..=last_line {
        let range = index.line_range(source, line);
        let on_line: Vec<&Label<'_>> = labels.iter().filter(|l| l.line == line).collect();
        if let Some(focus) = on_line.iter().find(|l| l.primary).or(on_line.first()) {
            let mut w = window(source, range.clone(), focus.span.start, style.width);
            w.skipped = index.chars_between(source, range.start, w.start);
            windows.push((line, w));
        }
    }
    for line in first_line..=last_line {
        let range = index.line_range(source, line);
        let w = match windows.iter().find(|(l, _)| *l == line) {
            Some((_, w)) => *w,
            None => {
                let nearest =
                    windows.iter().min_by_key(|(l, _)| l.abs_diff(line)).map_or(0, |(_, w)| w.skipped);
                aligned_window(source, index, range.clone(), nearest, style.width)
            }
        };
        let mut text = String::new();
        if w.cut_before {
            text.push('…');
        }
        text.push_str(&printable(&source[w.start..w.end]));
        if w.cut_after {
            text.push('…');
        }
        let _ = writeln!(out, " {:>gutter$} │ {}", line + 1, text.trim_end());
        let on_line: Vec<&Label<'_>> = labels.iter().filter(|l| l.line == line).collect();
        if !on_line.is_empty() {
            render_underlines(out, source, index, &pad, &w, range, &on_line, mark_color, color);
        }
    }
    let _ = writeln!(out, "{pad}╰────");
}

/// Screen columns `(start, end)` of a label's span, relative to the excerpt's first printed
/// character (a `…` mark counts as one), clipped to the window; at least one column wide.
fn label_columns(
    source: &str,
    index: &LineIndex,
    w: &Window,
    line: &std::ops::Range<usize>,
    span: Span,
) -> (usize, usize) {
    let mark = usize::from(w.cut_before);
    let shown = index.chars_between(source, w.start, w.end);
    let column = |offset: usize| -> usize {
        let offset = offset.clamp(line.start, line.end);
        if offset <= w.start {
            return if offset < w.start { 0 } else { mark };
        }
        if offset > w.end {
            return mark + shown + usize::from(w.cut_after);
        }
        mark + index.chars_between(source, w.start, offset)
    };
    let start = column(span.start);
    let end = column(span.end).max(start + 1);
    (start, end)
}

#[allow(clippy::too_many_arguments)]
fn render_underlines(
    out: &mut String,
    source: &str,
    index: &LineIndex,
    pad: &str,
    w: &Window,
    line: std::ops::Range<usize>,
    labels: &[&Label<'_>],
    mark_color: &str,
    color: bool,
) {
    let mut cells: Vec<(char, bool)> = Vec::new();
    let mut anchors: Vec<(usize, &Label<'_>)> = Vec::new();
    for label in labels {
        let (start, end) = label_columns(source, index, w, &line, label.span);
        if cells.len() < end {
            cells.resize(end, (' ', false));
        }
        for cell in &mut cells[start..end] {
            *cell = ('─', label.primary);
        }
        if !label.text.is_empty() {
            let anchor = start + (end - start) / 2;
            cells[anchor] = ('┬', label.primary);
            anchors.push((anchor, label));
        }
    }
    let label_color = |primary: bool| if primary { mark_color } else { CYAN };
    out.push_str(pad);
    out.push_str("· ");
    for (ch, primary) in &cells {
        if *ch == ' ' || !color {
            out.push(*ch);
        } else {
            paint(out, true, label_color(*primary), &ch.to_string());
        }
    }
    out.push('\n');
    anchors.sort_by_key(|(column, _)| *column);
    for last in (0..anchors.len()).rev() {
        out.push_str(pad);
        out.push_str("· ");
        let mut at = 0;
        for (column, label) in &anchors[..last] {
            out.push_str(&" ".repeat(column - at));
            paint(out, color, label_color(label.primary), "│");
            at = column + 1;
        }
        let (column, label) = anchors[last];
        out.push_str(&" ".repeat(column.saturating_sub(at)));
        paint(out, color, label_color(label.primary), &format!("╰── {}", printable(label.text)));
        out.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnostics::Code;

    fn plain(width: usize) -> Style {
        Style { color: false, width, limit: 200 }
    }

    fn render_text(source: &str, diags: &[Diagnostic], style: Style) -> String {
        render("t.pt", source, &LineIndex::new(source), diags, style)
    }

    #[test]
    fn short_lines_are_shown_whole() {
        let src = "platform {\n    ram 1 GB\n}\n";
        let d = Diagnostic::new(Code::UnknownUnit, Span::new(21, 23), "unknown size unit `GB`")
            .label("not a size unit")
            .hint("use GiB");
        let text = render_text(src, &[d], plain(100));
        assert_eq!(
            text,
            "PT0105\n\n  × unknown size unit `GB`\n   ╭─[t.pt:2:11]\n 1 │ platform {\n 2 │     ram 1 GB\n   ·           ─┬\n   ·            ╰── not a size unit\n 3 │ }\n   ╰────\n  help: use GiB\n"
        );
    }

    #[test]
    fn long_lines_are_elided_around_the_label() {
        let src = format!("partition a {{ {} kind rtx }}\n", "cores 0; ".repeat(1_000));
        let at = src.find("rtx").unwrap();
        let d = Diagnostic::new(Code::UnknownValue, Span::new(at, at + 3), "unknown kind").label("here");
        let text = render_text(&src, &[d], plain(60));
        let shown = text.lines().find(|l| l.starts_with(" 1 │")).unwrap();
        assert!(shown.contains("kind rtx }") && shown.starts_with(" 1 │ …"), "{shown}");
        assert!(shown.chars().count() <= " 1 │ ".len() + 60, "{shown}");
        let underline = text.lines().find(|l| l.contains('┬')).unwrap();
        let caret = underline.chars().position(|c| c == '┬').unwrap();
        assert_eq!(shown.chars().nth(caret), Some('t'), "the underline is under `rtx`:\n{text}");
        assert!(text.contains("[t.pt:1:"), "{text}");
    }

    #[test]
    fn labels_on_one_line_nest() {
        let src = "a b\n";
        let d = Diagnostic::new(Code::DuplicateSetting, Span::new(2, 3), "twice")
            .label("second")
            .related(Span::new(0, 1), "first");
        let text = render_text(src, &[d], plain(100));
        assert!(text.contains("   · ┬ ┬\n   · │ ╰── second\n   · ╰── first\n"), "{text}");
    }

    #[test]
    fn far_apart_labels_get_their_own_excerpts() {
        let src = "a\n\n\n\n\nb\n";
        let d = Diagnostic::new(Code::DuplicatePartition, Span::new(7, 8), "twice")
            .label("second")
            .related(Span::new(0, 1), "first");
        let text = render_text(src, &[d], plain(100));
        assert_eq!(text.matches('╭').count(), 2, "{text}");
        assert!(!text.contains(" 4 │"), "lines between the excerpts are left out:\n{text}");
    }

    #[test]
    fn rendering_stops_at_the_limit_and_counts_the_rest() {
        let src = "x\n";
        let d = Diagnostic::new(Code::WindowShort, Span::new(0, 1), "short");
        let e = Diagnostic::new(Code::UnknownName, Span::new(0, 1), "unknown");
        let diags = vec![d.clone(), d.clone(), e, d];
        let text = render_text(src, &diags, Style { color: false, width: 100, limit: 1 });
        assert_eq!(text.matches("PT1002").count(), 1);
        assert!(text
            .ends_with("… and 3 more not shown (1 errors, 2 warnings); `--format json` lists every one\n"));
    }

    #[test]
    fn control_characters_do_not_reach_the_terminal() {
        let src = "a \u{1b}[2J b\n";
        let d = Diagnostic::new(Code::BadCharacter, Span::new(2, 3), "bad \u{1b}").label("esc");
        let text = render_text(src, &[d], plain(100));
        assert!(!text.contains('\u{1b}'), "{text:?}");
    }

    #[test]
    fn spans_past_the_end_and_empty_files_render() {
        for (src, span) in [("", Span::new(0, 0)), ("abc", Span::new(2, 99)), ("a\r\nb", Span::new(1, 2))] {
            let d = Diagnostic::new(Code::NoPartitions, span, "x").label("here");
            let text = render_text(src, &[d], plain(100));
            assert!(text.contains("╰── here"), "{text}");
        }
    }
}
