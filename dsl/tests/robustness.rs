//! Bad input never panics: property tests over random bytes, random token soup and
//! mutations of valid tables, plus a kept corpus of tricky inputs (tests/corpus/).
//! Failing cases proptest finds are kept in proptest-regressions/.

use std::path::Path;

use parseltongue::compile::{compile_source, to_model};
use proptest::prelude::*;

/// Runs everything a user can reach; panics are the failure.
fn exercise(source: &str) {
    let compiled = compile_source(source);
    let report = parseltongue::diagnostics::Report {
        file_name: "fuzz.pt",
        source,
        diagnostics: &compiled.diagnostics,
    };
    let _ = report.render(false, 80);
    let _ = report.to_json();
    let parsed = parseltongue::parser::parse(source);
    for d in &parsed.diagnostics {
        assert!(d.hint.as_deref().is_some_and(|h| !h.is_empty()), "a syntax error without a hint: {d:?}");
    }
    // The compiler must not panic even on a tree the checker rejected.
    let bytes = to_model(&parsed.file).to_bytes();
    assert!(hallows_abi::table::Table::parse(&bytes).is_ok());
    if let Some(model) = compiled.model {
        let bytes = model.to_bytes();
        hallows_abi::table::Table::load(&bytes).expect("a table the checker accepts must load");
        let _ = parseltongue::show::render(&model);
        let _ = parseltongue::svg::render(&model);
    }
    if let Some(formatted) = parseltongue::fmt::format_source(source) {
        // Formatting is stable and keeps the meaning.
        assert_eq!(parseltongue::fmt::format_source(&formatted).as_deref(), Some(formatted.as_str()));
    }
}

const WORDS: &[&str] = &[
    "platform",
    "hypervisor",
    "partition",
    "channel",
    "schedule",
    "cores",
    "core",
    "ram",
    "llc_ways",
    "cat_min_ways",
    "console",
    "require_cat",
    "reserve",
    "log_level",
    "kind",
    "rt",
    "linux",
    "image",
    "kernel",
    "initramfs",
    "cmdline",
    "memory",
    "at",
    "io",
    "mmio",
    "size",
    "pci",
    "privileges",
    "query",
    "restart",
    "on",
    "restarts",
    "per",
    "panic",
    "halt",
    "log",
    "memory_violation",
    "from",
    "to",
    "message",
    "depth",
    "queuing",
    "sampling",
    "shm",
    "tty",
    "major_frame",
    "window",
    "auto",
    "a",
    "b",
    "c",
    "MiB",
    "KiB",
    "GiB",
    "B",
    "ms",
    "us",
    "ns",
    "s",
    "{",
    "}",
    ",",
    "-",
    "..",
    ";",
    "\n",
    "0",
    "1",
    "2",
    "3",
    "4",
    "7",
    "64",
    "255",
    "256",
    "0x3f8",
    "0xfe000000",
    "99999999999999999999",
    "\"a.elf\"",
    "\"3b:00.0\"",
    "\"",
    "#",
    "=",
    "é",
    "\\",
];

fn token_soup() -> impl Strategy<Value = String> {
    proptest::collection::vec(proptest::sample::select(WORDS), 0..120).prop_map(|w| w.join(" "))
}

fn demo() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/demo.pt")).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        exercise(&String::from_utf8_lossy(&bytes));
        // As the CLI reads a file: not UTF-8 is one diagnostic, rendered against the
        // decoded text.
        let (text, compiled) = parseltongue::compile::compile_bytes(&bytes);
        let report = parseltongue::diagnostics::Report { file_name: "fuzz.pt", source: &text, diagnostics: &compiled.diagnostics };
        let _ = report.render(false, 40);
        let json: serde_json::Value = serde_json::from_str(&report.to_json()).expect("JSON output is JSON");
        prop_assert_eq!(json["errors"].as_u64().unwrap() == 0, compiled.model.is_some());
    }

    #[test]
    fn token_soup_never_panics(source in token_soup()) {
        exercise(&source);
    }

    #[test]
    fn mutated_demo_never_panics(cut in 0usize..2000, len in 0usize..40, insert in token_soup()) {
        let demo = demo();
        let mut at = cut.min(demo.len());
        while !demo.is_char_boundary(at) { at -= 1; }
        let mut end = (at + len).min(demo.len());
        while !demo.is_char_boundary(end) { end -= 1; }
        let mutated = format!("{}{}{}", &demo[..at], insert, &demo[end..]);
        exercise(&mutated);
    }

    #[test]
    fn generated_valid_tables_always_load(parts in 1usize..30, per_core in 1usize..4, ways in proptest::bool::ANY) {
        let source = parseltongue_bench_source(parts, per_core, ways);
        let compiled = compile_source(&source);
        prop_assert!(compiled.diagnostics.iter().all(|d| !d.is_error()), "{:?}", compiled.diagnostics);
        let bytes = compiled.model.unwrap().to_bytes();
        prop_assert!(hallows_abi::table::Table::load(&bytes).is_ok());
    }
}

/// A valid table: `parts` partitions, `per_core` of them sharing each scheduled core.
fn parseltongue_bench_source(parts: usize, per_core: usize, ways: bool) -> String {
    parseltongue::generate::table(parts, per_core, 2, ways)
}

#[test]
fn corpus_never_panics() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let mut n = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        exercise(&String::from_utf8_lossy(&bytes));
        n += 1;
    }
    assert!(n >= 10, "corpus has {n} files");
}
