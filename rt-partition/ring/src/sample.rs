//! Sampling: the latest value, in four slots (Simpson's four-slot mechanism).
//!
//! The slots form two pairs. Control words, each written by one side only:
//! `latest_pair` and `pair_slot[2]` (writer pages), `reading_pair` (reader page).
//!
//! ```text
//! write(msg):  pair = 1 - reading_pair; slot = 1 - pair_slot[pair]
//!              copy msg into slot (pair, slot); pair_slot[pair] = slot; latest_pair = pair
//! read():      pair = latest_pair; reading_pair = pair; slot = pair_slot[pair]
//!              copy slot (pair, slot) out
//! ```
//! With the control words sequentially consistent, the writer never writes the slot the
//! reader is copying, and the reader gets the newest complete value or one newer; neither
//! side ever waits or retries, so a read takes a bounded number of steps however fast the
//! writer writes, and a writer that dies mid-write leaves the previous value readable.
//!
//! Each slot carries the writer's message count: the reader learns whether a value is new
//! since its last read. A hostile writer can make the data garbage; its lengths are
//! checked, and every index it controls is reduced to 0 or 1 before use.

use core::sync::atomic::{AtomicU32, Ordering};

use hallows_abi::channel::{
    HEADER_LATEST_PAIR_OFFSET, HEADER_PAIR_SLOT_OFFSET, READER_READING_PAIR_OFFSET, SAMPLING_SLOTS,
    SLOT_DATA_OFFSET as SAMPLE_SLOT_DATA_OFFSET, SLOT_LEN_OFFSET as SAMPLE_SLOT_LEN_OFFSET,
    SLOT_SEQ_OFFSET as SAMPLE_SLOT_SEQ_OFFSET,
};

use crate::{init_header, Geometry, Region, RingError};

/// Offsets both ends share.
#[derive(Debug)]
struct Slots {
    region: Region,
    geometry: Geometry,
    reading_pair_at: usize,
}

impl Slots {
    fn new(region: Region, geometry: Geometry) -> Result<Self, RingError> {
        geometry.check_region(&region, false)?;
        let reading_pair_at = geometry.writer_bytes() as usize + READER_READING_PAIR_OFFSET as usize;
        Ok(Self { region, geometry, reading_pair_at })
    }

    fn latest_pair(&self) -> &AtomicU32 {
        self.region.u32_at(HEADER_LATEST_PAIR_OFFSET as usize)
    }

    fn pair_slot(&self, pair: usize) -> &AtomicU32 {
        self.region.u32_at(HEADER_PAIR_SLOT_OFFSET as usize + 4 * pair)
    }

    fn reading_pair(&self) -> &AtomicU32 {
        self.region.u32_at(self.reading_pair_at)
    }

    /// Offset of slot `slot` (0 or 1) of pair `pair` (0 or 1).
    #[inline]
    fn slot(&self, pair: usize, slot: usize) -> usize {
        self.geometry.slot_offset((2 * pair + slot) as u64)
    }

    /// The message count stored in slot `index` (0..4).
    fn seq_of(&self, index: u64) -> u64 {
        let at = self.geometry.slot_offset(index) + SAMPLE_SLOT_SEQ_OFFSET as usize;
        self.region.u64_at(at).load(Ordering::Relaxed)
    }
}

/// The writing end of a sampling channel.
#[derive(Debug)]
pub struct SampleWriter {
    slots: Slots,
    /// Our copy of `pair_slot`.
    pair_slot: [usize; 2],
    /// Messages published so far.
    count: u64,
}

impl SampleWriter {
    /// A writer over `region` laid out as `geometry` (a sampling geometry). Continues the
    /// count and slot choice found there (a restart that kept the channel).
    pub fn over(region: Region, geometry: Geometry) -> Result<Self, RingError> {
        let slots = Slots::new(region, geometry)?;
        init_header(&slots.region, &geometry);
        let pair_slot = [0, 1].map(|p| (slots.pair_slot(p).load(Ordering::SeqCst) & 1) as usize);
        let count = (0..SAMPLING_SLOTS as u64).map(|i| slots.seq_of(i)).max().unwrap_or(0);
        Ok(Self { slots, pair_slot, count })
    }

