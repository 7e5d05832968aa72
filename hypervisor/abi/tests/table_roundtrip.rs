//! Round-trip and corruption tests of the binary table.

use hallows_abi::health::{Action, EventClass};
use hallows_abi::table::*;
use zerocopy::little_endian::{U16, U32, U64};

fn actions() -> [u8; 8] {
    EventClass::ALL.map(|c| c.default_action() as u8)
}

fn demo() -> TableModel {
    TableModel {
        platform: Platform {
            cores: U32::new(4),
            console_port: U16::new(0x3f8),
            llc_ways: 12,
            cat_min_ways: 1,
            ram_bytes: U64::new(1 << 30),
            hv_reserved_bytes: U64::new(32 << 20),
            log_level: LOG_INFO,
            ..Default::default()
        },
        partitions: vec![
            PartitionModel {
                name: "hello".into(),
                kind: KIND_RT,
                hm_actions: actions(),
                cores: vec![1],
                ram_bytes: 4 << 20,
                llc_ways: Some((0, 2)),
                image: "parts/hello.elf".into(),
                ..Default::default()
            },
            PartitionModel {
                name: "periodic".into(),
                kind: KIND_RT,
                hm_actions: actions(),
                cores: vec![2],
                ram_bytes: 4 << 20,
                llc_ways: Some((2, 2)),
                image: "parts/periodic.elf".into(),
                ..Default::default()
            },
            PartitionModel {
                name: "logger".into(),
                kind: KIND_RT,
                privileges: PRIV_QUERY,
                hm_actions: actions(),
                cores: vec![2],
                ram_bytes: 4 << 20,
                llc_ways: Some((2, 2)),
                image: "parts/logger.elf".into(),
                ..Default::default()
            },
        ],
        schedules: vec![ScheduleModel {
            cores: vec![2],
            major_frame_ns: 10_000_000,
            windows: vec![
                WindowModel { partition: 1, offset_ns: 0, duration_ns: 5_000_000 },
                WindowModel { partition: 2, offset_ns: 5_000_000, duration_ns: 5_000_000 },
            ],
        }],
        channels: vec![ChannelModel {
            name: "ticks".into(),
            kind: CHANNEL_QUEUING,
            linux_view: LINUX_VIEW_NONE,
            source: 1,
            destination: 2,
            msg_size: 64,
            depth: 8,
            window_offset: 0,
            bytes: hallows_abi::channel::region_bytes(true, 64, 8),
        }],
        io_ranges: vec![IoRangeModel { partition: 0, first: 0x2f8, count: 8 }],
        mmio_ranges: vec![MmioRangeModel { partition: 0, base: 0xfe00_0000, size: 0x1000 }],
        pci_functions: Vec::new(),
    }
}

#[test]
fn round_trip_preserves_everything() {
    let model = demo();
    let bytes = model.to_bytes();
    let t = Table::load(&bytes).expect("valid table");
    assert_eq!(t.partitions.len(), 3);
    let p = t.partitions.get(1).unwrap();
    assert_eq!(t.text(p.name), "periodic");
    assert_eq!(t.text(p.image), "parts/periodic.elf");
    assert!(p.cores.contains(2) && !p.cores.contains(1));
    assert_eq!(p.hm_actions[EventClass::DeadlineMiss as usize], Action::Log as u8);
    let s = t.schedules.get(0).unwrap();
    let w: Vec<_> = t.schedule_windows(s).map(|w| (w.partition.get(), w.offset_ns.get())).collect();
    assert_eq!(w, vec![(1, 0), (2, 5_000_000)]);
    assert_eq!(t.channels.get(0).unwrap().depth.get(), 8);
    assert_eq!(t.partition_index("logger"), Some(2));
    assert!(!t.may_co_run(1, 2));
    assert!(t.may_co_run(0, 1));
    let machine = MachineFacts { cores: 4, ram_bytes: 1 << 30, cat: None };
    assert_eq!(t.validate_against(&machine), Ok(()));
    let small = MachineFacts { cores: 2, ..machine };
    assert_eq!(t.validate_against(&small), Err(MachineMismatch::TooFewCores { needed: 4, present: 2 }));
}

#[test]
fn every_flipped_bit_is_caught() {
    let bytes = demo().to_bytes();
    for bit in 0..bytes.len() * 8 {
        let mut b = bytes.clone();
        b[bit / 8] ^= 1 << (bit % 8);
        assert!(Table::parse(&b).is_err(), "bit {bit} flip went unnoticed");
    }
}

#[test]
fn truncation_and_version_are_reported() {
    let bytes = demo().to_bytes();
    for len in [0, 10, 100, bytes.len() - 1] {
        match Table::parse(&bytes[..len]) {
            Err(TableError::Truncated { .. }) => {}
            other => panic!("len {len}: {:?}", other.err()),
        }
    }
    let mut b = bytes.clone();
    b[8] = 2; // major version 2
    assert_eq!(
        Table::parse(&b).err(),
        Some(TableError::UnsupportedVersion { major: 2, minor: VERSION_MINOR })
    );
    let mut b = bytes.clone();
    b[0] = b'X';
    assert_eq!(Table::parse(&b).err(), Some(TableError::BadMagic));
}

