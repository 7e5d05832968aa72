//! The compiled partition table (`table.bin`).
//!
//! # Format (version 1.3)
//! All integers are little-endian and every structure is byte-aligned (zerocopy's
//! `little_endian` types), so the reader works on any byte slice without copying or
//! allocating. A file is:
//!
//! ```text
//! Header                      (magic "RHTABLE\0", version, sizes, CRC-32, platform,
//!                              and one Section {offset, count, entry_size} per section)
//! [PartitionEntry; n]         sections, in any order, each inside the file
//! [ScheduleEntry; n]
//! [WindowEntry; n]            a schedule's windows are windows[first .. first+count]
//! [ChannelEntry; n]
//! [IoRangeEntry; n]
//! [MmioRangeEntry; n]
//! [PciFunctionEntry; n]
//! strings                     UTF-8 bytes referenced by StrRef {offset, len}
//! ```
//!
//! `crc32` is CRC-32/ISO-HDLC (the zlib one) over the whole file with the `crc32` field
//! itself read as zero. A reader accepts the same major version and any minor version; an
//! entry larger than this reader knows (a newer minor version appended fields) is read by
//! its known prefix.
//!
//! [`Table::parse`] checks the structure (magic, version, size, checksum, section bounds,
//! string references). [`Table::validate`] re-checks every whole-system invariant that the
//! Parseltongue checker enforces, so the hypervisor never trusts a table because the
//! compiler made it, and [`Table::validate_against`] checks it fits a real machine.

mod format;
mod reader;
#[cfg(feature = "alloc")]
mod writer;

pub use format::*;
pub use reader::*;
#[cfg(feature = "alloc")]
pub use writer::*;
mod validate;
pub use validate::*;
