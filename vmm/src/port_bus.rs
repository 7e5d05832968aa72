//! The port bus: the one path by which a trapped port access of a Linux vCPU reaches a
//! device model.
//!
//! The binary decodes the I/O exit (`hallows_core::vmx::exit::IoQualification`), lets the
//! vCPU policy (`hallows_core::linux_vcpu::io`) take the ports that are partition
//! life-cycle requests (power-off, reset), and hands every other access to
//! [`PortBus::read`] or [`PortBus::write`]. Devices claim port ranges with
//! [`PortBus::register`]; an access lies on a device only if all its bytes are inside the
//! device's range (a wider access straddling the end is nobody's, as an ISA decoder would
//! see it).
//!
//! A trapped access to a port no device claims completes as if nothing were there: reads
//! return all-ones of the access width, writes are dropped, and a per-port counter records
//! it. That is how "everything else it probes is absent, never a hang" is implemented: the
//! guest's probe sees an empty bus and moves on.

/// The all-ones value of an access of `size` bytes: what an empty bus returns, and the
/// mask of the bytes an access moves.
pub const fn all_ones(size: u8) -> u32 {
    match size {
        1 => 0xFF,
        2 => 0xFFFF,
        _ => 0xFFFF_FFFF,
    }
}

/// The devices behind a [`PortBus`]; the hypervisor implements this with a `match` over
/// its device ids (for example id 0 = the UART, id 1 = the PCI filter).
pub trait PortDevices {
    /// Reads `size` bytes at `offset` from the start of device `id`'s range.
    fn port_read(&mut self, id: usize, offset: u16, size: u8) -> u32;
    /// Writes `size` bytes of `value` at `offset` from the start of device `id`'s range.
    fn port_write(&mut self, id: usize, offset: u16, size: u8, value: u32);
}

/// A device's claim on a port range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange {
    /// First port.
    pub first: u16,
    /// Number of ports (at least 1).
    pub count: u16,
    /// The device id passed to [`PortDevices`].
    pub device: usize,
}

impl PortRange {
    /// Whether `size` bytes from `port` all lie in the range.
    fn holds(&self, port: u16, size: u8) -> bool {
        let end = u32::from(self.first) + u32::from(self.count);
        port >= self.first && u32::from(port) + u32::from(size.max(1)) <= end
    }
}

/// Why a range could not be registered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegisterError {
    /// All `RANGES` slots are in use.
    Full,
    /// Empty or wrapping past port 0xFFFF.
    BadRange,
    /// Overlaps a range already registered.
    Overlap,
}

/// How many distinct unclaimed ports get their own counter.
pub const UNCLAIMED_SLOTS: usize = 32;

/// Count of trapped accesses to one port that no device claims.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UnclaimedPort {
    /// The port.
    pub port: u16,
    /// How many accesses it received.
    pub count: u64,
}

/// Routes port accesses to emulated devices; unclaimed ports read all-ones.
#[derive(Debug, Clone)]
pub struct PortBus<const RANGES: usize> {
    ranges: [Option<PortRange>; RANGES],
    unclaimed: [UnclaimedPort; UNCLAIMED_SLOTS],
    unclaimed_used: usize,
    /// Accesses to unclaimed ports beyond the first [`UNCLAIMED_SLOTS`] distinct ports.
    unclaimed_overflow: u64,
}

impl<const RANGES: usize> Default for PortBus<RANGES> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const RANGES: usize> PortBus<RANGES> {
    /// An empty bus: every port unclaimed.
    pub const fn new() -> Self {
        Self {
            ranges: [None; RANGES],
            unclaimed: [UnclaimedPort { port: 0, count: 0 }; UNCLAIMED_SLOTS],
            unclaimed_used: 0,
            unclaimed_overflow: 0,
        }
    }

    /// Claims `count` ports from `first` for device `device`.
    pub fn register(&mut self, first: u16, count: u16, device: usize) -> Result<(), RegisterError> {
        if count == 0 || u32::from(first) + u32::from(count) > 0x1_0000 {
            return Err(RegisterError::BadRange);
        }
        let new = PortRange { first, count, device };
        let last = u32::from(first) + u32::from(count) - 1;
        for existing in self.ranges.iter().flatten() {
            let existing_last = u32::from(existing.first) + u32::from(existing.count) - 1;
            if u32::from(first) <= existing_last && u32::from(existing.first) <= last {
                return Err(RegisterError::Overlap);
            }
        }
        let slot = self.ranges.iter_mut().find(|r| r.is_none()).ok_or(RegisterError::Full)?;
        *slot = Some(new);
        Ok(())
    }

