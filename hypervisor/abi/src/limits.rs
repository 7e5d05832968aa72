//! Every limit and layout rule a table must satisfy to boot, in one place.
//!
//! Three parties judge a table: the Parseltongue checker (with source spans), the
//! hypervisor's re-validator ([`crate::table::Table::validate`]) and the boot path
//! (placement, EPT, loaders, command line, boot info, file names). Each of them takes its
//! numbers and rules from here (or from the module that owns a layout: [`crate::layout`],
//! [`crate::bootinfo`], [`crate::channel`]), so a table the checker accepts is one the
//! hypervisor boots, and nothing is truncated or ignored on the way.
//!
//! The rules are pure functions over plain numbers and strings, so the checker (which
//! works on the syntax tree) and the re-validator (which works on the binary table) call
//! the very same code.

use crate::layout::{
    CHANNEL_WINDOW_BYTES, CHANNEL_WINDOW_GPA, IMAGE_BASE_GPA, LARGE_PAGE_SIZE, PAGE_SIZE,
    PERSISTENT_WINDOW_GPA, STACK_BYTES,
};

pub use crate::bootinfo::{ARGS_MAX, MAX_CHANNELS as MAX_CHANNELS_PER_PARTITION, NAME_MAX};

// ---------------------------------------------------------------------------------------
// Names and files.

/// ESP directory holding the table and every image it names.
pub const ESP_DIR: &str = "\\rusthallows\\";
/// The table's file name inside [`ESP_DIR`].
pub const TABLE_FILE: &str = "table.bin";
/// Longest image, kernel or initramfs name (bytes), relative to [`ESP_DIR`]. FAT long
/// names hold 255 UTF-16 units per component; the whole path stays well inside that.
pub const FILE_NAME_MAX: usize = 200;

/// Why a file name cannot be opened on the ESP as `\rusthallows\NAME`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileNameError {
    Empty,
    TooLong {
        len: usize,
        max: usize,
    },
    /// Starts with `/` or `\`: an absolute path would leave `\rusthallows\`.
    Absolute,
    /// An empty component (`a//b`) or one ending in `/`.
    EmptyComponent,
    /// A `.` or `..` component: the name must stay inside `\rusthallows\`.
    DotComponent,
    /// A character a FAT file name cannot hold (control characters, `"*:<>?|`) or one
    /// outside UCS-2 (the firmware's file names are UCS-2).
    BadCharacter {
        ch: char,
    },
    /// A component ending in `.` or a space (FAT drops them: another file would open).
    TrailingDotOrSpace,
}

impl core::fmt::Display for FileNameError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Empty => write!(f, "the file name is empty"),
            Self::TooLong { len, max } => write!(f, "the file name has {len} bytes, at most {max} fit"),
            Self::Absolute => write!(f, "the file name is absolute; it must be relative to \\rusthallows\\"),
            Self::EmptyComponent => write!(f, "the file name has an empty path component"),
            Self::DotComponent => {
                write!(f, "the file name has a `.` or `..` component; it must stay inside \\rusthallows\\")
            }
            Self::BadCharacter { ch } => {
                write!(f, "the file name holds {ch:?}, which a UEFI (FAT) file name cannot hold")
            }
            Self::TrailingDotOrSpace => write!(f, "a path component ends in `.` or a space"),
        }
    }
}

/// Checks that `name` opens as `\rusthallows\NAME` on a FAT ESP. `/` and `\` both
/// separate directories.
pub fn check_file_name(name: &str) -> Result<(), FileNameError> {
    if name.is_empty() {
        return Err(FileNameError::Empty);
    }
    if name.len() > FILE_NAME_MAX {
        return Err(FileNameError::TooLong { len: name.len(), max: FILE_NAME_MAX });
    }
    if let Some(ch) = name
        .chars()
        .find(|c| (*c as u32) < 0x20 || *c == '\u{7f}' || (*c as u32) > 0xFFFF || "\"*:<>?|".contains(*c))
    {
        return Err(FileNameError::BadCharacter { ch });
    }
    if name.starts_with(['/', '\\']) {
        return Err(FileNameError::Absolute);
    }
    for component in name.split(['/', '\\']) {
        if component.is_empty() {
            return Err(FileNameError::EmptyComponent);
        }
        if component == "." || component == ".." {
            return Err(FileNameError::DotComponent);
        }
        if component.ends_with(['.', ' ']) {
            return Err(FileNameError::TrailingDotOrSpace);
        }
    }
    Ok(())
}

/// The ESP path of a table-named file: `\rusthallows\` then `name` with `/` as `\`.
/// Only meaningful for names [`check_file_name`] accepts.
pub fn esp_path_chars(name: &str) -> impl Iterator<Item = char> + '_ {
    ESP_DIR.chars().chain(name.chars().map(|c| if c == '/' { '\\' } else { c }))
}

/// Why a partition or channel name does not fit the boot info's name field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameError {
    Empty,
    /// Longer than [`NAME_MAX`] bytes: boot info would cut it, and the SDK could never
    /// find the channel (or the partition its own name) by it.
    TooLong {
        len: usize,
    },
}

/// Checks a partition or channel name against the boot info's name field.
pub fn check_name(name: &str) -> Result<(), NameError> {
    match name.len() {
        0 => Err(NameError::Empty),
        len if len > NAME_MAX => Err(NameError::TooLong { len }),
        _ => Ok(()),
    }
}

