//! `serpentlog-broker`: the SerpentLog broker as a real-time partition.
//!
//! - Its log lives in the partition's persistent region (`persistent SIZE` in the table),
//!   which the health monitor's restarts do not scrub: at start the broker recovers it
//!   (CRC scan, torn tail dropped) and says what it found.
//! - Its topics are declared in the partition's `args` (see `serpentlog::config`).
//! - Every client has its own channel pair (`<client>_req`, `<client>_resp`); the broker
//!   serves them in turn, one request each per round, so a flooding client cannot starve
//!   another. A client whose response channel is full keeps its answer until there is room
//!   and is not read meanwhile.
//! - The data path makes no hypercall: the broker polls its request channels and reads
//!   the clock from the TSC.
#![forbid(unsafe_code)]
#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec;
use alloc::vec::Vec;

use rt_partition::port::{PortError, QueuingReader, QueuingWriter};
use rt_partition::{println, time, BootInfo};
use serpentlog::engine::{Broker, Engine};
use serpentlog::serve::Server;
use serpentlog_partitions::clients::{self, Endpoint};
use serpentlog_partitions::options;

rt_partition::entry!(main);

/// Idle rounds between retention passes (a round with no request costs a few hundred
/// instructions, so this is a few milliseconds of idling).
const RETENTION_EVERY_IDLE_ROUNDS: u64 = 10_000;
/// Print a progress line every this many appended records.
const PROGRESS_EVERY: u64 = 2_000;
/// Requests served between two looks at the progress.
const PROGRESS_CHECK: u64 = 64;

/// One client's channel pair and the answer it has not taken yet.
struct Client {
    name: alloc::string::String,
    requests: QueuingReader,
    responses: QueuingWriter,
    request: Vec<u8>,
    response: Vec<u8>,
    /// Length of an answer waiting for room in `responses`.
    pending: Option<usize>,
    served: u64,
    errors: u64,
}

fn now_ms() -> u64 {
    time::now_ns() / 1_000_000
}

/// Stops here for good, saying why (a broker that cannot serve must not pretend to).
fn give_up(why: core::fmt::Arguments<'_>) -> ! {
    println!("serpentlog: cannot start: {why}");
    loop {
        time::sleep_ns(1_000_000_000);
    }
}

fn main(bi: &'static BootInfo) -> ! {
    println!("serpentlog: broker {} starting (restart {})", bi.name(), bi.restart_count);
    let args = options::split(bi.args()).unwrap_or_else(|e| give_up(format_args!("args: {e}")));
    let topics =
        serpentlog::config::parse(&args.topics_text).unwrap_or_else(|e| give_up(format_args!("args: {e}")));
    let region = rt_partition::persistent::region(bi).unwrap_or_else(|| {
        give_up(format_args!("no persistent region: give the partition `persistent SIZE`"))
    });
    let config = serpentlog::config::broker_config(&topics, region.len())
        .unwrap_or_else(|e| give_up(format_args!("{e}")));
    let started = time::rdtsc();
    let (mut broker, recovery) =
        Broker::open(config, region, now_ms()).unwrap_or_else(|e| give_up(format_args!("{e}")));
    let ticks = time::rdtsc().wrapping_sub(started);
    match recovery.formatted {
        Some(why) => println!("serpentlog: log formatted ({why:?}), {} topic(s)", broker.topic_count()),
        None => println!(
            "serpentlog: log recovered: {} records in {} batches, {} segments, {} committed offsets, {} producers, {} bytes dropped, {ticks} TSC ticks",
            recovery.records,
            recovery.batches,
            recovery.segments,
            recovery.committed_offsets,
            recovery.producers,
            recovery.bytes_dropped
        ),
    }
    for t in (0..broker.topic_count()).filter_map(|i| broker.topic(i)) {
        let ends: Vec<_> = (0..t.partitions).filter_map(|p| broker.offsets(t.name, p).ok()).collect();
        println!("serpentlog: topic {} partitions {} offsets {:?}", t.name, t.partitions, ends);
    }

    let mut clients = open_clients(bi);
    println!("serpentlog: serving {} client(s)", clients.len());
    let mut server = Server::new();
    let crash_after = args.crash_after.filter(|_| bi.restart_count == 0);
    // Records appended since start: the log's ends now minus at start, read after every
    // request only when the crash hook needs it, else every PROGRESS_CHECK requests.
    let at_start = broker_end_sum(&broker);
    let (mut served, mut next_progress, mut idle_rounds) = (0u64, PROGRESS_EVERY, 0u64);
    // TSC ticks inside `serve` (Bochs: instructions): decoding, the engine, encoding.
    let mut serve_ticks = 0u64;
    loop {
        let mut busy = false;
        for c in clients.iter_mut() {
            if serve_one(c, &mut server, &mut broker, &mut serve_ticks) {
                busy = true;
                served += 1;
                if crash_after.is_some() || served % PROGRESS_CHECK == 0 {
                    let appended = broker_end_sum(&broker).saturating_sub(at_start);
                    if crash_after.is_some_and(|n| appended >= n) {
                        panic!("serpentlog: crash_after reached ({appended} records appended)");
                    }
                    if appended >= next_progress {
                        println!(
                            "serpentlog: {appended} records appended since start, {served} requests served, {} TSC ticks serving per record appended",
                            serve_ticks / appended.max(1)
                        );
                        next_progress = appended + PROGRESS_EVERY;
                    }
                }
            }
        }
        if busy {
            idle_rounds = 0;
        } else {
            idle_rounds += 1;
            if idle_rounds % RETENTION_EVERY_IDLE_ROUNDS == 0 {
                let dropped = broker.enforce_retention(now_ms());
                if dropped > 0 {
                    println!("serpentlog: retention dropped {dropped} segment(s)");
                }
            }
            core::hint::spin_loop();
        }
    }
}

