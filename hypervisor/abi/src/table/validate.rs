//! Whole-system re-validation of a parsed table. The Parseltongue checker enforces the
//! same rules with source spans; this copy runs in the hypervisor, without a heap, so a
//! table is never trusted because a compiler produced it.

use super::format::*;
use super::reader::Table;
use crate::health::Action;
use crate::layout::{CHANNEL_WINDOW_BYTES, LARGE_PAGE_SIZE, PAGE_SIZE, RT_MAX_RAM, RT_MIN_RAM};
use crate::limits;

pub use crate::limits::LINUX_MIN_RAM;

/// A broken whole-system rule. Indices are table indices (partition, schedule, ...).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Violation {
    NoPartitions,
    EmptyName {
        partition: usize,
    },
    DuplicateName {
        first: usize,
        second: usize,
    },
    BadKind {
        partition: usize,
    },
    BadAction {
        partition: usize,
    },
    BadPrivileges {
        partition: usize,
    },
    NoCores {
        partition: usize,
    },
    CoreOutOfRange {
        partition: usize,
        core: u32,
    },
    /// A core given to two partitions without a schedule covering it.
    CoreShared {
        core: u32,
        first: usize,
        second: usize,
    },
    RamMisaligned {
        partition: usize,
    },
    RamTooSmall {
        partition: usize,
    },
    RamTooLarge {
        partition: usize,
    },
    PinnedMisaligned {
        partition: usize,
    },
    PinnedOverlap {
        first: usize,
        second: usize,
    },
    /// Partitions plus the hypervisor's reservation exceed the platform's RAM.
    RamExhausted {
        needed: u64,
        available: u64,
    },
    MissingImage {
        partition: usize,
    },
    /// A restart budget outside `MIN_RESTART_LIMIT..=MAX_RESTART_LIMIT` restarts or
    /// `MIN_RESTART_WINDOW_MS..=MAX_RESTART_WINDOW_MS` (zero is the default).
    RestartBudgetBad {
        partition: usize,
    },
    LlcOutOfRange {
        partition: usize,
    },
    LlcTooNarrow {
        partition: usize,
    },
    LlcOverlap {
        first: usize,
        second: usize,
    },
    ScheduleNoCores {
        schedule: usize,
    },
    ScheduleCoreOutOfRange {
        schedule: usize,
        core: u32,
    },
    ScheduleOverlap {
        first: usize,
        second: usize,
    },
    ScheduleEmptyFrame {
        schedule: usize,
    },
    ScheduleWindowsOutOfBounds {
        schedule: usize,
    },
    WindowZeroLength {
        schedule: usize,
        window: usize,
    },
    WindowOutsideFrame {
        schedule: usize,
        window: usize,
    },
    /// Windows must be sorted by offset and must not overlap.
    WindowOverlap {
        schedule: usize,
        window: usize,
    },
    WindowBadPartition {
        schedule: usize,
        window: usize,
    },
    /// The window's partition has none of the schedule's cores.
    WindowPartitionNotOnCore {
        schedule: usize,
        window: usize,
    },
    /// A partition on a scheduled core never gets a window there.
    PartitionStarved {
        partition: usize,
        schedule: usize,
    },
    IoRangeBad {
        index: usize,
    },
    IoRangeOverlap {
        first: usize,
        second: usize,
    },
    MmioRangeBad {
        index: usize,
    },
    MmioRangeOverlap {
        first: usize,
        second: usize,
    },
    PciFunctionBad {
        index: usize,
    },
    PciFunctionDuplicate {
        first: usize,
        second: usize,
    },
    ChannelBadEndpoint {
        channel: usize,
    },
    ChannelBadKind {
        channel: usize,
    },
    ChannelZeroSize {
        channel: usize,
    },
    ChannelBadRegion {
        channel: usize,
    },
    ChannelRegionOverlap {
        channel: usize,
    },
    ChannelBadLinuxView {
        channel: usize,
    },
    /// An I/O range holds the platform's console port, which the hypervisor owns.
    IoRangeConsole {
        index: usize,
    },
    /// The hypervisor reservation is not a multiple of 2 MiB (zero means "not stated").
    ReserveMisaligned,
    /// The platform's minimum CAT mask is wider than its LLC.
    CatMinAboveWays,
    /// The hypervisor's ways (class of service 0) lie beyond the LLC or are narrower than
    /// the minimum CAT mask.
    HypervisorWaysBad,
    /// Separate code ways on a partition while the platform does not ask for CDP, or
    /// without data ways.
    CodeWaysWithoutCdp {
        partition: usize,
    },
    /// A memory bandwidth share above 100 percent.
    MbaPercentBad {
        partition: usize,
    },
    /// A partition's pinned RAM overlaps a passed-through MMIO range.
    PinnedOverlapsMmio {
        partition: usize,
        mmio: usize,
    },
    /// The console port leaves no room for the UART's 8 registers below 0x10000.
    ConsolePortBad,
    /// An I/O range holds a port the hypervisor drives itself (PICs, PCI configuration,
    /// power-off), see [`limits::HYPERVISOR_PORTS`].
    IoRangeHypervisor {
        index: usize,
    },
    /// A partition name longer than the boot info's name field.
    NameTooLong {
        partition: usize,
    },
    /// A channel name empty or longer than the boot info's name field.
    ChannelNameBad {
        channel: usize,
    },
    ChannelDuplicateName {
        first: usize,
        second: usize,
    },
    /// A partition is an endpoint of more channels than its boot info describes.
    TooManyChannels {
        partition: usize,
    },
    /// An RT partition's vCPU stacks leave less than [`limits::RT_MIN_IMAGE_ROOM`] for
    /// its image and heap.
    StacksLeaveNoRoom {
        partition: usize,
    },
    /// An image, kernel or initramfs name that does not open as `\rusthallows\NAME`.
    FileNameBad {
        partition: usize,
        error: limits::FileNameError,
    },
    /// A Linux command line too long for what the hypervisor appends, or with control
    /// characters.
    CmdlineBad {
        partition: usize,
        error: limits::CmdlineError,
    },
    /// An initramfs or command line on a real-time partition (nothing would read it).
    LinuxSettingOnRt {
        partition: usize,
    },
    /// A Linux partition on a core that a schedule covers (Linux needs dedicated cores).
    LinuxOnScheduledCore {
        partition: usize,
        core: u32,
    },
    /// An MMIO range that cannot be mapped into its partition (inside its RAM, its
    /// channel window, or beyond the guest-physical address width).
    MmioRangeUnmappable {
        index: usize,
        conflict: limits::MmioConflict,
    },
    /// An MMIO range holding the hypervisor's own devices (APICs), see
    /// [`limits::HYPERVISOR_MMIO`].
    MmioRangeHypervisor {
        index: usize,
    },
    /// PCI function pass-through is not implemented by this hypervisor version.
    PciUnsupported {
        index: usize,
    },
    /// A persistent region or arguments on a Linux partition (RT partitions only: nothing
    /// in a Linux guest would read them).
    RtSettingOnLinux {
        partition: usize,
    },
    /// A persistent region whose size is not whole pages or exceeds
    /// [`limits::PERSISTENT_MAX_BYTES`].
    PersistentBad {
        partition: usize,
        error: limits::PersistentError,
    },
    /// Arguments too long for the boot info, or not printable ASCII.
    ArgsBad {
        partition: usize,
        error: limits::ArgsError,
    },
    /// A Linux partition with channels whose RAM reaches into its bridge window
    /// ([`limits::LINUX_MAX_RAM_WITH_CHANNELS`]).
    LinuxBridgeOverlapsRam {
        partition: usize,
    },
    /// The BARs of a Linux partition's channels do not fit its bridge window; `channel`
    /// is the first (in the partition's channel order) that does not.
    LinuxBridgeFull {
        partition: usize,
        channel: usize,
    },
}

