//! The MMIO bus: how an EPT violation of a Linux vCPU reaches a device model.
//!
//! A device model claims a guest-physical range with [`MmioBus::register`]; the range is
//! left unmapped in the partition's EPT, so every access to it exits with an EPT
//! violation. The binary hands the exit to [`emulate`], which
//! 1. finds the device holding the faulting address ([`MmioBus::route`]),
//! 2. fetches the instruction at the guest's RIP through the guest's page tables
//!    ([`crate::guest_memory`]) and decodes it ([`crate::mmio_decode`]: only `mov`,
//!    `movzx`, `movsx` of 1, 2, 4 or 8 bytes),
//! 3. checks that the instruction's access is the one the EPT violation reported (read or
//!    write) and lies wholly inside the device's range,
//! 4. performs it on the device ([`MmioDevice::read`] / [`MmioDevice::write`]), writes a
//!    read's result to the destination register with x86's width rules, and returns the
//!    RIP after the instruction.
//!
//! Any other outcome is an [`MmioFault`]: the binary reports it to the health monitor as
//! the partition's memory violation, exactly as an EPT violation outside every device is.
//! The instruction bytes, page tables and registers are all guest-controlled; nothing here
//! panics or loops on them.
//!
//! Devices take `&self` because every vCPU of the partition reaches the same device from
//! its own core: a device keeps its state behind its own lock.

use core::fmt;

use crate::guest_memory::{fetch_instruction, GuestPhysical, Paging};
use crate::mmio_decode::{decode, MmioDecodeError, MmioDirection, MmioOperand, MAX_INSTRUCTION_BYTES};

/// A device model reached through guest-physical addresses.
pub trait MmioDevice {
    /// A read of `size` bytes (1, 2, 4 or 8) at `offset` from the start of the device's
    /// range. Bits above `size` bytes are ignored.
    fn read(&self, offset: u64, size: u8) -> u64;
    /// A write of the low `size` bytes of `value` at `offset`.
    fn write(&self, offset: u64, size: u8, value: u64);
}

/// One device's guest-physical range.
#[derive(Clone, Copy)]
struct MmioRange<'d> {
    base: u64,
    len: u64,
    device: &'d (dyn MmioDevice + Sync),
}

impl MmioRange<'_> {
    fn contains(&self, gpa: u64) -> bool {
        gpa >= self.base && gpa - self.base < self.len
    }
}

/// Why a range could not be registered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MmioRegisterError {
    /// All slots are in use.
    Full,
    /// Empty, or wrapping past the top of the address space.
    BadRange,
    /// Overlaps a range already registered.
    Overlap,
}

/// The devices of one partition by guest-physical range (at most `RANGES`).
pub struct MmioBus<'d, const RANGES: usize> {
    ranges: [Option<MmioRange<'d>>; RANGES],
}

impl<const RANGES: usize> Default for MmioBus<'_, RANGES> {
    fn default() -> Self {
        Self::new()
    }
}

impl<'d, const RANGES: usize> MmioBus<'d, RANGES> {
    /// A bus without devices: every address is nobody's.
    pub const fn new() -> Self {
        Self { ranges: [None; RANGES] }
    }

    /// Claims `len` bytes from guest-physical `base` for `device`. The caller leaves the
    /// range unmapped in the partition's EPT.
    pub fn register(
        &mut self,
        base: u64,
        len: u64,
        device: &'d (dyn MmioDevice + Sync),
    ) -> Result<(), MmioRegisterError> {
        if len == 0 || base.checked_add(len - 1).is_none() {
            return Err(MmioRegisterError::BadRange);
        }
        let last = base + (len - 1);
        let overlaps = self.ranges.iter().flatten().any(|r| base <= r.base + (r.len - 1) && r.base <= last);
        if overlaps {
            return Err(MmioRegisterError::Overlap);
        }
        let slot = self.ranges.iter_mut().find(|r| r.is_none()).ok_or(MmioRegisterError::Full)?;
        *slot = Some(MmioRange { base, len, device });
        Ok(())
    }

    /// Whether a device's range contains `gpa` (the first question on an EPT violation:
    /// if not, it is a plain memory violation).
    pub fn claims(&self, gpa: u64) -> bool {
        self.range_of(gpa).is_some()
    }

    /// The device holding all `size` bytes from `gpa`, and the offset of `gpa` in its range.
    pub fn route(&self, gpa: u64, size: u8) -> Option<(&'d (dyn MmioDevice + Sync), u64)> {
        let range = self.range_of(gpa)?;
        let offset = gpa - range.base;
        (u64::from(size) <= range.len - offset).then_some((range.device, offset))
    }

    fn range_of(&self, gpa: u64) -> Option<MmioRange<'d>> {
        self.ranges.iter().flatten().find(|r| r.contains(gpa)).copied()
    }
}

