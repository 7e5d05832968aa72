//! Device emulation for RustHallows VM exits: what the hypervisor emulates when a Linux
//! partition touches something it does not own. Everything here is `no_std`,
//! allocation-free except where iced-x86 needs `alloc`, and tested on the host.
//!
//! Two buses carry every device access of a Linux vCPU; a new device model is a type
//! here, registered on one of them by the binary (`hypervisor/uefi/src/linux/`):
//! - [`port_bus`]: trapped port I/O (after the vCPU policy took the power-off and reset
//!   ports), routed by port range; unclaimed ports read all-ones and swallow writes.
//! - [`mmio_bus`]: EPT violations in a registered guest-physical range, decoded from the
//!   instruction at RIP ([`mmio_decode`], iced-x86; fetched through the guest's page
//!   tables by [`guest_memory`]) and performed on the device.
//!
//! Devices:
//! - [`uart16550`]: the virtual 16550A UART behind a Linux partition's `ttyS0`.
//! - [`pci_config`]: PCI configuration-space filtering (ports 0xCF8/0xCFC) so a guest sees
//!   only the functions passed through to it.
//! - [`channel_pci`]: the hybrid bridge's channel functions (their configuration space
//!   behind the filter, their register blocks on the MMIO bus).
//! - [`manage_pci`]: Linux's management function (its configuration header beside the
//!   channel functions, its mailbox on the MMIO bus).
//!
//! The vCPU policies that decide *whether* an exit is a device access (the I/O policy, the
//! IPI filter, MSRs, CPUID) live in `hallows_core::linux_vcpu`.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod channel_pci;
pub mod guest_memory;
pub mod manage_pci;
pub mod mmio_bus;
pub mod mmio_decode;
pub mod pci_config;
pub mod port_bus;
pub mod uart16550;
