//! Queuing: a single-producer single-consumer ring of `depth` slots.
//!
//! Message `n` goes into slot `n % depth` (after the counter wraps, message 0 is in slot
//! 0 again). The writer fills it only while `write_seq - read_seq < depth`, then publishes
//! it in the slot (`seq = n + 1`, release) and in the header (`write_seq = n + 1`,
//! release). The reader takes it once the slot says so (acquire), and hands the slot back
//! with `read_seq = n + 1` (release) on its own page. Each side writes only its own pages,
//! and keeps the slot position next to its counter, wrapping it by compare.
//!
//! The reader looks at the writer's counter only when the slot it waits on holds neither
//! the next message nor the previous lap's (the first lap, a restarted or lying writer):
//! a message costs it one cache-line transfer (the slot's), as a raw ping-pong would, and
//! polling an empty queue touches no line the writer writes but the slot. The writer caches the reader's counter and reloads it only when the ring looks
//! full. When the slot and the counter disagree (a restarted writer, or a hostile one) the
//! reader reports [`RingError::Inconsistent`] and resynchronises.

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use hallows_abi::channel::{
    HEADER_WRITE_SEQ_OFFSET, READER_READ_SEQ_OFFSET, SLOT_DATA_OFFSET, SLOT_LEN_OFFSET, SLOT_SEQ_OFFSET,
};

use crate::region::copy_bytes;
use crate::{init_header, Geometry, Region, RingError};

/// Where both ends of a queue find the counters and slots, computed and bounds-checked
/// once when the endpoint is built, so that a message costs no bounds check but the
/// length's.
#[derive(Debug)]
struct Ring {
    region: Region,
    geometry: Geometry,
    /// `write_seq` (writer pages) and `read_seq` (reader page).
    write_seq: *const AtomicU64,
    read_seq: *const AtomicU64,
    /// Slot 0 and bytes between slots.
    slots: *mut u8,
    stride: usize,
}

// SAFETY: the pointers point into the region, which a `Region` may be sent with (see
// `Region`); they are only dereferenced through the atomics and copies described there.
unsafe impl Send for Ring {}

impl Ring {
    fn new(region: Region, geometry: Geometry) -> Result<Self, RingError> {
        geometry.check_region(&region, true)?;
        let write_seq: *const AtomicU64 = region.u64_at(HEADER_WRITE_SEQ_OFFSET as usize);
        let read_seq: *const AtomicU64 =
            region.u64_at(geometry.writer_bytes() as usize + READER_READ_SEQ_OFFSET as usize);
        let (first, stride) = (geometry.slot_offset(0), geometry.slot_stride());
        // The last slot ends inside the writer pages: every slot below `depth` is
        // addressable (true of the layout; checked because the pointers rely on it).
        if first + geometry.depth as usize * stride > geometry.writer_bytes() as usize {
            return Err(RingError::BadGeometry);
        }
        // SAFETY: `first` is inside the region (checked just above).
        let slots = unsafe { region.base().add(first) };
        Ok(Self { region, geometry, write_seq, read_seq, slots, stride })
    }

    #[inline]
    fn write_seq(&self) -> &AtomicU64 {
        // SAFETY: checked in bounds and aligned by `Region::u64_at` in `new`; the region
        // lives as long as the endpoint (contract of `Region::new`).
        unsafe { &*self.write_seq }
    }

    #[inline]
    fn read_seq(&self) -> &AtomicU64 {
        // SAFETY: as in `write_seq`.
        unsafe { &*self.read_seq }
    }

    #[inline]
    fn depth(&self) -> u64 {
        self.geometry.depth as u64
    }

    /// The slot at `position`, which the endpoints keep below `depth`.
    #[inline]
    fn slot(&self, position: u32) -> Slot {
        debug_assert!(position < self.geometry.depth);
        // SAFETY: position < depth, and `new` checked that `depth` slots fit the region.
        Slot(unsafe { self.slots.add(position as usize * self.stride) })
    }
}

/// One slot: `seq`, `len`, then at least `msg_size` bytes of data, inside the region.
#[derive(Clone, Copy)]
struct Slot(*mut u8);

impl Slot {
    /// `n + 1` once message `n` is in the slot.
    #[inline]
    fn seq<'a>(self) -> &'a AtomicU64 {
        // SAFETY: slots are 64-byte aligned inside the live region (see `Ring::slot`); the
        // word is only accessed atomically.
        unsafe { &*self.0.add(SLOT_SEQ_OFFSET as usize).cast::<AtomicU64>() }
    }

    #[inline]
    fn len<'a>(self) -> &'a AtomicU32 {
        // SAFETY: as in `seq`.
        unsafe { &*self.0.add(SLOT_LEN_OFFSET as usize).cast::<AtomicU32>() }
    }

