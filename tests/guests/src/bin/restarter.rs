//! `restarter`: after a short delay, asks the hypervisor to restart partition 1
//! (hypercall `RestartPartition` with flags 0, a plain restart; it needs the `restart`
//! privilege), reports the status on its console, then halts (hypercall `Halt`).
#![no_std]
#![no_main]

core::arch::global_asm!(
    r#"
.section .text._start, "ax"
.global _start
_start:
    mov ecx, 30000000
2:
    dec ecx
    jnz 2b
    lea rdi, [rip + asking]
    mov esi, 47
    mov eax, 2
    vmcall
    mov edi, 1
    xor esi, esi
    mov eax, 7
    vmcall
    lea rdi, [rip + status]
    add byte ptr [rdi + 18], al
    mov esi, 20
    mov eax, 2
    vmcall
    xor edi, edi
    mov eax, 8
    vmcall
3:
    jmp 3b

.section .data
asking:
    .ascii "restarter: asking for a restart of partition 1\n"
status:
    .ascii "restarter: status "
    .ascii "0\n"
"#
);

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    loop {}
}
