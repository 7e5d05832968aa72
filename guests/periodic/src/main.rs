//! `periodic` (the demo's `sensor` partition): a periodic task that measures its release
//! jitter and, on every channel the partition writes (up to [`MAX_OUTPUTS`]; in the demo
//! the logger's and Linux's), publishes a reading every period.
//!
//! A reading is 16 bytes: the activation number and the TSC at release, both u64
//! little-endian (cut to the channel's message size if that is smaller).
#![forbid(unsafe_code)]
#![no_std]
#![no_main]

use rt_partition::port::{PortError, QueuingWriter, SamplingWriter};
use rt_partition::{periodic::Periodic, println, time, BootInfo};

/// Period of the task: the demo schedule's major frame (10 ms), so on a time-partitioned
/// core every activation falls in the partition's own window. Under Bochs (about 100 M
/// instructions per emulated second) this is about 1 M instructions per activation.
const PERIOD_NS: u64 = 10_000_000;
/// Relative deadline of each activation.
const DEADLINE_NS: u64 = 4_000_000;
/// Print a status line every this many activations (every 0.5 s).
const PRINT_EVERY: u64 = 50;

rt_partition::entry!(main);

/// Where readings go, if anywhere.
enum Output {
    None,
    Queue(QueuingWriter),
    Sample(SamplingWriter),
}

/// Channels a reading is published on at most.
const MAX_OUTPUTS: usize = 4;

impl Output {
    /// Every channel this partition writes, in boot-info order.
    fn open_all(bi: &BootInfo) -> [Self; MAX_OUTPUTS] {
        let mut writers = bi.channels().iter().filter(|c| c.is_writer != 0);
        core::array::from_fn(|_| writers.next().map_or(Self::None, |ci| Self::open(bi, ci.name())))
    }

    fn open(bi: &BootInfo, name: &str) -> Self {
        if let Ok(w) = QueuingWriter::open(bi, name) {
            println!("periodic: writing readings to queuing channel {name}");
            return Self::Queue(w);
        }
        match SamplingWriter::open(bi, name) {
            Ok(w) => {
                println!("periodic: writing readings to sampling channel {name}");
                Self::Sample(w)
            }
            Err(e) => {
                println!("periodic: cannot open channel {name}: {e:?}");
                Self::None
            }
        }
    }

    /// Sends one reading; `false` when the queue was full (the reading is dropped).
    fn send(&mut self, reading: &[u8; 16]) -> bool {
        match self {
            Self::None => true,
            Self::Queue(w) => {
                let n = w.msg_size().min(reading.len());
                !matches!(w.send(&reading[..n]), Err(PortError::Full))
            }
            Self::Sample(w) => {
                let n = w.msg_size().min(reading.len());
                let _ = w.write(&reading[..n]);
                true
            }
        }
    }
}

fn main(bi: &'static BootInfo) -> ! {
    println!(
        "periodic: partition {} starting, period {} us, deadline {} us, tsc {} Hz",
        bi.name(),
        PERIOD_NS / 1000,
        DEADLINE_NS / 1000,
        bi.tsc_hz
    );
    let mut outputs = Output::open_all(bi);
    let mut dropped: u64 = 0;
    // On a time-partitioned core, start counting periods at the beginning of this
    // partition's own window, so every release falls inside it: give up the rest of the
    // current window first (on a dedicated core this returns at once).
    let _ = rt_partition::hypercall::yield_until(0);
    let mut task = Periodic::new(PERIOD_NS, DEADLINE_NS);
    loop {
        let activation = task.wait_next();
        let mut reading = [0u8; 16];
        reading[..8].copy_from_slice(&activation.index.to_le_bytes());
        reading[8..].copy_from_slice(&time::rdtsc().to_le_bytes());
        for output in outputs.iter_mut() {
            if !output.send(&reading) {
                dropped += 1;
            }
        }
        if activation.index.is_multiple_of(PRINT_EVERY) {
            let stats = task.stats();
            println!(
                "periodic: count {} jitter_max_ns {} misses {} skipped {} dropped {}",
                activation.index, stats.max_lateness_ns, stats.deadline_misses, stats.skipped, dropped
            );
        }
    }
}
