//! Port I/O exits: decoding the exit qualification into an [`IoAccess`] and routing it
//! through an [`IoBus`], a registry of emulated devices by port range.
//!
//! A partition's I/O bitmap traps every port it does not own. A trapped access to a port
//! no device claims completes as if nothing were there: reads return all-ones of the
//! access width, writes are dropped, and a per-port counter records it for the health
//! monitor's report. That is how "everything else it probes is absent, never a hang" is
//! implemented: the guest's probe sees an empty bus and moves on.

/// Direction of a port access.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoDirection {
    /// `in`: the guest reads the port.
    In,
    /// `out`: the guest writes the port.
    Out,
}

/// One decoded port access.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IoAccess {
    /// First port accessed.
    pub port: u16,
    /// Width in bytes: 1, 2 or 4.
    pub size: u8,
    /// Read or write.
    pub direction: IoDirection,
    /// For [`IoDirection::Out`], the value written (low `size` bytes of rax).
    pub value: u32,
}

/// Why an I/O exit could not be decoded into a simple access.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoDecodeError {
    /// `ins`/`outs` (string I/O): not emulated; the hypervisor reports it to the health
    /// monitor (no device a partition is given needs it).
    StringInstruction,
    /// A size encoding the SDM marks as unused.
    BadSize,
}

/// Exit qualification bits for I/O instructions (Intel SDM vol. 3C, table "Exit
/// Qualification for I/O Instructions").
const QUAL_SIZE_MASK: u64 = 0x7;
const QUAL_DIRECTION_IN: u64 = 1 << 3;
const QUAL_STRING: u64 = 1 << 4;
const QUAL_PORT_SHIFT: u32 = 16;

impl IoAccess {
    /// Decodes a VM exit for an I/O instruction (exit reason 30) from its exit
    /// qualification and the guest's rax.
    pub fn from_exit_qualification(qualification: u64, rax: u64) -> Result<Self, IoDecodeError> {
        if qualification & QUAL_STRING != 0 {
            return Err(IoDecodeError::StringInstruction);
        }
        let size = match qualification & QUAL_SIZE_MASK {
            0 => 1,
            1 => 2,
            3 => 4,
            _ => return Err(IoDecodeError::BadSize),
        };
        let port = (qualification >> QUAL_PORT_SHIFT) as u16;
        let (direction, value) = if qualification & QUAL_DIRECTION_IN != 0 {
            (IoDirection::In, 0)
        } else {
            (IoDirection::Out, (rax & size_mask(size)) as u32)
        };
        Ok(Self { port, size, direction, value })
    }

    /// The value rax holds after an `in` that produced `value`: `in al`/`in ax` replace
    /// only the low byte/word, `in eax` writes eax and so zeroes bits 32-63.
    pub fn merge_into_rax(&self, rax: u64, value: u32) -> u64 {
        match self.size {
            4 => u64::from(value),
            size => {
                let mask = size_mask(size);
                (rax & !mask) | (u64::from(value) & mask)
            }
        }
    }
}

/// The all-ones value of an access of `size` bytes: what an empty bus returns.
pub const fn all_ones(size: u8) -> u32 {
    size_mask(size) as u32
}

const fn size_mask(size: u8) -> u64 {
    match size {
        1 => 0xFF,
        2 => 0xFFFF,
        _ => 0xFFFF_FFFF,
    }
}

