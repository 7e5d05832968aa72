//! The Linux side of the RustHallows hybrid bridge.
//!
//! Inside a Linux partition each channel with a Linux end is a PCI function (ids and
//! register block in [`hallows_abi::bridge`]). This crate finds them through sysfs, maps
//! the register block (`resource0`, read-only) and the channel's pages (`resource2`: the
//! pages Linux writes read-write, the others read-only), and runs the same ring code as
//! the real-time partitions (`hallows-ring`). No kernel module, no system call per message.
//!
//! ```no_run
//! let bridge = rhlink::Bridge::system();
//! let mut commands = bridge.open("commands")?.sender()?;
//! commands.send(b"start")?;
//! let mut readings = bridge.open("readings")?.receiver()?;
//! let mut buf = vec![0u8; readings.msg_size()];
//! let len = readings.recv(&mut buf)?;
//! # Ok::<(), rhlink::Error>(())
//! ```
//! The sysfs root is a parameter ([`Bridge::at`]) so that tests can run the whole library
//! against a fake tree of regular files.

mod backoff;
pub mod fake;
mod map;
mod sysfs;

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hallows_abi::bridge::{PEER_BOOTING, PEER_HALTED, PEER_RESTARTING, PEER_RUNNING, REG_PEER_STATE};
use hallows_ring::{Geometry, QueueReader, QueueWriter, Region, RingError, SampleReader, SampleWriter};

pub use backoff::Backoff;
pub use map::{page_size, Mapping, Writable};
pub use sysfs::{find_functions, ChannelInfo, Direction, Kind};

/// Where Linux lists PCI functions.
pub const SYSFS_PCI_DEVICES: &str = "/sys/bus/pci/devices";

/// What can go wrong.
#[derive(Debug)]
pub enum Error {
    /// No channel of that name is visible to this Linux partition.
    NoSuchChannel(String),
    /// The channel goes the other way (`linux_writes` says which way it goes).
    WrongDirection { name: String, linux_writes: bool },
    /// The message is larger than the channel's message size.
    MessageTooLarge { len: usize, max: usize },
    /// The caller's buffer is smaller than the message waiting (nothing was consumed).
    BufferTooSmall { needed: usize },
    /// The real-time partition at the other end is halted (or, for a blocking call that
    /// timed out, not running): nobody will drain or fill the channel.
    PeerNotRunning { name: String, state: PeerState },
    /// Non-blocking send on a full queue, or blocking call past its deadline.
    WouldBlock,
    /// The peer left the channel in a state that makes no sense; this end resynchronised.
    Inconsistent,
    /// A PCI function with our ids whose register block is not one this library
    /// understands (wrong magic, layout version or sizes).
    BadDevice { path: PathBuf, why: String },
    /// sysfs or mapping failed.
    Io { path: PathBuf, error: io::Error },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NoSuchChannel(name) => write!(f, "no such channel: {name}"),
            Error::WrongDirection { name, linux_writes: true } => {
                write!(f, "wrong direction: Linux writes channel {name}, it cannot read it")
            }
            Error::WrongDirection { name, linux_writes: false } => {
                write!(f, "wrong direction: Linux reads channel {name}, it cannot write it")
            }
            Error::MessageTooLarge { len, max } => {
                write!(f, "message too large: {len} bytes, the channel carries at most {max}")
            }
            Error::BufferTooSmall { needed } => write!(f, "buffer too small: the message has {needed} bytes"),
            Error::PeerNotRunning { name, state } => {
                write!(f, "peer not running: the other end of {name} is {state}")
            }
            Error::WouldBlock => write!(f, "would block: the queue is full, or nothing arrived in time"),
            Error::Inconsistent => write!(f, "the peer left the channel inconsistent; resynchronised"),
            Error::BadDevice { path, why } => write!(f, "{}: {why}", path.display()),
            Error::Io { path, error } => write!(f, "{}: {error}", path.display()),
        }
    }
}

impl std::error::Error for Error {}

/// The state of the real-time partition at the other end (register `PEER_STATE`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerState {
    Running,
    Restarting,
    Halted,
    Booting,
    Unknown(u32),
}

impl PeerState {
    pub fn from_register(value: u32) -> Self {
        match value {
            PEER_RUNNING => Self::Running,
            PEER_RESTARTING => Self::Restarting,
            PEER_HALTED => Self::Halted,
            PEER_BOOTING => Self::Booting,
            other => Self::Unknown(other),
        }
    }
}

