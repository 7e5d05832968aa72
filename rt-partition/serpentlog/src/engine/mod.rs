//! The broker engine. [`Engine`] is the contract between the engine and the protocol
//! layer (`serve`): everything a request can ask of the broker, as plain values.
//! [`Broker`] implements it over one byte region that survives the partition's restarts
//! (the broker keeps no other durable state); [`Broker::open`] formats or recovers it.
//!
//! # Region layout
//!
//! ```text
//! region ─┬─ header (64 B): "SERPLOG1", format version, crc32, config fingerprint, bytes used
//!         ├─ group area: max_groups slots, each: name record (72 B) + per partition two
//!         │  alternating copies of the committed offset (2 × 24 B)        (see groups.rs)
//!         ├─ arena of topic 0 partition 0 ─┬─ segment slot 0 ─┬─ segment header (32 B)
//!         │                                │                  ├─ batch, batch, ... ─ 4 zero bytes
//!         │                                │                  └─ (unused to the slot's end)
//!         │                                ├─ segment slot 1
//!         │                                └─ ... S slots, S = max(2, ⌈retention_bytes / segment_bytes⌉ + 1)
//!         ├─ arena of topic 0 partition 1 ...
//!         └─ arenas of the next topics, in declaration order; the rest of the region is unused
//! ```
//!
//! - A partition's log is a few *live* segments, oldest to newest, with contiguous
//!   offsets; the others are free (invalid header). Appends go to the newest; when a batch
//!   does not fit, the log rolls to a free slot, or else reuses the oldest segment's slot
//!   (dropping it: Kafka's roll). The newest segment is never dropped, so its header
//!   always records where offsets continue: offsets are never reused.
//! - A batch (see `batch.rs`) is a 48-byte header (magic, crc32, length, base offset,
//!   timestamp, producer id, first sequence, record count, flags) and length-prefixed
//!   values. An append writes 4 zero bytes after the batch's end, then the batch, CRC
//!   last: a scan stops at the first batch that does not check (torn tail), and a batch
//!   only counts if its base offset continues the segment, so stale batches of a reused
//!   slot (smaller offsets) never come back.
//! - A roll that reuses the oldest segment's slot drops that segment first (its header
//!   is zeroed, then the new header written): a crash between the two leaves the log
//!   without that segment and without the batch, as if retention had run and the
//!   (unacknowledged) append had not. Every other cut leaves the batch whole or absent.
//! - Recovery reads every segment header of every arena, scans the valid ones, and keeps
//!   the newest segment plus the older ones that continue it without a gap; the rest is
//!   invalidated. The idempotent producers' table is rebuilt from the live batch headers;
//!   committed offsets from the group area (the valid copy with the higher sequence).
//! - A region whose header is blank, damaged or carries another fingerprint (topics,
//!   partitions, segment sizes, segment counts, max_groups, format version) is formatted:
//!   header zeroed, group area zeroed, every segment header zeroed, header written last.
//! - In memory, each live segment keeps a sparse index (one entry per ~4 KiB of batches)
//!   so fetch walks at most a few batch headers to reach an offset.
//!
//! Key placement: FNV-1a (32 bit) of the key modulo the topic's partitions
//! ([`partition_for_key`]). The largest batch a topic takes is
//! `min(max_batch_bytes, segment_bytes - 32)` bytes as [`batch_bytes`] counts them
//! (48 + Σ (4 + value length)).

use crate::ErrorCode;

mod batch;
mod broker;
mod bytes;
mod groups;
mod layout;
mod partition;
mod producers;
mod segment;
#[cfg(test)]
mod tests;

pub use batch::batch_bytes;
pub use broker::{partition_for_key, region_bytes, Broker, FormatReason, Recovery};
pub use bytes::fnv1a_32;
pub use layout::{
    BrokerConfig, ConfigError, TopicConfig, BATCH_HEADER_BYTES, MAX_GROUPS, MAX_GROUP_NAME_BYTES,
    MAX_PRODUCERS, MAX_SEGMENTS_PER_PARTITION, MAX_SEGMENT_BYTES, MAX_TOPIC_NAME_BYTES, MAX_TOTAL_PARTITIONS,
    MIN_SEGMENT_BYTES, RECORD_OVERHEAD_BYTES, REGION_HEADER_BYTES, SEGMENT_HEADER_BYTES,
};

/// Where a produced batch goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placement<'a> {
    /// The partition chosen by hashing this key (the same key always lands in the same
    /// partition of a topic).
    Key(&'a [u8]),
    /// This partition, explicitly.
    Partition(u32),
}

/// An idempotent producer's identity for one batch: `sequence` numbers the batch's first
/// record; the next batch of the same producer and partition starts at `sequence +
/// records`. A batch the broker has already appended is acknowledged again with its
/// original offsets and not appended twice.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Producer {
    pub id: u64,
    pub sequence: u32,
}

/// The answer to a produce: where the batch's records are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Appended {
    pub partition: u32,
    /// Offset of the batch's first record; the others follow one by one.
    pub base_offset: u64,
    /// The batch was a retry of one already appended (idempotent producer): nothing new
    /// was written.
    pub duplicate: bool,
}

/// One record as a fetch returns it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FetchedRecord<'a> {
    pub offset: u64,
    /// The broker's clock when the record's batch was appended (milliseconds).
    pub timestamp_ms: u64,
    pub value: &'a [u8],
}

/// What a fetch ended with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fetched {
    /// The offset to fetch next (one past the last record handed out).
    pub next_offset: u64,
    /// The partition's end: the offset the next appended record will get.
    pub end_offset: u64,
}

/// A topic as the broker declares it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TopicSummary<'a> {
    pub name: &'a str,
    pub partitions: u32,
}

/// Everything the protocol layer asks of a broker. Every argument may come straight from
/// a hostile client: an implementation answers with an [`ErrorCode`], never panics.
pub trait Engine {
    /// The declared topics, by index `0..topic_count()`.
    fn topic_count(&self) -> usize;
    fn topic(&self, index: usize) -> Option<TopicSummary<'_>>;

    /// The oldest offset still kept and the end offset (next to be assigned).
    fn offsets(&self, topic: &str, partition: u32) -> Result<(u64, u64), ErrorCode>;

    /// Appends `records` (values) as one batch at the broker's time `now_ms`; all or
    /// nothing.
    fn produce(
        &mut self,
        topic: &str,
        placement: Placement<'_>,
        producer: Option<Producer>,
        records: &[&[u8]],
        now_ms: u64,
    ) -> Result<Appended, ErrorCode>;

    /// Hands records from `offset` on to `sink`, in offset order, until the partition's end
    /// or until `sink` returns `false` (the record it refused is not counted as handed
    /// out). An `offset` equal to the end is not an error: nothing is handed out.
    fn fetch(
        &self,
        topic: &str,
        partition: u32,
        offset: u64,
        sink: &mut dyn FnMut(FetchedRecord<'_>) -> bool,
    ) -> Result<Fetched, ErrorCode>;

    /// Records `group`'s position in a partition (the next offset the group will read).
    fn commit(&mut self, group: &str, topic: &str, partition: u32, offset: u64) -> Result<(), ErrorCode>;

    /// `group`'s committed position in a partition, `None` if it never committed one.
    fn committed(&self, group: &str, topic: &str, partition: u32) -> Result<Option<u64>, ErrorCode>;

    /// Applies retention (size and age) at `now_ms`; returns how many segments it dropped.
    fn enforce_retention(&mut self, now_ms: u64) -> usize;
}
