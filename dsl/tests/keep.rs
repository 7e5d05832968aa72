//! `persistent SIZE` and `args "TEXT"`: what the checker accepts and refuses (with line,
//! column and hint), what the compiler writes, and how `fmt` and `show` print them.

use hallows_abi::limits::{ARGS_MAX, PERSISTENT_MAX_BYTES};
use hallows_abi::table::Table;
use parseltongue::compile::compile_source;
use parseltongue::diagnostics::{Code, Diagnostic};
use parseltongue::span::LineIndex;

fn rt(extra: &str) -> String {
    format!("partition broker {{\n    kind rt\n    image \"b.elf\"\n    cores 0\n    memory 4 MiB\n    {extra}\n}}\n")
}

fn diagnostics(src: &str) -> Vec<Diagnostic> {
    compile_source(src).diagnostics
}

/// `(code, line, column)` of every diagnostic.
fn located(src: &str) -> Vec<(Code, usize, usize)> {
    let index = LineIndex::new(src);
    diagnostics(src)
        .iter()
        .map(|d| {
            let (line, column) = index.position(src, d.span.start);
            (d.code, line, column)
        })
        .collect()
}

#[test]
fn an_rt_partition_keeps_a_region_and_gets_its_args() {
    let src = rt("persistent 2 MiB\n    args \"topics=orders:4,audit:1\"");
    let c = compile_source(&src);
    assert!(c.diagnostics.is_empty(), "{:?}", c.diagnostics);
    let m = c.model.unwrap();
    assert_eq!(
        (m.partitions[0].persistent_bytes, m.partitions[0].args.as_str()),
        (2 << 20, "topics=orders:4,audit:1")
    );
    let bytes = m.to_bytes();
    let t = Table::load(&bytes).unwrap();
    assert_eq!((t.persistent_bytes(0), t.args(0)), (2 << 20, "topics=orders:4,audit:1"));
    // Without them, nothing is written.
    let plain = compile_source(&rt("")).model.unwrap();
    assert_eq!((plain.partitions[0].persistent_bytes, plain.partitions[0].args.as_str()), (0, ""));
    // The largest region and the longest args pass.
    let edge = rt(&format!("persistent 64 MiB\n    args \"{}\"", "a".repeat(ARGS_MAX)));
    assert!(diagnostics(&edge).is_empty());
}

#[test]
fn sizes_are_checked_at_their_span_with_a_hint() {
    for (size, label) in
        [("0 B", "zero bytes"), ("6000 B", "not a multiple of 4 KiB"), ("65 MiB", "more than 64 MiB")]
    {
        let src = rt(&format!("persistent {size}"));
        assert_eq!(located(&src), vec![(Code::PersistentBad, 6, 16)], "{size}");
        let d = &diagnostics(&src)[0];
        assert_eq!(d.label, label);
        assert!(d.hint.is_some());
    }
    let d = &diagnostics(&rt("persistent 6000 B"))[0];
    assert_eq!(d.hint.as_deref(), Some("the region is mapped in whole pages; try `persistent 8 KiB`"));
    assert_eq!(PERSISTENT_MAX_BYTES, 64 << 20, "the messages say 64 MiB");
}

#[test]
fn args_must_be_printable_ascii_that_fits() {
    let long = rt(&format!("args \"{}\"", "a".repeat(ARGS_MAX + 1)));
    assert_eq!(located(&long), vec![(Code::ArgsBad, 6, 10)]);
    assert_eq!(diagnostics(&long)[0].label, format!("{} bytes, at most {ARGS_MAX}", ARGS_MAX + 1));
    let tab = rt("args \"a\tb\"");
    assert_eq!(located(&tab), vec![(Code::ArgsBad, 6, 10)]);
    assert_eq!(diagnostics(&tab)[0].label, "byte 1 is not printable ASCII");
    assert_eq!(located(&rt("args \"\"")), vec![], "empty args are no args");
}

