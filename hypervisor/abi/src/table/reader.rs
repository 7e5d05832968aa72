//! Zero-copy, allocation-free reader of the partition table.

use core::marker::PhantomData;

use zerocopy::{FromBytes, Immutable, KnownLayout};

use super::format::*;

/// Why a table was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TableError {
    /// Shorter than a header, or than `total_size`.
    Truncated {
        needed: usize,
        actual: usize,
    },
    BadMagic,
    UnsupportedVersion {
        major: u16,
        minor: u16,
    },
    /// `total_size` disagrees with the bytes given.
    SizeMismatch {
        declared: usize,
        actual: usize,
    },
    ChecksumMismatch {
        stored: u32,
        computed: u32,
    },
    /// A section lies (partly) outside the file, or its entries are smaller than this
    /// reader's structure.
    BadSection {
        section: &'static str,
    },
    /// A string reference outside the strings section, or not UTF-8.
    BadString {
        section: &'static str,
        index: usize,
    },
    /// A whole-system rule broken (see [`Table::validate`]).
    Invalid(super::Violation),
}

impl core::fmt::Display for TableError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Truncated { needed, actual } => {
                write!(f, "table truncated: needs {needed} bytes, file has {actual}")
            }
            Self::BadMagic => write!(f, "not a RustHallows partition table (bad magic)"),
            Self::UnsupportedVersion { major, minor } => write!(
                f,
                "table version {major}.{minor} is not supported (this hypervisor reads {VERSION_MAJOR}.x)"
            ),
            Self::SizeMismatch { declared, actual } => {
                write!(f, "table size mismatch: header says {declared} bytes, file has {actual}")
            }
            Self::ChecksumMismatch { stored, computed } => write!(
                f,
                "table checksum mismatch: stored {stored:#010x}, computed {computed:#010x} (corrupted file?)"
            ),
            Self::BadSection { section } => write!(f, "table section `{section}` is malformed"),
            Self::BadString { section, index } => {
                write!(f, "table section `{section}` entry {index} has a bad string reference")
            }
            Self::Invalid(v) => write!(f, "table is invalid: {v}"),
        }
    }
}

/// Computes the table checksum: CRC-32 of `bytes` with the `crc32` field read as zero.
pub fn table_checksum(bytes: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    let end = (CRC_OFFSET + 4).min(bytes.len());
    h.update(&bytes[..CRC_OFFSET.min(bytes.len())]);
    h.update(&[0u8; 4][..end.saturating_sub(CRC_OFFSET)]);
    h.update(&bytes[end..]);
    h.finalize()
}

/// The entries of one section, read in place.
#[derive(Clone, Copy)]
pub struct Entries<'a, T> {
    bytes: &'a [u8],
    count: usize,
    stride: usize,
    _t: PhantomData<T>,
}

impl<'a, T: FromBytes + KnownLayout + Immutable + 'a> Entries<'a, T> {
    fn new(file: &'a [u8], s: &Section, name: &'static str) -> Result<Self, TableError> {
        let bad = TableError::BadSection { section: name };
        let count = s.count.get() as usize;
        let stride = s.entry_size.get() as usize;
        if count > 0 && stride < core::mem::size_of::<T>() {
            return Err(bad);
        }
        let start = s.offset.get() as usize;
        let len = count.checked_mul(stride).ok_or(bad)?;
        let end = start.checked_add(len).ok_or(bad)?;
        let bytes = file.get(start..end).ok_or(bad)?;
        Ok(Self { bytes, count, stride, _t: PhantomData })
    }

    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    pub fn get(&self, i: usize) -> Option<&'a T> {
        if i >= self.count {
            return None;
        }
        let at = self.bytes.get(i * self.stride..)?;
        T::ref_from_prefix(at).ok().map(|(t, _)| t)
    }

    pub fn iter(&self) -> impl Iterator<Item = &'a T> + '_ {
        (0..self.count).filter_map(move |i| self.get(i))
    }

    /// The fields a later minor version appended to entry `i` right after `T`, or `None`
    /// when the entries were written without them (an older minor version).
    pub fn appended<U: FromBytes + KnownLayout + Immutable + 'a>(&self, i: usize) -> Option<&'a U> {
        let at = core::mem::size_of::<T>();
        if i >= self.count || self.stride < at + core::mem::size_of::<U>() {
            return None;
        }
        let bytes = self.bytes.get(i * self.stride + at..)?;
        U::ref_from_prefix(bytes).ok().map(|(u, _)| u)
    }
}

