//! The hybrid bridge's channel functions: how a Linux partition sees each of its channels
//! as a PCI function on bus 0 (identity, BARs and register block as
//! `hallows_abi::bridge` describes them).
//!
//! - [`ChannelFunctions`] is the configuration space of all of a partition's channel
//!   functions (and of its management function, `crate::manage_pci`), the
//!   [`PciConfigSpace`] behind the partition's
//!   [`crate::pci_config::PciConfigFilter`] (which passes exactly these functions through
//!   and already refuses BAR writes other than sizing probes and restores). The headers
//!   are read-only: a BAR written with all-ones reads its size mask until the next write
//!   to it, as real hardware does, and no write moves, resizes or disables anything. The
//!   command register reads "memory space enabled" whatever is written, because the
//!   hypervisor maps the BARs for the partition's whole life.
//! - [`ChannelRegisters`] is one channel's register block (BAR0), an [`MmioDevice`]:
//!   every field is fixed at boot except the peer's state, read live through
//!   [`PeerState`]. Writes are ignored.

use crate::manage_pci::ManageFunction;
use crate::mmio_bus::MmioDevice;
use crate::pci_config::{
    Bdf, PciConfigSpace, REG_BAR0, REG_BAR5, REG_CLASS_REVISION, REG_COMMAND, REG_HEADER, REG_ROM_BAR,
    REG_SUBSYSTEM, REG_VENDOR,
};

use hallows_abi::bridge::{
    NAME_BYTES, PCI_CLASS as CLASS_CODE, PCI_DEVICE_ID as DEVICE_ID, PCI_SUBSYSTEM_ID as SUBSYSTEM_ID,
    PCI_VENDOR_ID as VENDOR_ID, REGISTER_BLOCK_BYTES, REG_CHANNEL_INDEX, REG_DEPTH, REG_DIRECTION, REG_KIND,
    REG_MAGIC, REG_MSG_SIZE, REG_NAME, REG_PEER_STATE, REG_REGION_BYTES, REG_VERSION, REG_WRITER_BYTES,
};

pub use crate::pci_config::COMMAND_MEMORY;

// BAR registers of a channel function beyond BAR0 (dword offsets).
const REG_BAR2: u8 = 0x18;
const REG_BAR3: u8 = 0x1C;
/// Memory BAR type bits: 64-bit (bits 2:1 = 10b).
const BAR_64BIT: u32 = 0b100;
/// Memory BAR bit 3: prefetchable.
const BAR_PREFETCHABLE: u32 = 0b1000;

/// One channel's PCI function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChannelFunction {
    /// Device number on bus 0 (function 0).
    pub device: u8,
    /// Revision id (the register block's layout version).
    pub revision: u8,
    /// Guest-physical address of the register block (BAR0): 32-bit, aligned to
    /// [`REGISTER_BLOCK_BYTES`].
    pub registers_gpa: u32,
    /// Guest-physical address of the shared pages (BAR2/3), aligned to `shared_bytes`.
    pub shared_gpa: u64,
    /// Size of BAR2: a power of two, at least one page.
    pub shared_bytes: u64,
}

/// Why a function cannot be added.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelFunctionError {
    /// Every slot is in use (or, for the management function, it is already there).
    Full,
    /// The device number is above 31, or already taken.
    BadDevice,
    /// A BAR that is not a naturally aligned power of two (PCI could not describe it).
    BadBar,
}

/// What answers a function's configuration header.
#[derive(Debug, Clone, Copy)]
enum Function {
    Channel(ChannelFunction),
    Manage(ManageFunction),
}

