//! The vendor seam: everything the per-core loop (`run`) needs from the processor's
//! virtualization extension. Intel VMX implements it in `vmx::backend`; an AMD SVM
//! backend is a second implementation beside it (`svm/`), and the loop, the decisions
//! (`hallows_core::vcpu`) and the device buses stay as they are.
//!
//! What differs between vendors is data and translation: where the guest's registers and
//! control registers live (VMCS fields, VMCB offsets), how an exit is read and described
//! (`hallows_core::vmx::translate` into an arch-neutral `Exit`), how an exception is
//! injected and how a time slice is armed.

use core::fmt;

use hallows_core::vcpu::{Exception, Exit};
use hallows_vmm::guest_memory::Paging;

use crate::vmx::GuestRegs;

/// One exit as the loop sees it.
#[derive(Clone, Copy, Debug)]
pub struct ExitRecord {
    pub exit: Exit,
    /// Guest RIP of the exiting instruction (0 for a hypercall: its fast path reads no
    /// more than the exit code).
    pub rip: u64,
}

/// What the MMIO path needs to fetch and decode the instruction at RIP.
#[derive(Clone, Copy, Debug)]
pub struct CodeContext {
    pub cs_base: u64,
    /// 16, 32 or 64 (`hallows_vmm::mmio_bus::code_bitness`).
    pub bitness: u32,
    pub paging: Paging,
}

/// Control registers the loop reads and writes on a guest's behalf.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Control {
    Cr0,
    Cr4,
}

/// A processor's virtualization extension, as the per-core loop uses it. Every function
/// works on the vCPU made current with [`Backend::make_current`].
pub trait Backend {
    /// A failed instruction of the extension (VMfail, ...), printable for the console.
    type Fail: fmt::Display;

    /// Makes the vCPU whose control block is at `control` (VMCS, VMCB) current on this core.
    fn make_current(control: u64) -> Result<(), Self::Fail>;

    /// Runs the current vCPU until its next exit; `regs` are swapped in and out.
    ///
    /// # Safety
    /// The current vCPU's control block must be fully set up for the partition `regs`
    /// belong to.
    unsafe fn enter(regs: &mut GuestRegs, launched: bool) -> Result<(), Self::Fail>;

    /// Reads and describes the exit that just happened.
    fn exit(regs: &GuestRegs) -> ExitRecord;

    /// The vendor's code of that exit (counted per reason for a Linux partition's
    /// statistics).
    fn exit_code() -> u16;

    /// Advances RIP past the exiting instruction.
    fn skip_instruction() -> Result<(), Self::Fail>;

    /// Ends an STI/MOV-SS interrupt shadow, as executing the next instruction would (after
    /// an instruction the hypervisor completed for a guest that takes interrupts: Linux;
    /// real-time partitions take none, so their hot path skips it).
    fn end_interrupt_shadow() -> Result<(), Self::Fail>;

    /// Continues at `rip` (an instruction the hypervisor emulated), shadow ended.
    fn continue_at(rip: u64) -> Result<(), Self::Fail>;

    /// The exception is delivered at the next entry; RIP stays on the instruction.
    fn inject(exception: Exception) -> Result<(), Self::Fail>;

    /// Arms the time-slice timer to expire after `ticks` TSC ticks of guest time.
    fn arm_timer(ticks: u64) -> Result<(), Self::Fail>;

    fn rsp() -> u64;
    fn set_rsp(value: u64) -> Result<(), Self::Fail>;

    /// The guest's control register as the processor uses it, and as the guest reads it
    /// (the shadow of the bits the hypervisor owns).
    fn control(which: Control) -> (u64, u64);
    fn set_control(which: Control, real: u64, shadow: u64) -> Result<(), Self::Fail>;

    fn efer() -> u64;
    /// Sets EFER and whether the guest runs in IA-32e (long) mode from the next entry.
    fn set_efer(efer: u64, long_mode: bool) -> Result<(), Self::Fail>;

    /// The guest's code segment and paging mode, for fetching the instruction at RIP.
    fn code_context() -> CodeContext;

    /// An NMI (another core's "look at your requests") just caused a VM exit: leaves the
    /// core able to take the next one, whether or not it enters a guest again (a core
    /// that halts a partition and then idles must still be woken by a later NMI).
    fn nmi_exit_done();
}
