//! The broker's configuration (plain data), its checks, and where everything goes in the
//! region (see the picture in the [module doc](super)).

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use super::bytes::Fnv64;

/// Bytes of the region header at the start of the region.
pub const REGION_HEADER_BYTES: usize = 64;
/// Bytes of the header at the start of every segment.
pub const SEGMENT_HEADER_BYTES: usize = 32;
/// Bytes of a batch header (before its records).
pub const BATCH_HEADER_BYTES: usize = 48;
/// Bytes each record adds to its batch besides its value (the length prefix).
pub const RECORD_OVERHEAD_BYTES: usize = 4;
/// The smallest segment accepted.
pub const MIN_SEGMENT_BYTES: u32 = 256;
/// The largest segment accepted (positions inside a segment are kept as `u32`).
pub const MAX_SEGMENT_BYTES: u32 = 1 << 30;
/// The most segments one partition's arena may have (slot numbers are `u16`).
pub const MAX_SEGMENTS_PER_PARTITION: u64 = 4096;
/// The most partitions over all topics.
pub const MAX_TOTAL_PARTITIONS: u64 = 4096;
/// The longest topic name, in bytes.
pub const MAX_TOPIC_NAME_BYTES: usize = 255;
/// The longest consumer-group name, in bytes (names are stored in the region).
pub const MAX_GROUP_NAME_BYTES: usize = 64;
/// Table limits (consumer groups, idempotent producers).
pub const MAX_GROUPS: u32 = 1024;
pub const MAX_PRODUCERS: u32 = 65_536;

/// A group slot's name record: CRC, length, name bytes.
pub(crate) const GROUP_NAME_RECORD_BYTES: usize = 8 + MAX_GROUP_NAME_BYTES;
/// One copy of a committed offset: sequence, offset, CRC, padding.
pub(crate) const COMMIT_COPY_BYTES: usize = 24;
/// Bumped when anything in the region's format changes (it is part of the fingerprint).
pub(crate) const FORMAT_VERSION: u64 = 1;

/// One topic as the broker's configuration declares it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicConfig {
    pub name: String,
    /// Fixed for the topic's life (changing it reformats the region).
    pub partitions: u32,
    /// Size of one segment, header included; the largest batch is this minus
    /// [`SEGMENT_HEADER_BYTES`].
    pub segment_bytes: u32,
    /// Batch bytes a partition keeps before its oldest segments are dropped. It also sizes
    /// the partition's arena: `max(2, ceil(retention_bytes / segment_bytes) + 1)` segments.
    pub retention_bytes: u64,
    /// Segments whose newest batch is older than this are dropped; `None` keeps them
    /// until size retention or the log's roll drops them.
    pub retention_ms: Option<u64>,
}

impl TopicConfig {
    /// Segments in each partition's arena (the arena always has room for
    /// `retention_bytes` plus the segment being written).
    pub fn segments_per_partition(&self) -> u64 {
        let segment = u64::from(self.segment_bytes.max(1));
        self.retention_bytes.div_ceil(segment).saturating_add(1).max(2)
    }
}

/// The broker's configuration: plain data, checked by [`super::Broker::open`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokerConfig {
    pub topics: Vec<TopicConfig>,
    /// The largest batch (header and length prefixes included) a produce may append; a
    /// topic's segment size may lower it further.
    pub max_batch_bytes: u32,
    /// Consumer groups the broker remembers (each has a slot in the region).
    pub max_groups: u32,
    /// (producer id, partition) pairs whose last batch the broker remembers; the entry
    /// used least recently is evicted when a new one needs room.
    pub max_producers: u32,
}