    /// The range holding all `size` bytes of an access at `port`, if any.
    pub fn route(&self, port: u16, size: u8) -> Option<PortRange> {
        self.ranges.iter().flatten().find(|r| r.holds(port, size)).copied()
    }

    /// An `in` of `size` bytes (1, 2 or 4) from `port`: the device's value, or all-ones
    /// when no device holds the access. Merge it into RAX as the CPU would
    /// (`hallows_core::linux_vcpu::io::merge_in`).
    pub fn read(&mut self, port: u16, size: u8, devices: &mut impl PortDevices) -> u32 {
        match self.route(port, size) {
            Some(range) => devices.port_read(range.device, port - range.first, size) & all_ones(size),
            None => {
                self.count_unclaimed(port);
                all_ones(size)
            }
        }
    }

    /// An `out` of the low `size` bytes of `value` to `port`; dropped when no device holds
    /// the access.
    pub fn write(&mut self, port: u16, size: u8, value: u32, devices: &mut impl PortDevices) {
        match self.route(port, size) {
            Some(range) => devices.port_write(range.device, port - range.first, size, value & all_ones(size)),
            None => self.count_unclaimed(port),
        }
    }

    fn count_unclaimed(&mut self, port: u16) {
        let used = &mut self.unclaimed[..self.unclaimed_used];
        if let Some(entry) = used.iter_mut().find(|e| e.port == port) {
            entry.count += 1;
        } else if self.unclaimed_used < UNCLAIMED_SLOTS {
            self.unclaimed[self.unclaimed_used] = UnclaimedPort { port, count: 1 };
            self.unclaimed_used += 1;
        } else {
            self.unclaimed_overflow += 1;
        }
    }

    /// Counters of accesses to unclaimed ports, in first-seen order.
    pub fn unclaimed(&self) -> &[UnclaimedPort] {
        &self.unclaimed[..self.unclaimed_used]
    }

    /// Accesses to unclaimed ports that found no free counter.
    pub fn unclaimed_overflow(&self) -> u64 {
        self.unclaimed_overflow
    }
}

/// Adapts a byte-wide device (like the UART) to accesses of any width: a 2- or 4-byte
/// access is split into consecutive byte accesses, lowest port first, as the bus would.
pub fn read_bytewise(size: u8, mut read_byte: impl FnMut(u16) -> u8) -> u32 {
    (0..u16::from(size.min(4))).fold(0u32, |acc, i| acc | u32::from(read_byte(i)) << (8 * i))
}

