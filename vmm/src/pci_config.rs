//! PCI configuration-space filtering through the legacy mechanism #1 ports
//! ([`CONFIG_ADDRESS_PORT`] 0xCF8 and [`CONFIG_DATA_PORT`] 0xCFC-0xCFF).
//!
//! Every partition's accesses to these ports trap. The filter keeps the partition's own
//! view of CONFIG_ADDRESS, and forwards data accesses to the real configuration space
//! (through [`PciConfigSpace`], which the hypervisor implements with real port I/O
//! under its own lock) only for the functions the table passes through to it. Any other
//! function reads as all-ones, which is how PCI says "no device here" (vendor 0xFFFF), and
//! ignores writes.
//!
//! On a passed-through function, writes to the BARs and the expansion ROM BAR are limited
//! to sizing probes: writing all-ones (the probe) or writing back the value the BAR had
//! before the partition first touched it (the restore). A guest can therefore size its
//! BARs but never move a device's decode window over another partition's memory. Such
//! refused writes are counted for the health monitor.
//!
//! Not covered here: port 0xCF9 (the chipset reset control) is not part of this range
//! and must stay unclaimed (a reset request is a health-monitor event, never forwarded);
//! extended configuration space through ECAM is MMIO and not offered to guests.

/// CONFIG_ADDRESS: the dword that selects bus/device/function/register.
pub const CONFIG_ADDRESS_PORT: u16 = 0xCF8;
/// CONFIG_DATA: four byte lanes 0xCFC..=0xCFF of the selected dword.
pub const CONFIG_DATA_PORT: u16 = 0xCFC;
/// CONFIG_ADDRESS bit 31: enable configuration cycles.
pub const CONFIG_ENABLE: u32 = 1 << 31;

/// Type-0 header: vendor id (low word) and device id (high word).
pub const REG_VENDOR: u8 = 0x00;
/// Type-0 header: command (low word) and status (high word).
pub const REG_COMMAND: u8 = 0x04;
/// Type-0 header: revision id (low byte) and class code (upper three bytes).
pub const REG_CLASS_REVISION: u8 = 0x08;
/// Type-0 header: cache line size, latency timer, header type, BIST.
pub const REG_HEADER: u8 = 0x0C;
/// Type-0 header: subsystem vendor id (low word) and subsystem id (high word).
pub const REG_SUBSYSTEM: u8 = 0x2C;
/// Command register bit 1: memory space decoding.
pub const COMMAND_MEMORY: u16 = 1 << 1;
/// First BAR register.
pub const REG_BAR0: u8 = 0x10;
/// Last BAR register (BAR5).
pub const REG_BAR5: u8 = 0x24;
/// Type-0 header expansion ROM BAR.
pub const REG_ROM_BAR: u8 = 0x30;
/// ROM BAR bit 0: decode enable (the rest of the low 11 bits are reserved).
const ROM_ENABLE: u32 = 1;

/// Number of BAR-like registers tracked per function (six BARs and the ROM BAR).
const TRACKED_BARS: usize = 7;

/// A PCI function's address on segment 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bdf {
    /// Bus number.
    pub bus: u8,
    /// Device number, 0..=31.
    pub device: u8,
    /// Function number, 0..=7.
    pub function: u8,
}

impl Bdf {
    /// Extracts bus/device/function from a CONFIG_ADDRESS value.
    pub fn from_config_address(address: u32) -> Self {
        Self {
            bus: (address >> 16) as u8,
            device: ((address >> 11) & 0x1F) as u8,
            function: ((address >> 8) & 0x7) as u8,
        }
    }
}

/// The machine's real configuration space, as the hypervisor accesses it. `register`
/// is the byte offset (0..=255), `size` is 1, 2 or 4 and the access never crosses a dword.
pub trait PciConfigSpace {
    /// Reads `size` bytes at `register` of function `bdf`.
    fn read(&mut self, bdf: Bdf, register: u8, size: u8) -> u32;
    /// Writes `size` bytes of `value` at `register` of function `bdf`.
    fn write(&mut self, bdf: Bdf, register: u8, size: u8, value: u32);
}

