//! The hypervisor's console: its own 16550 driver on COM1 (the hypervisor owns the port;
//! partitions never touch it) and the output queues in front of it.
//!
//! Every source of lines has its own bounded queue of whole lines
//! (`hallows_core::console_queue`): each partition's is in its `Partition`, the
//! hypervisor's own `[hv]` lines have `HV_QUEUE` here. A writer takes only its queue's
//! lock, only to copy a line in; a full queue refuses (partitions retry on their own time,
//! see `crate::console`) or drops and counts (`[hv]` lines). One pump moves the bytes to
//! the UART: on VM exits and while cores wait, whichever core gets the UART lock with
//! `try_lock` sends what the 16550's FIFO takes, taking turns between the sources line by
//! line. No run-time path waits for the UART: only boot (before `set_running`) and
//! power-off (`drain`) write synchronously.

use core::fmt::{self, Write};

use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use hallows_core::console_queue::{DroppingQueue, LineScheduler, LineSources, Taken};
use hallows_vmm::uart16550::HOST_CONSOLE_INIT;
use spin::Mutex;

use crate::cpu::{inb, outb};
use crate::partition::Partition;

/// I/O base of COM1.
pub const COM1: u16 = 0x3f8;

/// A 16550-compatible UART at an I/O base.
pub struct Uart {
    base: u16,
}

impl Uart {
    /// Programs 115200 8N1 with FIFOs and no interrupts.
    pub fn init(base: u16) -> Self {
        for (offset, value) in HOST_CONSOLE_INIT {
            outb(base + offset, value);
        }
        Self { base }
    }

    /// Whether the transmitter holding register (and so the FIFO) is empty.
    fn ready(&self) -> bool {
        inb(self.base + 5) & 0x20 != 0
    }