/// A partition's restart budget as its table entry gives it: zero in a field means the
/// default ([`DEFAULT_RESTART_LIMIT`] restarts, [`DEFAULT_RESTART_WINDOW_MS`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RestartBudget {
    pub limit: u32,
    pub window_ms: u32,
}

impl RestartBudget {
    /// Restarts allowed within the window, with the default for zero.
    pub fn effective_limit(self) -> u32 {
        if self.limit == 0 {
            DEFAULT_RESTART_LIMIT
        } else {
            self.limit
        }
    }

    /// The window in milliseconds, with the default for zero.
    pub fn effective_window_ms(self) -> u32 {
        if self.window_ms == 0 {
            DEFAULT_RESTART_WINDOW_MS
        } else {
            self.window_ms
        }
    }

    /// Whether both fields are zero (the default) or inside the allowed ranges.
    pub fn is_valid(self) -> bool {
        (self.limit == 0 || (MIN_RESTART_LIMIT..=MAX_RESTART_LIMIT).contains(&self.limit))
            && (self.window_ms == 0
                || (MIN_RESTART_WINDOW_MS..=MAX_RESTART_WINDOW_MS).contains(&self.window_ms))
    }
}

/// A structurally checked table, borrowed from its bytes.
#[derive(Clone, Copy)]
pub struct Table<'a> {
    pub header: &'a Header,
    pub partitions: Entries<'a, PartitionEntry>,
    pub schedules: Entries<'a, ScheduleEntry>,
    pub windows: Entries<'a, WindowEntry>,
    pub channels: Entries<'a, ChannelEntry>,
    pub io_ranges: Entries<'a, IoRangeEntry>,
    pub mmio_ranges: Entries<'a, MmioRangeEntry>,
    pub pci_functions: Entries<'a, PciFunctionEntry>,
    strings: &'a [u8],
}

impl<'a> Table<'a> {
    /// Checks magic, version, size, checksum, section bounds and string references.
    /// Whole-system rules are checked by [`Table::validate`].
    pub fn parse(bytes: &'a [u8]) -> Result<Self, TableError> {
        let header_len = core::mem::size_of::<Header>();
        let (header, _) = Header::ref_from_prefix(bytes)
            .map_err(|_| TableError::Truncated { needed: header_len, actual: bytes.len() })?;
        if header.magic != MAGIC {
            return Err(TableError::BadMagic);
        }
        let (major, minor) = (header.version_major.get(), header.version_minor.get());
        if major != VERSION_MAJOR {
            return Err(TableError::UnsupportedVersion { major, minor });
        }
        let declared = header.total_size.get() as usize;
        if declared > bytes.len() {
            return Err(TableError::Truncated { needed: declared, actual: bytes.len() });
        }
        if declared != bytes.len() {
            return Err(TableError::SizeMismatch { declared, actual: bytes.len() });
        }
        if (header.header_size.get() as usize) < header_len || header.header_size.get() as usize > declared {
            return Err(TableError::BadSection { section: "header" });
        }
        let computed = table_checksum(bytes);
        if computed != header.crc32.get() {
            return Err(TableError::ChecksumMismatch { stored: header.crc32.get(), computed });
        }
        let s = &header.strings;
        let strings = (s.offset.get() as usize)
            .checked_add(s.count.get() as usize)
            .and_then(|end| bytes.get(s.offset.get() as usize..end))
            .ok_or(TableError::BadSection { section: "strings" })?;
        let table = Self {
            header,
            partitions: Entries::new(bytes, &header.partitions, "partitions")?,
            schedules: Entries::new(bytes, &header.schedules, "schedules")?,
            windows: Entries::new(bytes, &header.windows, "windows")?,
            channels: Entries::new(bytes, &header.channels, "channels")?,
            io_ranges: Entries::new(bytes, &header.io_ranges, "io_ranges")?,
            mmio_ranges: Entries::new(bytes, &header.mmio_ranges, "mmio_ranges")?,
            pci_functions: Entries::new(bytes, &header.pci_functions, "pci_functions")?,
            strings,
        };
        for (i, p) in table.partitions.iter().enumerate() {
            let args = table.keep_fields(i).args;
            for r in [p.name, p.image, p.initramfs, p.cmdline, args] {
                table.str(r).ok_or(TableError::BadString { section: "partitions", index: i })?;
            }
        }
        for (i, c) in table.channels.iter().enumerate() {
            table.str(c.name).ok_or(TableError::BadString { section: "channels", index: i })?;
        }
        Ok(table)
    }

