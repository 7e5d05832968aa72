//! The hypervisor's boot-time decisions on a loaded table, as pure functions.
//!
//! `boot.rs` in the UEFI binary calls these to build each partition's EPT and boot-info
//! channel list, and [`plan`] runs every decision the boot path takes that does not need
//! the firmware (fit to the machine, memory placement, EPT construction, pass-through
//! I/O bitmaps, RT stacks and guest page tables, boot info, ESP file names, the Linux
//! command line) on the host. Tests run [`plan`] on every table the checker accepts: a
//! table that loads must plan, so "accepted" means "boots" (apart from the files on the
//! ESP and the images themselves, which only the real boot can read).

use alloc::vec::Vec;
use arrayvec::ArrayVec;
use core::fmt;
use zerocopy::FromZeros;

use hallows_abi::bootinfo::{fill_name, ChannelInfo, MAX_CHANNELS};
use hallows_abi::layout::{CHANNEL_WINDOW_GPA, PERSISTENT_WINDOW_GPA};
use hallows_abi::limits::{self, ArgsError, CmdlineError, FileNameError, NameError, PersistentError};
use hallows_abi::manage::mailbox::MAILBOX_BYTES;
use hallows_abi::table::{MachineFacts, MachineMismatch, Table, KIND_LINUX};

use crate::guest_paging::{check_identity_paging, PagingError};
use crate::placement::{place_table, PlacementError, Region, TablePlacement};
use crate::schedule::Window;
use crate::vmx::bitmaps::{fill_io_bitmaps, BadPortRange};
use crate::vmx::ept::{ChannelMapping, Ept, EptError, FrameAllocator, MemoryType, Rights};

/// Why the boot path would refuse a (loaded) table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BootError<'a> {
    Machine(MachineMismatch),
    Placement(PlacementError<'a>),
    /// Mapping the partition's RAM or channels failed.
    Ept {
        partition: usize,
        error: EptError,
    },
    /// Mapping MMIO range `mmio` (table index) failed.
    Mmio {
        partition: usize,
        mmio: usize,
        error: EptError,
    },
    /// A channel region whose sizes disagree with `hallows_abi::channel`.
    Channel {
        partition: usize,
        channel: usize,
    },
    /// More channels than the boot info holds.
    TooManyChannels {
        partition: usize,
        count: usize,
    },
    /// A partition or channel name the boot info would cut.
    Name {
        partition: usize,
        error: NameError,
    },
    FileName {
        partition: usize,
        error: FileNameError,
    },
    Cmdline {
        partition: usize,
        error: CmdlineError,
    },
    /// The vCPU stacks leave less than `limits::RT_MIN_IMAGE_ROOM` for the image.
    StacksLeaveNoRoom {
        partition: usize,
    },
    GuestPaging {
        partition: usize,
        error: PagingError,
    },
    IoBitmap {
        partition: usize,
        error: BadPortRange,
    },
    /// A Linux vCPU on a scheduled core (Linux runs on dedicated cores only).
    LinuxOnScheduledCore {
        partition: usize,
        core: u32,
    },
    /// Out of frames for EPT tables.
    NoFrames {
        partition: usize,
    },
    /// No partition with this index.
    NoPartition {
        partition: usize,
    },
    /// The Linux partition's cores cannot be described to it.
    LinuxCpus {
        partition: usize,
        error: crate::linux_vcpu::apic::MapError,
    },
    /// The Linux partition's channel functions do not fit its bridge window, or its RAM
    /// reaches into it (`hallows_abi::limits::LINUX_BRIDGE_BARS_GPA`).
    LinuxBridge {
        partition: usize,
    },
    /// The Linux partition's management mailbox would lie on something its EPT maps, so
    /// accesses to it would not trap (`crate::bridge::linux_manage` places it clear of
    /// everything mapped: this is the check that it did).
    ManageMailboxMapped {
        partition: usize,
        gpa: u64,
    },
    /// A persistent region or arguments on a Linux partition, or ones the boot info and
    /// the persistent window cannot hold.
    Keep {
        partition: usize,
        problem: KeepProblem,
    },
}

/// What is wrong with a partition's persistent region or arguments.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeepProblem {
    OnLinux,
    Persistent(PersistentError),
    Args(ArgsError),
}

