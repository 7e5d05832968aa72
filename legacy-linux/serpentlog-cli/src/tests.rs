use std::cell::RefCell;
use std::collections::VecDeque;
use std::convert::Infallible;
use std::rc::Rc;

use serpentlog::engine::Engine;
use serpentlog::serve::Server;
use serpentlog::testing::MemoryEngine;

use super::*;

/// The broker in the same thread, over a shared engine (so that a test can produce while
/// a command runs).
struct Loopback {
    engine: Rc<RefCell<MemoryEngine>>,
    server: Server,
    capacity: usize,
    answers: VecDeque<Vec<u8>>,
    requests: u64,
    /// Stop answering (a broker that went away).
    silent: bool,
}

impl Transport for Loopback {
    type Error = Infallible;

    fn frame_capacity(&self) -> usize {
        self.capacity
    }

    fn try_send(&mut self, frame: &[u8]) -> Result<bool, Infallible> {
        self.requests += 1;
        if !self.silent {
            let mut answer = vec![0u8; self.capacity];
            let n = self.server.serve(&mut *self.engine.borrow_mut(), frame, 5, &mut answer);
            answer.truncate(n);
            self.answers.push_back(answer);
        }
        Ok(true)
    }

    fn try_recv(&mut self, buf: &mut [u8]) -> Result<Option<usize>, Infallible> {
        Ok(self.answers.pop_front().map(|a| {
            buf[..a.len()].copy_from_slice(&a);
            a.len()
        }))
    }

    fn wait(&mut self) {}
}

/// A client as `main` makes it for a produce to a partition (idempotent, producer 9).
fn setup(capacity: usize) -> (Client<Loopback>, Rc<RefCell<MemoryEngine>>) {
    let (c, engine) = setup_plain(capacity);
    (c.with_producer_id(9), engine)
}

fn setup_plain(capacity: usize) -> (Client<Loopback>, Rc<RefCell<MemoryEngine>>) {
    let engine = Rc::new(RefCell::new(MemoryEngine::new(&[("sensor", 1), ("events", 4)])));
    let transport = Loopback {
        engine: engine.clone(),
        server: Server::new(),
        capacity,
        answers: VecDeque::new(),
        requests: 0,
        silent: false,
    };
    (Client::new(transport).with_timing(Timing { waits_per_attempt: 2, attempts: 2 }), engine)
}

fn run_text(client: &mut Client<Loopback>, args: &[&str], stdin: &str) -> Result<String, CliError> {
    let cli = Cli::try_parse_from(std::iter::once("serpentlog").chain(args.iter().copied())).unwrap();
    let mut out = Vec::new();
    run(&cli.command, client, &mut BufReader::new(stdin.as_bytes()), &mut out, &mut || {})?;
    Ok(String::from_utf8(out).unwrap())
}

#[test]
fn produce_lines_then_consume_them() {
    let (mut c, engine) = setup(256);
    let out = run_text(&mut c, &["produce", "sensor"], "first\nsecond\r\n\nlast").unwrap();
    assert_eq!(out, "produced 4 records to sensor partition 0 offsets 0..=3\n");
    assert_eq!(engine.borrow().values("sensor", 0), [&b"first"[..], b"second", b"", b"last"]);
    let out = run_text(&mut c, &["consume", "sensor"], "").unwrap();
    assert_eq!(out, "offset 0: first\noffset 1: second\noffset 2: \noffset 3: last\n");
    let out = run_text(&mut c, &["consume", "sensor", "--from", "2"], "").unwrap();
    assert_eq!(out, "offset 2: \noffset 3: last\n");
}

#[test]
fn keyed_produce_reports_each_partition() {
    let (mut c, engine) = setup_plain(256);
    let out = run_text(&mut c, &["produce", "events", "--key", "k1"], "a\nb\n").unwrap();
    let p = serpentlog::testing::partition_for_key(b"k1", 4);
    assert_eq!(out, format!("produced 2 records to events partition {p} offsets 0..=1\n"));
    assert_eq!(engine.borrow().values("events", p).len(), 2);
}

#[test]
fn generated_load_is_batched_and_checked_in_order() {
    let (mut c, engine) = setup(256);
    let out =
        run_text(&mut c, &["produce", "events", "--partition", "3", "--count", "500", "--size", "20"], "")
            .unwrap();
    assert_eq!(out, "produced 500 records to events partition 3 offsets 0..=499\n");
    let requests = c.transport().requests;
    assert!(requests < 60, "{requests} requests for 500 records: not batched");
    assert_eq!(engine.borrow().values("events", 3)[499], b"rec 0000000500......");
    let out = run_text(&mut c, &["consume", "events", "--partition", "3", "--sequence"], "").unwrap();
    assert_eq!(out.lines().count(), 500);
    assert_eq!(out.lines().last(), Some("offset 499: counter 500"));
    // A gap is reported.
    engine.borrow_mut().drop_before("events", 3, 0);
    let mut broken = engine.borrow().clone();
    broken.produce("events", Placement::Partition(3), None, &[b"rec 0000000007"], 0).unwrap();
    *engine.borrow_mut() = broken;
    let e = run_text(&mut c, &["consume", "events", "--partition", "3", "--sequence"], "").unwrap_err();
    assert!(e.0.contains("expected counter 501, got 7"), "{e}");
    assert!(run_text(&mut c, &["produce", "events", "--count", "1", "--size", "4"], "")
        .unwrap_err()
        .0
        .contains("at least 14"));
}

