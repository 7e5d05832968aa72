//! Host benchmark of SerpentLog's transports (issue 11): the same broker and client
//! behind the shared-memory channel rings and behind Unix-domain sockets, in one run.
//!
//! - **ring**: a broker thread owns the [`Broker`] (over a vector) and polls the request
//!   rings of two channel pairs (`hallows-ring` queuing rings in host memory, 4 KiB
//!   messages, depth 16, as a table's channel would be); a producer thread and a consumer
//!   thread each have a [`Client`] over their own pair. Every party spins while it waits
//!   (`spin_loop`, then `yield_now` once it has waited a while, so that the two clients
//!   can share a CPU).
//! - **socket**: the same broker code in a child process (this executable, started again
//!   with [`CHILD_ARG`]) answering requests from two `SOCK_SEQPACKET` Unix-domain sockets
//!   (one frame per packet, 4 KiB at most); the same producer and consumer threads, each
//!   with a [`Client`] over its own socket. Everybody blocks while waiting (`poll`), as a
//!   Linux program would.
//!
//! Placement (variants, run alternately): **ring** pinned (broker thread on CPU 1, both
//! clients on CPU 0: the deployment's shape on two CPUs, where the broker partition has a
//! core of its own and the Linux programs share another), **socket** pinned the same way,
//! and **socket, unpinned** (what a Linux user gets: the scheduler may put a client and
//! the broker on one CPU, where waking a blocked process is cheaper than across CPUs). The
//! ratios take the better socket variant for each figure. `SERPENTLOG_BENCH_PIN=0` runs
//! the ring unpinned too (three spinning threads on two shared CPUs: mostly a measure of
//! the scheduler).
//!
//! Per record size (100 B, 1 KiB): the engine alone first (**direct**: one thread produces
//! the records and fetches them back through `Client` calls answered in place, no
//! transport: the ceiling), then alternating trials of the variants, each on a fresh
//! broker, in three phases:
//! 1. **throughput**: the producer appends `records` values in batches (as many as one
//!    4 KiB request takes, at most 32) as fast as the broker acknowledges them while the
//!    consumer fetches; records/s = records / (producer's first produce → consumer seeing
//!    the last one). The latency of these records (*under load*: mostly how far the
//!    consumer lags) is reported too.
//! 2. **paced**: one record per produce every `interval`; produce → consume latency = the
//!    consumer's clock when its fetch returns the record minus the producer's clock just
//!    before the `produce` call, carried in the value (bytes 14..22, nanoseconds since a
//!    process-wide epoch; both clients are threads of this process for both transports).
//!    The `produce` calls' own durations are the *produce call* figures.
//! 3. **lockstep**: one thread drives both clients: every `interval` it produces one
//!    record, then fetches until it has it (the latency). No thread switch between
//!    producer and consumer: what is left is the transport and the broker.
//!
//! Values are `load::generated` ones; the consumer runs every value through
//! `load::OrderCheck` and the run fails unless all arrived in order, once each.
//!
//! `cargo bench -p serpentlog --bench transport` (`scripts/bench-serpentlog` prints the
//! table). Environment: `SERPENTLOG_BENCH_SCALE` (default 1.0) multiplies the record
//! counts, `SERPENTLOG_BENCH_TRIALS` (default 3) sets the trials per variant and size,
//! `SERPENTLOG_BENCH_PIN=0` leaves thread placement to the scheduler, and
//! `SERPENTLOG_BENCH_FIFO=1` runs every party under SCHED_FIFO (see [`realtime`]).
//! Without `--bench` (`cargo test --benches`) it makes a short smoke run (1 % of the
//! records, one trial).

use std::hint::spin_loop;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::process::{Command, ExitCode};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use hallows_ring::{Geometry, QueueReader, QueueWriter, Region, RingError};
use serpentlog::client::{Client, Consumer, StartAt, Timing, Transport};
use serpentlog::config::{broker_config, parse};
use serpentlog::engine::{Broker, Placement};
use serpentlog::load::{generated, number_of, OrderCheck, NUMBERED_BYTES};
use serpentlog::protocol::PRODUCE_RECORD_OVERHEAD;
use serpentlog::serve::Server;

/// The argument that makes this executable the socket broker (then two socket fds).
const CHILD_ARG: &str = "--serpentlog-socket-broker";
/// A channel's message size and depth.
const MSG_SIZE: u32 = 4096;
const DEPTH: u32 = 16;
const TOPIC: &str = "bench";
/// Records per produce at most (fewer when a 4 KiB request cannot hold that many).
const MAX_BATCH: usize = 32;
/// The broker's storage: large enough to keep every record of a run.
const BROKER_REGION_BYTES: usize = 160 << 20;
/// An idle ring party's wait: spins, then yields (see `spin_then_yield`).
const SPINS_BEFORE_YIELD: u32 = 2_000;
/// The consumer's: fetches that found nothing before it yields.
const EMPTY_POLLS_BEFORE_YIELD: u32 = 8;
/// A run fails when the consumer sees nothing new for this long.
const STALL: Duration = Duration::from_secs(30);
/// Where the producer's timestamp sits in a value (after the generated number).
const STAMP: std::ops::Range<usize> = NUMBERED_BYTES..NUMBERED_BYTES + 8;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some(CHILD_ARG) {
        return match socket_broker_child(&args[2..]) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("serpentlog socket broker: {e}");
                ExitCode::FAILURE
            }
        };
    }
    // `cargo bench` passes `--bench`; `cargo test --benches` does not: a smoke run then.
    let full = args.iter().any(|a| a == "--bench");
    match run_all(full) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("serpentlog transport bench: FAILED: {e}");
            ExitCode::FAILURE
        }
    }
}

