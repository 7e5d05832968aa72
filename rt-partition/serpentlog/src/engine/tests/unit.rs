//! One test (or a few) per rule of the engine.

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use super::super::*;
use super::support::*;
use crate::ErrorCode;

fn one_topic() -> BrokerConfig {
    config(vec![topic("events", 3, 1024, 2048)])
}

// ---------------------------------------------------------------- configuration

#[test]
fn configuration_errors_name_the_problem() {
    let base = one_topic();
    let with = |change: &dyn Fn(&mut BrokerConfig)| {
        let mut c = base.clone();
        change(&mut c);
        region_bytes(&c).expect_err("refused")
    };
    assert_eq!(with(&|c| c.topics.clear()), ConfigError::NoTopics);
    assert_eq!(with(&|c| c.topics[0].name.clear()), ConfigError::EmptyTopicName { index: 0 });
    assert!(matches!(with(&|c| c.topics[0].name = "x".repeat(256)), ConfigError::TopicNameTooLong { .. }));
    assert_eq!(
        with(&|c| c.topics.push(c.topics[0].clone())),
        ConfigError::DuplicateTopic { name: String::from("events") }
    );
    assert_eq!(
        with(&|c| c.topics[0].partitions = 0),
        ConfigError::ZeroPartitions { topic: String::from("events") }
    );
    assert!(matches!(with(&|c| c.topics[0].segment_bytes = 255), ConfigError::SegmentTooSmall { .. }));
    assert!(matches!(
        with(&|c| c.topics[0].segment_bytes = (1 << 30) + 1),
        ConfigError::SegmentTooLarge { .. }
    ));
    assert!(matches!(with(&|c| c.topics[0].retention_bytes = u64::MAX), ConfigError::TooManySegments { .. }));
    assert!(matches!(with(&|c| c.topics[0].partitions = 5000), ConfigError::TooManyPartitions { .. }));
    assert!(matches!(with(&|c| c.max_batch_bytes = 51), ConfigError::MaxBatchTooSmall { min: 52, .. }));
    assert!(matches!(with(&|c| c.max_groups = MAX_GROUPS + 1), ConfigError::TooManyGroups { .. }));
    assert!(matches!(with(&|c| c.max_producers = MAX_PRODUCERS + 1), ConfigError::TooManyProducers { .. }));

    let message = alloc::format!("{}", with(&|c| c.topics[0].partitions = 0));
    assert!(message.contains("events") && message.contains("0 partitions"), "{message}");
}

#[test]
fn a_region_too_small_is_refused_with_both_sizes() {
    let config = one_topic();
    let needed = region_bytes(&config).unwrap();
    let mut region = vec![0u8; needed - 1];
    let Err(error) = Broker::open(config.clone(), &mut region, 0) else { panic!("opened") };
    assert_eq!(error, ConfigError::RegionTooSmall { needed: needed as u64, available: needed as u64 - 1 });
    let message = alloc::format!("{error}");
    assert!(message.contains(&alloc::format!("{needed}")), "{message}");
    // A larger region is fine: only the first `needed` bytes are used.
    let mut region = vec![0u8; needed + 100];
    assert!(Broker::open(config, &mut region, 0).is_ok());
}

#[test]
fn region_size_follows_the_documented_layout() {
    let config = config(vec![topic("a", 2, 1000, 2500), topic("b", 1, 512, 0)]);
    // a: ceil(2500/1000)+1 = 4 segments; b: max(2, 0+1) = 2 segments.
    assert_eq!(config.topics[0].segments_per_partition(), 4);
    assert_eq!(config.topics[1].segments_per_partition(), 2);
    let group_slot = 72 + 3 * 48;
    assert_eq!(region_bytes(&config).unwrap(), 64 + 4 * group_slot + 2 * 4 * 1000 + 2 * 512);
}

// ---------------------------------------------------------------- formatting

