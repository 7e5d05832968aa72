//! Host tests of the channel protocols over plain memory.

extern crate std;

use std::collections::VecDeque;
use std::vec;
use std::vec::Vec;

use hallows_abi::bootinfo::{fill_name, ChannelInfo};
use hallows_abi::channel::CHANNEL_MAGIC;
use proptest::prelude::*;
use zerocopy::FromZeros;

use super::*;

/// Zeroed, 8-byte aligned backing memory for one channel.
struct Backing(Vec<u64>);

impl Backing {
    fn new(geometry: &Geometry) -> Self {
        Self(vec![0; geometry.region_bytes() as usize / 8])
    }

    fn region(&mut self) -> Region {
        // SAFETY: (test) the Vec outlives every endpoint of the test and is accessed only
        // through the endpoints (or by the test itself while no other thread runs).
        unsafe { Region::new(self.0.as_mut_ptr().cast(), self.0.len() * 8) }
    }
}

fn sampling(msg_size: u32) -> Geometry {
    Geometry::new(false, msg_size, 1).unwrap()
}

fn queuing(msg_size: u32, depth: u32) -> Geometry {
    Geometry::new(true, msg_size, depth).unwrap()
}

fn channel_info(geometry: &Geometry, writer: bool) -> ChannelInfo {
    let mut ci = ChannelInfo::new_zeroed();
    ci.name_len = fill_name(&mut ci.name, "readings");
    ci.kind = geometry.kind();
    ci.is_writer = writer as u32;
    ci.msg_size = geometry.msg_size;
    ci.depth = geometry.depth;
    ci.gpa = CHANNEL_WINDOW_GPA + 0x2000;
    ci.bytes = geometry.region_bytes();
    ci
}

#[test]
fn geometry_bounds_are_enforced() {
    assert_eq!(Geometry::new(true, 0, 4), Err(PortError::BadGeometry));
    assert_eq!(Geometry::new(true, 8, 0), Err(PortError::BadGeometry));
    assert_eq!(Geometry::new(true, MAX_MESSAGE + 1, 1), Err(PortError::BadGeometry));
    assert_eq!(Geometry::new(false, 8, 0).unwrap().depth, 1, "sampling always has one slot");
}

#[test]
fn channel_descriptions_are_checked() {
    let g = queuing(64, 8);
    assert_eq!(check_channel(&channel_info(&g, true), true, true), Ok(g));
    assert_eq!(check_channel(&channel_info(&g, true), true, false), Err(PortError::WrongKindOrRole));
    assert_eq!(check_channel(&channel_info(&g, true), false, true), Err(PortError::WrongKindOrRole));
    let mut small = channel_info(&g, false);
    small.bytes -= 1;
    assert_eq!(check_channel(&small, true, false), Err(PortError::BadGeometry));
    let mut outside = channel_info(&g, false);
    outside.gpa = 0x10_0000;
    assert_eq!(check_channel(&outside, true, false), Err(PortError::BadGeometry));
    let mut past_end = channel_info(&g, false);
    past_end.gpa = CHANNEL_WINDOW_GPA + CHANNEL_WINDOW_BYTES - PAGE_SIZE;
    assert_eq!(check_channel(&past_end, true, false), Err(PortError::BadGeometry));
    let mut unaligned = channel_info(&g, false);
    unaligned.gpa += 8;
    assert_eq!(check_channel(&unaligned, true, false), Err(PortError::BadGeometry));
}

#[test]
fn endpoints_refuse_the_other_kind_or_a_short_region() {
    let g = queuing(16, 2);
    let mut mem = Backing::new(&g);
    assert!(SamplingWriter::over(mem.region(), g).is_err());
    assert!(SamplingReader::over(mem.region(), g).is_err());
    let s = sampling(16);
    assert!(QueuingWriter::over(mem.region(), s).is_err());
    assert!(QueuingReader::over(mem.region(), s).is_err());
    // SAFETY: (test) a shorter view of the same live buffer.
    let short = unsafe { Region::new(mem.0.as_mut_ptr().cast(), 64) };
    assert_eq!(QueuingWriter::over(short, g).unwrap_err(), PortError::BadGeometry);
}

