//! On-disk structures of the partition table.

use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// First eight bytes of every table.
pub const MAGIC: [u8; 8] = *b"RHTABLE\0";
/// Major version: a reader refuses any other.
pub const VERSION_MAJOR: u16 = 1;
/// Minor version: additions that older readers may ignore. 1.1 appends
/// [`PartitionRestartFields`] to every partition entry; 1.2 appends
/// [`PartitionCacheFields`] after them (CDP code ways, MBA) and gives the platform the
/// `PLATFORM_CDP` flag and the hypervisor's own cache ways; 1.3 appends
/// [`PartitionKeepFields`] (the persistent region and the partition's arguments).
pub const VERSION_MINOR: u16 = 3;
/// Most cores a table can name (core ids `0..MAX_CORES`).
pub const MAX_CORES: usize = 256;
/// Most windows one schedule may hold.
pub const MAX_WINDOWS_PER_SCHEDULE: usize = 1 << 16;

/// `PartitionEntry::kind`: a Rust real-time partition (ELF image on the SDK).
pub const KIND_RT: u8 = 1;
/// `PartitionEntry::kind`: an unmodified Linux kernel.
pub const KIND_LINUX: u8 = 2;

/// `PartitionEntry::privileges`: may query other partitions' state.
pub const PRIV_QUERY: u32 = 1 << 0;
/// `PartitionEntry::privileges`: may restart other partitions.
pub const PRIV_RESTART: u32 = 1 << 1;
/// `PartitionEntry::privileges`: may halt the whole system.
pub const PRIV_HALT_SYSTEM: u32 = 1 << 2;
/// `PartitionEntry::privileges`: may use the management interface (list partitions,
/// read their counters and events, halt, start and restart any other partition):
/// the operator's partition.
pub const PRIV_MANAGE: u32 = 1 << 3;
/// Every privilege bit this version defines.
pub const PRIV_ALL: u32 = PRIV_QUERY | PRIV_RESTART | PRIV_HALT_SYSTEM | PRIV_MANAGE;

/// `PartitionEntry::flags`: `pinned_base` holds a host-physical base to place RAM at.
pub const PFLAG_PINNED: u8 = 1 << 0;

/// `ChannelEntry::kind`: the reader sees the latest message (ARINC 653 sampling port).
pub const CHANNEL_SAMPLING: u8 = 1;
/// `ChannelEntry::kind`: a FIFO of `depth` messages (ARINC 653 queuing port).
pub const CHANNEL_QUEUING: u8 = 2;

/// `ChannelEntry::linux_view`: the endpoint is not a Linux partition.
pub const LINUX_VIEW_NONE: u8 = 0;
/// `ChannelEntry::linux_view`: the endpoint is a Linux partition, which sees the channel
/// as a PCI function on bus 0 whose BAR2 is the channel's shared pages and whose BAR0 is
/// a read-only register block describing it ([`crate::bridge`]; the addresses follow
/// [`crate::limits::place_linux_bars`]).
pub const LINUX_VIEW_SHM: u8 = 1;
/// `ChannelEntry::linux_view`: reserved (once planned: the channel as an extra 16550
/// serial port). No hypervisor version implements it and the re-validator refuses it; the
/// language no longer has `linux tty`.
pub const LINUX_VIEW_TTY: u8 = 2;

/// `Platform::flags`: refuse to boot when the CPU cannot enforce the cache-way split.
pub const PLATFORM_REQUIRE_CAT: u8 = 1 << 0;
/// `Platform::flags` (since 1.2): use L3 code and data prioritisation (CDP) where the CPU
/// offers it; partitions may then give separate code ways.
pub const PLATFORM_CDP: u8 = 1 << 1;
/// Every `Platform::flags` bit this version defines.
pub const PLATFORM_FLAGS_ALL: u8 = PLATFORM_REQUIRE_CAT | PLATFORM_CDP;
/// Highest `PartitionCacheFields::mba_percent` (100: the whole memory bandwidth).
pub const MAX_MBA_PERCENT: u8 = 100;

/// Log levels (`Platform::log_level`).
pub const LOG_ERROR: u8 = 1;
pub const LOG_WARN: u8 = 2;
pub const LOG_INFO: u8 = 3;
pub const LOG_DEBUG: u8 = 4;
pub const LOG_TRACE: u8 = 5;