// ---------------------------------------------------------------------------------------
// I/O ports the hypervisor itself uses.

/// The hypervisor's console when the table says `console 0` or nothing: COM1. The
/// hypervisor prints on COM1 from its first instruction; a non-zero table port moves it
/// there once the table is read, and COM1 is not touched again.
pub const DEFAULT_CONSOLE_PORT: u16 = 0x3f8;
/// Registers of a 16550 UART: base .. base + 8. Any of them reprograms the UART.
pub const UART_PORTS: u32 = 8;

/// A block of I/O ports the hypervisor drives itself; never passed through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReservedPorts {
    pub first: u32,
    pub count: u32,
    pub what: &'static str,
}

/// Ports the hypervisor owns on every machine, besides its console UART:
/// - the PICs' mask registers, which it writes to keep legacy interrupts off every core;
/// - PCI configuration mechanism #1 (0xCF8-0xCFF, with the reset control register
///   0xCF9): whoever owns it reprograms every device's BARs and can reset the machine;
/// - the emulator power-off port the hypervisor writes to halt the system.
pub const HYPERVISOR_PORTS: [ReservedPorts; 4] = [
    ReservedPorts { first: 0x20, count: 2, what: "the master PIC" },
    ReservedPorts { first: 0xA0, count: 2, what: "the slave PIC" },
    ReservedPorts { first: 0xCF8, count: 8, what: "PCI configuration space (and the reset register 0xCF9)" },
    ReservedPorts { first: 0x8900, count: 1, what: "the emulator power-off port" },
];

/// The console UART's base port for a table's `console_port` (0 keeps the default).
pub const fn console_base(console_port: u16) -> u16 {
    if console_port == 0 {
        DEFAULT_CONSOLE_PORT
    } else {
        console_port
    }
}

/// Whether a console port leaves room for the UART's 8 registers below 0x10000.
pub const fn console_port_fits(console_port: u16) -> bool {
    console_base(console_port) as u32 + UART_PORTS <= 0x1_0000
}

/// The hypervisor's console UART as a reserved port block.
pub const fn console_ports(console_port: u16) -> ReservedPorts {
    ReservedPorts { first: console_base(console_port) as u32, count: UART_PORTS, what: "the console UART" }
}

/// The first port block the hypervisor owns that `first .. first + count` touches: the
/// console UART (any of its registers) or one of [`HYPERVISOR_PORTS`].
pub fn reserved_port_conflict(console_port: u16, first: u32, count: u32) -> Option<ReservedPorts> {
    let end = first as u64 + count as u64;
    core::iter::once(console_ports(console_port))
        .chain(HYPERVISOR_PORTS)
        .find(|r| (first as u64) < r.first as u64 + r.count as u64 && (r.first as u64) < end)
}

// ---------------------------------------------------------------------------------------
// Guest-physical maps.

/// Guest-physical addresses EPT can map (4-level EPT): passed-through MMIO, mapped at
/// its host-physical address, must end below this.
pub const GUEST_PHYS_LIMIT: u64 = 1 << 48;

/// Host-physical addresses EPT can point to (the architectural maximum): pinned RAM
/// must end below this.
pub const HOST_PHYS_LIMIT: u64 = 1 << 52;

/// Whether RAM pinned at host-physical `base` with `bytes` can be placed and mapped:
/// 2 MiB aligned and ending at or below [`HOST_PHYS_LIMIT`].
pub const fn pinned_fits(base: u64, bytes: u64) -> bool {
    base.is_multiple_of(LARGE_PAGE_SIZE)
        && match base.checked_add(bytes) {
            Some(end) => end <= HOST_PHYS_LIMIT,
            None => false,
        }
}

/// A block of host-physical MMIO the hypervisor keeps for itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReservedMmio {
    pub base: u64,
    pub size: u64,
    pub what: &'static str,
}

/// MMIO never passed through: the interrupt address range, holding the local APIC page
/// the hypervisor sends IPIs through (xAPIC mode) and the MSI target addresses, and the
/// I/O APIC's architectural default page (its owner could route interrupts to any core).
pub const HYPERVISOR_MMIO: [ReservedMmio; 2] = [
    ReservedMmio { base: 0xFEC0_0000, size: 0x1000, what: "the I/O APIC" },
    ReservedMmio { base: 0xFEE0_0000, size: 0x10_0000, what: "the local APICs and MSI address range" },
];

/// The first hypervisor-owned MMIO block that `base .. base + size` touches.
pub fn reserved_mmio_conflict(base: u64, size: u64) -> Option<ReservedMmio> {
    let end = base.saturating_add(size);
    HYPERVISOR_MMIO.into_iter().find(|r| base < r.base + r.size && r.base < end)
}

/// Why a passed-through MMIO range cannot be mapped into its partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MmioConflict {
    /// It reaches past [`GUEST_PHYS_LIMIT`].
    BeyondGuestPhysical,
    /// It overlaps the partition's own RAM (guest-physical `0 .. ram_bytes`): MMIO is
    /// mapped at guest-physical = host-physical.
    InsideRam,
    /// It overlaps the channel window of a partition that has channels (for a Linux
    /// partition: its bridge window, where its channel functions' BARs are).
    InsideChannelWindow,
    /// It overlaps the persistent region of an RT partition that has one
    /// ([`PERSISTENT_WINDOW_GPA`]).
    InsidePersistentRegion,
}

