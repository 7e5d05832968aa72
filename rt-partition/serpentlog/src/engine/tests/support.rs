//! Helpers shared by the engine tests.

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use super::super::*;

pub(super) fn topic(name: &str, partitions: u32, segment_bytes: u32, retention_bytes: u64) -> TopicConfig {
    TopicConfig { name: String::from(name), partitions, segment_bytes, retention_bytes, retention_ms: None }
}

pub(super) fn config(topics: Vec<TopicConfig>) -> BrokerConfig {
    BrokerConfig { topics, max_batch_bytes: 64 * 1024, max_groups: 4, max_producers: 8 }
}

/// A zeroed region exactly as large as `config` needs.
pub(super) fn region_for(config: &BrokerConfig) -> Vec<u8> {
    vec![0u8; region_bytes(config).expect("valid config")]
}

pub(super) fn open<'a>(config: &BrokerConfig, region: &'a mut [u8]) -> (Broker<'a>, Recovery) {
    Broker::open(config.clone(), region, 0).expect("opens")
}

/// Every record of a partition from its start, as (offset, value).
pub(super) fn all_records(broker: &Broker<'_>, topic: &str, partition: u32) -> Vec<(u64, Vec<u8>)> {
    let (start, _) = broker.offsets(topic, partition).expect("offsets");
    let mut out = Vec::new();
    broker
        .fetch(topic, partition, start, &mut |r| {
            out.push((r.offset, r.value.to_vec()));
            true
        })
        .expect("fetch");
    out
}
