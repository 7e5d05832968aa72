//! Host tests of the protocols over plain memory, including a peer that writes garbage.

extern crate std;

use std::collections::VecDeque;
use std::vec;
use std::vec::Vec;

use hallows_abi::channel::{self, CHANNEL_MAGIC, HEADER_WRITE_SEQ_OFFSET};
use proptest::prelude::*;

use super::*;

/// One cache line of backing memory (the endpoints want 64-byte aligned regions).
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line([u8; 64]);

/// Zeroed, 64-byte aligned backing memory for one channel, with a guard zone after it that
/// must stay untouched.
struct Backing {
    lines: Vec<Line>,
    bytes: usize,
}

const GUARD: u8 = 0xA5;
const GUARD_LINES: usize = 4;

impl Backing {
    fn new(geometry: &Geometry) -> Self {
        let bytes = geometry.region_bytes() as usize;
        let mut lines = vec![Line([0; 64]); bytes / 64 + GUARD_LINES];
        for line in &mut lines[bytes / 64..] {
            line.0 = [GUARD; 64];
        }
        Self { lines, bytes }
    }

    fn region(&mut self) -> Region {
        // SAFETY: (test) the Vec outlives every endpoint of the test; while endpoints live,
        // the test touches the memory only through them or through raw pointers.
        unsafe { Region::new(self.lines.as_mut_ptr().cast(), self.bytes) }
    }

    fn ptr(&mut self) -> *mut u8 {
        self.lines.as_mut_ptr().cast()
    }

    fn write_u64(&mut self, offset: usize, value: u64) {
        let p = self.ptr();
        // SAFETY: (test) offset + 8 lies inside the backing memory, aligned by callers.
        unsafe { p.add(offset).cast::<u64>().write_volatile(value) }
    }

    fn write_u32(&mut self, offset: usize, value: u32) {
        let p = self.ptr();
        // SAFETY: (test) as in write_u64.
        unsafe { p.add(offset).cast::<u32>().write_volatile(value) }
    }

    fn read_u64(&mut self, offset: usize) -> u64 {
        let p = self.ptr();
        // SAFETY: (test) as in write_u64.
        unsafe { p.add(offset).cast::<u64>().read_volatile() }
    }

    fn read_u32(&mut self, offset: usize) -> u32 {
        let p = self.ptr();
        // SAFETY: (test) as in write_u64.
        unsafe { p.add(offset).cast::<u32>().read_volatile() }
    }

    /// Overwrites `range` of the region with `garbage` (repeated).
    fn scribble(&mut self, range: core::ops::Range<usize>, garbage: &[u8]) {
        let p = self.ptr();
        for (i, at) in range.enumerate() {
            // SAFETY: (test) callers pass ranges inside the region.
            unsafe { p.add(at).write_volatile(garbage[i % garbage.len()]) }
        }
    }

    fn guard_intact(&self) -> bool {
        self.lines[self.bytes / 64..].iter().all(|l| l.0 == [GUARD; 64])
    }
}

fn sampling(msg_size: u32) -> Geometry {
    Geometry::new(false, msg_size, 1).unwrap()
}

fn queuing(msg_size: u32, depth: u32) -> Geometry {
    Geometry::new(true, msg_size, depth).unwrap()
}

#[test]
fn geometry_bounds_are_enforced() {
    assert_eq!(Geometry::new(true, 0, 4), Err(RingError::BadGeometry));
    assert_eq!(Geometry::new(true, 8, 0), Err(RingError::BadGeometry));
    assert_eq!(Geometry::new(true, 8, MAX_DEPTH + 1), Err(RingError::BadGeometry));
    assert_eq!(Geometry::new(true, MAX_MESSAGE + 1, 1), Err(RingError::BadGeometry));
    assert_eq!(Geometry::new(false, 8, 0).unwrap().depth, 1, "sampling has one logical slot");
    // The largest geometry's offsets stay far from overflowing.
    let g = queuing(MAX_MESSAGE, MAX_DEPTH);
    assert!(g.region_bytes() < 1 << 40);
}