#[test]
fn a_linux_partition_has_neither() {
    let linux = |extra: &str| {
        format!("partition l {{\n    kind linux\n    kernel \"vmlinux\"\n    cores 1\n    memory 128 MiB\n    {extra}\n}}\n")
    };
    let d = diagnostics(&linux("persistent 2 MiB"));
    assert_eq!(d.iter().map(|d| d.code).collect::<Vec<_>>(), vec![Code::WrongKindSetting]);
    assert!(d[0].message.contains("`persistent`") && d[0].hint.as_deref().unwrap().contains("real-time"));
    let d = diagnostics(&linux("args \"x\""));
    assert_eq!(d.iter().map(|d| d.code).collect::<Vec<_>>(), vec![Code::WrongKindSetting]);
    assert!(d[0].hint.as_deref().unwrap().contains("cmdline"));
    assert_eq!(located(&linux("persistent 2 MiB")), vec![(Code::WrongKindSetting, 6, 16)]);
}

#[test]
fn the_region_counts_against_the_platform_ram_as_its_own_block() {
    // 32 MiB reserve + 4 MiB RAM + 64 KiB persistent, placed as 2 MiB = 38 MiB.
    let src = |ram: u64| {
        format!("platform {{ ram {ram} MiB }}\nhypervisor {{ reserve 32 MiB }}\n{}", rt("persistent 64 KiB"))
    };
    assert_eq!(located(&src(38)), vec![]);
    let short = diagnostics(&src(37));
    assert_eq!(short.iter().map(|d| d.code).collect::<Vec<_>>(), vec![Code::RamExhausted]);
    assert!(short[0].hint.as_deref().unwrap().contains("persistent regions 64 KiB"), "{:?}", short[0].hint);
    // With a pinned partition, the region must fit one of the pieces left too: the pin at
    // 10 MiB leaves 10 MiB below and 12 MiB above; 8 + 8 + 6 MiB fit 24 MiB in total but
    // not in those pieces, 8 + 8 + 4 MiB do.
    let pinned = |persistent: &str| {
        format!("platform {{ ram 24 MiB }}\nhypervisor {{ reserve 8 MiB }}\npartition p {{ kind rt; image \"p.elf\"; cores 1; memory 2 MiB at 0xa00000 }}\npartition broker {{ kind rt; image \"b.elf\"; cores 0; memory 8 MiB; persistent {persistent} }}\n")
    };
    assert_eq!(located(&pinned("4 MiB")), vec![]);
    let d = diagnostics(&pinned("6 MiB"));
    assert_eq!(d.iter().map(|d| d.code).collect::<Vec<_>>(), vec![Code::RamExhausted]);
    assert!(
        d[0].message.starts_with("broker's persistent region (6 MiB) does not fit in one piece"),
        "{}",
        d[0].message
    );
}

#[test]
fn mmio_must_keep_clear_of_the_region() {
    let src = rt("persistent 64 KiB\n    mmio 0xd000f000 size 4 KiB");
    let d = diagnostics(&src);
    assert_eq!(d.iter().map(|d| d.code).collect::<Vec<_>>(), vec![Code::MmioUnmappable]);
    assert!(d[0].message.contains("persistent region"), "{}", d[0].message);
    assert!(diagnostics(&rt("persistent 64 KiB\n    mmio 0xd0010000 size 4 KiB")).is_empty());
    assert!(diagnostics(&rt("mmio 0xd0000000 size 4 KiB")).is_empty(), "no region, no conflict");
}

#[test]
fn fmt_and_show_print_them() {
    let src = rt("persistent 64 KiB\n    args \"topics=t:1\"");
    let formatted = parseltongue::fmt::format_source(&src).unwrap();
    assert!(
        formatted.contains("    persistent 64 KiB\n") && formatted.contains("    args \"topics=t:1\"\n"),
        "{formatted}"
    );
    assert_eq!(parseltongue::fmt::format_source(&formatted).unwrap(), formatted, "stable");
    let shown = parseltongue::show::render(&compile_source(&src).model.unwrap());
    assert!(shown.contains("persistent 64 KiB at 0xd0000000, kept across restarts"), "{shown}");
    assert!(shown.contains("args \"topics=t:1\""), "{shown}");
    assert!(shown.contains("persistent 64 KiB, channels"), "{shown}");
}