/// The devices behind an [`IoBus`]; the hypervisor implements this with a `match` over
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
    fn contains(&self, port: u16) -> bool {
        port >= self.first && u32::from(port) < u32::from(self.first) + u32::from(self.count)
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
pub struct IoBus<const RANGES: usize> {
    ranges: [Option<PortRange>; RANGES],
    unclaimed: [UnclaimedPort; UNCLAIMED_SLOTS],
    unclaimed_used: usize,
    /// Accesses to unclaimed ports beyond the first [`UNCLAIMED_SLOTS`] distinct ports.
    unclaimed_overflow: u64,
}

impl<const RANGES: usize> Default for IoBus<RANGES> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const RANGES: usize> IoBus<RANGES> {
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

    /// The range claiming `port`, if any.
    pub fn route(&self, port: u16) -> Option<PortRange> {
        self.ranges.iter().flatten().find(|r| r.contains(port)).copied()
    }

    /// Performs `access`. Returns the value read for [`IoDirection::In`] (merge it into
    /// rax with [`IoAccess::merge_into_rax`]) and `None` for writes. An access is routed
    /// by its first port; a device sees the access whole (the width is its to interpret).
    pub fn dispatch(&mut self, access: &IoAccess, devices: &mut impl PortDevices) -> Option<u32> {
        match self.route(access.port) {
            Some(range) => {
                let offset = access.port - range.first;
                match access.direction {
                    IoDirection::In => Some(devices.port_read(range.device, offset, access.size)),
                    IoDirection::Out => {
                        devices.port_write(range.device, offset, access.size, access.value);
                        None
                    }
                }
            }
            None => {
                self.count_unclaimed(access.port);
                match access.direction {
                    IoDirection::In => Some(all_ones(access.size)),
                    IoDirection::Out => None,
                }
            }
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

    /// Qualification for `out dx, al/ax/eax` or `in` at `port`.
    fn qual(port: u16, size_code: u64, input: bool) -> u64 {
        (u64::from(port) << 16) | size_code | if input { QUAL_DIRECTION_IN } else { 0 }
    }

    #[test]
    fn decodes_exit_qualifications() {
        let a = IoAccess::from_exit_qualification(qual(0x3F8, 0, false), 0x1234_5641).unwrap();
        assert_eq!(a, IoAccess { port: 0x3F8, size: 1, direction: IoDirection::Out, value: 0x41 });
        let a = IoAccess::from_exit_qualification(qual(0xCFC, 3, true), u64::MAX).unwrap();
        assert_eq!(a, IoAccess { port: 0xCFC, size: 4, direction: IoDirection::In, value: 0 });
        let a = IoAccess::from_exit_qualification(qual(0x70, 1, false), 0xAABB_CCDD).unwrap();
        assert_eq!(a.value, 0xCCDD);
        assert_eq!(a.size, 2);
        assert_eq!(IoAccess::from_exit_qualification(qual(0x80, 2, false), 0), Err(IoDecodeError::BadSize));
        assert_eq!(
            IoAccess::from_exit_qualification(qual(0x80, 0, false) | QUAL_STRING, 0),
            Err(IoDecodeError::StringInstruction)
        );
    }

    #[test]
    fn in_results_merge_like_the_cpu() {
        let rax = 0x1122_3344_5566_7788;
        let byte = IoAccess { port: 0, size: 1, direction: IoDirection::In, value: 0 };
        assert_eq!(byte.merge_into_rax(rax, 0xAB), 0x1122_3344_5566_77AB);
        let word = IoAccess { size: 2, ..byte };
        assert_eq!(word.merge_into_rax(rax, 0xABCD), 0x1122_3344_5566_ABCD);
        let dword = IoAccess { size: 4, ..byte };
        assert_eq!(dword.merge_into_rax(rax, 0xABCD_EF01), 0xABCD_EF01);
    }

    struct Devices {
        uart: Uart16550,
        out: Vec<u8>,
        writes: Vec<(usize, u16, u8, u32)>,
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
        let mut bus = IoBus::<4>::new();
        bus.register(COM1_BASE, UART_PORT_COUNT, 0).unwrap();
        bus.register(0xCF8, 8, 1).unwrap();
        let mut devs = Devices { uart: Uart16550::new(), out: Vec::new(), writes: Vec::new() };

        let out = IoAccess { port: COM1_BASE, size: 1, direction: IoDirection::Out, value: b'k'.into() };
        assert_eq!(bus.dispatch(&out, &mut devs), None);
        assert_eq!(devs.out, b"k");
        let lsr = IoAccess { port: COM1_BASE + 5, size: 1, direction: IoDirection::In, value: 0 };
        assert_eq!(bus.dispatch(&lsr, &mut devs), Some(0x60));

        let w = IoAccess { port: 0xCFC, size: 2, direction: IoDirection::Out, value: 7 };
        bus.dispatch(&w, &mut devs);
        assert_eq!(devs.writes, [(1, 4, 2, 7)]);

        for size in [1, 2, 4] {
            let r = IoAccess { port: 0x2F8, size, direction: IoDirection::In, value: 0 };
            assert_eq!(bus.dispatch(&r, &mut devs), Some(all_ones(size)));
        }
        let w = IoAccess { port: 0x64, size: 1, direction: IoDirection::Out, value: 0xFE };
        assert_eq!(bus.dispatch(&w, &mut devs), None);
        assert_eq!(
            bus.unclaimed(),
            [UnclaimedPort { port: 0x2F8, count: 3 }, UnclaimedPort { port: 0x64, count: 1 }]
        );
        assert_eq!(devs.writes.len(), 1, "unclaimed writes reach no device");
    }

    #[test]
    fn registration_rejects_overlaps_and_bad_ranges() {
        let mut bus = IoBus::<2>::new();
        assert_eq!(bus.register(0x3F8, 0, 0), Err(RegisterError::BadRange));
        assert_eq!(bus.register(0xFFFF, 2, 0), Err(RegisterError::BadRange));
        bus.register(0xFFFF, 1, 0).unwrap();
        bus.register(0x3F8, 8, 1).unwrap();
        let mut full = bus.clone();
        assert_eq!(full.register(0x10, 1, 2), Err(RegisterError::Full));
        let mut bus = IoBus::<4>::new();
        bus.register(0x3F8, 8, 1).unwrap();
        assert_eq!(bus.register(0x3FF, 1, 2), Err(RegisterError::Overlap));
        assert_eq!(bus.register(0x3F0, 9, 2), Err(RegisterError::Overlap));
        bus.register(0x3F0, 8, 2).unwrap();
        assert_eq!(bus.route(0x3F7).map(|r| r.device), Some(2));
        assert_eq!(bus.route(0x3F8).map(|r| r.device), Some(1));
        assert_eq!(bus.route(0x400), None);
    }

    #[test]
    fn unclaimed_counters_overflow_into_one_total() {
        let mut bus = IoBus::<1>::new();
        let mut devs = Devices { uart: Uart16550::new(), out: Vec::new(), writes: Vec::new() };
        for port in 0..(UNCLAIMED_SLOTS as u16 + 5) {
            let r = IoAccess { port, size: 1, direction: IoDirection::In, value: 0 };
            bus.dispatch(&r, &mut devs);
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
}
