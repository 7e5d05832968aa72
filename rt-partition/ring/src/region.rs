//! A channel's shared memory: a base address and a length.
//!
//! Control words (indices, lengths, sequence numbers) are accessed as `AtomicU32` /
//! `AtomicU64` at naturally aligned offsets, so a peer changing them under us never makes
//! a data race in the Rust memory model; on x86-64 relaxed and acquire loads are plain
//! moves, so a read-only mapping is never written by a load. Message bytes are copied with
//! `copy_nonoverlapping` between the region and the caller's buffer (see the endpoints for
//! why the protocol keeps those copies apart from the peer's).

use core::sync::atomic::{AtomicU32, AtomicU64};

/// A shared-memory region: a base address (64-byte aligned, checked by the endpoints) and
/// a length.
#[derive(Clone, Copy, Debug)]
pub struct Region {
    base: *mut u8,
    len: usize,
}

// SAFETY: a Region is only an address range; the endpoints built on it access the memory
// through atomics or through copies the protocol keeps apart from the peer's writes, and
// the contract of `Region::new` makes the range valid from any thread.
unsafe impl Send for Region {}

impl Region {
    /// A region of `len` bytes at `base`.
    ///
    /// # Safety
    /// `base..base + len` must stay mapped and readable for as long as any endpoint built
    /// on the region lives, and writable where that endpoint's role writes (the writer
    /// pages for a writer, the reader page for a reader). Other parties may write the
    /// memory at any time (that is what endpoints defend against) but the Rust program
    /// holding the region must not create references to it.
    pub const unsafe fn new(base: *mut u8, len: usize) -> Self {
        Self { base, len }
    }

    /// Base address.
    pub const fn base(&self) -> *mut u8 {
        self.base
    }

    /// Length in bytes.
    pub const fn len(&self) -> usize {
        self.len
    }

    /// Whether the region has no bytes.
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The 64-bit word at `offset`. Offsets come from a geometry checked against the
    /// region when the endpoint was built, so one outside it is a bug in this crate.
    #[inline]
    pub(crate) fn u64_at(&self, offset: usize) -> &AtomicU64 {
        assert!(offset.is_multiple_of(8) && offset + 8 <= self.len, "channel offset outside region");
        // SAFETY: in bounds and aligned (checked above; endpoints check that `base` is
        // 64-byte aligned); the memory is valid for the region's life (contract of `new`)
        // and only accessed atomically at this offset.
        unsafe { &*self.base.add(offset).cast::<AtomicU64>() }
    }

    /// The 32-bit word at `offset` (see [`Region::u64_at`]).
    #[inline]
    pub(crate) fn u32_at(&self, offset: usize) -> &AtomicU32 {
        assert!(offset.is_multiple_of(4) && offset + 4 <= self.len, "channel offset outside region");
        // SAFETY: as in u64_at.
        unsafe { &*self.base.add(offset).cast::<AtomicU32>() }
    }

    /// Copies `src` into the region at `offset`.
    #[inline]
    pub(crate) fn copy_in(&self, offset: usize, src: &[u8]) {
        assert!(offset <= self.len && src.len() <= self.len - offset, "channel copy outside region");
        // SAFETY: the destination range is inside the region (checked above), which is
        // valid and writable for this endpoint's role (contract of `new`; callers copy only
        // into their own role's pages); `src` is a Rust slice, so the ranges cannot overlap.
        unsafe { copy_bytes(src.as_ptr(), self.base.add(offset), src.len()) }
    }

    /// Copies bytes from the region at `offset` into `dst` (all of it).
    #[inline]
    pub(crate) fn copy_out(&self, offset: usize, dst: &mut [u8]) {
        assert!(offset <= self.len && dst.len() <= self.len - offset, "channel copy outside region");
        // SAFETY: the source range is inside the region (checked above) and readable
        // (contract of `new`); `dst` is a Rust slice, so the ranges cannot overlap. Any byte
        // value is a valid u8: if a hostile peer writes the slot while we copy, `dst` gets
        // garbage, never anything the program could not represent.
        unsafe { copy_bytes(self.base.add(offset), dst.as_mut_ptr(), dst.len()) }
    }
}

/// One copy of `len` bytes. Messages of 4 to 16 bytes (sensor readings, commands) move as
/// two overlapping unaligned words, without a call to `memcpy`; the rest with
/// `copy_nonoverlapping`.
///
/// # Safety
/// As for `copy_nonoverlapping`, without the alignment requirement (bytes).
#[inline(always)]
pub(crate) unsafe fn copy_bytes(src: *const u8, dst: *mut u8, len: usize) {
    // SAFETY: every access below stays inside `src[..len]` and `dst[..len]` (the second
    // word of each pair ends exactly at `len`), which the caller guarantees valid and
    // disjoint; unaligned accesses are allowed for these reads and writes.
    unsafe {
        if (8..=16).contains(&len) {
            let (head, tail) =
                (src.cast::<u64>().read_unaligned(), src.add(len - 8).cast::<u64>().read_unaligned());
            dst.cast::<u64>().write_unaligned(head);
            dst.add(len - 8).cast::<u64>().write_unaligned(tail);
        } else if (4..8).contains(&len) {
            let (head, tail) =
                (src.cast::<u32>().read_unaligned(), src.add(len - 4).cast::<u32>().read_unaligned());
            dst.cast::<u32>().write_unaligned(head);
            dst.add(len - 4).cast::<u32>().write_unaligned(tail);
        } else {
            core::ptr::copy_nonoverlapping(src, dst, len);
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::vec::Vec;

    #[test]
    fn copies_of_every_short_length_are_exact() {
        for len in 0..40usize {
            let src: Vec<u8> = (0..len as u8).map(|b| b.wrapping_mul(37) ^ 0x5A).collect();
            let mut dst = [0xEEu8; 48];
            // SAFETY: both ranges are `len` bytes inside their buffers, and disjoint.
            unsafe { super::copy_bytes(src.as_ptr(), dst.as_mut_ptr().add(3), len) };
            assert_eq!(&dst[3..3 + len], &src[..], "length {len}");
            assert!(dst[..3].iter().chain(&dst[3 + len..]).all(|&b| b == 0xEE), "length {len} spilled");
        }
    }
}