    /// Copies `msg` (at most `msg_size` bytes, checked by the caller) into the data.
    #[inline]
    fn store(self, msg: &[u8]) {
        // SAFETY: the slot's data holds `msg_size` bytes inside the region and the caller
        // checked `msg.len() <= msg_size`; the writer writes only its own pages' slots.
        unsafe { copy_bytes(msg.as_ptr(), self.0.add(SLOT_DATA_OFFSET as usize), msg.len()) }
    }

    /// Copies the first `buf.len()` bytes of data (at most `msg_size`, checked by the
    /// caller) into `buf`.
    #[inline]
    fn load(self, buf: &mut [u8]) {
        // SAFETY: as in `store`, reading.
        unsafe { copy_bytes(self.0.add(SLOT_DATA_OFFSET as usize), buf.as_mut_ptr(), buf.len()) }
    }
}

impl Ring {
    /// Whether every message from `read_seq` up to `write_seq` (at most `depth`) carries
    /// its `seq` in its slot, as an honest writer leaves them; a writer taking over pages
    /// that do not (a predecessor that lied) restarts at the reader's position instead, so
    /// that the reader never waits on a message the counter claims and no slot holds.
    fn in_flight_published(&self, read_seq: u64, write_seq: u64) -> bool {
        let mut n = read_seq;
        while n != write_seq {
            let next = n.wrapping_add(1);
            if self.slot(self.position_of(n)).seq().load(Ordering::Acquire) != next {
                return false;
            }
            n = next;
        }
        true
    }

    /// The slot position of message `seq` (a division: only when (re)synchronising).
    fn position_of(&self, seq: u64) -> u32 {
        (seq % self.depth()) as u32
    }

    /// The position of message `seq`, the one after the message at `position`: `seq %
    /// depth` by compare, not division. At the counter's wrap to 0 the position restarts
    /// at 0 too (`u64::MAX + 1` is not a multiple of every depth).
    #[inline]
    fn next(&self, position: u32, seq: u64) -> u32 {
        let next = position + 1;
        if next == self.geometry.depth || seq == 0 {
            0
        } else {
            next
        }
    }
}

/// The writing end of a queuing channel.
#[derive(Debug)]
pub struct QueueWriter {
    ring: Ring,
    /// Messages published so far (our copy of `write_seq`).
    write_seq: u64,
    /// Slot of message `write_seq`.
    position: u32,
    /// `read_seq` as last loaded: slots up to `read_seq_seen + depth` are free.
    read_seq_seen: u64,
}

impl QueueWriter {
    /// A writer over `region` laid out as `geometry` (a queuing geometry). Continues the
    /// counters found there; when they make no sense (our pages were scrubbed by a restart
    /// while the reader's were not, or the reader wrote nonsense) it restarts at the
    /// reader's position with an empty queue.
    pub fn over(region: Region, geometry: Geometry) -> Result<Self, RingError> {
        let ring = Ring::new(region, geometry)?;
        init_header(&ring.region, &geometry);
        let mut write_seq = ring.write_seq().load(Ordering::Relaxed);
        let read_seq = ring.read_seq().load(Ordering::Acquire);
        if write_seq.wrapping_sub(read_seq) > ring.depth() || !ring.in_flight_published(read_seq, write_seq) {
            write_seq = read_seq;
            ring.write_seq().store(write_seq, Ordering::Release);
        }
        let position = ring.position_of(write_seq);
        Ok(Self { ring, write_seq, position, read_seq_seen: read_seq })
    }

    /// Largest message in bytes.
    pub fn msg_size(&self) -> usize {
        self.ring.geometry.msg_size as usize
    }

    /// The channel's geometry.
    pub fn geometry(&self) -> Geometry {
        self.ring.geometry
    }

    /// Slots free for [`QueueWriter::send`] right now (loads the reader's counter).
    pub fn free_slots(&mut self) -> u64 {
        self.read_seq_seen = self.ring.read_seq().load(Ordering::Acquire);
        self.ring.depth().saturating_sub(self.write_seq.wrapping_sub(self.read_seq_seen))
    }

    /// Appends `msg` to the queue; [`RingError::Full`] when `depth` messages are unread.
    #[inline]
    pub fn send(&mut self, msg: &[u8]) -> Result<(), RingError> {
        if msg.len() > self.msg_size() {
            return Err(RingError::TooLarge);
        }
        // A reader that hands back more than we sent (hostile) makes the difference wrap to
        // a huge value: the queue then stays full until it says something sensible.
        if self.write_seq.wrapping_sub(self.read_seq_seen) >= self.ring.depth() && self.free_slots() == 0 {
            return Err(RingError::Full);
        }
        let slot = self.ring.slot(self.position);
        slot.store(msg);
        slot.len().store(msg.len() as u32, Ordering::Relaxed);
        // Counters may have been set to anything by a hostile peer: they wrap instead of
        // overflowing.
        let published = self.write_seq.wrapping_add(1);
        // Release: the slot's bytes are visible before the reader can see the message, in
        // the slot first (what a waiting reader polls), then in the header.
        slot.seq().store(published, Ordering::Release);
        self.write_seq = published;
        self.position = self.ring.next(self.position, published);
        self.ring.write_seq().store(published, Ordering::Release);
        Ok(())
    }
}

