use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use proptest::prelude::*;

use super::*;
use crate::engine::{Appended, FetchedRecord, Placement, Producer};
use crate::ErrorCode;

fn request_bytes(request: &Request<'_>, correlation: u32) -> Vec<u8> {
    let mut buf = vec![0u8; 4096];
    let len = encode_request(&mut buf, correlation, request).unwrap();
    buf.truncate(len);
    buf
}

fn produce_bytes(
    topic: &str,
    placement: Placement<'_>,
    producer: Option<Producer>,
    values: &[&[u8]],
) -> Vec<u8> {
    let mut buf = vec![0u8; 4096];
    let mut b = ProduceBuilder::new(&mut buf, 9, topic, placement, producer).unwrap();
    for v in values {
        b.push(v).unwrap();
    }
    let len = b.finish().unwrap();
    buf.truncate(len);
    buf
}

#[test]
fn header_layout_is_the_documented_one() {
    let frame = request_bytes(&Request::Topics { first: 3 }, 0x0102_0304);
    assert_eq!(frame, [b'S', b'L', 1, 1, 4, 3, 2, 1, 3, 0]);
    let mut buf = [0u8; 16];
    let n = encode_error(&mut buf, Kind::Fetch as u8, 7, ErrorCode::UnknownTopic);
    assert_eq!(&buf[..n], [b'S', b'L', 1, 0x83, 7, 0, 0, 0, 1, 0]);
}

#[test]
fn produce_frame_layout() {
    let frame =
        produce_bytes("t", Placement::Partition(2), Some(Producer { id: 5, sequence: 6 }), &[b"ab", b""]);
    let mut want = vec![b'S', b'L', 1, 2, 9, 0, 0, 0, 1, b't', 1, 2, 0, 0, 0, 1];
    want.extend_from_slice(&5u64.to_le_bytes());
    want.extend_from_slice(&6u32.to_le_bytes());
    want.extend_from_slice(&[2, 0, 2, 0, b'a', b'b', 0, 0]);
    assert_eq!(frame, want);
    let (corr, request) = decode_request(&frame).unwrap();
    assert_eq!(corr, 9);
    let Request::Produce(p) = request else { panic!("{request:?}") };
    assert_eq!(p.records.iter().collect::<Vec<_>>(), vec![&b"ab"[..], b""]);
    assert_eq!(p.records.iter().size_hint(), (2, Some(2)));
}

#[test]
fn refusals_carry_what_could_be_read() {
    let unreadable = Refusal { correlation: 0, kind: 0, error: ErrorCode::BadRequest };
    assert_eq!(decode_request(b""), Err(unreadable));
    assert_eq!(decode_request(b"SL\x01\x01\x05\x00\x00"), Err(unreadable));
    assert_eq!(decode_request(b"XL\x01\x01\x05\x00\x00\x00\x00\x00"), Err(unreadable));
    let refused = |kind, error| Err(Refusal { correlation: 5, kind, error });
    assert_eq!(
        decode_request(b"SL\x02\x01\x05\x00\x00\x00\x00\x00"),
        refused(1, ErrorCode::UnsupportedVersion)
    );
    assert_eq!(decode_request(b"SL\x01\x09\x05\x00\x00\x00"), refused(9, ErrorCode::BadRequest));
    // Trailing bytes, truncated body.
    assert_eq!(decode_request(b"SL\x01\x01\x05\x00\x00\x00\x00\x00\x00"), refused(1, ErrorCode::BadRequest));
    assert_eq!(decode_request(b"SL\x01\x01\x05\x00\x00\x00\x00"), refused(1, ErrorCode::BadRequest));
    // A produce without records, a name that is not UTF-8, an empty name, a bad flag.
    let mut frame = produce_bytes("t", Placement::Partition(0), None, &[b"x"]);
    let count_at = frame.len() - 5;
    frame.truncate(count_at);
    frame.extend_from_slice(&[0, 0]);
    assert_eq!(decode_request(&frame).unwrap_err().error, ErrorCode::BadRequest);
    let mut frame = request_bytes(&Request::Fetch { topic: "t", partition: 0, offset: 0, max_bytes: 1 }, 5);
    frame[9] = 0xff;
    assert_eq!(decode_request(&frame), refused(3, ErrorCode::BadRequest));
    frame[8] = 0;
    assert_eq!(decode_request(&frame), refused(3, ErrorCode::BadRequest));
    let mut frame = produce_bytes("t", Placement::Partition(0), None, &[b"x"]);
    frame[15] = 2;
    assert_eq!(decode_request(&frame).unwrap_err().error, ErrorCode::BadRequest);
}

