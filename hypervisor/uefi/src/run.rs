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
use hallows_abi::layout::{stack_top, BOOT_INFO_GPA, PAGE_TABLES_GPA};
use hallows_abi::table::LOG_DEBUG;
use hallows_core::control_regs::{self, cr_write, CrChange, CrWriteRequest};
use hallows_core::cpuid;
use hallows_core::exit::{classify, CrAccessQualification, Disposition, ExitInfo, Handling};
use hallows_core::guest_state::{rt_guest_state, GuestEntry};
use hallows_core::hypercall::{dispatch, Outcome};
use hallows_core::lifecycle::{self, Cause, Event};
use hallows_core::schedule::{guarded_run_ticks, preemption_timer_value, Schedule, WorkBudget};
use hallows_core::switched_state::{CoreStateOwner, Switch};
use hallows_core::vmcs::{control, exit_info, guest};
use hallows_core::vmx_caps::{exit as vmx_exit, msr, pin};

use crate::cpu::{self, rdmsr};
use crate::host::CoreTables;
use crate::hypercalls::Env;
use crate::machine::{machine, Machine};
use crate::partition::Partition;
use crate::switched::{self, SavedState};
use crate::text::Text;
use crate::vmx::{self, GuestRegs, VmFail};
use crate::{hvlog, memory};
use hallows_core::elf::ElfImage;

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
    /// Registers VMX does not switch, kept while another vCPU runs on the core.
    saved: SavedState,
    /// A restart in progress: the vCPU is not entered until it is done.
    restart: Option<RestartWork>,
    /// On a scheduled core: the longest the hypervisor took to handle one of this vCPU's
    /// exits (with a margin). Its windows end that much early for the guest, so the
    /// handling of its last exit never runs into the next partition's window.
    exit_cost: WorkBudget<1>,
}

/// The guard a vCPU starts with, until its own exits have been measured.
const EXIT_COST_GUESS_NS: u64 = 10_000;

/// A restart in progress. Scrubbing and reloading run in the partition's own time: on a
/// scheduled core, a chunk at a time inside its windows (never past a window's end); on a
/// dedicated core, at once.
struct RestartWork {
    why: &'static str,
    /// The image to load, parsed and checked once.
    image: ElfImage,
    image_end: u64,
    /// Bytes of guest RAM rebuilt (zeroed, image bytes in place) so far.
    rebuilt: u64,
    /// Windows (scheduled core) the restart has used so far.
    windows: u32,
    /// TSC ticks spent on it so far.
    ticks: u64,
}

/// Bytes of guest RAM rebuilt between two looks at the clock.
const REBUILD_CHUNK: u64 = 64 * 1024;
/// Kinds of restart work whose cost a core tracks: one chunk of RAM, the final step
/// (page tables, boot info, a fresh VMCS).
const WORK_CHUNK: u64 = 0;
const WORK_FINISH: u64 = 1;
/// What a core assumes these cost until it has measured them (generous: the estimate
/// only grows with what is measured).
const WORK_GUESS_NS: [u64; 2] = [200_000, 400_000];

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
    /// The hypercall would not finish before the window ends: leave the rest of the window
    /// idle without executing it; the VMCALL runs again at the partition's next window.
    Defer,
}

