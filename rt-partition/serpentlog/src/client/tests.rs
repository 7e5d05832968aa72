use alloc::collections::VecDeque;
use alloc::vec;
use alloc::vec::Vec;

use super::*;
use crate::protocol::PRODUCE_RECORD_OVERHEAD;
use crate::serve::Server;
use crate::testing::MemoryEngine;

/// The broker in the same thread: a request is served when sent, its answer queued. Knobs
/// to lose, hold back and fill the queues.
struct Loopback {
    engine: MemoryEngine,
    server: Server,
    capacity: usize,
    answers: VecDeque<Vec<u8>>,
    /// Answers to throw away (the broker restarted before answering, say).
    lose: usize,
    /// Answers to hold back until the next request has been sent (late answers).
    delay: usize,
    held: Vec<Vec<u8>>,
    /// Sends refused (request channel full) before one is taken.
    full: usize,
    waits: u64,
    sent: u64,
}

impl Loopback {
    fn new(capacity: usize) -> Self {
        Self {
            engine: MemoryEngine::new(&[("sensor", 1), ("events", 3)]),
            server: Server::new(),
            capacity,
            answers: VecDeque::new(),
            lose: 0,
            delay: 0,
            held: Vec::new(),
            full: 0,
            waits: 0,
            sent: 0,
        }
    }
}

impl Transport for Loopback {
    type Error = ();

    fn frame_capacity(&self) -> usize {
        self.capacity
    }

    fn try_send(&mut self, frame: &[u8]) -> Result<bool, ()> {
        if self.full > 0 {
            self.full -= 1;
            return Ok(false);
        }
        assert!(frame.len() <= self.capacity);
        self.sent += 1;
        self.answers.extend(self.held.drain(..));
        let mut answer = vec![0u8; self.capacity];
        let n = self.server.serve(&mut self.engine, frame, 100, &mut answer);
        answer.truncate(n);
        if self.lose > 0 {
            self.lose -= 1;
        } else if self.delay > 0 {
            self.delay -= 1;
            self.held.push(answer);
        } else {
            self.answers.push_back(answer);
        }
        Ok(true)
    }

    fn try_recv(&mut self, buf: &mut [u8]) -> Result<Option<usize>, ()> {
        Ok(self.answers.pop_front().map(|a| {
            buf[..a.len()].copy_from_slice(&a);
            a.len()
        }))
    }

    fn wait(&mut self) {
        self.waits += 1;
    }
}

fn client(capacity: usize) -> Client<Loopback> {
    Client::new(Loopback::new(capacity)).with_timing(Timing { waits_per_attempt: 3, attempts: 3 })
}

#[test]
fn produce_fetch_commit_and_topics() {
    let mut c = client(512);
    let a = c.produce("sensor", Placement::Partition(0), &[b"r0", b"r1"]).unwrap();
    assert_eq!((a.partition, a.base_offset, a.duplicate), (0, 0, false));
    let view = c.fetch("sensor", 0, 0, u32::MAX).unwrap();
    assert_eq!(view.iter().map(|r| r.value).collect::<Vec<_>>(), vec![&b"r0"[..], b"r1"]);
    c.commit("g", "sensor", 0, 2).unwrap();
    assert_eq!(c.committed("g", "sensor", 0).unwrap(), Some(2));
    assert_eq!(c.committed("h", "sensor", 0).unwrap(), None);
    let topics = c.topics().unwrap();
    assert_eq!(topics[0], TopicInfo { name: "sensor".into(), partitions: vec![(0, 2)] });
    assert_eq!(topics[1].partitions.len(), 3);
    assert_eq!(c.fetch("nope", 0, 0, 1).unwrap_err(), ClientError::Broker(ErrorCode::UnknownTopic));
    // The room is exact: a batch filling it is accepted, one byte more is not.
    let room = c.batch_room("sensor", Placement::Partition(0));
    let values = [vec![1u8; 100], vec![2u8; room - 100 - 2 * PRODUCE_RECORD_OVERHEAD]];
    let c2 = &mut client(512).with_producer_id(3);
    assert_eq!(c2.batch_room("sensor", Placement::Partition(0)), room);
    assert!(c2.produce("sensor", Placement::Partition(0), &[&values[0], &values[1]]).is_ok());
    let over = vec![3u8; room - 100 - 2 * PRODUCE_RECORD_OVERHEAD + 1];
    assert_eq!(
        c2.produce("sensor", Placement::Partition(0), &[&values[0], &over]).unwrap_err(),
        ClientError::Invalid(ErrorCode::RecordTooLarge)
    );
    let big = [0u8; 600];
    assert_eq!(
        c.produce("sensor", Placement::Partition(0), &[&big]).unwrap_err(),
        ClientError::Invalid(ErrorCode::RecordTooLarge)
    );
}

