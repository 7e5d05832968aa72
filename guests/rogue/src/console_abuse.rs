//! Console abuse: a partition that writes as fast as it can, and one that reports faults
//! as fast as it can. The hypervisor must slow them (back-pressure, rate limits) without
//! making anybody else wait.

use rt_partition::hypercall::{report_fault, yield_until};
use rt_partition::{print, println, time, EventClass};

/// Lines per burst and the length of each (one `ConsoleWrite` of 4 KiB with its newline).
const BURST_LINES: u64 = 24;
const LINE_BYTES: usize = 4096;
/// The fill of a flood line: printable, with a period that makes a cut line visible.
const FILL_PATTERN: &[u8; 16] = b"0123456789abcdef";

/// Prints bursts of 24 lines of 4 KiB each, forever.
pub fn flood() -> ! {
    println!("rogue: about to flood the console with bursts of {BURST_LINES} x {LINE_BYTES} B lines");
    let mut fill = [0u8; LINE_BYTES];
    for (i, b) in fill.iter_mut().enumerate() {
        *b = FILL_PATTERN[i % FILL_PATTERN.len()];
    }
    let mut burst: u64 = 0;
    loop {
        for line in 0..BURST_LINES {
            // The prefix plus the fill make exactly LINE_BYTES - 1 characters.
            let mut head = rt_partition::fixed::FixedText::<48>::new();
            let _ = core::fmt::Write::write_fmt(&mut head, format_args!("flood: burst {burst} line {line} "));
            let body = &fill[..LINE_BYTES - 1 - head.as_str().len()];
            print!("{}{}\n", head.as_str(), core::str::from_utf8(body).unwrap_or(""));
        }
        burst += 1;
        // On a dedicated core this returns at once; it only marks the burst boundary.
        let _ = yield_until(0);
    }
}

/// Fault reports per burst.
const REPORTS_PER_BURST: u32 = 200;
/// Time between bursts (the hypervisor's rate limit must bound each burst's output).
const BURST_INTERVAL_NS: u64 = 2_000_000_000;

/// Reports `deadline_miss` (a class the table logs) 200 times as fast as it can, every 2 s.
pub fn health_spam() -> ! {
    let mut next = time::now_ns();
    let mut burst: u64 = 0;
    loop {
        println!("rogue: about to report {REPORTS_PER_BURST} faults at once (burst {burst})");
        let mut refused = 0;
        for n in 0..REPORTS_PER_BURST {
            let mut text = rt_partition::fixed::FixedText::<64>::new();
            let _ = core::fmt::Write::write_fmt(&mut text, format_args!("hmspam burst {burst} report {n}"));
            if report_fault(EventClass::DeadlineMiss, text.as_str().as_bytes()).is_err() {
                refused += 1;
            }
        }
        println!("rogue: burst {burst} done ({refused} reports refused)");
        burst += 1;
        next = next.saturating_add(BURST_INTERVAL_NS);
        time::sleep_until(next);
    }
}