#[derive(Debug, Clone, Copy, Default)]
struct Passthrough {
    bdf: Option<Bdf>,
    /// The value of each BAR (BAR0..5, ROM) when the partition first wrote it.
    original_bars: [Option<u32>; TRACKED_BARS],
}

/// What happened to one configuration access, for the health monitor's report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PciOutcome {
    /// Forwarded to a passed-through function.
    Forwarded,
    /// CONFIG_ADDRESS read or written.
    AddressRegister,
    /// Touched a function not passed through, or with configuration cycles disabled: read
    /// all-ones, write dropped.
    Absent,
    /// A BAR write other than a sizing probe or restore: dropped.
    BarWriteRefused,
    /// A port outside 0xCF8..=0xCFF, or a CONFIG_ADDRESS access narrower than 32 bits.
    Ignored,
}

/// One partition's PCI configuration filter for up to `N` passed-through functions.
#[derive(Debug, Clone)]
pub struct PciConfigFilter<const N: usize> {
    address: u32,
    functions: [Passthrough; N],
    refused_bar_writes: u64,
    absent_accesses: u64,
}

/// Too many functions for the filter's capacity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FilterFull;

impl<const N: usize> Default for PciConfigFilter<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> PciConfigFilter<N> {
    /// A filter passing nothing through.
    pub const fn new() -> Self {
        Self {
            address: 0,
            functions: [Passthrough { bdf: None, original_bars: [None; TRACKED_BARS] }; N],
            refused_bar_writes: 0,
            absent_accesses: 0,
        }
    }

    /// Passes function `bdf` through to this partition.
    pub fn allow(&mut self, bdf: Bdf) -> Result<(), FilterFull> {
        if self.is_allowed(bdf) {
            return Ok(());
        }
        let slot = self.functions.iter_mut().find(|f| f.bdf.is_none()).ok_or(FilterFull)?;
        slot.bdf = Some(bdf);
        Ok(())
    }

    /// True if `bdf` is passed through.
    pub fn is_allowed(&self, bdf: Bdf) -> bool {
        self.functions.iter().any(|f| f.bdf == Some(bdf))
    }

    /// BAR writes refused so far.
    pub fn refused_bar_writes(&self) -> u64 {
        self.refused_bar_writes
    }

    /// Data accesses to absent (not passed-through) functions so far.
    pub fn absent_accesses(&self) -> u64 {
        self.absent_accesses
    }

    /// A guest `in` of `size` bytes from `port`. Returns the value and what happened.
    pub fn read(&mut self, port: u16, size: u8, hw: &mut impl PciConfigSpace) -> (u32, PciOutcome) {
        let all_ones = crate::port_bus::all_ones(size);
        if port == CONFIG_ADDRESS_PORT && size == 4 {
            return (self.address, PciOutcome::AddressRegister);
        }
        let Some((bdf, register)) = self.data_target(port, size) else {
            return (all_ones, PciOutcome::Ignored);
        };
        if self.slot(bdf).is_none() {
            self.absent_accesses += 1;
            return (all_ones, PciOutcome::Absent);
        }
        (hw.read(bdf, register, size) & all_ones, PciOutcome::Forwarded)
    }

    /// A guest `out` of `size` bytes of `value` to `port`.
    pub fn write(&mut self, port: u16, size: u8, value: u32, hw: &mut impl PciConfigSpace) -> PciOutcome {
        if port == CONFIG_ADDRESS_PORT && size == 4 {
            // Bits 30:24 are reserved and bits 1:0 are always zero.
            self.address = value & 0x80FF_FFFC;
            return PciOutcome::AddressRegister;
        }
        let Some((bdf, register)) = self.data_target(port, size) else {
            return PciOutcome::Ignored;
        };
        let Some(slot) = self.slot(bdf) else {
            self.absent_accesses += 1;
            return PciOutcome::Absent;
        };
        let value = value & crate::port_bus::all_ones(size);
        if let Some(bar) = bar_index(register) {
            return self.write_bar(slot, bdf, bar, register, size, value, hw);
        }
        hw.write(bdf, register, size, value);
        PciOutcome::Forwarded
    }

