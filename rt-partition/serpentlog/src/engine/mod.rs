//! The broker engine. [`Engine`] is the contract between the engine and the protocol
//! layer (`serve`): everything a request can ask of the broker, as plain values.
//! The implementation (segments in a byte region that survives the partition's restarts,
//! recovery by CRC scan) lives in the submodules.

use crate::ErrorCode;

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