#[test]
fn endpoints_refuse_the_other_kind_a_short_or_a_misaligned_region() {
    let g = queuing(16, 2);
    let mut mem = Backing::new(&g);
    assert!(SampleWriter::over(mem.region(), g).is_err());
    assert!(SampleReader::over(mem.region(), g).is_err());
    let s = sampling(16);
    assert!(QueueWriter::over(mem.region(), s).is_err());
    assert!(QueueReader::over(mem.region(), s).is_err());
    // SAFETY: (test) a shorter view of the same live buffer.
    let short = unsafe { Region::new(mem.ptr(), g.region_bytes() as usize - 1) };
    assert_eq!(QueueWriter::over(short, g).unwrap_err(), RingError::BadGeometry);
    // SAFETY: (test) a view 8 bytes into the same live buffer (the buffer has guard lines).
    let misaligned = unsafe { Region::new(mem.ptr().add(8), g.region_bytes() as usize) };
    assert_eq!(QueueReader::over(misaligned, g).unwrap_err(), RingError::BadGeometry);
}

#[test]
fn writer_fills_in_the_header() {
    let g = queuing(24, 3);
    let mut mem = Backing::new(&g);
    let _w = QueueWriter::over(mem.region(), g).unwrap();
    let first = mem.read_u64(0);
    assert_eq!(first as u32, CHANNEL_MAGIC);
    assert_eq!(first >> 32, g.kind() as u64);
    assert_eq!(mem.read_u64(8), 24 | (3 << 32));
}

#[test]
fn queue_is_fifo_and_refuses_when_full() {
    let g = queuing(8, 3);
    let mut mem = Backing::new(&g);
    let mut writer = QueueWriter::over(mem.region(), g).unwrap();
    let mut reader = QueueReader::over(mem.region(), g).unwrap();
    let mut buf = [0u8; 8];
    assert_eq!(reader.receive(&mut buf), Ok(None));
    for m in [b"a", b"b", b"c"] {
        writer.send(m).unwrap();
    }
    assert_eq!(writer.send(b"d"), Err(RingError::Full));
    assert_eq!(writer.send(&[0; 9]), Err(RingError::TooLarge));
    assert_eq!(reader.pending(), 3);
    assert_eq!(reader.receive(&mut buf), Ok(Some(1)));
    assert_eq!(buf[0], b'a');
    writer.send(b"d").unwrap();
    let mut got = Vec::new();
    while let Some(n) = reader.receive(&mut buf).unwrap() {
        got.push(buf[..n].to_vec());
    }
    assert_eq!(got, [b"b".to_vec(), b"c".to_vec(), b"d".to_vec()]);
    assert!(mem.guard_intact());
}

#[test]
fn queue_small_buffer_consumes_nothing() {
    let g = queuing(8, 2);
    let mut mem = Backing::new(&g);
    let mut writer = QueueWriter::over(mem.region(), g).unwrap();
    let mut reader = QueueReader::over(mem.region(), g).unwrap();
    writer.send(b"12345").unwrap();
    let mut buf = [0u8; 8];
    assert_eq!(reader.receive(&mut buf[..4]), Err(RingError::BufferTooSmall { needed: 5 }));
    assert_eq!(reader.receive(&mut buf), Ok(Some(5)));
    assert_eq!(&buf[..5], b"12345");
}

#[test]
fn writer_restarted_with_scrubbed_pages_resumes_at_the_reader() {
    let g = queuing(8, 3);
    let mut mem = Backing::new(&g);
    let mut writer = QueueWriter::over(mem.region(), g).unwrap();
    let mut reader = QueueReader::over(mem.region(), g).unwrap();
    let mut buf = [0u8; 8];
    for i in 0..5u8 {
        writer.send(&[i]).unwrap();
        reader.receive(&mut buf).unwrap();
    }
    mem.scribble(0..g.writer_bytes() as usize, &[0]);
    let mut writer = QueueWriter::over(mem.region(), g).unwrap();
    writer.send(b"x").unwrap();
    assert_eq!(reader.receive(&mut buf), Ok(Some(1)));
    assert_eq!(buf[0], b'x');
}