#[test]
fn encoders_refuse_what_does_not_fit() {
    let mut small = [0u8; 12];
    let request = Request::Fetch { topic: "topic", partition: 0, offset: 0, max_bytes: 1 };
    assert_eq!(encode_request(&mut small, 1, &request), Err(ErrorCode::RecordTooLarge));
    let long = "x".repeat(256);
    let mut buf = [0u8; 1024];
    let request = Request::Fetch { topic: &long, partition: 0, offset: 0, max_bytes: 1 };
    assert_eq!(encode_request(&mut buf, 1, &request), Err(ErrorCode::BadRequest));
    let request = Request::Fetch { topic: "", partition: 0, offset: 0, max_bytes: 1 };
    assert_eq!(encode_request(&mut buf, 1, &request), Err(ErrorCode::BadRequest));

    let mut buf = [0u8; 32];
    let mut b = ProduceBuilder::new(&mut buf, 1, "t", Placement::Partition(0), None).unwrap();
    assert!(b.fits(12));
    assert!(!b.fits(13));
    assert_eq!(b.push(&[7; 13]), Err(ErrorCode::RecordTooLarge));
    b.push(&[7; 12]).unwrap();
    assert_eq!(b.push(b""), Err(ErrorCode::RecordTooLarge));
    let len = b.finish().unwrap();
    assert_eq!(len, 32);
    let Request::Produce(p) = decode_request(&buf).unwrap().1 else { panic!() };
    assert_eq!(p.records.iter().collect::<Vec<_>>(), vec![&[7u8; 12][..]]);
    let mut buf = [0u8; 64];
    let b = ProduceBuilder::new(&mut buf, 1, "t", Placement::Partition(0), None).unwrap();
    assert_eq!(b.finish(), Err(ErrorCode::BadRequest));
}

#[test]
fn simple_responses_and_errors_round_trip() {
    let mut buf = [0u8; 64];
    let appended = Appended { partition: 3, base_offset: 1 << 40, duplicate: true };
    for body in [
        SimpleBody::Produce(appended),
        SimpleBody::Commit,
        SimpleBody::Committed(None),
        SimpleBody::Committed(Some(9)),
    ] {
        let n = encode_simple_response(&mut buf, 77, body).unwrap();
        let frame = decode_response(&buf[..n]).unwrap();
        assert_eq!(frame.correlation, 77);
        let decoded = match frame.body.unwrap() {
            Response::Produce(a) => SimpleBody::Produce(a),
            Response::Commit => SimpleBody::Commit,
            Response::Committed(o) => SimpleBody::Committed(o),
            other => panic!("{other:?}"),
        };
        assert_eq!(decoded, body);
    }
    for error in ErrorCode::ALL {
        let n = encode_error(&mut buf, Kind::Produce as u8, 4, error);
        let frame = decode_response(&buf[..n]).unwrap();
        assert_eq!((frame.correlation, frame.kind, frame.body), (4, 0x82, Err(error)));
        assert_eq!(peek_response(&buf[..n]), Some((0x82, 4)));
    }
    assert_eq!(encode_error(&mut buf[..9], 1, 1, ErrorCode::BadRequest), 0);
    // An unknown error code, a request's kind byte, a bad flag: malformed answers.
    let n = encode_error(&mut buf, 2, 4, ErrorCode::BadRequest);
    buf[8] = 99;
    assert_eq!(decode_response(&buf[..n]), Err(ErrorCode::BadRequest));
    buf[8] = 0;
    buf[3] = 2;
    assert_eq!(decode_response(&buf[..n]), Err(ErrorCode::BadRequest));
    let n = encode_simple_response(&mut buf, 1, SimpleBody::Committed(None)).unwrap();
    buf[n - 1] = 1;
    assert_eq!(decode_response(&buf[..n]), Err(ErrorCode::BadRequest));
}