impl core::fmt::Display for Violation {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::FileNameBad { partition, error } => write!(f, "partition {partition}: {error}"),
            Self::CmdlineBad { partition, error } => {
                write!(f, "partition {partition}: Linux command line: {error}")
            }
            Self::RtSettingOnLinux { partition } => write!(
                f,
                "partition {partition}: a persistent region or arguments on a Linux partition (RT partitions only)"
            ),
            Self::PersistentBad { partition, error } => write!(f, "partition {partition}: {error}"),
            Self::ArgsBad { partition, error } => write!(f, "partition {partition}: {error}"),
            Self::PciUnsupported { index } => write!(
                f,
                "PCI function {index}: PCI pass-through is not supported by this hypervisor version"
            ),
            Self::LinuxBridgeOverlapsRam { partition } => write!(
                f,
                "partition {partition}: a Linux partition with channels has at most {} MiB of RAM (its channel BARs are above)",
                limits::LINUX_MAX_RAM_WITH_CHANNELS >> 20
            ),
            Self::LinuxBridgeFull { partition, channel } => write!(
                f,
                "partition {partition}: the BARs of its channels do not fit the bridge window (its channel {channel} is the first that does not)"
            ),
            Self::LinuxOnScheduledCore { partition, core } => write!(
                f,
                "partition {partition}: Linux on scheduled core {core} (Linux partitions need dedicated cores)"
            ),
            // Debug names the rule and its indices; that is what a boot log needs.
            _ => write!(f, "{self:?}"),
        }
    }
}

