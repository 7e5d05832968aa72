//! Host memory: zeroed pages from the hypervisor heap (identity-mapped, so an address is
//! both a pointer and a host-physical address), and the frame allocator for EPT tables.

use alloc::alloc::{alloc_zeroed, Layout};

use hallows_core::vmx::ept::FrameAllocator;

/// `count` zeroed, page-aligned pages from the heap; their host-physical address. Stops
/// the boot with a message when the heap is exhausted (a configuration problem: the heap
/// size is fixed at build time).
pub fn alloc_pages(count: usize) -> u64 {
    let layout = Layout::from_size_align(count * 4096, 4096).expect("page layout");
    // SAFETY: the layout has a non-zero size.
    let p = unsafe { alloc_zeroed(layout) };
    if p.is_null() {
        crate::hvlog!("out of hypervisor heap allocating {count} pages");
        crate::cpu::halt_forever();
    }
    p as u64
}

/// EPT frames taken from the hypervisor heap.
pub struct HeapFrames;

impl FrameAllocator for HeapFrames {
    fn alloc_zeroed(&mut self) -> Option<u64> {
        Some(alloc_pages(1))
    }

    fn table(&self, hpa: u64) -> &[u64; 512] {
        // SAFETY: `hpa` came from `alloc_zeroed`: an identity-mapped page owned by the EPT.
        unsafe { &*(hpa as *const [u64; 512]) }
    }

    fn table_mut(&mut self, hpa: u64) -> &mut [u64; 512] {
        // SAFETY: as above; the EPT builder is the only user while it builds.
        unsafe { &mut *(hpa as *mut [u64; 512]) }
    }
}