impl fmt::Display for PeerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PeerState::Running => f.write_str("running"),
            PeerState::Restarting => f.write_str("restarting"),
            PeerState::Halted => f.write_str("halted"),
            PeerState::Booting => f.write_str("booting"),
            PeerState::Unknown(v) => write!(f, "in unknown state {v}"),
        }
    }
}

/// The channels of one sysfs tree.
#[derive(Clone, Debug)]
pub struct Bridge {
    root: PathBuf,
}

impl Bridge {
    /// The running system's channels (`/sys/bus/pci/devices`).
    pub fn system() -> Self {
        Self::at(SYSFS_PCI_DEVICES)
    }

    /// The channels of the PCI device directory `root` (one subdirectory per function).
    pub fn at(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// Every channel function, in PCI address order. Functions with other ids are skipped;
    /// one with our ids and an unreadable register block is an error.
    pub fn list(&self) -> Result<Vec<ChannelInfo>, Error> {
        sysfs::list(&self.root)
    }

    /// Opens the channel `name`.
    pub fn open(&self, name: &str) -> Result<Channel, Error> {
        let info = self
            .list()?
            .into_iter()
            .find(|c| c.name == name)
            .ok_or_else(|| Error::NoSuchChannel(name.into()))?;
        Channel::open(info)
    }
}

/// An open channel: its register block is mapped; [`Channel::sender`] or
/// [`Channel::receiver`] maps its pages.
#[derive(Debug)]
pub struct Channel {
    info: ChannelInfo,
    registers: Mapping,
}

impl Channel {
    fn open(info: ChannelInfo) -> Result<Self, Error> {
        let registers = sysfs::map_registers(&info.path)?;
        let channel = Self { info, registers };
        if channel.peer_state() == PeerState::Halted {
            return Err(channel.not_running());
        }
        Ok(channel)
    }

    pub fn info(&self) -> &ChannelInfo {
        &self.info
    }

    /// The peer's state, read live from the register block.
    pub fn peer_state(&self) -> PeerState {
        PeerState::from_register(self.registers.read_u32(REG_PEER_STATE as usize))
    }

    fn not_running(&self) -> Error {
        Error::PeerNotRunning { name: self.info.name.clone(), state: self.peer_state() }
    }

    /// Maps the channel's pages with the rights of `linux_writes` and builds the region.
    fn map_pages(&self, linux_writes: bool) -> Result<(Mapping, Region, Geometry), Error> {
        if self.info.direction.linux_writes() != linux_writes {
            return Err(Error::WrongDirection { name: self.info.name.clone(), linux_writes: !linux_writes });
        }
        let info = &self.info;
        let geometry = info.geometry();
        let (region, writer) = (info.region_bytes as usize, info.writer_bytes as usize);
        let writable = if linux_writes {
            Writable::Range { start: 0, len: writer }
        } else {
            Writable::Range { start: writer, len: region - writer }
        };
        let path = info.path.join("resource2");
        let pages = Mapping::open(&path, region, writable).map_err(|error| Error::Io { path, error })?;
        // SAFETY: the mapping covers the whole region with the rights of our role (writer
        // pages writable only for a writer, the reader page only for a reader) and lives as
        // long as the endpoint (both are fields of the same value, the endpoint dropped
        // first); nothing in this process makes references to it.
        let shared = unsafe { Region::new(pages.base(), pages.len()) };
        Ok((pages, shared, geometry))
    }

    /// The sending end (Linux must be the channel's writer).
    pub fn sender(self) -> Result<Sender, Error> {
        let (pages, region, geometry) = self.map_pages(true)?;
        let end = if geometry.queuing {
            SendEnd::Queue(QueueWriter::over(region, geometry).map_err(|e| self.bad(e))?)
        } else {
            SendEnd::Sample(SampleWriter::over(region, geometry).map_err(|e| self.bad(e))?)
        };
        Ok(Sender { end, channel: self, _pages: pages })
    }

    /// The receiving end (Linux must be the channel's reader).
    pub fn receiver(self) -> Result<Receiver, Error> {
        let (pages, region, geometry) = self.map_pages(false)?;
        let end = if geometry.queuing {
            RecvEnd::Queue(QueueReader::over(region, geometry).map_err(|e| self.bad(e))?)
        } else {
            RecvEnd::Sample(SampleReader::over(region, geometry).map_err(|e| self.bad(e))?)
        };
        Ok(Receiver { end, channel: self, _pages: pages })
    }