/// What one run does: counts and the paced phase's interval.
#[derive(Clone, Copy, Debug)]
struct Plan {
    size: usize,
    records: u64,
    paced: u64,
    interval: Duration,
}

/// What one run measured.
#[derive(Debug)]
struct Outcome {
    records_per_s: f64,
    batch: usize,
    latencies: Latencies,
}

/// Latencies in nanoseconds, each sorted.
#[derive(Debug)]
struct Latencies {
    /// Produce -> consume of the throughput phase's records.
    loaded: Vec<u64>,
    /// Produce -> consume of the paced phase's records.
    paced: Vec<u64>,
    /// The paced phase's `produce` calls (request out, answer in).
    round_trips: Vec<u64>,
    /// Produce -> fetched of the lockstep phase (one thread drives both clients).
    lockstep: Vec<u64>,
}

fn env_number(name: &str, default: f64) -> f64 {
    std::env::var(name).ok().and_then(|s| s.parse().ok()).unwrap_or(default)
}

fn run_all(full: bool) -> Result<(), String> {
    let scale = env_number("SERPENTLOG_BENCH_SCALE", if full { 1.0 } else { 0.01 });
    let trials = env_number("SERPENTLOG_BENCH_TRIALS", if full { 3.0 } else { 1.0 }).max(1.0) as usize;
    let count = |n: f64| ((n * scale) as u64).max(100);
    let interval = Duration::from_micros(200);
    let plans = [
        Plan { size: 100, records: count(100_000.0), paced: count(3_000.0), interval },
        Plan { size: 1024, records: count(20_000.0), paced: count(3_000.0), interval },
    ];
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let variants = variants();
    println!(
        "SerpentLog host benchmark: {cpus} CPUs; channel {MSG_SIZE} B x {DEPTH}; batches of up to \
         {MAX_BATCH} records; {trials} trials per variant, alternating; pinned: broker on CPU \
         {BROKER_CPU}, clients on CPU {CLIENT_CPU}; {}",
        if realtime() { "SCHED_FIFO" } else { "normal scheduling" }
    );
    for plan in plans {
        // Every record of a trial stays in the log (a consumer left behind by retention
        // would fail the run): value, length prefix and a share of its batch's header.
        let bytes = (plan.records + 2 * plan.paced) * (plan.size as u64 + 64);
        if bytes > BROKER_REGION_BYTES as u64 / 2 {
            return Err(format!("{bytes} bytes of records per trial: lower SERPENTLOG_BENCH_SCALE"));
        }
    }
    let mut rows = Vec::new();
    for plan in plans {
        let direct = run_direct(plan).map_err(|e| format!("direct, {} B: {e}", plan.size))?;
        println!("{:>16} {:>4} B: {direct:.0} records/s (one thread, no transport)", "direct", plan.size);
        let mut outcomes: Vec<Vec<Outcome>> = variants.iter().map(|_| Vec::new()).collect();
        for _ in 0..trials {
            for (v, outcome) in variants.iter().zip(&mut outcomes) {
                let o = v.run(plan).map_err(|e| format!("{}, {} B: {e}", v.name(), plan.size))?;
                report(&v.name(), plan, &o);
                outcome.push(o);
            }
        }
        rows.push((plan, direct, outcomes.into_iter().map(Outcome::merged).collect::<Vec<_>>()));
    }
    println!();
    println!(
        "records/s: median of the trials. Latencies p50 / p99 over all trials' records: *under load* \
         (the throughput phase), *paced* (one record per produce every {} us, producer and consumer \
         threads), *lockstep* (one thread produces one record every {} us, then fetches it), \
         *produce call* (the paced phase's produce round trips).",
        interval.as_micros(),
        interval.as_micros()
    );
    println!();
    println!("| record | transport | records/s | under load | paced | lockstep | produce call |");
    println!("|---|---|---|---|---|---|---|");
    for (plan, direct, merged) in &rows {
        println!("| {} B | direct (one thread, no transport) | {direct:.0} | | | | |", plan.size);
        for (v, o) in variants.iter().zip(merged) {
            let l = &o.latencies;
            println!(
                "| {} B | {} | {:.0} | {} | {} | {} | {} |",
                plan.size,
                v.name(),
                o.records_per_s,
                p50_p99(&l.loaded),
                p50_p99(&l.paced),
                p50_p99(&l.lockstep),
                p50_p99(&l.round_trips)
            );
        }
    }
    println!();
    println!(
        "Ring (the first variant) against the best socket variant for each figure (highest \
         records/s, lowest latency):"
    );
    println!();
    println!(
        "| record | records/s ring / socket (goal >= 3) | p99 socket / ring (goal >= 5): paced | lockstep \
         | p50 socket / ring: paced | lockstep |"
    );
    println!("|---|---|---|---|---|---|");
    for (plan, _, merged) in &rows {
        let ring = &merged[0];
        let sockets: Vec<&Outcome> = variants
            .iter()
            .zip(merged)
            .filter(|(v, _)| v.carrier == Carrier::Socket)
            .map(|(_, o)| o)
            .collect();
        let best_rate = sockets.iter().map(|o| o.records_per_s).fold(0.0, f64::max);
        let ratio = |of: fn(&Latencies) -> &Vec<u64>, p: usize| {
            let best = sockets.iter().map(|o| percentile(of(&o.latencies), p)).min().unwrap_or(0);
            best as f64 / percentile(of(&ring.latencies), p).max(1) as f64
        };
        println!(
            "| {} B | {:.2}x | {:.2}x | {:.2}x | {:.2}x | {:.2}x |",
            plan.size,
            ring.records_per_s / best_rate,
            ratio(|l| &l.paced, 99),
            ratio(|l| &l.lockstep, 99),
            ratio(|l| &l.paced, 50),
            ratio(|l| &l.lockstep, 50),
        );
    }
    Ok(())
}