/// What of a partition's guest-physical map an MMIO range must keep clear of.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GuestMap {
    /// RAM, guest-physical `0 .. ram_bytes`.
    pub ram_bytes: u64,
    pub has_channels: bool,
    pub linux: bool,
    /// Bytes of the persistent region at [`PERSISTENT_WINDOW_GPA`] (RT only; 0: none).
    pub persistent_bytes: u64,
}

/// Checks an MMIO range (`base`, `size`, already page aligned and non-empty) against the
/// guest-physical map of a partition. A Linux partition's channels are in its bridge
/// window ([`LINUX_BRIDGE_BARS_GPA`] .. [`LINUX_BRIDGE_WINDOW_END`]), an RT partition's in
/// the channel window; an RT partition's persistent region is at [`PERSISTENT_WINDOW_GPA`].
pub fn mmio_conflict(base: u64, size: u64, map: GuestMap) -> Option<MmioConflict> {
    let GuestMap { ram_bytes, has_channels, linux, persistent_bytes } = map;
    let end = base.checked_add(size)?;
    let overlaps = |start: u64, bytes: u64| base < start.saturating_add(bytes) && start < end;
    let (window, window_bytes) = if linux {
        (LINUX_BRIDGE_BARS_GPA, LINUX_BRIDGE_WINDOW_END - LINUX_BRIDGE_BARS_GPA)
    } else {
        (CHANNEL_WINDOW_GPA, CHANNEL_WINDOW_BYTES)
    };
    if end > GUEST_PHYS_LIMIT {
        Some(MmioConflict::BeyondGuestPhysical)
    } else if overlaps(0, ram_bytes) {
        Some(MmioConflict::InsideRam)
    } else if has_channels && overlaps(window, window_bytes) {
        Some(MmioConflict::InsideChannelWindow)
    } else if !linux && persistent_bytes > 0 && overlaps(PERSISTENT_WINDOW_GPA, persistent_bytes) {
        Some(MmioConflict::InsidePersistentRegion)
    } else {
        None
    }
}

/// Room an RT partition needs at least between the image base and its stacks, for its
/// image and heap; the image itself is checked against the real room at load.
pub const RT_MIN_IMAGE_ROOM: u64 = 256 << 10;

/// The lowest stack's bottom in an RT partition with `ram_bytes` of RAM and `vcpus`
/// vCPUs (one [`STACK_BYTES`] stack each, vCPU 0 highest), or `None` when the stacks do
/// not fit.
pub const fn stacks_bottom(ram_bytes: u64, vcpus: u32) -> Option<u64> {
    match (vcpus as u64).checked_mul(STACK_BYTES) {
        Some(stacks) => ram_bytes.checked_sub(stacks),
        None => None,
    }
}

/// Bytes between [`IMAGE_BASE_GPA`] and the stacks: what the image and heap get.
pub const fn rt_image_room(ram_bytes: u64, vcpus: u32) -> u64 {
    match stacks_bottom(ram_bytes, vcpus) {
        Some(bottom) => bottom.saturating_sub(IMAGE_BASE_GPA),
        None => 0,
    }
}

/// The smallest RAM (a multiple of 2 MiB) an RT partition with `vcpus` vCPUs needs.
pub const fn rt_min_ram_for(vcpus: u32) -> u64 {
    let needed = IMAGE_BASE_GPA + RT_MIN_IMAGE_ROOM + vcpus as u64 * STACK_BYTES;
    needed.div_ceil(LARGE_PAGE_SIZE) * LARGE_PAGE_SIZE
}

// ---------------------------------------------------------------------------------------
// Memory the hypervisor places.

/// Rounds up to the 2 MiB granule every placed block has (`None` on overflow).
pub const fn round_to_large_page(bytes: u64) -> Option<u64> {
    match bytes.checked_add(LARGE_PAGE_SIZE - 1) {
        Some(b) => Some(b & !(LARGE_PAGE_SIZE - 1)),
        None => None,
    }
}

/// Host RAM a table needs, exactly as placement takes it: the hypervisor reservation,
/// every partition's RAM, every persistent region (its own block, 0 for none) and one
/// block for the channel window up to its highest region end, each rounded up to 2 MiB.
/// Saturates instead of overflowing.
pub fn ram_needed(
    hv_reserved: u64,
    partitions: impl IntoIterator<Item = u64>,
    persistent: impl IntoIterator<Item = u64>,
    channel_window_end: u64,
) -> u64 {
    let round = |b: u64| round_to_large_page(b).unwrap_or(u64::MAX);
    partitions
        .into_iter()
        .chain(persistent)
        .map(round)
        .fold(round(hv_reserved), u64::saturating_add)
        .saturating_add(round(channel_window_end))
}

// ---------------------------------------------------------------------------------------
// What an RT partition keeps across its restarts, and the text it is given.

/// The largest persistent region a partition may have: the window at
/// [`PERSISTENT_WINDOW_GPA`] is this long.
pub const PERSISTENT_MAX_BYTES: u64 = 64 << 20;

