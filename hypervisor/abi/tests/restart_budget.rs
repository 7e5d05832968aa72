//! The restart budget appended to partition entries in version 1.1: written, read back,
//! defaulted for version 1.0 tables (whose partition entries are 8 bytes shorter) and
//! range-checked by the re-validator.

use hallows_abi::health::EventClass;
use hallows_abi::table::*;
use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::{FromBytes, IntoBytes};

fn model(budgets: &[(u32, u32)]) -> TableModel {
    let partitions = budgets
        .iter()
        .enumerate()
        .map(|(i, &(restart_limit, restart_window_ms))| PartitionModel {
            name: format!("p{i}"),
            kind: KIND_RT,
            hm_actions: EventClass::ALL.map(|c| c.default_action() as u8),
            cores: vec![i as u32],
            ram_bytes: 4 << 20,
            image: "p.elf".into(),
            restart_limit,
            restart_window_ms,
            ..Default::default()
        })
        .collect();
    TableModel {
        platform: Platform {
            cores: U32::new(4),
            console_port: U16::new(0x3f8),
            hv_reserved_bytes: U64::new(32 << 20),
            log_level: LOG_INFO,
            ..Default::default()
        },
        partitions,
        ..Default::default()
    }
}

/// Rewrites a version 1.1 table as version 1.0 wrote it: partition entries without the
/// restart fields, later sections moved up, header and checksum updated.
fn as_version_1_0(bytes: &[u8]) -> Vec<u8> {
    let (mut header, _) = Header::read_from_prefix(bytes).unwrap();
    let section = header.partitions;
    let (start, count, stride) =
        (section.offset.get() as usize, section.count.get() as usize, section.entry_size.get() as usize);
    let mut out = bytes[..start].to_vec();
    for i in 0..count {
        out.extend_from_slice(&bytes[start + i * stride..][..PARTITION_ENTRY_SIZE_V1_0]);
    }
    out.extend_from_slice(&bytes[start + count * stride..]);
    let removed = (count * (stride - PARTITION_ENTRY_SIZE_V1_0)) as u32;
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
    header.partitions.entry_size = U32::new(PARTITION_ENTRY_SIZE_V1_0 as u32);
    header.version_minor = U16::new(0);
    header.total_size = U32::new(out.len() as u32);
    out[..core::mem::size_of::<Header>()].copy_from_slice(header.as_bytes());
    let crc = table_checksum(&out);
    out[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_le_bytes());
    out
}

#[test]
fn budgets_round_trip_and_default_to_zero() {
    let bytes = model(&[(0, 0), (5, 2_500), (16, 3_600_000)]).to_bytes();
    let t = Table::load(&bytes).unwrap();
    assert_eq!((t.header.version_major.get(), t.header.version_minor.get()), (VERSION_MAJOR, VERSION_MINOR));
    assert_eq!(t.header.partitions.entry_size.get() as usize, PARTITION_ENTRY_SIZE);
    assert_eq!(t.restart_budget(0), RestartBudget { limit: 0, window_ms: 0 });
    assert_eq!(t.restart_budget(1), RestartBudget { limit: 5, window_ms: 2_500 });
    assert_eq!(t.restart_budget(2), RestartBudget { limit: 16, window_ms: 3_600_000 });
    assert_eq!(t.restart_budget(3), RestartBudget::default(), "no such partition");
    assert_eq!(
        (t.restart_budget(0).effective_limit(), t.restart_budget(0).effective_window_ms()),
        (DEFAULT_RESTART_LIMIT, DEFAULT_RESTART_WINDOW_MS)
    );
    assert_eq!(t.text(t.partitions.get(2).unwrap().name), "p2", "entries after the first are not shifted");
}

#[test]
fn version_1_0_tables_are_read_with_default_budgets() {
    let new = model(&[(5, 2_500), (7, 100)]).to_bytes();
    let old = as_version_1_0(&new);
    assert_eq!(old.len(), new.len() - 2 * (PARTITION_ENTRY_SIZE - PARTITION_ENTRY_SIZE_V1_0));
    let (t_old, t_new) = (Table::load(&old).unwrap(), Table::load(&new).unwrap());
    assert_eq!(t_old.header.version_minor.get(), 0);
    for i in 0..2 {
        assert_eq!(t_old.restart_budget(i), RestartBudget::default());
        let (a, b) = (t_old.partitions.get(i).unwrap(), t_new.partitions.get(i).unwrap());
        assert_eq!(t_old.text(a.name), t_new.text(b.name));
        assert_eq!(a.cores, b.cores);
        assert_eq!(a.ram_bytes, b.ram_bytes);
    }
}

#[test]
fn entries_shorter_than_version_1_0_are_refused() {
    let old = as_version_1_0(&model(&[(0, 0)]).to_bytes());
    let (mut header, _) = Header::read_from_prefix(&old[..]).unwrap();
    header.partitions.entry_size = U32::new(PARTITION_ENTRY_SIZE_V1_0 as u32 - 8);
    let mut b = old.clone();
    b[..core::mem::size_of::<Header>()].copy_from_slice(header.as_bytes());
    let crc = table_checksum(&b);
    b[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_le_bytes());
    assert_eq!(Table::parse(&b).err(), Some(TableError::BadSection { section: "partitions" }));
}

#[test]
fn the_validator_refuses_budgets_out_of_range() {
    for (limit, window_ms) in [(0, 0), (1, 1), (16, 3_600_000), (3, 0), (0, 500)] {
        assert_eq!(
            Table::load(&model(&[(limit, window_ms)]).to_bytes()).err(),
            None,
            "{limit} per {window_ms}"
        );
    }
    for (limit, window_ms) in [(17, 0), (u32::MAX, 1_000), (3, 3_600_001), (1, u32::MAX)] {
        let bytes = model(&[(0, 0), (limit, window_ms)]).to_bytes();
        assert_eq!(
            Table::parse(&bytes).unwrap().validate(),
            Err(Violation::RestartBudgetBad { partition: 1 }),
            "{limit} per {window_ms}"
        );
    }
}
