//! A virtual 16550A UART, register-compatible with what Linux's 8250 driver probes and
//! uses (Linux's `ttyS0` at COM1).
//!
//! The hypervisor owns the real serial port; a guest's UART is this model, driven by the
//! guest's `in`/`out` instructions at [`COM1_BASE`]..[`COM1_BASE`]+7 (I/O exits). Output is
//! "transmitted" instantly: every THR write hands its byte to a [`SerialSink`] (the
//! hypervisor's console multiplexer, which prefixes lines with the partition name), so
//! LSR always reports the transmitter empty and the guest never waits.
//!
//! Interrupts: [`Uart16550::irq_asserted`] is the level of the UART's IRQ line (IRQ 4 for
//! COM1). As on a PC, the line is gated by MCR.OUT2 and is disconnected in loopback mode.
//! The THR-empty interrupt follows the 16550 rules: it becomes pending when IER.ETBEI is
//! set while the transmitter is empty and after each transmitted byte, and is cleared by
//! an IIR read that reports it or by a THR write.
//!
//! All register accesses are total: no guest value can panic the model.

/// The standard I/O base of COM1 (Linux's `ttyS0`).
pub const COM1_BASE: u16 = 0x3F8;
/// The legacy IRQ of COM1.
pub const COM1_IRQ: u8 = 4;
/// Number of I/O ports a 16550 decodes.
pub const UART_PORT_COUNT: u16 = 8;
/// Depth of the receive FIFO.
pub const RX_FIFO_DEPTH: usize = 16;

// Register offsets.
const REG_DATA: u16 = 0; // RBR (read) / THR (write) / DLL (DLAB=1)
const REG_IER: u16 = 1; // IER / DLM (DLAB=1)
const REG_IIR_FCR: u16 = 2; // IIR (read) / FCR (write)
const REG_LCR: u16 = 3;
const REG_MCR: u16 = 4;
/// Offset of the line-status register from the UART's base port.
pub const REG_LSR: u16 = 5;
const REG_MSR: u16 = 6;
const REG_SCR: u16 = 7;

/// IER: received data available interrupt.
pub const IER_RDI: u8 = 0x01;
/// IER: transmitter holding register empty interrupt.
pub const IER_THRI: u8 = 0x02;
/// IER: receiver line status interrupt.
pub const IER_RLSI: u8 = 0x04;
/// IER: modem status interrupt.
pub const IER_MSI: u8 = 0x08;
const IER_MASK: u8 = 0x0F;

/// IIR: no interrupt pending.
pub const IIR_NO_INT: u8 = 0x01;
/// IIR: modem status change.
pub const IIR_MSI: u8 = 0x00;
/// IIR: transmitter holding register empty.
pub const IIR_THRI: u8 = 0x02;
/// IIR: received data available.
pub const IIR_RDI: u8 = 0x04;
/// IIR: receiver line status.
pub const IIR_RLSI: u8 = 0x06;
/// IIR bits 6-7: both set when the FIFOs are enabled (identifies a 16550A).
pub const IIR_FIFO_ENABLED: u8 = 0xC0;

/// FCR: enable FIFOs.
pub const FCR_ENABLE_FIFO: u8 = 0x01;
/// FCR: clear the receive FIFO.
pub const FCR_CLEAR_RCVR: u8 = 0x02;
/// FCR: clear the transmit FIFO.
pub const FCR_CLEAR_XMIT: u8 = 0x04;

/// LCR: divisor latch access bit.
pub const LCR_DLAB: u8 = 0x80;

/// MCR: data terminal ready.
pub const MCR_DTR: u8 = 0x01;
/// MCR: request to send.
pub const MCR_RTS: u8 = 0x02;
/// MCR: OUT1.
pub const MCR_OUT1: u8 = 0x04;
/// MCR: OUT2 (gates the IRQ line on PCs).
pub const MCR_OUT2: u8 = 0x08;
/// MCR: loopback mode.
pub const MCR_LOOP: u8 = 0x10;
const MCR_MASK: u8 = 0x1F;

