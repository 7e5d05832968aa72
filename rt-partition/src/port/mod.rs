//! Ports: ARINC 653 sampling and queuing channels, opened by name from the boot info.
//!
//! The protocols themselves are the `hallows-ring` crate's (shared with the Linux side, so
//! the two ends of a channel never drift apart); this module finds a channel in the boot
//! info, checks its description and maps ring errors to [`PortError`].
//!
//! - Sampling ([`SamplingWriter`], [`SamplingReader`]): the latest value in four slots;
//!   a read always returns a complete value in a fixed number of steps, however fast the
//!   writer writes, and says whether it is new since the reader's last read.
//! - Queuing ([`QueuingWriter`], [`QueuingReader`]): a single-writer single-reader ring of
//!   `depth` slots; FIFO, no loss, no duplication; the writer gets [`PortError::Full`]
//!   instead of overwriting unread messages.
//!
//! The peer is another partition (or Linux) and may be hostile or restarted: every value
//! read from shared memory is checked, nothing it writes can make an endpoint panic, loop
//! or access memory outside the channel.

use hallows_abi::bootinfo::{BootInfo, ChannelInfo};
use hallows_abi::layout::{CHANNEL_WINDOW_BYTES, CHANNEL_WINDOW_GPA, PAGE_SIZE};
use hallows_abi::table::{CHANNEL_QUEUING, CHANNEL_SAMPLING};
use hallows_ring::{QueueReader, QueueWriter, RingError, SampleReader, SampleWriter};

pub use hallows_ring::{Geometry, Region, Sample, MAX_DEPTH, MAX_MESSAGE};

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
    /// The peer left shared state this side cannot make sense of; the endpoint has
    /// resynchronised and dropped what was in flight.
    Inconsistent,
}

impl From<RingError> for PortError {
    fn from(e: RingError) -> Self {
        match e {
            RingError::BadGeometry => Self::BadGeometry,
            RingError::TooLarge => Self::TooLarge,
            RingError::BufferTooSmall { needed } => Self::BufferTooSmall { needed },
            RingError::Full => Self::Full,
            RingError::Inconsistent => Self::Inconsistent,
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
        && ci.gpa < window_end
        && ci.bytes <= window_end - ci.gpa;
    if !inside || ci.bytes < geometry.region_bytes() {
        return Err(PortError::BadGeometry);
    }
    Ok(geometry)
}

/// Finds `name`, checks it has the wanted kind and role, and returns its region.
fn open(bi: &BootInfo, name: &str, queuing: bool, writer: bool) -> Result<(Region, Geometry), PortError> {
    let ci = find(bi, name).ok_or(PortError::NotFound)?;
    let geometry = check_channel(ci, queuing, writer)?;
    // SAFETY: check_channel confirmed the range lies in the channel window, is page aligned
    // and holds the whole layout; the hypervisor identity-maps a partition's channels there
    // for its whole life, readable, and writable on the pages this role writes; the SDK
    // never makes references to it.
    let region = unsafe { Region::new(ci.gpa as *mut u8, geometry.region_bytes() as usize) };
    Ok((region, geometry))
}

/// The writing end of a queuing channel.
#[derive(Debug)]
pub struct QueuingWriter(QueueWriter);

impl QueuingWriter {
    /// Opens the queuing channel `name`, which this partition must write.
    pub fn open(bi: &BootInfo, name: &str) -> Result<Self, PortError> {
        let (region, geometry) = open(bi, name, true, true)?;
        Self::over(region, geometry)
    }

    /// A writer over `region` laid out as `geometry` (must be a queuing geometry).
    pub fn over(region: Region, geometry: Geometry) -> Result<Self, PortError> {
        Ok(Self(QueueWriter::over(region, geometry)?))
    }

    /// Largest message in bytes.
    pub fn msg_size(&self) -> usize {
        self.0.msg_size()
    }

    /// Slots free for [`QueuingWriter::send`] right now.
    pub fn free_slots(&mut self) -> u64 {
        self.0.free_slots()
    }

    /// Appends `msg` to the queue; [`PortError::Full`] when `depth` messages are unread.
    pub fn send(&mut self, msg: &[u8]) -> Result<(), PortError> {
        Ok(self.0.send(msg)?)
    }
}

/// The reading end of a queuing channel.
#[derive(Debug)]
pub struct QueuingReader(QueueReader);

impl QueuingReader {
    /// Opens the queuing channel `name`, which this partition must read.
    pub fn open(bi: &BootInfo, name: &str) -> Result<Self, PortError> {
        let (region, geometry) = open(bi, name, true, false)?;
        Self::over(region, geometry)
    }

    /// A reader over `region` laid out as `geometry` (must be a queuing geometry).
    pub fn over(region: Region, geometry: Geometry) -> Result<Self, PortError> {
        Ok(Self(QueueReader::over(region, geometry)?))
    }

    /// Largest message in bytes.
    pub fn msg_size(&self) -> usize {
        self.0.msg_size()
    }

    /// Messages waiting (as far as the writer's counter is believable).
    pub fn pending(&self) -> u64 {
        self.0.pending()
    }

    /// Takes the oldest message into `buf`, returning its length; `Ok(None)` when empty.
    pub fn receive(&mut self, buf: &mut [u8]) -> Result<Option<usize>, PortError> {
        Ok(self.0.receive(buf)?)
    }
}

/// The writing end of a sampling channel.
#[derive(Debug)]
pub struct SamplingWriter(SampleWriter);

impl SamplingWriter {
    /// Opens the sampling channel `name`, which this partition must write.
    pub fn open(bi: &BootInfo, name: &str) -> Result<Self, PortError> {
        let (region, geometry) = open(bi, name, false, true)?;
        Self::over(region, geometry)
    }

    /// A writer over `region` laid out as `geometry` (must be a sampling geometry).
    pub fn over(region: Region, geometry: Geometry) -> Result<Self, PortError> {
        Ok(Self(SampleWriter::over(region, geometry)?))
    }

    /// Largest message in bytes.
    pub fn msg_size(&self) -> usize {
        self.0.msg_size()
    }

    /// Publishes `msg` as the channel's current value.
    pub fn write(&mut self, msg: &[u8]) -> Result<(), PortError> {
        Ok(self.0.write(msg)?)
    }
}

/// The reading end of a sampling channel.
#[derive(Debug)]
pub struct SamplingReader(SampleReader);

impl SamplingReader {
    /// Opens the sampling channel `name`, which this partition must read.
    pub fn open(bi: &BootInfo, name: &str) -> Result<Self, PortError> {
        let (region, geometry) = open(bi, name, false, false)?;
        Self::over(region, geometry)
    }

    /// A reader over `region` laid out as `geometry` (must be a sampling geometry).
    pub fn over(region: Region, geometry: Geometry) -> Result<Self, PortError> {
        Ok(Self(SampleReader::over(region, geometry)?))
    }

    /// Largest message in bytes.
    pub fn msg_size(&self) -> usize {
        self.0.msg_size()
    }

    /// Copies the current message into `buf`. `Ok(None)` when nothing was ever written.
    pub fn read(&mut self, buf: &mut [u8]) -> Result<Option<Sample>, PortError> {
        Ok(self.0.read(buf)?)
    }
}

#[cfg(test)]
mod tests;