/// The write counterpart of [`read_bytewise`].
pub fn write_bytewise(size: u8, value: u32, mut write_byte: impl FnMut(u16, u8)) {
    for i in 0..u16::from(size.min(4)) {
        write_byte(i, (value >> (8 * i)) as u8);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::uart16550::{Uart16550, COM1_BASE, UART_PORT_COUNT};
    extern crate std;
    use std::vec::Vec;

    struct Devices {
        uart: Uart16550,
        out: Vec<u8>,
        writes: Vec<(usize, u16, u8, u32)>,
    }

    impl Devices {
        fn new() -> Self {
            Devices { uart: Uart16550::new(), out: Vec::new(), writes: Vec::new() }
        }
    }

    impl PortDevices for Devices {
        fn port_read(&mut self, id: usize, offset: u16, size: u8) -> u32 {
            match id {
                0 => read_bytewise(size, |i| self.uart.read(offset + i)),
                _ => 0x5A5A_5A5A,
            }
        }
        fn port_write(&mut self, id: usize, offset: u16, size: u8, value: u32) {
            match id {
                0 => {
                    let (uart, out) = (&mut self.uart, &mut self.out);
                    let mut sink = |b| out.push(b);
                    write_bytewise(size, value, |i, b| uart.write(offset + i, b, &mut sink));
                }
                _ => self.writes.push((id, offset, size, value)),
            }
        }
    }

    #[test]
    fn routes_to_devices_and_unclaimed_ports_read_all_ones() {
        let mut bus = PortBus::<4>::new();
        bus.register(COM1_BASE, UART_PORT_COUNT, 0).unwrap();
        bus.register(0xCF8, 8, 1).unwrap();
        let mut devs = Devices::new();

        bus.write(COM1_BASE, 1, u32::from(b'k') | 0xFF00, &mut devs);
        assert_eq!(devs.out, b"k");
        assert_eq!(bus.read(COM1_BASE + 5, 1, &mut devs), 0x60, "LSR: transmitter empty");

        bus.write(0xCFC, 2, 0xABCD_0007, &mut devs);
        assert_eq!(devs.writes, [(1, 4, 2, 7)], "offset in the range, value cut to the width");
        assert_eq!(bus.read(0xCFE, 1, &mut devs), 0x5A, "reads are cut to the width");

        for size in [1, 2, 4] {
            assert_eq!(bus.read(0x2F8, size, &mut devs), all_ones(size));
        }
        bus.write(0x64, 1, 0xFE, &mut devs);
        assert_eq!(
            bus.unclaimed(),
            [UnclaimedPort { port: 0x2F8, count: 3 }, UnclaimedPort { port: 0x64, count: 1 }]
        );
        assert_eq!(devs.writes.len(), 1, "unclaimed writes reach no device");
    }

    #[test]
    fn an_access_straddling_a_range_end_is_nobodys() {
        let mut bus = PortBus::<2>::new();
        bus.register(COM1_BASE, UART_PORT_COUNT, 0).unwrap();
        let mut devs = Devices::new();
        // in ax, 0x3FF: one byte inside the UART, one beyond it.
        assert_eq!(bus.read(COM1_BASE + 7, 2, &mut devs), 0xFFFF);
        bus.write(COM1_BASE + 6, 4, 0x4141_4141, &mut devs);
        assert!(devs.out.is_empty());
        assert_eq!(
            bus.unclaimed(),
            [UnclaimedPort { port: 0x3FF, count: 1 }, UnclaimedPort { port: 0x3FE, count: 1 }]
        );
        // The last two bytes of the range as a word are the UART's (scratch register).
        bus.write(COM1_BASE + 6, 2, 0x4200, &mut devs);
        assert_eq!(bus.read(COM1_BASE + 7, 1, &mut devs), 0x42);
        assert_eq!(bus.route(0xFFFF, 4), None, "never wraps past the last port");
    }

    #[test]
    fn registration_rejects_overlaps_and_bad_ranges() {
        let mut bus = PortBus::<2>::new();
        assert_eq!(bus.register(0x3F8, 0, 0), Err(RegisterError::BadRange));
        assert_eq!(bus.register(0xFFFF, 2, 0), Err(RegisterError::BadRange));
        bus.register(0xFFFF, 1, 0).unwrap();
        bus.register(0x3F8, 8, 1).unwrap();
        let mut full = bus.clone();
        assert_eq!(full.register(0x10, 1, 2), Err(RegisterError::Full));
        let mut bus = PortBus::<4>::new();
        bus.register(0x3F8, 8, 1).unwrap();
        assert_eq!(bus.register(0x3FF, 1, 2), Err(RegisterError::Overlap));
        assert_eq!(bus.register(0x3F0, 9, 2), Err(RegisterError::Overlap));
        bus.register(0x3F0, 8, 2).unwrap();
        assert_eq!(bus.route(0x3F7, 1).map(|r| r.device), Some(2));
        assert_eq!(bus.route(0x3F8, 4).map(|r| r.device), Some(1));
        assert_eq!(bus.route(0x400, 1), None);
    }

    #[test]
    fn unclaimed_counters_overflow_into_one_total() {
        let mut bus = PortBus::<1>::new();
        let mut devs = Devices::new();
        for port in 0..(UNCLAIMED_SLOTS as u16 + 5) {
            bus.read(port, 1, &mut devs);
        }
        assert_eq!(bus.unclaimed().len(), UNCLAIMED_SLOTS);
        assert_eq!(bus.unclaimed_overflow(), 5);
    }

    #[test]
    fn bytewise_helpers_split_little_endian() {
        let regs = [0x11u8, 0x22, 0x33, 0x44];
        assert_eq!(read_bytewise(4, |i| regs[usize::from(i)]), 0x4433_2211);
        assert_eq!(read_bytewise(2, |i| regs[usize::from(i)]), 0x2211);
        let mut seen = Vec::new();
        write_bytewise(2, 0xBEEF, |i, b| seen.push((i, b)));
        assert_eq!(seen, [(0, 0xEF), (1, 0xBE)]);
    }

    proptest::proptest! {
        #[test]
        fn any_access_completes_inside_its_width(port: u16, size in 1u8..=4, value: u32) {
            let mut bus = PortBus::<2>::new();
            bus.register(COM1_BASE, UART_PORT_COUNT, 0).unwrap();
            bus.register(0xFFF8, 8, 1).unwrap();
            let mut devs = Devices::new();
            proptest::prop_assert_eq!(bus.read(port, size, &mut devs) & !all_ones(size), 0);
            bus.write(port, size, value, &mut devs);
            for &(_, offset, width, written) in &devs.writes {
                proptest::prop_assert!(u32::from(offset) + u32::from(width) <= 8);
                proptest::prop_assert_eq!(written & !all_ones(width), 0);
            }
        }
    }
}