impl fmt::Display for BootError<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Machine(e) => write!(f, "the table does not fit this machine: {e}"),
            Self::Placement(e) => write!(f, "memory placement: {e}"),
            Self::Ept { partition, error } => write!(f, "partition {partition}: EPT: {error}"),
            Self::Mmio { partition, mmio, error } => {
                write!(f, "partition {partition}: MMIO pass-through {mmio}: {error}")
            }
            Self::Channel { partition, channel } => {
                write!(f, "partition {partition}: channel {channel} has an inconsistent region")
            }
            Self::TooManyChannels { partition, count } => write!(
                f,
                "partition {partition}: {count} channels, the boot info describes at most {MAX_CHANNELS}"
            ),
            Self::Name { partition, error } => write!(f, "partition {partition}: name: {error:?}"),
            Self::FileName { partition, error } => write!(f, "partition {partition}: {error}"),
            Self::Cmdline { partition, error } => write!(f, "partition {partition}: command line: {error}"),
            Self::StacksLeaveNoRoom { partition } => {
                write!(f, "partition {partition}: its vCPU stacks leave no room for the image")
            }
            Self::GuestPaging { partition, error } => write!(f, "partition {partition}: {error}"),
            Self::IoBitmap { partition, error } => {
                write!(f, "partition {partition}: I/O pass-through {error:?}")
            }
            Self::LinuxOnScheduledCore { partition, core } => {
                write!(f, "partition {partition}: Linux on scheduled core {core}")
            }
            Self::NoFrames { partition } => write!(f, "partition {partition}: out of memory for EPT"),
            Self::NoPartition { partition } => write!(f, "no partition {partition} in the table"),
            Self::LinuxCpus { partition, error } => write!(f, "partition {partition}: {error}"),
            Self::Keep { partition, problem } => match problem {
                KeepProblem::OnLinux => write!(
                    f,
                    "partition {partition}: a persistent region or arguments on a Linux partition"
                ),
                KeepProblem::Persistent(e) => write!(f, "partition {partition}: {e}"),
                KeepProblem::Args(e) => write!(f, "partition {partition}: args: {e}"),
            },
            Self::ManageMailboxMapped { partition, gpa } => write!(
                f,
                "partition {partition}: its management mailbox at {gpa:#x} would be mapped memory"
            ),
            Self::LinuxBridge { partition } => write!(
                f,
                "partition {partition}: its channels' PCI functions do not fit its bridge window (or its RAM reaches into it)"
            ),
        }
    }
}

/// Every channel endpoint of partition `p`, as its boot info describes them. Refuses
/// what boot info would cut or drop (long names, too many channels).
pub fn channel_infos(
    table: &Table,
    p: usize,
) -> Result<ArrayVec<ChannelInfo, MAX_CHANNELS>, BootError<'static>> {
    let mut out = ArrayVec::new();
    let count = table.channels_of(p);
    if count > MAX_CHANNELS {
        return Err(BootError::TooManyChannels { partition: p, count });
    }
    for c in table.channels.iter() {
        let is_writer = c.source.get() as usize == p;
        if !is_writer && c.destination.get() as usize != p {
            continue;
        }
        let name = table.text(c.name);
        limits::check_name(name).map_err(|error| BootError::Name { partition: p, error })?;
        let mut info = ChannelInfo::new_zeroed();
        info.name_len = fill_name(&mut info.name, name);
        info.kind = c.kind as u32;
        info.is_writer = is_writer as u32;
        info.msg_size = c.msg_size.get();
        info.depth = c.depth.get();
        info.gpa = CHANNEL_WINDOW_GPA + c.window_offset.get();
        info.bytes = c.bytes.get();
        out.push(info);
    }
    Ok(out)
}

