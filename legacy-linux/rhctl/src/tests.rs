//! The pure parts: formatting, JSON, and the client's checks of responses (a scripted
//! transport answers with whatever bytes a test wants).

use std::collections::VecDeque;

use hallows_abi::manage::{
    name_field, put_body_u32, put_body_u64, put_header, EventRecord, Op, PartitionRecord, StatsRecord,
    Status, KIND_LINUX, KIND_RT, PLACE_GPA, PLACE_HYPERCALL, PLACE_MSR, PLACE_PORT, PLACE_REPORTED,
    PLACE_RIP, PLACE_UNKNOWN, REQUEST_BYTES, RESPONSE_HEADER_BYTES, RESPONSE_MAX,
};
use proptest::prelude::*;

use crate::client::Client;
use crate::json::Value;
use crate::{show, Error, Transport};

#[test]
fn cores_are_ranges() {
    assert_eq!(show::cores(0), "-");
    assert_eq!(show::cores(0b1), "0");
    assert_eq!(show::cores(0b1101), "0,2-3");
    assert_eq!(show::cores(0b1110_0110), "1-2,5-7");
    assert_eq!(show::cores(1 << 63 | 1 << 62 | 1), "0,62-63");
    assert_eq!(show::cores(u64::MAX), "0-63");
}

#[test]
fn times_and_sizes() {
    assert_eq!(show::seconds_tenths(0), "0.0");
    assert_eq!(show::seconds_tenths(12_345_678_901), "12.3");
    assert_eq!(show::seconds_tenths(999_999_999), "0.9");
    assert_eq!(show::seconds_millis(331_900_000), "0.331");
    assert_eq!(show::seconds_millis(u64::MAX), "18446744073.709");
    assert_eq!(show::millis(10_000_000), "10");
    assert_eq!(show::millis(250_000), "0.25");
    assert_eq!(show::millis(1_000_001), "1.000001");
    assert_eq!(show::mebibytes(512 << 20), "512");
    assert_eq!(show::mebibytes((4 << 20) + (1 << 19)), "4.5");
    assert_eq!(show::mebibytes(0), "0");
}

#[test]
fn expected_windows_follow_the_frame() {
    // 12.3 s of 10 ms frames, one window each: 1230.
    assert_eq!(show::expected_windows(12_300_000_000, 10_000_000, 1), Some(1230));
    assert_eq!(show::expected_windows(1_000_000_000, 50_000_000, 2), Some(40));
    assert_eq!(show::expected_windows(5, 0, 0), None);
    assert_eq!(show::expected_windows(5, 10, 0), None);
    assert_eq!(show::expected_windows(u64::MAX, 1, u32::MAX), Some(u64::MAX));
}

#[test]
fn names_of_known_and_unknown_values() {
    assert_eq!(
        (show::kind(KIND_RT), show::kind(KIND_LINUX), show::kind(9)),
        ("rt".into(), "linux".into(), "kind 9".into())
    );
    assert_eq!((show::state(5), show::state(6)), ("halted".into(), "state 6".into()));
    assert_eq!((show::class(5), show::class(8)), ("deadline_miss".into(), "class 8".into()));
    assert_eq!((show::action(3), show::action(0)), ("restart".into(), "action 0".into()));
}

#[test]
fn places_read_like_the_console() {
    let at = |kind, a, b| {
        show::place(&EventRecord { place_kind: kind, place_a: a, place_b: b, ..Default::default() })
    };
    assert_eq!(at(PLACE_UNKNOWN, 0, 0), "-");
    assert_eq!(at(PLACE_REPORTED, 0, 0), "reported");
    assert_eq!(at(PLACE_RIP, 0x1234, 0), "RIP 0x1234");
    assert_eq!(at(PLACE_GPA, 0xfee0_0000, 0x1234), "GPA 0xfee00000 at RIP 0x1234");
    assert_eq!(at(PLACE_PORT, 0x80, 0x1234), "port 0x80 at RIP 0x1234");
    assert_eq!(at(PLACE_MSR, 0x3a, 0x10_1234), "MSR 0x3a at RIP 0x101234");
    assert_eq!(at(PLACE_HYPERCALL, 10, 0), "hypercall 10");
    assert_eq!(at(42, 1, 2), "place kind 42 (0x1, 0x2)");
}