/// Hypercall numbers whose cost a core tracks (larger numbers share the last slot).
const COST_SLOTS: usize = 16;

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
    /// Whose non-VMCS registers (debug registers, CR2, KERNEL_GS_BASE, XCR0, x87/SSE/AVX)
    /// the CPU holds.
    state_owner: CoreStateOwner,
    /// How long restart work (a chunk of RAM, the final step) takes on this core.
    restart_cost: WorkBudget<2>,
    /// TSC at which the current window ends (`u64::MAX` on a dedicated core), and the
    /// window's whole length.
    window_end_tsc: u64,
    window_ticks: u64,
    /// How long each hypercall number takes on this core, in TSC ticks (scheduled cores):
    /// a hypercall that would not finish before the window's end is deferred to the
    /// caller's next window instead of eating the next partition's time.
    hypercall_cost: WorkBudget<COST_SLOTS>,
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
        state_owner: CoreStateOwner::default(),
        restart_cost: {
            let mut b = WorkBudget::new();
            b.record(WORK_CHUNK, m.ns_to_ticks(WORK_GUESS_NS[0]));
            b.record(WORK_FINISH, m.ns_to_ticks(WORK_GUESS_NS[1]));
            b
        },
        window_end_tsc: u64::MAX,
        window_ticks: u64::MAX,
        hypercall_cost: WorkBudget::new(),
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
            saved: SavedState::new(&m.xsave),
            restart: None,
            exit_cost: {
                let mut b = WorkBudget::new();
                b.record(0, m.ns_to_ticks(EXIT_COST_GUESS_NS));
                b
            },
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
                let _ = p.apply(Event::Halt(Cause::Hypervisor));
            }
            v.stopped = true;
        }
        let (stopped, vcpu_index) = (v.stopped, v.index);
        core.vcpus.push(v);
        let slot = core.vcpus.len() - 1;
        if !stopped && !p.is_linux {
            match core.setup_vcpu(m, slot) {
                Ok(()) => {
                    let _ = p.apply(Event::Started);
                }
                Err(e) => {
                    hvlog!(
                        "partition {}: cannot set up vCPU {vcpu_index} on core {index}: {e}; halted",
                        p.name
                    );
                    let _ = p.apply(Event::Halt(Cause::Hypervisor));
                    core.vcpus[slot].stopped = true;
                }
            }
        }
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
    // OSXSAVE lets the hypervisor execute XSETBV/XSAVE/XRSTOR for its vCPUs.
    let osxsave = if m.xsave.xsave { control_regs::cr4::OSXSAVE } else { 0 };
    // SAFETY: setting VMXE, OSXSAVE (when the CPU has XSAVE) and the fixed bits keeps
    // paging and protection as they are.
    unsafe {
        cpu::write_cr4(m.caps.fix_cr4(cpu::read_cr4() | control_regs::cr4::VMXE | osxsave));
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

/// Advances the guest's RIP past the instruction that exited.
fn skip_instruction() -> Result<(), VmFail> {
    write(guest::RIP, read(guest::RIP).wrapping_add(read(exit_info::INSTRUCTION_LEN)))
}

fn read(field: u32) -> u64 {
    vmx::vmread(field).unwrap_or(0)
}

impl Core {
    fn scheduled(&self, m: &Machine) -> bool {
        !m.cores[self.index].windows.is_empty()
    }

    /// Writes the vCPU's VMCS from scratch: controls, host state, guest entry state.
    fn setup_vcpu(&mut self, m: &Machine, slot: usize) -> Result<(), String> {
        let scheduled = self.scheduled(m);
        let (tables, v) = (self.tables, &mut self.vcpus[slot]);
        let p = &m.partitions[v.partition];
        // SAFETY: the VMCS page carries the revision id and belongs to this core.
        unsafe { vmx::vmclear(v.vmcs).and_then(|_| vmx::vmptrld(v.vmcs)) }.map_err(|e| format!("{e}"))?;
        self.current_vmcs = v.vmcs;
        let (mut pin_ctl, mut exit_ctl) = (m.controls.pin, m.controls.exit);
        if !scheduled {
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
        let host_state = crate::host::vmcs_host_state(tables, m.host_cr3, host_efer);
        for (field, value) in fields.into_iter().chain(host_state) {
            write(field, value).map_err(|e| format!("VMWRITE {field:#x}: {e}"))?;
        }
        for w in plan.writes() {
            write(w.field, w.value).map_err(|e| format!("VMWRITE {:#x}: {e}", w.field))?;
        }
        v.regs = GuestRegs::for_entry(BOOT_INFO_GPA, v.index as u64);
        v.launched = false;
        v.stopped = false;
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
                // Dedicated core: one vCPU, entered until it stops. The core is the
                // partition's own, so a restart runs to completion at once.
                self.serve_restart_request(m, 0);
                if self.vcpus[0].restart.is_some() {
                    self.continue_restart(m, 0, u64::MAX, u64::MAX);
                    continue;
                }
                if self.vcpus[0].stopped {
                    idle(m, self.index, Some(&m.partitions[self.vcpus[0].partition]));
                    continue;
                }
                if self.current_vmcs != self.vcpus[0].vmcs {
                    if let Err(e) = self.load_vmcs(0) {
                        self.health(m, 0, EventClass::UnknownExit, &format_args!("VMPTRLD: {e}"));
                        continue;
                    }
                }
                if let Next::Yield { until_ns } = self.enter(m, 0) {
                    // Asleep until then, unless another partition asks for a restart.
                    let p = &m.partitions[self.vcpus[0].partition];
                    // Only a single-vCPU partition as a whole sleeps.
                    let sleeps = until_ns > m.now_ns() && p.vcpus == 1;
                    if sleeps {
                        let _ = p.apply(Event::Sleep);
                    }
                    wait_until_or_restart(m, until_ns, Some(p));
                    if sleeps {
                        let _ = p.apply(Event::Wake);
                    }
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
                // Restarting: scrub and reload in this window's time, never past its end.
                Some(i) if self.vcpus[i].restart.is_some() => {
                    self.switch_from = 0;
                    let end_tsc = cpu::rdtsc().saturating_add(m.ns_to_ticks(slot.remaining_ns(m.now_ns())));
                    let window_ticks = m.ns_to_ticks(slot.end_ns.saturating_sub(slot.start_ns));
                    if !self.continue_restart(m, i, end_tsc, window_ticks) {
                        wait_until(m, slot.end_ns);
                    }
                }
                // Asleep for the whole window: leave it idle.
                Some(i) if !self.vcpus[i].stopped && self.vcpus[i].wake_at_ns >= slot.end_ns => {
                    self.switch_from = 0;
                    wait_until(m, slot.end_ns);
                }
                Some(i) if !self.vcpus[i].stopped => {
                    if self.vcpus[i].wake_at_ns > now {
                        wait_until(m, self.vcpus[i].wake_at_ns);
                    }
                    let p = &m.partitions[self.vcpus[i].partition];
                    if p.lifecycle() == lifecycle::State::Waiting {
                        let _ = p.apply(Event::Wake);
                    }
                    let now = m.now_ns();
                    let ticks = m.ns_to_ticks(slot.remaining_ns(now));
                    self.window_end_tsc = cpu::rdtsc().saturating_add(ticks);
                    self.window_ticks = m.ns_to_ticks(slot.end_ns.saturating_sub(slot.start_ns));
                    // Leave the window's tail for the handling of the vCPU's last exit.
                    let guard = self.vcpus[i].exit_cost.estimate(0);
                    let Some(run_ticks) = guarded_run_ticks(ticks, guard, self.window_ticks) else {
                        // The guard tail of the window (usually right after the timer
                        // exit): a window switch measured from the window's real end.
                        wait_until(m, slot.end_ns);
                        if self.switch_from != 0 {
                            self.switch_from = cpu::rdtsc();
                        }
                        continue;
                    };
                    let timer = preemption_timer_value(run_ticks, m.caps.preemption_timer_shift());
                    let armed =
                        self.load_vmcs(i).and_then(|_| write(guest::PREEMPTION_TIMER_VALUE, timer as u64));
                    if let Err(e) = armed {
                        self.health(
                            m,
                            i,
                            EventClass::UnknownExit,
                            &format_args!("arming the window's timer: {e}"),
                        );
                        continue;
                    }
                    let next = self.enter(m, i);
                    if let Next::Defer = next {
                        wait_until(m, slot.end_ns);
                    }
                    if let Next::Yield { until_ns } = next {
                        // 0: give up the rest of the window; otherwise sleep until then,
                        // in this window if it is still open then.
                        let p = &m.partitions[self.vcpus[i].partition];
                        if until_ns > m.now_ns() && p.vcpus == 1 {
                            let _ = p.apply(Event::Sleep);
                        }
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
            let verdict = p.health.lock().decide_requested_restart(m.now_ns());
            if verdict.allowed {
                self.begin_restart(
                    m,
                    slot,
                    "restarted at another partition's request",
                    Cause::OtherPartition,
                );
            } else {
                crate::hvlog_for!(
                    p,
                    "partition {}: restart at another partition's request -> {verdict}",
                    p.name
                );
                self.stop(m, slot, Cause::HealthMonitor);
            }
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
        // Part of the window switch: measured with it.
        if let Some(switch) = self.state_owner.enter(slot) {
            self.on_vcpu_switch(m, switch);
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
        if self.measure_switches {
            // `exit_tsc` was read right after the exit (scheduled cores only).
            self.vcpus[slot].exit_cost.record(0, cpu::rdtsc().wrapping_sub(self.exit_tsc));
        }
        if matches!(next, Next::Skip | Next::Yield { .. }) {
            if let Err(e) = skip_instruction() {
                return self.health(m, slot, EventClass::UnknownExit, &format_args!("VMWRITE RIP: {e}"));
            }
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
                let guest_cr4 = read(control::CR4_READ_SHADOW);
                let [a, b, c, d] =
                    cpuid::rt_view(leaf, sub, [host.eax, host.ebx, host.ecx, host.edx], guest_cr4, &m.xstate);
                (r.rax, r.rbx, r.rcx, r.rdx) = (a as u64, b as u64, c as u64, d as u64);
                Next::Skip
            }
            // HLT: no interrupt will ever wake it; treat as giving up the window.
            Disposition::Handle(Handling::Hlt) => Next::Yield { until_ns: 0 },
            Disposition::Handle(Handling::WindowEnd) => {
                self.switch_from = self.exit_tsc;
                Next::Resume
            }
            Disposition::Handle(Handling::ExternalInterrupt) => {
                // Acknowledged by the exit; nothing in the hypervisor wants it (every
                // source is masked), so retire it and go on.
                crate::apic::Apic::new().eoi();
                Next::Resume
            }
            Disposition::Handle(Handling::Nmi) => Next::Resume,
            Disposition::Handle(Handling::CrAccess) => self.cr_access(m, slot, info.qualification),
            Disposition::Handle(Handling::Xsetbv) => {
                let r = &self.vcpus[slot].regs;
                let value = (r.rdx & 0xFFFF_FFFF) << 32 | (r.rax & 0xFFFF_FFFF);
                match m.xstate.check_xsetbv(r.rcx as u32, value) {
                    Ok(xcr0) if m.xsave.xsave => {
                        switched::xsetbv0(xcr0);
                        Next::Skip
                    }
                    Ok(_) => self.health(
                        m,
                        slot,
                        EventClass::ForbiddenInstruction,
                        &"XSETBV: this CPU has no XSAVE",
                    ),
                    Err(why) => self.health(
                        m,
                        slot,
                        EventClass::ForbiddenInstruction,
                        &format_args!("XSETBV: XCR0 {value:#x}: {why}"),
                    ),
                }
            }
            // RDTSC exiting is off for RT vCPUs: this exit is never asked for.
            Disposition::Handle(Handling::Rdtsc) => {
                self.health(m, slot, EventClass::UnknownExit, &info.describe())
            }
            Disposition::Fault(class) => self.health(m, slot, class, &info.describe()),
        }
    }

    fn hypercall(&mut self, m: &'static Machine, slot: usize) -> Next {
        // On a scheduled core, only start what fits in the window (see `hypercall_cost`).
        let timed = self.window_end_tsc != u64::MAX;
        let kind = self.vcpus[slot].regs.rax;
        let started = if timed { cpu::rdtsc() } else { 0 };
        // Work longer than a whole window runs anyway (deferring it would starve the
        // caller for good); it can only be the caller's own table's doing.
        if timed
            && !self.hypercall_cost.fits(kind, started, self.window_end_tsc)
            && self.hypercall_cost.estimate(kind) <= self.window_ticks
        {
            return Next::Defer;
        }
        let next = self.perform_hypercall(m, slot);
        if timed {
            self.hypercall_cost.record(kind, cpu::rdtsc().wrapping_sub(started));
        }
        next
    }

    #[inline(always)]
    fn perform_hypercall(&mut self, m: &'static Machine, slot: usize) -> Next {
        let part = self.vcpus[slot].partition;
        let mut env = Env { machine: m, caller: part, fault_message: None };
        let outcome = dispatch(&mut self.vcpus[slot].regs, &mut env);
        match outcome {
            Outcome::Resume => Next::Skip,
            Outcome::Yield { until_ns } => Next::Yield { until_ns },
            Outcome::Halt { exit_code } => {
                let p = &m.partitions[part];
                crate::console::flush_partition(p);
                crate::hvlog_for!(p, "partition {}: halted itself (exit code {exit_code})", p.name);
                self.stop(m, slot, Cause::Itself);
                Next::Stop
            }
            Outcome::Fault(class) => {
                // The call itself completed: skip the VMCALL before acting.
                if let Err(e) = skip_instruction() {
                    return self.health(m, slot, EventClass::UnknownExit, &format_args!("VMWRITE RIP: {e}"));
                }
                let message = env.fault_message.unwrap_or_else(Text::new);
                match self.health(m, slot, class, &format_args!("reported: {message}")) {
                    Next::Skip => Next::Resume,
                    other => other,
                }
            }
            Outcome::Restart { partition } if partition == part => {
                // The call completed: skip the VMCALL (a refused restart halts; an allowed
                // one rewrites the VMCS anyway).
                if let Err(e) = skip_instruction() {
                    return self.health(m, slot, EventClass::UnknownExit, &format_args!("VMWRITE RIP: {e}"));
                }
                let p = &m.partitions[part];
                let verdict = p.health.lock().decide_requested_restart(m.now_ns());
                if verdict.allowed {
                    self.begin_restart(m, slot, "restart requested by the partition", Cause::Itself);
                } else {
                    crate::console::flush_partition(p);
                    crate::hvlog_for!(
                        p,
                        "partition {}: restart requested by the partition -> {verdict}",
                        p.name
                    );
                    self.stop(m, slot, Cause::HealthMonitor);
                }
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
    #[inline(never)]
    fn request_restart(&self, m: &Machine, caller: usize, target: usize) {
        let (who, t) = (&m.partitions[caller].name, &m.partitions[target]);
        if t.vcpus > 1 || t.is_linux {
            crate::hvlog_for!(
                &m.partitions[caller],
                "partition {who}: restart of {} refused: only single-vCPU RT partitions restart",
                t.name
            );
            return;
        }
        crate::hvlog_for!(
            &m.partitions[caller],
            "partition {who}: requests a restart of partition {}",
            t.name
        );
        t.restart_requested.store(true, Ordering::SeqCst);
        let apic = crate::apic::Apic::new();
        for (c, plan) in m.cores.iter().enumerate() {
            if c != self.index && plan.vcpus.iter().any(|v| v.partition == target) {
                apic.send_ipi(plan.apic_id, crate::apic::ICR_NMI);
            }
        }
    }

    /// Logs a health event and applies the partition's action for its class.
    #[inline(never)]
    fn health(
        &mut self,
        m: &'static Machine,
        slot: usize,
        class: EventClass,
        what: &dyn fmt::Display,
    ) -> Next {
        let p = &m.partitions[self.vcpus[slot].partition];
        let _ = p.apply(Event::Fault);
        let mut decision = p.health.lock().decide(&p.actions, class, m.now_ns());
        // A multi-vCPU partition cannot be reloaded under its other running vCPUs.
        if decision.action == Action::RestartPartition && p.vcpus > 1 {
            decision.action = Action::HaltPartition;
        }
        crate::console::flush_partition(p);
        crate::hvlog_for!(p, "{}", decision.report(&p.name, what));
        // Only events that can be stepped over continue under `log`.
        let continuable = matches!(
            class,
            EventClass::IoViolation | EventClass::MsrViolation | EventClass::DeadlineMiss | EventClass::Panic
        );
        match decision.action {
            Action::Log if continuable => {
                let _ = p.apply(Event::Resume);
                Next::Skip
            }
            Action::Log | Action::HaltPartition => {
                self.stop(m, slot, Cause::HealthMonitor);
                Next::Stop
            }
            Action::RestartPartition => {
                self.begin_restart(m, slot, "restarted with a fresh image", Cause::HealthMonitor);
                Next::Resume
            }
            Action::HaltSystem => {
                hvlog!("system halted by the health monitor (partition {})", p.name);
                crate::power::power_off_runtime()
            }
        }
    }

    #[inline(never)]
    fn stop(&mut self, m: &Machine, slot: usize, cause: Cause) {
        let v = &mut self.vcpus[slot];
        v.stopped = true;
        let _ = m.partitions[v.partition].apply(Event::Halt(cause));
    }

    /// Starts restarting vCPU `slot`'s partition: the vCPU is not entered again until
    /// [`Core::continue_restart`] has scrubbed its RAM and reloaded its image. Its
    /// registers outside the VMCS are reset now, so nothing of the old run survives.
    #[inline(never)]
    fn begin_restart(&mut self, m: &Machine, slot: usize, why: &'static str, cause: Cause) {
        let v = &mut self.vcpus[slot];
        let p = &m.partitions[v.partition];
        // The image was loaded at boot, so it parses; if it somehow does not, halt.
        let (image, image_end) = match p.parsed_image() {
            Ok(parsed) => parsed,
            Err(e) => {
                crate::hvlog_for!(p, "partition {}: cannot restart: {e}; halted", p.name);
                v.stopped = true;
                let _ = p.apply(Event::Halt(Cause::Hypervisor));
                return;
            }
        };
        if p.apply(Event::Restart(cause)).is_err() {
            return;
        }
        v.saved.reset();
        v.restart = Some(RestartWork { why, image, image_end, rebuilt: 0, windows: 0, ticks: 0 });
        v.stopped = false;
        v.wake_at_ns = 0;
        self.state_owner.forget(slot);
    }

    /// Advances vCPU `slot`'s restart within the window ending at `window_end_tsc`, of
    /// `window_ticks` in all (`u64::MAX` for both on a dedicated core): rebuilds RAM a chunk
    /// at a time (zeroes and the image's bytes) while a chunk still fits before the end,
    /// then, if it fits too, writes page tables and boot info and resets the vCPU.
    /// Returns whether the restart is complete. Work that does not fit waits for the
    /// partition's next window, so a restart never takes another partition's time (work
    /// longer than a whole window would never fit: it runs, at a window's start).
    #[inline(never)]
    fn continue_restart(
        &mut self,
        m: &'static Machine,
        slot: usize,
        window_end_tsc: u64,
        window_ticks: u64,
    ) -> bool {
        let part = self.vcpus[slot].partition;
        let p = &m.partitions[part];
        let Some(mut work) = self.vcpus[slot].restart.take() else { return true };
        work.windows += 1;
        let started = cpu::rdtsc();
        let fits = |budget: &WorkBudget<2>, kind: u64| {
            budget.fits(kind, cpu::rdtsc(), window_end_tsc) || budget.estimate(kind) > window_ticks
        };
        while work.rebuilt < p.ram_bytes && fits(&self.restart_cost, WORK_CHUNK) {
            let t = cpu::rdtsc();
            // SAFETY: the partition has one vCPU (multi-vCPU partitions are halted
            // instead of restarted), this one, which is not running.
            unsafe { p.rebuild(&work.image, work.rebuilt, REBUILD_CHUNK) };
            work.rebuilt += REBUILD_CHUNK;
            self.restart_cost.record(WORK_CHUNK, cpu::rdtsc().wrapping_sub(t));
        }
        if work.rebuilt < p.ram_bytes || !fits(&self.restart_cost, WORK_FINISH) {
            work.ticks += cpu::rdtsc().wrapping_sub(started);
            self.vcpus[slot].restart = Some(work);
            return false;
        }
        let t = cpu::rdtsc();
        let n = p.restarts.fetch_add(1, Ordering::SeqCst) + 1;
        // SAFETY: as above.
        let loaded = unsafe { p.finish_load(work.image.entry, work.image_end, m.tsc_hz, m.now_ns()) };
        let result = loaded.and_then(|_| self.setup_vcpu(m, slot));
        let now = cpu::rdtsc();
        self.restart_cost.record(WORK_FINISH, now.wrapping_sub(t));
        work.ticks += now.wrapping_sub(started);
        if result.is_ok() {
            let _ = p.apply(Event::RestartDone);
        }
        match result {
            Ok(()) => crate::hvlog_for!(
                p,
                "partition {}: {} (restart {n}): {} MiB scrubbed and reloaded in {} of its own window(s), {} ticks",
                p.name,
                work.why,
                p.ram_bytes >> 20,
                work.windows,
                work.ticks
            ),
            Err(e) => {
                crate::hvlog_for!(p, "partition {}: restart failed: {e}; halted", p.name);
                self.vcpus[slot].stopped = true;
                let _ = p.apply(Event::Halt(Cause::Hypervisor));
            }
        }
        true
    }

    /// MOV to or from CR8: the vCPU's virtual task-priority register.
    #[inline(never)]
    fn tpr_access(&mut self, m: &'static Machine, slot: usize, q: CrAccessQualification) -> Next {
        let v = &mut self.vcpus[slot];
        match q.access_type {
            0 => match control_regs::tpr_write(v.regs.get(q.gpr, read(guest::RSP))) {
                Ok(tpr) => {
                    v.saved.regs.virtual_tpr = tpr;
                    Next::Skip
                }
                Err(refused) => self.health(
                    m,
                    slot,
                    EventClass::ForbiddenInstruction,
                    &format_args!("{refused} at RIP {:#x}", read(guest::RIP)),
                ),
            },
            1 => {
                let tpr = v.saved.regs.virtual_tpr;
                if v.regs.set(q.gpr, tpr) || write(guest::RSP, tpr).is_ok() {
                    Next::Skip
                } else {
                    self.health(m, slot, EventClass::UnknownExit, &"VMWRITE RSP")
                }
            }
            _ => self.health(m, slot, EventClass::UnknownExit, &"CR8 access of an unknown kind"),
        }
    }

    /// The per-switch hook: runs before a VM entry whenever this core enters a different
    /// vCPU than the last one it ran (a window switch on a scheduled core, the first entry
    /// or a restart on any core). Today it saves the leaving vCPU's non-VMCS registers
    /// and loads the arriving one's; per-partition cache allocation (IA32_PQR_ASSOC) and
    /// time accounting attach here too.
    #[inline(never)]
    fn on_vcpu_switch(&mut self, m: &Machine, switch: Switch) {
        if let Some(from) = switch.save {
            switched::save(&mut self.vcpus[from].saved, &m.xsave);
        }
        switched::load(&self.vcpus[switch.load].saved, &m.xsave);
    }

    /// A guest write to CR0/CR4 that changes a bit the hypervisor owns.
    #[inline(never)]
    fn cr_access(&mut self, m: &'static Machine, slot: usize, qualification: u64) -> Next {
        let q = CrAccessQualification::decode(qualification);
        if q.cr == 8 {
            return self.tpr_access(m, slot, q);
        }
        let request = match q.access_type {
            0 => CrWriteRequest::Mov { cr: q.cr, value: self.vcpus[slot].regs.get(q.gpr, read(guest::RSP)) },
            2 => CrWriteRequest::Clts,
            3 => CrWriteRequest::Lmsw { source: (qualification >> 16) as u16 },
            // MOV from CR: CR3/CR8 exiting is off, CR0/CR4 reads never exit.
            _ => return self.health(m, slot, EventClass::UnknownExit, &"MOV from a control register"),
        };
        let shadow_field = if q.cr == 4 { control::CR4_READ_SHADOW } else { control::CR0_READ_SHADOW };
        match cr_write(&m.caps, request, read(shadow_field)) {
            CrChange::Apply { cr, guest: value, shadow } => {
                let (real, shadow_field) = if cr == 4 {
                    (guest::CR4, control::CR4_READ_SHADOW)
                } else {
                    (guest::CR0, control::CR0_READ_SHADOW)
                };
                match write(real, value).and_then(|_| write(shadow_field, shadow)) {
                    Ok(()) => Next::Skip,
                    Err(e) => {
                        self.health(m, slot, EventClass::UnknownExit, &format_args!("VMWRITE CR{cr}: {e}"))
                    }
                }
            }
            refused @ CrChange::Forbidden { .. } => self.health(
                m,
                slot,
                EventClass::ForbiddenInstruction,
                &format_args!("{refused} at RIP {:#x}", read(guest::RIP)),
            ),
        }
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

/// Like [`wait_until`], but returns early when `watch` (the partition asleep on this
/// dedicated core) gets a restart request from another partition.
fn wait_until_or_restart(m: &Machine, until_ns: u64, watch: Option<&Partition>) {
    while m.now_ns() < until_ns {
        if watch.is_some_and(|p| p.restart_requested.load(Ordering::Relaxed)) {
            return;
        }
        crate::serial::pump();
        cpu::pause();
    }
}

/// Spins until `now_ns() >= until_ns` (time belongs to nobody else on this core).
fn wait_until(m: &Machine, until_ns: u64) {
    while m.now_ns() < until_ns {
        crate::serial::pump();
        cpu::pause();
    }
}
