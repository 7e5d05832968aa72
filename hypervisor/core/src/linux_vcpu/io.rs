//! Port I/O policy of a Linux vCPU.
//!
//! [`LinuxIoPolicy::fill_bitmap`] passes the table's I/O ranges for the partition through
//! and traps every other port. A trapped access goes to [`LinuxIoPolicy::classify`], which
//! takes out what is the partition's own life cycle and sends everything else to the
//! devices:
//!
//! | ports | [`IoAction`] | what the binary does |
//! |---|---|---|
//! | ACPI sleep control (the FADT's, default 0x600) with SLP_EN and S5 | `PowerOff` | halt the partition |
//! | ACPI reset register (default 0x602) with the reset value, 0xCF9 with RST_CPU, 0x64 with 0xFE | `ResetRequest` | a health event of class [`RESET_REQUEST_CLASS`] (`panic`): the table's action, `restart` by default |
//! | everything else | `Device` | `hallows_vmm::port_bus`: the console UART, the PCI filter; unclaimed ports read all-ones, writes dropped |
//!
//! No trapped port ever faults: Linux probes the PIC, PIT, CMOS RTC, i8042, other UARTs
//! and port 0x80 (I/O delay) on ordinary boots, and an absent device (all-ones) is what it
//! expects on machines without them. A reset or power-off request never reaches the
//! machine: it is the partition rebooting or stopping itself. A power-off halts the
//! partition with a console line. A reset request goes through the health monitor as a
//! `panic` event, so the table's action and restart budget decide whether Linux boots
//! again (a reboot loop is cut by the budget like any restart loop).
//!
//! String I/O (INS/OUTS, with or without REP) is classified the same way;
//! [`StringIo::plan`] says how many elements to move in this exit, from which guest-linear
//! address and how to update RCX/RSI/RDI. At most [`MAX_STRING_ELEMENTS`] elements are
//! handled per exit; when more remain, RIP is not advanced, so the guest re-executes the
//! instruction and the hypervisor never spends unbounded time on one exit.
//!
//! ```
//! use hallows_core::vmx::exit::IoQualification;
//! use hallows_core::linux_vcpu::io::{IoAction, LinuxIoPolicy};
//! let policy = LinuxIoPolicy::default();
//! let out_com1 = IoQualification::decode(0x03F8_0000); // out dx, al to 0x3f8
//! assert_eq!(policy.classify(&out_com1, 0x41), IoAction::Device);
//! let reset = IoQualification::decode(0x0064_0000); // out 0x64, al
//! assert_eq!(policy.classify(&reset, 0xFE), IoAction::ResetRequest);
//! ```

use crate::vcpu::IoAccess;
use crate::vmx::bitmaps::{fill_io_bitmaps, BadPortRange};
use crate::vmx::exit::{IoDirection, IoQualification};
use hallows_abi::health::EventClass;

/// The console UART's first port (COM1).
pub const COM1: u16 = 0x3F8;
/// PCI configuration address port.
pub const PCI_CONFIG_ADDRESS: u16 = 0xCF8;
/// First PCI configuration data port.
pub const PCI_CONFIG_DATA: u16 = 0xCFC;
/// The reset control register of PCI chipsets.
pub const RESET_CONTROL: u16 = 0xCF9;
/// i8042 command port (0xFE: pulse the reset line).
pub const I8042_COMMAND: u16 = 0x64;
/// Most string I/O elements handled in one exit.
pub const MAX_STRING_ELEMENTS: u64 = 4096;

/// What to do with a trapped port access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IoAction {
    /// The partition powers itself off.
    PowerOff,
    /// The partition asks to be reset (rebooted).
    ResetRequest,
    /// An access for the partition's port bus (`hallows_vmm::port_bus`).
    Device,
}

impl IoAction {
    /// For a power-off, the console's words for it (the binary halts the partition). A
    /// reset request is not a stop: see [`IoAction::health_event`].
    pub const fn stop_line(self) -> Option<&'static str> {
        match self {
            IoAction::PowerOff => Some("powered off"),
            IoAction::ResetRequest | IoAction::Device => None,
        }
    }

    /// For a reset request, the health-monitor event it is judged as, and the words for it.
    /// Its class is [`RESET_REQUEST_CLASS`], so the table's `on panic` action decides
    /// (default `restart`: the kernel kept from boot boots again, within the partition's
    /// restart budget; past it, or with `on panic halt`, the partition halts).
    pub const fn health_event(self) -> Option<(EventClass, &'static str)> {
        match self {
            IoAction::ResetRequest => Some((RESET_REQUEST_CLASS, "Linux asked for a reboot")),
            IoAction::PowerOff | IoAction::Device => None,
        }
    }
}

