//! The broker: topics over partition logs, consumer groups and idempotent producers, all
//! in one caller-provided region; [`Broker::open`] formats or recovers it.

use alloc::string::String;
use alloc::vec::Vec;

use super::batch::batch_bytes;
use super::bytes::{fnv1a_32, get_u32, get_u64, put, zero};
use super::groups::GroupTable;
use super::layout::{BrokerConfig, ConfigError, Layout, FORMAT_VERSION, REGION_HEADER_BYTES};
use super::partition::PartitionLog;
use super::producers::{ProducerTable, SequenceCheck};
use super::{Appended, Engine, Fetched, FetchedRecord, Placement, Producer, TopicSummary};
use crate::ErrorCode;

const REGION_MAGIC: [u8; 8] = *b"SERPLOG1";

/// Why [`Broker::open`] formatted the region instead of recovering it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FormatReason {
    /// The header is all zero: a region never formatted (first boot).
    Blank,
    /// The header is not a valid SerpentLog header (garbage, or a format cut short).
    Damaged,
    /// A valid header for another configuration (topics, partitions, segment sizes,
    /// retention bytes or max groups changed) or another format version.
    DifferentConfig,
}

/// What [`Broker::open`] found and did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Recovery {
    /// `Some` if the region was formatted fresh (nothing recovered), and why.
    pub formatted: Option<FormatReason>,
    /// Live segments, valid batches and their records recovered over all partitions.
    pub segments: u64,
    pub batches: u64,
    pub records: u64,
    /// Bytes discarded: torn or damaged tail batches (as long as they claimed to be) and
    /// segments that no longer joined their partition's log.
    pub bytes_dropped: u64,
    pub segments_dropped: u64,
    /// Consumer groups and committed offsets recovered.
    pub groups: u64,
    pub committed_offsets: u64,
    /// Idempotent producer entries rebuilt from batch headers.
    pub producers: u64,
}

struct Topic {
    name: String,
    partitions: u32,
    /// Global index of the topic's partition 0.
    first: usize,
    retention_bytes: u64,
    retention_ms: Option<u64>,
}

/// A SerpentLog broker over one byte region. See the [module doc](super) for the layout.
pub struct Broker<'a> {
    topics: Vec<Topic>,
    partitions: Vec<PartitionLog<'a>>,
    groups: GroupTable<'a>,
    producers: ProducerTable,
    max_batch_bytes: usize,
    /// The broker's clock: the largest time seen (callers' and recovered batches'), so
    /// timestamps never go backwards, even across a restart.
    clock_ms: u64,
}

/// The partition the key `key` goes to in a topic of `partitions` partitions: FNV-1a
/// (32 bits) of the key, modulo the partition count (0 for 0 partitions).
pub fn partition_for_key(key: &[u8], partitions: u32) -> u32 {
    fnv1a_32(key).checked_rem(partitions).unwrap_or(0)
}

/// Bytes of region `config` needs (checks the configuration).
pub fn region_bytes(config: &BrokerConfig) -> Result<usize, ConfigError> {
    Layout::compute(config).map(|layout| layout.total_bytes)
}

fn header_bytes(layout: &Layout) -> [u8; REGION_HEADER_BYTES] {
    let mut header = [0u8; REGION_HEADER_BYTES];
    header[..8].copy_from_slice(&REGION_MAGIC);
    header[8..12].copy_from_slice(&(FORMAT_VERSION as u32).to_le_bytes());
    header[16..24].copy_from_slice(&layout.fingerprint.to_le_bytes());
    header[24..32].copy_from_slice(&(layout.total_bytes as u64).to_le_bytes());
    let crc = crc32fast::hash(&header[16..]);
    header[12..16].copy_from_slice(&crc.to_le_bytes());
    header
}

/// Whether the region header matches `layout`, and why not.
fn check_header(header: &[u8], layout: &Layout) -> Result<(), FormatReason> {
    if header.iter().all(|&b| b == 0) {
        return Err(FormatReason::Blank);
    }
    let valid = header.get(..8) == Some(&REGION_MAGIC[..])
        && header.get(16..).map(crc32fast::hash) == get_u32(header, 12);
    if !valid {
        return Err(FormatReason::Damaged);
    }
    let same = get_u32(header, 8) == Some(FORMAT_VERSION as u32)
        && get_u64(header, 16) == Some(layout.fingerprint)
        && get_u64(header, 24) == Some(layout.total_bytes as u64);
    if same {
        Ok(())
    } else {
        Err(FormatReason::DifferentConfig)
    }
}