#[test]
fn blank_damaged_and_foreign_regions_are_formatted_and_a_good_one_is_not() {
    let config = one_topic();
    let mut region = region_for(&config);
    let (mut broker, recovery) = open(&config, &mut region);
    assert_eq!(recovery.formatted, Some(FormatReason::Blank));
    broker.produce("events", Placement::Partition(0), None, &[b"kept"], 5).unwrap();
    drop(broker);

    let (broker, recovery) = open(&config, &mut region);
    assert_eq!(recovery.formatted, None);
    assert_eq!((recovery.batches, recovery.records, recovery.segments), (1, 1, 1));
    assert_eq!(all_records(&broker, "events", 0), vec![(0, b"kept".to_vec())]);
    drop(broker);

    // Another topic configuration: formatted, nothing of the old data is read.
    let mut other = config.clone();
    other.topics[0].partitions = 2;
    let (broker, recovery) = Broker::open(other.clone(), &mut region, 0).unwrap();
    assert_eq!(recovery.formatted, Some(FormatReason::DifferentConfig));
    assert_eq!(broker.offsets("events", 0), Ok((0, 0)));
    drop(broker);

    // Garbage in the header.
    region[3] ^= 0xff;
    let (_, recovery) = Broker::open(other, &mut region, 0).unwrap();
    assert_eq!(recovery.formatted, Some(FormatReason::Damaged));
}

#[test]
fn retention_ms_and_producer_table_size_do_not_reformat() {
    let config = one_topic();
    let mut region = region_for(&config);
    let (mut broker, _) = open(&config, &mut region);
    broker.produce("events", Placement::Partition(1), None, &[b"x"], 0).unwrap();
    drop(broker);
    let mut tuned = config.clone();
    tuned.topics[0].retention_ms = Some(1000);
    tuned.max_producers = 3;
    tuned.max_batch_bytes = 300;
    let (broker, recovery) = Broker::open(tuned, &mut region, 0).unwrap();
    assert_eq!(recovery.formatted, None);
    assert_eq!(broker.offsets("events", 1), Ok((0, 1)));
}

// ---------------------------------------------------------------- produce and fetch

#[test]
fn offsets_increase_record_by_record_across_batches() {
    let config = one_topic();
    let mut region = region_for(&config);
    let (mut broker, _) = open(&config, &mut region);
    let first = broker.produce("events", Placement::Partition(2), None, &[b"a", b"b", b"c"], 10).unwrap();
    let second = broker.produce("events", Placement::Partition(2), None, &[b"d"], 11).unwrap();
    assert_eq!(first, Appended { partition: 2, base_offset: 0, duplicate: false });
    assert_eq!(second.base_offset, 3);
    assert_eq!(broker.offsets("events", 2), Ok((0, 4)));
    assert_eq!(broker.offsets("events", 0), Ok((0, 0)));

    let mut seen = Vec::new();
    let fetched = broker
        .fetch("events", 2, 1, &mut |r| {
            seen.push((r.offset, r.timestamp_ms, r.value.to_vec()));
            true
        })
        .unwrap();
    assert_eq!(seen, vec![(1, 10, b"b".to_vec()), (2, 10, b"c".to_vec()), (3, 11, b"d".to_vec())]);
    assert_eq!(fetched, Fetched { next_offset: 4, end_offset: 4 });
}

#[test]
fn a_sink_that_refuses_stops_the_fetch_at_that_record() {
    let config = one_topic();
    let mut region = region_for(&config);
    let (mut broker, _) = open(&config, &mut region);
    broker.produce("events", Placement::Partition(0), None, &[b"a", b"b", b"c"], 0).unwrap();
    let mut taken = 0;
    let fetched = broker
        .fetch("events", 0, 0, &mut |_| {
            taken += 1;
            taken <= 2
        })
        .unwrap();
    assert_eq!(fetched, Fetched { next_offset: 2, end_offset: 3 });
}

#[test]
fn fetch_at_the_end_is_empty_and_outside_the_log_is_out_of_range() {
    let config = one_topic();
    let mut region = region_for(&config);
    let (mut broker, _) = open(&config, &mut region);
    let mut none = |_: FetchedRecord<'_>| -> bool { panic!("nothing to hand out") };
    assert_eq!(broker.fetch("events", 0, 0, &mut none), Ok(Fetched { next_offset: 0, end_offset: 0 }));
    broker.produce("events", Placement::Partition(0), None, &[b"a"], 0).unwrap();
    assert_eq!(broker.fetch("events", 0, 1, &mut none), Ok(Fetched { next_offset: 1, end_offset: 1 }));
    assert_eq!(broker.fetch("events", 0, 2, &mut none), Err(ErrorCode::OffsetOutOfRange));
    assert_eq!(broker.fetch("events", 0, u64::MAX, &mut none), Err(ErrorCode::OffsetOutOfRange));
}