    fn put(&mut self, byte: u8) {
        // Bounded wait for "transmit holding register empty": a missing UART must not
        // hang the hypervisor.
        for _ in 0..100_000 {
            if self.ready() {
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

/// How many bytes the 16550's transmit FIFO takes when it reports empty.
const FIFO_BYTES: usize = 16;
/// Bytes of the hypervisor's own queue: about 1.4 s of UART time, room for some 80
/// health-monitor lines at once.
pub const HV_QUEUE_BYTES: usize = 16 * 1024;

/// The UART and whose turn it is: only the pump (`try_lock`), boot and power-off take it.
struct Output {
    uart: Option<Uart>,
    turns: LineScheduler,
}

static OUTPUT: Mutex<Output> = Mutex::new(Output { uart: None, turns: LineScheduler::new() });

/// The hypervisor's own lines (a full queue drops and counts them, and says so later).
static HV_QUEUE: Mutex<DroppingQueue<HV_QUEUE_BYTES>> = Mutex::new(DroppingQueue::new());
/// `[hv]` lines dropped for a full queue since boot.
static HV_LINES_DROPPED: AtomicU64 = AtomicU64::new(0);
/// Lines waiting in all queues: lets `pump` return without touching any lock. Changed
/// only under the lock of the queue concerned, so it never undercounts.
static QUEUED_LINES: AtomicUsize = AtomicUsize::new(0);

/// The queues in the pump's turn order: the hypervisor's, then every partition's.
struct Sources {
    partitions: &'static [Partition],
}

impl Sources {
    fn now() -> Self {
        Sources { partitions: crate::machine::MACHINE.get().map_or(&[], |m| &m.partitions[..]) }
    }
}

impl LineSources for Sources {
    fn source_count(&self) -> usize {
        1 + self.partitions.len()
    }

    fn take(&mut self, source: usize, out: &mut [u8]) -> Option<Taken> {
        let count_done = |t: Taken| {
            if t.line_done {
                QUEUED_LINES.fetch_sub(1, Ordering::Relaxed);
            }
            t
        };
        match source {
            0 => HV_QUEUE.try_lock().map(|mut hv| count_done(hv.take(out))),
            _ => self.partitions[source - 1].console_queue.try_lock().map(|mut q| count_done(q.take(out))),
        }
    }
}

/// Appends a line to partition `p`'s console queue; false (nothing stored) when full.
pub fn queue_partition_line(p: &Partition, line: &[u8]) -> bool {
    let mut queue = p.console_queue.lock();
    let stored = queue.push_line(line);
    if stored {
        QUEUED_LINES.fetch_add(1, Ordering::Relaxed);
    }
    stored
}

/// Bytes waiting in partition `p`'s console queue (for the Linux UART's back-pressure).
pub fn queued_bytes(p: &Partition) -> usize {
    p.console_queue.lock().stored()
}

/// Appends a hypervisor line to its queue; a full queue drops it and counts, and the next
/// line that fits is preceded by `[hv] console: N lines dropped`.
fn queue_hv_line(line: &[u8]) {
    let mut hv = HV_QUEUE.lock();
    let added = hv.push_line(line);
    QUEUED_LINES.fetch_add(added, Ordering::Relaxed);
    if added == 0 {
        HV_LINES_DROPPED.fetch_add(1, Ordering::Relaxed);
    }
}

/// `[hv]` lines dropped since boot because the hypervisor's queue was full.
#[allow(dead_code)] // read by the statistics the operator tools will print
pub fn hv_lines_dropped() -> u64 {
    HV_LINES_DROPPED.load(Ordering::Relaxed)
}

impl Output {
    /// Sends everything queued, waiting for the UART (bounded per byte, and bounded in
    /// all: a queue lock that is never released must not keep a core from powering off).
    fn flush(&mut self) {
        let mut buf = [0u8; FIFO_BYTES];
        for _ in 0..1u32 << 22 {
            let n = self.turns.fill(&mut Sources::now(), &mut buf);
            if n == 0 {
                if QUEUED_LINES.load(Ordering::Acquire) == 0 {
                    return;
                }
                // A writer holds a queue's lock for a moment.
                core::hint::spin_loop();
                continue;
            }
            if let Some(uart) = self.uart.as_mut() {
                for &b in &buf[..n] {
                    uart.put(b);
                }
            }
        }
    }

    /// Moves queued bytes into the UART's FIFO if it is empty; never waits. Without a
    /// UART the bytes are discarded, so writers are never refused forever.
    fn pump(&mut self) {
        if self.uart.as_ref().is_some_and(|uart| !uart.ready()) {
            return;
        }
        let mut buf = [0u8; FIFO_BYTES];
        let n = self.turns.fill(&mut Sources::now(), &mut buf);
        if let Some(uart) = self.uart.as_ref() {
            for &b in &buf[..n] {
                outb(uart.base, b);
            }
        }
    }
}

/// Initialises COM1.
pub fn init() {
    OUTPUT.lock().uart = Some(Uart::init(COM1));
}

/// Moves the console to the UART at `base` (the table's `console` port).
pub fn switch_to(base: u16) {
    let mut out = OUTPUT.lock();
    out.flush();
    out.uart = Some(Uart::init(base));
}

/// Releases the console locks held by a core that will never release them (a panic on
/// that core), so the panic message can still be printed.
pub fn break_lock() {
    if OUTPUT.is_locked() {
        // SAFETY: called only on the panic path, where the holder (possibly this very
        // core) will never run its unlock; a torn line is acceptable there.
        unsafe { OUTPUT.force_unlock() };
    }
    if HV_QUEUE.is_locked() {
        // SAFETY: as above; the queue's fields are consistent between its statements,
        // and at worst one line is lost or torn.
        unsafe { HV_QUEUE.force_unlock() };
    }
}

/// Sends everything queued and waits (bounded) until the UART has sent every byte, so a
/// power-off loses no output.
pub fn drain() {
    let mut out = OUTPUT.lock();
    out.flush();
    if let Some(uart) = out.uart.as_ref() {
        for _ in 0..1_000_000 {
            if inb(uart.base + 5) & 0x40 != 0 {
                break;
            }
        }
    }
}

/// Writes raw bytes (a whole line, already terminated) to the UART under its lock, after
/// everything queued before them, and waits until the UART took them: the hypervisor's
/// lines during boot, which must not be lost if the machine stops right after.
fn write_bytes(bytes: &[u8]) {
    let mut out = OUTPUT.lock();
    out.flush();
    if let Some(uart) = out.uart.as_mut() {
        for &b in bytes {
            uart.put(b);
        }
    }
}

/// Whether the partitions run: until then the hypervisor's own lines are written at
/// once (nothing feeds the queues during boot, and a boot that hangs must still show
/// its last line); after, they are queued, so that no core ever waits for the UART.
static RUNNING: AtomicBool = AtomicBool::new(false);

/// Called by every core as it starts running partitions.
pub fn set_running() {
    RUNNING.store(true, Ordering::Release);
}

/// Writes a hypervisor line: at once during boot, queued once partitions run.
pub fn write_hv_line(bytes: &[u8]) {
    if RUNNING.load(Ordering::Acquire) {
        queue_hv_line(bytes);
        pump();
    } else {
        write_bytes(bytes);
    }
}

/// Feeds the UART until every queue is empty (bounded: a lock that is never released
/// must not keep a core from halting). Called by a core before it halts, so output
/// queued by partitions that have all stopped still comes out.
pub fn pump_until_empty() {
    for _ in 0..50_000_000u32 {
        if QUEUED_LINES.load(Ordering::Acquire) == 0 {
            return;
        }
        pump();
        core::hint::spin_loop();
    }
}

/// Feeds the UART from the queues if it is ready; called on every VM exit and while a
/// core waits. Costs one atomic load when nothing is queued (inlined into the exit
/// path), and never waits for a lock: another core holding the UART is already sending.
#[inline(always)]
pub fn pump() {
    if QUEUED_LINES.load(Ordering::Relaxed) != 0 {
        pump_queued();
    }
}

#[cold]
#[inline(never)]
fn pump_queued() {
    if let Some(mut out) = OUTPUT.try_lock() {
        out.pump();
    }
}

/// Prints a hypervisor line (`[hv] ...`) on the console, sanitised and bounded by
/// hallows-core's console.
#[macro_export]
macro_rules! hvlog {
    ($($arg:tt)*) => {
        hallows_core::console::hv_line(&mut $crate::console::HvSink, format_args!($($arg)*))
    };
}

/// Prints a hypervisor line about partition `$partition` (a `&Partition`: health-monitor
/// reports, restarts), rate-limited per partition (see `console::partition_hv_line`).
#[macro_export]
macro_rules! hvlog_for {
    ($partition:expr, $($arg:tt)*) => {
        $crate::console::partition_hv_line($partition, format_args!($($arg)*))
    };
}