#[test]
fn reader_restarted_with_a_scrubbed_page_resynchronises_once() {
    let g = queuing(8, 2);
    let mut mem = Backing::new(&g);
    let mut writer = QueueWriter::over(mem.region(), g).unwrap();
    let mut reader = QueueReader::over(mem.region(), g).unwrap();
    let mut buf = [0u8; 8];
    for i in 0..7u8 {
        writer.send(&[i]).unwrap();
        reader.receive(&mut buf).unwrap();
    }
    mem.scribble(g.writer_bytes() as usize..g.region_bytes() as usize, &[0]);
    let mut reader = QueueReader::over(mem.region(), g).unwrap();
    assert_eq!(reader.receive(&mut buf), Err(RingError::Inconsistent));
    assert_eq!(reader.receive(&mut buf), Ok(None));
    writer.send(b"y").unwrap();
    assert_eq!(reader.receive(&mut buf), Ok(Some(1)));
    assert_eq!(buf[0], b'y');
}

#[test]
fn reader_resynchronises_on_an_impossible_writer_counter() {
    let g = queuing(8, 2);
    let mut mem = Backing::new(&g);
    let mut reader = QueueReader::over(mem.region(), g).unwrap();
    mem.write_u64(HEADER_WRITE_SEQ_OFFSET as usize, 1000);
    let mut buf = [0u8; 8];
    assert_eq!(reader.receive(&mut buf), Err(RingError::Inconsistent));
    assert_eq!(reader.receive(&mut buf), Ok(None));
    assert_eq!(mem.read_u64(g.writer_bytes() as usize), 1000, "the reader handed back up to 1000");
}

#[test]
fn a_length_above_the_message_size_is_skipped_not_copied() {
    let g = queuing(8, 4);
    let mut mem = Backing::new(&g);
    let mut writer = QueueWriter::over(mem.region(), g).unwrap();
    let mut reader = QueueReader::over(mem.region(), g).unwrap();
    writer.send(b"ok").unwrap();
    writer.send(b"next").unwrap();
    mem.write_u32(channel::slot_offset(8, 0) as usize + 8, u32::MAX);
    let mut buf = [0u8; 8];
    assert_eq!(reader.receive(&mut buf), Err(RingError::Inconsistent));
    assert_eq!(reader.receive(&mut buf), Ok(Some(4)));
    assert_eq!(&buf[..4], b"next");
}

#[test]
fn counters_at_the_end_of_their_range_wrap_instead_of_overflowing() {
    // The `chanseq` guest's cycle (guests/rogue channel_abuse.rs): a jump by 2^63, u64::MAX,
    // one message across the wrap, a huge length; then counters behind the reader.
    let g = queuing(64, 16);
    let mut mem = Backing::new(&g);
    let mut reader = QueueReader::over(mem.region(), g).unwrap();
    let mut buf = [0u8; 64];
    let write_seq = HEADER_WRITE_SEQ_OFFSET as usize;
    let slot = |n: u64| channel::slot_offset(64, n % 16) as usize;
    for _round in 0..3 {
        // The counter jumps by 2^63 (from wherever the reader is: ahead or behind, far).
        mem.write_u64(write_seq, 1 << 63);
        assert_eq!(reader.receive(&mut buf), Err(RingError::Inconsistent));
        assert_eq!(reader.receive(&mut buf), Ok(None));
        // To u64::MAX, far again; the slot it names holds nothing that matches.
        mem.write_u64(slot(u64::MAX), 1);
        mem.write_u64(write_seq, u64::MAX);
        assert_eq!(reader.receive(&mut buf), Err(RingError::Inconsistent));
        assert_eq!(reader.receive(&mut buf), Ok(None));
        // Message u64::MAX (its slot says seq 0), then the counter wraps to 0.
        mem.write_u64(slot(u64::MAX) + 16, 0x5EC0_0000_0000_0BAD);
        mem.write_u32(slot(u64::MAX) + 8, 8);
        mem.write_u64(slot(u64::MAX), 0);
        mem.write_u64(write_seq, 0);
        assert_eq!(reader.receive(&mut buf), Ok(Some(8)));
        assert_eq!(u64::from_le_bytes(buf[..8].try_into().unwrap()), 0x5EC0_0000_0000_0BAD);
        // Message 0 claims 4 GiB.
        mem.write_u32(slot(0) + 8, u32::MAX);
        mem.write_u64(slot(0), 1);
        mem.write_u64(write_seq, 1);
        assert_eq!(reader.receive(&mut buf), Err(RingError::Inconsistent));
        assert_eq!(reader.receive(&mut buf), Ok(None));
        // The counter runs back by one: "nothing new" (a counter may trail the slots).
        mem.write_u64(write_seq, 0);
        assert_eq!(reader.receive(&mut buf), Ok(None));
        // A counter that claims a message whose slot does not say so: skipped.
        mem.write_u64(write_seq, 2);
        assert_eq!(reader.receive(&mut buf), Err(RingError::Inconsistent));
        assert_eq!(reader.receive(&mut buf), Ok(None));
    }
    // A hostile reader hands back u64::MAX: the writer continues from there.
    let reader_word = g.writer_bytes() as usize;
    mem.write_u64(reader_word, u64::MAX);
    mem.write_u64(write_seq, u64::MAX);
    let mut writer = QueueWriter::over(mem.region(), g).unwrap();
    assert_eq!(writer.send(b"y"), Ok(()));
    assert_eq!(writer.send(b"z"), Ok(()));
    assert!(mem.guard_intact());
}