fn record(index: u32, name: &str) -> PartitionRecord {
    PartitionRecord {
        index,
        name: name_field(name),
        kind: KIND_RT,
        state: 1,
        vcpus: 1,
        cores: 1 << index,
        memory_bytes: 4 << 20,
        image: name_field("hello.elf"),
        ..Default::default()
    }
}

#[test]
fn the_list_is_a_table_with_aligned_columns() {
    let linux = PartitionRecord {
        kind: KIND_LINUX,
        vcpus: 2,
        cores: 0b11,
        memory_bytes: 512 << 20,
        uptime_ns: 125_340_000_000,
        image: name_field("bzImage"),
        ..record(0, "linux")
    };
    let sensor = PartitionRecord {
        state: 5,
        cores: 0b1100,
        restarts: 2,
        restart_limit: 3,
        uptime_ns: 4_000_000_000,
        ..record(1, "sensor_long_name")
    };
    assert_eq!(
        show::list(&[linux, sensor]),
        "Name              ID  Kind   State    vCPUs  Cores  Mem(MiB)  Restarts  Uptime(s)  Image\n\
         linux              0  linux  running      2  0-1         512  0             125.3  bzImage\n\
         sensor_long_name   1  rt     halted       1  2-3           4  2/3             4.0  hello.elf\n"
    );
}

#[test]
fn json_escapes_strings_and_keeps_key_order() {
    let doc = Value::object([
        ("b", Value::Number(u64::MAX)),
        ("a", Value::from("quote \" back \\ nl \n tab \t bell \u{7} del \u{7f} é")),
        ("n", Value::Null),
        ("list", Value::Array(vec![1u64.into(), Value::object::<&str>([])])),
    ]);
    let text = doc.to_text();
    assert!(text.starts_with(
        r#"{"b":18446744073709551615,"a":"quote \" back \\ nl \n tab \t bell \u0007 del \u007f é""#
    ));
    let parsed: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(parsed["a"], "quote \" back \\ nl \n tab \t bell \u{7} del \u{7f} é");
    assert_eq!(parsed["b"], u64::MAX);
    assert!(parsed["n"].is_null());
    assert_eq!(parsed["list"][1], serde_json::json!({}));
}

proptest! {
    #[test]
    fn any_text_survives_json(s in "\\PC*|[\\x00-\\x1f\"\\\\]*") {
        let text = Value::object([("k", Value::from(s.as_str()))]).to_text();
        let parsed: serde_json::Value = serde_json::from_str(&text).unwrap();
        prop_assert_eq!(parsed["k"].as_str(), Some(s.as_str()));
    }
}

/// Answers each request with the next scripted response and keeps the requests.
#[derive(Default)]
struct Scripted {
    responses: VecDeque<Vec<u8>>,
    requests: Vec<[u8; REQUEST_BYTES]>,
}

impl Transport for Scripted {
    fn exchange(&mut self, request: &[u8; REQUEST_BYTES]) -> Result<Vec<u8>, Error> {
        self.requests.push(*request);
        Ok(self.responses.pop_front().unwrap_or_default())
    }
}

fn response(status: Status, body: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; RESPONSE_HEADER_BYTES];
    put_header(&mut out, status, body.len() as u32);
    out.extend_from_slice(body);
    out
}

fn list_body(total: u32, records: &[PartitionRecord]) -> Vec<u8> {
    let mut body = vec![0u8; 12 + records.len() * PartitionRecord::BYTES];
    put_body_u32(&mut body, 0, total);
    put_body_u32(&mut body, 4, records.len() as u32);
    put_body_u32(&mut body, 8, PartitionRecord::BYTES as u32);
    for (n, r) in records.iter().enumerate() {
        r.encode(&mut body[12 + n * PartitionRecord::BYTES..]);
    }
    body
}

fn client(responses: Vec<Vec<u8>>) -> Client<Scripted> {
    Client::new(Scripted { responses: responses.into(), requests: Vec::new() })
}

fn bad_response(result: Result<impl std::fmt::Debug, Error>) -> String {
    match result {
        Err(Error::BadResponse(why)) => why,
        other => panic!("expected a malformed response error, got {other:?}"),
    }
}