#[test]
fn writer_fills_in_the_header() {
    let g = queuing(24, 3);
    let mut mem = Backing::new(&g);
    let _w = QueuingWriter::over(mem.region(), g).unwrap();
    let header = mem.0[0].to_le_bytes();
    assert_eq!(u32::from_le_bytes(header[..4].try_into().unwrap()), CHANNEL_MAGIC);
    assert_eq!(mem.0[1], 24 | (3 << 32));
}

#[test]
fn sampling_reads_latest_and_reports_freshness() {
    let g = sampling(12);
    let mut mem = Backing::new(&g);
    let mut reader = SamplingReader::over(mem.region(), g).unwrap();
    let mut writer = SamplingWriter::over(mem.region(), g).unwrap();
    let mut buf = [0u8; 12];
    assert_eq!(reader.read(&mut buf), Ok(None));
    writer.write(b"first").unwrap();
    writer.write(b"second!").unwrap();
    assert_eq!(reader.read(&mut buf), Ok(Some(Sample { len: 7, count: 2, fresh: true })));
    assert_eq!(&buf[..7], b"second!");
    assert_eq!(reader.read(&mut buf), Ok(Some(Sample { len: 7, count: 2, fresh: false })));
    assert_eq!(writer.write(&[0; 13]), Err(PortError::TooLarge));
    assert_eq!(reader.read(&mut buf[..3]), Err(PortError::BufferTooSmall { needed: 7 }));
}

#[test]
fn sampling_reader_never_takes_a_slot_being_written() {
    let g = sampling(8);
    let mut mem = Backing::new(&g);
    let mut writer = SamplingWriter::over(mem.region(), g).unwrap();
    let mut reader = SamplingReader::over(mem.region(), g).unwrap();
    writer.write(b"old").unwrap();
    writer.begin();
    let mut buf = [0u8; 8];
    assert_eq!(reader.read(&mut buf), Err(PortError::Busy));
    store_words(&mem.region(), g.slot_data(0), b"new");
    writer.finish();
    assert_eq!(reader.read(&mut buf).unwrap().unwrap().count, 2);
    assert_eq!(&buf[..3], b"new");
}

#[test]
fn restarted_sampling_writer_recovers_from_a_half_write() {
    let g = sampling(8);
    let mut mem = Backing::new(&g);
    let mut dead = SamplingWriter::over(mem.region(), g).unwrap();
    dead.write(b"a").unwrap();
    dead.begin(); // dies here: seq left odd
    let mut reader = SamplingReader::over(mem.region(), g).unwrap();
    let mut buf = [0u8; 8];
    assert_eq!(reader.read(&mut buf), Err(PortError::Busy));
    let mut writer = SamplingWriter::over(mem.region(), g).unwrap();
    writer.write(b"b").unwrap();
    let sample = reader.read(&mut buf).unwrap().unwrap();
    assert_eq!((sample.len, buf[0]), (1, b'b'));
    assert!(sample.count > 1);
}

#[test]
fn queue_is_fifo_and_refuses_when_full() {
    let g = queuing(8, 3);
    let mut mem = Backing::new(&g);
    let mut writer = QueuingWriter::over(mem.region(), g).unwrap();
    let mut reader = QueuingReader::over(mem.region(), g).unwrap();
    let mut buf = [0u8; 8];
    assert_eq!(reader.receive(&mut buf), Ok(None));
    for m in [b"a", b"b", b"c"] {
        writer.send(m).unwrap();
    }
    assert_eq!(writer.send(b"d"), Err(PortError::Full));
    assert_eq!(reader.pending(), 3);
    assert_eq!(reader.receive(&mut buf), Ok(Some(1)));
    assert_eq!(buf[0], b'a');
    writer.send(b"d").unwrap();
    let mut got = Vec::new();
    while let Some(n) = reader.receive(&mut buf).unwrap() {
        got.push(buf[..n].to_vec());
    }
    assert_eq!(got, [b"b".to_vec(), b"c".to_vec(), b"d".to_vec()]);
}