/// LSR: data ready.
pub const LSR_DR: u8 = 0x01;
/// LSR: overrun error.
pub const LSR_OE: u8 = 0x02;
/// LSR: transmitter holding register empty.
pub const LSR_THRE: u8 = 0x20;
/// LSR: transmitter empty.
pub const LSR_TEMT: u8 = 0x40;

/// MSR: delta CTS.
pub const MSR_DCTS: u8 = 0x01;
/// MSR: delta DSR.
pub const MSR_DDSR: u8 = 0x02;
/// MSR: trailing edge of RI.
pub const MSR_TERI: u8 = 0x04;
/// MSR: delta DCD.
pub const MSR_DDCD: u8 = 0x08;
/// MSR: clear to send.
pub const MSR_CTS: u8 = 0x10;
/// MSR: data set ready.
pub const MSR_DSR: u8 = 0x20;
/// MSR: ring indicator.
pub const MSR_RI: u8 = 0x40;
/// MSR: data carrier detect.
pub const MSR_DCD: u8 = 0x80;
const MSR_DELTA_MASK: u8 = 0x0F;

/// How the hypervisor programs a real 16550 for its own console, register by register
/// (offset from the base, value): no interrupts, divisor 1 (115200 baud), 8N1, FIFOs on
/// and cleared with a 14-byte threshold, DTR, RTS and OUT2.
pub const HOST_CONSOLE_INIT: [(u16, u8); 7] = [
    (REG_IER, 0x00),
    (REG_LCR, LCR_DLAB),
    (REG_DATA, 0x01),
    (REG_IER, 0x00),
    (REG_LCR, 0x03),
    (REG_IIR_FCR, 0xC7),
    (REG_MCR, MCR_DTR | MCR_RTS | MCR_OUT2),
];

/// Where transmitted bytes go. The hypervisor implements it with its console
/// multiplexer; any `FnMut(u8)` closure is a sink too.
pub trait SerialSink {
    /// Called once per byte the guest transmits (not for loopback traffic).
    fn transmit(&mut self, byte: u8);
}

impl<F: FnMut(u8)> SerialSink for F {
    fn transmit(&mut self, byte: u8) {
        self(byte)
    }
}

/// The state of one virtual 16550A.
#[derive(Debug, Clone)]
pub struct Uart16550 {
    ier: u8,
    lcr: u8,
    mcr: u8,
    scr: u8,
    dll: u8,
    dlm: u8,
    fifo_enabled: bool,
    /// Status bits of MSR that are not derived from MCR: only the delta bits.
    msr_deltas: u8,
    thr_interrupt: bool,
    overrun: bool,
    rx: [u8; RX_FIFO_DEPTH],
    rx_head: usize,
    rx_len: usize,
}

impl Default for Uart16550 {
    fn default() -> Self {
        Self::new()
    }
}

impl Uart16550 {
    /// A UART in its power-on state: 8N1 (LCR = 3), divisor 1 (115200 baud), FIFOs off,
    /// interrupts disabled.
    pub const fn new() -> Self {
        Self {
            ier: 0,
            lcr: 0x03,
            mcr: 0,
            scr: 0,
            dll: 1,
            dlm: 0,
            fifo_enabled: false,
            msr_deltas: 0,
            thr_interrupt: false,
            overrun: false,
            rx: [0; RX_FIFO_DEPTH],
            rx_head: 0,
            rx_len: 0,
        }
    }

    /// Returns the divisor latch value (baud = 115200 / divisor).
    pub fn divisor(&self) -> u16 {
        u16::from_le_bytes([self.dll, self.dlm])
    }

    /// Returns the line control register (data bits, parity, stop bits, DLAB).
    pub fn line_control(&self) -> u8 {
        self.lcr
    }

    /// Number of received bytes waiting for the guest.
    pub fn rx_pending(&self) -> usize {
        self.rx_len
    }