#[test]
fn validator_rejects_shared_core_without_schedule() {
    let mut m = demo();
    m.schedules.clear();
    let bytes = m.to_bytes();
    let t = Table::parse(&bytes).unwrap();
    assert_eq!(t.validate(), Err(Violation::CoreShared { core: 2, first: 1, second: 2 }));
}

#[test]
fn validator_rejects_overlapping_windows_and_cache() {
    let mut m = demo();
    m.schedules[0].windows[1].offset_ns = 4_000_000;
    let bytes = m.to_bytes();
    assert_eq!(
        Table::parse(&bytes).unwrap().validate(),
        Err(Violation::WindowOverlap { schedule: 0, window: 1 })
    );
    let mut m = demo();
    m.partitions[0].llc_ways = Some((1, 2));
    let bytes = m.to_bytes();
    assert_eq!(Table::parse(&bytes).unwrap().validate(), Err(Violation::LlcOverlap { first: 0, second: 1 }));
}

/// Every rule the boot path depends on, refused by the re-validator on a table written
/// without the checker.
#[test]
fn validator_refuses_what_the_boot_path_cannot_do() {
    use hallows_abi::limits::{CmdlineError, FileNameError, MmioConflict};
    let refuse = |m: TableModel| Table::parse(&m.to_bytes()).unwrap().validate().unwrap_err();
    // Any register of the console UART, with the console at its default or moved.
    for port in 0x3f8..0x400 {
        let mut m = demo();
        m.io_ranges[0] = IoRangeModel { partition: 0, first: port, count: 1 };
        assert_eq!(refuse(m), Violation::IoRangeConsole { index: 0 }, "port {port:#x}");
    }
    let mut m = demo();
    m.platform.console_port = 0.into();
    m.io_ranges[0] = IoRangeModel { partition: 0, first: 0x3f0, count: 0x10 };
    assert_eq!(refuse(m), Violation::IoRangeConsole { index: 0 });
    let mut m = demo();
    m.platform.console_port = 0x2f8.into();
    assert_eq!(refuse(m), Violation::IoRangeConsole { index: 0 }, "COM2 is now the console");
    let mut m = demo();
    m.platform.console_port = 0xfffc.into();
    assert_eq!(refuse(m), Violation::ConsolePortBad);
    for (first, count) in [(0xcf8, 8), (0xcf9, 1), (0x20, 2), (0xa1, 1), (0x8900, 1)] {
        let mut m = demo();
        m.io_ranges[0] = IoRangeModel { partition: 0, first, count };
        assert_eq!(refuse(m), Violation::IoRangeHypervisor { index: 0 }, "{first:#x}");
    }
    // PCI functions: described by the format, implemented by nothing.
    let mut m = demo();
    m.pci_functions = vec![PciFunctionModel { partition: 0, segment: 0, bus: 0, device: 3, function: 0 }];
    assert_eq!(refuse(m), Violation::PciUnsupported { index: 0 });
    // Cache ways whose end passes 255 (a u8 would wrap).
    let mut m = demo();
    m.platform.llc_ways = 0;
    m.partitions[0].llc_ways = Some((200, 100));
    assert_eq!(refuse(m), Violation::LlcOutOfRange { partition: 0 });
    // Names the boot info would cut; too many channels for the boot info.
    let mut m = demo();
    m.partitions[0].name = "p".repeat(33);
    assert_eq!(refuse(m), Violation::NameTooLong { partition: 0 });
    let mut m = demo();
    m.channels[0].name = "c".repeat(33);
    assert_eq!(refuse(m), Violation::ChannelNameBad { channel: 0 });
    let mut m = demo();
    let first = m.channels[0].clone();
    m.channels = (0..17u64)
        .map(|i| ChannelModel { name: format!("c{i}"), window_offset: i * first.bytes, ..first.clone() })
        .collect();
    assert!(matches!(refuse(m), Violation::TooManyChannels { .. }));
    let mut m = demo();
    m.channels.push(ChannelModel { window_offset: m.channels[0].bytes, ..m.channels[0].clone() });
    assert_eq!(refuse(m), Violation::ChannelDuplicateName { first: 0, second: 1 });
    // A region larger than its sizes say: the EPT could not map it.
    let mut m = demo();
    m.channels[0].bytes += 0x1000;
    assert_eq!(refuse(m), Violation::ChannelBadRegion { channel: 0 });
    // Stacks of many vCPUs in little RAM.
    let mut m = demo();
    m.platform.cores = 64.into();
    m.partitions[0].cores = (3..64).collect();
    m.partitions[0].ram_bytes = 4 << 20;
    assert_eq!(refuse(m), Violation::StacksLeaveNoRoom { partition: 0 });
    // File names outside \rusthallows\ or not FAT names.
    for (name, error) in [
        ("../x.elf", FileNameError::DotComponent),
        ("/x.elf", FileNameError::Absolute),
        ("a:b.elf", FileNameError::BadCharacter { ch: ':' }),
    ] {
        let mut m = demo();
        m.partitions[1].image = name.into();
        assert_eq!(refuse(m), Violation::FileNameBad { partition: 1, error });
    }
    // MMIO inside the partition's own RAM or its channel window.
    let mut m = demo();
    m.mmio_ranges[0].base = 0x10_0000;
    assert_eq!(refuse(m), Violation::MmioRangeUnmappable { index: 0, conflict: MmioConflict::InsideRam });
    let mut m = demo();
    m.mmio_ranges[0].partition = 1;
    m.mmio_ranges[0].base = hallows_abi::layout::CHANNEL_WINDOW_GPA;
    assert_eq!(
        refuse(m),
        Violation::MmioRangeUnmappable { index: 0, conflict: MmioConflict::InsideChannelWindow }
    );
    // Linux: command line budget and characters, scheduled cores, channels, RT fields.
    let linux = |cmdline: &str, cores: Vec<u32>| PartitionModel {
        name: "linux".into(),
        kind: KIND_LINUX,
        hm_actions: [3; 8],
        cores,
        ram_bytes: 64 << 20,
        image: "vmlinux".into(),
        cmdline: cmdline.into(),
        ..Default::default()
    };
    let mut m = demo();
    m.platform.cores = 5.into();
    m.partitions.push(linux(&"x".repeat(hallows_abi::limits::LINUX_CMDLINE_BUDGET + 1), vec![4]));
    assert!(matches!(refuse(m), Violation::CmdlineBad { partition: 3, error: CmdlineError::TooLong { .. } }));
    let mut m = demo();
    m.platform.cores = 5.into();
    m.partitions.push(linux("a\nb", vec![4]));
    assert_eq!(
        refuse(m),
        Violation::CmdlineBad { partition: 3, error: CmdlineError::ControlCharacter { offset: 1 } }
    );
    let mut m = demo();
    m.partitions.push(linux("", vec![2]));
    m.schedules[0].windows[1].duration_ns = 4_000_000;
    m.schedules[0].windows.push(WindowModel { partition: 3, offset_ns: 9_000_000, duration_ns: 1_000_000 });
    assert_eq!(refuse(m), Violation::LinuxOnScheduledCore { partition: 3, core: 2 });
    let mut m = demo();
    m.platform.cores = 5.into();
    m.partitions.push(linux("", vec![4]));
    m.channels[0].destination = 3;
    m.channels[0].linux_view = LINUX_VIEW_TTY;
    assert_eq!(refuse(m), Violation::ChannelBadLinuxView { channel: 0 }, "no hypervisor implements tty");
    let mut m = demo();
    m.platform.cores = 5.into();
    m.platform.ram_bytes = 0.into();
    m.partitions.push(PartitionModel {
        ram_bytes: hallows_abi::limits::LINUX_MAX_RAM_WITH_CHANNELS + (2 << 20),
        ..linux("", vec![4])
    });
    m.channels[0].destination = 3;
    m.channels[0].linux_view = LINUX_VIEW_SHM;
    assert_eq!(refuse(m), Violation::LinuxBridgeOverlapsRam { partition: 3 });
    // The same channel with a Linux partition whose RAM ends below the bridge window.
    let mut m = demo();
    m.platform.cores = 5.into();
    m.partitions.push(linux("", vec![4]));
    m.channels[0].destination = 3;
    m.channels[0].linux_view = LINUX_VIEW_SHM;
    assert_eq!(Table::parse(&m.to_bytes()).unwrap().validate(), Ok(()), "Linux at the reader's end");
    let mut m = demo();
    m.platform.cores = 5.into();
    m.platform.ram_bytes = 0.into();
    m.partitions.push(PartitionModel {
        ram_bytes: hallows_abi::limits::LINUX_MAX_RAM + (2 << 20),
        ..linux("", vec![4])
    });
    assert_eq!(refuse(m), Violation::RamTooLarge { partition: 3 });
    let mut m = demo();
    m.partitions[0].cmdline = "quiet".into();
    assert_eq!(refuse(m), Violation::LinuxSettingOnRt { partition: 0 });
}

#[test]
fn machine_check_compares_cache_ways_without_wrapping() {
    let mut m = demo();
    m.platform.llc_ways = 0;
    m.partitions[0].llc_ways = Some((250, 5));
    let bytes = m.to_bytes();
    let t = Table::load(&bytes).unwrap();
    let machine = MachineFacts { cores: 4, ram_bytes: 1 << 30, cat: Some((11, 1)) };
    assert_eq!(
        t.validate_against(&machine),
        Err(MachineMismatch::TooFewCacheWays { needed: 255, present: 11 })
    );
}