/// What carries the frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Carrier {
    Ring,
    Socket,
}

/// One transport in one placement.
#[derive(Clone, Copy, Debug)]
struct Variant {
    carrier: Carrier,
    cpus: Cpus,
}

impl Variant {
    fn name(&self) -> String {
        let carrier = match self.carrier {
            Carrier::Ring => "ring",
            Carrier::Socket => "socket",
        };
        match self.cpus {
            Cpus::Pinned => carrier.to_string(),
            Cpus::Free => format!("{carrier}, unpinned"),
        }
    }

    fn run(&self, plan: Plan) -> Result<Outcome, String> {
        match self.carrier {
            Carrier::Ring => run_ring(plan, self.cpus),
            Carrier::Socket => run_socket(plan, self.cpus),
        }
    }
}

/// The ring pinned (its deployment: the broker partition on a core of its own) against
/// the socket pinned the same way and left to the scheduler (what a Linux user gets:
/// the scheduler may put a client and the broker on one CPU, where a wake-up is cheaper
/// than across CPUs). `SERPENTLOG_BENCH_PIN=0`: both unpinned.
fn variants() -> Vec<Variant> {
    let v = |carrier, cpus| Variant { carrier, cpus };
    if std::env::var("SERPENTLOG_BENCH_PIN").is_ok_and(|p| p == "0") {
        vec![v(Carrier::Ring, Cpus::Free), v(Carrier::Socket, Cpus::Free)]
    } else {
        vec![v(Carrier::Ring, Cpus::Pinned), v(Carrier::Socket, Cpus::Pinned), v(Carrier::Socket, Cpus::Free)]
    }
}

impl Outcome {
    /// Trials together: the median throughput, every latency sample.
    fn merged(trials: Vec<Outcome>) -> Self {
        let mut rates: Vec<f64> = trials.iter().map(|o| o.records_per_s).collect();
        rates.sort_by(f64::total_cmp);
        let all = |of: fn(&Latencies) -> &Vec<u64>| {
            let mut v: Vec<u64> = trials.iter().flat_map(|o| of(&o.latencies).iter().copied()).collect();
            v.sort_unstable();
            v
        };
        let latencies = Latencies {
            loaded: all(|l| &l.loaded),
            paced: all(|l| &l.paced),
            round_trips: all(|l| &l.round_trips),
            lockstep: all(|l| &l.lockstep),
        };
        Self { records_per_s: rates[rates.len() / 2], batch: trials[0].batch, latencies }
    }
}

fn report(name: &str, plan: Plan, o: &Outcome) {
    let l = &o.latencies;
    println!(
        "{name:>16} {:>4} B: {:.0} records/s ({} records, {} per produce); latency p50 / p99: under load {}, \
         paced {}, lockstep {}, produce call {} ({} records each); all in order",
        plan.size,
        o.records_per_s,
        plan.records,
        o.batch,
        p50_p99(&l.loaded),
        p50_p99(&l.paced),
        p50_p99(&l.lockstep),
        p50_p99(&l.round_trips),
        plan.paced,
    );
}

fn p50_p99(sorted: &[u64]) -> String {
    format!("{} / {}", micros(percentile(sorted, 50)), micros(percentile(sorted, 99)))
}

/// Where the parties run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cpus {
    /// The broker on `BROKER_CPU`, both clients on `CLIENT_CPU`: the deployment's shape
    /// on two CPUs (the broker partition has a core of its own, the Linux programs share
    /// another).
    Pinned,
    /// Anywhere: the scheduler decides.
    Free,
}

const BROKER_CPU: usize = 1;
const CLIENT_CPU: usize = 0;

/// `SERPENTLOG_BENCH_FIFO=1`: every party runs under SCHED_FIFO, ahead of the machine's
/// other (normal) processes, which is as close to a core of its own as a shared host
/// gets. Opt-in: spinning FIFO threads leave other work only what the kernel's real-time
/// throttling keeps back (5 % by default).
fn realtime() -> bool {
    std::env::var("SERPENTLOG_BENCH_FIFO").is_ok_and(|v| v == "1")
}

