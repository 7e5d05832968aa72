//! The hypervisor's console: its own 16550 driver on COM1 (the hypervisor owns the port;
//! partitions never touch it), serialised across cores with a spinlock.

use core::fmt::{self, Write};

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

/// The console, once initialised.
pub static CONSOLE: Mutex<Option<Uart>> = Mutex::new(None);

/// Initialises COM1.
pub fn init() {
    *CONSOLE.lock() = Some(Uart::init(COM1));
}

/// Moves the console to the UART at `base` (the table's `console` port).
pub fn switch_to(base: u16) {
    *CONSOLE.lock() = Some(Uart::init(base));
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

/// Waits (bounded) until COM1 has sent every byte, so a power-off loses no output.
pub fn drain() {
    if let Some(uart) = CONSOLE.lock().as_ref() {
        for _ in 0..1_000_000 {
            if inb(uart.base + 5) & 0x40 != 0 {
                break;
            }
        }
    }
}

/// Writes raw bytes (a whole line, already terminated) to COM1 under the lock.
pub fn write_bytes(bytes: &[u8]) {
    if let Some(uart) = CONSOLE.lock().as_mut() {
        for &b in bytes {
            uart.put(b);
        }
    }
}

/// Prints a hypervisor line (`[hv] ...`) on COM1, sanitised and bounded by
/// hallows-core's console.
#[macro_export]
macro_rules! hvlog {
    ($($arg:tt)*) => {
        hallows_core::console::hv_line(&mut $crate::console::SerialSink, format_args!($($arg)*))
    };
}
