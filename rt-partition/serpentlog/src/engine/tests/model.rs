//! Random operation sequences (produce, idempotent retries and gaps, fetch, commit,
//! retention, restart) against a simple Vec-based model of the same rules.

use alloc::collections::{BTreeMap, VecDeque};
use alloc::vec;
use alloc::vec::Vec;

use proptest::prelude::*;

use super::super::*;
use super::support::*;
use crate::ErrorCode;

const PARTITIONS: u32 = 2;
const SEGMENT_BYTES: u32 = 400;
const RETENTION_BYTES: u64 = 900; // ⌈900/400⌉+1 = 4 segments per partition
const RETENTION_MS: u64 = 400;
const GROUPS: [&str; 3] = ["alpha", "beta", "gamma"];

fn model_config() -> BrokerConfig {
    let mut t = topic("t", PARTITIONS, SEGMENT_BYTES, RETENTION_BYTES);
    t.retention_ms = Some(RETENTION_MS);
    BrokerConfig { topics: vec![t], max_batch_bytes: 1024, max_groups: 2, max_producers: 16 }
}

#[derive(Clone, Debug)]
enum ProducerMove {
    /// Continue the producer's sequence.
    Next,
    /// Resend the producer's last batch.
    Retry,
    /// Skip `1..` sequence numbers.
    Gap(u32),
    /// The last batch's first sequence with other records (a duplicate only if as many).
    SameSequence,
}

#[derive(Clone, Debug)]
enum Op {
    Produce { partition: u32, values: Vec<Vec<u8>>, producer: Option<(u64, ProducerMove)> },
    Fetch { partition: u32, from: u64, limit: usize },
    Commit { group: usize, partition: u32, offset: u64 },
    Retention,
    Tick(u64),
    Restart,
}

fn op() -> impl Strategy<Value = Op> {
    let values = prop::collection::vec(prop::collection::vec(any::<u8>(), 0..90), 1..4);
    let producer_move = prop_oneof![4 => Just(ProducerMove::Next), 2 => Just(ProducerMove::Retry), 1 => (1u32..3).prop_map(ProducerMove::Gap), 1 => Just(ProducerMove::SameSequence)];
    let producer = prop::option::weighted(0.5, (0u64..3, producer_move));
    prop_oneof![
        8 => (0..PARTITIONS, values, producer).prop_map(|(partition, values, producer)| Op::Produce { partition, values, producer }),
        3 => (0..PARTITIONS + 1, any::<u64>(), 1usize..20).prop_map(|(partition, from, limit)| Op::Fetch { partition, from, limit }),
        2 => (0..GROUPS.len(), 0..PARTITIONS, 0u64..100).prop_map(|(group, partition, offset)| Op::Commit { group, partition, offset }),
        1 => Just(Op::Retention),
        2 => (0u64..200).prop_map(Op::Tick),
        1 => Just(Op::Restart),
    ]
}

#[derive(Clone, Debug)]
struct ModelBatch {
    base: u64,
    values: Vec<Vec<u8>>,
    timestamp: u64,
    producer: Option<Producer>,
}

impl ModelBatch {
    fn bytes(&self) -> usize {
        let refs: Vec<&[u8]> = self.values.iter().map(|v| v.as_slice()).collect();
        batch_bytes(&refs).unwrap()
    }
}

#[derive(Clone, Debug, Default)]
struct ModelSegment {
    batches: Vec<ModelBatch>,
    used: usize,
    newest: u64,
}

#[derive(Clone, Debug, Default)]
struct ModelPartition {
    segments: VecDeque<ModelSegment>,
    end: u64,
}

impl ModelPartition {
    fn start(&self) -> u64 {
        self.segments.front().map_or(self.end, |s| s.batches.first().map_or(self.end, |b| b.base))
    }

    fn records(&self) -> Vec<(u64, Vec<u8>)> {
        let batches = self.segments.iter().flat_map(|s| &s.batches);
        batches.flat_map(|b| (b.base..).zip(b.values.iter().cloned())).collect()
    }
}

