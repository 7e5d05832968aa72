//! The hybrid bridge's boot decisions: where a Linux partition sees each of its channels
//! (PCI device number, register block, shared-pages BAR), as the EPT maps it and the
//! device models answer it (`hallows_vmm::channel_pci`), and how the register block
//! reports the life-cycle state of the partition at the other end; and where every Linux
//! partition sees its management function ([`linux_manage`]: a device number after the
//! channels', its mailbox clear of everything the EPT maps).
//!
//! The layout follows `hallows_abi::limits` (the bridge window and
//! [`limits::place_linux_bars`], which the checker uses for the same decisions) and
//! `hallows_abi::bridge` (identity and register block).

use alloc::vec::Vec;
use arrayvec::ArrayVec;
use core::fmt;

use hallows_abi::bootinfo::MAX_CHANNELS;
use hallows_abi::bridge::{
    DIRECTION_LINUX_READS, DIRECTION_LINUX_WRITES, PEER_BOOTING, PEER_HALTED, PEER_RESTARTING, PEER_RUNNING,
};
use hallows_abi::channel;
use hallows_abi::limits::{self, LINUX_BRIDGE_BARS_GPA, LINUX_BRIDGE_FIRST_DEVICE};
use hallows_abi::manage::mailbox::MAILBOX_BYTES;
use hallows_abi::table::{Table, CHANNEL_QUEUING, KIND_LINUX};

use crate::boot_plan::BootError;
use crate::lifecycle::State;

/// One channel of a Linux partition as its PCI function presents it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinuxChannel {
    /// Index of the channel in the table.
    pub channel: usize,
    /// PCI device number on bus 0 (function 0).
    pub device: u8,
    /// Guest-physical address of the register block (BAR0, emulated, never mapped).
    pub registers_gpa: u64,
    /// Guest-physical address of BAR2: the channel's shared pages, then (up to
    /// `shared_bar_bytes`) nothing mapped.
    pub shared_gpa: u64,
    /// Size of BAR2 (`hallows_abi::bridge::shared_bar_bytes` of the region).
    pub shared_bar_bytes: u64,
    /// Bytes of the channel's shared region (writer pages, then the reader page).
    pub region_bytes: u64,
    /// Bytes of the writer pages at the start of the region.
    pub writer_bytes: u64,
    /// `hallows_abi::table::CHANNEL_SAMPLING` or `CHANNEL_QUEUING`.
    pub kind: u8,
    /// `hallows_abi::bridge::DIRECTION_*`.
    pub direction: u32,
    pub msg_size: u32,
    /// Slots (1 for a sampling channel).
    pub depth: u32,
    /// Table index of the partition at the other end.
    pub peer: usize,
}

/// The channels of partition `p` as Linux sees them, in table order; empty for an RT
/// partition. Refuses what the re-validator refuses (RAM reaching into the bridge window,
/// BARs that do not fit it, sizes that disagree with `hallows_abi::channel`, more channels
/// than the boot info holds).
pub fn linux_channels(
    table: &Table,
    p: usize,
) -> Result<ArrayVec<LinuxChannel, MAX_CHANNELS>, BootError<'static>> {
    let entry = table.partitions.get(p).ok_or(BootError::NoPartition { partition: p })?;
    let mut out = ArrayVec::new();
    if entry.kind != KIND_LINUX || table.channels_of(p) == 0 {
        return Ok(out);
    }
    let count = table.channels_of(p);
    if count > MAX_CHANNELS {
        return Err(BootError::TooManyChannels { partition: p, count });
    }
    if !limits::linux_ram_fits_bridge(entry.ram_bytes.get()) {
        return Err(BootError::LinuxBridge { partition: p });
    }
    let mut bad_region = None;
    for (n, (ci, c)) in table.linux_channels(p).enumerate() {
        let queuing = c.kind == CHANNEL_QUEUING;
        let depth = if queuing { c.depth.get() } else { 1 };
        // Bounded before the region is computed (a hand-made table's sizes could overflow).
        let sane = channel::slots_bytes(queuing, c.msg_size.get(), depth)
            .is_some_and(|b| b <= hallows_abi::layout::CHANNEL_WINDOW_BYTES);
        let (region_bytes, writer_bytes) = if sane {
            (
                channel::region_bytes(queuing, c.msg_size.get(), depth),
                channel::writer_bytes(queuing, c.msg_size.get(), depth),
            )
        } else {
            (0, 0)
        };
        if !sane || c.bytes.get() != region_bytes {
            bad_region.get_or_insert(ci);
        }
        let linux_writes = c.source.get() as usize == p;
        out.push(LinuxChannel {
            channel: ci,
            device: LINUX_BRIDGE_FIRST_DEVICE + n as u8,
            registers_gpa: limits::linux_bridge_registers_gpa(n),
            shared_gpa: 0,
            shared_bar_bytes: 0,
            region_bytes,
            writer_bytes,
            kind: c.kind,
            direction: if linux_writes { DIRECTION_LINUX_WRITES } else { DIRECTION_LINUX_READS },
            msg_size: c.msg_size.get(),
            depth,
            peer: if linux_writes { c.destination.get() } else { c.source.get() } as usize,
        });
    }
    if let Some(channel) = bad_region {
        return Err(BootError::Channel { partition: p, channel });
    }
    let regions: ArrayVec<u64, MAX_CHANNELS> = out.iter().map(|c| c.region_bytes).collect();
    limits::place_linux_bars(regions, |n, offset, size| {
        out[n].shared_gpa = LINUX_BRIDGE_BARS_GPA + offset;
        out[n].shared_bar_bytes = size;
    })
    .map_err(|_| BootError::LinuxBridge { partition: p })?;
    Ok(out)
}