    /// [`Self::read`], with the transmitter reported busy (LSR's THRE and TEMT clear)
    /// when `busy()` says so: the host's back-pressure on a guest whose output has not
    /// reached the real UART yet. `busy` is asked only for an LSR read.
    pub fn read_with_backpressure(&mut self, offset: u16, busy: impl FnOnce() -> bool) -> u8 {
        let value = self.read(offset);
        if offset == REG_LSR && busy() {
            value & !(LSR_THRE | LSR_TEMT)
        } else {
            value
        }
    }

    /// A guest read of the register at `offset` (0..=7 from the UART's base port).
    /// Offsets beyond the UART read as all-ones, like an undecoded port.
    pub fn read(&mut self, offset: u16) -> u8 {
        let dlab = self.lcr & LCR_DLAB != 0;
        match offset {
            REG_DATA if dlab => self.dll,
            REG_DATA => self.pop_rx(),
            REG_IER if dlab => self.dlm,
            REG_IER => self.ier,
            REG_IIR_FCR => self.read_iir(),
            REG_LCR => self.lcr,
            REG_MCR => self.mcr,
            REG_LSR => self.read_lsr(),
            REG_MSR => {
                let value = self.modem_status() | self.msr_deltas;
                self.msr_deltas = 0;
                value
            }
            REG_SCR => self.scr,
            _ => 0xFF,
        }
    }

    /// A guest write of `value` to the register at `offset`. Transmitted bytes go to
    /// `sink` (or, in loopback mode, back into the receiver). Offsets beyond the UART are
    /// ignored.
    pub fn write(&mut self, offset: u16, value: u8, sink: &mut impl SerialSink) {
        let dlab = self.lcr & LCR_DLAB != 0;
        match offset {
            REG_DATA if dlab => self.dll = value,
            REG_DATA => self.transmit(value, sink),
            REG_IER if dlab => self.dlm = value,
            REG_IER => {
                let was_enabled = self.ier & IER_THRI != 0;
                self.ier = value & IER_MASK;
                let enabled = self.ier & IER_THRI != 0;
                // The transmitter is always empty, so enabling ETBEI raises THRE at once.
                if enabled && !was_enabled {
                    self.thr_interrupt = true;
                } else if !enabled {
                    self.thr_interrupt = false;
                }
            }
            REG_IIR_FCR => self.write_fcr(value),
            REG_LCR => self.lcr = value,
            REG_MCR => {
                let before = self.modem_status();
                self.mcr = value & MCR_MASK;
                self.note_modem_change(before);
            }
            REG_LSR | REG_MSR => {} // read-only (factory test writes are ignored)
            REG_SCR => self.scr = value,
            _ => {}
        }
    }

    /// Delivers a byte typed on the console to the guest. Returns false (and sets the
    /// overrun flag, as the hardware does) when the receive FIFO is full.
    pub fn receive(&mut self, byte: u8) -> bool {
        let capacity = if self.fifo_enabled { RX_FIFO_DEPTH } else { 1 };
        if self.rx_len >= capacity {
            self.overrun = true;
            return false;
        }
        let tail = (self.rx_head + self.rx_len) % RX_FIFO_DEPTH;
        self.rx[tail] = byte;
        self.rx_len += 1;
        true
    }

    /// The IIR value for the highest-priority pending, enabled interrupt, without the
    /// read side effects.
    fn pending_iir(&self) -> u8 {
        if self.ier & IER_RLSI != 0 && self.overrun {
            IIR_RLSI
        } else if self.ier & IER_RDI != 0 && self.rx_len > 0 {
            IIR_RDI
        } else if self.ier & IER_THRI != 0 && self.thr_interrupt {
            IIR_THRI
        } else if self.ier & IER_MSI != 0 && self.msr_deltas != 0 {
            IIR_MSI
        } else {
            IIR_NO_INT
        }
    }