#[test]
fn fetch_builder_respects_limits_and_deltas() {
    let record = |offset, timestamp_ms, value| FetchedRecord { offset, timestamp_ms, value };
    let mut buf = [0u8; 200];
    let mut b = FetchBuilder::new(&mut buf, 1, 25).unwrap();
    // The first record is taken even beyond max_bytes; the next only within it.
    assert!(b.push(record(10, 1000, &[1; 20])));
    assert!(!b.push(record(11, 1000, &[2; 1])));
    let n = b.finish(11, 50);
    let Response::Fetch(view) = decode_response(&buf[..n]).unwrap().body.unwrap() else { panic!() };
    assert_eq!((view.next_offset, view.end_offset, view.len()), (11, 50, 1));

    let mut buf = [0u8; 230];
    let mut b = FetchBuilder::new(&mut buf, 1, u32::MAX).unwrap();
    assert!(b.push(record(u64::MAX - 5, 5000, b"a")));
    assert!(b.push(record(u64::MAX - 4, 4000, b"b")), "timestamps may step back");
    assert!(!b.push(record(u64::MAX - 3, 5000 + (1 << 31), b"c")), "timestamp delta too large");
    assert!(b.push(record(u64::MAX - 2, 5000, &[3; 150])));
    assert!(!b.push(record(u64::MAX - 1, 5000, b"")), "no room left");
    let n = b.finish(u64::MAX - 1, u64::MAX);
    let Response::Fetch(view) = decode_response(&buf[..n]).unwrap().body.unwrap() else { panic!() };
    let got: Vec<_> = view.iter().map(|r| (r.offset, r.timestamp_ms, r.value.len())).collect();
    assert_eq!(got, vec![(u64::MAX - 5, 5000, 1), (u64::MAX - 4, 4000, 1), (u64::MAX - 2, 5000, 150)]);

    // Empty fetch.
    let b = FetchBuilder::new(&mut buf, 1, 100).unwrap();
    let n = b.finish(7, 7);
    let Response::Fetch(view) = decode_response(&buf[..n]).unwrap().body.unwrap() else { panic!() };
    assert!(view.is_empty());
}

#[test]
fn fetch_view_refuses_disordered_offsets() {
    let mut buf = [0u8; 200];
    let mut b = FetchBuilder::new(&mut buf, 1, u32::MAX).unwrap();
    assert!(b.push(FetchedRecord { offset: 5, timestamp_ms: 0, value: b"a" }));
    assert!(b.push(FetchedRecord { offset: 6, timestamp_ms: 0, value: b"b" }));
    let n = b.finish(7, 7);
    assert!(decode_response(&buf[..n]).is_ok());
    // Make the second record's offset equal the first's; then claim a next offset below it.
    let second = RESPONSE_HEADER_BYTES + FETCH_BODY_HEADER_BYTES + FETCH_RECORD_OVERHEAD + 1;
    buf[second] = 0;
    assert_eq!(decode_response(&buf[..n]), Err(ErrorCode::BadRequest));
    buf[second] = 1;
    buf[RESPONSE_HEADER_BYTES] = 6;
    assert_eq!(decode_response(&buf[..n]), Err(ErrorCode::BadRequest));
}

