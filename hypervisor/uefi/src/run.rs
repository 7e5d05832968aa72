//! A core's life after boot: its own GDT/IDT, VMXON, one VMCS per vCPU it runs, then the
//! loop: enter the vCPU that owns the current window, handle the exit, repeat.
//!
//! Decisions come from hallows-core: exit classification and descriptions (`exit`),
//! hypercalls (`hypercall::dispatch`), the health-monitor action (`health`) and the
//! window cursor (`schedule`). This file only moves values between them and the CPU.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::{self, Write as _};
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use hallows_abi::health::{Action, EventClass};
use hallows_abi::hypercall::PartitionState;
use hallows_abi::layout::{stack_top, BOOT_INFO_GPA, PAGE_TABLES_GPA};
use hallows_abi::table::LOG_DEBUG;
use hallows_core::cpuid;
use hallows_core::exit::{classify, Disposition, ExitInfo, Handling};
use hallows_core::guest_state::{rt_guest_state, GuestEntry};
use hallows_core::hypercall::{dispatch, Outcome};
use hallows_core::schedule::{preemption_timer_value, Schedule};
use hallows_core::vmcs::{control, exit_info, guest};
use hallows_core::vmx_caps::{exit as vmx_exit, msr, pin};

use crate::console::SerialSink;
use crate::cpu::{self, rdmsr};
use crate::host::CoreTables;
use crate::hypercalls::Env;
use crate::machine::{machine, Machine};
use crate::partition::Partition;
use crate::text::Text;
use crate::vmx::{self, GuestRegs, VmFail};
use crate::{hvlog, memory};

/// A vCPU on this core.
struct Vcpu {
    partition: usize,
    index: u32,
    vmcs: u64,
    regs: GuestRegs,
    launched: bool,
    /// Stopped for good on this core.
    stopped: bool,
    /// On a scheduled core: the partition asked (Yield) not to run before this instant
    /// (ns since boot); its windows before then are left idle, and a window it wakes in
    /// is entered at the wake-up time, not at the window's start.
    wake_at_ns: u64,
}

/// Basic exit reason of VMCALL (SDM appendix C), with the entry-failure bit clear.
const EXIT_REASON_VMCALL: u32 = 18;

/// What to do after an exit.
enum Next {
    /// Re-enter the same vCPU (or whoever owns the window now).
    Resume,
    /// Skip the exiting instruction, then resume.
    Skip,
    /// Give up the rest of the window (scheduled core) or wait until `until_ns`
    /// (dedicated core), after skipping the instruction.
    Yield { until_ns: u64 },
    /// The vCPU stopped.
    Stop,
}

/// Per-core state.
struct Core {
    index: usize,
    tables: &'static CoreTables,
    vcpus: Vec<Vcpu>,
    first_entry_reported: bool,
    /// The VMCS last made current with VMPTRLD (0: none), to skip reloading it.
    current_vmcs: u64,
    /// A scheduled core measures its window switches (dedicated cores skip the RDTSC).
    measure_switches: bool,
    /// TSC right after the latest VM exit (scheduled cores).
    exit_tsc: u64,
    /// TSC of the preemption-timer exit that ended a window, while the switch to the next
    /// window's partition is in progress (0: none).
    switch_from: u64,
}

/// Entry of every core (boot core included) once the machine is published.
pub fn core_main(index: usize) -> ! {
    let m = machine();
    let tables: &'static CoreTables = CoreTables::new();
    tables.load();
    crate::host::load_idt();
    // SAFETY: the host page tables identity-map all memory the hypervisor uses.
    unsafe { cpu::write_cr3(m.host_cr3) };
    if let Err(e) = enable_vmx(m) {
        hvlog!("core {index}: cannot enter VMX operation: {e}");
        cpu::halt_forever();
    }
    let mut core = Core {
        index,
        tables,
        vcpus: Vec::new(),
        first_entry_reported: false,
        current_vmcs: 0,
        measure_switches: !m.cores[index].windows.is_empty(),
        exit_tsc: 0,
        switch_from: 0,
    };
    for plan in &m.cores[index].vcpus {
        let mut v = Vcpu {
            partition: plan.partition,
            index: plan.vcpu,
            vmcs: new_vmcs_region(m),
            regs: GuestRegs::default(),
            launched: false,
            stopped: false,
            wake_at_ns: 0,
        };
        let p = &m.partitions[v.partition];
        if p.is_linux && m.cores[index].windows.is_empty() {
            // A core dedicated to a Linux vCPU runs it until the partition stops.
            crate::serial::set_running();
            crate::linux::run_core(m, index, tables, plan.partition, plan.vcpu as usize);
        } else if p.is_linux {
            if v.index == 0 {
                hvlog!(
                    "partition {}: Linux partitions are not booted by this version of the hypervisor; halted, its cores stay idle",
                    p.name
                );
                p.set_state(PartitionState::Halted);
            }
            v.stopped = true;
        } else if let Err(e) = core.setup_vcpu(m, &mut v) {
            hvlog!("partition {}: cannot set up vCPU {} on core {index}: {e}; halted", p.name, v.index);
            p.set_state(PartitionState::Halted);
            v.stopped = true;
        }
        core.vcpus.push(v);
    }
    crate::serial::set_running();
    core.run(m)
}

