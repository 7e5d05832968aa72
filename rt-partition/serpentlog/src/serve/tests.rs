use alloc::borrow::ToOwned;
use alloc::vec;
use alloc::vec::Vec;

use proptest::prelude::*;

use super::*;
use crate::engine::{Appended, Placement, Producer};
use crate::protocol::{
    decode_response, encode_request, ProduceBuilder, Response, ResponseFrame, FETCH_BODY_HEADER_BYTES,
    FETCH_RECORD_OVERHEAD,
};
use crate::testing::MemoryEngine;

const CAPACITY: usize = 1024;

fn engine() -> MemoryEngine {
    MemoryEngine::new(&[("sensor", 1), ("events", 4)])
}

/// Serves `request`, returns the response frame's bytes.
fn ask(server: &mut Server, engine: &mut MemoryEngine, request: &[u8]) -> Vec<u8> {
    let mut response = vec![0u8; CAPACITY];
    let n = server.serve(engine, request, 1000, &mut response);
    response.truncate(n);
    response
}

fn request(r: &Request<'_>, correlation: u32) -> Vec<u8> {
    let mut buf = vec![0u8; CAPACITY];
    let n = encode_request(&mut buf, correlation, r).unwrap();
    buf.truncate(n);
    buf
}

fn produce(
    topic: &str,
    placement: Placement<'_>,
    producer: Option<Producer>,
    values: &[&[u8]],
    correlation: u32,
) -> Vec<u8> {
    let mut buf = vec![0u8; CAPACITY];
    let mut b = ProduceBuilder::new(&mut buf, correlation, topic, placement, producer).unwrap();
    for v in values {
        b.push(v).unwrap();
    }
    let n = b.finish().unwrap();
    buf.truncate(n);
    buf
}

fn decoded(frame: &[u8]) -> ResponseFrame<'_> {
    decode_response(frame).unwrap()
}

#[test]
fn produce_then_fetch_echoes_correlation() {
    let (mut server, mut engine) = (Server::new(), engine());
    let answer = ask(
        &mut server,
        &mut engine,
        &produce("sensor", Placement::Partition(0), None, &[b"a", b"bb", b"ccc"], 41),
    );
    let frame = decoded(&answer);
    assert_eq!(frame.correlation, 41);
    assert_eq!(
        frame.body,
        Ok(Response::Produce(Appended { partition: 0, base_offset: 0, duplicate: false }))
    );
    assert!(server.scratch.capacity() >= 3, "the scratch list is kept for the next produce");

    let answer = ask(
        &mut server,
        &mut engine,
        &request(&Request::Fetch { topic: "sensor", partition: 0, offset: 1, max_bytes: 1000 }, 42),
    );
    let frame = decoded(&answer);
    assert_eq!(frame.correlation, 42);
    let Ok(Response::Fetch(view)) = frame.body else { panic!("{frame:?}") };
    let got: Vec<_> = view.iter().map(|r| (r.offset, r.timestamp_ms, r.value)).collect();
    assert_eq!(got, vec![(1, 1000, &b"bb"[..]), (2, 1000, b"ccc")]);
    assert_eq!((view.next_offset, view.end_offset), (3, 3));
}

#[test]
fn engine_errors_become_error_responses() {
    let (mut server, mut engine) = (Server::new(), engine());
    let cases: [(Vec<u8>, ErrorCode); 4] = [
        (produce("nope", Placement::Partition(0), None, &[b"x"], 5), ErrorCode::UnknownTopic),
        (produce("events", Placement::Partition(4), None, &[b"x"], 5), ErrorCode::UnknownPartition),
        (
            request(&Request::Fetch { topic: "sensor", partition: 0, offset: 1, max_bytes: 10 }, 5),
            ErrorCode::OffsetOutOfRange,
        ),
        (
            request(&Request::Committed { group: "g", topic: "nope", partition: 0 }, 5),
            ErrorCode::UnknownTopic,
        ),
    ];
    for (req, error) in cases {
        let answer = ask(&mut server, &mut engine, &req);
        let frame = decoded(&answer);
        assert_eq!((frame.correlation, frame.body), (5, Err(error)));
        assert_eq!(frame.kind & 0x7f, req[3]);
    }
}

