//! Device emulation for RustHallows VM exits: what the hypervisor emulates when a guest
//! touches something it does not own. Everything here is `no_std`, allocation-free
//! except where iced-x86 needs `alloc`, and tested on the host.
//!
//! - [`uart16550`]: the virtual 16550A UART behind a Linux partition's `ttyS0`.
//! - [`io`]: port-I/O exit decoding and a port-range device registry where unclaimed
//!   ports read all-ones and swallow writes.
//! - [`mmio_decode`]: decoding the `mov` that faulted on an MMIO page (iced-x86).
//! - [`ipi`]: the inter-processor-interrupt filter (ICR writes): a partition starts,
//!   interrupts and resets only its own cores.
//! - [`pci_config`]: PCI configuration-space filtering (ports 0xCF8/0xCFC) so a guest sees
//!   only the functions passed through to it.
#![no_std]

extern crate alloc;

pub mod io;
pub mod ipi;
pub mod mmio_decode;
pub mod pci_config;
pub mod uart16550;
