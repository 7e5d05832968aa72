//! `clean-restarter`: acts for an operator on partition 1 (tests/run `persistent`). With
//! the `restart` privilege it calls `RestartPartition(1, flags)` three times, each after a
//! pause long enough for partition 1 to settle, and reports each status on its console:
//! 1. after 2.5 s, flags = 2 (a bit no hypervisor knows): refused, status 4, nothing
//!    restarted;
//! 2. after 1.5 s more, flags = 0: a plain restart, which keeps the persistent region;
//! 3. after 1.5 s more, flags = 1 (`RESTART_CLEAN`): a clean restart, which zeroes it.
//!
//! Then it halts. The pauses are measured on the hypervisor's clock (`TimeNow`, then
//! `Yield(until)`), not by counting instructions, so the emulator's speed does not matter.
#![no_std]
#![no_main]

core::arch::global_asm!(
    r#"
.section .text._start, "ax"
.global _start
_start:
    mov rbx, 2500000000
    call pause_for
    mov esi, 2
    lea r12, [rip + unknown]
    mov r13d, 39
    call restart

    mov rbx, 1500000000
    call pause_for
    xor esi, esi
    lea r12, [rip + plain]
    mov r13d, 32
    call restart

    mov rbx, 1500000000
    call pause_for
    mov esi, 1
    lea r12, [rip + clean]
    mov r13d, 32
    call restart

    xor edi, edi
    mov eax, 8
    vmcall
2:
    jmp 2b

/* Waits rbx nanoseconds on the hypervisor's clock. */
pause_for:
    mov eax, 4
    vmcall
    lea rdi, [rdx + rbx]
3:
    mov eax, 3
    vmcall
    mov eax, 4
    vmcall
    cmp rdx, rdi
    jb 3b
    ret

/* RestartPartition(1, rsi), then prints the r13-byte line at r12 with the status digit
   put in its second-last byte. */
restart:
    mov edi, 1
    mov eax, 7
    vmcall
    add al, '0'
    mov byte ptr [r12 + r13 - 2], al
    mov rdi, r12
    mov rsi, r13
    mov eax, 2
    vmcall
    ret

.section .data
unknown:
    .ascii "clean-restarter: unknown flag status ?\n"
plain:
    .ascii "clean-restarter: plain status ?\n"
clean:
    .ascii "clean-restarter: clean status ?\n"
"#
);

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    loop {}
}
