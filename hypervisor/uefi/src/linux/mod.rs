//! Linux partitions (issue 4, "hybrid mode"): an unmodified Linux kernel runs on cores it
//! owns outright, beside the real-time partitions.
//!
//! - Boot phase ([`prepare`], called by `boot::prepare_partition` while UEFI boot services
//!   still run): reads the kernel and the initramfs named in the table from the ESP into
//!   firmware pages, and lets `legacy_linux::setup::prepare` lay out the partition's RAM
//!   (zero page, e820, command line, ACPI tables with only the partition's CPUs, page
//!   tables, kernel, initramfs). The entry state is kept here for the boot vCPU, and the
//!   files and command line for restarts ([`BootFiles`], `restart`).
//! - Run phase ([`run_core`], called by `run::core_main` on a core dedicated to a Linux
//!   vCPU): the core switches its local APIC to x2APIC mode, builds the vCPU's VMCS from
//!   the entry state (boot vCPU) or from the SIPI vector (other vCPUs, parked in the
//!   hypervisor until the boot vCPU sends INIT/SIPI), and handles the few exits Linux
//!   causes with the policies of `hallows_core::linux_vcpu` (see `vcpu`).
//!
//! The hypervisor appends `hallows_abi::limits::LINUX_CMDLINE_SUFFIX` to the table's command
//! line (`hallows_core::boot_plan::linux_cmdline`, within the budget the checker enforces).

mod bridge;
mod devices;
mod esp;
mod manage_pci;
pub mod restart;
mod stats;
pub mod vcpu;

use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64};

use hallows_abi::table::{PartitionEntry, Table};
use hallows_core::linux_vcpu::ap_start::Mailbox;
use hallows_core::linux_vcpu::apic::{apic_ids_of, ApicIdMap};
use hallows_core::linux_vcpu::restart::Rendezvous;
use hallows_core::linux_vcpu::stats::ExitCounts;
use hallows_vmm::mmio_bus::MmioBus;
use hallows_vmm::uart16550::Uart16550;
use legacy_linux::acpi::PowerPorts;
use legacy_linux::setup::{self, BootPlan, BootProtocol, EntryState, LinuxBootConfig};
use spin::Mutex;

use crate::hvlog;
use crate::partition::Partition;

/// Most guest-physical ranges of emulated MMIO devices per Linux partition: one register
/// block per channel (the boot info's channel limit), the management mailbox, and room
/// for a few more devices.
pub const MMIO_RANGES: usize = hallows_abi::bootinfo::MAX_CHANNELS + 8;

/// What the hypervisor keeps for one Linux partition.
pub struct LinuxPartition {
    /// Index of the partition in the table.
    pub partition: usize,
    /// The boot vCPU's entry state from `legacy_linux::setup::prepare`.
    pub entry: EntryState,
    /// vCPU -> APIC id (identity: the guest sees its cores' real ids).
    pub map: ApicIdMap,
    /// The virtual COM1 shared by the partition's vCPUs.
    pub uart: Mutex<Uart16550>,
    /// PCI configuration space: the partition's channel functions (`bridge`) and its
    /// management function (`manage_pci`); every other function reads absent.
    pub pci: Mutex<bridge::LinuxPci>,
    /// Emulated MMIO devices by guest-physical range (their ranges stay unmapped in the
    /// EPT, so accesses exit as EPT violations; `vcpu` emulates them): the channel
    /// functions' register blocks and the management mailbox, registered when the
    /// partition is prepared.
    pub mmio: MmioBus<'static, MMIO_RANGES>,
    /// The management function's mailbox (also on [`Self::mmio`]), kept to empty it at a
    /// restart; `None` when the partition left no room for it.
    pub manage: Option<&'static manage_pci::LinuxMailbox>,
    /// One per vCPU: INIT and SIPI from the boot vCPU's core to a parked vCPU's.
    pub mailboxes: Vec<Mailbox>,
    /// VM exits per basic exit reason, all vCPUs together.
    pub exits: ExitCounts,
    /// TSC at the boot vCPU's first VM entry (0 before).
    pub first_entry_tsc: AtomicU64,
    /// TSC when the console showed `LINUX-INIT-OK` (the test initramfs's /init), or 0.
    pub init_marker_tsc: AtomicU64,
    /// [`Self::exits`] at that moment: what follows is the steady state of /init.
    pub init_marker_exits: ExitCounts,
    /// The partition stopped (powered off, halted by the health monitor, or restarting).
    pub stopped: AtomicBool,
    /// What boot laid out, kept to lay it out again at a restart.
    pub boot: BootFiles,
    /// The PCI configuration space as prepared at boot (a restart resets to it).
    pci_at_boot: bridge::LinuxPci,
    /// Where the vCPUs meet during a restart (`restart`).
    pub rendezvous: Rendezvous,
}

/// The kernel, initramfs and command line a Linux partition boots with, kept from boot
/// (the files stay in the firmware pages they were read into) so that each restart lays
/// out exactly what the first boot did.
pub struct BootFiles {
    pub kernel: &'static [u8],
    pub initramfs: Option<&'static [u8]>,
    pub cmdline: String,
    pub apic_ids: Vec<u32>,
}