/// Sum of every partition's end offset: how many records the log has ever taken.
fn broker_end_sum(broker: &Broker<'_>) -> u64 {
    (0..broker.topic_count())
        .filter_map(|i| broker.topic(i))
        .flat_map(|t| (0..t.partitions).map(move |p| (t.name, p)))
        .filter_map(|(name, p)| broker.offsets(name, p).ok())
        .map(|(_, end)| end)
        .fold(0, u64::saturating_add)
}

fn open_clients(bi: &'static BootInfo) -> Vec<Client> {
    let endpoints: Vec<_> = bi
        .channels()
        .iter()
        .map(|c| Endpoint {
            name: c.name(),
            queuing: c.kind == u32::from(rt_partition::hallows_abi::table::CHANNEL_QUEUING),
            writer: c.is_writer != 0,
        })
        .collect();
    let (pairs, unused) = clients::pairs(&endpoints);
    for name in unused {
        println!("serpentlog: channel {name} is not a client pair (<client>_req read, <client>_resp written): unused");
    }
    let mut out = Vec::new();
    for p in pairs {
        let opened =
            QueuingReader::open(bi, &p.request).and_then(|r| Ok((r, QueuingWriter::open(bi, &p.response)?)));
        match opened {
            Ok((requests, responses)) => {
                let size = requests.msg_size().max(responses.msg_size());
                println!("serpentlog: client {} ({} B messages)", p.client, responses.msg_size());
                out.push(Client {
                    name: p.client,
                    request: vec![0; size],
                    response: vec![0; responses.msg_size()],
                    requests,
                    responses,
                    pending: None,
                    served: 0,
                    errors: 0,
                });
            }
            Err(e) => println!("serpentlog: client {}: cannot open its channels: {e:?}", p.client),
        }
    }
    out
}

/// Serves at most one request of `c`; returns whether there was anything to do.
fn serve_one(c: &mut Client, server: &mut Server, broker: &mut Broker<'_>, serve_ticks: &mut u64) -> bool {
    if let Some(len) = c.pending {
        match c.responses.send(&c.response[..len]) {
            Ok(()) => c.pending = None,
            Err(PortError::Full) => return false,
            Err(e) => return report(c, "response channel", e),
        }
    }
    let len = match c.requests.receive(&mut c.request) {
        Ok(Some(len)) => len,
        Ok(None) => return false,
        Err(e) => return report(c, "request channel", e),
    };
    let started = time::rdtsc();
    let answer = server.serve(broker, &c.request[..len], now_ms(), &mut c.response);
    *serve_ticks += time::rdtsc().wrapping_sub(started);
    c.served += 1;
    match c.responses.send(&c.response[..answer]) {
        Ok(()) => {}
        Err(PortError::Full) => c.pending = Some(answer),
        Err(e) => {
            report(c, "response channel", e);
        }
    }
    true
}

/// A client's channel misbehaved (its peer wrote garbage into the shared pages): counted
/// and reported now and then; the broker and the other clients go on.
fn report(c: &mut Client, what: &str, e: PortError) -> bool {
    c.errors += 1;
    if c.errors.is_power_of_two() {
        println!(
            "serpentlog: client {}: {what}: {e:?} ({} errors, {} requests served)",
            c.name, c.errors, c.served
        );
    }
    true
}