#[test]
fn topics_take_several_pages() {
    let mut c = client(64);
    let names: Vec<String> = (0..7).map(|i| alloc::format!("t{i}")).collect();
    let list: Vec<(&str, u32)> = names.iter().map(|n| (n.as_str(), 1)).collect();
    c.transport().engine = MemoryEngine::new(&list);
    let topics = c.topics().unwrap();
    assert_eq!(topics.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(), names);
    assert!(c.transport().sent > 1);
}

#[test]
fn idempotent_producer_retries_after_a_lost_answer_and_appends_once() {
    let mut c = client(256).with_producer_id(42);
    c.transport().lose = 1;
    let a = c.produce("events", Placement::Partition(1), &[b"a", b"b"]).unwrap();
    assert_eq!((a.base_offset, a.duplicate), (0, true), "the retry is acknowledged as a duplicate");
    assert_eq!(c.retries, 1);
    let b = c.produce("events", Placement::Partition(1), &[b"c"]).unwrap();
    assert_eq!((b.base_offset, b.duplicate), (2, false));
    assert_eq!(c.transport().engine.values("events", 1), vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]);
    // Sequences are per partition.
    let other = c.produce("events", Placement::Partition(2), &[b"x"]).unwrap();
    assert_eq!((other.base_offset, other.duplicate), (0, false));
    // Keyed batches cannot be idempotent (the partition is the broker's choice).
    assert_eq!(
        c.produce("events", Placement::Key(b"k"), &[b"x"]).unwrap_err(),
        ClientError::Invalid(ErrorCode::BadRequest)
    );
}

#[test]
fn late_answers_are_skipped_by_correlation() {
    let mut c = client(256).with_producer_id(1);
    c.transport().delay = 1;
    let a = c.produce("sensor", Placement::Partition(0), &[b"a"]).unwrap();
    // The first attempt's answer arrived after the retry was sent: skipped as stale.
    assert_eq!(c.stale_answers, 1);
    assert!(a.duplicate);
    assert_eq!(c.transport().engine.values("sensor", 0).len(), 1);
    // Reads are retried too.
    c.transport().lose = 2;
    assert_eq!(c.committed("g", "sensor", 0).unwrap(), None);
    assert_eq!(c.retries, 3);
}

#[test]
fn plain_produce_is_not_retried_and_timeouts_are_reported() {
    let mut c = client(256);
    c.transport().lose = 1;
    assert_eq!(c.produce("sensor", Placement::Key(b"k"), &[b"a"]).unwrap_err(), ClientError::TimedOut);
    assert_eq!(c.transport().sent, 1);
    c.transport().lose = 10;
    assert_eq!(c.fetch("sensor", 0, 0, 10).unwrap_err(), ClientError::TimedOut);
    assert_eq!(c.transport().sent, 4);
    // A full request channel: the client waits for room.
    c.transport().lose = 0;
    c.transport().full = 2;
    assert!(c.fetch("sensor", 0, 0, 10).is_ok());
    c.transport().full = 100;
    assert_eq!(c.fetch("sensor", 0, 0, 10).unwrap_err(), ClientError::TimedOut);
}