impl Function {
    const fn device(&self) -> u8 {
        match self {
            Function::Channel(f) => f.device,
            Function::Manage(f) => f.device,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    function: Function,
    /// The BAR (index 0..=5, 6 = ROM) was last written with all-ones: it reads its mask.
    sizing: [bool; 7],
}

/// The configuration space of a Linux partition's bus 0: up to `N` channel functions and
/// at most one management function (`crate::manage_pci`), with the same read-only header
/// rules for all of them.
#[derive(Debug, Clone)]
pub struct ChannelFunctions<const N: usize> {
    slots: [Option<Slot>; N],
    manage: Option<Slot>,
}

impl<const N: usize> Default for ChannelFunctions<N> {
    fn default() -> Self {
        Self::new()
    }
}

/// A memory BAR PCI can describe: a power of two of at least a page, naturally aligned.
fn bar_aligned(base: u64, size: u64) -> bool {
    size.is_power_of_two() && size >= 4096 && base.is_multiple_of(size)
}

impl<const N: usize> ChannelFunctions<N> {
    /// No functions: every address reads absent.
    pub const fn new() -> Self {
        Self { slots: [None; N], manage: None }
    }

    /// Adds a function; returns its address for the configuration filter.
    pub fn add(&mut self, function: ChannelFunction) -> Result<Bdf, ChannelFunctionError> {
        if function.device > 31 || self.find(function.device).is_some() {
            return Err(ChannelFunctionError::BadDevice);
        }
        if !bar_aligned(u64::from(function.registers_gpa), REGISTER_BLOCK_BYTES)
            || !bar_aligned(function.shared_gpa, function.shared_bytes)
        {
            return Err(ChannelFunctionError::BadBar);
        }
        let slot = self.slots.iter_mut().find(|s| s.is_none()).ok_or(ChannelFunctionError::Full)?;
        *slot = Some(Slot { function: Function::Channel(function), sizing: [false; 7] });
        Ok(Bdf { bus: 0, device: function.device, function: 0 })
    }

    /// Adds the partition's management function (one at most); returns its address for
    /// the configuration filter.
    pub fn add_manage(&mut self, function: ManageFunction) -> Result<Bdf, ChannelFunctionError> {
        if self.manage.is_some() {
            return Err(ChannelFunctionError::Full);
        }
        if function.device > 31 || self.find(function.device).is_some() {
            return Err(ChannelFunctionError::BadDevice);
        }
        if !bar_aligned(u64::from(function.mailbox_gpa), ManageFunction::BAR0_BYTES) {
            return Err(ChannelFunctionError::BadBar);
        }
        self.manage = Some(Slot { function: Function::Manage(function), sizing: [false; 7] });
        Ok(Bdf { bus: 0, device: function.device, function: 0 })
    }

    /// Addresses of every function (the channel functions, then the management function).
    pub fn bdfs(&self) -> impl Iterator<Item = Bdf> + '_ {
        self.slots.iter().chain(core::iter::once(&self.manage)).flatten().map(|s| Bdf {
            bus: 0,
            device: s.function.device(),
            function: 0,
        })
    }

    fn find(&self, device: u8) -> Option<&Slot> {
        self.slots
            .iter()
            .chain(core::iter::once(&self.manage))
            .flatten()
            .find(|s| s.function.device() == device)
    }

    fn slot_mut(&mut self, bdf: Bdf) -> Option<&mut Slot> {
        if bdf.bus != 0 || bdf.function != 0 {
            return None;
        }
        self.slots
            .iter_mut()
            .chain(core::iter::once(&mut self.manage))
            .flatten()
            .find(|s| s.function.device() == bdf.device)
    }
}

impl Slot {
    /// The dword at `register & !3` of the function's header.
    fn dword(&self, register: u8) -> u32 {
        match &self.function {
            Function::Channel(f) => channel_dword(f, &self.sizing, register),
            Function::Manage(f) => f.header_dword(register, self.sizing[0]),
        }
    }
}

/// The dword at `register & !3` of channel function `f`'s header; `sizing` says which
/// BARs read their size mask.
fn channel_dword(f: &ChannelFunction, sizing: &[bool; 7], register: u8) -> u32 {
    let bar = |index: usize, value: u32, mask: u32| if sizing[index] { mask } else { value };
    match register & !3 {
        REG_VENDOR => u32::from(DEVICE_ID) << 16 | u32::from(VENDOR_ID),
        // Status 0 (no capabilities list), command: memory decoding, always.
        REG_COMMAND => u32::from(COMMAND_MEMORY),
        REG_CLASS_REVISION => CLASS_CODE << 8 | u32::from(f.revision),
        // Header type 0, single function; no BIST, latency timer or cache line size.
        REG_HEADER => 0,
        REG_BAR0 => bar(0, f.registers_gpa, !(REGISTER_BLOCK_BYTES as u32 - 1)),
        REG_BAR2 => {
            let mask = !(f.shared_bytes - 1);
            bar(2, f.shared_gpa as u32, mask as u32) | BAR_64BIT | BAR_PREFETCHABLE
        }
        REG_BAR3 => bar(3, (f.shared_gpa >> 32) as u32, (!(f.shared_bytes - 1) >> 32) as u32),
        REG_SUBSYSTEM => u32::from(SUBSYSTEM_ID) << 16 | u32::from(VENDOR_ID),
        // BAR1, BAR4, BAR5, the ROM BAR (unimplemented: they size as 0), capabilities
        // pointer, interrupt line and pin (no interrupt) and everything after the
        // header.
        _ => 0,
    }
}

fn all_ones(size: u8) -> u32 {
    match size {
        1 => 0xFF,
        2 => 0xFFFF,
        _ => u32::MAX,
    }
}

impl<const N: usize> PciConfigSpace for ChannelFunctions<N> {
    fn read(&mut self, bdf: Bdf, register: u8, size: u8) -> u32 {
        let Some(slot) = self.slot_mut(bdf) else {
            return all_ones(size);
        };
        (slot.dword(register) >> (8 * u32::from(register & 3))) & all_ones(size)
    }