/// The access an EPT violation reports (its exit qualification, bits 0-2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EptAccess {
    /// A data read.
    Read,
    /// A data write (also set for a read-modify-write).
    Write,
    /// An instruction fetch from the device's range.
    Fetch,
}

impl EptAccess {
    /// From the EPT-violation exit qualification.
    pub const fn from_qualification(qualification: u64) -> Self {
        Self::from_flags(qualification & 4 != 0, qualification & 2 != 0)
    }

    /// From the access's kind as decoded (a fetch, else a write, else a read).
    pub const fn from_flags(fetch: bool, write: bool) -> Self {
        if fetch {
            Self::Fetch
        } else if write {
            Self::Write
        } else {
            Self::Read
        }
    }
}

/// The vCPU state an MMIO exit is emulated against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MmioExit {
    /// The guest-physical address of the access.
    pub gpa: u64,
    /// What the EPT violation says the access was.
    pub access: EptAccess,
    /// Guest RIP of the instruction.
    pub rip: u64,
    /// CS base (0 in 64-bit mode).
    pub cs_base: u64,
    /// Code size: 16, 32 or 64 ([`code_bitness`]).
    pub bitness: u32,
    /// How the vCPU translates linear addresses.
    pub paging: Paging,
}

/// The code size of a vCPU: 64 in a 64-bit code segment of IA-32e mode, else CS.D
/// selects 32 or 16; real mode (CR0.PE clear) is 16. `cs_access_rights` is the VMCS
/// format (L is bit 13, D/B bit 14).
pub const fn code_bitness(cr0: u64, efer: u64, cs_access_rights: u32) -> u32 {
    const EFER_LMA: u64 = 1 << 10;
    if cr0 & 1 == 0 {
        16
    } else if efer & EFER_LMA != 0 && cs_access_rights & (1 << 13) != 0 {
        64
    } else if cs_access_rights & (1 << 14) != 0 {
        32
    } else {
        16
    }
}

/// Why an MMIO exit was not emulated (a memory violation of the partition).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MmioFault {
    /// No device claims the address.
    NoDevice,
    /// The guest executes from a device's range.
    InstructionFetch,
    /// The instruction's bytes at RIP are not mapped or not in RAM.
    Unfetchable,
    /// The bytes are not an emulated access.
    Decode(MmioDecodeError),
    /// The instruction reads where the exit says it wrote, or the reverse.
    AccessMismatch,
    /// The access runs past the end of the device's range.
    OutsideDevice {
        /// Access width in bytes.
        size: u8,
    },
}

impl fmt::Display for MmioFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoDevice => f.write_str("no device at this address"),
            Self::InstructionFetch => f.write_str("instruction fetch from a device"),
            Self::Unfetchable => f.write_str("the instruction at RIP cannot be read"),
            Self::Decode(MmioDecodeError::Unsupported(mnemonic)) => {
                write!(f, "{mnemonic:?} is not an emulated device access (only MOV, MOVZX, MOVSX)")
            }
            Self::Decode(e) => write!(f, "instruction not decoded: {e:?}"),
            Self::AccessMismatch => f.write_str("the instruction does not match the faulting access"),
            Self::OutsideDevice { size } => write!(f, "a {size}-byte access runs past the device's range"),
        }
    }
}

/// The result of an emulated MMIO access.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MmioDone {
    /// RIP after the instruction.
    pub next_rip: u64,
    /// The general-purpose register (x86 encoding order) a read wrote, if any.
    pub written_register: Option<u8>,
}

