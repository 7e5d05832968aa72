//! RustHallows: a static-partitioning hypervisor, started as a UEFI application.
//!
//! Boot flow: COM1 console → heap → table and images from the ESP → machine facts
//! (memory map, MADT, VMX capabilities) → re-validation → memory reservation → exit boot
//! services → every core enters its schedule.
#![no_std]
#![no_main]

extern crate alloc;

mod ap;
mod apic;
mod arch;
mod boot;
mod cache_alloc;
mod console;
mod cpu;
mod heap;
mod host;
mod hypercalls;
mod linux;
mod machine;
mod madt;
mod manage;
mod memory;
mod partition;
mod power;
mod run;
mod serial;
mod summary;
mod switched;
mod text;
mod vmx;

use core::panic::PanicInfo;

use uefi::prelude::*;

/// TSC at the hypervisor's entry: the origin of the entry-to-first-instruction measure.
pub static ENTRY_TSC: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

#[entry]
fn efi_main() -> Status {
    ENTRY_TSC.store(cpu::rdtsc(), core::sync::atomic::Ordering::SeqCst);
    serial::init();
    hvlog!("RustHallows hypervisor {} starting", env!("CARGO_PKG_VERSION"));
    match boot::boot() {
        Ok(never) => match never {},
        Err(reason) => {
            hvlog!("refusing to start: {reason}");
            power::power_off()
        }
    }
}

#[panic_handler]
fn panic(info: &PanicInfo) -> ! {
    // The console lock may be held by the panicking core; a panic is a hypervisor bug, so
    // print best effort and stop this core.
    serial::break_lock();
    hvlog!("PANIC: {info}");
    cpu::halt_forever()
}