/// A string in the strings section.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned,
)]
#[repr(C)]
pub struct StrRef {
    pub offset: U32,
    pub len: U32,
}

/// A set of core ids `0..MAX_CORES` as a bit map.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned,
)]
#[repr(C)]
pub struct CoreSet {
    pub words: [U64; MAX_CORES / 64],
}

impl CoreSet {
    pub fn from_cores(cores: impl IntoIterator<Item = u32>) -> Self {
        let mut set = Self::default();
        for c in cores {
            set.insert(c);
        }
        set
    }

    /// Adds `core`; ids at or past [`MAX_CORES`] are ignored (the checker rejects them).
    pub fn insert(&mut self, core: u32) {
        if let Some(w) = self.words.get_mut(core as usize / 64) {
            *w = U64::new(w.get() | 1 << (core % 64));
        }
    }

    pub fn contains(&self, core: u32) -> bool {
        self.words.get(core as usize / 64).is_some_and(|w| w.get() & (1 << (core % 64)) != 0)
    }

    pub fn is_empty(&self) -> bool {
        self.words.iter().all(|w| w.get() == 0)
    }

    pub fn len(&self) -> u32 {
        self.words.iter().map(|w| w.get().count_ones()).sum()
    }

    pub fn intersects(&self, other: &CoreSet) -> bool {
        self.words.iter().zip(other.words.iter()).any(|(a, b)| a.get() & b.get() != 0)
    }

    /// The cores in ascending order.
    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        (0..MAX_CORES as u32).filter(move |c| self.contains(*c))
    }

    /// The highest core id in the set.
    pub fn max(&self) -> Option<u32> {
        self.words
            .iter()
            .enumerate()
            .rev()
            .find(|(_, w)| w.get() != 0)
            .map(|(i, w)| i as u32 * 64 + 63 - w.get().leading_zeros())
    }
}

/// Where a section lives in the file.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned,
)]
#[repr(C)]
pub struct Section {
    /// Byte offset from the start of the file.
    pub offset: U32,
    /// Number of entries (bytes, for the strings section).
    pub count: U32,
    /// Size of one entry as written (may exceed this reader's struct; never less).
    pub entry_size: U32,
}

/// The machine the table was written for. Zero in `cores`, `ram_bytes`, `llc_ways` or
/// `cat_min_ways` means `auto`: take it from the firmware at boot.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned,
)]
#[repr(C)]
pub struct Platform {
    pub cores: U32,
    /// I/O port of the console UART (0x3f8 for COM1).
    pub console_port: U16,
    pub llc_ways: u8,
    pub cat_min_ways: u8,
    pub ram_bytes: U64,
    /// Memory the hypervisor reserves for itself (code, page tables, VMCS, stacks).
    pub hv_reserved_bytes: U64,
    pub log_level: u8,
    /// `PLATFORM_*` flags.
    pub flags: u8,
    /// Since 1.2: the LLC ways of class of service 0, which the hypervisor and every
    /// partition without ways use; `hv_llc_way_count == 0` (and in a 1.1 table): the
    /// widest run of ways no partition uses, chosen at boot.
    pub hv_llc_first_way: u8,
    pub hv_llc_way_count: u8,
    pub _reserved: [u8; 4],
}

/// The file header.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
pub struct Header {
    pub magic: [u8; 8],
    pub version_major: U16,
    pub version_minor: U16,
    pub header_size: U32,
    pub total_size: U32,
    pub crc32: U32,
    pub platform: Platform,
    pub partitions: Section,
    pub schedules: Section,
    pub windows: Section,
    pub channels: Section,
    pub io_ranges: Section,
    pub mmio_ranges: Section,
    pub pci_functions: Section,
    pub strings: Section,
}

/// Byte offset of `Header::crc32` (zeroed while the checksum is computed).
pub const CRC_OFFSET: usize = 20;

