//! Single-thread cost of a send plus a receive (128 at a time), against rtrb: no cache-line
//! transfers, only the instructions of each side. `cargo run --release -p hallows-ring
//! --example single_thread_cost`
use std::time::Instant;

use hallows_ring::{Geometry, QueueReader, QueueWriter, Region};

#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line([u8; 64]);

#[inline(never)]
fn ours(size: usize, n: u64) -> f64 {
    let g = Geometry::new(true, size as u32, 256).unwrap();
    let mut lines = vec![Line([0; 64]); g.region_bytes() as usize / 64];
    // SAFETY: the buffer outlives both endpoints, used only through them.
    let region = unsafe { Region::new(lines.as_mut_ptr().cast(), lines.len() * 64) };
    let mut w = QueueWriter::over(region, g).unwrap();
    let mut r = QueueReader::over(region, g).unwrap();
    let msg = vec![1u8; size];
    let mut buf = vec![0u8; size];
    let t = Instant::now();
    for _ in 0..n / 128 {
        for _ in 0..128 {
            w.send(&msg).unwrap();
        }
        for _ in 0..128 {
            r.receive(&mut buf).unwrap().unwrap();
        }
    }
    std::hint::black_box(&buf);
    t.elapsed().as_nanos() as f64 / n as f64
}

#[inline(never)]
fn theirs<const N: usize>(n: u64) -> f64 {
    let (mut p, mut c) = rtrb::RingBuffer::<[u8; N]>::new(256);
    let msg = [1u8; N];
    let mut sum = 0u64;
    let t = Instant::now();
    for _ in 0..n / 128 {
        for _ in 0..128 {
            p.push(std::hint::black_box(msg)).unwrap();
        }
        for _ in 0..128 {
            sum += std::hint::black_box(c.pop().unwrap())[0] as u64;
        }
    }
    std::hint::black_box(sum);
    t.elapsed().as_nanos() as f64 / n as f64
}

fn main() {
    // `single_thread_cost count SIZE`: one pass of 128,000 messages each, for instruction
    // counting under `valgrind --tool=callgrind` (the functions are `ours` and `theirs`).
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("count") {
        let n = 128 * 1000;
        let size: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(8);
        std::hint::black_box(match size {
            8 => (ours(8, n), theirs::<8>(n)),
            64 => (ours(64, n), theirs::<64>(n)),
            _ => (ours(1024, n), theirs::<1024>(n)),
        });
        return;
    }
    for _ in 0..3 {
        let n = 4_000_000;
        println!(
            "8 B: ring {:.1} ns, rtrb {:.1} ns | 64 B: ring {:.1} ns, rtrb {:.1} ns | 1024 B: ring {:.1} ns, rtrb {:.1} ns",
            ours(8, n),
            theirs::<8>(n),
            ours(64, n),
            theirs::<64>(n),
            ours(1024, n / 8),
            theirs::<1024>(n / 8)
        );
    }
}
