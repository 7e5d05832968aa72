//! The hypervisor's own execution environment, replacing the firmware's after
//! ExitBootServices: identity page tables, a GDT with a TSS per core, and an IDT whose
//! handlers report the exception on the console and stop the core.

use alloc::boxed::Box;
use core::arch::{asm, global_asm};

use crate::cpu::{self, DescriptorTablePointer};
use crate::{hvlog, memory};

/// Code segment selector of the hypervisor.
pub const CODE_SELECTOR: u16 = 0x08;
/// Data segment selector of the hypervisor.
pub const DATA_SELECTOR: u16 = 0x10;
/// Task-state segment selector (each core has its own GDT, so the same selector).
pub const TSS_SELECTOR: u16 = 0x18;

/// Builds identity page tables over the first 512 GiB (1 GiB pages when the CPU has them,
/// 2 MiB pages over the first 64 GiB otherwise). Returns the CR3 value.
pub fn build_page_tables() -> u64 {
    let pml4 = memory::alloc_pages(1);
    let pdpt = memory::alloc_pages(1);
    let has_1g = cpu::cpuid(0x8000_0001, 0).edx & (1 << 26) != 0;
    // SAFETY: `pml4` and `pdpt` are fresh zeroed pages owned by the hypervisor.
    let (pml4_t, pdpt_t) = unsafe { (&mut *(pml4 as *mut [u64; 512]), &mut *(pdpt as *mut [u64; 512])) };
    pml4_t[0] = pdpt | 0x3;
    if has_1g {
        for (i, e) in pdpt_t.iter_mut().enumerate() {
            *e = (i as u64) << 30 | 0x83; // present, writable, 1 GiB page
        }
    } else {
        for (i, e) in pdpt_t.iter_mut().take(64).enumerate() {
            let pd = memory::alloc_pages(1);
            // SAFETY: a fresh zeroed page.
            let pd_t = unsafe { &mut *(pd as *mut [u64; 512]) };
            for (j, pde) in pd_t.iter_mut().enumerate() {
                *pde = ((i as u64) << 30) | ((j as u64) << 21) | 0x83; // 2 MiB page
            }
            *e = pd | 0x3;
        }
    }
    pml4
}

/// A core's GDT (null, code, data, 16-byte TSS descriptor) and its TSS.
#[repr(C, align(16))]
pub struct CoreTables {
    gdt: [u64; 5],
    tss: [u8; 104],
}

impl CoreTables {
    /// A fresh GDT + TSS for one core (leaked: lives forever).
    pub fn new() -> &'static mut CoreTables {
        let t = Box::leak(Box::new(CoreTables { gdt: [0; 5], tss: [0; 104] }));
        t.gdt[1] = 0x00af_9b00_0000_ffff; // 64-bit code, DPL 0
        t.gdt[2] = 0x00cf_9300_0000_ffff; // data, DPL 0
        let base = t.tss.as_ptr() as u64;
        let limit = (t.tss.len() - 1) as u64;
        // I/O map base beyond the limit: no I/O permission bitmap.
        t.tss[102..104].copy_from_slice(&104u16.to_le_bytes());
        t.gdt[3] = limit | (base & 0xff_ffff) << 16 | 0x89 << 40 | ((base >> 24) & 0xff) << 56;
        t.gdt[4] = base >> 32;
        t
    }

    /// Base address of the GDT.
    pub fn gdt_base(&self) -> u64 {
        self.gdt.as_ptr() as u64
    }

    /// Base address of the TSS.
    pub fn tss_base(&self) -> u64 {
        self.tss.as_ptr() as u64
    }

    /// Loads this GDT, reloads every segment register and the task register.
    pub fn load(&'static self) {
        let ptr = DescriptorTablePointer {
            limit: (core::mem::size_of_val(&self.gdt) - 1) as u16,
            base: self.gdt_base(),
        };
        // SAFETY: the GDT is 'static and holds valid code/data/TSS descriptors at the
        // selectors used; the far return reloads CS with the new code segment.
        unsafe {
            asm!(
                "lgdt [{ptr}]",
                "push {cs}",
                "lea {tmp}, [rip + 2f]",
                "push {tmp}",
                "retfq",
                "2:",
                "mov ds, {ds:x}",
                "mov es, {ds:x}",
                "mov ss, {ds:x}",
                "mov fs, {ds:x}",
                "mov gs, {ds:x}",
                "ltr {tr:x}",
                ptr = in(reg) &ptr,
                cs = in(reg) CODE_SELECTOR as u64,
                ds = in(reg) DATA_SELECTOR as u64,
                tr = in(reg) TSS_SELECTOR as u64,
                tmp = out(reg) _,
            )
        };
    }
}

/// The IDT shared by every core.
static mut IDT: [[u64; 2]; 32] = [[0; 2]; 32];

