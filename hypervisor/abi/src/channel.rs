//! Shared-memory layout of a channel, agreed by the compiler (which sizes the region),
//! the hypervisor (which maps it with per-page rights), the ring crate `hallows-ring`
//! (which implements both protocols over it, for the RT SDK and the Linux side alike) and
//! hostile test guests (which forge it).
//!
//! Every region is writer pages followed by one reader page. The writer may write only
//! its pages, the reader only its page; each reads the other's. Everything one side
//! writes often sits on its own 64-byte cache line.
//!
//! ```text
//! writer pages  (writer: read-write, reader: read-only)
//!   0x00 header line: magic u32, kind u32, msg_size u32, depth u32, then
//!        queuing:  0x10 write_seq u64            (messages published so far)
//!        sampling: 0x10 latest_pair u32, 0x14 pair_slot [u32; 2]
//!   0x40 slot 0, slot 1, ...   each slot_bytes() long, a multiple of 64 bytes:
//!        0x00 seq u64, 0x08 len u32, 0x0C unused u32, 0x10 data
//!        queuing:  seq = n + 1 (wrapping) once message n is in the slot
//!        sampling: seq = messages written so far, this one included (0 = never written)
//! reader page   (reader: read-write, writer: read-only)
//!   0x00 queuing: read_seq u64 (messages consumed so far); sampling: reading_pair u32
//! ```
//! Queuing: an SPSC ring of `depth` slots; message `n` lives in slot `n % depth` (after
//! the counter wraps, message 0 is in slot 0 again), written while `write_seq - read_seq <
//! depth`, then published twice: the slot's `seq = n + 1` (release; a reader polling the
//! slot it waits on sees the message with one cache-line transfer) and `write_seq = n + 1`
//! (release; the count readers check when the slot says nothing). The reader hands the
//! slot back with `read_seq = n + 1`.
//!
//! Sampling: four slots in two pairs (Simpson's four-slot mechanism). The writer writes
//! into the pair the reader does not announce in `reading_pair`, into the slot of that
//! pair it did not write last, then publishes `pair_slot[pair]` and `latest_pair`. The
//! reader announces `latest_pair` as its pair and reads the slot `pair_slot` names. Both
//! sides finish in a fixed number of steps whatever the other does; the reader never sees
//! a slot being written by an honest writer.

use crate::layout::PAGE_SIZE;

/// `magic` value ("RHCH").
pub const CHANNEL_MAGIC: u32 = u32::from_le_bytes(*b"RHCH");
/// Cache-line size the layout separates hot fields by.
pub const CACHE_LINE: u64 = 64;
/// Size of the header at the start of the writer pages (one cache line).
pub const HEADER_BYTES: u64 = CACHE_LINE;

/// Header field offsets (all sides).
pub const HEADER_MAGIC_OFFSET: u64 = 0x00;
pub const HEADER_KIND_OFFSET: u64 = 0x04;
pub const HEADER_MSG_SIZE_OFFSET: u64 = 0x08;
pub const HEADER_DEPTH_OFFSET: u64 = 0x0C;
/// Queuing: `write_seq: u64`, messages published so far.
pub const HEADER_WRITE_SEQ_OFFSET: u64 = 0x10;
/// Sampling: `latest_pair: u32` (0 or 1), the pair written last.
pub const HEADER_LATEST_PAIR_OFFSET: u64 = 0x10;
/// Sampling: `pair_slot: [u32; 2]` (each 0 or 1), the slot written last in each pair.
pub const HEADER_PAIR_SLOT_OFFSET: u64 = 0x14;

/// Slot fields: `seq: u64` (see the layout above), `len: u32` (bytes of data), the data.
pub const SLOT_SEQ_OFFSET: u64 = 0;
pub const SLOT_LEN_OFFSET: u64 = 8;
pub const SLOT_DATA_OFFSET: u64 = 16;
/// Slots of a sampling channel (two pairs of two).
pub const SAMPLING_SLOTS: u32 = 4;