/// Sets CR4.VMXE, applies the VMX fixed bits and executes VMXON.
fn enable_vmx(m: &Machine) -> Result<(), String> {
    // SAFETY: IA32_FEATURE_CONTROL exists on VMX CPUs.
    let fc = unsafe { rdmsr(msr::IA32_FEATURE_CONTROL) };
    if fc & 1 == 0 {
        // SAFETY: unlocked: enable VMX outside SMX and lock, as firmware normally does.
        unsafe { cpu::wrmsr(msr::IA32_FEATURE_CONTROL, fc | 5) };
    } else if fc & 4 == 0 {
        return Err(String::from("VMX disabled in IA32_FEATURE_CONTROL"));
    }
    // SAFETY: setting VMXE and the fixed bits keeps paging and protection as they are.
    unsafe {
        cpu::write_cr4(m.caps.fix_cr4(cpu::read_cr4() | 1 << 13));
        cpu::write_cr0(m.caps.fix_cr0(cpu::read_cr0()));
    }
    let region = new_vmcs_region(m);
    // SAFETY: VMXE is set, CR0/CR4 are fixed, `region` is this core's VMXON page.
    unsafe { vmx::vmxon(region) }.map_err(|e| format!("VMXON failed: {e}"))
}

/// A zeroed page carrying the VMCS revision id.
fn new_vmcs_region(m: &Machine) -> u64 {
    let page = memory::alloc_pages(1);
    // SAFETY: a fresh page owned by this core.
    unsafe { *(page as *mut u32) = m.caps.revision_id() };
    page
}

fn write(field: u32, value: u64) -> Result<(), VmFail> {
    // SAFETY: every value written is computed by the hypervisor from the partition's own
    // resources (its EPT, bitmaps, guest state) or the host's state.
    unsafe { vmx::vmwrite(field, value) }
}

fn read(field: u32) -> u64 {
    vmx::vmread(field).unwrap_or(0)
}

impl Core {
    fn scheduled(&self, m: &Machine) -> bool {
        !m.cores[self.index].windows.is_empty()
    }