#[test]
fn malformed_requests_get_bad_request_with_what_was_readable() {
    let (mut server, mut engine) = (Server::new(), engine());
    let frame = |bytes: &[u8], server: &mut Server, engine: &mut MemoryEngine| {
        let answer = ask(server, engine, bytes);
        let f = decoded(&answer);
        (f.correlation, f.body.err())
    };
    assert_eq!(frame(b"garbage", &mut server, &mut engine), (0, Some(ErrorCode::BadRequest)));
    assert_eq!(
        frame(b"SL\x01\x02\x09\x00\x00\x00\x07", &mut server, &mut engine),
        (9, Some(ErrorCode::BadRequest))
    );
    assert_eq!(
        frame(b"SL\x07\x02\x09\x00\x00\x00", &mut server, &mut engine),
        (9, Some(ErrorCode::UnsupportedVersion))
    );
    // Too small a response buffer: nothing is written.
    let mut tiny = [0u8; 9];
    assert_eq!(server.serve(&mut engine, b"garbage", 0, &mut tiny), 0);
    // A produce answer does not fit 12 bytes: the answer is an error that does.
    let mut small = [0u8; 12];
    let n = server.serve(
        &mut engine,
        &produce("sensor", Placement::Partition(0), None, &[b"x"], 3),
        0,
        &mut small,
    );
    assert_eq!(decode_response(&small[..n]).unwrap().body, Err(ErrorCode::RecordTooLarge));
}

#[test]
fn fetch_fills_to_max_bytes_and_to_the_buffer() {
    let (mut server, mut engine) = (Server::new(), engine());
    let value = [7u8; 90];
    for _ in 0..30 {
        ask(&mut server, &mut engine, &produce("sensor", Placement::Partition(0), None, &[&value], 1));
    }
    let per_record = FETCH_RECORD_OVERHEAD + value.len();
    let fetch =
        |max_bytes| request(&Request::Fetch { topic: "sensor", partition: 0, offset: 0, max_bytes }, 2);
    let count = |answer: &[u8]| match decoded(answer).body {
        Ok(Response::Fetch(v)) => (v.len(), v.next_offset),
        other => panic!("{other:?}"),
    };
    assert_eq!(count(&ask(&mut server, &mut engine, &fetch(3 * per_record as u32))), (3, 3));
    assert_eq!(count(&ask(&mut server, &mut engine, &fetch(3 * per_record as u32 - 1))), (2, 2));
    // Below one record: the first is still given, so a consumer never stalls.
    assert_eq!(count(&ask(&mut server, &mut engine, &fetch(1))), (1, 1));
    // Unlimited: as many as the buffer holds.
    let fit = (CAPACITY - RESPONSE_HEADER_BYTES - FETCH_BODY_HEADER_BYTES) / per_record;
    assert_eq!(count(&ask(&mut server, &mut engine, &fetch(u32::MAX))), (fit, fit as u64));
    // At the end: an empty answer, not an error.
    let at_end = request(&Request::Fetch { topic: "sensor", partition: 0, offset: 30, max_bytes: 100 }, 2);
    assert_eq!(count(&ask(&mut server, &mut engine, &at_end)), (0, 30));
    // A record larger than the whole response buffer is an error, not an empty answer.
    let mut small = [0u8; 100];
    let n = server.serve(&mut engine, &fetch(u32::MAX), 0, &mut small);
    assert_eq!(decode_response(&small[..n]).unwrap().body, Err(ErrorCode::RecordTooLarge));
}

#[test]
fn topics_page_through_small_buffers() {
    let names: Vec<alloc::string::String> = (0..20).map(|i| alloc::format!("topic-{i:02}")).collect();
    let list: Vec<(&str, u32)> = names.iter().map(|n| (n.as_str(), 2)).collect();
    let mut engine = MemoryEngine::new(&list);
    let mut server = Server::new();
    ask(&mut server, &mut engine, &produce("topic-03", Placement::Partition(1), None, &[b"x", b"y"], 1));
    let mut seen = Vec::new();
    let mut response = [0u8; 200];
    while seen.len() < 20 {
        let n = server.serve(
            &mut engine,
            &request(&Request::Topics { first: seen.len() as u16 }, 8),
            0,
            &mut response,
        );
        let Ok(Response::Topics(view)) = decode_response(&response[..n]).unwrap().body else { panic!() };
        assert_eq!(view.total, 20);
        assert!(!view.is_empty() && view.len() < 20);
        for e in view.iter() {
            seen.push((e.name.to_owned(), e.offsets().collect::<Vec<_>>()));
        }
    }
    assert_eq!(seen[3], ("topic-03".to_owned(), vec![(0, 0), (0, 2)]));
    assert_eq!(seen.iter().map(|s| s.0.as_str()).collect::<Vec<_>>(), names);
    // Past the end: refused; at the end: empty.
    let n = server.serve(&mut engine, &request(&Request::Topics { first: 21 }, 8), 0, &mut response);
    assert_eq!(decode_response(&response[..n]).unwrap().body, Err(ErrorCode::BadRequest));
    let n = server.serve(&mut engine, &request(&Request::Topics { first: 20 }, 8), 0, &mut response);
    assert!(matches!(decode_response(&response[..n]).unwrap().body, Ok(Response::Topics(v)) if v.is_empty()));
}

