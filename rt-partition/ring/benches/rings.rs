//! Host benchmark of the channel rings between two pinned threads (cores 0 and 1 by
//! default; `RING_BENCH_CORES=a,b` picks others), all ratios from one run:
//!
//! - latency: a message goes A -> B and back B -> A, one at a time. Round trip is timed on
//!   A; one way is B's receive time minus A's send time (both from the TSC, which is
//!   synchronised between cores on the machines this runs on). Against the physical limit,
//!   a raw cache-line ping-pong on the same two cores, timed the same way, and a raw
//!   ping-pong that copies the same payload through shared buffers (the limit for that
//!   many bytes).
//! - throughput: A sends as fast as the ring takes, B receives; against the `rtrb` SPSC
//!   ring carrying the same messages as `[u8; N]` items.
//! - sampling: a writer at full speed, a reader reading as fast as it can: how many reads
//!   return a complete value, how many are new, and how long a read takes (its maximum
//!   includes the times the reader's thread was preempted).
//!
//! Messages of 8, 64 and 1,024 bytes; depths 16 and 256. Medians of per-message samples
//! (other processes share the cores; the median ignores their interruptions).
//!
//! `cargo bench -p hallows-ring --bench rings` (set `RING_BENCH_QUICK=1` for a short run).

use std::hint::spin_loop;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Barrier;
use std::time::{Duration, Instant};

use hallows_ring::{Geometry, QueueReader, QueueWriter, Region, RingError, SampleReader, SampleWriter};

/// 64-byte aligned memory.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line([u8; 64]);

struct Shared {
    lines: Vec<Line>,
}

impl Shared {
    fn for_geometry(g: &Geometry) -> Self {
        Self { lines: vec![Line([0; 64]); g.region_bytes() as usize / 64] }
    }

    fn region(&mut self) -> Region {
        // SAFETY: the buffer outlives the benchmark's threads (scoped) and is only touched
        // through the endpoints.
        unsafe { Region::new(self.lines.as_mut_ptr().cast(), self.lines.len() * 64) }
    }
}

