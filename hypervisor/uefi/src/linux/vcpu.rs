//! What only a Linux vCPU has: its policies (MSRs, CPUID, ports), its port bus, its start
//! (the boot vCPU at the boot plan's entry, the others at the boot vCPU's SIPI) and the
//! steps of `hallows_core::vcpu::decide` that only Linux takes (MSRs, the ICR, ports,
//! MMIO, CR0/CR4 with long-mode changes). The loop that runs it is `run.rs`'s, shared
//! with real-time vCPUs.
//!
//! Steady state causes almost no exits: Linux owns its core's local APIC in x2APIC mode
//! (timer, EOI and self-IPIs go straight to the hardware), HLT does not exit, the TSC is
//! not virtualised. What exits: CPUID, the MSRs `LinuxMsrPolicy` keeps (APIC base, ICR,
//! MTRRs, ...), every port (the virtual COM1 at 0x3F8, PCI configuration, the power-off
//! port, absent legacy devices), CR0/CR4 writes touching VMX-fixed bits, XSETBV, and
//! faults (EPT violations, triple fault) that go to the health monitor.

use alloc::string::String;
use core::sync::atomic::Ordering;

use hallows_abi::health::EventClass;
use hallows_core::control_regs::CrWriteRequest;
use hallows_core::linux_vcpu::ap_start::Mailbox;
use hallows_core::linux_vcpu::apic::{decide_icr, IcrDecision, VcpuSet};
use hallows_core::linux_vcpu::cpuid::{LinuxCpuid, TscTiming};
use hallows_core::linux_vcpu::exits::{self, control_write, CrWrite};
use hallows_core::linux_vcpu::io::{merge_in, LinuxIoPolicy};
use hallows_core::linux_vcpu::msr::{LinuxMsrPolicy, MsrAction};
use hallows_core::linux_vcpu::stats::MarkerMatch;
use hallows_core::slot_plan::Next;
use hallows_core::vcpu::modes::{efer_after_wrmsr, long_mode_after_cr0_write, mirror_guest_cr4};
use hallows_core::vcpu::{Exception, IoAccess, IoDirection, PageFault};
use hallows_core::vmx::caps::VmxControls;
use hallows_vmm::mmio_bus::{emulate, EptAccess, MmioExit};
use hallows_vmm::port_bus::{all_ones, PortBus};

use super::devices::{linux_port_bus, LinuxPortDevices, PartitionRam, PORT_DEVICES};
use super::LinuxPartition;
use crate::arch::{Backend, Control};
use crate::cpu::{self, rdmsr, wrmsr};
use crate::host::CoreTables;
use crate::machine::Machine;
use crate::partition::Partition;
use crate::text::Text;
use crate::vmx::GuestRegs;
use crate::{hvlog, memory};
use x86::msr::{
    IA32_APIC_BASE, IA32_X2APIC_APICID as X2APIC_ID, IA32_X2APIC_ICR as X2APIC_ICR,
    IA32_X2APIC_LVT_TIMER as X2APIC_LVT_TIMER,
};

const APIC_BASE_EXTD: u64 = 1 << 10;
const APIC_BASE_EN: u64 = 1 << 11;
const LVT_MASKED: u64 = 1 << 16;
/// Debugging aid: each secondary vCPU logs its first this many exits (reason, RIP, RAX,
/// RCX), and so does the boot vCPU after it started another one. 0 in normal builds.
const TRACE_EXITS: u32 = 0;

