//! A core's life after boot: its own GDT/IDT, the virtualization extension switched on,
//! one control block (VMCS) per vCPU it runs, then **one loop for every kind of vCPU**:
//! enter the vCPU that owns the core now, read the exit as an arch-neutral value
//! ([`arch::Backend::exit`]), decide what it leads to ([`hallows_core::vcpu::decide`],
//! a pure function of the exit and the vCPU's kind), perform the step, repeat.
//!
//! Real-time and Linux vCPUs differ in policy data (`Kind`, the Linux vCPU's devices and
//! MSR/CPUID/port policies in `linux::vcpu`), not in loops. The vendor is behind
//! [`arch::Backend`] (Intel VMX: `vmx::backend`). Other decisions come from hallows-core
//! too: hypercalls (`hypercall::dispatch`), the health-monitor action (`health`,
//! `vcpu::after_health`) and the window cursor (`schedule`).

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::sync::atomic::{AtomicBool, Ordering};

use hallows_abi::health::EventClass;
use hallows_abi::table::LOG_DEBUG;
use hallows_core::control_regs::{self, cr_write, CrChange, CrWriteRequest};
use hallows_core::core_stats::Rates;
use hallows_core::counters::{ExitReason, PartitionCounters, Place};
use hallows_core::cpuid;
use hallows_core::elf::ElfImage;
use hallows_core::group_restart::{decide_once, stop_wait_ns, Absorbed, Owned, OwnerStep, Poll};
use hallows_core::health::RequestedRestart;
use hallows_core::hypercall::{dispatch, Outcome};
use hallows_core::lifecycle::{self, Cause, Event, Reload, RestartScope, Scrub};
use hallows_core::linux_vcpu::exits::xapic_access_message;
use hallows_core::schedule::{guarded_run_ticks, preemption_timer_value, Schedule, WorkBudget};
use hallows_core::slot_plan::{sleeps, slot_action, yield_resume_at, Next, Owner, SlotAction};
use hallows_core::switched_state::{CoreStateOwner, Switch};
use hallows_core::vcpu::modes::{xsetbv, XsetbvStep};
use hallows_core::vcpu::{after_health, decide, Exception, Followup, Kind, Step};

use crate::arch::{Backend, Control, ExitRecord};
use crate::host::CoreTables;
use crate::hypercalls::Env;
use crate::linux::restart::Restarting;
use crate::linux::vcpu::{LinuxVcpu, Start};
use crate::machine::{machine, Machine};
use crate::partition::Partition;
use crate::switched::{self, SavedState};
use crate::text::Text;
use crate::vmx::GuestRegs;
use crate::{cpu, hvlog};

/// The virtualization extension this build drives.
type Hw = crate::vmx::backend::Vmx;

/// A vCPU on this core.
struct Vcpu {
    partition: usize,
    index: u32,
    kind: Kind,
    /// Its control block (VMCS).
    control: u64,
    regs: GuestRegs,
    launched: bool,
    /// Stopped for good on this core.
    stopped: bool,
    /// The restart another core runs for its partition that it is parked for
    /// (`group_restart`; 0: not parked).
    parked: u32,
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
    /// A Linux vCPU's policies and devices.
    linux: Option<Box<LinuxVcpu>>,
    /// Its partition's counters (`hallows_core::counters`).
    counters: &'static PartitionCounters,
    /// TSC when this core decided to restart the partition (0: no restart to report):
    /// the entry into the new image reports the restart's whole time.
    restart_began_tsc: u64,
}

/// The guard a vCPU starts with, until its own exits have been measured.
const EXIT_COST_GUESS_NS: u64 = 10_000;

/// A restart in progress. Scrubbing and reloading run in the partition's own time: on a
/// scheduled core, a chunk at a time inside its windows (never past a window's end); on a
/// dedicated core, at once.
struct RestartWork {
    why: &'static str,
    /// The restart's generation and the wait for the partition's other vCPUs to park.
    owned: Owned,
    /// The image to load, parsed and checked once.
    image: ElfImage,
    image_end: u64,
    /// Whether it keeps the persistent region (a request arriving meanwhile widens it).
    scope: RestartScope,
    /// What this restart rewrites: RAM, and the persistent region on a clean restart.
    scrub: Scrub,
    /// Bytes rebuilt so far: guest RAM (zeroed, image bytes in place), then, when
    /// `scrub.persistent`, the persistent region (zeroed) after it.
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

/// Hypercall numbers whose cost a core tracks (larger numbers share the last slot).
const COST_SLOTS: usize = 16;

/// Per-core state.
struct Core {
    index: usize,
    tables: &'static CoreTables,
    vcpus: Vec<Vcpu>,
    first_entry_reported: bool,
    /// The control block last made current (0: none), to skip reloading it.
    current_control: u64,
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
    /// The class of service this core's IA32_PQR_ASSOC holds (cache allocation).
    cache_class: crate::cache_alloc::CoreClass,
    /// What the latest `Next::Fault` was about (written without the heap).
    fault_text: Text<160>,
    /// Where the exit the latest step was performed for happened (for the event log).
    fault_place: Place,
}

/// Entry of every core (boot core included) once the machine is published.
pub fn core_main(index: usize) -> ! {
    let m = machine();
    let tables: &'static CoreTables = CoreTables::new();
    tables.load();
    crate::host::load_idt();
    // SAFETY: the host page tables identity-map all memory the hypervisor uses.
    unsafe { cpu::write_cr3(m.host_cr3) };
    if let Err(e) = crate::vmx::setup::enable(m) {
        hvlog!("core {index}: cannot enter VMX operation: {e}");
        cpu::halt_forever();
    }
    let scheduled = !m.cores[index].windows.is_empty();
    let mut core = Core {
        index,
        tables,
        vcpus: Vec::new(),
        first_entry_reported: false,
        current_control: 0,
        measure_switches: scheduled,
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
        cache_class: crate::cache_alloc::CoreClass::default(),
        fault_text: Text::new(),
        fault_place: Place::Unknown,
    };
    for plan in &m.cores[index].vcpus {
        let p = &m.partitions[plan.partition];
        let v = Vcpu {
            partition: plan.partition,
            index: plan.vcpu,
            kind: if p.is_linux { Kind::Linux } else { Kind::RealTime },
            control: crate::vmx::setup::new_control_block(m),
            regs: GuestRegs::default(),
            launched: false,
            stopped: false,
            parked: 0,
            wake_at_ns: 0,
            saved: SavedState::new(&m.xsave),
            restart: None,
            exit_cost: WorkBudget::with_measured(0, m.ns_to_ticks(EXIT_COST_GUESS_NS)),
            linux: None,
            counters: &p.counters,
            restart_began_tsc: 0,
        };
        core.vcpus.push(v);
        let slot = core.vcpus.len() - 1;
        let ready =
            if p.is_linux { core.setup_linux_vcpu(m, slot, scheduled) } else { core.setup_vcpu(m, slot) };
        match ready {
            Ok(()) => {
                if p.lifecycle() == lifecycle::State::Booting {
                    let _ = p.apply(Event::Started);
                }
            }
            Err(e) => {
                hvlog!("partition {}: cannot set up vCPU {} on core {index}: {e}; halted", p.name, plan.vcpu);
                if p.lifecycle() != lifecycle::State::Halted {
                    let _ = p.apply(Event::Halt(Cause::Hypervisor));
                }
                core.vcpus[slot].stopped = true;
                if let Some(l) = &core.vcpus[slot].linux {
                    l.stop_partition();
                }
            }
        }
    }
    crate::serial::set_running();
    core.run(m)
}

impl Core {
    fn scheduled(&self, m: &Machine) -> bool {
        !m.cores[self.index].windows.is_empty()
    }