/// What partition `p` keeps across restarts and is told at entry, as its boot info gives
/// it: the persistent region `(guest-physical base, bytes)` (`(0, 0)` when none) and its
/// arguments. Refuses both on a Linux partition, and what the persistent window or the
/// boot info's field cannot hold.
pub fn keep_info<'t>(table: &Table<'t>, p: usize) -> Result<((u64, u64), &'t str), BootError<'static>> {
    let entry = table.partitions.get(p).ok_or(BootError::NoPartition { partition: p })?;
    let refuse = |problem| BootError::Keep { partition: p, problem };
    let (bytes, args) = (table.persistent_bytes(p), table.args(p));
    if entry.kind == KIND_LINUX && (bytes != 0 || !args.is_empty()) {
        return Err(refuse(KeepProblem::OnLinux));
    }
    if bytes != 0 {
        limits::check_persistent(bytes).map_err(|e| refuse(KeepProblem::Persistent(e)))?;
    }
    limits::check_args(args).map_err(|e| refuse(KeepProblem::Args(e)))?;
    let region = if bytes == 0 { (0, 0) } else { (PERSISTENT_WINDOW_GPA, bytes) };
    Ok((region, args))
}

/// Builds partition `i`'s EPT: RAM at `ram_hpa`, its persistent region at
/// `persistent_hpa` (read-write, write-back, at [`PERSISTENT_WINDOW_GPA`]), its channel
/// regions inside the channel block at `channels_hpa`, and its MMIO ranges (uncacheable,
/// at guest = host physical).
/// An RT partition sees its channel regions in its channel window; a Linux partition at
/// the BAR2 of each channel's PCI function (`crate::bridge::linux_channels`), with the
/// same per-page rights, the rest of each BAR and the register blocks left unmapped.
pub fn partition_ept<A: FrameAllocator + ?Sized>(
    table: &Table,
    i: usize,
    ram_hpa: u64,
    channels_hpa: u64,
    persistent_hpa: Option<u64>,
    frames: &mut A,
) -> Result<Ept, BootError<'static>> {
    let p = table.partitions.get(i).ok_or(BootError::NoPartition { partition: i })?;
    let bars = crate::bridge::linux_channels(table, i)?;
    let mut mappings = Vec::new();
    for (ci, c) in table.channels.iter().enumerate() {
        if c.source.get() as usize != i && c.destination.get() as usize != i {
            continue;
        }
        let mut mapping = ChannelMapping::for_partition(c, i as u32, channels_hpa)
            .ok_or(BootError::Channel { partition: i, channel: ci })?;
        if p.kind == KIND_LINUX {
            let bar = bars
                .iter()
                .find(|b| b.channel == ci)
                .ok_or(BootError::Channel { partition: i, channel: ci })?;
            mapping.gpa = bar.shared_gpa;
        }
        mappings.push(mapping);
    }
    let mut ept = Ept::new(frames).ok_or(BootError::NoFrames { partition: i })?;
    ept.map_partition(frames, p.ram_bytes.get(), ram_hpa, &mappings)
        .map_err(|error| BootError::Ept { partition: i, error })?;
    let ((gpa, bytes), _) = keep_info(table, i)?;
    if bytes != 0 {
        // Placement gives every persistent region a block; without one nothing is mapped
        // and the guest's accesses fault.
        if let Some(hpa) = persistent_hpa {
            ept.map(frames, gpa, hpa, bytes, Rights::RW, MemoryType::WriteBack)
                .map_err(|error| BootError::Ept { partition: i, error })?;
        }
    }
    for (mi, r) in table.mmio_ranges.iter().enumerate().filter(|(_, r)| r.partition.get() as usize == i) {
        let (base, size) = (r.base.get(), r.size.get());
        ept.map(frames, base, base, size, Rights::RW, MemoryType::Uncacheable)
            .map_err(|error| BootError::Mmio { partition: i, mmio: mi, error })?;
    }
    // A Linux partition's management mailbox is emulated: it must stay unmapped so that
    // every access exits to the MMIO bus.
    if let Some(manage) = crate::bridge::linux_manage(table, i)? {
        let pages = (0..MAILBOX_BYTES).step_by(hallows_abi::layout::PAGE_SIZE as usize);
        if let Some(gpa) =
            pages.map(|o| manage.mailbox_gpa + o).find(|&gpa| ept.translate(&*frames, gpa).is_some())
        {
            return Err(BootError::ManageMailboxMapped { partition: i, gpa });
        }
    }
    Ok(ept)
}

/// The I/O pass-through ranges of partition `i`, as the I/O bitmaps take them.
pub fn io_ranges<'t>(table: &'t Table<'t>, i: usize) -> impl Iterator<Item = (u32, u32)> + 't {
    table
        .io_ranges
        .iter()
        .filter(move |r| r.partition.get() as usize == i)
        .map(|r| (r.first.get(), r.count.get()))
}