    fn bad(&self, e: RingError) -> Error {
        Error::BadDevice { path: self.info.path.clone(), why: format!("the ring refuses the channel: {e:?}") }
    }
}

#[derive(Debug)]
enum SendEnd {
    Queue(QueueWriter),
    Sample(SampleWriter),
}

/// The writing end of a channel.
#[derive(Debug)]
pub struct Sender {
    // Declared before the mapping: dropped (and done with the memory) first.
    end: SendEnd,
    channel: Channel,
    _pages: Mapping,
}

impl Sender {
    pub fn info(&self) -> &ChannelInfo {
        &self.channel.info
    }

    pub fn msg_size(&self) -> usize {
        self.channel.info.msg_size as usize
    }

    pub fn peer_state(&self) -> PeerState {
        self.channel.peer_state()
    }

    /// Sends `msg` without waiting: [`Error::WouldBlock`] when the queue is full, or
    /// [`Error::PeerNotRunning`] when it is full and the reader is halted. A sampling
    /// channel never blocks: the value replaces the previous one.
    pub fn try_send(&mut self, msg: &[u8]) -> Result<(), Error> {
        self.send_once(msg, true)
    }

    /// One attempt; `ask_peer`: on a full queue, read the peer's state (a register-block
    /// read, which is a VM exit: the blocking sender asks only once it sleeps).
    fn send_once(&mut self, msg: &[u8], ask_peer: bool) -> Result<(), Error> {
        let result = match &mut self.end {
            SendEnd::Queue(w) => w.send(msg),
            SendEnd::Sample(w) => w.write(msg),
        };
        match result {
            Ok(()) => Ok(()),
            Err(RingError::Full) if ask_peer && self.peer_state() == PeerState::Halted => {
                Err(self.channel.not_running())
            }
            Err(e) => Err(self.error(e, msg.len())),
        }
    }

    /// Sends `msg`, waiting (spin, then sleep) while the queue is full.
    pub fn send(&mut self, msg: &[u8]) -> Result<(), Error> {
        self.send_until(msg, None)
    }

    /// As [`Sender::send`], giving up with [`Error::WouldBlock`] after `timeout`.
    pub fn send_timeout(&mut self, msg: &[u8], timeout: Duration) -> Result<(), Error> {
        self.send_until(msg, Some(Instant::now() + timeout))
    }

    fn send_until(&mut self, msg: &[u8], deadline: Option<Instant>) -> Result<(), Error> {
        let mut backoff = Backoff::new();
        loop {
            match self.send_once(msg, backoff.time_to_check_peer()) {
                Err(Error::WouldBlock) => {}
                other => return other,
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(Error::WouldBlock);
            }
            backoff.wait();
        }
    }

    /// For isolation tests only: writes `words` pseudo-random 64-bit values (from the
    /// xorshift state `seed`, updated) at random aligned offsets of the writer pages, half
    /// of them aimed at the control words (the header line, where counters and indices
    /// live, and each slot's first line, where lengths live), as a hostile writer would.
    /// The channel is garbage afterwards; the reader at the other end must cope.
    pub fn scribble(&mut self, seed: &mut u64, words: usize) {
        let writer_bytes = self.channel.info.writer_bytes as usize;
        let geometry = self.channel.info.geometry();
        let slots = hallows_abi::channel::slot_count(geometry.queuing, geometry.depth);
        for i in 0..words {
            let value = xorshift(seed);
            let offset = if i % 2 == 0 {
                let slot = xorshift(seed) % (slots + 1);
                let line = if slot == 0 {
                    0
                } else {
                    hallows_abi::channel::slot_offset(geometry.msg_size, slot - 1) as usize
                };
                line + (xorshift(seed) % 8) as usize * 8
            } else {
                (xorshift(seed) as usize % (writer_bytes / 8)) * 8
            };
            // SAFETY: `offset + 8 <= writer_bytes` (both branches stay inside the writer
            // pages, slot lines included), 8-aligned, in the read-write part of our mapping.
            unsafe { self._pages.base().add(offset).cast::<u64>().write_volatile(value) };
        }
    }