    /// Writes the vCPU's VMCS from scratch: controls, host state, guest entry state.
    fn setup_vcpu(&mut self, m: &Machine, v: &mut Vcpu) -> Result<(), String> {
        let p = &m.partitions[v.partition];
        // SAFETY: the VMCS page carries the revision id and belongs to this core.
        unsafe { vmx::vmclear(v.vmcs).and_then(|_| vmx::vmptrld(v.vmcs)) }.map_err(|e| format!("{e}"))?;
        self.current_vmcs = v.vmcs;
        let (mut pin_ctl, mut exit_ctl) = (m.controls.pin, m.controls.exit);
        if !self.scheduled(m) {
            // A dedicated core needs no timer: the goal is zero VM exits.
            pin_ctl &= !pin::PREEMPTION_TIMER;
            exit_ctl &= !vmx_exit::SAVE_PREEMPTION_TIMER;
        }
        let c = &m.controls;
        let entry = GuestEntry {
            rip: p.entry.get(),
            rsp: stack_top(p.ram_bytes, v.index as u64),
            cr3: PAGE_TABLES_GPA,
        };
        let plan = rt_guest_state(&m.caps, entry);
        let io = m.io_bitmaps[v.partition];
        // SAFETY: IA32_EFER exists on every x86-64 CPU.
        let host_efer = unsafe { rdmsr(msr::IA32_EFER) };
        let fields: [(u32, u64); 12] = [
            (control::PIN_BASED, pin_ctl as u64),
            (control::PRIMARY_PROC_BASED, c.primary as u64),
            (control::SECONDARY_PROC_BASED, c.secondary as u64),
            (control::EXIT_CONTROLS, exit_ctl as u64),
            (control::ENTRY_CONTROLS, c.entry as u64),
            (control::EXCEPTION_BITMAP, 0),
            (control::CR3_TARGET_COUNT, 0),
            (control::IO_BITMAP_A, io),
            (control::IO_BITMAP_B, io + 4096),
            (control::MSR_BITMAPS, m.msr_bitmap),
            (control::EPT_POINTER, p.eptp),
            (control::VPID, 1 + v.partition as u64),
        ];
        let host_state = crate::host::vmcs_host_state(self.tables, m.host_cr3, host_efer);
        for (field, value) in fields.into_iter().chain(host_state) {
            write(field, value).map_err(|e| format!("VMWRITE {field:#x}: {e}"))?;
        }
        for w in plan.writes() {
            write(w.field, w.value).map_err(|e| format!("VMWRITE {:#x}: {e}", w.field))?;
        }
        v.regs = GuestRegs::for_entry(BOOT_INFO_GPA, v.index as u64);
        v.launched = false;
        v.stopped = false;
        p.set_state(PartitionState::Running);
        Ok(())
    }

    fn run(mut self, m: &'static Machine) -> ! {
        if self.vcpus.is_empty() {
            loop {
                idle(m, self.index, None);
            }
        }
        let plan = &m.cores[self.index];
        let schedule = if plan.windows.is_empty() {
            None
        } else {
            match Schedule::new(plan.major_frame_ns, &plan.windows) {
                Ok(s) => Some(s),
                Err(e) => {
                    hvlog!("core {}: schedule refused: {e}; core idle", self.index);
                    cpu::halt_forever();
                }
            }
        };
        loop {
            let Some(s) = schedule else {
                // Dedicated core: one vCPU, entered until it stops.
                self.serve_restart_request(m, 0);
                if self.vcpus[0].stopped {
                    idle(m, self.index, Some(&m.partitions[self.vcpus[0].partition]));
                    continue;
                }
                if self.current_vmcs != self.vcpus[0].vmcs {
                    let _ = self.load_vmcs(0);
                }
                if let Next::Yield { until_ns } = self.enter(m, 0) {
                    wait_until(m, until_ns);
                }
                continue;
            };
            let now = m.now_ns();
            let slot = s.slot_at(now);
            let vcpu = slot.partition.and_then(|p| self.vcpus.iter().position(|v| v.partition == p as usize));
            if let Some(i) = vcpu {
                self.serve_restart_request(m, i);
            }
            match vcpu {
                // Asleep for the whole window: leave it idle.
                Some(i) if !self.vcpus[i].stopped && self.vcpus[i].wake_at_ns >= slot.end_ns => {
                    self.switch_from = 0;
                    wait_until(m, slot.end_ns);
                }
                Some(i) if !self.vcpus[i].stopped => {
                    if self.vcpus[i].wake_at_ns > now {
                        wait_until(m, self.vcpus[i].wake_at_ns);
                    }
                    let now = m.now_ns();
                    let ticks = m.ns_to_ticks(slot.remaining_ns(now));
                    let _ = self.load_vmcs(i);
                    let timer = preemption_timer_value(ticks, m.caps.preemption_timer_shift());
                    let _ = write(guest::PREEMPTION_TIMER_VALUE, timer as u64);
                    if let Next::Yield { until_ns } = self.enter(m, i) {
                        // 0: give up the rest of the window; otherwise sleep until then,
                        // in this window if it is still open then.
                        self.vcpus[i].wake_at_ns = until_ns;
                        let resume = if until_ns == 0 { slot.end_ns } else { until_ns.min(slot.end_ns) };
                        wait_until(m, resume);
                    }
                }
                // An idle gap, or a stopped partition's window: wait for the next slot
                // (not a switch worth measuring).
                _ => {
                    self.switch_from = 0;
                    wait_until(m, slot.end_ns);
                }
            }
        }
    }