impl Cpus {
    /// The command-line word the broker process gets.
    fn word(self) -> &'static str {
        match self {
            Cpus::Pinned => "pinned",
            Cpus::Free => "free",
        }
    }

    /// Puts the calling thread on `cpu` (pinned) or on every CPU (free: undoes the
    /// pinning a thread inherited from its creator).
    fn place(self, cpu: usize) {
        // SAFETY: sysconf has no preconditions.
        let online = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) }.max(1) as usize;
        // SAFETY: a zeroed cpu_set_t is a valid empty set; CPU_SET and sched_setaffinity
        // only read and write it (0: the calling thread).
        unsafe {
            let mut set: libc::cpu_set_t = core::mem::zeroed();
            match self {
                Cpus::Pinned => libc::CPU_SET(cpu, &mut set),
                Cpus::Free => (0..online).for_each(|c| libc::CPU_SET(c, &mut set)),
            }
            if libc::sched_setaffinity(0, core::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
                eprintln!("warning: cannot place this thread ({self:?}, CPU {cpu})");
            }
        }
        if realtime() {
            let param = libc::sched_param { sched_priority: 10 };
            // SAFETY: sched_setscheduler only reads `param` (0: the calling thread).
            if unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) } != 0 {
                eprintln!("warning: cannot switch to SCHED_FIFO: {}", io::Error::last_os_error());
            }
        }
    }
}

fn percentile(sorted: &[u64], p: usize) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[(sorted.len() * p / 100).min(sorted.len() - 1)]
}

fn micros(ns: u64) -> String {
    format!("{:.1} us", ns as f64 / 1000.0)
}

// ---------------------------------------------------------------------------------------
// The broker, the same for both transports.

/// A fresh broker with one topic of one partition over `region`.
fn open_broker(region: &mut [u8]) -> Result<Broker<'_>, String> {
    let topics = parse(&format!("topic {TOPIC} partitions 1 segment 1MiB")).map_err(|e| e.to_string())?;
    let config = broker_config(&topics, region.len()).map_err(|e| format!("{e:?}"))?;
    let (broker, _) = Broker::open(config, region, 0).map_err(|e| format!("{e:?}"))?;
    Ok(broker)
}

/// The broker's side of one request: the same call whatever carried the frame.
struct BrokerCore<'a> {
    broker: Broker<'a>,
    server: Server,
    started: Instant,
    response: Vec<u8>,
}

impl<'a> BrokerCore<'a> {
    fn new(region: &'a mut [u8]) -> Result<Self, String> {
        Ok(Self {
            broker: open_broker(region)?,
            server: Server::new(),
            started: Instant::now(),
            response: vec![0; MSG_SIZE as usize],
        })
    }

    /// Answers `request`; the response is `self.response[..len]`.
    fn answer(&mut self, request: &[u8]) -> usize {
        let now_ms = self.started.elapsed().as_millis() as u64;
        self.server.serve(&mut self.broker, request, now_ms, &mut self.response)
    }
}

// ---------------------------------------------------------------------------------------
// Producer and consumer, the same for both transports.

/// A transport with the consumer's idle step between fetches that found nothing.
trait BenchTransport: Transport + Send {
    /// After a fetch that found nothing.
    fn idle(&mut self);

    /// After a fetch that found records.
    fn progress(&mut self) {}
}

/// A value's embedded producer timestamp.
fn stamp_of(value: &[u8]) -> Option<u64> {
    value.get(STAMP).map(|b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
}

fn nanos_since(epoch: Instant) -> u64 {
    epoch.elapsed().as_nanos() as u64
}

/// Produces values `1..=records` in batches, then `records+1..=records+paced` one at a
/// time every `interval`. Returns when it started, the records per produce and the paced
/// produce calls' durations (sorted).
fn produce<T: BenchTransport>(
    client: &mut Client<T>,
    plan: Plan,
    epoch: Instant,
) -> Result<(Instant, usize, Vec<u64>), String> {
    let placement = Placement::Partition(0);
    let per_record = PRODUCE_RECORD_OVERHEAD + plan.size;
    let batch = (client.batch_room(TOPIC, placement) / per_record).clamp(1, MAX_BATCH);
    let mut values = vec![vec![0u8; plan.size]; batch];
    let stamped = |value: &mut Vec<u8>, n: u64| {
        let len = generated(n, plan.size, value);
        value.truncate(len);
        value[STAMP].copy_from_slice(&nanos_since(epoch).to_le_bytes());
    };
    let started = Instant::now();
    let mut next = 1;
    while next <= plan.records {
        let k = batch.min((plan.records - next + 1) as usize);
        for (i, value) in values[..k].iter_mut().enumerate() {
            stamped(value, next + i as u64);
        }
        let slices: Vec<&[u8]> = values[..k].iter().map(Vec::as_slice).collect();
        client.produce(TOPIC, placement, &slices).map_err(|e| format!("produce: {e}"))?;
        next += k as u64;
    }
    let paced_start = Instant::now();
    let mut round_trips = Vec::with_capacity(plan.paced as usize);
    for i in 0..plan.paced {
        let due = paced_start + plan.interval * i as u32;
        if let Some(early) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(early);
        }
        stamped(&mut values[0], next + i);
        let sent = Instant::now();
        client.produce(TOPIC, placement, &[&values[0]]).map_err(|e| format!("paced produce: {e}"))?;
        round_trips.push(sent.elapsed().as_nanos() as u64);
    }
    round_trips.sort_unstable();
    Ok((started, batch, round_trips))
}

/// What the consumer thread hands back: when the throughput phase's last record arrived,
/// the latencies (sorted) of both phases, and the consumer to go on with.
struct Followed {
    throughput_end: Instant,
    loaded: Vec<u64>,
    paced: Vec<u64>,
    consumer: Consumer,
    check: OrderCheck,
}