#[test]
fn queue_small_buffer_consumes_nothing() {
    let g = queuing(8, 2);
    let mut mem = Backing::new(&g);
    let mut writer = QueuingWriter::over(mem.region(), g).unwrap();
    let mut reader = QueuingReader::over(mem.region(), g).unwrap();
    writer.send(b"12345").unwrap();
    let mut buf = [0u8; 8];
    assert_eq!(reader.receive(&mut buf[..4]), Err(PortError::BufferTooSmall { needed: 5 }));
    assert_eq!(reader.receive(&mut buf), Ok(Some(5)));
}

#[test]
fn writer_restarted_with_scrubbed_pages_resumes_at_the_reader() {
    let g = queuing(8, 2);
    let mut mem = Backing::new(&g);
    let mut writer = QueuingWriter::over(mem.region(), g).unwrap();
    let mut reader = QueuingReader::over(mem.region(), g).unwrap();
    let mut buf = [0u8; 8];
    for i in 0..5u8 {
        writer.send(&[i]).unwrap();
        reader.receive(&mut buf).unwrap();
    }
    // Scrub the writer pages (everything before the reader page).
    let reader_word = g.reader_page() as usize / 8;
    mem.0[..reader_word].fill(0);
    let mut writer = QueuingWriter::over(mem.region(), g).unwrap();
    writer.send(b"x").unwrap();
    assert_eq!(reader.receive(&mut buf), Ok(Some(1)));
    assert_eq!(buf[0], b'x');
}

#[test]
fn reader_resynchronises_on_an_impossible_writer_counter() {
    let g = queuing(8, 2);
    let mut mem = Backing::new(&g);
    let mut reader = QueuingReader::over(mem.region(), g).unwrap();
    mem.0[2] = 1000; // write_seq far ahead of read_seq with depth 2
    let mut buf = [0u8; 8];
    assert_eq!(reader.receive(&mut buf), Err(PortError::Inconsistent));
    assert_eq!(reader.receive(&mut buf), Ok(None));
}

#[test]
fn counters_at_the_end_of_their_range_wrap_instead_of_overflowing() {
    // A hostile writer publishes u64::MAX; a hostile reader hands back u64::MAX.
    let g = queuing(8, 2);
    let mut mem = Backing::new(&g);
    let mut reader = QueuingReader::over(mem.region(), g).unwrap();
    mem.0[2] = u64::MAX;
    let mut buf = [0u8; 8];
    assert_eq!(reader.receive(&mut buf), Err(PortError::Inconsistent));
    // The reader now stands at u64::MAX: a slot whose sequence does not match is skipped
    // by wrapping to 0, never by overflowing.
    mem.0[2] = 0;
    assert_eq!(reader.receive(&mut buf), Err(PortError::Inconsistent));
    assert_eq!(reader.receive(&mut buf), Ok(None));
    let reader_word = g.reader_page() as usize / 8;
    mem.0[reader_word] = u64::MAX;
    mem.0[2] = u64::MAX;
    let mut writer = QueuingWriter::over(mem.region(), g).unwrap();
    assert_eq!(writer.send(b"y"), Ok(()));
    assert_eq!(writer.send(b"z"), Ok(()));
}

/// One step of the sequential queue model test.
#[derive(Clone, Debug)]
enum Op {
    Send(Vec<u8>),
    Receive,
}

