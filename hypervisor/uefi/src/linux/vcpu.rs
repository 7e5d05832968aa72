//! A Linux vCPU on its dedicated core: VMCS set-up and the exit handler.
//!
//! Steady state causes almost no exits: Linux owns its core's local APIC in x2APIC mode
//! (timer, EOI and self-IPIs go straight to the hardware), HLT does not exit, the TSC is
//! not virtualised. What exits: CPUID, the MSRs `LinuxMsrPolicy` keeps (APIC base, ICR,
//! MTRRs, ...), every port (the virtual COM1 at 0x3F8, PCI configuration, the power-off
//! port, absent legacy devices), CR0/CR4 writes touching VMX-fixed bits, XSETBV, and
//! faults (EPT violations, triple fault) that go to the health monitor.

use core::fmt;
use core::sync::atomic::Ordering;

use hallows_abi::health::{Action, EventClass};
use hallows_core::exit::{CrAccessQualification, ExitInfo, ExitReason, IoDirection, IoQualification};
use hallows_core::guest_state::DEFAULT_PAT;
use hallows_core::lifecycle::{Cause, Event};
use hallows_core::linux_vcpu::ap_start::{linux_cr_masks, sipi_start_state};
use hallows_core::linux_vcpu::apic::{decide_icr, logical_id, IcrDecision};
use hallows_core::linux_vcpu::cpuid::{LinuxCpuid, TscTiming};
use hallows_core::linux_vcpu::exits::{
    self, classify, cr0_write, cr4_write, xapic_access_message, CrWrite, Disposition, LinuxExit,
};
use hallows_core::linux_vcpu::io::{merge_in, IoAction, LinuxIoPolicy};
use hallows_core::linux_vcpu::msr::{LinuxMsrPolicy, MsrAction};
use hallows_core::vmcs::{control, exit_info, guest, host};
use hallows_core::vmx_caps::{entry as entry_ctl, msr, VmxControls};
use hallows_vmm::guest_memory::Paging;
use hallows_vmm::mmio_bus::{code_bitness, emulate, EptAccess, MmioExit};
use hallows_vmm::port_bus::{all_ones, PortBus};

use super::devices::{linux_port_bus, LinuxPortDevices, PartitionRam, PORT_DEVICES};
use super::LinuxPartition;
use crate::cpu::{self, rdmsr, wrmsr};
use crate::host::CoreTables;
use crate::machine::Machine;
use crate::partition::Partition;
use crate::vmx::{self, GuestRegs, VmFail};
use crate::{hvlog, memory};

const IA32_APIC_BASE: u32 = 0x1B;
const APIC_BASE_EXTD: u64 = 1 << 10;
const APIC_BASE_EN: u64 = 1 << 11;
const X2APIC_LVT_TIMER: u32 = 0x832;
const X2APIC_LDR: u32 = 0x80D;
const X2APIC_ID: u32 = 0x802;
/// ICR delivery mode NMI.
const ICR_NMI: u64 = 4 << 8;
const LVT_MASKED: u64 = 1 << 16;
const EFER_LME: u64 = 1 << 8;
const EFER_LMA: u64 = 1 << 10;
const CR0_PG: u64 = 1 << 31;
const CR4_OSXSAVE: u64 = 1 << 18;
const CR4_PKE: u64 = 1 << 22;
/// VM-entry interruption information: valid, hardware exception, vector.
const INJECT_UD: u64 = 0x8000_0306;
/// The same for #GP, with an error code (0).
const INJECT_GP: u64 = 0x8000_0B0D;
/// Debugging aid: each vCPU logs its first this many exits (reason, RIP, RAX, RCX), and so
/// does the boot vCPU after it started another one. 0 in normal builds.
const TRACE_EXITS: u32 = 0;

/// What to do after an exit.
enum Flow {
    /// Re-enter without touching RIP.
    Resume,
    /// Skip the exiting instruction, then re-enter.
    Skip,
    /// The instruction was emulated (an MMIO access): continue at `next_rip`.
    Emulated { next_rip: u64 },
    /// The partition stopped (its vCPUs never run again).
    Stop,
}

