//! Intel VMX behind the vendor seam ([`crate::arch::Backend`]): VMCS fields in, arch-neutral
//! exits out (`hallows_core::vmx::translate`).

use hallows_core::vcpu::{Exception, Exit};
use hallows_core::vmx::caps::entry as entry_ctl;
use hallows_core::vmx::exit::ExitInfo;
use hallows_core::vmx::translate::{injection, translate};
use hallows_core::vmx::vmcs::{control, exit_info, guest};
use hallows_vmm::guest_memory::Paging;
use hallows_vmm::mmio_bus::code_bitness;

use super::{GuestRegs, VmFail};
use crate::arch::{Backend, CodeContext, Control, ExitRecord};

/// Basic exit reason of VMCALL (SDM appendix C).
const EXIT_REASON_VMCALL: u32 = 18;
/// Guest interruptibility state: blocking by STI and by MOV SS.
const BLOCKING_BY_STI_OR_MOV_SS: u64 = 3;

/// Intel VT-x.
pub struct Vmx;

fn read(field: u32) -> u64 {
    super::vmread(field).unwrap_or(0)
}

fn write(field: u32, value: u64) -> Result<(), VmFail> {
    // SAFETY: the loop writes guest-state and entry fields of the current VMCS with values
    // computed by the hypervisor (checked guest requests, its own plans).
    unsafe { super::vmwrite(field, value) }
}

impl Backend for Vmx {
    type Fail = VmFail;

    fn make_current(control: u64) -> Result<(), VmFail> {
        // SAFETY: `control` is a VMCS region this core initialised (`vmx::setup`).
        unsafe { super::vmptrld(control) }
    }

    unsafe fn enter(regs: &mut GuestRegs, launched: bool) -> Result<(), VmFail> {
        // SAFETY: per the trait's contract.
        unsafe { super::enter(regs, launched) }
    }

    fn exit(regs: &GuestRegs) -> ExitRecord {
        let reason = read(exit_info::EXIT_REASON) as u32;
        // Fast path: a hypercall needs no other exit field.
        if reason == EXIT_REASON_VMCALL {
            return ExitRecord { exit: Exit::Hypercall, rip: 0 };
        }
        let info = ExitInfo {
            reason,
            qualification: read(exit_info::EXIT_QUALIFICATION),
            guest_rip: read(guest::RIP),
            guest_physical: read(exit_info::GUEST_PHYSICAL_ADDRESS),
            guest_linear: 0,
            interruption_info: read(exit_info::INTERRUPTION_INFO) as u32,
            instruction_len: 0,
            rcx: regs.rcx,
        };
        ExitRecord { exit: translate(&info, regs, Self::rsp), rip: info.guest_rip }
    }

    fn exit_code() -> u16 {
        read(exit_info::EXIT_REASON) as u16
    }

    fn skip_instruction() -> Result<(), VmFail> {
        write(guest::RIP, read(guest::RIP).wrapping_add(read(exit_info::INSTRUCTION_LEN)))
    }

    fn continue_at(rip: u64) -> Result<(), VmFail> {
        write(guest::RIP, rip)?;
        Self::end_interrupt_shadow()
    }

    fn nmi_exit_done() {
        // A VM exit caused by an NMI leaves NMIs blocked in VMX root operation until the
        // next IRET; the hypervisor's own NMI handler never runs for it.
        crate::cpu::unblock_nmi();
    }

    fn end_interrupt_shadow() -> Result<(), VmFail> {
        let blocking = read(guest::INTERRUPTIBILITY_STATE);
        if blocking & BLOCKING_BY_STI_OR_MOV_SS != 0 {
            write(guest::INTERRUPTIBILITY_STATE, blocking & !BLOCKING_BY_STI_OR_MOV_SS)?;
        }
        Ok(())
    }

    fn inject(exception: Exception) -> Result<(), VmFail> {
        write(control::ENTRY_INTERRUPTION_INFO, injection(exception) as u64)?;
        if exception.has_error_code() {
            write(control::ENTRY_EXCEPTION_ERROR_CODE, 0)?;
        }
        Ok(())
    }

    fn arm_timer(value: u64) -> Result<(), VmFail> {
        write(guest::PREEMPTION_TIMER_VALUE, value)
    }

    fn rsp() -> u64 {
        read(guest::RSP)
    }

    fn set_rsp(value: u64) -> Result<(), VmFail> {
        write(guest::RSP, value)
    }

    fn control(which: Control) -> (u64, u64) {
        match which {
            Control::Cr0 => (read(guest::CR0), read(control::CR0_READ_SHADOW)),
            Control::Cr4 => (read(guest::CR4), read(control::CR4_READ_SHADOW)),
        }
    }

    fn set_control(which: Control, real: u64, shadow: u64) -> Result<(), VmFail> {
        let (real_field, shadow_field) = match which {
            Control::Cr0 => (guest::CR0, control::CR0_READ_SHADOW),
            Control::Cr4 => (guest::CR4, control::CR4_READ_SHADOW),
        };
        write(real_field, real)?;
        write(shadow_field, shadow)
    }

    fn efer() -> u64 {
        read(guest::IA32_EFER)
    }

    fn set_efer(efer: u64, long_mode: bool) -> Result<(), VmFail> {
        write(guest::IA32_EFER, efer)?;
        let entry = read(control::ENTRY_CONTROLS);
        let ia32e = entry_ctl::IA32E_MODE_GUEST as u64;
        let wanted = if long_mode { entry | ia32e } else { entry & !ia32e };
        if wanted != entry {
            write(control::ENTRY_CONTROLS, wanted)?;
        }
        Ok(())
    }

    fn code_context() -> CodeContext {
        let (cr0, efer) = (read(guest::CR0), read(guest::IA32_EFER));
        CodeContext {
            cs_base: read(guest::CS_BASE),
            bitness: code_bitness(cr0, efer, read(guest::CS_ACCESS_RIGHTS) as u32),
            paging: Paging { cr0, cr3: read(guest::CR3), cr4: read(guest::CR4), efer },
        }
    }
}
