//! `logger`: reads the channel `readings` (or else the first channel it reads) and prints
//! what arrives, noting lost readings; without a channel it prints a heartbeat.
//!
//! It polls every [`POLL_NS`] and prints one line per poll (the newest reading and how many
//! arrived), so a fast writer cannot flood the console.
#![forbid(unsafe_code)]
#![no_std]
#![no_main]

use rt_partition::port::{PortError, QueuingReader, SamplingReader};
use rt_partition::{println, time, BootInfo};

/// Time between polls of the channel.
const POLL_NS: u64 = 100_000_000;
/// Time between heartbeats when there is no channel.
const HEARTBEAT_NS: u64 = 500_000_000;
/// Name of the channel preferred when there are several.
const CHANNEL: &str = "readings";

rt_partition::entry!(main);

/// The activation number a reading carries (its first 8 bytes, little-endian).
fn reading_number(msg: &[u8]) -> Option<u64> {
    Some(u64::from_le_bytes(msg.get(..8)?.try_into().ok()?))
}

fn main(bi: &'static BootInfo) -> ! {
    println!("logger: partition {} starting, {} channel(s)", bi.name(), bi.channels().len());
    let readable = bi.channels().iter().filter(|c| c.is_writer == 0);
    let chosen = bi.channels().iter().find(|c| c.is_writer == 0 && c.name() == CHANNEL);
    match chosen.or(readable.clone().next()).map(|c| c.name()) {
        Some(name) => {
            if let Ok(reader) = QueuingReader::open(bi, name) {
                println!("logger: reading queuing channel {name}");
                drain_queue(reader)
            }
            match SamplingReader::open(bi, name) {
                Ok(reader) => {
                    println!("logger: reading sampling channel {name}");
                    poll_samples(reader)
                }
                Err(e) => println!("logger: cannot open channel {name}: {e:?}"),
            }
        }
        None => println!("logger: no channel to read"),
    }
    heartbeat()
}

fn drain_queue(mut reader: QueuingReader) -> ! {
    let mut buf = [0u8; 256];
    let mut expected: Option<u64> = None;
    let mut lost: u64 = 0;
    let mut next = time::now_ns();
    loop {
        let mut batch = 0u64;
        let mut newest = None;
        loop {
            match reader.receive(&mut buf) {
                Ok(Some(len)) => {
                    batch += 1;
                    if let Some(n) = reading_number(&buf[..len]) {
                        if let Some(e) = expected {
                            lost += n.saturating_sub(e);
                        }
                        expected = Some(n + 1);
                        newest = Some(n);
                    }
                }
                Ok(None) => break,
                Err(PortError::BufferTooSmall { needed }) => {
                    println!("logger: message of {needed} bytes is too large, giving up on the channel");
                    heartbeat()
                }
                Err(e) => println!("logger: channel error {e:?}"),
            }
        }
        match newest {
            Some(n) => println!("logger: got reading {n} ({batch} new, {lost} lost so far)"),
            None if batch > 0 => println!("logger: got {batch} message(s)"),
            None => {}
        }
        next = next.saturating_add(POLL_NS);
        time::sleep_until(next);
    }
}

fn poll_samples(mut reader: SamplingReader) -> ! {
    let mut buf = [0u8; 256];
    let mut next = time::now_ns();
    loop {
        match reader.read(&mut buf) {
            Ok(Some(sample)) if sample.fresh => match reading_number(&buf[..sample.len]) {
                Some(n) => println!("logger: got reading {n} (sample {})", sample.count),
                None => println!("logger: got sample {} of {} bytes", sample.count, sample.len),
            },
            Ok(_) => {}
            Err(e) => println!("logger: channel error {e:?}"),
        }
        next = next.saturating_add(POLL_NS);
        time::sleep_until(next);
    }
}

fn heartbeat() -> ! {
    let mut beat: u64 = 0;
    let mut next = time::now_ns();
    loop {
        println!("logger: heartbeat {beat}");
        beat += 1;
        next = next.saturating_add(HEARTBEAT_NS);
        time::sleep_until(next);
    }
}
