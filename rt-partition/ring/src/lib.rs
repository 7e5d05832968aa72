//! The two channel protocols of RustHallows over a shared byte region, used by the
//! real-time SDK (`rt-partition`) and by the Linux side (`rhlink`) alike, so that both
//! ends of a channel always run the same code. The layout is
//! [`hallows_abi::channel`]'s.
//!
//! - Queuing ([`QueueWriter`], [`QueueReader`]): a single-producer single-consumer ring of
//!   `depth` slots; FIFO, no loss, no duplication; the writer gets [`RingError::Full`]
//!   instead of overwriting unread messages. Each side keeps a copy of the other side's
//!   index and reloads it only when the ring looks full (writer) or empty (reader), so a
//!   message in a busy ring costs no cache miss on the indices; a message is copied into
//!   and out of its slot with one `copy_nonoverlapping`; slot positions wrap by compare,
//!   never by division (any depth works).
//! - Sampling ([`SampleWriter`], [`SampleReader`]): the latest value, in four slots
//!   (Simpson's four-slot mechanism, see [`hallows_abi::channel`]): a read and a write each
//!   take a fixed number of steps whatever the other side does, so a reader against a
//!   writer at full speed still gets a complete value on every call.
//!
//! The peer is another partition (or Linux) and may be hostile: every value read from
//! shared memory is checked before use and nothing it writes can make an endpoint access
//! memory outside its region, panic or loop. A hostile peer can at worst make the data of
//! its own messages garbage, which the reader reports as [`RingError::Inconsistent`] where
//! it can tell (lengths, counters).
#![no_std]

mod queue;
mod region;
mod sample;

use hallows_abi::channel;
use hallows_abi::table::{CHANNEL_QUEUING, CHANNEL_SAMPLING};

pub use queue::{QueueReader, QueueWriter};
pub use region::Region;
pub use sample::{Sample, SampleReader, SampleWriter};

/// Why a ring operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RingError {
    /// The geometry is out of bounds, of the other kind, or the region is too small or
    /// misaligned for it.
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
    /// The peer left shared state this side cannot make sense of; the endpoint has
    /// resynchronised and dropped what was in flight.
    Inconsistent,
}

/// Largest message accepted (a sanity bound on what a description may claim; it keeps
/// every offset computation far from overflowing).
pub const MAX_MESSAGE: u32 = 1 << 20;
/// Deepest queue accepted.
pub const MAX_DEPTH: u32 = 1 << 16;

/// The shape of a channel's shared region.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    /// Queuing (true) or sampling (false).
    pub queuing: bool,
    /// Largest message in bytes.
    pub msg_size: u32,
    /// Queue slots (1 for sampling, which always has four slots of its own kind).
    pub depth: u32,
}

impl Geometry {
    /// A checked geometry: `msg_size` in `1..=MAX_MESSAGE`, `depth` in `1..=MAX_DEPTH`
    /// (forced to 1 for sampling).
    pub fn new(queuing: bool, msg_size: u32, depth: u32) -> Result<Self, RingError> {
        let depth = if queuing { depth } else { 1 };
        if msg_size == 0 || msg_size > MAX_MESSAGE || depth == 0 || depth > MAX_DEPTH {
            return Err(RingError::BadGeometry);
        }
        Ok(Self { queuing, msg_size, depth })
    }

    /// Bytes of shared memory the channel needs (writer pages and reader page).
    pub const fn region_bytes(&self) -> u64 {
        channel::region_bytes(self.queuing, self.msg_size, self.depth)
    }

    /// Bytes of the writer pages at the start of the region; the reader page follows.
    pub const fn writer_bytes(&self) -> u64 {
        channel::writer_bytes(self.queuing, self.msg_size, self.depth)
    }

    /// The channel kind code of the table format.
    pub const fn kind(&self) -> u32 {
        if self.queuing {
            CHANNEL_QUEUING as u32
        } else {
            CHANNEL_SAMPLING as u32
        }
    }

    /// Byte offset of slot `index` (below the slot count, checked by callers).
    #[inline]
    pub(crate) const fn slot_offset(&self, index: u64) -> usize {
        channel::slot_offset(self.msg_size, index) as usize
    }

    /// Bytes between consecutive slots.
    #[inline]
    pub(crate) const fn slot_stride(&self) -> usize {
        channel::slot_bytes(self.msg_size) as usize
    }

    /// Checks that `region` can hold this geometry of the wanted kind.
    fn check_region(&self, region: &Region, queuing: bool) -> Result<(), RingError> {
        let aligned = (region.base() as usize).is_multiple_of(channel::CACHE_LINE as usize);
        if self.queuing != queuing || (region.len() as u64) < self.region_bytes() || !aligned {
            return Err(RingError::BadGeometry);
        }
        Ok(())
    }
}

/// Fills in the header's static fields if they do not describe `geometry` yet (first open
/// by the writer, or after the region was zeroed). The reader never depends on them: they
/// are for people looking at the memory, and for tools.
fn init_header(region: &Region, geometry: &Geometry) {
    let fields = [
        (channel::HEADER_KIND_OFFSET, geometry.kind()),
        (channel::HEADER_MSG_SIZE_OFFSET, geometry.msg_size),
        (channel::HEADER_DEPTH_OFFSET, geometry.depth),
    ];
    let magic = region.u32_at(channel::HEADER_MAGIC_OFFSET as usize);
    let described = magic.load(core::sync::atomic::Ordering::Acquire) == channel::CHANNEL_MAGIC
        && fields
            .iter()
            .all(|&(off, v)| region.u32_at(off as usize).load(core::sync::atomic::Ordering::Relaxed) == v);
    if !described {
        for (off, v) in fields {
            region.u32_at(off as usize).store(v, core::sync::atomic::Ordering::Relaxed);
        }
        magic.store(channel::CHANNEL_MAGIC, core::sync::atomic::Ordering::Release);
    }
}

#[cfg(test)]
mod tests;
