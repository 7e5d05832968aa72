//! One partition's log: its arena of fixed-size segments (a few live ones, oldest to
//! newest, and free ones), append, fetch, retention and recovery.

use alloc::collections::VecDeque;
use alloc::vec::Vec;

use super::batch::{self, BatchHeader, Records};
use super::bytes::zero;
use super::layout::{ArenaLayout, SEGMENT_HEADER_BYTES};
use super::segment::{self, Segment, SegmentHeader, SegmentOwner, END_MARKER_BYTES};
use super::{Fetched, FetchedRecord, Producer};
use crate::ErrorCode;

pub(crate) struct PartitionLog<'a> {
    arena: &'a mut [u8],
    segment_bytes: usize,
    /// Global partition index (over all topics): part of every segment header.
    partition: u32,
    /// One per physical segment of the arena; only the `live` ones mean anything.
    slots: Vec<Segment>,
    /// Live segments, oldest first; offsets are contiguous from one to the next.
    live: VecDeque<u16>,
    free: Vec<u16>,
    end_offset: u64,
}

/// What recovering one partition found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct PartitionRecovery {
    pub segments: u64,
    pub batches: u64,
    pub records: u64,
    pub dropped_bytes: u64,
    pub dropped_segments: u64,
    pub newest_ms: u64,
}

/// The byte range of segment `slot` inside an arena.
fn segment_range(slot: u16, segment_bytes: usize) -> core::ops::Range<usize> {
    let start = usize::from(slot).saturating_mul(segment_bytes);
    start..start.saturating_add(segment_bytes)
}

impl<'a> PartitionLog<'a> {
    fn owner(&self, slot: u16) -> SegmentOwner {
        SegmentOwner { partition: self.partition, slot: u32::from(slot) }
    }

    fn segment_bytes_of(&self, slot: u16) -> &[u8] {
        self.arena.get(segment_range(slot, self.segment_bytes)).unwrap_or(&[])
    }

    /// The oldest offset still kept.
    pub(crate) fn log_start(&self) -> u64 {
        self.live
            .front()
            .and_then(|&s| self.slots.get(usize::from(s)))
            .map_or(self.end_offset, |s| s.base_offset)
    }

    /// The offset the next record will get.
    pub(crate) fn end_offset(&self) -> u64 {
        self.end_offset
    }

    /// The largest batch a segment of this partition holds.
    pub(crate) fn batch_capacity(&self) -> usize {
        self.segment_bytes.saturating_sub(SEGMENT_HEADER_BYTES)
    }

    /// Appends one batch of `length` bytes (already checked against the capacity) and
    /// returns its base offset and how many old segments the roll dropped.
    pub(crate) fn append(
        &mut self,
        records: &[&[u8]],
        length: usize,
        now_ms: u64,
        producer: Option<Producer>,
    ) -> Result<(u64, usize), ErrorCode> {
        let record_count = u32::try_from(records.len()).map_err(|_| ErrorCode::RecordTooLarge)?;
        let base_offset = self.end_offset;
        let end_offset = base_offset.checked_add(u64::from(record_count)).ok_or(ErrorCode::RecordTooLarge)?;
        if length > self.batch_capacity() {
            return Err(ErrorCode::RecordTooLarge);
        }
        let fits = self
            .live
            .back()
            .and_then(|&s| self.slots.get(usize::from(s)))
            .is_some_and(|s| s.used.saturating_add(length) <= self.segment_bytes);
        let dropped = if fits { 0 } else { self.roll(now_ms)? };

        let header = BatchHeader { length, base_offset, timestamp_ms: now_ms, producer, record_count };
        let slot = *self.live.back().ok_or(ErrorCode::RecordTooLarge)?;
        let segment = self.slots.get_mut(usize::from(slot)).ok_or(ErrorCode::RecordTooLarge)?;
        let bytes =
            self.arena.get_mut(segment_range(slot, self.segment_bytes)).ok_or(ErrorCode::RecordTooLarge)?;
        let at = segment.used;
        let end = at.checked_add(length).ok_or(ErrorCode::RecordTooLarge)?;
        // The end marker first, then the batch with its CRC last: wherever the writes are
        // cut, a scan finds either the whole batch or none of it, and never stale bytes.
        zero(bytes, end, END_MARKER_BYTES);
        let dest = bytes.get_mut(at..end).ok_or(ErrorCode::RecordTooLarge)?;
        batch::write(dest, &header, records).ok_or(ErrorCode::RecordTooLarge)?;
        segment.added(at, &header);
        self.end_offset = end_offset;
        Ok((base_offset, dropped))
    }

