//! Little-endian reads and writes at positions that may be wrong: the region can hold
//! garbage after a crash, so every access is checked and a bad position is `None`, never
//! a panic.

pub(crate) fn get_u32(buf: &[u8], at: usize) -> Option<u32> {
    let end = at.checked_add(4)?;
    let bytes: [u8; 4] = buf.get(at..end)?.try_into().ok()?;
    Some(u32::from_le_bytes(bytes))
}

pub(crate) fn get_u64(buf: &[u8], at: usize) -> Option<u64> {
    let end = at.checked_add(8)?;
    let bytes: [u8; 8] = buf.get(at..end)?.try_into().ok()?;
    Some(u64::from_le_bytes(bytes))
}

/// Copies `bytes` to `buf[at..]`; `None` (and nothing written) if they do not fit.
pub(crate) fn put(buf: &mut [u8], at: usize, bytes: &[u8]) -> Option<()> {
    let end = at.checked_add(bytes.len())?;
    buf.get_mut(at..end)?.copy_from_slice(bytes);
    Some(())
}

/// Zeroes `buf[at..at + len]`, clipped to the buffer (zeroing is used to invalidate, and
/// a clipped tail has nothing to invalidate).
pub(crate) fn zero(buf: &mut [u8], at: usize, len: usize) {
    let end = at.saturating_add(len).min(buf.len());
    if let Some(bytes) = buf.get_mut(at..end) {
        bytes.fill(0);
    }
}

/// FNV-1a, 32 bits: the key → partition hash. Chosen because it is tiny, needs no table
/// and is stable across builds and machines (clients may compute placement themselves).
pub fn fnv1a_32(bytes: &[u8]) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for &b in bytes {
        hash ^= u32::from(b);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash
}

/// FNV-1a, 64 bits: the configuration fingerprint kept in the region header.
pub(crate) struct Fnv64(u64);

impl Fnv64 {
    pub(crate) fn new() -> Self {
        Fnv64(0xcbf2_9ce4_8422_2325)
    }

    pub(crate) fn bytes(&mut self, bytes: &[u8]) -> &mut Self {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
        self
    }

    pub(crate) fn u64(&mut self, value: u64) -> &mut Self {
        self.bytes(&value.to_le_bytes())
    }

    pub(crate) fn finish(&self) -> u64 {
        self.0
    }
}
