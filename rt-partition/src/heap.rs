//! The partition heap: a first-fit free-list allocator (`linked_list_allocator`) over the
//! RAM between the end of the image and the bottom of the stacks, behind a spin lock so all
//! vCPUs of the partition can allocate.

use core::alloc::{GlobalAlloc, Layout};
use core::ptr::{self, NonNull};

use linked_list_allocator::Heap;

/// A global allocator that is empty until [`init`] hands it memory.
pub struct PartitionHeap(spin::Mutex<Heap>);

impl PartitionHeap {
    /// An allocator without memory: every allocation fails until [`PartitionHeap::init`].
    pub const fn empty() -> Self {
        Self(spin::Mutex::new(Heap::empty()))
    }

    /// Gives the allocator `len` bytes at `start`.
    ///
    /// # Safety
    /// `start..start + len` must be writable memory used by nothing else, for the rest of
    /// the program, and `init` must be called at most once.
    pub unsafe fn init(&self, start: *mut u8, len: usize) {
        // SAFETY: forwarded from the caller.
        unsafe { self.0.lock().init(start, len) }
    }

    /// Bytes currently free.
    pub fn free_bytes(&self) -> usize {
        self.0.lock().free()
    }

    /// Bytes handed to the allocator.
    pub fn size(&self) -> usize {
        self.0.lock().size()
    }
}

// SAFETY: allocation and deallocation are delegated to linked_list_allocator's Heap, which
// returns blocks of the requested size and alignment that do not overlap live blocks; the
// spin lock serialises access from several vCPUs.
unsafe impl GlobalAlloc for PartitionHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        self.0.lock().allocate_first_fit(layout).map_or(ptr::null_mut(), |p| p.as_ptr())
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if let Some(p) = NonNull::new(ptr) {
            // SAFETY: GlobalAlloc's contract: `ptr` came from `alloc` with this layout.
            unsafe { self.0.lock().deallocate(p, layout) }
        }
    }
}

#[cfg(target_os = "none")]
#[global_allocator]
static HEAP: PartitionHeap = PartitionHeap::empty();

/// Hands the heap range to the global allocator (start-up code, vCPU 0, once).
#[cfg(target_os = "none")]
pub(crate) fn init(start: u64, len: u64) {
    // SAFETY: boot::heap_range derives the range from the boot info, which the start-up code
    // checked: it lies in the partition's RAM after the image and below the stacks, and
    // nothing else uses it. rust_start calls this once, before any other vCPU runs code.
    unsafe { HEAP.init(start as *mut u8, len as usize) }
}

/// Heap statistics: (bytes free, bytes total). Both 0 on the host.
pub fn stats() -> (usize, usize) {
    #[cfg(target_os = "none")]
    {
        (HEAP.free_bytes(), HEAP.size())
    }
    #[cfg(not(target_os = "none"))]
    {
        (0, 0)
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec;

    #[test]
    fn allocates_within_its_memory_and_reuses_freed_blocks() {
        let mut arena = vec![0u64; 1024];
        let heap = PartitionHeap::empty();
        let layout = Layout::from_size_align(256, 16).unwrap();
        // SAFETY: (test) the arena outlives the heap and nothing else touches it.
        unsafe {
            assert!(heap.alloc(layout).is_null(), "an empty heap must fail");
            heap.init(arena.as_mut_ptr().cast(), 8192);
            let a = heap.alloc(layout);
            assert!(!a.is_null());
            assert_eq!(a as usize % 16, 0);
            let base = arena.as_ptr() as usize;
            assert!((a as usize) >= base && (a as usize) + 256 <= base + 8192);
            let before = heap.free_bytes();
            heap.dealloc(a, layout);
            assert!(heap.free_bytes() > before);
            let big = Layout::from_size_align(16384, 8).unwrap();
            assert!(heap.alloc(big).is_null(), "more than the arena must fail");
        }
    }
}