#[test]
fn unknown_topics_and_partitions_are_errors_everywhere() {
    let config = one_topic();
    let mut region = region_for(&config);
    let (mut broker, _) = open(&config, &mut region);
    let mut sink = |_: FetchedRecord<'_>| true;
    assert_eq!(
        broker.produce("nope", Placement::Partition(0), None, &[b"a"], 0),
        Err(ErrorCode::UnknownTopic)
    );
    assert_eq!(
        broker.produce("events", Placement::Partition(3), None, &[b"a"], 0),
        Err(ErrorCode::UnknownPartition)
    );
    assert_eq!(
        broker.produce("events", Placement::Partition(u32::MAX), None, &[b"a"], 0),
        Err(ErrorCode::UnknownPartition)
    );
    assert_eq!(broker.fetch("nope", 0, 0, &mut sink), Err(ErrorCode::UnknownTopic));
    assert_eq!(broker.fetch("events", 3, 0, &mut sink), Err(ErrorCode::UnknownPartition));
    assert_eq!(broker.offsets("nope", 0), Err(ErrorCode::UnknownTopic));
    assert_eq!(broker.offsets("events", 3), Err(ErrorCode::UnknownPartition));
    assert_eq!(broker.commit("g", "nope", 0, 1), Err(ErrorCode::UnknownTopic));
    assert_eq!(broker.commit("g", "events", 3, 1), Err(ErrorCode::UnknownPartition));
    assert_eq!(broker.committed("g", "nope", 0), Err(ErrorCode::UnknownTopic));
    assert_eq!(broker.committed("g", "events", 3), Err(ErrorCode::UnknownPartition));
    assert_eq!(broker.topic_count(), 1);
    assert_eq!(broker.topic(0), Some(TopicSummary { name: "events", partitions: 3 }));
    assert_eq!(broker.topic(1), None);
}

#[test]
fn an_empty_batch_is_a_bad_request() {
    let config = one_topic();
    let mut region = region_for(&config);
    let (mut broker, _) = open(&config, &mut region);
    assert_eq!(broker.produce("events", Placement::Partition(0), None, &[], 0), Err(ErrorCode::BadRequest));
    // An empty record inside a batch is fine.
    assert!(broker.produce("events", Placement::Partition(0), None, &[b""], 0).is_ok());
}

#[test]
fn keys_place_records_by_fnv1a_modulo_partitions() {
    assert_eq!(fnv1a_32(b""), 0x811c_9dc5);
    assert_eq!(fnv1a_32(b"a"), 0xe40c_292c);
    assert_eq!(fnv1a_32(b"foobar"), 0xbf9c_f968);
    assert_eq!(partition_for_key(b"a", 3), 0xe40c_292c % 3);

    let config = one_topic();
    let mut region = region_for(&config);
    let (mut broker, _) = open(&config, &mut region);
    let mut used = [false; 3];
    for i in 0..30u32 {
        let key = i.to_le_bytes();
        let a = broker.produce("events", Placement::Key(&key), None, &[b"v"], 0).unwrap();
        let b = broker.produce("events", Placement::Key(&key), None, &[b"v"], 0).unwrap();
        assert_eq!(a.partition, partition_for_key(&key, 3));
        assert_eq!(a.partition, b.partition, "the same key lands in the same partition");
        used[a.partition as usize] = true;
    }
    assert_eq!(used, [true; 3], "keys spread over the partitions");
}