#[test]
fn an_empty_queue_is_polled_on_the_slot_alone_after_the_first_lap() {
    let g = queuing(8, 4);
    let mut mem = Backing::new(&g);
    let mut writer = QueueWriter::over(mem.region(), g).unwrap();
    let mut reader = QueueReader::over(mem.region(), g).unwrap();
    let mut buf = [0u8; 8];
    for k in 0..6u8 {
        writer.send(&[k]).unwrap();
        assert_eq!(reader.receive(&mut buf), Ok(Some(1)));
    }
    // The slot the reader waits on holds the previous lap's message: it does not look at
    // the writer's counter (garbage here) to say "empty"...
    mem.write_u64(HEADER_WRITE_SEQ_OFFSET as usize, 12345);
    assert_eq!(reader.receive(&mut buf), Ok(None));
    // ...and the next message is taken from the slot.
    writer.send(b"n").unwrap();
    assert_eq!(reader.receive(&mut buf), Ok(Some(1)));
    assert_eq!(buf[0], b'n');
}

#[test]
fn a_lying_writer_cannot_keep_a_draining_reader_busy() {
    // Slots that all claim the messages after the counter, and a counter behind them: a
    // reader draining until `None` stops within a bounded number of calls.
    let g = queuing(8, 8);
    let mut mem = Backing::new(&g);
    let mut reader = QueueReader::over(mem.region(), g).unwrap();
    for (i, base) in [0u64, 5, u64::MAX - 3, 1 << 40].into_iter().enumerate() {
        for k in 0..8u64 {
            let n = base.wrapping_add(k);
            let at = channel::slot_offset(8, n % 8) as usize;
            mem.write_u64(at, n.wrapping_add(1));
            mem.write_u32(at + 8, if k % 2 == 0 { 4 } else { 1 << 30 });
        }
        mem.write_u64(HEADER_WRITE_SEQ_OFFSET as usize, base.wrapping_add(3 * i as u64));
        let mut buf = [0u8; 8];
        let calls = (0..).take_while(|_| reader.receive(&mut buf) != Ok(None)).take(100).count();
        assert!(calls <= 2 * 8 + 2, "{calls} calls before the queue looked empty");
    }
}

#[test]
fn both_ends_agree_on_slots_across_the_counter_wrap_at_any_depth() {
    for depth in [1u32, 3, 5, 9, 16] {
        let g = queuing(8, depth);
        let mut mem = Backing::new(&g);
        let start = u64::MAX - 2;
        mem.write_u64(HEADER_WRITE_SEQ_OFFSET as usize, start);
        mem.write_u64(g.writer_bytes() as usize, start);
        let mut writer = QueueWriter::over(mem.region(), g).unwrap();
        let mut reader = QueueReader::over(mem.region(), g).unwrap();
        let mut buf = [0u8; 8];
        for k in 0..3 * depth as u64 + 5 {
            writer.send(&k.to_le_bytes()).unwrap();
            assert_eq!(reader.receive(&mut buf), Ok(Some(8)), "depth {depth}, message {k}");
            assert_eq!(u64::from_le_bytes(buf), k);
            // A writer reopened here (a restart) finds the slot `write_seq % depth`.
            writer = QueueWriter::over(mem.region(), g).unwrap();
        }
    }
}

