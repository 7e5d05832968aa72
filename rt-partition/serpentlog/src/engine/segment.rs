//! One segment: its header in the region, and the small in-memory index the broker keeps
//! for it (rebuilt by a scan at recovery).
//!
//! ```text
//! segment header (32 bytes)
//!  0 magic "SLs1"   4 crc32 of bytes 8..32   8 base offset u64   16 created ms u64
//! 24 partition (global index) u32           28 slot in the arena u32
//! then batches back to back from byte 32; after the last batch, 4 zero bytes (when
//! they fit) so a scan stops there and never reads stale bytes as a batch.
//! ```

use alloc::vec::Vec;

use super::batch::{self, BatchHeader, Found};
use super::bytes::{get_u32, get_u64, put, zero};
use super::layout::SEGMENT_HEADER_BYTES;

const SEGMENT_MAGIC: u32 = u32::from_le_bytes(*b"SLs1");
/// An index entry is added when a batch starts this many bytes after the last one
/// indexed (and for the segment's first batch): fetch then walks at most about this
/// many bytes of batch headers to reach any offset.
pub(crate) const INDEX_INTERVAL_BYTES: usize = 4096;
/// Bytes zeroed after the last batch (and at a fresh segment's first batch position).
pub(crate) const END_MARKER_BYTES: usize = 4;

/// Who a segment belongs to; part of its header, so a segment is never taken for another
/// partition's or another slot's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SegmentOwner {
    pub partition: u32,
    pub slot: u32,
}

/// A valid segment header's contents.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SegmentHeader {
    pub base_offset: u64,
    pub created_ms: u64,
}

pub(crate) fn write_header(segment: &mut [u8], owner: SegmentOwner, header: SegmentHeader) -> Option<()> {
    let mut head = [0u8; SEGMENT_HEADER_BYTES];
    put(&mut head, 0, &SEGMENT_MAGIC.to_le_bytes())?;
    put(&mut head, 8, &header.base_offset.to_le_bytes())?;
    put(&mut head, 16, &header.created_ms.to_le_bytes())?;
    put(&mut head, 24, &owner.partition.to_le_bytes())?;
    put(&mut head, 28, &owner.slot.to_le_bytes())?;
    let crc = crc32fast::hash(head.get(8..)?);
    put(&mut head, 4, &crc.to_le_bytes())?;
    // The first batch position is zeroed before the header becomes valid: a valid header
    // never exposes the stale bytes of the segment's earlier life.
    zero(segment, SEGMENT_HEADER_BYTES, END_MARKER_BYTES);
    put(segment, 0, &head)
}

pub(crate) fn read_header(segment: &[u8], owner: SegmentOwner) -> Option<SegmentHeader> {
    let head = segment.get(..SEGMENT_HEADER_BYTES)?;
    let valid = get_u32(head, 0)? == SEGMENT_MAGIC
        && get_u32(head, 4)? == crc32fast::hash(head.get(8..)?)
        && get_u32(head, 24)? == owner.partition
        && get_u32(head, 28)? == owner.slot;
    valid.then_some(SegmentHeader { base_offset: get_u64(head, 8)?, created_ms: get_u64(head, 16)? })
}

/// Makes the segment's header invalid (the segment is free again). Zeroing the magic is
/// enough; a write cut short still breaks the CRC, so the outcome is dropped either way.
pub(crate) fn invalidate(segment: &mut [u8]) {
    zero(segment, 0, SEGMENT_HEADER_BYTES);
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct IndexEntry {
    pub base_offset: u64,
    pub at: u32,
}

/// What the broker keeps in memory for a live segment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Segment {
    pub base_offset: u64,
    /// One past the last offset in the segment.
    pub end_offset: u64,
    /// Bytes used from the segment's start (header included): the next batch goes here.
    pub used: usize,
    /// Timestamp of the newest batch (creation time while empty).
    pub newest_ms: u64,
    pub index: Vec<IndexEntry>,
    last_indexed_at: usize,
}

impl Segment {
    /// Resets this (possibly reused) slot's state for a new segment. The index keeps its
    /// allocation, so reusing a slot allocates nothing.
    pub(crate) fn start(&mut self, header: SegmentHeader, segment_bytes: usize) {
        self.base_offset = header.base_offset;
        self.end_offset = header.base_offset;
        self.used = SEGMENT_HEADER_BYTES;
        self.newest_ms = header.created_ms;
        self.index.clear();
        let wanted = segment_bytes / INDEX_INTERVAL_BYTES + 2;
        if self.index.capacity() < wanted {
            self.index.reserve_exact(wanted - self.index.len());
        }
        self.last_indexed_at = 0;
    }

    /// Batch bytes kept (what size retention counts).
    pub(crate) fn batch_bytes(&self) -> usize {
        self.used.saturating_sub(SEGMENT_HEADER_BYTES)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.end_offset == self.base_offset
    }

    /// Notes a batch written (or found) at `at`.
    pub(crate) fn added(&mut self, at: usize, header: &BatchHeader) {
        let first = self.index.is_empty();
        if (first || at.saturating_sub(self.last_indexed_at) >= INDEX_INTERVAL_BYTES)
            && self.index.len() < self.index.capacity()
        {
            if let Ok(position) = u32::try_from(at) {
                self.index.push(IndexEntry { base_offset: header.base_offset, at: position });
                self.last_indexed_at = at;
            }
        }
        self.used = at.saturating_add(header.length);
        self.end_offset = header.end_offset().unwrap_or(self.end_offset);
        self.newest_ms = self.newest_ms.max(header.timestamp_ms);
    }

    /// Where to start walking batches to find `offset`: the last indexed batch starting at
    /// or before it.
    pub(crate) fn walk_start(&self, offset: u64) -> usize {
        let after = self.index.partition_point(|e| e.base_offset <= offset);
        match after.checked_sub(1).and_then(|i| self.index.get(i)) {
            Some(entry) => entry.at as usize,
            None => SEGMENT_HEADER_BYTES,
        }
    }
}

/// What a recovery scan of one segment found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Scan {
    pub segment: Segment,
    pub batches: u64,
    pub records: u64,
    /// Bytes of a torn or damaged batch that ended the scan (0 for a clean end).
    pub dropped_bytes: usize,
}

/// Walks the batches of a segment whose header is valid, checking each one. The first
/// batch that does not check ends the segment.
pub(crate) fn scan(segment_bytes: &[u8], header: SegmentHeader) -> Scan {
    let mut segment = Segment::default();
    segment.start(header, segment_bytes.len());
    let (mut batches, mut records) = (0, 0);
    let mut at = SEGMENT_HEADER_BYTES;
    let dropped_bytes = loop {
        match batch::validate(segment_bytes, at, segment.end_offset) {
            Found::Batch(batch) => {
                segment.added(at, &batch);
                batches += 1;
                records += u64::from(batch.record_count);
                at = segment.used;
            }
            Found::End => break 0,
            Found::Torn(bytes) => break bytes,
        }
    };
    Scan { segment, batches, records, dropped_bytes }
}
