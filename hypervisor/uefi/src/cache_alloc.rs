//! Cache allocation (Intel RDT: L3 CAT, CDP, MBA) on the real CPU: the privileged half of
//! `hallows_core::cat`. The decisions are all there (`plan::plan`, `switch::ClassTracker`);
//! this module reads CPUID, prints the plan (`report::boot_lines`), and performs the MSR
//! writes.
//!
//! - [`plan_at_boot`] (boot core, once the table fits the machine): decides every
//!   partition's class of service, or refuses to boot; prints one line per class.
//! - [`program_this_core`] (every core before its first VM entry): writes every class's
//!   masks (and CDP/MBA registers). The masks are per package; every core writes them,
//!   which needs no topology and costs a few MSR writes per core.
//! - [`on_partition_switch`] (the per-switch hook, before a VM entry into another vCPU):
//!   writes IA32_PQR_ASSOC only when the arriving partition's class differs from what the
//!   core's register holds. A dedicated core thus writes it once, at its first entry; a
//!   scheduled core at the window switches between partitions of different classes.
//!
//! While the hypervisor handles an exit, the core keeps the partition's class: its own
//! accesses are few and short, and switching classes twice per exit would cost more than
//! the lines it could pollute.

use alloc::format;
use alloc::string::String;

use hallows_abi::table::Table;
use hallows_core::cat::plan::{plan, CachePlan};
use hallows_core::cat::report::boot_lines;
use hallows_core::cat::switch::ClassTracker;
use hallows_core::cat::{CatInfo, MbaInfo, MsrWrite};

use crate::partition::Partition;
use crate::{cpu, hvlog};

/// The plan, decided once on the boot core before any other core starts; `None` inside
/// when nothing is programmed (no CAT, or a table without cache settings).
static PLAN: spin::Once<Option<CachePlan>> = spin::Once::new();

/// The per-core state the per-switch hook needs: what this core's IA32_PQR_ASSOC holds.
pub type CoreClass = ClassTracker;

/// Decides the classes of service for `table` on this CPU and prints them; `Err` when
/// the table's cache allocation cannot be enforced and it requires it, or does not fit
/// the CPU's classes and ways. Call once, on the boot core, after
/// `Table::validate_against`.
pub fn plan_at_boot(table: &Table) -> Result<(), String> {
    let cat = CatInfo::from_cpuid(cpu::cpuid_regs);
    let mba = MbaInfo::from_cpuid(cpu::cpuid_regs);
    let decision = plan(table, cat, mba).map_err(|refusal| format!("cache allocation: {refusal}"))?;
    for line in boot_lines(table, &decision, cat, mba) {
        hvlog!("cache: {line}");
    }
    PLAN.call_once(|| decision.plan);
    Ok(())
}

fn the_plan() -> Option<&'static CachePlan> {
    PLAN.get().and_then(Option::as_ref)
}

/// Performs one write the plan or the tracker computed.
fn write(w: MsrWrite) {
    // SAFETY: `plan` checked every value against CPUID with the SDM's rules (class within
    // the CPU's classes, masks contiguous, non-empty and inside the CBM length, delays
    // within MBA's range, CDP only where CPUID offers it), and these MSRs change only
    // which cache ways and how much memory bandwidth the core's later accesses get, never
    // the hypervisor's memory or control flow.
    unsafe { cpu::wrmsr(w.msr, w.value) }
}

/// Programs this core's package with every class's masks (and CDP, MBA), and returns the
/// number of MSR writes. Nothing without a plan (no CAT or no cache settings).
pub fn program_this_core() -> usize {
    let Some(plan) = the_plan() else { return 0 };
    let writes = plan.boot_writes();
    for w in &writes {
        write(*w);
    }
    writes.len()
}

/// Programs the boot core and prints what it cost (the boot time the masks add).
pub fn program_boot_core() {
    let start = cpu::rdtsc();
    let writes = program_this_core();
    let ticks = cpu::rdtsc().wrapping_sub(start);
    if writes > 0 {
        hvlog!(
            "cache: {writes} MSR writes per core to program the classes ({ticks} TSC ticks on the boot core)"
        );
    }
}

/// The class of service of a partition, when the hypervisor programs CAT.
pub fn class_of(partition: &Partition) -> Option<u16> {
    the_plan().map(|p| p.class_of(partition.index))
}

/// The per-switch hook: before entering a vCPU of `partition` on a core that ran
/// another vCPU (or none) last, load the partition's class of service into the core's
/// IA32_PQR_ASSOC, unless the register already holds it.
pub fn on_partition_switch(core: &mut CoreClass, partition: &Partition) {
    if let Some(w) = core.enter(class_of(partition)) {
        write(w);
    }
}