#[test]
fn a_reader_that_hands_back_too_much_only_makes_the_writer_see_a_full_queue() {
    let g = queuing(8, 4);
    let mut mem = Backing::new(&g);
    let mut writer = QueueWriter::over(mem.region(), g).unwrap();
    writer.send(b"a").unwrap();
    writer.send(b"b").unwrap();
    mem.write_u64(g.writer_bytes() as usize, 50); // read_seq past write_seq (2)
    for _ in 0..10 {
        let _ = writer.send(b"c");
    }
    // Four slots at most were ever used: write_seq never ran past read_seq + depth...
    assert!(mem.read_u64(HEADER_WRITE_SEQ_OFFSET as usize) <= 54);
    // ...and once the reader says something sensible again, sending goes on.
    let published = mem.read_u64(HEADER_WRITE_SEQ_OFFSET as usize);
    mem.write_u64(g.writer_bytes() as usize, published);
    assert_eq!(writer.send(b"d"), Ok(()));
    assert!(mem.guard_intact());
}

#[test]
fn sampling_reads_latest_and_reports_freshness() {
    let g = sampling(12);
    let mut mem = Backing::new(&g);
    let mut reader = SampleReader::over(mem.region(), g).unwrap();
    let mut writer = SampleWriter::over(mem.region(), g).unwrap();
    let mut buf = [0u8; 12];
    assert_eq!(reader.read(&mut buf), Ok(None));
    writer.write(b"first").unwrap();
    writer.write(b"second!").unwrap();
    assert_eq!(reader.read(&mut buf), Ok(Some(Sample { len: 7, count: 2, fresh: true })));
    assert_eq!(&buf[..7], b"second!");
    assert_eq!(reader.read(&mut buf), Ok(Some(Sample { len: 7, count: 2, fresh: false })));
    for k in 3..20u8 {
        writer.write(&[k; 3]).unwrap();
        let s = reader.read(&mut buf).unwrap().unwrap();
        assert_eq!((s.len, s.count, s.fresh, buf[0]), (3, k as u64, true, k));
    }
    assert_eq!(writer.write(&[0; 13]), Err(RingError::TooLarge));
    assert_eq!(reader.read(&mut buf[..2]), Err(RingError::BufferTooSmall { needed: 3 }));
}

#[test]
fn sampling_writer_never_writes_the_slot_the_reader_announced() {
    // The reader takes a value (announcing its pair); while it "copies", the writer writes
    // three more values: each goes to the other pair, and the slot the reader was pointed
    // at still holds the value it took.
    let g = sampling(8);
    let mut mem = Backing::new(&g);
    let mut writer = SampleWriter::over(mem.region(), g).unwrap();
    let mut reader = SampleReader::over(mem.region(), g).unwrap();
    let mut buf = [0u8; 8];
    let data_of = |index: u64| channel::slot_offset(8, index) as usize + 16;
    for k in 1..=40u64 {
        writer.write(&k.to_le_bytes()).unwrap();
        if k % 3 != 0 {
            continue;
        }
        let s = reader.read(&mut buf).unwrap().unwrap();
        assert_eq!((u64::from_le_bytes(buf), s.fresh), (k, true));
        let pair = mem.read_u32(g.writer_bytes() as usize) as u64;
        let slots = mem.read_u32(channel::HEADER_PAIR_SLOT_OFFSET as usize + 4 * pair as usize) as u64;
        let read_index = 2 * pair + slots;
        for extra in 1..=3u64 {
            writer.write(&(1000 + extra).to_le_bytes()).unwrap();
            let latest_pair = mem.read_u32(channel::HEADER_LATEST_PAIR_OFFSET as usize) as u64;
            assert_ne!(latest_pair, pair, "the writer wrote into the announced pair");
            assert_eq!(mem.read_u64(data_of(read_index)), k, "the slot being read was overwritten");
        }
    }
}

#[test]
fn a_sampling_writer_that_died_mid_write_leaves_the_previous_value() {
    let g = sampling(8);
    let mut mem = Backing::new(&g);
    let mut writer = SampleWriter::over(mem.region(), g).unwrap();
    let mut reader = SampleReader::over(mem.region(), g).unwrap();
    writer.write(b"a").unwrap();
    // It "dies" while copying its next value: the slot it was filling is not published,
    // so bytes land in a slot no reader is pointed at.
    let next_slot = channel::slot_offset(8, 0) as usize; // pair 0 (reader announced 0)
    mem.scribble(next_slot + 16..next_slot + 24, b"zzzzzzzz");
    let mut buf = [0u8; 8];
    let s = reader.read(&mut buf).unwrap().unwrap();
    assert_eq!((s.len, buf[0], s.count), (1, b'a', 1));
    // Its successor continues the count.
    let mut writer = SampleWriter::over(mem.region(), g).unwrap();
    writer.write(b"b").unwrap();
    let s = reader.read(&mut buf).unwrap().unwrap();
    assert_eq!((s.len, buf[0], s.count, s.fresh), (1, b'b', 2, true));
}