#[derive(Default)]
struct Model {
    partitions: Vec<ModelPartition>,
    /// (producer id, partition) → (first sequence, records, base offset) of the last batch.
    producers: BTreeMap<(u64, u32), (u32, u32, u64)>,
    /// Each producer's last batch values (to resend on a retry).
    last_values: BTreeMap<(u64, u32), Vec<Vec<u8>>>,
    commits: BTreeMap<(usize, u32), u64>,
    clock: u64,
    now: u64,
}

impl Model {
    fn append(&mut self, partition: u32, values: Vec<Vec<u8>>, producer: Option<Producer>) -> u64 {
        let now = self.clock;
        let p = &mut self.partitions[partition as usize];
        let batch = ModelBatch { base: p.end, values, timestamp: now, producer };
        let len = batch.bytes();
        let segments_per_partition = model_config().topics[0].segments_per_partition() as usize;
        let fits =
            p.segments.back().is_some_and(|s| SEGMENT_HEADER_BYTES + s.used + len <= SEGMENT_BYTES as usize);
        if !fits {
            if p.segments.len() == segments_per_partition {
                p.segments.pop_front();
            }
            p.segments.push_back(ModelSegment { newest: now, ..Default::default() });
        }
        let s = p.segments.back_mut().unwrap();
        s.used += len;
        s.newest = s.newest.max(now);
        p.end += batch.values.len() as u64;
        let base = batch.base;
        s.batches.push(batch);
        base
    }

    fn retention(&mut self) -> usize {
        let mut dropped = 0;
        for p in &mut self.partitions {
            let mut kept: u64 = p.segments.iter().map(|s| s.used as u64).sum();
            while p.segments.len() > 1 {
                let oldest = p.segments.front().unwrap();
                if kept <= RETENTION_BYTES && self.clock.saturating_sub(oldest.newest) <= RETENTION_MS {
                    break;
                }
                kept -= oldest.used as u64;
                p.segments.pop_front();
                dropped += 1;
            }
        }
        dropped
    }

    /// What recovery rebuilds: the last batch of each (producer, partition) still kept.
    fn rebuild_producers(&mut self) {
        self.producers.clear();
        for (index, p) in self.partitions.iter().enumerate() {
            for b in p.segments.iter().flat_map(|s| &s.batches) {
                if let Some(producer) = b.producer {
                    let key = (producer.id, index as u32);
                    self.producers.insert(key, (producer.sequence, b.values.len() as u32, b.base));
                }
            }
        }
    }
}

