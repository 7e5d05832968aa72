//! The hypervisor's own execution environment, replacing the firmware's after
//! ExitBootServices: identity page tables, a GDT with a TSS per core, and an IDT whose
//! handlers report the exception on the console and stop the core.

use alloc::boxed::Box;
use core::arch::{asm, global_asm};

use hallows_core::host_tables::{
    gdt, has_error_code, identity_1g, identity_2m, interrupt_gate, table_entry, tss, CODE_SELECTOR,
    DATA_SELECTOR, EXCEPTION_VECTORS, GDT_ENTRIES, TSS_BYTES, TSS_SELECTOR,
};
use hallows_core::vmx::host_state::{self, HostState};

use crate::cpu::{self, DescriptorTablePointer};
use crate::{hvlog, memory};

/// Builds identity page tables over the first 512 GiB (1 GiB pages when the CPU has them,
/// 2 MiB pages over the first 64 GiB otherwise). Returns the CR3 value.
pub fn build_page_tables() -> u64 {
    let pml4 = memory::alloc_pages(1);
    let pdpt = memory::alloc_pages(1);
    let has_1g = cpu::cpuid(0x8000_0001, 0).edx & (1 << 26) != 0;
    // SAFETY: `pml4` and `pdpt` are fresh zeroed pages owned by the hypervisor.
    let (pml4_t, pdpt_t) = unsafe { (&mut *(pml4 as *mut [u64; 512]), &mut *(pdpt as *mut [u64; 512])) };
    pml4_t[0] = table_entry(pdpt);
    if has_1g {
        for (i, e) in pdpt_t.iter_mut().enumerate() {
            *e = identity_1g(i as u64);
        }
    } else {
        for (i, e) in pdpt_t.iter_mut().take(64).enumerate() {
            let pd = memory::alloc_pages(1);
            // SAFETY: a fresh zeroed page.
            let pd_t = unsafe { &mut *(pd as *mut [u64; 512]) };
            for (j, pde) in pd_t.iter_mut().enumerate() {
                *pde = identity_2m(i as u64, j as u64);
            }
            *e = table_entry(pd);
        }
    }
    pml4
}

/// A core's GDT (null, code, data, 16-byte TSS descriptor) and its TSS.
#[repr(C, align(16))]
pub struct CoreTables {
    gdt: [u64; GDT_ENTRIES],
    tss: [u8; TSS_BYTES],
}

impl CoreTables {
    /// A fresh GDT + TSS for one core (leaked: lives forever).
    pub fn new() -> &'static mut CoreTables {
        let t = Box::leak(Box::new(CoreTables { gdt: [0; GDT_ENTRIES], tss: tss() }));
        t.gdt = gdt(t.tss_base());
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
static mut IDT: [[u64; 2]; EXCEPTION_VECTORS] = [[0; 2]; EXCEPTION_VECTORS];

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
    let (error, rip) = if has_error_code(vector) { (f[0], f[1]) } else { (0, f[0]) };
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
        // SAFETY: only the boot core writes the IDT, before any other core runs.
        unsafe { (*core::ptr::addr_of_mut!(IDT))[v as usize] = interrupt_gate(handler) };
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

/// The VMCS host-state fields every vCPU on a core shares (`vmx::host_state` says which
/// field gets what): the hypervisor's own control registers, this core's GDT and TSS, the
/// IDT, EFER and the exit stub (written once per VMCS; the stack pointer is written
/// before each entry).
pub fn vmcs_host_state(tables: &CoreTables, host_cr3: u64, host_efer: u64) -> [(u32, u64); 20] {
    host_state::fields(&HostState {
        cr0: cpu::read_cr0(),
        cr3: host_cr3,
        cr4: cpu::read_cr4(),
        tr_base: tables.tss_base(),
        gdtr_base: tables.gdt_base(),
        idtr_base: idt_base(),
        efer: host_efer,
        rip: crate::vmx::exit_entry_point(),
    })
}