/// Why a persistent region's size cannot be placed and mapped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PersistentError {
    /// Zero bytes (a table entry says "none" with zero; the language then leaves it out).
    Empty,
    /// Not a whole number of 4 KiB pages.
    Misaligned,
    /// Larger than [`PERSISTENT_MAX_BYTES`].
    TooLarge { max: u64 },
}

impl core::fmt::Display for PersistentError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Empty => write!(f, "the persistent region is empty"),
            Self::Misaligned => write!(f, "the persistent region is not a multiple of 4 KiB"),
            Self::TooLarge { max } => write!(f, "the persistent region exceeds {} MiB", max >> 20),
        }
    }
}

/// Checks the size of a persistent region (present, so non-zero).
pub const fn check_persistent(bytes: u64) -> Result<(), PersistentError> {
    if bytes == 0 {
        Err(PersistentError::Empty)
    } else if !bytes.is_multiple_of(PAGE_SIZE) {
        Err(PersistentError::Misaligned)
    } else if bytes > PERSISTENT_MAX_BYTES {
        Err(PersistentError::TooLarge { max: PERSISTENT_MAX_BYTES })
    } else {
        Ok(())
    }
}

/// Why a partition's `args` text cannot be given to it in its boot info.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArgsError {
    /// Longer than [`ARGS_MAX`] bytes (the boot info's field).
    TooLong { len: usize, max: usize },
    /// A byte that is not printable ASCII (0x20 ..= 0x7e), at this offset.
    NotPrintable { offset: usize },
}

impl core::fmt::Display for ArgsError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::TooLong { len, max } => write!(f, "the arguments have {len} bytes, at most {max} fit"),
            Self::NotPrintable { offset } => {
                write!(f, "the arguments hold a byte that is not printable ASCII at offset {offset}")
            }
        }
    }
}

/// Checks an RT partition's arguments: printable ASCII, at most [`ARGS_MAX`] bytes.
pub fn check_args(args: &str) -> Result<(), ArgsError> {
    if let Some(offset) = args.bytes().position(|b| !(0x20..=0x7e).contains(&b)) {
        return Err(ArgsError::NotPrintable { offset });
    }
    if args.len() > ARGS_MAX {
        return Err(ArgsError::TooLong { len: args.len(), max: ARGS_MAX });
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Cache ways.

/// Most LLC ways a table can describe (`Platform::llc_ways` is a `u8`): way ids run
/// from 0 to `MAX_LLC_WAYS - 1`, so a partition's `first + count` never exceeds it.
pub const MAX_LLC_WAYS: u32 = u8::MAX as u32;

// ---------------------------------------------------------------------------------------
// Linux partitions.

/// The smallest RAM a Linux partition may have.
pub const LINUX_MIN_RAM: u64 = 64 << 20;

/// The largest RAM a Linux partition may have: it is mapped from guest-physical 0, and
/// EPT maps guest-physical addresses below [`GUEST_PHYS_LIMIT`].
pub const LINUX_MAX_RAM: u64 = GUEST_PHYS_LIMIT;

/// Longest Linux command line, without its NUL: x86-64 Linux's `COMMAND_LINE_SIZE` is
/// 2048 (the boot protocol's `cmdline_size` of 2047); the hypervisor never gives more.
pub const LINUX_CMDLINE_MAX: usize = 2047;

/// Kernel parameters the hypervisor appends to every Linux command line:
/// - `noapic`: there is no I/O APIC; with it Linux 6.1 keeps the x2APIC mode the
///   hypervisor enabled (see `hallows_core::linux_vcpu`).
/// - `tsc=reliable`: the partition has no second clock (no HPET, PM timer or PIT), so
///   Linux's clocksource watchdog would compare the TSC with jiffies, which are driven by
///   the TSC-deadline timer itself and lag whenever interrupts are held off (printing to
///   the trapped UART under an emulator takes long): it then wrongly marks the TSC
///   unstable and falls back to the jiffies clocksource.
/// - `pci=noacpi,conf1`: the partition's ACPI tables describe no PCI host bridge, so Linux
///   would scan no bus; `noacpi` makes it scan bus 0 through the configuration ports itself
///   (where the hybrid bridge's channel functions are, see [`crate::bridge`]), and `conf1`
///   picks configuration mechanism #1 without the sanity check that wants a host bridge,
///   a VGA or an Intel device on bus 0 (there is only what the table gives the partition).
///   Linux keeps the fixed BARs it finds (they lie outside every e820 range).
/// - `reboot=acpi`: a reboot writes the FADT's reset register, a port the hypervisor traps
///   (a restart of the partition). Without it Linux 6.1 on hardware-reduced ACPI picks an
///   EFI reboot, finds no EFI runtime and jumps to the BIOS reset vector in real mode,
///   where the partition has zeros: it hangs on a HLT with interrupts off, never asking.
pub const LINUX_CMDLINE_SUFFIX: &str = " noapic tsc=reliable pci=noacpi,conf1 reboot=acpi";

/// What a table's command line may hold: the kernel's maximum minus the suffix.
pub const LINUX_CMDLINE_BUDGET: usize = LINUX_CMDLINE_MAX - LINUX_CMDLINE_SUFFIX.len();

/// Why a table's Linux command line cannot be given to the kernel as written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CmdlineError {
    TooLong {
        len: usize,
        max: usize,
    },
    /// A NUL or another control character (the kernel would stop at a NUL, and reads
    /// newlines and tabs as separators the table author did not see).
    ControlCharacter {
        offset: usize,
    },
}

impl core::fmt::Display for CmdlineError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::TooLong { len, max } => write!(f, "the command line has {len} bytes, at most {max} fit"),
            Self::ControlCharacter { offset } => write!(f, "a control character at byte {offset}"),
        }
    }
}