/// One Linux vCPU on this core.
struct LinuxVcpu {
    m: &'static Machine,
    core: usize,
    linux: &'static LinuxPartition,
    p: &'static Partition,
    index: usize,
    vmcs: u64,
    regs: GuestRegs,
    controls: VmxControls,
    msrs: LinuxMsrPolicy,
    cpuid: LinuxCpuid,
    io: LinuxIoPolicy,
    /// The devices this vCPU reaches through ports (shared ones lock themselves).
    ports: PortBus<PORT_DEVICES>,
    marker_seen: usize,
    /// Exits still to log (see [`TRACE_EXITS`]).
    trace_left: u32,
}

fn write(field: u32, value: u64) -> Result<(), VmFail> {
    // SAFETY: every value is computed by the hypervisor from the partition's own resources
    // (EPT, bitmaps, boot plan) or the guest's checked register writes.
    unsafe { vmx::vmwrite(field, value) }
}

fn read(field: u32) -> u64 {
    vmx::vmread(field).unwrap_or(0)
}

/// Entry of a core dedicated to vCPU `index` of Linux partition `partition`.
pub fn run_core(
    m: &'static Machine,
    core: usize,
    tables: &'static CoreTables,
    partition: usize,
    index: usize,
) -> ! {
    let p = &m.partitions[partition];
    let Some(linux) = super::of(partition) else {
        if index == 0 {
            hvlog!("partition {}: Linux was not prepared at boot; halted", p.name);
        }
        let _ = p.apply(Event::Halt(Cause::Hypervisor));
        park_forever();
    };
    enable_x2apic();
    let mut v = match LinuxVcpu::new(m, core, linux, p, index) {
        Ok(v) => v,
        Err(e) => {
            hvlog!("partition {}: vCPU {index} on core {core}: {e}; halted", p.name);
            stop_partition(linux, p);
            park_forever();
        }
    };
    if let Err(e) = v.setup_host_and_controls(tables) {
        hvlog!("partition {}: vCPU {index}: VMCS set-up failed: {e}; halted", p.name);
        stop_partition(linux, p);
        park_forever();
    }
    let started = if index == 0 { v.setup_boot_vcpu() } else { v.wait_for_sipi() };
    if let Err(e) = started {
        hvlog!("partition {}: vCPU {index}: VMCS set-up failed: {e}; halted", p.name);
        stop_partition(linux, p);
        park_forever();
    }
    v.run()
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

/// A core whose Linux vCPU will never run again: halts for good (NMIs return to HLT).
fn park_forever() -> ! {
    // SAFETY: masking the LAPIC timer Linux may have armed on this core (x2APIC MSR).
    unsafe {
        if rdmsr(IA32_APIC_BASE) & APIC_BASE_EXTD != 0 {
            wrmsr(X2APIC_LVT_TIMER, LVT_MASKED);
        }
    }
    cpu::halt_forever()
}

/// Marks the partition stopped and sends an NMI to its other cores: a vCPU still in the
/// guest leaves it (NMI exiting) and parks; a parked one sees the flag.
fn stop_partition(linux: &LinuxPartition, p: &Partition) {
    linux.stopped.store(true, Ordering::SeqCst);
    let _ = p.apply(Event::Halt(Cause::HealthMonitor));
    // SAFETY: reading this core's own APIC mode.
    let x2apic = unsafe { rdmsr(IA32_APIC_BASE) } & APIC_BASE_EXTD != 0;
    // SAFETY: this core's own x2APIC id register.
    let own = if x2apic { (unsafe { rdmsr(X2APIC_ID) }) as u32 } else { u32::MAX };
    for id in linux.map.guest_ids().iter().filter(|&&id| x2apic && id != own) {
        // SAFETY: an NMI (delivery mode 4) in x2APIC mode to one of the partition's cores.
        unsafe { wrmsr(0x830, (*id as u64) << 32 | ICR_NMI) };
    }
}

impl LinuxVcpu {
    fn new(
        m: &'static Machine,
        core: usize,
        linux: &'static LinuxPartition,
        p: &'static Partition,
        index: usize,
    ) -> Result<Self, alloc::string::String> {
        let controls =
            exits::linux_controls(&m.caps).map_err(|e| alloc::format!("VMX controls for Linux: {e:?}"))?;
        let tsc_khz = (m.tsc_hz / 1000).min(u32::MAX as u64) as u32;
        let timing = TscTiming { tsc_khz, lapic_khz: tsc_khz };
        let host_max_basic = cpu::cpuid(0, 0).eax;
        let vmcs = memory::alloc_pages(1);
        // SAFETY: a fresh page owned by this core.
        unsafe { *(vmcs as *mut u32) = m.caps.revision_id() };
        Ok(LinuxVcpu {
            m,
            core,
            linux,
            p,
            index,
            vmcs,
            regs: GuestRegs::default(),
            controls,
            msrs: LinuxMsrPolicy::new(&linux.map, index, tsc_khz),
            cpuid: LinuxCpuid::new(&linux.map, index, host_max_basic, timing),
            io: LinuxIoPolicy::default(),
            ports: linux_port_bus()?,
            marker_seen: 0,
            trace_left: if index == 0 { 0 } else { TRACE_EXITS },
        })
    }

    /// Makes the VMCS current and writes controls, bitmaps and host state.
    fn setup_host_and_controls(&mut self, tables: &CoreTables) -> Result<(), alloc::string::String> {
        let m = self.m;
        // SAFETY: the VMCS page carries the revision id and belongs to this core.
        unsafe { vmx::vmclear(self.vmcs).and_then(|_| vmx::vmptrld(self.vmcs)) }
            .map_err(|e| alloc::format!("{e}"))?;
        // The guest's XSETBV is executed here on its behalf: the host needs OSXSAVE.
        if cpu::cpuid(1, 0).ecx & (1 << 26) != 0 {
            // SAFETY: the CPU supports XSAVE, so CR4.OSXSAVE may be set.
            unsafe { cpu::write_cr4(cpu::read_cr4() | CR4_OSXSAVE) };
        }
        let msr_bitmap = memory::alloc_pages(1);
        // SAFETY: a fresh page owned by this vCPU, exactly the MSR bitmap's size.
        let bitmap = unsafe { &mut *(msr_bitmap as *mut [u8; 4096]) };
        self.msrs.fill_bitmap(bitmap);
        // The x2APIC LDR read exits too (see `rdmsr`). Read bitmap for low MSRs: bytes 0..1024.
        bitmap[(X2APIC_LDR / 8) as usize] |= 1 << (X2APIC_LDR % 8);
        let io = m.io_bitmaps[self.linux.partition];
        let c = &self.controls;
        let (cr0_mask, cr4_mask) = linux_cr_masks(&m.caps);
        // SAFETY: IA32_EFER and IA32_PAT exist on every x86-64 CPU with VMX.
        let (host_efer, host_pat) = unsafe { (rdmsr(msr::IA32_EFER), rdmsr(0x277)) };
        let fields: [(u32, u64); 16] = [
            (control::PIN_BASED, c.pin as u64),
            (control::PRIMARY_PROC_BASED, c.primary as u64),
            (control::SECONDARY_PROC_BASED, c.secondary as u64),
            (control::EXIT_CONTROLS, c.exit as u64),
            (control::ENTRY_CONTROLS, c.entry as u64),
            (control::EXCEPTION_BITMAP, 0),
            (control::CR3_TARGET_COUNT, 0),
            (control::CR0_GUEST_HOST_MASK, cr0_mask),
            (control::CR4_GUEST_HOST_MASK, cr4_mask),
            (control::IO_BITMAP_A, io),
            (control::IO_BITMAP_B, io + 4096),
            (control::MSR_BITMAPS, msr_bitmap),
            (control::EPT_POINTER, self.p.eptp),
            (control::VPID, 1 + self.linux.partition as u64),
            (host::IA32_PAT, host_pat),
            (guest::IA32_PAT, DEFAULT_PAT),
        ];
        let host_state = crate::host::vmcs_host_state(tables, m.host_cr3, host_efer);
        for (field, value) in fields.into_iter().chain(host_state) {
            write(field, value).map_err(|e| alloc::format!("VMWRITE {field:#x}: {e}"))?;
        }
        Ok(())
    }

    /// The boot vCPU: the reset-like state of a SIPI, overridden by the boot plan's
    /// 64-bit entry state.
    fn setup_boot_vcpu(&mut self) -> Result<(), alloc::string::String> {
        let caps = &self.m.caps;
        let e = &self.linux.entry;
        for w in sipi_start_state(caps, self.controls.entry, 0).writes() {
            write(w.field, w.value).map_err(|err| alloc::format!("VMWRITE {:#x}: {err}", w.field))?;
        }
        let cr0_forced = caps.cr0_fixed0 & !(1 | CR0_PG);
        let long_mode = e.efer & EFER_LMA != 0;
        let entry_controls = if long_mode {
            self.controls.entry | entry_ctl::IA32E_MODE_GUEST
        } else {
            self.controls.entry & !entry_ctl::IA32E_MODE_GUEST
        };
        let mut fields: alloc::vec::Vec<(u32, u64)> = alloc::vec![
            (control::ENTRY_CONTROLS, entry_controls as u64),
            (guest::CR0, (e.cr0 | cr0_forced) & caps.cr0_fixed1),
            (control::CR0_READ_SHADOW, e.cr0),
            (guest::CR3, e.cr3),
            (guest::CR4, caps.fix_cr4(e.cr4)),
            (control::CR4_READ_SHADOW, e.cr4),
            (guest::IA32_EFER, e.efer),
            (guest::RIP, e.rip),
            (guest::RSP, e.rsp),
            (guest::RFLAGS, e.rflags | 2),
            (guest::GDTR_BASE, e.gdtr_base),
            (guest::GDTR_LIMIT, e.gdtr_limit as u64),
            (guest::IDTR_BASE, e.idtr_base),
            (guest::IDTR_LIMIT, e.idtr_limit as u64),
        ];
        let segments = [
            (guest::CS_SELECTOR, guest::CS_BASE, guest::CS_LIMIT, guest::CS_ACCESS_RIGHTS, e.cs),
            (guest::SS_SELECTOR, guest::SS_BASE, guest::SS_LIMIT, guest::SS_ACCESS_RIGHTS, e.data),
            (guest::DS_SELECTOR, guest::DS_BASE, guest::DS_LIMIT, guest::DS_ACCESS_RIGHTS, e.data),
            (guest::ES_SELECTOR, guest::ES_BASE, guest::ES_LIMIT, guest::ES_ACCESS_RIGHTS, e.data),
            (guest::FS_SELECTOR, guest::FS_BASE, guest::FS_LIMIT, guest::FS_ACCESS_RIGHTS, e.data),
            (guest::GS_SELECTOR, guest::GS_BASE, guest::GS_LIMIT, guest::GS_ACCESS_RIGHTS, e.data),
            (guest::TR_SELECTOR, guest::TR_BASE, guest::TR_LIMIT, guest::TR_ACCESS_RIGHTS, e.tr),
            (guest::LDTR_SELECTOR, guest::LDTR_BASE, guest::LDTR_LIMIT, guest::LDTR_ACCESS_RIGHTS, e.ldtr),
        ];
        for (sel, base, limit, ar, s) in segments {
            fields.extend([
                (sel, s.selector as u64),
                (base, s.base),
                (limit, s.limit as u64),
                (ar, s.access_rights as u64),
            ]);
        }
        for (field, value) in fields {
            write(field, value).map_err(|err| alloc::format!("VMWRITE {field:#x}: {err}"))?;
        }
        self.regs = GuestRegs { rsi: e.rsi, rbx: e.rbx, ..GuestRegs::default() };
        let _ = self.p.apply(Event::Started);
        Ok(())
    }

    /// A secondary vCPU: parked here until the boot vCPU's INIT and SIPI, then started in
    /// real mode at the SIPI vector (unrestricted guest).
    fn wait_for_sipi(&mut self) -> Result<(), alloc::string::String> {
        let mailbox = &self.linux.mailboxes[self.index];
        let vector = loop {
            if self.linux.stopped.load(Ordering::SeqCst) {
                park_forever();
            }
            let sipi = mailbox.sipi.swap(0, Ordering::SeqCst);
            if sipi != 0 {
                break sipi as u8;
            }
            cpu::pause();
        };
        mailbox.init.store(false, Ordering::SeqCst);
        for w in sipi_start_state(&self.m.caps, self.controls.entry, vector).writes() {
            write(w.field, w.value).map_err(|err| alloc::format!("VMWRITE {:#x}: {err}", w.field))?;
        }
        self.regs = GuestRegs::default();
        hvlog!(
            "partition {}: vCPU {} started at SIPI vector {vector:#x} on core {}",
            self.p.name,
            self.index,
            self.core
        );
        Ok(())
    }

    fn run(mut self) -> ! {
        let mut launched = false;
        if self.index == 0 {
            let t = cpu::rdtsc();
            self.linux.first_entry_tsc.store(t, Ordering::SeqCst);
            hvlog!(
                "core {}: first entry into Linux partition {} {} TSC ticks after hypervisor entry",
                self.core,
                self.p.name,
                t.wrapping_sub(self.m.tsc_at_entry)
            );
        }
        loop {
            crate::serial::pump();
            // SAFETY: the current VMCS is this vCPU's, fully set up above.
            let entered = unsafe { vmx::enter(&mut self.regs, launched) };
            if let Err(e) = entered {
                let _ = self.health(EventClass::UnknownExit, &format_args!("VM entry failed: {e}"));
                park_forever();
            }
            launched = true;
            self.m.count_exit(self.core);
            match self.handle_exit() {
                Flow::Resume => {}
                flow @ (Flow::Skip | Flow::Emulated { .. }) => {
                    let rip = match flow {
                        Flow::Emulated { next_rip } => next_rip,
                        _ => read(guest::RIP).wrapping_add(read(exit_info::INSTRUCTION_LEN)),
                    };
                    let _ = write(guest::RIP, rip);
                    let blocking = read(guest::INTERRUPTIBILITY_STATE);
                    if blocking & 3 != 0 {
                        let _ = write(guest::INTERRUPTIBILITY_STATE, blocking & !3);
                    }
                }
                Flow::Stop => park_forever(),
            }
        }
    }

    fn handle_exit(&mut self) -> Flow {
        let reason = read(exit_info::EXIT_REASON) as u32;
        self.linux.count_exit(reason);
        if self.trace_left > 0 {
            self.trace_left -= 1;
            hvlog!(
                "trace {} vCPU {}: exit {} qual {:#x} at RIP {:#x} rax {:#x} rcx {:#x}",
                self.p.name,
                self.index,
                reason,
                read(exit_info::EXIT_QUALIFICATION),
                read(guest::RIP),
                self.regs.rax,
                self.regs.rcx
            );
        }
        let info = ExitInfo {
            reason,
            qualification: read(exit_info::EXIT_QUALIFICATION),
            guest_rip: read(guest::RIP),
            guest_physical: read(exit_info::GUEST_PHYSICAL_ADDRESS),
            guest_linear: read(exit_info::GUEST_LINEAR_ADDRESS),
            interruption_info: read(exit_info::INTERRUPTION_INFO) as u32,
            instruction_len: read(exit_info::INSTRUCTION_LEN) as u32,
            rcx: self.regs.rcx,
        };
        match classify(&info) {
            Disposition::Handle(exit) => self.handle(exit, &info),
            // An EPT violation in a device's range is an MMIO access for the device.
            Disposition::Fault(_)
                if info.basic_reason() == ExitReason::EptViolation
                    && self.linux.mmio.claims(info.guest_physical) =>
            {
                self.mmio(&info)
            }
            Disposition::Fault(class) => match xapic_access_message(&info) {
                Some(x) => self.health(class, &x),
                None => self.health(class, &info.describe()),
            },
        }
    }

    fn handle(&mut self, exit: LinuxExit, info: &ExitInfo) -> Flow {
        match exit {
            LinuxExit::Cpuid => {
                let r = &mut self.regs;
                let (leaf, sub) = (r.rax as u32, r.rcx as u32);
                let h = cpu::cpuid(leaf, sub);
                let [a, b, mut c, d] = self.cpuid.answer(leaf, sub, [h.eax, h.ebx, h.ecx, h.edx]);
                // CPUID executes here, under the host's CR4: the bits that mirror CR4
                // (OSXSAVE, OSPKE) must mirror the guest's CR4 instead, or user space
                // runs XGETBV after Linux disabled XSAVE and dies of #UD.
                let guest_cr4 = read(control::CR4_READ_SHADOW);
                let mirror = match leaf {
                    1 => Some((1u32 << 27, guest_cr4 & CR4_OSXSAVE != 0)),
                    7 if sub == 0 => Some((1u32 << 4, guest_cr4 & CR4_PKE != 0)),
                    _ => None,
                };
                if let Some((bit, on)) = mirror {
                    c = if on { c | bit } else { c & !bit };
                }
                (r.rax, r.rbx, r.rcx, r.rdx) = (a as u64, b as u64, c as u64, d as u64);
                Flow::Skip
            }
            LinuxExit::Rdmsr => self.rdmsr(),
            LinuxExit::Wrmsr => self.wrmsr(),
            LinuxExit::Io => self.io(info),
            LinuxExit::CrWrite(q) => self.cr_write(q),
            LinuxExit::Xsetbv => self.xsetbv(),
            LinuxExit::SkipInstruction => Flow::Skip,
            LinuxExit::InjectUd | LinuxExit::Hypercall => inject(INJECT_UD),
            LinuxExit::InjectGp => inject(INJECT_GP),
            // NMIs are the hypervisor's own cross-core signal: another vCPU of the
            // partition stopped it (`stop_partition`).
            LinuxExit::Nmi if self.linux.stopped.load(Ordering::SeqCst) => Flow::Stop,
            // HLT, SIPI and external interrupts do not exit with Linux's controls.
            LinuxExit::Nmi | LinuxExit::Hlt | LinuxExit::Sipi { .. } | LinuxExit::ExternalInterrupt => {
                Flow::Resume
            }
        }
    }

    fn rdmsr(&mut self) -> Flow {
        let number = self.regs.rcx as u32;
        let policy = if number == X2APIC_LDR {
            // Bochs's x2APIC reads its LDR as 0; Linux's cluster mode would then address
            // every IPI to nobody. The LDR is architecturally derived from the x2APIC id.
            let id = self.linux.map.real_id(self.index).unwrap_or(0);
            MsrAction::Read(logical_id(id) as u64)
        } else {
            self.msrs.on_rdmsr(number)
        };
        let value = match policy {
            MsrAction::Read(v) => v,
            // SAFETY: the policy passes through only core-local MSRs that exist.
            MsrAction::PassThrough => unsafe { rdmsr(number) },
            MsrAction::Refuse(class) => {
                return self.health(class, &format_args!("RDMSR {number:#x} refused"));
            }
            _ => return inject(INJECT_GP),
        };
        self.regs.rax = value & 0xFFFF_FFFF;
        self.regs.rdx = value >> 32;
        Flow::Skip
    }

    fn wrmsr(&mut self) -> Flow {
        let number = self.regs.rcx as u32;
        let value = (self.regs.rdx << 32) | (self.regs.rax & 0xFFFF_FFFF);
        match self.msrs.on_wrmsr(number, value) {
            // SAFETY: the policy passes through only core-local MSRs with checked values.
            MsrAction::PassThrough => unsafe { wrmsr(number, value) },
            MsrAction::Ignore | MsrAction::Read(_) => {}
            MsrAction::WriteEfer(v) => {
                let lma = read(guest::IA32_EFER) & EFER_LMA;
                let _ = write(guest::IA32_EFER, (v & !EFER_LMA) | lma);
            }
            MsrAction::Icr(v) => return self.icr(v),
            MsrAction::InjectGp => return inject(INJECT_GP),
            MsrAction::Refuse(class) => {
                return self.health(class, &format_args!("WRMSR {number:#x} <- {value:#x} refused"));
            }
        }
        Flow::Skip
    }

    /// A write to the x2APIC ICR: IPIs to the partition's own cores go to the hardware,
    /// INIT and SIPI to the parked vCPUs' mailboxes.
    fn icr(&mut self, value: u64) -> Flow {
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
                    if self.trace_left > 0 {
                        hvlog!("trace {} vCPU {}: ICR {value:#x} -> {icr:#x}", self.p.name, self.index);
                    }
                    // SAFETY: the destination is one of this partition's cores (checked by
                    // `decide_icr`); this core is in x2APIC mode.
                    unsafe { wrmsr(0x830, icr) };
                }
            }
            IcrDecision::Init(targets) => {
                for t in targets.iter().filter(|&t| t != self.index) {
                    if let Some(mb) = self.linux.mailboxes.get(t) {
                        mb.init.store(true, Ordering::SeqCst);
                    }
                }
            }
            IcrDecision::Sipi { targets, vector } => {
                self.trace_left = TRACE_EXITS;
                for t in targets.iter().filter(|&t| t != self.index) {
                    if let Some(mb) = self.linux.mailboxes.get(t) {
                        if mb.init.load(Ordering::SeqCst) {
                            mb.sipi.store(0x100 | vector as u32, Ordering::SeqCst);
                        }
                    }
                }
            }
            IcrDecision::Ignore => {}
            IcrDecision::InjectGp => return inject(INJECT_GP),
            IcrDecision::Refuse(r) => {
                return self.health(r.class(), &format_args!("IPI refused (ICR {value:#x}): {r:?}"));
            }
        }
        Flow::Skip
    }

    fn io(&mut self, info: &ExitInfo) -> Flow {
        let q = IoQualification::decode(info.qualification);
        if q.string {
            // Linux's drivers here use IN/OUT only; a string access reads nothing and
            // writes nothing (like an absent device), and completes.
            if q.rep {
                self.regs.rcx = 0;
            }
            return Flow::Skip;
        }
        let out = q.direction == IoDirection::Out;
        let value = self.regs.rax as u32 & all_ones(q.size);
        match self.io.classify(&q, value as u64) {
            IoAction::PowerOff => {
                self.power_off("powered off");
                return Flow::Stop;
            }
            IoAction::ResetRequest => {
                self.power_off(
                    "asked for a reboot; Linux partitions are not restarted by this version, halted",
                );
                return Flow::Stop;
            }
            IoAction::Device => {}
        }
        let mut devices =
            LinuxPortDevices { p: self.p, linux: self.linux, marker_seen: &mut self.marker_seen };
        if out {
            self.ports.write(q.port, q.size, value, &mut devices);
        } else {
            let result = self.ports.read(q.port, q.size, &mut devices);
            self.regs.rax = merge_in(self.regs.rax, q.size, result);
        }
        Flow::Skip
    }

    /// An EPT violation in a range of the partition's MMIO bus: the access is emulated on
    /// the device, or it is the partition's memory violation.
    fn mmio(&mut self, info: &ExitInfo) -> Flow {
        let (cr0, efer) = (read(guest::CR0), read(guest::IA32_EFER));
        let exit = MmioExit {
            gpa: info.guest_physical,
            access: EptAccess::from_qualification(info.qualification),
            rip: info.guest_rip,
            cs_base: read(guest::CS_BASE),
            bitness: code_bitness(cr0, efer, read(guest::CS_ACCESS_RIGHTS) as u32),
            paging: Paging { cr0, cr3: read(guest::CR3), cr4: read(guest::CR4), efer },
        };
        let mut gprs: [u64; 16] = core::array::from_fn(|n| self.gpr(n as u8));
        match emulate(&self.linux.mmio, &exit, &PartitionRam(self.p), &mut gprs) {
            Ok(done) => {
                if let Some(n) = done.written_register {
                    self.set_gpr(n, gprs[usize::from(n)]);
                }
                Flow::Emulated { next_rip: done.next_rip }
            }
            Err(fault) => {
                self.health(EventClass::MemoryViolation, &format_args!("{}: {fault}", info.describe()))
            }
        }
    }

    fn set_gpr(&mut self, n: u8, value: u64) {
        let r = &mut self.regs;
        match n {
            0 => r.rax = value,
            1 => r.rcx = value,
            2 => r.rdx = value,
            3 => r.rbx = value,
            4 => {
                let _ = write(guest::RSP, value);
            }
            5 => r.rbp = value,
            6 => r.rsi = value,
            7 => r.rdi = value,
            8 => r.r8 = value,
            9 => r.r9 = value,
            10 => r.r10 = value,
            11 => r.r11 = value,
            12 => r.r12 = value,
            13 => r.r13 = value,
            14 => r.r14 = value,
            _ => r.r15 = value,
        }
    }

    fn gpr(&self, n: u8) -> u64 {
        let r = &self.regs;
        match n {
            0 => r.rax,
            1 => r.rcx,
            2 => r.rdx,
            3 => r.rbx,
            4 => read(guest::RSP),
            5 => r.rbp,
            6 => r.rsi,
            7 => r.rdi,
            8 => r.r8,
            9 => r.r9,
            10 => r.r10,
            11 => r.r11,
            12 => r.r12,
            13 => r.r13,
            14 => r.r14,
            _ => r.r15,
        }
    }

    fn cr_write(&mut self, q: CrAccessQualification) -> Flow {
        let caps = &self.m.caps;
        let update = match (q.cr, q.access_type) {
            (0, 0) => cr0_write(caps, self.gpr(q.gpr)),
            (0, _) => {
                // LMSW: bits 0-3 from the source operand; it can set PE but never clear it.
                let shadow = read(control::CR0_READ_SHADOW);
                let source = read(exit_info::EXIT_QUALIFICATION) >> 16 & 0xF;
                cr0_write(caps, (shadow & !0xE) | source)
            }
            _ => cr4_write(caps, self.gpr(q.gpr)),
        };
        let CrWrite::Update { guest: value, shadow } = update else {
            return inject(INJECT_GP);
        };
        if q.cr == 0 {
            let old = read(guest::CR0);
            let efer = read(guest::IA32_EFER);
            // Paging switched on with EFER.LME: the guest enters long mode (a secondary
            // vCPU's trampoline); off: leaves it.
            if value & CR0_PG != 0 && old & CR0_PG == 0 && efer & EFER_LME != 0 {
                let _ = write(guest::IA32_EFER, efer | EFER_LMA);
                let ctl = read(control::ENTRY_CONTROLS) | entry_ctl::IA32E_MODE_GUEST as u64;
                let _ = write(control::ENTRY_CONTROLS, ctl);
            } else if value & CR0_PG == 0 && old & CR0_PG != 0 {
                let _ = write(guest::IA32_EFER, efer & !EFER_LMA);
                let ctl = read(control::ENTRY_CONTROLS) & !(entry_ctl::IA32E_MODE_GUEST as u64);
                let _ = write(control::ENTRY_CONTROLS, ctl);
            }
            let _ = write(guest::CR0, value);
            let _ = write(control::CR0_READ_SHADOW, shadow);
        } else {
            let _ = write(guest::CR4, value);
            let _ = write(control::CR4_READ_SHADOW, shadow);
        }
        Flow::Skip
    }

    /// XSETBV for XCR0 with a value the CPU supports (x87 always on, AVX only with SSE).
    fn xsetbv(&mut self) -> Flow {
        let value = (self.regs.rdx << 32) | (self.regs.rax & 0xFFFF_FFFF);
        let leaf = cpu::cpuid(0xD, 0);
        let supported = (leaf.edx as u64) << 32 | leaf.eax as u64;
        let valid = self.regs.rcx as u32 == 0
            && value & 1 != 0
            && value & !supported == 0
            && (value & 4 == 0 || value & 2 != 0);
        if !valid {
            return inject(INJECT_GP);
        }
        // SAFETY: XCR0 is validated against CPUID leaf 0xD; the host set CR4.OSXSAVE.
        unsafe {
            core::arch::asm!("xsetbv", in("ecx") 0u32, in("eax") value as u32, in("edx") (value >> 32) as u32)
        };
        Flow::Skip
    }

    /// Logs a health event and applies the partition's action. A Linux partition cannot be
    /// reloaded (its kernel is not kept in memory): restart becomes halt.
    fn health(&mut self, class: EventClass, what: &dyn fmt::Display) -> Flow {
        let p = self.p;
        let mut decision = p.health.lock().decide(&p.actions, class, self.m.now_ns());
        if decision.action == Action::RestartPartition {
            decision.action = Action::HaltPartition;
        }
        crate::console::flush_partition(p);
        crate::hvlog_for!(p, "{}", decision.report(&p.name, what));
        let continuable = matches!(class, EventClass::IoViolation | EventClass::MsrViolation);
        match decision.action {
            Action::Log if continuable => inject(INJECT_GP),
            Action::HaltSystem => {
                hvlog!("system halted by the health monitor (partition {})", p.name);
                crate::power::power_off_runtime()
            }
            _ => {
                super::stats::print_exit_counts(self.m, self.linux, &p.name, "halted");
                stop_partition(self.linux, p);
                Flow::Stop
            }
        }
    }

    fn power_off(&mut self, what: &str) {
        let p = self.p;
        crate::console::flush_partition(p);
        stop_partition(self.linux, p);
        super::stats::print_exit_counts(self.m, self.linux, &p.name, what);
        crate::hvlog_for!(p, "partition {}: {what}", p.name);
    }
}

/// Injects a hardware exception at the next entry (RIP stays on the instruction).
fn inject(info: u64) -> Flow {
    let _ = write(control::ENTRY_INTERRUPTION_INFO, info);
    if info & (1 << 11) != 0 {
        let _ = write(control::ENTRY_EXCEPTION_ERROR_CODE, 0);
    }
    Flow::Resume
}