/// PCI device number (bus 0, function 0) of a Linux partition's management function: the
/// first after those its channel functions may take.
pub const MANAGE_DEVICE: u8 = LINUX_BRIDGE_FIRST_DEVICE + MAX_CHANNELS as u8;
/// Where a Linux partition's management mailbox (BAR0) goes when nothing of the partition
/// is there: right after the bridge window, so never on a channel's BAR.
pub const MANAGE_MAILBOX_GPA: u64 = limits::LINUX_BRIDGE_WINDOW_END;
/// BAR0 is a 32-bit memory BAR: the mailbox ends at or below 4 GiB.
const BAR32_END: u64 = 1 << 32;

const _: () = assert!(MANAGE_DEVICE <= 31, "bus 0 has devices 0-31");
const _: () = assert!(MANAGE_MAILBOX_GPA.is_multiple_of(MAILBOX_BYTES));

/// A Linux partition's management function as it presents it (`hallows_abi::manage::mailbox`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinuxManage {
    /// PCI device number on bus 0 (function 0): [`MANAGE_DEVICE`].
    pub device: u8,
    /// Guest-physical address of the mailbox (BAR0, `MAILBOX_BYTES`, emulated, never
    /// mapped).
    pub mailbox_gpa: u64,
}

/// Where Linux partition `p` sees its management function: device [`MANAGE_DEVICE`],
/// and the mailbox in the first `MAILBOX_BYTES`-aligned slot from [`MANAGE_MAILBOX_GPA`]
/// (or from the end of its RAM, if that is higher) that none of its MMIO ranges and none
/// of the hypervisor's MMIO touches, below 4 GiB. Nothing the partition's EPT maps is
/// there (RAM, channel BARs and MMIO ranges are all avoided), so every access traps.
/// `None` for an RT partition, and for a Linux partition that leaves no such slot (RAM
/// reaching to about 4 GiB, or MMIO ranges covering the rest): it has no management
/// function.
pub fn linux_manage(table: &Table, p: usize) -> Result<Option<LinuxManage>, BootError<'static>> {
    let entry = table.partitions.get(p).ok_or(BootError::NoPartition { partition: p })?;
    if entry.kind != KIND_LINUX {
        return Ok(None);
    }
    // Everything of the partition's map below 4 GiB the mailbox must keep clear of, past
    // what the starting point already leaves behind (RAM, the bridge window).
    let taken: Vec<(u64, u64)> = table
        .mmio_ranges
        .iter()
        .filter(|r| r.partition.get() as usize == p)
        .map(|r| (r.base.get(), r.size.get()))
        .chain(limits::HYPERVISOR_MMIO.iter().map(|r| (r.base, r.size)))
        .collect();
    let placed = first_free_slot(MANAGE_MAILBOX_GPA.max(entry.ram_bytes.get()), &taken);
    Ok(placed.map(|mailbox_gpa| LinuxManage { device: MANAGE_DEVICE, mailbox_gpa }))
}

