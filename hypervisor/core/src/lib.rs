//! Host-testable logic of the RustHallows hypervisor.
//!
//! Everything here is pure computation over plain data: no privileged instruction, no
//! global state. Privileged operations (reading MSRs, writing VMCS fields, touching host
//! physical memory) are behind small traits or closures that the UEFI binary
//! (`hypervisor/uefi`) implements and the tests fake.
//!
//! Where to look:
//! - **The VM-exit path** (arch-neutral): [`vcpu`] describes an exit as a value
//!   ([`vcpu::Exit`]), decides what it leads to for each kind of vCPU ([`vcpu::decide`] ->
//!   [`vcpu::Step`]) and what follows a health-monitor decision ([`vcpu::after_health`]);
//!   [`vcpu::modes`] holds the processor-mode rules (long mode, EFER, CPUID's CR4 bits,
//!   XSETBV per kind). Hypercalls go to [`hypercall::dispatch`], which checks every guest
//!   pointer and length and every privilege; CPUID answers go through [`cpuid`]; faults
//!   go to [`health`], which picks the table's action (with restart escalation) and
//!   formats the console message.
//! - **The vendor**: [`vmx`] is everything Intel-specific: exit reasons and qualifications
//!   ([`vmx::exit`]) and their translation into [`vcpu::Exit`] ([`vmx::translate`]), VMCS
//!   field encodings ([`vmx::vmcs`]), capability MSRs and controls ([`vmx::caps`]), the
//!   guest-state plans ([`vmx::guest_state`]), the I/O and MSR bitmaps ([`vmx::bitmaps`]),
//!   the EPT ([`vmx::ept`]). An SVM backend adds `svm` beside it.
//! - **Boot-time construction**: [`placement`] chooses host-physical ranges, [`elf`] loads
//!   an RT image into partition RAM, [`guest_paging`] writes the guest's identity page
//!   tables, [`cat`] computes cache-way masks and their MSR writes; [`boot_plan`] runs every
//!   firmware-independent boot decision on a table, so host tests can assert that a
//!   table the checker accepts boots; [`bridge`] places a Linux partition's channel
//!   functions (PCI device numbers, register blocks, shared-pages BARs).
//! - **Isolation on a shared core**: [`control_regs`] owns every CR0/CR4 bit and decides
//!   guest writes, [`xstate`] checks XCR0 and describes the XSAVE area, and
//!   [`switched_state`] lists the registers VMX does not switch and says when the binary
//!   must save and load them.
//! - **Life cycle**: [`lifecycle`] is the one state machine of a partition (booting,
//!   running, waiting, faulted, restarting, halted) and says who may move it where;
//!   [`group_restart`] is how the cores running a partition's vCPUs agree on restarting it
//!   whole (one owner rebuilds, the others park first and start afresh after).
//! - **Time**: [`schedule`] maps an instant to the window that owns it, the next switch
//!   and the VMX-preemption timer value.
//! - **Console**: [`console`] multiplexes every partition's bytes into whole
//!   `[name] line` lines; [`console_queue`] holds them in one bounded queue per source
//!   and takes turns between the sources, line by line, on the way to the UART.
//! - **Linux partitions**: [`linux_vcpu`] is the policy for a Linux vCPU (CPUID view,
//!   x2APIC ICR filtering, MSR and I/O policy, INIT-SIPI-SIPI, its VMX controls).
#![forbid(unsafe_code)]
#![cfg_attr(not(test), no_std)]

extern crate alloc;

pub mod boot_plan;
pub mod bridge;
pub mod cat;
pub mod console;
pub mod console_queue;
pub mod control_regs;
pub mod core_stats;
pub mod counters;
pub mod cpuid;
pub mod elf;
pub mod group_restart;
pub mod guest_paging;
pub mod health;
pub mod host_tables;
pub mod hypercall;
pub mod lifecycle;
pub mod linux_vcpu;
pub mod madt;
pub mod manage;
pub mod placement;
pub mod schedule;
pub mod slot_plan;
pub mod switched_state;
pub mod vcpu;
pub mod vmx;
pub mod xstate;