/// The reading end of a queuing channel.
#[derive(Debug)]
pub struct QueueReader {
    ring: Ring,
    /// Messages consumed so far (our copy of `read_seq`).
    read_seq: u64,
    /// Slot of message `read_seq`.
    position: u32,
}

impl QueueReader {
    /// A reader over `region` laid out as `geometry` (a queuing geometry). Continues from
    /// the counter on its own page: after a restart that kept the channel, nothing is read
    /// twice.
    pub fn over(region: Region, geometry: Geometry) -> Result<Self, RingError> {
        let ring = Ring::new(region, geometry)?;
        let read_seq = ring.read_seq().load(Ordering::Relaxed);
        let position = ring.position_of(read_seq);
        Ok(Self { ring, read_seq, position })
    }

    /// Largest message in bytes.
    pub fn msg_size(&self) -> usize {
        self.ring.geometry.msg_size as usize
    }

    /// The channel's geometry.
    pub fn geometry(&self) -> Geometry {
        self.ring.geometry
    }

    /// Messages waiting, as far as the writer's counter is believable (at most `depth`).
    pub fn pending(&self) -> u64 {
        let available = self.ring.write_seq().load(Ordering::Acquire).wrapping_sub(self.read_seq);
        if available > self.ring.depth() {
            0
        } else {
            available
        }
    }

    /// Takes the oldest message into `buf`, returning its length; `Ok(None)` when empty.
    #[inline]
    pub fn receive(&mut self, buf: &mut [u8]) -> Result<Option<usize>, RingError> {
        let expected = self.read_seq.wrapping_add(1);
        // Acquire: the slot's length and bytes are the writer's for this message.
        let slot = self.ring.slot(self.position);
        let seq = slot.seq().load(Ordering::Acquire);
        if seq != expected {
            // Still the message of the previous lap: empty, as far as the slot can tell;
            // the writer's counter is only worth a cache miss when the slot says
            // something else (first lap, a restarted or lying writer).
            if (seq != 0 && seq == expected.wrapping_sub(self.ring.depth())) || !self.check_writer()? {
                return Ok(None);
            }
        }
        let len = slot.len().load(Ordering::Relaxed) as usize;
        if len > self.msg_size() {
            self.advance_to(self.read_seq.wrapping_add(1));
            return Err(RingError::Inconsistent);
        }
        if len > buf.len() {
            return Err(RingError::BufferTooSmall { needed: len });
        }
        slot.load(&mut buf[..len]);
        self.advance_to(self.read_seq.wrapping_add(1));
        Ok(Some(len))
    }

    /// The slot we wait on does not hold the next message: asks the writer's counter.
    /// `Ok(false)` when the queue is empty; `Ok(true)` when the slot holds the message
    /// after all (it arrived meanwhile); an error when the two disagree.
    #[cold]
    fn check_writer(&mut self) -> Result<bool, RingError> {
        let write_seq = self.ring.write_seq().load(Ordering::Acquire);
        let available = write_seq.wrapping_sub(self.read_seq);
        // The counter may trail the slots: the writer publishes in the slot first, and we
        // may already have taken messages its counter does not show yet. Up to `depth`
        // behind is "nothing new"; it also bounds how far a lying writer can walk us past
        // its counter before we say the queue is empty.
        if available == 0 || self.read_seq.wrapping_sub(write_seq) <= self.ring.depth() {
            return Ok(false);
        }
        if available > self.ring.depth() {
            // Not consistent with our counter (the writer restarted with scrubbed pages,
            // or lies): drop what is in flight and continue from the writer's position.
            self.advance_to(write_seq);
            self.position = self.ring.position_of(write_seq);
            return Err(RingError::Inconsistent);
        }
        // The writer stores the slot's seq before its counter: having seen the counter
        // (acquire), the slot's seq is there unless the writer lies.
        if self.ring.slot(self.position).seq().load(Ordering::Acquire) == self.read_seq.wrapping_add(1) {
            return Ok(true);
        }
        self.advance_to(self.read_seq.wrapping_add(1));
        Err(RingError::Inconsistent)
    }

    /// Hands slots up to `read_seq` back to the writer (release: our copies are done).
    #[inline]
    fn advance_to(&mut self, read_seq: u64) {
        self.read_seq = read_seq;
        self.position = self.ring.next(self.position, read_seq);
        self.ring.read_seq().store(read_seq, Ordering::Release);
    }
}