/// A Linux vCPU's own state beside its registers and VMCS.
pub struct LinuxVcpu {
    pub linux: &'static LinuxPartition,
    pub p: &'static Partition,
    /// vCPU number inside the partition.
    pub index: usize,
    pub controls: VmxControls,
    msrs: LinuxMsrPolicy,
    cpuid: LinuxCpuid,
    io: LinuxIoPolicy,
    /// The devices this vCPU reaches through ports (shared ones lock themselves).
    ports: PortBus<PORT_DEVICES>,
    /// Finds the `/init` marker in the console output (statistics).
    pub(super) marker: MarkerMatch,
    /// Restarts of the partition this vCPU has rejoined (`restart`).
    pub(super) generation: u32,
    /// Exits still to log (see [`TRACE_EXITS`]).
    trace_left: u32,
    /// A secondary vCPU not started yet (waits for the boot vCPU's INIT and SIPI).
    pub awaiting_sipi: bool,
}

/// How a waiting secondary vCPU's start went.
pub enum Start {
    /// Not yet.
    Waiting,
    /// Started: its VMCS holds the SIPI state; these are its registers.
    Started(GuestRegs),
    /// The partition stopped before it was started.
    Stopped,
    Failed(String),
}

impl LinuxVcpu {
    /// Vcpu `index` of `linux` on this core: its policies, and its VMCS at `vmcs` set up
    /// (controls, bitmaps, host state, and for the boot vCPU the entry state). Returns the
    /// vCPU and its first registers.
    pub fn new(
        m: &'static Machine,
        tables: &CoreTables,
        linux: &'static LinuxPartition,
        index: usize,
        vmcs: u64,
    ) -> Result<(Self, GuestRegs), String> {
        enable_x2apic();
        let p = &m.partitions[linux.partition];
        let controls =
            exits::linux_controls(&m.caps).map_err(|e| alloc::format!("VMX controls for Linux: {e:?}"))?;
        let (msrs, cpuid) = policies(m, linux, index);
        let v = LinuxVcpu {
            linux,
            p,
            index,
            controls,
            msrs,
            cpuid,
            io: LinuxIoPolicy::default(),
            ports: linux_port_bus()?,
            marker: MarkerMatch::default(),
            generation: linux.rendezvous.generation(),
            trace_left: if index == 0 { 0 } else { TRACE_EXITS },
            awaiting_sipi: index != 0,
        };
        let msr_bitmap = memory::alloc_pages(1);
        // SAFETY: a fresh page owned by this vCPU, exactly the MSR bitmap's size.
        let bitmap = unsafe { &mut *(msr_bitmap as *mut [u8; 4096]) };
        v.msrs.fill_bitmap(bitmap);
        crate::vmx::setup::linux_vcpu(m, tables, vmcs, linux.partition, &v.controls, msr_bitmap)?;
        let regs = if index == 0 {
            crate::vmx::setup::linux_boot_entry(m, &v.controls, &linux.entry)?
        } else {
            GuestRegs::default()
        };
        Ok((v, regs))
    }

    /// The MSR and CPUID policies as [`LinuxVcpu::new`] made them (a restart).
    pub(super) fn rebuild_policies(&mut self, m: &Machine) {
        (self.msrs, self.cpuid) = policies(m, self.linux, self.index);
        self.trace_left = if self.index == 0 { 0 } else { TRACE_EXITS };
    }

    /// A waiting secondary vCPU looks at its mailbox once.
    pub fn try_start(&mut self, m: &Machine, core: usize) -> Start {
        if self.linux.stopped.load(Ordering::SeqCst) {
            return Start::Stopped;
        }
        let Some(vector) = self.linux.mailboxes[self.index].take_sipi() else { return Start::Waiting };
        match crate::vmx::setup::linux_sipi_entry(m, &self.controls, vector) {
            Ok(regs) => {
                self.awaiting_sipi = false;
                hvlog!(
                    "partition {}: vCPU {} started at SIPI vector {vector:#x} on core {core}",
                    self.p.name,
                    self.index
                );
                Start::Started(regs)
            }
            Err(e) => Start::Failed(e),
        }
    }

