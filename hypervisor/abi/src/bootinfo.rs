//! The boot-info page: what a real-time partition learns about itself at entry.
//! The hypervisor writes it at [`crate::layout::BOOT_INFO_GPA`]; the SDK reads it.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// `BootInfo::magic`: "RHBOOTI1" little-endian.
pub const BOOT_INFO_MAGIC: u64 = u64::from_le_bytes(*b"RHBOOTI1");
/// Layout version of [`BootInfo`]. Version 2 appends the persistent region and the
/// partition's arguments.
pub const BOOT_INFO_VERSION: u32 = 2;
/// Longest partition or channel name carried in boot info (longer names are cut).
pub const NAME_MAX: usize = 32;
/// Most channels described to one partition.
pub const MAX_CHANNELS: usize = 16;
/// Longest `args` text of a partition (bytes of printable ASCII), see
/// [`crate::limits::check_args`].
pub const ARGS_MAX: usize = 512;

/// One channel endpoint as a partition sees it.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct ChannelInfo {
    pub name: [u8; NAME_MAX],
    pub name_len: u32,
    /// [`crate::table::CHANNEL_SAMPLING`] or [`crate::table::CHANNEL_QUEUING`].
    pub kind: u32,
    /// 1 when this partition is the writer (source), 0 when it is the reader.
    pub is_writer: u32,
    /// Largest message in bytes.
    pub msg_size: u32,
    /// Queue depth in messages (1 for sampling channels).
    pub depth: u32,
    pub _pad: u32,
    /// Guest-physical address of the shared region (inside the channel window).
    pub gpa: u64,
    /// Size of the shared region in bytes (whole pages): writer pages, then the reader page
    /// (see [`crate::channel`]); each side maps the other side's pages read-only.
    pub bytes: u64,
}

/// The boot-info page.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct BootInfo {
    pub magic: u64,
    pub version: u32,
    /// Index of this partition in the table.
    pub partition_id: u32,
    pub name: [u8; NAME_MAX],
    pub name_len: u32,
    /// Number of vCPUs (cores) this partition has.
    pub vcpu_count: u32,
    /// Size of guest RAM; RAM is guest-physical `0..ram_bytes`.
    pub ram_bytes: u64,
    /// Guest-physical end of the loaded image (page aligned): the heap may start here.
    pub image_end: u64,
    /// Guest-physical start of the stacks (lowest stack's bottom): the heap must end here.
    pub stacks_bottom: u64,
    /// TSC ticks per second as the hypervisor measured or was told it.
    pub tsc_hz: u64,
    /// Nanoseconds since the hypervisor started, at the moment of entry.
    pub boot_time_ns: u64,
    /// How many times this partition has been restarted by the health monitor.
    pub restart_count: u32,
    pub channel_count: u32,
    pub channels: [ChannelInfo; MAX_CHANNELS],
    /// Guest-physical base of the persistent region
    /// ([`crate::layout::PERSISTENT_WINDOW_GPA`]), 0 when the partition has none. Its
    /// bytes survive the partition's restarts by the health monitor; they are zero at boot.
    pub persistent_gpa: u64,
    /// Size of the persistent region in bytes (whole pages), 0 when none.
    pub persistent_bytes: u64,
    /// The partition's `args` text from the table (printable ASCII).
    pub args_len: u32,
    pub _pad: u32,
    pub args: [u8; ARGS_MAX],
}

impl BootInfo {
    /// The partition name as text (lossy: invalid UTF-8 yields "?").
    pub fn name(&self) -> &str {
        let len = (self.name_len as usize).min(NAME_MAX);
        core::str::from_utf8(&self.name[..len]).unwrap_or("?")
    }

    /// The partition's arguments (`args "TEXT"` in its table entry; empty when none, or
    /// when the field does not hold text).
    pub fn args(&self) -> &str {
        let len = (self.args_len as usize).min(ARGS_MAX);
        core::str::from_utf8(&self.args[..len]).unwrap_or("")
    }

