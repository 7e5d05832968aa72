//! The hypervisor's console: its own 16550 driver on COM1 (the hypervisor owns the port;
//! partitions never touch it), serialised across cores with a spinlock.

use core::fmt::{self, Write};

use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use spin::Mutex;

use crate::cpu::{inb, outb};

/// I/O base of COM1.
pub const COM1: u16 = 0x3f8;

/// A 16550-compatible UART at an I/O base.
pub struct Uart {
    base: u16,
}

impl Uart {
    /// Programs 115200 8N1 with FIFOs and no interrupts.
    pub fn init(base: u16) -> Self {
        outb(base + 1, 0x00); // no interrupts
        outb(base + 3, 0x80); // DLAB on
        outb(base, 0x01); // divisor 1: 115200 baud
        outb(base + 1, 0x00);
        outb(base + 3, 0x03); // 8N1, DLAB off
        outb(base + 2, 0xc7); // FIFO on, cleared, 14-byte threshold
        outb(base + 4, 0x0b); // DTR, RTS, OUT2
        Self { base }
    }

    fn put(&mut self, byte: u8) {
        // Bounded wait for "transmit holding register empty": a missing UART must not
        // hang the hypervisor.
        for _ in 0..100_000 {
            if inb(self.base + 5) & 0x20 != 0 {
                break;
            }
        }
        outb(self.base, byte);
    }
}

impl Write for Uart {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for b in s.bytes() {
            if b == b'\n' {
                self.put(b'\r');
            }
            self.put(b);
        }
        Ok(())
    }
}

/// Bytes of console output the hypervisor can hold while the UART sends. Partitions'
/// lines are queued here instead of being written byte by byte with the UART's line
/// rate (about 87 µs a byte at 115200 baud), which would stall the writing partition
/// for milliseconds per line and make it overrun its window.
const RING_BYTES: usize = 64 * 1024;
/// How many bytes the 16550's transmit FIFO takes when it reports empty.
const FIFO_BYTES: usize = 16;

/// Queued console output, oldest byte at `head`.
struct Ring {
    buf: [u8; RING_BYTES],
    head: usize,
    len: usize,
}

impl Ring {
    fn push(&mut self, byte: u8) -> bool {
        if self.len == RING_BYTES {
            return false;
        }
        self.buf[(self.head + self.len) % RING_BYTES] = byte;
        self.len += 1;
        true
    }

    fn pop(&mut self) -> Option<u8> {
        if self.len == 0 {
            return None;
        }
        let b = self.buf[self.head];
        self.head = (self.head + 1) % RING_BYTES;
        self.len -= 1;
        Some(b)
    }
}

/// The UART and what is queued for it.
pub struct Console {
    uart: Option<Uart>,
    ring: Ring,
}

impl Console {
    /// Sends everything queued, waiting for the UART (bounded per byte).
    fn flush(&mut self) {
        if let Some(uart) = self.uart.as_mut() {
            while let Some(b) = self.ring.pop() {
                uart.put(b);
            }
        }
        self.note_backlog();
    }

    /// Moves queued bytes into the UART's FIFO if it is empty; never waits.
    fn pump(&mut self) {
        if let Some(uart) = self.uart.as_mut() {
            if inb(uart.base + 5) & 0x20 != 0 {
                for _ in 0..FIFO_BYTES {
                    let Some(b) = self.ring.pop() else { break };
                    outb(uart.base, b);
                }
            }
        }
        self.note_backlog();
    }

    fn note_backlog(&self) {
        BACKLOG.store(self.ring.len, Ordering::Relaxed);
        if self.ring.len == 0 {
            PENDING.store(false, Ordering::Release);
        }
    }
}

/// The console, once initialised.
pub static CONSOLE: Mutex<Console> =
    Mutex::new(Console { uart: None, ring: Ring { buf: [0; RING_BYTES], head: 0, len: 0 } });
/// Whether bytes wait in the ring: lets `pump` return without touching the lock.
static PENDING: AtomicBool = AtomicBool::new(false);
/// Mirror of the queue's length, readable without the lock.
static BACKLOG: AtomicUsize = AtomicUsize::new(0);

/// Initialises COM1.
pub fn init() {
    CONSOLE.lock().uart = Some(Uart::init(COM1));
}