/// The health-monitor class of a Linux partition's reset request: `panic`. A Linux
/// partition has no panic hypercall, and a reboot is how Linux ends a panic (`panic=-1`)
/// as well as an ordinary `reboot`; either way the partition asks to start over, which the
/// table's `on panic` action allows (`restart`) or refuses (`halt`, `halt_system`).
pub const RESET_REQUEST_CLASS: EventClass = EventClass::Panic;

/// The trapped ACPI ports (must match `legacy_linux::acpi::PowerPorts`, whose defaults are
/// 0x600, 0x601, 0x602 and reset value 0x0E).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PowerPorts {
    pub sleep_control: u16,
    pub sleep_status: u16,
    pub reset: u16,
    pub reset_value: u8,
}

impl Default for PowerPorts {
    fn default() -> Self {
        PowerPorts { sleep_control: 0x600, sleep_status: 0x601, reset: 0x602, reset_value: 0x0E }
    }
}

/// ACPI sleep type 5 (soft-off) with SLP_EN, as `legacy_linux::acpi` decodes it.
const SLP_EN: u32 = 1 << 5;
const S5: u32 = 5;

/// The I/O policy of a Linux partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinuxIoPolicy {
    /// First port of the emulated console UART.
    pub console: u16,
    pub power: PowerPorts,
}

impl Default for LinuxIoPolicy {
    fn default() -> Self {
        LinuxIoPolicy { console: COM1, power: PowerPorts::default() }
    }
}

impl LinuxIoPolicy {
    /// Writes the I/O bitmaps: `passthrough` (the table's `(first, count)` ranges for this
    /// partition) pass, every other port exits. The console, PCI and power ports always
    /// exit, even if a range claims them: a table that passes them through is refused.
    pub fn fill_bitmap(
        &self,
        bits: &mut [u8; 8192],
        passthrough: impl IntoIterator<Item = (u32, u32)> + Clone,
    ) -> Result<(), BadPortRange> {
        let owned = [
            (self.console as u32, 8),
            (PCI_CONFIG_ADDRESS as u32, 8),
            (self.power.sleep_control as u32, 1),
            (self.power.sleep_status as u32, 1),
            (self.power.reset as u32, 1),
        ];
        for (first, count) in passthrough.clone() {
            let end = first.saturating_add(count);
            if owned.iter().any(|&(f, c)| first < f + c && f < end) {
                bits.fill(0xFF);
                return Err(BadPortRange { first, count });
            }
        }
        fill_io_bitmaps(bits, passthrough)
    }

    /// Classifies a trapped access. `value` is the guest's RAX for OUT (the low `size`
    /// bytes are written); ignored for IN and string I/O.
    pub fn classify(&self, q: impl Into<IoAccess>, value: u64) -> IoAction {
        let q: IoAccess = q.into();
        let port = q.port;
        let plain_out = q.direction == IoDirection::Out && !q.string;
        let value = value as u32 & width_mask(q.size);
        let p = self.power;
        let request = match port {
            // RST_CPU (bit 2) requests the reset; other writes only set the reset type.
            RESET_CONTROL if value & 4 != 0 => IoAction::ResetRequest,
            I8042_COMMAND if value & 0xFF == 0xFE => IoAction::ResetRequest,
            _ if port == p.reset && value & 0xFF == p.reset_value as u32 => IoAction::ResetRequest,
            _ if port == p.sleep_control && value & SLP_EN != 0 && (value >> 2) & 7 == S5 => {
                IoAction::PowerOff
            }
            _ => IoAction::Device,
        };
        if plain_out {
            request
        } else {
            IoAction::Device
        }
    }
}

/// The bytes an access of `size` bytes moves.
const fn width_mask(size: u8) -> u32 {
    match size {
        1 => 0xFF,
        2 => 0xFFFF,
        _ => 0xFFFF_FFFF,
    }
}

/// Merges an IN result into RAX as the hardware does: 1- and 2-byte reads keep the other
/// bits of RAX; a 4-byte read zeroes bits 63:32.
pub const fn merge_in(rax: u64, size: u8, value: u32) -> u64 {
    match size {
        1 => (rax & !0xFF) | (value & 0xFF) as u64,
        2 => (rax & !0xFFFF) | (value & 0xFFFF) as u64,
        _ => value as u64,
    }
}

/// The work of one string I/O exit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StringIo {
    /// Elements to transfer in this exit.
    pub count: u64,
    /// Guest-linear address of the first element (RSI for OUTS, RDI for INS, plus the
    /// segment base the binary adds: DS or the override for OUTS, ES for INS).
    pub first: u64,
    /// Byte step between elements: +size, or -size when RFLAGS.DF is set.
    pub step: i64,
    /// RCX after this exit (REP only; unchanged otherwise).
    pub rcx_after: u64,
    /// RSI (OUTS) or RDI (INS) after this exit.
    pub index_after: u64,
    /// Whether the instruction is complete: advance RIP; otherwise re-enter at the same
    /// RIP and the guest continues the REP.
    pub done: bool,
}

