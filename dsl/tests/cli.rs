//! The command line: exit codes, outputs and files.

use std::path::{Path, PathBuf};
use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_parseltongue"))
}

fn config(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs").join(name)
}

fn error_example(code: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/errors").join(format!("{code}.pt"))
}

fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("parseltongue-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

#[test]
fn check_exit_codes() {
    assert_eq!(bin().args(["check"]).arg(config("demo.pt")).status().unwrap().code(), Some(0));
    let out = bin().args(["check"]).arg(error_example("PT0302")).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("PT0302"));
    // Warnings alone do not fail.
    assert_eq!(bin().args(["check"]).arg(error_example("PT1001")).status().unwrap().code(), Some(0));
    assert_eq!(bin().args(["check", "/nonexistent.pt"]).status().unwrap().code(), Some(2));
    assert_eq!(bin().args(["frobnicate"]).status().unwrap().code(), Some(2));
    assert_eq!(bin().status().unwrap().code(), Some(2));
}

#[test]
fn json_output_is_a_document() {
    let out = bin().args(["check", "--format", "json"]).arg(error_example("PT0503")).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["diagnostics"][0]["code"], "PT0503");
    assert_eq!(v["diagnostics"][0]["line"], 3);
}

#[test]
fn compile_writes_a_loadable_table() {
    let out = temp("demo.bin");
    let status = bin().args(["compile"]).arg(config("demo.pt")).arg("-o").arg(&out).status().unwrap();
    assert_eq!(status.code(), Some(0));
    let bytes = std::fs::read(&out).unwrap();
    assert!(hallows_abi::table::Table::load(&bytes).is_ok());
    let bad = temp("bad.bin");
    let status = bin().args(["compile"]).arg(error_example("PT0305")).arg("-o").arg(&bad).status().unwrap();
    assert_eq!(status.code(), Some(1));
    assert!(!bad.exists(), "no table is written when there are errors");
}

#[test]
fn show_prints_and_draws() {
    let out = bin().args(["show"]).arg(config("demo.pt")).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("sensor"));
    let svg = temp("demo.svg");
    let status = bin().args(["show", "--svg"]).arg(config("demo.pt")).arg("-o").arg(&svg).status().unwrap();
    assert_eq!(status.code(), Some(0));
    assert!(std::fs::read_to_string(&svg).unwrap().starts_with("<?xml"));
}

#[test]
fn fmt_check_and_write() {
    let file = temp("messy.pt");
    std::fs::write(&file, "partition a {   kind rt ; image \"a.elf\"; cores 0; memory 4096 KiB }\n").unwrap();
    assert_eq!(bin().args(["fmt", "--check"]).arg(&file).status().unwrap().code(), Some(1));
    assert_eq!(bin().args(["fmt", "--write"]).arg(&file).status().unwrap().code(), Some(0));
    assert_eq!(bin().args(["fmt", "--check"]).arg(&file).status().unwrap().code(), Some(0));
    assert!(std::fs::read_to_string(&file).unwrap().contains("    memory 4 MiB\n"));
}

#[test]
fn help_has_examples() {
    let out = bin().arg("--help").output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Examples:") && text.contains("parseltongue compile configs/demo.pt -o table.bin"));
}

#[test]
fn a_file_that_is_not_utf8_is_reported_not_refused() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/not-utf8.pt");
    let out = bin().args(["check", "--format", "json"]).arg(&file).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    assert_eq!(v["diagnostics"][0]["code"], "PT0115");
    assert_eq!(
        (v["diagnostics"][0]["line"].as_u64(), v["diagnostics"][0]["column"].as_u64()),
        (Some(1), Some(23))
    );
    let out = bin().args(["check"]).arg(&file).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not-utf8.pt:1:23"));
    let out = bin().args(["fmt", "--check"]).arg(&file).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("PT0115"));
}

#[test]
fn explain_takes_codes_and_privileges() {
    let out = bin().args(["explain", "PT1005"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("PT1005 (warning)"));
    let out = bin().args(["explain", "manage"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("privileges manage\n") && text.contains("management PCI"), "{text}");
    let out = bin().args(["explain", "root"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("query, restart, halt_system, manage"));
}

#[test]
fn two_operators_are_a_warning_with_a_position() {
    let out = bin().args(["check", "--format", "json"]).arg(error_example("PT1005")).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "a warning does not fail the check");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let d = &v["diagnostics"][0];
    assert_eq!((d["code"].as_str(), d["severity"].as_str()), (Some("PT1005"), Some("warning")));
    assert_eq!((d["line"].as_u64(), d["column"].as_u64()), (Some(14), Some(25)));
    assert_eq!(d["related"][0]["line"], 7);
    assert!(d["hint"].as_str().is_some_and(|h| h.contains("grant manage to one RT partition")));
}