/// Why a configuration cannot be used; `Display` says what to change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigError {
    NoTopics,
    EmptyTopicName {
        index: usize,
    },
    TopicNameTooLong {
        name: String,
        max: usize,
    },
    DuplicateTopic {
        name: String,
    },
    ZeroPartitions {
        topic: String,
    },
    TooManyPartitions {
        total: u64,
        max: u64,
    },
    SegmentTooSmall {
        topic: String,
        segment_bytes: u32,
        min: u32,
    },
    SegmentTooLarge {
        topic: String,
        segment_bytes: u32,
        max: u32,
    },
    TooManySegments {
        topic: String,
        segments: u64,
        max: u64,
    },
    MaxBatchTooSmall {
        max_batch_bytes: u32,
        min: u32,
    },
    TooManyGroups {
        groups: u32,
        max: u32,
    },
    TooManyProducers {
        producers: u32,
        max: u32,
    },
    /// The layout does not fit in the address space (absurd sizes).
    LayoutOverflow,
    RegionTooSmall {
        needed: u64,
        available: u64,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::NoTopics => write!(f, "no topics declared; declare at least one topic"),
            ConfigError::EmptyTopicName { index } => {
                write!(f, "topic #{index} has an empty name; give it a name")
            }
            ConfigError::TopicNameTooLong { name, max } => {
                write!(f, "topic name \"{name}\" is longer than {max} bytes; shorten it")
            }
            ConfigError::DuplicateTopic { name } => {
                write!(f, "topic \"{name}\" is declared twice; remove or rename one")
            }
            ConfigError::ZeroPartitions { topic } => {
                write!(f, "topic \"{topic}\" has 0 partitions; it needs at least 1")
            }
            ConfigError::TooManyPartitions { total, max } => {
                write!(f, "{total} partitions over all topics; at most {max} are supported")
            }
            ConfigError::SegmentTooSmall { topic, segment_bytes, min } => {
                write!(f, "topic \"{topic}\": segment_bytes {segment_bytes} is below the minimum {min}")
            }
            ConfigError::SegmentTooLarge { topic, segment_bytes, max } => {
                write!(f, "topic \"{topic}\": segment_bytes {segment_bytes} is above the maximum {max}")
            }
            ConfigError::TooManySegments { topic, segments, max } => write!(
                f,
                "topic \"{topic}\": retention_bytes / segment_bytes gives {segments} segments per \
                 partition, more than {max}; raise segment_bytes or lower retention_bytes"
            ),
            ConfigError::MaxBatchTooSmall { max_batch_bytes, min } => write!(
                f,
                "max_batch_bytes {max_batch_bytes} cannot hold even one empty record; use at least {min}"
            ),
            ConfigError::TooManyGroups { groups, max } => {
                write!(f, "max_groups {groups} is above the supported {max}")
            }
            ConfigError::TooManyProducers { producers, max } => {
                write!(f, "max_producers {producers} is above the supported {max}")
            }
            ConfigError::LayoutOverflow => {
                write!(f, "the configuration needs more bytes than can be addressed; shrink it")
            }
            ConfigError::RegionTooSmall { needed, available } => write!(
                f,
                "the persistent region has {available} bytes but this configuration needs {needed}; \
                 enlarge the region or shrink retention_bytes, segments, partitions or max_groups"
            ),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for ConfigError {}

/// One partition's arena: `segments` segments of `segment_bytes` from `start`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ArenaLayout {
    pub start: usize,
    pub segments: usize,
    pub segment_bytes: usize,
}

impl ArenaLayout {
    pub(crate) fn bytes(&self) -> usize {
        self.segments * self.segment_bytes
    }
}

/// Where everything of a checked configuration lives in the region.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Layout {
    pub group_area_start: usize,
    pub group_slot_bytes: usize,
    pub groups: usize,
    /// One per partition, topics in declaration order, partitions in index order.
    pub arenas: Vec<ArenaLayout>,
    pub total_bytes: usize,
    pub fingerprint: u64,
}

