//! `chanseq`: the writer of a queuing channel publishes sequence numbers and lengths no
//! honest writer would, around the u64 wrap. The reader's SDK must report them as
//! inconsistent and go on, never panic, hang or read outside its slots.

use core::ptr::write_volatile;
use rt_partition::hallows_abi::channel::{
    slot_offset, HEADER_WRITE_SEQ_OFFSET, SLOT_DATA_OFFSET, SLOT_LEN_OFFSET, SLOT_SEQ_OFFSET,
};
use rt_partition::hallows_abi::table::CHANNEL_QUEUING;
use rt_partition::{println, time, BootInfo, ChannelInfo};

/// The reading number carried by the one well-formed message, published at sequence
/// number u64::MAX (the reader's next sequence number then wraps to 0).
pub const WRAP_READING: u64 = 0x5EC0_0000_0000_0BAD;

/// Time between steps: the logger polls every 100 ms, so it sees each one.
const STEP_NS: u64 = 300_000_000;

/// One state of the channel the reader finds.
struct Step {
    what: &'static str,
    write_seq: u64,
    /// The slot written before `write_seq` is published: (message number `n`, which picks
    /// the slot `n % depth`; the slot's `seq`, `n + 1` for a well-formed message; length;
    /// reading number).
    slot: Option<(u64, u64, u32, u64)>,
}

/// The cycle (the reader's position after each step, as the SDK handles it, is noted).
/// A counter up to `depth` behind the reader is "nothing new" to it (an honest counter
/// may trail the slots), so every jump here is far: 2^63 or across the wrap.
const STEPS: [Step; 4] = [
    // Far from the reader (ahead or behind): inconsistent, the reader moves to 2^63.
    Step { what: "write_seq jumps by 2^63", write_seq: 1 << 63, slot: None },
    // Far again, and the slot of message u64::MAX says nothing: inconsistent, the reader
    // moves to u64::MAX.
    Step { what: "write_seq = u64::MAX", write_seq: u64::MAX, slot: Some((u64::MAX, 1, 0, 0)) },
    // One message at u64::MAX, then the counter wraps to 0: a valid message (read_seq wraps).
    Step {
        what: "a message at sequence u64::MAX, write_seq wrapped to 0",
        write_seq: 0,
        slot: Some((u64::MAX, 0, 8, WRAP_READING)),
    },
    // A message claiming 4 GiB: inconsistent, skipped (read_seq 1).
    Step { what: "a message of u32::MAX bytes", write_seq: 1, slot: Some((0, 1, u32::MAX, 0)) },
];

/// Publishes [`STEPS`] on the first queuing channel this partition writes, forever.
pub fn corrupt_queue(bi: &BootInfo) -> ! {
    let channel = bi.channels().iter().find(|c| c.is_writer != 0 && c.kind == CHANNEL_QUEUING as u32);
    let Some(c) = channel else {
        println!("rogue: no queuing channel to write");
        loop {
            time::sleep_ns(1_000_000_000);
        }
    };
    println!("rogue: about to publish corrupt sequence numbers on channel {}", c.name());
    let mut next = time::now_ns();
    for round in 0u64.. {
        for step in &STEPS {
            println!("rogue: round {round}: {}", step.what);
            publish(c, step);
            next = next.saturating_add(STEP_NS);
            time::sleep_until(next);
        }
    }
    unreachable!("the rounds never end")
}

fn publish(c: &ChannelInfo, step: &Step) {
    let depth = c.depth.max(1) as u64;
    let base = c.gpa;
    if let Some((n, seq, len, reading)) = step.slot {
        let slot = base + slot_offset(c.msg_size, n % depth);
        // SAFETY: the slot lies in this partition's writer pages of the channel (index below
        // `depth`, as the hypervisor sized them), identity-mapped and writable for the writer.
        unsafe {
            write_volatile((slot + SLOT_DATA_OFFSET) as *mut u64, reading);
            write_volatile((slot + SLOT_LEN_OFFSET) as *mut u32, len);
            write_volatile((slot + SLOT_SEQ_OFFSET) as *mut u64, seq);
        }
    }
    // SAFETY: the header is the start of the writer pages, writable for the writer.
    unsafe { write_volatile((base + HEADER_WRITE_SEQ_OFFSET) as *mut u64, step.write_seq) };
}
