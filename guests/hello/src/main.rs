//! `hello`: greets with what the boot info says about the partition, then prints a tick
//! every [`TICK_NS`] of guest time, yielding the processor in between. Other vCPUs print
//! one line each and park.
#![forbid(unsafe_code)]
#![no_std]
#![no_main]

use rt_partition::{println, time, BootInfo};

/// Time between ticks.
const TICK_NS: u64 = 200_000_000;

rt_partition::entry!(main, secondary);

/// vCPUs other than 0 announce themselves, then give their core back.
fn secondary(bi: &'static BootInfo, vcpu: u32) -> ! {
    println!("hello: vCPU {vcpu} of {} online", bi.vcpu_count);
    rt_partition::park_secondary(bi, vcpu)
}

fn main(bi: &'static BootInfo) -> ! {
    println!(
        "hello: Hello from partition {} (id {}), {} vCPU(s), {} MiB RAM, restart {}",
        bi.name(),
        bi.partition_id,
        bi.vcpu_count,
        bi.ram_bytes >> 20,
        bi.restart_count
    );
    let mut next = time::now_ns();
    let mut tick: u64 = 0;
    loop {
        next = next.saturating_add(TICK_NS);
        time::sleep_until(next);
        tick += 1;
        println!("hello: tick {tick}");
    }
}