/// What the hypervisor found on the real machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MachineFacts {
    /// Usable cores (from the MADT).
    pub cores: u32,
    /// Usable conventional RAM in bytes (from the firmware's memory map).
    pub ram_bytes: u64,
    /// LLC ways and the minimum CAT mask width; `None` when the CPU has no CAT.
    pub cat: Option<(u8, u8)>,
}

/// Why a table does not fit the machine it boots on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MachineMismatch {
    TooFewCores {
        needed: u32,
        present: u32,
    },
    TooLittleMemory {
        needed: u64,
        present: u64,
    },
    /// The table names more LLC ways than the CPU has.
    TooFewCacheWays {
        needed: u32,
        present: u8,
    },
    /// The table demands cache partitioning and the CPU has no CAT.
    NoCat,
}

impl core::fmt::Display for MachineMismatch {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::TooFewCores { needed, present } => {
                write!(f, "the table needs {needed} cores, this machine has {present}")
            }
            Self::TooLittleMemory { needed, present } => write!(
                f,
                "the table needs {} MiB of RAM, this machine has {} MiB usable",
                needed >> 20,
                present >> 20
            ),
            Self::TooFewCacheWays { needed, present } => {
                write!(f, "the table needs {needed} LLC ways, this CPU has {present}")
            }
            Self::NoCat => write!(f, "the table requires cache allocation (CAT) and this CPU has none"),
        }
    }
}

fn overlaps(a: (u64, u64), b: (u64, u64)) -> bool {
    a.0 < b.0.saturating_add(b.1) && b.0 < a.0.saturating_add(a.1)
}

