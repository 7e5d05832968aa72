//! Version 1.2's cache allocation fields: the platform's CDP flag and hypervisor ways,
//! and the code ways and bandwidth share appended to partition entries. Written, read
//! back, read as zero from a 1.1 table (whose entries end before them), and checked by
//! the re-validator.

use hallows_abi::health::EventClass;
use hallows_abi::table::*;
use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::{FromBytes, IntoBytes};

#[derive(Clone, Copy, Default)]
struct Part {
    core: u32,
    ways: Option<(u8, u8)>,
    code: Option<(u8, u8)>,
    mba: u8,
}

fn model(parts: &[Part], flags: u8, hv: (u8, u8)) -> TableModel {
    TableModel {
        platform: Platform {
            cores: U32::new(4),
            console_port: U16::new(0x3f8),
            llc_ways: 12,
            hv_reserved_bytes: U64::new(32 << 20),
            log_level: LOG_INFO,
            flags,
            hv_llc_first_way: hv.0,
            hv_llc_way_count: hv.1,
            ..Default::default()
        },
        partitions: parts
            .iter()
            .enumerate()
            .map(|(i, p)| PartitionModel {
                name: format!("p{i}"),
                kind: KIND_RT,
                hm_actions: EventClass::ALL.map(|c| c.default_action() as u8),
                cores: vec![p.core],
                ram_bytes: 4 << 20,
                image: "p.elf".into(),
                llc_ways: p.ways,
                llc_code_ways: p.code,
                mba_percent: p.mba,
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

/// The same table as a 1.1 writer produced it: partition entries without the 1.2 fields.
fn as_version_1_1(bytes: &[u8]) -> Vec<u8> {
    let (mut header, _) = Header::read_from_prefix(bytes).unwrap();
    let section = header.partitions;
    let (start, count, stride) =
        (section.offset.get() as usize, section.count.get() as usize, section.entry_size.get() as usize);
    let mut out = bytes[..start].to_vec();
    for i in 0..count {
        out.extend_from_slice(&bytes[start + i * stride..][..PARTITION_ENTRY_SIZE_V1_1]);
    }
    out.extend_from_slice(&bytes[start + count * stride..]);
    let removed = (count * (stride - PARTITION_ENTRY_SIZE_V1_1)) as u32;
    for s in [
        &mut header.schedules,
        &mut header.windows,
        &mut header.channels,
        &mut header.io_ranges,
        &mut header.mmio_ranges,
        &mut header.pci_functions,
        &mut header.strings,
    ] {
        if s.offset.get() as usize > start {
            s.offset = U32::new(s.offset.get() - removed);
        }
    }
    header.partitions.entry_size = U32::new(PARTITION_ENTRY_SIZE_V1_1 as u32);
    header.version_minor = U16::new(1);
    header.platform.flags &= PLATFORM_REQUIRE_CAT;
    header.platform.hv_llc_first_way = 0;
    header.platform.hv_llc_way_count = 0;
    header.total_size = U32::new(out.len() as u32);
    out[..core::mem::size_of::<Header>()].copy_from_slice(header.as_bytes());
    let crc = table_checksum(&out);
    out[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_le_bytes());
    out
}

#[test]
fn fields_round_trip() {
    let parts = [
        Part { core: 0, ways: Some((0, 2)), code: Some((2, 2)), mba: 40 },
        Part { core: 1, ways: Some((4, 2)), ..Default::default() },
        Part { core: 2, mba: 100, ..Default::default() },
    ];
    let bytes = model(&parts, PLATFORM_CDP | PLATFORM_REQUIRE_CAT, (10, 2)).to_bytes();
    let t = Table::load(&bytes).unwrap();
    assert_eq!(t.header.version_minor.get(), VERSION_MINOR);
    assert_eq!(t.header.partitions.entry_size.get() as usize, PARTITION_ENTRY_SIZE);
    assert_eq!(t.code_ways(0), Some((2, 2)));
    assert_eq!(t.code_ways(1), None);
    assert_eq!(t.cache_fields(0).mba_percent, 40);
    assert_eq!(t.cache_fields(2).mba_percent, 100);
    assert_eq!(t.cache_fields(9), PartitionCacheFields::default(), "no such partition");
    assert_eq!(t.hypervisor_ways(), Some((10, 2)));
    assert_eq!(t.platform().flags, PLATFORM_CDP | PLATFORM_REQUIRE_CAT);
    assert_eq!(t.restart_budget(0), RestartBudget::default(), "the restart fields keep their place");
}

#[test]
fn version_1_1_tables_read_as_no_cache_fields() {
    let parts = [Part { core: 0, ways: Some((0, 2)), code: Some((2, 2)), mba: 40 }];
    let new = model(&parts, PLATFORM_CDP, (10, 2)).to_bytes();
    let old = as_version_1_1(&new);
    let t = Table::load(&old).unwrap();
    assert_eq!(t.header.version_minor.get(), 1);
    assert_eq!((t.code_ways(0), t.cache_fields(0).mba_percent, t.hypervisor_ways()), (None, 0, None));
    let p = t.partitions.get(0).unwrap();
    assert_eq!((p.llc_first_way, p.llc_way_count), (0, 2), "the 1.0 fields are unchanged");
}

#[test]
fn the_validator_checks_the_new_fields() {
    let refused = |parts: &[Part], flags: u8, hv: (u8, u8)| {
        Table::parse(&model(parts, flags, hv).to_bytes()).unwrap().validate().err()
    };
    let ways = |core, first, count| Part { core, ways: Some((first, count)), ..Default::default() };
    assert_eq!(refused(&[ways(0, 0, 2)], 0, (2, 2)), None);
    // Code ways need CDP and data ways.
    let code = Part { code: Some((2, 2)), ..ways(0, 0, 2) };
    assert_eq!(refused(&[code], 0, (0, 0)), Some(Violation::CodeWaysWithoutCdp { partition: 0 }));
    assert_eq!(refused(&[code], PLATFORM_CDP, (0, 0)), None);
    let code_only = Part { core: 0, code: Some((2, 2)), ..Default::default() };
    assert_eq!(
        refused(&[code_only], PLATFORM_CDP, (0, 0)),
        Some(Violation::CodeWaysWithoutCdp { partition: 0 })
    );
    // Code ways inside the LLC, and disjoint from what runs beside them.
    let beyond = Part { code: Some((11, 2)), ..ways(0, 0, 2) };
    assert_eq!(refused(&[beyond], PLATFORM_CDP, (0, 0)), Some(Violation::LlcOutOfRange { partition: 0 }));
    let other = ways(1, 2, 2);
    assert_eq!(
        refused(&[code, other], PLATFORM_CDP, (0, 0)),
        Some(Violation::LlcOverlap { first: 0, second: 1 })
    );
    // Bandwidth share.
    let share = |mba| Part { mba, ..ways(0, 0, 2) };
    assert_eq!(refused(&[share(100)], 0, (0, 0)), None);
    assert_eq!(refused(&[share(101)], 0, (0, 0)), Some(Violation::MbaPercentBad { partition: 0 }));
    // The hypervisor's ways inside the LLC.
    assert_eq!(refused(&[ways(0, 0, 2)], 0, (11, 2)), Some(Violation::HypervisorWaysBad));
}

#[test]
fn the_machine_check_counts_code_and_hypervisor_ways() {
    let mut m =
        model(&[Part { core: 0, ways: Some((0, 2)), code: Some((8, 2)), mba: 0 }], PLATFORM_CDP, (0, 0));
    m.platform.llc_ways = 0;
    let bytes = m.to_bytes();
    let t = Table::load(&bytes).unwrap();
    let facts = |ways| MachineFacts { cores: 4, ram_bytes: 1 << 30, cat: Some((ways, 1)) };
    assert_eq!(
        t.validate_against(&facts(9)),
        Err(MachineMismatch::TooFewCacheWays { needed: 10, present: 9 })
    );
    assert_eq!(t.validate_against(&facts(10)), Ok(()));
    m.platform.hv_llc_first_way = 10;
    m.platform.hv_llc_way_count = 2;
    let bytes = m.to_bytes();
    let t = Table::load(&bytes).unwrap();
    assert_eq!(
        t.validate_against(&facts(11)),
        Err(MachineMismatch::TooFewCacheWays { needed: 12, present: 11 })
    );
}