#[test]
fn topics_builder_pages() {
    let mut buf = [0u8; 80];
    let mut b = TopicsBuilder::new(&mut buf, 3, 5, 1).unwrap();
    assert!(b.push("alpha", 2, |p| (u64::from(p), u64::from(p) + 10)));
    assert!(!b.push("beta", 4, |_| (0, 0)), "does not fit");
    assert_eq!(b.count(), 1);
    let n = b.finish();
    let Response::Topics(view) = decode_response(&buf[..n]).unwrap().body.unwrap() else { panic!() };
    assert_eq!((view.total, view.first, view.len()), (5, 1, 1));
    let entry = view.iter().next().unwrap();
    assert_eq!((entry.name, entry.partitions), ("alpha", 2));
    assert_eq!(entry.offsets().collect::<Vec<_>>(), vec![(0, 10), (1, 11)]);
    // More entries than total - first is refused by the builder.
    let mut b = TopicsBuilder::new(&mut buf, 3, 1, 0).unwrap();
    assert!(b.push("a", 0, |_| (0, 0)));
    assert!(!b.push("b", 0, |_| (0, 0)));
}

/// Host cost of the codec's hot paths (not a timed test: prints figures).
/// `cargo test --release -p serpentlog --lib codec_cost -- --ignored --nocapture`
#[test]
#[ignore]
fn codec_cost() {
    extern crate std;
    use std::time::Instant;
    let value = [0x5au8; 100];
    let rounds = 200_000u32;
    let mut buf = vec![0u8; 4096];
    let mut records = 0usize;
    let started = Instant::now();
    for i in 0..rounds {
        let mut b = ProduceBuilder::new(
            &mut buf,
            i,
            "sensor",
            Placement::Partition(0),
            Some(Producer { id: 1, sequence: i }),
        )
        .unwrap();
        while b.fits(value.len()) {
            b.push(&value).unwrap();
        }
        records += b.count();
        let len = b.finish().unwrap();
        let Ok((_, Request::Produce(p))) = decode_request(core::hint::black_box(&buf[..len])) else {
            panic!()
        };
        core::hint::black_box(p.records.iter().count());
    }
    let ns = started.elapsed().as_nanos() as f64;
    std::println!(
        "produce encode+decode: {:.1} ns per 100-byte record ({} per frame)",
        ns / records as f64,
        records / rounds as usize
    );
    let started = Instant::now();
    let mut records = 0usize;
    for i in 0..rounds {
        let mut b = FetchBuilder::new(&mut buf, i, u32::MAX).unwrap();
        let mut offset = 0;
        while b.push(FetchedRecord { offset, timestamp_ms: 7, value: &value }) {
            offset += 1;
        }
        records += b.count();
        let len = b.finish(offset, offset);
        let Ok(ResponseFrame { body: Ok(Response::Fetch(v)), .. }) =
            decode_response(core::hint::black_box(&buf[..len]))
        else {
            panic!()
        };
        core::hint::black_box(v.iter().count());
    }
    let ns = started.elapsed().as_nanos() as f64;
    std::println!("fetch encode+decode: {:.1} ns per 100-byte record", ns / records as f64);
}

fn name() -> impl Strategy<Value = String> {
    "[a-z0-9._-]{1,20}"
}

fn values() -> impl Strategy<Value = Vec<Vec<u8>>> {
    prop::collection::vec(prop::collection::vec(any::<u8>(), 0..40), 1..20)
}

/// Any request that fits 4 KiB, as its parts (the produce's values separately).
#[derive(Clone, Debug)]
enum AnyRequest {
    Topics(u16),
    Produce(String, Option<Vec<u8>>, u32, Option<(u64, u32)>, Vec<Vec<u8>>),
    Fetch(String, u32, u64, u32),
    Commit(String, String, u32, u64),
    Committed(String, String, u32),
}