    /// Counts the exit (and traces it while tracing is on).
    pub fn note_exit(&mut self, code: u16, rip: u64, regs: &GuestRegs) {
        self.linux.exits.count(code as u32);
        if self.trace_left > 0 {
            self.trace_left -= 1;
            hvlog!(
                "trace {} vCPU {}: exit {code} at RIP {rip:#x} rax {:#x} rcx {:#x}",
                self.p.name,
                self.index,
                regs.rax,
                regs.rcx
            );
        }
    }

    /// CPUID as this vCPU sees it, with the bits mirroring the guest's CR4.
    pub fn cpuid(&self, leaf: u32, subleaf: u32, host: [u32; 4], guest_cr4: u64) -> [u32; 4] {
        let [a, b, c, d] = self.cpuid.answer(leaf, subleaf, host);
        [a, b, mirror_guest_cr4(leaf, subleaf, c, guest_cr4), d]
    }

    pub fn rdmsr(&mut self, regs: &mut GuestRegs, number: u32, why: &mut Text<160>) -> Next {
        let value = match self.msrs.on_rdmsr(number) {
            MsrAction::Read(v) => v,
            // SAFETY: the policy passes through only core-local MSRs that exist.
            MsrAction::PassThrough => unsafe { rdmsr(number) },
            MsrAction::Refuse(class) => {
                return Next::fault(why, class, format_args!("RDMSR {number:#x} refused"))
            }
            _ => return Next::Inject(Exception::GeneralProtection),
        };
        regs.rax = value & 0xFFFF_FFFF;
        regs.rdx = value >> 32;
        Next::Skip
    }

    pub fn wrmsr<B: Backend>(&mut self, number: u32, value: u64, why: &mut Text<160>) -> Next {
        match self.msrs.on_wrmsr(number, value) {
            // SAFETY: the policy passes through only core-local MSRs with checked values.
            MsrAction::PassThrough => unsafe { wrmsr(number, value) },
            MsrAction::Ignore | MsrAction::Read(_) => {}
            MsrAction::WriteEfer(v) => {
                let current = B::efer();
                let long_mode = current & hallows_core::vcpu::modes::EFER_LMA != 0;
                if let Err(e) = B::set_efer(efer_after_wrmsr(v, current), long_mode) {
                    return Next::fault(why, EventClass::UnknownExit, format_args!("writing EFER: {e}"));
                }
            }
            MsrAction::Icr(v) => return self.icr(v, why),
            MsrAction::InjectGp => return Next::Inject(Exception::GeneralProtection),
            MsrAction::Refuse(class) => {
                return Next::fault(why, class, format_args!("WRMSR {number:#x} <- {value:#x} refused"));
            }
        }
        Next::Skip
    }

    /// A write to the x2APIC ICR: IPIs to the partition's own cores go to the hardware,
    /// INIT and SIPI to the parked vCPUs' mailboxes.
    fn icr(&mut self, value: u64, why: &mut Text<160>) -> Next {
        let decision = decide_icr(&self.linux.map, self.index, value);
        if self.trace_left > 0 {
            hvlog!("trace {} vCPU {}: ICR {value:#x}: {decision:?}", self.p.name, self.index);
        }
        match decision {
            IcrDecision::Forward(plan) => {
                // One physical-mode write per target: Bochs does not deliver the logical
                // (cluster) form that `IpiPlan::icr_writes` may choose.
                for target in plan.targets.iter() {
                    let Some(real) = self.linux.map.real_id(target) else { continue };
                    let icr = plan.command as u64 | (real as u64) << 32;
                    // SAFETY: the destination is one of this partition's cores (checked by
                    // `decide_icr`); this core is in x2APIC mode.
                    unsafe { wrmsr(X2APIC_ICR, icr) };
                }
            }
            IcrDecision::Init(targets) => self.mailboxes(targets).for_each(Mailbox::post_init),
            IcrDecision::Sipi { targets, vector } => {
                self.trace_left = TRACE_EXITS;
                self.mailboxes(targets).for_each(|mb| mb.post_sipi(vector));
            }
            IcrDecision::Ignore => {}
            IcrDecision::InjectGp => return Next::Inject(Exception::GeneralProtection),
            IcrDecision::Refuse(r) => {
                return Next::fault(why, r.class(), format_args!("IPI refused (ICR {value:#x}): {r:?}"));
            }
        }
        Next::Skip
    }