fn check_partitions(broker: &Broker<'_>, model: &Model) -> Result<(), TestCaseError> {
    for partition in 0..PARTITIONS {
        let expected = &model.partitions[partition as usize];
        prop_assert_eq!(broker.offsets("t", partition), Ok((expected.start(), expected.end)));
        prop_assert_eq!(all_records(broker, "t", partition), expected.records());
        let mut times = Vec::new();
        broker
            .fetch("t", partition, expected.start(), &mut |r| {
                times.push(r.timestamp_ms);
                true
            })
            .unwrap();
        let expected_times: Vec<u64> = expected
            .segments
            .iter()
            .flat_map(|s| &s.batches)
            .flat_map(|b| b.values.iter().map(|_| b.timestamp))
            .collect();
        prop_assert_eq!(times, expected_times);
    }
    Ok(())
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let config = model_config();
    let mut region = region_for(&config);
    let mut model =
        Model { partitions: vec![ModelPartition::default(); PARTITIONS as usize], ..Default::default() };
    let mut ops = ops.into_iter().peekable();
    let mut first_open = true;
    while first_open || ops.peek().is_some() {
        let (mut broker, recovery) = Broker::open(config.clone(), &mut region, model.now).unwrap();
        prop_assert_eq!(recovery.formatted.is_some(), first_open);
        first_open = false;
        model.clock = model.clock.max(model.now);
        model.rebuild_producers();
        check_partitions(&broker, &model)?;
        for ((group, partition), offset) in &model.commits {
            prop_assert_eq!(broker.committed(GROUPS[*group], "t", *partition), Ok(Some(*offset)));
        }
        for op in ops.by_ref() {
            match op {
                Op::Restart => break,
                Op::Tick(ms) => model.now += ms,
                Op::Retention => {
                    model.clock = model.clock.max(model.now);
                    let expected = model.retention();
                    prop_assert_eq!(broker.enforce_retention(model.now), expected);
                }
                Op::Commit { group, partition, offset } => {
                    let known: usize = {
                        let mut groups: Vec<usize> = model.commits.keys().map(|k| k.0).collect();
                        groups.dedup();
                        groups.len()
                    };
                    let registered = model.commits.keys().any(|k| k.0 == group);
                    let result = broker.commit(GROUPS[group], "t", partition, offset);
                    if registered || known < 2 {
                        prop_assert_eq!(result, Ok(()));
                        model.commits.insert((group, partition), offset);
                    } else {
                        prop_assert_eq!(result, Err(ErrorCode::ResourceExhausted));
                    }
                }
                Op::Fetch { partition, from, limit } => {
                    let mut got = Vec::new();
                    let result = broker.fetch("t", partition, from, &mut |r| {
                        if got.len() == limit {
                            return false;
                        }
                        got.push((r.offset, r.value.to_vec()));
                        true
                    });
                    let Some(expected) = model.partitions.get(partition as usize) else {
                        prop_assert_eq!(result, Err(ErrorCode::UnknownPartition));
                        continue;
                    };
                    if from < expected.start() || from > expected.end {
                        prop_assert_eq!(result, Err(ErrorCode::OffsetOutOfRange));
                        continue;
                    }
                    let wanted: Vec<_> =
                        expected.records().into_iter().filter(|r| r.0 >= from).take(limit).collect();
                    let next = wanted.last().map_or(from, |r| r.0 + 1);
                    prop_assert_eq!(result, Ok(Fetched { next_offset: next, end_offset: expected.end }));
                    prop_assert_eq!(got, wanted);
                }
                Op::Produce { partition, values, producer } => {
                    model.clock = model.clock.max(model.now);
                    let (producer, values, expect) = match producer {
                        None => (None, values, Expect::Append),
                        Some((id, step)) => {
                            let key = (id, partition);
                            let last = model.producers.get(&key).copied();
                            let (sequence, values) = match (step, last) {
                                (ProducerMove::Retry, Some(_)) if model.last_values.contains_key(&key) => {
                                    (last.unwrap().0, model.last_values[&key].clone())
                                }
                                (ProducerMove::SameSequence, Some((s, _, _))) => (s, values),
                                (ProducerMove::Gap(g), Some((s, n, _))) => {
                                    (s.wrapping_add(n).wrapping_add(g), values)
                                }
                                (_, Some((s, n, _))) => (s.wrapping_add(n), values),
                                (_, None) => (id as u32 * 1000, values),
                            };
                            let expect = match last {
                                Some((s, n, base)) if s == sequence && n as usize == values.len() => {
                                    Expect::Duplicate(base)
                                }
                                Some((s, n, _)) if s.wrapping_add(n) != sequence => Expect::OutOfOrder,
                                _ => Expect::Append,
                            };
                            (Some(Producer { id, sequence }), values, expect)
                        }
                    };
                    let refs: Vec<&[u8]> = values.iter().map(|v| v.as_slice()).collect();
                    let result =
                        broker.produce("t", Placement::Partition(partition), producer, &refs, model.now);
                    match expect {
                        Expect::Append => {
                            let base = model.append(partition, values.clone(), producer);
                            prop_assert_eq!(
                                result,
                                Ok(Appended { partition, base_offset: base, duplicate: false })
                            );
                            if let Some(p) = producer {
                                model
                                    .producers
                                    .insert((p.id, partition), (p.sequence, values.len() as u32, base));
                                model.last_values.insert((p.id, partition), values);
                            }
                        }
                        Expect::Duplicate(base) => {
                            prop_assert_eq!(
                                result,
                                Ok(Appended { partition, base_offset: base, duplicate: true })
                            );
                        }
                        Expect::OutOfOrder => prop_assert_eq!(result, Err(ErrorCode::OutOfOrderSequence)),
                    }
                }
            }
            check_partitions(&broker, &model)?;
        }
    }
    Ok(())
}

enum Expect {
    Append,
    Duplicate(u64),
    OutOfOrder,
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn the_broker_behaves_like_the_model_across_restarts(ops in prop::collection::vec(op(), 1..120)) {
        run(ops)?;
    }
}
