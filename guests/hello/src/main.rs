//! `hello`: greets with what the boot info says about the partition, then prints a tick
//! every [`TICK_NS`] of guest time, yielding the processor in between. Other vCPUs print
//! one line each and park.
//!
//! With a queuing channel `commands` to read and a sampling channel `answers` to write
//! (the demo joins them to Linux), it answers every command within [`POLL_NS`]: the answer
//! is `hello: ` and the command's text, the latest answer in `answers`.
#![forbid(unsafe_code)]
#![no_std]
#![no_main]

use rt_partition::port::{QueuingReader, SamplingWriter};
use rt_partition::{println, time, BootInfo};

/// Time between ticks.
const TICK_NS: u64 = 200_000_000;
/// Time between looks at the `commands` channel, when there is one.
const POLL_NS: u64 = 10_000_000;
/// What an answer starts with.
const ANSWER_PREFIX: &[u8] = b"hello: ";

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
    let mut commands = match (QueuingReader::open(bi, "commands"), SamplingWriter::open(bi, "answers")) {
        (Ok(r), Ok(w)) => {
            println!("hello: answering commands (channel commands, answers on channel answers)");
            Some((r, w))
        }
        _ => None,
    };
    let step = if commands.is_some() { POLL_NS } else { TICK_NS };
    let mut next_tick = time::now_ns().saturating_add(TICK_NS);
    let mut tick: u64 = 0;
    loop {
        time::sleep_ns(step);
        if let Some((reader, writer)) = commands.as_mut() {
            answer(reader, writer);
        }
        if time::now_ns() >= next_tick {
            next_tick = next_tick.saturating_add(TICK_NS);
            tick += 1;
            println!("hello: tick {tick}");
        }
    }
}

/// Answers every command waiting in `reader` on `writer`.
fn answer(reader: &mut QueuingReader, writer: &mut SamplingWriter) {
    let mut command = [0u8; 256];
    loop {
        match reader.receive(&mut command) {
            Ok(Some(n)) => {
                let mut answer = [0u8; 256];
                let room = writer.msg_size().min(answer.len());
                let prefix = ANSWER_PREFIX.len().min(room);
                answer[..prefix].copy_from_slice(&ANSWER_PREFIX[..prefix]);
                let body = n.min(room - prefix);
                answer[prefix..prefix + body].copy_from_slice(&command[..body]);
                let text = core::str::from_utf8(&command[..n]).unwrap_or("(not UTF-8)");
                println!("hello: command `{}`, answered", text.trim_end());
                let _ = writer.write(&answer[..prefix + body]);
            }
            Ok(None) => return,
            Err(e) => {
                // A confused or hostile writer: the reader resynchronised; go on.
                println!("hello: commands: {e:?}");
                return;
            }
        }
    }
}