    /// True while the UART drives its interrupt line (IRQ 4 for COM1): an enabled
    /// interrupt is pending, OUT2 is set and the UART is not in loopback mode. The
    /// hypervisor injects the IRQ while this is true.
    pub fn irq_asserted(&self) -> bool {
        self.pending_iir() != IIR_NO_INT && self.mcr & MCR_OUT2 != 0 && self.mcr & MCR_LOOP == 0
    }

    fn read_iir(&mut self) -> u8 {
        let id = self.pending_iir();
        // Reading IIR while it reports THRE acknowledges that interrupt.
        if id == IIR_THRI {
            self.thr_interrupt = false;
        }
        let fifo_bits = if self.fifo_enabled { IIR_FIFO_ENABLED } else { 0 };
        id | fifo_bits
    }

    fn read_lsr(&mut self) -> u8 {
        let mut value = LSR_THRE | LSR_TEMT;
        if self.rx_len > 0 {
            value |= LSR_DR;
        }
        if self.overrun {
            value |= LSR_OE;
            self.overrun = false; // error bits clear on read
        }
        value
    }

    fn write_fcr(&mut self, value: u8) {
        let enable = value & FCR_ENABLE_FIFO != 0;
        if enable != self.fifo_enabled || value & FCR_CLEAR_RCVR != 0 {
            // Toggling the FIFO enable resets both FIFOs.
            self.rx_head = 0;
            self.rx_len = 0;
        }
        self.fifo_enabled = enable;
    }

    fn transmit(&mut self, byte: u8, sink: &mut impl SerialSink) {
        if self.mcr & MCR_LOOP != 0 {
            self.receive(byte);
        } else {
            sink.transmit(byte);
        }
        // The byte left at once; the holding register is empty again.
        self.thr_interrupt = self.ier & IER_THRI != 0;
    }

    fn pop_rx(&mut self) -> u8 {
        if self.rx_len == 0 {
            return 0;
        }
        let byte = self.rx[self.rx_head];
        self.rx_head = (self.rx_head + 1) % RX_FIFO_DEPTH;
        self.rx_len -= 1;
        byte
    }

    /// The MSR status bits (4-7). In loopback mode they mirror MCR (CTS=RTS, DSR=DTR,
    /// RI=OUT1, DCD=OUT2); otherwise the virtual line is always connected (CTS, DSR, DCD).
    fn modem_status(&self) -> u8 {
        if self.mcr & MCR_LOOP != 0 {
            let mut value = 0;
            if self.mcr & MCR_RTS != 0 {
                value |= MSR_CTS;
            }
            if self.mcr & MCR_DTR != 0 {
                value |= MSR_DSR;
            }
            if self.mcr & MCR_OUT1 != 0 {
                value |= MSR_RI;
            }
            if self.mcr & MCR_OUT2 != 0 {
                value |= MSR_DCD;
            }
            value
        } else {
            MSR_CTS | MSR_DSR | MSR_DCD
        }
    }