/// One partition.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
pub struct PartitionEntry {
    pub name: StrRef,
    /// [`KIND_RT`] or [`KIND_LINUX`].
    pub kind: u8,
    /// `PFLAG_*`.
    pub flags: u8,
    /// First LLC way (CAT) and number of ways; `llc_way_count == 0`: not managed.
    pub llc_first_way: u8,
    pub llc_way_count: u8,
    /// `PRIV_*` bits.
    pub privileges: U32,
    /// Action per [`crate::health::EventClass`], as [`crate::health::Action`] codes.
    pub hm_actions: [u8; 8],
    /// Cores the partition runs on (dedicated, or through a schedule).
    pub cores: CoreSet,
    /// Guest RAM size (a multiple of 2 MiB).
    pub ram_bytes: U64,
    /// Host-physical base for the RAM when `flags & PFLAG_PINNED`.
    pub pinned_base: U64,
    /// ESP path of the image: the RT ELF, or the Linux kernel (vmlinux ELF or bzImage).
    pub image: StrRef,
    /// ESP path of the initramfs (Linux; empty when none).
    pub initramfs: StrRef,
    /// Kernel command line (Linux; empty when none).
    pub cmdline: StrRef,
}

impl PartitionEntry {
    /// Whether the partition runs Linux (else it is a real-time partition).
    ///
    /// ```
    /// use hallows_abi::table::{PartitionEntry, KIND_LINUX, KIND_RT};
    /// use zerocopy::FromZeros;
    /// let mut p = PartitionEntry::new_zeroed();
    /// p.kind = KIND_LINUX;
    /// assert!(p.is_linux());
    /// p.kind = KIND_RT;
    /// assert!(!p.is_linux());
    /// ```
    pub const fn is_linux(&self) -> bool {
        self.kind == KIND_LINUX
    }
}

/// Fields version 1.1 appends to every partition entry, right after the version 1.0
/// [`PartitionEntry`]: the partition's restart budget. More than `restart_limit` restarts
/// within `restart_window_ms` turn the next restart into a halt. Zero in either field
/// means its default ([`DEFAULT_RESTART_LIMIT`], [`DEFAULT_RESTART_WINDOW_MS`]); a 1.0
/// table's entries end before these fields, which then read as zero (see
/// [`crate::table::Table::restart_budget`]).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned,
)]
#[repr(C)]
pub struct PartitionRestartFields {
    pub restart_limit: U32,
    pub restart_window_ms: U32,
}

/// Fields version 1.2 appends to every partition entry, after [`PartitionRestartFields`]:
/// cache allocation beyond the data ways of [`PartitionEntry`]. A 1.0 or 1.1 table's
/// entries end before them; they then read as zero (no code ways, no bandwidth limit).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned,
)]
#[repr(C)]
pub struct PartitionCacheFields {
    /// With `PLATFORM_CDP`: the LLC ways for instruction fetches (the entry's
    /// `llc_first_way`/`llc_way_count` are then the data ways); count 0: code uses the
    /// data ways.
    pub llc_code_first_way: u8,
    pub llc_code_way_count: u8,
    /// Memory bandwidth allocation (MBA): the share of the memory bandwidth the
    /// partition's cores may use, 1 ..= [`MAX_MBA_PERCENT`]; 0: not limited.
    pub mba_percent: u8,
    pub _reserved: [u8; 5],
}

/// Fields version 1.3 appends to every partition entry, after [`PartitionCacheFields`]:
/// what a real-time partition keeps across its restarts and the text it is given. A 1.0
/// to 1.2 table's entries end before them; they then read as zero (no persistent region,
/// no arguments).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned,
)]
#[repr(C)]
pub struct PartitionKeepFields {
    /// Bytes of the persistent region (whole 4 KiB pages, at most
    /// [`crate::limits::PERSISTENT_MAX_BYTES`]); 0: none. RT partitions only.
    pub persistent_bytes: U64,
    /// The partition's arguments (printable ASCII, at most [`crate::limits::ARGS_MAX`]
    /// bytes; empty: none), given to it in its boot info. RT partitions only.
    pub args: StrRef,
}

/// What a version 1.2 writer appended to a 1.0 partition entry (the prefix of
/// [`PartitionAppendedFields`]); read to find the cache fields in a 1.2 table.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned,
)]
#[repr(C)]
pub struct PartitionAppendedFieldsV1_2 {
    pub restart: PartitionRestartFields,
    pub cache: PartitionCacheFields,
}

/// Everything appended to a 1.0 partition entry, as version 1.3 writes it.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned,
)]
#[repr(C)]
pub struct PartitionAppendedFields {
    pub restart: PartitionRestartFields,
    pub cache: PartitionCacheFields,
    pub keep: PartitionKeepFields,
}