/// Consumes every value the producer makes (both phases), checking their order.
fn consume<T: BenchTransport>(
    client: &mut Client<T>,
    plan: Plan,
    epoch: Instant,
) -> Result<Followed, String> {
    let total = plan.records + plan.paced;
    let mut consumer =
        Consumer::new(client, TOPIC, 0, None, StartAt::Offset(0)).map_err(|e| format!("consumer: {e}"))?;
    let mut check = OrderCheck::default();
    let (mut loaded, mut paced) = (Vec::with_capacity(plan.records as usize), Vec::new());
    let mut throughput_end = None;
    let mut last_progress = Instant::now();
    let mut missing_stamps = 0u64;
    while check.seen < total {
        let got = consumer
            .poll(client, |record| {
                let now = nanos_since(epoch);
                check.take(record.value);
                match (number_of(record.value), stamp_of(record.value)) {
                    (Some(n), Some(stamp)) if n <= plan.records => loaded.push(now.saturating_sub(stamp)),
                    (Some(_), Some(stamp)) => paced.push(now.saturating_sub(stamp)),
                    _ => missing_stamps += 1,
                }
            })
            .map_err(|e| format!("fetch: {e}"))?;
        if !check.clean() || missing_stamps > 0 {
            return Err(format!(
                "records out of order or damaged: {check:?}, {missing_stamps} without a stamp"
            ));
        }
        if throughput_end.is_none() && check.seen >= plan.records {
            throughput_end = Some(Instant::now());
        }
        if got > 0 {
            last_progress = Instant::now();
            client.transport().progress();
        } else if last_progress.elapsed() > STALL {
            return Err(format!("no new record for {STALL:?} after {} of {total}", check.seen));
        } else {
            client.transport().idle();
        }
    }
    loaded.sort_unstable();
    paced.sort_unstable();
    Ok(Followed {
        throughput_end: throughput_end.unwrap_or_else(Instant::now),
        loaded,
        paced,
        consumer,
        check,
    })
}

/// One thread drives both clients: every `plan.interval`, one record (number `first`,
/// then on) is produced, then fetched until it arrives; its latency runs from just before
/// the produce call to the fetch that returned it. Nothing but the transport and the
/// broker lies between the two (no thread switch between producer and consumer).
fn lockstep<T: BenchTransport>(
    producer: &mut Client<T>,
    consumer_client: &mut Client<T>,
    consumer: &mut Consumer,
    check: &mut OrderCheck,
    plan: Plan,
    first: u64,
    cpus: Cpus,
) -> Result<Vec<u64>, String> {
    cpus.place(CLIENT_CPU);
    let mut value = vec![0u8; plan.size];
    let mut latencies = Vec::with_capacity(plan.paced as usize);
    let started = Instant::now();
    for i in 0..plan.paced {
        let due = started + plan.interval * i as u32;
        if let Some(early) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(early);
        }
        let n = first + i;
        let len = generated(n, plan.size, &mut value);
        let sent = Instant::now();
        producer
            .produce(TOPIC, Placement::Partition(0), &[&value[..len]])
            .map_err(|e| format!("produce: {e}"))?;
        let mut arrived = false;
        while !arrived {
            let got = consumer
                .poll(consumer_client, |record| arrived |= check.take(record.value) && check.seen == n)
                .map_err(|e| format!("fetch: {e}"))?;
            if !check.clean() {
                return Err(format!("records out of order or damaged: {check:?}"));
            }
            if got == 0 && sent.elapsed() > STALL {
                return Err(format!("record {n} not fetched after {STALL:?}"));
            }
        }
        latencies.push(sent.elapsed().as_nanos() as u64);
    }
    latencies.sort_unstable();
    Ok(latencies)
}

/// Runs the producer and the consumer, each in a thread of its own over its own transport.
fn run_clients<T: BenchTransport>(
    producer: Client<T>,
    consumer: Client<T>,
    plan: Plan,
    cpus: Cpus,
) -> Result<Outcome, String> {
    let epoch = Instant::now();
    let (mut producer, mut consumer) = (producer, consumer);
    let (produced, consumed) = std::thread::scope(|s| {
        let p = s.spawn(|| {
            cpus.place(CLIENT_CPU);
            produce(&mut producer, plan, epoch)
        });
        let c = s.spawn(|| {
            cpus.place(CLIENT_CPU);
            consume(&mut consumer, plan, epoch)
        });
        (p.join(), c.join())
    });
    let (started, batch, round_trips) = produced.map_err(|_| "producer panicked".to_string())??;
    let mut followed = consumed.map_err(|_| "consumer panicked".to_string())??;
    let first = plan.records + plan.paced + 1;
    let lockstep = lockstep(
        &mut producer,
        &mut consumer,
        &mut followed.consumer,
        &mut followed.check,
        plan,
        first,
        cpus,
    )?;
    let seconds = followed.throughput_end.duration_since(started).as_secs_f64();
    let latencies = Latencies { loaded: followed.loaded, paced: followed.paced, round_trips, lockstep };
    Ok(Outcome { records_per_s: plan.records as f64 / seconds, batch, latencies })
}

// ---------------------------------------------------------------------------------------
// Direct: the engine's own cost, for scale.

/// The broker called in place: a request is answered as soon as it is sent.
struct DirectTransport<'a> {
    core: BrokerCore<'a>,
    answer: Option<usize>,
}

