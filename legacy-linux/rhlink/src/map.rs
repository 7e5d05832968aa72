//! Shared mappings of sysfs `resourceN` files (or, in tests, of regular files).

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;

/// A mapping of `len` bytes of a file, unmapped on drop.
#[derive(Debug)]
pub struct Mapping {
    base: *mut u8,
    len: usize,
    /// The bytes mapped writable (`start..end`; empty when none): `write_u32` stays
    /// inside them, so a stray offset is a panic instead of a fault on a read-only page.
    writable: core::ops::Range<usize>,
}

// SAFETY: the mapping is plain shared memory owned by this value; every access through it
// goes through volatile reads or the ring crate's atomics and copies.
unsafe impl Send for Mapping {}

/// Which parts of a channel region this side may write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Writable {
    /// Nothing (the register block).
    Nothing,
    /// Bytes `start..start + len` of the mapping.
    Range { start: usize, len: usize },
}

impl Mapping {
    /// Maps `len` bytes of `path` from offset 0, read-only but for the `writable` range.
    /// Each part is its own mapping of the file, placed side by side in one reserved
    /// address range: the pages this side must not write are never mapped writable, and no
    /// part of a device mapping is ever replaced or unmapped on its own (Linux tracks a
    /// PCI mapping's memory type per mapping and complains about partial frees).
    pub fn open(path: &Path, len: usize, writable: Writable) -> io::Result<Self> {
        let read_only = File::open(path)?;
        let available = read_only.metadata()?.len();
        if (available as u128) < len as u128 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("{} has {available} bytes, {len} needed", path.display()),
            ));
        }
        let (start, bytes) = match writable {
            Writable::Nothing => (len, 0),
            Writable::Range { start, len: bytes } => {
                let fits = start.checked_add(bytes).is_some_and(|end| end <= len);
                if !start.is_multiple_of(page_size()) || bytes == 0 || !fits {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        "writable range not page aligned",
                    ));
                }
                (start, bytes)
            }
        };
        // SAFETY: a fresh inaccessible anonymous reservation chosen by the kernel; it only
        // holds the address range for the file mappings placed into it below.
        let base = unsafe {
            libc::mmap(
                core::ptr::null_mut(),
                len,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let mapping = Self { base: base.cast(), len, writable: start..start + bytes };
        let read_write =
            if bytes > 0 { Some(OpenOptions::new().read(true).write(true).open(path)?) } else { None };
        let parts = [(0, start, false), (start, bytes, true), (start + bytes, len - start - bytes, false)];
        for (offset, part, write) in parts.into_iter().filter(|p| p.1 > 0) {
            let (fd, prot) = match (&read_write, write) {
                (Some(rw), true) => (rw.as_raw_fd(), libc::PROT_READ | libc::PROT_WRITE),
                _ => (read_only.as_raw_fd(), libc::PROT_READ),
            };
            // SAFETY: replaces part of our own reservation (offset + part <= len) with a
            // shared mapping of the same offsets of the file; nothing references it yet.
            let placed = unsafe {
                libc::mmap(
                    mapping.base.add(offset).cast(),
                    part,
                    prot,
                    libc::MAP_SHARED | libc::MAP_FIXED,
                    fd,
                    offset as libc::off_t,
                )
            };
            if placed == libc::MAP_FAILED {
                return Err(io::Error::last_os_error());
            }
        }
        Ok(mapping)
    }

    pub fn base(&self) -> *mut u8 {
        self.base
    }

    pub fn len(&self) -> usize {
        self.len
    }

    /// Never true in practice (the kernel refuses empty mappings); for completeness.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The little-endian u32 at `offset` (a register: read once, volatile).
    pub fn read_u32(&self, offset: usize) -> u32 {
        assert!(offset.is_multiple_of(4) && offset + 4 <= self.len, "register outside the mapping");
        // SAFETY: aligned and inside the mapping (checked above), which lives as long as self.
        unsafe { self.base.add(offset).cast::<u32>().read_volatile() }
    }

    /// Writes the little-endian u32 at `offset` (a register or mailbox word: written
    /// once, volatile, in program order with the other volatile accesses). `offset` must
    /// lie in the writable part of the mapping.
    pub fn write_u32(&self, offset: usize, value: u32) {
        let inside = offset.is_multiple_of(4)
            && offset >= self.writable.start
            && offset.checked_add(4).is_some_and(|end| end <= self.writable.end);
        assert!(inside, "write outside the writable part of the mapping");
        // SAFETY: aligned, inside the part mapped read-write (checked above), which lives
        // as long as self.
        unsafe { self.base.add(offset).cast::<u32>().write_volatile(value) }
    }

    /// The little-endian u64 at `offset`.
    pub fn read_u64(&self, offset: usize) -> u64 {
        assert!(offset.is_multiple_of(8) && offset + 8 <= self.len, "register outside the mapping");
        // SAFETY: as in read_u32.
        unsafe { self.base.add(offset).cast::<u64>().read_volatile() }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly what `open` mapped; endpoints using it are dropped first
        // (they are fields declared before the mapping in `Channel`).
        unsafe { libc::munmap(self.base.cast(), self.len) };
    }
}

pub fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(size).unwrap_or(4096)
}