/// Emulates the access behind an EPT violation on `bus` (see the module documentation).
/// `gprs` are the vCPU's general-purpose registers in x86 encoding order (rax, rcx, rdx,
/// rbx, rsp, rbp, rsi, rdi, r8-r15); a read updates its destination there.
pub fn emulate<const RANGES: usize>(
    bus: &MmioBus<'_, RANGES>,
    exit: &MmioExit,
    memory: &impl GuestPhysical,
    gprs: &mut [u64; 16],
) -> Result<MmioDone, MmioFault> {
    if !bus.claims(exit.gpa) {
        return Err(MmioFault::NoDevice);
    }
    if exit.access == EptAccess::Fetch {
        return Err(MmioFault::InstructionFetch);
    }
    let ip_mask = ip_mask(exit.bitness);
    let linear = exit.cs_base.wrapping_add(exit.rip & ip_mask);
    let mut bytes = [0u8; MAX_INSTRUCTION_BYTES];
    let fetched = fetch_instruction(memory, &exit.paging, linear, &mut bytes);
    if fetched == 0 {
        return Err(MmioFault::Unfetchable);
    }
    let instruction = decode(&bytes[..fetched], exit.bitness).map_err(MmioFault::Decode)?;
    let writes = instruction.direction == MmioDirection::Write;
    if writes != (exit.access == EptAccess::Write) {
        return Err(MmioFault::AccessMismatch);
    }
    let size = instruction.size;
    let (device, offset) = bus.route(exit.gpa, size).ok_or(MmioFault::OutsideDevice { size })?;
    let mut written_register = None;
    match (instruction.direction, instruction.operand) {
        (MmioDirection::Write, _) => {
            let value = instruction.write_value(|index| gprs[usize::from(index & 15)]).unwrap_or(0);
            device.write(offset, size, value);
        }
        (MmioDirection::Read, MmioOperand::Register(gpr)) => {
            let index = usize::from(gpr.index & 15);
            let data = device.read(offset, size);
            if let Some((_, value)) = instruction.complete_read(gprs[index], data) {
                gprs[index] = value;
                written_register = Some(index as u8);
            }
        }
        // The decoder never yields a read into an immediate.
        (MmioDirection::Read, MmioOperand::Immediate(_)) => return Err(MmioFault::AccessMismatch),
    }
    let next_rip = (exit.rip & !ip_mask) | (exit.rip.wrapping_add(u64::from(instruction.length)) & ip_mask);
    Ok(MmioDone { next_rip, written_register })
}

/// The bits of RIP an instruction pointer of `bitness` uses (IP and EIP wrap).
const fn ip_mask(bitness: u32) -> u64 {
    match bitness {
        16 => 0xFFFF,
        32 => 0xFFFF_FFFF,
        _ => u64::MAX,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Silent;
    impl MmioDevice for Silent {
        fn read(&self, _offset: u64, _size: u8) -> u64 {
            0
        }
        fn write(&self, _offset: u64, _size: u8, _value: u64) {}
    }
    static DEVICE: Silent = Silent;

    #[test]
    fn registration_rejects_overlaps_and_bad_ranges() {
        let mut bus = MmioBus::<2>::new();
        assert_eq!(bus.register(0x1000, 0, &DEVICE), Err(MmioRegisterError::BadRange));
        assert_eq!(bus.register(u64::MAX, 2, &DEVICE), Err(MmioRegisterError::BadRange));
        bus.register(u64::MAX, 1, &DEVICE).unwrap();
        bus.register(0xFE00_0000, 0x1000, &DEVICE).unwrap();
        assert_eq!(bus.register(0x10, 1, &DEVICE), Err(MmioRegisterError::Full));
        let mut bus = MmioBus::<4>::new();
        bus.register(0xFE00_0000, 0x1000, &DEVICE).unwrap();
        assert_eq!(bus.register(0xFE00_0FFF, 1, &DEVICE), Err(MmioRegisterError::Overlap));
        assert_eq!(bus.register(0xFDFF_F000, 0x1001, &DEVICE), Err(MmioRegisterError::Overlap));
        bus.register(0xFDFF_F000, 0x1000, &DEVICE).unwrap();
        assert!(bus.claims(0xFE00_0FFF) && bus.claims(0xFDFF_F000));
        assert!(!bus.claims(0xFE00_1000));
    }

    #[test]
    fn route_needs_the_whole_access_inside() {
        let mut bus = MmioBus::<1>::new();
        bus.register(0x1000, 0x10, &DEVICE).unwrap();
        assert_eq!(bus.route(0x1008, 8).map(|(_, offset)| offset), Some(8));
        assert!(bus.route(0x100C, 8).is_none());
        assert!(bus.route(0x0FFF, 1).is_none());
        let empty = MmioBus::<1>::new();
        assert!(!empty.claims(0));
    }

    #[test]
    fn bitness_and_access_kind() {
        assert_eq!(code_bitness(0, 0, 0), 16, "real mode");
        assert_eq!(code_bitness(1, 0, 1 << 14), 32);
        assert_eq!(code_bitness(1, 1 << 10, 1 << 13), 64);
        assert_eq!(code_bitness(1, 1 << 10, 1 << 14), 32, "compatibility mode");
        assert_eq!(code_bitness(1, 0, 0), 16);
        assert_eq!(EptAccess::from_qualification(0x181), EptAccess::Read);
        assert_eq!(EptAccess::from_qualification(0x183), EptAccess::Write);
        assert_eq!(EptAccess::from_qualification(0x184), EptAccess::Fetch);
        assert_eq!(EptAccess::from_flags(true, true), EptAccess::Fetch);
        assert_eq!(EptAccess::from_flags(false, true), EptAccess::Write);
        assert_eq!(EptAccess::from_flags(false, false), EptAccess::Read);
        assert_eq!(ip_mask(16), 0xFFFF);
    }
}