#[test]
fn a_sampling_slot_with_an_impossible_length_is_reported() {
    let g = sampling(8);
    let mut mem = Backing::new(&g);
    let mut writer = SampleWriter::over(mem.region(), g).unwrap();
    let mut reader = SampleReader::over(mem.region(), g).unwrap();
    writer.write(b"abc").unwrap();
    // The first write went to pair 1, slot 1 (slot index 3).
    let slot = channel::slot_offset(8, 3) as usize;
    mem.write_u32(slot + 8, 9);
    let mut buf = [0u8; 8];
    assert_eq!(reader.read(&mut buf), Err(RingError::Inconsistent));
    writer.write(b"ok").unwrap();
    assert_eq!(reader.read(&mut buf).unwrap().unwrap().len, 2);
}

/// One step of the sequential queue model test.
#[derive(Clone, Debug)]
enum Op {
    Send(Vec<u8>),
    Receive,
}

fn op(msg_size: usize) -> impl Strategy<Value = Op> {
    prop_oneof![proptest::collection::vec(any::<u8>(), 0..=msg_size).prop_map(Op::Send), Just(Op::Receive)]
}

/// A message that carries its own check: 8 bytes of counter, then bytes derived from it;
/// its length depends on the counter too.
fn pattern(k: u64, msg_size: usize) -> Vec<u8> {
    let len = 8 + (k as usize % (msg_size - 7));
    let mut m = k.to_le_bytes().to_vec();
    m.extend((8..len).map(|i| (k as u8) ^ (i as u8).wrapping_mul(31)));
    m
}

fn counter_of(m: &[u8], msg_size: usize) -> u64 {
    let k = u64::from_le_bytes(m[..8].try_into().unwrap());
    assert_eq!(m, pattern(k, msg_size), "torn or corrupt message");
    k
}

/// Garbage a hostile peer writes: where (a range of the peer's own pages) and what.
#[derive(Clone, Debug)]
struct Scribble {
    at: usize,
    len: usize,
    bytes: Vec<u8>,
}

fn scribbles() -> impl Strategy<Value = Vec<Scribble>> {
    let one = (any::<usize>(), 1usize..64, proptest::collection::vec(any::<u8>(), 1..16))
        .prop_map(|(at, len, bytes)| Scribble { at, len, bytes });
    proptest::collection::vec(one, 0..4)
}

/// Interesting words: the counters' edges and small values around them.
fn word() -> impl Strategy<Value = u64> {
    prop_oneof![Just(0u64), Just(u64::MAX), Just(u32::MAX as u64), 0u64..40, any::<u64>()]
}

