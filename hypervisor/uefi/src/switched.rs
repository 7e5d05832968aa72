//! Saving and loading the register state VMX does not switch (hallows-core's
//! `switched_state` says which and why): DR0-DR3, DR6, CR2, IA32_KERNEL_GS_BASE, XCR0 and the
//! x87/SSE/AVX registers. The run loop calls these when a core changes the vCPU it runs
//! and when a vCPU restarts; this file only executes the instructions.

use core::arch::asm;

use hallows_core::switched_state::{SwitchedRegisters, IA32_KERNEL_GS_BASE};
use hallows_core::xstate::{self, XsaveSupport};

use crate::cpu::{rdmsr, wrmsr};
use crate::memory;

/// A vCPU's saved registers and its XSAVE area (host memory, 64-byte aligned).
pub struct SavedState {
    pub regs: SwitchedRegisters,
    area: u64,
    bytes: usize,
}

impl SavedState {
    /// A vCPU that has never run: reset registers, an area that restores the initial state.
    pub fn new(support: &XsaveSupport) -> Self {
        let pages = support.area_bytes.div_ceil(4096);
        let mut s = SavedState {
            regs: SwitchedRegisters::RESET,
            area: memory::alloc_pages(pages),
            bytes: support.area_bytes,
        };
        s.reset();
        s
    }

    /// Back to the state of a vCPU that has never run (restart).
    pub fn reset(&mut self) {
        self.regs = SwitchedRegisters::RESET;
        // SAFETY: `area..area + bytes` was allocated for this vCPU alone in `new`.
        let area = unsafe { core::slice::from_raw_parts_mut(self.area as *mut u8, self.bytes) };
        xstate::init_area(area);
    }
}

/// Saves what the CPU holds into `s` (the vCPU leaving the core).
pub fn save(s: &mut SavedState, support: &XsaveSupport) {
    let r = &mut s.regs;
    // SAFETY: reading debug registers and CR2 has no side effect in VMX root operation.
    unsafe {
        asm!("mov {}, dr0", out(reg) r.dr0_3[0], options(nomem, nostack, preserves_flags));
        asm!("mov {}, dr1", out(reg) r.dr0_3[1], options(nomem, nostack, preserves_flags));
        asm!("mov {}, dr2", out(reg) r.dr0_3[2], options(nomem, nostack, preserves_flags));
        asm!("mov {}, dr3", out(reg) r.dr0_3[3], options(nomem, nostack, preserves_flags));
        asm!("mov {}, dr6", out(reg) r.dr6, options(nomem, nostack, preserves_flags));
        asm!("mov {}, cr2", out(reg) r.cr2, options(nomem, nostack, preserves_flags));
    }
    // SAFETY: IA32_KERNEL_GS_BASE exists on every x86-64 CPU.
    r.kernel_gs_base = unsafe { rdmsr(IA32_KERNEL_GS_BASE) };
    if support.xsave {
        r.xcr0 = xgetbv0();
        // SAFETY: the area is 64-byte aligned, large enough for every supported component
        // (CPUID leaf 0xD ECX) and owned by this vCPU; CR4.OSXSAVE is set on this core.
        unsafe {
            asm!("xsave64 [{}]", in(reg) s.area, in("eax") r.xcr0 as u32, in("edx") (r.xcr0 >> 32) as u32,
                options(nostack, preserves_flags))
        };
    } else {
        // SAFETY: the area is 16-byte aligned and at least 512 bytes.
        unsafe { asm!("fxsave64 [{}]", in(reg) s.area, options(nostack, preserves_flags)) };
    }
}

/// Loads `s` into the CPU (the vCPU arriving on the core).
pub fn load(s: &SavedState, support: &XsaveSupport) {
    let r = &s.regs;
    if support.xsave {
        // Restore under every component a partition could enable, so that components
        // missing from this area come back initialised rather than holding a neighbour's
        // values; then the vCPU's own XCR0.
        xsetbv0(support.switch_mask);
        let mask = support.switch_mask;
        // SAFETY: as in `save`; the area was written by XSAVE or `xstate::init_area`
        // (XCOMP_BV 0, reserved header bytes 0, valid MXCSR), and its XSTATE_BV is a
        // subset of `switch_mask`, the current XCR0.
        unsafe {
            asm!("xrstor64 [{}]", in(reg) s.area, in("eax") mask as u32, in("edx") (mask >> 32) as u32,
                options(nostack, preserves_flags))
        };
        xsetbv0(r.xcr0);
    } else {
        // SAFETY: the area holds an FXSAVE image or the initial one (valid MXCSR).
        unsafe { asm!("fxrstor64 [{}]", in(reg) s.area, options(nostack, preserves_flags)) };
    }
    // SAFETY: debug-register and CR2 values only affect the guest once it runs (DR7 is in
    // the VMCS and 0x400 in the host after every exit, so no breakpoint fires in the
    // hypervisor); KERNEL_GS_BASE is not used by the hypervisor.
    unsafe {
        asm!("mov dr0, {}", in(reg) r.dr0_3[0], options(nomem, nostack, preserves_flags));
        asm!("mov dr1, {}", in(reg) r.dr0_3[1], options(nomem, nostack, preserves_flags));
        asm!("mov dr2, {}", in(reg) r.dr0_3[2], options(nomem, nostack, preserves_flags));
        asm!("mov dr3, {}", in(reg) r.dr0_3[3], options(nomem, nostack, preserves_flags));
        asm!("mov dr6, {}", in(reg) r.dr6, options(nomem, nostack, preserves_flags));
        asm!("mov cr2, {}", in(reg) r.cr2, options(nomem, nostack, preserves_flags));
        wrmsr(IA32_KERNEL_GS_BASE, r.kernel_gs_base);
    }
}

/// XCR0 as the CPU holds it.
fn xgetbv0() -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: CR4.OSXSAVE is set on every core when the CPU has XSAVE.
    unsafe {
        asm!("xgetbv", in("ecx") 0u32, out("eax") lo, out("edx") hi, options(nomem, nostack, preserves_flags))
    };
    (hi as u64) << 32 | lo as u64
}

/// Sets XCR0; `value` comes from `XstatePolicy` (checked or the switch mask).
pub fn xsetbv0(value: u64) {
    // SAFETY: every caller passes a value valid for this CPU (a checked guest value, the
    // reset value or the switch mask built from CPUID leaf 0xD); CR4.OSXSAVE is set.
    unsafe {
        asm!("xsetbv", in("ecx") 0u32, in("eax") value as u32, in("edx") (value >> 32) as u32,
            options(nomem, nostack, preserves_flags))
    };
}