impl<'a> Broker<'a> {
    /// Opens a broker over `region` (which survives the partition's restarts): checks
    /// `config`, formats the region if it is blank, damaged or formatted for another
    /// configuration, else recovers every partition, the consumer groups' offsets and the
    /// idempotent producers' last batches. `now_ms` starts the broker's clock (which never
    /// goes below the newest recovered batch's time). Only the first
    /// [`region_bytes`]`(config)` bytes of the region are used.
    pub fn open(
        config: BrokerConfig,
        region: &'a mut [u8],
        now_ms: u64,
    ) -> Result<(Broker<'a>, Recovery), ConfigError> {
        let layout = Layout::compute(&config)?;
        let too_small =
            ConfigError::RegionTooSmall { needed: layout.total_bytes as u64, available: region.len() as u64 };
        let (header, rest) = region.split_at_mut_checked(REGION_HEADER_BYTES).ok_or(too_small.clone())?;
        let (group_area, mut rest) =
            rest.split_at_mut_checked(layout.group_slot_bytes * layout.groups).ok_or(too_small.clone())?;
        let mut arenas = Vec::with_capacity(layout.arenas.len());
        for arena in &layout.arenas {
            let (this, after) = rest.split_at_mut_checked(arena.bytes()).ok_or(too_small.clone())?;
            arenas.push(this);
            rest = after;
        }

        let mut recovery = Recovery::default();
        if let Err(reason) = check_header(header, &layout) {
            // Invalidate the header first: a format cut short is formatted again.
            zero(header, 0, REGION_HEADER_BYTES);
            GroupTable::format(group_area);
            for (arena, arena_layout) in arenas.iter_mut().zip(&layout.arenas) {
                PartitionLog::format(arena, *arena_layout);
            }
            put(header, 0, &header_bytes(&layout));
            recovery.formatted = Some(reason);
        }

        let total_partitions = layout.arenas.len();
        let mut partitions = Vec::with_capacity(total_partitions);
        let mut clock_ms = now_ms;
        for (index, (arena, arena_layout)) in arenas.into_iter().zip(&layout.arenas).enumerate() {
            let (log, found) = PartitionLog::recover(arena, *arena_layout, index as u32);
            recovery.segments += found.segments;
            recovery.batches += found.batches;
            recovery.records += found.records;
            recovery.bytes_dropped += found.dropped_bytes;
            recovery.segments_dropped += found.dropped_segments;
            clock_ms = clock_ms.max(found.newest_ms);
            partitions.push(log);
        }
        let (groups, found) =
            GroupTable::recover(group_area, layout.group_slot_bytes, layout.groups, total_partitions);
        recovery.groups = found.groups;
        recovery.committed_offsets = found.commits;

        let mut producers = ProducerTable::new(config.max_producers as usize);
        for (index, log) in partitions.iter().enumerate() {
            log.for_each_batch(|batch| {
                if let Some(p) = batch.producer {
                    producers.record(
                        p.id,
                        index,
                        p.sequence,
                        batch.record_count,
                        batch.base_offset,
                        batch.timestamp_ms,
                    );
                }
            });
        }
        recovery.producers = producers.len() as u64;

        let mut topics = Vec::with_capacity(config.topics.len());
        let mut first = 0;
        for topic in config.topics {
            let partitions = topic.partitions;
            topics.push(Topic {
                name: topic.name,
                partitions,
                first,
                retention_bytes: topic.retention_bytes,
                retention_ms: topic.retention_ms,
            });
            first += partitions as usize;
        }
        let broker = Broker {
            topics,
            partitions,
            groups,
            producers,
            max_batch_bytes: config.max_batch_bytes as usize,
            clock_ms,
        };
        Ok((broker, recovery))
    }

    fn topic_named(&self, name: &str) -> Result<&Topic, ErrorCode> {
        self.topics.iter().find(|t| t.name == name).ok_or(ErrorCode::UnknownTopic)
    }

    /// The global index of `topic`'s partition `partition`.
    fn global(&self, topic: &str, partition: u32) -> Result<usize, ErrorCode> {
        let topic = self.topic_named(topic)?;
        if partition >= topic.partitions {
            return Err(ErrorCode::UnknownPartition);
        }
        Ok(topic.first + partition as usize)
    }

