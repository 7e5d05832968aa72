//! Thin wrappers around privileged x86 instructions. Each is a small `unsafe` block whose
//! safety argument is local: the hypervisor runs at CPL 0 and owns the machine.

use core::arch::asm;

/// Writes a byte to an I/O port.
pub fn outb(port: u16, value: u8) {
    // SAFETY: the hypervisor runs at CPL 0; port writes here only touch devices the
    // hypervisor owns (COM1, the local APIC's legacy neighbours are not used).
    unsafe { asm!("out dx, al", in("dx") port, in("al") value, options(nomem, nostack, preserves_flags)) };
}

/// Reads a byte from an I/O port.
pub fn inb(port: u16) -> u8 {
    let value: u8;
    // SAFETY: as for `outb`; reading a UART status register has no side effect.
    unsafe { asm!("in al, dx", out("al") value, in("dx") port, options(nomem, nostack, preserves_flags)) };
    value
}

/// Reads the time-stamp counter.
pub fn rdtsc() -> u64 {
    // SAFETY: RDTSC has no side effects.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// Reads a model-specific register.
///
/// # Safety
/// The MSR must exist on this CPU (reading a missing MSR raises #GP).
pub unsafe fn rdmsr(msr: u32) -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: the caller guarantees the MSR exists.
    unsafe {
        asm!("rdmsr", in("ecx") msr, out("eax") lo, out("edx") hi, options(nomem, nostack, preserves_flags))
    };
    (hi as u64) << 32 | lo as u64
}

/// Writes a model-specific register.
///
/// # Safety
/// The MSR must exist and the value must be valid for it; the write must not break the
/// hypervisor's own execution environment.
pub unsafe fn wrmsr(msr: u32, value: u64) {
    // SAFETY: the caller guarantees the MSR and value are valid.
    unsafe {
        asm!("wrmsr", in("ecx") msr, in("eax") value as u32, in("edx") (value >> 32) as u32,
             options(nostack, preserves_flags))
    };
}

/// CPUID leaf/subleaf.
pub fn cpuid(leaf: u32, subleaf: u32) -> core::arch::x86_64::CpuidResult {
    core::arch::x86_64::__cpuid_count(leaf, subleaf)
}

/// CPUID leaf/subleaf as EAX, EBX, ECX, EDX (how hallows-core's CPUID readers take it).
pub fn cpuid_regs(leaf: u32, subleaf: u32) -> [u32; 4] {
    let r = cpuid(leaf, subleaf);
    [r.eax, r.ebx, r.ecx, r.edx]
}

macro_rules! control_register {
    ($read:ident, $write:ident, $reg:literal) => {
        /// Reads the control register.
        pub fn $read() -> u64 {
            let v: u64;
            // SAFETY: reading a control register at CPL 0 has no side effects.
            unsafe { asm!(concat!("mov {}, ", $reg), out(reg) v, options(nomem, nostack, preserves_flags)) };
            v
        }

        /// Writes the control register.
        ///
        /// # Safety
        /// The new value must keep the hypervisor's execution environment valid.
        pub unsafe fn $write(v: u64) {
            // SAFETY: the caller keeps the environment valid.
            unsafe { asm!(concat!("mov ", $reg, ", {}"), in(reg) v, options(nostack, preserves_flags)) };
        }
    };
}

control_register!(read_cr0, write_cr0, "cr0");

/// Switches to the page tables at `cr3`.
///
/// # Safety
/// The new tables must map the running code, its stack and everything it touches.
pub unsafe fn write_cr3(v: u64) {
    // SAFETY: the caller guarantees the new address space covers the running code.
    unsafe { asm!("mov cr3, {}", in(reg) v, options(nostack, preserves_flags)) };
}
control_register!(read_cr4, write_cr4, "cr4");

/// Halts this core forever with interrupts off.
pub fn halt_forever() -> ! {
    crate::serial::pump_until_empty();
    loop {
        // SAFETY: CLI; HLT only stops this core.
        unsafe { asm!("cli", "hlt", options(nomem, nostack)) };
    }
}

/// Waits for the next NMI (interrupts stay off; an NMI wakes HLT and its handler returns).
pub fn halt() {
    crate::serial::pump_until_empty();
    // SAFETY: HLT only pauses this core until the next NMI (or forever).
    unsafe { asm!("hlt", options(nomem, nostack)) };
}

/// Ends NMI blocking on this core: an IRETQ to the next instruction, through an interrupt
/// frame of the current stack, code segment and flags (IRET ends NMI blocking whatever
/// frame it returns through).
pub fn unblock_nmi() {
    // SAFETY: the pushed frame returns to label 2 with this function's own RSP, SS, CS and
    // RFLAGS, so execution and the stack continue exactly as if IRETQ were a no-op.
    unsafe {
        asm!(
            "mov {seg:e}, ss",
            "mov {sp}, rsp",
            "push {seg}",
            "push {sp}",
            "pushfq",
            "mov {seg:e}, cs",
            "push {seg}",
            "lea {sp}, [rip + 2f]",
            "push {sp}",
            "iretq",
            "2:",
            seg = out(reg) _,
            sp = out(reg) _,
        )
    };
}

/// A short spin-wait hint.
pub fn pause() {
    core::hint::spin_loop();
}

/// Descriptor-table register image for LGDT/LIDT/SGDT.
#[repr(C, packed)]
#[derive(Clone, Copy, Default)]
pub struct DescriptorTablePointer {
    pub limit: u16,
    pub base: u64,
}