impl Table<'_> {
    /// The highest core id the table uses, plus one.
    pub fn cores_needed(&self) -> u32 {
        let p = self.partitions.iter().filter_map(|p| p.cores.max()).max();
        let s = self.schedules.iter().filter_map(|s| s.cores.max()).max();
        p.max(s).map_or(0, |m| m + 1)
    }

    /// RAM the table needs, as placement takes it ([`limits::ram_needed`]): every
    /// partition, every persistent region, the channel window up to its highest region
    /// end, and the hypervisor.
    pub fn ram_needed(&self) -> u64 {
        limits::ram_needed(
            self.platform().hv_reserved_bytes.get(),
            self.partitions.iter().map(|p| p.ram_bytes.get()),
            (0..self.partitions.len()).map(|i| self.persistent_bytes(i)),
            self.channel_window_end(),
        )
    }

    /// The end of the highest channel region in the channel window (0 without channels).
    pub fn channel_window_end(&self) -> u64 {
        self.channels.iter().map(|c| c.window_offset.get().saturating_add(c.bytes.get())).max().unwrap_or(0)
    }

    /// How many channels partition `p` is an endpoint of.
    pub fn channels_of(&self, p: usize) -> usize {
        self.channels
            .iter()
            .filter(|c| c.source.get() as usize == p || c.destination.get() as usize == p)
            .count()
    }

    /// The channels of Linux partition `p`, in table order (the order of its channel
    /// functions and BARs, see [`limits::place_linux_bars`]), with their table indices.
    pub fn linux_channels(&self, p: usize) -> impl Iterator<Item = (usize, &ChannelEntry)> + '_ {
        self.channels
            .iter()
            .enumerate()
            .filter(move |(_, c)| c.source.get() as usize == p || c.destination.get() as usize == p)
    }

    /// The schedule that covers `core`, if any.
    pub fn schedule_of_core(&self, core: u32) -> Option<usize> {
        self.schedules.iter().position(|s| s.cores.contains(core))
    }

    /// Whether partitions `a` and `b` may run at the same instant (they share no single
    /// schedule that holds all the cores of both).
    pub fn may_co_run(&self, a: usize, b: usize) -> bool {
        let (Some(pa), Some(pb)) = (self.partitions.get(a), self.partitions.get(b)) else {
            return false;
        };
        let only_in = |p: &PartitionEntry, s: &ScheduleEntry| p.cores.iter().all(|c| s.cores.contains(c));
        !self.schedules.iter().any(|s| only_in(pa, s) && only_in(pb, s))
    }

    /// Checks every whole-system rule; returns the first violation.
    pub fn validate(&self) -> Result<(), Violation> {
        self.validate_partitions()?;
        self.validate_schedules()?;
        self.validate_cores()?;
        self.validate_cache()?;
        self.validate_devices()?;
        self.validate_channels()?;
        self.validate_linux()
    }

    /// Rules for Linux partitions the boot path depends on: dedicated cores, a command
    /// line that fits with the hypervisor's suffix, and nothing Linux-only on RT partitions.
    fn validate_linux(&self) -> Result<(), Violation> {
        for (i, p) in self.partitions.iter().enumerate() {
            if p.kind != KIND_LINUX {
                if !self.text(p.initramfs).is_empty() || !self.text(p.cmdline).is_empty() {
                    return Err(Violation::LinuxSettingOnRt { partition: i });
                }
                continue;
            }
            if let Some(core) = p.cores.iter().find(|c| self.schedule_of_core(*c).is_some()) {
                return Err(Violation::LinuxOnScheduledCore { partition: i, core });
            }
            limits::check_linux_cmdline(self.text(p.cmdline))
                .map_err(|error| Violation::CmdlineBad { partition: i, error })?;
            let initramfs = self.text(p.initramfs);
            if !initramfs.is_empty() {
                limits::check_file_name(initramfs)
                    .map_err(|error| Violation::FileNameBad { partition: i, error })?;
            }
        }
        Ok(())
    }

    fn validate_partitions(&self) -> Result<(), Violation> {
        let platform = self.platform();
        if !platform.hv_reserved_bytes.get().is_multiple_of(LARGE_PAGE_SIZE) {
            return Err(Violation::ReserveMisaligned);
        }
        if platform.llc_ways != 0 && platform.cat_min_ways > platform.llc_ways {
            return Err(Violation::CatMinAboveWays);
        }
        if !limits::console_port_fits(platform.console_port.get()) {
            return Err(Violation::ConsolePortBad);
        }
        if self.partitions.is_empty() {
            return Err(Violation::NoPartitions);
        }
        for (i, p) in self.partitions.iter().enumerate() {
            let name = self.text(p.name);
            match limits::check_name(name) {
                Ok(()) => {}
                Err(limits::NameError::Empty) => return Err(Violation::EmptyName { partition: i }),
                Err(limits::NameError::TooLong { .. }) => {
                    return Err(Violation::NameTooLong { partition: i })
                }
            }
            if let Some(j) = self.partitions.iter().take(i).position(|q| self.text(q.name) == name) {
                return Err(Violation::DuplicateName { first: j, second: i });
            }
            if p.kind != KIND_RT && p.kind != KIND_LINUX {
                return Err(Violation::BadKind { partition: i });
            }
            if p.hm_actions.iter().any(|a| Action::from_u8(*a).is_none()) {
                return Err(Violation::BadAction { partition: i });
            }
            if p.privileges.get() & !PRIV_ALL != 0 {
                return Err(Violation::BadPrivileges { partition: i });
            }
            if p.cores.is_empty() {
                return Err(Violation::NoCores { partition: i });
            }
            let platform_cores = platform.cores.get();
            if let Some(core) = p.cores.iter().find(|c| platform_cores != 0 && *c >= platform_cores) {
                return Err(Violation::CoreOutOfRange { partition: i, core });
            }
            let ram = p.ram_bytes.get();
            if ram % LARGE_PAGE_SIZE != 0 {
                return Err(Violation::RamMisaligned { partition: i });
            }
            let min = if p.kind == KIND_LINUX { LINUX_MIN_RAM } else { RT_MIN_RAM };
            if ram < min {
                return Err(Violation::RamTooSmall { partition: i });
            }
            if (p.kind == KIND_RT && ram > RT_MAX_RAM)
                || (p.kind == KIND_LINUX && ram > limits::LINUX_MAX_RAM)
            {
                return Err(Violation::RamTooLarge { partition: i });
            }
            if p.kind == KIND_RT && limits::rt_image_room(ram, p.cores.len()) < limits::RT_MIN_IMAGE_ROOM {
                return Err(Violation::StacksLeaveNoRoom { partition: i });
            }
            if p.flags & PFLAG_PINNED != 0 {
                let base = p.pinned_base.get();
                if !limits::pinned_fits(base, ram) {
                    return Err(Violation::PinnedMisaligned { partition: i });
                }
                for (j, q) in self.partitions.iter().enumerate().take(i) {
                    if q.flags & PFLAG_PINNED != 0
                        && overlaps((base, ram), (q.pinned_base.get(), q.ram_bytes.get()))
                    {
                        return Err(Violation::PinnedOverlap { first: j, second: i });
                    }
                }
            }
            if self.text(p.image).is_empty() {
                return Err(Violation::MissingImage { partition: i });
            }
            if !self.restart_budget(i).is_valid() {
                return Err(Violation::RestartBudgetBad { partition: i });
            }
            limits::check_file_name(self.text(p.image))
                .map_err(|error| Violation::FileNameBad { partition: i, error })?;
            if self.channels_of(i) > limits::MAX_CHANNELS_PER_PARTITION {
                return Err(Violation::TooManyChannels { partition: i });
            }
            self.validate_keep_fields(i, p)?;
        }
        let available = platform.ram_bytes.get();
        let needed = self.ram_needed();
        if available != 0 && needed > available {
            return Err(Violation::RamExhausted { needed, available });
        }
        Ok(())
    }

    /// The persistent region and the arguments (version 1.3): RT partitions only, sizes
    /// and text as [`limits::check_persistent`] and [`limits::check_args`] allow.
    fn validate_keep_fields(&self, i: usize, p: &PartitionEntry) -> Result<(), Violation> {
        let (persistent, args) = (self.persistent_bytes(i), self.args(i));
        if p.kind == KIND_LINUX && (persistent != 0 || !args.is_empty()) {
            return Err(Violation::RtSettingOnLinux { partition: i });
        }
        if persistent != 0 {
            limits::check_persistent(persistent)
                .map_err(|error| Violation::PersistentBad { partition: i, error })?;
        }
        limits::check_args(args).map_err(|error| Violation::ArgsBad { partition: i, error })
    }

    fn validate_schedules(&self) -> Result<(), Violation> {
        let platform_cores = self.platform().cores.get();
        for (si, s) in self.schedules.iter().enumerate() {
            if s.cores.is_empty() {
                return Err(Violation::ScheduleNoCores { schedule: si });
            }
            if let Some(core) = s.cores.iter().find(|c| platform_cores != 0 && *c >= platform_cores) {
                return Err(Violation::ScheduleCoreOutOfRange { schedule: si, core });
            }
            if let Some(sj) = self.schedules.iter().take(si).position(|o| o.cores.intersects(&s.cores)) {
                return Err(Violation::ScheduleOverlap { first: sj, second: si });
            }
            let frame = s.major_frame_ns.get();
            if frame == 0 {
                return Err(Violation::ScheduleEmptyFrame { schedule: si });
            }
            let first = s.first_window.get() as usize;
            let count = s.window_count.get() as usize;
            if count == 0
                || count > MAX_WINDOWS_PER_SCHEDULE
                || first.checked_add(count).is_none_or(|end| end > self.windows.len())
            {
                return Err(Violation::ScheduleWindowsOutOfBounds { schedule: si });
            }
            let mut previous_end = 0u64;
            for (wi, w) in self.schedule_windows(s).enumerate() {
                let (off, len) = (w.offset_ns.get(), w.duration_ns.get());
                if len == 0 {
                    return Err(Violation::WindowZeroLength { schedule: si, window: wi });
                }
                if off.checked_add(len).is_none_or(|end| end > frame) {
                    return Err(Violation::WindowOutsideFrame { schedule: si, window: wi });
                }
                if off < previous_end {
                    return Err(Violation::WindowOverlap { schedule: si, window: wi });
                }
                previous_end = off + len;
                let Some(p) = self.partitions.get(w.partition.get() as usize) else {
                    return Err(Violation::WindowBadPartition { schedule: si, window: wi });
                };
                if !p.cores.intersects(&s.cores) {
                    return Err(Violation::WindowPartitionNotOnCore { schedule: si, window: wi });
                }
            }
            for (pi, p) in self.partitions.iter().enumerate() {
                if p.cores.intersects(&s.cores)
                    && !self.schedule_windows(s).any(|w| w.partition.get() as usize == pi)
                {
                    return Err(Violation::PartitionStarved { partition: pi, schedule: si });
                }
            }
        }
        Ok(())
    }

    fn validate_cores(&self) -> Result<(), Violation> {
        for core in 0..MAX_CORES as u32 {
            if self.schedule_of_core(core).is_some() {
                continue;
            }
            let mut owners = self.partitions.iter().enumerate().filter(|(_, p)| p.cores.contains(core));
            if let (Some((first, _)), Some((second, _))) = (owners.next(), owners.next()) {
                return Err(Violation::CoreShared { core, first, second });
            }
        }
        Ok(())
    }

    /// A way block `(first, count)` inside the LLC and at least the minimum CAT width.
    fn ways_fit(&self, (first, count): (u8, u8)) -> (bool, bool) {
        let platform = self.platform();
        let end = first as u32 + count as u32;
        let inside =
            end <= limits::MAX_LLC_WAYS && (platform.llc_ways == 0 || end <= platform.llc_ways as u32);
        (inside, count >= platform.cat_min_ways)
    }

    /// Every way block partition `i` allocates into: its data ways and, under CDP, its
    /// code ways.
    fn way_blocks(&self, i: usize) -> [Option<(u64, u64)>; 2] {
        let data = self
            .partitions
            .get(i)
            .filter(|p| p.llc_way_count != 0)
            .map(|p| (p.llc_first_way as u64, p.llc_way_count as u64));
        [data, self.code_ways(i).map(|(f, c)| (f as u64, c as u64))]
    }

    fn validate_cache(&self) -> Result<(), Violation> {
        let platform = self.platform();
        if let Some(hv) = self.hypervisor_ways() {
            if self.ways_fit(hv) != (true, true) {
                return Err(Violation::HypervisorWaysBad);
            }
        }
        for (i, p) in self.partitions.iter().enumerate() {
            if self.cache_fields(i).mba_percent > MAX_MBA_PERCENT {
                return Err(Violation::MbaPercentBad { partition: i });
            }
            let code = self.code_ways(i);
            if code.is_some() && (platform.flags & PLATFORM_CDP == 0 || p.llc_way_count == 0) {
                return Err(Violation::CodeWaysWithoutCdp { partition: i });
            }
            if p.llc_way_count == 0 {
                continue;
            }
            for block in [Some((p.llc_first_way, p.llc_way_count)), code].into_iter().flatten() {
                let (inside, wide) = self.ways_fit(block);
                if !inside {
                    return Err(Violation::LlcOutOfRange { partition: i });
                }
                if !wide {
                    return Err(Violation::LlcTooNarrow { partition: i });
                }
            }
            for j in 0..i {
                let clash = self
                    .way_blocks(i)
                    .iter()
                    .flatten()
                    .any(|a| self.way_blocks(j).iter().flatten().any(|b| overlaps(*a, *b)));
                if clash && self.may_co_run(i, j) {
                    return Err(Violation::LlcOverlap { first: j, second: i });
                }
            }
        }
        Ok(())
    }

    fn validate_devices(&self) -> Result<(), Violation> {
        let parts = self.partitions.len();
        for (i, r) in self.io_ranges.iter().enumerate() {
            let (first, count) = (r.first.get() as u64, r.count.get() as u64);
            if r.partition.get() as usize >= parts || count == 0 || first + count > 0x1_0000 {
                return Err(Violation::IoRangeBad { index: i });
            }
            let console = self.platform().console_port.get();
            match limits::reserved_port_conflict(console, first as u32, count as u32) {
                Some(r) if r == limits::console_ports(console) => {
                    return Err(Violation::IoRangeConsole { index: i })
                }
                Some(_) => return Err(Violation::IoRangeHypervisor { index: i }),
                None => {}
            }
            if let Some(j) = self
                .io_ranges
                .iter()
                .take(i)
                .position(|o| overlaps((first, count), (o.first.get() as u64, o.count.get() as u64)))
            {
                return Err(Violation::IoRangeOverlap { first: j, second: i });
            }
        }
        for (i, r) in self.mmio_ranges.iter().enumerate() {
            let (base, size) = (r.base.get(), r.size.get());
            if r.partition.get() as usize >= parts
                || size == 0
                || base % PAGE_SIZE != 0
                || size % PAGE_SIZE != 0
                || base.checked_add(size).is_none()
            {
                return Err(Violation::MmioRangeBad { index: i });
            }
            if let Some(j) = self
                .mmio_ranges
                .iter()
                .take(i)
                .position(|o| overlaps((base, size), (o.base.get(), o.size.get())))
            {
                return Err(Violation::MmioRangeOverlap { first: j, second: i });
            }
            if limits::reserved_mmio_conflict(base, size).is_some() {
                return Err(Violation::MmioRangeHypervisor { index: i });
            }
            let owner = r.partition.get() as usize;
            let ram = self.partitions.get(owner).map_or(0, |p| p.ram_bytes.get());
            let linux = self.partitions.get(owner).is_some_and(|p| p.kind == KIND_LINUX);
            let map = limits::GuestMap {
                ram_bytes: ram,
                has_channels: self.channels_of(owner) > 0,
                linux,
                persistent_bytes: self.persistent_bytes(owner),
            };
            if let Some(conflict) = limits::mmio_conflict(base, size, map) {
                return Err(Violation::MmioRangeUnmappable { index: i, conflict });
            }
        }
        for (pi, p) in self.partitions.iter().enumerate().filter(|(_, p)| p.flags & PFLAG_PINNED != 0) {
            let ram = (p.pinned_base.get(), p.ram_bytes.get());
            if let Some(mi) =
                self.mmio_ranges.iter().position(|r| overlaps(ram, (r.base.get(), r.size.get())))
            {
                return Err(Violation::PinnedOverlapsMmio { partition: pi, mmio: mi });
            }
        }
        for (i, f) in self.pci_functions.iter().enumerate() {
            if f.partition.get() as usize >= parts || f.device >= 32 || f.function >= 8 {
                return Err(Violation::PciFunctionBad { index: i });
            }
            let key = |f: &PciFunctionEntry| (f.segment.get(), f.bus, f.device, f.function);
            if let Some(j) = self.pci_functions.iter().take(i).position(|o| key(o) == key(f)) {
                return Err(Violation::PciFunctionDuplicate { first: j, second: i });
            }
        }
        // The table format describes PCI functions, but nothing in this hypervisor passes
        // one through: accepting them would silently ignore them.
        if !self.pci_functions.is_empty() {
            return Err(Violation::PciUnsupported { index: 0 });
        }
        Ok(())
    }

    fn validate_channels(&self) -> Result<(), Violation> {
        let mut previous_end = 0u64;
        for (i, c) in self.channels.iter().enumerate() {
            let (src, dst) = (c.source.get() as usize, c.destination.get() as usize);
            let (Some(s), Some(d)) = (self.partitions.get(src), self.partitions.get(dst)) else {
                return Err(Violation::ChannelBadEndpoint { channel: i });
            };
            let name = self.text(c.name);
            if limits::check_name(name).is_err() {
                return Err(Violation::ChannelNameBad { channel: i });
            }
            if let Some(j) = self.channels.iter().take(i).position(|o| self.text(o.name) == name) {
                return Err(Violation::ChannelDuplicateName { first: j, second: i });
            }
            if src == dst {
                return Err(Violation::ChannelBadEndpoint { channel: i });
            }
            let queuing = match c.kind {
                CHANNEL_SAMPLING => false,
                CHANNEL_QUEUING => true,
                _ => return Err(Violation::ChannelBadKind { channel: i }),
            };
            if c.msg_size.get() == 0 || c.depth.get() == 0 {
                return Err(Violation::ChannelZeroSize { channel: i });
            }
            // Bound the sizes before computing the region: msg_size * depth of a hostile
            // table would overflow `region_bytes`.
            if crate::channel::slots_bytes(queuing, c.msg_size.get(), c.depth.get())
                .is_none_or(|b| b > CHANNEL_WINDOW_BYTES)
            {
                return Err(Violation::ChannelBadRegion { channel: i });
            }
            let needed = crate::channel::region_bytes(queuing, c.msg_size.get(), c.depth.get());
            let (off, bytes) = (c.window_offset.get(), c.bytes.get());
            // Exactly the computed size: the EPT maps writer and reader pages from it.
            if bytes != needed
                || off % PAGE_SIZE != 0
                || bytes % PAGE_SIZE != 0
                || off.checked_add(bytes).is_none_or(|end| end > CHANNEL_WINDOW_BYTES)
            {
                return Err(Violation::ChannelBadRegion { channel: i });
            }
            if off < previous_end {
                return Err(Violation::ChannelRegionOverlap { channel: i });
            }
            previous_end = off + bytes;
            let has_linux = s.kind == KIND_LINUX || d.kind == KIND_LINUX;
            // `LINUX_VIEW_TTY` is described by the format but implemented by no
            // hypervisor version: refused like an unknown view.
            let view_ok = match c.linux_view {
                LINUX_VIEW_NONE => !has_linux,
                LINUX_VIEW_SHM => has_linux,
                _ => false,
            };
            if !view_ok {
                return Err(Violation::ChannelBadLinuxView { channel: i });
            }
        }
        for (pi, p) in self.partitions.iter().enumerate().filter(|(_, p)| p.kind == KIND_LINUX) {
            if self.channels_of(pi) == 0 {
                continue;
            }
            if !limits::linux_ram_fits_bridge(p.ram_bytes.get()) {
                return Err(Violation::LinuxBridgeOverlapsRam { partition: pi });
            }
            limits::place_linux_bars(self.linux_channels(pi).map(|(_, c)| c.bytes.get()), |_, _, _| {})
                .map_err(|full| Violation::LinuxBridgeFull { partition: pi, channel: full.channel })?;
        }
        Ok(())
    }

    /// Checks that the table fits the machine it is booting on.
    pub fn validate_against(&self, machine: &MachineFacts) -> Result<(), MachineMismatch> {
        let needed = self.cores_needed().max(self.platform().cores.get());
        if needed > machine.cores {
            return Err(MachineMismatch::TooFewCores { needed, present: machine.cores });
        }
        let ram = self.ram_needed();
        if ram > machine.ram_bytes {
            return Err(MachineMismatch::TooLittleMemory { needed: ram, present: machine.ram_bytes });
        }
        let require_cat = self.platform().flags & PLATFORM_REQUIRE_CAT != 0;
        match machine.cat {
            None if require_cat => return Err(MachineMismatch::NoCat),
            None => {}
            Some((ways, _)) => {
                // Compared as u32: `first + count` can exceed 255 in a hostile table, and
                // a wrapped u8 would let it pass.
                let end = |(first, count): (u64, u64)| (first + count) as u32;
                let needed = (0..self.partitions.len())
                    .flat_map(|i| self.way_blocks(i))
                    .flatten()
                    .chain(self.hypervisor_ways().map(|(f, c)| (f as u64, c as u64)))
                    .map(end)
                    .max()
                    .unwrap_or(0)
                    .max(self.platform().llc_ways as u32);
                if needed > ways as u32 {
                    return Err(MachineMismatch::TooFewCacheWays { needed, present: ways });
                }
            }
        }
        Ok(())
    }
}