/// Reader page: queuing `read_seq: u64`, sampling `reading_pair: u32`.
pub const READER_READ_SEQ_OFFSET: u64 = 0;
pub const READER_READING_PAIR_OFFSET: u64 = 0;
/// The reader page is one page.
pub const READER_BYTES: u64 = PAGE_SIZE;

/// Bytes one slot takes for messages of `msg_size` bytes: metadata plus data, rounded up
/// to whole cache lines so that neighbouring slots never share one.
pub const fn slot_bytes(msg_size: u32) -> u64 {
    (SLOT_DATA_OFFSET + msg_size as u64).div_ceil(CACHE_LINE) * CACHE_LINE
}

/// Slots in the writer pages: `depth` for queuing, [`SAMPLING_SLOTS`] for sampling.
pub const fn slot_count(queuing: bool, depth: u32) -> u64 {
    if queuing {
        depth as u64
    } else {
        SAMPLING_SLOTS as u64
    }
}

/// Bytes of all slots, `None` when the product overflows (a hostile table's sizes):
/// bound this before calling [`writer_bytes`] or [`region_bytes`].
pub const fn slots_bytes(queuing: bool, msg_size: u32, depth: u32) -> Option<u64> {
    slot_count(queuing, depth).checked_mul(slot_bytes(msg_size))
}

/// Byte offset of slot `index` in the writer pages.
pub const fn slot_offset(msg_size: u32, index: u64) -> u64 {
    HEADER_BYTES + index * slot_bytes(msg_size)
}

/// Bytes of the writer pages (whole pages). The sizes must be bounded (see
/// [`slots_bytes`]).
pub const fn writer_bytes(queuing: bool, msg_size: u32, depth: u32) -> u64 {
    (HEADER_BYTES + slot_count(queuing, depth) * slot_bytes(msg_size)).div_ceil(PAGE_SIZE) * PAGE_SIZE
}

/// Total bytes of a channel's shared region: writer pages, then the reader page.
pub const fn region_bytes(queuing: bool, msg_size: u32, depth: u32) -> u64 {
    writer_bytes(queuing, msg_size, depth) + READER_BYTES
}

const _: () = assert!(HEADER_PAIR_SLOT_OFFSET + 8 <= HEADER_BYTES);
const _: () = assert!(HEADER_WRITE_SEQ_OFFSET + 8 <= HEADER_BYTES);
const _: () = assert!(HEADER_WRITE_SEQ_OFFSET.is_multiple_of(8));

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_whole_cache_lines() {
        assert_eq!(slot_bytes(1), 64);
        assert_eq!(slot_bytes(48), 64);
        assert_eq!(slot_bytes(49), 128);
        assert_eq!(slot_bytes(1024), 1088);
        assert_eq!(slot_offset(8, 3), 64 + 3 * 64);
    }

    #[test]
    fn sizes_are_whole_pages() {
        // Sampling: header + 4 slots of 128 bytes, one writer page and the reader page.
        assert_eq!(writer_bytes(false, 64, 99), PAGE_SIZE);
        assert_eq!(region_bytes(false, 64, 99), 2 * PAGE_SIZE);
        assert_eq!(region_bytes(true, 64, 8), 2 * PAGE_SIZE);
        // 0x40 + 100 * 128 = 12864 -> four pages, plus the reader page.
        assert_eq!(writer_bytes(true, 64, 100), 4 * PAGE_SIZE);
        assert_eq!(region_bytes(true, 64, 100), 5 * PAGE_SIZE);
    }

    #[test]
    fn slot_bytes_are_bounded_before_use() {
        assert_eq!(slots_bytes(true, u32::MAX, u32::MAX), None);
        assert_eq!(slots_bytes(false, 64, u32::MAX), Some(4 * 128));
        assert_eq!(slots_bytes(true, 64, 16), Some(16 * 128));
    }
}
