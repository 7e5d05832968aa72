//! Sampling ports: one slot, latest value wins, guarded by a sequence lock.
//!
//! The writer makes the slot's `seq` odd, fences, stores the data, then makes `seq` even
//! with release ordering. The reader loads `seq` (acquire), copies, fences (acquire) and
//! loads `seq` again: equal and even means the copy is one complete message.

use core::sync::atomic::{fence, Ordering};

use hallows_abi::bootinfo::BootInfo;
use hallows_abi::channel::{CHANNEL_MAGIC, SLOT_LEN_OFFSET, SLOT_SEQ_OFFSET};

use super::{check_channel, find, load_words, region_of, store_words, Geometry, PortError, Region};

/// How often a reader retries while the writer is mid-update before giving up with
/// [`PortError::Busy`] (bounded so a writer that died mid-write cannot hang the reader).
pub const READ_ATTEMPTS: usize = 64;

/// Fills in the channel header if it does not describe `geometry` yet (first open by the
/// writer, or after the hypervisor zeroed the region).
pub(super) fn init_header(region: &Region, geometry: &Geometry) {
    let fields = [(4, geometry.kind()), (8, geometry.msg_size), (12, geometry.depth)];
    let described = region.u32_at(0).load(Ordering::Acquire) == CHANNEL_MAGIC
        && fields.iter().all(|&(off, v)| region.u32_at(off).load(Ordering::Relaxed) == v);
    if !described {
        for (off, v) in fields {
            region.u32_at(off).store(v, Ordering::Relaxed);
        }
        region.u32_at(0).store(CHANNEL_MAGIC, Ordering::Release);
    }
}

/// The writing end of a sampling channel.
#[derive(Debug)]
pub struct SamplingWriter {
    region: Region,
    geometry: Geometry,
    /// The slot's sequence number as this writer last left it (always even).
    seq: u64,
}

impl SamplingWriter {
    /// Opens the sampling channel `name`, which this partition must write.
    pub fn open(bi: &BootInfo, name: &str) -> Result<Self, PortError> {
        let ci = find(bi, name).ok_or(PortError::NotFound)?;
        let geometry = check_channel(ci, false, true)?;
        Self::over(region_of(ci, &geometry), geometry)
    }

    /// A writer over `region` laid out as `geometry` (must be a sampling geometry).
    pub fn over(region: Region, geometry: Geometry) -> Result<Self, PortError> {
        if geometry.queuing || (region.len() as u64) < geometry.region_bytes() {
            return Err(PortError::BadGeometry);
        }
        init_header(&region, &geometry);
        // A predecessor (before a restart) may have died mid-write and left `seq` odd:
        // continue from the next even value so readers never take a half-written slot as
        // complete.
        let current = region.u64_at(geometry.slot(0) + SLOT_SEQ_OFFSET).load(Ordering::Relaxed);
        let seq = current.saturating_add(1) & !1;
        Ok(Self { region, geometry, seq })
    }

    /// Largest message in bytes.
    pub fn msg_size(&self) -> usize {
        self.geometry.msg_size as usize
    }

    /// Publishes `msg` as the channel's current value.
    pub fn write(&mut self, msg: &[u8]) -> Result<(), PortError> {
        if msg.len() > self.msg_size() {
            return Err(PortError::TooLarge);
        }
        self.begin();
        store_words(&self.region, self.geometry.slot_data(0), msg);
        self.region
            .u32_at(self.geometry.slot(0) + SLOT_LEN_OFFSET)
            .store(msg.len() as u32, Ordering::Relaxed);
        self.finish();
        Ok(())
    }

    /// Marks the slot as being written (odd sequence number).
    pub(super) fn begin(&mut self) {
        self.seq_word().store(self.seq + 1, Ordering::Relaxed);
        // Orders the odd mark before the data stores that follow.
        fence(Ordering::Release);
    }

    /// Publishes the slot (even sequence number, release).
    pub(super) fn finish(&mut self) {
        self.seq += 2;
        self.seq_word().store(self.seq, Ordering::Release);
    }

    fn seq_word(&self) -> &core::sync::atomic::AtomicU64 {
        self.region.u64_at(self.geometry.slot(0) + SLOT_SEQ_OFFSET)
    }
}

/// What a successful sampling read returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sample {
    /// Bytes of the message (at the start of the caller's buffer).
    pub len: usize,
    /// How many messages the writer has published (this one included).
    pub count: u64,
    /// Whether the message changed since this reader's previous successful read.
    pub fresh: bool,
}

/// The reading end of a sampling channel.
#[derive(Debug)]
pub struct SamplingReader {
    region: Region,
    geometry: Geometry,
    last_seq: u64,
}

impl SamplingReader {
    /// Opens the sampling channel `name`, which this partition must read.
    pub fn open(bi: &BootInfo, name: &str) -> Result<Self, PortError> {
        let ci = find(bi, name).ok_or(PortError::NotFound)?;
        let geometry = check_channel(ci, false, false)?;
        Self::over(region_of(ci, &geometry), geometry)
    }

    /// A reader over `region` laid out as `geometry` (must be a sampling geometry).
    pub fn over(region: Region, geometry: Geometry) -> Result<Self, PortError> {
        if geometry.queuing || (region.len() as u64) < geometry.region_bytes() {
            return Err(PortError::BadGeometry);
        }
        Ok(Self { region, geometry, last_seq: 0 })
    }

    /// Largest message in bytes.
    pub fn msg_size(&self) -> usize {
        self.geometry.msg_size as usize
    }

    /// Copies the current message into `buf`. `Ok(None)` when nothing was ever written.
    pub fn read(&mut self, buf: &mut [u8]) -> Result<Option<Sample>, PortError> {
        let slot = self.geometry.slot(0);
        let seq_word = self.region.u64_at(slot + SLOT_SEQ_OFFSET);
        for _ in 0..READ_ATTEMPTS {
            let before = seq_word.load(Ordering::Acquire);
            if before & 1 == 1 {
                core::hint::spin_loop();
                continue;
            }
            if before == 0 {
                return Ok(None);
            }
            let len = self.region.u32_at(slot + SLOT_LEN_OFFSET).load(Ordering::Relaxed) as usize;
            let copy = len.min(buf.len()).min(self.msg_size());
            load_words(&self.region, self.geometry.slot_data(0), &mut buf[..copy]);
            // Orders the data loads before the re-check of the sequence number.
            fence(Ordering::Acquire);
            if seq_word.load(Ordering::Relaxed) != before {
                continue;
            }
            if len > self.msg_size() {
                return Err(PortError::Inconsistent);
            }
            if len > buf.len() {
                return Err(PortError::BufferTooSmall { needed: len });
            }
            let fresh = before != self.last_seq;
            self.last_seq = before;
            return Ok(Some(Sample { len, count: before / 2, fresh }));
        }
        Err(PortError::Busy)
    }
}