#[test]
fn consumer_follows_a_partition_in_order() {
    let mut c = client(128);
    for i in 0..50u32 {
        c.produce("events", Placement::Partition(2), &[&i.to_le_bytes(), &[0; 20]]).unwrap();
    }
    let mut consumer = Consumer::new(&mut c, "events", 2, Some("g"), StartAt::Earliest).unwrap();
    let mut seen = Vec::new();
    while consumer.poll(&mut c, |r| seen.push((r.offset, r.value.len()))).unwrap() > 0 {}
    assert_eq!(seen.len(), 100);
    assert!(seen
        .iter()
        .enumerate()
        .all(|(i, (o, len))| *o == i as u64 && *len == if i % 2 == 0 { 4 } else { 20 }));
    assert_eq!(consumer.position(), 100);
    consumer.commit(&mut c).unwrap();
    // A new consumer of the group resumes there; records produced later follow.
    c.produce("events", Placement::Partition(2), &[b"late"]).unwrap();
    let mut resumed = Consumer::new(&mut c, "events", 2, Some("g"), StartAt::Earliest).unwrap();
    let mut late = Vec::new();
    resumed.poll(&mut c, |r| late.push((r.offset, r.value.to_vec()))).unwrap();
    assert_eq!(late, vec![(100, b"late".to_vec())]);
    // Latest and explicit offsets; a group that never committed starts at `start`.
    let latest = Consumer::new(&mut c, "events", 2, Some("new"), StartAt::Latest).unwrap();
    assert_eq!(latest.position(), 101);
    let at = Consumer::new(&mut c, "events", 2, None, StartAt::Offset(7)).unwrap();
    assert_eq!(at.position(), 7);
    assert_eq!(
        Consumer::new(&mut c, "events", 9, None, StartAt::Earliest).unwrap_err(),
        ClientError::Broker(ErrorCode::UnknownPartition)
    );
}

#[test]
fn consumer_behind_retention_gets_out_of_range() {
    let mut c = client(256);
    for _ in 0..10 {
        c.produce("sensor", Placement::Partition(0), &[b"x"]).unwrap();
    }
    let mut consumer = Consumer::new(&mut c, "sensor", 0, None, StartAt::Offset(2)).unwrap();
    c.transport().engine.drop_before("sensor", 0, 5);
    assert_eq!(consumer.poll(&mut c, |_| {}).unwrap_err(), ClientError::Broker(ErrorCode::OffsetOutOfRange));
    let mut fresh = Consumer::new(&mut c, "sensor", 0, None, StartAt::Earliest).unwrap();
    assert_eq!(fresh.position(), 5);
    assert_eq!(fresh.poll(&mut c, |_| {}).unwrap(), 5);
}

/// A broker that answers with whatever bytes the test gives it (a hostile or broken
/// response channel): the client must not panic, whatever arrives.
struct Garbage {
    answers: VecDeque<Vec<u8>>,
}

impl Transport for Garbage {
    type Error = ();

    fn frame_capacity(&self) -> usize {
        256
    }

    fn try_send(&mut self, _frame: &[u8]) -> Result<bool, ()> {
        Ok(true)
    }

    fn try_recv(&mut self, buf: &mut [u8]) -> Result<Option<usize>, ()> {
        Ok(self.answers.pop_front().map(|a| {
            let n = a.len().min(buf.len());
            buf[..n].copy_from_slice(&a[..n]);
            n
        }))
    }

    fn wait(&mut self) {}
}

proptest::proptest! {
    #[test]
    fn garbage_answers_never_panic(
        answers in proptest::collection::vec(proptest::collection::vec(proptest::prelude::any::<u8>(), 0..80), 0..6),
        header in proptest::prelude::any::<bool>(),
    ) {
        let answers = answers
            .into_iter()
            .enumerate()
            .map(|(i, mut a)| {
                if header {
                    // A plausible header (a fetch answer to the i-th attempt) before the garbage.
                    let mut framed = vec![b'S', b'L', 1, 0x83];
                    framed.extend_from_slice(&(i as u32 + 1).to_le_bytes());
                    framed.append(&mut a);
                    framed
                } else {
                    a
                }
            })
            .collect();
        let mut c = Client::new(Garbage { answers }).with_timing(Timing { waits_per_attempt: 2, attempts: 2 });
        if let Ok(view) = c.fetch("t", 0, 0, 100) {
            let _ = view.iter().count();
        }
        let _ = c.topics();
        let _ = c.committed("g", "t", 0);
    }
}