    /// Restarts vCPU `slot`'s partition when another partition asked for it.
    fn serve_restart_request(&mut self, m: &'static Machine, slot: usize) {
        let p = &m.partitions[self.vcpus[slot].partition];
        // A plain load first: the common case costs no locked instruction.
        if p.restart_requested.load(Ordering::Relaxed) && p.restart_requested.swap(false, Ordering::SeqCst) {
            p.health.lock().note_restart(m.now_ns());
            self.restart(m, slot, "restarted at another partition's request");
        }
    }

    fn load_vmcs(&mut self, slot: usize) -> Result<(), VmFail> {
        self.current_vmcs = self.vcpus[slot].vmcs;
        // SAFETY: the VMCS was initialised by `setup_vcpu` on this core.
        unsafe { vmx::vmptrld(self.vcpus[slot].vmcs) }
    }

    /// Enters vCPU `slot` once and handles its exit.
    fn enter(&mut self, m: &'static Machine, slot: usize) -> Next {
        if !self.first_entry_reported {
            self.first_entry_reported = true;
            let ticks = cpu::rdtsc().wrapping_sub(m.tsc_at_entry);
            let p = &m.partitions[self.vcpus[slot].partition];
            hvlog!(
                "core {}: first entry into partition {} {} TSC ticks after hypervisor entry",
                self.index,
                p.name,
                ticks
            );
        }
        if self.switch_from != 0 {
            m.count_switch(self.index, cpu::rdtsc().wrapping_sub(self.switch_from));
            self.switch_from = 0;
        }
        crate::serial::pump();
        let v = &mut self.vcpus[slot];
        // SAFETY: the current VMCS is this vCPU's, set up by `setup_vcpu`.
        let entered = unsafe { vmx::enter(&mut v.regs, v.launched) };
        if self.measure_switches {
            self.exit_tsc = cpu::rdtsc();
        }
        if let Err(e) = entered {
            return self.health(m, slot, EventClass::UnknownExit, &format_args!("VM entry failed: {e}"));
        }
        self.vcpus[slot].launched = true;
        m.count_exit(self.index);
        let next = self.handle_exit(m, slot);
        if matches!(next, Next::Skip | Next::Yield { .. }) {
            let rip = read(guest::RIP).wrapping_add(read(exit_info::INSTRUCTION_LEN));
            let _ = write(guest::RIP, rip);
        }
        next
    }

    fn handle_exit(&mut self, m: &'static Machine, slot: usize) -> Next {
        let reason = read(exit_info::EXIT_REASON) as u32;
        // Fast path: a hypercall needs no other exit field.
        if reason == EXIT_REASON_VMCALL {
            return self.hypercall(m, slot);
        }
        let info = ExitInfo {
            reason,
            qualification: read(exit_info::EXIT_QUALIFICATION),
            guest_rip: read(guest::RIP),
            guest_physical: read(exit_info::GUEST_PHYSICAL_ADDRESS),
            guest_linear: read(exit_info::GUEST_LINEAR_ADDRESS),
            interruption_info: read(exit_info::INTERRUPTION_INFO) as u32,
            instruction_len: read(exit_info::INSTRUCTION_LEN) as u32,
            rcx: self.vcpus[slot].regs.rcx,
        };
        match classify(&info) {
            Disposition::Handle(Handling::Hypercall) => self.hypercall(m, slot),
            Disposition::Handle(Handling::Cpuid) => {
                let r = &mut self.vcpus[slot].regs;
                let (leaf, sub) = (r.rax as u32, r.rcx as u32);
                let host = cpu::cpuid(leaf, sub);
                let [a, b, c, d] = cpuid::filter(leaf, sub, [host.eax, host.ebx, host.ecx, host.edx]);
                (r.rax, r.rbx, r.rcx, r.rdx) = (a as u64, b as u64, c as u64, d as u64);
                Next::Skip
            }
            // HLT: no interrupt will ever wake it; treat as giving up the window.
            Disposition::Handle(Handling::Hlt) => Next::Yield { until_ns: 0 },
            Disposition::Handle(Handling::WindowEnd) => {
                self.switch_from = self.exit_tsc;
                Next::Resume
            }
            Disposition::Handle(Handling::ExternalInterrupt) | Disposition::Handle(Handling::Nmi) => {
                Next::Resume
            }
            Disposition::Handle(Handling::Rdtsc) | Disposition::Handle(Handling::Xsetbv) => {
                self.health(m, slot, EventClass::ForbiddenInstruction, &info.describe())
            }
            Disposition::Fault(class) => self.health(m, slot, class, &info.describe()),
        }
    }

