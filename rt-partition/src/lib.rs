//! The SDK for RustHallows real-time partitions.
//!
//! A partition program is a `#![no_std]`, `#![no_main]` binary for `x86_64-unknown-none`
//! that links against this crate, passes `-Trt-partition.ld` to the linker (see any guest's
//! `build.rs`) and names its main function with [`entry!`]:
//!
//! ```ignore
//! #![no_std]
//! #![no_main]
//! use rt_partition::{println, BootInfo};
//! rt_partition::entry!(main);
//! fn main(bi: &'static BootInfo) {
//!     println!("hello from {}", bi.name());
//! }
//! ```
//!
//! The SDK provides the `_start` entry, boot-info checks, a heap (`alloc` works), the
//! console ([`print!`], [`println!`]), hypercalls ([`hypercall`]), time ([`time`]),
//! periodic tasks with deadline monitoring ([`periodic`]), sampling and queuing ports
//! ([`port`]), the memory a partition keeps across its restarts ([`persistent`]), its
//! `args` text ([`BootInfo::args`]) and a panic handler that reports to the health monitor
//! and halts.
#![cfg_attr(not(test), no_std)]

pub mod boot;
pub mod console;
pub mod fixed;
pub mod heap;
pub mod hypercall;
pub mod manage;
pub mod periodic;
pub mod persistent;
pub mod port;
#[cfg(target_os = "none")]
mod rt;
pub mod time;

pub use hallows_abi;
pub use hallows_abi::bootinfo::{BootInfo, ChannelInfo};
pub use hallows_abi::health::EventClass;

/// The default entry of vCPUs other than 0: give the processor back for good.
pub fn park_secondary(_boot_info: &'static BootInfo, _vcpu: u32) -> ! {
    loop {
        let _ = hypercall::yield_until(u64::MAX);
    }
}

/// Names the program's main function (`fn(&'static BootInfo)`, returning `()` or `!`) and,
/// optionally, the function vCPUs other than 0 run (`fn(&'static BootInfo, u32) -> !`,
/// default [`park_secondary`]). vCPU 0 enters main after the SDK has checked the boot info
/// and set up the heap and clock; the others wait for that first. When main returns, the
/// partition halts with exit code 0.
#[macro_export]
macro_rules! entry {
    ($main:path) => {
        $crate::entry!($main, $crate::park_secondary);
    };
    ($main:path, $secondary:path) => {
        #[unsafe(no_mangle)]
        #[allow(unreachable_code)]
        fn __rt_partition_main(boot_info: &'static $crate::BootInfo) -> ! {
            $main(boot_info);
            $crate::hypercall::halt(0)
        }

        #[unsafe(no_mangle)]
        fn __rt_partition_secondary(boot_info: &'static $crate::BootInfo, vcpu: u32) -> ! {
            $secondary(boot_info, vcpu)
        }
    };
}
