//! This core's local APIC, as the hypervisor uses it at run time: inter-processor
//! interrupts (an NMI makes another core leave its guest), end of interrupt, and masking
//! the timer. Kept apart from the start-up code in `ap` so that run-time code does not
//! depend on boot-time modules.

use crate::cpu::{rdmsr, wrmsr};

/// Local APIC access: x2APIC MSRs or the xAPIC MMIO page.
pub struct Apic {
    x2: bool,
    base: u64,
}

impl Apic {
    pub fn new() -> Self {
        // SAFETY: IA32_APIC_BASE exists on every x86-64 CPU.
        let v = unsafe { rdmsr(0x1b) };
        Apic { x2: v & (1 << 10) != 0, base: v & 0xf_ffff_f000 }
    }

    /// Sends an IPI (`low` = ICR low word: vector and delivery mode) to `apic_id`.
    pub fn send_ipi(&self, apic_id: u32, low: u32) {
        if self.x2 {
            // SAFETY: writing the x2APIC ICR sends an IPI; the hypervisor owns the machine.
            unsafe { wrmsr(0x830, (apic_id as u64) << 32 | low as u64) };
        } else {
            let icr_low = (self.base + 0x300) as *mut u32;
            let icr_high = (self.base + 0x310) as *mut u32;
            // SAFETY: the xAPIC page is identity-mapped MMIO owned by the hypervisor.
            unsafe {
                icr_high.write_volatile(apic_id << 24);
                icr_low.write_volatile(low);
                for _ in 0..1_000_000 {
                    if icr_low.read_volatile() & (1 << 12) == 0 {
                        break;
                    }
                }
            }
        }
    }

    /// Signals the end of the interrupt this core acknowledged (the VM exit acknowledged
    /// it, "acknowledge interrupt on exit"): without it the local APIC would block every
    /// interrupt of equal or lower priority on this core for good.
    pub fn eoi(&self) {
        if self.x2 {
            // SAFETY: writing 0 to the x2APIC EOI register only retires the in-service
            // interrupt.
            unsafe { wrmsr(0x80b, 0) };
        } else {
            // SAFETY: the xAPIC page is identity-mapped MMIO owned by the hypervisor; the
            // EOI register takes a write of 0.
            unsafe { ((self.base + 0xb0) as *mut u32).write_volatile(0) };
        }
    }

    /// Masks this core's local APIC timer (no interrupts reach the hypervisor).
    pub fn mask_timer(&self) {
        if self.x2 {
            // SAFETY: LVT timer and initial count of the x2APIC.
            unsafe {
                wrmsr(0x832, 1 << 16);
                wrmsr(0x838, 0);
            }
        } else {
            // SAFETY: the xAPIC page is identity-mapped MMIO.
            unsafe {
                ((self.base + 0x320) as *mut u32).write_volatile(1 << 16);
                ((self.base + 0x380) as *mut u32).write_volatile(0);
            }
        }
    }
}

/// ICR delivery mode NMI: how one core makes another leave its guest (a VM exit, since
/// every partition runs with NMI exiting) or wake from HLT in the hypervisor.
pub const ICR_NMI: u32 = 0x400;