/// The lowest `MAILBOX_BYTES`-aligned slot at or above `from`, ending at or below 4 GiB,
/// that overlaps no `(base, size)` range of `taken`.
fn first_free_slot(from: u64, taken: &[(u64, u64)]) -> Option<u64> {
    let mut base = from.checked_next_multiple_of(MAILBOX_BYTES)?;
    loop {
        let end = base.checked_add(MAILBOX_BYTES).filter(|&end| end <= BAR32_END)?;
        let in_the_way = taken
            .iter()
            .filter(|&&(start, size)| start < end && base < start.saturating_add(size))
            .map(|&(start, size)| start.saturating_add(size))
            .max();
        match in_the_way {
            None => return Some(base),
            // Past the ranges in the way: each range stops the search at most once.
            Some(past) => base = past.checked_next_multiple_of(MAILBOX_BYTES)?,
        }
    }
}

/// The function's boot-log line.
impl fmt::Display for LinuxManage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "management function is PCI 00:{:02x}.0, BAR0 {:#x} (mailbox, {} KiB)",
            self.device,
            self.mailbox_gpa,
            MAILBOX_BYTES >> 10
        )
    }
}

impl LinuxChannel {
    /// The channel's boot-log line, named `name`, with `peer` the partition at the other
    /// end: what it carries and where Linux finds it.
    pub fn describe<'a>(&'a self, name: &'a str, peer: &'a str) -> Described<'a> {
        Described { channel: self, name, peer }
    }
}

/// See [`LinuxChannel::describe`].
pub struct Described<'a> {
    channel: &'a LinuxChannel,
    name: &'a str,
    peer: &'a str,
}

impl fmt::Display for Described<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (c, name, peer) = (self.channel, self.name, self.peer);
        let linux_writes = c.direction == DIRECTION_LINUX_WRITES;
        write!(
            f,
            "channel {name} ({} {}, {} B x {}) is PCI 00:{:02x}.0, BAR0 {:#x} (registers), BAR2 {:#x} ({} KiB, {} KiB shared), ",
            if c.kind == CHANNEL_QUEUING { "queuing" } else { "sampling" },
            if linux_writes { "writer" } else { "reader" },
            c.msg_size,
            c.depth,
            c.device,
            c.registers_gpa,
            c.shared_gpa,
            c.shared_bar_bytes >> 10,
            c.region_bytes >> 10,
        )?;
        if linux_writes {
            write!(f, "Linux -> {peer}")
        } else {
            write!(f, "{peer} -> Linux")
        }
    }
}