    #[allow(clippy::too_many_arguments)]
    fn write_bar(
        &mut self,
        slot: usize,
        bdf: Bdf,
        bar: usize,
        register: u8,
        size: u8,
        value: u32,
        hw: &mut impl PciConfigSpace,
    ) -> PciOutcome {
        let dword_register = register & !3;
        let original =
            *self.functions[slot].original_bars[bar].get_or_insert_with(|| hw.read(bdf, dword_register, 4));
        // Narrow writes are judged by the dword they would produce.
        let shift = 8 * u32::from(register & 3);
        let lane_mask = crate::port_bus::all_ones(size) << shift;
        let current = hw.read(bdf, dword_register, 4);
        let merged = (current & !lane_mask) | (value << shift);
        let is_probe = if register & !3 == REG_ROM_BAR {
            merged | ROM_ENABLE == u32::MAX || merged & !0x7FF == 0xFFFF_F800
        } else {
            merged == u32::MAX
        };
        if is_probe || merged == original {
            hw.write(bdf, dword_register, 4, merged);
            PciOutcome::Forwarded
        } else {
            self.refused_bar_writes += 1;
            PciOutcome::BarWriteRefused
        }
    }

    fn slot(&self, bdf: Bdf) -> Option<usize> {
        self.functions.iter().position(|f| f.bdf == Some(bdf))
    }

    /// The function and register a data-port access targets, if configuration cycles are
    /// enabled and the access stays within the dword.
    fn data_target(&self, port: u16, size: u8) -> Option<(Bdf, u8)> {
        let lane = port.checked_sub(CONFIG_DATA_PORT)?;
        if lane > 3 || !matches!(size, 1 | 2 | 4) || lane + u16::from(size) > 4 {
            return None;
        }
        if self.address & CONFIG_ENABLE == 0 {
            return None;
        }
        let register = (self.address & 0xFC) as u8 + lane as u8;
        Some((Bdf::from_config_address(self.address), register))
    }
}

