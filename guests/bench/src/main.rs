//! `bench`: measures hypercall round trips in TSC ticks. Under Bochs the TSC advances one
//! tick per instruction (a VM exit and a VM entry count one each), so the numbers are exact
//! instruction counts of the hypervisor's paths; on hardware they are cycles.
//!
//! Prints one `bench: <what> min <ticks> avg <ticks> max <ticks> (n <samples>)` line per
//! measurement, then `bench: done` and halts.
#![forbid(unsafe_code)]
#![no_std]
#![no_main]

use rt_partition::{hypercall, println, time::rdtsc, BootInfo};

/// Samples per measurement.
const SAMPLES: u64 = 1000;

rt_partition::entry!(main);

/// Min, sum and max of a series of tick counts.
struct Series {
    min: u64,
    max: u64,
    sum: u64,
    n: u64,
}

impl Series {
    fn measure(mut f: impl FnMut()) -> Self {
        let mut s = Series { min: u64::MAX, max: 0, sum: 0, n: 0 };
        for _ in 0..SAMPLES {
            let t0 = rdtsc();
            f();
            let dt = rdtsc().wrapping_sub(t0);
            s.min = s.min.min(dt);
            s.max = s.max.max(dt);
            s.sum = s.sum.wrapping_add(dt);
            s.n += 1;
        }
        s
    }

    fn print(&self, what: &str) {
        println!(
            "bench: {what} min {} avg {} max {} (n {})",
            self.min,
            self.sum / self.n.max(1),
            self.max,
            self.n
        );
    }
}

/// Waits 50 ms of guest time (long enough for the UART to send a status line).
fn quiet() {
    rt_partition::time::sleep_ns(50_000_000);
}

fn main(bi: &'static BootInfo) {
    println!("bench: partition {} on {} vCPU(s), tsc {} Hz", bi.name(), bi.vcpu_count, bi.tsc_hz);
    match hypercall::version() {
        Ok(v) => println!("bench: hypercall interface version {v}"),
        Err(e) => println!("bench: version hypercall failed: {e:?}"),
    }
    // Every measurement starts once the console queue has drained: while the hypervisor
    // still has output queued, each VM exit also feeds the UART, which is not the path
    // being measured.
    quiet();
    Series::measure(|| {}).print("rdtsc_pair");
    quiet();
    Series::measure(|| {
        let _ = hypercall::null();
    })
    .print("null_hypercall");
    quiet();
    Series::measure(|| {
        let _ = hypercall::time_now();
    })
    .print("time_now");
    quiet();
    Series::measure(|| {
        let _ = hypercall::yield_until(0);
    })
    .print("yield_0");
    quiet();
    Series::measure(|| {
        let _ = hypercall::partition_state(bi.partition_id);
    })
    .print("partition_state_self");
    println!("bench: done");
}