/// The Linux command line of partition `p` as the kernel gets it (the table's, then the
/// hypervisor's suffix).
pub fn linux_cmdline<'t>(table: &Table<'t>, p: usize) -> Result<[&'t str; 2], BootError<'static>> {
    let entry = table.partitions.get(p).ok_or(BootError::NoPartition { partition: p })?;
    let cmdline = table.text(entry.cmdline);
    limits::check_linux_cmdline(cmdline).map_err(|error| BootError::Cmdline { partition: p, error })?;
    Ok(limits::linux_cmdline_parts(cmdline))
}

/// One vCPU a core runs: partition index and vCPU index inside the partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VcpuPlan {
    pub partition: usize,
    pub vcpu: u32,
}

/// What one core runs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CorePlan {
    pub apic_id: u32,
    pub vcpus: Vec<VcpuPlan>,
    /// Empty: the core is dedicated to `vcpus[0]` (or idle when `vcpus` is empty).
    /// Otherwise the core's cyclic schedule (windows name partitions).
    pub windows: Vec<Window>,
    pub major_frame_ns: u64,
}

/// What every core the table uses runs: its dedicated partition's vCPU, or its
/// schedule's windows and the vCPUs they name. `apic_ids` are the machine's cores in
/// order; a core beyond them gets no plan (`Table::validate_against` refuses such a
/// table first).
pub fn core_plans(table: &Table, apic_ids: &[u32]) -> Vec<CorePlan> {
    let n = table.cores_needed() as usize;
    let mut plans = Vec::new();
    for (core, &apic_id) in (0..n as u32).zip(apic_ids) {
        let mut plan = CorePlan { apic_id, ..CorePlan::default() };
        for (pi, p) in table.partitions.iter().enumerate() {
            if p.cores.contains(core) {
                let vcpu = p.cores.iter().position(|c| c == core).unwrap_or(0) as u32;
                plan.vcpus.push(VcpuPlan { partition: pi, vcpu });
            }
        }
        if let Some(s) = table.schedule_of_core(core).and_then(|s| table.schedules.get(s)) {
            plan.major_frame_ns = s.major_frame_ns.get();
            plan.windows = table.schedule_windows(s).map(Window::from_entry).collect();
        }
        plans.push(plan);
    }
    plans
}

/// What the machine offers, as the boot path learns it from the firmware.
#[derive(Clone, Copy, Debug)]
pub struct Machine<'m> {
    /// Conventional RAM from the memory map.
    pub free: &'m [Region],
    /// Usable cores (MADT).
    pub cores: u32,
    /// LLC ways and minimum CAT width, `None` without CAT.
    pub cat: Option<(u8, u8)>,
}