    fn error(&self, e: RingError, len: usize) -> Error {
        match e {
            RingError::TooLarge => Error::MessageTooLarge { len, max: self.msg_size() },
            RingError::Full => Error::WouldBlock,
            RingError::BufferTooSmall { needed } => Error::BufferTooSmall { needed },
            RingError::Inconsistent => Error::Inconsistent,
            RingError::BadGeometry => self.channel.bad(e),
        }
    }
}

#[derive(Debug)]
enum RecvEnd {
    Queue(QueueReader),
    Sample(SampleReader),
}

/// The reading end of a channel.
#[derive(Debug)]
pub struct Receiver {
    // Declared before the mapping: dropped (and done with the memory) first.
    end: RecvEnd,
    channel: Channel,
    _pages: Mapping,
}

/// What a receive returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Received {
    /// Bytes of the message at the start of the caller's buffer.
    pub len: usize,
    /// Sampling: the writer's message count for this value (queuing: 0).
    pub count: u64,
}

impl Receiver {
    pub fn info(&self) -> &ChannelInfo {
        &self.channel.info
    }

    pub fn msg_size(&self) -> usize {
        self.channel.info.msg_size as usize
    }

    pub fn peer_state(&self) -> PeerState {
        self.channel.peer_state()
    }

    /// Takes the next message (queuing) or a new value (sampling: one not returned before)
    /// without waiting; `Ok(None)` when there is none.
    pub fn try_recv(&mut self, buf: &mut [u8]) -> Result<Option<Received>, Error> {
        let result = match &mut self.end {
            RecvEnd::Queue(r) => r.receive(buf).map(|m| m.map(|len| Received { len, count: 0 })),
            RecvEnd::Sample(r) => {
                r.read(buf).map(|s| s.filter(|s| s.fresh).map(|s| Received { len: s.len, count: s.count }))
            }
        };
        result.map_err(|e| match e {
            RingError::BufferTooSmall { needed } => Error::BufferTooSmall { needed },
            RingError::Inconsistent => Error::Inconsistent,
            other => self.channel.bad(other),
        })
    }

    /// Sampling: the current value, new or not (`Ok(None)` when nothing was ever written).
    /// Queuing: as [`Receiver::try_recv`].
    pub fn read_latest(&mut self, buf: &mut [u8]) -> Result<Option<Received>, Error> {
        match &mut self.end {
            RecvEnd::Sample(r) => match r.read(buf) {
                Ok(s) => Ok(s.map(|s| Received { len: s.len, count: s.count })),
                Err(RingError::BufferTooSmall { needed }) => Err(Error::BufferTooSmall { needed }),
                Err(RingError::Inconsistent) => Err(Error::Inconsistent),
                Err(other) => Err(self.channel.bad(other)),
            },
            RecvEnd::Queue(_) => self.try_recv(buf),
        }
    }

    /// Waits (spin, then sleep) for the next message or new value. Returns
    /// [`Error::PeerNotRunning`] when the channel is empty and the writer is halted.
    pub fn recv(&mut self, buf: &mut [u8]) -> Result<Received, Error> {
        self.recv_until(buf, None)
    }

    /// As [`Receiver::recv`], giving up with [`Error::WouldBlock`] after `timeout`.
    pub fn recv_timeout(&mut self, buf: &mut [u8], timeout: Duration) -> Result<Received, Error> {
        self.recv_until(buf, Some(Instant::now() + timeout))
    }

    fn recv_until(&mut self, buf: &mut [u8], deadline: Option<Instant>) -> Result<Received, Error> {
        let mut backoff = Backoff::new();
        loop {
            if let Some(m) = self.try_recv(buf)? {
                return Ok(m);
            }
            if backoff.time_to_check_peer() && self.peer_state() == PeerState::Halted {
                return Err(self.channel.not_running());
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(Error::WouldBlock);
            }
            backoff.wait();
        }
    }
}

/// One step of a xorshift64 generator (`state` must not be 0; 0 is replaced).
pub fn xorshift(state: &mut u64) -> u64 {
    let mut x = if *state == 0 { 0x9E37_79B9_7F4A_7C15 } else { *state };
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *state = x;
    x
}

/// The PCI device directory of `path`'s channel, for messages.
pub fn device_name(path: &Path) -> String {
    path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned())
}

#[cfg(test)]
mod tests;