fn any_request() -> impl Strategy<Value = AnyRequest> {
    prop_oneof![
        any::<u16>().prop_map(AnyRequest::Topics),
        (
            name(),
            prop::option::of(prop::collection::vec(any::<u8>(), 0..16)),
            any::<u32>(),
            prop::option::of(any::<(u64, u32)>()),
            values()
        )
            .prop_map(|(t, k, p, pr, v)| AnyRequest::Produce(t, k, p, pr, v)),
        (name(), any::<u32>(), any::<u64>(), any::<u32>())
            .prop_map(|(t, p, o, m)| AnyRequest::Fetch(t, p, o, m)),
        (name(), name(), any::<u32>(), any::<u64>()).prop_map(|(g, t, p, o)| AnyRequest::Commit(g, t, p, o)),
        (name(), name(), any::<u32>()).prop_map(|(g, t, p)| AnyRequest::Committed(g, t, p)),
    ]
}

fn encode_any(request: &AnyRequest, correlation: u32) -> Vec<u8> {
    match request {
        AnyRequest::Topics(first) => request_bytes(&Request::Topics { first: *first }, correlation),
        AnyRequest::Produce(topic, key, partition, producer, values) => {
            let placement = key.as_deref().map_or(Placement::Partition(*partition), Placement::Key);
            let producer = producer.map(|(id, sequence)| Producer { id, sequence });
            let values: Vec<&[u8]> = values.iter().map(Vec::as_slice).collect();
            let mut frame = produce_bytes(topic, placement, producer, &values);
            frame[4..8].copy_from_slice(&correlation.to_le_bytes());
            frame
        }
        AnyRequest::Fetch(topic, partition, offset, max_bytes) => request_bytes(
            &Request::Fetch { topic, partition: *partition, offset: *offset, max_bytes: *max_bytes },
            correlation,
        ),
        AnyRequest::Commit(group, topic, partition, offset) => request_bytes(
            &Request::Commit { group, topic, partition: *partition, offset: *offset },
            correlation,
        ),
        AnyRequest::Committed(group, topic, partition) => {
            request_bytes(&Request::Committed { group, topic, partition: *partition }, correlation)
        }
    }
}

fn decoded_matches(request: &AnyRequest, decoded: &Request<'_>) -> bool {
    match (request, decoded) {
        (AnyRequest::Topics(a), Request::Topics { first }) => a == first,
        (AnyRequest::Produce(t, k, p, pr, v), Request::Produce(d)) => {
            let placement = k.as_deref().map_or(Placement::Partition(*p), Placement::Key);
            let producer = pr.map(|(id, sequence)| Producer { id, sequence });
            *t == d.topic
                && placement == d.placement
                && producer == d.producer
                && d.records.iter().eq(v.iter().map(Vec::as_slice))
        }
        (AnyRequest::Fetch(t, p, o, m), Request::Fetch { topic, partition, offset, max_bytes }) => {
            (t.as_str(), p, o, m) == (*topic, partition, offset, max_bytes)
        }
        (AnyRequest::Commit(g, t, p, o), Request::Commit { group, topic, partition, offset }) => {
            (g.as_str(), t.as_str(), p, o) == (*group, *topic, partition, offset)
        }
        (AnyRequest::Committed(g, t, p), Request::Committed { group, topic, partition }) => {
            (g.as_str(), t.as_str(), p) == (*group, *topic, partition)
        }
        _ => false,
    }
}