    /// Starts a new segment at the end offset, in a free slot or else in the oldest live
    /// segment's (which is dropped: the log rolls). Returns the segments dropped.
    fn roll(&mut self, now_ms: u64) -> Result<usize, ErrorCode> {
        if let Some(newest) = self.live.back().and_then(|&s| self.slots.get(usize::from(s))) {
            if newest.is_empty() {
                // A batch that does not fit an empty segment never will.
                return Err(ErrorCode::RecordTooLarge);
            }
        }
        let (slot, dropped) = match self.free.pop() {
            Some(slot) => (slot, 0),
            // The newest segment always stays: it holds the end offset for recovery.
            None if self.live.len() >= 2 => (self.drop_oldest().ok_or(ErrorCode::RecordTooLarge)?, 1),
            None => return Err(ErrorCode::RecordTooLarge),
        };
        let header = SegmentHeader { base_offset: self.end_offset, created_ms: now_ms };
        let owner = self.owner(slot);
        let bytes =
            self.arena.get_mut(segment_range(slot, self.segment_bytes)).ok_or(ErrorCode::RecordTooLarge)?;
        segment::write_header(bytes, owner, header).ok_or(ErrorCode::RecordTooLarge)?;
        let segment = self.slots.get_mut(usize::from(slot)).ok_or(ErrorCode::RecordTooLarge)?;
        segment.start(header, self.segment_bytes);
        self.live.push_back(slot);
        Ok(dropped)
    }

    /// Drops the oldest live segment (its header is invalidated in the region) and returns
    /// its slot, now free but not on the free list.
    fn drop_oldest(&mut self) -> Option<u16> {
        let slot = self.live.pop_front()?;
        if let Some(bytes) = self.arena.get_mut(segment_range(slot, self.segment_bytes)) {
            segment::invalidate(bytes);
        }
        Some(slot)
    }