/// Runs every firmware-independent boot decision on `table` (already loaded) for
/// `machine`; returns where memory goes.
pub fn plan<'a, A: FrameAllocator + ?Sized>(
    table: &Table<'a>,
    machine: &Machine,
    frames: &mut A,
) -> Result<TablePlacement, BootError<'a>> {
    let ram: u64 = machine.free.iter().map(|r| r.bytes).fold(0, u64::saturating_add);
    let facts = MachineFacts { cores: machine.cores, ram_bytes: ram, cat: machine.cat };
    table.validate_against(&facts).map_err(BootError::Machine)?;
    let placed = place_table(table, machine.free).map_err(BootError::Placement)?;
    let channels_hpa = placed.channels_base.unwrap_or(0);
    let mut io_bits = alloc::boxed::Box::new([0u8; 8192]);
    for (i, p) in table.partitions.iter().enumerate() {
        limits::check_name(table.text(p.name)).map_err(|error| BootError::Name { partition: i, error })?;
        limits::check_file_name(table.text(p.image))
            .map_err(|error| BootError::FileName { partition: i, error })?;
        channel_infos(table, i)?;
        let ((_, persistent_bytes), _) = keep_info(table, i)?;
        partition_ept(table, i, placed.partitions[i], channels_hpa, placed.persistent[i], frames)?;
        fill_io_bitmaps(&mut io_bits, io_ranges(table, i))
            .map_err(|error| BootError::IoBitmap { partition: i, error })?;
        if p.kind == KIND_LINUX {
            if let Some(core) = p.cores.iter().find(|c| table.schedule_of_core(*c).is_some()) {
                return Err(BootError::LinuxOnScheduledCore { partition: i, core });
            }
            linux_cmdline(table, i)?;
            // The guest sees its cores' APIC ids; the plan uses the core ids in their place.
            let ids: Vec<u32> = p.cores.iter().collect();
            crate::linux_vcpu::apic::ApicIdMap::identity(&ids)
                .map_err(|error| BootError::LinuxCpus { partition: i, error })?;
            let initramfs = table.text(p.initramfs);
            if !initramfs.is_empty() {
                limits::check_file_name(initramfs)
                    .map_err(|error| BootError::FileName { partition: i, error })?;
            }
        } else {
            let ram_bytes = p.ram_bytes.get();
            if limits::rt_image_room(ram_bytes, p.cores.len()) < limits::RT_MIN_IMAGE_ROOM {
                return Err(BootError::StacksLeaveNoRoom { partition: i });
            }
            check_identity_paging(ram_bytes, table.channel_window_end(), persistent_bytes)
                .map_err(|error| BootError::GuestPaging { partition: i, error })?;
        }
    }
    Ok(placed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vmx::ept::tests::VecFrames;
    use hallows_abi::table::*;
    use zerocopy::little_endian::{U16, U32, U64};

    const MIB: u64 = 1 << 20;

    fn rt(name: &str, cores: Vec<u32>, mib: u64) -> PartitionModel {
        PartitionModel {
            name: name.into(),
            kind: KIND_RT,
            hm_actions: [3; 8],
            cores,
            ram_bytes: mib * MIB,
            image: "x.elf".into(),
            ..Default::default()
        }
    }

    fn channel(name: &str, source: u32, destination: u32, window_offset: u64) -> ChannelModel {
        ChannelModel {
            name: name.into(),
            kind: CHANNEL_SAMPLING,
            source,
            destination,
            msg_size: 8,
            depth: 1,
            window_offset,
            bytes: hallows_abi::channel::region_bytes(false, 8, 1),
            ..Default::default()
        }
    }

    fn model(partitions: Vec<PartitionModel>) -> TableModel {
        TableModel {
            platform: Platform {
                cores: U32::new(4),
                console_port: U16::new(0x3f8),
                hv_reserved_bytes: U64::new(8 * MIB),
                ..Default::default()
            },
            partitions,
            ..Default::default()
        }
    }

    const FREE: [Region; 1] = [Region { base: 0x10_0000, bytes: 1 << 30 }];
    const MACHINE: Machine = Machine { free: &FREE, cores: 4, cat: None };

    #[test]
    fn a_valid_table_plans_with_its_channels_mapped() {
        let mut m = model(vec![rt("a", vec![0], 4), rt("b", vec![1], 4)]);
        m.channels = vec![channel("c", 0, 1, 0)];
        m.mmio_ranges = vec![MmioRangeModel { partition: 0, base: 0xFE00_0000, size: 0x1000 }];
        m.io_ranges = vec![IoRangeModel { partition: 1, first: 0x2f8, count: 8 }];
        let bytes = m.to_bytes();
        let table = Table::load(&bytes).unwrap();
        let mut frames = VecFrames::new(4096);
        let placed = plan(&table, &MACHINE, &mut frames).unwrap();
        assert_eq!(placed.partitions.len(), 2);
        let infos = channel_infos(&table, 1).unwrap();
        assert_eq!((infos.len(), infos[0].is_writer, infos[0].name()), (1, 0, "c"));
        assert_eq!(infos[0].gpa, CHANNEL_WINDOW_GPA);
        let ept =
            partition_ept(&table, 0, placed.partitions[0], placed.channels_base.unwrap(), None, &mut frames)
                .unwrap();
        assert_eq!(ept.translate(&frames, 0xFE00_0000), Some((0xFE00_0000, Rights::RW)));
        assert_eq!(ept.translate(&frames, CHANNEL_WINDOW_GPA).map(|t| t.1), Some(Rights::RW));
        assert_eq!(linux_cmdline(&table, 0).unwrap(), ["", limits::LINUX_CMDLINE_SUFFIX]);
    }

    #[test]
    fn every_core_gets_its_vcpus_and_its_schedule() {
        // Core 0: a and b share it by windows; cores 1 and 2: c's two vCPUs.
        let mut m = model(vec![rt("a", vec![0], 4), rt("b", vec![0], 4), rt("c", vec![1, 2], 4)]);
        let window = |partition, offset_ns| WindowModel { partition, offset_ns, duration_ns: 1_000_000 };
        m.schedules = vec![ScheduleModel {
            cores: vec![0],
            major_frame_ns: 2_000_000,
            windows: vec![window(0, 0), window(1, 1_000_000)],
        }];
        let bytes = m.to_bytes();
        let table = Table::load(&bytes).unwrap();
        let plans = core_plans(&table, &[7, 8, 9, 10]);
        assert_eq!(plans.len(), 3, "only the cores the table uses");
        assert_eq!(plans[0].apic_id, 7);
        assert_eq!(plans[0].vcpus, [VcpuPlan { partition: 0, vcpu: 0 }, VcpuPlan { partition: 1, vcpu: 0 }]);
        assert_eq!(plans[0].major_frame_ns, 2_000_000);
        assert_eq!(
            plans[0].windows[1],
            Window { partition: 1, offset_ns: 1_000_000, duration_ns: 1_000_000 }
        );
        assert_eq!(plans[2].vcpus, [VcpuPlan { partition: 2, vcpu: 1 }], "c's second vCPU");
        assert!(plans[2].windows.is_empty(), "a dedicated core");
        assert_eq!((plans[2].apic_id, plans[2].major_frame_ns), (9, 0));
        assert_eq!(core_plans(&table, &[7]).len(), 1, "no plan without an APIC id");
    }

    /// Each boot decision refuses what the re-validator lets through only when the
    /// table was written by hand; these tables bypass `Table::load` (parse only) to show
    /// the boot path's own refusal is still clear and never a panic.
    #[test]
    fn the_boot_path_refuses_what_it_cannot_do_by_name() {
        let mut frames = VecFrames::new(4096);
        // MMIO inside the partition's RAM.
        let mut m = model(vec![rt("a", vec![0], 4)]);
        m.mmio_ranges = vec![MmioRangeModel { partition: 0, base: 0x20_0000, size: 0x1000 }];
        let bytes = m.to_bytes();
        let t = Table::parse(&bytes).unwrap();
        assert!(matches!(
            plan(&t, &MACHINE, &mut frames),
            Err(BootError::Mmio { partition: 0, mmio: 0, error: EptError::Overlap { .. } })
        ));
        // 17 channels on one partition.
        let mut m = model(vec![rt("a", vec![0], 4), rt("b", vec![1], 4)]);
        let stride = hallows_abi::channel::region_bytes(false, 8, 1);
        m.channels = (0..17).map(|i| channel(&alloc::format!("c{i}"), 0, 1, i * stride)).collect();
        let bytes = m.to_bytes();
        let t = Table::parse(&bytes).unwrap();
        assert_eq!(channel_infos(&t, 0).unwrap_err(), BootError::TooManyChannels { partition: 0, count: 17 });
        // A channel name the boot info would cut.
        let mut m = model(vec![rt("a", vec![0], 4), rt("b", vec![1], 4)]);
        m.channels = vec![channel(&"n".repeat(33), 0, 1, 0)];
        let bytes = m.to_bytes();
        let t = Table::parse(&bytes).unwrap();
        assert!(matches!(channel_infos(&t, 0), Err(BootError::Name { .. })));
        // Stacks of 32 vCPUs in 2 MiB.
        let m = model(vec![rt("a", (0..32).collect(), 2)]);
        let bytes = m.to_bytes();
        let t = Table::parse(&bytes).unwrap();
        let big = Machine { cores: 32, ..MACHINE };
        assert_eq!(plan(&t, &big, &mut frames), Err(BootError::StacksLeaveNoRoom { partition: 0 }));
        // A file name that escapes \rusthallows\.
        let mut m = model(vec![rt("a", vec![0], 4)]);
        m.partitions[0].image = "../EFI/BOOT/BOOTX64.EFI".into();
        let bytes = m.to_bytes();
        let t = Table::parse(&bytes).unwrap();
        assert_eq!(
            plan(&t, &MACHINE, &mut frames),
            Err(BootError::FileName { partition: 0, error: FileNameError::DotComponent })
        );
        // A Linux command line with a NUL.
        let mut m = model(vec![rt("a", vec![0], 4)]);
        m.partitions.push(PartitionModel {
            kind: KIND_LINUX,
            cmdline: "a\0b".into(),
            image: "vmlinux".into(),
            ..rt("l", vec![1], 64)
        });
        let bytes = m.to_bytes();
        let t = Table::parse(&bytes).unwrap();
        assert_eq!(
            plan(&t, &MACHINE, &mut frames),
            Err(BootError::Cmdline { partition: 1, error: CmdlineError::ControlCharacter { offset: 1 } })
        );
        // RAM that fits only without rounding the channel window to 2 MiB.
        let mut m = model(vec![rt("a", vec![0], 4), rt("b", vec![1], 4)]);
        m.channels = vec![channel("c", 0, 1, 0)];
        let bytes = m.to_bytes();
        let t = Table::load(&bytes).unwrap();
        let tight = [Region { base: 0, bytes: 17 * MIB }];
        assert!(matches!(
            plan(&t, &Machine { free: &tight, ..MACHINE }, &mut frames),
            Err(BootError::Machine(MachineMismatch::TooLittleMemory { needed, .. })) if needed == 18 * MIB
        ));
    }

    #[test]
    fn guest_paging_is_checked_without_the_partition_ram() {
        assert_eq!(check_identity_paging(4 * MIB, 0x1000, 0), Ok(()));
        assert_eq!(check_identity_paging(3 << 30, 256 * MIB, limits::PERSISTENT_MAX_BYTES), Ok(()));
        assert_eq!(check_identity_paging(3 * MIB, 0, 0), Err(PagingError::BadRamSize { ram_bytes: 3 * MIB }));
        assert_eq!(check_identity_paging(4 * MIB, 5, 0), Err(PagingError::BadChannelWindow { bytes: 5 }));
    }

    #[test]
    fn a_persistent_region_is_placed_apart_and_mapped_in_its_window() {
        let mut m = model(vec![rt("a", vec![0], 4), rt("b", vec![1], 4)]);
        m.partitions[0].persistent_bytes = 64 << 10;
        m.partitions[0].args = "topics=t:1".into();
        let bytes = m.to_bytes();
        let table = Table::load(&bytes).unwrap();
        let mut frames = VecFrames::new(4096);
        let placed = plan(&table, &MACHINE, &mut frames).unwrap();
        let hpa = placed.persistent[0].unwrap();
        assert_eq!(placed.persistent[1], None);
        let ram = |i: usize| (placed.partitions[i], placed.partitions[i] + 4 * MIB);
        for i in 0..2 {
            assert!(hpa + (2 * MIB) <= ram(i).0 || ram(i).1 <= hpa, "its own block, apart from RAM");
        }
        assert_eq!(keep_info(&table, 0).unwrap(), ((PERSISTENT_WINDOW_GPA, 64 << 10), "topics=t:1"));
        assert_eq!(keep_info(&table, 1).unwrap(), ((0, 0), ""));
        let ept =
            partition_ept(&table, 0, placed.partitions[0], 0, placed.persistent[0], &mut frames).unwrap();
        assert_eq!(ept.translate(&frames, PERSISTENT_WINDOW_GPA + 0xF000), Some((hpa + 0xF000, Rights::RW)));
        assert_eq!(ept.translate(&frames, PERSISTENT_WINDOW_GPA + 0x1_0000), None);
        let other = partition_ept(&table, 1, placed.partitions[1], 0, None, &mut frames).unwrap();
        assert_eq!(other.translate(&frames, PERSISTENT_WINDOW_GPA), None);
        // The boot path refuses by itself what a hand-made table might carry.
        let mut m = model(vec![rt("a", vec![0], 4)]);
        m.partitions[0].args = "a\u{1}".into();
        let bytes = m.to_bytes();
        let t = Table::parse(&bytes).unwrap();
        assert_eq!(
            plan(&t, &MACHINE, &mut frames),
            Err(BootError::Keep {
                partition: 0,
                problem: KeepProblem::Args(ArgsError::NotPrintable { offset: 1 })
            })
        );
    }
}