proptest! {
    /// Any interleaving of sends and receives matches a FIFO of capacity `depth`: no loss,
    /// no duplication, no reordering, Full exactly when `depth` messages are unread.
    #[test]
    fn queue_matches_a_bounded_fifo(msg_size in 1u32..40, depth in 1u32..6, ops in proptest::collection::vec(op(40), 0..200)) {
        let g = queuing(msg_size, depth);
        let mut mem = Backing::new(&g);
        let mut writer = QueueWriter::over(mem.region(), g).unwrap();
        let mut reader = QueueReader::over(mem.region(), g).unwrap();
        let mut model: VecDeque<Vec<u8>> = VecDeque::new();
        let mut buf = vec![0u8; msg_size as usize];
        for op in ops {
            match op {
                Op::Send(m) => {
                    let got = writer.send(&m);
                    if m.len() > msg_size as usize {
                        prop_assert_eq!(got, Err(RingError::TooLarge));
                    } else if model.len() == depth as usize {
                        prop_assert_eq!(got, Err(RingError::Full));
                    } else {
                        prop_assert_eq!(got, Ok(()));
                        model.push_back(m);
                    }
                }
                Op::Receive => {
                    let got = reader.receive(&mut buf).unwrap().map(|n| buf[..n].to_vec());
                    prop_assert_eq!(got, model.pop_front());
                }
            }
            prop_assert_eq!(reader.pending(), model.len() as u64);
        }
    }

    /// A hostile writer scribbles over its pages (header, counters, slots) between the
    /// reader's operations: the reader never panics, never copies more than `msg_size`
    /// bytes, never touches memory past the region, and recovers once the writer behaves.
    #[test]
    fn a_hostile_queue_writer_cannot_push_the_reader_out_of_its_ring(
        msg_size in 1u32..80,
        depth in 1u32..20,
        rounds in proptest::collection::vec((word(), scribbles()), 1..30),
    ) {
        let g = queuing(msg_size, depth);
        let mut mem = Backing::new(&g);
        let writer_bytes = g.writer_bytes() as usize;
        let mut reader = QueueReader::over(mem.region(), g).unwrap();
        let mut buf = vec![0u8; msg_size as usize];
        for (write_seq, marks) in rounds {
            mem.write_u64(HEADER_WRITE_SEQ_OFFSET as usize, write_seq);
            for s in marks {
                let at = s.at % writer_bytes;
                mem.scribble(at..(at + s.len).min(writer_bytes), &s.bytes);
            }
            for _ in 0..(depth + 2) {
                match reader.receive(&mut buf) {
                    Ok(Some(n)) => prop_assert!(n <= msg_size as usize),
                    Ok(None) | Err(RingError::Inconsistent) => {}
                    Err(e) => prop_assert!(false, "unexpected {:?}", e),
                }
            }
            prop_assert!(reader.pending() <= depth as u64);
            prop_assert!(mem.guard_intact());
        }
        // An honest writer taking over: messages flow again, in order.
        let mut writer = QueueWriter::over(mem.region(), g).unwrap();
        let mut delivered = 0;
        for k in 0..(2 * depth as u8 + 3) {
            writer.send(&[k][..1.min(msg_size as usize)]).unwrap();
            loop {
                match reader.receive(&mut buf) {
                    Ok(Some(_)) => { delivered += 1; break }
                    Err(RingError::Inconsistent) => continue,
                    other => { prop_assert!(false, "message lost: {:?}", other); }
                }
            }
        }
        prop_assert_eq!(delivered, 2 * depth + 3);
    }

    /// A hostile reader scribbles over its page between the writer's sends: the writer
    /// never panics, never writes outside its pages (the reader page is left as the reader
    /// wrote it), and stays within `depth` messages of what the reader last claimed.
    #[test]
    fn a_hostile_queue_reader_cannot_push_the_writer_out_of_its_ring(
        msg_size in 1u32..80,
        depth in 1u32..20,
        rounds in proptest::collection::vec((word(), 0u32..8), 1..30),
    ) {
        let g = queuing(msg_size, depth);
        let mut mem = Backing::new(&g);
        let reader_word = g.writer_bytes() as usize;
        let mut writer = QueueWriter::over(mem.region(), g).unwrap();
        let msg = vec![7u8; msg_size as usize];
        for (read_seq, sends) in rounds {
            mem.write_u64(reader_word, read_seq);
            for _ in 0..sends {
                match writer.send(&msg) {
                    Ok(()) | Err(RingError::Full) => {}
                    Err(e) => prop_assert!(false, "unexpected {:?}", e),
                }
            }
            prop_assert_eq!(mem.read_u64(reader_word), read_seq);
            prop_assert!(mem.guard_intact());
        }
    }

    /// The same for sampling: garbage in the writer pages between reads.
    #[test]
    fn a_hostile_sample_writer_cannot_push_the_reader_out_of_its_slots(
        msg_size in 1u32..200,
        rounds in proptest::collection::vec((word(), word(), scribbles()), 1..30),
    ) {
        let g = sampling(msg_size);
        let mut mem = Backing::new(&g);
        let writer_bytes = g.writer_bytes() as usize;
        let mut reader = SampleReader::over(mem.region(), g).unwrap();
        let mut buf = vec![0u8; msg_size as usize];
        for (control, slot_word, marks) in rounds {
            mem.write_u64(channel::HEADER_LATEST_PAIR_OFFSET as usize, control);
            mem.write_u64(channel::HEADER_PAIR_SLOT_OFFSET as usize + 4, slot_word);
            for s in marks {
                let at = s.at % writer_bytes;
                mem.scribble(at..(at + s.len).min(writer_bytes), &s.bytes);
            }
            match reader.read(&mut buf) {
                Ok(Some(s)) => prop_assert!(s.len <= msg_size as usize),
                Ok(None) | Err(RingError::Inconsistent) => {}
                Err(e) => prop_assert!(false, "unexpected {:?}", e),
            }
            prop_assert!(mem.guard_intact());
        }
        let mut writer = SampleWriter::over(mem.region(), g).unwrap();
        writer.write(&[9][..1]).unwrap();
        let s = reader.read(&mut buf).unwrap().unwrap();
        prop_assert_eq!((s.len, buf[0], s.fresh), (1, 9, true));
    }

    /// And a hostile sampling reader: whatever it announces, the writer keeps writing
    /// inside its slots and leaves the reader page alone.
    #[test]
    fn a_hostile_sample_reader_cannot_push_the_writer_out_of_its_slots(
        msg_size in 1u32..200,
        announcements in proptest::collection::vec(word(), 1..30),
    ) {
        let g = sampling(msg_size);
        let mut mem = Backing::new(&g);
        let reader_word = g.writer_bytes() as usize;
        let mut writer = SampleWriter::over(mem.region(), g).unwrap();
        let msg = vec![3u8; msg_size as usize];
        for a in announcements {
            mem.write_u64(reader_word, a);
            writer.write(&msg).unwrap();
            prop_assert_eq!(mem.read_u64(reader_word), a);
            prop_assert!(mem.guard_intact());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(6))]

    /// A writer thread publishing self-checking values as fast as it can and a reader
    /// thread reading concurrently: every read returns a complete value (never an error),
    /// and the counts it sees never go backwards.
    #[test]
    fn concurrent_sampling_reader_always_gets_a_complete_value(msg_size in 8u32..300) {
        let g = sampling(msg_size);
        let mut mem = Backing::new(&g);
        let region = mem.region();
        const MESSAGES: u64 = 50_000;
        std::thread::scope(|s| {
            s.spawn(move || {
                let mut w = SampleWriter::over(region, g).unwrap();
                for k in 1..=MESSAGES {
                    w.write(&pattern(k, msg_size as usize)).unwrap();
                }
            });
            let mut r = SampleReader::over(region, g).unwrap();
            let mut buf = vec![0u8; msg_size as usize];
            let mut last = 0;
            while last < MESSAGES {
                match r.read(&mut buf) {
                    Ok(Some(sample)) => {
                        let k = counter_of(&buf[..sample.len], msg_size as usize);
                        assert!(k >= last, "went backwards");
                        assert_eq!(sample.count, k);
                        assert_eq!(sample.fresh, k != last);
                        last = k;
                    }
                    Ok(None) => assert_eq!(last, 0, "a value disappeared"),
                    Err(e) => panic!("unexpected {e:?}"),
                }
            }
        });
    }

    /// A writer thread and a reader thread over a small ring: every message arrives once,
    /// intact and in order.
    #[test]
    fn concurrent_queue_delivers_everything_in_order(msg_size in 8u32..100, depth in 1u32..8) {
        let g = queuing(msg_size, depth);
        let mut mem = Backing::new(&g);
        let region = mem.region();
        const MESSAGES: u64 = 20_000;
        std::thread::scope(|s| {
            s.spawn(move || {
                let mut w = QueueWriter::over(region, g).unwrap();
                let mut k = 0;
                while k < MESSAGES {
                    match w.send(&pattern(k, msg_size as usize)) {
                        Ok(()) => k += 1,
                        Err(RingError::Full) => std::thread::yield_now(),
                        Err(e) => panic!("unexpected {e:?}"),
                    }
                }
            });
            let mut r = QueueReader::over(region, g).unwrap();
            let mut buf = vec![0u8; msg_size as usize];
            let mut expected = 0;
            while expected < MESSAGES {
                match r.receive(&mut buf) {
                    Ok(Some(n)) => {
                        assert_eq!(counter_of(&buf[..n], msg_size as usize), expected);
                        expected += 1;
                    }
                    Ok(None) => std::thread::yield_now(),
                    Err(e) => panic!("unexpected {e:?}"),
                }
            }
        });
        prop_assert!(mem.guard_intact());
    }
}