    fn hypercall(&mut self, m: &'static Machine, slot: usize) -> Next {
        let part = self.vcpus[slot].partition;
        let mut env = Env { machine: m, caller: part, fault_message: None };
        let outcome = dispatch(&mut self.vcpus[slot].regs, &mut env);
        match outcome {
            Outcome::Resume => Next::Skip,
            Outcome::Yield { until_ns } => Next::Yield { until_ns },
            Outcome::Halt { exit_code } => {
                let p = &m.partitions[part];
                p.console.lock().flush(&p.name, &mut SerialSink);
                hvlog!("partition {}: halted itself (exit code {exit_code})", p.name);
                self.stop(m, slot);
                Next::Stop
            }
            Outcome::Fault(class) => {
                // The call itself completed: skip the VMCALL before acting.
                let rip = read(guest::RIP).wrapping_add(read(exit_info::INSTRUCTION_LEN));
                let _ = write(guest::RIP, rip);
                let message = env.fault_message.unwrap_or_else(Text::new);
                match self.health(m, slot, class, &format_args!("reported: {message}")) {
                    Next::Skip => Next::Resume,
                    other => other,
                }
            }
            Outcome::Restart { partition } if partition == part => {
                m.partitions[part].health.lock().note_restart(m.now_ns());
                self.restart(m, slot, "restart requested by the partition");
                Next::Resume
            }
            Outcome::Restart { partition } => {
                self.request_restart(m, part, partition);
                Next::Skip
            }
        }
    }

    /// Asks the core(s) running `target` to restart it: a flag, then an NMI that makes the
    /// core leave its guest (NMI exiting) or wake from HLT, so even a core that never exits
    /// notices.
    fn request_restart(&self, m: &Machine, caller: usize, target: usize) {
        let (who, t) = (&m.partitions[caller].name, &m.partitions[target]);
        if t.vcpus > 1 || t.is_linux {
            hvlog!("partition {who}: restart of {} refused: only single-vCPU RT partitions restart", t.name);
            return;
        }
        hvlog!("partition {who}: requests a restart of partition {}", t.name);
        t.restart_requested.store(true, Ordering::SeqCst);
        let apic = crate::ap::Apic::new();
        for (c, plan) in m.cores.iter().enumerate() {
            if c != self.index && plan.vcpus.iter().any(|v| v.partition == target) {
                apic.send_ipi(plan.apic_id, crate::ap::ICR_NMI);
            }
        }
    }

    /// Logs a health event and applies the partition's action for its class.
    fn health(
        &mut self,
        m: &'static Machine,
        slot: usize,
        class: EventClass,
        what: &dyn fmt::Display,
    ) -> Next {
        let p = &m.partitions[self.vcpus[slot].partition];
        let mut decision = p.health.lock().decide(&p.actions, class, m.now_ns());
        // A multi-vCPU partition cannot be reloaded under its other running vCPUs.
        if decision.action == Action::RestartPartition && p.vcpus > 1 {
            decision.action = Action::HaltPartition;
        }
        p.console.lock().flush(&p.name, &mut SerialSink);
        hvlog!("{}", decision.report(&p.name, what));
        // Only events that can be stepped over continue under `log`.
        let continuable = matches!(
            class,
            EventClass::IoViolation | EventClass::MsrViolation | EventClass::DeadlineMiss | EventClass::Panic
        );
        match decision.action {
            Action::Log if continuable => Next::Skip,
            Action::Log | Action::HaltPartition => {
                self.stop(m, slot);
                Next::Stop
            }
            Action::RestartPartition => {
                self.restart(m, slot, "restarted with a fresh image");
                Next::Resume
            }
            Action::HaltSystem => {
                hvlog!("system halted by the health monitor (partition {})", p.name);
                crate::boot::power_off_runtime()
            }
        }
    }

