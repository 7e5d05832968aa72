//! Starting the application processors with INIT-SIPI-SIPI after ExitBootServices. The
//! real-mode trampoline is copied to a page below 1 MiB reserved while the firmware still
//! ran; it switches straight to long mode on the hypervisor's page tables and calls
//! [`ap_entry`] on a fresh stack.

use crate::apic::Apic;
use core::arch::global_asm;
use core::sync::atomic::{AtomicBool, Ordering};

use alloc::string::String;
use uefi::boot::{self, AllocateType, MemoryType};

use crate::cpu;
use crate::machine::machine;
use crate::{hvlog, memory, run};

/// Stack bytes per application processor.
const AP_STACK_BYTES: usize = 64 * 1024;

unsafe extern "sysv64" {
    static hv_ap_trampoline: u8;
    static hv_ap_trampoline_end: u8;
    static hv_ap_gdtr: u8;
    static hv_ap_farptr: u8;
    static hv_ap_long: u8;
    static hv_ap_gdt: u8;
    static hv_ap_cr3: u8;
    static hv_ap_stack: u8;
    static hv_ap_arg: u8;
    static hv_ap_entry: u8;
}

global_asm!(
    r#"
.section .text.hv_ap, "ax"
.balign 16
.global hv_ap_trampoline, hv_ap_trampoline_end, hv_ap_gdtr, hv_ap_farptr, hv_ap_long
.global hv_ap_gdt, hv_ap_cr3, hv_ap_stack, hv_ap_arg, hv_ap_entry
.code16
hv_ap_trampoline:
    cli
    cld
    movw %cs, %ax
    movw %ax, %ds
    lgdtl (hv_ap_gdtr - hv_ap_trampoline)
    movl (hv_ap_cr3 - hv_ap_trampoline), %eax
    movl %eax, %cr3
    movl %cr4, %eax
    orl $0x20, %eax
    movl %eax, %cr4
    movl $0xC0000080, %ecx
    rdmsr
    orl $0x900, %eax
    wrmsr
    movl %cr0, %eax
    orl $0x80000001, %eax
    movl %eax, %cr0
    ljmpl *(hv_ap_farptr - hv_ap_trampoline)
.code64
hv_ap_long:
    movw $0x10, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    movq hv_ap_stack(%rip), %rsp
    movq hv_ap_arg(%rip), %rdi
    movq hv_ap_entry(%rip), %rax
    call *%rax
1:  hlt
    jmp 1b
.balign 8
hv_ap_gdt:
    .quad 0
    .quad 0x00af9b000000ffff
    .quad 0x00cf93000000ffff
hv_ap_gdtr:
    .word 23
    .long 0
    .word 0
hv_ap_farptr:
    .long 0
    .word 0x08
    .word 0
hv_ap_cr3:
    .long 0
    .long 0
hv_ap_stack:
    .quad 0
hv_ap_arg:
    .quad 0
hv_ap_entry:
    .quad 0
hv_ap_trampoline_end:
.text
"#,
    options(att_syntax)
);

/// Set by an AP once it runs on its own stack (the trampoline page may then be reused).
static AP_STARTED: AtomicBool = AtomicBool::new(false);

/// Reserves the trampoline page below 1 MiB (while boot services run).
pub fn reserve_trampoline(_firmware: &crate::boot::BootServices) -> Result<u64, String> {
    boot::allocate_pages(AllocateType::MaxAddress(0x9_f000), MemoryType::LOADER_DATA, 1)
        .map(|p| p.as_ptr() as u64)
        .map_err(|e| alloc::format!("no free page below 1 MiB for the AP trampoline: {e:?}"))
}

fn sym(s: &u8) -> u64 {
    s as *const u8 as u64
}

/// Writes `value` (`bytes` wide) at the trampoline copy's offset of symbol `s`.
fn patch(page: u64, s: &u8, value: u64, bytes: usize) {
    // SAFETY: the symbols lie inside the trampoline, so the offset is inside the page the
    // trampoline was copied to, which the hypervisor owns.
    let start = unsafe { sym(&hv_ap_trampoline) };
    let at = (page + sym(s) - start) as *mut u8;
    // SAFETY: as above.
    unsafe { core::ptr::copy_nonoverlapping(value.to_le_bytes().as_ptr(), at, bytes) };
}

extern "sysv64" fn ap_entry(core: u64) -> ! {
    AP_STARTED.store(true, Ordering::SeqCst);
    // The masks are per package: every core writes them before its first VM entry.
    crate::cache_alloc::program_this_core();
    run::core_main(core as usize)
}

/// Masks the boot core's local APIC timer and the legacy PICs.
pub fn quiet_interrupts() {
    Apic::new().mask_timer();
    cpu::outb(0x21, 0xff);
    cpu::outb(0xa1, 0xff);
}

fn delay_us(us: u64) {
    let m = machine();
    let end = cpu::rdtsc() + m.ns_to_ticks(us * 1000);
    while cpu::rdtsc() < end {
        cpu::pause();
    }
}

/// Starts every application processor the table uses, one after the other.
pub fn start_all(page: u64) {
    let m = machine();
    if m.cores.len() <= 1 {
        return;
    }
    // SAFETY: the trampoline symbols delimit the code copied below.
    let (start, end) = unsafe { (sym(&hv_ap_trampoline), sym(&hv_ap_trampoline_end)) };
    // SAFETY: `page` is the page below 1 MiB reserved for the trampoline.
    unsafe { core::ptr::copy_nonoverlapping(start as *const u8, page as *mut u8, (end - start) as usize) };
    // SAFETY: symbol addresses only.
    unsafe {
        let off = |s: &u8| page + sym(s) - start;
        patch(page, &hv_ap_gdtr, off(&hv_ap_gdt) << 16 | 23, 6);
        patch(page, &hv_ap_farptr, off(&hv_ap_long), 4);
        patch(page, &hv_ap_cr3, m.host_cr3, 4);
        patch(page, &hv_ap_entry, ap_entry as *const () as usize as u64, 8);
    }
    let apic = Apic::new();
    let vector = (page >> 12) as u32;
    for (core, plan) in m.cores.iter().enumerate().skip(1) {
        let stack = memory::alloc_pages(AP_STACK_BYTES / 4096) + AP_STACK_BYTES as u64;
        // SAFETY: symbol addresses only.
        unsafe {
            patch(page, &hv_ap_stack, stack, 8);
            patch(page, &hv_ap_arg, core as u64, 8);
        }
        AP_STARTED.store(false, Ordering::SeqCst);
        apic.send_ipi(plan.apic_id, 0x4500); // INIT, assert
        delay_us(10_000);
        apic.send_ipi(plan.apic_id, 0x4600 | vector); // start-up
        delay_us(200);
        if !AP_STARTED.load(Ordering::SeqCst) {
            apic.send_ipi(plan.apic_id, 0x4600 | vector);
        }
        let deadline = cpu::rdtsc() + m.ns_to_ticks(1_000_000_000);
        while !AP_STARTED.load(Ordering::SeqCst) && cpu::rdtsc() < deadline {
            cpu::pause();
        }
        if !AP_STARTED.load(Ordering::SeqCst) {
            hvlog!("core {core} (APIC id {}) did not start; its partitions do not run", plan.apic_id);
        }
    }
}