    /// The mailboxes of the other vCPUs among `targets`.
    fn mailboxes(&self, targets: VcpuSet) -> impl Iterator<Item = &Mailbox> + '_ {
        let me = self.index;
        let others =
            self.linux.mailboxes.iter().enumerate().filter(move |&(t, _)| t != me && targets.contains(t));
        others.map(|(_, mailbox)| mailbox)
    }

    pub fn io(&mut self, regs: &mut GuestRegs, q: IoAccess, why: &mut Text<160>) -> Next {
        if q.string {
            // Linux's drivers here use IN/OUT only; a string access reads nothing and
            // writes nothing (like an absent device), and completes.
            if q.rep {
                regs.rcx = 0;
            }
            return Next::Skip;
        }
        let out = q.direction == IoDirection::Out;
        let value = regs.rax as u32 & all_ones(q.size);
        let action = self.io.classify(q, value as u64);
        if let Some(line) = action.stop_line() {
            return Next::PowerOff(line);
        }
        if let Some((class, what)) = action.health_event() {
            return Next::fault(why, class, format_args!("{what} (port {:#x} <- {value:#x})", q.port));
        }
        let mut devices = LinuxPortDevices { p: self.p, linux: self.linux, marker: &mut self.marker };
        if out {
            self.ports.write(q.port, q.size, value, &mut devices);
        } else {
            let result = self.ports.read(q.port, q.size, &mut devices);
            regs.rax = merge_in(regs.rax, q.size, result);
        }
        Next::Skip
    }

    /// An access to a range of the partition's MMIO bus: emulated on the device, or the
    /// partition's memory violation.
    pub fn mmio<B: Backend>(
        &mut self,
        regs: &mut GuestRegs,
        fault: PageFault,
        rip: u64,
        why: &mut Text<160>,
    ) -> Next {
        let code = B::code_context();
        let exit = MmioExit {
            gpa: fault.gpa,
            access: EptAccess::from_flags(fault.fetch, fault.write),
            rip,
            cs_base: code.cs_base,
            bitness: code.bitness,
            paging: code.paging,
        };
        let mut gprs: [u64; 16] =
            core::array::from_fn(|n| regs.get(n as u8, if n == 4 { B::rsp() } else { 0 }));
        match emulate(&self.linux.mmio, &exit, &PartitionRam(self.p), &mut gprs) {
            Ok(done) => {
                if let Some(n) = done.written_register {
                    let value = gprs[usize::from(n)];
                    if !regs.set(n, value) {
                        if let Err(e) = B::set_rsp(value) {
                            return Next::fault(
                                why,
                                EventClass::UnknownExit,
                                format_args!("writing RSP: {e}"),
                            );
                        }
                    }
                }
                Next::Emulated { next_rip: done.next_rip }
            }
            Err(refusal) => Next::fault(
                why,
                EventClass::MemoryViolation,
                format_args!("{}: {refusal}", hallows_core::vcpu::Exit::NestedPageFault(fault).at(rip)),
            ),
        }
    }

    /// MOV to CR0/CR4 or LMSW touching a bit VMX fixes; a CR0 write that switches paging
    /// also switches long mode (a secondary vCPU's trampoline).
    pub fn write_control<B: Backend>(
        &mut self,
        m: &Machine,
        request: CrWriteRequest,
        why: &mut Text<160>,
    ) -> Next {
        let (cr, update) = match control_write(&m.caps, request, || B::control(Control::Cr0).1) {
            Ok(write) => write,
            Err(cr) => {
                return Next::fault(why, EventClass::UnknownExit, format_args!("MOV to CR{cr} exited"))
            }
        };
        let CrWrite::Update { guest: value, shadow } = update else {
            return Next::Inject(Exception::GeneralProtection);
        };
        let result = if cr == 0 {
            let (old, _) = B::control(Control::Cr0);
            match long_mode_after_cr0_write(old, value, B::efer()) {
                Some(change) => B::set_efer(change.efer, change.ia32e),
                None => Ok(()),
            }
            .and_then(|_| B::set_control(Control::Cr0, value, shadow))
        } else {
            B::set_control(Control::Cr4, value, shadow)
        };
        match result {
            Ok(()) => Next::Skip,
            Err(e) => {
                Next::fault(why, EventClass::UnknownExit, format_args!("writing a control register: {e}"))
            }
        }
    }

    /// Stops the whole partition: the flag every vCPU of it checks, and an NMI to its
    /// other cores so that a vCPU still in the guest leaves it (NMI exiting).
    pub fn stop_partition(&self) {
        self.linux.stopped.store(true, Ordering::SeqCst);
        // SAFETY: reading this core's own APIC mode.
        let x2apic = unsafe { rdmsr(IA32_APIC_BASE) } & APIC_BASE_EXTD != 0;
        // SAFETY: this core's own x2APIC id register.
        let own = if x2apic { (unsafe { rdmsr(X2APIC_ID) }) as u32 } else { u32::MAX };
        for id in self.linux.map.guest_ids().iter().filter(|&&id| x2apic && id != own) {
            // SAFETY: an NMI (delivery mode 4) in x2APIC mode to one of the partition's cores.
            unsafe { wrmsr(X2APIC_ICR, (*id as u64) << 32 | crate::apic::ICR_NMI as u64) };
        }
    }

    /// Whether another vCPU stopped the partition.
    pub fn partition_stopped(&self) -> bool {
        self.linux.stopped.load(Ordering::SeqCst)
    }

    /// Prints the partition's exit statistics, once per partition (by the vCPU that
    /// stopped it).
    pub fn print_exit_counts(&self, m: &Machine, why: &str) {
        super::stats::print_exit_counts(m, self.linux, &self.p.name, why);
    }
}

