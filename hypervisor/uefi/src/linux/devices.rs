//! The devices a Linux vCPU reaches: its port bus (console UART, PCI configuration
//! filter with the channel functions of `bridge` and the management function of
//! `manage_pci` behind it) and the partition's RAM as
//! the MMIO path reads it. The vCPU loop (`vcpu`) only
//! hands accesses to these; new device models are registered here.

use hallows_core::hypercall::checked_range;
use hallows_core::linux_vcpu::stats::MarkerMatch;
use hallows_vmm::guest_memory::GuestPhysical;
use hallows_vmm::pci_config::CONFIG_ADDRESS_PORT;
use hallows_vmm::port_bus::{all_ones, read_bytewise, write_bytewise, PortBus, PortDevices};
use hallows_vmm::uart16550::{COM1_BASE, UART_PORT_COUNT};

use super::LinuxPartition;
use crate::partition::Partition;

/// Port-bus id of the console UART (COM1).
const UART_DEVICE: usize = 0;
/// Port-bus id of the PCI configuration filter (0xCF8-0xCFF).
const PCI_DEVICE: usize = 1;
/// Devices on a Linux vCPU's port bus.
pub const PORT_DEVICES: usize = 2;

/// The port bus of a Linux vCPU: the console UART and the PCI configuration ports (the
/// vCPU policy has taken the power-off and reset requests before the bus sees an access).
pub fn linux_port_bus() -> Result<PortBus<PORT_DEVICES>, alloc::string::String> {
    let mut bus = PortBus::new();
    bus.register(COM1_BASE, UART_PORT_COUNT, UART_DEVICE)
        .and_then(|_| bus.register(CONFIG_ADDRESS_PORT, 8, PCI_DEVICE))
        .map_err(|e| alloc::format!("port bus: {e:?}"))?;
    Ok(bus)
}

/// The partition's shared port devices as one vCPU reaches them.
pub struct LinuxPortDevices<'a> {
    pub p: &'static Partition,
    pub linux: &'static LinuxPartition,
    pub marker: &'a mut MarkerMatch,
}

impl PortDevices for LinuxPortDevices<'_> {
    fn port_read(&mut self, id: usize, offset: u16, size: u8) -> u32 {
        match id {
            UART_DEVICE => {
                let mut uart = self.linux.uart.lock();
                // Back-pressure: while much of Linux's own console output still waits for
                // the real UART, the virtual one reports its transmitter busy, so Linux's
                // driver waits (on its own core) instead of overflowing its queue; other
                // partitions' output plays no part.
                let busy = || crate::console::partition_backlogged(self.p);
                read_bytewise(size, |i| uart.read_with_backpressure(offset + i, busy))
            }
            PCI_DEVICE => {
                let mut pci = self.linux.pci.lock();
                let pci = &mut *pci;
                pci.filter.read(CONFIG_ADDRESS_PORT + offset, size, &mut pci.functions).0
            }
            _ => all_ones(size),
        }
    }

    fn port_write(&mut self, id: usize, offset: u16, size: u8, value: u32) {
        match id {
            UART_DEVICE => {
                let mut uart = self.linux.uart.lock();
                let (p, linux, marker) = (self.p, self.linux, &mut *self.marker);
                let mut sink = |b: u8| {
                    super::stats::note_marker(linux, marker, b);
                    crate::console::partition_output(p, &[b]);
                };
                write_bytewise(size, value, |i, b| uart.write(offset + i, b, &mut sink));
            }
            PCI_DEVICE => {
                let mut pci = self.linux.pci.lock();
                let pci = &mut *pci;
                pci.filter.write(CONFIG_ADDRESS_PORT + offset, size, value, &mut pci.functions);
            }
            _ => {}
        }
    }
}

/// The partition's RAM as its guest-physical address space (from GPA 0).
pub struct PartitionRam(pub &'static Partition);

impl GuestPhysical for PartitionRam {
    fn read(&self, gpa: u64, buf: &mut [u8]) -> bool {
        if checked_range(gpa, buf.len() as u64, self.0.ram_bytes).is_none() {
            return false;
        }
        for (i, byte) in buf.iter_mut().enumerate() {
            // SAFETY: `gpa + i` is inside the partition's RAM, which is identity-mapped in
            // the hypervisor. Volatile: another vCPU of the guest may be writing it.
            *byte = unsafe { core::ptr::read_volatile((self.0.ram_hpa + gpa + i as u64) as *const u8) };
        }
        true
    }
}
