//! `serpentlog-client`: an RT partition that uses SerpentLog through the client library
//! (the same code Linux's `serpentlog` CLI runs), over its channel pair `<name>_req` /
//! `<name>_resp`. What it does is its args:
//!
//! - `produce TOPIC [every MS] [count N]`: an example producer: every MS milliseconds
//!   (default 10) one reading, numbered like generated load (`rec 0000000001 t=...`),
//!   as an idempotent producer, so a retry after a broker restart is appended once.
//! - `consume TOPIC [group G] [expect N]`: follows partition 0 from the group's committed
//!   offset (or the oldest record), checks that the values are generated ones numbered
//!   1, 2, 3, ... and says so every 2,000 records and when N have arrived.
#![forbid(unsafe_code)]
#![no_std]
#![no_main]

extern crate alloc;

use alloc::format;
use alloc::string::String;

use rt_partition::port::{PortError, QueuingReader, QueuingWriter};
use rt_partition::{println, time, BootInfo};
use serpentlog::client::{Client, ClientError, Consumer, StartAt, Timing, Transport};
use serpentlog::engine::Placement;
use serpentlog::load::{self, OrderCheck};

rt_partition::entry!(main);

/// TSC ticks one [`Transport::wait`] spins: short, so an answer is seen soon after the
/// broker's window writes it, and no hypercall (the data path makes no VM exit).
const WAIT_TICKS: u64 = 2_000;
/// Print a progress line every this many records consumed.
const PROGRESS_EVERY: u64 = 2_000;

/// The partition's channel pair to the broker.
struct Channels {
    requests: QueuingWriter,
    responses: QueuingReader,
}

impl Transport for Channels {
    type Error = PortError;

    fn frame_capacity(&self) -> usize {
        self.requests.msg_size().min(self.responses.msg_size())
    }