#[test]
fn batches_larger_than_a_segment_or_max_batch_bytes_are_too_large() {
    let mut config = one_topic(); // segments of 1024: batches up to 992 bytes
    let mut region = region_for(&config);
    let (mut broker, _) = open(&config, &mut region);
    assert_eq!(broker.batch_limit("events"), Ok(1024 - SEGMENT_HEADER_BYTES));
    let limit = 1024 - SEGMENT_HEADER_BYTES - BATCH_HEADER_BYTES - RECORD_OVERHEAD_BYTES;
    let biggest = vec![7u8; limit];
    assert_eq!(batch_bytes(&[&biggest]), Some(1024 - SEGMENT_HEADER_BYTES));
    let too_big = vec![7u8; limit + 1];
    assert_eq!(
        broker.produce("events", Placement::Partition(0), None, &[&too_big], 0),
        Err(ErrorCode::RecordTooLarge)
    );
    assert_eq!(
        broker.produce("events", Placement::Partition(0), None, &[&biggest], 0).unwrap().base_offset,
        0
    );
    assert_eq!(
        broker.produce("events", Placement::Partition(0), None, &[&biggest], 0).unwrap().base_offset,
        1
    );
    assert_eq!(broker.offsets("events", 0), Ok((0, 2)));
    drop(broker);

    config.max_batch_bytes = 100;
    let mut region = region_for(&config);
    let (mut broker, _) = open(&config, &mut region);
    assert_eq!(broker.batch_limit("events"), Ok(100));
    assert!(broker.produce("events", Placement::Partition(0), None, &[&[0u8; 48]], 0).is_ok());
    assert_eq!(
        broker.produce("events", Placement::Partition(0), None, &[&[0u8; 49]], 0),
        Err(ErrorCode::RecordTooLarge)
    );
}

#[test]
fn fetch_finds_every_offset_through_the_sparse_index() {
    // One big segment holding many small batches: the index has many entries.
    let config = config(vec![topic("t", 1, 256 * 1024, 256 * 1024)]);
    let mut region = region_for(&config);
    let (mut broker, _) = open(&config, &mut region);
    let mut values = Vec::new();
    for i in 0..3000u32 {
        let value = alloc::format!("value-{i}-{}", "x".repeat((i % 37) as usize));
        let count = 1 + (i % 3) as usize;
        let batch: Vec<&[u8]> = (0..count).map(|_| value.as_bytes()).collect();
        broker.produce("t", Placement::Partition(0), None, &batch, u64::from(i)).unwrap();
        values.extend((0..count).map(|_| value.clone().into_bytes()));
    }
    let check = |broker: &Broker<'_>| {
        for offset in (0..values.len() as u64).step_by(7) {
            let mut first = None;
            broker
                .fetch("t", 0, offset, &mut |r| {
                    first = Some((r.offset, r.value.to_vec()));
                    false
                })
                .unwrap();
            assert_eq!(first, Some((offset, values[offset as usize].clone())));
        }
    };
    check(&broker);
    drop(broker);
    let (broker, recovery) = open(&config, &mut region);
    assert_eq!(recovery.records, values.len() as u64);
    check(&broker);
}

#[test]
fn the_broker_clock_never_goes_backwards() {
    let config = one_topic();
    let mut region = region_for(&config);
    let (mut broker, _) = open(&config, &mut region);
    broker.produce("events", Placement::Partition(0), None, &[b"a"], 500).unwrap();
    broker.produce("events", Placement::Partition(0), None, &[b"b"], 100).unwrap();
    let mut times = Vec::new();
    broker
        .fetch("events", 0, 0, &mut |r| {
            times.push(r.timestamp_ms);
            true
        })
        .unwrap();
    assert_eq!(times, vec![500, 500]);
    drop(broker);
    // Restarted with an earlier clock: the recovered batches' time is the floor.
    let (broker, _) = Broker::open(config, &mut region, 3).unwrap();
    assert_eq!(broker.clock_ms(), 500);
}

// ---------------------------------------------------------------- idempotent producers

fn producer(id: u64, sequence: u32) -> Option<Producer> {
    Some(Producer { id, sequence })
}