    fn write(&mut self, bdf: Bdf, register: u8, size: u8, value: u32) {
        let Some(slot) = self.slot_mut(bdf) else {
            return;
        };
        let dword = register & !3;
        let bar = match dword {
            REG_BAR0..=REG_BAR5 => usize::from((dword - REG_BAR0) / 4),
            REG_ROM_BAR => 6,
            // Nothing else is writable.
            _ => return,
        };
        // A BAR only reads its mask after a whole all-ones dword (the sizing probe); any
        // other write, including the restore of its address, ends the probe.
        slot.sizing[bar] = size == 4 && register & 3 == 0 && value == u32::MAX;
    }
}

/// The life-cycle state of the partition at a channel's other end, as the register block
/// reports it (`hallows_abi::bridge::PEER_*`), read at each access.
pub trait PeerState {
    /// The current `PEER_*` value.
    fn peer_state(&self) -> u32;
}

impl<F: Fn() -> u32> PeerState for F {
    fn peer_state(&self) -> u32 {
        self()
    }
}

/// The fixed contents of one channel's register block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChannelDescription {
    pub magic: u32,
    pub version: u32,
    pub kind: u32,
    pub direction: u32,
    pub msg_size: u32,
    pub depth: u32,
    pub region_bytes: u64,
    pub writer_bytes: u64,
    pub channel_index: u32,
    /// UTF-8, NUL-padded.
    pub name: [u8; NAME_BYTES as usize],
}

impl ChannelDescription {
    /// `name` cut to the field (the checker keeps channel names shorter), NUL-padded.
    pub fn name_field(name: &str) -> [u8; NAME_BYTES as usize] {
        let mut field = [0u8; NAME_BYTES as usize];
        let n = name.len().min(NAME_BYTES as usize);
        field[..n].copy_from_slice(&name.as_bytes()[..n]);
        field
    }
}

/// One channel's register block (BAR0).
pub struct ChannelRegisters<P> {
    description: ChannelDescription,
    peer: P,
}

impl<P: PeerState> ChannelRegisters<P> {
    pub const fn new(description: ChannelDescription, peer: P) -> Self {
        Self { description, peer }
    }