impl StringIo {
    /// Plans a string I/O exit from the qualification, the guest's RCX, RSI (OUTS) or RDI
    /// (INS), RFLAGS and the address size in bytes (2, 4 or 8, from the VM-exit
    /// instruction-information field). Counts and indices wrap at the address size.
    pub fn plan(q: &IoQualification, rcx: u64, index: u64, rflags: u64, address_size: u8) -> StringIo {
        let mask = match address_size {
            2 => 0xFFFF,
            4 => 0xFFFF_FFFF,
            _ => u64::MAX,
        };
        let size = q.size as i64;
        let step = if rflags & (1 << 10) != 0 { -size } else { size };
        let (count, rcx_after) = if q.rep {
            let remaining = rcx & mask;
            let n = remaining.min(MAX_STRING_ELEMENTS);
            (n, (rcx & !mask) | (remaining - n))
        } else {
            (1, rcx)
        };
        let moved = (count as i64).wrapping_mul(step) as u64;
        let index_after = (index & !mask) | (index.wrapping_add(moved) & mask);
        StringIo {
            count,
            first: index & mask,
            step,
            rcx_after,
            index_after,
            done: !q.rep || rcx_after & mask == 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn q(port: u16, size: u8, out: bool) -> IoQualification {
        IoQualification {
            port,
            size,
            direction: if out { IoDirection::Out } else { IoDirection::In },
            string: false,
            rep: false,
            immediate: false,
        }
    }

    #[test]
    fn devices_and_probes_go_to_the_port_bus() {
        let p = LinuxIoPolicy::default();
        // The console UART, PCI configuration, legacy probes, the ACPI status port, and
        // every width: the policy keeps none of them.
        for port in
            [0x3F8, 0x3FD, 0x3FF, 0xCF8, 0xCFC, 0xCFF, 0x20, 0x43, 0x61, 0x70, 0x80, 0x2F8, 0x601, 0xB008]
        {
            for size in [1, 2, 4] {
                assert_eq!(p.classify(&q(port, size, false), 0), IoAction::Device, "in {port:#x}");
                assert_eq!(p.classify(&q(port, size, true), 0x12), IoAction::Device, "out {port:#x}");
            }
        }
        // The reserved size encoding 2 decodes as the widest access (4 bytes).
        let reserved = IoQualification::decode(0x0064_0000 | 2);
        assert_eq!(reserved.size, 4);
        assert_eq!(p.classify(&reserved, 0xFE), IoAction::ResetRequest, "low byte 0xFE of a dword");
        assert_eq!(p.classify(&IoQualification::decode(0x0070_0000 | 2), u64::MAX), IoAction::Device);
        assert_eq!(width_mask(1), 0xFF);
        assert_eq!(width_mask(2), 0xFFFF);
        assert_eq!(width_mask(4), 0xFFFF_FFFF);
        assert_eq!(merge_in(0x1234_5678_9ABC_DEF0, 1, 0xFF), 0x1234_5678_9ABC_DEFF);
        assert_eq!(merge_in(0x1234_5678_9ABC_DEF0, 2, 0xFFFF), 0x1234_5678_9ABC_FFFF);
        assert_eq!(merge_in(0x1234_5678_9ABC_DEF0, 4, 0xFFFF_FFFF), 0xFFFF_FFFF);
    }

    #[test]
    fn reset_and_power_requests() {
        let p = LinuxIoPolicy::default();
        assert_eq!(p.classify(&q(0xCF9, 1, true), 0x06), IoAction::ResetRequest);
        assert_eq!(p.classify(&q(0xCF9, 1, true), 0x02), IoAction::Device, "type only");
        assert_eq!(p.classify(&q(0xCF9, 1, false), 0x06), IoAction::Device);
        assert_eq!(p.classify(&q(0x64, 1, true), 0xFE), IoAction::ResetRequest);
        assert_eq!(p.classify(&q(0x64, 1, true), 0xAD), IoAction::Device);
        assert_eq!(p.classify(&q(0x602, 1, true), 0x0E), IoAction::ResetRequest);
        assert_eq!(p.classify(&q(0x602, 1, true), 0x01), IoAction::Device);
        // SLP_TYP 5, SLP_EN.
        assert_eq!(p.classify(&q(0x600, 1, true), 5 << 2 | 1 << 5), IoAction::PowerOff);
        assert_eq!(p.classify(&q(0x600, 1, true), 5 << 2), IoAction::Device);
        assert_eq!(IoAction::PowerOff.stop_line(), Some("powered off"));
        assert_eq!(IoAction::ResetRequest.stop_line(), None);
        assert_eq!(IoAction::ResetRequest.health_event().map(|(c, _)| c), Some(EventClass::Panic));
        assert_eq!(IoAction::PowerOff.health_event(), None);
        assert_eq!(IoAction::Device.health_event(), None);
        assert_eq!(IoAction::Device.stop_line(), None);
        assert_eq!(p.classify(&q(0x600, 1, true), 3 << 2 | 1 << 5), IoAction::Device);
        assert_eq!(p.classify(&q(0x601, 1, false), 0), IoAction::Device);
        // String output is never a request (it would need the bytes from guest memory).
        let mut outsb = q(0x64, 1, true);
        outsb.string = true;
        assert_eq!(p.classify(&outsb, 0xFE), IoAction::Device);
        // Upper RAX bits do not count for a byte write.
        assert_eq!(p.classify(&q(0x64, 1, true), 0xAB00_00FE), IoAction::ResetRequest);
    }

    #[test]
    fn bitmap_passes_table_ranges_and_keeps_emulated_ports() {
        use crate::vmx::bitmaps::io_access_exits;
        let p = LinuxIoPolicy::default();
        let mut bits = [0u8; 8192];
        p.fill_bitmap(&mut bits, [(0x1F0, 8), (0xC000, 0x40)]).unwrap();
        assert!(!io_access_exits(&bits, 0x1F0, 2));
        assert!(!io_access_exits(&bits, 0xC03C, 4));
        for port in [0x3F8, 0xCF8, 0xCFC, 0x600, 0x602, 0x20, 0x40, 0x80] {
            assert!(io_access_exits(&bits, port, 1), "{port:#x}");
        }
        assert_eq!(
            p.fill_bitmap(&mut bits, [(0x3F0, 0x10)]),
            Err(BadPortRange { first: 0x3F0, count: 0x10 })
        );
        assert!(bits.iter().all(|&b| b == 0xFF));
        assert!(p.fill_bitmap(&mut bits, [(0xCFC, 1)]).is_err());
        assert!(p.fill_bitmap(&mut bits, [(0xFFFF, 2)]).is_err());
    }

    #[test]
    fn string_io_plans() {
        let mut rep_outsb = q(0x3F8, 1, true);
        rep_outsb.string = true;
        rep_outsb.rep = true;
        let s = StringIo::plan(&rep_outsb, 10, 0x1000, 0x2, 8);
        assert_eq!(
            (s.count, s.first, s.step, s.rcx_after, s.index_after, s.done),
            (10, 0x1000, 1, 0, 0x100A, true)
        );
        // DF set, word elements.
        let mut rep_insw = q(0x1F0, 2, false);
        rep_insw.string = true;
        rep_insw.rep = true;
        let s = StringIo::plan(&rep_insw, 3, 0x2000, 1 << 10 | 2, 8);
        assert_eq!((s.step, s.index_after), (-2, 0x1FFA));
        // Long REP: bounded, not done, RIP stays.
        let s = StringIo::plan(&rep_outsb, 10_000, 0, 2, 8);
        assert_eq!(
            (s.count, s.rcx_after, s.done),
            (MAX_STRING_ELEMENTS, 10_000 - MAX_STRING_ELEMENTS, false)
        );
        // 16-bit addressing: CX and SI wrap, upper bits kept.
        let s = StringIo::plan(&rep_outsb, 0xABCD_0002, 0x5555_FFFF, 2, 2);
        assert_eq!((s.count, s.first, s.rcx_after, s.index_after), (2, 0xFFFF, 0xABCD_0000, 0x5555_0001));
        // Without REP: one element, RCX untouched.
        let mut outsd = q(0x3F8, 4, true);
        outsd.string = true;
        let s = StringIo::plan(&outsd, 77, 0x10, 2, 4);
        assert_eq!((s.count, s.rcx_after, s.index_after, s.done), (1, 77, 0x14, true));
        // REP with RCX = 0: nothing to do, done.
        let s = StringIo::plan(&rep_outsb, 0, 0x10, 2, 8);
        assert_eq!((s.count, s.done), (0, true));
    }

    proptest! {
        #[test]
        fn classification_never_panics(qual: u64, value: u64, rcx: u64, index: u64, rflags: u64, asz in prop::sample::select(vec![2u8, 4, 8])) {
            let q = IoQualification::decode(qual);
            let p = LinuxIoPolicy::default();
            let a = p.classify(&q, value);
            if matches!(a, IoAction::ResetRequest | IoAction::PowerOff) {
                prop_assert!(q.direction == IoDirection::Out && !q.string);
            }
            let s = StringIo::plan(&q, rcx, index, rflags, asz);
            prop_assert!(s.count <= MAX_STRING_ELEMENTS);
        }
    }
}