/// Moves the console to the UART at `base` (the table's `console` port).
pub fn switch_to(base: u16) {
    let mut c = CONSOLE.lock();
    c.flush();
    c.uart = Some(Uart::init(base));
}

/// Releases the console lock held by a core that will never release it (a panic on
/// that core), so the panic message can still be printed.
pub fn break_lock() {
    if CONSOLE.is_locked() {
        // SAFETY: called only on the panic path, where the holder (possibly this very
        // core) will never run its unlock; a torn line is acceptable there.
        unsafe { CONSOLE.force_unlock() };
    }
}

/// Sends everything queued and waits (bounded) until COM1 has sent every byte, so a
/// power-off loses no output.
pub fn drain() {
    let mut c = CONSOLE.lock();
    c.flush();
    if let Some(uart) = c.uart.as_ref() {
        for _ in 0..1_000_000 {
            if inb(uart.base + 5) & 0x40 != 0 {
                break;
            }
        }
    }
}

/// Writes raw bytes (a whole line, already terminated) to COM1 under the lock, after
/// everything queued before them, and waits until the UART took them: the hypervisor's
/// own lines, which must not be lost if the machine stops right after.
pub fn write_bytes(bytes: &[u8]) {
    let mut c = CONSOLE.lock();
    c.flush();
    if let Some(uart) = c.uart.as_mut() {
        for &b in bytes {
            uart.put(b);
        }
    }
}

/// Queues raw bytes (a whole line) for COM1 and sends what the UART takes now. A full
/// ring is emptied synchronously first, so output is never dropped or reordered.
pub fn queue_bytes(bytes: &[u8]) {
    let mut c = CONSOLE.lock();
    for &b in bytes {
        if !c.ring.push(b) {
            c.flush();
            c.ring.push(b);
        }
    }
    PENDING.store(true, Ordering::Release);
    c.pump();
}

/// Queued bytes above which a virtual UART reports its transmitter busy (see the Linux
/// glue): chatty guests then wait for the real UART on their own cores, and the queue
/// keeps room for every other partition's lines.
pub const BACKLOG_LIMIT: usize = 2048;

/// Bytes waiting in the queue (a racy snapshot; good enough for back-pressure).
pub fn backlog() -> usize {
    BACKLOG.load(Ordering::Relaxed)
}

/// Whether the partitions run: until then the hypervisor's own lines are written at
/// once (nothing feeds the queue during boot, and a boot that hangs must still show
/// its last line); after, they are queued like the partitions' lines so that no core
/// ever holds the console lock for a whole backlog.
static RUNNING: AtomicBool = AtomicBool::new(false);

/// Called by every core as it starts running partitions.
pub fn set_running() {
    RUNNING.store(true, Ordering::Release);
}

/// Writes a hypervisor line: at once during boot, queued once partitions run.
pub fn write_hv_line(bytes: &[u8]) {
    if RUNNING.load(Ordering::Acquire) {
        queue_bytes(bytes);
    } else {
        write_bytes(bytes);
    }
}

/// Feeds the UART until the queue is empty (bounded: a console lock that is never
/// released must not keep a core from halting). Called by a core before it halts, so
/// output queued by partitions that have all stopped still comes out.
pub fn pump_until_empty() {
    for _ in 0..50_000_000u32 {
        if !PENDING.load(Ordering::Acquire) {
            return;
        }
        pump();
        core::hint::spin_loop();
    }
}

/// Feeds the UART from the queue if it is ready; called on every VM exit and while a
/// core waits. Costs one atomic load when nothing is queued (inlined into the exit
/// path), and never waits for the lock: another core holding it is already sending.
#[inline(always)]
pub fn pump() {
    if PENDING.load(Ordering::Acquire) {
        pump_queued();
    }
}

#[cold]
#[inline(never)]
fn pump_queued() {
    if let Some(mut c) = CONSOLE.try_lock() {
        c.pump();
    }
}

/// Prints a hypervisor line (`[hv] ...`) on COM1, sanitised and bounded by
/// hallows-core's console.
#[macro_export]
macro_rules! hvlog {
    ($($arg:tt)*) => {
        hallows_core::console::hv_line(&mut $crate::console::HvSink, format_args!($($arg)*))
    };
}