    /// Writes an RT vCPU's control block from scratch: controls, host state, guest entry
    /// state.
    fn setup_vcpu(&mut self, m: &Machine, slot: usize) -> Result<(), String> {
        let scheduled = self.scheduled(m);
        let v = &mut self.vcpus[slot];
        self.current_control = v.control;
        v.regs = crate::vmx::setup::rt_vcpu(m, self.tables, v.control, v.partition, v.index, scheduled)?;
        v.launched = false;
        v.stopped = false;
        Ok(())
    }

    /// Prepares a Linux vCPU: its policies and devices, its control block, and for the
    /// boot vCPU the entry state (the others wait for a SIPI in the loop). Linux runs on
    /// dedicated cores only.
    fn setup_linux_vcpu(&mut self, m: &'static Machine, slot: usize, scheduled: bool) -> Result<(), String> {
        let v = &mut self.vcpus[slot];
        if scheduled {
            return Err(String::from("Linux partitions run on dedicated cores only"));
        }
        let linux =
            crate::linux::of(v.partition).ok_or_else(|| String::from("Linux was not prepared at boot"))?;
        let (lv, regs) = LinuxVcpu::new(m, self.tables, linux, v.index as usize, v.control)?;
        self.current_control = v.control;
        v.regs = regs;
        v.linux = Some(Box::new(lv));
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
                self.run_dedicated(m);
                continue;
            };
            let now = m.now_ns();
            let slot = s.slot_at(now);
            let vcpu = slot.partition.and_then(|p| self.vcpus.iter().position(|v| v.partition == p as usize));
            if let Some(i) = vcpu {
                self.vcpus[i].counters.note_window(slot.start_ns, self.vcpus[i].stopped);
                self.serve_restart_request(m, i);
                self.follow_restart(m, i);
            }
            let owner = vcpu.map(|i| {
                let v = &self.vcpus[i];
                Owner {
                    restarting: v.restart.is_some(),
                    stopped: v.stopped || v.parked != 0,
                    wake_at_ns: v.wake_at_ns,
                }
            });
            match (vcpu, slot_action(owner, slot.end_ns)) {
                // Restarting: scrub and reload in this window's time, never past its end.
                (Some(i), SlotAction::Restart) => {
                    self.switch_from = 0;
                    let end_tsc = cpu::rdtsc().saturating_add(m.ns_to_ticks(slot.remaining_ns(m.now_ns())));
                    let window_ticks = m.ns_to_ticks(slot.end_ns.saturating_sub(slot.start_ns));
                    if !self.continue_restart(m, i, end_tsc, window_ticks) {
                        wait_until(m, slot.end_ns);
                    }
                }
                (Some(i), SlotAction::Enter) => {
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
                    let armed = self.make_current(i).and_then(|_| Hw::arm_timer(timer as u64));
                    if let Err(e) = armed {
                        let next = self.health(
                            m,
                            i,
                            EventClass::UnknownExit,
                            &format_args!("arming the window's timer: {e}"),
                        );
                        self.after_step(m, i, next);
                        continue;
                    }
                    match self.enter(m, i) {
                        Next::Defer => wait_until(m, slot.end_ns),
                        Next::Yield { until_ns } => {
                            let p = &m.partitions[self.vcpus[i].partition];
                            if sleeps(until_ns, m.now_ns(), p.vcpus) {
                                let _ = p.apply(Event::Sleep);
                            }
                            self.vcpus[i].wake_at_ns = until_ns;
                            wait_until(m, yield_resume_at(until_ns, slot.end_ns));
                        }
                        _ => {}
                    }
                }
                // An idle gap, a stopped partition's window, or one it sleeps through: wait
                // for the next slot (not a switch worth measuring).
                _ => {
                    self.switch_from = 0;
                    wait_until(m, slot.end_ns);
                }
            }
        }
    }

    /// One turn of a dedicated core: one vCPU, entered until it stops. The core is the
    /// partition's own, so a restart runs to completion at once.
    fn run_dedicated(&mut self, m: &'static Machine) {
        self.serve_restart_request(m, 0);
        self.follow_restart(m, 0);
        if self.vcpus[0].restart.is_some() {
            if !self.continue_restart(m, 0, u64::MAX, u64::MAX) {
                crate::serial::pump();
                cpu::pause();
            }
            return;
        }
        if self.vcpus[0].stopped && self.linux_restart_turn(m) {
            return;
        }
        if self.vcpus[0].stopped || self.vcpus[0].parked != 0 {
            let v = &self.vcpus[0];
            let watch = Watch {
                p: &m.partitions[v.partition],
                vcpu: v.index,
                parked: v.parked,
                linux_restart: v.linux.as_ref().map(|l| &l.linux.rendezvous),
            };
            idle(m, self.index, Some(watch));
            return;
        }
        if let Some(linux) = self.vcpus[0].linux.as_mut().filter(|l| l.awaiting_sipi) {
            // A secondary Linux vCPU: parked until the boot vCPU's INIT and SIPI.
            match linux.try_start(m, self.index) {
                Start::Waiting => cpu::pause(),
                Start::Started(regs) => self.vcpus[0].regs = regs,
                Start::Stopped => self.vcpus[0].stopped = true,
                Start::Failed(e) => {
                    let next =
                        self.health(m, 0, EventClass::UnknownExit, &format_args!("starting at SIPI: {e}"));
                    self.after_step(m, 0, next);
                }
            }
            return;
        }
        if self.current_control != self.vcpus[0].control {
            if let Err(e) = self.make_current(0) {
                let next =
                    self.health(m, 0, EventClass::UnknownExit, &format_args!("making the VMCS current: {e}"));
                self.after_step(m, 0, next);
                return;
            }
        }
        if let Next::Yield { until_ns } = self.enter(m, 0) {
            // Asleep until then, unless another partition asks for a restart.
            let p = &m.partitions[self.vcpus[0].partition];
            let sleeps = sleeps(until_ns, m.now_ns(), p.vcpus);
            if sleeps {
                let _ = p.apply(Event::Sleep);
            }
            wait_until_or_restart(m, until_ns, Some((p, self.vcpus[0].index)));
            if sleeps {
                let _ = p.apply(Event::Wake);
            }
        }
    }

    /// A stopped Linux vCPU's part in a restart of its partition (`linux::restart`):
    /// waiting for the others, or starting again. Returns whether it took this turn.
    fn linux_restart_turn(&mut self, m: &'static Machine) -> bool {
        let v = &mut self.vcpus[0];
        let Some(linux) = v.linux.as_mut() else { return false };
        match linux.restart_turn(m) {
            Restarting::No => false,
            Restarting::Wait => {
                crate::serial::pump();
                cpu::pause();
                true
            }
            Restarting::Booted(regs) => {
                (v.regs, v.stopped) = (regs, false);
                v.saved.reset();
                self.state_owner.forget(0);
                true
            }
        }
    }

    #[inline(always)]
    fn make_current(&mut self, slot: usize) -> Result<(), <Hw as Backend>::Fail> {
        self.current_control = self.vcpus[slot].control;
        Hw::make_current(self.vcpus[slot].control)
    }

    /// Enters vCPU `slot` once, handles its exit and performs what follows.
    fn enter(&mut self, m: &'static Machine, slot: usize) -> Next {
        if !self.first_entry_reported {
            self.first_entry_reported = true;
            self.report_first_entry(m, slot);
        }
        if self.vcpus[slot].restart_began_tsc != 0 {
            self.report_restart_time(m, slot);
        }
        // Part of the window switch: measured with it.
        if let Some(switch) = self.state_owner.enter(slot) {
            self.on_vcpu_switch(m, switch);
        }
        if self.switch_from != 0 {
            m.counters.count_switch(self.index, cpu::rdtsc().wrapping_sub(self.switch_from));
            self.switch_from = 0;
        }
        crate::serial::pump();
        let v = &mut self.vcpus[slot];
        // SAFETY: the current control block is this vCPU's, set up by `setup_vcpu` or
        // `setup_linux_vcpu`.
        let entered = unsafe { Hw::enter(&mut v.regs, v.launched) };
        if self.measure_switches {
            self.exit_tsc = cpu::rdtsc();
        }
        let next = match entered {
            Ok(()) => {
                self.vcpus[slot].launched = true;
                m.counters.count_exit(self.index);
                let exit = Hw::exit(&self.vcpus[slot].regs);
                self.handle_exit(m, slot, exit)
            }
            Err(e) => self.health(m, slot, EventClass::UnknownExit, &format_args!("VM entry failed: {e}")),
        };
        if self.measure_switches {
            // `exit_tsc` was read right after the exit (scheduled cores only).
            self.vcpus[slot].exit_cost.record(0, cpu::rdtsc().wrapping_sub(self.exit_tsc));
        }
        // The hot outcomes (a hypercall done, a window ended) without a call.
        match next {
            Next::Skip => {
                let mut done = Hw::skip_instruction();
                if done.is_ok() && self.vcpus[slot].kind == Kind::Linux {
                    done = Hw::end_interrupt_shadow();
                }
                match done {
                    Ok(()) => Next::Skip,
                    Err(e) => self.cannot_step_over(m, slot, &e),
                }
            }
            Next::Resume => Next::Resume,
            other => self.after_step(m, slot, other),
        }
    }

    /// After an instruction completed for it, a Linux vCPU's interrupt shadow ends.
    #[inline(always)]
    fn end_shadow_of(&self, slot: usize) -> Result<(), <Hw as Backend>::Fail> {
        if self.vcpus[slot].kind == Kind::Linux {
            Hw::end_interrupt_shadow()
        } else {
            Ok(())
        }
    }

    /// Moving RIP past the instruction failed: the partition cannot go on.
    #[cold]
    #[inline(never)]
    fn cannot_step_over(&mut self, m: &'static Machine, slot: usize, e: &dyn fmt::Display) -> Next {
        let _ = self.health(m, slot, EventClass::UnknownExit, &format_args!("VMWRITE: {e}"));
        self.stop(m, slot, Cause::Hypervisor);
        Next::Stop
    }

    /// The first entry into a restarted partition's new image: how long since the restart
    /// was decided (in Bochs, TSC ticks are instructions executed).
    #[cold]
    #[inline(never)]
    fn report_restart_time(&mut self, m: &Machine, slot: usize) {
        let v = &mut self.vcpus[slot];
        let ticks = cpu::rdtsc().wrapping_sub(core::mem::take(&mut v.restart_began_tsc));
        let p = &m.partitions[v.partition];
        crate::hvlog_for!(
            p,
            "partition {}: new image entered {ticks} TSC ticks ({} us) after the restart was decided",
            p.name,
            m.ticks_to_ns(ticks) / 1000
        );
    }

    #[inline(never)]
    fn report_first_entry(&mut self, m: &Machine, slot: usize) {
        let t = cpu::rdtsc();
        let v = &self.vcpus[slot];
        let p = &m.partitions[v.partition];
        if let Some(l) = &v.linux {
            // The partition's first entry (its boot vCPU's): what its statistics count from.
            let _ = l.linux.first_entry_tsc.compare_exchange(0, t, Ordering::SeqCst, Ordering::SeqCst);
        }
        hvlog!(
            "core {}: first entry into {}partition {} {} TSC ticks after hypervisor entry",
            self.index,
            if v.kind == Kind::Linux { "Linux " } else { "" },
            p.name,
            t.wrapping_sub(m.tsc_at_entry)
        );
    }

    /// Performs what the handling of an exit left to the vCPU's instruction stream:
    /// skipping the instruction, continuing after an emulated one, an injection, a
    /// health event, a power-off. Returns what the schedule still has to act on.
    fn after_step(&mut self, m: &'static Machine, slot: usize, next: Next) -> Next {
        let next = match next {
            Next::Fault(class) => {
                let what = self.fault_text.clone();
                self.health(m, slot, class, &what)
            }
            Next::PowerOff(what) => {
                self.power_off(m, slot, what);
                Next::Stop
            }
            other => other,
        };
        let performed = match &next {
            Next::Skip | Next::Yield { .. } => Hw::skip_instruction().and_then(|_| self.end_shadow_of(slot)),
            Next::Emulated { next_rip } => Hw::continue_at(*next_rip),
            Next::Inject(e) => Hw::inject(*e),
            _ => Ok(()),
        };
        match performed {
            Ok(()) => next,
            Err(e) => self.cannot_step_over(m, slot, &e),
        }
    }

    /// Decides about one exit and performs the step (not yet the RIP update: see
    /// [`Core::after_step`]).
    #[inline(always)]
    fn handle_exit(&mut self, m: &'static Machine, slot: usize, record: ExitRecord) -> Next {
        let v = &mut self.vcpus[slot];
        let step = match v.linux.as_deref_mut() {
            None => decide(v.kind, &record.exit, |_| false),
            Some(l) => {
                l.note_exit(Hw::exit_code(), record.rip, &v.regs);
                decide(v.kind, &record.exit, |gpa| l.linux.mmio.claims(gpa))
            }
        };
        match step {
            Step::Hypercall => self.hypercall(m, slot),
            Step::WindowEnd => {
                self.switch_from = self.exit_tsc;
                self.vcpus[slot].counters.count(ExitReason::WindowEnd);
                Next::Resume
            }
            other => self.perform(m, slot, other, &record),
        }
    }

    /// Every step but the hot ones.
    #[inline(never)]
    fn perform(&mut self, m: &'static Machine, slot: usize, step: Step, record: &ExitRecord) -> Next {
        self.fault_place = Place::of(&record.exit, record.rip);
        self.vcpus[slot].counters.count_exit(&record.exit);
        let v = &mut self.vcpus[slot];
        // A step only Linux's policies take, on a vCPU without them: the violation the same
        // exit is for a real-time vCPU.
        if let (None, Some(class)) = (&v.linux, step.linux_only_class()) {
            let what = format_args!("{}", record.exit.at(record.rip));
            return Next::fault(&mut self.fault_text, class, what);
        }
        let why = &mut self.fault_text;
        match step {
            Step::Hypercall | Step::WindowEnd => Next::Resume,
            Step::Cpuid { leaf, subleaf } => {
                let host = cpu::cpuid_regs(leaf, subleaf);
                let (_, guest_cr4) = Hw::control(Control::Cr4);
                let [a, b, c, d] = match &v.linux {
                    Some(l) => l.cpuid(leaf, subleaf, host, guest_cr4),
                    None => cpuid::rt_view(leaf, subleaf, host, guest_cr4, &m.xstate),
                };
                let r = &mut v.regs;
                (r.rax, r.rbx, r.rcx, r.rdx) = (a as u64, b as u64, c as u64, d as u64);
                Next::Skip
            }
            // HLT: no interrupt will ever wake it; treat as giving up the window.
            Step::GiveUpWindow => Next::Yield { until_ns: 0 },
            Step::AcknowledgeInterrupt => {
                // Acknowledged by the exit; nothing in the hypervisor wants it (every
                // source is masked), so retire it and go on.
                crate::apic::Apic::new().eoi();
                Next::Resume
            }
            // The kick of another core: a restart request is served at the top of the
            // loop; a Linux partition another vCPU stopped stops here too.
            Step::CheckRequests => {
                Hw::nmi_exit_done();
                match &v.linux {
                    Some(l) if l.partition_stopped() => {
                        v.stopped = true;
                        crate::linux::vcpu::quiet_core();
                        Next::Stop
                    }
                    _ => Next::Resume,
                }
            }
            Step::Resume => Next::Resume,
            Step::SkipInstruction => Next::Skip,
            Step::Inject(e) => Next::Inject(e),
            Step::WriteControl(request) => match v.kind {
                Kind::RealTime => self.rt_control_write(m, request, record.rip),
                Kind::Linux => match v.linux.as_mut() {
                    Some(l) => l.write_control::<Hw>(m, request, why),
                    None => Next::Stop,
                },
            },
            Step::WriteTpr { value } => match control_regs::tpr_write(value) {
                Ok(tpr) => {
                    v.saved.regs.virtual_tpr = tpr;
                    Next::Skip
                }
                Err(refused) => Next::fault(
                    why,
                    EventClass::ForbiddenInstruction,
                    format_args!("{refused} at RIP {:#x}", record.rip),
                ),
            },
            Step::ReadTpr { gpr } => {
                let tpr = v.saved.regs.virtual_tpr;
                if v.regs.set(gpr, tpr) || Hw::set_rsp(tpr).is_ok() {
                    Next::Skip
                } else {
                    Next::fault(why, EventClass::UnknownExit, format_args!("writing RSP"))
                }
            }
            Step::Xsetbv { xcr, value } => match xsetbv(v.kind, &m.xstate, xcr, value) {
                XsetbvStep::Set(xcr0) if m.xsave.xsave => {
                    switched::xsetbv0(xcr0);
                    Next::Skip
                }
                XsetbvStep::Set(_) => Next::fault(
                    why,
                    EventClass::ForbiddenInstruction,
                    format_args!("XSETBV: this CPU has no XSAVE"),
                ),
                XsetbvStep::Refuse(refusal) => Next::fault(
                    why,
                    EventClass::ForbiddenInstruction,
                    format_args!("XSETBV: XCR0 {value:#x}: {refusal}"),
                ),
                XsetbvStep::GeneralProtection => Next::Inject(Exception::GeneralProtection),
            },
            // Taken only with Linux's policies (checked above).
            Step::Rdmsr { msr } => v.linux.as_mut().map_or(Next::Stop, |l| l.rdmsr(&mut v.regs, msr, why)),
            Step::Wrmsr { msr, value } => {
                v.linux.as_mut().map_or(Next::Stop, |l| l.wrmsr::<Hw>(msr, value, why))
            }
            Step::Io(access) => v.linux.as_mut().map_or(Next::Stop, |l| l.io(&mut v.regs, access, why)),
            Step::Mmio(fault) => {
                v.linux.as_mut().map_or(Next::Stop, |l| l.mmio::<Hw>(&mut v.regs, fault, record.rip, why))
            }
            Step::Fault(class) => match xapic_access_message(&record.exit, record.rip) {
                Some(xapic) if v.kind == Kind::Linux => Next::fault(why, class, format_args!("{xapic}")),
                _ => Next::fault(why, class, format_args!("{}", record.exit.at(record.rip))),
            },
        }
    }

    /// A real-time vCPU's write to CR0/CR4 that changes a bit the hypervisor owns.
    #[inline(never)]
    fn rt_control_write(&mut self, m: &Machine, request: CrWriteRequest, rip: u64) -> Next {
        let which = match request {
            CrWriteRequest::Mov { cr: 4, .. } => Control::Cr4,
            _ => Control::Cr0,
        };
        let (_, shadow) = Hw::control(which);
        match cr_write(&m.caps, request, shadow) {
            CrChange::Apply { cr, guest: value, shadow } => {
                let which = if cr == 4 { Control::Cr4 } else { Control::Cr0 };
                match Hw::set_control(which, value, shadow) {
                    Ok(()) => Next::Skip,
                    Err(e) => Next::fault(
                        &mut self.fault_text,
                        EventClass::UnknownExit,
                        format_args!("VMWRITE CR{cr}: {e}"),
                    ),
                }
            }
            refused @ CrChange::Forbidden { .. } => Next::fault(
                &mut self.fault_text,
                EventClass::ForbiddenInstruction,
                format_args!("{refused} at RIP {rip:#x}"),
            ),
        }
    }

    fn hypercall(&mut self, m: &'static Machine, slot: usize) -> Next {
        // On a scheduled core, only start what fits in the window (see `hypercall_cost`).
        let timed = self.window_end_tsc != u64::MAX;
        let kind = self.vcpus[slot].regs.rax;
        self.vcpus[slot].counters.count(ExitReason::Hypercall);
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
                if let Err(e) = Hw::skip_instruction() {
                    return self.health(m, slot, EventClass::UnknownExit, &format_args!("VMWRITE RIP: {e}"));
                }
                let message = env.fault_message.unwrap_or_default();
                self.fault_place = Place::Reported;
                match self.health(m, slot, class, &format_args!("reported: {message}")) {
                    Next::Skip => Next::Resume,
                    other => other,
                }
            }
            Outcome::Restart { partition, scope } if partition == part => {
                // The call completed: skip the VMCALL (a refused restart halts; an allowed
                // one rewrites the VMCS anyway).
                if let Err(e) = Hw::skip_instruction() {
                    return self.health(m, slot, EventClass::UnknownExit, &format_args!("VMWRITE RIP: {e}"));
                }
                let p = &m.partitions[part];
                let Some((verdict, gen)) = self.restart_verdict(m, slot, false) else { return Next::Resume };
                if let Some(gen) = gen {
                    let why = "restart requested by the partition";
                    self.begin_restart(m, slot, gen, why, Cause::Itself, scope);
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
            Outcome::Restart { partition, scope } => {
                self.request_restart(m, part, partition, scope);
                Next::Skip
            }
            Outcome::PrintSummary => {
                crate::summary::print(m, &format_args!("requested by {}", m.partitions[part].name));
                Next::Skip
            }
            Outcome::Refused { number } => {
                crate::summary::refused(m, &m.partitions[part], number);
                Next::Skip
            }
            Outcome::Manage(action) => {
                crate::manage::perform(m, part, action, Some(self.index));
                Next::Skip
            }
        }
    }

    /// Asks the core(s) running `target` to restart it: a flag, then an NMI that makes the
    /// core leave its guest (NMI exiting) or wake from HLT, so even a core that never exits
    /// notices.
    #[inline(never)]
    fn request_restart(&self, m: &Machine, caller: usize, target: usize, scope: RestartScope) {
        let (who, t) = (&m.partitions[caller].name, &m.partitions[target]);
        crate::hvlog_for!(
            &m.partitions[caller],
            "partition {who}: requests a {}restart of partition {}",
            scope.adjective(),
            t.name
        );
        t.request_restart(scope);
        self.kick(m, target, true);
    }

    /// Sends an NMI to the other cores running `target` (`manage::kick`).
    fn kick(&self, m: &Machine, target: usize, scheduled_too: bool) {
        crate::manage::kick(m, target, Some(self.index), scheduled_too);
    }

    /// Logs a health event and applies the partition's action for its class, as the
    /// vCPU's kind can carry it out (`hallows_core::vcpu::after_health`).
    #[inline(never)]
    fn health(
        &mut self,
        m: &'static Machine,
        slot: usize,
        class: EventClass,
        what: &dyn fmt::Display,
    ) -> Next {
        let v = &self.vcpus[slot];
        let p = &m.partitions[v.partition];
        let decided = decide_once(&p.restart_sync, &mut *p.health.lock(), v.index, p.vcpus, |health| {
            let _ = p.apply(Event::Fault);
            let mut decision = health.decide(&p.actions, class, m.now_ns());
            let (action, followup) = after_health(v.kind, p.vcpus, class, decision.action);
            decision.action = action;
            // Only RT partitions restart through `group_restart`; Linux has its own rendezvous.
            ((decision, followup), followup == Followup::Restart && v.kind == Kind::RealTime)
        });
        let Some(((decision, followup), gen)) = decided else {
            // Part of the run being restarted: counted once, by the restart's owner.
            let what = format_args!("{}: {what}", class.name());
            crate::hvlog_for!(p, "{}", Absorbed { partition: &p.name, vcpu: v.index, what });
            self.follow_restart(m, slot);
            return Next::Resume;
        };
        p.counters.note_health(m.now_ns(), class, core::mem::take(&mut self.fault_place), decision.action);
        crate::console::flush_partition(p);
        crate::hvlog_for!(p, "{}", decision.report(&p.name, what));
        match followup {
            Followup::Continue => {
                let _ = p.apply(Event::Resume);
                Next::Skip
            }
            Followup::ContinueWith(exception) => {
                let _ = p.apply(Event::Resume);
                Next::Inject(exception)
            }
            Followup::Stop => {
                self.stop(m, slot, Cause::HealthMonitor);
                if let Some(l) = &self.vcpus[slot].linux {
                    l.print_exit_counts(m, "halted");
                }
                Next::Stop
            }
            // Linux restarts whole, driven by its cores' loops (`linux::restart`).
            Followup::Restart if self.vcpus[slot].linux.is_some() => {
                self.vcpus[slot].stopped = true;
                if let Some(l) = &self.vcpus[slot].linux {
                    l.begin_restart(Cause::HealthMonitor);
                }
                crate::linux::vcpu::quiet_core();
                Next::Stop
            }
            Followup::Restart => {
                let why = "restarted with a fresh image";
                match gen {
                    Some(gen) => self.begin_restart(
                        m,
                        slot,
                        gen,
                        why,
                        Cause::HealthMonitor,
                        RestartScope::KeepPersistent,
                    ),
                    None => self.stop(m, slot, Cause::HealthMonitor),
                }
                Next::Resume
            }
            Followup::HaltSystem => {
                hvlog!("system halted by the health monitor (partition {})", p.name);
                crate::power::power_off_runtime()
            }
        }
    }

    /// Stops vCPU `slot` for good (and, for Linux, the whole partition: every vCPU of it
    /// leaves the guest).
    #[inline(never)]
    fn stop(&mut self, m: &Machine, slot: usize, cause: Cause) {
        let v = &mut self.vcpus[slot];
        v.stopped = true;
        let p = &m.partitions[v.partition];
        if p.lifecycle() != lifecycle::State::Halted {
            let _ = p.apply(Event::Halt(cause));
        }
        if let Some(l) = &v.linux {
            l.stop_partition();
            crate::linux::vcpu::quiet_core();
        }
    }

    /// A Linux partition powered itself off (or asked for a reset it cannot get).
    #[inline(never)]
    fn power_off(&mut self, m: &Machine, slot: usize, what: &str) {
        let p = &m.partitions[self.vcpus[slot].partition];
        crate::console::flush_partition(p);
        self.stop(m, slot, Cause::Itself);
        if let Some(l) = &self.vcpus[slot].linux {
            l.print_exit_counts(m, what);
        }
        crate::hvlog_for!(p, "partition {}: {what}", p.name);
    }

    /// Serves what other partitions asked of vCPU `slot`'s partition, if anything: two
    /// plain loads in the common case (a dedicated core looks before every entry).
    #[inline(always)]
    fn serve_restart_request(&mut self, m: &'static Machine, slot: usize) {
        let p = &m.partitions[self.vcpus[slot].partition];
        if p.restart_pending() || p.halt_pending() {
            self.serve_requests(m, slot);
        }
    }

    /// What another partition asked of vCPU `slot`'s partition: the operator's halt
    /// (management interface), or a restart (clean or not as asked; a restart still under
    /// way that was clean stays clean). A restart the operator asked for is not cut by the
    /// restart budget; one another partition asked for with the `restart` privilege is.
    #[inline(never)]
    fn serve_requests(&mut self, m: &'static Machine, slot: usize) {
        let p = &m.partitions[self.vcpus[slot].partition];
        let v = &self.vcpus[slot];
        if p.halt_pending() && !v.stopped && v.restart.is_none() && v.parked == 0 {
            crate::console::flush_partition(p);
            crate::hvlog_for!(p, "partition {}: halted by the operator (management)", p.name);
            self.stop(m, slot, Cause::Operator);
            if let Some(l) = &self.vcpus[slot].linux {
                l.print_exit_counts(m, "halted");
            }
            return;
        }
        let Some((requested, operator)) = p.take_restart_request() else { return };
        let (cause, whose) = if operator {
            (Cause::Operator, "the operator's")
        } else {
            (Cause::OtherPartition, "another partition's")
        };
        if self.vcpus[slot].kind == Kind::Linux {
            self.linux_restart_request(m, slot, cause, operator);
            return;
        }
        let under_way = self.vcpus[slot].restart.as_ref().map_or(requested, |w| w.scope);
        let Some((verdict, gen)) = self.restart_verdict(m, slot, operator) else {
            // A restart is already under way: a clean request makes it clean.
            if let Some(w) = self.vcpus[slot].restart.as_mut() {
                w.scope = w.scope.widen(requested);
                w.scrub = lifecycle::scrub(Reload::Restart(w.scope));
            }
            return;
        };
        if let Some(gen) = gen {
            let why = if operator {
                "restarted at the operator's request"
            } else {
                "restarted at another partition's request"
            };
            self.begin_restart(m, slot, gen, why, cause, requested.widen(under_way));
        } else {
            crate::hvlog_for!(p, "partition {}: restart at {whose} request -> {verdict}", p.name);
            self.stop(m, slot, Cause::HealthMonitor);
        }
    }

    /// Another partition (or the operator) asked to restart Linux vCPU `slot`'s partition:
    /// judged against the restart budget (unless the operator asked), then every vCPU of
    /// it stops and meets the others in `linux::restart`, as after a reboot request.
    fn linux_restart_request(&mut self, m: &'static Machine, slot: usize, cause: Cause, operator: bool) {
        let p = &m.partitions[self.vcpus[slot].partition];
        let now = m.now_ns();
        let verdict = {
            let mut health = p.health.lock();
            if operator {
                health.decide_operator_restart(now)
            } else {
                health.decide_requested_restart(now)
            }
        };
        if !verdict.allowed {
            crate::hvlog_for!(p, "partition {}: restart at another partition's request -> {verdict}", p.name);
            if !self.vcpus[slot].stopped {
                self.stop(m, slot, Cause::HealthMonitor);
            }
            return;
        }
        crate::console::flush_partition(p);
        crate::hvlog_for!(
            p,
            "partition {}: restarting Linux at {} request",
            p.name,
            if operator { "the operator's" } else { "another partition's" }
        );
        self.vcpus[slot].stopped = true;
        if let Some(l) = &self.vcpus[slot].linux {
            l.begin_restart(cause);
        }
        crate::linux::vcpu::quiet_core();
    }

    /// The health monitor's verdict on a restart asked for (by the partition or another
    /// one) while vCPU `slot` runs, and the restart's generation when this core owns it;
    /// `None` when a restart is already under way (`group_restart::decide_once`).
    fn restart_verdict(
        &self,
        m: &Machine,
        slot: usize,
        operator: bool,
    ) -> Option<(RequestedRestart, Option<u32>)> {
        let (v, now) = (&self.vcpus[slot], m.now_ns());
        let p = &m.partitions[v.partition];
        decide_once(&p.restart_sync, &mut *p.health.lock(), v.index, p.vcpus, |health| {
            let verdict = if operator {
                health.decide_operator_restart(now)
            } else {
                health.decide_requested_restart(now)
            };
            (verdict, verdict.allowed)
        })
    }

    /// Does this core's part of a restart another core owns (`group_restart::Poll`): parks
    /// vCPU `slot`, starts it afresh once released, or stops it when the restart was given
    /// up. On a scheduled core it is called in the partition's own windows only.
    fn follow_restart(&mut self, m: &'static Machine, slot: usize) {
        let v = &mut self.vcpus[slot];
        if v.kind != Kind::RealTime {
            return;
        }
        let p = &m.partitions[v.partition];
        match p.restart_sync.poll(v.index, v.parked) {
            Poll::Nothing => {}
            Poll::Park { gen } => {
                // Not entered until released; what it left in the core is reset.
                v.parked = gen;
                v.wake_at_ns = 0;
                v.saved.reset();
                self.state_owner.forget(slot);
                p.restart_sync.ack(v.index);
            }
            Poll::Resume => {
                v.parked = 0;
                let index = v.index;
                if let Err(e) = self.setup_vcpu(m, slot) {
                    crate::hvlog_for!(p, "partition {}: vCPU {index}: restart failed: {e}; halted", p.name);
                    self.stop(m, slot, Cause::Hypervisor);
                }
            }
            Poll::Halt => {
                v.parked = 0;
                v.stopped = true;
            }
        }
    }

    /// Starts restarting vCPU `slot`'s partition: the vCPU is not entered again until
    /// [`Core::continue_restart`] has scrubbed its RAM (and, for a clean restart, its
    /// persistent region: `scope`, decided by `lifecycle::scrub`) and reloaded its image.
    /// Its registers outside the VMCS are reset now, so nothing of the old run survives.
    #[inline(never)]
    fn begin_restart(
        &mut self,
        m: &Machine,
        slot: usize,
        gen: u32,
        why: &'static str,
        cause: Cause,
        scope: RestartScope,
    ) {
        let v = &mut self.vcpus[slot];
        let part = v.partition;
        let p = &m.partitions[part];
        // The image was loaded at boot, so it parses; if it somehow does not, halt.
        let parsed = p.parsed_image().inspect_err(|e| {
            crate::hvlog_for!(p, "partition {}: cannot restart: {e}; halted", p.name);
            v.stopped = true;
            let _ = p.apply(Event::Halt(Cause::Hypervisor));
        });
        let Some((image, image_end)) = parsed.ok().filter(|_| p.apply(Event::Restart(cause)).is_ok()) else {
            // The partition's parked vCPUs stop too.
            p.restart_sync.abandon(gen);
            self.kick(m, part, false);
            return;
        };
        v.saved.reset();
        v.restart_began_tsc = cpu::rdtsc();
        let scrub = lifecycle::scrub(Reload::Restart(scope));
        let owned = Owned::new(gen, m.now_ns(), stop_wait_ns(&m.cores, part));
        v.restart = Some(RestartWork {
            why,
            owned,
            image,
            image_end,
            scope,
            scrub,
            rebuilt: 0,
            windows: 0,
            ticks: 0,
        });
        v.stopped = false;
        v.parked = 0;
        v.wake_at_ns = 0;
        self.state_owner.forget(slot);
        // The partition's other vCPUs park (`follow_restart`) before RAM is touched.
        self.kick(m, part, false);
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
        match work.owned.step(&p.restart_sync, p.vcpus, m.now_ns()) {
            OwnerStep::Rebuild => {}
            OwnerStep::Wait => {
                self.vcpus[slot].restart = Some(work);
                return false;
            }
            OwnerStep::GiveUp { missing } => {
                crate::hvlog_for!(p, "{}", work.owned.timeout(&p.name, missing));
                p.restart_sync.abandon(work.owned.gen);
                self.stop(m, slot, Cause::Hypervisor);
                self.kick(m, part, false);
                return true;
            }
        }
        work.windows += 1;
        let started = cpu::rdtsc();
        let fits = |budget: &WorkBudget<2>, kind: u64| {
            budget.fits(kind, cpu::rdtsc(), window_end_tsc) || budget.estimate(kind) > window_ticks
        };
        let kept = if work.scrub.persistent { 0 } else { p.persistent_bytes };
        let total = p.ram_bytes + p.persistent_bytes - kept;
        while work.rebuilt < total && fits(&self.restart_cost, WORK_CHUNK) {
            let t = cpu::rdtsc();
            // SAFETY: no vCPU of the partition runs: this one is being restarted and the
            // others are parked (`owned.step` said so above).
            unsafe {
                if work.rebuilt < p.ram_bytes {
                    p.rebuild(&work.image, work.rebuilt, REBUILD_CHUNK)
                } else {
                    p.scrub_persistent(work.rebuilt - p.ram_bytes, REBUILD_CHUNK)
                }
            };
            work.rebuilt += REBUILD_CHUNK;
            self.restart_cost.record(WORK_CHUNK, cpu::rdtsc().wrapping_sub(t));
        }
        if work.rebuilt < total || !fits(&self.restart_cost, WORK_FINISH) {
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
            p.restart_sync.release(work.owned.gen);
        } else {
            p.restart_sync.abandon(work.owned.gen);
        }
        // The other vCPUs start afresh at the entry (or stay stopped).
        self.kick(m, part, false);
        match result {
            Ok(()) => crate::hvlog_for!(
                p,
                "partition {}: {}{} (restart {n}): {} MiB scrubbed and reloaded in {} of its own window(s), {} ticks",
                p.name,
                work.why,
                work.scope.note(),
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

    /// The per-switch hook: runs before a VM entry whenever this core enters a different
    /// vCPU than the last one it ran (a window switch on a scheduled core, the first entry
    /// or a restart on any core): it saves the leaving vCPU's non-VMCS registers, loads
    /// the arriving one's, and points IA32_PQR_ASSOC at the arriving partition's class of
    /// service when it differs (`cache_alloc`); time accounting attaches here too.
    #[inline(never)]
    fn on_vcpu_switch(&mut self, m: &Machine, switch: Switch) {
        if let Some(from) = switch.save {
            switched::save(&mut self.vcpus[from].saved, &m.xsave);
        }
        switched::load(&self.vcpus[switch.load].saved, &m.xsave);
        crate::cache_alloc::on_partition_switch(
            &mut self.cache_class,
            &m.partitions[self.vcpus[switch.load].partition],
        );
    }
}

/// Whether some idle core already prints the exit statistics.
static STATS_PRINTER: AtomicBool = AtomicBool::new(false);

/// Interval of the exit statistics.
const STATS_INTERVAL_NS: u64 = 1_000_000_000;

/// A core with nothing (left) to run. Returns when `watch` (the stopped or parked vCPU of
/// a dedicated core: partition, vCPU index, parked) gets a restart request or has its
/// part of a restart to do. With `log_level debug` or higher in the table,
/// the first idle core prints every core's VM exits once per second (scripts/bench reads
/// them: a core dedicated to a computing partition should show zero); the others halt
/// (an NMI from a restart request wakes them).
fn idle(m: &Machine, core: usize, watch: Option<Watch>) {
    let requested = || {
        watch.is_some_and(|w| {
            w.p.restart_pending()
                || w.p.restart_sync.calls(w.vcpu, w.parked)
                || w.linux_restart.is_some_and(|r| r.pending())
        })
    };
    // A parked vCPU waits only for its partition's rebuild: spin, so that the release's
    // NMI cannot be missed between a look and HLT.
    let parked = watch.is_some_and(|w| w.parked != 0);
    if parked || m.log_level < LOG_DEBUG || STATS_PRINTER.swap(true, Ordering::SeqCst) {
        while !requested() {
            if parked {
                cpu::pause();
            } else {
                cpu::halt();
            }
        }
        return;
    }
    let mut rates = Rates::start(&m.counters);
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
        let (mut line, mut switch_line) = (Text::<160>::new(), Text::<160>::new());
        let _ = rates.advance(&m.counters, &mut line, &mut switch_line);
        hvlog!("stats: VM exits in the last second (printed by idle core {core}):{line}");
        if !switch_line.as_str().is_empty() {
            hvlog!("stats: window switches in the last second:{switch_line}");
        }
    }
}

/// What a stopped or parked vCPU's idle core waits for: a restart request of its
/// partition, its part in a restart another core owns, or (Linux) a restart of its
/// partition under way (`linux::restart`).
#[derive(Clone, Copy)]
struct Watch<'a> {
    p: &'a Partition,
    vcpu: u32,
    parked: u32,
    linux_restart: Option<&'a hallows_core::linux_vcpu::restart::Rendezvous>,
}

/// Like [`wait_until`], but returns early when `watch` (the partition asleep on this
/// dedicated core, and its vCPU) gets a restart request from another partition or must
/// park for a restart another core owns.
fn wait_until_or_restart(m: &Machine, until_ns: u64, watch: Option<(&Partition, u32)>) {
    while m.now_ns() < until_ns {
        let calls = |(p, vcpu): (&Partition, u32)| {
            p.restart_pending() || p.halt_pending() || p.restart_sync.calls(vcpu, 0)
        };
        if watch.is_some_and(calls) {
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
