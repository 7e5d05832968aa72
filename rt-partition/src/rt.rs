//! The bare-metal run-time: `_start`, the global allocator and the panic handler. Only built
//! for the partition target (`target_os = "none"`); host tests link std instead.

use core::fmt::Write;
use core::sync::atomic::{AtomicBool, Ordering};

use hallows_abi::bootinfo::BootInfo;
use hallows_abi::health::EventClass;
use hallows_abi::layout::BOOT_INFO_GPA;

use crate::fixed::FixedText;
use crate::{boot, heap, hypercall, time};

/// Exit code passed to the `Halt` hypercall after a panic.
pub const PANIC_EXIT_CODE: u64 = 101;
/// Exit code passed to the `Halt` hypercall when the boot-info page is unusable.
pub const BAD_BOOT_INFO_EXIT_CODE: u64 = 102;

// The hypervisor enters here in 64-bit mode with rdi = boot-info GPA, rsi = vCPU index and
// rsp = the 16-byte aligned top of this vCPU's stack. Nothing else is assumed: the frame
// pointer is cleared so that stack walks end here, the stack is re-aligned defensively, and
// the `call` leaves rsp = 16n - 8 at the Rust entry as the System V ABI expects.
core::arch::global_asm!(
    ".section .text._start,\"ax\",@progbits",
    ".global _start",
    "_start:",
    "    xor ebp, ebp",
    "    and rsp, -16",
    "    call {start}",
    "    ud2",
    start = sym rust_start,
);

unsafe extern "Rust" {
    /// The program's main, defined by [`crate::entry!`].
    fn __rt_partition_main(boot_info: &'static BootInfo) -> !;
    /// The program's entry for vCPUs other than 0, defined by [`crate::entry!`].
    fn __rt_partition_secondary(boot_info: &'static BootInfo, vcpu: u32) -> !;
}

/// Set by vCPU 0 once the heap and the clock are ready; other vCPUs wait for it.
static READY: AtomicBool = AtomicBool::new(false);

extern "C" fn rust_start(boot_info_gpa: u64, vcpu: u64) -> ! {
    if boot_info_gpa != BOOT_INFO_GPA {
        fatal_boot("rt-partition: entered with an unexpected boot-info address\n");
    }
    // SAFETY: the hypervisor writes a BootInfo at BOOT_INFO_GPA before entry and maps it
    // (identity) for the partition's whole life; the SDK never writes it, so a shared
    // 'static reference is sound. Its fields are plain integers, valid for any bit pattern.
    let bi: &'static BootInfo = unsafe { &*(BOOT_INFO_GPA as *const BootInfo) };
    if vcpu != 0 {
        while !READY.load(Ordering::Acquire) {
            let _ = hypercall::yield_until(0);
        }
        // SAFETY: the symbol is defined by the entry! macro with exactly this signature.
        unsafe { __rt_partition_secondary(bi, vcpu as u32) }
    }
    if boot::check(bi).is_err() {
        fatal_boot("rt-partition: boot info is invalid or of another version\n");
    }
    time::init(bi.tsc_hz, bi.boot_time_ns);
    if let Some((start, len)) = boot::heap_range(bi, linked_image_end()) {
        heap::init(start, len);
    }
    READY.store(true, Ordering::Release);
    // SAFETY: the symbol is defined by the entry! macro with exactly this signature.
    unsafe { __rt_partition_main(bi) }
}

fn linked_image_end() -> u64 {
    unsafe extern "C" {
        /// Defined by link.ld: the page-aligned end of the image (after .bss).
        static __rt_image_end: u8;
    }
    // Only the address is taken; the byte itself is never read.
    core::ptr::addr_of!(__rt_image_end) as u64
}

fn fatal_boot(message: &str) -> ! {
    let _ = hypercall::console_write(message.as_bytes());
    hypercall::halt(BAD_BOOT_INFO_EXIT_CODE)
}

static PANICKING: AtomicBool = AtomicBool::new(false);

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    if PANICKING.swap(true, Ordering::AcqRel) {
        // A panic while reporting a panic: stop without formatting anything.
        hypercall::halt(PANIC_EXIT_CODE);
    }
    crate::console::try_flush();
    let mut text = FixedText::<{ hallows_abi::hypercall::FAULT_MESSAGE_MAX as usize }>::new();
    let _ = write!(text, "panic");
    if let Some(loc) = info.location() {
        let _ = write!(text, " at {}:{}", loc.file(), loc.line());
    }
    let _ = write!(text, ": {}", info.message());
    let _ = hypercall::console_write(text.as_bytes());
    let _ = hypercall::console_write(b"\n");
    let _ = hypercall::report_fault(EventClass::Panic, text.as_bytes());
    hypercall::halt(PANIC_EXIT_CODE)
}
