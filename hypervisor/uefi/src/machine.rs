//! What every core shares once boot is done: the partitions, the VMX control values,
//! host page tables, bitmaps and the time base. Built on the boot core before any other
//! core starts; read-only afterwards except for the atomics and locks inside.

use alloc::vec::Vec;

pub use hallows_core::boot_plan::CorePlan;
use hallows_core::core_stats::CoreCounters;
use hallows_core::vmx::caps::{VmxCapabilities, VmxControls};

use crate::partition::Partition;

/// Everything shared by the cores.
pub struct Machine {
    pub partitions: Vec<Partition>,
    pub cores: Vec<CorePlan>,
    pub caps: VmxCapabilities,
    pub controls: VmxControls,
    pub host_cr3: u64,
    /// Shared MSR bitmap (every MSR traps).
    pub msr_bitmap: u64,
    /// Per-partition I/O bitmaps (A and B, two pages each).
    pub io_bitmaps: Vec<u64>,
    pub tsc_hz: u64,
    pub tsc_at_entry: u64,
    /// The table's log level (`hallows_abi::table::LOG_*`).
    pub log_level: u8,
    /// VM exits and window switches per core.
    pub counters: CoreCounters,
    /// The XCR0 components partitions may enable.
    pub xstate: hallows_core::xstate::XstatePolicy,
    /// How vCPU register state is saved and restored on shared cores.
    pub xsave: hallows_core::xstate::XsaveSupport,
}

/// The machine, published by the boot core.
pub static MACHINE: spin::Once<Machine> = spin::Once::new();

/// The shared machine (only valid after boot published it).
pub fn machine() -> &'static Machine {
    MACHINE.get().expect("machine published before any core runs")
}

impl Machine {
    /// Nanoseconds since the hypervisor's entry.
    pub fn now_ns(&self) -> u64 {
        self.ticks_to_ns(crate::cpu::rdtsc().wrapping_sub(self.tsc_at_entry))
    }

    pub fn ticks_to_ns(&self, ticks: u64) -> u64 {
        (ticks as u128 * 1_000_000_000 / self.tsc_hz.max(1) as u128) as u64
    }

    pub fn ns_to_ticks(&self, ns: u64) -> u64 {
        (ns as u128 * self.tsc_hz as u128 / 1_000_000_000) as u64
    }
}