    /// The byte at `offset` of the block (0 past the fields), with the peer state `peer`.
    fn byte(&self, offset: u64, peer: u32) -> u8 {
        let d = &self.description;
        let field = |start: u64, bytes: &[u8]| bytes.get((offset - start) as usize).copied().unwrap_or(0);
        match offset {
            REG_MAGIC..REG_VERSION => field(REG_MAGIC, &d.magic.to_le_bytes()),
            REG_VERSION..REG_KIND => field(REG_VERSION, &d.version.to_le_bytes()),
            REG_KIND..REG_DIRECTION => field(REG_KIND, &d.kind.to_le_bytes()),
            REG_DIRECTION..REG_MSG_SIZE => field(REG_DIRECTION, &d.direction.to_le_bytes()),
            REG_MSG_SIZE..REG_DEPTH => field(REG_MSG_SIZE, &d.msg_size.to_le_bytes()),
            REG_DEPTH..REG_REGION_BYTES => field(REG_DEPTH, &d.depth.to_le_bytes()),
            REG_REGION_BYTES..REG_WRITER_BYTES => field(REG_REGION_BYTES, &d.region_bytes.to_le_bytes()),
            REG_WRITER_BYTES..REG_PEER_STATE => field(REG_WRITER_BYTES, &d.writer_bytes.to_le_bytes()),
            REG_PEER_STATE..REG_CHANNEL_INDEX => field(REG_PEER_STATE, &peer.to_le_bytes()),
            REG_CHANNEL_INDEX..0x30 => field(REG_CHANNEL_INDEX, &d.channel_index.to_le_bytes()),
            o if (REG_NAME..REG_NAME + NAME_BYTES).contains(&o) => field(REG_NAME, &d.name),
            _ => 0,
        }
    }
}

impl<P: PeerState> MmioDevice for ChannelRegisters<P> {
    fn read(&self, offset: u64, size: u8) -> u64 {
        let size = u64::from(size.clamp(1, 8));
        // The peer state is read once per access, so a 4- or 8-byte read sees one value.
        let peer = self.peer.peer_state();
        (0..size).fold(0u64, |value, i| {
            let at = offset.saturating_add(i);
            let byte = if at < REGISTER_BLOCK_BYTES { self.byte(at, peer) } else { 0 };
            value | u64::from(byte) << (8 * i)
        })
    }