    /// [`Table::parse`] followed by [`Table::validate`].
    pub fn load(bytes: &'a [u8]) -> Result<Self, TableError> {
        let t = Self::parse(bytes)?;
        t.validate().map_err(TableError::Invalid)?;
        Ok(t)
    }

    pub fn platform(&self) -> &'a Platform {
        &self.header.platform
    }

    /// The text of a string reference, or `None` when it is out of range or not UTF-8.
    pub fn str(&self, r: StrRef) -> Option<&'a str> {
        let start = r.offset.get() as usize;
        let end = start.checked_add(r.len.get() as usize)?;
        core::str::from_utf8(self.strings.get(start..end)?).ok()
    }

    /// A string already checked by [`Table::parse`] (empty when out of range).
    pub fn text(&self, r: StrRef) -> &'a str {
        self.str(r).unwrap_or("")
    }

    /// The windows of schedule `s` (empty when its range is out of bounds; `validate`
    /// rejects that).
    pub fn schedule_windows(&self, s: &ScheduleEntry) -> impl Iterator<Item = &'a WindowEntry> + '_ {
        let first = s.first_window.get() as usize;
        let count = s.window_count.get() as usize;
        let ok = first.checked_add(count).is_some_and(|end| end <= self.windows.len());
        let range = if ok { first..first + count } else { 0..0 };
        range.filter_map(move |i| self.windows.get(i))
    }

    /// The restart budget of partition `i`: zero (the defaults) for a version 1.0 table,
    /// whose partition entries end before the restart fields, or for an unknown partition.
    pub fn restart_budget(&self, i: usize) -> RestartBudget {
        self.partitions.appended::<PartitionRestartFields>(i).map_or(RestartBudget::default(), |f| {
            RestartBudget { limit: f.restart_limit.get(), window_ms: f.restart_window_ms.get() }
        })
    }

    /// Partition `i`'s cache allocation beyond its data ways (version 1.2 fields): zero,
    /// i.e. no separate code ways and no bandwidth limit, for a 1.0 or 1.1 table or an
    /// unknown partition.
    pub fn cache_fields(&self, i: usize) -> PartitionCacheFields {
        self.partitions
            .appended::<PartitionAppendedFieldsV1_2>(i)
            .map_or(PartitionCacheFields::default(), |f| f.cache)
    }

    /// Partition `i`'s version 1.3 fields (persistent region, arguments): zero, i.e. none,
    /// for an older table or an unknown partition.
    pub fn keep_fields(&self, i: usize) -> PartitionKeepFields {
        self.partitions
            .appended::<PartitionAppendedFields>(i)
            .map_or(PartitionKeepFields::default(), |f| f.keep)
    }

    /// Bytes of partition `i`'s persistent region (0: none).
    pub fn persistent_bytes(&self, i: usize) -> u64 {
        self.keep_fields(i).persistent_bytes.get()
    }

    /// Partition `i`'s arguments (empty: none). Checked as a string reference by
    /// [`Table::parse`].
    pub fn args(&self, i: usize) -> &'a str {
        self.text(self.keep_fields(i).args)
    }

    /// Partition `i`'s separate code ways `(first, count)` (CDP), when the table gives them.
    pub fn code_ways(&self, i: usize) -> Option<(u8, u8)> {
        let c = self.cache_fields(i);
        (c.llc_code_way_count != 0).then_some((c.llc_code_first_way, c.llc_code_way_count))
    }

    /// The ways the table gives class of service 0 (the hypervisor and every partition
    /// without ways), or `None`: chosen at boot.
    pub fn hypervisor_ways(&self) -> Option<(u8, u8)> {
        let p = self.platform();
        (p.hv_llc_way_count != 0).then_some((p.hv_llc_first_way, p.hv_llc_way_count))
    }

    /// Index of the partition named `name`.
    pub fn partition_index(&self, name: &str) -> Option<usize> {
        self.partitions.iter().position(|p| self.text(p.name) == name)
    }
}
