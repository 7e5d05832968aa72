//! Ports: ARINC 653 sampling and queuing channels over the shared pages described in
//! [`hallows_abi::channel`].
//!
//! - Sampling ([`SamplingWriter`], [`SamplingReader`]): one slot guarded by a sequence
//!   lock; the reader always sees the latest complete message, never a torn one, and learns
//!   whether it is new since its last read.
//! - Queuing ([`QueuingWriter`], [`QueuingReader`]): a single-writer single-reader ring of
//!   `depth` slots; FIFO, no loss, no duplication; the writer gets [`PortError::Full`]
//!   instead of overwriting unread messages.
//!
//! The peer is another partition and may be hostile or restarted: every value read from
//! shared memory is checked, nothing it writes can make an endpoint panic or loop forever.
//! The endpoints work on any [`Region`], so the protocol is tested on the host over plain
//! buffers; [`SamplingWriter::open`] and friends find the region in the boot info.

mod queuing;
mod region;
mod sampling;

use hallows_abi::bootinfo::{BootInfo, ChannelInfo};
use hallows_abi::channel::{self, HEADER_BYTES, SLOT_DATA_OFFSET};
use hallows_abi::layout::{CHANNEL_WINDOW_BYTES, CHANNEL_WINDOW_GPA, PAGE_SIZE};
use hallows_abi::table::{CHANNEL_QUEUING, CHANNEL_SAMPLING};

pub use queuing::{QueuingReader, QueuingWriter};
pub use region::Region;
pub use sampling::{Sample, SamplingReader, SamplingWriter};

/// Why a port operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PortError {
    /// No channel of that name in the boot info.
    NotFound,
    /// The channel exists but is of the other kind, or this partition has the other role.
    WrongKindOrRole,
    /// The channel's description is unusable (size, address or region too small).
    BadGeometry,
    /// The message is longer than the channel's `msg_size`.
    TooLarge,
    /// The caller's buffer is shorter than the message; nothing was consumed.
    BufferTooSmall {
        /// Bytes the message needs.
        needed: usize,
    },
    /// Queuing: `depth` messages are unread.
    Full,
    /// Sampling: the writer was mid-update on every attempt (it may have died mid-write).
    Busy,
    /// The peer left shared state this side cannot make sense of; the endpoint has
    /// resynchronised and dropped what was in flight.
    Inconsistent,
}

/// The shape of a channel's shared region.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    /// Queuing (true) or sampling (false).
    pub queuing: bool,
    /// Largest message in bytes.
    pub msg_size: u32,
    /// Slots (1 for sampling).
    pub depth: u32,
}

/// Largest message the SDK accepts (a sanity bound on what the boot info may claim).
pub const MAX_MESSAGE: u32 = 1 << 20;
/// Deepest queue the SDK accepts.
pub const MAX_DEPTH: u32 = 1 << 16;

impl Geometry {
    /// A checked geometry: `msg_size` in `1..=MAX_MESSAGE`, `depth` in `1..=MAX_DEPTH`
    /// (forced to 1 for sampling).
    pub fn new(queuing: bool, msg_size: u32, depth: u32) -> Result<Self, PortError> {
        let depth = if queuing { depth } else { 1 };
        if msg_size == 0 || msg_size > MAX_MESSAGE || depth == 0 || depth > MAX_DEPTH {
            return Err(PortError::BadGeometry);
        }
        Ok(Self { queuing, msg_size, depth })
    }

    /// Bytes of shared memory the channel needs.
    pub const fn region_bytes(&self) -> u64 {
        channel::region_bytes(self.queuing, self.msg_size, self.depth)
    }

    /// Offset of slot `index`'s metadata.
    pub(crate) const fn slot(&self, index: u64) -> u64 {
        HEADER_BYTES + index * channel::slot_bytes(self.msg_size)
    }

    /// Offset of slot `index`'s data.
    pub(crate) const fn slot_data(&self, index: u64) -> u64 {
        self.slot(index) + SLOT_DATA_OFFSET
    }

    /// Offset of the reader page (queuing).
    pub(crate) const fn reader_page(&self) -> u64 {
        channel::writer_bytes(self.msg_size, self.depth)
    }

    /// The channel kind code of the table format.
    pub(crate) const fn kind(&self) -> u32 {
        if self.queuing {
            CHANNEL_QUEUING as u32
        } else {
            CHANNEL_SAMPLING as u32
        }
    }
}

/// The channel named `name` in the boot info.
pub fn find<'a>(bi: &'a BootInfo, name: &str) -> Option<&'a ChannelInfo> {
    bi.channels().iter().find(|c| c.name() == name)
}

/// Checks a channel description against the wanted kind and role and returns its geometry.
pub fn check_channel(ci: &ChannelInfo, queuing: bool, writer: bool) -> Result<Geometry, PortError> {
    let kind = if queuing { CHANNEL_QUEUING } else { CHANNEL_SAMPLING } as u32;
    if ci.kind != kind || (ci.is_writer != 0) != writer {
        return Err(PortError::WrongKindOrRole);
    }
    let geometry = Geometry::new(queuing, ci.msg_size, ci.depth)?;
    let window_end = CHANNEL_WINDOW_GPA + CHANNEL_WINDOW_BYTES;
    let inside = ci.gpa >= CHANNEL_WINDOW_GPA
        && ci.gpa.is_multiple_of(PAGE_SIZE)
        && ci.bytes <= window_end - ci.gpa
        && ci.gpa < window_end;
    if !inside || ci.bytes < geometry.region_bytes() {
        return Err(PortError::BadGeometry);
    }
    Ok(geometry)
}

/// The region of a checked channel description.
fn region_of(ci: &ChannelInfo, geometry: &Geometry) -> Region {
    // SAFETY: check_channel confirmed the range lies in the channel window and holds the
    // whole layout; the hypervisor maps a partition's channels there for its whole life
    // (readable, and writable on the pages this role writes) and the peer accesses them
    // only as shared memory; the GPA is page aligned and identity-mapped.
    unsafe { Region::new(ci.gpa as *mut u8, geometry.region_bytes() as usize) }
}

/// Copies `src` into the data words starting at `offset`, 8 bytes per relaxed store; the
/// last word is zero-padded.
fn store_words(region: &Region, offset: u64, src: &[u8]) {
    for (i, chunk) in src.chunks(8).enumerate() {
        let mut word = [0u8; 8];
        word[..chunk.len()].copy_from_slice(chunk);
        region
            .u64_at(offset + 8 * i as u64)
            .store(u64::from_le_bytes(word), core::sync::atomic::Ordering::Relaxed);
    }
}

/// Copies data words starting at `offset` into `dst` (all of it), 8 bytes per relaxed load.
fn load_words(region: &Region, offset: u64, dst: &mut [u8]) {
    for (i, chunk) in dst.chunks_mut(8).enumerate() {
        let word = region.u64_at(offset + 8 * i as u64).load(core::sync::atomic::Ordering::Relaxed);
        chunk.copy_from_slice(&word.to_le_bytes()[..chunk.len()]);
    }
}

#[cfg(test)]
mod tests;
