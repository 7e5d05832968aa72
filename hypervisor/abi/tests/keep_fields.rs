//! Version 1.3's fields: a partition's persistent region and its arguments. Written, read
//! back, read as none from a 1.2 table (whose entries end before them), and checked by the
//! re-validator like the checker checks them.

use hallows_abi::health::EventClass;
use hallows_abi::layout::PERSISTENT_WINDOW_GPA;
use hallows_abi::limits::{self, ArgsError, MmioConflict, PersistentError, ARGS_MAX, PERSISTENT_MAX_BYTES};
use hallows_abi::table::*;
use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::{FromBytes, IntoBytes};

const MIB: u64 = 1 << 20;

fn partition(name: &str, core: u32, persistent_bytes: u64, args: &str) -> PartitionModel {
    PartitionModel {
        name: name.into(),
        kind: KIND_RT,
        hm_actions: EventClass::ALL.map(|c| c.default_action() as u8),
        cores: vec![core],
        ram_bytes: 4 * MIB,
        image: "p.elf".into(),
        persistent_bytes,
        args: args.into(),
        ..Default::default()
    }
}

fn model(partitions: Vec<PartitionModel>) -> TableModel {
    TableModel {
        platform: Platform {
            cores: U32::new(4),
            console_port: U16::new(0x3f8),
            ram_bytes: U64::new(128 * MIB),
            hv_reserved_bytes: U64::new(32 * MIB),
            log_level: LOG_INFO,
            ..Default::default()
        },
        partitions,
        ..Default::default()
    }
}

/// The same table as a 1.2 writer produced it: partition entries without the 1.3 fields
/// (the strings the dropped fields referenced stay, unreferenced).
fn as_version_1_2(bytes: &[u8]) -> Vec<u8> {
    let (mut header, _) = Header::read_from_prefix(bytes).unwrap();
    let section = header.partitions;
    let (start, count, stride) =
        (section.offset.get() as usize, section.count.get() as usize, section.entry_size.get() as usize);
    let mut out = bytes[..start].to_vec();
    for i in 0..count {
        out.extend_from_slice(&bytes[start + i * stride..][..PARTITION_ENTRY_SIZE_V1_2]);
    }
    out.extend_from_slice(&bytes[start + count * stride..]);
    let removed = (count * (stride - PARTITION_ENTRY_SIZE_V1_2)) as u32;
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
    header.partitions.entry_size = U32::new(PARTITION_ENTRY_SIZE_V1_2 as u32);
    header.version_minor = U16::new(2);
    header.total_size = U32::new(out.len() as u32);
    out[..core::mem::size_of::<Header>()].copy_from_slice(header.as_bytes());
    let crc = table_checksum(&out);
    out[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_le_bytes());
    out
}

#[test]
fn fields_round_trip() {
    let m =
        model(vec![partition("broker", 0, 2 * MIB, "topics=orders:4,audit:1"), partition("plain", 1, 0, "")]);
    let bytes = m.to_bytes();
    let t = Table::load(&bytes).unwrap();
    assert_eq!(t.header.version_minor.get(), 3);
    assert_eq!(t.header.partitions.entry_size.get() as usize, PARTITION_ENTRY_SIZE);
    assert_eq!((t.persistent_bytes(0), t.args(0)), (2 * MIB, "topics=orders:4,audit:1"));
    assert_eq!((t.persistent_bytes(1), t.args(1)), (0, ""));
    assert_eq!(t.keep_fields(9), PartitionKeepFields::default(), "no such partition");
    assert_eq!(t.restart_budget(0), RestartBudget::default(), "the older fields keep their place");
    // The persistent region is placed as a block of its own, rounded to 2 MiB.
    assert_eq!(t.ram_needed(), 32 * MIB + 4 * MIB + 4 * MIB + 2 * MIB);
}

