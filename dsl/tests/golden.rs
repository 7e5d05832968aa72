//! Golden tests: rendered diagnostics, JSON diagnostics and `show` output are compared
//! with files under tests/golden/. Regenerate with `UPDATE_GOLDEN=1 cargo test`.

use std::path::{Path, PathBuf};

use parseltongue::compile::{compile_bytes, compile_source};
use parseltongue::diagnostics::Report;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

fn compare(name: &str, actual: &str) {
    let path = dir().join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|_| panic!("{} missing: run with UPDATE_GOLDEN=1", path.display()));
    assert!(
        expected == actual,
        "{name} differs from the golden file:\n--- expected\n{expected}\n--- actual\n{actual}"
    );
}

fn diagnostics(name: &str) {
    let bytes = std::fs::read(dir().join(format!("{name}.pt"))).unwrap();
    let (source, compiled) = compile_bytes(&bytes);
    let file_name = format!("{name}.pt");
    let report = Report { file_name: &file_name, source: &source, diagnostics: &compiled.diagnostics };
    compare(&format!("{name}.txt"), &report.render(false, 100));
    compare(&format!("{name}.json"), &report.to_json());
}

#[test]
fn many_errors_render() {
    diagnostics("many-errors");
}

#[test]
fn syntax_errors_render() {
    diagnostics("syntax-errors");
}

#[test]
fn parse_errors_have_hints() {
    diagnostics("parse-errors");
}

#[test]
fn an_unclosed_block_is_one_error() {
    diagnostics("unclosed-block");
}

#[test]
fn a_file_that_is_not_utf8_gets_a_position_and_json() {
    diagnostics("not-utf8");
}

#[test]
fn long_lines_are_elided_around_the_span() {
    diagnostics("long-line");
}

fn show(config: &str, golden: &str) {
    let source =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs").join(config))
            .unwrap();
    let model = compile_source(&source).model.expect("config compiles");
    compare(golden, &parseltongue::show::render(&model));
}

#[test]
fn show_demo() {
    show("demo.pt", "demo.show.txt");
}

#[test]
fn show_server() {
    show("examples/two-socket-server.pt", "two-socket-server.show.txt");
}