#[test]
fn a_retried_batch_is_acknowledged_with_its_original_offset_and_not_appended() {
    let config = one_topic();
    let mut region = region_for(&config);
    let (mut broker, _) = open(&config, &mut region);
    let p = Placement::Partition(0);
    broker.produce("events", p, None, &[b"other"], 0).unwrap();
    let first = broker.produce("events", p, producer(7, 0), &[b"a", b"b"], 0).unwrap();
    assert_eq!(first, Appended { partition: 0, base_offset: 1, duplicate: false });
    let retry = broker.produce("events", p, producer(7, 0), &[b"a", b"b"], 0).unwrap();
    assert_eq!(retry, Appended { partition: 0, base_offset: 1, duplicate: true });
    assert_eq!(broker.offsets("events", 0), Ok((0, 3)));
    let next = broker.produce("events", p, producer(7, 2), &[b"c"], 0).unwrap();
    assert_eq!(next.base_offset, 3);
    // A gap, and a retry of a batch older than the last one, are out of order.
    assert_eq!(broker.produce("events", p, producer(7, 5), &[b"x"], 0), Err(ErrorCode::OutOfOrderSequence));
    assert_eq!(
        broker.produce("events", p, producer(7, 0), &[b"a", b"b"], 0),
        Err(ErrorCode::OutOfOrderSequence)
    );
    // Sequences are per partition: another partition starts fresh.
    assert_eq!(
        broker.produce("events", Placement::Partition(1), producer(7, 40), &[b"y"], 0).unwrap().base_offset,
        0
    );
    assert_eq!(broker.offsets("events", 0), Ok((0, 4)));

    // Recovery rebuilds the table from the batch headers.
    drop(broker);
    let (mut broker, recovery) = open(&config, &mut region);
    assert_eq!(recovery.producers, 2);
    let retry = broker.produce("events", p, producer(7, 2), &[b"c"], 0).unwrap();
    assert_eq!(retry, Appended { partition: 0, base_offset: 3, duplicate: true });
    assert_eq!(broker.produce("events", p, producer(7, 4), &[b"z"], 0), Err(ErrorCode::OutOfOrderSequence));
    assert_eq!(broker.produce("events", p, producer(7, 3), &[b"d"], 0).unwrap().base_offset, 4);
}

#[test]
fn sequences_wrap_around() {
    let config = one_topic();
    let mut region = region_for(&config);
    let (mut broker, _) = open(&config, &mut region);
    let p = Placement::Partition(0);
    broker.produce("events", p, producer(1, u32::MAX - 1), &[b"a", b"b"], 0).unwrap();
    assert_eq!(broker.produce("events", p, producer(1, 0), &[b"c"], 0).unwrap().base_offset, 2);
}

#[test]
fn the_producer_table_evicts_the_least_recently_used_entry() {
    let mut config = one_topic();
    config.max_producers = 2;
    let mut region = region_for(&config);
    let (mut broker, _) = open(&config, &mut region);
    let p = Placement::Partition(0);
    broker.produce("events", p, producer(1, 0), &[b"a"], 1).unwrap();
    broker.produce("events", p, producer(2, 0), &[b"b"], 2).unwrap();
    broker.produce("events", p, producer(1, 1), &[b"c"], 3).unwrap(); // 1 used again
    broker.produce("events", p, producer(3, 0), &[b"d"], 4).unwrap(); // evicts 2
    assert_eq!(broker.producer_entries(), (2, 2));
    // Producer 2 was forgotten: its retry is appended as from a new producer.
    assert!(!broker.produce("events", p, producer(2, 0), &[b"b"], 5).unwrap().duplicate);
    // Producer 3 was evicted by it in turn? No: 1 (time 3) was older than 3 (time 4).
    assert!(broker.produce("events", p, producer(3, 0), &[b"d"], 6).unwrap().duplicate);
}

#[test]
fn without_a_producer_table_idempotent_batches_are_refused() {
    let mut config = one_topic();
    config.max_producers = 0;
    let mut region = region_for(&config);
    let (mut broker, _) = open(&config, &mut region);
    assert_eq!(
        broker.produce("events", Placement::Partition(0), producer(1, 0), &[b"a"], 0),
        Err(ErrorCode::ResourceExhausted)
    );
    assert!(broker.produce("events", Placement::Partition(0), None, &[b"a"], 0).is_ok());
}

// ---------------------------------------------------------------- consumer groups

#[test]
fn committed_offsets_are_kept_per_group_and_partition_and_survive_a_restart() {
    let config = one_topic();
    let mut region = region_for(&config);
    let (mut broker, _) = open(&config, &mut region);
    assert_eq!(broker.committed("g", "events", 0), Ok(None));
    broker.commit("g", "events", 0, 5).unwrap();
    broker.commit("g", "events", 1, 9).unwrap();
    broker.commit("h", "events", 0, 1).unwrap();
    for offset in 6..20 {
        broker.commit("g", "events", 0, offset).unwrap();
    }
    assert_eq!(broker.committed("g", "events", 0), Ok(Some(19)));
    assert_eq!(broker.committed("g", "events", 2), Ok(None));
    assert_eq!(broker.committed("unknown", "events", 0), Ok(None));
    drop(broker);
    let (broker, recovery) = open(&config, &mut region);
    assert_eq!((recovery.groups, recovery.committed_offsets), (2, 3));
    assert_eq!(broker.committed("g", "events", 0), Ok(Some(19)));
    assert_eq!(broker.committed("g", "events", 1), Ok(Some(9)));
    assert_eq!(broker.committed("h", "events", 0), Ok(Some(1)));
    assert_eq!(broker.group_count(), 2);
}