    fn stop(&mut self, m: &Machine, slot: usize) {
        let v = &mut self.vcpus[slot];
        v.stopped = true;
        m.partitions[v.partition].set_state(PartitionState::Halted);
    }

    /// Reloads the partition's image into scrubbed RAM and resets this vCPU.
    fn restart(&mut self, m: &'static Machine, slot: usize, why: &str) {
        let part = self.vcpus[slot].partition;
        let p = &m.partitions[part];
        p.set_state(PartitionState::Restarting);
        let n = p.restarts.fetch_add(1, Ordering::SeqCst) + 1;
        // SAFETY: the partition has one vCPU (multi-vCPU partitions are halted instead),
        // and it is this one, stopped in a VM exit.
        let loaded = unsafe { p.load(true, m.tsc_hz, m.now_ns()) };
        let mut v = core::mem::replace(
            &mut self.vcpus[slot],
            Vcpu {
                partition: part,
                index: 0,
                vmcs: 0,
                regs: GuestRegs::default(),
                launched: false,
                stopped: true,
                wake_at_ns: 0,
            },
        );
        match loaded.and_then(|_| self.setup_vcpu(m, &mut v)) {
            Ok(()) => hvlog!("partition {}: {why} (restart {n})", p.name),
            Err(e) => {
                hvlog!("partition {}: restart failed: {e}; halted", p.name);
                v.stopped = true;
                p.set_state(PartitionState::Halted);
            }
        }
        self.vcpus[slot] = v;
    }
}

/// Whether some idle core already prints the exit statistics.
static STATS_PRINTER: AtomicBool = AtomicBool::new(false);

/// Interval of the exit statistics.
const STATS_INTERVAL_NS: u64 = 1_000_000_000;

/// A core with nothing (left) to run. Returns when `watch` (the stopped partition of a
/// dedicated core) gets a restart request. With `log_level debug` or higher in the table,
/// the first idle core prints every core's VM exits once per second (scripts/bench reads
/// them: a core dedicated to a computing partition should show zero); the others halt
/// (an NMI from a restart request wakes them).
fn idle(m: &Machine, core: usize, watch: Option<&Partition>) {
    let requested = || watch.is_some_and(|p| p.restart_requested.load(Ordering::SeqCst));
    if m.log_level < LOG_DEBUG || STATS_PRINTER.swap(true, Ordering::SeqCst) {
        while !requested() {
            cpu::halt();
        }
        return;
    }
    let snapshot = |v: &[AtomicU64]| v.iter().map(|e| e.load(Ordering::Relaxed)).collect::<Vec<u64>>();
    let (mut last, mut last_switches, mut last_ticks) =
        (snapshot(&m.exits), snapshot(&m.switches), snapshot(&m.switch_ticks));
    let mut next = m.now_ns() + STATS_INTERVAL_NS;
    loop {
        while m.now_ns() < next {
            if requested() {
                STATS_PRINTER.store(false, Ordering::SeqCst);
                return;
            }
            cpu::pause();
        }
        next += STATS_INTERVAL_NS;
        let mut line = Text::<160>::new();
        for (i, (counter, before)) in m.exits.iter().zip(last.iter_mut()).enumerate() {
            let now = counter.load(Ordering::Relaxed);
            let _ = write!(line, " core{i}={}", now - *before);
            *before = now;
        }
        let mut switch_line = Text::<160>::new();
        for i in 0..m.switches.len() {
            let (n, t) = (m.switches[i].load(Ordering::Relaxed), m.switch_ticks[i].load(Ordering::Relaxed));
            let (dn, dt) = (n - last_switches[i], t - last_ticks[i]);
            if let Some(avg) = dt.checked_div(dn) {
                let _ = write!(switch_line, " core{i}={dn} (avg {avg} ticks)");
            }
            (last_switches[i], last_ticks[i]) = (n, t);
        }
        hvlog!("stats: VM exits in the last second (printed by idle core {core}):{line}");
        if !switch_line.as_str().is_empty() {
            hvlog!("stats: window switches in the last second:{switch_line}");
        }
    }
}

/// Spins until `now_ns() >= until_ns` (time belongs to nobody else on this core).
fn wait_until(m: &Machine, until_ns: u64) {
    while m.now_ns() < until_ns {
        crate::serial::pump();
        cpu::pause();
    }
}