    fn write(&self, _offset: u64, _size: u8, _value: u64) {
        // Read-only: what the guest writes changes nothing.
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use crate::pci_config::{
        PciConfigFilter, PciOutcome, CONFIG_ADDRESS_PORT, CONFIG_DATA_PORT, CONFIG_ENABLE,
    };
    use core::sync::atomic::{AtomicU32, Ordering};
    use std::vec::Vec;

    const READINGS: ChannelFunction = ChannelFunction {
        device: 1,
        revision: 1,
        registers_gpa: 0xF000_0000,
        shared_gpa: 0xE000_0000,
        shared_bytes: 0x4000,
    };
    const COMMANDS: ChannelFunction = ChannelFunction {
        device: 2,
        revision: 1,
        registers_gpa: 0xF000_1000,
        shared_gpa: 0xE000_4000,
        shared_bytes: 0x1000,
    };

    struct Guest {
        filter: PciConfigFilter<4>,
        functions: ChannelFunctions<4>,
    }

    impl Guest {
        fn new() -> Self {
            let mut functions = ChannelFunctions::new();
            let mut filter = PciConfigFilter::new();
            for f in [READINGS, COMMANDS] {
                filter.allow(functions.add(f).unwrap()).unwrap();
            }
            Self { filter, functions }
        }
        fn select(&mut self, device: u8, function: u8, register: u8) {
            let address =
                CONFIG_ENABLE | u32::from(device) << 11 | u32::from(function) << 8 | u32::from(register);
            self.filter.write(CONFIG_ADDRESS_PORT, 4, address, &mut self.functions);
        }
        fn read(&mut self, device: u8, register: u8, size: u8) -> u32 {
            self.select(device, 0, register & !3);
            self.filter.read(CONFIG_DATA_PORT + u16::from(register & 3), size, &mut self.functions).0
        }
        fn write(&mut self, device: u8, register: u8, size: u8, value: u32) -> PciOutcome {
            self.select(device, 0, register & !3);
            self.filter.write(CONFIG_DATA_PORT + u16::from(register & 3), size, value, &mut self.functions)
        }
        /// What Linux's `__pci_read_base` does for a 32-bit BAR: read, write ~0, read the
        /// mask, write the original back.
        fn size_bar(&mut self, device: u8, register: u8) -> (u32, u32) {
            let original = self.read(device, register, 4);
            self.write(device, register, 4, u32::MAX);
            let mask = self.read(device, register, 4);
            self.write(device, register, 4, original);
            (original, mask)
        }
    }

    /// The devices an `lspci`-like scan of bus 0 finds: (device, vendor:device, class).
    fn scan(guest: &mut Guest) -> Vec<(u8, u32, u32)> {
        let mut found = Vec::new();
        for device in 0..32 {
            for function in 0..8 {
                guest.select(device, function, 0);
                let id = guest.filter.read(CONFIG_DATA_PORT, 4, &mut guest.functions).0;
                if id & 0xFFFF != 0xFFFF {
                    found.push((device, id, guest.read(device, REG_CLASS_REVISION, 4) >> 8));
                }
            }
        }
        found
    }

    #[test]
    fn enumeration_finds_exactly_the_channel_functions() {
        let mut guest = Guest::new();
        let ivshmem = 0x1110_1AF4;
        assert_eq!(scan(&mut guest), [(1, ivshmem, CLASS_CODE), (2, ivshmem, CLASS_CODE)]);
        assert_eq!(guest.read(1, REG_SUBSYSTEM, 4), 0x5248_1AF4);
        assert_eq!(guest.read(1, REG_CLASS_REVISION, 1), 1, "revision = layout version");
        assert_eq!(guest.read(1, REG_HEADER + 2, 1), 0, "header type 0, single function");
        assert_eq!(guest.read(1, 0x06, 2) & 0x10, 0, "no capabilities list");
        assert_eq!(guest.read(1, 0x34, 1), 0, "capabilities pointer");
        assert_eq!(guest.read(1, 0x3D, 1), 0, "interrupt pin: none");
        assert_eq!(guest.read(1, 0x80, 4), 0, "device-specific space is empty");
        // The bus number matters: bus 1 holds nothing.
        guest.filter.write(CONFIG_ADDRESS_PORT, 4, CONFIG_ENABLE | 1 << 16 | 1 << 11, &mut guest.functions);
        assert_eq!(guest.filter.read(CONFIG_DATA_PORT, 4, &mut guest.functions).0, u32::MAX);
    }

    #[test]
    fn bars_read_their_addresses_and_size_truthfully() {
        let mut guest = Guest::new();
        assert_eq!(guest.size_bar(1, REG_BAR0), (0xF000_0000, 0xFFFF_F000));
        let (low, low_mask) = guest.size_bar(1, REG_BAR2);
        let (high, high_mask) = guest.size_bar(1, REG_BAR3);
        assert_eq!((low, high), (0xE000_000C, 0), "64-bit prefetchable at 0xE0000000");
        assert_eq!((low_mask, high_mask), (0xFFFF_C00C, u32::MAX), "16 KiB");
        let size = !(u64::from(high_mask) << 32 | u64::from(low_mask & !0xF)) + 1;
        assert_eq!(size, 0x4000);
        assert_eq!(guest.size_bar(2, REG_BAR2), (0xE000_400C, 0xFFFF_F00C));
        // Unimplemented BARs and the ROM BAR size as 0 (absent).
        for register in [0x14, 0x20, 0x24, REG_ROM_BAR] {
            assert_eq!(guest.size_bar(1, register), (0, 0), "register {register:#x}");
        }
        // After sizing, everything reads as before.
        assert_eq!(guest.read(1, REG_BAR0, 4), 0xF000_0000);
        assert_eq!(guest.read(1, REG_BAR2, 4), 0xE000_000C);
    }

    #[test]
    fn bar_moves_and_other_writes_change_nothing() {
        let mut guest = Guest::new();
        let before: Vec<u32> = (0..64).map(|r| guest.read(1, r * 4, 4)).collect();
        assert_eq!(
            guest.write(1, REG_BAR2, 4, 0xE000_400C),
            PciOutcome::BarWriteRefused,
            "onto the neighbour"
        );
        assert_eq!(guest.write(1, REG_BAR3, 4, 1), PciOutcome::BarWriteRefused);
        assert_eq!(guest.write(1, REG_BAR0 + 2, 2, 0xD000), PciOutcome::BarWriteRefused);
        // The command register: Linux may clear memory decoding; the BARs stay mapped, so
        // it keeps reading as set.
        assert_eq!(guest.write(1, REG_COMMAND, 2, 0), PciOutcome::Forwarded);
        guest.write(1, 0x3C, 1, 11); // interrupt line
        guest.write(1, 0x0C, 4, u32::MAX);
        let after: Vec<u32> = (0..64).map(|r| guest.read(1, r * 4, 4)).collect();
        assert_eq!(before, after);
        assert_eq!(guest.read(2, REG_BAR2, 4), 0xE000_400C);
        assert_eq!(guest.read(1, REG_COMMAND, 2), u32::from(COMMAND_MEMORY));
    }

    #[test]
    fn a_narrow_all_ones_write_does_not_start_a_probe() {
        let mut f = ChannelFunctions::<1>::new();
        let bdf = f.add(READINGS).unwrap();
        f.write(bdf, REG_BAR0, 2, 0xFFFF);
        assert_eq!(f.read(bdf, REG_BAR0, 4), 0xF000_0000);
        f.write(bdf, REG_BAR0, 4, u32::MAX);
        assert_eq!(f.read(bdf, REG_BAR0 + 2, 2), 0xFFFF);
        f.write(bdf, REG_BAR0, 4, 0x1234_5000);
        assert_eq!(f.read(bdf, REG_BAR0, 4), 0xF000_0000, "a write other than the probe reads the address");
    }

    #[test]
    fn functions_are_checked_when_added() {
        let mut f = ChannelFunctions::<2>::new();
        f.add(READINGS).unwrap();
        assert_eq!(f.add(READINGS), Err(ChannelFunctionError::BadDevice));
        assert_eq!(f.add(ChannelFunction { device: 32, ..COMMANDS }), Err(ChannelFunctionError::BadDevice));
        let misaligned = ChannelFunction { shared_gpa: 0xE000_1000, shared_bytes: 0x2000, ..COMMANDS };
        assert_eq!(f.add(misaligned), Err(ChannelFunctionError::BadBar));
        assert_eq!(
            f.add(ChannelFunction { shared_bytes: 0x3000, ..COMMANDS }),
            Err(ChannelFunctionError::BadBar)
        );
        assert_eq!(
            f.add(ChannelFunction { registers_gpa: 0xF000_0800, ..COMMANDS }),
            Err(ChannelFunctionError::BadBar)
        );
        f.add(COMMANDS).unwrap();
        assert_eq!(f.add(ChannelFunction { device: 3, ..COMMANDS }), Err(ChannelFunctionError::Full));
        assert_eq!(f.bdfs().map(|b| b.device).collect::<Vec<_>>(), [1, 2]);
    }

    fn description() -> ChannelDescription {
        ChannelDescription {
            magic: u32::from_le_bytes(*b"RHBR"),
            version: 1,
            kind: 2,
            direction: 1,
            msg_size: 64,
            depth: 16,
            region_bytes: 0x3000,
            writer_bytes: 0x2000,
            channel_index: 5,
            name: ChannelDescription::name_field("readings"),
        }
    }

    #[test]
    fn the_register_block_answers_its_layout_at_any_width() {
        let peer = AtomicU32::new(0);
        let block = ChannelRegisters::new(description(), || peer.load(Ordering::SeqCst));
        assert_eq!(block.read(REG_MAGIC, 4), u64::from(u32::from_le_bytes(*b"RHBR")));
        assert_eq!(block.read(REG_MAGIC, 8), 0x0000_0001_5242_4852);
        assert_eq!(block.read(REG_MAGIC + 1, 2), u64::from(u16::from_le_bytes(*b"HB")));
        assert_eq!(block.read(REG_KIND, 4), 2);
        assert_eq!(block.read(REG_DIRECTION, 4), 1);
        assert_eq!(block.read(REG_MSG_SIZE, 8), 16 << 32 | 64);
        assert_eq!(block.read(REG_REGION_BYTES, 8), 0x3000);
        assert_eq!(block.read(REG_WRITER_BYTES, 8), 0x2000);
        assert_eq!(block.read(REG_CHANNEL_INDEX, 4), 5);
        assert_eq!(block.read(REG_NAME, 8), u64::from_le_bytes(*b"readings"));
        assert_eq!(block.read(REG_NAME + 8, 1), 0, "NUL-padded");
        assert_eq!(block.read(0x30, 8), 0, "reserved");
        assert_eq!(block.read(0xFFC, 4), 0);
        assert_eq!(block.read(0xFFF, 8), 0, "past the block");
        assert_eq!(block.read(u64::MAX, 8), 0);
        // Writes change nothing.
        block.write(REG_KIND, 4, 7);
        block.write(REG_NAME, 8, 0);
        assert_eq!(block.read(REG_KIND, 4), 2);
        assert_eq!(block.read(REG_NAME, 1), u64::from(b'r'));
    }

    #[test]
    fn the_peer_state_is_read_live() {
        let peer = AtomicU32::new(3);
        let block = ChannelRegisters::new(description(), || peer.load(Ordering::SeqCst));
        assert_eq!(block.read(REG_PEER_STATE, 4), 3);
        peer.store(0, Ordering::SeqCst);
        assert_eq!(block.read(REG_PEER_STATE, 4), 0);
        peer.store(2, Ordering::SeqCst);
        assert_eq!(block.read(REG_PEER_STATE, 8), 5 << 32 | 2, "with the channel index after it");
        assert_eq!(block.read(REG_PEER_STATE + 1, 1), 0);
    }

    #[test]
    fn long_names_are_cut_to_the_field() {
        let long = "x".repeat(100);
        assert_eq!(ChannelDescription::name_field(&long), [b'x'; NAME_BYTES as usize]);
    }

    proptest::proptest! {
        #[test]
        fn hostile_config_traffic_never_moves_a_bar(
            ops in proptest::collection::vec((0u8..4, 0u8..64, 1u8..5, proptest::prelude::any::<u32>(), proptest::prelude::any::<bool>()), 0..200),
        ) {
            let mut guest = Guest::new();
            for (device, dword, size, value, is_write) in ops {
                let size = if size == 3 { 4 } else { size };
                let register = dword * 4 + (value as u8 & 3) % (5 - size).min(4);
                if is_write { guest.write(device, register, size, value); } else { guest.read(device, register, size); }
            }
            // Whatever was written, a read after ending any probe shows the fixed BARs.
            for (device, bar0, bar2) in [(1u8, 0xF000_0000u32, 0xE000_000Cu32), (2, 0xF000_1000, 0xE000_400C)] {
                for register in [REG_BAR0, REG_BAR2, REG_BAR3] {
                    let original = match register { REG_BAR0 => bar0, REG_BAR2 => bar2, _ => 0 };
                    guest.write(device, register, 4, original);
                }
                proptest::prop_assert_eq!(guest.read(device, REG_BAR0, 4), bar0);
                proptest::prop_assert_eq!(guest.read(device, REG_BAR2, 4), bar2);
                proptest::prop_assert_eq!(guest.read(device, REG_BAR3, 4), 0);
                proptest::prop_assert_eq!(guest.read(device, 0, 4), 0x1110_1AF4);
            }
        }
    }
}