    /// The persistent region as `(guest-physical base, bytes)`, or `None` when the
    /// partition has none.
    pub fn persistent_region(&self) -> Option<(u64, u64)> {
        (self.persistent_gpa != 0 && self.persistent_bytes != 0)
            .then_some((self.persistent_gpa, self.persistent_bytes))
    }

    /// The channels actually described.
    pub fn channels(&self) -> &[ChannelInfo] {
        &self.channels[..(self.channel_count as usize).min(MAX_CHANNELS)]
    }

    /// Whether magic and version match what this crate expects.
    pub fn is_valid(&self) -> bool {
        self.magic == BOOT_INFO_MAGIC && self.version == BOOT_INFO_VERSION
    }
}

impl ChannelInfo {
    pub fn name(&self) -> &str {
        let len = (self.name_len as usize).min(NAME_MAX);
        core::str::from_utf8(&self.name[..len]).unwrap_or("?")
    }
}

/// Copies `args` (already checked by [`crate::limits::check_args`]) into the boot info's
/// field; longer text is cut at [`ARGS_MAX`] bytes. Returns the length.
pub fn fill_args(field: &mut [u8; ARGS_MAX], args: &str) -> u32 {
    let len = args.len().min(ARGS_MAX);
    field.fill(0);
    field[..len].copy_from_slice(&args.as_bytes()[..len]);
    len as u32
}

/// Copies `name` into a fixed name field, cutting at a character boundary; returns the length.
pub fn fill_name(field: &mut [u8; NAME_MAX], name: &str) -> u32 {
    let mut len = name.len().min(NAME_MAX);
    while !name.is_char_boundary(len) {
        len -= 1;
    }
    field.fill(0);
    field[..len].copy_from_slice(&name.as_bytes()[..len]);
    len as u32
}

const _: () = assert!(core::mem::size_of::<BootInfo>() <= crate::layout::PAGE_SIZE as usize);

#[cfg(test)]
mod tests {
    use super::*;
    use zerocopy::FromZeros;

    #[test]
    fn names_are_cut_on_char_boundaries() {
        let mut f = [0u8; NAME_MAX];
        assert_eq!(fill_name(&mut f, "hello"), 5);
        let long = "é".repeat(20); // 40 bytes
        let n = fill_name(&mut f, &long);
        assert_eq!(n, 32);
        let mut bi = BootInfo::new_zeroed();
        bi.name = f;
        bi.name_len = n;
        assert_eq!(bi.name(), "é".repeat(16));
        bi.name_len = 200;
        assert_eq!(bi.name().len(), 32);
    }

    #[test]
    fn args_and_persistent_region_read_back() {
        let mut bi = BootInfo::new_zeroed();
        assert_eq!((bi.args(), bi.persistent_region()), ("", None));
        bi.args_len = fill_args(&mut bi.args, "topics=a:1");
        assert_eq!(bi.args(), "topics=a:1");
        bi.args_len = 10_000;
        assert_eq!(bi.args().len(), ARGS_MAX);
        bi.args[0] = 0xff;
        assert_eq!(bi.args(), "", "not text: empty, never a panic");
        bi.persistent_gpa = crate::layout::PERSISTENT_WINDOW_GPA;
        assert_eq!(bi.persistent_region(), None);
        bi.persistent_bytes = 0x1_0000;
        assert_eq!(bi.persistent_region(), Some((crate::layout::PERSISTENT_WINDOW_GPA, 0x1_0000)));
    }

    #[test]
    fn channel_count_is_clamped() {
        let mut bi = BootInfo::new_zeroed();
        bi.channel_count = 1000;
        assert_eq!(bi.channels().len(), MAX_CHANNELS);
        assert!(!bi.is_valid());
        bi.magic = BOOT_INFO_MAGIC;
        bi.version = BOOT_INFO_VERSION;
        assert!(bi.is_valid());
    }
}
