//! Writes cut at every byte: for one operation, the bytes it changed in the region are
//! applied only up to each possible cut (in address order, and in reverse order), then
//! the broker is recovered from that region. Recovery must yield the state before the
//! operation or the state after it (never a partial batch, never a panic), and the log
//! must go on accepting appends with the right offsets.

use alloc::vec;
use alloc::vec::Vec;

use super::super::*;
use super::support::*;

/// One partition's records.
type Records = Vec<(u64, Vec<u8>)>;
/// Every partition's records, in topic then partition order.
type Snapshot = Vec<Records>;

fn snapshot(broker: &Broker<'_>) -> Snapshot {
    let mut all = Vec::new();
    for t in 0..broker.topic_count() {
        let summary = broker.topic(t).unwrap();
        for p in 0..summary.partitions {
            all.push(all_records(broker, summary.name, p));
        }
    }
    all
}

/// The region after `operation`, and the records before and after it. `before` is
/// reopened once first so any write recovery itself makes is part of the baseline.
fn run_operation(
    config: &BrokerConfig,
    before: &mut [u8],
    operation: &dyn Fn(&mut Broker<'_>),
) -> (Vec<u8>, Snapshot, Snapshot) {
    let (broker, _) = open(config, before);
    let old = snapshot(&broker);
    drop(broker);
    let mut after = before.to_vec();
    let (mut broker, _) = open(config, &mut after);
    operation(&mut broker);
    let new = snapshot(&broker);
    drop(broker);
    (after, old, new)
}

/// The regions an interrupted write can leave: the changed bytes applied up to every cut,
/// in address order and in reverse address order.
fn cuts(before: &[u8], after: &[u8]) -> Vec<Vec<u8>> {
    let changed: Vec<usize> = (0..before.len()).filter(|&i| before[i] != after[i]).collect();
    assert!(!changed.is_empty(), "the operation changed nothing");
    let mut regions = Vec::new();
    for reverse in [false, true] {
        for cut in 0..=changed.len() {
            let mut region = before.to_vec();
            let applied: Vec<usize> = if reverse {
                changed.iter().rev().take(cut).copied().collect()
            } else {
                changed[..cut].to_vec()
            };
            for i in applied {
                region[i] = after[i];
            }
            regions.push(region);
        }
    }
    regions
}

/// Checks every cut of an append to `topic`/`partition`; returns how many cuts were tried.
fn every_cut_of_an_append(
    config: &BrokerConfig,
    mut before: Vec<u8>,
    topic: &str,
    partition: u32,
    append: &dyn Fn(&mut Broker<'_>),
) -> usize {
    let (after, old, new) = run_operation(config, &mut before, append);
    assert_ne!(old, new);
    let regions = cuts(&before, &after);
    for mut region in regions.iter().cloned() {
        let (mut broker, recovery) = open(config, &mut region);
        assert_eq!(recovery.formatted, None);
        let found = snapshot(&broker);
        // A roll that reuses the oldest segment drops it first: cut between that drop and
        // the batch, the log has lost the segment (as retention would have) and not yet
        // gained the batch. Nothing else is allowed.
        let rolled_over = |(old, new): (&Records, &Records)| {
            let new_start = new.first().map_or(u64::MAX, |r| r.0);
            old.iter().filter(|r| r.0 >= new_start).cloned().collect::<Vec<_>>()
        };
        let dropped_only: Snapshot = old.iter().zip(&new).map(rolled_over).collect();
        assert!(found == old || found == new || found == dropped_only, "a partial state: {found:?}");
        // The log goes on: the next batch gets the end offset, and survives a restart.
        let (_, end) = broker.offsets(topic, partition).unwrap();
        let appended = broker.produce(topic, Placement::Partition(partition), None, &[b"next"], 0).unwrap();
        assert_eq!(appended.base_offset, end);
        drop(broker);
        let (broker, _) = open(config, &mut region);
        let records = snapshot(&broker);
        let index = (0..broker.topic_count())
            .take_while(|&t| broker.topic(t).unwrap().name != topic)
            .map(|t| broker.topic(t).unwrap().partitions as usize)
            .sum::<usize>()
            + partition as usize;
        assert_eq!(records[index].last(), Some(&(end, b"next".to_vec())));
    }
    regions.len()
}

fn produce(broker: &mut Broker<'_>, topic: &str, partition: u32, values: &[&[u8]]) {
    broker.produce(topic, Placement::Partition(partition), None, values, 0).unwrap();
}

/// A blank region with `setup` applied.
fn prepared(config: &BrokerConfig, setup: &dyn Fn(&mut Broker<'_>)) -> Vec<u8> {
    let mut region = region_for(config);
    let (mut broker, _) = open(config, &mut region);
    setup(&mut broker);
    drop(broker);
    region
}

fn two_partitions() -> BrokerConfig {
    config(vec![topic("t", 2, 512, 1024)])
}

#[test]
fn the_first_batch_of_a_partition_is_whole_or_absent() {
    let config = two_partitions();
    let region = prepared(&config, &|b| produce(b, "t", 1, &[b"other partition"]));
    let tried = every_cut_of_an_append(&config, region, "t", 0, &|b| produce(b, "t", 0, &[b"one", b"two"]));
    assert!(tried > 40, "{tried}");
}

#[test]
fn a_batch_in_the_middle_of_a_segment_is_whole_or_absent() {
    let config = two_partitions();
    let region = prepared(&config, &|b| {
        produce(b, "t", 0, &[b"a", b"bb"]);
        produce(b, "t", 0, &[b"ccc"]);
    });
    every_cut_of_an_append(&config, region, "t", 0, &|b| produce(b, "t", 0, &[b"dddd", b"", b"eeeee"]));
}

#[test]
fn a_batch_that_rolls_into_a_free_segment_is_whole_or_absent() {
    let config = two_partitions();
    let region = prepared(&config, &|b| produce(b, "t", 0, &[&[1u8; 400]]));
    every_cut_of_an_append(&config, region, "t", 0, &|b| produce(b, "t", 0, &[&[2u8; 100]]));
}

#[test]
fn a_batch_that_reuses_the_oldest_segment_is_whole_or_absent_even_over_aligned_stale_batches() {
    // Segments of exactly two equal batches, two slots: every roll reuses a slot whose
    // stale batches sit exactly where the new ones go.
    let batch = BATCH_HEADER_BYTES + RECORD_OVERHEAD_BYTES + 60;
    let config = config(vec![topic("t", 1, (SEGMENT_HEADER_BYTES + 2 * batch) as u32, 0)]);
    let region = prepared(&config, &|b| {
        for i in 0..9u8 {
            produce(b, "t", 0, &[&[i; 60]]);
        }
    });
    // Now slots hold [6,8) and [8,9): the next batch fills the second slot, the one after
    // rolls over [6,8)'s slot.
    every_cut_of_an_append(&config, region.clone(), "t", 0, &|b| produce(b, "t", 0, &[&[9u8; 60]]));
    let config2 = config.clone();
    let region = {
        let mut region = region;
        let (mut broker, _) = open(&config2, &mut region);
        produce(&mut broker, "t", 0, &[&[9u8; 60]]);
        drop(broker);
        region
    };
    every_cut_of_an_append(&config, region, "t", 0, &|b| produce(b, "t", 0, &[&[10u8; 60]]));
}

#[test]
fn an_append_over_an_earlier_torn_tail_is_whole_or_absent() {
    let config = two_partitions();
    let base = prepared(&config, &|b| produce(b, "t", 0, &[b"kept"]));
    // Leave half of a large batch in the region, as a crash would.
    let (after, _, _) = run_operation(&config, &mut base.clone(), &|b| produce(b, "t", 0, &[&[0xab; 200]]));
    let changed: Vec<usize> = (0..base.len()).filter(|&i| base[i] != after[i]).collect();
    let mut torn = base.clone();
    for &i in &changed[..changed.len() / 2] {
        torn[i] = after[i];
    }
    let (broker, recovery) = open(&config, &mut torn);
    assert!(recovery.bytes_dropped > 0);
    assert_eq!(all_records(&broker, "t", 0), vec![(0, b"kept".to_vec())]);
    drop(broker);
    every_cut_of_an_append(&config, torn, "t", 0, &|b| produce(b, "t", 0, &[b"short"]));
}

#[test]
fn an_idempotent_batch_is_appended_exactly_once_whatever_the_cut() {
    let config = two_partitions();
    let producer = Some(Producer { id: 42, sequence: 0 });
    let before = prepared(&config, &|b| {
        b.produce("t", Placement::Partition(0), producer, &[b"first"], 0).unwrap();
    });
    let next = Some(Producer { id: 42, sequence: 1 });
    let send = |b: &mut Broker<'_>| b.produce("t", Placement::Partition(0), next, &[b"second", b"third"], 0);
    let (after, _, _) = run_operation(&config, &mut before.clone(), &|b| {
        send(b).unwrap();
    });
    for mut region in cuts(&before, &after) {
        let (mut broker, _) = open(&config, &mut region);
        let survived = broker.offsets("t", 0).unwrap().1 == 3;
        // The producer did not get its acknowledgement: it retries.
        let retry = send(&mut broker).unwrap();
        assert_eq!(retry, Appended { partition: 0, base_offset: 1, duplicate: survived });
        let values: Vec<Vec<u8>> = all_records(&broker, "t", 0).into_iter().map(|r| r.1).collect();
        assert_eq!(values, vec![b"first".to_vec(), b"second".to_vec(), b"third".to_vec()]);
    }
}

/// Checks every cut of a commit of `offset` for group `group` (partition 0 of "t").
fn every_cut_of_a_commit(config: &BrokerConfig, mut before: Vec<u8>, group: &str, offset: u64) -> usize {
    let (broker, _) = open(config, &mut before);
    let old = broker.committed(group, "t", 0).unwrap();
    drop(broker);
    let (after, _, _) = run_operation(config, &mut before, &|b| b.commit(group, "t", 0, offset).unwrap());
    let regions = cuts(&before, &after);
    for mut region in regions.iter().cloned() {
        let (mut broker, _) = open(config, &mut region);
        let found = broker.committed(group, "t", 0).unwrap();
        assert!(found == old || found == Some(offset), "{found:?} is neither {old:?} nor {offset}");
        assert_eq!(broker.committed("other", "t", 1).unwrap(), Some(77), "other groups are untouched");
        broker.commit(group, "t", 0, 1000).unwrap();
        drop(broker);
        let (broker, _) = open(config, &mut region);
        assert_eq!(broker.committed(group, "t", 0).unwrap(), Some(1000));
    }
    regions.len()
}

#[test]
fn a_commit_is_whole_or_absent_first_and_later_ones() {
    let config = two_partitions();
    let before = prepared(&config, &|b| b.commit("other", "t", 1, 77).unwrap());
    // The group's first commit (registers its name) ...
    every_cut_of_a_commit(&config, before.clone(), "readers", 5);
    // ... its second (copy 1) and third (copy 0 again).
    let mut region = before;
    let (mut broker, _) = open(&config, &mut region);
    broker.commit("readers", "t", 0, 5).unwrap();
    drop(broker);
    every_cut_of_a_commit(&config, region.clone(), "readers", 6);
    let (mut broker, _) = open(&config, &mut region);
    broker.commit("readers", "t", 0, 6).unwrap();
    drop(broker);
    let tried = every_cut_of_a_commit(&config, region, "readers", 7);
    assert!(tried >= 2 * 3, "a commit changes at least the sequence, the offset and the CRC");
}

#[test]
fn a_retention_drop_cut_short_keeps_whole_segments_from_the_end() {
    let mut t = topic("t", 1, 300, 1200);
    t.retention_ms = Some(0);
    let config = config(vec![t]);
    let mut before = prepared(&config, &|b| {
        for i in 0..12u8 {
            produce(b, "t", 0, &[&[i; 60]]);
        }
    });
    let (after, old, new) = run_operation(&config, &mut before, &|b| {
        b.enforce_retention(u64::MAX);
    });
    assert!(new[0].len() < old[0].len());
    for mut region in cuts(&before, &after) {
        let (broker, _) = open(&config, &mut region);
        let found = snapshot(&broker);
        assert!(old[0].ends_with(&found[0]) && found[0].len() >= new[0].len(), "{found:?}");
    }
}

#[test]
fn a_record_value_that_holds_a_valid_batch_never_becomes_one() {
    // A hostile producer hides a well-formed batch inside a record value. That batch is
    // torn (its CRC damaged, as a crash would leave it) and dropped; the next, shorter
    // batch ends exactly where the hidden batch starts, with the offset it claims. The
    // end marker written before each batch keeps the scan from ever reading it.
    use super::super::batch::{self, BatchHeader};
    let config = two_partitions();
    let filler = 10;
    let hidden_values: [&[u8]; 1] = [b"phantom"];
    let hidden_len = batch_bytes(&hidden_values).unwrap();
    let mut hidden = vec![0u8; hidden_len];
    let header =
        BatchHeader { length: hidden_len, base_offset: 1, timestamp_ms: 0, producer: None, record_count: 1 };
    batch::write(&mut hidden, &header, &hidden_values).unwrap();
    let mut value = vec![0x11u8; filler];
    value.extend_from_slice(&hidden);

    let mut region = prepared(&config, &|b| produce(b, "t", 0, &[&value]));
    let partition_0 = REGION_HEADER_BYTES + 4 * (72 + 2 * 48);
    let carrier = partition_0 + SEGMENT_HEADER_BYTES;
    region[carrier + 4] ^= 0xff; // the carrier batch's CRC
    let (mut broker, recovery) = open(&config, &mut region);
    assert_eq!(recovery.batches, 0);
    produce(&mut broker, "t", 0, &[&[0x22u8; 10]]);
    drop(broker);
    let (broker, _) = open(&config, &mut region);
    assert_eq!(all_records(&broker, "t", 0), vec![(0, vec![0x22u8; 10])]);
    assert_eq!(broker.offsets("t", 0), Ok((0, 1)));
}
