//! Instructions and control-register writes that reach beyond the partition: they must
//! exit to the hypervisor, which reports `forbidden_instruction` and applies the table's
//! action. If one of them comes back, the hypervisor let it run; the caller says so.

use core::arch::asm;
use rogue::mode::ForbiddenCr4Bit;
use rogue::state::{cr0, XCR0_AVX_WITHOUT_SSE};
use rt_partition::{println, BootInfo};

use crate::arch;

/// MWAIT hint: C-state 6 (eax[7:4] = 6, sub-state 0), a deep sleep that on hardware
/// stops the clock the VMX-preemption timer runs on.
const MWAIT_DEEP_C_STATE: u32 = 0x60;

/// The address range MONITOR arms: a page of its own, so nothing else writes it.
#[repr(C, align(4096))]
struct MonitoredPage([u8; 4096]);
static MONITORED: MonitoredPage = MonitoredPage([0; 4096]);

pub fn wbinvd() {
    println!("rogue: about to execute WBINVD (writes back and flushes the shared caches)");
    // SAFETY: WBINVD only writes dirty lines back and invalidates caches; memory contents
    // stay the same. The hypervisor must make it exit.
    unsafe { asm!("wbinvd", options(nostack, preserves_flags)) }
}

fn monitor() {
    // SAFETY: MONITOR only arms address monitoring of a page this partition owns; it
    // writes nothing. rax = address, ecx = extensions, edx = hints.
    unsafe {
        asm!("monitor", in("rax") MONITORED.0.as_ptr(), in("ecx") 0u32, in("edx") 0u32,
            options(nostack, preserves_flags))
    }
}

pub fn monitor_alone() {
    println!("rogue: about to execute MONITOR on a page of my own");
    monitor();
}

/// MONITOR then MWAIT. When the hypervisor stops MONITOR (the `monitor` partition tests
/// that) and restarts the partition, the next incarnation tries MWAIT alone: the attack
/// on the preemption timer is MWAIT's.
pub fn monitor_then_mwait(bi: &BootInfo) {
    if bi.restart_count == 0 {
        println!("rogue: about to execute MONITOR on a page of my own, then MWAIT with hint {MWAIT_DEEP_C_STATE:#x}");
        monitor();
    } else {
        println!("rogue: about to execute MWAIT with hint {MWAIT_DEEP_C_STATE:#x} (no MONITOR this time)");
    }
    // SAFETY: MWAIT waits for a write to the monitored page or an interrupt; it touches no
    // memory. eax = hint, ecx = extensions. The hypervisor must make it exit.
    unsafe { asm!("mwait", in("eax") MWAIT_DEEP_C_STATE, in("ecx") 0u32, options(nostack, preserves_flags)) }
}

pub fn rdpmc() {
    println!("rogue: about to execute RDPMC of counter 0");
    let (lo, hi): (u32, u32);
    // SAFETY: RDPMC only reads a counter (or raises #GP, which ends this partition).
    unsafe {
        asm!("rdpmc", in("ecx") 0u32, out("eax") lo, out("edx") hi, options(nomem, nostack, preserves_flags))
    }
    println!("rogue: RDPMC read {:#x}", (hi as u64) << 32 | lo as u64);
}

pub fn cache_disable() {
    let before = arch::read_cr0();
    println!("rogue: about to set CR0.CD and CR0.NW (CR0 reads {before:#x})");
    arch::write_cr0(before | cr0::CD | cr0::NW);
    println!("rogue: CR0 now reads {:#x}", arch::read_cr0());
}

pub fn set_cr4_bit(bit: ForbiddenCr4Bit) {
    let before = arch::read_cr4();
    println!("rogue: about to set {} (CR4 reads {before:#x})", bit.name());
    arch::write_cr4(before | bit.mask());
    println!("rogue: CR4 now reads {:#x}", arch::read_cr4());
}

/// Enables XSAVE (allowed), then loads an XCR0 the architecture forbids.
pub fn invalid_xcr0() {
    let cr4 = arch::read_cr4();
    arch::write_cr4(cr4 | rogue::state::cr4::OSXSAVE);
    println!("rogue: about to execute XSETBV with XCR0 {XCR0_AVX_WITHOUT_SSE:#b} (AVX without SSE)");
    arch::xsetbv(0, XCR0_AVX_WITHOUT_SSE);
}
