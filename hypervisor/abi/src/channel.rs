//! Shared-memory layout of a channel, agreed by the compiler (which sizes the region),
//! the hypervisor (which maps it with per-page rights) and the SDK (which reads and writes
//! messages).
//!
//! ```text
//! writer pages  (writer: read-write, reader: read-only)
//!   0x00 ChannelHeader { magic, kind, msg_size, depth, write_seq }
//!   0x40 slot 0: { seq: u64, len: u32, _pad: u32, data: [u8; round8(msg_size)] }
//!        slot 1 ... slot depth-1                              (sampling: one slot)
//! reader page   (queuing only; reader: read-write, writer: read-only)
//!   0x00 read_seq: u64
//! ```
//! A sampling writer bumps the slot's `seq` to odd, copies, bumps it to even (seqlock);
//! a queuing writer fills slot `write_seq % depth` when `write_seq - read_seq < depth`,
//! then publishes `write_seq + 1`. The reader never writes the writer pages.

use crate::layout::PAGE_SIZE;

/// `ChannelHeader::magic` value ("RHCH").
pub const CHANNEL_MAGIC: u32 = u32::from_le_bytes(*b"RHCH");
/// Size of the header at the start of the writer pages.
pub const HEADER_BYTES: u64 = 0x40;
/// Bytes of per-slot metadata before the message data.
pub const SLOT_META_BYTES: u64 = 16;

/// Bytes one slot takes for messages of `msg_size` bytes.
pub const fn slot_bytes(msg_size: u32) -> u64 {
    SLOT_META_BYTES + (msg_size as u64).div_ceil(8) * 8
}

/// Bytes of the writer pages (whole pages).
pub const fn writer_bytes(msg_size: u32, depth: u32) -> u64 {
    (HEADER_BYTES + depth as u64 * slot_bytes(msg_size)).div_ceil(PAGE_SIZE) * PAGE_SIZE
}

/// Total bytes of a channel's shared region: writer pages, plus one reader page for a
/// queuing channel.
pub const fn region_bytes(queuing: bool, msg_size: u32, depth: u32) -> u64 {
    writer_bytes(msg_size, if queuing { depth } else { 1 }) + if queuing { PAGE_SIZE } else { 0 }
}

/// The header at offset 0 of a channel's writer pages. The hypervisor only has to zero the
/// region: the writer's SDK fills in `magic`, `kind`, `msg_size` and `depth` when it first
/// opens the channel, and a reader does not depend on them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct ChannelHeader {
    pub magic: u32,
    /// [`crate::table::CHANNEL_SAMPLING`] or [`crate::table::CHANNEL_QUEUING`].
    pub kind: u32,
    pub msg_size: u32,
    /// Slots in the writer pages (1 for sampling).
    pub depth: u32,
    /// Queuing: messages published so far. Unused by sampling channels.
    pub write_seq: u64,
}

/// Byte offset of [`ChannelHeader::write_seq`].
pub const HEADER_WRITE_SEQ_OFFSET: u64 = core::mem::offset_of!(ChannelHeader, write_seq) as u64;
/// Byte offset, inside a slot, of its `seq: u64` (sampling: seqlock counter, odd while
/// being written; queuing: the message's sequence number).
pub const SLOT_SEQ_OFFSET: u64 = 0;
/// Byte offset, inside a slot, of its `len: u32` (bytes of message data).
pub const SLOT_LEN_OFFSET: u64 = 8;
/// Byte offset, inside a slot, of the message data.
pub const SLOT_DATA_OFFSET: u64 = SLOT_META_BYTES;
/// Byte offset, inside the reader page, of `read_seq: u64`.
pub const READER_READ_SEQ_OFFSET: u64 = 0;

const _: () = assert!(core::mem::size_of::<ChannelHeader>() as u64 <= HEADER_BYTES);
const _: () = assert!(HEADER_WRITE_SEQ_OFFSET == 16);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_whole_pages() {
        assert_eq!(slot_bytes(1), 24);
        assert_eq!(slot_bytes(8), 24);
        assert_eq!(writer_bytes(64, 1), PAGE_SIZE);
        assert_eq!(region_bytes(false, 64, 99), PAGE_SIZE);
        assert_eq!(region_bytes(true, 64, 8), 2 * PAGE_SIZE);
        // 0x40 + 100 * (16 + 64) = 8064 -> two pages, plus the reader page.
        assert_eq!(region_bytes(true, 64, 100), 3 * PAGE_SIZE);
    }
}