/// vCPU `index`'s MSR and CPUID policies, in their boot state.
fn policies(m: &Machine, linux: &LinuxPartition, index: usize) -> (LinuxMsrPolicy, LinuxCpuid) {
    let tsc_khz = (m.tsc_hz / 1000).min(u32::MAX as u64) as u32;
    let timing = TscTiming { tsc_khz, lapic_khz: tsc_khz };
    let host_max_basic = cpu::cpuid(0, 0).eax;
    (
        LinuxMsrPolicy::new(&linux.map, index, tsc_khz),
        LinuxCpuid::new(&linux.map, index, host_max_basic, timing),
    )
}

/// Masks the local APIC timer Linux may have armed on this core, whose vCPU will not run
/// again (its interrupts would only wake the idle core).
pub fn quiet_core() {
    // SAFETY: the x2APIC LVT timer MSR exists in x2APIC mode, checked first.
    unsafe {
        if rdmsr(IA32_APIC_BASE) & APIC_BASE_EXTD != 0 {
            wrmsr(X2APIC_LVT_TIMER, LVT_MASKED);
        }
    }
}

/// Switches this core's local APIC to x2APIC mode (Linux finds it "enabled by the
/// firmware", and the xAPIC page is never mapped into the partition).
fn enable_x2apic() {
    // SAFETY: IA32_APIC_BASE exists on every CPU with a local APIC; going from xAPIC to
    // x2APIC mode (EN and EXTD set) is an allowed transition.
    unsafe {
        let base = rdmsr(IA32_APIC_BASE);
        if base & APIC_BASE_EXTD == 0 {
            wrmsr(IA32_APIC_BASE, base | APIC_BASE_EN | APIC_BASE_EXTD);
        }
    }
}