fn op(msg_size: usize) -> impl Strategy<Value = Op> {
    prop_oneof![proptest::collection::vec(any::<u8>(), 0..=msg_size).prop_map(Op::Send), Just(Op::Receive),]
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

proptest! {
    /// Any interleaving of sends and receives matches a FIFO of capacity `depth`: no loss,
    /// no duplication, no reordering, Full exactly when `depth` messages are unread.
    #[test]
    fn queue_matches_a_bounded_fifo(msg_size in 1u32..40, depth in 1u32..6, ops in proptest::collection::vec(op(40), 0..200)) {
        let g = queuing(msg_size, depth);
        let mut mem = Backing::new(&g);
        let mut writer = QueuingWriter::over(mem.region(), g).unwrap();
        let mut reader = QueuingReader::over(mem.region(), g).unwrap();
        let mut model: VecDeque<Vec<u8>> = VecDeque::new();
        let mut buf = vec![0u8; msg_size as usize];
        for op in ops {
            match op {
                Op::Send(m) => {
                    let got = writer.send(&m);
                    if m.len() > msg_size as usize {
                        prop_assert_eq!(got, Err(PortError::TooLarge));
                    } else if model.len() == depth as usize {
                        prop_assert_eq!(got, Err(PortError::Full));
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

    /// Whatever garbage the peer leaves in shared memory, no endpoint panics or loops.
    #[test]
    fn garbage_in_shared_memory_is_survived(queuing_kind: bool, words in proptest::collection::vec(any::<u64>(), 1024)) {
        let g = if queuing_kind { queuing(32, 4) } else { sampling(32) };
        let mut mem = Backing::new(&g);
        let n = mem.0.len();
        mem.0.copy_from_slice(&words[..n]);
        let mut buf = [0u8; 32];
        if queuing_kind {
            let mut reader = QueuingReader::over(mem.region(), g).unwrap();
            for _ in 0..8 {
                let _ = reader.receive(&mut buf);
            }
            let mut writer = QueuingWriter::over(mem.region(), g).unwrap();
            for _ in 0..8 {
                let _ = writer.send(b"hello");
            }
        } else {
            let mut reader = SamplingReader::over(mem.region(), g).unwrap();
            let _ = reader.read(&mut buf);
            let mut writer = SamplingWriter::over(mem.region(), g).unwrap();
            writer.write(b"hello").unwrap();
            let s = reader.read(&mut buf).unwrap().unwrap();
            prop_assert_eq!(&buf[..s.len], b"hello");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(6))]

    /// A writer thread publishing self-checking messages as fast as it can and a reader
    /// thread reading concurrently: the reader never sees a torn message and the counters
    /// it sees never go backwards.
    #[test]
    fn concurrent_sampling_reader_never_sees_a_torn_message(msg_size in 8u32..200) {
        let g = sampling(msg_size);
        let mut mem = Backing::new(&g);
        let region = mem.region();
        const MESSAGES: u64 = 20_000;
        std::thread::scope(|s| {
            s.spawn(move || {
                let mut w = SamplingWriter::over(region, g).unwrap();
                for k in 1..=MESSAGES {
                    w.write(&pattern(k, msg_size as usize)).unwrap();
                }
            });
            let mut r = SamplingReader::over(region, g).unwrap();
            let mut buf = vec![0u8; msg_size as usize];
            let mut last = 0;
            while last < MESSAGES {
                match r.read(&mut buf) {
                    Ok(Some(sample)) => {
                        let k = counter_of(&buf[..sample.len], msg_size as usize);
                        assert!(k >= last, "went backwards");
                        assert_eq!(sample.count, k);
                        last = k;
                    }
                    Ok(None) | Err(PortError::Busy) => std::thread::yield_now(),
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
        const MESSAGES: u64 = 5_000;
        std::thread::scope(|s| {
            s.spawn(move || {
                let mut w = QueuingWriter::over(region, g).unwrap();
                let mut k = 0;
                while k < MESSAGES {
                    match w.send(&pattern(k, msg_size as usize)) {
                        Ok(()) => k += 1,
                        Err(PortError::Full) => std::thread::yield_now(),
                        Err(e) => panic!("unexpected {e:?}"),
                    }
                }
            });
            let mut r = QueuingReader::over(region, g).unwrap();
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
    }
}
