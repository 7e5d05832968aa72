//! `bridge-peer`: the real-time end of the hybrid-bridge test (configs/tests/bridge.pt).
//!
//! - `readings` (queuing, to Linux): readings `reading 0000001`, `reading 0000002`, ... in
//!   order, none dropped: when the queue is full the partition waits for Linux to read.
//! - `requests` (queuing, from Linux) and `replies` (sampling, to Linux): each request is
//!   answered with `reply: ` and the request's text, the latest answer in `replies`.
//!
//! A request channel whose writer (Linux) leaves garbage in the shared pages makes the
//! reader report an error; the partition prints it and keeps running.
#![forbid(unsafe_code)]
#![no_std]
#![no_main]

use bridge_peer::{reading, reply, READING_BYTES};
use rt_partition::port::{PortError, QueuingReader, QueuingWriter, SamplingWriter};
use rt_partition::{println, time, BootInfo};

/// Readings streamed to Linux in all: more than any test reads (the bridge test reads 200,
/// `scripts/bench-bridge` thousands); while the queue is full the partition waits for
/// Linux and keeps answering requests.
const READINGS: u64 = 9_999_999;
/// Sleep when there was nothing to do (Linux reads and writes at its own pace).
const IDLE_NS: u64 = 200_000;

rt_partition::entry!(main);

fn open<T>(what: &str, opened: Result<T, PortError>) -> Option<T> {
    opened.map_err(|e| println!("bridge-peer: cannot open {what}: {e:?}")).ok()
}

fn main(bi: &'static BootInfo) -> ! {
    println!("bridge-peer: partition {} starting, {} readings to stream", bi.name(), READINGS);
    let mut readings = open("readings", QueuingWriter::open(bi, "readings"));
    let mut requests = open("requests", QueuingReader::open(bi, "requests"));
    let mut replies = open("replies", SamplingWriter::open(bi, "replies"));
    let (mut sent, mut answered, mut errors) = (0u64, 0u64, 0u64);
    // TSC ticks spent in successful sends and receives (Bochs: ticks = instructions).
    let (mut send_ticks, mut receive_ticks) = (0u64, 0u64);
    loop {
        let mut busy = false;
        if let Some(w) = readings.as_mut().filter(|_| sent < READINGS) {
            let text = reading(sent + 1);
            let started = time::rdtsc();
            match w.send(&text[..READING_BYTES.min(w.msg_size())]) {
                Ok(()) => {
                    send_ticks += time::rdtsc().wrapping_sub(started);
                    sent += 1;
                    busy = true;
                    if sent == READINGS {
                        println!("bridge-peer: all {sent} readings sent");
                    }
                    if sent.is_power_of_two() && sent >= 256 {
                        println!(
                            "bridge-peer: {sent} readings sent, {} TSC ticks per send",
                            send_ticks / sent
                        );
                    }
                }
                Err(PortError::Full) => {}
                Err(e) => {
                    println!("bridge-peer: readings: {e:?}");
                    readings = None;
                }
            }
        }
        if let Some(r) = requests.as_mut() {
            let mut request = [0u8; 256];
            let started = time::rdtsc();
            match r.receive(&mut request) {
                Ok(Some(n)) => {
                    receive_ticks += time::rdtsc().wrapping_sub(started);
                    busy = true;
                    if let Some(w) = replies.as_mut() {
                        let mut out = [0u8; 256];
                        let len = reply(&request[..n], &mut out[..w.msg_size().min(256)]);
                        match w.write(&out[..len]) {
                            Ok(()) => {
                                answered += 1;
                                if answered.is_power_of_two() {
                                    println!(
                                        "bridge-peer: {answered} requests answered, {} TSC ticks per receive",
                                        receive_ticks / answered
                                    );
                                }
                            }
                            Err(e) => println!("bridge-peer: replies: {e:?}"),
                        }
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    // A hostile or confused writer: report and go on; the reader has
                    // resynchronised.
                    errors += 1;
                    if errors <= 5 || errors.is_power_of_two() {
                        println!("bridge-peer: requests: error {e:?} ({errors} so far), still running");
                    }
                }
            }
        }
        if !busy {
            time::sleep_ns(IDLE_NS);
        }
    }
}