impl Layout {
    /// Checks `config` and places its parts; the error says what to change.
    pub(crate) fn compute(config: &BrokerConfig) -> Result<Layout, ConfigError> {
        check(config)?;
        let total_partitions: usize = config.topics.iter().map(|t| t.partitions as usize).sum();
        let group_slot_bytes = total_partitions
            .checked_mul(2 * COMMIT_COPY_BYTES)
            .and_then(|c| c.checked_add(GROUP_NAME_RECORD_BYTES))
            .ok_or(ConfigError::LayoutOverflow)?;
        let groups = config.max_groups as usize;
        let group_area_start = REGION_HEADER_BYTES;
        let mut next = group_slot_bytes
            .checked_mul(groups)
            .and_then(|g| g.checked_add(group_area_start))
            .ok_or(ConfigError::LayoutOverflow)?;

        let mut fingerprint = Fnv64::new();
        fingerprint.u64(FORMAT_VERSION).u64(u64::from(config.max_groups)).u64(config.topics.len() as u64);
        let mut arenas = Vec::with_capacity(total_partitions);
        for topic in &config.topics {
            let segments = topic.segments_per_partition() as usize;
            fingerprint
                .u64(topic.name.len() as u64)
                .bytes(topic.name.as_bytes())
                .u64(u64::from(topic.partitions))
                .u64(u64::from(topic.segment_bytes))
                .u64(segments as u64);
            for _ in 0..topic.partitions {
                let arena =
                    ArenaLayout { start: next, segments, segment_bytes: topic.segment_bytes as usize };
                let bytes = segments.checked_mul(arena.segment_bytes).ok_or(ConfigError::LayoutOverflow)?;
                next = next.checked_add(bytes).ok_or(ConfigError::LayoutOverflow)?;
                arenas.push(arena);
            }
        }
        Ok(Layout {
            group_area_start,
            group_slot_bytes,
            groups,
            arenas,
            total_bytes: next,
            fingerprint: fingerprint.finish(),
        })
    }
}

fn check(config: &BrokerConfig) -> Result<(), ConfigError> {
    if config.topics.is_empty() {
        return Err(ConfigError::NoTopics);
    }
    let mut total_partitions: u64 = 0;
    for (index, topic) in config.topics.iter().enumerate() {
        if topic.name.is_empty() {
            return Err(ConfigError::EmptyTopicName { index });
        }
        if topic.name.len() > MAX_TOPIC_NAME_BYTES {
            return Err(ConfigError::TopicNameTooLong {
                name: topic.name.clone(),
                max: MAX_TOPIC_NAME_BYTES,
            });
        }
        if config.topics[..index].iter().any(|t| t.name == topic.name) {
            return Err(ConfigError::DuplicateTopic { name: topic.name.clone() });
        }
        if topic.partitions == 0 {
            return Err(ConfigError::ZeroPartitions { topic: topic.name.clone() });
        }
        if topic.segment_bytes < MIN_SEGMENT_BYTES {
            return Err(ConfigError::SegmentTooSmall {
                topic: topic.name.clone(),
                segment_bytes: topic.segment_bytes,
                min: MIN_SEGMENT_BYTES,
            });
        }
        if topic.segment_bytes > MAX_SEGMENT_BYTES {
            return Err(ConfigError::SegmentTooLarge {
                topic: topic.name.clone(),
                segment_bytes: topic.segment_bytes,
                max: MAX_SEGMENT_BYTES,
            });
        }
        let segments = topic.segments_per_partition();
        if segments > MAX_SEGMENTS_PER_PARTITION {
            return Err(ConfigError::TooManySegments {
                topic: topic.name.clone(),
                segments,
                max: MAX_SEGMENTS_PER_PARTITION,
            });
        }
        total_partitions += u64::from(topic.partitions);
    }
    if total_partitions > MAX_TOTAL_PARTITIONS {
        return Err(ConfigError::TooManyPartitions { total: total_partitions, max: MAX_TOTAL_PARTITIONS });
    }
    let min_batch = (BATCH_HEADER_BYTES + RECORD_OVERHEAD_BYTES) as u32;
    if config.max_batch_bytes < min_batch {
        return Err(ConfigError::MaxBatchTooSmall {
            max_batch_bytes: config.max_batch_bytes,
            min: min_batch,
        });
    }
    if config.max_groups > MAX_GROUPS {
        return Err(ConfigError::TooManyGroups { groups: config.max_groups, max: MAX_GROUPS });
    }
    if config.max_producers > MAX_PRODUCERS {
        return Err(ConfigError::TooManyProducers { producers: config.max_producers, max: MAX_PRODUCERS });
    }
    Ok(())
}
