//! An engine for tests of the protocol, client and CLI: everything in vectors, the
//! [`Engine`] contract and nothing more (no segments, no CRCs). Behind the feature
//! `testing` so that other crates' tests can use it.

use alloc::string::{String, ToString};
use alloc::vec::Vec;

use crate::engine::{Appended, Engine, Fetched, FetchedRecord, Placement, Producer, TopicSummary};
use crate::ErrorCode;

/// One partition: records from `start` on.
#[derive(Clone, Debug, Default)]
struct Log {
    start: u64,
    records: Vec<(u64, Vec<u8>)>,
}

impl Log {
    fn end(&self) -> u64 {
        self.start + self.records.len() as u64
    }
}

#[derive(Clone, Debug)]
struct Topic {
    name: String,
    partitions: Vec<Log>,
}

/// The last batch an idempotent producer appended to a partition.
#[derive(Clone, Debug)]
struct ProducerState {
    id: u64,
    topic: usize,
    partition: u32,
    last_sequence: u32,
    last_count: u32,
    last_base: u64,
}

/// A vector-backed [`Engine`].
#[derive(Clone, Debug, Default)]
pub struct MemoryEngine {
    topics: Vec<Topic>,
    commits: Vec<(String, usize, u32, u64)>,
    producers: Vec<ProducerState>,
    /// Largest value accepted.
    pub max_record_bytes: usize,
    /// Produce calls that appended (duplicates and errors excluded).
    pub appends: usize,
}

impl MemoryEngine {
    /// Topics `(name, partitions)`; values up to 1 KiB.
    pub fn new(topics: &[(&str, u32)]) -> Self {
        let topics = topics
            .iter()
            .map(|(name, n)| Topic {
                name: name.to_string(),
                partitions: (0..*n).map(|_| Log::default()).collect(),
            })
            .collect();
        Self { topics, max_record_bytes: 1024, ..Self::default() }
    }

    fn log(&self, topic: &str, partition: u32) -> Result<&Log, ErrorCode> {
        let t = self.topics.iter().find(|t| t.name == topic).ok_or(ErrorCode::UnknownTopic)?;
        t.partitions.get(partition as usize).ok_or(ErrorCode::UnknownPartition)
    }

    /// Drops records below `offset` (as retention would).
    pub fn drop_before(&mut self, topic: &str, partition: u32, offset: u64) {
        if let Some(log) = self
            .topics
            .iter_mut()
            .find(|t| t.name == topic)
            .and_then(|t| t.partitions.get_mut(partition as usize))
        {
            let n = (offset.saturating_sub(log.start) as usize).min(log.records.len());
            log.records.drain(..n);
            log.start += n as u64;
        }
    }

    /// Every value of a partition, in order.
    pub fn values(&self, topic: &str, partition: u32) -> Vec<Vec<u8>> {
        self.log(topic, partition)
            .map(|l| l.records.iter().map(|(_, v)| v.clone()).collect())
            .unwrap_or_default()
    }
}

/// The partition of `key` among `partitions` (FNV-1a).
pub fn partition_for_key(key: &[u8], partitions: u32) -> u32 {
    let hash =
        key.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3));
    (hash % u64::from(partitions.max(1))) as u32
}

impl Engine for MemoryEngine {
    fn topic_count(&self) -> usize {
        self.topics.len()
    }

    fn topic(&self, index: usize) -> Option<TopicSummary<'_>> {
        self.topics.get(index).map(|t| TopicSummary { name: &t.name, partitions: t.partitions.len() as u32 })
    }

    fn offsets(&self, topic: &str, partition: u32) -> Result<(u64, u64), ErrorCode> {
        self.log(topic, partition).map(|l| (l.start, l.end()))
    }

    fn produce(
        &mut self,
        topic: &str,
        placement: Placement<'_>,
        producer: Option<Producer>,
        records: &[&[u8]],
        now_ms: u64,
    ) -> Result<Appended, ErrorCode> {
        let t = self.topics.iter().position(|t| t.name == topic).ok_or(ErrorCode::UnknownTopic)?;
        let count = self.topics[t].partitions.len() as u32;
        let partition = match placement {
            Placement::Key(key) => partition_for_key(key, count),
            Placement::Partition(p) if p < count => p,
            Placement::Partition(_) => return Err(ErrorCode::UnknownPartition),
        };
        if records.is_empty() || records.iter().any(|r| r.len() > self.max_record_bytes) {
            return Err(ErrorCode::RecordTooLarge);
        }
        let end = self.topics[t].partitions[partition as usize].end();
        let n = records.len() as u32;
        if let Some(p) = producer {
            match self.producers.iter_mut().find(|s| s.id == p.id && s.topic == t && s.partition == partition)
            {
                Some(s) if p.sequence == s.last_sequence && n == s.last_count => {
                    return Ok(Appended { partition, base_offset: s.last_base, duplicate: true });
                }
                Some(s) if p.sequence != s.last_sequence.wrapping_add(s.last_count) => {
                    return Err(ErrorCode::OutOfOrderSequence);
                }
                Some(s) => {
                    (s.last_sequence, s.last_count, s.last_base) = (p.sequence, n, end);
                }
                None => self.producers.push(ProducerState {
                    id: p.id,
                    topic: t,
                    partition,
                    last_sequence: p.sequence,
                    last_count: n,
                    last_base: end,
                }),
            }
        }
        let log = &mut self.topics[t].partitions[partition as usize];
        log.records.extend(records.iter().map(|r| (now_ms, r.to_vec())));
        self.appends += 1;
        Ok(Appended { partition, base_offset: end, duplicate: false })
    }

    fn fetch(
        &self,
        topic: &str,
        partition: u32,
        offset: u64,
        sink: &mut dyn FnMut(FetchedRecord<'_>) -> bool,
    ) -> Result<Fetched, ErrorCode> {
        let log = self.log(topic, partition)?;
        if offset < log.start || offset > log.end() {
            return Err(ErrorCode::OffsetOutOfRange);
        }
        let mut next = offset;
        for (ts, value) in &log.records[(offset - log.start) as usize..] {
            if !sink(FetchedRecord { offset: next, timestamp_ms: *ts, value }) {
                break;
            }
            next += 1;
        }
        Ok(Fetched { next_offset: next, end_offset: log.end() })
    }

    fn commit(&mut self, group: &str, topic: &str, partition: u32, offset: u64) -> Result<(), ErrorCode> {
        self.log(topic, partition)?;
        let t = self.topics.iter().position(|t| t.name == topic).unwrap_or(0);
        match self.commits.iter_mut().find(|c| c.0 == group && c.1 == t && c.2 == partition) {
            Some(c) => c.3 = offset,
            None => self.commits.push((group.to_string(), t, partition, offset)),
        }
        Ok(())
    }

    fn committed(&self, group: &str, topic: &str, partition: u32) -> Result<Option<u64>, ErrorCode> {
        self.log(topic, partition)?;
        let t = self.topics.iter().position(|t| t.name == topic).unwrap_or(0);
        Ok(self.commits.iter().find(|c| c.0 == group && c.1 == t && c.2 == partition).map(|c| c.3))
    }

    fn enforce_retention(&mut self, _now_ms: u64) -> usize {
        0
    }
}
