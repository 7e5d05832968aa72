//! The hybrid bridge in a Linux partition: one PCI function per channel (configuration
//! space behind the partition's PCI filter, register block on its MMIO bus). The places
//! come from `hallows_core::bridge::linux_channels`, the same decisions the EPT was built
//! with (`boot_plan::partition_ept` maps each channel's pages at its BAR2); the device
//! models are `hallows_vmm::channel_pci`.

use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;

use hallows_abi::bootinfo::MAX_CHANNELS;
use hallows_abi::bridge::{LAYOUT_VERSION, PEER_BOOTING, REGISTER_BLOCK_BYTES, REGISTER_MAGIC};
use hallows_abi::table::Table;
use hallows_vmm::channel_pci::{
    ChannelDescription, ChannelFunction, ChannelFunctions, ChannelRegisters, PeerState,
};
use hallows_vmm::mmio_bus::MmioBus;
use hallows_vmm::pci_config::PciConfigFilter;

use crate::hvlog;
use crate::partition::Partition;

/// Most functions on a Linux partition's bus 0: one per channel and the management
/// function (`manage_pci`).
const PCI_FUNCTIONS: usize = MAX_CHANNELS + 1;

/// A Linux partition's PCI configuration space: the filter (its view of CONFIG_ADDRESS,
/// BAR-write refusal) and the functions behind it (channels and management).
#[derive(Clone)]
pub struct LinuxPci {
    pub filter: PciConfigFilter<PCI_FUNCTIONS>,
    pub functions: ChannelFunctions<MAX_CHANNELS>,
}

/// The life-cycle state of the partition at a channel's other end, read when Linux reads
/// the register block.
struct PeerPartition(usize);

impl PeerState for PeerPartition {
    fn peer_state(&self) -> u32 {
        // Before the machine is published no partition has run yet.
        match crate::machine::MACHINE.get().and_then(|m| m.partitions.get(self.0)) {
            Some(peer) => hallows_core::bridge::peer_state(peer.lifecycle()),
            None => PEER_BOOTING,
        }
    }
}

/// Creates the channel functions of Linux partition `part` and registers their register
/// blocks on `mmio`. Logs one line per channel.
pub fn prepare<const RANGES: usize>(
    table: &Table,
    part: &Partition,
    mmio: &mut MmioBus<'static, RANGES>,
) -> Result<LinuxPci, String> {
    let channels = hallows_core::bridge::linux_channels(table, part.index).map_err(|e| format!("{e}"))?;
    let mut pci = LinuxPci { filter: PciConfigFilter::new(), functions: ChannelFunctions::new() };
    for c in &channels {
        let name = table.channels.get(c.channel).map_or("?", |entry| table.text(entry.name));
        let registers_gpa =
            u32::try_from(c.registers_gpa).map_err(|_| format!("channel {name}: BAR0 above 4 GiB"))?;
        let function = ChannelFunction {
            device: c.device,
            revision: LAYOUT_VERSION as u8,
            registers_gpa,
            shared_gpa: c.shared_gpa,
            shared_bytes: c.shared_bar_bytes,
        };
        let bdf = pci.functions.add(function).map_err(|e| format!("channel {name}: PCI function: {e:?}"))?;
        pci.filter.allow(bdf).map_err(|e| format!("channel {name}: PCI filter: {e:?}"))?;
        let description = ChannelDescription {
            magic: REGISTER_MAGIC,
            version: LAYOUT_VERSION,
            kind: u32::from(c.kind),
            direction: c.direction,
            msg_size: c.msg_size,
            depth: c.depth,
            region_bytes: c.region_bytes,
            writer_bytes: c.writer_bytes,
            channel_index: c.channel as u32,
            name: ChannelDescription::name_field(name),
        };
        // Leaked: the partition's devices live as long as the hypervisor.
        let registers: &'static ChannelRegisters<PeerPartition> =
            Box::leak(Box::new(ChannelRegisters::new(description, PeerPartition(c.peer))));
        mmio.register(c.registers_gpa, REGISTER_BLOCK_BYTES, registers)
            .map_err(|e| format!("channel {name}: register block: {e:?}"))?;
        let peer = table.partitions.get(c.peer).map_or("?", |p| table.text(p.name));
        hvlog!("partition {}: {}", part.name, c.describe(name, peer));
    }
    Ok(pci)
}