    fn note_modem_change(&mut self, before: u8) {
        let after = self.modem_status();
        let changed = before ^ after;
        if changed & MSR_CTS != 0 {
            self.msr_deltas |= MSR_DCTS;
        }
        if changed & MSR_DSR != 0 {
            self.msr_deltas |= MSR_DDSR;
        }
        // TERI flags only the trailing edge of RI (1 -> 0).
        if before & MSR_RI != 0 && after & MSR_RI == 0 {
            self.msr_deltas |= MSR_TERI;
        }
        if changed & MSR_DCD != 0 {
            self.msr_deltas |= MSR_DDCD;
        }
        self.msr_deltas &= MSR_DELTA_MASK;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    extern crate std;
    use std::vec::Vec;

    fn uart() -> (Uart16550, Vec<u8>) {
        (Uart16550::new(), Vec::new())
    }

    #[test]
    fn linux_scratch_register_test_passes() {
        let (mut u, mut out) = uart();
        let mut sink = |b| out.push(b);
        // autoconfig: save IER, write 0, read back 0; write 0x0F, read back 0x0F.
        let saved = u.read(REG_IER);
        u.write(REG_IER, 0, &mut sink);
        assert_eq!(u.read(REG_IER), 0);
        u.write(REG_IER, 0x0F, &mut sink);
        assert_eq!(u.read(REG_IER) & 0x0F, 0x0F);
        u.write(REG_IER, 0xFF, &mut sink);
        assert_eq!(u.read(REG_IER), 0x0F, "bits 4-7 of IER are reserved on a 16550A");
        u.write(REG_IER, saved, &mut sink);
        // The SCR holds any byte.
        for v in [0x00, 0x55, 0xAA, 0xFF] {
            u.write(REG_SCR, v, &mut sink);
            assert_eq!(u.read(REG_SCR), v);
        }
        assert!(out.is_empty());
    }

    #[test]
    fn linux_loopback_test_sees_cts_and_dcd() {
        let (mut u, mut out) = uart();
        let mut sink = |b| out.push(b);
        // MCR = LOOP | OUT2 | RTS; MSR & 0xF0 must read DCD | CTS (0x90).
        u.write(REG_MCR, MCR_LOOP | 0x0A, &mut sink);
        assert_eq!(u.read(REG_MSR) & 0xF0, 0x90);
        u.write(REG_MCR, MCR_LOOP | MCR_DTR | MCR_OUT1, &mut sink);
        assert_eq!(u.read(REG_MSR) & 0xF0, MSR_DSR | MSR_RI);
        u.write(REG_MCR, 0, &mut sink);
        assert_eq!(u.read(REG_MSR) & 0xF0, MSR_CTS | MSR_DSR | MSR_DCD);
    }

    #[test]
    fn loopback_data_returns_to_receiver_not_console() {
        let (mut u, mut out) = uart();
        let mut sink = |b| out.push(b);
        u.write(REG_MCR, MCR_LOOP, &mut sink);
        u.write(REG_DATA, b'Z', &mut sink);
        assert_eq!(u.read(REG_LSR) & LSR_DR, LSR_DR);
        assert_eq!(u.read(REG_DATA), b'Z');
        assert_eq!(u.read(REG_LSR) & LSR_DR, 0);
        assert!(out.is_empty());
    }

    #[test]
    fn msr_delta_bits_report_changes_and_clear_on_read() {
        let (mut u, mut out) = uart();
        let mut sink = |b| out.push(b);
        u.write(REG_MCR, MCR_LOOP | MCR_RTS, &mut sink); // CTS 1->1, DSR 1->0, DCD 1->0
        let msr = u.read(REG_MSR);
        assert_eq!(msr & MSR_DELTA_MASK, MSR_DDSR | MSR_DDCD);
        assert_eq!(u.read(REG_MSR) & MSR_DELTA_MASK, 0);
        u.write(REG_MCR, MCR_LOOP | MCR_RTS | MCR_OUT1, &mut sink);
        u.read(REG_MSR);
        u.write(REG_MCR, MCR_LOOP | MCR_RTS, &mut sink); // RI falls
        assert_eq!(u.read(REG_MSR) & MSR_DELTA_MASK, MSR_TERI);
    }

    #[test]
    fn fifo_detection_reports_16550a() {
        let (mut u, mut out) = uart();
        let mut sink = |b| out.push(b);
        assert_eq!(u.read(REG_IIR_FCR) >> 6, 0, "FIFOs off at reset");
        u.write(REG_IIR_FCR, FCR_ENABLE_FIFO, &mut sink);
        assert_eq!(u.read(REG_IIR_FCR) >> 6, 3);
        // The TI16750 test: requesting 64-byte FIFOs must not set IIR bit 5.
        u.write(REG_IIR_FCR, FCR_ENABLE_FIFO | 0x20, &mut sink);
        assert_eq!((u.read(REG_IIR_FCR) >> 5) & 1, 0);
        // With DLAB set (LCR 0xBF, the EFR probe), offset 2 still reads IIR, never 0.
        u.write(REG_LCR, 0xBF, &mut sink);
        assert_ne!(u.read(REG_IIR_FCR), 0);
        u.write(REG_LCR, 0x03, &mut sink);
        u.write(REG_IIR_FCR, 0, &mut sink);
        assert_eq!(u.read(REG_IIR_FCR) >> 6, 0);
    }

    #[test]
    fn divisor_latch_is_behind_dlab() {
        let (mut u, mut out) = uart();
        let mut sink = |b| out.push(b);
        u.write(REG_IER, IER_RDI, &mut sink);
        u.write(REG_LCR, LCR_DLAB | 0x03, &mut sink);
        u.write(REG_DATA, 0x0C, &mut sink);
        u.write(REG_IER, 0x00, &mut sink);
        assert_eq!(u.read(REG_DATA), 0x0C);
        assert_eq!(u.read(REG_IER), 0x00);
        u.write(REG_LCR, 0x03, &mut sink);
        assert_eq!(u.divisor(), 12);
        assert_eq!(u.read(REG_IER), IER_RDI, "IER untouched by DLM writes");
        assert_eq!(u.line_control(), 0x03);
        assert!(out.is_empty(), "DLL writes are not transmitted");
    }

    #[test]
    fn output_path_delivers_bytes_in_order_and_lsr_always_ready() {
        let (mut u, mut out) = uart();
        {
            let mut sink = |b| out.push(b);
            for &b in b"hello\r\n" {
                assert_eq!(u.read(REG_LSR) & (LSR_THRE | LSR_TEMT), LSR_THRE | LSR_TEMT);
                u.write(REG_DATA, b, &mut sink);
            }
        }
        assert_eq!(out, b"hello\r\n");
    }

    #[test]
    fn thre_interrupt_follows_the_16550_rules() {
        let (mut u, mut out) = uart();
        let mut sink = |b| out.push(b);
        u.write(REG_MCR, MCR_OUT2 | MCR_DTR | MCR_RTS, &mut sink);
        assert!(!u.irq_asserted());
        assert_eq!(u.read(REG_IIR_FCR) & 0x0F, IIR_NO_INT);
        // Linux's startup THRE test: enable THRI, IIR must report THRE (not NO_INT).
        u.write(REG_IER, IER_THRI, &mut sink);
        assert!(u.irq_asserted());
        assert_eq!(u.read(REG_IIR_FCR) & 0x0F, IIR_THRI);
        // The IIR read acknowledged it.
        assert!(!u.irq_asserted());
        assert_eq!(u.read(REG_IIR_FCR) & 0x0F, IIR_NO_INT);
        // Each transmitted byte empties the holding register again.
        u.write(REG_DATA, b'x', &mut sink);
        assert!(u.irq_asserted());
        // Disabling THRI drops the line.
        u.write(REG_IER, 0, &mut sink);
        assert!(!u.irq_asserted());
        // Re-enabling raises it again.
        u.write(REG_IER, IER_THRI, &mut sink);
        assert!(u.irq_asserted());
        // Without OUT2 (or in loopback) the line is not driven, but IIR still reports.
        u.write(REG_MCR, MCR_DTR, &mut sink);
        assert!(!u.irq_asserted());
        u.write(REG_MCR, MCR_OUT2 | MCR_LOOP, &mut sink);
        assert!(!u.irq_asserted());
        assert_eq!(u.read(REG_IIR_FCR) & 0x0F, IIR_THRI);
    }

    #[test]
    fn received_data_interrupt_has_priority_over_thre() {
        let (mut u, mut out) = uart();
        let mut sink = |b| out.push(b);
        u.write(REG_IIR_FCR, FCR_ENABLE_FIFO, &mut sink);
        u.write(REG_MCR, MCR_OUT2, &mut sink);
        u.write(REG_IER, IER_THRI | IER_RDI, &mut sink);
        assert!(u.receive(b'a'));
        assert_eq!(u.read(REG_IIR_FCR), IIR_FIFO_ENABLED | IIR_RDI);
        assert_eq!(u.read(REG_DATA), b'a');
        assert_eq!(u.read(REG_IIR_FCR), IIR_FIFO_ENABLED | IIR_THRI);
    }

    #[test]
    fn receive_fifo_overruns_and_reports_it() {
        let (mut u, mut out) = uart();
        let mut sink = |b| out.push(b);
        assert!(u.receive(1));
        assert!(!u.receive(2), "without FIFOs the receiver holds one byte");
        assert_eq!(u.read(REG_LSR) & LSR_OE, LSR_OE);
        assert_eq!(u.read(REG_LSR) & LSR_OE, 0, "OE clears on read");
        u.write(REG_IIR_FCR, FCR_ENABLE_FIFO, &mut sink);
        assert_eq!(u.rx_pending(), 0, "enabling the FIFO resets it");
        for i in 0..RX_FIFO_DEPTH as u8 {
            assert!(u.receive(i));
        }
        assert!(!u.receive(99));
        for i in 0..RX_FIFO_DEPTH as u8 {
            assert_eq!(u.read(REG_DATA), i);
        }
        assert_eq!(u.read(REG_LSR) & LSR_DR, 0);
        u.receive(7);
        u.write(REG_IIR_FCR, FCR_ENABLE_FIFO | FCR_CLEAR_RCVR, &mut sink);
        assert_eq!(u.rx_pending(), 0);
    }

    #[test]
    fn out_of_range_offsets_are_inert() {
        let (mut u, mut out) = uart();
        let mut sink = |b| out.push(b);
        assert_eq!(u.read(8), 0xFF);
        assert_eq!(u.read(u16::MAX), 0xFF);
        u.write(9, 0x41, &mut sink);
        u.write(REG_LSR, 0, &mut sink);
        assert_eq!(u.read(REG_LSR), LSR_THRE | LSR_TEMT);
        assert!(out.is_empty());
    }

    proptest::proptest! {
        #[test]
        fn any_access_sequence_is_total(ops in proptest::collection::vec((0u16..10, proptest::prelude::any::<u8>(), proptest::prelude::any::<bool>()), 0..200)) {
            let (mut u, mut out) = uart();
            let mut sink = |b| out.push(b);
            for (offset, value, is_write) in ops {
                if is_write { u.write(offset, value, &mut sink) } else { u.read(offset); }
                proptest::prop_assert!(u.rx_pending() <= RX_FIFO_DEPTH);
            }
        }
    }

    #[test]
    fn the_host_console_setting_is_115200_8n1_with_fifos() {
        let (mut u, mut out) = uart();
        let mut sink = |b| out.push(b);
        u.write(REG_DATA + 1, 0x0F, &mut sink);
        for (offset, value) in HOST_CONSOLE_INIT {
            u.write(offset, value, &mut sink);
        }
        assert_eq!(u.divisor(), 1);
        assert_eq!(u.read(REG_LCR), 0x03, "8N1, DLAB off again");
        assert_eq!(u.read(REG_IER), 0, "no interrupts");
        assert_eq!(u.read(REG_IIR_FCR) & IIR_FIFO_ENABLED, IIR_FIFO_ENABLED);
        assert_eq!(u.read(REG_MCR), 0x0B);
        assert!(out.is_empty(), "nothing transmitted: the data register was the divisor");
    }

    #[test]
    fn backpressure_holds_the_transmitter_busy() {
        let (mut u, _) = uart();
        let idle = u.read(REG_LSR);
        assert_eq!(idle & (LSR_THRE | LSR_TEMT), LSR_THRE | LSR_TEMT);
        assert_eq!(u.read_with_backpressure(REG_LSR, || true), idle & !(LSR_THRE | LSR_TEMT));
        assert_eq!(u.read_with_backpressure(REG_LSR, || false), idle);
        assert_eq!(u.read_with_backpressure(REG_SCR, || panic!("asked only for the LSR")), u.read(REG_SCR));
    }
}