impl Transport for DirectTransport<'_> {
    type Error = core::convert::Infallible;

    fn frame_capacity(&self) -> usize {
        MSG_SIZE as usize
    }

    fn try_send(&mut self, frame: &[u8]) -> Result<bool, Self::Error> {
        self.answer = Some(self.core.answer(frame));
        Ok(true)
    }

    fn try_recv(&mut self, buf: &mut [u8]) -> Result<Option<usize>, Self::Error> {
        Ok(self.answer.take().inspect(|&len| buf[..len].copy_from_slice(&self.core.response[..len])))
    }

    fn wait(&mut self) {}
}

/// Records/s of one thread that produces `plan.records` values in batches, then fetches
/// them all back (checking their order), with no transport between it and the broker.
fn run_direct(plan: Plan) -> Result<f64, String> {
    let mut region = vec![0u8; BROKER_REGION_BYTES];
    let mut client = Client::new(DirectTransport { core: BrokerCore::new(&mut region)?, answer: None });
    let placement = Placement::Partition(0);
    let batch =
        (client.batch_room(TOPIC, placement) / (PRODUCE_RECORD_OVERHEAD + plan.size)).clamp(1, MAX_BATCH);
    let mut values = vec![vec![0u8; plan.size]; batch];
    let started = Instant::now();
    let mut next = 1;
    while next <= plan.records {
        let k = batch.min((plan.records - next + 1) as usize);
        for (i, value) in values[..k].iter_mut().enumerate() {
            generated(next + i as u64, plan.size, value);
        }
        let slices: Vec<&[u8]> = values[..k].iter().map(Vec::as_slice).collect();
        client.produce(TOPIC, placement, &slices).map_err(|e| format!("produce: {e}"))?;
        next += k as u64;
    }
    let mut consumer = Consumer::new(&mut client, TOPIC, 0, None, StartAt::Offset(0))
        .map_err(|e| format!("consumer: {e}"))?;
    let mut check = OrderCheck::default();
    while check.seen < plan.records {
        let got = consumer
            .poll(&mut client, |record| {
                check.take(record.value);
            })
            .map_err(|e| format!("fetch: {e}"))?;
        if got == 0 || !check.clean() {
            return Err(format!("fetched back {check:?} of {}", plan.records));
        }
    }
    Ok(plan.records as f64 / started.elapsed().as_secs_f64())
}

// ---------------------------------------------------------------------------------------
// Ring: shared-memory channel pairs between threads.

/// 64-byte aligned memory for one channel's region.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line([u8; 64]);

fn geometry() -> Geometry {
    Geometry::new(true, MSG_SIZE, DEPTH).expect("a valid channel geometry")
}

/// One channel's shared memory, alive for the whole run.
struct ChannelMemory {
    lines: Vec<Line>,
}

impl ChannelMemory {
    fn new() -> Self {
        Self { lines: vec![Line([0; 64]); geometry().region_bytes().div_ceil(64) as usize] }
    }

    fn region(&mut self) -> Region {
        // SAFETY: the lines outlive every endpoint built on them (the run's scope ends
        // before `ChannelMemory` is dropped) and are only touched through endpoints.
        unsafe { Region::new(self.lines.as_mut_ptr().cast(), self.lines.len() * 64) }
    }
}

/// Waits one step of a wait that has taken `idle` steps so far: spin (the peer is on
/// another CPU and usually answers within microseconds), then yield (whoever else is
/// runnable on this CPU, such as the other client, goes first). Never sleeps: the broker
/// stands for a partition polling on a core of its own.
fn spin_then_yield(idle: &mut u32) {
    wait_step(idle, SPINS_BEFORE_YIELD);
}

/// [`spin_then_yield`] with `spins` steps of spinning.
fn wait_step(idle: &mut u32, spins: u32) {
    *idle = idle.saturating_add(1);
    if *idle < spins {
        spin_loop();
    } else {
        std::thread::yield_now();
    }
}

/// The client's end of a channel pair.
struct RingTransport {
    requests: QueueWriter,
    responses: QueueReader,
    /// Waits for the current answer.
    idle: u32,
    /// Consecutive fetches that found nothing (the consumer's idle steps).
    empty_polls: u32,
}

impl Transport for RingTransport {
    type Error = RingError;

    fn frame_capacity(&self) -> usize {
        self.requests.msg_size().min(self.responses.msg_size())
    }