#[test]
fn group_names_are_checked_and_the_table_is_bounded() {
    let config = one_topic(); // 4 groups
    let mut region = region_for(&config);
    let (mut broker, _) = open(&config, &mut region);
    assert_eq!(broker.commit("", "events", 0, 1), Err(ErrorCode::BadRequest));
    let long = "g".repeat(MAX_GROUP_NAME_BYTES + 1);
    assert_eq!(broker.commit(&long, "events", 0, 1), Err(ErrorCode::BadRequest));
    assert!(broker.commit(&long[1..], "events", 0, 1).is_ok());
    for name in ["b", "c", "d"] {
        broker.commit(name, "events", 0, 1).unwrap();
    }
    assert_eq!(broker.commit("e", "events", 0, 1), Err(ErrorCode::ResourceExhausted));
    assert!(broker.commit("d", "events", 2, 1).is_ok(), "known groups still commit");
}

#[test]
fn a_damaged_commit_copy_falls_back_to_the_other() {
    let config = one_topic();
    let mut region = region_for(&config);
    let (mut broker, _) = open(&config, &mut region);
    broker.commit("g", "events", 0, 10).unwrap(); // copy 0, sequence 1
    broker.commit("g", "events", 0, 11).unwrap(); // copy 1, sequence 2
    drop(broker);
    // Group slot 0 at 64; its partition 0 copy 1 at 64 + 72 + 24.
    region[64 + 72 + 24 + 9] ^= 1;
    let (broker, _) = open(&config, &mut region);
    assert_eq!(broker.committed("g", "events", 0), Ok(Some(10)));
}

// ---------------------------------------------------------------- retention and roll

/// A topic of segments holding exactly `per_segment` batches of one 100-byte record each.
fn small_segments(retention_bytes: u64, retention_ms: Option<u64>) -> BrokerConfig {
    let batch = BATCH_HEADER_BYTES + RECORD_OVERHEAD_BYTES + 100; // 152
    let segment = (SEGMENT_HEADER_BYTES + 2 * batch) as u32; // 2 batches per segment
    let mut t = topic("t", 1, segment, retention_bytes);
    t.retention_ms = retention_ms;
    config(vec![t])
}

fn produce_n(broker: &mut Broker<'_>, n: u64, now_ms: u64) {
    for _ in 0..n {
        broker.produce("t", Placement::Partition(0), None, &[&[1u8; 100]], now_ms).unwrap();
    }
}

#[test]
fn a_full_arena_rolls_by_dropping_its_oldest_segment() {
    let config = small_segments(2 * 304, None); // 3 segments
    let mut region = region_for(&config);
    let (mut broker, _) = open(&config, &mut region);
    produce_n(&mut broker, 6, 0); // segments [0,2) [2,4) [4,6)
    assert_eq!(broker.offsets("t", 0), Ok((0, 6)));
    produce_n(&mut broker, 1, 0); // rolls into the oldest slot
    assert_eq!(broker.offsets("t", 0), Ok((2, 7)));
    let records = all_records(&broker, "t", 0);
    assert_eq!(records.iter().map(|r| r.0).collect::<Vec<_>>(), vec![2, 3, 4, 5, 6]);
    let mut sink = |_: FetchedRecord<'_>| true;
    assert_eq!(broker.fetch("t", 0, 1, &mut sink), Err(ErrorCode::OffsetOutOfRange));
    drop(broker);
    // The dropped segment stays dropped and offsets continue after a restart.
    let (mut broker, recovery) = open(&config, &mut region);
    assert_eq!(recovery.records, 5);
    assert_eq!(broker.offsets("t", 0), Ok((2, 7)));
    assert_eq!(broker.produce("t", Placement::Partition(0), None, &[b"n"], 0).unwrap().base_offset, 7);
}

