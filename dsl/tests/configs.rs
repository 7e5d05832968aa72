//! Every table in configs/ passes `check`, compiles, and loads in the hypervisor's reader
//! and re-validator; and the re-validator refuses what the checker refuses.

mod common;

use std::path::Path;

use hallows_abi::table::{MachineFacts, MachineMismatch, Table, TableError};
use parseltongue::compile::{compile_source, to_model};
use parseltongue::parser::parse;

use common::configs;

fn compile(path: &Path) -> Vec<u8> {
    let source = std::fs::read_to_string(path).unwrap();
    let compiled = compile_source(&source);
    assert!(compiled.diagnostics.is_empty(), "{}: {:?}", path.display(), compiled.diagnostics);
    compiled.model.expect("model").to_bytes()
}

#[test]
fn every_config_checks_compiles_and_loads() {
    let all = configs();
    assert!(all.len() >= 6, "{all:?}");
    for path in all {
        let bytes = compile(&path);
        if let Err(e) = Table::load(&bytes) {
            panic!("{}: {e}", path.display());
        }
    }
}

fn config(name: &str) -> Vec<u8> {
    compile(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs").join(name))
}

#[test]
fn demo_has_what_the_other_engineers_rely_on() {
    let bytes = config("demo.pt");
    let t = Table::load(&bytes).unwrap();
    assert_eq!(t.platform().cores.get(), 4);
    assert_eq!(t.platform().hv_reserved_bytes.get(), 32 << 20);
    let names: Vec<&str> = t.partitions.iter().map(|p| t.text(p.name)).collect();
    assert_eq!(names, ["hello", "sensor", "logger", "linux"]);
    let hello = t.partitions.get(0).unwrap();
    assert_eq!(t.text(hello.image), "hello.elf");
    assert!(hello.cores.contains(0));
    let linux = t.partitions.get(3).unwrap();
    assert_eq!(t.text(linux.image), "vmlinux");
    assert_eq!(t.text(linux.initramfs), "initramfs.cpio");
    // `rhtest=demo`: the initramfs's /init runs tests-initramfs/demo.sh (rhlink at work).
    assert_eq!(t.text(linux.cmdline), "console=ttyS0 earlyprintk=serial,ttyS0 panic=-1 rhtest=demo");
    assert_eq!(linux.cores.iter().collect::<Vec<_>>(), [2, 3]);
    assert_eq!(linux.ram_bytes.get(), 256 << 20);
    let s = t.schedules.get(0).unwrap();
    assert_eq!(s.major_frame_ns.get(), 10_000_000);
    let windows: Vec<_> =
        t.schedule_windows(s).map(|w| (w.partition.get(), w.offset_ns.get(), w.duration_ns.get())).collect();
    assert_eq!(windows, [(1, 0, 4_000_000), (2, 5_000_000, 4_000_000)]);
    let c = t.channels.get(0).unwrap();
    assert_eq!(
        (t.text(c.name), c.source.get(), c.destination.get(), c.msg_size.get(), c.depth.get()),
        ("readings", 1, 2, 64, 16)
    );
    assert_eq!(c.bytes.get(), hallows_abi::channel::region_bytes(true, 64, 16));
    // The hybrid bridge: the sensor's readings also go to Linux, and Linux's commands to
    // hello, which answers them (names as the demo's Linux script uses them).
    let bridge: Vec<_> = t
        .channels
        .iter()
        .skip(1)
        .map(|c| (t.text(c.name), c.kind, c.source.get(), c.destination.get()))
        .collect();
    use hallows_abi::table::{CHANNEL_QUEUING, CHANNEL_SAMPLING};
    assert_eq!(
        bridge,
        [
            ("sensor_feed", CHANNEL_SAMPLING, 1, 3),
            ("commands", CHANNEL_QUEUING, 3, 0),
            ("answers", CHANNEL_SAMPLING, 0, 3)
        ]
    );
    let bochs = MachineFacts { cores: 4, ram_bytes: 1 << 30, cat: None };
    assert_eq!(t.validate_against(&bochs), Ok(()));
}

#[test]
fn emulator_tables_fit_or_are_refused_as_intended() {
    let two_core_machine = MachineFacts { cores: 2, ram_bytes: 512 << 20, cat: None };
    for name in ["tests/two-cores.pt", "tests/rogue.pt", "tests/scheduled.pt"] {
        let bytes = config(name);
        let t = Table::load(&bytes).unwrap();
        assert_eq!(t.validate_against(&two_core_machine), Ok(()), "{name}");
        assert_eq!(t.platform().ram_bytes.get(), 0, "{name}: emulator tables use `ram auto`");
    }
    let bytes = config("tests/rogue.pt");
    let t = Table::load(&bytes).unwrap();
    let rogue = t.partitions.get(1).unwrap();
    assert_eq!(t.text(rogue.image), "rogue.elf");
    assert_eq!(rogue.hm_actions[0], hallows_abi::health::Action::RestartPartition as u8);
    let bytes = config("tests/too-many-cores.pt");
    let t = Table::load(&bytes).unwrap();
    assert_eq!(
        t.validate_against(&two_core_machine),
        Err(MachineMismatch::TooFewCores { needed: 64, present: 2 })
    );
}

#[test]
fn server_example_needs_cat_and_its_cores() {
    let bytes = config("examples/two-socket-server.pt");
    let t = Table::load(&bytes).unwrap();
    let machine = MachineFacts { cores: 128, ram_bytes: 512 << 30, cat: Some((11, 2)) };
    assert_eq!(t.validate_against(&machine), Ok(()));
    assert_eq!(t.validate_against(&MachineFacts { cat: None, ..machine }), Err(MachineMismatch::NoCat));
    assert!(t.pci_functions.is_empty() && t.mmio_ranges.len() == 3);
    assert!(t.channels.iter().all(|c| c.linux_view == hallows_abi::table::LINUX_VIEW_NONE));
}

#[test]
fn corrupted_compiled_tables_are_refused_clearly() {
    let bytes = config("demo.pt");
    let mut flipped = bytes.clone();
    flipped[bytes.len() / 2] ^= 0x10;
    assert!(matches!(Table::load(&flipped), Err(TableError::ChecksumMismatch { .. })));
    assert!(matches!(Table::load(&bytes[..bytes.len() - 3]), Err(TableError::Truncated { .. })));
    let mut version = bytes.clone();
    version[8] = 9;
    assert!(matches!(Table::load(&version), Err(TableError::UnsupportedVersion { major: 9, .. })));
}

/// Codes whose example compiles (ignoring the checker) into a table the re-validator can
/// judge; each must be refused. Excluded: syntax codes (nothing to compile), warnings, and PT0109/PT0504/PT0704/
/// PT0804 where the compiler drops or normalises what the checker objects to.
const VALIDATED: &[&str] = &[
    "PT0201", "PT0202", "PT0204", "PT0301", "PT0302", "PT0303", "PT0304", "PT0305", "PT0306", "PT0307",
    "PT0308", "PT0309", "PT0310", "PT0401", "PT0402", "PT0403", "PT0404", "PT0405", "PT0406", "PT0407",
    "PT0408", "PT0501", "PT0502", "PT0503", "PT0601", "PT0602", "PT0603", "PT0604", "PT0605", "PT0606",
    "PT0607", "PT0701", "PT0702", "PT0703", "PT0705", "PT0801", "PT0802", "PT0803",
    // The rules the boot path depends on (issue 8).
    "PT0205", "PT0312", "PT0409", "PT0608", "PT0609", "PT0610", "PT0611", "PT0706", "PT0707", "PT0805",
    "PT0806",
];

#[test]
fn the_hypervisor_refuses_what_the_checker_refuses() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/errors");
    for code in VALIDATED {
        let source = std::fs::read_to_string(dir.join(format!("{code}.pt"))).unwrap();
        let bytes = to_model(&parse(&source).file).to_bytes();
        assert!(Table::parse(&bytes).is_ok(), "{code}: the writer's output must always parse");
        assert!(
            Table::load(&bytes).is_err(),
            "{code}: the re-validator accepted a table the checker rejects"
        );
    }
}