    fn try_send(&mut self, frame: &[u8]) -> Result<bool, RingError> {
        match self.requests.send(frame) {
            Ok(()) => Ok(true),
            Err(RingError::Full) => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn try_recv(&mut self, buf: &mut [u8]) -> Result<Option<usize>, RingError> {
        let received = self.responses.receive(buf)?;
        if received.is_some() {
            self.idle = 0;
        }
        Ok(received)
    }

    fn wait(&mut self) {
        spin_then_yield(&mut self.idle);
    }
}

impl BenchTransport for RingTransport {
    /// An empty fetch was a whole round trip already: after a few, let the producer (on
    /// the same CPU) run.
    fn idle(&mut self) {
        wait_step(&mut self.empty_polls, EMPTY_POLLS_BEFORE_YIELD);
    }

    fn progress(&mut self) {
        self.empty_polls = 0;
    }
}

/// The broker's end of a channel pair.
struct RingPort {
    requests: QueueReader,
    responses: QueueWriter,
}

/// A channel pair: the client's transport and the broker's port.
fn ring_pair(
    requests: &mut ChannelMemory,
    responses: &mut ChannelMemory,
) -> Result<(RingTransport, RingPort), String> {
    let g = geometry();
    let err = |e: RingError| format!("ring: {e:?}");
    let client = RingTransport {
        requests: QueueWriter::over(requests.region(), g).map_err(err)?,
        responses: QueueReader::over(responses.region(), g).map_err(err)?,
        idle: 0,
        empty_polls: 0,
    };
    let port = RingPort {
        requests: QueueReader::over(requests.region(), g).map_err(err)?,
        responses: QueueWriter::over(responses.region(), g).map_err(err)?,
    };
    Ok((client, port))
}

/// The broker thread: polls every port's request ring until `stop`.
fn ring_broker(mut ports: Vec<RingPort>, stop: &AtomicBool, cpus: Cpus) -> Result<(), String> {
    cpus.place(BROKER_CPU);
    let mut region = vec![0u8; BROKER_REGION_BYTES];
    let mut core = BrokerCore::new(&mut region)?;
    let mut request = vec![0u8; MSG_SIZE as usize];
    let mut idle = 0;
    while !stop.load(Ordering::Relaxed) {
        let mut served = false;
        for port in &mut ports {
            let Some(n) =
                port.requests.receive(&mut request).map_err(|e| format!("broker receive: {e:?}"))?
            else {
                continue;
            };
            served = true;
            let len = core.answer(&request[..n]);
            // The client waits for this answer before its next request: the reply ring
            // has room unless the client stopped reading.
            loop {
                match port.responses.send(&core.response[..len]) {
                    Ok(()) => break,
                    Err(RingError::Full) if !stop.load(Ordering::Relaxed) => spin_then_yield(&mut idle),
                    Err(e) => return Err(format!("broker send: {e:?}")),
                }
            }
        }
        if served {
            idle = 0;
        } else {
            spin_then_yield(&mut idle);
        }
    }
    Ok(())
}

fn run_ring(plan: Plan, cpus: Cpus) -> Result<Outcome, String> {
    let mut memory: Vec<ChannelMemory> = (0..4).map(|_| ChannelMemory::new()).collect();
    let [a, b, c, d] = &mut memory[..] else { unreachable!("four channels") };
    let (producer, producer_port) = ring_pair(a, b)?;
    let (consumer, consumer_port) = ring_pair(c, d)?;
    let timing = Timing { waits_per_attempt: 50_000_000, attempts: 2 };
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        let broker = s.spawn(|| ring_broker(vec![producer_port, consumer_port], &stop, cpus));
        let outcome = run_clients(
            Client::new(producer).with_timing(timing),
            Client::new(consumer).with_timing(timing),
            plan,
            cpus,
        );
        stop.store(true, Ordering::Relaxed);
        let served = broker.join().map_err(|_| "broker panicked".to_string()).and_then(|r| r);
        let outcome = outcome?;
        served.map(|()| outcome)
    })
}

// ---------------------------------------------------------------------------------------
// Socket: SOCK_SEQPACKET Unix-domain sockets to a broker process.

fn last_error(what: &str) -> String {
    format!("{what}: {}", io::Error::last_os_error())
}

/// A connected SOCK_SEQPACKET pair, both ends close-on-exec.
fn seqpacket_pair() -> Result<(OwnedFd, OwnedFd), String> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: socketpair writes two descriptors into the two-element array it is given.
    let r = unsafe {
        libc::socketpair(libc::AF_UNIX, libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC, 0, fds.as_mut_ptr())
    };
    if r != 0 {
        return Err(last_error("socketpair"));
    }
    // SAFETY: both descriptors were just created and are owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Lets the child process inherit `fd`.
fn inheritable(fd: &OwnedFd) -> Result<(), String> {
    // SAFETY: F_SETFD on a descriptor we own changes only its close-on-exec flag.
    if unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, 0) } != 0 {
        return Err(last_error("fcntl"));
    }
    Ok(())
}

/// Waits until `fd` is readable (or writable) or `timeout_ms` passed (-1: forever).
fn poll_one(fd: RawFd, events: libc::c_short, timeout_ms: libc::c_int) {
    let mut p = libc::pollfd { fd, events, revents: 0 };
    // SAFETY: one valid pollfd; poll only writes its `revents`.
    unsafe { libc::poll(&mut p, 1, timeout_ms) };
}

/// Sends one packet; `Ok(false)` when `flags` has MSG_DONTWAIT and the socket is full.
fn send_packet(fd: RawFd, frame: &[u8], flags: libc::c_int) -> io::Result<bool> {
    loop {
        // SAFETY: the pointer and length describe `frame`, which send only reads.
        let n = unsafe { libc::send(fd, frame.as_ptr().cast(), frame.len(), flags | libc::MSG_NOSIGNAL) };
        if n >= 0 {
            return Ok(true);
        }
        let e = io::Error::last_os_error();
        match e.kind() {
            io::ErrorKind::Interrupted => continue,
            io::ErrorKind::WouldBlock => return Ok(false),
            _ => return Err(e),
        }
    }
}

/// Receives one packet into `buf`; `Ok(None)` when none waits (MSG_DONTWAIT) and
/// `Ok(Some(0))` when the peer closed its end.
fn receive_packet(fd: RawFd, buf: &mut [u8], flags: libc::c_int) -> io::Result<Option<usize>> {
    loop {
        // SAFETY: the pointer and length describe `buf`, which recv writes at most.
        let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), flags) };
        if n >= 0 {
            return Ok(Some(n as usize));
        }
        let e = io::Error::last_os_error();
        match e.kind() {
            io::ErrorKind::Interrupted => continue,
            io::ErrorKind::WouldBlock => return Ok(None),
            _ => return Err(e),
        }
    }
}