    /// Largest message in bytes.
    pub fn msg_size(&self) -> usize {
        self.slots.geometry.msg_size as usize
    }

    /// The channel's geometry.
    pub fn geometry(&self) -> Geometry {
        self.slots.geometry
    }

    /// Publishes `msg` as the channel's current value.
    #[inline]
    pub fn write(&mut self, msg: &[u8]) -> Result<(), RingError> {
        if msg.len() > self.msg_size() {
            return Err(RingError::TooLarge);
        }
        // The reader's word: a hostile reader can only choose which pair we avoid.
        let pair = 1 - (self.slots.reading_pair().load(Ordering::SeqCst) & 1) as usize;
        let slot = 1 - self.pair_slot[pair];
        let at = self.slots.slot(pair, slot);
        // 0 means "never written": a count at u64::MAX (garbage left in our pages by a
        // predecessor) wraps to 1.
        self.count = self.count.checked_add(1).unwrap_or(1);
        self.slots.region.copy_in(at + SAMPLE_SLOT_DATA_OFFSET as usize, msg);
        let region = &self.slots.region;
        region.u32_at(at + SAMPLE_SLOT_LEN_OFFSET as usize).store(msg.len() as u32, Ordering::Relaxed);
        region.u64_at(at + SAMPLE_SLOT_SEQ_OFFSET as usize).store(self.count, Ordering::Relaxed);
        // Release (part of SeqCst): the slot is complete before a reader can pick it.
        self.slots.pair_slot(pair).store(slot as u32, Ordering::SeqCst);
        self.pair_slot[pair] = slot;
        self.slots.latest_pair().store(pair as u32, Ordering::SeqCst);
        Ok(())
    }
}

/// What a successful sampling read returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sample {
    /// Bytes of the message (at the start of the caller's buffer).
    pub len: usize,
    /// How many messages the writer has published, this one included.
    pub count: u64,
    /// Whether the value changed since this reader's previous successful read.
    pub fresh: bool,
}

/// The reading end of a sampling channel.
#[derive(Debug)]
pub struct SampleReader {
    slots: Slots,
    last_count: u64,
}

impl SampleReader {
    /// A reader over `region` laid out as `geometry` (a sampling geometry).
    pub fn over(region: Region, geometry: Geometry) -> Result<Self, RingError> {
        Ok(Self { slots: Slots::new(region, geometry)?, last_count: 0 })
    }

    /// Largest message in bytes.
    pub fn msg_size(&self) -> usize {
        self.slots.geometry.msg_size as usize
    }

    /// The channel's geometry.
    pub fn geometry(&self) -> Geometry {
        self.slots.geometry
    }

    /// Copies the current value into `buf`; `Ok(None)` when nothing was ever written.
    /// Takes a fixed number of steps whatever the writer does.
    #[inline]
    pub fn read(&mut self, buf: &mut [u8]) -> Result<Option<Sample>, RingError> {
        let pair = (self.slots.latest_pair().load(Ordering::SeqCst) & 1) as usize;
        // SeqCst store: the writer sees our pair before we look at which slot to read, so
        // it keeps away from that pair's slots from its next write on.
        self.slots.reading_pair().store(pair as u32, Ordering::SeqCst);
        let slot = (self.slots.pair_slot(pair).load(Ordering::SeqCst) & 1) as usize;
        let at = self.slots.slot(pair, slot);
        let region = &self.slots.region;
        let count = region.u64_at(at + SAMPLE_SLOT_SEQ_OFFSET as usize).load(Ordering::Relaxed);
        if count == 0 {
            return Ok(None);
        }
        let len = region.u32_at(at + SAMPLE_SLOT_LEN_OFFSET as usize).load(Ordering::Relaxed) as usize;
        if len > self.msg_size() {
            return Err(RingError::Inconsistent);
        }
        if len > buf.len() {
            return Err(RingError::BufferTooSmall { needed: len });
        }
        region.copy_out(at + SAMPLE_SLOT_DATA_OFFSET as usize, &mut buf[..len]);
        let fresh = count != self.last_count;
        self.last_count = count;
        Ok(Some(Sample { len, count, fresh }))
    }
}