/// A valid fetch response frame of these records (consecutive offsets from `base`).
fn fetch_response(base: u64, values: &[Vec<u8>]) -> Vec<u8> {
    let mut buf = vec![0u8; 4096];
    let mut b = FetchBuilder::new(&mut buf, 11, u32::MAX).unwrap();
    for (i, v) in values.iter().enumerate() {
        assert!(b.push(FetchedRecord { offset: base + i as u64, timestamp_ms: 1000 + i as u64, value: v }));
    }
    let n = b.finish(base + values.len() as u64, base + 100);
    buf.truncate(n);
    buf
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn every_request_round_trips_and_is_canonical(request in any_request(), correlation in any::<u32>()) {
        let frame = encode_any(&request, correlation);
        let (corr, decoded) = decode_request(&frame).unwrap();
        prop_assert_eq!(corr, correlation);
        prop_assert!(decoded_matches(&request, &decoded), "{:?} vs {:?}", request, decoded);
        prop_assert_eq!(request_bytes(&decoded, corr), frame);
    }

    #[test]
    fn fetch_responses_round_trip(base in any::<u64>().prop_map(|b| b / 2), values in values()) {
        let frame = fetch_response(base, &values);
        let response = decode_response(&frame).unwrap();
        prop_assert_eq!(response.correlation, 11);
        let Ok(Response::Fetch(view)) = response.body else { panic!() };
        let got: Vec<_> = view.iter().map(|r| (r.offset, r.timestamp_ms, r.value.to_vec())).collect();
        let want: Vec<_> = values.iter().enumerate().map(|(i, v)| (base + i as u64, 1000 + i as u64, v.clone())).collect();
        prop_assert_eq!(got, want);
    }

    #[test]
    fn topics_responses_round_trip(topics in prop::collection::vec((name(), prop::collection::vec(any::<(u64, u64)>(), 0..5)), 0..8)) {
        let mut buf = vec![0u8; 4096];
        let mut b = TopicsBuilder::new(&mut buf, 2, topics.len() as u16, 0).unwrap();
        for (name, offsets) in &topics {
            prop_assert!(b.push(name, offsets.len() as u32, |p| offsets[p as usize]));
        }
        let n = b.finish();
        let Ok(Response::Topics(view)) = decode_response(&buf[..n]).unwrap().body else { panic!() };
        let got: Vec<_> = view.iter().map(|e| (e.name.into(), e.offsets().collect::<Vec<_>>())).collect();
        prop_assert_eq!(got, topics);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let _ = decode_request(&bytes);
        let _ = decode_response(&bytes);
        // With a valid header in front, the body parsers see the garbage too.
        for kind in 0..7u8 {
            let mut framed = vec![b'S', b'L', 1, kind, 1, 0, 0, 0];
            framed.extend_from_slice(&bytes);
            if let Ok((_, request)) = decode_request(&framed) {
                prop_assert_eq!(request_bytes(&request, 1), framed.clone());
                if let Request::Produce(p) = request {
                    prop_assert_eq!(p.records.iter().count(), p.records.len());
                }
            }
            let mut framed = vec![b'S', b'L', 1, kind | RESPONSE_BIT, 1, 0, 0, 0, 0, 0];
            framed.extend_from_slice(&bytes);
            if let Ok(ResponseFrame { body: Ok(body), .. }) = decode_response(&framed) {
                match body {
                    Response::Fetch(v) => prop_assert_eq!(v.iter().count(), v.len()),
                    Response::Topics(v) => {
                        prop_assert_eq!(v.iter().count(), v.len());
                        for e in v.iter() {
                            prop_assert_eq!(e.offsets().count(), e.partitions as usize);
                        }
                    }
                    _ => {}
                }
            }
        }
    }

    #[test]
    fn mutated_frames_never_panic(
        request in any_request(),
        values in values(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        cut in any::<prop::sample::Index>(),
    ) {
        for mut frame in [encode_any(&request, 3), fetch_response(1, &values)] {
            for (at, byte) in &edits {
                let i = at.index(frame.len());
                frame[i] = *byte;
            }
            let _ = decode_request(&frame);
            if let Ok(ResponseFrame { body: Ok(Response::Fetch(v)), .. }) = decode_response(&frame) {
                prop_assert_eq!(v.iter().count(), v.len());
            }
            let len = cut.index(frame.len() + 1);
            let _ = decode_request(&frame[..len]);
            let _ = decode_response(&frame[..len]);
        }
    }
}