    /// Hands records from `offset` on to `sink` (see [`super::Engine::fetch`]).
    pub(crate) fn fetch(
        &self,
        offset: u64,
        sink: &mut dyn FnMut(FetchedRecord<'_>) -> bool,
    ) -> Result<Fetched, ErrorCode> {
        let end_offset = self.end_offset;
        if offset < self.log_start() || offset > end_offset {
            return Err(ErrorCode::OffsetOutOfRange);
        }
        let mut next = offset;
        let base_of = |slot: &u16| self.slots.get(usize::from(*slot)).map_or(u64::MAX, |s| s.base_offset);
        let first = self.live.partition_point(|s| base_of(s) <= offset).saturating_sub(1);
        for &slot in self.live.iter().skip(first) {
            let Some(segment) = self.slots.get(usize::from(slot)) else { break };
            if segment.end_offset <= next {
                continue;
            }
            let bytes = self.segment_bytes_of(slot);
            let mut at = segment.walk_start(next);
            while at < segment.used {
                let Some(header) = batch::read_header(bytes, at) else { break };
                let Some(whole) = at.checked_add(header.length).and_then(|end| bytes.get(at..end)) else {
                    break;
                };
                at += header.length;
                if header.end_offset().is_none_or(|end| end <= next) {
                    continue;
                }
                for (record_offset, value) in
                    (header.base_offset..).zip(Records::new(whole, header.record_count))
                {
                    if record_offset < next {
                        continue;
                    }
                    let record =
                        FetchedRecord { offset: record_offset, timestamp_ms: header.timestamp_ms, value };
                    if !sink(record) {
                        return Ok(Fetched { next_offset: record_offset, end_offset });
                    }
                    next = record_offset + 1;
                }
            }
        }
        Ok(Fetched { next_offset: next, end_offset })
    }

    /// Drops the oldest segments while the kept batch bytes exceed `retention_bytes` or
    /// the oldest segment's newest batch is older than `retention_ms`; the newest segment
    /// is always kept. Returns the segments dropped.
    pub(crate) fn enforce_retention(
        &mut self,
        now_ms: u64,
        retention_bytes: u64,
        retention_ms: Option<u64>,
    ) -> usize {
        let mut kept: u64 = self
            .live
            .iter()
            .filter_map(|&s| self.slots.get(usize::from(s)))
            .map(|s| s.batch_bytes() as u64)
            .sum();
        let mut dropped = 0;
        while self.live.len() > 1 {
            let Some(oldest) = self.live.front().and_then(|&s| self.slots.get(usize::from(s))) else { break };
            let too_big = kept > retention_bytes;
            let too_old = retention_ms.is_some_and(|limit| now_ms.saturating_sub(oldest.newest_ms) > limit);
            if !too_big && !too_old {
                break;
            }
            kept = kept.saturating_sub(oldest.batch_bytes() as u64);
            if let Some(slot) = self.drop_oldest() {
                self.free.push(slot);
            }
            dropped += 1;
        }
        dropped
    }

    /// Every batch header of the live segments, oldest first (for rebuilding the
    /// idempotent producers' table at recovery).
    pub(crate) fn for_each_batch(&self, mut visit: impl FnMut(&BatchHeader)) {
        for &slot in &self.live {
            let Some(segment) = self.slots.get(usize::from(slot)) else { continue };
            let bytes = self.segment_bytes_of(slot);
            let mut at = SEGMENT_HEADER_BYTES;
            while at < segment.used {
                let Some(header) = batch::read_header(bytes, at) else { break };
                visit(&header);
                at = at.saturating_add(header.length);
            }
        }
    }

    /// Zeroes every segment header (and first batch position) of the arena: all free.
    pub(crate) fn format(arena: &mut [u8], layout: ArenaLayout) {
        for slot in 0..layout.segments {
            let start = slot.saturating_mul(layout.segment_bytes);
            zero(arena, start, SEGMENT_HEADER_BYTES + END_MARKER_BYTES);
        }
    }

    /// Rebuilds the partition from its arena: every segment whose header checks is
    /// scanned batch by batch; the live log is the newest segment and the older ones that
    /// continue it without a gap. Everything else is invalidated (free).
    pub(crate) fn recover(
        arena: &'a mut [u8],
        layout: ArenaLayout,
        partition: u32,
    ) -> (Self, PartitionRecovery) {
        let slot_count = layout.segments.min(usize::from(u16::MAX));
        let mut candidates: Vec<(u16, segment::Scan)> = Vec::new();
        for slot in 0..slot_count as u16 {
            let owner = SegmentOwner { partition, slot: u32::from(slot) };
            let Some(bytes) = arena.get(segment_range(slot, layout.segment_bytes)) else { break };
            if let Some(header) = segment::read_header(bytes, owner) {
                candidates.push((slot, segment::scan(bytes, header)));
            }
        }
        candidates.sort_by_key(|(_, scan)| (scan.segment.base_offset, scan.segment.end_offset));

        // Walk back from the newest segment while each older one ends where the next
        // starts. Empty older segments are skipped (only the newest can legitimately be
        // empty: a roll cut short before its first batch).
        let mut chain: Vec<usize> = Vec::new();
        if let Some(newest) = candidates.len().checked_sub(1) {
            chain.push(newest);
            let mut next_base = candidates[newest].1.segment.base_offset;
            for i in (0..newest).rev() {
                let segment = &candidates[i].1.segment;
                if segment.is_empty() || segment.end_offset > next_base {
                    continue;
                }
                if segment.end_offset < next_base {
                    break;
                }
                chain.push(i);
                next_base = segment.base_offset;
            }
        }

        let mut report = PartitionRecovery::default();
        let mut slots: Vec<Segment> = (0..slot_count).map(|_| Segment::default()).collect();
        let mut live = VecDeque::with_capacity(slot_count);
        let mut in_chain = alloc::vec![false; candidates.len()];
        for &i in chain.iter().rev() {
            in_chain[i] = true;
            let (slot, scan) = &candidates[i];
            report.segments += 1;
            report.batches += scan.batches;
            report.records += scan.records;
            report.dropped_bytes += scan.dropped_bytes as u64;
            report.newest_ms = report.newest_ms.max(scan.segment.newest_ms);
            live.push_back(*slot);
        }
        for (i, (slot, scan)) in candidates.into_iter().enumerate() {
            if in_chain[i] {
                if let Some(place) = slots.get_mut(usize::from(slot)) {
                    *place = scan.segment;
                }
            } else {
                report.dropped_segments += 1;
                report.dropped_bytes += (scan.segment.batch_bytes() + scan.dropped_bytes) as u64;
                if let Some(bytes) = arena.get_mut(segment_range(slot, layout.segment_bytes)) {
                    segment::invalidate(bytes);
                }
            }
        }
        let mut is_live = alloc::vec![false; slot_count];
        for &slot in &live {
            if let Some(flag) = is_live.get_mut(usize::from(slot)) {
                *flag = true;
            }
        }
        let mut free = Vec::with_capacity(slot_count);
        free.extend(
            (0..slot_count as u16).rev().filter(|&s| !is_live.get(usize::from(s)).copied().unwrap_or(true)),
        );
        let end_offset =
            live.back().and_then(|&s| slots.get(usize::from(s))).map_or(0, |s: &Segment| s.end_offset);
        let log = PartitionLog {
            arena,
            segment_bytes: layout.segment_bytes,
            partition,
            slots,
            live,
            free,
            end_offset,
        };
        (log, report)
    }
}
