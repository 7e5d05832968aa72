//! One failing example per error code (tests/errors/PTxxxx.pt), asserting the code, the
//! line and the exact text of the highlighted span. Each example must report its own code
//! and no other error, so the examples double as the README's documentation.

use std::path::Path;

use parseltongue::compile::compile_source;
use parseltongue::diagnostics::{Code, Diagnostic, Severity};
use parseltongue::span::LineIndex;

struct Expectation {
    code: String,
    line: usize,
    text: String,
}

fn expectation(source: &str) -> Expectation {
    let first = source.lines().next().expect("example has a header line");
    let rest = first.strip_prefix("# expect: ").expect("header starts with `# expect: `");
    let (code, rest) = rest.split_once(" line ").expect("header has ` line `");
    let (line, text) = rest.split_once(' ').expect("header has the span text");
    Expectation {
        code: code.to_string(),
        line: line.parse().expect("line is a number"),
        text: text
            .strip_prefix('"')
            .and_then(|t| t.strip_suffix('"'))
            .expect("span text is quoted")
            .to_string(),
    }
}

fn examples() -> Vec<(String, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/errors");
    let mut files: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    files
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "pt"))
        .map(|p| {
            (p.file_stem().unwrap().to_string_lossy().into_owned(), std::fs::read_to_string(&p).unwrap())
        })
        .collect()
}

fn describe(diags: &[Diagnostic], source: &str) -> String {
    let index = LineIndex::new(source);
    diags
        .iter()
        .map(|d| {
            let (line, col) = index.position(source, d.span.start);
            format!("{} {}:{} {:?} {}", d.code, line, col, &source[d.span.start..d.span.end], d.message)
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn every_example_reports_its_code_at_its_span() {
    let mut failures = Vec::new();
    for (stem, source) in examples() {
        let want = expectation(&source);
        assert_eq!(stem, want.code, "file name and header disagree");
        let diags = compile_source(&source).diagnostics;
        let index = LineIndex::new(&source);
        let found = diags.iter().any(|d| {
            d.code.id() == want.code
                && index.position(&source, d.span.start).0 == want.line
                && source.get(d.span.start..d.span.end) == Some(want.text.as_str())
        });
        let code = Code::ALL.iter().find(|c| c.id() == want.code).expect("known code");
        let others: Vec<_> = diags.iter().filter(|d| d.is_error() && d.code.id() != want.code).collect();
        let clean = match code.severity() {
            Severity::Error => others.is_empty(),
            Severity::Warning => diags.iter().all(|d| !d.is_error()),
        };
        if !found || !clean {
            failures.push(format!(
                "{stem}: wanted {} line {} {:?}, got:\n{}",
                want.code,
                want.line,
                want.text,
                describe(&diags, &source)
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn every_code_has_an_example_or_a_generated_test() {
    let have: Vec<String> = examples().into_iter().map(|(s, _)| s).collect();
    // PT0311 needs more than 65536 windows and PT0115 a file that is not UTF-8: generated
    // in `too_many_windows` and `not_utf8` below.
    let missing: Vec<&str> = Code::ALL
        .iter()
        .map(|c| c.id())
        .filter(|id| !GENERATED.iter().any(|(g, _)| g == id) && !have.iter().any(|h| h == id))
        .collect();
    assert!(missing.is_empty(), "codes without an example: {missing:?}");
}

/// Codes tested by a generated input instead of an example file, with what the README says.
const GENERATED: &[(&str, &str)] = &[
    ("PT0115", "Reported at the first byte that is not UTF-8, e.g. a Latin-1 `é` (0xe9) in a comment; see the `not_utf8` test."),
    ("PT0311", "Reported for a schedule with more than 65,536 windows; see the `too_many_windows` test."),
];

#[test]
fn not_utf8() {
    let mut bytes = b"partition a { kind rt; image \"a.elf\"; cores 0; memory 4 MiB }\n".to_vec();
    bytes.extend_from_slice(b"# caf\xe9 \xff\xfe\n");
    let (text, compiled) = parseltongue::compile::compile_bytes(&bytes);
    assert!(compiled.model.is_none());
    let [d] = compiled.diagnostics.as_slice() else { panic!("{:?}", compiled.diagnostics) };
    assert_eq!(d.code, Code::NotUtf8);
    assert_eq!(LineIndex::new(&text).position(&text, d.span.start), (2, 6));
    assert_eq!(&text[d.span.start..d.span.end], "\u{fffd}");
    assert_eq!(d.label, "invalid byte 0xe9 (and 2 more invalid sequences after it)");
    assert!(d.hint.is_some());
}

#[test]
fn too_many_windows() {
    let mut src = String::from("partition a { kind rt; image \"a.elf\"; cores 0; memory 4 MiB }\nschedule cores 0 {\n major_frame 1 s\n");
    for i in 0..=hallows_abi::table::MAX_WINDOWS_PER_SCHEDULE as u64 {
        src.push_str(&format!(" window a {}..{} us\n", i * 10, i * 10 + 5));
    }
    src.push_str("}\n");
    let diags = compile_source(&src).diagnostics;
    let d = diags.iter().find(|d| d.code == Code::TooManyWindows).expect("PT0311 reported");
    assert_eq!(&src[d.span.start..d.span.end], "schedule");
}

/// The README's error-code section, generated from the codes and their examples.
fn readme_section() -> String {
    let mut out = String::new();
    let examples = examples();
    for code in Code::ALL {
        let severity = match code.severity() {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        out.push_str(&format!("\n### {}\n\n{severity}: {}.\n", code.id(), code.title()));
        match examples.iter().find(|(stem, _)| stem == code.id()) {
            Some((_, source)) => {
                let want = expectation(source);
                let body = source.split_once('\n').map_or("", |(_, b)| b);
                out.push_str(&format!("\n```text\n{body}```\n"));
                if !want.text.is_empty() {
                    out.push_str(&format!("\nReported at line {} (`{}`).\n", want.line - 1, want.text));
                }
            }
            None => {
                // A code without either is reported by `every_code_has_an_example...`.
                if let Some((_, text)) = GENERATED.iter().find(|(g, _)| *g == code.id()) {
                    out.push_str(&format!("\n({text})\n"));
                }
            }
        }
    }
    out
}

#[test]
fn readme_documents_every_code() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md");
    let readme = std::fs::read_to_string(&path).unwrap();
    let start = readme.find("<!-- codes:start").expect("README has the codes:start marker");
    let start = start + readme[start..].find("-->\n").expect("marker ends") + 4;
    let end = readme.find("<!-- codes:end -->").expect("README has the codes:end marker");
    let section = readme_section();
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, format!("{}{section}{}", &readme[..start], &readme[end..])).unwrap();
        return;
    }
    assert!(readme[start..end] == section, "README's error codes are stale: run with UPDATE_GOLDEN=1");
    for code in Code::ALL {
        assert!(readme.contains(&format!("### {}", code.id())), "README lacks {code}");
    }
}

#[test]
fn all_errors_of_a_file_come_in_one_run() {
    let src =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/many-errors.pt"))
            .unwrap();
    let diags = compile_source(&src).diagnostics;
    let mut codes: Vec<&str> = diags.iter().map(|d| d.code.id()).collect();
    codes.sort_unstable();
    codes.dedup();
    assert!(codes.len() >= 10, "only {codes:?}");
}