/// Checks a table's Linux command line (before the hypervisor's suffix).
pub fn check_linux_cmdline(cmdline: &str) -> Result<(), CmdlineError> {
    if let Some(offset) = cmdline.bytes().position(|b| b < 0x20 || b == 0x7f) {
        return Err(CmdlineError::ControlCharacter { offset });
    }
    if cmdline.len() > LINUX_CMDLINE_BUDGET {
        return Err(CmdlineError::TooLong { len: cmdline.len(), max: LINUX_CMDLINE_BUDGET });
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// The hybrid bridge: where a Linux partition sees its channels (see [`crate::bridge`]).

/// Guest-physical base of the window holding the BAR2s (shared pages) of a Linux
/// partition's channel functions. Below 4 GiB (so the BARs need no 64-bit window from a
/// host bridge), clear of the RT channel window's use and of [`HYPERVISOR_MMIO`].
pub const LINUX_BRIDGE_BARS_GPA: u64 = 0xE000_0000;
/// Size of the BAR2 window: as large as the whole channel window.
pub const LINUX_BRIDGE_BARS_BYTES: u64 = CHANNEL_WINDOW_BYTES;
/// Guest-physical base of the channel functions' register blocks (BAR0s), one
/// [`crate::bridge::REGISTER_BLOCK_BYTES`] block per channel, in the partition's channel
/// order, right after the BAR2 window.
pub const LINUX_BRIDGE_REGISTERS_GPA: u64 = LINUX_BRIDGE_BARS_GPA + LINUX_BRIDGE_BARS_BYTES;
/// The whole bridge window of a Linux partition: BAR2 window, then one register block per
/// channel the boot info can describe.
pub const LINUX_BRIDGE_WINDOW_END: u64 =
    LINUX_BRIDGE_REGISTERS_GPA + MAX_CHANNELS_PER_PARTITION as u64 * crate::bridge::REGISTER_BLOCK_BYTES;
/// The largest RAM a Linux partition with channels may have: its RAM is mapped from
/// guest-physical 0 (and its e820 map says so), so it must end below the bridge window.
pub const LINUX_MAX_RAM_WITH_CHANNELS: u64 = LINUX_BRIDGE_BARS_GPA;
/// PCI device number (bus 0, function 0) of a Linux partition's first channel function;
/// the `n`-th channel of the partition is device `LINUX_BRIDGE_FIRST_DEVICE + n`.
pub const LINUX_BRIDGE_FIRST_DEVICE: u8 = 1;

/// Guest-physical address of the register block (BAR0) of a Linux partition's `n`-th
/// channel (0-based, the table's channel order).
pub const fn linux_bridge_registers_gpa(n: usize) -> u64 {
    LINUX_BRIDGE_REGISTERS_GPA + n as u64 * crate::bridge::REGISTER_BLOCK_BYTES
}

/// The Linux bridge window cannot hold the BARs of the partition's channels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BridgeWindowFull {
    /// Index (in the partition's channel order) of the first channel that does not fit.
    pub channel: usize,
    /// Bytes of the window the BARs up to and including it would need.
    pub needed: u64,
}

/// Offsets of the BAR2s inside [`LINUX_BRIDGE_BARS_GPA`] for a Linux partition whose
/// channels have shared regions of `region_bytes` (its channel order): each BAR is
/// [`crate::bridge::shared_bar_bytes`] long and naturally aligned (PCI's rule for memory
/// BARs), placed in that order after the previous one. The checker and the boot plan
/// both place the BARs with this function, so they agree on capacity and addresses.
pub fn place_linux_bars(
    region_bytes: impl IntoIterator<Item = u64>,
    mut placed: impl FnMut(usize, u64, u64),
) -> Result<(), BridgeWindowFull> {
    let mut end = 0u64;
    for (i, region) in region_bytes.into_iter().enumerate() {
        let size = crate::bridge::shared_bar_bytes(region);
        let offset = end.checked_next_multiple_of(size).unwrap_or(u64::MAX);
        let new_end = offset.saturating_add(size);
        if new_end > LINUX_BRIDGE_BARS_BYTES {
            return Err(BridgeWindowFull { channel: i, needed: new_end });
        }
        placed(i, offset, size);
        end = new_end;
    }
    Ok(())
}

/// Whether a Linux partition with `ram_bytes` of RAM and channels leaves the bridge
/// window free (its RAM must end at or below [`LINUX_MAX_RAM_WITH_CHANNELS`]).
pub const fn linux_ram_fits_bridge(ram_bytes: u64) -> bool {
    ram_bytes <= LINUX_MAX_RAM_WITH_CHANNELS
}

/// The command line the kernel gets: the table's, then [`LINUX_CMDLINE_SUFFIX`]. Only
/// for command lines [`check_linux_cmdline`] accepts.
pub fn linux_cmdline_parts(cmdline: &str) -> [&str; 2] {
    [cmdline, LINUX_CMDLINE_SUFFIX]
}

const _: () = assert!(PAGE_SIZE.is_power_of_two() && LARGE_PAGE_SIZE.is_multiple_of(PAGE_SIZE));
const _: () = assert!(rt_min_ram_for(1) == crate::layout::RT_MIN_RAM);

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn file_names_stay_inside_the_esp_directory() {
        for good in ["hello.elf", "linux/vmlinux", "a\\b.cpio", "bzImage", "é.elf", "a b.elf"] {
            assert_eq!(check_file_name(good), Ok(()), "{good}");
        }
        assert_eq!(check_file_name(""), Err(FileNameError::Empty));
        assert_eq!(check_file_name("/etc/x"), Err(FileNameError::Absolute));
        assert_eq!(check_file_name("\\EFI\\BOOT\\BOOTX64.EFI"), Err(FileNameError::Absolute));
        assert_eq!(check_file_name("../table.bin"), Err(FileNameError::DotComponent));
        assert_eq!(check_file_name("a/./b"), Err(FileNameError::DotComponent));
        assert_eq!(check_file_name("a//b"), Err(FileNameError::EmptyComponent));
        assert_eq!(check_file_name("a/"), Err(FileNameError::EmptyComponent));
        assert_eq!(check_file_name("a."), Err(FileNameError::TrailingDotOrSpace));
        assert_eq!(check_file_name("a "), Err(FileNameError::TrailingDotOrSpace));
        assert_eq!(check_file_name("a:b"), Err(FileNameError::BadCharacter { ch: ':' }));
        assert_eq!(check_file_name("a\0b"), Err(FileNameError::BadCharacter { ch: '\0' }));
        assert_eq!(check_file_name("a\u{1F600}"), Err(FileNameError::BadCharacter { ch: '\u{1F600}' }));
        let long = "x".repeat(FILE_NAME_MAX + 1);
        assert_eq!(
            check_file_name(&long),
            Err(FileNameError::TooLong { len: FILE_NAME_MAX + 1, max: FILE_NAME_MAX })
        );
        assert_eq!(esp_path_chars("a/b.elf").collect::<std::string::String>(), "\\rusthallows\\a\\b.elf");
    }

    #[test]
    fn names_fit_the_boot_info_field() {
        assert_eq!(check_name("a"), Ok(()));
        assert_eq!(check_name(&"n".repeat(NAME_MAX)), Ok(()));
        assert_eq!(check_name(&"n".repeat(NAME_MAX + 1)), Err(NameError::TooLong { len: NAME_MAX + 1 }));
        assert_eq!(check_name(""), Err(NameError::Empty));
    }

    #[test]
    fn every_console_register_and_hypervisor_port_is_reserved() {
        for port in 0x3f8..0x400 {
            assert_eq!(reserved_port_conflict(0x3f8, port, 1).map(|r| r.what), Some("the console UART"));
            assert_eq!(reserved_port_conflict(0, port, 1).map(|r| r.what), Some("the console UART"));
        }
        assert_eq!(reserved_port_conflict(0x3f8, 0x3f0, 8), None);
        assert_eq!(reserved_port_conflict(0x3f8, 0x400, 8), None);
        assert!(reserved_port_conflict(0x2f8, 0x3f8, 8).is_none(), "the console moved to COM2");
        assert!(reserved_port_conflict(0x2f8, 0x2ff, 1).is_some());
        assert!(reserved_port_conflict(0x3f8, 0xCF9, 1).is_some());
        assert!(reserved_port_conflict(0x3f8, 0x21, 1).is_some());
        assert!(reserved_port_conflict(0x3f8, 0x8900, 1).is_some());
        assert!(reserved_port_conflict(0x3f8, 0, 0x1_0000).is_some());
        assert!(console_port_fits(0xfff8) && !console_port_fits(0xfff9) && console_port_fits(0));
    }

    #[test]
    fn linux_mmio_must_not_cover_the_bridge_window() {
        const MIB: u64 = 1 << 20;
        let inside = Some(MmioConflict::InsideChannelWindow);
        let linux =
            |has_channels| GuestMap { ram_bytes: 64 * MIB, has_channels, linux: true, persistent_bytes: 0 };
        assert_eq!(mmio_conflict(LINUX_BRIDGE_BARS_GPA, 0x1000, linux(true)), inside);
        assert_eq!(mmio_conflict(LINUX_BRIDGE_WINDOW_END - 0x1000, 0x1000, linux(true)), inside);
        assert_eq!(mmio_conflict(LINUX_BRIDGE_WINDOW_END, 0x1000, linux(true)), None);
        assert_eq!(mmio_conflict(LINUX_BRIDGE_BARS_GPA, 0x1000, linux(false)), None);
        // The RT channel window means nothing to a Linux partition.
        assert_eq!(mmio_conflict(CHANNEL_WINDOW_GPA, 0x1000, linux(true)), None);
    }

    #[test]
    fn the_bridge_window_is_clear_of_the_hypervisor_and_below_4_gib() {
        const { assert!(LINUX_BRIDGE_WINDOW_END <= 1 << 32) };
        assert_eq!(
            reserved_mmio_conflict(LINUX_BRIDGE_BARS_GPA, LINUX_BRIDGE_WINDOW_END - LINUX_BRIDGE_BARS_GPA),
            None
        );
        assert!(LINUX_BRIDGE_BARS_GPA.is_multiple_of(LINUX_BRIDGE_BARS_BYTES));
        assert!(
            linux_ram_fits_bridge(LINUX_BRIDGE_BARS_GPA) && !linux_ram_fits_bridge(LINUX_BRIDGE_BARS_GPA + 1)
        );
        assert_eq!(linux_bridge_registers_gpa(1) - linux_bridge_registers_gpa(0), 4096);
        assert!(linux_bridge_registers_gpa(MAX_CHANNELS_PER_PARTITION) <= LINUX_BRIDGE_WINDOW_END);
    }

    #[test]
    fn linux_bars_are_naturally_aligned_and_do_not_overlap() {
        let regions = [4096u64, 3 * 4096, 4096, 1 << 20, 5000];
        let mut got = std::vec::Vec::new();
        place_linux_bars(regions, |i, offset, size| got.push((i, offset, size))).unwrap();
        assert_eq!(
            got,
            [
                (0, 0, 4096),
                (1, 0x4000, 0x4000),
                (2, 0x8000, 4096),
                (3, 0x10_0000, 0x10_0000),
                (4, 0x20_0000, 0x2000)
            ]
        );
        let full =
            place_linux_bars([LINUX_BRIDGE_BARS_BYTES / 2, 4096, LINUX_BRIDGE_BARS_BYTES / 2], |_, _, _| {});
        assert_eq!(full, Err(BridgeWindowFull { channel: 2, needed: LINUX_BRIDGE_BARS_BYTES * 3 / 2 }));
        assert_eq!(place_linux_bars([LINUX_BRIDGE_BARS_BYTES], |_, _, _| {}), Ok(()));
    }

    proptest! {
        #[test]
        fn placed_bars_stay_in_the_window(regions in proptest::collection::vec(1u64..(64 << 20), 0..16)) {
            let mut placed = std::vec::Vec::new();
            let result = place_linux_bars(regions.iter().copied(), |i, offset, size| placed.push((i, offset, size)));
            for (n, &(i, offset, size)) in placed.iter().enumerate() {
                prop_assert_eq!(i, n);
                prop_assert!(size >= regions[i] && size.is_power_of_two());
                prop_assert!(offset % size == 0 && offset + size <= LINUX_BRIDGE_BARS_BYTES);
                if n > 0 {
                    let (_, prev_offset, prev_size) = placed[n - 1];
                    prop_assert!(prev_offset + prev_size <= offset);
                }
            }
            prop_assert_eq!(result.is_ok(), placed.len() == regions.len());
        }
    }

    #[test]
    fn the_apics_are_never_passed_through() {
        assert_eq!(reserved_mmio_conflict(0xFEE0_0000, 0x1000).map(|r| r.base), Some(0xFEE0_0000));
        assert_eq!(reserved_mmio_conflict(0xFE00_0000, 0x200_0000).map(|r| r.base), Some(0xFEC0_0000));
        assert_eq!(reserved_mmio_conflict(0xFEF0_0000, 0x1000), None);
        assert_eq!(reserved_mmio_conflict(0xFEC0_1000, 0x1000), None);
    }

    #[test]
    fn mmio_must_not_cover_ram_or_the_channel_window() {
        const MIB: u64 = 1 << 20;
        let rt = |ram_bytes, has_channels| GuestMap { ram_bytes, has_channels, ..GuestMap::default() };
        assert_eq!(mmio_conflict(0x1000, 0x1000, rt(4 * MIB, false)), Some(MmioConflict::InsideRam));
        assert_eq!(mmio_conflict(4 * MIB, 0x1000, rt(4 * MIB, false)), None);
        assert_eq!(mmio_conflict(CHANNEL_WINDOW_GPA, 0x1000, rt(4 * MIB, false)), None);
        assert_eq!(
            mmio_conflict(CHANNEL_WINDOW_GPA - 0x1000, 0x2000, rt(4 * MIB, true)),
            Some(MmioConflict::InsideChannelWindow)
        );
        assert_eq!(
            mmio_conflict(GUEST_PHYS_LIMIT - 0x1000, 0x2000, rt(0, false)),
            Some(MmioConflict::BeyondGuestPhysical)
        );
        let keeping = GuestMap { persistent_bytes: 64 << 10, ..rt(4 * MIB, false) };
        assert_eq!(
            mmio_conflict(PERSISTENT_WINDOW_GPA + 0xF000, 0x1000, keeping),
            Some(MmioConflict::InsidePersistentRegion)
        );
        assert_eq!(mmio_conflict(PERSISTENT_WINDOW_GPA + 0x1_0000, 0x1000, keeping), None);
        assert_eq!(mmio_conflict(PERSISTENT_WINDOW_GPA, 0x1000, rt(4 * MIB, false)), None);
    }

    #[test]
    fn pinned_ram_is_aligned_and_addressable() {
        assert!(pinned_fits(0x40_0000_0000, 2 << 30));
        assert!(!pinned_fits(0x10_0000, 2 << 20));
        assert!(pinned_fits(HOST_PHYS_LIMIT - LARGE_PAGE_SIZE, LARGE_PAGE_SIZE));
        assert!(!pinned_fits(HOST_PHYS_LIMIT, LARGE_PAGE_SIZE));
        assert!(!pinned_fits(u64::MAX - LARGE_PAGE_SIZE + 1, LARGE_PAGE_SIZE));
    }

    #[test]
    fn stacks_and_image_room() {
        assert_eq!(stacks_bottom(2 << 20, 1), Some((2 << 20) - STACK_BYTES));
        assert_eq!(stacks_bottom(2 << 20, u32::MAX), None);
        assert_eq!(rt_image_room(2 << 20, 16), 0);
        assert_eq!(rt_min_ram_for(1), 2 << 20);
        assert_eq!(rt_min_ram_for(32), 4 << 20);
        for vcpus in 1..=256 {
            assert!(rt_image_room(rt_min_ram_for(vcpus), vcpus) >= RT_MIN_IMAGE_ROOM);
            assert!(rt_image_room(rt_min_ram_for(vcpus) - LARGE_PAGE_SIZE, vcpus) < RT_MIN_IMAGE_ROOM);
        }
    }

    #[test]
    fn linux_command_lines_leave_room_for_the_suffix() {
        assert_eq!(check_linux_cmdline("console=ttyS0"), Ok(()));
        let max = "x".repeat(LINUX_CMDLINE_BUDGET);
        assert_eq!(check_linux_cmdline(&max), Ok(()));
        assert_eq!(max.len() + LINUX_CMDLINE_SUFFIX.len(), LINUX_CMDLINE_MAX);
        assert_eq!(
            check_linux_cmdline(&(max + "x")),
            Err(CmdlineError::TooLong { len: LINUX_CMDLINE_BUDGET + 1, max: LINUX_CMDLINE_BUDGET })
        );
        assert_eq!(check_linux_cmdline("a\0b"), Err(CmdlineError::ControlCharacter { offset: 1 }));
        assert_eq!(check_linux_cmdline("a\nb"), Err(CmdlineError::ControlCharacter { offset: 1 }));
        assert_eq!(linux_cmdline_parts("q").concat(), "q noapic tsc=reliable pci=noacpi,conf1 reboot=acpi");
    }

    #[test]
    fn ram_needed_rounds_like_placement() {
        const MIB: u64 = 1 << 20;
        assert_eq!(ram_needed(32 * MIB, [4 * MIB], [], 0x1000), 38 * MIB);
        assert_eq!(ram_needed(32 * MIB, [], [], 0), 32 * MIB);
        // A persistent region is a block of its own; "none" (0) takes nothing.
        assert_eq!(ram_needed(32 * MIB, [4 * MIB], [64 << 10, 0], 0), 38 * MIB);
        assert_eq!(ram_needed(u64::MAX, [u64::MAX], [u64::MAX], u64::MAX), u64::MAX);
    }

    #[test]
    fn persistent_regions_are_whole_pages_up_to_the_limit() {
        assert_eq!(check_persistent(64 << 10), Ok(()));
        assert_eq!(check_persistent(PERSISTENT_MAX_BYTES), Ok(()));
        assert_eq!(check_persistent(0), Err(PersistentError::Empty));
        assert_eq!(check_persistent(5000), Err(PersistentError::Misaligned));
        assert_eq!(
            check_persistent(PERSISTENT_MAX_BYTES + PAGE_SIZE),
            Err(PersistentError::TooLarge { max: PERSISTENT_MAX_BYTES })
        );
        // The whole window stays clear of the Linux bridge window and the APICs.
        const { assert!(PERSISTENT_WINDOW_GPA + PERSISTENT_MAX_BYTES <= LINUX_BRIDGE_BARS_GPA) };
        assert_eq!(reserved_mmio_conflict(PERSISTENT_WINDOW_GPA, PERSISTENT_MAX_BYTES), None);
    }

    #[test]
    fn args_are_printable_ascii_that_fits_the_boot_info() {
        assert_eq!(check_args(""), Ok(()));
        assert_eq!(check_args("topics=orders:4,audit:1 retention=64MiB"), Ok(()));
        assert_eq!(check_args(&"a".repeat(ARGS_MAX)), Ok(()));
        assert_eq!(
            check_args(&"a".repeat(ARGS_MAX + 1)),
            Err(ArgsError::TooLong { len: ARGS_MAX + 1, max: ARGS_MAX })
        );
        assert_eq!(check_args("a\tb"), Err(ArgsError::NotPrintable { offset: 1 }));
        assert_eq!(check_args("é"), Err(ArgsError::NotPrintable { offset: 0 }));
        assert_eq!(check_args("a\x7f"), Err(ArgsError::NotPrintable { offset: 1 }));
    }

    proptest! {
        #[test]
        fn file_name_rule_never_lets_a_name_escape(name in "[a-z./\\\\:]{0,12}") {
            if check_file_name(&name).is_ok() {
                let path: std::string::String = esp_path_chars(&name).collect();
                prop_assert!(path.starts_with(ESP_DIR));
                prop_assert!(!path[ESP_DIR.len()..].split('\\').any(|c| c == ".." || c == "." || c.is_empty()));
            }
        }
    }
}
