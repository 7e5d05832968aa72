//! Word-sized atomic access to a channel's shared memory.
//!
//! Every access to shared memory goes through `AtomicU32`/`AtomicU64` on naturally aligned
//! offsets, so a misbehaving peer can change values under us but never cause a data race
//! in the Rust memory model; on x86-64 relaxed loads and stores compile to plain moves, so
//! a read-only mapping is never written by a load.

use core::sync::atomic::{AtomicU32, AtomicU64};

/// A shared-memory region: a base address and a length, 8-byte aligned.
#[derive(Clone, Copy, Debug)]
pub struct Region {
    base: *mut u8,
    len: usize,
}

// SAFETY: a Region is only an address range; all accesses through it are atomic.
unsafe impl Send for Region {}

impl Region {
    /// A region of `len` bytes at `base`.
    ///
    /// # Safety
    /// `base` must be 8-byte aligned and `base..base + len` mapped and readable (writable
    /// where the endpoint writes) for as long as any endpoint built on the region lives;
    /// other parties may only access it atomically.
    pub const unsafe fn new(base: *mut u8, len: usize) -> Self {
        Self { base, len }
    }

    /// Length in bytes.
    pub const fn len(&self) -> usize {
        self.len
    }

    /// Whether the region has no bytes.
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The 64-bit word at byte offset `offset`. Offsets come from a checked
    /// [`super::Geometry`], so one outside the region is a bug in this SDK.
    pub(crate) fn u64_at(&self, offset: u64) -> &AtomicU64 {
        let offset = offset as usize;
        assert!(offset.is_multiple_of(8) && offset + 8 <= self.len, "channel offset outside region");
        // SAFETY: in bounds and aligned (checked above, base is 8-aligned by contract);
        // the memory is shared only through atomics (contract of `new`).
        unsafe { &*self.base.add(offset).cast::<AtomicU64>() }
    }

    /// The 32-bit word at byte offset `offset` (see [`Region::u64_at`]).
    pub(crate) fn u32_at(&self, offset: u64) -> &AtomicU32 {
        let offset = offset as usize;
        assert!(offset.is_multiple_of(4) && offset + 4 <= self.len, "channel offset outside region");
        // SAFETY: as in u64_at.
        unsafe { &*self.base.add(offset).cast::<AtomicU32>() }
    }
}
