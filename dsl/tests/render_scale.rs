//! Rendering many diagnostics: the text report shows the first `RENDER_LIMIT` and counts
//! the rest, JSON carries every one, and both finish quickly whatever their number (the
//! times are measured by `cargo bench -p parseltongue --bench render`, not asserted).

use parseltongue::diagnostics::{Code, Diagnostic, Report, RENDER_LIMIT};
use parseltongue::span::Span;

/// A schedule of `n` windows of 10 us each (warning PT1002 on every one).
pub fn many_warnings(n: usize) -> (String, Vec<Diagnostic>) {
    let mut source = String::from("partition a { kind rt; image \"a.elf\"; cores 0; memory 4 MiB }\n");
    source.push_str("schedule cores 0 {\n    major_frame 1 s\n");
    for i in 0..n {
        source.push_str(&format!("    window a {}..{} us\n", i * 20, i * 20 + 10));
    }
    source.push_str("}\n");
    let diags = parseltongue::compile::compile_source(&source).diagnostics;
    (source, diags)
}

#[test]
fn twenty_thousand_diagnostics_render_capped_and_json_has_all() {
    let (source, diags) = many_warnings(20_000);
    assert_eq!(diags.len(), 20_000);
    assert!(diags.iter().all(|d| d.code == Code::WindowShort));
    let report = Report { file_name: "many.pt", source: &source, diagnostics: &diags };
    let text = report.render(false, 120);
    let is_code = |l: &str| l.len() == 6 && l.starts_with("PT") && l[2..].bytes().all(|b| b.is_ascii_digit());
    let rendered = text.lines().filter(|l| is_code(l)).count();
    assert_eq!(rendered, RENDER_LIMIT);
    let hidden = diags.len() - RENDER_LIMIT;
    let expected = format!("… and {hidden} more not shown (0 errors, {hidden} warnings)");
    assert!(text.contains(&expected), "{}", &text[text.len() - 300..]);
    assert!(text.ends_with(&format!("many.pt: 0 errors, {} warnings\n", diags.len())), "{}", &text[..2000]);
    let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
    assert_eq!(json["diagnostics"].as_array().unwrap().len(), diags.len());
    let last = &json["diagnostics"][diags.len() - 1];
    assert_eq!(last["line"], 3 + 20_000, "positions stay right at the end of a long file");
}

#[test]
fn uncapped_rendering_of_many_diagnostics_on_one_long_line_is_bounded() {
    // Every diagnostic on the same 1 MB line: each excerpt is a window, not the line.
    let line = "x ".repeat(500_000);
    let diags: Vec<Diagnostic> = (0..2_000)
        .map(|i| {
            let at = i * 500;
            Diagnostic::new(Code::BadCharacter, Span::new(at, at + 1), "unexpected").label("here")
        })
        .collect();
    let index = parseltongue::span::LineIndex::new(&line);
    let style = parseltongue::render::Style { color: false, width: 120, limit: usize::MAX };
    let text = parseltongue::render::render("long.pt", &line, &index, &diags, style);
    assert_eq!(text.matches("PT0101").count(), 2_000);
    assert!(text.lines().all(|l| l.chars().count() < 140), "every excerpt line is elided");
}