unsafe extern "sysv64" {
    static hv_exception_stubs: [u8; 32 * 16];
    /// NMI handler: returns at once. NMIs are the hypervisor's "look at your requests"
    /// signal between cores (see `ap::ICR_NMI`); the core checks its flags after HLT.
    static hv_nmi_stub: u8;
}

global_asm!(
    r#"
.section .text.hv_exceptions, "ax"
.balign 16
.global hv_exception_stubs
hv_exception_stubs:
.set vector, 0
.rept 32
    .balign 16
    pushq $vector
    jmp hv_exception_common
    .set vector, vector + 1
.endr
.global hv_nmi_stub
hv_nmi_stub:
    iretq
hv_exception_common:
    popq %rdi
    movq %rsp, %rsi
    andq $-16, %rsp
    call {handler}
    ud2
"#,
    handler = sym exception_handler,
    options(att_syntax)
);

/// Reports a CPU exception taken by the hypervisor itself (a hypervisor bug, never guest
/// input) and stops the core.
extern "sysv64" fn exception_handler(vector: u64, frame: *const [u64; 6]) -> ! {
    // SAFETY: the CPU pushed at least 5 quadwords (plus an error code for some vectors).
    let f = unsafe { *frame };
    let has_error = matches!(vector, 8 | 10..=14 | 17 | 21 | 29 | 30);
    let (error, rip) = if has_error { (f[0], f[1]) } else { (0, f[0]) };
    hvlog!(
        "hypervisor exception {vector} (error {error:#x}) at rip {rip:#x}, cr2 {:#x}: core stopped",
        read_cr2()
    );
    cpu::halt_forever()
}

fn read_cr2() -> u64 {
    let v: u64;
    // SAFETY: reading CR2 has no side effects.
    unsafe { asm!("mov {}, cr2", out(reg) v, options(nomem, nostack)) };
    v
}

/// Fills the IDT (once, on the boot core).
pub fn init_idt() {
    // The stubs are 32 blocks of 16 bytes in the text section.
    let stubs = core::ptr::addr_of!(hv_exception_stubs) as u64;
    let nmi = core::ptr::addr_of!(hv_nmi_stub) as u64;
    for v in 0..32u64 {
        let handler = if v == 2 { nmi } else { stubs + v * 16 };
        let low = (handler & 0xffff)
            | (CODE_SELECTOR as u64) << 16
            | 0x8e << 40 // present, DPL 0, 64-bit interrupt gate
            | ((handler >> 16) & 0xffff) << 48;
        // SAFETY: only the boot core writes the IDT, before any other core runs.
        unsafe { (*core::ptr::addr_of_mut!(IDT))[v as usize] = [low, handler >> 32] };
    }
}

/// Base of the IDT.
pub fn idt_base() -> u64 {
    core::ptr::addr_of!(IDT) as u64
}

/// Loads the IDT on this core.
pub fn load_idt() {
    let ptr = DescriptorTablePointer { limit: (32 * 16 - 1) as u16, base: idt_base() };
    // SAFETY: the IDT is static and filled by `init_idt`.
    unsafe { asm!("lidt [{}]", in(reg) &ptr, options(nostack)) };
}

/// The VMCS host-state fields every vCPU on a core shares: the hypervisor's own control
/// registers, flat selectors, this core's GDT and TSS, the IDT, EFER and the exit stub
/// (written once per VMCS; the stack pointer is written before each entry).
pub fn vmcs_host_state(tables: &CoreTables, host_cr3: u64, host_efer: u64) -> [(u32, u64); 20] {
    use hallows_core::vmx::vmcs::host;
    [
        (host::CR0, cpu::read_cr0()),
        (host::CR3, host_cr3),
        (host::CR4, cpu::read_cr4()),
        (host::CS_SELECTOR, CODE_SELECTOR as u64),
        (host::SS_SELECTOR, DATA_SELECTOR as u64),
        (host::DS_SELECTOR, DATA_SELECTOR as u64),
        (host::ES_SELECTOR, DATA_SELECTOR as u64),
        (host::FS_SELECTOR, DATA_SELECTOR as u64),
        (host::GS_SELECTOR, DATA_SELECTOR as u64),
        (host::TR_SELECTOR, TSS_SELECTOR as u64),
        (host::FS_BASE, 0),
        (host::GS_BASE, 0),
        (host::TR_BASE, tables.tss_base()),
        (host::GDTR_BASE, tables.gdt_base()),
        (host::IDTR_BASE, idt_base()),
        (host::IA32_SYSENTER_CS, 0),
        (host::IA32_SYSENTER_ESP, 0),
        (host::IA32_SYSENTER_EIP, 0),
        (host::IA32_EFER, host_efer),
        (host::RIP, crate::vmx::exit_entry_point()),
    ]
}
