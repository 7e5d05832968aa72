//! Queuing ports: a single-writer, single-reader ring of `depth` slots.
//!
//! The writer fills slot `write_seq % depth` only while `write_seq - read_seq < depth`, then
//! publishes `write_seq + 1` (release). The reader copies slot `read_seq % depth` once it
//! sees `write_seq > read_seq` (acquire), then publishes `read_seq + 1` (release) on its own
//! page, which hands the slot back. Each side writes only its own pages.

use core::sync::atomic::{AtomicU64, Ordering};

use hallows_abi::bootinfo::BootInfo;
use hallows_abi::channel::{
    HEADER_WRITE_SEQ_OFFSET, READER_READ_SEQ_OFFSET, SLOT_LEN_OFFSET, SLOT_SEQ_OFFSET,
};

use super::sampling::init_header;
use super::{check_channel, find, load_words, region_of, store_words, Geometry, PortError, Region};

fn write_seq_word(region: &Region) -> &AtomicU64 {
    region.u64_at(HEADER_WRITE_SEQ_OFFSET)
}

fn read_seq_word<'a>(region: &'a Region, geometry: &Geometry) -> &'a AtomicU64 {
    region.u64_at(geometry.reader_page() + READER_READ_SEQ_OFFSET)
}

/// The writing end of a queuing channel.
#[derive(Debug)]
pub struct QueuingWriter {
    region: Region,
    geometry: Geometry,
    write_seq: u64,
}

impl QueuingWriter {
    /// Opens the queuing channel `name`, which this partition must write.
    pub fn open(bi: &BootInfo, name: &str) -> Result<Self, PortError> {
        let ci = find(bi, name).ok_or(PortError::NotFound)?;
        let geometry = check_channel(ci, true, true)?;
        Self::over(region_of(ci, &geometry), geometry)
    }

    /// A writer over `region` laid out as `geometry` (must be a queuing geometry).
    pub fn over(region: Region, geometry: Geometry) -> Result<Self, PortError> {
        if !geometry.queuing || (region.len() as u64) < geometry.region_bytes() {
            return Err(PortError::BadGeometry);
        }
        init_header(&region, &geometry);
        let mut write_seq = write_seq_word(&region).load(Ordering::Relaxed);
        let read_seq = read_seq_word(&region, &geometry).load(Ordering::Acquire);
        if write_seq.wrapping_sub(read_seq) > geometry.depth as u64 {
            // Our pages were scrubbed (restart) while the reader's were not, or the reader
            // wrote nonsense: continue where the reader is, with an empty queue.
            write_seq = read_seq;
            write_seq_word(&region).store(write_seq, Ordering::Release);
        }
        Ok(Self { region, geometry, write_seq })
    }

    /// Largest message in bytes.
    pub fn msg_size(&self) -> usize {
        self.geometry.msg_size as usize
    }

    /// Slots free for [`QueuingWriter::send`] right now.
    pub fn free_slots(&self) -> u64 {
        let read_seq = read_seq_word(&self.region, &self.geometry).load(Ordering::Acquire);
        (self.geometry.depth as u64).saturating_sub(self.write_seq.wrapping_sub(read_seq))
    }

    /// Appends `msg` to the queue; [`PortError::Full`] when `depth` messages are unread.
    pub fn send(&mut self, msg: &[u8]) -> Result<(), PortError> {
        if msg.len() > self.msg_size() {
            return Err(PortError::TooLarge);
        }
        if self.free_slots() == 0 {
            return Err(PortError::Full);
        }
        let index = self.write_seq % self.geometry.depth as u64;
        let slot = self.geometry.slot(index);
        store_words(&self.region, self.geometry.slot_data(index), msg);
        self.region.u32_at(slot + SLOT_LEN_OFFSET).store(msg.len() as u32, Ordering::Relaxed);
        self.region.u64_at(slot + SLOT_SEQ_OFFSET).store(self.write_seq, Ordering::Relaxed);
        // Counters come from shared memory a hostile peer can set to anything: they wrap
        // instead of overflowing (a panic in debug builds).
        self.write_seq = self.write_seq.wrapping_add(1);
        write_seq_word(&self.region).store(self.write_seq, Ordering::Release);
        Ok(())
    }
}

/// The reading end of a queuing channel.
#[derive(Debug)]
pub struct QueuingReader {
    region: Region,
    geometry: Geometry,
    read_seq: u64,
}

impl QueuingReader {
    /// Opens the queuing channel `name`, which this partition must read.
    pub fn open(bi: &BootInfo, name: &str) -> Result<Self, PortError> {
        let ci = find(bi, name).ok_or(PortError::NotFound)?;
        let geometry = check_channel(ci, true, false)?;
        Self::over(region_of(ci, &geometry), geometry)
    }

    /// A reader over `region` laid out as `geometry` (must be a queuing geometry).
    pub fn over(region: Region, geometry: Geometry) -> Result<Self, PortError> {
        if !geometry.queuing || (region.len() as u64) < geometry.region_bytes() {
            return Err(PortError::BadGeometry);
        }
        // Continue from our own page: after a restart with the channel kept, nothing is
        // read twice.
        let read_seq = read_seq_word(&region, &geometry).load(Ordering::Relaxed);
        Ok(Self { region, geometry, read_seq })
    }

    /// Largest message in bytes.
    pub fn msg_size(&self) -> usize {
        self.geometry.msg_size as usize
    }

    /// Messages waiting (as far as the writer's counter is believable).
    pub fn pending(&self) -> u64 {
        let available = write_seq_word(&self.region).load(Ordering::Acquire).wrapping_sub(self.read_seq);
        available.min(self.geometry.depth as u64)
    }

    /// Takes the oldest message into `buf`, returning its length; `Ok(None)` when empty.
    pub fn receive(&mut self, buf: &mut [u8]) -> Result<Option<usize>, PortError> {
        let write_seq = write_seq_word(&self.region).load(Ordering::Acquire);
        let available = write_seq.wrapping_sub(self.read_seq);
        if available == 0 {
            return Ok(None);
        }
        if available > self.geometry.depth as u64 {
            // The writer's counter is not consistent with ours (restart or corruption):
            // drop what is in flight and continue from the writer's position.
            self.advance_to(write_seq);
            return Err(PortError::Inconsistent);
        }
        let index = self.read_seq % self.geometry.depth as u64;
        let slot = self.geometry.slot(index);
        let len = self.region.u32_at(slot + SLOT_LEN_OFFSET).load(Ordering::Relaxed) as usize;
        let seq = self.region.u64_at(slot + SLOT_SEQ_OFFSET).load(Ordering::Relaxed);
        if len > self.msg_size() || seq != self.read_seq {
            self.advance_to(self.read_seq.wrapping_add(1));
            return Err(PortError::Inconsistent);
        }
        if len > buf.len() {
            return Err(PortError::BufferTooSmall { needed: len });
        }
        load_words(&self.region, self.geometry.slot_data(index), &mut buf[..len]);
        self.advance_to(self.read_seq.wrapping_add(1));
        Ok(Some(len))
    }

    /// Hands slots up to `read_seq` back to the writer (release: our copies are done).
    fn advance_to(&mut self, read_seq: u64) {
        self.read_seq = read_seq;
        read_seq_word(&self.region, &self.geometry).store(read_seq, Ordering::Release);
    }
}
