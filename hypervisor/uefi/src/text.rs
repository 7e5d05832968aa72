//! Formatting on the VM-exit path without the heap (the heap is a bump allocator that never
//! frees, so exit handling must not allocate): the project's one fixed-capacity text
//! buffer, `hallows_abi::text::FixedText`.

/// Up to `N` bytes of UTF-8 text; longer writes are cut at a character boundary.
pub type Text<const N: usize> = hallows_abi::text::FixedText<N>;