#[test]
fn the_list_is_read_page_by_page() {
    let pages = vec![
        response(Status::Ok, &list_body(3, &[record(0, "a"), record(1, "b")])),
        response(Status::Ok, &list_body(3, &[record(2, "c")])),
    ];
    let mut c = client(pages);
    let names: Vec<String> = c.list().unwrap().iter().map(|r| crate::client::name(r).to_string()).collect();
    assert_eq!(names, ["a", "b", "c"]);
    let firsts: Vec<u32> =
        c.transport().requests.iter().map(|r| u32::from_le_bytes(r[8..12].try_into().unwrap())).collect();
    assert_eq!(firsts, [0, 2]);

    // An empty page ends the list even if the total promised more.
    let mut c = client(vec![
        response(Status::Ok, &list_body(3, &[record(0, "a")])),
        response(Status::Ok, &list_body(3, &[])),
    ]);
    assert_eq!(c.list().unwrap().len(), 1);
}

#[test]
fn malformed_responses_are_errors() {
    // Shorter than the header.
    assert!(bad_response(client(vec![vec![0, 0, 0]]).list()).contains("shorter than the response header"));
    // An unknown status.
    let mut unknown = response(Status::Ok, &[]);
    unknown[0] = 99;
    assert!(bad_response(client(vec![unknown]).list()).contains("unknown status 99"));
    // A body shorter than announced.
    let mut cut = response(Status::Ok, &list_body(1, &[record(0, "a")]));
    cut.truncate(40);
    assert!(bad_response(client(vec![cut]).list()).contains("announced"));
    // More records than the body holds.
    let mut body = list_body(1, &[record(0, "a")]);
    put_body_u32(&mut body, 4, 2);
    assert!(bad_response(client(vec![response(Status::Ok, &body)]).list()).contains("2 records"));
    // Records shorter than this version knows.
    let mut body = list_body(1, &[record(0, "a")]);
    put_body_u32(&mut body, 8, 8);
    assert!(bad_response(client(vec![response(Status::Ok, &body)]).list()).contains("at least 136"));
    // A record out of place.
    let body = list_body(1, &[record(4, "a")]);
    assert!(bad_response(client(vec![response(Status::Ok, &body)]).list()).contains("partition 4 where 0"));
    // Stats of another partition, or cut short.
    let mut stats = vec![0u8; StatsRecord::BYTES];
    StatsRecord { index: 2, ..Default::default() }.encode(&mut stats);
    assert!(bad_response(client(vec![response(Status::Ok, &stats)]).stats(1)).contains("partition 2"));
    assert!(bad_response(client(vec![response(Status::Ok, &stats[..100])]).stats(2)).contains("at least"));
    // More events held than there ever were.
    let mut events = vec![0u8; 16 + EventRecord::BYTES];
    put_body_u64(&mut events, 0, 0);
    put_body_u32(&mut events, 8, 1);
    put_body_u32(&mut events, 12, EventRecord::BYTES as u32);
    assert!(
        bad_response(client(vec![response(Status::Ok, &events)]).events(0)).contains("1 events held of 0")
    );
}

#[test]
fn a_status_is_an_error_naming_the_operation() {
    let result = client(vec![response(Status::WrongState, &[])]).halt(1);
    assert!(matches!(result, Err(Error::Refused { op: Op::Halt, status: Status::WrongState })));
    let denied = client(vec![response(Status::Denied, &[])]).list().unwrap_err().to_string();
    assert_eq!(
        denied,
        "this partition lacks `privileges manage` in the partition table; the refusal was recorded as a health event"
    );
}

proptest! {
    /// Whatever bytes come back, the client answers with records or an error.
    #[test]
    fn any_response_is_records_or_an_error(
        bytes in proptest::collection::vec(any::<u8>(), 0..RESPONSE_MAX),
        status_ok in any::<bool>(),
        counts in (0u32..40, 0u32..300),
    ) {
        let mut bytes = bytes;
        if status_ok && bytes.len() >= 24 {
            // Mostly well-formed heads, so the checks past the header run too.
            let body = (bytes.len() - RESPONSE_HEADER_BYTES) as u32;
            put_header(&mut bytes, Status::Ok, body);
            put_body_u32(&mut bytes[RESPONSE_HEADER_BYTES..], 4, counts.0);
            put_body_u32(&mut bytes[RESPONSE_HEADER_BYTES..], 8, counts.1);
        }
        let _ = client(vec![bytes.clone(); 4]).list();
        let _ = client(vec![bytes.clone()]).stats(0);
        let _ = client(vec![bytes.clone()]).events(0);
        let _ = client(vec![bytes]).restart(0, true);
    }
}