fn bar_index(register: u8) -> Option<usize> {
    let dword = register & !3;
    match dword {
        REG_BAR0..=REG_BAR5 => Some(usize::from((dword - REG_BAR0) / 4)),
        REG_ROM_BAR => Some(6),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    extern crate std;
    use std::collections::BTreeMap;

    /// A fake configuration space with BARs that behave like real ones: writing all-ones
    /// reads back the size mask.
    #[derive(Default)]
    struct FakeSpace {
        dwords: BTreeMap<(u8, u8, u8, u8), u32>,
        bar_masks: BTreeMap<(u8, u8, u8, u8), u32>,
        writes: usize,
    }

    impl FakeSpace {
        fn key(bdf: Bdf, register: u8) -> (u8, u8, u8, u8) {
            (bdf.bus, bdf.device, bdf.function, register & !3)
        }
        fn set(&mut self, bdf: Bdf, register: u8, value: u32) {
            self.dwords.insert(Self::key(bdf, register), value);
        }
        fn get(&self, bdf: Bdf, register: u8) -> u32 {
            self.dwords.get(&Self::key(bdf, register)).copied().unwrap_or(u32::MAX)
        }
    }

    impl PciConfigSpace for FakeSpace {
        fn read(&mut self, bdf: Bdf, register: u8, size: u8) -> u32 {
            let v = self.get(bdf, register) >> (8 * u32::from(register & 3));
            v & crate::port_bus::all_ones(size)
        }
        fn write(&mut self, bdf: Bdf, register: u8, size: u8, value: u32) {
            self.writes += 1;
            let shift = 8 * u32::from(register & 3);
            let mask = crate::port_bus::all_ones(size) << shift;
            let mut merged = (self.get(bdf, register) & !mask) | ((value << shift) & mask);
            if let Some(size_mask) = self.bar_masks.get(&Self::key(bdf, register)) {
                merged = (merged & size_mask) | (self.get(bdf, register) & !size_mask & 0xF);
            }
            self.set(bdf, register, merged);
        }
    }

    const NIC: Bdf = Bdf { bus: 0, device: 3, function: 0 };
    const DISK: Bdf = Bdf { bus: 0, device: 4, function: 0 };

    fn address(bdf: Bdf, register: u8) -> u32 {
        CONFIG_ENABLE
            | u32::from(bdf.bus) << 16
            | u32::from(bdf.device) << 11
            | u32::from(bdf.function) << 8
            | u32::from(register)
    }

    fn machine() -> FakeSpace {
        let mut hw = FakeSpace::default();
        hw.set(NIC, 0, 0x100E_8086);
        hw.set(NIC, 0x04, 0x0010_0000);
        hw.set(NIC, REG_BAR0, 0xFEB0_0000);
        hw.bar_masks.insert(FakeSpace::key(NIC, REG_BAR0), 0xFFFE_0000);
        hw.set(DISK, 0, 0x7010_8086);
        hw
    }

    fn read_config(f: &mut PciConfigFilter<2>, hw: &mut FakeSpace, bdf: Bdf, reg: u8) -> u32 {
        f.write(CONFIG_ADDRESS_PORT, 4, address(bdf, reg), hw);
        f.read(CONFIG_DATA_PORT, 4, hw).0
    }

    #[test]
    fn guest_sees_only_its_functions() {
        let mut hw = machine();
        let mut f = PciConfigFilter::<2>::new();
        f.allow(NIC).unwrap();
        assert_eq!(read_config(&mut f, &mut hw, NIC, 0), 0x100E_8086);
        assert_eq!(read_config(&mut f, &mut hw, DISK, 0), 0xFFFF_FFFF, "the disk is another partition's");
        assert_eq!(f.absent_accesses(), 1);
        // Writes to the absent function do not reach the hardware.
        let before = hw.writes;
        assert_eq!(f.write(CONFIG_DATA_PORT, 4, 0x7, &mut hw), PciOutcome::Absent);
        assert_eq!(hw.writes, before);
    }

    #[test]
    fn address_register_and_byte_lanes() {
        let mut hw = machine();
        let mut f = PciConfigFilter::<2>::new();
        f.allow(NIC).unwrap();
        let a = address(NIC, 0);
        assert_eq!(f.write(CONFIG_ADDRESS_PORT, 4, a | 0x7F00_0003, &mut hw), PciOutcome::AddressRegister);
        assert_eq!(f.read(CONFIG_ADDRESS_PORT, 4, &mut hw), (a, PciOutcome::AddressRegister));
        assert_eq!(f.read(CONFIG_DATA_PORT, 2, &mut hw).0, 0x8086);
        assert_eq!(f.read(CONFIG_DATA_PORT + 2, 2, &mut hw).0, 0x100E);
        assert_eq!(f.read(CONFIG_DATA_PORT + 1, 1, &mut hw).0, 0x80);
        // A word at lane 3 would cross the dword.
        assert_eq!(f.read(CONFIG_DATA_PORT + 3, 2, &mut hw), (0xFFFF, PciOutcome::Ignored));
        // Byte accesses to 0xCF8 are not CONFIG_ADDRESS (and 0xCF9 is not ours at all).
        assert_eq!(f.write(CONFIG_ADDRESS_PORT, 1, 0, &mut hw), PciOutcome::Ignored);
        assert_eq!(f.read(CONFIG_ADDRESS_PORT, 4, &mut hw).0, a);
        // Configuration cycles disabled: nothing is forwarded.
        f.write(CONFIG_ADDRESS_PORT, 4, a & !CONFIG_ENABLE, &mut hw);
        assert_eq!(f.read(CONFIG_DATA_PORT, 4, &mut hw), (u32::MAX, PciOutcome::Ignored));
    }

    #[test]
    fn bar_sizing_probe_and_restore_are_allowed() {
        let mut hw = machine();
        let mut f = PciConfigFilter::<2>::new();
        f.allow(NIC).unwrap();
        // Linux's __pci_read_base: read, write ~0, read the mask, write the original back.
        let original = read_config(&mut f, &mut hw, NIC, REG_BAR0);
        assert_eq!(f.write(CONFIG_DATA_PORT, 4, u32::MAX, &mut hw), PciOutcome::Forwarded);
        assert_eq!(f.read(CONFIG_DATA_PORT, 4, &mut hw).0, 0xFFFE_0000, "128 KiB BAR");
        assert_eq!(f.write(CONFIG_DATA_PORT, 4, original, &mut hw), PciOutcome::Forwarded);
        assert_eq!(hw.get(NIC, REG_BAR0), 0xFEB0_0000);
    }

    #[test]
    fn bar_relocation_is_refused() {
        let mut hw = machine();
        let mut f = PciConfigFilter::<2>::new();
        f.allow(NIC).unwrap();
        f.write(CONFIG_ADDRESS_PORT, 4, address(NIC, REG_BAR0), &mut hw);
        assert_eq!(f.write(CONFIG_DATA_PORT, 4, 0x0010_0000, &mut hw), PciOutcome::BarWriteRefused);
        assert_eq!(hw.get(NIC, REG_BAR0), 0xFEB0_0000);
        // A narrow write that would move the BAR is refused too.
        assert_eq!(f.write(CONFIG_DATA_PORT + 2, 2, 0x0001, &mut hw), PciOutcome::BarWriteRefused);
        assert_eq!(f.refused_bar_writes(), 2);
        // The ROM BAR accepts the ROM probe (~enable bit).
        f.write(CONFIG_ADDRESS_PORT, 4, address(NIC, REG_ROM_BAR), &mut hw);
        assert_eq!(f.write(CONFIG_DATA_PORT, 4, 0xFFFF_F800, &mut hw), PciOutcome::Forwarded);
        assert_eq!(f.write(CONFIG_DATA_PORT, 4, 0xC000_0001, &mut hw), PciOutcome::BarWriteRefused);
        // Other registers (command) pass.
        f.write(CONFIG_ADDRESS_PORT, 4, address(NIC, 0x04), &mut hw);
        assert_eq!(f.write(CONFIG_DATA_PORT, 2, 0x0006, &mut hw), PciOutcome::Forwarded);
        assert_eq!(hw.get(NIC, 0x04) & 0xFFFF, 0x0006);
    }

    #[test]
    fn capacity_is_enforced() {
        let mut f = PciConfigFilter::<1>::new();
        f.allow(NIC).unwrap();
        f.allow(NIC).unwrap();
        assert_eq!(f.allow(DISK), Err(FilterFull));
        assert!(f.is_allowed(NIC) && !f.is_allowed(DISK));
    }

    proptest::proptest! {
        #[test]
        fn other_functions_never_reach_hardware(ops in proptest::collection::vec((0xCF6u16..0xD02, 0u8..5, proptest::prelude::any::<u32>(), proptest::prelude::any::<bool>()), 0..100)) {
            let mut hw = machine();
            let mut f = PciConfigFilter::<2>::new();
            f.allow(NIC).unwrap();
            let disk_before = hw.get(DISK, 0);
            for (port, size, value, is_write) in ops {
                if is_write { f.write(port, size, value, &mut hw); } else { f.read(port, size, &mut hw); }
            }
            proptest::prop_assert_eq!(hw.get(DISK, 0), disk_before);
            let nic_bar = hw.get(NIC, REG_BAR0);
            proptest::prop_assert!(nic_bar == 0xFEB0_0000 || nic_bar == 0xFFFE_0000);
        }
    }
}