#[test]
fn version_1_2_tables_read_as_no_persistent_region_and_no_args() {
    let mut m = model(vec![partition("broker", 0, 64 << 10, "x=1")]);
    m.partitions[0].mba_percent = 30;
    let old = as_version_1_2(&m.to_bytes());
    let t = Table::load(&old).unwrap();
    assert_eq!(t.header.version_minor.get(), 2);
    assert_eq!((t.persistent_bytes(0), t.args(0)), (0, ""));
    assert_eq!(t.cache_fields(0).mba_percent, 30, "the 1.2 fields still read");
}

#[test]
fn a_bad_args_string_reference_is_refused_by_parse() {
    let bytes = model(vec![partition("a", 0, 0, "hello")]).to_bytes();
    let (header, _) = Header::read_from_prefix(&bytes[..]).unwrap();
    let args_at = header.partitions.offset.get() as usize
        + PARTITION_ENTRY_SIZE_V1_2
        + core::mem::offset_of!(PartitionKeepFields, args);
    let mut bad = bytes.clone();
    bad[args_at..args_at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    let crc = table_checksum(&bad);
    bad[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_le_bytes());
    assert_eq!(Table::parse(&bad).err(), Some(TableError::BadString { section: "partitions", index: 0 }));
}

#[test]
fn the_validator_refuses_what_the_checker_refuses() {
    let refused = |m: TableModel| Table::parse(&m.to_bytes()).unwrap().validate().err();
    let one = |persistent, args: &str| model(vec![partition("a", 0, persistent, args)]);
    assert_eq!(refused(one(PERSISTENT_MAX_BYTES, "")), None);
    assert_eq!(
        refused(one(5000, "")),
        Some(Violation::PersistentBad { partition: 0, error: PersistentError::Misaligned })
    );
    assert_eq!(
        refused(one(PERSISTENT_MAX_BYTES + 4096, "")),
        Some(Violation::PersistentBad {
            partition: 0,
            error: PersistentError::TooLarge { max: PERSISTENT_MAX_BYTES }
        })
    );
    assert_eq!(
        refused(one(0, &"a".repeat(ARGS_MAX + 1))),
        Some(Violation::ArgsBad {
            partition: 0,
            error: ArgsError::TooLong { len: ARGS_MAX + 1, max: ARGS_MAX }
        })
    );
    assert_eq!(
        refused(one(0, "a\nb")),
        Some(Violation::ArgsBad { partition: 0, error: ArgsError::NotPrintable { offset: 1 } })
    );
    // Linux partitions have neither.
    let linux = |persistent, args: &str| {
        let mut m = one(0, "");
        m.platform.ram_bytes = U64::new(0);
        m.partitions.push(PartitionModel {
            kind: KIND_LINUX,
            ram_bytes: 64 * MIB,
            image: "vmlinux".into(),
            ..partition("l", 1, persistent, args)
        });
        m
    };
    assert_eq!(refused(linux(0, "")), None);
    assert_eq!(refused(linux(4096, "")), Some(Violation::RtSettingOnLinux { partition: 1 }));
    assert_eq!(refused(linux(0, "x")), Some(Violation::RtSettingOnLinux { partition: 1 }));
    // The region counts against the platform's RAM: 32 + 4 + 2 (rounded) fits 38 MiB only.
    let mut tight = one(4096, "");
    tight.platform.ram_bytes = U64::new(37 * MIB);
    assert_eq!(
        refused(tight.clone()),
        Some(Violation::RamExhausted { needed: 38 * MIB, available: 37 * MIB })
    );
    tight.platform.ram_bytes = U64::new(38 * MIB);
    assert_eq!(refused(tight), None);
    // MMIO must keep clear of the region.
    let mut m = one(64 << 10, "");
    m.mmio_ranges = vec![MmioRangeModel { partition: 0, base: PERSISTENT_WINDOW_GPA, size: 4096 }];
    assert_eq!(
        refused(m.clone()),
        Some(Violation::MmioRangeUnmappable { index: 0, conflict: MmioConflict::InsidePersistentRegion })
    );
    m.partitions[0].persistent_bytes = 0;
    assert_eq!(refused(m), None);
    let _ = limits::check_persistent(4096);
}