fn tsc() -> u64 {
    // SAFETY: RDTSC has no preconditions on x86-64.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// TSC ticks per nanosecond, measured against the monotonic clock.
fn tsc_per_ns() -> f64 {
    let (t0, c0) = (Instant::now(), tsc());
    std::thread::sleep(Duration::from_millis(200));
    let (t1, c1) = (Instant::now(), tsc());
    (c1 - c0) as f64 / (t1 - t0).as_nanos() as f64
}

fn pin(core: usize) {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; CPU_SET and sched_setaffinity only
    // read and write it.
    unsafe {
        let mut set: libc::cpu_set_t = core::mem::zeroed();
        libc::CPU_SET(core, &mut set);
        if libc::sched_setaffinity(0, core::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            eprintln!("warning: cannot pin to core {core}");
        }
    }
}

fn cores() -> (usize, usize) {
    std::env::var("RING_BENCH_CORES")
        .ok()
        .and_then(|s| {
            let (a, b) = s.split_once(',')?;
            Some((a.trim().parse().ok()?, b.trim().parse().ok()?))
        })
        .unwrap_or((0, 1))
}

fn median(samples: &mut [u64]) -> u64 {
    samples.sort_unstable();
    samples[samples.len() / 2]
}

/// Median round trip and one-way times, in TSC ticks.
#[derive(Clone, Copy)]
struct Latency {
    round_trip: u64,
    one_way: u64,
}

/// A raw ping-pong on one cache line per direction: A stores a TSC value, B spins until it
/// sees it, records the one-way time and stores it back on its line; A spins for that.
fn raw_ping_pong(rounds: usize) -> Latency {
    #[repr(align(64))]
    struct Padded(AtomicU64);
    let (ping, pong) = (Padded(AtomicU64::new(0)), Padded(AtomicU64::new(0)));
    let (a, b) = cores();
    let barrier = Barrier::new(2);
    let (mut rtt, mut one_way) = (Vec::with_capacity(rounds), Vec::with_capacity(rounds));
    std::thread::scope(|s| {
        let (ping, pong, barrier) = (&ping, &pong, &barrier);
        let echo = s.spawn(move || {
            pin(b);
            let mut samples = Vec::with_capacity(rounds);
            barrier.wait();
            let mut last = 0;
            for _ in 0..rounds {
                let sent = loop {
                    let v = ping.0.load(Ordering::Acquire);
                    if v != last {
                        break v;
                    }
                    spin_loop();
                };
                samples.push(tsc().saturating_sub(sent));
                last = sent;
                pong.0.store(sent, Ordering::Release);
            }
            samples
        });
        pin(a);
        barrier.wait();
        for _ in 0..rounds {
            let start = tsc();
            ping.0.store(start, Ordering::Release);
            while pong.0.load(Ordering::Acquire) != start {
                spin_loop();
            }
            rtt.push(tsc() - start);
        }
        one_way = echo.join().unwrap();
    });
    Latency { round_trip: median(&mut rtt), one_way: median(&mut one_way) }
}

/// The physical limit for moving `size` bytes each way: a raw ping-pong where each side
/// copies the payload into a buffer of its own (64-byte aligned, the send time in its first
/// 8 bytes) and then flags it in a word on the same first line; the other side spins on
/// the flag and copies the payload out. No indices, no checks.
fn raw_payload_ping_pong(size: usize, rounds: usize) -> Latency {
    let lines = (size + 8).div_ceil(64);
    let (mut there, mut back) = (vec![Line([0; 64]); lines], vec![Line([0; 64]); lines]);
    let (there, back) = (Raw(there.as_mut_ptr().cast()), Raw(back.as_mut_ptr().cast()));
    let (a, b) = cores();
    let barrier = Barrier::new(2);
    let (mut rtt, mut one_way) = (Vec::with_capacity(rounds), Vec::with_capacity(rounds));
    std::thread::scope(|s| {
        let barrier = &barrier;
        let echo = s.spawn(move || {
            pin(b);
            let (there, back) = (there, back);
            let mut buf = vec![0u8; size];
            let mut samples = Vec::with_capacity(rounds);
            barrier.wait();
            let mut last = 0;
            for _ in 0..rounds {
                let sent = loop {
                    let v = there.flag().load(Ordering::Acquire);
                    if v != last {
                        break v;
                    }
                    spin_loop();
                };
                // SAFETY: `size` payload bytes after the flag word lie inside the buffer.
                unsafe { core::ptr::copy_nonoverlapping(there.0.add(8), buf.as_mut_ptr(), size) };
                samples.push(tsc().saturating_sub(sent));
                last = sent;
                // SAFETY: as above, in the other buffer.
                unsafe { core::ptr::copy_nonoverlapping(buf.as_ptr(), back.0.add(8), size) };
                back.flag().store(sent, Ordering::Release);
            }
            samples
        });
        pin(a);
        let (there, back) = (there, back);
        let msg = vec![0x5Au8; size];
        let mut buf = vec![0u8; size];
        barrier.wait();
        for _ in 0..rounds {
            let start = tsc();
            // SAFETY: `size` payload bytes after the flag word lie inside the buffer.
            unsafe { core::ptr::copy_nonoverlapping(msg.as_ptr(), there.0.add(8), size) };
            there.flag().store(start, Ordering::Release);
            while back.flag().load(Ordering::Acquire) != start {
                spin_loop();
            }
            // SAFETY: as above, in the other buffer.
            unsafe { core::ptr::copy_nonoverlapping(back.0.add(8), buf.as_mut_ptr(), size) };
            rtt.push(tsc() - start);
        }
        std::hint::black_box(&buf);
        one_way = echo.join().unwrap();
    });
    Latency { round_trip: median(&mut rtt), one_way: median(&mut one_way) }
}

/// A raw pointer to a 64-byte aligned buffer shared by the two threads of a raw test.
#[derive(Clone, Copy)]
struct Raw(*mut u8);

// SAFETY: the buffers outlive the scoped threads; the flag protocol orders the copies.
unsafe impl Send for Raw {}

impl Raw {
    fn flag(&self) -> &AtomicU64 {
        // SAFETY: the buffer starts 64-byte aligned with at least one line; the flag word
        // is only accessed atomically.
        unsafe { &*self.0.cast::<AtomicU64>() }
    }
}

/// The same exchange over two queues (A -> B, B -> A) of `size`-byte messages whose first
/// 8 bytes are the send time.
fn ring_ping_pong(size: usize, depth: u32, rounds: usize) -> Latency {
    let g = Geometry::new(true, size as u32, depth).unwrap();
    let (mut there, mut back) = (Shared::for_geometry(&g), Shared::for_geometry(&g));
    let (there, back) = (there.region(), back.region());
    let (a, b) = cores();
    let barrier = Barrier::new(2);
    let (mut rtt, mut one_way) = (Vec::with_capacity(rounds), Vec::with_capacity(rounds));
    std::thread::scope(|s| {
        let barrier = &barrier;
        let echo = s.spawn(move || {
            pin(b);
            let mut rx = QueueReader::over(there, g).unwrap();
            let mut tx = QueueWriter::over(back, g).unwrap();
            let mut buf = vec![0u8; size];
            let mut samples = Vec::with_capacity(rounds);
            barrier.wait();
            for _ in 0..rounds {
                let n = loop {
                    if let Some(n) = rx.receive(&mut buf).unwrap() {
                        break n;
                    }
                    spin_loop();
                };
                let sent = u64::from_le_bytes(buf[..8].try_into().unwrap());
                samples.push(tsc().saturating_sub(sent));
                tx.send(&buf[..n]).unwrap();
            }
            samples
        });
        pin(a);
        let mut tx = QueueWriter::over(there, g).unwrap();
        let mut rx = QueueReader::over(back, g).unwrap();
        let mut msg = vec![0x5Au8; size];
        let mut buf = vec![0u8; size];
        barrier.wait();
        for _ in 0..rounds {
            let start = tsc();
            msg[..8].copy_from_slice(&start.to_le_bytes());
            tx.send(&msg).unwrap();
            while rx.receive(&mut buf).unwrap().is_none() {
                spin_loop();
            }
            rtt.push(tsc() - start);
        }
        one_way = echo.join().unwrap();
    });
    Latency { round_trip: median(&mut rtt), one_way: median(&mut one_way) }
}

/// Messages per second through our queue.
fn ring_throughput(size: usize, depth: u32, messages: u64) -> f64 {
    let g = Geometry::new(true, size as u32, depth).unwrap();
    let mut shared = Shared::for_geometry(&g);
    let region = shared.region();
    let (a, b) = cores();
    let barrier = Barrier::new(2);
    let mut elapsed = Duration::ZERO;
    std::thread::scope(|s| {
        let barrier = &barrier;
        let consumer = s.spawn(move || {
            pin(b);
            let mut rx = QueueReader::over(region, g).unwrap();
            let mut buf = vec![0u8; size];
            let mut sum = 0u64;
            barrier.wait();
            let mut got = 0;
            while got < messages {
                match rx.receive(&mut buf).unwrap() {
                    Some(_) => {
                        sum = sum.wrapping_add(buf[0] as u64);
                        got += 1
                    }
                    None => spin_loop(),
                }
            }
            std::hint::black_box(sum);
        });
        pin(a);
        let mut tx = QueueWriter::over(region, g).unwrap();
        let mut msg = vec![0u8; size];
        barrier.wait();
        let start = Instant::now();
        for k in 0..messages {
            msg[0] = k as u8;
            while tx.send(&msg) == Err(RingError::Full) {
                spin_loop();
            }
        }
        consumer.join().unwrap();
        elapsed = start.elapsed();
    });
    messages as f64 / elapsed.as_secs_f64()
}

/// Messages per second through `rtrb` with `[u8; N]` items.
fn rtrb_throughput<const N: usize>(depth: usize, messages: u64) -> f64 {
    let (mut tx, mut rx) = rtrb::RingBuffer::<[u8; N]>::new(depth);
    let (a, b) = cores();
    let barrier = Barrier::new(2);
    let mut elapsed = Duration::ZERO;
    std::thread::scope(|s| {
        let barrier = &barrier;
        let consumer = s.spawn(move || {
            pin(b);
            let mut sum = 0u64;
            barrier.wait();
            let mut got = 0;
            while got < messages {
                match rx.pop() {
                    Ok(m) => {
                        sum = sum.wrapping_add(std::hint::black_box(m)[0] as u64);
                        got += 1
                    }
                    Err(_) => spin_loop(),
                }
            }
            std::hint::black_box(sum);
        });
        pin(a);
        let mut msg = [0u8; N];
        barrier.wait();
        let start = Instant::now();
        for k in 0..messages {
            msg[0] = k as u8;
            while tx.push(msg).is_err() {
                spin_loop();
            }
        }
        consumer.join().unwrap();
        elapsed = start.elapsed();
    });
    messages as f64 / elapsed.as_secs_f64()
}

struct SamplingResult {
    reads: u64,
    complete: u64,
    fresh: u64,
    writes: u64,
    read_ticks_median: u64,
    read_ticks_max: u64,
}

/// A writer writing as fast as it can while a reader reads for `duration` (starting once
/// the writer is seen writing).
fn sampling(size: usize, duration: Duration) -> SamplingResult {
    let g = Geometry::new(false, size as u32, 1).unwrap();
    let mut shared = Shared::for_geometry(&g);
    let region = shared.region();
    let (a, b) = cores();
    let barrier = Barrier::new(2);
    let stop = AtomicBool::new(false);
    let written = AtomicU64::new(0);
    let mut result = SamplingResult {
        reads: 0,
        complete: 0,
        fresh: 0,
        writes: 0,
        read_ticks_median: 0,
        read_ticks_max: 0,
    };
    std::thread::scope(|s| {
        let (barrier, stop, written) = (&barrier, &stop, &written);
        let writer = s.spawn(move || {
            pin(a);
            let mut w = SampleWriter::over(region, g).unwrap();
            let mut msg = vec![0u8; size];
            barrier.wait();
            let mut k = 0u64;
            while !stop.load(Ordering::Relaxed) {
                k += 1;
                msg[..8].copy_from_slice(&k.to_le_bytes());
                w.write(&msg).unwrap();
                if k.is_multiple_of(64) {
                    written.store(k, Ordering::Relaxed);
                }
            }
        });
        pin(b);
        let mut r = SampleReader::over(region, g).unwrap();
        let mut buf = vec![0u8; size];
        let mut ticks = Vec::with_capacity(1 << 20);
        barrier.wait();
        while written.load(Ordering::Relaxed) < 1024 {
            spin_loop();
        }
        let first_write = written.load(Ordering::Relaxed);
        let end = Instant::now() + duration;
        while Instant::now() < end {
            for _ in 0..256 {
                let t0 = tsc();
                let got = r.read(&mut buf);
                ticks.push(tsc() - t0);
                result.reads += 1;
                if let Ok(Some(sample)) = got {
                    result.complete += 1;
                    result.fresh += sample.fresh as u64;
                }
            }
        }
        result.writes = written.load(Ordering::Relaxed) - first_write;
        stop.store(true, Ordering::Relaxed);
        writer.join().unwrap();
        result.read_ticks_max = *ticks.iter().max().unwrap();
        result.read_ticks_median = median(&mut ticks);
    });
    result
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument is not supported.
    let quick = std::env::var_os("RING_BENCH_QUICK").is_some();
    let scale = if quick { 10 } else { 1 };
    let rounds = 200_000 / scale;
    let trials = if quick { 3 } else { 7 };
    let (a, b) = cores();
    let per_ns = tsc_per_ns();
    let ns = |ticks: u64| ticks as f64 / per_ns;
    println!("hallows-ring benchmark: threads pinned to cores {a} and {b}; TSC {per_ns:.3} GHz");
    println!("{} CPUs online; other processes may share them (medians are reported)", num_cpus());

    // Under load the machine's speed drifts during the run: every ring measurement is
    // taken in trials, each right after its two baselines, and the ratios are the
    // medians of the per-trial ratios.
    let per_trial = rounds / trials;
    println!("\nlatency: {trials} trials of {per_trial} messages, each after its baselines; medians");
    println!("  word = raw ping-pong of one 8-byte word (the limit; goal <= 1.2x)");
    println!("  copy = raw ping-pong copying the same payload through shared buffers");
    println!(
        "{:>6} {:>6} {:>9} {:>9} {:>9} {:>8} {:>8} {:>9} {:>8} {:>8}",
        "bytes",
        "depth",
        "word rtt",
        "copy rtt",
        "ring rtt",
        "vs word",
        "vs copy",
        "ring 1way",
        "vs word",
        "vs copy"
    );
    for size in [8usize, 64, 1024] {
        for depth in [16u32, 256] {
            let mut cols: [Vec<f64>; 8] = Default::default();
            for _ in 0..trials {
                let word = raw_ping_pong(per_trial);
                let copy = raw_payload_ping_pong(size, per_trial);
                let ring = ring_ping_pong(size, depth, per_trial);
                let values = [
                    ns(word.round_trip),
                    ns(copy.round_trip),
                    ns(ring.round_trip),
                    ring.round_trip as f64 / word.round_trip as f64,
                    ring.round_trip as f64 / copy.round_trip as f64,
                    ns(ring.one_way),
                    ring.one_way as f64 / word.one_way as f64,
                    ring.one_way as f64 / copy.one_way as f64,
                ];
                for (col, v) in cols.iter_mut().zip(values) {
                    col.push(v);
                }
            }
            let m: Vec<f64> = cols.iter_mut().map(|c| mid(c)).collect();
            println!(
                "{size:>6} {depth:>6} {:>6.0} ns {:>6.0} ns {:>6.0} ns {:>7.2}x {:>7.2}x {:>6.0} ns {:>7.2}x {:>7.2}x",
                m[0], m[1], m[2], m[3], m[4], m[5], m[6], m[7]
            );
        }
    }

    println!(
        "\nthroughput, median of {trials} alternating trials (messages/s; ratio = ring / rtrb, goal >= 1.0)"
    );
    println!("{:>6} {:>6} {:>14} {:>14} {:>8}", "bytes", "depth", "ring", "rtrb", "ratio");
    for size in [8usize, 64, 1024] {
        let messages = if size == 1024 { 400_000 } else { 2_000_000 } / scale as u64;
        for depth in [16u32, 256] {
            let (mut ours, mut theirs, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
            for _ in 0..trials {
                let o = ring_throughput(size, depth, messages);
                let t = match size {
                    8 => rtrb_throughput::<8>(depth as usize, messages),
                    64 => rtrb_throughput::<64>(depth as usize, messages),
                    _ => rtrb_throughput::<1024>(depth as usize, messages),
                };
                ours.push(o);
                theirs.push(t);
                ratios.push(o / t);
            }
            println!(
                "{size:>6} {depth:>6} {:>14.0} {:>14.0} {:>7.2}x",
                mid(&mut ours),
                mid(&mut theirs),
                mid(&mut ratios)
            );
        }
    }

    let duration = Duration::from_millis(if quick { 100 } else { 500 });
    println!(
        "\nsampling: reader against a writer at full speed for {} ms (goal: every read complete)",
        duration.as_millis()
    );
    println!(
        "{:>6} {:>10} {:>10} {:>8} {:>10} {:>10} {:>11} {:>11}",
        "bytes", "reads", "complete", "rate", "new", "writes", "read med", "read max"
    );
    for size in [8usize, 64, 1024] {
        let r = sampling(size, duration);
        println!(
            "{size:>6} {:>10} {:>10} {:>7.2}% {:>10} {:>10} {:>8.0} ns {:>8.0} ns",
            r.reads,
            r.complete,
            100.0 * r.complete as f64 / r.reads as f64,
            r.fresh,
            r.writes,
            ns(r.read_ticks_median),
            ns(r.read_ticks_max),
        );
    }
}

/// The median of `values` (sorts them).
fn mid(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn num_cpus() -> usize {
    std::thread::available_parallelism().map_or(0, |n| n.get())
}
