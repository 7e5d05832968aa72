//! The checker's cache-allocation rules beyond the one-example-per-code files: code
//! ways (CDP) count as ways a partition fills, the hypervisor's ways follow the way
//! rules, `memory_bandwidth` needs its unit, and `fmt` keeps every new setting.

use parseltongue::compile::compile_source;
use parseltongue::diagnostics::Code;
use parseltongue::fmt::format_source;

fn codes(source: &str) -> Vec<Code> {
    compile_source(source).diagnostics.iter().filter(|d| d.is_error()).map(|d| d.code).collect()
}

const PARTS: &str =
    "partition a { kind rt; image \"a.elf\"; cores 0; memory 4 MiB; llc_ways 0-1; llc_code_ways 2-3 }\n";

#[test]
fn code_ways_conflict_with_what_runs_beside_them() {
    let b = "partition b { kind rt; image \"b.elf\"; cores 1; memory 4 MiB; llc_ways 3-4 }\n";
    assert_eq!(codes(&format!("platform {{ cdp }}\n{PARTS}{b}")), [Code::WaysOverlap]);
    let far = "partition b { kind rt; image \"b.elf\"; cores 1; memory 4 MiB; llc_ways 4-5 }\n";
    assert_eq!(codes(&format!("platform {{ cdp }}\n{PARTS}{far}")), []);
    // A partition's own code and data ways may overlap.
    let own =
        "partition a { kind rt; image \"a.elf\"; cores 0; memory 4 MiB; llc_ways 0-3; llc_code_ways 2-5 }\n";
    assert_eq!(codes(&format!("platform {{ cdp }}\n{own}")), []);
}

#[test]
fn code_ways_follow_the_way_rules() {
    let wide = "partition a { kind rt; image \"a.elf\"; cores 0; memory 4 MiB; llc_ways 0-1; llc_code_ways 10-12 }\n";
    assert_eq!(codes(&format!("platform {{ cdp; llc_ways 12 }}\n{wide}")), [Code::WaysOutOfRange]);
    let gap =
        "partition a { kind rt; image \"a.elf\"; cores 0; memory 4 MiB; llc_ways 0-1; llc_code_ways 2, 4 }\n";
    assert_eq!(codes(&format!("platform {{ cdp }}\n{gap}")), [Code::WaysNotContiguous]);
}

#[test]
fn hypervisor_ways_follow_the_way_rules() {
    let p = "partition a { kind rt; image \"a.elf\"; cores 0; memory 4 MiB }\n";
    assert_eq!(codes(&format!("platform {{ llc_ways 12 }}\nhypervisor {{ llc_ways 10-11 }}\n{p}")), []);
    assert_eq!(
        codes(&format!("platform {{ llc_ways 12 }}\nhypervisor {{ llc_ways 11-12 }}\n{p}")),
        [Code::WaysOutOfRange]
    );
    assert_eq!(
        codes(&format!("platform {{ llc_ways 12; cat_min_ways 2 }}\nhypervisor {{ llc_ways 11 }}\n{p}")),
        [Code::WaysTooNarrow]
    );
}

#[test]
fn memory_bandwidth_needs_its_unit() {
    let src = "partition a { kind rt; image \"a.elf\"; cores 0; memory 4 MiB; memory_bandwidth 50 }\n";
    let c = compile_source(src);
    let d = c.diagnostics.iter().find(|d| d.is_error()).expect("an error");
    assert!(
        d.message.contains("percent") || d.hint.as_deref().is_some_and(|h| h.contains("percent")),
        "{d:?}"
    );
    let ok = "partition a { kind rt; image \"a.elf\"; cores 0; memory 4 MiB; memory_bandwidth 50 percent }\n";
    assert_eq!(compile_source(ok).model.unwrap().partitions[0].mba_percent, 50);
    assert_eq!(codes(&ok.replace("50 percent", "0 percent")), [Code::BandwidthOutOfRange]);
}

#[test]
fn fmt_keeps_every_cache_setting() {
    let src = "platform { cdp\n require_cat }\nhypervisor { llc_ways 10-11 }\n\
        partition a { kind rt; image \"a.elf\"; cores 0; memory 4 MiB; llc_ways 0-1; llc_code_ways 2-3; memory_bandwidth 40 percent }\n";
    let formatted = format_source(src).expect("formats");
    for setting in
        ["cdp", "require_cat", "llc_ways 10-11", "llc_code_ways 2-3", "memory_bandwidth 40 percent"]
    {
        assert!(formatted.contains(setting), "{setting} lost:\n{formatted}");
    }
    let (a, b) = (compile_source(src).model.unwrap(), compile_source(&formatted).model.unwrap());
    assert_eq!(a.to_bytes(), b.to_bytes());
}