#[test]
fn consume_count_and_group_resume_exactly() {
    let (mut c, _engine) = setup(512);
    run_text(&mut c, &["produce", "sensor"], "r0\nr1\nr2\nr3\nr4\n").unwrap();
    let out = run_text(&mut c, &["consume", "sensor", "--group", "g", "--count", "2"], "").unwrap();
    assert_eq!(out, "offset 0: r0\noffset 1: r1\n");
    assert_eq!(
        c.committed("g", "sensor", 0).unwrap(),
        Some(2),
        "the commit stops at the last record printed"
    );
    let out = run_text(&mut c, &["consume", "sensor", "--group", "g"], "").unwrap();
    assert_eq!(out, "offset 2: r2\noffset 3: r3\noffset 4: r4\n");
    let out = run_text(&mut c, &["consume", "sensor", "--group", "g"], "").unwrap();
    assert_eq!(out, "");
}

#[test]
fn follow_waits_for_new_records() {
    let (mut c, engine) = setup(256);
    let cli = Cli::try_parse_from(["serpentlog", "consume", "sensor", "--follow", "--count", "3"]).unwrap();
    let mut idles = 0;
    let mut idle = || {
        idles += 1;
        engine
            .borrow_mut()
            .produce("sensor", Placement::Partition(0), None, &[format!("tick {idles}").as_bytes()], 0)
            .unwrap();
    };
    let mut out = Vec::new();
    run(&cli.command, &mut c, &mut BufReader::new(&b""[..]), &mut out, &mut idle).unwrap();
    assert_eq!(String::from_utf8(out).unwrap(), "offset 0: tick 1\noffset 1: tick 2\noffset 2: tick 3\n");
}

#[test]
fn topics_and_bench() {
    let (mut c, _engine) = setup(1024);
    run_text(&mut c, &["produce", "events", "--partition", "1"], "x\n").unwrap();
    let out = run_text(&mut c, &["topics"], "").unwrap();
    assert_eq!(
        out,
        "topic sensor partition 0 start 0 end 0\ntopic events partition 0 start 0 end 0\n\
         topic events partition 1 start 0 end 1\ntopic events partition 2 start 0 end 0\n\
         topic events partition 3 start 0 end 0\n"
    );
    let mut out = Vec::new();
    let (produce, consume) = bench(&mut c, "events", 1, 2000, 100, &mut out).unwrap();
    assert_eq!((produce.records, consume.records), (2000, 2000));
    let out = String::from_utf8(out).unwrap();
    assert!(out.starts_with("bench produce: 2000 records of 100 bytes in "), "{out}");
    assert!(out.contains("\nbench consume: 2000 records in "), "{out}");
}

#[test]
fn errors_say_what_to_do() {
    let (mut c, _engine) = setup(128);
    let e = run_text(&mut c, &["consume", "nope"], "").unwrap_err();
    assert!(e.0.contains("unknown topic `nope`") && e.0.contains("serpentlog topics"), "{e}");
    let e = run_text(&mut c, &["consume", "events", "--partition", "7"], "").unwrap_err();
    assert!(e.0.contains("has no partition 7"), "{e}");
    let e = run_text(&mut c, &["consume", "sensor", "--from", "5"], "").unwrap_err();
    assert!(e.0.contains("offset out of range"), "{e}");
    let long = "x".repeat(200);
    let e = run_text(&mut c, &["produce", "sensor"], &long).unwrap_err();
    assert!(e.0.contains("a record of 200 bytes does not fit"), "{e}");
    c.transport().silent = true;
    let e = run_text(&mut c, &["topics"], "").unwrap_err();
    assert!(e.0.contains("no answer from the broker"), "{e}");
}

#[test]
fn rendering() {
    assert_eq!(render(b"plain text\twith tab"), "plain text\twith tab");
    assert_eq!(render(&[0, 1, 0xff]), "0x0001ff");
    assert_eq!(render(b"bell\x07"), "0x62656c6c07");
    assert_eq!(render(b""), "");
}

#[test]
fn arguments() {
    assert!(Cli::try_parse_from(["serpentlog", "produce", "t", "--key", "k", "--partition", "1"]).is_err());
    let cli = Cli::try_parse_from(["serpentlog", "--client", "rt2", "topics"]).unwrap();
    assert_eq!((cli.client.as_str(), cli.command), ("rt2", Command::Topics));
    assert_eq!(timing(0).attempts, 3);
    assert!(timing(2000).waits_per_attempt > timing(0).waits_per_attempt);
}