#[test]
fn size_retention_drops_whole_oldest_segments_but_never_the_newest() {
    let config = small_segments(337, None); // 3 segments of 336 bytes; keep at most 337 batch bytes
    let mut region = region_for(&config);
    let (mut broker, _) = open(&config, &mut region);
    produce_n(&mut broker, 5, 0); // [0,2) [2,4) [4,5): 760 bytes
    assert_eq!(broker.enforce_retention(0), 2); // 760 → 456 → 152
    assert_eq!(broker.offsets("t", 0), Ok((4, 5)));
    assert_eq!(broker.enforce_retention(0), 0);
    produce_n(&mut broker, 3, 0); // [4,6) [6,8): 608 bytes
    assert_eq!(broker.enforce_retention(0), 1, "the newest segment stays even above the limit");
    assert_eq!(broker.offsets("t", 0), Ok((6, 8)));
    drop(broker);
    let (broker, _) = open(&config, &mut region);
    assert_eq!(broker.offsets("t", 0), Ok((6, 8)));
    assert_eq!(all_records(&broker, "t", 0).len(), 2);
}

#[test]
fn age_retention_drops_segments_whose_newest_batch_is_too_old() {
    let config = small_segments(10_000, Some(1000));
    let mut region = region_for(&config);
    let (mut broker, _) = open(&config, &mut region);
    produce_n(&mut broker, 2, 100); // [0,2) newest at 100
    produce_n(&mut broker, 2, 600); // [2,4) newest at 600
    produce_n(&mut broker, 1, 700); // [4,5)
    assert_eq!(broker.enforce_retention(1100), 0, "exactly the limit is not older");
    assert_eq!(broker.enforce_retention(1101), 1);
    assert_eq!(broker.offsets("t", 0), Ok((2, 5)));
    assert_eq!(broker.enforce_retention(50_000), 1, "the newest segment is never dropped");
    assert_eq!(broker.offsets("t", 0), Ok((4, 5)));
    assert_eq!(broker.produce("t", Placement::Partition(0), None, &[b"n"], 50_000).unwrap().base_offset, 5);
}

// ---------------------------------------------------------------- recovery

#[test]
fn a_torn_tail_batch_is_dropped_and_the_log_continues_after_the_last_whole_one() {
    let config = one_topic();
    let mut region = region_for(&config);
    let (mut broker, _) = open(&config, &mut region);
    broker.produce("events", Placement::Partition(0), None, &[b"first"], 0).unwrap();
    broker.produce("events", Placement::Partition(0), None, &[b"second", b"third"], 0).unwrap();
    drop(broker);
    // Partition 0's first segment starts after the header and 4 group slots.
    let segment = 64 + 4 * (72 + 3 * 48);
    let second_batch = segment + SEGMENT_HEADER_BYTES + batch_bytes(&[b"first"]).unwrap();
    region[second_batch + BATCH_HEADER_BYTES + 6] ^= 0x55; // a byte of "second"
    let (mut broker, recovery) = open(&config, &mut region);
    assert_eq!((recovery.batches, recovery.records), (1, 1));
    assert_eq!(recovery.bytes_dropped, batch_bytes(&[b"second", b"third"]).unwrap() as u64);
    assert_eq!(all_records(&broker, "events", 0), vec![(0, b"first".to_vec())]);
    assert_eq!(
        broker.produce("events", Placement::Partition(0), None, &[b"again"], 0).unwrap().base_offset,
        1
    );
    drop(broker);
    let (broker, _) = open(&config, &mut region);
    assert_eq!(all_records(&broker, "events", 0), vec![(0, b"first".to_vec()), (1, b"again".to_vec())]);
}

#[test]
fn a_damaged_middle_segment_drops_it_and_everything_older() {
    let config = small_segments(10_000, None);
    let mut region = region_for(&config);
    let (mut broker, _) = open(&config, &mut region);
    produce_n(&mut broker, 6, 0); // slots 0 [0,2), 1 [2,4), 2 [4,6)
    drop(broker);
    let layout_start = 64 + 4 * (72 + 48);
    let segment_bytes = SEGMENT_HEADER_BYTES + 2 * 152;
    region[layout_start + segment_bytes + 10] ^= 1; // slot 1's header
    let (broker, recovery) = open(&config, &mut region);
    assert_eq!(broker.offsets("t", 0), Ok((4, 6)));
    assert_eq!((recovery.segments, recovery.segments_dropped), (1, 1));
}
