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
                image: "\\parts\\hello.elf".into(),
                ..Default::default()
            },
            PartitionModel {
                name: "periodic".into(),
                kind: KIND_RT,
                hm_actions: actions(),
                cores: vec![2],
                ram_bytes: 4 << 20,
                llc_ways: Some((2, 2)),
                image: "\\parts\\periodic.elf".into(),
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
                image: "\\parts\\logger.elf".into(),
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
        pci_functions: vec![PciFunctionModel { partition: 0, segment: 0, bus: 0, device: 3, function: 0 }],
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
    assert_eq!(t.text(p.image), "\\parts\\periodic.elf");
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
    assert_eq!(Table::parse(&b).err(), Some(TableError::UnsupportedVersion { major: 2, minor: 0 }));
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