/// Size of a partition entry in a version 1.0 table.
pub const PARTITION_ENTRY_SIZE_V1_0: usize = core::mem::size_of::<PartitionEntry>();
/// Size of a partition entry in a version 1.1 table.
pub const PARTITION_ENTRY_SIZE_V1_1: usize =
    PARTITION_ENTRY_SIZE_V1_0 + core::mem::size_of::<PartitionRestartFields>();
/// Size of a partition entry in a version 1.2 table.
pub const PARTITION_ENTRY_SIZE_V1_2: usize =
    PARTITION_ENTRY_SIZE_V1_0 + core::mem::size_of::<PartitionAppendedFieldsV1_2>();
/// Size of a partition entry as this version writes it: the 1.0 entry and the appended
/// [`PartitionAppendedFields`].
pub const PARTITION_ENTRY_SIZE: usize =
    PARTITION_ENTRY_SIZE_V1_0 + core::mem::size_of::<PartitionAppendedFields>();

/// Restarts a partition may have within its window when the table does not say.
pub const DEFAULT_RESTART_LIMIT: u32 = 3;
/// The restart window when the table does not say: 10 s.
pub const DEFAULT_RESTART_WINDOW_MS: u32 = 10_000;
/// Fewest restarts a budget may allow (zero in the table means the default).
pub const MIN_RESTART_LIMIT: u32 = 1;
/// Most restarts a budget may allow: the health monitor remembers this many restart times.
pub const MAX_RESTART_LIMIT: u32 = 16;
/// Shortest restart window: 1 ms.
pub const MIN_RESTART_WINDOW_MS: u32 = 1;
/// Longest restart window: 1 hour.
pub const MAX_RESTART_WINDOW_MS: u32 = 3_600_000;

/// One cyclic schedule (ARINC 653 major frame) shared by a set of cores.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
pub struct ScheduleEntry {
    pub cores: CoreSet,
    pub major_frame_ns: U64,
    pub first_window: U32,
    pub window_count: U32,
}

/// One window of a major frame.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
pub struct WindowEntry {
    /// Index of the partition that owns the window.
    pub partition: U32,
    pub _reserved: U32,
    /// Start relative to the major frame.
    pub offset_ns: U64,
    pub duration_ns: U64,
}

/// One channel: shared pages between a writer and a reader.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
pub struct ChannelEntry {
    pub name: StrRef,
    /// [`CHANNEL_SAMPLING`] or [`CHANNEL_QUEUING`].
    pub kind: u8,
    /// `LINUX_VIEW_*`: how a Linux endpoint sees the channel.
    pub linux_view: u8,
    pub _reserved: [u8; 2],
    /// Writer partition index.
    pub source: U32,
    /// Reader partition index.
    pub destination: U32,
    pub msg_size: U32,
    /// Messages the queue holds (1 for sampling).
    pub depth: U32,
    pub _reserved2: U32,
    /// Offset of the shared region inside the channel window (page aligned).
    pub window_offset: U64,
    /// Size of the shared region (whole pages).
    pub bytes: U64,
}

/// I/O ports `first .. first + count` passed through to a partition.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
pub struct IoRangeEntry {
    pub partition: U32,
    pub first: U32,
    pub count: U32,
}

/// Host-physical MMIO `base .. base + size` passed through (identity-mapped) to a partition.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
pub struct MmioRangeEntry {
    pub partition: U32,
    pub _reserved: U32,
    pub base: U64,
    pub size: U64,
}

/// A PCI function passed through to a partition.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
pub struct PciFunctionEntry {
    pub partition: U32,
    pub segment: U16,
    pub bus: u8,
    pub device: u8,
    pub function: u8,
    pub _reserved: [u8; 3],
}

const _: () = {
    assert!(core::mem::offset_of!(Header, crc32) == CRC_OFFSET);
    assert!(core::mem::size_of::<Header>() == 24 + 32 + 8 * 12);
    assert!(
        PARTITION_ENTRY_SIZE_V1_0 == 96
            && PARTITION_ENTRY_SIZE_V1_1 == 104
            && PARTITION_ENTRY_SIZE_V1_2 == 112
            && PARTITION_ENTRY_SIZE == 128
    );
};
