//! VMX instructions: VMXON, VMCLEAR, VMPTRLD, VMREAD, VMWRITE, INVEPT, and the VM entry /
//! exit path that swaps the guest's general-purpose registers.

use core::arch::{asm, global_asm};

use hallows_core::vmx::vmcs;
pub use hallows_core::vmx::vmcs::VmFail;

pub use hallows_core::hypercall::GuestRegs;

pub mod backend;
pub mod setup;

fn check(flags_ok: bool) -> Result<(), VmFail> {
    if flags_ok {
        Ok(())
    } else {
        Err(VmFail(vmread(vmcs::exit_info::VM_INSTRUCTION_ERROR).unwrap_or(0) as u32))
    }
}

/// Enters VMX root operation with the VMXON region at `hpa`.
///
/// # Safety
/// CR4.VMXE must be set, CR0/CR4 must satisfy the VMX fixed bits, and `hpa` must be a
/// 4 KiB page holding the VMCS revision id, used by this core only.
pub unsafe fn vmxon(hpa: u64) -> Result<(), VmFail> {
    let ok: u8;
    // SAFETY: per the caller's contract.
    unsafe { asm!("vmxon [{}]", "setna {}", in(reg) &hpa, out(reg_byte) ok) };
    if ok == 0 {
        Ok(())
    } else {
        Err(VmFail(0))
    }
}

/// Clears the VMCS at `hpa` (makes it inactive and launch state "clear").
///
/// # Safety
/// `hpa` must be a VMCS region (revision id written) owned by this core.
pub unsafe fn vmclear(hpa: u64) -> Result<(), VmFail> {
    let fail: u8;
    // SAFETY: per the caller's contract.
    unsafe { asm!("vmclear [{}]", "setna {}", in(reg) &hpa, out(reg_byte) fail) };
    check(fail == 0)
}

/// Makes the VMCS at `hpa` current on this core.
///
/// # Safety
/// As for [`vmclear`].
pub unsafe fn vmptrld(hpa: u64) -> Result<(), VmFail> {
    let fail: u8;
    // SAFETY: per the caller's contract.
    unsafe { asm!("vmptrld [{}]", "setna {}", in(reg) &hpa, out(reg_byte) fail) };
    check(fail == 0)
}

/// Reads a field of the current VMCS.
pub fn vmread(field: u32) -> Result<u64, VmFail> {
    let value: u64;
    let fail: u8;
    // SAFETY: VMREAD only reads the current VMCS; failure is reported in the flags.
    unsafe { asm!("vmread {}, {}", "setna {}", out(reg) value, in(reg) field as u64, out(reg_byte) fail) };
    if fail == 0 {
        Ok(value)
    } else {
        Err(VmFail(0))
    }
}

/// Writes a field of the current VMCS.
///
/// # Safety
/// The value must not let the guest escape its partition (the caller computes it from the
/// partition's own resources).
pub unsafe fn vmwrite(field: u32, value: u64) -> Result<(), VmFail> {
    let fail: u8;
    // SAFETY: per the caller's contract.
    unsafe { asm!("vmwrite {}, {}", "setna {}", in(reg) field as u64, in(reg) value, out(reg_byte) fail) };
    check(fail == 0)
}

unsafe extern "sysv64" {
    /// Loads the guest registers and executes VMLAUNCH (`launched == 0`) or VMRESUME.
    /// Returns 0 after a VM exit (registers saved back), 1 when the instruction failed.
    fn hv_vm_enter(regs: *mut GuestRegs, launched: u64) -> u64;
    /// Where the CPU continues after every VM exit (the VMCS host RIP).
    fn hv_vm_exit();
}

/// Host RIP for the VMCS.
pub fn exit_entry_point() -> u64 {
    hv_vm_exit as *const () as usize as u64
}

/// Runs the current VMCS's guest until the next VM exit.
///
/// # Safety
/// The current VMCS must be fully initialised for a guest of the partition `regs`
/// belongs to.
pub unsafe fn enter(regs: &mut GuestRegs, launched: bool) -> Result<(), VmFail> {
    // SAFETY: per the caller's contract; the stub saves and restores callee-saved registers.
    let failed = unsafe { hv_vm_enter(regs, launched as u64) };
    check(failed == 0)
}

global_asm!(
    r#"
.section .text.hv_vmx, "ax"
.global hv_vm_enter
hv_vm_enter:
    push rbp
    push rbx
    push r12
    push r13
    push r14
    push r15
    push rdi
    mov rax, 0x6C14
    vmwrite rax, rsp
    test rsi, rsi
    mov rax, [rdi + 0]
    mov rbx, [rdi + 24]
    mov rcx, [rdi + 8]
    mov rdx, [rdi + 16]
    mov rsi, [rdi + 40]
    mov rbp, [rdi + 32]
    mov r8, [rdi + 56]
    mov r9, [rdi + 64]
    mov r10, [rdi + 72]
    mov r11, [rdi + 80]
    mov r12, [rdi + 88]
    mov r13, [rdi + 96]
    mov r14, [rdi + 104]
    mov r15, [rdi + 112]
    mov rdi, [rdi + 48]
    jnz 2f
    vmlaunch
    jmp 3f
2:
    vmresume
3:
    pop rdi
    pop r15
    pop r14
    pop r13
    pop r12
    pop rbx
    pop rbp
    mov eax, 1
    ret

.global hv_vm_exit
hv_vm_exit:
    push rdi
    mov rdi, [rsp + 8]
    mov [rdi + 0], rax
    mov [rdi + 24], rbx
    mov [rdi + 8], rcx
    mov [rdi + 16], rdx
    mov [rdi + 40], rsi
    mov [rdi + 32], rbp
    mov [rdi + 56], r8
    mov [rdi + 64], r9
    mov [rdi + 72], r10
    mov [rdi + 80], r11
    mov [rdi + 88], r12
    mov [rdi + 96], r13
    mov [rdi + 104], r14
    mov [rdi + 112], r15
    pop rax
    mov [rdi + 48], rax
    pop rdi
    pop r15
    pop r14
    pop r13
    pop r12
    pop rbx
    pop rbp
    xor eax, eax
    ret
"#
);