impl BootFiles {
    /// Scrubs `part`'s RAM and lays the partition out in it: zero page, e820, command
    /// line, ACPI tables, page tables, kernel, initramfs (`legacy_linux::setup::prepare`).
    ///
    /// # Safety
    /// No vCPU of the partition runs (boot, or every vCPU parked for a restart).
    pub unsafe fn lay_out(&self, part: &Partition) -> Result<BootPlan, String> {
        let config = LinuxBootConfig {
            kernel: self.kernel,
            initramfs: self.initramfs,
            cmdline: self.cmdline.as_bytes(),
            apic_ids: &self.apic_ids,
            ioapic: None,
            power: PowerPorts::DEFAULT,
            protocol: BootProtocol::Linux64,
        };
        // SAFETY: the RAM was reserved for this partition; no vCPU of it runs (caller).
        let ram = unsafe { part.ram() };
        ram.fill(0);
        setup::prepare(ram, &config).map_err(|e| format!("Linux setup: {e:?}"))
    }
}

/// Every prepared Linux partition.
static LINUX: Mutex<Vec<&'static LinuxPartition>> = Mutex::new(Vec::new());
/// APIC ids of the machine's cores, core order (noted by the boot flow).
static APIC_IDS: Mutex<Vec<u32>> = Mutex::new(Vec::new());

/// Records the APIC id of every core (index = core number), for the guests' MADT.
pub fn note_processors(apic_ids: &[u32]) {
    *APIC_IDS.lock() = apic_ids.to_vec();
}

/// The Linux partition with table index `partition`, if it was prepared.
pub fn of(partition: usize) -> Option<&'static LinuxPartition> {
    LINUX.lock().iter().find(|l| l.partition == partition).copied()
}

/// Boot phase: loads the kernel and initramfs of `entry` into `part`'s RAM.
pub fn prepare(
    firmware: &crate::boot::BootServices,
    table: &Table,
    entry: &PartitionEntry,
    part: &Partition,
) -> Result<(), String> {
    let apic_ids =
        apic_ids_of(&APIC_IDS.lock(), entry.cores.iter()).map_err(|c| format!("no APIC id for core {c}"))?;
    let map = ApicIdMap::identity(&apic_ids).map_err(|e| format!("APIC ids {apic_ids:?}: {e:?}"))?;
    let kernel_name = table.text(entry.image);
    let t0 = crate::cpu::rdtsc();
    let kernel = esp::read(firmware, kernel_name)?;
    let initramfs_name = table.text(entry.initramfs);
    let initramfs = if initramfs_name.is_empty() { None } else { Some(esp::read(firmware, initramfs_name)?) };
    let read_ticks = crate::cpu::rdtsc() - t0;
    let cmdline: String =
        hallows_core::boot_plan::linux_cmdline(table, part.index).map_err(|e| format!("{e}"))?.concat();
    let (kernel_bytes, initramfs_bytes) = (kernel.keep(), initramfs.map(esp::EspFile::keep));
    let boot = BootFiles { kernel: kernel_bytes, initramfs: initramfs_bytes, cmdline, apic_ids };
    // SAFETY: no vCPU runs yet.
    let plan = unsafe { boot.lay_out(part) }?;
    let (apic_ids, cmdline) = (&boot.apic_ids, &boot.cmdline);
    hvlog!(
        "partition {}: Linux {} `{kernel_name}` ({} KiB){}, {} MiB RAM at host {:#x}, {} vCPU(s) (APIC ids {apic_ids:?}), entry {:#x}, files read in {} M TSC ticks",
        part.name,
        plan.layout.format.name(),
        kernel_bytes.len() >> 10,
        match initramfs_bytes {
            Some(f) => format!(", initramfs `{initramfs_name}` ({} KiB)", f.len() >> 10),
            None => String::new(),
        },
        part.ram_bytes >> 20,
        part.ram_hpa,
        apic_ids.len(),
        plan.entry.rip,
        read_ticks / 1_000_000
    );
    hvlog!("partition {}: command line `{cmdline}`", part.name);
    let mut mmio = MmioBus::new();
    let mut pci = bridge::prepare(table, part, &mut mmio).map_err(|e| format!("channels: {e}"))?;
    let manage = manage_pci::prepare(table, part, &mut pci, &mut mmio)
        .map_err(|e| format!("management function: {e}"))?;
    let linux = LinuxPartition {
        partition: part.index,
        entry: plan.entry,
        map,
        uart: Mutex::new(Uart16550::new()),
        pci: Mutex::new(pci.clone()),
        pci_at_boot: pci,
        mmio,
        manage,
        mailboxes: (0..apic_ids.len()).map(|_| Mailbox::default()).collect(),
        exits: ExitCounts::default(),
        first_entry_tsc: AtomicU64::new(0),
        init_marker_tsc: AtomicU64::new(0),
        init_marker_exits: ExitCounts::default(),
        stopped: AtomicBool::new(false),
        boot,
        rendezvous: Rendezvous::default(),
    };
    LINUX.lock().push(Box::leak(Box::new(linux)));
    Ok(())
}
