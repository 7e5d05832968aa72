//! `operator`: an RT partition that operates the machine through the management
//! interface (it needs `privileges manage`). It runs the commands of its `args` once at
//! start (`;`-separated, e.g. `args "list; stats sensor"`), then every command that
//! arrives on its queuing channel `ops`, if it has one (e.g. from Linux:
//! `rhlink send ops 'restart linux'`). Commands and their output: `operator::run`.
#![forbid(unsafe_code)]
#![no_std]
#![no_main]

use core::fmt;

use rt_partition::manage::{Hypervisor, Manager};
use rt_partition::port::QueuingReader;
use rt_partition::{print, println, time, BootInfo};

/// How often the `ops` channel is looked at (commands are rare; the partition sleeps).
const POLL_NS: u64 = 20_000_000;
/// The longest command accepted from the channel.
const COMMAND_MAX: usize = 256;

rt_partition::entry!(main);

/// The partition's console as a `fmt::Write` for the commands' output.
struct Console;

impl fmt::Write for Console {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        print!("{s}");
        Ok(())
    }
}

/// The partition's clock and sleep for the commands.
struct Partition;

impl operator::Host for Partition {
    fn sleep_ms(&mut self, ms: u64) {
        time::sleep_ns(ms.saturating_mul(1_000_000));
    }
    fn ticks(&mut self) -> u64 {
        time::rdtsc()
    }
    fn null_call(&mut self) {
        let _ = rt_partition::hypercall::null();
    }
}

fn main(bi: &'static BootInfo) -> ! {
    let mut manager = Manager::new(Hypervisor);
    println!("operator: partition {} starting, commands \"{}\"", bi.name(), bi.args());
    operator::run_line(bi.args(), &mut manager, &mut Console, &mut Partition);
    let mut ops = QueuingReader::open(bi, "ops").ok();
    if ops.is_some() {
        println!("operator: listening on channel ops");
    }
    loop {
        if let Some(reader) = ops.as_mut() {
            let mut buf = [0u8; COMMAND_MAX];
            match reader.receive(&mut buf) {
                Ok(Some(n)) => {
                    // The writer is another partition: take text only, trimmed of NULs.
                    let text = core::str::from_utf8(&buf[..n]).unwrap_or("").trim_end_matches('\0').trim();
                    println!("operator: command \"{text}\" from ops");
                    operator::run_line(text, &mut manager, &mut Console, &mut Partition);
                    continue;
                }
                Ok(None) => {}
                Err(e) => {
                    println!("operator: ops: {e:?}; no more commands from it");
                    ops = None;
                }
            }
        }
        time::sleep_ns(POLL_NS);
    }
}