#[test]
fn idempotent_retry_is_acknowledged_once() {
    let (mut server, mut engine) = (Server::new(), engine());
    let producer = Some(Producer { id: 7, sequence: 0 });
    let batch = produce("events", Placement::Partition(2), producer, &[b"a", b"b"], 1);
    let first = ask(&mut server, &mut engine, &batch);
    let again = ask(&mut server, &mut engine, &batch);
    assert_eq!(
        decoded(&first).body,
        Ok(Response::Produce(Appended { partition: 2, base_offset: 0, duplicate: false }))
    );
    assert_eq!(
        decoded(&again).body,
        Ok(Response::Produce(Appended { partition: 2, base_offset: 0, duplicate: true }))
    );
    assert_eq!(engine.values("events", 2).len(), 2);
    let gap = produce("events", Placement::Partition(2), Some(Producer { id: 7, sequence: 5 }), &[b"c"], 1);
    assert_eq!(decoded(&ask(&mut server, &mut engine, &gap)).body, Err(ErrorCode::OutOfOrderSequence));
}

#[test]
fn commit_and_committed() {
    let (mut server, mut engine) = (Server::new(), engine());
    let committed = request(&Request::Committed { group: "g", topic: "events", partition: 1 }, 3);
    assert_eq!(decoded(&ask(&mut server, &mut engine, &committed)).body, Ok(Response::Committed(None)));
    let commit = request(&Request::Commit { group: "g", topic: "events", partition: 1, offset: 12 }, 3);
    assert_eq!(decoded(&ask(&mut server, &mut engine, &commit)).body, Ok(Response::Commit));
    assert_eq!(decoded(&ask(&mut server, &mut engine, &committed)).body, Ok(Response::Committed(Some(12))));
}

fn valid_requests() -> Vec<Vec<u8>> {
    vec![
        produce("sensor", Placement::Partition(0), None, &[b"one", b"two"], 1),
        produce("events", Placement::Key(b"k"), Some(Producer { id: 1, sequence: 0 }), &[b"x"], 2),
        request(&Request::Fetch { topic: "sensor", partition: 0, offset: 0, max_bytes: 500 }, 3),
        request(&Request::Topics { first: 0 }, 4),
        request(&Request::Commit { group: "g", topic: "events", partition: 3, offset: 1 }, 5),
        request(&Request::Committed { group: "g", topic: "events", partition: 3 }, 6),
    ]
}

/// Serves `bytes`; the answer always decodes, and carries the request's correlation id
/// whenever the request's header was readable.
fn serve_checked(
    server: &mut Server,
    engine: &mut MemoryEngine,
    bytes: &[u8],
    capacity: usize,
) -> Result<(), TestCaseError> {
    let mut response = vec![0u8; capacity];
    let n = server.serve(engine, bytes, 5, &mut response);
    prop_assert!(n > 0 && n <= capacity);
    let frame = decode_response(&response[..n]);
    prop_assert!(frame.is_ok(), "{:?}", frame);
    if bytes.len() >= 8 && bytes[..3] == *b"SL\x01" {
        prop_assert_eq!(
            frame.unwrap().correlation,
            u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]])
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn serve_never_panics_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..200), kind in 0..7u8, capacity in 10usize..300) {
        let (mut server, mut engine) = (Server::new(), engine());
        serve_checked(&mut server, &mut engine, &bytes, capacity)?;
        let mut framed = vec![b'S', b'L', 1, kind, 9, 9, 9, 9];
        framed.extend_from_slice(&bytes);
        serve_checked(&mut server, &mut engine, &framed, capacity)?;
    }

    #[test]
    fn serve_never_panics_on_mutated_frames(
        which in any::<prop::sample::Index>(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..5),
        cut in any::<prop::sample::Index>(),
        capacity in 10usize..400,
    ) {
        let (mut server, mut engine) = (Server::new(), engine());
        for r in valid_requests() {
            serve_checked(&mut server, &mut engine, &r, CAPACITY)?;
        }
        let requests = valid_requests();
        let mut frame = requests[which.index(requests.len())].clone();
        for (at, byte) in &edits {
            let i = at.index(frame.len());
            frame[i] = *byte;
        }
        let len = cut.index(frame.len() + 1).max(frame.len() * usize::from(edits.len() % 2 == 0));
        serve_checked(&mut server, &mut engine, &frame[..len], capacity)?;
    }
}
