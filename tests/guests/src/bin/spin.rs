//! `spin`: computes forever (a counter in a register) and never leaves the guest.
#![no_std]
#![no_main]

core::arch::global_asm!(
    r#"
.section .text._start, "ax"
.global _start
_start:
    xor eax, eax
2:
    add rax, 1
    jmp 2b
"#
);

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    loop {}
}