    fn log(&self, topic: &str, partition: u32) -> Result<&PartitionLog<'a>, ErrorCode> {
        let index = self.global(topic, partition)?;
        self.partitions.get(index).ok_or(ErrorCode::UnknownPartition)
    }

    /// The largest batch `topic` accepts, in bytes as [`batch_bytes`] counts them: the
    /// smaller of `max_batch_bytes` and the topic's segment size minus its header.
    pub fn batch_limit(&self, topic: &str) -> Result<usize, ErrorCode> {
        let log = self.log(topic, 0)?;
        Ok(self.max_batch_bytes.min(log.batch_capacity()))
    }

    /// The broker's clock (milliseconds): the largest time it has seen.
    pub fn clock_ms(&self) -> u64 {
        self.clock_ms
    }

    /// Consumer groups registered.
    pub fn group_count(&self) -> usize {
        self.groups.group_count()
    }

    /// Idempotent producer entries remembered, and the table's capacity.
    pub fn producer_entries(&self) -> (usize, usize) {
        (self.producers.len(), self.producers.capacity())
    }

    fn advance_clock(&mut self, now_ms: u64) -> u64 {
        self.clock_ms = self.clock_ms.max(now_ms);
        self.clock_ms
    }
}

impl Engine for Broker<'_> {
    fn topic_count(&self) -> usize {
        self.topics.len()
    }

    fn topic(&self, index: usize) -> Option<TopicSummary<'_>> {
        self.topics.get(index).map(|t| TopicSummary { name: &t.name, partitions: t.partitions })
    }

    fn offsets(&self, topic: &str, partition: u32) -> Result<(u64, u64), ErrorCode> {
        let log = self.log(topic, partition)?;
        Ok((log.log_start(), log.end_offset()))
    }

    fn produce(
        &mut self,
        topic: &str,
        placement: Placement<'_>,
        producer: Option<Producer>,
        records: &[&[u8]],
        now_ms: u64,
    ) -> Result<Appended, ErrorCode> {
        let topic_entry = self.topic_named(topic)?;
        let partition = match placement {
            Placement::Key(key) => partition_for_key(key, topic_entry.partitions),
            Placement::Partition(p) if p < topic_entry.partitions => p,
            Placement::Partition(_) => return Err(ErrorCode::UnknownPartition),
        };
        let global = topic_entry.first + partition as usize;
        if records.is_empty() {
            return Err(ErrorCode::BadRequest);
        }
        let length = batch_bytes(records).ok_or(ErrorCode::RecordTooLarge)?;
        let capacity = self.partitions.get(global).ok_or(ErrorCode::UnknownPartition)?.batch_capacity();
        if length > self.max_batch_bytes.min(capacity) {
            return Err(ErrorCode::RecordTooLarge);
        }
        let count = u32::try_from(records.len()).map_err(|_| ErrorCode::RecordTooLarge)?;
        if let Some(p) = producer {
            if self.producers.capacity() == 0 {
                return Err(ErrorCode::ResourceExhausted);
            }
            match self.producers.check(p.id, global, p.sequence, count) {
                SequenceCheck::Duplicate(base_offset) => {
                    return Ok(Appended { partition, base_offset, duplicate: true });
                }
                SequenceCheck::OutOfOrder => return Err(ErrorCode::OutOfOrderSequence),
                SequenceCheck::New | SequenceCheck::Next => {}
            }
        }
        let now = self.advance_clock(now_ms);
        let log = self.partitions.get_mut(global).ok_or(ErrorCode::UnknownPartition)?;
        let (base_offset, _dropped) = log.append(records, length, now, producer)?;
        if let Some(p) = producer {
            self.producers.record(p.id, global, p.sequence, count, base_offset, now);
        }
        Ok(Appended { partition, base_offset, duplicate: false })
    }

    fn fetch(
        &self,
        topic: &str,
        partition: u32,
        offset: u64,
        sink: &mut dyn FnMut(FetchedRecord<'_>) -> bool,
    ) -> Result<Fetched, ErrorCode> {
        self.log(topic, partition)?.fetch(offset, sink)
    }

    fn commit(&mut self, group: &str, topic: &str, partition: u32, offset: u64) -> Result<(), ErrorCode> {
        let global = self.global(topic, partition)?;
        self.groups.commit(group, global, offset)
    }

    fn committed(&self, group: &str, topic: &str, partition: u32) -> Result<Option<u64>, ErrorCode> {
        let global = self.global(topic, partition)?;
        Ok(self.groups.committed(group, global))
    }

    fn enforce_retention(&mut self, now_ms: u64) -> usize {
        let now = self.advance_clock(now_ms);
        let mut dropped = 0;
        for topic in &self.topics {
            let range = topic.first..topic.first + topic.partitions as usize;
            for log in self.partitions.get_mut(range).into_iter().flatten() {
                dropped += log.enforce_retention(now, topic.retention_bytes, topic.retention_ms);
            }
        }
        dropped
    }
}
