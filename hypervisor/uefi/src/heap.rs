//! The hypervisor's heap: a bump allocator over pages reserved from the firmware at entry.
//! It keeps working after ExitBootServices (unlike the firmware's pool allocator). The
//! hypervisor allocates at boot and on partition restarts only, so never freeing is fine.

use core::alloc::{GlobalAlloc, Layout};
use core::sync::atomic::{AtomicUsize, Ordering};

use hallows_core::placement::bump;

/// A lock-free bump allocator.
pub struct Bump {
    next: AtomicUsize,
    end: AtomicUsize,
}

impl Bump {
    const fn new() -> Self {
        Self { next: AtomicUsize::new(0), end: AtomicUsize::new(0) }
    }

    /// Hands the allocator its region.
    pub fn init(&self, start: usize, bytes: usize) {
        self.end.store(start + bytes, Ordering::SeqCst);
        self.next.store(start, Ordering::SeqCst);
    }

    /// Bytes not yet handed out.
    pub fn remaining(&self) -> usize {
        self.end.load(Ordering::SeqCst).saturating_sub(self.next.load(Ordering::SeqCst))
    }
}

// SAFETY: every block is carved from the reserved region exactly once (compare-exchange on
// `next`), aligned as asked, and never handed out twice.
unsafe impl GlobalAlloc for Bump {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let end = self.end.load(Ordering::SeqCst);
        let mut current = self.next.load(Ordering::SeqCst);
        loop {
            let Some((start, new_next)) = bump(current, end, layout.size(), layout.align()) else {
                return core::ptr::null_mut();
            };
            match self.next.compare_exchange(current, new_next, Ordering::SeqCst, Ordering::SeqCst) {
                Ok(_) => return start as *mut u8,
                Err(seen) => current = seen,
            }
        }
    }

    unsafe fn dealloc(&self, _ptr: *mut u8, _layout: Layout) {}
}

#[global_allocator]
pub static HEAP: Bump = Bump::new();