    fn try_send(&mut self, frame: &[u8]) -> Result<bool, PortError> {
        match self.requests.send(frame) {
            Ok(()) => Ok(true),
            Err(PortError::Full) => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn try_recv(&mut self, buf: &mut [u8]) -> Result<Option<usize>, PortError> {
        self.responses.receive(buf)
    }

    fn wait(&mut self) {
        let until = time::rdtsc().wrapping_add(WAIT_TICKS);
        while time::rdtsc() < until {
            core::hint::spin_loop();
        }
    }
}

fn idle_forever(why: core::fmt::Arguments<'_>) -> ! {
    println!("serpentlog-client: {why}");
    loop {
        time::sleep_ns(1_000_000_000);
    }
}

fn main(bi: &'static BootInfo) -> ! {
    let name = bi.name();
    let (req, resp) = (format!("{name}_req"), format!("{name}_resp"));
    let channels = QueuingWriter::open(bi, &req)
        .and_then(|requests| Ok(Channels { requests, responses: QueuingReader::open(bi, &resp)? }))
        .unwrap_or_else(|e| idle_forever(format_args!("cannot open {req}/{resp}: {e:?}")));
    // Generous timing: the broker may be restarting (scrubbing and reloading in its own
    // windows) for a while; fetches and idempotent produces are retried meanwhile.
    let timing = Timing { waits_per_attempt: 20_000, attempts: 50 };
    let mut client = Client::new(channels).with_timing(timing);
    let mut words = bi.args().split_whitespace();
    match (words.next(), words.next()) {
        (Some("produce"), Some(topic)) => {
            // A producer id of its own per run of this partition: sequences restart with it.
            let id = (u64::from(bi.partition_id) << 32) | u64::from(bi.restart_count);
            produce(&mut client.with_producer_id(id), topic, Options::parse(words))
        }
        (Some("consume"), Some(topic)) => consume(&mut client, topic, Options::parse(words)),
        _ => idle_forever(format_args!(
            "args must be `produce TOPIC [every MS] [count N]` or `consume TOPIC [group G] [expect N]`, not {:?}",
            bi.args()
        )),
    }
}

#[derive(Default)]
struct Options {
    every_ms: Option<u64>,
    count: Option<u64>,
    group: Option<String>,
    expect: Option<u64>,
}

impl Options {
    fn parse<'a>(mut words: impl Iterator<Item = &'a str>) -> Self {
        let mut o = Options::default();
        while let (Some(key), Some(value)) = (words.next(), words.next()) {
            match key {
                "every" => o.every_ms = value.parse().ok(),
                "count" => o.count = value.parse().ok(),
                "group" => o.group = Some(String::from(value)),
                "expect" => o.expect = value.parse().ok(),
                other => println!("serpentlog-client: unknown option {other} ignored"),
            }
        }
        o
    }
}

fn produce(client: &mut Client<Channels>, topic: &str, o: Options) -> ! {
    let every_ns = o.every_ms.unwrap_or(10).max(1) * 1_000_000;
    let count = o.count.unwrap_or(u64::MAX);
    let mut value = [0u8; 64];
    let mut next = time::now_ns();
    println!("serpentlog-client: producing a reading every {} ms to {topic}", every_ns / 1_000_000);
    let mut n = 0u64;
    while n < count {
        next += every_ns;
        time::sleep_until(next);
        let len = load::generated(n + 1, load::NUMBERED_BYTES, &mut value);
        let stamp = format!(" t={}", time::now_ns() / 1_000);
        let end = (len + stamp.len()).min(value.len());
        value[len..end].copy_from_slice(&stamp.as_bytes()[..end - len]);
        match client.produce(topic, Placement::Partition(0), &[&value[..end]]) {
            Ok(appended) => {
                n += 1;
                if n == 1 || n.is_multiple_of(500) {
                    println!("serpentlog-client: reading {n} at offset {}", appended.base_offset);
                }
            }
            Err(e) => println!("serpentlog-client: produce: {e}"),
        }
    }
    idle_forever(format_args!("{count} readings produced"))
}

fn consume(client: &mut Client<Channels>, topic: &str, o: Options) -> ! {
    let consumer = loop {
        match Consumer::new(client, topic, 0, o.group.as_deref(), StartAt::Earliest) {
            Ok(c) => break c,
            Err(e) => {
                println!("serpentlog-client: cannot start consuming {topic}: {e}");
                time::sleep_ns(100_000_000);
            }
        }
    };
    let mut consumer = consumer;
    println!("serpentlog-client: consuming {topic} from offset {}", consumer.position());
    let mut check = OrderCheck::default();
    let (mut consumed, mut next_progress, mut done) = (0u64, PROGRESS_EVERY, false);
    // TSC ticks (Bochs: instructions) in fetches that brought records, waits for the
    // broker's answer included.
    let mut fetch_ticks = 0u64;
    loop {
        let started = time::rdtsc();
        let polled = consumer.poll(client, |r| {
            check.take(r.value);
        });
        if matches!(polled, Ok(n) if n > 0) {
            fetch_ticks += time::rdtsc().wrapping_sub(started);
        }
        match polled {
            Ok(0) => {
                time::sleep_ns(1_000_000);
                continue;
            }
            Ok(n) => consumed += n as u64,
            Err(ClientError::TimedOut) => {
                println!("serpentlog-client: no answer from the broker yet; retrying");
                continue;
            }
            Err(e) => {
                println!("serpentlog-client: fetch at {}: {e}", consumer.position());
                time::sleep_ns(100_000_000);
                continue;
            }
        }
        if o.group.is_some() {
            let _ = consumer.commit(client);
        }
        if consumed >= next_progress {
            println!(
                "serpentlog-client: {consumed} records consumed, in order: {} ({} gaps, {} duplicates)",
                check.clean(),
                check.gaps,
                check.duplicates
            );
            next_progress += PROGRESS_EVERY;
        }
        if !done && o.expect.is_some_and(|n| consumed >= n) {
            done = true;
            println!(
                "serpentlog-client: all {consumed} records of {topic} consumed: last {}, {} gaps, {} duplicates, {} foreign, next offset {}, {} TSC ticks per record from fetch request to answer (waits for the broker's window included)",
                check.seen,
                check.gaps,
                check.duplicates,
                check.foreign,
                consumer.position(),
                fetch_ticks / consumed.max(1)
            );
        }
    }
}