/// The client's end of a socket to the broker process.
struct SocketTransport {
    fd: OwnedFd,
    /// The last send found the socket full: wait for room, not for an answer.
    blocked_send: bool,
}

impl Transport for SocketTransport {
    type Error = io::Error;

    fn frame_capacity(&self) -> usize {
        MSG_SIZE as usize
    }

    fn try_send(&mut self, frame: &[u8]) -> io::Result<bool> {
        let sent = send_packet(self.fd.as_raw_fd(), frame, libc::MSG_DONTWAIT)?;
        self.blocked_send = !sent;
        Ok(sent)
    }

    fn try_recv(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        match receive_packet(self.fd.as_raw_fd(), buf, libc::MSG_DONTWAIT)? {
            Some(0) => Err(io::Error::new(io::ErrorKind::UnexpectedEof, "broker closed the socket")),
            other => Ok(other),
        }
    }

    /// Blocks in `poll` until the answer (or room to send) is there, 10 ms at most.
    fn wait(&mut self) {
        let events = if self.blocked_send { libc::POLLOUT } else { libc::POLLIN };
        poll_one(self.fd.as_raw_fd(), events, 10);
    }
}

impl BenchTransport for SocketTransport {
    /// Nothing: the next fetch blocks in `poll` for its answer.
    fn idle(&mut self) {}
}

/// The broker process: answers requests on the inherited sockets until both are closed.
fn socket_broker_child(args: &[String]) -> Result<(), String> {
    let (cpus, fds) = match args.split_first() {
        Some((word, fds)) if word == Cpus::Pinned.word() => (Cpus::Pinned, fds),
        Some((word, fds)) if word == Cpus::Free.word() => (Cpus::Free, fds),
        _ => return Err(format!("usage: {CHILD_ARG} pinned|free FD..., not {args:?}")),
    };
    cpus.place(BROKER_CPU);
    let mut sockets = Vec::new();
    for arg in fds {
        let fd: RawFd = arg.parse().map_err(|_| format!("not a descriptor: {arg}"))?;
        // SAFETY: the parent passed this descriptor to us (inherited) and nothing else in
        // this process owns it.
        sockets.push(Some(unsafe { OwnedFd::from_raw_fd(fd) }));
    }
    let mut region = vec![0u8; BROKER_REGION_BYTES];
    let mut core = BrokerCore::new(&mut region)?;
    let mut request = vec![0u8; MSG_SIZE as usize];
    let mut polled: Vec<libc::pollfd> = Vec::new();
    while sockets.iter().any(Option::is_some) {
        polled.clear();
        polled.extend(sockets.iter().flatten().map(|s| libc::pollfd {
            fd: s.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }));
        // SAFETY: `polled` is a valid array of pollfd of the length given.
        let r = unsafe { libc::poll(polled.as_mut_ptr(), polled.len() as libc::nfds_t, -1) };
        if r < 0 {
            if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(last_error("poll"));
        }
        for slot in sockets.iter_mut() {
            let Some(socket) = slot else { continue };
            let fd = socket.as_raw_fd();
            let ready = polled.iter().any(|p| p.fd == fd && p.revents != 0);
            if !ready {
                continue;
            }
            match receive_packet(fd, &mut request, libc::MSG_DONTWAIT).map_err(|e| format!("recv: {e}"))? {
                None => {}
                Some(0) => *slot = None,
                Some(n) => {
                    let len = core.answer(&request[..n]);
                    if let Err(e) = send_packet(fd, &core.response[..len], 0) {
                        // The client went away between its request and our answer.
                        if e.kind() != io::ErrorKind::BrokenPipe {
                            return Err(format!("send: {e}"));
                        }
                        *slot = None;
                    }
                }
            }
        }
    }
    Ok(())
}

fn run_socket(plan: Plan, cpus: Cpus) -> Result<Outcome, String> {
    let (producer_end, producer_broker_end) = seqpacket_pair()?;
    let (consumer_end, consumer_broker_end) = seqpacket_pair()?;
    inheritable(&producer_broker_end)?;
    inheritable(&consumer_broker_end)?;
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let mut child = Command::new(exe)
        .arg(CHILD_ARG)
        .arg(cpus.word())
        .arg(producer_broker_end.as_raw_fd().to_string())
        .arg(consumer_broker_end.as_raw_fd().to_string())
        .spawn()
        .map_err(|e| format!("starting the broker process: {e}"))?;
    // The broker's ends are the child's now: it sees end-of-file once ours are closed.
    drop((producer_broker_end, consumer_broker_end));
    let timing = Timing { waits_per_attempt: 1000, attempts: 2 };
    let client = |fd| Client::new(SocketTransport { fd, blocked_send: false }).with_timing(timing);
    let outcome = run_clients(client(producer_end), client(consumer_end), plan, cpus);
    if outcome.is_err() {
        let _ = child.kill();
    }
    let status = child.wait().map_err(|e| format!("waiting for the broker process: {e}"))?;
    let outcome = outcome?;
    if !status.success() {
        return Err(format!("broker process: {status}"));
    }
    Ok(outcome)
}