#[test]
fn documented_structure_sizes_hold() {
    use hallows_abi::table::*;
    use std::mem::size_of;
    assert_eq!(size_of::<Header>(), 152);
    assert_eq!(size_of::<Platform>(), 32);
    assert_eq!(size_of::<PartitionEntry>(), 96);
    assert_eq!(size_of::<ScheduleEntry>(), 48);
    assert_eq!(size_of::<WindowEntry>(), 24);
    assert_eq!(size_of::<ChannelEntry>(), 48);
    assert_eq!(size_of::<IoRangeEntry>(), 12);
    assert_eq!(size_of::<MmioRangeEntry>(), 24);
    assert_eq!(size_of::<PciFunctionEntry>(), 12);
}

#[test]
fn formatting_a_config_keeps_its_meaning() {
    for path in configs() {
        let source = std::fs::read_to_string(&path).unwrap();
        let formatted = parseltongue::fmt::format_source(&source).expect("configs parse");
        let again = compile_source(&formatted);
        assert!(again.diagnostics.is_empty(), "{}: {:?}", path.display(), again.diagnostics);
        assert_eq!(again.model.unwrap().to_bytes(), compile(&path), "{}", path.display());
        assert_eq!(parseltongue::fmt::format_source(&formatted).as_deref(), Some(formatted.as_str()));
        let comments = |s: &str| s.matches('#').count();
        assert_eq!(comments(&formatted), comments(&source), "{}: comments lost", path.display());
    }
}

#[test]
fn configs_are_in_canonical_layout() {
    for path in configs() {
        let source = std::fs::read_to_string(&path).unwrap();
        let formatted = parseltongue::fmt::format_source(&source).unwrap();
        assert!(formatted == source, "{} is not formatted: run `parseltongue fmt --write`", path.display());
    }
}

#[test]
fn readme_example_table_checks_clean() {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let section = &readme[readme.find("## A first table").expect("README has the example")..];
    let start = section.find("```text\n").unwrap() + 8;
    let end = start + section[start..].find("```").unwrap();
    let compiled = compile_source(&section[start..end]);
    assert!(compiled.diagnostics.is_empty(), "{:?}", compiled.diagnostics);
}
