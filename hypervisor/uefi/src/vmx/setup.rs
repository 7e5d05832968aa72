//! VMX set-up: VMXON on a core, and a VMCS for each kind of vCPU (controls, bitmaps, host
//! state, the guest's entry state). The values come from hallows-core's plans
//! (`vmx_caps`, `guest_state`, `linux_vcpu::ap_start`); this only writes them.

use alloc::format;
use alloc::string::String;

use hallows_abi::layout::{stack_top, BOOT_INFO_GPA, PAGE_TABLES_GPA};
use hallows_core::control_regs;
use hallows_core::linux_vcpu::ap_start::{boot_entry_state, linux_cr_masks, sipi_start_state};
use hallows_core::vmx::caps::{msr, VmxControls};
use hallows_core::vmx::controls_plan::{linux_controls, rt_controls, VcpuTables};
use hallows_core::vmx::guest_state::{rt_guest_state, GuestEntry};
use legacy_linux::setup::EntryState;

use super::{GuestRegs, VmFail};
use crate::cpu::{self, rdmsr};
use crate::host::CoreTables;
use crate::machine::Machine;
use crate::memory;
use x86::msr::IA32_PAT;

fn write(field: u32, value: u64) -> Result<(), String> {
    // SAFETY: every value is computed by the hypervisor from the partition's own resources
    // (EPT, bitmaps, boot plan) or the host's state.
    unsafe { super::vmwrite(field, value) }.map_err(|e: VmFail| format!("VMWRITE {field:#x}: {e}"))
}

fn write_all(fields: impl IntoIterator<Item = (u32, u64)>) -> Result<(), String> {
    fields.into_iter().try_for_each(|(field, value)| write(field, value))
}

/// Sets CR4.VMXE, applies the VMX fixed bits and executes VMXON.
pub fn enable(m: &Machine) -> Result<(), String> {
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
    let region = new_control_block(m);
    // SAFETY: VMXE is set, CR0/CR4 are fixed, `region` is this core's VMXON page.
    unsafe { super::vmxon(region) }.map_err(|e| format!("VMXON failed: {e}"))
}

/// A zeroed page carrying the VMCS revision id.
pub fn new_control_block(m: &Machine) -> u64 {
    let page = memory::alloc_pages(1);
    // SAFETY: a fresh page owned by this core.
    unsafe { *(page as *mut u32) = m.caps.revision_id() };
    page
}

/// Clears the VMCS at `vmcs` and makes it current.
fn fresh(vmcs: u64) -> Result<(), String> {
    // SAFETY: the VMCS page carries the revision id and belongs to this core.
    unsafe { super::vmclear(vmcs).and_then(|_| super::vmptrld(vmcs)) }.map_err(|e| format!("{e}"))
}

/// Writes an RT vCPU's VMCS from scratch (controls, host state, guest entry state) and
/// returns its registers at the first instruction. `scheduled`: the core runs a cyclic
/// schedule (the VMX-preemption timer ends windows); a dedicated core needs no timer.
pub fn rt_vcpu(
    m: &Machine,
    tables: &CoreTables,
    vmcs: u64,
    partition: usize,
    vcpu: u32,
    scheduled: bool,
) -> Result<GuestRegs, String> {
    let p = &m.partitions[partition];
    fresh(vmcs)?;
    let entry =
        GuestEntry { rip: p.entry.get(), rsp: stack_top(p.ram_bytes, vcpu as u64), cr3: PAGE_TABLES_GPA };
    let plan = rt_guest_state(&m.caps, entry);
    let vcpu_tables =
        VcpuTables { partition, io_bitmaps: m.io_bitmaps[partition], msr_bitmap: m.msr_bitmap, eptp: p.eptp };
    let fields = rt_controls(&m.controls, &vcpu_tables, scheduled);
    // SAFETY: IA32_EFER exists on every x86-64 CPU.
    let host_efer = unsafe { rdmsr(msr::IA32_EFER) };
    write_all(fields.into_iter().chain(crate::host::vmcs_host_state(tables, m.host_cr3, host_efer)))?;
    write_all(plan.writes().iter().map(|w| (w.field, w.value)))?;
    Ok(GuestRegs::for_entry(BOOT_INFO_GPA, vcpu as u64))
}

/// Writes a Linux vCPU's controls, bitmaps and host state into a fresh VMCS at `vmcs`
/// (made current). `msr_bitmap` is the vCPU's own page, filled by the caller's policy.
pub fn linux_vcpu(
    m: &Machine,
    tables: &CoreTables,
    vmcs: u64,
    partition: usize,
    controls: &VmxControls,
    msr_bitmap: u64,
) -> Result<(), String> {
    fresh(vmcs)?;
    // The guest's XSETBV is executed here on its behalf: the host needs OSXSAVE.
    if cpu::cpuid(1, 0).ecx & (1 << 26) != 0 {
        // SAFETY: the CPU supports XSAVE, so CR4.OSXSAVE may be set.
        unsafe { cpu::write_cr4(cpu::read_cr4() | control_regs::cr4::OSXSAVE) };
    }
    let p = &m.partitions[partition];
    let vcpu_tables = VcpuTables { partition, io_bitmaps: m.io_bitmaps[partition], msr_bitmap, eptp: p.eptp };
    // SAFETY: IA32_EFER and IA32_PAT exist on every x86-64 CPU with VMX.
    let (host_efer, host_pat) = unsafe { (rdmsr(msr::IA32_EFER), rdmsr(IA32_PAT)) };
    let fields = linux_controls(controls, &vcpu_tables, linux_cr_masks(&m.caps), host_pat);
    write_all(fields.into_iter().chain(crate::host::vmcs_host_state(tables, m.host_cr3, host_efer)))
}

/// The Linux boot vCPU's entry state: the reset-like state of a SIPI, overridden by the
/// boot plan's 64-bit entry state. Returns its registers.
pub fn linux_boot_entry(m: &Machine, controls: &VmxControls, e: &EntryState) -> Result<GuestRegs, String> {
    let plan = boot_entry_state(&m.caps, controls.entry, e);
    write_all(plan.writes().iter().map(|w| (w.field, w.value)))?;
    Ok(GuestRegs { rsi: e.rsi, rbx: e.rbx, ..GuestRegs::default() })
}

/// A secondary Linux vCPU started by a SIPI with `vector`: real mode at vector * 4 KiB
/// (unrestricted guest). Returns its registers.
pub fn linux_sipi_entry(m: &Machine, controls: &VmxControls, vector: u8) -> Result<GuestRegs, String> {
    write_all(sipi_start_state(&m.caps, controls.entry, vector).writes().iter().map(|w| (w.field, w.value)))?;
    Ok(GuestRegs::default())
}