/// The register block's `peer state` (`hallows_abi::bridge::PEER_*`) for the peer's
/// life-cycle state. A faulted peer is being judged by the health monitor: it is not
/// running, and it may come back.
pub const fn peer_state(state: State) -> u32 {
    match state {
        State::Booting => PEER_BOOTING,
        State::Running | State::Waiting => PEER_RUNNING,
        State::Faulted | State::Restarting => PEER_RESTARTING,
        State::Halted => PEER_HALTED,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hallows_abi::bridge::shared_bar_bytes;
    use hallows_abi::limits::{LINUX_BRIDGE_REGISTERS_GPA, LINUX_MAX_RAM_WITH_CHANNELS};
    use hallows_abi::table::*;
    use zerocopy::little_endian::{U16, U32, U64};

    #[test]
    fn peer_states_follow_the_life_cycle() {
        let states: alloc::vec::Vec<u32> = State::ALL.iter().map(|s| peer_state(*s)).collect();
        assert_eq!(
            states,
            [PEER_BOOTING, PEER_RUNNING, PEER_RUNNING, PEER_RESTARTING, PEER_RESTARTING, PEER_HALTED]
        );
    }

    const MIB: u64 = 1 << 20;

    /// An RT partition (core 0) and a Linux partition (core 1, `linux_ram`) joined by
    /// channels of (kind, message size, depth, Linux writes), packed in the channel window.
    fn bridge_table(linux_ram: u64, channels: &[(u8, u32, u32, bool)]) -> alloc::vec::Vec<u8> {
        bridge_model(linux_ram, channels).to_bytes()
    }

    fn bridge_model(linux_ram: u64, channels: &[(u8, u32, u32, bool)]) -> TableModel {
        let rt = PartitionModel {
            name: "rt".into(),
            kind: hallows_abi::table::KIND_RT,
            hm_actions: [3; 8],
            cores: alloc::vec![0],
            ram_bytes: 4 * MIB,
            image: "x.elf".into(),
            ..Default::default()
        };
        let linux = PartitionModel {
            name: "linux".into(),
            kind: KIND_LINUX,
            cores: alloc::vec![1],
            ram_bytes: linux_ram,
            image: "vmlinux".into(),
            ..rt.clone()
        };
        let mut offset = 0;
        let channels = channels
            .iter()
            .enumerate()
            .map(|(i, &(kind, msg_size, depth, linux_writes))| {
                let bytes = channel::region_bytes(kind == CHANNEL_QUEUING, msg_size, depth);
                let c = ChannelModel {
                    name: alloc::format!("c{i}"),
                    kind,
                    linux_view: LINUX_VIEW_SHM,
                    source: if linux_writes { 1 } else { 0 },
                    destination: if linux_writes { 0 } else { 1 },
                    msg_size,
                    depth,
                    window_offset: offset,
                    bytes,
                };
                offset += bytes;
                c
            })
            .collect();
        TableModel {
            platform: Platform {
                cores: U32::new(2),
                console_port: U16::new(0x3f8),
                hv_reserved_bytes: U64::new(8 * MIB),
                ..Default::default()
            },
            partitions: alloc::vec![rt, linux],
            channels,
            ..Default::default()
        }
    }

    #[test]
    fn channels_get_devices_registers_and_aligned_bars_in_table_order() {
        // (kind, msg, depth, linux writes)
        let bytes = bridge_table(
            64 << 20,
            &[
                (CHANNEL_SAMPLING, 16, 1, false),
                (CHANNEL_QUEUING, 64, 100, true),
                (CHANNEL_QUEUING, 8, 4, false),
            ],
        );
        let table = Table::load(&bytes).unwrap();
        let linux = table.partitions.iter().position(|p| p.kind == KIND_LINUX).unwrap();
        let got = linux_channels(&table, linux).unwrap();
        assert_eq!(got.len(), 3);
        assert_eq!(got.iter().map(|c| c.device).collect::<alloc::vec::Vec<_>>(), [1, 2, 3]);
        assert_eq!(got[0].registers_gpa, LINUX_BRIDGE_REGISTERS_GPA);
        assert_eq!(got[2].registers_gpa, LINUX_BRIDGE_REGISTERS_GPA + 0x2000);
        let sampling_region = channel::region_bytes(false, 16, 1);
        assert_eq!(got[0].region_bytes, sampling_region);
        assert_eq!(
            (got[0].shared_gpa, got[0].shared_bar_bytes),
            (LINUX_BRIDGE_BARS_GPA, shared_bar_bytes(sampling_region))
        );
        assert_eq!(got[1].region_bytes, channel::region_bytes(true, 64, 100));
        assert_eq!(got[1].shared_bar_bytes, shared_bar_bytes(got[1].region_bytes));
        assert_eq!(got[1].shared_gpa % got[1].shared_bar_bytes, 0, "naturally aligned");
        assert!(got[1].shared_gpa >= got[0].shared_gpa + got[0].shared_bar_bytes);
        assert!(got[2].shared_gpa >= got[1].shared_gpa + got[1].shared_bar_bytes);
        assert_eq!((got[0].direction, got[1].direction), (DIRECTION_LINUX_READS, DIRECTION_LINUX_WRITES));
        assert_eq!(got[0].depth, 1);
        assert_ne!(got[0].peer, linux);
        let rt = table.partitions.iter().position(|p| p.kind != KIND_LINUX).unwrap();
        assert!(linux_channels(&table, rt).unwrap().is_empty(), "RT partitions use the channel window");
        assert_eq!(
            alloc::format!("{}", got[1].describe("c1", "rt")),
            alloc::format!(
                "channel c1 (queuing writer, 64 B x 100) is PCI 00:02.0, BAR0 {:#x} (registers), BAR2 {:#x} ({} KiB, {} KiB shared), Linux -> rt",
                LINUX_BRIDGE_REGISTERS_GPA + 0x1000,
                got[1].shared_gpa,
                got[1].shared_bar_bytes >> 10,
                got[1].region_bytes >> 10
            )
        );
        assert!(alloc::format!("{}", got[0].describe("c0", "rt"))
            .starts_with("channel c0 (sampling reader, 16 B x 1) is PCI 00:01.0"));
        assert!(alloc::format!("{}", got[0].describe("c0", "rt")).ends_with("shared), rt -> Linux"));
    }

    #[test]
    fn the_linux_ept_maps_each_region_at_its_bar2_with_the_rt_rights() {
        use crate::vmx::ept::tests::VecFrames;
        use crate::vmx::ept::{MemoryType, Rights};
        let bytes =
            bridge_table(64 << 20, &[(CHANNEL_QUEUING, 64, 100, false), (CHANNEL_QUEUING, 8, 4, true)]);
        let table = Table::load(&bytes).unwrap();
        let linux = table.partitions.iter().position(|p| p.kind == KIND_LINUX).unwrap();
        let bars = linux_channels(&table, linux).unwrap();
        let mut frames = VecFrames::new(4096);
        let channels_hpa = 0x4000_0000;
        let ept =
            crate::boot_plan::partition_ept(&table, linux, 0x1000_0000, channels_hpa, None, &mut frames)
                .unwrap();
        for b in &bars {
            let entry = table.channels.get(b.channel).unwrap();
            let region_hpa = channels_hpa + entry.window_offset.get();
            let linux_reads = b.direction == DIRECTION_LINUX_READS;
            let (writer_rights, reader_rights) =
                if linux_reads { (Rights::R, Rights::RW) } else { (Rights::RW, Rights::R) };
            assert_eq!(ept.translate(&frames, b.shared_gpa), Some((region_hpa, writer_rights)));
            let reader_page = b.shared_gpa + b.writer_bytes;
            assert_eq!(
                ept.translate(&frames, reader_page),
                Some((region_hpa + b.writer_bytes, reader_rights))
            );
            // The BAR's tail past the region, and the register block, are not mapped.
            let end = b.shared_gpa + b.region_bytes;
            if end < b.shared_gpa + b.shared_bar_bytes {
                assert_eq!(ept.translate(&frames, end), None);
            }
            assert_eq!(ept.translate(&frames, b.registers_gpa), None);
            // Nothing of the RT channel window.
            assert_eq!(
                ept.translate(&frames, hallows_abi::layout::CHANNEL_WINDOW_GPA + entry.window_offset.get()),
                None
            );
        }
        let mut shared_leaves = 0;
        ept.for_each_leaf(&frames, |leaf| {
            if leaf.gpa >= LINUX_BRIDGE_BARS_GPA {
                shared_leaves += 1;
                assert_eq!((leaf.memory_type, leaf.ignore_pat), (MemoryType::WriteBack, true), "{leaf:?}");
                assert!(!leaf.rights.execute);
            } else {
                assert!(!leaf.ignore_pat, "RAM follows the guest's PAT");
            }
        });
        assert_eq!(shared_leaves as u64, bars.iter().map(|b| b.region_bytes / 4096).sum::<u64>());
    }

    #[test]
    fn linux_ram_must_end_below_the_bridge_window() {
        let bytes =
            bridge_table(LINUX_MAX_RAM_WITH_CHANNELS + (2 << 20), &[(CHANNEL_SAMPLING, 16, 1, false)]);
        let table = Table::parse(&bytes).unwrap();
        let linux = table.partitions.iter().position(|p| p.kind == KIND_LINUX).unwrap();
        assert_eq!(linux_channels(&table, linux), Err(BootError::LinuxBridge { partition: linux }));
    }

    /// `bridge_model` with MMIO ranges `(partition, base, size)` added.
    fn with_mmio(mut model: TableModel, mmio: &[(u32, u64, u64)]) -> alloc::vec::Vec<u8> {
        model.mmio_ranges =
            mmio.iter().map(|&(partition, base, size)| MmioRangeModel { partition, base, size }).collect();
        model.to_bytes()
    }

    fn manage_of(bytes: &[u8]) -> Option<LinuxManage> {
        let table = Table::load(bytes).unwrap();
        let linux = table.partitions.iter().position(|p| p.kind == KIND_LINUX).unwrap();
        linux_manage(&table, linux).unwrap()
    }

    #[test]
    fn every_linux_partition_gets_its_management_function_after_the_bridge_window() {
        use crate::vmx::ept::tests::VecFrames;
        let with_channels =
            bridge_table(64 << 20, &[(CHANNEL_SAMPLING, 16, 1, false), (CHANNEL_QUEUING, 64, 100, true)]);
        let expected = LinuxManage { device: MANAGE_DEVICE, mailbox_gpa: MANAGE_MAILBOX_GPA };
        assert_eq!(manage_of(&with_channels), Some(expected));
        assert_eq!(manage_of(&bridge_table(64 << 20, &[])), Some(expected), "channels or not");
        assert_eq!((MANAGE_DEVICE, MANAGE_MAILBOX_GPA), (17, 0xF001_0000));

        let table = Table::load(&with_channels).unwrap();
        let linux = table.partitions.iter().position(|p| p.kind == KIND_LINUX).unwrap();
        let channels = linux_channels(&table, linux).unwrap();
        for c in &channels {
            assert_ne!(c.device, MANAGE_DEVICE);
            for (base, bytes) in [(c.registers_gpa, 0x1000), (c.shared_gpa, c.shared_bar_bytes)] {
                assert!(base + bytes <= MANAGE_MAILBOX_GPA, "{base:#x}");
            }
        }
        // The EPT leaves the mailbox unmapped: accesses trap to the MMIO bus.
        let mut frames = VecFrames::new(4096);
        let ept = crate::boot_plan::partition_ept(&table, linux, 0x1000_0000, 0x4000_0000, None, &mut frames)
            .unwrap();
        for offset in [0, 0x1000, MAILBOX_BYTES - 1] {
            assert_eq!(ept.translate(&frames, MANAGE_MAILBOX_GPA + offset), None);
        }
        // RT partitions have none.
        let rt = table.partitions.iter().position(|p| p.kind != KIND_LINUX).unwrap();
        assert_eq!(linux_manage(&table, rt), Ok(None));
        assert_eq!(linux_manage(&table, 9), Err(BootError::NoPartition { partition: 9 }));
        assert_eq!(
            alloc::format!("{expected}"),
            "management function is PCI 00:11.0, BAR0 0xf0010000 (mailbox, 8 KiB)"
        );
    }

    #[test]
    fn the_mailbox_moves_past_ram_and_mmio_ranges_in_its_way() {
        // Linux RAM past the usual place (no channels: nothing else limits it).
        assert_eq!(manage_of(&bridge_table(0xF020_0000, &[])).map(|m| m.mailbox_gpa), Some(0xF020_0000));
        // The partition's own MMIO on the usual place, then right after it.
        let base = bridge_model(64 << 20, &[(CHANNEL_SAMPLING, 16, 1, false)]);
        let moved = with_mmio(base.clone(), &[(1, 0xF001_0000, 0x1000), (1, 0xF001_2000, 0x1_0000)]);
        assert_eq!(manage_of(&moved).map(|m| m.mailbox_gpa), Some(0xF002_2000));
        // Another partition's MMIO is not in Linux's map: it changes nothing.
        let elsewhere = with_mmio(base, &[(0, 0xF001_0000, 0x2000)]);
        assert_eq!(manage_of(&elsewhere).map(|m| m.mailbox_gpa), Some(MANAGE_MAILBOX_GPA));
        // The hypervisor's MMIO (I/O APIC, local APICs) is jumped over.
        assert_eq!(manage_of(&bridge_table(0xFEC0_0000, &[])).map(|m| m.mailbox_gpa), Some(0xFEC0_2000));
        assert_eq!(manage_of(&bridge_table(0xFEE0_0000, &[])).map(|m| m.mailbox_gpa), Some(0xFEF0_0000));
        // Room is found up to the last slot below 4 GiB; RAM up to 4 GiB or beyond leaves
        // none for a 32-bit BAR: no management function.
        assert_eq!(manage_of(&bridge_table(0xFFE0_0000, &[])).map(|m| m.mailbox_gpa), Some(0xFFE0_0000));
        assert_eq!(manage_of(&bridge_table(4 << 30, &[])), None);
        assert_eq!(manage_of(&bridge_table(8 << 30, &[])), None);
    }

    proptest::proptest! {
        /// Brute force over the top 16 MiB below 4 GiB: the slot found is the lowest
        /// aligned one clear of every range, and none is found only when there is none.
        #[test]
        fn the_first_free_slot_is_the_lowest_clear_one(
            from in 0xFF00_0000u64..0x1_0000_0400,
            taken in proptest::collection::vec((0xFEF0_0000u64..0x1_0000_1000, 1u64..0x40_0000), 0..6),
        ) {
            let clear = |slot: u64| taken.iter().all(|&(s, n)| s + n <= slot || slot + MAILBOX_BYTES <= s);
            let first = from.next_multiple_of(MAILBOX_BYTES);
            let brute = (first..BAR32_END).step_by(MAILBOX_BYTES as usize).find(|&slot| clear(slot));
            proptest::prop_assert_eq!(first_free_slot(from, &taken), brute);
        }
    }
}
