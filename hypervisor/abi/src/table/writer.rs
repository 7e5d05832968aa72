//! Writer of the partition table from an owned model (used by the Parseltongue compiler
//! and by tests). Needs the `alloc` feature.

use alloc::string::String;
use alloc::vec::Vec;

use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::{FromZeros, IntoBytes};

use super::format::*;
use super::reader::table_checksum;

/// A partition as the compiler describes it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PartitionModel {
    pub name: String,
    pub kind: u8,
    pub privileges: u32,
    pub hm_actions: [u8; 8],
    pub cores: Vec<u32>,
    pub ram_bytes: u64,
    pub pinned_base: Option<u64>,
    /// `(first way, count)`; `None`: cache ways not managed for this partition.
    pub llc_ways: Option<(u8, u8)>,
    pub image: String,
    pub initramfs: String,
    pub cmdline: String,
    /// Restarts allowed within `restart_window_ms` before a restart becomes a halt; 0: the
    /// default ([`DEFAULT_RESTART_LIMIT`]).
    pub restart_limit: u32,
    /// 0: the default ([`DEFAULT_RESTART_WINDOW_MS`]).
    pub restart_window_ms: u32,
    /// With `PLATFORM_CDP`: separate code ways `(first way, count)`.
    pub llc_code_ways: Option<(u8, u8)>,
    /// Memory bandwidth share in percent (MBA); 0: not limited.
    pub mba_percent: u8,
    /// Bytes of the persistent region (RT); 0: none.
    pub persistent_bytes: u64,
    /// The partition's arguments (RT); empty: none.
    pub args: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WindowModel {
    pub partition: u32,
    pub offset_ns: u64,
    pub duration_ns: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScheduleModel {
    pub cores: Vec<u32>,
    pub major_frame_ns: u64,
    pub windows: Vec<WindowModel>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChannelModel {
    pub name: String,
    pub kind: u8,
    pub linux_view: u8,
    pub source: u32,
    pub destination: u32,
    pub msg_size: u32,
    pub depth: u32,
    pub window_offset: u64,
    pub bytes: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IoRangeModel {
    pub partition: u32,
    pub first: u32,
    pub count: u32,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MmioRangeModel {
    pub partition: u32,
    pub base: u64,
    pub size: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PciFunctionModel {
    pub partition: u32,
    pub segment: u16,
    pub bus: u8,
    pub device: u8,
    pub function: u8,
}

/// Everything a table holds, owned.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TableModel {
    pub platform: Platform,
    pub partitions: Vec<PartitionModel>,
    pub schedules: Vec<ScheduleModel>,
    pub channels: Vec<ChannelModel>,
    pub io_ranges: Vec<IoRangeModel>,
    pub mmio_ranges: Vec<MmioRangeModel>,
    pub pci_functions: Vec<PciFunctionModel>,
}

struct Strings(Vec<u8>);

impl Strings {
    fn add(&mut self, s: &str) -> StrRef {
        let r = StrRef { offset: U32::new(self.0.len() as u32), len: U32::new(s.len() as u32) };
        self.0.extend_from_slice(s.as_bytes());
        r
    }
}

fn append<T: IntoBytes + zerocopy::Immutable>(out: &mut Vec<u8>, items: &[T]) -> Section {
    let s = Section {
        offset: U32::new(out.len() as u32),
        count: U32::new(items.len() as u32),
        entry_size: U32::new(core::mem::size_of::<T>() as u32),
    };
    for it in items {
        out.extend_from_slice(it.as_bytes());
    }
    s
}

/// Appends entries made of a `T` followed by the fields a later minor version appended
/// (`extra[i]` after `items[i]`); `entry_size` covers both.
fn append_extended<T: IntoBytes + zerocopy::Immutable, U: IntoBytes + zerocopy::Immutable>(
    out: &mut Vec<u8>,
    items: &[T],
    extra: &[U],
) -> Section {
    let s = Section {
        offset: U32::new(out.len() as u32),
        count: U32::new(items.len() as u32),
        entry_size: U32::new((core::mem::size_of::<T>() + core::mem::size_of::<U>()) as u32),
    };
    for (item, more) in items.iter().zip(extra) {
        out.extend_from_slice(item.as_bytes());
        out.extend_from_slice(more.as_bytes());
    }
    s
}

impl TableModel {
    /// Serialises the model into a complete, checksummed table.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut strings = Strings(Vec::new());
        let partitions: Vec<PartitionEntry> = self
            .partitions
            .iter()
            .map(|p| {
                let (first, count) = p.llc_ways.unwrap_or((0, 0));
                PartitionEntry {
                    name: strings.add(&p.name),
                    kind: p.kind,
                    flags: if p.pinned_base.is_some() { PFLAG_PINNED } else { 0 },
                    llc_first_way: first,
                    llc_way_count: count,
                    privileges: U32::new(p.privileges),
                    hm_actions: p.hm_actions,
                    cores: CoreSet::from_cores(p.cores.iter().copied()),
                    ram_bytes: U64::new(p.ram_bytes),
                    pinned_base: U64::new(p.pinned_base.unwrap_or(0)),
                    image: strings.add(&p.image),
                    initramfs: strings.add(&p.initramfs),
                    cmdline: strings.add(&p.cmdline),
                }
            })
            .collect();
        let appended_fields: Vec<PartitionAppendedFields> = self
            .partitions
            .iter()
            .map(|p| {
                let args = strings.add(&p.args);
                let (code_first, code_count) = p.llc_code_ways.unwrap_or((0, 0));
                PartitionAppendedFields {
                    restart: PartitionRestartFields {
                        restart_limit: U32::new(p.restart_limit),
                        restart_window_ms: U32::new(p.restart_window_ms),
                    },
                    cache: PartitionCacheFields {
                        llc_code_first_way: code_first,
                        llc_code_way_count: code_count,
                        mba_percent: p.mba_percent,
                        _reserved: [0; 5],
                    },
                    keep: PartitionKeepFields { persistent_bytes: U64::new(p.persistent_bytes), args },
                }
            })
            .collect();
        let mut windows = Vec::new();
        let schedules: Vec<ScheduleEntry> = self
            .schedules
            .iter()
            .map(|s| {
                let first = windows.len() as u32;
                windows.extend(s.windows.iter().map(|w| WindowEntry {
                    partition: U32::new(w.partition),
                    _reserved: U32::new(0),
                    offset_ns: U64::new(w.offset_ns),
                    duration_ns: U64::new(w.duration_ns),
                }));
                ScheduleEntry {
                    cores: CoreSet::from_cores(s.cores.iter().copied()),
                    major_frame_ns: U64::new(s.major_frame_ns),
                    first_window: U32::new(first),
                    window_count: U32::new(s.windows.len() as u32),
                }
            })
            .collect();
        let channels: Vec<ChannelEntry> = self
            .channels
            .iter()
            .map(|c| ChannelEntry {
                name: strings.add(&c.name),
                kind: c.kind,
                linux_view: c.linux_view,
                _reserved: [0; 2],
                source: U32::new(c.source),
                destination: U32::new(c.destination),
                msg_size: U32::new(c.msg_size),
                depth: U32::new(c.depth),
                _reserved2: U32::new(0),
                window_offset: U64::new(c.window_offset),
                bytes: U64::new(c.bytes),
            })
            .collect();
        let io: Vec<IoRangeEntry> = self
            .io_ranges
            .iter()
            .map(|r| IoRangeEntry {
                partition: U32::new(r.partition),
                first: U32::new(r.first),
                count: U32::new(r.count),
            })
            .collect();
        let mmio: Vec<MmioRangeEntry> = self
            .mmio_ranges
            .iter()
            .map(|r| MmioRangeEntry {
                partition: U32::new(r.partition),
                _reserved: U32::new(0),
                base: U64::new(r.base),
                size: U64::new(r.size),
            })
            .collect();
        let pci: Vec<PciFunctionEntry> = self
            .pci_functions
            .iter()
            .map(|f| PciFunctionEntry {
                partition: U32::new(f.partition),
                segment: U16::new(f.segment),
                bus: f.bus,
                device: f.device,
                function: f.function,
                _reserved: [0; 3],
            })
            .collect();

        let header_len = core::mem::size_of::<Header>();
        let mut out = alloc::vec![0u8; header_len];
        let mut header = Header::new_zeroed();
        header.magic = MAGIC;
        header.version_major = U16::new(VERSION_MAJOR);
        header.version_minor = U16::new(VERSION_MINOR);
        header.header_size = U32::new(header_len as u32);
        header.platform = self.platform;
        header.partitions = append_extended(&mut out, &partitions, &appended_fields);
        header.schedules = append(&mut out, &schedules);
        header.windows = append(&mut out, &windows);
        header.channels = append(&mut out, &channels);
        header.io_ranges = append(&mut out, &io);
        header.mmio_ranges = append(&mut out, &mmio);
        header.pci_functions = append(&mut out, &pci);
        header.strings = Section {
            offset: U32::new(out.len() as u32),
            count: U32::new(strings.0.len() as u32),
            entry_size: U32::new(1),
        };
        out.extend_from_slice(&strings.0);
        header.total_size = U32::new(out.len() as u32);
        out[..header_len].copy_from_slice(header.as_bytes());
        let crc = table_checksum(&out);
        out[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_le_bytes());
        out
    }
}
